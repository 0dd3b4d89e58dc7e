"""steelyard.control."""
