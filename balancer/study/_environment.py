"""The machine a study ran on, recorded with its results (``report.md`` and ``config.json``).

A study's timings and its last bits depend on the machine (CPU, thread count, torch build) and
its timings on the load of the moment, so a report without them cannot be compared with another.
The environment is a record, not a setting: ``--resume`` does not compare it (``study.json``,
which resume compares, never holds it), so a study may be finished on another machine, and the
report then shows the environment of the session that wrote it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["describe_environment", "environment_lines"]


def _cpu_model() -> str:
    """The CPU's model name: ``/proc/cpuinfo`` on Linux, where ``platform.processor()`` is
    often empty or just the architecture."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def _usable_cpus() -> int | None:
    """CPUs this process may run on (a container or ``taskset`` may allow fewer than exist)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count()


def _torch_build() -> str:
    if torch.version.cuda:
        return f"CUDA {torch.version.cuda}"
    hip = getattr(torch.version, "hip", None)
    return f"ROCm {hip}" if hip else "CPU-only"


def describe_environment(*, device: str = "cpu", threads: int | None = None,
                         jobs: int = 1) -> dict[str, Any]:
    """The machine and software of this process, and the load average now.

    Args:
        device: the study's ``device`` (``"cuda"`` adds the GPU's name).
        threads: torch threads per training process (the study's ``threads``); ``None`` records
            this process's ``torch.get_num_threads()``.
        jobs: training processes run at once.

    Returns:
        A JSON-serialisable dict: ``cpu``, ``cpu_count`` (logical CPUs), ``usable_cpus``,
        ``os``, ``python``, ``torch``, ``torch_build``, ``torch_threads``, ``jobs``, ``numpy``,
        ``balancer``, ``device``, ``gpu`` (``None`` on CPU) and ``load_average`` (1, 5 and
        15 minutes; ``None`` where the OS has none).

    Example:
        >>> env = describe_environment(device="cpu", threads=2)
        >>> env["torch_threads"], env["device"], env["gpu"]
        (2, 'cpu', None)
    """
    from balancer import __version__

    gpu = None
    if device.startswith("cuda") and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(torch.device(device))
    try:
        load: list[float] | None = [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):  # Windows has no load average
        load = None
    return {
        "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "usable_cpus": _usable_cpus(),
        "os": platform.platform(), "python": platform.python_version(),
        "torch": torch.__version__, "torch_build": _torch_build(),
        "torch_threads": torch.get_num_threads() if threads is None else threads, "jobs": jobs,
        "numpy": np.__version__, "balancer": __version__, "device": device, "gpu": gpu,
        "load_average": load,
    }


def environment_lines(environment: dict[str, Any], *, when: str) -> list[str]:
    """``environment`` as the report's Markdown section; ``when`` says when the load average
    was read (e.g. ``"when the run started"``)."""
    env = environment
    load = env.get("load_average")
    load_text = ("not available on this OS" if not load else
                 f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min)")
    usable = env.get("usable_cpus")
    cores = (f"{env['cpu_count']} logical CPUs"
             + (f", {usable} usable by this process" if usable not in (None, env["cpu_count"])
                else ""))
    device = env["device"] + (f" ({env['gpu']})" if env.get("gpu") else "")
    threads = (f"{env['torch_threads']} torch thread(s) per training process, "
               f"{env['jobs']} process(es) at once" if env["device"] == "cpu" else
               f"{env['jobs']} training process(es)")
    return ["## Environment", "",
            f"- CPU: {env['cpu']}; {cores}",
            f"- OS: {env['os']}; Python {env['python']}",
            f"- torch {env['torch']} ({env['torch_build']} build); {threads}",
            f"- numpy {env['numpy']}; balancer {env['balancer']}",
            f"- device: {device}",
            f"- load average {when}: {load_text}. Timings depend on it: a loaded machine "
            f"stretches wall time.",
            ""]
