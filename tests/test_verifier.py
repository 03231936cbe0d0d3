"""The XDP verifier (xdplab.kernel.verifier): the kernel's decisions, words and log.

Oracles: the kernel's own test_verifier cases (../shared/verifier-tests), the 6.1 source's
messages (cited per test), soundness against the interpreter (an accepted program never faults
on a packet of any length), and fault-injected variants of the programs the project ships.
"""
from __future__ import annotations

import itertools
import json
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdplab.bpf import Insn, Program, assemble
from xdplab.bpf.errors import BpfDecodeError, BpfError
from xdplab.bpf.memory import AddressSpace, Region
from xdplab.bpf.run import run_in
from xdplab.kernel.kfuncs import MERGED, RFC_V2, TABLES
from xdplab.kernel.maps import BpfMap
from xdplab.kernel.verifier import Caps, VerifierResult, verify
from xdplab.kernel.verifier import tnum as tn
from xdplab.kernel.verifier.alu import adjust_scalar_min_max_vals
from xdplab.kernel.verifier.log import print_bpf_insn
from xdplab.kernel.verifier.regstate import Reg
from xdplab.programs import ALL_DESIGNS, FIELDS_BY_DESIGN, xdp_metadata_program

CASES = Path(__file__).resolve().parents[2] / "shared" / "verifier-tests" / "cases.json"
U64 = (1 << 64) - 1
XSK = {3: BpfMap("xsk", 17, 4, 4, 64, 1, 0xFFFF888000100000)}

# Where the sample's errstr disagrees with the 6.1 tree's own test: ld_imm64.c "test2 ld_imm64"
# in tools/testing/selftests/bpf/verifier/ld_imm64.c@6.1.192:26 expects "jump into the middle of
# ldimm64 insn 1" (check_cfg, verifier.c@6.1.192:11215); the sample says "invalid BPF_LD_IMM insn",
# the wording of later kernels.  The source wins.
ERRSTR_FROM_SOURCE = {"test2 ld_imm64": "jump into the middle of ldimm64 insn 1"}


def _load_cases():
    if not CASES.exists():
        return []
    return json.loads(CASES.read_text())


def _decide(hexstr: str) -> tuple[bool, str]:
    try:
        r = verify(bytes.fromhex(hexstr))
    except BpfError as exc:              # a decoder refusal counts as REJECT (README)
        return False, str(exc)
    return r.accepted, r.log


# ------------------------------------------------------------------ the kernel's own cases
@pytest.mark.skipif(not CASES.exists(), reason="shared verifier cases not present")
def test_every_kernel_case_decided_the_kernels_way_with_its_words():
    cases = _load_cases()
    wrong, words = [], []
    for c in cases:
        accepted, log = _decide(c["hex"])
        if accepted != (c["result"] == "ACCEPT"):
            wrong.append(c["name"])
        errstr = ERRSTR_FROM_SOURCE.get(c["name"], c["errstr"])
        if errstr and errstr not in log:
            words.append((c["name"], errstr))
    assert len(cases) == 115
    assert wrong == []
    assert words == []


def _prog(text: str) -> Program:
    return assemble(text)


def _refused(text: str, **kw) -> VerifierResult:
    r = verify(_prog(text), **kw)
    assert not r.accepted, r.log
    return r


PKT = "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\n"


# ------------------------------------------------------------------ messages, one rule each
def test_packet_read_without_bounds_check_is_refused_with_the_kernels_words():
    # check_packet_access (verifier.c@6.1.192:4149) then __check_mem_access's message
    r = _refused(PKT + "r0 = *(u8 *)(r2 + 36)\nexit")
    assert r.error == "R2 offset is outside of the packet"
    assert r.insn == 2
    assert "invalid access to packet, off=36 size=1, R2(id=0,off=36,r=0)" in r.log


@pytest.mark.parametrize("check, good", [
    ("if r4 > r3 goto out", True), ("if r3 < r4 goto out", True),
    ("if r4 >= r3 goto out", True), ("if r3 <= r4 goto out", True),
])
def test_each_comparison_form_teaches_the_range(check, good):
    # try_match_pkt_pointers (verifier.c@6.1.192:10210): > and < give r = off, >= and <= give off + 1
    rng = 14 if ">" in check and "=" not in check or "<" in check and "=" not in check else 15
    base = PKT + "r4 = r2\nr4 += 14\n" + check + "\n"
    ok = verify(_prog(base + f"r0 = *(u8 *)(r2 + {rng - 1})\nout:\nr0 = 2\nexit"))
    bad = verify(_prog(base + f"r0 = *(u8 *)(r2 + {rng})\nout:\nr0 = 2\nexit"))
    assert ok.accepted, ok.log
    assert not bad.accepted and bad.error == "R2 offset is outside of the packet"


def test_arithmetic_on_pkt_end_is_prohibited():
    r = _refused(PKT + "r3 += 8\nr0 = 2\nexit")
    assert r.error == "R3 pointer arithmetic on pkt_end prohibited"


def test_reading_an_uninitialised_register():
    r = _refused("r0 = r2\nexit")
    assert r.error == "R2 !read_ok" and r.insn == 0


def test_r0_must_be_set_at_exit():
    r = _refused("r1 = 0\nexit")
    assert r.error == "R0 !read_ok" and r.insn == 1


def test_scalar_dereference_uses_61s_wording():
    # reg_type_str (verifier.c@6.1.192:488) says "scalar", not the older "inv"
    r = _refused("r2 = 5\nr0 = *(u8 *)(r2 + 0)\nexit")
    assert r.error == "R2 invalid mem access 'scalar'"


def test_stack_bounds():
    r = _refused("*(u64 *)(r10 - 520) = 0\nr0 = 0\nexit")
    assert r.error == "invalid write to stack R10 off=-520 size=8"
    r = _refused("*(u64 *)(r10 + 0) = 0\nr0 = 0\nexit")
    assert r.error.startswith("invalid write to stack R10 off=0")


def test_cfg_messages():
    assert _refused("r0 = 0\nexit\nr0 = 1\nexit").error == "unreachable insn 2"
    assert _refused("r0 = 0\ngoto +5\nexit").error == "jump out of range from insn 1 to 7"
    # a BPF-to-BPF call to itself is a back-edge check_cfg refuses (push_insn with loop_ok=false)
    raw = Program([Insn(0x85, 0, 1, 0, 2), Insn(0xB7, 0), Insn(0x95), Insn(0x85, 0, 1, 0, -1),
                   Insn(0x95)])
    assert verify(raw).error == "back-edge from insn 3 to 3"


def test_bounded_loops_pass_and_infinite_ones_do_not():
    ok = verify(_prog("r1 = 0\nl:\nr1 += 1\nif r1 < 10 goto l\nr0 = 0\nexit"))
    assert ok.accepted, ok.log
    r = _refused("r0 = 0\nl:\nif r0 == 0 goto l\nexit")
    assert r.error.startswith("infinite loop detected at insn")


def test_unprivileged_loader_gets_back_edge_refusal():
    # check_cfg allows loops only with env->bpf_capable (verifier.c@6.1.192:11067)
    r = verify(_prog("r1 = 0\nl:\nr1 += 1\nif r1 < 10 goto l\nr0 = 0\nexit"),
               caps=Caps(bpf_capable=False))
    assert r.error == "back-edge from insn 2 to 1"


@pytest.mark.parametrize("insn, msg", [
    ("r0 = *(u64 *)(r1 + 0)", "invalid bpf_context access off=0 size=8"),
    ("r0 = *(u32 *)(r1 + 2)", "invalid bpf_context access off=2 size=4"),
    ("r0 = *(u32 *)(r1 + 20)", "invalid bpf_context access off=20 size=4"),  # egress_ifindex
    ("r0 = *(u32 *)(r1 + 24)", "invalid bpf_context access off=24 size=4"),
    ("*(u32 *)(r1 + 0) = r1", "invalid bpf_context access off=0 size=4"),
])
def test_xdp_md_access_rules(insn, msg):
    # xdp_is_valid_access (net/core/filter.c@6.1.192:9009)
    assert _refused(insn + "\nr0 = 0\nexit").error == msg


def test_xdp_md_fields_readable():
    text = "\n".join(f"r0 = *(u32 *)(r1 + {off})" for off in (0, 4, 8, 12, 16)) + "\nr0 = 0\nexit"
    assert verify(_prog(text)).accepted


def test_caller_saved_registers_are_gone_after_a_call():
    r = _refused("r1 = 1\ncall 5\nr0 = r1\nexit")
    assert r.error == "R1 !read_ok" and r.insn == 2


def test_helper_ids_and_argument_types():
    assert _refused("call 9999\nexit").error == "invalid func unknown#9999"
    # bpf_skb_load_bytes exists, but not for XDP programs
    assert _refused("call 26\nr0 = 0\nexit").error == "unknown func bpf_skb_load_bytes#26"
    assert _refused("r1 = 0\nr2 = 0\ncall 44\nexit").error == "R1 type=scalar expected=ctx"
    r = _refused("r1 = 0\nr2 = 0\ncall 1\nexit")
    assert r.error == "R1 type=scalar expected=map_ptr"


def test_map_lookup_needs_a_null_check():
    maps = {3: BpfMap("h", 1, 4, 8, 4, 1, 0x1000)}
    base = ("r1 = map_fd(3) ll\n*(u32 *)(r10 - 4) = 0\nr2 = r10\nr2 += -4\ncall 1\n")
    r = verify(_prog(base + "r0 = *(u64 *)(r0 + 0)\nexit"), maps=maps)
    assert r.error == "R0 invalid mem access 'map_value_or_null'"
    ok = verify(_prog(base + "if r0 == 0 goto out\nr0 = *(u64 *)(r0 + 0)\nout:\nr0 = 0\nexit"),
                maps=maps)
    assert ok.accepted, ok.log
    r = verify(_prog(base + "if r0 == 0 goto out\nr0 = *(u64 *)(r0 + 4)\nout:\nr0 = 0\nexit"),
               maps=maps)
    assert "invalid access to map value, value_size=8 off=4 size=8" in r.log


def test_adjust_head_invalidates_packet_pointers():
    text = PKT + "r4 = r2\nr4 += 2\nif r4 > r3 goto out\nr6 = r2\nr2 = 0\ncall 44\n" \
                 "r0 = *(u8 *)(r6 + 0)\nout:\nr0 = 2\nexit"
    # clear_all_pkt_pointers: r6 became an unknown scalar
    assert verify(_prog(text)).error == "R6 invalid mem access 'scalar'"


def _kcall(table, name: str) -> str:
    return f"call kfunc({table.by_name(name).btf_id})"


def test_kfunc_ids_and_prototypes():
    r = _refused("call kfunc(4242)\nr0 = 0\nexit", kfuncs=RFC_V2)
    assert r.error == "kernel btf_id 4242 is not a function"
    # arg#0 of every metadata kfunc is the ctx (btf.c@6.1.192:6456)
    r = _refused("r1 = 0\n" + _kcall(RFC_V2, "bpf_xdp_metadata_rx_timestamp") + "\nexit",
                 kfuncs=RFC_V2)
    assert r.error == "arg#0 expected pointer to ctx, but got ptr"
    # merged design: the out-pointer must be writable memory of the pointee's size
    call = _kcall(MERGED, "bpf_xdp_metadata_rx_timestamp")
    ok = verify(_prog(f"r2 = r10\nr2 += -8\n{call}\nexit"), kfuncs=MERGED)
    assert ok.accepted, ok.log
    r = _refused(f"r2 = r10\nr2 += -4\n{call}\nexit", kfuncs=MERGED)
    assert r.error == "invalid indirect access to stack R2 off=-4 size=8"
    r = _refused(f"r2 = 7\n{call}\nexit", kfuncs=MERGED)
    assert r.error == "R2 type=scalar expected=fp"
    # a void kfunc leaves no result in R0
    r = _refused(_kcall(RFC_V2, "bpf_xdp_metadata_export_to_skb") + "\nexit", kfuncs=RFC_V2)
    assert r.error == "R0 !read_ok"


def test_bpf_to_bpf_calls_frames_and_stack():
    text = "r1 = r10\nr1 += -8\ncall f\nr0 = *(u64 *)(r10 - 8)\nexit\nf:\n*(u64 *)(r1 + 0) = 1\nr0 = 0\nexit"
    assert verify(_prog(text)).accepted
    bad = "call f\nr0 = *(u64 *)(r0 + 0)\nexit\nf:\nr0 = r10\nr0 += -8\nexit"
    assert _refused(bad).error == "cannot return stack pointer to the caller"


def test_malformed_input_raises_only_for_bytes_that_are_not_instructions():
    with pytest.raises(BpfDecodeError):
        verify(b"\x95\x00\x00")
    with pytest.raises(BpfDecodeError):
        verify(b"")
    # an unknown opcode is the verifier's refusal, in its words (resolve_pseudo_ldimm64)
    r = verify(bytes.fromhex("ff00000000000000" "9500000000000000"))
    assert r.error == "unknown opcode ff"
    with pytest.raises(ValueError):
        verify(_prog("r0 = 0\nexit"), prog_type="kprobe")


# ------------------------------------------------------------------ the log
def test_log_level_1_shows_the_failing_path_and_the_stats_line():
    r = _refused(PKT + "r4 = r2\nr4 += 4\nif r4 > r3 goto out\nr0 = *(u32 *)(r2 + 2)\n"
                       "out:\nr0 = 2\nexit")
    lines = r.log.splitlines()
    assert lines[0] == "0: R1=ctx(off=0,imm=0) R10=fp0"
    assert lines[1].startswith("0: (61) r2 = *(u32 *)(r1 +0)")
    assert "R2_w=pkt(off=0,r=0,imm=0)" in lines[1]
    assert "R4_w=pkt(off=4,r=4,imm=0)" in r.log
    assert lines[-2] == "R2 offset is outside of the packet"
    assert lines[-1].startswith("processed ") and "(limit 1000000) max_states_per_insn" in lines[-1]


def test_log_level_2_prints_every_state_and_both_branches():
    text = PKT + "r4 = r2\nr4 += 14\nif r4 > r3 goto out\nr0 = *(u8 *)(r2 + 13)\nout:\nr0 = 2\nexit"
    r = verify(_prog(text), log_level=2)
    assert r.accepted
    assert "R0_w=scalar(umax=255,var_off=(0x0; 0xff))" in r.log
    assert "from 4 to 6:" in r.log and "R4=pkt(off=14,r=-2,imm=0)" in r.log   # BEYOND_PKT_END
    assert verify(_prog(text), log_level=0).log == ""


@pytest.mark.parametrize("insn, text", [
    (Insn(0xBF, 2, 1), "(bf) r2 = r1"),
    (Insn(0x61, 2, 1, 4), "(61) r2 = *(u32 *)(r1 +4)"),
    (Insn(0x7B, 10, 1, -8), "(7b) *(u64 *)(r10 -8) = r1"),
    (Insn(0x2D, 3, 4, 1), "(2d) if r3 > r4 goto pc+1"),
    (Insn(0x55, 0, 0, -3, -1), "(55) if r0 != 0xffffffff goto pc-3"),
    (Insn(0x85, 0, 0, 0, 1), "(85) call bpf_map_lookup_elem#1"),
    (Insn(0x85, 0, 1, 0, 4), "(85) call pc+4"),
    (Insn(0x04, 1, 0, 0, -2), "(04) w1 += -2"),
    (Insn(0xDC, 1, 0, 0, 16), "(dc) r1 = be16 r1"),
    (Insn(0xDB, 2, 3, 0, 0xE1), "(db) r3 = atomic64_xchg((u64 *)(r2 +0), r3)"),
])
def test_instructions_print_as_the_kernels_disassembler_does(insn, text):
    # print_bpf_insn, kernel/bpf/disasm.c@6.1.192:129
    assert print_bpf_insn(insn.opcode, insn.dst, insn.src, insn.off, insn.imm) == text


# ------------------------------------------------------------------ shipped programs
def _all_shipped():
    for design in ALL_DESIGNS:
        fs = FIELDS_BY_DESIGN[design]
        for r in range(len(fs) + 1):
            for fields in itertools.permutations(fs, r):
                for path in ("af_xdp", "skb"):
                    yield design, fields, path


def test_every_shipped_program_verifies():
    n = 0
    for design, fields, path in _all_shipped():
        r = verify(xdp_metadata_program(design, fields, path=path), maps=XSK,
                   kfuncs=TABLES.get(design))
        assert r.accepted, (design, fields, path, r.log)
        n += 1
    assert n >= 50


def test_shipped_objects_verify():
    from xdplab.kernel.kernel import Kernel
    from xdplab.libbpf import BpfObject, BpfObjectError
    objs = sorted((Path(__file__).resolve().parents[1] / "data" / "programs").glob("*.o"))
    assert objs
    for path in objs:
        loaded = 0
        for design in ("rfc-v2", "merged"):
            k = Kernel()
            try:
                prog = BpfObject.open(path).load(k, design=design)
            except BpfObjectError:
                continue          # the object is written for the other design's kfuncs
            r = verify(prog, maps=k.maps, kfuncs=TABLES[design])
            assert r.accepted, (path.name, design, r.log)
            loaded += 1
        assert loaded, f"{path.name} loads for no design"


def _replace(p: Program, i: int, new: Insn) -> Program:
    return Program(p.insns[:i] + (new,) + p.insns[i + 1:])


@pytest.mark.parametrize("design, fields", [("rfc-v2", ("rx_timestamp",)),
                                            ("merged", ("rx_timestamp", "rx_hash")),
                                            ("none", ())])
def test_fault_injected_shipped_programs_are_refused(design, fields):
    p = xdp_metadata_program(design, fields)
    kf = TABLES.get(design)
    checks = [i for i, ins in enumerate(p) if ins.opcode == 0x2D]     # if rX > rY (pkt compares)
    adds = [i for i, ins in enumerate(p) if ins.opcode == 0x07 and ins.dst == 4]
    assert verify(p, maps=XSK, kfuncs=kf).accepted
    for i in checks:                         # a bounds check removed: r4 = r4 in its place
        r = verify(_replace(p, i, Insn(0xBF, 4, 4)), maps=XSK, kfuncs=kf)
        assert not r.accepted and "outside of the packet" in r.error, r.log
    first = adds[0]                          # the header check weakened below what is read (38)
    r = verify(_replace(p, first, Insn(0x07, 4, 0, 0, 37)), maps=XSK, kfuncs=kf)
    assert not r.accepted and r.error == "R2 offset is outside of the packet"
    if fields:                               # the data_meta check weakened by one byte
        meta_add = adds[-1]
        size = p[meta_add].imm
        r = verify(_replace(p, meta_add, Insn(0x07, 4, 0, 0, size - 1)), maps=XSK, kfuncs=kf)
        assert not r.accepted and r.error == "R2 offset is outside of the packet"


# ------------------------------------------------------------------ soundness (hypothesis)
_FORMS = {   # comparison -> (fall-through is the good side, range it teaches over off K)
    "if r4 > r3 goto out": 0, "if r4 >= r3 goto out": 1,
    "if r3 < r4 goto out": 0, "if r3 <= r4 goto out": 1,
}
_GOOD_FORMS = {   # the taken side is the good one
    "if r4 <= r3 goto good": 0, "if r3 >= r4 goto good": 0,
    "if r4 < r3 goto good": 1, "if r3 > r4 goto good": 1,
}


@st.composite
def packet_programs(draw):
    """Templates: a header check of K bytes in one of eight forms (or none), reads at random
    offsets, optionally through a variable index read from the packet and masked."""
    k = draw(st.integers(0, 64))
    form = draw(st.sampled_from(sorted(_FORMS) + sorted(_GOOD_FORMS) + ["none"]))
    reads = draw(st.lists(st.tuples(st.integers(0, 70), st.sampled_from(["u8", "u16", "u32", "u64"])),
                          min_size=1, max_size=3))
    var = draw(st.one_of(st.none(), st.tuples(st.sampled_from([0x7, 0xF, 0x3F]),
                                              st.integers(0, 20), st.integers(0, 16))))
    body = [f"r0 = *({sz} *)(r2 + {off})" for off, sz in reads]
    if var is not None:
        mask, k2, off2 = var
        body += ["r5 = *(u8 *)(r2 + 0)", f"r5 &= {mask}", "r6 = r2", "r6 += r5", "r7 = r6",
                 f"r7 += {k2}", "if r7 > r3 goto out", f"r0 = *(u8 *)(r6 + {off2})"]
    lines = [PKT.strip(), "r4 = r2", f"r4 += {k}"]
    if form == "none":
        lines += body
    elif form in _FORMS:
        lines += [form] + body
    else:
        lines += [form, "goto out", "good:"] + body
    lines += ["out:", "r0 = 2", "exit"]
    return "\n".join(lines)


def _run_on_packet(loaded, length: int, xlated: Program | None = None) -> None:
    """Run the xlated program with the packet in a region of exactly ``length`` bytes, so any
    read outside it faults (the simulator's 4 KiB frame would hide small overreads)."""
    from xdplab.kernel.structs import XDP_BUFF
    space = AddressSpace()
    buf = space.map(Region("xdp_buff", 0x10_0000, bytearray(XDP_BUFF.size), kind="xdp_buff"))
    base = 0x20_0000
    if length:
        space.map(Region("packet", base, bytes(i & 0xFF for i in range(length)), kind="packet"))
    for name, value in (("data", base), ("data_end", base + length), ("data_meta", base),
                        ("data_hard_start", base)):
        off = XDP_BUFF.offsetof(name)
        buf.data[off:off + 8] = value.to_bytes(8, "little")
    if xlated is None:
        run_in(loaded.xlated, space, buf.base, env=loaded.env(), fast=False)
    else:
        run_in(xlated, space, buf.base, fast=False)


@settings(max_examples=120, deadline=None)
@given(packet_programs(), st.lists(st.integers(0, 90), min_size=3, max_size=6))
def test_accepted_programs_never_fault_on_any_packet_length(text, lengths):
    from xdplab.kernel.kernel import Kernel
    program = assemble(text)
    if not verify(program).accepted:
        return
    loaded = Kernel().prog_load(program)
    for length in lengths + [0, 1]:
        _run_on_packet(loaded, length)


def test_the_exact_size_harness_catches_what_the_verifier_refuses():
    """The soundness property is not vacuous: the refused program does fault in this harness,
    and its checked twin runs on every length."""
    from xdplab.bpf.errors import BpfExecuteError
    from xdplab.kernel.kernel import Kernel
    unchecked = PKT + "r0 = *(u16 *)(r2 + 12)\nr0 = 2\nexit"
    checked = PKT + "r4 = r2\nr4 += 14\nif r4 > r3 goto out\nr0 = *(u16 *)(r2 + 12)\nout:\nr0 = 2\nexit"
    assert not verify(_prog(unchecked)).accepted and verify(_prog(checked)).accepted
    # the unchecked program as the loader's ctx rewrite would emit it (xdp_md.data -> xdp_buff.data)
    xlated = _prog("r2 = *(u64 *)(r1 + 0)\nr0 = *(u16 *)(r2 + 12)\nr0 = 2\nexit")
    _run_on_packet(None, 14, xlated)
    with pytest.raises(BpfExecuteError):
        _run_on_packet(None, 13, xlated)
    loaded = Kernel().prog_load(_prog(checked))
    for length in range(0, 40):
        _run_on_packet(loaded, length)


@pytest.mark.parametrize("form, extra", sorted({**_FORMS, **_GOOD_FORMS}.items()))
@pytest.mark.parametrize("k", [0, 1, 14, 42])
def test_verifier_is_exact_for_single_checks(form, extra, k):
    """The range each form teaches (find_good_pkt_pointers, range_right_open) is exactly what
    the verifier allows: a read ending at the range passes, one byte more is refused."""
    if k == 0:
        return          # find_good_pkt_pointers learns nothing from a pointer at off 0
    rng = k + extra
    for size, sz in ((1, "u8"), (2, "u16")):
        for off, want in ((rng - size, True), (rng - size + 1, False)):
            if off < 0:
                continue
            body = [f"r0 = *({sz} *)(r2 + {off})"]
            if form in _FORMS:
                lines = [PKT.strip(), "r4 = r2", f"r4 += {k}", form] + body
            else:
                lines = [PKT.strip(), "r4 = r2", f"r4 += {k}", form, "goto out", "good:"] + body
            r = verify(assemble("\n".join(lines + ["out:", "r0 = 2", "exit"])))
            assert r.accepted == want, (form, k, off, size, r.log)


# ------------------------------------------------------------------ tnums and bounds
TNUMS = st.tuples(st.integers(0, U64), st.integers(0, U64)).map(lambda vm: tn.Tnum(vm[0] & ~vm[1], vm[1]))


@st.composite
def tnum_and_member(draw):
    t = draw(TNUMS)
    bits = draw(st.integers(0, U64))
    return t, t.value | (bits & t.mask)


@settings(max_examples=200, deadline=None)
@given(tnum_and_member(), tnum_and_member())
def test_tnum_operations_contain_every_concrete_result(a, b):
    (ta, x), (tb, y) = a, b
    for f, op in ((tn.add, lambda p, q: p + q), (tn.sub, lambda p, q: p - q),
                  (tn.and_, lambda p, q: p & q), (tn.or_, lambda p, q: p | q),
                  (tn.xor, lambda p, q: p ^ q), (tn.mul, lambda p, q: p * q)):
        assert tn.tin(f(ta, tb), tn.const(op(x, y) & U64))
    s = y % 64
    assert tn.tin(tn.lshift(ta, s), tn.const((x << s) & U64))
    assert tn.tin(tn.rshift(ta, s), tn.const(x >> s))
    assert tn.tin(tn.arshift(ta, s, 64), tn.const((tn.s64(x) >> s) & U64))
    assert tn.tin(tn.trange(min(x, y), max(x, y)), tn.const(x))


def _reg_holding(lo: int, hi: int) -> Reg:
    r = Reg()
    r.set_unknown()
    r.umin, r.umax = lo, hi
    r.bounds_sync()
    return r


def _contains(r: Reg, v: int) -> bool:
    v &= U64
    return (r.umin <= v <= r.umax and r.smin <= tn.s64(v) <= r.smax
            and r.u32_min <= (v & 0xFFFFFFFF) <= r.u32_max
            and r.s32_min <= tn.s32(v) <= r.s32_max and tn.tin(r.var_off, tn.const(v)))


RANGE = st.tuples(st.integers(0, U64), st.integers(0, 1 << 40)).map(
    lambda t: (t[0], min(U64, t[0] + t[1])))


@settings(max_examples=200, deadline=None)
@given(RANGE, RANGE, st.data(), st.sampled_from([0x0F, 0x1F, 0x5F, 0x4F, 0xAF, 0x2F, 0x6F, 0x7F,
                                                  0xCF, 0x0C, 0x1C, 0x5C, 0x4C, 0xAC, 0x2C]))
def test_scalar_alu_bounds_contain_every_concrete_result(ra, rb, data, code):
    """adjust_scalar_min_max_vals on 64- and 32-bit ALU: the abstract result holds the concrete one."""
    x = data.draw(st.integers(*ra))
    y = data.draw(st.integers(*rb))
    is64 = code & 7 == 7
    op = code & 0xF0
    if op in (0x60, 0x70, 0xC0):
        y %= 64 if is64 else 32
        rb = (y, y)
    d, s = _reg_holding(*ra), _reg_holding(*rb)
    assert _contains(d, x) and _contains(s, y)
    adjust_scalar_min_max_vals(None, code | 0x08, d, s)
    if not is64:
        x, y = x & 0xFFFFFFFF, y & 0xFFFFFFFF
    ops = {0x00: lambda: x + y, 0x10: lambda: x - y, 0x20: lambda: x * y, 0x40: lambda: x | y,
           0x50: lambda: x & y, 0xA0: lambda: x ^ y, 0x60: lambda: x << y, 0x70: lambda: x >> y,
           0xC0: lambda: (tn.s64(x) if is64 else tn.s32(x)) >> y}
    res = ops[op]() & (U64 if is64 else 0xFFFFFFFF)
    assert _contains(d, res), (hex(code), x, y, d.umin, d.umax, d.var_off)


def test_result_is_frozen_and_raw_slot_numbering_is_kept():
    r = verify(Program([Insn(0x18, 0, 0, 0, 1 << 40), Insn(0x95)]))
    assert r.accepted and r.insns_processed == 2
    with pytest.raises(Exception):
        r.accepted = False  # type: ignore[misc]
    bad = verify(Program([Insn(0x18, 0, 0, 0, 1), Insn(0xBF, 0, 2)]) + [Insn(0x95)])
    assert bad.error == "R2 !read_ok" and bad.insn == 2      # kernel slots: ld_imm64 is two


def test_insn_bytes_struct_layout_matches_program_encoding():
    p = _prog("r0 = 1\nexit")
    assert verify(p.encode()).accepted and verify(list(p)).accepted
    assert struct.unpack("<BBhi", p.encode()[:8])[0] == 0xB7


def test_ringbuf_references_must_be_released_on_every_path():
    # acquire_reference_state / release_reference / check_reference_leak (verifier.c@6.1.192)
    maps = {3: BpfMap("rb", 27, 0, 0, 4096, 1, 0x1000)}
    base = "r1 = map_fd(3) ll\nr2 = 8\nr3 = 0\ncall 131\nif r0 == 0 goto out\n"
    ok = verify(_prog(base + "*(u64 *)(r0 + 0) = 1\nr1 = r0\nr2 = 0\ncall 132\nout:\nr0 = 2\nexit"),
                maps=maps)
    assert ok.accepted, ok.log
    leak = verify(_prog(base + "*(u64 *)(r0 + 0) = 1\nout:\nr0 = 2\nexit"), maps=maps)
    assert leak.error.startswith("Unreleased reference id=") and leak.error.endswith("alloc_insn=4")
    oob = verify(_prog(base + "*(u64 *)(r0 + 4) = 1\nr1 = r0\nr2 = 0\ncall 133\nout:\nr0 = 2\nexit"),
                 maps=maps)
    assert "invalid access to memory, mem_size=8 off=4 size=8" in oob.log
    twice = verify(_prog(base + "r6 = r0\nr1 = r0\nr2 = 0\ncall 132\nr1 = r6\nr2 = 0\ncall 132\n"
                                "out:\nr0 = 2\nexit"), maps=maps)
    assert twice.error == "R1 type=scalar expected=alloc_mem"
    wrong_map = verify(_prog("r1 = map_fd(3) ll\nr2 = 0\nr3 = 0\ncall 51\nexit"), maps=maps)
    assert wrong_map.error == "cannot pass map_type 27 into func bpf_redirect_map#51"


def test_complexity_limit_refuses_with_the_kernels_words():
    loop = _prog("r1 = 0\nl:\nr1 += 1\nif r1 < 1000000 goto l\nr0 = 0\nexit")
    r = verify(loop, complexity_limit=3000)
    assert r.error == "BPF program is too large. Processed 3001 insn" and r.errno == 7   # E2BIG
    assert verify(_prog("r1 = 0\nl:\nr1 += 1\nif r1 < 100 goto l\nr0 = 0\nexit")).accepted


def test_scalar_bounds_print_as_61_does():
    # the kernel's own expectation (selftests/bpf/prog_tests/align.c@6.1.192, "packet variable
    # offset"): after r6 = byte; r6 &= 15; r6 <<= 2; r6 += 14
    text = PKT + "r0 = r2\nr0 += 8\nif r3 >= r0 goto ok\nexit\nok:\nr6 = *(u8 *)(r2 + 0)\n" \
                 "r6 &= 15\nr6 <<= 2\nr6 += 14\nr5 = r2\nr5 -= r6\nr0 = 0\nexit"
    log = verify(_prog(text), log_level=2).log
    assert "R6_w=scalar(umax=60,var_off=(0x0; 0x3c))" in log
    assert "R6_w=scalar(umin=14,umax=74,var_off=(0x2; 0x7c))" in log
    # s64 vs u64 bounds compare as unsigned when printed: no smin/smax here
    assert ("R5_w=pkt(id=1,off=0,r=8,umin=18446744073709551542,umax=18446744073709551602,"
            "var_off=(0xffffffffffffff82; 0x7c)") in log


def test_prog_load_refuses_with_the_verifiers_result_and_keeps_the_log():
    from xdplab.kernel.kernel import Kernel
    from xdplab.kernel.loader import LoadError
    bad = _prog(PKT + "r0 = *(u8 *)(r2 + 36)\nr0 = 2\nexit")
    with pytest.raises(LoadError) as exc:
        Kernel().prog_load(bad)
    v = exc.value.verifier
    assert v is not None and v.error == "R2 offset is outside of the packet" and v.insn == 2
    assert exc.value.index == 2 and "invalid access to packet" in v.log
    good = Kernel().prog_load(_prog(PKT + "r4 = r2\nr4 += 37\nif r4 > r3 goto out\n"
                                          "r0 = *(u8 *)(r2 + 36)\nout:\nr0 = 2\nexit"))
    assert good.verifier_log.startswith("0: R1=ctx(off=0,imm=0) R10=fp0")
