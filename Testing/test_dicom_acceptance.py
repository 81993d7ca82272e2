"""Acceptance of issue 11 end to end, DICOM against the same images in NIfTI with ISO times:

* ``lu-dosimetry inspect DIR --write-manifest`` on ``phantom --dicom`` output (Bq/mL) writes a
  manifest that ``run`` accepts unchanged and that reproduces the NIfTI doses (within 0.1 %);
* a mixed-vendor study — single-frame PT (DT values with offsets, no TimezoneOffsetFromUTC),
  multi-frame NM without any offset and only the injection's time of day, multi-frame NM in
  summer time with TimezoneOffsetFromUTC and an ADMIN decay correction — across the change to
  daylight-saving time gives the NIfTI doses (within 0.1 %).

The non-DICOM parts (segmentation, recovery coefficients) come from the NIfTI study.json through
``--defaults``.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from LuDosimetryLib import cli
from LuDosimetryLib.io import dicom
from LuDosimetryLib.pipeline import PipelineOptions, run_manifest
from LuDosimetryLib.synthetic.phantom import PhantomConfig, write_phantom_study
from LuDosimetryLib.synthetic.phantom_dicom import write_phantom_dicom
from pydicom.uid import generate_uid
from test_dicom import PT_SOP, _base, _save

SMALL = dict(shape_xyz=(32, 24, 20), spacing_mm=9.6, max_shift_mm=0.0, max_rotation_deg=0.0, n_cycles=2)
OPTS = PipelineOptions(registration="none")


def _doses(result) -> dict:
    return {(r["voi"], int(r["cycle"])): float(r["absorbed_dose_Gy"]) for r in result.rows}


def _assert_same_doses(a: dict, b: dict, rel=1e-3):
    assert sorted(a) == sorted(b) and len(a) >= 8
    print(f"max relative dose difference DICOM vs NIfTI: {max(abs(a[k] / b[k] - 1) for k in a):.2e} over {len(a)} VOI-cycles")
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=rel), key


def test_write_manifest_on_phantom_dicom_runs_unchanged_and_matches_nifti(tmp_path, capsys):
    cfg = PhantomConfig(**SMALL)
    nifti = write_phantom_study(tmp_path / "nifti", cfg)
    out = write_phantom_dicom(tmp_path / "dcm", cfg).parent
    manifest = out / "study_inspect.json"
    assert cli.main(["inspect", str(out / "dicom"), "--write-manifest", str(manifest), "--defaults", str(nifti)]) == 0
    printed = capsys.readouterr().out
    assert "No placeholders left" in printed and "segmentation taken from" in printed
    assert dicom.find_placeholders(json.loads(manifest.read_text())) == []
    dcm_run = run_manifest(manifest, tmp_path / "out_dicom", OPTS)
    nifti_run = run_manifest(nifti, tmp_path / "out_nifti", OPTS)
    _assert_same_doses(_doses(dcm_run), _doses(nifti_run))


def _nm_to_pt_series(nm_file: Path, folder: Path, manufacturer: str) -> None:
    """The phantom's multi-frame NM volume as a single-frame PET series, times as DT with offsets."""
    nm = pydicom.dcmread(str(nm_file))
    stored = nm.pixel_array
    origin = [float(v) for v in nm.DetectorInformationSequence[0].ImagePositionPatient]
    dz = float(nm.SpacingBetweenSlices)
    series = generate_uid()
    inj = nm.RadiopharmaceuticalInformationSequence[0]
    acq_dt = nm.AcquisitionDate + nm.AcquisitionTime.split(".")[0] + nm.TimezoneOffsetFromUTC
    for k in range(stored.shape[0]):
        ds = _base(PT_SOP, "PT", patient=nm.PatientID, study_uid=nm.StudyInstanceUID, for_uid=nm.FrameOfReferenceUID)
        ds.Manufacturer, ds.SeriesInstanceUID, ds.SeriesDescription = manufacturer, series, "SPECT as PET"
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.AcquisitionDateTime = acq_dt
        ds.Rows, ds.Columns = stored.shape[1], stored.shape[2]
        ds.PixelSpacing = list(nm.PixelSpacing)
        ds.SliceThickness = dz
        ds.ImagePositionPatient = [origin[0], origin[1], origin[2] + k * dz]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.InstanceNumber = k + 1
        ds.Units, ds.DecayCorrection = "BQML", "START"
        ds.ActualFrameDuration = nm.RotationInformationSequence[0].ActualFrameDuration
        ds.RescaleSlope, ds.RescaleIntercept = nm.RescaleSlope, 0
        ds.RadiopharmaceuticalInformationSequence = [inj]
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        _save(ds, folder / f"PT{k + 1:04d}.dcm")


def _rewrite(folder: Path, edit) -> None:
    for f in sorted(folder.iterdir()):
        ds = pydicom.dcmread(str(f))
        edit(ds)
        _save(ds, f)


def test_mixed_vendor_study_across_dst_matches_nifti(tmp_path, capsys):
    # injection Friday 28 March 2025 10:00 CET; Central Europe changes to CEST on Sunday 30 March
    cfg = PhantomConfig(**SMALL, first_injection="2025-03-28T10:00:00+01:00")
    nifti = write_phantom_study(tmp_path / "nifti", cfg)
    out = write_phantom_dicom(tmp_path / "dcm", cfg).parent
    root = out / "dicom"
    # 4 h: single-frame PT series from another vendor (DT with offsets, no TimezoneOffsetFromUTC)
    _nm_to_pt_series(root / "cycle1_004h_NM" / "NM000001.dcm", root / "cycle1_004h_PT", "GE MEDICAL SYSTEMS")
    shutil.rmtree(root / "cycle1_004h_NM")

    # 24 h: NM with local clock times only: no offset anywhere, injection as a time of day only
    def naive_nm(ds):
        ds.Manufacturer = "GE MEDICAL SYSTEMS"
        del ds.TimezoneOffsetFromUTC
        item = ds.RadiopharmaceuticalInformationSequence[0]
        del item.RadiopharmaceuticalStartDateTime
        assert item.RadiopharmaceuticalStartTime.startswith("100000")
    _rewrite(root / "cycle1_024h_NM", naive_nm)

    # 72 h (Monday 31 March, CEST): Siemens-like summer-time clock with TimezoneOffsetFromUTC +0200, values
    # decay-corrected to the administration (ADMIN, DecayFactor)
    half_life_s = float(pydicom.dcmread(str(root / "cycle1_072h_NM" / "NM000001.dcm"))
                        .RadiopharmaceuticalInformationSequence[0].RadionuclideHalfLife)
    decay_factor = math.exp(math.log(2) * 72 * 3600 / half_life_s)

    def summer(ds):
        for dkw, tkw in (("StudyDate", "StudyTime"), ("SeriesDate", "SeriesTime"), ("AcquisitionDate", "AcquisitionTime"),
                         ("ContentDate", "ContentTime")):
            hh = int(getattr(ds, tkw)[:2]) + 1
            setattr(ds, tkw, f"{hh:02d}" + getattr(ds, tkw)[2:])
        ds.TimezoneOffsetFromUTC = "+0200"

    def admin(ds):
        summer(ds)
        ds.Manufacturer = "SIEMENS NM"
        ds.DecayCorrection = "ADMIN"
        ds.CorrectedImage = ["ATTN", "SCAT", "DECY"]
        ds.DecayFactor = f"{decay_factor:.10f}"
        ds.RescaleSlope = f"{float(ds.RescaleSlope) * decay_factor:.12g}"
    _rewrite(root / "cycle1_072h_NM", admin)
    _rewrite(root / "cycle1_072h_CT", summer)

    rep = dicom.inspect_directory(root)
    (c1, _) = rep.cycles
    assert [tp.emission.modality for tp in c1.timepoints] == ["PT", "NM", "NM"]
    assert [tp.emission.hours_post_injection for tp in c1.timepoints] == pytest.approx([4.0, 24.0, 72.0], abs=1e-9)
    assert c1.timepoints[2].emission.acquisition_datetime.isoformat() == "2025-03-31T11:00:00+02:00"
    assert c1.timepoints[2].emission.decay_undo_factor == pytest.approx(1 / decay_factor, rel=1e-9)
    manifest = out / "study_inspect.json"
    assert cli.main(["inspect", str(root), "--write-manifest", str(manifest), "--defaults", str(nifti)]) == 0
    assert "No placeholders left" in capsys.readouterr().out
    m = json.loads(manifest.read_text())
    assert m["cycles"][0]["injection_time"] == "2025-03-28T10:00:00+01:00"
    assert m["cycles"][0]["timepoints"][1]["acquisition_time"] == "2025-03-29T10:00:00+01:00"  # offset from its CT
    dcm_run = run_manifest(manifest, tmp_path / "out_dicom", OPTS)
    assert any("ADMIN undone" in w for w in dcm_run.summary["warnings"])
    nifti_run = run_manifest(nifti, tmp_path / "out_nifti", OPTS)
    _assert_same_doses(_doses(dcm_run), _doses(nifti_run))
