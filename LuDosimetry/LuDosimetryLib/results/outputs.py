"""Writing one patient's results (contract 2): voi_cycle_doses.csv, voi_time_activity.csv,
summary.json, report.html and optional NRRD maps, all or nothing."""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

CSV_COLUMNS = ["patient_id", "cycle", "voi", "kind", "volume_ml", "administered_activity_MBq", "absorbed_dose_Gy",
               "ad_per_aa_Gy_per_GBq", "fit_model", "effective_half_life_h", "recovery_coefficient", "flags",
               "absorbed_dose_uncertainty_Gy", "time_integrated_activity_MBq_h", "mass_g", "included", "excluded",
               "lea_catcheside_g",
               "voxel_mean_dose_Gy", "D90_Gy", "D50_Gy", "D10_Gy", "EUD_Gy"]


RESULT_FILE_PATTERNS = ("voi_cycle_doses.csv", "voi_time_activity.csv", "summary.json", "report.html",
                        "tia_MBq_h_cycle*.nrrd", "dose_Gy_cycle*.nrrd")


TIME_ACTIVITY_COLUMNS = ["patient_id", "cycle", "voi", "kind", "hours_post_injection", "value", "value_pv_corrected",
                         "recovery_coefficient", "units", "fitted_value"]


def write_results(result, out_dir, report: bool = True, save_maps: bool = False):
    """Write ``voi_cycle_doses.csv``, ``summary.json`` and ``report.html`` (contract 2), and
    ``voi_time_activity.csv`` (measured and partial-volume-corrected VOI activity, MBq, or dose
    rate, Gy/h, per time point, with the fitted curve's value).

    Files are first written to a temporary folder and moved into ``out_dir`` only when all
    of them are complete, so a failure leaves no partial results. ``save_maps`` adds the
    voxel-wise TIA (MBq·h per voxel) and dose (Gy) maps per cycle as NRRD.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".results-", dir=out))
    try:
        with open(tmp / "voi_cycle_doses.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            w.writeheader()
            for r in result.rows:
                w.writerow({k: _fmt(r.get(k)) for k in CSV_COLUMNS})
        with open(tmp / "voi_time_activity.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=TIME_ACTIVITY_COLUMNS)
            w.writeheader()
            for r in result.time_activity:
                w.writerow({k: _fmt(r.get(k)) for k in TIME_ACTIVITY_COLUMNS})
        (tmp / "summary.json").write_text(json.dumps(result.summary, indent=2, default=_json_default))
        if report:
            from .report import write_report

            write_report(result, tmp / "report.html")
        if save_maps:
            for name in ("tia_MBq_h", "dose_Gy"):
                for c, img in result.maps.get(name, {}).items():
                    sitk.WriteImage(img, str(tmp / f"{name}_cycle{c}.nrrd"), True)
        # results of an earlier run in this folder would mix with these ones: remove them first
        for old in out.iterdir():
            if old.is_file() and any(old.match(pattern) for pattern in RESULT_FILE_PATTERNS):
                old.unlink()
        files = []
        for p in sorted(tmp.iterdir()):
            target = out / p.name
            os.replace(p, target)
            files.append(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result.out_dir = out
    result.files = files
    return result


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    if v is None:
        return ""
    return v


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
