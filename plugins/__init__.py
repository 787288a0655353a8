"""Built-in plugins, loaded through the same entry points a third-party package uses."""
