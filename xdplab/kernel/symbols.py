"""Simulated kernel functions at simulated addresses, called from BPF as the kernel does.

After fixup, every kernel call is ``BPF_EMIT_CALL``: ``imm = fn - __bpf_call_base``
(linux:include/linux/filter.h BPF_CALL_IMM, kernel-facts §2).  Here a kernel function is a
Python callable with the eBPF machine's helper signature ``fn(ctx, r1..r5) -> r0``; this
table gives it an address and the ``imm`` that reaches it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from ..bpf.lanes import VectorHelper
from ..bpf.machine import HelperFn

BPF_CALL_BASE = 0xFFFF_FFFF_8120_0000   # MODEL: the address of __bpf_call_base
FUNC_STRIDE = 0x80


@dataclass(frozen=True)
class OpCost:
    """The work a kernel routine does per call, in the cost model's primitives (MODEL counts
    from reading the C routine): instructions by class, memory touches by region kind,
    64-bit multiplies, seqlock read sections and spin_lock_bh sections."""

    insns: Mapping[str, int] = field(default_factory=dict)
    touches: Mapping[str, int] = field(default_factory=dict)
    muls: int = 0
    seqlock_reads: int = 0
    spin_lock_bh: int = 0


@dataclass(frozen=True)
class KernelFunction:
    """A kernel routine BPF code may call.  ``fn`` runs it for one packet; ``lanes``, when
    given, runs the same routine for many packets at once on the lane machine (built on the
    same rule functions as ``fn``, so the two cannot drift; it hands lanes it cannot serve
    back to ``fn``)."""

    name: str
    fn: HelperFn
    doc: str = ""
    cost: OpCost = field(default_factory=OpCost, compare=False)
    lanes: VectorHelper | None = field(default=None, compare=False)


@dataclass
class KernelSymbols:
    """name -> address and imm; imm -> callable, for the machine's Env."""

    functions: dict[str, tuple[int, KernelFunction]] = field(default_factory=dict)

    def add(self, kf: KernelFunction) -> int:
        """Register (once) and return the call imm.  A different function under a name
        already taken gets a ``.N`` suffix, as kallsyms shows clones (``foo.constprop.0``)."""
        name, n = kf.name, 0
        while name in self.functions:
            if self.functions[name][1] is kf or self.functions[name][1] == kf:
                return self.functions[name][0] - BPF_CALL_BASE
            n += 1
            name = f"{kf.name}.{n}"
        addr = BPF_CALL_BASE + FUNC_STRIDE * (len(self.functions) + 1)
        self.functions[name] = (addr, kf)
        return addr - BPF_CALL_BASE

    def imm(self, name: str) -> int:
        return self.functions[name][0] - BPF_CALL_BASE

    def function_at_imm(self, imm: int) -> KernelFunction | None:
        for addr, kf in self.functions.values():
            if addr - BPF_CALL_BASE == imm:
                return kf
        return None

    def name_at_imm(self, imm: int) -> str | None:
        for name, (addr, _) in self.functions.items():
            if addr - BPF_CALL_BASE == imm:
                return name
        return None

    def call_table(self) -> dict[int, HelperFn]:
        return {addr - BPF_CALL_BASE: kf.fn for addr, kf in self.functions.values()}


def kernel_function(name: str, doc: str = "") -> Callable[[HelperFn], KernelFunction]:
    """Decorator: turn a Python function into a named :class:`KernelFunction`."""
    def wrap(fn: HelperFn) -> KernelFunction:
        return KernelFunction(name, fn, doc or (fn.__doc__ or "").strip())
    return wrap
