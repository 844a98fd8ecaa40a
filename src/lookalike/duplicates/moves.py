"""Move chosen copies out of the way, never delete them: plan first (a dry run), then apply.

A copy is moved under the folder the user names, at its own absolute path below it
(``/photos/a/x.jpg`` goes to ``DEST/photos/a/x.jpg``), so no two copies collide and
every move can be undone by moving the file back. Nothing is overwritten: a target
that exists already is reported and its copy left where it is.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lookalike.duplicates.find import DuplicateGroup
from lookalike.errors import QueryError

__all__ = ["Move", "MovePlan", "apply_moves", "plan_moves"]


@dataclass
class Move:
    source: str
    target: str
    size: int
    status: str = "planned"  # planned, moved, or skipped: <why>

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "size": self.size,
            "status": self.status,
        }


@dataclass
class MovePlan:
    destination: str
    moves: list[Move]

    @property
    def bytes(self) -> int:
        return sum(m.size for m in self.moves)

    def to_dict(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "count": len(self.moves),
            "bytes": self.bytes,
            "moves": [m.to_dict() for m in self.moves],
        }


def plan_moves(groups: list[DuplicateGroup], destination: str | os.PathLike[str]) -> MovePlan:
    """Every copy but each group's best, to be moved under ``destination``; touches nothing."""
    dest = Path(os.path.abspath(os.fspath(destination)))
    moves: list[Move] = []
    seen: set[str] = set()
    for group in groups:
        for member in group.others:
            if member.path in seen:
                continue
            seen.add(member.path)
            source = Path(member.path)
            if dest == source or dest in source.parents:
                raise QueryError(
                    f"{member.path} is inside {dest}; choose a destination outside the collection",
                    field="move_to",
                )
            target = dest / source.relative_to(source.anchor)
            moves.append(Move(member.path, target.as_posix(), member.size))
    return MovePlan(dest.as_posix(), moves)


def apply_moves(plan: MovePlan) -> MovePlan:
    """Carry the plan out, move by move; a move that cannot be made is skipped with the reason."""
    for move in plan.moves:
        move.status = _move(move)
    return plan


def _move(move: Move) -> str:
    source, target = Path(move.source), Path(move.target)
    try:
        size = source.stat().st_size
    except OSError as exc:
        return f"skipped: cannot read the source ({exc.strerror or exc})"
    if size != move.size:
        return "skipped: the file changed since it was indexed; run duplicates again"
    if target.exists() or target.is_symlink():
        return "skipped: the target exists already (nothing is overwritten)"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, target)
    except OSError as exc:
        return f"skipped: {exc.strerror or exc}"
    return "moved"
