"""The backend plugin: every registered backend keeps the declared protocol, the registry is
the only list of them, and a name it does not know is an error, never a fallback."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.backends import registry
from bench.backends.protocol import Backend, BackendSpec
from bench.backends.workload import Workload
from bench.run import runner, worker
from tests.conftest import REPO

TOY = "tests.fixtures.toy_backend"


def protocol_methods() -> dict[str, list[str]]:
    """Each method the protocol declares -> its parameter names (``self`` aside)."""
    return {
        name: list(inspect.signature(fn).parameters)[1:]
        for name, fn in vars(Backend).items()
        if inspect.isfunction(fn) and not name.startswith("_")
    }


def required_workload_attributes() -> list[str]:
    """Attributes ``Workload`` declares without a default: each backend's workload sets them."""
    return [a for a in Workload.__annotations__ if not hasattr(Workload, a)]


def backend_source(package: str) -> Path:
    found = importlib.util.find_spec(f"{package}.backend")  # imports the package __init__ only
    assert found is not None and found.origin, f"{package}.backend not found"
    return Path(found.origin)


def protocol_gaps(path: Path) -> list[str]:
    """What a backend module lacks of the protocol, read from its source (so no framework is
    imported): each method with the protocol's parameters, ``SPEC``, and a ``Workload``
    subclass that defines every abstract method and sets every required attribute."""
    tree = ast.parse(path.read_text(), str(path))
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    gaps = []
    for name, params in protocol_methods().items():
        fn = functions.get(name)
        if fn is None:
            gaps.append(f"no function {name}()")
            continue
        found = [a.arg for a in fn.args.posonlyargs + fn.args.args]
        if found != params:
            gaps.append(f"{name}({', '.join(found)}): expected ({', '.join(params)})")
    names = {
        a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names
    }
    names |= {
        t.id
        for n in tree.body
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    gaps += [f"no {attr}" for attr in Backend.__annotations__ if attr not in names]
    workloads = [
        n
        for n in tree.body
        if isinstance(n, ast.ClassDef)
        and any(isinstance(b, ast.Name) and b.id == "Workload" for b in n.bases)
    ]
    if not workloads:
        return [*gaps, "no Workload subclass"]
    for cls in workloads:
        defined = {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}
        gaps += [f"{cls.name}.{m}() missing" for m in Workload.__abstractmethods__ - defined]
        assigned = {
            t.attr
            for n in ast.walk(cls)
            if isinstance(n, ast.Assign)
            for t in ast.walk(n)
            if isinstance(t, ast.Attribute)
            and isinstance(t.value, ast.Name)
            and t.value.id == "self"
        }
        assigned |= {
            t.id
            for n in cls.body
            if isinstance(n, ast.Assign)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        gaps += [
            f"{cls.name} never sets {a}"
            for a in required_workload_attributes()
            if a not in assigned
        ]
    return gaps


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> str:
    """A toy backend registered the way a real one is: one line in the registry."""
    monkeypatch.setitem(registry.BACKENDS, "toy", TOY)
    return "toy"


def test_the_protocol_declares_what_the_worker_and_cell_call():
    # Renaming or dropping one of these breaks the worker; this fixes the contract's shape.
    assert protocol_methods() == {
        "setup": ["device", "cluster"],
        "teardown": [],
        "version": [],
        "probe": ["device"],
        "build": ["req"],
        "calibration_matmul": ["precision", "n"],
        "matmul_settings": ["device"],
        "all_gather_text": ["text"],
    }
    assert "sync_method" in required_workload_attributes()


@pytest.mark.parametrize("name", registry.names())
def test_each_registered_backend_keeps_the_protocol(name: str):
    spec = registry.spec(name)
    assert isinstance(spec, BackendSpec) and spec.name == name
    assert protocol_gaps(backend_source(registry.BACKENDS[name])) == []


def test_the_check_finds_a_backend_that_breaks_the_protocol(tmp_path: Path):
    broken = backend_source(TOY).read_text()
    broken = broken.replace("def probe(device: str)", "def probe(kind: str)")
    broken = broken.replace("def teardown() -> None:\n    pass\n", "")
    broken = broken.replace('        self.sync_method = "toy sync"\n', "")
    (tmp_path / "backend.py").write_text(broken)
    assert protocol_gaps(tmp_path / "backend.py") == [
        "no function teardown()",
        "probe(kind): expected (device)",
        "ToyWorkload never sets sync_method",
    ]


def test_names_and_specs_import_no_framework():
    # What the CLI and the scenario read must not pay for (or need) a framework.
    code = (
        "import sys\n"
        "from bench.backends import registry\n"
        "specs = [registry.spec(n) for n in registry.names()]\n"
        "print(sorted(m for m in ('jax', 'tensorflow', 'keras') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_an_unknown_framework_is_an_error_never_a_fallback():
    for lookup in (registry.spec, registry.load):
        with pytest.raises(registry.UnknownBackend) as caught:
            lookup("torch")
        assert (
            str(caught.value)
            == "unknown framework 'torch'; expected one of: jax, tensorflow, litert"
        )
    assert registry.find("torch") is None  # readers of old or foreign runs: no crash
    backend, info = worker.hello("torch", "cpu")
    assert backend is None and not info["present"]
    assert info["reason"].startswith("unknown framework 'torch'")
    with pytest.raises(registry.UnknownBackend):
        runner.worker_env("torch", "cpu")


def test_worker_environment_comes_from_the_backends_spec():
    jax_gpu = runner.worker_env("jax", "gpu")
    assert jax_gpu["JAX_PLATFORMS"] == "cuda,cpu"  # the CPU computes the parity reference
    tf_cpu = runner.worker_env("tensorflow", "cpu", cpu_devices=4)
    assert tf_cpu["CUDA_VISIBLE_DEVICES"] == "-1" and tf_cpu["KERAS_BACKEND"] == "tensorflow"
    # TensorFlow splits the CPU itself from BENCH_CPU_DEVICES; JAX's variable is not its own.
    assert tf_cpu["BENCH_CPU_DEVICES"] == "4" and "JAX_NUM_CPU_DEVICES" not in tf_cpu


def test_a_new_backend_is_a_package_and_a_registry_line(toy: str):
    assert toy in registry.names()
    assert protocol_gaps(backend_source(TOY)) == []
    assert runner.worker_env(toy, "cpu")["TOY_BACKEND"] == "1"
    backend, info = worker.hello(toy, "cpu")
    assert backend is not None and info["present"] and info["version"] == "0.1"
    msg = {
        "cell_id": "c",
        "key": {
            "model": "mlp",
            "workload": "train",
            "framework": toy,
            "device": "cpu",
            "batch_size": 4,
            "precision": "float32",
            "input": "synthetic",
        },
        "model_args": {"num_numeric": 2, "num_categorical": 0, "hidden": [3]},
        "optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.0, "weight_decay": 0.0},
        "seed": 0,
        "measure": {
            "warmup_steps": 1,
            "min_steps": 3,
            "min_seconds": 0.0,
            "max_seconds": 5.0,
            "target_rel_ci": 1.0,
        },
    }
    record = worker.run_cell(backend, msg)
    assert record["status"] == "ok", record.get("traceback")
    assert record["metrics"]["step_time_s"]["method"].endswith(", toy sync")
    reason = record["metrics"]["xla_flops_per_example"]["unavailable"]
    assert reason == "no compiler cost analysis from the toy backend"


_LOAD_AND_CHECK = """
import inspect, json, sys
from bench.backends import registry
from bench.backends.protocol import Backend
name = sys.argv[1]
mod = registry.load(name)
bad = [
    m for m, fn in vars(Backend).items()
    if inspect.isfunction(fn) and not m.startswith("_")
    and list(inspect.signature(getattr(mod, m)).parameters)
    != list(inspect.signature(fn).parameters)[1:]
]
print(json.dumps({"bad": bad, "spec": mod.SPEC is registry.spec(name), "version": mod.version()}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", registry.names())
def test_each_backend_loads_with_the_protocols_signatures(name: str):
    # Its own process: TensorFlow and JAX never share one (bench's rule, kept in tests too).
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_AND_CHECK, name],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**runner.worker_env(name, "cpu")},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["bad"] == [] and found["spec"] and found["version"]


def test_frameworks_the_xla_axis_fixes_are_registered_backends():
    from bench.axes import BY_NAME

    fixed = BY_NAME["xla"].fixed
    assert fixed is not None and fixed[0] == "framework"
    assert set(fixed[1]) <= set(registry.names())
