"""The xdplab command as a reviewer uses it: the five review questions of the README, each
answered by one command (run as a subprocess), and every bad value refused cleanly."""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from xdplab import cli
from xdplab.cost import line_rate_budget_ns

ROOT = Path(__file__).resolve().parents[1]


def xdplab(*args, ok=True, cwd=None, external=False):
    """Run the command: in this process (fast), or as a user does (``external``)."""
    if external:
        proc = subprocess.run([sys.executable, "-m", "xdplab", *args], capture_output=True, text=True,
                              timeout=300, cwd=cwd)
    else:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(list(args))
            except SystemExit as exc:
                code = exc.code
        proc = SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())
    if ok:
        assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def flat(text: str) -> str:
    """The text on one line, without the listing's comment and continuation marks."""
    return " ".join(" ".join(re.sub(r"^\s*;\s*(=>|!)?", "", ln) for ln in text.splitlines()).split())


def widths(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


# ------------------------------------------------------------------ the five questions
def recipes() -> dict[str, list[str]]:
    """The README's review recipes: question tag -> the one command that answers it."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Review recipes"):]
    section = section[:section.index("\n## ", 5)]
    out = {}
    for m in re.finditer(r"\*\*(Q\d)\. .*?\n\$ (xdplab [^\n]+)", section, flags=re.S):
        out[m.group(1)] = m.group(2).split()[1:]
    return out


def answer(tag: str, ok: bool = True, **kw):
    cmd = recipes()[tag]
    return xdplab(*cmd, ok=ok, **kw)


def logical(text: str) -> list[str]:
    """Listing lines with their wrapped comments joined back."""
    out: list[str] = []
    for line in text.splitlines():
        if line.startswith(" " * 12) and out:
            out[-1] += " " + line.strip()
        else:
            out.append(line)
    return out


def test_the_readme_has_five_recipes():
    assert sorted(recipes()) == ["Q1", "Q2", "Q3", "Q4", "Q5"]


def test_q1_ice_unrolled_instructions_and_registers():
    out = answer("Q1", external=True).stdout
    lines = logical(out)
    # RFC v2 09/14-10/14: rx_ring at 56, rx_desc at 64 of struct ice_xdp_buff.
    assert any(re.search(r"r5 = \*\(u64 \*\)\(r1 \+56\) +; ice_xdp_buff\.rx_ring \[unroll:ice", ln) for ln in lines)
    assert any(re.search(r"r4 = \*\(u64 \*\)\(r1 \+64\) +; ice_xdp_buff\.rx_desc \[unroll:ice", ln) for ln in lines)
    assert "ice_rx_ring.cached_phctime" in out
    assert "bpf_xdp_metadata_rx_timestamp: writes r0,r3-r5; reads r1; no stack: R2-R5 rule OK" in flat(out)
    # every instruction of the 1 + 20 unrolled ones carries its pass
    body = [ln for ln in lines if re.match(r"\s+\d+: \(", ln)]
    assert len([ln for ln in body if "[unroll:ice" in ln]) == 21 and len(body) == 56   # 57 slots, one ld_imm64
    assert "load log:" in out and "device-bound to ice0" in out
    assert widths(out) <= 72
    if (ROOT / "data" / "provenance.json").exists():    # the patch table: each line's source line
        # 10-ice-support-rx-timestamp-metadata-for-xdp.patch:92-93 emits the rx_ring load
        assert any("ice_xdp_buff.rx_ring [unroll:ice 10/14:92]" in ln for ln in lines)
        assert any(re.search(r"r0 = 1 +\[unroll:ice 10/14:84\]", ln) for ln in lines)


def test_q2_cost_against_budgets():
    out = answer("Q2").stdout
    rows = [ln.split() for ln in out.splitlines()[1:]
            if ln.split() and ln.split()[0] in ("veth", "ice", "mlx4", "bnxt")]
    assert len(rows) == 20
    packets = int(recipes()["Q2"][recipes()["Q2"].index("--packets") + 1])
    for r in rows:
        cost = float(r[2])
        assert r[4].isdigit()                                   # insns as ints
        for g, v in zip((10, 25, 100), r[-3:]):
            assert v == ("✔" if cost <= (64 + 20) * 8 / g else "✘")   # 84 bytes on the wire per frame
    mlx4 = [r for r in rows if r[:2] == ["mlx4", "rfc-v2"]][0]
    assert mlx4[5] == f"0/{packets}" and mlx4[6] == "no"   # as `run` says: nothing arrives
    assert "whole RX path" in flat(out)
    assert widths(out) <= 72


def test_cost_delta_over_none_without_none_and_assumed_support(tmp_path):
    csv = tmp_path / "c.csv"
    out = xdplab("cost", "--drivers", "ice,mlx4", "--designs", "rfc-v2", "--packets", "5",
                 "--assume-meta-support", "-o", str(csv), "--mail").stdout
    df = pd.read_csv(csv)
    assert df.over_none_ns.notna().all() and (df.over_none_ns > 0).all()
    assert set(df.design) == {"rfc-v2"} and df.insns.dtype.kind == "i"
    assert df.set_index("driver").loc["mlx4", "meta"] == "assumed"
    assert df.set_index("driver").loc["mlx4", "delivered"] == "5/5"
    assert df.set_index("driver").loc["ice", "meta"] == "yes"
    assert "assumed" in out and widths(out) <= 72
    budgets = {g: line_rate_budget_ns(g) for g in (10, 25, 100)}
    for r in df.itertuples():
        assert getattr(r, "_9") == ("✔" if r.cost_ns <= budgets[25] else "✘")


def test_q3_three_second_stall_of_ices_refresh_task():
    """ice refreshes cached_phctime every 500 ms; stalled from 2.6 s, the last refresh is at
    2.5 s, and ice_ptp_extend_32b_ts goes wrong by -2^32 once the PHC is 2^31 ns past it:
    the first packet after 2.5 s + 2.147483648 s is the one at 4.648 s."""
    assert "--stall" in recipes()["Q3"]
    out = answer("Q3").stdout
    assert "wrong by −2³² ns between t=4.648 s and" in flat(out)
    assert "correct again from" in flat(out)
    assert widths(out) <= 80


def test_q4_mlx4_delivery_and_why():
    proc = answer("Q4", ok=False)
    assert proc.returncode == 1
    text = flat(proc.stdout)
    assert "0 reached af_xdp" in text and "ENOTSUPP" in text and "meta_valid=false" in text
    assert "no packet got through" in proc.stderr and "ENOTSUPP" in flat(proc.stderr)
    ok = xdplab(*recipes()["Q4"], "--assume-meta-support")
    assert "ASSUMED" in ok.stdout and "with a timestamp. All" in flat(ok.stdout)


def test_q5_what_posted_ice_did_wrong():
    out = answer("Q5").stdout
    text = flat(out)
    assert "BUG: KASAN: slab-out-of-bounds in __bpf_patch_append" in text
    assert "keeps its S16_MAX placeholder" in text
    assert "if r5 != 0 goto pc+32767" in out                       # inverted guard, unresolved jump
    assert "ice_32b_rx_flex_desc_nic.time_stamp_low (8 bytes at +0 of a 1-byte field)" in text
    assert "ice_32b_rx_flex_desc_nic.ts_high (4 bytes past the 32-byte struct)" in text
    assert re.search(r"w0 [+-]= w\d", out)                          # the 32-bit result
    assert "jumps to patch insn 32770, outside the patch" in text
    assert widths(out) <= 72
    run = xdplab("run", "--driver", "ice", "--variant", "rfc-v2-posted", "--packets", "20", ok=False)
    assert run.returncode == 1 and "control leaves the program" in flat(run.stdout)


# ------------------------------------------------------------------------- listings
def test_mlx4_warning_and_json_and_html(tmp_path):
    out = xdplab("xlated", "--driver", "mlx4", "--log").stdout
    assert "magles_registers" in out and "mlx4_xdp_buff.r0" in out
    assert "writes r0,r1; call clobbers r2-r5; reads r1; no stack: R2-R5 rule OK" in flat(out)
    doc = json.loads(xdplab("xlated", "--driver", "ice", "--format", "json").stdout)
    fields = {ln["field"] for ln in doc["lines"] if ln["field"]}
    assert "ice_xdp_buff.rx_ring" in fields and doc["patches"][1]["insns"] == 20
    page = tmp_path / "x.html"
    xdplab("diff", "--driver", "ice", "--format", "html", "-o", str(page), "--html", str(tmp_path / "d.html"))
    text = page.read_text()
    assert "<script" not in text and 'data-pass="unroll:ice' in text and "ice_xdp_buff.rx_desc" in text


@pytest.mark.parametrize("driver", ["veth", "ice", "mlx4", "bnxt"])
def test_every_listing_fits_a_mail(driver):
    for extra in (["--variant", "rfc-v2-posted"], ["--design", "merged"], ["--design", "patch-v3"], []):
        for path in ("af_xdp", "skb"):
            for command in ("diff", "xlated"):
                out = xdplab(command, "--driver", driver, "--path", path, "--log", "--mail", *extra, ok=False)
                assert out.returncode in (0, 1) and widths(out.stdout + out.stderr) <= 72, (command, extra, path)
    out = xdplab("xlated", "--driver", "ice", "--mail", *sum((["--defect", d] for d in
                 ("inverted_guards", "alu32_result", "wide_loads")), []))
    assert widths(out.stdout) <= 72


def test_diff_header_for_an_unbound_design():
    out = xdplab("diff", "--driver", "ice", "--design", "none").stdout
    head = out.splitlines()[0]
    assert "design none" in head and "rfc-v2" not in head and "not device-bound" in head


def test_load_failure_prints_the_log_and_exits_1():
    """The fixed kernel checks unrolled code (RFC v2 never did): ice's unresolved S16_MAX
    jumps alone break the contract, so the load is refused, with the reason."""
    proc = xdplab("xlated", "--driver", "ice", "--defect", "unresolved_jumps", ok=False)
    assert proc.returncode == 1 and "load log:" in proc.stderr and "breaks the call contract" in flat(proc.stderr)


def test_a_single_defect_changes_the_unroll():
    out = xdplab("xlated", "--driver", "ice", "--defect", "alu32_result").stdout
    assert re.search(r"w0 [+-]= w\d", out) and "defects alu32_result" in out.splitlines()[0]
    # the defect reaches the run too: inverted guards exit on a valid ring, so no stamp
    run = xdplab("run", "--driver", "ice", "--defect", "inverted_guards", "--packets", "50", ok=False)
    assert run.returncode == 1 and "50 reached af_xdp, 0 with a timestamp" in flat(run.stdout)
    assert "if r5 != 0 goto" in xdplab("xlated", "--driver", "ice", "--defect", "inverted_guards").stdout


# ------------------------------------------------------------------------------- run
def test_run_csv_and_skb_path(tmp_path):
    csv = tmp_path / "out.csv"
    out = xdplab("run", "--driver", "bnxt", "--packets", "50", "--path", "skb", "-o", str(csv), ok=False)
    df = pd.read_csv(csv)
    assert len(df) == 50 and {"hw_time_ns", "rx_timestamp", "insns", "cost_ns"} <= set(df.columns)
    assert out.returncode == 1 and "export_to_skb wrote no metadata" in " ".join(out.stdout.split())
    out = xdplab("run", "--driver", "bnxt", "--packets", "20", "--assume-meta-support", "--engine", "scalar")
    assert "All 20 timestamps exact" in " ".join(out.stdout.split())


def test_run_clock_step_and_packets_zero():
    """A PHC step on ice refreshes the cache at once (ice_ptp_settime64 / ice_ptp_adjtime call
    ice_ptp_reset_cached_phctime, drivers/net/ethernet/intel/ice/ice_ptp.c@6.1.192:1886,1965),
    so even a 3 s step leaves every stamp exact; a 3 s stall of the refresh does not."""
    out = xdplab("run", "--driver", "ice", "--packets", "1000", "--clock-step", "2.1s:3s").stdout
    assert "All 1,000 timestamps exact" in flat(out)
    zero = xdplab("run", "--driver", "ice", "--packets", "0", ok=False)
    assert zero.returncode == 1 and "nothing was sent" in zero.stdout and "nan" not in zero.stdout


def test_a_long_run_shows_progress():
    proc = xdplab("run", "--driver", "veth", "--engine", "scalar", "--packets", "3000")
    assert "packets: 100%" in proc.stderr and "3000/3000" in proc.stderr
    assert "3,000 with a timestamp" in flat(proc.stdout)


def test_chunked_run_equals_one_run():
    """The progress bar splits a run in chunks; the table must not change."""
    lab = cli.make_lab("ice", ("rx_timestamp",))
    kw = dict(stalls=((2_300_000_000, 4_900_000_000),), engine="batch")
    one = cli.run_lab(lab, 3000, chunks=1, **kw)
    many = cli.run_lab(lab, 3000, chunks=7, progress=False, **kw)
    cols = ["packet", "t_ns", "hw_time_ns", "rx_timestamp", "error_ns", "insns", "cost_ns", "meta_len"]
    pd.testing.assert_frame_equal(one[cols], many[cols])
    assert list(one.reason.astype(str)) == list(many.reason.astype(str))


# ------------------------------------------------------------------------ report, present
def test_report_text_fits_a_mail():
    out = xdplab("report", "--driver", "ice", "--format", "text", "--packets", "300",
                 "--designs", "rfc-v2,patch-v3,none").stdout
    assert widths(out) <= 72
    flat = " ".join(out.split())
    assert "ice_xdp_buff.rx_ring" in flat and "R2-R5 rule OK" in flat and "300 with a timestamp" in flat
    assert "patch-v3" in out and "whole RX path" in flat


def test_report_html_is_self_contained(tmp_path):
    page = tmp_path / "review.html"
    xdplab("report", "--driver", "ice", "--packets", "300", "--designs", "rfc-v2,none",
           "--stall", "2.05s:2.2s", "-o", str(page), cwd=tmp_path)
    text = page.read_text()
    assert not re.search(r"<script[^>]*\bsrc=[\"']https?:", text)
    assert "data:image/png;base64," in text                         # the plot is embedded
    assert "ice_xdp_buff.rx_ring" in text and "R2-R5 rule OK" in text and "Traceback" not in text
    assert "<table" in text and "rfc-v2" in text


def test_present_without_the_app_module_is_a_clear_error():
    import importlib.util
    if importlib.util.find_spec("xdplab.app") is not None:
        proc = xdplab("present", "/nonexistent.ipynb", ok=False)
        assert proc.returncode == 2 and "not a notebook file" in proc.stderr
        return
    proc = xdplab("present", ok=False)
    assert proc.returncode == 1 and "xdplab.app" in proc.stderr


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("args, message", [
    (("run", "--driver", "e1000"), "invalid choice: 'e1000'"),
    (("diff", "--driver", "veth", "--design", "patch-v3", "--fields", "rx_hash"), "valid fields: rx_timestamp"),
    (("run", "--driver", "ice", "--packets", "-3"), "must be >= 0"),
    (("run", "--driver", "ice", "--packets", "many"), "invalid int value"),
    (("cost", "--designs", "rfc-v3"), "valid designs: rfc-v2, patch-v3, merged, btf-hints, none"),
    (("run", "--driver", "ice", "--design", "none", "--fields", "rx_timestamp"), "calls no kfunc"),
    (("xlated", "--driver", "ice", "--variant", "rfc-v2-posted", "--design", "merged"), "no posted variant"),
    (("run", "--driver", "mlx4", "--defect", "wide_loads"), "needs --driver ice"),
    (("run", "--driver", "ice", "--variant", "rfc-v2-posted", "--defect", "wide_loads"), "already has all"),
    (("run", "--driver", "veth", "--clock-step", "3s:1ms"), "veth has no PHC"),
    ((), "the following arguments are required: COMMAND"),
    (("frobnicate",), "invalid choice: 'frobnicate'"),
])
def test_bad_arguments_exit_2_with_a_message(args, message):
    proc = xdplab(*args, ok=False, external=not args)
    assert proc.returncode == 2 and message in proc.stderr
    if args and args[0] in ("run", "cost", "diff", "xlated"):
        assert f"usage: xdplab {args[0]}" in proc.stderr


# Bad values by the parser's own type function (or choices): every option must be covered.
BAD_BY_TYPE = {
    "_positive_int": ["0", "-1", "x"], "_count": ["-1", "x"], "_seed": ["-1", "1.5"],
    "_port": ["0", "70000", "x"], "_ppb": ["nan", "inf", "1e9", "x"], "_interval": ["0", "-1ms", "5h"],
    "_start": ["-1s", "soon"], "parse_stall": ["5s:1s", "1s", "a:b", "-1s:2s"],
    "parse_clock_step": ["1s", "1s:0", "x:1ms", "-1s:1ms"], "_fields_arg": ["rx_bogus", "rx_hash,rx_hash"],
    "drivers": ["e1000", ",", "ice,ice"], "designs": ["rfc-v3", "", "none,none"],
    "_out_file": ["/nonexistent-dir/out.csv", "."], "_program_arg": ["/nonexistent.o", "x.o:prog"],
    "_notebook_arg": ["/nonexistent.ipynb", "pyproject.toml"], "_pcap_file": ["/nonexistent.pcap", "pyproject.toml"],
}
REQUIRED = {"diff": ["--driver", "ice"], "xlated": ["--driver", "ice"], "run": ["--driver", "ice"],
            "report": ["--driver", "ice"]}


def _bad_values():
    parser = cli.build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    cases = []
    for name, sub in subs.items():
        for action in sub._actions:
            if action.nargs == 0 or isinstance(action, argparse._HelpAction):
                continue
            if action.choices is not None:
                bad = ["bogus-choice"]
            else:
                key = getattr(action.type, "__name__", None)
                assert key in BAD_BY_TYPE, f"xdplab {name} {action.dest}: no bad values known for it"
                bad = BAD_BY_TYPE[key]
            opt = action.option_strings[0] if action.option_strings else None
            for value in bad:
                argv = [name, *(REQUIRED.get(name, []) if action.dest != "driver" else [])]
                argv += [opt, value] if opt else [value]
                cases.append((name, action.choices, argv))
    return cases


def test_every_bad_value_of_every_subcommand_is_a_clean_error(capsys):
    cases = _bad_values()
    assert len(cases) > 60
    for name, choices, argv in cases:
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2, (argv, err)
        assert f"usage: xdplab {name}" in err and "error:" in err and "Traceback" not in err, (argv, err)
        if choices:
            assert all(str(c) in err for c in choices), (argv, err)


def test_help_lists_the_commands():
    out = xdplab("--help", external=True)
    for cmd in ("diff", "xlated", "run", "cost", "report", "present", "lab"):
        assert cmd in out.stdout


def test_program_object_and_a_broken_one(tmp_path):
    out = xdplab("diff", "--driver", "ice", "--program", str(ROOT / "data/programs/xdp_metadata_afxdp.o"))
    assert "[unroll:ice" in out.stdout
    bad = tmp_path / "bad.o"
    bad.write_bytes(b"\x7fELF garbage")
    proc = xdplab("run", "--driver", "ice", "--program", str(bad), ok=False, external=True)
    assert proc.returncode == 1 and "malformed BPF object" in proc.stderr


@pytest.mark.parametrize("text, ns", [("4.1s", 4_100_000_000), ("300ms", 300_000_000), ("20us", 20_000),
                                      ("1500", 1500), ("-1ms", -1_000_000), (".5s", 500_000_000)])
def test_durations(text, ns):
    assert cli.parse_duration(text) == ns


def test_run_reads_a_pcap_and_refuses_an_unreadable_one(tmp_path):
    """issue 15: `xdplab run --pcap`: the frames of the file are the traffic (IPv6/TCP flows here),
    and the consumer's hash equals the Toeplitz hash of each frame's flow."""
    import pandas as pd
    from xdplab.traffic import Traffic
    pcap = tmp_path / "flows.pcap"
    Traffic.make(3, proto="tcp", ipv6=True).to_pcap(str(pcap), xdplab_lab().plan(6).trace)
    out = xdplab("run", "--driver", "ice", "--design", "merged", "--fields", "rx_timestamp,rx_hash",
                 "--packets", "6", "--pcap", str(pcap), "-o", str(tmp_path / "o.csv"))
    assert "6 reached af_xdp" in " ".join(out.stdout.split())
    df = pd.read_csv(tmp_path / "o.csv")
    assert (df.rx_hash == df.hw_rx_hash).all() and df.rx_hash.nunique() == 3
    bad = xdplab("run", "--driver", "ice", "--pcap", str(tmp_path / "missing.pcap"), ok=False)
    assert bad.returncode == 2 and "cannot read pcap" in bad.stderr and "Traceback" not in bad.stderr


def xdplab_lab():
    import xdplab as lib
    return lib.Lab("ice")


def test_patch_tags_split_export_to_skb_around_the_drivers_unroll():
    """06/14:359-361: xdp_metadata_export_to_skb emits its own 9 instructions, the device's
    rx_timestamp unroll (ice: 10/14), then 2 more.  Each xlated instruction is tagged with the
    patch that emits it, on both listings."""
    from xdplab.bpf import assemble
    from xdplab.cli import patch_tags
    from xdplab.drivers import REGISTRY
    from xdplab.kernel.kernel import Kernel
    from xdplab.kernel.kfuncs import RFC_V2
    from xdplab.kernel.uapi import BPF_F_XDP_HAS_METADATA

    k = Kernel(seed=0)
    dev = k.netns.add("eth0", REGISTRY["ice"]())
    export = RFC_V2.by_name("bpf_xdp_metadata_export_to_skb").btf_id
    for variant in ("fixed", "rfc-v2-posted"):
        loaded = k.prog_load(assemble(f"call kfunc({export})\nr0 = 2\nexit"), variant=variant,
                             prog_flags=BPF_F_XDP_HAS_METADATA, prog_ifindex=dev.ifindex)
        tags = patch_tags(loaded)
        routine = [t for t in tags if t]       # the program's own `r0 = 2; exit` carry no tag
        patches = [t.split(":")[0] for t in routine]
        assert patches[:9] == ["06/14"] * 9 and patches[-2:] == ["06/14"] * 2, (variant, tags)
        assert set(patches[9:-2]) == {"10/14"} and len(patches) > 11, (variant, tags)
        assert routine[0] == "06/14:325" and routine[-1] == "06/14:368"
