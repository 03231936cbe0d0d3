"""The two assembly dialects and the disassembler."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdplab.bpf import BpfAssembleError, Insn, Program, assemble, disassemble
from xdplab.bpf import builders as B
from xdplab.bpf import opcodes as op
from strategies import runnable_program, valid_program


@settings(max_examples=300)
@given(valid_program)
def test_assemble_inverts_disassemble(program):
    assert assemble(disassemble(program)) == program
    assert assemble(disassemble(program, numbered=True)) == program


def _jump_targets(program: Program) -> set[int]:
    """Slots the program's jumps land on (RFC 9669 §4.3: pc + 1 + off; JMP32 JA: + imm)."""
    targets, slot = set(), 0
    for insn in program:
        cls, code = insn.opcode & 0x07, insn.opcode & 0xF0
        if cls in (0x05, 0x06) and code not in (0x80, 0x90):
            targets.add(slot + 1 + (insn.imm if cls == 0x06 and code == 0x00 else insn.off))
        slot += 2 if insn.opcode == 0x18 else 1
    return targets


@settings(max_examples=150, deadline=None)
@given(runnable_program())
def test_labelled_disassembly_round_trips(program):
    """Verified programs (jumps land inside): one label per distinct target, every jump goes
    to a label, and the labelled text assembles back to the same instructions."""
    from xdplab.bpf import verify
    verify(program)
    text = disassemble(program, labels=True)
    labels = [line for line in text.splitlines() if line.rstrip().endswith(":")]
    assert len(labels) == len(set(labels)) == len(_jump_targets(program))
    jumps = [line for line in text.splitlines() if "goto" in line]
    assert all(not re.search(r"goto[l]? [+-]\d", line) for line in jumps), jumps
    assert assemble(text) == program


@settings(max_examples=300)
@given(st.text(max_size=80))
def test_random_text_gives_a_program_or_an_assemble_error(text):
    """Whatever the text: a program that survives its own round trip, or a BpfAssembleError that
    names a line of the text (or says there were no instructions)."""
    n_lines = len(text.splitlines()) or 1
    for dialect in ("llvm", "ubpf"):
        try:
            program = assemble(text, dialect)
        except BpfAssembleError as exc:
            if exc.line is None:
                assert "no instructions" in str(exc) or "unknown label" in str(exc), str(exc)
            else:
                assert 1 <= exc.line <= n_lines and str(exc).startswith(f"line {exc.line}: "), (exc.line, n_lines)
            continue
        assert 1 <= len(program) <= n_lines
        assert assemble(disassemble(program)) == program


PRINTABLE_LINE = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@settings(max_examples=300)
@given(PRINTABLE_LINE)
def test_a_bad_line_between_good_ones_is_the_line_named(garbage):
    """Line 3 of 4 is random: either the error names line 3, or the text assembled and the
    instructions of lines 1, 2 and 4 are where they should be."""
    for dialect, prefix, exit_ in (("llvm", ["r0 = 1", "r1 = 2"], "exit"),
                                   ("ubpf", ["mov %r0, 1", "mov %r1, 2"], "exit")):
        text = "\n".join(prefix + [garbage, exit_])
        try:
            program = assemble(text, dialect)
        except BpfAssembleError as exc:
            assert exc.line == 3, (dialect, garbage, str(exc))
            continue
        assert program[:2] == Program([B.BPF_MOV64_IMM(0, 1), B.BPF_MOV64_IMM(1, 2)])
        assert program[-1] == B.BPF_EXIT_INSN() and len(program) in (3, 4)


@settings(max_examples=200)
@given(st.lists(st.sampled_from([
    "r0 = 1", "w1 += w2", "if r1 > r2 goto +1", "goto L", "L:", "exit", "r1 = *(u32 *)(r1 + 4)",
    "*(u64 *)(r10 - 8) = r1", "lock *(u64 *)(r1 + 0) += r2", "call 7", "r0 = 5 ll", "# c", "",
    "r1 = (s8)r2", "gotol L", "call L", "r1 = func(L) ll", "w0 = bswap16 w0", "r0 = -r0",
]), max_size=12).map("\n".join))
def test_llvm_fragments_give_a_program_or_an_assemble_error(text):
    try:
        program = assemble(text)
    except BpfAssembleError:
        return
    assert assemble(disassemble(program)) == program


LLVM_FORMS = [
    ("r1 = 5", B.BPF_MOV64_IMM(1, 5)),
    ("w1 = -1", B.BPF_MOV32_IMM(1, -1)),
    ("r1 += r2", B.BPF_ALU64_REG(op.BPF_ADD, 1, 2)),
    ("w3 s>>= 7", B.BPF_ALU32_IMM(op.BPF_ARSH, 3, 7)),
    ("r1 s/= r2", B.BPF_ALU64_REG_OFF(op.BPF_DIV, 1, 2, 1)),
    ("w1 s%= 3", B.BPF_ALU32_IMM_OFF(op.BPF_MOD, 1, 3, 1)),
    ("r1 = (s32)r2", B.BPF_MOVSX64_REG(1, 2, 32)),
    ("w1 = (s16)w2", B.BPF_MOVSX32_REG(1, 2, 16)),
    ("r1 = -r1", Insn(op.BPF_ALU64 | op.BPF_NEG, 1)),
    ("r1 = be16 r1", B.BPF_ENDIAN(op.BPF_TO_BE, 1, 16)),
    ("r1 = le64 r1", B.BPF_ENDIAN(op.BPF_TO_LE, 1, 64)),
    ("r1 = bswap32 r1", B.BPF_BSWAP(1, 32)),
    ("r0 = *(u32 *)(r1 + 4)", B.BPF_LDX_MEM(op.BPF_W, 0, 1, 4)),
    ("w0 = *(u8 *)(r1 - 4)", B.BPF_LDX_MEM(op.BPF_B, 0, 1, -4)),
    ("r0 = *(s16 *)(r1 + 0)", B.BPF_LDX_MEMSX(op.BPF_H, 0, 1, 0)),
    ("*(u64 *)(r10 - 8) = r1", B.BPF_STX_MEM(op.BPF_DW, 10, 1, -8)),
    ("*(u16 *)(r10 - 2) = w1", B.BPF_STX_MEM(op.BPF_H, 10, 1, -2)),
    ("*(u32 *)(r10 - 4) = 5", B.BPF_ST_MEM(op.BPF_W, 10, -4, 5)),
    ("lock *(u32 *)(r1 + 0) += w2", B.BPF_ATOMIC_OP(op.BPF_W, op.BPF_ADD, 1, 2, 0)),
    ("r2 = atomic_fetch_xor((u64 *)(r1 + 8), r2)", B.BPF_ATOMIC_OP(op.BPF_DW, op.BPF_XOR | op.BPF_FETCH, 1, 2, 8)),
    ("w2 = xchg32_32(r1 + 0, w2)", B.BPF_ATOMIC_OP(op.BPF_W, op.BPF_XCHG, 1, 2, 0)),
    ("r0 = cmpxchg_64(r1 + 0, r0, r3)", B.BPF_ATOMIC_OP(op.BPF_DW, op.BPF_CMPXCHG, 1, 3, 0)),
    ("if r1 s< r2 goto +1", B.BPF_JMP_REG(op.BPF_JSLT, 1, 2, 1)),
    ("if w1 & 8 goto -1", B.BPF_JMP32_IMM(op.BPF_JSET, 1, 8, -1)),
    ("goto +0", B.BPF_JMP_A(0)),
    ("gotol -3", B.BPF_JMP32_A(-3)),
    ("call 12", B.BPF_EMIT_CALL(12)),
    ("call pc+2", B.BPF_CALL_REL(2)),
    ("call kfunc(1234)", B.BPF_CALL_KFUNC(0, 1234)),
    ("call kfunc(1234, 2)", B.BPF_CALL_KFUNC(2, 1234)),
    ("callx r3", B.BPF_CALLX(3)),
    ("exit", B.BPF_EXIT_INSN()),
    ("r1 = -1 ll", B.BPF_LD_IMM64(1, -1)),
    ("r1 = map_fd(5) ll", B.BPF_LD_MAP_FD(1, 5)),
    ("r1 = map_value(5, 16) ll", B.BPF_LD_MAP_VALUE(1, 5, 16)),
    ("r0 = *(u8 *)skb[14]", B.BPF_LD_ABS(op.BPF_B, 14)),
    ("r0 = *(u16 *)skb[r1 + 2]", B.BPF_LD_IND(op.BPF_H, 1, 2)),
]


@pytest.mark.parametrize("text, insn", LLVM_FORMS, ids=[t for t, _ in LLVM_FORMS])
def test_llvm_forms(text, insn):
    assert assemble(text) == Program([insn])


def test_labels_comments_and_objdump_listing():
    listing = """
a.o:	file format elf64-bpf

Disassembly of section xdp:

0000000000000000 <prog>:
       0:	b7 00 00 00 00 00 00 00	r0 = 0   # a comment
       1:	18 01 00 00 ff ff ff ff 00 00 00 00 00 00 00 00	r1 = 4294967295 ll
		0000000000000008:  R_BPF_64_64	some_map
       3:	55 01 01 00 00 00 00 00	if r1 != 0 goto +1 <LBB0_2>
       4:	05 00 00 00 00 00 00 00	goto +0 <LBB0_2>
       5:	95 00 00 00 00 00 00 00	exit
"""
    p = assemble(listing)
    assert len(p) == 5 and p[1].imm == 0xFFFFFFFF
    q = assemble("start: r0 = 0 // comment\n r1 = 1\n if r1 != 0 goto out\n goto start\nout:\n exit")
    assert q[2].off == 1 and q[3].off == -4


def test_ubpf_dialect():
    text = """
    mov32 %r0, 0x10      # hex within u32
    lddw %r1, 0x1122334455667788
    stxdw [%r10-8], %r1
    lock fetch add [%r10-8], %r0
    ldxsb %r2, [%r10-8]
    jsgt32 %r2, -1, done
    ja done
done:
    call local f
    exit
f:
    mov %r0, 1
    exit
"""
    p = assemble(text, "ubpf")
    assert p[3] == B.BPF_ATOMIC_OP(op.BPF_DW, op.BPF_ADD | op.BPF_FETCH, 10, 0, -8)
    assert p[5] == B.BPF_JMP32_IMM(op.BPF_JSGT, 2, -1, 1)
    assert p[7] == B.BPF_CALL_REL(1)   # call at slot 8 (lddw takes two), f at slot 10


@pytest.mark.parametrize("dialect, text, line, message", [
    ("llvm", "r0 = 1\nr11 = 2", 2, "invalid register r11"),
    ("llvm", "r0 = 1\ngoto nowhere\nexit", 2, "unknown label 'nowhere'"),
    ("llvm", "r0 = 0x100000000", 1, "out of range"),
    ("llvm", "r0 = *(u64 *)(r1 + 40000)", 1, "offset 40000 is out of range"),
    ("llvm", "w0 += r1", 1, "register width"),
    ("llvm", "frobnicate r0", 1, "cannot parse"),
    ("llvm", "a:\na:\nexit", 2, "defined twice"),
    ("ubpf", "add %r0", 1, "Invalid number of operands for add"),
    ("ubpf", "mov32 %r0, 2147483648", 1, "out of range"),
    ("ubpf", "ldxw %r0, [%r1+1]\nstw %r1, 1", 2, "memory operand"),
])
def test_assemble_errors_name_the_line(dialect, text, line, message):
    with pytest.raises(BpfAssembleError, match=message) as info:
        assemble(text, dialect)
    assert info.value.line == line


def test_unknown_dialect_and_empty_text():
    with pytest.raises(BpfAssembleError, match="unknown dialect"):
        assemble("exit", "gas")
    with pytest.raises(BpfAssembleError, match="no instructions"):
        assemble("# nothing\n")
