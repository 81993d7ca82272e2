"""One DICOM series: header information, what kind of image it is, and reading it.

:func:`read_series_info` reads the headers (pydicom, no pixel data, so no JPEG decoder is needed)
into a :class:`DicomSeriesInfo`: identity (patient, study, frame of reference), geometry, times,
activity, radionuclide, units and the quantification conventions of :mod:`.dicom_quant`.

Classification (``info.image_kind``), from ImageType (0008,0008) value 3, the SOP class and the
frame vectors: only a reconstructed tomographic volume (NM ``RECON TOMO``, PET, CT) is dosimetry
input. NM projections (``TOMO``, ``GATED TOMO``: "reconstruct first"), planar images (``STATIC``,
``WHOLE BODY``, ``DYNAMIC``, ``GATED``), gated reconstructions, secondary captures and CT
localizers are classified and given a ``refusal`` reason; so are several files holding copies of
one image (same SOPInstanceUID, or DERIVED from the same source image with the same geometry).
:func:`read_dicom_image` refuses such series with a message naming the series and the reason and
otherwise reads the pixels with SimpleITK (GDCM) and applies the scaling GDCM does not.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path

import numpy as np

from ..errors import InputDataError
from .dicom_pixel_checks import check_dicom_pixel_files
from .dicom_quant import (
    _RWV_BQML_UNITS,
    read_decay_correction,
    read_durations,
    read_scaling,
)
from .dicom_tags import (
    MissingTag,
    _float,
    _int,
    _local_datetime,
    _private_value,
    _reference_half_life_s,
    _text,
    normalise_radionuclide,
    parse_da,
    parse_dt,
    parse_tm,
    parse_tz_offset,
)

log = logging.getLogger(__name__)

_NON_DICOM_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd", ".raw", ".zraw", ".json", ".csv",
                       ".txt", ".html", ".png", ".jpg", ".pdf", ".md", ".py", ".xml")
EMISSION_MODALITIES = ("NM", "PT")
_DICOMDIR_SOP = "1.2.840.10008.1.3.10"
_SECONDARY_CAPTURE_SOP = "1.2.840.10008.5.1.4.1.1.7"
UNITS_TO_MANIFEST = {"BQML": "Bq/mL", "CNTS": "counts"}

VOLUME = "reconstructed volume"
PROJECTIONS = "projections"
PLANAR = "planar"
_NM_IMAGE_TYPES = {
    "RECON TOMO": (VOLUME, None),
    "RECON GATED TOMO": ("gated reconstruction", "gated reconstruction (ImageType RECON GATED TOMO): several gates in "
                                                  "one series; sum the gates into one volume first"),
    "TOMO": (PROJECTIONS, "projection data (ImageType TOMO): reconstruct first"),
    "GATED TOMO": (PROJECTIONS, "projection data (ImageType GATED TOMO): reconstruct first"),
    "STATIC": (PLANAR, "planar image (ImageType STATIC), not a tomographic volume"),
    "WHOLE BODY": (PLANAR, "planar whole-body image (ImageType WHOLE BODY), not a tomographic volume"),
    "DYNAMIC": (PLANAR, "planar dynamic image (ImageType DYNAMIC), not a tomographic volume"),
    "GATED": (PLANAR, "planar gated image (ImageType GATED), not a tomographic volume"),
}


@dataclass
class DicomSeriesInfo:
    """What one DICOM series says, read from its headers (no pixel data).

    Times are ``datetime`` (time-zone aware when the header gives an offset). Activity in MBq,
    durations in s, spacing in mm (x, y, z), ``shape_zyx`` in voxels. ``acquisition_duration_s``
    is the scan duration; ``number_of_heads`` the detectors that shared it (NM).
    ``image_kind``/``refusal``: what the series is, and why it cannot be dosimetry input (None
    when it can).
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
    number_of_heads: int | None = None
    heads_source: str | None = None
    duration_derivation: str | None = None
    decay_undo_factor: float | None = None
    decay_note: str | None = None
    image_kind: str = "unknown"
    image_type: str | None = None
    refusal: str | None = None
    copies: list[str] = field(default_factory=list)
    time_problem: str | None = None
    tz_problem: str | None = None

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




def _image_type(ds) -> list[str]:
    v = ds.get("ImageType", None)
    if v is None:
        return []
    if isinstance(v, str):
        v = v.split("\\")
    return [str(x).strip().upper() for x in v]


def _copies_of_one_image(datasets, files) -> list[list[int]]:
    """Groups (indices, > 1 member) of files that hold the same image: same SOPInstanceUID, or
    DERIVED from the same single source image with the same geometry and acquisition time."""
    groups = defaultdict(list)
    for k, d in enumerate(datasets):
        groups[("sop", _text(d, "SOPInstanceUID"))].append(k)
    out = [g for key, g in groups.items() if key[1] and len(g) > 1]
    seen = {k for g in out for k in g}
    derived = defaultdict(list)
    for k, d in enumerate(datasets):
        src = d.get("SourceImageSequence", None)
        if k in seen or "DERIVED" not in _image_type(d)[:1] or src is None or len(src) != 1:
            continue
        pos = d.get("ImagePositionPatient", None)
        det = d.get("DetectorInformationSequence", None)
        if pos is None and det is not None and len(det) > 0:
            pos = det[0].get("ImagePositionPatient", None)
        derived[(_text(src[0], "ReferencedSOPInstanceUID"), "\\".join(_image_type(d)), _int(d, "Rows"),
                 _int(d, "Columns"), _int(d, "NumberOfFrames") or 1,
                 tuple(str(p) for p in pos) if pos is not None else None, _text(d, "SliceLocation"),
                 _text(d, "AcquisitionTime"))].append(k)
    out += [g for key, g in derived.items() if key[0] and len(g) > 1]
    return out


def classify_series(datasets, files, info: DicomSeriesInfo) -> None:
    """Set ``info.image_kind``, ``info.image_type``, ``info.copies`` and ``info.refusal`` from the
    headers (ImageType, SOP class, frame vectors; no pixel data)."""
    ds = datasets[0]
    itype = _image_type(ds)
    info.image_type = "\\".join(itype) or None
    sop = _text(ds, "SOPClassUID") or ""
    n_frames = sum(_int(d, "NumberOfFrames") or 1 for d in datasets)
    for g in _copies_of_one_image(datasets, files):
        info.copies.append(f"{len(g)} files hold one image (" + ", ".join(Path(files[k]).name for k in g)
                           + ": same SOPInstanceUID or derived from the same source image, e.g. other transfer syntaxes)")
        if info.shape_zyx is not None:
            per_file = _int(datasets[g[0]], "NumberOfFrames") or 1
            info.shape_zyx = (info.shape_zyx[0] - (len(g) - 1) * per_file,) + tuple(info.shape_zyx[1:])
            n_frames -= (len(g) - 1) * per_file
    if info.modality == "CT":
        info.image_kind = "CT localizer" if "LOCALIZER" in itype else "CT volume"
        if "LOCALIZER" in itype:
            info.refusal = "CT localizer (scout, ImageType LOCALIZER), not a CT volume"
    elif sop.startswith(_SECONDARY_CAPTURE_SOP) and info.modality in EMISSION_MODALITIES:
        info.image_kind = "secondary capture"
        kind = next((t for t in itype[2:3] if t in _NM_IMAGE_TYPES), None)
        if kind is not None and _NM_IMAGE_TYPES[kind][0] != VOLUME:
            info.image_kind, info.refusal = _NM_IMAGE_TYPES[kind]
            info.refusal += " (stored as Secondary Capture)"
        else:
            info.refusal = "Secondary Capture (SOP class 1.2.840.10008.5.1.4.1.1.7): a picture, not quantitative"
    elif info.modality == "NM":
        value3 = itype[2] if len(itype) > 2 else None
        if value3 in _NM_IMAGE_TYPES:
            info.image_kind, info.refusal = _NM_IMAGE_TYPES[value3]
        elif "SliceVector" in ds:
            info.image_kind = VOLUME
        elif "RotationVector" in ds or "AngularViewVector" in ds:
            info.image_kind, info.refusal = PROJECTIONS, ("projection data (RotationVector/AngularViewVector, no "
                                                          "SliceVector): reconstruct first")
        elif n_frames == 1:
            info.image_kind, info.refusal = PLANAR, "a single frame (planar image), not a tomographic volume"
        else:
            info.image_kind = VOLUME
            info.warnings.append(f"ImageType (0008,0008) = {info.image_type!r} does not say whether this is a "
                                 "reconstruction; taken as a reconstructed volume")
    elif info.modality == "PT":
        info.image_kind = VOLUME
        if n_frames == 1 and len(datasets) == 1:
            info.image_kind, info.refusal = PLANAR, "a single PET slice, not a volume"
    else:
        info.image_kind = f"{info.modality} image"
    if info.copies:
        info.refusal = ((info.refusal + "; ") if info.refusal else "") + "; ".join(info.copies) + ": keep one copy per image"


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
    classify_series(datasets, files, info)
    if info.is_emission:
        _read_emission_tags(ds, datasets, info, tz, where)
    return info


def _read_emission_tags(ds, datasets, info: DicomSeriesInfo, tz, where: str) -> None:
    item = _radiopharm_item(ds)
    rp_src = item if item is not None else ds
    seq = ds.get("RadiopharmaceuticalInformationSequence", None)
    if seq is None:
        info.warnings.append("RadiopharmaceuticalInformationSequence (0054,0016) is absent")
    elif item is None:
        info.warnings.append("RadiopharmaceuticalInformationSequence (0054,0016) is present but empty (no item)")
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
    read_scaling(ds, datasets, info)
    read_durations(ds, info)
    read_decay_correction(ds, datasets, info)
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
        elif (info.number_of_heads or 1) > 1:
            info.missing.append(MissingTag(
                "calibration time basis", "(not a DICOM tag)", "cycles[i].timepoints[j].calibration_time_basis",
                f"{info.number_of_heads} heads: 'scan_duration' ({info.acquisition_duration_s:g} s) or 'detector_time' "
                f"({info.acquisition_duration_s * info.number_of_heads:g} s), as for the calibration factor"))
        info.missing.append(MissingTag("camera calibration", "(not a DICOM tag)", "cycles[i].timepoints[j].calibration_cps_per_MBq",
                                       "voxel values are counts"))


def _update_hours(info: DicomSeriesInfo) -> None:
    """Hours p.i. from the injection and acquisition date-times; ``info.time_problem`` when the
    acquisition is not after the injection (e.g. a pseudo-PET export that copies one into the other)."""
    if info.time_problem:
        info.warnings = [w for w in info.warnings if w != info.time_problem]
    info.time_problem = None
    inj, acq = info.injection_datetime, info.acquisition_datetime
    info.hours_post_injection = None
    if inj is None or acq is None:
        return
    if (inj.tzinfo is None) != (acq.tzinfo is None):
        note = ("injection and acquisition times: one has a time-zone offset and the other not; "
                "compared as local clock times")
        if note not in info.warnings:
            info.warnings.append(note)
        inj, acq = inj.replace(tzinfo=None), acq.replace(tzinfo=None)
    h = (acq - inj).total_seconds() / 3600.0
    info.hours_post_injection = h
    if h <= 0:
        what = "equals" if h == 0 else f"is {-h:.2f} h after"
        info.time_problem = (f"injection time ({info.injection_source or 'injection'}: {inj.isoformat()}) {what} the "
                             f"acquisition time ({info.acquisition_source or 'acquisition'}: {acq.isoformat()}) — e.g. a "
                             "pseudo-PET export; set cycles[i].injection_time")
        info.warnings.append(info.time_problem)
    elif h > 24 * 30:
        info.warnings.append(f"acquisition is {h / 24:.0f} days after the injection: check the dates")




# --------------------------------------------------------------------------------------------
# Reading files and folders
# --------------------------------------------------------------------------------------------

def _looks_like_non_dicom(p: Path) -> bool:
    name = p.name.lower()
    return name.endswith(_NON_DICOM_SUFFIXES) or name.startswith(".")


def _read_headers(paths, unreadable: list[str]):
    import pydicom

    out = []
    for p in paths:
        try:
            ds = pydicom.dcmread(str(p), stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - any file pydicom cannot parse is listed as unreadable, never a traceback
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
    try:
        z = float(pos[2]) if pos is not None and len(pos) == 3 else 0.0
    except (TypeError, ValueError):
        z = 0.0
    return (z, inst, str(p))


def group_series(heads) -> dict:
    """``{SeriesInstanceUID: [(file, dataset), ...]}`` with files in slice order."""
    groups = defaultdict(list)
    for f, ds in heads:
        groups[_text(ds, "SeriesInstanceUID")].append((f, ds))
    for items in groups.values():
        items.sort(key=_sort_key)
    return groups


def read_series_info(path: str | os.PathLike, series_uid: str | None = None) -> DicomSeriesInfo:
    """Header information of the DICOM series at ``path`` (a file, or a folder of one series;
    ``series_uid`` picks one of several). Raises InputDataError if none or ambiguous."""
    p = Path(path)
    if not p.exists():
        raise InputDataError(f"{p}: file or folder not found")
    unreadable: list[str] = []
    files = [p] if p.is_file() else sorted(f for f in p.iterdir() if f.is_file() and not _looks_like_non_dicom(f))
    groups = group_series(_read_headers(files, unreadable))
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
    items = next(iter(groups.values()))
    return series_info_from_datasets([ds for _, ds in items], [f for f, _ in items])


def list_dicom_series(folder: str | os.PathLike) -> list[tuple[str, list[str]]]:
    """``[(series_instance_uid, [file, ...]), ...]`` of the DICOM series directly in ``folder``
    (GDCM's grouping; files are sorted by slice position)."""
    import SimpleITK as sitk

    folder = str(folder)
    uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder) or ()
    return [(uid, list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, uid))) for uid in uids]


def _itk_message(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else repr(exc)


def read_dicom_series(folder: str | os.PathLike, series_uid: str | None = None):
    """``(sitk image, files)`` of the DICOM series in ``folder`` read by SimpleITK (GDCM applies
    Rescale Slope/Intercept). Raises :class:`InputDataError` (never an ITK traceback)."""
    import SimpleITK as sitk

    folder = Path(folder)
    series = list_dicom_series(folder)
    if not series:
        raise InputDataError(f"{folder}: no DICOM series found in this folder (and it is not an image file). "
                             "Give an image file (NRRD/NIfTI/MHA) or the folder that holds the DICOM files.")
    if series_uid is not None:
        chosen = [s for s in series if s[0] == series_uid]
        if not chosen:
            raise InputDataError(f"{folder}: series {series_uid} not found; series present: "
                                 + ", ".join(uid for uid, _ in series))
    elif len(series) > 1:
        desc = [f"{uid} ({len(files)} file(s), e.g. {Path(files[0]).name})" for uid, files in series]
        raise InputDataError(f"{folder}: {len(series)} DICOM series found, cannot tell which one to use: "
                             + "; ".join(desc) + ". Pass series_uid, or put each series in its own folder "
                             "(`lu-dosimetry inspect` lists them).")
    else:
        chosen = series
    files = chosen[0][1]
    check_dicom_pixel_files(files)  # RescaleSlope, frames/bits vs PixelData, size limit (issue 13)
    try:
        if len(files) == 1:
            image = sitk.ReadImage(files[0])
        else:
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(files)
            image = reader.Execute()
    except RuntimeError as exc:
        raise InputDataError(f"{folder}: SimpleITK cannot read DICOM series {chosen[0][0]} ({_itk_message(exc)})") from None
    return image, files


def refusal_message(path, info: DicomSeriesInfo) -> str:
    """'PATH: series UID (NM 'desc', projections) cannot be used for dosimetry: REASON'."""
    desc = f" '{info.series_description}'" if info.series_description else ""
    return (f"{path}: series {info.series_instance_uid} ({info.modality}{desc}, {info.image_kind}) cannot be used for "
            f"dosimetry: {info.refusal}")


def read_dicom_image(path: str | os.PathLike, series_uid: str | None = None) -> DicomImage:
    """Read a DICOM series (folder or single file) with SimpleITK and apply the quantitative
    scaling GDCM does not (RWVM or Philips private factor, see :mod:`.dicom_quant`) and the undoing
    of an ADMIN decay correction. Emission series come back as float32 in ``info.spect_units``;
    CT in HU as GDCM gives it. A series with a ``refusal`` (projections, planar, copies, ...) raises
    :class:`InputDataError` naming the series and the reason."""
    import SimpleITK as sitk

    p = Path(path)
    info = read_series_info(p, series_uid)
    if info.refusal:
        raise InputDataError(refusal_message(p, info))
    if p.is_dir():
        image, _ = read_dicom_series(p, info.series_instance_uid)
    else:
        check_dicom_pixel_files([p])  # RescaleSlope, frames/bits vs PixelData, size limit (issue 13)
        try:
            image = sitk.ReadImage(str(p))
        except RuntimeError as exc:
            raise InputDataError(f"{p}: SimpleITK cannot read this DICOM file ({_itk_message(exc)})") from None
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
        if info.decay_undo_factor is not None:
            image = image * info.decay_undo_factor  # info.scaling says so
        image = sitk.Cast(image, sitk.sitkFloat32)
    return DicomImage(image=image, info=info, scaling=scaling)
