"""The simulated kernel: struct layouts, the XDP context, the load-time pipeline of RFC v2
(flag + ifindex binding, ctx rewrite, kfunc unrolling with bpf_patch), the metadata kfuncs
and their delivery.  Knows nothing of particular drivers (they plug in through
the interface in :mod:`xdplab.kernel.driver`)."""
from __future__ import annotations


def errno_ret(errno: int) -> int:
    """A negative errno as the u64 a kernel function leaves in r0."""
    return (-errno) & ((1 << 64) - 1)
