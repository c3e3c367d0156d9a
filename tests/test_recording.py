"""Record and replay (ttt_magic/recording.py): the JSON Lines file, strict and fallthrough, pacing.

Most tests call the interceptor directly with a fake ``proceed``; the end-to-end
ones record through ``ask``/``stream`` against the fake OpenAI server and the
``echo`` backend, then replay.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import time
from pathlib import Path

import pytest

from tests.fakes import SENTINEL_KEY
from ttt_magic import cache as cache_mod
from ttt_magic import recording
from ttt_magic.config import configure, get_config
from ttt_magic.errors import ProviderError
from ttt_magic.models import StreamEnd
from ttt_magic.recording import intercept
from ttt_magic.request import Resolved

ROOT = Path(__file__).resolve().parents[1]


class FakeBackend:
    """The ``proceed`` of an interceptor: scripted chunks and a StreamEnd, counting calls."""

    def __init__(self, chunks=("Hello", ", ", "world", "!"), end=None, fail_after=None):
        self.chunks = list(chunks)
        self.end = end or StreamEnd(
            model="fake-model-2024", tokens_in=12, tokens_out=4, finish_reason="stop", cost=0.0042
        )
        self.fail_after = fail_after
        self.calls = 0

    async def __call__(self, call):
        self.calls += 1
        for i, chunk in enumerate(self.chunks):
            if self.fail_after == i:
                raise ProviderError("connection dropped", retryable=True, kind="network")
            yield chunk
        yield self.end


def make_call(**changes) -> Resolved:
    values = {
        "backend": "fake",
        "model": "fake-model",
        "prompt": "What is a list comprehension?",
        "stream": True,
    }
    values.update(changes)
    values.setdefault("config", get_config().backend_config(values["backend"]))
    return Resolved(**values)


def collect(call, proceed):
    async def main():
        return [item async for item in intercept(call, proceed)]

    return asyncio.run(main())


def split(items):
    ends = [i for i in items if isinstance(i, StreamEnd)]
    assert len(ends) == 1 and isinstance(items[-1], StreamEnd), items
    return [i for i in items if isinstance(i, str)], ends[0]


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(autouse=True)
def fresh(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    cache_mod._warned.clear()
    recording._books.clear()
    yield
    cache_mod.close_all()
    cache_mod._warned.clear()
    recording._books.clear()


@pytest.fixture
def rec(tmp_path) -> Path:
    return tmp_path / "notebook.answers.jsonl"


# --------------------------------------------------------------------------- recording


def test_recording_writes_one_readable_line_per_answer(rec):
    configure(record=str(rec))
    history = [{"role": "user", "content": "Earlier"}, {"role": "assistant", "content": "Answer"}]
    backend = FakeBackend()
    items = collect(make_call(system="Be brief.", history=history, temperature=0.2, max_tokens=99), backend)
    assert "".join(split(items)[0]) == "Hello, world!"  # passed through unchanged
    collect(make_call(prompt="Second question", params={"seed": 3}), backend)
    entries = lines(rec)
    assert len(entries) == 2
    first = entries[0]
    assert first["prompt"] == "What is a list comprehension?" and first["system"] == "Be brief."
    assert first["history"] == history
    assert first["settings"] == {"temperature": 0.2, "max_tokens": 99}
    assert first["answer"] == "Hello, world!"
    assert (first["backend"], first["model"], first["tokens_in"], first["tokens_out"]) == (
        "fake",
        "fake-model-2024",
        12,
        4,
    )
    assert first["finish_reason"] == "stop" and first["cost"] == 0.0042
    assert len(first["key"]) == 64 and len(first["match"]) == 64
    assert time.strptime(first["recorded"], "%Y-%m-%dT%H:%M:%SZ")
    assert entries[1]["settings"] == {"seed": 3} and "system" not in entries[1]


def test_recording_again_replaces_the_answer_in_place(rec):
    configure(record=str(rec))
    collect(make_call(prompt="one"), FakeBackend(chunks=["first"]))
    collect(make_call(prompt="two"), FakeBackend(chunks=["second"]))
    collect(make_call(prompt="one"), FakeBackend(chunks=["first, again"]))
    assert [(e["prompt"], e["answer"]) for e in lines(rec)] == [("one", "first, again"), ("two", "second")]


def test_failed_and_interrupted_answers_are_not_recorded(rec):
    configure(record=str(rec))
    with pytest.raises(ProviderError):
        collect(make_call(), FakeBackend(fail_after=2))

    async def stop_early():
        agen = intercept(make_call(), FakeBackend())
        await agen.__anext__()
        await agen.aclose()

    asyncio.run(stop_early())
    assert not rec.exists()


def test_no_key_or_header_ever_reaches_the_file(rec):
    configure(
        record=str(rec),
        openai_api_key=SENTINEL_KEY,
        backends={"lab": {"api_key": "lab-key-0123456789abcdef", "headers": {"X-Token": "hdr"}}},
    )
    call = make_call(backend="lab", options={"user": "u-42"})
    assert SENTINEL_KEY in repr(call.config.get("openai_api_key").reveal())  # the call carries it
    # even an answer or prompt that contains a key is written without it
    collect(make_call(prompt=f"my key is {SENTINEL_KEY}"), FakeBackend(chunks=[f"Key: {SENTINEL_KEY}"]))
    collect(call, FakeBackend(chunks=["lab answer with lab-key-0123456789abcdef inside"]))
    text = rec.read_text(encoding="utf-8")
    assert SENTINEL_KEY not in text and "lab-key-0123456789abcdef" not in text
    assert "hdr" not in text and "u-42" not in text and "Authorization" not in text
    assert text.count("[redacted]") == 3


def test_an_unwritable_recording_warns_once_and_answers_go_on(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    configure(record=str(blocker / "answers.jsonl"))  # a folder that cannot be made
    backend = FakeBackend()
    with caplog.at_level(logging.WARNING, logger="ttt_magic.cache"):
        for _ in range(2):
            assert "".join(split(collect(make_call(), backend))[0]) == "Hello, world!"
    assert len([r for r in caplog.records if "cannot be recorded" in r.getMessage()]) == 1


# --------------------------------------------------------------------------- replaying


def _record_one(rec, **call):
    configure(record=str(rec), replay=None)
    collect(make_call(**call), FakeBackend())
    configure(record=None)


def test_replay_answers_without_touching_the_backend(rec):
    _record_one(rec)
    configure(replay=str(rec), replay_speed=0)
    backend = FakeBackend(chunks=["never"])
    text, end = split(collect(make_call(), backend))
    assert backend.calls == 0
    assert "".join(text) == "Hello, world!" and len(text) == 2  # word chunks
    assert (end.model, end.tokens_in, end.tokens_out, end.finish_reason) == ("fake-model-2024", 12, 4, "stop")
    replayed = end.metadata["replayed"]
    assert replayed["backend"] == "fake" and replayed["model"] == "fake-model-2024"
    assert replayed["recorded"].endswith("Z") and replayed["cost"] == 0.0042
    assert end.cost == 0.0  # nothing is spent by a replay
    text, _ = split(collect(make_call(stream=False), backend))
    assert text == ["Hello, world!"] and backend.calls == 0


def test_replay_strict_refuses_what_was_not_recorded(rec):
    _record_one(rec)
    configure(replay=str(rec))
    long_prompt = "Explain the difference between a process and a thread in operating systems, with examples."
    backend = FakeBackend()
    with pytest.raises(ProviderError) as info:
        collect(make_call(prompt=long_prompt), backend)
    error = info.value
    assert error.kind == "not_recorded" and error.retryable is False and backend.calls == 0
    assert long_prompt[:60] in str(error) and long_prompt not in str(error)
    assert "%ttt_record" in str(error) and "fallthrough" in str(error) and str(rec) in str(error)


def test_replay_of_a_missing_file_says_so(tmp_path):
    configure(replay=str(tmp_path / "nothing-here.jsonl"))
    with pytest.raises(ProviderError, match="does not exist"):
        collect(make_call(), FakeBackend())


def test_replay_fallthrough_asks_the_backend_for_the_rest(rec):
    _record_one(rec)
    configure(replay=str(rec), replay_mode="fallthrough", replay_speed=0)
    backend = FakeBackend(chunks=["live"])
    split(collect(make_call(), backend))
    assert backend.calls == 0
    text, end = split(collect(make_call(prompt="not recorded"), backend))
    assert text == ["live"] and backend.calls == 1 and "replayed" not in end.metadata


def test_replay_finds_the_conversation_when_backend_or_model_differ(rec):
    _record_one(rec, backend="openai", model="qwen2.5-0.5b-instruct")
    configure(replay=str(rec), replay_speed=0)
    text, end = split(collect(make_call(backend="local", model="llama3.2"), FakeBackend()))
    assert "".join(text) == "Hello, world!" and end.metadata["replayed"]["backend"] == "openai"
    # but not when the conversation differs
    with pytest.raises(ProviderError):
        collect(make_call(backend="local", model="llama3.2", system="Be a pirate."), FakeBackend())


def test_replay_prefers_the_recording_of_the_same_model(rec):
    configure(record=str(rec))
    collect(make_call(backend="openai", model="small"), FakeBackend(chunks=["small answer"]))
    collect(make_call(backend="openai", model="large"), FakeBackend(chunks=["large answer"]))
    configure(record=None, replay=str(rec), replay_speed=0)
    for model in ("small", "large"):
        text, _ = split(collect(make_call(backend="other", model=model), FakeBackend()))
        assert "".join(text) == f"{model} answer"
    text, _ = split(collect(make_call(backend="other", model="unknown"), FakeBackend()))
    assert "".join(text) == "large answer"  # otherwise the latest


def test_replay_streams_at_the_configured_pace_capped(rec, monkeypatch):
    configure(record=str(rec))
    collect(make_call(prompt="short"), FakeBackend(chunks=["word " * 20]))  # 100 characters
    collect(make_call(prompt="long"), FakeBackend(chunks=["word " * 400]))  # 2000 characters
    configure(record=None, replay=str(rec), replay_speed=400)

    def timed(**call):
        started = time.perf_counter()
        split(collect(make_call(**call), FakeBackend()))
        return time.perf_counter() - started

    assert 0.18 <= timed(prompt="short") < 1.0  # 100 chars at 400/s: 0.25 s
    monkeypatch.setattr(recording, "MAX_REPLAY_SECONDS", 0.3)
    assert 0.25 <= timed(prompt="long") < 1.0  # 5 s at 400/s, capped
    configure(replay_speed=0)
    assert timed(prompt="long") < 0.1
    assert timed(prompt="long", stream=False) < 0.1


def test_default_pace_is_about_200_chars_per_second():
    assert get_config().replay_speed == 200.0 and recording.MAX_REPLAY_SECONDS == 2.0


def test_bad_lines_are_skipped_with_one_warning(rec, caplog):
    _record_one(rec)
    with rec.open("a", encoding="utf-8") as handle:
        handle.write("not json\n{}\n[1, 2]\n\n")
    configure(replay=str(rec), replay_speed=0)
    with caplog.at_level(logging.WARNING, logger="ttt_magic.cache"):
        for _ in range(2):
            split(collect(make_call(), FakeBackend()))
    warned = [r for r in caplog.records if "are not recorded answers" in r.getMessage()]
    assert len(warned) == 1 and "3 line(s)" in warned[0].getMessage()


def test_replay_picks_up_a_file_changed_on_disk(rec):
    configure(replay=str(rec), replay_speed=0)
    with pytest.raises(ProviderError):
        collect(make_call(), FakeBackend())
    _record_one(rec)
    configure(replay=str(rec))
    text, _ = split(collect(make_call(), FakeBackend()))
    assert "".join(text) == "Hello, world!"


def test_replay_and_record_together_copy_replayed_answers(rec, tmp_path):
    _record_one(rec)
    other = tmp_path / "copy.jsonl"
    configure(replay=str(rec), record=str(other), replay_mode="fallthrough", replay_speed=0)
    collect(make_call(), FakeBackend())
    collect(make_call(prompt="new one"), FakeBackend(chunks=["fresh"]))
    assert [e["answer"] for e in lines(other)] == ["Hello, world!", "fresh"]
    # recording into the file being replayed fills in what is missing
    configure(record=str(rec))
    collect(make_call(prompt="missing"), FakeBackend(chunks=["filled in"]))
    assert [e["answer"] for e in lines(rec)] == ["Hello, world!", "filled in"]


def test_a_replayed_answer_skips_the_cache(rec):
    from ttt_magic.chain import Chain

    _record_one(rec)
    configure(replay=str(rec), cache=True, replay_speed=0)
    links = Chain()
    links.add("recording", recording.intercept, order=25)
    links.add("cache", cache_mod.intercept, order=30)
    backend = FakeBackend()
    handler = links.wrap(backend)

    async def run():
        return [item async for item in handler(make_call())]

    _, end = split(asyncio.run(run()))
    assert "replayed" in end.metadata and backend.calls == 0
    assert cache_mod.stats()["entries"] == 0


def test_settings_come_from_a_ttt_yaml_beside_the_notebook(tmp_path, monkeypatch):
    folder = tmp_path / "nb"
    folder.mkdir()
    (folder / "ttt.yaml").write_text("record: answers.jsonl\n")
    monkeypatch.chdir(folder)
    collect(make_call(config=get_config().backend_config("fake")), FakeBackend())
    assert len(lines(folder / "answers.jsonl")) == 1
    (folder / "ttt.yaml").write_text("replay: answers.jsonl\nreplay_mode: strict\nreplay_speed: 0\n")
    _, end = split(collect(make_call(config=get_config().backend_config("fake")), FakeBackend()))
    assert "replayed" in end.metadata


def test_status_and_report(rec):
    assert "Not recording" in recording.report(recording.status())
    _record_one(rec)
    configure(record=str(rec), replay=str(rec), replay_mode="fallthrough")
    info = recording.status()
    assert info["record"] == {"path": str(rec), "entries": 1, "exists": True}
    assert info["replay"]["entries"] == 1 and info["replay_mode"] == "fallthrough"
    text = recording.report(info)
    assert "Recording answers to" in text and "mode fallthrough" in text


def test_replaying_tells_the_router_when_a_backend_may_be_unneeded(rec):
    assert not recording.replaying(get_config())
    assert recording.replaying(configure(replay=str(rec)))


def test_replay_settings_are_validated():
    from ttt_magic.errors import ConfigError

    with pytest.raises(ConfigError, match="strict"):
        configure(replay_mode="loose")
    with pytest.raises(ConfigError):
        configure(replay_speed=-1)
    assert configure(replay_mode="Fallthrough").replay_mode == "fallthrough"


# --------------------------------------------------------------------------- end to end


@pytest.fixture
def openai_server():
    from tests.fakes.openai_fake import OpenAIFake
    from ttt_magic.registry import backend_registry

    fake = OpenAIFake(api_key=SENTINEL_KEY)
    fake.start()
    configure(openai_base_url=fake.base_url, openai_api_key=SENTINEL_KEY, max_retries=0)
    try:
        assert "openai" in backend_registry.names()
        yield fake
    finally:
        fake.stop()


def test_record_from_the_fake_openai_server_then_replay_offline(rec, openai_server):
    import ttt_magic

    configure(record=str(rec))
    live = ttt_magic.ask("Say hello", backend="openai", model="gpt-4o-mini", system="Be kind.")
    assert live.succeeded and live.text == "Hello, world!"
    streamed = ttt_magic.stream("Say hello again", backend="openai", model="gpt-4o-mini")
    assert list(streamed) == ["Hello", ", ", "world", "!"]
    requests = len(openai_server.requests)
    text = rec.read_text(encoding="utf-8")
    assert SENTINEL_KEY not in text and "Bearer" not in text and "authorization" not in text.lower()
    assert [e["prompt"] for e in lines(rec)] == ["Say hello", "Say hello again"]

    configure(record=None, replay=str(rec), replay_speed=0)
    again = ttt_magic.ask("Say hello", backend="openai", model="gpt-4o-mini", system="Be kind.")
    assert again.succeeded and again.text == "Hello, world!"
    assert again.metadata["replayed"]["model"] == live.model and again.tokens_out == live.tokens_out
    answer = ttt_magic.stream("Say hello again", backend="openai", model="gpt-4o-mini")
    assert "".join(answer) == "Hello, world!" and answer.response.metadata["replayed"]
    assert len(openai_server.requests) == requests  # nothing reached the server
    missing = ttt_magic.ask("Something never recorded", backend="openai", model="gpt-4o-mini")
    assert missing.failed and "No recorded answer for 'Something never recorded'" in missing.error
    assert len(openai_server.requests) == requests


def test_usage_counts_replayed_answers_as_calls_with_no_cost(rec):
    import ttt_magic

    usage = importlib.import_module("ttt_magic.accounting")
    configure(record=str(rec))
    ttt_magic.ask("count me", backend="echo")
    configure(record=None, replay=str(rec), replay_speed=0)
    usage.reset()
    answer = ttt_magic.ask("count me", backend="echo")
    assert answer.metadata.get("replayed") and answer.cost in (0, 0.0, None)
    totals = usage.usage()
    assert (totals["calls"], totals["cached"], totals["cost"]) == (1, 1, 0.0)


def test_replay_works_when_the_backend_is_unavailable(rec, openai_server):
    import ttt_magic

    configure(record=str(rec))
    assert ttt_magic.ask("Offline later", backend="openai", model="gpt-4o-mini").succeeded
    openai_server.stop()
    configure(record=None, openai_api_key=None, replay=str(rec), replay_speed=0)
    answer = ttt_magic.ask("Offline later", backend="openai", model="gpt-4o-mini")
    assert answer.succeeded, answer.error
    assert answer.text == "Hello, world!" and answer.metadata["replayed"]


def test_replay_answers_an_automatic_route_on_a_machine_with_no_key_at_all(rec, openai_server):
    """The classroom case: recorded at home through automatic routing, replayed with no key."""
    import ttt_magic

    configure(record=str(rec))
    live = ttt_magic.ask("What is a list comprehension?")
    assert live.succeeded and live.backend == "cloud"
    openai_server.stop()
    configure(record=None, openai_api_key=None, replay=str(rec), replay_speed=0)
    decided = ttt_magic.route("What is a list comprehension?")
    assert decided.backend == "cloud" and any("replaying" in step for step in decided.steps)
    again = ttt_magic.ask("What is a list comprehension?")
    assert again.succeeded, again.error
    assert again.text == live.text and again.metadata["replayed"]
    missing = ttt_magic.ask("Never recorded here")
    assert missing.failed and "No recorded answer" in missing.error
