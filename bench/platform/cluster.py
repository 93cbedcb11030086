"""Multi-host settings: which process of how many this ``bench run`` is, and where to meet.

Every host runs the same ``bench run SCENARIO`` with the same coordinator and process count and
its own process id (flags, or ``BENCH_*`` environment variables, which the flags override). The
runner hands them to each worker through the environment; the worker joins the framework's own
distributed runtime with them: ``jax.distributed.initialize`` for JAX, and
``MultiWorkerMirroredStrategy`` with a ``TF_CONFIG`` built here for TensorFlow. Nothing here
imports a framework.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.limits import MAX_PROCESSES

ENV_COORDINATOR = "BENCH_COORDINATOR"
ENV_NUM_PROCESSES = "BENCH_NUM_PROCESSES"
ENV_PROCESS_ID = "BENCH_PROCESS_ID"
ENV_WORKER_HOSTS = "BENCH_WORKER_HOSTS"


class ClusterError(ValueError):
    """Multi-host settings that are missing, malformed or inconsistent."""


@dataclass(frozen=True)
class Cluster:
    coordinator: str  # HOST:PORT of process 0, where JAX's coordination service listens
    num_processes: int
    process_id: int
    # Host of each process, in process-id order: TensorFlow needs every worker's address, not
    # only the coordinator's. Empty: every process on the coordinator's host (one machine).
    worker_hosts: tuple[str, ...] = ()

    @property
    def host(self) -> str:
        return self.coordinator.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.coordinator.rsplit(":", 1)[1])

    @property
    def is_primary(self) -> bool:
        """Process 0 writes the merged results."""
        return self.process_id == 0

    def tf_worker_addresses(self) -> list[str]:
        """One gRPC address per TensorFlow worker: port = coordinator port + 1 + process id, so
        that processes sharing a host (and JAX's coordinator on the port itself) never clash."""
        hosts = self.worker_hosts or (self.host,) * self.num_processes
        return [f"{h}:{self.port + 1 + i}" for i, h in enumerate(hosts)]

    def tf_config(self) -> dict[str, Any]:
        """``TF_CONFIG`` for MultiWorkerMirroredStrategy: every worker, and which one this is."""
        return {
            "cluster": {"worker": self.tf_worker_addresses()},
            "task": {"type": "worker", "index": self.process_id},
        }

    def to_env(self) -> dict[str, str]:
        """What a worker process reads back with ``from_env``."""
        env = {
            ENV_COORDINATOR: self.coordinator,
            ENV_NUM_PROCESSES: str(self.num_processes),
            ENV_PROCESS_ID: str(self.process_id),
        }
        if self.worker_hosts:
            env[ENV_WORKER_HOSTS] = ",".join(self.worker_hosts)
        return env

    def describe(self) -> dict[str, Any]:
        return {
            "coordinator": self.coordinator,
            "num_processes": self.num_processes,
            "process_id": self.process_id,
            "worker_hosts": list(self.worker_hosts),
        }


def resolve(
    coordinator: str | None = None,
    num_processes: int | str | None = None,
    process_id: int | str | None = None,
    worker_hosts: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Cluster | None:
    """Settings from flags, else the environment; None for a single-process run.

    All three of coordinator, process count and process id are needed once any is given: a
    process that guessed its id would join the wrong slot and hang every other host.
    """
    env = os.environ if env is None else env
    coordinator = coordinator or env.get(ENV_COORDINATOR) or None
    num = num_processes if num_processes is not None else env.get(ENV_NUM_PROCESSES)
    pid = process_id if process_id is not None else env.get(ENV_PROCESS_ID)
    hosts = worker_hosts if worker_hosts is not None else env.get(ENV_WORKER_HOSTS, "")
    given = {"--coordinator": coordinator, "--num-processes": num, "--process-id": pid}
    if not any(v not in (None, "") for v in given.values()):
        return None
    missing = [flag for flag, v in given.items() if v in (None, "")]
    if missing:
        raise ClusterError(
            f"multi-host run: {', '.join(missing)} missing; expected all of --coordinator "
            f"HOST:PORT, --num-processes N and --process-id I (or {ENV_COORDINATOR}, "
            f"{ENV_NUM_PROCESSES}, {ENV_PROCESS_ID})"
        )
    assert coordinator is not None
    host, sep, port = coordinator.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterError(f"--coordinator {coordinator!r}: expected HOST:PORT, e.g. 10.0.0.2:1234")
    try:
        n, i = int(num), int(pid)  # type: ignore[arg-type]
    except ValueError as exc:  # not a number, or one of thousands of digits
        raise ClusterError(
            f"--num-processes {num!r} / --process-id {pid!r}: expected integers"
        ) from exc
    if not 1 <= n <= MAX_PROCESSES:
        raise ClusterError(f"--num-processes {n}: expected from 1 to {MAX_PROCESSES}")
    if not 0 <= i < n:
        raise ClusterError(f"--process-id {i}: expected 0 <= id < --num-processes {n}")
    host_list = tuple(h.strip() for h in hosts.split(",") if h.strip())
    if host_list and len(host_list) != n:
        raise ClusterError(
            f"--worker-hosts names {len(host_list)} hosts; expected one per process ({n})"
        )
    return Cluster(coordinator, n, i, host_list)


def from_env(env: Mapping[str, str] | None = None) -> Cluster | None:
    """The worker's side of ``Cluster.to_env``."""
    return resolve(env=os.environ if env is None else env)


def tf_config_json(cluster: Cluster) -> str:
    return json.dumps(cluster.tf_config())
