"""Packets and arrival times: the traffic a Lab receives.

Frames are Ethernet / IPv4 / UDP, shaped like the RFC selftest's (RFC v2 05/14: from port
1234 with a 4-byte 0xAA payload, 10.0.0.1 -> 10.0.0.2).  Arrival times are true times in ns
(the simulation's reference clock), evenly spaced with optional seeded jitter.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np


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
