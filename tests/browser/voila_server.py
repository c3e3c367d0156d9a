"""A throwaway Voila server for the browser tests, serving one notebook of the repository.

Like ``lab_server.py``: it listens on 127.0.0.1 and a free port only; Jupyter's
config, data and runtime folders and HOME live in a temporary folder; provider
keys and ``TTT_*`` variables of the developer's shell are dropped (so the page
runs offline on what the notebook itself configures). It cannot open a browser:
``--no-browser``, and ``BROWSER`` points at ``false`` in case anything asks
``webbrowser`` anyway.

``stop()`` sends SIGTERM (Voila then shuts its kernels down), waits, and kills
whatever the server or its kernels left running, by process id: the kernels'
ids are recorded while the server runs (they are its children).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from lab_server import REPO, _clean_env, free_port

_RUNNING = re.compile(r"Voil\S* is running at:\s*(http://127\.0\.0\.1:(\d+)/\S*)")


def _children(pid: int) -> set[int]:
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces or parentheses, so split after the last ')'
        fields = stat[stat.rindex(")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


@dataclass
class VoilaServer:
    port: int
    base: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    kernel_pids: set[int] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def note_kernels(self) -> set[int]:
        """Record the server's child processes (its kernels) so that ``stop()`` can check on them."""
        if self.process.poll() is None:
            self.kernel_pids |= _children(self.process.pid)
        return self.kernel_pids

    def stop(self, timeout: float = 20.0) -> list[int]:
        """Stop the server and its kernels; the ids of any that had to be killed."""
        self.note_kernels()
        killed: list[int] = []
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # Voila's handler shuts its kernels down first
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
                killed.append(self.process.pid)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in self.kernel_pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in sorted(self.kernel_pids):
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
        return killed


def start_voila(
    notebook: Path, base: Path, *, env: dict[str, str] | None = None, timeout: float = 60.0
) -> VoilaServer:
    """Serve ``notebook`` with Voila, state under ``base``; returns once the page's URL answers."""
    base = Path(base)
    dirs = {name: base / name for name in ("config", "data", "runtime", "home")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    full_env = _clean_env()
    full_env.update(
        {
            "JUPYTER_CONFIG_DIR": str(dirs["config"]),
            "JUPYTER_DATA_DIR": str(dirs["data"]),
            "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
            "IPYTHONDIR": str(dirs["home"] / ".ipython"),
            "HOME": str(dirs["home"]),
            "BROWSER": "false",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        }
    )
    full_env.update(env or {})
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "voila",
        str(notebook),
        "--no-browser",
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
        "--Voila.port_retries=0",
        "--show_tracebacks=True",
    ]
    log_path = base / "voila.log"
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(
        args, cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    server = VoilaServer(port=port, base=base, process=process, log_path=log_path)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"voila exited with code {process.returncode}:\n{server.log_tail()}")
        match = _RUNNING.search(server.log())
        if match:
            if int(match.group(2)) != port:
                server.stop()
                raise RuntimeError(f"voila listens on {match.group(1)}, not port {port}")
            try:  # a static file: asking for the page itself would start a kernel
                with urllib.request.urlopen(f"{server.url}voila/static/voila.js", timeout=2) as resp:
                    if resp.status == 200:
                        return server
            except urllib.error.HTTPError as exc:
                if exc.code < 500:  # answering at all means listening
                    return server
            except (urllib.error.URLError, OSError):
                pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"voila did not start in {timeout:.0f} s:\n{server.log_tail()}")
        time.sleep(0.2)
