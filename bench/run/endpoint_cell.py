"""Measure one ``workload: serve`` cell whose ``endpoint`` names a model server on the network.

The same load as an in-process serve cell (``bench.run.serve_cell``): the same seeded pool of
synthetic requests from the model's data spec (request i carries row i % POOL, so an endpoint
cell and an in-process cell of one scenario send the same inputs), the same open-loop schedule,
the same latency definition (scheduled arrival to the answer on this host), the same rules per
rate and the same search for the highest rate that meets the SLO. Bodies are encoded before the
load, so the client's encoding is not in the measured path.

The server is a black box: its framework, device and batching are the cell's axes as the
scenario states them (``bench serve`` sets them from its flags), not something seen from here.
The search's top rate is the server's closed-loop capacity, measured first with every sender
busy (the analogue of the offline throughput of an in-process cell). Nothing here imports a
framework: the worker runs these cells even where its framework or device is missing.

A server that never becomes ready fails the cell with the reason; requests that fail count as
infinitely late and their share is the ``error_rate`` metric; the sweep goes on either way.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

from bench.axes import CellKey
from bench.inputs.synthetic import make_batch
from bench.measure.cost import price_per_hour
from bench.measure.derive import Basis, Inputs, derive
from bench.metrics import metric, unavailable
from bench.modeldef import load_model
from bench.run.serve_cell import LOW_FRACTION, POOL, serve_metrics
from bench.serve.endpoint import Client, Endpoint, EndpointError
from bench.serve.loadgen import Load
from bench.serve.probe import measure_remote_rate, measure_remote_single_stream
from bench.serve.remote import RemoteTrace, answer
from bench.serve.search import search
from bench.serve.summary import Slo

# The capacity estimate: a closed loop at 1, 2, 4 ... senders (up to max_in_flight), each for
# CAPACITY_STEP_S, until a doubling adds less than CAPACITY_GAIN; the best rate seen. Past the
# server's saturation more senders only queue in the server and crowd the client's threads:
# 64 senders at once measured less throughput from `bench serve` than 8 did.
CAPACITY_STEP_S = 0.5
CAPACITY_GAIN = 1.10
GROW_STEPS = 3  # where the capacity meets the SLO, rates up to 8x it are tried
ALONE_CALLS = 10  # requests sent one at a time first: the round trip with no load


def endpoint_of(key: CellKey, msg: dict[str, Any]) -> Endpoint:
    spec = (msg.get("endpoints") or {}).get(key["endpoint"])
    if spec is None:
        raise ValueError(f"no endpoint named {key['endpoint']!r} in the scenario's endpoints:")
    return Endpoint(**spec)


def request_bodies(client: Client, key: CellKey, msg: dict[str, Any]) -> tuple[list[bytes], Any]:
    """One body per row of the cell's request pool (the in-process cells' pool) and the pool."""
    model = load_model(key["model"])
    spec = model.data_spec(model.Args.model_validate(msg["model_args"]))
    pool = make_batch(spec, POOL, msg["seed"] + 1)
    # The features only: the pool's label is the training target, not a model input.
    bodies = [
        client.encode({k: pool[k][i : i + 1] for k in spec.features}, str(i)) for i in range(POOL)
    ]
    return bodies, pool


def measure_endpoint_cell(
    key: CellKey, msg: dict[str, Any], keep: list[RemoteTrace] | None = None
) -> dict[str, Any]:
    """The cell's record. ``keep``: a list that receives each open-loop run's trace with every
    answer's predictions (the end-to-end test checks them against in-process predictions)."""
    endpoint = endpoint_of(key, msg)
    found: dict[str, Any] = {"endpoint": endpoint.to_record()}
    try:
        client = Client(endpoint)
    except EndpointError as exc:
        return _failed(str(exc), found)
    try:
        return _measure(client, key, msg, found, keep)
    finally:
        client.close()


def _failed(reason: str, found: dict[str, Any]) -> dict[str, Any]:
    return {"status": "failed", "reason": reason, "flags": [], "metrics": {}, "serve": found}


def _measure(
    client: Client,
    key: CellKey,
    msg: dict[str, Any],
    found: dict[str, Any],
    keep: list[RemoteTrace] | None,
) -> dict[str, Any]:
    try:
        found["ready_after_s"] = client.wait_ready()
    except EndpointError as exc:
        return _failed(str(exc), found)
    build_start = time.perf_counter()
    bodies, _ = request_bodies(client, key, msg)
    searched = key.get("target_qps") == "search"
    # The search's top is the server's capacity; a cell at a set rate needs only the round
    # trip alone (which also proves the endpoint answers before any load).
    alone, capacity, senders, problem = _capacity(client, bodies, searched)
    if problem:
        return _failed(f"endpoint {client.endpoint.describe()}: {problem}", found)
    time_to_first = time.perf_counter() - build_start

    rules = msg["measure"]["serve"]
    load = Load(
        rules["min_queries"], rules["min_seconds"], rules["warmup_queries"],
        rules["max_seconds"], rules["drain_s"],
    )  # fmt: skip
    slo = Slo(msg["slo"]["percentile"], msg["slo"]["latency_ms"] / 1e3)
    seed, arrivals = msg["seed"], key["arrivals"]
    max_qps = None
    if arrivals == "single_stream":
        headline = measure_remote_single_stream(client, bodies, load, slo)
        probes = [headline]
    elif searched:
        floor = rules["min_queries"] / rules["max_seconds"]
        low = rules["low_qps"] or max(capacity * LOW_FRACTION, floor)
        hopeless = (
            f"a single request alone takes {alone * 1e3:.3g} ms (round trip, no load), over "
            f"the SLO's {slo.latency_s * 1e3:g} ms"
            if alone > slo.latency_s
            else ""
        )
        result = search(
            lambda r: measure_remote_rate(client, bodies, arrivals, r, load, slo, seed, keep),
            low=min(low, capacity * 0.99),
            high=capacity,
            tolerance=rules["tolerance"],
            hopeless=hopeless,
            floor=floor,
            retries=rules.get("retries", 0),
            # The capacity a closed loop of Python senders measured is an estimate, not a
            # bound: the server may serve more under open-loop load (its batches fill).
            grow=GROW_STEPS,
        )
        found["search"] = {k: v for k, v in result.to_dict().items() if k != "probes"}
        probes = result.to_dict()["probes"]
        met = [p for p in probes if p["meets_slo"]]
        headline = max(met, key=lambda p: p["offered_qps"]) if met else probes[0]
        max_qps = result.max_qps
    else:
        rate = float(key["target_qps"])
        headline = measure_remote_rate(client, bodies, arrivals, rate, load, slo, seed, keep)
        probes = [headline]

    status, reason, flags = "ok", "", []
    if headline["answered"] == 0:
        top = next(iter(headline["error_reasons"]), "no request answered")
        status, reason = "failed", f"every request failed: {top}"
    elif not headline["valid"]:
        status, reason = "invalid", headline["invalid_reason"]
    if headline["errors"] and status == "ok":
        flags.append("endpoint_errors")
        top = next(iter(headline["error_reasons"]))
        reason = (
            f"{headline['errors']} of {headline['queries']} requests failed "
            f"({headline['error_rate']:.2%}), most often: {top}"
        )

    metrics: dict[str, Any] = {
        "time_to_first_result_s": metric(
            time_to_first, "s", "request bodies encoded, round trips alone, capacity measured"
        ),
        **serve_metrics(headline, slo),
        **_endpoint_metrics(headline, client),
    }
    if searched:
        if max_qps is None:
            why = found["search"]["reason"]
            flags.append("slo_unmet")
            reason = reason or why
            metrics["max_compliant_qps"] = unavailable(why, "requests/s")
        else:
            metrics["max_compliant_qps"] = metric(
                max_qps, "requests/s",
                f"highest offered rate measured to meet {slo.describe()} at the endpoint; "
                f"bracket {found['search']['bracket_qps']} searched up to its closed-loop "
                f"capacity ({capacity:.4g} requests/s)",
            )  # fmt: skip
            if found["search"]["bracket_qps"][1] is None:
                flags.append("slo_met_at_offline_rate")
    elif not headline["meets_slo"] and status == "ok":
        flags.append("slo_unmet")
    # The price is the server's device's, as the scenario names it (pricing: overrides it).
    metrics["price_per_hour_usd"] = price_per_hour(
        key["device"], overrides=msg.get("pricing") or None
    )
    rate = metrics["max_compliant_qps"].get("value") if searched else headline.get("served_qps")
    if rate and status == "ok":
        how = "requests/s at the max compliant rate" if searched else "requests answered / s"
        basis = Basis(1, 1.0 / rate, f"{how} (a request is one example)")
        metrics.update(derive(metrics, basis, Inputs(1, None)))
        metrics.pop("mfu", None)
    else:
        metrics["examples_per_s"] = unavailable(reason or "no request answered", "examples/s")
    found.update(
        {
            "policy": {
                "max_batch_size": key.get("max_batch_size"),
                "batch_timeout_ms": key.get("batch_timeout_ms"),
                "stated_by": "the scenario (the server's own setting, not seen by the client)",
            },
            "alone_round_trip_s": alone,
            **(
                {
                    "offline_qps": capacity,
                    "capacity_method": f"closed loop, {senders} senders busy: the best of 1, "
                    f"2, 4 ... senders (at most max_in_flight={client.endpoint.max_in_flight}), "
                    f"{CAPACITY_STEP_S:g} s each, until a doubling added under "
                    f"{CAPACITY_GAIN - 1:.0%}",
                }
                if searched
                else {}
            ),
            "slo": {"percentile": slo.percentile, "latency_ms": slo.latency_s * 1e3},
            "probes": probes,
        }
    )
    return {
        "status": status,
        "reason": reason,
        "flags": flags,
        "metrics": metrics,
        "samples": {},
        "input": {},
        "serve": found,
    }


def _capacity(client: Client, bodies: list[bytes], ramp: bool) -> tuple[float, float, int, str]:
    """(median round trip alone, closed-loop requests/s at the best number of senders, that
    number, problem); with ``ramp`` False, the round trip alone only.

    The problem is the first failure's reason when the endpoint fails requests sent with no
    load at all: then no rate can be measured, and the cell says why."""
    send = client.sender()
    times, first_error = [], ""
    for i in range(ALONE_CALLS):
        t0 = time.perf_counter()
        try:
            answer(send, bodies[i % len(bodies)])
        except EndpointError as exc:
            first_error = first_error or str(exc)
            continue
        times.append(time.perf_counter() - t0)
    send.close()
    if not times:  # some failures are the load's to count; all of them are the endpoint's
        return 0.0, 0.0, 0, f"every request sent alone failed: {first_error}"
    alone = statistics.median(times)
    if not ramp:
        return alone, 0.0, 0, ""
    most = client.endpoint.max_in_flight
    best, best_n, n, failures = 0.0, 0, 1, []
    while True:
        rate, failed = _closed_loop(client, bodies, n, CAPACITY_STEP_S)
        failures += failed
        gained = rate > best * CAPACITY_GAIN
        if rate > best:
            best, best_n = rate, n
        if not gained or n >= most:
            break
        n = min(2 * n, most)
    if best <= 0:
        why = failures[0] if failures else "no answer under load"
        return alone, 0.0, 0, f"no request answered with up to {n} in flight: {why}"
    return alone, best, best_n, ""


def _closed_loop(
    client: Client, bodies: list[bytes], senders: int, seconds: float
) -> tuple[float, list[str]]:
    """Requests/s answered with ``senders`` each sending the next request on its answer, and
    the failures' reasons."""
    stop = time.perf_counter() + seconds
    counts = [0] * senders
    failures: list[str] = []

    def loop(slot: int) -> None:
        s = client.sender()
        s.open()
        i = slot
        while time.perf_counter() < stop:
            try:
                answer(s, bodies[i % len(bodies)])
                counts[slot] += 1
            except EndpointError as exc:
                failures.append(str(exc))
            i += senders
        s.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(k,), daemon=True) for k in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + client.endpoint.timeout_s)
    return sum(counts) / (time.perf_counter() - start), failures


def _endpoint_metrics(probe: dict[str, Any], client: Client) -> dict[str, Any]:
    at = (
        f"{probe['arrivals']} arrivals at {probe['offered_qps']:.4g} QPS offered"
        if probe["offered_qps"]
        else "single stream"
    )
    return {
        "error_rate": metric(
            probe["error_rate"], "fraction",
            f"requests that failed, {at}; reasons: {probe['error_reasons'] or 'none'}",
            count=probe["errors"],
        ),
        "round_trip_s": {
            "unit": "s",
            "method": f"request sent to its answer read on this host, {at} "
            f"({client.endpoint.describe()})",
            **probe["round_trip_s"],
        },
        "client_wait_s": {
            "unit": "s",
            "method": f"handed over to sent: waiting for one of max_in_flight="
            f"{probe['max_in_flight']} senders, {at}; {probe['in_flight_full']} requests "
            "found all busy",
            **probe["client_wait_s"],
        },
    }  # fmt: skip
