"""Labelled queries for ``lookalike eval``: a text or an image, and the files that are right.

A labels file is YAML, JSON or CSV. YAML and JSON hold a list of queries, or a
mapping with ``queries`` (and optionally ``root``)::

    root: ../data/samples          # relative paths below are relative to this folder
    queries:
      - text: green recycle symbol
        relevant: [recycle/]       # a folder: every image in it (and below) is right
      - image: recycle/recycle-01.png
        relevant: [recycle/]
      - name: the e-mark           # optional; defaults to the text or the image path
        text: estimated quantity mark ℮
        relevant: [estimated/, extra/e-mark.jpg]

CSV has the columns ``text``, ``image``, ``relevant`` (paths separated by ``;``) and
optionally ``name``. ``root`` defaults to the labels file's folder. A folder is
written with a trailing ``/`` or is an existing folder on disk.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lookalike.errors import ConfigError, NotFoundError

__all__ = ["LabelledQuery", "load_labels"]

_MAX_QUERIES = 10_000


@dataclass(frozen=True)
class LabelledQuery:
    """One query and its right answers: absolute files and folders (folders end in '/')."""

    name: str
    text: str | None
    image: str | None
    relevant: tuple[str, ...]

    def is_relevant(self, path: str) -> bool:
        return any(
            path.startswith(answer) if answer.endswith("/") else path == answer
            for answer in self.relevant
        )

    @property
    def folders(self) -> tuple[str, ...]:
        return tuple(a for a in self.relevant if a.endswith("/"))

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(a for a in self.relevant if not a.endswith("/"))


def load_labels(path: str | os.PathLike[str], *, root: str | None = None) -> list[LabelledQuery]:
    """The labelled queries in ``path`` (.yaml, .yml, .json or .csv); ``root`` overrides the
    file's own root for relative paths. ConfigError names the file and entry at fault."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise NotFoundError(f"no labels file at {file}", field="labels")
    suffix = file.suffix.lower()
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read it as UTF-8 text ({exc})", field="labels") from exc
    if suffix in (".yaml", ".yml"):
        entries, file_root = _structured(_parse_yaml(text, file), file)
    elif suffix == ".json":
        try:
            entries, file_root = _structured(json.loads(text), file)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{file}: not valid JSON ({exc})", field="labels") from exc
    elif suffix == ".csv":
        entries, file_root = list(csv.DictReader(text.splitlines())), None
    else:
        raise ConfigError(
            f"{file}: labels must be a .yaml, .yml, .json or .csv file", field="labels"
        )
    base = Path(root or file_root or file.parent).expanduser()
    if not base.is_absolute():
        base = (file.parent / base) if (root is None and file_root) else base.absolute()
    if not entries:
        raise ConfigError(f"{file}: holds no queries", field="labels")
    if len(entries) > _MAX_QUERIES:
        raise ConfigError(f"{file}: more than {_MAX_QUERIES} queries", field="labels")
    return [_query(entry, i, file, base) for i, entry in enumerate(entries, start=1)]


def _parse_yaml(text: str, file: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML ({exc})", field="labels") from exc


def _structured(data: Any, file: Path) -> tuple[list[Any], str | None]:
    if isinstance(data, list):
        return data, None
    if isinstance(data, Mapping) and isinstance(data.get("queries"), list):
        root = data.get("root")
        if root is not None and not isinstance(root, str):
            raise ConfigError(f"{file}: root must be a folder path", field="labels")
        return list(data["queries"]), root
    raise ConfigError(
        f"{file}: expected a list of queries or a mapping with 'queries'", field="labels"
    )


def _query(entry: Any, number: int, file: Path, base: Path) -> LabelledQuery:
    where = f"{file}, query {number}"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a mapping with text/image and relevant")
    text = _optional_str(entry.get("text"), where, "text")
    image = _optional_str(entry.get("image"), where, "image")
    if (text is None) == (image is None):
        raise ConfigError(f"{where}: give exactly one of 'text' and 'image'", field="labels")
    relevant = entry.get("relevant")
    if isinstance(relevant, str):
        relevant = [p for p in relevant.split(";") if p.strip()]
    if not isinstance(relevant, Sequence) or not relevant:
        raise ConfigError(f"{where}: 'relevant' must list at least one file or folder")
    answers = tuple(dict.fromkeys(_answer(str(p), base, where) for p in relevant))
    image_path = _absolute(image, base) if image is not None else None
    if image_path is not None and not os.path.isfile(image_path):
        raise NotFoundError(f"{where}: no image file at {image_path}", field="labels")
    name = _optional_str(entry.get("name"), where, "name") or text or str(image)
    return LabelledQuery(name=name, text=text, image=image_path, relevant=answers)


def _optional_str(value: Any, where: str, key: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: '{key}' must be text", field="labels")
    return value.strip()


def _absolute(path: str, base: Path) -> str:
    p = Path(path.strip()).expanduser()
    return Path(os.path.abspath(p if p.is_absolute() else base / p)).as_posix()


def _answer(path: str, base: Path, where: str) -> str:
    if not path.strip():
        raise ConfigError(f"{where}: an empty path in 'relevant'", field="labels")
    absolute = _absolute(path, base)
    is_folder = path.strip().endswith(("/", os.sep)) or os.path.isdir(absolute)
    return absolute.rstrip("/") + "/" if is_folder else absolute
