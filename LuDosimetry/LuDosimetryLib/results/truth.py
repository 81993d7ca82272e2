"""Comparison of pipeline results with a synthetic patient's analytic ground truth.

Used by ``lu-dosimetry demo`` (printed table), the test suite (accuracy assertions) and the
in-Slicer self-test. Compares absorbed dose per VOI per cycle for VOIs whose true volume is at
least ``min_volume_ml``.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path


def _finite(x: float) -> bool:
    return math.isfinite(x)


@dataclass
class DoseComparison:
    """Rows of (voi, kind, cycle, true Gy, measured Gy, relative error), and what could not be compared.

    ``missing``: (voi, kind, cycle, reason) of every VOI-cycle of the truth (kinds and volume
    selected) that the results do not give (no row, or the VOI excluded by the pipeline).
    ``nan_rows``: rows whose measured dose is NaN/infinite or not a number.
    A NaN row makes :attr:`max_abs_relative_error` ``inf`` (never hidden by a ``max`` that skips
    NaN). Missing VOI-cycles are listed (and printed by :meth:`to_text`) but leave
    ``max_abs_relative_error`` to the rows compared, so a deliberate subset of the results can be
    checked; :meth:`passed` fails on either.
    """

    rows: list = field(default_factory=list)
    min_volume_ml: float = 10.0
    missing: list = field(default_factory=list)
    all_vois: list = field(default_factory=list)  # :func:`full_comparison` (every VOI, D90, why), printed after

    @property
    def nan_rows(self) -> list:
        return [r for r in self.rows if not _finite(r["relative_error"])]

    @property
    def max_abs_relative_error(self) -> float:
        """Largest |relative error| over the rows; ``inf`` if a row is NaN; NaN if there are no rows."""
        if self.nan_rows:
            return float("inf")
        return max((abs(r["relative_error"]) for r in self.rows), default=float("nan"))

    def worst(self) -> dict | None:
        """The row with the largest |relative error| (a NaN row first)."""
        return max(self.rows, key=lambda r: abs(r["relative_error"]) if _finite(r["relative_error"]) else math.inf,
                   default=None)

    def passed(self, tolerance: float) -> bool:
        """True if there are rows, none is NaN or missing, and every |relative error| <= ``tolerance``."""
        return bool(self.rows) and not self.missing and self.max_abs_relative_error <= tolerance

    def to_text(self) -> str:
        lines = [f"Absorbed dose vs analytic ground truth (VOIs >= {self.min_volume_ml:g} mL):",
                 f"{'VOI':<16}{'kind':<8}{'cycle':>6}{'truth Gy':>11}{'pipeline Gy':>13}{'error':>9}"]
        for r in self.rows:
            err = f"{100 * r['relative_error']:>+8.1f}%" if _finite(r["relative_error"]) else f"{'NaN':>9}"
            lines.append(f"{r['voi']:<16}{r['kind']:<8}{r['cycle']:>6}{r['true_Gy']:>11.2f}{r['measured_Gy']:>13.2f}{err}")
        for m in self.missing:
            lines.append(f"{m['voi']:<16}{m['kind']:<8}{m['cycle']:>6}{m['true_Gy']:>11.2f}  MISSING: {m['reason']}")
        finite = [abs(r["relative_error"]) for r in self.rows if _finite(r["relative_error"])]
        largest = f"{100 * max(finite):.1f} %" if finite else "n/a"
        lines.append(f"largest |error|: {largest}" + (f" over {len(finite)} compared dose(s)" if finite else ""))
        if self.nan_rows:
            lines.append(f"FAILED: {len(self.nan_rows)} dose(s) are NaN or not a number: "
                         + ", ".join(f"{r['voi']} cycle {r['cycle']}" for r in self.nan_rows))
        if self.missing:
            lines.append(f"FAILED: {len(self.missing)} VOI-cycle(s) of the ground truth missing from the results: "
                         + ", ".join(f"{m['voi']} cycle {m['cycle']}" for m in self.missing))
        if self.all_vois:
            lines += ["", _table_text(self.all_vois)]
        return "\n".join(lines)


def _as_float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _included(row) -> bool:
    return str(row.get("included", "True")) in ("True", "true", "1", "")


def compare_doses(rows: list, truth: dict, min_volume_ml: float = 10.0, kinds=("tumor", "kidney"),
                  cycles=None) -> DoseComparison:
    """Compare result rows (dicts with voi, cycle, absorbed_dose_Gy; ``included`` optional) with
    ``truth`` (ground_truth.json) for the VOIs of ``kinds`` whose true volume is >= ``min_volume_ml``
    and the truth's ``cycles`` (default: all).

    A VOI-cycle of the truth without an included result row goes to ``.missing``; a measured dose
    that is NaN, infinite, empty or not a number is kept as a row with a NaN relative error
    (``.nan_rows``), which makes ``max_abs_relative_error`` infinite.
    """
    measured, excluded = {}, set()
    for r in rows:
        key = (r["voi"], int(r["cycle"]))
        if _included(r):
            measured[key] = _as_float(r.get("absorbed_dose_Gy"))
        else:
            excluded.add(key)
    cmp = DoseComparison(min_volume_ml=min_volume_ml)
    for voi in truth["vois"]:
        if voi["kind"] not in kinds or voi["volume_ml"] < min_volume_ml:
            continue
        for c in voi["cycles"]:
            key = (voi["name"], int(c["cycle"]))
            if cycles is not None and key[1] not in cycles:
                continue
            t = c["absorbed_dose_Gy"]
            if key not in measured:
                reason = "excluded by the pipeline" if key in excluded else "no result row"
                cmp.missing.append({"voi": voi["name"], "kind": voi["kind"], "cycle": key[1], "true_Gy": t,
                                    "reason": reason})
                continue
            m = measured[key]
            err = m / t - 1.0 if _finite(m) and t else float("nan")
            cmp.rows.append({"voi": voi["name"], "kind": voi["kind"], "cycle": key[1], "true_Gy": t,
                             "measured_Gy": m, "relative_error": err})
    return cmp


def compare_with_ground_truth(results_csv, ground_truth_json, min_volume_ml: float = 10.0) -> DoseComparison:
    """Read ``voi_cycle_doses.csv`` and ``ground_truth.json`` and compare them."""
    with open(results_csv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    truth = json.loads(Path(ground_truth_json).read_text(encoding="utf-8"))
    cmp = compare_doses(rows, truth, min_volume_ml)
    cmp.all_vois = full_comparison(rows, truth)
    return cmp


_REASONS = {  # flag prefix -> why the VOI's dose may differ from the truth
    "excluded:volume<": "below the minimum tumour volume (excluded from cAD)",
    "pvc:below_calibration": "smaller than the smallest RC sphere (RC clamped)",
    "pvc:extrapolated": "larger than the largest RC sphere (RC extrapolated)",
    "pvc:background_exceeds_value": "background correction exceeds the VOI value",
    "registration:check_failed": "registration check failed",
    "registration:refined": "registration refined locally",
    "single_time_point": "single time point",
    "segmentation:roi_fallback": "adaptive threshold fell back to the ROI",
}


def _why(row: dict, voi: dict) -> str:
    """Why a VOI's dose may differ from the truth, from its row (flags, RC) and the truth (volume)."""
    why = []
    flags = [f for f in str(row.get("flags") or "").split(";") if f]
    for prefix, text in _REASONS.items():
        if any(f.startswith(prefix) for f in flags) and text not in why:
            why.append(text)
    rc = _as_float(row.get("recovery_coefficient"))
    if not _finite(rc) or rc == 1.0:
        why.append("no partial-volume correction (spill-out not recovered)")
    return "; ".join(why)


def full_comparison(rows: list, truth: dict) -> list[dict]:
    """Every VOI-cycle of the truth (organs, excluded and small VOIs too): true and pipeline mean
    dose and D90 with relative errors, and ``why`` the pipeline's value may differ (no PVC, below the
    minimum volume, RC clamped or extrapolated, registration, ...). The phantom's concentration is
    uniform in each VOI, so under local deposition its true D90 equals its true mean dose (a truth
    carrying ``D90_Gy`` per cycle is used as given)."""
    by_key = {(r["voi"], int(r["cycle"])): r for r in rows}
    out = []
    for voi in truth["vois"]:
        for c in voi["cycles"]:
            r = by_key.get((voi["name"], int(c["cycle"])))
            t = float(c["absorbed_dose_Gy"])
            t90 = float(c.get("D90_Gy", t))
            m = _as_float(r.get("absorbed_dose_Gy")) if r else float("nan")
            m90 = _as_float(r.get("D90_Gy", r.get("D90_uncorrected_Gy"))) if r else float("nan")
            out.append({"voi": voi["name"], "kind": voi["kind"], "cycle": int(c["cycle"]),
                        "true_volume_ml": float(voi["volume_ml"]), "true_Gy": t, "measured_Gy": m,
                        "relative_error": m / t - 1.0 if _finite(m) and t else float("nan"),
                        "true_D90_Gy": t90, "measured_D90_Gy": m90,
                        "D90_relative_error": m90 / t90 - 1.0 if _finite(m90) and t90 else float("nan"),
                        "included": _included(r) if r else False,
                        "why": _why(r, voi) if r else "no result row"})
            rc = _as_float(r.get("recovery_coefficient")) if r else float("nan")
            d90_err = out[-1]["D90_relative_error"]
            if _finite(rc) and rc < 1.0 and _finite(d90_err) and d90_err < -0.2:
                note = (f"D90 of a blurred VOI (RC {rc:.2f}): the voxel map is scaled to the corrected mean, "
                        "its blurred shape is not undone")
                out[-1]["why"] = "; ".join(x for x in (out[-1]["why"], note) if x)
    return out


def full_comparison_text(rows: list, truth: dict) -> str:
    """The table of :func:`full_comparison` as text (``lu-dosimetry demo``)."""
    return _table_text(full_comparison(rows, truth))


def _table_text(table: list) -> str:
    title = ("Every VOI vs the analytic ground truth (mean dose, and the voxel D90 of voi_cycle_doses.csv: the truth "
             "is uniform per VOI, so its D90 equals its mean):")
    header = (f"{'VOI':<16}{'kind':<8}{'cycle':>6}{'true mL':>9}{'truth Gy':>10}{'pipeline':>10}{'error':>8}"
              f"{'D90 Gy':>9}{'D90 err':>9}  why it may differ")
    lines = [title, header]

    def pct(x):
        return f"{100 * x:+.1f}%" if _finite(x) else "n/a"

    for r in table:
        lines.append(f"{r['voi']:<16}{r['kind']:<8}{r['cycle']:>6}{r['true_volume_ml']:>9.1f}{r['true_Gy']:>10.2f}"
                     f"{r['measured_Gy']:>10.2f}{pct(r['relative_error']):>8}{r['measured_D90_Gy']:>9.2f}"
                     f"{pct(r['D90_relative_error']):>9}  {r['why'] or '-'}")
    return "\n".join(lines)

