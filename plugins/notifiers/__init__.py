"""Built-in notifiers plugins."""
