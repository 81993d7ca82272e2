"""Issue 10: robust registration search, SPECT check per VOI, QC in the results.

Fast tests use the analytic torso of test_registration (its own shapes, not the phantom);
the slow tests run the whole pipeline on the synthetic patient with large inter-cycle
repositioning (up to 20 mm along z, 10 mm in x/y), rotations up to 3°, Poisson noise, and on a
CT with no structure along z, and compare with the analytic truth (poses and doses).
"""

from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pytest
import SimpleITK as sitk
from LuDosimetryLib.errors import InputDataError
from LuDosimetryLib.imaging import registration as reg
from LuDosimetryLib.imaging import registration_check as rc
from LuDosimetryLib.imaging import registration_search as search
from LuDosimetryLib.pipeline import PipelineOptions
from test_registration import TUMOURS, make_scan, residuals_mm, true_point


@pytest.fixture(scope="module")
def reference():
    return make_scan(seed=11)


def test_cross_correlation_search_finds_a_30mm_shift(reference):
    fixed, _ = reference
    shift = (-28.0, 22.0, 30.0)
    moving, _ = make_scan((0, 0, 0), shift, seed=12, scale=0.5)
    f = search.coarse_image(fixed)
    m = sitk.Resample(search.coarse_image(moving), f, sitk.Transform(3, sitk.sitkIdentity), sitk.sitkLinear, 0.0)
    d = search.cross_correlation_shift(f, m, 40.0)
    assert np.allclose(d, shift, atol=4.0), d  # coarse grid 9.6 mm, parabolic sub-voxel peak
    starts = search.candidate_starts(fixed, moving)
    assert starts[0].name != "identity"
    assert np.linalg.norm(np.subtract(starts[0].translation_mm, shift)) < 5.0
    assert starts[0].score > next(s.score for s in starts if s.name == "identity")


def _tumour_masks(fixed):
    sp = fixed.GetSpacing()[0]
    nz, ny, nx = sitk.GetArrayViewFromImage(fixed).shape
    z, y, x = np.meshgrid(*[(np.arange(n) - (n - 1) / 2.0) * sp for n in (nz, ny, nx)], indexing="ij")
    out = []
    for c, v in TUMOURS:
        r = (3 * v * 1000 / (4 * np.pi)) ** (1 / 3)
        out.append((c, (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= r * r))
    return out


@pytest.mark.parametrize("rot, shift", [((0, 0, 0), (-27.0, 24.0, 29.0)), ((4.0, -3.0, 5.0), (25.0, -28.0, -22.0))])
def test_spect_only_large_shift_converges(reference, rot, shift):
    """SPECT only (no CT), translations near ±30 mm per axis. A translation cannot follow a 5°
    rotation (8 mm at 10 cm from the centre): the SPECT check finds those tumours and refines
    them, so every tumour ends within 1.5 mm of its true position."""
    fixed, _ = reference
    moving, _ = make_scan(rot, shift, seed=13, scale=0.6)
    res = reg.register_time_point(fixed, moving)
    assert res.ok and res.method == "translation" and res.start not in ("identity", ""), (res.start, res.warnings)
    boxes = [(f"t{i}",) + rc.voi_box(m, fixed, 20.0) + (rc.near_mask(m, fixed, 12.0),)
             for i, (_, m) in enumerate(_tumour_masks(fixed))]
    chk = rc.check_scan(fixed, moving, res.transform, boxes, 2.0)
    final = [np.linalg.norm(np.asarray((chk.vois[f"t{i}"].transform or chk.corrected_transform or res.transform)
                                       .TransformPoint(c))
                            - true_point(c, rot, shift)) for i, (c, _) in enumerate(TUMOURS)]
    print(f"SPECT only rot {rot}: global {np.round(residuals_mm(res, rot, shift), 2)} mm, after check "
          f"{np.round(final, 2)} mm, refined {[v.refined for v in chk.vois.values()]}")
    assert max(final) < 1.5
    if rot == (0, 0, 0):
        assert max(residuals_mm(res, rot, shift)) < 1.5 and chk.status == "ok"
    else:
        assert chk.status == "refined"


def test_rigid_ct_large_shift_and_5deg_rotation(reference):
    fixed, fixed_ct = reference
    rot, shift = (3.0, -4.0, 5.0), (28.0, -26.0, 30.0)
    moving, moving_ct = make_scan(rot, shift, seed=14, scale=0.5)
    res = reg.register_time_point(fixed, moving, fixed_ct=fixed_ct, moving_ct=moving_ct)
    assert res.ok and res.method == "rigid_ct", res.warnings
    assert res.metric_name.startswith("Mattes mutual information")
    assert res.start and res.start in res.starts
    assert max(residuals_mm(res, rot, shift)) < 2.0


def _sphere_pair(shift_mm):
    fixed, _ = make_scan(seed=21)
    moving, _ = make_scan((0, 0, 0), shift_mm, seed=22, scale=0.7)
    sp = fixed.GetSpacing()[0]
    nz, ny, nx = sitk.GetArrayViewFromImage(fixed).shape
    z, y, x = np.meshgrid(*[(np.arange(n) - (n - 1) / 2.0) * sp for n in (nz, ny, nx)], indexing="ij")
    c, v = TUMOURS[0]
    r = (3 * v * 1000 / (4 * np.pi)) ** (1 / 3)
    mask = (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= r * r
    return fixed, moving, mask


def test_check_measures_residual_and_refines():
    shift = (4.0, -3.0, 2.5)
    fixed, moving, mask = _sphere_pair(shift)
    centre, size = rc.voi_box(mask, fixed, 20.0)
    near = rc.near_mask(mask, fixed, 12.0)
    identity = sitk.Transform(3, sitk.sitkIdentity)
    d = rc.residual_shift_mm(fixed, moving, identity, centre, size, near)
    assert np.allclose(d, shift, atol=1.0), d  # the unregistered pose is off by exactly the shift
    good = sitk.TranslationTransform(3, shift)
    assert np.linalg.norm(rc.residual_shift_mm(fixed, moving, good, centre, size, near)) < 0.7
    chk = rc.check_voi(fixed, moving, identity, "t1", centre, size, 2.0, mask=near)
    assert chk.refined and chk.passed and chk.residual_mm == pytest.approx(np.linalg.norm(shift), abs=1.0)
    assert chk.residual_after_mm <= 2.0 and chk.correlation_after > chk.correlation_before
    assert np.linalg.norm(np.subtract(chk.transform.TransformPoint(centre), np.add(centre, shift))) < 1.0
    no = rc.check_voi(fixed, moving, identity, "t1", centre, size, 2.0, refine=False, mask=near)
    assert not no.passed and not no.refined and "refinement not applied" in no.note
    ok = rc.check_voi(fixed, moving, good, "t1", centre, size, 2.0, mask=near)
    assert ok.passed and not ok.refined
    outside = rc.check_voi(fixed, moving, good, "far", (5000.0, 0.0, 0.0), (40.0,) * 3, 2.0)
    assert not outside.passed and "could not be measured" in outside.note


def test_scan_status_and_flags():
    from LuDosimetryLib.imaging.study_registration import StudyRegistration
    from LuDosimetryLib.results.registration_qc import add_registration_flags

    chk_fail = rc.ScanCheck(2.0, {"a": rc.VoiCheck("a", 5.0, 5.0, 0.5, 0.6, passed=False, note="x"),
                                  "b": rc.VoiCheck("b", 3.0, 0.4, 0.5, 0.9, refined=True)})
    chk_ok = rc.ScanCheck(2.0, {"a": rc.VoiCheck("a", 0.3, 0.3, 0.9, 0.95)})
    assert chk_fail.status == "check_failed" and chk_ok.status == "ok"
    qc = StudyRegistration(reference_key=(1, 1), method="auto", threshold_mm=2.0,
                           checks={(2, 0): chk_fail, (1, 0): chk_ok})
    rows = [{"voi": "a", "cycle": 2, "flags": "pvc:rc"}, {"voi": "b", "cycle": 2, "flags": ""},
            {"voi": "a", "cycle": 1, "flags": ""}]
    add_registration_flags(rows, qc)
    assert [r["flags"] for r in rows] == ["pvc:rc;registration:check_failed", "registration:refined", ""]
    w = qc.warnings()
    assert any("cycle 2 scan 1, a: residual SPECT shift 5.0 mm" in x and "check failed" in x for x in w)
    assert any("cycle 2 scan 1, b" in x and "3.0 mm -> 0.4 mm" in x for x in w)


def test_check_threshold_option_validated():
    assert PipelineOptions(registration_check_mm=1.5).registration_check_mm == 1.5
    with pytest.raises(InputDataError, match="registration_check_mm"):
        PipelineOptions(registration_check_mm=0)


# ------------------------------------------------------------------------------------------------
# whole pipeline on the synthetic patient with large inter-cycle repositioning (slow)
# ------------------------------------------------------------------------------------------------

def _run(tmp, **cfg_kwargs):
    from LuDosimetryLib.io.study import load_study
    from LuDosimetryLib.io.study_images import load_study_images
    from LuDosimetryLib.pipeline import run_study, write_results
    from LuDosimetryLib.synthetic.phantom import PhantomConfig, write_phantom_study

    transforms = cfg_kwargs.pop("transforms", None)
    cfg = PhantomConfig(seed=3, **cfg_kwargs)
    manifest = write_phantom_study(tmp / "patient", cfg)
    study = load_study(manifest)
    result = run_study(study, load_study_images(study), PipelineOptions(), transforms=transforms)
    write_results(result, tmp / "out")
    return cfg, result


def _pose_errors_mm(cfg, result):
    """Per (scan, VOI): distance (mm) between where the VOI's final transform puts the VOI centre
    and where the phantom's true pose puts it."""
    from LuDosimetryLib.synthetic.phantom import make_poses

    poses = make_poses(cfg)
    qc = result.registration_qc
    errors = {}
    for key, res in qc.registrations.items():
        if res is None:
            continue
        pose = poses[(key[0], result.study.cycles[key[0] - 1].hours[key[1]])]
        for v in result.vois:
            if not v.included:
                continue
            centre, _ = rc.voi_box(v.mask, result.reference_spect, 0.0)
            tx = qc.checks[key].vois[v.name].transform or res.transform
            truth = pose.matrix() @ np.asarray(centre) + np.asarray(pose.translation_mm)
            errors[(key, v.name)] = float(np.linalg.norm(np.asarray(tx.TransformPoint(centre)) - truth))
    return errors


HARD = {"cycle_shift_mm": (10.0, 10.0, 20.0), "max_rotation_deg": 3.0}


@pytest.mark.slow
@pytest.mark.parametrize("low_structure_ct", [False, True])
def test_large_repositioning_every_voi_within_1_5mm_and_5_percent(tmp_path, low_structure_ct):
    from LuDosimetryLib.results.truth import compare_with_ground_truth
    from LuDosimetryLib.synthetic.phantom import make_poses

    cfg, result = _run(tmp_path, low_structure_ct=low_structure_ct, **HARD)
    poses = make_poses(cfg)
    z_moves = [abs(p.translation_mm[2]) for (c, _), p in poses.items() if c > 1]
    assert max(z_moves) > 15.0  # the repositioning really is large
    errors = _pose_errors_mm(cfg, result)
    worst = max(errors, key=errors.get)
    print(f"low-structure CT {low_structure_ct}: worst VOI pose error {errors[worst]:.2f} mm at {worst}")
    assert errors[worst] <= 1.5, worst
    cmp = compare_with_ground_truth(tmp_path / "out" / "voi_cycle_doses.csv", tmp_path / "patient" / "ground_truth.json",
                                    min_volume_ml=10.0)
    assert len(cmp.rows) == 4 * 5
    print(cmp.to_text())
    assert cmp.max_abs_relative_error < 0.05, cmp.to_text()
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    blocks = s["registration"]["scans"]
    assert len(blocks) == 11 and s["registration"]["check_threshold_mm"] == 2.0
    if low_structure_ct:  # the CT cannot tell the z position: the SPECT check had to act
        assert any(b["check_status"] == "refined" for b in blocks)
    for b in blocks:
        assert b["method"] and b["start"] and len(b["translation_mm"]) == 3 and len(b["rotation_deg"]) == 3
        assert b["metric"]["name"] and b["spect_correlation_after"] is not None
        assert set(b["vois"]) == {v.name for v in result.vois if v.included}
        for name, v in b["vois"].items():
            assert v["passed"] and (v["refined"] or b["scan_correction_mm"] is not None or v["residual_mm"] <= 2.0), \
                (b["scan"], name, v)
            assert v["residual_after_refinement_mm"] <= 2.0


@pytest.mark.slow
def test_broken_registration_is_flagged_everywhere(tmp_path, caplog):
    """Identity forced on one scan (cycle 2, first scan, which the phantom moved by 10-20 mm):
    that scan and its VOIs are flagged in summary.json, the CSV, the report and on stderr."""
    broken = (2, 0)
    with caplog.at_level(logging.WARNING):
        cfg, result = _run(tmp_path, transforms={broken: sitk.Transform(3, sitk.sitkIdentity)}, **HARD)
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    block = next(b for b in s["registration"]["scans"] if b["cycle"] == 2 and b["timepoint_index"] == 0)
    assert block["method"] == "given" and block["check_status"] in ("refined", "check_failed")
    big = {n: v for n, v in block["vois"].items() if v["residual_mm"] is None or v["residual_mm"] > 2.0}
    assert len(big) >= 5, block["vois"]  # the forced identity leaves every VOI off by the repositioning
    others = [b for b in s["registration"]["scans"] if b is not block]
    assert all(b["check_status"] == "ok" for b in others if b["cycle"] != 2)
    with open(tmp_path / "out" / "voi_cycle_doses.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for name in big:
        flags = next(r["flags"] for r in rows if r["voi"] == name and r["cycle"] == "2")
        assert "registration:refined" in flags or "registration:check_failed" in flags, (name, flags)
    assert not any("registration:" in r["flags"] for r in rows if r["cycle"] == "1")
    assert any("cycle 2 scan 1" in w for w in s["warnings"])
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("cycle 2 scan 1" in m and any(n in m for n in big) for m in logged)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Registration quality (SPECT check per VOI)" in html
    first_figure = html.index("registration check cycle ")
    assert html[first_figure:first_figure + 40].startswith("registration check cycle 2 scan 1")
    # the true pose of the broken scan: every VOI that passed the check is within the check's threshold
    # (2 mm; measured: 0.1-1.7 mm after the scan-level correction of a ~20 mm error and local refinements)
    errors = _pose_errors_mm(cfg, result)
    passed = [n for n, v in block["vois"].items() if v["passed"]]
    assert passed and all(errors[(broken, n)] <= 2.0 for n in passed), {n: errors[(broken, n)] for n in passed}


@pytest.mark.slow
def test_report_panels_are_large_enough(tmp_path):
    import base64
    import io

    import matplotlib.image as mpimg
    from LuDosimetryLib.results.report_registration import registration_section

    _, result = _run(tmp_path, n_cycles=2, hours=(4.0, 24.0))
    html = registration_section(result)
    imgs = [part.split('"')[0] for part in html.split("data:image/png;base64,")[1:]]
    assert len(imgs) == 3  # one figure per registered scan
    n_vois = len([v for v in result.vois if v.included])
    for b64 in imgs:
        arr = mpimg.imread(io.BytesIO(base64.b64decode(b64)), format="png")
        assert arr.shape[1] / n_vois >= 300 and arr.shape[0] / 2 >= 300, arr.shape
