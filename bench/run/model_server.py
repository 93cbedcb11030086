"""``bench serve``: a zoo or user model behind a KServe model server (Open Inference Protocol
over REST and gRPC), with the dynamic batching that in-process serve cells measure.

The model is built the way a serve cell builds it: the backend's predict step once per bucket
(the powers of two up to ``max_batch_size``), compiled before the server opens, from the same
``seed`` and ``model_args``, so the predictions it serves are those an in-process cell computes
for the same inputs. Requests go through ``bench.serve.request_batcher`` (the same batching
rule) to those compiled steps. The framework and the ``kserve`` package are imported inside
functions only: ``bench --help`` imports neither.

Routes (KServe's): ``GET /v2/health/ready``, ``GET /v2/models/NAME/ready``, ``POST
/v2/models/NAME/infer`` (v2 REST), ``POST /v1/models/NAME:predict`` (TF-Serving-style rows),
and ``inference.GRPCInferenceService`` on the gRPC port.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.axes import AXES, MODEL, CellKey, normalize
from bench.backends import registry
from bench.serve.batching import Policy
from bench.serve.request_batcher import RequestBatcher

INSTALL_HINT = "pip install 'bench[serving]' (the kserve package)"
OUTPUT_NAME = "predictions"


@dataclass(frozen=True)
class ServeSettings:
    model: str
    framework: str = "jax"
    device: str = "cpu"
    precision: str = "float32"
    model_args: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    max_batch_size: int = 8
    batch_timeout_ms: float = 2.0
    http_port: int = 8080
    grpc_port: int = 8081
    model_name: str = ""  # default: the model's name

    @property
    def name(self) -> str:
        return self.model_name or self.model.replace(":", "-").replace(".", "-")


def build_predictor(settings: ServeSettings) -> tuple[RequestBatcher, Any]:
    """The compiled buckets behind a batcher, and the model's data spec."""
    from bench.workloads.serve import SPEC as SERVE
    from bench.workloads.serve.cell.inprocess import build_buckets

    backend = registry.load(settings.framework)
    backend.setup(settings.device, None)
    present, reason, _ = backend.probe(settings.device)
    if not present:
        raise RuntimeError(f"{settings.framework} has no {settings.device}: {reason}")
    values = {a.name: a.default for a in AXES if a.default is not ...}
    values.update(
        workload=SERVE.name, framework=settings.framework, device=settings.device,
        precision=settings.precision, batch_size=1, max_batch_size=settings.max_batch_size,
        batch_timeout_ms=settings.batch_timeout_ms,
    )  # fmt: skip
    key = CellKey(**{MODEL: settings.model}, **normalize(values))
    policy = Policy(settings.max_batch_size, settings.batch_timeout_ms / 1e3)
    workloads, spec = build_buckets(backend, key, policy, settings.model_args, settings.seed)
    for bucket, work in workloads.items():  # compiled and run once before the server opens
        work.infer({k: np.zeros((bucket, *f.shape), f.dtype) for k, f in spec.features.items()})

    def run(features: dict[str, np.ndarray], bucket: int) -> np.ndarray:
        return np.asarray(workloads[bucket].infer(features), dtype=np.float32)

    return RequestBatcher(run, policy), spec


def features_from_v2(inputs: list[Any], spec: Any) -> dict[str, np.ndarray]:
    """A v2 request's input tensors as the model's features (by name, in its dtypes)."""
    got = {inp.name: inp.as_numpy() for inp in inputs}
    missing = sorted(set(spec.features) - set(got))
    if missing:
        raise ValueError(
            f"inputs {sorted(got)}; expected tensors named {sorted(spec.features)} "
            f"(missing {missing})"
        )
    return {k: _shaped(k, np.asarray(got[k]), f) for k, f in spec.features.items()}


def features_from_instances(payload: Any, spec: Any) -> dict[str, np.ndarray]:
    """TF Serving's row format: ``{"instances": [{feature: value}, ...]}``; a model with one
    feature also takes bare values per row."""
    rows = payload.get("instances") if isinstance(payload, dict) else None
    if not isinstance(rows, list) or not rows:
        raise ValueError("expected a body {'instances': [...]} with at least one row")
    names = list(spec.features)
    if not isinstance(rows[0], dict):
        if len(names) != 1:
            raise ValueError(f"rows must be objects naming the features {names}")
        rows = [{names[0]: r} for r in rows]
    return {k: _shaped(k, np.asarray([r[k] for r in rows]), f) for k, f in spec.features.items()}


def _shaped(name: str, value: np.ndarray, feature: Any) -> np.ndarray:
    want = tuple(feature.shape)
    if value.shape[1:] != want:
        raise ValueError(f"input {name!r} has shape {list(value.shape)}; expected [rows, {want}]")
    return value.astype(feature.dtype)


def serve(settings: ServeSettings) -> None:
    """Build, compile, and serve until interrupted (KServe handles SIGINT and SIGTERM)."""
    if importlib.util.find_spec("kserve") is None:  # before minutes of building and compiling
        raise RuntimeError(f"the kserve package is not installed; {INSTALL_HINT}")
    batcher, spec = build_predictor(settings)
    # KServe parses sys.argv when imported; bench's own flags are not its.
    sys.argv = sys.argv[:1]
    try:
        import kserve
        from kserve import InferOutput, InferRequest, InferResponse
    except ImportError as exc:
        raise RuntimeError(f"the kserve package is not installed ({exc}); {INSTALL_HINT}") from exc

    class BenchModel(kserve.Model):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(settings.name)
            self.ready = True

        async def predict(
            self, payload: Any, headers: Any = None, response_headers: Any = None
        ) -> Any:
            if isinstance(payload, InferRequest):
                features = features_from_v2(payload.inputs, spec)
                out = await asyncio.wrap_future(batcher.submit(features))
                tensor = InferOutput(OUTPUT_NAME, list(out.shape), "FP32")
                tensor.set_data_from_numpy(out, binary_data=False)
                return InferResponse(
                    response_id=payload.id or str(uuid.uuid4()),
                    model_name=self.name,
                    infer_outputs=[tensor],
                )
            features = features_from_instances(payload, spec)
            out = await asyncio.wrap_future(batcher.submit(features))
            return {"predictions": out.tolist()}

    print(
        f"bench serve: {settings.model} ({settings.framework}, {settings.device}, max batch "
        f"{settings.max_batch_size}, timeout {settings.batch_timeout_ms:g} ms) as "
        f"{settings.name!r}: http://127.0.0.1:{settings.http_port} (v2 REST, v1 :predict) and "
        f"127.0.0.1:{settings.grpc_port} (v2 gRPC)",
        flush=True,
    )
    # KServe logs a line or more per request (access log, gRPC method, latency trace): on a
    # loaded server that is measurable work, and not what a deployment tuned for latency
    # keeps. Warnings and errors still show.
    for name in ("kserve", "kserve.trace", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
    server = kserve.ModelServer(
        http_port=settings.http_port,
        grpc_port=settings.grpc_port,
        workers=1,
        enable_grpc=True,
        enable_latency_logging=False,
    )
    try:
        server.start([BenchModel()])
    finally:
        batcher.stop()
