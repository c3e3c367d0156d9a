"""No API key ever appears in output, logs, reprs or errors."""

from __future__ import annotations

import logging
import pickle

import pytest

import ttt_magic
from ttt_magic import ask, configure, get_config, route, stream
from ttt_magic.config import display_value
from ttt_magic.secrets import Secret, mask

SENTINEL = "sk-SENTINEL-7f1e2d3c4b5a69788796a5b4"


def test_mask_shapes():
    assert mask(SENTINEL) == "sk-…a5b4"
    assert mask("short-key") == "****"
    assert mask(None) == "(not set)"
    secret = Secret(SENTINEL)
    assert SENTINEL not in f"{secret} {secret!r} {secret!s} {secret:>40}"
    assert secret.reveal() == SENTINEL and bool(secret)
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_nested_backend_keys_are_masked_in_displays():
    configure(
        backends={
            "my-vllm": {
                "type": "openai-compatible",
                "base_url": "http://127.0.0.1:9/v1",
                "api_key": SENTINEL,
                "api_key_env": "MY_KEY",
            }
        }
    )
    vllm = get_config().backends["my-vllm"]
    shown = display_value({"api_key": vllm["api_key"], "api_key_env": vllm["api_key_env"]}) + str(
        get_config()
    )
    assert SENTINEL not in shown and "MY_KEY" in shown and "…a5b4" in shown


def test_sentinel_key_never_leaks(monkeypatch, caplog, capsys):
    """A representative set of calls, with every provider pointed at a dead local port."""
    caplog.set_level(logging.DEBUG)
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "OPENROUTER_API_KEY"):
        monkeypatch.setenv(var, SENTINEL)
    configure(
        openai_api_key=SENTINEL,
        openai_base_url="http://127.0.0.1:9/v1",
        anthropic_base_url="http://127.0.0.1:9",
        gemini_base_url="http://127.0.0.1:9",
        openrouter_base_url="http://127.0.0.1:9/api/v1",
        max_retries=0,
        timeout=2,
    )
    seen: list[str] = []
    cfg = get_config()
    seen += [str(cfg), repr(cfg), str(cfg.to_dict()), str(list(cfg.rows())), repr(cfg.openai_api_key)]
    for model in ("gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-flash", "openrouter/some/model"):
        decided = route("hello", model=model)
        seen += [decided.explain(), str(decided.to_dict())]
        response = ask("hello", model=model)
        seen += [repr(response), str(response.error), str(response.metadata)]
        answer = stream("hello", model=model)
        seen += list(answer)
        seen += [repr(answer.response), str(answer.response.error)]
    for name in ttt_magic.backend_registry.names():
        try:
            backend = ttt_magic.backend_registry.get(name)
        except Exception as exc:
            seen.append(str(exc))
            continue
        seen += [repr(backend), str(getattr(backend, "unavailable_reason", ""))]
        seen += [str(ttt_magic.runner.run(backend.status()))]
    captured = capsys.readouterr()
    seen += [captured.out, captured.err, caplog.text]
    seen += [record.getMessage() for record in caplog.records]
    text = "\n".join(seen)
    assert "127.0.0.1:9" in text  # the calls really were made and failed
    assert SENTINEL not in text
    assert SENTINEL[3:20] not in text


# --------------------------------------------------------------------------- clean_key (issue #11)


@pytest.mark.parametrize("around", [" ", "\n", "\r\n", "\t", " \u00a0\n"])
def test_clean_key_strips_what_pasting_adds(around):
    from ttt_magic.secrets import clean_key

    assert clean_key(around + SENTINEL + around) == SENTINEL
    assert clean_key(around) == ""


@pytest.mark.parametrize(
    ("inside", "described"),
    [
        (" ", "a space"),
        ("\n", "a line break"),
        ("\t", "a tab"),
        ("\x00", "a control character"),
        ("\u201c", "a non-ASCII character (U+201C)"),
        ("\udcff", "a byte that is not UTF-8"),
    ],
)
def test_clean_key_refuses_a_bad_character_inside_without_showing_the_key(inside, described):
    from ttt_magic.secrets import clean_key

    with pytest.raises(ValueError) as err:
        clean_key(SENTINEL[:12] + inside + SENTINEL[12:])
    message = str(err.value)
    assert f"has {described} inside it (character 13 of {len(SENTINEL) + 1})" in message
    assert SENTINEL[:12] not in message and SENTINEL[12:] not in message and "\n" not in message


def test_clean_key_refuses_quotes_around_the_key():
    from ttt_magic.secrets import clean_key

    with pytest.raises(ValueError, match="quotes"):
        clean_key(f'"{SENTINEL}"\n')
