"""The facts about this machine that matter for our numbers (``frugal info``, benchmark records)."""

from __future__ import annotations

import os
import platform
import shutil
from datetime import UTC, datetime
from functools import cache
from importlib import metadata
from typing import Any

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
)
SIMD_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "amx_tile",
    "asimd",
    "sve",
)


@cache
def cpu() -> dict[str, Any]:
    """CPU model, logical core count and the SIMD extensions that our kernels care about."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name":
                    model = value.strip()
                elif key in ("flags", "Features"):
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return {
        "model": model,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "simd": [f for f in SIMD_FLAGS if f in flags],
    }


def machine(*, load: bool = False, recorded: dict[str, Any] | None = None) -> str:
    """This machine as result notes name it: usable and logical cores, the CPU model and, with
    ``load``, the 1-minute load average at the time of the call; or, given an :func:`environment`
    record (``recorded``), the machine that record describes (and its GPU, if it had one).

    Examples
    --------
    >>> "usable of" in machine(load=True)
    True
    >>> machine(recorded={"cpu": {"model": "Xeon", "cores": 4, "usable_cores": 2}})
    '2 usable of 4 cores (Xeon)'
    """
    info = cpu() if recorded is None else recorded.get("cpu") or {}
    cores = info.get("cores") or "?"
    text = f"{info.get('usable_cores') or cores} usable of {cores} cores ({info.get('model', 'unknown CPU')})"
    if recorded is not None:
        torch = recorded.get("torch") or {}
        return text + (f", {torch.get('device')}" if torch.get("cuda") else "")
    if load and hasattr(os, "getloadavg"):
        text += f", load average {os.getloadavg()[0]:.1f}"
    return text


def physical_memory() -> int:
    """Bytes of physical memory in this machine.

    Examples
    --------
    >>> physical_memory() > 0
    True
    """
    return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def available_memory() -> int:
    """Bytes of memory available to new allocations now (Linux ``MemAvailable``; elsewhere the
    physical memory), for refusing a size before allocating it.

    Examples
    --------
    >>> 0 < available_memory() <= physical_memory()
    True
    """
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return physical_memory()


def thread_settings() -> dict[str, Any]:
    """Thread-related environment variables and the thread pools threadpoolctl sees."""
    settings: dict[str, Any] = {v: os.environ[v] for v in THREAD_VARIABLES if v in os.environ}
    settings["blas"] = blas()
    return settings


def blas() -> list[dict[str, Any]]:
    """numpy's BLAS / OpenMP libraries with their kernel (architecture) and thread count."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    import numpy  # noqa: F401  (load numpy's BLAS so threadpoolctl can see it)

    keep = ("user_api", "internal_api", "version", "num_threads", "architecture", "threading_layer")
    return [{k: lib[k] for k in keep if k in lib} for lib in threadpool_info()]


def package_version(name: str) -> str | None:
    """Installed version of a distribution, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def torch_info() -> dict[str, Any]:
    """torch's version and whether CUDA is usable (imports torch only if it is installed)."""
    if package_version("torch") is None:
        return {"version": None, "cuda": False}
    import torch

    return {
        "version": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def compiler() -> str | None:
    """The C compiler found on PATH (``$CC``, cc, gcc, clang), or None."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and (found := shutil.which(name)):
            return found
    return None


def environment() -> dict[str, Any]:
    """Everything above, as one JSON-ready dict recorded with every benchmark result, with the UTC
    date and time it was taken."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu(),
        "threads": thread_settings(),
        "numpy": package_version("numpy"),
        "numba": package_version("numba"),
        "torch": torch_info(),
        "compiler": compiler(),
        "frugalml": package_version("frugalml"),
    }
