"""Packets and arrival times: the traffic a Lab receives.

Frames: Ethernet II, an optional 802.1Q / 802.1ad tag, IPv4 or IPv6, UDP / TCP / ICMP(v6),
any ports and payload length (:class:`Flow`).  The default is the RFC selftest's single flow
(RFC v2 05/14: UDP from port 1234 with a 4-byte 0xAA payload, 10.0.0.1 -> 10.0.0.2), so
results without ``traffic=`` do not change.  :class:`Traffic` is N flows with packets spread
over them by a counter-based rule (the same splitmix64 as the arrival jitter: chunks see the
same packets), plus the truth per flow the NIC would report (:class:`~xdplab.kernel.rxmeta.RxFlow`:
its Toeplitz RSS hash, L3/L4 class, VLAN tag).  pcap files are read and written with the
stdlib (the classic libpcap format, LINKTYPE_ETHERNET).

Arrival times are true times in ns (the simulation's reference clock), evenly spaced with
optional seeded jitter (:class:`Trace`).
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from .kernel.rxmeta import ETH_P_8021AD, ETH_P_8021Q, RxFlow


def ipv4_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(dst_port: int, *, src_port: int = 1234, payload: bytes = b"\xaa" * 4,
              src_ip: bytes = bytes([10, 0, 0, 1]), dst_ip: bytes = bytes([10, 0, 0, 2]),
              src_mac: bytes = bytes.fromhex("000000000001"),
              dst_mac: bytes = bytes.fromhex("000000000002")) -> bytes:
    """An Ethernet II / IPv4 / UDP frame (UDP checksum 0: allowed over IPv4)."""
    udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(payload), 0) + payload
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                               src_ip, dst_ip))
    ip[10:12] = ipv4_checksum(bytes(ip)).to_bytes(2, "big")
    return dst_mac + src_mac + b"\x08\x00" + bytes(ip) + udp


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's output function (Steele, Lea, Flood 2014): a counter-based generator, so
    packet k's jitter does not depend on how the packets are split into chunks."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


@dataclass(frozen=True)
class Trace:
    """``count`` arrivals from ``start_ns``, every ``interval_ns`` (+ uniform jitter in
    ``[0, jitter_ns]``, seeded, a pure function of the packet index)."""

    count: int
    start_ns: int = 2_000_000_000
    interval_ns: int = 1_000_000
    jitter_ns: int = 0
    seed: int = 0

    def times_array(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Arrival times of packets ``lo..hi`` (int64 ns), the same whichever slice is asked."""
        hi = self.count if hi is None else hi
        k = np.arange(lo, hi, dtype=np.int64)
        t = np.int64(self.start_ns) + k * np.int64(self.interval_ns)
        if self.jitter_ns:
            key = k.astype(np.uint64) ^ (np.uint64(self.seed & 0xFFFFFFFF) << np.uint64(32))
            t = t + (_splitmix64(key) % np.uint64(self.jitter_ns + 1)).astype(np.int64)
        return t

    def times(self) -> list[int]:
        return self.times_array().tolist()


# ============================================================================ shaped traffic
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD       # include/uapi/linux/if_ether.h@6.1.192:52, 74
IPPROTO = MappingProxyType({"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58})   # include/uapi/linux/in.h, in6.h
PROTOS = ("udp", "tcp", "icmp")

# The 40-byte Toeplitz key Microsoft's RSS specification gives as its example and verification
# key; Linux uses the same bytes where a driver wants "the standard key", e.g. netvsc_hash_key
# (drivers/net/hyperv/rndis_filter.c@6.1.192:56-62).  Verification vectors: Microsoft,
# "Verifying the RSS Hash Calculation" (learn.microsoft.com, windows-hardware/drivers/network).
RSS_KEY_MICROSOFT = bytes.fromhex("6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c"
                                  "6a42b73bbeac01fa")


def toeplitz_hash(data: bytes, key: bytes = RSS_KEY_MICROSOFT) -> int:
    """The Toeplitz hash of ``data`` under ``key`` (the algorithm of Microsoft's RSS spec, as
    tools/testing/selftests/net/toeplitz.c@6.1.192:106 computes it): for each input bit from
    the most significant, XOR in the 32-bit window of the key that starts at that bit."""
    if len(key) * 8 < len(data) * 8 + 32:
        raise ValueError(f"a Toeplitz key of {len(key)} bytes hashes at most {len(key) - 4} input bytes, "
                         f"got {len(data)}")
    k = int.from_bytes(key, "big")
    klen = len(key) * 8
    result = 0
    for i, byte in enumerate(data):
        for bit in range(8):
            if byte & (0x80 >> bit):
                pos = i * 8 + bit
                result ^= (k >> (klen - 32 - pos)) & 0xFFFFFFFF
    return result


def rss_input(src_ip: str, dst_ip: str, proto: str, src_port: int = 0, dst_port: int = 0) -> bytes:
    """The RSS hash input of Microsoft's spec: source and destination addresses, then (TCP/UDP
    only) source and destination ports, all in network order; ICMP is hashed on L3 only."""
    s, d = ipaddress.ip_address(src_ip).packed, ipaddress.ip_address(dst_ip).packed
    if len(s) != len(d):
        raise ValueError(f"mixed address families: {src_ip} -> {dst_ip}")
    ports = struct.pack("!HH", src_port, dst_port) if proto in ("tcp", "udp") else b""
    return s + d + ports


def _csum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    return ipv4_checksum(data)


@dataclass(frozen=True)
class Flow:
    """One 5-tuple and its frame shape.

    ``vlan``: ``(tpid, tci)`` of one tag (``ETH_P_8021Q`` or ``ETH_P_8021AD``) or None;
    ``payload_len``: bytes after the L4 header (filled with 0xAA, as the selftest's).
    """

    src_ip: str = "10.0.0.1"
    dst_ip: str = "10.0.0.2"
    proto: str = "udp"
    src_port: int = 1234
    dst_port: int = 8080
    payload_len: int = 4
    vlan: tuple[int, int] | None = None
    src_mac: bytes = bytes.fromhex("000000000001")
    dst_mac: bytes = bytes.fromhex("000000000002")

    def __post_init__(self) -> None:
        if self.proto not in PROTOS:
            raise ValueError(f"unknown proto {self.proto!r}; valid: {', '.join(PROTOS)}")
        for name in ("src_ip", "dst_ip"):
            try:
                ipaddress.ip_address(getattr(self, name))
            except ValueError:
                raise ValueError(f"Flow.{name}: not an IP address: {getattr(self, name)!r}") from None
        if ipaddress.ip_address(self.src_ip).version != ipaddress.ip_address(self.dst_ip).version:
            raise ValueError(f"mixed address families: {self.src_ip} -> {self.dst_ip}")
        for name in ("src_port", "dst_port"):
            if not 0 <= getattr(self, name) < 1 << 16:
                raise ValueError(f"Flow.{name} must be 0..65535, got {getattr(self, name)}")
        if not 0 <= self.payload_len <= 9000:
            raise ValueError(f"Flow.payload_len must be 0..9000, got {self.payload_len}")
        if self.vlan is not None:
            tpid, tci = self.vlan
            if tpid not in (ETH_P_8021Q, ETH_P_8021AD) or not 0 <= tci < 1 << 16:
                raise ValueError(f"Flow.vlan must be (0x8100 or 0x88a8, tci < 65536), got {self.vlan!r}")

    @property
    def ipv6(self) -> bool:
        return ipaddress.ip_address(self.src_ip).version == 6

    def l4(self) -> bytes:
        payload = b"\xaa" * self.payload_len
        if self.proto == "udp":
            return struct.pack("!HHHH", self.src_port, self.dst_port, 8 + len(payload), 0) + payload
        if self.proto == "tcp":     # a bare ACK, data offset 5
            return struct.pack("!HHIIBBHHH", self.src_port, self.dst_port, 1, 1, 5 << 4, 0x10, 0xFFFF, 0, 0) + payload
        icmp_type = 128 if self.ipv6 else 8          # echo request
        hdr = struct.pack("!BBHHH", icmp_type, 0, 0, 1, 1) + payload
        if self.ipv6:
            return hdr                               # ICMPv6 checksum needs the pseudo-header: left 0
        return hdr[:2] + _csum16(hdr).to_bytes(2, "big") + hdr[4:]

    def frame(self, *, tagged: bool = True) -> bytes:
        """The frame on the wire (``tagged=False``: as the host sees it after the NIC stripped
        the tag)."""
        l4 = self.l4()
        s, d = ipaddress.ip_address(self.src_ip).packed, ipaddress.ip_address(self.dst_ip).packed
        if self.ipv6:
            nh = IPPROTO["icmpv6"] if self.proto == "icmp" else IPPROTO[self.proto]
            l3 = struct.pack("!IHBB", 6 << 28, len(l4), nh, 64) + s + d
            ethertype = ETH_P_IPV6
        else:
            ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0x4000, 64,
                                       IPPROTO[self.proto], 0, s, d))
            ip[10:12] = ipv4_checksum(bytes(ip)).to_bytes(2, "big")
            l3, ethertype = bytes(ip), ETH_P_IP
        tag = struct.pack("!HH", *self.vlan) if (self.vlan and tagged) else b""
        return self.dst_mac + self.src_mac + tag + ethertype.to_bytes(2, "big") + l3 + l4

    def rss_hash(self, key: bytes = RSS_KEY_MICROSOFT) -> int:
        return toeplitz_hash(rss_input(self.src_ip, self.dst_ip, self.proto, self.src_port, self.dst_port), key)

    def truth(self, *, vlan_strip: bool = True, key: bytes = RSS_KEY_MICROSOFT) -> RxFlow:
        """What the NIC reports for this flow (computed once per flow)."""
        tpid, tci = self.vlan or (0, 0)
        return RxFlow(rss_hash=self.rss_hash(key), l3="ipv6" if self.ipv6 else "ipv4", l4=self.proto,
                      vlan_proto=tpid, vlan_tci=tci, vlan_stripped=vlan_strip and tpid == ETH_P_8021Q,
                      vlan_offload=vlan_strip)


def parse_frame(frame: bytes, *, vlan_strip: bool = True, key: bytes = RSS_KEY_MICROSOFT) -> RxFlow:
    """The NIC's view of any Ethernet frame (a pcap record): one VLAN tag, IPv4 / IPv6 (no
    extension headers followed), TCP / UDP ports.  Frames it cannot parse are L2 (no hash)."""
    if len(frame) < 14:
        return RxFlow()
    ethertype, off, tag = int.from_bytes(frame[12:14], "big"), 14, (0, 0)
    if ethertype in (ETH_P_8021Q, ETH_P_8021AD) and len(frame) >= 18:
        tag = (ethertype, int.from_bytes(frame[14:16], "big"))
        ethertype, off = int.from_bytes(frame[16:18], "big"), 18
    stripped = tag[0] == ETH_P_8021Q and vlan_strip      # only C-tags are stripped (RxFlow)
    base = RxFlow(vlan_proto=tag[0], vlan_tci=tag[1], vlan_stripped=stripped, vlan_offload=vlan_strip)
    if ethertype == ETH_P_IP and len(frame) >= off + 20:
        ihl = (frame[off] & 0xF) * 4
        proto, s, d, l4off = frame[off + 9], frame[off + 12:off + 16], frame[off + 16:off + 20], off + ihl
        fam = "ipv4"
    elif ethertype == ETH_P_IPV6 and len(frame) >= off + 40:
        proto, s, d, l4off = frame[off + 6], frame[off + 8:off + 24], frame[off + 24:off + 40], off + 40
        fam = "ipv6"
    else:
        return base
    kind = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp"}.get(proto, "")
    ports = frame[l4off:l4off + 4] if kind in ("tcp", "udp") and len(frame) >= l4off + 4 else b""
    if kind in ("tcp", "udp") and not ports:
        kind = ""
    return replace(base, rss_hash=toeplitz_hash(s + d + ports, key), l3=fam, l4=kind)


def _strip_tag(frame: bytes) -> bytes:
    if len(frame) >= 18 and int.from_bytes(frame[12:14], "big") in (ETH_P_8021Q, ETH_P_8021AD):
        return frame[:12] + frame[16:]
    return frame


@dataclass(frozen=True)
class Traffic:
    """Frames per flow and the truth per flow, and which flow each packet belongs to.

    ``frames``: each flow's frame on the wire; ``truth``: what the NIC reports for it
    (:class:`~xdplab.kernel.rxmeta.RxFlow`); ``vlan_strip``: the NIC's RX VLAN offload
    (on: the tag is removed from the frame and reported in the descriptor; off: the program
    sees the tag, the drivers return -ENODATA); ``schedule``: "spread" (packet k goes to the
    flow splitmix64(k, seed) picks: any chunk sees the same packets) or "replay" (packet k is
    frame k mod N: a pcap's order).  Build with :meth:`flows_of`, :meth:`selftest` or
    :meth:`from_pcap`.
    """

    frames: tuple[bytes, ...]
    truth: tuple[RxFlow, ...]
    vlan_strip: bool = True
    schedule: str = "spread"
    seed: int = 0
    selftest_default: bool = False
    flows: tuple[Flow, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if not self.frames or len(self.frames) != len(self.truth):
            raise ValueError(f"Traffic needs one truth per frame and at least one frame; got {len(self.frames)} "
                             f"frames, {len(self.truth)} truths")
        if self.schedule not in ("spread", "replay"):
            raise ValueError(f"unknown schedule {self.schedule!r}; valid: spread, replay")
        for k, f in enumerate(self.frames):
            if len(f) < 14:
                raise ValueError(f"Traffic frame {k} is {len(f)} bytes, shorter than an Ethernet header")

    # ---------------------------------------------------------------- builders
    @classmethod
    def flows_of(cls, flows: Iterable[Flow], *, vlan_strip: bool = True, seed: int = 0,
                 schedule: str = "spread", key: bytes = RSS_KEY_MICROSOFT) -> "Traffic":
        fl = tuple(flows)
        return cls(tuple(f.frame() for f in fl), tuple(f.truth(vlan_strip=vlan_strip, key=key) for f in fl),
                   vlan_strip, schedule, seed, False, fl)

    @classmethod
    def make(cls, n_flows: int = 1, *, proto: str = "udp", ipv6: bool = False, dst_port: int = 8080,
             src_port: int = 1234, payload_len: int = 4, vlan: tuple[int, int] | None = None,
             vlan_strip: bool = True, seed: int = 0) -> "Traffic":
        """``n_flows`` flows of one shape that differ in source address and port (flow k: source
        10.0.(k >> 8).(k & 255)+1 or 2001:db8::k+1, source port ``src_port + k``)."""
        if not 1 <= n_flows <= 65536:
            raise ValueError(f"n_flows must be 1..65536, got {n_flows}")
        flows = []
        for k in range(n_flows):
            if ipv6:
                s, d = str(ipaddress.IPv6Address(0x20010DB8 << 96 | (k + 1))), "2001:db8::ffff"
            else:
                s, d = str(ipaddress.IPv4Address((10 << 24) | (k + 1))), "10.255.0.2"
                if n_flows == 1:
                    s, d = "10.0.0.1", "10.0.0.2"
            flows.append(Flow(s, d, proto, (src_port + k) & 0xFFFF, dst_port, payload_len, vlan))
        return cls.flows_of(flows, vlan_strip=vlan_strip, seed=seed)

    @classmethod
    def selftest(cls, dst_port: int = 8080) -> "Traffic":
        """The RFC selftest's single UDP flow (the default: results as before ``traffic=``)."""
        t = cls.flows_of([Flow(dst_port=dst_port)])
        return cls(t.frames, t.truth, True, "spread", 0, True, t.flows)

    @classmethod
    def from_pcap(cls, path: str | Path, *, vlan_strip: bool = True, key: bytes = RSS_KEY_MICROSOFT) -> "Traffic":
        """A pcap file replayed in its order (packet k = record k mod N); truth by parsing."""
        frames = tuple(f for _, f in read_pcap(path))
        if not frames:
            raise ValueError(f"{path}: no packets")
        return cls(frames, tuple(parse_frame(f, vlan_strip=vlan_strip, key=key) for f in frames), vlan_strip,
                   "replay", 0, False)

    # ---------------------------------------------------------------- per packet
    @property
    def n_flows(self) -> int:
        return len(self.frames)

    def flow_index(self, lo: int = 0, hi: int = 0) -> npt.NDArray[np.int64]:
        """The flow of packets ``lo..hi`` (int64), the same whichever slice is asked."""
        k = np.arange(lo, hi, dtype=np.int64)
        n = len(self.frames)
        if n == 1:
            return np.zeros(len(k), np.int64)
        if self.schedule == "replay":
            return k % n
        key = k.astype(np.uint64) ^ (np.uint64((self.seed ^ 0x5EED) & 0xFFFFFFFF) << np.uint64(32))
        return (_splitmix64(key) % np.uint64(n)).astype(np.int64)

    def rx_frame(self, flow: int) -> bytes:
        """The bytes the XDP program sees for a flow's packet (tag removed if the NIC stripped it)."""
        f, t = self.frames[flow], self.truth[flow]
        return _strip_tag(f) if t.vlan_stripped else f

    def to_pcap(self, path: str | Path, trace: "Trace") -> None:
        """Write ``trace.count`` packets (this traffic's schedule, the trace's times) as a pcap
        with nanosecond timestamps (magic 0xa1b23c4d)."""
        idx = self.flow_index(0, trace.count)
        write_pcap(path, ((int(t), self.frames[int(i)]) for t, i in zip(trace.times_array(), idx)))


# ------------------------------------------------------------------- pcap (libpcap format)
PCAP_MAGIC_US, PCAP_MAGIC_NS = 0xA1B2C3D4, 0xA1B23C4D
LINKTYPE_ETHERNET = 1


class PcapError(ValueError):
    """A pcap file that cannot be read: says which record and why."""


def write_pcap(path: str | Path, packets: Iterable[tuple[int, bytes]], *, snaplen: int = 65535) -> None:
    """(time_ns, frame) records as a classic pcap (little-endian, ns timestamps, Ethernet)."""
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", PCAP_MAGIC_NS, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))
        for t, frame in packets:
            cap = frame[:snaplen]
            fh.write(struct.pack("<IIII", t // 1_000_000_000, t % 1_000_000_000, len(cap), len(frame)) + cap)


def read_pcap(path: str | Path) -> list[tuple[int, bytes]]:
    """(time_ns, frame) records of a classic pcap (either byte order, us or ns stamps,
    LINKTYPE_ETHERNET); :class:`PcapError` naming the record on anything else."""
    data = Path(path).read_bytes()
    return parse_pcap(data, str(path))


def parse_pcap(data: bytes, name: str = "<pcap>") -> list[tuple[int, bytes]]:
    if len(data) < 24:
        raise PcapError(f"{name}: {len(data)} bytes, shorter than a pcap header (24)")
    for order in ("<", ">"):
        magic = struct.unpack(order + "I", data[:4])[0]
        if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            break
    else:
        raise PcapError(f"{name}: not a pcap file (magic {data[:4].hex()}; pcapng is not read)")
    scale = 1 if magic == PCAP_MAGIC_NS else 1000
    linktype = struct.unpack(order + "I", data[20:24])[0]
    if linktype != LINKTYPE_ETHERNET:
        raise PcapError(f"{name}: link type {linktype}, only Ethernet (1) is read")
    out, off, k = [], 24, 0
    while off < len(data):
        if off + 16 > len(data):
            raise PcapError(f"{name}: record {k} header truncated at byte {off}")
        sec, frac, incl, _orig = struct.unpack(order + "IIII", data[off:off + 16])
        if off + 16 + incl > len(data):
            raise PcapError(f"{name}: record {k} says {incl} bytes, {len(data) - off - 16} remain")
        out.append((sec * 1_000_000_000 + frac * scale, bytes(data[off + 16:off + 16 + incl])))
        off += 16 + incl
        k += 1
    return out


def as_traffic(traffic: "Traffic | str | Path | Sequence[Flow] | None", default_port: int) -> Traffic:
    """What ``Lab.run(traffic=...)`` accepts: a Traffic, a pcap path, flows, or None (the
    selftest's flow to ``default_port``)."""
    if traffic is None:
        return Traffic.selftest(default_port)
    if isinstance(traffic, Traffic):
        return traffic
    if isinstance(traffic, (str, Path)):
        if not Path(traffic).is_file():
            raise ValueError(f"traffic={str(traffic)!r}: no such pcap file")
        return Traffic.from_pcap(traffic)
    if isinstance(traffic, Flow):
        return Traffic.flows_of([traffic])
    try:
        flows = list(traffic)
    except TypeError:
        raise ValueError(f"traffic must be a Traffic, a pcap path or Flows, got {type(traffic).__name__}") from None
    if not flows or not all(isinstance(f, Flow) for f in flows):
        raise ValueError("traffic given as a sequence must hold Flow values")
    return Traffic.flows_of(flows)
