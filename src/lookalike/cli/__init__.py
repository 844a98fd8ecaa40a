"""The ``lookalike`` command line. Thin: it parses, calls the library, and prints.

Library errors become one-line messages on stderr with a non-zero exit code;
every command has ``--json`` for machine-readable output on stdout.

Layout: ``app`` holds the command group, ``options`` the shared options and
their parsing, ``output`` the human-readable printing; each other module
holds the commands of one concern and registers them on the group when
imported below. Commands import the library lazily, so ``lookalike --help``
loads no model runtime.
"""

from __future__ import annotations

import sys
import warnings

import click

from lookalike.cli import (  # noqa: F401  (each module registers its commands)
    check,
    duplicates,
    evaluate,
    indexing,
    manage,
    reindexing,
    searching,
    serving,
    watching,
)
from lookalike.cli.app import cli
from lookalike.cli.options import parse_date, parse_size
from lookalike.errors import (
    ConfigError,
    LookalikeError,
    ModelError,
    NotFoundError,
    QueryError,
    StoreError,
)

__all__ = ["EXIT_CODES", "cli", "main", "parse_date", "parse_size"]

EXIT_CODES: list[tuple[type[LookalikeError], int]] = [
    (QueryError, 2),
    (ConfigError, 2),
    (NotFoundError, 3),
    (ModelError, 4),
    (StoreError, 5),
    (LookalikeError, 1),
]


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn library errors into one-line messages."""
    # Pillow warns about odd chunks in damaged files; the decoder reports such files itself.
    warnings.filterwarnings("ignore", module="PIL")
    try:
        cli.main(args=argv, prog_name="lookalike", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except LookalikeError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(next(code for cls, code in EXIT_CODES if isinstance(exc, cls)))
    except KeyboardInterrupt:
        click.echo(
            "interrupted; committed work is kept, run the same command again to continue", err=True
        )
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
