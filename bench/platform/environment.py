"""The environment a run was measured in: host, OS, Python, library versions, accelerators, git.

Read without importing any framework: package versions come from installed metadata, GPUs from
``nvidia-smi`` (or NVML when installed), TPUs from the VM's environment and device files. What
each framework itself saw is added by the runner from its workers' ``ready`` messages.

Beyond the versions, what changes a timing without changing the code: the CUDA driver, runtime
and cuDNN (``cuda``: pip wheels such as nvidia-cudnn-cu12, which JAX's CUDA plugin loads, or the
system's CUDA toolkit), the JAX CUDA/TPU plugin packages and libtpu builds (``packages``), the
compiler flags (``flags``: XLA_FLAGS, TF_XLA_FLAGS, LIBTPU_INIT_ARGS, NVIDIA_TF32_OVERRIDE) and
the CPU quota of the container (``host.cpu_quota``, from cgroup v2 ``cpu.max`` or v1
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``): a container limited to 2 CPUs on a 16-core host
shows 16 CPUs everywhere else.
"""

from __future__ import annotations

import glob
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# bench's own dependencies and the device tooling it reads; each framework's packages come from
# its backend (``BackendSpec.packages``), which the runner passes to ``collect``.
PACKAGES = (
    "bench",
    "numpy",
    "pandas",
    "pydantic",
    "nvidia-ml-py",
    "cloud-tpu-client",
    "tpu-info",
)
# pip wheels of the CUDA runtime and cuDNN (what the JAX plugin and TF wheels load first), by
# CUDA major version; the system toolkit is read when none is installed.
CUDA_RUNTIME_PACKAGES = (
    "nvidia-cuda-runtime-cu12",
    "nvidia-cuda-runtime-cu13",
    "nvidia-cuda-runtime",
)
CUDNN_PACKAGES = ("nvidia-cudnn-cu12", "nvidia-cudnn-cu13", "nvidia-cudnn")
CUDA_HOME = Path("/usr/local/cuda")
CUDNN_HEADERS = (
    Path("/usr/include/cudnn_version.h"),
    Path("/usr/include/x86_64-linux-gnu/cudnn_version_v9.h"),
    Path("/usr/include/x86_64-linux-gnu/cudnn_version_v8.h"),
    CUDA_HOME / "include/cudnn_version.h",
)
# Environment variables that change what the compilers and libraries do.
FLAG_VARIABLES = ("XLA_FLAGS", "TF_XLA_FLAGS", "LIBTPU_INIT_ARGS", "NVIDIA_TF32_OVERRIDE")


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


def package_versions(extra: Sequence[str] = ()) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in dict.fromkeys((*PACKAGES, *extra)):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_quota(
    cgroup_root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")
) -> dict[str, Any]:
    """The container's CPU limit in CPUs (quota / period), or None when unlimited or unknown.

    cgroup v2: ``cpu.max`` holds "QUOTA PERIOD" or "max PERIOD"; cgroup v1: ``cpu.cfs_quota_us``
    (-1: none) and ``cpu.cfs_period_us``. The process's own cgroup (``/proc/self/cgroup``) is
    read first, then the root, which is the container's own in a cgroup namespace.
    """
    v2_paths, v1_paths = [], []
    try:
        for line in proc_cgroup.read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            rel = path.lstrip("/")
            if controllers == "" and rel:
                v2_paths.append(cgroup_root / rel)
            elif "cpu" in controllers.split(",") and rel:
                v1_paths.append(cgroup_root / controllers / rel)
    except (OSError, ValueError):
        pass
    for folder in [*v2_paths, cgroup_root]:
        try:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
        except (OSError, ValueError):
            continue
        source = f"cgroup v2 {folder / 'cpu.max'}: {quota} {period}"
        cpus = None if quota == "max" else int(quota) / int(period)
        return {"cpus": cpus, "source": source}
    for folder in [*v1_paths, cgroup_root / "cpu,cpuacct", cgroup_root / "cpu"]:
        try:
            quota = int((folder / "cpu.cfs_quota_us").read_text())
            period = int((folder / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        source = f"cgroup v1 {folder}: cfs_quota_us {quota}, cfs_period_us {period}"
        cpus = None if quota <= 0 or period <= 0 else quota / period
        return {"cpus": cpus, "source": source}
    return {"cpus": None, "source": "no cgroup CPU controller readable"}


def _first_package(names: tuple[str, ...]) -> tuple[str | None, str | None]:
    for name in names:
        try:
            return importlib.metadata.version(name), f"pip {name}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return None, None


def _cudnn_from_header(headers: tuple[Path, ...]) -> tuple[str | None, str | None]:
    for header in headers:
        try:
            text = header.read_text(errors="replace")
        except OSError:
            continue
        parts = [
            re.search(rf"#define CUDNN_{p}\s+(\d+)", text) for p in ("MAJOR", "MINOR", "PATCHLEVEL")
        ]
        if all(parts):
            return ".".join(m.group(1) for m in parts if m), str(header)
    return None, None


def _cuda_from_toolkit(home: Path) -> tuple[str | None, str | None]:
    try:
        found = json.loads((home / "version.json").read_text())["cuda"]["version"]
        return str(found), str(home / "version.json")
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        match = re.search(r"(\d+\.\d+(\.\d+)?)", (home / "version.txt").read_text())
        return (match.group(1), str(home / "version.txt")) if match else (None, None)
    except OSError:
        return None, None


def cuda_stack(
    smi_header: str | None = None,
    cuda_home: Path = CUDA_HOME,
    cudnn_headers: tuple[Path, ...] = CUDNN_HEADERS,
) -> dict[str, Any]:
    """CUDA driver (the CUDA version the driver supports, from nvidia-smi's header), CUDA
    runtime and cuDNN (pip wheels first, then the system toolkit), each None when absent."""
    driver = None
    if smi_header is None:
        smi_header = _nvidia_smi_header()
    match = re.search(r"CUDA Version:\s*([\d.]+)", smi_header or "")
    if match:
        driver = match.group(1)
    runtime, runtime_from = _first_package(CUDA_RUNTIME_PACKAGES)
    if runtime is None:
        runtime, runtime_from = _cuda_from_toolkit(cuda_home)
    cudnn, cudnn_from = _first_package(CUDNN_PACKAGES)
    if cudnn is None:
        cudnn, cudnn_from = _cudnn_from_header(cudnn_headers)
    return {
        "driver": driver,
        "runtime": runtime,
        "cudnn": cudnn,
        "sources": {
            "driver": "nvidia-smi" if driver else None,
            "runtime": runtime_from,
            "cudnn": cudnn_from,
        },
    }


def _nvidia_smi_header() -> str | None:
    if not shutil.which("nvidia-smi"):
        return None
    try:
        return subprocess.run(
            ["nvidia-smi"], capture_output=True, text=True, timeout=20, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def flags(environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    environ = os.environ if environ is None else environ
    return {name: environ.get(name) for name in FLAG_VARIABLES}


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


def collect(cwd: Path | None = None, packages: Sequence[str] = ()) -> dict[str, Any]:
    """The machine, its software and the run's folder; ``packages``: the frameworks' own."""
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
            "cpu_quota": cpu_quota(),
        },
        "os": {"system": uname.system, "release": uname.release, "platform": platform.platform()},
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
        },
        "packages": package_versions(packages),
        "cuda": cuda_stack(),
        "flags": flags(),
        "accelerators": nvidia_gpus() + tpus(),
        "git": git_state(cwd or Path.cwd()),
        "frameworks": {},
    }
