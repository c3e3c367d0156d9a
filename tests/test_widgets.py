"""The selectors panel and the ask box, without a browser.

Widgets are plain traitlets objects without a kernel, so their values can be
read and set directly; "a click" is ``button.click()``. Tests that need the
kernel's behaviour (work scheduled on a running loop, callbacks from other
threads) run inside ``asyncio.run``, which plays the kernel's main-thread loop.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from typing import Any, ClassVar

import ipywidgets  # noqa: F401 - a test dependency: missing must fail, not skip
import pytest

import ttt_magic
from ttt_magic import config
from ttt_magic.backends.base import BaseBackend
from ttt_magic.notebook import widgets
from ttt_magic.registry import backend_registry, model_registry


class SlowModels(BaseBackend):
    """A backend whose model listing waits for the test to release it."""

    backend_name = "slowlist"
    release = threading.Event()
    calls = 0
    on_main_thread: ClassVar[list[bool]] = []

    async def models(self) -> list[str]:
        type(self).calls += 1
        type(self).on_main_thread.append(threading.current_thread() is threading.main_thread())
        while not type(self).release.is_set():
            await asyncio.sleep(0.005)
        return ["slow-a", "slow-b"]

    async def ask(self, prompt: str, **kwargs: Any) -> Any:
        from ttt_magic.models import AIResponse

        return AIResponse("slow", backend=self.name, model=kwargs.get("model"))


class BrokenModels(BaseBackend):
    backend_name = "brokenlist"

    async def models(self) -> list[str]:
        raise RuntimeError("listing is down")


class Unavailable(BaseBackend):
    backend_name = "nocapacitor"

    @property
    def is_available(self) -> bool:
        return False

    @property
    def unavailable_reason(self) -> str:
        return "needs a flux capacitor"


@pytest.fixture(autouse=True)
def clean_widget_state():
    """Fresh model cache and test backends for every test (the config is reset by conftest)."""
    widgets._model_cache.clear()
    SlowModels.release.clear()
    SlowModels.calls = 0
    SlowModels.on_main_thread = []
    for cls in (SlowModels, BrokenModels, Unavailable):
        backend_registry.register_backend(cls.backend_name, cls)
    made: list[Any] = []
    yield made
    for panel in made:
        panel.close()
    for cls in (SlowModels, BrokenModels, Unavailable):
        backend_registry.unregister(cls.backend_name)
    for name in ("mock-1", "mock-fast", "echo", "slow-a", "slow-b"):
        model_registry.remove_model(name)


def make_panel(made: list[Any]) -> widgets.SelectorsPanel:
    box = widgets.panel()
    made.append(box.ttt_panel)
    return box.ttt_panel


def option_values(dropdown: Any) -> list[str]:
    return [value for _label, value in dropdown.options]


def option_labels(dropdown: Any) -> dict[str, str]:
    return {value: label for label, value in dropdown.options}


# --------------------------------------------------------------------------- import and building


def test_importing_the_module_does_not_import_ipywidgets():
    code = "import sys, ttt_magic.notebook.widgets; print('ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_panel_lists_every_backend_marked_with_availability(clean_widget_state):
    panel = make_panel(clean_widget_state)
    values = option_values(panel.backend)
    assert values[0] == "auto"
    for name in backend_registry.names():
        assert name in values
    labels = option_labels(panel.backend)
    assert "✓ available" in labels["mock"]
    assert "✗ unavailable" in labels["nocapacitor"]
    assert "flux capacitor" in panel.backends_table.value  # every reason, in the details table


def test_choosing_an_unavailable_backend_shows_its_reason(clean_widget_state):
    panel = make_panel(clean_widget_state)
    panel.backend.value = "nocapacitor"
    assert "needs a flux capacitor" in panel.reason.value
    panel.backend.value = "mock"
    assert "mock is available" in panel.reason.value


def test_panel_starts_from_the_configuration(clean_widget_state):
    config.configure(default_backend="echo", default_model="echo", stream=False)
    panel = make_panel(clean_widget_state)
    assert panel.backend.value == "echo"
    assert panel.model.value == "echo"
    assert panel.stream.value is False


# --------------------------------------------------------------------------- widget -> configuration


def test_backend_change_updates_model_options_and_configuration(clean_widget_state):
    panel = make_panel(clean_widget_state)
    panel.backend.value = "mock"
    assert config.get_config().default_backend == "mock"
    assert {"mock-1", "mock-fast"} <= set(option_values(panel.model))
    assert "gpt-4o-mini" not in option_values(panel.model)
    panel.backend.value = "echo"
    assert option_values(panel.model) == ["", "echo"]
    assert config.get_config().default_backend == "echo"


def test_catalogue_models_follow_provider_backends():
    assert "gpt-4o-mini" in widgets.catalogue_models("cloud")
    assert "claude-sonnet-4-5" in widgets.catalogue_models("anthropic")
    assert "claude-sonnet-4-5" not in widgets.catalogue_models("openai")
    assert "llama3.2" in widgets.catalogue_models("local")
    assert widgets.catalogue_models("mock") == []


def test_model_choice_is_configured_and_cleared_on_backend_change(clean_widget_state):
    panel = make_panel(clean_widget_state)
    panel.backend.value = "mock"
    panel.model.value = "mock-fast"
    assert config.get_config().default_model == "mock-fast"
    panel.backend.value = "echo"  # mock-fast is not an echo model: back to the backend's default
    assert config.get_config().default_model is None
    assert panel.model.value == ""


def test_the_next_question_uses_the_panel_choice(clean_widget_state):
    panel = make_panel(clean_widget_state)
    panel.backend.value = "mock"
    panel.model.value = "mock-fast"
    response = ttt_magic.ask("Explain what a list comprehension is")
    assert (response.backend, response.model) == ("mock", "mock-fast")


def test_stream_toggle_and_request_defaults(clean_widget_state):
    panel = make_panel(clean_widget_state)
    panel.stream.value = False
    assert config.get_config().stream is False
    panel.use_temperature.value = True
    panel.temperature.value = 0.3
    panel.max_tokens.value = 40
    panel.system.value = "  Answer like a pirate.  "
    expected = {"temperature": 0.3, "max_tokens": 40, "system": "Answer like a pirate."}
    assert widgets.request_defaults() == expected
    settings = config.get_config()  # the panel writes the configuration: every %%ask uses it
    assert (settings.temperature, settings.max_tokens, settings.system) == (0.3, 40, "Answer like a pirate.")
    panel.use_temperature.value = False
    panel.max_tokens.value = 0
    panel.system.value = ""
    assert widgets.request_defaults() == {}
    assert panel.temperature.disabled


def test_a_bad_value_is_shown_not_raised(clean_widget_state, monkeypatch):
    panel = make_panel(clean_widget_state)

    def refuse(**_kw: Any) -> None:
        raise config.ConfigError("Setting 'stream': expected a boolean.")

    monkeypatch.setattr(config, "configure", refuse)
    panel.stream.value = not panel.stream.value
    assert "expected a boolean" in panel.status.value


# --------------------------------------------------------------------------- configuration -> widgets


def test_configure_elsewhere_updates_the_panel(clean_widget_state):
    panel = make_panel(clean_widget_state)
    config.configure(default_backend="mock", default_model="mock-1", stream=False)
    assert panel.backend.value == "mock"
    assert panel.model.value == "mock-1"
    assert panel.stream.value is False
    config.configure(default_model="mock-custom")  # unknown to the lists: still shown, as configured
    assert panel.model.value == "mock-custom"
    assert "from configuration" in option_labels(panel.model)["mock-custom"]
    config.reset()
    assert panel.backend.value == "auto"
    assert panel.model.value == ""
    assert panel.stream.value is True


def test_a_backend_registered_later_appears_on_the_next_change(clean_widget_state):
    panel = make_panel(clean_widget_state)

    class Late(BaseBackend):
        backend_name = "latecomer"

    backend_registry.register_backend("latecomer", Late)
    try:
        config.configure(default_backend="latecomer")
        assert panel.backend.value == "latecomer"
        assert "✓ available" in option_labels(panel.backend)["latecomer"]
    finally:
        backend_registry.unregister("latecomer")


def test_request_defaults_set_elsewhere_update_the_panel(clean_widget_state):
    panel = make_panel(clean_widget_state)
    widgets.set_default("temperature", 1.25)
    widgets.set_default("system", "Be brief.")
    assert panel.use_temperature.value and panel.temperature.value == 1.25
    assert panel.system.value == "Be brief."
    with pytest.raises(KeyError):
        widgets.set_default("top_p", 0.5)


def test_closed_panel_stops_following(clean_widget_state):
    panel = make_panel(clean_widget_state)
    panel.close()
    clean_widget_state.remove(panel)
    config.configure(default_backend="mock")  # must not touch (or fail on) the closed widgets
    assert panel._unsubscribe is not None
    assert panel.backend.value == "auto"


def test_configure_from_another_thread_is_applied_on_the_loop_thread(clean_widget_state):
    seen: list[tuple[str, bool]] = []

    async def scenario() -> None:
        panel = make_panel(clean_widget_state)  # built on the "kernel" loop: it remembers it
        panel.stream.observe(
            lambda ch: seen.append(("stream", threading.current_thread() is threading.main_thread())),
            names="value",
        )
        worker = threading.Thread(target=config.configure, kwargs={"stream": False})
        worker.start()
        worker.join()
        assert panel.stream.value is True  # not yet: the update waits for the loop
        for _ in range(100):
            await asyncio.sleep(0.01)
            if not panel.stream.value:
                break
        assert panel.stream.value is False

    asyncio.run(scenario())
    assert seen == [("stream", True)]


# --------------------------------------------------------------------------- fetching models


def test_models_are_fetched_without_blocking_the_loop(clean_widget_state):
    updates: list[bool] = []

    async def scenario() -> None:
        panel = make_panel(clean_widget_state)
        panel.model.observe(
            lambda _ch: updates.append(threading.current_thread() is threading.main_thread()), names="options"
        )
        panel.backend.value = "slowlist"
        task = panel.pending
        assert task is not None and not task.done()
        assert "Fetching models from slowlist" in panel.status.value
        assert panel.refresh.disabled
        for _ in range(500):  # this loop keeps running while the backend is being asked
            if SlowModels.calls:
                break
            await asyncio.sleep(0.01)
        assert SlowModels.on_main_thread == [False]  # the listing runs on the runner's thread...
        assert not task.done()  # ...and the panel's task waits for it without holding this loop
        SlowModels.release.set()
        await task
        assert {"slow-a", "slow-b"} <= set(option_values(panel.model))
        assert "2 models for slowlist" in panel.status.value
        assert not panel.refresh.disabled

    asyncio.run(scenario())
    assert updates and all(updates)  # widgets were only touched on the loop's (main) thread


def test_refresh_button_fetches_again_and_cache_is_used_otherwise(clean_widget_state):
    SlowModels.release.set()
    panel = make_panel(clean_widget_state)
    panel.backend.value = "slowlist"
    assert SlowModels.calls == 1
    panel.backend.value = "mock"
    panel.backend.value = "slowlist"  # cached
    assert SlowModels.calls == 1
    panel.refresh.click()
    assert SlowModels.calls == 2
    assert "slow-b" in option_values(panel.model)


def test_a_stale_listing_is_discarded(clean_widget_state):
    async def scenario() -> None:
        panel = make_panel(clean_widget_state)
        panel.backend.value = "slowlist"
        slow = panel.pending
        panel.backend.value = "echo"
        await panel.pending
        SlowModels.release.set()
        await slow
        assert panel.backend.value == "echo"
        assert "slow-a" not in option_values(panel.model)
        assert "models for echo" in panel.status.value

    asyncio.run(scenario())


def test_a_failed_listing_is_shown_in_the_status_line(clean_widget_state):
    panel = make_panel(clean_widget_state)
    panel.backend.value = "brokenlist"
    assert "Could not list the models of brokenlist" in panel.status.value
    assert "listing is down" in panel.status.value
    assert not panel.refresh.disabled


# --------------------------------------------------------------------------- the ask box


def answer_text(turn_widget: Any) -> str:
    answer = turn_widget.children[1]
    return "".join(o["data"]["text/markdown"] for o in answer.outputs)


def test_ask_box_streams_markdown_and_keeps_the_conversation():
    async def scenario() -> Any:
        box = widgets.ask_box(backend="mock")
        ctl = box.ttt_askbox
        ctl.prompt.value = "Explain what a list comprehension is"
        ctl.ask_button.click()
        assert ctl.prompt.value == ""  # the question moved into the transcript
        assert ctl.ask_button.disabled and not ctl.stop_button.disabled
        await ctl.task
        first = answer_text(ctl.transcript.children[0])
        assert first.startswith("## ")
        assert "\n- " in first
        assert "mock" in ctl.transcript.children[0].children[2].value  # footer: backend, model
        ctl.prompt.value = "And why does it matter?"
        ctl.ask_button.click()
        await ctl.task
        return ctl

    ctl = asyncio.run(scenario())
    assert len(ctl.transcript.children) == 2
    assert len(ctl.chat.history) == 4
    assert "Earlier you asked" in answer_text(ctl.transcript.children[1])
    assert ttt_magic.last_response is ctl.last_response
    assert not ctl.ask_button.disabled and ctl.stop_button.disabled


def test_ask_box_stop_keeps_the_partial_answer(monkeypatch):
    monkeypatch.setenv("TTT_MOCK_DELAY", "0.02")

    async def scenario() -> Any:
        ctl = widgets.AskBox(backend="mock")
        task = ctl.ask("Explain what a list comprehension is")
        for _ in range(500):
            await asyncio.sleep(0.01)
            if ctl.transcript.children and len(answer_text(ctl.transcript.children[0])) > 20:
                break
        ctl.stop_button.click()
        await task
        return ctl

    ctl = asyncio.run(scenario())
    text = answer_text(ctl.transcript.children[0])
    assert text.endswith(widgets.AskBox.STOPPED)
    partial = text[: -len(widgets.AskBox.STOPPED)].strip()
    assert len(partial) > 20
    full = ttt_magic.ask("Explain what a list comprehension is", backend="mock").text
    assert full.startswith(partial) and len(partial) < len(full)
    assert ctl.last_response.metadata.get("interrupted") is True
    assert ctl.chat.history == []  # an interrupted exchange is not remembered
    assert not ctl.busy and not ctl.ask_button.disabled


def test_ask_box_redraws_are_throttled(monkeypatch):
    async def scenario() -> tuple[Any, list[int]]:
        ctl = widgets.AskBox(backend="echo")
        draws: list[int] = []
        prompt = " ".join(f"word{i}" for i in range(400))
        task = ctl.ask(prompt)
        ctl.transcript.children[0].children[1].observe(
            lambda ch: draws.append(len(ch["new"])), names="outputs"
        )
        await task
        return ctl, draws

    ctl, draws = asyncio.run(scenario())
    assert len(draws) < 50  # 400 chunks arrived, far fewer redraws were sent
    assert answer_text(ctl.transcript.children[0]) == ctl.last_response.text


def test_ask_box_passes_panel_defaults_and_shows_failures():
    widgets.set_default("max_tokens", 5)

    async def scenario() -> Any:
        ctl = widgets.AskBox(backend="mock")
        await ctl.ask("Explain what a list comprehension is")
        await ctl.ask("Explain [fail] please")
        return ctl

    ctl = asyncio.run(scenario())
    first, second = ctl.transcript.children
    assert len(answer_text(first)) < 60  # cut by max_tokens=5 from the panel
    assert "**Error:**" in answer_text(second)
    assert "[fail]" in answer_text(second)


def test_ask_box_without_streaming_and_refusals():
    config.configure(stream=False)

    async def scenario() -> Any:
        ctl = widgets.AskBox(backend="mock")
        assert ctl.ask("   ") is None
        assert "Type a question" in ctl.status.value
        task = ctl.ask("hello there")
        assert ctl.ask("again") is None  # one answer at a time
        assert "Still answering" in ctl.status.value
        await task
        ctl.new_button.click()
        return ctl

    ctl = asyncio.run(scenario())
    assert ctl.chat.history == [] and ctl.transcript.children == ()


def test_ask_box_outside_a_loop_runs_to_the_end():
    ctl = widgets.AskBox(backend="echo")
    assert ctl.ask("plain script") is None
    assert answer_text(ctl.transcript.children[0]) == "plain script"


def test_the_throttle_the_ask_box_shares_with_the_magic():
    """One rule (notebook/throttle.py): the first text at once, then waits growing with elapsed time."""
    from ttt_magic.notebook.throttle import Throttle

    now = [0.0]
    throttle = Throttle(clock=lambda: now[0], min_interval=0.05, max_interval=5.0, pace=20)
    assert throttle.wait(10) == 0.0  # nothing drawn yet: draw at once
    throttle.mark()
    now[0] = 0.01
    assert throttle.wait(10) == pytest.approx(0.04)  # early on: at most 20 redraws a second
    assert not throttle.due(10)
    now[0] = 10.0
    throttle.mark()
    now[0] = 10.1
    assert throttle.wait(4000) == pytest.approx(0.405)  # 10.1 s in: elapsed / pace = 0.505 s after 10.0
    now[0] = 1000.0
    throttle.mark()
    assert throttle.wait(100) == pytest.approx(5.0)  # capped


def test_without_ipywidgets_the_error_says_how_to_get_them(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    assert widgets.WIDGETS_HINT.startswith("Install ipywidgets")
    with pytest.raises(ImportError, match="ttt-magic\\[widgets\\]"):
        widgets.panel()


def test_ask_box_can_carry_the_settings_panel(clean_widget_state):
    box = widgets.ask_box(settings=True)
    ctl = box.ttt_askbox
    assert ctl.settings is not None
    clean_widget_state.append(ctl.settings)
    ctl.settings.backend.value = "echo"
    assert config.get_config().default_backend == "echo"
    assert widgets.AskBox(backend="echo").settings is None


def test_request_defaults_follow_configure(clean_widget_state):
    """temperature/max_tokens/system are configuration keys: the panel binds them like the rest."""
    panel = make_panel(clean_widget_state)
    panel.use_temperature.value = True
    panel.temperature.value = 0.4
    assert config.get_config().temperature == 0.4
    config.configure(temperature=1.5)
    assert panel.temperature.value == 1.5 and panel.use_temperature.value
    assert widgets.request_defaults() == {"temperature": 1.5}
    config.configure(temperature=None)
    assert not panel.use_temperature.value and panel.temperature.disabled


# --------------------------------------------------------------------------- the cache checkbox (issue #10)


def test_cache_checkbox_is_bound_to_the_cache_setting(clean_widget_state, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    panel = make_panel(clean_widget_state)
    assert panel.cache.value is False and "ttt-cache" in panel.cache._dom_classes
    panel.cache.value = True
    assert config.get_config().cache is True
    first = ttt_magic.ask("panel cache question", backend="mock")
    again = ttt_magic.ask("panel cache question", backend="mock")
    assert again.metadata.get("cached") is True and again == first
    panel.cache.value = False
    assert config.get_config().cache is False
    assert "cached" not in ttt_magic.ask("panel cache question", backend="mock").metadata
    from ttt_magic import cache

    cache.close_all()


def test_cache_checkbox_follows_configure_and_keeps_a_configured_file(clean_widget_state, tmp_path):
    panel = make_panel(clean_widget_state)
    path = str(tmp_path / "mine.sqlite3")
    config.configure(cache=path)
    assert panel.cache.value is True
    panel.cache.value = False
    assert config.get_config().cache is False
    panel.cache.value = True  # on again: the same file, not the default one
    assert config.get_config().cache == path
    config.reset()
    assert panel.cache.value is False
    from ttt_magic import cache

    cache.close_all()
