"""The notebooks in notebooks/ are saved with outputs that name no machine's paths.

A saved output is what every reader sees on GitHub or after cloning, so it must
not show where the notebook happened to be built (``/tmp/tmpk06zly7o/ttt.yaml``,
``/work/main/plugins/echo_backend.py``). Paths relative to the notebook or
``~/...`` are fine. Every string of every output counts, metadata included.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))

# An absolute path where builds and checkouts live: this checkout, POSIX homes and
# temporary folders, Windows drives. Not when preceded by what makes it part of a
# URL or of a longer word ("https://x.org/home/", "a/tmp/b").
_ABSOLUTE = re.compile(
    r"(?<![\w.:/~-])(?:"
    + re.escape(str(REPO))
    + r"|/(?:tmp|var|private|work|root|home|Users|mnt|opt|srv)/|[A-Za-z]:[\\/](?=\w)"
    # A relative path that climbs out of notebooks/ and the repository names this machine too.
    + r"|(?:\.\./){2,})"
)
_END = re.compile(r"[\s\"'<>()]")


def absolute_paths(text: str) -> list[str]:
    """The absolute paths in ``text``, each up to the next space, quote, bracket or tag."""
    return [m.group(0) + _END.split(text[m.end() :], maxsplit=1)[0] for m in _ABSOLUTE.finditer(text)]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def paths_in_outputs(notebook: dict[str, Any]) -> list[tuple[str, str]]:
    """(cell id, path) for every absolute path in the notebook's saved outputs."""
    hits = []
    for index, cell in enumerate(notebook.get("cells", [])):
        for output in cell.get("outputs", []):
            for text in _strings(output):
                hits += [(cell.get("id", str(index)), path) for path in absolute_paths(text)]
    return hits


# --------------------------------------------------------------------------- the detector itself


@pytest.mark.parametrize(
    "text",
    [
        "source: /tmp/tmpk06zly7o/ttt.yaml",
        '<td style="text-align: left">plugin /work/main/plugins/echo_backend.py</td>',
        "Config files: /root/.config/ttt/config.yaml.",
        "/home/ada/project/ttt.yaml",
        "/Users/ada/notebooks/ttt.yaml",
        "/var/folders/x1/T/tmpab/ttt.yaml",
        r"C:\Users\ada\ttt.yaml",
        "D:/build/plugins/echo_backend.py",
        f"File {REPO / 'notebooks' / 'x.py'}, line 3",
    ],
)
def test_an_absolute_path_is_found(text):
    assert absolute_paths(text), text


@pytest.mark.parametrize(
    "text",
    [
        "source: ttt-example.yaml",
        "plugin ../plugins/echo_backend.py",
        "~/.config/ttt/config.yaml",
        "openai_base_url  https://api.openai.com/v1  default",
        "see https://example.org/home/tmp/index.html",
        "the ratio 3/4 and a/tmp/b",
        "mock-1 · mock · 5 in / 30 out · 41 ms",
        "{'a': 1}: x",
    ],
)
def test_relative_paths_urls_and_prose_are_not(text):
    assert absolute_paths(text) == []


def test_a_path_in_any_part_of_an_output_counts():
    notebook = {
        "cells": [
            {"id": "a", "outputs": [{"output_type": "stream", "text": ["ok\n", "at /tmp/x/y.py\n"]}]},
            {"id": "b", "outputs": [{"data": {"text/html": "<b>ok</b>"}, "metadata": {"src": "/home/u/f"}}]},
            {"id": "c", "outputs": [{"output_type": "error", "traceback": [r"E:\work\nb.py"]}]},
            {"id": "d", "source": "open('/tmp/in/source/is/fine')", "outputs": []},
        ]
    }
    assert paths_in_outputs(notebook) == [("a", "/tmp/x/y.py"), ("b", "/home/u/f"), ("c", r"E:\work\nb.py")]


# --------------------------------------------------------------------------- the notebooks


TUTORIALS = ("01_quickstart", "02_routing_and_config", "03_plugins", "04_data_exploration")


def test_the_tutorials_are_here_saved_with_outputs():
    by_name = {p.stem: p for p in NOTEBOOKS}
    for name in TUTORIALS:
        cells = json.loads(by_name[name].read_text(encoding="utf-8"))["cells"]
        assert any(cell.get("outputs") for cell in cells), f"{name} is saved without outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_saved_outputs_name_no_absolute_path(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    assert paths_in_outputs(notebook) == []
