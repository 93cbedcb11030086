"""Price lookup (table, defaults, overrides) and cost arithmetic."""

from __future__ import annotations

import pytest

from bench.measure.cost import cost_metrics, load_prices, price_per_hour


def test_every_price_is_dated_sourced_and_reachable() -> None:
    table = load_prices()
    names = {e["name"] for e in table["prices"]}
    for entry in table["prices"]:
        assert entry["date"] and entry["source"], entry["name"]
        assert entry["usd_per_hour"] > 0 and entry["devices"] >= 1, entry["name"]
    assert set(table["defaults"].values()) <= names


def test_defaults_by_device_name() -> None:
    # a3-highgpu-8g: $88.49/h for 8 H100s -> $11.06125 per GPU-hour.
    h100 = price_per_hour("NVIDIA H100 80GB HBM3")
    assert h100["value"] == pytest.approx(88.49 / 8)
    assert h100["unit"] == "USD/h"
    assert h100["price_entry"] == "gcp/a3-highgpu-8g"
    assert "2024-06" in h100["method"] and "/ 8 devices" in h100["method"]
    assert price_per_hour("TPU v5 lite")["value"] == pytest.approx(1.20)  # per chip-hour
    assert price_per_hour("cpu")["price_entry"] == "gcp/n2-standard-8"
    # A name pattern picks the 80GB A100 VM before the a100 default (40GB, a2-highgpu-1g).
    assert price_per_hour("NVIDIA A100-SXM4-80GB")["price_entry"] == "gcp/a2-ultragpu-1g"
    assert price_per_hour("NVIDIA A100-SXM4-40GB")["price_entry"] == "gcp/a2-highgpu-1g"


def test_overrides_win_in_order_name_key_kind_star() -> None:
    overrides = {"gpu": 2.0, "h100-sxm": "aws/p5.48xlarge", "NVIDIA H100 PCIe": 3.0, "*": 9.0}
    # Device key names a table entry: p5.48xlarge $98.32/h / 8 GPUs = $12.29.
    assert price_per_hour("NVIDIA H100 80GB HBM3", overrides=overrides)["value"] == pytest.approx(
        12.29
    )
    assert price_per_hour("nvidia h100 pcie", overrides=overrides)["value"] == 3.0  # exact name
    assert price_per_hour("NVIDIA L4", overrides=overrides)["value"] == 2.0  # kind
    override = price_per_hour("TPU v4", overrides=overrides)
    assert override["value"] == 9.0 and "override '*'" in override["method"]
    bad = price_per_hour("NVIDIA L4", overrides={"l4": "gcp/nope"})
    assert "unknown entry 'gcp/nope'" in bad["unavailable"]


def test_unknown_prices_say_why() -> None:
    assert "add one under pricing" in price_per_hour("NVIDIA H200")["unavailable"]
    assert "unrecognised device" in price_per_hour("Mystery Accelerator")["unavailable"]


def test_cost_arithmetic() -> None:
    price = price_per_hour("NVIDIA L4")  # g2-standard-8, $0.85362431/h
    out = cost_metrics(1000.0, price)
    # $0.85362431/h / 3600 s = $2.3712e-4 per s; at 1000 examples/s a million examples take
    # 1000 s -> $0.23712 per million; examples per dollar = 1000 x 3600 / 0.85362431 = 4.2173e6.
    assert out["cost_per_million_examples_usd"]["value"] == pytest.approx(0.85362431 / 3.6)
    assert out["cost_per_million_examples_usd"]["unit"] == "USD/1M examples"
    assert out["examples_per_usd"]["value"] == pytest.approx(3.6e6 / 0.85362431)
    assert "gcp/g2-standard-8" in out["examples_per_usd"]["method"]
    # 4 devices at $2/h = $8/h; 2000 examples/s -> 7.2e6 examples/h -> $8 / 7.2 = $1.111/M.
    four = cost_metrics(2000.0, 2.0, n_devices=4)
    assert four["cost_per_million_examples_usd"]["value"] == pytest.approx(8 / 7.2)
    assert four["examples_per_usd"]["value"] == pytest.approx(7.2e6 / 8)


def test_cost_unavailable() -> None:
    out = cost_metrics(1000.0, price_per_hour("NVIDIA H200"))
    assert out["examples_per_usd"]["unavailable"].startswith("no price: no price entry for h200")
    assert out["examples_per_usd"]["unit"] == "examples/USD"
    assert "throughput" in cost_metrics(0.0, 1.0)["cost_per_million_examples_usd"]["unavailable"]
    assert "positive price" in cost_metrics(10.0, None)["examples_per_usd"]["unavailable"]
