"""The simulated NIC drivers of RFC v2: veth, ice, mlx4, bnxt."""
from __future__ import annotations

from .base import Driver

_NAMES = ("veth", "ice", "mlx4", "bnxt")


def names() -> tuple[str, ...]:
    """The drivers of the RFC, in its patch order."""
    return _NAMES


def get(name: str) -> Driver:
    """A driver instance by name; ValueError listing the valid names otherwise."""
    if name not in _NAMES:
        raise ValueError(f"unknown driver {name!r}; valid drivers: {', '.join(_NAMES)}")
    if name == "veth":
        from .veth import Veth
        return Veth()
    if name == "ice":
        from .ice import Ice
        return Ice()
    if name == "mlx4":
        from .mlx4 import Mlx4
        return Mlx4()
    from .bnxt import Bnxt
    return Bnxt()
