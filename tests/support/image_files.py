"""Fixtures that generate image files of every awkward kind (owned by the images work)."""
