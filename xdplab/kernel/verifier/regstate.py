"""Register states: ``struct bpf_reg_state`` and the scalar-bounds rules that keep it coherent.

The verifier's working state is mutable on purpose, as the kernel's is: a path's state is
changed instruction by instruction and *copied* where the kernel copies it (push_stack,
is_state_visited; see :mod:`.state`).  Nothing mutable leaves the package: callers get a
frozen :class:`~.result.VerifierResult`.

Sources: include/linux/bpf_verifier.h@6.1.192 (struct bpf_reg_state), include/linux/bpf.h@6.1.192
(enum bpf_reg_type, PTR_MAYBE_NULL), kernel/bpf/verifier.c@6.1.192:1380-1680 (the bounds
functions __update_reg_bounds, __reg_deduce_bounds, __reg_bound_offset, reg_bounds_sync,
__reg_combine_64_into_32 ...), written again here over Python ints.
"""
from __future__ import annotations

from types import MappingProxyType

from ..maps import BpfMap
from . import tnum as tn
from .tnum import U32, U64, s32, s64

S64_MIN, S64_MAX = -(1 << 63), (1 << 63) - 1
S32_MIN, S32_MAX = -(1 << 31), (1 << 31) - 1

# enum bpf_reg_type, include/linux/bpf.h@6.1.192 (order matters only for printing tables).
NOT_INIT = 0
SCALAR_VALUE = 1
PTR_TO_CTX = 2
CONST_PTR_TO_MAP = 3
PTR_TO_MAP_VALUE = 4
PTR_TO_MAP_KEY = 5
PTR_TO_STACK = 6
PTR_TO_PACKET_META = 7
PTR_TO_PACKET = 8
PTR_TO_PACKET_END = 9
PTR_TO_BTF_ID = 16
PTR_TO_MEM = 17
PTR_TO_BUF = 18
# Type flags above BPF_BASE_TYPE_BITS = 8 (bpf.h@6.1.192 enum bpf_type_flag).
PTR_MAYBE_NULL = 1 << 8
MEM_RDONLY = 1 << 9
MEM_ALLOC = 1 << 10
BASE_TYPE_MASK = 0xFF

# reg_type_str's table, kernel/bpf/verifier.c@6.1.192:492.
_TYPE_STR = MappingProxyType({NOT_INIT: "?", SCALAR_VALUE: "scalar", PTR_TO_CTX: "ctx", CONST_PTR_TO_MAP: "map_ptr",
             PTR_TO_MAP_VALUE: "map_value", PTR_TO_STACK: "fp", PTR_TO_PACKET: "pkt",
             PTR_TO_PACKET_META: "pkt_meta", PTR_TO_PACKET_END: "pkt_end", PTR_TO_BTF_ID: "ptr_",
             PTR_TO_MEM: "mem", PTR_TO_MAP_KEY: "map_key", PTR_TO_BUF: "buf"})


def base_type(t: int) -> int:
    return t & BASE_TYPE_MASK


def reg_type_str(t: int) -> str:
    """reg_type_str (verifier.c@6.1.192:488): base name plus "_or_null" for PTR_MAYBE_NULL."""
    name = _TYPE_STR.get(base_type(t), f"type{base_type(t)}")
    prefix = "alloc_" if t & MEM_ALLOC else ("rdonly_" if t & MEM_RDONLY else "")
    if t & PTR_MAYBE_NULL:
        return prefix + name + ("or_null_" if base_type(t) == PTR_TO_BTF_ID else "_or_null")
    return prefix + name


def type_is_pkt_pointer(t: int) -> bool:
    """type_is_pkt_pointer: PTR_TO_PACKET or PTR_TO_PACKET_META."""
    return t in (PTR_TO_PACKET, PTR_TO_PACKET_META)


def is_pointer_type(t: int) -> bool:
    return t not in (NOT_INIT, SCALAR_VALUE)


# Keys that compare register states by value (hashable, so explored states can be indexed).
BoundsKey = tuple[tn.Tnum, int, int, int, int, int, int, int, int]
ExactKey = tuple[int | str | tn.Tnum, ...]


class Reg:
    """``struct bpf_reg_state`` (the fields an XDP verifier needs).

    ``range`` is the packet range (bytes known readable from ``off``) of pkt pointers;
    ``map`` the BpfMap of map pointers; ``frameno`` the frame of a stack pointer;
    ``btf_name`` names the struct a PTR_TO_BTF_ID points to; ``written`` is REG_LIVE_WRITTEN
    (printed as ``_w``); ``precise`` is the precision mark (printed as ``P``).
    """

    __slots__ = ("type", "off", "id", "range", "map", "frameno", "btf_name", "mem_size", "var_off",
                 "smin", "smax", "umin", "umax", "s32_min", "s32_max", "u32_min", "u32_max",
                 "written", "subreg_def", "precise", "ref_obj_id")

    def __init__(self) -> None:
        self.written = False
        self.subreg_def = 0
        self.precise = False
        self.set_not_init()

    def copy(self) -> "Reg":
        r = Reg.__new__(Reg)
        for name in Reg.__slots__:
            setattr(r, name, getattr(self, name))
        return r

    def assign(self, other: "Reg") -> None:
        """copy_register_state: *dst = *src."""
        for name in Reg.__slots__:
            setattr(self, name, getattr(other, name))

    # -- marking (verifier.c@6.1.192:1280-1700) --------------------------------------------
    def _clear_ptr_fields(self) -> None:
        self.off = 0
        self.id = 0
        self.range = 0
        self.map: BpfMap | None = None
        self.frameno = 0
        self.btf_name = ""
        self.mem_size = 0
        self.ref_obj_id = 0

    def mark_unbounded(self) -> None:
        """__mark_reg_unbounded."""
        self.smin, self.smax, self.umin, self.umax = S64_MIN, S64_MAX, 0, U64
        self.s32_min, self.s32_max, self.u32_min, self.u32_max = S32_MIN, S32_MAX, 0, U32

    def mark_reg64_unbounded(self) -> None:
        self.smin, self.smax, self.umin, self.umax = S64_MIN, S64_MAX, 0, U64

    def mark_reg32_unbounded(self) -> None:
        self.s32_min, self.s32_max, self.u32_min, self.u32_max = S32_MIN, S32_MAX, 0, U32

    def set_unknown(self) -> None:
        """__mark_reg_unknown: a scalar about which nothing is known (precise = !bpf_capable,
        i.e. False for the root loader modelled here)."""
        self._clear_ptr_fields()
        self.precise = False
        self.type = SCALAR_VALUE
        self.var_off = tn.UNKNOWN
        self.mark_unbounded()

    def set_not_init(self) -> None:
        """__mark_reg_not_init."""
        self.set_unknown()
        self.type = NOT_INIT

    def mark_known(self, imm: int) -> None:
        """__mark_reg_known: keeps the type, clears id/off/range, sets an exact value."""
        self._clear_ptr_fields()
        imm &= U64
        self.var_off = tn.const(imm)
        self.smin = self.smax = s64(imm)
        self.umin = self.umax = imm
        self.s32_min = self.s32_max = s32(imm)
        self.u32_min = self.u32_max = imm & U32

    def set_const(self, imm: int) -> None:
        """A known scalar (type SCALAR_VALUE + __mark_reg_known)."""
        self.type = SCALAR_VALUE
        self.mark_known(imm)

    def mark_known_zero(self) -> None:
        """__mark_reg_known_zero."""
        self.mark_known(0)

    def mark_reg32_known(self, imm: int) -> None:
        """__mark_reg32_known."""
        self.var_off = tn.const_subreg(self.var_off, imm)
        self.s32_min = self.s32_max = s32(imm)
        self.u32_min = self.u32_max = imm & U32

    def set_pointer(self, t: int, *, map: BpfMap | None = None, frameno: int = 0,
                    mem_size: int = 0) -> None:
        """mark_reg_known_zero + type: a pointer with offset 0 and the given attributes (the
        defaults are the cleared values mark_known_zero leaves)."""
        self.mark_known_zero()
        self.type = t
        self.map = map
        self.frameno = frameno
        self.mem_size = mem_size

    # -- bounds (verifier.c@6.1.192:1434-1640) ---------------------------------------------
    def update_reg32_bounds(self) -> None:
        """__update_reg32_bounds (verifier.c@6.1.192:1434): tighten the 32-bit ranges by var_off."""
        v = tn.subreg(self.var_off)
        self.s32_min = max(self.s32_min, s32(v.value | (v.mask & 0x80000000)))
        self.s32_max = min(self.s32_max, s32(v.value | (v.mask & 0x7FFFFFFF)))
        self.u32_min = max(self.u32_min, v.value & U32)
        self.u32_max = min(self.u32_max, (v.value | v.mask) & U32)

    def update_reg64_bounds(self) -> None:
        """__update_reg64_bounds (verifier.c@6.1.192:1449)."""
        v = self.var_off
        self.smin = max(self.smin, s64(v.value | (v.mask & (1 << 63))))
        self.smax = min(self.smax, s64(v.value | (v.mask & S64_MAX)))
        self.umin = max(self.umin, v.value)
        self.umax = min(self.umax, v.value | v.mask)

    def update_reg_bounds(self) -> None:
        """__update_reg_bounds (verifier.c@6.1.192:1462)."""
        self.update_reg32_bounds()
        self.update_reg64_bounds()

    def deduce_bounds(self) -> None:
        """__reg_deduce_bounds (verifier.c@6.1.192:1537): share what the signed and unsigned
        views know.  The two halves stay written out, as the kernel's two functions are: this runs
        on every bounds sync."""
        # __reg32_deduce_bounds (verifier.c@6.1.192:1469); max_t(u32, ...) compares the (u32) casts.
        if self.s32_min >= 0 or self.s32_max < 0:
            lo = max(self.s32_min & U32, self.u32_min)
            hi = min(self.s32_max & U32, self.u32_max)
            self.s32_min, self.u32_min = s32(lo), lo
            self.s32_max, self.u32_max = s32(hi), hi
        elif s32(self.u32_max) >= 0:
            self.s32_min = s32(self.u32_min)
            hi = min(self.s32_max & U32, self.u32_max)
            self.s32_max, self.u32_max = s32(hi), hi
        elif s32(self.u32_min) < 0:
            lo = max(self.s32_min & U32, self.u32_min)
            self.s32_min, self.u32_min = s32(lo), lo
            self.s32_max = s32(self.u32_max)
        # __reg64_deduce_bounds (verifier.c@6.1.192:1503)
        if self.smin >= 0 or self.smax < 0:
            lo = max(self.smin & U64, self.umin)
            hi = min(self.smax & U64, self.umax)
            self.smin, self.umin = s64(lo), lo
            self.smax, self.umax = s64(hi), hi
        elif s64(self.umax) >= 0:
            self.smin = s64(self.umin)
            hi = min(self.smax & U64, self.umax)
            self.smax, self.umax = s64(hi), hi
        elif s64(self.umin) < 0:
            lo = max(self.smin & U64, self.umin)
            self.smin, self.umin = s64(lo), lo
            self.smax = s64(self.umax)

    def bound_offset(self) -> None:
        """__reg_bound_offset (verifier.c@6.1.192:1544): fold the unsigned ranges back into var_off."""
        v64 = tn.intersect(self.var_off, tn.trange(self.umin, self.umax))
        v32 = tn.intersect(tn.subreg(v64), tn.trange(self.u32_min, self.u32_max))
        self.var_off = tn.or_(tn.clear_subreg(v64), v32)

    def bounds_sync(self) -> None:
        """reg_bounds_sync (verifier.c@6.1.192:1556)."""
        self.update_reg_bounds()
        self.deduce_bounds()
        self.bound_offset()
        self.update_reg_bounds()

    def assign_32_into_64(self) -> None:
        """__reg_assign_32_into_64 (verifier.c@6.1.192:1576)."""
        self.umin, self.umax = self.u32_min, self.u32_max
        if 0 <= self.s32_min <= S32_MAX and 0 <= self.s32_max <= S32_MAX:
            self.smin, self.smax = self.s32_min, self.s32_max
        else:
            self.smin, self.smax = 0, U32

    def combine_32_into_64(self) -> None:
        """__reg_combine_32_into_64 (verifier.c@6.1.192:1595)."""
        if tn.clear_subreg(self.var_off).equals_const(0):
            self.assign_32_into_64()
        else:
            self.mark_reg64_unbounded()
        self.bounds_sync()

    def combine_64_into_32(self) -> None:
        """__reg_combine_64_into_32 (verifier.c@6.1.192:1626)."""
        self.mark_reg32_unbounded()
        if S32_MIN <= self.smin <= S32_MAX and S32_MIN <= self.smax <= S32_MAX:
            self.s32_min, self.s32_max = self.smin, self.smax
        if self.umin <= U32 and self.umax <= U32:
            self.u32_min, self.u32_max = self.umin, self.umax
        self.bounds_sync()

    def zext_32_to_64(self) -> None:
        """zext_32_to_64 (verifier.c@6.1.192:4640): a 32-bit ALU result has its upper half zero."""
        self.var_off = tn.subreg(self.var_off)
        self.assign_32_into_64()

    def coerce_to_size(self, size: int) -> None:
        """coerce_reg_to_size (verifier.c@6.1.192:4649): a b/h/w load zero-extends."""
        self.var_off = tn.cast(self.var_off, size)
        mask = (1 << (size * 8)) - 1
        if (self.umin & ~mask) == (self.umax & ~mask):
            self.umin &= mask
            self.umax &= mask
        else:
            self.umin, self.umax = 0, mask
        self.smin, self.smax = self.umin, self.umax
        # "If size is smaller than 32bit register the 32bit register values are also
        # truncated so we push 64-bit bounds into 32-bit bounds."
        if size < 4:
            self.combine_64_into_32()

    # -- queries ----------------------------------------------------------------------------
    def is_const(self) -> bool:
        return self.var_off.is_const()

    def is_null(self) -> bool:
        """register_is_null: a scalar known to be 0."""
        return self.type == SCALAR_VALUE and self.var_off.equals_const(0)

    def is_bounded(self) -> bool:
        """register_is_bounded: a scalar with finite 64-bit bounds."""
        return self.type == SCALAR_VALUE and not (
            self.smin == S64_MIN and self.smax == S64_MAX and self.umin == 0 and self.umax == U64)

    def bounds_key(self) -> BoundsKey:
        return (self.var_off, self.smin, self.smax, self.umin, self.umax,
                self.s32_min, self.s32_max, self.u32_min, self.u32_max)

    def exact_key(self) -> ExactKey:
        """Everything that makes two states of a register the same (regs_exact, MODEL of memcmp)."""
        return (self.type, self.off, self.id, self.range, id(self.map) if self.map is not None else 0,
                self.frameno, self.btf_name, self.mem_size, self.ref_obj_id) + self.bounds_key()
