"""TPUs: names the peak and price tables know, and legacy TPU nodes checked before a run.

TPU VMs (v4 and later, and v2/v3 "TPU VM" runtimes) have their chips attached locally: the
workers find them with ``jax.devices("tpu")`` and ``TPUClusterResolver(tpu="local")``. A legacy
TPU *node* is a separate machine reached over gRPC from a user VM; a scenario names it under
``tpu: {name, zone, project}`` and the runner asks the Cloud TPU API about it (through
cloud-tpu-client's ``Client``) before any TPU cell runs, so that a node that is stopped,
preempted or unhealthy costs one clear line per cell instead of a hung worker.

Nothing here imports a framework; cloud-tpu-client is imported only when a node is named.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Node states (Cloud TPU API v1 ``Node.State``) after which the node will not come back by
# itself: waiting is pointless, and the cells fail.
LOST_STATES = ("PREEMPTED", "TERMINATED")
# States a node passes through on its way to READY: worth waiting for, within ``wait_s``.
TRANSIENT_STATES = ("CREATING", "STARTING", "RESTARTING", "REPAIRING", "REIMAGING", "UNHIDING")
# Accelerator-type generation -> the device name JAX reports as device_kind, which the peak and
# price tables match (bench/data/peaks.yaml).
_GENERATIONS = {
    "v2": "TPU v2",
    "v3": "TPU v3",
    "v4": "TPU v4",
    "v5litepod": "TPU v5 lite",
    "v5e": "TPU v5 lite",
    "v5p": "TPU v5",
    "v6e": "TPU v6 lite",
}
# Accelerator types count TensorCores on v2, v3, v4 and v5p ("v3-8" is 4 chips) and chips on
# v5e and v6e ("v5litepod-8" is 8 chips).
_CORES_PER_CHIP = {"v2": 2, "v3": 2, "v4": 2, "v5p": 2}


def device_name(accelerator_type: str | None) -> str:
    """ "v5litepod-8" -> "TPU v5 lite": the name peak FLOPs and prices resolve from."""
    generation = (accelerator_type or "").split("-")[0].lower()
    return _GENERATIONS.get(generation, f"TPU {generation}" if generation else "TPU")


def chip_count(accelerator_type: str | None) -> int | None:
    """Chips in a slice of this type ("v3-8" -> 4, "v5litepod-8" -> 8), None when unknown."""
    match = re.fullmatch(r"([a-z0-9]+)-(\d+)", (accelerator_type or "").lower())
    if not match:
        return None
    generation, count = match.group(1), int(match.group(2))
    return max(1, count // _CORES_PER_CHIP.get(generation, 1))


@dataclass
class NodeCheck:
    """What the runner needs to know about a legacy TPU node before its cells run."""

    name: str
    status: str  # "ok" when usable; else the status its cells are recorded with
    reason: str = ""
    state: str | None = None
    health: str | None = None
    accelerator_type: str | None = None
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    zone: str | None = None
    project: str | None = None

    @property
    def usable(self) -> bool:
        return self.status == "ok"

    def resolver_target(self) -> dict[str, str]:
        """How the TF worker builds its TPUClusterResolver: the one endpoint's gRPC address for
        a single-host node; for a pod's several endpoints, the name, zone and project, from
        which the resolver asks the API for every worker itself."""
        if len(self.endpoints) == 1:
            ep = self.endpoints[0]
            return {"tpu": f"grpc://{ep['ipAddress']}:{ep.get('port', '8470')}"}
        return {"tpu": self.name, "zone": self.zone or "", "project": self.project or ""}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "zone": self.zone,
            "project": self.project,
            "status": self.status,
            "reason": self.reason,
            "state": self.state,
            "health": self.health,
            "accelerator_type": self.accelerator_type,
            "device_name": device_name(self.accelerator_type) if self.accelerator_type else None,
            "chips": chip_count(self.accelerator_type),
            "endpoints": self.endpoints,
        }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:240]


def check_node(
    spec: Any,
    service: Any = None,
    client_factory: Callable[..., Any] | None = None,
) -> NodeCheck:
    """Look up the node, wait (bounded by ``spec.wait_s``) for it to be HEALTHY, and say whether
    its cells can run. ``service`` is a Cloud TPU API object (discovery's ``build("tpu", "v1")``
    shape); None lets cloud-tpu-client build the real one from application-default credentials.
    Never raises: every outcome is a ``NodeCheck`` with a status and a one-line reason.
    """
    where = f"TPU node {spec.name!r}"
    check = NodeCheck(spec.name, "ok", zone=spec.zone, project=spec.project)
    if client_factory is None:
        try:
            from cloud_tpu_client import Client
        except ImportError as exc:
            check.status = "skipped"
            check.reason = (
                f"{where}: cloud-tpu-client is not installed ({exc.name or exc}); "
                "pip install 'bench[tpu]'"
            )
            return check
        client_factory = Client
    try:
        # Without zone or project, the client asks the GCE metadata server (only on Google Cloud).
        client = client_factory(
            tpu=spec.name, zone=spec.zone, project=spec.project, service=service
        )
        check.state = client.state()
        check.health = client.health()
        check.accelerator_type = client.accelerator_type()
    except Exception as exc:  # metadata server unreachable, no credentials, no such node
        check.status = "skipped"
        check.reason = f"{where} could not be looked up: {_first_line(exc)}"
        return check

    if check.state in LOST_STATES:
        check.status = "failed"
        check.reason = (
            f"{where} was {check.state.lower()} (state {check.state}); recreate it, then "
            "bench run --resume RUN_DIR --retry-failed"
        )
        return check
    if check.state != "READY" and check.state not in TRANSIENT_STATES:
        check.status = "skipped"
        check.reason = f"{where} is {check.state}, not READY; start it (gcloud compute tpus start)"
        return check
    if check.health != "HEALTHY" or check.state != "READY":
        try:
            client.wait_for_healthy(timeout_s=spec.wait_s, interval=spec.poll_s)
        except RuntimeError:
            check.status = "failed"
            check.reason = (
                f"{where} did not become HEALTHY within tpu.wait_s={spec.wait_s:g}s "
                f"(last seen: state {_safe(client.state)}, health {_safe(client.health)})"
            )
            return check
        except Exception as exc:
            check.status = "failed"
            check.reason = f"{where}: lost contact while waiting for it: {_first_line(exc)}"
            return check
        check.state, check.health = _safe(client.state), _safe(client.health)
        if check.state in LOST_STATES:
            check.status = "failed"
            check.reason = f"{where} was {check.state.lower()} while bench waited for it"
            return check
    try:
        # Raises unless READY: a node can turn HEALTHY while still finishing a restart.
        check.endpoints = list(client.network_endpoints())
    except Exception as exc:
        check.status = "failed"
        check.reason = f"{where} is HEALTHY but not usable: {_first_line(exc)}"
        return check
    return check


def recheck_lost(check: NodeCheck, service: Any = None, client_factory: Any = None) -> str | None:
    """After a TPU cell failed: the reason if the node has since been preempted or terminated
    (then the remaining cells fail with it instead of each waiting out a dead worker)."""
    if client_factory is None:
        from cloud_tpu_client import Client

        client_factory = Client
    try:
        client = client_factory(
            tpu=check.name, zone=check.zone, project=check.project, service=service
        )
        state = client.state()
    except Exception:
        return None
    if state in LOST_STATES:
        return f"TPU node {check.name!r} was {state.lower()} during the run (state {state})"
    return None


def _safe(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except Exception as exc:
        return f"unknown ({_first_line(exc)})"
