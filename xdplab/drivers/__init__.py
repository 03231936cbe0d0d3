"""The simulated NIC drivers: veth, ice, mlx4, bnxt (RFC v2 patch order), then mlx5 (merged
design only upstream; its RFC v2 behaviour is MODEL).

One registry: each driver module defines its :class:`~xdplab.kernel.driver.Driver` class with
everything the kernel and the engines ask of it (wrapper, unroll hook, C routines, receive
paths); nothing else dispatches on a driver's name.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from ..kernel.driver import Driver
from .bnxt import BnxtFields
from .ice import IceFields
from .mlx4 import Mlx4Fields
from .mlx5 import Mlx5
from .veth import VethFields

REGISTRY: Mapping[str, type[Driver]] = MappingProxyType({d.name: d for d in (VethFields, IceFields, Mlx4Fields, BnxtFields, Mlx5)})


def names() -> tuple[str, ...]:
    """The drivers: the RFC's, in its patch order, then mlx5."""
    return tuple(REGISTRY)


def get(name: str, **options: object) -> Driver:
    """A driver instance by name (``options``: its constructor's, e.g. ``real_time=True`` for
    mlx5); ValueError listing the valid names otherwise."""
    try:
        cls = REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown driver {name!r}; valid drivers: {', '.join(REGISTRY)}") from None
    try:
        return cls(**options)
    except TypeError as exc:
        raise ValueError(f"driver {name}: bad options {options}: {exc}") from None
