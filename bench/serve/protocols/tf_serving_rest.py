"""``tf-serving-rest``: TensorFlow Serving's REST API (also KServe v1 and a Vertex AI
endpoint's ``:predict``)."""

from __future__ import annotations

from bench.serve import wire
from bench.serve.protocols import WireProtocol


def _infer_path(base: str, model: str) -> str:
    # A full ':predict' URL (a Vertex AI endpoint) is used as it is.
    return base if base.endswith(":predict") else f"{base}/v1/models/{model}:predict"


def _ready_paths(base: str, model: str) -> tuple[str, ...]:
    # A bare predict URL (Vertex AI) has no health route: the load tells.
    return () if base.endswith(":predict") else (f"{base}/v1/models/{model}",)


PROTOCOL = WireProtocol(
    name="tf-serving-rest",
    help="TensorFlow Serving's REST API (KServe v1, Vertex AI)",
    transport="http",
    encode=lambda features, model, request_id: wire.tf_serving_request(features),
    decode=wire.tf_serving_response,
    infer_path=_infer_path,
    ready_paths=_ready_paths,
    module=__name__,
)
