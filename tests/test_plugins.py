"""Plugin discovery and loading: every location, entry points, isolation of failures, idempotence."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from ttt_magic import plugins
from ttt_magic.errors import UsageError
from ttt_magic.registry import backend_registry

PLUGIN_TEMPLATE = '''
from ttt_magic.backends import BaseBackend
from ttt_magic.models import AIResponse


class {cls}(BaseBackend):
    """{cls} answers with a fixed word."""

    backend_name = "{name}"

    async def ask(self, prompt, *, model=None, system=None, temperature=None, max_tokens=None, **kw):
        return AIResponse("{answer}:" + prompt, model=model or "m", backend=self.name)


def register_plugin(registry):
    registry.register_backend("{name}", {cls}, version="0.1", author="tests"{extra})
'''


def plugin_source(name: str, answer: str = "", extra: str = "") -> str:
    cls = "".join(part.title() for part in name.replace("-", "_").split("_")) + "Backend"
    return PLUGIN_TEMPLATE.format(cls=cls, name=name, answer=answer or name, extra=extra)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def env(tmp_path, monkeypatch):
    """HOME and cwd in tmp folders, plugin state and registry restored afterwards."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("TTT_CONFIG", raising=False)
    monkeypatch.delenv("TTT_LOAD_PLUGINS", raising=False)
    saved_entries = dict(backend_registry._entries)
    saved_records = dict(plugins._state.records)
    saved_flags = (plugins._state.builtin_done, plugins._state.external_done)
    saved_modules = set(sys.modules)
    plugins._reset_for_tests()
    yield {"home": home, "cwd": cwd, "tmp": tmp_path}
    for name in list(backend_registry._entries):
        backend_registry.unregister(name)
    for name, entry in saved_entries.items():
        backend_registry._entries[name] = entry
    plugins._state.records.clear()
    plugins._state.records.update(saved_records)
    plugins._state.builtin_done, plugins._state.external_done = saved_flags
    for name in set(sys.modules) - saved_modules:
        if name.startswith((plugins.MODULE_PREFIX, "fake_ttt", "mymod")):
            sys.modules.pop(name, None)


def ask_backend(name: str, prompt: str = "hi") -> str:
    import asyncio

    return str(asyncio.run(backend_registry.get(name).ask(prompt)))


def by_name(records):
    return {r.name: r for r in records}


# --------------------------------------------------------------------------- locations


def test_each_folder_location_is_discovered(env):
    write(env["home"] / ".config" / "ttt" / "plugins" / "cfg_plugin.py", plugin_source("from-config"))
    write(env["home"] / ".ai" / "plugins" / "ai_plugin.py", plugin_source("from-home-ai"))
    write(env["cwd"] / "ai_plugins" / "proj_plugin.py", plugin_source("from-project"))

    records = by_name(plugins.discover_plugins())

    assert records["cfg_plugin"].location == "user-config"
    assert records["ai_plugin"].location == "home-ai"
    assert records["proj_plugin"].location == "project"
    for rec, backend in [
        ("cfg_plugin", "from-config"),
        ("ai_plugin", "from-home-ai"),
        ("proj_plugin", "from-project"),
    ]:
        assert records[rec].loaded and records[rec].backends == [backend]
        assert backend_registry.entries()[backend].source == f"plugin {records[rec].source}"
        assert ask_backend(backend, "x") == f"{backend}:x"


def test_builtin_plugins_provide_echo_and_mock(env):
    records = by_name(plugins.discover_plugins())
    assert records["echo_backend"].location == "builtin"
    assert records["mock_llm_backend"].backends == ["mock"]
    assert ask_backend("echo", "say this back") == "say this back"
    entry = backend_registry.entries()["mock"]
    assert entry.source.startswith("plugin ") and entry.source.endswith("mock_llm_backend.py")
    assert entry.version == "1.0.0"


def test_builtin_dirs_found_in_a_checkout():
    dirs = plugins.builtin_plugin_dirs()
    assert any((d / "mock_llm_backend.py").is_file() for d in dirs)


def test_package_directory_plugin_with_relative_import(env):
    pkg = env["cwd"] / "ai_plugins" / "pkgplugin"
    write(pkg / "helper.py", "WORD = 'from-helper'\n")
    write(
        pkg / "__init__.py",
        plugin_source("pkg-backend", extra="").replace(
            "def register_plugin", "from .helper import WORD\n\n\ndef register_plugin"
        ),
    )
    records = by_name(plugins.discover_plugins())
    assert records["pkgplugin"].loaded, records["pkgplugin"].error
    assert records["pkgplugin"].module.WORD == "from-helper"
    assert "pkg-backend" in backend_registry.names()


def test_underscore_files_and_non_python_are_skipped(env):
    folder = env["cwd"] / "ai_plugins"
    write(folder / "_private.py", "raise RuntimeError('must not run')\n")
    write(folder / "notes.txt", "not a plugin\n")
    write(folder / "plain_dir" / "x.py", "raise RuntimeError('must not run')\n")
    names = {r.name for r in plugins.discover_plugins()}
    assert not names & {"_private", "notes", "plain_dir", "x"}


def test_later_location_wins_but_direct_registration_is_kept(env):
    from ttt_magic.backends.base import BaseBackend

    write(env["home"] / ".config" / "ttt" / "plugins" / "one.py", plugin_source("shared", answer="user"))
    write(env["cwd"] / "ai_plugins" / "two.py", plugin_source("shared", answer="project"))
    write(env["cwd"] / "ai_plugins" / "three.py", plugin_source("mine", answer="plugin"))

    class Mine(BaseBackend):
        backend_name = "mine"

    backend_registry.register_backend("mine", Mine)  # user code, before discovery
    records = by_name(plugins.discover_plugins())

    assert ask_backend("shared") == "project:hi"
    assert any("replaces" in note for note in records["two"].notes)
    assert backend_registry.entries()["mine"].target is Mine
    assert any("kept from register_backend()" in note for note in records["three"].notes)


def test_same_file_names_in_two_folders_do_not_collide(env):
    write(env["home"] / ".ai" / "plugins" / "same.py", plugin_source("same-a") + "\nTAG = 'a'\n")
    write(env["cwd"] / "ai_plugins" / "same.py", plugin_source("same-b") + "\nTAG = 'b'\n")
    records = [r for r in plugins.discover_plugins() if r.name == "same"]
    assert len(records) == 2
    assert {r.module.TAG for r in records} == {"a", "b"}
    assert records[0].module.__name__ != records[1].module.__name__
    assert {"same-a", "same-b"} <= set(backend_registry.names())


# --------------------------------------------------------------------------- entry points


def make_distribution(site: Path, entry_points: str) -> None:
    write(
        site / "fake_ttt_plugin.py",
        plugin_source("ep-module")
        + textwrap.dedent("""

        def register_other(registry):
            registry.register_backend("ep-callable", EpModuleBackend, description="via a function")
        """),
    )
    info = site / "fake_ttt_plugin-1.0.dist-info"
    write(info / "METADATA", "Metadata-Version: 2.1\nName: fake-ttt-plugin\nVersion: 1.0\n")
    write(info / "entry_points.txt", entry_points)


def test_entry_points_naming_a_module_or_a_function(env, monkeypatch):
    site = env["tmp"] / "site"
    make_distribution(
        site,
        """
        [ttt_magic.plugins]
        as_module = fake_ttt_plugin
        as_function = fake_ttt_plugin:register_other
        broken = fake_ttt_plugin_missing
        """,
    )
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()

    records = by_name(plugins.discover_plugins())

    assert records["as_module"].location == "entry-point"
    assert records["as_module"].backends == ["ep-module"]
    assert records["as_function"].backends == ["ep-callable"]
    assert "fake-ttt-plugin" in records["as_module"].source
    assert backend_registry.entries()["ep-callable"].source.startswith("plugin entry point as_function")
    assert ask_backend("ep-callable") == "ep-module:hi"
    assert records["broken"].failed
    assert "ModuleNotFoundError" in records["broken"].error
    # entry points are idempotent too
    again = by_name(plugins.discover_plugins())
    assert again["as_module"] is records["as_module"]


def test_entry_point_to_a_module_without_register_plugin(env, monkeypatch):
    site = env["tmp"] / "site2"
    write(site / "fake_ttt_empty.py", "X = 1\n")
    write(
        site / "fake_ttt_empty-1.0.dist-info" / "METADATA",
        "Metadata-Version: 2.1\nName: fake-ttt-empty\nVersion: 1.0\n",
    )
    write(
        site / "fake_ttt_empty-1.0.dist-info" / "entry_points.txt",
        "[ttt_magic.plugins]\nempty = fake_ttt_empty\n",
    )
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    record = by_name(plugins.discover_plugins())["empty"]
    assert record.failed and "register_plugin" in record.error


# --------------------------------------------------------------------------- failures


def test_failures_are_isolated_and_reported_in_one_line(env):
    folder = env["cwd"] / "ai_plugins"
    write(folder / "a_syntax.py", "def register_plugin(registry)\n    pass\n")
    write(
        folder / "b_raises.py",
        """
        def register_plugin(registry):
            raise RuntimeError("database of llamas not found")
        """,
    )
    write(folder / "c_no_register.py", "VALUE = 1\n")
    write(folder / "d_import_error.py", "import surely_not_a_module_xyz\n")
    write(folder / "e_good.py", plugin_source("good-one"))
    write(
        folder / "f_partial.py",
        plugin_source("half-done") + "\n\n_orig = register_plugin\n\n"
        "def register_plugin(registry):\n    _orig(registry)\n    raise ValueError('then broke')\n",
    )

    records = by_name(plugins.discover_plugins())

    assert records["e_good"].loaded and "good-one" in backend_registry.names()
    syntax = records["a_syntax"]
    assert syntax.failed and syntax.error.startswith("SyntaxError") and "line 1" in syntax.error
    assert records["b_raises"].error == "RuntimeError: database of llamas not found (line 3)"
    assert "register_plugin" in records["c_no_register"].error
    assert "surely_not_a_module_xyz" in records["d_import_error"].error
    assert records["f_partial"].failed and "half-done" not in backend_registry.names()
    for rec in records.values():
        if rec.failed:
            assert "\n" not in rec.error
            assert rec.summary().startswith(f"{rec.name}: failed:")
    failed = {r.name for r in plugins.plugin_records() if r.failed}
    assert {"a_syntax", "b_raises", "c_no_register", "d_import_error", "f_partial"} <= failed
    assert not any(name.startswith(plugins.MODULE_PREFIX + "b_raises") for name in sys.modules)


def test_missing_requirement_leaves_backend_listed_but_unavailable(env):
    write(
        env["cwd"] / "ai_plugins" / "needy.py",
        plugin_source("needy", extra=', requires=["surely_not_installed_pkg_xyz"]'),
    )
    record = by_name(plugins.discover_plugins())["needy"]
    assert record.loaded
    assert any("surely_not_installed_pkg_xyz" in note for note in record.notes)
    assert "needy" in backend_registry.names()
    available, reason = backend_registry.availability("needy")
    assert available is False
    assert "surely_not_installed_pkg_xyz" in reason


def test_load_plugin_missing_path_is_a_clear_error(env):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        plugins.load_plugin(env["tmp"] / "nope.py")
    with pytest.raises(UsageError, match="does not exist"):
        plugins.load_plugin(env["tmp"] / "nope.py")
    (env["tmp"] / "emptydir").mkdir()
    with pytest.raises(UsageError, match=r"__init__\.py"):
        plugins.load_plugin(env["tmp"] / "emptydir")
    write(env["tmp"] / "data.txt", "x")
    with pytest.raises(UsageError, match="not a Python file"):
        plugins.load_plugin(env["tmp"] / "data.txt")


def test_load_plugin_manual_returns_record(env):
    path = write(env["tmp"] / "anywhere" / "manual_plugin.py", plugin_source("manual-one"))
    record = plugins.load_plugin(str(path))
    assert record.loaded and record.location == "manual" and record.backends == ["manual-one"]
    assert record in plugins.plugin_records()
    assert ask_backend("manual-one", "q") == "manual-one:q"


# --------------------------------------------------------------------------- idempotence


def test_discovery_is_idempotent_and_reloads_changed_files(env):
    counting = "import builtins\nbuiltins.ttt_test_runs = getattr(builtins, 'ttt_test_runs', 0) + 1\n"
    path = write(env["cwd"] / "ai_plugins" / "counter.py", counting + plugin_source("counter", answer="v1"))
    import builtins

    builtins.ttt_test_runs = 0
    try:
        first = by_name(plugins.discover_plugins())["counter"]
        second = by_name(plugins.discover_plugins())["counter"]
        assert builtins.ttt_test_runs == 1
        assert second is first
        assert plugins.load_plugin(path) is first  # unchanged: not executed again

        plugins.discover_plugins(force=True)
        assert builtins.ttt_test_runs == 2

        text = path.read_text().replace('"v1:"', '"v2:"') + "\n# changed\n"
        path.write_text(text)
        plugins.discover_plugins()
        assert builtins.ttt_test_runs == 3
        assert ask_backend("counter") == "v2:hi"
        assert sum(r.name == "counter" for r in plugins.plugin_records()) == 1
    finally:
        del builtins.ttt_test_runs


def test_changed_plugin_that_stops_registering_drops_its_backend(env):
    path = write(env["cwd"] / "ai_plugins" / "fickle.py", plugin_source("fickle"))
    plugins.discover_plugins()
    assert "fickle" in backend_registry.names()
    path.write_text("def register_plugin(registry):\n    pass\n# now registers nothing\n")
    record = by_name(plugins.discover_plugins())["fickle"]
    assert record.loaded and record.backends == []
    assert "fickle" not in backend_registry.names()


def test_ensure_discovered_runs_once_and_respects_load_plugins(env, monkeypatch):
    write(env["cwd"] / "ai_plugins" / "late.py", plugin_source("late"))
    monkeypatch.setenv("TTT_LOAD_PLUGINS", "0")
    plugins.ensure_discovered()
    assert "mock" in backend_registry.names()  # built-ins load regardless
    assert "late" not in backend_registry.names()
    monkeypatch.setenv("TTT_LOAD_PLUGINS", "1")
    plugins.ensure_discovered()
    assert "late" in backend_registry.names()
    write(env["cwd"] / "ai_plugins" / "later.py", plugin_source("later"))
    plugins.ensure_discovered()  # done once: a new file needs discover_plugins()
    assert "later" not in backend_registry.names()
    plugins.discover_plugins()
    assert "later" in backend_registry.names()


def test_record_fields_and_dict(env):
    write(env["cwd"] / "ai_plugins" / "shown.py", plugin_source("shown"))
    record = by_name(plugins.discover_plugins())["shown"]
    data = record.to_dict()
    assert data == {
        "name": "shown",
        "source": str((env["cwd"] / "ai_plugins" / "shown.py").resolve()),
        "location": "project",
        "status": "loaded",
        "error": None,
        "backends": ["shown"],
        "notes": [],
    }
    assert record.summary().startswith("shown: shown (")


# --------------------------------------------------------------------------- class_path backends


CLASS_PATH_MODULE = '''
from ttt_magic.backends import BaseBackend
from ttt_magic.models import AIResponse


class MyBackend(BaseBackend):
    """A backend named in configuration by class_path."""

    async def ask(self, prompt, *, model=None, system=None, temperature=None, max_tokens=None, **kw):
        word = self.backend_config.get("greeting", "none")
        return AIResponse(f"{word}, {prompt}", model=model or "custom-1", backend="custom")
'''


def test_class_path_backend_from_project_config(env, monkeypatch):
    site = env["tmp"] / "classpath"
    write(site / "mymod_ttt.py", CLASS_PATH_MODULE)
    monkeypatch.syspath_prepend(str(site))
    write(
        env["cwd"] / "ttt.yaml",
        """
        backends:
          custom:
            class_path: mymod_ttt.MyBackend
            config:
              greeting: Ahoy
        """,
    )
    assert "custom" in backend_registry.names()
    assert backend_registry.entries()["custom"].source == "configuration"
    assert ask_backend("custom", "world") == "Ahoy, world"


def test_class_path_backend_through_the_api(env, monkeypatch):
    api = pytest.importorskip("ttt_magic.api")
    site = env["tmp"] / "classpath"
    write(site / "mymod_ttt2.py", CLASS_PATH_MODULE)
    monkeypatch.syspath_prepend(str(site))
    write(
        env["cwd"] / "ttt.yaml",
        """
        backends:
          custom:
            class_path: mymod_ttt2.MyBackend
            config:
              greeting: Hello
        """,
    )
    response = api.ask("there", backend="custom")
    assert response.succeeded, response.error
    assert str(response) == "Hello, there"
    assert response.backend == "custom"


def test_builtin_dirs_in_a_wheel_and_not_a_stray_plugins_folder(tmp_path, monkeypatch):
    site = tmp_path / "site-packages"
    package = site / "ttt_magic"
    (package / "builtin_plugins").mkdir(parents=True)
    (site / "plugins").mkdir()  # some other distribution's top-level "plugins": not ours
    monkeypatch.setattr(plugins, "_package_dir", lambda: package)
    assert plugins.builtin_plugin_dirs() == [package / "builtin_plugins"]

    checkout = tmp_path / "checkout"
    (checkout / "ttt_magic").mkdir(parents=True)
    (checkout / "plugins").mkdir()
    (checkout / "pyproject.toml").write_text("[project]\nname = 'ttt-magic'\n")
    monkeypatch.setattr(plugins, "_package_dir", lambda: checkout / "ttt_magic")
    assert plugins.builtin_plugin_dirs() == [checkout / "plugins"]


def test_dotted_requirement_of_a_missing_package_does_not_break_the_plugin(env):
    write(
        env["cwd"] / "ai_plugins" / "dotted.py",
        plugin_source("dotted", extra=', requires=["surely_missing_pkg_xyz.sub"]'),
    )
    record = by_name(plugins.discover_plugins())["dotted"]
    assert record.loaded, record.error
    assert any("surely_missing_pkg_xyz.sub" in note for note in record.notes)
    assert backend_registry.availability("dotted")[0] is False
