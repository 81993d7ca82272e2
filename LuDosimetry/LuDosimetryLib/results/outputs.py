"""Writing one patient's results (contract 2): voi_cycle_doses.csv, voi_time_activity.csv,
summary.json, report.html with report.pdf beside it (same content, A4) and optional NRRD maps,
all or nothing."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .result_set import csv_safe_text

CSV_COLUMNS = ["patient_id", "cycle", "voi", "kind", "volume_ml", "administered_activity_MBq", "absorbed_dose_Gy",
               "ad_per_aa_Gy_per_GBq", "fit_model", "effective_half_life_h", "recovery_coefficient", "flags",
               "absorbed_dose_uncertainty_Gy", "time_integrated_activity_MBq_h", "mass_g", "included", "excluded",
               "lea_catcheside_g",
               "voxel_mean_dose_Gy", "D90_Gy", "D50_Gy", "D10_Gy", "EUD_Gy",
               # issue 12: one-scan cycles (physics/stp_cycle.py) and voxel statistics (physics/voxel_consistency.py)
               "single_time_point_method", "t_eff_h", "t_eff_uncertainty_h", "stp_t_eff_dose_uncertainty_Gy",
               "voxel_mean_dose_uncorrected_Gy",
               # uncertainty budget (physics.uncertainty): absorbed_dose_uncertainty_Gy is their quadrature sum
               "u_calibration_Gy", "u_rc_Gy", "u_volume_Gy", "u_registration_Gy", "u_fit_Gy", "u_teff_Gy",
               "registration_residual_mm"]


# the files whose presence marks a contract-2 result set written before result-set manifests existed
CORE_RESULT_NAMES = ("voi_cycle_doses.csv", "voi_time_activity.csv", "summary.json", "report.html")


TIME_ACTIVITY_COLUMNS = ["patient_id", "cycle", "voi", "kind", "hours_post_injection", "value", "value_pv_corrected",
                         "recovery_coefficient", "units", "fitted_value"]


def study_input_paths(study) -> list[Path]:
    """Every input of ``study``: its manifest and manifest folder, SPECT/CT files or folders, labelmap."""
    paths = []
    if study.manifest_path is not None:
        paths += [Path(study.manifest_path), Path(study.manifest_path).parent]
    paths += [p for c in study.cycles for tp in c.timepoints for p in (tp.spect, tp.ct) if p is not None]
    return paths + ([study.segmentation_file] if study.segmentation_file is not None else [])


def result_file_names(study=None, save_maps: bool = False) -> list[str]:
    """Names ``write_results`` will write for ``study`` (maps need the cycle numbers)."""
    names = list(CORE_RESULT_NAMES) + ["dvh_cumulative.csv", "report.pdf"]  # physics/voxel_consistency.py, results/report_pdf.py
    if save_maps and study is not None:
        names += [f"{n}_cycle{c.cycle}.nrrd" for n in ("tia_MBq_h", "dose_Gy") for c in study.cycles]
    return names


def write_results(result, out_dir, report: bool = True, save_maps: bool = False, overwrite: bool = True,
                  writer=None):
    """Write ``voi_cycle_doses.csv``, ``summary.json``, ``report.html`` and ``report.pdf`` (contract 2), and
    ``voi_time_activity.csv`` (measured and partial-volume-corrected VOI activity, MBq, or dose
    rate, Gy/h, per time point, with the fitted curve's value).

    All or nothing, and only owned files are replaced (:mod:`.result_set`): the files are staged in
    a fresh folder inside ``out_dir`` and switched in one step; an earlier set (recorded in the
    folder's ``.lu-results.json``) is replaced only with ``overwrite`` (refused otherwise), and
    only the files it lists are removed. ``writer``: an open :class:`~.result_set.ResultSetWriter`
    (the CLI takes the lock before computing). ``save_maps`` adds the voxel-wise TIA (MBq·h per
    voxel) and dose (Gy) maps per cycle as NRRD. Every text file is UTF-8.
    """
    from .result_set import ResultSetWriter, check_output_folder

    if writer is None:
        study = getattr(result, "study", None)
        check_output_folder(out_dir, study_input_paths(study) if study is not None else (), overwrite,
                            CORE_RESULT_NAMES, result_file_names(study, save_maps))
        with ResultSetWriter(out_dir, overwrite=overwrite, core_names=CORE_RESULT_NAMES,
                             tool="lu-dosimetry run") as rs:
            return write_results(result, out_dir, report, save_maps, overwrite, rs)
    tmp = writer.staging
    with open(tmp / "voi_cycle_doses.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in result.rows:
            w.writerow({k: _fmt(r.get(k)) for k in CSV_COLUMNS})
    with open(tmp / "voi_time_activity.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=TIME_ACTIVITY_COLUMNS)
        w.writeheader()
        for r in result.time_activity:
            w.writerow({k: _fmt(r.get(k)) for k in TIME_ACTIVITY_COLUMNS})
    from ..physics.voxel_consistency import write_cumulative_dvh

    write_cumulative_dvh(tmp / "dvh_cumulative.csv", result.summary.get("patient_id", ""),
                         (getattr(result, "maps", None) or {}).get("cumulative_dvh", {}))
    (tmp / "summary.json").write_text(json.dumps(result.summary, indent=2, default=_json_default), encoding="utf-8")
    if report:
        from .report import write_report

        write_report(result, tmp / "report.html")
    if save_maps:
        for name in ("tia_MBq_h", "dose_Gy"):
            for c, img in result.maps.get(name, {}).items():
                try:
                    sitk.WriteImage(img, str(tmp / f"{name}_cycle{c}.nrrd"), True)
                except RuntimeError as exc:
                    raise OSError(f"{name}_cycle{c}.nrrd: the map cannot be written "
                                  f"({str(exc).strip().splitlines()[-1]}); nothing was written") from None
    files = writer.commit()
    result.out_dir = Path(writer.out)
    result.files = files
    return result


def _fmt(v):
    if isinstance(v, str):
        return csv_safe_text(v)
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
