"""``lookalike eval``: search quality on your own labelled queries, one or two collections."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from lookalike.cli.app import cli
from lookalike.cli.options import emit_json, settings_options
from lookalike.config import Settings
from lookalike.errors import QueryError

if TYPE_CHECKING:
    from lookalike.evaluation import EvalReport

__all__ = ["evaluate_command", "print_eval"]


def _thresholds(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(t) for t in text.replace(" ", "").split(",") if t)
    except ValueError:
        raise QueryError(
            f"cannot read thresholds {text!r}; write e.g. 0.2,0.25,0.3", field="thresholds"
        ) from None
    if not values or not all(-1.0 <= v <= 1.0 for v in values):
        raise QueryError("thresholds must be numbers between -1 and 1", field="thresholds")
    return values


@cli.command("eval")
@click.argument("labels", type=click.Path(dir_okay=False))
@click.option("-k", "--k", "k", type=int, default=10, show_default=True, help="Cut-off rank.")
@click.option(
    "--depth", type=int, default=100, show_default=True, help="How far to look for misses."
)
@click.option("--root", help="Folder the labels' relative paths start from [default: theirs].")
@click.option("--thresholds", help="Fixed score cuts to compare, e.g. 0.2,0.25,0.3.")
@click.option("--compare", "compare", help="Another collection to evaluate side by side.")
@click.option("--compare-model", help="Image model of the other collection [default: the same].")
@click.option("--compare-text-model", help="Text model of the other collection.")
@settings_options
def evaluate_command(
    labels: str,
    k: int,
    depth: int,
    root: str | None,
    thresholds: str | None,
    compare: str | None,
    compare_model: str | None,
    compare_text_model: str | None,
    as_json: bool,
    settings: Settings,
) -> None:
    """Measure recall@k, precision@k, MRR and nDCG@10 on LABELS (YAML, JSON or CSV).

    Each query names its right answers (files or folders); see docs/evaluation.md.
    """
    from lookalike.evaluation import DEFAULT_THRESHOLDS
    from lookalike.labels import load_labels

    queries = load_labels(labels, root=root)
    cuts = _thresholds(thresholds) or DEFAULT_THRESHOLDS
    runs = [(settings.collection, settings)]
    if compare:
        other = settings.with_overrides(collection=compare)
        if compare_model:
            other = other.with_overrides(image_model=compare_model)
        if compare_text_model:
            other = other.with_overrides(text_model=compare_text_model)
        runs.append((compare, other))
    reports = [(name, _run(s, queries, k, depth, cuts)) for name, s in runs]
    if as_json:
        emit_json({name: report.to_dict() for name, report in reports})
        return
    print_eval(reports)


def _run(settings: Settings, queries: Any, k: int, depth: int, cuts: Any) -> EvalReport:
    from lookalike.collection import open_collection
    from lookalike.evaluation import evaluate

    with open_collection(settings) as col:
        return evaluate(col.searcher, col.store, queries, k=k, depth=depth, thresholds=cuts)


def print_eval(reports: list[tuple[str, EvalReport]]) -> None:
    """Per-query table (one column group per collection), overall means, cuts and misses."""
    names = [name for name, _ in reports]
    first = reports[0][1]
    metrics = list(first.overall)
    width = max([len(q.name) for q in first.queries] + [len("overall")])
    width = min(width, 48)
    head = "".join(f"  {m:>13}" for m in metrics)
    for name, report in reports:
        click.echo(f"== {name}: {len(report.queries)} queries, k={report.k}")
        click.echo(f"{'query':<{width}}  {'answers':>7}{head}")
        for q in report.queries:
            values = (q.recall, q.precision, q.reciprocal_rank, q.ndcg)
            row = "".join(f"  {v:>13.3f}" for v in values)
            click.echo(f"{q.name[:width]:<{width}}  {q.relevant:>7}{row}")
        overall = "".join(f"  {v:>13.3f}" for v in report.overall.values())
        click.echo(f"{'overall':<{width}}  {'':>7}{overall}")
        click.echo("cuts (mean over queries):  precision  recall     f1   kept")
        for c in report.cuts:
            click.echo(
                f"  {c.name:<22} {c.precision:>10.3f} {c.recall:>7.3f} {c.f1:>6.3f} {c.kept:>6.1f}"
            )
        for q in report.queries:
            if q.misses:
                shown = ", ".join(
                    f"{p} (rank {q.miss_ranks[p]})"
                    if p in q.miss_ranks
                    else f"{p} (not in the top {report.depth})"
                    for p in q.misses[:10]
                )
                more = f" and {len(q.misses) - 10} more" if len(q.misses) > 10 else ""
                click.echo(f"misses of {q.name!r}: {shown}{more}")
    if len(reports) == 2:
        a, b = reports[0][1].overall, reports[1][1].overall
        click.echo(f"== {names[1]} against {names[0]}")
        for metric in metrics:
            click.echo(
                f"  {metric:<14} {a[metric]:.3f} -> {b[metric]:.3f} ({b[metric] - a[metric]:+.3f})"
            )
