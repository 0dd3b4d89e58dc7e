"""steelyard.proxy."""
