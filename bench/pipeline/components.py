"""The KFP pipeline of a plan: a ``run`` task per planned task, then ``summarize`` and ``check``.

Imports kfp at module level: only ``bench.pipeline.build`` imports this module, inside the
functions that need kfp. The component functions are Lightweight Python Components: KFP embeds
their source in the pipeline and runs it in the ``--image`` container (or in a subprocess under
``kfp.local``), so each body only imports bench and calls ``bench.pipeline.tasks``, where the
work is done and tested. ``install_kfp_package=False``: the image carries kfp (bench's
``pipelines`` extra), and a task that pip-installed at start would need the network.
"""

import json
import linecache
from typing import Any

from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Metrics, Output


def run_cells(
    scenario: str, scenario_file: str, overrides: list, cells: list, run: Output[Artifact]
) -> None:
    """bench run on some cells of a scenario; the run folder is the ``run`` artifact."""
    from bench.pipeline.tasks import run_cells as run_them

    done = run_them(scenario, scenario_file, list(overrides), list(cells), run.path)
    run.metadata.update(done)


def check(
    summary: Input[Artifact],
    runs: Input[Artifact],
    baseline: str = "",
    gate_args: list = [],  # noqa: B006 (KFP reads the default from the signature)
) -> None:
    """Fail the pipeline for failed or missing cells, or a gate regression against baseline."""
    from bench.pipeline.tasks import check as check_them

    check_them(summary.path, runs.path, baseline or None, list(gate_args))


# summarize takes one optional input per run task, so its signature depends on the plan: the
# source is made here and registered with linecache, where inspect.getsource (which KFP uses
# to embed a component's code) finds it.
SUMMARIZE = '''\
def summarize(
    plan: str,
    objective: str,
    report: Output[HTML],
    deploy: Output[Artifact],
    summary: Output[Artifact],
    runs: Output[Artifact],
    metrics: Output[Metrics],
{inputs}) -> None:
    """Every run folder into one report, deploy.yaml, metrics, and a summary of what is missing."""
    import json

    from bench.pipeline.tasks import summarize as summarize_runs

    tasks = json.loads(plan)
    given = [{names}]
    found = {{t["task"]: (a.path if a is not None else None) for t, a in zip(tasks, given)}}
    done = summarize_runs(tasks, found, objective, report.path, deploy.path, runs.path)
    with open(summary.path, "w") as f:
        json.dump(done, f, indent=1)
    for name, value in done["counts"].items():
        metrics.log_metric(f"cells_{{name}}", value)
    for name, value in done["headline"].items():
        metrics.log_metric(name, value)
'''


def summarize_function(count: int) -> Any:
    names = [f"run_{i}" for i in range(count)]
    inputs = "".join(f"    {n}: Optional[Input[Artifact]] = None,\n" for n in names)
    source = SUMMARIZE.format(inputs=inputs, names=", ".join(names))
    filename = f"<bench-pipeline-summarize-{count}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {
        "Output": Output, "Input": Input, "Artifact": Artifact, "HTML": HTML,
        "Metrics": Metrics, "Optional": __import__("typing").Optional,
    }  # fmt: skip
    exec(compile(source, filename, "exec"), namespace)
    return namespace["summarize"]


def build(
    tasks: list[Any],
    *,
    name: str,
    description: str,
    image: str,
    scenario_text: str,
    scenario_file: str,
    overrides: list[str],
    objective: str,
    baseline: str,
    gate_args: list[str],
    retries: int,
    summary_resources: tuple[float, str] = (2, "8G"),
) -> Any:
    """The pipeline function (``@dsl.pipeline``) for ``tasks`` (``bench.pipeline.plan.Task``)."""
    from kfp import kubernetes

    from bench.pipeline.machines import TPU_ACCELERATOR_LABEL, TPU_RESOURCE, TPU_TOPOLOGY_LABEL

    def component(func: Any) -> Any:
        return dsl.component(func=func, base_image=image, install_kfp_package=False)

    run_op = component(run_cells)
    summarize_op = component(summarize_function(len(tasks)))
    check_op = component(check)
    plan = json.dumps([t.describe() for t in tasks])

    @dsl.pipeline(name=name, description=description)
    def pipeline() -> None:
        outputs = {}
        for t in tasks:
            m = t.machine
            op = run_op(
                scenario=scenario_text,
                scenario_file=scenario_file,
                overrides=list(overrides),
                cells=list(t.cells),
            )
            op.set_display_name(t.name)
            # Requests equal to limits: the pod gets its own cores (Guaranteed QoS).
            op.set_cpu_request(f"{m.cpu:g}").set_cpu_limit(f"{m.cpu:g}")
            op.set_memory_request(m.memory).set_memory_limit(m.memory)
            if t.device == "gpu":
                op.set_accelerator_type(m.accelerator).set_accelerator_limit(m.count)
            elif t.device == "tpu":
                op.set_accelerator_type(TPU_RESOURCE).set_accelerator_limit(m.count)
                kubernetes.add_node_selector(op, TPU_ACCELERATOR_LABEL, m.accelerator)
                kubernetes.add_node_selector(op, TPU_TOPOLOGY_LABEL, m.topology)
            for label, value in m.node_selector.items():
                kubernetes.add_node_selector(op, label, value)
            if retries:
                # Spot and preemptible nodes go away mid-run: start the task again, later.
                op.set_retry(retries, backoff_duration="60s", backoff_factor=2)
            # A measurement is never served from cache: a rerun is a new measurement.
            op.set_caching_options(False)
            outputs[t.name] = op.outputs["run"]
        runs = {f"run_{i}": outputs[t.name] for i, t in enumerate(tasks)}
        summary = summarize_op(plan=plan, objective=objective, **runs)
        summary.set_display_name("summarize").set_caching_options(False)
        summary.set_cpu_request(f"{summary_resources[0]:g}")
        summary.set_memory_request(summary_resources[1])
        # Runs when run tasks failed: their inputs stay None, and the summary names them.
        summary.ignore_upstream_failure()
        verdict = check_op(
            summary=summary.outputs["summary"],
            runs=summary.outputs["runs"],
            baseline=baseline,
            gate_args=list(gate_args),
        )
        verdict.set_display_name("check").set_caching_options(False)

    return pipeline
