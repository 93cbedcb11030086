"""``v2-grpc``: the Open Inference Protocol over gRPC (``GRPCInferenceService/ModelInfer``)."""

from __future__ import annotations

from typing import Any

from bench.serve import wire
from bench.serve.protocols import WireProtocol


def _ready(channel: Any, model: str, timeout: float, metadata: Any) -> bool:
    """ServerReady, then ModelReady: both must say ready."""
    msgs = wire.grpc_messages()
    for method, req, resp in (
        ("ServerReady", msgs["ServerReadyRequest"](), "ServerReadyResponse"),
        ("ModelReady", msgs["ModelReadyRequest"](name=model), "ModelReadyResponse"),
    ):
        call = channel.unary_unary(
            wire.GRPC_SERVICE + method,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=msgs[resp].FromString,
        )
        if not call(req, timeout=timeout, metadata=metadata).ready:
            return False
    return True


PROTOCOL = WireProtocol(
    name="v2-grpc",
    help="the Open Inference Protocol over gRPC (KServe, Triton)",
    transport="grpc",
    encode=wire.grpc_request,
    decode=wire.grpc_response,
    grpc_method=wire.GRPC_SERVICE + "ModelInfer",
    grpc_ready=_ready,
    module=__name__,
)
