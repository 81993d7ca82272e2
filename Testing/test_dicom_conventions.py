"""DICOM quantification conventions made explicit (issue 11), each on DICOM written here with
pydicom and each asserting the exact value read:

* dual-head counts (RotationInformationSequence + NumberOfDetectors/DetectorInformationSequence):
  the derivation, the refusal without ``calibration_time_basis``, and activity vs a hand
  calculation from the headers;
* decay correction: START used as is, ADMIN undone (DecayFactor, or times and half-life), other
  values refused;
* pseudo-PET times (injection = acquisition) refused naming tag and series;
* mixed vendors and time zones (naive times resolved from another series of the same date,
  ambiguity on a daylight-saving day), injection agreement within 1 min;
* two patients in one folder / one manifest; draft-manifest placeholders refused by name.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from LuDosimetryLib import cli
from LuDosimetryLib.errors import InputDataError, ManifestError
from LuDosimetryLib.io import dicom
from LuDosimetryLib.io.study import load_study
from LuDosimetryLib.io.study_images import load_study_images
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from test_dicom import (
    LU177_HALF_LIFE_S,
    NM_SOP,
    PT_SOP,
    _base,
    _radiopharm,
    _save,
    write_ct,
)

CET = timezone(timedelta(hours=1))
CEST = timezone(timedelta(hours=2))
SHAPE = (6, 8, 10)  # z, y, x
SPACING = 4.0       # mm


def write_recon(path: Path, *, acquisition: datetime, injection: datetime | None, patient="P001", units="CNTS",
                heads=2, detector_items=1, frames=60, frame_ms=25000, rotations=1, image_type="RECON TOMO",
                timezone_tag=None, with_datetime=True, decay_correction="START", decay_factor=None, corrected=None,
                slope=1.0, stored=None, vendor="SIEMENS NM", study_uid=None, for_uid=None, dose_bq=7.4e9,
                description="SPECT") -> Path:
    """A multi-frame NM reconstruction as Siemens/GE write it (one file)."""
    ds = _base(NM_SOP, "NM", patient=patient, study_uid=study_uid, for_uid=for_uid)
    ds.Manufacturer, ds.SeriesInstanceUID, ds.SeriesDescription = vendor, generate_uid(), description
    ds.ImageType = ["ORIGINAL", "PRIMARY", image_type, "EMISSION"]
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = acquisition.strftime("%Y%m%d")
    ds.SeriesTime = ds.AcquisitionTime = acquisition.strftime("%H%M%S")
    if timezone_tag:
        ds.TimezoneOffsetFromUTC = timezone_tag
    nz, ny, nx = SHAPE
    ds.Rows, ds.Columns, ds.NumberOfFrames = ny, nx, nz
    ds.PixelSpacing = [SPACING, SPACING]
    ds.SliceThickness = ds.SpacingBetweenSlices = SPACING
    ds.FrameIncrementPointer = pydicom.tag.Tag(0x0054, 0x0080)
    ds.SliceVector = list(range(1, nz + 1))
    ds.NumberOfSlices = nz
    items = []
    for _ in range(detector_items):
        det = Dataset()
        det.ImagePositionPatient = [0.0, 0.0, 0.0]
        det.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        items.append(det)
    ds.DetectorInformationSequence = items
    if heads is not None:
        ds.NumberOfDetectors = heads
    rots = []
    for _ in range(rotations):
        rot = Dataset()
        rot.ActualFrameDuration, rot.NumberOfFramesInRotation = frame_ms, frames
        rots.append(rot)
    ds.RotationInformationSequence = rots
    ds.NumberOfRotations = rotations
    ds.Units = units
    if decay_correction:
        ds.DecayCorrection = decay_correction
    if decay_factor is not None:
        ds.DecayFactor = f"{decay_factor:.10g}"
    if corrected:
        ds.CorrectedImage = corrected
    ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.12g}", 0
    ds.RadiopharmaceuticalInformationSequence = [_radiopharm(injection, dose_bq, with_datetime=with_datetime)]
    if stored is None:
        stored = (np.arange(np.prod(SHAPE)).reshape(SHAPE) % 97 + 3).astype(np.uint16)
    ds.PixelData = np.ascontiguousarray(stored.astype(np.uint16)).tobytes()
    _save(ds, path)
    return path


def write_pt_series(folder: Path, *, acquisition: datetime, injection: datetime, patient="P001", frame_ms=900000,
                    study_uid=None, for_uid=None, slope=2.0, with_offset_suffix=True) -> Path:
    """A single-frame PET series (one file per slice), times as DT with offsets and no TimezoneOffsetFromUTC."""
    series = generate_uid()
    nz, ny, nx = SHAPE
    for k in range(nz):
        ds = _base(PT_SOP, "PT", patient=patient, study_uid=study_uid, for_uid=for_uid)
        ds.Manufacturer, ds.SeriesInstanceUID, ds.SeriesDescription = "GE MEDICAL SYSTEMS", series, "pseudo PET"
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        suffix = acquisition.strftime("%z") if with_offset_suffix else ""
        ds.AcquisitionDateTime = acquisition.strftime("%Y%m%d%H%M%S") + suffix
        ds.SeriesDate = acquisition.strftime("%Y%m%d")
        ds.SeriesTime = acquisition.strftime("%H%M%S")
        ds.Rows, ds.Columns = ny, nx
        ds.PixelSpacing = [SPACING, SPACING]
        ds.SliceThickness = SPACING
        ds.ImagePositionPatient = [0.0, 0.0, SPACING * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.InstanceNumber = k + 1
        ds.Units, ds.DecayCorrection = "BQML", "START"
        ds.ActualFrameDuration, ds.FrameReferenceTime = frame_ms, frame_ms / 2
        ds.RescaleSlope, ds.RescaleIntercept = slope, 0
        ds.RadiopharmaceuticalInformationSequence = [_radiopharm(injection, 7.4e9)]
        ds.PixelData = np.full((ny, nx), 10 + k, dtype=np.uint16).tobytes()
        _save(ds, folder / f"pt_{k:03d}.dcm")
    return folder


def _manifest(tmp_path: Path, timepoints: list[dict], **extra) -> Path:
    seg = sitk.Image(SHAPE[2], SHAPE[1], SHAPE[0], sitk.sitkUInt8)
    seg.SetSpacing((SPACING,) * 3)
    seg[2:6, 2:6, 1:4] = 1
    sitk.WriteImage(seg, str(tmp_path / "seg.nrrd"))
    d = {"patient_id": "P001", "cycles": [{"cycle": 1, "timepoints": timepoints}],
         "segmentation": {"file": "seg.nrrd", "labels": {"1": {"name": "t1", "kind": "tumor"}}}, **extra}
    path = tmp_path / f"study_{len(list(tmp_path.glob('study_*.json')))}.json"
    path.write_text(json.dumps(d))
    return path


def _problems(path: Path) -> dict:
    with pytest.raises(ManifestError) as e:
        load_study(path)
    return dict(e.value.problems)


INJ = datetime(2025, 1, 6, 9, 0, tzinfo=CET)


# --------------------------------------------------------------------------------------------
# 1. Counts: duration derivation and calibration_time_basis
# --------------------------------------------------------------------------------------------

def test_dual_head_counts_derivation_and_basis(tmp_path):
    acq = INJ + timedelta(hours=24)
    f = write_recon(tmp_path / "nm.dcm", acquisition=acq, injection=INJ, timezone_tag="+0100", heads=2, frames=60,
                    frame_ms=25000, rotations=2)
    info = dicom.read_series_info(f)
    assert info.image_kind == dicom.VOLUME and info.refusal is None
    assert info.acquisition_duration_s == 3000.0  # 2 rotations × 60 frames × 25 s
    assert info.number_of_heads == 2 and "NumberOfDetectors (0054,0021) = 2" in info.heads_source
    assert info.duration_derivation.startswith("NumberOfFramesInRotation (0054,0053) × ActualFrameDuration (0018,1242)")
    assert "60 × 25 s + 60 × 25 s = 3000 s scan duration" in info.duration_derivation
    assert info.duration_derivation.endswith("detector time 6000 s")
    assert dicom.duration_for_basis(info, "scan_duration") == 3000.0
    assert dicom.duration_for_basis(info, "detector_time") == 6000.0
    # inspect prints the derivation of every counts series
    text = dicom.inspect_directory(tmp_path).to_text()
    assert "duration: NumberOfFramesInRotation (0054,0053)" in text and "detector time 6000 s" in text
    # no basis stated: run stops before any computation, naming both options and durations
    tp = {"spect": "nm.dcm", "calibration_cps_per_MBq": 10.0}
    probs = _problems(_manifest(tmp_path, [tp]))
    msg = probs["cycles[0].timepoints[0].calibration_time_basis"]
    assert "'scan_duration' (3000 s)" in msg and "'detector_time' (scan duration × 2 heads = 6000 s)" in msg
    assert str(f) in msg
    # a stated basis, or a duration given in the manifest, works
    s = load_study(_manifest(tmp_path, [{**tp, "calibration_time_basis": "detector_time"}]))
    assert s.cycles[0].timepoints[0].acquisition_duration_s == 6000.0
    assert s.cycles[0].timepoints[0].calibration_time_basis == "detector_time"
    s = load_study(_manifest(tmp_path, [{**tp, "acquisition_duration_s": 1500.0}]))
    assert s.cycles[0].timepoints[0].acquisition_duration_s == 1500.0
    probs = _problems(_manifest(tmp_path, [{**tp, "calibration_time_basis": "per_head"}]))
    assert "must be one of scan_duration, detector_time" in probs["cycles[0].timepoints[0].calibration_time_basis"]


def test_heads_from_detector_information_sequence(tmp_path):
    f = write_recon(tmp_path / "nm.dcm", acquisition=INJ + timedelta(hours=4), injection=INJ, heads=None,
                    detector_items=2, frames=32, frame_ms=20000)
    info = dicom.read_series_info(f)
    assert info.acquisition_duration_s == 640.0 and info.number_of_heads == 2
    assert info.heads_source == "2 item(s) in DetectorInformationSequence (0054,0022)"


def test_dual_head_counts_activity_matches_hand_calculation(tmp_path):
    """Activity from counts with a stated basis within 0.5 % of the hand calculation from the headers."""
    acq = INJ + timedelta(hours=24)
    stored = np.zeros(SHAPE, dtype=np.uint16)
    stored[1:4, 2:6, 2:6] = 500
    write_recon(tmp_path / "nm.dcm", acquisition=acq, injection=INJ, timezone_tag="+0100", heads=2, frames=60,
               frame_ms=25000, slope=2.0, stored=stored)
    cal = 9.5  # cps/MBq, per detector time
    s = load_study(_manifest(tmp_path, [{"spect": "nm.dcm", "calibration_cps_per_MBq": cal,
                                         "calibration_time_basis": "detector_time"}]))
    img = load_study_images(s).spect[(1, 0)]
    total_MBq = float(sitk.GetArrayViewFromImage(img).astype(np.float64).sum()) * SPACING ** 3 / 1000.0 / 1e6
    # by hand from the headers: counts = stored × RescaleSlope; detector time = 60 frames × 25 s × 2 heads
    hand_MBq = float(stored.sum()) * 2.0 / (60 * 25.0 * 2) / cal
    assert total_MBq == pytest.approx(hand_MBq, rel=0.005)
    assert hand_MBq == pytest.approx(48 * 500 * 2.0 / 3000.0 / 9.5)


# --------------------------------------------------------------------------------------------
# 2. Decay correction
# --------------------------------------------------------------------------------------------

def test_decay_correction_start_used_as_is_admin_undone(tmp_path):
    acq = INJ + timedelta(hours=48)
    stored = (np.arange(np.prod(SHAPE)).reshape(SHAPE) % 50 + 1).astype(np.uint16)
    start = write_recon(tmp_path / "start.dcm", acquisition=acq, injection=INJ, timezone_tag="+0100", units="BQML",
                        decay_correction="START", corrected=["ATTN", "SCAT", "DECY"], stored=stored, slope=3.0)
    info = dicom.read_series_info(start)
    assert info.refusal is None and info.decay_undo_factor is None and "START" in info.decay_note
    assert not any("decay" in w.lower() for w in info.warnings)
    np.testing.assert_allclose(sitk.GetArrayFromImage(dicom.read_dicom_image(start).image), stored * 3.0, rtol=1e-6)
    # ADMIN with DecayFactor: values / DecayFactor
    df = 1.30  # exp(λ · 48 h) is 1.2319: 5.5 % off
    admin = write_recon(tmp_path / "admin.dcm", acquisition=acq, injection=INJ, timezone_tag="+0100", units="BQML",
                        decay_correction="ADMIN", decay_factor=df, stored=stored, slope=3.0)
    got = dicom.read_dicom_image(admin)
    np.testing.assert_allclose(sitk.GetArrayFromImage(got.image), stored * 3.0 / df, rtol=1e-6)
    assert got.info.decay_undo_factor == pytest.approx(1 / df)
    assert "ADMIN undone" in got.scaling and "DecayFactor (0054,1321) = 1.3)" in got.scaling
    assert any("differs by 5.5 %" in w for w in got.info.warnings)
    # ADMIN without DecayFactor: exp(-λ t) from the times and RadionuclideHalfLife
    admin2 = write_recon(tmp_path / "admin2.dcm", acquisition=acq, injection=INJ, timezone_tag="+0100", units="BQML",
                         decay_correction="ADMIN", stored=stored, slope=3.0)
    expected = math.exp(-math.log(2) * 48 * 3600 / LU177_HALF_LIFE_S)
    got = dicom.read_dicom_image(admin2)
    assert got.info.decay_undo_factor == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(sitk.GetArrayFromImage(got.image), stored * 3.0 * expected, rtol=1e-6)
    # said in the study's warnings (results)
    s = load_study(_manifest(tmp_path, [{"spect": "admin2.dcm"}]))
    assert any("ADMIN undone" in w and "admin2.dcm" in w for w in s.warnings)


@pytest.mark.parametrize("dc, corrected, text", [
    ("ACQUIRED", None, "DecayCorrection (0054,1102) = 'ACQUIRED' is not one of NONE, START, ADMIN"),
    (None, ["ATTN", "DECY"], "CorrectedImage (0028,0051) lists DECY but DecayCorrection (0054,1102) is absent"),
])
def test_unknown_decay_correction_refused(tmp_path, dc, corrected, text):
    f = write_recon(tmp_path / "nm.dcm", acquisition=INJ + timedelta(hours=24), injection=INJ, units="BQML",
                    decay_correction=dc, corrected=corrected)
    assert text in dicom.read_series_info(f).refusal
    with pytest.raises(InputDataError, match="cannot be used for dosimetry"):
        dicom.read_dicom_image(f)
    probs = _problems(_manifest(tmp_path, [{"spect": "nm.dcm"}]))
    assert text in probs["cycles[0].timepoints[0].spect"]


def test_empty_radiopharmaceutical_sequence_is_not_called_absent(tmp_path):
    f = write_recon(tmp_path / "nm.dcm", acquisition=INJ + timedelta(hours=24), injection=INJ)
    ds = pydicom.dcmread(str(f))
    ds.RadiopharmaceuticalInformationSequence = []
    _save(ds, f)
    w = dicom.read_series_info(f).warnings
    assert "RadiopharmaceuticalInformationSequence (0054,0016) is present but empty (no item)" in w
    assert not any("is absent" in x for x in w)


# --------------------------------------------------------------------------------------------
# 3. Classification from headers
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("image_type, kind, reason", [
    ("TOMO", "projections", "projection data (ImageType TOMO): reconstruct first"),
    ("GATED TOMO", "projections", "projection data (ImageType GATED TOMO): reconstruct first"),
    ("STATIC", "planar", "planar image (ImageType STATIC)"),
    ("WHOLE BODY", "planar", "planar whole-body image"),
    ("DYNAMIC", "planar", "planar dynamic image"),
])
def test_projections_and_planar_refused(tmp_path, image_type, kind, reason):
    f = write_recon(tmp_path / "nm.dcm", acquisition=INJ + timedelta(hours=24), injection=INJ, units="BQML",
                    image_type=image_type)
    info = dicom.read_series_info(f)
    assert info.image_kind == kind and reason in info.refusal
    with pytest.raises(InputDataError) as e:
        dicom.read_dicom_image(f)
    assert str(f) in str(e.value) and info.series_instance_uid in str(e.value) and reason in str(e.value)
    rep = dicom.inspect_directory(tmp_path)
    assert rep.refused == [rep.series[0]] and rep.cycles == []
    assert "Not dosimetry input" in rep.to_text() and reason in rep.to_text()


def test_copies_of_one_image_counted_once(tmp_path):
    f = write_recon(tmp_path / "a" / "nm.dcm", acquisition=INJ + timedelta(hours=24), injection=INJ, units="BQML")
    ds = pydicom.dcmread(str(f))
    _save(ds, tmp_path / "a" / "nm_copy.dcm")  # same SOPInstanceUID
    info = dicom.read_series_info(tmp_path / "a")
    assert info.copies == ["2 files hold one image (nm.dcm, nm_copy.dcm: same SOPInstanceUID or derived from the same "
                           "source image, e.g. other transfer syntaxes)"]
    assert info.shape_zyx == SHAPE and info.refusal.endswith("keep one copy per image")


# --------------------------------------------------------------------------------------------
# 4. Times: pseudo-PET, time zones, DST, injection agreement
# --------------------------------------------------------------------------------------------

def test_pseudo_pet_injection_equal_to_acquisition(tmp_path):
    acq = datetime(2025, 1, 7, 9, 0, tzinfo=CET)
    f = write_recon(tmp_path / "nm.dcm", acquisition=acq, injection=acq, timezone_tag="+0100", units="BQML")
    info = dicom.read_series_info(f)
    assert info.hours_post_injection == 0.0
    assert info.time_problem.startswith("injection time (RadiopharmaceuticalStartDateTime (0018,1078): "
                                        "2025-01-07T09:00:00+01:00) equals the acquisition time")
    rep = dicom.inspect_directory(tmp_path)
    assert "   ?    h p.i." in rep.to_text() and "0.00 h p.i." not in rep.to_text()
    assert rep.to_manifest()["cycles"][0]["injection_time"].startswith("FILL IN:")
    probs = _problems(_manifest(tmp_path, [{"spect": "nm.dcm"}]))
    assert "RadiopharmaceuticalStartDateTime (0018,1078)" in probs["cycles[0].timepoints[0].acquisition_time"]
    assert info.series_instance_uid in probs["cycles[0].timepoints[0].acquisition_time"]
    # an explicit hours_post_injection of 0 is refused too
    probs = _problems(_manifest(tmp_path, [{"spect": "nm.dcm", "hours_post_injection": 0}]))
    assert "must be > 0" in probs["cycles[0].timepoints[0].hours_post_injection"]


def _mixed_vendor_tree(root: Path, naive_acq_day: datetime, ct_tz: str | None):
    """PT (DT with offsets, no TimezoneOffsetFromUTC) at 4 h, GE-like NM (time-only injection,
    no offset anywhere) at ~48 h with a CT of the same visit stating ``ct_tz``."""
    inj = datetime(2025, 3, 28, 10, 0, tzinfo=CET)  # Friday before the switch to CEST (Sunday 30 March)
    st1, fo1 = generate_uid(), generate_uid()
    write_pt_series(root / "pt4h", acquisition=inj + timedelta(hours=4), injection=inj, study_uid=st1, for_uid=fo1)
    st2, fo2 = generate_uid(), generate_uid()
    write_recon(root / "nm48h" / "nm.dcm", acquisition=naive_acq_day, injection=inj.replace(tzinfo=None),
                with_datetime=False, units="BQML", vendor="GE MEDICAL SYSTEMS", study_uid=st2, for_uid=fo2)
    ct_dir = write_ct(root / "ct48h", naive_acq_day, study_uid=st2, for_uid=fo2)
    if ct_tz:
        for f in ct_dir.iterdir():
            ds = pydicom.dcmread(str(f))
            ds.TimezoneOffsetFromUTC = ct_tz
            _save(ds, f)
    return inj


def test_mixed_vendors_naive_times_resolved_across_dst(tmp_path):
    # NM written on the local clock after the DST switch: 2025-03-30 11:00 CEST = 48 h after 10:00 CET on the 28th
    inj = _mixed_vendor_tree(tmp_path, datetime(2025, 3, 30, 11, 0), ct_tz="+0200")
    rep = dicom.inspect_directory(tmp_path)
    (cyc,) = rep.cycles
    assert cyc.injection_datetime == inj
    pt, nm = (tp.emission for tp in cyc.timepoints)
    assert pt.modality == "PT" and pt.hours_post_injection == pytest.approx(4.0, abs=1e-9)
    assert pt.acquisition_duration_s == 900.0 and "FrameReferenceTime (0054,1300) 450 s" in pt.duration_derivation
    assert nm.acquisition_datetime == datetime(2025, 3, 30, 11, 0, tzinfo=CEST)
    assert nm.injection_datetime == inj  # time of day joined to the PT's full date-time
    assert nm.hours_post_injection == pytest.approx(48.0, abs=1e-9)  # not 49 h (naive local clock difference)
    assert any("taken at UTC+02:00" in w for w in nm.warnings)
    # the manifest path: the same hours p.i. from headers alone
    s = load_study(_manifest(tmp_path, [{"spect": "pt4h"}, {"spect": "nm48h/nm.dcm", "ct": "ct48h"}]))
    assert s.cycles[0].hours == pytest.approx([4.0, 48.0], abs=1e-9)
    assert datetime.fromisoformat(s.cycles[0].injection_time) == inj


def test_ambiguous_time_zone_on_dst_day_is_an_error_naming_the_field(tmp_path):
    _mixed_vendor_tree(tmp_path, datetime(2025, 3, 30, 11, 0), ct_tz="+0200")
    # a second CT on the same day with the winter offset: two offsets on 2025-03-30
    write_ct(tmp_path / "ct_other", datetime(2025, 3, 30, 1, 30, tzinfo=CET))
    for f in (tmp_path / "ct_other").iterdir():
        ds = pydicom.dcmread(str(f))
        ds.TimezoneOffsetFromUTC = "+0100"
        _save(ds, f)
    rep = dicom.inspect_directory(tmp_path)
    nm = next(s for s in rep.series if s.modality == "NM")
    assert "several offsets on 2025-03-30 (UTC+01:00, UTC+02:00" in nm.tz_problem
    s_path = _manifest(tmp_path, [{"spect": "pt4h", "ct": "ct_other"}, {"spect": "nm48h/nm.dcm", "ct": "ct48h"}])
    probs = _problems(s_path)
    msg = probs["cycles[0].timepoints[1].acquisition_time"]
    assert msg.startswith("one of injection_time/acquisition_time has a time-zone offset and the other does not")
    assert "give cycles[i].timepoints[j].acquisition_time with an offset" in msg and "nm48h" in msg
    assert "several offsets on 2025-03-30" in msg


def test_injection_times_must_agree_within_a_minute(tmp_path):
    acq1, acq2 = INJ + timedelta(hours=4), INJ + timedelta(hours=24)
    write_recon(tmp_path / "a.dcm", acquisition=acq1, injection=INJ, timezone_tag="+0100", units="BQML")
    write_recon(tmp_path / "b.dcm", acquisition=acq2, injection=INJ + timedelta(seconds=50), timezone_tag="+0100",
                units="BQML")
    s = load_study(_manifest(tmp_path, [{"spect": "a.dcm"}, {"spect": "b.dcm"}]))  # 50 s: agree
    assert s.cycles[0].hours == pytest.approx([4.0, 24.0])
    write_recon(tmp_path / "c.dcm", acquisition=acq2 + timedelta(hours=1), injection=INJ + timedelta(minutes=5),
                timezone_tag="+0100", units="BQML")
    probs = _problems(_manifest(tmp_path, [{"spect": "a.dcm"}, {"spect": "c.dcm"}]))
    msg = probs["cycles[0].injection_time"]
    assert "disagree by more than 1 min" in msg and "2025-01-06T09:00:00+01:00" in msg
    assert "2025-01-06T09:05:00+01:00" in msg and "a.dcm" in msg and "c.dcm" in msg


# --------------------------------------------------------------------------------------------
# 5. One patient per study
# --------------------------------------------------------------------------------------------

def test_two_patients_refused_unless_overridden(tmp_path):
    write_recon(tmp_path / "p1" / "nm.dcm", acquisition=INJ + timedelta(hours=4), injection=INJ, patient="P001",
                timezone_tag="+0100", units="BQML")
    write_recon(tmp_path / "p2" / "nm.dcm", acquisition=INJ + timedelta(hours=24), injection=INJ, patient="P002",
                timezone_tag="+0100", units="BQML")
    rep = dicom.inspect_directory(tmp_path)
    assert rep.patient_ids == ["P001", "P002"]
    assert [(c.patient_id, c.number) for c in rep.cycles] == [("P001", 1), ("P002", 1)]  # not one patient's 2 scans
    text = rep.to_text()
    assert "Patient P001:" in text and "Patient P002:" in text
    with pytest.raises(InputDataError, match="2 patients found .*P001, P002.*--patient-id"):
        rep.to_manifest()
    assert rep.to_manifest(patient_id="P002")["patient_id"] == "P002"
    assert [tp["spect"] for tp in rep.to_manifest(patient_id="P002")["cycles"][0]["timepoints"]] == [
        str(tmp_path / "p2" / "nm.dcm")]
    tps = [{"spect": "p1/nm.dcm"}, {"spect": "p2/nm.dcm"}]
    msg = _problems(_manifest(tmp_path, tps))["cycles"]
    assert "PatientID 'P001'" in msg and "PatientID 'P002'" in msg and "allow_mixed_patients" in msg
    s = load_study(_manifest(tmp_path, tps, allow_mixed_patients=True))
    assert any("2 patients" in w and "allow_mixed_patients is true" in w for w in s.warnings)
    assert "must be true or false" in _problems(_manifest(tmp_path, tps, allow_mixed_patients="yes"))[
        "allow_mixed_patients"]


# --------------------------------------------------------------------------------------------
# 6. Draft manifests: placeholders written, listed and refused
# --------------------------------------------------------------------------------------------

def test_write_manifest_placeholders_listed_and_refused(tmp_path, capsys):
    data = tmp_path / "data"
    write_recon(data / "nm.dcm", acquisition=INJ + timedelta(hours=24), injection=INJ, timezone_tag="+0100",
                units="CNTS", heads=2, dose_bq=None)
    out = tmp_path / "study.json"
    assert cli.main(["inspect", str(data), "--write-manifest", str(out)]) == 0
    printed = capsys.readouterr().out
    m = json.loads(out.read_text())
    holes = dict(dicom.find_placeholders(m))
    assert sorted(holes) == ["cycles[0].administered_activity_MBq", "cycles[0].timepoints[0].calibration_cps_per_MBq",
                             "cycles[0].timepoints[0].calibration_time_basis", "segmentation.file",
                             "segmentation.labels"]
    assert "scan_duration (1500 s) or detector_time (3000 s = 2 heads)" in holes[
        "cycles[0].timepoints[0].calibration_time_basis"]
    for f in holes:
        assert f in printed
    assert m["cycles"][0]["injection_time"] == INJ.isoformat() and m["cycles"][0]["timepoints"][0]["spect"] == \
        str(Path("data") / "nm.dcm")
    with pytest.raises(ManifestError) as e:
        load_study(out)
    assert sorted(f for f, _ in e.value.problems) == sorted(holes)
    assert all("placeholder left by `lu-dosimetry inspect --write-manifest`" in msg for _, msg in e.value.problems)
    # never overwritten
    assert cli.main(["inspect", str(data), "--write-manifest", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_write_manifest_with_defaults_and_patient_choice(tmp_path, capsys):
    data = tmp_path / "data"
    write_recon(data / "p1.dcm", acquisition=INJ + timedelta(hours=24), injection=INJ, timezone_tag="+0100",
                units="CNTS", heads=2, patient="P001")
    write_recon(data / "p2.dcm", acquisition=INJ + timedelta(hours=4), injection=INJ, timezone_tag="+0100",
                units="BQML", patient="P002")
    site = _manifest(tmp_path, [], calibration_cps_per_MBq=9.5, calibration_time_basis="detector_time")
    out = tmp_path / "study.json"
    assert cli.main(["inspect", str(data), "--write-manifest", str(out)]) == 2  # two patients: choose one
    assert "P001, P002" in capsys.readouterr().err and not out.exists()
    assert cli.main(["inspect", str(data), "--write-manifest", str(out), "--patient-id", "P001",
                     "--defaults", str(site)]) == 0
    assert "No placeholders left" in capsys.readouterr().out
    m = json.loads(out.read_text())
    (tp,) = m["cycles"][0]["timepoints"]
    assert tp["spect"] == str(Path("data") / "p1.dcm")
    assert tp["calibration_cps_per_MBq"] == 9.5 and tp["calibration_time_basis"] == "detector_time"
    assert m["segmentation"]["file"] == "seg.nrrd"  # re-based from the defaults manifest's folder
    s = load_study(out)
    assert s.patient_id == "P001" and s.cycles[0].timepoints[0].acquisition_duration_s == 3000.0  # 1500 s × 2 heads


def test_slices_derived_from_one_acquisition_are_not_copies(tmp_path):
    """Single-frame slice files of one reconstruction, all DERIVED from the same projections, are
    slices (different positions), not copies; the same file saved twice is a copy."""
    src = Dataset()
    src.ReferencedSOPClassUID, src.ReferencedSOPInstanceUID = NM_SOP, generate_uid()
    series = generate_uid()
    for k in range(3):
        f = write_recon(tmp_path / "s" / f"slice{k}.dcm", acquisition=INJ + timedelta(hours=24), injection=INJ,
                        units="BQML", stored=np.full((1,) + SHAPE[1:], k + 1, dtype=np.uint16))
        ds = pydicom.dcmread(str(f))
        ds.SeriesInstanceUID, ds.NumberOfFrames, ds.SliceVector = series, 1, [1]
        ds.ImageType = ["DERIVED", "PRIMARY", "RECON TOMO", "EMISSION"]
        ds.SourceImageSequence = [src]
        ds.DetectorInformationSequence[0].ImagePositionPatient = [0.0, 0.0, SPACING * k]
        _save(ds, f)
    info = dicom.read_series_info(tmp_path / "s")
    assert info.copies == [] and info.refusal is None and info.shape_zyx == (3,) + SHAPE[1:]
