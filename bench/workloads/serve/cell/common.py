"""The one serving path of a serve cell, whatever its target (``bench.serve.target``): the
load the scenario asks for (one rate, single stream, or the search for the highest rate that
meets the slo), the verdict and flags, the metrics of the reported rate, and the record.

The in-process cell (``inprocess``) and the endpoint cell (``endpoint``) only prepare their
target and what bounds the search (the offline throughput of the largest bucket, or the
endpoint's closed-loop capacity), and add what only they know (the model's compile time and
memory; the endpoint's readiness).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.measure.derive import Basis, Inputs, derive
from bench.metrics import metric, unavailable
from bench.serve.loadgen import Load
from bench.serve.probe import measure_rate, measure_single_stream
from bench.serve.search import search
from bench.serve.summary import PERCENTILES, Slo, stat_name
from bench.serve.target import Run, Target
from bench.workloads.cell.message import CellMessage

LOW_FRACTION = 1 / 16  # search's default low end: this share of the top rate


@dataclass(frozen=True)
class Plan:
    """What the cell's message asks of the load."""

    load: Load
    slo: Slo
    rules: Mapping[str, Any]
    arrivals: str
    target_qps: Any  # a rate, or "search"; None for single stream
    seed: int

    @classmethod
    def of(cls, msg: CellMessage) -> Plan:
        rules = msg.measure["serve"]
        load = Load(
            rules["min_queries"], rules["min_seconds"], rules["warmup_queries"],
            rules["max_seconds"], rules["drain_s"],
        )  # fmt: skip
        assert msg.slo is not None, "validation requires an slo for serve cells"
        slo = Slo(msg.slo["percentile"], msg.slo["latency_ms"] / 1e3)
        key = msg.key
        return cls(load, slo, rules, key["arrivals"], key.get("target_qps"), msg.seed)

    @property
    def searched(self) -> bool:
        return self.target_qps == "search"


@dataclass(frozen=True)
class Top:
    """What bounds the search: the highest rate to try, how it was found, and one request's
    time alone (a search is hopeless when that alone exceeds the SLO)."""

    qps: float
    how: str  # "the offline throughput of bucket 8", "its closed-loop capacity (...)"
    alone_s: float
    alone_how: str  # "bucket 1, no queue", "round trip, no load"
    # Rates up to 2**grow times the top are tried where it meets the SLO (an estimate, not a
    # bound: a server may serve more under open-loop load than a closed loop measured).
    grow: int = 0


@dataclass
class Measured:
    headline: dict[str, Any]
    probes: list[dict[str, Any]]
    search: dict[str, Any] | None = None
    max_qps: float | None = None


def measure_load(
    target: Target, plan: Plan, top: Top | None, keep: list[Run] | None = None
) -> Measured:
    """The rates the cell asks for, on ``target``."""
    load, slo = plan.load, plan.slo
    if plan.arrivals == "single_stream":
        headline = measure_single_stream(target, load, slo, keep)
        return Measured(headline, [headline])
    if not plan.searched:
        rate = float(plan.target_qps)
        headline = measure_rate(target, plan.arrivals, rate, load, slo, plan.seed, keep)  # type: ignore[arg-type]
        return Measured(headline, [headline])
    assert top is not None, "a search needs its top rate"
    rules = plan.rules
    # Below min_queries / max_seconds no rate can be a valid measurement.
    floor = rules["min_queries"] / rules["max_seconds"]
    low = rules["low_qps"] or max(top.qps * LOW_FRACTION, floor)
    hopeless = (
        f"a single request alone takes {top.alone_s * 1e3:.3g} ms ({top.alone_how}), over the "
        f"SLO's {slo.latency_s * 1e3:g} ms"
        if top.alone_s > slo.latency_s
        else ""
    )
    result = search(
        lambda r: measure_rate(target, plan.arrivals, r, load, slo, plan.seed, keep),  # type: ignore[arg-type]
        low=min(low, top.qps * 0.99),
        high=top.qps,
        tolerance=rules["tolerance"],
        hopeless=hopeless,
        floor=floor,
        retries=rules.get("retries", 0),
        grow=top.grow,
    )
    probes = result.to_dict()["probes"]
    met = [p for p in probes if p["meets_slo"]]
    headline = max(met, key=lambda p: p["offered_qps"]) if met else probes[0]
    found = {k: v for k, v in result.to_dict().items() if k != "probes"}
    return Measured(headline, probes, found, result.max_qps)


def verdict(measured: Measured, status: str = "ok", reason: str = "") -> tuple[str, str, list]:
    """Status, reason and flags from the reported rate (after any earlier verdict)."""
    headline, flags = measured.headline, []
    if status == "ok" and headline["answered"] == 0 and headline["errors"]:
        top = next(iter(headline["error_reasons"]))
        status, reason = "failed", f"every request failed: {top}"
    elif status == "ok" and not headline["valid"]:
        status, reason = "invalid", headline["invalid_reason"]
    if headline["errors"] and status == "ok":
        flags.append("endpoint_errors")
        top = next(iter(headline["error_reasons"]))
        reason = (
            f"{headline['errors']} of {headline['queries']} requests failed "
            f"({headline['error_rate']:.2%}), most often: {top}"
        )
    return status, reason, flags


def record(
    plan: Plan,
    measured: Measured,
    top: Top | None,
    target: Target,
    known: dict[str, Any],
    inputs: Inputs,
    verdict_so_far: tuple[str, str] = ("ok", ""),
) -> dict[str, Any]:
    """The cell's record: ``known`` holds the metrics only the target's cell knows (compile
    time, memory, price, FLOPs); ``inputs`` what throughput per device and tokens derive from."""
    status, reason, flags = verdict(measured, *verdict_so_far)
    headline, slo = measured.headline, plan.slo
    metrics: dict[str, Any] = {
        **known,
        **serve_metrics(headline, slo),
        **client_metrics(headline, target.describe()),
    }
    if plan.searched:
        assert top is not None and measured.search is not None
        if measured.max_qps is None:
            why = measured.search["reason"]
            flags.append("slo_unmet")
            reason = reason or why
            metrics["max_compliant_qps"] = unavailable(why, "requests/s")
        else:
            note = measured.search["reason"]
            metrics["max_compliant_qps"] = metric(
                measured.max_qps, "requests/s",
                f"highest offered rate measured to meet {slo.describe()}; bracket "
                f"{measured.search['bracket_qps']} searched from {top.how}"
                + (f"; {note}" if note else ""),
            )  # fmt: skip
            if measured.search["bracket_qps"][1] is None:
                # The SLO held at the top rate itself: the rate is a lower bound.
                flags.append("slo_met_at_offline_rate")
    elif not headline["meets_slo"] and status == "ok":
        flags.append("slo_unmet")
    # A search cell is worth its max compliant rate, or nothing where none met the SLO.
    rate = metrics["max_compliant_qps"].get("value") if plan.searched else headline["served_qps"]
    if rate and status == "ok":
        how = "requests/s at the max compliant rate" if plan.searched else "requests answered / s"
        basis = Basis(1, 1.0 / rate, f"{how} (a request is one example)")
        metrics.update(derive(metrics, basis, inputs))
        metrics.pop("mfu", None)  # no calibrated peak here: MFU is the offline cells' number
    else:
        metrics["examples_per_s"] = unavailable(reason or "no request answered", "examples/s")
    serve = {
        "target": target.kind,
        "slo": {"percentile": slo.percentile, "latency_ms": slo.latency_s * 1e3},
        "offline_qps": top.qps if top is not None else None,
        "top_method": top.how if top is not None else None,
        "alone_s": top.alone_s if top is not None else None,
        **({"search": measured.search} if measured.search is not None else {}),
        "probes": measured.probes,
    }
    return {
        "status": status,
        "reason": reason,
        "flags": flags,
        "metrics": metrics,
        "samples": {},
        "input": {},
        "serve": serve,
    }


def _at(probe: Mapping[str, Any]) -> str:
    if probe["offered_qps"]:
        return f"{probe['arrivals']} arrivals at {probe['offered_qps']:.4g} QPS offered"
    return "single stream"


def serve_metrics(probe: dict[str, Any], slo: Slo) -> dict[str, Any]:
    """The reported rate's numbers, in the registry's shapes (``bench.metrics``)."""
    at = _at(probe)
    lat = probe["latency_s"]
    stats = {stat_name(p): lat[stat_name(p)] for p in PERCENTILES}
    out: dict[str, Any] = {
        "request_latency_s": {
            "unit": "s",
            "method": f"scheduled arrival to result on the host, nearest-rank percentiles over "
            f"{probe['queries']} requests after {probe['warmup_queries']} warm-up ({at}); "
            "dropped and failed requests count as infinitely late",
            "n": lat["n"],
            **({"mean": lat["mean"], "max": lat["max"]} if "mean" in lat else {}),
            **{k: v for k, v in stats.items() if v is not None},
        },
        "late_requests": metric(
            probe["over_slo"] / max(1, probe["queries"]), "fraction",
            f"requests over the SLO latency ({slo.latency_s * 1e3:g} ms), {at}",
            count=probe["over_slo"],
        ),
        "dropped_requests": metric(
            probe["dropped"], "requests", f"unanswered when the load ended plus drain time, {at}"
        ),
        "issue_lateness_s": {
            "unit": "s",
            "method": "when the generator handed each request over minus when it was due",
            **probe["issue_lateness_s"],
        },
    }  # fmt: skip
    out.update(_batch_metrics(probe, at))
    return out


def _batch_metrics(probe: dict[str, Any], at: str) -> dict[str, Any]:
    if probe["batch_size"] is None:
        why = "the server's batches are not visible to a network client"
        return {
            "realised_batch_size": unavailable(why, "requests"),
            "queue_time_s": unavailable(why, "s"),
            "compute_time_s": unavailable(why, "s"),
        }
    return {
        "realised_batch_size": metric(
            probe["batch_size"]["mean"], "requests", f"mean requests per batch, {at}",
            max=probe["batch_size"]["max"], padding_waste=probe["padding_waste"],
        ),
        "queue_time_s": {
            "unit": "s", "method": f"scheduled arrival to its batch's start, {at}",
            **probe["queue_s"],
        },
        "compute_time_s": {
            "unit": "s", "method": f"its batch's start to results on the host, {at}",
            **probe["compute_s"],
        },
    }  # fmt: skip


def client_metrics(probe: dict[str, Any], where: str) -> dict[str, Any]:
    """What the client saw: failed requests, the round trip, and its own wait for a sender."""
    at = _at(probe)
    if probe["max_in_flight"] is None:
        wait = "no sender pool: the generator hands each request straight to the server"
    else:
        wait = (
            f"handed over to sent: waiting for one of max_in_flight={probe['max_in_flight']} "
            f"senders, {at}; {probe['in_flight_full']} requests found all busy"
        )
    return {
        "error_rate": metric(
            probe["error_rate"], "fraction",
            f"requests that failed, {at}; reasons: {probe['error_reasons'] or 'none'}",
            count=probe["errors"],
        ),
        "round_trip_s": {
            "unit": "s",
            "method": f"request sent to its answer read on this host, {at} ({where})",
            **probe["round_trip_s"],
        },
        "client_wait_s": {"unit": "s", "method": wait, **probe["client_wait_s"]},
    }  # fmt: skip
