"""The layout is the architecture: imports go one way, from a layer to the layers below it.

Every ``import`` in ``bench`` is read from the source (function-level ones too, since a lazy
import is still a dependency), so a cycle or an upward import fails here before it becomes a
tangle. Layers, lowest first; a package may import its own modules and anything in a lower
layer, never a peer on the same rank nor anything above.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import bench

ROOT = Path(bench.__file__).parent

# (rank, packages or modules). Peers on one rank above 0 must not import each other.
LAYERS: list[tuple[int, tuple[str, ...]]] = [
    (
        0,
        (
            "bench",
            "bench.modeldef",
            "bench.runfolder",
            "bench.metrics",
            "bench.axes",
            "bench.text",
            "bench.optimizer",
            # The workload registry and each workload's declaration: facts, no measuring code.
            "bench.workloads",
        ),
    ),
    (1, ("bench.measure", "bench.platform")),
    (2, ("bench.inputs", "bench.serve")),
    (3, ("bench.backends",)),
    # What every workload's cell shares, then each workload's measuring code.
    (4, ("bench.workloads.cell",)),
    (
        5,
        (
            "bench.workloads.train.cell",
            "bench.workloads.predict.cell",
            "bench.workloads.serve.cell",
            "bench.workloads.generate.cell",
        ),
    ),
    (6, ("bench.run", "bench.read")),
    (7, ("bench.gate",)),
    # Results across commits: reads run folders through the gate's documents and judges
    # suspected changes with the gate's rule; the report draws its trend page from it.
    (8, ("bench.history",)),
    (9, ("bench.report", "bench.results", "bench.tune")),
    (10, ("bench.pipeline",)),
    (11, ("bench.cli",)),
    (12, ("bench.__main__",)),
]


def _module_name(path: Path) -> str:
    parts = ["bench", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every bench module ``path`` imports, anywhere in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "bench")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "bench":
                continue
            found.add(node.module)
            # ``from bench.report import svg`` imports the module bench.report.svg.
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                if _exists(candidate):
                    found.add(candidate)
    return found


def _exists(module: str) -> bool:
    rel = Path(*module.split(".")[1:])
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def _owner(module: str) -> tuple[int, str]:
    """The layer entry a module belongs to: its longest matching prefix."""
    best: tuple[int, str] | None = None
    for rank, names in LAYERS:
        for name in names:
            matches = module == name or (name != "bench" and module.startswith(name + "."))
            if matches and (best is None or len(name) > len(best[1])):
                best = (rank, name)
    if best is None:
        # bench.models is the model zoo, installed from models/: it sits with modeldef.
        return (0, "bench.models") if module.startswith("bench.models") else (0, "bench")
    return best


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(ROOT.rglob("*.py"))}


def test_every_module_belongs_to_a_layer():
    names = {name for _, names in LAYERS for name in names}
    for module in _graph():
        owner = _owner(module)[1]
        assert owner in names or owner == "bench.models", module


def test_no_module_imports_a_layer_above_or_a_peer():
    wrong = []
    for module, imported in _graph().items():
        rank, owner = _owner(module)
        for target in imported:
            t_rank, t_owner = _owner(target)
            if t_owner == owner:
                continue
            # Rank 0 is the foundation (registries, the run-folder format): its modules may
            # read each other; the cycle test still holds them to one direction.
            if t_rank > rank or (t_rank == rank and rank > 0):
                wrong.append(f"{module} (layer {rank}) imports {target} (layer {t_rank})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycles():
    graph = _graph()
    edges = defaultdict(set)
    for module, imported in graph.items():
        for target in imported:
            if target in graph and target != module:
                edges[module].add(target)
    # Tarjan-free check: depth-first search with colours, reporting the first cycle found.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            raise AssertionError("import cycle: " + " -> ".join(cycle))


def test_the_walker_sees_lazy_and_from_imports(tmp_path):
    # A check that cannot fail proves nothing: feed it a file with both shapes of import.
    source = tmp_path / "probe.py"
    source.write_text(
        "from bench.report import svg\n"
        "def f():\n"
        "    import bench.run.runner\n"
        "    from bench.read.runset import RunSet\n"
    )
    assert {"bench.report.svg", "bench.run.runner", "bench.read.runset"} <= _imports(source)


def test_every_package_is_installed():
    """pyproject lists the packages by hand: one left out imports from a checkout but is
    missing from an install (the device check installs bench before it runs)."""
    import tomllib

    listed = set(
        tomllib.loads((ROOT.parent / "pyproject.toml").read_text())["tool"]["setuptools"][
            "packages"
        ]
    )
    found = {_module_name(p.parent / "__init__.py") for p in ROOT.rglob("__init__.py")}
    assert found - {"bench.models"} <= listed, sorted(found - listed)
