"""Tests written for the mutants of xdplab/kernel/ctx_rewrite.py that survived `make mutate`
(benchmarks/results/mutation.json): which registers still hold the ctx after calls and atomics.

Kernel rules: a call clobbers the caller-saved R0-R5 (kernel/bpf/verifier.c@6.1.192:1283-1285
caller_saved[], reset after the call at :7688-7691); an atomic with BPF_FETCH loads the old value
into R0 for BPF_CMPXCHG and into SRC otherwise (check_atomic, :5249-5258); without BPF_FETCH it
writes no register (:5259-5263).
"""
from __future__ import annotations

from xdplab.bpf import builders as B
from xdplab.bpf import opcodes as op
from xdplab.bpf.insn import Program
from xdplab.kernel.ctx_rewrite import ctx_accesses

FETCH_ADD, CMPXCHG, ADD = 0x01, 0xF1, 0x00      # include/uapi/linux/bpf.h@6.1.192:48-50; bpf_common.h:32


def _must(insns, slot: int) -> frozenset[int]:
    program = Program(tuple(insns) + (B.BPF_MOV64_IMM(0, 0), B.BPF_EXIT_INSN()))
    return ctx_accesses(program)[1][slot]


def test_a_call_clobbers_every_caller_saved_register_and_keeps_r6_to_r9():
    copies = [B.BPF_MOV64_REG(r, 1) for r in (0, 2, 3, 4, 5, 6, 9)]
    assert _must(copies, len(copies)) == {0, 1, 2, 3, 4, 5, 6, 9}
    after = _must([*copies, B.BPF_EMIT_CALL(7)], len(copies) + 1)
    assert after == {6, 9}


def test_an_atomic_fetch_on_memory_writes_its_source_register():
    # r2 = r1 (ctx); r5 = r10 - 8; r2 = atomic_fetch_add((u64 *)(r5 + 0), r2)
    insns = [B.BPF_MOV64_REG(2, 1), B.BPF_MOV64_REG(5, 10), B.BPF_ALU64_IMM(op.BPF_ADD, 5, -8),
             B.BPF_ATOMIC_OP(op.BPF_DW, FETCH_ADD, 5, 2, 0)]
    assert 2 in _must(insns, 3)
    assert _must(insns, 4) == {1}


def test_cmpxchg_on_memory_writes_r0_and_only_reads_its_source():
    insns = [B.BPF_MOV64_REG(0, 1), B.BPF_MOV64_REG(2, 1), B.BPF_MOV64_REG(5, 10),
             B.BPF_ALU64_IMM(op.BPF_ADD, 5, -8), B.BPF_ATOMIC_OP(op.BPF_DW, CMPXCHG, 5, 2, 0)]
    assert _must(insns, 4) == {0, 1, 2}
    assert _must(insns, 5) == {1, 2}


def test_an_atomic_without_fetch_writes_no_register():
    insns = [B.BPF_MOV64_REG(2, 1), B.BPF_MOV64_REG(5, 10), B.BPF_ALU64_IMM(op.BPF_ADD, 5, -8),
             B.BPF_ATOMIC_OP(op.BPF_DW, ADD, 5, 2, 0)]
    assert _must(insns, 4) == {1, 2}


def test_atomics_on_the_stack_follow_the_same_register_rules():
    insns = [B.BPF_MOV64_REG(2, 1), B.BPF_MOV64_REG(0, 1),
             B.BPF_ATOMIC_OP(op.BPF_DW, FETCH_ADD, 10, 2, -8),
             B.BPF_ATOMIC_OP(op.BPF_DW, CMPXCHG, 10, 1, -16)]
    assert _must(insns, 2) == {0, 1, 2}
    assert _must(insns, 3) == {0, 1}
    assert _must(insns, 4) == {1}
