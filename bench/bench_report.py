"""Benchmark: cost of the per-patient report (report.html + report.pdf) per VOI.

    python bench/bench_report.py [--vois 4,8,16] [--repeat 1] [--profile FILE]

One synthetic patient like the demo (4 cycles x 3 scans, patient motion, registration ``auto`` so the
registration-quality section with its per-VOI panels is present; default options otherwise) is run
once with the pipeline on the coarse 9.6 mm grid of the test fixture
``coarse_patient`` (64 x 64 x 48 voxels, same field of view; ``--full-grid``: the demo's 4.8 mm
grid). Studies with other VOI counts are made
from that result: for fewer VOIs the first ones are kept (kidneys always kept); for more, the
tumours are repeated under new names with their rows, fits, samples, voxel dose
statistics and registration checks (the report code sees N distinct VOIs; it does not compare
them). Then, in the same process, the report stage (:func:`LuDosimetryLib.results.report.write_report`)
is timed with ``time.perf_counter`` for each VOI count.

Printed per VOI count: the total, its split into HTML sections without figures, figures (time
inside the figure builders incl. PNG encoding) and PDF, and total / VOIs; then the per-VOI slope
(between consecutive counts and least squares over all) and the fixed cost (intercept), and the
same fit over the counts at and above ``FIGURE_VOI_CAP`` (per-VOI figures are drawn for at most that
many VOIs; beyond it a VOI adds table rows, MIP contours, AD/AA, RC and DVH lines). Target (issue 17):
<= 0.05 s per VOI.
"""

import argparse
import copy
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / d) for d in ("LuDosimetry", "LuResponse")]


def build_result(workdir: Path, full_grid: bool = False):
    """The pipeline result of the demo-like patient (registration auto) on the coarse grid, or on
    the demo's own 4.8 mm grid with ``full_grid``."""
    from LuDosimetryLib.io.study import load_study
    from LuDosimetryLib.pipeline import PipelineOptions, load_study_images, run_study
    from LuDosimetryLib.synthetic.phantom import PhantomConfig, write_phantom_study

    cfg = PhantomConfig() if full_grid else PhantomConfig(shape_xyz=(64, 64, 48), spacing_mm=9.6)  # demo patient
    study = load_study(write_phantom_study(workdir / "patient", cfg))
    return run_study(study, load_study_images(study), PipelineOptions(registration="auto"))


def _renamed(voi, name):
    v = copy.copy(voi)
    v.definition = dataclasses.replace(voi.definition, name=name)
    return v


def with_n_vois(result, n: int):
    """A shallow copy of ``result`` whose VOIs, rows, fits, samples, dose statistics and registration
    checks are those of ``n`` VOIs (first ones kept, kidneys always; or tumours repeated under new names)."""
    base = list(result.vois)
    kidneys = [v for v in base if v.kind == "kidney"]
    others = [v for v in base if v.kind != "kidney"]
    if n <= len(base):
        chosen = [(v, v.name) for v in (others[:max(n - len(kidneys), 0)] + kidneys)[:n]]
    else:
        chosen = [(v, v.name) for v in base]
        pool = [v for v in base if v.kind == "tumor"] or base  # more lesions (a patient keeps two kidneys)
        k = 0
        while len(chosen) < n:
            src = pool[k % len(pool)]
            chosen.append((src, f"{src.name}_copy{k // len(pool) + 1}"))
            k += 1
    r = copy.copy(result)
    r.vois = [v if v.name == name else _renamed(v, name) for v, name in chosen]
    src_of = {name: v.name for v, name in chosen}
    r.rows = [dict(row, voi=name) for name, src in src_of.items() for row in result.rows if row["voi"] == src]
    r.fits = {(name, c): f for name, src in src_of.items() for (s, c), f in result.fits.items() if s == src}
    r.samples = {(name, c): x for name, src in src_of.items() for (s, c), x in result.samples.items() if s == src}
    r.time_activity = [dict(row, voi=name) for name, src in src_of.items() for row in result.time_activity
                       if row["voi"] == src]
    maps = dict(result.maps or {})
    stats = maps.get("dose_statistics")
    if stats:
        maps["dose_statistics"] = {(name, c): st for name, src in src_of.items() for (s, c), st in stats.items()
                                   if s == src}
    r.maps = maps
    qc = result.registration_qc
    if qc is not None:
        qc2 = copy.copy(qc)
        qc2.checks = {}
        for key, chk in qc.checks.items():
            c2 = copy.copy(chk)
            c2.vois = {name: chk.vois[src] for name, src in src_of.items() if src in chk.vois}
            qc2.checks[key] = c2
        qc2.local = {(name, key): img for name, src in src_of.items() for (s, key), img in qc.local.items()
                     if s == src}
        r.registration_qc = qc2
    return r


class _Clock:
    """Time spent inside the wrapped figure builders (outermost call only)."""

    def __init__(self):
        self.seconds, self._depth = 0.0, 0

    def wrap(self, fn):
        def inner(*a, **k):
            self._depth += 1
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.seconds += time.perf_counter() - t0
        inner.__wrapped__ = fn
        return inner


FIGURE_BUILDERS = {  # module -> names of functions that draw and encode figures (those that exist are wrapped)
    "LuDosimetryLib.results.report": ("_mip_figure", "_registration_figure", "_dvh_figure", "_dose_on_ct_section",
                                      "_rc_figure_tag", "_figures_section", "_qc_figures"),
    "LuDosimetryLib.results.report_figures": ("dose_on_ct_figures", "dose_on_ct_figure", "rc_curve_figure",
                                              "ad_per_aa_figure", "tac_figure", "png_tag", "render_png"),
    "LuDosimetryLib.results.report_registration": ("scan_figure",),
}


def time_report(result, out: Path) -> dict:
    """Seconds of one write_report: total, figures, PDF, HTML (the rest)."""
    import importlib

    from LuDosimetryLib.results import report, report_pdf

    clock, pdf_clock = _Clock(), _Clock()
    saved = []
    for mod_name, names in FIGURE_BUILDERS.items():
        mod = importlib.import_module(mod_name)
        for name in names:
            if hasattr(mod, name):
                saved.append((mod, name, getattr(mod, name)))
                setattr(mod, name, clock.wrap(getattr(mod, name)))
    saved.append((report_pdf, "write_pdf", report_pdf.write_pdf))
    report_pdf.write_pdf = pdf_clock.wrap(report_pdf.write_pdf)
    try:
        t0 = time.perf_counter()
        report.write_report(result, out / "report.html")
        total = time.perf_counter() - t0
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)
    return {"total": total, "figures": clock.seconds, "pdf": pdf_clock.seconds,
            "html": total - clock.seconds - pdf_clock.seconds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vois", default="4,8,16,32", help="VOI counts to time (comma-separated)")
    ap.add_argument("--repeat", type=int, default=1, help="time each VOI count this many times, keep the fastest")
    ap.add_argument("--full-grid", action="store_true",
                    help="the demo patient on its own 128 x 128 x 96 grid of 4.8 mm (pipeline run ~1 min)")
    ap.add_argument("--profile", help="write a cProfile of the largest VOI count's report to this file")
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.vois.split(",")]
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("LU_DOSIMETRY_CACHE_DIR", str(Path(tmp) / "cache"))
        t0 = time.perf_counter()
        result = build_result(Path(tmp), args.full_grid)
        print(f"pipeline run (demo-like patient, {'4.8' if args.full_grid else '9.6'} mm grid, {len(result.vois)} VOIs, "
              f"{sum(len(c.timepoints) for c in result.study.cycles)} scans): {time.perf_counter() - t0:.1f} s")
        out = Path(tmp) / "report"
        out.mkdir()
        time_report(with_n_vois(result, counts[0]), out)  # warm-up: imports, fonts, colormaps
        print(f"{'VOIs':>5} {'total s':>8} {'HTML s':>7} {'figures s':>9} {'PDF s':>6} {'total/VOI s':>11} "
              f"{'PDF pages':>9} {'HTML kB':>8}")
        totals = []
        for n in counts:
            r = with_n_vois(result, n)
            best = min((time_report(r, out) for _ in range(max(args.repeat, 1))), key=lambda d: d["total"])
            totals.append(best["total"])
            pages = _pdf_pages(out / "report.pdf")
            print(f"{n:>5} {best['total']:>8.2f} {best['html']:>7.2f} {best['figures']:>9.2f} {best['pdf']:>6.2f} "
                  f"{best['total'] / n:>11.3f} {pages:>9} {(out / 'report.html').stat().st_size / 1024:>8.0f}")
        if len(counts) > 1:
            from LuDosimetryLib.results import report_figures

            cap = getattr(report_figures, "FIGURE_VOI_CAP", None)  # None: code without the cap (before issue 17)
            for a, b, ta, tb in zip(counts, counts[1:], totals, totals[1:]):
                print(f"slope {a:>3} -> {b:>3} VOIs: {(tb - ta) / (b - a):.3f} s/VOI")
            slope, intercept = np.polyfit(counts, totals, 1)
            print(f"per-VOI slope (least squares over {counts}): {slope:.3f} s/VOI; fixed cost {intercept:.2f} s")
            above = [(n, t) for n, t in zip(counts, totals) if cap is not None and n >= cap]
            if len(above) > 1:
                s_cap, i_cap = np.polyfit(*zip(*above), 1)
                print(f"per-VOI slope at and above the figure cap ({cap} VOIs with per-VOI figures): "
                      f"{s_cap:.3f} s/VOI, fixed cost {i_cap:.2f} s (target <= 0.050 s/VOI: "
                      f"{'met' if s_cap <= 0.05 else 'NOT met'})")
        if args.profile:
            import cProfile

            cProfile.runctx("time_report(r, out)", globals(), {"r": with_n_vois(result, counts[-1]), "out": out,
                                                                "time_report": time_report}, args.profile)
            print(f"profile of {counts[-1]} VOIs written to {args.profile}")
    return 0


def _pdf_pages(path: Path):
    try:
        import pypdf
    except ImportError:
        return "?"
    return len(pypdf.PdfReader(str(path)).pages)


if __name__ == "__main__":
    raise SystemExit(main())
