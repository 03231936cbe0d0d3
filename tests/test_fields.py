"""Metadata fields beyond the timestamp (issue 16): rx_hash and rx_vlan_tag from each driver's
descriptor bytes, per design and kernel release; the consumer's per-field columns equal the
truth, <NA> with the errno where the kernel gives one; both engines agree."""
from __future__ import annotations

import numpy as np
import pytest

import xdplab
from xdplab.consumer import MetaField, MetaLayout, decode_field
from xdplab.traffic import ETH_P_8021AD, ETH_P_8021Q, Flow, Traffic

FIELDS = ("rx_timestamp", "rx_hash", "rx_vlan_tag")
MIX = [Flow(vlan=(ETH_P_8021Q, 0x2005)), Flow("2001:db8::1", "2001:db8::2", "tcp", 40000, 443),
       Flow(proto="icmp"), Flow("10.1.1.1", "10.2.2.2", "tcp", 1, 2), Flow("2001:db8::7", "2001:db8::9", "udp"),
       Flow(vlan=(ETH_P_8021AD, 9)), Flow(vlan=(ETH_P_8021Q, 0))]
EXTRA = ["rx_hash", "rx_hash_type", "rx_vlan_proto", "rx_vlan_tci", "hw_rx_hash", "hw_rx_hash_type",
         "hw_rx_vlan_proto", "hw_rx_vlan_tci", "meta_reason"]

# Independent expectations of the hash type each driver reports, by (l3, l4), typed in from
# kernel-facts-fields §1.4 (enum values), §2.1 (libie table rows), §2.2 (mlx4: no XDP_RSS_L4),
# §2.5 (veth: L4_ANY or NONE).
EXPECTED_TYPE = {
    "ice": {("ipv4", "udp"): 0x029, ("ipv6", "tcp"): 0x01A, ("ipv4", "icmp"): 0x109, ("ipv4", "tcp"): 0x019,
            ("ipv6", "udp"): 0x02A},
    "mlx4": {("ipv4", "udp"): 0x021, ("ipv6", "tcp"): 0x012, ("ipv4", "icmp"): 0x001, ("ipv4", "tcp"): 0x011,
             ("ipv6", "udp"): 0x022},
    "veth": {("ipv4", "udp"): 0x008, ("ipv6", "tcp"): 0x008, ("ipv4", "icmp"): 0x000, ("ipv4", "tcp"): 0x008,
             ("ipv6", "udp"): 0x008},
    # bnxt (§2.4): every simulated completion is PTP_W_TS (timestamped), an itype that is none of
    # TCP/UDP/ICMP: the L3 bit only, IPv6 by RX_CMP_FLAGS2_IP_TYPE
    "bnxt": {("ipv4", "udp"): 0x001, ("ipv6", "tcp"): 0x002, ("ipv4", "icmp"): 0x001, ("ipv4", "tcp"): 0x001,
             ("ipv6", "udp"): 0x002},
}


def run(driver, design="merged", fields=FIELDS, traffic=None, engine="auto", **kw):
    lab = xdplab.Lab(driver, fields, design=design, **{k: v for k, v in kw.items() if k == "kernel"})
    tr = traffic or Traffic.flows_of(MIX)
    return tr, lab.run(60, traffic=tr, engine=engine, assume_meta_support=True)


def flows_of(tr, df):
    return [tr.truth[i] for i in tr.flow_index(0, len(df))]


@pytest.mark.parametrize("driver", ["ice", "mlx4", "veth", "bnxt"])
def test_merged_fields_equal_the_truth(driver):
    tr, df = run(driver)
    assert (df.delivered_to == "af_xdp").all()
    truth = flows_of(tr, df)
    # the hash: the Toeplitz hash of the flow, computed independently of the drivers
    want_hash = [Flow.rss_hash(f) for f in (MIX[i] for i in tr.flow_index(0, len(df)))]
    assert df.rx_hash.astype("int64").tolist() == want_hash
    assert (df.rx_hash == df.hw_rx_hash).all()
    got_types = df.rx_hash_type.astype("int64").tolist()
    assert got_types == [EXPECTED_TYPE[driver][(t.l3, t.l4)] for t in truth]
    assert (df.rx_hash_type == df.hw_rx_hash_type).all()
    # ice returns -ENODATA for a stripped tag whose TCI is 0 ([D73] ice_txrx_lib.c 578-595);
    # veth reports any hw-accel tag, TCI 0 included (vlan_all != 0, if_vlan.h)
    stripped = np.array([t.vlan_stripped and (t.vlan_tci != 0 or driver == "veth") for t in truth])
    if driver in ("mlx4", "bnxt"):        # no vlan op upstream
        assert df.rx_vlan_tci.isna().all()
        assert df.meta_reason.astype(str).str.contains("rx_vlan_tag: -EOPNOTSUPP").all()
        return
    assert (df.rx_vlan_tci[stripped] == df.hw_rx_vlan_tci[stripped]).all()
    assert (df.rx_vlan_proto[stripped] == ETH_P_8021Q).all()
    assert df.rx_vlan_tci[~stripped].isna().all()
    assert df.meta_reason[~stripped].astype(str).str.contains("rx_vlan_tag: -ENODATA").all()
    assert (df.meta_reason[stripped].astype(str) == "").all()


@pytest.mark.parametrize("driver", ["ice", "veth"])
def test_vlan_stripping_off_gives_enodata_and_the_tag_stays_in_the_frame(driver):
    tr = Traffic.flows_of([Flow(vlan=(ETH_P_8021Q, 77))], vlan_strip=False)
    assert tr.rx_frame(0)[12:14] == b"\x81\x00"
    _, df = run(driver, traffic=tr)
    assert df.rx_vlan_tci.isna().all() and df.hw_rx_vlan_tci.eq(77).all()
    assert df.meta_reason.astype(str).str.contains("-ENODATA").all()


def test_kernel_release_narrows_the_support_matrix():
    _, new = run("ice", fields=("rx_hash",))
    assert new.rx_hash.notna().all()
    _, old = run("ice", fields=("rx_hash",), kernel="6.3")       # ice's ops came in 6.8
    assert old.rx_hash.isna().all() and old.meta_reason.astype(str).str.contains("EOPNOTSUPP").all()
    _, m = run("mlx4", fields=("rx_hash",), kernel="6.3")       # mlx4's in 6.3
    assert m.rx_hash.notna().all()
    with pytest.raises(ValueError, match="6.8"):
        xdplab.Lab("veth", ("rx_vlan_tag",), design="merged", kernel="6.3")
    with pytest.raises(ValueError, match="kernel"):
        xdplab.Lab("veth", design="merged", kernel="5.15")


def test_bnxt_hash_arrived_after_612():
    """bnxt's xmo_rx_hash is in 7.2 ([D72]) and not in 6.12 ([D612]): -EOPNOTSUPP before."""
    _, df = run("bnxt", fields=("rx_hash",), kernel="6.12")
    assert df.rx_hash.isna().all() and df.meta_reason.astype(str).str.contains("EOPNOTSUPP").all()
    _, df = run("bnxt", fields=("rx_hash",), kernel="7.2")
    assert df.rx_hash.notna().all()


@pytest.mark.parametrize("driver", ["veth", "ice", "mlx4", "bnxt"])
def test_btf_hints_fill_the_struct_for_every_frame(driver):
    tr, df = run(driver, design="btf-hints", fields=())
    truth = flows_of(tr, df)
    assert df.rx_hash.astype("int64").tolist() == [t.rss_hash for t in truth]
    assert df.rx_vlan_tci.astype("int64").tolist() == [t.reported_tag[1] for t in truth]
    assert df.btf_full_id.notna().all()
    # xdp_hints_flags (xdp-hints RFCv2 04/18): hash type in bits 5:4 (L4 = 3, L3 = 2), bit 8 VLAN
    # present, bit 9 its proto 802.1Q, bit 16 i40e's timestamp bit; typed in from kernel-facts-fields §3.2
    want = [(3 << 4 if t.l4 in ("tcp", "udp") else 2 << 4) | ((1 << 8 | 1 << 9) if t.vlan_stripped else 0)
            | (1 << 16) for t in truth]
    assert df.xdp_hints_flags.astype("int64").tolist() == want


@pytest.mark.parametrize("driver", ["veth", "ice", "mlx4", "bnxt"])
@pytest.mark.parametrize("design", ["merged", "btf-hints"])
def test_scalar_equals_batch_on_the_field_columns(driver, design):
    fields = FIELDS if design == "merged" else ()
    tr = Traffic.flows_of(MIX, seed=3)
    lab = xdplab.Lab(driver, fields, design=design)
    a = lab.run(30, traffic=tr, engine="scalar", assume_meta_support=True)
    b = lab.run(30, traffic=tr, engine="batch", assume_meta_support=True)
    assert list(a.columns) == list(b.columns)
    for col in a.columns:
        if col == "cost_ns":
            continue
        assert a[col].astype(object).map(repr).tolist() == b[col].astype(object).map(repr).tolist(), col


def test_columns_respect_c_types():
    rows = np.array([[0xFF, 0xFF, 0xFF, 0xFF, 0x81, 0x00, 0x05, 0x00]], np.uint8)
    assert decode_field(rows, MetaField("e", 0, 4, signed=True)).tolist() == [-1]
    assert decode_field(rows, MetaField("u", 0, 4)).tolist() == [0xFFFFFFFF]
    assert decode_field(rows, MetaField("p", 4, 2, byteorder="big")).tolist() == [0x8100]
    assert decode_field(rows, MetaField("b", 6, 1, bits=3, bit_offset=0)).tolist() == [5]
    tr, df = run("ice", fields=("rx_hash",))
    assert str(df.rx_hash.dtype) == "UInt32" and str(df.hw_rx_hash_type.dtype) == "UInt32"


def test_existing_columns_are_unchanged_by_the_new_ones():
    df = xdplab.Lab("ice").run(10)
    assert list(df.columns[:11]) == ["packet", "t_ns", "hw_time_ns", "rx_timestamp", "error_ns", "insns", "cost_ns",
                                     "action", "delivered_to", "meta_len", "reason"]
    assert str(df.rx_timestamp.dtype) == "uint64" and (df.meta_len == 8).all()


def test_user_object_layout_from_btf():
    lab = xdplab.Lab("ice", design="merged", program="data/programs/xdp_meta63.o", meta_struct="xdp_meta")
    assert isinstance(lab.meta_layout, MetaLayout) and lab.meta_layout.size == 24
    df = lab.run(10, traffic=Traffic.make(3, proto="tcp"))
    assert (df.rx_timestamp == df.hw_time_ns).all()
    assert (df.rx_hash == df.hw_rx_hash).all() and (df.rx_hash_type == 0x019).all()
    with pytest.raises(ValueError, match="meta_struct"):
        xdplab.Lab("ice", design="merged", program="data/programs/xdp_meta63.o", meta_struct="nope")


# ------------------------------------------------------------------ the subset claim, measured
@pytest.fixture(scope="module")
def sweep():
    from xdplab.designs import field_cost_sweep
    return field_cost_sweep(packets=6)


def test_sweep_covers_every_driver_and_design(sweep):
    assert set(sweep.driver) == set(xdplab.drivers.names())
    assert set(sweep.design) == {"none", "btf-hints", "rfc-v2", "patch-v3", "merged"}
    assert (sweep.delivered == 1.0).all()


def test_kfunc_designs_grow_with_the_fields_used(sweep):
    """Each field a kfunc design asks for costs at least the ctx argument, the call (or an
    unrolled body of one instruction or more) and the store into the metadata: >= 3 more
    instructions executed, and more ns."""
    for (drv, design), g in sweep[sweep.design.isin(["rfc-v2", "patch-v3", "merged"])].groupby(["driver", "design"]):
        g = g.sort_values("n_fields")
        assert (np.diff(g.insns) >= 3).all(), (drv, design, g.insns.tolist())
        assert (np.diff(g.cost_ns) > 0).all(), (drv, design, g.cost_ns.tolist())


def test_a_program_asking_nothing_costs_what_none_costs(sweep):
    base = sweep[sweep.design == "none"].set_index("driver").cost_ns.groupby(level=0).first()
    zero = sweep[(sweep.n_fields == 0) & sweep.design.isin(["rfc-v2", "patch-v3", "merged"])]
    for _, row in zero.iterrows():
        assert row.cost_ns == pytest.approx(base[row.driver])


def test_btf_hints_is_flat_at_all_fields(sweep):
    """The driver fills the whole struct for every frame: the cost does not depend on what the
    program reads, and it is above the no-metadata floor (the fill is paid)."""
    for drv, g in sweep[sweep.design == "btf-hints"].groupby("driver"):
        assert g.cost_ns.max() - g.cost_ns.min() < 1e-9 and g.insns.nunique() == 1, drv
        none = sweep[(sweep.design == "none") & (sweep.driver == drv)].cost_ns.iloc[0]
        assert g.cost_ns.iloc[0] > none, drv


def test_field_cost_plot(sweep):
    import matplotlib
    matplotlib.use("Agg")
    from xdplab.viz.figcheck import figure_problems
    from xdplab.viz.fields import field_cost
    fig = field_cost(sweep)
    assert len([a for a in fig.axes if a.get_visible()]) == len(set(sweep.driver))
    assert figure_problems(fig) == []
    with pytest.raises(ValueError, match="missing columns"):
        field_cost(sweep.drop(columns=["n_fields"]))


def test_generated_programs_verify_for_shaped_traffic():
    """Programs for shaped traffic (match="any") pass the kernel verifier's rules too."""
    import itertools

    from xdplab.kernel.kfuncs import TABLES
    from xdplab.kernel.maps import BpfMap
    from xdplab.kernel.verifier import verify
    from xdplab.programs import ALL_DESIGNS, FIELDS_BY_DESIGN, xdp_metadata_program
    xsk = {3: BpfMap("xsk", 17, 4, 4, 64, 1, 0xFFFF888000100000)}
    for design in ALL_DESIGNS:
        offered = FIELDS_BY_DESIGN[design]
        for k in range(len(offered) + 1):
            for sub in itertools.permutations(offered, k):
                for path in ("af_xdp", "skb"):
                    r = verify(xdp_metadata_program(design, sub, path=path, match="any"), maps=xsk,
                               kfuncs=TABLES.get(design))
                    assert r.accepted, (design, sub, path, r.error)


def test_veth_xdp_frame_path_gives_enodata_for_every_field():
    """veth's ops read the skb; on the xdp_frame path it is NULL ([D73] veth.c 656): -ENODATA."""
    lab = xdplab.Lab("veth", FIELDS, design="merged", driver_options={"xdp_frame": True})
    for engine in ("scalar", "batch"):
        df = lab.run(8, traffic=Traffic.flows_of(MIX), engine=engine)
        assert (df.rx_timestamp == 0).all() and df.rx_hash.isna().all() and df.rx_vlan_tci.isna().all()
        assert df.meta_reason.astype(str).str.contains("rx_hash: -ENODATA").all()
        assert df.meta_reason.astype(str).str.contains("rx_vlan_tag: -ENODATA").all()


@pytest.mark.parametrize("driver", ["veth", "ice", "mlx4", "bnxt", "mlx5"])
def test_rfc_v2_model_fields_equal_the_truth(driver):
    """The RFC pattern extended (MODEL): by-value getters, 0 = none (the design cannot say
    why).  Every driver here can read the hash; only veth, ice and mlx5 have a VLAN source."""
    tr = Traffic.flows_of(MIX)
    df = xdplab.Lab(driver, ("rx_hash", "rx_vlan_tag"), design="rfc-v2").run(40, traffic=tr, assume_meta_support=True)
    flows = [MIX[i] for i in tr.flow_index(0, 40)]
    assert df.rx_hash.astype("int64").tolist() == [f.rss_hash() for f in flows]
    want_tci = [f.vlan[1] if (f.vlan and f.vlan[0] == ETH_P_8021Q and driver in ("veth", "ice", "mlx5")) else 0
                for f in flows]
    assert df.rx_vlan_tci.astype("int64").tolist() == want_tci
    assert (df.rx_vlan_proto[np.array(want_tci) != 0] == ETH_P_8021Q).all()
    assert df.meta_reason.astype(str).eq("").all()


@pytest.mark.parametrize("driver", ["veth", "ice", "mlx4", "bnxt", "mlx5"])
@pytest.mark.parametrize("design,kernel", [("merged", None), ("merged", "6.3"), ("rfc-v2", None)])
def test_field_support_agrees_with_what_a_run_delivers(driver, design, kernel):
    """The static support matrix (for the fields selector) against the consumer's columns of a
    run on a stripped-tag UDP flow: supported fields carry a value, the others <NA> (merged)
    or 0 (the RFC pattern)."""
    from xdplab.designs import field_support
    sup = field_support(driver, design, kernel=kernel)
    fields = tuple(f for f in FIELDS if kernel is None or f != "rx_vlan_tag")
    if kernel:
        assert sup["rx_vlan_tag"] is not None
    df = xdplab.Lab(driver, fields, design=design, kernel=kernel).run(
        6, traffic=Traffic.flows_of([Flow(vlan=(ETH_P_8021Q, 7))]), assume_meta_support=True)
    for f in fields:
        col = {"rx_timestamp": "rx_timestamp", "rx_hash": "rx_hash", "rx_vlan_tag": "rx_vlan_tci"}[f]
        got = df[col]
        has = got.notna() & (got != 0) if f != "rx_timestamp" else got != 0
        if f == "rx_timestamp" and driver == "veth" and design == "merged":
            continue      # veth's op reads skb_hwtstamps, 0 on a veth skb: supported, no value
        assert bool(has.all()) == (sup[f] is None), (f, sup[f], got.tolist())
