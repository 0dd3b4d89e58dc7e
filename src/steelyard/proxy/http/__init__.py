"""steelyard.proxy.http."""
