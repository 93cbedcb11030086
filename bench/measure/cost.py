"""Cost per million examples and examples per dollar, from a dated price table.

Prices come from ``bench/data/prices.yaml`` (on-demand list prices, each with its date and
source) unless the scenario (``pricing:``) or the command line overrides them. They change: a
cost number is only as current as the entry named in its ``method``, which is why every result
says which entry and date it used.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

import yaml

from bench.measure.flops import device_key, find_entry, load_peaks
from bench.metrics import metric, unavailable, value_of

SECONDS_PER_HOUR = 3600.0


@functools.cache
def load_prices() -> dict[str, Any]:
    """The shipped price table (parsed once per process)."""
    text = resources.files("bench").joinpath("data/prices.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _entry_by_name(table: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    return next((e for e in table.get("prices", []) if e["name"] == name), None)


def _from_entry(entry: Mapping[str, Any], why: str) -> dict[str, Any]:
    devices = int(entry.get("devices", 1))
    per_device = float(entry["usd_per_hour"]) / devices
    split = f" / {devices} devices" if devices > 1 else ""
    return metric(
        per_device,
        "USD/h",
        f"{entry['name']} ${entry['usd_per_hour']}/h{split} (on-demand, {entry.get('region', '?')}"
        f", {entry.get('date', 'undated')}; {entry.get('source', 'no source')}); {why}",
        price_entry=entry["name"],
    )


KINDS = ("cpu", "gpu", "tpu")


def pricing_problems(
    overrides: Mapping[str, Any], table: Mapping[str, Any] | None = None
) -> list[str]:
    """What is wrong with a scenario's ``pricing:`` overrides, one line each: a key that no
    device can match (``price_per_hour`` would never use it) or a name of a table entry that
    does not exist (every cell would have its cost unavailable, found only after the run)."""
    table = load_prices() if table is None else table
    keys = {"*", *KINDS, *(str(e["key"]) for e in load_peaks().get("devices", []))}
    keys |= set(table.get("defaults", {}))
    names = [e["name"] for e in table.get("prices", [])]
    problems = []
    for key, value in overrides.items():
        if key.lower() not in keys and device_key(key) is None:
            problems.append(
                f"{key!r} is no device bench knows (use '*', a kind: {', '.join(KINDS)}, a "
                f"device key: {', '.join(sorted(keys - {'*', *KINDS}))}, or a device name the "
                "peak table recognises)"
            )
        if isinstance(value, str) and value not in names:
            near = difflib.get_close_matches(value, names, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            problems.append(
                f"{key}: {value!r} names no price-table entry{hint} (use USD per device-hour "
                "or an entry of bench/data/prices.yaml)"
            )
    return problems


def price_per_hour(
    device_name: str,
    table: Mapping[str, Any] | None = None,
    overrides: Mapping[str, float | int | str] | None = None,
) -> dict[str, Any]:
    """USD per hour for ONE device of this name (a whole VM for CPUs), or ``unavailable``.

    Lookup order: ``overrides`` keyed by the exact device name, its device key (``h100-sxm``),
    its kind (``gpu``/``tpu``/``cpu``) or ``*`` -- a number is USD per device-hour, a string
    names a table entry; then a table entry whose ``match`` hits the name; then the table's
    default entry for the device key.
    """
    table = load_prices() if table is None else table
    key = device_key(device_name)
    peak_entry = find_entry(device_name)
    kind = peak_entry.get("kind") if peak_entry else ("cpu" if key == "cpu" else None)
    for candidate in (device_name, key, kind, "*"):
        if candidate is None or not overrides:
            continue
        hit = next((v for k, v in overrides.items() if k.lower() == candidate.lower()), None)
        if hit is None:
            continue
        if isinstance(hit, str):
            entry = _entry_by_name(table, hit)
            if entry is None:
                return unavailable(
                    f"pricing override {candidate!r} names unknown entry {hit!r}", "USD/h"
                )
            return _from_entry(entry, f"chosen by pricing override {candidate!r}")
        return metric(
            float(hit),
            "USD/h",
            f"pricing override {candidate!r} = ${float(hit):g} per device-hour (scenario or CLI)",
            price_entry="override",
        )
    for entry in table.get("prices", []):
        if any(re.search(p, device_name, re.I) for p in entry.get("match", [])):
            return _from_entry(entry, f"matched device name {device_name!r}")
    if key is None:
        return unavailable(f"no price known for unrecognised device {device_name!r}", "USD/h")
    default = table.get("defaults", {}).get(key)
    if default is None:
        return unavailable(
            f"no price entry for {key} ({device_name!r}); add one under pricing:", "USD/h"
        )
    entry = _entry_by_name(table, default)
    if entry is None:
        return unavailable(f"price table default for {key} names missing {default!r}", "USD/h")
    return _from_entry(entry, f"default for {key}")


def cost_metrics(
    examples_per_s: float | None,
    price_per_hour: Mapping[str, Any] | float | None,
    n_devices: int = 1,
) -> dict[str, dict[str, Any]]:
    """``cost_per_million_examples_usd`` and ``examples_per_usd`` at a throughput.

    ``price_per_hour`` is the metric from ``price_per_hour`` (per device) or a number; the cell
    pays for ``n_devices`` of them.
    """
    keys = {"cost_per_million_examples_usd": "USD/1M examples", "examples_per_usd": "examples/USD"}
    if isinstance(price_per_hour, Mapping):
        if "unavailable" in price_per_hour:
            reason = f"no price: {price_per_hour['unavailable']}"
            return {k: unavailable(reason, unit) for k, unit in keys.items()}
        price, source = value_of(price_per_hour), str(price_per_hour.get("method", ""))
    else:
        price, source = price_per_hour, "given"
    if price is None or price <= 0:
        return {k: unavailable("no positive price per hour", unit) for k, unit in keys.items()}
    if not examples_per_s or examples_per_s <= 0:
        return {k: unavailable("no throughput measured", unit) for k, unit in keys.items()}
    usd_per_s = price * n_devices / SECONDS_PER_HOUR
    how = f"{n_devices} x ${price:g}/h at {examples_per_s:g} examples/s; price: {source}"
    return {
        "cost_per_million_examples_usd": metric(
            usd_per_s / examples_per_s * 1e6, keys["cost_per_million_examples_usd"], how
        ),
        "examples_per_usd": metric(examples_per_s / usd_per_s, keys["examples_per_usd"], how),
    }
