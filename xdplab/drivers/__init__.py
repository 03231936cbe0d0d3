"""The simulated NIC drivers: veth, ice, mlx4, bnxt (RFC v2 patch order).

One registry: each driver module defines its :class:`~xdplab.kernel.driver.Driver` class with
everything the kernel and the engines ask of it (wrapper, unroll hook, C routines, receive
paths); nothing else dispatches on a driver's name.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from ..kernel.driver import Driver
from .bnxt import Bnxt
from .ice import Ice
from .mlx4 import Mlx4
from .veth import Veth

REGISTRY: Mapping[str, type[Driver]] = MappingProxyType({d.name: d for d in (Veth, Ice, Mlx4, Bnxt)})


def names() -> tuple[str, ...]:
    """The drivers of the RFC, in its patch order."""
    return tuple(REGISTRY)


def get(name: str) -> Driver:
    """A driver instance by name; ValueError listing the valid names otherwise."""
    try:
        return REGISTRY[name]()
    except KeyError:
        raise ValueError(f"unknown driver {name!r}; valid drivers: {', '.join(REGISTRY)}") from None
