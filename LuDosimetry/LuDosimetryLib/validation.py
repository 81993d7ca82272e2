"""Comparison of pipeline results with a synthetic patient's analytic ground truth.

Used by ``lu-dosimetry demo`` (printed table), the test suite (accuracy assertions) and the
in-Slicer self-test. Compares absorbed dose per VOI per cycle for VOIs whose true volume is at
least ``min_volume_ml``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class DoseComparison:
    """Rows of (voi, kind, cycle, true Gy, measured Gy, relative error) and the worst error."""

    rows: list = field(default_factory=list)
    min_volume_ml: float = 10.0

    @property
    def max_abs_relative_error(self) -> float:
        return max((abs(r["relative_error"]) for r in self.rows), default=float("nan"))

    def worst(self) -> dict | None:
        return max(self.rows, key=lambda r: abs(r["relative_error"]), default=None)

    def to_text(self) -> str:
        lines = [f"Absorbed dose vs analytic ground truth (VOIs >= {self.min_volume_ml:g} mL):",
                 f"{'VOI':<16}{'kind':<8}{'cycle':>6}{'truth Gy':>11}{'pipeline Gy':>13}{'error':>9}"]
        for r in self.rows:
            lines.append(f"{r['voi']:<16}{r['kind']:<8}{r['cycle']:>6}{r['true_Gy']:>11.2f}{r['measured_Gy']:>13.2f}"
                         f"{100 * r['relative_error']:>+8.1f}%")
        lines.append(f"largest |error|: {100 * self.max_abs_relative_error:.1f} %")
        return "\n".join(lines)


def compare_doses(rows: list, truth: dict, min_volume_ml: float = 10.0, kinds=("tumor", "kidney")) -> DoseComparison:
    """Compare result rows (dicts with voi, cycle, absorbed_dose_Gy) with ``truth`` (ground_truth.json)."""
    measured = {(r["voi"], int(r["cycle"])): float(r["absorbed_dose_Gy"]) for r in rows
                if str(r.get("included", "True")) in ("True", "true", "1", "")}
    cmp = DoseComparison(min_volume_ml=min_volume_ml)
    for voi in truth["vois"]:
        if voi["kind"] not in kinds or voi["volume_ml"] < min_volume_ml:
            continue
        for c in voi["cycles"]:
            key = (voi["name"], int(c["cycle"]))
            if key not in measured:
                continue
            t = c["absorbed_dose_Gy"]
            cmp.rows.append({"voi": voi["name"], "kind": voi["kind"], "cycle": key[1], "true_Gy": t,
                             "measured_Gy": measured[key], "relative_error": measured[key] / t - 1.0})
    return cmp


def compare_with_ground_truth(results_csv, ground_truth_json, min_volume_ml: float = 10.0) -> DoseComparison:
    """Read ``voi_cycle_doses.csv`` and ``ground_truth.json`` and compare them."""
    with open(results_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    truth = json.loads(Path(ground_truth_json).read_text())
    return compare_doses(rows, truth, min_volume_ml)
