"""One run, planned: everything an engine needs to receive packets, frozen, built by ``Lab``.

Both engines (:mod:`xdplab.scalar`, one packet at a time on the scalar machine, and
:mod:`xdplab.batch`, many packets at once on numpy lanes) execute a :class:`RunPlan`; neither
knows the other, nor ``Lab``.  The plan holds the loaded program, the device's driver and its
receive settings, the frame, what the consumer reads (metadata size, timestamp offset) and the
cost profile; engines only orchestrate: every rule they apply lives in the kernel layer or the
driver's module.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .bpf.memory import Region
from .cost import CpuProfile
from .kernel.boot import Boot
from .kernel.driver import Driver, RxSettings
from .kernel.loader import LoadedProgram
from .kernel.maps import BpfMap
from .kernel.symbols import OpCost
from .consumer import MetaLayout
from .traffic import Trace, Traffic

ENGINES = ("auto", "scalar", "batch")
PATHS = ("af_xdp", "skb")


@dataclass(frozen=True)
class RunPlan:
    """One ``Lab.run``: the program on its device, the traffic, and what the consumer reads.

    ``meta_valid``: what the driver passes to xdp_prepare_buff (or True when metadata support
    is assumed); ``hints``: the BTF-hints design, whose driver writes its struct in front of
    every frame; ``meta_size`` / ``ts_offset``: the bytes the AF_XDP consumer reads in front
    of the data and where the timestamp sits in them (None: the program stores none);
    ``map_regions``: the kernel memory of the program's maps (the scalar engine maps them);
    ``traffic``: the flows and their truth (:class:`~xdplab.traffic.Traffic`); ``consumer``:
    the metadata layout the AF_XDP consumer decodes into one column per field
    (:mod:`xdplab.consumer`).
    """

    def flows(self, lo: int, hi: int) -> tuple[Traffic, npt.NDArray[np.int64]]:
        """The traffic and the flow index of packets ``lo..hi``."""
        traffic = self.traffic or Traffic.selftest()
        return traffic, traffic.flow_index(lo, hi)

    loaded: LoadedProgram
    driver: Driver
    ifindex: int
    dev_name: str
    rx: RxSettings
    meta_valid: bool
    path: str
    frame: bytes
    hints: bool
    meta_size: int
    ts_offset: int | None
    design: str
    fields: tuple[str, ...]
    driver_work: OpCost | None
    profile: CpuProfile
    xsk_map: BpfMap
    map_regions: tuple[Region, ...]
    memory_top: int
    boot: Boot
    trace: Trace
    fast: bool = True
    traffic: Traffic | None = None      # None: the selftest's single flow (``frame``)
    consumer: MetaLayout | None = None  # the struct the AF_XDP consumer reads (per-field columns)
    driver_note: str | None = None
    traces: bool = False        # the program calls bpf_trace_printk: a trace_pipe column per packet

    @property
    def packets(self) -> int:
        return self.trace.count


COLUMNS = ("packet", "t_ns", "hw_time_ns", "rx_timestamp", "error_ns", "insns", "cost_ns", "action",
           "delivered_to", "meta_len", "reason")
