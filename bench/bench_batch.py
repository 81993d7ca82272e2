"""Benchmark: ``lu-dosimetry batch`` on 8 small patients, 2 workers against 1 (1 thread each).

    python bench/bench_batch.py [--patients 8] [--registration auto] [--repeats 1]

Writes the patients (2-cycle synthetic patients on a 64 x 64 x 48 grid of 9.6 mm voxels, as the
``coarse_patient`` test fixture, each with its own seed and patient id) into a temporary folder, then
times ``lu-dosimetry batch STUDIES --out DIR --workers N --threads-per-worker 1`` for N = 1 and 2 in
fresh processes (start-up included, as a user sees it), alternating when repeated. Prints the wall
times (best of the repeats) and their ratio (issue 17 target: <= 0.6 on 2 cores), with the sum of
the patients' own run times from ``batch_status.json``, the load average and, before and after, the
same ratio for a trivial CPU job (what 2 processes can gain on this machine at that moment): on a
shared machine other processes compete for the cores and change the ratio.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / d) for d in ("LuDosimetry", "LuResponse")]

from LuDosimetryLib.synthetic.phantom import PhantomConfig, write_phantom_study

SMALL = {"n_cycles": 2, "max_shift_mm": 0.0, "max_rotation_deg": 0.0, "shape_xyz": (64, 64, 48), "spacing_mm": 9.6}


def time_batch(studies: Path, out: Path, workers: int, registration: str) -> float:
    """Wall time (s) of one ``lu-dosimetry batch`` run in a fresh process (fails loudly)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(ROOT / d) for d in ("LuDosimetry", "LuResponse")))
    cmd = [sys.executable, "-m", "LuDosimetryLib.cli", "batch", str(studies), "--out", str(out), "--workers",
           str(workers), "--threads-per-worker", "1", "--registration", registration]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"batch with {workers} worker(s) failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    status = json.loads((out / "batch_status.json").read_text(encoding="utf-8"))
    per_patient = [p["seconds"] for p in status["patients"]]
    print(f"  --workers {workers} --threads-per-worker 1: {seconds:6.1f} s wall; patients' own run times "
          f"sum {sum(per_patient):.1f} s (median {statistics.median(per_patient):.1f} s), load average "
          f"{os.getloadavg()[0]:.2f}")
    return seconds


def _spin(n: int) -> int:
    """A pure-Python CPU job (no I/O, no threads)."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def machine_ratio(n: int = 20_000_000) -> float:
    """What 2 processes can gain here now: wall time of 4 equal CPU jobs in 2 processes over the
    same in 1 (0.5 on 2 idle cores, ~1 when other programs already use one core)."""
    from concurrent.futures import ProcessPoolExecutor

    times = []
    for workers in (1, 2):
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_spin, [1000] * workers))  # start the processes before timing
            t0 = time.perf_counter()
            list(pool.map(_spin, [n] * 4))
            times.append(time.perf_counter() - t0)
    return times[1] / times[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=8)
    ap.add_argument("--registration", default="auto")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        studies = Path(d) / "studies"
        t0 = time.perf_counter()
        for i in range(1, args.patients + 1):
            write_phantom_study(studies / f"patient{i:02d}", PhantomConfig(**SMALL, seed=100 + i,
                                                                           patient_id=f"BENCH{i:02d}"))
        print(f"{args.patients} patients written in {time.perf_counter() - t0:.1f} s (not timed); "
              f"registration {args.registration}; load average {os.getloadavg()[0]:.2f}")
        print(f"machine now: 4 CPU jobs in 2 processes take {machine_ratio():.2f} x the time in 1 (ideal 0.5 on 2 "
              "idle cores)")
        times: dict[int, list[float]] = {1: [], 2: []}
        for r in range(args.repeats):
            for workers in (1, 2) if r % 2 == 0 else (2, 1):
                times[workers].append(time_batch(studies, Path(d) / f"out_w{workers}_{r}", workers, args.registration))
        t1, t2 = min(times[1]), min(times[2])
        print(f"batch of {args.patients} patients: 1 worker {t1:.1f} s, 2 workers {t2:.1f} s, "
              f"ratio {t2 / t1:.2f} (target <= 0.6 on 2 cores; {os.cpu_count()} CPUs here, "
              f"load average {os.getloadavg()[0]:.2f})")
        print(f"machine after: 4 CPU jobs in 2 processes take {machine_ratio():.2f} x the time in 1")


if __name__ == "__main__":
    main()
