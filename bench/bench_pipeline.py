"""Benchmark: the full demo patient (4 cycles x 3 time points) end to end, per stage.

    python bench/bench_pipeline.py [--registration auto|translation] [--dose-method local_deposition|voxel_s_value]

Prints wall-clock seconds per stage (phantom generation, loading, registration, segmentation,
activity/fit/dose, metrics, writing) and the total of the dosimetry run. Target (issue 4):
under 60 s on a 2-core machine.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / d) for d in ("LuDosimetry", "LuResponse")]

from LuDosimetryLib.synthetic.phantom import PhantomConfig, write_phantom_study  # noqa: E402
from LuDosimetryLib.pipeline import PipelineOptions, run_manifest  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--registration", default="auto")
    ap.add_argument("--dose-method", default="local_deposition")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        manifest = write_phantom_study(Path(d) / "patient", PhantomConfig(seed=1))
        t_phantom = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = run_manifest(manifest, Path(d) / "out",
                              PipelineOptions(registration=args.registration, dose_method=args.dose_method))
        total = time.perf_counter() - t0
    print(f"{'stage':<32}{'seconds':>9}")
    print(f"{'(phantom generation, not timed)':<32}{t_phantom:>9.2f}")
    for stage, sec in result.timings_s.items():
        print(f"{stage:<32}{sec:>9.2f}")
    print(f"{'TOTAL dosimetry run':<32}{total:>9.2f}   (target < 60 s on 2 cores)")


if __name__ == "__main__":
    main()
