"""The selectors panel: backend, model, temperature, max tokens, streaming, the cache, system prompt.

It edits the runtime configuration and follows changes made elsewhere
(``%ttt_config key=value``, ``configure()``) through ``config.subscribe``, so
the configuration stays the single source of truth. Model lists are fetched on
the runner's loop without blocking the kernel; see ``widgetkit`` for the
threading rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from .widgetkit import (
    _close_tree,
    _ipywidgets,
    _on_main_thread,
    _on_runner,
    _running_loop,
    _start,
    get_default,
    set_default,
)

#: How long one listing of a backend's models may take before the panel gives up (seconds).
FETCH_TIMEOUT = 15.0
#: Model lists already fetched, by backend name; the refresh button bypasses it.
_model_cache: dict[str, list[str]] = {}

AUTO = "auto"
DEFAULT_MODEL = ""  # the model dropdown's value for "no default_model: the backend chooses"


# --------------------------------------------------------------------------- model lists


def catalogue_models(backend: str) -> list[str]:
    """Names of catalogue models that this backend serves (by provider)."""
    from ..registry import PROVIDER_BACKENDS, model_registry

    names = []
    for info in model_registry.list_models():
        provider = info.provider.lower()
        if backend == AUTO or provider == backend or PROVIDER_BACKENDS.get(provider) == backend:
            names.append(info.name)
    return names


async def fetch_models(backend: str) -> list[str]:
    """``backend.models()`` (runs on the runner's loop, where the backend's HTTP clients live)."""
    from ..registry import backend_registry

    instance = backend_registry.get(backend)
    models = await asyncio.wait_for(instance.models(), FETCH_TIMEOUT)
    return [str(m) for m in models or []]


def _register_listed_model(name: str, backend: str) -> None:
    """Make a model that only the backend listed (not the catalogue) known to the registry.

    The router resolves ``default_model`` through the registry; a name it does
    not know would be dropped, so the chosen model is added with the backend as
    its provider (which routes to that backend).
    """
    from ..models import ModelInfo
    from ..registry import model_registry

    if name and backend != AUTO and model_registry.get_model(name) is None:
        model_registry.add_model(
            ModelInfo(name=name, provider=backend, description=f"listed by the {backend} backend")
        )


def _backend_rows() -> list[tuple[str, bool, str | None]]:
    """(name, available, reason) of every registered backend."""
    from ..plugins import ensure_discovered
    from ..registry import backend_registry

    try:
        ensure_discovered()
    except Exception:  # a broken plugin must not break the panel; its backend is simply missing
        pass
    rows = []
    for name in backend_registry.names():
        ok, reason = backend_registry.availability(name)
        rows.append((name, ok, reason))
    return rows


# --------------------------------------------------------------------------- the panel


class SelectorsPanel:
    """The controls of ``panel()`` and their two-way binding to the configuration.

    ``widget`` is the ipywidgets container to display; the controls are
    attributes (``backend``, ``model``, ``refresh``, ``status``, ``temperature``,
    ``max_tokens``, ``stream``, ``cache``, ``system``) so tests and notebooks can drive them.
    """

    def __init__(self) -> None:
        w = _ipywidgets()
        from ..config import get_config, subscribe

        self._loop = _running_loop()
        self._syncing = False
        self._generation = 0
        self._models_for: str | None = None
        self._fetched: dict[str, list[str]] = {}
        self._cache_path: str | None = None  # a cache file configured: turned on again, it is used again
        self.pending: asyncio.Task[Any] | None = None
        settings = get_config()
        self._rows = _backend_rows()

        wide = w.Layout(width="420px")
        desc = {"description_width": "110px"}
        self.backend = w.Dropdown(description="Backend", layout=wide, style=desc)
        self.reason = w.HTML()
        self.model = w.Dropdown(description="Model", layout=wide, style=desc)
        self.refresh = w.Button(
            description="Refresh",
            icon="refresh",
            layout=w.Layout(width="100px"),
            tooltip="List the backend's models again",
        )
        self.status = w.HTML()
        self.use_temperature = w.Checkbox(
            description="Set temperature", indent=False, layout=w.Layout(width="140px")
        )
        self.temperature = w.FloatSlider(
            value=0.7,
            min=0.0,
            max=2.0,
            step=0.05,
            readout_format=".2f",
            continuous_update=False,
            disabled=True,
            layout=w.Layout(width="280px"),
        )
        self.max_tokens = w.BoundedIntText(
            value=0,
            min=0,
            max=10_000_000,
            description="Max tokens",
            layout=w.Layout(width="260px"),
            style=desc,
        )
        self.stream = w.Checkbox(description="Stream answers as they arrive", indent=False)
        self.cache = w.Checkbox(
            description="Cache answers (an identical question is answered from disk, at no cost)",
            indent=False,
            layout=w.Layout(width="560px"),
        )
        self.system = w.Textarea(
            placeholder="System prompt (empty: none)",
            description="System prompt",
            continuous_update=False,
            rows=3,
            layout=w.Layout(width="560px"),
            style=desc,
        )
        self.backends_table = w.HTML()
        details = w.Accordion(children=[self.backends_table])
        details.set_title(0, "All backends")
        details.selected_index = None

        for control, css in [
            (self.backend, "ttt-backend"),
            (self.reason, "ttt-backend-reason"),
            (self.model, "ttt-model"),
            (self.refresh, "ttt-refresh"),
            (self.status, "ttt-status"),
            (self.temperature, "ttt-temperature"),
            (self.use_temperature, "ttt-use-temperature"),
            (self.max_tokens, "ttt-max-tokens"),
            (self.stream, "ttt-stream"),
            (self.cache, "ttt-cache"),
            (self.system, "ttt-system"),
            (details, "ttt-backends"),
        ]:
            control.add_class(css)

        self.widget = w.VBox(
            [
                w.HTML("<b>ttt-magic settings</b> <small>(changes apply to the next question)</small>"),
                self.backend,
                self.reason,
                w.HBox([self.model, self.refresh]),
                self.status,
                w.HBox([self.use_temperature, self.temperature]),
                self.max_tokens,
                self.stream,
                self.cache,
                self.system,
                details,
            ]
        )
        self.widget.add_class("ttt-panel")
        self.widget.ttt_panel = self  # reach the controller from the displayed widget

        self._set_backend_options(settings.default_backend)
        with self._quiet():
            self._show_request_defaults()
        self._sync(settings)

        self.backend.observe(self._on_backend, names="value")
        self.model.observe(self._on_model, names="value")
        self.stream.observe(self._on_stream, names="value")
        self.cache.observe(self._on_cache, names="value")
        self.use_temperature.observe(self._on_temperature, names="value")
        self.temperature.observe(self._on_temperature, names="value")
        self.max_tokens.observe(self._on_max_tokens, names="value")
        self.system.observe(self._on_system, names="value")
        self.refresh.on_click(lambda _button: self.refresh_models(force=True))

        ref = weakref.ref(self)

        def on_config(_settings: Any) -> None:
            me = ref()
            if me is None:
                unsubscribe()
            else:
                me._config_changed()

        self._unsubscribe = unsubscribe = subscribe(on_config)

    # ------------------------------------------------------------------ helpers

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Change widgets without their observers writing back to the configuration."""
        previous, self._syncing = self._syncing, True
        try:
            yield
        finally:
            self._syncing = previous

    def _run_on_kernel(self, func: Callable[[], None]) -> None:
        """Call ``func`` on the main thread: now if we are on it, else through the kernel's loop."""
        if _on_main_thread() or self._loop is None or self._loop.is_closed():
            func()
        else:
            self._loop.call_soon_threadsafe(func)

    def close(self) -> None:
        """Stop following the configuration and close the widgets."""
        self._unsubscribe()
        _close_tree(self.widget)

    # ------------------------------------------------------------------ backend list

    def _set_backend_options(self, wanted: str) -> None:
        options = [("auto: choose per question", AUTO)]
        for name, ok, _reason in self._rows:
            options.append((f"{name} ✓ available" if ok else f"{name} ✗ unavailable", name))
        if wanted not in [v for _, v in options]:
            options.append((f"{wanted} ✗ not registered", wanted))
        with self._quiet():
            self.backend.options = options
            self.backend.value = wanted
        self._show_reason(wanted)
        self.backends_table.value = self._table_html()

    def _table_html(self) -> str:
        lines = ["<table class='ttt-backends-table'><tr><th>backend</th><th>status</th><th>reason</th></tr>"]
        for name, ok, reason in self._rows:
            state = "available" if ok else "unavailable"
            lines.append(
                f"<tr><td>{html.escape(name)}</td><td>{state}</td><td>{html.escape(reason or '')}</td></tr>"
            )
        lines.append("</table>")
        return "".join(lines)

    def _show_reason(self, name: str) -> None:
        if name == AUTO:
            text = "The router picks a backend and model per question (ttt_magic.route() tells why)."
        else:
            row = next((r for r in self._rows if r[0] == name), None)
            if row is None:
                text = f"✗ {name!r} is not a registered backend."
            elif row[1]:
                text = f"✓ {name} is available."
            else:
                text = f"✗ {name} is unavailable: {row[2] or 'no reason given'}"
        self.reason.value = f"<small>{html.escape(text)}</small>"

    # ------------------------------------------------------------------ model list

    def _model_options(self, backend: str, current: str | None) -> list[tuple[str, str]]:
        label = "(automatic choice)" if backend == AUTO else f"(default of {backend})"
        options = [(label, DEFAULT_MODEL)]
        names = catalogue_models(backend)
        for extra in self._fetched.get(backend, []):
            if extra not in names:
                names.append(extra)
        options += [(name, name) for name in names]
        if current and current not in names:
            options.append((f"{current} (from configuration)", current))
        return options

    def _set_model_options(self, backend: str, current: str | None) -> None:
        with self._quiet():
            self.model.options = self._model_options(backend, current)
            self.model.value = current or DEFAULT_MODEL
        self._models_for = backend

    def refresh_models(self, force: bool = False) -> asyncio.Task[Any] | None:
        """List the chosen backend's models without blocking the kernel; returns the task, if any.

        In a kernel the listing runs on the runner's loop and is awaited by a
        task on the kernel's loop, which alone touches the widgets. Without a
        running loop (a plain script) it simply runs to the end.
        """
        name = self.backend.value
        self._generation += 1
        self.refresh.disabled = name == AUTO
        if name == AUTO:
            self.status.value = ""
            return None
        if not force and name in _model_cache:
            self._fetched[name] = list(_model_cache[name])
            self._apply_models(name)
            return None
        self.status.value = f"<small>Fetching models from {html.escape(name)}…</small>"
        self.refresh.disabled = True
        task = _start(self._fetch(name, self._generation), self._loop)
        self.pending = task
        return task

    async def _fetch(self, name: str, generation: int) -> None:
        error = None
        found: list[str] = []
        try:
            found = await _on_runner(fetch_models(name))
        except asyncio.CancelledError:
            raise
        except asyncio.TimeoutError:
            error = f"no answer in {FETCH_TIMEOUT:.0f} s"
        except Exception as exc:
            error = str(exc) or type(exc).__name__
        if generation != self._generation:
            return  # the backend was changed meanwhile: this list is stale
        self.refresh.disabled = False
        if error is not None:
            self.status.value = (
                f"<small>✗ Could not list the models of {html.escape(name)}: {html.escape(error)}</small>"
            )
            self._fetched.pop(name, None)
            self._apply_models(name, status=False)
            return
        _model_cache[name] = list(found)
        self._fetched[name] = list(found)
        self._apply_models(name)

    def _apply_models(self, name: str, status: bool = True) -> None:
        from ..config import get_config

        current = get_config().default_model
        self._set_model_options(name, current)
        self.refresh.disabled = False
        if status:
            from_backend = self._fetched.get(name, [])
            count = len(set(catalogue_models(name)) | set(from_backend))
            self.status.value = (
                f"<small>{count} models for {html.escape(name)} "
                f"({len(catalogue_models(name))} in the catalogue, "
                f"{len(from_backend)} listed by the backend)</small>"
            )

    # ------------------------------------------------------------------ widget -> configuration

    def _configure(self, **changes: Any) -> None:
        from ..config import configure

        try:
            configure(**changes)
        except Exception as exc:  # a bad value is shown, never raised into the comm handler
            self.status.value = f"<small>✗ {html.escape(str(exc))}</small>"

    def _on_backend(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        from ..config import get_config

        name = change["new"]
        self._show_reason(name)
        current = get_config().default_model
        known = catalogue_models(name) + self._fetched.get(name, [])
        keep = current if current and current in known else None
        self._set_model_options(name, keep)
        self._configure(default_backend=name, default_model=keep)
        self.refresh_models()

    def _on_model(self, change: dict[str, Any]) -> None:
        if not self._syncing:
            _register_listed_model(change["new"], self.backend.value)
            self._configure(default_model=change["new"] or None)

    def _on_stream(self, change: dict[str, Any]) -> None:
        if not self._syncing:
            self._configure(stream=bool(change["new"]))

    def _on_cache(self, change: dict[str, Any]) -> None:
        if not self._syncing:
            self._configure(cache=(self._cache_path or True) if change["new"] else False)

    def _on_temperature(self, _change: dict[str, Any]) -> None:
        self.temperature.disabled = not self.use_temperature.value
        if not self._syncing:
            self._set_request_default(
                "temperature", round(float(self.temperature.value), 4) if self.use_temperature.value else None
            )

    def _on_max_tokens(self, change: dict[str, Any]) -> None:
        if not self._syncing:
            self._set_request_default("max_tokens", int(change["new"]) or None)

    def _on_system(self, change: dict[str, Any]) -> None:
        if not self._syncing:
            self._set_request_default("system", change["new"].strip() or None)

    def _set_request_default(self, key: str, value: Any) -> None:
        try:
            with self._quiet():
                set_default(key, value)
        except Exception as exc:
            self.status.value = f"<small>✗ {html.escape(str(exc))}</small>"

    # ------------------------------------------------------------------ configuration -> widgets

    def _config_changed(self) -> None:
        self._run_on_kernel(self._resync)

    def _resync(self) -> None:
        from ..config import get_config

        try:
            self._sync(get_config())
        except Exception as exc:
            self.status.value = f"<small>✗ {html.escape(str(exc))}</small>"

    def _sync(self, settings: Any) -> None:
        """Show ``settings``: backend, model list and model, streaming, request defaults."""
        backend = settings.default_backend
        rows = _backend_rows()  # a plugin may have appeared, a key may have been set
        if (
            rows != self._rows
            or backend not in [v for _, v in self.backend.options]
            or backend != self.backend.value
        ):
            self._rows = rows
            self._set_backend_options(backend)
        current = settings.default_model
        if self._models_for != backend:
            self._set_model_options(backend, current)
            self.refresh_models()
        elif (current or DEFAULT_MODEL) != self.model.value:
            self._set_model_options(backend, current)
        with self._quiet():
            self.stream.value = bool(settings.stream)
            cache = settings.get("cache")
            if isinstance(cache, str) and cache:
                self._cache_path = cache
            self.cache.value = bool(cache)
            self._show_request_defaults()

    def _show_request_defaults(self) -> None:
        temperature = get_default("temperature")
        self.use_temperature.value = temperature is not None
        self.temperature.disabled = temperature is None
        if temperature is not None:
            self.temperature.value = float(temperature)
        self.max_tokens.value = int(get_default("max_tokens") or 0)
        self.system.value = get_default("system") or ""


def panel() -> Any:
    """The selectors panel (an ipywidgets ``VBox``; its controller is ``.ttt_panel``)."""
    return SelectorsPanel().widget
