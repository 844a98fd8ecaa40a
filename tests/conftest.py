"""Shared fixtures. Tiny random models and generated image files live in tests/support/."""

pytest_plugins = ["support.tiny_models", "support.image_files", "support.preset_models"]
