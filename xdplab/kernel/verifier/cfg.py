"""Before the walk: instruction slots, subprograms, ld_imm64 pairs, opcodes, the control graph.

kernel/bpf/verifier.c@6.1.192: add_subprog (1810), add_subprog_and_kfunc (2143), check_subprogs
(2185: "jump out of range", "last insn is not an exit or jmp"), resolve_pseudo_ldimm64 (13069:
"invalid bpf_ld_imm64 insn", "unrecognized bpf_ld_imm64 insn", "fd %d is not pointing to valid
bpf_map", "unknown opcode %02x"), check_cfg with push_insn / visit_insn (11034-11240:
"back-edge from insn", "unreachable insn", "jump into the middle of ldimm64 insn") and the
prune points it marks; kernel/bpf/core.c@6.1.192:1554 bpf_opcode_in_insntable.
"""
from __future__ import annotations

import struct

from ...bpf.errors import BpfDecodeError
from ..maps import ARRAY_LIKE
from .env import EINVAL, Env, RawInsn, Refuse, SubprogInfo

_INSN = struct.Struct("<BBhi")


def _opcode_table() -> frozenset[int]:
    """bpf_opcode_in_insntable: the opcodes a 6.1 kernel knows."""
    codes = set()
    alu_ops = (0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x90, 0xA0, 0xB0, 0xC0)
    for cls in (0x04, 0x07):
        for op in alu_ops:
            codes.add(cls | op | 0x00)
            codes.add(cls | op | 0x08)
        codes.add(cls | 0x80)                      # NEG
    codes.update((0x04 | 0xD0 | 0x00, 0x04 | 0xD0 | 0x08))   # END (ALU only)
    jmp_ops = (0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xA0, 0xB0, 0xC0, 0xD0)
    for cls in (0x05, 0x06):
        for op in jmp_ops:
            codes.add(cls | op | 0x00)
            codes.add(cls | op | 0x08)
        codes.add(cls | 0x00)                      # JA (JMP32|JA: Debian 6.1.192 has gotol)
    codes.update((0x85, 0x95))                     # CALL, EXIT
    for size in (0x00, 0x08, 0x10, 0x18):
        codes.update((0x03 | 0x60 | size, 0x02 | 0x60 | size, 0x01 | 0x60 | size))
    codes.update((0x03 | 0xC0 | 0x00, 0x03 | 0xC0 | 0x18))   # atomics W, DW
    codes.add(0x18)                                # LD_IMM64
    codes.update((0x20, 0x28, 0x30, 0x40, 0x48, 0x50))       # LD_ABS/IND (cBPF carry-over)
    return frozenset(codes)


OPCODES = _opcode_table()


def decode_slots(data: bytes) -> tuple[RawInsn, ...]:
    """Bytes to kernel slots; only a length that is not a whole number of instructions is
    malformed input (BPF_PROG_LOAD's own EINVAL); every other defect is the verifier's to refuse."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BpfDecodeError(f"expected bytes or a Program, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise BpfDecodeError("program has no instructions")
    if len(data) % 8:
        raise BpfDecodeError(f"length {len(data)} is not a multiple of 8 bytes", len(data) // 8)
    out = []
    for slot in range(len(data) // 8):
        code, regs, off, imm = _INSN.unpack_from(data, slot * 8)
        out.append(RawInsn(code, regs & 0xF, regs >> 4, off, imm))
    return tuple(out)


def add_subprogs(env: Env) -> None:
    """add_subprog_and_kfunc's subprogram half: every BPF_PSEUDO_CALL target starts a function."""
    n = len(env.insns)
    starts = {0}
    for i, ins in enumerate(env.insns):
        env.insn_idx = i
        pseudo_call = ins.code == 0x85 and ins.src == 1
        pseudo_func = ins.code == 0x18 and ins.src == 4
        if not (pseudo_call or pseudo_func):
            continue
        if not env.caps.bpf_capable:
            raise Refuse("loading/calling other bpf or kernel functions are allowed for CAP_BPF "
                         "and CAP_SYS_ADMIN", 1)
        off = i + ins.imm + 1
        if off >= n or off < 0:
            raise Refuse("call to invalid destination", EINVAL)
        starts.add(off)
    env.subprogs = [SubprogInfo(s) for s in sorted(starts)]


def check_subprogs(env: Env) -> None:
    insns = env.insns
    n = len(insns)
    starts = [s.start for s in env.subprogs] + [n]
    cur = 0
    sub_start, sub_end = starts[0], starts[1]
    for i, ins in enumerate(insns):
        env.insn_idx = i
        code = ins.code
        cls = code & 7
        if cls in (5, 6) and code & 0xF0 not in (0x80, 0x90):
            target = i + (ins.imm if code == 0x06 else ins.off) + 1
            if target < sub_start or target >= sub_end:
                raise Refuse(f"jump out of range from insn {i} to {target}", EINVAL, i)
        if i == sub_end - 1:
            if code not in (0x95, 0x06, 0x05):
                raise Refuse("last insn is not an exit or jmp", EINVAL)
            sub_start = sub_end
            cur += 1
            if cur < len(env.subprogs):
                sub_end = starts[cur + 1]


def resolve_pseudo_ldimm64(env: Env) -> None:
    """The structural half of resolve_pseudo_ldimm64 (map fds are checked here too)."""
    insns = env.insns
    n = len(insns)
    i = 0
    while i < n:
        env.insn_idx = i
        ins = insns[i]
        if ins.code & 7 == 1 and (ins.code & 0xE0 != 0x60 or ins.imm != 0):
            raise Refuse("BPF_LDX uses reserved fields", EINVAL)
        if ins.code == 0x18:
            nxt = insns[i + 1] if i + 1 < n else None
            if nxt is None or nxt.code or nxt.dst or nxt.src or nxt.off:
                raise Refuse("invalid bpf_ld_imm64 insn", EINVAL)
            if ins.src in (0, 3, 4):
                if ins.src == 3:
                    raise Refuse("ld_imm64 of a BTF variable is not modelled (MODEL)", EINVAL)
                i += 2
                continue
            if ins.src in (1, 5) and nxt.imm != 0 or ins.src not in (1, 2, 5, 6):
                raise Refuse("unrecognized bpf_ld_imm64 insn", EINVAL)
            if ins.src in (5, 6):
                # EPROTO: verifier.c@6.1.192:13140
                raise Refuse("fd_idx without fd_array is invalid", 71)
            fd = ins.imm & 0xFFFFFFFF
            m = env.maps.get(fd)
            if m is None:
                # EBADF: __bpf_map_get's error, returned at verifier.c@6.1.192:13156
                raise Refuse(f"fd {ins.imm} is not pointing to valid bpf_map", 9)
            if ins.src == 2:
                off = nxt.imm & 0xFFFFFFFF
                if off >= 1 << 29:
                    raise Refuse(f"direct value offset of {off} is not allowed", EINVAL)
                if m.map_type not in ARRAY_LIKE:   # only arrays have map_direct_value_addr
                    raise Refuse("no direct value access support for this map type", EINVAL)
                # array_map_direct_value_addr (arraymap.c@6.1.192:177): one entry, offset inside
                if m.max_entries != 1 or off >= m.value_size:
                    raise Refuse(f"invalid access to map value pointer, value_size="
                                 f"{m.value_size} off={off}", EINVAL)
            i += 2
            continue
        if ins.code not in OPCODES:
            raise Refuse(f"unknown opcode {ins.code:02x}", EINVAL)
        i += 1


# check_cfg's insn states (verifier.c@6.1.192:10960)
_DISCOVERED, _EXPLORED, _FALLTHROUGH, _BRANCH = 0x10, 0x20, 1, 2


def check_cfg(env: Env) -> None:
    """Depth-first walk: no unreachable instruction, no back-edge except the bounded-loop kind
    a bpf_capable loader may use (conditional jumps and ``goto``), prune points marked."""
    insns = env.insns
    n = len(insns)
    state = [0] * n
    stack = [0]
    state[0] = _DISCOVERED
    prune = env.prune_points

    def push(t: int, w: int, e: int, loop_ok: bool) -> int:
        """push_insn: 1 = keep exploring, 0 = done."""
        if e == _FALLTHROUGH and state[t] >= (_DISCOVERED | _FALLTHROUGH):
            return 0
        if e == _BRANCH and state[t] >= (_DISCOVERED | _BRANCH):
            return 0
        if w < 0 or w >= n:
            raise Refuse(f"jump out of range from insn {t} to {w}", EINVAL, t)
        if e == _BRANCH:
            prune.add(w)
        if state[w] == 0:
            state[t] = _DISCOVERED | e
            state[w] = _DISCOVERED
            stack.append(w)
            return 1
        if state[w] & 0xF0 == _DISCOVERED:
            if loop_ok and env.caps.bpf_capable:
                return 0
            raise Refuse(f"back-edge from insn {t} to {w}", EINVAL, t)
        if state[w] == _EXPLORED:
            state[t] = _DISCOVERED | e
        return 0

    def visit(t: int) -> int:
        ins = insns[t]
        cls = ins.code & 7
        if ins.code == 0x18 and ins.src == 4:
            raise Refuse("callbacks (BPF_PSEUDO_FUNC) are not modelled (MODEL)", EINVAL)
        if cls not in (5, 6):
            return push(t, t + (2 if ins.code == 0x18 else 1), _FALLTHROUGH, False)
        op = ins.code & 0xF0
        if op == 0x90:
            return 0
        if op == 0x80:
            r = push(t, t + 1, _FALLTHROUGH, False)
            if r:
                return r
            prune.add(t + 1)
            if ins.src == 1:
                prune.add(t)
                r = push(t, t + ins.imm + 1, _BRANCH, False)
            return r
        if op == 0x00:
            if ins.code & 0x08:
                raise Refuse("BPF_JA uses reserved fields", EINVAL)
            off = ins.off if cls == 5 else ins.imm
            r = push(t, t + off + 1, _FALLTHROUGH, True)
            if r:
                return r
            prune.add(t + off + 1)
            return r
        prune.add(t)
        r = push(t, t + 1, _FALLTHROUGH, True)
        if r:
            return r
        return push(t, t + ins.off + 1, _BRANCH, True)

    while stack:
        t = stack[-1]
        if visit(t) == 0:
            state[t] = _EXPLORED
            stack.pop()
    i = 0
    while i < n:
        if state[i] != _EXPLORED:
            raise Refuse(f"unreachable insn {i}", EINVAL, i)
        if insns[i].code == 0x18:
            if i + 1 < n and state[i + 1] != 0:
                raise Refuse(f"jump into the middle of ldimm64 insn {i}", EINVAL, i)
            i += 1
        i += 1
