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
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from .errors import ManifestError

SPECT_UNITS = ("Bq/mL", "counts", "Gy/h")
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
    calibration_cps_per_MBq, acquisition_duration_s: required when spect_units == "counts".
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


def _path(base: Path, value, field_name, problems, required=True, check_files=True):
    if not check_files and (value is None or value == ""):
        return None
    if value is None or value == "":
        if required:
            problems.append((field_name, "is missing"))
        return None
    if not isinstance(value, str):
        problems.append((field_name, f"must be a path string, got {value!r}"))
        return None
    p = (base / value).resolve() if not Path(value).is_absolute() else Path(value)
    if check_files and not p.exists():
        problems.append((field_name, f"file or folder not found: {p}"))
    return p


def normalise_units(units: str) -> str | None:
    """Canonical SPECT unit string or None if unknown ("bq/ml" → "Bq/mL")."""
    if not isinstance(units, str):
        return None
    return _UNIT_ALIASES.get(units.strip().lower().replace(" ", ""))


def _parse_timepoint(tp: dict, where: str, base: Path, injection: datetime | None, problems, warnings,
                     check_files: bool = True):
    if not isinstance(tp, dict):
        problems.append((where, "must be an object"))
        return None
    hours = None
    acq_text = tp.get("acquisition_time")
    if "hours_post_injection" in tp:
        hours = _number(tp["hours_post_injection"], f"{where}.hours_post_injection", problems)
        if hours is not None and hours < 0:
            problems.append((f"{where}.hours_post_injection", f"must be >= 0, got {hours:g}"))
            hours = None
    elif acq_text is not None:
        try:
            acq = parse_iso_time(acq_text)
        except ValueError as exc:
            problems.append((f"{where}.acquisition_time", f"not an ISO-8601 time ({exc})"))
            acq = None
        if acq is not None and injection is not None:
            if (acq.tzinfo is None) != (injection.tzinfo is None):
                problems.append((f"{where}.acquisition_time",
                                 "one of injection_time/acquisition_time has a time-zone offset and the other "
                                 "does not; give both with offsets (or both without)"))
            else:
                hours = hours_between(injection, acq)
                if hours < 0:
                    problems.append((f"{where}.acquisition_time", f"is {-hours:.2f} h before the injection"))
                    hours = None
        elif acq is not None and injection is None:
            problems.append((f"{where}.acquisition_time", "given but the cycle has no injection_time; "
                                                          "give injection_time or hours_post_injection"))
    else:
        problems.append((f"{where}", "needs acquisition_time or hours_post_injection"))

    raw_units = tp.get("spect_units", "Bq/mL")
    units = normalise_units(raw_units)
    if units is None:
        problems.append((f"{where}.spect_units", f"unknown unit {raw_units!r}; use one of {', '.join(SPECT_UNITS)}"))
    cal = dur = None
    if units == "counts":
        if "calibration_cps_per_MBq" not in tp:
            problems.append((f"{where}.calibration_cps_per_MBq", "required when spect_units is 'counts'"))
        else:
            cal = _number(tp["calibration_cps_per_MBq"], f"{where}.calibration_cps_per_MBq", problems, positive=True)
        if "acquisition_duration_s" not in tp:
            problems.append((f"{where}.acquisition_duration_s", "required when spect_units is 'counts'"))
        else:
            dur = _number(tp["acquisition_duration_s"], f"{where}.acquisition_duration_s", problems, positive=True)
    spect = _path(base, tp.get("spect"), f"{where}.spect", problems, check_files=check_files)
    ct = _path(base, tp.get("ct"), f"{where}.ct", problems, required=False, check_files=check_files)
    if hours is None:
        return None
    uids = {}
    for key in ("spect_series_uid", "ct_series_uid"):
        if tp.get(key) is not None and not isinstance(tp.get(key), str):
            problems.append((f"{where}.{key}", f"must be a DICOM UID string, got {tp.get(key)!r}"))
        else:
            uids[key] = tp.get(key)
    return TimePoint(hours_post_injection=hours, spect=spect, spect_units=units or str(raw_units), ct=ct,
                     acquisition_time=acq_text, calibration_cps_per_MBq=cal, acquisition_duration_s=dur, **uids)


def study_from_dict(d: dict, base_dir: Path, manifest_path: Path | None = None, check_files: bool = True) -> Study:
    """Build and validate a :class:`Study` from a manifest dict; relative paths are resolved
    against ``base_dir``. Raises :class:`ManifestError` listing every problem found.

    ``check_files=False`` validates everything but the image and segmentation files (their
    presence is then optional and not checked): for studies whose images are already in memory,
    e.g. volumes of a Slicer scene.
    """
    source = manifest_path or Path(base_dir) / "<manifest>"
    problems: list[tuple[str, str]] = []
    warnings: list[str] = []
    base = Path(base_dir)
    if not isinstance(d, dict):
        raise ManifestError(source, [("<root>", "manifest must be a JSON object")])
    patient_id = d.get("patient_id")
    if not patient_id or not isinstance(patient_id, str):
        problems.append(("patient_id", "is missing or not a string"))
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
        if "administered_activity_MBq" not in c:
            problems.append((f"{where}.administered_activity_MBq", "is missing"))
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
            problems.append((f"{where}.timepoints", "must be a non-empty list"))
            tps_raw = []
        tps = [_parse_timepoint(tp, f"{where}.timepoints[{j}]", base, injection, problems, warnings, check_files)
               for j, tp in enumerate(tps_raw)]
        hours = [tp.hours_post_injection for tp in tps if tp is not None]
        if any(b <= a for a, b in zip(hours, hours[1:])):
            problems.append((f"{where}.timepoints", "times after injection must be strictly increasing, got "
                             + ", ".join(f"{h:.2f} h" for h in hours)))
        if num is not None and aa is not None and all(tp is not None for tp in tps) and tps:
            cycles.append(Cycle(cycle=num, administered_activity_MBq=aa, timepoints=tps, injection_time=inj_text))
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
        seg_file = _path(base, seg.get("file"), "segmentation.file", problems, check_files=check_files)
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
                for j, (vv, rr) in enumerate(zip(v, r)):
                    _number(vv, f"recovery_coefficients.volume_ml[{j}]", problems, positive=True)
                    x = _number(rr, f"recovery_coefficients.rc[{j}]", problems, positive=True)
                    if x is not None and x > 1.5:
                        problems.append((f"recovery_coefficients.rc[{j}]", f"implausible recovery coefficient {x:g} (> 1.5)"))
    else:
        warnings.append("no recovery_coefficients in the manifest: no partial-volume correction applied")

    if problems:
        raise ManifestError(source, problems)
    return Study(patient_id=patient_id, radionuclide=radionuclide.strip(), cycles=cycles, segmentation_file=seg_file,
                 vois=vois, recovery_coefficients=rcs, manifest_path=manifest_path, warnings=warnings)


def load_study(manifest_path) -> Study:
    """Read and validate a ``study.json`` (contract 1). Paths are relative to the manifest."""
    path = Path(manifest_path)
    if not path.is_file():
        raise ManifestError(path, [("<file>", f"study manifest not found: {path}")])
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(path, [("<file>", f"not valid JSON: {exc}")]) from exc
    return study_from_dict(d, path.parent, manifest_path=path.resolve())
