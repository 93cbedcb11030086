"""The environment a run was measured in: host, OS, Python, library versions, accelerators, git.

Read without importing any framework: package versions come from installed metadata, GPUs from
``nvidia-smi`` (or NVML when installed), TPUs from the VM's environment and device files. What
each framework itself saw is added by the runner from its workers' ``ready`` messages.
"""

from __future__ import annotations

import glob
import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

PACKAGES = (
    "bench",
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "tensorflow",
    "keras",
    "numpy",
    "pandas",
    "pydantic",
    "nvidia-ml-py",
    "cloud-tpu-client",
    "tpu-info",
    "libtpu",
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def nvidia_gpus() -> list[dict[str, Any]]:
    if not shutil.which("nvidia-smi"):
        return []
    query = "name,driver_version,memory.total,pci.bus_id"
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        name, driver, mem_mib, bus = (part.strip() for part in line.split(","))
        gpus.append(
            {
                "kind": "gpu",
                "name": name,
                "driver_version": driver,
                "memory_bytes": int(float(mem_mib)) * 2**20,
                "pci_bus_id": bus,
            }
        )
    return gpus


def tpus() -> list[dict[str, Any]]:
    chips = sorted(glob.glob("/dev/accel*")) or sorted(glob.glob("/dev/vfio/[0-9]*"))
    accelerator_type = os.environ.get("TPU_ACCELERATOR_TYPE") or os.environ.get("ACCELERATOR_TYPE")
    if not chips and not accelerator_type:
        return []
    from bench.platform.tpu import chip_count, device_name

    # The device files count this host's chips; the accelerator type names the whole slice
    # (a multi-host slice has more chips than one host shows).
    return [
        {
            "kind": "tpu",
            "accelerator_type": accelerator_type,
            "device_name": device_name(accelerator_type),
            "chips": len(chips),
            "slice_chips": chip_count(accelerator_type),
        }
    ]


def git_state(cwd: Path) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def collect(cwd: Path | None = None) -> dict[str, Any]:
    uname = platform.uname()
    return {
        "host": {
            "hostname": uname.node,
            "cpu_model": cpu_model(),
            "cpu_count_logical": os.cpu_count(),
            "cpu_count_usable": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else None,
            "memory_bytes": memory_bytes(),
            "machine": uname.machine,
        },
        "os": {"system": uname.system, "release": uname.release, "platform": platform.platform()},
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
        },
        "packages": package_versions(),
        "accelerators": nvidia_gpus() + tpus(),
        "git": git_state(cwd or Path.cwd()),
        "frameworks": {},
    }
