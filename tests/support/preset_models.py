"""Fixtures: tiny random models of the preset families other than the seed's.

Pretrained weights cannot be downloaded here, so each family is a tiny random
model in its Hub layout, built offline by ``lookalike.models.testing``:

* ``tiny_hf_clip_dir``: a plain transformers ``CLIPModel`` folder (as the LAION
  checkpoints are published); ``tiny_hf_clip256_dir`` the same at 256 px;
* ``tiny_siglip_dir``: a ``SiglipModel`` with its ``SiglipProcessor`` and a
  generated Gemma-like tokenizer (as SigLIP 2's fixed-resolution checkpoints).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from lookalike.models.testing import build_random_hf_clip
from lookalike.models.testing_siglip import build_random_siglip

__all__ = ["tiny_hf_clip256_dir", "tiny_hf_clip_dir", "tiny_siglip1_dir", "tiny_siglip_dir"]

_LOCK = threading.Lock()


@pytest.fixture(scope="session")
def tiny_hf_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with _LOCK:
        return build_random_hf_clip(tmp_path_factory.mktemp("models") / "tiny-hf-clip", seed=3)


@pytest.fixture(scope="session")
def tiny_hf_clip256_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with _LOCK:
        folder = tmp_path_factory.mktemp("models") / "tiny-hf-clip256"
        return build_random_hf_clip(folder, image_size=256, seed=4)


@pytest.fixture(scope="session")
def tiny_siglip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with _LOCK:
        return build_random_siglip(tmp_path_factory.mktemp("models") / "tiny-siglip", seed=5)


@pytest.fixture(scope="session")
def tiny_siglip1_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SigLIP 1's layout: ``SiglipTokenizer`` over a trained SentencePiece ``spiece.model``."""
    with _LOCK:
        folder = tmp_path_factory.mktemp("models") / "tiny-siglip1"
        return build_random_siglip(folder, seed=6, sentencepiece=True)
