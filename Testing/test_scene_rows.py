"""Study rows (the Slicer Study step) -> manifest -> Study, built once by the manifest validation."""

import json
import random

import pytest

from LuDosimetryLib.io.dicom import read_series_info
from LuDosimetryLib.io.scene_rows import (
    ScanRow,
    default_reference_row,
    manifest_from_rows,
    rows_from_series,
    rows_from_study,
    study_from_rows,
)
from LuDosimetryLib.io.study import VoiDefinition, load_study, study_from_dict
from LuDosimetryLib.synthetic.phantom import PhantomConfig
from LuDosimetryLib.synthetic.phantom_dicom import write_phantom_dicom

INJ1, INJ2 = "2025-01-06T09:00:00+01:00", "2025-03-03T09:30:00+01:00"


def _edited_rows():
    """Rows as a user leaves them: out of order, one scan with an acquisition time but no hours p.i."""
    return [
        ScanRow(cycle=2, hours_post_injection=24.0, administered_activity_MBq=7000.0, injection_time=INJ2, spect="c2 24h"),
        ScanRow(cycle=1, hours_post_injection=72.0, administered_activity_MBq=7400.0, injection_time=INJ1,
                spect="c1 72h", ct="c1 72h CT"),
        ScanRow(cycle=1, administered_activity_MBq=7400.0, injection_time=INJ1, acquisition_time="2025-01-06T13:30:00+01:00",
                spect="c1 4h"),
        ScanRow(cycle=1, hours_post_injection=24.0, administered_activity_MBq=7400.0, injection_time=INJ1,
                spect_units="counts", calibration_cps_per_MBq=9.5, acquisition_duration_s=1800.0, spect="c1 24h"),
    ]


def test_validated_study_is_the_one_used_acquisition_time_only_row():
    rows = _edited_rows()
    vois = [VoiDefinition(1, "t1", "tumor")]
    rs = study_from_rows("P7", rows, vois=vois)
    assert rs.ok, rs.problems_text()
    study = rs.study
    assert [c.cycle for c in study.cycles] == [1, 2]
    assert study.cycles[0].hours == pytest.approx([4.5, 24.0, 72.0], abs=1e-9)  # 13:30 - 09:00 = 4.5 h
    assert rs.keys == {2: (1, 0), 3: (1, 1), 1: (1, 2), 0: (2, 0)}
    assert study.cycles[0].timepoints[1].spect_units == "counts"
    assert study.cycles[0].timepoints[1].calibration_cps_per_MBq == 9.5
    assert study.vois == vois
    assert any("no recovery_coefficients" in w for w in study.warnings)


def test_rows_study_equals_manifest_path_study(tmp_path):
    rows = _edited_rows()
    rc = {"volume_ml": [1.0, 10.0, 100.0], "rc": [0.3, 0.6, 0.85]}
    rs = study_from_rows("P7", rows, recovery_coefficients=rc)
    manifest, _where = manifest_from_rows("P7", rows, recovery_coefficients=rc)
    for cycle in manifest["cycles"]:
        for tp in cycle["timepoints"]:
            for key in ("spect", "ct"):
                if key in tp:
                    (tmp_path / tp[key]).write_bytes(b"x")
    (tmp_path / "seg.nii.gz").write_bytes(b"x")
    manifest["segmentation"] = {"file": "seg.nii.gz", "labels": {"1": {"name": "t1", "kind": "tumor"}}}
    (tmp_path / "study.json").write_text(json.dumps(manifest))
    from_file = load_study(tmp_path / "study.json")
    for a, b in zip(rs.study.cycles, from_file.cycles):
        assert (a.cycle, a.administered_activity_MBq, a.injection_time) == (b.cycle, b.administered_activity_MBq,
                                                                            b.injection_time)
        for ta, tb in zip(a.timepoints, b.timepoints):
            assert ta.spect.name == tb.spect.name
            assert (ta.hours_post_injection, ta.spect_units, ta.acquisition_time, ta.calibration_cps_per_MBq,
                    ta.acquisition_duration_s) == (tb.hours_post_injection, tb.spect_units, tb.acquisition_time,
                                                   tb.calibration_cps_per_MBq, tb.acquisition_duration_s)
    assert rs.study.recovery_coefficients == from_file.recovery_coefficients
    # and back: rows of the loaded Study give the same Study again
    again = study_from_rows("P7", rows_from_study(from_file))
    assert [c.hours for c in again.study.cycles] == [c.hours for c in from_file.cycles]


def test_problems_are_placed_on_rows_and_columns():
    rows = _edited_rows()
    rows[3].hours_post_injection = -2.0
    rows[0].spect = ""
    rows[1].administered_activity_MBq = 7500.0
    rows[2].acquisition_time = "yesterday"
    rs = study_from_rows("P7", rows)
    assert rs.study is None and not rs.ok
    cells = {(p.row, p.column) for p in rs.problems}
    assert (3, "hours_post_injection") in cells
    assert (0, "spect") in cells
    assert {(1, "administered_activity_MBq"), (2, "administered_activity_MBq"), (3, "administered_activity_MBq")} <= cells
    assert (2, "acquisition_time") in cells
    assert "row 4 hours_post_injection: must be > 0 (the scan is after the injection), got -2" in rs.problems_text()
    assert study_from_rows("P7", []).problems[0].column == "cycles"
    assert any(p.row == -1 and p.column == "patient_id" for p in study_from_rows("", _edited_rows()).problems)


def test_default_reference_row():
    rows = _edited_rows()
    assert default_reference_row(rows, 24.0) == 3
    assert default_reference_row(rows, 5.0) == 2   # hours from the acquisition time count
    assert default_reference_row([ScanRow(cycle=3), ScanRow(cycle=2)], 24.0) == 1
    assert default_reference_row([], 24.0) == -1


@pytest.fixture(scope="module")
def dicom_patient(tmp_path_factory):
    cfg = PhantomConfig(n_cycles=2, shape_xyz=(24, 24, 16), max_shift_mm=0.0, max_rotation_deg=0.0)
    return write_phantom_dicom(tmp_path_factory.mktemp("rows_dicom"), cfg)


def test_rows_from_scene_series_match_the_dicom_manifest(dicom_patient):
    """Series as Slicer finds them (any order, names of volumes) give the Study of the DICOM manifest."""
    folder = dicom_patient.parent / "dicom"
    infos = [read_series_info(p) for p in sorted(folder.iterdir())]
    random.Random(3).shuffle(infos)
    scans = [(f"vol{i}", s) for i, s in enumerate(infos) if s.is_emission]
    cts = [(f"vol{i}", s) for i, s in enumerate(infos) if s.modality == "CT"]
    rows, messages = rows_from_series(scans + [("typed by hand", None)], cts)
    assert rows[-1].spect == "typed by hand" and any("typed by hand: not from the DICOM" in m for m in messages)
    rows = rows[:-1]
    reference = load_study(dicom_patient)
    rs = study_from_rows(reference.patient_id, rows)
    assert rs.ok, rs.problems_text()
    assert [c.cycle for c in rs.study.cycles] == [c.cycle for c in reference.cycles]
    names = dict(scans + cts)
    for a, b in zip(rs.study.cycles, reference.cycles):
        assert a.administered_activity_MBq == pytest.approx(b.administered_activity_MBq, rel=1e-9)
        assert a.hours == pytest.approx(b.hours, abs=1e-6)
        for ta, tb in zip(a.timepoints, b.timepoints):
            assert ta.spect_units == tb.spect_units
            emission, ct = names[ta.spect.name], names[ta.ct.name]
            assert emission.series_instance_uid == read_series_info(tb.spect, tb.spect_series_uid).series_instance_uid
            assert ct.frame_of_reference_uid == emission.frame_of_reference_uid
    # the draft-manifest path of the DICOM module validates to the same hours
    d = json.loads(dicom_patient.read_text())
    assert [c.hours for c in study_from_dict(d, dicom_patient.parent).cycles] == [c.hours for c in rs.study.cycles]


def test_cells_round_trip_and_bad_text_is_reported_not_dropped():
    from LuDosimetryLib.io.scene_rows import ROW_COLUMNS, scan_row_cells, scan_row_from_cells

    row = _edited_rows()[3]
    cells = dict(zip(ROW_COLUMNS, [str(c) for c in scan_row_cells(row)]))
    assert scan_row_from_cells(cells) == row
    cells.update(cycle="two", hours_post_injection="24 h", administered_activity_MBq="")
    bad = scan_row_from_cells(cells)
    assert (bad.cycle, bad.hours_post_injection, bad.administered_activity_MBq) == ("two", "24 h", None)
    rows = [bad] + _edited_rows()[:2]
    cellsWithProblems = {(p.row, p.column) for p in study_from_rows("P7", rows).problems}
    assert (0, "cycle") in cellsWithProblems and (0, "hours_post_injection") in cellsWithProblems
