"""Measure one ``workload: generate`` cell whose ``endpoint`` names an OpenAI-compatible
generation server on the network (vLLM, SGLang, TGI, KServe's Hugging Face runtime, Vertex AI,
``bench serve decoder``).

The same requests as the in-process cells of the scenario (``Loads``: the same seeded lengths,
arrivals and trace), streamed through ``bench.serve.generation.client_load.drive`` at the same
loads: offline (every request at once through ``max_in_flight`` senders), one rate, or the
search for the highest rate meeting the slo (``bench.serve.search``), bounded above by the
offline load's request rate, which is the server's closed-loop capacity at ``max_in_flight``
streams (an estimate measured by a Python client: rates up to 8x it are tried where it meets
the slo, as serve endpoint cells do). Each load is summarized by the in-process cells' own
``summarize``, so TTFT, TPOT, inter-token and end-to-end latency, tokens/s and goodput mean
the same; what only the engine sees (prefill rate, decode step, KV cache, bandwidth and MFU) is
unavailable with the reason.

Prompts: where the server is ``bench serve decoder`` (its model list says ``owned_by: bench``)
the requests carry the in-process cells' very token ids, so a greedy served cell generates the
in-process tokens; any other server gets synthesised text of about the asked length
(``prompt_text``), the length it counted kept per request.

What the client says of each load (``client_checks.facts``) is kept with it; a rate where the
generator fell behind, or where the sender slots bound the load and the slo was missed, was
decided by the client, not the server: that probe is invalid, as for serve endpoint cells.
Nothing here imports a framework: the worker runs these cells whatever it has.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench.measure.cost import price_per_hour
from bench.metrics import metric, unavailable
from bench.modeldef import load_model
from bench.serve.endpoint import EndpointError
from bench.serve.generation import lengths
from bench.serve.generation.client_checks import facts
from bench.serve.generation.client_load import GenLoad, default_prompt, drive
from bench.serve.generation.record import token_digests
from bench.serve.generation.requests import GenRequest
from bench.serve.generation.stream import GenEndpoint, StreamClient
from bench.serve.generation.summary import summarize
from bench.workloads.cell.message import CellMessage
from bench.workloads.generate.cell.loads import Loads, load_plan, slo_of
from bench.workloads.generate.cell.metrics import generation_metrics

GROW_STEPS = 3  # the offline rate is an estimate: rates up to 8x it are tried where it is met
ENGINE_ONLY = (
    "prefill_tokens_per_s", "decode_step_s", "kv_cache_bytes", "decode_bandwidth_util",
    "decode_mfu",
)  # fmt: skip
ENGINE_ONLY_WHY = (
    "measured inside the engine; an endpoint cell sees the server from outside, through its "
    "streams only"
)
OWNED_BY_BENCH = "bench"  # bench serve decoder's model list says so


def endpoint_of(msg: CellMessage) -> GenEndpoint:
    spec = msg.endpoints.get(msg.key["endpoint"])
    if spec is None:
        raise ValueError(f"no endpoint named {msg.key['endpoint']!r} in the scenario's endpoints:")
    return GenEndpoint.of(spec, float(msg.generate["temperature"]))


def measure_endpoint_cell(msg: CellMessage, keep: list[GenLoad] | None = None) -> dict[str, Any]:
    """The cell's record. ``keep``: a list that receives every load (tests read the tokens)."""
    endpoint = endpoint_of(msg)
    block: dict[str, Any] = {"endpoint": endpoint.to_record()}
    try:
        client = StreamClient(endpoint)
        block["ready_after_s"] = client.wait_ready()
    except EndpointError as exc:
        return _failed(str(exc), block)
    build_start = time.perf_counter()
    card = client.model_card() or {}
    model = load_model(msg.key["model"])
    args = model.Args.model_validate(msg.model_args)
    prompt = _prompts(card, int(args.vocab_size), block, msg)
    loads = Loads(msg, int(msg.generate["prompt_buckets"][-1]))
    gen = msg.generate
    slo = slo_of(msg)
    max_seconds = float(gen["max_seconds"])

    by_rate: dict[float | None, GenLoad] = {}

    def run(requests: list[GenRequest]) -> GenLoad:
        last = max((r.arrival for r in requests), default=0.0)
        load = drive(requests, endpoint, prompt=prompt, drain_s=max(0.0, max_seconds - last))
        if keep is not None:
            keep.append(load)
        return load

    if gen.get("warmup_requests"):
        warm = run(loads.at(None, count=int(gen["warmup_requests"]), seed=msg.seed + 1))
        if not any(r.ok for r in warm.records):
            why = next((r.error for r in warm.records if r.error), "no answer")
            return _failed(
                f"endpoint {endpoint.describe()}: every warm-up request failed: {why}", block
            )
    time_to_first = time.perf_counter() - build_start

    def probe(rate: float | None) -> dict[str, Any]:
        load = by_rate[rate] = run(loads.at(rate))
        arrivals = "offline" if rate is None else str(msg.key["arrivals"])
        ends = [r.end for r in load.records if r.ok and r.end is not None]
        found = summarize(load.records, slo, rate, arrivals, max(ends, default=load.seconds))
        found.update(_no_engine())
        found["client"] = facts(load)
        _judge(found)
        return found

    headline, probes, searched = load_plan(msg, probe, GROW_STEPS)
    known = {
        "time_to_first_result_s": metric(
            time_to_first, "s", "the server's model list read and its warm-up requests streamed"
        ),
        # The price is the server's device's, as the scenario names it (pricing: overrides it).
        "price_per_hour_usd": price_per_hour(msg.key["device"], overrides=msg.pricing or None),
    }
    metrics = generation_metrics(
        headline, slo, searched, known, model, args, msg.key, str(msg.key["device"]),
        unavailable(ENGINE_ONLY_WHY, "bytes/s"), None,
    )  # fmt: skip
    metrics.update({name: unavailable(ENGINE_ONLY_WHY, _unit(name)) for name in ENGINE_ONLY})
    offline = msg.key["arrivals"] == "offline"
    status, reason, flags = _verdict(headline, searched, slo.describe(), offline)
    block.update(
        {
            "slo": {"percentile": slo.percentile,
                    **{f"{n[:-2]}_ms": v * 1e3 for n, v in slo.limits()}},
            "requests": len(loads.at(None)),
            "token_digests": token_digests(by_rate[headline["offered_qps"]].records),
            **({"search": searched} if searched is not None else {}),
            "probes": probes,
        }
    )  # fmt: skip
    records = by_rate[headline["offered_qps"]].records
    samples = {
        "ttft_s": [r.ttft for r in records if r.ttft is not None],
        "tpot_s": [r.tpot for r in records if r.tpot is not None],
    }
    return {"status": status, "reason": reason, "flags": flags, "metrics": metrics,
            "samples": samples, "input": {}, "generate": block}  # fmt: skip


def _prompts(
    card: dict[str, Any], vocab: int, block: dict[str, Any], msg: CellMessage
) -> Callable[[GenRequest], str | list[int]]:
    """Token ids for bench's own server (the in-process cells' prompts), else text."""
    served = card.get("bench") if card.get("owned_by") == OWNED_BY_BENCH else None
    # A chat message is text: ids go only in a completions prompt.
    ids = msg.endpoints[msg.key["endpoint"]].get("protocol") == "openai-completions"
    if isinstance(served, dict) and ids:
        block["server"] = served
        # Each framework initialises the weights from the seed its own way: the tokens are
        # the in-process cells' where model, model_args, seed and framework are the server's.
        mine = {"model": msg.key["model"], "model_args": dict(msg.model_args), "seed": msg.seed,
                "framework": msg.key["framework"]}  # fmt: skip
        differ = [k for k, v in mine.items() if served.get(k) != v]
        if differ:
            block["server_note"] = (
                f"the server's {', '.join(differ)} differ from this cell's: its tokens are not "
                "the in-process cells'"
            )
        block["prompts"] = "token ids: the in-process cells' prompts (bench serve decoder)"
        return lambda r: lengths.prompt_ids(r, vocab).tolist()
    block["prompts"] = "synthesised text of about the asked tokens (prompt_text)"
    return default_prompt


def _no_engine() -> dict[str, Any]:
    """The engine's numbers a probe of an in-process cell carries, absent from outside."""
    return {
        "prefill_tokens_per_s": None, "prefills": 0, "decode_steps": 0,
        "decode_step_s_by_active": {}, "decode_step_s": None, "mean_active": None,
    }  # fmt: skip


def _judge(found: dict[str, Any]) -> None:
    """A rate the client decided is invalid: the generator fell behind the schedule (the rate
    offered was not the rate asked), or the sender slots bound the load and the slo was
    missed (the client's own queue may have missed it). Kept with the reason."""
    client = found["client"]["client"]
    behind = client["generator_behind"]
    bound = client["slots_bound"] and not found["meets_slo"]
    if behind or bound:
        found["valid"] = False
        found["invalid_reason"] = client["reason"]
        found["meets_slo"] = False


def _verdict(
    headline: dict[str, Any], searched: dict[str, Any] | None, slo: str, offline: bool
) -> tuple[str, str, list[str]]:
    """The in-process cells' rules (an offline load is over capacity by design: judged by its
    goodput, not flagged), and the client's flags with their reasons."""
    status, reason, flags = "ok", "", list(headline["client"]["flags"])
    if headline["answered"] == 0:
        status = "failed"
        reason = f"every request failed: {next(iter(headline['error_reasons']), '')}"
    elif not headline["valid"]:
        status, reason = "invalid", headline["invalid_reason"]
    if searched is not None and searched["max_qps"] is None:
        flags.append("slo_unmet")
        reason = reason or searched["reason"]
    elif searched is None and not offline and not headline["meets_slo"] and headline["valid"]:
        flags.append("slo_unmet")
        reason = reason or f"{slo} not met: {headline['slo_miss']}"
    if headline["errors"] and status == "ok":
        flags.append("generation_errors")
    tokens = headline["client"]["token_counts"]
    if tokens["flagged"]:
        reason = reason or (
            f"{tokens['disagree']} of {tokens['compared']} requests: the client's token count "
            "disagrees with the server's usage (over 5%): per-chunk figures do not describe tokens"
        )
    if "client_saturated" in flags:
        reason = reason or headline["client"]["client"]["reason"]
    return status, reason, flags


def _unit(name: str) -> str:
    return {
        "prefill_tokens_per_s": "tokens/s",
        "decode_step_s": "s",
        "kv_cache_bytes": "bytes",
    }.get(name, "fraction")


def _failed(reason: str, block: dict[str, Any]) -> dict[str, Any]:
    return {"status": "failed", "reason": reason, "flags": [], "metrics": {}, "generate": block}
