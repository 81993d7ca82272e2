"""DICOM header reading: values written with pydicom (Siemens-like, GE-like, Philips-like) are
read back; every missing required tag names the tag and the manifest field that overrides it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from LuDosimetryLib.io import dicom
from LuDosimetryLib.errors import InputDataError
from LuDosimetryLib.io.images import read_image

NM_SOP = "1.2.840.10008.5.1.4.1.1.20"
CT_SOP = "1.2.840.10008.5.1.4.1.1.2"
PT_SOP = "1.2.840.10008.5.1.4.1.1.128"
LU177_HALF_LIFE_S = 574300.0


def _save(ds: Dataset, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        ds.save_as(str(path), enforce_file_format=True)  # pydicom >= 3
    except TypeError:  # pragma: no cover - pydicom 2.4
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(str(path), write_like_original=False)


def _base(sop: str, modality: str, patient="P001", study_uid=None, for_uid=None) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop, meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientID = patient
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.FrameOfReferenceUID = for_uid or generate_uid()
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    return ds


def _radiopharm(injection: datetime | None, dose_bq: float | None, with_datetime=True, nuclide="^177^Lutetium"):
    item = Dataset()
    if injection is not None:
        if with_datetime:
            off = injection.strftime("%z")
            item.RadiopharmaceuticalStartDateTime = injection.strftime("%Y%m%d%H%M%S.000000") + off
        item.RadiopharmaceuticalStartTime = injection.strftime("%H%M%S.00")
    if dose_bq is not None:
        item.RadionuclideTotalDose = f"{dose_bq:.1f}"
    item.RadionuclideHalfLife = f"{LU177_HALF_LIFE_S:.1f}"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "C-145A8", "SRT", nuclide
    item.RadionuclideCodeSequence = [code]
    item.Radiopharmaceutical = "Lu-177 DOTATATE"
    return item


def write_nm(path: Path, *, vendor="SIEMENS NM", acquisition: datetime, injection: datetime | None,
             dose_bq: float | None = 7.4e9, units: str | None = "BQML", with_rp_sequence=True, with_datetime=True,
             timezone_tag: str | None = None, rescale=(0.5, 0.0), rwvm=None, philips_factor=None,
             frame_ms=30000.0, frames=60, detectors=2, shape=(8, 10, 12), spacing=(4.8, 4.8, 4.8),
             study_uid=None, for_uid=None, description="SPECT Lu177", corrected=None, decay_correction=None,
             data=None) -> Path:
    """A Siemens/GE-like multi-frame NM tomographic reconstruction."""
    ds = _base(NM_SOP, "NM", study_uid=study_uid, for_uid=for_uid)
    ds.Manufacturer = vendor
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesDescription = description
    ds.StudyDate = ds.SeriesDate = acquisition.strftime("%Y%m%d")
    ds.SeriesTime = (acquisition + timedelta(minutes=40)).strftime("%H%M%S")  # reconstruction later
    ds.AcquisitionDate = acquisition.strftime("%Y%m%d")
    ds.AcquisitionTime = acquisition.strftime("%H%M%S.000")
    if timezone_tag:
        ds.TimezoneOffsetFromUTC = timezone_tag
    nz, ny, nx = shape
    ds.Rows, ds.Columns, ds.NumberOfFrames = ny, nx, nz
    ds.PixelSpacing = [spacing[1], spacing[0]]
    ds.SliceThickness = ds.SpacingBetweenSlices = spacing[2]
    ds.FrameIncrementPointer = pydicom.tag.Tag(0x0054, 0x0080)
    ds.SliceVector = list(range(1, nz + 1))
    ds.NumberOfSlices = nz
    det = Dataset()
    det.ImagePositionPatient = [-100.0, -120.0, -50.0]
    det.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.DetectorInformationSequence = [det]
    ds.NumberOfDetectors = detectors
    rot = Dataset()
    rot.ActualFrameDuration = int(frame_ms)
    rot.NumberOfFramesInRotation = frames
    ds.RotationInformationSequence = [rot]
    if units is not None:
        ds.Units = units
    if decay_correction:
        ds.DecayCorrection = decay_correction
    if corrected:
        ds.CorrectedImage = corrected
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if rwvm is not None:
        item = Dataset()
        item.RealWorldValueSlope, item.RealWorldValueIntercept = rwvm[0], rwvm[1]
        item.RealWorldValueFirstValueMapped, item.RealWorldValueLastValueMapped = 0, 65535
        item.LUTLabel = "BQML"
        u = Dataset()
        u.CodeValue, u.CodingSchemeDesignator, u.CodeMeaning = rwvm[2], "UCUM", rwvm[2]
        item.MeasurementUnitsCodeSequence = [u]
        ds.RealWorldValueMappingSequence = [item]
    if philips_factor is not None:
        block = ds.private_block(0x7053, "Philips PET Private Group", create=True)
        block.add_new(0x00, "DS", "0.000123")
        block.add_new(0x09, "DS", f"{philips_factor}")
    rp = _radiopharm(injection, dose_bq, with_datetime=with_datetime)
    if with_rp_sequence:
        ds.RadiopharmaceuticalInformationSequence = [rp]
    if data is None:
        data = np.arange(nz * ny * nx, dtype=np.uint16).reshape(shape) % 1000
    ds.PixelData = np.ascontiguousarray(data.astype(np.uint16)).tobytes()
    _save(ds, path)
    return path


def write_ct(folder: Path, acquisition: datetime, n=6, shape=(10, 12), spacing=(2.0, 2.0, 3.0),
             study_uid=None, for_uid=None, prefix="ct") -> Path:
    series_uid = generate_uid()
    for k in range(n):
        ds = _base(CT_SOP, "CT", study_uid=study_uid, for_uid=for_uid)
        ds.Manufacturer = "SIEMENS"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesDescription = "CT low dose"
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = acquisition.strftime("%Y%m%d")
        ds.AcquisitionTime = ds.SeriesTime = acquisition.strftime("%H%M%S")
        ds.Rows, ds.Columns = shape
        ds.PixelSpacing = [spacing[1], spacing[0]]
        ds.SliceThickness = spacing[2]
        ds.ImagePositionPatient = [-10.0, -12.0, 3.0 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.InstanceNumber = k + 1
        ds.RescaleSlope, ds.RescaleIntercept = 1.0, -1024.0
        ds.PixelData = (np.full(shape, 1024 + 10 * k, dtype=np.uint16)).tobytes()
        _save(ds, folder / f"{prefix}_{k:03d}.dcm")
    return folder


TZ = timezone(timedelta(hours=1))
INJ = datetime(2025, 1, 6, 9, 0, 0, tzinfo=TZ)


def test_siemens_like_values_round_trip(tmp_path):
    acq = datetime(2025, 1, 7, 9, 30, tzinfo=TZ)
    f = write_nm(tmp_path / "nm.dcm", acquisition=acq, injection=INJ, dose_bq=7.4e9, timezone_tag="+0100",
                 frame_ms=25000, frames=48, detectors=2)
    info = dicom.read_series_info(f)
    assert info.modality == "NM" and info.manufacturer == "SIEMENS NM"
    assert info.injection_datetime == INJ
    assert info.acquisition_datetime == acq
    assert info.hours_post_injection == pytest.approx(24.5, abs=1e-9)
    assert info.administered_activity_MBq == pytest.approx(7400.0, rel=1e-9)
    assert info.radionuclide == "Lu-177"
    assert info.half_life_s == pytest.approx(LU177_HALF_LIFE_S)
    assert info.units == "BQML" and info.spect_units == "Bq/mL"
    assert info.rescale_slope == pytest.approx(0.5) and info.rescale_intercept == pytest.approx(0.0)
    assert info.frame_duration_s == pytest.approx(25.0)
    assert info.number_of_frames_in_rotation == 48 and info.number_of_detectors == 2
    assert info.acquisition_duration_s == pytest.approx(25.0 * 48)
    assert info.shape_zyx == (8, 10, 12)
    assert info.spacing_mm == pytest.approx((4.8, 4.8, 4.8))
    assert info.timezone_offset == "+0100"
    assert info.missing == []
    # pixel values: stored × 0.5 (GDCM rescale), Bq/mL
    img = read_image(f)
    stored = np.arange(8 * 10 * 12).reshape(8, 10, 12) % 1000
    np.testing.assert_allclose(sitk.GetArrayFromImage(img), stored * 0.5, rtol=1e-6)
    assert img.GetSpacing() == pytest.approx((4.8, 4.8, 4.8))
    assert img.GetOrigin() == pytest.approx((-100.0, -120.0, -50.0))


def test_timezone_offset_tag_applies_to_naive_times(tmp_path):
    # injection given as DT without offset, TimezoneOffsetFromUTC = -0500 on the dataset
    inj_naive = datetime(2025, 3, 8, 10, 0)
    acq_naive = datetime(2025, 3, 9, 16, 0)
    f = write_nm(tmp_path / "nm.dcm", acquisition=acq_naive, injection=inj_naive, timezone_tag="-0500")
    info = dicom.read_series_info(f)
    tz = timezone(-timedelta(hours=5))
    assert info.injection_datetime == inj_naive.replace(tzinfo=tz)
    assert info.acquisition_datetime == acq_naive.replace(tzinfo=tz)
    assert info.hours_post_injection == pytest.approx(30.0, abs=1e-9)


def test_ge_like_counts_without_datetime_or_timezone(tmp_path):
    inj = datetime(2025, 1, 6, 9, 0)
    acq = datetime(2025, 1, 6, 13, 15)
    f = write_nm(tmp_path / "nm.dcm", vendor="GE MEDICAL SYSTEMS", acquisition=acq, injection=inj, units="CNTS",
                 with_datetime=False, rescale=None, frame_ms=30000, frames=90, detectors=2)
    info = dicom.read_series_info(f)
    assert info.spect_units == "counts"
    assert info.injection_datetime == inj  # same day: the series-date assumption is right here
    assert info.hours_post_injection == pytest.approx(4.25, abs=1e-9)
    assert info.acquisition_duration_s == pytest.approx(2700.0)
    msgs = info.missing_messages(0, 0)
    assert any("RadiopharmaceuticalStartDateTime (0018,1078) missing → set cycles[0].injection_time" in m for m in msgs)
    assert any("calibration_cps_per_MBq" in m and "cycles[0].timepoints[0]" in m for m in msgs)
    img = read_image(f)
    stored = np.arange(8 * 10 * 12).reshape(8, 10, 12) % 1000
    np.testing.assert_allclose(sitk.GetArrayFromImage(img), stored, rtol=1e-6)


@pytest.mark.parametrize("dropped, tag, field", [
    ("sequence", "RadiopharmaceuticalStartDateTime (0018,1078)", "cycles[0].injection_time"),
    ("sequence", "RadionuclideTotalDose (0018,1074)", "cycles[0].administered_activity_MBq"),
    ("sequence", "RadionuclideCodeSequence (0054,0300)", "radionuclide"),
    ("units", "Units (0054,1001)", "cycles[0].timepoints[0].spect_units"),
    ("dose", "RadionuclideTotalDose (0018,1074)", "cycles[0].administered_activity_MBq"),
    ("injection", "RadiopharmaceuticalStartDateTime (0018,1078)", "cycles[0].injection_time"),
])
def test_each_missing_tag_names_tag_and_manifest_field(tmp_path, dropped, tag, field):
    acq = datetime(2025, 1, 7, 9, 0)
    kw = dict(acquisition=acq, injection=datetime(2025, 1, 6, 9, 0), dose_bq=7.4e9, units="BQML")
    if dropped == "sequence":
        kw["with_rp_sequence"] = False
    elif dropped == "units":
        kw["units"] = None
    elif dropped == "dose":
        kw["dose_bq"] = None
    elif dropped == "injection":
        kw["injection"] = None
    f = write_nm(tmp_path / "nm.dcm", **kw)
    info = dicom.read_series_info(f)
    msgs = info.missing_messages(0, 0)
    assert any(m.startswith(f"{tag} missing → set {field}") for m in msgs), msgs


def test_missing_acquisition_time_falls_back_and_warns(tmp_path):
    f = write_nm(tmp_path / "nm.dcm", acquisition=datetime(2025, 1, 7, 9, 0), injection=datetime(2025, 1, 6, 9, 0))
    ds = pydicom.dcmread(str(f))
    del ds.AcquisitionTime
    del ds.AcquisitionDate
    _save(ds, f)
    info = dicom.read_series_info(f)
    assert info.acquisition_source.startswith("SeriesDate/SeriesTime")
    assert info.hours_post_injection == pytest.approx(24.0 + 40 / 60)
    assert any("SeriesDate/SeriesTime" in w and "reconstruction" in w for w in info.warnings)
    for kw in ("SeriesTime", "SeriesDate", "StudyDate"):
        if kw in ds:
            delattr(ds, kw)
    _save(ds, f)
    info = dicom.read_series_info(f)
    assert any(m.startswith("AcquisitionDate/AcquisitionTime (0008,0022)/(0008,0032) missing → set "
                            "cycles[1].timepoints[2].acquisition_time") for m in info.missing_messages(1, 2))


def test_real_world_value_mapping_applied(tmp_path):
    # stored counts, RWVM maps to kBq/ml: value = (stored × 2 + 1) kBq/mL
    f = write_nm(tmp_path / "nm.dcm", acquisition=datetime(2025, 1, 7, 9), injection=datetime(2025, 1, 6, 9),
                 units="CNTS", rescale=None, rwvm=(2.0, 1.0, "kBq/ml"))
    info = dicom.read_series_info(f)
    assert info.spect_units == "Bq/mL"
    assert info.real_world_slope == pytest.approx(2.0) and info.real_world_intercept == pytest.approx(1.0)
    img = read_image(f)
    stored = np.arange(8 * 10 * 12).reshape(8, 10, 12) % 1000
    np.testing.assert_allclose(sitk.GetArrayFromImage(img), (stored * 2.0 + 1.0) * 1e3, rtol=1e-6)


def test_philips_private_activity_concentration_factor(tmp_path):
    f = write_nm(tmp_path / "nm.dcm", vendor="Philips Medical Systems", acquisition=datetime(2025, 1, 7, 9),
                 injection=datetime(2025, 1, 6, 9), units="CNTS", rescale=(2.0, 0.0), philips_factor=3.5)
    info = dicom.read_series_info(f)
    assert info.private_scale_factor == pytest.approx(3.5)
    assert info.spect_units == "Bq/mL"
    img = read_image(f)
    stored = np.arange(8 * 10 * 12).reshape(8, 10, 12) % 1000
    np.testing.assert_allclose(sitk.GetArrayFromImage(img), stored * 2.0 * 3.5, rtol=1e-6)


def test_suspicious_values_flagged(tmp_path):
    f = write_nm(tmp_path / "nm.dcm", acquisition=datetime(2025, 1, 7, 9), injection=datetime(2025, 1, 6, 9),
                 dose_bq=7400.0, decay_correction="ADMIN")
    info = dicom.read_series_info(f)
    assert any("probably entered in MBq" in w for w in info.warnings)
    assert any("ADMIN undone" in w for w in info.warnings)  # undone, not only warned (test_dicom_conventions)
    f2 = write_nm(tmp_path / "nm2.dcm", acquisition=datetime(2025, 1, 7, 9), injection=datetime(2025, 1, 6, 9),
                  corrected="DECY")  # single-valued CorrectedImage, no DecayCorrection: reference time unknown
    assert "DecayCorrection (0054,1102) is absent" in dicom.read_series_info(f2).refusal
    assert not any("decay" in w.lower() for w in dicom.read_series_info(
        write_nm(tmp_path / "nm3.dcm", acquisition=datetime(2025, 1, 7, 9), injection=datetime(2025, 1, 6, 9),
                 corrected=["UNIF", "ATTN"])).warnings)


def test_radionuclide_names():
    assert dicom.normalise_radionuclide("^177^Lutetium") == "Lu-177"
    assert dicom.normalise_radionuclide("Lu-177") == "Lu-177"
    assert dicom.normalise_radionuclide("177Lu-DOTATATE") == "Lu-177"
    assert dicom.normalise_radionuclide("^99m^Technetium") == "Tc-99m"
    assert dicom.normalise_radionuclide("Yttrium-90") == "Y-90"
    assert dicom.normalise_radionuclide("unknown") is None
    assert dicom.parse_dt("20250106090000.000000+0100") == datetime(2025, 1, 6, 9, tzinfo=TZ)
    assert dicom.parse_tm("09:30:15") == datetime(2000, 1, 1, 9, 30, 15).time()


def _write_two_cycle_tree(root: Path):
    """Cycle 1 (Siemens-like, full tags, +0100) at 4/24/72 h with CTs; cycle 2 (GE-like) with only
    RadiopharmaceuticalStartTime, so its injection date must be inferred."""
    for c, (inj, vendor, full) in enumerate([(datetime(2025, 1, 6, 9, 0, tzinfo=TZ), "SIEMENS NM", True),
                                             (datetime(2025, 3, 3, 10, 30), "GE MEDICAL SYSTEMS", False)], start=1):
        for h in (4, 24, 72):
            acq = inj + timedelta(hours=h, minutes=5)
            st, fo = generate_uid(), generate_uid()
            write_nm(root / f"c{c}" / f"{h}h" / "spect.dcm", vendor=vendor, acquisition=acq, injection=inj,
                     dose_bq=(7.4e9 if c == 1 else 6.1e9), units="BQML" if full else "CNTS",
                     with_datetime=full, timezone_tag="+0100" if full else None, study_uid=st, for_uid=fo,
                     description=f"SPECT {h}h")
            write_ct(root / f"c{c}" / f"{h}h" / "ct", acq.replace(tzinfo=None) if not full else acq,
                     study_uid=st, for_uid=fo)
    (root / "notes.txt").write_text("not dicom")


def test_inspect_directory_groups_cycles_and_infers_dates(tmp_path):
    _write_two_cycle_tree(tmp_path)
    rep = dicom.inspect_directory(tmp_path)
    assert len(rep.series) == 12 and len(rep.cycles) == 2 and rep.unassigned == []
    c1, c2 = rep.cycles
    assert c1.administered_activity_MBq == pytest.approx(7400.0)
    assert c2.administered_activity_MBq == pytest.approx(6100.0)
    for cyc in (c1, c2):
        hrs = [tp.emission.hours_post_injection for tp in cyc.timepoints]
        np.testing.assert_allclose(hrs, [4 + 5 / 60, 24 + 5 / 60, 72 + 5 / 60], atol=1e-9)
        assert all(tp.ct is not None and tp.ct.frame_of_reference_uid == tp.emission.frame_of_reference_uid
                   for tp in cyc.timepoints)
    assert c2.injection_datetime == datetime(2025, 3, 3, 10, 30)
    assert any("inferred" in n for n in c2.notes)
    text = rep.to_text()
    assert "Patient P001, cycle 1 (cycles[0])" in text and "Patient P001, cycle 2 (cycles[1])" in text
    assert "RadiopharmaceuticalStartDateTime (0018,1078) missing → set cycles[1].injection_time" in text
    assert "cycles[1].timepoints[2].calibration_cps_per_MBq" in text
    assert "72.08 h p.i." in text
    manifest, msgs = dicom.study_dict_from_dicom(tmp_path, relative_to=tmp_path)
    assert manifest["patient_id"] == "P001" and manifest["radionuclide"] == "Lu-177"
    assert [c["administered_activity_MBq"] for c in manifest["cycles"]] == [7400.0, 6100.0]
    tp = manifest["cycles"][0]["timepoints"][1]
    assert tp["spect"] == str(Path("c1") / "24h" / "spect.dcm") and tp["ct"] == str(Path("c1") / "24h" / "ct")
    assert tp["spect_units"] == "Bq/mL"
    assert manifest["cycles"][1]["timepoints"][0]["spect_units"] == "counts"
    # counts of a 2-head camera: the duration is derived at run time from the basis the user states
    assert "acquisition_duration_s" not in manifest["cycles"][1]["timepoints"][0]
    basis = manifest["cycles"][1]["timepoints"][0]["calibration_time_basis"]
    assert basis.startswith("FILL IN:") and "scan_duration (1800 s)" in basis and "detector_time (3600 s" in basis
    holes = dict(dicom.find_placeholders(manifest))
    assert "segmentation.file" in holes and "cycles[1].timepoints[2].calibration_cps_per_MBq" in holes
    # the CT folder reads as one 3-D image in HU
    ct = read_image(tmp_path / "c1" / "24h" / "ct")
    assert ct.GetSize() == (12, 10, 6)
    assert sitk.GetArrayViewFromImage(ct)[2].mean() == pytest.approx(20.0)


def test_cli_inspect_prints_report(tmp_path, capsys):
    from LuDosimetryLib.cli import main  # `lu-dosimetry inspect DIR`

    _write_two_cycle_tree(tmp_path)
    assert main(["inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 injection(s)" in out


def test_inspect_errors(tmp_path):
    with pytest.raises(InputDataError, match="not found"):
        dicom.inspect_directory(tmp_path / "nope")
    with pytest.raises(InputDataError, match="no readable DICOM"):
        dicom.read_series_info(tmp_path)
