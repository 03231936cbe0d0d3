"""Checks that a figure reads at a glance (issue 17): no text smaller than 9 pt, no two text
labels overlapping, no axis whose numbers need a power-of-ten offset ("1e9") to be read.

Used by tests/test_figures.py on every figure every notebook displays (the test installs
:func:`figure_problems` as a display hook in the notebook's kernel)."""
from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.text import Text

from .plots import MIN_FONT_PT          # one home: the size the house style draws at


def _texts(fig: Figure) -> list[tuple[str, Text]]:
    """Every text the renderer draws: figure texts, titles, axis labels, drawn tick labels,
    annotations, legend entries."""
    out: list[tuple[str, Text]] = [("figure text", t) for t in fig.texts]
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None:
        out.append(("suptitle", suptitle))
    for n, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        where = f"axes {n}"
        for t in (ax.title, getattr(ax, "_left_title", None), getattr(ax, "_right_title", None)):
            if t is not None:
                out.append((f"{where} title", t))
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            if not axis.get_visible() or not ax.axison:
                continue
            out.append((f"{where} {name}label", axis.label))
            # the ticks actually drawn; ignore: private Axis API, absent from matplotlib's stubs
            for tick in axis._update_ticks():  # type: ignore[union-attr]
                for lab in (tick.label1, tick.label2):
                    if lab.get_visible():
                        out.append((f"{where} {name}tick", lab))
        out.extend((f"{where} text", t) for t in ax.texts)
        leg = ax.get_legend()
        if leg is not None:
            out.extend((f"{where} legend", t) for t in leg.get_texts())
            if leg.get_title().get_text():
                out.append((f"{where} legend title", leg.get_title()))
    for fig_legend in fig.legends:
        out.extend(("figure legend", t) for t in fig_legend.get_texts())
    return [(w, t) for w, t in out if t.get_visible() and t.get_text().strip()]


def figure_problems(fig: Figure) -> list[str]:
    """What is wrong with ``fig`` for a reader; an empty list when nothing is."""
    if not hasattr(fig.canvas, "get_renderer"):     # a closed figure: give it an Agg canvas
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    # ignore: an Agg-family canvas (ensured above) has get_renderer; FigureCanvasBase's stub does not
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    problems: list[str] = []
    for n, ax in enumerate(fig.axes):
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            offset = axis.get_offset_text().get_text()
            if axis.get_visible() and ax.axison and offset.strip():
                problems.append(f"axes {n} {name}-axis is offset by {offset!r}: show a unit instead")
    texts = _texts(fig)
    boxes = []
    for where, t in texts:
        size = float(t.get_fontsize())
        if size < MIN_FONT_PT - 1e-6:
            problems.append(f"{where} {t.get_text()!r} is {size:.1f} pt (< {MIN_FONT_PT:g} pt)")
        boxes.append((where, t, Text.get_window_extent(t, renderer)))   # text only, not an arrow
    for i in range(len(boxes)):
        wi, ti, bi = boxes[i]
        for j in range(i + 1, len(boxes)):
            wj, tj, bj = boxes[j]
            w = min(bi.x1, bj.x1) - max(bi.x0, bj.x0)
            h = min(bi.y1, bj.y1) - max(bi.y0, bj.y0)
            if w > 1.0 and h > 1.0:
                problems.append(f"{wi} {ti.get_text()!r} overlaps {wj} {tj.get_text()!r}")
    return problems
