"""The synthetic patient of :mod:`phantom` as DICOM, the way a clinic hands a study over.

:func:`write_phantom_dicom` writes, per cycle and time point, one SPECT/CT visit:

* an NM tomographic reconstruction, one multi-frame file (NM Image Storage, as Siemens and GE
  cameras export it): Units ``BQML`` (or ``CNTS`` for ``spect_units="counts"``), 16-bit stored
  values with ``RescaleSlope``, the Radiopharmaceutical Information Sequence (start date-time,
  total dose in Bq, half-life, radionuclide code ``^177^Lutetium``), AcquisitionDate/Time,
  TimezoneOffsetFromUTC and the frame duration (RotationInformationSequence);
* a CT series, one file per slice, HU through ``RescaleIntercept`` -1024;

both in one DICOM study and frame of reference per visit, one PatientID for all. Geometry
(origin, spacing, slice positions, identity orientation) equals the NIfTI phantom written by
:func:`phantom.write_phantom_study` with the same config, and the images are the same arrays
(:func:`phantom.iter_scans`). Stored SPECT values: when the image is a multiple of one step
(noise-equivalent counts, as the phantom's forward model makes it) that step is the rescale
slope and the values are kept to float32 precision; otherwise the slope is max/65535
(quantisation at most half a slope).

Segmentation and recovery coefficients are not DICOM: ``segmentation.nii.gz`` (cycle-1 24 h
geometry) and ``study_dicom.json`` (the manifest drafted from the headers by
:func:`dicom.study_dict_from_dicom`, completed with segmentation and recovery coefficients) are
written next to the DICOM folder, so ``lu-dosimetry run OUT/study_dicom.json`` works as is.
UIDs are derived from the config (patient, seed, cycle, hour), so the output is deterministic.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from .phantom import (PhantomConfig, _origin_mm, ground_truth, iter_scans, new_output_folder, phantom_image,
                      recovery_coefficient_table, segmentation_labelmap, voi_labels)
from ..physics.radionuclides import get_nuclide

NM_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.20"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
DICOM_FOLDER = "dicom"
MANIFEST_NAME = "study_dicom.json"
_UNITS = {"Bq/mL": "BQML", "counts": "CNTS"}
_ELEMENT_NAMES = {"Lu": "Lutetium", "Y": "Yttrium", "Tb": "Terbium", "I": "Iodine", "Ho": "Holmium"}
_NUCLIDE_CODES = {"Lu-177": ("C-145A8", "SRT")}  # DICOM CID 4020 radionuclide code
_FRAMES_PER_HEAD = 60
_N_DETECTORS = 2
_CT_OFFSET = 1024  # stored CT value = HU + 1024, RescaleIntercept -1024

_README = """\
Synthetic [177Lu]Lu-DOTATATE patient {patient_id} as DICOM (LuDosimetry phantom, seed {seed}).

{dicom}/  one folder per series: cycle<c>_<hhh>h_NM (SPECT reconstruction, one multi-frame NM
        file, Units {units}) and cycle<c>_<hhh>h_CT (one file per slice). Injection date-time,
        administered activity (Bq), half-life and radionuclide are in the Radiopharmaceutical
        Information Sequence of every NM file; SPECT and CT of one visit share Study and Frame
        of Reference UIDs.

NOT in DICOM, add them to the study manifest yourself when you use these files elsewhere:
  - the segmentation: segmentation.nii.gz (labelmap in the cycle-1 {ref:g} h geometry) and its
    labels (segmentation.file / segmentation.labels);
  - the recovery coefficients of the SPECT resolution (recovery_coefficients);{counts_note}

study_dicom.json   the manifest drafted from the DICOM headers (`lu-dosimetry inspect {dicom}`
                   lists what was read) and completed with the above: run it as is with
                   `lu-dosimetry run study_dicom.json --out RESULTS`.
ground_truth.json  analytic absorbed doses per VOI and cycle (not computed by the pipeline).
"""


def _ds(value: float) -> str:
    """A DS string of at most 16 characters (12 significant digits: -304.8 + 3 x 4.8 gives '-290.4')."""
    from pydicom.valuerep import format_number_as_ds

    return format_number_as_ds(float(f"{float(value):.12g}"))


def _uid(cfg: PhantomConfig, *parts) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["LuDosimetry phantom", cfg.patient_id, str(cfg.seed), *map(str, parts)])


def _tm(d: datetime) -> str:
    return d.strftime("%H%M%S.%f")


def _dt(d: datetime) -> str:
    return d.strftime("%Y%m%d%H%M%S.%f") + d.strftime("%z")


def _tz(d: datetime) -> str | None:
    return d.strftime("%z") or None


def nuclide_code_meaning(name: str) -> str:
    """'Lu-177' → '^177^Lutetium' (the CodeMeaning of RadionuclideCodeSequence)."""
    m = re.fullmatch(r"([A-Z][a-z]?)-(\d+m?)", name)
    if not m:
        raise ValueError(f"cannot write radionuclide {name!r} as a DICOM code")
    return f"^{m.group(2)}^{_ELEMENT_NAMES.get(m.group(1), m.group(1))}"


def rescale_slope(values: np.ndarray, max_stored: int = 65535) -> float:
    """Rescale slope to store non-negative ``values`` as integers 0..``max_stored``.

    When every value is an integer multiple of the smallest positive value (to float32
    precision) that step is used, so the stored image is exact; else ``max / max_stored``.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size and v.min() < 0:
        raise ValueError("SPECT values must be non-negative to be stored as NM pixel data")
    vmax = float(v.max()) if v.size else 0.0
    if vmax <= 0:
        return 1.0
    step = float(_ds(v[v > 0].min()))
    n = np.rint(v / step)
    if n.max() <= max_stored and np.allclose(n * step, v, rtol=1e-6, atol=0.0):
        return step
    slope = float(_ds(vmax / max_stored))
    return slope if vmax / slope <= max_stored + 0.5 else float(_ds(vmax / max_stored * (1 + 1e-9)))


def _file_meta(sop_class: str, sop_instance: str):
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
    meta.ImplementationVersionName = "LUDOSIMETRY"
    return meta


def _save(ds, path: Path) -> None:
    try:
        ds.save_as(str(path), enforce_file_format=True)  # pydicom >= 3
    except TypeError:  # pragma: no cover - pydicom 2.4
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(str(path), write_like_original=False)


def _common(cfg: PhantomConfig, modality: str, sop_class: str, sop_instance: str, visit: dict, series_uid: str,
            series_number: int, description: str, acquired: datetime):
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.file_meta = _file_meta(sop_class, sop_instance)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_instance
    ds.Modality = modality
    ds.Manufacturer = "LuDosimetry synthetic patient"
    ds.ManufacturerModelName = "phantom.py"
    ds.PatientName = f"SYNTHETIC^{cfg.patient_id}"
    ds.PatientID = cfg.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = visit["study_uid"]
    ds.StudyID = visit["study_id"]
    ds.StudyDescription = "177Lu-DOTATATE SPECT/CT dosimetry"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyDate, ds.StudyTime = visit["start"].strftime("%Y%m%d"), _tm(visit["start"])
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.SeriesDate, ds.SeriesTime = acquired.strftime("%Y%m%d"), _tm(acquired)
    ds.AcquisitionDate, ds.AcquisitionTime = acquired.strftime("%Y%m%d"), _tm(acquired)
    ds.ContentDate, ds.ContentTime = acquired.strftime("%Y%m%d"), _tm(acquired)
    tz = _tz(acquired)
    if tz:
        ds.TimezoneOffsetFromUTC = tz
    ds.FrameOfReferenceUID = visit["for_uid"]
    ds.PositionReferenceIndicator = ""
    ds.PatientPosition = "FFS"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    return ds


def _radiopharmaceutical(cfg: PhantomConfig, injection: datetime, activity_MBq: float):
    from pydicom.dataset import Dataset

    nuc = get_nuclide(cfg.radionuclide)
    item = Dataset()
    item.Radiopharmaceutical = f"{nuc.name} DOTATATE"
    item.RadiopharmaceuticalStartTime = _tm(injection)
    item.RadiopharmaceuticalStartDateTime = _dt(injection)
    item.RadionuclideTotalDose = _ds(activity_MBq * 1e6)
    item.RadionuclideHalfLife = _ds(nuc.half_life_h * 3600.0)
    code = Dataset()
    value, scheme = _NUCLIDE_CODES.get(nuc.name, (nuc.name, "99LUDOS"))
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, nuclide_code_meaning(nuc.name)
    item.RadionuclideCodeSequence = [code]
    return item


def _write_nm(path: Path, cfg: PhantomConfig, scan, visit: dict, activity_MBq: float) -> None:
    from pydicom.dataset import Dataset
    from pydicom.tag import Tag

    ds = _common(cfg, "NM", NM_IMAGE_STORAGE, _uid(cfg, scan.cycle, scan.hours, "NM", "instance"), visit,
                 _uid(cfg, scan.cycle, scan.hours, "NM"), 2, f"SPECT Lu177 quantitative {scan.hours:g} h",
                 scan.acquisition_time)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    ds.InstanceNumber = 1
    nz, ny, nx = scan.spect.shape
    s = cfg.spacing_mm
    ds.Rows, ds.Columns, ds.NumberOfFrames = ny, nx, nz
    ds.PixelSpacing = [_ds(s), _ds(s)]
    ds.SliceThickness = ds.SpacingBetweenSlices = _ds(s)
    ds.FrameIncrementPointer = Tag(0x0054, 0x0080)  # SliceVector
    ds.SliceVector = list(range(1, nz + 1))
    ds.NumberOfSlices = nz
    det = Dataset()
    det.ImagePositionPatient = [_ds(v) for v in _origin_mm(cfg)]
    det.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.DetectorInformationSequence = [det]
    ds.NumberOfDetectors = _N_DETECTORS
    rot = Dataset()
    rot.ActualFrameDuration = int(round(cfg.acquisition_duration_s * 1000.0 / _FRAMES_PER_HEAD))  # ms
    rot.NumberOfFramesInRotation = _FRAMES_PER_HEAD
    ds.NumberOfRotations = 1
    ds.RotationInformationSequence = [rot]
    window = Dataset()
    rng = Dataset()
    rng.EnergyWindowLowerLimit, rng.EnergyWindowUpperLimit = "187.2", "228.8"
    window.EnergyWindowRangeSequence = [rng]
    window.EnergyWindowName = "Lu177 208 keV"
    ds.EnergyWindowInformationSequence = [window]
    ds.NumberOfEnergyWindows = 1
    ds.RadiopharmaceuticalInformationSequence = [_radiopharmaceutical(cfg, scan.injection_time, activity_MBq)]
    ds.Units = _UNITS[cfg.spect_units]
    ds.DecayCorrection = "START"  # activity at acquisition start, not decay-corrected to the injection
    ds.CorrectedImage = ["ATTN", "SCAT", "DTIM"]
    slope = rescale_slope(scan.spect)
    ds.RescaleSlope, ds.RescaleIntercept = _ds(slope), "0"
    stored = np.clip(np.rint(scan.spect.astype(np.float64) / slope), 0, 65535).astype("<u2")
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    _save(ds, path)


def _write_ct(folder: Path, cfg: PhantomConfig, scan, visit: dict) -> None:
    acquired = scan.acquisition_time + timedelta(seconds=cfg.acquisition_duration_s)  # CT right after the SPECT
    series_uid = _uid(cfg, scan.cycle, scan.hours, "CT")
    origin = _origin_mm(cfg)
    s = cfg.spacing_mm
    stored = (scan.ct.astype(np.int32) + _CT_OFFSET)
    if stored.min() < 0 or stored.max() > 4095:
        raise ValueError("CT values must lie in [-1024, 3071] HU")
    stored = stored.astype("<u2")
    for k in range(stored.shape[0]):
        ds = _common(cfg, "CT", CT_IMAGE_STORAGE, _uid(cfg, scan.cycle, scan.hours, "CT", k), visit, series_uid, 1,
                     "CT low dose attenuation correction", acquired)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceNumber = k + 1
        ds.KVP = "120"
        z = origin[2] + k * s
        ds.ImagePositionPatient = [_ds(origin[0]), _ds(origin[1]), _ds(z)]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.SliceLocation = _ds(z)
        ds.SliceThickness = _ds(s)
        ds.PixelSpacing = [_ds(s), _ds(s)]
        ds.Rows, ds.Columns = stored.shape[1], stored.shape[2]
        ds.BitsStored, ds.HighBit = 12, 11
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = str(-_CT_OFFSET), "1", "HU"
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        _save(ds, folder / f"CT{k + 1:04d}.dcm")


def write_phantom_dicom(out_dir, config: PhantomConfig | None = None, progress=None) -> Path:
    """Write the synthetic patient as DICOM series folders (see the module docstring).

    ``OUT/dicom/cycle<c>_<hhh>h_NM/`` and ``..._CT/`` per scan, ``segmentation.nii.gz``,
    ``ground_truth.json``, ``README.txt`` and ``study_dicom.json`` (a complete manifest, paths
    relative to ``OUT``). Returns the path of ``study_dicom.json``.

    ``config.spect_units`` must be ``"Bq/mL"`` (Units BQML) or ``"counts"`` (Units CNTS; the
    camera calibration, which is not DICOM, is then added to the manifest). The folder is written
    completely or not at all (built in a temporary folder, then renamed); an existing non-empty
    ``out_dir`` is refused. ``progress(fraction, message)``: optional, called for every scan.
    """
    from ..io.dicom import study_dict_from_dicom
    from ..progress import report_progress
    from ..io.study import study_from_dict

    cfg = config or PhantomConfig()
    if cfg.spect_units not in _UNITS:
        raise ValueError(f"write_phantom_dicom: spect_units must be one of {', '.join(_UNITS)} (DICOM has no "
                         f"absorbed-dose-rate unit), got {cfg.spect_units!r}")
    out = Path(out_dir)
    with new_output_folder(out, prefix=".phantom-dicom-") as tmp:
        report_progress(progress, 0.0, "synthetic patient (DICOM): ground truth and activity plan")
        truth = ground_truth(cfg)
        root = tmp / DICOM_FOLDER
        n_scans = cfg.n_cycles * len(cfg.hours)
        for k, scan in enumerate(iter_scans(cfg, truth)):
            report_progress(progress, 0.02 + 0.93 * (k + 1) / n_scans, f"synthetic patient (DICOM): scan {k + 1}/"
                            f"{n_scans} (cycle {scan.cycle}, {scan.hours:g} h p.i.) simulated")
            name = f"cycle{scan.cycle}_{int(round(scan.hours)):03d}h"
            visit = {"study_uid": _uid(cfg, scan.cycle, scan.hours, "study"),
                     "for_uid": _uid(cfg, scan.cycle, scan.hours, "frame of reference"),
                     "study_id": name, "start": scan.acquisition_time}
            (root / f"{name}_NM").mkdir(parents=True)
            (root / f"{name}_CT").mkdir()
            activity_MBq = round(truth["administered_activity_MBq"][scan.cycle - 1], 1)  # as in study.json
            _write_nm(root / f"{name}_NM" / "NM000001.dcm", cfg, scan, visit, activity_MBq)
            _write_ct(root / f"{name}_CT", cfg, scan, visit)
        import SimpleITK as sitk

        sitk.WriteImage(phantom_image(segmentation_labelmap(cfg), cfg), str(tmp / "segmentation.nii.gz"), True)
        (tmp / "ground_truth.json").write_text(json.dumps(truth, indent=2), encoding="utf-8")
        manifest, _ = study_dict_from_dicom(root, relative_to=tmp)
        if cfg.spect_units == "counts":
            for cyc in manifest["cycles"]:
                for tp in cyc["timepoints"]:
                    tp["calibration_cps_per_MBq"] = cfg.calibration_cps_per_MBq
                    tp["calibration_time_basis"] = "scan_duration"  # the phantom's factor is per scan duration
        manifest["segmentation"] = {"file": "segmentation.nii.gz", "labels": voi_labels(cfg)}
        manifest["recovery_coefficients"] = recovery_coefficient_table(cfg)
        study_from_dict(manifest, tmp)  # the folder must run as is: raises ManifestError otherwise
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        counts_note = ("\n  - the camera calibration (calibration_cps_per_MBq per time point): Units are CNTS."
                       if cfg.spect_units == "counts" else "")
        (tmp / "README.txt").write_text(_README.format(
            patient_id=cfg.patient_id, seed=cfg.seed, dicom=DICOM_FOLDER, units=_UNITS[cfg.spect_units],
            ref=cfg.reference_hours, counts_note=counts_note), encoding="utf-8")
    report_progress(progress, 1.0, f"synthetic patient (DICOM) written: {out}")
    return out / MANIFEST_NAME
