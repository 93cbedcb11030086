"""Submit a compiled pipeline: a thin call to ``kfp.Client`` or to Vertex AI's ``PipelineJob``.

Nothing here that those clients do not do; it exists so that compile and submit are two
commands of one tool. Credentials and endpoints are the clients' own (``gcloud auth
application-default login``, a KFP endpoint's auth).
"""

from __future__ import annotations

from pathlib import Path

from bench.pipeline.build import PipelineError, require_kfp


def _check_file(pipeline: str) -> None:
    if not Path(pipeline).is_file():
        raise PipelineError(
            f"{pipeline}: no such file; expected a YAML from bench pipeline compile"
        )


def submit_kfp(pipeline: str, host: str, run_name: str | None, experiment: str | None) -> str:
    """Start a run on the Kubeflow Pipelines endpoint ``host``; its URL or id."""
    _check_file(pipeline)
    require_kfp()
    import kfp

    client = kfp.Client(host=host)
    result = client.create_run_from_pipeline_package(
        pipeline, arguments={}, run_name=run_name, experiment_name=experiment
    )
    return f"{host.rstrip('/')}/#/runs/details/{result.run_id}"


def submit_vertex(
    pipeline: str,
    project: str | None,
    region: str | None,
    pipeline_root: str | None,
    run_name: str | None,
) -> str:
    """Start a Vertex AI Pipelines job; its resource name."""
    absent = [
        flag
        for flag, value in (
            ("--project", project),
            ("--region", region),
            ("--pipeline-root", pipeline_root),
        )
        if not value
    ]
    if absent:
        raise PipelineError(
            f"give --host URL for a Kubeflow Pipelines endpoint, or {', '.join(absent)} for "
            "Vertex AI Pipelines"
        )
    _check_file(pipeline)
    try:
        from google.cloud import aiplatform
    except ImportError:
        raise PipelineError(
            "Vertex AI needs google-cloud-aiplatform; install it with: pip install 'bench[vertex]'"
        ) from None
    aiplatform.init(project=project, location=region)
    job = aiplatform.PipelineJob(
        display_name=run_name or Path(pipeline).stem,
        template_path=pipeline,
        pipeline_root=pipeline_root,
        enable_caching=False,
    )
    job.submit()
    return job.resource_name
