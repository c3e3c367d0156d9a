"""The notebook as context (issue #15): the last error, the variables a question names, images.

What ``%%ask`` adds to a question beyond its own text, one function per source:

* ``--fix`` (``fix_prompt``): the last exception this kernel raised, with the
  source of the cell that raised it, its traceback trimmed to the user's own
  frames (library frames one line each, long runs folded) and the variables
  the failing lines use, each described by ``ttt_magic.describe.describe``.
  Configured keys, and anything shaped like a key, are redacted first.
  Exceptions are recorded by a ``post_run_cell`` hook the extension installs;
  one raised before it was loaded is found through ``sys.last_value``.
* ``--context`` (``context_section``): a compact description of every
  variable the prompt names, in braces or as a word (``--context ALL``: also
  every DataFrame and Series of the namespace), within ``context_budget``
  tokens, after the question.
* ``--image PATH`` (``image_files``): image files sent as images; the prompt
  keeps a reference (``[image: chart.png, a 640x480 PNG image (12 KB)]``),
  which is all a conversation's history holds of them.

``add_context`` applies them to a prepared ``Question``; each says what it
added in a footer note (how many tokens of context were sent).
"""

from __future__ import annotations

import keyword
import linecache
import os
import re
import sys
import traceback
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

from ..describe import describe, fit, image_reference
from ..tokens import count

__all__ = [
    "ALL",
    "CONTEXT_HEADING",
    "NAMED",
    "NO_ERROR",
    "ErrorRecord",
    "add_context",
    "context_section",
    "fix_prompt",
    "image_files",
    "install",
    "last_error",
    "names_in",
    "normalize_options",
    "redact",
    "trimmed_traceback",
    "uninstall",
]

#: ``--context`` alone: the variables the prompt names; ``--context ALL``: also every DataFrame and Series.
NAMED, ALL = "named", "ALL"
DEFAULT_BUDGET = 2000
CONTEXT_HEADING = "Notebook context (the variables named above, described, not their full contents):"
FIX_REQUEST = (
    "Explain briefly why this notebook cell failed, then give the whole corrected cell "
    "as one Python code block."
)
NO_ERROR = "No error to fix: no cell has raised an exception in this kernel yet."
#: Names IPython puts in the namespace: never context.
_IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit"})
_IDENTIFIER = re.compile(r"(?<![\w.])[A-Za-z_][A-Za-z0-9_]*")
_FIELD = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)")
#: Library frames in a row shown before the rest of the run is folded into one line.
LIBRARY_RUN = 3
#: Characters of an exception's message kept.
MAX_MESSAGE = 1500
#: Variables of the failing lines described at most.
MAX_VARIABLES = 12


# --------------------------------------------------------------------------- options


def normalize_options(opts: Any) -> Any:
    """Read ``--context``'s optional value: ``ALL`` (any case) or nothing.

    On a ``%%ask`` line, ``--context what is df`` would make "what" its value;
    a word that is not ALL goes back to the front of the prompt.
    """
    value = getattr(opts, "context", None)
    if value is None or value == NAMED:
        return opts
    if str(value).upper() == ALL:
        opts.context = ALL
        return opts
    opts.prompt = [value, *(getattr(opts, "prompt", None) or [])]
    opts.context = NAMED
    return opts


# --------------------------------------------------------------------------- recording errors


@dataclass
class ErrorRecord:
    """The last exception a cell raised, the source of that cell and its execution count."""

    exception: BaseException
    cell: str | None = None
    number: int | None = None


_records: weakref.WeakKeyDictionary[Any, ErrorRecord] = weakref.WeakKeyDictionary()
_hooks: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def install(shell: Any) -> None:
    """Record every exception a cell raises in ``shell`` (a ``post_run_cell`` hook), once."""
    if shell in _hooks or not hasattr(shell, "events"):
        return
    ref = weakref.ref(shell)

    def record(result: Any = None) -> None:
        error = getattr(result, "error_in_exec", None) or getattr(result, "error_before_exec", None)
        owner = ref()
        if owner is None or not isinstance(error, Exception):  # KeyboardInterrupt is not a bug to fix
            return
        info = getattr(result, "info", None)
        _records[owner] = ErrorRecord(
            error, getattr(info, "raw_cell", None), getattr(result, "execution_count", None)
        )

    shell.events.register("post_run_cell", record)
    _hooks[shell] = record


def uninstall(shell: Any) -> None:
    """Stop recording (``%unload_ext``) and forget the error recorded."""
    _records.pop(shell, None)
    record = _hooks.pop(shell, None)
    if record is not None:
        try:
            shell.events.unregister("post_run_cell", record)
        except ValueError:
            pass


def last_error(shell: Any = None) -> ErrorRecord | None:
    """The last exception of this kernel: recorded by the hook, else ``sys.last_value``."""
    if shell is None:
        shell = _current_shell()
    if shell is not None and shell in _records:
        return _records[shell]
    value = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if not isinstance(value, Exception):
        return None
    if value.__traceback__ is None and getattr(sys, "last_traceback", None) is not None:
        value = value.with_traceback(sys.last_traceback)
    number = next((n for n, _ in _cells_of(value, shell)), None)
    return ErrorRecord(value, _cell_source(shell, number), number)


def _current_shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - the notebook layer runs under IPython
        return None
    return get_ipython()


def _cell_source(shell: Any, number: int | None) -> str | None:
    if shell is None or number is None:
        return None
    history = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None) or []
    return history[number] if 0 < number < len(history) else None


# --------------------------------------------------------------------------- the traceback


def _filename_map(shell: Any) -> Mapping[str, int]:
    compiler = getattr(shell, "compile", None)
    return getattr(compiler, "_filename_map", None) or {}


def _cell_number(filename: str, shell: Any) -> int | None:
    number = _filename_map(shell).get(filename)
    if number is None:
        found = re.match(r"<ipython-input-(\d+)-", filename)
        number = int(found.group(1)) if found else None
    return number


def _cells_of(exc: BaseException, shell: Any) -> list[tuple[int, str]]:
    """(execution count, filename) of each cell frame in the traceback, outermost first."""
    out = []
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        number = _cell_number(frame.f_code.co_filename, shell)
        if number is not None:
            out.append((number, frame.f_code.co_filename))
    return out


def _library_dirs() -> tuple[str, ...]:
    import site
    import sysconfig

    dirs: set[str] = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            dirs.add(os.path.realpath(path))
    try:
        dirs.update(os.path.realpath(p) for p in site.getsitepackages())
    except AttributeError:  # pragma: no cover - virtualenv's old site module
        pass
    user_site = getattr(site, "getusersitepackages", lambda: None)()
    if user_site:
        dirs.add(os.path.realpath(user_site))
    dirs.add(os.path.realpath(os.path.dirname(os.path.dirname(__file__))))  # ttt_magic itself
    return tuple(sorted(dirs, key=len, reverse=True))


_LIBRARY_DIRS: tuple[str, ...] | None = None


def _library_path(filename: str) -> str | None:
    """A library file's path from where libraries live (``pandas/core/frame.py``); None for a user's file."""
    global _LIBRARY_DIRS
    if filename.startswith("<frozen") or filename.startswith("<__array_function__"):
        return filename
    if not os.path.isabs(filename):
        return None
    if _LIBRARY_DIRS is None:
        _LIBRARY_DIRS = _library_dirs()
    real = os.path.realpath(filename)
    for base in _LIBRARY_DIRS:
        if real.startswith(base + os.sep):
            rel = os.path.relpath(real, base)
            if base.endswith("ttt_magic"):
                rel = os.path.join("ttt_magic", rel)
            return rel
    for marker in ("site-packages", "dist-packages"):
        if f"{os.sep}{marker}{os.sep}" in real:
            return real.split(f"{os.sep}{marker}{os.sep}", 1)[1]
    return None


def _user_path(filename: str) -> str:
    """A user's file as a prompt shows it: relative to the working directory, or with ``~``."""
    if not os.path.isabs(filename):
        return filename
    try:
        rel = os.path.relpath(filename)
    except ValueError:  # another drive
        rel = filename
    if not rel.startswith(".."):
        return rel
    home = os.path.expanduser("~")
    if home and filename.startswith(home + os.sep):
        return "~" + filename[len(home) :]
    return os.path.basename(filename)


@dataclass
class _Frame:
    frame: FrameType
    label: str
    code: list[str]
    user: bool


def _frames(exc: BaseException, shell: Any) -> list[_Frame]:
    tb: TracebackType | None = exc.__traceback__
    walked = list(traceback.walk_tb(tb))
    summary = traceback.StackSummary.extract(iter(walked), lookup_lines=True, capture_locals=False)
    frames = []
    for (frame, _), entry in zip(walked, summary):
        filename = entry.filename
        number = _cell_number(filename, shell)
        where = f"line {entry.lineno}, in {entry.name}"
        if number is not None:
            label, user = f"Cell In[{number}], {where}", True
        else:
            library = _library_path(filename)
            user = library is None
            label = f"{library if library is not None else _user_path(filename)}, {where}"
        code: list[str] = []
        if user and entry.lineno:
            # FrameSummary.end_lineno is Python 3.11+; on 3.10 a statement is its first line.
            end = getattr(entry, "end_lineno", None) or entry.lineno
            last = min(end, entry.lineno + 2)
            code = [
                linecache.getline(filename, n, frame.f_globals).rstrip()
                for n in range(entry.lineno, last + 1)
            ]
            code = [line for line in code if line.strip()] or ([entry.line] if entry.line else [])
        frames.append(_Frame(frame, label, code, user))
    first_user = next((i for i, f in enumerate(frames) if f.user), None)
    return frames[first_user:] if first_user is not None else frames[-1:]  # the kernel's machinery dropped


def _exception_text(exc: BaseException, shell: Any) -> str:
    lines = traceback.format_exception_only(type(exc), exc)
    text = "".join(lines).rstrip()
    for filename, number in _filename_map(shell).items():  # a SyntaxError names its cell's file
        if filename in text:
            text = text.replace(f'File "{filename}"', f"Cell In[{number}]").replace(filename, f"In[{number}]")
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE] + f"… [{len(text) - MAX_MESSAGE} characters more]"
    return text


def _chain(exc: BaseException) -> list[str]:
    """One line per exception this one was raised from or while handling (at most three)."""
    out: list[str] = []
    seen = {id(exc)}
    while len(out) < 3:
        cause = exc.__cause__
        context = exc.__context__ if not exc.__suppress_context__ else None
        exc = cause or context  # type: ignore[assignment]
        if exc is None or id(exc) in seen:
            break
        seen.add(id(exc))
        first = (traceback.format_exception_only(type(exc), exc) or [""])[-1].strip()
        how = "raised from" if cause is not None else "raised while handling"
        out.append(f"({how} {first[:300]})")
    return out


def _frame_lines(frames: list[_Frame]) -> list[str]:
    """User frames with their code; library frames one line each, a long run folded."""
    lines: list[str] = []
    i = 0
    while i < len(frames):
        frame = frames[i]
        if frame.user:
            lines.append(f"  {frame.label}")
            lines += [f"    {line.strip()}" for line in frame.code]
            i += 1
            continue
        run = []
        while i < len(frames) and not frames[i].user:
            run.append(frames[i])
            i += 1
        folded = len(run) > LIBRARY_RUN + 1
        shown = [*run[: LIBRARY_RUN - 1], None, run[-1]] if folded else list(run)
        for item in shown:
            if item is None:
                lines.append(f"  … {len(run) - LIBRARY_RUN} more library frames …")
            else:
                lines.append(f"  (library) {item.label}")
    return lines


def trimmed_traceback(exc: BaseException, shell: Any = None, budget: int | None = None) -> str:
    """The traceback a model needs: the user's frames with their code, library frames folded.

    Within ``budget`` tokens: the middle frames are left out first (the outermost
    and the innermost ones say most), then the text is cut.
    """
    frames = _frames(exc, shell)
    tail = [_exception_text(exc, shell), *_chain(exc)]
    head = "Traceback (most recent call last; library frames one line each):"
    body = _frame_lines(frames)
    text = "\n".join([head, *body, *tail]) if frames else "\n".join(tail)
    keep = len(frames)
    while budget is not None and count(text) > budget and keep > 2:
        keep = max(2, keep - max(1, keep // 4))  # a deep recursion shrinks in a few steps
        outer, inner = frames[:1], frames[len(frames) - (keep - 1) :]
        left_out = len(frames) - len(outer) - len(inner)
        body = [*_frame_lines(outer), f"  … {left_out} frames left out …", *_frame_lines(inner)]
        text = "\n".join([head, *body, *tail])
    return fit(text, budget)


# --------------------------------------------------------------------------- keys


def redact(text: str, secrets: Iterable[str] = ()) -> tuple[str, int]:
    """``text`` with configured secrets masked and anything key-shaped replaced; how many were found."""
    from ..backends.http import redact as redact_keyish
    from ..withhold import scrub

    text, found = scrub(text, tuple(secrets))
    cleaned = redact_keyish(text)
    return cleaned, found + cleaned.count("[redacted]") - text.count("[redacted]")


# --------------------------------------------------------------------------- variables


def _hidden(name: str) -> bool:
    return name.startswith("_") or name in _IPYTHON_NAMES or keyword.iskeyword(name)


def _describable(value: Any, named_in_braces: bool) -> bool:
    import inspect

    if inspect.ismodule(value):
        return False
    # A word that happens to name a function is rarely a question about it.
    return named_in_braces or not (inspect.isroutine(value) or inspect.isclass(value))


def _fence(text: str, language: str = "") -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{language}\n{text.rstrip()}\n{ticks}"


def _describe_all(items: list[tuple[str, Any]], budget: int, *, rows: int = 5) -> tuple[list[str], list[str]]:
    """Descriptions of ``(label, value)`` pairs sharing ``budget`` tokens; (described, left out)."""
    out: list[str] = []
    left_out: list[str] = []
    remaining = budget
    for index, (label, value) in enumerate(items):
        share = remaining // max(1, len(items) - index)
        if share < 24:
            left_out += [name for name, _ in items[index:]]
            break
        try:
            text = describe(value, name=label, budget=share, rows=rows)
        except Exception as exc:  # a value whose methods fail: say so, do not fail the question
            text = f"{label}: {type(value).__name__} (could not be described: {type(exc).__name__})"
        out.append(text)
        remaining -= count(text)
    return out, left_out


# --------------------------------------------------------------------------- --fix


def _used_variables(frames: list[Any], limit: int) -> list[tuple[str, Any]]:
    """(label, value) of the names the user frames' failing lines use, innermost frame first."""
    found: list[tuple[str, Any]] = []
    seen: set[tuple[str, int]] = set()  # (name, id of its value): the same object once, whatever the frame
    import builtins

    for frame in reversed([f for f in frames if f.user]):
        scope = frame.frame
        is_module = scope.f_code.co_name == "<module>"
        for name in _IDENTIFIER.findall(" ".join(frame.code)):
            if _hidden(name):
                continue
            local = not is_module and name in scope.f_locals
            if name in scope.f_locals:
                value = scope.f_locals[name]
            elif name in scope.f_globals:
                value = scope.f_globals[name]
            else:
                continue  # a builtin, or not defined yet
            if (name, id(value)) in seen:
                continue
            if value is getattr(builtins, name, object()) or not _describable(value, True):
                continue
            seen.add((name, id(value)))
            label = f"{name} (in {scope.f_code.co_name})" if local else name  # a function's own names
            found.append((label, value))
            if len(found) >= limit:
                return found
    return found


def fix_prompt(
    instructions: str,
    *,
    shell: Any = None,
    budget: int = DEFAULT_BUDGET,
    secrets: Iterable[str] = (),
) -> tuple[str, list[str]]:
    """The ``--fix`` question and its footer note; a ``UsageError`` when no error was recorded."""
    from ..errors import UsageError

    if shell is None:
        shell = _current_shell()
    record = last_error(shell)
    if record is None:
        raise UsageError(NO_ERROR, hint="Run the cell that fails, then %ask --fix.")
    exc = record.exception
    frames = _frames(exc, shell)
    where = f"In[{record.number}]" if record.number is not None else "the last cell that failed"
    cell = record.cell if record.cell is not None else _cell_source(shell, record.number)
    sections: list[str] = []
    used = 0
    cell = (cell or "").strip("\n")  # IPython drops leading blank lines: the traceback's numbers then agree
    if cell.strip():
        source = fit(cell, budget * 2 // 5)
        sections.append(f"The cell ({where}):\n{_fence(source, 'python')}")
        used += count(source)
    tb_text = trimmed_traceback(exc, shell, max(200, budget * 2 // 5))
    sections.append(f"The error:\n{_fence(tb_text)}")
    used += count(tb_text)
    variables, _ = _describe_all(_used_variables(frames, MAX_VARIABLES), max(120, budget - used), rows=3)
    if variables:
        heading = "Variables those lines use, as they are now (described, not in full):"
        sections.append(heading + "\n\n" + "\n\n".join(variables))
    context, hidden = redact("\n\n".join(sections), secrets)
    ask = FIX_REQUEST + (f"\n\nAlso: {instructions.strip()}" if instructions.strip() else "")
    note = f"--fix: {type(exc).__name__} from {where}, ~{count(context)} tokens of context"
    notes = [note]
    if hidden:
        notes.append("key-like values in the error context were redacted")
    return f"{ask}\n\n{context}", notes


# --------------------------------------------------------------------------- --context


def names_in(prompt: str) -> tuple[list[str], set[str]]:
    """The names a prompt mentions, in order (braces and words), and those written in braces."""
    braces = _FIELD.findall(prompt)
    words = _IDENTIFIER.findall(prompt)
    ordered = list(dict.fromkeys([*braces, *words]))
    return ordered, set(braces)


def _whole_fields(prompt: str) -> set[str]:
    """Names written as a whole ``{name}`` field: already described where they stand."""
    return set(re.findall(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}", prompt))


def context_section(
    prompt: str,
    namespace: Mapping[str, Any],
    *,
    every: bool = False,
    budget: int = DEFAULT_BUDGET,
    secrets: Iterable[str] = (),
    interpolated: bool = True,
) -> tuple[str, list[str]]:
    """The ``--context`` section (empty when nothing is named) and its footer note.

    ``prompt`` is the question as typed: a ``{name}`` field that interpolation
    already filled (``interpolated``) is not described twice.
    """
    names, braced = names_in(prompt)
    skip = _whole_fields(prompt) if interpolated else set()
    chosen: list[tuple[str, Any]] = []
    for name in names:
        if _hidden(name) or name in skip or name not in namespace:
            continue
        value = namespace[name]
        if _describable(value, name in braced):
            chosen.append((name, value))
    if every:
        taken = {name for name, _ in chosen} | skip
        for name, value in list(namespace.items()):
            kind = type(value)
            if (
                name not in taken
                and not _hidden(name)
                and kind.__module__.split(".")[0] == "pandas"
                and kind.__name__ in ("DataFrame", "Series")
            ):
                chosen.append((name, value))
    if not chosen:
        return "", ["--context: the question names no variable of this notebook"]
    described, left_out = _describe_all(chosen, max(50, budget - count(CONTEXT_HEADING)))
    text, hidden = redact("\n\n".join(described), secrets)
    shown = [name for name, _ in chosen if name not in left_out]
    note = f"context: {', '.join(shown) or 'none'} (~{count(text)} tokens)"
    if left_out:
        note += f"; {len(left_out)} more left out (context_budget)"
    notes = [note]
    if hidden:
        notes.append("key-like values in the context were redacted")
    return f"{CONTEXT_HEADING}\n\n{text}", notes


# --------------------------------------------------------------------------- images


def image_files(paths: Iterable[str]) -> list[tuple[tuple[str, bytes], str]]:
    """Each ``--image`` file as ((MIME type, bytes), reference); ``UsageError`` for one that is unreadable."""
    from ..images import to_image

    out = []
    for path in paths:
        image = to_image(os.path.expanduser(path))
        out.append((image, image_reference(image, os.path.basename(path))))
    return out


# --------------------------------------------------------------------------- the question


def _budget(settings: Any) -> int:
    values = getattr(settings, "values", None) or {}
    value = values.get("context_budget") if isinstance(values, Mapping) else None
    if value is None:
        value = getattr(settings, "context_budget", None)
    return int(value) if isinstance(value, (int, float)) and value > 0 else DEFAULT_BUDGET


def add_context(
    question: Any,
    opts: Any,
    namespace: Mapping[str, Any],
    settings: Any,
    typed: str,
    images: Iterable[tuple[str, bytes]] = (),
) -> Any:
    """``question`` with what ``--fix``, ``--context`` and ``--image`` add, and images in its call.

    ``typed`` is the prompt as written (before interpolation); ``images`` are
    those interpolation collected. Returns the same ``Question``, updated.
    """
    from .withhold import configured_secrets

    fix = bool(getattr(opts, "fix", False))
    context = getattr(opts, "context", None)
    files = list(getattr(opts, "image", None) or [])
    images = list(images)
    if not (fix or context or files or images):
        return question
    budget = _budget(settings)
    secrets = configured_secrets(settings) if (fix or context) else []
    prompt = question.prompt
    notes = list(question.notes)
    if fix:
        prompt, added = fix_prompt(prompt, budget=budget, secrets=secrets)
        notes += added
    if context:
        raw = bool(getattr(opts, "raw", False))
        section, added = context_section(
            typed, namespace, every=context == ALL, budget=budget, secrets=secrets, interpolated=not raw
        )
        if section:
            prompt = f"{prompt.rstrip()}\n\n---\n{section}"
        notes += added
    if files:
        sent = image_files(files)
        prompt = prompt.rstrip() + "\n\n" + "\n".join(reference for _, reference in sent)
        images += [image for image, _ in sent]
    if images:
        from ..images import describe as describe_image

        shown = ", ".join(describe_image(*image) for image in images[:3])
        more = f" and {len(images) - 3} more" if len(images) > 3 else ""
        notes.append(f"{len(images)} image{'s' if len(images) > 1 else ''} sent: {shown}{more}")
        question.call["images"] = images
    question.prompt = prompt
    question.notes = notes
    return question
