"""xdplab: see and run the Linux RFC "xdp: hints via kfuncs" (v2)."""
__version__ = "0.1.0"

from .lab import Lab  # noqa: E402

__all__ = ["Lab"]
