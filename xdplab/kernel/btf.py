"""BTF as libbpf reads it: types, struct layouts, prototype compatibility, CO-RE field offsets.

Format: linux:include/uapi/linux/btf.h@6.1.192 (struct btf_header, struct btf_type and the
per-kind trailers: btf_array, btf_member, btf_enum, btf_enum64, btf_param, btf_var,
btf_var_secinfo, btf_decl_tag; the ``info`` word: vlen bits 0-15, kind bits 24-28, kind_flag
bit 31; BTF_INT_ENCODING/OFFSET/BITS).  ``.BTF.ext``: tools/lib/bpf/libbpf_internal.h@6.1.192
(struct btf_ext_header, btf_ext_info_sec, bpf_core_relo in include/uapi/linux/bpf.h).

Every malformed input is a :class:`BtfError` (a BpfError) naming the type id or offset; all type
ids are range-checked at parse time, so nothing later indexes past the table.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Mapping

from ..bpf.errors import BpfError
from .structs import XDP_MD, Field, StructLayout

BTF_MAGIC = 0xEB9F
# BTF kinds (btf.h@6.1.192 BTF_KIND_*)
(KIND_UNKN, KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_FWD, KIND_TYPEDEF,
 KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_FUNC, KIND_FUNC_PROTO, KIND_VAR, KIND_DATASEC, KIND_FLOAT,
 KIND_DECL_TAG, KIND_TYPE_TAG, KIND_ENUM64) = range(20)
KIND_NAMES = ("unkn", "int", "ptr", "array", "struct", "union", "enum", "fwd", "typedef", "volatile",
              "const", "restrict", "func", "func_proto", "var", "datasec", "float", "decl_tag",
              "type_tag", "enum64")   # libbpf's btf_kind_str() spelling (libbpf.c@6.1.192:2040)
MODIFIERS = frozenset({KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG})
# BTF_INT_ENCODING bits (btf.h)
BTF_INT_SIGNED, BTF_INT_CHAR, BTF_INT_BOOL = 1, 2, 4
# BTF_FUNC linkage (btf.h enum btf_func_linkage)
BTF_FUNC_STATIC, BTF_FUNC_GLOBAL, BTF_FUNC_EXTERN = 0, 1, 2
# enum bpf_core_relo_kind (include/uapi/linux/bpf.h@6.1.192)
CORE_RELO_KINDS = ("FIELD_BYTE_OFFSET", "FIELD_BYTE_SIZE", "FIELD_EXISTS", "FIELD_SIGNED",
                   "FIELD_LSHIFT_U64", "FIELD_RSHIFT_U64", "TYPE_ID_LOCAL", "TYPE_ID_TARGET",
                   "TYPE_EXISTS", "TYPE_SIZE", "ENUMVAL_EXISTS", "ENUMVAL_VALUE", "TYPE_MATCHES")


class BtfError(BpfError):
    """Malformed or unsupported BTF."""


@dataclass(frozen=True)
class BtfType:
    """One BTF type record.  ``ref`` is size_or_type (a size for int/struct/union/enum/float/
    datasec, a type id otherwise); ``items`` the kind's trailer, decoded:
    struct/union: (name, type, bit_offset, bitfield_size); enum: (name, value);
    func_proto: (name, type); datasec: (type, offset, size); array: (elem, index, nelems);
    int: (encoding, bit_offset, bits); var/func: (linkage,)."""

    kind: int
    name: str
    ref: int
    vlen: int
    kflag: bool
    items: tuple = ()


def _parse_header(data: bytes, what: str) -> tuple[int, int, int, int]:
    if len(data) < 24:
        raise BtfError(f"{what} is truncated ({len(data)} bytes, header needs 24)")
    magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<HBBIIIII", data)
    if magic != BTF_MAGIC:
        raise BtfError(f"{what} has bad magic {magic:#x} (want {BTF_MAGIC:#x})")
    if version != 1:
        raise BtfError(f"{what} has version {version}, not 1")
    if hdr_len < 24 or hdr_len + type_off + type_len > len(data) or hdr_len + str_off + str_len > len(data):
        raise BtfError(f"{what}: type or string section runs past the end of the data")
    return hdr_len + type_off, type_len, hdr_len + str_off, str_len


@dataclass(frozen=True)
class Btf:
    """The parsed ``.BTF`` section of an object (type id 0 is void)."""

    types: tuple[BtfType, ...]

    @classmethod
    def parse(cls, data: bytes, what: str = ".BTF") -> "Btf":
        types_at, type_len, strs_at, str_len = _parse_header(data, what)
        strings = bytes(data[strs_at:strs_at + str_len])

        def string(off: int) -> str:
            if not 0 <= off < len(strings):
                raise BtfError(f"{what}: string offset {off} is past the string section ({len(strings)} bytes)")
            end = strings.find(b"\0", off)
            return strings[off:end if end >= 0 else len(strings)].decode(errors="replace")

        out = [BtfType(KIND_UNKN, "void", 0, 0, False)]
        p, end = types_at, types_at + type_len

        def take(fmt: str, n: int = 1) -> list[tuple]:
            nonlocal p
            size = struct.calcsize(fmt)
            if p + size * n > end:
                raise BtfError(f"{what}: type [{len(out)}] runs past the type section")
            rows = [struct.unpack_from(fmt, data, p + size * j) for j in range(n)]
            p += size * n
            return rows

        while p < end:
            name_off, info, ref = take("<III")[0]
            kind, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, bool(info >> 31)
            name = string(name_off)
            items: tuple = ()
            if kind == KIND_INT:
                (enc,), = take("<I")
                items = ((enc >> 24) & 0x0F, (enc >> 16) & 0xFF, enc & 0xFF)
            elif kind == KIND_ARRAY:
                items = take("<III")[0]
            elif kind in (KIND_STRUCT, KIND_UNION):
                rows = take("<III", vlen)
                items = tuple((string(n), t, (o & 0xFFFFFF) if kflag else o, (o >> 24) if kflag else 0)
                              for n, t, o in rows)
            elif kind == KIND_ENUM:
                fmt = "<Ii" if kflag else "<II"
                items = tuple((string(n), v) for n, v in take(fmt, vlen))
            elif kind == KIND_ENUM64:
                items = tuple((string(n), lo | (hi << 32)) for n, lo, hi in take("<III", vlen))
            elif kind == KIND_FUNC_PROTO:
                items = tuple((string(n), t) for n, t in take("<II", vlen))
            elif kind == KIND_VAR:
                items = take("<I")[0]
            elif kind == KIND_DATASEC:
                items = tuple(take("<III", vlen))
            elif kind == KIND_DECL_TAG:
                items = take("<i")[0]
            elif kind == KIND_FUNC:
                items = (vlen,)
            elif kind not in (KIND_PTR, KIND_FWD, KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT,
                              KIND_FLOAT, KIND_TYPE_TAG):
                raise BtfError(f"{what}: type [{len(out)}] has unknown kind {kind}")
            out.append(BtfType(kind, name, ref, vlen, kflag, items))
        btf = cls(tuple(out))
        btf._check_refs(what)
        return btf

    def _check_refs(self, what: str) -> None:
        """Every type id a record names must exist (so later walks cannot index past the table)."""
        n = len(self.types)

        def ok(tid: int, i: int) -> None:
            if not 0 <= tid < n:
                raise BtfError(f"{what}: type [{i}] refers to type [{tid}], past the last type [{n - 1}]")

        for i, t in enumerate(self.types):
            if t.kind in MODIFIERS or t.kind in (KIND_PTR, KIND_FUNC, KIND_FUNC_PROTO, KIND_VAR, KIND_DECL_TAG):
                ok(t.ref, i)
            if t.kind == KIND_ARRAY:
                ok(t.items[0], i)
                ok(t.items[1], i)
            elif t.kind in (KIND_STRUCT, KIND_UNION, KIND_FUNC_PROTO):
                for item in t.items:
                    ok(item[1], i)
            elif t.kind == KIND_DATASEC:
                for item in t.items:
                    ok(item[0], i)

    # ------------------------------------------------------------------ walking
    def skip_mods(self, tid: int) -> int:
        """The id after typedef/const/volatile/restrict/type_tag (libbpf's skip_mods_and_typedefs)."""
        for _ in range(len(self.types) + 1):
            t = self.types[tid]
            if t.kind not in MODIFIERS:
                return tid
            tid = t.ref
        raise BtfError(f"BTF type [{tid}]: modifier chain loops")

    def resolved(self, tid: int) -> BtfType:
        return self.types[self.skip_mods(tid)]

    def size_of(self, tid: int, _depth: int = 0) -> int:
        """sizeof the type (btf__resolve_size); a BtfError for a type without a size."""
        if _depth > 32:
            raise BtfError(f"BTF type [{tid}]: array nesting too deep")
        t = self.resolved(tid)
        if t.kind in (KIND_INT, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_ENUM64, KIND_FLOAT, KIND_DATASEC):
            return t.ref
        if t.kind == KIND_PTR:
            return 8
        if t.kind == KIND_ARRAY:
            return t.items[2] * self.size_of(t.items[0], _depth + 1)
        raise BtfError(f"BTF type [{tid}] ({KIND_NAMES[t.kind]} {t.name!r}) has no size")

    def by_name(self, name: str, kind: int) -> int | None:
        for i, t in enumerate(self.types):
            if t.kind == kind and t.name == name:
                return i
        return None

    def datasec(self, name: str) -> BtfType | None:
        i = self.by_name(name, KIND_DATASEC)
        return self.types[i] if i is not None else None

    def describe(self, tid: int) -> str:
        """A short C-like spelling of a type, for messages."""
        t = self.types[tid]
        for _ in range(16):
            if t.kind in (KIND_CONST, KIND_VOLATILE, KIND_RESTRICT, KIND_TYPE_TAG):
                t = self.types[t.ref]
                continue
            break
        if t.kind == KIND_PTR:
            return self.describe(t.ref) + " *" if tid != t.ref else "void *"
        if t.kind in (KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_ENUM64):
            return f"{KIND_NAMES[t.kind].rstrip('64')} {t.name or '(anon)'}"
        return t.name or KIND_NAMES[t.kind]

    # ------------------------------------------------------------------ struct layouts
    def struct_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.types if t.kind == KIND_STRUCT and t.name)

    def struct_layout(self, name: str) -> "BtfStruct":
        """The layout of ``struct name``: every scalar leaf with its offset and C type; nested
        structs/unions flattened as ``outer.inner``, arrays as ``arr.0``, ``arr.1`` (char arrays
        stay one ``bytes`` field)."""
        tid = self.by_name(name, KIND_STRUCT)
        if tid is None:
            raise BtfError(f"no struct {name!r} in BTF; structs: {', '.join(self.struct_names()) or 'none'}")
        fields: list[BtfField] = []
        self._flatten(tid, "", 0, fields, 0)
        return BtfStruct(name, self.size_of(tid), tuple(fields))

    def _flatten(self, tid: int, prefix: str, bit_base: int, out: list[BtfField], depth: int) -> None:
        if depth > 16:
            raise BtfError(f"BTF type [{tid}] nests too deep")
        t = self.resolved(tid)
        for mname, mtype, bit_off, bitfield in t.items:
            label = prefix + (mname or f"anon{len(out)}")
            bits = bit_base + bit_off
            m = self.resolved(mtype)
            if m.kind in (KIND_STRUCT, KIND_UNION):
                self._flatten(mtype, "" if not mname else label + ".", bits, out, depth + 1)
            elif m.kind == KIND_ARRAY:
                elem = self.resolved(m.items[0])
                esize = self.size_of(m.items[0])
                if elem.kind == KIND_INT and esize == 1 and elem.items[0] & BTF_INT_CHAR:
                    out.append(BtfField(label, bits // 8, m.items[2], False, "chars"))
                    continue
                for k in range(min(m.items[2], 256)):
                    out.append(self._leaf(m.items[0], f"{label}.{k}", bits + 8 * esize * k, 0))
            else:
                leaf = self._leaf(mtype, label, bits, bitfield)
                out.append(replace(leaf, byteorder="big") if self.is_big_endian(mtype) else leaf)

    def is_big_endian(self, tid: int) -> bool:
        """Whether the type is spelled through a ``__be16``/``__be32``/``__be64`` typedef
        (include/uapi/linux/types.h: network byte order), the only byte-order mark C types carry."""
        for _ in range(len(self.types) + 1):
            t = self.types[tid]
            if t.kind == KIND_TYPEDEF and t.name in ("__be16", "__be32", "__be64"):
                return True
            if t.kind not in MODIFIERS:
                return False
            tid = t.ref
        return False

    def _leaf(self, tid: int, label: str, bits: int, bitfield: int) -> "BtfField":
        t = self.resolved(tid)
        size = self.size_of(tid)
        if t.kind == KIND_INT:
            encoding, _int_off, int_bits = t.items
            kind = "bool" if encoding & BTF_INT_BOOL else "int"
            signed = bool(encoding & BTF_INT_SIGNED)
            nbits = bitfield or (int_bits if int_bits != 8 * size else 0)
        elif t.kind in (KIND_ENUM, KIND_ENUM64):
            kind, signed, nbits = "enum", t.kflag, bitfield
        elif t.kind == KIND_PTR:
            kind, signed, nbits = "ptr", False, 0
        elif t.kind == KIND_FLOAT:
            kind, signed, nbits = "float", True, 0
        else:
            raise BtfError(f"field {label!r} has {KIND_NAMES[t.kind]} type, which is not a value")
        if nbits:         # a bitfield: read its aligned storage unit, shift, mask
            storage = bits // (8 * size) * size if size else bits // 8
            return BtfField(label, storage, size, signed, kind, bits - 8 * storage, nbits)
        if bits % 8:
            raise BtfError(f"field {label!r} is at bit {bits}, not on a byte")
        return BtfField(label, bits // 8, size, signed, kind)

    # ------------------------------------------------------------------ functions
    def func_proto(self, name: str, linkage: int | None = None) -> int | None:
        """The FUNC_PROTO id of the FUNC named ``name`` (optionally of a given linkage)."""
        for t in self.types:
            if t.kind == KIND_FUNC and t.name == name and (linkage is None or t.items[0] == linkage):
                return t.ref
        return None

    def proto_shape(self, tid: int) -> "ProtoShape":
        """The function prototype reduced to what bpf_core_types_are_compat compares."""
        t = self.resolved(tid)
        if t.kind != KIND_FUNC_PROTO:
            raise BtfError(f"BTF type [{tid}] is {KIND_NAMES[t.kind]}, not func_proto")
        return ProtoShape(self._shape(t.ref), tuple(self._shape(ptype) for _, ptype in t.items))

    def _shape(self, tid: int) -> tuple[str, ...]:
        out: list[str] = []
        for _ in range(16):
            t = self.resolved(tid)
            if t.kind == KIND_PTR:
                out.append("ptr")
                tid = t.ref
                continue
            out.append(_COMPAT_KIND.get(t.kind, KIND_NAMES[t.kind]))
            return tuple(out)
        raise BtfError(f"BTF type [{tid}]: pointer chain too long")


# libbpf's __bpf_core_types_are_compat (tools/lib/bpf/relo_core.c@6.1.192 and btf_kind_core_compat):
# kinds must match after typedefs/modifiers, except that enum and enum64 match each other; ints
# match any int (width and signedness are not compared); struct/union/enum/fwd match by kind
# only; pointers recurse; func_protos need the same number of params, each compatible, and a
# compatible return type.  A shape is that reduction: ("ptr", ..., base kind).
_COMPAT_KIND = MappingProxyType({KIND_UNKN: "void", KIND_INT: "int", KIND_ENUM: "enum", KIND_ENUM64: "enum",
                                 KIND_STRUCT: "struct", KIND_UNION: "union", KIND_FWD: "fwd",
                                 KIND_FLOAT: "float"})


@dataclass(frozen=True)
class ProtoShape:
    ret: tuple[str, ...]
    params: tuple[tuple[str, ...], ...]

    def spell(self) -> str:
        def one(s: tuple[str, ...]) -> str:
            return s[-1] + " *" * (len(s) - 1)
        return f"{one(self.ret)} (*)({', '.join(one(p) for p in self.params) or 'void'})"


def parse_c_proto(proto: str) -> ProtoShape:
    """A C prototype as the kfunc tables spell it (``int f(const struct xdp_md *ctx, __u64 *ts)``)
    reduced to a :class:`ProtoShape`: the simulated kernel's BTF for that kfunc (MODEL: a real
    kernel has the FUNC_PROTO in vmlinux BTF; the tables carry the same declaration)."""
    head, _, rest = proto.partition("(")
    params = rest.rsplit(")", 1)[0].strip()

    def shape(decl: str, has_name: bool) -> tuple[str, ...]:
        words = decl.replace("*", " * ").split()
        words = [w for w in words if w not in ("const", "volatile", "restrict")]
        stars = words.count("*")
        words = [w for w in words if w != "*"]
        if has_name and len(words) > 1 and words[-2] not in ("struct", "union", "enum"):
            words = words[:-1]            # drop the declarator's name
        base = words[0] if words else "void"
        kind = {"struct": "struct", "union": "union", "enum": "enum", "void": "void"}.get(base, "int")
        return ("ptr",) * stars + (kind,)

    ret = shape(head, True)
    plist = () if params in ("", "void") else tuple(shape(p, True) for p in params.split(","))
    return ProtoShape(ret, plist)


def proto_compatible(local: ProtoShape, kernel: ProtoShape) -> bool:
    """bpf_core_types_are_compat on two func_protos (see _COMPAT_KIND)."""
    if len(local.params) != len(kernel.params):
        return False
    return all(a == b for a, b in zip(local.params + (local.ret,), kernel.params + (kernel.ret,)))


# ---------------------------------------------------------------------------------- layouts
@dataclass(frozen=True)
class BtfField:
    """One scalar leaf of a struct, as the consumer must read it.

    ``kind``: "int", "bool", "enum", "ptr", "float" or "chars" (a char array, read as bytes);
    ``bit_offset``/``bits``: a bitfield's position in the storage unit at ``offset`` (bits=0:
    a whole ``size``-byte value); ``byteorder``: "big" for a ``__be*`` typedef."""

    name: str
    offset: int
    size: int
    signed: bool
    kind: str
    bit_offset: int = 0
    bits: int = 0
    byteorder: str = "little"

    @property
    def c_type(self) -> str:
        if self.kind == "chars":
            return f"char[{self.size}]"
        if self.kind == "float":
            return {4: "float", 8: "double"}.get(self.size, f"float{8 * self.size}")
        base = f"{'s' if self.signed else 'u'}{8 * self.size}"
        return base + (f":{self.bits}" if self.bits else "")

    @property
    def numpy_dtype(self) -> str:
        """The numpy dtype that holds this field's values exactly ("object" for char arrays)."""
        if self.kind == "chars":
            return "object"
        if self.kind == "float":
            return f"float{8 * self.size}"
        if self.kind == "bool":
            return "bool"
        return f"{'int' if self.signed else 'uint'}{8 * self.size if self.size in (1, 2, 4, 8) else 64}"


@dataclass(frozen=True)
class BtfStruct:
    """A struct layout read from BTF: its name, sizeof and flattened leaves."""

    name: str
    size: int
    fields: tuple[BtfField, ...]

    def field(self, name: str) -> BtfField:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"struct {self.name} has no field {name!r}; fields: "
                       + ", ".join(f.name for f in self.fields))


def decode_struct(layout_: BtfStruct, data: bytes) -> dict[str, object]:
    """Decode metadata bytes with a BTF layout: ``{field: value}`` with each C type respected
    (signed/unsigned, width, bitfields, floats; char arrays as bytes).  A field the bytes do not
    cover (the program wrote fewer bytes than the struct) is ``None``: the consumer must not read
    past what it was given.  Pure; never raises for short or long input."""
    import struct as _st
    out: dict[str, object] = {}
    for f in layout_.fields:
        raw = bytes(data[f.offset:f.offset + f.size])
        if len(raw) < f.size:
            out[f.name] = None
            continue
        if f.kind == "chars":
            out[f.name] = raw
            continue
        if f.kind == "float":
            out[f.name] = _st.unpack("<f" if f.size == 4 else "<d", raw)[0] if f.size in (4, 8) else None
            continue
        value = int.from_bytes(raw, "big" if f.byteorder == "big" else "little")
        width = 8 * f.size
        if f.bits:
            value = (value >> f.bit_offset) & ((1 << f.bits) - 1)
            width = f.bits
        if f.signed and value >> (width - 1) & 1:
            value -= 1 << width
        out[f.name] = bool(value) if f.kind == "bool" else value
    return out


# ------------------------------------------------------------------------- kernel BTF model
# What CO-RE resolves against (MODEL: a small kernel BTF, only the structs XDP programs read).
# Offsets: include/uapi/linux/bpf.h@6.1.192 struct xdp_md (XDP_MD in xdplab.kernel.structs);
# include/uapi/linux/if_ether.h struct ethhdr; include/uapi/linux/ip.h struct iphdr (the
# ihl/version bitfields share byte 0); include/uapi/linux/ipv6.h struct ipv6hdr;
# include/uapi/linux/udp.h struct udphdr; include/uapi/linux/tcp.h struct tcphdr (flag bits in
# the __u16 at 12).
def _kl(name: str, size: int, source: str, fields: dict[str, tuple[int, int]]) -> StructLayout:
    return StructLayout(name, size, MappingProxyType({k: Field(*v) for k, v in fields.items()}), source)


KERNEL_STRUCTS: Mapping[str, StructLayout] = MappingProxyType({s.name: s for s in (
    XDP_MD,
    _kl("ethhdr", 14, "linux:include/uapi/linux/if_ether.h struct ethhdr", {
           "h_dest": (0, 6), "h_source": (6, 6), "h_proto": (12, 2)}),
    _kl("iphdr", 20, "linux:include/uapi/linux/ip.h struct iphdr", {
           "ihl": (0, 1), "version": (0, 1), "tos": (1, 1), "tot_len": (2, 2), "id": (4, 2), "frag_off": (6, 2), "ttl": (8, 1),
           "protocol": (9, 1), "check": (10, 2), "saddr": (12, 4), "daddr": (16, 4)}),
    _kl("ipv6hdr", 40, "linux:include/uapi/linux/ipv6.h struct ipv6hdr", {
           "priority": (0, 1), "version": (0, 1), "flow_lbl": (1, 3), "payload_len": (4, 2), "nexthdr": (6, 1),
           "hop_limit": (7, 1), "saddr": (8, 16), "daddr": (24, 16)}),
    _kl("udphdr", 8, "linux:include/uapi/linux/udp.h struct udphdr", {
           "source": (0, 2), "dest": (2, 2), "len": (4, 2), "check": (6, 2)}),
    _kl("tcphdr", 20, "linux:include/uapi/linux/tcp.h struct tcphdr", {
           "source": (0, 2), "dest": (2, 2), "seq": (4, 4), "ack_seq": (8, 4), "window": (14, 2), "check": (16, 2),
           "urg_ptr": (18, 2)}),
)})


@dataclass(frozen=True)
class CoreRelo:
    """One ``struct bpf_core_relo`` of ``.BTF.ext``: instruction byte offset in its section,
    the local root type, the access string ("0:1:2") and the kind."""

    section: str
    insn_off: int
    type_id: int
    access: str
    kind: int


def parse_btf_ext_core(data: bytes, btf_strings_of: "Btf", strings: bytes) -> tuple[CoreRelo, ...]:
    """The CO-RE relocation records of ``.BTF.ext`` (strings are the .BTF string section:
    btf_ext offsets name strings there)."""
    if len(data) < 8:
        raise BtfError(".BTF.ext is truncated")
    magic, version, _flags, hdr_len = struct.unpack_from("<HBBI", data)
    if magic != BTF_MAGIC or version != 1:
        raise BtfError(f".BTF.ext has bad magic/version {magic:#x}/{version}")
    # struct btf_ext_header: magic, version, flags, hdr_len, func_info_off/len, line_info_off/len
    # (24 bytes), then core_relo_off/len at 24 and 28 when hdr_len covers them
    if hdr_len < 32 or len(data) < 32:
        return ()
    core_off, core_len = struct.unpack_from("<II", data, 24)
    if core_len == 0:
        return ()
    start = hdr_len + core_off
    end = start + core_len
    if end > len(data) or core_len < 4:
        raise BtfError(".BTF.ext core_relo section runs past its end")

    def string(off: int) -> str:
        if not 0 <= off < len(strings):
            raise BtfError(f".BTF.ext names string {off}, past the .BTF strings")
        e = strings.find(b"\0", off)
        return strings[off:e if e >= 0 else len(strings)].decode(errors="replace")

    (rec_size,) = struct.unpack_from("<I", data, start)
    if rec_size < 16:
        raise BtfError(f".BTF.ext core_relo record size {rec_size} < 16")
    p = start + 4
    out = []
    while p < end:
        if p + 8 > end:
            raise BtfError(".BTF.ext core_relo section header truncated")
        sec_off, num = struct.unpack_from("<II", data, p)
        p += 8
        if p + num * rec_size > end:
            raise BtfError(".BTF.ext core_relo records run past the section")
        sec = string(sec_off)
        for j in range(num):
            insn_off, type_id, access_off, kind = struct.unpack_from("<IIII", data, p + j * rec_size)
            if not 0 <= type_id < len(btf_strings_of.types):
                raise BtfError(f".BTF.ext core_relo names type [{type_id}], past the BTF")
            out.append(CoreRelo(sec, insn_off, type_id, string(access_off), kind))
        p += num * rec_size
    return tuple(out)


def btf_strings(data: bytes) -> bytes:
    _types_at, _type_len, strs_at, str_len = _parse_header(data, ".BTF")
    return bytes(data[strs_at:strs_at + str_len])


def core_field_value(btf: Btf, relo: CoreRelo) -> int:
    """Resolve one field-based CO-RE relocation against :data:`KERNEL_STRUCTS`
    (bpf_core_calc_field_relo, relo_core.c@6.1.192): the local access string names members by
    index; we take their *names* and find the same names in the kernel struct (MODEL: one level
    of members of a known kernel struct; array-index-only accesses scale by the type size)."""
    kind = CORE_RELO_KINDS[relo.kind] if relo.kind < len(CORE_RELO_KINDS) else str(relo.kind)
    try:
        spec = [int(x) for x in relo.access.split(":")]
    except ValueError:
        raise BtfError(f"CO-RE relocation has a malformed access string {relo.access!r}") from None
    root = btf.resolved(relo.type_id)
    if kind in ("TYPE_EXISTS", "TYPE_SIZE", "TYPE_MATCHES"):
        target = KERNEL_STRUCTS.get(root.name)
        if kind == "TYPE_EXISTS" or kind == "TYPE_MATCHES":
            return int(target is not None)
        if target is None:
            raise BtfError(f"CO-RE {kind}: kernel has no struct {root.name!r}")
        return target.size
    if not kind.startswith("FIELD_"):
        raise BtfError(f"CO-RE relocation kind {kind} is not simulated (only field and type relocations)")
    if root.kind not in (KIND_STRUCT, KIND_UNION):
        raise BtfError(f"CO-RE {kind}: local type [{relo.type_id}] is {KIND_NAMES[root.kind]}, not a struct")
    target = KERNEL_STRUCTS.get(root.name)
    if target is None:
        if kind == "FIELD_EXISTS":
            return 0
        raise BtfError(f"CO-RE {kind} on struct {root.name!r}: not in the simulated kernel BTF "
                       f"(it has {', '.join(KERNEL_STRUCTS)})")
    if len(spec) != 2:
        raise BtfError(f"CO-RE {kind} on struct {root.name}: access {relo.access!r} is deeper than "
                       "one member, which is not simulated")
    if not 0 <= spec[1] < len(root.items):
        raise BtfError(f"CO-RE {kind}: access {relo.access!r} names member {spec[1]} of struct "
                       f"{root.name}, which has {len(root.items)}")
    member = root.items[spec[1]][0]
    if member not in target.fields:
        if kind == "FIELD_EXISTS":
            return 0
        raise BtfError(f"CO-RE {kind}: struct {root.name} has no field {member!r} in the kernel")
    f = target.fields[member]
    if kind == "FIELD_BYTE_OFFSET":
        return spec[0] * target.size + f.offset
    if kind == "FIELD_BYTE_SIZE":
        return f.size
    if kind == "FIELD_EXISTS":
        return 1
    raise BtfError(f"CO-RE relocation kind {kind} is not simulated")
