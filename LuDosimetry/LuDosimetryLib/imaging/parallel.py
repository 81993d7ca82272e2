"""Independent image jobs (registrations, resampling) side by side in threads.

SimpleITK releases the GIL inside its filters and registration, so threads give real
parallelism without copying images between processes. While jobs run, SimpleITK's global
default number of threads (:meth:`SimpleITK.ProcessObject.SetGlobalDefaultNumberOfThreads`) is
set to ``cores // workers`` (at least 1) so that workers × SimpleITK threads = cores (no
oversubscription), and restored afterwards; the same setting is used for every job of a run,
so results do not depend on which job ran first. ``LU_DOSIMETRY_THREADS`` (an integer) caps the
number of workers (1 = one job after the other).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import SimpleITK as sitk

from .. import cache
from ..progress import check_cancel as _check_cancel
from ..progress import report_progress as _report

_sitk_lock = threading.Lock()  # the global SimpleITK setting is process-wide: one pool at a time sets it


def available_cores() -> int:
    """Cores this process may use (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def worker_count(n_jobs: int) -> int:
    """Workers for ``n_jobs`` jobs: the cores, capped by ``LU_DOSIMETRY_THREADS`` and the job count."""
    n = available_cores()
    cap = os.environ.get("LU_DOSIMETRY_THREADS", "").strip()
    if cap.isdigit() and int(cap) >= 1:
        n = min(n, int(cap))
    return max(1, min(n, n_jobs))


def map_threads(fn, jobs: dict, progress=None, cancel=None, start: float = 0.0, span: float = 0.0,
                label: str = "working") -> dict:
    """``{key: fn(job)}`` for ``jobs = {key: job}``, run in a thread pool (see the module docstring).

    Progress is reported from ``start`` to ``start + span`` as jobs finish; ``cancel`` is checked
    between jobs (pending jobs are dropped, running ones finish). The first exception is re-raised."""
    if not jobs:
        return {}
    workers = worker_count(len(jobs))
    wrapped = cache.propagate(fn)
    if workers == 1:
        out = {}
        for n, (key, job) in enumerate(jobs.items()):
            _check_cancel(cancel)
            _report(progress, start + span * n / len(jobs), f"{label} ({n + 1}/{len(jobs)})")
            out[key] = wrapped(job)
        return out
    with _sitk_lock:
        before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, available_cores() // workers))
        try:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lu-dosimetry") as pool:
                futures = {pool.submit(wrapped, job): key for key, job in jobs.items()}
                out, pending = {}, set(futures)
                _report(progress, start, f"{label} ({len(jobs)} jobs, {workers} threads)")
                while pending:
                    finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                    for f in finished:
                        out[futures[f]] = f.result()
                    if finished:
                        _report(progress, start + span * len(out) / len(jobs), f"{label} ({len(out)}/{len(jobs)})")
                    if cancel is not None and cancel():
                        for f in pending:
                            f.cancel()
                        _check_cancel(cancel)
        finally:
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)
    return {key: out[key] for key in jobs}
