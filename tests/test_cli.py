"""The command line: ``python -m ttt_magic ask|models|status|config|route``."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ttt_magic import api, plugins
from ttt_magic.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- ask


def test_ask_streams_answer_and_prints_footer_to_stderr(capsys):
    code, out, err = run(capsys, "ask", "Write a SQL query that lists users", "-b", "mock")
    assert code == 0
    assert "```sql" in out and "FROM users" in out
    assert out.endswith("\n")
    assert err.count("\n") == 1
    assert err.startswith("mock-1 · mock · ") and " tokens · " in err and err.rstrip().endswith("s")


def test_ask_no_stream_model_and_quiet(capsys):
    code, out, err = run(capsys, "ask", "hello", "-b", "mock", "-m", "mock-fast", "--no-stream", "-q")
    assert code == 0
    assert out.startswith("Hello!")
    assert err == ""


def test_ask_passes_system_temperature_and_max_tokens(capsys):
    _, plain, _ = run(capsys, "ask", "Explain recursion", "-b", "mock", "-q")
    _, pirate, _ = run(capsys, "ask", "Explain recursion", "-b", "mock", "-q", "-s", "talk like a pirate")
    assert "Arr, matey!" in pirate and "Arr" not in plain
    _, short, _ = run(capsys, "ask", "Explain recursion", "-b", "mock", "-q", "--max-tokens", "8")
    assert plain.startswith(short.strip()) and len(short) < len(plain) / 4
    variants = {
        run(capsys, "ask", "Explain recursion", "-b", "mock", "-q", "-t", str(t))[1]
        for t in (0.3, 0.5, 0.7, 0.9, 1.1, 1.3)
    }
    assert len(variants) > 1


def test_ask_prompt_from_stdin(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("one two three\n"))
    code, out, _ = run(capsys, "ask", "-", "-b", "echo")
    assert code == 0 and out == "one two three\n"


def test_ask_empty_stdin_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("  \n"))
    code, out, err = run(capsys, "ask", "-", "-b", "echo")
    assert code == 2 and out == "" and "empty" in err


def test_failed_answer_exits_1_with_error_on_stderr(capsys):
    code, out, err = run(capsys, "ask", "[fail] now", "-b", "mock")
    assert code == 1
    assert out == ""
    assert err.startswith("Error: ") and "[fail]" in err


def test_partial_answer_is_kept_when_it_fails_midway(capsys):
    code, out, err = run(capsys, "ask", "Explain recursion [fail-after-3]", "-b", "mock")
    assert code == 1
    assert out.startswith("## Recursion") and out.endswith("\n")
    assert "Error:" in err and "3 chunks" in err


def test_unknown_model_and_backend_are_usage_errors(capsys):
    code, _, err = run(capsys, "ask", "hi", "-m", "gpt-4o-mimi")
    assert code == 2 and "Unknown model" in err and "gpt-4o-mini" in err
    code, _, err = run(capsys, "ask", "hi", "-b", "mokc")
    assert code == 2 and "mock" in err


class _InterruptedStream:
    """Stands in for api.stream: two chunks, then the user presses Ctrl-C."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def __iter__(self):
        for chunk in ("partial ", "answer"):
            self.parts.append(chunk)
            yield chunk
        raise KeyboardInterrupt

    @property
    def text(self) -> str:
        return "".join(self.parts)


def test_ctrl_c_keeps_printed_text_and_exits_130(capsys, monkeypatch):
    monkeypatch.setattr(api, "stream", lambda prompt, **kw: _InterruptedStream())
    code, out, err = run(capsys, "ask", "anything", "-b", "mock")
    assert code == 130
    assert out == "partial answer\n"
    assert "Interrupted" in err


def test_no_command_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


# --------------------------------------------------------------------------- models


def test_models_lists_catalogue_with_prices(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["MODEL", "PROVIDER", "ALIASES"]
    row = next(line for line in lines if line.startswith("gpt-4o-mini "))
    assert "openai" in row and "4o-mini" in row and "128,000" in row and "0.15" in row
    assert any(line.startswith("llama3.2 ") and "local" in line for line in lines)


def test_models_of_one_provider_and_json(capsys):
    _, out, _ = run(capsys, "models", "anthropic")
    rows = out.splitlines()[1:]
    assert rows and all(" anthropic " in row for row in rows)
    code, out, _ = run(capsys, "models", "ollama", "--json")
    data = json.loads(out)
    assert code == 0 and {m["provider"] for m in data} == {"ollama"}
    assert any(m["name"] == "qwen2.5-coder" for m in data)


def test_models_unknown_provider(capsys):
    code, _, err = run(capsys, "models", "nobody")
    assert code == 2 and "Providers:" in err


# --------------------------------------------------------------------------- status / config / route


def test_status_shows_backends_and_plugins_including_failures(capsys):
    folder = Path.cwd() / "ai_plugins"
    folder.mkdir()
    (folder / "broken_one.py").write_text("def register_plugin(registry):\n    raise RuntimeError('nope')\n")
    saved = dict(plugins._state.records)
    try:
        plugins.discover_plugins()
        code, out, _ = run(capsys, "status")
        assert code == 0
        assert any(line.split()[:2] == ["mock", "ok"] for line in out.splitlines())
        local = next(line for line in out.splitlines() if line.split()[:1] == ["local"])
        assert "unavailable" in local
        assert "local: No Ollama server" in out
        assert "broken_one: failed: RuntimeError: nope (line 2)" in out
        assert "1 failed" in out

        code, out, _ = run(capsys, "status", "--json")
        data = json.loads(out)
        mock = next(b for b in data["backends"] if b["name"] == "mock")
        assert mock["available"] is True and mock["source"].startswith("plugin ")
        assert any(p["name"] == "broken_one" and p["status"] == "failed" for p in data["plugins"])
    finally:
        plugins._state.records.clear()
        plugins._state.records.update(saved)


def test_config_shows_provenance_and_masks_secrets(capsys, monkeypatch):
    secret = "sk-test-abcdefghijklmnopqrstuvwxyz123456"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    Path("ttt.yaml").write_text("timeout: 12\n")
    code, out, _ = run(capsys, "config")
    assert code == 0
    assert secret not in out
    key_line = next(line for line in out.splitlines() if line.startswith("openai_api_key"))
    assert "env OPENAI_API_KEY" in key_line
    timeout_line = next(line for line in out.splitlines() if line.startswith("timeout "))
    assert "12" in timeout_line and "ttt.yaml" in timeout_line
    code, out, _ = run(capsys, "config", "--json")
    assert secret not in out
    rows = {row["key"]: row for row in json.loads(out)}
    assert rows["timeout"]["value"] == "12.0"


def test_route_explains_without_sending(capsys):
    code, out, _ = run(capsys, "route", "hello", "-b", "mock")
    assert code == 0 and "mock" in out
    code, out, _ = run(capsys, "route", "hello", "-b", "mock", "--json")
    assert json.loads(out)["backend"] == "mock"


# --------------------------------------------------------------------------- a real process


def test_python_dash_m_runs_in_a_subprocess(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTT_")}
    env.update({"TTT_MOCK_DELAY": "0", "HOME": str(tmp_path), "PYTHONIOENCODING": "utf-8"})
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(
        [sys.executable, "-m", "ttt_magic", "ask", "hello", "-b", "mock"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Hello!")
    assert "mock-1 · mock" in done.stderr
