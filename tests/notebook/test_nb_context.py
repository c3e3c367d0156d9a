"""%ask --fix, %%ask --context and images from the magic (issue #15), in-process and in a real kernel.

In-process (terminal IPython) a recording backend shows exactly what one
``%%ask`` sent: the prompt, and the images as ``images=[(mime, bytes)]``. In a
real kernel (``kernel_harness``) a real error is fixed against the OpenAI fake,
whose recorded request body is checked: the cell, the trimmed traceback, the
variables, and never the sentinel key.
"""

from __future__ import annotations

import re
import sys

import pytest

import ttt_magic
from tests.fakes import SENTINEL_KEY
from tests.test_context import MODELS, figure, png, sent_image, started_fakes
from ttt_magic.backends.base import BaseBackend
from ttt_magic.describe import image_of
from ttt_magic.models import AIResponse
from ttt_magic.notebook import context
from ttt_magic.registry import backend_registry
from ttt_magic.tokens import count

pd = pytest.importorskip("pandas")
np = pytest.importorskip("numpy")

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
FIXED = "The divisor is zero.\n\n```python\ntotal, count = 10, 1\nratio = total / count\n```"


def run(shell, capsys, cell: str) -> str:
    shell.run_cell(cell, store_history=True)
    captured = capsys.readouterr()
    return _ANSI.sub("", captured.out + captured.err)


@pytest.fixture
def looker(shell):
    """Every request the ``looker`` backend gets: the prompt and its keyword arguments."""
    seen: list[dict] = []

    class Looker(BaseBackend):
        backend_name = "looker"

        async def ask(self, prompt, **kwargs):
            seen.append({"prompt": prompt, **kwargs})
            return AIResponse(FIXED, backend=self.name, model="looker-1")

    backend_registry.register_backend("looker", Looker)
    ttt_magic.configure(default_backend="looker")
    try:
        yield seen
    finally:
        backend_registry.unregister("looker")


@pytest.fixture
def no_error(shell, monkeypatch):
    """A kernel in which nothing has failed yet (the shell is shared by the whole session)."""
    context._records.pop(shell, None)
    for name in ("last_exc", "last_value", "last_type", "last_traceback"):
        monkeypatch.delattr(sys, name, raising=False)


# --------------------------------------------------------------------------- --fix


def test_fix_with_no_error_says_so_in_one_line_and_sends_nothing(shell, capsys, looker, no_error):
    out = run(shell, capsys, "%ask --fix")
    assert out == f"ttt-magic: {context.NO_ERROR} Run the cell that fails, then %ask --fix.\n"
    assert looker == []
    assert ttt_magic.last_response.metadata["kind"] == "usage"


def test_fix_sends_the_cell_its_trimmed_traceback_and_the_variables(shell, capsys, looker, no_error):
    run(shell, capsys, "def ratio(a, b):\n    return a / b")
    run(shell, capsys, "total, count = 10, 0\nresult = ratio(total, count)")
    number = shell.execution_count - 1
    out = run(shell, capsys, "%ask --fix")
    prompt = looker[-1]["prompt"]
    assert prompt.startswith(context.FIX_REQUEST)
    assert (
        f"The cell (In[{number}]):\n```python\ntotal, count = 10, 0\nresult = ratio(total, count)\n```"
        in prompt
    )
    assert f"  Cell In[{number}], line 2, in <module>\n    result = ratio(total, count)" in prompt
    assert "in ratio\n    return a / b\nZeroDivisionError: division by zero" in prompt
    assert "interactiveshell.py" not in prompt  # the kernel's own frames are left out
    for described in ("a (in ratio): int: 10", "b (in ratio): int: 0", "total: int: 10", "count: int: 0"):
        assert described in prompt
    assert "function ratio(a, b)" in prompt
    assert f"--fix: ZeroDivisionError from In[{number}], ~" in out and "tokens of context]" in out
    assert "The divisor is zero." in out


def test_fix_takes_instructions_from_the_body_and_inserts_the_code(shell, capsys, looker, no_error):
    run(shell, capsys, "[1, 2][5]")
    shell.rl_next_input = None
    try:
        run(shell, capsys, "%%ask --fix --insert\nKeep it to one line.")
        assert "\n\nAlso: Keep it to one line.\n\n" in looker[-1]["prompt"]
        assert "IndexError: list index out of range" in looker[-1]["prompt"]
        assert shell.rl_next_input == "total, count = 10, 1\nratio = total / count"
    finally:
        shell.rl_next_input = None


@pytest.mark.parametrize("configured", [True, False], ids=["configured key", "key-shaped value"])
def test_the_sentinel_key_in_the_traceback_is_redacted(shell, capsys, looker, no_error, configured):
    if configured:
        ttt_magic.configure(openai_api_key=SENTINEL_KEY)
    shell.user_ns["token"] = SENTINEL_KEY
    run(shell, capsys, 'headers = {"Authorization": token}\nint(headers["Authorization"])')
    out = run(shell, capsys, "%ask --fix")
    prompt = looker[-1]["prompt"]
    assert "int(headers[" in prompt and "ValueError: invalid literal for int()" in prompt
    assert "token: str of 35 characters" in prompt or "headers: dict of 1 key" in prompt
    assert SENTINEL_KEY not in prompt and "SENTINEL" not in prompt
    assert SENTINEL_KEY not in out
    assert "redacted" in out
    shell.user_ns.pop("token", None)


def test_an_error_raised_before_the_extension_was_loaded_is_found(shell, capsys, looker, no_error):
    try:
        {}["missing"]
    except KeyError as exc:
        sys.last_type, sys.last_value, sys.last_traceback = type(exc), exc, exc.__traceback__
    run(shell, capsys, "%ask --fix")
    assert "KeyError: 'missing'" in looker[-1]["prompt"]


def test_an_interrupt_is_not_an_error_to_fix(shell, capsys, looker, no_error):
    run(shell, capsys, "raise KeyboardInterrupt")
    out = run(shell, capsys, "%ask --fix")
    assert context.NO_ERROR in out and looker == []


# --------------------------------------------------------------------------- --context


def test_context_describes_the_variables_the_question_names(shell, capsys, looker):
    shell.user_ns.update(
        df=pd.DataFrame({"city": ["Oslo", "Lima"], "temp": [3.5, 19.0]}),
        other=pd.Series([1, 2], name="other"),
        threshold=20,
    )
    out = run(shell, capsys, "%%ask --context\nWhich city in df is above threshold?")
    prompt = looker[-1]["prompt"]
    question, section = prompt.split("\n\n---\n", 1)
    assert question == "Which city in df is above threshold?"
    assert section.startswith(context.CONTEXT_HEADING)
    assert "df: DataFrame, 2 rows × 2 columns" in section and "columns: city (" in section
    assert "threshold: int: 20" in section and "other" not in section
    assert re.search(r"context: df, threshold \(~\d+ tokens\)", out)
    run(shell, capsys, "%%ask --context ALL\nWhat should I look at?")
    assert "other: Series 'other', 2 values of int64" in looker[-1]["prompt"]
    run(shell, capsys, "%ask --context=ALL what about {df}?")  # already described where it stands
    assert looker[-1]["prompt"].count("df: pandas DataFrame") == 0
    assert looker[-1]["prompt"].count("DataFrame, 2 rows") == 1
    for name in ("df", "other", "threshold"):
        shell.user_ns.pop(name, None)


def test_context_on_a_cell_line_gives_a_word_back_to_the_prompt(shell, capsys, looker):
    shell.user_ns["xs"] = [1, 2, 3]
    run(shell, capsys, "%%ask --context what is\nin xs?")
    assert looker[-1]["prompt"].startswith("what is\nin xs?\n\n---\n")
    assert "xs: list of 3 items: [1, 2, 3]" in looker[-1]["prompt"]
    shell.user_ns.pop("xs")


def test_context_of_a_million_row_dataframe_is_bounded_by_the_budget(shell, capsys, looker):
    shell.user_ns["big"] = pd.DataFrame({"n": np.arange(1_000_000), "label": ["x" * 30] * 1_000_000})
    try:
        run(shell, capsys, "%%ask --context\nSummarise big")
        section = looker[-1]["prompt"].split("\n\n---\n", 1)[1]
        assert "1,000,000 rows × 2 columns" in section and count(section) < 400
        run(shell, capsys, "%ttt_config context_budget=60")
        out = run(shell, capsys, "%%ask --context\nSummarise big")
        section = looker[-1]["prompt"].split("\n\n---\n", 1)[1]
        assert count(section) <= 60 + count(context.CONTEXT_HEADING)
        assert "1,000,000 rows" in section
        assert re.search(r"context: big \(~(\d+) tokens\)", out)
    finally:
        shell.user_ns.pop("big", None)


def test_context_naming_nothing_says_so(shell, capsys, looker):
    out = run(shell, capsys, "%%ask --context\nWhat is a monad?")
    assert looker[-1]["prompt"].strip() == "What is a monad?"
    assert "--context: the question names no variable of this notebook" in out


# --------------------------------------------------------------------------- images


def test_a_figure_in_braces_is_sent_as_an_image_and_the_chat_keeps_a_reference(shell, capsys, looker):
    fig = figure()
    shell.user_ns["fig"] = fig
    try:
        out = run(shell, capsys, "%%ask -c pics\nWhat does {fig} show?")
        sent = looker[-1]
        assert sent["images"] == [image_of(fig)]
        assert re.fullmatch(r"What does \[image: a \d+x\d+ PNG image \(\d+ KB\)\] show\?\n?", sent["prompt"])
        assert "1 image sent: a " in out
        run(shell, capsys, "%ask --chat=pics and the colours?")
        history = looker[-1]["history"]
        assert history[0]["content"] == sent["prompt"]  # the reference, not the bytes
        assert "images" not in looker[-1] and "\\x89PNG" not in repr(history)
        run(shell, capsys, "%ask {fig!r}")  # a conversion asks for the text
        assert "images" not in looker[-1] and "<Figure size" in looker[-1]["prompt"]
    finally:
        shell.user_ns.pop("fig", None)


def test_an_output_that_was_an_image_is_sent_as_one(shell, capsys, looker):
    from IPython.display import Image

    shell.user_ns["fig"] = figure()
    try:
        run(shell, capsys, "fig.axes[0].plot([2, 2, 2])")  # Out[n]: what plt.plot returned
        number = shell.execution_count - 1
        run(shell, capsys, f"%ask What does {{Out[{number}]}} add?")
        assert looker[-1]["images"] == [image_of(shell.user_ns["fig"])]
        shell.user_ns["shown"] = Image(data=png(8, 6))
        run(shell, capsys, "%ask and {shown}?")
        assert looker[-1]["images"] == [("image/png", png(8, 6))]
    finally:
        shell.user_ns.pop("fig", None)
        shell.user_ns.pop("shown", None)


def test_png_bytes_and_image_files_are_sent_as_images(shell, capsys, looker, tmp_path):
    data = png(640, 480)
    path = tmp_path / "chart.png"
    path.write_bytes(png(20, 10))
    shell.user_ns["raw"] = data
    try:
        run(shell, capsys, f"%%ask --image {path} --image {path}\nCompare {{raw}} with these.")
        sent = looker[-1]
        assert sent["images"] == [("image/png", data), ("image/png", png(20, 10)), ("image/png", png(20, 10))]
        assert sent["prompt"].startswith("Compare [image: a 640x480 PNG image (1 KB)] with these.")
        assert sent["prompt"].count("[image: chart.png, a 20x10 PNG image (1 KB)]") == 2
        assert str(tmp_path) not in sent["prompt"]
    finally:
        shell.user_ns.pop("raw", None)


def test_an_unreadable_image_is_refused_in_one_line(shell, capsys, looker):
    out = run(shell, capsys, "%ask --image no-such.png what is it")
    assert out == "ttt-magic: Cannot read the image 'no-such.png': No such file or directory.\n"
    assert looker == []


def test_a_model_without_vision_is_refused_in_one_line_before_sending(shell, capsys, looker, tmp_path):
    (tmp_path / "a.png").write_bytes(png())
    out = run(shell, capsys, f"%ask -b local -m deepseek-r1 --image {tmp_path / 'a.png'} what is it")
    assert out.startswith("ttt-magic: Model 'deepseek-r1' does not read images") and out.count("\n") == 1
    assert "Vision-capable models of ollama" in out


def test_the_mock_says_what_it_received(shell, capsys):
    shell.user_ns["chart"] = png(640, 480)
    try:
        out = run(shell, capsys, "%ask -b mock What does {chart} show?")
    finally:
        shell.user_ns.pop("chart", None)
    assert out.startswith("I see a 640x480 PNG image (1 KB).")


@pytest.mark.parametrize("source", ["figure", "png bytes"])
@pytest.mark.parametrize("backend", list(MODELS))
def test_the_magic_sends_an_image_to_each_protocol_in_its_shape(shell, capsys, fakes, backend, source):
    value = figure() if source == "figure" else png(40, 30)
    shell.user_ns["picture"] = value
    try:
        out = run(shell, capsys, f"%%ask -b {backend} -m {MODELS[backend]}\nWhat is {{picture}}?")
    finally:
        shell.user_ns.pop("picture", None)
    assert "1 image sent" in out, out
    text, image = sent_image(backend, fakes[backend].last.json)
    assert image == image_of(value)
    assert re.fullmatch(r"What is \[image: a \d+x\d+ PNG image \(\d+ KB\)\]\?\n?", text)


@pytest.fixture
def fakes():
    with started_fakes() as servers:
        yield servers


# --------------------------------------------------------------------------- a real kernel

KERNEL_ERROR = f"""
api_token = {SENTINEL_KEY!r}
rows = [{{"name": "a", "price": 3}}, {{"name": "b"}}]
total = sum(row["price"] for row in rows)
"""


@pytest.mark.kernel
def test_fix_after_a_real_error_in_a_real_kernel_reaches_the_server_redacted(kernel):
    from tests.fakes.openai_fake import OpenAIFake

    with OpenAIFake(api_key=SENTINEL_KEY) as fake:
        fake.answer = [
            "Row b has no price.\n\n```python\ntotal = sum(row.get('price', 0) for row in rows)\n```"
        ]
        kernel.ok(
            "import ttt_magic\n"
            f"ttt_magic.configure(openai_base_url={fake.base_url!r}, openai_api_key={SENTINEL_KEY!r})"
        )
        failed = kernel.execute(KERNEL_ERROR + f"print({SENTINEL_KEY!r} + api_token)")
        assert failed.errors and failed.errors[0]["ename"] == "KeyError"
        result = kernel.ok("%ask --fix --insert -b openai -m gpt-4o-mini")
        body = fake.last.json
    prompt = body["messages"][-1]["content"]
    assert 'total = sum(row["price"] for row in rows)' in prompt
    assert re.search(r"Cell In\[\d+\], line 3, in <module>", prompt)
    assert (
        "The cell (In[" in prompt and "```python\napi_token = " in prompt
    )  # as run, leading blank line dropped
    assert "in <genexpr>" in prompt and prompt.count("KeyError: 'price'") == 1
    assert "\n\nrows: list of 2 items: [{'name': 'a', 'price': 3}, {'name': 'b'}]" in prompt  # a global
    assert "row (in <genexpr>): dict of 1 key: {'name': 'b'}" in prompt  # the row that failed
    assert prompt.count("rows: list") == 1  # the same object is described once, whatever the frame
    assert SENTINEL_KEY not in str(body) and "SENTINEL" not in str(body)
    shown = result.final()["data"]["text/markdown"]
    assert "Row b has no price." in shown and "--fix: KeyError from In[" in shown
    inserted = [p["text"] for p in result.payload if p.get("source") == "set_next_input"]
    assert inserted == ["total = sum(row.get('price', 0) for row in rows)"]


@pytest.mark.kernel
def test_no_error_in_a_fresh_kernel_and_a_figure_in_a_real_kernel(kernel):
    fresh = kernel.ok(
        "%unload_ext ttt_magic\n%load_ext ttt_magic\nimport sys\n"
        "sys.last_value = sys.last_exc = sys.last_type = sys.last_traceback = None"  # 3.12+: last_exc
    )
    assert fresh.errors == []
    nothing = kernel.ok("%ask --fix")
    assert context.NO_ERROR in nothing.final()["data"]["text/plain"]
    kernel.ok(
        "import matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots(figsize=(4, 3), dpi=100)\n"
        "ax.plot([1, 3, 2])\nplt.close(fig)"
    )
    answer = kernel.ok("%%ask -b mock --no-stream\nWhat trend does {fig} show?")
    shown = answer.final()["data"]
    assert re.match(r"I see a \d+x\d+ PNG image \(\d+ KB\)\.", shown["text/plain"])
    assert "1 image sent" in shown["text/markdown"]
    assert "image/png" not in shown and all(len(v) < 5000 for v in shown.values())  # no image stored


@pytest.mark.kernel
def test_the_vision_refusal_is_one_line_in_a_real_kernel(kernel, tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(png())
    result = kernel.execute(f"%ask -b local -m deepseek-r1 --image {path} what is it")
    assert result.errors == []
    shown = result.final()["data"]["text/plain"]
    assert (
        shown.startswith("ttt-magic: Model 'deepseek-r1' does not read images") and "\n" not in shown.strip()
    )


def test_describe_is_what_df_interpolation_writes(shell, capsys, looker):
    from ttt_magic.describe import describe

    df = pd.DataFrame({"v": range(1000)})
    shell.user_ns["df"] = df
    try:
        run(shell, capsys, "%%ask\nLook: {df}")
    finally:
        shell.user_ns.pop("df", None)
    assert looker[-1]["prompt"].rstrip() == "Look: " + describe(df, rows=20)
