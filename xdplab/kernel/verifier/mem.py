"""Memory accesses: registers as operands, loads/stores through every pointer type, the stack.

Each function is the kernel function of the same name in kernel/bpf/verifier.c@6.1.192 (lines
cited per function), with its messages; ``Refuse`` replaces ``verbose(); return -E...``.
XDP's context rules are net/core/filter.c@6.1.192:8997-9044 (xdp_is_valid_access).
"""
from __future__ import annotations

from types import MappingProxyType

from ..maps import BpfMap
from . import tnum as tn
from .env import BPF_MAX_VAR_OFF, EACCES, EFAULT, EINVAL, Env, Refuse
from .regstate import (CONST_PTR_TO_MAP, MEM_RDONLY, NOT_INIT, PTR_MAYBE_NULL, PTR_TO_BTF_ID, PTR_TO_CTX,
                       PTR_TO_MAP_KEY, PTR_TO_MAP_VALUE, PTR_TO_MEM, PTR_TO_PACKET,
                       PTR_TO_PACKET_END, PTR_TO_PACKET_META, PTR_TO_STACK, S64_MIN, SCALAR_VALUE,
                       Reg, base_type, reg_type_str, type_is_pkt_pointer)
from .state import (BPF_REG_SIZE, MAX_BPF_REG, MAX_BPF_STACK, STACK_INVALID, STACK_MISC,
                    STACK_SPILL, STACK_ZERO, FuncState)
from ..structs import XDP_MD
from ..uapi import BPF_XDP_DEVMAP
from .precision import mark_chain_precision
from .tnum import U64

SRC_OP, DST_OP, DST_OP_NO_MARK = 0, 1, 2
BPF_READ, BPF_WRITE = 1, 2
ACCESS_DIRECT, ACCESS_HELPER = 1, 2

# struct xdp_md (include/uapi/linux/bpf.h@6.1.192:6100): its layout lives in structs.XDP_MD;
# the fields xdp_is_valid_access turns into packet pointers (net/core/filter.c@6.1.192:9031).
_XDP_MD_PTR_TYPE = MappingProxyType({XDP_MD.offsetof("data"): PTR_TO_PACKET,
                    XDP_MD.offsetof("data_end"): PTR_TO_PACKET_END,
                    XDP_MD.offsetof("data_meta"): PTR_TO_PACKET_META})
_EGRESS_IFINDEX = XDP_MD.offsetof("egress_ifindex")

# is_spillable_regtype (verifier.c@6.1.192:3138): every pointer type the verifier tracks.
SPILLABLE = frozenset({PTR_TO_MAP_VALUE, PTR_TO_STACK, PTR_TO_CTX, PTR_TO_PACKET,
                       PTR_TO_PACKET_META, PTR_TO_PACKET_END, CONST_PTR_TO_MAP, PTR_TO_BTF_ID,
                       PTR_TO_MEM, PTR_TO_MAP_KEY})


def regs(env: Env) -> list[Reg]:
    return env.cur.cur.regs


def check_reg_arg(env: Env, regno: int, t: int) -> None:
    """check_reg_arg (verifier.c@6.1.192:2430): "R%d !read_ok", "frame pointer is read only"."""
    if regno >= MAX_BPF_REG:
        raise Refuse(f"R{regno} is invalid", EINVAL)
    env.mark_reg_scratched(regno)
    reg = regs(env)[regno]
    if t == SRC_OP:
        if reg.type == NOT_INIT:
            raise Refuse(f"R{regno} !read_ok", EACCES)
        return
    if regno == 10:
        raise Refuse("frame pointer is read only", EACCES)
    reg.written = True
    if t == DST_OP:
        reg.set_unknown()


def reg_map(reg: Reg, regno: int) -> BpfMap:
    """reg->map_ptr of a map pointer (CONST_PTR_TO_MAP, PTR_TO_MAP_KEY/VALUE), which every
    path that makes one sets; a map pointer without a map is a bug of this model, refused
    with -EFAULT like the kernel's "verifier internal error" checks (verifier.c@6.1.192:6007)."""
    m = reg.map
    if m is None:
        raise Refuse(f"verifier internal error: R{regno} map pointer without a map (MODEL)",
                     EFAULT)
    return m


def reg_frame(env: Env, reg: Reg) -> FuncState:
    """func(env, reg): the frame a stack pointer points into."""
    return env.cur.frames[reg.frameno]


# -- alignment (verifier.c@6.1.192:4318-4400) ------------------------------------------------
def check_ptr_alignment(env: Env, reg: Reg, off: int, size: int, strict_once: bool = False) -> None:
    """Only the stack is always strict on x86-64 (efficient unaligned access)."""
    strict = strict_once
    if reg.type in (PTR_TO_PACKET, PTR_TO_PACKET_META):
        if not strict or size == 1:
            return
        ip_align = 2   # NET_IP_ALIGN as check_pkt_ptr_alignment assumes
        if not tn.is_aligned(tn.add(reg.var_off, tn.const(ip_align + reg.off + off)), size):
            raise Refuse(f"misaligned packet access off {ip_align}+{reg.var_off}+{reg.off}+{off} "
                         f"size {size}", EACCES)
        return
    desc = {PTR_TO_MAP_KEY: "key ", PTR_TO_MAP_VALUE: "value ", PTR_TO_CTX: "context ",
            PTR_TO_STACK: "stack "}.get(reg.type, "")
    if reg.type == PTR_TO_STACK:
        strict = True
    if not strict or size == 1:
        return
    if not tn.is_aligned(tn.add(reg.var_off, tn.const(reg.off + off)), size):
        raise Refuse(f"misaligned {desc}access off {reg.var_off}+{reg.off}+{off} size {size}", EACCES)


# -- bounded regions (verifier.c@6.1.192:3777-3860) ------------------------------------------
def _check_mem_access_msg(reg: Reg, regno: int, off: int, size: int, mem_size: int) -> str:
    t = reg.type
    if t == PTR_TO_MAP_KEY:
        return f"invalid access to map key, key_size={mem_size} off={off} size={size}"
    if t == PTR_TO_MAP_VALUE:
        return f"invalid access to map value, value_size={mem_size} off={off} size={size}"
    if t in (PTR_TO_PACKET, PTR_TO_PACKET_META, PTR_TO_PACKET_END):
        return (f"invalid access to packet, off={off} size={size}, "
                f"R{regno}(id={reg.id},off={off},r={mem_size})")
    return f"invalid access to memory, mem_size={mem_size} off={off} size={size}"


def _mem_ok(off: int, size: int, mem_size: int, zero_size_allowed: bool) -> bool:
    size_ok = size > 0 or (size == 0 and zero_size_allowed)
    return off >= 0 and size_ok and off + size <= mem_size


def check_mem_region_access(env: Env, regno: int, off: int, size: int, mem_size: int,
                            zero_size_allowed: bool) -> None:
    """check_mem_region_access: both ends of a variable offset must be inside."""
    reg = regs(env)[regno]
    if reg.smin < 0 and (reg.smin == S64_MIN or not -(1 << 31) <= off + reg.smin < (1 << 31)
                         or reg.smin + off < 0):
        raise Refuse(f"R{regno} min value is negative, either use unsigned index or do a "
                     "if (index >=0) check.", EACCES)
    if not _mem_ok(reg.smin + off, size, mem_size, zero_size_allowed):
        env.verbose(_check_mem_access_msg(reg, regno, reg.smin + off, size, mem_size) + "\n")
        raise Refuse(f"R{regno} min value is outside of the allowed memory range", EACCES)
    if reg.umax >= BPF_MAX_VAR_OFF:
        raise Refuse(f"R{regno} unbounded memory access, make sure to bounds check any such "
                     "access", EACCES)
    if not _mem_ok(reg.umax + off, size, mem_size, zero_size_allowed):
        env.verbose(_check_mem_access_msg(reg, regno, reg.umax + off, size, mem_size) + "\n")
        raise Refuse(f"R{regno} max value is outside of the allowed memory range", EACCES)


def check_packet_access(env: Env, regno: int, off: int, size: int, zero_size_allowed: bool) -> None:
    """check_packet_access (verifier.c@6.1.192:4149): the access must lie inside reg->range."""
    reg = regs(env)[regno]
    if reg.smin < 0:
        raise Refuse(f"R{regno} min value is negative, either use unsigned index or do a "
                     "if (index >=0) check.", EACCES)
    if reg.range < 0 or not _mem_ok(off, size, reg.range, zero_size_allowed):
        if reg.range >= 0:
            env.verbose(_check_mem_access_msg(reg, regno, off, size, reg.range) + "\n")
        raise Refuse(f"R{regno} offset is outside of the packet", EACCES)


def check_ptr_off_reg(reg: Reg, regno: int) -> None:
    """__check_ptr_off_reg with fixed_off_ok = false (verifier.c@6.1.192:3868)."""
    name = reg_type_str(reg.type)
    if reg.off < 0:
        raise Refuse(f"negative offset {name} ptr R{regno} off={reg.off} disallowed", EACCES)
    if reg.off:
        raise Refuse(f"dereference of modified {name} ptr R{regno} off={reg.off} disallowed", EACCES)
    if not reg.var_off.is_const() or reg.var_off.value:
        raise Refuse(f"variable {name} access var_off={reg.var_off} disallowed", EACCES)


def xdp_is_valid_access(off: int, size: int, t: int, attach_type: int) -> tuple[bool, int]:
    """xdp_is_valid_access (filter.c@6.1.192:9009) for a program that is not bound to hardware
    offload: reads only, aligned 4-byte, egress_ifindex only for BPF_XDP_DEVMAP programs."""
    if off == _EGRESS_IFINDEX and attach_type != BPF_XDP_DEVMAP:
        return False, SCALAR_VALUE
    if t == BPF_WRITE:
        return False, SCALAR_VALUE
    ok = 0 <= off < XDP_MD.size and off % size == 0 and size == 4
    return ok, _XDP_MD_PTR_TYPE.get(off, SCALAR_VALUE)


# -- the stack (verifier.c@6.1.192:3235-3420, 3516-3680, 4850-4947, 5297-5400) ---------------
def check_stack_access_within_bounds(env: Env, regno: int, off: int, size: int, src: int,
                                     t: int) -> None:
    reg = regs(env)[regno]
    state = reg_frame(env, reg)
    extra = " indirect access to" if src == ACCESS_HELPER else (" read from" if t == BPF_READ
                                                                 else " write to")
    if reg.var_off.is_const():
        min_off = tn.s64(reg.var_off.value) + off
        max_off = min_off + size
    else:
        if reg.smax >= BPF_MAX_VAR_OFF or reg.smin <= -BPF_MAX_VAR_OFF:
            raise Refuse(f"invalid unbounded variable-offset{extra} stack R{regno}", EACCES)
        min_off = reg.smin + off
        max_off = reg.smax + off + size
    min_valid = -MAX_BPF_STACK if (t == BPF_WRITE or env.caps.allow_uninit_stack) \
        else -state.allocated_stack
    bad = min_off < min_valid or min_off > -1 or max_off > 0 or size < 0
    if bad:
        if reg.var_off.is_const():
            raise Refuse(f"invalid{extra} stack R{regno} off={off} size={size}", EACCES)
        raise Refuse(f"invalid variable-offset{extra} stack R{regno} var_off={reg.var_off} "
                     f"size={size}", EACCES)
    state.grow_stack(-(-(-min_off) // BPF_REG_SIZE) * BPF_REG_SIZE)
    # grow_stack_state also raises the function's high-water mark (verifier.c@6.1.192:1053)
    info = env.subprogs[state.subprogno]
    info.stack_depth = max(info.stack_depth, state.allocated_stack)


def _scrub(slot_types: list[int], i: int) -> None:
    """scrub_spilled_slot: a byte that was part of a spill becomes STACK_MISC."""
    if slot_types[i] != STACK_INVALID:
        slot_types[i] = STACK_MISC


def save_register_state(state: FuncState, spi: int, reg: Reg, size: int) -> None:
    slot = state.stack[spi]
    slot.spilled.assign(reg)
    slot.spilled.written = size == BPF_REG_SIZE
    for i in range(BPF_REG_SIZE, BPF_REG_SIZE - size, -1):
        slot.slot_type[i - 1] = STACK_SPILL
    for i in range(BPF_REG_SIZE - size, 0, -1):
        _scrub(slot.slot_type, i - 1)


def check_stack_write_fixed_off(env: Env, state: FuncState, off: int, size: int,
                                value_regno: int, st_imm: int | None) -> None:
    slot = -off - 1
    spi = slot // BPF_REG_SIZE
    if not env.caps.allow_ptr_leaks and state.stack[spi].is_spilled_reg() and size != BPF_REG_SIZE:
        raise Refuse("attempt to corrupt spilled pointer on stack", EACCES)
    cur = env.cur.cur
    reg = cur.regs[value_regno] if value_regno >= 0 else None
    env.mark_stack_slot_scratched(spi)
    if reg is not None and off % BPF_REG_SIZE == 0 and reg.is_bounded() and not reg.is_null() \
            and env.caps.bpf_capable:
        if env.insns[env.insn_idx].dst != 10:
            mark_chain_precision(env, value_regno)
        save_register_state(state, spi, reg, size)
        if (reg.umax.bit_length()) > 8 * size:
            state.stack[spi].spilled.id = 0
    elif reg is None and off % BPF_REG_SIZE == 0 and st_imm is not None and st_imm != 0 \
            and env.caps.bpf_capable:
        fake = Reg()
        fake.set_const(st_imm)
        save_register_state(state, spi, fake, size)
    elif reg is not None and base_type(reg.type) in SPILLABLE:
        if size != BPF_REG_SIZE:
            raise Refuse("invalid size of register spill", EACCES)
        if state is not cur and reg.type == PTR_TO_STACK:
            raise Refuse("cannot spill pointers to stack into stack frame of the caller", EINVAL)
        save_register_state(state, spi, reg, size)
    else:
        st = state.stack[spi]
        kind = STACK_MISC
        st.spilled.type = NOT_INIT
        if st.is_spilled_reg():
            for i in range(BPF_REG_SIZE):
                _scrub(st.slot_type, i)
        if size == BPF_REG_SIZE:
            st.spilled.written = True
        if (reg is not None and reg.is_null()) or (reg is None and st_imm == 0):
            mark_chain_precision(env, value_regno)   # "backtracking doesn't work for STACK_ZERO yet"
            kind = STACK_ZERO
        for i in range(size):
            st.slot_type[(slot - i) % BPF_REG_SIZE] = kind


def check_stack_write_var_off(env: Env, state: FuncState, ptr_regno: int, off: int, size: int,
                              value_regno: int, st_imm: int | None) -> None:
    """check_stack_write_var_off: every byte the write may reach becomes MISC (or stays ZERO
    when a zero is written); spills in range are destroyed."""
    ptr = regs(env)[ptr_regno]
    value = regs(env)[value_regno] if value_regno >= 0 else None
    writing_zero = (value is not None and value.is_null()) or (value is None and st_imm == 0)
    min_off = ptr.smin + off
    max_off = ptr.smax + off + size
    for i in range(min_off, max_off):
        slot = -i - 1
        spi = slot // BPF_REG_SIZE
        st = state.stack[spi]
        stype = st.slot_type
        k = slot % BPF_REG_SIZE
        if not env.caps.allow_ptr_leaks and stype[k] not in (STACK_MISC, STACK_ZERO):
            raise Refuse(f"spilled ptr in range of var-offset stack write; insn {env.insn_idx}, "
                         f"ptr off: {off}", EACCES)
        st.spilled.set_unknown()
        new = STACK_MISC
        if writing_zero and stype[k] == STACK_ZERO:
            new = STACK_ZERO
        if stype[k] == STACK_INVALID and not env.caps.allow_uninit_stack:
            raise Refuse(f"uninit stack in range of var-offset write prohibited for !root; "
                         f"insn {env.insn_idx}, off: {i}", EACCES)
        stype[k] = new
    if writing_zero:
        mark_chain_precision(env, value_regno)


def mark_reg_stack_read(env: Env, ptr_state: FuncState, min_off: int, max_off: int,
                        dst_regno: int) -> None:
    """mark_reg_stack_read: all bytes STACK_ZERO -> known 0, else unknown."""
    zeros = 0
    for i in range(min_off, max_off):
        slot = -i - 1
        if ptr_state.stack[slot // BPF_REG_SIZE].slot_type[slot % BPF_REG_SIZE] != STACK_ZERO:
            break
        zeros += 1
    dst = regs(env)[dst_regno]
    if zeros == max_off - min_off:
        dst.set_const(0)
        dst.precise = True
    else:
        dst.set_unknown()
    dst.written = True


def check_stack_read_fixed_off(env: Env, reg_state: FuncState, off: int, size: int,
                               dst_regno: int) -> None:
    state = env.cur.cur
    slot = -off - 1
    spi = slot // BPF_REG_SIZE
    st = reg_state.stack[spi]
    stype = st.slot_type
    reg = st.spilled
    if st.is_spilled_reg():
        spill_size = 1
        i = BPF_REG_SIZE - 1
        while i > 0 and stype[i - 1] == STACK_SPILL:
            spill_size += 1
            i -= 1
        if size != BPF_REG_SIZE or spill_size != BPF_REG_SIZE:
            if reg.type != SCALAR_VALUE:
                raise Refuse("invalid size of register fill", EACCES)
            if dst_regno < 0:
                return
            if off % BPF_REG_SIZE == 0 and size == spill_size:
                dst = state.regs[dst_regno]
                keep = dst.subreg_def
                dst.assign(reg)
                dst.subreg_def = keep
            else:
                for i in range(size):
                    t = stype[(slot - i) % BPF_REG_SIZE]
                    if t in (STACK_SPILL, STACK_MISC) or (t == STACK_INVALID
                                                          and env.caps.allow_uninit_stack):
                        continue
                    raise Refuse(f"invalid read from stack off {off}+{i} size {size}", EACCES)
                state.regs[dst_regno].set_unknown()
            state.regs[dst_regno].written = True
            return
        if dst_regno >= 0:
            state.regs[dst_regno].assign(reg)
            state.regs[dst_regno].written = True
        elif reg.type not in (NOT_INIT, SCALAR_VALUE) and not env.caps.allow_ptr_leaks:
            raise Refuse(f"leaking pointer from stack off {off}", EACCES)
        return
    for i in range(size):
        t = stype[(slot - i) % BPF_REG_SIZE]
        if t in (STACK_MISC, STACK_ZERO) or (t == STACK_INVALID and env.caps.allow_uninit_stack):
            continue
        raise Refuse(f"invalid read from stack off {off}+{i} size {size}", EACCES)
    if dst_regno >= 0:
        mark_reg_stack_read(env, reg_state, off, off + size, dst_regno)


def check_stack_range_initialized(env: Env, regno: int, off: int, access_size: int,
                                  zero_size_allowed: bool, src: int, raw_mode: bool = False) -> None:
    """check_stack_range_initialized (verifier.c@6.1.192:5297): every byte a helper (or a
    variable-offset load) reads must be initialised; helper accesses clobber spills."""
    reg = regs(env)[regno]
    state = reg_frame(env, reg)
    extra = " indirect" if src == ACCESS_HELPER else ""
    if access_size == 0 and not zero_size_allowed:
        raise Refuse("invalid zero-sized read", EACCES)
    clobber = src == ACCESS_HELPER
    check_stack_access_within_bounds(env, regno, off, access_size, src,
                                     BPF_WRITE if src == ACCESS_HELPER else BPF_READ)
    if reg.var_off.is_const():
        min_off = max_off = tn.s64(reg.var_off.value) + off
    else:
        if not env.caps.bypass_spec_v1:
            raise Refuse(f"R{regno}{extra} variable offset stack access prohibited for !root, "
                         f"var_off={reg.var_off}", EACCES)
        raw_mode = False
        min_off = reg.smin + off
        max_off = reg.smax + off
    if raw_mode:
        return
    for i in range(min_off, max_off + access_size):
        slot = -i - 1
        spi = slot // BPF_REG_SIZE
        st = state.stack[spi]
        t = st.slot_type[slot % BPF_REG_SIZE]
        if t == STACK_MISC:
            continue
        if t == STACK_ZERO or (t == STACK_INVALID and env.caps.allow_uninit_stack):
            continue
        if st.is_spilled_reg() and (st.spilled.type == SCALAR_VALUE or env.caps.allow_ptr_leaks):
            if clobber:
                st.spilled.set_unknown()
                for j in range(BPF_REG_SIZE):
                    _scrub(st.slot_type, j)
            continue
        if reg.var_off.is_const():
            raise Refuse(f"invalid{extra} read from stack R{regno} off {min_off}+{i - min_off} "
                         f"size {access_size}", EACCES)
        raise Refuse(f"invalid{extra} read from stack R{regno} var_off {reg.var_off}+{i - min_off} "
                     f"size {access_size}", EACCES)


def check_stack_read(env: Env, ptr_regno: int, off: int, size: int, dst_regno: int) -> None:
    reg = regs(env)[ptr_regno]
    state = reg_frame(env, reg)
    if dst_regno < 0 and not reg.var_off.is_const():
        raise Refuse("variable offset stack pointer cannot be passed into helper function; "
                     f"var_off={reg.var_off} off={off} size={size}", EACCES)
    if reg.var_off.is_const():
        check_stack_read_fixed_off(env, state, off + tn.s64(reg.var_off.value), size, dst_regno)
    else:
        # check_stack_read_var_off
        check_stack_range_initialized(env, ptr_regno, off, size, False, ACCESS_DIRECT)
        min_off = reg.smin + off
        max_off = reg.smax + off
        mark_reg_stack_read(env, state, min_off, max_off + size, dst_regno)


def check_stack_write(env: Env, ptr_regno: int, off: int, size: int, value_regno: int,
                      st_imm: int | None) -> None:
    reg = regs(env)[ptr_regno]
    state = reg_frame(env, reg)
    if reg.var_off.is_const():
        check_stack_write_fixed_off(env, state, off + tn.s64(reg.var_off.value), size,
                                    value_regno, st_imm)
    else:
        check_stack_write_var_off(env, state, ptr_regno, off, size, value_regno, st_imm)


# -- check_mem_access (verifier.c@6.1.192:4948) --------------------------------------------------
def check_mem_access(env: Env, regno: int, off: int, size: int, t: int, value_regno: int,
                     st_imm: int | None = None, strict_once: bool = False) -> None:
    rs = regs(env)
    reg = rs[regno]
    check_ptr_alignment(env, reg, off, size, strict_once)
    off += reg.off
    leaks = t == BPF_WRITE and value_regno >= 0 and rs[value_regno].type not in (
        NOT_INIT, SCALAR_VALUE) and not env.caps.allow_ptr_leaks
    if reg.type == PTR_TO_MAP_KEY:
        if t == BPF_WRITE:
            raise Refuse(f"write to change key R{regno} not allowed", EACCES)
        check_mem_region_access(env, regno, off, size, reg_map(reg, regno).key_size, False)
        if value_regno >= 0:
            rs[value_regno].set_unknown()
    elif reg.type == PTR_TO_MAP_VALUE:
        if leaks:
            raise Refuse(f"R{value_regno} leaks addr into map", EACCES)
        check_mem_region_access(env, regno, off, size, reg_map(reg, regno).value_size, False)
        if t == BPF_READ and value_regno >= 0:
            rs[value_regno].set_unknown()
    elif base_type(reg.type) == PTR_TO_MEM:
        if reg.type & PTR_MAYBE_NULL:
            raise Refuse(f"R{regno} invalid mem access '{reg_type_str(reg.type)}'", EACCES)
        if t == BPF_WRITE and reg.type & MEM_RDONLY:
            raise Refuse(f"R{regno} cannot write into {reg_type_str(reg.type)}", EACCES)
        if leaks:
            raise Refuse(f"R{value_regno} leaks addr into mem", EACCES)
        check_mem_region_access(env, regno, off, size, reg.mem_size, False)
        if value_regno >= 0 and t == BPF_READ:
            rs[value_regno].set_unknown()
    elif reg.type == PTR_TO_CTX:
        if leaks:
            raise Refuse(f"R{value_regno} leaks addr into ctx", EACCES)
        check_ptr_off_reg(reg, regno)
        ok, reg_type = xdp_is_valid_access(off, size, t, env.expected_attach_type)
        if not ok:
            raise Refuse(f"invalid bpf_context access off={off} size={size}", EACCES)
        if t == BPF_READ and value_regno >= 0:
            dst = rs[value_regno]
            if reg_type == SCALAR_VALUE:
                dst.set_unknown()
            else:
                dst.set_pointer(reg_type)
                dst.subreg_def = 0
            dst.type = reg_type
    elif reg.type == PTR_TO_STACK:
        check_stack_access_within_bounds(env, regno, off, size, ACCESS_DIRECT, t)
        if t == BPF_READ:
            check_stack_read(env, regno, off, size, value_regno)
        else:
            check_stack_write(env, regno, off, size, value_regno, st_imm)
    elif type_is_pkt_pointer(reg.type):
        if leaks:
            raise Refuse(f"R{value_regno} leaks addr into packet", EACCES)
        check_packet_access(env, regno, off, size, False)
        if t == BPF_READ and value_regno >= 0:
            rs[value_regno].set_unknown()
    elif base_type(reg.type) == PTR_TO_BTF_ID and not reg.type & PTR_MAYBE_NULL:
        # MODEL: no BTF struct layouts; kfuncs of the designs return scalars only.
        raise Refuse(f"R{regno} invalid mem access '{reg_type_str(reg.type)}'", EACCES)
    else:
        raise Refuse(f"R{regno} invalid mem access '{reg_type_str(reg.type)}'", EACCES)
    if size < BPF_REG_SIZE and value_regno >= 0 and t == BPF_READ \
            and rs[value_regno].type == SCALAR_VALUE:
        rs[value_regno].coerce_to_size(size)


def check_helper_mem_access(env: Env, regno: int, access_size: int, access_type: int,
                            zero_size_allowed: bool, raw_mode: bool = False) -> None:
    """check_helper_mem_access (verifier.c@6.1.192:5411): memory a helper or kfunc touches."""
    reg = regs(env)[regno]
    bt = base_type(reg.type)
    if bt in (PTR_TO_PACKET, PTR_TO_PACKET_META):
        check_packet_access(env, regno, reg.off, access_size, zero_size_allowed)
    elif bt == PTR_TO_MAP_KEY:
        if access_type == BPF_WRITE:
            raise Refuse(f"R{regno} cannot write into {reg_type_str(reg.type)}", EACCES)
        check_mem_region_access(env, regno, reg.off, access_size, reg_map(reg, regno).key_size,
                                False)
    elif bt == PTR_TO_MAP_VALUE:
        check_mem_region_access(env, regno, reg.off, access_size, reg_map(reg, regno).value_size,
                                zero_size_allowed)
    elif bt == PTR_TO_MEM:
        check_mem_region_access(env, regno, reg.off, access_size, reg.mem_size, zero_size_allowed)
    elif bt == PTR_TO_STACK:
        check_stack_range_initialized(env, regno, reg.off, access_size, zero_size_allowed,
                                      ACCESS_HELPER, raw_mode)
    else:
        if zero_size_allowed and access_size == 0 and reg.is_null():
            return
        raise Refuse(f"R{regno} type={reg_type_str(reg.type)} expected="
                     f"{reg_type_str(PTR_TO_STACK)}", EACCES)


def check_atomic(env: Env, code: int, dst: int, src: int, off: int, imm: int) -> None:
    """check_atomic (verifier.c@6.1.192:5183)."""
    if imm not in (0x00, 0x01, 0x50, 0x51, 0x40, 0x41, 0xA0, 0xA1, 0xE1, 0xF1):
        raise Refuse(f"BPF_ATOMIC uses invalid atomic opcode {imm:02x}", EINVAL)
    size = code & 0x18
    if size not in (0x00, 0x18):
        raise Refuse("invalid atomic operand size", EINVAL)
    check_reg_arg(env, src, SRC_OP)
    check_reg_arg(env, dst, SRC_OP)
    rs = regs(env)
    if imm == 0xF1:   # BPF_CMPXCHG
        check_reg_arg(env, 0, SRC_OP)
        if rs[0].type not in (NOT_INIT, SCALAR_VALUE) and not env.caps.allow_ptr_leaks:
            raise Refuse("R0 leaks addr into mem", EACCES)
    if rs[src].type not in (NOT_INIT, SCALAR_VALUE) and not env.caps.allow_ptr_leaks:
        raise Refuse(f"R{src} leaks addr into mem", EACCES)
    t = rs[dst].type
    if t == PTR_TO_CTX or type_is_pkt_pointer(t):
        raise Refuse(f"BPF_ATOMIC stores into R{dst} {reg_type_str(t)} is not allowed", EACCES)
    load_reg = -1
    if imm & 0x01:   # BPF_FETCH: the loaded register is written before the access is checked
        load_reg = 0 if imm == 0xF1 else src
        check_reg_arg(env, load_reg, DST_OP)
    nbytes = 8 if size == 0x18 else 4
    check_mem_access(env, dst, off, nbytes, BPF_READ, -1, strict_once=True)
    if load_reg >= 0:
        check_mem_access(env, dst, off, nbytes, BPF_READ, load_reg, strict_once=True)
    check_mem_access(env, dst, off, nbytes, BPF_WRITE, -1, strict_once=True)


__all__ = ["ACCESS_DIRECT", "ACCESS_HELPER", "BPF_READ", "BPF_WRITE", "DST_OP", "DST_OP_NO_MARK",
           "EFAULT", "SRC_OP", "U64", "check_atomic", "check_helper_mem_access",
           "check_mem_access", "check_reg_arg", "check_stack_range_initialized"]
