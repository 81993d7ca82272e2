"""Benchmark: the full cohort analysis of a 73-patient cohort (seed-000 shape) with 1000 bootstrap
resamples, 20 repeated CV splits, survival, lesions, figures and report.  Target: < 30 s.

Run:  python bench/bench_cohort.py [--seed 0] [--bootstrap 1000] [--out DIR] [--no-plots]

Prints wall-clock and CPU seconds per stage (CPU time shows the cost when the machine is shared).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "LuResponse")]

TARGET_S = 30.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--cv-repeats", type=int, default=20)
    ap.add_argument("--out", help="output folder (default: a temporary folder, removed afterwards)")
    ap.add_argument("--no-plots", action="store_true")
    a = ap.parse_args(argv)

    rows: list[tuple[str, float, float]] = []
    wall0, cpu0 = time.perf_counter(), time.process_time()

    def timed(name, fn):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        rows.append((name, time.perf_counter() - w, time.process_time() - c))
        return out

    def imports():
        import LuResponseLib.analysis  # noqa: F401
        import LuResponseLib.report  # noqa: F401
        import lifelines  # noqa: F401
        import sklearn.svm  # noqa: F401

    timed("imports (sklearn, lifelines)", imports)
    from LuResponseLib.analysis import CohortAnalysisOptions, run_cohort_analysis
    from LuResponseLib.report import write_cohort_outputs
    from LuResponseLib.synthetic import make_demo_cohort

    demo = timed("synthetic 73-patient cohort", lambda: make_demo_cohort(a.seed))
    opt = CohortAnalysisOptions(seed=a.seed, n_bootstrap=a.bootstrap, n_cv_repeats=a.cv_repeats)
    results = timed("analysis (all stages)", lambda: run_cohort_analysis(demo.table, opt, demo.cycles, demo.lesions))
    results.demo_truth = demo.truth
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(a.out) if a.out else Path(tmp) / "cohort"
        paths = timed("figures + report + JSON (write)",
                      lambda: write_cohort_outputs(results, out, make_plots=not a.no_plots))
    total_wall, total_cpu = time.perf_counter() - wall0, time.process_time() - cpu0

    print(f"Cohort benchmark: 73 patients, {a.bootstrap} bootstrap resamples, {a.cv_repeats} repeated CV splits, "
          f"seed {a.seed}")
    print(f"{'stage':44s} {'wall s':>8s} {'cpu s':>8s}")
    for name, w, c in rows:
        print(f"{name:44s} {w:8.2f} {c:8.2f}")
        if name.startswith("analysis"):
            for stage, s in results.timings_s.items():
                print(f"  - {stage:40s} {s:8.2f}")
    print(f"{'total':44s} {total_wall:8.2f} {total_cpu:8.2f}   (target < {TARGET_S:.0f} s)")
    s = results.sigmoid
    print(f"sigmoid: D_half {s.D_half_Gy:.1f} Gy, k {s.k_Gy:.1f} Gy, P_max {s.P_max:.2f}; "
          + ", ".join(f"{k} AUC {v.auc:.3f}" for k, v in results.cv.items()) + f"; {len(paths)} files")
    return 0 if total_wall < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
