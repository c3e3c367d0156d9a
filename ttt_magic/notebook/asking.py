"""One ``%%ask``, from its parsed options to the output it leaves: a step per method.

``AskRun.run`` reads as the list of steps: prepare the question (interpolation,
with configured keys withheld), get the answer (streamed into the view, or
whole), then conclude (store it, insert its code, show its final form, bring
``--explain`` up to date). Interrupted answers are never built here: a stream
stopped by Ctrl-C builds its own (``AnswerStream.close()`` then ``.response``),
and ``ask`` raises ``api.Interrupted`` carrying one (``.response``).
The magics own what outlives one ask (conversations, ``last_response``, the
choice of view); this module only carries one through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .render import IPythonPublisher, RouteView, fenced_code

__all__ = ["NO_CODE_NOTE", "AskRun", "Question", "prepare"]

#: Seconds of model silence after which the view is refreshed with what it holds.
HEARTBEAT = 0.25
NO_CODE_NOTE = "--insert: the answer has no code block, nothing was inserted"


@dataclass
class Question:
    """What one ``%%ask`` sends: the filled-in prompt, the call's options, and notes for the footer."""

    prompt: str
    call: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def call_options(opts: Any) -> dict[str, Any]:
    """The ``ask()`` keywords a ``%%ask`` line gives (those it leaves out are not there)."""
    call = {
        "model": opts.model,
        "backend": opts.backend,
        "system": opts.system,
        "temperature": opts.temperature,
        "max_tokens": opts.max_tokens,
        "cache": getattr(opts, "cache", None),  # --cache / --no-cache; None: the configured default
        "effort": getattr(opts, "effort", None),
    }
    return {k: v for k, v in call.items() if v is not None}


def prepare(opts: Any, prompt: str, namespace: Any, settings: Any) -> Question:
    """The prompt and system prompt with ``{variables}`` filled (keys withheld); the call's options.

    ``--schema NAME`` is looked up in ``namespace`` (a name or dotted attribute, never evaluated).
    """
    call = call_options(opts)
    if getattr(opts, "schema", None):
        from .each import lookup

        call["schema"] = lookup(opts.schema, namespace, "--schema")
    from .context import add_context  # --fix, --context, --image: what the notebook adds

    if opts.raw:
        return add_context(Question(prompt, call), opts, namespace, settings, prompt)
    from .interpolate import expand
    from .withhold import WITHHELD_NOTE, configured_secrets

    secrets, limit = configured_secrets(settings), settings.interpolation_limit
    filled = expand(prompt, namespace, limit, secrets=secrets, images=True)  # {fig}: sent as an image
    withheld = filled.withheld
    if "system" in call:
        system = expand(call["system"], namespace, limit, secrets=secrets)
        call["system"], withheld = system.text, withheld + system.withheld
    question = Question(filled.text, call, [WITHHELD_NOTE] if withheld else [])
    return add_context(question, opts, namespace, settings, prompt, filled.images)


class AskRun:
    """Carries one ``%%ask`` through; ``host`` is the ``TTTMagics`` instance it runs for."""

    def __init__(self, host: Any, opts: Any, prompt: str) -> None:
        from ..config import get_config

        self.host = host
        self.opts = opts
        self.settings = get_config()
        namespace = host.shell.user_ns if host.shell is not None else {}
        self.question = prepare(opts, prompt, namespace, self.settings)
        self.view = host.make_view(opts.format, bool(self.settings.footer))
        self.thinking = not getattr(opts, "no_thinking", False)  # --no-thinking: on .reasoning only
        if not self.thinking and hasattr(self.view, "show_thinking"):
            self.view.show_thinking = False
        self.explain = RouteView(IPythonPublisher() if host.rich else None) if opts.explain else None
        self.route: Any = None  # the route the answer takes, when a stream tells it before the answer

    def run(self) -> None:
        """Ask (streamed or whole), then conclude.

        A ``UsageError`` (bad model, temperature...) is raised before anything
        is sent; the magic shows it as a one-line refusal.
        """
        response = self._streamed() if self.settings.stream and not self.opts.no_stream else self._whole()
        self._conclude(response)

    def _streamed(self) -> Any:
        """Feed the chunks to the view; on Ctrl-C show and keep what the stream kept, and re-raise."""
        answer = self._source("stream")(self.question.prompt, parts=self.thinking, **self._call())
        answer.heartbeat = HEARTBEAT  # flush coalesced text while the model is silent
        self.route = answer.route
        try:
            self._explain(self.route)  # the route this answer takes, above its text
            for chunk in answer:
                self.view.feed(chunk)
        except KeyboardInterrupt:
            answer.close()  # the stream builds the interrupted answer: what arrived (maybe nothing), marked
            self._interrupted(answer.response, answer.text)
            raise
        return answer.response

    def _whole(self) -> Any:
        """Wait for the whole answer; its route (with attempts) is shown above it.

        Ctrl-C while waiting: ``ask`` raises ``api.Interrupted`` carrying the
        answer marked interrupted, which is kept and shown like a stream's. A
        bare ``KeyboardInterrupt`` (before ``ask`` ran) has no answer: the mark alone.
        """
        from ..api import Interrupted

        try:
            response = self._source("ask")(self.question.prompt, **self._call())
        except Interrupted as stopped:
            self._interrupted(stopped.response, stopped.response.text)
            raise
        except KeyboardInterrupt:
            self._interrupted(None, "")  # no answer exists yet: nothing stored
            raise
        self._explain(response.route)
        return response

    def _source(self, method: str) -> Any:
        """``ask``/``stream`` of the conversation being continued, or of the API."""
        from .. import api

        conversation = self.host.conversation(self.opts, self.question.call)
        return getattr(conversation if conversation is not None else api, method)

    def _call(self) -> dict[str, Any]:
        """What is sent: the question's options; with ``-f json``, a system prompt asking for JSON only.

        The instruction joins the system prompt the answer would get anyway (this
        ask's ``-s``, the conversation's, or the configured one) and is not kept
        by the conversation, so a later ask in it is not told to answer in JSON.
        """
        call = self.question.call
        if self.opts.format != "json":
            return call
        from .each import default_system, json_system

        chat = self.host.chats.get(self.opts.chat) if self.opts.chat is not None else None
        system = call.get("system") or getattr(chat, "system", None)
        system = system or default_system(self.settings, call.get("backend"))
        return {**call, "system": json_system(system)}

    def _interrupted(self, partial: Any, text: str) -> None:
        """Keep what the stream kept, then show it marked.

        Stored first: showing sends messages, and a second interrupt (Interrupt
        pressed twice, or a signal landing in zmq's send) may cut that short.
        """
        self.host.store(partial, self.opts.out)
        self.view.finish(partial, interrupted=True, text=text, notes=self.question.notes)
        self._explain_outcome(partial)

    def _conclude(self, response: Any) -> None:
        """Store the answer, insert its code, show its final form; raise if it failed under raise_on_error."""
        from ..errors import TTTError

        self.host.store(response, self.opts.out)
        notes = [*self.question.notes, *self._insert(response)]
        failing = response.failed and self.settings.raise_on_error
        if self.view.updates or not failing:  # a failure with nothing shown yet: the exception says it
            self.view.finish(response, text=response.text, notes=notes)
        self._explain_outcome(response)
        if failing:
            raise TTTError(response.error or "The request failed.")

    def _insert(self, response: Any) -> list[str]:
        """``--insert``: the answer's fenced code into a new cell below; a note when it has none."""
        shell = self.host.shell
        if not self.opts.insert or not response.succeeded or shell is None:
            return []
        found = fenced_code(response.text)
        if found is None:
            return [NO_CODE_NOTE]
        shell.set_next_input(found[0], replace=False)
        return []

    def _explain(self, route: Any) -> None:
        if self.explain is not None:
            self.explain.show(route)

    def _explain_outcome(self, response: Any) -> None:
        """``--explain`` again, after the answer: the same route, now with its attempts."""
        if response is not None:
            self._explain(self.route if self.route is not None else response.route)
