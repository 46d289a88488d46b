"""The Tk desktop client (``salotto gui``): draws the core's state, turns clicks and keys into core calls."""
