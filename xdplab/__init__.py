"""xdplab: see and run the Linux RFC "xdp: hints via kfuncs" (v2)."""
__version__ = "0.1.0"
