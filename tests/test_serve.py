"""Online serving's core (bench.serve), held to queueing theory.

The stand-in model sleeps a known time per batch, so what the server and the generator add can
be told apart from the model. Two oracles: the discrete-event simulation of the same batching
rule (``bench.serve.batching.simulate``), checked against closed-form queueing results with
enough requests for the sample to be tight, and the real threaded server, checked against that
simulation replayed on the very same arrivals and service times (which cancels the sampling
error a few seconds of Poisson arrivals have: at 85% utilisation the mean wait of 1,300
requests scatters by +-25% from seed to seed).
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
import pytest

from bench.serve.arrivals import schedule
from bench.serve.batching import Policy, buckets_for, simulate
from bench.serve.loadgen import Load, open_loop
from bench.serve.local import InProcess
from bench.serve.probe import measure_rate, measure_single_stream, simulate_rate
from bench.serve.search import search
from bench.serve.summary import Slo, nearest_rank, summarize_trace


def _contended() -> str:
    """Why the machine cannot run a real-time check now, or "". The threaded server's tests
    time sleeps of 0.2-10 ms; where more than twice as many processes want a core as there
    are cores (measured: failures from a load average of 2.2 per core on the 2-core VM), a
    thread waits for the CPU as long as the effects they check."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    return f"load average {load:.1f} on {cores} cores" if load > 2 * cores else ""


realtime = pytest.mark.skipif(bool(_contended()), reason=f"real time needs a core: {_contended()}")


def md1_wait(rho: float, service: float) -> float:
    """Mean wait in queue of M/D/1: Wq = rho S / (2 (1 - rho))."""
    return rho * service / (2 * (1 - rho))


def md1_wait_cdf(t: float, rate: float, service: float) -> float:
    """P(wait <= t) in M/D/1 (Erlang 1909; Crommelin 1932):
    (1 - rho) sum_{k=0}^{floor(t/S)} (rate (kS - t))^k / k! exp(-rate (kS - t))."""
    rho = rate * service
    return (1 - rho) * sum(
        (rate * (k * service - t)) ** k / math.factorial(k) * math.exp(-rate * (k * service - t))
        for k in range(math.floor(t / service) + 1)
    )


def sleeper(service_s: float):
    def infer(ids: np.ndarray, bucket: int) -> None:
        time.sleep(service_s)

    return infer


def test_buckets_are_powers_of_two_up_to_the_maximum():
    assert buckets_for(1) == (1,)
    assert buckets_for(8) == (1, 2, 4, 8)
    assert buckets_for(12) == (1, 2, 4, 8, 12)
    assert Policy(12, 0.0).bucket(9) == 12
    with pytest.raises(ValueError):
        Policy(4, 0.0).bucket(5)


def test_schedules_are_seeded_and_at_the_rate():
    a = schedule("poisson", 1000.0, 20_000, seed=3)
    assert np.array_equal(a, schedule("poisson", 1000.0, 20_000, seed=3))
    assert not np.array_equal(a, schedule("poisson", 1000.0, 20_000, seed=4))
    assert 19_999 / a[-1] == pytest.approx(1000.0, rel=0.03)  # 1/sqrt(20,000) = 0.7%
    assert np.allclose(np.diff(schedule("constant", 250.0, 5, 0)), 0.004)


@pytest.mark.parametrize("rho", [0.3, 0.6, 0.85])
def test_simulated_md1_mean_wait_matches_the_formula(rho):
    # 100,000 requests: seed-to-seed scatter of the mean wait is 1-3% (measured), well in 10%.
    service = 0.002
    trace = simulate(
        schedule("poisson", rho / service, 100_000, 7), Policy(1, 0.0), lambda b: service
    )
    wait = float(np.mean(trace.started - trace.scheduled))
    assert wait == pytest.approx(md1_wait(rho, service), rel=0.10)


@pytest.mark.timing
@realtime
@pytest.mark.parametrize("rho", [0.3, 0.6, 0.85])
def test_real_server_waits_as_the_rule_says(rho):
    """The threaded server, against the rule replayed on the same requests as the generator
    handed them over, with the service times the server really took (its sleeps overshoot).
    What is left is the server's own overhead: within 10% of the wait, plus 0.5 ms for thread
    wake-ups on a loaded 2-core machine (measured there: 0.1-0.3 ms). The generator's lateness
    is its own number, checked apart; a 10 ms model keeps the overhead small beside it."""
    service = 0.010
    rate = rho / service
    load = Load(min_queries=int(rate * 1.5), min_seconds=1.5, warmup_queries=5)
    count = load.warmup_queries + load.counted(rate)
    trace = open_loop(
        InProcess(sleeper(service), Policy(1, 0.0)), "poisson", rate, count, 11, 1.0
    ).trace
    took = iter(trace.done - trace.started)  # FIFO, batch 1: the n-th batch is request n
    replay = simulate(trace.issued, Policy(1, 0.0), lambda b: next(took))
    w = load.warmup_queries
    real = float(np.mean((trace.started - trace.issued)[w:]))
    expected = float(np.mean((replay.started - replay.scheduled)[w:]))
    # The sleeps overshoot (by 2 ms at a load average of 5): M/D/1 with S = the measured mean.
    assert float(np.mean(trace.done - trace.started)) >= service
    assert abs(real - expected) <= 0.10 * expected + 0.0005
    assert float(np.median(trace.issued - trace.scheduled)) < 0.001


def test_batches_form_by_the_rule_under_constant_arrivals():
    """Arithmetic on constant arrivals, one every 1 ms, batches of 2.5 ms, timeout 4 ms: request
    0 reaches an idle server and runs at once, [0, 2.5]; requests 1 and 2 arrive while it runs;
    when it ends the batch waits for its oldest (t=1) to have waited 4 ms, taking requests
    1..5 (5 arrives at the close, t=5) and runs [5, 7.5]; then 6..10 close at 6 + 4 = 10, and so
    on: batches of 5 every 5 ms, each request waiting 4 ms less its position."""
    trace = simulate(np.arange(20) * 0.001, Policy(16, 0.004), lambda b: 0.0025)
    assert list(trace.batch) == [1] + [5] * 15 + [4] * 4
    assert np.allclose(trace.started * 1e3, [0] + [5] * 5 + [10] * 5 + [15] * 5 + [20] * 4)
    # Arrivals slower than the service: every request finds the server idle and runs alone,
    # never waiting for the timeout (the rule before waited 4 ms for each).
    alone = simulate(np.arange(20) * 0.010, Policy(16, 0.004), lambda b: 0.0025)
    assert set(alone.batch) == {1} and np.allclose(alone.started, alone.scheduled)
    # A full batch closes at once: 4 requests in 0.3 ms with max batch 4 while one runs.
    full = simulate(np.array([0, 1e-4, 2e-4, 3e-4, 4e-4]), Policy(4, 0.004), lambda b: 0.001)
    assert list(full.batch) == [1, 4, 4, 4, 4] and full.started[1] == pytest.approx(0.001)


def test_batch_size_grows_with_rate_and_a_lone_request_waits_for_nothing():
    """Poisson arrivals, batches of about 0.2 ms, timeout 4 ms, max 16. At 100 requests/s the
    server is busy 2% of the time, so about 2% of requests find a batch running: the mean batch
    is within 10% of 1, and the mean latency the service time (the rule before waited the
    timeout, 4 ms, for every batch that did not fill). Batches grow with the rate, and at
    20,000 requests/s (80 arrivals per timeout) they are full."""
    policy = Policy(16, 0.004)
    fast = lambda b: 0.0002 + 0.00002 * b  # noqa: E731  (service far below the timeout)
    slo = Slo(99, 1.0)
    means = []
    for rate in (100.0, 500.0, 1500.0, 20_000.0):
        sim = simulate_rate(fast, policy, "poisson", rate, Load(20_000, 1, 100), slo, 5)
        means.append(sim["batch_size"]["mean"])
        if rate == 100.0:
            # 0.22 ms of service; the 2% that find a batch running wait up to 4 ms: ~0.1 ms more.
            assert sim["latency_s"]["mean"] < 0.0005
    assert means[0] < 1.1
    assert means[0] < means[1] < means[2] < means[3]
    assert means[3] > 15.5


@pytest.mark.timing
@realtime
def test_the_real_batcher_grows_its_batches_as_the_rule_says():
    """Two rates on the real server: its sleeps overshoot on a loaded machine and a busy
    server collects more, so the rule is replayed with the service time it really took."""
    policy = Policy(16, 0.004)
    slo = Slo(99, 1.0)
    means = []
    for rate in (100.0, 1000.0):
        load = Load(400, 0.5, 20)
        real = measure_rate(InProcess(sleeper(0.0005), policy), "poisson", rate, load, slo, 5)
        took = real["compute_s"]["mean"]
        rule = simulate_rate(lambda b: took, policy, "poisson", rate, load, slo, 5)  # noqa: B023
        # 30%: on a loaded 2-core machine a late thread wake-up lets a batch collect more.
        assert real["batch_size"]["mean"] == pytest.approx(rule["batch_size"]["mean"], rel=0.30)
        means.append(real["batch_size"]["mean"])
    assert means[0] < means[1]
    assert means[1] > 2  # the rule's mean at 1000/s: 3.6 (0.2 ms batches) to 4.7 (0.5 ms)
    assert real["padding_waste"] > 0  # a 5-request batch runs in bucket 8


@pytest.mark.timing
@realtime
def test_a_stall_shows_in_open_loop_and_hides_in_closed_loop():
    """One 0.25 s stall in a 2.5 s run at 400 QPS (the issue's 1 s in 10 s at 100 QPS, scaled
    4x faster to keep the test short): about 400 x 0.25 = 100 requests arrive during it."""
    stall, service = 0.25, 0.0002

    def stalling(start_after: float):
        state = {"t0": None, "stalled": False}

        def infer(ids: np.ndarray, bucket: int) -> None:
            now = time.perf_counter()
            state["t0"] = state["t0"] or now
            if not state["stalled"] and now - state["t0"] >= start_after:
                state["stalled"] = True
                time.sleep(stall)
            time.sleep(service)

        return infer

    slo = Slo(99, 0.05)
    load = Load(min_queries=1000, min_seconds=2.5, warmup_queries=0, drain_s=1.0)
    open_ = measure_rate(InProcess(stalling(1.25), Policy(1, 0.0)), "constant", 400.0, load, slo, 0)
    # Over 50 ms: the ~80 requests that arrived in the stall's first 0.2 s, and those that
    # arrive while the server works off its backlog of ~100: 100 S / (1 - 400 S) seconds of
    # them at 400/s, for S the service time measured (its sleeps overshoot on a loaded VM).
    took = open_["compute_s"]["mean"]
    catch_up = 400 * 100 * took / (1 - 400 * took)
    delayed = open_["over_slo"]
    assert 70 <= delayed <= 100 + catch_up + 10
    assert open_["latency_s"]["p99"] > 0.15  # the stall's tail, not the 1 ms service
    assert open_["latency_s"]["max"] > 0.2
    assert not open_["meets_slo"]

    closed = measure_single_stream(InProcess(stalling(1.25), Policy(1, 0.0)), load, slo)
    assert closed["latency_s"]["max"] > 0.2  # one request saw it...
    assert closed["over_slo"] <= 2  # ... and only one (a scheduling hiccup may add one)
    assert closed["latency_s"]["p99"] < 0.02
    assert closed["meets_slo"]


def test_search_finds_the_analytic_max_rate_of_md1():
    """SLO p99 latency <= 10 ms on a 1 ms model, Poisson arrivals, no batching: the highest
    rate with P(wait <= 9 ms) >= 0.99, from the M/D/1 waiting-time distribution."""
    service, slo = 0.001, Slo(99, 0.010)
    lo, hi = 100.0, 999.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (
            (mid, hi) if md1_wait_cdf(slo.latency_s - service, mid, service) >= 0.99 else (lo, mid)
        )
    analytic = lo
    load = Load(min_queries=60_000, min_seconds=1, warmup_queries=200)
    found = search(
        lambda r: simulate_rate(lambda b: service, Policy(1, 0.0), "poisson", r, load, slo, 1),
        low=50.0,
        high=1 / service,  # the offline throughput of the largest (only) bucket
    )
    assert found.max_qps == pytest.approx(analytic, rel=0.05)
    top = found.bracket[1]
    assert top is not None and top / found.max_qps <= 1.05
    assert len(found.probes) >= 4 and all("latency_s" in p for p in found.probes)


def constant_overload_p99(rate: float, service: float, load: Load, p: float = 99) -> float:
    """The p-th percentile latency of constant arrivals at ``rate`` on a server taking exactly
    ``service`` per request: below 1/S every request takes S; above, the server is busy from the
    first request on, so request k starts at k S, arrives at k / rate and waits k (S - 1/rate).
    Latency grows with k: the percentile is the request at its nearest rank."""
    if rate * service <= 1:
        return service
    n = load.counted(rate)
    k = load.warmup_queries + math.ceil(p / 100 * n) - 1
    return service + k * (service - 1 / rate)


@pytest.mark.timing
@realtime
def test_real_search_finds_the_analytic_max_rate_under_constant_arrivals():
    """A 2 ms sleeper at a constant rate, SLO p99 <= 50 ms: the analytic answer is the highest
    rate whose p99 above is within the SLO (just above capacity 1/S: over 1 s of load the
    queue that builds up stays within 50 ms), for S the service time measured."""
    slo = Slo(99, 0.050)
    load = Load(min_queries=200, min_seconds=1.0, warmup_queries=20, drain_s=0.3)
    found = search(
        lambda r: measure_rate(
            InProcess(sleeper(0.002), Policy(1, 0.0)), "constant", r, load, slo, 0
        ),
        low=200.0,
        high=1000.0,
        tolerance=0.02,  # the bracket's own width, apart from the 5% the answer is held to
    )
    took = [p["compute_s"]["mean"] for p in found.probes if "compute_s" in p]
    service = float(np.median(took))
    lo, hi = 1.0, 1000.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (
            (mid, hi) if constant_overload_p99(mid, service, load) <= slo.latency_s else (lo, mid)
        )
    assert found.max_qps is not None
    assert found.max_qps == pytest.approx(lo, rel=0.05)


def test_an_slo_no_rate_meets_is_recorded_with_its_reason():
    slo = Slo(99, 0.005)
    found = search(
        lambda r: simulate_rate(
            lambda b: 0.02, Policy(1, 0.0), "poisson", r, Load(500, 1, 10), slo, 0
        ),
        low=10.0,
        high=50.0,
    )
    assert found.max_qps is None
    assert "SLO not met at any rate tried" in found.reason and "ms" in found.reason
    assert len(found.probes) == 3  # the low rate, then two steps down


def test_percentiles_are_nearest_rank_and_drops_count_as_infinitely_late():
    assert nearest_rank(np.arange(1, 101, dtype=float), 99) == 99.0
    assert nearest_rank(np.arange(1, 101, dtype=float), 99.9) == 100.0
    sched = np.arange(100) / 100.0
    trace = simulate(sched, Policy(1, 0.0), lambda b: 0.001)
    trace.done[-2:] = np.nan  # two requests never answered
    found = summarize_trace(trace, 0, 100.0, "constant", Slo(99, 0.05))
    assert found["dropped"] == 2
    assert found["latency_s"]["p99"] is None and found["latency_s"]["p50"] == pytest.approx(0.001)
    assert not found["meets_slo"]


def test_a_generator_that_falls_behind_invalidates_the_rate():
    trace = simulate(np.arange(1000) / 1000.0, Policy(1, 0.0), lambda b: 0.0001)
    trace.issued[:] = trace.scheduled * 1.2  # handed over 20% slower than scheduled
    found = summarize_trace(trace, 0, 1000.0, "constant", Slo(99, 0.05))
    assert not found["valid"] and not found["meets_slo"]
    assert "could not keep up" in found["invalid_reason"]


def test_a_late_generator_that_decides_the_verdict_invalidates_the_rate():
    """Requests handed over 60 ms late (the generator starved mid-run, then caught up): from
    the schedule the p99 misses 50 ms, from the hand-over it meets it, so the generator, not
    the server, missed the SLO; the rate is not a measurement of the server."""
    trace = simulate(np.arange(1000) / 1000.0, Policy(1, 0.0), lambda b: 0.001)
    trace.issued[400:450] += 0.060
    trace.started[400:450] += 0.060
    trace.done[400:450] += 0.060
    found = summarize_trace(trace, 0, 1000.0, "constant", Slo(99, 0.05))
    assert not found["valid"] and not found["meets_slo"]
    assert "generator was late" in found["invalid_reason"]


def test_the_search_never_steps_below_a_rate_that_can_be_valid():
    slo = Slo(99, 0.005)
    tried = []

    def probe(rate: float) -> dict:
        tried.append(rate)
        return simulate_rate(
            lambda b: 0.02, Policy(1, 0.0), "poisson", rate, Load(50, 0, 5), slo, 0
        )

    found = search(probe, low=40.0, high=100.0, floor=20.0)
    assert tried == [40.0] and found.max_qps is None  # 40 / 4 = 10 is below the floor


def test_a_miss_is_retried_before_the_bracket_moves():
    """A probe that misses once (a burst of other work) and meets when measured again."""
    calls: dict[float, int] = {}

    def probe(rate: float) -> dict:
        calls[rate] = calls.get(rate, 0) + 1
        meets = rate <= 500 and not (rate == 100 and calls[rate] == 1)  # 100 misses once
        return {"offered_qps": rate, "meets_slo": meets, "invalid_reason": "", "slo_latency_s": 1}

    found = search(probe, low=100.0, high=1000.0, retries=1)
    assert calls[100.0] == 2 and found.max_qps == pytest.approx(500, rel=0.05)
    assert calls[1000.0] == 2  # a true miss costs its retry too
    assert [p["attempt"] for p in found.probes if p["offered_qps"] == 100.0] == [1, 2]
