"""StreamView / TerminalView: throttling, the final output, formats, marks and footers."""

from __future__ import annotations

import io
import json

import pytest

from ttt_magic.models import AIResponse
from ttt_magic.notebook.render import (
    INTERRUPTED_MARK,
    RouteView,
    StreamView,
    TerminalView,
    extract_code,
    fenced_code,
    final_bundle,
    footer_html,
    footer_text,
    provenance,
    route_text,
)


class Recorder:
    """A publisher that keeps every message a view would send to the frontend."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict, dict]] = []

    def show(self, data, metadata=None):
        self.messages.append(("display_data", data, metadata or {}))

    def update(self, data, metadata=None):
        self.messages.append(("update_display_data", data, metadata or {}))

    @property
    def bytes(self) -> int:
        return sum(len(json.dumps(d)) for _, d, _ in self.messages)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def response(text="", **kw):
    base = dict(
        model="mock-1",
        backend="mock",
        tokens_in=3,
        tokens_out=40,
        time_taken=1.25,
        cost=None,
        metadata={"route": {"backend": "mock", "model": "mock-1", "steps": ["given"]}},
    )
    base.update(kw)
    return AIResponse(text, **base)


def stream(view, chunks, clock, gap):
    for chunk in chunks:
        view.feed(chunk)
        clock.now += gap


def test_first_text_is_shown_at_once_then_coalesced():
    rec, clock = Recorder(), FakeClock()
    view = StreamView(publisher=rec, clock=clock)
    view.feed("")
    assert rec.messages == []
    view.feed("Hel")
    assert rec.messages == [("display_data", {"text/markdown": "Hel"}, {})]
    view.feed("lo")  # same instant: coalesced, nothing sent
    assert len(rec.messages) == 1
    clock.now += 0.06
    view.feed("!")
    assert rec.messages[-1] == ("update_display_data", {"text/markdown": "Hello!"}, {})


def test_empty_chunk_is_a_heartbeat_that_flushes_pending_text():
    rec, clock = Recorder(), FakeClock()
    view = StreamView(publisher=rec, clock=clock)
    view.feed("a")
    view.feed("b")  # pending, not yet due
    view.feed("")
    assert len(rec.messages) == 1
    clock.now += 1.0  # the stream paused: the next heartbeat shows what is pending
    view.feed("")
    assert rec.messages[-1] == ("update_display_data", {"text/markdown": "ab"}, {})
    view.feed("")
    assert len(rec.messages) == 2  # nothing new: nothing sent


def test_2000_chunks_give_a_bounded_number_of_updates_and_the_full_text():
    rec, clock = Recorder(), FakeClock()
    view = StreamView(publisher=rec, clock=clock)
    chunks = [f"w{i} " for i in range(2000)]
    stream(view, chunks, clock, 0.001)  # 2 s of streaming
    view.finish(response("".join(chunks)))
    assert len(rec.messages) <= 2 / 0.05 + 2
    assert [m[0] for m in rec.messages].count("display_data") == 1
    kind, data, meta = rec.messages[-1]
    assert kind == "update_display_data"
    assert data["text/plain"] == "".join(chunks)
    assert data["text/markdown"].startswith("".join(chunks))
    assert meta["ttt_magic"]["model"] == "mock-1"
    assert meta["ttt_magic"]["route"]["backend"] == "mock"


def test_instant_stream_sends_just_first_and_final():
    rec = Recorder()
    view = StreamView(publisher=rec, clock=lambda: 5.0)
    for i in range(500):
        view.feed(f"{i},")
    view.finish(response(view.text))
    assert len(rec.messages) == 2


def test_interval_grows_with_size_relative_to_speed():
    view = StreamView(publisher=Recorder(), clock=FakeClock(), pace=20, max_interval=5.0)
    assert view.interval(10, 0.1) == pytest.approx(0.05)  # early: 20 updates a second
    assert view.interval(4000, 10.0) == pytest.approx(0.5)  # 400 chars/s for 10 s
    assert view.interval(40_000, 10.0) == pytest.approx(0.5)  # same time, faster stream: same pace
    assert view.interval(100_000, 1000.0) == pytest.approx(5.0)  # capped


@pytest.mark.parametrize("chars_per_second", [100, 400, 2000, 20_000])
def test_bytes_sent_stay_linear_in_the_answer_size_at_any_speed(chars_per_second):
    size = 20_000
    rec, clock = Recorder(), FakeClock()
    view = StreamView(publisher=rec, clock=clock, pace=20, max_interval=1e9)
    stream(view, ["abcd"] * (size // 4), clock, 4 / chars_per_second)
    view.finish(response("x" * size))
    assert rec.bytes <= 24 * size
    # ...whereas updating 20 times a second regardless of size is quadratic for slow streams.
    rec2, clock2 = Recorder(), FakeClock()
    fixed = StreamView(publisher=rec2, clock=clock2, pace=float("inf"))
    stream(fixed, ["abcd"] * (size // 4), clock2, 4 / chars_per_second)
    if chars_per_second <= 400:
        assert rec2.bytes > 10 * rec.bytes


def test_final_markdown_has_footer_plain_is_the_answer():
    data, meta = final_bundle("# Hi\nthere", "markdown", response("# Hi\nthere"))
    assert data["text/plain"] == "# Hi\nthere"
    assert data["text/markdown"] == "# Hi\nthere\n\n<sub>mock-1 · mock · 3 in / 40 out · 1.2 s</sub>"
    assert set(meta["ttt_magic"]) >= {"backend", "model", "tokens_in", "tokens_out", "time", "cost", "route"}
    data, _ = final_bundle("x", "markdown", response("x"), footer=False)
    assert data == {"text/markdown": "x", "text/plain": "x"}


def test_footer_text_omits_unknowns_and_shows_cost():
    assert footer_text(response(cost=0.0123)) == "mock-1 · mock · 3 in / 40 out · 1.2 s · $0.0123"
    assert footer_text(AIResponse("x", backend="echo", time_taken=0.004)) == "echo · 4 ms"
    assert footer_text(None) == ""


@pytest.mark.parametrize(
    "metadata",
    [
        {"truncated": True},
        {"finish_reason": "length"},  # OpenAI, Ollama
        {"finish_reason": "max_tokens"},  # Anthropic
        {"finish_reason": "MAX_TOKENS"},  # Gemini
    ],
)
def test_footer_says_when_an_answer_was_cut_by_max_tokens(metadata):
    cut = response("x", metadata=metadata)
    assert footer_text(cut) == "mock-1 · mock · 3 in / 40 out · 1.2 s · cut off at max_tokens"
    assert provenance(cut)["truncated"] is True
    assert "truncated" not in provenance(response("x", metadata={"finish_reason": "stop"}))


def test_footer_marks_cached_answers_and_carries_notes():
    cached = response("x", metadata={"cached": True}, time_taken=None)
    assert footer_text(cached) == "mock-1 · mock · 3 in / 40 out · cached"
    assert provenance(cached)["cached"] is True
    assert footer_text(cached, notes=["nothing inserted"]).endswith(" · cached · nothing inserted")
    assert footer_text(None, notes=["a note"]) == "a note"


def test_footer_plain_text_for_the_cli_and_escaped_for_html():
    answer = AIResponse("x", model="<m>", backend="b&b")
    assert footer_text(answer, elapsed=2.5) == "<m> · b&b · 2.5 s"  # the CLI measures its own time
    assert footer_html(answer, notes=["<no code>"]) == "&lt;m&gt; · b&amp;b · &lt;no code&gt;"
    data, _ = final_bundle("hi", "markdown", answer)
    assert data["text/markdown"].endswith("<sub>&lt;m&gt; · b&amp;b</sub>")


def test_notes_show_even_with_the_footer_off():
    data, _ = final_bundle("hi", "markdown", response("hi"), footer=False, notes=["a key was withheld"])
    assert data["text/markdown"] == "hi\n\n<sub>a key was withheld</sub>"
    failed, _ = final_bundle("", "markdown", response("", error="No key."), footer=False, notes=["n"])
    assert failed["text/html"].endswith("<sub>n</sub>")
    out = io.StringIO()
    TerminalView(out=out, footer=False).finish(response("hi"), text="hi", notes=["n"])
    assert out.getvalue() == "hi\n[n]\n"


def test_errors_are_one_line_of_plain_text():
    data, _ = final_bundle("", "markdown", response("", error="No API key."), footer=False)
    assert data["text/plain"] == "ttt-magic: No API key."
    from ttt_magic.notebook.render import error_bundle

    bundle = error_bundle("Unknown model 'x'.", "Did you mean 'y'?")
    assert bundle["text/plain"] == "ttt-magic: Unknown model 'x'. Did you mean 'y'?"
    assert "<br>" in bundle["text/html"]


def test_fenced_code_is_none_without_a_fence():
    assert fenced_code("Just prose, no code.") is None
    assert fenced_code("Run:\n~~~bash\nls\n~~~\n") == ("ls", "bash")


ROUTE = {
    "backend": "down",
    "model": None,
    "steps": ["default_backend 'down'"],
    "fallbacks": [["echo", None]],
    "error": None,
    "attempts": [
        {"backend": "down", "model": None, "outcome": "error", "error": "boom", "wait": 0.0, "elapsed": 0.1},
        {"backend": "echo", "model": "echo", "outcome": "ok", "error": None, "wait": 0.5, "elapsed": 0.0},
    ],
}


def test_route_text_reads_the_record_an_answer_keeps():
    assert route_text(ROUTE).splitlines() == [
        "Route: backend=down model=(backend default)",
        "  1. default_backend 'down'",
        "  fallbacks: echo",
        "  attempt down/-: error - boom",
        "  attempt echo/echo after 0.50s: ok",
    ]
    assert route_text(None) == "Route: not recorded for this answer."


def test_route_text_matches_what_a_route_says_of_itself():
    from ttt_magic.router import Attempt, Route

    attempts = [Attempt(**a) for a in ROUTE["attempts"]]
    route = Route(
        backend="down", model=None, steps=ROUTE["steps"], fallbacks=[("echo", None)], attempts=attempts
    )
    assert route_text(route) == route.explain() == route_text(route.to_dict())


def test_route_view_replaces_one_display_or_prints_only_new_lines():
    rec = Recorder()
    before = {**ROUTE, "attempts": []}
    view = RouteView(rec)
    view.show(before)
    view.show(before)  # unchanged: nothing sent
    view.show(ROUTE)
    assert [kind for kind, _, _ in rec.messages] == ["display_data", "update_display_data"]
    assert rec.messages[-1][1]["text/plain"] == route_text(ROUTE)
    out = io.StringIO()
    printed = RouteView(out=out)
    printed.show(before)
    printed.show(ROUTE)
    assert out.getvalue() == route_text(ROUTE) + "\n"  # each line once, attempts after the answer


def test_interrupted_keeps_partial_text_marked():
    rec, clock = Recorder(), FakeClock()
    view = StreamView(publisher=rec, clock=clock)
    view.feed("partial ans")
    partial = response(
        "partial ans", error="Interrupted: the answer is incomplete.", metadata={"interrupted": True}
    )
    view.finish(partial, interrupted=True)
    data, meta = rec.messages[-1][1], rec.messages[-1][2]
    assert data["text/markdown"].startswith("partial ans\n\n" + INTERRUPTED_MARK)
    assert "Interrupted:" not in data["text/markdown"]
    assert data["text/plain"] == "partial ans\n[interrupted]"
    assert meta["ttt_magic"]["interrupted"] is True


def test_failure_after_partial_text_shows_text_then_error_box():
    data, _ = final_bundle("one two", "markdown", response("one two", error="Mock failure <x>."))
    md = data["text/markdown"]
    assert md.startswith('one two\n\n<div style="border-left')
    assert "Mock failure &lt;x&gt;." in md
    assert data["text/plain"].startswith("one two\nttt-magic: Mock failure <x>.")


def test_failure_without_text_is_a_short_styled_message():
    data, meta = final_bundle("", "markdown", response("", error="No API key for openai."), footer=False)
    assert set(data) == {"text/html", "text/plain"}
    assert "border-left" in data["text/html"] and "Traceback" not in data["text/plain"]
    assert data["text/plain"] == "ttt-magic: No API key for openai."
    assert meta["ttt_magic"]["error"] == "No API key for openai."


def test_code_format_extracts_fenced_code():
    answer = "Here:\n\n```sql\nSELECT 1;\n```\n\nand\n\n```sql\nSELECT 2;\n```\nDone."
    assert extract_code(answer) == ("SELECT 1;\n\nSELECT 2;", "sql")
    assert extract_code("x = 1\n") == ("x = 1", "python")
    data, _ = final_bundle(answer, "code", response(answer), footer=False)
    assert data["text/markdown"] == "```sql\nSELECT 1;\n\nSELECT 2;\n```"
    assert data["text/plain"] == "SELECT 1;\n\nSELECT 2;"


def test_json_format_parses_or_says_it_is_invalid():
    data, _ = final_bundle('```json\n{"a": [1, 2]}\n```', "json", response(), footer=False)
    assert data["application/json"] == {"a": [1, 2]}
    assert data["text/plain"] == '{\n  "a": [\n    1,\n    2\n  ]\n}'
    assert data["text/markdown"].startswith("```json\n{")
    bad, _ = final_bundle("{nope", "json", response(), footer=False)
    assert "application/json" not in bad
    assert bad["text/markdown"].startswith("**Invalid JSON**")
    assert "{nope" in bad["text/markdown"]


def test_text_and_html_formats():
    data, _ = final_bundle("<b>x</b>", "text", response(), footer=True)
    assert data["text/html"].startswith('<pre style="white-space: pre-wrap">&lt;b&gt;x&lt;/b&gt;</pre>')
    assert "<sub>" in data["text/html"] and data["text/plain"] == "<b>x</b>"
    data, _ = final_bundle("<b>x</b>", "html", response(), footer=False)
    assert data == {"text/html": "<b>x</b>", "text/plain": "<b>x</b>"}


def test_terminal_view_writes_chunks_as_they_arrive():
    out = io.StringIO()
    view = TerminalView(out=out)
    view.feed("Hel")
    assert out.getvalue() == "Hel"
    view.feed("lo")
    assert out.getvalue() == "Hello"
    view.finish(response("Hello"))
    assert out.getvalue() == "Hello\n[mock-1 · mock · 3 in / 40 out · 1.2 s]\n"


def test_terminal_view_interrupt_and_non_streamed_code():
    out = io.StringIO()
    view = TerminalView(out=out, footer=False)
    view.feed("part")
    view.finish(response("part", error="Interrupted"), interrupted=True)
    assert out.getvalue() == "part\n[interrupted]\n"
    out = io.StringIO()
    TerminalView("code", out=out, footer=False).finish(response(), text="Use:\n```python\nx = 1\n```")
    assert out.getvalue() == "x = 1\n"


# --------------------------------------------------------------------------- wired features (issues #10, #12)


def test_a_replayed_answer_says_where_and_when_it_was_recorded():
    replayed = response(
        "x",
        cost=0.0,
        time_taken=None,
        metadata={
            "replayed": {"backend": "llama-cpp", "model": "SmolLM2", "recorded": "2026-12-03T13:03:18Z"}
        },
    )
    assert footer_text(replayed) == (
        "mock-1 · mock · 3 in / 40 out · replayed · recorded from llama-cpp/SmolLM2 on 2026-12-03"
    )
    assert provenance(replayed)["replayed"]["model"] == "SmolLM2"  # kept in the saved notebook
    bare = response("x", time_taken=None, metadata={"replayed": {"backend": None, "recorded": None}})
    assert footer_text(bare) == "mock-1 · mock · 3 in / 40 out · replayed"


def test_tokens_the_server_did_not_report_show_as_an_estimate():
    counted = response("x", tokens_in=12, tokens_out=108, metadata={"tokens_estimated": True})
    assert footer_text(counted) == "mock-1 · mock · ~120 tokens · 1.2 s"
    assert provenance(counted)["tokens_estimated"] is True
    assert "~" not in footer_text(response("x")) and "tokens_estimated" not in provenance(response("x"))


def test_an_interrupted_answer_without_text_has_clean_plain_text():
    stopped = response("", tokens_in=None, tokens_out=None, time_taken=None, error="Interrupted: x")
    data, _ = final_bundle("", "markdown", stopped, interrupted=True)
    assert data["text/plain"] == "[interrupted]"
    assert data["text/markdown"] == f"{INTERRUPTED_MARK}\n\n<sub>mock-1 · mock</sub>"
    data, _ = final_bundle("", "text", stopped, footer=False, interrupted=True)
    assert data["text/plain"] == "[interrupted]"


def test_route_text_of_a_record_is_route_explain_of_it():
    from ttt_magic.router import Route

    record = {**ROUTE, "error": "no backend left"}
    assert route_text(record) == Route.from_dict(record).explain()
    assert route_text(record).endswith(
        "  error: no backend left\n  attempt down/-: error - boom\n  attempt echo/echo after 0.50s: ok"
    )
