"""The ``mock`` backend: a pretend language model for demos, tutorials and tests.

Written the way any user plugin is written (public imports only), it behaves
enough like a real model that everything above it can be exercised offline:

* It sorts the prompt into greeting, JSON, prose, code, explanation or other,
  and answers from templates that quote the prompt's topic, so different
  prompts get different answers. Code comes in a fenced block tagged with a
  language (python unless the prompt names sql, javascript, bash, ...); an
  explanation has a heading and a bulleted list; a greeting is short.
* It answers in the format asked for. JSON (valid, and nothing else) when the
  request asks for it: the prompt ("as JSON", "a JSON object", "return
  JSON"), the system prompt (any mention of JSON), or the options
  ``response_format="json"`` / ``{"type": "json_object"}`` /
  ``{"type": "json_schema", "json_schema": {"schema": ...}}`` (directly, or in
  ``options={...}``), ``format="json"``, or a JSON Schema: ``schema={...}`` or
  one spelled out in the system prompt ("... match this JSON Schema: {...}"),
  and then the answer is an instance of that schema. Prose
  for a haiku, poem, limerick or story (never code). Code only when the prompt
  asks for code.
* It streams in chunks of a couple of words with a pause between them:
  ``backends: {mock: {delay: 0.02}}`` seconds per chunk (the default); the
  environment variable ``TTT_MOCK_DELAY`` wins; use 0 in tests. Model
  ``mock-fast`` pauses a quarter as long.
* ``system`` changes the answer visibly: "pirate" and "French" change the voice,
  "brief"/"concise"/"short" cut it to one sentence (or to the code alone), any
  other instruction is acknowledged on the first line.
* ``temperature`` picks among template variants, deterministically from the
  prompt and the temperature; 0 (or none) always gives the first variant.
* ``max_tokens`` cuts the answer to about that many tokens and reports
  ``finish_reason: "length"``. Tokens are estimated as characters / 4, and the
  counts arrive in the ``StreamEnd`` that ends ``astream``.
* ``history`` (earlier turns of a chat) is remembered: the answer begins with
  "Earlier you asked about ...". (Not in a JSON answer, which stays pure JSON,
  as it does under any system prompt.)
* Images (``images=[(mime, bytes)]``, what ``%%ask --image`` and ``{fig}``
  send) are described on the first line: "I see a 640x480 PNG image (12 KB)."
  (``ttt_magic.images.describe``), so a demo shows what reached the model.
* The notebook's context (what ``%%ask --context`` appends after a ``---``
  line) is acknowledged by name ("From the notebook I was shown: df:
  DataFrame, 5 rows × 3 columns (under 1 KB)"), and the question is read without it.
* A ``%ask --fix`` request (the failing cell and its traceback) is answered
  with the error explained by its type and a corrected cell: the failing line
  guarded (``try``/``except`` for the exception it raised) when it is a
  top-level statement of one line, otherwise the cell with a note above it.
* Its answers cost nothing: the class says so with ``free = True``.
* It can think, like a reasoning model: with ``backends: {mock: {think: true}}``
  (``%ttt_config backends.mock.think=true``), or whenever ``effort=`` is given,
  it streams a short thinking text first, as ``ttt_magic.models.Thinking``
  pieces (paced like the answer), then the answer. The thinking is
  deterministic: it quotes the prompt's topic and plans the kind of answer;
  ``effort="low"`` thinks one step, ``"medium"`` (the default) two, ``"high"``
  three. Its size is reported as ``metadata["thinking_tokens"]``, the effort
  as ``metadata["effort"]``; ``ask`` (not streamed) puts it on ``.reasoning``.

TEST HOOKS (deterministic failures; write them anywhere in the prompt):

* ``[fail]``            raise ``ProviderError`` (not retryable) before any text.
* ``[fail-after-3]``    stream three chunks, then raise ``ProviderError`` (not
                        retryable): a partial answer.
* ``[fail-retryable]``  raise ``ProviderError`` with status 503, retryable: for
                        retry and fallback demos.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from collections.abc import AsyncIterator
from typing import Any

from ttt_magic.backends import BaseBackend
from ttt_magic.errors import ProviderError
from ttt_magic.models import StreamEnd, Thinking

DEFAULT_DELAY = 0.02
MODELS = ["mock-1", "mock-fast"]
HOOK_FAIL = "[fail]"
HOOK_FAIL_AFTER_3 = "[fail-after-3]"
HOOK_FAIL_RETRYABLE = "[fail-retryable]"
_HOOKS = re.compile(r"\[fail(?:-after-3|-retryable)?\]", re.IGNORECASE)

# --------------------------------------------------------------------------- understanding the prompt


def _words(text: str, sep: str | None = None) -> list[str]:
    """Word lists written as one string (easier to read and edit than a column of quotes)."""
    return [w.strip() for w in text.split(sep) if w.strip()]


_GREETINGS = {"hi", "hello", "hey", "hiya", "howdy", "greetings", "yo", "hallo", "bonjour", "hola", "good"}
_CODE_WORDS = set(
    _words(
        "code function script program implement sql query regex class snippet debug bug refactor "
        "algorithm javascript typescript bash def loop pandas dataframe compile method unittest "
        "pytest json parse sort"
    )
)
_EXPLAIN_WORDS = set(
    _words(
        "explain what why how describe difference meaning means mean concept overview understand "
        "teach compare summarize summarise"
    )
)
_LANGUAGES = [  # first match wins; python is the default
    ("python", r"\bpython\b|\bpandas\b|\bnumpy\b|\bdataframe\b|\bpytest\b"),
    ("sql", r"\bsql\b|\bsqlite\b|\bpostgres(?:ql)?\b|\bmysql\b|\bselect\b.+\bfrom\b|\bdatabase\b"),
    ("typescript", r"\btypescript\b"),
    ("javascript", r"\bjavascript\b|\bjs\b|\bnode(?:\.js|js)?\b|\breact\b"),
    ("bash", r"\bbash\b|\bshell\b|\bcommand[- ]line\b|\bterminal\b"),
    ("rust", r"\brust\b"),
    ("go", r"\bgolang\b|\bin go\b"),
    ("java", r"\bjava\b"),
    ("cpp", r"c\+\+|\bcpp\b"),
    ("html", r"\bhtml\b"),
]
_FILLER = _words(
    "please|can you|could you|would you|will you|i want you to|i need|help me|explain|describe|"
    "write|implement|create|generate|give me|show me|tell me about|tell me|what is|what are|"
    "what's|how does|how do i|how do|how to|why is|why does|why|what about|and|so|ok|okay|now|"
    "then|some|a|an|the|me|to",
    sep="|",
)
_SLUG_STOP = set(
    _words(
        "a an the that which to of in for and or with code function write please me some python "
        "script program snippet using is it this sql query javascript typescript bash lists list "
        "returns return all"
    )
)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

#: The prompt asks for JSON: "as JSON", "in JSON format", "a JSON object", "return JSON", "valid JSON".
_JSON_ASKED = re.compile(
    r"\b(?:as|in|into|return|returns|output|give|respond|reply|answer|valid|only|pure|raw)\s+"
    r"(?:(?:a|an|the|some|me|with|strict|valid)\s+)?json\b"
    r"|\bjson\s+(?:object|array|list|document|format|output|only|response|answer|with)\b",
    re.IGNORECASE,
)
#: Words naming a piece of writing: the answer is prose of that kind (never code).
_PROSE_KINDS = {
    "haiku": "haiku",
    "haikus": "haiku",
    "poem": "poem",
    "poems": "poem",
    "verse": "poem",
    "sonnet": "poem",
    "rhyme": "poem",
    "song": "poem",
    "lyrics": "poem",
    "limerick": "limerick",
    "story": "story",
    "stories": "story",
    "tale": "story",
    "fable": "story",
}


def strip_hooks(prompt: str) -> str:
    return " ".join(_HOOKS.sub(" ", prompt).split())


def classify(prompt: str) -> str:
    """``greeting``, ``json``, ``prose``, ``code``, ``explanation`` or ``default``.

    ``json`` is what the prompt's words ask for; the system prompt and the
    request's options can ask for it too (see ``wants_json``).
    """
    words = [w.lower() for w in _WORD.findall(prompt)]
    if not words:
        return "default"
    if words[0] in _GREETINGS and len(words) <= 8:
        return "greeting"
    if _JSON_ASKED.search(prompt):
        return "json"
    if any(w in _PROSE_KINDS for w in words):
        return "prose"
    code = sum(w in _CODE_WORDS for w in words) + ("```" in prompt)
    explain = sum(w in _EXPLAIN_WORDS for w in words) + 2 * (words[0] in _EXPLAIN_WORDS)
    if code and code >= explain:
        return "code"
    if explain:
        return "explanation"
    return "default"


_LABELS = re.compile(r"\b(?:as|into|one of)\s+((?:[\w-]+,\s*)+[\w-]+,?\s+or\s+[\w-]+)", re.IGNORECASE)
_CLASSIFY = re.compile(r"\b(classify|categori[sz]e|label|tag)\b", re.IGNORECASE)
_GOOD = frozenset(
    [
        "best",
        "great",
        "good",
        "love",
        "lovely",
        "comfortable",
        "clear",
        "evenly",
        "quietly",
        "fast",
        "easy",
        "perfect",
    ]
)
_BAD = frozenset(
    [
        "leak",
        "leaks",
        "wobbly",
        "flickers",
        "flicker",
        "returned",
        "cheap",
        "broken",
        "bad",
        "poor",
        "slow",
        "noisy",
        "worst",
    ]
)


def choose_label(prompt: str) -> str | None:
    """For "classify X as A, B or C", the one label a model would give, decided from X's words.

    Sentiment labels follow a small word list (both kinds of word: ``mixed``
    when offered); other label sets are picked by a stable hash of the text.
    """
    if not _CLASSIFY.search(prompt):
        return None
    match = _LABELS.search(prompt)
    if match is None:
        return None
    labels = [w.strip(" ,.").lower() for w in re.split(r",|\bor\b", match.group(1)) if w.strip(" ,.")]
    if len(labels) < 2:
        return None
    rest = prompt[match.end() :]
    words = {w.lower() for w in _WORD.findall(rest)}
    good, bad = bool(words & _GOOD), bool(words & _BAD)
    if "positive" in labels and "negative" in labels:
        if good and bad and "mixed" in labels:
            return "mixed"
        if good != bad:
            return "positive" if good else "negative"
    return labels[sum(map(ord, rest)) % len(labels)]


def wants_code_too(prompt: str) -> bool:
    """An explanation that also asks for code ("explain X and write code that ...")."""
    low = prompt.lower()
    return bool(re.search(r"\b(write|show|give)\b.*\b(code|function|query|script|example)\b", low))


def code_request(prompt: str) -> str:
    """What the code should do: "squares the evens" in "...and write code that squares the evens"."""
    found = re.search(r"\b(?:code|function|script|program)\s+(?:that|to|which)\s+([^.?!\n]+)", prompt, re.I)
    return found.group(1).strip() if found else ""


def language(prompt: str) -> str:
    low = prompt.lower()
    for name, pattern in _LANGUAGES:
        if re.search(pattern, low):
            return name
    return "python"


def topic(prompt: str, max_words: int = 8) -> str:
    """The gist of a prompt, quoted back in the answer so it depends on the prompt."""
    text = strip_hooks(prompt)
    text = re.split(r"(?<=[.?!])\s|\n", text.strip(), maxsplit=1)[0]
    text = re.split(r"\s+and\s+(?:then\s+)?(?:write|show|give|add)\b", text, maxsplit=1, flags=re.I)[0]
    low = text.lower()
    changed = True
    while changed:
        changed = False
        for filler in _FILLER:
            if low.startswith(filler + " ") or low.startswith(filler + ","):
                text = text[len(filler) + 1 :].lstrip(" ,")
                low = text.lower()
                changed = True
    question = re.match(
        r"(?:what|how)\s+(?:(?:a|an|the)\s+)?(.+?)\s+(?:is|are|does|do|works)[.?!]*$", text, re.I
    )
    if question:  # "what a list comprehension is" -> "list comprehension"
        text = question.group(1)
    words = text.split()
    cut = " ".join(words[:max_words]) + (" ..." if len(words) > max_words else "")
    return cut.strip(" .?!:;,") or "your message"


def slug(subject: str) -> str:
    words = [w.lower() for w in _WORD.findall(subject) if w.lower() not in _SLUG_STOP]
    name = "_".join(words[:4]) or "solve"
    return name if name[0].isalpha() else f"do_{name}"


def estimate_tokens(text: str) -> int:
    """About four characters a token, like most English text with modern tokenizers."""
    return (len(text) + 3) // 4 if text else 0


def pick(options: list[Any], prompt: str, temperature: float | None) -> tuple[int, Any]:
    """The first option at temperature 0; otherwise one chosen by a hash of prompt and temperature."""
    if not temperature or temperature <= 0:
        return 0, options[0]
    digest = hashlib.sha256(f"{prompt}\0{float(temperature):.4f}".encode()).hexdigest()
    index = int(digest, 16) % len(options)
    return index, options[index]


# --------------------------------------------------------------------------- templates


def _greeting(subject: str) -> list[str]:
    return [
        "Hello! I'm the mock model. What would you like to talk about?",
        "Hi there! Ask me anything: my answers are made up, but they arrive quickly.",
        "Hey! Ready when you are. Try asking me for some code or an explanation.",
    ]


def _code_body(lang: str, subject: str, name: str, variant: int, request: str = "") -> str:
    if lang == "sql":
        table = name.split("_")[-1] if name != "solve" else "items"
        table = table if table[0].isalpha() else "items"
        bodies = [
            f"-- {subject}\nSELECT id, name, created_at\nFROM {table}\nWHERE name IS NOT NULL\n"
            "ORDER BY created_at DESC\nLIMIT 10;",
            f"-- {subject}\nSELECT name, COUNT(*) AS total\nFROM {table}\nGROUP BY name\n"
            "HAVING COUNT(*) > 1\nORDER BY total DESC;",
        ]
    elif lang in ("javascript", "typescript"):
        camel = name.split("_")[0] + "".join(p.title() for p in name.split("_")[1:])
        typed = ": unknown[]" if lang == "typescript" else ""
        bodies = [
            f"// {subject}\nfunction {camel}(items{typed}) {{\n"
            "  return items.filter((item) => item !== null && item !== undefined);\n}\n\n"
            f"console.log({camel}([1, null, 2]));",
            f"// {subject}\nconst {camel} = (items{typed}) =>\n"
            "  items.reduce((acc, item) => (item == null ? acc : [...acc, item]), []);\n\n"
            f"console.log({camel}([1, null, 2]));",
        ]
    elif lang == "bash":
        bodies = [
            f"# {subject}\nset -euo pipefail\nfor file in *.txt; do\n"
            '  echo "processing $file"\n  wc -l "$file"\ndone',
        ]
    elif lang == "python" and re.search(r"\b(pandas|dataframe|df)\b", request or subject, re.I):
        bodies = [_pandas_body(request or subject)]
    elif lang == "python" and re.search(r"\bsort", request or subject, re.I):
        doc = subject[:1].upper() + subject[1:]
        bodies = [
            f'def {name}(items):\n    """{doc}."""\n'
            f"    return sorted(x for x in items if x is not None)\n\n\nprint({name}([3, None, 1, 2]))"
        ]
    elif lang == "python":
        keep, make, sample = _python_intent(request or subject)
        doc = subject[:1].upper() + subject[1:]
        bodies = [
            f'def {name}(items):\n    """{doc}."""\n    result = []\n'
            f"    for x in items:\n        if {keep}:\n            result.append({make})\n"
            f"    return result\n\n\nprint({name}({sample}))",
            f'def {name}(items):\n    """{doc}."""\n'
            f"    return [{make} for x in items if {keep}]\n\n\n"
            f"print({name}({sample}))",
            f"from typing import Iterable, Iterator\n\n\ndef {name}(items: Iterable) -> Iterator:\n"
            f'    """{doc}, lazily."""\n'
            f"    yield from ({make} for x in items if {keep})\n\n\n"
            f"print(list({name}({sample})))",
        ]
    else:
        comment = "//" if lang in ("rust", "go", "java", "cpp") else "<!--"
        close = " -->" if comment == "<!--" else ""
        note = "(the mock writes real code only for a few languages)"
        bodies = [f"{comment} {subject}{close}\n{comment} {note}{close}"]
    return bodies[variant % len(bodies)]


_KEEP = (
    (r"\beven\b", "x % 2 == 0"),
    (r"\bodd\b", "x % 2 == 1"),
    (r"\b(positive|above zero)\b", "x > 0"),
    (r"\bnegative\b", "x < 0"),
)
_MAKE = (
    (r"\bsquare", "x ** 2"),
    (r"\bcube", "x ** 3"),
    (r"\bdoubl", "x * 2"),
    (r"\bhalv|\bhalf\b", "x / 2"),
    (r"\b(upper|capitali)", "x.upper()"),
    (r"\blower", "x.lower()"),
)


def _python_intent(subject: str) -> tuple[str, str, str]:
    """(filter, transform, sample input) read from the request's words: "squares the even numbers"."""
    low = subject.lower()
    keep = next((expr for pattern, expr in _KEEP if re.search(pattern, low)), "x is not None")
    make = next((expr for pattern, expr in _MAKE if re.search(pattern, low)), "x")
    text = make in ("x.upper()", "x.lower()")
    sample = (
        '["Ada", "Grace", None]'
        if text
        else ("[1, 2, 3, 4, 5, 6]" if keep != "x is not None" else "[1, None, 2]")
    )
    if text and keep == "x is not None":
        keep = "x"
    return keep, make, sample


def _pandas_body(subject: str) -> str:
    """A pandas sketch that fits the request's verb, for data-exploration demos."""
    low = subject.lower()
    if re.search(r"\b(drop|remove|delete|clean)", low) and re.search(
        r"\b(empty|missing|na|nan|null|blank)", low
    ):
        step = 'df = df.dropna(how="all")  # rows where every value is missing'
    elif re.search(r"\b(group|aggregate|per|by)\b", low):
        step = "summary = df.groupby(df.columns[0]).mean(numeric_only=True)\nprint(summary)"
    elif re.search(r"\b(sort|rank|order)", low):
        step = "df = df.sort_values(df.columns[0])"
    else:
        step = "print(df.describe(include='all'))"
    return f"# {subject}\nimport pandas as pd\n\n{step}\nprint(df.shape)"


def _code(subject: str, lang: str, name: str, request: str = "") -> list[str]:
    intros = [
        f"Here is {_article(lang)} {_pretty(lang)} sketch for **{subject}**:",
        f"A short {_pretty(lang)} take on **{subject}**:",
        f"One way to approach **{subject}** in {_pretty(lang)}:",
    ]
    outros = [
        "It is mock code: read it, then adapt names and edge cases to your data.",
        "Swap in your own data; the structure stays the same.",
        "Test it on a small input before relying on it.",
    ]
    return [
        f"{intros[i]}\n\n```{lang}\n{_code_body(lang, subject, name, i, request)}\n```\n\n{outros[i]}"
        for i in range(3)
    ]


def _article(lang: str) -> str:
    return "an" if _pretty(lang)[0].lower() in "aeiou" else "a"


def _pretty(lang: str) -> str:
    return {
        "sql": "SQL",
        "javascript": "JavaScript",
        "typescript": "TypeScript",
        "cpp": "C++",
        "html": "HTML",
    }.get(lang, lang.capitalize())


def _explanation(subject: str) -> list[str]:
    first = subject.split(" ", 1)[0]
    code_like = any(c in first for c in "._()[]")  # df.shape stays df.shape
    title = subject if code_like else subject[:1].upper() + subject[1:]
    bullets = (
        f"- **What it is:** {subject} is best understood by the problem it solves.\n"
        "- **How it works:** break it into small steps and follow the data through each one.\n"
        "- **Why it matters:** it shows up often, so knowing it saves time later.\n"
        "- **Try it:** work through one tiny example by hand."
    )
    return [
        f"## {title}\n\nIn short, **{subject}** comes down to a few ideas:\n\n{bullets}\n\n"
        "That is the outline; ask a follow-up question to go deeper into any point.",
        f"## {title}\n\nHere is a quick tour of **{subject}**:\n\n{bullets}\n\n"
        "(A mock explanation: the structure is real, the content is a placeholder.)",
        f"## {title}\n\nLet's unpack **{subject}** step by step:\n\n{bullets}\n\n"
        "Each point builds on the one before it.",
    ]


def _default(subject: str, prompt: str) -> list[str]:
    n = len(prompt.split())
    return [
        f"You said: “{subject}”. I'm a mock model, so this answer is made up, "
        f"but it does depend on your {n}-word message.",
        f"About “{subject}”: that is an interesting point. (Mock answer to a {n}-word message.)",
        f"Noted: “{subject}”. A real model would say something insightful here.",
    ]


def creative_subject(prompt: str) -> str:
    """What a poem or story is about: "the sea" in "Write a poem about the sea"."""
    first = re.split(r"(?<=[.?!])\s|\n", strip_hooks(prompt).strip(), maxsplit=1)[0]
    found = re.search(r"\b(?:about|on|of|for|featuring|called)\s+(.+)$", first, re.I)
    subject = (found.group(1) if found else topic(first)).strip(" .?!:;,\"'“”")
    words = subject.split()
    return " ".join(words[:8]) or "the quiet notebook"


def _prose(form: str, subject: str) -> list[str]:
    title = subject[:1].upper() + subject[1:]
    if form == "haiku":
        return [
            f"{title} in the rain,\nthe notebook waits for its cells:\na small answer blooms.",
            f"Morning light on {subject},\nwords arrive two at a time,\nthen the cell is still.",
            f"Quiet {subject}:\na mock model counts syllables\nand loses its place.",
        ]
    if form == "limerick":
        return [
            f"A student who studied {subject}\nkept asking a model for more;\nit answered in rhyme\n"
            "every single time,\nthe same way it answered before.",
            f"There once was a notebook on {subject}\nthat streamed out its answers in pairs;\n"
            "two words at a go,\nneither fast nor too slow,\nlike someone who walks down the stairs.",
        ]
    if form == "story":
        return [
            f"Once upon a time, in a notebook far away, someone wondered about {subject}. "
            "They wrote a question in a cell and pressed Shift-Enter. The answer arrived two words "
            "at a time, and by the last word they had what they needed, and a small story besides."
            "\n\nThe end.",
            f"Nobody in the village had heard of {subject} until the day a stranger arrived with a "
            "laptop and a question. By evening everyone was talking about it, and by morning the "
            "stranger had moved on, leaving the question behind.\n\nThe end.",
        ]
    return [  # a poem
        f"**On {subject}**\n\nThere is a patience in {subject}\nthat hurried readers never see:\n"
        "it waits, the way a kernel waits,\nfor someone curious, like me.",
        f"**{title}**\n\nI went in search of {subject}\nwith nothing but a question mark;\n"
        "I came back with a little verse\nthat streamed in, word by word, through the dark.",
        f"**A verse on {subject}**\n\nSay it once, and softly, then\nlet the sound of it settle and stay;\n"
        "a mock model wrote these lines for you,\nand will write them again the same way.",
    ]


# --------------------------------------------------------------------------- JSON answers

_COUNTS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
}  # fmt: skip
_LIST_OF = re.compile(
    r"\b(\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten)\s+((?:[A-Za-z][\w-]*\s+){0,3}?[A-Za-z][\w-]*s)\b",
    re.IGNORECASE,
)
_FIELDS = re.compile(
    r"\b(?:with|fields?|keys?|properties|containing|including)\s*:?\s+([A-Za-z_][\w ,&/-]*)", re.IGNORECASE
)
_FIELD_STOP = set(_words("the their its a an each every one fields field keys key properties property and"))
_AS_JSON = re.compile(  # "as JSON", "a JSON object describing": words about the format, not the topic
    r"\b(?:(?:as|in|into)\s+)?(?:(?:a|an|some)\s+)?json\b"
    r"(?:\s+(?:object|array|list|document|format))?(?:\s+(?:describing|about|of|for|on|listing))?",
    re.IGNORECASE,
)
_NUMERIC = re.compile(
    r"(count|age|size|number|total|score|rank|id|quantity|population|rating|stars|length|height|weight)$"
)


def json_schema(options: dict[str, Any]) -> Any:
    """A JSON Schema given with the request (``schema=``, ``json_schema=``, ``response_format=``), or None."""
    fmt = options.get("response_format")
    candidates = [options.get("schema"), options.get("json_schema")]
    if isinstance(fmt, dict):
        candidates += [fmt.get("schema"), fmt.get("json_schema")]
    for candidate in candidates:
        if hasattr(candidate, "model_json_schema"):  # a pydantic model class
            candidate = candidate.model_json_schema()
        if isinstance(candidate, dict) and isinstance(candidate.get("schema"), dict):
            candidate = candidate["schema"]  # the OpenAI wrapper: {"name": ..., "schema": {...}}
        if isinstance(candidate, dict):
            return candidate
    return None


def wants_json(prompt: str, system: str | None, options: dict[str, Any]) -> bool:
    """Whether the request asks for a JSON answer: prompt, system prompt, or options."""
    fmt = options.get("response_format")
    if isinstance(fmt, dict):
        fmt = fmt.get("type")
    if str(fmt or "").lower() in ("json", "json_object", "json_schema"):
        return True
    if str(options.get("format") or "").lower() == "json" or json_schema(options) is not None:
        return True
    if system and re.search(r"\bjson\b", system, re.IGNORECASE):
        return True
    return bool(_JSON_ASKED.search(prompt))


def _singular(word: str) -> str:
    low = word.lower()
    if low.endswith("ies") and len(low) > 4:
        return low[:-3] + "y"
    if low.endswith(("ches", "shes", "xes", "sses")):
        return low[:-2]
    return low[:-1] if low.endswith("s") and not low.endswith("ss") else low


def _field_names(prompt: str) -> list[str]:
    found = _FIELDS.search(prompt)
    if not found:
        return []
    names = []
    wanted = re.split(r"\b(?:for|of|in|from|per|about|that|which|as|to)\b", found.group(1), maxsplit=1)[0]
    for part in re.split(r",|\band\b|&|/", wanted):
        words = [w.lower() for w in _WORD.findall(part) if w.lower() not in _FIELD_STOP]
        if words and len(words) <= 3:
            names.append("_".join(words))
    return list(dict.fromkeys(names))[:6]


def _field_value(field: str, i: int, thing: str) -> Any:
    if field == "year" or field.endswith("_year"):
        return 1990 + 7 * i
    if field in ("price", "cost", "amount") or field.endswith(("_price", "_cost")):
        return round(9.5 * i, 2)
    if _NUMERIC.search(field):
        return i
    if field.startswith(("is_", "has_")) or field in ("active", "enabled", "available", "done"):
        return i % 2 == 1
    if field.endswith("s") and not field.endswith("ss"):
        return [f"{_singular(field)} {i}a", f"{_singular(field)} {i}b"]
    if field in ("name", "title", "label", thing):
        return f"{thing} {i}"
    return f"{field.replace('_', ' ')} {i}"


def instance(schema: Any, name: str = "value", depth: int = 0, index: int = 1, root: Any = None) -> Any:
    """A small value that satisfies ``schema``.

    Understood: ``type`` (one or a list), ``properties`` (all of them are given),
    ``items``, ``minItems``/``maxItems``, ``enum``, ``const``, ``default``,
    ``anyOf``/``oneOf``/``allOf``, local ``$ref`` (``#/$defs/...``), numeric bounds,
    ``minLength`` and the common string formats.
    """
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > 12:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        return instance(target, name, depth + 1, index, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][(index - 1) % len(schema["enum"])] if depth else schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for combined in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(combined) or [] if isinstance(o, dict) and o.get("type") != "null"]
        if options:
            return instance(options[0], name, depth + 1, index, root)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        props = schema.get("properties") or {}
        return {key: instance(sub, key, depth + 1, index, root) for key, sub in props.items()}
    if kind == "array":
        count = max(int(schema.get("minItems", 2)), 1)
        count = min(count, int(schema.get("maxItems", count)), 10) or 1
        item = schema.get("items") or {}
        return [instance(item, _singular(name), depth + 1, i, root) for i in range(1, count + 1)]
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        value: float = low + (index if kind == "integer" else index / 2)
        if "maximum" in schema:
            value = min(value, schema["maximum"])
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            value = (schema["exclusiveMaximum"] + low) / 2
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return index % 2 == 1
    if kind == "null":
        return None
    formats = {
        "date": "2024-01-01",
        "date-time": "2024-01-01T12:00:00Z",
        "time": "12:00:00",
        "email": "ada@example.com",
        "uri": "https://example.com/",
        "url": "https://example.com/",
        "uuid": "00000000-0000-4000-8000-000000000001",
    }
    text = formats.get(schema.get("format"), f"{name.replace('_', ' ')} {index}")
    return text.ljust(int(schema.get("minLength", 0)), "x")


def schema_in(system: str | None) -> Any:
    """The JSON Schema a system prompt spells out ("... match this JSON Schema: {...}"), or None."""
    where = (system or "").find("JSON Schema:")
    brace = (system or "").find("{", where) if where >= 0 else -1
    if brace < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(system, brace)  # type: ignore[arg-type]
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def json_value(prompt: str) -> Any:
    """The JSON a prompt asks for: a list of N things with the fields it names, else a summary object."""
    fields = _field_names(prompt)
    listed = _LIST_OF.search(prompt)
    if listed:
        raw = listed.group(1).lower()
        count = min(int(raw) if raw.isdigit() else _COUNTS[raw], 10) or 1
        plural = listed.group(2).split()[-1].lower()
        thing = _singular(plural)
        items = [{f: _field_value(f, i, thing) for f in fields or ["name"]} for i in range(1, count + 1)]
        return {plural: items}
    subject = topic(_AS_JSON.sub("", prompt))
    if fields:
        return {f: _field_value(f, 1, subject) for f in fields}
    return {
        "topic": subject,
        "summary": f"A mock answer about {subject}.",
        "points": [f"{subject}: first point", f"{subject}: second point", f"{subject}: third point"],
        "mock": True,
    }


def json_answer(prompt: str, schema: Any = None) -> str:
    """Valid JSON text, and nothing else (no fence, no prose), like a model in JSON mode."""
    value = instance(schema) if schema is not None else json_value(prompt)
    return json.dumps(value, indent=2, ensure_ascii=False)


# --------------------------------------------------------------------------- thinking

#: ``effort`` -> how many steps of thinking (``think: true`` without an effort thinks "medium").
THINKING_STEPS = {"low": 1, "medium": 2, "high": 3}


def _plan(kind: str, prompt: str) -> str:
    """What the answer should look like, as a model would plan it."""
    if kind == "code":
        lang = _pretty(language(prompt))
        return (
            f"This asks for {_article(language(prompt))} {lang} snippet. "
            "Pick a clear name, keep it short, and end with a call that prints something."
        )
    if kind == "explanation":
        return (
            "This asks for an explanation. A heading, one line saying what it is, "
            "then a few bullet points; no jargon without a definition."
        )
    if kind == "greeting":
        return "This is a greeting. Answer in one friendly line and offer to help."
    if kind == "json":
        return "This asks for JSON. Valid JSON and nothing around it: no fence, no prose."
    if kind == "prose":
        return "This asks for a piece of writing. Keep it short, concrete and on the subject."
    return "There is no clear task here. Restate the message and suggest a next step."


def compose_thinking(prompt: str, effort: str | None = None, *, system: str | None = None) -> str:
    """The mock's thinking about a request: deterministic, a step per level of ``effort``."""
    clean = strip_hooks(prompt)
    kind = classify(clean)
    if kind != "json" and system and re.search(r"\bjson\b", system, re.IGNORECASE):
        kind = "json"
    subject = topic(clean)
    steps = [
        f"The question is about “{subject}”. " + _plan(kind, clean),
        "Start with the simplest correct version, then check it against the question: "
        "does it answer what was asked, and nothing else?",
        "One more pass: is every claim true, is the example small enough to read at a glance, "
        "and would a beginner follow it? Then write the answer.",
    ]
    if system and system.strip():
        steps[0] += " Follow the system instruction too."
    return "\n\n".join(steps[: THINKING_STEPS.get(effort or "medium", 2)])


def thinks(config: dict[str, Any], effort: str | None) -> bool:
    """Whether the mock thinks for this request: ``think`` configured true, or an ``effort`` given."""
    raw = config.get("think")
    on = raw.strip().lower() in ("1", "true", "yes", "on") if isinstance(raw, str) else bool(raw)
    return on or effort is not None


# --------------------------------------------------------------------------- shaping the answer


def _brief(text: str) -> str:
    fence = re.search(r"```[^\n]*\n.*?\n```", text, re.DOTALL)
    if fence:
        return fence.group(0)
    for line in text.splitlines():
        line = line.replace("**", "").strip().lstrip("-* ").strip()
        if line and not line.startswith("#") and not line.endswith(":"):
            return re.split(r"(?<=[.!?])\s", line, maxsplit=1)[0]
    return text


def _prefix(words: str, text: str) -> str:
    """Put ``words`` before ``text``: on the same line, unless that would break Markdown."""
    return f"{words}\n\n{text}" if text.startswith(("#", "```", "-", "*")) else f"{words} {text}"


def apply_system(text: str, system: str | None) -> str:
    if not system or not system.strip():
        return text
    low = system.lower()
    understood = False
    if re.search(r"\b(brief|concise|short|terse|one sentence|succinct)\b", low):
        text, understood = _brief(text), True
    if "pirate" in low:
        text = _prefix("Arr, matey!", text.replace("Hello!", "Ahoy!")) + "\n\nYo-ho-ho!"
        understood = True
    if re.search(r"\bfrench\b|\bfrançais\b|\bfrancais\b", low):
        text = _prefix("Bonjour ! (Réponse simulée en français.)", text)
        understood = True
    if not understood:
        shown = " ".join(system.split())
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        text = f"*(Following the system instruction: “{shown}”)*\n\n{text}"
    return text


def apply_history(text: str, history: list[Any] | None) -> str:
    asked = [m.get("content", "") for m in history or [] if isinstance(m, dict) and m.get("role") == "user"]
    if not asked:
        return text
    earlier = f"Earlier you asked about “{topic(without_image_references(split_context(asked[-1])[0]), 6)}”"
    if len(asked) > 1:
        earlier += f" (and {len(asked) - 1} other question{'s' if len(asked) > 2 else ''} before that)"
    return f"{earlier}.\n\n{text}"


def truncate(text: str, max_tokens: int | None) -> tuple[str, bool]:
    """Cut at a word boundary to about ``max_tokens`` tokens; whether it was cut."""
    if max_tokens is None or estimate_tokens(text) <= max_tokens:
        return text, False
    budget = max(0, max_tokens) * 4
    kept = ""
    for piece in re.findall(r"\s*\S+", text):
        if kept and len(kept) + len(piece) > budget:
            break
        if not kept and len(piece) > budget:
            return (piece[:budget], True) if budget else ("", True)
        kept += piece
    return kept, True


def compose(
    prompt: str,
    *,
    system: str | None = None,
    temperature: float | None = None,
    history: list[Any] | None = None,
    options: dict[str, Any] | None = None,
    images: list[Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """The whole answer for a request, and facts about how it was made.

    ``options`` are the request's other keyword arguments (``response_format``,
    ``format``, ``schema``, ...); ``images`` the (mime, bytes) pairs sent with it.
    """
    question, context = split_context(prompt)
    clean = strip_hooks(without_image_references(question) if images or "[image: " in question else question)
    options = options or {}
    seen = _seen(images, context)
    if clean.startswith(_FIX_REQUEST):
        text = apply_history(apply_system(fix_answer(question), system), history)
        return "\n\n".join([*seen, text]), {"category": "fix", "variant": 0}
    label = choose_label(clean)
    if label is not None:  # "classify ... as positive, negative or mixed": one of the labels
        return label, {"category": "label", "variant": 0}
    kind = classify(clean)
    if kind != "json" and wants_json(clean, system, options):
        kind = "json"
    subject = topic(clean)
    facts: dict[str, Any] = {"category": kind}
    if kind == "json":  # pure JSON: no system voice, no history line, nothing around it
        facts["variant"] = 0
        schema = json_schema(options)
        return json_answer(clean, schema if schema is not None else schema_in(system)), facts
    if kind == "prose":
        form = next(_PROSE_KINDS[w] for w in (w.lower() for w in _WORD.findall(clean)) if w in _PROSE_KINDS)
        facts["form"] = form
        variant, text = pick(_prose(form, creative_subject(clean)), clean, temperature)
    elif kind == "greeting":
        variant, text = pick(_greeting(subject), clean, temperature)
    elif kind == "code":
        lang = language(clean)
        facts["language"] = lang
        variant, text = pick(_code(subject, lang, slug(subject), clean), clean, temperature)
    elif kind == "explanation":
        variant, text = pick(_explanation(subject), clean, temperature)
        if wants_code_too(clean):
            lang = language(clean)
            facts["language"] = lang
            wanted = code_request(clean) or subject
            text += f"\n\n```{lang}\n{_code_body(lang, wanted, slug(wanted), variant, clean)}\n```"
    else:
        variant, text = pick(_default(subject, clean), clean, temperature)
    facts["variant"] = variant
    text = apply_system(text, system)
    text = apply_history(text, history)
    return "\n\n".join([*seen, text]), facts


def chunks(text: str) -> list[str]:
    """Pieces of about two words each (whitespace kept), joining back to ``text`` exactly."""
    pieces = re.findall(r"\s*\S+", text)
    tail = text[len("".join(pieces)) :]
    grouped = ["".join(pieces[i : i + 2]) for i in range(0, len(pieces), 2)]
    if tail:
        if grouped:
            grouped[-1] += tail
        else:
            grouped = [tail]
    return grouped


# --------------------------------------------------------------------------- notebook context

#: How ``%%ask --context`` sets its section apart, and how ``%ask --fix`` begins its request.
_CONTEXT_SPLIT = re.compile(r"\n+---\nNotebook context[^\n]*\n+")
_FIX_REQUEST = "Explain briefly why this notebook cell failed"
_FIX_CELL = re.compile(r"^The cell \(([^)]*)\):\n(`{3,})python\n(.*?)\n\2$", re.M | re.S)
_FIX_ERROR = re.compile(r"^The error:\n(`{3,})\n(.*?)\n\1$", re.M | re.S)
_FIX_LINE = re.compile(r"^  Cell In\[\d+\], line (\d+), in <module>$", re.M)
_WHY = {
    "ZeroDivisionError": "a number was divided by zero: the divisor is 0 when this line runs",
    "NameError": "a name is used before it is defined (or it is misspelt)",
    "KeyError": "a key (or a DataFrame column) was looked up that does not exist",
    "IndexError": "an index past the end of a sequence was used",
    "TypeError": "an operation got a value of a type it cannot work with",
    "ValueError": "a function got a value of the right type but an unusable content",
    "AttributeError": "an attribute or method was used that the object does not have",
    "ModuleNotFoundError": "an import names a package that is not installed",
    "FileNotFoundError": "a file was opened that does not exist at that path",
    "SyntaxError": "the cell is not valid Python, so none of it ran",
}


#: What a prompt keeps of an image sent with it: ``[image: a 640x480 PNG image (12 KB)]``.
_IMAGE_REF = re.compile(r"\[image: [^\]\n]*\]")


def without_image_references(question: str) -> str:
    """The question without its image references: alone on a line they go, inline they read "the image"."""
    question = re.sub(r"(?m)^[ \t]*\[image: [^\]\n]*\][ \t]*\n?", "", question)
    return _IMAGE_REF.sub("the image", question).strip()


def split_context(prompt: str) -> tuple[str, list[str]]:
    """(the question, the first line of each variable described in the notebook context after it)."""
    parts = _CONTEXT_SPLIT.split(prompt, maxsplit=1)
    if len(parts) == 1:
        return prompt, []
    entries = [block.strip().splitlines()[0] for block in parts[1].split("\n\n") if block.strip()]
    return parts[0], entries


def _guarded(cell: str, line: int, error: str) -> str:
    """The cell with its failing line wrapped in try/except (a one-line top-level statement), or noted."""
    lines = cell.splitlines()
    kind = error.split(":", 1)[0].rsplit(".", 1)[-1].strip() or "Exception"
    if 0 < line <= len(lines):
        failing = lines[line - 1]
        one_line = (
            failing.strip()
            and not failing[:1].isspace()
            and not failing.rstrip().endswith((":", "\\", "(", "[", "{", ","))
        )
        if one_line:
            guard = [
                "try:",
                f"    {failing.strip()}",
                f"except {kind} as error:  # mock fix: handle what this line raised",
                '    print("Skipped:", error)',
            ]
            return "\n".join([*lines[: line - 1], *guard, *lines[line:]])
    return f"# mock fix: the cell raised {kind}; check the values on the failing line first\n{cell}"


def fix_answer(prompt: str) -> str:
    """The answer to a ``%ask --fix`` request: why, then the corrected cell in one block."""
    cell_match, error_match = _FIX_CELL.search(prompt), _FIX_ERROR.search(prompt)
    traceback_text = error_match.group(2) if error_match else ""
    error = next(
        (line for line in reversed(traceback_text.splitlines()) if line and not line.startswith((" ", "("))),
        "",
    )
    kind = error.split(":", 1)[0].rsplit(".", 1)[-1].strip()
    why = _WHY.get(kind, "the line raised an exception its inputs did not allow for")
    where = cell_match.group(1) if cell_match else "the cell"
    at = [int(n) for n in _FIX_LINE.findall(traceback_text)]
    line = at[-1] if at else 0
    text = f"## {error or 'The error'}\n\n**Why:** {why}"
    text += f" (line {line} of {where})." if line else f" ({where})."
    if cell_match:
        text += f"\n\nCorrected cell (mock):\n\n```python\n{_guarded(cell_match.group(3), line, error)}\n```"
    return text + "\n\nA mock answer: it guards the failing line; a real model would fix its cause."


def _seen(images: list[Any] | None, context: list[str]) -> list[str]:
    """The lines that say what came with the question: images, then the notebook's variables."""
    lines = []
    if images:
        from ttt_magic.images import describe

        shown = [describe(str(mime), bytes(data)) for mime, data in images]
        lines.append(
            f"I see {shown[0]}." if len(shown) == 1 else f"I see {len(shown)} images: {'; '.join(shown)}."
        )
    if context:
        lines.append("From the notebook I was shown: " + "; ".join(context) + ".")
    return lines


# --------------------------------------------------------------------------- the backend


class MockLLMBackend(BaseBackend):
    """A pretend LLM: prompt-dependent template answers, streamed with realistic pacing.

    ``astream`` is the answer; ``ask`` gathers it, pauses included (a real model
    takes about as long whether or not it streams), with the thinking apart.
    """

    backend_name = "mock"
    #: Answers cost nothing (the router can skip pricing them).
    free = True
    #: Any model name is answered (a default_backend that serves aliases of unavailable backends).
    serves_any_model = True
    #: It answers with an instance of a ``schema=`` it is given (structured output, natively).
    features = frozenset({"schema"})

    def delay(self, model: str | None = None) -> float:
        raw: Any = os.environ.get("TTT_MOCK_DELAY")
        if raw in (None, ""):
            raw = self.backend_config.get("delay", DEFAULT_DELAY)
        try:
            seconds = max(0.0, float(raw))
        except (TypeError, ValueError):
            seconds = DEFAULT_DELAY
        return seconds / 4 if model == "mock-fast" else seconds

    async def astream(
        self,
        prompt: str,
        *,
        model: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[str | Thinking | StreamEnd]:
        if not isinstance(prompt, str):  # content parts: [{"type": "text", "text": ...}, ...]
            prompt = " ".join(str(p.get("text", "")) for p in prompt if isinstance(p, dict))
        if HOOK_FAIL in prompt.lower():
            raise ProviderError(
                "Mock failure: the prompt contains the test hook [fail].",
                hint="Remove [fail] from the prompt to get an answer.",
                retryable=False,
                kind="mock",
            )
        if HOOK_FAIL_RETRYABLE in prompt.lower():
            raise ProviderError(
                "Mock overload: the prompt contains the test hook [fail-retryable] (503).",
                status=503,
                retryable=True,
                kind="mock",
            )
        history = kwargs.get("history")
        effort = kwargs.get("effort")
        # The request's other arguments: ``schema=``, provider options (``options={...}``)
        # and, when the backend is called directly, ``response_format=`` / ``format=``.
        options = dict(kwargs.get("options") or {})
        options.update(
            {k: v for k, v in kwargs.items() if k not in ("history", "options", "images", "effort")}
        )
        text, facts = compose(
            prompt,
            system=system,
            temperature=temperature,
            history=history,
            options=options,
            images=kwargs.get("images"),
        )
        text, cut = truncate(text, max_tokens)
        pause = self.delay(model)
        thinking = thinks(self.backend_config, effort)
        thought = compose_thinking(prompt, effort, system=system) if thinking else ""
        for sent, piece in enumerate(chunks(thought)):
            if pause and sent:
                await asyncio.sleep(pause)
            yield Thinking(piece)
        if thought:
            facts["thinking_tokens"] = estimate_tokens(thought)
            if effort is not None:
                facts["effort"] = effort
            if pause:
                await asyncio.sleep(pause)
        fail_after = 3 if HOOK_FAIL_AFTER_3 in prompt.lower() else None
        for sent, piece in enumerate(chunks(text)):
            if fail_after is not None and sent == fail_after:
                break
            if pause and sent:
                await asyncio.sleep(pause)
            yield piece
        if fail_after is not None:
            raise ProviderError(
                "Mock failure after 3 chunks: the prompt contains the test hook [fail-after-3].",
                retryable=False,
                kind="mock",
            )
        context = (
            "".join(str(m.get("content", "")) for m in history or [] if isinstance(m, dict))
            + (system or "")
            + prompt
        )
        yield StreamEnd(
            model=model or MODELS[0],
            tokens_in=estimate_tokens(context),
            tokens_out=estimate_tokens(text),
            finish_reason="length" if cut else "stop",
            metadata=facts,
            reasoning=thought or None,  # what a cache or a recording keeps of the thinking
        )

    async def models(self) -> list[str]:
        return list(MODELS)


def register_plugin(registry: Any) -> None:
    registry.register_backend(
        "mock",
        MockLLMBackend,
        version="1.0.0",
        description="A pretend LLM: prompt-dependent answers, streaming, test hooks",
        author="ttt-magic developers",
    )
