"""Study manifest (contract 1): loading, time handling and validation that lists every problem."""

import json

import pytest

from LuDosimetryLib.errors import ManifestError
from LuDosimetryLib.study import load_study, parse_iso_time, study_from_dict


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
