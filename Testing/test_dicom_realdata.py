"""Real vendor DICOM that no one here wrote (shared/realdata, see its README): GE Discovery 670
177Lu projections with 6 CT slices (negative SpacingBetweenSlices), and one GE Millennium planar
whole-body image stored three times (three transfer syntaxes).

No ITK/pydicom traceback for any of these files; each is classified by ``inspect`` and refused
(projections, planar) or read (CT) by ``run``/``read_image`` with a message naming the series and
the reason. These tests never skip: the folder is part of the CI checkout.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from LuDosimetryLib import cli
from LuDosimetryLib.errors import InputDataError, ManifestError
from LuDosimetryLib.io import dicom
from LuDosimetryLib.io.images import read_image
from LuDosimetryLib.io.study import load_study


def _realdata() -> Path:
    """``shared/realdata`` next to the project root or one of its ancestors (worktrees live deeper)."""
    env = os.environ.get("LUDOSIMETRY_REALDATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[1]
    for parent in [here, *here.parents]:
        cand = parent / "shared" / "realdata"
        if cand.is_dir():
            return cand
    raise AssertionError(f"shared/realdata not found above {here}: the real vendor DICOM must be present "
                         "(set LUDOSIMETRY_REALDATA to its folder)")


REAL = _realdata()
PROJ = REAL / "ge_d670_lu177" / "NM" / "bed1_projections.dcm"
CT = REAL / "ge_d670_lu177" / "CT"
PLANAR = REAL / "nm_planar_wholebody"


def test_inspect_classifies_every_real_file():
    rep = dicom.inspect_directory(REAL)
    assert rep.unreadable == [] and rep.cycles == []
    kinds = {s.modality + " " + s.image_kind: s for s in rep.series}
    assert sorted(kinds) == ["CT CT volume", "NM planar", "NM projections"]
    proj, planar, ct = kinds["NM projections"], kinds["NM planar"], kinds["CT CT volume"]
    assert proj.files == [PROJ] and proj.image_type == "ORIGINAL\\PRIMARY\\TOMO\\EMISSION"
    assert proj.refusal == "projection data (ImageType TOMO): reconstruct first"
    assert proj.shape_zyx == (360, 128, 128)
    assert proj.manufacturer == "GE MEDICAL SYSTEMS" and proj.model == "Tandem_Discovery_670_Pro"
    # the empty radiopharmaceutical item of the anonymised export is reported as what it is
    assert any(m.keyword == "RadionuclideTotalDose" and "0.0" in m.detail for m in proj.missing)
    assert not any("is absent" in w for w in proj.warnings)
    assert len(planar.files) == 3 and planar.image_kind == "planar"
    assert planar.refusal.startswith("planar whole-body image (ImageType WHOLE BODY), not a tomographic volume "
                                     "(stored as Secondary Capture); 3 files hold one image (")
    assert all(f.name in planar.refusal for f in PLANAR.iterdir())
    assert planar.shape_zyx == (1, 1024, 256)  # one image, not a 3-slice volume
    assert planar.patient_id == "8NM1"
    assert ct.refusal is None and ct.shape_zyx == (6, 512, 512)
    assert ct.spacing_mm == pytest.approx((0.977, 0.977, 2.5), abs=1e-3)
    assert ct.frame_of_reference_uid == proj.frame_of_reference_uid
    assert rep.refused == [s for s in rep.series if s.is_emission]
    text = rep.to_text()
    assert "projections: projection data (ImageType TOMO): reconstruct first" in text
    assert "Not dosimetry input" in text and "Patient 8NM1:" in text


def test_ct_with_negative_spacing_read_in_position_order():
    img = read_image(CT)
    assert img.GetSize() == (512, 512, 6)
    assert img.GetSpacing() == pytest.approx((0.977, 0.977, 2.5), abs=1e-3)
    assert img.GetOrigin()[2] == pytest.approx(-8.0)  # slices from z = -8.0 up to +4.5 mm
    assert img.TransformIndexToPhysicalPoint((0, 0, 5))[2] == pytest.approx(4.5)
    arr = sitk.GetArrayFromImage(img)
    by_z = {}
    for f in CT.iterdir():
        ds = pydicom.dcmread(str(f))
        by_z[round(float(ds.ImagePositionPatient[2]), 3)] = ds.pixel_array * float(ds.RescaleSlope) + float(
            ds.RescaleIntercept)
    assert sorted(by_z) == [-8.0, -5.5, -3.0, -0.5, 2.0, 4.5]
    for k, z in enumerate(sorted(by_z)):
        np.testing.assert_array_equal(arr[k], by_z[z])  # exact values, in position order


@pytest.mark.parametrize("path, reason", [
    (PROJ, "projection data (ImageType TOMO): reconstruct first"),
    (PLANAR, "planar whole-body image (ImageType WHOLE BODY)"),
])
def test_read_image_refuses_with_series_and_reason(path, reason):
    with pytest.raises(InputDataError) as e:
        read_image(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: series ") and reason in msg and "cannot be used for dosimetry" in msg


def test_run_refuses_projections_and_planar_before_any_computation(tmp_path, capsys):
    shutil.copy(CT / sorted(os.listdir(CT))[0], tmp_path / "not_used.dcm")  # the inputs are never written to
    before = {f: f.stat().st_mtime_ns for f in REAL.rglob("*") if f.is_file()}
    manifest = {"patient_id": "P", "cycles": [{"cycle": 1, "administered_activity_MBq": 7400.0,
                                               "injection_time": "2021-03-10T08:00:00",
                                               "timepoints": [
                                                   {"spect": str(PROJ), "ct": str(CT), "spect_units": "counts",
                                                    "acquisition_time": "2021-03-10T12:00:00",
                                                    "calibration_cps_per_MBq": 10.0, "acquisition_duration_s": 1500},
                                                   {"spect": str(PLANAR), "acquisition_time": "2021-03-11T12:00:00",
                                                    "spect_units": "Bq/mL"}]}],
                "segmentation": {"file": "not_used.dcm", "labels": {"1": {"name": "t", "kind": "tumor"}}}}
    path = tmp_path / "study.json"
    path.write_text(json.dumps(manifest))
    with pytest.raises(ManifestError) as e:
        load_study(path)
    problems = dict(e.value.problems)
    assert "projection data (ImageType TOMO): reconstruct first" in problems["cycles[0].timepoints[0].spect"]
    assert str(PROJ) in problems["cycles[0].timepoints[0].spect"]
    assert "planar whole-body image" in problems["cycles[0].timepoints[1].spect"]
    assert "1.3.6.1.4.1.5962.1.3.8.1.20040826185059.5457" in problems["cycles[0].timepoints[1].spect"]
    # the command line: one message, exit code 2, no traceback, nothing written
    out = tmp_path / "out"
    assert cli.main(["run", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "reconstruct first" in err and "Traceback" not in err
    assert not out.exists()
    assert before == {f: f.stat().st_mtime_ns for f in REAL.rglob("*") if f.is_file()}


def test_every_real_file_reads_its_header_without_traceback():
    for f in sorted(REAL.rglob("*.dcm")):
        info = dicom.read_series_info(f)
        assert info.modality in ("NM", "CT") and info.image_kind != "unknown"
