"""Find image files under a folder: fast, deterministic, and never stopped by a bad entry.

The walk uses ``os.scandir`` and reuses each entry's cached type, so an unchanged
tree costs one ``stat`` per image. Symbolic links to files and folders are
followed; every real folder is entered once (tracked by device and inode), so a
link loop cannot hang the scan. Anything that goes wrong with one entry (broken
link, permission denied, a file deleted mid-scan, a name that is not UTF-8) is
reported through ``on_problem`` and the walk goes on.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lookalike.errors import NotFoundError
from lookalike.images import IMAGE_EXTENSIONS, is_image_name

__all__ = ["JUNK_DIRS", "ScanProblem", "ScannedFile", "scan"]

#: folders that only ever hold thumbnails or trash written by NAS boxes, archivers and Windows
JUNK_DIRS = frozenset({"@eaDir", "__MACOSX", "$RECYCLE.BIN", "System Volume Information"})


@dataclass(frozen=True, slots=True)
class ScannedFile:
    path: str  # absolute POSIX path, symlinks not resolved
    root: str  # the absolute folder scanned
    relpath: str  # POSIX, relative to root
    size: int
    mtime: float


@dataclass(frozen=True, slots=True)
class ScanProblem:
    path: str
    reason: str


def scan(
    root: str | os.PathLike[str], *, on_problem: Callable[[ScanProblem], None] | None = None
) -> Iterator[ScannedFile]:
    """Yield image files under ``root``, sorted by name within each folder, depth first.

    A ``root`` that is a file yields just that file (whatever its name; the decoder judges
    its content), with its folder as ``root``. Raises NotFoundError when ``root`` does not exist.
    """
    top = os.path.abspath(os.fspath(root))
    report = on_problem or _ignore
    try:
        st = os.stat(top)
    except FileNotFoundError:
        kind = "is a broken symbolic link" if os.path.islink(top) else "does not exist"
        raise NotFoundError(
            f"{_posix(top)} {kind}; give an existing folder or image file", field="path"
        ) from None
    except OSError as exc:
        report(
            ScanProblem(
                _posix(top), f"cannot be read ({exc.strerror or exc}); check its permissions"
            )
        )
        return
    if stat.S_ISREG(st.st_mode):
        parent, name = os.path.split(top)
        yield ScannedFile(_posix(top), _posix(parent), name, st.st_size, st.st_mtime)
        return
    if not stat.S_ISDIR(st.st_mode):
        report(ScanProblem(_posix(top), "is not a regular file or a folder; skipped"))
        return
    yield from _walk(top, (st.st_dev, st.st_ino), report)


def _walk(
    top: str, top_id: tuple[int, int], report: Callable[[ScanProblem], None]
) -> Iterator[ScannedFile]:
    root = _posix(top)
    visited = {top_id}
    # a stack of (folder path, relative prefix, entries still to visit in reverse name order)
    stack = [(top, "", _list(top, report))]
    while stack:
        folder, prefix, entries = stack[-1]
        if not entries:
            stack.pop()
            continue
        entry = entries.pop()
        name = entry.name
        if name.startswith(".") or name in JUNK_DIRS:
            continue  # hidden files and folders, .DS_Store, AppleDouble ._* files
        path = entry.path
        if not _utf8(name):
            report(ScanProblem(_posix(path), "its name is not valid UTF-8; rename it to index it"))
            continue
        try:
            is_dir = entry.is_dir()  # follows symlinks
            is_file = not is_dir and entry.is_file()
        except OSError as exc:
            report(ScanProblem(_posix(path), f"cannot be read ({exc.strerror or exc})"))
            continue
        if is_dir:
            try:
                st = entry.stat()
            except OSError as exc:
                report(ScanProblem(_posix(path), _stat_reason(exc)))
                continue
            key = (st.st_dev, st.st_ino)
            if key in visited:
                report(
                    ScanProblem(
                        _posix(path), "links to a folder already scanned (a symlink loop?); skipped"
                    )
                )
                continue
            visited.add(key)
            stack.append((path, f"{prefix}{name}/", _list(path, report)))
        elif is_file:
            dot = name.rfind(".")
            if dot <= 0 or name[dot:].lower() not in IMAGE_EXTENSIONS:  # is_image_name, inlined
                continue
            try:
                st = entry.stat()
            except OSError as exc:
                report(ScanProblem(_posix(path), _stat_reason(exc)))
                continue
            yield ScannedFile(_posix(path), root, prefix + name, st.st_size, st.st_mtime)
        elif _is_symlink(entry):
            if is_image_name(name) or "." not in name:  # an image, or likely a folder
                report(
                    ScanProblem(_posix(path), "is a broken symbolic link (its target is missing)")
                )
        elif is_image_name(name):
            report(
                ScanProblem(
                    _posix(path), "is not a regular file (a pipe, socket or device); skipped"
                )
            )


def _list(folder: str, report: Callable[[ScanProblem], None]) -> list[os.DirEntry[str]]:
    """The folder's entries in reverse name order (popped from the end, so visited in order)."""
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except FileNotFoundError:
        report(ScanProblem(_posix(folder), "vanished during the scan"))
        return []
    except OSError as exc:
        reason = exc.strerror or str(exc)
        report(ScanProblem(_posix(folder), f"cannot be listed ({reason}); check its permissions"))
        return []
    entries.sort(key=lambda e: e.name, reverse=True)
    return entries


def _stat_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "vanished during the scan"
    return f"cannot be read ({exc.strerror or exc}); check its permissions"


def _is_symlink(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_symlink()
    except OSError:
        return False


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes come back as lone surrogates
        return False
    return True


def _posix(path: str) -> str:
    return path if os.sep == "/" else Path(path).as_posix()


def _ignore(_problem: ScanProblem) -> None:
    return None
