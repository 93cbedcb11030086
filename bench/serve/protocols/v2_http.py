"""``v2-http``: the Open Inference Protocol (KServe v2, Triton) over REST."""

from __future__ import annotations

from bench.serve import wire
from bench.serve.protocols import WireProtocol

PROTOCOL = WireProtocol(
    name="v2-http",
    help="the Open Inference Protocol (KServe, Triton) over REST",
    transport="http",
    encode=lambda features, model, request_id: wire.v2_json_request(features, request_id),
    decode=wire.v2_json_response,
    infer_path=lambda base, model: f"{base}/v2/models/{model}/infer",
    ready_paths=lambda base, model: (f"{base}/v2/health/ready", f"{base}/v2/models/{model}/ready"),
    module=__name__,
)
