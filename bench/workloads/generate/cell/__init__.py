"""Measure one ``workload: generate`` cell in the worker: the zoo decoder under a load of
generation requests, in the worker's own engine (``bench.serve.generation.engine``).

The backend compiles the decoder for the cell's slots, cache length and prompt buckets before
any load (``CompiledDecoder``); a few warm-up requests run offline and uncounted; then, by
``arrivals`` and ``target_qps``: one load at a rate, every request at once (``offline``), or the
search for the highest rate whose requests meet the slo (``bench.serve.search``, as serve cells
search), bounded above by the offline request rate. A retrace under load makes the cell
invalid. The record keeps every probed load (``generate.probes``) and puts the reported load's
numbers into ``metrics``; per-request TTFT and TPOT and per-step decode rates go in
``samples`` for the gate.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from bench.backends import registry as backends
from bench.measure.cost import price_per_hour
from bench.measure.flops import peak_bandwidth
from bench.measure.host_memory import peak_rss_metric, reset_peak_rss
from bench.metrics import metric
from bench.modeldef import load_model
from bench.serve.generation import engine, lengths
from bench.serve.generation.requests import GenRequest
from bench.serve.generation.summary import GenSlo, engine_numbers, summarize
from bench.serve.search import search
from bench.workloads.cell.context import cpu_peak
from bench.workloads.cell.message import CellMessage
from bench.workloads.generate.cell.metrics import generation_metrics

LOW_FRACTION = 1 / 16  # the search's default low end: this share of the offline rate


def slo_of(msg: CellMessage) -> GenSlo:
    slo = msg.slo or {}

    def seconds(name: str) -> float | None:
        return None if slo.get(name) is None else float(slo[name]) / 1e3

    return GenSlo(float(slo.get("percentile", 99.0)), seconds("ttft_ms"), seconds("tpot_ms"),
                  seconds("latency_ms"))  # fmt: skip


class Loads:
    """The requests of each load of the cell: drawn from the scenario's lengths, or its trace
    replayed (all at once offline; else its arrival times scaled to the rate asked)."""

    def __init__(self, msg: CellMessage, max_prompt: int) -> None:
        self.gen, self.key, self.seed = msg.generate, msg.key, msg.seed
        self.max_prompt = max_prompt

    def at(
        self, rate: float | None, count: int | None = None, seed: int | None = None
    ) -> list[GenRequest]:
        gen, key = self.gen, self.key
        kind = "offline" if rate is None else str(key["arrivals"])
        seed = self.seed if seed is None else seed
        rows = gen.get("trace_rows")
        if rows and count is None:
            requests = lengths.from_trace([tuple(r) for r in rows], seed)
            if rate is None:
                return [
                    GenRequest(r.index, 0.0, r.prompt_tokens, r.output_tokens, r.seed)
                    for r in requests
                ]
            span = requests[-1].arrival
            scale = (len(requests) - 1) / span / rate if span > 0 else 0.0
            return [
                GenRequest(r.index, r.arrival * scale, r.prompt_tokens, r.output_tokens, r.seed)
                for r in requests
            ]
        return lengths.draw(
            count=count or gen["requests"], prompt=gen["prompt_tokens"], output=gen["output_tokens"],
            arrivals_kind=kind, rate=rate, seed=seed, max_prompt=self.max_prompt,
            cache_len=int(key["cache_len"]), burstiness=gen.get("burstiness", 1.0),
        )  # fmt: skip


def measure(backend: Any, msg: CellMessage) -> dict[str, Any]:
    key, gen = msg.key, msg.generate
    if msg.processes > 1:
        reason = "workload: generate runs on one host; a multi-host run skips its generate cells"
        return {"status": "skipped", "reason": reason, "flags": [], "metrics": {}}
    rss_reset = reset_peak_rss()
    model = load_model(key["model"])
    args = model.Args.model_validate(msg.model_args)
    module = importlib.import_module(backends.module(str(key["framework"]), "generate"))
    slots, cache_len = int(key["slots"]), int(key["cache_len"])
    buckets = [int(b) for b in gen["prompt_buckets"]]
    build_start = time.perf_counter()
    decoder = module.build_decoder(
        model, args, key["precision"], slots, cache_len, buckets, float(gen["temperature"]),
        msg.seed, device=key["device"], xla=bool(key.get("xla", True)),
    )  # fmt: skip
    vocab = int(args.vocab_size)

    def prompts(r: GenRequest) -> np.ndarray:
        return lengths.prompt_ids(r, vocab)

    loads = Loads(msg, buckets[-1])
    scheduler = str(key["scheduler"])
    if gen.get("warmup_requests"):
        warm = loads.at(None, count=int(gen["warmup_requests"]), seed=msg.seed + 1)
        engine.run(decoder, warm, scheduler, prompts)  # type: ignore[arg-type]
    time_to_first = time.perf_counter() - build_start
    traces = decoder.trace_count()
    slo = slo_of(msg)
    runs: dict[float | None, Any] = {}

    def probe(rate: float | None) -> dict[str, Any]:
        run = engine.run(decoder, loads.at(rate), scheduler, prompts,  # type: ignore[arg-type]
                         deadline_s=float(gen["max_seconds"]))  # fmt: skip
        found = summarize(run.records, slo, rate, "offline" if rate is None else str(key["arrivals"]),
                          run.duration_s)  # fmt: skip
        found.update(engine_numbers(run.decode_steps, run.prefills))
        runs[rate] = run
        return found

    headline, probes, searched = _load(key, msg, probe, slo)
    retraced = decoder.trace_count() - traces
    status, reason, flags = "ok", "", []
    if retraced:
        status, reason = "invalid", f"the decoder retraced {retraced} time(s) under load"
    elif headline["answered"] == 0:
        status, reason = (
            "failed",
            f"every request failed: {next(iter(headline['error_reasons']), '')}",
        )
    if searched is not None and searched["max_qps"] is None:
        flags.append("slo_unmet")
        reason = reason or searched["reason"]
    elif searched is None and key["arrivals"] != "offline" and not headline["meets_slo"]:
        # Offline, every request arrives at once: the load is over capacity by design, its
        # latencies a queue's; it is judged by its goodput, not flagged.
        flags.append("slo_unmet")
        reason = reason or f"{slo.describe()} not met: {headline['slo_miss']}"
    if headline["errors"] and status == "ok":
        flags.append("generation_errors")

    known = {
        "compile_s": metric(decoder.compile_s, "s", decoder.compile_method),
        "time_to_first_result_s": metric(
            time_to_first,
            "s",
            "decoder built and compiled for every shape, plus its warm-up requests",
        ),
        "param_count": metric(decoder.param_count, "parameters", "decoder parameters"),
        "peak_host_rss_bytes": peak_rss_metric(rss_reset),
        **decoder.memory(),
        "price_per_hour_usd": price_per_hour(decoder.device_name, overrides=msg.pricing or None),
    }
    peak_flops = cpu_peak(backend, key["precision"]) if key["device"] == "cpu" else None
    metrics = generation_metrics(
        headline, slo, searched, known, model, args, key, decoder.device_name,
        peak_bandwidth(decoder.device_name), peak_flops,
    )  # fmt: skip
    run = runs[headline["offered_qps"]]
    samples = {
        "ttft_s": [r.ttft for r in run.records if r.ttft is not None],
        "tpot_s": [r.tpot for r in run.records if r.tpot is not None],
        "decode_tokens_per_s": [a / s for a, s in run.decode_steps if s > 0],
    }
    block = {
        "slo": {"percentile": slo.percentile, **{f"{n[:-2]}_ms": v * 1e3 for n, v in slo.limits()}},
        "scheduler": scheduler,
        "slots": slots,
        "cache_len": cache_len,
        "prompt_buckets": buckets,
        "temperature": gen["temperature"],
        "requests": gen["requests"] if not gen.get("trace_rows") else len(gen["trace_rows"]),
        **({"search": searched} if searched is not None else {}),
        "probes": probes,
    }
    return {"status": status, "reason": reason, "flags": flags, "metrics": metrics,
            "samples": samples, "input": {}, "generate": block}  # fmt: skip


def _load(
    key: Mapping[str, Any],
    msg: CellMessage,
    probe: Callable[[float | None], dict[str, Any]],
    slo: GenSlo,
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]:
    del slo  # each probe judges itself
    """The loads the cell asks for: (the reported one, every one, the search's summary)."""
    if key["arrivals"] == "offline":
        found = probe(None)
        return found, [found], None
    if key.get("target_qps") != "search":
        found = probe(float(key["target_qps"]))
        return found, [found], None
    offline = probe(None)
    top = offline["requests_per_s"] or 0.0
    rules = msg.measure["serve"]
    if top <= 0:
        why = "no request finished offline, so there is no rate to search below"
        return offline, [offline], {"max_qps": None, "bracket_qps": [0.0, None], "reason": why}
    low = rules["low_qps"] or top * LOW_FRACTION
    result = search(
        probe, low=min(low, top * 0.99), high=top, tolerance=rules["tolerance"],
        retries=rules.get("retries", 0),
    )  # fmt: skip
    found = {k: v for k, v in result.to_dict().items() if k != "probes"}
    found["offline_qps"] = top
    probes = result.to_dict()["probes"]
    met = [p for p in probes if p["meets_slo"]]
    headline = max(met, key=lambda p: p["offered_qps"]) if met else probes[0]
    return headline, [offline, *probes], found
