"""%%ask in a real kernel: streamed displays, the final output, -o, --insert, chat, errors, interrupts."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.kernel

BULK_BACKEND = '''
import asyncio
from ttt_magic import register_backend
from ttt_magic.backends import BaseBackend
from ttt_magic.notebook.render import StreamView

class StreamClock:
    """The time the stream says it is: the backend advances it, the display reads it."""
    now = 0.0
    def __call__(self):
        return self.now

clock = StreamClock()

class Bulk(BaseBackend):
    """Streams N numbered chunks, each one 'step' seconds of the stream's clock after the last."""
    backend_name = "bulk"
    n, step = 2000, 0.001

    async def astream(self, prompt, **kwargs):
        for i in range(self.n):
            clock.now += self.step
            yield f"c{i} "
            await asyncio.sleep(0)

register_backend("bulk", Bulk)
magics = get_ipython().magics_manager.registry["TTTMagics"]
magics.view_factory = lambda fmt, footer: StreamView(fmt, footer=footer, clock=clock)
'''

GATED_BACKEND = '''
import asyncio
from ttt_magic import register_backend
from ttt_magic.backends import BaseBackend

class Gated(BaseBackend):
    """Sends the start of an answer, then waits for more that never comes: an interrupt lands mid-answer."""
    backend_name = "gated"

    async def astream(self, prompt, **kwargs):
        yield "## Lists\\n\\nA list holds items in order"
        yield ", and grows as you append."
        await asyncio.Event().wait()

register_backend("gated", Gated)
'''


def _text(content):
    return content["data"].get("text/markdown") or content["data"].get("text/html") or ""


def test_long_stream_is_coalesced_and_ends_with_the_full_text(kernel):
    kernel.ok(BULK_BACKEND)
    try:
        result = kernel.ok("%%ask -b bulk\ngo")
    finally:
        kernel.ok("magics.view_factory = None")
    kinds = [m["msg_type"] for m in result.displays]
    assert kinds[0] == "display_data" and kinds.count("display_data") == 1
    # First text at once, then at most 20 updates a second of the stream's 2 s, however fast
    # the kernel really was: far fewer messages than the 2,000 chunks.
    assert 2 <= len(kinds) <= 20 * 2.0 + 2
    full = "".join(f"c{i} " for i in range(2000))
    final = result.final()
    assert final["data"]["text/plain"] == full
    assert final["data"]["text/markdown"].startswith(full)
    meta = final["metadata"]["ttt_magic"]
    assert meta["backend"] == "bulk" and meta["route"]["backend"] == "bulk"
    # One display for the whole answer: every message updates the same display id.
    ids = {m["content"]["transient"]["display_id"] for m in result.displays}
    assert len(ids) == 1
    assert result.of_type("execute_result") == []  # the magic returns None: no Out[]


def test_interpolation_keeps_literal_braces(kernel):
    kernel.ok("city = 'Oslo'\nrows = [{'n': 1}]")
    result = kernel.ok('%%ask -b echo\nWeather in {city} for {rows[0][n]} as JSON {"t": 1} via {unknown}')
    assert result.final()["data"]["text/plain"].strip() == (
        'Weather in Oslo for 1 as JSON {"t": 1} via {unknown}'
    )
    raw = kernel.ok("%%ask -b echo --raw\n{city}")
    assert raw.final()["data"]["text/plain"].strip() == "{city}"


def test_out_variable_and_last_response(kernel):
    kernel.ok("%ask -b echo -o answer hello there")
    check = kernel.ok(
        "import ttt_magic\n"
        "print(type(answer).__name__, answer.text.strip(), answer.backend, ttt_magic.last_response is answer)"
    )
    assert check.stdout.strip() == "AIResponse hello there echo True"


def test_insert_puts_code_in_the_next_cell(kernel):
    result = kernel.ok("%%ask -f code --insert\nwrite python code that sorts a list")
    payloads = [p for p in result.payload if p.get("source") == "set_next_input"]
    assert len(payloads) == 1
    code = payloads[0]["text"]
    assert "def " in code and "```" not in code
    assert payloads[0].get("replace") is False
    assert result.final()["data"]["text/markdown"].startswith("```python\n")


def test_chat_remembers_and_new_forgets(kernel):
    kernel.ok("%%ask -c tutor --new\nWhat is a list?")
    second = kernel.ok("%%ask -c tutor\nAnd a tuple?")
    assert "Earlier you asked" in second.final()["data"]["text/plain"]
    fresh = kernel.ok("%%ask -c tutor --new\nAnd a tuple?")
    assert "Earlier you asked" not in fresh.final()["data"]["text/plain"]
    plain = kernel.ok("%%ask\nAnd a set?")  # no --chat: no memory
    assert "Earlier you asked" not in plain.final()["data"]["text/plain"]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("%%ask -b mock\n[fail] hello", "Mock failure"),
        ("%%ask -b nosuchbackend\nhello", "Unknown backend 'nosuchbackend'"),
        ("%%ask --max-tokens -5\nhello", "max_tokens must be at least 1"),
        ("%%ask -m no-such-model-xyz\nhello", "Unknown model"),
        ("%%ask -f yaml\nhello", "invalid choice"),
    ],
)
def test_errors_are_short_messages_without_traceback(kernel, cell, expected):
    result = kernel.execute(cell)
    assert result.errors == []
    assert result.reply["content"]["status"] == "ok"
    shown = result.final()["data"]
    assert expected in shown["text/plain"]
    assert "border-left" in shown["text/html"]
    assert "Traceback" not in shown["text/plain"]
    check = kernel.ok("import ttt_magic; print(ttt_magic.last_response.failed)")
    assert check.stdout.strip() == "True"


def test_raise_on_error_raises(kernel):
    try:
        kernel.ok("%ttt_config raise_on_error=true")
        result = kernel.execute("%%ask -b mock\n[fail] hello")
        assert result.errors and result.errors[0]["ename"] == "TTTError"
    finally:
        kernel.ok("%ttt_config raise_on_error=")


def test_failure_mid_stream_keeps_partial_text(kernel):
    result = kernel.ok("%%ask -b mock\n[fail-after-3] explain lists")
    data = result.final()["data"]
    assert data["text/markdown"].startswith("## Lists")
    assert "cut off" in data["text/markdown"] and "border-left" in data["text/markdown"]


def test_no_stream_gives_exactly_one_display_data(kernel):
    result = kernel.ok("%%ask --no-stream\nhello")
    assert [m["msg_type"] for m in result.displays] == ["display_data"]
    assert result.displays[0]["content"]["data"]["text/plain"].startswith("Hello!")


def _display_ids(result) -> list[str]:
    """The cell's display ids, in the order they first appeared."""
    ids = [m["content"]["transient"]["display_id"] for m in result.displays]
    return list(dict.fromkeys(ids))


def test_explain_shows_the_route_first_then_its_attempts(kernel):
    result = kernel.ok("%%ask --explain -b mock\nhello")
    route_id, answer_id = _display_ids(result)
    first = result.displays[0]["content"]["data"]["text/plain"]
    assert first.startswith("Route: backend=mock")
    assert "attempt" not in first  # nothing was tried yet
    route = result.final(route_id)["data"]["text/plain"]
    assert route.startswith(first) and route.endswith("attempt mock/-: ok")
    assert result.final(answer_id)["data"]["text/plain"].startswith("Hello!")


def test_interrupt_mid_stream_keeps_partial_text_and_next_ask_works(kernel):
    kernel.ok(GATED_BACKEND)
    interrupted = []

    def interrupt_on_first_text(msg):
        # Once: should the interrupt land inside that first display() call, the final form
        # comes as a new display_data, and interrupting again would test a double Ctrl-C.
        if msg["msg_type"] == "display_data" and not interrupted:
            interrupted.append(msg)
            kernel.interrupt()

    result = kernel.execute("%%ask -b gated\nexplain lists", on_message=interrupt_on_first_text)
    assert [e["ename"] for e in result.errors] == ["KeyboardInterrupt"]
    final = result.final()["data"]
    assert "*[interrupted]*" in final["text/markdown"]
    assert final["text/plain"].endswith("[interrupted]")
    partial = final["text/plain"][: -len("\n[interrupted]")]
    assert partial.startswith("## Lists")
    check = kernel.ok(
        "import ttt_magic; r = ttt_magic.last_response\n"
        "print(r.metadata.get('interrupted'), r.text.startswith('## Lists'),"
        " r.route['attempts'][-1]['outcome'])"
    )
    assert check.stdout.strip() == "True True interrupted"
    after = kernel.ok("%%ask\nhello")
    assert after.final()["data"]["text/plain"].startswith("Hello!")


def test_a_usage_error_in_code_fails_the_cell_with_one_line(kernel):
    result = kernel.execute("import ttt_magic\nttt_magic.ask('hi', model='no-such-model-xyz')")
    reply = result.reply["content"]
    assert reply["status"] == "error" and reply["ename"] == "UnknownModelError"  # Run All stops here
    assert result.errors == []  # no traceback was sent
    said = "".join(m["content"]["text"] for m in result.of_type("stream"))
    lines = said.strip().splitlines()
    assert lines[0] == "UnknownModelError: Unknown model 'no-such-model-xyz'."
    assert len(lines) <= 2 and "Traceback" not in said


def test_insert_without_code_inserts_nothing_and_says_so(kernel):
    result = kernel.ok("%%ask -b echo --insert\nonly prose, no code")
    assert [p for p in result.payload if p.get("source") == "set_next_input"] == []
    assert "nothing was inserted" in result.final()["data"]["text/markdown"]


def test_unload_removes_the_magics_and_reload_works(kernel):
    kernel.ok("%unload_ext ttt_magic")
    gone = kernel.execute("%ask hello")
    said = "".join(m["content"].get("text", "") for m in gone.of_type("stream"))
    said += "".join(e["evalue"] for e in gone.errors)
    assert "magic function `%ask` not found" in said
    assert gone.displays == []
    kernel.ok("%load_ext ttt_magic")
    back = kernel.ok("%ask -b echo hi again")
    assert back.final()["data"]["text/plain"].strip() == "hi again"
