"""Clients of salotto: the GUI-free client core and the Tk desktop app built on it."""
