"""Execute a course notebook once per test session (nbclient, real kernel), with a display hook
that checks every matplotlib figure the notebook shows (xdplab.viz.figure_problems) and records
what it finds.  Shared by tests/test_notebooks.py and tests/test_figures.py so that each
notebook runs once even when both files are collected."""
from __future__ import annotations

import functools
import json
import os
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
REPORT = "XDPLAB-FIGURE-REPORT:"

# Runs first in the kernel (not stored in the notebook): wrap the PNG formatter for Figure so
# every figure displayed -- by plt.show(), a cell's value, or Output.append_display_data -- is
# checked with the renderer before it is turned into an image.
HOOK = """
import matplotlib.figure as _mf
from IPython import get_ipython as _gi
from xdplab.viz.figcheck import figure_problems as _fp
_xdplab_figures = []
_fmt = _gi().display_formatter.formatters["image/png"]
_orig = _fmt.lookup_by_type(_mf.Figure)
def _checked(fig, *a, **kw):
    _xdplab_figures.append({"title": " | ".join(ax.get_title() for ax in fig.axes if ax.get_title()),
                            "problems": _fp(fig)})
    return _orig(fig, *a, **kw)
_fmt.for_type(_mf.Figure, _checked)
"""
DUMP = f"""
import json as _json
print({REPORT!r} + _json.dumps(_xdplab_figures))
"""


COURSE = ("00-tour", "01-bpf-and-bpf-patch", "02-unrolling", "03-timestamps", "04-metadata-delivery",
          "05-cost-and-designs", "06-design-review", "07-timeline")


@functools.lru_cache(maxsize=None)
def _all() -> dict:
    """Execute every course notebook, two at a time (the CI runner has two cores; a notebook
    spends much of its time starting its kernel), and keep the results (or the error)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(name: str):
        try:
            return _execute(name)
        except Exception as exc:      # re-raised by execute(name), in the test of that notebook
            return exc
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(COURSE, pool.map(one, COURSE)))


def execute(name: str):
    """(executed notebook without the injected cells, figure reports, seconds) for ``name``."""
    result = _all()[name] if name in COURSE else _execute(name)
    if isinstance(result, Exception):
        raise result
    return result


def _execute(name: str):
    import time
    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    # after the setup cell: its %matplotlib inline registers the PNG printer the hook wraps
    setup = next(i for i, c in enumerate(nb.cells) if c.get("id", "").endswith("-setup"))
    nb.cells.insert(setup + 1, nbformat.v4.new_code_cell(HOOK))
    nb.cells.append(nbformat.v4.new_code_cell(DUMP))
    for i, c in enumerate(nb.cells):
        c.setdefault("id", f"injected-{i}")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}   # never Agg in the kernel
    home = tempfile.mkdtemp(prefix="xdplab-nb-home-")
    env.update(HOME=home, JUPYTER_PLATFORM_DIRS="1")
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NB_DIR)}})
    t0 = time.perf_counter()
    client.execute(env=env)              # the kernel's environment, without touching ours
    seconds = time.perf_counter() - t0
    dump = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("name") == "stdout")
    figures = json.loads(dump.split(REPORT, 1)[1])
    nb.cells = nb.cells[:setup + 1] + nb.cells[setup + 2:-1]
    return nb, figures, seconds


def cell(nb, cell_id: str):
    for c in nb.cells:
        if c.get("id") == cell_id:
            return c
    raise KeyError(f"no cell {cell_id!r}")


def text(nb, cell_id: str) -> str:
    """What a cell printed (stdout) plus its plain-text results."""
    out = []
    for o in cell(nb, cell_id).outputs:
        if o.get("name") == "stdout":
            out.append(o.get("text", ""))
        elif "data" in o and "text/plain" in o["data"]:
            out.append(o["data"]["text/plain"])
    return "".join(out)
