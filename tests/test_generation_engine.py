"""The generation engine against an oracle: a stand-in decoder whose prefill and decode step
take known times on a virtual clock, and an independent event simulation of each scheduler
written here (not the engine's code). Deterministic: no wall-clock timing decides a verdict."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.serve.generation import engine, lengths
from bench.serve.generation.requests import GenRequest
from bench.serve.generation.summary import GenSlo, summarize

PREFILL_S = 0.004  # per prefill call, plus PER_TOKEN_S per prompt token
PER_TOKEN_S = 0.00002
DECODE_S = 0.002
VOCAB = 1000


class VirtualClock:
    def __init__(self) -> None:
        self.t = 100.0  # not 0: the engine must subtract its own start

    def now(self) -> float:
        return self.t

    def sleep_until(self, t: float) -> None:
        self.t = max(self.t, t)


def expected_token(seed: int, position: int) -> int:
    return (seed * 31 + position * 7) % VOCAB


class FakeDecoder:
    """Tokens depend only on (request seed, position), as the contract asks; each call
    advances the virtual clock by its known cost."""

    def __init__(self, clock: VirtualClock, slots: int, cache_len: int = 4096) -> None:
        self.clock, self.slots, self.cache_len = clock, slots, cache_len
        self.buckets = (4096,)
        self.compile_s, self.compile_method, self.device_name, self.param_count = 0.0, "", "", 0
        self.stall_at: float | None = None  # a one-off stall of STALL_S on the first decode after
        self.prefilled = 0

    def prefill(self, slot: int, prompt: np.ndarray, seed: int) -> int:
        self.clock.t += PREFILL_S + PER_TOKEN_S * len(prompt)
        self.prefilled += 1
        return expected_token(seed, len(prompt))

    def decode(self, tokens: np.ndarray, positions: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        self.clock.t += DECODE_S
        if self.stall_at is not None and self.clock.t >= self.stall_at:
            self.clock.t += 1.0
            self.stall_at = None
        return np.array(
            [expected_token(int(s), int(p) + 1) for s, p in zip(seeds, positions, strict=True)],
            dtype=np.int32,
        )

    def trace_count(self) -> int:
        return 1

    def memory(self) -> dict:
        return {}


def simulate(requests: list[GenRequest], slots: int, scheduler: str) -> dict[int, list[float]]:
    """An independent event simulation: each request's token times (s from the start)."""
    t = 0.0
    queue: list[GenRequest] = []
    pending = sorted(requests, key=lambda r: r.arrival)
    rows: list[dict | None] = [None] * slots
    times: dict[int, list[float]] = {}
    while pending or queue or any(rows):
        queue += [r for r in pending if r.arrival <= t]
        pending = [r for r in pending if r.arrival > t]
        if not any(rows) and not queue:
            t = pending[0].arrival
            continue
        if queue and (scheduler == "continuous" or not any(rows)):
            for i in range(slots):
                if rows[i] is None and queue:
                    r = queue.pop(0)
                    t += PREFILL_S + PER_TOKEN_S * r.prompt_tokens
                    times[r.index] = [t]
                    if r.output_tokens > 1:
                        rows[i] = {"req": r, "left": r.output_tokens - 1}
        if not any(row is not None and row["left"] > 0 for row in rows):
            rows = [None] * slots
            continue
        t += DECODE_S
        for i, row in enumerate(rows):
            if row is not None and row["left"] > 0:
                times[row["req"].index].append(t)
                row["left"] -= 1
                if row["left"] == 0 and scheduler == "continuous":
                    rows[i] = None
        if scheduler == "static" and all(row is None or row["left"] == 0 for row in rows):
            rows = [None] * slots
    return times


def load(rate: float | None, n: int = 120, seed: int = 3) -> list[GenRequest]:
    return lengths.draw(
        count=n, prompt={"uniform": [8, 64]}, output={"uniform": [16, 64]},
        arrivals_kind="offline" if rate is None else "poisson", rate=rate, seed=seed,
        max_prompt=64, cache_len=4096,
    )  # fmt: skip


def serve(requests: list[GenRequest], slots: int, scheduler: str, stall: float | None = None):
    clock = VirtualClock()
    dec = FakeDecoder(clock, slots)
    if stall is not None:
        dec.stall_at = clock.t + stall
    return engine.run(dec, requests, scheduler, lambda r: np.ones(r.prompt_tokens, np.int32), clock)


SLO = GenSlo(99.0, ttft_s=0.5, tpot_s=0.05)


@pytest.mark.parametrize("scheduler", ["static", "continuous"])
@pytest.mark.parametrize("rate", [20.0, 60.0, 150.0])
def test_engine_matches_an_independent_simulation(scheduler: str, rate: float) -> None:
    requests = load(rate)
    measured = serve(requests, 8, scheduler)
    oracle = simulate(requests, 8, scheduler)
    for rec in measured.records:
        assert rec.ok, rec.error
        assert len(rec.chunk_times) == rec.output_tokens
        assert rec.chunk_times == pytest.approx(oracle[rec.index], abs=1e-9)
    got = summarize(measured.records, SLO, rate, "poisson", measured.duration_s)
    ttft = sorted(times[0] - r.arrival for r in requests for times in [oracle[r.index]])
    assert got["ttft_s"]["p50"] == pytest.approx(ttft[math.ceil(0.5 * len(ttft)) - 1], rel=0.10)


def test_each_request_gets_its_own_tokens_whatever_its_slot() -> None:
    requests = load(60.0, n=40)
    for rec in serve(requests, 4, "continuous").records:
        req = requests[rec.index]
        want = [expected_token(req.seed, req.prompt_tokens + k) for k in range(req.output_tokens)]
        assert rec.tokens == want


def test_a_one_second_stall_shows_in_ttft_p99() -> None:
    requests = load(60.0)
    calm = summarize(serve(requests, 8, "continuous").records, SLO, 60.0, "poisson", 1.0)
    stalled_run = serve(requests, 8, "continuous", stall=0.5)
    stalled = summarize(stalled_run.records, SLO, 60.0, "poisson", 1.0)
    assert calm["ttft_s"]["p99"] < 0.1
    # Requests due during the stall wait for it: latency from the schedule, not from admission.
    assert stalled["ttft_s"]["p99"] >= 0.9
    assert not stalled["meets_slo"] and "TTFT" in stalled["slo_miss"]


def test_continuous_batching_pays_offline() -> None:
    requests = lengths.draw(
        count=256, prompt=32, output={"uniform": [16, 256]}, arrivals_kind="offline",
        rate=None, seed=5, max_prompt=64, cache_len=4096,
    )  # fmt: skip
    rates = {}
    for scheduler in ("static", "continuous"):
        run = serve(requests, 8, scheduler)
        s = summarize(run.records, SLO, None, "offline", run.duration_s)
        rates[scheduler] = (s["output_tokens_per_s"], s["tpot_s"]["p50"])
    assert rates["continuous"][0] >= 1.5 * rates["static"][0]
    # A continuous batch's steps pause for the prefills of the requests that join it (each here
    # costs two decode steps, one joins about every 17 steps): TPOT pays about that, no more.
    assert rates["continuous"][1] <= rates["static"][1] * 1.10


def test_requests_past_the_deadline_fail_with_the_reason() -> None:
    requests = load(None, n=64)
    clock = VirtualClock()
    run = engine.run(FakeDecoder(clock, 4), requests, "continuous",
                     lambda r: np.ones(r.prompt_tokens, np.int32), clock, deadline_s=0.3)  # fmt: skip
    failed = [r for r in run.records if not r.ok]
    assert failed and all("0.3 s limit" in r.error for r in failed)
    s = summarize(run.records, SLO, None, "offline", run.duration_s)
    assert s["errors"] == len(failed) and s["ttft_s"]["p99"] is None  # infinitely late


def test_one_token_requests_and_static_batches_of_uneven_length() -> None:
    requests = [
        GenRequest(0, 0.0, 4, 1, 1),
        GenRequest(1, 0.0, 4, 3, 2),
        GenRequest(2, 0.0, 4, 9, 3),
    ]
    run = serve(requests, 2, "static")
    assert [len(r.chunk_times) for r in run.records] == [1, 3, 9]
    # Static: request 2 waits for the batch of 0 and 1 to end (request 1's third token).
    assert run.records[2].started >= run.records[1].end
    assert simulate(requests, 2, "static")[2] == pytest.approx(run.records[2].chunk_times)


def test_unknown_scheduler_is_refused() -> None:
    with pytest.raises(ValueError, match="scheduler 'fifo'"):
        serve(load(None, n=2), 2, "fifo")


def test_lognormal_lengths_are_seeded_and_clipped_to_the_cache() -> None:
    a = lengths.draw(count=500, prompt={"lognormal": {"mean": 100, "sigma": 1.0}},
                     output={"lognormal": {"mean": 200, "sigma": 1.0}}, arrivals_kind="gamma",
                     rate=10.0, seed=7, max_prompt=256, cache_len=512, burstiness=2.0)  # fmt: skip
    b = lengths.draw(count=500, prompt={"lognormal": {"mean": 100, "sigma": 1.0}},
                     output={"lognormal": {"mean": 200, "sigma": 1.0}}, arrivals_kind="gamma",
                     rate=10.0, seed=7, max_prompt=256, cache_len=512, burstiness=2.0)  # fmt: skip
    assert a == b
    assert all(
        1 <= r.prompt_tokens <= 256 and r.prompt_tokens + r.output_tokens - 1 <= 512 for r in a
    )
    gaps = np.diff([r.arrival for r in a])
    assert 1.5 < gaps.std() / gaps.mean() < 2.5  # burstiness 2: the gaps' coefficient of variation
    assert 0.07 < gaps.mean() < 0.13
