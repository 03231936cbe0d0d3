"""Loading clang-compiled BPF objects as libbpf does (``bpf_object__open`` / ``__load``).

What is read (ELF via pyelftools; BTF by :mod:`xdplab.kernel.btf`), following libbpf
(tools/lib/bpf/libbpf.c@6.1.192, cited by function):

- **programs**: every FUNC symbol in an executable section other than ``.text`` is one program
  (bpf_object__add_programs: several per section, each from its symbol's offset and size; a
  ``static`` one is refused, "is static and not supported").  Its type comes from the section
  name through libbpf's ``section_defs`` table (:data:`SECTION_DEFS`, matched as
  sec_def_matches does); an unknown name has no type ("missing BPF prog type").
- **subprograms**: functions in ``.text`` (global or ``static``) are appended to each program
  that calls them, as bpf_object__reloc_code does; the call's target is
  ``sym.st_value / 8 + insn.imm + 1`` (global: imm = -1; static: the section symbol and
  imm = offset - 1), a call without relocation targets its own section; each call's imm is
  re-pointed at the appended copy.
- **relocations** (``R_BPF_64_64`` on ld_imm64, ``R_BPF_64_32`` on calls; numbers as LLVM emits):
  a map in ``.maps`` -> BPF_PSEUDO_MAP_FD; a variable or string in ``.data*``, ``.rodata*``,
  ``.bss`` -> BPF_PSEUDO_MAP_VALUE (the section's array map, offset ``insn.imm + sym.st_value``,
  bpf_object__relocate_data RELO_DATA); an undefined (``__ksym``) function -> a kfunc call.
- **maps**: BTF-defined ``.maps`` (``__uint``/``__type``/``__array(values, ...)`` with
  ``.rel.maps`` program references for a PROG_ARRAY, bpf_object__collect_map_relos) and one
  ARRAY map per global data section, one element of the section's size, initialised from its
  bytes (``.bss``: zeros), named by internal_map_name; ``__kconfig`` externs in one read-only
  ``<obj>.kconfig`` map laid out and filled as bpf_object__collect_externs /
  bpf_object__resolve_externs do (:data:`KCONFIG_VALUES`).
- **metadata layouts** for the AF_XDP consumer: :meth:`BpfObject.btf_struct`,
  :meth:`BpfObject.meta_struct` (BTF, else DWARF) and :func:`decode_struct`.
- **CO-RE**: ``.BTF.ext`` core_relo records of the field kinds, resolved against a small kernel
  BTF (:data:`xdplab.kernel.btf.KERNEL_STRUCTS`) and patched into the instruction
  (bpf_core_patch_insn: ``off`` of a load/store, ``imm`` of an ALU op or ld_imm64).
- **kfunc prototypes** are checked against the selected design's kernel (its
  :class:`~xdplab.kernel.kfuncs.KfuncTable`), bpf_object__resolve_ksym_func_btf_id's
  "func_proto [N] incompatible with kernel [M]".

Every refusal is a :class:`BpfObjectError` naming the object, the section, the program, the
instruction (kernel slot numbering, within the program) and the rule; malformed bytes are a
BpfObjectError too, never another exception.
"""
from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .bpf import opcodes as op
from .bpf.errors import BpfError
from .bpf.insn import Insn, Program
from .kernel.helpers import helper_call_problem
from .kernel.kfuncs import TABLES, KfuncTable
from .kernel.maps import (BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PROG_ARRAY, MAP_TYPE_NAMES, MAP_VALUES_AT,
                           map_create_problem, prog_array_update)
from .kernel.uapi import BPF_F_XDP_HAS_FRAGS, BPF_XDP, BPF_XDP_CPUMAP, BPF_XDP_DEVMAP
from .kernel.btf import (BTF_FUNC_EXTERN, BtfField, CORE_RELO_KINDS, KIND_ARRAY, KIND_PTR, KIND_STRUCT, Btf, BtfError,
                  BtfStruct, CoreRelo, ProtoShape, btf_strings, core_field_value, decode_struct, parse_btf_ext_core,
                  parse_c_proto, proto_compatible)

if TYPE_CHECKING:   # pyelftools is imported where an object is parsed (a lazy import)
    from elftools.dwarf.die import DIE
    from elftools.elf.sections import Section

    from .kernel.kernel import Kernel
    from .kernel.loader import LoadedProgram

R_BPF_64_64 = 1          # LLVM's BPF relocation numbers (llvm/BinaryFormat/ELFRelocs/BPF.def;
R_BPF_64_32 = 10         # Documentation/bpf/llvm_reloc.rst@6.1.192:109,113)
SHF_EXECINSTR = 0x4      # include/uapi/linux/elf.h@6.1.192:293
BPF_OBJ_NAME_LEN = 16    # include/uapi/linux/bpf.h@6.1.192:1317
BPF_F_RDONLY_PROG = 1 << 7   # include/uapi/linux/bpf.h@6.1.192:1259 (libbpf sets it on .rodata/.kconfig)

# libbpf.c@6.1.192:8502 section_defs: (section, program type, expected attach type).  A name
# ending in "+" matches itself or "name/..."; one ending in "/" matches as a prefix; others exactly.
SECTION_DEFS: tuple[tuple[str, str, int | None], ...] = (
    ("socket", "SOCKET_FILTER", None), ("sk_reuseport/migrate", "SK_REUSEPORT", None),
    ("sk_reuseport", "SK_REUSEPORT", None), ("kprobe+", "KPROBE", None), ("uprobe+", "KPROBE", None),
    ("uprobe.s+", "KPROBE", None), ("kretprobe+", "KPROBE", None), ("uretprobe+", "KPROBE", None),
    ("uretprobe.s+", "KPROBE", None), ("kprobe.multi+", "KPROBE", None), ("kretprobe.multi+", "KPROBE", None),
    ("ksyscall+", "KPROBE", None), ("kretsyscall+", "KPROBE", None), ("usdt+", "KPROBE", None),
    ("tc", "SCHED_CLS", None), ("classifier", "SCHED_CLS", None), ("action", "SCHED_ACT", None),
    ("tracepoint+", "TRACEPOINT", None), ("tp+", "TRACEPOINT", None), ("raw_tracepoint+", "RAW_TRACEPOINT", None),
    ("raw_tp+", "RAW_TRACEPOINT", None), ("raw_tracepoint.w+", "RAW_TRACEPOINT_WRITABLE", None),
    ("raw_tp.w+", "RAW_TRACEPOINT_WRITABLE", None), ("tp_btf+", "TRACING", None), ("fentry+", "TRACING", None),
    ("fmod_ret+", "TRACING", None), ("fexit+", "TRACING", None), ("fentry.s+", "TRACING", None),
    ("fmod_ret.s+", "TRACING", None), ("fexit.s+", "TRACING", None), ("freplace+", "EXT", None),
    ("lsm+", "LSM", None), ("lsm.s+", "LSM", None), ("lsm_cgroup+", "LSM", None), ("iter+", "TRACING", None),
    ("iter.s+", "TRACING", None), ("syscall", "SYSCALL", None),
    ("xdp.frags/devmap", "XDP", BPF_XDP_DEVMAP), ("xdp/devmap", "XDP", BPF_XDP_DEVMAP),
    ("xdp.frags/cpumap", "XDP", BPF_XDP_CPUMAP), ("xdp/cpumap", "XDP", BPF_XDP_CPUMAP),
    ("xdp.frags", "XDP", BPF_XDP), ("xdp", "XDP", BPF_XDP),
    ("perf_event", "PERF_EVENT", None), ("lwt_in", "LWT_IN", None), ("lwt_out", "LWT_OUT", None),
    ("lwt_xmit", "LWT_XMIT", None), ("lwt_seg6local", "LWT_SEG6LOCAL", None), ("sockops", "SOCK_OPS", None),
    ("sk_skb/stream_parser", "SK_SKB", None), ("sk_skb/stream_verdict", "SK_SKB", None), ("sk_skb", "SK_SKB", None),
    ("sk_msg", "SK_MSG", None), ("lirc_mode2", "LIRC_MODE2", None), ("flow_dissector", "FLOW_DISSECTOR", None),
    ("cgroup_skb/ingress", "CGROUP_SKB", None), ("cgroup_skb/egress", "CGROUP_SKB", None),
    ("cgroup/skb", "CGROUP_SKB", None), ("cgroup/sock_create", "CGROUP_SOCK", None),
    ("cgroup/sock_release", "CGROUP_SOCK", None), ("cgroup/sock", "CGROUP_SOCK", None),
    ("cgroup/post_bind4", "CGROUP_SOCK", None), ("cgroup/post_bind6", "CGROUP_SOCK", None),
    ("cgroup/bind4", "CGROUP_SOCK_ADDR", None), ("cgroup/bind6", "CGROUP_SOCK_ADDR", None),
    ("cgroup/connect4", "CGROUP_SOCK_ADDR", None), ("cgroup/connect6", "CGROUP_SOCK_ADDR", None),
    ("cgroup/sendmsg4", "CGROUP_SOCK_ADDR", None), ("cgroup/sendmsg6", "CGROUP_SOCK_ADDR", None),
    ("cgroup/recvmsg4", "CGROUP_SOCK_ADDR", None), ("cgroup/recvmsg6", "CGROUP_SOCK_ADDR", None),
    ("cgroup/getpeername4", "CGROUP_SOCK_ADDR", None), ("cgroup/getpeername6", "CGROUP_SOCK_ADDR", None),
    ("cgroup/getsockname4", "CGROUP_SOCK_ADDR", None), ("cgroup/getsockname6", "CGROUP_SOCK_ADDR", None),
    ("cgroup/sysctl", "CGROUP_SYSCTL", None), ("cgroup/getsockopt", "CGROUP_SOCKOPT", None),
    ("cgroup/setsockopt", "CGROUP_SOCKOPT", None), ("cgroup/dev", "CGROUP_DEVICE", None),
    ("struct_ops+", "STRUCT_OPS", None), ("sk_lookup", "SK_LOOKUP", None),
)


class BpfObjectError(BpfError):
    """A BPF object file that cannot be loaded (malformed, or using what is not simulated)."""


def find_sec_def(section: str) -> tuple[str, str, int | None] | None:
    """libbpf's find_sec_def / sec_def_matches (libbpf.c@6.1.192:8682): the first entry of
    :data:`SECTION_DEFS` the section name matches."""
    for entry in SECTION_DEFS:
        sec = entry[0]
        if sec.endswith("/"):
            if section.startswith(sec):
                return entry
        elif sec.endswith("+"):
            base = sec[:-1]
            if section == base or section.startswith(base + "/"):
                return entry
        elif section == sec:
            return entry
    return None


def internal_map_name(obj_name: str, real_name: str) -> str:
    """libbpf's internal_map_name (libbpf.c@6.1.192:1527): up to 15 characters, as much of the
    object name as fits before the section name (whose first 7+ characters are kept); a
    section name with a second dot (``.rodata.str1.1``) gets no prefix; characters other than
    alphanumerics, ``_`` and ``.`` become ``_``."""
    sfx_len = min(max(7, len(real_name)), BPF_OBJ_NAME_LEN - 1)
    pfx_len = 0 if "." in real_name[1:] else min(BPF_OBJ_NAME_LEN - sfx_len - 1, len(obj_name))
    name = obj_name[:pfx_len] + real_name[:sfx_len]
    return "".join(c if c.isalnum() or c in "_." else "_" for c in name)


@dataclass(frozen=True)
class MapDef:
    """A map the object declares.  ``section``: the global data section it stands for (None for
    ``.maps``); ``initial``: its value-0 bytes; ``prog_refs``: PROG_ARRAY (index, program name)
    initialisers from ``.rel.maps``."""

    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    section: str | None = None
    initial: bytes | None = field(default=None, repr=False)
    prog_refs: tuple[tuple[int, str], ...] = ()
    map_flags: int = 0


@dataclass(frozen=True)
class ObjProgram:
    """One program of an object: its SEC name, function name, type (from the section), and
    linked instructions with relocations still symbolic, by instruction index:
    ``map_relocs`` (index, map) -> BPF_PSEUDO_MAP_FD; ``value_relocs`` (index, map, offset) ->
    BPF_PSEUDO_MAP_VALUE; ``kfunc_relocs`` (index, kfunc name)."""

    name: str
    section: str
    insns: tuple[Insn, ...]
    map_relocs: tuple[tuple[int, str], ...]
    kfunc_relocs: tuple[tuple[int, str], ...]
    value_relocs: tuple[tuple[int, str, int], ...] = ()
    prog_type: str | None = None
    expected_attach_type: int | None = None
    prog_flags: int = 0
    kfunc_protos: Mapping[str, tuple[int, ProtoShape] | None] = field(default_factory=dict, repr=False)
    object_name: str = "<object>"

    def where(self, slot: int | None = None) -> str:
        at = f": insn {slot}" if slot is not None else ""
        return f"{self.object_name}: SEC({self.section!r}) prog {self.name!r}{at}"

    def slot_of(self, index: int) -> int:
        return sum(i.slots for i in self.insns[:index])

    def resolve(self, map_fds: Mapping[str, int], kfuncs: KfuncTable) -> Program:
        """The program ready for BPF_PROG_LOAD: map fds, map values and kfunc BTF ids filled in;
        kfunc prototypes checked against ``kfuncs``' kernel; helper ids checked."""
        insns = list(self.insns)
        for index, name in self.map_relocs:
            if name not in map_fds:
                raise BpfObjectError(f"{self.where(self.slot_of(index))}: map {name!r} was not created")
            old = insns[index]
            insns[index] = Insn(op.OPCODE_LD_IMM64, old.dst, op.BPF_PSEUDO_MAP_FD, 0, map_fds[name])
        for index, name, offset in self.value_relocs:
            if name not in map_fds:
                raise BpfObjectError(f"{self.where(self.slot_of(index))}: global data map {name!r} was not created")
            old = insns[index]
            insns[index] = Insn(op.OPCODE_LD_IMM64, old.dst, op.BPF_PSEUDO_MAP_VALUE, 0,
                                ((offset & 0xFFFFFFFF) << 32) | map_fds[name])
        for index, name in self.kfunc_relocs:
            slot = self.slot_of(index)
            try:
                spec = kfuncs.by_name(name)
            except ValueError:
                raise BpfObjectError(f"{self.where(slot)}: extern (func ksym) {name!r}: not found in kernel BTF: "
                                     f"insn {slot} calls kfunc {name!r}, which the {kfuncs.design} kernel "
                                     "does not have") from None
            local = self.kfunc_protos.get(name)
            if local is not None:
                local_id, shape = local
                kernel = parse_c_proto(spec.proto)
                if not proto_compatible(shape, kernel):
                    raise BpfObjectError(
                        f"{self.where(slot)}: extern (func ksym) '{name}': func_proto [{local_id}] incompatible "
                        f"with kernel [{spec.btf_id}]: the object declares {shape.spell()}, the "
                        f"{kfuncs.design} kernel has {spec.proto} (libbpf bpf_core_types_are_compat)")
            insns[index] = Insn(op.BPF_JMP | op.BPF_CALL, 0, op.BPF_PSEUDO_KFUNC_CALL, 0, spec.btf_id)
        for index, insn in enumerate(insns):
            if insn.opcode == op.BPF_JMP | op.BPF_CALL and insn.src == op.BPF_HELPER_CALL:
                problem = helper_call_problem(insn.imm)
                if problem:
                    raise BpfObjectError(f"{self.where(self.slot_of(index))}: {problem}")
        return Program(insns)


@dataclass(frozen=True)
class LoadedObject:
    """What :meth:`BpfObject.load_all` made: map fds by name and each XDP program loaded."""

    map_fds: Mapping[str, int]
    programs: Mapping[str, LoadedProgram]          # by program name


@dataclass(frozen=True)
class BpfObject:
    """An opened BPF object (``struct bpf_object``)."""

    path: str
    programs: tuple[ObjProgram, ...]
    maps: tuple[MapDef, ...]
    license: str
    btf: Btf | None = field(default=None, repr=False)
    name: str = ""
    elf: bytes = field(default=b"", repr=False, compare=False)     # the bytes opened (DWARF fallback)

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | Path) -> "BpfObject":
        """``bpf_object__open``: parse the ELF file at ``path``."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise BpfObjectError(f"{path}: {exc.strerror or exc}") from None
        return cls.from_bytes(data, str(path))

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<object>") -> "BpfObject":
        """``bpf_object__open_mem``: parse ELF bytes; ``name`` stands for the path in messages
        and gives the object name (basename up to its first dot, as bpf_object__new does)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise BpfObjectError(f"{name}: expected ELF bytes, got {type(data).__name__}")
        try:
            return _parse(bytes(data), name)
        except BpfObjectError:
            raise
        except BpfError as exc:
            raise BpfObjectError(f"{name}: {exc}") from None
        except Exception as exc:   # pyelftools, struct and index errors on a malformed file
            raise BpfObjectError(f"{name}: malformed BPF object ({type(exc).__name__}: {exc})") from None

    @classmethod
    def coerce(cls, program: "str | Path | bytes | BpfObject") -> tuple["BpfObject", str | None]:
        """What ``program=`` accepts besides a ready :class:`~xdplab.bpf.Program`: an opened
        BpfObject, ELF ``bytes``, a path, or ``"path:progname"`` (a path that exists wins over
        the split).  Returns the object and the program name asked for (None: the first XDP one)."""
        if isinstance(program, BpfObject):
            return program, None
        if isinstance(program, (bytes, bytearray, memoryview)):
            return cls.from_bytes(bytes(program), "<bytes>"), None
        text = str(program)
        if Path(text).exists() or ":" not in text:
            return cls.open(text), None
        path, _, name = text.rpartition(":")
        return cls.open(path), name or None

    # ------------------------------------------------------------------ queries
    def program(self, name: str | None = None) -> ObjProgram:
        """The program named ``name`` (function or section name); None: the first XDP program
        (else the first program)."""
        if name is None:
            if not self.programs:
                raise BpfObjectError(f"{self.path}: no program sections")
            return next((p for p in self.programs if p.prog_type == "XDP"), self.programs[0])
        for p in self.programs:
            if name in (p.name, p.section):
                return p
        raise BpfObjectError(f"{self.path}: no program {name!r}; it has: "
                             + ", ".join(f"{p.name} (SEC {p.section})" for p in self.programs))

    def btf_struct(self, name: str) -> BtfStruct:
        """The layout of ``struct name`` (fields flattened, C types kept): from ``.BTF``, else
        from DWARF (the DWARF fallback at the end of this module: clang leaves structs only reached through local
        pointers out of BTF)."""
        try:
            if self.btf is not None and name in self.btf.struct_names():
                return self.btf.struct_layout(name)
            found = dwarf_struct(self.elf, name) if self.elf else None
        except BtfError as exc:
            raise BpfObjectError(f"{self.path}: struct {name}: {exc}") from None
        except Exception as exc:     # pyelftools on damaged DWARF
            raise BpfObjectError(f"{self.path}: struct {name}: malformed DWARF ({type(exc).__name__}: {exc})") from None
        if found is None:
            raise BpfObjectError(f"{self.path}: no struct {name!r} in BTF or DWARF; structs: "
                                 + (", ".join(self._struct_names()) or "none"))
        return found

    def _struct_names(self) -> tuple[str, ...]:
        names = self.btf.struct_names() if self.btf is not None else ()
        try:
            extra = dwarf_struct_names(self.elf) if self.elf else ()
        except Exception:            # damaged DWARF: BTF's names only
            extra = ()
        return tuple(dict.fromkeys(names + extra))

    def meta_struct(self, name: str | None = None) -> BtfStruct:
        """The struct the program writes before ``data`` (its metadata), found in BTF:
        ``name`` if given; else a struct named ``xdp_meta``; else the only named struct (BTF or DWARF) that is
        none of: a map definition (anonymous), the ctx (``xdp_md``, ``__sk_buff``), a protocol
        header of the kernel's (ethhdr, iphdr, ipv6hdr, udphdr, tcphdr, vlan_hdr, icmphdr...).
        HEURISTIC: BTF does not record which type a program casts ``data_meta`` to."""
        if name is not None:
            return self.btf_struct(name)
        names = self._struct_names()
        if "xdp_meta" in names:
            return self.btf_struct("xdp_meta")
        candidates = sorted({n for n in names if n not in _NOT_META})
        if len(candidates) == 1:
            return self.btf_struct(candidates[0])
        raise BpfObjectError(f"{self.path}: cannot tell which struct is the metadata; name it "
                             f"(meta_struct=...): candidates {', '.join(candidates) or 'none'}")

    # ------------------------------------------------------------------ loading
    def create_maps(self, kernel: Kernel) -> dict[str, int]:
        """BPF_MAP_CREATE for every map the object declares (bpf_object__create_maps), global
        data maps initialised from their sections.  Returns name -> fd."""
        fds: dict[str, int] = {}
        for m in self.maps:
            problem = map_create_problem(m.map_type, m.key_size, m.value_size, m.max_entries)
            if problem:
                raise BpfObjectError(f"{self.path}: map {m.name!r}: {problem}")
            fd = kernel.map_create(m.name, m.map_type, m.key_size, m.value_size, m.max_entries)
            fds[m.name] = fd
            if m.initial:
                km = kernel.maps[fd]
                kernel.memory.space.write_bytes(km.address + MAP_VALUES_AT, m.initial)
        return fds

    def load(self, kernel: Kernel, *, design: str = "rfc-v2", program: str | None = None,
             **prog_attrs: Any) -> Program:
        """Create the object's maps in ``kernel`` and return the chosen XDP program, resolved
        for BPF_PROG_LOAD.  A non-XDP program is refused.  PROG_ARRAY initialisers
        (``.values = { [i] = &prog }``) are loaded with ``kernel.prog_load(..., **prog_attrs)``
        and put in their maps, as bpf_object__init_prog_arrays does after loading."""
        chosen = self.program(program)
        _require_xdp(self, chosen)
        fds = self.create_maps(kernel)
        kfuncs = TABLES[design]
        resolved = chosen.resolve(fds, kfuncs)
        self._init_prog_arrays(kernel, fds, kfuncs, design, prog_attrs, {})
        return resolved

    def load_all(self, kernel: Kernel, *, design: str = "rfc-v2", **prog_attrs: Any) -> LoadedObject:
        """``bpf_object__load``: create the maps, load every XDP program with
        ``kernel.prog_load(prog, design=design, **prog_attrs)`` (non-XDP programs are skipped,
        as a user would turn their autoload off), fill PROG_ARRAY initialisers."""
        fds = self.create_maps(kernel)
        kfuncs = TABLES[design]
        loaded: dict[str, LoadedProgram] = {}
        for p in self.programs:
            if p.prog_type == "XDP":
                loaded[p.name] = _prog_load(kernel, p, p.resolve(fds, kfuncs), design, prog_attrs)
        self._init_prog_arrays(kernel, fds, kfuncs, design, prog_attrs, loaded)
        return LoadedObject(MappingProxyType(fds), MappingProxyType(loaded))

    def _init_prog_arrays(self, kernel: Kernel, fds: Mapping[str, int], kfuncs: KfuncTable, design: str,
                          prog_attrs: Mapping[str, Any], loaded: dict[str, LoadedProgram]) -> None:
        for m in self.maps:
            for index, prog_name in m.prog_refs:
                if index >= m.max_entries:
                    raise BpfObjectError(f"{self.path}: map '{m.name}': values[{index}] is past max_entries "
                                         f"{m.max_entries}")
                target = self.program(prog_name)
                _require_xdp(self, target)
                if prog_name not in loaded:
                    loaded[prog_name] = _prog_load(kernel, target, target.resolve(fds, kfuncs), design, prog_attrs)
                prog_array_update(kernel.maps[fds[m.name]], index, loaded[prog_name])


def _prog_load(kernel: Kernel, p: ObjProgram, program: Program, design: str,
               prog_attrs: Mapping[str, Any]) -> LoadedProgram:
    attrs = dict(prog_attrs)
    attrs.setdefault("expected_attach_type", p.expected_attach_type or BPF_XDP)
    if p.prog_flags:
        attrs["prog_flags"] = attrs.get("prog_flags", 0) | p.prog_flags
    return kernel.prog_load(program, design=design, **attrs)


def _require_xdp(obj: BpfObject, p: ObjProgram) -> None:
    if p.prog_type is None:
        raise BpfObjectError(f"{p.where()}: missing BPF prog type, check ELF section name '{p.section}' "
                             "(libbpf: no section_defs entry matches it)")
    if p.prog_type != "XDP":
        raise BpfObjectError(f"{p.where()}: section {p.section!r} is a BPF_PROG_TYPE_{p.prog_type} program, "
                             "not XDP: xdplab runs only XDP programs")


_NOT_META = frozenset({"xdp_md", "__sk_buff", "xdp_buff", "ethhdr", "iphdr", "ipv6hdr", "udphdr", "tcphdr",
                       "vlan_hdr", "icmphdr", "icmp6hdr", "in6_addr", "bpf_map_def", "bpf_spin_lock",
                       "bpf_timer", "bpf_dynptr"})


# ====================================================================================== parsing
@dataclass
class _Sym:
    name: str
    shndx: int | None          # None: undefined (extern)
    value: int
    size: int
    type: str
    bind: str


def _object_name(path: str) -> str:
    base = path.rstrip("/").rsplit("/", 1)[-1]
    return base.split(".", 1)[0] or base


def _parse(data: bytes, path: str) -> BpfObject:
    from elftools.elf.elffile import ELFFile
    from elftools.elf.relocation import RelocationSection
    from elftools.elf.sections import SymbolTableSection
    elf = ELFFile(io.BytesIO(data))
    if elf["e_machine"] not in ("EM_BPF", 247):
        raise BpfObjectError(f"{path}: not a BPF object (machine {elf['e_machine']})")
    if not elf.little_endian:
        raise BpfObjectError(f"{path}: big-endian BPF objects are not simulated")
    obj_name = _object_name(path)
    sections = list(elf.iter_sections())
    # (pyelftools makes every SHT_SYMTAB a SymbolTableSection, every SHT_REL a RelocationSection)
    symtab = next((s for s in sections if s["sh_type"] == "SHT_SYMTAB" and isinstance(s, SymbolTableSection)), None)
    if symtab is None:
        raise BpfObjectError(f"{path}: no symbol table")
    syms: list[_Sym] = []
    for es in symtab.iter_symbols():
        sh = es["st_shndx"]
        shndx = None if sh == "SHN_UNDEF" else (sh if isinstance(sh, int) else -1)
        if isinstance(shndx, int) and shndx >= len(sections):
            raise BpfObjectError(f"{path}: symbol {es.name!r} names section {shndx}, past the last")
        syms.append(_Sym(es.name, shndx, es["st_value"], es["st_size"], es["st_info"]["type"],
                         es["st_info"]["bind"]))
    index_of = {s.name: i for i, s in enumerate(sections)}
    text_idx = index_of.get(".text")
    maps_idx = index_of.get(".maps")

    btf = None
    core: tuple[CoreRelo, ...] = ()
    btf_sec = elf.get_section_by_name(".BTF")
    if btf_sec is not None:
        raw = btf_sec.data()
        try:
            btf = Btf.parse(raw)
            ext = elf.get_section_by_name(".BTF.ext")
            if ext is not None:
                core = parse_btf_ext_core(ext.data(), btf, btf_strings(raw))
        except BtfError as exc:
            raise BpfObjectError(f"{path}: {exc}") from None

    lic_sec = elf.get_section_by_name("license")
    lic = lic_sec.data().split(b"\0")[0].decode(errors="replace") if lic_sec is not None else ""

    # relocations by target section index: {sec: {slot: (type, sym)}}
    rels: dict[int, dict[int, tuple[int, _Sym]]] = {}
    map_rels: list[tuple[int, _Sym]] = []
    for s in sections:
        if s["sh_type"] == "SHT_RELA":
            raise BpfObjectError(f"{path}: RELA relocations ({s.name}) are not what LLVM emits for BPF")
        if s["sh_type"] != "SHT_REL" or not isinstance(s, RelocationSection):
            continue
        target = s["sh_info"]
        if not 0 < target < len(sections):
            raise BpfObjectError(f"{path}: {s.name} relocates section {target}, which does not exist")
        for rel in s.iter_relocations():
            if rel["r_info_sym"] >= len(syms):
                raise BpfObjectError(f"{path}: {s.name}: relocation names symbol {rel['r_info_sym']}, "
                                     "past the symbol table")
            entry = (rel["r_info_type"], syms[rel["r_info_sym"]])
            if target == maps_idx:
                map_rels.append((rel["r_offset"], entry[1]))
            elif sections[target]["sh_flags"] & SHF_EXECINSTR:
                if rel["r_offset"] % 8:
                    raise BpfObjectError(f"{path}: {s.name}: relocation at offset {rel['r_offset']} is not on "
                                         "an instruction")
                rels.setdefault(target, {})[rel["r_offset"] // 8] = entry

    # ---- maps
    maps: list[MapDef] = []
    maps_by_offset: dict[int, str] = {}
    if maps_idx is not None and sections[maps_idx].data_size:
        if btf is None:
            raise BpfObjectError(f"{path}: .maps needs BTF (compile with -g)")
        maps.extend(_btf_maps(btf, path, map_rels, syms, sections, maps_by_offset))
    data_maps: dict[int, str] = {}
    for i, s in enumerate(sections):
        sname = s.name
        is_data = s["sh_type"] == "SHT_PROGBITS" and not s["sh_flags"] & SHF_EXECINSTR and (
            sname in (".data", ".rodata") or sname.startswith(".data.") or sname.startswith(".rodata."))
        is_bss = s["sh_type"] == "SHT_NOBITS" and sname == ".bss"      # libbpf.c@6.1.192:3458
        if (is_data or is_bss) and s["sh_size"]:
            initial = bytes(s["sh_size"]) if is_bss else s.data()
            mname = internal_map_name(obj_name, sname)
            maps.append(MapDef(mname, BPF_MAP_TYPE_ARRAY, 4, len(initial), 1, sname, initial,
                               map_flags=BPF_F_RDONLY_PROG if sname.startswith(".rodata") else 0))
            data_maps[i] = mname

    kconfig = _kconfig_map(btf, syms, obj_name, path) if btf is not None else None
    if kconfig is not None:
        maps.append(kconfig[0])

    # ---- section instructions (raw slots), CO-RE patched
    slots_of: dict[int, list[list[int]]] = {}
    for i, s in enumerate(sections):
        if s["sh_type"] == "SHT_PROGBITS" and s["sh_flags"] & SHF_EXECINSTR and s.data_size:
            raw = s.data()
            if len(raw) % 8:
                raise BpfObjectError(f"{path}: section {s.name} is {len(raw)} bytes, not whole instructions")
            slots_of[i] = [list(struct.unpack_from("<BBhi", raw, 8 * k)) for k in range(len(raw) // 8)]
    for relo in core:
        if btf is None:  # pragma: no cover - .BTF.ext (``core``) is read only after .BTF
            raise BpfObjectError(f"{path}: CO-RE relocations without .BTF")
        sec = index_of.get(relo.section)
        if sec not in slots_of or relo.insn_off % 8 or relo.insn_off // 8 >= len(slots_of[sec]):
            raise BpfObjectError(f"{path}: CO-RE relocation at {relo.section}+{relo.insn_off} is not on an instruction")
        slot = relo.insn_off // 8
        try:
            value = core_field_value(btf, relo)
        except BtfError as exc:
            raise BpfObjectError(f"{path}: SEC({relo.section!r}): insn {slot}: {exc}") from None
        _core_patch(slots_of[sec], slot, value, f"{path}: SEC({relo.section!r}): insn {slot}: CO-RE "
                    f"{CORE_RELO_KINDS[relo.kind] if relo.kind < len(CORE_RELO_KINDS) else relo.kind}")

    # ---- functions
    text_funcs = sorted(((s.value // 8, max(1, s.size // 8), s.name) for s in syms
                         if s.shndx == text_idx and s.type == "STT_FUNC"), key=lambda t: t[0])
    kfunc_protos: dict[str, tuple[int, ProtoShape] | None] = {}

    def proto_of(name: str) -> tuple[int, ProtoShape] | None:
        if name not in kfunc_protos:
            pid = btf.func_proto(name, BTF_FUNC_EXTERN) if btf is not None else None
            try:
                kfunc_protos[name] = (pid, btf.proto_shape(pid)) if pid is not None and btf is not None else None
            except BtfError as exc:
                raise BpfObjectError(f"{path}: extern {name!r}: {exc}") from None
        return kfunc_protos[name]

    ctx = _LinkCtx(path, obj_name, sections, slots_of, rels, text_idx, maps_idx, text_funcs, data_maps,
                   maps_by_offset, proto_of, kconfig[0].name if kconfig else "", kconfig[1] if kconfig else {})
    programs = []
    for i, s in enumerate(sections):
        if i not in slots_of or i == text_idx:
            continue
        funcs = [sym for sym in syms if sym.shndx == i and sym.type == "STT_FUNC"]
        if not funcs:
            raise BpfObjectError(f"{path}: SEC({s.name!r}) has code but no function symbol: no program to name")
        for sym in sorted(funcs, key=lambda f: f.value):
            if sym.bind == "STB_LOCAL":
                raise BpfObjectError(f"{path}: sec '{s.name}': program '{sym.name}' is static and not supported")
            programs.append(_link(ctx, i, sym, find_sec_def(s.name)))
    return BpfObject(path, tuple(programs), tuple(maps), lic, btf, obj_name, data)


# The simulated kernel's answers to libbpf's virtual __kconfig externs (libbpf.c@6.1.192:7615):
# LINUX_KERNEL_VERSION is KERNEL_VERSION(6, 1, 192) with the sublevel clamped to 255
# (libbpf_internal.h KERNEL_VERSION); 6.1 has BPF cookies and (x86-64) syscall wrappers.
# CONFIG_* values would come from /proc/config.gz: MODEL, none are known, so a weak CONFIG_
# extern reads 0 and a strong one is "not resolved".
KCONFIG_VALUES: Mapping[str, int] = MappingProxyType({
    "LINUX_KERNEL_VERSION": (6 << 16) + (1 << 8) + 255, "LINUX_HAS_BPF_COOKIE": 1,
    "LINUX_HAS_SYSCALL_WRAPPER": 1})


def _kconfig_map(btf: Btf, syms: list[_Sym], obj_name: str, path: str) -> tuple[MapDef, dict[str, int]] | None:
    """``.kconfig`` externs as libbpf lays them out (bpf_object__collect_externs, cmp_externs:
    alignment descending, then size ascending, then name; each at its aligned offset) in one
    read-only array map, filled by bpf_object__resolve_externs."""
    sec = btf.datasec(".kconfig")
    if sec is None or not sec.items:
        return None
    weak = {s.name for s in syms if s.shndx is None and s.bind == "STB_WEAK"}
    entries = []
    for var_id, _off, _size in sec.items:
        var = btf.types[var_id]
        size = btf.size_of(var.ref)
        t = btf.resolved(var.ref)
        while t.kind == KIND_ARRAY:
            t = btf.resolved(t.items[0])
        align = min(btf.size_of(btf.types.index(t)) if t.kind != 0 else 1, 8) or 1
        entries.append((-align, size, var.name, align))
    data = bytearray()
    offsets: dict[str, int] = {}
    for _neg, size, name, align in sorted(entries):
        off = (len(data) + align - 1) // align * align
        data.extend(bytes(off + size - len(data)))
        value = KCONFIG_VALUES.get(name)
        if value is None:
            if name.startswith("LINUX_") and name not in weak:
                raise BpfObjectError(f"{path}: extern (kcfg) '{name}': unrecognized virtual extern")
            if name not in weak:
                raise BpfObjectError(f"{path}: extern '{name}' (strong): not resolved (xdplab models no "
                                     "/proc/config.gz; declare it __weak to read 0)")
            value = 0
        data[off:off + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        offsets[name] = off
    return (MapDef(internal_map_name(obj_name, ".kconfig"), BPF_MAP_TYPE_ARRAY, 4, len(data), 1, ".kconfig",
                   bytes(data), map_flags=BPF_F_RDONLY_PROG), offsets)


def _core_patch(slots: list[list[int]], k: int, value: int, where: str) -> None:
    """bpf_core_patch_insn (relo_core.c@6.1.192): ALU/ALU64 with an immediate -> imm; LDX, ST,
    STX -> off (which must fit s16); ld_imm64 -> the 64-bit imm."""
    code = slots[k][0]
    cls = code & 0x07
    if cls in (op.BPF_ALU, op.BPF_ALU64) and not code & 0x08:
        slots[k][3] = value
    elif cls in (op.BPF_LDX, op.BPF_ST, op.BPF_STX):
        if not -32768 <= value <= 32767:
            raise BpfObjectError(f"{where}: value {value} does not fit the insn's 16-bit offset")
        slots[k][2] = value
    elif code == op.OPCODE_LD_IMM64 and k + 1 < len(slots):
        slots[k][3] = value & 0xFFFFFFFF
        slots[k + 1][3] = value >> 32
    else:
        raise BpfObjectError(f"{where}: cannot patch opcode {code:#04x}")


@dataclass(frozen=True)
class _LinkCtx:
    path: str
    obj_name: str
    sections: list[Section]
    slots_of: dict[int, list[list[int]]]                # section -> raw slots [code, regs, off, imm]
    rels: dict[int, dict[int, tuple[int, _Sym]]]        # section -> slot -> (reloc type, symbol)
    text_idx: int | None
    maps_idx: int | None
    text_funcs: list[tuple[int, int, str]]              # (start slot, slots, name) of each .text function
    data_maps: dict[int, str]                           # section -> global data map name
    maps_by_offset: dict[int, str]                      # .maps offset -> map name
    proto_of: Callable[[str], tuple[int, ProtoShape] | None]
    kconfig_map: str = ""
    kconfig_offsets: Mapping[str, int] = field(default_factory=dict)


def _link(c: _LinkCtx, sec: int, sym: _Sym, sec_def: tuple[str, str, int | None] | None) -> ObjProgram:
    """One program: its slots, then each .text function it (transitively) calls, appended once."""
    section = c.sections[sec].name
    where = f"{c.path}: SEC({section!r}) prog {sym.name!r}"
    src_slots = c.slots_of[sec]
    start, count = sym.value // 8, sym.size // 8
    if sym.value % 8 or count <= 0 or start + count > len(src_slots):
        raise BpfObjectError(f"{where}: function symbol at offset {sym.value} size {sym.size} is not inside "
                             f"its {8 * len(src_slots)}-byte section")
    slots = [list(s) for s in src_slots[start:start + count]]
    origin = [(sec, k) for k in range(start, start + count)]
    appended: dict[int, int] = {}             # .text function start -> position in slots
    fd_relocs: list[tuple[int, str]] = []
    value_relocs: list[tuple[int, str, int]] = []
    kfunc_relocs: list[tuple[int, str]] = []
    protos: dict[str, tuple[int, ProtoShape] | None] = {}

    def subprog(target: int, pos: int) -> int:
        """Append the .text function containing slot ``target``; the relative imm from ``pos``."""
        if c.text_idx is None or c.text_idx not in c.slots_of:
            raise BpfObjectError(f"{where}: insn {pos}: call into .text, which has no code")
        for fstart, fsize, fname in c.text_funcs:
            if fstart <= target < fstart + fsize:
                break
        else:
            raise BpfObjectError(f"{where}: insn {pos}: call target .text+{8 * target} is inside no function")
        if fstart + fsize > len(c.slots_of[c.text_idx]):
            raise BpfObjectError(f"{where}: .text function {fname!r} runs past its section")
        if fstart not in appended:
            appended[fstart] = len(slots)
            slots.extend(list(s) for s in c.slots_of[c.text_idx][fstart:fstart + fsize])
            origin.extend((c.text_idx, k) for k in range(fstart, fstart + fsize))
        return appended[fstart] + (target - fstart) - (pos + 1)

    pos = 0
    while pos < len(slots):
        code, regs, _off, imm = slots[pos]
        osec, k = origin[pos]
        src = regs >> 4
        is_ld = code == op.OPCODE_LD_IMM64
        is_call = code == op.BPF_JMP | op.BPF_CALL
        if is_ld and pos + 1 >= len(slots):
            raise BpfObjectError(f"{where}: insn {pos}: ld_imm64 lacks its second slot")
        rel = c.rels.get(osec, {}).get(k)
        if rel is not None:
            rtype, rsym = rel
            if rtype == R_BPF_64_64 and is_ld:
                _ld_reloc(c, where, pos, imm, rsym, slots, fd_relocs, value_relocs, subprog)
            elif rtype == R_BPF_64_32 and is_call:
                if rsym.shndx is None:
                    kfunc_relocs.append((pos, rsym.name))
                    protos[rsym.name] = c.proto_of(rsym.name)
                elif rsym.shndx == c.text_idx:
                    if src != op.BPF_PSEUDO_CALL:
                        raise BpfObjectError(f"{where}: insn {pos}: incorrect bpf_call opcode (src_reg {src})")
                    if rsym.value % 8:
                        raise BpfObjectError(f"{where}: insn {pos}: bad call relo against '{rsym.name}' at "
                                             f"offset {rsym.value}")
                    slots[pos][3] = subprog(rsym.value // 8 + imm + 1, pos)
                else:
                    sname = c.sections[rsym.shndx].name if rsym.shndx >= 0 else "a special section"
                    raise BpfObjectError(f"{where}: insn {pos}: bad call relo against '{rsym.name}' in section "
                                         f"'{sname}' (sub-programs must be in .text)")
            else:
                what = "ld_imm64" if is_ld else f"opcode {code:#04x}"
                raise BpfObjectError(f"{where}: insn {pos}: relocation type {rtype} against '{rsym.name}' on "
                                     f"{what} (only R_BPF_64_64 on ld_imm64 and R_BPF_64_32 on calls)")
        elif is_call and src == op.BPF_PSEUDO_CALL:
            if osec != c.text_idx:
                raise BpfObjectError(f"{where}: insn {pos}: call without relocation into SEC({section!r}): "
                                     "sub-programs must be in .text")
            slots[pos][3] = subprog(k + imm + 1, pos)
        elif is_ld and src == op.BPF_PSEUDO_FUNC:
            if osec != c.text_idx:
                raise BpfObjectError(f"{where}: insn {pos}: ld_imm64 of a function outside .text")
            slots[pos][3] = subprog(k + imm + 1, pos)
        pos += 2 if is_ld else 1

    raw = b"".join(struct.pack("<BBhi", a, b, cc, ((d + (1 << 31)) & 0xFFFFFFFF) - (1 << 31))
                   for a, b, cc, d in slots)
    insns = _insns(raw, section, c.path)
    index_at: dict[int, int] = {}
    s_ = 0
    for n_, insn in enumerate(insns):
        index_at[s_] = n_
        s_ += insn.slots
    prog_type = sec_def[1] if sec_def else None
    attach = sec_def[2] if sec_def else None
    flags = BPF_F_XDP_HAS_FRAGS if section.startswith("xdp.frags") else 0
    return ObjProgram(sym.name, section, insns,
                      tuple((index_at[p], n) for p, n in fd_relocs),
                      tuple((index_at[p], n) for p, n in kfunc_relocs),
                      tuple((index_at[p], n, o) for p, n, o in value_relocs),
                      prog_type, attach, flags, MappingProxyType(protos), c.path)


def _ld_reloc(c: _LinkCtx, where: str, pos: int, imm: int, rsym: _Sym, slots: list[list[int]],
              fd_relocs: list[tuple[int, str]], value_relocs: list[tuple[int, str, int]],
              subprog: Callable[[int, int], int]) -> None:
    if rsym.shndx is None:
        if rsym.name in c.kconfig_offsets:      # RELO_EXTERN_VAR, EXT_KCFG: insn[1].imm = data_off
            value_relocs.append((pos, c.kconfig_map, c.kconfig_offsets[rsym.name]))
            return
        raise BpfObjectError(f"{where}: insn {pos}: extern variable '{rsym.name}' (a __ksym variable) is "
                             "not simulated")
    if rsym.shndx == c.maps_idx:
        name = c.maps_by_offset.get(rsym.value)
        if name is None:
            raise BpfObjectError(f"{where}: insn {pos}: '{rsym.name}' is in .maps but no BTF map is at offset "
                                 f"{rsym.value}")
        fd_relocs.append((pos, name))
    elif rsym.shndx in c.data_maps:
        value_relocs.append((pos, c.data_maps[rsym.shndx], imm + rsym.value))
    elif rsym.shndx == c.text_idx:
        slots[pos][1] = (slots[pos][1] & 0x0F) | (op.BPF_PSEUDO_FUNC << 4)
        if (rsym.value + imm) % 8:
            raise BpfObjectError(f"{where}: insn {pos}: bad subprog addr relo against '{rsym.name}'")
        slots[pos][3] = subprog((rsym.value + imm) // 8, pos)
    else:
        sname = c.sections[rsym.shndx].name if 0 <= rsym.shndx < len(c.sections) else "?"
        raise BpfObjectError(f"{where}: insn {pos}: ld_imm64 refers to '{rsym.name}' in section '{sname}', "
                             "which is neither .maps nor a global data section (.data, .rodata, .bss)")


def _insns(data: bytes, section: str, name: str) -> tuple[Insn, ...]:
    """Raw instructions: ld_imm64 pairs joined, no encoding-rule checks (the kernel checks
    those at load, on the resolved program)."""
    out = []
    k = 0
    n = len(data) // 8
    while k < n:
        code, regs, off, imm = struct.unpack_from("<BBhi", data, 8 * k)
        if code == op.OPCODE_LD_IMM64:
            if k + 1 >= n:
                raise BpfObjectError(f"{name}: section {section}: ld_imm64 at insn {k} lacks its second slot")
            hi = struct.unpack_from("<i", data, 8 * k + 12)[0]
            out.append(Insn(code, regs & 0xF, regs >> 4, off, ((hi & 0xFFFFFFFF) << 32) | (imm & 0xFFFFFFFF)))
            k += 2
        else:
            out.append(Insn(code, regs & 0xF, regs >> 4, off, imm))
            k += 1
    return tuple(out)


def _btf_maps(btf: Btf, path: str, map_rels: list[tuple[int, _Sym]], syms: list[_Sym], sections: list[Section],
              by_offset: dict[int, str]) -> list[MapDef]:
    """BTF-defined maps (parse_btf_map_def, libbpf.c@6.1.192): ``__uint(x, N)`` is a pointer to an
    array of N; ``__type(key, T)`` a pointer to T; ``__array(values, ...)`` a zero-sized array of
    pointers last in the struct, whose ``.rel.maps`` entries name programs (PROG_ARRAY)."""
    sec = btf.datasec(".maps")
    if sec is None:
        return []
    out = []
    # clang leaves DATASEC offsets 0; libbpf's btf_fixup_datasec takes them from the symbols
    sym_off = {s.name: (s.value, s.size) for s in syms if s.shndx is not None and s.shndx >= 0
               and s.shndx < len(sections) and sections[s.shndx].name == ".maps"}
    for var_id, var_off, var_size in sec.items:
        var = btf.types[var_id]
        var_off, var_size = sym_off.get(var.name, (var_off, var_size))
        st = btf.resolved(var.ref)
        where = f"{path}: map '{var.name}'"
        if st.kind != KIND_STRUCT:
            raise BpfObjectError(f"{where}: is not a BTF struct")
        fields: dict[str, int] = {}
        values_off = None
        for mname, mtype, bit_off, _bits in st.items:
            m = btf.resolved(mtype)
            if mname == "values":
                if m.kind != KIND_ARRAY or m.items[2] or btf.resolved(m.items[0]).kind != KIND_PTR:
                    raise BpfObjectError(f"{where}: prog-array value spec is not a zero-sized array of pointers")
                values_off = bit_off // 8
                continue
            if m.kind != KIND_PTR:
                raise BpfObjectError(f"{where}: member '{mname}' is not a pointer (__uint or __type)")
            target = btf.resolved(m.ref)
            if mname in ("key", "value"):
                fields[mname + "_size"] = btf.size_of(m.ref)
            elif target.kind == KIND_ARRAY:
                fields[mname] = target.items[2]
            else:
                raise BpfObjectError(f"{where}: member '{mname}' is not __uint or __type")
        map_type = fields.get("type", 0)
        if map_type not in MAP_TYPE_NAMES:
            raise BpfObjectError(f"{where}: map type {map_type} is not simulated (simulated: "
                                 + ", ".join(f"{k} {v}" for k, v in MAP_TYPE_NAMES.items()) + ")")
        refs = []
        if values_off is not None:
            if map_type != BPF_MAP_TYPE_PROG_ARRAY:
                raise BpfObjectError(f"{where}: 'values' initialisers are simulated for prog-array maps only")
            for r_off, rsym in map_rels:
                if var_off <= r_off < var_off + max(var_size, values_off + 8 * fields.get("max_entries", 0)):
                    slot = r_off - var_off - values_off
                    if slot < 0 or slot % 8:
                        raise BpfObjectError(f"{where}: .maps relo at offset {r_off} is not a values[] slot")
                    if rsym.type != "STT_FUNC" or rsym.shndx is None:
                        raise BpfObjectError(f"{where}: .maps relo: '{rsym.name}' isn't a valid program reference")
                    refs.append((slot // 8, rsym.name))
        key_size = fields.get("key_size", 4 if map_type == BPF_MAP_TYPE_PROG_ARRAY else 0)
        value_size = 4 if values_off is not None else fields.get("value_size", 4 if map_type == BPF_MAP_TYPE_PROG_ARRAY else 0)
        by_offset[var_off] = var.name
        out.append(MapDef(var.name, map_type, key_size, value_size, fields.get("max_entries", 0),
                          prog_refs=tuple(refs), map_flags=fields.get("map_flags", 0)))
    return out


__all__ = ["BpfObject", "BpfObjectError", "ObjProgram", "MapDef", "LoadedObject", "SECTION_DEFS", "find_sec_def",
           "internal_map_name", "BtfStruct", "decode_struct"]


# ------------------------------------------------------------------ DWARF fallback
# Struct layouts from DWARF, for types clang leaves out of BTF.
#
# Clang emits BTF only for types that globals, maps and function signatures reach; a struct the
# program only reaches through a local pointer (``struct xdp_meta *meta = data_meta;``, as the
# selftests write it) is in ``.debug_info`` (``-g``) but not in ``.BTF``.  This reads such a struct
# with pyelftools' DWARF parser into the same :class:`~xdplab.kernel.btf.BtfStruct` the BTF path
# gives.  DWARF attributes: DWARF 5 (DW_TAG_member, DW_AT_data_member_location,
# DW_AT_data_bit_offset, DW_AT_bit_size, DW_ATE_* encodings).  The object's DWARF relocations are
# section-relative against symbols of value 0 (REL, addend in place), so the unrelocated
# sections read correctly.

# DW_ATE_* base type encodings (DWARF 5, 7.8)
DW_ATE_boolean, DW_ATE_float, DW_ATE_signed, DW_ATE_signed_char = 0x02, 0x04, 0x05, 0x06
DW_ATE_unsigned, DW_ATE_unsigned_char = 0x07, 0x08
_MODIFIERS = ("DW_TAG_typedef", "DW_TAG_const_type", "DW_TAG_volatile_type", "DW_TAG_restrict_type",
              "DW_TAG_atomic_type")


def dwarf_struct(elf_bytes: bytes, name: str) -> BtfStruct | None:
    """``struct name`` from the object's DWARF (None when absent or there is no DWARF)."""
    from elftools.elf.elffile import ELFFile
    elf = ELFFile(io.BytesIO(elf_bytes))
    if not elf.has_dwarf_info():
        return None
    dwarf = elf.get_dwarf_info(relocate_dwarf_sections=False)
    for cu in dwarf.iter_CUs():
        for die in cu.iter_DIEs():
            if die.tag == "DW_TAG_structure_type" and _name(die) == name \
                    and "DW_AT_declaration" not in die.attributes:
                fields: list[BtfField] = []
                _flatten(die, "", 0, fields, 0)
                return BtfStruct(name, _attr(die, "DW_AT_byte_size", 0), tuple(fields))
    return None


def dwarf_struct_names(elf_bytes: bytes) -> tuple[str, ...]:
    from elftools.elf.elffile import ELFFile
    elf = ELFFile(io.BytesIO(elf_bytes))
    if not elf.has_dwarf_info():
        return ()
    out = []
    for cu in elf.get_dwarf_info(relocate_dwarf_sections=False).iter_CUs():
        for die in cu.iter_DIEs():
            if die.tag == "DW_TAG_structure_type" and _name(die) and "DW_AT_declaration" not in die.attributes:
                out.append(_name(die))
    return tuple(dict.fromkeys(out))


def _name(die: DIE) -> str:
    a = die.attributes.get("DW_AT_name")
    if a is None:
        return ""
    v = a.value
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


def _attr(die: DIE, key: str, default: int) -> int:
    a = die.attributes.get(key)
    return a.value if a is not None and isinstance(a.value, int) else default


def _type(die: DIE) -> DIE | None:
    for _ in range(32):
        if "DW_AT_type" not in die.attributes:
            return None
        die = die.get_DIE_from_attribute("DW_AT_type")
        if die.tag not in _MODIFIERS:
            return die
    raise BtfError("DWARF type chain too long")


def _size(t: DIE | None) -> int:
    if t is None:
        raise BtfError("DWARF member of void type")
    if t.tag == "DW_TAG_pointer_type":
        return _attr(t, "DW_AT_byte_size", 8)
    if t.tag == "DW_TAG_array_type":
        return _count(t) * _size(_type(t))
    return _attr(t, "DW_AT_byte_size", 0)


def _count(t: DIE) -> int:
    n = 1
    for sub in t.iter_children():
        if sub.tag == "DW_TAG_subrange_type":
            if "DW_AT_count" in sub.attributes:
                n *= _attr(sub, "DW_AT_count", 0)
            else:
                n *= _attr(sub, "DW_AT_upper_bound", -1) + 1
    return n


def _flatten(st: DIE, prefix: str, bit_base: int, out: list[BtfField], depth: int) -> None:
    if depth > 16:
        raise BtfError("DWARF struct nests too deep")
    for m in st.iter_children():
        if m.tag != "DW_TAG_member":
            continue
        label = prefix + (_name(m) or f"anon{len(out)}")
        bitfield = _attr(m, "DW_AT_bit_size", 0)
        if "DW_AT_data_bit_offset" in m.attributes:          # DWARF 4+: from the struct's start
            bits = bit_base + _attr(m, "DW_AT_data_bit_offset", 0)
        elif "DW_AT_bit_offset" in m.attributes:             # DWARF 2/3 form, still what clang-14
            unit = 8 * _attr(m, "DW_AT_byte_size", 0)        # writes: counted from the storage
            bits = bit_base + 8 * _attr(m, "DW_AT_data_member_location", 0) \
                + unit - _attr(m, "DW_AT_bit_offset", 0) - bitfield   # unit's MSB (little-endian)
        else:
            bits = bit_base + 8 * _attr(m, "DW_AT_data_member_location", 0)
        t = _type(m)
        if t is None:
            raise BtfError(f"DWARF member {label!r} has no type")
        if t.tag in ("DW_TAG_structure_type", "DW_TAG_union_type"):
            _flatten(t, label + "." if _name(m) else prefix, bits, out, depth + 1)
        elif t.tag == "DW_TAG_array_type":
            elem = _type(t)
            esize = _size(elem)
            enc = _attr(elem, "DW_AT_encoding", 0) if elem is not None else 0
            if esize == 1 and enc in (DW_ATE_signed_char, DW_ATE_unsigned_char):
                out.append(BtfField(label, bits // 8, _count(t), False, "chars"))
                continue
            for k in range(min(_count(t), 256)):
                out.append(_leaf(elem, f"{label}.{k}", bits + 8 * esize * k, 0))
        else:
            leaf = _leaf(t, label, bits, bitfield)
            out.append(replace(leaf, byteorder="big") if _big_endian(m) else leaf)


def _big_endian(member: DIE) -> bool:
    """A ``__be16``/``__be32``/``__be64`` typedef on the way to the base type."""
    die = member
    for _ in range(32):
        if "DW_AT_type" not in die.attributes:
            return False
        die = die.get_DIE_from_attribute("DW_AT_type")
        if die.tag == "DW_TAG_typedef" and _name(die) in ("__be16", "__be32", "__be64"):
            return True
        if die.tag not in _MODIFIERS:
            return False
    return False


def _leaf(t: DIE | None, label: str, bits: int, bitfield: int) -> BtfField:
    if t is None:
        raise BtfError("DWARF member of void type")   # (what _size says of it, too)
    size = _size(t)
    if t.tag == "DW_TAG_base_type":
        enc = _attr(t, "DW_AT_encoding", DW_ATE_unsigned)
        if enc == DW_ATE_float:
            kind, signed = "float", True
        else:
            kind = "bool" if enc == DW_ATE_boolean else "int"
            signed = enc in (DW_ATE_signed, DW_ATE_signed_char)
    elif t.tag == "DW_TAG_enumeration_type":
        under = _type(t)
        kind = "enum"
        signed = under is not None and _attr(under, "DW_AT_encoding", 0) in (DW_ATE_signed, DW_ATE_signed_char)
    elif t.tag == "DW_TAG_pointer_type":
        kind, signed = "ptr", False
    else:
        raise BtfError(f"field {label!r} has DWARF {t.tag}, which is not a value")
    if bitfield:
        storage = bits // (8 * size) * size if size else bits // 8
        return BtfField(label, storage, size, signed, kind, bits - 8 * storage, bitfield)
    if bits % 8:
        raise BtfError(f"field {label!r} is at bit {bits}, not on a byte")
    return BtfField(label, bits // 8, size, signed, kind)
