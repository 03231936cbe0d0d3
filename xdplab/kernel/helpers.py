"""Helper implementations for XDP programs: maps, bpf_trace_printk, tail calls, ring buffers.

Each helper is ``fn(ctx, r1..r5) -> r0`` as :class:`xdplab.bpf.machine.Env` wants it.  The
kernel sources, 6.1.192: map helpers kernel/bpf/helpers.c (bpf_map_lookup_elem and friends,
dispatching to kernel/bpf/arraymap.c and kernel/bpf/hashtab.c), bpf_trace_printk
kernel/trace/bpf_trace.c:374 with bpf_bprintf_prepare kernel/bpf/helpers.c:811 and the
format rules of lib/vsprintf.c bstr_printf, tail calls kernel/bpf/core.c:1914 (JMP_TAIL_CALL)
with MAX_TAIL_CALL_CNT include/linux/bpf.h:1493, ring buffers kernel/bpf/ringbuf.c.

What a helper needs from the packet being run (the trace lines, the tail-call count) it takes
from ``state()``: an object with ``trace: list[str]`` and ``tail_calls: int``.
MODEL: one CPU (per-CPU maps have one copy; bpf_get_smp_processor_id returns 0); exact LRU
order (the kernel's LRU lists are approximate); a tail call starts the target on a fresh
stack (the interpreter keeps the frame; nothing observable differs for verified programs).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol

from ..bpf.errors import BpfError
from ..bpf.machine import M64, CallContext
from .maps import (ARRAY_LIKE, BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_PROG_ARRAY, BPF_MAP_TYPE_RINGBUF,
                   BPF_RINGBUF_BUSY_BIT, BPF_RINGBUF_DISCARD_BIT, BPF_RINGBUF_HDR_SZ, HASH_LIKE, BpfMap)
from .uapi import E2BIG, EINVAL, ENOENT
from .verifier.helper_ids import FUNC_NAMES

EEXIST = 17          # include/uapi/asm-generic/errno-base.h@6.1.192:21
EAGAIN = 11          # include/uapi/asm-generic/errno-base.h@6.1.192:15
BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2          # include/uapi/linux/bpf.h@6.1.192:1229-1231
BPF_RB_NO_WAKEUP, BPF_RB_FORCE_WAKEUP = 1, 2       # include/uapi/linux/bpf.h@6.1.192:5818-5819
BPF_RB_AVAIL_DATA, BPF_RB_RING_SIZE, BPF_RB_CONS_POS, BPF_RB_PROD_POS = range(4)   # bpf.h@6.1.192:5824
MAX_TAIL_CALL_CNT = 33                             # include/linux/bpf.h@6.1.192:1493
MAX_TRACE_PRINTK_VARARGS = 3                       # kernel/trace/bpf_trace.c@6.1.192:371
MAX_BPRINTF_VARARGS = 12                           # include/linux/bpf.h@6.1.192:2822
MAX_BPRINTF_BUF = 1024                             # include/linux/bpf.h@6.1.192:2823

# Helper names by id (include/uapi/linux/bpf.h@6.1.192:5478 __BPF_FUNC_MAPPER): one table,
# the verifier's.
HELPER_NAMES_6_1 = FUNC_NAMES

BPF_FUNC_map_lookup_elem, BPF_FUNC_map_update_elem, BPF_FUNC_map_delete_elem = 1, 2, 3
BPF_FUNC_trace_printk, BPF_FUNC_get_smp_processor_id, BPF_FUNC_tail_call = 6, 8, 12
BPF_FUNC_ringbuf_output, BPF_FUNC_ringbuf_reserve, BPF_FUNC_ringbuf_submit = 130, 131, 132
BPF_FUNC_ringbuf_discard, BPF_FUNC_ringbuf_query, BPF_FUNC_trace_vprintk = 133, 134, 177
BPF_FUNC_redirect_map, BPF_FUNC_xdp_adjust_meta = 51, 54
# What an XDP program may call here: the helpers below plus the two XdpRxQueue implements
# itself (bpf_redirect_map, bpf_xdp_adjust_meta).
XDP_HELPER_IDS = frozenset({BPF_FUNC_map_lookup_elem, BPF_FUNC_map_update_elem, BPF_FUNC_map_delete_elem,
                            BPF_FUNC_trace_printk, BPF_FUNC_get_smp_processor_id, BPF_FUNC_tail_call,
                            BPF_FUNC_ringbuf_output, BPF_FUNC_ringbuf_reserve, BPF_FUNC_ringbuf_submit,
                            BPF_FUNC_ringbuf_discard, BPF_FUNC_ringbuf_query, BPF_FUNC_trace_vprintk,
                            BPF_FUNC_redirect_map, BPF_FUNC_xdp_adjust_meta})


def known_helper(imm: int) -> bool:
    """Whether ``imm`` is a helper id of 6.1 (0 < imm < __BPF_FUNC_MAX_ID)."""
    return 0 < imm < len(HELPER_NAMES_6_1)


def helper_name(imm: int) -> str:
    """``bpf_<name>`` as kernel/bpf/disasm.c's func_id_str names it, ``unknown#N`` past the table."""
    return f"bpf_{HELPER_NAMES_6_1[imm]}" if known_helper(imm) else f"unknown#{imm}"


def helper_call_problem(imm: int) -> str | None:
    """Why a call to helper ``imm`` cannot load as XDP here (None if it can).  Wording of
    check_helper_call (kernel/bpf/verifier.c@6.1.192): an id past __BPF_FUNC_MAX_ID is
    "invalid func unknown#N"; an id the program type has no proto for is "unknown func
    bpf_name#N" (here also: a real helper that is not simulated)."""
    if not known_helper(imm):
        return f"invalid func unknown#{imm}"
    if imm not in XDP_HELPER_IDS:
        return (f"unknown func {helper_name(imm)}#{imm} (a 6.1 helper that xdplab does not simulate "
                "for XDP programs)")
    return None


class TailCall(BpfError):
    """Raised by bpf_tail_call to leave the running program; the runner starts ``target``
    (a loaded program) with the same ctx.  Not a fault: it is how the jump is modelled."""

    def __init__(self, target: Any, index: int) -> None:
        super().__init__(f"tail call to the program at prog_array index {index}")
        self.target = target


def _neg(errno: int) -> int:
    return (-errno) & M64


# ------------------------------------------------------------------------------ printk
def _c_string(ctx: CallContext, addr: int, limit: int) -> bytes | None:
    r = ctx.machine.space.region_at(addr)
    if r is None:
        return None
    raw = bytes(r.data[addr - r.base: min(r.end, addr + limit) - r.base])
    end = raw.find(b"\0")
    return raw if end < 0 else raw[:end]


def bprintf(fmt: bytes, args: tuple[int, ...], read_mem: Callable[[int, int], bytes | None]) -> str | int:
    """Format like bpf_bprintf_prepare + bstr_printf: the text, or a negative errno when the
    kernel refuses the format (-EINVAL: no NUL within fmt_size, an ASCII control byte, more
    conversions than arguments, a conversion it does not support).  ``read_mem(addr, n)``
    reads memory for %s and %pI4/%pI6 (None: unreadable, which the kernel prints as
    ``(efault)``-free empty text for strings and zeros for addresses)."""
    end = fmt.find(b"\0")
    if end < 0:
        return -EINVAL
    fmt = fmt[:end]
    out: list[str] = []
    i, n, spec = 0, len(fmt), 0
    while i < n:
        c = fmt[i]
        if c < 0x80 and not (0x20 <= c < 0x7F or c in b" \t\n\v\f\r"):
            return -EINVAL
        if c != ord("%"):
            j = i
            while j < n and fmt[j] != ord("%"):
                if fmt[j] < 0x80 and not (0x20 <= fmt[j] < 0x7F or fmt[j] in b" \t\n\v\f\r"):
                    return -EINVAL
                j += 1
            out.append(fmt[i:j].decode("utf-8", errors="replace"))
            i = j
            continue
        if i + 1 < n and fmt[i + 1] == ord("%"):
            out.append("%")
            i += 2
            continue
        if spec >= len(args):
            return -EINVAL
        i += 1
        flags = ""
        while i < n and chr(fmt[i]) in "0+- ":
            flags += chr(fmt[i])
            i += 1
        width = ""
        if i < n and ord("1") <= fmt[i] <= ord("9"):
            while i < n and ord("0") <= fmt[i] <= ord("9"):
                width += chr(fmt[i])
                i += 1
        at = lambda k: chr(fmt[k]) if k < n else "\0"     # noqa: E731 (the C string's NUL)
        arg = args[spec]
        spec += 1
        pad = lambda s: _pad(s, flags, width)              # noqa: E731
        ch = at(i)
        if ch == "p":
            nxt = at(i + 1)
            if nxt == "\0" or nxt.isspace() or _ispunct(nxt):
                out.append(pad(f"{arg & M64:016x}"))          # MODEL: the kernel prints a hashed id
                i += 1
                continue
            if nxt in "ku" and at(i + 2) == "s":
                i += 2
                ch = "s"
            elif nxt in "KxsSB":
                out.append(pad(f"{arg & M64:016x}" if nxt in "xK" else f"0x{arg & M64:x}"))
                i += 2
                continue
            elif nxt in "iI" and at(i + 2) in "46":
                size = 4 if at(i + 2) == "4" else 16
                raw = read_mem(arg & M64, size) or bytes(size)
                if size == 4:
                    text = ".".join(f"{b:03d}" if nxt == "i" else str(b) for b in raw)
                elif nxt == "I":
                    text = ":".join(raw[k:k + 2].hex() for k in range(0, 16, 2))
                else:
                    text = raw.hex()
                out.append(pad(text))
                i += 3
                continue
            else:
                return -EINVAL
        if ch == "s":
            nxt = at(i + 1)
            if not (nxt == "\0" or nxt.isspace() or _ispunct(nxt)):
                return -EINVAL
            text_raw = read_mem(arg & M64, MAX_BPRINTF_BUF)
            out.append(pad("" if text_raw is None else text_raw.decode("utf-8", errors="replace")))
            i += 1
            continue
        if ch == "c":
            out.append(pad(chr(arg & 0xFF)))
            i += 1
            continue
        bits = 32
        if ch == "l":
            bits, i = 64, i + 1
            if at(i) == "l":
                i += 1
        ch = at(i)
        if ch not in "iduxX":
            return -EINVAL
        v = arg & ((1 << bits) - 1)
        if ch in "id" and v >> (bits - 1):
            v -= 1 << bits
        text = {"x": f"{v:x}", "X": f"{v:X}"}.get(ch, str(v))
        if ch in "id" and "+" in flags and v >= 0:
            text = "+" + text
        elif ch in "id" and " " in flags and v >= 0:
            text = " " + text
        out.append(pad(text))
        i += 1
    return "".join(out)[:MAX_BPRINTF_BUF - 1]


def _ispunct(ch: str) -> bool:
    return 0x21 <= ord(ch) <= 0x7E and not ch.isalnum()


def _pad(text: str, flags: str, width: str) -> str:
    w = int(width) if width else 0
    if len(text) >= w:
        return text
    if "-" in flags:
        return text.ljust(w)
    if "0" in flags and text[:1] in "+- " and text[1:].isalnum():
        return text[0] + text[1:].rjust(w - 1, "0")
    return text.rjust(w, "0" if "0" in flags else " ")


# ------------------------------------------------------------------------------ the table
class HelperRunState(Protocol):
    """What the helpers keep per packet in the runner's state (``xdplab.kernel.xdp``'s
    ``_PacketState``): the trace_pipe lines and the tail calls taken so far."""

    trace: list[str]
    tail_calls: int


class XdpHelpers:
    """The map, trace, tail-call and ringbuf helpers of one program run context.

    ``maps``: the kernel's maps by fd; ``state()``: the packet being run (see module doc)."""

    def __init__(self, maps: Mapping[int, BpfMap], state: Callable[[], HelperRunState]) -> None:
        self.maps = maps
        self.state = state

    def table(self) -> dict[int, Callable[..., int]]:
        return {BPF_FUNC_map_lookup_elem: self.map_lookup_elem, BPF_FUNC_map_update_elem: self.map_update_elem,
                BPF_FUNC_map_delete_elem: self.map_delete_elem, BPF_FUNC_trace_printk: self.trace_printk,
                BPF_FUNC_get_smp_processor_id: lambda ctx, *r: 0, BPF_FUNC_tail_call: self.tail_call,
                BPF_FUNC_ringbuf_output: self.ringbuf_output, BPF_FUNC_ringbuf_reserve: self.ringbuf_reserve,
                BPF_FUNC_ringbuf_submit: self.ringbuf_submit, BPF_FUNC_ringbuf_discard: self.ringbuf_discard,
                BPF_FUNC_ringbuf_query: self.ringbuf_query, BPF_FUNC_trace_vprintk: self.trace_vprintk}

    def _map(self, addr: int) -> BpfMap | None:
        return next((m for m in self.maps.values() if m.address == addr), None)

    # ---------------------------------------------------------------- maps
    def _slot(self, m: BpfMap, key: bytes, create: bool) -> int | None:
        """The value slot of ``key`` in a HASH/LRU map; with ``create`` a free slot is taken
        (LRU: the least recently used entry is evicted when full, htab_lru_map_update_elem)."""
        st = m.store
        if key in st.slots:
            if m.map_type == BPF_MAP_TYPE_LRU_HASH:
                st.slots.move_to_end(key)
            return st.slots[key]
        if not create:
            return None
        if len(st.slots) >= m.max_entries:
            if m.map_type != BPF_MAP_TYPE_LRU_HASH:
                return None
            _, freed = st.slots.popitem(last=False)
            st.slots[key] = freed
            return freed
        used = set(st.slots.values())
        slot = next(k for k in range(m.max_entries) if k not in used)
        st.slots[key] = slot
        return slot

    def map_lookup_elem(self, ctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        """A pointer to the value, or NULL (array: index < max_entries; hash: key present)."""
        m = self._map(r1)
        if m is None:
            return 0
        key = ctx.read_bytes(r2, m.key_size)
        if m.map_type in ARRAY_LIKE:
            index = int.from_bytes(key[:4], "little")
            return m.values_address + index * m.value_size if index < m.max_entries else 0
        if m.map_type in HASH_LIKE:
            slot = self._slot(m, key, create=False)
            return 0 if slot is None else m.values_address + slot * m.value_size
        return 0

    def map_update_elem(self, ctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        """Copy the value in; -EINVAL for unknown flags, -E2BIG past an array's end or into a
        full hash, -EEXIST for BPF_NOEXIST on a present key, -ENOENT for BPF_EXIST on an absent one."""
        m = self._map(r1)
        if m is None or not (m.map_type in ARRAY_LIKE or m.map_type in HASH_LIKE):
            return _neg(EINVAL)
        flags = r4 & M64
        if flags > BPF_EXIST:
            return _neg(EINVAL)
        key = ctx.read_bytes(r2, m.key_size)
        if m.map_type in ARRAY_LIKE:
            index = int.from_bytes(key[:4], "little")
            if index >= m.max_entries:
                return _neg(E2BIG)
            if flags == BPF_NOEXIST:
                return _neg(EEXIST)
            addr = m.values_address + index * m.value_size
        else:
            present = key in m.store.slots
            if flags == BPF_NOEXIST and present:
                return _neg(EEXIST)
            if flags == BPF_EXIST and not present:
                return _neg(ENOENT)
            slot = self._slot(m, key, create=True)
            if slot is None:
                return _neg(E2BIG)
            addr = m.values_address + slot * m.value_size
        ctx.write_bytes(addr, ctx.read_bytes(r3, m.value_size))
        return 0

    def map_delete_elem(self, ctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        """Hash: remove the key (-ENOENT if absent); arrays cannot delete (-EINVAL)."""
        m = self._map(r1)
        if m is None or m.map_type not in HASH_LIKE:
            return _neg(EINVAL)
        key = ctx.read_bytes(r2, m.key_size)
        slot = m.store.slots.pop(key, None)
        if slot is None:
            return _neg(ENOENT)
        ctx.write_bytes(m.values_address + slot * m.value_size, bytes(m.value_size))
        return 0

    # ---------------------------------------------------------------- trace
    def _emit(self, ctx: CallContext, fmt_addr: int, fmt_size: int, args: tuple[int, ...]) -> int:
        fmt = ctx.read_bytes(fmt_addr, fmt_size) if fmt_size else b""
        text = bprintf(fmt, args, lambda a, k: _c_string(ctx, a, k) if k == MAX_BPRINTF_BUF
                       else _raw(ctx, a, k))
        if isinstance(text, int):
            return text & M64
        # trace_bpf_trace_printk prints the buffer; trace_pipe adds the newline if missing.
        self.state().trace.append(text[:-1] if text.endswith("\n") else text)
        return len(text)

    def trace_printk(self, ctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        """bpf_trace_printk(fmt, fmt_size, arg1, arg2, arg3): one trace line for this packet."""
        return self._emit(ctx, r1, r2 & 0xFFFFFFFF, (r3, r4, r5))

    def trace_vprintk(self, ctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        """bpf_trace_vprintk(fmt, fmt_size, data, data_len): args from a u64 array
        (kernel/trace/bpf_trace.c: data_len a multiple of 8, at most MAX_BPRINTF_VARARGS * 8)."""
        data_len = r4 & 0xFFFFFFFF
        if data_len % 8 or data_len > MAX_BPRINTF_VARARGS * 8 or (data_len and not r3):
            return _neg(EINVAL)
        raw = ctx.read_bytes(r3, data_len) if data_len else b""
        args = tuple(int.from_bytes(raw[k:k + 8], "little") for k in range(0, data_len, 8))
        return self._emit(ctx, r1, r2 & 0xFFFFFFFF, args)

    # ---------------------------------------------------------------- tail calls
    def tail_call(self, ctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        """bpf_tail_call(ctx, prog_array, index): JMP_TAIL_CALL's order (core.c@6.1.192:1914):
        index past max_entries, or MAX_TAIL_CALL_CNT reached -> fall through; count; no program
        at index -> fall through; else jump (raise :class:`TailCall`)."""
        m = self._map(r2)
        if m is None or m.map_type != BPF_MAP_TYPE_PROG_ARRAY:
            return 0
        index = r3 & 0xFFFFFFFF
        if index >= m.max_entries:
            return 0
        state = self.state()
        if state.tail_calls >= MAX_TAIL_CALL_CNT:
            return 0
        state.tail_calls += 1
        target = m.store.progs.get(index)
        if target is None:
            return 0
        raise TailCall(target, index)

    # ---------------------------------------------------------------- ring buffers
    def _reserve(self, ctx: CallContext, m: BpfMap, size: int) -> int:
        """Reserve ``size`` bytes: header (len | BUSY, pg_off) then the sample, 8-aligned.
        NULL when the ring has no room.  MODEL: a sample never wraps the end of the data area
        (the kernel maps the pages twice so it may); the tail is skipped as a discarded record."""
        st, ring = m.store, m.max_entries
        total = (BPF_RINGBUF_HDR_SZ + size + 7) // 8 * 8
        if size > ring - BPF_RINGBUF_HDR_SZ:
            return 0
        off = st.ring_prod % ring
        pad = ring - off if off + total > ring else 0
        if st.ring_prod - st.ring_cons + pad + total > ring:
            return 0
        if pad:
            ctx.write(m.values_address + off, 4, (pad - BPF_RINGBUF_HDR_SZ) | BPF_RINGBUF_DISCARD_BIT)
            st.ring_prod += pad
            off = 0
        at = m.values_address + off
        ctx.write(at, 4, size | BPF_RINGBUF_BUSY_BIT)
        ctx.write(at + 4, 4, 0)
        st.ring_pending[at + BPF_RINGBUF_HDR_SZ] = at
        st.ring_prod += total
        return at + BPF_RINGBUF_HDR_SZ

    def _commit(self, ctx: CallContext, sample: int, discard: bool) -> int:
        m = next((m for m in self.maps.values() if sample in m.store.ring_pending), None)
        if m is None:
            return 0                    # the verifier only lets a reserved pointer get here
        at = m.store.ring_pending.pop(sample)
        hdr = ctx.read(at, 4) & ~BPF_RINGBUF_BUSY_BIT
        ctx.write(at, 4, hdr | (BPF_RINGBUF_DISCARD_BIT if discard else 0))
        return 0

    def ringbuf_reserve(self, ctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        m = self._map(r1)
        if m is None or m.map_type != BPF_MAP_TYPE_RINGBUF or r3 & M64:
            return 0
        return self._reserve(ctx, m, r2 & M64)

    def ringbuf_submit(self, ctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        return self._commit(ctx, r1, discard=False)

    def ringbuf_discard(self, ctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        return self._commit(ctx, r1, discard=True)

    def ringbuf_output(self, ctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        """Reserve, copy, submit: 0, -EINVAL for unknown flags, -EAGAIN when full."""
        m = self._map(r1)
        if m is None or m.map_type != BPF_MAP_TYPE_RINGBUF or r4 & ~(BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP) & M64:
            return _neg(EINVAL)
        size = r3 & M64
        data = ctx.read_bytes(r2, size) if size else b""
        sample = self._reserve(ctx, m, size)
        if not sample:
            return _neg(EAGAIN)
        if data:
            ctx.write_bytes(sample, data)
        return self._commit(ctx, sample, discard=False)

    def ringbuf_query(self, ctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        m = self._map(r1)
        if m is None or m.map_type != BPF_MAP_TYPE_RINGBUF:
            return 0
        st = m.store
        return {BPF_RB_AVAIL_DATA: st.ring_prod - st.ring_cons, BPF_RB_RING_SIZE: m.max_entries,
                BPF_RB_CONS_POS: st.ring_cons, BPF_RB_PROD_POS: st.ring_prod}.get(r2 & M64, 0)


def _raw(ctx: CallContext, addr: int, size: int) -> bytes | None:
    r = ctx.machine.space.find(addr, size)
    return None if r is None else bytes(r.data[addr - r.base: addr - r.base + size])


__all__ = ["XdpHelpers", "TailCall", "bprintf", "helper_call_problem", "helper_name", "known_helper", "HELPER_NAMES_6_1",
           "XDP_HELPER_IDS", "MAX_TAIL_CALL_CNT"]


def calls_trace_printk(loaded: Any) -> bool:
    """Whether a loaded program calls ``bpf_trace_printk`` / ``bpf_trace_vprintk`` (what
    ``bpf_printk`` compiles to), so its runs have trace_pipe output to show."""
    return any(i.opcode == 0x85 and i.src == 0 and i.imm in (BPF_FUNC_trace_printk, BPF_FUNC_trace_vprintk)
               for i in loaded.xlated)
