"""Multi-host settings from flags or environment, and what each framework is handed."""

from __future__ import annotations

import pytest

from bench.platform.cluster import Cluster, ClusterError, from_env, resolve
from bench.run.runner import cpu_devices_for, worker_batches, worker_env
from bench.run.scenario import parse_scenario


def test_single_process_when_nothing_is_given():
    assert resolve(env={}) is None


def test_flags_override_the_environment():
    env = {"BENCH_COORDINATOR": "h0:1234", "BENCH_NUM_PROCESSES": "2", "BENCH_PROCESS_ID": "0"}
    assert resolve(env=env) == Cluster("h0:1234", 2, 0)
    assert resolve(process_id=1, env=env) == Cluster("h0:1234", 2, 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"coordinator": "h0:1234"}, "--num-processes, --process-id missing"),
        ({"coordinator": "h0", "num_processes": 2, "process_id": 0}, "expected HOST:PORT"),
        ({"coordinator": "h0:1", "num_processes": 2, "process_id": 2}, "expected 0 <= id < "),
        (
            {"coordinator": "h:1", "num_processes": 2, "process_id": 0, "worker_hosts": "a"},
            "names 1 hosts; expected one per process (2)",
        ),
    ],
)
def test_incomplete_or_inconsistent_settings_are_refused(kwargs, message):
    with pytest.raises(ClusterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve(env={}, **kwargs)


def test_tf_config_names_every_worker_on_ports_past_the_coordinator():
    one_host = Cluster("127.0.0.1:5000", 2, 1)
    assert one_host.tf_config() == {
        "cluster": {"worker": ["127.0.0.1:5001", "127.0.0.1:5002"]},
        "task": {"type": "worker", "index": 1},
    }
    two_hosts = Cluster("10.0.0.1:5000", 2, 0, ("10.0.0.1", "10.0.0.2"))
    assert two_hosts.tf_worker_addresses() == ["10.0.0.1:5001", "10.0.0.2:5002"]


def test_workers_get_the_cluster_and_enough_virtual_cpus():
    cluster = Cluster("127.0.0.1:5000", 2, 1)
    loaded = parse_scenario(
        "name: t\nmodel: mlp\nbatch_size: 64\nmatrix:\n  replicas: [1, 4, all]\n", "s.yaml"
    )
    assert cpu_devices_for(loaded.cells) == 4
    assert cpu_devices_for(loaded.cells, processes=2) == 2  # 4 replicas over 2 hosts
    env = worker_env("jax", "cpu", 2, cluster)
    assert from_env(env) == cluster
    assert env["JAX_NUM_CPU_DEVICES"] == env["BENCH_CPU_DEVICES"] == "2"
    assert "JAX_NUM_CPU_DEVICES" not in worker_env("jax", "gpu", 4)


def test_tensorflow_gets_a_fresh_worker_per_replica_count():
    loaded = parse_scenario(
        "name: t\nmodel: mlp\nmatrix:\n  batch_size: [32, 64]\n  replicas: [1, 2]\n",
        "s.yaml",
    )
    ids = [
        [c.cell_id.split("-", 3)[3] for c in b] for b in worker_batches("tensorflow", loaded.cells)
    ]
    assert ids == [
        ["bs32-float32-synthetic", "bs64-float32-synthetic"],
        ["bs32-float32-synthetic-r2", "bs64-float32-synthetic-r2"],
    ]
    assert len(worker_batches("jax", loaded.cells)) == 1
