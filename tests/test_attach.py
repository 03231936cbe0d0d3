"""RFC v2 02/14's attach rule: a device-bound program attaches only to a device of the type it
was bound to (net/core/dev.c dev_xdp_attach hunk, 02-...patch:323-331)."""
from __future__ import annotations

import pytest

from xdplab.bpf import assemble
from xdplab.drivers import get
from xdplab.kernel.kernel import AttachError, Kernel
from xdplab.kernel.kfuncs import RFC_V2
from xdplab.kernel.uapi import BPF_F_XDP_HAS_METADATA, EINVAL, ENODEV

TS = RFC_V2.by_name("bpf_xdp_metadata_rx_timestamp").btf_id


def test_a_bound_program_attaches_to_its_device_type_only():
    k = Kernel()
    ice0, ice1, mlx = (k.netns.add(n, get(d)) for n, d in (("ice0", "ice"), ("ice1", "ice"), ("mlx0", "mlx4")))
    prog = assemble(f"call kfunc({TS})\nr0 = 2\nexit")
    loaded = k.prog_load(prog, prog_flags=BPF_F_XDP_HAS_METADATA, prog_ifindex=ice0.ifindex)
    k.dev_xdp_attach(ice1.ifindex, loaded)            # another ice device: same netdev_ops
    assert k.attached[ice1.ifindex] is loaded
    with pytest.raises(AttachError, match="can only attach to the same device type") as info:
        k.dev_xdp_attach(mlx.ifindex, loaded)
    assert info.value.errno == EINVAL and mlx.ifindex not in k.attached
    unbound = k.prog_load(assemble("r0 = 2\nexit"))
    k.dev_xdp_attach(mlx.ifindex, unbound)            # not device-bound: any device
    with pytest.raises(AttachError) as info:
        k.dev_xdp_attach(99, unbound)
    assert info.value.errno == ENODEV
