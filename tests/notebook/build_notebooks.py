"""Build the example notebooks in notebooks/ and save them with outputs, the way CI checks them.

The notebooks' source lives here (one list of cells each) so that they stay
reviewable and are always saved executed under the nbval recipe of
docs/notebook-ci.md: ``TTT_STREAM=0`` (one final display per ``%%ask``), the
``mock`` backend with no delay, no provider keys. Run after changing a cell or
the rendering::

    .venv/bin/python tests/notebook/build_notebooks.py            # all
    .venv/bin/python tests/notebook/build_notebooks.py 01_quickstart

``tests/notebook/test_nb_nbval.py`` then runs ``pytest --nbval`` on them. Saved
outputs must not name this machine's paths (``tests/test_saved_outputs.py``): the
build refuses to save a notebook whose outputs do, and a cell tagged
``remove-output`` runs but is saved without its output.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
sys.path.insert(0, str(REPO))

from tests.notebook.kernel_harness import isolated_env  # noqa: E402
from tests.test_saved_outputs import paths_in_outputs  # noqa: E402

KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENROUTER_API_KEY")

SETUP = f"""%load_ext ttt_magic
# Offline unless you have a key: with no provider key in the environment, answers come
# from the built-in `mock` backend (a pretend model, no network). Set OPENAI_API_KEY,
# ANTHROPIC_API_KEY, GEMINI_API_KEY or OPENROUTER_API_KEY before starting Jupyter
# (or run a local Ollama and remove these lines) to get real answers.
import os
if not any(os.environ.get(k) for k in {KEYS!r}):
    %ttt_config default_backend=mock"""

SETUP_NOTE = (
    "**Setup.** This cell loads the extension. Without an API key it switches to the `mock` backend, "
    "so every cell below runs offline and gives the same answers each time; with a key set, the same "
    "cells ask a real model."
)


def md(text: str) -> dict:
    return nbformat.v4.new_markdown_cell(text.strip())


def code(text: str, tags: list[str] | None = None) -> dict:
    """A code cell; the tag ``remove-output`` (Jupyter Book's name) runs it but saves no output."""
    cell = nbformat.v4.new_code_cell(text.strip())
    if tags:
        cell.metadata["tags"] = tags
    return cell


REPLAY_NOTE = (
    "**Recorded answers.** The answers in this notebook were recorded once from a real small model "
    "(SmolLM2-135M-Instruct, served by llama.cpp on a laptop; each footer says so) and replay from "
    "`{name}.answers.jsonl` beside it: no key, no network, the same answers every time. A question "
    "that was not recorded goes to the backend the setup cell chose. `%ttt_replay --off` asks live "
    "instead; `scripts/record_notebooks.py` records them again from your own server."
)


def replaying(name: str) -> str:
    return f"%ttt_replay {name}.answers.jsonl --mode fallthrough"


QUICKSTART = [
    md("""
# ttt-magic quickstart

`%%ask` sends the cell to a language model and streams the answer into the output as Markdown.
This notebook covers loading, asking, streaming, variables, output formats, keeping answers and
conversations.
"""),
    md(SETUP_NOTE),
    code(SETUP),
    md(REPLAY_NOTE.format(name="01_quickstart")),
    code(replaying("01_quickstart")),
    md("""
## Ask

Everything below the `%%ask` line is the prompt. The answer streams in as it is generated; the
small line under it says which model and backend answered, the tokens used, the time and (for
paid models) the cost.
"""),
    code("""
%%ask
Explain what a Python list comprehension is.
"""),
    md("""
## Your variables in the prompt

`{name}`, `{obj.attr}`, `{d['key']}`, `{items[0]}`, `{In[3]}`, `{Out[3]}` and `{_}` are replaced
by their values. Every other brace stays exactly as written (JSON, dict comprehensions, LaTeX
such as `\\frac{a}{b}`, `{{ templates }}`, names you have not defined), so code can be pasted
into prompts safely. `--raw` turns replacement off.
"""),
    code("""
numbers = [3, 1, 2]
topic = "sorting"
"""),
    code("""
%%ask
I have the list {numbers}. Explain how {topic} works on it.
Braces like {"json": true} or {undefined} stay as written.
"""),
    md("""
## One-line questions

`%ask` takes the prompt from the rest of the line (options first).
"""),
    code("%ask What is a tuple?"),
    md("""
## Formats

`-f code` keeps only the code, highlighted (`--insert` also puts it in a new cell below);
`-f json` parses and pretty-prints JSON (or says why it is not valid); `-f text` and `-f html`
show the answer as plain text or HTML. The `echo` backend used for JSON here simply repeats
the prompt.
"""),
    code("""
%%ask -f code
Write python code that sorts a list of numbers
"""),
    code("""
%%ask -b echo -f json
{"name": "Ada", "languages": ["python", "sql"], "active": true}
"""),
    md("""
## Keep the answer

`-o NAME` stores the answer, an `AIResponse`: a string that also knows its model, backend,
tokens, time, cost and route. The latest answer is always in `ttt_magic.last_response`.
"""),
    code("""
%%ask -o answer
Explain what a dictionary is
"""),
    code("""
import ttt_magic
print(answer.backend, answer.model, answer.tokens_out)
print(ttt_magic.last_response is answer)
"""),
    md("""
## Conversations

`-c` (or `--chat NAME`) continues a conversation, so the model sees the earlier turns;
`--new` starts it afresh.
"""),
    code("""
%%ask -c --new
What is a list?
"""),
    code("""
%%ask -c
And how is a tuple different?
"""),
    md("""
## When something goes wrong

Errors are one short message with what to do, never a traceback, and the run continues
(set `raise_on_error=true` to make them stop a notebook instead). The mock backend fails
on purpose when a prompt contains `[fail]`.
"""),
    code(
        """
%%ask -b mock
[fail] Show me what an error looks like
""",
        tags=["raises-exception"],  # recording raises on errors; here the cell shows one line
    ),
    md("""
Next: `02_routing_and_config.ipynb` (choosing models, rules, fallbacks, settings),
`03_plugins.ipynb` (your own backend), `04_data_exploration.ipynb` (DataFrames in prompts).
Run `%%ask?` for every option.
"""),
]

ROUTING = [
    md("""
# Routing and configuration

How a backend and model are chosen for each question, how to change that, and where settings
come from.
"""),
    md(SETUP_NOTE),
    code(SETUP),
    md("""
## Models and aliases

`%ttt_models [FILTER]` lists the catalogue and its aliases (`fast`, `best`, `coding`, ...).
`-m` takes a model name, an alias, or `provider/model`. (The catalogue grows as providers
release models, so nbval is told not to compare this listing.)
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
%ttt_models claude
"""),
    md("""
You can add models and aliases of your own. Here two models served by the `mock` backend
(provider `mock`), and an alias for one of them:
"""),
    code(
        "%ttt_config models=[{name: mock-1, provider: mock, aliases: [tiny]}, "
        "{name: mock-fast, provider: mock}]"
    ),
    code("%ttt_config model_aliases={quick: mock-fast}"),
    md("""
## Why this backend? `--explain`

`--explain` shows the routing decision, step by step, before the answer.
"""),
    code("""
%%ask -m quick --explain
What is recursion?
"""),
    md("""
## Rules

`routing.rules` send prompts that match a condition (`contains`, `length_gt`, `length_lt`) to
a backend or model. This rule sends poems to the `echo` backend:
"""),
    code("%ttt_config routing={rules: [{if: {contains: [poem]}, prefer_backend: echo}]}"),
    code("""
%%ask --explain
Write a poem about the sea
"""),
    md("""
## Fallbacks

When the chosen backend fails or is unavailable, the next one of `fallback_order` answers, and
the route records every attempt. The mock backend fails on purpose when a prompt contains
`[fail]`; here the `echo` backend takes over:
"""),
    code("%ttt_config fallback_order=[echo]"),
    code("""
%%ask --explain
[fail] Say hello quickly
"""),
    code("""
import ttt_magic
[(a["backend"], a["outcome"]) for a in ttt_magic.last_response.route["attempts"]]
"""),
    md("""
A cloud model without its key: `--explain` says that the cloud backend is unavailable and which
backend answers instead.
"""),
    code("""
%%ask -m openai/gpt-4.1-mini --explain
Say hello quickly
"""),
    md("""
## Where settings come from

Highest first: `%ttt_config` / `configure()`, environment variables (`TTT_*` and the providers'
own, such as `OPENAI_API_KEY`), YAML files (`./ttt.yaml`, `~/.config/ttt/config.yaml`, ... or
the file named by `TTT_CONFIG`), defaults. Here a file next to this notebook sets `timeout`
(a name that is not searched by default, so only `TTT_CONFIG` brings it in; it is deleted below):
"""),
    code("""
import os, pathlib
config_file = pathlib.Path("ttt-example.yaml")
config_file.write_text("timeout: 12\\nmax_retries: 1\\n")
os.environ["TTT_CONFIG"] = str(config_file)

settings = ttt_magic.get_config()
print(settings.timeout, settings.max_retries, settings.source("timeout") == str(config_file))
"""),
    md("""
`%ttt_config --show` prints every setting with its value and source (API keys masked). What it
shows depends on this machine's environment variables and files, so the cell is marked for
nbval to skip comparing it.
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
%ttt_config --show
"""),
    code("""
del os.environ["TTT_CONFIG"]
config_file.unlink()
"""),
    md("""
IPython's own configuration works too: `%config TTTMagics.footer = False` here, or
`c.TTTMagics.default_backend = "mock"` in `ipython_config.py` (with
`c.InteractiveShellApp.extensions = ["ttt_magic"]` to load the extension at start).
"""),
    code("%config TTTMagics.footer = False"),
    code("%ask -m tiny What is a closure?"),
    code("%config TTTMagics.footer = True"),
    md("""
With ipywidgets installed, `%ttt_config` alone shows a panel of selectors for the default
backend and model. Unknown keys get a suggestion:
"""),
    code("%ttt_config default_bakend=mock"),
]

PLUGIN_FILE = '''
"""A plugin file: answers with the words of the prompt in reverse order."""
from ttt_magic.backends import BaseBackend


class ReverseBackend(BaseBackend):
    backend_name = "reverse"

    async def astream(self, prompt, **kwargs):
        for word in reversed(prompt.split()):
            yield word + " "


def register_plugin(registry):
    registry.register_backend("reverse", ReverseBackend, version="1.0",
                              description="Reverses the prompt's words")
'''

PLUGINS = [
    md("""
# Plugins: your own backend

A backend is a class with an async `astream` (or `ask`) method. Register it and `%%ask -b NAME`
uses it, with streaming, routing, footers and errors handled as for the built-in ones.
"""),
    md(SETUP_NOTE),
    code(SETUP),
    md("## A backend in a cell"),
    code('''
from ttt_magic import register_backend
from ttt_magic.backends import BaseBackend


class ShoutBackend(BaseBackend):
    """Answers with the prompt in capitals, one word at a time."""

    backend_name = "shout"

    async def astream(self, prompt, **kwargs):
        for word in prompt.split():
            yield word.upper() + " "


entry = register_backend("shout", ShoutBackend)
'''),
    code("""
%%ask -b shout
plugins are small classes
"""),
    md("""
## Give it models

A model whose provider is the backend's name is routed to it, and aliases work as usual.
"""),
    code("""
from ttt_magic import ModelInfo, model_registry

model_registry.add_model(ModelInfo(name="shout-1", provider="shout", aliases=["loud"]))
"""),
    code("""
%%ask -m loud --explain
routing finds my backend
"""),
    md("""
## A plugin file

Plugins are Python files with a `register_plugin(registry)` function, loaded with
`ttt_magic.load_plugin(path)` or discovered automatically in `~/.config/ttt/plugins/`,
`~/.ai/plugins/`, `./ai_plugins/` and the `ttt_magic.plugins` entry point group.
"""),
    code(f"""
import pathlib
import ttt_magic

plugin_path = pathlib.Path("demo_plugins") / "reverse_backend.py"  # beside this notebook
plugin_path.parent.mkdir(exist_ok=True)
plugin_path.write_text({PLUGIN_FILE!r})

record = ttt_magic.load_plugin(plugin_path)
print(record.status, record.backends)
"""),
    code("""
%%ask -b reverse
first second third
"""),
    md("""
`%ttt_status` lists every backend (available or why not), every plugin (loaded or failed, with
the error, and the file it came from, relative to this folder or `~`), and this session's calls,
tokens and cost, by backend and model. Its times change on every run, so nbval does not compare
this cell's output.
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
%ttt_status
"""),
    md("""
A plugin that fails to load does not break anything else: its error is shown by `%ttt_status`
and by `load_plugin`'s record.
"""),
    code("""
broken_path = plugin_path.with_name("broken_backend.py")
broken_path.write_text("def register_plugin(registry):\\n"
                       "    raise RuntimeError('no config for this plugin')\\n")
broken = ttt_magic.load_plugin(broken_path)
print(broken.status, "-", broken.error.split(" (")[0])
"""),
    code("""
import shutil

shutil.rmtree("demo_plugins")  # the demo's files go; the loaded backend stays for this session
"""),
]

DATA = [
    md("""
# Exploring a DataFrame with `%%ask`

A DataFrame in braces is sent as a compact text table (at most 20 rows and 12 columns;
anything longer than `interpolation_limit` characters is cut with a visible note).
"""),
    md(SETUP_NOTE),
    code(SETUP),
    code("""
import pandas as pd

df = pd.DataFrame({
    "city": pd.Series(["Oslo", "Lima", None, "Pune", "Quito"], dtype="string"),  # text; missing shows as <NA>
    "temp_c": [3.5, 19.0, None, 31.2, 14.8],
    "rain_mm": [49, 1, None, 12, 80],
})
df
"""),
    md("What the model receives for `{df}`:"),
    code("""
from ttt_magic.notebook.interpolate import interpolate

print(interpolate("{df}", globals()))
"""),
    code("""
%%ask
Explain what the shape {df.shape} of my data means, and which rows look incomplete:

{df}
"""),
    md("""
## Generate code, insert it below

`-f code` shows only the code; `--insert` also puts it in a new cell right below this one
(in JupyterLab or Notebook), ready to review and run. `-o` keeps the whole answer.
"""),
    code("""
%%ask -f code --insert -o code_answer
Write pandas code that drops the empty rows of this DataFrame:

{df}
"""),
    code("""
from ttt_magic.notebook.render import extract_code

snippet, language = extract_code(code_answer)
print(language, len(snippet.splitlines()), "lines")
"""),
    md("Summaries work the same way:"),
    code("""
stats = df.describe().round(1)
"""),
    code("""
%%ask
Which column varies most, judging by these statistics?

{stats}
"""),
]

CONTEXT = [
    md("""
# The notebook as context

A question asked from a notebook is usually about the notebook: the error a cell just
raised, the figure above, the DataFrame you loaded. `%%ask` sends each of them along with
the question, compactly (a description, never the whole object) and with API keys kept out.
This notebook shows all three; [docs/context.md](../docs/context.md) has the details.
"""),
    md(SETUP_NOTE),
    code(SETUP),
    md("""
## Fix the last error

This cell fails (on purpose): one item of the basket has no price.
"""),
    code(
        """
prices = {"apple": 1.20, "pear": 0.80}
basket = ["apple", "pear", "plum"]
total = sum(prices[item] for item in basket)
""",
        tags=["raises-exception"],
    ),
    md("""
`%ask --fix` sends the last error of this kernel: the cell that raised it, its traceback
trimmed to your own code (library frames one line each), and the variables the failing
lines use. The answer explains it and gives the corrected cell; `--insert` puts that code
in a new cell below (in JupyterLab or Notebook), ready to review and run.
"""),
    code("%ask --fix --insert"),
    md("What the model received (the same question, built again):"),
    code("""
from ttt_magic.notebook.context import fix_prompt

question, notes = fix_prompt("")
print(question)
"""),
    md("""
Keys never leave: a configured API key is masked, and anything shaped like one is replaced
by `[redacted]` everywhere in what `--fix` sends: the source, the traceback, the values.
"""),
    code(
        """
api_token = "sk-demo-0123456789abcdefghij"  # a made-up key
int(api_token)
""",
        tags=["raises-exception"],
    ),
    code("""
print(fix_prompt("")[0].split("The error:")[1])
"""),
    md("""
## Ask about a figure

A figure in braces is sent as an image, not as text. The prompt keeps a short reference
in its place (such as `[image: a 640x480 PNG image (20 KB)]`), and that reference is all a
conversation remembers, so a follow-up still reads sensibly.
"""),
    code("""
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(range(2015, 2025), [3, 4, 4, 6, 7, 7, 9, 12, 13, 15], marker="o")
ax.set(title="Downloads per year (thousands)", xlabel="year")
plt.show()
"""),
    code("""
%%ask -c plot
What trend does {fig} show?
"""),
    code("%ask --chat=plot Which year grew most?"),
    md("""
`%%ask --image chart.png` sends an image file the same way (repeat it for several). A model
that cannot read images is refused before anything is sent, in one line.
"""),
    md("""
## Describe the data a question names

`--context` adds a compact description of each variable the question names: type, shape,
columns with their dtypes, missing values, memory size and a few rows.
"""),
    code("""
import pandas as pd

df = pd.DataFrame({
    "city": pd.Series(["Oslo", "Lima", None, "Pune"], dtype="string"),
    "temp_c": [3.5, 19.0, None, 31.2],
})
"""),
    code("""
%%ask --context
Which city in df is warmest, and which rows are incomplete?
"""),
    md("What was added after the question:"),
    code("""
from ttt_magic.notebook.context import context_section

print(context_section("Which city in df is warmest?", globals())[0])
"""),
    md("""
A description is bounded whatever the size of the data: a 1,000,000-row DataFrame costs
about as many tokens as a small one (the footer says how many were sent). `--context ALL`
describes every DataFrame and Series of the notebook; `context_budget` caps the total.
"""),
    code("""
import numpy as np

big = pd.DataFrame({"n": np.arange(1_000_000), "score": np.linspace(0, 1, 1_000_000)})
"""),
    code("""
%%ask --context ALL
What data do I have?
"""),
    code("%ttt_config context_budget=60"),
    code("""
%%ask --context
What is in big?
"""),
    code("%ttt_config context_budget="),
]

TABLES = [
    md("""
# One question for every row: `ask_many` and `%%ask --each`

Data work asks the same question of every row of a table ("classify this review", "extract the
product and the rating") and wants the answers back as columns. This notebook does it on a small
table of reviews shipped with the repository (`data/reviews.csv`): estimate the cost first, then
run with a budget, then join the answers to the table. Offline, it runs on the `mock` backend.
"""),
    md(SETUP_NOTE),
    code(SETUP),
    code("""
import pandas as pd

reviews = pd.read_csv("data/reviews.csv")
reviews
"""),
    md("""
## Cost before spending

`estimate` counts the requests, the input tokens (a stated estimate: words of four characters,
punctuation one token each, plus a few per message) and the output tokens (`max_tokens`, or an
assumed 256), and prices them from the catalogue. Nothing is sent, and no key is needed.
"""),
    code("""
from ttt_magic import ask_many, estimate

# What these five rows would cost on OpenAI's gpt-4o-mini (estimated here; nothing is sent):
estimate(reviews, "Classify the sentiment of this review as positive, negative or mixed: {text}",
         backend="openai", model="gpt-4o-mini", max_tokens=5)
"""),
    md("""
## Classify every row

`%%ask --each NAME` applies the cell (a template: `{text}` is the row's `text` column) to every
row and shows a table of the answers instead of streaming each one; `-o` keeps them, an
`Answers` list in row order. A longer table shows a progress bar while it runs; Ctrl-C keeps
what finished, and running the cell again sends only the rest.
"""),
    code("""
%%ask --each reviews -o sentiment
Classify the sentiment of this review as positive, negative or mixed. Answer with one word.

{text}
"""),
    code("""
reviews["sentiment"] = sentiment.texts
reviews[["product", "sentiment"]]
"""),
    md("""
## Structured answers, as columns

`schema=` asks for a structured answer: a pydantic model, a JSON Schema, or a shorthand like the
one below. Each answer's `.data` holds the parsed, validated value, and `.to_frame()` turns them
into columns that join on the table's index. `budget=` (dollars) stops the batch once it would
cost more, keeping what finished.
"""),
    code("""
schema = {"product": str, "rating": int, "issues": [str]}
extracted = ask_many(reviews, "Extract the product, a rating from 1 to 5 and the issues named: {text}",
                     schema=schema, budget=0.05, progress=False)
reviews.join(extracted.to_frame()[["rating", "issues"]])
"""),
    md("""
`extracted.usage` sums the calls, tokens and cost of the batch; `ttt_magic.usage(by="model")`
does so for the whole session, one row per backend and model.
"""),
    code("""
extracted.usage["calls"], extracted.failed
"""),
]

NOTEBOOKS_SPEC = {
    "01_quickstart": QUICKSTART,
    "02_routing_and_config": ROUTING,
    "03_plugins": PLUGINS,
    "04_data_exploration": DATA,
    "05_tables": TABLES,
    "07_context": CONTEXT,
}


def build(name: str, cells: list[dict]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = cells
    home = Path(tempfile.mkdtemp(prefix="ttt-nb-home-"))
    env = isolated_env(home, TTT_STREAM="0", TTT_MOCK_DELAY="0")
    import os

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # the kernel inherits this environment
    try:
        client = NotebookClient(
            nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
        )
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    for i, cell in enumerate(nb.cells):  # stable ids keep diffs small
        cell["id"] = f"{name[:2]}-{i:02d}"
        if "remove-output" in cell.metadata.get("tags", []):
            cell.outputs = []
    leaked = paths_in_outputs(nb)
    if leaked:  # readers would see where this notebook was built (tests/test_saved_outputs.py)
        raise SystemExit(f"{name}: outputs name absolute paths, not saved: {leaked}")
    path = NOTEBOOKS / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def main(argv: list[str]) -> None:
    NOTEBOOKS.mkdir(exist_ok=True)
    wanted = argv or list(NOTEBOOKS_SPEC)
    for name in wanted:
        print("built", build(name, NOTEBOOKS_SPEC[name]))


if __name__ == "__main__":
    main(sys.argv[1:])
