"""Plausibility checks of issue 12 (physics/plausibility.py): each broken input, built from a copy of
the coarse synthetic patient, stops ``lu-dosimetry run`` with a non-zero exit and a message naming
the scan/file or the radionuclide; a requested fit model far from the automatic one warns."""

from __future__ import annotations

import json
import shutil

import numpy as np
import SimpleITK as sitk
from LuDosimetryLib.cli import main


def _copy(coarse_patient, tmp_path):
    dst = tmp_path / "patient"
    shutil.copytree(coarse_patient.parent, dst)
    return dst / "study.json"


def _scale_image(path, factor):
    img = sitk.ReadImage(str(path))
    out = sitk.GetImageFromArray(sitk.GetArrayFromImage(img).astype(np.float64) * factor)
    out.CopyInformation(img)
    sitk.WriteImage(sitk.Cast(out, sitk.sitkFloat64 if factor > 1e30 else img.GetPixelID()), str(path), True)


def _run(manifest, tmp_path, capsys, *extra):
    code = main(["run", str(manifest), "--out", str(tmp_path / "out"), "--registration", "none", *extra])
    return code, capsys.readouterr()


def test_spect_times_1e25_stops_with_the_administered_activity_rule(coarse_patient, tmp_path, capsys):
    m = _copy(coarse_patient, tmp_path)
    for f in m.parent.glob("cycle*/spect_*.nii.gz"):
        _scale_image(f, 1e25)
    code, out = _run(m, tmp_path, capsys)
    assert code == 2
    assert "total SPECT activity" in out.err and "x the administered activity 7400 MBq decayed to the scan time" in out.err
    assert "cycle 1 scan 1 (4 h p.i., file" in out.err and "spect_004h.nii.gz" in out.err
    assert not (tmp_path / "out" / "summary.json").exists()


def test_empty_scan_stops_naming_cycle_scan_and_file(coarse_patient, tmp_path, capsys):
    m = _copy(coarse_patient, tmp_path)
    _scale_image(m.parent / "cycle2" / "spect_024h.nii.gz", 0.0)
    code, out = _run(m, tmp_path, capsys)
    assert code == 2
    assert "cycle 2 scan 2 (24 h p.i., file" in out.err and "spect_024h.nii.gz" in out.err
    assert "every VOI value is zero" in out.err


def test_nearly_empty_scan_stops(coarse_patient, tmp_path, capsys):
    m = _copy(coarse_patient, tmp_path)
    _scale_image(m.parent / "cycle1" / "spect_072h.nii.gz", 1e-3)
    code, out = _run(m, tmp_path, capsys)
    assert code == 2
    assert "cycle 1 scan 3 (72 h p.i., file" in out.err and "below 1 % of its neighbouring scans" in out.err


def test_radionuclide_contradicted_by_the_data(coarse_patient, tmp_path, capsys):
    code, out = _run(_with_nuclide(coarse_patient, tmp_path, "Lu-178"), tmp_path, capsys)
    assert code == 2
    assert "radionuclide 'Lu-178'" in out.err and "contradicts the data" in out.err
    assert "keeps its activity longer than that nuclide lives" in out.err


def test_data_falling_far_faster_than_physical_decay(coarse_patient, tmp_path, capsys):
    # the 72 h scans of both cycles scaled down 50 x (2 %, above the empty-scan rule): every VOI falls with
    # an apparent half-life of ~10 h, > 10 x faster than 177Lu decays (159 h)
    m = _copy(coarse_patient, tmp_path)
    for f in m.parent.glob("cycle*/spect_072h.nii.gz"):
        _scale_image(f, 1.0 / 50)
    code, out = _run(m, tmp_path, capsys)
    assert code == 2
    assert "radionuclide 'Lu-177'" in out.err and "faster than physical decay" in out.err


def test_triexp_with_three_scans_refused_before_computation(coarse_patient, tmp_path, capsys):
    code, out = _run(coarse_patient, tmp_path, capsys, "--fit-model", "triexp")
    assert code == 2
    assert "impossible request" in out.err and "'triexp' requested for all VOIs needs at least 5 time points" in out.err
    assert "cycle(s) 1 (3 scans), 2 (3 scans)" in out.err
    assert "defining VOIs" not in out.err  # no image step started


def test_trapezoid_far_from_auto_warns_with_both_numbers(coarse_patient, tmp_path, capsys):
    code, out = _run(coarse_patient, tmp_path, capsys, "--fit-model", "trapezoid")
    assert code == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    text = " ".join(summary["warnings"])
    assert "requested fit model 'trapezoid' gives a time integral of" in text
    assert "from the automatic choice" in text and "more than 20 % apart" in text
    assert "fit model 'trapezoid'" in out.err


def test_body_holding_under_5_percent_before_96h_warns(coarse_patient, tmp_path, capsys):
    # the synthetic body holds ~25 % of the decayed administered activity; x 0.1 -> ~2.5 %
    m = _copy(coarse_patient, tmp_path)
    for f in m.parent.glob("cycle*/spect_*.nii.gz"):
        _scale_image(f, 0.1)
    code, out = _run(m, tmp_path, capsys)
    assert code == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    lows = [w for w in summary["warnings"] if "the body holds" in w]
    assert len(lows) == 6 and all("% of the administered activity decayed to the scan time (< 5 % before 96 h)" in w
                                  for w in lows)
    assert "cycle 1 scan 1 (4 h p.i., file" in lows[0]
    held = float(lows[0].split("the body holds ")[1].split(" %")[0])
    assert 2.0 < held < 3.0  # 10 % of the ~25 % the synthetic body holds
    assert "the body holds" in out.err
    import csv

    with open(tmp_path / "out" / "voi_cycle_doses.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and all("plausibility:low_total_activity" in r["flags"] for r in rows)  # carried into cohort tables


def test_body_holding_under_1_percent_stops(coarse_patient, tmp_path, capsys):
    # a calibration 1000 x too high reads as ~0.025 % of the decayed administered activity: an error, not a dose
    m = _copy(coarse_patient, tmp_path)
    for f in m.parent.glob("cycle*/spect_*.nii.gz"):
        _scale_image(f, 1e-3)
    code, out = _run(m, tmp_path, capsys)
    assert code == 2
    assert "cycle 1 scan 1 (4 h p.i., file" in out.err and "below 1 % before 96 h is impossible" in out.err
    assert not (tmp_path / "out" / "summary.json").exists()


def _with_nuclide(coarse_patient, tmp_path, name):
    m = _copy(coarse_patient, tmp_path)
    d = json.loads(m.read_text())
    d["radionuclide"] = name
    m.write_text(json.dumps(d))
    return m


def test_long_lived_nuclide_refused_from_the_washout_between_the_last_scans(coarse_patient, tmp_path, capsys):
    # Lu-177m (T1/2 160 d) with 177Lu data: tumours still rise between 4 and 72 h, but between the last two
    # scans every VOI falls > 10 x faster than Lu-177m decays
    code, out = _run(_with_nuclide(coarse_patient, tmp_path, "Lu-177m"), tmp_path, capsys)
    assert code == 2
    assert "radionuclide 'Lu-177m'" in out.err and "between the last two scans of each cycle" in out.err


def test_other_nuclide_warned_in_summary_csv_and_stderr(coarse_patient, tmp_path, capsys):
    code, out = _run(_with_nuclide(coarse_patient, tmp_path, "I-131"), tmp_path, capsys)
    assert code == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert any("radionuclide 'I-131' is not Lu-177" in w for w in summary["warnings"])
    assert "is not Lu-177" in out.err
    import csv

    with open(tmp_path / "out" / "voi_cycle_doses.csv", newline="") as f:
        assert all("plausibility:radionuclide_not_Lu-177" in r["flags"] for r in csv.DictReader(f))


def test_pvc_override_for_an_unknown_voi_refused(coarse_patient, tmp_path, capsys):
    code, out = _run(coarse_patient, tmp_path, capsys, "--pvc-voi", "kidney_lft=no")
    assert code == 2
    assert "pvc_per_voi (--pvc-voi) names VOI(s) ['kidney_lft'] not in the manifest" in out.err


def test_rising_vois_over_a_short_span_are_not_refused():
    """Tumours still taking up activity between 4 h and 24 h rise at every VOI: no error for 177Lu (the
    retention check needs a span of one physical half-life); the same data with Lu-178 are refused."""
    from types import SimpleNamespace

    import pytest
    from LuDosimetryLib.errors import InputDataError
    from LuDosimetryLib.physics import plausibility
    from LuDosimetryLib.physics.radionuclides import get_nuclide

    def study(hours, nuclide):
        return SimpleNamespace(radionuclide=nuclide, cycles=[SimpleNamespace(cycle=1, hours=hours,
                                                                             timepoints=[None] * len(hours))])

    vois = [SimpleNamespace(name="t1"), SimpleNamespace(name="t2")]
    values = {("t1", 1, 0): 10.0, ("t1", 1, 1): 12.0, ("t2", 1, 0): 5.0, ("t2", 1, 1): 5.5}
    plausibility._check_decay(study([4.0, 24.0], "Lu-177"), values, vois, get_nuclide("Lu-177"))
    with pytest.raises(InputDataError, match="radionuclide 'Lu-178'"):
        plausibility._check_decay(study([4.0, 24.0], "Lu-178"), values, vois, get_nuclide("Lu-178"))


def test_scan_without_ct_named_when_the_reference_has_one(coarse_patient, tmp_path, capsys):
    m = _copy(coarse_patient, tmp_path)
    d = json.loads(m.read_text())
    del d["cycles"][1]["timepoints"][0]["ct"]
    m.write_text(json.dumps(d))
    code = main(["run", str(m), "--out", str(tmp_path / "out"), "--registration", "auto"])
    out = capsys.readouterr()
    assert code == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert any("registration: no CT for cycle 2 #1 while the reference scan has one" in w for w in summary["warnings"])
    assert "no CT for cycle 2 #1" in out.err
