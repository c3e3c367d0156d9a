"""The ask box: a prompt, Ask and Stop buttons, and the answer streaming in as Markdown.

For teaching demos and Voila dashboards. It streams with ``astream`` on the
kernel's own loop, so its widget updates happen on the main thread and the
kernel stays free to run cells and to hear the Stop button.
"""

from __future__ import annotations

import asyncio
import html
from typing import Any

from .panel import SelectorsPanel
from .render import footer_html
from .throttle import Throttle
from .widgetkit import _ipywidgets, _running_loop, _start

# --------------------------------------------------------------------------- the ask box


def _markdown_bundle(text: str) -> dict[str, Any]:
    data = {"text/markdown": text, "text/plain": text}
    return {"output_type": "display_data", "data": data, "metadata": {}}


class _Turn:
    """One question and its answer in the ask box.

    The answer is an ``Output`` widget holding one text/markdown output, replaced
    on each redraw: the front end (JupyterLab, Notebook 7, Voila) renders and
    sanitizes the Markdown, so model output can never inject script.
    """

    def __init__(self, w: Any, prompt: str) -> None:
        self.question = w.HTML(f"<b>You:</b> {html.escape(prompt)}")
        self.question.add_class("ttt-question")
        self.answer = w.Output()
        self.answer.add_class("ttt-answer")
        self.footer = w.HTML()
        self.footer.add_class("ttt-answer-footer")
        self.widget = w.VBox([self.question, self.answer, self.footer])
        self.widget.add_class("ttt-turn")

    def show(self, text: str) -> None:
        self.answer.outputs = (_markdown_bundle(text),)


class _Painter:
    """Redraws a turn's growing answer as often as ``Throttle`` allows; a redraw not yet due is scheduled."""

    def __init__(self, turn: _Turn, loop: asyncio.AbstractEventLoop) -> None:
        self.turn = turn
        self.loop = loop
        self.parts: list[str] = []
        self.size = 0
        self.throttle = Throttle()  # the %%ask display's rule: the first text at once, then paced
        self.pending: asyncio.TimerHandle | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def add(self, chunk: str) -> None:
        self.parts.append(chunk)
        self.size += len(chunk)
        delay = self.throttle.wait(self.size)
        if delay == 0:
            self.cancel()
            self._redraw()
        elif self.pending is None:
            self.pending = self.loop.call_later(delay, self._redraw)

    def _redraw(self) -> None:
        self.pending = None
        self.turn.show(self.text)
        self.throttle.mark()

    def cancel(self) -> None:
        """Drop a scheduled redraw (the final text is shown by the box)."""
        if self.pending is not None:
            self.pending.cancel()
            self.pending = None


class AskBox:
    """Prompt, Ask/Stop/New buttons, and the conversation as rendered Markdown.

    ``chat`` is the ``ttt_magic.chat`` conversation; completed answers enter its
    history. Asking never blocks the kernel: the answer streams in a task on the
    kernel's loop, which the Stop button cancels (what arrived is kept, marked
    stopped).
    """

    STOPPED = "*(stopped: partial answer)*"

    def __init__(
        self,
        system: str | None = None,
        model: str | None = None,
        backend: str | None = None,
        *,
        settings: bool = False,
        **defaults: Any,
    ) -> None:
        w = _ipywidgets()
        from ..api import chat

        self._w = w
        self._loop = _running_loop()
        self.chat = chat(system=system, model=model, backend=backend, **defaults)
        self.task: asyncio.Task[Any] | None = None
        self.last_response: Any = None
        self._turn: _Turn | None = None

        self.prompt = w.Textarea(
            placeholder="Ask a question, then press Ask", rows=3, layout=w.Layout(width="100%")
        )
        self.ask_button = w.Button(description="Ask", button_style="primary", icon="paper-plane")
        self.stop_button = w.Button(description="Stop", button_style="warning", icon="stop", disabled=True)
        self.new_button = w.Button(
            description="New conversation", icon="eraser", layout=w.Layout(width="auto")
        )
        self.status = w.HTML()
        self.transcript = w.VBox([])
        for control, css in [
            (self.prompt, "ttt-prompt"),
            (self.ask_button, "ttt-ask"),
            (self.stop_button, "ttt-stop"),
            (self.new_button, "ttt-new"),
            (self.status, "ttt-askbox-status"),
            (self.transcript, "ttt-transcript"),
        ]:
            control.add_class(css)
        parts = [
            self.transcript,
            self.prompt,
            w.HBox([self.ask_button, self.stop_button, self.new_button]),
            self.status,
        ]
        self.settings: SelectorsPanel | None = None
        if settings:  # the selectors panel, folded, above the conversation (for dashboards)
            self.settings = SelectorsPanel()
            folded = w.Accordion(children=[self.settings.widget])
            folded.set_title(0, "Settings")
            folded.selected_index = None
            parts.insert(0, folded)
        self.widget = w.VBox(parts)
        self.widget.add_class("ttt-askbox")
        self.widget.ttt_askbox = self

        self.ask_button.on_click(lambda _b: self.ask())
        self.stop_button.on_click(lambda _b: self.stop())
        self.new_button.on_click(lambda _b: self.reset())

    @property
    def busy(self) -> bool:
        return self.task is not None and not self.task.done()

    def ask(self, prompt: str | None = None) -> asyncio.Task[Any] | None:
        """Ask ``prompt`` (default: the text box's contents); returns the streaming task."""
        text = (self.prompt.value if prompt is None else prompt).strip()
        if not text:
            self.status.value = "<small>Type a question first.</small>"
            return None
        if self.busy:
            self.status.value = "<small>Still answering: press Stop first.</small>"
            return None
        if prompt is None:
            self.prompt.value = ""
        turn = _Turn(self._w, text)
        self._turn = turn
        self.transcript.children = (*self.transcript.children, turn.widget)
        self.ask_button.disabled = True
        self.stop_button.disabled = False
        self.status.value = "<small>Answering…</small>"
        task = _start(self._answer(text, turn), self._loop)
        self.task = task
        return task

    def stop(self) -> None:
        """Cancel the answer being streamed; the text so far stays, marked stopped."""
        if self.busy:
            assert self.task is not None
            self.task.cancel()

    def reset(self) -> None:
        """Forget the conversation and clear the transcript."""
        self.stop()
        self.chat.reset()
        self.transcript.children = ()
        self.status.value = "<small>New conversation.</small>"

    async def _answer(self, prompt: str, turn: _Turn) -> None:
        from ..errors import TTTError

        painter = _Painter(turn, asyncio.get_running_loop())
        try:
            response, stopped = await self._receive(prompt, painter)
        except TTTError as exc:  # bad arguments (a UsageError): shown in the turn, not raised
            turn.show(f"**Error:** {exc}")
            self.status.value = ""
            return
        finally:
            painter.cancel()
            self._finish()
        self._conclude(turn, painter.text, response, stopped)

    async def _receive(self, prompt: str, painter: _Painter) -> tuple[Any, bool]:
        """The answer (streamed through ``painter`` when streaming is on) and whether Stop cut it short.

        A stopped stream builds its own interrupted answer (what arrived, marked);
        a stopped non-streamed request has no answer.
        """
        from ..config import get_config

        if not get_config().stream:
            try:
                response = await self.chat.aask(prompt)
            except asyncio.CancelledError:
                return None, True
            painter.parts.append(response.text)
            return response, False
        stream = self.chat.astream(prompt)
        try:
            async for chunk in stream:
                painter.add(chunk)
        except asyncio.CancelledError:
            await stream.aclose()  # a no-op when the stream already closed itself
            return stream.response, True
        return stream.response, False

    def _conclude(self, turn: _Turn, text: str, response: Any, stopped: bool) -> None:
        """The turn's final text (marked when stopped or failed), footer and status."""
        self.last_response = response
        if response is not None:
            import ttt_magic

            ttt_magic.last_response = response
        if stopped:
            tail, status = self.STOPPED, "<small>Stopped.</small>"
        elif response is not None and response.failed:
            tail, status = f"**Error:** {response.error}", ""
        else:
            tail, status = "", ""
        turn.show("\n\n".join(piece for piece in (text, tail) if piece))
        self.status.value = status
        if response is not None:
            turn.footer.value = f"<small>{footer_html(response)}</small>"

    def _finish(self) -> None:
        self.ask_button.disabled = False
        self.stop_button.disabled = True


def ask_box(
    system: str | None = None,
    model: str | None = None,
    backend: str | None = None,
    *,
    settings: bool = False,
    **defaults: Any,
) -> Any:
    """A chat box (ipywidgets ``VBox``; its controller is ``.ttt_askbox``) for demos and Voila.

    ``system``/``model``/``backend`` fix them for this conversation (else the
    configuration and the panel decide); ``settings=True`` adds the selectors
    panel, folded, above it.
    """
    return AskBox(system=system, model=model, backend=backend, settings=settings, **defaults).widget
