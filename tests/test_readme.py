"""Every Python and shell block of the README runs as written (as sqlite-utils' doc tests do).

The blocks run in README order in real subprocesses against a temporary HOME whose
``~/Pictures`` is a small generated folder, with ``LOOKALIKE_HOME`` inside it and the tiny
random models as ``LOOKALIKE_MODEL`` / ``LOOKALIKE_TEXT_MODEL`` (pretrained weights cannot
be had here). The Python block is saved as a script and run, so its ``__main__`` guard and
``~`` expansion are exercised as a reader would. Two principled substitutions only:

* the environment above (nothing in the blocks' text changes for it);
* ``PLACEHOLDERS``: example values that cannot exist on another machine (an image id)
  are replaced by the real value from the generated collection.

A block the test cannot run is marked in the README itself, on the line above it, with
``<!-- readme-test: skip (reason) -->``, so a reader of the source sees why.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from lookalike.collection import Collection
from lookalike.config import Settings
from support.families import write_families

README = Path(__file__).resolve().parents[1] / "README.md"
SKIP = re.compile(r"^<!-- readme-test: skip \((?P<reason>.+)\) -->$")
RUNNABLE = {"bash": "shell", "sh": "shell", "shell": "shell", "python": "python"}
#: README example values -> the generated collection's file whose id replaces them
PLACEHOLDERS = {"3f2a9c0e41b7d5e6a8c1": "Pictures/cat.jpg"}


@dataclass
class Block:
    line: int
    lang: str
    code: str
    skip: str | None


def readme_blocks() -> list[Block]:
    blocks: list[Block] = []
    lines = README.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        end = lines.index("```", i + 1)
        above = lines[i - 1] if i else ""
        skip = SKIP.match(above)
        blocks.append(
            Block(i + 1, m.group(1), "\n".join(lines[i + 1 : end]), skip and skip["reason"])
        )
        i = end + 1
    return blocks


@pytest.fixture(scope="module")
def home(
    tmp_path_factory: pytest.TempPathFactory, tiny_clip_dir: Path, tiny_multilingual_dir: Path
) -> dict[str, str]:
    """A temporary HOME with ~/Pictures (JPEG and PNG, cat.jpg and dog.jpg among them)."""
    home = tmp_path_factory.mktemp("readme-home")
    pictures = home / "Pictures"
    for fam in write_families(pictures / "shapes", 3):
        for path in fam.values():
            with Image.open(path) as im:
                im.convert("RGB").save(path.with_suffix(".jpg"), "JPEG", quality=90)
    for name, src in (("cat.jpg", "shapes/fam0/orig.jpg"), ("dog.jpg", "shapes/fam1/orig.jpg")):
        (pictures / name).write_bytes((pictures / src).read_bytes())
    env = {
        **os.environ,
        "HOME": str(home),
        "LOOKALIKE_HOME": str(home / "lookalike-data"),
        "LOOKALIKE_MODEL": str(tiny_clip_dir),
        "LOOKALIKE_TEXT_MODEL": str(tiny_multilingual_dir),
        "HF_HUB_OFFLINE": "1",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    for name in ("LOOKALIKE_COLLECTION", "LOOKALIKE_STORE", "ES_HOST"):
        env.pop(name, None)
    return env


def substitutions(env: dict[str, str]) -> dict[str, str]:
    settings = Settings(
        home=Path(env["LOOKALIKE_HOME"]),
        image_model=env["LOOKALIKE_MODEL"],
        text_model=env["LOOKALIKE_TEXT_MODEL"],
    )
    with Collection(settings) as col:  # the default collection, as the README's commands use
        col.indexer.index([Path(env["HOME"]) / "Pictures"])
        hits = col.searcher.text("x", k=100)
    by_path = {h.path: h.id for h in hits}
    return {key: by_path[(Path(env["HOME"]) / rel).as_posix()] for key, rel in PLACEHOLDERS.items()}


def test_readme_blocks_are_marked_or_runnable() -> None:
    blocks = [b for b in readme_blocks() if b.lang in RUNNABLE]
    assert sum(b.lang == "python" and not b.skip for b in blocks) >= 1
    assert sum(b.lang == "bash" and not b.skip for b in blocks) >= 2
    for block in blocks:
        assert block.skip is None or len(block.skip) > 20, block  # a skip says why


@pytest.mark.slow
def test_every_readme_block_runs(home: dict[str, str], tmp_path: Path) -> None:
    values = substitutions(home)
    ran = 0
    for block in readme_blocks():
        kind = RUNNABLE.get(block.lang)
        if kind is None or block.skip:
            continue
        code = block.code
        for key, value in values.items():
            code = code.replace(key, value)
        if kind == "python":
            script = tmp_path / f"readme_line_{block.line}.py"
            script.write_text(code + "\n", encoding="utf-8")
            command = [sys.executable, str(script)]
        else:
            command = ["bash", "-e", "-o", "pipefail", "-c", code]
        result = subprocess.run(
            command,
            cwd=tmp_path,
            env=home,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, f"README line {block.line}:\n{code}\n{result.stderr[-3000:]}"
        ran += 1
        if kind == "python":
            assert "indexed" in result.stdout and "similar:" in result.stdout, result.stdout
    assert ran >= 3
    assert (tmp_path / "results.csv").read_text().startswith("rank,score,path,id")
