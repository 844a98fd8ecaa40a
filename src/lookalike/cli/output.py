"""Human-readable output of the CLI: progress bars, tables, summaries."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click

from lookalike.presets import DEFAULT_PRESET, Preset
from lookalike.sizing import SizingReport, human_bytes

if TYPE_CHECKING:  # the indexer and tqdm load only for ``index`` (a cold query skips them)
    from tqdm import tqdm

    from lookalike.indexer import IndexProgress, IndexReport
    from lookalike.models.base import ModelStatus
    from lookalike.records import Hit

MAX_SKIPPED_SHOWN = 50

_PHASES = {
    "scan": "scanning",
    "check": "checking",
    "embed": "embedding",
    "remove": "removing",
    "reindex": "re-embedding",
}


class IndexProgressBar:
    """One tqdm bar per phase (count, rate and ETA), on stderr; a line while the model loads."""

    def __init__(self, *, disable: bool = False, model: str = "") -> None:
        self.disable = disable
        self.model = model
        self._bar: tqdm[Any] | None = None
        self._key: tuple[str, str] | None = None
        self._loading: float | None = None  # when the model started loading
        self._said = False

    def update(self, event: IndexProgress) -> None:
        if self.disable:
            return
        if event.phase == "load":
            self._load(event)
            return
        key = (event.phase, event.root)
        if key != self._key:
            self._close()
            self._key = key
            unit = "files" if event.phase in ("scan", "check") else "img"
            from tqdm import tqdm

            self._bar = tqdm(
                total=event.total,
                desc=_PHASES.get(event.phase, event.phase),
                unit=unit,
                dynamic_ncols=True,
                leave=event.phase == "embed",
                mininterval=0.5,
            )
        assert self._bar is not None
        if event.total is not None and self._bar.total != event.total:
            self._bar.total = event.total
        self._bar.update(event.done - self._bar.n)

    def _load(self, event: IndexProgress) -> None:
        """Say what the wait is for (loading a model takes seconds before the first image)."""
        if self._said:  # once per run: later loads of the same model are instant
            return
        if event.done == 0:
            self._close()
            self._key = None
            self._loading = time.perf_counter()
            name = f" {self.model}" if self.model else ""
            click.echo(f"loading the image model{name} ...", err=True)
        elif self._loading is not None:
            seconds = time.perf_counter() - self._loading
            click.echo(f"image model loaded in {seconds:.1f} s", err=True)
            self._said = True

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> IndexProgressBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._close()


def print_index_report(report: IndexReport) -> None:
    # The rate of the decode-and-embed phase; the total time below includes the rest.
    rate = f" ({report.images_per_second:.1f} images/s embedding)" if report.indexed else ""
    click.echo(
        f"indexed {report.indexed}{rate}, reused {report.reused}, updated {report.updated}, "
        f"unchanged {report.unchanged}, removed {report.removed}, skipped {len(report.skipped)} "
        f"in {report.seconds:.1f} s"
    )
    for skipped in report.skipped[:MAX_SKIPPED_SHOWN]:
        click.echo(f"  skipped {skipped.path}: {skipped.reason}")
    extra = len(report.skipped) - MAX_SKIPPED_SHOWN
    if extra > 0:
        click.echo(f"  ... and {extra} more (use --json for the full list)")


def print_hits(hits: list[Hit], offset: int = 0) -> None:
    if not hits:
        click.echo("no results", err=True)
        return
    for rank, hit in enumerate(hits, start=offset + 1):
        where = ""
        if hit.region is not None:
            x0, y0, x1, y1 = hit.region
            where = f"  region {x0:.2f},{y0:.2f}-{x1:.2f},{y1:.2f}"
        click.echo(f"{rank:>4}  {hit.score:6.3f}  {hit.path}  [{hit.id}]{where}")


def print_sizing(report: SizingReport) -> None:
    rows: list[tuple[str, str]] = [
        ("collection", f"{report.collection} ({report.backend})"),
        ("model", report.model_id or "(none yet)"),
        ("documents", f"{report.documents:,}"),
        ("dimensions", str(report.dimensions)),
        ("image bytes", human_bytes(report.image_bytes)),
        ("index bytes on disk", human_bytes(report.index_bytes)),
        ("bytes per document", _num(report.bytes_per_document)),
        ("bytes per dimension", _num(report.bytes_per_dimension, 2)),
    ]
    for n, size in report.projections.items():
        rows.append((f"projected index, {n:,} images", human_bytes(size)))
    rows += _search_rows(report.details.get("search") or {})
    rows += _region_rows(report.details.get("regions") or {}, report.documents)
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")
    click.echo(f"({report.projection_basis})")
    for note in report.details.get("notes") or ():  # what a backend wants a reader to know
        click.echo(f"note: {note}")


def _search_rows(search: dict[str, Any]) -> list[tuple[str, str]]:
    """The search structure, its RAM and disk per dimension, and both at 10M and 100M."""
    if not search:
        return []
    ram, disk = search["ram_bytes"], search["disk_bytes"]
    rows = [
        ("search structure", str(search["structure"])),
        ("search RAM", f"{human_bytes(ram)} ({_num(search['ram_bytes_per_dim'], 3)} B/dim)"),
        (
            "disk, everything",
            f"{human_bytes(disk)} ({_num(search['disk_bytes_per_dim'], 2)} B/dim)",
        ),
    ]
    for n, scale in search["scale"].items():
        rows.append(
            (
                f"at {int(n):,} images",
                f"search RAM {human_bytes(scale['ram_bytes'])}, disk "
                f"{human_bytes(scale['disk_bytes'])}",
            )
        )
    rows.append(
        (
            "per dimension at scale",
            f"RAM {_num(search['scale_ram_bytes_per_dim'], 3)} B, disk "
            f"{_num(search['scale_disk_bytes_per_dim'], 2)} B ({search['scale_basis']})",
        )
    )
    return rows


def _region_rows(regions: dict[str, Any], documents: int) -> list[tuple[str, str]]:
    """What ``index --regions`` costs in this collection (nothing when it is off)."""
    if not regions.get("grids"):
        return []
    grids = " and ".join(f"{g}x{g}" for g in regions["grids"])
    tiled = int(regions["documents_with_regions"])
    per_tiled = regions["region_vectors"] / tiled if tiled else 0.0
    ratio = regions.get("embed_time_ratio")
    per_doc = max(documents, 1)
    return [
        ("regions", f"{grids} grids, images with a short side >= {regions['min_side']} px"),
        ("images with regions", f"{tiled:,} of {documents:,} ({per_tiled:.1f} tiles each)"),
        ("vectors per image", f"{regions['vectors_per_image']:.2f} (1 whole + tiles)"),
        (
            "region bytes per image",
            f"{_num(regions['region_db_bytes'] / per_doc)} on disk, "
            f"{_num(regions['region_ram_bytes'] / per_doc)} in memory (int8); the whole "
            f"vector: {_num(regions['whole_ram_bytes'] / per_doc)}",
        ),
        ("embedding time ratio", "-" if ratio is None else f"{ratio:.2f}x whole images only"),
    ]


def print_models(statuses: list[ModelStatus]) -> None:
    for s in statuses:
        state = (
            "loads"
            if s.loads
            else ("available" if s.available and s.loads is None else "NOT AVAILABLE")
        )
        if s.available and s.loads is False:
            state = "FAILS TO LOAD"
        click.echo(f"{s.role:<6} {s.name}")
        click.echo(f"       weights: {s.location or '(not found)'}")
        click.echo(f"       runtime: {s.runtime}; {state}")
        if s.detail:
            click.echo(f"       {s.detail}")


def print_presets(presets: list[Preset]) -> None:
    """``lookalike models --available``: one block per preset."""
    for p in presets:
        marks = (
            ("default", p.name == DEFAULT_PRESET),
            ("multilingual", p.multilingual),
            ("NON-COMMERCIAL LICENCE", p.research_only),
            ("not loadable here: open_clip only", not p.loadable),
        )
        flags = [flag for flag, on in marks if on]
        click.echo(f"{p.name:<18} {p.title}" + (f"  [{', '.join(flags)}]" if flags else ""))
        text = "its own text tower" if p.text_model == "clip" else p.text_model
        click.echo(f"    image: {p.image_model}; text: {text}")
        click.echo(f"    {p.library}; {p.dim}-d; {p.image_size} px: {p.preprocessing}")
        click.echo(f"    text: {p.text}")
        click.echo(f"    licence: {p.licence}")
        quality = ", ".join(f"{k} {v}" for k, v in p.quality.items()) or "-"
        click.echo(f"    quality: {quality} ({p.quality_source})")
        if p.notes:
            click.echo(f"    note: {p.notes}")


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"
