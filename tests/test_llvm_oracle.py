"""LLVM as the oracle for encoding: llvm-mc must produce our bytes from our disassembly, and
our assembler must read llvm-objdump's listing back into the same program.

LLVM 14 (the version on these machines) lacks the v4 forms, `%=`, `&` jumps and `*(..) = imm`
in its assembler; RFC 9669 and the conformance suite cover those.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdplab.bpf import Insn, Program, assemble, disassemble
from xdplab.bpf import opcodes as op

TOOLS = [shutil.which(t) for t in ("llvm-mc", "llvm-objcopy", "llvm-objdump")]
pytestmark = [pytest.mark.oracle,
              pytest.mark.skipif(not all(TOOLS), reason="LLVM tools not on PATH")]

S16 = st.integers(-(1 << 15), (1 << 15) - 1)
S32 = st.integers(-(1 << 31), (1 << 31) - 1)
REG = st.integers(0, 10)
LLVM14_ALU = [op.BPF_ADD, op.BPF_SUB, op.BPF_MUL, op.BPF_DIV, op.BPF_OR, op.BPF_AND, op.BPF_LSH,
              op.BPF_RSH, op.BPF_XOR, op.BPF_MOV, op.BPF_ARSH]
LLVM14_JMP = [j for j in op.CONDITIONAL_JUMPS if j != op.BPF_JSET]
SIZES = [op.BPF_B, op.BPF_H, op.BPF_W, op.BPF_DW]


@st.composite
def llvm14_insn(draw):
    kind = draw(st.sampled_from(["alu", "alu", "neg", "end", "jmp", "ja", "call", "exit", "ldx",
                                 "stx", "atomic", "lddw", "ldabs", "ldind"]))
    if kind == "alu":
        cls = draw(st.sampled_from([op.BPF_ALU, op.BPF_ALU64]))
        o = draw(st.sampled_from(LLVM14_ALU))
        if draw(st.booleans()):
            return Insn(cls | o | op.BPF_X, draw(REG), draw(REG))
        return Insn(cls | o, draw(REG), imm=draw(S32))
    if kind == "neg":
        return Insn(draw(st.sampled_from([op.BPF_ALU, op.BPF_ALU64])) | op.BPF_NEG, draw(REG))
    if kind == "end":
        return Insn(op.BPF_ALU | op.BPF_END | draw(st.sampled_from([op.BPF_TO_LE, op.BPF_TO_BE])),
                    draw(REG), imm=draw(st.sampled_from([16, 32, 64])))
    if kind == "jmp":
        cls = draw(st.sampled_from([op.BPF_JMP, op.BPF_JMP32]))
        j = draw(st.sampled_from(LLVM14_JMP))
        if draw(st.booleans()):
            return Insn(cls | j | op.BPF_X, draw(REG), draw(REG), draw(S16))
        return Insn(cls | j, draw(REG), 0, draw(S16), draw(S32))
    if kind == "ja":
        return Insn(op.BPF_JMP | op.BPF_JA, off=draw(S16))
    if kind == "call":
        return Insn(op.BPF_JMP | op.BPF_CALL, imm=draw(st.integers(0, (1 << 31) - 1)))
    if kind == "exit":
        return Insn(op.BPF_JMP | op.BPF_EXIT)
    if kind == "ldx":
        return Insn(op.BPF_LDX | draw(st.sampled_from(SIZES)) | op.BPF_MEM, draw(REG), draw(REG), draw(S16))
    if kind == "stx":
        return Insn(op.BPF_STX | draw(st.sampled_from(SIZES)) | op.BPF_MEM, draw(REG), draw(REG), draw(S16))
    if kind == "atomic":
        return Insn(op.BPF_STX | draw(st.sampled_from([op.BPF_W, op.BPF_DW])) | op.BPF_ATOMIC,
                    draw(REG), draw(REG), draw(S16),
                    draw(st.sampled_from([op.BPF_ADD, op.BPF_AND, op.BPF_OR, op.BPF_XOR])))
    if kind == "lddw":
        return Insn(op.OPCODE_LD_IMM64, draw(REG), imm=draw(st.integers(0, (1 << 64) - 1)))
    if kind == "ldabs":
        return Insn(op.BPF_LD | draw(st.sampled_from(SIZES[:3])) | op.BPF_ABS, imm=draw(S32))
    return Insn(op.BPF_LD | draw(st.sampled_from(SIZES[:3])) | op.BPF_IND, 0, draw(REG))


def llvm_bytes(text: str, tmp: Path) -> bytes:
    src, obj, raw = tmp / "p.s", tmp / "p.o", tmp / "p.bin"
    src.write_text(text)
    subprocess.run(["llvm-mc", "-triple", "bpfel", "-mattr=+alu32", "-filetype=obj", str(src),
                    "-o", str(obj)], check=True, capture_output=True)
    subprocess.run(["llvm-objcopy", "-O", "binary", "--only-section=.text", str(obj), str(raw)],
                   check=True, capture_output=True)
    return raw.read_bytes()


def llvm_listing(tmp: Path) -> str:
    return subprocess.run(["llvm-objdump", "-d", "--mattr=+alu32", str(tmp / "p.o")],
                          check=True, capture_output=True, text=True).stdout


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(llvm14_insn(), min_size=1, max_size=300).map(Program))
def test_llvm_mc_encodes_our_disassembly_to_our_bytes(tmp_path_factory, program):
    tmp = tmp_path_factory.mktemp("llvm")
    assert llvm_bytes(disassemble(program), tmp) == program.encode()
    # ...and our assembler reads what llvm-objdump prints back into the same program.
    assert assemble(llvm_listing(tmp)) == program


def test_every_llvm14_form_once(tmp_path):
    """A deterministic sweep: every opcode LLVM 14 can assemble, each with a few operands."""
    insns = []
    for cls in (op.BPF_ALU, op.BPF_ALU64):
        for o in LLVM14_ALU:
            insns += [Insn(cls | o | op.BPF_X, 3, 7), Insn(cls | o, 9, imm=-5), Insn(cls | o, 1, imm=0x7FFFFFFF)]
        insns.append(Insn(cls | op.BPF_NEG, 4))
    for src in (op.BPF_TO_LE, op.BPF_TO_BE):
        insns += [Insn(op.BPF_ALU | op.BPF_END | src, 2, imm=w) for w in (16, 32, 64)]
    for cls in (op.BPF_JMP, op.BPF_JMP32):
        for j in LLVM14_JMP:
            insns += [Insn(cls | j | op.BPF_X, 1, 2, -7), Insn(cls | j, 5, 0, 300, -1)]
    insns += [Insn(op.BPF_JMP | op.BPF_JA, off=-32768), Insn(op.BPF_JMP | op.BPF_CALL, imm=7),
              Insn(op.BPF_JMP | op.BPF_EXIT)]
    for size in SIZES:
        insns += [Insn(op.BPF_LDX | size | op.BPF_MEM, 0, 10, -8), Insn(op.BPF_STX | size | op.BPF_MEM, 10, 1, 32767)]
    for size in (op.BPF_W, op.BPF_DW):
        for a in (op.BPF_ADD, op.BPF_AND, op.BPF_OR, op.BPF_XOR):
            insns.append(Insn(op.BPF_STX | size | op.BPF_ATOMIC, 1, 2, 8, a))
    insns += [Insn(op.OPCODE_LD_IMM64, 6, imm=(1 << 64) - 1), Insn(op.OPCODE_LD_IMM64, 6, imm=1 << 63)]
    program = Program(insns)
    assert llvm_bytes(disassemble(program), tmp_path) == program.encode()
    assert assemble(llvm_listing(tmp_path)) == program
