"""The capacity estimate of an endpoint ``search`` cell: the top of its search, measured with
as many senders as raise the server's throughput and no more (issue 20: 64 senders measured
less throughput from ``bench serve`` than 8). The closed loop itself is replaced by a table of
what each number of senders would measure, so the ramp's rule is checked without a clock."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from bench.workloads.serve.cell import endpoint as endpoint_cell


class Sender:
    def __call__(self, body: bytes) -> np.ndarray:
        return np.zeros((1, 2), np.float32)

    def open(self) -> None: ...

    def close(self) -> None: ...


def ramp(rates: dict[int, float], max_in_flight: int, monkeypatch: Any) -> tuple[Any, list]:
    tried: list[int] = []

    def closed_loop(client: Any, bodies: Any, senders: int, seconds: float) -> tuple:
        tried.append(senders)
        return rates[senders], ([] if rates[senders] else ["HTTP 503"])

    monkeypatch.setattr(endpoint_cell, "_closed_loop", closed_loop)
    client = SimpleNamespace(sender=Sender, endpoint=SimpleNamespace(max_in_flight=max_in_flight))
    return endpoint_cell._capacity(client, [b"{}"], True), tried


def test_senders_double_until_a_doubling_adds_under_ten_percent(monkeypatch):
    # 4 -> 8 adds 350 -> 370 (6%): the ramp stops there, with the best rate seen, never
    # trying the 16, 32 and 64 senders that overload the server (and the client's threads).
    rates = {1: 100.0, 2: 190.0, 4: 350.0, 8: 370.0, 16: 300.0, 32: 250.0, 64: 200.0}
    (alone, capacity, senders, problem), tried = ramp(rates, 64, monkeypatch)
    assert tried == [1, 2, 4, 8]
    assert (capacity, senders, problem) == (370.0, 8, "")
    assert alone > 0


def test_a_drop_keeps_the_best_rate_and_the_ramp_stops_at_max_in_flight(monkeypatch):
    (_, capacity, senders, _), tried = ramp({1: 100.0, 2: 90.0}, 64, monkeypatch)
    assert (tried, capacity, senders) == ([1, 2], 100.0, 1)
    rates = {1: 100.0, 2: 200.0, 4: 400.0, 6: 600.0}
    (_, capacity, senders, _), tried = ramp(rates, 6, monkeypatch)
    assert (tried, capacity, senders) == ([1, 2, 4, 6], 600.0, 6)


def test_an_endpoint_that_answers_nothing_under_load_says_why(monkeypatch):
    (_, capacity, _, problem), _ = ramp({1: 0.0}, 64, monkeypatch)
    assert capacity == 0.0 and problem == "no request answered with up to 1 in flight: HTTP 503"


def test_a_cell_at_a_set_rate_measures_only_the_round_trip_alone(monkeypatch):
    monkeypatch.setattr(endpoint_cell, "_closed_loop", None)  # never called
    client = SimpleNamespace(sender=Sender, endpoint=SimpleNamespace(max_in_flight=64))
    alone, capacity, senders, problem = endpoint_cell._capacity(client, [b"{}"], False)
    assert alone > 0 and (capacity, senders, problem) == (0.0, 0, "")
