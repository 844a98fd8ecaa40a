"""Searcher: turn a text, an image or an indexed id into a query vector and ask the store.

Every interface (CLI, web app, library) searches through this class. Queries
can be combined: positives (texts, images, ids) are averaged, negatives (texts,
images, ids) are subtracted with a weight, and the result is re-normalised
(Rocchio-style; see ``lookalike.composing``). Any part may carry its own weight
(``Weighted``). Ids and files used in the query are excluded from the results.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

from lookalike.composing import MAX_PARTS, Weighted, check_weight, rocchio, unweight
from lookalike.errors import ConfigError, NotFoundError, QueryError
from lookalike.images import model_ready, prep_image
from lookalike.models.base import Embedder
from lookalike.records import Filters, Hit
from lookalike.regions import check_box, crop_part
from lookalike.store.base import Store
from lookalike.store.checks import MAX_K, MAX_WINDOW, check_window

__all__ = ["MAX_K", "MAX_WINDOW", "ImageSource", "Query", "Searcher", "Weighted"]

MAX_QUERY_CHARS = 2000

ImageSource = str | Path | bytes | IO[bytes] | Image.Image


@dataclass
class Query:
    """A combined query. At least one positive part is required.

    Every part may be plain (weight 1) or ``Weighted(part, weight)``; negatives are
    subtracted, scaled by ``negative_weight``. Ids on either side, and query files
    that are themselves indexed, never come back as results.
    """

    texts: Sequence[str | Weighted[str]] = ()
    images: Sequence[ImageSource | Weighted[ImageSource]] = ()
    ids: Sequence[str | Weighted[str]] = ()
    negative_texts: Sequence[str | Weighted[str]] = ()
    negative_weight: float = 0.5
    negative_images: Sequence[ImageSource | Weighted[ImageSource]] = ()
    negative_ids: Sequence[str | Weighted[str]] = ()
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
                _check_text(str(query.texts[0]), "q"),
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
        parts = (
            (len(query.texts) + len(query.images) + len(query.ids) + len(query.negative_texts))
            + len(query.negative_images)
            + len(query.negative_ids)
        )
        if parts > MAX_PARTS:
            raise QueryError(f"a query may have at most {MAX_PARTS} parts", field="q")
        beta = check_weight(query.negative_weight, "negative_weight")
        exclude_paths: set[str] = set()
        pos, pos_w, pos_ids = self._side(query.texts, query.images, query.ids, "", exclude_paths)
        if not pos:
            raise QueryError("give a text, an image or an indexed id to search with", field="q")
        neg, neg_w, neg_ids = self._side(
            query.negative_texts, query.negative_images, query.negative_ids, "negative_",
            exclude_paths,
        )  # fmt: skip
        vector = rocchio(pos, pos_w, neg, neg_w, beta)
        return vector, [*pos_ids, *neg_ids], exclude_paths

    def _side(
        self,
        texts: Sequence[str | Weighted[str]],
        images: Sequence[ImageSource | Weighted[ImageSource]],
        ids: Sequence[str | Weighted[str]],
        prefix: str,
        exclude_paths: set[str],
    ) -> tuple[list[np.ndarray], list[float], list[str]]:
        """The vectors and weights of one side of the query, and the ids it names."""
        vectors: list[np.ndarray] = []
        weights: list[float] = []
        text_values, text_weights = unweight(texts, f"{prefix}weight")
        checked = [_check_text(t, "q" if not prefix else "negative") for t in text_values]
        if checked:
            vectors.extend(self.embedder.embed_texts(checked))
            weights.extend(text_weights)
        image_values, image_weights = unweight(images, f"{prefix}weight")
        if image_values:
            pictures = []
            prep = self.embedder.image_prep
            for src in image_values:
                if isinstance(src, Image.Image):
                    pictures.append(prep_image(src, prep))
                else:
                    pictures.append(model_ready(src, max_pixels=self.max_pixels, prep=prep).image)
                    if isinstance(src, (str, Path)):
                        exclude_paths.add(Path(os.path.abspath(src)).as_posix())
            vectors.extend(self.embedder.embed_images(pictures))
            weights.extend(image_weights)
        id_values, id_weights = unweight(ids, f"{prefix}weight")
        names = [str(i) for i in id_values]
        if names:
            records = {r.id: r for r in self.store.get(names, with_vectors=True)}
            for name, weight in zip(names, id_weights, strict=True):
                rec = records.get(name)
                if rec is None or rec.vector is None:
                    raise NotFoundError(
                        f"no indexed image with id {name!r}",
                        field=f"{prefix}id" if prefix else "id",
                    )
                vectors.append(rec.vector)
                weights.append(weight)
        return vectors, weights, names


def _plain_text(query: Query) -> bool:
    return (
        len(query.texts) == 1
        and isinstance(query.texts[0], str)
        and not (query.images or query.ids or query.negative_texts)
        and not (query.negative_images or query.negative_ids)
    )


def _check_text(text: str, field_name: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise QueryError("the search text is empty", field=field_name)
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(
            f"the search text is longer than {MAX_QUERY_CHARS} characters", field=field_name
        )
    return text.strip()
