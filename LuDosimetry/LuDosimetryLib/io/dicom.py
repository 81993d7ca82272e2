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
  × ``NumberOfFramesInRotation`` (0054,0053), summed over rotations (NM tomo) = the scan duration;
  else top-level ``ActualFrameDuration`` (PT, one bed). The number of heads (``NumberOfDetectors``
  (0054,0021) / ``DetectorInformationSequence`` (0054,0022)) gives the detector time (scan
  duration × heads); the manifest's ``calibration_time_basis`` says which one the calibration
  factor refers to (:mod:`.dicom_quant`).
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
* Decay correction: ``DecayCorrection`` (0054,1102) NONE/START used as is; ADMIN undone with
  ``DecayFactor`` (0054,1321) or the times and half-life; anything else refused.
* Classification: only reconstructed tomographic volumes are dosimetry input; projections,
  planar images and copies of one image are classified and refused (:mod:`.dicom_series`).

Time-only injections: with only ``RadiopharmaceuticalStartTime`` the date is unknown. For a
single series the ``SeriesDate`` (else AcquisitionDate/StudyDate) is used, which is wrong for
scans on a later day; :func:`inspect_directory` does better: a series of the same patient with a
full injection date-time at that clock time gives the date, else series sharing the same start
time and dose are one injection, dated on the day of its earliest acquisition (or the day
before if the start time is after that acquisition's time of day). Either way a message says
so and names the manifest field to set (``cycles[i].injection_time``).

Every missing value is recorded as a :class:`MissingTag` naming the tag and the manifest field
(contract 1 of ARCHITECTURE.md) that supplies it instead.

This module is the public face of the DICOM reading; the code lives in :mod:`.dicom_tags`
(value parsing), :mod:`.dicom_quant` (units, scaling, durations, decay correction),
:mod:`.dicom_series` (one series: header information, classification, reading) and
:mod:`.dicom_inspect` (folders, grouping, time zones, draft manifests).
"""

from __future__ import annotations

from .dicom_inspect import (
                            IMAGE_FILE_SUFFIXES,
                            InspectedCycle,
                            InspectedTimePoint,
                            InspectionReport,
                            inspect_directory,
                            resolve_naive_times,
                            study_dict_from_dicom,
                            write_draft_manifest,
)
from .dicom_inspect import _group_by_injection  # noqa: F401 - used by io.scene_rows (the Slicer Study step)
from .dicom_quant import CALIBRATION_TIME_BASES, duration_for_basis, read_scaling
from .dicom_series import (
                            EMISSION_MODALITIES,
                            PLANAR,
                            PROJECTIONS,
                            UNITS_TO_MANIFEST,
                            VOLUME,
                            DicomImage,
                            DicomSeriesInfo,
                            classify_series,
                            list_dicom_series,
                            read_dicom_image,
                            read_dicom_series,
                            read_series_info,
                            refusal_message,
                            series_info_from_datasets,
)
from .dicom_tags import (
                            PLACEHOLDER_PREFIX,
                            MissingTag,
                            find_placeholders,
                            normalise_radionuclide,
                            parse_da,
                            parse_dt,
                            parse_tm,
                            parse_tz_offset,
                            placeholder,
)

__all__ = [
    "CALIBRATION_TIME_BASES", "EMISSION_MODALITIES", "IMAGE_FILE_SUFFIXES", "PLACEHOLDER_PREFIX", "PLANAR",
    "PROJECTIONS", "UNITS_TO_MANIFEST", "VOLUME", "DicomImage", "DicomSeriesInfo", "InspectedCycle",
    "InspectedTimePoint", "InspectionReport", "MissingTag", "classify_series", "duration_for_basis",
    "find_placeholders", "inspect_directory", "list_dicom_series", "normalise_radionuclide", "parse_da", "parse_dt",
    "parse_tm", "parse_tz_offset", "placeholder", "read_dicom_image", "read_dicom_series", "read_scaling",
    "read_series_info", "refusal_message", "resolve_naive_times", "series_info_from_datasets",
    "study_dict_from_dicom", "write_draft_manifest",
]
