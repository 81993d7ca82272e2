"""Study manifest (contract 1): loading, time handling and validation that lists every problem."""

import json

import pytest

from LuDosimetryLib.errors import ManifestError
from LuDosimetryLib.io.study import load_study, parse_iso_time, study_from_dict


def _manifest(tmp_path, **over):
    for name in ("s4.nii.gz", "s24.nii.gz", "s72.nii.gz", "seg.nii.gz"):
        (tmp_path / name).write_bytes(b"x")
    d = {
        "patient_id": "P001",
        "radionuclide": "Lu-177",
        "cycles": [{
            "cycle": 1, "administered_activity_MBq": 7400.0, "injection_time": "2025-01-06T09:00:00+01:00",
            "timepoints": [
                {"acquisition_time": "2025-01-06T13:00:00+01:00", "spect": "s4.nii.gz"},
                {"acquisition_time": "2025-01-07T08:00:00+00:00", "spect": "s24.nii.gz"},  # other zone
                {"hours_post_injection": 72.0, "spect": "s72.nii.gz", "spect_units": "bq/ml"},
            ]}],
        "segmentation": {"file": "seg.nii.gz", "labels": {"1": {"name": "kidney_left", "kind": "kidney"},
                                                          "3": {"name": "t1", "kind": "tumor", "mode": "adaptive_threshold"}}},
        "recovery_coefficients": {"volume_ml": [1, 10, 100], "rc": [0.2, 0.5, 0.8]},
    }
    d.update(over)
    p = tmp_path / "study.json"
    p.write_text(json.dumps(d))
    return p, d


def test_valid_manifest_hours_and_time_zones(tmp_path):
    p, _ = _manifest(tmp_path)
    s = load_study(p)
    c = s.cycles[0]
    # 09:00+01:00 = 08:00 UTC; 13:00+01:00 -> 4 h; next day 08:00 UTC -> 24 h
    assert c.hours == pytest.approx([4.0, 24.0, 72.0], abs=1e-9)
    assert c.timepoints[2].spect_units == "Bq/mL"
    assert [v.name for v in s.vois] == ["kidney_left", "t1"]
    assert s.vois[1].mode == "adaptive_threshold"
    assert s.cycles[0].timepoints[0].spect == (tmp_path / "s4.nii.gz").resolve()


def test_naive_times_are_local_and_said_so(tmp_path):
    p, d = _manifest(tmp_path)
    d["cycles"][0]["injection_time"] = "2025-01-06T09:00:00"
    d["cycles"][0]["timepoints"][0]["acquisition_time"] = "2025-01-06T13:30:00"
    d["cycles"][0]["timepoints"][1] = {"hours_post_injection": 24, "spect": "s24.nii.gz"}
    s = study_from_dict(d, tmp_path)
    assert s.cycles[0].hours[0] == pytest.approx(4.5)
    assert any("time-zone" in w for w in s.warnings)


def test_mixed_naive_and_aware_times_is_an_error(tmp_path):
    _, d = _manifest(tmp_path)
    d["cycles"][0]["injection_time"] = "2025-01-06T09:00:00"
    with pytest.raises(ManifestError) as e:
        study_from_dict(d, tmp_path)
    assert "cycles[0].timepoints[0].acquisition_time" in str(e.value)


def test_five_mistakes_reported_together_with_fields(tmp_path):
    p, d = _manifest(tmp_path)
    before = {f.name: f.read_bytes() for f in tmp_path.iterdir()}
    c = d["cycles"][0]
    c["administered_activity_MBq"] = -5                           # 1 negative activity
    c["timepoints"][0]["spect"] = "missing.nii.gz"                 # 2 missing file
    c["timepoints"][2]["hours_post_injection"] = 10.0              # 3 non-increasing times (4, 24, 10)
    c["timepoints"][1]["spect_units"] = "kBq/cc"                   # 4 unknown units
    c2 = json.loads(json.dumps(c))
    c2["administered_activity_MBq"] = 7400
    c2["timepoints"] = [{"hours_post_injection": 24, "spect": "s24.nii.gz", "spect_units": "counts"}]
    d["cycles"].append(c2)                                         # 5 duplicate cycle + 6 counts w/o calibration
    p.write_text(json.dumps(d))
    with pytest.raises(ManifestError) as e:
        load_study(p)
    fields = [f for f, _ in e.value.problems]
    msg = str(e.value)
    assert "cycles[0].administered_activity_MBq" in fields
    assert "cycles[0].timepoints[0].spect" in fields and "missing.nii.gz" in msg
    assert "cycles[0].timepoints" in fields and "strictly increasing" in msg
    assert "cycles[0].timepoints[1].spect_units" in fields and "kBq/cc" in msg
    assert "cycles[1].cycle" in fields and "duplicate" in msg
    assert "cycles[1].timepoints[0].calibration_cps_per_MBq" in fields
    assert "cycles[1].timepoints[0].acquisition_duration_s" in fields
    assert str(p) in msg
    # the input folder is untouched (only our own rewrite of study.json above)
    after = {f.name: f.read_bytes() for f in tmp_path.iterdir()}
    assert after.keys() == before.keys()
    assert all(after[k] == before[k] for k in before if k != "study.json")


def test_missing_manifest_and_bad_json(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        load_study(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_study(bad)


def test_bad_labels_and_rc(tmp_path):
    _, d = _manifest(tmp_path)
    d["segmentation"]["labels"]["5"] = {"name": "x", "kind": "liverish"}
    d["segmentation"]["labels"]["0"] = {"name": "y", "kind": "tumor"}
    d["recovery_coefficients"] = {"volume_ml": [1, 2], "rc": [0.5]}
    with pytest.raises(ManifestError) as e:
        study_from_dict(d, tmp_path)
    fields = [f for f, _ in e.value.problems]
    assert "segmentation.labels[5].kind" in fields
    assert "segmentation.labels[0]" in fields
    assert "recovery_coefficients" in fields


def test_parse_iso_time_z():
    t = parse_iso_time("2025-01-06T09:00:00Z")
    assert t.utcoffset().total_seconds() == 0


def test_check_files_false_validates_all_but_files(tmp_path):
    _, d = _manifest(tmp_path)
    for tp in d["cycles"][0]["timepoints"]:
        tp.pop("spect")
    d.pop("segmentation")
    s = study_from_dict(d, tmp_path, check_files=False)
    assert s.cycles[0].timepoints[0].spect is None
    d["cycles"][0]["administered_activity_MBq"] = 0
    with pytest.raises(ManifestError) as e:
        study_from_dict(d, tmp_path, check_files=False)
    assert [f for f, _ in e.value.problems] == ["cycles[0].administered_activity_MBq"]


# ------------------------------------------------------------------------------------------
# Field checks: patient_id, time points, hours vs acquisition_time, recovery coefficients
# ------------------------------------------------------------------------------------------

def test_patient_id_whitespace_is_stripped(tmp_path):
    _, d = _manifest(tmp_path, patient_id=" P001 \t")
    assert study_from_dict(d, tmp_path).patient_id == "P001"
    d["patient_id"] = "   "
    with pytest.raises(ManifestError) as e:
        study_from_dict(d, tmp_path)
    assert [f for f, _ in e.value.problems] == ["patient_id"]


def test_single_time_point_cycle_allowed_empty_cycle_refused(tmp_path):
    _, d = _manifest(tmp_path)
    d["cycles"][0]["timepoints"] = d["cycles"][0]["timepoints"][1:2]
    s = study_from_dict(d, tmp_path)
    assert s.cycles[0].hours == pytest.approx([24.0])
    d["cycles"][0]["timepoints"] = []
    with pytest.raises(ManifestError) as e:
        study_from_dict(d, tmp_path)
    assert [f for f, _ in e.value.problems] == ["cycles[0].timepoints"]
    assert "at least one time point" in str(e.value)


def test_hours_and_acquisition_time_must_agree(tmp_path):
    _, d = _manifest(tmp_path)
    tp = d["cycles"][0]["timepoints"][1]  # acquisition 24 h after the injection
    tp["hours_post_injection"] = 24.04  # within 0.05 h: accepted, hours_post_injection used
    assert study_from_dict(d, tmp_path).cycles[0].hours[1] == pytest.approx(24.04)
    tp["hours_post_injection"] = 26.0
    with pytest.raises(ManifestError) as e:
        study_from_dict(d, tmp_path)
    (field, msg), = e.value.problems
    assert field == "cycles[0].timepoints[1].hours_post_injection"
    assert "acquisition_time" in msg and "24.00 h" in msg and "2.00 h" in msg


def test_recovery_volumes_strictly_increasing_and_rc_drop_warned(tmp_path):
    _, d = _manifest(tmp_path)
    for volumes, bad in (([1, 10, 10], 2), ([1, 10, 5], 2), ([4, 1, 10], 1)):
        d["recovery_coefficients"] = {"volume_ml": volumes, "rc": [0.2, 0.5, 0.8]}
        with pytest.raises(ManifestError) as e:
            study_from_dict(d, tmp_path)
        assert [f for f, _ in e.value.problems] == [f"recovery_coefficients.volume_ml[{bad}]"], volumes
        assert "strictly increasing" in str(e.value)
    d["recovery_coefficients"] = {"volume_ml": [1, 10, 100], "rc": [0.5, 0.4, 0.8]}
    s = study_from_dict(d, tmp_path)  # a warning, not an error
    assert any("rc decreases" in w and "rc[1] = 0.4" in w for w in s.warnings)


def test_missing_units_of_image_files_default_with_warning(tmp_path):
    _, d = _manifest(tmp_path)
    s = study_from_dict(d, tmp_path)
    assert [tp.spect_units for tp in s.cycles[0].timepoints] == ["Bq/mL"] * 3
    (w,) = [w for w in s.warnings if "spect_units not given" in w]
    assert "cycles[0].timepoints[0]" in w and "cycles[0].timepoints[1]" in w and "timepoints[2]" not in w
    assert "Bq/mL" in w


# ------------------------------------------------------------------------------------------
# DICOM: values missing from the manifest come from the headers (contract 1)
# ------------------------------------------------------------------------------------------

SMALL_DICOM = dict(n_cycles=2, max_shift_mm=0.0, max_rotation_deg=0.0, shape_xyz=(32, 24, 20), spacing_mm=9.6)


@pytest.fixture(scope="module")
def dicom_patient(tmp_path_factory):
    from LuDosimetryLib.synthetic.phantom import PhantomConfig
    from LuDosimetryLib.synthetic.phantom_dicom import write_phantom_dicom

    return write_phantom_dicom(tmp_path_factory.mktemp("study_dicom") / "p", PhantomConfig(**SMALL_DICOM))


@pytest.fixture(scope="module")
def dicom_counts_patient(tmp_path_factory):
    from LuDosimetryLib.synthetic.phantom import PhantomConfig
    from LuDosimetryLib.synthetic.phantom_dicom import write_phantom_dicom

    return write_phantom_dicom(tmp_path_factory.mktemp("study_dicom_counts") / "p",
                               PhantomConfig(**SMALL_DICOM, spect_units="counts"))


def _stripped(manifest_path, keep=()):
    """The manifest without the values DICOM headers hold."""
    d = json.loads(manifest_path.read_text())
    if "radionuclide" not in keep:
        d.pop("radionuclide")
    for c in d["cycles"]:
        for k in ("administered_activity_MBq", "injection_time"):
            if k not in keep:
                c.pop(k)
        for tp in c["timepoints"]:
            for k in ("acquisition_time", "spect_units", "acquisition_duration_s"):
                if k not in keep:
                    tp.pop(k, None)
    return d


def _write(d, folder, name):
    p = folder / name
    p.write_text(json.dumps(d))
    return p


def test_dicom_values_missing_from_manifest_read_from_headers(dicom_patient):
    full = load_study(dicom_patient)
    d = _stripped(dicom_patient)
    d["cycles"][1]["timepoints"][0]["spect"] = "dicom/cycle2_004h_NM"  # a series folder works as well as a file
    s = load_study(_write(d, dicom_patient.parent, "stripped.json"))
    assert s.radionuclide == full.radionuclide == "Lu-177"
    for ca, cb in zip(s.cycles, full.cycles):
        assert abs(ca.administered_activity_MBq - cb.administered_activity_MBq) < 1e-6
        assert parse_iso_time(ca.injection_time) == parse_iso_time(cb.injection_time)
        for ta, tb in zip(ca.timepoints, cb.timepoints):
            assert abs(ta.hours_post_injection - tb.hours_post_injection) < 1e-6
            assert parse_iso_time(ta.acquisition_time) == parse_iso_time(tb.acquisition_time)
            assert ta.acquisition_time[-6:] == "+00:00"  # with its offset
            assert ta.spect_units == "Bq/mL"
    w = "\n".join(s.warnings)
    for i in range(2):
        assert f"cycles[{i}].administered_activity_MBq = " in w and "RadionuclideTotalDose (0018,1074)" in w
        assert f"cycles[{i}].injection_time taken from DICOM header RadiopharmaceuticalStartDateTime (0018,1078)" in w
        for j in range(3):
            assert f"cycles[{i}].timepoints[{j}].acquisition_time taken from DICOM header" in w
            assert f"cycles[{i}].timepoints[{j}].spect_units = 'Bq/mL' taken from DICOM header Units (0054,1001)" in w
    assert "radionuclide = 'Lu-177' taken from DICOM header RadionuclideCodeSequence (0054,0300)" in w
    assert str(dicom_patient.parent / "dicom" / "cycle2_004h_NM") in w  # names the series read
    assert "spect_units not given" not in w  # no silent default for DICOM
    # the complete manifest: nothing taken from headers, no difference reported
    assert not any("DICOM header" in x for x in full.warnings)
    # the caller's dict is not modified
    assert "administered_activity_MBq" not in d["cycles"][0]


def test_dicom_manifest_values_win_and_differences_are_reported(dicom_patient):
    d = _stripped(dicom_patient, keep=("radionuclide", "injection_time", "spect_units"))
    d["cycles"][0]["administered_activity_MBq"] = 7000.0          # header: 7400 MBq (5.4 % off)
    d["cycles"][1]["administered_activity_MBq"] = 11100.0 * 1.005  # 0.5 %: no warning
    d["cycles"][0]["timepoints"][1]["hours_post_injection"] = 24.5  # header: 24 h (2 % off)
    s = load_study(_write(d, dicom_patient.parent, "override.json"))
    assert s.cycles[0].administered_activity_MBq == 7000.0
    assert s.cycles[1].administered_activity_MBq == pytest.approx(11155.5)
    assert s.cycles[0].hours == pytest.approx([4.0, 24.5, 72.0], abs=1e-6)
    w = s.warnings
    (aa,) = [x for x in w if "administered_activity_MBq" in x]
    assert aa.startswith("cycles[0].administered_activity_MBq = 7000 MBq (manifest, used)") and "7400" in aa
    (h,) = [x for x in w if "post injection" in x]
    assert h.startswith("cycles[0].timepoints[1]") and "24.50 h" in h and "24.00 h" in h
    # times of the other time points were filled from the headers, not reported as differences
    assert sum("acquisition_time taken from DICOM header" in x for x in w) == 5


def test_dicom_counts_series_units_and_duration_from_header(dicom_counts_patient):
    d = _stripped(dicom_counts_patient)
    assert all("calibration_cps_per_MBq" in tp for c in d["cycles"] for tp in c["timepoints"])  # not DICOM: kept
    s = load_study(_write(d, dicom_counts_patient.parent, "stripped.json"))
    for c in s.cycles:
        for tp in c.timepoints:
            assert tp.spect_units == "counts"  # never the Bq/mL default
            assert tp.acquisition_duration_s == pytest.approx(1800.0)
    w = "\n".join(s.warnings)
    assert "cycles[0].timepoints[0].spect_units = 'counts' taken from DICOM header Units (0054,1001) = CNTS" in w
    assert "cycles[1].timepoints[2].acquisition_duration_s = 1800 s (scan_duration) from DICOM header" in w
    assert "NumberOfFramesInRotation (0054,0053) × ActualFrameDuration (0018,1242)" in w
    # the calibration is not in DICOM: its error says so
    d["cycles"][0]["timepoints"][0].pop("calibration_cps_per_MBq")
    with pytest.raises(ManifestError) as e:
        load_study(_write(d, dicom_counts_patient.parent, "no_calibration.json"))
    (field, msg), = e.value.problems
    assert field == "cycles[0].timepoints[0].calibration_cps_per_MBq" and "not a DICOM tag" in msg


def test_dicom_value_in_neither_place_names_field_and_tag(dicom_patient, tmp_path):
    import shutil

    import pydicom

    root = tmp_path / "p"
    shutil.copytree(dicom_patient.parent, root)
    for f in sorted((root / "dicom").glob("cycle1_*_NM/*.dcm")):
        ds = pydicom.dcmread(f)
        del ds.RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose
        del ds.Units
        if "004h" in f.parent.name:
            for k in ("AcquisitionDate", "AcquisitionTime", "SeriesDate", "SeriesTime", "StudyDate", "StudyTime",
                      "ContentDate", "ContentTime"):
                delattr(ds, k)
        ds.save_as(f)
    d = _stripped(root / "study_dicom.json")
    with pytest.raises(ManifestError) as e:
        load_study(_write(d, root, "stripped.json"))
    problems = dict(e.value.problems)
    assert "RadionuclideTotalDose (0018,1074)" in problems["cycles[0].administered_activity_MBq"]
    assert "is missing" in problems["cycles[0].administered_activity_MBq"]
    for j in range(3):
        assert "Units (0054,1001)" in problems[f"cycles[0].timepoints[{j}].spect_units"]
    assert "AcquisitionDate/AcquisitionTime" in problems["cycles[0].timepoints[0]"]
    assert str(root / "dicom" / "cycle1_004h_NM") in problems["cycles[0].timepoints[0]"]
    assert set(problems) == {"cycles[0].administered_activity_MBq", "cycles[0].timepoints[0]",
                             *(f"cycles[0].timepoints[{j}].spect_units" for j in range(3))}  # cycle 2 is complete


def test_no_header_read_without_files(dicom_patient, monkeypatch):
    from LuDosimetryLib.io import dicom

    def fail(*a, **k):
        raise AssertionError("headers must not be read with check_files=False")

    monkeypatch.setattr(dicom, "read_series_info", fail)
    d = _stripped(dicom_patient, keep=("radionuclide", "injection_time", "acquisition_time", "spect_units"))
    with pytest.raises(ManifestError) as e:
        study_from_dict(d, dicom_patient.parent, check_files=False)
    assert [f for f, _ in e.value.problems] == ["cycles[0].administered_activity_MBq",
                                                "cycles[1].administered_activity_MBq"]
    assert "DICOM" not in str(e.value)
