"""How many torch threads a command uses: the cores that are free, unless told.

``torch`` starts one intra-op thread per core it can see; on a shared machine that oversubscribes the cores
other processes hold and a 2-thread run can get several times slower than a 1-thread one. The CLI picks instead:

1. ``--threads N`` (``speech-ssl --threads N COMMAND ...``), else
2. ``SPEECH_SSL_THREADS`` or ``OMP_NUM_THREADS`` when set, else
3. the usable cores (this process's CPU affinity, capped by a cgroup CPU quota) minus the 1-minute load
   average, rounded, divided among the local processes of a ``torchrun`` job (``LOCAL_WORLD_SIZE``), never
   below 1;

and says what it picked and why in one line on stderr. :func:`pick_threads` is the policy (pure, tested with
injected numbers); :func:`apply_thread_policy` reads the machine and sets torch.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

ENV_VARS = ("SPEECH_SSL_THREADS", "OMP_NUM_THREADS")


def _positive_int(raw: str, name: str) -> int:
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{name}={raw!r} must be a positive integer")
    return n


def pick_threads(cores: int, load: float, env: Mapping[str, str], requested: int | None = None) -> tuple[int, str]:
    """(threads, why) for ``cores`` usable cores, a 1-minute ``load`` average, the environment ``env`` and an
    explicit ``--threads`` (``requested``)."""
    if requested is not None:
        return _positive_int(str(requested), "--threads"), "--threads"
    for var in ENV_VARS:
        if env.get(var, "").strip():
            return _positive_int(env[var].strip(), var), f"{var}={env[var].strip()}"
    procs = _positive_int(env.get("LOCAL_WORLD_SIZE", "1") or "1", "LOCAL_WORLD_SIZE")
    free = max(cores - load, 0.0)
    n = max(1, min(cores, int(free / procs + 0.5)))
    why = f"{cores} usable cores, 1-min load {load:.2f} -> {free:.1f} free"
    if procs > 1:
        why += f" for {procs} local processes"
    return n, why


def cgroup_cpu_limit(path: Path = Path("/sys/fs/cgroup/cpu.max")) -> float | None:
    """Cores allowed by a cgroup v2 CPU quota (``quota period``), or None when unlimited or unknown."""
    try:
        quota, period = path.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def usable_cores() -> int:
    """CPUs this process may run on (affinity), capped by a cgroup CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = cgroup_cpu_limit()
    if limit is not None:
        cores = min(cores, max(1, int(limit)))
    return max(1, cores)


def apply_thread_policy(requested: int | None = None) -> int:
    """Set torch's intra-op threads by :func:`pick_threads` on this machine and say so on stderr."""
    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    n, why = pick_threads(usable_cores(), load, os.environ, requested)
    torch.set_num_threads(n)
    print(f"threads: {n} ({why}; set with --threads N or SPEECH_SSL_THREADS)", file=sys.stderr, flush=True)
    return n
