"""The house rules of DESIGN.md §1, checked on the source: the import graph of xdplab/ (imports
inside functions included) has no circle, each layer imports only the layers below it, and no
module keeps mutable state at module level."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "xdplab"
SCENARIOS = ("xdplab.lab", "xdplab.batch", "xdplab.scalar", "xdplab.plan", "xdplab.designs", "xdplab.cost",
             "xdplab.traffic", "xdplab.programs", "xdplab.reasons", "xdplab.claims", "xdplab.summary")
FRONT = ("xdplab.cli", "xdplab.__main__", "xdplab.app")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def imports_of(name: str) -> set[str]:
    """Every xdplab module ``name`` imports, at module level or inside functions."""
    path = MODULES[name]
    package = name if _is_package(name) else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                sub = f"{target}.{a.name}"
                out.add(sub if sub in MODULES else target)
    return {m for m in out if m.startswith("xdplab")}


def _resolve(m: str) -> str:
    while m not in MODULES and "." in m:
        m = m.rpartition(".")[0]
    return m


GRAPH = {name: {_resolve(m) for m in imports_of(name)} - {name} for name in MODULES}


def test_no_import_circle():
    """Tarjan's strongly connected components: every component must be a single module
    (a package's __init__ re-exporting its own submodules is not a circle through them)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    circles: list[list[str]] = []

    def edges(v: str) -> set[str]:
        # a package __init__ importing its submodules is how Python packages work: skip those edges
        return {w for w in GRAPH[v] if not (_is_package(v) and w.startswith(v + "."))}

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in sorted(MODULES):
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


def _layer_violations(prefix: str, forbidden: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(src, dst) for src, dsts in GRAPH.items() if src == prefix or src.startswith(prefix + ".")
            for dst in dsts if any(dst == f or dst.startswith(f + ".") for f in forbidden)]


@pytest.mark.parametrize("layer, forbidden", [
    ("xdplab.bpf", ("xdplab.kernel", "xdplab.drivers", "xdplab.clocks", "xdplab.libbpf", "xdplab.viz",
                    *SCENARIOS, *FRONT)),
    ("xdplab.clocks", ("xdplab.bpf", "xdplab.kernel", "xdplab.drivers", "xdplab.viz", *SCENARIOS, *FRONT)),
    ("xdplab.kernel", ("xdplab.drivers", "xdplab.libbpf", "xdplab.viz", *SCENARIOS, *FRONT)),
    ("xdplab.drivers", ("xdplab.viz", "xdplab.libbpf", *SCENARIOS, *FRONT)),
    ("xdplab.profiles", ("xdplab.drivers", "xdplab.kernel", "xdplab.viz", *SCENARIOS, *FRONT)),
    ("xdplab.libbpf", ("xdplab.drivers", "xdplab.viz", *SCENARIOS, *FRONT)),
])
def test_layers_import_only_below(layer, forbidden):
    assert not _layer_violations(layer, forbidden)


def test_scenarios_never_reach_the_workbench_or_the_command_line():
    bad = [(s, d) for s in SCENARIOS if s in GRAPH for d in GRAPH[s]
           if d.startswith("xdplab.viz") or d in FRONT]
    assert not bad


def test_only_viz_imports_widgets_and_plots():
    bad = []
    for name, path in MODULES.items():
        if name.startswith("xdplab.viz"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            bad += [(name, m) for m in mods if m.split(".")[0] in ("ipywidgets", "matplotlib")]
    assert not bad


def test_no_mutable_state_at_module_level():
    """Constant tables are tuples or MappingProxyType; a module-level dict, list or set (a
    literal or a comprehension) is state someone can change at run time."""
    bad = []
    for name, path in MODULES.items():
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, ast.AnnAssign) and node.value is not None else []
            value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
            if isinstance(value, (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)):
                names = [t.id for t in targets if isinstance(t, ast.Name)]
                if names and names != ["__all__"]:
                    bad.append(f"{name}.{names[0]} (line {node.lineno})")
    assert not bad, f"module-level mutable values: {bad}"


RULES = {"extend_32b_ts": "xdplab.drivers.ice", "cqe_ts": "xdplab.drivers.mlx4", "get_rx_ts_p5": "xdplab.drivers.bnxt",
         "timecounter_cyc2time": "xdplab.clocks", "adjust_meta_result": "xdplab.kernel.xdp",
         "xdp_buff_init": "xdplab.kernel.xdp", "imported_hwtstamp": "xdplab.kernel.skb", "price": "xdplab.cost"}


@pytest.mark.parametrize("rule, home", sorted(RULES.items()))
def test_each_rule_is_defined_once_in_its_home(rule, home):
    def overload(node: ast.FunctionDef) -> bool:      # typing.overload stubs are not definitions
        return any(isinstance(d, ast.Name) and d.id == "overload" or isinstance(d, ast.Attribute) and d.attr == "overload"
                   for d in node.decorator_list)
    defined = [name for name, path in MODULES.items() for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.FunctionDef) and node.name == rule and not overload(node)]
    assert defined == [home]


@pytest.mark.parametrize("engine", ["xdplab.batch", "xdplab.scalar", "xdplab.lab", "xdplab.plan"])
def test_engines_restate_no_driver_arithmetic(engine):
    """The engines orchestrate: no driver constant, no timestamp mask or shift of their own."""
    import re
    text = MODULES[engine].read_text()
    hits = re.findall(r"\b(?:ICE|MLX4|MLX5|BNXT|VETH)_[A-Z_]+|\bM48\b|<< ?(?:16|32)\b|>> ?(?:16|32)\b|0x7FFFFFFF",
                      text)
    assert not hits, hits
