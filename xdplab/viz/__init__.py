"""The workbench layer: widgets and plots (the only layer importing ipywidgets / matplotlib)."""
from . import plots
from .figcheck import figure_problems
from .widgets import (DESIGN_HELP, DiffView, MemoryLayoutView, Quiz, TourApp, design_picker, diff_html,
                      driver_picker, field_picker, quiz, reasons_html, run_summary)

__all__ = ["plots", "TourApp", "DiffView", "MemoryLayoutView", "Quiz", "quiz", "diff_html", "reasons_html",
           "run_summary", "DESIGN_HELP", "driver_picker", "design_picker", "field_picker", "figure_problems"]
