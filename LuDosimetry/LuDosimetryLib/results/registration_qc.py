"""Registration quality in the results (issue 10): the ``registration`` block of summary.json and the
``registration:refined`` / ``registration:check_failed`` flags of voi_cycle_doses.csv.

The numbers come from :class:`imaging.study_registration.StudyRegistration` (the coarse search,
the optimiser and the SPECT check per VOI of :mod:`imaging.registration_check`).
"""

from __future__ import annotations

import math


def _num(v, digits: int = 4):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return round(f, digits) if math.isfinite(f) else None


def _scan_name(study, key: tuple) -> str:
    cyc = next((c for c in study.cycles if c.cycle == key[0]), None)
    hours = f" ({cyc.hours[key[1]]:g} h p.i.)" if cyc is not None and key[1] < len(cyc.hours) else ""
    return f"cycle {key[0]} scan {key[1] + 1}{hours}"


def registration_summary(reg_qc, study) -> dict:
    """summary.json ``registration``: the reference scan, the check threshold and one block per scan
    (method, winning start, translation mm, rotation deg, metric with its name, SPECT correlation
    in the body before/after, status, and per VOI the residual shift in mm and whether it was refined)."""
    if reg_qc is None:
        return {}
    scans = []
    for key in sorted(set(reg_qc.registrations) | set(reg_qc.checks)):
        if key == reg_qc.reference_key:
            continue
        res = reg_qc.registrations.get(key)
        chk = reg_qc.checks.get(key)
        block = {"scan": _scan_name(study, key), "cycle": key[0], "timepoint_index": key[1],
                 "method": res.method if res is not None else "none",
                 "requested_method": res.requested_method if res is not None else reg_qc.method,
                 "start": (res.start or None) if res is not None else None,
                 "start_scores": {k: _num(v) for k, v in (res.starts or {}).items()} if res is not None else {},
                 "start_score_name": "SPECT Pearson correlation in the fixed body region after the coarsest level",
                 "translation_mm": [_num(v, 3) for v in res.translation_mm] if res is not None else [0.0] * 3,
                 "rotation_deg": [_num(v, 3) for v in res.rotation_deg] if res is not None else [0.0] * 3,
                 "metric": {"name": (res.metric_name or None) if res is not None else None,
                            "value": _num(res.metric_value, 6) if res is not None else None},
                 "quality": res.quality if res is not None else "not registered",
                 "spect_correlation_before": _num(chk.correlation_before if chk else
                                                  (res.correlation_before if res is not None else None)),
                 "spect_correlation_after": _num(chk.correlation_after if chk else
                                                 (res.correlation_after if res is not None else None)),
                 "check_status": chk.status if chk is not None else "not checked",
                 "scan_correction_mm": ([_num(v, 3) for v in chk.correction_mm]
                                        if chk is not None and chk.correction_mm is not None else None),
                 "vois": {name: v.as_dict() for name, v in chk.vois.items()} if chk is not None else {},
                 "seconds": _num(reg_qc.elapsed_s.get(key), 3),
                 "warnings": list(res.warnings) if res is not None else []}
        scans.append(block)
    failed = [s["scan"] for s in scans if s["check_status"] == "check_failed"]
    return {"reference_scan": _scan_name(study, reg_qc.reference_key), "method": reg_qc.method,
            "check_threshold_mm": reg_qc.threshold_mm,
            "check": "per VOI: residual SPECT shift (mm) in a box around the VOI after registration; above the "
                     "threshold the VOI is refined locally, and flagged",
            "scans_failing_check": failed, "scans": scans}


def add_registration_flags(rows: list, reg_qc) -> None:
    """Append ``registration:check_failed`` / ``registration:refined`` to the ``flags`` of each
    VOI-cycle row whose VOI failed the SPECT check or was refined in any scan of that cycle."""
    if reg_qc is None:
        return
    for r in rows:
        extra = reg_qc.voi_flags(r["voi"], r["cycle"])
        if extra:
            flags = [f for f in str(r.get("flags") or "").split(";") if f]
            r["flags"] = ";".join(dict.fromkeys(flags + extra))
