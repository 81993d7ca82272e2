"""DICOM header reading for SPECT/CT dosimetry: times, activity, units and scaling.

What is read (pydicom, headers only) and where from
----------------------------------------------------
* Injection date/time: ``RadiopharmaceuticalInformationSequence`` (0054,0016) item 1,
  ``RadiopharmaceuticalStartDateTime`` (0018,1078); else ``RadiopharmaceuticalStartTime``
  (0018,1072) combined with a date (see "time-only injections" below).
* Administered activity: ``RadionuclideTotalDose`` (0018,1074), in Bq (reported in MBq). A value
  below 1e5 is flagged as probably entered in MBq.
* Radionuclide: ``RadionuclideCodeSequence`` (0054,0300) CodeMeaning (e.g. "^177^Lutetium"),
  else ``Radionuclide`` (0018,0030) / ``Radiopharmaceutical`` (0018,0031) text; half-life
  ``RadionuclideHalfLife`` (0018,1075) in s, checked against ``radioactivedecay`` when installed.
* Acquisition date/time: ``AcquisitionDateTime`` (0008,002A); else ``AcquisitionDate`` +
  ``AcquisitionTime`` (0008,0022/0032); else (GE only) private ``GEMS_PETD_01`` scan date-time
  (0009,xx0D); else ``SeriesDate``/``SeriesTime`` and last ``StudyDate``/``StudyTime`` (each
  fallback adds a warning: these can be the reconstruction or registration time). Multi-file
  series use the earliest value.
* Time zones: an offset inside a DT value wins; else ``TimezoneOffsetFromUTC`` (0008,0201)
  applies to the dataset's DA/TM values; else times are local clock time of the site (a note
  says so; differences are correct unless a daylight-saving change lies between them).
* Duration: ``RotationInformationSequence`` (0054,0052) ``ActualFrameDuration`` (0018,1242, ms)
  × ``NumberOfFramesInRotation`` (0054,0053), summed over rotations (NM tomo); else top-level
  ``ActualFrameDuration`` (PT, one bed). Vendors differ on whether NumberOfFramesInRotation counts
  the frames of one head or of all heads; ``NumberOfDetectors`` (0054,0021) is reported so the
  duration can be matched to the convention of the camera calibration.
* Units (0054,1001): ``BQML`` → "Bq/mL"; ``CNTS`` → "counts"; others (``GML`` SUV, ``PROPCNTS``,
  …) are reported as not usable for dosimetry.
* Scaling: GDCM (SimpleITK) applies ``RescaleSlope``/``RescaleIntercept`` (0028,1053/1052). On top
  of that :func:`read_dicom_image` applies, in this order of precedence:
    1. Units ``BQML``: rescaled values are Bq/mL; a Real World Value Mapping is only checked
       for consistency.
    2. ``RealWorldValueMappingSequence`` (0040,9096) with units Bq/mL (or kBq/mL, MBq/mL) in
       ``MeasurementUnitsCodeSequence`` (0040,08EA): value = stored × RealWorldValueSlope
       (0040,9225) + RealWorldValueIntercept (0040,9224) (this is how several quantitative SPECT
       reconstructions label Bq/mL while keeping Units = CNTS). Applied to single-file
       (multi-frame) series, and to multi-file series only when identical in all files.
    3. Philips: private "Philips PET Private Group" (7053,xx09) *activity concentration scale
       factor*: Bq/mL = rescaled value × factor, used when Units is CNTS (as in the QIBA SUV
       vendor-neutral pseudo-code). (7053,xx00), the Philips SUV factor, is reported only.
  Siemens and GE quantitative SPECT/PET are written with standard tags (Units = BQML, Rescale,
  RWVM); no Siemens or GE private *scale factor* is applied. The GE private scan date-time above
  is the only GE private tag read.
* Decay correction: ``DecayCorrection`` (0054,1102) ``ADMIN`` or "DECY" in ``CorrectedImage``
  (0028,0051) is flagged: the pipeline expects activity at acquisition time.

Time-only injections: with only ``RadiopharmaceuticalStartTime`` the date is unknown. For a
single series the ``SeriesDate`` (else AcquisitionDate/StudyDate) is used, which is wrong for
scans on a later day; :func:`inspect_directory` does better: series sharing the same start
time and dose are one injection, dated on the day of its earliest acquisition (or the day
before if the start time is after that acquisition's time of day). Either way a message says
so and names the manifest field to set (``cycles[i].injection_time``).

Every missing value is recorded as a :class:`MissingTag` naming the tag and the manifest field
(contract 1 of ARCHITECTURE.md) that supplies it instead.
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import numpy as np

from ..errors import InputDataError

log = logging.getLogger(__name__)

_NON_DICOM_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd", ".raw", ".zraw", ".json", ".csv",
                       ".txt", ".html", ".png", ".jpg", ".pdf", ".md", ".py", ".xml")
IMAGE_FILE_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
EMISSION_MODALITIES = ("NM", "PT")
_DICOMDIR_SOP = "1.2.840.10008.1.3.10"

UNITS_TO_MANIFEST = {"BQML": "Bq/mL", "CNTS": "counts"}
_RWV_BQML_UNITS = {"bq/ml": 1.0, "kbq/ml": 1e3, "mbq/ml": 1e6, "bq/cc": 1.0}

_ELEMENTS = {
    "lutetium": "Lu", "yttrium": "Y", "iodine": "I", "terbium": "Tb", "technetium": "Tc", "fluorine": "F",
    "gallium": "Ga", "indium": "In", "holmium": "Ho", "actinium": "Ac", "radium": "Ra", "lead": "Pb",
    "copper": "Cu", "zirconium": "Zr", "samarium": "Sm", "rhenium": "Re", "thallium": "Tl", "bismuth": "Bi",
    "astatine": "At", "thorium": "Th", "scandium": "Sc", "erbium": "Er",
}
_SYMBOLS = {v.lower(): v for v in _ELEMENTS.values()}


# --------------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------------

@dataclass
class MissingTag:
    """A value the dosimetry needs that the DICOM header does not give.

    ``manifest_field`` uses ``[i]`` (cycle) and ``[j]`` (time point) placeholders until the series
    is placed in a cycle by :func:`inspect_directory`, which fills them in.
    """

    keyword: str
    tag: str
    manifest_field: str
    detail: str = ""

    def message(self, cycle_index: int | None = None, timepoint_index: int | None = None) -> str:
        f = self.manifest_field
        if cycle_index is not None:
            f = f.replace("cycles[i]", f"cycles[{cycle_index}]")
        if timepoint_index is not None:
            f = f.replace("timepoints[j]", f"timepoints[{timepoint_index}]")
        text = f"{self.keyword} {self.tag} missing → set {f}"
        return text + (f" ({self.detail})" if self.detail else "")

    def __str__(self) -> str:
        return self.message()


@dataclass
class DicomSeriesInfo:
    """What one DICOM series says, read from its headers (no pixel data).

    Times are ``datetime`` (time-zone aware when the header gives an offset). Activity in MBq,
    durations in s, spacing in mm (x, y, z), ``shape_zyx`` in voxels.
    """

    series_instance_uid: str
    modality: str
    files: list[Path]
    study_instance_uid: str | None = None
    frame_of_reference_uid: str | None = None
    patient_id: str | None = None
    series_description: str = ""
    manufacturer: str = ""
    model: str = ""
    shape_zyx: tuple[int, int, int] | None = None
    spacing_mm: tuple[float, float, float] | None = None
    units: str | None = None                 # raw (0054,1001)
    spect_units: str | None = None           # manifest unit after scaling: "Bq/mL", "counts" or None
    rescale_slope: float | None = None
    rescale_intercept: float | None = None
    real_world_slope: float | None = None
    real_world_intercept: float | None = None
    real_world_units: str | None = None
    private_scale_factor: float | None = None
    private_scale_source: str | None = None
    scaling: str = "rescale slope/intercept (GDCM)"
    radionuclide: str | None = None
    half_life_s: float | None = None
    radiopharmaceutical: str | None = None
    administered_activity_MBq: float | None = None
    injection_datetime: datetime | None = None
    injection_time_of_day: time | None = None
    injection_source: str | None = None
    acquisition_datetime: datetime | None = None
    acquisition_source: str | None = None
    hours_post_injection: float | None = None
    timezone_offset: str | None = None
    frame_duration_s: float | None = None
    number_of_frames_in_rotation: int | None = None
    number_of_detectors: int | None = None
    acquisition_duration_s: float | None = None
    decay_correction: str | None = None
    warnings: list[str] = field(default_factory=list)
    missing: list[MissingTag] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return self.files[0].parent if self.files else Path(".")

    @property
    def is_emission(self) -> bool:
        return self.modality in EMISSION_MODALITIES

    def missing_messages(self, cycle_index=None, timepoint_index=None) -> list[str]:
        return [m.message(cycle_index, timepoint_index) for m in self.missing]


@dataclass
class DicomImage:
    """An image read by :func:`read_dicom_image`: the SimpleITK image (values in ``info.spect_units``
    for emission series), the header information, and a note of the scaling applied."""

    image: object
    info: DicomSeriesInfo
    scaling: str


@dataclass
class InspectedTimePoint:
    emission: DicomSeriesInfo
    ct: DicomSeriesInfo | None = None


@dataclass
class InspectedCycle:
    """Series grouped under one injection (a treatment cycle)."""

    number: int
    injection_datetime: datetime | None
    administered_activity_MBq: float | None
    radionuclide: str | None
    timepoints: list[InspectedTimePoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class InspectionReport:
    """Result of :func:`inspect_directory`: every series found, grouped by injection."""

    root: Path
    series: list[DicomSeriesInfo]
    cycles: list[InspectedCycle]
    unassigned: list[DicomSeriesInfo]
    image_files: list[dict]
    unreadable: list[str] = field(default_factory=list)

    def to_text(self) -> str:
        """Human-readable listing (``lu-dosimetry inspect DIR``)."""
        out = [f"Inspection of {self.root}",
               f"  {len(self.series)} DICOM series, {len(self.image_files)} other image file(s), "
               f"{len(self.cycles)} injection(s) (cycles)"]
        for ci, cyc in enumerate(self.cycles):
            inj = _fmt_dt(cyc.injection_datetime) if cyc.injection_datetime else "unknown"
            aa = f"{cyc.administered_activity_MBq:.1f} MBq" if cyc.administered_activity_MBq else "activity unknown"
            out.append("")
            out.append(f"Cycle {cyc.number} (cycles[{ci}]): injection {inj}, {aa}, {cyc.radionuclide or 'radionuclide unknown'}")
            for n in cyc.notes:
                out.append(f"  note: {n}")
            for tj, tp in enumerate(cyc.timepoints):
                s = tp.emission
                hrs = f"{s.hours_post_injection:7.2f} h p.i." if s.hours_post_injection is not None else "   ?    h p.i."
                out.append(f"  [{tj}] {hrs}  {_series_line(s)}")
                if tp.ct is not None:
                    out.append(f"       CT: {_series_line(tp.ct)}")
                else:
                    out.append("       CT: none found (optional; CT-based registration then not possible)")
                for s2 in (s, tp.ct):
                    if s2 is None:
                        continue
                    out.extend(_issue_lines(s2, ci, tj))
        if self.unassigned:
            out.append("")
            out.append("Series not assigned to a cycle:")
            for s in self.unassigned:
                out.append(f"  {_series_line(s)}")
                out.extend(_issue_lines(s))
        if self.image_files:
            out.append("")
            out.append("Other image files (units, times and activity must be given in the manifest):")
            for f in self.image_files:
                if "error" in f:
                    out.append(f"  {f['path']}: {f['error']}")
                else:
                    out.append(f"  {f['path']}: size {f['size']}, spacing {_fmt_tuple(f['spacing_mm'])} mm")
        if self.unreadable:
            out.append("")
            out.append(f"{len(self.unreadable)} file(s) skipped (not DICOM or unreadable), e.g. {self.unreadable[0]}")
        return "\n".join(out)

    def to_manifest(self, patient_id: str | None = None, relative_to: str | os.PathLike | None = None) -> dict:
        """A study-manifest dict (contract 1) from what the headers say.

        Fields the headers cannot supply are left out (``study.load_study`` then names them);
        ``segmentation`` is never in DICOM and must be added. Paths are made relative to
        ``relative_to`` (the folder the manifest will be written to) when given. A series that
        shares its folder with other series is given as its single file when it has one file,
        else as the folder plus ``spect_series_uid``/``ct_series_uid`` (optional fields).
        """
        def rel(p: Path) -> str:
            if relative_to is None:
                return str(p)
            return os.path.relpath(p, relative_to)

        folder_counts = defaultdict(int)
        for s in self.series:
            folder_counts[s.folder] += 1

        def series_path(s: DicomSeriesInfo) -> tuple[str, str | None]:
            if len(s.files) == 1:
                return rel(s.files[0]), None
            return rel(s.folder), (s.series_instance_uid if folder_counts[s.folder] > 1 else None)

        pid = patient_id
        if pid is None:
            ids = {s.patient_id for s in self.series if s.patient_id}
            pid = sorted(ids)[0] if ids else None
        nuclides = [c.radionuclide for c in self.cycles if c.radionuclide]
        manifest: dict = {}
        if pid:
            manifest["patient_id"] = pid
        manifest["radionuclide"] = nuclides[0] if nuclides else "Lu-177"
        cycles = []
        for cyc in self.cycles:
            c: dict = {"cycle": cyc.number}
            if cyc.administered_activity_MBq:
                c["administered_activity_MBq"] = round(cyc.administered_activity_MBq, 3)
            if cyc.injection_datetime is not None:
                c["injection_time"] = cyc.injection_datetime.isoformat()
            tps = []
            for tp in cyc.timepoints:
                s = tp.emission
                t: dict = {}
                if s.acquisition_datetime is not None and cyc.injection_datetime is not None:
                    t["acquisition_time"] = s.acquisition_datetime.isoformat()
                elif s.hours_post_injection is not None:
                    t["hours_post_injection"] = round(s.hours_post_injection, 4)
                t["spect"], uid = series_path(s)
                if uid:
                    t["spect_series_uid"] = uid
                if s.spect_units:
                    t["spect_units"] = s.spect_units
                if s.spect_units == "counts" and s.acquisition_duration_s:
                    t["acquisition_duration_s"] = s.acquisition_duration_s
                if tp.ct is not None:
                    t["ct"], uid = series_path(tp.ct)
                    if uid:
                        t["ct_series_uid"] = uid
                tps.append(t)
            c["timepoints"] = tps
            cycles.append(c)
        manifest["cycles"] = cycles
        return manifest

    def missing_messages(self) -> list[str]:
        """Every missing-tag message with the cycle/time-point indices filled in."""
        msgs = []
        for ci, cyc in enumerate(self.cycles):
            for tj, tp in enumerate(cyc.timepoints):
                for s in (tp.emission, tp.ct):
                    if s is not None:
                        msgs += s.missing_messages(ci, tj)
        for s in self.unassigned:
            msgs += s.missing_messages()
        return msgs


def _fmt_tuple(t) -> str:
    return "(" + ", ".join(f"{v:.3g}" for v in t) + ")"


def _fmt_dt(d: datetime | None) -> str:
    if d is None:
        return "?"
    return d.isoformat(sep=" ", timespec="minutes") + ("" if d.tzinfo else " (local time, no offset)")


def _issue_lines(series, *where) -> list[str]:
    """Indented 'missing:' and 'warning:' lines of one series for the inspection text."""
    return ([f"       missing: {m}" for m in series.missing_messages(*where)]
            + [f"       warning: {w}" for w in series.warnings])


def _series_line(s: DicomSeriesInfo) -> str:
    shape = "x".join(str(v) for v in s.shape_zyx[::-1]) if s.shape_zyx else "?"
    sp = _fmt_tuple(s.spacing_mm) + " mm" if s.spacing_mm else ""
    units = f", units {s.units or '?'}" + (f" → {s.spect_units}" if s.spect_units and s.spect_units != s.units else "")
    if not s.is_emission:
        units = ""
    desc = f" '{s.series_description}'" if s.series_description else ""
    acq = f", acquired {_fmt_dt(s.acquisition_datetime)}" if s.acquisition_datetime else ""
    where = s.files[0] if len(s.files) == 1 else s.folder
    return (f"{s.modality}{desc} {shape} {sp}{units}{acq}; {s.manufacturer or 'manufacturer ?'}; "
            f"{len(s.files)} file(s) in {where}")


# --------------------------------------------------------------------------------------------
# Value parsing
# --------------------------------------------------------------------------------------------

def _text(ds, keyword) -> str | None:
    v = ds.get(keyword, None) if ds is not None else None
    if v is None:
        return None
    if hasattr(v, "value"):
        v = v.value
    s = str(v).strip()
    return s or None


def _float(ds, keyword) -> float | None:
    v = ds.get(keyword, None) if ds is not None else None
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    try:
        if isinstance(v, (list, tuple)) or (hasattr(v, "__len__") and not isinstance(v, str)):
            v = v[0]
        f = float(v)
    except (TypeError, ValueError, IndexError):
        return None
    return f if np.isfinite(f) else None


def _int(ds, keyword) -> int | None:
    f = _float(ds, keyword)
    return int(round(f)) if f is not None else None


def parse_tz_offset(text: str | None) -> timezone | None:
    """'+0100' / '-0530' → timezone; None or malformed → None."""
    if not text:
        return None
    m = re.fullmatch(r"\s*([+-])(\d{2}):?(\d{2})\s*", str(text))
    if not m:
        return None
    sign = 1 if m.group(1) == "+" else -1
    return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))


def parse_da(text) -> date | None:
    """DICOM DA 'YYYYMMDD' (also the old 'YYYY.MM.DD'); None if absent or malformed."""
    if text is None:
        return None
    s = str(text).strip().replace(".", "").replace("-", "")
    if len(s) < 8 or not s[:8].isdigit():
        return None
    try:
        return date(int(s[:4]), int(s[4:6]), int(s[6:8]))
    except ValueError:
        return None


def parse_tm(text) -> time | None:
    """DICOM TM 'HHMMSS.FFFFFF' (truncations and the old 'HH:MM:SS' accepted)."""
    if text is None:
        return None
    s = str(text).strip().replace(":", "")
    if not s:
        return None
    main, _, frac = s.partition(".")
    if not main.isdigit() or len(main) < 2:
        return None
    hh = int(main[0:2])
    mm = int(main[2:4]) if len(main) >= 4 else 0
    ss = int(main[4:6]) if len(main) >= 6 else 0
    us = int((frac + "000000")[:6]) if frac.isdigit() else 0
    try:
        return time(hh, mm, min(ss, 59), us)
    except ValueError:
        return None


def parse_dt(text) -> datetime | None:
    """DICOM DT 'YYYYMMDDHHMMSS.FFFFFF&ZZXX' (offset optional) → datetime (aware if offset)."""
    if text is None:
        return None
    s = str(text).strip()
    if len(s) < 8:
        return None
    tz = None
    m = re.search(r"([+-]\d{4})$", s)
    if m and len(s) > 8:
        tz = parse_tz_offset(m.group(1))
        s = s[: m.start()]
    d = parse_da(s[:8])
    if d is None:
        return None
    t = parse_tm(s[8:]) if len(s) > 8 else time(0, 0)
    if t is None:
        return None
    return datetime.combine(d, t, tzinfo=tz)


def normalise_radionuclide(text: str | None) -> str | None:
    """'^177^Lutetium', 'Lu-177', '177Lu', 'Lutetium-177' → 'Lu-177'; None if not recognised."""
    if not text:
        return None
    s = str(text)
    mass = re.search(r"(\d{1,3})\s*m?", s)
    metastable = bool(re.search(r"\d{1,3}\s*m\b|\d{1,3}m[A-Z^]|-\d{1,3}m\b", s))
    sym = None
    low = s.lower()
    for name, symbol in _ELEMENTS.items():
        if name in low:
            sym = symbol
            break
    if sym is None:
        for tok in re.findall(r"[A-Za-z]{1,2}", s):
            if tok.lower() in _SYMBOLS:
                sym = _SYMBOLS[tok.lower()]
                break
    if sym is None or mass is None:
        return None
    return f"{sym}-{mass.group(1)}{'m' if metastable else ''}"


def _reference_half_life_s(nuclide: str | None) -> float | None:
    if not nuclide:
        return None
    try:
        import radioactivedecay as rd  # optional, maintained nuclear data

        return float(rd.Nuclide(nuclide).half_life("s"))
    except Exception:  # noqa: BLE001 - not installed or unknown nuclide: no check
        return None


def _private_value(ds, group: int, offset: int, creator: str):
    try:
        return ds.get_private_item(group, offset, creator).value
    except (KeyError, ValueError, AttributeError):
        return None


# --------------------------------------------------------------------------------------------
# Series information
# --------------------------------------------------------------------------------------------

def _local_datetime(d: date | None, t: time | None, tz: timezone | None) -> datetime | None:
    if d is None or t is None:
        return None
    return datetime.combine(d, t, tzinfo=tz)


def _acquisition_datetime(ds, tz, manufacturer: str) -> tuple[datetime | None, str | None]:
    dt = parse_dt(_text(ds, "AcquisitionDateTime"))
    if dt is not None:
        return (dt if dt.tzinfo or tz is None else dt.replace(tzinfo=tz)), "AcquisitionDateTime (0008,002A)"
    dt = _local_datetime(parse_da(_text(ds, "AcquisitionDate")), parse_tm(_text(ds, "AcquisitionTime")), tz)
    if dt is not None:
        return dt, "AcquisitionDate/AcquisitionTime (0008,0022/0032)"
    if "GE" in manufacturer.upper():
        v = _private_value(ds, 0x0009, 0x0D, "GEMS_PETD_01")
        dt = parse_dt(v.decode(errors="ignore") if isinstance(v, bytes) else v)
        if dt is not None:
            return (dt if dt.tzinfo or tz is None else dt.replace(tzinfo=tz)), "GE private scan date-time (0009,xx0D)"
    dt = _local_datetime(parse_da(_text(ds, "SeriesDate")), parse_tm(_text(ds, "SeriesTime")), tz)
    if dt is not None:
        return dt, "SeriesDate/SeriesTime (0008,0021/0031)"
    dt = _local_datetime(parse_da(_text(ds, "StudyDate")), parse_tm(_text(ds, "StudyTime")), tz)
    if dt is not None:
        return dt, "StudyDate/StudyTime (0008,0020/0030)"
    return None, None


def _radiopharm_item(ds):
    seq = ds.get("RadiopharmaceuticalInformationSequence", None)
    if seq is not None and len(seq) > 0:
        return seq[0]
    return None


def _count_frames(ds) -> int:
    n = _int(ds, "NumberOfFrames")
    return n if n and n > 0 else 1


def series_info_from_datasets(datasets: list, files: list[Path]) -> DicomSeriesInfo:
    """Build :class:`DicomSeriesInfo` from the header datasets of one series (``files`` aligned)."""
    ds = datasets[0]
    modality = (_text(ds, "Modality") or "?").upper()
    manufacturer = _text(ds, "Manufacturer") or ""
    info = DicomSeriesInfo(
        series_instance_uid=_text(ds, "SeriesInstanceUID") or f"<no SeriesInstanceUID: {files[0]}>",
        modality=modality, files=[Path(f) for f in files],
        study_instance_uid=_text(ds, "StudyInstanceUID"), frame_of_reference_uid=_text(ds, "FrameOfReferenceUID"),
        patient_id=_text(ds, "PatientID"), series_description=_text(ds, "SeriesDescription") or "",
        manufacturer=manufacturer, model=_text(ds, "ManufacturerModelName") or "",
    )
    where = f"{files[0]}" if len(files) == 1 else f"{Path(files[0]).parent} (series {info.series_instance_uid})"
    # ---- geometry
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    nz = sum(_count_frames(d) for d in datasets)
    if rows and cols:
        info.shape_zyx = (nz, rows, cols)
    ps = ds.get("PixelSpacing", None)
    if ps is not None and len(ps) == 2:
        dz = _float(ds, "SpacingBetweenSlices") or _float(ds, "SliceThickness")
        if len(datasets) > 1:
            pos = [d.get("ImagePositionPatient", None) for d in datasets]
            if all(p is not None and len(p) == 3 for p in pos):
                z = sorted(float(p[2]) for p in pos)
                steps = np.diff(z)
                if len(steps) and np.all(steps > 0):
                    dz = float(np.median(steps))
        info.spacing_mm = (float(ps[1]), float(ps[0]), float(dz) if dz else float("nan"))
    # ---- time zone
    tz_text = _text(ds, "TimezoneOffsetFromUTC")
    tz = parse_tz_offset(tz_text)
    info.timezone_offset = tz_text
    if tz_text and tz is None:
        info.warnings.append(f"TimezoneOffsetFromUTC (0008,0201) = {tz_text!r} is malformed (expected like '+0100'); ignored")
    # ---- acquisition time (earliest over files)
    acqs = []
    for d in datasets:
        a, src = _acquisition_datetime(d, tz, manufacturer)
        if a is not None:
            acqs.append((a, src))
    if acqs:
        try:
            info.acquisition_datetime, info.acquisition_source = min(acqs, key=lambda x: x[0])
        except TypeError:  # mixed aware/naive across files
            info.acquisition_datetime, info.acquisition_source = acqs[0]
        if not info.acquisition_source.startswith(("AcquisitionDate", "GE private")):
            info.warnings.append(f"acquisition time taken from {info.acquisition_source}: AcquisitionDateTime/"
                                 "AcquisitionDate+Time are missing; this can be the reconstruction time — check it")
    if info.is_emission:
        _read_emission_tags(ds, datasets, info, tz, where)
    return info


def _read_emission_tags(ds, datasets, info: DicomSeriesInfo, tz, where: str) -> None:
    item = _radiopharm_item(ds)
    rp_src = item if item is not None else ds
    if item is None:
        info.warnings.append("RadiopharmaceuticalInformationSequence (0054,0016) is absent")
    # ---- radionuclide
    code_seq = rp_src.get("RadionuclideCodeSequence", None)
    code_meaning = None
    if code_seq is not None and len(code_seq) > 0:
        code_meaning = _text(code_seq[0], "CodeMeaning")
    nuclide_text = code_meaning or _text(rp_src, "Radionuclide") or _text(ds, "Radionuclide") \
        or _text(rp_src, "Radiopharmaceutical")
    info.radionuclide = normalise_radionuclide(nuclide_text)
    info.radiopharmaceutical = _text(rp_src, "Radiopharmaceutical")
    if info.radionuclide is None:
        info.missing.append(MissingTag("RadionuclideCodeSequence", "(0054,0300)", "radionuclide",
                                       f"radionuclide not recognised from {nuclide_text!r}" if nuclide_text else ""))
    info.half_life_s = _float(rp_src, "RadionuclideHalfLife")
    ref = _reference_half_life_s(info.radionuclide)
    if info.half_life_s is None:
        info.warnings.append("RadionuclideHalfLife (0018,1075) missing: the half-life of the manifest's radionuclide is used")
    elif ref is not None and abs(info.half_life_s / ref - 1.0) > 0.01:
        info.warnings.append(f"RadionuclideHalfLife (0018,1075) = {info.half_life_s:.0f} s differs from the reference "
                             f"{ref:.0f} s for {info.radionuclide} by more than 1 %")
    # ---- activity
    dose = _float(rp_src, "RadionuclideTotalDose")
    if dose is None or dose <= 0:
        info.missing.append(MissingTag("RadionuclideTotalDose", "(0018,1074)", "cycles[i].administered_activity_MBq",
                                       "" if dose is None else f"value {dose!r} is not positive"))
    else:
        info.administered_activity_MBq = dose / 1e6
        if dose < 1e5:
            info.warnings.append(f"RadionuclideTotalDose (0018,1074) = {dose:g} is below 0.1 MBq if in Bq as DICOM "
                                 "requires; it was probably entered in MBq — check cycles[i].administered_activity_MBq")
        elif dose > 5e10:
            info.warnings.append(f"RadionuclideTotalDose (0018,1074) = {dose / 1e6:.0f} MBq is implausibly high for therapy")
    # ---- injection time
    start_dt = parse_dt(_text(rp_src, "RadiopharmaceuticalStartDateTime"))
    start_t = parse_tm(_text(rp_src, "RadiopharmaceuticalStartTime"))
    if start_dt is not None:
        info.injection_datetime = start_dt if start_dt.tzinfo or tz is None else start_dt.replace(tzinfo=tz)
        info.injection_time_of_day = start_dt.time()
        info.injection_source = "RadiopharmaceuticalStartDateTime (0018,1078)"
    elif start_t is not None:
        info.injection_time_of_day = start_t
        d = parse_da(_text(ds, "SeriesDate")) or parse_da(_text(ds, "AcquisitionDate")) or parse_da(_text(ds, "StudyDate"))
        if d is not None:
            info.injection_datetime = datetime.combine(d, start_t, tzinfo=tz)
            info.injection_source = "RadiopharmaceuticalStartTime (0018,1072) + SeriesDate (date assumed)"
        info.missing.append(MissingTag(
            "RadiopharmaceuticalStartDateTime", "(0018,1078)", "cycles[i].injection_time",
            "only RadiopharmaceuticalStartTime (0018,1072) is present: the injection date is assumed to be the "
            "series date, wrong for scans on a later day"))
    else:
        info.missing.append(MissingTag("RadiopharmaceuticalStartDateTime", "(0018,1078)", "cycles[i].injection_time",
                                       "no injection time in the header (nor RadiopharmaceuticalStartTime (0018,1072))"))
    if info.acquisition_datetime is None:
        info.missing.append(MissingTag("AcquisitionDate/AcquisitionTime", "(0008,0022)/(0008,0032)",
                                       "cycles[i].timepoints[j].acquisition_time",
                                       "or give cycles[i].timepoints[j].hours_post_injection"))
    _update_hours(info)
    # ---- units and scaling
    info.units = _text(ds, "Units")
    info.rescale_slope = _float(ds, "RescaleSlope")
    info.rescale_intercept = _float(ds, "RescaleIntercept")
    info.decay_correction = _text(ds, "DecayCorrection")
    _read_scaling(ds, datasets, info)
    corrected = ds.get("CorrectedImage", None)
    if isinstance(corrected, str):
        corrected = [corrected]
    corrected = [str(c).upper() for c in corrected] if corrected is not None else []
    if info.decay_correction and info.decay_correction.upper() == "ADMIN" or "DECY" in corrected:
        info.warnings.append("voxel values are decay-corrected (DecayCorrection (0054,1102) = ADMIN or 'DECY' in "
                             "CorrectedImage (0028,0051)); dosimetry expects activity at acquisition time — "
                             "undo the decay correction before use")
    # ---- durations
    rot = ds.get("RotationInformationSequence", None)
    if rot is not None and len(rot) > 0:
        total, fd, nf = 0.0, None, 0
        for r in rot:
            afd = _float(r, "ActualFrameDuration")
            n = _int(r, "NumberOfFramesInRotation")
            if afd is not None and n:
                total += afd / 1000.0 * n
                fd = afd / 1000.0 if fd is None else fd
                nf += n
        if fd is not None:
            info.frame_duration_s, info.number_of_frames_in_rotation = fd, nf
            info.acquisition_duration_s = total
    if info.frame_duration_s is None:
        afd = _float(ds, "ActualFrameDuration")
        if afd is not None:
            info.frame_duration_s = afd / 1000.0
            info.acquisition_duration_s = afd / 1000.0
    info.number_of_detectors = _int(ds, "NumberOfDetectors")
    if info.spect_units is None:
        if info.units is None:
            info.missing.append(MissingTag("Units", "(0054,1001)", "cycles[i].timepoints[j].spect_units",
                                           "voxel units unknown (Bq/mL or counts)"))
        else:
            info.warnings.append(f"Units (0054,1001) = {info.units!r} cannot be used for dosimetry (need BQML or CNTS); "
                                 "set cycles[i].timepoints[j].spect_units after converting the image")
    if info.spect_units == "counts":
        if info.acquisition_duration_s is None:
            info.missing.append(MissingTag("ActualFrameDuration", "(0018,1242)", "cycles[i].timepoints[j].acquisition_duration_s",
                                           "needed to convert counts to Bq/mL"))
        info.missing.append(MissingTag("camera calibration", "(not a DICOM tag)", "cycles[i].timepoints[j].calibration_cps_per_MBq",
                                       "voxel values are counts"))


def _update_hours(info: DicomSeriesInfo) -> None:
    inj, acq = info.injection_datetime, info.acquisition_datetime
    info.hours_post_injection = None
    if inj is None or acq is None:
        return
    if (inj.tzinfo is None) != (acq.tzinfo is None):
        info.warnings.append("injection and acquisition times: one has a time-zone offset and the other not; "
                             "compared as local clock times")
        inj, acq = inj.replace(tzinfo=None), acq.replace(tzinfo=None)
    h = (acq - inj).total_seconds() / 3600.0
    info.hours_post_injection = h
    if h < 0:
        info.warnings.append(f"acquisition is {-h:.2f} h before the injection: check the dates/times "
                             "(set cycles[i].injection_time / timepoints[j].acquisition_time)")
    elif h > 24 * 30:
        info.warnings.append(f"acquisition is {h / 24:.0f} days after the injection: check the dates")


def _rwv_bqml_item(ds):
    """(slope, intercept, unit text, factor to Bq/mL) of the first Bq/mL RWVM item, or None."""
    seq = ds.get("RealWorldValueMappingSequence", None)
    if seq is None:
        return None
    for item in seq:
        ucs = item.get("MeasurementUnitsCodeSequence", None)
        unit = None
        if ucs is not None and len(ucs) > 0:
            unit = _text(ucs[0], "CodeValue") or _text(ucs[0], "CodeMeaning")
        unit = unit or _text(item, "LUTLabel")
        key = (unit or "").strip().lower().replace(" ", "")
        if key in _RWV_BQML_UNITS:
            slope = _float(item, "RealWorldValueSlope")
            icpt = _float(item, "RealWorldValueIntercept") or 0.0
            if slope is not None:
                return slope, icpt, unit, _RWV_BQML_UNITS[key]
    return None


def _read_scaling(ds, datasets, info: DicomSeriesInfo) -> None:
    units = (info.units or "").upper()
    rwv = _rwv_bqml_item(ds)
    if rwv is not None:
        info.real_world_slope, info.real_world_intercept, info.real_world_units, _ = rwv
    if units == "BQML":
        info.spect_units = "Bq/mL"
        info.scaling = "rescale slope/intercept (GDCM); Units BQML"
        if rwv is not None:
            rs, ri = info.rescale_slope or 1.0, info.rescale_intercept or 0.0
            if not (np.isclose(rwv[0] * rwv[3], rs, rtol=1e-4) and np.isclose(rwv[1] * rwv[3], ri, atol=1e-6)):
                info.warnings.append("RealWorldValueMapping (Bq/mL) disagrees with RescaleSlope/Intercept while "
                                     "Units = BQML; the Units/Rescale values are used")
        return
    if rwv is not None:
        same = all(_rwv_bqml_item(d) == rwv for d in datasets[1:])
        if len(datasets) == 1 or same:
            info.spect_units = "Bq/mL"
            info.scaling = (f"Real World Value Mapping (0040,9096): stored × {rwv[0]:.6g} + {rwv[1]:.6g} {rwv[2]}"
                            + (f" × {rwv[3]:g}" if rwv[3] != 1 else ""))
            return
        info.warnings.append("RealWorldValueMapping differs between files of the series; not applied")
    if "PHILIPS" in info.manufacturer.upper():
        f9 = _private_value(ds, 0x7053, 0x09, "Philips PET Private Group")
        f0 = _private_value(ds, 0x7053, 0x00, "Philips PET Private Group")
        try:
            f9 = float(f9.decode() if isinstance(f9, bytes) else f9) if f9 is not None else None
        except (TypeError, ValueError):
            f9 = None
        if f0 is not None:
            info.warnings.append(f"Philips SUV scale factor (7053,xx00) = {f0} present (not used)")
        if f9 is not None and f9 > 0 and units in ("CNTS", ""):
            info.private_scale_factor = f9
            info.private_scale_source = "Philips activity concentration scale factor (7053,xx09)"
            info.spect_units = "Bq/mL"
            info.scaling = f"rescale slope/intercept (GDCM) × Philips (7053,xx09) = {f9:.6g}"
            return
    if units == "CNTS":
        info.spect_units = "counts"


# --------------------------------------------------------------------------------------------
# Reading folders
# --------------------------------------------------------------------------------------------

def _looks_like_non_dicom(p: Path) -> bool:
    name = p.name.lower()
    return name.endswith(_NON_DICOM_SUFFIXES) or name.startswith(".")


def _read_headers(paths, unreadable: list[str]):
    import pydicom
    from pydicom.errors import InvalidDicomError

    out = []
    for p in paths:
        try:
            ds = pydicom.dcmread(str(p), stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError, AttributeError, KeyError, TypeError):
            unreadable.append(str(p))
            continue
        sop = _text(ds, "SOPClassUID") or (_text(ds.file_meta, "MediaStorageSOPClassUID") if hasattr(ds, "file_meta") else None)
        if sop == _DICOMDIR_SOP or "SeriesInstanceUID" not in ds:
            unreadable.append(str(p))
            continue
        out.append((Path(p), ds))
    return out


def _sort_key(item):
    p, ds = item
    pos = ds.get("ImagePositionPatient", None)
    inst = _int(ds, "InstanceNumber") or 0
    z = float(pos[2]) if pos is not None and len(pos) == 3 else 0.0
    return (z, inst, str(p))


def read_series_info(path: str | os.PathLike, series_uid: str | None = None) -> DicomSeriesInfo:
    """Header information of the DICOM series at ``path`` (a file, or a folder of one series;
    ``series_uid`` picks one of several). Raises InputDataError if none or ambiguous."""
    p = Path(path)
    if not p.exists():
        raise InputDataError(f"{p}: file or folder not found")
    unreadable: list[str] = []
    files = [p] if p.is_file() else sorted(f for f in p.iterdir() if f.is_file() and not _looks_like_non_dicom(f))
    heads = _read_headers(files, unreadable)
    groups = defaultdict(list)
    for f, ds in heads:
        groups[_text(ds, "SeriesInstanceUID")].append((f, ds))
    if series_uid is not None:
        if series_uid not in groups:
            raise InputDataError(f"{p}: series {series_uid} not found; series present: {', '.join(groups) or 'none'}")
        groups = {series_uid: groups[series_uid]}
    if not groups:
        raise InputDataError(f"{p}: no readable DICOM image files found; give an image file (NRRD, NIfTI, MHA) "
                             "or the folder that holds the DICOM files of one series")
    if len(groups) > 1:
        desc = []
        for uid, items in groups.items():
            d0 = items[0][1]
            desc.append(f"{uid} ({_text(d0, 'Modality') or '?'} '{_text(d0, 'SeriesDescription') or ''}', "
                        f"{len(items)} file(s))")
        raise InputDataError(f"{p}: {len(groups)} DICOM series found, cannot tell which one to use: " + "; ".join(desc)
                             + ". Pass series_uid, or put each series in its own folder (`lu-dosimetry inspect` "
                             "lists them).")
    items = sorted(next(iter(groups.values())), key=_sort_key)
    return series_info_from_datasets([ds for _, ds in items], [f for f, _ in items])


def read_dicom_image(path: str | os.PathLike, series_uid: str | None = None) -> DicomImage:
    """Read a DICOM series (folder or single file) with SimpleITK and apply the quantitative
    scaling described in the module docstring (RWVM or Philips private factor). Emission series
    come back as float32 in ``info.spect_units``; CT in HU as GDCM gives it."""
    import SimpleITK as sitk

    from ..io.images import _read_dicom_folder

    p = Path(path)
    info = read_series_info(p, series_uid)
    if p.is_dir():
        image, _ = _read_dicom_folder(p, info.series_instance_uid)
    else:
        try:
            image = sitk.ReadImage(str(p))
        except RuntimeError as exc:
            raise InputDataError(f"{p}: SimpleITK cannot read this DICOM file ({str(exc).strip().splitlines()[-1]})") from None
    scaling = info.scaling
    if info.is_emission:
        image = sitk.Cast(image, sitk.sitkFloat64)
        if info.real_world_slope is not None and info.spect_units == "Bq/mL" and (info.units or "").upper() != "BQML":
            rs = info.rescale_slope or 1.0
            ri = info.rescale_intercept or 0.0
            factor = _RWV_BQML_UNITS[(info.real_world_units or "bq/ml").strip().lower().replace(" ", "")]
            image = ((image - ri) / rs * info.real_world_slope + info.real_world_intercept) * factor
        elif info.private_scale_factor is not None:
            image = image * info.private_scale_factor
        image = sitk.Cast(image, sitk.sitkFloat32)
    return DicomImage(image=image, info=info, scaling=scaling)


# --------------------------------------------------------------------------------------------
# Directory inspection and grouping by injection
# --------------------------------------------------------------------------------------------

def _walk_files(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            yield Path(dirpath) / name


def _naive(d: datetime) -> datetime:
    return d.replace(tzinfo=None) if d.tzinfo is None else d.astimezone(timezone.utc).replace(tzinfo=None)


def inspect_directory(path: str | os.PathLike) -> InspectionReport:
    """List the DICOM series (and other image files) under ``path`` and what each is taken to be.

    Series are grouped by injection (patient, injection date-time or start time + dose): each
    group is a treatment cycle, numbered in date order; the emission (NM/PT) series are its time
    points in order of hours p.i., each paired with the CT of the same frame of reference (else
    same study and nearest acquisition time, within 2 h). Every missing or suspicious tag is
    listed with the manifest field that overrides it. This is ``lu-dosimetry inspect DIR``.
    """
    root = Path(path)
    if not root.exists():
        raise InputDataError(f"{root}: folder not found")
    if not root.is_dir():
        raise InputDataError(f"{root}: not a folder")
    unreadable: list[str] = []
    image_files: list[dict] = []
    candidates = []
    for f in _walk_files(root):
        name = f.name.lower()
        if name.endswith(IMAGE_FILE_SUFFIXES):
            from ..io.images import read_image_information

            try:
                info = read_image_information(f)
                image_files.append({"path": str(f), **info})
            except InputDataError as exc:
                image_files.append({"path": str(f), "error": str(exc)})
        elif not _looks_like_non_dicom(f):
            candidates.append(f)
    heads = _read_headers(candidates, unreadable)
    groups = defaultdict(list)
    for f, ds in heads:
        groups[_text(ds, "SeriesInstanceUID")].append((f, ds))
    series = []
    for uid, items in groups.items():
        items.sort(key=_sort_key)
        series.append(series_info_from_datasets([ds for _, ds in items], [f for f, _ in items]))
    series.sort(key=lambda s: (s.patient_id or "", _naive(s.acquisition_datetime) if s.acquisition_datetime else datetime.max,
                               s.modality))
    cycles, unassigned = _group_by_injection(series)
    return InspectionReport(root=root, series=series, cycles=cycles, unassigned=unassigned, image_files=image_files,
                            unreadable=unreadable)


def _injection_key(s: DicomSeriesInfo):
    dose = round(s.administered_activity_MBq, 1) if s.administered_activity_MBq else None
    if s.injection_source and s.injection_source.startswith("RadiopharmaceuticalStartDateTime"):
        return (s.patient_id, "dt", _naive(s.injection_datetime).replace(second=0, microsecond=0))
    if s.injection_time_of_day is not None:
        return (s.patient_id, "time", s.injection_time_of_day.replace(microsecond=0), dose)
    return None


def _group_by_injection(series: list[DicomSeriesInfo]):
    emission = [s for s in series if s.is_emission]
    others = [s for s in series if not s.is_emission]
    groups = defaultdict(list)
    unassigned = []
    for s in emission:
        k = _injection_key(s)
        if k is None:
            unassigned.append(s)
        else:
            groups[k].append(s)
    cycles_raw = []
    for key, members in groups.items():
        notes = []
        if key[1] == "time":
            # injection date unknown: the day of the earliest acquisition, or the day before
            acqs = [s.acquisition_datetime for s in members if s.acquisition_datetime is not None]
            if acqs:
                first = min(acqs, key=_naive)
                tod = key[2]
                d = first.date() if first.time().replace(tzinfo=None) >= tod else first.date() - timedelta(days=1)
                inj = datetime.combine(d, tod, tzinfo=first.tzinfo)
                notes.append(f"injection date inferred as {d.isoformat()} from the earliest acquisition of this "
                             "injection (only RadiopharmaceuticalStartTime in the headers); check cycles[i].injection_time")
                for s in members:
                    s.injection_datetime = inj
                    s.injection_source = "RadiopharmaceuticalStartTime (0018,1072), date inferred from earliest acquisition"
                    s.warnings = [w for w in s.warnings if "before the injection" not in w]
                    for m in s.missing:
                        if m.keyword == "RadiopharmaceuticalStartDateTime":
                            m.detail = (f"only RadiopharmaceuticalStartTime (0018,1072) is present: injection date "
                                        f"inferred as {d.isoformat()}")
                    _update_hours(s)
            else:
                inj = members[0].injection_datetime
        else:
            inj = members[0].injection_datetime
        doses = {round(s.administered_activity_MBq, 1) for s in members if s.administered_activity_MBq}
        if len(doses) > 1:
            notes.append("series of this injection give different RadionuclideTotalDose values: "
                         + ", ".join(f"{d:g} MBq" for d in sorted(doses)))
        if inj is not None and inj.tzinfo is None:
            notes.append("no time-zone information (TimezoneOffsetFromUTC (0008,0201) or DT offsets): times are local "
                         "clock time of the site; hours p.i. are right unless a daylight-saving change lies between")
        aa = members[0].administered_activity_MBq
        nucs = [s.radionuclide for s in members if s.radionuclide]
        cycles_raw.append((inj, aa, nucs[0] if nucs else None, members, notes))
    cycles_raw.sort(key=lambda c: (_naive(c[0]) if c[0] else datetime.max))
    cycles = []
    for n, (inj, aa, nuc, members, notes) in enumerate(cycles_raw, start=1):
        members.sort(key=lambda s: (s.hours_post_injection if s.hours_post_injection is not None else float("inf")))
        cyc = InspectedCycle(number=n, injection_datetime=inj, administered_activity_MBq=aa, radionuclide=nuc,
                             timepoints=[InspectedTimePoint(emission=s) for s in members], notes=notes)
        for a, b in zip(members, members[1:]):
            if (a.hours_post_injection is not None and b.hours_post_injection is not None
                    and abs(a.hours_post_injection - b.hours_post_injection) < 0.25):
                cyc.notes.append(f"two emission series at ~{a.hours_post_injection:.1f} h p.i. "
                                 f"('{a.series_description}', '{b.series_description}'): keep one time point per scan")
        cycles.append(cyc)
    # pair CTs
    used = set()
    for cyc in cycles:
        for tp in cyc.timepoints:
            tp.ct = _find_ct(tp.emission, others, used)
            if tp.ct is not None:
                used.add(tp.ct.series_instance_uid)
    unassigned += [s for s in others if s.series_instance_uid not in used]
    return cycles, unassigned


def _find_ct(em: DicomSeriesInfo, others: list[DicomSeriesInfo], used: set) -> DicomSeriesInfo | None:
    cts = [s for s in others if s.modality == "CT" and s.series_instance_uid not in used
           and (s.patient_id == em.patient_id or not s.patient_id or not em.patient_id)]
    if not cts:
        return None

    def dt_gap(s):
        if s.acquisition_datetime is None or em.acquisition_datetime is None:
            return float("inf")
        return abs((_naive(s.acquisition_datetime) - _naive(em.acquisition_datetime)).total_seconds()) / 3600.0

    same_for = [s for s in cts if em.frame_of_reference_uid and s.frame_of_reference_uid == em.frame_of_reference_uid]
    if same_for:
        return min(same_for, key=dt_gap)
    close = [s for s in cts if dt_gap(s) <= 2.0 and (s.study_instance_uid == em.study_instance_uid or dt_gap(s) <= 1.0)]
    return min(close, key=dt_gap) if close else None


def study_dict_from_dicom(path: str | os.PathLike, patient_id: str | None = None,
                          relative_to: str | os.PathLike | None = None) -> tuple[dict, list[str]]:
    """Draft study manifest (contract 1) from a DICOM folder: ``(manifest_dict, messages)``.

    ``messages`` lists every missing tag with the manifest field to fill in, plus the fields
    DICOM never holds (``segmentation``). Review before use: see :meth:`InspectionReport.to_manifest`.
    """
    report = inspect_directory(path)
    manifest = report.to_manifest(patient_id=patient_id, relative_to=relative_to)
    msgs = report.missing_messages()
    if not report.cycles:
        msgs.append("no emission (NM/PT) series with injection information found: add cycles by hand")
    msgs.append("segmentation is not in DICOM: add segmentation.file and segmentation.labels")
    return manifest, msgs
