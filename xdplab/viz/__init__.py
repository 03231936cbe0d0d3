"""The workbench layer: widgets and plots (the only layer importing ipywidgets / matplotlib)."""
from . import plots
from .widgets import DiffView, MemoryLayoutView, TourApp, design_picker, driver_picker, field_picker

__all__ = ["plots", "TourApp", "DiffView", "MemoryLayoutView", "driver_picker", "design_picker", "field_picker"]
