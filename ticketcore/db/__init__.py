"""Persistence: the only package that imports piccolo."""
