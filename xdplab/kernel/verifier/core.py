"""``verify()``: bpf_check's order of passes and do_check's walk, for XDP programs.

kernel/bpf/verifier.c@6.1.192: bpf_check (15540-15740: add_subprog_and_kfunc, check_subprogs,
resolve_pseudo_ldimm64, check_cfg, do_check_main, check_max_stack_depth, the "processed N
insns" line), do_check_common (15000: R1 = ctx, R10 = fp), do_check (12470), check_ld_imm
(10560), check_return_code (10796: XDP has no return-range check in 6.1; only "R0 !read_ok"),
print_insn_state (931).
"""
from __future__ import annotations

from types import MappingProxyType

from typing import Callable, Iterable, Literal, Mapping

from ...bpf.errors import BpfDecodeError
from ...bpf.insn import Insn, Program
from ...bpf.opcodes import BPF_ALU, BPF_ALU64, BPF_JMP, BPF_JMP32, BPF_LD, BPF_LDX, BPF_ST, BPF_STX
from ..kfuncs import KfuncTable
from ..maps import BpfMap
from . import alu, calls, cfg, jmp
from .env import (BPF_COMPLEXITY_LIMIT_INSNS, E2BIG, EACCES, EFAULT, EINVAL, Caps, Env,
                  RawInsn, Refuse)
from .log import VerifierLog, format_state, print_bpf_insn, vlog_alignment
from .mem import (BPF_READ, BPF_WRITE, DST_OP, DST_OP_NO_MARK, SRC_OP, check_atomic,
                  check_mem_access, check_reg_arg)
from .paths import pop_stack, update_branch_counts
from .prune import is_state_visited
from .regstate import (CONST_PTR_TO_MAP, PTR_TO_BTF_ID, PTR_TO_CTX, PTR_TO_MAP_VALUE, base_type,
                       is_pointer_type, reg_type_str)
from .result import VerifierResult
from .state import new_main_state

# bpf_size_to_bytes: BPF_W/H/B (include/uapi/linux/bpf_common.h@6.1.192:18-20), BPF_DW (bpf.h@6.1.192:21).
_SIZE = MappingProxyType({0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8})
PROG_TYPES = ("xdp",)


def _reg_type_mismatch(src: int, prev: int) -> bool:
    """reg_type_mismatch (verifier.c@6.1.192:12444): ctx/BTF pointers may not share an insn
    with other pointer kinds."""
    def ok(t: int) -> bool:
        return base_type(t) not in (PTR_TO_CTX, PTR_TO_BTF_ID)
    return src != prev and (not ok(src) or not ok(prev))


def print_insn_state(env: Env) -> None:
    if not env.log.level:
        return
    if env.prev_log_len and env.prev_log_len == env.log.len_used:
        env.log.reset(env.prev_log_len - 1)
        env.verbose(" " * vlog_alignment(env.prev_insn_print_len) + ";")
    else:
        env.verbose(f"{env.insn_idx}:")
    env.verbose(format_state(env.cur.cur, env.scratched_regs, env.scratched_slots) + "\n")
    env.scratched_regs = env.scratched_slots = 0


def _kfunc_name(env: Env) -> Callable[[int], str | None]:
    def name(btf_id: int) -> str | None:
        spec = env.kfuncs.by_id(btf_id) if env.kfuncs is not None else None
        return spec.name if spec else None
    return name


def check_ld_imm(env: Env, ins: RawInsn, nxt: RawInsn | None) -> None:
    """check_ld_imm (verifier.c@6.1.192:10575).  ``nxt`` is the second slot of ld_imm64;
    resolve_pseudo_ldimm64 already refused an ld_imm64 in the last slot with this message
    (verifier.c@6.1.192:13092-13096), so None here cannot come from a program that got this far."""
    if nxt is None:
        raise Refuse("invalid bpf_ld_imm64 insn", EINVAL)
    if ins.code & 0x18 != 0x18:
        raise Refuse("invalid BPF_LD_IMM insn", EINVAL)
    if ins.off:
        raise Refuse("BPF_LD_IMM64 uses reserved fields", EINVAL)
    check_reg_arg(env, ins.dst, DST_OP)
    dst = env.cur.cur.regs[ins.dst]
    if ins.src == 0:
        dst.set_const(((nxt.imm & 0xFFFFFFFF) << 32) | (ins.imm & 0xFFFFFFFF))
        return
    m = env.maps[ins.imm & 0xFFFFFFFF]
    if ins.src == 2:
        dst.set_pointer(PTR_TO_MAP_VALUE, map=m)
        dst.off = nxt.imm & 0xFFFFFFFF
    else:
        dst.set_pointer(CONST_PTR_TO_MAP, map=m)


def do_check(env: Env) -> None:
    insns = env.insns
    n = len(insns)
    level = env.log.level
    pop_log = not level & 2
    do_print_state = False
    prev_insn_idx = -1
    kname = _kfunc_name(env)
    while True:
        env.prev_insn_idx = prev_insn_idx
        if env.insn_idx >= n:
            raise Refuse(f"invalid insn idx {env.insn_idx} insn_cnt {n}", EFAULT)
        idx = env.insn_idx
        ins = insns[idx]
        cls = ins.code & 7
        env.insn_processed += 1
        if env.insn_processed > env.complexity_limit:
            raise Refuse(f"BPF program is too large. Processed {env.insn_processed} insn", E2BIG)
        pruned = is_state_visited(env, idx)
        if not pruned:
            if level & 2 and do_print_state:
                env.verbose(f"\nfrom {env.prev_insn_idx} to {idx}:"
                            + format_state(env.cur.cur, -1, -1) + "\n")
                do_print_state = False
            if level:
                if env.scratched_regs or env.scratched_slots:
                    print_insn_state(env)
                env.prev_log_len = env.log.len_used
                hi = insns[idx + 1].imm if ins.code == 0x18 and idx + 1 < n else 0
                env.verbose(f"{idx}: " + print_bpf_insn(ins.code, ins.dst, ins.src, ins.off,
                                                          ins.imm, hi, kname) + "\n")
                env.prev_insn_print_len = env.log.len_used - env.prev_log_len
                env.prev_log_len = env.log.len_used
            prev_insn_idx = idx
            env.cur.history.append(idx)
            exited = _step(env, ins, cls, n)
            if exited is None:        # instruction done, fall through to the next
                env.insn_idx += 1
                continue
            if exited == "jumped":
                continue
            if exited == "frame":
                do_print_state = True
                continue
        elif level:
            if do_print_state:
                env.verbose(f"\nfrom {env.prev_insn_idx} to {idx}: safe\n")
            else:
                env.verbose(f"{idx}: safe\n")
        # process_bpf_exit
        env.mark_all_scratched()
        update_branch_counts(env, env.cur)
        if not pop_stack(env, pop_log):
            return
        prev_insn_idx = env.prev_insn_idx
        do_print_state = True


StepOutcome = Literal["jumped", "frame", "exit"] | None


def _step(env: Env, ins: RawInsn, cls: int, n: int) -> StepOutcome:
    """One instruction.  Returns None (go on), "jumped", "frame" (returned from a callee) or
    "exit" (the path ended).  The class tests follow do_check (verifier.c@6.1.192:12563-12790)."""
    code = ins.code
    if cls == BPF_ALU or cls == BPF_ALU64:
        alu.check_alu_op(env, code, ins.dst, ins.src, ins.off, ins.imm)
        return None
    if cls == BPF_LDX:
        check_reg_arg(env, ins.src, SRC_OP)
        check_reg_arg(env, ins.dst, DST_OP_NO_MARK)
        src_type = env.cur.cur.regs[ins.src].type
        check_mem_access(env, ins.src, ins.off, _SIZE[code & 0x18], BPF_READ, ins.dst)
        _same_insn_types(env, src_type)
        return None
    if cls == BPF_STX:
        if code & 0xE0 == 0xC0:
            check_atomic(env, code, ins.dst, ins.src, ins.off, ins.imm)
            return None
        if code & 0xE0 != 0x60 or ins.imm:
            raise Refuse("BPF_STX uses reserved fields", EINVAL)
        check_reg_arg(env, ins.src, SRC_OP)
        check_reg_arg(env, ins.dst, SRC_OP)
        dst_type = env.cur.cur.regs[ins.dst].type
        check_mem_access(env, ins.dst, ins.off, _SIZE[code & 0x18], BPF_WRITE, ins.src)
        _same_insn_types(env, dst_type)
        return None
    if cls == BPF_ST:
        if code & 0xE0 != 0x60 or ins.src:
            raise Refuse("BPF_ST uses reserved fields", EINVAL)
        check_reg_arg(env, ins.dst, SRC_OP)
        if env.cur.cur.regs[ins.dst].type == PTR_TO_CTX:
            raise Refuse(f"BPF_ST stores into R{ins.dst} {reg_type_str(PTR_TO_CTX)} is not allowed",
                         EACCES)
        check_mem_access(env, ins.dst, ins.off, _SIZE[code & 0x18], BPF_WRITE, -1, st_imm=ins.imm)
        return None
    if cls == BPF_JMP or cls == BPF_JMP32:
        op = code & 0xF0
        env.jmps_processed += 1
        if op == 0x80:
            if code & 0x08 or (ins.src != 2 and ins.off) or ins.src not in (0, 1, 2) or ins.dst \
                    or cls == BPF_JMP32:
                raise Refuse("BPF_CALL uses reserved fields", EINVAL)
            if ins.src == 1:
                calls.check_func_call(env, ins.imm)
            elif ins.src == 2:
                calls.check_kfunc_call(env, ins.imm)
            else:
                calls.check_helper_call(env, ins.imm)
            return None
        if op == 0x00:
            if code & 0x08 or ins.src or ins.dst or (cls == BPF_JMP and ins.imm) \
                    or (cls == BPF_JMP32 and ins.off):
                raise Refuse("BPF_JA uses reserved fields", EINVAL)
            env.insn_idx += (ins.off if cls == BPF_JMP else ins.imm) + 1
            return "jumped"
        if op == 0x90:
            if code & 0x08 or ins.imm or ins.src or ins.dst or cls == BPF_JMP32:
                raise Refuse("BPF_EXIT uses reserved fields", EINVAL)
            # do_check's BPF_EXIT (verifier.c@6.1.192:12735-12760).  check_reference_leak
            # returns at once in a non-callback subprog (7368); no callbacks here (MODEL).
            if env.cur.curframe:
                calls.prepare_func_exit(env)
                return "frame"
            calls.check_reference_leak(env)
            check_return_code(env)
            return "exit"
        jmp.check_cond_jmp_op(env, code, ins.dst, ins.src, ins.off, ins.imm, print_insn_state)
        return None
    if cls == BPF_LD:
        mode = code & 0xE0
        if mode in (0x20, 0x40):
            raise Refuse("BPF_LD_[ABS|IND] instructions not allowed for this program type", EINVAL)
        if mode == 0x00:
            nxt = env.insns[env.insn_idx + 1] if env.insn_idx + 1 < n else None
            check_ld_imm(env, ins, nxt)
            env.insn_idx += 1
            return None
        raise Refuse("invalid BPF_LD mode", EINVAL)
    raise Refuse(f"unknown insn class {cls}", EINVAL)   # pragma: no cover - 8 classes


def _same_insn_types(env: Env, t: int) -> None:
    prev = env.aux_ptr_type.get(env.insn_idx)
    if prev is None:
        env.aux_ptr_type[env.insn_idx] = t
    elif _reg_type_mismatch(t, prev):
        raise Refuse("same insn cannot be used with different pointers", EINVAL)


def check_return_code(env: Env) -> None:
    """check_return_code for BPF_PROG_TYPE_XDP: R0 must be readable; 6.1 checks no range for
    XDP (the switch's default returns 0) and, for root, no pointer leak."""
    check_reg_arg(env, 0, SRC_OP)
    if is_pointer_type(env.cur.cur.regs[0].type) and not env.caps.allow_ptr_leaks:
        raise Refuse("R0 leaks addr as return value", EACCES)


def _to_bytes(program: object) -> bytes:
    if isinstance(program, Program):
        return program.encode()
    if isinstance(program, (bytes, bytearray, memoryview)):
        return bytes(program)
    if isinstance(program, Iterable):
        items = list(program)
        if all(isinstance(i, Insn) for i in items):
            return Program(items).encode()
    raise BpfDecodeError(f"expected a Program, bytes or Insn values, got {type(program).__name__}")


def _maps_by_fd(maps: Mapping[int, BpfMap] | Iterable[BpfMap] | None) -> dict[int, BpfMap]:
    if isinstance(maps, Mapping):
        return {int(k): v for k, v in maps.items()}
    out: dict[int, BpfMap] = {}
    for m in maps or ():
        out[int(m.map_id)] = m
    return out


def verify(program: Program | bytes | bytearray | memoryview | Iterable[Insn],
           prog_type: str = "xdp", *,
           maps: Mapping[int, BpfMap] | Iterable[BpfMap] | None = (), log_level: int = 1,
           kfuncs: KfuncTable | None = None, helpers: Iterable[int] | None = None,
           caps: Caps = Caps(), expected_attach_type: int = 37,
           complexity_limit: int = BPF_COMPLEXITY_LIMIT_INSNS) -> VerifierResult:
    """Verify ``program`` as kernel/bpf/verifier.c@6.1.192 would for a root loader.

    ``program``: a :class:`~xdplab.bpf.Program`, its bytes, or a sequence of Insn.
    ``maps``: fd -> BpfMap (as ``ld_imm64`` with BPF_PSEUDO_MAP_FD names them), or BpfMaps
    keyed by ``map_id``.  ``kfuncs``: the design's :class:`~xdplab.kernel.kfuncs.KfuncTable`.
    ``helpers``: helper ids to allow beyond the modelled ones (None: the XDP set).
    ``expected_attach_type``: BPF_XDP (37) or BPF_XDP_DEVMAP (38, may read egress_ifindex).
    ``complexity_limit``: the kernel's is 1,000,000 processed instructions; a smaller one lets
    a test or a lesson reach "BPF program is too large" quickly.
    Never raises for a refused program; raises :class:`~xdplab.bpf.BpfDecodeError` for bytes
    that are not instructions at all, ValueError for an unknown ``prog_type`` or ``log_level``.
    """
    if prog_type not in PROG_TYPES:
        raise ValueError(f"prog_type {prog_type!r} is not supported; choose one of {PROG_TYPES}")
    if log_level not in (0, 1, 2):
        raise ValueError(f"log_level must be 0, 1 or 2, got {log_level!r}")
    insns = cfg.decode_slots(_to_bytes(program))
    env = Env(insns=insns, log=VerifierLog(log_level), caps=caps, maps=_maps_by_fd(maps),
              kfuncs=kfuncs, helpers=frozenset(helpers or ()), prog_type=prog_type,
              expected_attach_type=expected_attach_type, complexity_limit=complexity_limit)
    error = None
    errno = 0
    insn = None
    stage = "pre"
    try:
        cfg.add_subprogs(env)
        env.track_precision = len(env.subprogs) == 1
        calls.add_kfunc_calls(env)
        if log_level & 2:
            for i, sp in enumerate(env.subprogs):
                env.verbose(f"func#{i} @{sp.start}\n")
        cfg.check_subprogs(env)
        cfg.resolve_pseudo_ldimm64(env)
        cfg.check_cfg(env)
        stage = "walk"
        env.insn_idx = 0
        env.cur = new_main_state()
        r1 = env.cur.cur.regs[1]
        r1.set_pointer(PTR_TO_CTX)
        env.mark_all_scratched()
        do_check(env)
        stage = "post"
        calls.check_max_stack_depth(env)
    except Refuse as r:
        error, errno = r.message, r.errno
        insn = r.insn if r.insn is not None else (env.insn_idx if stage != "post" else None)
        env.verbose(r.message + "\n")
    except RecursionError:   # pragma: no cover - nothing here recurses on program input
        raise BpfDecodeError("program too deep to verify") from None
    env.verbose(f"processed {env.insn_processed} insns (limit {env.complexity_limit}) "
                f"max_states_per_insn {env.max_states_per_insn} total_states {env.total_states} "
                f"peak_states {env.peak_states} mark_read 0\n")
    return VerifierResult(accepted=error is None, error=error, insn=insn, log=env.log.text(),
                          insns_processed=env.insn_processed, errno=errno,
                          stack_depth=tuple(s.stack_depth for s in env.subprogs))
