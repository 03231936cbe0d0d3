"""Binder: a fresh venv built from binder/ alone runs postBuild and executes the tour."""
from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_binder_files():
    req = (ROOT / "binder" / "requirements.txt").read_text().split()
    assert "-e" in req and req[-1] == "."
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
    assert os.access(ROOT / "binder" / "postBuild", os.X_OK)
    readme = (ROOT / "README.md").read_text()
    assert "mybinder.org/v2/gh/" in readme and "urlpath=lab%2Ftree%2Fnotebooks%2F00-tour.ipynb" in readme


@pytest.mark.skipif(os.environ.get("XDPLAB_SKIP_BINDER") == "1", reason="XDPLAB_SKIP_BINDER=1")
def test_fresh_venv_from_binder_runs_the_tour(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info",
                                                              ".pytest_cache", ".hypothesis"))
    env_dir = tmp_path / "binder-env"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "VIRTUAL_ENV", "PYTHONPATH")}
    env.update(HOME=str(tmp_path / "home"), JUPYTER_PLATFORM_DIRS="1",
               PATH=f"{env_dir / 'bin'}:{env.get('PATH', '')}")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"], cwd=repo,
                   env=env, check=True, timeout=1500)
    subprocess.run(["./binder/postBuild"], cwd=repo, env=env, check=True, timeout=300)
    out = tmp_path / "tour.ipynb"
    subprocess.run([str(env_dir / "bin" / "jupyter"), "nbconvert", "--to", "notebook", "--execute",
                    "--ExecutePreprocessor.timeout=600", "--output", str(out), "notebooks/00-tour.ipynb"],
                   cwd=repo, env=env, check=True, timeout=900)
    assert "image/png" in out.read_text() and "widget-view" in out.read_text()
    # the Binder venv's own interpreter (not pytest's): the version runtime.txt names, and the
    # xdplab it imports is the repository copy installed by requirements.txt's "-e ."
    want = (ROOT / "binder" / "runtime.txt").read_text().strip().removeprefix("python-")
    probe = subprocess.run([str(py), "-c", "import sys, xdplab; print('%d.%d' % sys.version_info[:2]); "
                            "print(xdplab.__file__)"], cwd=tmp_path, env=env, check=True, capture_output=True,
                           text=True, timeout=120).stdout.split("\n")
    assert probe[0] == want, (probe[0], want)
    assert Path(probe[1]).resolve().is_relative_to(repo.resolve()), probe[1]
