"""The nbval recipe of docs/notebook-ci.md, applied to our own notebooks: strict ``pytest --nbval`` passes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.notebook.kernel_harness import isolated_env

pytestmark = pytest.mark.kernel

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
SANITIZE = Path(__file__).with_name("nbval_sanitize.cfg")


def test_notebooks_exist():
    names = [p.stem for p in NOTEBOOKS]
    for wanted in (
        "01_quickstart",
        "02_routing_and_config",
        "03_plugins",
        "04_data_exploration",
        "05_tables",
        "06_askbox_app",
        "07_context",
    ):
        assert wanted in names
    # A notebook that replays by default ships its recording beside it.
    assert (REPO / "notebooks" / "01_quickstart.answers.jsonl").is_file()


def _nbval(tmp_path, notebooks, **env):
    """``pytest --nbval`` on copies in a fresh folder: the notebooks' cells write files next to
    themselves (02's ``ttt-example.yaml``), and concurrent runs must not meet there."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for notebook in notebooks:
        shutil.copy(notebook, folder)
        recording = notebook.with_suffix(".answers.jsonl")  # what it replays (01_quickstart)
        if recording.is_file():
            shutil.copy(recording, folder)
    data = REPO / "notebooks" / "data"  # the tables the tutorials read (05_tables)
    if data.is_dir():
        shutil.copytree(data, folder / "data")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(REPO / "pyproject.toml"),
            "--nbval",
            "--nbval-current-env",
            "--nbval-sanitize-with",
            str(SANITIZE),
            "-p",
            "no:cacheprovider",
            "-q",
            *(str(folder / p.name) for p in notebooks),
        ],
        cwd=REPO,
        env=isolated_env(tmp_path, TTT_MOCK_DELAY="0", **env),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_pytest_nbval_strict_passes_on_our_notebooks(tmp_path):
    pytest.importorskip("nbval")
    result = _nbval(tmp_path, NOTEBOOKS, TTT_STREAM="0")
    tail = (result.stdout + result.stderr)[-4000:]
    assert result.returncode == 0, tail
    assert " passed" in result.stdout and "failed" not in result.stdout, tail


def test_without_the_recipe_streamed_cells_fail(tmp_path):
    """The control: streaming on, nbval sees only the first display of each answer."""
    pytest.importorskip("nbval")
    quickstart = [p for p in NOTEBOOKS if p.stem == "01_quickstart"]
    result = _nbval(tmp_path, quickstart)
    assert result.returncode != 0
    assert "Cell outputs differ" in result.stdout + result.stderr


def test_recipe_footer_sanitizer_matches_only_the_time():
    import configparser
    import re

    parser = configparser.ConfigParser()
    parser.read(SANITIZE, encoding="utf-8")
    section = parser["ttt-magic footer time"]
    pattern = re.compile(section["regex"])  # nbval applies it with re.sub
    replace = section["replace"]
    assert pattern.sub(replace, "<sub>mock-1 · mock · 5 in / 30 out · 41 ms</sub>") == (
        "<sub>mock-1 · mock · 5 in / 30 out · TIME</sub>"
    )
    assert pattern.sub(replace, "<sub>gpt · cloud · 1 in / 2 out · 1.3 s · $0.0001</sub>") == (
        "<sub>gpt · cloud · 1 in / 2 out · TIME · $0.0001</sub>"
    )
    alone = "<div>no backend</div><sub>4 ms</sub>"
    assert pattern.sub(replace, alone) == "<div>no backend</div><sub>TIME</sub>"
    untouched = "It took 5 ms · really"
    assert pattern.sub(replace, untouched) == untouched
