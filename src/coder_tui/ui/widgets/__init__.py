"""Widgets: each renders what it is given and does no I/O."""
