"""``bench serve``: put a model behind a KServe model server (``bench.run.model_server``).

Every flag is bounded here, before anything is built (``bench.limits`` says why each bound is
what it is), and a wrong one is one line and exit 2: a server is often started by a script or
a supervisor, whose log should say what was wrong, not repeat the usage.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from typing import Any, NoReturn

from bench.cli.common import EXIT_USAGE, bounded_int, print_error, pydantic_lines
from bench.limits import MAX_BATCH, MAX_BATCH_TIMEOUT_MS, MAX_SEED, MAX_SEQ_LEN

MAX_MODEL_ARGS_CHARS = 64 << 10  # a model's model_args are a few hundred characters
MAX_REQUEST_KB = 1 << 20  # 1 GiB: far past any one request of the zoo's models
MAX_WORKERS = 64  # each holds and runs a copy of the model; more than a host has cores
# What a model needs for a generate cell (bench.workloads.generate's SPEC.needs): such a model
# is served by the completions server, any other by KServe.
GENERATE_NEEDS = ("prefill_flops", "decode_flops", "kv_cache_bytes", "weight_bytes")
MAX_WAITING = 1 << 16
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # a path segment of every route


def cmd_serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from bench.modeldef import ModelError, load_model
    from bench.run.model_server import ServeSettings, serve
    from bench.serve.listen import ListenError, parse_host

    try:
        host = parse_host(args.host)
        model_args = json.loads(args.model_args)
        if not isinstance(model_args, dict):
            raise ValueError("--model-args: not a JSON object")
        model = load_model(args.model)
        model.Args.model_validate(model_args)
    except ListenError as exc:
        print_error(f"bench serve: {exc}")
        return EXIT_USAGE
    except ValidationError as exc:
        print_error(f"bench serve: --model-args: model_args.{pydantic_lines(exc)[0]}")
        return EXIT_USAGE
    except (ValueError, RecursionError, ModelError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print_error(f"bench serve: {args.model}: {first}")
        return EXIT_USAGE
    if all(hasattr(model, need) for need in GENERATE_NEEDS):
        return _serve_decoder(args, host, model_args, model)
    settings = ServeSettings(
        model=args.model, framework=args.framework, device=args.device,
        precision=args.precision, model_args=model_args, seed=args.seed,
        max_batch_size=args.max_batch_size, batch_timeout_ms=args.batch_timeout_ms,
        host=host, http_port=args.port, grpc_port=args.grpc_port, model_name=args.model_name,
        max_request_bytes=args.max_request_kb * 1024, workers=args.workers,
    )  # fmt: skip
    if args.workers > 1 and args.device != "cpu":
        print_error(
            f"bench serve: --workers {args.workers}: more than one worker needs --device cpu "
            f"(each would claim the {args.device}'s memory for its own copy of the model)"
        )
        return EXIT_USAGE
    try:
        serve(settings)
    except (RuntimeError, ListenError) as exc:
        print_error(f"bench serve: {exc}")
        return EXIT_USAGE
    return 0


def _serve_decoder(args: argparse.Namespace, host: str, model_args: dict, model: Any) -> int:
    """A generation model (one a generate cell can run): the OpenAI-compatible completions
    server over the engine (``bench.run.decoder_server``)."""
    from bench.run.decoder_server import DecoderSettings, serve
    from bench.serve.listen import ListenError
    from bench.workloads.generate import SPEC as GENERATE

    frameworks = GENERATE.accepts["framework"]
    if args.framework not in frameworks:
        print_error(
            f"bench serve: --framework {args.framework}: a generation model runs on "
            f"{' or '.join(frameworks)}; expected one of them"
        )
        return EXIT_USAGE
    positions = getattr(model.Args.model_validate(model_args), "max_positions", None)
    if positions is not None and args.cache_len > positions:
        print_error(
            f"bench serve: --cache-len {args.cache_len}: longer than the model's max_positions "
            f"({positions}); expected at most {positions}, or a larger max_positions in "
            "--model-args"
        )
        return EXIT_USAGE
    too_long = [b for b in args.prompt_buckets if b > args.cache_len - 1]
    if too_long or args.cache_len < 2:
        print_error(
            f"bench serve: --prompt-buckets {too_long[0] if too_long else ''}: expected prompt "
            f"lengths up to --cache-len - 1 ({args.cache_len - 1}): one position for output"
        )
        return EXIT_USAGE
    settings = DecoderSettings(
        model=args.model, framework=args.framework, device=args.device,
        precision=args.precision, model_args=model_args, seed=args.seed, slots=args.slots,
        cache_len=args.cache_len, prompt_buckets=tuple(args.prompt_buckets),
        temperature=args.temperature, host=host, port=args.port, model_name=args.model_name,
        max_request_bytes=args.max_request_kb * 1024, max_waiting=args.max_waiting,
    )  # fmt: skip
    try:
        serve(settings)
    except (RuntimeError, ListenError) as exc:
        print_error(f"bench serve: {exc}")
        return EXIT_USAGE
    return 0


def _buckets(text: str) -> list[int]:
    parts = text.split(",")
    if len(parts) > 64 or not all(p.strip().isdigit() and len(p.strip()) <= 7 for p in parts):
        raise argparse.ArgumentTypeError(
            f"{text[:40]!r}: expected prompt lengths separated by commas, e.g. 16,32,64"
        )
    found = sorted({int(p) for p in parts})
    if found[0] < 1:
        raise argparse.ArgumentTypeError(f"{text[:40]!r}: expected lengths of at least 1")
    return found


def _temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 2:
        raise argparse.ArgumentTypeError(f"{text[:40]!r}: expected a number from 0 to 2")
    return value


def _timeout_ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= MAX_BATCH_TIMEOUT_MS:  # NaN fails too
        raise argparse.ArgumentTypeError(
            f"{text[:40]!r}: expected milliseconds from 0 to {MAX_BATCH_TIMEOUT_MS:,g}"
        )
    return value


def _model_args(text: str) -> str:
    if len(text) > MAX_MODEL_ARGS_CHARS:
        raise argparse.ArgumentTypeError(
            f"{len(text):,} characters; expected a JSON object of at most {MAX_MODEL_ARGS_CHARS:,}"
        )
    return text


def _model_name(text: str) -> str:
    if text and not NAME.fullmatch(text):  # "": the model's own name
        raise argparse.ArgumentTypeError(
            f"{text[:40]!r}: expected 1 to 128 letters, digits, '_', '.' or '-' (a URL segment)"
        )
    return text


def add_parsers(sub: Any) -> None:
    from bench.backends.registry import names

    p = sub.add_parser(
        "serve",
        help="serve a model behind a KServe model server (Open Inference Protocol, REST + gRPC), "
        "or a decoder behind an OpenAI-compatible completions server",
        description="A generation model (bench serve decoder): an OpenAI-compatible server on "
        "--port (POST /v1/completions, streamed or not; GET /v1/models), the generation engine "
        "with continuous batching over --slots; --slots, --cache-len, --prompt-buckets, "
        "--temperature and --max-waiting apply to it only. Any other model: a KServe model "
        "server: v2 REST and v1 :predict on "
        "--port, v2 gRPC on --grpc-port, on 127.0.0.1 unless --host says otherwise. A "
        "request's mistakes are answered 400 (gRPC INVALID_ARGUMENT) with the reason; a body "
        "over --max-request-kb is refused (413, gRPC RESOURCE_EXHAUSTED) before it is read; "
        "loading and unloading models (KServe's model repository endpoints) is off; no line "
        "is logged per request.",
    )

    def one_line(message: str) -> NoReturn:
        print_error(f"bench serve: {message}")
        raise SystemExit(EXIT_USAGE)

    p.error = one_line  # type: ignore[method-assign]
    p.add_argument("model", help="a registered model or package.module:factory")
    p.add_argument("--framework", choices=names(), default="jax")
    p.add_argument("--device", choices=["cpu", "gpu", "tpu"], default="cpu")
    p.add_argument("--precision", choices=["float32", "bfloat16"], default="float32")
    p.add_argument(
        "--model-args", type=_model_args, default="{}",
        help=f"the model's model_args as JSON (at most {MAX_MODEL_ARGS_CHARS:,} characters)",
    )  # fmt: skip
    p.add_argument(
        "--seed", type=bounded_int(0, MAX_SEED), default=0,
        help="parameter seed (a scenario's seed:)",
    )  # fmt: skip
    p.add_argument(
        "--host", default="127.0.0.1",
        help="the address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every "
        "IPv4 interface, for other machines to reach it)",
    )  # fmt: skip
    p.add_argument("--port", type=bounded_int(1, 65535), default=8080, help="REST port")
    p.add_argument("--grpc-port", type=bounded_int(1, 65535), default=8081, help="gRPC port")
    p.add_argument(
        "--max-batch-size", type=bounded_int(1, MAX_BATCH), default=8,
        help="the most rows per batch (and per request)",
    )  # fmt: skip
    p.add_argument(
        "--batch-timeout-ms", type=_timeout_ms, default=2.0,
        help="how long a batch formed behind a running one may wait to fill (a request "
        "reaching an idle server runs at once)",
    )  # fmt: skip
    p.add_argument(
        "--max-request-kb", type=bounded_int(1, MAX_REQUEST_KB), default=4096,
        help="the largest request body (REST) or message (gRPC) in KiB, default 4096 (4 MiB); "
        "a larger one is refused before it is read",
    )  # fmt: skip
    p.add_argument(
        "--workers", type=bounded_int(1, MAX_WORKERS), default=1,
        help="server processes sharing the REST port, each with its own copy of the model and "
        "its own batcher (gRPC: the first); more capacity where cores are free (CPU only)",
    )  # fmt: skip
    p.add_argument(
        "--model-name", type=_model_name, default="",
        help="name on the server (default: the model's)",
    )  # fmt: skip
    p.add_argument(
        "--slots", type=bounded_int(1, MAX_BATCH), default=8,
        help="generation: sequences decoded together (the KV cache's rows)",
    )  # fmt: skip
    p.add_argument(
        "--cache-len", type=bounded_int(2, MAX_SEQ_LEN), default=256,
        help="generation: positions per KV cache row; a request's prompt and output must fit",
    )  # fmt: skip
    p.add_argument(
        "--prompt-buckets", type=_buckets, default=[],
        help="generation: prompt lengths prefill is compiled for, e.g. 16,32,64 (default: "
        "powers of two from 16, and --cache-len - 1); a longer prompt is refused",
    )  # fmt: skip
    p.add_argument(
        "--temperature", type=_temperature, default=0.0,
        help="generation: 0 (greedy, the default) or the sampling temperature every request "
        "must ask for",
    )  # fmt: skip
    p.add_argument(
        "--max-waiting", type=bounded_int(1, MAX_WAITING), default=1024,
        help="generation: requests in the server at once (decoding and queued); more are "
        "answered 503",
    )  # fmt: skip
    p.set_defaults(func=cmd_serve)
