"""The web app and JSON API: ``create_app(settings)`` and ``serve(settings)``.

Needs the ``web`` extra (FastAPI, uvicorn, Jinja2, python-multipart).
"""

from __future__ import annotations

from lookalike.web.app import create_app
from lookalike.web.server import serve

__all__ = ["create_app", "serve"]
