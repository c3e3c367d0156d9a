"""A real IPython kernel (the project's Python) for notebook tests, with every iopub message recorded.

Tests talk to it through ``jupyter_client`` directly, not through a notebook
file, so they can see each ``display_data`` / ``update_display_data``, the
``execute_reply`` payload (``set_next_input``), and can interrupt the kernel
mid-cell like Kernel -> Interrupt does.
"""

from __future__ import annotations

import os
import queue
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes import PROVIDER_VARS as _DROP


def isolated_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for a child process: no keys, no TTT_* from the developer, fresh HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTT_") and k not in _DROP}
    env.update(
        HOME=str(home),
        OLLAMA_HOST="http://127.0.0.1:9",
        TTT_MOCK_DELAY="0",
        PYTHONDONTWRITEBYTECODE="1",
        JUPYTER_PLATFORM_DIRS="1",
    )
    env.update(extra)
    return env


@dataclass
class Execution:
    """What one execute_request produced."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    reply: dict[str, Any] = field(default_factory=dict)

    def of_type(self, *kinds: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["msg_type"] in kinds]

    @property
    def displays(self) -> list[dict[str, Any]]:
        return self.of_type("display_data", "update_display_data")

    @property
    def stdout(self) -> str:
        return "".join(
            m["content"]["text"] for m in self.of_type("stream") if m["content"]["name"] == "stdout"
        )

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [m["content"] for m in self.of_type("error")]

    @property
    def payload(self) -> list[dict[str, Any]]:
        return self.reply.get("content", {}).get("payload", [])

    def final(self, display_id: str | None = None) -> dict[str, Any]:
        """The last data sent for a display (by default the last display of the cell)."""
        shown = self.displays
        if display_id is not None:
            shown = [m for m in shown if m["content"].get("transient", {}).get("display_id") == display_id]
        return shown[-1]["content"]


class Kernel:
    """Start, run code in, interrupt and stop one kernel."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        from jupyter_client import KernelManager

        self.km = KernelManager()
        self.km.kernel_cmd = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        self.km.start_kernel(cwd=str(cwd), env=env, extra_arguments=["--IPKernelApp.iopub_data_rate_limit=0"])
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def execute(self, code: str, timeout: float = 60, on_message: Any = None) -> Execution:
        msg_id = self.kc.execute(code, allow_stdin=False)
        result = Execution()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no idle within {timeout} s for {code[:60]!r}")
            try:
                msg = self.kc.get_iopub_msg(timeout=remaining)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "status":
                if msg["content"]["execution_state"] == "idle":
                    break
                continue
            if kind == "execute_input":
                continue
            result.messages.append(msg)
            if on_message is not None:
                on_message(msg)
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                result.reply = reply
                break
        return result

    def ok(self, code: str, timeout: float = 60) -> Execution:
        """Execute and fail loudly on an error (with the traceback)."""
        result = self.execute(code, timeout)
        if result.errors:
            tb = "\n".join(result.errors[0].get("traceback", []))
            raise AssertionError(f"cell failed: {code[:80]!r}\n{tb}")
        return result

    def interrupt(self) -> None:
        self.km.interrupt_kernel()

    def stop(self) -> None:
        try:
            self.kc.stop_channels()
        finally:
            self.km.shutdown_kernel(now=True)
