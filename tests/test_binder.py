"""The Binder set-up, built the way mybinder.org (repo2docker) builds it, as far as this machine allows.

repo2docker, for a ``binder/`` folder holding requirements.txt, runtime.txt,
postBuild and start:

1. makes one environment with runtime.txt's Python, where Jupyter and the kernel both run;
2. runs ``pip install -r binder/requirements.txt`` in the repository's root folder;
3. runs ``binder/postBuild`` there (after the install, as the notebook user);
4. at every session start runs ``binder/start <the server command>``, which must ``exec "$@"``.

Here: a copy of the repository's files (what git tracks or would track), a fresh
virtual environment from runtime.txt's Python (pyenv's or the system's
``python3.X``; the closest version found when that one is missing, with a
warning), then steps 2-4 with ``jupyter nbconvert --execute`` as the command,
offline: no provider key, HOME in a temporary folder, and every HTTP proxy
variable pointing at a closed loopback port so anything that tried the network
would fail. Differences from mybinder.org (no container, pip's cache is used,
``--no-compile``) are listed in binder/README.md.

The build takes one to two minutes, so the environment is made once for this module.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pytest

from tests.fakes import PROVIDER_VARS

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[1]
BINDER = REPO / "binder"
NOTHING_LISTENS = "http://127.0.0.1:9"  # the discard port: nothing answers there


# --------------------------------------------------------------------------- helpers


def runtime_version(text: str) -> tuple[int, int]:
    """``python-3.11`` (repo2docker's runtime.txt) -> (3, 11)."""
    match = re.fullmatch(r"python-(\d+)\.(\d+)(?:\.\d+)?", text.strip())
    if not match:
        raise ValueError(f"runtime.txt must read python-X.Y, not {text.strip()!r}")
    return int(match.group(1)), int(match.group(2))


def _works(python: str) -> tuple[int, int] | None:
    """The (major, minor) of a Python that runs, or None (a pyenv shim may exist and refuse)."""
    try:
        out = subprocess.run(
            [python, "-c", "import sys, venv; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    major, minor = out.stdout.split()
    return int(major), int(minor)


def find_python(wanted: tuple[int, int]) -> tuple[str, tuple[int, int]]:
    """An interpreter for ``wanted``: ``python3.X`` on PATH, then pyenv's versions; else the closest."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path(real_home()) / ".pyenv")
    found: dict[tuple[int, int], str] = {}
    candidates = [shutil.which(f"python{wanted[0]}.{wanted[1]}")]
    candidates += sorted(
        str(p) for p in pyenv_root.glob("versions/3.*/bin/python3.*") if p.name[-1].isdigit()
    )
    candidates += [shutil.which(f"python3.{minor}") for minor in range(8, 20)]
    for path in filter(None, candidates):
        version = _works(path)
        if version and version[0] == 3 and version not in found:
            found[version] = path
        if version == wanted:
            return path, version
    if not found:
        raise RuntimeError("no working python3.X interpreter found")
    closest = min(found, key=lambda v: (abs(v[1] - wanted[1]), -v[1]))
    return found[closest], closest


_NOT_IN_A_CLONE = {
    ".git",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    ".ipynb_checkpoints",
    "test-artifacts",
}


def repo_files() -> list[str]:
    """What a clone would hold: tracked files plus new ones not ignored (working-tree contents).

    Without git (an unpacked archive), every file outside the usual local-only folders.
    """
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        files = []
        for folder, dirs, names in os.walk(REPO):
            dirs[:] = [
                d for d in dirs if d not in _NOT_IN_A_CLONE and not d.startswith((".venv", "__pycache__"))
            ]
            files += [str((Path(folder) / name).relative_to(REPO)) for name in names]
        return files
    return [name for name in out.stdout.decode().split("\0") if name and (REPO / name).is_file()]


def real_home() -> str:
    """The home of the user running the tests (the suite's HOME is a temporary folder)."""
    return pwd.getpwuid(os.getuid()).pw_dir


def base_env(env_dir: Path, home: Path) -> dict[str, str]:
    """Like a Binder session: the environment's bin first, no key, no TTT_*, no outer venv, fresh HOME."""
    outer_venv = Path(sys.prefix) / "bin"
    path = [str(env_dir / "bin")] + [
        p for p in os.environ.get("PATH", "").split(os.pathsep) if p and Path(p) != outer_venv
    ]
    env = {
        k: v
        for k, v in os.environ.items()
        if not (
            k.startswith(("TTT_", "JUPYTER_", "JPY_", "IPYTHON", "PYTHON", "VIRTUAL_ENV", "CONDA"))
            or k in PROVIDER_VARS
        )
    }
    env.update(
        {
            "PATH": os.pathsep.join(path),
            "VIRTUAL_ENV": str(env_dir),
            "HOME": str(home),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        }
    )
    return env


def offline(env: dict[str, str]) -> dict[str, str]:
    """The same, with every proxy variable at a closed loopback port: no request can leave the machine."""
    env = dict(env)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[name] = NOTHING_LISTENS
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost,::1"
    env["OLLAMA_HOST"] = NOTHING_LISTENS  # no local Ollama is asked either
    return env


def run(cmd: list[str], *, cwd: Path, env: dict[str, str], log: Path, timeout: float) -> float:
    """Run ``cmd``, its output appended to ``log``; the seconds it took. Fails the test on a non-zero exit."""
    started = time.monotonic()
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    took = time.monotonic() - started
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-60:])
        pytest.fail(f"{' '.join(cmd)} exited with {proc.returncode} after {took:.0f} s:\n{tail}")
    return took


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children(pid: int) -> set[int]:
    """Process ids whose parent is ``pid`` (Linux /proc): a server's kernels."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        if stat and int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


def get(url: str, timeout: float) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


# --------------------------------------------------------------------------- the build


@pytest.fixture(scope="module")
def binder(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("binder")
    checkout, env_dir, home = base / "repo", base / "env", base / "home"
    home.mkdir()
    log = base / "build.log"
    timings: dict[str, float] = {}

    started = time.monotonic()
    for name in repo_files():
        target = checkout / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)  # keeps the executable bit of postBuild and start
    timings["copy"] = time.monotonic() - started

    wanted = runtime_version((BINDER / "runtime.txt").read_text())
    python, version = find_python(wanted)
    if version != wanted:
        warnings.warn(
            f"runtime.txt asks for Python {wanted[0]}.{wanted[1]}, not available here: "
            f"built with {version[0]}.{version[1]} ({python})",
            stacklevel=1,
        )
    started = time.monotonic()
    subprocess.run([python, "-m", "venv", str(env_dir)], check=True, timeout=120)
    timings["venv"] = time.monotonic() - started

    env = base_env(env_dir, home)
    # repo2docker: `${KERNEL_PYTHON_PREFIX}/bin/pip install --no-cache-dir -r "binder/requirements.txt"`
    # in the repository's folder. Here pip runs with the real HOME, so this machine's pip settings
    # and cache apply (PyPI is slow to reach), and bytecode is not compiled ahead (Python compiles
    # on first import instead): neither changes what is installed.
    install_env = dict(env, HOME=real_home())
    timings["pip install"] = run(
        [str(env_dir / "bin" / "pip"), "install", "--no-compile", "-r", "binder/requirements.txt"],
        cwd=checkout,
        env=install_env,
        log=log,
        timeout=900,
    )
    # repo2docker: `chmod +x binder/postBuild && ./binder/postBuild`, in the repository's folder
    timings["postBuild"] = run(["./binder/postBuild"], cwd=checkout, env=offline(env), log=log, timeout=300)
    return {
        "checkout": checkout,
        "env_dir": env_dir,
        "env": offline(env),
        "log": log,
        "python": python,
        "version": version,
        "wanted": wanted,
        "timings": timings,
    }


# --------------------------------------------------------------------------- the checks


def test_runtime_txt_names_a_python_repo2docker_builds_in_one_environment(binder):
    wanted = binder["wanted"]
    # repo2docker gives Pythons older than 3.7 a separate kernel environment, where the
    # server's packages (jupyterlab, voila) would not be; 3.7 and later share one.
    assert wanted >= (3, 7), wanted
    requires = re.search(r'requires-python\s*=\s*">=\s*(\d+)\.(\d+)"', (REPO / "pyproject.toml").read_text())
    assert requires and wanted >= (int(requires.group(1)), int(requires.group(2)))
    out = subprocess.run(
        ["python", "-c", "import sys; print(*sys.version_info[:2])"],
        env=binder["env"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert tuple(map(int, out.stdout.split())) == binder["version"]


def test_requirements_install_this_checkout_with_widgets_and_voila(binder):
    code = (
        "import importlib.metadata as md, json, ttt_magic, ipywidgets, voila, jupyterlab, pandas\n"
        "print(json.dumps({'ttt': ttt_magic.__file__, 'ipywidgets': md.version('ipywidgets'),"
        " 'voila': md.version('voila')}))"
    )
    out = subprocess.run(
        ["python", "-c", code], env=binder["env"], cwd=binder["checkout"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    # editable: the package is the checkout's own source, as the requirements' "-e ." says
    assert Path(found["ttt"]).resolve().is_relative_to(binder["checkout"].resolve()), found
    assert int(found["ipywidgets"].split(".")[0]) >= 8


def test_voila_server_extension_is_enabled_for_the_app_link(binder):
    out = subprocess.run(
        ["jupyter", "server", "extension", "list"], env=binder["env"], capture_output=True, text=True
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)
    assert re.search(r"voila\.server_extension\s+enabled", text), text


def test_start_sets_the_mock_default_and_execs_the_command(binder):
    checkout = binder["checkout"]
    code = "import os; print(os.getpid(), os.environ.get('TTT_DEFAULT_BACKEND'))"
    proc = subprocess.Popen(
        ["./binder/start", "python", "-c", code],
        cwd=checkout,
        env=binder["env"],
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    pid, backend = out.split()
    assert int(pid) == proc.pid, "binder/start must exec its arguments (the server must replace it)"
    assert backend == "mock"
    # a backend chosen by the user's own environment is kept
    out = subprocess.run(
        ["./binder/start", "python", "-c", code],
        cwd=checkout,
        env=dict(binder["env"], TTT_DEFAULT_BACKEND="echo"),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split()[1] == "echo"


def test_quickstart_executes_offline_under_start(binder, tmp_path):
    checkout, env = binder["checkout"], binder["env"]
    assert not [name for name in env if name.endswith(("_API_KEY", "_TOKEN")) and env[name]], (
        "a key leaked in"
    )
    took = run(
        [
            "./binder/start",
            "jupyter",
            "nbconvert",
            "--execute",
            "notebooks/01_quickstart.ipynb",
            "--to",
            "notebook",
            "--output-dir",
            str(tmp_path),
            "--output",
            "executed",
            "--ExecutePreprocessor.timeout=120",
        ],
        cwd=checkout,
        env=env,
        log=binder["log"],
        timeout=600,
    )
    binder["timings"]["start + nbconvert --execute"] = took
    print("binder build and run, seconds:", {k: round(v, 1) for k, v in binder["timings"].items()})

    nb = json.loads((tmp_path / "executed.ipynb").read_text())
    code_cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert len(code_cells) >= 8
    assert all(isinstance(c.get("execution_count"), int) for c in code_cells), "a cell did not run"
    outputs = [o for c in code_cells for o in c["outputs"]]
    errors = [o for o in outputs if o["output_type"] == "error"]
    assert not errors, [f"{o['ename']}: {o['evalue']}" for o in errors]
    stderr = "".join(
        "".join(o["text"]) for o in outputs if o["output_type"] == "stream" and o["name"] == "stderr"
    )
    assert "Traceback" not in stderr, stderr

    def text_of(cell: dict) -> str:
        parts = []
        for out in cell["outputs"]:
            if "text" in out:
                parts.append("".join(out["text"]))
            for value in out.get("data", {}).values():
                parts.append(value if isinstance(value, str) else "".join(value))
        return "\n".join(parts)

    asks = [c for c in code_cells if "".join(c["source"]).lstrip().startswith(("%%ask", "%ask"))]
    assert len(asks) >= 6
    for cell in asks:
        assert text_of(cell).strip(), f"no answer shown for {''.join(cell['source'])!r}"
    answers = "\n".join(text_of(c) for c in asks)
    assert "list comprehension" in answers.lower()  # the first question's answer
    assert "mock" in answers  # footers name the backend: the offline mock, no key needed


def test_binder_links_jupyterlab_and_the_voila_app_are_served(binder, tmp_path):
    """What the Binder badges open: /lab, and /voila/render/notebooks/06_askbox_app.ipynb (urlpath=...).

    mybinder.org starts the single-user server through binder/start; here ``jupyter server``
    (with the same extensions: jupyterlab, voila) on 127.0.0.1, without a token.
    """
    checkout, port = binder["checkout"], free_port()
    args = ["./binder/start", "jupyter", "server", "--no-browser", "--ServerApp.ip=127.0.0.1"]
    args += [f"--ServerApp.port={port}", "--ServerApp.port_retries=0", "--IdentityProvider.token="]
    args += [f"--ServerApp.root_dir={checkout}", "--ServerApp.password="]
    args += ["--allow-root"] if os.geteuid() == 0 else []
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(args, cwd=checkout, env=binder["env"], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    kernels: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while get_status(url) != 200:
            assert server.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "jupyter server did not start:\n" + log.read_text()[-3000:]
            time.sleep(0.3)
        status, page = get(f"{url}/lab", timeout=30)
        assert status == 200 and "JupyterLab" in page, (status, page[:500])

        # Voila runs the notebook in a kernel while rendering the page: code stripped, widgets in
        status, page = get(f"{url}/voila/render/notebooks/06_askbox_app.ipynb", timeout=120)
        kernels = children(server.pid)
        assert status == 200, (status, page[-2000:])
        assert "Ask a model: a notebook app" in page
        assert "settings = ttt_magic.configure" not in page, "Voila showed the notebook's code"
        assert "Traceback" not in page, page[-3000:]
        assert page.count("application/vnd.jupyter.widget-view+json") >= 2  # the panel and the ask box
    finally:
        kernels |= children(server.pid) if server.poll() is None else set()
        server.send_signal(signal.SIGTERM)  # the server shuts its kernels down
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in kernels) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [pid for pid in kernels if alive(pid)]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
    assert not left, f"kernels {left} outlived the server"


def get_status(url: str) -> int | None:
    try:
        return get(f"{url}/api/status", timeout=2)[0]
    except (urllib.error.URLError, OSError):
        return None
