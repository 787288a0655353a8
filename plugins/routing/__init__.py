"""Built-in routing plugins."""
