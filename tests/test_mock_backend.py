"""The built-in ``mock`` and ``echo`` backends, driven directly (no router)."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from ttt_magic import plugins
from ttt_magic.errors import ProviderError
from ttt_magic.models import StreamEnd
from ttt_magic.registry import backend_registry


@pytest.fixture(scope="module")
def mock_module():
    """The plugin module itself, loaded the way discovery loads it."""
    plugins.ensure_discovered()
    record = next(r for r in plugins.plugin_records() if r.name == "mock_llm_backend")
    assert record.loaded, record.error
    return record.module


@pytest.fixture
def mock(mock_module, monkeypatch):
    monkeypatch.setenv("TTT_MOCK_DELAY", "0")
    return mock_module.MockLLMBackend({})


def run(coro):
    return asyncio.run(coro)


def collect(backend, prompt, **kwargs):
    """(str chunks, StreamEnd or None, exception or None) of one astream."""

    async def go():
        chunks, end = [], None
        try:
            async for item in backend.astream(prompt, **kwargs):
                if isinstance(item, StreamEnd):
                    end = item
                else:
                    chunks.append(item)
        except ProviderError as exc:
            return chunks, end, exc
        return chunks, end, None

    return run(go())


# --------------------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("prompt", "kind"),
    [
        ("hello", "greeting"),
        ("Hi there!", "greeting"),
        ("Write a Python function that reverses a list", "code"),
        ("write an SQL query for the ten newest orders", "code"),
        ("Explain how photosynthesis works", "explanation"),
        ("Why is the sky blue?", "explanation"),
        ("The weather is nice today", "default"),
        ("", "default"),
    ],
)
def test_classify(mock_module, prompt, kind):
    assert mock_module.classify(prompt) == kind


def test_answers_depend_on_the_prompt(mock):
    a = run(mock.ask("Explain how photosynthesis works"))
    b = run(mock.ask("Explain how volcanoes erupt"))
    assert "photosynthesis" in a and "volcanoes" in b and a != b


def test_code_answer_is_fenced_with_a_language(mock):
    answer = run(mock.ask("Write a function that removes empty rows"))
    assert re.search(r"```python\ndef \w+\(items\):.*\n```", answer, re.DOTALL)
    assert answer.metadata["category"] == "code" and answer.metadata["language"] == "python"
    assert answer.count("```") == 2


@pytest.mark.parametrize(
    ("prompt", "lang", "marker"),
    [
        ("Write a SQL query that lists the top customers", "sql", "SELECT"),
        ("write a javascript function to dedupe an array", "javascript", "function "),
        ("write a bash script that counts lines", "bash", "for file in"),
    ],
)
def test_code_language_detection(mock, prompt, lang, marker):
    answer = run(mock.ask(prompt))
    assert f"```{lang}\n" in answer and marker in answer
    assert answer.metadata["language"] == lang


def test_explanation_has_heading_and_bullets(mock):
    answer = run(mock.ask("Explain recursion"))
    lines = answer.splitlines()
    assert lines[0] == "## Recursion"
    assert sum(line.startswith("- ") for line in lines) >= 3


def test_explanation_that_also_asks_for_code_gets_a_code_block(mock):
    answer = run(mock.ask("Explain what df.shape means and write pandas code that drops empty rows"))
    assert answer.startswith("## What df.shape means")
    assert "```python" in answer


def test_greeting_is_short(mock):
    answer = run(mock.ask("hello"))
    assert len(answer.split()) < 20 and "```" not in answer


# --------------------------------------------------------------------------- streaming


def test_streams_small_chunks_that_join_to_the_answer(mock):
    chunks, end, error = collect(mock, "Explain how photosynthesis works")
    assert error is None
    assert len(chunks) > 20
    assert max(len(c.split()) for c in chunks) <= 2
    full = run(mock.ask("Explain how photosynthesis works"))
    assert "".join(chunks) == str(full)
    assert end.tokens_out == full.tokens_out and end.finish_reason == "stop"


def test_chunks_preserve_whitespace_exactly(mock_module):
    text = "  lead\n\n```python\nx = 1\n```\n  trail  "
    assert "".join(mock_module.chunks(text)) == text
    assert mock_module.chunks("") == []


def test_pacing_comes_from_config_and_env(mock_module, monkeypatch):
    monkeypatch.delenv("TTT_MOCK_DELAY", raising=False)
    assert mock_module.MockLLMBackend({}).delay() == mock_module.DEFAULT_DELAY
    assert mock_module.MockLLMBackend({"delay": 0.5}).delay() == 0.5
    assert mock_module.MockLLMBackend({"delay": 0.5}).delay("mock-fast") == 0.125
    monkeypatch.setenv("TTT_MOCK_DELAY", "0")
    assert mock_module.MockLLMBackend({"delay": 0.5}).delay() == 0.0


def test_pacing_sleeps_between_chunks(mock_module, monkeypatch):
    monkeypatch.delenv("TTT_MOCK_DELAY", raising=False)
    backend = mock_module.MockLLMBackend({"delay": 0.001})
    sleeps = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds):
        sleeps.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(mock_module.asyncio, "sleep", fake_sleep)
    chunks, _, _ = collect(backend, "hello")
    assert sleeps == [0.001] * (len(chunks) - 1)


def test_delay_configured_through_backends_setting(mock_module, monkeypatch):
    from ttt_magic import config

    monkeypatch.delenv("TTT_MOCK_DELAY", raising=False)
    config.configure(backends={"mock": {"delay": 0.25}})
    try:
        plugins.ensure_discovered()
        assert backend_registry.get("mock").delay() == 0.25
    finally:
        config.reset()


# --------------------------------------------------------------------------- parameters


def test_max_tokens_truncates_and_reports_length(mock):
    full = run(mock.ask("Explain recursion"))
    cut = run(mock.ask("Explain recursion", max_tokens=10))
    assert full.startswith(str(cut)) and len(cut) < len(full)
    assert cut.metadata["finish_reason"] == "length" and full.metadata["finish_reason"] == "stop"
    assert 5 <= cut.tokens_out <= 12


def test_history_is_mentioned(mock):
    history = [
        {"role": "user", "content": "Explain recursion"},
        {"role": "assistant", "content": "..."},
        {"role": "user", "content": "Tell me about stacks"},
        {"role": "assistant", "content": "..."},
    ]
    answer = run(mock.ask("And what about loops?", history=history))
    assert answer.startswith("Earlier you asked about “stacks” (and 1 other question before that).")
    assert "## Loops" in answer
    plain = run(mock.ask("And what about loops?"))
    assert "Earlier" not in plain
    assert answer.tokens_in > plain.tokens_in


@pytest.mark.parametrize(
    ("system", "expect"),
    [
        ("Talk like a pirate", "Arr, matey!"),
        ("Answer in French", "Bonjour"),
        ("You are a helpful tutor", "Following the system instruction: “You are a helpful tutor”"),
    ],
)
def test_system_changes_the_answer(mock, system, expect):
    plain = run(mock.ask("Explain recursion"))
    styled = run(mock.ask("Explain recursion", system=system))
    assert expect in styled and expect not in plain


def test_brief_system_shortens(mock):
    plain = run(mock.ask("Explain recursion"))
    brief = run(mock.ask("Explain recursion", system="Be brief."))
    assert len(brief) < len(plain) / 3
    assert "\n" not in brief.strip()
    code = run(mock.ask("Write a python function that sorts names", system="concise"))
    assert code.startswith("```python") and code.endswith("```")


def test_temperature_picks_variants_deterministically(mock):
    prompt = "Explain recursion"
    zero = {str(run(mock.ask(prompt, temperature=0))) for _ in range(3)}
    assert zero == {str(run(mock.ask(prompt)))}
    temperatures = (0.3, 0.5, 0.7, 0.9, 1.1, 1.3)
    variants = {run(mock.ask(prompt, temperature=t)).metadata["variant"] for t in temperatures}
    assert len(variants) > 1
    assert run(mock.ask(prompt, temperature=0.7)) == run(mock.ask(prompt, temperature=0.7))


def test_token_counts_and_model(mock):
    chunks, end, _ = collect(mock, "hello", model="mock-fast")
    text = "".join(chunks)
    assert end.model == "mock-fast"
    assert end.tokens_out == (len(text) + 3) // 4
    assert end.tokens_in == (len("hello") + 3) // 4
    answer = run(mock.ask("hello"))
    assert answer.model == "mock-1" and answer.backend == "mock"
    assert run(mock.ask("hello", model="anything-goes")).model == "anything-goes"
    assert run(mock.models()) == ["mock-1", "mock-fast"]


# --------------------------------------------------------------------------- test hooks


def test_fail_hook_raises_non_retryable(mock):
    chunks, end, error = collect(mock, "please [fail] now")
    assert chunks == [] and end is None
    assert isinstance(error, ProviderError) and error.retryable is False
    assert "[fail]" in str(error)
    response = run(mock.ask("[fail]"))
    assert response.failed and "[fail]" in response.error and str(response) == ""


def test_fail_after_three_chunks_keeps_partial_text(mock):
    chunks, end, error = collect(mock, "Explain recursion [fail-after-3]")
    assert len(chunks) == 3 and end is None
    assert isinstance(error, ProviderError) and not error.retryable
    response = run(mock.ask("Explain recursion [fail-after-3]"))
    assert response.failed and str(response) == "".join(chunks)
    assert "fail" not in "".join(chunks)  # the hook itself is not echoed


def test_retryable_hook(mock):
    _, _, error = collect(mock, "[fail-retryable] hi")
    assert error.retryable and error.status == 503


# --------------------------------------------------------------------------- echo


def test_echo_backend(mock_module):
    plugins.ensure_discovered()
    echo = backend_registry.get("echo")
    answer = run(echo.ask("one two three four"))
    assert str(answer) == "one two three four"
    assert answer.tokens_in == 4 and answer.tokens_out == 4
    cut = run(echo.ask("one two three four", max_tokens=2))
    assert str(cut) == "one two" and cut.metadata["finish_reason"] == "length"
    chunks, end, _ = collect(echo, "one two three")
    assert chunks == ["one", " two", " three"] and end.tokens_out == 3


def test_mock_through_the_api():
    from ttt_magic import api

    answer = api.ask("Write a SQL query that lists users", backend="mock")
    assert answer.succeeded and "```sql" in answer and answer.backend == "mock"
    assert answer.tokens_out and answer.tokens_in
    failed = api.ask("[fail]", backend="mock")
    assert failed.failed and "[fail]" in failed.error


def test_pandas_requests_get_pandas_code():
    from ttt_magic import ask

    dropped = ask("Write pandas code that drops the empty rows of this DataFrame", backend="mock")
    assert 'df.dropna(how="all")' in dropped and "```python" in dropped
    grouped = ask("Write pandas code that groups the df by city", backend="mock")
    assert "groupby" in grouped
    plain = ask("Write python code that sorts a list of numbers", backend="mock")
    assert "import pandas" not in plain


@pytest.mark.parametrize(
    ("prompt", "printed"),
    [
        (
            "Explain what a list comprehension is and write Python code that squares the even numbers",
            "[4, 16, 36]",
        ),
        ("Write python code that sorts a list of numbers", "[1, 2, 3]"),
        ("Write a python function that uppercases names", "['ADA', 'GRACE']"),
        ("Write python code that doubles the odd numbers", "[2, 6, 10]"),
    ],
)
def test_mock_python_code_runs_and_does_what_was_asked(prompt, printed, capsys):
    import re

    from ttt_magic import ask

    answer = ask(prompt, backend="mock")
    code = re.search(r"```python\n(.*?)```", answer.text, re.S).group(1)
    exec(compile(code, "<mock answer>", "exec"), {})
    assert capsys.readouterr().out.strip() == printed


# --------------------------------------------------------------------------- formats: JSON, prose, code


def test_json_when_the_prompt_asks_for_it(mock):
    answer = run(mock.ask("List three Python web frameworks as JSON, with name and year"))
    value = json.loads(str(answer))  # pure JSON: no fence, no prose around it
    assert answer.metadata["category"] == "json"
    assert list(value) == ["frameworks"] and len(value["frameworks"]) == 3
    assert all(set(item) == {"name", "year"} for item in value["frameworks"])
    assert all(isinstance(item["year"], int) for item in value["frameworks"])
    assert answer == run(mock.ask("List three Python web frameworks as JSON, with name and year"))


@pytest.mark.parametrize(
    "request_options",
    [
        {"system": "Answer with valid JSON only."},
        {"system": "Reply in JSON, talk like a pirate, be brief"},  # no voice can break the JSON
        {"response_format": "json"},
        {"response_format": {"type": "json_object"}},
        {"format": "json"},
        {"options": {"response_format": {"type": "json_object"}}},  # provider options, via the router
        {"history": [{"role": "user", "content": "hi"}], "response_format": "json"},
    ],
)
def test_json_when_the_system_prompt_or_an_option_asks_for_it(mock, request_options):
    answer = run(mock.ask("Describe the planet Mars", **request_options))
    value = json.loads(str(answer))
    assert value["topic"] == "planet Mars" and answer.metadata["category"] == "json"


def test_json_answer_is_an_instance_of_the_schema(mock):
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer", "minimum": 18},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 3},
            "role": {"enum": ["admin", "user"]},
            "email": {"type": ["string", "null"], "format": "email"},
            "address": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    wrapped = {"type": "json_schema", "json_schema": {"name": "user", "schema": schema}}
    for options in ({"schema": schema}, {"response_format": wrapped}, {"json_schema": schema}):
        value = json.loads(str(run(mock.ask("A user", **options))))
        assert set(value) == set(schema["properties"])
        assert isinstance(value["name"], str) and isinstance(value["age"], int) and value["age"] >= 18
        assert value["tags"] == ["tag 1", "tag 2", "tag 3"] and value["role"] == "admin"
        assert "@" in value["email"] and isinstance(value["address"]["city"], str)


def test_json_schema_spelled_out_in_the_system_prompt(mock):
    """A router without native structured output puts the schema into the system prompt."""
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "year": {"type": "integer"}}}
    system = (
        "Answer with one JSON value and nothing else. It must match this JSON Schema:\n"
        + json.dumps(schema, separators=(",", ":"))
        + '\nFor example (values invented): {"city": "Paris", "year": 1900}'
    )
    value = json.loads(str(run(mock.ask("Where and when?", system=system))))
    assert set(value) == {"city", "year"} and isinstance(value["year"], int)


def test_json_schema_with_refs_and_bounds(mock_module, mock):
    schema = {
        "$defs": {"City": {"type": "object", "properties": {"name": {"type": "string", "minLength": 8}}}},
        "type": "object",
        "properties": {
            "cities": {"type": "array", "items": {"$ref": "#/$defs/City"}, "minItems": 1, "maxItems": 1},
            "score": {"type": "number", "minimum": 0, "maximum": 0.25},
            "ok": {"type": "boolean"},
        },
    }
    value = json.loads(str(run(mock.ask("x", schema=schema))))
    assert len(value["cities"]) == 1 and len(value["cities"][0]["name"]) >= 8
    assert 0 <= value["score"] <= 0.25 and value["ok"] is True
    assert "schema" in mock_module.MockLLMBackend.features


@pytest.mark.parametrize(
    "prompt",
    [
        "Explain JSON",
        "Parse this JSON string in python",
        'I have the list [3, 1, 2]. Braces like {"json": true} stay as written.',
        "Write a poem about JSON",
    ],
)
def test_mentioning_json_is_not_asking_for_it(mock, prompt):
    answer = run(mock.ask(prompt))
    assert answer.metadata["category"] != "json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(str(answer))


@pytest.mark.parametrize(
    ("prompt", "form", "lines"),
    [
        ("Write a haiku about pandas", "haiku", 3),
        ("Write a limerick about regex", "limerick", 5),
        ("Write a poem about the sea", "poem", None),
        ("Tell me a story about a robot", "story", None),
    ],
)
def test_prose_for_poems_and_stories_never_code(mock, prompt, form, lines):
    answer = run(mock.ask(prompt))
    assert answer.metadata["category"] == "prose" and answer.metadata["form"] == form
    assert "```" not in answer and "def " not in answer and "import " not in answer
    subject = prompt.split(" about ")[1]
    assert subject.lower() in answer.lower()
    if lines:
        assert len(str(answer).splitlines()) == lines
    assert run(mock.ask(prompt, temperature=0.9)).metadata["variant"] in (0, 1, 2)


def test_code_only_when_code_is_asked_for(mock):
    assert "```" not in run(mock.ask("Write a haiku about pandas"))
    assert "```python" in run(mock.ask("Write pandas code that drops the empty rows"))


def test_mock_and_echo_declare_their_answers_free(mock_module):
    plugins.ensure_discovered()
    assert mock_module.MockLLMBackend.free is True
    assert type(backend_registry.get("echo")).free is True
    assert backend_registry.get("mock").free is True


def test_ask_f_json_on_the_mock_renders_valid_json(capsys):
    """``%%ask -f json`` in IPython: the mock's answer is valid JSON, so no "Invalid JSON" box."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "ttt_magic")
    try:
        capsys.readouterr()
        shell.run_cell("%%ask -b mock -f json --no-stream\nGive two colours as JSON, with name and hex")
        out = capsys.readouterr().out
    finally:
        shell.run_line_magic("unload_ext", "ttt_magic")
    assert "Invalid JSON" not in out
    value = json.loads(out[: out.rindex("}") + 1])
    assert [c["name"] for c in value["colours"]] == ["colour 1", "colour 2"]


def test_structured_answers_through_the_api():
    """``ask(..., schema=...)``: the mock answers an instance, which the schema check accepts as is."""
    from ttt_magic import ask

    answer = ask("Describe a city", backend="mock", schema={"city": str, "year": int, "tags": [str]})
    assert answer.succeeded, answer.error
    assert set(answer.data) == {"city", "year", "tags"} and isinstance(answer.data["year"], int)
    assert json.loads(str(answer)) == answer.data


# --------------------------------------------------------------------------- thinking (issue #16)


def _pieces(backend, prompt, **kwargs):
    """(thinking pieces, answer chunks, StreamEnd) of one astream, in the order they came."""

    async def go():
        order = []
        async for item in backend.astream(prompt, **kwargs):
            order.append(item)
        return order

    from ttt_magic.models import Thinking

    order = run(go())
    thoughts = [i for i in order if isinstance(i, Thinking)]
    text = [i for i in order if isinstance(i, str)]
    if thoughts and text:
        assert order.index(text[0]) > order.index(thoughts[-1])  # all the thinking comes first
    return thoughts, text, order[-1]


def test_the_mock_thinks_first_when_configured(mock_module, monkeypatch):
    monkeypatch.setenv("TTT_MOCK_DELAY", "0")
    plain = mock_module.MockLLMBackend({})
    thinker = mock_module.MockLLMBackend({"think": True})
    prompt = "Explain what a list comprehension is"
    assert _pieces(plain, prompt)[0] == []
    thoughts, text, end = _pieces(thinker, prompt)
    thought = "".join(map(str, thoughts))
    assert len(thoughts) > 5 and "“list comprehension”" in thought
    assert "".join(text) == "".join(_pieces(plain, prompt)[1])  # the answer is unchanged
    assert thought == "".join(map(str, _pieces(thinker, prompt)[0]))  # deterministic
    assert end.metadata["thinking_tokens"] == mock_module.estimate_tokens(thought)
    assert "effort" not in end.metadata


def test_effort_makes_the_mock_think_longer(mock):
    sizes = {}
    for effort in ("low", "medium", "high"):
        thoughts, _, end = _pieces(mock, "Write a Python function that reverses a list", effort=effort)
        sizes[effort] = len("".join(map(str, thoughts)))
        assert end.metadata["effort"] == effort
    assert 0 < sizes["low"] < sizes["medium"] < sizes["high"]


def test_ask_keeps_the_mock_thinking_apart(mock):
    answer = run(mock.ask("hello", effort="low"))
    assert answer.reasoning.startswith("The question is about “hello”. This is a greeting.")
    assert "The question" not in answer.text and answer.text.startswith("Hello")


def test_think_set_through_ttt_config_reaches_the_stream(monkeypatch):
    """``%ttt_config backends.mock.think=true`` (dotted keys): ``stream(parts=True)`` thinks."""
    from ttt_magic import api, config
    from ttt_magic.models import Thinking
    from ttt_magic.notebook.options import parse_assignments

    monkeypatch.setenv("TTT_MOCK_DELAY", "0")
    config.configure(**parse_assignments(["backends.mock.think=true"]))
    try:
        answer = api.stream("Why is the sky blue?", backend="mock", parts=True)
        pieces = list(answer)
    finally:
        config.reset()
    assert isinstance(pieces[0], Thinking) and answer.thinking == answer.response.reasoning
    assert answer.response.text == "".join(p for p in pieces if isinstance(p, str))
    assert answer.response.metadata["thinking_tokens"] > 0


def test_the_mock_thinking_survives_the_cache(tmp_path, monkeypatch):
    """The thinking rides on the ``StreamEnd``: a cached streamed answer keeps its ``.reasoning``."""
    from ttt_magic import api, config

    monkeypatch.setenv("TTT_MOCK_DELAY", "0")
    config.configure(cache=str(tmp_path / "cache.sqlite3"), backends={"mock": {"think": True}})
    try:
        answers = []
        for _ in range(2):
            answer = api.stream("hello", backend="mock", parts=True)
            list(answer)
            answers.append(answer.response)
    finally:
        config.reset()
    first, again = answers
    assert again.metadata.get("cached") and not first.metadata.get("cached")
    assert again.reasoning == first.reasoning and first.reasoning.startswith("The question is about")


# --------------------------------------------------------------------------- notebook context (issue #15)


def _png(width, height):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"".join(b"\x00" + b"\x80" * width for _ in range(height)))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def test_the_mock_describes_the_images_it_receives(mock):
    one = [("image/png", _png(640, 480))]
    text = "".join(collect(mock, "What is in [image: a 640x480 PNG image (1 KB)]?", images=one)[0])
    assert text.startswith("I see a 640x480 PNG image (1 KB).\n\n")
    assert "in the image" in text and "[image:" not in text  # the reference reads "the image"
    two = [*one, ("image/png", _png(20, 10))]
    text = "".join(collect(mock, "Compare them", images=two)[0])
    assert text.startswith("I see 2 images: a 640x480 PNG image (1 KB); a 20x10 PNG image (1 KB).")
    assert "I see" not in "".join(collect(mock, "Compare them")[0])


def test_the_mock_names_the_context_and_reads_the_question_without_it(mock, mock_module):
    prompt = (
        "Which city is warmest?\n\n---\nNotebook context (the variables named above, described):\n\n"
        "df: DataFrame, 5 rows × 3 columns (under 1 KB)\ncolumns: city (str)\n\ncount: int: 3"
    )
    text = "".join(collect(mock, prompt)[0])
    first, rest = text.split("\n\n", 1)
    assert first == (
        "From the notebook I was shown: df: DataFrame, 5 rows × 3 columns (under 1 KB); count: int: 3."
    )
    assert "“Which city is warmest”" in rest and "```" not in rest  # not taken for a pandas code request


def test_the_mock_answers_a_fix_request_with_a_guarded_cell(mock):
    prompt = (
        "Explain briefly why this notebook cell failed, then give the whole corrected cell as one Python "
        "code block.\n\nThe cell (In[4]):\n```python\nx = 0\ny = 1 / x\n```\n\nThe error:\n```\n"
        "Traceback (most recent call last; library frames one line each):\n"
        "  Cell In[4], line 2, in <module>\n"
        "    y = 1 / x\nZeroDivisionError: division by zero\n```"
    )
    chunks, end, error = collect(mock, prompt)
    text = "".join(chunks)
    assert error is None and end.metadata["category"] == "fix"
    assert text.startswith("## ZeroDivisionError: division by zero\n\n**Why:** a number was divided by zero")
    assert "(line 2 of In[4])" in text
    code = re.search(r"```python\n(.*?)\n```", text, re.S).group(1)
    assert code == (
        "x = 0\ntry:\n    y = 1 / x\n"
        "except ZeroDivisionError as error:  # mock fix: handle what this line raised\n"
        '    print("Skipped:", error)'
    )
    namespace: dict = {}
    exec(compile(code, "<fixed>", "exec"), namespace)  # the corrected cell runs
    indented = prompt.replace("y = 1 / x\n```\n\nThe error", "if x:\n    y = 1 / x\n```\n\nThe error")
    assert "# mock fix: the cell raised ZeroDivisionError" in "".join(collect(mock, indented)[0])


def test_classification_requests_get_one_of_the_labels():
    from ttt_magic import ask

    asked = "Classify the sentiment of this review as positive, negative or mixed. Answer with one word.\n\n"
    assert ask(asked + "Lovely and fast, but it started to leak.", backend="mock") == "mixed"
    assert ask(asked + "The light flickers. Returned it.", backend="mock") == "negative"
    assert ask(asked + "Best purchase this year.", backend="mock") == "positive"
    topic = ask(
        "Categorize this ticket as billing, bug or question: my card was charged twice", backend="mock"
    )
    assert topic in ("billing", "bug", "question")
    assert ask("Explain recursion", backend="mock") not in ("positive", "negative")
