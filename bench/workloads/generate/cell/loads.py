"""A generate cell's loads, the same in process and against an endpoint: the requests of each
load (drawn lengths or the trace), the scenario's slo, and the plan the cell's key asks for
(offline, one rate, or the search for the highest rate that meets the slo)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.serve.generation import lengths
from bench.serve.generation.requests import GenRequest
from bench.serve.generation.summary import GenSlo
from bench.serve.search import search
from bench.workloads.cell.message import CellMessage

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


def load_plan(
    msg: CellMessage, probe: Callable[[float | None], dict[str, Any]], grow: int = 0
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]:
    """The loads the cell asks for: (the reported one, every one, the search's summary). A
    search is bounded above by the offline request rate; ``grow``: rates up to ``2**grow``
    times it are tried where it meets the slo (an endpoint's offline rate is an estimate)."""
    key = msg.key
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
        retries=rules.get("retries", 0), grow=grow,
    )  # fmt: skip
    found = {k: v for k, v in result.to_dict().items() if k != "probes"}
    found["offline_qps"] = top
    probes = result.to_dict()["probes"]
    met = [p for p in probes if p["meets_slo"]]
    headline = max(met, key=lambda p: p["offered_qps"]) if met else probes[0]
    return headline, [offline, *probes], found
