"""Compile a scenario into a KFP pipeline, or run that pipeline here with ``kfp.local``.

kfp is imported inside these functions: ``bench --help`` and every other command work without
it, and without it these say which extra to install.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.pipeline.machines import load_machines
from bench.pipeline.plan import Task, plan_tasks
from bench.run.scenario import LoadedScenario, load_scenario

INSTALL = "pip install 'bench[pipelines]'"
# What the local runner's tasks report as their image: kfp.local warns for any image without
# "python" in its name, and ignores it anyway (the subprocess runs this interpreter).
LOCAL_IMAGE = "python:3.11-slim"
# The local run's outputs, copied out of kfp.local's folders: what a user opens afterwards.
LOCAL_OUTPUTS = ("report.html", "deploy.yaml", "summary.json", "metrics.json")


class PipelineError(RuntimeError):
    """A pipeline cannot be built, run or submitted; the message says why and what to do."""


def require_kfp() -> None:
    try:
        import kfp
        import kfp.kubernetes  # noqa: F401
    except ImportError as exc:
        raise PipelineError(
            f"bench pipeline needs the Kubeflow Pipelines SDK ({exc.name} is not installed); "
            f"install it with: {INSTALL}"
        ) from None


@dataclass(frozen=True)
class Options:
    """What a compiled pipeline is made of, besides the scenario."""

    image: str = LOCAL_IMAGE
    machines: str | None = None
    objective: str = "throughput"
    baseline: str = ""
    gate_args: tuple[str, ...] = ()
    retries: int = 3
    name: str = ""


@dataclass
class Planned:
    loaded: LoadedScenario
    tasks: list[Task] = field(default_factory=list)


def plan(scenario: str, overrides: list[str], machines: str | None) -> Planned:
    """The scenario (ScenarioError) and its tasks (MachinesError), checked before kfp loads."""
    loaded = load_scenario(scenario, overrides)
    return Planned(loaded, plan_tasks(loaded, load_machines(machines), machines or "--machines"))


def pipeline_function(planned: Planned, options: Options) -> Any:
    require_kfp()
    from bench.pipeline import components

    s = planned.loaded.scenario
    name = options.name or f"bench-{s.name}".lower().replace("_", "-").replace(".", "-")
    return components.build(
        planned.tasks,
        name=name,
        description=(s.description or f"bench sweep {s.name}")[:200],
        image=options.image,
        scenario_text=planned.loaded.text,
        scenario_file=Path(planned.loaded.path).name,
        overrides=list(planned.loaded.overrides),
        objective=options.objective,
        baseline=options.baseline,
        gate_args=list(options.gate_args),
        retries=options.retries,
    )


def compile_pipeline(planned: Planned, options: Options, output: str) -> None:
    require_kfp()
    from kfp import compiler

    compiler.Compiler().compile(pipeline_function(planned, options), package_path=output)


@dataclass
class LocalRun:
    ok: bool
    error: str
    outputs: dict[str, Path]  # name in LOCAL_OUTPUTS -> file under the output folder
    runs: list[Path]  # the run folders the tasks delivered
    summary: dict[str, Any] | None


def run_local(planned: Planned, options: Options, out_dir: str) -> LocalRun:
    """Run the compiled pipeline with kfp.local's subprocess runner, on this machine, in this
    Python environment (no containers: the image is not used); copy what the summary task
    wrote into ``out_dir``."""
    require_kfp()
    import json

    from kfp import local

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # An earlier run's files must not pass for this one's.
    shutil.rmtree(out / "runs", ignore_errors=True)
    for name in LOCAL_OUTPUTS:
        (out / name).unlink(missing_ok=True)
    root = Path(tempfile.mkdtemp(prefix="kfp-root-", dir=out))
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(root),
        raise_on_error=True,
        enable_caching=False,
    )
    pipeline = pipeline_function(planned, options)
    error = ""
    try:
        pipeline()
    except RuntimeError as exc:  # kfp.local's "Pipeline ... finished with status FAILURE"
        error = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # its names come coloured for a terminal
    found = _local_artifacts(root)
    outputs: dict[str, Path] = {}
    runs: list[Path] = []
    summary = None
    if "summarize" in found:
        task = found["summarize"]
        for key, target in (
            ("report", "report.html"),
            ("deploy", "deploy.yaml"),
            ("summary", "summary.json"),
        ):
            if (task / key).is_file():
                shutil.copyfile(task / key, out / target)
                outputs[target] = out / target
        if (task / "runs").is_dir():
            shutil.copytree(task / "runs", out / "runs", symlinks=True)  # links stay links
            runs = sorted(p for p in (out / "runs").iterdir() if p.is_dir())
        if "summary.json" in outputs:
            summary = json.loads(outputs["summary.json"].read_text())
    _write_metrics(out, found)
    if (out / "metrics.json").is_file():
        outputs["metrics.json"] = out / "metrics.json"
    shutil.rmtree(root, ignore_errors=True)
    return LocalRun(not error, error, outputs, runs, summary)


def _local_artifacts(root: Path) -> dict[str, Path]:
    """Task name -> its output folder under kfp.local's pipeline root (one pipeline run)."""
    runs = [p for p in root.iterdir() if p.is_dir()]
    if len(runs) != 1:
        return {}
    return {p.name: p for p in runs[0].iterdir() if p.is_dir()}


def _write_metrics(out: Path, found: dict[str, Path]) -> None:
    """kfp.local keeps a Metrics artifact's values in the task's executor output, where a KFP
    UI reads them: written to metrics.json so a local run shows the same numbers."""
    import json

    executor_output = found.get("summarize", out / "-") / "executor_output.json"
    if not executor_output.is_file():
        return
    doc = json.loads(executor_output.read_text())
    listed = doc.get("artifacts", {}).get("metrics", {}).get("artifacts", [])
    if listed:
        metrics = listed[0].get("metadata", {})
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")
