"""Write notebooks/*.ipynb from the cell lists below (the reviewed source of the notebooks).

Run ``python tools/build_notebooks.py``; the notebooks are written without outputs, with
stable cell ids, so ``git diff`` shows only real changes.

The notebooks are a course (issue 17): 00-tour is the one-page overview; 01-07 follow the
patch series, each opening with learning goals and the problem in plain words, one idea per
section (narrative, a cell to change, the picture, "notice that ..."), predict-then-run
exercises and a checked quiz.  House rule: prose never states a library result; every number
or verdict is computed in a cell (and asserted by tests/test_notebooks.py), so the text stays
true when the library changes.  A cell given an id (third tuple element) is one the tests read.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SETUP = """%matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd
import ipywidgets as W
from IPython.display import HTML, Markdown, display

import xdplab
from xdplab import drivers
from xdplab.viz import plots, quiz"""

COURSE = ("00-tour", "01-bpf-and-bpf-patch", "02-unrolling", "03-timestamps", "04-metadata-delivery",
          "05-cost-and-designs", "06-design-review", "07-timeline")


def opening(name: str, title: str, goals: list[str], problem: str, patches: str) -> tuple[str, str]:
    """The first cell of every notebook: title, learning goals, the problem in plain words."""
    i = COURSE.index(name)
    nav = []
    if i > 0:
        nav.append(f"← [{COURSE[i - 1]}]({COURSE[i - 1]}.ipynb)")
    nav.append("[glossary](glossary.md)")
    if i + 1 < len(COURSE):
        nav.append(f"[{COURSE[i + 1]}]({COURSE[i + 1]}.ipynb) →")
    goal_lines = "\n".join(f"- {g}" for g in goals)
    return ("md", f"""# {title}

*{patches}* · {' · '.join(nav)}

**Learning goals.** After this notebook you can
{goal_lines}

**The problem in plain words.** {problem}""")


def answer(text: str) -> str:
    """A collapsed answer under a predict-then-run exercise (no numbers: the cell prints them)."""
    return f"<details><summary><b>Answer</b> (open after running the cell)</summary>\n\n{text}\n\n</details>"


NOTEBOOKS: dict[str, list[tuple[str, ...]]] = {}

NOTEBOOKS["00-tour"] = [
    opening("00-tour", 'xdplab: the RFC "xdp: hints via kfuncs" (v2) in one page',
            ["say where a packet's hardware RX timestamp lives and why an XDP program cannot simply read it",
             "read an instruction diff: what the kernel rewrote at load time, and which pass did it",
             "see what one driver, one design and a stalled clock do to 200 packets"],
            """The NIC writes each packet's receive time into an **RX descriptor** -- a small record only the
driver understands. An XDP program sees the packet bytes and a `struct xdp_md`, not the descriptor.
The RFC lets the program *call a kfunc* (`bpf_xdp_metadata_rx_timestamp`); because the program is
**device-bound**, the verifier asks that device's driver to replace the call by instructions that read
the descriptor directly (**unrolling**). The alternative on the table was **BTF hints**: the driver
writes every hint in front of every packet, used or not.""",
            "RFC v2 cover letter, all 14 patches at a glance"),
    ("code", SETUP, "setup"),
    ("md", """## The workbench

Pick a driver, a design, a variant and fields. On the left: the program as written and as the kernel
runs it (*xlated*), each rewritten instruction tinted by the pass that rewrote it; the legend names the
passes. On the right: 200 packets through that driver while its clock-refresh task stalls (slider),
each delivered timestamp compared with the ideal, and the modelled cost per packet against line-rate
budgets. When packets fail, the red list says why, in the library's words."""),
    ("code", """app = xdplab.viz.TourApp(driver="ice", design="rfc-v2", fields=("rx_timestamp",), packets=200)
app.widget""", "tour-app"),
    ("code", """# What the app shows right now, as numbers (re-run after changing the pickers above)
print(xdplab.viz.run_summary(app.df))
got = app.df[app.df.rx_timestamp != 0]
off = got[got.error_ns != 0]
print(f"{len(off)} stamps off; all by whole multiples of 2^32 ns: {bool((off.error_ns.astype('int64') % 2**32 == 0).all())}")
if (app.driver.value, app.design.value, app.variant.value, app.stall.value) == ("ice", "rfc-v2", "fixed", 3.0):
    assert len(off) > 0 and (off.error_ns.astype("int64") % 2**32 == 0).all()   # what the text below says""", "tour-summary"),
    ("md", """**Notice that** with the default 3-second stall some of ice's stamps are off by whole multiples of
2³² ns (the cell above checks it): the descriptor holds only 32 bits of nanoseconds, and the driver extends them around a cached clock reading
that the stalled task stopped refreshing (→ [03-timestamps](03-timestamps.ipynb)).

The designs in the dropdown:"""),
    ("code", """pd.DataFrame({"design": list(xdplab.viz.DESIGN_HELP), "what it is": list(xdplab.viz.DESIGN_HELP.values())}).style.hide(axis="index")"""),
    ("md", """## Exercise: predict, then run

The variant `rfc-v2-posted` is the RFC exactly as posted. **Predict**: for ice, how many of the packets
reach the AF_XDP socket? Then run the cell."""),
    ("code", """posted = xdplab.Lab("ice", variant="rfc-v2-posted").run(20)
print("delivered:", dict(posted.delivered_to.astype(str).value_counts()))
print("reason   :", posted.reason.astype(str).iloc[0])""", "tour-posted"),
    ("md", answer("""Read the counts and the reason the cell printed -- they are the library's. ice's posted unroll
keeps placeholder jumps whose offset was meant to be patched to "the end of the patch"; RFC v2's resolver
never patches them, so a packet that takes one jumps far past the end of the program -- the crash Larysa
Zaremba reported
(→ [01](01-bpf-and-bpf-patch.ipynb), [07](07-timeline.ipynb)). The same reason is listed in the app when you pick
the posted variant.""")),
    ("md", """## The cost in one picture

Each design's modelled cost per packet for each driver (program: read the RX timestamp, store it in the
metadata, redirect to AF_XDP), with the line-rate budgets of 64-byte frames in the right margin."""),
    ("code", """from xdplab.designs import compare
costs = compare(("veth", "ice", "mlx4", "bnxt"), ("none", "btf-hints", "rfc-v2", "patch-v3"), packets=5, progress=False,
                field_sets={"none": ((),), "btf-hints": ((),), "rfc-v2": (("rx_timestamp",),),
                            "patch-v3": (("rx_timestamp",),)})
plots.cost_bars(costs)"""),
    ("code", """over = costs.set_index(["driver", "design"]).cost_ns.unstack()
from xdplab.cost import line_rate_budget_ns
print("drivers whose rfc-v2 timestamp program exceeds the 25G budget:",
      [d for d in over.index if over.loc[d, "rfc-v2"] > line_rate_budget_ns(25)])""", "tour-over-budget"),
    ("md", """**Notice that** the grey `none` bars are the same program without metadata: the difference is what the
timestamp costs. The course explains each piece in order of the patch series, starting with
[01 -- instructions and `bpf_patch`](01-bpf-and-bpf-patch.ipynb)."""),
    ("code", """def aborts_every_packet(driver):
    try:
        return bool((xdplab.Lab(driver, variant="rfc-v2-posted").run(3).delivered_to == "aborted").all())
    except ValueError:          # a driver without a posted variant
        return False
aborting = ", ".join(d for d in drivers.names() if aborts_every_packet(d)) or "none"
quiz(("Where does the NIC put a packet's RX timestamp?",
      ["in the packet bytes", "in the RX descriptor", "in struct xdp_md"], "in the RX descriptor",
      "the driver knows the descriptor; the program reaches it only through the kfunc."),
     ("Which drivers' posted (rfc-v2-posted) code aborts every packet?",
      list(dict.fromkeys([aborting, "veth", "mlx4, bnxt", "none"])), aborting,
      "a placeholder jump that is never resolved leaves the program."))""", "tour-quiz"),
]

NOTEBOOKS["01-bpf-and-bpf-patch"] = [
    opening("01-bpf-and-bpf-patch", "01 · Instructions, encoding, and `struct bpf_patch`",
            ["decode an eBPF instruction's 8 bytes and run a tiny program",
             "explain why the verifier's fixed `insn_buf[16]` was too small for the RFC, and what `bpf_patch` does",
             "see the posted `bpf_patch`'s capacity defect write past its allocation, and at which instruction",
             "tell the two rules for resolving `S16_MAX` placeholder jumps apart"],
            """When the kernel loads a program it *rewrites* some instructions: one instruction becomes many, and
every jump across the spot must be fixed. The rewrite passes built their replacement in a fixed array
of 16 instructions. ice's unrolled timestamp needs more, so the RFC's first patch adds a growable buffer,
`struct bpf_patch`. As posted, that buffer had a bug: after growing it believed it held twice what it had.""",
            "RFC v2 01/14 (bpf_patch), 02/14 and 06/14 (resolve_jmp, magles_registers)"),
    ("code", SETUP + """
from xdplab.bpf import assemble, disassemble, run_detailed, Program
from xdplab.bpf import builders as B, opcodes as op
from xdplab.bpf.patch import BpfPatch""", "setup"),
    ("md", """## 1. An instruction is 8 bytes

`code`, `dst_reg:4 | src_reg:4`, a 16-bit `off` and a 32-bit `imm` (`ld_imm64` takes two slots). Change the
program text and run the cell: the bytes, the text, and the result follow."""),
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
result = run_detailed(program)
print("r0 =", result.r0, "| executed by class:", dict(result.by_class))""", "encode"),
    ("md", """**Notice that** the jump's `off` field (byte 3-4 of slot 4) is negative: jumps are relative to the
next instruction. Any rewrite that inserts instructions must fix such offsets -- that is what
"splicing" means below."""),
    ("md", """## 2. Why `bpf_patch`: the old buffer overflows

The verifier's rewrite passes emitted into `struct bpf_insn insn_buf[16]`. **Predict**: ice's unrolled
timestamp -- does it fit? Move the slider to the length the next cell prints."""),
    ("code", """ice_patch = {p.kfunc: len(p.insns) for p in xdplab.Lab("ice").loaded.patches}
print("ice unrolls bpf_xdp_metadata_rx_timestamp into", ice_patch["bpf_xdp_metadata_rx_timestamp"], "instructions")""",
     "ice-length"),
    ("code", """def patch_report(n):
    old, new = BpfPatch(limit=16), BpfPatch()
    for i in range(n):
        old.append(B.BPF_MOV64_IMM(0, i)); new.append(B.BPF_MOV64_IMM(0, i))
    return (f"<b>{n} instructions</b>: insn_buf[16] {'refuses: ' + old.reason if old.err else 'fits'}; "
            f"bpf_patch holds {len(new)} (capacity {new.capacity})")

status = W.HTML(patch_report(20))
slider = W.IntSlider(value=20, min=1, max=40, description="patch length")
slider.observe(lambda ch: setattr(status, "value", patch_report(ch["new"])), names="value")
W.VBox([slider, status])"""),
    ("md", answer("Compare the printed length with 16: the slider's report says where `insn_buf[16]` gives up, while `bpf_patch` grows.")),
    ("md", """## 3. The posted `bpf_patch` writes past its allocation

As posted, `bpf_patch_append` doubles the capacity it *believes* in once more after a successful
`krealloc_array`: 16 slots are allocated, 32 are believed. The library models exactly that
(`BpfPatch(posted_capacity_defect=True)`) and records the first append that lands outside the
allocation. Change `n` and re-run."""),
    ("code", """n = 24
lengths, believed, allocated, overflow = [], [], [], None
p = BpfPatch(posted_capacity_defect=True)
for i in range(n):
    p.append(B.BPF_MOV64_IMM(0, i))
    lengths.append(len(p)); believed.append(p.capacity); allocated.append(p.allocated)
h = p.heap_overflow
first_bad = h.index + 1 if h else None          # the library counts from 0; people count from 1
print(f"allocated {h.allocated} slots, believed {h.capacity}; first write past the allocation: instruction {first_bad}")
plots.patch_growth(lengths, believed, allocated, overflow_at=first_bad)""", "posted-overflow"),
    ("code", """posted_log = [l for l in xdplab.Lab("ice", variant="rfc-v2-posted").loaded.log if "KASAN" in l]
print(posted_log[0] if posted_log else "no KASAN report")""", "posted-kasan"),
    ("md", """**Notice that** the overflow starts at exactly the length at which the old `insn_buf[16]` gave up: the
buffer built to escape the 16-slot limit overflows its own first allocation at the same place. ice's
unrolled timestamp is longer than 16, so loading the posted ice program writes past the heap object
(KASAN would report it; a production kernel silently corrupts memory)."""),
    ("md", """## 4. Placeholder jumps: `S16_MAX` means "to the end of the patch"

`bpf_patch_resolve_jmp` rewrites jumps whose offset is `S16_MAX` (32767). RFC v2 matched only
register-source `BPF_JMP` jumps; PATCH v1 matched every `BPF_JMP` jump. **Predict** which rows change
under each rule, then run."""),
    ("code", """p = BpfPatch().append(B.BPF_JMP_REG(op.BPF_JNE, 2, 3, op.S16_MAX), B.BPF_JMP_IMM(op.BPF_JEQ, 5, 0, op.S16_MAX),
                      B.BPF_MOV64_IMM(0, 1))
rows = []
for rule in ("rfc-v2", "patch-v1"):
    q = BpfPatch().append(*p.insns()); q.resolve_jmp(rule)
    rows.append({"rule": rule, **{f"insn {i}": disassemble(Program([x])).strip() for i, x in enumerate(q.insns())}})
resolved = pd.DataFrame(rows).set_index("rule")
resolved""", "resolve"),
    ("md", answer("""Under `rfc-v2` only the register-source jump (`if r2 != r3`) is resolved; the immediate-source
jump (`if r5 == 0`) keeps offset 32767. ice's unroll uses immediate-source jumps -- which is why, as
posted, nothing resolves them.""")),
    ("md", "## 5. Splicing: one instruction becomes many, every branch fixed up (`bpf_patch_insn_single`)"),
    ("code", """sizes = {name: len(xdplab.Lab(name).xlated) - len(xdplab.Lab(name).program) for name in drivers.names()}
fig, ax = plt.subplots(figsize=(6, 2.6))
ax.bar(list(sizes), list(sizes.values()), color=plots.OKABE_ITO["green"])
ax.set_ylabel("instructions added at load", fontsize=10); ax.tick_params(labelsize=10)
ax.set_title("same program, four drivers", fontsize=10)
plt.show()
print("instructions added:", sizes)
HTML(xdplab.viz.diff_html(xdplab.Lab("veth").diff()))""", "splice"),
    ("md", "**Notice that** the same source program grows by a different amount on each driver: the xlated program depends on the device it is bound to."),
    ("code", """quiz(("Which instruction is the first the posted bpf_patch writes outside its allocation?",
      sorted({str(first_bad), "16", "17", "32", "33"}, key=lambda x: (len(x), x)), str(first_bad), "its first allocation is 16 slots, but it believes 32."),
     ("Under RFC v2's rule, which placeholder jump is resolved?",
      ["register-source (BPF_X)", "immediate-source (BPF_K)", "both"],
      "register-source (BPF_X)" if resolved.loc["rfc-v2", "insn 1"].endswith("32767") else "both",
      "RFC v2 tested for BPF_X; PATCH v1 dropped that test."))""", "quiz"),
]

NOTEBOOKS["02-unrolling"] = [
    opening("02-unrolling", "02 · Device-bound programs and unrolling, driver by driver",
            ["say what `BPF_F_XDP_HAS_METADATA` + `prog_ifindex` do, and what `KF_UNROLL` marks",
             "read a driver wrapper (`container_of`): the 56-byte `xdp_buff` first, the driver's fields after it",
             "predict the default unroll `r0 = 0` for a driver that unrolls nothing",
             "explain with the R0–R10 map why unrolled code may write only R0 and R2–R5, why mlx4 and bnxt need "
             "`xdp_kfunc_call_preserving_r1`, and what Alexei's push/pop request would change",
             "see each of ice's four posted defects alone"],
            """A kfunc call costs a call. If the kernel knows, at load time, which device the program will run on,
it can ask that device's driver to *replace* the call by the few instructions that read the descriptor
(**unroll** it). That needs (1) the program to be bound to a device at load time, (2) the driver to find
its own data from the `ctx` pointer, and (3) the replacement to leave the program's registers alone --
it runs in the middle of the program, not in a function of its own.""",
            "RFC v2 02/14 (unrolling), 03/09/11/13 (wrappers), 04/10/12/14 (drivers), 08/14 (preserving_r1)"),
    ("code", SETUP + """
from xdplab.viz import DiffView
from xdplab.kernel.kfuncs import RFC_V2, KF_UNROLL, KF_RET_NULL""", "setup"),
    ("md", """## 1. Marking a kfunc for unrolling: `KF_UNROLL`

RFC v2 registers its metadata kfuncs with a flag the verifier's fixup pass looks for. The table is the
library's kfunc table (what a `BPF_PSEUDO_KFUNC_CALL` imm resolves to)."""),
    ("code", """POSTED = ("bpf_xdp_metadata_export_to_skb", "bpf_xdp_metadata_rx_timestamp_supported",
          "bpf_xdp_metadata_rx_timestamp")          # the three kfuncs RFC v2 02/14 and 06/14 register
kf = pd.DataFrame([{"kfunc": s.name, "btf_id": s.btf_id, "KF_UNROLL": bool(s.flags & KF_UNROLL),
                    "KF_RET_NULL": bool(s.flags & KF_RET_NULL), "in the posted RFC": s.name in POSTED,
                    "prototype": s.proto} for s in RFC_V2.specs])
print("KF_UNROLL =", hex(KF_UNROLL), "| the kfuncs RFC v2 posts all carry it:",
      bool(kf[kf["in the posted RFC"]].KF_UNROLL.all()) and set(POSTED) <= set(kf.kfunc))
kf""", "kf-unroll"),
    ("md", """## 2. Device-bound: the load names the device

`BPF_F_XDP_HAS_METADATA` plus `attr->prog_ifindex` binds the program to the device's *type*: the verifier
stores `dev->netdev_ops` and calls its `ndo_unroll_kfunc` for each metadata kfunc call. The load log:"""),
    ("code", """for name in drivers.names():
    print(f"{name:5s}", xdplab.Lab(name).loaded.log[0])""", "bound-log"),
    ("md", """**The same-device attach rule.** Because the instructions now depend on the driver, RFC v2 02/14 adds a
check to `dev_xdp_attach`: a program loaded for one device type can only be attached to a device with
the same `netdev_ops` ("Target device was specified at load time; can only attach to the same device
type", `-EINVAL`). **Predict**: a program bound to an ice device, attached to a second ice device, then
to an mlx4 device. Which attach fails?"""),
    ("code", """from xdplab.kernel.kernel import AttachError, Kernel as _K
from xdplab.bpf import assemble as _asm
k2 = _K()
ice0, ice1, mlx0 = (k2.netns.add(n, drivers.get(d)) for n, d in (("ice0", "ice"), ("ice1", "ice"), ("mlx0", "mlx4")))
ts = RFC_V2.by_name("bpf_xdp_metadata_rx_timestamp").btf_id
bound = k2.prog_load(_asm(f"call kfunc({ts})\\nr0 = 2\\nexit"), prog_flags=0x40, prog_ifindex=ice0.ifindex)
for dev in (ice1, mlx0):
    try:
        k2.dev_xdp_attach(dev.ifindex, bound)
        print(f"{dev.name}: attached")
    except AttachError as exc:
        print(f"{dev.name}: -{exc.errno}: {exc}")""", "attach-rule"),
    ("md", """**Notice that** the second ice device is fine: the rule compares driver *types* (`netdev_ops`), not
devices. The mlx4 device is refused, because ice's unrolled instructions would read mlx4's wrapper as if it
were `ice_xdp_buff`."""),
    ("md", """## 3. A driver that unrolls nothing gets `r0 = 0`

**Predict**: a device whose driver leaves the patch empty. What does the kfunc call become? Run the cell
(a generic driver, no unroller)."""),
    ("code", """from xdplab.kernel.kernel import Kernel
from xdplab.kernel.uapi import BPF_F_XDP_HAS_METADATA
from xdplab.drivers.base import Driver
from xdplab.bpf import assemble
k = Kernel(); dev = k.netns.add("dummy0", Driver())
ts_id = RFC_V2.by_name("bpf_xdp_metadata_rx_timestamp").btf_id
generic = k.prog_load(assemble(f"call kfunc({ts_id})\\nexit"), prog_flags=BPF_F_XDP_HAS_METADATA, prog_ifindex=dev.ifindex)
print([(p.kfunc, p.action, len(p.insns)) for p in generic.patches])
print(generic.dump_xlated())""", "default-unroll"),
    ("md", answer("""A single `r0 = 0`: "no timestamp". RFC v1 left a call to a default kfunc; RFC v2 unrolls the
default to one instruction, so an unsupported field costs one `mov`.""")),
    ("md", """## 4. Wrappers: how the driver finds its descriptor (`container_of`)

The `ctx` the program gets is a `struct xdp_buff *`. Each driver now allocates a bigger struct whose
**first member** is that `xdp_buff` and whose next members point at what the unroll needs (the skb, the
descriptor, the ring). So the ctx pointer *is* the wrapper's address, and the unrolled code reads
`*(u64 *)(r1 + 56)` to reach the driver's first field. The offsets below are the library's layouts."""),
    ("code", """from xdplab.kernel.structs import XDP_BUFF
layouts = []
for name in drivers.names():
    w = drivers.get(name).wrapper
    extra = [(f, w.fields[f].offset, w.fields[f].size) for f in w.fields if w.fields[f].offset >= XDP_BUFF.size]
    layouts.append((w.name, w.size, extra))
    print(f"{w.name:14s} {w.size:3d} B:", ", ".join(f"{f}@{o}" for f, o, _ in extra))
print("struct xdp_buff is", XDP_BUFF.size, "bytes")
plots.struct_layouts(layouts, base_size=XDP_BUFF.size)""", "wrappers"),
    ("md", """**Notice that** every driver field starts at or after byte 56: the wrapper keeps the `xdp_buff` intact, so
code that only knows `xdp_buff` still works, and only the bound driver's unroll knows what follows.
mlx4 and bnxt also keep an `r0` slot: see section 6."""),
    ("md", """## 5. The unrolled code, driver by driver

Pick a driver and a variant. Unchanged instructions are white; rewritten ones are tinted by the pass
that rewrote them (legend above the table)."""),
    ("code", """view = DiffView()
drv = W.Dropdown(options=list(drivers.names()), value="ice", description="driver")
var = W.ToggleButtons(options=["fixed", "rfc-v2-posted"], description="variant")
def show(_=None):
    view.show(xdplab.Lab(drv.value, variant=var.value))
drv.observe(show, names="value"); var.observe(show, names="value"); show()
W.VBox([W.HBox([drv, var]), view.widget])""", "diff-widget"),
    ("md", """## 6. Who owns which register: R2–R5, `preserving_r1`, push/pop

Unrolled code runs *inside* the caller, with no frame of its own: R6–R9 hold the program's values (it
expects them back after a call), R10 is the frame pointer, and R1 must still be the ctx afterwards
because `export_to_skb` unrolls several kfuncs in a row. What is left: R0 for the result and R2–R5 as
scratch. mlx4 and bnxt cannot read their timestamps in a few instructions (seqlock, spinlock), so they
call C through `xdp_kfunc_call_preserving_r1`: `call`, then `r1 = r0` (the C routine returns the ctx),
then `r0 = *(u64 *)(r1 + offsetof(wrapper, r0))`. Each dot below is a register a patch writes, from the
library's `bpf_patch_magles_registers` mask."""),
    ("code", """rows = []
for name in drivers.names():
    lab = xdplab.Lab(name)
    warned = any("magles" in l for l in lab.loaded.log)
    for p in lab.loaded.patches:
        regs = [f"R{r}" for r in range(11) if p.magles_registers >> r & 1]
        rows.append({"driver": name, "kfunc": p.kfunc.replace("bpf_xdp_metadata_", ""), "insns": len(p.insns),
                     "writes": " ".join(regs), "RFC's check warns": warned and "R1" in regs})
regtable = pd.DataFrame(rows)
display(plots.register_map([(f"{r.driver}: {r.kfunc}", sum(1 << int(x[1:]) for x in r.writes.split())) for r in regtable.itertuples()]))
outside = sorted({r.driver for r in regtable.itertuples() if set(r.writes.split()) - {"R0", "R2", "R3", "R4", "R5"}})
print("patches writing outside R0, R2-R5:", outside, "| what they write there:",
      sorted({x for w in regtable.writes for x in w.split()} - {"R0", "R2", "R3", "R4", "R5"}))
regtable""", "register-map"),
    ("md", """**Notice** which patches have orange dots (printed above the table): the register they write outside
R0, R2–R5 is R1 -- the `r1 = r0` restore of the call helper. The RFC's own check,
`bpf_patch_magles_registers` (the OR of every `dst_reg`), cannot tell that restore from a real clobber,
so it would warn on its own helper (the last column). Alexei's answer to 08/14 (4 Nov 2022,
[lore](https://lore.kernel.org/all/20221105004005.pfdsaitg6phb6vxm@macbook-pro-5.dhcp.thefacebook.com/)):

> That's one twisted logic :) I guess it works for preserving r1, but r2-r5 are gone and r6-r9 cannot be
> touched. [...] imo we need push/pop insns.

With kernel-internal push/pop the unroll could save R1–R5 (or R6–R9) around its call and use them freely:
the beige and grey columns would stop being off limits. PATCH v1 added hidden `BPF_PUSH64`/`BPF_POP64`;
PATCH v2 dropped unrolling altogether ([07-timeline](07-timeline.ipynb))."""),
    ("md", """## 7. ice as posted: four defects, each alone

kernel-facts lists four defects of the posted ice unroll (a reading of the code): inverted guards, 32-bit
final arithmetic, 8-byte loads past the descriptor, unresolved `S16_MAX` jumps. **Predict** what each
does alone (right, silently wrong, or a fault?) and what they do together. Then run (400 random valid
descriptors per row; change `n`)."""),
    ("code", """from xdplab.drivers import ice
from xdplab.bpf import BpfExecuteError, run_in
import random

def outcomes(defects, n=2000):
    k = Kernel(); dev = k.netns.add("eth0", ice.Ice(defects=defects))
    loaded = k.prog_load(assemble(f"call kfunc({ts_id})\\nexit"), prog_flags=BPF_F_XDP_HAS_METADATA,
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

n = 400
table = pd.DataFrame({name: outcomes(d, n) for name, d in [("fixed", ()), *[(x, (x,)) for x in ice.DEFECTS],
                                                            ("all (as posted)", ice.DEFECTS)]}).T
display(plots.outcome_bars(table, title=f"ice unroll, {n} random descriptors per row"))
table""", "ice-defects"),
    ("code", """kinds = {d: ("faults on some packets" if 0 < table.loc[d, "fault"] < n else "faults on every packet"
              if table.loc[d, "fault"] == n else "silently wrong" if table.loc[d, "wrong"] else "harmless here")
         for d in table.index if d != "fixed"}
for d, k in kinds.items():
    print(f"{d:16s} {k}")""", "ice-defect-kinds"),
    ("md", answer("""Read the classification above, then the mechanisms (kernel-facts §6.2): inverted guards
return 0 for every *valid* packet; 32-bit final ALU ops keep only the low 32 bits of the time; the wide
loads keep their low 32 bits and stay inside the ring, which `ice_setup_rx_ring` rounds up to a page;
the unresolved `S16_MAX` jumps are taken only by packets that fail a guard. Together, the inverted guards
send valid packets down those jumps. A *silently wrong* defect delivers a plausible value that is off
(the worse kind); a *fault* is noticed at once. Reviewers found the posted code's by crashing a machine
(Larysa, [07](07-timeline.ipynb)).""")),
    ("md", """## 8. From C to BPF to xlated

Reviewers bring C. `data/programs/xdp_metadata_afxdp.c` plays the RFC selftest's program; clang-14 compiled it
to `xdp_metadata_afxdp.o`. xdplab loads the object as libbpf would (program sections, BTF-defined maps,
`__ksym` kfuncs resolved to the kernel's BTF ids) and runs it through the same pipeline. Pick a driver."""),
    ("code", """from pathlib import Path
from xdplab.libbpf import BpfObject
from xdplab.bpf import disassemble
import html
src = Path("../data/programs/xdp_metadata_afxdp.c")
obj = BpfObject.open("../data/programs/xdp_metadata_afxdp.o")
prog = obj.program()
print(f"SEC({prog.section!r}) {prog.name}: {len(prog.insns)} instructions, maps {[m.name for m in obj.maps]}, "
      f"kfuncs {[name for _, name in prog.kfunc_relocs]}")
body = src.read_text()
body = body[body.index('SEC(' + chr(34) + 'xdp' + chr(34) + ')'):]
HTML("<pre style='font-size:12px;max-height:260px;overflow:auto'>" + html.escape(body) + "</pre>")"""),
    ("code", """c_view = DiffView()
c_drv = W.Dropdown(options=list(drivers.names()), value="ice", description="driver")
def show_c(_=None):
    c_view.show(xdplab.Lab(c_drv.value, program="../data/programs/xdp_metadata_afxdp.o"))
c_drv.observe(show_c, names="value"); show_c()
W.VBox([c_drv, c_view.widget])"""),
    ("code", """r1_writers = [d for d in drivers.names() if d in set(regtable[regtable.writes.str.contains(r"\\bR1\\b")].driver)]
quiz(("Which registers may an unrolled patch write freely?",
      ["R0-R5", "R0 and R2-R5", "R0-R9", "only R0"], "R0 and R2-R5",
      "R1 stays the ctx (export_to_skb), R6-R9 are the program's, R10 is the frame."),
     ("Which drivers' timestamp patch writes R1?",
      list(dict.fromkeys([", ".join(r1_writers) or "none", ", ".join(d for d in drivers.names() if d not in r1_writers),
                          "all of them", "none"])),
      ", ".join(r1_writers) or "none", "the r1 = r0 of xdp_kfunc_call_preserving_r1."),
     ("What does a kfunc call become on a device whose driver unrolls nothing?",
      ["a call to a default kfunc", "r0 = 0", "the load fails"],
      "r0 = 0" if generic.patches[0].action == "default-unroll" else "a call to a default kfunc",
      "RFC v2 unrolls the default to a single instruction."))""", "quiz"),
]

NOTEBOOKS["03-timestamps"] = [
    opening("03-timestamps", "03 · Each driver's clock, and how its conversion fails",
            ["say what a PHC is and why a driver caches its time",
             "explain ice's ±2³¹ ns extension window and see a stamp jump by 2³² ns when the cache is stale",
             "compare how ice, bnxt and mlx4 fail when their refresh task stalls"],
            """The NIC stamps packets with its own clock, the **PHC** (PTP hardware clock). To save descriptor space
ice and bnxt write only the low 32 bits of nanoseconds (2³² ns ≈ 4.3 s); the driver rebuilds the full
time from a recent full reading of the PHC it caches, refreshed by a periodic task. If the task stalls,
the cache grows old and the rebuilt time goes wrong. mlx4 converts raw cycles with a `timecounter` that
must be refreshed before its multiplication overflows. The unrolled kfunc inherits all of this.""",
            "RFC v2 04/14 (veth), 10/14 (ice), 12/14 (mlx4), 14/14 (bnxt)"),
    ("code", SETUP + """
from xdplab.drivers import ice, bnxt
from xdplab.drivers.mlx4 import Mlx4Clock
SEC = 1_000_000_000""", "setup"),
    ("md", """## 1. ice: the extension window

`ice_ptp_extend_32b_ts` takes the cached 64-bit PHC time and a 32-bit stamp and picks the 64-bit value
nearest the cache. **Predict**: how far from the cache may the packet be before the answer is wrong?"""),
    ("code", """cached = 1_700_000_000_000_000_000
def error_at(offset_ns):
    true = cached + offset_ns
    return ice.extend_32b_ts(cached, true & 0xFFFFFFFF) - true
edge = next(d for d in range(2**31 - 4, 2**31 + 4) if error_at(d) != 0)
print(f"first wrong offset after the cache: {edge} ns ({edge / SEC:.3f} s); error there: {error_at(edge)} ns")
plots.extension_window(ice.extend_32b_ts, cached=cached)""", "ice-window"),
    ("md", answer("""Half the 32-bit range: 2³¹ ns ≈ 2.147 s either side. Outside it the result is off by exactly
2³² ns -- the steps in the plot.""")),
    ("md", """## 2. Stall the refresh task

Move the slider (seconds the driver's refresh task stops) and switch driver. The error panel shows each
packet's delivered stamp minus the ideal."""),
    ("code", """def stall_run(driver, stall_s, packets=60):
    lab = xdplab.Lab(driver)
    return lab.run(packets, interval_ns=200_000_000, start_ns=2 * SEC,
                   stalls=((2 * SEC + 1, int((2 + stall_s) * SEC)),), assume_meta_support=True)

out = W.Output()
drv = W.Dropdown(options=["ice", "bnxt"], value="ice", description="driver")
stall = W.FloatSlider(value=6.0, min=0.0, max=12.0, step=0.5, description="stall (s)")
def redraw(_=None):
    df = stall_run(drv.value, stall.value)
    out.outputs = ()
    out.append_display_data(plots.timestamp_error(df, title=f"{drv.value}: refresh stalled for {stall.value} s"))
    out.append_display_data(HTML(xdplab.viz.run_summary(df)))
drv.observe(redraw, names="value"); stall.observe(redraw, names="value"); redraw()
W.VBox([W.HBox([drv, stall]), out])""", "stall-widget"),
    ("code", """rows = []
for name in ("ice", "bnxt"):
    df = stall_run(name, 6.0)
    bad = df[(df.rx_timestamp != 0) & (df.error_ns != 0)]
    rows.append({"driver": name, "wrong stamps": len(bad),
                 "first wrong at (s into the run)": (bad.t_ns.min() - df.t_ns.min()) / SEC if len(bad) else None,
                 "errors are multiples of 2^32 ns": bool((bad.error_ns.astype("int64") % 2**32 == 0).all())})
stalls = pd.DataFrame(rows).set_index("driver")
for name, r in stalls.iterrows():
    print(f"{name}: {r['wrong stamps']} wrong stamps, first {r['first wrong at (s into the run)']} s into the run, "
          f"all multiples of 2^32 ns: {r['errors are multiples of 2^32 ns']}")
stalls""", "stall-table"),
    ("md", """**Notice that** the errors are whole multiples of 2³² ns, never a little off: a stale cache does not blur
the time, it picks the wrong 4.3-second "page". bnxt extends *forward only* from its previous sample, so
its failure starts at a different moment than ice's."""),
    ("md", """## 3. mlx4: a timecounter that must be refreshed

mlx4 converts 48-bit cycles with `cyc2time` = `(delta * mult) >> shift` from the last refresh. If the
overflow check stops (here from t = 5 s), `delta * mult` eventually exceeds 64 bits."""),
    ("code", """clock = Mlx4Clock.default()
stalled = Mlx4Clock(clock.freq_hz, clock.start_ns, clock.overflow.with_stall(5 * SEC + 1, 10**13))
ages = [x / 4 for x in range(0, 100)]
errors = [stalled.timecounter(5 * SEC + int(a * SEC)).cyc2time(stalled.cycles(5 * SEC + int(a * SEC)))
          - stalled.hw_time_ns(5 * SEC + int(a * SEC)) for a in ages]
first = next((a for a, e in zip(ages, errors) if e != 0), None)
print(f"mlx4 at {clock.freq_hz / 1e6:.0f} MHz: first wrong conversion {first} s after the last refresh")
plots.error_vs_cache_age(ages, errors, f"mlx4 @ {clock.freq_hz / 1e6:.0f} MHz: no overflow check since t = 5 s")""",
     "mlx4-overflow"),
    ("code", """quiz(("How far from ice's cached PHC time can a packet be and still get the right stamp?",
      ["±2^31 ns (about 2.1 s)", "±2^32 ns (about 4.3 s)", "±500 ms", "any distance"],
      "±2^31 ns (about 2.1 s)" if edge == 2**31 else "±2^32 ns (about 4.3 s)",
      "the nearest 64-bit value to the cache wins; half the 32-bit range either side."),
     ("With a stale cache, a wrong ice stamp is off by ...",
      ["a few ns", "a multiple of 2^32 ns", "a random amount"],
      "a multiple of 2^32 ns" if stalls.loc["ice", "errors are multiples of 2^32 ns"] else "a random amount",
      "it picks the wrong 2^32-ns page."))""", "quiz"),
]

NOTEBOOKS["04-metadata-delivery"] = [
    opening("04-metadata-delivery", "04 · Carrying the metadata to its consumer: AF_XDP and the skb",
            ["trace a timestamp from the RX descriptor to an AF_XDP socket or an skb (the drawing)",
             "explain `data_meta` and `bpf_xdp_adjust_meta`, and why the RFC-era mlx4 and bnxt deliver nothing",
             "follow `export_to_skb` end to end: its unroll, its per-boot layout and magic, the skb's hardware timestamp",
             "state Martin's and Jakub's objections to a kernel-defined metadata layout"],
            """A value in `r0` is useless unless it reaches someone. For **AF_XDP** the program stores it in the
**metadata area** just in front of the packet (`data_meta`), and user space reads it there. For the
normal stack the kernel must find it when it builds the **skb**: RFC v2 06/14 adds
`bpf_xdp_metadata_export_to_skb`, which writes a kernel-defined struct into the metadata area, and
`skb_metadata_set` imports it into the skb's hardware timestamp.""",
            "RFC v2 05/14 (AF_XDP selftest), 06/14 (export_to_skb), 07/14 (skb selftest)"),
    ("code", SETUP + """
from xdplab.viz import MemoryLayoutView
from xdplab.kernel.boot import Boot""", "setup"),
    ("md", "## 1. The path, drawn"),
    ("code", "plots.rx_path()"),
    ("md", """## 2. Room in front of the packet: `data_meta`

`bpf_xdp_adjust_meta(ctx, -n)` moves `data_meta` n bytes left into the headroom. Move the slider."""),
    ("code", """view = MemoryLayoutView(xdplab.Lab("ice"))
meta = W.IntSlider(value=8, min=0, max=32, step=4, description="meta bytes")
meta.observe(lambda ch: view.show(ch["new"]), names="value"); view.show(8)
W.VBox([meta, view.widget])"""),
    ("md", "**Predict**: on ice, where do 100 packets end up on each path? Then run."),
    ("code", """af = xdplab.Lab("ice").run(100, path="af_xdp")
skb = xdplab.Lab("ice").run(100, path="skb")
where = pd.DataFrame({"af_xdp": af.delivered_to.astype(str).value_counts(),
                      "skb": skb.delivered_to.astype(str).value_counts()}).fillna(0).astype(int)
where""", "paths"),
    ("md", answer("""Each should reach its consumer: the AF_XDP socket for the first program, the stack (an skb) for
the second, which returns `XDP_PASS` after `export_to_skb`. Any other column would come with a reason in
the run's `reason` column.""")),
    ("md", """## 3. `export_to_skb`, end to end

`export_to_skb` is itself unrolled: it reserves room with the equivalent of `adjust_meta`, writes the
boot's magic, unrolls `rx_timestamp` inside itself (this is why R1 must survive, see
[02](02-unrolling.ipynb)), and stores the result. The skb program's diff on ice:"""),
    ("code", """skb_loaded = xdplab.Lab("ice").loaded_for("skb")
export = [p for p in skb_loaded.patches if p.kfunc.endswith("export_to_skb")][0]
ts_len = {p.kfunc: len(p.insns) for p in xdplab.Lab("ice").loaded.patches}["bpf_xdp_metadata_rx_timestamp"]
print(f"export_to_skb unrolls into {len(export.insns)} instructions on ice "
      f"(its rx_timestamp part alone: {ts_len}); the program grows {len(skb_loaded.original)} -> {len(skb_loaded.xlated)}")
HTML(xdplab.viz.diff_html(skb_loaded.diff()))""", "export-unroll"),
    ("code", """exact = int((skb.error_ns == 0).sum())
print(f"skb path on ice: {exact} of {len(skb)} skbs carry skb_hwtstamps(skb)->hwtstamp equal to the ideal time")
skb[["packet", "hw_time_ns", "rx_timestamp", "error_ns", "delivered_to", "meta_len"]].head()""", "skb-stamps"),
    ("md", """**Notice that** `rx_timestamp` in this table is what the *skb* carries: the value went descriptor → r0 →
`struct xdp_to_skb_metadata` in the headroom → `skb_metadata_import_from_xdp` → `skb_hwtstamps`.
`meta_len` is the size of that struct."""),
    ("md", """## 4. A layout user space must not depend on

The struct is `__randomize_layout` and starts with a random odd magic chosen per boot, so nobody can hard-code
it. Each row is one simulated boot (the layout here is per boot; in a real kernel randstruct is per build)."""),
    ("code", """boots = pd.DataFrame([{"seed": s, "magic": hex(Boot.from_seed(s).xdp_metadata_magic),
               "magic@": Boot.from_seed(s).xdp_to_skb_metadata.offsetof("magic"),
               "rx_timestamp@": Boot.from_seed(s).xdp_to_skb_metadata.offsetof("rx_timestamp")} for s in range(6)])
boots""", "boots"),
    ("md", """Martin KaFai Lau reviewed 06/14 (7 Nov 2022,
[lore](https://lore.kernel.org/all/187e89c3-d7de-7bec-c72e-d9d6eb5bcca0@linux.dev/)):

> Can the xdp prog still change the metadata through xdp->data_meta? tbh, I am not sure it is solid enough by
> asking the xdp prog not to use the same random number in its own metadata + not to change the metadata
> through xdp->data_meta after calling bpf_xdp_metadata_export_to_skb().

and Jakub Kicinski, on the first non-RFC posting (16 Nov 2022,
[lore](https://lore.kernel.org/all/20221116131253.6703f1c6@kernel.org/)):

> IMO we should split the xdp -> skb work from the pure HW data access in XDP.

PATCH v2 dropped the xdp → skb path; the merged kernel has no `export_to_skb`."""),
    ("md", """## 5. Drivers that could not carry metadata

In the RFC's era mlx4 and bnxt passed `meta_valid=false` to `xdp_prepare_buff`: `adjust_meta` fails and
`export_to_skb` bails out, so nothing they compute reaches a consumer. The library's reason for each:"""),
    ("code", """no_meta = {name: xdplab.Lab(name).run(5).reason.astype(str).iloc[0] for name in ("mlx4", "bnxt")}
for name, reason in no_meta.items():
    print(f"{name}: {reason}")""", "no-meta"),
    ("code", """quiz(("On ice's skb path, where does the packet's hardware timestamp end up?",
      ["skb->tstamp", "skb_hwtstamps(skb)->hwtstamp", "nowhere"],
      "skb_hwtstamps(skb)->hwtstamp" if exact == len(skb) else "nowhere",
      "skb_metadata_import_from_xdp copies it from struct xdp_to_skb_metadata."),
     ("Why do RFC-era mlx4 and bnxt deliver no metadata?",
      ["their unroll is wrong", "xdp_prepare_buff(..., meta_valid=false): adjust_meta fails", "AF_XDP is not supported"],
      "xdp_prepare_buff(..., meta_valid=false): adjust_meta fails" if all("meta_valid=false" in r for r in no_meta.values())
      else "their unroll is wrong",
      "the program never gets room in front of the packet."))""", "quiz"),
]

NOTEBOOKS["05-cost-and-designs"] = [
    opening("05-cost-and-designs", "05 · What each design costs per packet",
            ["read a per-packet cost against a line-rate budget",
             "compare unrolled (rfc-v2), called (patch-v3), merged and BTF hints for each driver",
             "say which driver's timestamp is expensive under every design, and why"],
            """At 25 Gbit/s a 64-byte frame arrives every few tens of nanoseconds; everything the program does per
packet must fit. The RFC's claim: kfuncs are *free if not used* and *cheap if used*. The cost model counts
what actually ran -- instructions by class, memory touched, calls, locks -- and prices it with a CPU
profile (every constant in `data/cost.json` with its source), calibrated on two published anchors.""",
            "RFC v2 cover letter (pros), reviews on cost (→ 07-timeline)"),
    ("code", SETUP + """
from xdplab.designs import compare
from xdplab.cost import PROFILES, line_rate_budget_ns""", "setup"),
    ("code", """budgets = {f"{g}G": round(line_rate_budget_ns(g), 2) for g in (10, 25, 100)}
print("line-rate budget per 64-byte frame (ns):", budgets)""", "budgets"),
    ("md", """## 1. Every design on every driver

Pick a CPU profile. The table under the plot is the cost *over* the `none` baseline."""),
    ("code", """out = W.Output()
profile = W.Dropdown(options=list(PROFILES), description="CPU")
def redraw(_=None):
    costs = compare(("ice", "mlx4", "bnxt"), ("none", "btf-hints", "rfc-v2", "patch-v3", "merged"), packets=5,
                    profile=profile.value, progress=False,
                    field_sets={"none": ((),), "btf-hints": ((),), "rfc-v2": ((), ("rx_timestamp",)),
                                "patch-v3": (("rx_timestamp",),), "merged": (("rx_timestamp",),)})
    out.outputs = ()
    out.append_display_data(plots.cost_bars(costs))
    out.append_display_data(costs.pivot_table(index="driver", columns=["design", "fields"], values="over_none_ns").round(2))
profile.observe(redraw, names="value"); redraw()
W.VBox([profile, out])""", "cost-widget"),
    ("md", """**Predict**: on ice, how much does unrolling save against a plain call, per packet? (Larysa measured
about 2 % in packets per second on rx_hash; see [07](07-timeline.ipynb).)"""),
    ("code", """def mean_cost(driver, design, fields=("rx_timestamp",)):
    return xdplab.Lab(driver, fields, design=design).run(5, assume_meta_support=True).cost_ns.mean()
from xdplab.claims import ice_unroll_saving_ns
from xdplab.cost import DEFAULT_PROFILE
saving = ice_unroll_saving_ns(DEFAULT_PROFILE)          # called (patch-v3) - unrolled (rfc-v2)
print(f"ice: called - unrolled = {saving:.2f} ns per packet (modelled)")
over25 = [d for d in drivers.names() if mean_cost(d, "rfc-v2") > line_rate_budget_ns(25)]
print("over the 25G budget with the rfc-v2 timestamp program:", over25)""", "saving"),
    ("md", answer("""The printed saving is the price of a call and return. Hold it against the budgets printed at
the top: what matters at 100G hardly matters at 10G.""")),
    ("code", """def fields_for(design):
    return () if design == "btf-hints" else ("rx_timestamp",)     # BTF hints: the driver fills them anyway
def delivers_stamp(driver, design):
    run = xdplab.Lab(driver, fields_for(design), design=design).run(3, assume_meta_support=True)
    return bool((run.rx_timestamp != 0).any())
always = {}
for d in drivers.names():
    reading = [des for des in ("rfc-v2", "patch-v3", "merged", "btf-hints") if delivers_stamp(d, des)]
    if reading and all(mean_cost(d, des, fields_for(des)) > line_rate_budget_ns(25) for des in reading):
        always[d] = reading
print("over the 25G budget under every design that delivers its timestamp:", always)""", "always-over"),
    ("md", """**Notice** the driver(s) printed above: a design that is over budget whatever the kernel does is paying
for the *driver's* work, not the call. bnxt's RFC-era timestamp read takes a spinlock in C
(`spin_lock_bh`), which no instruction-level trick removes; unrolling helps drivers whose read is a few loads."""),
    ("code", """quiz(("On ice, is unrolled cheaper than called?", ["yes", "no"], "yes" if saving > 0 else "no",
      "a call and return cost more than the handful of loads ice unrolls to."),
     ("Does bnxt's rfc-v2 timestamp program fit the 25G budget?", ["yes", "no"],
      "no" if "bnxt" in over25 else "yes", "the spinlock in its C timestamp routine."))""", "quiz"),
]

NOTEBOOKS["06-design-review"] = [
    opening("06-design-review", "06 · The cover letter's pros and cons, against the simulation",
            ["check each claim of the RFC v2 cover letter against a measurement",
             "say which claims held and which the review overturned"],
            """A cover letter argues; a reviewer checks. Each claim below is paired with what xdplab measures, so
you can judge it yourself. Pick a claim.""",
            "RFC v2 cover letter (00/14)"),
    ("code", SETUP + """
from xdplab.cost import line_rate_budget_ns
def cost(driver, fields=("rx_timestamp",), design="rfc-v2", prof="e5-1650v4"):
    return xdplab.Lab(driver, fields, design=design).run(5, profile=prof, assume_meta_support=True).cost_ns.mean()""",
     "setup"),
    ("code", """from functools import cache

@cache                      # one measurement per claim: the widget and the verdicts below share it
def evidence(claim):
    if claim == "free if not used":
        rows = [{"driver": d, "none": cost(d, (), "none"), "rfc-v2, no fields": cost(d, (), "rfc-v2"),
                 "btf-hints (driver fills anyway)": cost(d, (), "btf-hints")} for d in drivers.names()]
    elif claim == "cheap if used":
        rows = [{"driver": d, "unrolled (rfc-v2)": cost(d), "called (patch-v3)": cost(d, design="patch-v3"),
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
    ax = table.plot.bar(figsize=(7.5, 3.4), rot=0, color=list(plots.OKABE_ITO.values())[1:1 + table.shape[1]])
    ax.set_ylabel("ns per packet" if "worked" not in claim.value else "fraction of packets", fontsize=10)
    ax.tick_params(labelsize=9); ax.set_xlabel("driver", fontsize=10)
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig = ax.get_figure(); fig.tight_layout(); plt.close(fig)
    out.outputs = (); out.append_display_data(fig); out.append_display_data(table)
claim.observe(redraw, names="value"); redraw()
W.VBox([claim, out])""", "claims-widget"),
    ("md", """## The subset claim, measured

The cover letter's central pro: "users can use a small subset of metadata which is more efficient than
the BTF id approach where all metadata has to be exposed for every frame". **Predict**: with one field
asked, is a kfunc program cheaper than BTF hints on ice? On bnxt?"""),
    ("code", """from xdplab.designs import field_cost_sweep
from xdplab.viz.fields import field_cost
from xdplab.claims import claim
sweep = field_cost_sweep(("ice", "bnxt"), ("btf-hints", "rfc-v2", "merged"), packets=5)
display(field_cost(sweep))
for key in ("subset-skips-an-expensive-field", "subset-of-one-cheap-field"):
    c = claim(key)
    print(("HOLDS: " if c.holds(c.value()) else "DOES NOT HOLD: ") + c.text())""", "subset-claim"),
    ("md", """**Notice that** the kfunc lines climb with every field while BTF hints stay flat: the claim is right
about the *shape*. Whether a subset wins depends on what it skips: BTF hints pay bnxt's locked timestamp on
every frame, so any subset without it wins by tens of ns; on ice every field is cheap and the kfunc
program's own `bpf_xdp_adjust_meta` call and stores make it dearer than the driver's fill."""),
    ("md", """**Predict** before running the next cell: which of the four drivers got a timestamp to an AF_XDP
socket in the RFC's era, and on which drivers is a device-bound program that asks for no field free?"""),
    ("code", """worked = evidence("what actually worked in 2022")
free = evidence("free if not used")
print("drivers delivering to AF_XDP in the RFC's era:", [d for d in worked.index if worked.loc[d].iloc[0] == 1.0])
print("'free if not used' holds (rfc-v2 with no fields costs the same as none) on:",
      [d for d in free.index if abs(free.loc[d, "rfc-v2, no fields"] - free.loc[d, "none"]) < 0.01])""", "verdicts"),
    ("md", answer("""The printed lists are the library's answer. Drivers missing from the first list passed
`meta_valid=false` to `xdp_prepare_buff` in 2022 (see [04 §5](04-metadata-delivery.ipynb)): whatever they
computed had nowhere to go. "Free if not used" is a property of the design -- no kfunc call, nothing
unrolled -- so it should hold on every driver.""")),
    ("md", """**Cons** in the cover letter -- forwarding needs explicit handling (programs must agree on a layout) and
TX is unclear -- are about interfaces, not cycles. The review went another way: Alexei asked that inlining
be done generically rather than by drivers, PATCH v2 dropped unrolling, and Linux 6.3 merged plain calls
through `xdp_metadata_ops` (the "merged" design here). The history, with each reviewer's words:
[07-timeline](07-timeline.ipynb)."""),
    ("code", """quiz(("Does a device-bound program that asks for no field cost more than the baseline?",
      ["no: free if not used", "yes"],
      "no: free if not used" if all(abs(free.loc[d, "rfc-v2, no fields"] - free.loc[d, "none"]) < 0.01 for d in free.index) else "yes",
      "nothing is unrolled or called when no kfunc is called."))""", "quiz"),
]

# Review positions: quoted verbatim from the reply files in the project's shared rfc/v2/replies/
# (Message-ID and Date headers as given there; lore URL = https://lore.kernel.org/all/<Message-ID>/).
REVIEWS = (
    ("2022-11-04", "Alexei Starovoitov", "RFC v2 08/14", "20221105004005.pfdsaitg6phb6vxm@macbook-pro-5.dhcp.thefacebook.com",
     "I guess it works for preserving r1, but r2-r5 are gone and r6-r9 cannot be touched. [...] imo we need push/pop insns."),
    ("2022-11-07", "Martin KaFai Lau", "RFC v2 06/14", "187e89c3-d7de-7bec-c72e-d9d6eb5bcca0@linux.dev",
     "Can the xdp prog still change the metadata through xdp->data_meta?"),
    ("2022-11-09", "Toke Høiland-Jørgensen", "RFC v2 04/14", "87iljoz83d.fsf@toke.dk",
     "I don't think it's realistic to expect driver developers to write this level of BPF instructions for everything."),
    ("2022-11-09", "Martin KaFai Lau", "RFC v2 06/14", "5a23b856-88a3-a57a-2191-b673f4160796@linux.dev",
     "It is more important for the verifier to see the xdp prog accessing it as a 'struct xdp_to_skb_metadata *' "
     "instead of xdp->data_meta which is a __u8 *"),
    ("2022-11-16", "Jakub Kicinski", "PATCH v1 06/11", "20221116131253.6703f1c6@kernel.org",
     "IMO we should split the xdp -> skb work from the pure HW data access in XDP."),
    ("2022-12-07", "Jakub Kicinski", "v3 01/12", "20221207202559.4d507ccf@kernel.org",
     "I recall folks had concerns about the function call overhead, and now we have 2 calls per field? :S"),
    ("2022-12-08", "Toke Høiland-Jørgensen", "v3 11/12", "875yellcx6.fsf@toke.dk",
     "Overhead: 1,754,153 pps / 2.86 ns/pkt [...] this is with calling three kfuncs/pkt"),
    ("2022-12-08", "Alexei Starovoitov", "v3 11/12", "CAADnVQ+=71Y+ypQTOgFTJWY7w3YOUdY39is4vpo3aou11=eMmw@mail.gmail.com",
     "imo the overhead is tiny enough that we can wait until generic 'kfunc inlining' infra is ready."),
    ("2022-12-08", "Alexei Starovoitov", "v3 11/12", "CAADnVQ+MyE280Q-7iw2Y-P6qGs4xcDML-tUrXEv_EQTmeESVaQ@mail.gmail.com",
     "I'd rather not add any more tech debt in the form of manual bpf asm generation."),
    ("2022-12-09", "Jakub Kicinski", "v3 11/12", "20221209084524.01c09d9c@kernel.org",
     "Is partial inlining hard? (inline just the check and generate a full call for the read, ending up with the same code as with _supported())"),
    ("2022-12-15", "Larysa Zaremba", "RFC v2 10/14", "Y5sIUI1jeN3c7iQA@lincoln",
     "S16_MAX jump crashes my system [...] reading a single hint in an unrolled way instead of calling 2 driver "
     "functions in a row, gives us a 2.2% performance boost."),
    ("2022-12-15", "Toke Høiland-Jørgensen", "RFC v2 10/14", "874jtweo56.fsf@toke.dk",
     "I agree that ideally we really should inline these functions. However, seeing as that may be a ways off[1], "
     "I suppose we'll have to live with the function call overhead for now."),
)
# Postings (kernel-facts §1.1, cover-letter Message-IDs) and releases.
POSTINGS = (
    ("2022-10-27", "RFC v1", "posting", "ndo_unroll_kfunc, xdp_buff->priv, veth only"),
    ("2022-11-04", "RFC v2", "posting", "bpf_patch, wrappers, export_to_skb, ice/mlx4/bnxt"),
    ("2022-11-15", "PATCH v1", "posting", "hidden push/pop; ice and bnxt dropped"),
    ("2022-11-21", "PATCH v2", "posting", "unrolling dropped: plain calls"),
    ("2022-12-13", "v4", "posting", "xdp_metadata_ops; _supported dropped"),
    ("2023-01-19", "v8", "posting", "the series merged for 6.3"),
    ("2023-04-23", "Linux 6.3", "merge", "XDP RX metadata kfuncs released"),
    ("2024-03-10", "Linux 6.8", "merge", "rx_vlan_tag kfunc; AF_XDP TX metadata (UNCONFIRMED in kernel-facts)"),
)


def _timeline_cells() -> list[tuple[str, ...]]:
    reviews = ",\n    ".join(repr(r) for r in REVIEWS)
    postings = ",\n    ".join(repr(p) for p in POSTINGS)
    return [
        opening("07-timeline", "07 · How the design changed: RFC v1 → RFC v2 → PATCH → 6.3 → 6.8",
                ["place RFC v2 in its series: what came before, what replaced it, what Linux merged",
                 "quote each reviewer's position (Alexei, Martin, Toke, Jakub, Larysa) with its date and link",
                 "connect each objection to what the simulation shows in notebooks 01-06"],
                """RFC v2 was not merged as posted. In three months the series went from "drivers write BPF
instructions" to "drivers provide plain C callbacks", and the xdp → skb path disappeared. The reasons are
in the review threads: who objected to what, when, and with which numbers.""",
                "the review threads of RFC v2, PATCH v1 and v3"),
        ("code", SETUP, "setup"),
        ("md", "## 1. The series on one axis"),
        ("code", f"""postings = pd.DataFrame([
    {postings}
], columns=["date", "version", "kind", "what changed"])
reviews = pd.DataFrame([
    {reviews}
], columns=["date", "reviewer", "on", "message_id", "quote"])
reviews["lore"] = "https://lore.kernel.org/all/" + reviews.message_id + "/"
events = [(r.date, r.version, r.kind) for r in postings.itertuples()]
events += [(r.date, r.reviewer.split()[0], "review") for r in reviews.drop_duplicates(["date", "reviewer"]).itertuples()]
plots.timeline(events, title="postings, reviews and releases")""", "timeline-figure"),
        ("code", "postings.style.hide(axis='index')", "postings"),
        ("md", """## 2. Each reviewer's position, in their words

Dated by the message it comes from (the date in the message's own header). Click through to lore."""),
        ("code", """rows = "".join(
    f"<tr><td style='white-space:nowrap;padding:2px 8px'>{r.date}</td><td style='padding:2px 8px'><b>{r.reviewer}</b><br>"
    f"<span style='color:#555'>on {r.on}</span></td><td style='padding:2px 8px'><i>“{r.quote}”</i><br>"
    f"<a href='{r.lore}' target='_blank'>lore</a></td></tr>" for r in reviews.itertuples())
print("reviewers quoted:", sorted(set(reviews.reviewer)))
HTML("<table style='font-size:12px;border-collapse:collapse'>" + rows + "</table>")""", "quotes"),
        ("md", """## 3. The numbers they argued with

Larysa measured rx_hash on ice, unrolled vs `BPF_EMIT_CALL` (packets per second). **Predict** the per-packet
difference in nanoseconds, then compare with the library's cost model for the timestamp."""),
        ("code", """unrolled_pps, call_pps = 41_264_360, 40_370_651      # Larysa Zaremba, 15 Dec 2022 (quoted above)
gain = (unrolled_pps - call_pps) / call_pps
ns = 1e9 / call_pps - 1e9 / unrolled_pps
from xdplab.claims import ice_unroll_saving_ns
from xdplab.cost import DEFAULT_PROFILE
model = ice_unroll_saving_ns(DEFAULT_PROFILE)           # the library's one home for this number
print(f"Larysa, rx_hash on ice: +{gain:.1%} pps = {ns:.2f} ns per packet saved by unrolling")
print(f"xdplab's model, rx_timestamp on ice, called (patch-v3) - unrolled (rfc-v2): {model:.2f} ns per packet")""",
         "numbers"),
        ("md", """The two numbers measure different things: Larysa's is one field that is a single load either way, so it is
pure call overhead; the model's timestamp call also runs ice's C conversion routine. **Notice that** everyone
agreed the difference was real but small (Toke: "~0.5ns function call overhead");
the disagreement was about *who writes the instructions*. Alexei did not want drivers hand-writing BPF
("tech debt in the form of manual bpf asm generation") and preferred to wait for generic kfunc inlining;
Toke wanted helpers rather than raw instructions; Jakub wanted the skb part split out and questioned the
`_supported()` calls. PATCH v2 (21 Nov 2022) dropped unrolling; v4 moved the callbacks into
`xdp_metadata_ops`; Linux 6.3 shipped plain calls."""),
        ("md", """## 4. What each objection looks like in the simulation

| objection | where to see it |
|---|---|
| R2–R5 only, push/pop (Alexei, 08/14) | [02 §6](02-unrolling.ipynb): the register map |
| hand-written BPF in drivers (Toke, Alexei) | [02 §7](02-unrolling.ipynb): four defects in 20 instructions |
| S16_MAX crash (Larysa) | [01 §4](01-bpf-and-bpf-patch.ipynb), the tour's posted variant |
| export_to_skb layout and data_meta (Martin, Jakub) | [04 §3-4](04-metadata-delivery.ipynb) |
| call overhead (Toke, Jakub, Larysa) | [05](05-cost-and-designs.ipynb) and section 3 above |"""),
        ("code", """quiz(("Who asked for push/pop instructions instead of xdp_kfunc_call_preserving_r1?",
      sorted(set(reviews.reviewer)), reviews[reviews.quote.str.contains("push/pop")].reviewer.iloc[0],
      "on RFC v2 08/14, the day after the posting."),
     ("Which version dropped kfunc unrolling?", list(postings.version),
      postings[postings["what changed"].str.contains("unrolling dropped")].version.iloc[0],
      "per-device kfuncs became plain calls."))""", "quiz"),
    ]


NOTEBOOKS["07-timeline"] = _timeline_cells()

GLOSSARY = """# Glossary

Words the course uses, in the sense the RFC uses them. Back to the [tour](00-tour.ipynb).

**AF_XDP** — a socket type (`XDP_REDIRECT` into an `XSKMAP`) that hands raw frames to user space through
shared rings; the program can leave metadata in front of each frame for the user to read (RFC v2 05/14).

**BTF hints** — the alternative the RFC argued against: the driver writes a BTF-described struct of all
hints in front of every packet; the program and user space read it by BTF id.

**container_of / wrapper** — each driver embeds `struct xdp_buff` as the first member of a bigger struct
(`ice_xdp_buff`, ...); the ctx pointer then *is* the wrapper's address (RFC v2 03/09/11/13).

**ctx rewrite** — the verifier's `convert_ctx_access`: loads from the UAPI `struct xdp_md` become loads from
the kernel's `struct xdp_buff` (e.g. `data` at a different offset and width).

**data_meta** — the pointer to the metadata area just in front of the packet data; `bpf_xdp_adjust_meta`
moves it into the headroom. Drivers that pass `meta_valid=false` have none.

**device-bound** — loaded with `BPF_F_XDP_HAS_METADATA` and `prog_ifindex`: the program's instructions are
specialised for one device type and may only be attached to such a device (RFC v2 02/14).

**export_to_skb** — `bpf_xdp_metadata_export_to_skb`: writes `struct xdp_to_skb_metadata` (random layout and
magic) into the metadata so that the skb built later gets the timestamp (RFC v2 06/14; dropped in PATCH v2).

**KF_UNROLL** — the kfunc flag (RFC v2 02/14) that tells the verifier's fixup pass to ask the bound driver to
unroll calls of this kfunc.

**kfunc** — a kernel function a BPF program may call (`BPF_PSEUDO_KFUNC_CALL`, resolved by BTF id).

**PHC** — PTP hardware clock: the NIC's own clock that stamps packets; drivers cache its time to extend
short stamps (ice: 32-bit ns; bnxt: 32-bit; mlx4: 48-bit cycles).

**R0–R10** — BPF registers: R0 return value, R1–R5 arguments (clobbered by calls), R6–R9 callee-saved, R10 the
read-only frame pointer. Unrolled code may write only R0 and R2–R5.

**unroll** — replacing a kfunc call at load time by the instructions of its body, written by the driver.

**xlated** — the program as the kernel runs it after loading (`bpftool prog dump xlated`): ctx rewritten,
map fds replaced, kfuncs unrolled.
"""


# Issue 14: every notebook shows a program the verifier refuses, with the kernel's log.  One per
# notebook, chosen for its topic: (why it is refused, the program in LLVM syntax, the kernel's message).
REFUSALS = {
    "00-tour": ("it reads byte 36 of the packet without comparing against `data_end` first",
                "r2 = *(u32 *)(r1 + 0)\nr0 = *(u8 *)(r2 + 36)\nr0 = 2\nexit", "R2 offset is outside of the packet"),
    "01-bpf-and-bpf-patch": ("a jump leaves the program: what an unresolved placeholder would do, caught at load",
                             "r0 = 2\nif r0 == 0 goto +5\nexit", "jump out of range from insn 1 to 7"),
    "02-unrolling": ("it reads R2 after a call: R1-R5 are dead after every call, which is why an unroll may use "
                     "R2-R5 freely", "call 8\nr0 = r2\nexit", "R2 !read_ok"),
    "03-timestamps": ("it reads a ctx offset that `struct xdp_md` does not have (it is 24 bytes)",
                      "r0 = *(u32 *)(r1 + 28)\nexit", "invalid bpf_context access off=28 size=4"),
    "04-metadata-delivery": ("it reads the metadata area without comparing `data_meta` against `data`",
                             "r2 = *(u32 *)(r1 + 8)\nr3 = *(u32 *)(r1 + 0)\nr0 = *(u32 *)(r2 + 0)\nr0 = 2\nexit",
                             "R2 offset is outside of the packet"),
    "05-cost-and-designs": ("it does arithmetic on `data_end`, which the verifier forbids (a bounds check must "
                            "compare against it, not move it)", "r3 = *(u32 *)(r1 + 4)\nr3 += 8\nr0 = 2\nexit",
                            "R3 pointer arithmetic on pkt_end prohibited"),
    "06-design-review": ("it exits without setting R0: an XDP program must return an action",
                         "exit", "R0 !read_ok"),
    "07-timeline": ("it dereferences a number: only pointers the verifier has typed may be loaded through",
                    "r2 = 4096\nr0 = *(u32 *)(r2 + 0)\nexit", "R2 invalid mem access 'scalar'"),
}


def refusal_cells(name: str) -> list[tuple[str, ...]]:
    why, program, message = REFUSALS[name]
    return [
        ("md", f"""## The verifier says no

Before any of this runs, the kernel's verifier checks the program (xdplab runs the same checks inside
`prog_load`, `xdplab.kernel.verifier`). **Predict**: this program is refused because {why}. Which
instruction does the log point at? The log below is the kernel's level-2 log: the register state after each
instruction, in the kernel's notation (`R2_w=pkt(off=0,r=0,imm=0)`: a packet pointer, no bytes proven yet)."""),
        ("code", f"""from xdplab.kernel.verifier import verify
from xdplab.bpf import assemble as _assemble
result = verify(_assemble({program!r}), log_level=2)
print("accepted:", result.accepted, "| insn", result.insn, "|", result.error)
print(result.log)""", "refused-program"),
        ("md", f"""**Notice that** the error is the kernel's own text (`{message}`) and that `Lab(program=...)` and
`Kernel.prog_load` refuse such a program with a `LoadError` carrying this result, before any packet runs."""),
    ]


for _name in REFUSALS:
    NOTEBOOKS[_name] = NOTEBOOKS[_name] + refusal_cells(_name)


def build() -> None:
    out_dir = ROOT / "notebooks"
    for name, cells in NOTEBOOKS.items():
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        ids: set[str] = set()
        for k, (kind, src, *tag) in enumerate(cells):
            cell = nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src)
            cell["id"] = f"{name[:2]}-{tag[0]}" if tag else f"{name}-{k}"
            if tag and tag[0] == "setup":      # imports: collapsed in JupyterLab, so the lesson comes first
                cell.metadata["jupyter"] = {"source_hidden": True}
            if cell["id"] in ids:
                raise ValueError(f"{name}: duplicate cell id {cell['id']}")
            ids.add(cell["id"])
            nb.cells.append(cell)
        nbformat.validate(nb)
        nbformat.write(nb, out_dir / f"{name}.ipynb")
    (out_dir / "glossary.md").write_text(GLOSSARY)


if __name__ == "__main__":
    build()
