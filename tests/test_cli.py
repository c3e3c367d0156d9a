"""The command line: ``python -m ttt_magic ask|ask-many|models|status|config|route|cache``."""

from __future__ import annotations

import io
import json
import os
import re
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
    assert re.fullmatch(r"mock-1 · mock · \d+ in / \d+ out · \d+(\.\d)? m?s\n", err)  # the notebook's footer


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


# --------------------------------------------------------------------------- bad input (issue #11)


def one_line(err):
    """The single message line of a failed command (checked to be exactly one)."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_route_with_no_available_backend_exits_1_and_says_so(capsys):
    code, out, err = run(capsys, "route", "hello")
    assert code == 1
    assert "no backend available" in out
    assert one_line(err).startswith("Error: No backend is available.")
    code, out, err = run(capsys, "route", "hello", "--json")
    data = json.loads(out)
    assert code == 1 and data["available"] is False and data["backend"] is None
    assert one_line(err).startswith("Error: No backend is available.")


def test_route_to_an_unavailable_backend_says_so_and_exits_1(capsys):
    code, out, err = run(capsys, "route", "hello", "-m", "fast")
    assert code == 1
    assert "backend=cloud" in out and "unavailable: cloud - No cloud API key" in out
    assert "unavailable: local - No Ollama server" in out
    message = one_line(err)
    assert message.startswith("Error: Backend 'cloud' is unavailable: No cloud API key")
    assert "fallbacks ('local') are unavailable too" in message
    code, out, _ = run(capsys, "route", "hello", "-m", "fast", "--json")
    data = json.loads(out)
    assert code == 1 and data["available"] is False
    assert [u["backend"] for u in data["unavailable"]] == ["cloud", "local"]
    code, out, err = run(capsys, "route", "hello", "-b", "local")  # pinned: no fallbacks
    assert code == 1 and "Backend 'local' is unavailable" in one_line(err)


def test_route_whose_fallback_can_answer_exits_0_and_names_it(capsys):
    from ttt_magic import configure

    configure(fallback_order=["local", "mock"])
    code, out, err = run(capsys, "route", "hello", "-m", "fast")
    assert code == 0 and err == ""
    assert "unavailable: cloud" in out and "the answer would come from the fallback 'mock'" in out


@pytest.mark.parametrize("command", ["ask", "route"])
@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_empty_prompt_is_refused_before_anything_is_sent(capsys, monkeypatch, command, prompt):
    def never(*args, **kwargs):
        raise AssertionError("an empty prompt was sent")

    for name in ("ask", "stream", "route"):
        monkeypatch.setattr(api, name, never)
    code, out, err = run(capsys, command, prompt, "-b", "mock")
    assert code == 2 and out == ""
    assert one_line(err) == (
        'Error: The prompt is empty: give the question as PROMPT, or "-" to read it from standard input'
        " (nothing was sent)."
    )


def test_unknown_model_hint_names_the_cli_command(capsys):
    code, _, err = run(capsys, "ask", "hi", "-m", "zzqxv-unheard-of")
    message = one_line(err)
    assert code == 2 and "Unknown model 'zzqxv-unheard-of'" in message
    assert "`python -m ttt_magic models`" in message and "%ttt_models" not in message
    assert "list_models()" not in message
    code, _, err = run(capsys, "route", "hi", "-m", "gpt-4o-mimi")
    message = one_line(err)
    assert code == 2 and "Did you mean 'gpt-4o-mini'" in message and "python -m ttt_magic models" in message


def test_failed_answer_hints_are_put_in_cli_words(capsys, monkeypatch):
    from ttt_magic.models import AIResponse

    notebook_hint = "List models with `ttt_magic.model_registry.list_models()` or `%ttt_models`."
    failed = AIResponse(
        "", model="m", backend="mock", error=f"mock has no model 'm' (HTTP 404).\n{notebook_hint}"
    )
    monkeypatch.setattr(api, "ask", lambda prompt, **kw: failed)
    code, _, err = run(capsys, "ask", "hi", "-b", "mock", "--no-stream")
    message = one_line(err)
    assert code == 1 and "List models with `python -m ttt_magic models`." in message
    assert "%ttt_models" not in message


def test_status_and_config_show_non_utf8_paths_as_escapes(capsys, monkeypatch, tmp_path):
    folder = tmp_path / os.fsdecode(b"caf\xe9")
    folder.mkdir()
    (folder / "ttt.yaml").write_text("timeout: 4\n")
    monkeypatch.setenv("TTT_CONFIG", str(folder / "ttt.yaml"))
    shown = f"{tmp_path}/caf\\xe9/ttt.yaml"
    code, out, _ = run(capsys, "status", "--json")
    assert code == 0 and "udce9" not in out
    assert json.loads(out)["config_files"] == [shown]
    for argv in (["status"], ["config"]):
        code, out, _ = run(capsys, *argv)
        assert code == 0 and f"Config files: {shown}" in out and "\udce9" not in out
    code, out, _ = run(capsys, "config", "--json")
    assert {row["source"] for row in json.loads(out) if row["key"] == "timeout"} == {shown}
    monkeypatch.setenv("TTT_CONFIG", str(folder / "gone.yaml"))
    code, out, err = run(capsys, "status", "--json")
    assert code == 2 and out == "" and "caf\\xe9/gone.yaml, which does not exist" in one_line(err)


def test_stream_error_handler_writes_undecodable_bytes_as_escapes():
    from ttt_magic.cli import _STREAM_ERRORS

    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii", errors=_STREAM_ERRORS)
    stream.write("a" + os.fsdecode(b"\xff") + "·b")
    stream.flush()
    assert raw.getvalue() == b"a\\xff?b"


def test_argparse_complaints_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["ask"])
    assert exc.value.code == 2
    _, err = capsys.readouterr()
    assert (
        one_line(err)
        == "Error: the following arguments are required: PROMPT. See `python -m ttt_magic ask --help`."
    )
    with pytest.raises(SystemExit):
        main(["ask", "hi", "-t", "warm"])
    assert "invalid float value: 'warm'" in one_line(capsys.readouterr().err)


def test_keys_with_whitespace_from_the_environment(capsys, monkeypatch):
    secret = "sk-test-abcdefghijklmnopqrstuvwxyz123456"
    monkeypatch.setenv("OPENAI_API_KEY", secret + "\n")
    code, out, _ = run(capsys, "config", "--json")
    assert code == 0 and secret not in out
    assert {r["value"] for r in json.loads(out) if r["key"] == "openai_api_key"} == {"sk-…3456"}
    monkeypatch.setenv("OPENAI_API_KEY", secret[:20] + " " + secret[20:])
    for argv in (["config"], ["status"], ["ask", "hi", "-b", "mock"], ["route", "hi"]):
        code, out, err = run(capsys, *argv)
        message = one_line(err)
        assert code == 2 and "Environment variable OPENAI_API_KEY: the key has a space inside it" in message
        assert secret[:20] not in message + out and secret[20:] not in message + out


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ({"TTT_TIMEOUT": "nan"}, "Environment variable TTT_TIMEOUT: expected a finite number, not nan."),
        ({"TTT_CONFIG": "/no/such/file.yaml"}, "TTT_CONFIG names the config file /no/such/file.yaml"),
        ({"file": b"\xff\xfe bad: \x80\n"}, "is not UTF-8 text (byte 0xff at offset 0, line 1)"),
        ({"file": b"timeout: .nan\n"}, "line 1: timeout: expected a finite number, not nan"),
        ({"file": b"default_backend: 42\n"}, "default_backend: expected a backend name (a string)"),
    ],
)
def test_bad_configuration_is_one_line_and_exit_2_for_every_command(capsys, monkeypatch, setup, expected):
    for name, value in setup.items():
        if name == "file":
            Path("ttt.yaml").write_bytes(value)
        else:
            monkeypatch.setenv(name, value)
    for argv in (["config"], ["status"], ["ask", "hi", "-b", "mock"], ["route", "hi"]):
        code, out, err = run(capsys, *argv)
        assert code == 2 and out == "", argv
        assert expected in one_line(err), argv


# --------------------------------------------------------------------------- one footer, cache, ask-many


def test_the_footer_is_the_notebooks_and_says_when_tokens_are_estimated(capsys, monkeypatch):
    from ttt_magic.models import AIResponse
    from ttt_magic.notebook.render import footer_text

    counted = AIResponse(
        "hi", model="m", backend="b", tokens_in=12, tokens_out=30, time_taken=0.25, cost=0.002
    )
    counted.metadata["tokens_estimated"] = True
    monkeypatch.setattr(api, "ask", lambda prompt, **kw: counted)
    code, out, err = run(capsys, "ask", "anything", "--no-stream")
    assert code == 0 and out == "hi\n"
    assert err == footer_text(counted) + "\n" == "m · b · ~42 tokens · 0.2 s · $0.0020\n"


def test_ctrl_c_without_streaming_exits_130(capsys, monkeypatch):
    from ttt_magic.models import AIResponse

    def interrupted(prompt, **kw):
        raise api.Interrupted(AIResponse("", error=api.INTERRUPTED, metadata={"interrupted": True}))

    monkeypatch.setattr(api, "ask", interrupted)
    code, out, err = run(capsys, "ask", "anything", "--no-stream", "-b", "mock")
    assert (code, out, err) == (130, "", "Interrupted.\n")


def test_cache_subcommand_reports_and_clears(capsys, monkeypatch, tmp_path):
    from ttt_magic import ask, cache, configure

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    code, out, _ = run(capsys, "cache")
    assert code == 0 and out.startswith("Response cache: off") and "entries:  0" in out
    path = tmp_path / "answers.sqlite3"
    configure(cache=str(path))
    ask("cache me", backend="mock")
    try:
        code, out, _ = run(capsys, "cache", "--path", str(path), "--json")
        assert code == 0 and json.loads(out)["entries"] == 1
        code, out, _ = run(capsys, "cache", "--path", str(path), "--clear")
        assert code == 0 and "Removed 1 cached answer." in out and "entries:  0" in out
        code, _, err = run(capsys, "cache", "--older-than", "7d")
        assert code == 2 and "--older-than goes with --clear" in err
    finally:
        cache.close_all()


def test_ask_many_subcommand_reads_and_writes_csv(capsys, tmp_path):
    source, target = tmp_path / "reviews.csv", tmp_path / "results.csv"
    source.write_text("id,text\n1,one two\n2,three four\n", encoding="utf-8")
    argv = ["ask-many", str(source), "--column", "text", "--template", "Say: {}", "-b", "echo"]
    code, out, err = run(capsys, *argv, "--out", str(target))
    assert code == 0 and out == ""
    assert err.startswith("2 answers") and str(target) in err
    import csv

    with target.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["id"], r["answer"], r["error"]) for r in rows] == [
        ("1", "Say: one two", ""),
        ("2", "Say: three four", ""),
    ]
    code, out, _ = run(capsys, "ask-many", "--help")
    assert code == 0 and "--template" in out and "--dry-run" in out
    code, _, err = run(capsys, "ask-many", str(source), "--column", "txet")
    assert code == 2 and "Did you mean 'text'?" in err


def test_help_lists_the_new_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "ask-many" in out and "cache" in out
