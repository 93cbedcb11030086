"""``bench serve decoder``: the zoo decoder behind an OpenAI-compatible completions server
(``bench.serve.generation.completions_app`` on Starlette and uvicorn), running the generation
engine with continuous batching.

The decoder is built the way a generate cell builds it (``bench.backends.<name>.generate``:
every prompt bucket and the decode step compiled before the server opens) from the same
``model_args`` and ``seed``, so a greedy request with a cell's prompt ids gets the tokens that
cell's engine generates. Safe to start on a shared host as ``bench serve`` is: 127.0.0.1 unless
``host`` says otherwise, the port bound before the model is built (``bench.serve.listen``), no
line logged per request, bodies over ``max_request_bytes`` refused unread.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import importlib.util
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.backends import registry
from bench.modeldef import load_model
from bench.serve import listen
from bench.serve.generation.completions_app import CompletionsServer
from bench.serve.generation.completions_request import Limits
from bench.serve.generation.decoder import CompiledDecoder

DEFAULT_MAX_REQUEST_BYTES = 1 << 20
INSTALL_HINT = "pip install 'bench[serving]' (Starlette and uvicorn serve the completions routes)"  # a prompt of a few thousand ids is some tens of KiB


@dataclass(frozen=True)
class DecoderSettings:
    model: str = "decoder"
    framework: str = "jax"
    device: str = "cpu"
    precision: str = "float32"
    model_args: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    slots: int = 8
    cache_len: int = 256
    prompt_buckets: tuple[int, ...] = ()  # default: powers of two from 16, and cache_len - 1
    temperature: float = 0.0
    host: str = listen.LOOPBACK
    port: int = 8000
    model_name: str = ""  # default: the model's name
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_waiting: int = 1024  # requests in the server at once (decoding and queued)

    @property
    def name(self) -> str:
        return self.model_name or self.model.replace(":", "-").replace(".", "-")

    @property
    def buckets(self) -> tuple[int, ...]:
        """Prompt buckets: as given, else ``bench.run.generate_block.buckets``'s default."""
        if self.prompt_buckets:
            return tuple(sorted(set(self.prompt_buckets)))
        top, found, b = self.cache_len - 1, [], 16
        while b < top:
            found.append(b)
            b *= 2
        return (*found, top)

    def served(self) -> dict[str, Any]:
        """What the model list says is served (a generate endpoint cell records it, and sends
        token ids where it names the scenario's model)."""
        keep = ("model", "framework", "device", "precision", "model_args", "seed", "slots",
                "cache_len", "temperature")  # fmt: skip
        out = {k: v for k, v in asdict(self).items() if k in keep}
        return {**out, "prompt_buckets": list(self.buckets), "scheduler": "continuous"}


def build_decoder(settings: DecoderSettings) -> tuple[CompiledDecoder, int]:
    """The compiled decoder and its vocabulary size."""
    backend = registry.load(settings.framework)
    backend.setup(settings.device, None)
    present, reason, _ = backend.probe(settings.device)
    if not present:
        raise RuntimeError(f"{settings.framework} has no {settings.device}: {reason}")
    model = load_model(settings.model)
    args = model.Args.model_validate(settings.model_args)
    module = importlib.import_module(registry.module(settings.framework, "generate"))
    decoder = module.build_decoder(
        model, args, settings.precision, settings.slots, settings.cache_len,
        list(settings.buckets), settings.temperature, settings.seed, device=settings.device,
    )  # fmt: skip
    return decoder, int(args.vocab_size)


def serve(settings: DecoderSettings, build: Any = build_decoder) -> None:
    """Bind, build, compile, serve until SIGINT or SIGTERM. ListenError for an address or port
    that cannot be used (before the model is built), RuntimeError for a missing device."""
    from bench.run import kserve_app

    missing = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:  # before minutes of building and compiling
        raise RuntimeError(f"{' and '.join(missing)} not installed; {INSTALL_HINT}")
    sock = listen.bind_http(settings.host, settings.port)
    try:
        decoder, vocab = build(settings)
        limits = Limits(settings.name, vocab, settings.buckets[-1], settings.cache_len,
                        settings.temperature)  # fmt: skip
        server = CompletionsServer(decoder, limits, settings.served(), settings.max_waiting)
        app = server.app(settings.max_request_bytes, "bench serve decoder --max-request-kb")
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("bench serve: %(levelname)s %(name)s: %(message)s"))
        logging.getLogger("uvicorn.error").addHandler(handler)
        # Everything built so far lives as long as the server: out of the collector's sight
        # (bench.run.model_server says why).
        gc.collect()
        gc.freeze()
        try:
            with asyncio.Runner(loop_factory=kserve_app.loop_factory()) as runner:
                runner.run(kserve_app.serve_both(app, sock, None, banner(settings, sock)))
        finally:
            server.engine.stop()
    finally:
        sock.close()


def banner(settings: DecoderSettings, sock: Any) -> Any:
    port = int(sock.getsockname()[1])

    def say() -> None:
        print(
            f"bench serve: {settings.model} ({settings.framework}, {settings.device}, "
            f"{settings.slots} slots, cache {settings.cache_len}, prompt buckets "
            f"{list(settings.buckets)}, continuous batching) as {settings.name!r}, listening on "
            f"http://{listen.address(settings.host, port)} (OpenAI /v1/completions, /v1/models), "
            f"reachable from {listen.reach(settings.host)}; requests up to "
            f"{settings.max_request_bytes:,} bytes",
            flush=True,
        )

    return say
