"""Whether a model folder holds random weights (the offline demo's and the tests' models).

``lookalike.models.testing`` writes the marker file ``RANDOM_MARKER`` into every
model it builds (``make demo`` builds its fallback models with it), so the page and
the CLI can say that results are meaningless. The name starts with a dot, so the
model fingerprint (``loading._fingerprint``) ignores it: marking an existing folder
does not change its model id.
"""

from __future__ import annotations

import os

from lookalike.config import Settings

__all__ = ["RANDOM_MARKER", "is_random_weight_model", "random_weight_models"]

RANDOM_MARKER = ".lookalike-random-weights"


def is_random_weight_model(location: str | None) -> bool:
    """True when ``location`` is a local folder marked as holding random weights."""
    if not location:
        return False
    return os.path.isfile(os.path.join(os.path.expanduser(location), RANDOM_MARKER))


def random_weight_models(settings: Settings) -> list[str]:
    """The configured models (image, text) that are random-weight builds; cheap: no loading."""
    return [
        name
        for name in (settings.image_model, settings.text_model)
        if name and is_random_weight_model(name)
    ]
