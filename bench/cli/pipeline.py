"""Commands that run a sweep across machines: ``bench pipeline compile|run|submit``."""

from __future__ import annotations

import argparse
from typing import Any

from bench.cli.common import EXIT_USAGE, add_set_option, bounded_int, out, print_error
from bench.limits import MAX_RETRIES


def _options(args: argparse.Namespace) -> Any:
    from bench.pipeline.build import Options

    return Options(
        image=getattr(args, "image", None) or Options.image,
        machines=args.machines,
        objective=args.objective,
        baseline=args.baseline or "",
        gate_args=tuple(args.gate_arg),
        retries=args.retries,
        name=args.name or "",
    )


def _plan(args: argparse.Namespace) -> Any:
    """The scenario's tasks, or None after printing every problem (the caller exits 2)."""
    from bench.pipeline.build import plan
    from bench.pipeline.machines import MachinesError
    from bench.run.scenario import ScenarioError

    try:
        return plan(args.scenario, args.set, args.machines)
    except ScenarioError as exc:
        for problem in exc.problems:
            print_error(problem)
        return None
    except MachinesError as exc:
        for line in str(exc).splitlines():
            print_error(f"bench pipeline: {line}")
        return None


def _describe_tasks(planned: Any) -> None:
    for t in planned.tasks:
        m = t.machine
        acc = f", {m.count} x {m.accelerator}" if m.accelerator else ""
        topo = f" ({m.topology})" if m.topology else ""
        out.print(
            f"task {t.name}: {len(t.cells)} cells on {m.cpu:g} CPU, {m.memory}{acc}{topo}",
            highlight=False,
        )


def cmd_compile(args: argparse.Namespace) -> int:
    from bench.pipeline.build import PipelineError, compile_pipeline

    planned = _plan(args)
    if planned is None:
        return EXIT_USAGE
    try:
        compile_pipeline(planned, _options(args), args.output)
    except PipelineError as exc:
        print_error(f"bench pipeline compile: {exc}")
        return EXIT_USAGE
    _describe_tasks(planned)
    out.print(
        f"wrote {args.output}: {len(planned.tasks)} run task(s), summarize, check; image "
        f"{args.image}",
        highlight=False,
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from bench.pipeline.build import PipelineError, run_local
    from bench.pipeline.tasks import describe

    if not args.local:
        print_error(
            "bench pipeline run: only --local is supported (kfp.local on this machine); to run "
            "on a cluster: bench pipeline compile, then bench pipeline submit"
        )
        return EXIT_USAGE
    planned = _plan(args)
    if planned is None:
        return EXIT_USAGE
    _describe_tasks(planned)
    try:
        done = run_local(planned, _options(args), args.output_dir)
    except PipelineError as exc:
        print_error(f"bench pipeline run: {exc}")
        return EXIT_USAGE
    if done.summary is not None:
        for line in describe(done.summary):
            out.print(line, highlight=False, soft_wrap=True)
    for name, path in done.outputs.items():
        out.print(f"{name}: {path}", highlight=False)
    for run in done.runs:
        out.print(f"run folder: {run}", highlight=False)
    if not done.ok:
        print_error(f"bench pipeline run: the pipeline failed: {done.error}")
        return 1
    out.print("pipeline succeeded", highlight=False)
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from bench.pipeline.build import PipelineError
    from bench.pipeline.submit import submit_kfp, submit_vertex

    try:
        if args.host:
            where = submit_kfp(args.pipeline, args.host, args.run_name, args.experiment)
        else:
            where = submit_vertex(
                args.pipeline, args.project, args.region, args.pipeline_root, args.run_name
            )
    except PipelineError as exc:
        print_error(f"bench pipeline submit: {exc}")
        return EXIT_USAGE
    out.print(f"submitted: {where}", highlight=False, soft_wrap=True)
    return 0


def _add_build_options(p: argparse.ArgumentParser) -> None:
    from bench.metrics import objectives

    p.add_argument("scenario", help="scenario YAML file")
    add_set_option(p, "override a scenario field, as bench run does (repeatable)")
    p.add_argument(
        "--machines",
        metavar="FILE",
        help="machine kinds per device (YAML: cpu, gpu, tpu -> accelerator, count, topology, "
        "cpu, memory, node_selector); required for gpu and tpu cells; default: cpu cells on "
        "4 CPU, 16G",
    )
    p.add_argument(
        "--objective",
        choices=list(objectives()),
        default="throughput",
        help="what the report's and deploy.yaml's recommendation optimises",
    )
    p.add_argument(
        "--baseline",
        metavar="PATH",
        help="what the check task gates each run against, as the task container sees it "
        "(e.g. /gcs/BUCKET/... on Vertex AI): an earlier pipeline's runs folder (each task "
        "against its namesake), or a baseline file or run folder (every run against it)",
    )
    p.add_argument(
        "--gate-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="an argument passed to bench gate, e.g. --gate-arg=--threshold=0.2 (repeatable)",
    )
    p.add_argument(
        "--retries",
        type=bounded_int(0, MAX_RETRIES),
        default=3,
        metavar="N",
        help="retries of a run task that fails (preemption), 60 s backoff doubling (default 3)",
    )
    p.add_argument("--name", help="pipeline name (default: bench-<scenario name>)")


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "pipeline",
        help="run a sweep across machines as a Kubeflow pipeline (needs bench[pipelines])",
        description="Compile a scenario into a Kubeflow Pipelines (KFP v2) pipeline: one task "
        "per (framework, device, machine kind) running bench run on its cells, then a task "
        "that writes the HTML report, deploy.yaml and metrics, and one that fails the pipeline "
        "on failed or missing cells or a gate regression. See docs/pipelines.md.",
    )
    pipe = p.add_subparsers(dest="pipeline_command", required=True, metavar="ACTION")

    c = pipe.add_parser("compile", help="write the pipeline as KFP IR YAML")
    _add_build_options(c)
    c.add_argument("-o", "--output", default="pipeline.yaml", help="default pipeline.yaml")
    c.add_argument(
        "--image",
        required=True,
        help="container image with bench installed (the repository's Dockerfile), "
        "e.g. us-docker.pkg.dev/PROJECT/REPO/bench:TAG",
    )
    c.set_defaults(func=cmd_compile)

    r = pipe.add_parser(
        "run",
        help="run the pipeline on this machine with kfp.local (subprocesses, no containers)",
        description="Run the same pipeline with KFP's local subprocess runner, in this Python "
        "environment: every task here, one after another. Exit 0 when the pipeline succeeds, "
        "1 when it fails (a failed or missing cell, a gate regression), 2 on bad input.",
    )
    _add_build_options(r)
    r.add_argument("--local", action="store_true", help="run here with kfp.local (required)")
    r.add_argument(
        "-o",
        "--output-dir",
        default="pipeline-local",
        help="where report.html, deploy.yaml, summary.json, metrics.json and runs/ go "
        "(default: pipeline-local)",
    )
    r.set_defaults(func=cmd_run)

    s = pipe.add_parser(
        "submit",
        help="submit a compiled pipeline to a KFP endpoint or to Vertex AI Pipelines",
        description="Submit pipeline.yaml: with --host to a Kubeflow Pipelines endpoint "
        "(kfp.Client), else to Vertex AI Pipelines (google-cloud-aiplatform's PipelineJob, "
        "with --project, --region and --pipeline-root). Credentials come from the "
        "environment, as for those clients.",
    )
    s.add_argument("pipeline", help="the compiled pipeline YAML")
    s.add_argument("--host", help="KFP endpoint URL, e.g. https://HOST/pipeline")
    s.add_argument("--experiment", help="KFP experiment name")
    s.add_argument("--project", help="Vertex AI: Google Cloud project")
    s.add_argument("--region", help="Vertex AI: region, e.g. us-central1")
    s.add_argument("--pipeline-root", help="Vertex AI: gs:// folder for the artifacts")
    s.add_argument("--run-name", help="display name of the run")
    s.set_defaults(func=cmd_submit)
