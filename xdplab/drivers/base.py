"""Compatibility: the driver interface now lives in the kernel layer
(:mod:`xdplab.kernel.driver`), as ``net_device_ops`` lives in the kernel's headers."""
from __future__ import annotations

from ..kernel.driver import Driver, RxSettings, UnrollContext, supported_routine, wrapper_layout

__all__ = ["Driver", "RxSettings", "UnrollContext", "supported_routine", "wrapper_layout"]
