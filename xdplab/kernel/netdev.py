"""Network devices and the netns that finds them by ifindex.

``xdp_resolve_netdev`` (RFC v2 02/14, net/core/dev.c) walks the caller's netns for the
ifindex given in ``attr->prog_ifindex`` and stores ``dev->netdev_ops`` in the program: the
binding is to a device *type* (driver), which ``dev_xdp_attach`` later enforces.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from .driver import Driver


@dataclass(frozen=True)
class NetDevice:
    ifindex: int
    name: str
    driver: "Driver"
    num_rx_queues: int = 1


@dataclass
class Netns:
    """One network namespace: ifindex -> device.  ``lo`` is ifindex 1, as in Linux."""

    devices: dict[int, NetDevice] = field(default_factory=dict)

    def add(self, name: str, driver: "Driver", *, ifindex: int | None = None,
            num_rx_queues: int = 1) -> NetDevice:
        index = ifindex if ifindex is not None else max(self.devices, default=1) + 1
        if index in self.devices:
            raise ValueError(f"ifindex {index} is taken by {self.devices[index].name}")
        dev = NetDevice(index, name, driver, num_rx_queues)
        self.devices[index] = dev
        return dev

    def by_ifindex(self, ifindex: int) -> NetDevice | None:
        return self.devices.get(ifindex)
