"""Built-in kb plugins."""
