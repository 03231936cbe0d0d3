"""UAPI constants the simulated kernel needs, each with its source.

Sources: linux:include/uapi/linux/bpf.h (program types, load flags, the helper id list
``___BPF_FUNC_MAPPER``, ``enum xdp_action``), include/uapi/asm-generic/errno*.h, and the RFC
v2 patches for what they add.
"""
from __future__ import annotations

from types import MappingProxyType

# enum bpf_prog_type (bpf.h)
BPF_PROG_TYPE_XDP = 6

# BPF_PROG_LOAD prog_flags (bpf.h)
BPF_F_STRICT_ALIGNMENT = 1 << 0
BPF_F_ANY_ALIGNMENT = 1 << 1
BPF_F_TEST_RND_HI32 = 1 << 2
BPF_F_TEST_STATE_FREQ = 1 << 3
BPF_F_SLEEPABLE = 1 << 4
BPF_F_XDP_HAS_FRAGS = 1 << 5
BPF_F_XDP_HAS_METADATA = 1 << 6   # RFC v2 02/14; renamed BPF_F_XDP_DEV_BOUND_ONLY (same bit) in v4
PROG_LOAD_FLAGS = (BPF_F_STRICT_ALIGNMENT | BPF_F_ANY_ALIGNMENT | BPF_F_TEST_RND_HI32
                   | BPF_F_TEST_STATE_FREQ | BPF_F_SLEEPABLE | BPF_F_XDP_HAS_FRAGS | BPF_F_XDP_HAS_METADATA)

# enum bpf_attach_type members that matter for XDP (bpf.h)
BPF_XDP_DEVMAP = 38
BPF_XDP_CPUMAP = 39
BPF_XDP = 37

# enum xdp_action (bpf.h)
XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)
XDP_ACTION_NAMES = MappingProxyType({XDP_ABORTED: "ABORTED", XDP_DROP: "DROP", XDP_PASS: "PASS", XDP_TX: "TX",
                    XDP_REDIRECT: "REDIRECT"})

# Helper ids (bpf.h ___BPF_FUNC_MAPPER order).
BPF_FUNC_map_lookup_elem = 1
BPF_FUNC_map_update_elem = 2
BPF_FUNC_ktime_get_ns = 5
BPF_FUNC_xdp_adjust_head = 44
BPF_FUNC_redirect_map = 51
BPF_FUNC_xdp_adjust_meta = 54

# errno values (include/uapi/asm-generic/errno-base.h, errno.h; ENOTSUPP is kernel-internal,
# include/linux/errno.h).
EPERM, ENOENT, ENOMEM, EACCES, EFAULT, EINVAL, E2BIG, ERANGE = 1, 2, 12, 13, 14, 22, 7, 34
ENODEV = 19
ENODATA = 61
EOPNOTSUPP = 95
ENOTSUPP = 524
EOPNOTSUPP_NAME = "EOPNOTSUPP"
ERRNO_NAMES = MappingProxyType({EPERM: "EPERM", ENOENT: "ENOENT", ENOMEM: "ENOMEM", EACCES: "EACCES",
               EFAULT: "EFAULT", EINVAL: "EINVAL", E2BIG: "E2BIG", ERANGE: "ERANGE",
               ENODEV: "ENODEV", ENODATA: "ENODATA", EOPNOTSUPP: "EOPNOTSUPP", ENOTSUPP: "ENOTSUPP"})
