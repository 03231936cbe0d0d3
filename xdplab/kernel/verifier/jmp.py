"""Conditional jumps: branch prediction, bounds learnt on each side, packet ranges, NULL checks.

kernel/bpf/verifier.c@6.1.192: find_good_pkt_pointers (9655), is_branch{32,64}_taken (9734,
9808), is_branch_taken (9887), flip_opcode (9915), is_pkt_ptr_branch_taken (9936),
reg_set_min_max (9981), __reg_combine_min_max (10159), mark_ptr_or_null_reg(s) (10192, 10237),
try_match_pkt_pointers (10257), find_equal_scalars (10362), check_cond_jmp_op (10377),
mark_pkt_end (6797).
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Callable

from . import tnum as tn
from .env import EACCES, EINVAL, MAX_PACKET_OFF, Env, Refuse
from .mem import SRC_OP, check_reg_arg
from .paths import push_stack
from .precision import mark_chain_precision
from .regstate import (PTR_MAYBE_NULL, PTR_TO_MAP_KEY, PTR_TO_MAP_VALUE, PTR_TO_PACKET,
                       PTR_TO_PACKET_END, PTR_TO_PACKET_META, SCALAR_VALUE, Reg, base_type,
                       is_pointer_type, type_is_pkt_pointer)
from .state import VerifierState
from .tnum import U32, U64, s32, s64

JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE, JLT, JLE, JSLT, JSLE = (
    0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xA0, 0xB0, 0xC0, 0xD0)
_FLIP = MappingProxyType({JEQ: JEQ, JNE: JNE, JSET: JSET, JGE: JLE, JGT: JLT, JLE: JGE, JLT: JGT,
         JSGE: JSLE, JSGT: JSLT, JSLE: JSGE, JSLT: JSGT})
AT_PKT_END, BEYOND_PKT_END = -1, -2   # verifier.c@6.1.192:6793


def _is_ptr(reg: Reg) -> bool:
    """__is_pointer_value(false, reg) (verifier.c@6.1.192:3189)."""
    return is_pointer_type(reg.type)


def reg_is_pkt_pointer_any(reg: Reg) -> bool:
    return type_is_pkt_pointer(reg.type) or reg.type == PTR_TO_PACKET_END


def reg_is_init_pkt_pointer(reg: Reg, which: int) -> bool:
    return reg.type == which and reg.id == 0 and reg.off == 0 and reg.var_off.equals_const(0)


def find_good_pkt_pointers(vstate: VerifierState, dst: Reg, t: int, range_right_open: bool) -> None:
    """Every copy of ``dst`` (same type and id) may now read ``dst.off`` (+1) bytes."""
    if dst.off < 0 or (dst.off == 0 and range_right_open):
        return
    if dst.umax > MAX_PACKET_OFF or dst.umax + dst.off > MAX_PACKET_OFF:
        return
    new_range = dst.off + (1 if range_right_open else 0)
    ident = dst.id
    for reg in vstate.all_regs():
        if reg.type == t and reg.id == ident:
            reg.range = max(reg.range, new_range)


def mark_pkt_end(vstate: VerifierState, regno: int, range_open: bool) -> None:
    reg = vstate.cur.regs[regno]
    if reg.type != PTR_TO_PACKET:
        return
    reg.range = BEYOND_PKT_END if range_open else AT_PKT_END


def _branch_taken_bounds(opcode: int, val: int, lo_u: int, hi_u: int, lo_s: int, hi_s: int,
                         sval: int) -> int:
    if opcode == JGT:
        return 1 if lo_u > val else (0 if hi_u <= val else -1)
    if opcode == JSGT:
        return 1 if lo_s > sval else (0 if hi_s <= sval else -1)
    if opcode == JLT:
        return 1 if hi_u < val else (0 if lo_u >= val else -1)
    if opcode == JSLT:
        return 1 if hi_s < sval else (0 if lo_s >= sval else -1)
    if opcode == JGE:
        return 1 if lo_u >= val else (0 if hi_u < val else -1)
    if opcode == JSGE:
        return 1 if lo_s >= sval else (0 if hi_s < sval else -1)
    if opcode == JLE:
        return 1 if hi_u <= val else (0 if lo_u > val else -1)
    if opcode == JSLE:
        return 1 if hi_s <= sval else (0 if lo_s > sval else -1)
    return -1


def is_branch_taken(reg: Reg, val: int, opcode: int, is_jmp32: bool) -> int:
    """1: always taken, 0: never, -1: unknown.  is_branch_taken with is_branch{32,64}_taken
    folded together: their JEQ/JNE/JSET cases differ only in the tnum and value width."""
    if _is_ptr(reg):
        # reg_type_not_null (verifier.c@6.1.192:376): only map values/keys here
        if reg.type not in (PTR_TO_MAP_VALUE, PTR_TO_MAP_KEY) or val != 0:
            return -1
        return 0 if opcode == JEQ else (1 if opcode == JNE else -1)
    if is_jmp32:
        v = tn.subreg(reg.var_off)
        val &= U32
    else:
        v = reg.var_off
        val &= U64
    if opcode in (JEQ, JNE):
        if v.is_const():
            eq = v.value == val
            return int(eq) if opcode == JEQ else int(not eq)
        return -1
    if opcode == JSET:
        if (~v.mask & v.value) & val:
            return 1
        if not ((v.mask | v.value) & val):
            return 0
        return -1
    if is_jmp32:
        return _branch_taken_bounds(opcode, val, reg.u32_min, reg.u32_max, reg.s32_min,
                                    reg.s32_max, s32(val))
    return _branch_taken_bounds(opcode, val, reg.umin, reg.umax, reg.smin, reg.smax, s64(val))


def is_pkt_ptr_branch_taken(dst: Reg, src: Reg, opcode: int) -> int:
    if src.type == PTR_TO_PACKET_END:
        pkt = dst
    elif dst.type == PTR_TO_PACKET_END:
        pkt = src
        opcode = _FLIP[opcode]
    else:
        return -1
    if pkt.range >= 0:
        return -1
    if opcode in (JLE, JGT):
        if pkt.range == BEYOND_PKT_END:
            return int(opcode == JGT)
    elif opcode in (JLT, JGE):
        if pkt.range in (BEYOND_PKT_END, AT_PKT_END):
            return int(opcode == JGE)
    return -1


def reg_set_min_max(true_reg: Reg, false_reg: Reg, val: int, val32: int, opcode: int,
                    is_jmp32: bool) -> None:
    """What ``reg <op> val`` teaches on the taken (true) and fall-through (false) sides."""
    if _is_ptr(false_reg):
        return
    f32, f64 = tn.subreg(false_reg.var_off), false_reg.var_off
    t32, t64 = tn.subreg(true_reg.var_off), true_reg.var_off
    val &= U64
    val32 &= U32
    sval, sval32 = s64(val), s32(val32)
    if opcode == JEQ:
        if is_jmp32:
            true_reg.mark_reg32_known(val32)
            t32 = tn.subreg(true_reg.var_off)
        else:
            _mark_known_bounds(true_reg, val)
            t64 = true_reg.var_off
    elif opcode == JNE:
        if is_jmp32:
            false_reg.mark_reg32_known(val32)
            f32 = tn.subreg(false_reg.var_off)
        else:
            _mark_known_bounds(false_reg, val)
            f64 = false_reg.var_off
    elif opcode == JSET:
        false_reg.mark_unbounded()
        if is_jmp32:
            f32 = tn.and_(f32, tn.const(~val32 & U64))
            if val32 and not val32 & (val32 - 1):
                t32 = tn.or_(t32, tn.const(val32))
        else:
            f64 = tn.and_(f64, tn.const(~val & U64))
            if val and not val & (val - 1):
                t64 = tn.or_(t64, tn.const(val))
    elif opcode in (JGE, JGT):
        if is_jmp32:
            fmax = val32 if opcode == JGT else (val32 - 1) & U32
            tmin = (val32 + 1) & U32 if opcode == JGT else val32
            false_reg.u32_max = min(false_reg.u32_max, fmax)
            true_reg.u32_min = max(true_reg.u32_min, tmin)
        else:
            fmax = val if opcode == JGT else (val - 1) & U64
            tmin = (val + 1) & U64 if opcode == JGT else val
            false_reg.umax = min(false_reg.umax, fmax)
            true_reg.umin = max(true_reg.umin, tmin)
    elif opcode in (JSGE, JSGT):
        if is_jmp32:
            fmax = sval32 if opcode == JSGT else s32(sval32 - 1)
            tmin = s32(sval32 + 1) if opcode == JSGT else sval32
            false_reg.s32_max = min(false_reg.s32_max, fmax)
            true_reg.s32_min = max(true_reg.s32_min, tmin)
        else:
            fmax = sval if opcode == JSGT else s64(sval - 1)
            tmin = s64(sval + 1) if opcode == JSGT else sval
            false_reg.smax = min(false_reg.smax, fmax)
            true_reg.smin = max(true_reg.smin, tmin)
    elif opcode in (JLE, JLT):
        if is_jmp32:
            fmin = val32 if opcode == JLT else (val32 + 1) & U32
            tmax = (val32 - 1) & U32 if opcode == JLT else val32
            false_reg.u32_min = max(false_reg.u32_min, fmin)
            true_reg.u32_max = min(true_reg.u32_max, tmax)
        else:
            fmin = val if opcode == JLT else (val + 1) & U64
            tmax = (val - 1) & U64 if opcode == JLT else val
            false_reg.umin = max(false_reg.umin, fmin)
            true_reg.umax = min(true_reg.umax, tmax)
    elif opcode in (JSLE, JSLT):
        if is_jmp32:
            fmin = sval32 if opcode == JSLT else s32(sval32 + 1)
            tmax = s32(sval32 - 1) if opcode == JSLT else sval32
            false_reg.s32_min = max(false_reg.s32_min, fmin)
            true_reg.s32_max = min(true_reg.s32_max, tmax)
        else:
            fmin = sval if opcode == JSLT else s64(sval + 1)
            tmax = s64(sval - 1) if opcode == JSLT else sval
            false_reg.smin = max(false_reg.smin, fmin)
            true_reg.smax = min(true_reg.smax, tmax)
    else:
        return
    if is_jmp32:
        false_reg.var_off = tn.or_(tn.clear_subreg(f64), tn.subreg(f32))
        true_reg.var_off = tn.or_(tn.clear_subreg(t64), tn.subreg(t32))
        false_reg.combine_32_into_64()
        true_reg.combine_32_into_64()
    else:
        false_reg.var_off = f64
        true_reg.var_off = t64
        false_reg.combine_64_into_32()
        true_reg.combine_64_into_32()


def _mark_known_bounds(reg: Reg, val: int) -> None:
    """___mark_reg_known: exact value, keeping type/id/off."""
    reg.var_off = tn.const(val)
    reg.smin = reg.smax = s64(val)
    reg.umin = reg.umax = val
    reg.s32_min = reg.s32_max = s32(val)
    reg.u32_min = reg.u32_max = val & U32


def _combine_min_max(a: Reg, b: Reg) -> None:
    """__reg_combine_min_max: after ``a == b`` both have the intersection."""
    a.umin = b.umin = max(a.umin, b.umin)
    a.umax = b.umax = min(a.umax, b.umax)
    a.smin = b.smin = max(a.smin, b.smin)
    a.smax = b.smax = min(a.smax, b.smax)
    a.var_off = b.var_off = tn.intersect(a.var_off, b.var_off)
    a.bounds_sync()
    b.bounds_sync()


def mark_ptr_or_null_regs(vstate: VerifierState, regno: int, is_null: bool) -> None:
    ident = vstate.cur.regs[regno].id
    ref = vstate.cur.regs[regno].ref_obj_id
    if ref and ref == ident and is_null:     # a NULL result holds no reference
        vstate.refs[:] = [r for r in vstate.refs if r[0] != ident]
    for reg in vstate.all_regs():
        if reg.type & PTR_MAYBE_NULL and reg.id == ident and reg.id:
            if reg.smin or reg.smax or not reg.var_off.equals_const(0) or reg.off:
                continue
            if is_null:
                reg.type = SCALAR_VALUE
                reg.id = 0
                continue
            # mark_ptr_not_null_reg; map values of plain maps stay map values
            reg.type &= ~PTR_MAYBE_NULL
            if base_type(reg.type) == PTR_TO_MAP_VALUE:
                reg.type = PTR_TO_MAP_VALUE
            reg.id = 0


def try_match_pkt_pointers(code: int, dst_regno: int, src_regno: int, dst: Reg, src: Reg,
                           this: VerifierState, other: VerifierState) -> bool:
    if not code & 0x08 or code & 7 == 6:
        return False
    op = code & 0xF0
    left_pkt = (dst.type == PTR_TO_PACKET and src.type == PTR_TO_PACKET_END) or (
        dst.type == PTR_TO_PACKET_META and reg_is_init_pkt_pointer(src, PTR_TO_PACKET))
    right_pkt = (dst.type == PTR_TO_PACKET_END and src.type == PTR_TO_PACKET) or (
        reg_is_init_pkt_pointer(dst, PTR_TO_PACKET) and src.type == PTR_TO_PACKET_META)
    if op == JGT:
        if left_pkt:      # pkt > pkt_end: the fall-through side may read up to pkt
            find_good_pkt_pointers(this, dst, dst.type, False)
            mark_pkt_end(other, dst_regno, True)
        elif right_pkt:   # pkt_end > pkt
            find_good_pkt_pointers(other, src, src.type, True)
            mark_pkt_end(this, src_regno, False)
        else:
            return False
    elif op == JLT:
        if left_pkt:
            find_good_pkt_pointers(other, dst, dst.type, True)
            mark_pkt_end(this, dst_regno, False)
        elif right_pkt:
            find_good_pkt_pointers(this, src, src.type, False)
            mark_pkt_end(other, src_regno, True)
        else:
            return False
    elif op == JGE:
        if left_pkt:
            find_good_pkt_pointers(this, dst, dst.type, True)
            mark_pkt_end(other, dst_regno, False)
        elif right_pkt:
            find_good_pkt_pointers(other, src, src.type, False)
            mark_pkt_end(this, src_regno, True)
        else:
            return False
    elif op == JLE:
        if left_pkt:
            find_good_pkt_pointers(other, dst, dst.type, False)
            mark_pkt_end(this, dst_regno, True)
        elif right_pkt:
            find_good_pkt_pointers(this, src, src.type, True)
            mark_pkt_end(other, src_regno, False)
        else:
            return False
    else:
        return False
    return True


def find_equal_scalars(vstate: VerifierState, known: Reg) -> None:
    for reg in vstate.all_regs():
        if reg.type == SCALAR_VALUE and reg.id == known.id and reg is not known:
            keep_w, keep_def = reg.written, reg.subreg_def
            reg.assign(known)
            reg.written, reg.subreg_def = keep_w, keep_def


def check_cond_jmp_op(env: Env, code: int, dst_regno: int, src_regno: int, off: int, imm: int,
                      print_insn_state: Callable[[Env], None]) -> None:
    """check_cond_jmp_op: decide the branch if the state says so, else push the other side.

    ``src`` is the source register of a BPF_X jump and None for BPF_K (``code & 0x08``
    clear): the checks below test ``src is None`` for "BPF_K", which is the same condition."""
    this = env.cur
    rs = this.cur.regs
    op = code & 0xF0
    if op == 0x00 or op > JSLE:
        raise Refuse(f"invalid BPF_JMP/JMP32 opcode {op:x}", EINVAL)
    check_reg_arg(env, dst_regno, SRC_OP)
    dst = rs[dst_regno]
    src: Reg | None = None
    if code & 0x08:
        if imm:
            raise Refuse("BPF_JMP/JMP32 uses reserved fields", EINVAL)
        check_reg_arg(env, src_regno, SRC_OP)
        src = rs[src_regno]
        if not (reg_is_pkt_pointer_any(dst) and reg_is_pkt_pointer_any(src)) and _is_ptr(src) \
                and not env.caps.allow_ptr_leaks:
            raise Refuse(f"R{src_regno} pointer comparison prohibited", EACCES)
    elif src_regno:
        raise Refuse("BPF_JMP/JMP32 uses reserved fields", EINVAL)
    is_jmp32 = code & 7 == 6
    pred = -1
    if src is None:
        pred = is_branch_taken(dst, imm, op, is_jmp32)
    elif src.type == SCALAR_VALUE and is_jmp32 and tn.subreg(src.var_off).is_const():
        pred = is_branch_taken(dst, tn.subreg(src.var_off).value, op, is_jmp32)
    elif src.type == SCALAR_VALUE and not is_jmp32 and src.var_off.is_const():
        pred = is_branch_taken(dst, src.var_off.value, op, is_jmp32)
    elif reg_is_pkt_pointer_any(dst) and reg_is_pkt_pointer_any(src) and not is_jmp32:
        pred = is_pkt_ptr_branch_taken(dst, src, op)
    if pred >= 0:
        if not _is_ptr(dst):
            mark_chain_precision(env, dst_regno)
        if src is not None and not _is_ptr(src):
            mark_chain_precision(env, src_regno)
    if pred == 1:
        env.insn_idx += off
        print_insn_state(env)
        return
    if pred == 0:
        print_insn_state(env)
        return
    other = push_stack(env, env.insn_idx + off + 1, env.insn_idx)
    oregs = other.cur.regs
    if src is not None:
        if dst.type == SCALAR_VALUE and src.type == SCALAR_VALUE:
            if src.var_off.is_const() or (is_jmp32 and tn.subreg(src.var_off).is_const()):
                reg_set_min_max(oregs[dst_regno], dst, src.var_off.value,
                                tn.subreg(src.var_off).value, op, is_jmp32)
            elif dst.var_off.is_const() or (is_jmp32 and tn.subreg(dst.var_off).is_const()):
                fop = _FLIP.get(op)
                if fop:
                    reg_set_min_max(oregs[src_regno], src, dst.var_off.value,
                                    tn.subreg(dst.var_off).value, fop, is_jmp32)
            elif not is_jmp32 and op in (JEQ, JNE):
                if op == JEQ:
                    _combine_min_max(oregs[src_regno], oregs[dst_regno])
                else:
                    _combine_min_max(src, dst)
            if src.id:
                find_equal_scalars(this, src)
                find_equal_scalars(other, oregs[src_regno])
    elif dst.type == SCALAR_VALUE:
        reg_set_min_max(oregs[dst_regno], dst, imm & U64, imm & U32, op, is_jmp32)
    if dst.type == SCALAR_VALUE and dst.id:
        find_equal_scalars(this, dst)
        find_equal_scalars(other, oregs[dst_regno])
    if not is_jmp32 and src is None and imm == 0 and op in (JEQ, JNE) \
            and dst.type & PTR_MAYBE_NULL:
        mark_ptr_or_null_regs(this, dst_regno, op == JNE)
        mark_ptr_or_null_regs(other, dst_regno, op == JEQ)
    elif not try_match_pkt_pointers(code, dst_regno, src_regno, dst,
                                    rs[src_regno], this, other) \
            and _is_ptr(dst) and not env.caps.allow_ptr_leaks:
        raise Refuse(f"R{dst_regno} pointer comparison prohibited", EACCES)
    print_insn_state(env)


__all__ = ["check_cond_jmp_op", "is_branch_taken", "reg_set_min_max", "BEYOND_PKT_END",
           "AT_PKT_END", "PTR_TO_PACKET_META"]
