"""ALU instructions: scalar bounds arithmetic and pointer arithmetic.

kernel/bpf/verifier.c@6.1.192: check_alu_op (9482), adjust_reg_min_max_vals (9396),
adjust_ptr_min_max_vals (8437), adjust_scalar_min_max_vals (9235) and the scalar*_min_max_*
helpers (8668-9229).  Speculative-execution sanitation (sanitize_ptr_alu, sanitize_val_alu) is
skipped: the workbench loads as root, and bypass_spec_v1/v4 hold (MODEL).
"""
from __future__ import annotations

from types import MappingProxyType

from . import tnum as tn
from .env import BPF_MAX_VAR_OFF, EACCES, EINVAL, Env, Refuse
from .mem import DST_OP, DST_OP_NO_MARK, SRC_OP, check_reg_arg, regs
from .precision import mark_chain_precision
from .regstate import (CONST_PTR_TO_MAP, PTR_MAYBE_NULL, PTR_TO_PACKET_END, PTR_TO_STACK,
                       S32_MAX, S32_MIN, S64_MAX, S64_MIN, SCALAR_VALUE, Reg, base_type,
                       reg_type_str, type_is_pkt_pointer)
from .tnum import U32, U64, s32, s64

BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70)
BPF_NEG, BPF_MOD, BPF_XOR, BPF_MOV, BPF_ARSH, BPF_END = 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0
# bpf_alu_string (disasm.c@6.1.192:70), used in the pointer-arithmetic messages.
ALU_STRING = MappingProxyType({0x00: "+=", 0x10: "-=", 0x20: "*=", 0x30: "/=", 0x40: "|=", 0x50: "&=",
              0x60: "<<=", 0x70: ">>=", 0x80: "neg", 0x90: "%=", 0xA0: "^=", 0xB0: "=",
              0xC0: "s>>=", 0xD0: "endian"})


def _s64_overflows(x: int) -> bool:
    return not S64_MIN <= x <= S64_MAX


def _s32_overflows(x: int) -> bool:
    return not S32_MIN <= x <= S32_MAX


# -- scalar ops -------------------------------------------------------------------------------
def _add(d: Reg, s: Reg) -> None:
    lo, hi = d.s32_min + s.s32_min, d.s32_max + s.s32_max
    d.s32_min, d.s32_max = (S32_MIN, S32_MAX) if _s32_overflows(lo) or _s32_overflows(hi) else (lo, hi)
    lo, hi = d.u32_min + s.u32_min, d.u32_max + s.u32_max
    d.u32_min, d.u32_max = (0, U32) if lo > U32 or hi > U32 else (lo, hi)
    lo, hi = d.smin + s.smin, d.smax + s.smax
    d.smin, d.smax = (S64_MIN, S64_MAX) if _s64_overflows(lo) or _s64_overflows(hi) else (lo, hi)
    lo, hi = d.umin + s.umin, d.umax + s.umax
    d.umin, d.umax = (0, U64) if lo > U64 or hi > U64 else (lo, hi)
    d.var_off = tn.add(d.var_off, s.var_off)


def _sub(d: Reg, s: Reg) -> None:
    lo, hi = d.s32_min - s.s32_max, d.s32_max - s.s32_min
    d.s32_min, d.s32_max = (S32_MIN, S32_MAX) if _s32_overflows(lo) or _s32_overflows(hi) else (lo, hi)
    if d.u32_min < s.u32_max:
        d.u32_min, d.u32_max = 0, U32
    else:
        d.u32_min, d.u32_max = d.u32_min - s.u32_max, d.u32_max - s.u32_min
    lo, hi = d.smin - s.smax, d.smax - s.smin
    d.smin, d.smax = (S64_MIN, S64_MAX) if _s64_overflows(lo) or _s64_overflows(hi) else (lo, hi)
    if d.umin < s.umax:
        d.umin, d.umax = 0, U64
    else:
        d.umin, d.umax = d.umin - s.umax, d.umax - s.umin
    d.var_off = tn.sub(d.var_off, s.var_off)


def _mul(d: Reg, s: Reg) -> None:
    d.var_off = tn.mul(d.var_off, s.var_off)
    # scalar32_min_max_mul
    if s.s32_min < 0 or d.s32_min < 0 or s.u32_max > 0xFFFF or d.u32_max > 0xFFFF:
        d.mark_reg32_unbounded()
    else:
        d.u32_min, d.u32_max = (d.u32_min * s.u32_min) & U32, (d.u32_max * s.u32_max) & U32
        if d.u32_max > S32_MAX:
            d.s32_min, d.s32_max = S32_MIN, S32_MAX
        else:
            d.s32_min, d.s32_max = d.u32_min, d.u32_max
    # scalar_min_max_mul
    if s.smin < 0 or d.smin < 0 or s.umax > U32 or d.umax > U32:
        d.mark_reg64_unbounded()
    else:
        d.umin, d.umax = d.umin * s.umin, d.umax * s.umax
        if d.umax > S64_MAX:
            d.smin, d.smax = S64_MIN, S64_MAX
        else:
            d.smin, d.smax = d.umin, d.umax


# tnum_and / tnum_or / tnum_xor, chosen once per op (adjust_scalar_min_max_vals,
# kernel/bpf/verifier.c@6.1.192:9328-9338 sets var_off before the scalar*_min_max_* calls).
_BITWISE_TNUM = MappingProxyType({BPF_AND: tn.and_, BPF_OR: tn.or_, BPF_XOR: tn.xor})


def _bitwise_urange(op: int, v: tn.Tnum, d_umin: int, d_umax: int, s_umin: int,
                    s_umax: int) -> tuple[int, int]:
    """The unsigned range of ``dst op src`` given its tnum ``v`` (the same rule at 32 and 64 bits):
    AND can only clear bits (min = known ones, max <= both maxima), OR can only set them
    (min >= both minima, max = all maybe-ones), XOR either (known ones .. maybe-ones)."""
    if op == BPF_AND:
        return v.value, min(d_umax, s_umax)
    if op == BPF_OR:
        return max(d_umin, s_umin), v.value | v.mask
    return v.value, v.value | v.mask


def _bitwise(d: Reg, s: Reg, op: int) -> None:
    """scalar{32,}_min_max_{and,or,xor} (kernel/bpf/verifier.c@6.1.192:8840-9035).  The signed
    range is the unsigned one when both inputs are non-negative; the kernel spells that test
    ``!(a < 0 || b < 0)`` for AND/OR and ``a >= 0 && b >= 0`` for XOR, the same condition."""
    d.var_off = _BITWISE_TNUM[op](d.var_off, s.var_off)
    v32 = tn.subreg(d.var_off)
    if tn.subreg(s.var_off).is_const() and v32.is_const():
        d.mark_reg32_known(v32.value)
    else:
        d.u32_min, d.u32_max = _bitwise_urange(op, v32, d.u32_min, d.u32_max, s.u32_min, s.u32_max)
        if d.s32_min >= 0 and s.s32_min >= 0:
            d.s32_min, d.s32_max = s32(d.u32_min), s32(d.u32_max)
        else:
            d.s32_min, d.s32_max = S32_MIN, S32_MAX
    if s.var_off.is_const() and d.var_off.is_const():
        d.mark_known(d.var_off.value)
        return
    d.umin, d.umax = _bitwise_urange(op, d.var_off, d.umin, d.umax, s.umin, s.umax)
    if d.smin >= 0 and s.smin >= 0:
        d.smin, d.smax = s64(d.umin), s64(d.umax)
    else:
        d.smin, d.smax = S64_MIN, S64_MAX
    d.update_reg_bounds()


def _lsh32_bounds(d: Reg, umin: int, umax: int) -> None:
    """__scalar32_min_max_lsh."""
    d.s32_min, d.s32_max = S32_MIN, S32_MAX
    if umax > 31 or d.u32_max > 1 << (31 - umax):
        d.u32_min, d.u32_max = 0, U32
    else:
        d.u32_min, d.u32_max = (d.u32_min << umin) & U32, (d.u32_max << umax) & U32


def _lsh(d: Reg, s: Reg, alu32: bool) -> None:
    if alu32:
        sub = tn.subreg(d.var_off)
        _lsh32_bounds(d, s.u32_min, s.u32_max)
        d.var_off = tn.subreg(tn.lshift(sub, s.u32_min))
        d.mark_reg64_unbounded()
        d.update_reg32_bounds()
        return
    umin, umax = s.umin, s.umax
    if umin == 32 and umax == 32:   # __scalar64_min_max_lsh
        d.smax, d.smin = d.s32_max << 32, d.s32_min << 32
    else:
        d.smax, d.smin = S64_MAX, S64_MIN
    if d.umax > 1 << (63 - umax):
        d.umin, d.umax = 0, U64
    else:
        d.umin, d.umax = (d.umin << umin) & U64, (d.umax << umax) & U64
    _lsh32_bounds(d, umin, umax)
    d.var_off = tn.lshift(d.var_off, umin)
    d.update_reg_bounds()


def _rsh(d: Reg, s: Reg, alu32: bool) -> None:
    if alu32:
        sub = tn.subreg(d.var_off)
        d.s32_min, d.s32_max = S32_MIN, S32_MAX
        d.var_off = tn.rshift(sub, s.u32_min)
        d.u32_min >>= s.u32_max
        d.u32_max >>= s.u32_min
        d.mark_reg64_unbounded()
        d.update_reg32_bounds()
        return
    d.smin, d.smax = S64_MIN, S64_MAX
    d.var_off = tn.rshift(d.var_off, s.umin)
    d.umin >>= s.umax
    d.umax >>= s.umin
    d.mark_reg32_unbounded()
    d.update_reg_bounds()


def _arsh(d: Reg, s: Reg, alu32: bool) -> None:
    if alu32:
        sh = s.u32_min
        d.s32_min, d.s32_max = d.s32_min >> sh, d.s32_max >> sh
        d.var_off = tn.arshift(tn.subreg(d.var_off), sh, 32)
        d.u32_min, d.u32_max = 0, U32
        d.mark_reg64_unbounded()
        d.update_reg32_bounds()
        return
    sh = s.umin
    d.smin, d.smax = d.smin >> sh, d.smax >> sh
    d.var_off = tn.arshift(d.var_off, sh, 64)
    d.umin, d.umax = 0, U64
    d.mark_reg32_unbounded()
    d.update_reg_bounds()


# The shift cases of adjust_scalar_min_max_vals (verifier.c@6.1.192:9342-9380).
_SHIFTS = MappingProxyType({BPF_LSH: _lsh, BPF_RSH: _rsh, BPF_ARSH: _arsh})


def adjust_scalar_min_max_vals(env: Env, code: int, d: Reg, s: Reg) -> None:
    """adjust_scalar_min_max_vals (verifier.c@6.1.192:9235): ``d op= s`` on bounds and tnums."""
    op = code & 0xF0
    alu32 = code & 7 != 7
    bitness = 32 if alu32 else 64
    if alu32:
        known = tn.subreg(s.var_off).is_const()
        if (known and (s.s32_min != s.s32_max or s.u32_min != s.u32_max)) \
                or s.s32_min > s.s32_max or s.u32_min > s.u32_max:
            d.set_unknown()
            return
    else:
        known = s.var_off.is_const()
        if (known and (s.smin != s.smax or s.umin != s.umax)) or s.smin > s.smax or s.umin > s.umax:
            d.set_unknown()
            return
    if not known and op not in (BPF_ADD, BPF_SUB, BPF_AND):
        d.set_unknown()
        return
    if op == BPF_ADD:
        _add(d, s)
    elif op == BPF_SUB:
        _sub(d, s)
    elif op == BPF_MUL:
        _mul(d, s)
    elif op in (BPF_AND, BPF_OR, BPF_XOR):
        _bitwise(d, s, op)
    elif op in _SHIFTS:
        if s.umax >= bitness:
            d.set_unknown()
        else:
            _SHIFTS[op](d, s, alu32)
    else:
        d.set_unknown()
    if alu32:
        d.zext_32_to_64()
    d.bounds_sync()


# -- pointer arithmetic -----------------------------------------------------------------------
def check_reg_sane_offset(reg: Reg, t: int) -> None:
    """check_reg_sane_offset (verifier.c@6.1.192:8380)."""
    name = reg_type_str(t)
    val = s64(reg.var_off.value)
    if reg.var_off.is_const() and (val >= BPF_MAX_VAR_OFF or val <= -BPF_MAX_VAR_OFF):
        raise Refuse(f"math between {name} pointer and {val} is not allowed", EINVAL)
    if reg.off >= BPF_MAX_VAR_OFF or reg.off <= -BPF_MAX_VAR_OFF:
        raise Refuse(f"{name} pointer offset {reg.off} is not allowed", EINVAL)
    if reg.smin == S64_MIN:
        raise Refuse(f"math between {name} pointer and register with unbounded min value is "
                     "not allowed", EINVAL)
    if reg.smin >= BPF_MAX_VAR_OFF or reg.smin <= -BPF_MAX_VAR_OFF:
        raise Refuse(f"value {reg.smin} makes {name} pointer be out of bounds", EINVAL)


def adjust_ptr_min_max_vals(env: Env, code: int, dst: int, ptr: Reg, off_reg: Reg) -> None:
    """adjust_ptr_min_max_vals: pointer += / -= scalar; everything else on pointers refused."""
    d = regs(env)[dst]
    op = code & 0xF0
    known = off_reg.var_off.is_const()
    smin_val, smax_val, umin_val, umax_val = off_reg.smin, off_reg.smax, off_reg.umin, off_reg.umax
    if (known and (smin_val != smax_val or umin_val != umax_val)) or smin_val > smax_val \
            or umin_val > umax_val:
        d.set_unknown()
        return
    if code & 7 != 7:
        if op == BPF_SUB and env.caps.allow_ptr_leaks:
            d.set_unknown()
            return
        raise Refuse(f"R{dst} 32-bit pointer arithmetic prohibited", EACCES)
    if ptr.type & PTR_MAYBE_NULL:
        raise Refuse(f"R{dst} pointer arithmetic on {reg_type_str(ptr.type)} prohibited, "
                     "null-check it first", EACCES)
    bt = base_type(ptr.type)
    if (bt == CONST_PTR_TO_MAP and not (known and smin_val == 0 and op == BPF_ADD)) \
            or bt == PTR_TO_PACKET_END:
        raise Refuse(f"R{dst} pointer arithmetic on {reg_type_str(ptr.type)} prohibited", EACCES)
    # "For 'scalar += pointer', dst_reg inherits the complete pointer register state."
    p = ptr.copy()
    if d is not ptr:
        d.assign(p)
        d.written = True
    check_reg_sane_offset(off_reg, p.type)
    check_reg_sane_offset(p, p.type)
    d.mark_reg32_unbounded()
    if op == BPF_ADD:
        if known and -(1 << 31) <= p.off + smin_val < (1 << 31):
            d.smin, d.smax, d.umin, d.umax = p.smin, p.smax, p.umin, p.umax
            d.var_off = p.var_off
            d.off = p.off + smin_val
            _copy_raw(d, p)
        else:
            lo, hi = p.smin + smin_val, p.smax + smax_val
            d.smin, d.smax = (S64_MIN, S64_MAX) if _s64_overflows(lo) or _s64_overflows(hi) else (lo, hi)
            lo, hi = p.umin + umin_val, p.umax + umax_val
            d.umin, d.umax = (0, U64) if lo > U64 or hi > U64 else (lo, hi)
            d.var_off = tn.add(p.var_off, off_reg.var_off)
            d.off = p.off
            _copy_raw(d, p)
            if type_is_pkt_pointer(p.type):
                d.id = env.new_id()
                d.range = 0
    elif op == BPF_SUB:
        if d is not ptr:
            raise Refuse(f"R{dst} tried to subtract pointer from scalar", EACCES)
        if p.type == PTR_TO_STACK:
            raise Refuse(f"R{dst} subtraction from stack pointer prohibited", EACCES)
        if known and -(1 << 31) <= p.off - smin_val < (1 << 31):
            d.smin, d.smax, d.umin, d.umax = p.smin, p.smax, p.umin, p.umax
            d.var_off = p.var_off
            d.id = p.id
            d.off = p.off - smin_val
            _copy_raw(d, p)
        else:
            lo, hi = p.smin - smax_val, p.smax - smin_val
            d.smin, d.smax = (S64_MIN, S64_MAX) if _s64_overflows(lo) or _s64_overflows(hi) else (lo, hi)
            if p.umin < umax_val:
                d.umin, d.umax = 0, U64
            else:
                d.umin, d.umax = p.umin - umax_val, p.umax - umin_val
            d.var_off = tn.sub(p.var_off, off_reg.var_off)
            d.off = p.off
            _copy_raw(d, p)
            if type_is_pkt_pointer(p.type):
                d.id = env.new_id()
                if smin_val < 0:
                    d.range = 0
    elif op in (BPF_AND, BPF_OR, BPF_XOR):
        raise Refuse(f"R{dst} bitwise operator {ALU_STRING[op]} on pointer prohibited", EACCES)
    else:
        raise Refuse(f"R{dst} pointer arithmetic with {ALU_STRING[op]} operator prohibited", EACCES)
    check_reg_sane_offset(d, p.type)
    d.bounds_sync()


def _copy_raw(d: Reg, p: Reg) -> None:
    """dst_reg->raw = ptr_reg->raw: range, map, frame, BTF and memory size travel along."""
    d.range, d.map, d.frameno, d.btf_name, d.mem_size = p.range, p.map, p.frameno, p.btf_name, p.mem_size


def adjust_reg_min_max_vals(env: Env, code: int, dst: int, src: int, imm: int) -> None:
    rs = regs(env)
    d = rs[dst]
    op = code & 0xF0
    ptr = None
    if d.type != SCALAR_VALUE:
        ptr = d
    else:
        d.id = 0
    if code & 0x08:
        s = rs[src]
        if s.type != SCALAR_VALUE:
            if d.type != SCALAR_VALUE:
                if op == BPF_SUB and env.caps.allow_ptr_leaks:
                    d.set_unknown()
                    return
                raise Refuse(f"R{dst} pointer {ALU_STRING[op]} pointer prohibited", EACCES)
            mark_chain_precision(env, dst)
            off_reg = d.copy()
            adjust_ptr_min_max_vals(env, code, dst, s, off_reg)
            return
        if ptr is not None:
            mark_chain_precision(env, src)
            adjust_ptr_min_max_vals(env, code, dst, d, s.copy())
            return
        if d.precise:
            mark_chain_precision(env, src)
        adjust_scalar_min_max_vals(env, code, d, s.copy())
        return
    k = Reg()
    k.set_const(imm)
    if ptr is not None:
        adjust_ptr_min_max_vals(env, code, dst, d, k)
        return
    adjust_scalar_min_max_vals(env, code, d, k)


def check_alu_op(env: Env, code: int, dst: int, src: int, off: int, imm: int) -> None:
    """check_alu_op (verifier.c@6.1.192:9314): operand checks, then the bounds update."""
    rs = regs(env)
    op = code & 0xF0
    is64 = code & 7 == 7
    if op in (BPF_END, BPF_NEG):
        if op == BPF_NEG:
            if code & 0x08 or src or off or imm:
                raise Refuse("BPF_NEG uses reserved fields", EINVAL)
        elif src or off or imm not in (16, 32, 64) or is64:
            raise Refuse("BPF_END uses reserved fields", EINVAL)
        check_reg_arg(env, dst, SRC_OP)
        if rs[dst].type != SCALAR_VALUE and not env.caps.allow_ptr_leaks:
            raise Refuse(f"R{dst} pointer arithmetic prohibited", EACCES)
        check_reg_arg(env, dst, DST_OP)
        return
    if op == BPF_MOV:
        if code & 0x08:
            if imm or off:
                raise Refuse("BPF_MOV uses reserved fields", EINVAL)
            check_reg_arg(env, src, SRC_OP)
        elif src or off:
            raise Refuse("BPF_MOV uses reserved fields", EINVAL)
        check_reg_arg(env, dst, DST_OP_NO_MARK)
        d = rs[dst]
        if code & 0x08:
            s = rs[src]
            if is64:
                if s.type == SCALAR_VALUE and not s.id:
                    s.id = env.new_id()
                d.assign(s)
                d.written = True
                d.subreg_def = 0
            else:
                if s.type not in (SCALAR_VALUE,) and not env.caps.allow_ptr_leaks:
                    raise Refuse(f"R{src} partial copy of pointer", EACCES)
                if s.type == SCALAR_VALUE:
                    d.assign(s)
                    d.id = 0
                    d.written = True
                else:
                    d.set_unknown()
                d.zext_32_to_64()
                d.bounds_sync()
        else:
            d.set_unknown()
            d.mark_known(imm if is64 else imm & U32)
        return
    if op > BPF_END:
        raise Refuse(f"invalid BPF_ALU opcode {op:x}", EINVAL)
    if code & 0x08:
        if imm or off:
            raise Refuse("BPF_ALU uses reserved fields", EINVAL)
        check_reg_arg(env, src, SRC_OP)
    elif src or off:
        raise Refuse("BPF_ALU uses reserved fields", EINVAL)
    check_reg_arg(env, dst, SRC_OP)
    if op in (BPF_MOD, BPF_DIV) and not code & 0x08 and imm == 0:
        raise Refuse("div by zero", EINVAL)
    if op in (BPF_LSH, BPF_RSH, BPF_ARSH) and not code & 0x08:
        size = 64 if is64 else 32
        if imm < 0 or imm >= size:
            raise Refuse(f"invalid shift {imm}", EINVAL)
    check_reg_arg(env, dst, DST_OP_NO_MARK)
    adjust_reg_min_max_vals(env, code, dst, src, imm)
