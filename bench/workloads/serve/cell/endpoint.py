"""Measure one ``workload: serve`` cell whose ``endpoint`` names a model server on the network.

The same load as an in-process serve cell (``inprocess``), through the same path (``common``):
the same seeded pool of synthetic requests from the model's data spec (request i carries row
i % POOL, so an endpoint cell and an in-process cell of one scenario send the same inputs), the
same open-loop schedule, the same latency definition (scheduled arrival to the answer on this
host), the same rules per rate and the same search for the highest rate that meets the SLO. Bodies are encoded before the
load, so the client's encoding is not in the measured path.

The server is a black box: its framework, device and batching are the cell's axes as the
scenario states them (``bench serve`` sets them from its flags), not something seen from here.
The search's top rate is the server's closed-loop capacity, measured first with as many
senders as raise it (the analogue of the offline throughput of an in-process cell). Nothing here imports a
framework: the worker runs these cells even where its framework or device is missing.

A server that never becomes ready fails the cell with the reason; requests that fail count as
infinitely late and their share is the ``error_rate`` metric; the sweep goes on either way.
"""

from __future__ import annotations

import dataclasses
import statistics
import threading
import time
from collections.abc import Mapping
from typing import Any

from bench.inputs.synthetic import make_batch
from bench.measure.cost import price_per_hour
from bench.measure.derive import Inputs
from bench.metrics import metric
from bench.modeldef import load_model
from bench.serve.endpoint import Client, Endpoint, EndpointError
from bench.serve.remote import EndpointTarget, answer
from bench.serve.target import RequestError, Run
from bench.workloads.cell.message import CellMessage, as_message
from bench.workloads.serve.cell.common import Plan, Top, measure_load, record
from bench.workloads.serve.cell.inprocess import POOL

# The capacity estimate: a closed loop at 1, 2, 4 ... senders (up to max_in_flight), each for
# CAPACITY_STEP_S, until a doubling adds less than CAPACITY_GAIN; the best rate seen. Past the
# server's saturation more senders only queue in the server and crowd the client's threads:
# 64 senders at once measured less throughput from `bench serve` than 8.
CAPACITY_STEP_S = 0.5
CAPACITY_GAIN = 1.10
GROW_STEPS = 3  # where the capacity meets the SLO, rates up to 8x it are tried
ALONE_CALLS = 10  # requests sent one at a time first: the round trip with no load


def endpoint_of(msg: CellMessage) -> Endpoint:
    spec = msg.endpoints.get(msg.key["endpoint"])
    if spec is None:
        raise ValueError(f"no endpoint named {msg.key['endpoint']!r} in the scenario's endpoints:")
    # A field the scenario left out is None: this client's default (a generate cell's
    # endpoint has other defaults, and fields of its own, which validation keeps off here).
    known = {f.name for f in dataclasses.fields(Endpoint)}
    return Endpoint(**{k: v for k, v in spec.items() if v is not None and k in known})


def request_bodies(client: Client, msg: CellMessage) -> tuple[list[bytes], Any]:
    """One body per row of the cell's request pool (the in-process cells' pool) and the pool."""
    model = load_model(msg.key["model"])
    spec = model.data_spec(model.Args.model_validate(msg.model_args))
    pool = make_batch(spec, POOL, msg.seed + 1)
    # The features only: the pool's label is the training target, not a model input.
    bodies = [
        client.encode({k: pool[k][i : i + 1] for k in spec.features}, str(i)) for i in range(POOL)
    ]
    return bodies, pool


def measure_endpoint_cell(
    msg: CellMessage | Mapping[str, Any], keep: list[Run] | None = None
) -> dict[str, Any]:
    """The cell's record. ``keep``: a list that receives each open-loop run with every answer's
    predictions (the end-to-end test checks them against in-process predictions)."""
    msg = as_message(msg)
    endpoint = endpoint_of(msg)
    block: dict[str, Any] = {"endpoint": endpoint.to_record()}
    try:
        client = Client(endpoint)
    except EndpointError as exc:
        return _failed(str(exc), block)
    try:
        return _measure(client, msg, block, keep)
    finally:
        client.close()


def _failed(reason: str, block: dict[str, Any]) -> dict[str, Any]:
    return {"status": "failed", "reason": reason, "flags": [], "metrics": {}, "serve": block}


def _measure(
    client: Client, msg: CellMessage, block: dict[str, Any], keep: list[Run] | None
) -> dict[str, Any]:
    try:
        block["ready_after_s"] = client.wait_ready()
    except EndpointError as exc:
        return _failed(str(exc), block)
    build_start = time.perf_counter()
    bodies, _ = request_bodies(client, msg)
    plan = Plan.of(msg)
    # The search's top is the server's capacity; a cell at a set rate needs only the round
    # trip alone (which also proves the endpoint answers before any load).
    alone, capacity, senders, problem = _capacity(client, bodies, plan.searched)
    if problem:
        return _failed(f"endpoint {client.endpoint.describe()}: {problem}", block)
    time_to_first = time.perf_counter() - build_start
    top = (
        Top(
            capacity,
            f"its closed-loop capacity ({capacity:.4g} requests/s: {senders} senders busy, "
            f"the best of 1, 2, 4 ... senders up to max_in_flight="
            f"{client.endpoint.max_in_flight}, {CAPACITY_STEP_S:g} s each, until a doubling "
            f"added under {CAPACITY_GAIN - 1:.0%})",
            alone,
            "round trip, no load",
            GROW_STEPS,
        )
        if plan.searched
        else None
    )
    target = EndpointTarget(client, bodies)
    measured = measure_load(target, plan, top, keep)
    key = msg.key
    known = {
        "time_to_first_result_s": metric(
            time_to_first, "s", "request bodies encoded, round trips alone, capacity measured"
        ),
        # The price is the server's device's, as the scenario names it (pricing: overrides it).
        "price_per_hour_usd": price_per_hour(key["device"], overrides=msg.pricing or None),
    }
    found = record(plan, measured, top, target, known, Inputs(1, None))
    found["serve"].update(
        {
            **block,
            "policy": {
                "max_batch_size": key.get("max_batch_size"),
                "batch_timeout_ms": key.get("batch_timeout_ms"),
                "buckets": None,
                "stated_by": "the scenario (the server's own setting, not seen by the client)",
            },
            "alone_s": alone,
        }
    )
    return found


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
        except RequestError as exc:
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
            except RequestError as exc:
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
