"""Sweeps across machines as Kubeflow pipelines: machine kinds, the plan, the compiled pipeline
read back with the kfp SDK, and two real runs through ``kfp.local`` (subprocess runner)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench.cli import main
from bench.pipeline.machines import MachinesError, load_machines, parse_machines
from bench.pipeline.plan import plan_tasks
from bench.pipeline.tasks import LOST, TaskError, check, headline, summarize
from bench.run.scenario import load_scenario
from tests.conftest import REPO, bench_cmd

FIXTURES = REPO / "tests" / "fixtures" / "pipeline"
MACHINES = FIXTURES / "machines.yaml"
# Short measurements: the pipeline is under test here, not the numbers.
QUICK = [
    "measure.warmup_steps=2",
    "measure.min_steps=5",
    "measure.min_seconds=0",
    "measure.max_seconds=1",
    "measure.target_rel_ci=0.5",
]


def _sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


# -- machine kinds and the plan: pure, no kfp -------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("gpu: {count: 1}", "gpu[0].accelerator: required for gpu machines"),
        ("tpu: {accelerator: tpu-v5-lite-podslice, count: 4}", "tpu[0].topology: required"),
        (
            "tpu: {accelerator: tpu-v5-lite-podslice, topology: 4x4, count: 4}",
            "expected the 16 chips of topology 4x4",
        ),
        ("cpu: {memory: lots}", "cpu[0].memory: got 'lots'; expected a Kubernetes quantity"),
        ("cpu: {cpus: 4}", "cpu[0].cpus: unknown key; expected one of: name, accelerator"),
        ("fpga: {}", "fpga: unknown key; expected one of: cpu, gpu, tpu"),
        ("cpu: {accelerator: NVIDIA_L4}", "cpu[0]: a cpu machine takes no accelerator"),
        (
            "gpu: [{accelerator: NVIDIA_L4}, {accelerator: NVIDIA_L4}]",
            "two machine kinds are both named 'nvidia-l4x1'",
        ),
        ("- cpu", "expected a mapping of devices (cpu, gpu, tpu)"),
    ],
)
def test_bad_machines_files_say_where_and_what_is_expected(text, expected):
    with pytest.raises(MachinesError) as info:
        parse_machines(text, "m.yaml")
    assert str(info.value).startswith("m.yaml: ")
    assert expected in str(info.value)


def test_one_task_per_framework_device_and_machine_kind_covering_every_cell():
    loaded = load_scenario(REPO / "scenarios" / "tpu_train.yaml")
    tasks = plan_tasks(loaded, load_machines(MACHINES))
    # 2 frameworks x (1 cpu + 2 gpu + 1 tpu kinds) = 8 tasks.
    assert [t.name for t in tasks] == [
        "jax-tpu-tpu-v5-lite-podslice-2x4",
        "jax-gpu-l4x1",
        "jax-gpu-a100x2",
        "jax-cpu-cpu8",
        "tensorflow-tpu-tpu-v5-lite-podslice-2x4",
        "tensorflow-gpu-l4x1",
        "tensorflow-gpu-a100x2",
        "tensorflow-cpu-cpu8",
    ]
    for t in tasks:
        assert all(c.startswith(f"{t.framework}-{t.device}-") for c in t.cells)
    # Every cell runs once on each kind of its device: GPU cells twice (two kinds), others once.
    ran = [c for t in tasks for c in t.cells]
    for cell in loaded.cells:
        assert ran.count(cell.cell_id) == (2 if cell.key.device == "gpu" else 1)


def test_accelerator_cells_without_a_machine_kind_are_refused_before_kfp_loads():
    loaded = load_scenario(REPO / "scenarios" / "tpu_train.yaml")
    with pytest.raises(MachinesError) as info:
        plan_tasks(loaded, load_machines(None), "--machines")
    lines = str(info.value).splitlines()
    assert len(lines) == 2  # gpu and tpu, each with its cell count and an example
    assert lines[0].startswith("--machines: gpu: ") and "device: gpu cells (5)" in lines[0]
    assert "tpu: {accelerator: tpu-v5-lite-podslice, topology: 2x2, count: 4}" in lines[1]


# -- bench run --only: how a task runs its cells ----------------------------------------------


def test_run_only_selects_cells_and_refuses_unknown_ids(capsys):
    scenario = str(REPO / "scenarios" / "quickstart.yaml")
    ids = ["jax-cpu-train-bs32-float32-synthetic", "tensorflow-cpu-predict-bs256-float32-synthetic"]
    assert main(["run", scenario, "--only", ",".join(ids), "--dry-run"]) == 0
    listed = capsys.readouterr().out.split()
    assert [w for w in listed if "-cpu-" in w] == ids and "2 cells" in " ".join(listed)
    assert main(["run", scenario, "--only", "jax-cpu-train-bs33-float32-synthetic"]) == 2
    message = capsys.readouterr().err
    assert "has no cell 'jax-cpu-train-bs33-float32-synthetic'" in message
    assert "did you mean 'jax-cpu-train-bs32-float32-synthetic'?" in message


# -- without kfp ----------------------------------------------------------------------------


def test_bench_works_without_kfp_and_the_pipeline_command_names_the_extra():
    # kfp made unimportable: the rest of bench must not notice, and `bench pipeline` must say
    # how to install it. (A None entry in sys.modules makes an import raise ImportError.)
    code = (
        "import sys; sys.modules['kfp'] = None\n"
        "from bench.cli import main\n"
        "assert main(['validate', 'scenarios/quickstart.yaml']) == 0\n"
        "rc = main(['pipeline', 'compile', 'scenarios/quickstart.yaml', '--image', 'x', "
        "'-o', '/nonexistent/p.yaml'])\n"
        "print('EXIT', rc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert "EXIT 2" in done.stdout, done.stderr
    assert "install it with: pip install 'bench[pipelines]'" in done.stderr


# -- the compiled pipeline, read back with the kfp SDK ----------------------------------------


def _compiled(tmp_path: Path) -> tuple[dict, dict]:
    """(pipeline spec, kubernetes platform spec) of tpu_train.yaml compiled with MACHINES."""
    pytest.importorskip("kfp")
    from kfp import components

    out = tmp_path / "pipeline.yaml"
    args = ["pipeline", "compile", str(REPO / "scenarios" / "tpu_train.yaml"), "--image"]
    args += ["bench:test", "--machines", str(MACHINES), "-o", str(out), "--retries", "2"]
    assert main(args) == 0
    loaded = components.load_component_from_file(str(out))  # the SDK accepts it back
    assert loaded.name == "bench-tpu-train"
    spec, platform = list(yaml.safe_load_all(out.read_text()))
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_compiled_tasks_carry_the_resources_of_their_machine_kind(tmp_path):
    spec, k8s = _compiled(tmp_path)
    tasks = spec["root"]["dag"]["tasks"]
    executors = spec["deploymentSpec"]["executors"]
    by_name = {t["taskInfo"]["name"]: (key, t) for key, t in tasks.items()}

    def run_task(name: str) -> tuple[dict, dict, str, dict]:
        _, task = by_name[name]
        label = spec["components"][task["componentRef"]["name"]]["executorLabel"]
        container = executors[label]["container"]
        return task, container["resources"], container["image"], k8s.get(label, {})

    task, res, image, k = run_task("jax-gpu-a100x2")
    assert image == "bench:test"
    assert res["accelerator"]["resourceType"] == "NVIDIA_TESLA_A100"
    assert res["accelerator"]["resourceCount"] == "2"
    assert (res["resourceCpuRequest"], res["resourceCpuLimit"]) == ("24", "24")
    assert (res["resourceMemoryRequest"], res["resourceMemoryLimit"]) == ("170G", "170G")
    assert k["nodeSelector"]["labels"] == {"cloud.google.com/gke-spot": "true"}
    assert task["retryPolicy"]["maxRetryCount"] == 2
    assert task["cachingOptions"] == {}  # caching off: a rerun is a new measurement

    task, res, _, k = run_task("tensorflow-gpu-l4x1")
    assert (res["accelerator"]["resourceType"], res["accelerator"]["resourceCount"]) == (
        "NVIDIA_L4",
        "1",
    )
    assert "nodeSelector" not in k
    cells = task["inputs"]["parameters"]["cells"]["runtimeValue"]["constant"]
    assert cells == [
        "tensorflow-gpu-train-bs256-float32-synthetic",
        "tensorflow-gpu-train-bs2048-float32-synthetic",
    ]

    _, res, _, k = run_task("jax-tpu-tpu-v5-lite-podslice-2x4")
    assert (res["accelerator"]["resourceType"], res["accelerator"]["resourceCount"]) == (
        "google.com/tpu",
        "8",
    )
    assert k["nodeSelector"]["labels"] == {
        "cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
        "cloud.google.com/gke-tpu-topology": "2x4",
    }

    _, res, _, k = run_task("tensorflow-cpu-cpu8")
    assert "accelerator" not in res and "nodeSelector" not in k
    assert (res["resourceCpuLimit"], res["resourceMemoryLimit"]) == ("8", "32Gi")

    # summarize runs whatever became of the run tasks, and takes each one's run folder.
    _, summary = by_name["summarize"]
    assert summary["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert len(summary["dependentTasks"]) == 8
    assert len(summary["inputs"]["artifacts"]) == 8
    _, check = by_name["check"]
    assert check["dependentTasks"] == [by_name["summarize"][0]]


# -- what the summarize task does with what came back: in-process, no kfp ----------------------


def test_summary_names_missing_and_failed_cells_and_still_reports_the_rest(tmp_path):
    good = tmp_path / "good"
    shutil.copytree(REPO / "tests" / "golden" / "runs" / "quickstart-a", good)
    ids = [json.loads(line)["cell_id"] for line in (good / "cells.jsonl").read_text().splitlines()]
    lost = tmp_path / "lost"
    lost.mkdir()
    (lost / LOST).write_text(json.dumps({"reason": "bench run killed by signal 9"}))
    plan = [
        {"task": "a", "cells": [*ids, "jax-cpu-train-bs9-float32-synthetic"]},
        {"task": "b", "cells": ["tensorflow-gpu-train-bs8-float32-synthetic"]},
        {"task": "c", "cells": ["jax-tpu-train-bs8-float32-synthetic"]},
    ]
    found = {"a": str(good), "b": str(lost), "c": None}
    out = tmp_path / "out"
    done = summarize(plan, found, "throughput", str(out / "r.html"), str(out / "d.yaml"), str(out))
    assert done["missing"] == [
        "a/jax-cpu-train-bs9-float32-synthetic",
        "b/tensorflow-gpu-train-bs8-float32-synthetic",
        "c/jax-tpu-train-bs8-float32-synthetic",
    ]
    problems = {t["task"]: t["problem"] for t in done["tasks"]}
    assert problems == {
        "a": "",
        "b": "bench run killed by signal 9",
        "c": "the task delivered no run folder (it failed, or never ran)",
    }
    assert done["runs"] == ["a"] and (out / "a" / "run.json").is_file()
    assert "<html" in (out / "r.html").read_text()[:200].lower()
    assert done["headline"] == headline((out / "d.yaml").read_text())
    assert any(k.endswith(".examples_per_s") for k in done["headline"])


# -- real pipelines through kfp.local ---------------------------------------------------------


def _pipeline_run(scenario: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("kfp")
    args = ["pipeline", "run", str(scenario), "--local", "-o", str(out), *extra]
    return subprocess.run(bench_cmd(*args), cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.heavy
def test_local_pipeline_runs_the_same_cells_as_bench_run_and_writes_the_artifacts(tmp_path):
    scenario = REPO / "scenarios" / "quickstart.yaml"
    # JAX only, one batch size: one run task (the lost-task test below runs two frameworks).
    overrides = [*QUICK, "matrix.batch_size=[32]", "matrix.framework=[jax]"]
    done = _pipeline_run(scenario, tmp_path, *_sets(overrides))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # The cells bench run runs for the same scenario and overrides, in its order.
    planned = subprocess.run(
        bench_cmd("run", str(scenario), "--dry-run", *_sets(overrides)),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[:-2]
    assert planned == [
        "jax-cpu-train-bs32-float32-synthetic",
        "jax-cpu-predict-bs32-float32-synthetic",
    ]
    from bench.runfolder import load_run

    runs = sorted((tmp_path / "runs").iterdir())
    assert [r.name for r in runs] == ["jax-cpu-cpu4"]
    statuses = {c: r["status"] for run in runs for c, r in load_run(run).cells.items()}
    assert statuses == dict.fromkeys(planned, "ok")
    report = (tmp_path / "report.html").read_text()
    assert report.lstrip().lower().startswith("<!doctype html") and "quickstart" in report
    deploy = yaml.safe_load((tmp_path / "deploy.yaml").read_text())
    chosen = {d["workload"]: d for d in deploy["deployments"]}
    assert {d["source"]["cell"] for d in chosen.values()} == set(planned)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["cells_ok"] == 2 and metrics["cells_missing"] == 0
    for workload, d in chosen.items():
        assert metrics[f"mlp.{workload}.examples_per_s"] == d["expected"]["examples_per_s"] > 0
    assert "pipeline succeeded" in done.stdout


@pytest.mark.slow
@pytest.mark.heavy
def test_a_lost_task_leaves_the_others_intact_and_the_pipeline_names_what_is_missing(
    tmp_path, worker_env
):
    # tensorflow's task loses its bench run (SIGKILL, as a pod killed for memory); jax's task
    # records one ok and one crashed cell.
    done = _pipeline_run(FIXTURES / "lost_task.yaml", tmp_path, "--retries", "0")
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    text = re.sub(r"\s+", " ", done.stdout)
    assert (
        "task tensorflow-cpu-cpu4: 0/2 cells recorded; missing: "
        "tensorflow-cpu-train-bs8-float32-synthetic, tensorflow-cpu-train-bs9-float32-synthetic "
        "(bench run killed by signal 9 with 1 run folder(s))" in text
    )
    assert "task jax-cpu-cpu4: 2/2 cells recorded, 1 failed: jax-cpu-train-bs9" in text
    assert "Inner task failed: 'check'" in done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["counts"] == {"planned": 4, "missing": 2, "ok": 1, "failed": 1, "skipped": 0}
    from bench.runfolder import load_run

    kept = load_run(tmp_path / "runs" / "jax-cpu-cpu4").cells
    assert kept["jax-cpu-train-bs8-float32-synthetic"]["status"] == "ok"
    assert "injected crash" in kept["jax-cpu-train-bs9-float32-synthetic"]["reason"]
    assert (tmp_path / "report.html").is_file() and (tmp_path / "deploy.yaml").is_file()


# -- the container image ----------------------------------------------------------------------


def test_dockerfile_installs_bench_with_its_extras_and_runs_bench():
    """No container engine runs here: the file is checked as text (see docs/pipelines.md)."""
    lines = [
        line.strip()
        for line in (REPO / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert froms and re.match(r"FROM python:3\.1[1-9]-slim", froms[0])
    args = {line.split()[1].split("=")[0] for line in lines if line.startswith("ARG ")}
    assert "JAX_EXTRA" in args  # the build argument for JAX's CUDA (or TPU) build
    runs = " ".join(line for line in lines if line.startswith("RUN ") or line.startswith("&&"))
    assert re.search(r"pip install[^\n]*\.\[jax,tf,litert,gpu,pipelines,serving\]", runs)
    assert "jax[${JAX_EXTRA}]" in runs
    assert lines[-1] == 'ENTRYPOINT ["bench"]' or 'ENTRYPOINT ["bench"]' in lines
    copied = [line for line in lines if line.startswith("COPY ")]
    for line in copied:  # every path it copies exists in the repository
        for src in line.split()[1:-1]:
            assert (REPO / src).exists(), f"Dockerfile copies {src}, which does not exist"


# -- submit: only what the clients need -------------------------------------------------------


def test_submit_without_an_endpoint_says_what_to_give(tmp_path, capsys):
    spec = tmp_path / "p.yaml"
    spec.write_text("{}")
    assert main(["pipeline", "submit", str(spec), "--project", "p"]) == 2
    assert "give --host URL for a Kubeflow Pipelines endpoint, or --region, --pipeline-root" in (
        capsys.readouterr().err
    )
    assert main(["pipeline", "submit", str(tmp_path / "none.yaml"), "--host", "http://x"]) == 2
    assert "none.yaml: no such file" in capsys.readouterr().err


# -- the check task: missing cells and the gate, per task -------------------------------------


def _summary(tmp_path: Path, runs: dict[str, Path], missing: list[str]) -> Path:
    folder = tmp_path / "runs"
    for name, run in runs.items():
        shutil.copytree(run, folder / name)
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"runs": list(runs), "missing": missing, "failed": []}))
    return path


def test_check_gates_each_task_against_the_same_task_of_the_baseline(tmp_path, capsys):
    gate = REPO / "tests" / "golden" / "gate"
    # The candidate run regresses against baseline-run (tests/golden/gate/report.txt).
    summary = _summary(tmp_path, {"jax-cpu-a": gate / "candidate-run"}, [])
    base = tmp_path / "earlier-pipeline"
    shutil.copytree(gate / "baseline-run", base / "jax-cpu-a")
    with pytest.raises(TaskError, match=r"bench gate: jax-cpu-a regressed against .*jax-cpu-a"):
        check(str(summary), str(tmp_path / "runs"), str(base), [])
    # A task the earlier pipeline did not have (a new machine kind) is not gated, and says so;
    # the same run as its own baseline passes.
    shutil.rmtree(base / "jax-cpu-a")
    shutil.copytree(gate / "candidate-run", base / "other")
    check(str(summary), str(tmp_path / "runs"), str(base), [])
    assert "has no run of task jax-cpu-a: not gated" in capsys.readouterr().out
    check(str(summary), str(tmp_path / "runs"), str(gate / "candidate-run"), [])
    assert "1 run(s) passed the gate" in capsys.readouterr().out


def test_check_fails_on_missing_cells_and_names_them(tmp_path):
    summary = _summary(tmp_path, {}, ["t/jax-cpu-train-bs8-float32-synthetic"])
    with pytest.raises(TaskError, match=r"1 cell\(s\) missing: t/jax-cpu-train-bs8-float32"):
        check(str(summary), str(tmp_path / "runs"), None, [])


def test_a_run_of_some_cells_resumes_only_those(tmp_path):
    """A task's run plans only its cells (bench run --only): resuming it must not run the rest
    of the scenario. Made from a recorded run: plan 3 of its 9 cells, drop the record of one."""
    from bench.run.runner import plan_resume

    run = tmp_path / "run"
    shutil.copytree(REPO / "tests" / "golden" / "runs" / "quickstart-a", run)
    records = (run / "cells.jsonl").read_text().splitlines()
    ids = [json.loads(line)["cell_id"] for line in records]
    meta = json.loads((run / "run.json").read_text())
    meta["cells_planned"] = meta["scenario"]["only"] = ids[:3]
    (run / "run.json").write_text(json.dumps(meta))
    (run / "cells.jsonl").write_text("\n".join(records[:2]) + "\n")
    assert [c.cell_id for c in plan_resume(run).todo] == [ids[2]]
