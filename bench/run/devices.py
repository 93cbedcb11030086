"""Inventory of what each installed framework sees here, asked of one worker per framework so
that TensorFlow and JAX never load into the same process (or into the CLI)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from bench.backends import registry
from bench.platform.environment import cpu_model, nvidia_gpus, tpus

DEVICES = ("cpu", "gpu", "tpu")
PROBE_TIMEOUT_S = 180


def framework_view(framework: str, python: str = sys.executable) -> list[dict[str, Any]]:
    """One ``ready`` answer per device kind, from a worker started with ``--devices``."""
    try:
        done = subprocess.run(
            [python, "-m", "bench.run.worker", framework, ",".join(DEVICES), "--devices"],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return [
            {
                "device": d,
                "present": False,
                "reason": f"probe timed out after {PROBE_TIMEOUT_S}s",
                "devices": [],
            }
            for d in DEVICES
        ]
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if not answers:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return [
            {"device": d, "present": False, "reason": f"probe failed: {tail}", "devices": []}
            for d in DEVICES
        ]
    return answers


def inventory(python: str = sys.executable) -> dict[str, Any]:
    return {
        "host": {"cpu_model": cpu_model(), "gpus": nvidia_gpus(), "tpus": tpus()},
        "frameworks": {fw: framework_view(fw, python) for fw in registry.names()},
    }
