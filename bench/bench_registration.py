"""Benchmark: registration of the built-in phantom (4 cycles x 3 time points), time per scan.

    python bench/bench_registration.py [--src DIR] [--repeat N] [--config default|hard]

Times ``study_registration.register_scans`` (the Lib's whole-study registration, the step the
pipeline and the Slicer Register step call) on the demo patient (``PhantomConfig(seed=1)``) and
prints wall-clock and CPU seconds per registered scan (best of ``--repeat`` runs; the new code
includes its SPECT check per VOI, as the pipeline runs it). ``--src`` points at another
checkout's ``LuDosimetry`` folder, so the same script measures a baseline commit in the same
session (ratios, not absolute times, are what matter on a shared machine). ``--config hard`` uses
the large inter-cycle shift phantom of issue 10 (only the new code has those options).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

ap = argparse.ArgumentParser()
ap.add_argument("--src", default=str(Path(__file__).resolve().parents[1] / "LuDosimetry"))
ap.add_argument("--repeat", type=int, default=2)
ap.add_argument("--config", default="default", choices=("default", "hard"))
args = ap.parse_args()
sys.path[:0] = [args.src]

from LuDosimetryLib.imaging import study_registration as sr  # noqa: E402
from LuDosimetryLib.io.study import load_study  # noqa: E402
from LuDosimetryLib.io.study_images import load_study_images  # noqa: E402
from LuDosimetryLib.pipeline import PipelineOptions, define_vois  # noqa: E402
from LuDosimetryLib.synthetic.phantom import PhantomConfig, write_phantom_study  # noqa: E402


def main() -> None:
    if args.config == "hard":
        cfg = PhantomConfig(seed=1, cycle_shift_mm=(10.0, 10.0, 20.0), max_rotation_deg=3.0)
    else:
        cfg = PhantomConfig(seed=1)
    with tempfile.TemporaryDirectory() as d:
        study = load_study(write_phantom_study(Path(d) / "patient", cfg))
        images = load_study_images(study)
        first = study.cycles[0]
        ref_key = (first.cycle, sr.reference_index(first.hours, 24.0))
        vois = define_vois(study, images, images.spect[ref_key], images.ct.get(ref_key), PipelineOptions())[0]
        best, best_cpu = float("inf"), float("inf")
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            if hasattr(sr, "register_study"):  # with the SPECT check per VOI, as the pipeline runs it
                regs = sr.register_study(study, images, ref_key, "auto", vois=vois).registrations
            else:
                regs = sr.register_scans(study, images, ref_key, "auto")[0]
            best = min(best, time.perf_counter() - t0)
            best_cpu = min(best_cpu, time.process_time() - c0)
        n = sum(r is not None for r in regs.values())
    print(f"source {args.src}: {n} scans registered, best of {args.repeat}: wall {best:.2f} s total, "
          f"{best / n:.3f} s per scan; CPU {best_cpu / n:.3f} s per scan")


if __name__ == "__main__":
    main()
