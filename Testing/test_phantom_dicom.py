"""The synthetic patient as DICOM (phantom_dicom): the DICOM input path end to end.

On a motion-free two-cycle patient written both as NIfTI (phantom.write_phantom_study) and as
DICOM (phantom_dicom.write_phantom_dicom): the study read from the DICOM headers equals the
NIfTI study, the DICOM images equal the NIfTI images, the dosimetry of study_dicom.json matches
the analytic ground truth (and the NIfTI run), and `lu-dosimetry inspect` finds both injections
with no missing tag.
"""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from LuDosimetryLib import cli

from LuDosimetryLib.io import dicom

from LuDosimetryLib.synthetic import phantom_dicom
from LuDosimetryLib.io.images import geometry_differences, read_image
from LuDosimetryLib.synthetic.phantom import PhantomConfig, write_phantom_study
from LuDosimetryLib.synthetic.phantom_dicom import write_phantom_dicom
from LuDosimetryLib.pipeline import PipelineOptions, run_manifest
from LuDosimetryLib.io.study import load_study, parse_iso_time, study_from_dict
from LuDosimetryLib.results.truth import compare_doses

FAST = dict(n_cycles=2, max_shift_mm=0.0, max_rotation_deg=0.0)


@pytest.fixture(scope="module")
def patient(tmp_path_factory, motion_free_patient):
    # the NIfTI patient and its run are the session's shared motion-free patient (conftest.py)
    cfg, nifti = motion_free_patient
    assert cfg == PhantomConfig(**FAST)
    d = tmp_path_factory.mktemp("phantom_dicom")
    return {"cfg": cfg, "nifti": nifti, "dicom": write_phantom_dicom(d / "dicom", cfg), "root": d}


@pytest.fixture(scope="module")
def runs(patient, motion_free_run):
    opts = PipelineOptions(registration="none")
    return {"dicom": run_manifest(patient["dicom"], patient["root"] / "out_dicom", opts),
            "nifti": motion_free_run}


def _pairs(patient):
    """(NIfTI time point, DICOM time point) of every scan."""
    a, b = load_study(patient["nifti"]), load_study(patient["dicom"])
    return [(ta, tb) for ca, cb in zip(a.cycles, b.cycles) for ta, tb in zip(ca.timepoints, cb.timepoints)]


def test_folder_layout(patient):
    out = patient["dicom"].parent
    assert sorted(p.name for p in out.iterdir()) == ["README.txt", "dicom", "ground_truth.json", "segmentation.nii.gz",
                                                     "study_dicom.json"]
    assert len(list((out / "dicom").iterdir())) == 2 * 3 * 2  # NM + CT per scan
    readme = (out / "README.txt").read_text()
    assert "segmentation" in readme and "recovery coefficients" in readme and "NOT in DICOM" in readme
    assert not list(out.parent.glob(".phantom-dicom-*"))  # no temporary folder left


def test_study_from_dicom_headers_equals_nifti_study(patient):
    root = patient["dicom"].parent
    draft, messages = dicom.study_dict_from_dicom(root / "dicom", relative_to=root)
    # every value but the segmentation comes from the headers
    assert messages == []
    assert [f for f, _ in dicom.find_placeholders(draft)] == ["segmentation.file", "segmentation.labels"]
    draft.pop("segmentation")
    from_dicom = study_from_dict(draft, root, check_files=False)
    nifti = load_study(patient["nifti"])
    assert from_dicom.patient_id == nifti.patient_id and from_dicom.radionuclide == nifti.radionuclide
    assert [c.cycle for c in from_dicom.cycles] == [c.cycle for c in nifti.cycles] == [1, 2]
    for cd, cn in zip(from_dicom.cycles, nifti.cycles):
        assert abs(cd.administered_activity_MBq - cn.administered_activity_MBq) < 1e-6
        assert parse_iso_time(cd.injection_time) == parse_iso_time(cn.injection_time)
        assert len(cd.timepoints) == len(cn.timepoints) == 3
        for td, tn in zip(cd.timepoints, cn.timepoints):
            assert abs(td.hours_post_injection - tn.hours_post_injection) < 1e-6
            assert parse_iso_time(td.acquisition_time) == parse_iso_time(tn.acquisition_time)
            assert td.spect_units == tn.spect_units == "Bq/mL"
    # the written manifest is that draft completed with the non-DICOM parts of the NIfTI manifest
    written = json.loads(patient["dicom"].read_text())
    nifti_manifest = json.loads(patient["nifti"].read_text())
    assert written["cycles"] == draft["cycles"]
    assert written["segmentation"] == nifti_manifest["segmentation"]
    assert written["recovery_coefficients"] == nifti_manifest["recovery_coefficients"]


def test_dicom_headers_are_clinic_like(patient):
    cfg = patient["cfg"]
    for _, tp in _pairs(patient):
        nm = dicom.read_series_info(tp.spect)
        ct = dicom.read_series_info(tp.ct)
        assert nm.modality == "NM" and nm.units == "BQML" and ct.modality == "CT"
        assert nm.patient_id == ct.patient_id == cfg.patient_id
        assert nm.study_instance_uid == ct.study_instance_uid
        assert nm.frame_of_reference_uid == ct.frame_of_reference_uid
        assert nm.radionuclide == "Lu-177" and nm.half_life_s == pytest.approx(6.647 * 86400, rel=2e-3)
        assert nm.acquisition_duration_s == pytest.approx(cfg.acquisition_duration_s)
        assert nm.timezone_offset == "+0000"
        assert nm.missing == [] and nm.warnings == [] and ct.warnings == []
        ds = pydicom.dcmread(str(tp.spect), stop_before_pixels=True)
        assert ds.RadiopharmaceuticalInformationSequence[0].RadionuclideCodeSequence[0].CodeMeaning == "^177^Lutetium"
        assert float(ds.RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose) >= 7.4e9  # Bq
    uids = [dicom.read_series_info(tp.spect).study_instance_uid for _, tp in _pairs(patient)]
    assert len(set(uids)) == 6  # one DICOM study per SPECT/CT visit


def test_dicom_images_equal_nifti_images(patient):
    worst_rel = 0.0
    for tn, td in _pairs(patient):
        for kind in ("spect", "ct"):
            a, b = read_image(getattr(tn, kind)), read_image(getattr(td, kind))
            assert geometry_differences(a, b, tolerance_mm=1e-4) == [], (kind, td)  # NIfTI origin is float32
            va, vb = sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b)
            if kind == "ct":
                assert np.array_equal(va, vb)  # HU exact through RescaleIntercept
            else:
                np.testing.assert_allclose(vb, va, rtol=1e-6, atol=0.0)
                worst_rel = max(worst_rel, float(np.max(np.abs(vb - va) / np.maximum(va, 1e-30))))
    assert worst_rel < 3e-7  # float32 rounding only (measured 1.2e-7)
    seg = read_image(patient["dicom"].parent / "segmentation.nii.gz")
    ref = read_image(_pairs(patient)[1][1].spect)  # cycle 1, 24 h
    assert geometry_differences(seg, ref, tolerance_mm=1e-4) == []


def test_run_on_dicom_manifest_matches_truth(patient, runs):
    truth = json.loads((patient["dicom"].parent / "ground_truth.json").read_text())
    cmp = compare_doses(runs["dicom"].rows, truth)
    assert len(cmp.rows) == 2 * 5
    assert cmp.max_abs_relative_error < 0.06, cmp.to_text()
    # and the same numbers as from the NIfTI files
    nifti = {(r["voi"], r["cycle"]): r["absorbed_dose_Gy"] for r in runs["nifti"].rows}
    for r in runs["dicom"].rows:
        assert r["absorbed_dose_Gy"] == pytest.approx(nifti[(r["voi"], r["cycle"])], rel=1e-5)


def test_cli_inspect_lists_two_injections_and_nothing_missing(patient, capsys):
    assert cli.main(["inspect", str(patient["dicom"].parent)]) == 0
    text = capsys.readouterr().out
    assert "12 DICOM series" in text and "2 injection(s) (cycles)" in text
    assert "Patient SYNTH001, cycle 1 (cycles[0])" in text and "Patient SYNTH001, cycle 2 (cycles[1])" in text
    assert "missing:" not in text and "warning:" not in text


def test_cli_phantom_dicom_flag():
    args = cli.build_parser().parse_args(["phantom", "OUT", "--dicom"])
    assert args.dicom is True and args.func is cli._cmd_phantom
    assert cli.build_parser().parse_args(["phantom", "OUT"]).dicom is False


SMALL = dict(n_cycles=1, shape_xyz=(32, 24, 20), spacing_mm=9.6, max_shift_mm=0.0, max_rotation_deg=0.0)


def test_counts_timezone_and_determinism(tmp_path):
    cfg = PhantomConfig(**SMALL, spect_units="counts", first_injection="2025-03-24T08:30:00+01:00")
    m1 = write_phantom_dicom(tmp_path / "a", cfg)
    m2 = write_phantom_dicom(tmp_path / "b", cfg)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    study = load_study(m1)  # runs as is: the camera calibration was added to the manifest
    assert [tp.hours_post_injection for tp in study.cycles[0].timepoints] == pytest.approx([4.0, 24.0, 72.0], abs=1e-9)
    tp = study.cycles[0].timepoints[0]
    assert tp.spect_units == "counts" and tp.calibration_cps_per_MBq == cfg.calibration_cps_per_MBq
    assert tp.acquisition_duration_s == pytest.approx(cfg.acquisition_duration_s)
    info = dicom.read_series_info(tp.spect)
    assert info.units == "CNTS" and info.timezone_offset == "+0100"
    assert info.injection_datetime == datetime.fromisoformat("2025-03-24T08:30:00+01:00")
    # counts equal the NIfTI phantom's
    nifti = write_phantom_study(tmp_path / "n", cfg)
    a = sitk.GetArrayFromImage(read_image(load_study(nifti).cycles[0].timepoints[0].spect))
    np.testing.assert_allclose(sitk.GetArrayFromImage(read_image(tp.spect)), a, rtol=1e-6)
    assert m2.name == "study_dicom.json"


def test_refusals_leave_nothing_behind(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="spect_units"):
        write_phantom_dicom(tmp_path / "gyh", PhantomConfig(**SMALL, spect_units="Gy/h"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("keep")
    with pytest.raises(FileExistsError):
        write_phantom_dicom(tmp_path / "full", PhantomConfig(**SMALL))
    calls = []

    def failing_ct(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_ct(*args, **kwargs)

    real_ct = phantom_dicom._write_ct
    monkeypatch.setattr(phantom_dicom, "_write_ct", failing_ct)
    with pytest.raises(OSError, match="disk full"):
        write_phantom_dicom(tmp_path / "broken", PhantomConfig(**SMALL))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]
    assert (tmp_path / "full" / "x.txt").read_text() == "keep"
