"""Profiling (``measure.profile``): the breakdown's arithmetic, the trace readers, the cell's
profile block and compile count with a fake backend, and one real run of JAX and TensorFlow
CPU cells whose traces the test reads back (docs/profiling.md)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.backends.jax.trace import perfetto_file, read_events
from bench.cli import main
from bench.measure.breakdown import OpEvent, breakdown, busy_us, hlo_ops, is_matmul, self_times
from bench.run.scenario import ScenarioError, parse_scenario
from bench.workloads.cell.measure import measure_cell
from bench.workloads.cell.profiling import cell_folder
from tests.conftest import bench_cmd
from tests.test_cell import MSG, FakeWorkload, backend_for

# -- the breakdown's arithmetic ------------------------------------------------------------


def test_self_time_subtracts_nested_ops_on_the_same_line_only():
    events = [
        OpEvent("t1", "fusion", 0.0, 10.0),  # holds the kernel 2..5: self 10 - 3 = 7
        OpEvent("t1", "kernel", 2.0, 3.0),
        OpEvent("t1", "fusion", 20.0, 4.0),  # a second run of the same op: 4 more
        OpEvent("t2", "other", 1.0, 6.0),  # overlaps in time, but on another line: not nested
    ]
    found = self_times(events)
    assert found == {"fusion": (11.0, 2), "kernel": (3.0, 1), "other": (6.0, 1)}
    # Union of intervals: [0, 10] (t2's [1, 7] inside it) + [20, 24] = 14 us.
    assert busy_us(events) == 14.0


def test_breakdown_ranks_by_self_time_and_divides_busy_time_by_the_traced_wall_time():
    events = [OpEvent("t", "dot.1", 0.0, 600.0), OpEvent("t", "add", 700.0, 200.0)]
    found = breakdown(events, wall_s=0.002, steps=2, scope="test", kinds={"dot.1": "dot"})
    assert [o["op"] for o in found["top_ops"]] == ["dot.1", "add"]
    assert found["top_ops"][0]["share"] == pytest.approx(600 / 800)
    assert found["top_ops"][0]["kind"] == "dot"
    # 800 us busy in a 2 ms traced window: 40%.
    assert found["busy_share"] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="no op events"):
        breakdown([], 1.0, 1, "test")


HLO = """HloModule jit_step

%fused_computation.3 (param_0: f32[8,4], param_1: f32[4,4]) -> f32[8,4] {
  %param_0 = f32[8,4]{1,0} parameter(0)
  %param_1 = f32[4,4]{1,0} parameter(1)
  ROOT %dot.0 = f32[8,4]{1,0} dot(%param_0, %param_1), lhs_contracting_dims={1}, rhs_contracting_dims={0}, metadata={op_name="jit(f)/dot_general"}
}

ENTRY %main (x: f32[8,4], w: f32[4,4]) -> (f32[8,4], f32[]) {
  %x = f32[8,4]{1,0} parameter(0)
  %w = f32[4,4]{1,0} parameter(1)
  %ynn_fusion.3 = f32[8,4]{1,0} fusion(%x, %w), kind=kCustom, calls=%fused_computation.3, metadata={op_name="jit(f)/dot_general"}
  %gemm = (f32[8,4]{1,0}, s8[0]{0}) custom-call(%x, %w), custom_call_target="__cublas$gemm"
  %tanh.1 = f32[8,4]{1,0} tanh(%ynn_fusion.3)
  ROOT %t = (f32[8,4], f32[]) tuple(%tanh.1, %x)
}
"""


def test_hlo_kinds_see_the_matmul_inside_a_fusion_and_a_library_call():
    found = hlo_ops(HLO)
    assert found.kinds["ynn_fusion.3"] == "fusion(dot)"
    assert found.kinds["gemm"] == "custom-call(gemm)"
    assert found.kinds["tanh.1"] == "tanh"
    assert found.sources["ynn_fusion.3"] == "jit(f)/dot_general"
    assert is_matmul("fusion(dot)") and is_matmul("", "dense/MatMul:MatMul")
    assert not is_matmul("fusion") and not is_matmul("tanh")


def _perfetto(folder: Path, events: list[dict[str, Any]]) -> Path:
    path = folder / "plugins" / "profile" / "2026_01_01_00_00_00" / "perfetto_trace.json.gz"
    path.parent.mkdir(parents=True)
    with gzip.open(path, "wt") as f:
        json.dump({"displayTimeUnit": "ns", "traceEvents": events}, f)
    return path


def test_jax_reader_takes_hlo_tagged_events_on_cpu_and_the_xla_ops_line_on_a_gpu(tmp_path):
    cpu = [
        {"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "/host:CPU"}},
        {"ph": "X", "pid": 1, "tid": 5, "ts": 0, "dur": 9, "name": "ThunkExecutor::Execute"},
        {"ph": "X", "pid": 1, "tid": 5, "ts": 1, "dur": 5, "name": "dot.1",
         "args": {"hlo_op": "dot.1"}},
    ]  # fmt: skip
    events, scope = read_events(_perfetto(tmp_path / "cpu", cpu))
    assert [(e.op, e.dur_us) for e in events] == [("dot.1", 5.0)] and "CPU" in scope
    gpu = [
        {"ph": "M", "pid": 2, "name": "process_name", "args": {"name": "/device:GPU:0"}},
        {"ph": "M", "pid": 2, "tid": 1, "name": "thread_name", "args": {"name": "XLA Modules"}},
        {"ph": "M", "pid": 2, "tid": 2, "name": "thread_name", "args": {"name": "XLA Ops"}},
        {"ph": "M", "pid": 2, "tid": 3, "name": "thread_name", "args": {"name": "Stream #7"}},
        {"ph": "X", "pid": 2, "tid": 1, "ts": 0, "dur": 50, "name": "jit_step"},
        {"ph": "X", "pid": 2, "tid": 2, "ts": 1, "dur": 30, "name": "fusion.2"},
        {"ph": "X", "pid": 2, "tid": 3, "ts": 1, "dur": 29, "name": "sm90_xmma_gemm"},
    ]
    events, scope = read_events(_perfetto(tmp_path / "gpu", gpu))
    assert [e.op for e in events] == ["fusion.2"] and scope == "GPU device lines (XLA Ops)"


# -- the cell: profile block and compile count, with a fake backend -----------------------


class ProfiledWorkload(FakeWorkload):
    """Records when the profiler starts, and hands back a trace of one matmul."""

    def __init__(self, start_error: Exception | None = None, compiles: list[int] | None = None):
        super().__init__()
        self.start_error = start_error
        self.started_at_step: int | None = None
        self.compiles = compiles

    def start_trace(self, folder: Path) -> None:
        if self.start_error is not None:
            raise self.start_error
        self.started_at_step = self.steps

    def stop_trace(self) -> None:
        pass

    def trace_events(self, folder: Path) -> tuple[list[Any], str]:
        return [OpEvent("t", "ynn_fusion.3", 0.0, 100.0), OpEvent("t", "tanh.1", 100, 20)], "t"

    def program_text(self) -> tuple[str, str]:
        return HLO, "program.hlo.txt"

    def compile_count(self) -> int | None:
        # One compile per step after `compiles[0]` steps: a stall under measurement.
        if self.compiles is None:
            return None
        return max(0, self.steps - self.compiles[0])


def _profiled(run_dir: Path, steps: int = 3) -> dict[str, Any]:
    return {
        **MSG,
        "run_dir": str(run_dir),
        "measure": {**MSG["measure"], "profile": {"steps": steps}},
    }


def test_traced_steps_run_after_the_timed_ones_into_the_cells_folder(tmp_path):
    work = ProfiledWorkload()
    result = measure_cell(backend_for(work), _profiled(tmp_path))
    timed = len(result["samples"]["step_time_s"])
    # first step + 1 warm-up + the timed steps, then the profiler: nothing traced was timed.
    assert work.started_at_step == 2 + timed and work.steps == 2 + timed + 3
    profile = result["profile"]
    assert profile["trace_dir"] == cell_folder("c") == "profiles/c"
    assert (tmp_path / profile["program"]).read_text() == HLO
    top = profile["breakdown"]["top_ops"][0]
    assert (top["op"], top["kind"], top["share"]) == ("ynn_fusion.3", "fusion(dot)", 100 / 120)
    assert result["status"] == "ok"
    assert result["metrics"]["traced_busy_share"]["value"] == profile["breakdown"]["busy_share"]


def test_a_profiler_that_fails_to_start_is_recorded_and_the_timing_stays_valid(tmp_path):
    work = ProfiledWorkload(start_error=RuntimeError("another trace is already running"))
    result = measure_cell(backend_for(work), _profiled(tmp_path))
    assert result["status"] == "ok" and result["metrics"]["step_time_s"]["n"] >= 5
    assert result["profile"]["unavailable"] == (
        "profiler failed to start: RuntimeError: another trace is already running"
    )
    assert "breakdown" not in result["profile"] and "traced_busy_share" not in result["metrics"]


def test_an_unwritable_trace_folder_is_recorded_and_nothing_is_traced(tmp_path):
    blocker = tmp_path / "run"
    blocker.write_text("a file where the run folder should be")  # mkdir under it fails
    work = ProfiledWorkload()
    result = measure_cell(backend_for(work), _profiled(blocker))
    assert result["status"] == "ok" and work.started_at_step is None
    assert result["profile"]["unavailable"].startswith("profiler not started: trace folder: ")


def test_a_trace_folder_linked_out_of_the_run_folder_is_refused(tmp_path):
    run, outside = tmp_path / "run", tmp_path / "elsewhere"
    run.mkdir(), outside.mkdir()
    (run / "profiles").symlink_to(outside)
    result = measure_cell(backend_for(ProfiledWorkload()), _profiled(run))
    assert "is a symbolic link" in result["profile"]["unavailable"]
    assert list(outside.iterdir()) == []


def test_compile_count_is_recorded_and_a_compile_while_timed_invalidates():
    result = measure_cell(backend_for(ProfiledWorkload(compiles=[0])), MSG)
    # The count starts after first step + warm-up (2 steps) and rises by one per timed step.
    timed = len(result["samples"]["step_time_s"])
    assert result["metrics"]["compile_count"]["value"] == timed
    assert result["status"] == "invalid"
    assert result["reason"].startswith(f"{timed} compilation(s) during the timed phase")
    quiet = measure_cell(backend_for(ProfiledWorkload(compiles=[10**6])), MSG)
    assert quiet["status"] == "ok" and quiet["metrics"]["compile_count"]["value"] == 0
    none = measure_cell(backend_for(FakeWorkload()), MSG)
    assert "unavailable" in none["metrics"]["compile_count"] and none["status"] == "ok"


# -- scenario and CLI ------------------------------------------------------------------------

SCENARIO = """name: p
model: mlp
device: cpu
matrix: {framework: [jax]}
"""


def test_profile_steps_are_validated_and_profile_sets_them():
    loaded = parse_scenario(SCENARIO, "p.yaml", ("measure.profile.steps=7",))
    assert loaded.scenario.measure.profile is not None
    assert loaded.scenario.measure.profile.steps == 7
    assert parse_scenario(SCENARIO, "p.yaml").scenario.measure.profile is None
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(SCENARIO + "measure: {profile: {steps: 0}}\n", "p.yaml")
    assert any("measure.profile.steps" in p and "p.yaml" in p for p in exc.value.problems)


def test_profile_is_refused_with_resume(tmp_path, capsys):
    assert main(["run", "--resume", str(tmp_path), "--profile"]) == 2
    assert "--profile" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path), "--profile-steps", "3"]) == 2


def test_profile_before_the_scenario_file_is_a_flag(tmp_path, capsys):
    # ``--profile [STEPS]`` once took the file that followed it for STEPS
    scenario = tmp_path / "p.yaml"
    scenario.write_text(SCENARIO)
    assert main(["run", "--profile", str(scenario), "--dry-run"]) == 0
    with pytest.raises(SystemExit) as exited:
        main(["run", str(scenario), "--profile-steps", "0", "--dry-run"])
    assert exited.value.code == 2
    assert "--profile-steps: '0': expected a whole number from 1 to 1,000" in (
        capsys.readouterr().err
    )


def _stored_run(tmp_path: Path, profile: Any) -> Path:
    from tests.test_results import make_run, record

    writer = make_run(tmp_path)
    writer.append_cell({**record("jax-cell"), "profile": profile})
    writer.append_cell(record("plain"))
    writer.finish("complete")
    return writer.path


def test_results_cell_shows_the_breakdown_and_says_when_a_cell_was_not_profiled(tmp_path, capsys):
    found = breakdown(
        [OpEvent("t", "ynn_fusion.3", 0.0, 300.0), OpEvent("t", "tanh.1", 300.0, 100.0)],
        wall_s=0.0005, steps=2, scope="CPU threads running XLA ops",
        kinds=hlo_ops(HLO).kinds, sources=hlo_ops(HLO).sources,
    )  # fmt: skip
    run = _stored_run(tmp_path, {"steps": 2, "trace_dir": "profiles/jax-cell", "breakdown": found})
    assert main(["results", str(run), "--cell", "jax-cell"]) == 0
    shown = capsys.readouterr().out
    # 400 us of ops in a 500 us window: busy 80%; ynn_fusion.3 has 300 of 400 us: 75%, 0.150 ms
    # per traced step.
    assert "busy 80% of 0.5 ms" in shown
    assert "ynn_fusion.3" in shown and "fusion(dot)" in shown and "75.0%" in shown
    assert "0.150" in shown
    assert main(["results", str(run), "--cell", "plain"]) == 0
    assert "not profiled" in capsys.readouterr().out
    assert main(["results", str(run), "--cell", "nope"]) == 2
    assert "no cell 'nope'; its cells: jax-cell, plain" in capsys.readouterr().err


def test_a_damaged_profile_block_is_refused_naming_the_field(tmp_path, capsys):
    damaged = {
        "trace_dir": "p",
        "breakdown": {
            "scope": "s",
            "traced_steps": 2,
            "traced_wall_s": 0.1,
            "lines": 1,
            "ops": 1,
            "top_ops": [{"op": "dot", "share": "x"}],
        },
    }
    run = _stored_run(tmp_path, damaged)
    assert main(["results", str(run), "--cell", "jax-cell"]) == 2
    err = capsys.readouterr().err
    assert "cell 'jax-cell': profile.breakdown.top_ops[0].self_s: missing" in err


# -- a real run: JAX and TensorFlow CPU cells profiled through their workers ----------------

MATMUL_MLP = """name: profiled
description: a matmul-heavy MLP (no embeddings), profiled
model: mlp
model_args: {num_numeric: 256, num_categorical: 0, hidden: [512, 512]}
device: cpu
workload: train
# Op times are wall clock: on a loaded machine a preempted elementwise op can take milliseconds.
# At batch 512 each 512x512 matmul takes ~100x the weight update's FLOPs, and 10 traced steps
# average a preemption out, so a matmul stays on top (at batch 128 with 3 steps it did not).
batch_size: 512
matrix:
  framework: [jax, tensorflow]
  xla: [false, true]
measure: {warmup_steps: 2, min_steps: 5, min_seconds: 0.0, max_seconds: 3, target_rel_ci: 0.5}
"""

TF_READ = (
    "import json, sys; from pathlib import Path; "
    "from bench.backends.tensorflow.trace import read_events, xplane_file; "
    "events, scope = read_events(xplane_file(Path(sys.argv[1]))); "
    "print(json.dumps({'scope': scope, 'ops': sorted({e.op for e in events})}))"
)


@pytest.mark.slow
@pytest.mark.heavy
def test_profiled_jax_and_tensorflow_cells_write_traces_whose_top_op_is_a_matmul(
    tmp_path, worker_env, capsys
):
    scenario = tmp_path / "profiled.yaml"
    scenario.write_text(MATMUL_MLP)
    results = tmp_path / "results"
    done = subprocess.run(
        bench_cmd("run", str(scenario), "--results-dir", str(results), "--profile-steps", "10"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (run,) = results.iterdir()
    lines = (run / "cells.jsonl").read_text().splitlines()
    records = {json.loads(line)["cell_id"]: json.loads(line) for line in lines}
    assert sorted(records) == [
        "jax-cpu-train-bs512-float32-synthetic",
        "tensorflow-cpu-train-bs512-float32-synthetic",
        "tensorflow-cpu-train-bs512-float32-synthetic-xla",
    ]
    for cell_id, record in records.items():
        assert record["status"] == "ok", record["reason"]
        assert record["metrics"]["compile_count"]["value"] == 0
        profile = record["profile"]
        folder = run / profile["trace_dir"]
        assert folder.is_dir() and folder.resolve().parent.parent == run.resolve()
        top = profile["breakdown"]["top_ops"][0]
        assert is_matmul(top["kind"], top["op"]), (cell_id, profile["breakdown"]["top_ops"][:3])
        assert 0 < profile["breakdown"]["busy_share"] <= 1.05, profile["breakdown"]
        if cell_id.endswith("-xla") or cell_id.startswith("jax"):
            assert "ENTRY" in (run / profile["program"]).read_text()  # the optimized HLO

    # The test reads the traces itself: JAX's perfetto JSON here (no framework needed) ...
    jax_folder = run / records["jax-cpu-train-bs512-float32-synthetic"]["profile"]["trace_dir"]
    events, _ = read_events(perfetto_file(jax_folder))
    jax_top = records["jax-cpu-train-bs512-float32-synthetic"]["profile"]["breakdown"]
    assert jax_top["top_ops"][0]["op"] in {e.op for e in events}
    # ... and TensorFlow's XSpace in a process of its own (TF never joins the pytest process).
    tf_cell = records["tensorflow-cpu-train-bs512-float32-synthetic"]
    read = subprocess.run(
        [sys.executable, "-c", TF_READ, str(run / tf_cell["profile"]["trace_dir"])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert read.returncode == 0, read.stderr[-2000:]
    tf_trace = json.loads(read.stdout.strip().splitlines()[-1])
    assert tf_cell["profile"]["breakdown"]["top_ops"][0]["op"] in tf_trace["ops"]

    # bench results RUN --cell ID shows the breakdown.
    assert main(["results", str(run), "--cell", "jax-cpu-train-bs512-float32-synthetic"]) == 0
    shown = capsys.readouterr().out
    assert "where the time goes" in shown and jax_top["top_ops"][0]["op"] in shown
