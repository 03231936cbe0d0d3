"""The course notebooks: stored stripped and in step with their builder, open with learning goals,
execute headless (nbclient, real kernel) with widgets and figures, and every number or verdict the
notebooks state is checked here against an expectation written independently of the library:
from the RFC patches, the kernel facts, or arithmetic on the reviewers' own numbers."""
from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

import nbexec

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
COURSE = ["00-tour", "01-bpf-and-bpf-patch", "02-unrolling", "03-timestamps", "04-metadata-delivery",
          "05-cost-and-designs", "06-design-review", "07-timeline"]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WS = "application/vnd.jupyter.widget-state+json"
REPLIES = Path("/work/shared/rfc/v2/replies")


def _builder():
    spec = importlib.util.spec_from_file_location("build_notebooks", ROOT / "tools" / "build_notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["build_notebooks"] = mod
    spec.loader.exec_module(mod)
    return mod


# ----------------------------------------------------------------------------- static checks
def test_the_course_is_there_stripped_and_in_step_with_its_builder():
    assert sorted(p.stem for p in NB_DIR.glob("*.ipynb") if p.stem != "review-template") == COURSE
    assert (NB_DIR / "glossary.md").is_file()
    builder = _builder()
    assert list(builder.NOTEBOOKS) == COURSE
    for name in COURSE:
        nb = json.loads((NB_DIR / f"{name}.ipynb").read_text())
        assert "widgets" not in nb.get("metadata", {})
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, name
        stored = ["".join(c["source"]) for c in nb["cells"]]
        built = [cell[1] for cell in builder.NOTEBOOKS[name]]
        assert stored == built, f"{name}.ipynb differs from tools/build_notebooks.py: run it"


@pytest.mark.parametrize("name", COURSE)
def test_each_notebook_opens_with_goals_problem_and_glossary_and_ends_with_a_quiz(name):
    nb = json.loads((NB_DIR / f"{name}.ipynb").read_text())
    first = "".join(nb["cells"][0]["source"])
    assert nb["cells"][0]["cell_type"] == "markdown" and first.startswith("# ")
    assert "**Learning goals.**" in first and "**The problem in plain words.**" in first
    assert "[glossary](glossary.md)" in first
    assert any("quiz(" in "".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")


def test_glossary_defines_the_course_words():
    text = (NB_DIR / "glossary.md").read_text()
    for word in ("kfunc", "xlated", "ctx rewrite", "device-bound", "data_meta", "AF_XDP", "PHC", "KF_UNROLL",
                 "container_of", "R0–R10"):
        assert f"**{word}" in text, word


# ----------------------------------------------------------------------------- execution
def _kinds(nb):
    kinds, widgets = set(), 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            kinds.update(data)
            widgets += WIDGET_VIEW in data
    for model in nb.metadata.get("widgets", {}).get(WS, {}).get("state", {}).values():
        for out in model.get("state", {}).get("outputs", []) or []:
            kinds.update(out.get("data", {}))
    return kinds, widgets


@pytest.mark.parametrize("name", COURSE)
def test_notebook_executes_with_widgets_and_figures(name):
    nb, figures, seconds = nbexec.execute(name)
    kinds, widgets = _kinds(nb)
    assert widgets >= 1, "no widget displayed"
    assert "image/png" in kinds and figures, "no figure displayed"
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert seconds < 120, f"{name} took {seconds:.0f} s"
    print(f"\n[notebook] {name}: {seconds:.1f} s, {len(figures)} figures")


def out(name, cell_id):
    nb, _, _ = nbexec.execute(name)
    return nbexec.text(nb, cell_id)


def widget_models(name):
    nb, _, _ = nbexec.execute(name)
    return [m for m in nb.metadata["widgets"][WS]["state"].values()]


# ----------------------------------------------------------------------------- 00-tour
def test_tour_values():
    summary = out("00-tour", "00-tour-summary")
    n_off = int(re.search(r"(\d+) stamps off; all by whole multiples of 2\^32 ns: True", summary).group(1))
    assert n_off > 0                    # a stalled ice cache gives stamps off by 2^32 ns pages
    assert re.search(r"^200 packets → ", summary, re.M)
    posted = out("00-tour", "00-tour-posted")
    assert "'aborted'" in posted and "'af_xdp'" not in posted
    assert re.search(r"reason   : .*jump to insn \d+", posted)   # the abort reason, not just NaN
    # the widget shows the same kind of reason text when the posted variant is picked (tests/test_viz);
    # here: the app's status line and the design help are in the saved widget state
    htmls = [m["state"].get("value", "") for m in widget_models("00-tour") if m["model_name"] == "HTMLModel"]
    assert any("stamps exact" in h for h in htmls) and any("unrolled by the bound device" in h for h in htmls)
    over = out("00-tour", "00-tour-over-budget")
    assert "bnxt" in over               # kernel-facts: bnxt's spin_lock_bh timestamp costs more than 25G allows


# ----------------------------------------------------------------------------- 01
def test_01_values():
    enc = out("01-bpf-and-bpf-patch", "01-encode")
    assert "r0 = 55" in enc                                   # 10 + 9 + ... + 1
    assert re.search(r"^ 4  55 01 fd ff 00 00 00 00 ", enc, re.M)   # BPF_JMP|BPF_JNE|BPF_K, dst r1, off -3
    assert "ice unrolls bpf_xdp_metadata_rx_timestamp into 20 instructions" in out("01-bpf-and-bpf-patch",
                                                                                     "01-ice-length")
    # RFC v2 01/14: first allocation 16 slots; the posted defect doubles the believed capacity once more
    assert ("allocated 16 slots, believed 32; first write past the allocation: instruction 17"
            in out("01-bpf-and-bpf-patch", "01-posted-overflow"))
    assert "insn 16 written past a 16-insn allocation" in out("01-bpf-and-bpf-patch", "01-posted-kasan")
    res = out("01-bpf-and-bpf-patch", "01-resolve")
    rfc = next(l for l in res.splitlines() if l.startswith("rfc-v2"))
    v1 = next(l for l in res.splitlines() if l.startswith("patch-v1"))
    # 3-insn patch: a jump at index i to the end has off = 3 - i - 1
    assert "if r2 != r3 goto +2" in rfc and "if r5 == 0 goto +32767" in rfc
    assert "if r2 != r3 goto +2" in v1 and "if r5 == 0 goto +1" in v1


# ----------------------------------------------------------------------------- 02
def test_02_values():
    # RFC v2 02/14: #define KF_UNROLL (1 << 7), set on the metadata kfuncs it registers
    assert "KF_UNROLL = 0x80 | the kfuncs RFC v2 posts all carry it: True" in out("02-unrolling", "02-kf-unroll")
    bound = out("02-unrolling", "02-bound-log")
    assert all(f"device-bound to {d}0" in bound for d in ("veth", "ice", "mlx4", "bnxt"))
    default = out("02-unrolling", "02-default-unroll")
    assert "'default-unroll', 1)" in default and re.search(r"0: \(b7\) r0 = 0", default)
    wr = out("02-unrolling", "02-wrappers")
    # RFC v2 03/09/11/13: struct xdp_buff (56 bytes, include/net/xdp.h) first, then the driver's pointers
    assert "struct xdp_buff is 56 bytes" in wr
    assert re.search(r"veth_xdp_buff\s+64 B: skb@56", wr)
    assert re.search(r"ice_xdp_buff\s+72 B: rx_ring@56, rx_desc@64", wr)
    regs = out("02-unrolling", "02-register-map")
    # cover letter: mlx4/bnxt call into the kernel (xdp_kfunc_call_preserving_r1: r1 = r0)
    m = re.search(r"patches writing outside R0, R2-R5: (\[.*?\]) \| what they write there: (\[.*?\])", regs)
    outside, written = ast.literal_eval(m.group(1)), ast.literal_eval(m.group(2))   # printed lists
    assert {"mlx4", "bnxt"} <= set(outside) and not {"veth", "ice"} & set(outside) and written == ["R1"]
    defects = out("02-unrolling", "02-ice-defects")
    fixed = re.search(r"^fixed\s+(\d+)\s+(\d+)\s+(\d+)", defects, re.M).groups()
    posted = re.search(r"^all \(as posted\)\s+(\d+)\s+(\d+)\s+(\d+)", defects, re.M).groups()
    assert fixed == ("400", "0", "0")
    assert posted == ("0", "0", "400")       # Larysa: the posted code crashes; none right
    # Each defect alone (kernel-facts §6.2, a READING of RFC v2 10/14), on 400 valid descriptors
    # with a non-zero cache: (1) JNE guards return 0 for every valid packet: all wrong; (2) 32-bit
    # final ALU ops keep only the low 32 bits of a 63-bit time: all wrong; (3) the 8-byte loads keep
    # their low 32 bits and stay inside the page-rounded ring (ice_txrx.c@6.1.192:496-499): all
    # right; (4) the unresolved S16_MAX jumps are taken only by packets that fail a guard: all
    # right.  Together, the inverted guards take the unresolved jumps: every packet faults.
    rows = dict(re.findall(r"^(\w+)\s+(\d+\s+\d+\s+\d+)\s*$", defects, re.M))
    assert {d: tuple(rows[d].split()) for d in ("inverted_guards", "alu32_result", "wide_loads",
                                                 "unresolved_jumps")} == {
        "inverted_guards": ("0", "400", "0"), "alu32_result": ("0", "400", "0"),
        "wide_loads": ("400", "0", "0"), "unresolved_jumps": ("400", "0", "0")}
    kinds = {ln[:16].strip(): ln[17:].strip() for ln in out("02-unrolling", "02-ice-defect-kinds").splitlines()
             if ln.strip()}                   # printed as f"{defect:16s} {kind}"
    assert kinds == {"inverted_guards": "silently wrong", "alu32_result": "silently wrong",
                     "wide_loads": "harmless here", "unresolved_jumps": "harmless here",
                     "all (as posted)": "faults on every packet"}


# ----------------------------------------------------------------------------- 03
def test_03_values():
    w = out("03-timestamps", "03-ice-window")
    # ice_ptp_extend_32b_ts: right within 2^31 ns of the cache, off by 2^32 ns outside
    assert f"first wrong offset after the cache: {2**31} ns (2.147 s); error there: {-2**32} ns" in w
    st = out("03-timestamps", "03-stall-table")
    assert re.search(r"^ice: [1-9]\d* wrong stamps, first [\d.]+ s into the run, all multiples of 2\^32 ns: True",
                     st, re.M)
    assert re.search(r"^bnxt: \d+ wrong stamps, .*all multiples of 2\^32 ns: True", st, re.M)
    m = re.search(r"mlx4 at 427 MHz: first wrong conversion ([\d.]+) s", out("03-timestamps", "03-mlx4-overflow"))
    # kernel-facts §6.3: delta * mult overflows 64 bits 17.18 s after the last overflow check
    assert m and 0 < float(m.group(1)) <= 17.18


# ----------------------------------------------------------------------------- 04
def test_04_values():
    paths = out("04-metadata-delivery", "04-paths")
    assert re.search(r"^af_xdp\s+100\s+0$", paths, re.M) and re.search(r"^stack\s+0\s+100$", paths, re.M)
    ex = re.search(r"export_to_skb unrolls into (\d+) instructions on ice \(its rx_timestamp part alone: (\d+)\)",
                   out("04-metadata-delivery", "04-export-unroll"))
    assert ex and int(ex.group(2)) == 20 and int(ex.group(1)) > 20      # it contains the timestamp unroll
    assert "skb path on ice: 100 of 100 skbs carry" in out("04-metadata-delivery", "04-skb-stamps")
    boots = out("04-metadata-delivery", "04-boots")
    magics = re.findall(r"0x[0-9a-f]+", boots)
    assert len(magics) == 6 and all(int(x, 16) % 2 == 1 for x in magics)    # 06/14: a random odd magic
    assert len(set(magics)) == 6
    nm = out("04-metadata-delivery", "04-no-meta")
    assert nm.count("ENOTSUPP") == 2 and nm.count("meta_valid=false") == 2


# ----------------------------------------------------------------------------- 05 / 06
def test_05_values():
    b = out("05-cost-and-designs", "05-budgets")
    # 64-byte frame + 8 B preamble + 12 B gap = 84 B = 672 bits per frame
    exp = {f"{g}G": round(672 / g, 2) for g in (10, 25, 100)}
    assert f"line-rate budget per 64-byte frame (ns): {exp}" in b
    sv = out("05-cost-and-designs", "05-saving")
    assert float(re.search(r"called - unrolled = (-?[\d.]+) ns", sv).group(1)) > 0
    assert "'bnxt'" in out("05-cost-and-designs", "05-always-over")


def test_06_values():
    v = out("06-design-review", "06-verdicts")
    # kernel-facts: RFC-era mlx4 and bnxt pass meta_valid=false, so only veth and ice deliver
    delivering = ast.literal_eval(re.search(r"drivers delivering to AF_XDP in the RFC's era: (\[.*?\])", v).group(1))
    assert {"veth", "ice"} <= set(delivering) and not {"mlx4", "bnxt"} & set(delivering)
    free = ast.literal_eval(re.search(r"holds \(.*\) on: (\[.*?\])", v).group(1))
    assert {"veth", "ice", "mlx4", "bnxt"} <= set(free)


# ----------------------------------------------------------------------------- 07
def test_07_values():
    q = out("07-timeline", "07-quotes")
    assert "reviewers quoted: ['Alexei Starovoitov', 'Jakub Kicinski', 'Larysa Zaremba', 'Martin KaFai Lau', " \
           "'Toke Høiland-Jørgensen']" in q
    n = out("07-timeline", "07-numbers")
    gain = (41_264_360 - 40_370_651) / 40_370_651
    ns = 1e9 / 40_370_651 - 1e9 / 41_264_360
    assert f"+{gain:.1%} pps = {ns:.2f} ns per packet" in n


@pytest.mark.skipif(not REPLIES.is_dir(), reason="the shared review replies are not on this machine")
def test_07_positions_are_dated_and_quoted_from_their_messages():
    builder = _builder()
    by_id = {}
    for f in REPLIES.glob("*.txt"):
        text = f.read_text()
        mid = re.search(r"^Message-ID: <(.+)>$", text, re.M).group(1)
        by_id[mid] = text
    for date, reviewer, _, mid, quote in builder.REVIEWS:
        assert mid in by_id, mid
        text = by_id[mid]
        sent = parsedate_to_datetime(re.search(r"^Date: (.+)$", text, re.M).group(1))
        assert sent.date().isoformat() == date, (mid, sent)
        assert reviewer.split()[0] in re.search(r"^From: (.+)$", text, re.M).group(1)
        body = " ".join(l for l in text.splitlines() if not l.startswith(">"))
        body = re.sub(r"\s+", " ", body)
        for part in quote.split("[...]"):
            assert re.sub(r"\s+", " ", part.strip()) in body, (mid, part)


# ----------------------------------------------------------------------------- the quiz widget
def test_quiz_checks_answers_and_refuses_an_answer_not_offered():
    from xdplab.viz import Quiz, quiz
    with pytest.raises(ValueError, match="not among the options"):
        Quiz("q?", ["a", "b"], "c")
    q = Quiz("q?", ["a", "b"], "b", "because")
    q.button.click()
    assert "pick an answer" in q.feedback.value
    q.choice.value = "a"
    q.button.click()
    assert "not quite" in q.feedback.value and not q.correct
    q.choice.value = "b"
    q.button.click()
    assert "right" in q.feedback.value and "because" in q.feedback.value and q.correct
    box = quiz(("x?", ["1", "2"], "2"), ("y?", ["3", "4"], "3"))
    assert [z.answer for z in box.quizzes] == ["2", "3"]
