"""Benchmark: the full demo patient (4 cycles x 3 time points) end to end, per stage, side by side
with two baselines.

    python bench/bench_pipeline.py [--registration auto|translation|rigid_ct] [--dose-method ...]

Columns (each run in its own process, so that its peak memory is its own):

``run``           the dosimetry run as asked (cache off: every registration computed)
``cached re-run`` the same run again with the on-disk cache filled by a first run
                  (another dose method would cost the same: registrations and kernel come from the cache)
``--registration none``  the same study without registration (the floor of the run)
``peer rigid``    what a peer script would do: one minimal SimpleITK rigid registration per scan
                  (Euler 3-D, Mattes MI on the CTs, 2 levels, 20k samples) and a linear resampling
                  of its SPECT; no search, no fallback, no check, no dosimetry

Rows: wall-clock seconds per stage, the total, CPU seconds, peak RSS (MiB, ``resource.getrusage``),
and the ratio of each total to the ``none`` and ``peer rigid`` baselines; and, for ``run`` and
``peer rigid``, the largest registration error at the VOI centres against the phantom's true poses
(mm). Targets (issue 17): run <= 30 s and <= 3x ``none`` on 2 cores, cached re-run <= 10 s.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / d) for d in ("LuDosimetry", "LuResponse")]


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _pose_error_mm(study_json: Path, transforms: dict) -> float:
    """Largest distance (mm) between where a transform puts a VOI centre and the true pose."""
    import numpy as np
    from LuDosimetryLib.synthetic.phantom import PhantomConfig, make_poses

    truth = json.loads((study_json.parent / "ground_truth.json").read_text())
    cfg = PhantomConfig(seed=int(truth["seed"]))
    poses = make_poses(cfg)
    from LuDosimetryLib.io.study import load_study

    st = load_study(study_json)
    hours = {c.cycle: c.hours for c in st.cycles}
    # the reference scan (cycle 1, 24 h) has the identity pose: canonical = reference coordinates
    centres = [np.asarray(v["centre_mm"], float) for v in truth["vois"] if "centre_mm" in v]
    if not centres:
        return float("nan")
    worst = 0.0
    for (c, i), tx in transforms.items():
        pose = poses[(c, hours[c][i])]
        for centre in centres:
            true = pose.matrix() @ centre + np.asarray(pose.translation_mm)
            worst = max(worst, float(np.linalg.norm(np.asarray(tx.TransformPoint(tuple(centre))) - true)))
    return worst


def _child_run(manifest: Path, out: Path, registration: str, dose_method: str, use_cache: bool) -> dict:
    from LuDosimetryLib.pipeline import PipelineOptions, run_manifest

    t0, c0 = time.perf_counter(), time.process_time()
    result = run_manifest(manifest, out, PipelineOptions(registration=registration, dose_method=dose_method,
                                                         use_cache=use_cache))
    info = {"stages": result.timings_s, "total": time.perf_counter() - t0, "cpu": time.process_time() - c0}
    if registration != "none":
        tx = {k: r.transform for k, r in result.registrations.items() if r is not None}
        info["error_mm"] = _pose_error_mm(manifest, tx)
    return info


def _child_peer(manifest: Path) -> dict:
    """A minimal per-scan rigid registration (what a peer script would do) + linear resampling."""
    import SimpleITK as sitk
    from LuDosimetryLib.io.study import load_study
    from LuDosimetryLib.io.study_images import load_study_images

    t0, c0 = time.perf_counter(), time.process_time()
    study = load_study(manifest)
    images = load_study_images(study)
    t_load = time.perf_counter() - t0
    ref = (study.cycles[0].cycle, min(range(len(study.cycles[0].hours)),
                                      key=lambda i: abs(study.cycles[0].hours[i] - 24.0)))
    fixed_ct = sitk.Cast(images.ct[ref], sitk.sitkFloat32)
    transforms = {}
    t1 = time.perf_counter()
    for key in sorted(images.spect):
        if key == ref:
            continue
        R = sitk.ImageRegistrationMethod()
        R.SetMetricAsMattesMutualInformation(32)
        R.SetMetricSamplingStrategy(R.RANDOM)
        R.SetMetricSamplingPercentage(min(1.0, 20000 / fixed_ct.GetNumberOfPixels()), 1)
        R.SetOptimizerAsRegularStepGradientDescent(2.0, 1e-3, 200, relaxationFactor=0.6)
        R.SetOptimizerScalesFromPhysicalShift()
        R.SetShrinkFactorsPerLevel([2, 1])
        R.SetSmoothingSigmasPerLevel([1, 0])
        R.SetInterpolator(sitk.sitkLinear)
        moving_ct = sitk.Cast(images.ct[key], sitk.sitkFloat32)
        R.SetInitialTransform(sitk.CenteredTransformInitializer(fixed_ct, moving_ct, sitk.Euler3DTransform(),
                                                                sitk.CenteredTransformInitializerFilter.GEOMETRY))
        tx = R.Execute(fixed_ct, moving_ct)
        sitk.Resample(images.spect[key], images.spect[ref], tx, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        transforms[key] = tx
    t_reg = time.perf_counter() - t1
    return {"stages": {"loading images": t_load, "registration": t_reg}, "total": time.perf_counter() - t0,
            "cpu": time.process_time() - c0, "error_mm": _pose_error_mm(manifest, transforms)}


def _child(args) -> None:
    manifest, out = Path(args.manifest), Path(args.out)
    info = (_child_peer(manifest) if args.child == "peer" else
            _child_run(manifest, out, args.registration if args.child != "none" else "none", args.dose_method,
                       use_cache=args.child == "cached"))
    info["peak_rss_mib"] = _peak_rss_mib()
    print("BENCH-JSON " + json.dumps(info))


def _spawn(kind: str, manifest: Path, out: Path, args, env: dict) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--manifest", str(manifest), "--out", str(out),
           "--registration", args.registration, "--dose-method", args.dose_method]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH-JSON "):
            return json.loads(line[len("BENCH-JSON "):])
    raise RuntimeError(f"{kind} run failed:\n{proc.stderr[-3000:]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--registration", default="auto")
    ap.add_argument("--dose-method", default="local_deposition")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--manifest", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    from LuDosimetryLib.synthetic.phantom import PhantomConfig, write_phantom_study

    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        manifest = write_phantom_study(Path(d) / "patient", PhantomConfig(seed=1))
        t_phantom = time.perf_counter() - t0
        env = dict(os.environ, LU_DOSIMETRY_CACHE_DIR=str(Path(d) / "cache"))
        cols = {}
        cols["run"] = _spawn("run", manifest, Path(d) / "out_run", args, env)  # cache off inside
        _spawn("cached", manifest, Path(d) / "out_fill", args, env)  # fills the cache
        cols["cached re-run"] = _spawn("cached", manifest, Path(d) / "out_cached", args, env)
        cols["--registration none"] = _spawn("none", manifest, Path(d) / "out_none", args, env)
        cols["peer rigid"] = _spawn("peer", manifest, Path(d) / "out_peer", args, env)
    names = list(cols)
    stages = []
    for c in cols.values():
        stages += [s for s in c["stages"] if s not in stages]
    w = 22
    print(f"phantom generation: {t_phantom:.2f} s; registration {args.registration!r}, dose {args.dose_method!r}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"{'stage (wall s)':<34}" + "".join(f"{n:>{w}}" for n in names))
    for s in stages:
        print(f"{s:<34}" + "".join(f"{cols[n]['stages'][s]:>{w}.2f}" if s in cols[n]["stages"] else f"{'-':>{w}}"
                                   for n in names))
    rows = [("TOTAL wall s", "total", ".2f"), ("CPU s", "cpu", ".2f"), ("peak RSS MiB", "peak_rss_mib", ".0f")]
    for label, k, fmt in rows:
        print(f"{label:<34}" + "".join(f"{cols[n][k]:>{w}{fmt}}" for n in names))
    for base in ("--registration none", "peer rigid"):
        print(f"{'ratio to ' + base:<34}" + "".join(f"{cols[n]['total'] / cols[base]['total']:>{w}.2f}"
                                                    for n in names))
    print(f"{'worst VOI-centre error vs truth mm':<34}" + "".join(
        f"{cols[n]['error_mm']:>{w}.2f}" if "error_mm" in cols[n] else f"{'-':>{w}}" for n in names))
    print("targets: run <= 30 s and <= 3x '--registration none'; cached re-run <= 10 s")


if __name__ == "__main__":
    main()
