"""steelyard.demo."""
