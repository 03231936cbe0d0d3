"""A short tour of the eBPF machine, printed to the terminal (``make lab`` until the
notebooks exist).

It assembles a small packet-parsing program in LLVM syntax, shows its kernel encoding and
disassembly, runs it on both execution paths over a sample Ethernet/IPv4/UDP frame, and
prints what ran (instructions by class, memory touches).
"""
from __future__ import annotations

from xdplab.bpf import assemble, disassemble, run_detailed

# Returns the UDP destination port of an untagged IPv4/UDP frame, 0 otherwise; the
# bounds checks are the ones an XDP program needs before the verifier lets it read.
PROGRAM = """
    r0 = 0
    r3 = r1
    r3 += 42                      # eth(14) + ipv4(20) + udp(8)
    if r3 > r4 goto out           # r4 = data_end, set below by the caller convention
    r2 = *(u16 *)(r1 + 12)        # h_proto, network order
    if r2 != 0x8 goto out         # htons(ETH_P_IP) read little-endian
    r2 = *(u8 *)(r1 + 23)         # iph->protocol
    if r2 != 17 goto out          # IPPROTO_UDP
    r0 = *(u16 *)(r1 + 36)        # udph->dest
    r0 = be16 r0
out:
    exit
"""


def frame() -> bytes:
    eth = bytes(6) + bytes(6) + b"\x08\x00"
    ip = bytes([0x45, 0, 0, 32, 0, 0, 0x40, 0, 64, 17, 0, 0]) + bytes([10, 0, 0, 1, 10, 0, 0, 2])
    udp = (1234).to_bytes(2, "big") + (8080).to_bytes(2, "big") + (12).to_bytes(2, "big") + bytes(2)
    return eth + ip + udp + b"\xaa" * 4


def main() -> None:
    # The caller convention of run(): r1 = mem, r2 = len(mem).  Derive data_end into r4.
    program = assemble("r4 = r1\nr4 += r2\n" + PROGRAM)
    print("xdplab: the eBPF machine\n")
    print(disassemble(program, numbered=True))
    print("kernel encoding (struct bpf_insn, little-endian):")
    data = program.encode()
    for slot in range(0, len(data), 8):
        print(f"  {slot // 8:3d}: {data[slot:slot + 8].hex(' ')}")
    pkt = frame()
    for fast in (True, False):
        res = run_detailed(program, pkt, fast=fast)
        path = "fast path" if res.fast else "reference interpreter"
        print(f"\n{path}: r0 = {res.r0} (UDP destination port), {res.insns} instructions")
        print("  by class:", dict(res.by_class))
        print("  memory touches:", {f"{k}/{d}": n for (k, d), n in res.touches.items()})
    print("\nNext: `make test` runs every test; the notebooks arrive with the workbench.")


if __name__ == "__main__":
    main()
