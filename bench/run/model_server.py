"""``bench serve``: a zoo or user model behind a KServe model server (Open Inference Protocol
over REST and gRPC), with the dynamic batching that in-process serve cells measure.

The model is built the way a serve cell builds it: the backend's predict step once per bucket
(the powers of two up to ``max_batch_size``), compiled before the server opens, from the same
``seed`` and ``model_args``, so the predictions it serves are those an in-process cell computes
for the same inputs. Requests go through ``bench.serve.request_batcher`` (the same batching
rule) to those compiled steps. The framework and the ``kserve`` package are imported inside
functions only: ``bench --help`` imports neither.

Safe to start on a shared host: it listens on 127.0.0.1 unless ``host`` says otherwise, and
its ports are bound (REST) or checked (gRPC) before the model is built (``bench.serve.listen``);
KServe's parts are assembled without the model repository endpoints and per-request logs
(``bench.run.kserve_app``); a request the model cannot run is the client's 400 with the reason
(``bench.serve.request_parse``), and a body over ``max_request_bytes`` is refused unread.

Routes (KServe's): ``GET /v2/health/ready``, ``GET /v2/models/NAME/ready``, ``POST
/v2/models/NAME/infer`` (v2 REST), ``POST /v1/models/NAME:predict`` (TF-Serving-style rows),
and ``inference.GRPCInferenceService`` on the gRPC port.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import json
import logging
import sys
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.axes import AXES, MODEL, CellKey, normalize
from bench.backends import registry
from bench.serve import listen
from bench.serve.batching import Policy
from bench.serve.request_batcher import RequestBatcher
from bench.serve.request_parse import (
    RequestError,
    Tensor,
    features_from_instances,
    features_from_v2,
)

INSTALL_HINT = "pip install 'bench[serving]' (the kserve package)"
OUTPUT_NAME = "predictions"
DEFAULT_MAX_REQUEST_BYTES = 4 << 20  # gRPC's own default receive limit: 4 MiB


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
    host: str = listen.LOOPBACK
    http_port: int = 8080
    grpc_port: int = 8081
    model_name: str = ""  # default: the model's name
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    workers: int = 1  # processes on the REST port (bench.run.serve_workers)

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
    policy = Policy(settings.max_batch_size, settings.batch_timeout_ms / 1e3, "rows")
    workloads, spec = build_buckets(backend, key, policy, settings.model_args, settings.seed)
    for bucket, work in workloads.items():  # compiled and run once before the server opens
        work.infer({k: np.zeros((bucket, *f.shape), f.dtype) for k, f in spec.features.items()})

    def run(features: dict[str, np.ndarray], bucket: int) -> np.ndarray:
        return np.asarray(workloads[bucket].infer(features), dtype=np.float32)

    return RequestBatcher(run, policy), spec


def serve(
    settings: ServeSettings,
    build: Callable[[ServeSettings], tuple[RequestBatcher, Any]] = build_predictor,
) -> None:
    """Bind, build, compile, and serve until SIGINT or SIGTERM. ListenError (a ValueError) for
    an address or port that cannot be used, RuntimeError for a missing package or device:
    both before the model is built where they can be known then. ``build``: the predictor
    and its data spec (tests serve a numpy stand-in through the same server)."""
    from bench.run import serve_workers

    if importlib.util.find_spec("kserve") is None:  # before minutes of building and compiling
        raise RuntimeError(f"the kserve package is not installed; {INSTALL_HINT}")
    bound = listen.bind(settings.host, settings.http_port, settings.grpc_port)
    workers = []
    try:
        if settings.workers > 1:  # they build their models while this one builds its own
            where = f"{build.__module__}:{build.__qualname__}"
            workers = serve_workers.start(settings, bound.http.fileno(), where)
        batcher, spec = build(settings)
        try:
            _serve_model(
                settings, bound.http, bound.grpc_port, batcher, spec, banner(settings, bound)
            )
        finally:
            batcher.stop()
    finally:
        serve_workers.stop(workers)
        bound.close()


def banner(settings: ServeSettings, bound: listen.Listening) -> Callable[[], None]:
    """What the server prints once it accepts requests: where it really listens, who can reach
    it, and the limits it keeps."""
    host = settings.host
    processes = f", {settings.workers} worker processes" if settings.workers > 1 else ""

    def say() -> None:
        print(
            f"bench serve: {settings.model} ({settings.framework}, {settings.device}, max batch "
            f"{settings.max_batch_size}, timeout {settings.batch_timeout_ms:g} ms{processes}) "
            f"as {settings.name!r}, listening on http://{listen.address(host, bound.http_port)} "
            f"(v2 REST, v1 :predict) and {listen.address(host, bound.grpc_port)} (v2 gRPC), "
            f"reachable from {listen.reach(host)}; requests up to "
            f"{settings.max_request_bytes:,} bytes",
            flush=True,
        )

    return say


def _serve_model(
    settings: ServeSettings,
    sock: Any,
    grpc_port: int | None,
    batcher: RequestBatcher,
    spec: Any,
    on_start: Callable[[], None],
) -> None:
    """Serve REST on the bound socket ``sock`` and, where ``grpc_port`` is given, gRPC."""
    # KServe parses sys.argv when imported; bench's own flags are not its.
    sys.argv = sys.argv[:1]
    try:
        from kserve import ModelRepository
        from kserve.protocol.dataplane import DataPlane
    except ImportError as exc:
        raise RuntimeError(f"the kserve package is not installed ({exc}); {INSTALL_HINT}") from exc
    from bench.run import kserve_app

    # FastAPI deprecates the response class KServe's v1 route returns: once, and not bench's.
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")
    # Warnings and server faults to stderr; nothing per request (the access log is off).
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("bench serve: %(levelname)s %(name)s: %(message)s"))
    kserve_app.log.addHandler(handler)
    kserve_app.log.setLevel(logging.WARNING)

    repository = ModelRepository()
    repository.update(_model(settings, batcher, spec))
    dataplane = DataPlane(model_registry=repository)
    app = kserve_app.rest_app(dataplane, settings.max_request_bytes, "bench serve --max-request-kb")

    async def main() -> None:
        # Bound inside the loop: grpcio's asyncio server belongs to the loop it is made in.
        grpc = None
        if grpc_port is not None:
            size = settings.max_request_bytes
            grpc = kserve_app.grpc_server(dataplane, settings.host, grpc_port, size)
        await kserve_app.serve_both(app, sock, grpc, on_start)

    # Everything made so far (the framework, KServe, the compiled model: a few hundred thousand
    # objects) lives as long as the server: out of the collector's sight, a full collection
    # under load scans only what requests make (measured: 90 ms per full collection before,
    # a p99 of 100-150 ms at 16 connections).
    gc.collect()
    gc.freeze()
    with asyncio.Runner(loop_factory=kserve_app.loop_factory()) as runner:
        runner.run(main())


def _worker(argv: list[str]) -> None:
    """A further worker process (``bench.run.serve_workers``): REST only, on the inherited
    socket, with its own copy of the model."""
    import importlib
    import socket

    from bench.run import serve_workers

    settings = ServeSettings(**json.loads(argv[0]))
    module, _, name = argv[1].partition(":")
    build = getattr(importlib.import_module(module), name)
    sock = socket.socket(fileno=int(argv[2]))
    serve_workers.watch_parent()
    batcher, spec = build(settings)
    try:
        _serve_model(settings, sock, None, batcher, spec, lambda: None)
    finally:
        batcher.stop()


def _model(settings: ServeSettings, batcher: RequestBatcher, spec: Any) -> Any:
    """The KServe model: requests parsed and checked, then batched."""
    import kserve
    from kserve import InferOutput, InferRequest, InferResponse
    from kserve.errors import InferenceError, InvalidInput

    max_rows = settings.max_batch_size

    async def run(features: dict[str, np.ndarray]) -> np.ndarray:
        out = await asyncio.wrap_future(batcher.submit(features))
        if not np.isfinite(out).all():  # JSON would carry them as null
            raise InferenceError("the model computed NaN or infinite predictions")
        return out

    class BenchModel(kserve.Model):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(settings.name)
            self.ready = True
            self.enable_latency_logging = False  # a log line per request otherwise

        async def predict(
            self, payload: Any, headers: Any = None, response_headers: Any = None
        ) -> Any:
            try:
                if isinstance(payload, InferRequest):
                    tensors = [_tensor(inp) for inp in payload.inputs]
                    features = features_from_v2(tensors, spec, max_rows)
                else:
                    features = features_from_instances(payload, spec, max_rows)
            except RequestError as exc:
                raise InvalidInput(str(exc)) from None
            out = await run(features)
            if not isinstance(payload, InferRequest):
                return {"predictions": out.tolist()}
            tensor = InferOutput(OUTPUT_NAME, list(out.shape), "FP32")
            tensor.set_data_from_numpy(out, binary_data=False)
            return InferResponse(
                response_id=payload.id or str(uuid.uuid4()),
                model_name=self.name,
                infer_outputs=[tensor],
            )

    return BenchModel()


def _tensor(inp: Any) -> Tensor:
    """A v2 input as received: its JSON values, or its binary data read in its datatype."""
    values = inp.data
    # Binary data (gRPC raw_input_contents, REST's binary extension) is kept apart from the
    # JSON/contents values, which are then empty: KServe's own as_numpy reads it the same way.
    if getattr(inp, "_raw_data", None) is not None or values is None:
        try:
            values = inp.as_numpy()
        except (ValueError, TypeError) as exc:
            raise RequestError(f"input {inp.name!r}: {exc}") from None
    return Tensor(inp.name, inp.datatype, list(inp.shape or []), values)


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    _worker(sys.argv[2:])
