"""The scalar engine: the packets of a :class:`~xdplab.plan.RunPlan`, one at a time, on the
scalar eBPF machine (reference interpreter or its compiled fast path).

Per packet: the driver's receive path writes its descriptor and wrapper
(:meth:`~xdplab.kernel.driver.Driver.rx_path`), the XDP queue prepares the xdp_buff and runs the
program (:class:`~xdplab.kernel.xdp.XdpRxQueue`), ``deliver`` hands the frame to the AF_XDP
socket or the stack (with the skb import), the consumer reads, :func:`xdplab.cost.packet_cost`
prices the run and :func:`xdplab.reasons.why` says what went wrong.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .consumer import consumer_columns
from .cost import packet_cost
from .kernel.af_xdp import XskSocket, xsk_consume
from .kernel.btf_hints import btf_hints_bytes, flow_hint_flags
from .kernel.structs import KernelMemory
from .kernel.xdp import XdpRxQueue, deliver
from .plan import COLUMNS, RunPlan
from .reasons import why


def run_scalar(plan: RunPlan, lo: int, hi: int) -> pd.DataFrame:
    """Packets ``lo..hi`` of the plan, as raw DataFrame columns (Lab finishes the dtypes).

    The receive path starts afresh at ``lo`` (its ring position and the clock are functions
    of the packet index and its arrival time), so chunks run anywhere give the same rows.
    """
    mem = KernelMemory(next_addr=plan.memory_top + 0x10000)
    for region in plan.map_regions:          # maps live in kernel memory
        mem.space.map(region)
    rx = plan.driver.rx_path(mem, plan.rx)
    sock = XskSocket.create()
    queue = XdpRxQueue(mem, plan.loaded, rx.wrapper, ifindex=plan.ifindex, meta_valid=plan.meta_valid,
                       fast=plan.fast, redirect_targets={plan.xsk_map.map_id: {0: sock}})
    rows = []
    traces: list[str] = []
    traffic, flows = plan.flows(lo, hi)
    frames = tuple(traffic.rx_frame(k) for k in range(traffic.n_flows))
    layout = plan.consumer
    meta_rows = np.zeros((hi - lo, layout.size if layout else 0), np.uint8)
    delivered = np.zeros(hi - lo, bool)
    driver_hints = plan.hints and plan.path == "af_xdp"     # the BTF-hints driver writes its struct
    for j, (i, t) in enumerate(zip(range(lo, hi), plan.trace.times_array(lo, hi).tolist())):
        flow = traffic.truth[int(flows[j])]
        frame = frames[int(flows[j])]
        hw = rx.receive(i, t, len(frame))
        plan.driver.receive_meta(rx, i, flow)
        meta = btf_hints_bytes(rx_timestamp=rx.reference_timestamp(), rx_hash=flow.rss_hash,
                               vlan_tci=flow.reported_tag[1], flags=flow_hint_flags(flow)) \
            if driver_hints else b""
        out = queue.run(frame, driver_metadata=meta)
        where, skb, reason = deliver(out, xsks={0: sock}, boot=plan.boot, dev_name=plan.dev_name)
        ts = 0
        if where == "af_xdp":
            got = xsk_consume(sock, plan.meta_size)
            assert got is not None
            if plan.ts_offset is not None:
                ts = int.from_bytes(got.metadata[plan.ts_offset:plan.ts_offset + 8], "little")
            if layout is not None and layout.size:
                meta_rows[j, :len(got.metadata)] = np.frombuffer(got.metadata[:layout.size], np.uint8)
                delivered[j] = True
        elif where in ("stack", "cpumap") and skb is not None:
            ts = skb.hwtstamp
        if reason is None:
            reason = why(plan.design, plan.fields, plan.path, where, bool(ts),
                         out.adjust_meta[-1] if out.adjust_meta else 0, bool(out.meta), plan.driver_note)
        insns = out.run.insns if out.run else 0
        cost = packet_cost(out.run, plan.loaded.symbols, plan.profile, driver_work=plan.driver_work).total \
            if out.run else float("nan")
        if plan.traces:
            traces.append("\n".join(out.trace))
        rows.append((i, t, hw, ts, (ts - hw) if ts else None, insns, cost, out.action, where, len(out.meta),
                     reason or ""))
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    if plan.traces:          # what `cat /sys/kernel/tracing/trace_pipe` would show for each packet
        df["trace_pipe"] = pd.Series(traces, dtype="string")
    extra = consumer_columns(layout, meta_rows, delivered, flows, traffic.truth,
                             [plan.driver.rss_type_of(f) for f in traffic.truth])
    for name, col in extra.items():
        df[name] = col
    return df
