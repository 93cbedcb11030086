"""``bench serve``: put a model behind a KServe model server (``bench.run.model_server``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from bench.cli.common import EXIT_USAGE, err


def cmd_serve(args: argparse.Namespace) -> int:
    from bench.modeldef import ModelError, load_model
    from bench.run.model_server import ServeSettings, serve

    try:
        model_args = json.loads(args.model_args)
        if not isinstance(model_args, dict):
            raise ValueError("not a JSON object")
        model = load_model(args.model)
        model.Args.model_validate(model_args)
    except (ValueError, ModelError) as exc:
        err.print(f"bench serve: {args.model}: {exc}", style="red", markup=False)
        return EXIT_USAGE
    settings = ServeSettings(
        model=args.model, framework=args.framework, device=args.device,
        precision=args.precision, model_args=model_args, seed=args.seed,
        max_batch_size=args.max_batch_size, batch_timeout_ms=args.batch_timeout_ms,
        http_port=args.port, grpc_port=args.grpc_port, model_name=args.model_name,
    )  # fmt: skip
    try:
        serve(settings)
    except RuntimeError as exc:
        err.print(f"bench serve: {exc}", style="red", markup=False)
        return EXIT_USAGE
    return 0


def add_parsers(sub: Any) -> None:
    from bench.backends.registry import names

    p = sub.add_parser(
        "serve",
        help="serve a model behind a KServe model server (Open Inference Protocol, REST + gRPC)",
    )
    p.add_argument("model", help="a registered model or package.module:factory")
    p.add_argument("--framework", choices=names(), default="jax")
    p.add_argument("--device", choices=["cpu", "gpu", "tpu"], default="cpu")
    p.add_argument("--precision", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--model-args", default="{}", help="the model's model_args as JSON")
    p.add_argument("--seed", type=int, default=0, help="parameter seed (a scenario's seed:)")
    p.add_argument("--port", type=int, default=8080, help="REST port")
    p.add_argument("--grpc-port", type=int, default=8081, help="gRPC port")
    p.add_argument("--max-batch-size", type=int, default=8, help="the most requests per batch")
    p.add_argument(
        "--batch-timeout-ms", type=float, default=2.0,
        help="how long the oldest waiting request may wait for its batch to fill",
    )  # fmt: skip
    p.add_argument("--model-name", default="", help="name on the server (default: the model's)")
    p.set_defaults(func=cmd_serve)
