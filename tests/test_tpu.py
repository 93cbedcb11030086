"""TPU names and the legacy TPU node check, against a faked Cloud TPU API service.

cloud-tpu-client's real ``Client`` is used throughout; only its ``service`` (the Cloud API
object) is faked, so these tests follow the client's own calls (state, health, wait_for_healthy,
network_endpoints) as they happen against the API.
"""

from __future__ import annotations

import json

import pytest

from bench.platform.tpu import check_node, chip_count, device_name, recheck_lost
from bench.run.scenario import TpuNode
from tests.fixtures.tpu_api import FakeTpuService, node

pytest.importorskip("cloud_tpu_client")

SPEC = TpuNode(name="t", zone="us-central1-b", project="p", wait_s=0.2, poll_s=0.01)


@pytest.mark.parametrize(
    ("accelerator_type", "name", "chips"),
    [
        ("v2-8", "TPU v2", 4),
        ("v3-32", "TPU v3", 16),
        ("v4-8", "TPU v4", 4),
        ("v5litepod-8", "TPU v5 lite", 8),
        ("v5p-8", "TPU v5", 4),
        ("v6e-4", "TPU v6 lite", 4),
    ],
)
def test_accelerator_types_map_to_table_names_and_chips(accelerator_type, name, chips):
    from bench.measure.cost import price_per_hour
    from bench.measure.flops import peak_flops

    assert device_name(accelerator_type) == name
    assert chip_count(accelerator_type) == chips
    assert "value" in peak_flops(name, "bfloat16")  # the peak table knows the name
    if accelerator_type.startswith(("v4", "v5", "v6")):
        assert "value" in price_per_hour(name)


def test_healthy_node_hands_its_endpoint_to_the_resolver():
    fake = FakeTpuService(node("READY", "HEALTHY", "v3-8"))
    check = check_node(SPEC, service=fake)
    assert check.usable and check.reason == ""
    assert check.accelerator_type == "v3-8"
    assert check.resolver_target() == {"tpu": "grpc://10.0.0.2:8470"}
    assert fake.requests[0] == "projects/p/locations/us-central1-b/nodes/t"
    assert check.describe()["device_name"] == "TPU v3" and check.describe()["chips"] == 4


def test_pod_node_resolves_by_name_so_every_worker_is_found():
    check = check_node(SPEC, service=FakeTpuService(node(accelerator_type="v3-32", endpoints=4)))
    assert check.usable and len(check.endpoints) == 4
    assert check.resolver_target() == {"tpu": "t", "zone": "us-central1-b", "project": "p"}


def test_unhealthy_node_that_recovers_within_the_wait_is_used():
    fake = FakeTpuService(
        node("READY", "UNHEALTHY_MAINTENANCE"),
        node("READY", "UNHEALTHY_MAINTENANCE"),
        node("READY", "UNHEALTHY_MAINTENANCE"),
        node("READY", "UNHEALTHY_MAINTENANCE"),
        node("READY", "HEALTHY"),
    )
    check = check_node(SPEC, service=fake)
    assert check.usable, check.reason
    assert check.health == "HEALTHY"


def test_unhealthy_node_times_out_with_a_bounded_wait():
    check = check_node(SPEC, service=FakeTpuService(node("READY", "UNHEALTHY_TENSORFLOW")))
    assert check.status == "failed"
    assert check.reason == (
        "TPU node 't' did not become HEALTHY within tpu.wait_s=0.2s "
        "(last seen: state READY, health UNHEALTHY_TENSORFLOW)"
    )


def test_node_still_creating_times_out_too():
    check = check_node(SPEC, service=FakeTpuService(node("CREATING", None)))
    assert check.status == "failed" and "did not become HEALTHY" in check.reason
    assert "state CREATING, health None" in check.reason


@pytest.mark.parametrize("state", ["PREEMPTED", "TERMINATED"])
def test_preempted_node_fails_at_once_without_waiting(state):
    fake = FakeTpuService(node(state, "HEALTHY"))
    check = check_node(SPEC.model_copy(update={"wait_s": 3600}), service=fake)
    assert check.status == "failed"
    assert f"state {state}" in check.reason and "--retry-failed" in check.reason
    assert fake.calls == 3  # state, health, accelerator type: no polling


def test_stopped_node_is_not_ready_and_its_cells_are_skipped():
    check = check_node(SPEC, service=FakeTpuService(node("STOPPED", None)))
    assert check.status == "skipped"
    assert (
        check.reason == "TPU node 't' is STOPPED, not READY; start it (gcloud compute tpus start)"
    )


def test_node_preempted_while_waiting_fails():
    fake = FakeTpuService(node("READY", "UNHEALTHY_MAINTENANCE"), node("PREEMPTED", None))
    check = check_node(SPEC, service=fake)
    assert check.status == "failed" and "PREEMPTED" in check.reason


def test_lookup_error_skips_with_the_apis_message():
    fake = FakeTpuService(RuntimeError("HttpError 404: node not found"))
    check = check_node(SPEC, service=fake)
    assert check.status == "skipped"
    assert check.reason.startswith("TPU node 't' could not be looked up: Could not lookup TPU")
    assert "node not found" in check.reason


def test_recheck_after_a_failed_cell_tells_preemption():
    check = check_node(SPEC, service=FakeTpuService(node()))
    assert recheck_lost(check, service=FakeTpuService(node())) is None
    lost = recheck_lost(check, service=FakeTpuService(node("PREEMPTED", None)))
    assert lost == "TPU node 't' was preempted during the run (state PREEMPTED)"


def run_with_node(tmp_path, fake, workers_started: list):
    """Drive the real runner over TPU cells with the node check pointed at ``fake``; workers
    must not start for a node that is not usable (recorded in ``workers_started``)."""
    from bench.platform.environment import collect
    from bench.run.runner import Runner
    from bench.run.scenario import parse_scenario
    from bench.runfolder import RunWriter, load_run

    loaded = parse_scenario(
        "name: node\nmodel: mlp\ndevice: tpu\nmatrix:\n  framework: [tensorflow, jax]\n"
        "  batch_size: [8, 16]\ntpu: {name: t, zone: z, project: p, wait_s: 0.05, poll_s: 0.01}\n",
        "s.yaml",
    )
    meta = {"scenario": {"name": "node"}, "environment": collect()}
    writer = RunWriter.create(tmp_path, meta)
    events: list[str] = []
    runner = Runner(
        loaded,
        writer,
        lambda kind, **_: events.append(kind),
        "python-that-must-not-start",
        tpu_check=lambda spec: check_node(spec, service=fake),
    )

    def fake_worker(framework, device, pending, emit, env=None):
        workers_started.append((framework, device, list(pending), env))
        pending.clear()  # as a worker that ran them all would

    runner._run_worker = fake_worker  # type: ignore[method-assign]
    runner.run(loaded.cells)
    writer.finish("complete")
    return load_run(writer.path), events


@pytest.mark.parametrize(
    ("script", "status", "words"),
    [
        ([node("STOPPED", None)], "skipped", "is STOPPED, not READY"),
        ([node("READY", "UNHEALTHY_MAINTENANCE")], "failed", "did not become HEALTHY"),
        ([node("PREEMPTED", None)], "failed", "was preempted"),
    ],
)
def test_runner_records_an_unusable_nodes_cells_and_goes_on(tmp_path, script, status, words):
    started: list = []
    run, events = run_with_node(tmp_path, FakeTpuService(*script), started)
    assert started == []  # no worker was pointed at the node
    assert "tpu_node" in events
    tf_cells = [r for r in run.cells.values() if r["key"]["framework"] == "tensorflow"]
    assert len(tf_cells) == 2
    for record in tf_cells:
        assert record["status"] == status and words in record["reason"]
    jax_cells = [r for r in run.cells.values() if r["key"]["framework"] == "jax"]
    assert {r["status"] for r in jax_cells} == {"skipped"}
    assert "legacy TPU node" in jax_cells[0]["reason"]
    node_meta = run.meta["environment"]["tpu_node"]
    assert node_meta["name"] == "t" and node_meta["status"] == status


def test_runner_hands_a_healthy_nodes_endpoint_and_type_to_the_tf_worker(tmp_path):
    started: list = []
    run, _ = run_with_node(tmp_path, FakeTpuService(node("READY", "HEALTHY", "v2-8")), started)
    ((framework, device, pending, env),) = started  # only the TF group starts a worker
    assert (framework, device, len(pending)) == ("tensorflow", "tpu", 2)
    assert json.loads(env["BENCH_TPU_RESOLVER"]) == {"tpu": "grpc://10.0.0.2:8470"}
    assert env["TPU_ACCELERATOR_TYPE"] == "v2-8"
    assert run.meta["environment"]["tpu_node"]["device_name"] == "TPU v2"
