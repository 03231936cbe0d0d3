"""App mode: a notebook served by Voilà as a page with its widgets and outputs, code hidden.

For design reviews and classes: ``present()`` (and the ``xdplab present`` command that calls it)
starts Voilà on 127.0.0.1 with a token, for one notebook (default: the tour).  Voilà executes the
notebook in a fresh kernel whose working directory is the notebook's folder, so the notebooks'
relative paths (``../data/programs/...``) work as in JupyterLab.

Nothing here imports Voilà: it runs as a separate process (``python -m voila``), so the library
stays importable without it (it is in the ``app`` extra; ``binder/`` installs it).
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import webbrowser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_NOTEBOOK = "notebooks/00-tour.ipynb"
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def resolve_notebook(notebook: str | os.PathLike[str]) -> Path:
    """The notebook as an absolute path: as given, or relative to the repository root.
    Raises FileNotFoundError naming both places looked at."""
    p = Path(notebook)
    for candidate in (p, ROOT / p):
        if candidate.is_file() and candidate.suffix == ".ipynb":
            return candidate.resolve()
    raise FileNotFoundError(f"notebook {str(notebook)!r} not found (looked in {Path.cwd()} and {ROOT}); "
                            f"give a path to an .ipynb file, e.g. {DEFAULT_NOTEBOOK}")


def voila_command(notebook: Path, *, port: int, token: str) -> list[str]:
    """The Voilà command line: loopback only, a token, no browser (present() opens it once the
    server answers), sources stripped, no update or news checks."""
    return [sys.executable, "-m", "voila", str(notebook), "--no-browser", f"--port={port}",
            f"--Voila.ip={HOST}", "--Voila.port_retries=0", f"--token={token}",
            "--VoilaConfiguration.strip_sources=True", "--VoilaConfiguration.show_tracebacks=True"]


def voila_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The server's environment: the repo's jupyter_config/ on the config path (no announcements,
    no update checks; the user's own config dir still wins), and no inherited
    MPLBACKEND (with Agg the kernel would draw no inline figures)."""
    env = dict(os.environ if base is None else base)
    env.pop("MPLBACKEND", None)
    paths = [str(ROOT / "jupyter_config"), *filter(None, env.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep))]
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def wait_until_up(url: str, timeout_s: float = 60.0, proc: subprocess.Popen | None = None) -> bool:
    """Poll ``url`` until the server answers (any HTTP status) or ``timeout_s`` passes."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            urllib.request.urlopen(url, timeout=2)
            return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            time.sleep(0.25)
    return False


def start(notebook: str | os.PathLike[str] = DEFAULT_NOTEBOOK, *, port: int | None = None,
          token: str | None = None, quiet: bool = False) -> tuple[subprocess.Popen, str]:
    """Start Voilà for ``notebook`` and return (process, URL with token) without waiting.
    The caller owns the process (terminate it when done)."""
    nb = resolve_notebook(notebook)
    port = port or free_port()
    token = token or secrets.token_urlsafe(16)
    out = subprocess.DEVNULL if quiet else None
    proc = subprocess.Popen(voila_command(nb, port=port, token=token), cwd=nb.parent, env=voila_env(),
                            stdout=out, stderr=out)
    return proc, f"http://{HOST}:{port}/?token={token}"


def present(notebook: str | os.PathLike[str] = DEFAULT_NOTEBOOK, *, port: int | None = None,
            open_browser: bool = True, token: str | None = None) -> int:
    """Serve ``notebook`` as an app (Voilà, code hidden) on 127.0.0.1 with a token, until Ctrl-C.

    Prints the URL (with its token), opens it in a browser once the server answers unless
    ``open_browser=False``, and returns the server's exit status."""
    proc, url = start(notebook, port=port, token=token)
    print(f"xdplab: presenting {resolve_notebook(notebook).name} at {url} (Ctrl-C to stop)", file=sys.stderr)
    if open_browser:
        def _open() -> None:
            if wait_until_up(url, proc=proc):
                webbrowser.open(url)
        threading.Thread(target=_open, daemon=True).start()
    def _on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return _stop(proc)
    finally:
        if proc.poll() is None:          # never leave the server behind
            _stop(proc)
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def _stop(proc: subprocess.Popen) -> int:
    proc.terminate()
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
