"""BPF_PROG_LOAD for XDP programs, in the kernel's order, as RFC v2 changes it.

1. Attribute checks (kernel/bpf/syscall.c bpf_prog_load): known prog_flags; with
   ``BPF_F_XDP_HAS_METADATA`` (1 << 6, RFC v2 02/14) the program must be XDP and
   ``prog_ifindex`` must name a device in the caller's netns (``xdp_resolve_netdev``, which
   stores the device's ops: the program is bound to a device *type*).  A ``prog_ifindex``
   without the flag asks for hardware offload, which no simulated device offers.
2. ``resolve_pseudo_ldimm64``: map fds become map addresses.
3. Structural checks (:func:`xdplab.bpf.verify`) and kfunc checks (``add_kfunc_call``): every
   kfunc id must exist; metadata kfuncs need a device-bound program ("metadata kfuncs require
   device-bound program", the merged kernel's bpf_dev_bound_kfunc_check; the RFC as posted
   instead fell through to a call of the C default); arg#0 must be the ctx.
4. ``convert_ctx_accesses``: xdp_md loads become loads through xdp_buff
   (:mod:`xdplab.kernel.ctx_rewrite`).
5. ``do_misc_fixups``: each kfunc call, by design:
   - "rfc-v2": ask the bound driver's ``ndo_unroll_kfunc`` to fill a :class:`BpfPatch`; if it
     appends nothing, append the default ``r0 = 0``; check the patch; splice it in place of
     the call with ``bpf_patch_insn_data`` (branch fix-ups);
   - "patch-v3" / "merged": the call stays; its imm becomes ``BPF_CALL_IMM`` of the driver's
     routine (merged: ``xdp_metadata_ops``, ``bpf_dev_bound_resolve_kfunc``) or of the generic
     default (RFC: returns 0; merged: -EOPNOTSUPP).
The RFC never re-verifies unrolled code; we check every patch against the call's contract
(:func:`xdplab.bpf.patch.check_patch`) and refuse the load on a violation, and we log the
RFC's own ``magles_registers`` WARN_ON_ONCE where it would fire.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, TypedDict

import numpy as np

from ..bpf import builders as B
from ..bpf import opcodes as op
from ..bpf.errors import BpfVerifyError
from ..bpf.insn import Insn, Program
from ..bpf.lanes import Lanes, LaneState, U64Array
from ..bpf.machine import M64, CallContext, Env, HelperFn
from ..bpf.patch import BpfPatch, HeapOverflow, PatchViolation, check_patch
from ..bpf.splice import patch_insn_single
from ..bpf.verify import verify
from . import errno_ret
from .boot import Boot
from .driver import UnrollContext
from .ctx_rewrite import check_ctx_access, convert_ctx_access, ctx_accesses
from .kfuncs import TABLES, KfuncSpec, KfuncTable
from .helpers import helper_call_problem, helper_name, known_helper
from .maps import BpfMap, direct_value_addr
from .netdev import NetDevice, Netns
from .provenance import InsnDiff, Origin, bpftool_style, build_diff
from .symbols import KernelFunction, KernelSymbols, OpCost
from .uapi import (BPF_F_XDP_HAS_METADATA, BPF_PROG_TYPE_XDP, BPF_XDP, EINVAL, EOPNOTSUPP,
                   PROG_LOAD_FLAGS)
from .unroll_helpers import xdp_metadata_export_to_skb
from .verifier import VerifierResult
from .verifier import verify as verify_program

DESIGNS = ("rfc-v2", "patch-v3", "merged")
VARIANTS = ("fixed", "rfc-v2-posted")
ALLOWED_UNROLL_REGS = frozenset({0, 2, 3, 4, 5})   # RFC v2 06/14: "R0, R2-R5" (R1 kept for export)


class LoadError(BpfVerifyError):
    """BPF_PROG_LOAD failed; ``errno`` is what the syscall would return (positive).
    ``verifier``: the VerifierResult (kernel message, instruction, log) when the verifier
    refused the program, else None."""

    def __init__(self, message: str, errno: int = EINVAL, index: int | None = None,
                 verifier: VerifierResult | None = None) -> None:
        super().__init__(message, index)
        self.errno = errno
        self.verifier = verifier


@dataclass(frozen=True)
class PatchReport:
    """What happened at one kfunc call site."""

    slot: int                 # slot of the call in the program before this fix-up
    kfunc: str
    action: str               # "unroll:<driver>", "default-unroll", "call:<routine>"
    insns: tuple[Insn, ...]
    magles_registers: int
    violations: tuple[PatchViolation, ...] = ()
    heap_overflow: HeapOverflow | None = None


@dataclass(frozen=True)
class LoadedProgram:
    """The result of a successful load: the xlated program and how it came to be."""

    original: Program
    xlated: Program
    origins: tuple[Origin, ...]
    device: NetDevice | None
    design: str
    variant: str
    kfuncs: KfuncTable
    symbols: KernelSymbols
    maps: Mapping[int, BpfMap]
    patches: tuple[PatchReport, ...]
    log: tuple[str, ...]
    call_targets: Mapping[int, str] = field(default_factory=dict)   # call imm -> routine name
    verifier_log: str = ""       # the verifier's log (level 1) for the program as written

    def diff(self) -> InsnDiff:
        name = self.device.driver.name if self.device else "unbound"
        return build_diff(self.original, self.xlated, self.origins, formatter=self.format_xlated,
                          title=f"{name} · design {self.design} · variant {self.variant}",
                          original_formatter=self.format_original)

    def format_original(self, slot: int, insn: Insn) -> str:
        """An original instruction, with kfunc calls named."""
        from ..bpf.disasm import format_insn
        if insn.opcode == op.BPF_JMP | op.BPF_CALL and insn.src == op.BPF_PSEUDO_KFUNC_CALL:
            spec = self.kfuncs.by_id(insn.imm)
            if spec:
                return f"call {spec.name}"
        if insn.opcode == op.BPF_JMP | op.BPF_CALL and insn.src == op.BPF_HELPER_CALL and known_helper(insn.imm):
            return f"call {helper_name(insn.imm)}"
        return format_insn(insn)

    def format_xlated(self, slot: int, insn: Insn) -> str:
        """One xlated instruction, with kernel calls and maps named (bpftool style)."""
        from ..bpf.disasm import format_insn
        if insn.opcode == op.BPF_JMP | op.BPF_CALL:
            if insn.src == op.BPF_PSEUDO_KFUNC_CALL or insn.src == op.BPF_HELPER_CALL:
                name = self.call_targets.get(insn.imm)
                if name is None and insn.src == op.BPF_HELPER_CALL and known_helper(insn.imm):
                    name = helper_name(insn.imm)
                if name is None and insn.src == op.BPF_PSEUDO_KFUNC_CALL:
                    spec = self.kfuncs.by_id(insn.imm)
                    name = spec.name if spec else None
                if name:
                    return f"call {name}#{insn.imm}"
        if insn.opcode == op.OPCODE_LD_IMM64:
            for m in self.maps.values():
                if insn.imm == m.address:
                    return f"r{insn.dst} = map[id:{m.map_id}]"
        return bpftool_style(format_insn(insn))

    def dump_xlated(self) -> str:
        """``bpftool prog dump xlated``: numbered lines with the opcode byte."""
        lines = []
        for i, insn in enumerate(self.xlated):
            slot = self.xlated.slot_of(i)
            lines.append(f"{slot:4d}: ({insn.opcode:02x}) {self.format_xlated(slot, insn)}")
        return "\n".join(lines) + "\n"

    def env(self, helpers: Mapping[int, HelperFn] | None = None) -> Env:
        """The call tables the machine needs to run this program."""
        table = self.symbols.call_table()
        return Env(helpers={**table, **(helpers or {})}, kfuncs=table)


# ---------------------------------------------------------------------------------------
def _stub(name: str, value: int) -> KernelFunction:
    def fn(ctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        return value

    def lanes(st: LaneState, lanes: Lanes, args: list[U64Array]) -> U64Array:
        return np.full(len(lanes), value & M64, np.uint64)
    return KernelFunction(name, fn, f"generic default of {name}: returns {value:#x}",
                          OpCost(insns={"alu64": 1}), lanes)


def default_routine(spec: KfuncSpec) -> KernelFunction:
    """The generic C body in net/core/xdp.c: RFC v2 returns 0/false; merged -EOPNOTSUPP."""
    if spec.returns == "status":
        return _stub(spec.name, errno_ret(EOPNOTSUPP))
    return _stub(spec.name, 0)


@dataclass
class _Build:
    program: Program
    origins: list[Origin]
    log: list[str]

    def splice(self, index: int, new: tuple[Insn, ...], pass_name: str, note: str = "") -> None:
        slot = self.program.slot_of(index)
        self.program = patch_insn_single(self.program, slot, new)
        src = self.origins[index].index
        self.origins[index:index + 1] = [Origin(src, pass_name, note)] * len(new)


class ProgLoadOpts(TypedDict, total=False):
    """BPF_PROG_LOAD attributes other than the two a libbpf ``bpf_program`` carries itself
    (``prog_flags``, ``prog_ifindex``: :class:`xdplab.kernel.kernel.BpfProgramObject`)."""

    prog_type: int
    expected_attach_type: int
    design: str
    variant: str
    insn_buf_limit: int | None
    strict_patch_check: bool | None


class ProgLoadAttrs(ProgLoadOpts, total=False):
    """The BPF_PROG_LOAD attributes a caller chooses (the keyword arguments of
    :func:`bpf_prog_load` that :meth:`xdplab.kernel.Kernel.prog_load` passes through)."""

    prog_flags: int
    prog_ifindex: int


def bpf_prog_load(program: Program, *, netns: Netns, symbols: KernelSymbols, boot: Boot,
                  prog_type: int = BPF_PROG_TYPE_XDP, prog_flags: int = 0, prog_ifindex: int = 0,
                  expected_attach_type: int = BPF_XDP, design: str = "rfc-v2",
                  variant: str = "fixed", maps: Mapping[int, BpfMap] | None = None,
                  insn_buf_limit: int | None = None, strict_patch_check: bool | None = None) -> LoadedProgram:
    """Load ``program``; raise :class:`LoadError` (a BpfVerifyError) as the kernel would refuse.

    ``strict_patch_check``: refuse a load whose unrolled patch breaks the call contract.  By
    default strict for ``variant="fixed"``; for "rfc-v2-posted" violations are only logged,
    as the RFC's kernel did not look, so the posted code's misbehaviour shows when it runs.
    ``insn_buf_limit=16`` models the verifier's old ``insn_buf[16]``.
    """
    if strict_patch_check is None:
        strict_patch_check = variant == "fixed"
    if design not in DESIGNS:
        raise ValueError(f"unknown design {design!r}; choose one of {DESIGNS}")
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
    maps = dict(maps or {})
    kfuncs = TABLES[design]
    log: list[str] = []

    # 1. attributes ---------------------------------------------------------------------
    if prog_flags & ~PROG_LOAD_FLAGS:
        raise LoadError(f"invalid prog_flags {prog_flags:#x}")
    device = None
    if prog_flags & BPF_F_XDP_HAS_METADATA:
        if prog_type != BPF_PROG_TYPE_XDP:
            raise LoadError("BPF_F_XDP_HAS_METADATA is only for XDP programs")
        device = netns.by_ifindex(prog_ifindex)
        if device is None:
            raise LoadError(f"xdp_resolve_netdev: no device with ifindex {prog_ifindex} in this netns")
        log.append(f"device-bound to {device.name} (ifindex {device.ifindex}, driver {device.driver.name})")
    elif prog_ifindex:
        raise LoadError(f"prog_ifindex {prog_ifindex} without BPF_F_XDP_HAS_METADATA requests "
                        "hardware offload, which no simulated device supports")

    # 2. maps ----------------------------------------------------------------------------
    b = _Build(program, [Origin(i, "original") for i in range(len(program))], log)
    for i, insn in enumerate(list(b.program)):
        if insn.opcode == op.OPCODE_LD_IMM64 and insn.src in (op.BPF_PSEUDO_MAP_FD, op.BPF_PSEUDO_MAP_VALUE):
            fd = insn.imm & 0xFFFFFFFF
            m = maps.get(fd)
            if m is None:
                raise LoadError(f"fd {fd} is not pointing to valid bpf_map", index=program.slot_of(i))
            addr = m.address
            if insn.src == op.BPF_PSEUDO_MAP_VALUE:      # map_direct_value_addr (maps.py)
                try:
                    addr = direct_value_addr(m, insn.imm >> 32)
                except ValueError as exc:
                    raise LoadError(str(exc), index=program.slot_of(i)) from None
            b.program = Program(b.program.insns[:i] + (B.BPF_LD_IMM64(insn.dst, addr),) + b.program.insns[i + 1:])
            b.origins[i] = Origin(i, "map-fd", m.name)

    # 3. checks --------------------------------------------------------------------------
    verify(b.program, kfuncs=kfuncs.ids)
    for i, insn in enumerate(b.program):     # helper ids: refused at load, not per packet
        if insn.opcode == op.BPF_JMP | op.BPF_CALL and insn.src == op.BPF_HELPER_CALL \
                and (problem := helper_call_problem(insn.imm)):
            raise LoadError(problem, index=b.program.slot_of(i))
    # the verifier (kernel/bpf/verifier.c do_check) on the program as written, before
    # convert_ctx_accesses and do_misc_fixups, as bpf_check orders them
    vres = verify_program(program, maps=maps, kfuncs=kfuncs, expected_attach_type=expected_attach_type)
    if not vres.accepted:
        raise LoadError(vres.error or "verifier refused the program", errno=vres.errno or EINVAL,
                        index=vres.insn, verifier=vres)
    accesses, ctx_regs = ctx_accesses(b.program)
    sites = []
    for i, insn in enumerate(b.program):
        if insn.opcode == op.BPF_JMP | op.BPF_CALL and insn.src == op.BPF_PSEUDO_KFUNC_CALL:
            slot = b.program.slot_of(i)
            spec = kfuncs.by_id(insn.imm)
            if spec is None:  # pragma: no cover - verify() refused unknown kfunc ids
                raise LoadError(f"call to unknown kfunc btf_id {insn.imm}", index=slot)
            if 1 not in ctx_regs.get(slot, frozenset({1})):
                raise LoadError(f"arg#0 expected pointer to ctx in call to {spec.name}", index=slot)
            sites.append((i, spec))
    if sites and device is None:
        if variant == "fixed" or design == "merged":
            raise LoadError("metadata kfuncs require device-bound program", index=b.program.slot_of(sites[0][0]))
        log.append("not device-bound: metadata kfuncs become calls to their C defaults (RFC v2 as posted)")

    # 4. ctx rewrite ---------------------------------------------------------------------
    for slot in sorted(accesses, reverse=True):
        index = b.program.index_at_slot(slot)
        if index is None:  # pragma: no cover - ctx_accesses reports instruction starts only
            raise LoadError(f"ctx access at slot {slot} is not an instruction start", index=slot)
        insn = b.program[index]
        fieldname = check_ctx_access(insn, slot, expected_attach_type=expected_attach_type)
        b.splice(index, convert_ctx_access(insn, fieldname), "ctx-rewrite", f"xdp_md.{fieldname}")
    # 5. kfunc fix-ups -------------------------------------------------------------------
    reports: list[PatchReport] = []
    call_targets: dict[int, str] = {}
    i = 0
    while i < len(b.program):
        insn = b.program[i]
        if not (insn.opcode == op.BPF_JMP | op.BPF_CALL and insn.src == op.BPF_PSEUDO_KFUNC_CALL
                and b.origins[i].pass_name == "original"):
            i += 1
            continue
        spec = kfuncs.by_id(insn.imm)
        slot = b.program.slot_of(i)
        if spec is None:  # pragma: no cover - step 3 refused unknown kfunc ids
            raise LoadError(f"call to unknown kfunc btf_id {insn.imm}", index=slot)
        if design == "rfc-v2" and device is not None:
            report = _unroll(spec, slot, device, symbols, boot, variant, kfuncs, insn_buf_limit, log)
            for v in report.violations:
                log.append(f"{spec.name}: patch insn {v.index}: {v.message}")
            if report.violations and strict_patch_check:
                lines = "; ".join(f"patch insn {v.index}: {v.message}" for v in report.violations)
                raise LoadError(f"unrolled {spec.name} ({report.action}) breaks the call contract: {lines}",
                                index=slot)
            reports.append(report)
            b.splice(i, report.insns, report.action, spec.name)
            i += len(report.insns)
            continue
        routine = device.driver.kfunc_routine(spec) if device is not None else None
        routine = routine or default_routine(spec)
        imm = symbols.add(routine)
        call_targets[imm] = routine.name
        new = Insn(insn.opcode, insn.dst, insn.src, insn.off, imm)
        action = f"call:{routine.name}"
        reports.append(PatchReport(slot, spec.name, action, (new,), 1))
        b.splice(i, (new,), action, spec.name)
        i += 1
    for name in symbols.functions:   # kernel routines called from unrolled code, too
        call_targets[symbols.imm(name)] = name
    return LoadedProgram(program, b.program, tuple(b.origins), device, design, variant, kfuncs,
                         symbols, MappingProxyType(maps), tuple(reports), tuple(log),
                         MappingProxyType(call_targets), verifier_log=vres.log)


def _unroll(spec: KfuncSpec, slot: int, device: NetDevice, symbols: KernelSymbols, boot: Boot,
            variant: str, kfuncs: KfuncTable, insn_buf_limit: int | None, log: list[str]) -> PatchReport:
    driver = device.driver
    posted = variant == "rfc-v2-posted"

    def unroll(kf: KfuncSpec, patch: BpfPatch) -> None:
        driver.unroll_kfunc(ctx, kf, patch)

    def export(patch: BpfPatch) -> None:
        ts = kfuncs.by_enum("XDP_METADATA_KFUNC_RX_TIMESTAMP")
        xdp_metadata_export_to_skb(patch, boot=boot, variant=variant,
                                   unroll_rx_timestamp=lambda p: unroll(ts, p))

    ctx = UnrollContext(variant, symbols, kfuncs, unroll, export)
    patch = BpfPatch(limit=insn_buf_limit, posted_capacity_defect=posted)
    if not driver.has_ndo_unroll_kfunc:
        if posted:
            raise LoadError(f"kernel oops: NULL pointer dereference calling {driver.name}'s "
                            "ndo_unroll_kfunc (RFC v2 defect d: no NULL check)", index=slot)
        log.append(f"{driver.name} has no ndo_unroll_kfunc: default unroll")
    else:
        driver.unroll_kfunc(ctx, spec, patch)
    if patch.err:
        log.append(f"failed to unroll kfunc with func_id={spec.btf_id}: {patch.reason}")
        raise LoadError(f"failed to unroll kfunc with func_id={spec.btf_id} ({spec.name}): {patch.reason}",
                        errno=-patch.err, index=slot)
    if len(patch) == 0:
        patch.append(B.BPF_MOV64_IMM(B.BPF_REG_0, 0))
        action = "default-unroll"
    else:
        action = f"unroll:{driver.name}"
    insns = patch.insns()
    mask = patch.magles_registers()
    if spec.enum != "XDP_METADATA_KFUNC_EXPORT_TO_SKB" and mask & ~sum(1 << r for r in ALLOWED_UNROLL_REGS):
        log.append(f"WARNING: {spec.name}: bpf_patch_magles_registers = {mask:#x} includes registers "
                   "outside R0, R2-R5 (WARN_ON_ONCE in do_misc_fixups; the load goes on)")
    if patch.heap_overflow is not None:
        h = patch.heap_overflow
        log.append(f"BUG: KASAN: slab-out-of-bounds in __bpf_patch_append: insn {h.index} written "
                   f"past a {h.allocated}-insn allocation (capacity believed {h.capacity}; RFC v2 defect a)")
    violations = tuple(check_patch(insns, allowed=ALLOWED_UNROLL_REGS))
    for j, insn in enumerate(insns):
        if insn.opcode & 0x07 == op.BPF_JMP and insn.off == op.S16_MAX and insn.opcode & 0xF0 not in (op.BPF_CALL, op.BPF_EXIT):
            log.append(f"{spec.name}: patch insn {j} keeps its S16_MAX placeholder (never resolved): "
                       f"it jumps {op.S16_MAX + 1} instructions ahead")
    return PatchReport(slot, spec.name, action, insns, mask, violations, patch.heap_overflow)
