"""Calls: helpers, kfuncs, BPF-to-BPF calls with frames, function exit, the stack-depth walk.

kernel/bpf/verifier.c@6.1.192: check_helper_call (7400), check_func_arg (6150), check_reg_type
(5955), check_map_func_compatibility, clear_all_pkt_pointers, check_kfunc_call (7904) with
kernel/bpf/btf.c@6.1.192:6261 btf_check_func_arg_match, __check_func_call (6865),
set_callee_state (7024), prepare_func_exit, check_max_stack_depth (4437-4560).

Helper prototypes: the ones xdplab's XDP programs use, copied from their ``bpf_func_proto``
(kernel/bpf/helpers.c@6.1.192:40-188, kernel/bpf/core.c@6.1.192:2791, net/core/filter.c@6.1.192:
2045, 3983-4589, kernel/trace/bpf_trace.c@6.1.192:398).  Other helpers xdp_func_proto offers are
refused with an explicit "not modelled" message (MODEL); helpers XDP does not offer get the
kernel's "unknown func".  bpf_loop and callbacks are not modelled.
"""
from __future__ import annotations

from types import MappingProxyType

import re
from typing import NamedTuple

from ..maps import (BPF_MAP_TYPE_CPUMAP, BPF_MAP_TYPE_DEVMAP, BPF_MAP_TYPE_PROG_ARRAY,
                    BPF_MAP_TYPE_RINGBUF, BPF_MAP_TYPE_XSKMAP, BpfMap)
from .env import E2BIG, EACCES, EFAULT, EINVAL, ENOTSUPP, Env, Refuse
from .helper_ids import BPF_FUNC_MAX_ID, FUNC_NAMES, func_id_name
from .log import format_state
from .mem import (BPF_READ, BPF_WRITE, DST_OP_NO_MARK, SRC_OP, check_helper_mem_access,
                  check_reg_arg, regs)
from .precision import mark_chain_precision
from .regstate import (CONST_PTR_TO_MAP, MEM_ALLOC, PTR_MAYBE_NULL, PTR_TO_BUF, PTR_TO_CTX,
                       PTR_TO_MAP_KEY, PTR_TO_MAP_VALUE, PTR_TO_MEM, PTR_TO_PACKET,
                       PTR_TO_PACKET_END, PTR_TO_PACKET_META, PTR_TO_STACK, SCALAR_VALUE, Reg,
                       reg_type_str,
                       type_is_pkt_pointer)
from .state import MAX_BPF_STACK, MAX_CALL_FRAMES, FuncState

# enum bpf_arg_type / bpf_return_type (include/linux/bpf.h@6.1.192), the members used here.
ARG_DONTCARE, ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_KEY, ARG_PTR_TO_MAP_VALUE = 0, 1, 2, 3
ARG_PTR_TO_MEM, ARG_CONST_SIZE, ARG_CONST_SIZE_OR_ZERO, ARG_PTR_TO_CTX, ARG_ANYTHING = 4, 5, 6, 7, 8
ARG_PTR_TO_MEM_OR_NULL, ARG_CONST_ALLOC_SIZE_OR_ZERO, ARG_PTR_TO_ALLOC_MEM_RELEASE = 9, 10, 11
RET_INTEGER, RET_VOID, RET_PTR_TO_MAP_VALUE_OR_NULL, RET_PTR_TO_ALLOC_MEM_OR_NULL = 0, 1, 2, 3

# compatible_reg_types (verifier.c@6.1.192:5891-5948) for the arg types above.
_MAP_KEY_VALUE_TYPES = (PTR_TO_STACK, PTR_TO_PACKET, PTR_TO_PACKET_META, PTR_TO_MAP_KEY,
                        PTR_TO_MAP_VALUE)
_MEM_TYPES = (PTR_TO_STACK, PTR_TO_PACKET, PTR_TO_PACKET_META, PTR_TO_MAP_KEY, PTR_TO_MAP_VALUE,
              PTR_TO_MEM, PTR_TO_MEM | MEM_ALLOC, PTR_TO_BUF)
_COMPATIBLE = MappingProxyType({ARG_CONST_MAP_PTR: (CONST_PTR_TO_MAP,), ARG_PTR_TO_MAP_KEY: _MAP_KEY_VALUE_TYPES,
               ARG_PTR_TO_MAP_VALUE: _MAP_KEY_VALUE_TYPES, ARG_PTR_TO_MEM: _MEM_TYPES,
               ARG_PTR_TO_MEM_OR_NULL: _MEM_TYPES, ARG_CONST_SIZE: (SCALAR_VALUE,),
               ARG_CONST_SIZE_OR_ZERO: (SCALAR_VALUE,), ARG_PTR_TO_CTX: (PTR_TO_CTX,),
               ARG_CONST_ALLOC_SIZE_OR_ZERO: (SCALAR_VALUE,),
               ARG_PTR_TO_ALLOC_MEM_RELEASE: (PTR_TO_MEM | MEM_ALLOC,)})

# Map types (include/uapi/linux/bpf.h@6.1.192:922 enum bpf_map_type) that ..maps does not name.
BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4          # bpf.h@6.1.192:927
BPF_MAP_TYPE_DEVMAP_HASH = 25              # bpf.h@6.1.192:948


class HelperProto(NamedTuple):
    """``struct bpf_func_proto``: return type, argument types, and pkt_data side effect."""

    ret: int
    args: tuple[int, ...]
    changes_pkt_data: bool = False   # bpf_helper_changes_pkt_data (net/core/filter.c@6.1.192)


HELPER_PROTOS = MappingProxyType({
    1: HelperProto(RET_PTR_TO_MAP_VALUE_OR_NULL, (ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_KEY)),
    2: HelperProto(RET_INTEGER, (ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_KEY, ARG_PTR_TO_MAP_VALUE,
                                 ARG_ANYTHING)),
    3: HelperProto(RET_INTEGER, (ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_KEY)),
    5: HelperProto(RET_INTEGER, ()),                                    # ktime_get_ns
    6: HelperProto(RET_INTEGER, (ARG_PTR_TO_MEM, ARG_CONST_SIZE)),      # trace_printk
    7: HelperProto(RET_INTEGER, ()),                                    # get_prandom_u32
    8: HelperProto(RET_INTEGER, ()),                                    # get_smp_processor_id
    12: HelperProto(RET_VOID, (ARG_PTR_TO_CTX, ARG_CONST_MAP_PTR, ARG_ANYTHING)),   # tail_call
    23: HelperProto(RET_INTEGER, (ARG_ANYTHING, ARG_ANYTHING)),         # redirect
    28: HelperProto(RET_INTEGER, (ARG_PTR_TO_MEM_OR_NULL, ARG_CONST_SIZE_OR_ZERO,
                                  ARG_PTR_TO_MEM_OR_NULL, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING)),
    44: HelperProto(RET_INTEGER, (ARG_PTR_TO_CTX, ARG_ANYTHING), True),   # xdp_adjust_head
    51: HelperProto(RET_INTEGER, (ARG_CONST_MAP_PTR, ARG_ANYTHING, ARG_ANYTHING)),  # redirect_map
    54: HelperProto(RET_INTEGER, (ARG_PTR_TO_CTX, ARG_ANYTHING), True),   # xdp_adjust_meta
    65: HelperProto(RET_INTEGER, (ARG_PTR_TO_CTX, ARG_ANYTHING), True),   # xdp_adjust_tail
    125: HelperProto(RET_INTEGER, ()),                                  # ktime_get_boot_ns
    25: HelperProto(RET_INTEGER, (ARG_PTR_TO_CTX, ARG_CONST_MAP_PTR, ARG_ANYTHING, ARG_PTR_TO_MEM,
                                  ARG_CONST_SIZE_OR_ZERO)),    # perf_event_output (xdp_event_output)
    42: HelperProto(RET_INTEGER, ()),                                   # get_numa_node_id
    118: HelperProto(RET_INTEGER, ()),                                  # jiffies64
    130: HelperProto(RET_INTEGER, (ARG_CONST_MAP_PTR, ARG_PTR_TO_MEM, ARG_CONST_SIZE_OR_ZERO,
                                   ARG_ANYTHING)),                      # ringbuf_output
    188: HelperProto(RET_INTEGER, (ARG_PTR_TO_CTX,)),                   # xdp_get_buff_len
    208: HelperProto(RET_INTEGER, ()),                                  # ktime_get_tai_ns
    131: HelperProto(RET_PTR_TO_ALLOC_MEM_OR_NULL, (ARG_CONST_MAP_PTR, ARG_CONST_ALLOC_SIZE_OR_ZERO,
                                                    ARG_ANYTHING)),     # ringbuf_reserve
    132: HelperProto(RET_VOID, (ARG_PTR_TO_ALLOC_MEM_RELEASE, ARG_ANYTHING)),   # ringbuf_submit
    133: HelperProto(RET_VOID, (ARG_PTR_TO_ALLOC_MEM_RELEASE, ARG_ANYTHING)),   # ringbuf_discard
    134: HelperProto(RET_INTEGER, (ARG_CONST_MAP_PTR, ARG_ANYTHING)),   # ringbuf_query
    177: HelperProto(RET_INTEGER, (ARG_PTR_TO_MEM, ARG_CONST_SIZE, ARG_PTR_TO_MEM_OR_NULL,
                                   ARG_CONST_SIZE_OR_ZERO)),            # trace_vprintk
})

# Helpers xdp_func_proto (net/core/filter.c@6.1.192) + bpf_base_func_proto
# (kernel/bpf/helpers.c@6.1.192:1686) offer an XDP program loaded by root.
XDP_HELPER_NAMES = frozenset((
    "map_lookup_elem map_update_elem map_delete_elem map_push_elem map_pop_elem map_peek_elem "
    "map_lookup_percpu_elem get_prandom_u32 get_smp_processor_id get_numa_node_id tail_call "
    "ktime_get_ns ktime_get_boot_ns ktime_get_tai_ns ringbuf_output ringbuf_reserve "
    "ringbuf_submit ringbuf_discard ringbuf_query strncmp strtol strtoul spin_lock spin_unlock "
    "jiffies64 per_cpu_ptr this_cpu_ptr timer_init timer_set_callback timer_start timer_cancel "
    "kptr_xchg for_each_map_elem loop user_ringbuf_drain ringbuf_reserve_dynptr "
    "ringbuf_submit_dynptr ringbuf_discard_dynptr dynptr_from_mem dynptr_read dynptr_write "
    "dynptr_data trace_printk get_current_task get_current_task_btf probe_read_user "
    "probe_read_kernel probe_read_user_str probe_read_kernel_str snprintf_btf snprintf "
    "task_pt_regs trace_vprintk perf_event_output csum_diff xdp_adjust_head xdp_adjust_meta "
    "redirect redirect_map xdp_adjust_tail xdp_get_buff_len xdp_load_bytes xdp_store_bytes "
    "fib_lookup check_mtu sk_lookup_udp sk_lookup_tcp sk_release skc_lookup_tcp "
    "tcp_check_syncookie tcp_gen_syncookie tcp_raw_gen_syncookie_ipv4 tcp_raw_gen_syncookie_ipv6 "
    "tcp_raw_check_syncookie_ipv4 tcp_raw_check_syncookie_ipv6").split())

CALLER_SAVED = (0, 1, 2, 3, 4, 5)


def clear_all_pkt_pointers(env: Env) -> None:
    """After a helper that may move packet data, every packet pointer becomes an unknown scalar."""
    for reg in env.cur.all_regs():
        if type_is_pkt_pointer(reg.type) or reg.type == PTR_TO_PACKET_END:
            reg.set_unknown()


def _check_reg_type(regno: int, reg: Reg, arg_type: int) -> None:
    types = _COMPATIBLE[arg_type]
    if reg.type in types:
        return
    expected = ", ".join(reg_type_str(t) for t in types)
    raise Refuse(f"R{regno} type={reg_type_str(reg.type)} expected={expected}", EACCES)


# check_map_func_compatibility (verifier.c@6.1.192:6461): which helpers a special map kind
# accepts, and which map kinds a map-specific helper accepts (the cases this model reaches).
_MAP_ONLY_WITH = MappingProxyType({BPF_MAP_TYPE_PROG_ARRAY: (12,), BPF_MAP_TYPE_PERF_EVENT_ARRAY: (25,),
                  BPF_MAP_TYPE_RINGBUF: (130, 131, 134),
                  BPF_MAP_TYPE_DEVMAP: (51, 1), BPF_MAP_TYPE_DEVMAP_HASH: (51, 1),
                  BPF_MAP_TYPE_CPUMAP: (51,), BPF_MAP_TYPE_XSKMAP: (51, 1)})
_FUNC_ONLY_WITH = MappingProxyType({12: (BPF_MAP_TYPE_PROG_ARRAY,), 25: (BPF_MAP_TYPE_PERF_EVENT_ARRAY,),
                   130: (BPF_MAP_TYPE_RINGBUF,), 131: (BPF_MAP_TYPE_RINGBUF,),
                   134: (BPF_MAP_TYPE_RINGBUF,),
                   51: (BPF_MAP_TYPE_DEVMAP, BPF_MAP_TYPE_DEVMAP_HASH, BPF_MAP_TYPE_CPUMAP,
                        BPF_MAP_TYPE_XSKMAP)})


def check_map_func_compatibility(func_id: int, m: BpfMap) -> None:
    allowed_funcs = _MAP_ONLY_WITH.get(m.map_type)
    allowed_maps = _FUNC_ONLY_WITH.get(func_id)
    if (allowed_funcs is not None and func_id not in allowed_funcs) or \
            (allowed_maps is not None and m.map_type not in allowed_maps):
        raise Refuse(f"cannot pass map_type {m.map_type} into func {func_id_name(func_id)}#{func_id}",
                     EINVAL)


def check_helper_call(env: Env, func_id: int) -> None:
    if not 0 <= func_id < BPF_FUNC_MAX_ID:
        raise Refuse(f"invalid func {func_id_name(func_id)}#{func_id}", EINVAL)
    name = func_id_name(func_id)
    offered = FUNC_NAMES[func_id] in XDP_HELPER_NAMES and (not env.helpers or func_id in env.helpers
                                                or func_id in HELPER_PROTOS)
    if not offered:
        raise Refuse(f"unknown func {name}#{func_id}", EINVAL)
    proto = HELPER_PROTOS.get(func_id)
    if proto is None:
        raise Refuse(f"helper {name}#{func_id} is offered to XDP programs but not modelled by "
                     "xdplab's verifier (MODEL)", ENOTSUPP)
    rs = regs(env)
    map_ptr = None
    mem_size = 0
    release_regno = ref_obj_id = 0
    for i, arg in enumerate(proto.args):
        regno = i + 1
        check_reg_arg(env, regno, SRC_OP)
        reg = rs[regno]
        if arg == ARG_ANYTHING:
            if reg.type != SCALAR_VALUE and not env.caps.allow_ptr_leaks:
                raise Refuse(f"R{regno} leaks addr into helper function", EACCES)
            continue
        if arg == ARG_PTR_TO_MEM_OR_NULL and reg.is_null():
            continue
        _check_reg_type(regno, reg, arg)
        if arg == ARG_PTR_TO_CTX and (reg.off or not reg.var_off.equals_const(0)):
            raise Refuse(f"dereference of modified ctx ptr R{regno} off={reg.off} disallowed", EACCES)
        if arg == ARG_CONST_MAP_PTR:
            map_ptr = reg.map
        elif arg == ARG_PTR_TO_MAP_KEY:
            if map_ptr is None:
                raise Refuse("invalid map_ptr to access map->key", EACCES)
            check_helper_mem_access(env, regno, map_ptr.key_size, BPF_READ, False)
        elif arg == ARG_PTR_TO_MAP_VALUE:
            if map_ptr is None:
                raise Refuse("invalid map_ptr to access map->value", EACCES)
            check_helper_mem_access(env, regno, map_ptr.value_size, BPF_READ, False)
        elif arg in (ARG_CONST_SIZE, ARG_CONST_SIZE_OR_ZERO):
            _check_mem_size_reg(env, regno, arg == ARG_CONST_SIZE_OR_ZERO)
        elif arg == ARG_CONST_ALLOC_SIZE_OR_ZERO:
            if not reg.var_off.is_const():
                raise Refuse(f"R{regno} is not a known constant'", EACCES)   # sic, 6.1:6357
            mem_size = reg.var_off.value
            mark_chain_precision(env, regno)
        elif arg == ARG_PTR_TO_ALLOC_MEM_RELEASE:
            if reg.off:        # check_func_arg_reg_off (verifier.c@6.1.192:6038)
                raise Refuse(f"R{regno} must have zero offset when passed to release func", EACCES)
            if not reg.ref_obj_id:
                raise Refuse(f"R{regno} must be referenced when passed to release function", EINVAL)
            release_regno, ref_obj_id = regno, reg.ref_obj_id
    if map_ptr is not None:
        check_map_func_compatibility(func_id, map_ptr)
    if release_regno:
        release_reference(env, ref_obj_id, func_id)
    for r in CALLER_SAVED:
        rs[r].set_not_init()
        check_reg_arg(env, r, DST_OP_NO_MARK)
    r0 = rs[0]
    if proto.ret == RET_INTEGER:
        r0.set_unknown()
    elif proto.ret == RET_PTR_TO_MAP_VALUE_OR_NULL:
        r0.set_pointer(PTR_TO_MAP_VALUE | PTR_MAYBE_NULL, map=map_ptr)
        r0.id = env.new_id()
    elif proto.ret == RET_PTR_TO_ALLOC_MEM_OR_NULL:
        r0.set_pointer(PTR_TO_MEM | MEM_ALLOC | PTR_MAYBE_NULL, mem_size=mem_size)
        r0.id = env.new_id()      # overwritten below, but it uses an id as the kernel does (7818)
        # acquire_reference_state (1064, called at 7833-7837): the pointer must be submitted or discarded on every path
        ident = env.new_id()
        env.cur.refs.append((ident, env.insn_idx))
        r0.id = r0.ref_obj_id = ident
    if proto.changes_pkt_data:
        clear_all_pkt_pointers(env)


def release_reference(env: Env, ref_obj_id: int, func_id: int) -> None:
    """release_reference (verifier.c@6.1.192:6821): the reference ends; every copy of the
    pointer becomes an unknown scalar (root: allow_ptr_leaks)."""
    refs = env.cur.refs
    for k, (ident, _) in enumerate(refs):
        if ident == ref_obj_id:
            del refs[k]
            break
    else:
        raise Refuse(f"func {func_id_name(func_id)}#{func_id} reference has not been acquired before",
                     EINVAL)
    for reg in env.cur.all_regs():
        if reg.ref_obj_id == ref_obj_id:
            if env.caps.allow_ptr_leaks:
                reg.set_unknown()
            else:
                reg.set_not_init()


def check_reference_leak(env: Env) -> None:
    """check_reference_leak (verifier.c@6.1.192:7362): no acquired reference may outlive the
    program."""
    refs = env.cur.refs
    if not refs:
        return
    lines = [f"Unreleased reference id={ident} alloc_insn={insn}" for ident, insn in refs]
    for line in lines[:-1]:
        env.verbose(line + "\n")
    raise Refuse(lines[-1], EINVAL)


def _check_mem_size_reg(env: Env, regno: int, zero_size_allowed: bool) -> None:
    """check_mem_size_reg (verifier.c@6.1.192:5510): the size register bounds the access."""
    reg = regs(env)[regno]
    if reg.smin < 0:
        raise Refuse(f"R{regno} min value is negative, either use unsigned or 'var &= const'",
                     EACCES)
    if reg.umin == 0:
        if not zero_size_allowed:
            raise Refuse(f"R{regno} invalid zero-sized read", EACCES)
    if reg.umax >= MAX_BPF_STACK * 2 ** 20:   # BPF_MAX_VAR_SIZ = 1 << 29
        raise Refuse(f"R{regno} unbounded memory access, use 'var &= const' or 'if (var < const)'",
                     EACCES)
    mark_chain_precision(env, regno)
    if reg.umax == 0 and zero_size_allowed and regs(env)[regno - 1].is_null():
        return
    check_helper_mem_access(env, regno - 1, reg.umax, BPF_READ, zero_size_allowed)


# -- kfuncs ---------------------------------------------------------------------------------------
_SCALAR_SIZES = MappingProxyType({"__u64": 8, "u64": 8, "__s64": 8, "__u32": 4, "u32": 4, "int": 4, "__s32": 4,
                 "__u16": 2, "u16": 2, "__be16": 2, "__be32": 4, "__u8": 1, "u8": 1, "bool": 1,
                 "long": 8})


class KfuncArg(NamedTuple):
    kind: str        # "ctx", "mem", "scalar", "ptr"
    size: int
    text: str


def parse_proto(proto: str) -> tuple[str, tuple[KfuncArg, ...]]:
    """Split a kfunc's C prototype (KfuncSpec.proto) into return type and arguments, the
    facts the kernel reads from the kfunc's BTF FUNC_PROTO."""
    m = re.match(r"\s*(.*?)\s*\b(\w+)\s*\((.*)\)\s*$", proto)
    if m is None:
        raise ValueError(f"cannot parse kfunc prototype {proto!r}")
    ret, _, args = m.groups()
    out = []
    for a in [x.strip() for x in args.split(",") if x.strip() and x.strip() != "void"]:
        base = re.sub(r"\b(const|volatile)\b", "", a).strip()
        if "*" in base:
            pointee = base.split("*")[0].strip()
            if pointee == "struct xdp_md":
                out.append(KfuncArg("ctx", 0, a))
            elif pointee.startswith("enum "):
                out.append(KfuncArg("mem", 4, a))
            elif pointee in _SCALAR_SIZES:
                out.append(KfuncArg("mem", _SCALAR_SIZES[pointee], a))
            else:
                out.append(KfuncArg("ptr", 0, a))
        else:
            out.append(KfuncArg("scalar", 0, a))
    return re.sub(r"\b(const|volatile)\b", "", ret).strip(), tuple(out)


def add_kfunc_calls(env: Env) -> None:
    """add_subprog_and_kfunc's kfunc half: every kfunc id must name a kernel function."""
    for i, ins in enumerate(env.insns):
        env.insn_idx = i
        if ins.code == 0x85 and ins.src == 2:
            if not env.caps.bpf_capable:
                raise Refuse("loading/calling other bpf or kernel functions are allowed for "
                             "CAP_BPF and CAP_SYS_ADMIN", 1)
            if ins.imm == 0 and ins.off == 0:
                continue
            if ins.off:
                raise Refuse("failed to find BTF for kernel function", EINVAL)
            if env.kfuncs is None or env.kfuncs.by_id(ins.imm) is None:
                raise Refuse(f"kernel btf_id {ins.imm & 0xFFFFFFFF} is not a function", EINVAL)


def check_kfunc_call(env: Env, btf_id: int) -> None:
    spec = env.kfuncs.by_id(btf_id) if env.kfuncs is not None else None
    if spec is None:   # add_kfunc_calls refused unknown ids already
        raise Refuse(f"kernel btf_id {btf_id} is not a function", EINVAL)
    if env.prog_type != "xdp":
        raise Refuse(f"calling kernel function {spec.name} is not allowed", EACCES)
    ret, args = parse_proto(spec.proto)
    rs = regs(env)
    for i, arg in enumerate(args):
        regno = i + 1
        reg = rs[regno]
        if arg.kind == "scalar":
            if reg.type != SCALAR_VALUE:
                raise Refuse(f"R{regno} is not a scalar", EINVAL)
        elif arg.kind == "ctx":
            if reg.type != PTR_TO_CTX:
                raise Refuse(f"arg#{i} expected pointer to ctx, but got ptr", EINVAL)
            if reg.off or not reg.var_off.equals_const(0):
                raise Refuse(f"dereference of modified ctx ptr R{regno} off={reg.off} disallowed",
                             EACCES)
        elif arg.kind == "mem":
            # check_mem_reg: NULL is fine; otherwise the memory must be readable and writable.
            if reg.is_null():
                continue
            if reg.type & PTR_MAYBE_NULL:
                saved = reg.copy()
                reg.type &= ~PTR_MAYBE_NULL
                try:
                    check_helper_mem_access(env, regno, arg.size, BPF_READ, True)
                    check_helper_mem_access(env, regno, arg.size, BPF_WRITE, True)
                finally:
                    reg.assign(saved)
            else:
                check_helper_mem_access(env, regno, arg.size, BPF_READ, True)
                check_helper_mem_access(env, regno, arg.size, BPF_WRITE, True)
        else:
            raise Refuse(f"reg type unsupported for arg#{i} kernel function {spec.name}#{btf_id}",
                         EINVAL)
    for r in CALLER_SAVED:
        rs[r].set_not_init()
    if ret != "void":
        if "*" in ret:
            raise Refuse(f"kernel function {spec.name} returns pointer type {ret} is not "
                         "supported", EINVAL)
        rs[0].set_unknown()


# -- BPF-to-BPF calls --------------------------------------------------------------------------
def find_subprog(env: Env, start: int) -> int:
    for i, sp in enumerate(env.subprogs):
        if sp.start == start:
            return i
    return -1


def check_func_call(env: Env, imm: int) -> None:
    """__check_func_call with set_callee_state: a new frame, R1-R5 passed, R0-R5 cleared."""
    state = env.cur
    target = env.insn_idx + imm + 1
    subprog = find_subprog(env, target)
    if subprog < 0:
        raise Refuse(f"verifier bug. No program starts at insn {target}", EFAULT)
    if state.curframe + 1 >= MAX_CALL_FRAMES:
        raise Refuse(f"the call stack of {state.curframe + 2} frames is too deep", E2BIG)
    caller = state.cur
    callee = FuncState(callsite=env.insn_idx, frameno=state.curframe + 1, subprogno=subprog)
    callee.init_regs()
    env.mark_all_scratched()
    for r in range(1, 6):
        callee.regs[r].assign(caller.regs[r])
    for r in CALLER_SAVED:
        caller.regs[r].set_not_init()
        caller.regs[r].written = True
        env.mark_reg_scratched(r)
    state.frames.append(callee)
    env.insn_idx = env.subprogs[subprog].start - 1
    if env.log.level:
        env.verbose("caller:\n" + format_state(caller, -1, -1) + "\n")
        env.verbose("callee:\n" + format_state(callee, -1, -1) + "\n")


def prepare_func_exit(env: Env) -> None:
    state = env.cur
    callee = state.cur
    r0 = callee.regs[0]
    if r0.type == PTR_TO_STACK:
        raise Refuse("cannot return stack pointer to the caller", EINVAL)
    caller = state.frames[-2]
    caller.regs[0].assign(r0)
    env.insn_idx = callee.callsite + 1
    if env.log.level:
        env.verbose("returning from callee:\n" + format_state(callee, -1, -1) + "\n")
        env.verbose(f"to caller at {env.insn_idx}:\n" + format_state(caller, -1, -1) + "\n")
    state.frames.pop()


def check_max_stack_depth(env: Env) -> None:
    """check_max_stack_depth_subprog for the main program: a static walk over every call chain
    (dead code included), each frame's depth rounded up to 32 bytes."""
    insns = env.insns
    subs = env.subprogs
    ends = [s.start for s in subs[1:]] + [len(insns)]

    def frame_depth(k: int) -> int:
        return -(-max(subs[k].stack_depth, 1) // 32) * 32

    depth = frame = idx = 0
    i = subs[0].start
    ret: list[tuple[int, int]] = []
    process = True                       # the kernel's "process_func" label
    while True:
        if process:
            depth += frame_depth(idx)
            if depth > MAX_BPF_STACK:
                raise Refuse(f"combined stack size of {frame + 1} calls is {depth}. Too large",
                             EACCES)
        process = False
        while i < ends[idx]:             # "continue_func"
            ins = insns[i]
            if ins.code == 0x85 and ins.src == 1:
                ret.append((i + 1, idx))
                nxt = i + ins.imm + 1
                sidx = find_subprog(env, nxt)
                if sidx < 0:
                    raise Refuse(f"verifier bug. No program starts at insn {nxt}", EFAULT)
                i, idx = nxt, sidx
                frame += 1
                if frame >= MAX_CALL_FRAMES:
                    raise Refuse(f"the call stack of {frame} frames is too deep !", E2BIG)
                process = True
                break
            i += 1
        if process:
            continue
        if frame == 0:
            return
        depth -= frame_depth(idx)
        frame -= 1
        i, idx = ret.pop()


__all__ = ["HELPER_PROTOS", "add_kfunc_calls", "check_func_call", "check_helper_call",
           "check_kfunc_call", "check_max_stack_depth", "check_reference_leak", "parse_proto",
           "prepare_func_exit"]
