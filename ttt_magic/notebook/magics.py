"""The IPython magics: ``%%ask``/``%ask``, ``%ttt_config``, ``%ttt_models``, ``%ttt_status``, ``%ttt_askbox``.

Loading must cost almost nothing, so this module imports only IPython and
traitlets (already loaded by any IPython) and our small rendering helpers;
``ttt_magic.api``, the config, registries, YAML and widgets are imported
inside the magic functions, on first use. What one ``%%ask`` does, step by
step, is ``asking.AskRun``; this module parses the line and owns what outlives
one ask (conversations, ``last_response``, the choice of view).

``%ask`` and ``%ttt_config`` opt out of IPython's expansion of ``{expr}`` and
``$name`` in magic lines: that expansion evaluates code, and would fill a
prompt before our interpolation could withhold keys (or honour ``--raw``).
While the extension is loaded, ttt_magic's usage errors raised by plain code
in a cell are shown in one line (``usage_errors.py``).

Settings can also come from IPython's own configuration system:
``%config TTTMagics.default_backend = "mock"`` or, in ``ipython_config.py``,
``c.TTTMagics.stream = False``. Each such trait is mirrored into
``ttt_magic.configure()`` (the highest configuration layer); ``None`` leaves
the setting to files, environment and defaults.
"""

from __future__ import annotations

import keyword
import re
from typing import Any

from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import Bool, Float, Int, TraitError, Unicode, observe

from .context import normalize_options
from .each import check_name
from .options import (
    BadInput,
    closest,
    parse_assignments,
    split_cell_line,
    split_line,
    split_words,
    unknown_option,
)
from .render import FORMATS, StreamView, TerminalView, error_bundle
from .reports import config_table, models_report, shown_value, status_report

__all__ = ["DEFAULT_CHAT", "TTTMagics", "load_ipython_extension", "split_line", "unload_ipython_extension"]

DEFAULT_CHAT = "default"
WIDGETS_HINT = "pip install 'ttt-magic[widgets]' for the selector panel"
CONFIG_FLAGS = ("--show", "--reset")
_MIRRORED = (
    "default_backend",
    "default_model",
    "stream",
    "footer",
    "timeout",
    "raise_on_error",
    "interpolation_limit",
    "temperature",
    "max_tokens",
    "system",
)


# --------------------------------------------------------------------------- the magics


@magics_class
class TTTMagics(Magics):
    """ttt-magic's magics; its traits mirror settings into ``ttt_magic.configure()``."""

    default_backend = Unicode(None, allow_none=True, help="Backend used when none is given.")
    default_model = Unicode(None, allow_none=True, help="Model or alias used when none is given.")
    stream = Bool(None, allow_none=True, help="Stream answers as they arrive (False: one final output).")
    footer = Bool(None, allow_none=True, help="Show model, backend, tokens, time and cost under answers.")
    timeout = Float(None, allow_none=True, help="Seconds allowed for each attempt.")
    raise_on_error = Bool(None, allow_none=True, help="Make failed answers raise (for CI).")
    interpolation_limit = Int(None, allow_none=True, help="Characters of one {variable} before truncation.")
    temperature = Float(None, allow_none=True, help="Default sampling temperature (0-2).")
    max_tokens = Int(None, allow_none=True, help="Default limit on an answer's length in tokens.")
    system = Unicode(None, allow_none=True, help="Default system prompt.")
    for _trait in (
        default_backend,
        default_model,
        stream,
        footer,
        timeout,
        raise_on_error,
        interpolation_limit,
        temperature,
        max_tokens,
        system,
    ):
        _trait.tag(config=True)
    del _trait

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        self._ready = False
        super().__init__(shell=shell, **kwargs)
        self.chats: dict[str, Any] = {}
        self.view_factory: Any = None  # tests may substitute how answers are shown
        self._ready = True
        values = {name: getattr(self, name) for name in _MIRRORED if getattr(self, name) is not None}
        if values:
            from ..config import configure

            configure(**values)

    @observe(*_MIRRORED)
    def _mirror(self, change: Any) -> None:
        if not getattr(self, "_ready", False):
            return
        from ..config import configure
        from ..errors import ConfigError

        try:
            configure(**{change["name"]: change["new"]})
        except ConfigError as exc:
            raise TraitError(str(exc)) from None

    # ------------------------------------------------------------------ helpers

    @property
    def rich(self) -> bool:
        """True in a Jupyter kernel (displays); False in terminal IPython (stdout)."""
        shell = self.shell
        if shell is None:
            return False
        return any(cls.__name__ == "ZMQInteractiveShell" for cls in type(shell).__mro__)

    def _show(self, data: dict[str, Any], plain: str | None = None) -> None:
        if self.rich:
            from IPython.display import display

            display(data, raw=True)
        else:
            print(plain if plain is not None else data.get("text/plain", ""))

    def _show_error(self, message: str, hint: str | None = None) -> None:
        self._show(error_bundle(message, hint))

    def make_view(self, fmt: str, footer: bool) -> Any:
        """The view an answer streams into: the notebook's display, or the terminal's stdout."""
        if self.view_factory is not None:
            return self.view_factory(fmt, footer)
        if self.rich:
            return StreamView(fmt, footer=footer)
        return TerminalView(fmt, footer=footer)

    def store(self, response: Any, out: str | None) -> None:
        """``ttt_magic.last_response`` (None: the latest ask gave no answer) and ``-o VAR``."""
        import ttt_magic

        ttt_magic.last_response = response
        if out and response is not None:
            self.shell.user_ns[out] = response

    # ------------------------------------------------------------------ %%ask

    @magic_arguments()
    @argument("-m", "--model", help="Model name or alias (see %%ttt_models).")
    @argument("-b", "--backend", help="Backend: cloud, local, mock, or any registered name.")
    @argument("-s", "--system", help='System prompt (quote it: -s "be brief").')
    @argument("-t", "--temperature", type=float, help="Sampling temperature, 0 to 2.")
    @argument("--max-tokens", type=int, help="Upper bound on the answer's length in tokens.")
    @argument(
        "--effort",
        choices=("low", "medium", "high"),
        help="How hard a reasoning model thinks (refused for a model that does not reason).",
    )
    @argument(
        "--no-thinking",
        action="store_true",
        help="Hide the model's thinking (still kept on the answer's .reasoning).",
    )
    @argument(
        "-f",
        "--format",
        choices=FORMATS,
        default="markdown",
        help="How to show the answer: markdown (default), text, code, json, html.",
    )
    @argument("-o", "--out", metavar="VAR", help="Also store the answer (an AIResponse) in VAR.")
    @argument(
        "-c",
        "--chat",
        nargs="?",
        const=DEFAULT_CHAT,
        default=None,
        metavar="NAME",
        help="Continue a conversation (named NAME, or the default one). On a %%ask line write --chat=NAME.",
    )
    @argument("--new", action="store_true", help="Start the conversation afresh (implies --chat).")
    @argument("--no-stream", action="store_true", help="Show the answer once, when complete.")
    @argument(
        "--cache",
        dest="cache",
        action="store_const",
        const=True,
        default=None,
        help="Answer from the response cache (and store the answer there), even when it is off.",
    )
    @argument(
        "--no-cache",
        dest="cache",
        action="store_const",
        const=False,
        help="Neither read nor write the response cache for this ask (a fresh sample).",
    )
    @argument(
        "--each",
        metavar="ITEMS",
        help="Ask once per item of the variable ITEMS (a list, Series or DataFrame; a name or dotted "
        "attribute): the cell is the template; a table of the answers, all of them in -o VAR (default _).",
    )
    @argument(
        "--schema",
        metavar="NAME",
        help="Structured answers: NAME is a variable holding a pydantic class, a JSON Schema or a "
        "shorthand dict; the parsed value is the answer's .data.",
    )
    @argument("--insert", action="store_true", help="Put the answer's code in a new cell below.")
    @argument("--explain", action="store_true", help="Show why this backend and model were chosen.")
    @argument("--raw", action="store_true", help="Send the prompt as written: no {variable} expansion.")
    @argument(
        "--fix",
        action="store_true",
        help="Explain the last error of this kernel and give a corrected cell (the body adds instructions).",
    )
    @argument(
        "--context",
        nargs="?",
        const="named",
        metavar="ALL",
        help="Describe the variables the prompt names (ALL: every DataFrame and Series too); "
        "on a %%ask line write --context=ALL.",
    )
    @argument(
        "--image", action="append", metavar="PATH", help="Send an image file with the question (repeatable)."
    )
    @argument("prompt", nargs="*", help="%%ask only: the question (the rest of the line).")
    @no_var_expand  # the line is the prompt: {braces} are ours (no eval, keys withheld), $ is a dollar
    @line_cell_magic
    def ask(self, line: str, cell: str | None = None) -> None:
        """Ask a language model; the answer streams into the output as Markdown.

        ``%%ask [options]`` takes the prompt from the cell body; ``%ask [options] PROMPT``
        from the rest of the line. ``{name}``, ``{obj.attr}``, ``{d['key']}``,
        ``{In[3]}``, ``{Out[3]}`` and ``{_}`` are filled from your variables,
        formatted as in f-strings when asked (``{x:.2f}``, ``{x!r}``); any other
        brace stays as written, and a configured API key in a value is sent masked.
        An unknown option is refused, not sent: a prompt that starts with ``-``
        goes after ``--``. The answer is kept in ``ttt_magic.last_response`` (and
        VAR with ``-o VAR``). ``--each ITEMS`` asks the cell once per item of
        ITEMS (the cell is the template) and shows a table of the answers.
        """
        from ..errors import UsageError
        from .asking import AskRun
        from .each import EachRun

        try:
            opts, prompt = self._parse_ask(line, cell)
        except (IPythonUsageError, BadInput) as exc:
            return self.usage_failure(str(exc), None, None)
        try:
            (EachRun if opts.each is not None else AskRun)(self, opts, prompt).run()
        except UsageError as exc:  # raised before anything was sent (a bad model, a broken config file)
            return self.usage_failure(exc.message, exc.hint, opts.out)
        except KeyboardInterrupt:
            # The partial answer is already shown, marked; re-raise so "Run All" stops,
            # with a traceback that ends here rather than deep in the stream machinery.
            raise KeyboardInterrupt from None
        return None

    def _parse_ask(self, line: str, cell: str | None) -> tuple[Any, str]:
        """Options and prompt; ``BadInput`` (or IPython's UsageError) for anything it cannot read."""
        parser = self.ask.parser
        if cell is None:
            tokens, prompt = split_line(line, parser)
        else:
            tokens, prompt = split_cell_line(line), cell
        opts, extra = parser.parse_known_args(tokens)
        normalize_options(opts)  # --context's optional ALL
        if extra:
            raise unknown_option(next((w for w in extra if w.startswith("-")), extra[0]), parser)
        if cell is not None and opts.prompt:
            prompt = " ".join(opts.prompt) + "\n" + cell
        if opts.out is not None and (not opts.out.isidentifier() or keyword.iskeyword(opts.out)):
            raise BadInput(f"-o needs a variable name, not {opts.out!r}.")
        for option, name in (("--each", opts.each), ("--schema", opts.schema)):
            if name is not None:
                check_name(name, option)
        if opts.each is not None:
            clash = [
                flag
                for flag, given in (
                    ("--chat", opts.chat is not None or opts.new),
                    ("--insert", opts.insert),
                    ("--explain", opts.explain),
                    ("--fix", getattr(opts, "fix", False)),
                )
                if given
            ]
            if clash:
                raise BadInput(f"--each asks every item on its own: it does not go with {', '.join(clash)}.")
        if opts.new and opts.chat is None:
            opts.chat = DEFAULT_CHAT
        if not prompt.strip() and not opts.fix:  # %ask --fix needs no words
            raise BadInput("Nothing to ask: write the prompt after %ask, or in the cell below %%ask.")
        return opts, prompt

    def usage_failure(self, message: str, hint: str | None, out: str | None) -> None:
        """A refused ``%%ask``: one line (or, under raise_on_error, a UsageError); nothing was sent."""
        from ..config import get_config
        from ..errors import UsageError
        from ..models import AIResponse

        response = AIResponse("", error=message + (f" {hint}" if hint else ""), metadata={"kind": "usage"})
        self.store(response, out)
        if get_config().raise_on_error:
            raise UsageError(message, hint=hint)
        self._show_error(message, hint)

    def conversation(self, opts: Any, call: dict[str, Any]) -> Any:
        """The conversation to continue (created on first use, or afresh with --new), or None."""
        if opts.chat is None:
            return None
        from .. import api

        chat = self.chats.get(opts.chat)
        if chat is None or opts.new:
            chat = api.chat(system=call.get("system"), model=call.get("model"), backend=call.get("backend"))
            self.chats[opts.chat] = chat
        return chat

    # ------------------------------------------------------------------ %ttt_config

    @no_var_expand  # YAML values ({a: b}, "costs $5") arrive as typed, never evaluated
    @line_magic
    def ttt_config(self, line: str = "") -> None:
        """Show or change settings.

        ``%ttt_config key=value ...`` sets values (YAML scalars and lists:
        ``timeout=10``, ``stream=false``, ``fallback_order=[cloud, local]``,
        ``model_aliases={quick: gpt-4.1-nano}``,
        ``backends.mock.delay=0``; an empty value unsets). ``--show`` prints every
        setting with its source; ``--reset`` forgets what was set here or by
        ``configure()``. With no arguments: the selector panel (with ipywidgets) or
        the table.
        """
        from ..config import get_config, reset
        from ..errors import ConfigError

        words = split_words(line)
        flags = {w for w in words if w.startswith("--")}
        assignments = [w for w in words if not w.startswith("--")]
        unknown = sorted(flags - set(CONFIG_FLAGS))
        if unknown:
            match = closest(unknown[0], CONFIG_FLAGS)
            suggestion = f" (did you mean {match}?)" if match else ""
            return self._show_error(
                f"Unknown option {unknown[0]}{suggestion}.", "Use key=value, --show or --reset."
            )
        try:
            if "--reset" in flags:
                reset()
                print("Configuration reset: values set by %ttt_config / configure() are forgotten.")
            if assignments:
                changes = parse_assignments(assignments)
                from ..config import configure

                configure(**changes)
                settings = get_config()
                for key in changes:
                    print(f"{key} = {shown_value(settings, key)}  ({settings.source(key)})")
            if "--show" in flags:
                self._display_obj(config_table(get_config()))
            if not words:
                self._config_panel()
        except ConfigError as exc:
            self._show_error(exc.message, exc.hint)
        except BadInput as exc:
            self._show_error(str(exc))
        return None

    def _config_panel(self) -> None:
        from ..config import get_config

        if self.rich:
            try:
                from . import widgets

                panel = widgets.panel()
            except ImportError:
                pass
            else:
                self._display_obj(panel)
                return
            self._display_obj(config_table(get_config(), note=WIDGETS_HINT))
            return
        self._display_obj(config_table(get_config()))

    def _display_obj(self, obj: Any) -> None:
        if self.rich:
            from IPython.display import display

            display(obj)
        else:
            print(str(obj))

    # ------------------------------------------------------------------ %ttt_models / %ttt_status

    @line_magic
    def ttt_models(self, line: str = "") -> None:
        """List known models and aliases: ``%ttt_models [FILTER]`` (matches name, provider, alias)."""
        self._display_obj(models_report(line.strip()))

    @line_magic
    def ttt_status(self, line: str = "") -> None:
        """Backends (available or why not), plugins (loaded or failed) and this session's usage."""
        from ..api import usage

        self._display_obj(status_report(usage(), self.chats, usage(by="model")))

    @line_magic
    def ttt_askbox(self, line: str = "") -> None:
        """An input box with model and backend selectors (needs ipywidgets)."""
        try:
            from . import widgets

            box = widgets.ask_box()
        except ImportError:
            return self._show_error(
                "The ask box needs ipywidgets.", WIDGETS_HINT.replace("the selector panel", "the ask box")
            )
        self._display_obj(box)
        return None


# --------------------------------------------------------------------------- loading

_QUESTION_LINE = re.compile(r"^([ \t]*)%ask[ \t]+(\S.*\?)[ \t]*$")


def protect_questions(lines: list[str]) -> list[str]:
    """Input transformer: ``%ask what is a tuple?`` is a question, not IPython's ``tuple?`` help.

    IPython turns a line ending in ``?`` into object inspection before any magic
    runs; questions end in ``?``. Such ``%ask`` lines become an explicit
    ``run_line_magic`` call (``%ask?`` alone still shows the help).
    """
    out = []
    for line in lines:
        match = _QUESTION_LINE.match(line.rstrip("\n"))
        if match:
            indent, rest = match.groups()
            line = f"{indent}get_ipython().run_line_magic('ask', {rest!r})\n"
        out.append(line)
    return out


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics once per shell (``%load_ext``, or ``c.InteractiveShellApp.extensions``)."""
    registry = ipython.magics_manager.registry
    if "TTTMagics" in registry:
        return
    ipython.register_magics(TTTMagics(shell=ipython))
    from . import context

    context.install(ipython)  # remembers the last exception a cell raises, for %ask --fix
    from . import cachemagics

    cachemagics.register(ipython)  # %ttt_cache, %ttt_record, %ttt_replay
    from . import batchmagics

    batchmagics.register(ipython)  # %ttt_batch
    cleanup = getattr(ipython, "input_transformers_cleanup", None)
    if cleanup is not None and protect_questions not in cleanup:
        cleanup.append(protect_questions)
    if hasattr(ipython, "set_custom_exc"):
        from . import usage_errors

        usage_errors.install(ipython)  # ask(model="typo") in a cell: one line, not a traceback


def unload_ipython_extension(ipython: Any) -> None:
    """Remove every magic this extension added, and its configurable."""
    manager = ipython.magics_manager
    magics = manager.registry.pop("TTTMagics", None)
    if magics is None:
        return
    for kind, table in magics.magics.items():
        for name in table:
            if (
                manager.magics.get(kind, {}).get(name) is not None
                and getattr(manager.magics[kind][name], "__self__", None) is magics
            ):
                del manager.magics[kind][name]
    from . import cachemagics

    cachemagics.unregister(ipython)
    from . import batchmagics

    batchmagics.unregister(ipython)
    configurables = getattr(ipython, "configurables", None)
    if configurables is not None:
        configurables[:] = [c for c in configurables if c is not magics]
    cleanup = getattr(ipython, "input_transformers_cleanup", None)
    if cleanup is not None and protect_questions in cleanup:
        cleanup.remove(protect_questions)
    from . import context, usage_errors

    usage_errors.uninstall(ipython)
    context.uninstall(ipython)
