"""A throwaway JupyterLab server for browser tests.

Everything the server and its kernels write (config, data, runtime, settings,
workspaces, HOME) lives under one temporary folder, so a test run never reads
or changes the developer's own Jupyter setup, and the kernel is this venv's
Python with the repository importable. The server listens on 127.0.0.1 only,
without a token, with update checks and the news toast switched off.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
KERNEL_NAME = "ttt-test"

#: Variables that must not leak from the developer's shell into the kernel.
_SCRUB_PREFIXES = (
    "TTT_",
    "OPENAI_",
    "ANTHROPIC_",
    "GEMINI_",
    "GOOGLE_API",
    "OPENROUTER_",
    "OLLAMA_",
    "JUPYTER_",
    "JPY_",
    "IPYTHONDIR",
)


def free_port() -> int:
    """A port nobody listens on right now (there is a small race; the server fails fast if lost)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_notebook(root: Path, name: str, cells: list[str]) -> Path:
    """Write ``name`` (".ipynb" added when missing) into the lab's root folder: one code cell a string."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "ttt test", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    path = Path(root) / (name if name.endswith(".ipynb") else name + ".ipynb")
    nbformat.write(nb, str(path))
    return path


@dataclass
class LabServer:
    """A running JupyterLab: where it listens and where its files are."""

    port: int
    base: Path
    root: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def notebook_url(self, name: str) -> str:
        name = name if name.endswith(".ipynb") else name + ".ipynb"
        return f"{self.url}/lab/tree/{name}"

    def write_notebook(self, name: str, cells: list[str]) -> Path:
        return write_notebook(self.root, name, cells)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def shutdown_kernels(self) -> None:
        """Shut down every kernel of this server (each test's notebook starts its own)."""
        try:
            with urllib.request.urlopen(f"{self.url}/api/kernels", timeout=5) as resp:
                kernels = json.loads(resp.read())
            for kernel in kernels:
                request = urllib.request.Request(f"{self.url}/api/kernels/{kernel['id']}", method="DELETE")
                urllib.request.urlopen(request, timeout=10).close()
        except (urllib.error.URLError, OSError, ValueError):
            pass  # a server that is gone has no kernels to leak

    def stop(self) -> None:
        """Stop the server we started (it shuts its kernels down on SIGTERM)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}


def start_lab(base: Path, *, kernel_env: dict[str, str] | None = None, timeout: float = 60.0) -> LabServer:
    """Start JupyterLab with all its state under ``base`` and wait until ``/api/status`` answers."""
    base = Path(base)
    dirs = {
        name: base / name for name in ("config", "data", "runtime", "settings", "workspaces", "root", "home")
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)

    # The kernel: this interpreter, the repository on its path, HOME in the temp folder.
    env_for_kernel = {
        "HOME": str(dirs["home"]),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "TTT_MOCK_DELAY": "0.05",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    env_for_kernel.update(kernel_env or {})
    spec_dir = dirs["data"] / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "ttt test",
                "language": "python",
                "env": env_for_kernel,
            },
            indent=1,
        )
    )

    # Silence the "would you like to receive news?" toast.
    notify = dirs["settings"] / "@jupyterlab" / "apputils-extension"
    notify.mkdir(parents=True, exist_ok=True)
    (notify / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))

    env = _clean_env()
    env.update(
        {
            "JUPYTER_CONFIG_DIR": str(dirs["config"]),
            "JUPYTER_DATA_DIR": str(dirs["data"]),
            "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
            "JUPYTER_PREFER_ENV_PATH": "0",  # our kernelspec, not the venv's python3, wins
            "IPYTHONDIR": str(dirs["home"] / ".ipython"),
            "HOME": str(dirs["home"]),
        }
    )
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={dirs['root']}",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        "--ServerApp.open_browser=False",
        "--ServerApp.disable_check_xsrf=True",  # lets the fixture shut kernels down over REST
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        f"--LabApp.user_settings_dir={dirs['settings']}",
        f"--LabApp.workspaces_dir={dirs['workspaces']}",
        f"--MultiKernelManager.default_kernel_name={KERNEL_NAME}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")
    log_path = base / "server.log"
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(args, cwd=dirs["root"], env=env, stdout=log, stderr=subprocess.STDOUT)
    server = LabServer(port=port, base=base, root=dirs["root"], process=process, log_path=log_path)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/api/status", timeout=2) as resp:
                if resp.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(
                f"JupyterLab did not answer /api/status in {timeout:.0f} s:\n{server.log_tail()}"
            )
        time.sleep(0.2)


def status(server: LabServer) -> dict[str, Any]:
    with urllib.request.urlopen(f"{server.url}/api/status", timeout=5) as resp:
        return json.loads(resp.read())
