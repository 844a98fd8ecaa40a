"""Searcher: turn a text, an image or an indexed id into a query vector and ask the store.

Every interface (CLI, web app, library) searches through this class. Queries
can be combined: positives (texts, images, ids) are averaged, negatives are
subtracted with a weight, and the result is re-normalised, as in CLIP retrieval
tools. Ids and files used as the query are excluded from the results.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

from lookalike.errors import ConfigError, NotFoundError, QueryError
from lookalike.images import clip_crop, clip_ready
from lookalike.models.base import Embedder
from lookalike.records import Filters, Hit
from lookalike.regions import check_box, crop_part
from lookalike.store.base import Store
from lookalike.store.checks import MAX_K, MAX_WINDOW, check_window

__all__ = ["MAX_K", "MAX_WINDOW", "ImageSource", "Query", "Searcher"]

MAX_QUERY_CHARS = 2000

ImageSource = str | Path | bytes | IO[bytes] | Image.Image


@dataclass
class Query:
    """A combined query. At least one positive part is required."""

    texts: Sequence[str] = ()
    images: Sequence[ImageSource] = ()
    ids: Sequence[str] = ()
    negative_texts: Sequence[str] = ()
    negative_weight: float = 0.5
    k: int = 10
    offset: int = 0
    min_score: float | None = None
    filters: Filters | None = None
    exclude_ids: Sequence[str] = field(default_factory=tuple)
    #: also match image regions (collections indexed with ``--regions``): a small symbol
    #: inside a large photo; a hit won by a region carries its box (``Hit.region``)
    regions: bool = False


class Searcher:
    def __init__(
        self, store: Store, embedder: Embedder, *, max_pixels: int, server_side_text: bool = False
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.max_pixels = max_pixels
        # Elasticsearch with a text model deployed in the cluster embeds plain text queries itself.
        self.server_side_text = server_side_text and store.embeds_text

    # -- the simple entry points ---------------------------------------------------------

    def text(
        self,
        query: str,
        *,
        k: int = 10,
        offset: int = 0,
        min_score: float | None = None,
        filters: Filters | None = None,
    ) -> list[Hit]:
        """Images matching a text query, in any language the text model knows."""
        return self.search(
            Query(texts=[query], k=k, offset=offset, min_score=min_score, filters=filters)
        )

    def image(
        self,
        source: ImageSource,
        *,
        k: int = 10,
        offset: int = 0,
        min_score: float | None = None,
        filters: Filters | None = None,
    ) -> list[Hit]:
        """Images similar to an image file, bytes or PIL image (never stored)."""
        return self.search(
            Query(images=[source], k=k, offset=offset, min_score=min_score, filters=filters)
        )

    def similar(
        self,
        doc_id: str,
        *,
        k: int = 10,
        offset: int = 0,
        min_score: float | None = None,
        filters: Filters | None = None,
    ) -> list[Hit]:
        """Images similar to an indexed one; the query image itself is not returned."""
        return self.search(
            Query(ids=[doc_id], k=k, offset=offset, min_score=min_score, filters=filters)
        )

    def part(
        self,
        doc_id: str,
        box: Sequence[float] | str,
        *,
        k: int = 10,
        offset: int = 0,
        min_score: float | None = None,
        filters: Filters | None = None,
        regions: bool = False,
    ) -> list[Hit]:
        """Images showing what lies in ``box`` (fractions x0, y0, x1, y1) of an indexed image
        ("search this part"); that image itself is not returned."""
        where = check_box(box)
        found = self.store.get([str(doc_id)], with_vectors=False)
        if not found:
            raise NotFoundError(f"no indexed image with id {doc_id!r}", field="id")
        crop = crop_part(found[0].path, where, max_pixels=self.max_pixels)
        query = Query(images=[crop], k=k, offset=offset, min_score=min_score, filters=filters)
        query.exclude_ids, query.regions = [str(doc_id)], regions
        return self.search(query)

    # -- the general form ----------------------------------------------------------------

    def search(self, query: Query) -> list[Hit]:
        check_window(query.k, query.offset, query.min_score, max_k=MAX_K)
        if self.server_side_text and _plain_text(query) and not query.regions:
            return self.store.knn_text(
                _check_text(query.texts[0], "q"),
                query.k,
                offset=query.offset,
                filters=query.filters,
                min_score=query.min_score,
                exclude_ids=list(query.exclude_ids),
            )
        vector, exclude_ids, exclude_paths = self._query_vector(query)
        exclude = list(dict.fromkeys([*query.exclude_ids, *exclude_ids]))
        knn = self._regions_knn if query.regions else self.store.knn
        if not exclude_paths:
            return knn(
                vector,
                query.k,
                offset=query.offset,
                filters=query.filters,
                min_score=query.min_score,
                exclude_ids=exclude,
            )
        # A query file that is itself indexed would come back first; over-fetch and drop it.
        hits = knn(
            vector,
            min(MAX_WINDOW, query.offset + query.k + len(exclude_paths)),
            filters=query.filters,
            min_score=query.min_score,
            exclude_ids=exclude,
        )
        hits = [h for h in hits if h.path not in exclude_paths]
        return hits[query.offset : query.offset + query.k]

    def _regions_knn(self, vector: np.ndarray, k: int, **kw: Any) -> list[Hit]:
        if self.store.region_spec is None:
            raise ConfigError(
                f"collection {self.store.collection!r} has no region vectors; index it with "
                "`lookalike index --regions FOLDER` first, or search without regions",
                field="regions",
            )
        return self.store.knn_regions(vector, k, **kw)

    def query_vector(self, query: Query) -> np.ndarray:
        """The normalised vector a query searches with (for callers that cache or inspect it)."""
        return self._query_vector(query)[0]

    def _query_vector(self, query: Query) -> tuple[np.ndarray, list[str], set[str]]:
        positives: list[np.ndarray] = []
        exclude_ids: list[str] = []
        exclude_paths: set[str] = set()
        texts = [_check_text(t, "q") for t in query.texts]
        if texts:
            positives.extend(self.embedder.embed_texts(texts))
        if query.images:
            pictures = []
            for src in query.images:
                if isinstance(src, Image.Image):
                    pictures.append(clip_crop(src))
                else:
                    pictures.append(clip_ready(src, max_pixels=self.max_pixels).image)
                    if isinstance(src, (str, Path)):
                        exclude_paths.add(Path(os.path.abspath(src)).as_posix())
            positives.extend(self.embedder.embed_images(pictures))
        if query.ids:
            ids = [str(i) for i in query.ids]
            records = self.store.get(ids, with_vectors=True)
            found = {r.id for r in records}
            missing = [i for i in ids if i not in found]
            if missing:
                raise NotFoundError(f"no indexed image with id {missing[0]!r}", field="id")
            positives.extend(r.vector for r in records if r.vector is not None)
            exclude_ids.extend(ids)
        if not positives:
            raise QueryError("give a text, an image or an indexed id to search with", field="q")
        vec = np.mean(np.asarray(positives, dtype=np.float32), axis=0)
        negatives = [_check_text(t, "negative") for t in query.negative_texts]
        if negatives:
            vec = vec - query.negative_weight * np.mean(
                self.embedder.embed_texts(negatives), axis=0
            )
        return _normalise(vec), exclude_ids, exclude_paths


def _plain_text(query: Query) -> bool:
    return len(query.texts) == 1 and not (query.images or query.ids or query.negative_texts)


def _check_text(text: str, field_name: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise QueryError("the search text is empty", field=field_name)
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(
            f"the search text is longer than {MAX_QUERY_CHARS} characters", field=field_name
        )
    return text.strip()


def _normalise(vec: np.ndarray) -> np.ndarray:
    vec = np.asarray(vec, dtype=np.float32)
    norm = float(np.linalg.norm(vec))
    if not np.isfinite(norm) or norm < 1e-12:
        raise QueryError("the query cancels itself out; use fewer negatives", field="negative")
    return vec / norm
