"""Every Python block of docs/extensibility.md runs as written (offline, loopback only)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "extensibility.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture(autouse=True)
def providers_on_a_dead_port(monkeypatch):
    """Any provider call a block makes fails fast on loopback instead of leaving the machine."""
    for var, url in (
        ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
        ("ANTHROPIC_BASE_URL", "http://127.0.0.1:9"),
        ("GEMINI_BASE_URL", "http://127.0.0.1:9"),
        ("OPENROUTER_BASE_URL", "http://127.0.0.1:9"),
    ):
        monkeypatch.setenv(var, url)


def test_the_guide_has_examples():
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_block_runs(index, tmp_path, capsys):
    code = BLOCKS[index]
    if "def test_" in code:  # a pytest example: run it with pytest
        path = tmp_path / "test_example.py"
        path.write_text(code)
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "3 passed" in result.stdout
        return
    namespace: dict = {"__name__": f"doc_block_{index}"}
    exec(compile(code, f"{DOC.name}[block {index}]", "exec"), namespace)
    out = capsys.readouterr().out
    for expected in re.findall(r"#\s+([^\n]*?)\s*$", code, flags=re.M):
        # trailing comments of print lines state the output; check the literal parts of them
        if expected.startswith(("loaded", "desserts", "world hello", "True upstream", "60.0 from")):
            assert expected.split(" ...")[0] in out, (expected, out)
