"""Write notebooks/*.ipynb from the cell lists below (the reviewed source of the notebooks).

Run ``python tools/build_notebooks.py``; the notebooks are written without outputs, with
stable cell ids, so ``git diff`` shows only real changes.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SETUP = """%matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import HTML, display

import xdplab
from xdplab import drivers
from xdplab.viz import plots"""

NOTEBOOKS: dict[str, list[tuple[str, str]]] = {}

NOTEBOOKS["00-tour"] = [
    ("md", """# xdplab: the RFC "xdp: hints via kfuncs" (v2) in one page

An XDP program asks for a packet's RX metadata -- here the hardware **RX timestamp** -- by calling a
*kfunc*. With the RFC, the program is **device-bound** at load time (`BPF_F_XDP_HAS_METADATA` plus the
device's ifindex) and the verifier asks that device's driver to **unroll** each metadata kfunc into
plain BPF instructions (or a call into the driver, for mlx4 and bnxt). Drivers that unroll nothing get
a default `r0 = 0`.

Pick a driver, a design and fields below. On the left: the program as written and as the kernel runs
it, every rewritten instruction coloured by where it came from. On the right: 200 packets received
through that driver, each timestamp compared with the ideal, and the modelled cost per packet."""),
    ("code", SETUP),
    ("code", """app = xdplab.viz.TourApp(driver="ice", design="rfc-v2", fields=("rx_timestamp",), packets=200)
app.widget"""),
    ("md", """Try `rfc-v2-posted`: the RFC *as posted*, defects included. ice's posted unroll jumps 32,768
instructions ahead (its `S16_MAX` placeholders are never resolved), so every packet aborts -- the
crash Larysa Zaremba reported. `mlx4` and `bnxt` did not support XDP metadata in the RFC's era; the
tour shows what they would deliver if they did (`assume_meta_support=True`)."""),
    ("code", """# The same thing without widgets: change the driver or the design and run the cell.
lab = xdplab.Lab("bnxt", design="rfc-v2")
df = lab.run(300, assume_meta_support=True)
df[["packet", "hw_time_ns", "rx_timestamp", "error_ns", "insns", "cost_ns", "delivered_to"]].head()"""),
    ("code", """from xdplab.designs import compare
costs = compare(("veth", "ice", "mlx4", "bnxt"), ("none", "btf-hints", "rfc-v2", "rfc-v1"), packets=10,
                field_sets={"none": ((),), "btf-hints": ((),), "rfc-v2": (("rx_timestamp",),),
                            "rfc-v1": (("rx_timestamp",),)})
plots.cost_bars(costs)"""),
]

NOTEBOOKS["01-bpf-and-bpf-patch"] = [
    ("md", """# Instructions, encoding, and `struct bpf_patch`

Every eBPF instruction is 8 bytes: `code`, `dst_reg:4 | src_reg:4`, a 16-bit `off` and a 32-bit `imm`
(`ld_imm64` takes two slots). xdplab's assembler reads what `llvm-objdump` prints; its disassembler
writes text `llvm-mc` turns back into the same bytes."""),
    ("code", SETUP + """
from xdplab.bpf import assemble, disassemble, run_detailed, Program
from xdplab.bpf import builders as B, opcodes as op"""),
    ("code", """program = assemble('''
    r0 = 0
    r1 = 10
loop:
    r0 += r1
    r1 -= 1
    if r1 != 0 goto loop
    exit
''')
for slot, insn in enumerate(program):
    print(f"{slot:2d}  {insn.encode().hex(' ')}   {disassemble(Program([insn])).strip()}")
print("r0 =", run_detailed(program).r0, "| executed:", dict(run_detailed(program).by_class))"""),
    ("md", """## Why the RFC needed `bpf_patch`

The verifier's rewrite passes emitted into a fixed `struct bpf_insn insn_buf[16]`. ice's unrolled
timestamp is 20 instructions and the export-to-skb unroll longer still, so RFC v2 01/14 made a growable
buffer: `bpf_patch_append(patch, ...)`. Move the slider: at which length does the old buffer overflow?"""),
    ("code", """import ipywidgets as W
from xdplab.bpf.patch import BpfPatch

def patch_report(n):
    old, new = BpfPatch(limit=16), BpfPatch()
    for i in range(n):
        old.append(B.BPF_MOV64_IMM(0, i)); new.append(B.BPF_MOV64_IMM(0, i))
    return (f"<b>{n} instructions</b>: insn_buf[16] {'refuses: ' + old.reason if old.err else 'fits'}; "
            f"bpf_patch holds {len(new)} (capacity {new.capacity})")

status = W.HTML(patch_report(20))
slider = W.IntSlider(value=20, min=1, max=40, description="patch length")
slider.observe(lambda ch: setattr(status, "value", patch_report(ch["new"])), names="value")
W.VBox([slider, status])"""),
    ("md", """## Placeholder jumps: `S16_MAX` means "to the end of the patch"

`bpf_patch_resolve_jmp` rewrites conditional jumps whose offset is `S16_MAX` (32767). RFC v2 matched only
register-source `BPF_JMP` jumps; PATCH v1 matched every `BPF_JMP` jump. ice's unroll uses
`BPF_JMP_IMM` (immediate source): under RFC v2's rule nothing resolves it."""),
    ("code", """p = BpfPatch().append(B.BPF_JMP_REG(op.BPF_JNE, 2, 3, op.S16_MAX), B.BPF_JMP_IMM(op.BPF_JEQ, 5, 0, op.S16_MAX),
                      B.BPF_MOV64_IMM(0, 1))
rows = []
for rule in ("rfc-v2", "patch-v1"):
    q = BpfPatch().append(*p.insns()); q.resolve_jmp(rule)
    rows.append({"rule": rule, **{f"insn {i}": disassemble(Program([x])).strip() for i, x in enumerate(q.insns())}})
pd.DataFrame(rows).set_index("rule")"""),
    ("md", "## Splicing: one instruction becomes many, every branch fixed up (`bpf_patch_insn_single`)"),
    ("code", """lab = xdplab.Lab("veth")
fig, ax = plt.subplots(figsize=(6, 2.5))
sizes = {name: len(xdplab.Lab(name).xlated) - len(xdplab.Lab(name).program) for name in drivers.names()}
ax.bar(list(sizes), list(sizes.values()), color="#2ca02c"); ax.set_ylabel("instructions added at load")
plt.show()
HTML(lab.diff().to_html())"""),
]

NOTEBOOKS["02-unrolling"] = [
    ("md", """# Unrolling, driver by driver

`do_misc_fixups` asks the bound device's `ndo_unroll_kfunc` to fill a patch for each metadata kfunc call.
veth and ice unroll in BPF; mlx4 and bnxt cannot (a seqlock, a spinlock) and emit
`xdp_kfunc_call_preserving_r1`: a direct call into C, `r1 = r0`, `r0 = *(u64 *)(r1 + offsetof(wrapper, r0))`.
Unrolled code runs in the caller's frame: only **R0 and R2-R5** are free (R1 stays the ctx for
export_to_skb), no stack. Every driver answers `*_supported` with `r0 = 1`."""),
    ("code", SETUP + """
import ipywidgets as W
from xdplab.viz import DiffView"""),
    ("code", """view = DiffView()
drv = W.Dropdown(options=list(drivers.names()), value="ice", description="driver")
var = W.ToggleButtons(options=["fixed", "rfc-v2-posted"], description="variant")
def show(_=None):
    view.show(xdplab.Lab(drv.value, variant=var.value))
drv.observe(show, names="value"); var.observe(show, names="value"); show()
W.VBox([W.HBox([drv, var]), view.widget])"""),
    ("md", """## The RFC as posted, and as meant (ice)

kernel-facts lists four defects of the posted ice unroll (a reading of the code): inverted guards, 32-bit
final arithmetic, 8-byte loads past the descriptor, unresolved `S16_MAX` jumps. Each can be switched on
alone; here is what each does to 2,000 packets."""),
    ("code", """from xdplab.drivers import ice
from xdplab.bpf import BpfExecuteError, assemble, run_in
from xdplab.kernel.kernel import Kernel
from xdplab.kernel.kfuncs import RFC_V2
from xdplab.kernel.uapi import BPF_F_XDP_HAS_METADATA
import random

def outcomes(defects, n=2000):
    k = Kernel(); dev = k.netns.add("eth0", ice.Ice(defects=defects))
    ts = RFC_V2.by_name("bpf_xdp_metadata_rx_timestamp").btf_id
    loaded = k.prog_load(assemble(f"call kfunc({ts})\\nexit"), prog_flags=BPF_F_XDP_HAS_METADATA,
                         prog_ifindex=dev.ifindex, variant="rfc-v2-posted" if defects else "fixed")
    hw, rng, counts = ice.IceRxHw(k.memory), random.Random(1), {"correct": 0, "wrong": 0, "fault": 0}
    for i in range(n):
        cached = rng.getrandbits(63); desc = ice.RxDescriptor(64, cached + rng.randint(-2**31, 2**31 - 1)).encode()
        try:
            got = run_in(loaded.xlated, k.memory.space, hw.receive(i, desc, cached), verified=not defects).r0
            counts["correct" if got == ice.ice_ptp_rx_hwtstamp(cached, desc) else "wrong"] += 1
        except BpfExecuteError:
            counts["fault"] += 1
    return counts

table = pd.DataFrame({name: outcomes(d) for name, d in [("fixed", ()), *[(x, (x,)) for x in ice.DEFECTS],
                                                         ("all (as posted)", ice.DEFECTS)]}).T
table.plot.barh(stacked=True, figsize=(7, 3), color=["#2ca02c", "#ff7f0e", "#d62728"]); plt.show()
table"""),
    ("md", """## The R2-R5 rule, checked

The RFC's own check is `bpf_patch_magles_registers` (the OR of every `dst_reg`), and it would warn on
mlx4 and bnxt: `r1 = r0` writes R1. xdplab also checks each patch semantically (no R6-R9, no stack, jumps
stay inside) and refuses a load that breaks the contract."""),
    ("code", """rows = []
for name in drivers.names():
    lab = xdplab.Lab(name)
    for p in lab.loaded.patches:
        rows.append({"driver": name, "kfunc": p.kfunc, "action": p.action, "insns": len(p.insns),
                     "magles_registers": bin(p.magles_registers), "warns": any("magles" in l for l in lab.loaded.log)})
pd.DataFrame(rows)"""),
]

NOTEBOOKS["02-unrolling"] += [
    ("md", """## From C to BPF to xlated

Reviewers bring C. `data/programs/xdp_metadata_afxdp.c` plays the RFC selftest's program; clang-14 compiled it
to `xdp_metadata_afxdp.o`. xdplab loads the object as libbpf would (program sections, BTF-defined maps,
`__ksym` kfuncs resolved to the kernel's BTF ids) and runs it through the same pipeline. Pick a driver."""),
    ("code", """from pathlib import Path
from xdplab.libbpf import BpfObject
from xdplab.bpf import disassemble
src = Path("../data/programs/xdp_metadata_afxdp.c")
obj = BpfObject.open("../data/programs/xdp_metadata_afxdp.o")
prog = obj.program()
print(f"SEC({prog.section!r}) {prog.name}: {len(prog.insns)} instructions, maps {[m.name for m in obj.maps]}, "
      f"kfuncs {[name for _, name in prog.kfunc_relocs]}")
import html
body = src.read_text()
body = body[body.index('SEC(' + chr(34) + 'xdp' + chr(34) + ')'):]
HTML("<pre style='font-size:11px;max-height:260px;overflow:auto'>" + html.escape(body) + "</pre>")"""),
    ("code", """c_view = DiffView()
c_drv = W.Dropdown(options=list(drivers.names()), value="ice", description="driver")
def show_c(_=None):
    c_view.show(xdplab.Lab(c_drv.value, program="../data/programs/xdp_metadata_afxdp.o"))
c_drv.observe(show_c, names="value"); show_c()
W.VBox([c_drv, c_view.widget])"""),
]

NOTEBOOKS["03-timestamps"] = [
    ("md", """# Each driver's clock, and how its conversion fails

- **ice** keeps a per-ring `cached_phctime`, refreshed every 500 ms, and extends the descriptor's 32-bit
  ns stamp around it: right within ±2^31 ns (±2.147 s), off by 2^32 ns outside.
- **bnxt** extends a 32-bit stamp *forward only* from `old_time`, the previous 1 Hz sample (1-2 s old).
- **mlx4** converts 48-bit cycles with a timecounter whose overflow check runs every 5 s; at 427 MHz,
  `delta * mult` overflows 64 bits after 17.18 s without a check."""),
    ("code", SETUP + """
import ipywidgets as W
from xdplab.drivers import ice, bnxt
from xdplab.drivers.mlx4 import Mlx4Clock
SEC = 1_000_000_000"""),
    ("code", "plots.extension_window(ice.extend_32b_ts, cached=1_700_000_000_000_000_000)"),
    ("md", "Stall the driver's refresh task and watch the error appear. Move the slider (seconds of stall)."),
    ("code", """def stall_plot(driver, stall_s):
    lab = xdplab.Lab(driver)
    df = lab.run(60, interval_ns=200_000_000, start_ns=2 * SEC, stalls=((2 * SEC + 1, int((2 + stall_s) * SEC)),),
                 assume_meta_support=True)
    return plots.timestamp_error(df, title=f"{driver}: refresh stalled for {stall_s} s")

out = W.Output()
drv = W.Dropdown(options=["ice", "bnxt"], value="ice", description="driver")
stall = W.FloatSlider(value=6.0, min=0.0, max=12.0, step=0.5, description="stall (s)")
def redraw(_=None):
    out.outputs = ()
    out.append_display_data(stall_plot(drv.value, stall.value))
drv.observe(redraw, names="value"); stall.observe(redraw, names="value"); redraw()
W.VBox([W.HBox([drv, stall]), out])"""),
    ("code", """clock = Mlx4Clock.default()
stalled = Mlx4Clock(clock.freq_hz, clock.start_ns, clock.overflow.with_stall(5 * SEC + 1, 10**13))
ages = [x / 4 for x in range(0, 100)]
errors = [stalled.timecounter(5 * SEC + int(a * SEC)).cyc2time(stalled.cycles(5 * SEC + int(a * SEC)))
          - stalled.hw_time_ns(5 * SEC + int(a * SEC)) for a in ages]
plots.error_vs_cache_age(ages, errors, "mlx4 @ 427 MHz: no overflow check since t = 5 s")"""),
]

NOTEBOOKS["04-metadata-delivery"] = [
    ("md", """# Carrying the metadata to its consumer

The program reserves room in front of the packet with `bpf_xdp_adjust_meta`, stores what the kfuncs
returned, and redirects to an AF_XDP socket, whose user-space consumer reads `data - METADATA_SIZE`.
For the skb, RFC v2 06/14 adds `bpf_xdp_metadata_export_to_skb`: it writes a `struct xdp_to_skb_metadata`
with a **randomized layout and a random odd magic per boot**, and `skb_metadata_set` imports it."""),
    ("code", SETUP + """
import ipywidgets as W
from xdplab.viz import MemoryLayoutView
from xdplab.kernel.boot import Boot"""),
    ("code", """view = MemoryLayoutView(xdplab.Lab("ice"))
meta = W.IntSlider(value=8, min=0, max=32, step=4, description="meta bytes")
meta.observe(lambda ch: view.show(ch["new"]), names="value"); view.show(8)
W.VBox([meta, view.widget])"""),
    ("code", """af = xdplab.Lab("ice").run(100, path="af_xdp")
skb = xdplab.Lab("ice").run(100, path="skb")
pd.DataFrame({"af_xdp": af.delivered_to.value_counts(), "skb": skb.delivered_to.value_counts()}).fillna(0)"""),
    ("md", "Each boot picks its own magic and field order; user space must not depend on them:"),
    ("code", """pd.DataFrame([{"seed": s, "magic": hex(Boot.from_seed(s).xdp_metadata_magic),
               "magic@": Boot.from_seed(s).xdp_to_skb_metadata.offsetof("magic"),
               "rx_timestamp@": Boot.from_seed(s).xdp_to_skb_metadata.offsetof("rx_timestamp")} for s in range(6)])"""),
    ("md", """In the RFC's era mlx4 and bnxt passed `meta_valid=false` to `xdp_prepare_buff`: `adjust_meta` fails with
-ENOTSUPP and `export_to_skb` bails out, so nothing they compute reaches a consumer:"""),
    ("code", """for name in ("mlx4", "bnxt"):
    print(name, xdplab.Lab(name).run(5).reason.iloc[0])"""),
]

NOTEBOOKS["05-cost-and-designs"] = [
    ("md", """# What each design costs per packet

The cost model counts what actually ran -- instructions by class, memory touched by kind, calls, locks --
and prices it with a CPU profile (every constant in `data/cost.json` with its source). It is calibrated on
the two published anchors (ice unrolled vs called: 0.54 ns for two calls; mlx5: 2.86 ns for three kfunc
calls). Line-rate budgets for 64-byte frames: 67.2 ns at 10G, 26.88 ns at 25G, 6.72 ns at 100G."""),
    ("code", SETUP + """
import ipywidgets as W
from xdplab.designs import compare"""),
    ("code", """out = W.Output()
profile = W.Dropdown(options=["e5-1650v4-retpoline", "modern-no-retpoline"], description="CPU")
def redraw(_=None):
    costs = compare(("ice", "mlx4", "bnxt"), ("none", "btf-hints", "rfc-v2", "rfc-v1", "merged"), packets=8,
                    profile=profile.value,
                    field_sets={"none": ((),), "btf-hints": ((),), "rfc-v2": ((), ("rx_timestamp",)),
                                "rfc-v1": (("rx_timestamp",),), "merged": (("rx_timestamp",),)})
    out.outputs = ()
    out.append_display_data(plots.cost_bars(costs))
    out.append_display_data(costs.pivot_table(index="driver", columns=["design", "fields"], values="over_none_ns").round(2))
profile.observe(redraw, names="value"); redraw()
W.VBox([profile, out])"""),
]

NOTEBOOKS["06-design-review"] = [
    ("md", """# The cover letter's pros and cons, against the simulation

Each claim of the RFC v2 cover letter next to what xdplab measures. Pick a claim."""),
    ("code", SETUP + """
import ipywidgets as W
from xdplab.cost import line_rate_budget_ns
def cost(driver, fields=("rx_timestamp",), design="rfc-v2", prof="e5-1650v4-retpoline"):
    return xdplab.Lab(driver, fields, design=design).run(10, profile=prof, assume_meta_support=True).cost_ns.mean()"""),
    ("code", """def evidence(claim):
    if claim == "free if not used":
        rows = [{"driver": d, "none": cost(d, (), "none"), "rfc-v2, no fields": cost(d, (), "rfc-v2"),
                 "btf-hints (driver fills anyway)": cost(d, (), "btf-hints")} for d in drivers.names()]
    elif claim == "cheap if used":
        rows = [{"driver": d, "unrolled (rfc-v2)": cost(d), "called (rfc-v1)": cost(d, design="rfc-v1"),
                 "25G budget": line_rate_budget_ns(25)} for d in drivers.names()]
    elif claim == "a subset beats all-or-nothing BTF":
        rows = [{"driver": d, "merged, rx_hash only": cost(d, ("rx_hash",), "merged"),
                 "btf-hints, everything": cost(d, (), "btf-hints")} for d in drivers.names()]
    else:
        rows = [{"driver": d, "delivers to AF_XDP (RFC era)": (xdplab.Lab(d).run(5).delivered_to == "af_xdp").mean(),
                 "posted variant aborts": (xdplab.Lab(d, variant="rfc-v2-posted").run(5).delivered_to == "aborted").mean()}
                for d in drivers.names()]
    return pd.DataFrame(rows).set_index("driver").round(2)

out = W.Output()
claim = W.Dropdown(options=["free if not used", "cheap if used", "a subset beats all-or-nothing BTF",
                            "what actually worked in 2022"], description="claim")
def redraw(_=None):
    table = evidence(claim.value)
    ax = table.plot.bar(figsize=(7, 3), rot=0); ax.set_ylabel("ns per packet" if "worked" not in claim.value else "fraction")
    fig = ax.get_figure(); plt.close(fig)
    out.outputs = (); out.append_display_data(fig); out.append_display_data(table)
claim.observe(redraw, names="value"); redraw()
W.VBox([claim, out])"""),
    ("md", """**Cons** in the cover letter -- forwarding needs explicit handling (programs must agree on a layout) and
TX is unclear -- are about interfaces, not cycles. The review went another way: Alexei asked that inlining
be done generically rather than by drivers, PATCH v2 dropped unrolling, and Linux 6.3 merged plain calls
through `xdp_metadata_ops` (the "merged" design here)."""),
]


def build() -> None:
    out_dir = ROOT / "notebooks"
    for name, cells in NOTEBOOKS.items():
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        for k, (kind, src) in enumerate(cells):
            cell = nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src)
            cell["id"] = f"{name}-{k}"
            nb.cells.append(cell)
        nbformat.validate(nb)
        nbformat.write(nb, out_dir / f"{name}.ipynb")


if __name__ == "__main__":
    build()
