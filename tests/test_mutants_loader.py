"""Tests written for the mutants of xdplab/kernel/loader.py that survived `make mutate`
(benchmarks/results/mutation.json): map fds at load time, the names in the original and xlated
listings, and the registers an unrolled kfunc may write.
"""
from __future__ import annotations

import pytest

from xdplab.bpf import assemble
from xdplab.bpf import builders as B
from xdplab.bpf.patch import check_patch
from xdplab.kernel.kernel import Kernel
from xdplab.kernel.loader import ALLOWED_UNROLL_REGS, LoadError

BPF_MAP_TYPE_ARRAY = 2                    # include/uapi/linux/bpf.h@6.1.192:925 (enum bpf_map_type)
PROGRAM = ("r0 = 1\nr1 = map_fd({fd}) ll\nr2 = r10\nr2 += -4\n*(u32 *)(r10 - 4) = 0\ncall 1\n"
           "r0 = 2\nexit")


def _loaded():
    k = Kernel()
    fd = k.map_create("counts", BPF_MAP_TYPE_ARRAY, 4, 8, 4)
    return k, fd, k.prog_load(assemble(PROGRAM.format(fd=fd)))


def test_a_program_using_a_valid_map_fd_loads_and_an_unknown_fd_is_refused():
    """resolve_pseudo_ldimm64: an fd that is no map fails the load with "fd %d is not pointing
    to valid bpf_map" (kernel/bpf/verifier.c@6.1.192:13155)."""
    k, fd, loaded = _loaded()
    assert loaded.xlated is not None
    with pytest.raises(LoadError, match=f"fd {fd + 6} is not pointing to valid bpf_map"):
        k.prog_load(assemble(f"r1 = map_fd({fd + 6}) ll\nr0 = 2\nexit"))


def test_the_original_listing_names_helper_calls_and_nothing_else():
    """Only `call 1` is a helper call (bpf_map_lookup_elem is helper 1:
    include/uapi/linux/bpf.h@6.1.192:5479-5480 __BPF_FUNC_MAPPER); `r0 = 1` has imm 1 too but is a mov."""
    _, _, loaded = _loaded()
    lines = [loaded.format_original(i, insn) for i, insn in enumerate(loaded.original)]
    assert lines[0] == "r0 = 1"
    assert lines[5] == "call bpf_map_lookup_elem"
    assert sum("bpf_map_lookup_elem" in ln for ln in lines) == 1


def test_the_xlated_listing_shows_a_map_by_id_as_bpftool_does():
    """bpftool prints a map's ld_imm64 as "map[id:%u]" (tools/bpf/bpftool/xlated_dumper.c@6.1.192:198)."""
    _, _, loaded = _loaded()
    dump = loaded.dump_xlated()
    assert "r1 = map[id:1]" in dump
    assert dump.count("map[id:") == 1


def test_an_unrolled_kfunc_may_write_r0_and_r2_to_r5_only():
    """unroll_kfunc_call's allowed mask: R0, R2, R3, R4, R5 (RFC v2 06/14,
    06-xdp-carry-over-xdp-metadata-into-skb-context.patch:193-197); R1 is kept for
    export_to_skb, R6-R9 belong to the program."""
    assert ALLOWED_UNROLL_REGS == frozenset({0, 2, 3, 4, 5})
    for reg in (0, 2, 3, 4, 5):
        assert check_patch((B.BPF_MOV64_IMM(reg, 7),), allowed=ALLOWED_UNROLL_REGS) == []
    for reg in (1, 6, 9):
        assert check_patch((B.BPF_MOV64_IMM(reg, 7),), allowed=ALLOWED_UNROLL_REGS) != []


def test_the_xlated_listing_names_a_helper_call():
    """bpftool's xlated view names helper calls (kernel/bpf/disasm.c@6.1.192 func_id_str:
    ``bpf_`` + the __BPF_FUNC_MAPPER name); xdplab prints ``call <name>#<id>``."""
    from xdplab.bpf import assemble
    from xdplab.kernel.kernel import Kernel
    loaded = Kernel(seed=0).prog_load(assemble("r2 = -8\ncall 54\nr0 = 2\nexit"))
    lines = [loaded.format_xlated(i, insn) for i, insn in enumerate(loaded.xlated)]
    assert lines[1] == "call bpf_xdp_adjust_meta#54"
    assert loaded.format_original(1, loaded.original[1]) == "call bpf_xdp_adjust_meta"
