"""Plugins: finding them, running their ``register_plugin(registry)``, remembering the outcome.

A plugin is a ``.py`` file, or a package directory with ``__init__.py``, that
defines ``register_plugin(registry)``; an installed distribution may instead
declare an entry point in the ``ttt_magic.plugins`` group that names such a
module or the function itself. ``registry`` offers ``register_backend(...)``
(and ``add_model(...)``); each backend registered this way remembers which
plugin it came from, so status displays can say where a backend was defined.

Where plugins are looked for, and which one wins when two register the same
backend name (later wins)::

    built-in plugins   ttt_magic/builtin_plugins/ (wheel) or the repo's plugins/
    entry points       group "ttt_magic.plugins" of installed distributions
    ~/.config/ttt/plugins/
    ~/.ai/plugins/
    ./ai_plugins/      the project's own, highest precedence

Built-in plugins (``echo`` and ``mock``) are part of the library and always
load; the other locations are skipped when the setting ``load_plugins`` is false.
A plugin never replaces a backend that user code registered directly with
``register_backend()``.

Why lazily: executing arbitrary files on ``import ttt_magic`` would make the
import slow and a broken plugin fatal. ``ensure_discovered()`` runs discovery
the first time a backend is needed, once per process; a plugin that fails
(syntax error, exception, no ``register_plugin``) is recorded with a one-line
error and never stops the others.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import UsageError

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginNotFound",
    "PluginRecord",
    "PluginRegistry",
    "builtin_plugin_dirs",
    "discover_plugins",
    "ensure_discovered",
    "load_plugin",
    "plugin_dirs",
    "plugin_records",
]

ENTRY_POINT_GROUP = "ttt_magic.plugins"
MODULE_PREFIX = "ttt_magic_plugin_"


class PluginNotFound(UsageError, FileNotFoundError):
    """``load_plugin`` was given a path that is not there (or is not a plugin)."""


@dataclass
class PluginRecord:
    """What happened to one plugin: for ``status`` displays and for idempotence.

    ``source`` is the file or directory path, or ``entry point NAME = VALUE``;
    ``location`` says which discovery place found it (``builtin``,
    ``entry-point``, ``user-config``, ``home-ai``, ``project``, or ``manual``
    for ``load_plugin``). ``status`` is ``"loaded"`` or ``"failed"``; a failed
    plugin has a one-line ``error`` and the full ``details`` (a traceback).
    ``notes`` holds warnings that did not stop loading (a missing requirement,
    a replaced backend).
    """

    name: str
    source: str
    location: str
    status: str = "loaded"
    error: str | None = None
    details: str | None = None
    backends: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    module: ModuleType | None = field(default=None, repr=False, compare=False)
    stamp: Any = field(default=None, repr=False, compare=False)
    loaded_at: float = field(default_factory=time.time, repr=False, compare=False)

    @property
    def loaded(self) -> bool:
        return self.status == "loaded"

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def summary(self) -> str:
        """One line for a status table."""
        if self.failed:
            return f"{self.name}: failed: {self.error} ({self.source})"
        provides = ", ".join(self.backends) or "no backends"
        extra = f"; {'; '.join(self.notes)}" if self.notes else ""
        return f"{self.name}: {provides} ({self.source}){extra}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "location": self.location,
            "status": self.status,
            "error": self.error,
            "backends": list(self.backends),
            "notes": list(self.notes),
        }


class PluginRegistry:
    """The ``registry`` a plugin's ``register_plugin`` receives.

    Forwards to the global backend registry, stamping every entry with the
    plugin's source, and keeps what is needed to undo a failed registration.
    """

    def __init__(self, record: PluginRecord, backends: Any = None, models: Any = None) -> None:
        from .registry import backend_registry, model_registry

        self._record = record
        self._backends = backends if backends is not None else backend_registry
        self._models = models if models is not None else model_registry
        self._previous: dict[str, Any] = {}  # name -> entry it replaced (None if new)

    @property
    def source(self) -> str:
        return f"plugin {self._record.source}"

    def register_backend(
        self,
        name: str,
        cls: Any,
        *,
        version: str | None = None,
        description: str = "",
        author: str | None = None,
        requires: list[str] | None = None,
    ) -> Any:
        """Register a backend class under ``name`` on behalf of this plugin."""
        existing = _current_entry(self._backends, name)
        if existing is not None and not _plugin_may_replace(existing.source, self.source):
            self._record.notes.append(
                f"backend {name!r} kept from {existing.source}; this plugin's one is ignored"
            )
            return existing
        entry = self._backends.register_backend(
            name,
            cls,
            version=version,
            description=description,
            author=author,
            requires=requires,
            source=self.source,
        )
        self._previous.setdefault(name, existing)
        if name not in self._record.backends:
            self._record.backends.append(name)
        if existing is not None and existing.source != self.source:
            self._record.notes.append(f"backend {name!r} replaces the one from {existing.source}")
        try:
            missing = entry.missing_requirements()
        except Exception:  # e.g. a dotted requirement whose parent package is absent
            missing = list(entry.requires)
        if missing:
            self._record.notes.append(
                f"backend {name!r} needs {', '.join(missing)} (not installed): unavailable"
            )
        return entry

    def add_model(self, info: Any) -> None:
        """Add a ``ModelInfo`` to the model catalogue (a plugin may bring its models)."""
        self._models.add_model(info)

    def rollback(self) -> None:
        """Undo this plugin's registrations (it failed part-way through)."""
        for name, previous in self._previous.items():
            if previous is None:
                self._backends.unregister(name)
            else:
                self._backends.register_backend(
                    previous.name,
                    previous.target,
                    version=previous.version,
                    description=previous.description,
                    author=previous.author,
                    requires=previous.requires,
                    source=previous.source,
                )
        self._record.backends.clear()


def _current_entry(backends: Any, name: str) -> Any:
    """The entry registered under ``name`` in code (not configuration), if any."""
    entries = getattr(backends, "_entries", None)
    if isinstance(entries, dict):  # avoid entries(): it would also evaluate configuration
        return entries.get(name)
    try:
        return backends.entries().get(name)
    except Exception:
        return None


def _plugin_may_replace(existing_source: str, new_source: str) -> bool:
    """Plugins replace built-ins and other plugins, never a direct ``register_backend()``."""
    return (
        existing_source == new_source
        or existing_source in {"built-in"}
        or existing_source.startswith(("plugin ", "entry point "))
    )


# --------------------------------------------------------------------------- state


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.records: dict[str, PluginRecord] = {}  # key: resolved path or entry point id
        self.builtin_done = False
        self.external_done = False
        self.running = False


_state = _State()


def plugin_records() -> list[PluginRecord]:
    """Every plugin seen so far, loaded or failed, in the order they were loaded."""
    with _state.lock:
        return list(_state.records.values())


# --------------------------------------------------------------------------- places


def _package_dir() -> Path:
    return Path(__file__).resolve().parent


def builtin_plugin_dirs() -> list[Path]:
    """Where the built-in plugins are: inside the wheel, and/or the source checkout's ``plugins/``."""
    here = _package_dir()
    found = []
    wheel_dir = here / "builtin_plugins"
    if wheel_dir.is_dir():
        found.append(wheel_dir)
    checkout = here.parent / "plugins"
    # Only a real checkout of this project: in site-packages a "plugins" folder would be someone else's.
    if checkout.is_dir() and (here.parent / "pyproject.toml").is_file():
        found.append(checkout)
    return found


def plugin_dirs() -> list[tuple[str, Path]]:
    """The user plugin folders, resolved now, in loading order (later wins on name clashes)."""
    home, cwd = Path.home(), Path.cwd()
    return [
        ("user-config", home / ".config" / "ttt" / "plugins"),
        ("home-ai", home / ".ai" / "plugins"),
        ("project", cwd / "ai_plugins"),
    ]


def _candidates(folder: Path) -> list[Path]:
    """Plugin files and package directories in ``folder``, sorted by name."""
    try:
        children = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError:
        return []
    found = []
    for child in children:
        if child.name.startswith(("_", ".")):
            continue
        is_module = child.is_file() and child.suffix == ".py"
        is_package = child.is_dir() and (child / "__init__.py").is_file()
        if is_module or is_package:
            found.append(child)
    return found


def _stamp(path: Path) -> Any:
    """Changes when the plugin's code changes (every ``.py`` of a package directory counts)."""
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    stamp = []
    for file in files:
        if "__pycache__" in file.parts:
            continue
        try:
            st = file.stat()
        except OSError:
            continue
        stamp.append((str(file), st.st_mtime_ns, st.st_size))
    return tuple(stamp)


def _module_name(path: Path) -> str:
    digest = hashlib.sha1(str(path).encode("utf-8")).hexdigest()[:10]
    stem = "".join(ch if ch.isalnum() else "_" for ch in path.stem)
    return f"{MODULE_PREFIX}{stem}_{digest}"


# --------------------------------------------------------------------------- loading


def load_plugin(path: str | Path, *, force: bool = False, location: str = "manual") -> PluginRecord:
    """Load one plugin file or package directory and return what happened.

    Raises ``PluginNotFound`` (a ``FileNotFoundError`` and ``UsageError``) when
    ``path`` does not exist or is not a plugin. A plugin that fails does not
    raise: the returned record has ``status == "failed"`` and ``error``. An
    unchanged plugin that was already loaded is not executed again unless
    ``force``.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise PluginNotFound(
            f"No plugin at {path}: the path does not exist.",
            hint="Give the path of a .py file or of a package directory with __init__.py.",
        )
    path = path.resolve()
    if path.is_dir() and not (path / "__init__.py").is_file():
        raise PluginNotFound(
            f"{path} is a directory without __init__.py, so it is not a plugin package.",
            hint="Add __init__.py defining register_plugin(registry), or load the .py file itself.",
        )
    if path.is_file() and path.suffix != ".py":
        raise PluginNotFound(f"{path} is not a Python file (.py).")
    with _state.lock:
        key = str(path)
        stamp = _stamp(path)
        previous = _state.records.get(key)
        if previous is not None and not force and previous.stamp == stamp:
            return previous
        record = PluginRecord(
            name=path.stem if path.is_file() else path.name,
            source=key,
            location=previous.location if previous else location,
            stamp=stamp,
        )
        _forget_old_backends(previous)
        _state.records.pop(key, None)
        _state.records[key] = record
        module_name = _module_name(path)

        def run() -> Callable[[Any], Any]:
            module = _import_from_path(module_name, path)
            record.module = module
            register = getattr(module, "register_plugin", None)
            if not callable(register):
                raise _PluginProblem("defines no register_plugin(registry) function")
            return register

        _execute(record, run, module_name)
        return record


def _import_from_path(module_name: str, path: Path) -> ModuleType:
    init = path / "__init__.py" if path.is_dir() else path
    spec = importlib.util.spec_from_file_location(
        module_name, init, submodule_search_locations=[str(path)] if path.is_dir() else None
    )
    if spec is None or spec.loader is None:  # pragma: no cover - only for odd file systems
        raise _PluginProblem("cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # so the plugin's classes pickle and relative imports work
    spec.loader.exec_module(module)
    return module


class _PluginProblem(Exception):
    """A plugin that is not one (no register_plugin): reported without a traceback."""


def _execute(
    record: PluginRecord, get_register: Callable[[], Callable[[Any], Any]], module_name: str | None
) -> None:
    """Import the plugin, call its ``register_plugin``; any failure is recorded, not raised."""
    registry = PluginRegistry(record)
    try:
        register = get_register()
        register(registry)
    except BaseException as exc:  # a plugin's sys.exit() or KeyboardInterrupt-free failures too
        if isinstance(exc, KeyboardInterrupt):
            raise
        registry.rollback()
        if module_name is not None:
            sys.modules.pop(module_name, None)
        record.status = "failed"
        record.error = _one_line(exc, record)
        record.details = (
            None
            if isinstance(exc, _PluginProblem)
            else "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        )
        record.module = None


def _one_line(exc: BaseException, record: PluginRecord) -> str:
    if isinstance(exc, _PluginProblem):
        return str(exc)
    if isinstance(exc, SyntaxError):
        where = f"line {exc.lineno}" if exc.lineno else "unknown line"
        return f"SyntaxError: {exc.msg} ({Path(exc.filename or record.source).name}, {where})"
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    inside = [
        f
        for f in frames
        if record.source in (f.filename or "")
        or str(Path(f.filename or "").resolve()).startswith(record.source)
    ]
    if inside:
        where = f" (line {inside[-1].lineno})"
    return f"{type(exc).__name__}: {message}{where}" if message else f"{type(exc).__name__}{where}"


def _forget_old_backends(previous: PluginRecord | None) -> None:
    """Before re-running a changed plugin, drop the backends its old version registered."""
    if previous is None:
        return
    from .registry import backend_registry

    source = f"plugin {previous.source}"
    for name in previous.backends:
        entry = _current_entry(backend_registry, name)
        if entry is not None and entry.source == source:
            backend_registry.unregister(name)


# --------------------------------------------------------------------------- entry points


def _load_entry_point(ep: importlib.metadata.EntryPoint, force: bool) -> PluginRecord:
    dist = getattr(getattr(ep, "dist", None), "name", None)
    key = f"entry point {ep.name} = {ep.value}"
    source = key + (f" ({dist})" if dist else "")
    with _state.lock:
        previous = _state.records.get(key)
        if previous is not None and not force:
            return previous
        record = PluginRecord(name=ep.name, source=source, location="entry-point")
        _forget_old_backends(previous)
        _state.records.pop(key, None)
        _state.records[key] = record

        def run() -> Callable[[Any], Any]:
            target = ep.load()
            if isinstance(target, ModuleType):
                record.module = target
                register = getattr(target, "register_plugin", None)
                if not callable(register):
                    raise _PluginProblem(f"module {target.__name__} defines no register_plugin(registry)")
                return register
            if not callable(target):
                raise _PluginProblem(f"{ep.value} is neither a module nor a register_plugin function")
            return target

        _execute(record, run, None)
        return record


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    try:
        found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # a broken installed distribution must not break discovery
        return []
    seen, unique = set(), []
    for ep in found:  # the same dist on sys.path twice yields duplicates
        ident = (ep.name, ep.value)
        if ident not in seen:
            seen.add(ident)
            unique.append(ep)
    return unique


# --------------------------------------------------------------------------- discovery


def _discover_builtin(force: bool) -> list[PluginRecord]:
    records, seen = [], set()
    for folder in builtin_plugin_dirs():
        for path in _candidates(folder):
            if path.name in seen:  # the same plugin in the wheel copy and the checkout
                continue
            seen.add(path.name)
            records.append(load_plugin(path, force=force, location="builtin"))
    return records


def _discover_external(force: bool) -> list[PluginRecord]:
    records = [_load_entry_point(ep, force) for ep in _entry_points()]
    for location, folder in plugin_dirs():
        for path in _candidates(folder):
            records.append(load_plugin(path, force=force, location=location))
    return records


def discover_plugins(force: bool = False) -> list[PluginRecord]:
    """Look in every plugin location now and load what is new or changed.

    Returns the records of the plugins found in this pass (loaded or failed).
    Unchanged plugins are not executed again unless ``force``. Folders and
    entry points are skipped when ``load_plugins`` is false; built-in plugins
    always load.
    """
    from .config import get_config

    with _state.lock:
        records = _discover_builtin(force)
        _state.builtin_done = True
        if get_config().load_plugins:
            records += _discover_external(force)
            _state.external_done = True
        return records


def ensure_discovered() -> None:
    """Run discovery once per process, the first time a backend is needed; cheap afterwards.

    Re-entrant: a plugin whose ``register_plugin`` itself asks a question does not
    start discovery again.
    """
    if _state.builtin_done and _state.external_done:
        return
    from .config import get_config

    # A timeout rather than a plain wait: a plugin whose register_plugin() blocks on
    # another thread that needs a backend must not deadlock the process.
    if not _state.lock.acquire(timeout=5.0):
        return
    try:
        if _state.running:
            return
        _state.running = True
        try:
            if not _state.builtin_done:
                _discover_builtin(False)
                _state.builtin_done = True
            if not _state.external_done and get_config().load_plugins:
                _discover_external(False)
                _state.external_done = True
        finally:
            _state.running = False
    finally:
        _state.lock.release()


def _reset_for_tests() -> None:
    """Forget what was discovered (the registry keeps its entries): for test isolation."""
    with _state.lock:
        _state.records.clear()
        _state.builtin_done = False
        _state.external_done = False
