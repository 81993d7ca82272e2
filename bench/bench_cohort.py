"""Benchmark: the whole cohort analysis (all stages, figures, report, JSON) at 73, 1,000 and
10,000 patients.  Issue 16 target: 10,000 patients in <= 60 s on 2 cores, peak memory <= 2 GB.

Run:  python bench/bench_cohort.py [--sizes 73,1000,10000] [--bootstrap 1000] [--cv-repeats 20]
      [--no-plots] [--svm-check]

Each size runs in its own Python process (so the peak memory, ru_maxrss, is that size's own):
73 = the demo cohort (Macsuka et al. shape, with per-cycle doses, lesions, scans, PET lesions);
larger sizes = ``synthetic.make_large_cohort`` (Eq. 5 responses, PFS/OS, scans every 12 weeks
for the landmark analysis).  Printed per size: wall and CPU seconds of cohort generation,
analysis (and its stages), writing, total, and the peak resident memory.  CPU seconds show the
cost when the machine is shared (wall >> CPU means other processes had the cores).
``--svm-check`` also prints, for 8,000 training patients, the test AUC of the subsampled SVM
against the SVM trained on all of them (the documented large-cohort approach).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "LuResponse")]

TARGET_S = {10000: 60.0}
TARGET_MB = 2048.0


def _one(n: int, a) -> dict:
    import resource

    rows: dict[str, tuple[float, float]] = {}

    def timed(name, fn):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        rows[name] = (time.perf_counter() - w, time.process_time() - c)
        return out

    def imports():
        import LuResponseLib.analysis  # noqa: F401
        import LuResponseLib.report  # noqa: F401
        import lifelines  # noqa: F401
        import sklearn.svm  # noqa: F401

    timed("imports", imports)
    from LuResponseLib.analysis import CohortAnalysisOptions, run_cohort_analysis
    from LuResponseLib.report import write_cohort_outputs
    from LuResponseLib.synthetic import make_demo_cohort, make_large_cohort

    opt = CohortAnalysisOptions(seed=a.seed, n_bootstrap=a.bootstrap, n_cv_repeats=a.cv_repeats)
    if n == 73:
        d = timed("generate cohort", lambda: make_demo_cohort(a.seed))
        res = timed("analysis", lambda: run_cohort_analysis(d.table, opt, d.cycles, d.lesions, visits=d.visits,
                                                            pet_lesions=d.pet_lesions))
    else:
        d = timed("generate cohort", lambda: make_large_cohort(n, a.seed))
        res = timed("analysis", lambda: run_cohort_analysis(d.table, opt, visits=d.visits))
    with tempfile.TemporaryDirectory() as tmp:
        timed("write figures, report, JSON", lambda: write_cohort_outputs(res, Path(tmp) / "out",
                                                                          make_plots=not a.no_plots))
    return {"n": n, "rows": rows, "stages": res.timings_s,
            "peak_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "aucs": {k: v.auc for k, v in res.cv.items()},
            "repeats": {k: v.aucs.size for k, v in res.repeated_cv.items()}}


def _svm_check(seed: int) -> None:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from LuResponseLib.models import ModelSettings, fit_response_model
    from LuResponseLib.synthetic import simulate_logistic_cohort

    X, y, _ = simulate_logistic_cohort(8000, seed=seed + 11)
    Xt, yt, pt = simulate_logistic_cohort(4000, seed=seed + 12)
    out = {}
    for label, cap in (("subsample 2000", 2000), ("all 8000", 0)):
        w = time.perf_counter()
        m = fit_response_model(X, y, "svm", settings=ModelSettings(svm_max_train=cap, n_jobs=1))
        out[label] = (roc_auc_score(yt, m.predict_probability(Xt, warn=False)), time.perf_counter() - w)
    print("SVM large-cohort check (8,000 training / 4,000 test patients, Eq. 5 truth AUC "
          f"{roc_auc_score(yt, pt):.4f}): " + ", ".join(f"{k}: test AUC {v[0]:.4f}, fit {v[1]:.1f} s"
                                                        for k, v in out.items()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="73,1000,10000")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--cv-repeats", type=int, default=20)
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--svm-check", action="store_true")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(_one(a.child, a)))
        return 0
    ok = True
    print(f"Cohort benchmark: {a.bootstrap} bootstrap resamples, {a.cv_repeats} repeated CV splits, seed {a.seed}")
    for n in (int(s) for s in a.sizes.split(",")):
        cmd = [sys.executable, __file__, "--child", str(n), "--seed", str(a.seed), "--bootstrap", str(a.bootstrap),
               "--cv-repeats", str(a.cv_repeats)] + (["--no-plots"] if a.no_plots else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode:
            print(f"{n} patients: failed\n{out.stderr[-2000:]}")
            ok = False
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"\n{n} patients{' (demo cohort)' if n == 73 else ''}")
        print(f"  {'step':36s} {'wall s':>8s} {'cpu s':>8s}")
        for name, (w, c) in r["rows"].items():
            print(f"  {name:36s} {w:8.2f} {c:8.2f}")
            if name == "analysis":
                for stage, s in r["stages"].items():
                    print(f"    - {stage:32s} {s:8.2f}")
        total_w = sum(w for w, _ in r["rows"].values())
        total_c = sum(c for _, c in r["rows"].values())
        target = TARGET_S.get(n)
        print(f"  {'total':36s} {total_w:8.2f} {total_c:8.2f}" + (f"   (target <= {target:.0f} s wall)" if target else ""))
        print(f"  peak memory {r['peak_MB']:.0f} MB (target <= {TARGET_MB:.0f} MB); CV AUC "
              + ", ".join(f"{k} {v:.3f}" for k, v in r["aucs"].items())
              + "; repeated-CV splits " + ", ".join(f"{k} {v}" for k, v in r["repeats"].items()))
        ok &= (target is None or total_w <= target) and r["peak_MB"] <= TARGET_MB
    if a.svm_check:
        _svm_check(a.seed)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
