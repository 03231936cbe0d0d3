"""Loading clang-compiled BPF objects, as libbpf does (``bpf_object__open`` / ``__load``).

What is read (ELF via pyelftools; BTF parsed here):
- program sections by SEC name (executable sections other than ``.text``), one program per
  global function symbol in them; ``.text`` holds subprograms, appended to a program that calls
  them (libbpf's ``bpf_object__reloc_code``), with each call's ``imm`` fixed;
- relocations: ``R_BPF_64_64`` (1) on an ``ld_imm64`` naming a map in ``.maps`` becomes
  BPF_PSEUDO_MAP_FD with the map's fd; ``R_BPF_64_32`` (10) on a call to an undefined (``__ksym``)
  function becomes a kfunc call (src_reg BPF_PSEUDO_KFUNC_CALL, imm = the kfunc's BTF id in the
  running kernel: libbpf resolves it through the kernel's BTF), and on a call into ``.text`` a
  BPF-to-BPF call (linux:include/uapi/linux/bpf.h relocation numbers as LLVM emits them);
- ``.maps``: BTF-defined maps (``__uint``: a pointer to an array whose length is the value;
  ``__type``: a pointer to the type), read from the ``.BTF`` section's DATASEC ``.maps``
  (linux:include/uapi/linux/btf.h for the format).
A malformed object is a :class:`BpfObjectError` naming what is wrong, never a crash.
"""
from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

from .bpf import opcodes as op
from .bpf.errors import BpfError
from .bpf.insn import Insn, Program
from .kernel.kfuncs import TABLES, KfuncTable
from .kernel.maps import MAP_TYPE_NAMES

R_BPF_64_64 = 1
R_BPF_64_32 = 10
SHN_UNDEF = 0
BTF_MAGIC = 0xEB9F
# BTF kinds (linux:include/uapi/linux/btf.h)
BTF_KIND_INT, BTF_KIND_PTR, BTF_KIND_ARRAY, BTF_KIND_STRUCT, BTF_KIND_UNION = 1, 2, 3, 4, 5
BTF_KIND_ENUM, BTF_KIND_FWD, BTF_KIND_TYPEDEF, BTF_KIND_VOLATILE, BTF_KIND_CONST = 6, 7, 8, 9, 10
BTF_KIND_RESTRICT, BTF_KIND_FUNC, BTF_KIND_FUNC_PROTO, BTF_KIND_VAR, BTF_KIND_DATASEC = 11, 12, 13, 14, 15
BTF_KIND_FLOAT, BTF_KIND_DECL_TAG, BTF_KIND_TYPE_TAG, BTF_KIND_ENUM64 = 16, 17, 18, 19


class BpfObjectError(BpfError):
    """A BPF object file that cannot be loaded (malformed, or using what is not simulated)."""


@dataclass(frozen=True)
class MapDef:
    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int


@dataclass(frozen=True)
class ObjProgram:
    """One program of an object: its SEC name, function name, and instructions with
    relocations still symbolic (map names and kfunc names by instruction index)."""

    name: str
    section: str
    insns: tuple[Insn, ...]
    map_relocs: tuple[tuple[int, str], ...]
    kfunc_relocs: tuple[tuple[int, str], ...]

    def resolve(self, map_fds: dict[str, int], kfuncs: KfuncTable) -> Program:
        """The program ready for BPF_PROG_LOAD: map fds and kfunc BTF ids filled in."""
        insns = list(self.insns)
        for index, name in self.map_relocs:
            if name not in map_fds:
                raise BpfObjectError(f"{self.name}: map {name!r} was not created")
            old = insns[index]
            insns[index] = Insn(op.OPCODE_LD_IMM64, old.dst, op.BPF_PSEUDO_MAP_FD, 0, map_fds[name])
        for index, name in self.kfunc_relocs:
            try:
                spec = kfuncs.by_name(name)
            except ValueError:
                raise BpfObjectError(f"{self.name}: insn {index} calls kfunc {name!r}, which the "
                                     f"{kfuncs.design} kernel does not have") from None
            insns[index] = Insn(op.BPF_JMP | op.BPF_CALL, 0, op.BPF_PSEUDO_KFUNC_CALL, 0, spec.btf_id)
        return Program(insns)


@dataclass(frozen=True)
class BpfObject:
    path: str
    programs: tuple[ObjProgram, ...]
    maps: tuple[MapDef, ...]
    license: str

    @classmethod
    def open(cls, path: str | Path) -> "BpfObject":
        """``bpf_object__open``: parse the ELF file."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise BpfObjectError(f"{path}: {exc.strerror or exc}") from None
        return cls.from_bytes(data, str(path))

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<object>") -> "BpfObject":
        try:
            return _parse(data, name)
        except BpfObjectError:
            raise
        except BpfError:
            raise
        except Exception as exc:   # pyelftools, struct and index errors on a malformed file
            raise BpfObjectError(f"{name}: malformed BPF object ({type(exc).__name__}: {exc})") from None

    def program(self, name: str | None = None) -> ObjProgram:
        if name is None:
            if not self.programs:
                raise BpfObjectError(f"{self.path}: no program sections")
            return self.programs[0]
        for p in self.programs:
            if name in (p.name, p.section):
                return p
        raise BpfObjectError(f"{self.path}: no program {name!r}; it has: "
                             + ", ".join(f"{p.name} (SEC {p.section})" for p in self.programs))

    def load(self, kernel, *, design: str = "rfc-v2", program: str | None = None) -> Program:  # type: ignore[no-untyped-def]
        """Create the object's maps in ``kernel`` and return the chosen program, resolved."""
        fds = {m.name: kernel.map_create(m.name, m.map_type, m.key_size, m.value_size, m.max_entries)
               for m in self.maps}
        return self.program(program).resolve(fds, TABLES[design])


def _parse(data: bytes, name: str) -> BpfObject:
    from elftools.elf.elffile import ELFFile
    elf = ELFFile(io.BytesIO(data))
    if elf["e_machine"] not in ("EM_BPF", 247):
        raise BpfObjectError(f"{name}: not a BPF object (machine {elf['e_machine']})")
    if not elf.little_endian:
        raise BpfObjectError(f"{name}: big-endian BPF objects are not simulated")
    symtab = elf.get_section_by_name(".symtab")
    if symtab is None:
        raise BpfObjectError(f"{name}: no symbol table")
    sections = list(elf.iter_sections())
    index_of = {s.name: i for i, s in enumerate(sections)}
    symbols = list(symtab.iter_symbols())
    maps_index = index_of.get(".maps")
    btf = elf.get_section_by_name(".BTF")
    maps = _btf_maps(btf.data(), name) if (btf is not None and maps_index is not None) else ()
    text = elf.get_section_by_name(".text")
    text_insns = _insns(text.data(), ".text", name) if text is not None and text.data_size else ()
    rels = {}
    for s in sections:
        if s["sh_type"] == "SHT_REL" and s.name.startswith(".rel"):
            rels[s.name[4:]] = list(s.iter_relocations())
        elif s["sh_type"] == "SHT_RELA":
            raise BpfObjectError(f"{name}: RELA relocations ({s.name}) are not what LLVM emits for BPF")
    license_sec = elf.get_section_by_name("license")
    lic = license_sec.data().split(b"\0")[0].decode(errors="replace") if license_sec is not None else ""
    programs = []
    for i, s in enumerate(sections):
        if s["sh_type"] != "SHT_PROGBITS" or not s["sh_flags"] & 0x4 or s.name == ".text" or not s.data_size:
            continue
        insns = list(_insns(s.data(), s.name, name))
        funcs = [sym for sym in symbols if sym["st_shndx"] == i and sym["st_info"]["type"] == "STT_FUNC"
                 and sym["st_info"]["bind"] == "STB_GLOBAL"]
        prog_name = funcs[0].name if funcs else s.name
        map_relocs: list[tuple[int, str]] = []
        kfunc_relocs: list[tuple[int, str]] = []
        text_base = None

        def relocate(base_index: int, rel_list, section_name: str) -> None:  # type: ignore[no-untyped-def]
            nonlocal text_base
            for rel in rel_list:
                off, rtype = rel["r_offset"], rel["r_info_type"]
                if off % 8:
                    raise BpfObjectError(f"{name}: {section_name}: relocation at offset {off} is not on an instruction")
                k = _slot_to_index(insns, base_index, off // 8, section_name, name)
                if rel["r_info_sym"] >= len(symbols):
                    raise BpfObjectError(f"{name}: {section_name}: relocation names symbol {rel['r_info_sym']}, "
                                         f"past the symbol table")
                sym = symbols[rel["r_info_sym"]]
                insn = insns[k]
                if rtype == R_BPF_64_64:
                    if insn.opcode != op.OPCODE_LD_IMM64:
                        raise BpfObjectError(f"{name}: {section_name}: R_BPF_64_64 at insn {off // 8} is not on an ld_imm64")
                    if sym["st_shndx"] != maps_index:
                        raise BpfObjectError(f"{name}: {section_name}: insn {off // 8} refers to {sym.name!r}, "
                                             "not a map in .maps (global data is not simulated)")
                    found = [m.name for m in maps if m.name == sym.name]
                    if not found:
                        raise BpfObjectError(f"{name}: map {sym.name!r} has no BTF definition")
                    map_relocs.append((k, sym.name))
                elif rtype == R_BPF_64_32:
                    if insn.opcode != op.BPF_JMP | op.BPF_CALL:
                        raise BpfObjectError(f"{name}: {section_name}: R_BPF_64_32 at insn {off // 8} is not on a call")
                    if sym["st_shndx"] == SHN_UNDEF or sym["st_shndx"] == "SHN_UNDEF":
                        kfunc_relocs.append((k, sym.name))
                    elif sections[sym["st_shndx"]].name == ".text":
                        if text_base is None:
                            text_base = len(insns)
                            insns.extend(text_insns)
                            relocate(text_base, rels.get(".text", ()), ".text")
                        target = text_base + _index_at_slot(text_insns, sym["st_value"] // 8, name)
                        insns[k] = Insn(insn.opcode, 0, op.BPF_PSEUDO_CALL, 0,
                                        _slot(insns, target) - (_slot(insns, k) + 1))
                    else:
                        raise BpfObjectError(f"{name}: call to {sym.name!r} in section "
                                             f"{sections[sym['st_shndx']].name}, which is not .text")
                else:
                    raise BpfObjectError(f"{name}: {section_name}: unsupported relocation type {rtype}")

        relocate(0, rels.get(s.name, ()), s.name)
        programs.append(ObjProgram(prog_name, s.name, tuple(insns), tuple(map_relocs), tuple(kfunc_relocs)))
    return BpfObject(name, tuple(programs), tuple(maps), lic)


def _insns(data: bytes, section: str, name: str) -> tuple[Insn, ...]:
    """Raw instructions of a section: ld_imm64 pairs joined, no encoding-rule checks (the
    kernel checks those at load, on the resolved program)."""
    if len(data) % 8:
        raise BpfObjectError(f"{name}: section {section} is {len(data)} bytes, not whole instructions")
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


def _slot(insns: list[Insn], index: int) -> int:
    return sum(i.slots for i in insns[:index])


def _index_at_slot(insns, slot: int, name: str) -> int:  # type: ignore[no-untyped-def]
    s = 0
    for i, insn in enumerate(insns):
        if s == slot:
            return i
        s += insn.slots
    raise BpfObjectError(f"{name}: symbol points at slot {slot}, not an instruction")


def _slot_to_index(insns: list[Insn], base_index: int, slot: int, section: str, name: str) -> int:
    s = 0
    for i in range(base_index, len(insns)):
        if s == slot:
            return i
        s += insns[i].slots
    raise BpfObjectError(f"{name}: {section}: relocation at insn {slot} is past the section")


# ------------------------------------------------------------------------------------- BTF
@dataclass(frozen=True)
class _BtfType:
    kind: int
    name: str
    size_or_type: int
    vlen: int
    extra: tuple


def _btf_types(data: bytes, name: str) -> list[_BtfType]:
    if len(data) < 24:
        raise BpfObjectError(f"{name}: .BTF is truncated")
    magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<HBBIIIII", data)
    if magic != BTF_MAGIC:
        raise BpfObjectError(f"{name}: .BTF has bad magic {magic:#x}")
    types_at, strs_at = hdr_len + type_off, hdr_len + str_off
    if types_at + type_len > len(data) or strs_at + str_len > len(data):
        raise BpfObjectError(f"{name}: .BTF sections run past its end")
    strings = data[strs_at:strs_at + str_len]

    def string(off: int) -> str:
        end = strings.find(b"\0", off)
        return strings[off:end].decode(errors="replace") if 0 <= off < len(strings) else ""

    out = [_BtfType(0, "void", 0, 0, ())]
    p, end = types_at, types_at + type_len
    while p < end:
        name_off, info, size_or_type = struct.unpack_from("<III", data, p)
        p += 12
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        extra: tuple = ()
        if kind == BTF_KIND_INT:
            p += 4
        elif kind == BTF_KIND_ARRAY:
            extra = struct.unpack_from("<III", data, p)
            p += 12
        elif kind in (BTF_KIND_STRUCT, BTF_KIND_UNION):
            extra = tuple((string(m[0]), m[1], m[2]) for m in
                          (struct.unpack_from("<III", data, p + 12 * j) for j in range(vlen)))
            p += 12 * vlen
        elif kind == BTF_KIND_ENUM:
            p += 8 * vlen
        elif kind == BTF_KIND_FUNC_PROTO:
            p += 8 * vlen
        elif kind == BTF_KIND_VAR:
            p += 4
        elif kind == BTF_KIND_DATASEC:
            extra = tuple(struct.unpack_from("<III", data, p + 12 * j) for j in range(vlen))
            p += 12 * vlen
        elif kind == BTF_KIND_DECL_TAG:
            p += 4
        elif kind == BTF_KIND_ENUM64:
            p += 12 * vlen
        elif kind not in (BTF_KIND_PTR, BTF_KIND_FWD, BTF_KIND_TYPEDEF, BTF_KIND_VOLATILE, BTF_KIND_CONST,
                          BTF_KIND_RESTRICT, BTF_KIND_FUNC, BTF_KIND_FLOAT, BTF_KIND_TYPE_TAG):
            raise BpfObjectError(f"{name}: .BTF has unknown kind {kind}")
        out.append(_BtfType(kind, string(name_off), size_or_type, vlen, extra))
    return out


def _skip_mods(types: list[_BtfType], tid: int) -> _BtfType:
    seen = 0
    t = types[tid]
    while t.kind in (BTF_KIND_TYPEDEF, BTF_KIND_VOLATILE, BTF_KIND_CONST, BTF_KIND_RESTRICT, BTF_KIND_TYPE_TAG):
        t = types[t.size_or_type]
        seen += 1
        if seen > 64:
            raise BpfObjectError("BTF type chain loops")
    return t


def _size(types: list[_BtfType], tid: int) -> int:
    t = _skip_mods(types, tid)
    if t.kind in (BTF_KIND_INT, BTF_KIND_STRUCT, BTF_KIND_UNION, BTF_KIND_ENUM, BTF_KIND_FLOAT, BTF_KIND_ENUM64):
        return t.size_or_type
    if t.kind == BTF_KIND_PTR:
        return 8
    if t.kind == BTF_KIND_ARRAY:
        return t.extra[2] * _size(types, t.extra[0])
    raise BpfObjectError(f"BTF type {t.name or t.kind} has no size")


def _btf_maps(data: bytes, name: str) -> tuple[MapDef, ...]:
    types = _btf_types(data, name)
    sec = next((t for t in types if t.kind == BTF_KIND_DATASEC and t.name == ".maps"), None)
    if sec is None:
        return ()
    out = []
    for var_id, _off, _size_ in sec.extra:
        var = types[var_id]
        st = _skip_mods(types, var.size_or_type)
        if st.kind != BTF_KIND_STRUCT:
            raise BpfObjectError(f"{name}: map {var.name!r} is not a BTF struct")
        fields: dict[str, int] = {}
        for mname, mtype, _moff in st.extra:
            ptr = _skip_mods(types, mtype)
            if ptr.kind != BTF_KIND_PTR:
                raise BpfObjectError(f"{name}: map {var.name!r} member {mname!r} is not a pointer")
            target = _skip_mods(types, ptr.size_or_type)
            if mname in ("key", "value"):
                fields[mname + "_size"] = _size(types, ptr.size_or_type)
            elif target.kind == BTF_KIND_ARRAY:
                fields[mname] = target.extra[2]
            else:
                raise BpfObjectError(f"{name}: map {var.name!r} member {mname!r} is not __uint or __type")
        if "type" not in fields or fields["type"] not in MAP_TYPE_NAMES:
            raise BpfObjectError(f"{name}: map {var.name!r} has map type {fields.get('type')}, not one of "
                                 + ", ".join(MAP_TYPE_NAMES.values()))
        out.append(MapDef(var.name, fields["type"], fields.get("key_size", 4), fields.get("value_size", 4),
                          fields.get("max_entries", 1)))
    return tuple(out)
