"""Fixtures that build tiny random CLIP / multilingual models (owned by the models work)."""
