"""The command group every ``lookalike`` command registers on."""

from __future__ import annotations

import click

__all__ = ["cli"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="lookalike")
def cli() -> None:
    """Search your own images by text (50+ languages) or by image."""
