"""Large jobs on the providers' batch engines: ``submit_batch``, ``BatchJob`` and the state file.

::

    job = submit_batch(df, "Summarize: {text}", model="gpt-4o-mini")   # estimates, submits, returns
    # ... a kernel restart later ...
    job = BatchJob.load("batch-3f2a9c1e0b.json")
    job.wait()                                  # polls with back-off; Ctrl-C stops waiting only
    df = df.join(job.results().to_frame())      # Answers in input order, as ask_many gives

The rows are built exactly as ``ask_many`` builds them (``batch._plan``: the
same inputs, templates and schemas), then each is settled like one ``ask``
(``router.prepare``) and turned into the provider's request body by the
backend's own ``exchange``: a batch line is the body one answer would send.
The provider's batch protocol lives beside its wire protocol
(``backends/openai_batch.py``, ``anthropic_batch.py``, ``google_batch.py``);
this module owns what they share:

- **Parts.** A job is split into parts within each provider's limits (OpenAI
  50,000 rows or 200 MB a batch, Anthropic 100,000 rows or 256 MB, Gemini
  about 20 MB of inlined requests); each part is one remote batch, and its
  request file is written to disk beside the state file (``NAME.partN.jsonl``),
  one row at a time, then streamed from there: memory stays one row.
- **The state file** (``batch-NAME.json``, JSON, written atomically after every
  change): the job's identity (backend, model, engine, the remote ids), its
  progress, the price used and the estimate. ``BatchJob.load(path)`` picks the
  job up again after a restart. Submitting the same rows again finds the same
  state file (its default name is a digest of the rows and options) and picks
  the job up instead of paying twice.
- **Results** are read from the provider's results files one line at a time
  (``http.iter_json_lines``), placed by ``custom_id`` (``row-N``), priced at the
  batch price (the catalogue's batch price when it gives one, else half the
  catalogue price), checked against the schema; a row that failed keeps its
  error. A row answered again by ``retry_failed`` takes its newest answer.

A backend without a batch service (Ollama, OpenAI-compatible servers, custom
backends) gets its rows asked with ``ask_many`` instead, with a note, unless
``engine="batch"`` demanded the batch service: that is a ``UsageError``
naming the backend.
"""

from __future__ import annotations

import array
import contextlib
import datetime as _dt
import hashlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import runner
from .errors import ProviderError, TTTError, UsageError
from .models import AIResponse, StreamEnd

__all__ = [
    "BatchJob",
    "BatchNotFinished",
    "BatchStatus",
    "batch_price",
    "list_jobs",
    "run_batch",
    "service_for",
    "submit_batch",
]

#: What the state file says it is (``kind``) and its layout version.
KIND = "ttt-magic-batch"
VERSION = 1

#: Seconds before the first poll of ``wait``, the growth per poll and the longest pause.
FIRST_POLL = 5.0
BACKOFF = 1.5
MAX_POLL = 60.0

#: The waiting function and clock of ``wait``; tests replace them.
sleep = time.sleep
clock = time.monotonic

#: Finish reasons that mean "cut off by max_tokens" (as the template reads them).
_LENGTH = frozenset({"length", "max_tokens", "MAX_TOKENS"})

ENGINES = ("auto", "batch")


class BatchNotFinished(TTTError):
    """``results()`` of a job with rows still pending (``wait()`` first, or ``results(partial=True)``)."""


# --------------------------------------------------------------------------- engines and prices


def _service_of(adapter: Any) -> Any:
    """The batch service speaking for a provider backend, or None."""
    from .backends.anthropic import AnthropicBackend
    from .backends.google import GeminiBackend
    from .backends.openai import OpenAIBackend, OpenAICompatibleBackend

    if isinstance(adapter, OpenAICompatibleBackend):
        return None
    if isinstance(adapter, OpenAIBackend) and getattr(adapter, "provider", "") == "openai":
        from .backends.openai_batch import OpenAIBatchService

        return OpenAIBatchService(adapter)
    if isinstance(adapter, AnthropicBackend):
        from .backends.anthropic_batch import AnthropicBatchService

        return AnthropicBatchService(adapter)
    if isinstance(adapter, GeminiBackend):
        from .backends.google_batch import GeminiBatchService

        return GeminiBatchService(adapter)
    return None


def service_for(
    backend: Any, model: str | None, provider: str | None = None
) -> tuple[Any, Any, str | None] | None:
    """(batch service, the backend that speaks the protocol, its model name) or None.

    The ``cloud`` backend is looked through to the provider adapter it would
    use for ``model`` (``provider`` pins the adapter, as a state file does).
    """
    from .backends.cloud import CloudBackend

    adapter, adapter_model = backend, model
    if isinstance(backend, CloudBackend):
        try:
            if provider is None:
                choice = backend.choose(model)
                provider, adapter_model = choice.provider, choice.model
            adapter = backend.adapter(provider)
        except TTTError:
            return None
    service = _service_of(adapter)
    return None if service is None else (service, adapter, adapter_model)


def batch_price(model: str | None, backend: Any = None) -> dict[str, Any] | None:
    """Dollars per million tokens at the batch rate, and where the figure comes from; None when unknown.

    The catalogue's ``batch_input_cost_per_mtok`` / ``batch_output_cost_per_mtok``
    when an entry has them, else half its ordinary price (what OpenAI,
    Anthropic and Google charge for batches).
    """
    if backend is not None and getattr(type(backend), "free", False):
        return {"input_per_mtok": 0.0, "output_per_mtok": 0.0, "basis": "free backend"}
    from .backends.template import model_info

    info = model_info(model)
    if info is None:
        return None
    bin_, bout = (getattr(info, f"batch_{k}_cost_per_mtok", None) for k in ("input", "output"))
    if bin_ is not None or bout is not None:
        return {
            "input_per_mtok": bin_ or 0.0,
            "output_per_mtok": bout or 0.0,
            "basis": "the catalogue's batch price",
        }
    if info.input_cost_per_mtok is not None or info.output_cost_per_mtok is not None:
        return {
            "input_per_mtok": (info.input_cost_per_mtok or 0.0) / 2,
            "output_per_mtok": (info.output_cost_per_mtok or 0.0) / 2,
            "basis": "half the catalogue price",
        }
    if info.cost_per_token is not None:
        per = info.cost_per_token * 1e6 / 2
        return {"input_per_mtok": per, "output_per_mtok": per, "basis": "half the catalogue price"}
    return None


def _cost(price: dict[str, Any] | None, tokens_in: int | None, tokens_out: int | None) -> float | None:
    if price is None or (tokens_in is None and tokens_out is None):
        return None
    return ((tokens_in or 0) * price["input_per_mtok"] + (tokens_out or 0) * price["output_per_mtok"]) / 1e6


# --------------------------------------------------------------------------- small helpers


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _line_safe(text: str) -> str:
    """JSON text with U+2028/U+2029 escaped: some line readers take them for line breaks."""
    if "\u2028" in text or "\u2029" in text:
        text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text


def _dumps(value: Any) -> str:
    return _line_safe(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str))


def _jsonable(value: Any) -> Any:
    """``value`` when it survives JSON unchanged, else None."""
    try:
        return value if json.loads(json.dumps(value)) == value else None
    except (TypeError, ValueError):
        return None


def _index_state(index: Any) -> Any:
    if index is None:
        return None
    if type(index).__name__ == "RangeIndex":
        return {"range": [int(index.start), int(index.stop), int(index.step)]}
    labels = index.tolist() if hasattr(index, "tolist") else list(index)
    return {"labels": labels} if _jsonable(labels) is not None else None


def _index_from_state(saved: Any) -> Any:
    if not isinstance(saved, dict):
        return None
    try:
        import pandas as pd
    except ImportError:
        pd = None
    if "range" in saved:
        start, stop, step = saved["range"]
        return pd.RangeIndex(start, stop, step) if pd is not None else list(range(start, stop, step))
    labels = saved.get("labels")
    if isinstance(labels, list):
        return pd.Index(labels) if pd is not None else labels
    return None


def _row_of(ref: Any) -> int | None:
    if isinstance(ref, str) and ref.startswith("row-") and ref[4:].isdigit():
        return int(ref[4:])
    return None


def _part_rows(part: dict[str, Any]) -> range | list[int]:
    if "row_list" in part:
        return list(part["row_list"])
    start, stop = part["rows"]
    return range(start, stop)


def _serialise(i: int, prompt: Any, response: AIResponse) -> dict[str, Any]:
    from .batch import _data_dict

    data = response.data
    return {
        "i": i,
        "prompt": prompt if isinstance(prompt, str) else None,
        "text": response.text,
        "model": response.model,
        "backend": response.backend,
        "tokens_in": response.tokens_in,
        "tokens_out": response.tokens_out,
        "cost": response.cost,
        "error": response.error,
        "data": _data_dict(data) if _data_dict(data) is not None else data,
        "metadata": response.metadata,
    }


def _deserialise(line: dict[str, Any]) -> AIResponse:
    return AIResponse(
        line.get("text") or "",
        model=line.get("model"),
        backend=line.get("backend"),
        tokens_in=line.get("tokens_in"),
        tokens_out=line.get("tokens_out"),
        cost=line.get("cost"),
        error=line.get("error"),
        data=line.get("data"),
        metadata=line.get("metadata") or {},
    )


# --------------------------------------------------------------------------- status


@dataclass
class BatchStatus:
    """Where a job stands: rows done, failed and pending, and what the provider says."""

    name: str
    engine: str
    total: int
    done: int
    failed: int
    pending: int
    #: "unsent" (parts not submitted yet), "in_progress", "cancelling" or "ended".
    state: str
    #: The provider's own status of each part (``completed``, ``ended``, ``BATCH_STATE_RUNNING``...).
    provider_states: list[str] = field(default_factory=list)
    #: The estimate at the batch price (dollars), or None when the price is unknown.
    estimated_cost: float | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def ended(self) -> bool:
        return self.state == "ended"

    def line(self) -> str:
        states = ", ".join(dict.fromkeys(self.provider_states)) or "-"
        parts = [f"{self.done:,} done", f"{self.failed:,} failed", f"{self.pending:,} pending"]
        return f"{self.name}: {' · '.join(parts)} of {self.total:,} — {self.state} ({self.engine}: {states})"

    def __repr__(self) -> str:
        lines = [f"BatchStatus({self.line()})"]
        lines += [f"  error: {e}" for e in self.errors]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "engine": self.engine,
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "pending": self.pending,
            "state": self.state,
            "provider_states": list(self.provider_states),
        }


# --------------------------------------------------------------------------- the job


class BatchJob:
    """A job on a provider's batch engine (or answered by ``ask_many``), kept in its state file.

    ``status()`` asks the provider how far it is; ``wait()`` polls with back-off
    (Ctrl-C stops waiting, not the job); ``results()`` gives ``Answers`` in
    input order; ``cancel()``; ``retry_failed()`` sends the failed rows again.
    Every change is written to the state file at once.
    """

    def __init__(self, path: str | os.PathLike[str], state: dict[str, Any]) -> None:
        self.path = Path(path)
        self.state = state
        self._service: Any = None
        self._adapter: Any = None
        #: In this process only: the prompts and ask() arguments (after a restart they come from files).
        self._prompts: list[Any] | None = None
        self._ask_kwargs: dict[str, Any] | None = None
        self._index: Any = None
        self._schema: Any = None
        self._answers: Any = None

    def _remember(self, plan: Any) -> None:
        """Keep what this process knows of the rows: prompts, the input's index, the ask() arguments."""
        self._prompts, self._index = plan.prompts, plan.data.index
        self._ask_kwargs, self._schema = plan.kwargs, plan.schema

    # -- loading and saving

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, schema: Any = None) -> BatchJob:
        """The job kept in ``path`` (a state file written by ``submit_batch``).

        ``schema``: the pydantic model the job was submitted with, so answers'
        ``.data`` are its instances again (the state file keeps the JSON Schema,
        which checks the answers either way).
        """
        target = Path(path)
        try:
            text = target.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UsageError(
                f"No batch state file {str(target)!r}.", hint="%ttt_batch lists the jobs of this folder."
            ) from None
        try:
            state = json.loads(text)
        except ValueError:
            raise UsageError(f"{str(target)!r} is not a batch state file (not JSON).") from None
        if not isinstance(state, dict) or state.get("kind") != KIND:
            raise UsageError(f"{str(target)!r} is not a ttt_magic batch state file.")
        if state.get("version", 0) > VERSION:
            raise UsageError(f"{str(target)!r} was written by a newer ttt_magic (layout {state['version']}).")
        job = cls(target, state)
        if schema is not None:
            from . import structured

            structured.normalize(schema)  # registers a pydantic model for validate()
            job._schema = schema
        return job

    def save(self) -> None:
        """Write the state file atomically (a temporary file renamed over it)."""
        self.state["updated"] = _now()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.state, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
        os.replace(tmp, self.path)

    # -- facts

    @property
    def name(self) -> str:
        return str(self.state.get("name") or self.path.stem)

    @property
    def engine(self) -> str:
        return str(self.state.get("engine"))

    @property
    def rows(self) -> int:
        return int(self.state.get("rows") or 0)

    @property
    def parts(self) -> list[dict[str, Any]]:
        return self.state.setdefault("parts", [])

    @property
    def ids(self) -> list[str]:
        """The provider's ids of the job's batches."""
        return [p["id"] for p in self.parts if p.get("id")]

    @property
    def estimate(self) -> Any:
        from .batch import Estimate

        saved = dict(self.state.get("estimate") or {})
        fields = {k: saved.get(k) for k in ("requests", "tokens_in", "tokens_out", "output_assumed", "cost")}
        if fields["requests"] is None:
            return None
        return Estimate(
            **fields,
            backend=saved.get("backend"),
            model=saved.get("model"),
            notes=list(saved.get("notes") or []),
        )

    def _file(self, name: str) -> Path:
        return self.path.parent / name

    def service(self) -> Any:
        """The batch service of this job's backend (built from the current configuration)."""
        if self._service is None:
            from . import router
            from .scope import effective

            settings = effective()
            backend, unusable = router._usable_backend(self.state["backend"], settings)
            if unusable is not None:
                raise unusable
            found = service_for(backend, self.state.get("request_model"), self.state.get("provider"))
            if found is None:
                raise UsageError(f"Backend {self.state['backend']!r} has no batch service now.")
            self._service, self._adapter, _ = found
        return self._service

    # -- status

    def _counts(self) -> tuple[int, int, int]:
        done = failed = 0
        for part in self.parts:
            count = int(part.get("count") or 0)
            succeeded = min(count, int(part.get("succeeded") or 0))
            bad = (
                count - succeeded
                if part.get("ended")
                else min(count - succeeded, int(part.get("failed") or 0))
            )
            done += succeeded
            failed += max(0, bad - int(part.get("retried") or 0))
        return done, failed, max(0, self.rows - done - failed)

    def _overall(self) -> str:
        parts = self.parts
        if any(p.get("status") == "unsent" for p in parts):
            return "unsent"
        if all(p.get("ended") for p in parts):
            return "ended"
        if self.state.get("cancelled"):
            return "cancelling"
        return "in_progress"

    def _status(self) -> BatchStatus:
        done, failed, pending = self._counts()
        estimate = self.state.get("estimate") or {}
        return BatchStatus(
            name=self.name,
            engine=self.engine,
            total=self.rows,
            done=done,
            failed=failed,
            pending=pending,
            state=self._overall(),
            provider_states=[str(p.get("status")) for p in self.parts],
            estimated_cost=estimate.get("cost"),
            errors=[str(p["error"]) for p in self.parts if p.get("error")],
        )

    def saved_status(self) -> BatchStatus:
        """The progress as last saved (asks nobody)."""
        return self._status()

    async def _apoll(self) -> None:
        live = [p for p in self.parts if p.get("id") and not p.get("ended") and p.get("engine") != "ask_many"]
        if not live:
            return
        service = self.service()
        for part in live:
            part.update(await service.poll(part))
        self.save()

    def status(self) -> BatchStatus:
        """Ask the provider how far each unfinished part is (one request each); saved to the state file."""
        runner.run(self._apoll())
        return self._status()

    # -- submitting

    async def _asubmit(self) -> None:
        unsent = [p for p in self.parts if p.get("status") == "unsent"]
        if not unsent:
            return
        service = self.service()
        for part in unsent:
            facts = await service.submit(
                self._file(part["file"]),
                rows=part["count"],
                name=f"{self.name}.part{part['n']}",
                endpoint=self.state["endpoint"],
            )
            part.update(facts)
            part["submitted"] = _now()
            self.save()

    def submit(self) -> BatchStatus:
        """Send the parts not sent yet (after a failure while submitting); nothing when all were sent."""
        try:
            runner.run(self._asubmit())
        except ProviderError as exc:
            self.save()
            raise ProviderError(
                exc.message,
                hint=(exc.hint + " " if exc.hint else "")
                + f"The job is kept in {str(self.path)!r}: BatchJob.load(...).submit() sends the rest.",
                status=exc.status,
                retryable=exc.retryable,
                kind=exc.kind,
            ) from None
        return self._status()

    # -- waiting

    def wait(
        self,
        progress: Any = True,
        *,
        timeout: float | None = None,
        first_poll: float | None = None,
        max_poll: float | None = None,
    ) -> BatchStatus:
        """Poll until every part has ended, with back-off; the last status.

        The first poll comes at once, the next after ``first_poll`` seconds
        (default 5), each pause 1.5 times the last, up to ``max_poll`` (60).
        ``timeout`` (seconds) returns the status so far instead of waiting on.
        Ctrl-C stops waiting and leaves the job running at the provider (it is
        in the state file); the interrupt is raised again so "Run All" stops.
        """
        from . import progress as _progress

        delay = FIRST_POLL if first_poll is None else float(first_poll)
        longest = MAX_POLL if max_poll is None else float(max_poll)
        started = clock()
        bar = _progress.make(progress, self.rows)
        current = self._status()
        try:
            if any(p.get("status") == "unsent" for p in self.parts):
                self.submit()
            while True:
                current = self.status()
                if bar is not None:
                    bar.update(self._snapshot(current, clock() - started))
                if current.ended:
                    break
                left = None if timeout is None else timeout - (clock() - started)
                if left is not None and left <= 0:
                    break
                sleep(delay if left is None else min(delay, left))
                delay = min(longest, delay * BACKOFF)
        except KeyboardInterrupt:
            if bar is not None:
                bar.close(self._snapshot(current, clock() - started))
            where = ", ".join(self.ids) or self.name
            _note(
                f"Stopped waiting: the job keeps running at the provider ({where}). "
                f"BatchJob.load({str(self.path)!r}).wait() picks it up; .cancel() stops it."
            )
            raise
        if bar is not None:
            bar.close(self._snapshot(current, clock() - started))
        return current

    def _snapshot(self, status: BatchStatus, elapsed: float) -> Any:
        from .progress import Snapshot

        return Snapshot(
            total=status.total,
            done=status.done + status.failed,
            failed=status.failed,
            elapsed=elapsed,
            stopped=None
            if not status.ended
            else f"the job ended ({', '.join(dict.fromkeys(status.provider_states))})",
        )

    # -- cancelling

    async def _acancel(self) -> None:
        live = [p for p in self.parts if p.get("id") and not p.get("ended") and p.get("engine") != "ask_many"]
        for part in [p for p in self.parts if p.get("status") == "unsent"]:
            part.update({"status": "not_sent", "ended": True, "succeeded": 0})
        if live:
            service = self.service()
            for part in live:
                part.update(await service.cancel(part))
        self.state["cancelled"] = True
        self.save()

    def cancel(self) -> BatchStatus:
        """Cancel the parts still running (rows already answered keep their answers)."""
        runner.run(self._acancel())
        return self._status()

    # -- results

    def _owners(self) -> array.array:
        """For every row, the part that answers it last (a retry supersedes the first try)."""
        owner = array.array("i", [-1]) * self.rows
        for p, part in enumerate(self.parts):
            if "row_list" in part:
                for i in part["row_list"]:
                    owner[i] = p
            else:
                start, stop = part["rows"]
                owner[start:stop] = array.array("i", [p]) * (stop - start)
        return owner

    def _response(
        self, i: int, part: dict[str, Any], text: str, end: StreamEnd | None, error: BaseException | None
    ) -> AIResponse:
        from .backends.base import error_info

        metadata: dict[str, Any] = dict(end.metadata) if end is not None else {}
        metadata["batch_id"] = part.get("id")
        metadata["batch_engine"] = self.engine
        if end is not None and end.finish_reason:
            metadata["finish_reason"] = end.finish_reason
            if end.finish_reason in _LENGTH:
                metadata["truncated"] = True
        tokens_in = end.tokens_in if end is not None else None
        tokens_out = end.tokens_out if end is not None else None
        data = None
        schema = self.state.get("schema")
        if error is None and schema is not None:
            from . import structured

            try:
                data = structured.check(text, schema)
            except structured.SchemaMismatch as problem:
                error = ProviderError(
                    f"The answer does not match the schema: {problem}.", retryable=False, kind="schema"
                )
        if error is not None:
            metadata["error_info"] = error_info(error)
        return AIResponse(
            text,
            model=(end.model if end is not None and end.model else None) or self.state.get("model"),
            backend=self.state.get("backend"),
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost=_cost(self.state.get("price"), tokens_in, tokens_out),
            error=None if error is None else str(error),
            data=data,
            reasoning=end.reasoning if end is not None else None,
            metadata=metadata,
        )

    def _missing(self, part: dict[str, Any]) -> AIResponse:
        status = part.get("status")
        if part.get("ended"):
            why = part.get("error") or f"the batch ended ({status}) without an answer for this row"
            meta: dict[str, Any] = {"batch_id": part.get("id"), "not_answered": True}
        else:
            why = f"not answered yet (the batch is {status})"
            meta = {"batch_id": part.get("id"), "pending": True}
        if status == "expired" or status == "BATCH_STATE_EXPIRED":
            why = f"expired: the batch ended ({status}) before this row was processed"
        return AIResponse(
            "",
            model=self.state.get("model"),
            backend=self.state.get("backend"),
            error=f"Not answered: {why}.",
            metadata=meta,
        )

    async def _aiter(self, *, partial: bool = False) -> AsyncIterator[tuple[int, AIResponse]]:
        """(row, answer) of every row, part by part, each row once (its newest answer)."""
        owner = self._owners()
        name = str(self.state.get("model"))
        for p, part in enumerate(self.parts):
            mine = _part_rows(part)
            if part.get("engine") == "ask_many":
                with open(self._file(part["file"]), encoding="utf-8") as handle:
                    for text in handle:
                        line = json.loads(text)
                        if owner[line["i"]] == p:
                            yield line["i"], _deserialise(line)
                continue
            if not part.get("ended"):
                if not partial:
                    raise BatchNotFinished(
                        f"Batch job {self.name!r} is not finished: part {p} is {part.get('status')}.",
                        hint=".wait() first, or .results(partial=True) for what is there.",
                    )
                for i in mine:
                    if owner[i] == p:
                        yield i, self._missing(part)
                continue
            seen = bytearray(self.rows)
            rows = mine if self._service_ordered() else None
            async for ref, text, end, error in self.service().rows(part, name):
                i = _row_of(ref)
                if i is None and isinstance(ref, int) and rows is not None and 0 <= ref < len(rows):
                    i = rows[ref]
                if i is None or not 0 <= i < self.rows or owner[i] != p or seen[i]:
                    continue
                seen[i] = 1
                yield i, self._response(i, part, text, end, error)
            for i in mine:
                if owner[i] == p and not seen[i]:
                    yield i, self._missing(part)

    def _service_ordered(self) -> bool:
        return bool(getattr(self.service(), "ordered", False))

    def iter_results(self, *, partial: bool = False) -> Iterator[tuple[int, AIResponse]]:
        """(row, answer) pairs as they are read, in the providers' order: memory stays one row."""
        if not partial and self._overall() != "ended":
            self.status()
        return iter(runner.iterate(lambda: self._aiter(partial=partial)))

    async def _acollect(self, partial: bool) -> list[AIResponse | None]:
        slots: list[AIResponse | None] = [None] * self.rows
        async for i, response in self._aiter(partial=partial):
            slots[i] = response
        return slots

    def results(self, *, partial: bool = False) -> Any:
        """``Answers`` in input order (what ``ask_many`` returns, so ``.to_frame()`` works).

        Each answer carries its text, tokens, cost at the batch price, model,
        backend and ``metadata["batch_id"]``; a failed row keeps its error.
        Raises ``BatchNotFinished`` while rows are pending, unless ``partial``
        (pending rows are then failed answers with ``metadata["pending"]``).
        """
        from .batch import Answers

        if self._overall() != "ended":
            self.status()
        slots = runner.run(self._acollect(partial))
        answers = [
            r if r is not None else AIResponse("", error="Not answered: no part holds this row.")
            for r in slots
        ]
        index = self._index if self._index is not None else _index_from_state(self.state.get("index"))
        prompts = self._prompts if self._prompts is not None else None
        result = Answers(answers, prompts=prompts, index=index)
        self._record_results(result)
        return result

    def _record_results(self, answers: Any) -> None:
        usage = answers.usage
        self.state["results"] = {
            "read": _now(),
            "ok": answers.ok_count,
            "failed": len(answers.failed),
            "tokens_in": usage.get("tokens_in"),
            "tokens_out": usage.get("tokens_out"),
            "cost": usage.get("cost"),
        }
        self.save()

    # -- retrying

    def _failed_rows(self) -> list[int]:
        async def collect() -> list[int]:
            return [i async for i, r in self._aiter() if r.failed]

        return runner.run(collect())

    def _lines_of(self, rows: set[int]) -> Iterator[tuple[int, bytes]]:
        """The request-file lines of ``rows``, read from the parts that hold them last."""
        owner = self._owners()
        for p, part in enumerate(self.parts):
            if part.get("engine") == "ask_many":
                continue
            with open(self._file(part["file"]), "rb") as handle:
                for raw in handle:
                    line = json.loads(raw)
                    ref = line.get("custom_id") or (line.get("metadata") or {}).get("key")
                    i = _row_of(ref)
                    if i is not None and i in rows and owner[i] == p:
                        yield i, raw

    def retry_failed(self, engine: str | None = None, *, progress: Any = None) -> BatchJob:
        """Send the failed rows again: as a new batch (the same request lines), or with ``ask_many``.

        ``engine``: None (the job's own: its batch service, or ``ask_many`` for a
        job answered by ``ask_many``), ``"batch"`` or ``"ask_many"``. The rows'
        earlier answers are superseded when the new ones arrive; the job must
        have ended. Returns the job (``wait()`` then ``results()``).
        """
        if engine not in (None, "batch", "ask_many"):
            raise UsageError(f"engine must be 'batch' or 'ask_many', not {engine!r}.")
        if self._overall() != "ended":
            self.status()
            if self._overall() != "ended":
                raise UsageError(f"Batch job {self.name!r} has not ended: .wait() first, or .cancel().")
        failed = self._failed_rows()
        if not failed:
            _note(f"{self.name}: no failed rows to retry.")
            return self
        use = engine or ("ask_many" if self.engine == "ask_many" else "batch")
        if use == "batch" and self.engine == "ask_many":
            raise UsageError(
                f"Batch job {self.name!r} was answered by ask_many: its backend has no batch service."
            )
        moved: dict[int, int] = {}
        owner = self._owners()
        for i in failed:
            moved[owner[i]] = moved.get(owner[i], 0) + 1
        if use == "ask_many":
            self._retry_with_ask_many(failed, progress)
        else:
            wanted = set(failed)
            first = len(self.parts)
            self._write_parts(self._lines_of(wanted))
            try:
                runner.run(self._asubmit())
            finally:
                self.save()
            _note(
                f"{self.name}: {len(failed):,} failed rows sent again "
                f"({len(self.parts) - first} new batch(es))."
            )
        for p, count in moved.items():
            self.parts[p]["retried"] = int(self.parts[p].get("retried") or 0) + count
        self.state["cancelled"] = False
        self.save()
        return self

    def _prompt_list(self, rows: list[int]) -> list[Any]:
        if self._prompts is not None:
            return [self._prompts[i] for i in rows]
        found: dict[int, Any] = {}
        wanted = set(rows)
        for part in self.parts:
            if part.get("engine") == "ask_many":
                with open(self._file(part["file"]), encoding="utf-8") as handle:
                    for text in handle:
                        line = json.loads(text)
                        if line["i"] in wanted and line.get("prompt") is not None:
                            found[line["i"]] = line["prompt"]
        if len(found) < len(wanted):
            service = self.service()
            for i, raw in self._lines_of(wanted - set(found)):
                found[i] = service.prompt_of(json.loads(raw))
        missing = [i for i in rows if not isinstance(found.get(i), str)]
        if missing:
            raise UsageError(
                f"The prompts of rows {missing[:5]} cannot be read back: retry them with engine='batch'."
            )
        return [found[i] for i in rows]

    def _retry_with_ask_many(self, rows: list[int], progress: Any) -> None:
        from .batch import ask_many

        kwargs = self._ask_kwargs if self._ask_kwargs is not None else self.state.get("ask_kwargs")
        if kwargs is None:
            raise UsageError(
                f"The ask() arguments of {self.name!r} were not kept (not JSON): retry with engine='batch'."
            )
        schema = self._schema if self._schema is not None else self.state.get("schema")
        prompts = self._prompt_list(rows)
        answers = ask_many(prompts, schema=schema, progress=progress, resume=False, **kwargs)
        self._add_local_part(rows, prompts, list(answers))

    def _add_local_part(self, rows: list[int], prompts: list[Any], answers: list[AIResponse]) -> None:
        n = len(self.parts)
        name = f"{self.path.stem}.part{n}.answers.jsonl"
        with open(self._file(name), "w", encoding="utf-8") as handle:
            for i, prompt, response in zip(rows, prompts, answers):
                handle.write(_dumps(_serialise(i, prompt, response)) + "\n")
        ok = sum(1 for r in answers if not r.failed)
        part: dict[str, Any] = {
            "n": n,
            "engine": "ask_many",
            "file": name,
            "count": len(rows),
            "status": "answered",
            "ended": True,
            "succeeded": ok,
            "failed": len(rows) - ok,
            "answered": _now(),
        }
        if rows == list(range(rows[0], rows[0] + len(rows))):
            part["rows"] = [rows[0], rows[0] + len(rows)]
        else:
            part["row_list"] = list(rows)
        self.parts.append(part)
        self.save()

    # -- writing parts

    def _write_parts(self, lines: Any) -> None:
        """Write request lines ``(row, bytes)`` into new part files within the service's limits."""
        service = self.service()
        handle = None
        part: dict[str, Any] | None = None
        first = last = -1
        listed: list[int] | None = None

        def close() -> None:
            nonlocal handle, part
            if handle is None or part is None:
                return
            handle.close()
            if listed is None:
                part["rows"] = [first, last + 1]
            else:
                part["row_list"] = listed
            self.parts.append(part)
            handle = part = None

        try:
            for i, data in lines:
                if (
                    part is None
                    or part["count"] >= service.max_rows
                    or (part["count"] and part["bytes"] + len(data) > service.max_bytes)
                ):
                    close()
                    n = len(self.parts)
                    part = {
                        "n": n,
                        "file": f"{self.path.stem}.part{n}.jsonl",
                        "count": 0,
                        "bytes": 0,
                        "status": "unsent",
                        "ended": False,
                    }
                    handle = open(self._file(part["file"]), "wb")  # noqa: SIM115 - closed in close()
                    first, last, listed = i, i - 1, None
                if listed is None and i != last + 1:
                    listed = list(range(first, last + 1))
                if listed is not None:
                    listed.append(i)
                last = i
                handle.write(data)
                part["count"] += 1
                part["bytes"] += len(data)
            close()
        finally:
            if handle is not None:
                handle.close()
        self.save()

    # -- display

    def __repr__(self) -> str:
        status = self._status()
        model = self.state.get("model")
        label = self.state.get("engine_label") or self.engine
        return f"BatchJob({str(self.path)!r}: {label}, {model}, {status.line()})"

    def _repr_markdown_(self) -> str:
        status = self._status()
        estimate = self.state.get("estimate") or {}
        cost = estimate.get("cost")
        rows = [
            "| | |",
            "| --- | --- |",
            f"| state file | `{self.path}` |",
            f"| engine | {self.state.get('engine_label') or self.engine} |",
            f"| model | `{self.state.get('model')}` |",
            f"| rows | {status.total:,} ({status.done:,} done, {status.failed:,} failed, "
            f"{status.pending:,} pending) |",
            f"| state | {status.state} ({', '.join(dict.fromkeys(status.provider_states)) or '-'}) |",
            f"| batches | {', '.join(f'`{i}`' for i in self.ids) or '-'} |",
            f"| estimate | {'unknown' if cost is None else f'${cost:.4f}'} at the batch price |",
        ]
        return "\n".join(rows)


# --------------------------------------------------------------------------- submitting


def _digest(engine: str, backend: str, model: str | None, prompts: list[Any], options: str) -> str:
    h = hashlib.sha256(f"{engine}\x00{backend}\x00{model}\x00{options}\x00".encode())
    for prompt in prompts:
        h.update(_dumps(prompt).encode())
        h.update(b"\x00")
    return h.hexdigest()


def _batch_estimate(plan: Any, price: dict[str, Any] | None) -> Any:
    from .batch import Estimate, _estimate

    est = _estimate(plan.prompts, plan.kwargs, plan.schema_json)
    per_out = est.tokens_out // est.requests if est.requests else 0
    notes = [n for n in est.notes if not n.startswith("No price is known")]
    if price is None:
        cost = None
        notes.append(f"No price is known for {est.model or est.backend!r}: the cost cannot be estimated.")
    else:
        cost = round(sum(_cost(price, t, per_out) or 0.0 for t in est.per_item_tokens_in), 6)
        notes.append(f"Priced at the batch rate: {price['basis']}.")
    return Estimate(
        requests=est.requests,
        tokens_in=est.tokens_in,
        tokens_out=est.tokens_out,
        output_assumed=est.output_assumed,
        cost=cost,
        backend=est.backend,
        model=est.model,
        notes=notes,
        per_item_tokens_in=[],
    )


def _state_path(state: str | os.PathLike[str] | None, digest: str) -> Path:
    if state is None:
        return Path(f"batch-{digest[:10]}.json")
    path = Path(state)
    return path if path.suffix == ".json" else path.with_name(path.name + ".json")


def _existing(path: Path, digest: str) -> BatchJob | None:
    if not path.exists():
        return None
    job = BatchJob.load(path)
    if job.state.get("digest") != digest:
        raise UsageError(
            f"{str(path)!r} holds another batch job ({job.rows:,} rows, {job.state.get('model')}, "
            f"submitted {job.state.get('created')}).",
            hint="Pass another state=..., or delete that file (and its .part files) first.",
        )
    return job


#: Stand-ins for a row's prompt and custom id in the request line built once (private-use characters).
_PROMPT_MARK = "\ue000ttt-prompt\ue001"
_ID_MARK = "\ue000ttt-row\ue001"


def _row_builder(
    service: Any, adapter: Any, call: Any, provider_id: str, secrets: tuple[str, ...], prompts: list[Any]
) -> Any:
    """A function ``row -> its request-file line`` (bytes, newline-terminated).

    Every line is ``service.line("row-N", adapter.exchange(call with that row's
    prompt))``: the body one ``ask`` would send, its secrets withheld. Building
    the exchange per row costs a catalogue and configuration lookup each
    (about 150 µs), so for plain-string prompts the line is built once with a
    stand-in prompt and custom id, and each row's JSON-encoded prompt is put
    in their place. Rows spread over the job are checked against the exchange
    built for them; any difference (a protocol that rewrites the prompt) and
    every line is built by the exchange instead.
    """
    from .withhold import scrub, withhold_call

    def exact(i: int) -> bytes:
        row, _ = withhold_call(call.with_changes(prompt=prompts[i]), secrets)
        line = service.line(f"row-{i}", adapter.exchange(row, provider_id, stream=False))
        return (_dumps(line) + "\n").encode("utf-8")

    if not prompts or not all(isinstance(p, str) for p in prompts):
        return exact
    marked = _dumps(
        service.line(
            _ID_MARK, adapter.exchange(call.with_changes(prompt=_PROMPT_MARK), provider_id, stream=False)
        )
    )
    if marked.count(_PROMPT_MARK) != 1 or marked.count(_ID_MARK) != 1:
        return exact
    first_mark = _PROMPT_MARK if marked.index(_PROMPT_MARK) < marked.index(_ID_MARK) else _ID_MARK
    head, rest = marked.split(first_mark)
    second_mark = _ID_MARK if first_mark == _PROMPT_MARK else _PROMPT_MARK
    middle, tail = rest.split(second_mark)
    prompt_first = first_mark == _PROMPT_MARK

    def fast(i: int) -> bytes:
        text = prompts[i]
        if secrets:
            text = scrub(text, secrets)[0]
        encoded = _line_safe(json.dumps(text, ensure_ascii=False)[1:-1])
        custom_id = f"row-{i}"
        a, b = (encoded, custom_id) if prompt_first else (custom_id, encoded)
        return (head + a + middle + b + tail + "\n").encode("utf-8")

    n = len(prompts)
    sample = {0, n - 1, *range(0, n, max(1, n // 64))}
    if any(fast(i) != exact(i) for i in sorted(sample)):
        return exact
    return fast


def submit_batch(
    inputs: Any,
    template: str | None = None,
    *,
    model: str | None = None,
    backend: str | None = None,
    schema: Any = None,
    state: str | os.PathLike[str] | None = None,
    engine: str = "auto",
    budget: float | None = None,
    dry_run: bool = False,
    progress: Any = None,
    _keep: bool = True,
    **ask_kwargs: Any,
) -> Any:
    """Submit one request per item to the provider's batch engine; a ``BatchJob``.

    Inputs, ``template`` and ``schema`` are read as ``ask_many`` reads them;
    every other keyword is an ``ask()`` argument applied to every row. The
    cost is estimated first, at the batch price (``budget`` in dollars refuses
    a job estimated above it; ``dry_run=True`` returns the estimate and sends
    nothing). The job's identity and progress go to the state file ``state``
    (default ``batch-<digest>.json`` in the working folder: submitting the same
    rows again picks that job up instead of paying twice).

    ``engine="auto"``: a backend without a batch service has the rows asked
    by ``ask_many`` instead (a note says so); ``engine="batch"`` refuses such
    a backend with a ``UsageError``.
    """
    from . import api, batch, router, structured
    from .scope import effective
    from .withhold import configured_secrets

    if engine not in ENGINES:
        raise UsageError(f"engine must be one of {', '.join(map(repr, ENGINES))}, not {engine!r}.")
    if budget is not None and (
        isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget >= 0
    ):
        raise UsageError(f"budget must be a number of dollars (e.g. 5.0), not {budget!r}.")
    kwargs = dict(ask_kwargs)
    if model is not None:
        kwargs["model"] = model
    if backend is not None:
        kwargs["backend"] = backend
    plan = batch._plan(inputs, template, schema, kwargs, resume=False, where="submit_batch")
    if not plan.prompts:
        raise UsageError("submit_batch() got no inputs: nothing to submit.")
    request, decided = api._request(
        plan.prompts[0], {**plan.kwargs, **({"schema": schema} if schema is not None else {})}, "submit_batch"
    )
    settings = decided.settings or effective()
    if decided.backend is None:
        raise UsageError(decided.error or "No backend is available.")
    instance, unusable = router._usable_backend(decided.backend, settings)
    if unusable is not None:
        raise unusable
    found = service_for(instance, decided.model)
    options = batch._options_key(plan.kwargs, plan.schema_json)
    if found is None:
        if engine == "batch":
            raise UsageError(
                f"Backend {decided.backend!r} has no batch service: engine='batch' needs OpenAI, Anthropic "
                "or Gemini (backend='openai', 'anthropic', 'google', or 'cloud' with one of their models).",
                hint="Leave engine unset to have its rows asked with ask_many instead.",
            )
        return _fallback(
            plan, inputs, template, schema, kwargs, decided, state, options, budget, dry_run, progress, _keep
        )

    service, adapter, adapter_model = found
    name, provider_id = runner.run(adapter.model_ids(adapter_model))
    price = batch_price(name, adapter)
    est = _batch_estimate(plan, price)
    est.backend, est.model = decided.backend, name
    if dry_run:
        return est
    if budget is not None:
        if est.cost is None:
            raise UsageError(
                f"budget= needs a price, and none is known for {name!r}.",
                hint="Drop budget=, or pick a catalogue model.",
            )
        if est.cost > budget + 1e-12:
            raise UsageError(
                f"The job is estimated at ${est.cost:.4f} at the batch price, over the budget of "
                f"${float(budget):.4f}: nothing was sent.",
                hint="Raise budget=, set max_tokens=, or submit fewer rows.",
            )
    digest = _digest(service.engine, decided.backend, name, plan.prompts, options)
    path = _state_path(state, digest)
    job = _existing(path, digest)
    if job is not None:
        job._remember(plan)
        _note(f"submit_batch: {str(path)!r} already holds this job: picking it up ({job._status().line()}).")
        if any(p.get("status") == "unsent" for p in job.parts):
            job.submit()
        return job

    call = router.prepare(request, instance, decided.backend, decided.model, settings, stream=False)
    if call.schema is not None and "schema" not in call.features:
        call = structured._with_instructions(call, call.schema)
    call = call.with_changes(model=adapter_model)
    secrets = configured_secrets(settings)
    endpoint = service.endpoint(adapter.exchange(call, provider_id, stream=False))

    job = BatchJob(
        path,
        {
            "kind": KIND,
            "version": VERSION,
            "name": path.stem,
            "engine": service.engine,
            "engine_label": service.label,
            "backend": decided.backend,
            "provider": getattr(adapter, "provider", None) if adapter is not instance else None,
            "request_model": decided.model,
            "model": name,
            "provider_model": provider_id,
            "endpoint": endpoint,
            "rows": len(plan.prompts),
            "created": _now(),
            "digest": digest,
            "schema": plan.schema_json,
            "price": price,
            "estimate": {**est.to_dict(), "notes": est.notes},
            "index": _index_state(plan.data.index),
            "ask_kwargs": _jsonable(plan.kwargs),
            "parts": [],
        },
    )
    job._service, job._adapter = service, adapter
    job._remember(plan)

    build = _row_builder(service, adapter, call, provider_id, secrets, plan.prompts)
    job._write_parts((i, build(i)) for i in range(len(plan.prompts)))
    job.submit()
    cost = "unknown cost" if est.cost is None else f"estimated ${est.cost:.4f} at the batch price"
    batches = f"{len(job.parts)} batch" + ("es" if len(job.parts) != 1 else "")
    _note(
        f"submit_batch: {job.rows:,} rows sent to the {service.label} (in {batches}, {cost}); "
        f"the job is kept in {str(path)!r}: BatchJob.load({str(path)!r}) picks it up after a restart."
    )
    return job


def _fallback(
    plan: Any,
    inputs: Any,
    template: str | None,
    schema: Any,
    kwargs: dict[str, Any],
    decided: Any,
    state: Any,
    options: str,
    budget: float | None,
    dry_run: bool,
    progress: Any,
    keep: bool = True,
) -> Any:
    """A backend without a batch service: the rows are asked with ``ask_many``, kept like a job.

    ``keep=False`` (``ask_many(engine="auto")``): just the ``Answers``, no state file.
    """
    from . import batch

    if dry_run:
        return batch.estimate(inputs, template, schema=schema, _where="submit_batch", **kwargs)
    if not keep:
        _note(f"ask_many: backend {decided.backend!r} has no batch service: asking directly.")
        return batch.ask_many(inputs, template, schema=schema, budget=budget, progress=progress, **kwargs)
    digest = _digest("ask_many", decided.backend, decided.model, plan.prompts, options)
    path = _state_path(state, digest)
    job = _existing(path, digest)
    if job is not None:
        _note(f"submit_batch: {str(path)!r} already holds these answers: picking them up.")
        job._remember(plan)
        return job
    _note(
        f"submit_batch: backend {decided.backend!r} has no batch service: asking the "
        f"{len(plan.prompts):,} rows with ask_many instead (engine='batch' would refuse)."
    )
    answers = batch.ask_many(
        inputs, template, schema=schema, budget=budget, progress=progress, resume=False, **kwargs
    )
    job = BatchJob(
        path,
        {
            "kind": KIND,
            "version": VERSION,
            "name": path.stem,
            "engine": "ask_many",
            "engine_label": "ask_many (no batch service)",
            "backend": decided.backend,
            "request_model": decided.model,
            "model": decided.model,
            "rows": len(plan.prompts),
            "created": _now(),
            "digest": digest,
            "schema": plan.schema_json,
            "price": None,
            "estimate": {},
            "index": _index_state(plan.data.index),
            "ask_kwargs": _jsonable(plan.kwargs),
            "parts": [],
        },
    )
    job._remember(plan)
    job._add_local_part(list(range(len(plan.prompts))), plan.prompts, list(answers))
    job._answers = answers
    return job


def run_batch(
    inputs: Any,
    template: str | None = None,
    *,
    engine: str = "batch",
    progress: Any = None,
    on_error: str = "keep",
    concurrency: Any = None,
    resume: Any = None,
    state: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> Any:
    """``ask_many(..., engine="batch")``: submit, wait, and the ``Answers``.

    ``engine="batch"`` refuses a backend without a batch service;
    ``engine="auto"`` asks such a backend's rows directly (a note says so), with
    no state file. ``concurrency`` and ``resume`` do not apply to a batch engine.
    """
    from .batch import Answers, BatchFailed, Estimate

    if engine not in ENGINES:
        raise UsageError(f"engine must be 'direct', 'batch' or 'auto', not {engine!r}.")
    job = submit_batch(
        inputs, template, engine=engine, progress=progress, state=state, _keep=engine == "batch", **kwargs
    )
    if isinstance(job, (Estimate, Answers)):
        answers = job
    else:
        job.wait(progress=progress)
        answers = job._answers if job._answers is not None else job.results()
    if isinstance(answers, Estimate):
        return answers
    if on_error == "raise" and answers.failed:
        first = answers.failed[0]
        raise BatchFailed(first, answers[first], answers)
    return answers


# --------------------------------------------------------------------------- the folder's jobs


def find(name: str, folder: str | os.PathLike[str] = ".") -> Path:
    """The state file ``name`` names: a path, a file name without ``.json``, or what follows ``batch-``."""
    base = Path(folder)
    for candidate in (Path(name), base / name, base / f"{name}.json", base / f"batch-{name}.json"):
        if candidate.is_file():
            return candidate
    known = ", ".join(p.name for p, _ in list_jobs(folder)[:8]) or "none here"
    raise UsageError(f"No batch job {name!r} in {str(base.resolve())!r} (jobs: {known}).")


def list_jobs(folder: str | os.PathLike[str] = ".") -> list[tuple[Path, BatchJob]]:
    """The batch jobs whose state files are in ``folder``, newest first (no provider is asked)."""
    found: list[tuple[Path, BatchJob]] = []
    for path in sorted(Path(folder).glob("*.json")):
        with contextlib.suppress(OSError, UsageError, ValueError):
            if path.stat().st_size > 10 * 1024 * 1024:
                continue
            found.append((path, BatchJob.load(path)))
    found.sort(key=lambda item: str(item[1].state.get("created") or ""), reverse=True)
    return found
