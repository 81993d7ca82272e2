"""The record of a run's inputs for the signed report: one row per scan and the recovery-coefficient curve.

:func:`scan_rows` gives, per cycle and time point, the injection and acquisition times (ISO-8601
with their UTC offsets as given), hours post injection (h), administered activity (MBq), SPECT
units, calibration (cps/MBq) with its time basis and acquisition duration (s), and for the SPECT
and the CT: the DICOM SeriesInstanceUID (read from the first file's header when the manifest does
not give it) or the file name, and a SHA-256 of the content (a file: its bytes; a DICOM folder:
every file's relative path and bytes, in sorted order). :func:`recovery_points` places every
partial-volume-corrected VOI on the recovery-coefficient curve.
"""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def sha256_of(path) -> str:
    """SHA-256 (hex) of a file's bytes, or of a folder's files (relative path and bytes, sorted)."""
    from .result_set import file_sha256

    p = Path(path)
    if p.is_file():
        return file_sha256(p)
    h = hashlib.sha256()
    for f in sorted(f for f in p.rglob("*") if f.is_file()):
        h.update(f.relative_to(p).as_posix().encode("utf-8") + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(_CHUNK), b""):
                h.update(block)
    return h.hexdigest()


def _dicom_series_uid(path: Path) -> str | None:
    """SeriesInstanceUID of the first DICOM file under ``path`` (None when not DICOM)."""
    try:
        import pydicom
        import pydicom.errors
    except ImportError:  # pydicom is an optional extra
        return None
    files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())
    for f in files[:5]:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
        except (pydicom.errors.InvalidDicomError, OSError, ValueError, TypeError) as exc:  # not DICOM: next file
            log.debug("%s: no DICOM header (%s)", f, exc)
            continue
        uid = getattr(ds, "SeriesInstanceUID", None)
        if uid:
            return str(uid)
    return None


def image_identity(path, series_uid: str | None = None, base: Path | None = None) -> dict:
    """``{"name", "series_uid", "sha256"}`` of one input image (file or DICOM folder).

    ``name`` is relative to ``base`` (the manifest folder) when inside it."""
    if path is None:
        return {"name": None, "series_uid": None, "sha256": None}
    p = Path(path)
    try:
        name = p.relative_to(base).as_posix() if base is not None else p.name
    except ValueError:
        name = str(p)
    if not p.exists():
        return {"name": name, "series_uid": series_uid, "sha256": None}
    is_dicom = p.is_dir() or p.suffix.lower() in (".dcm", "")
    uid = series_uid or (_dicom_series_uid(p) if is_dicom else None)
    return {"name": name, "series_uid": uid, "sha256": sha256_of(p)}


def scan_rows(study) -> list[dict]:
    """One dict per scan (cycle, time point) of ``study`` (an :class:`~..io.study.Study`); see the module."""
    base = Path(study.manifest_path).parent if study.manifest_path is not None else None
    rows = []
    for cyc in study.cycles:
        for i, tp in enumerate(cyc.timepoints):
            spect = image_identity(tp.spect, tp.spect_series_uid, base)
            ct = image_identity(tp.ct, tp.ct_series_uid, base)
            if tp.spect_units == "counts":
                calibration = (f"{tp.calibration_cps_per_MBq:g} cps/MBq, duration {tp.acquisition_duration_s:g} s"
                               if tp.calibration_cps_per_MBq and tp.acquisition_duration_s else "missing")
                basis = tp.calibration_time_basis or "not stated"
            elif tp.spect_units == "Bq/mL":
                calibration, basis = "quantitative image (Bq/mL)", "as reconstructed"
            else:
                calibration, basis = "dose-rate image (Gy/h)", "as computed upstream"
            rows.append({
                "cycle": cyc.cycle, "scan": i + 1, "injection_time": cyc.injection_time,
                "acquisition_time": tp.acquisition_time, "hours_post_injection_h": tp.hours_post_injection,
                "administered_activity_MBq": cyc.administered_activity_MBq, "spect_units": tp.spect_units,
                "calibration": calibration, "calibration_basis": basis,
                "spect_name": spect["name"], "spect_series_uid": spect["series_uid"], "spect_sha256": spect["sha256"],
                "ct_name": ct["name"], "ct_series_uid": ct["series_uid"], "ct_sha256": ct["sha256"],
            })
    return rows


def recovery_points(result) -> list[dict]:
    """Every partial-volume-corrected VOI-cycle row (kind in the run's ``apply_pvc_to``):
    ``{"voi", "cycle", "volume_ml", "rc"}``."""
    kinds = set(result.summary.get("options", {}).get("apply_pvc_to", ("tumor", "kidney")))
    out = []
    for r in result.rows:
        if r["kind"] not in kinds:
            continue
        rc = r.get("recovery_coefficient")
        if rc is not None and math.isfinite(float(rc)):
            out.append({"voi": r["voi"], "cycle": r["cycle"], "volume_ml": float(r["volume_ml"]), "rc": float(rc)})
    return out
