"""Encoding and decoding of struct bpf_insn."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdplab.bpf import BpfDecodeError, BpfError, BpfVerifyError, Insn, Program, decode, encode
from xdplab.bpf import builders as B
from xdplab.bpf import opcodes as op
from strategies import valid_insn, valid_program


@given(valid_program)
def test_decode_inverts_encode(program):
    data = program.encode()
    assert len(data) == 8 * program.slot_count
    assert Program.decode(data) == program


@given(valid_insn)
def test_field_layout_matches_struct_bpf_insn(insn):
    """Byte 0 = code, byte 1 = src<<4 | dst, bytes 2-3 = off (LE s16), 4-7 = imm (LE s32)."""
    data = insn.encode()
    code, regs, off, imm = struct.unpack_from("<BBhi", data)
    assert code == insn.opcode
    assert regs & 0xF == insn.dst and regs >> 4 == insn.src
    assert off == insn.off
    if insn.opcode == op.OPCODE_LD_IMM64:
        hi = struct.unpack_from("<i", data, 12)[0]
        assert data[8:12] == bytes(4)
        assert ((hi & 0xFFFFFFFF) << 32) | (imm & 0xFFFFFFFF) == insn.imm
    else:
        assert imm == insn.imm


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_give_a_program_or_a_decode_error(data):
    try:
        program = decode(data)
    except BpfDecodeError as exc:
        assert exc.index is not None
        return
    assert program.encode() == data


def test_ld_imm64_holds_all_64_bits_in_one_insn():
    insn = B.BPF_LD_IMM64(3, 0x1122334455667788)
    program = Program([insn, B.BPF_EXIT_INSN()])
    assert program.slot_count == 3 and len(program) == 2
    assert program.slot_of(1) == 2 and program.index_at_slot(1) is None
    assert insn.encode() == bytes.fromhex("1803000088776655 0000000044332211".replace(" ", ""))


@pytest.mark.parametrize("kind", sorted(op.LD_IMM64_KINDS))
def test_ld_imm64_src_kinds_round_trip(kind):
    two_words = kind in (op.BPF_PSEUDO_PLAIN, op.BPF_PSEUDO_MAP_VALUE, op.BPF_PSEUDO_BTF_ID,
                         op.BPF_PSEUDO_MAP_IDX_VALUE)
    insn = B.BPF_LD_IMM64_RAW(1, kind, (7 << 32) | 5 if two_words else 5)
    assert decode(encode([insn])) == Program([insn])
    if not two_words:   # the kernel refuses a non-zero second imm for these kinds
        with pytest.raises(BpfDecodeError, match="unrecognized bpf_ld_imm64"):
            decode(encode([B.BPF_LD_IMM64_RAW(1, kind, (7 << 32) | 5)]))
    assert encode([insn])[1] == (kind << 4) | 1


def test_negative_immediates_are_normalised():
    assert Insn(op.BPF_ALU64 | op.BPF_MOV, 0, imm=0xFFFFFFFF) == Insn(op.BPF_ALU64 | op.BPF_MOV, 0, imm=-1)
    assert B.BPF_LD_IMM64(0, -1).imm == (1 << 64) - 1
    assert Insn(op.BPF_JMP | op.BPF_JA, off=0xFFFF).off == -1


@pytest.mark.parametrize("fields, message", [
    (dict(opcode=0x100), "opcode"),
    (dict(opcode=0x07, dst=16), "dst register"),
    (dict(opcode=0x07, off=1 << 16), "off"),
    (dict(opcode=0x07, imm=1 << 32), "imm"),
    (dict(opcode="x"), "must be an int"),
])
def test_insn_refuses_fields_that_do_not_fit(fields, message):
    with pytest.raises(BpfVerifyError, match=message):
        Insn(**fields)


@pytest.mark.parametrize("data, index, message", [
    (bytes(7), 0, "not a multiple of 8"),
    (bytes([0x18, 0, 0, 0, 1, 0, 0, 0]), 0, "lacks its second slot"),
    (bytes([0x18, 0, 0, 0, 1, 0, 0, 0, 0x18, 0, 0, 0, 0, 0, 0, 0]), 1, "second slot"),
    (bytes([0xB7, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0, 0, 0, 0, 0, 0, 0]), 1, "unknown opcode"),
    (bytes([0xB7, 0x0B, 0, 0, 0, 0, 0, 0]), 0, "R11 is invalid"),
    (bytes([0x99, 0x10, 0, 0, 0, 0, 0, 0]), 0, "sign-extending load of 8 bytes"),
    (bytes([0xDF, 0, 0, 0, 16, 0, 0, 0]), 0, "bswap has no BPF_TO_BE"),
    (bytes([0xDB, 0x21, 0, 0, 0x02, 0, 0, 0]), 0, "unknown atomic operation"),
    (bytes([0x86, 0, 0, 0, 0, 0, 0, 0]), 0, "call exists only in class JMP"),
])
def test_decode_errors_name_the_slot(data, index, message):
    with pytest.raises(BpfDecodeError, match=message) as info:
        decode(data)
    assert info.value.index == index
    assert str(info.value).startswith(f"insn {index}: ")


def test_decode_refuses_non_bytes():
    with pytest.raises(BpfError):
        decode("not bytes")  # type: ignore[arg-type]


def test_program_is_an_immutable_sequence():
    p = Program([B.BPF_MOV64_IMM(0, 1), B.BPF_EXIT_INSN()])
    assert list(p) == [B.BPF_MOV64_IMM(0, 1), B.BPF_EXIT_INSN()]
    assert p[1:] == Program([B.BPF_EXIT_INSN()])
    assert hash(p) == hash(Program(list(p)))
    with pytest.raises(AttributeError):
        p.insns = ()  # type: ignore[misc]
    with pytest.raises(BpfVerifyError, match="element 0"):
        Program([1])  # type: ignore[list-item]
