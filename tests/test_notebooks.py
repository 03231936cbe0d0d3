"""Every notebook executes top to bottom in a real kernel and shows a widget and a figure."""
from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WS = "application/vnd.jupyter.widget-state+json"


def test_all_seven_notebooks_are_there_and_stored_without_outputs():
    names = [p.stem for p in NOTEBOOKS]
    assert names == ["00-tour", "01-bpf-and-bpf-patch", "02-unrolling", "03-timestamps",
                     "04-metadata-delivery", "05-cost-and-designs", "06-design-review"]
    for p in NOTEBOOKS:
        nb = json.loads(p.read_text())
        assert "widgets" not in nb.get("metadata", {})
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, p.name


def _outputs(nb):
    kinds, widgets = set(), 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            kinds.update(data)
            widgets += WIDGET_VIEW in data
    state = nb.metadata.get("widgets", {}).get(WS, {}).get("state", {})
    for model in state.values():          # what Output widgets captured
        for out in model.get("state", {}).get("outputs", []) or []:
            kinds.update(out.get("data", {}))
    return kinds, widgets


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_and_shows_a_widget_and_a_figure(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env.update(HOME=str(tmp_path), JUPYTER_PLATFORM_DIRS="1")
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NB_DIR)}})
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    kinds, widgets = _outputs(nb)
    assert widgets >= 1, "no widget displayed"
    assert "image/png" in kinds, "no figure displayed"
