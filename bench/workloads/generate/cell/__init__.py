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
from typing import Any

import numpy as np

from bench.backends import registry as backends
from bench.measure.cost import price_per_hour
from bench.measure.flops import peak_bandwidth
from bench.measure.host_memory import peak_rss_metric, reset_peak_rss
from bench.metrics import compile_metric, metric
from bench.modeldef import load_model
from bench.serve.generation import engine, lengths
from bench.serve.generation.record import token_digests
from bench.serve.generation.requests import GenRequest
from bench.serve.generation.summary import engine_numbers, summarize
from bench.workloads.cell.context import cpu_peak
from bench.workloads.cell.message import CellMessage
from bench.workloads.generate.cell.loads import Loads, load_plan, slo_of
from bench.workloads.generate.cell.metrics import generation_metrics


def measure(backend: Any, msg: CellMessage) -> dict[str, Any]:
    if msg.key.get("endpoint", "in_process") != "in_process":
        from bench.workloads.generate.cell.endpoint import measure_endpoint_cell

        return measure_endpoint_cell(msg)
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

    headline, probes, searched = load_plan(msg, probe)
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
        "compile_s": compile_metric(
            decoder.compile_s, decoder.compile_method, getattr(decoder, "compile_cached", False)
        ),
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
        "token_digests": token_digests(run.records),
        **({"search": searched} if searched is not None else {}),
        "probes": probes,
    }
    return {"status": status, "reason": reason, "flags": flags, "metrics": metrics,
            "samples": samples, "input": {}, "generate": block}  # fmt: skip
