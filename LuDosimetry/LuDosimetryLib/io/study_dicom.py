"""Checks of a study manifest against the DICOM headers of its SPECT series (used by :mod:`.study`).

* every DICOM SPECT must be a reconstructed emission volume (projections, planar images, copies
  of one image, CT given as SPECT are refused with the reason, see :mod:`.dicom_series`);
* one patient per study: SPECT and CT series of several PatientIDs are refused, naming the IDs,
  unless the manifest sets ``allow_mixed_patients: true`` (then a warning);
* time zones: naive header times get the offset other series of the patient state on that date
  (:func:`.dicom_inspect.resolve_naive_times`); for ambiguous ones the naive/aware mismatch error of
  the validation says why and names the field to set;
* counts: the acquisition duration derived from the headers needs ``calibration_time_basis`` for a
  multi-head camera (``scan_duration`` or ``detector_time``), else the run stops naming both
  durations; a manifest giving ``acquisition_duration_s`` itself is used as it is;
* the cycle's injection time from the headers: several series must agree within 1 min; an
  injection at or after the acquisition (a pseudo-PET export) is not used.

Functions add ``(field path, message)`` to ``problems`` and sentences to ``warnings``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from ..errors import InputDataError
from .dicom_inspect import resolve_naive_times
from .dicom_quant import CALIBRATION_TIME_BASES, duration_for_basis
from .dicom_series import read_series_info, refusal_message

INJECTION_AGREEMENT_S = 60.0


def screen_series(d: dict, infos: dict, base: Path, problems: list, warnings: list, hints: dict) -> None:
    """Refuse unusable series (removed from ``infos``), check one patient, resolve time zones."""
    for (i, j), (p, info) in sorted(infos.items()):
        where = f"cycles[{i}].timepoints[{j}].spect"
        if not info.is_emission:
            problems.append((where, f"{p}: series {info.series_instance_uid} is {info.modality}, not an emission "
                                    "(NM/PT) SPECT series"))
            del infos[(i, j)]
        elif info.refusal:
            problems.append((where, refusal_message(p, info)))
            del infos[(i, j)]
        elif info.decay_undo_factor is not None:
            warnings.append(f"cycles[{i}].timepoints[{j}]: {info.decay_note} ({p})")
    patients: dict[str, list[str]] = {}
    for (i, j), (p, info) in sorted(infos.items()):
        if info.patient_id:
            patients.setdefault(info.patient_id, []).append(f"cycles[{i}].timepoints[{j}].spect")
    ct_infos = []
    for i, c in enumerate(d.get("cycles", [])):
        for j, tp in enumerate(c.get("timepoints", []) if isinstance(c, dict) else []):
            ct = tp.get("ct") if isinstance(tp, dict) else None
            if not isinstance(ct, str) or not ct:
                continue
            cp = Path(ct) if Path(ct).is_absolute() else (base / ct).resolve()
            uid = tp.get("ct_series_uid")
            try:
                info = read_series_info(cp, series_uid=uid if isinstance(uid, str) else None)
            except (InputDataError, OSError, ValueError):
                continue  # not DICOM, or unreadable: the image reading reports it
            ct_infos.append(info)
            if info.patient_id:
                patients.setdefault(info.patient_id, []).append(f"cycles[{i}].timepoints[{j}].ct")
    if len(patients) > 1:
        listing = "; ".join(f"PatientID {pid!r} in {', '.join(w[:3])}{' ...' if len(w) > 3 else ''}"
                            for pid, w in patients.items())
        override = d.get("allow_mixed_patients")
        if override is True:
            warnings.append(f"DICOM series of {len(patients)} patients in one study ({listing}); accepted because "
                            "allow_mixed_patients is true")
        else:
            problems.append(("cycles", f"DICOM series of {len(patients)} patients in one study ({listing}): a study "
                                       "is one patient. Fix the paths, or set allow_mixed_patients: true if these IDs "
                                       "are the same person"))
    resolve_naive_times([info for _, info in infos.values()] + ct_infos)  # CTs of a visit often state the offset
    for (i, j), (p, info) in sorted(infos.items()):
        if info.tz_problem:  # explains the naive/aware mismatch validation then reports on that field
            key = f"cycles[{i}].injection_time" if info.tz_problem.startswith("injection") \
                else f"cycles[{i}].timepoints[{j}].acquisition_time"
            hints[key] = f"{p} (series {info.series_instance_uid}): {info.tz_problem}"


def counts_duration(tp: dict, where: str, p: Path, info, problems: list, warnings: list, hints: dict) -> None:
    """Fill ``tp['acquisition_duration_s']`` of a counts time point from the header and
    ``calibration_time_basis``; a multi-head acquisition without a basis is a problem."""
    basis = tp.get("calibration_time_basis")
    heads = info.number_of_heads
    if tp.get("acquisition_duration_s") is not None:
        if info.acquisition_duration_s and basis in CALIBRATION_TIME_BASES \
                and isinstance(tp["acquisition_duration_s"], (int, float)):
            expected = duration_for_basis(info, basis)
            if abs(tp["acquisition_duration_s"] - expected) > 0.01 * expected:
                warnings.append(f"{where}.acquisition_duration_s = {tp['acquisition_duration_s']:g} s (manifest, used) "
                                f"differs from the DICOM header of {p} ({expected:g} s for {basis}: "
                                f"{info.duration_derivation}) by more than 1 %")
        return
    if not info.acquisition_duration_s:
        hints[f"{where}.acquisition_duration_s"] = (f"not in the DICOM header of {p} either: ActualFrameDuration "
                                                    "(0018,1242) missing")
        return
    if basis is None and (heads or 1) > 1:
        problems.append((f"{where}.calibration_time_basis",
                         f"is missing: the acquisition duration comes from the DICOM header of {p}, a {heads}-head "
                         f"acquisition ({info.duration_derivation}). State what calibration_cps_per_MBq refers to: "
                         f"'scan_duration' ({info.acquisition_duration_s:g} s) or 'detector_time' (scan duration × "
                         f"{heads} heads = {info.acquisition_duration_s * heads:g} s); or give acquisition_duration_s"))
        return
    if basis is not None and basis not in CALIBRATION_TIME_BASES:
        return  # reported by the time point validation
    if heads is None and info.modality == "NM":
        warnings.append(f"{where}: number of heads not in the DICOM header of {p} (NumberOfDetectors (0054,0021)); "
                        "the scan duration is used")
    duration = duration_for_basis(info, basis)
    tp["acquisition_duration_s"] = duration
    warnings.append(f"{where}.acquisition_duration_s = {duration:g} s ({basis or 'scan_duration'}) from DICOM header "
                    f"of {p}: {info.duration_derivation}")


def choose_injection(members: list, where: str, problems: list, hints: dict):
    """``(path, info)`` of the series whose injection time the cycle takes, or None.

    Full date-times (RadiopharmaceuticalStartDateTime) come first; a series whose injection is at
    or after its acquisition is not used (``hints`` says why). Series of the cycle with a full
    date-time must agree within 1 min, those with a time of day only to the clock minute;
    otherwise a problem lists them."""
    usable = [(p, info) for _, p, info in members if info.injection_datetime is not None and not info.time_problem]
    bad = [(p, info) for _, p, info in members if info.time_problem]
    if not usable:
        if bad:
            p, info = bad[0]
            hints[f"{where}.injection_time"] = f"{p} (series {info.series_instance_uid}): {info.time_problem}"
        return None
    full = [(p, i) for p, i in usable if (i.injection_source or "").startswith("RadiopharmaceuticalStartDateTime")]
    chosen = (full or usable)[0]
    ref = chosen[1].injection_datetime

    disagree = []
    for p, info in usable:
        inj = info.injection_datetime
        if (p, info) in full:
            if (inj.tzinfo is None) == (ref.tzinfo is None):
                gap = abs((inj - ref).total_seconds())
            else:
                gap = abs((inj.replace(tzinfo=None) - ref.replace(tzinfo=None)).total_seconds())
        else:
            tod = datetime.combine(ref.date(), info.injection_time_of_day)
            gap = abs((tod - ref.replace(tzinfo=None)).total_seconds())
            gap = min(gap, abs(gap - 86400.0))
        if gap > INJECTION_AGREEMENT_S:
            disagree.append((p, info))
    if disagree:
        problems.append((f"{where}.injection_time",
                         "is not given and the DICOM series of this cycle disagree by more than 1 min: "
                         + "; ".join(f"{p}: {i.injection_datetime.isoformat()} ({i.injection_source})"
                                     for p, i in usable)
                         + ". Give the injection time in the manifest"))
        return None
    return chosen


def time_only_injection(info, members: list) -> tuple[datetime, str]:
    """Injection date-time of a time-of-day-only series: the day of the cycle's earliest DICOM
    acquisition (or the day before when the clock time is later than that acquisition's)."""
    inj, src = info.injection_datetime, info.injection_source or "RadiopharmaceuticalStartTime (0018,1072)"
    acqs = [x.acquisition_datetime for _, _, x in members if x.acquisition_datetime is not None]
    if acqs:
        first = min(acqs, key=lambda a: a.replace(tzinfo=None))
        tod = info.injection_time_of_day
        day = first.date() if first.time().replace(tzinfo=None) >= tod else first.date() - timedelta(days=1)
        inj = datetime.combine(day, tod, tzinfo=first.tzinfo)
        src = "RadiopharmaceuticalStartTime (0018,1072), date inferred from the cycle's earliest acquisition — check it"
    return inj, src
