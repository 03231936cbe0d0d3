"""The AF_XDP consumer: reads the metadata in front of each frame by a layout, as userspace
reads the struct it agreed on with the program (out of band, or from the object's BTF).

One rule for both engines: each engine hands over the bytes the consumer read (an ``(n, size)``
uint8 array; nothing where the packet did not reach the socket) and the flow each packet
belonged to; :func:`consumer_columns` decodes them into one column per field, with the C type
respected (signed/unsigned, width; nullable pandas dtypes, ``<NA>`` where there is no value),
the truth beside each field the simulation knows (``hw_`` prefix, as ``hw_time_ns`` is for the
timestamp) and ``meta_reason`` (which kfunc returned which errno).

Error words: the layouts follow the selftests' convention (6.3+ ``progs/xdp_hw_metadata.c`` /
``xdp_metadata.h``: ``rx_hash_err`` beside / in a union with ``rx_hash_type``): an ``X_err``
field that holds a negative errno invalidates the fields of its group (:data:`ERR_GROUPS`).
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .kernel.rxmeta import RxFlow
from .reasons import field_reason

ERR_GROUPS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "rx_timestamp_err": ("rx_timestamp",),
    "rx_hash_err": ("rx_hash", "rx_hash_type"),
    "rx_vlan_tag_err": ("rx_vlan_proto", "rx_vlan_tci"),
})
# Kernel struct fields whose column takes the kfunc out-parameter's name (BTF hints' structs).
COLUMN_ALIASES: Mapping[str, str] = MappingProxyType({"rx_hash32": "rx_hash", "vlan_tci": "rx_vlan_tci"})
TRUTH_COLUMNS = ("hw_rx_hash", "hw_rx_hash_type", "hw_rx_vlan_proto", "hw_rx_vlan_tci")
EXISTING = frozenset({"rx_timestamp"})     # already a column of Lab.run (DESIGN §2): kept as it is


@dataclass(frozen=True)
class MetaField:
    """One field of the consumer's struct: offset, size, C signedness, byte order.  Has the
    attributes of the libbpf helper's ``BtfField`` (name, offset, size, signed, kind,
    bit_offset, bits), so a BTF layout converts field by field."""

    name: str
    offset: int
    size: int
    signed: bool = False
    kind: str = "int"
    bit_offset: int = 0
    bits: int = 0
    byteorder: str = "little"

    @property
    def c_type(self) -> str:
        base = f"{'__be' if self.byteorder == 'big' else ('__s' if self.signed else '__u')}{8 * self.size}"
        return base + (f":{self.bits}" if self.bits else "")

    @property
    def pandas_dtype(self) -> str:
        width = 8 * self.size if self.size in (1, 2, 4, 8) else 64
        return f"{'Int' if self.signed else 'UInt'}{width}"


@dataclass(frozen=True)
class MetaLayout:
    """The struct the AF_XDP consumer reads at ``data - size``."""

    name: str
    size: int
    fields: tuple[MetaField, ...]
    source: str = ""

    def field(self, name: str) -> MetaField:
        for f in self.fields:
            if f.name == name:
                return f
        raise ValueError(f"struct {self.name} has no field {name!r}; fields: {', '.join(f.name for f in self.fields)}")

    def has(self, name: str) -> bool:
        return any(f.name == name for f in self.fields)

    @classmethod
    def from_btf(cls, struct: Any) -> "MetaLayout":
        """A BTF struct (the libbpf helper's ``BtfStruct``: name, size, fields with offset,
        size, signed, kind, bit_offset, bits).  ``__be16``/``__be32`` typedefs are not kept in
        its leaves; a field named ``*vlan_proto`` is read big-endian (HEURISTIC: the kfunc's
        out-parameter is ``__be16 *vlan_proto``, include/net/xdp.h)."""
        out = []
        for f in struct.fields:
            kind = getattr(f, "kind", "int")
            if kind not in ("int", "bool", "enum"):
                continue                      # char arrays, floats: no metadata column
            out.append(MetaField(f.name, f.offset, f.size, bool(f.signed), "int", getattr(f, "bit_offset", 0),
                                 getattr(f, "bits", 0), "big" if f.name.endswith("vlan_proto") else "little"))
        return cls(struct.name, struct.size, tuple(out), "BTF")


def decode_field(rows: np.ndarray, f: MetaField) -> np.ndarray:
    """Field ``f`` of every row as int64 (signed fields) or uint64, C semantics."""
    n = rows.shape[0]
    word = np.zeros((n, 8), np.uint8)
    raw = rows[:, f.offset:f.offset + f.size]
    word[:, :f.size] = raw if f.byteorder == "little" else raw[:, ::-1]
    v = word.view("<u8").reshape(-1).copy()
    width = 8 * f.size
    if f.bits:
        v = (v >> np.uint64(f.bit_offset)) & np.uint64((1 << f.bits) - 1)
        width = f.bits
    if f.signed:
        s = v.astype(np.int64)
        if width < 64:
            s = np.where(s >= (1 << (width - 1)), s - (1 << width), s)
        return s
    return v


def _nullable(values: np.ndarray, valid: np.ndarray, dtype: str) -> pd.arrays.IntegerArray:
    """A nullable integer column: ``values`` cast to the C width, ``<NA>`` where not valid."""
    return pd.arrays.IntegerArray(np.where(valid, values, 0).astype(dtype.lower()), ~np.asarray(valid, bool))


def consumer_columns(layout: MetaLayout | None, rows: np.ndarray, delivered: np.ndarray, flows: np.ndarray,
                     truth: Sequence[RxFlow], rss_types: Sequence[int | None]) -> dict[str, Any]:
    """The per-field columns of one chunk.

    ``rows``: ``(n, layout.size)`` bytes the consumer read (zeros where not delivered);
    ``delivered``: which packets reached the socket; ``flows``: each packet's flow index into
    ``truth``; ``rss_types``: what the driver's hash op reports as the type of each flow (None:
    the driver has none; the truth column is then the packet's own class).
    """
    if layout is None:
        return {}
    n = len(delivered)
    delivered = np.asarray(delivered, bool)
    raw = {f.name: decode_field(rows, f) for f in layout.fields} if n else {f.name: np.zeros(0) for f in layout.fields}
    bad: dict[str, np.ndarray] = {}
    reasons = np.full(n, "", dtype=object)
    for err, group in ERR_GROUPS.items():
        if err not in raw:
            continue
        e = raw[err].astype(np.int64)
        neg = delivered & (e < 0)
        for g in group:
            bad[g] = neg
        if neg.any():
            for code in np.unique(e[neg]).tolist():
                msg = field_reason(err[:-4], code)
                sel = neg & (e == code)
                reasons[sel] = np.where(reasons[sel] == "", msg, reasons[sel].astype(str) + "; " + msg)
    cols: dict[str, Any] = {}
    names_done = set()
    for f in layout.fields:
        col = COLUMN_ALIASES.get(f.name, f.name)
        if col in EXISTING or f.name in ERR_GROUPS or col in names_done:
            continue
        valid = delivered & ~bad.get(f.name, np.zeros(n, bool))
        names_done.add(col)
        cols[col] = _nullable(raw[f.name], valid, f.pandas_dtype)
    fl = np.asarray(flows, np.int64)
    if {"rx_hash", "rx_hash_type"} & set(cols):
        h = np.array([t.rss_hash for t in truth], np.uint64)
        ty = np.array([t.rss_type if r is None else r for t, r in zip(truth, rss_types)], np.uint64)
        cols["hw_rx_hash"] = _nullable(h[fl], np.ones(n, bool), "UInt32")
        cols["hw_rx_hash_type"] = _nullable(ty[fl], np.ones(n, bool), "UInt32")
    if {"rx_vlan_proto", "rx_vlan_tci"} & set(cols):
        tagged = np.array([bool(t.vlan_proto) for t in truth], bool)[fl] if n else np.zeros(0, bool)
        p = np.array([t.vlan_proto for t in truth], np.uint64)
        c = np.array([t.vlan_tci for t in truth], np.uint64)
        cols["hw_rx_vlan_proto"] = _nullable(p[fl], tagged, "UInt16")
        cols["hw_rx_vlan_tci"] = _nullable(c[fl], tagged, "UInt16")
    cols["meta_reason"] = pd.Categorical(reasons.astype(str)) if n else pd.Categorical([])
    return cols
