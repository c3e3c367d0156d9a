"""Record the answers of notebooks from a real OpenAI-compatible server, for offline replay.

Runs each notebook top to bottom in a fresh kernel with ``record`` pointing
at ``<notebook>.answers.jsonl`` beside it, and every ``%%ask`` answered by the
server (for instance llama-cpp-python's server with a small GGUF model; see
docs/caching.md). The notebook file itself is left as it is unless
``--save``. The recording replaces the previous one only when the whole
notebook ran without an error; ``--keep`` adds to it instead of starting
afresh. ``--check`` then runs the notebook again from the recording alone
(``replay_mode: strict``, the server's address replaced by one where nothing
listens), which proves that it replays offline.

    python -m llama_cpp.server --model qwen2.5-0.5b-instruct-q4_k_m.gguf --port 8000 &
    python scripts/record_notebooks.py notebooks/01_quickstart.ipynb --check

Not run by the tests: it needs a real server, and its answers differ by model.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

#: Provider variables dropped from the kernel's environment, so the server is the only backend.
OTHER_PROVIDERS = (
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "OPENROUTER_API_KEY",
    "ANTHROPIC_BASE_URL",
    "GEMINI_BASE_URL",
    "OPENROUTER_BASE_URL",
)
#: What a local server that checks no key is sent (it is not a key, and it is never written down).
PLACEHOLDER_KEY = "sk-local-no-key-required"
#: Where nothing listens: a replay check that tried the network would fail at once.
NOWHERE = "http://127.0.0.1:9/v1"


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def served_models(base_url: str, key: str, timeout: float = 5.0) -> list[str]:
    """The model names ``GET /models`` lists (raises OSError when the server does not answer)."""
    request = urllib.request.Request(
        base_url.rstrip("/") + "/models", headers={"Authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        body = json.loads(reply.read().decode("utf-8"))
    return [str(item.get("id")) for item in body.get("data", []) if item.get("id")]


def kernel_env(overrides: dict[str, str]) -> dict[str, str]:
    """This environment without other providers or TTT_* settings, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTT_") and k not in OTHER_PROVIDERS}
    env.update(overrides)
    return env


def run_notebook(path: Path, env: dict[str, str], timeout: float, save: bool) -> None:
    """Execute ``path`` in a fresh kernel with ``env``; raises on the first failing cell."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    originals = _without_replay(notebook) if "TTT_RECORD" in env else []
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # the kernel inherits the environment of this process
    try:
        client = NotebookClient(
            notebook,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        )
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    for cell, source in originals:
        cell.source = source  # the saved notebook keeps its replay line
    if save:
        nbformat.write(notebook, path)


def _without_replay(notebook: Any) -> list[tuple[Any, str]]:
    """A notebook that replays its recording by default (``%ttt_replay FILE``) asks the server instead.

    Returns the cells changed with their original source, to put back before saving.
    """
    changed = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        lines = cell.source.splitlines()
        if any(line.lstrip().startswith("%ttt_replay") for line in lines):
            changed.append((cell, cell.source))
            cell.source = "\n".join(
                "%ttt_replay --off" if line.lstrip().startswith("%ttt_replay") else line for line in lines
            )
    return changed


def count(path: Path) -> int:
    try:
        return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    except OSError:
        return 0


def record(notebook: Path, args: argparse.Namespace, model: str, key: str) -> Path:
    target = Path(args.out) if args.out else notebook.with_suffix(".answers.jsonl")
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    scratch = Path(name)
    if args.keep and target.exists():
        shutil.copyfile(target, scratch)
    else:
        scratch.unlink()
    env = kernel_env(
        {
            "OPENAI_BASE_URL": args.base_url,
            "OPENAI_API_KEY": key,
            "TTT_DEFAULT_BACKEND": "openai",
            "TTT_DEFAULT_MODEL": model,
            "TTT_RECORD": str(scratch),
            "TTT_RAISE_ON_ERROR": "1",
            "TTT_TIMEOUT": str(args.answer_timeout),
        }
    )
    try:
        run_notebook(notebook, env, args.cell_timeout, args.save)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
    if not scratch.exists():
        raise RuntimeError(f"{notebook} asked nothing: no answer was recorded.")
    os.replace(scratch, target)
    return target


def check(notebook: Path, recording: Path, args: argparse.Namespace, model: str) -> None:
    env = kernel_env(
        {
            "OPENAI_BASE_URL": NOWHERE,
            "OPENAI_API_KEY": PLACEHOLDER_KEY,
            "TTT_DEFAULT_BACKEND": "openai",
            "TTT_DEFAULT_MODEL": model,
            "TTT_REPLAY": str(recording),
            "TTT_REPLAY_MODE": "strict",
            "TTT_REPLAY_SPEED": "0",
            "TTT_RAISE_ON_ERROR": "1",
        }
    )
    run_notebook(notebook, env, args.cell_timeout, save=False)


def check_only(args: argparse.Namespace) -> int:
    status = 0
    for notebook in args.notebooks:
        target = Path(args.out) if args.out else notebook.with_suffix(".answers.jsonl")
        if not target.exists():
            print(f"{notebook}: no recording at {target}", file=sys.stderr)
            status = 1
            continue
        try:
            check(notebook.resolve(), target.resolve(), args, args.model or "recorded")
        except Exception as exc:
            print(f"{notebook}: does not replay offline: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"{notebook}: replays offline ({count(target)} answers)", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path, help="the .ipynb files to record")
    parser.add_argument(
        "--base-url",
        default=os.environ.get("TTT_RECORD_BASE_URL", "http://127.0.0.1:8000/v1"),
        help="the server's OpenAI API root (default %(default)s)",
    )
    parser.add_argument("--model", help="the model to ask (default: the first the server lists)")
    parser.add_argument(
        "--key-env",
        metavar="VAR",
        help="the environment variable holding the server's API key, if it checks one",
    )
    parser.add_argument(
        "--out", help="the recording file (one notebook only; default: NOTEBOOK.answers.jsonl)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="add to the existing recording instead of replacing it"
    )
    parser.add_argument("--save", action="store_true", help="also save the notebooks with the new outputs")
    parser.add_argument("--check", action="store_true", help="then replay each notebook offline, strictly")
    parser.add_argument(
        "--check-only",
        action="store_true",
        help="record nothing: only replay the existing recordings offline",
    )
    parser.add_argument("--cell-timeout", type=float, default=600, help="seconds a cell may run")
    parser.add_argument("--answer-timeout", type=float, default=300, help="seconds one answer may take")
    args = parser.parse_args(argv)

    if args.out and len(args.notebooks) > 1:
        return fail("--out names one recording: give one notebook with it.")
    for notebook in args.notebooks:
        if not notebook.is_file():
            return fail(f"no notebook at {notebook}.")
    if args.check_only:
        return check_only(args)
    key = os.environ.get(args.key_env, "") if args.key_env else PLACEHOLDER_KEY
    if args.key_env and not key:
        return fail(f"{args.key_env} is not set.")
    try:
        models = served_models(args.base_url, key)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return fail(
            f"no OpenAI-compatible server answers at {args.base_url} ({reason}). Start one, e.g. "
            "`python -m llama_cpp.server --model MODEL.gguf --port 8000`, or give --base-url."
        )
    model = args.model or (models[0] if models else None)
    if not model:
        return fail("the server lists no model: give --model.")
    print(f"Recording from {args.base_url}, model {model}", file=sys.stderr)
    status = 0
    for notebook in args.notebooks:
        try:
            target = record(notebook.resolve(), args, model, key)
        except Exception as exc:
            print(f"{notebook}: not recorded, the previous recording is kept: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"{notebook}: {count(target)} answers in {target}", file=sys.stderr)
        if args.check:
            try:
                check(notebook.resolve(), target, args, model)
            except Exception as exc:
                print(f"{notebook}: does not replay offline: {exc}", file=sys.stderr)
                status = 1
                continue
            print(f"{notebook}: replays offline", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
