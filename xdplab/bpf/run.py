"""``run()``: load-time checks, memory set-up, then the fast path or the reference interpreter."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping

from .errors import BpfError, BpfExecuteError, BpfVerifyError
from .fastpath import compile_program
from .insn import Program, encoding_problem
from .machine import MEM_BASE, Env, Machine
from .memory import AddressSpace, Region
from .opcodes import CLASS_NAMES
from .verify import verify


@dataclass(frozen=True)
class RunResult:
    """What one run produced and what it did.

    ``by_class``: executed instructions per class name ("alu64", "jmp", "ldx", ...);
    ``touches``: memory accesses per (region kind, "read" | "write");
    ``calls``: calls per kind ("helper", "kfunc", "local"); ``mem``: the mem buffer afterwards.
    """

    r0: int
    insns: int
    by_class: Mapping[str, int]
    touches: Mapping[tuple[str, str], int]
    calls: Mapping[str, int]
    mem: bytes
    fast: bool
    call_targets: Mapping[tuple[str, int], int] = field(default_factory=dict)


def run_detailed(program: Program, mem: bytes = b"", *, max_insns: int = 1_000_000,
                 env: Env | None = None, fast: bool = True) -> RunResult:
    """Run ``program`` with r1 = a writable copy of ``mem`` (0 if empty), r2 = len(mem).

    ``fast=False`` forces the reference interpreter.  Raises only :class:`BpfError`.
    """
    if not isinstance(mem, (bytes, bytearray, memoryview)):
        raise BpfExecuteError(f"mem must be bytes, got {type(mem).__name__}")
    space = AddressSpace()
    region = space.map(Region("mem", MEM_BASE, bytes(mem), kind="mem")) if len(mem) else None
    result = run_in(program, space, region.base if region else 0, len(mem), max_insns=max_insns,
                    env=env, fast=fast)
    return replace(result, mem=bytes(region.data) if region else b"")


def run_in(program: Program, space: AddressSpace, r1: int, r2: int = 0, *,
           max_insns: int = 1_000_000, env: Env | None = None, fast: bool = True,
           verified: bool = True) -> RunResult:
    """Run ``program`` in an address space the caller built (kernel structs, packets...),
    with the given r1 and r2; a fresh 512-byte stack is mapped for the run and removed after.

    ``verified=False`` skips the load-time checks, as the kernel ran unrolled code it never
    re-verified: then a jump out of the program is a :class:`BpfExecuteError` at run time
    (and the reference interpreter is used).
    """
    env = env if env is not None else Env()
    if not isinstance(max_insns, int) or max_insns < 0:
        raise BpfExecuteError(f"max_insns must be a non-negative int, got {max_insns!r}")
    if verified:
        verify(program, helpers=env.helpers, kfuncs=env.kfuncs)
    elif not isinstance(program, Program) or not len(program):
        raise BpfExecuteError("nothing to run")
    else:
        for i, insn in enumerate(program):
            problem = encoding_problem(insn)
            if problem is None and insn.opcode & 0x07 == 0 and insn.opcode != 0x18:
                problem = "legacy packet access is not simulated"
            if problem:
                raise BpfVerifyError(problem, program.slot_of(i))
    machine = Machine(program, space, env, max_insns)
    regs = machine.entry_registers(r1, r2)
    compiled = compile_program(program) if fast and verified else None
    try:
        if compiled is not None:
            r0 = compiled.execute(machine, regs)
        else:
            r0 = machine.interpret(regs)
    except BpfError:
        raise
    except RecursionError:  # pragma: no cover - nothing here recurses on program input
        raise BpfExecuteError("recursion limit reached") from None
    except MemoryError:  # pragma: no cover
        raise BpfExecuteError("out of memory while running the program") from None
    finally:
        for region in [r for r in space.regions if r.kind == "stack"]:
            space.unmap(region)
    c = machine.counts
    return RunResult(
        r0=r0,
        insns=c.insns,
        by_class=MappingProxyType({CLASS_NAMES[k]: v for k, v in enumerate(c.by_class) if v}),
        touches=MappingProxyType(dict(c.touches)),
        calls=MappingProxyType(dict(c.calls)),
        mem=b"",
        fast=compiled is not None,
        call_targets=MappingProxyType(dict(c.call_targets)),
    )


def run(program: Program, mem: bytes = b"", *, max_insns: int = 1_000_000, env: Env | None = None,
        fast: bool = True) -> int:
    """Run ``program`` and return r0 as an unsigned 64-bit int (see :func:`run_detailed`)."""
    return run_detailed(program, mem, max_insns=max_insns, env=env, fast=fast).r0
