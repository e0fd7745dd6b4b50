"""Privia's routes, one module per area; `privia.py` lists them."""
