"""The notebook as context (issue #15), below the magics: describe(), the trimmed traceback, images.

``describe`` is the one description of a value that ``{df}``, ``--context`` and
``--fix`` send: bounded whatever the size of the value. The traceback ``--fix``
sends keeps the user's frames and folds library frames, within a size limit,
with keys redacted. An image from a matplotlib figure or from PNG bytes
reaches each of the four protocol fakes in that protocol's own shape.
"""

from __future__ import annotations

import base64
import contextlib
import sys
import time

import pytest

import ttt_magic
from tests.fakes import SENTINEL_KEY, png
from ttt_magic.config import configure
from ttt_magic.describe import CUT_MARK, describe, fit, image_of, image_reference, is_image, size_text
from ttt_magic.notebook.context import names_in, normalize_options, redact, trimmed_traceback
from ttt_magic.tokens import count

pd = pytest.importorskip("pandas")
np = pytest.importorskip("numpy")


def figure():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1.5), dpi=50)
    fig.add_subplot().plot([1, 3, 2])
    return fig


# --------------------------------------------------------------------------- describe()


def test_a_small_dataframe_is_described_whole_with_dtypes_missing_values_and_memory():
    df = pd.DataFrame({"city": pd.Series(["Oslo", None], dtype="string"), "temp": [3.5, 19.0]})
    text = describe(df, name="df")
    lines = text.splitlines()
    assert lines[0] == "df: DataFrame, 2 rows × 2 columns (under 1 KB)"
    assert lines[1] == "columns: city (string), temp (float64)"
    assert lines[2] == "missing values: city 1"
    assert "Oslo" in text and "19.0" in text and "<NA>" in text


def test_a_million_row_dataframe_costs_what_a_small_one_does():
    big = pd.DataFrame(
        {"n": np.arange(1_000_000), "x": np.linspace(0, 1, 1_000_000), "label": ["row"] * 1_000_000}
    )
    started = time.perf_counter()
    text = describe(big, name="big")
    assert time.perf_counter() - started < 2
    assert text.startswith("big: DataFrame, 1,000,000 rows × 3 columns (about ")
    assert "999999" in text and "\n0 " in text  # the first and the last rows
    assert len(text) < 1500 and count(text) < 400
    small = describe(big.head(10), name="big")
    assert count(text) < 2 * count(small)
    assert count(describe(big, budget=60)) <= 60
    assert count(describe(big, budget=25)) <= 25


def test_a_budget_drops_rows_then_columns_then_cuts_visibly():
    wide = pd.DataFrame(np.zeros((50, 300)), columns=[f"feature_{i}" for i in range(300)])
    full = describe(wide)
    assert "and 260 more" in full  # 40 columns listed
    for budget in (400, 150, 60, 20):
        text = describe(wide, budget=budget)
        assert count(text) <= budget, budget
    assert describe(wide, budget=20).endswith(CUT_MARK)
    assert "rows:" not in describe(wide, budget=150)


def test_series_arrays_containers_and_callables_are_short():
    series = pd.Series(range(100_000), name="n")
    text = describe(series)
    assert text.startswith("Series 'n', 100,000 values of int64") and len(text.splitlines()) < 12
    array = describe(np.zeros((1000, 1000)))
    assert array.startswith("numpy ndarray, shape (1000, 1000), float64 (7.6 MB)") and len(array) < 600
    assert describe(list(range(10_000)), name="xs").startswith("xs: list of 10,000 items: [0, 1, 2")
    assert len(describe("x" * 100_000)) < 400
    assert describe({"a": 1}) == "dict of 1 key: {'a': 1}"
    assert describe(42, name="n") == "n: int: 42"

    def ratio(a, b=2):
        """Divide a by b."""

    assert describe(ratio).startswith("function test_series_arrays")
    assert describe(ratio).endswith("<locals>.ratio(a, b=2): Divide a by b.")


def test_images_are_named_by_their_size_never_written_out():
    data = png(640, 480)
    assert is_image(data) and is_image(figure()) and not is_image(b"plain bytes")
    assert not is_image("a.png") and not is_image(pd.DataFrame())
    assert describe(data) == "[image: a 640x480 PNG image (1 KB)]"
    assert (
        image_reference(("image/png", data), "chart.png") == "[image: chart.png, a 640x480 PNG image (1 KB)]"
    )
    fig = figure()
    assert image_of(fig)[0] == "image/png"
    assert image_of(fig.axes[0]) == image_of(fig)  # an Axes means its figure
    lines = fig.axes[0].lines
    assert is_image(list(lines))  # what plt.plot returned (Out[n] of a plotting cell)


def test_size_text_is_coarse():
    assert [size_text(n) for n in (10, 1023, 1024, 20_000, 3_500_000, 5e9)] == [
        "under 1 KB",
        "under 1 KB",
        "1 KB",
        "20 KB",
        "3.3 MB",
        "4.7 GB",
    ]


def test_fit_cuts_at_a_line_with_the_mark():
    text = "\n".join(f"line {i} with some words" for i in range(200))
    cut = fit(text, 50)
    assert count(cut) <= 50 and cut.endswith(CUT_MARK) and "line 0" in cut
    assert fit("short", 50) == "short"


# --------------------------------------------------------------------------- the traceback --fix sends


def _raise_in_json():
    import json

    secret = SENTINEL_KEY
    try:
        json.loads("{bad " + secret)
    except ValueError as exc:
        return exc
    raise AssertionError("json accepted it")


def test_library_frames_are_one_line_each_and_the_users_frames_keep_their_code():
    exc = _raise_in_json()
    text = trimmed_traceback(exc)
    lines = text.splitlines()
    assert lines[0].startswith("Traceback (most recent call last")
    assert any('json.loads("{bad " + secret)' in line for line in lines)  # the user's code line
    library = [line for line in lines if line.startswith("  (library) ")]
    assert library and all("json/" in line for line in library)
    assert not any(line.startswith("    ") and "def " in line for line in lines)  # no library code
    assert "site-packages" not in text and sys.prefix not in text
    assert lines[-1].startswith("json.decoder.JSONDecodeError: Expecting property name")


def test_a_long_run_of_library_frames_is_folded_and_the_size_is_bounded():
    def deep(n):
        return deep(n - 1) if n else 1 / 0

    try:
        deep(500)
    except ZeroDivisionError as exc:
        text = trimmed_traceback(exc, budget=300)
    assert count(text) <= 300
    assert "frames left out" in text
    assert text.rstrip().endswith("ZeroDivisionError: division by zero")


def test_keys_and_key_shaped_values_are_redacted():
    key = SENTINEL_KEY
    try:
        int(key)
    except ValueError as error:
        exc = error
    text = trimmed_traceback(exc)
    assert SENTINEL_KEY in text  # the raw traceback has it ...
    cleaned, found = redact(text, [SENTINEL_KEY])
    assert SENTINEL_KEY not in cleaned and found >= 1  # ... what is sent does not
    other, found = redact("token sk-live-0123456789abcdef and Bearer abc.def", [])
    assert "0123456789abcdef" not in other and "abc.def" not in other and found == 2


# --------------------------------------------------------------------------- reading the question


def test_names_in_braces_and_words():
    names, braced = names_in("Why is {df.shape} odd, and what is total? {x!r}")
    assert names[:2] == ["df", "x"] and "total" in names and braced == {"df", "x"}


def test_context_takes_all_or_gives_the_word_back():
    class Opts:
        context = "what"
        prompt = ["is", "df"]

    opts = normalize_options(Opts())
    assert opts.context == "named" and opts.prompt == ["what", "is", "df"]
    opts.context = "all"
    assert normalize_options(opts).context == "ALL"


# --------------------------------------------------------------------------- images to the four fakes


@contextlib.contextmanager
def started_fakes():
    """The four protocol fakes, started and configured as the providers' servers; stopped after."""
    from tests.fakes.anthropic_fake import AnthropicFake
    from tests.fakes.google_fake import GeminiFake
    from tests.fakes.ollama_fake import OllamaFake
    from tests.fakes.openai_fake import OpenAIFake

    servers = {
        "openai": OpenAIFake(api_key=SENTINEL_KEY),
        "anthropic": AnthropicFake(),
        "google": GeminiFake(),
        "local": OllamaFake(installed=("llava:latest",)),
    }
    for server in servers.values():
        server.start()
    configure(
        openai_base_url=servers["openai"].base_url,
        openai_api_key=SENTINEL_KEY,
        anthropic_base_url=servers["anthropic"].url,
        anthropic_api_key=SENTINEL_KEY,
        gemini_base_url=servers["google"].url,
        google_api_key=SENTINEL_KEY,
        ollama_base_url=servers["local"].url,
    )
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()
        from ttt_magic.backends import ollama

        ollama.forget_probes()


@pytest.fixture
def fakes():
    with started_fakes() as servers:
        yield servers


MODELS = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-sonnet-4-5",
    "google": "gemini-2.5-flash",
    "local": "llava",
}


def sent_image(backend: str, body: dict) -> tuple[str, tuple[str, bytes]]:
    """(the text, (MIME type, bytes) of the one image) of a request body, read in that protocol's shape."""
    if backend == "openai":
        parts = body["messages"][-1]["content"]
        url = parts[1]["image_url"]["url"]
        assert parts[0]["type"] == "text" and parts[1]["type"] == "image_url"
        assert url.startswith("data:image/png;base64,")
        return parts[0]["text"], ("image/png", base64.b64decode(url.split(",", 1)[1]))
    if backend == "anthropic":
        text, block = body["messages"][-1]["content"]
        assert block["type"] == "image" and block["source"]["type"] == "base64"
        return text["text"], (block["source"]["media_type"], base64.b64decode(block["source"]["data"]))
    if backend == "google":
        text, part = body["contents"][-1]["parts"]
        inline = part["inline_data"]
        return text["text"], (inline["mime_type"], base64.b64decode(inline["data"]))
    message = body["messages"][-1]
    assert len(message["images"]) == 1
    return message["content"], ("image/png", base64.b64decode(message["images"][0]))


@pytest.mark.parametrize("source", ["figure", "png bytes"])
@pytest.mark.parametrize("backend", list(MODELS))
def test_an_image_reaches_each_protocol_in_its_shape(fakes, backend, source):
    value = figure() if source == "figure" else png(40, 30)
    expected = image_of(value)
    answer = ttt_magic.ask("What is this?", backend=backend, model=MODELS[backend], images=[value])
    assert answer.succeeded, answer.error
    assert sent_image(backend, fakes[backend].last.json) == ("What is this?", expected)
