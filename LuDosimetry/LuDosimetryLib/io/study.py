"""Study model and manifest loading (contract 1 of ARCHITECTURE.md).

A :class:`Study` holds the patient's treatment cycles; each :class:`Cycle` holds its
administered activity, injection time and imaging :class:`TimePoint` s (hours post injection,
SPECT and CT paths, SPECT units). :func:`load_study` reads and validates a ``study.json``;
validation collects *every* problem (field path + message) and raises one
:class:`~LuDosimetryLib.errors.ManifestError` listing them all.

Times: ISO-8601 strings. Offsets (``+01:00``, ``Z``) are honoured. A naive time (no offset)
is taken as local clock time of the imaging site; because injection and acquisition are then
both naive, their difference is still correct, and a warning says so. Mixing naive and
aware times in one cycle is an error (the difference would be ambiguous).

DICOM: when a time point's ``spect`` is a DICOM file or series folder, the values the manifest
does not give are read from the headers (:func:`LuDosimetryLib.dicom.read_series_info`) before
validation: the time point's ``acquisition_time`` and ``spect_units`` (+ ``acquisition_duration_s``
for counts), the cycle's ``injection_time`` and ``administered_activity_MBq`` (from its first DICOM
time point that has them) and the study's ``radionuclide``. The manifest wins where both exist
(a difference above 1 % is reported). Each value taken from a header is listed in
:attr:`Study.warnings`; a value in neither place is an error naming the field and the DICOM tag
that would have given it. ``check_files=False`` reads no header. The checks of the headers
themselves (series that are not reconstructed volumes, one patient per study unless
``allow_mixed_patients``, time zones across series, ``calibration_time_basis`` for counts of a
multi-head camera, injection times agreeing within 1 min) are in :mod:`.study_dicom`.

Placeholders (``"FILL IN: ..."``, written by ``lu-dosimetry inspect --write-manifest``) are
refused, each named by its field.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from ..errors import ManifestError
from .dicom_tags import find_placeholders
from .manifest_schema import check_manifest_structure, load_json_strict
from .manifest_schema import resolve_manifest_path as _path

SPECT_UNITS = ("Bq/mL", "counts", "Gy/h")
CALIBRATION_TIME_BASES = ("scan_duration", "detector_time")  # as io.dicom_quant (not imported: no pydicom here)
VOI_KINDS = ("tumor", "kidney", "organ")
VOI_MODES = ("as_drawn", "adaptive_threshold")
_UNIT_ALIASES = {"bq/ml": "Bq/mL", "bqml": "Bq/mL", "bq/cc": "Bq/mL", "counts": "counts", "cnts": "counts",
                 "gy/h": "Gy/h", "gyph": "Gy/h"}


@dataclass
class TimePoint:
    """One SPECT(/CT) acquisition after an injection.

    hours_post_injection: time from injection to the acquisition (h).
    spect / ct: absolute paths (file or DICOM folder); ct may be None.
    spect_units: "Bq/mL", "counts" or "Gy/h".
    calibration_cps_per_MBq, acquisition_duration_s: required when spect_units == "counts"
        (the duration can come from the DICOM header, then with calibration_time_basis).
    calibration_time_basis: what the calibration factor refers to, "scan_duration" or
        "detector_time" (scan duration × number of heads); None when not stated.
    spect_series_uid / ct_series_uid: optional SeriesInstanceUID when a DICOM folder holds several series.
    """

    hours_post_injection: float
    spect: Path
    spect_units: str = "Bq/mL"
    ct: Path | None = None
    acquisition_time: str | None = None
    calibration_cps_per_MBq: float | None = None
    acquisition_duration_s: float | None = None
    spect_series_uid: str | None = None  # which DICOM series, when a folder holds several
    ct_series_uid: str | None = None
    calibration_time_basis: str | None = None


@dataclass
class Cycle:
    """One treatment cycle: administered activity (MBq), injection time, time points (sorted)."""

    cycle: int
    administered_activity_MBq: float
    timepoints: list[TimePoint]
    injection_time: str | None = None

    @property
    def hours(self) -> list[float]:
        return [tp.hours_post_injection for tp in self.timepoints]


@dataclass
class VoiDefinition:
    """A labelmap label: name, kind (tumor/kidney/organ) and mode (as_drawn/adaptive_threshold)."""

    label: int
    name: str
    kind: str
    mode: str = "as_drawn"


@dataclass
class Study:
    """A patient's dosimetry study: cycles in increasing order, segmentation and RC table."""

    patient_id: str
    radionuclide: str
    cycles: list[Cycle]
    segmentation_file: Path | None = None
    vois: list[VoiDefinition] = field(default_factory=list)
    recovery_coefficients: dict | None = None
    manifest_path: Path | None = None
    warnings: list[str] = field(default_factory=list)
    uncertainty: dict | None = None  # manifest ``uncertainty`` (physics.uncertainty.DEFAULTS where absent)

    def to_dict(self) -> dict:
        d = asdict(self)
        return json.loads(json.dumps(d, default=str))


def parse_iso_time(text: str) -> datetime:
    """Parse an ISO-8601 date-time ('Z' accepted as UTC). Raises ValueError on bad input."""
    if not isinstance(text, str):
        raise ValueError(f"expected an ISO-8601 string, got {type(text).__name__}")
    t = text.strip()
    if t.endswith("Z") or t.endswith("z"):
        t = t[:-1] + "+00:00"
    return datetime.fromisoformat(t)


def hours_between(start: datetime, end: datetime) -> float:
    """Hours from ``start`` to ``end`` (both naive or both time-zone aware)."""
    return (end - start).total_seconds() / 3600.0


def _number(value, field_name, problems, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            problems.append((field_name, f"must be a number, got {value!r}"))
            return None
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        problems.append((field_name, f"must be finite, got {value}"))
        return None
    if positive and value <= 0:
        problems.append((field_name, f"must be > 0, got {value:g}"))
        return None
    return value


def normalise_units(units: str) -> str | None:
    """Canonical SPECT unit string or None if unknown ("bq/ml" → "Bq/mL")."""
    if not isinstance(units, str):
        return None
    return _UNIT_ALIASES.get(units.strip().lower().replace(" ", ""))


def _parse_timepoint(tp: dict, where: str, base: Path, injection: datetime | None, problems, warnings,
                     check_files: bool = True, hints: dict | None = None, dicom_timepoints: set | None = None,
                     default_units: list | None = None):
    """One time point. ``hints`` (field path → text) explain why a missing value was not found in
    a DICOM header; ``dicom_timepoints`` holds the ``where`` of time points whose SPECT is DICOM
    (their units must come from the manifest or the header); ``default_units`` collects the time
    points whose units defaulted to Bq/mL."""
    hints = hints or {}
    dicom_timepoints = dicom_timepoints or set()

    def hint(key):
        return f" ({hints[key]})" if key in hints else ""

    if not isinstance(tp, dict):
        problems.append((where, "must be an object"))
        return None
    hours = None
    acq_text = tp.get("acquisition_time")
    acq = None
    if acq_text is not None:
        try:
            acq = parse_iso_time(acq_text)
        except ValueError as exc:
            problems.append((f"{where}.acquisition_time", f"not an ISO-8601 time ({exc})"))
    hours_acq = None
    if acq is not None and injection is not None:
        if (acq.tzinfo is None) != (injection.tzinfo is None):
            problems.append((f"{where}.acquisition_time",
                             "one of injection_time/acquisition_time has a time-zone offset and the other "
                             "does not; give both with offsets (or both without)" + hint(f"{where}.acquisition_time")))
        else:
            hours_acq = hours_between(injection, acq)
    if "hours_post_injection" in tp:
        hours = _number(tp["hours_post_injection"], f"{where}.hours_post_injection", problems)
        if hours is not None and hours <= 0:
            problems.append((f"{where}.hours_post_injection", f"must be > 0 (the scan is after the injection), got {hours:g}"))
            hours = None
        if hours is not None and hours_acq is not None and abs(hours - hours_acq) > 0.05:
            problems.append((f"{where}.hours_post_injection",
                             f"{hours:g} h disagrees with {where}.acquisition_time {acq_text} "
                             f"({hours_acq:.2f} h after the cycle's injection_time) by {abs(hours - hours_acq):.2f} h "
                             "(> 0.05 h): correct one of hours_post_injection / acquisition_time, or give only one"))
    elif acq_text is not None:
        if hours_acq is not None:
            hours = hours_acq
            if hours <= 0:
                problems.append((f"{where}.acquisition_time",
                                 ("equals the cycle's injection_time" if hours == 0 else f"is {-hours:.2f} h before the "
                                  "injection") + ": the scan must be after the injection" + hint(f"{where}.acquisition_time")))
                hours = None
            elif hours > 1e5:
                problems.append((f"{where}.acquisition_time", f"is {hours:.4g} h after the injection: implausible "
                                                              "(check the dates)"))
                hours = None
        elif acq is not None and injection is None:
            problems.append((f"{where}.acquisition_time", "given but the cycle has no injection_time; "
                                                          "give injection_time or hours_post_injection"
                             + hint(where.rsplit(".timepoints", 1)[0] + ".injection_time")))
    else:
        problems.append((f"{where}", "needs acquisition_time or hours_post_injection" + hint(where)))

    raw_units = tp.get("spect_units")
    if raw_units is None:
        if where in dicom_timepoints:
            problems.append((f"{where}.spect_units", "is missing; give one of Bq/mL, counts, Gy/h" + hint(f"{where}.spect_units")))
            units = None
            raw_units = ""
        else:
            units = raw_units = "Bq/mL"
            if default_units is not None:
                default_units.append(where)
    else:
        units = normalise_units(raw_units)
        if units is None:
            problems.append((f"{where}.spect_units", f"unknown unit {raw_units!r}; use one of {', '.join(SPECT_UNITS)}"))
    cal = dur = None
    if units == "counts":
        if "calibration_cps_per_MBq" not in tp:
            problems.append((f"{where}.calibration_cps_per_MBq", "required when spect_units is 'counts'"
                             + hint(f"{where}.calibration_cps_per_MBq")))
        else:
            cal = _number(tp["calibration_cps_per_MBq"], f"{where}.calibration_cps_per_MBq", problems, positive=True)
        if "acquisition_duration_s" not in tp:
            problems.append((f"{where}.acquisition_duration_s", "required when spect_units is 'counts'"
                             + hint(f"{where}.acquisition_duration_s")))
        else:
            dur = _number(tp["acquisition_duration_s"], f"{where}.acquisition_duration_s", problems, positive=True)
    basis = tp.get("calibration_time_basis")
    if basis is not None and basis not in CALIBRATION_TIME_BASES:
        problems.append((f"{where}.calibration_time_basis", f"must be one of {', '.join(CALIBRATION_TIME_BASES)}, got "
                                                            f"{basis!r}"))
        basis = None
    spect = _path(base, tp.get("spect"), f"{where}.spect", problems, check_files=check_files, warnings=warnings)
    ct = _path(base, tp.get("ct"), f"{where}.ct", problems, required=False, check_files=check_files,
               warnings=warnings)
    if hours is None:
        return None
    uids = {}
    for key in ("spect_series_uid", "ct_series_uid"):
        if tp.get(key) is not None and not isinstance(tp.get(key), str):
            problems.append((f"{where}.{key}", f"must be a DICOM UID string, got {tp.get(key)!r}"))
        else:
            uids[key] = tp.get(key)
    return TimePoint(hours_post_injection=hours, spect=spect, spect_units=units or str(raw_units), ct=ct,
                     acquisition_time=acq_text, calibration_cps_per_MBq=cal, acquisition_duration_s=dur,
                     calibration_time_basis=basis, **uids)


# --------------------------------------------------------------------------------------------
# Values missing from the manifest, read from DICOM headers (contract 1)
# --------------------------------------------------------------------------------------------

def _is_dicom_path(p: Path) -> bool:
    """A folder (taken as a DICOM series folder, as images.read_image does) or a file with the
    DICOM preamble ('DICM' at byte 128)."""
    if p.is_dir():
        return True
    try:
        with open(p, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _missing_tag_text(info, manifest_suffix: str, default: str) -> str:
    """'Keyword (gggg,eeee)' (+ detail) of the header tag that would give ``manifest_suffix``."""
    for m in getattr(info, "missing", []):
        if m.manifest_field.endswith(manifest_suffix):
            detail = m.detail.replace("cycles[i].", "").replace("timepoints[j].", "")
            return f"{m.keyword} {m.tag} missing" + (f" ({detail})" if detail and not detail.startswith("or ") else "")
    return f"{default} missing"


def _given(d: dict, key: str) -> bool:
    return isinstance(d, dict) and d.get(key) is not None


def _relative_difference(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def _complete_from_dicom(d: dict, base: Path, warnings: list, problems: list | None = None) -> tuple[dict, dict, set]:
    """Fill the fields a DICOM manifest leaves out from the SPECT headers (contract 1).

    Returns ``(completed copy of d, hints, dicom_timepoints)``: ``hints`` maps a field path to a
    sentence naming the DICOM tag that would have given a value still missing; ``dicom_timepoints``
    holds the ``cycles[i].timepoints[j]`` whose SPECT is DICOM. ``d`` itself is not modified.
    Malformed parts of ``d`` are left alone (validation reports them). Series that cannot be used,
    mixed patients, ambiguous time zones and a multi-head duration without basis are added to
    ``problems`` (see :mod:`.study_dicom`).
    """
    problems = [] if problems is None else problems
    hints: dict[str, str] = {}
    dicom_tps: set[str] = set()
    if not isinstance(d, dict) or not isinstance(d.get("cycles"), list):
        return d, hints, dicom_tps
    infos: dict[tuple[int, int], tuple[Path, object]] = {}
    for i, c in enumerate(d["cycles"]):
        if not isinstance(c, dict) or not isinstance(c.get("timepoints"), list):
            continue
        for j, tp in enumerate(c["timepoints"]):
            if not isinstance(tp, dict) or not isinstance(tp.get("spect"), str) or not tp["spect"]:
                continue
            try:
                p = Path(tp["spect"])
                p = p if p.is_absolute() else (base / p).resolve()
                # a FIFO or device would block the header read: only regular files and folders
                if not (p.is_file() or p.is_dir()) or not _is_dicom_path(p):
                    continue
            except (OSError, ValueError, RuntimeError):
                continue  # the path check of the validation reports it
            dicom_tps.add(f"cycles[{i}].timepoints[{j}]")
            infos[(i, j)] = (p, None)
    if not infos:
        return d, hints, dicom_tps

    from ..io.dicom import normalise_radionuclide, read_series_info  # lazy: pydicom only for DICOM input
    from . import study_dicom
    from ..errors import InputDataError

    d = copy.deepcopy(d)
    for (i, j), (p, _) in list(infos.items()):
        uid = d["cycles"][i]["timepoints"][j].get("spect_series_uid")
        try:
            infos[(i, j)] = (p, read_series_info(p, series_uid=uid if isinstance(uid, str) else None))
        except (InputDataError, OSError, ValueError) as exc:
            where = f"cycles[{i}].timepoints[{j}]"
            msg = f"the DICOM header of {p} cannot be read: {exc}"
            warnings.append(f"{where}.spect: {msg}; times, activity and units must then be in the manifest")
            for key in (where, f"{where}.spect_units", f"{where}.acquisition_duration_s",
                        f"cycles[{i}].administered_activity_MBq", f"cycles[{i}].injection_time"):
                hints.setdefault(key, msg)
            del infos[(i, j)]
    study_dicom.screen_series(d, infos, base, problems, warnings, hints)

    # ---- time points: acquisition time, units, duration
    for (i, j), (p, info) in sorted(infos.items()):
        tp = d["cycles"][i]["timepoints"][j]
        where = f"cycles[{i}].timepoints[{j}]"
        if not _given(tp, "acquisition_time") and "hours_post_injection" not in tp:
            if info.acquisition_datetime is not None:
                tp["acquisition_time"] = info.acquisition_datetime.isoformat()
                hints.setdefault(f"{where}.acquisition_time", f"acquisition_time {tp['acquisition_time']} from DICOM "
                                 f"header {info.acquisition_source} of {p}")
                warnings.append(f"{where}.acquisition_time taken from DICOM header {info.acquisition_source} of {p}")
            else:
                hints[where] = (f"not in the DICOM header of {p} either: "
                                + _missing_tag_text(info, "acquisition_time",
                                                    "AcquisitionDate/AcquisitionTime (0008,0022)/(0008,0032)"))
        if not _given(tp, "spect_units"):
            if info.spect_units is not None:
                tp["spect_units"] = info.spect_units
                src = f"Units (0054,1001) = {info.units}" if info.units else "Units (0054,1001)"
                if (info.units or "").upper() not in ("BQML", "CNTS") or info.private_scale_factor is not None \
                        or (info.spect_units == "Bq/mL" and (info.units or "").upper() != "BQML"):
                    src += f", {info.scaling}"
                warnings.append(f"{where}.spect_units = {info.spect_units!r} taken from DICOM header {src} of {p}")
            else:
                hints[f"{where}.spect_units"] = (
                    f"not in the DICOM header of {p} either: Units (0054,1001) "
                    + (f"= {info.units!r} is not usable for dosimetry (need BQML or CNTS)" if info.units else "missing"))
        else:
            given = normalise_units(tp["spect_units"])
            if given is not None and info.spect_units is not None and given != info.spect_units:
                warnings.append(f"{where}.spect_units = {given!r} (manifest, used) differs from the DICOM header of {p} "
                                f"(Units (0054,1001) = {info.units} → {info.spect_units!r}, the unit the image is read "
                                "in): check it")
        if normalise_units(tp.get("spect_units")) == "counts":
            study_dicom.counts_duration(tp, where, p, info, problems, warnings, hints)
            if not _given(tp, "calibration_cps_per_MBq"):
                hints[f"{where}.calibration_cps_per_MBq"] = "the camera calibration is not a DICOM tag"

    # ---- cycles: injection time and administered activity from the first DICOM time point having them
    for i, c in enumerate(d["cycles"]):
        members = [(j, p, info) for (ci, j), (p, info) in sorted(infos.items()) if ci == i]
        if not members:
            continue
        where = f"cycles[{i}]"
        with_aa = [(p, info) for _, p, info in members if info.administered_activity_MBq]
        if not _given(c, "administered_activity_MBq"):
            if with_aa:
                p, info = with_aa[0]
                c["administered_activity_MBq"] = info.administered_activity_MBq
                warnings.append(f"{where}.administered_activity_MBq = {info.administered_activity_MBq:g} MBq taken from "
                                f"DICOM header RadionuclideTotalDose (0018,1074) of {p}")
            else:
                p, info = members[0][1], members[0][2]
                hints[f"{where}.administered_activity_MBq"] = (
                    f"not in the DICOM header of {p} either: "
                    + _missing_tag_text(info, "administered_activity_MBq", "RadionuclideTotalDose (0018,1074)"))
        elif with_aa and isinstance(c["administered_activity_MBq"], (int, float)) \
                and not isinstance(c["administered_activity_MBq"], bool):
            p, info = with_aa[0]
            diff = _relative_difference(c["administered_activity_MBq"], info.administered_activity_MBq)
            if diff > 0.01:
                warnings.append(f"{where}.administered_activity_MBq = {c['administered_activity_MBq']:g} MBq (manifest, "
                                f"used) differs by {100 * diff:.1f} % from the DICOM header RadionuclideTotalDose "
                                f"(0018,1074) of {p} ({info.administered_activity_MBq:g} MBq)")
        if not _given(c, "injection_time"):
            chosen = study_dicom.choose_injection(members, where, problems, hints)
            if chosen is not None:
                p, info = chosen
                inj, src = info.injection_datetime, info.injection_source or "RadiopharmaceuticalStartDateTime (0018,1078)"
                if not src.startswith("RadiopharmaceuticalStartDateTime") and info.injection_time_of_day is not None:
                    inj, src = study_dicom.time_only_injection(info, members)
                c["injection_time"] = inj.isoformat()
                warnings.append(f"{where}.injection_time taken from DICOM header {src} of {p}")
            elif f"{where}.injection_time" not in hints and not any(w == f"{where}.injection_time" for w, _ in problems):
                p, info = members[0][1], members[0][2]
                hints[f"{where}.injection_time"] = (
                    f"not in the DICOM header of {p} either: "
                    + _missing_tag_text(info, "injection_time", "RadiopharmaceuticalStartDateTime (0018,1078)"))
        # hours p.i. of the manifest (where it gives its own times) vs the header's
        try:
            inj = parse_iso_time(c["injection_time"]) if _given(c, "injection_time") else None
        except (ValueError, TypeError):
            inj = None
        for j, p, info in members:
            tp = c["timepoints"][j]
            if info.hours_post_injection is None:
                continue
            h = None
            try:
                if "hours_post_injection" in tp:
                    h = float(tp["hours_post_injection"])
                elif _given(tp, "acquisition_time") and inj is not None:
                    acq = parse_iso_time(tp["acquisition_time"])
                    if (acq.tzinfo is None) == (inj.tzinfo is None):
                        h = hours_between(inj, acq)
            except (ValueError, TypeError):
                h = None
            if h is not None and abs(h - info.hours_post_injection) > 0.01 * max(abs(info.hours_post_injection), 1.0):
                warnings.append(f"{where}.timepoints[{j}]: the manifest gives {h:.2f} h post injection (used), the DICOM "
                                f"header of {p} {info.hours_post_injection:.2f} h (injection "
                                f"{info.injection_datetime.isoformat() if info.injection_datetime else '?'}, acquisition "
                                f"{info.acquisition_datetime.isoformat() if info.acquisition_datetime else '?'}): differs "
                                "by more than 1 %")

    # ---- study: radionuclide
    nuclides = [(p, info) for _, (p, info) in sorted(infos.items()) if info.radionuclide]
    if nuclides:
        p, info = nuclides[0]
        if not _given(d, "radionuclide"):
            d["radionuclide"] = info.radionuclide
            warnings.append(f"radionuclide = {info.radionuclide!r} taken from DICOM header RadionuclideCodeSequence "
                            f"(0054,0300) of {p}")
        elif isinstance(d["radionuclide"], str) and normalise_radionuclide(d["radionuclide"]) not in (None, info.radionuclide):
            warnings.append(f"radionuclide = {d['radionuclide']!r} (manifest, used) differs from the DICOM header of {p} "
                            f"({info.radionuclide!r})")
    return d, hints, dicom_tps


def study_from_dict(d: dict, base_dir: Path, manifest_path: Path | None = None, check_files: bool = True) -> Study:
    """Build and validate a :class:`Study` from a manifest dict; relative paths are resolved
    against ``base_dir``. Raises :class:`ManifestError` listing every problem found.

    ``check_files=False`` validates everything but the image and segmentation files (their
    presence is then optional and not checked): for studies whose images are already in memory,
    e.g. volumes of a Slicer scene. No DICOM header is then read either.

    For time points whose ``spect`` is DICOM, fields missing from ``d`` are first read from the
    headers (see the module docstring); ``d`` itself is not modified.
    """
    source = manifest_path or Path(base_dir) / "<manifest>"
    base = Path(base_dir)
    if not isinstance(d, dict):
        raise ManifestError(source, [("<root>", "manifest must be a JSON object")])
    holes = find_placeholders(d)
    if holes:
        raise ManifestError(source, [(f, f"is a placeholder left by `lu-dosimetry inspect --write-manifest`, replace it "
                                         f"with the value: {text}") for f, text in holes])
    structure = check_manifest_structure(d)  # unknown keys, JSON types, ranges, label keys: before any use
    if not structure:
        return _study_from_checked_dict(d, base, source, manifest_path, check_files)
    try:  # the value checks below add their own problems; a wrong type they trip over is already listed
        _study_from_checked_dict(d, base, source, manifest_path, check_files)
    except ManifestError as exc:
        structure += [p for p in exc.problems if p not in structure and not any(p[0] == q[0] for q in structure)]
    except (TypeError, ValueError, OverflowError, AttributeError, KeyError, RecursionError):
        pass
    raise ManifestError(source, structure)


def _study_from_checked_dict(d: dict, base: Path, source, manifest_path, check_files: bool) -> Study:
    problems: list[tuple[str, str]] = []
    warnings: list[str] = []
    if "allow_mixed_patients" in d and not isinstance(d["allow_mixed_patients"], bool):
        problems.append(("allow_mixed_patients", f"must be true or false, got {d['allow_mixed_patients']!r}"))
    hints: dict[str, str] = {}
    dicom_tps: set[str] = set()
    if check_files:
        d, hints, dicom_tps = _complete_from_dicom(d, base, warnings, problems)
    default_units: list[str] = []
    patient_id = d.get("patient_id")
    if isinstance(patient_id, str):
        patient_id = patient_id.strip()
    if not patient_id or not isinstance(patient_id, str):
        problems.append(("patient_id", "is missing, empty or not a string"))
    radionuclide = d.get("radionuclide", "Lu-177")
    if not isinstance(radionuclide, str) or not radionuclide.strip():
        problems.append(("radionuclide", f"must be a nuclide name such as 'Lu-177', got {radionuclide!r}"))

    cycles: list[Cycle] = []
    raw_cycles = d.get("cycles")
    if not isinstance(raw_cycles, list) or not raw_cycles:
        problems.append(("cycles", "must be a non-empty list"))
        raw_cycles = []
    seen = {}
    naive_seen = False
    for i, c in enumerate(raw_cycles):
        where = f"cycles[{i}]"
        if not isinstance(c, dict):
            problems.append((where, "must be an object"))
            continue
        num = c.get("cycle")
        if isinstance(num, bool) or not isinstance(num, int) or num < 1:
            problems.append((f"{where}.cycle", f"must be a positive integer, got {num!r}"))
            num = None
        elif num in seen:
            problems.append((f"{where}.cycle", f"duplicate cycle number {num} (also cycles[{seen[num]}])"))
        else:
            seen[num] = i
        aa = None
        if c.get("administered_activity_MBq") is None:
            problems.append((f"{where}.administered_activity_MBq", "is missing"
                             + (f" ({hints[where + '.administered_activity_MBq']})"
                                if where + ".administered_activity_MBq" in hints else "")))
        else:
            aa = _number(c["administered_activity_MBq"], f"{where}.administered_activity_MBq", problems, positive=True)
        injection = None
        inj_text = c.get("injection_time")
        if inj_text is not None:
            try:
                injection = parse_iso_time(inj_text)
                naive_seen |= injection.tzinfo is None
            except ValueError as exc:
                problems.append((f"{where}.injection_time", f"not an ISO-8601 time ({exc})"))
        tps_raw = c.get("timepoints")
        if not isinstance(tps_raw, list) or not tps_raw:
            problems.append((f"{where}.timepoints", "must be a non-empty list (at least one time point per cycle)"))
            tps_raw = []
        tps = [_parse_timepoint(tp, f"{where}.timepoints[{j}]", base, injection, problems, warnings, check_files,
                                hints=hints, dicom_timepoints=dicom_tps, default_units=default_units)
               for j, tp in enumerate(tps_raw)]
        hours = [tp.hours_post_injection for tp in tps if tp is not None]
        if any(b <= a for a, b in zip(hours, hours[1:])):
            problems.append((f"{where}.timepoints", "times after injection must be strictly increasing, got "
                             + ", ".join(f"{h:.2f} h" for h in hours)))
        if num is not None and aa is not None and all(tp is not None for tp in tps) and tps:
            cycles.append(Cycle(cycle=num, administered_activity_MBq=aa, timepoints=tps, injection_time=inj_text))
    if default_units:
        warnings.append("spect_units not given for " + ", ".join(default_units) + ": taken as Bq/mL (activity "
                        "concentration); set spect_units if an image holds counts or a dose rate (Gy/h)")
    if naive_seen:
        warnings.append("injection/acquisition times have no time-zone offset: taken as local clock time of the "
                        "imaging site (differences are correct unless a daylight-saving change lies between them)")
    if len(cycles) > 1 and [c.cycle for c in cycles] != sorted(c.cycle for c in cycles):
        warnings.append("cycles were not listed in order; sorted by cycle number")
    cycles.sort(key=lambda c: c.cycle)

    seg_file = None
    vois: list[VoiDefinition] = []
    seg = d.get("segmentation")
    if seg is None and not check_files:
        pass
    elif seg is None:
        problems.append(("segmentation", "is missing (a labelmap file and its labels are required)"))
    elif not isinstance(seg, dict):
        problems.append(("segmentation", "must be an object with 'file' and 'labels'"))
    else:
        seg_file = _path(base, seg.get("file"), "segmentation.file", problems, check_files=check_files,
                         warnings=warnings)
        labels = seg.get("labels")
        if not isinstance(labels, dict) or not labels:
            problems.append(("segmentation.labels", "must be a non-empty object {label value: {name, kind}}"))
            labels = {}
        names = set()
        for key, spec in labels.items():
            where = f"segmentation.labels[{key}]"
            try:
                label = int(key)
                if label <= 0:
                    raise ValueError
            except ValueError:
                problems.append((where, "label value must be a positive integer"))
                continue
            if not isinstance(spec, dict):
                problems.append((where, "must be an object with name and kind"))
                continue
            name = spec.get("name")
            if not name or not isinstance(name, str):
                problems.append((f"{where}.name", "is missing"))
            elif name in names:
                problems.append((f"{where}.name", f"duplicate VOI name {name!r}"))
            names.add(name)
            kind = spec.get("kind")
            if kind not in VOI_KINDS:
                problems.append((f"{where}.kind", f"must be one of {', '.join(VOI_KINDS)}, got {kind!r}"))
            mode = spec.get("mode", "as_drawn")
            if mode not in VOI_MODES:
                problems.append((f"{where}.mode", f"must be one of {', '.join(VOI_MODES)}, got {mode!r}"))
            if isinstance(name, str) and kind in VOI_KINDS and mode in VOI_MODES:
                vois.append(VoiDefinition(label=label, name=name, kind=kind, mode=mode))
        vois.sort(key=lambda v: v.label)

    rcs = d.get("recovery_coefficients")
    if rcs is not None:
        if not isinstance(rcs, dict) or "volume_ml" not in rcs or "rc" not in rcs:
            problems.append(("recovery_coefficients", "must be an object with lists 'volume_ml' and 'rc'"))
        else:
            v, r = rcs["volume_ml"], rcs["rc"]
            if not isinstance(v, list) or not isinstance(r, list) or len(v) != len(r) or len(v) < 2:
                problems.append(("recovery_coefficients", "'volume_ml' and 'rc' must be lists of equal length >= 2"))
            else:
                vols, rcv = [], []
                for j, (vv, rr) in enumerate(zip(v, r)):
                    vols.append(_number(vv, f"recovery_coefficients.volume_ml[{j}]", problems, positive=True))
                    x = _number(rr, f"recovery_coefficients.rc[{j}]", problems, positive=True)
                    rcv.append(x)
                    if x is not None and x > 1.5:
                        problems.append((f"recovery_coefficients.rc[{j}]", f"implausible recovery coefficient {x:g} (> 1.5)"))
                for j in range(1, len(vols)):
                    if vols[j] is not None and vols[j - 1] is not None and vols[j] <= vols[j - 1]:
                        what = "repeats" if vols[j] == vols[j - 1] else "is smaller than"
                        problems.append((f"recovery_coefficients.volume_ml[{j}]",
                                         f"{vols[j]:g} mL {what} volume_ml[{j - 1}] = {vols[j - 1]:g} mL: volumes must be "
                                         "strictly increasing (one recovery coefficient per volume)"))
                drops = [j for j in range(1, len(rcv)) if rcv[j] is not None and rcv[j - 1] is not None
                         and rcv[j] < rcv[j - 1]]
                if drops:
                    warnings.append("recovery_coefficients: rc decreases with volume at "
                                    + ", ".join(f"rc[{j - 1}] = {rcv[j - 1]:g} → rc[{j}] = {rcv[j]:g}" for j in drops)
                                    + "; recovery normally rises with volume — check the table")
    else:
        warnings.append("no recovery_coefficients in the manifest: no partial-volume correction applied")

    if problems:
        raise ManifestError(source, problems)
    return Study(patient_id=patient_id, radionuclide=radionuclide.strip(), cycles=cycles, segmentation_file=seg_file,
                 vois=vois, recovery_coefficients=rcs, manifest_path=manifest_path, warnings=warnings,
                 uncertainty=d.get("uncertainty"))


def load_study(manifest_path) -> Study:
    """Read and validate a ``study.json`` (contract 1). Paths are relative to the manifest.

    The text must be UTF-8 (a byte-order mark is accepted); duplicate keys, NaN literals and
    absurd nesting are refused (:func:`.manifest_schema.load_json_strict`), then every key is
    checked against :data:`.manifest_schema.MANIFEST_FIELDS` before any value is used."""
    path = Path(manifest_path)
    try:
        if not path.is_file():
            what = "not found" if not path.exists() else "is not a regular file (a folder, FIFO or device)"
            raise ManifestError(path, [("<file>", f"study manifest {what}: {path}")])
        if path.stat().st_size > 16 * 1024 * 1024:
            raise ManifestError(path, [("<file>", f"{path.stat().st_size} bytes: far too large for a study manifest")])
        raw = path.read_bytes()
    except (OSError, ValueError) as exc:  # ValueError: NUL in the path
        raise ManifestError(str(path)[:200], [("<file>", f"cannot be read ({getattr(exc, 'strerror', None) or exc})")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ManifestError(path, [("<file>", f"not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); save the "
                                              "manifest as UTF-8")]) from None
    d = load_json_strict(text, path)
    return study_from_dict(d, path.parent, manifest_path=path.resolve())
