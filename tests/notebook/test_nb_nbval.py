"""The nbval recipe of docs/notebook-ci.md, applied to our own notebooks: strict ``pytest --nbval`` passes."""

from __future__ import annotations

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
    for wanted in ("01_quickstart", "02_routing_and_config", "03_plugins", "04_data_exploration"):
        assert wanted in names


def test_pytest_nbval_strict_passes_on_our_notebooks(tmp_path):
    pytest.importorskip("nbval")
    env = isolated_env(tmp_path, TTT_STREAM="0", TTT_MOCK_DELAY="0")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env",
         "--nbval-sanitize-with", str(SANITIZE), "-p", "no:cacheprovider", "-q",
         *(str(p) for p in NOTEBOOKS)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    tail = (result.stdout + result.stderr)[-4000:]
    assert result.returncode == 0, tail
    assert " passed" in result.stdout and "failed" not in result.stdout, tail


def test_recipe_footer_sanitizer_matches_only_the_time():
    import configparser
    import re

    parser = configparser.ConfigParser()
    parser.read(SANITIZE, encoding="utf-8")
    section = parser["ttt-magic footer time"]
    pattern = re.compile(section["regex"])
    replace = section["replace"]
    assert pattern.sub(replace, "<sub>mock-1 · mock · 5 in / 30 out · 41 ms</sub>") == (
        "<sub>mock-1 · mock · 5 in / 30 out · TIME</sub>")
    assert pattern.sub(replace, "<sub>gpt · cloud · 1 in / 2 out · 1.3 s · $0.0001</sub>") == (
        "<sub>gpt · cloud · 1 in / 2 out · TIME · $0.0001</sub>")
    untouched = "It took 5 ms · really"
    assert pattern.sub(replace, untouched) == untouched
