"""Packets and arrival times: the traffic a Lab receives.

Frames are Ethernet / IPv4 / UDP, shaped like the RFC selftest's (RFC v2 05/14: from port
1234 with a 4-byte 0xAA payload, 10.0.0.1 -> 10.0.0.2).  Arrival times are true times in ns
(the simulation's reference clock), evenly spaced with optional seeded jitter.
"""
from __future__ import annotations

import random
import struct
from dataclasses import dataclass


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


@dataclass(frozen=True)
class Trace:
    """``count`` arrivals from ``start_ns``, every ``interval_ns`` (+ uniform jitter)."""

    count: int
    start_ns: int = 2_000_000_000
    interval_ns: int = 1_000_000
    jitter_ns: int = 0
    seed: int = 0

    def times(self) -> list[int]:
        if not self.jitter_ns:
            return list(range(self.start_ns, self.start_ns + self.count * self.interval_ns, self.interval_ns)) \
                if self.interval_ns else [self.start_ns] * self.count
        rng = random.Random(f"trace-{self.seed}")
        out = []
        for k in range(self.count):
            j = rng.randint(0, self.jitter_ns) if self.jitter_ns else 0
            out.append(self.start_ns + k * self.interval_ns + j)
        return out
