"""Adaptive-threshold segmentation on simulated spheres (Gaussian FWHM 12 mm, 4.8 mm voxels,
Poisson noise, sphere-to-background 4:1 to 10:1): volumes within 15 % of truth for spheres of
10 mL and more, with the calibration derived from a separate phantom (other volumes, SBRs and
noise seeds)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from LuDosimetryLib.imaging import segmentation as seg
from LuDosimetryLib.errors import InputDataError
from LuDosimetryLib.synthetic.spheres import make_sphere_phantom

PATIENT_LIKE = dict(sphere_concentration_Bq_per_ml=1e5, sensitivity_cps_per_MBq=10.0)  # ~7 % noise in the sphere


def _calibrate(noise_kw):
    imgs, masks = [], []
    for sbr in (3, 5, 8, 12):
        ph = make_sphere_phantom([8, 12, 20, 40, 80, 120], sphere_to_background=sbr, seed=100 + sbr, **noise_kw)
        imgs.append(ph.image)
        masks.append(ph.masks)
    return seg.calibrate_adaptive_threshold(imgs, masks)


def _volume_errors(cal, noise_kw):
    out = []
    for sbr in (4, 6, 8, 10):
        ph = make_sphere_phantom([10, 15, 25, 50, 100], sphere_to_background=sbr, seed=7 + sbr, **noise_kw)
        for v_true, m in zip(ph.voxel_volumes_ml, ph.masks):
            roi = seg._dilate(m, 15.0, ph.image.GetSpacing())  # rough oversized ROI: +15 mm
            r = seg.adaptive_threshold_segment(ph.image, roi, cal)
            assert r.converged and r.n_components == 1
            out.append((sbr, v_true, r.volume_ml, 100.0 * (r.volume_ml - v_true) / v_true))
    return out


@pytest.mark.parametrize("noise_kw, max_err, max_rms", [({}, 15.0, 6.0), (PATIENT_LIKE, 15.0, 8.0)],
                         ids=["phantom-default-noise", "patient-like-noise"])
def test_adaptive_threshold_volumes_within_15_percent(noise_kw, max_err, max_rms):
    cal = _calibrate(noise_kw)
    assert cal.rms_volume_error_percent < 10.0
    assert 0.25 < cal.fraction(6.0, 20.0) < 0.5
    errs = _volume_errors(cal, noise_kw)
    for sbr, v, vm, e in errs:
        print(f"SBR {sbr:>2}:1  true {v:6.1f} mL  segmented {vm:6.1f} mL  error {e:+5.1f} %")
    e = np.array([x[3] for x in errs])
    print(f"max |error| {np.abs(e).max():.1f} %, rms {np.sqrt(np.mean(e ** 2)):.1f} %")
    assert np.all(np.abs(e) < max_err)
    assert np.sqrt(np.mean(e ** 2)) < max_rms


def test_default_calibration_on_spheres():
    errs = _volume_errors(seg.DEFAULT_CALIBRATION, {})
    e = np.array([x[3] for x in errs])
    assert np.all(np.abs(e) < 15.0), errs


def test_result_fields_and_threshold_relation():
    ph = make_sphere_phantom([30], sphere_to_background=6, seed=3)
    roi = seg._dilate(ph.masks[0], 15.0, ph.image.GetSpacing())
    r = seg.adaptive_threshold_segment(ph.image, roi)
    arr = sitk.GetArrayViewFromImage(ph.image)
    assert r.threshold_value == pytest.approx(r.background + r.threshold_fraction * (r.peak_value - r.background))
    assert np.all(arr[r.mask] >= r.threshold_value - 1e-3)
    assert r.background == pytest.approx(ph.background_Bq_per_ml, rel=0.05)  # shell beyond the spill-out
    assert r.source_to_background > 3.0
    assert r.volume_ml == pytest.approx(r.mask.sum() * 4.8 ** 3 / 1000)
    assert r.history and r.history[-1][0] == pytest.approx(r.threshold_fraction)
    assert not (r.mask & ~roi).any()
    assert not ph.masks[0] is r.mask and roi.sum() > r.mask.sum()


def test_calibration_model_and_fit():
    pts = [{"fraction": 0.3 + 0.5 / s + 0.2 / v ** (1 / 3), "sbr": s, "volume_ml": v}
           for s in (2.0, 4.0, 8.0) for v in (5.0, 20.0, 80.0)]
    cal = seg.fit_threshold_calibration(pts)
    assert (cal.a, cal.b, cal.c) == pytest.approx((0.3, 0.5, 0.2), abs=1e-9)
    assert cal.fraction(float("inf"), 1e9) == pytest.approx(0.3, abs=1e-3)
    assert seg.ThresholdCalibration(a=2.0, b=0, c=0).fraction(5, 5) == 0.85  # clipped to f_max
    with pytest.raises(InputDataError, match="at least 3 spheres"):
        seg.fit_threshold_calibration(pts[:2])


def test_two_lesions_in_one_roi_components_and_volume_rule():
    ph = make_sphere_phantom([6, 40], sphere_to_background=8, seed=4, margin_mm=20.0)
    roi = seg._dilate(ph.masks[0] | ph.masks[1], 12.0, ph.image.GetSpacing())
    r = seg.adaptive_threshold_segment(ph.image, roi)
    assert r.n_components == 2
    comps = seg.split_components(r.mask, ph.image)
    assert len(comps) == 2 and comps[0].volume_ml > comps[1].volume_ml
    assert comps[0].volume_ml == pytest.approx(ph.voxel_volumes_ml[1], rel=0.15)
    rule = seg.component_volume_rule(comps, min_volume_ml=10.0)
    assert list(rule.included) == ["lesion_1"] and list(rule.excluded) == ["lesion_2"]
    assert rule.excluded["lesion_2"] == pytest.approx(comps[1].volume_ml)
    assert seg.apply_minimum_volume_rule({"a": 12.0, "b": 3.0}).excluded == {"b": 3.0}
    only_peak = seg.adaptive_threshold_segment(ph.image, roi, keep="peak_component")
    assert only_peak.n_components == 1 and (only_peak.mask & ph.masks[1]).sum() > 0.8 * ph.masks[1].sum()
    assert len(seg.split_components(r.mask, ph.image.GetSpacing(), min_volume_ml=10.0)) == 1


def test_fixed_threshold_and_warnings():
    ph = make_sphere_phantom([30], sphere_to_background=6, seed=5)
    m = ph.masks[0]
    roi = seg._dilate(m, 15.0, ph.image.GetSpacing())
    fx = seg.fixed_threshold_segment(ph.image, roi, 0.42)
    arr = sitk.GetArrayViewFromImage(ph.image)
    assert fx.sum() == int((roi & (arr >= 0.42 * arr[roi].max())).sum())
    tight = seg.adaptive_threshold_segment(ph.image, m)  # ROI = truth: no room around the tumour
    assert any("touches the ROI border" in w for w in tight.warnings)
    with pytest.raises(InputDataError, match="roi_mask: the ROI is empty"):
        seg.adaptive_threshold_segment(ph.image, np.zeros_like(m))
    with pytest.raises(InputDataError, match=r"roi_mask: shape \(3, 3, 3\)"):
        seg.adaptive_threshold_segment(ph.image, np.ones((3, 3, 3), bool))
    with pytest.raises(InputDataError, match="fraction_of_max"):
        seg.fixed_threshold_segment(ph.image, roi, 1.5)
    flat = sitk.Image(ph.image.GetSize(), sitk.sitkFloat32)
    with pytest.raises(InputDataError, match="no positive value inside the ROI"):
        seg.adaptive_threshold_segment(flat, roi)
    before = sitk.GetArrayFromImage(ph.image).copy()
    seg.adaptive_threshold_segment(ph.image, roi)
    np.testing.assert_array_equal(before, sitk.GetArrayViewFromImage(ph.image))  # input untouched


# ---------------------------------------------------------------------------------------------
# organs (kidneys): user labels, TotalSegmentator guard, SPECT threshold fallback
# ---------------------------------------------------------------------------------------------

def test_totalsegmentator_guard_gives_hint(monkeypatch, tmp_path):
    import importlib.util

    from LuDosimetryLib.imaging import organs

    real_find_spec = importlib.util.find_spec
    ct = sitk.Image(8, 8, 8, sitk.sitkInt16)
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "totalsegmentator" else real_find_spec(name, *a))
    with pytest.raises(InputDataError, match="'totalsegmentator' Python package is not installed.*pip install "
                                             "TotalSegmentator"):
        organs.segment_organs_totalsegmentator(ct)
    # package present but no weights: still refused, nothing downloaded
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "totalsegmentator" else real_find_spec(name, *a))
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(tmp_path))
    ok, reason = organs.totalsegmentator_available()
    assert not ok and "weights not found" in reason
    with pytest.raises(InputDataError, match="weights not found.*spect_threshold_organ"):
        organs.segment_organs_totalsegmentator(ct)


def _kidney_scene():
    shape, sp = (48, 48, 48), 4.8
    z, y, x = np.indices(shape).astype(float)
    kidney = ((z - 24) / 8.0) ** 2 + ((y - 20) / 5.0) ** 2 + ((x - 14) / 5.0) ** 2 <= 1.0  # ~ 0.2 L
    other = ((z - 24) / 8.0) ** 2 + ((y - 20) / 5.0) ** 2 + ((x - 34) / 5.0) ** 2 <= 1.0
    true = np.where(kidney | other, 20.0, 1.0)
    from LuDosimetryLib.synthetic.spect_model import simulate_spect

    img = sitk.GetImageFromArray(simulate_spect(true * 1e4, (sp,) * 3, 12.0, 10.0, 1800.0, np.random.default_rng(2)))
    img.SetSpacing((sp,) * 3)
    return img, kidney, other


def test_organ_masks_from_labelmap_and_spect_fallback():
    from LuDosimetryLib.imaging import organs

    img, kidney, other = _kidney_scene()
    lab = np.zeros(kidney.shape, np.uint8)
    lab[kidney] = 1
    lab[other] = 2
    lab_img = sitk.GetImageFromArray(lab)
    lab_img.SetSpacing(img.GetSpacing())
    masks, warns = organs.organ_masks_from_labelmap(lab_img, {"1": {"name": "kidney_left"}, 2: "kidney_right",
                                                              3: "spleen"})
    assert masks["kidney_left"].sum() == kidney.sum() and masks["kidney_right"].sum() == other.sum()
    assert warns == ["segmentation: label 3 (spleen) is empty"]
    coarse = sitk.Image([24, 24, 24], sitk.sitkFloat32)
    coarse.SetSpacing((9.6,) * 3)
    coarse.SetOrigin((2.4,) * 3)
    masks2, warns2 = organs.organ_masks_from_labelmap(lab_img, {1: "kidney_left"}, reference=coarse)
    assert masks2["kidney_left"].shape == (24, 24, 24) and "resampled" in warns2[0]
    assert masks2["kidney_left"].sum() * 9.6 ** 3 == pytest.approx(kidney.sum() * 4.8 ** 3, rel=0.2)
    roi = seg._dilate(kidney, 15.0, img.GetSpacing())
    m, info = organs.spect_threshold_organ(img, roi, fraction_of_max=0.4)
    assert not (m & other).any()  # only the kidney inside the ROI
    assert info["volume_ml"] == pytest.approx(kidney.sum() * 4.8 ** 3 / 1000, rel=0.3)
    assert int(m.sum()) == info["n_voxels"]
    with pytest.raises(InputDataError, match="roi_mask: the ROI is empty"):
        organs.spect_threshold_organ(img, np.zeros_like(roi))


def test_calibration_from_json(tmp_path):
    import json

    from LuDosimetryLib.imaging.segmentation import ThresholdCalibration, calibration_from_json

    p = tmp_path / "cal.json"
    p.write_text(json.dumps({"calibration": {"a": 0.4, "b": -0.02, "c": 0.05, "f_min": 0.2, "source": "spheres",
                                             "volume_range_ml": [10, None], "extra": 1}}))
    cal = calibration_from_json(p)
    assert isinstance(cal, ThresholdCalibration)
    assert (cal.a, cal.b, cal.c, cal.f_min, cal.f_max, cal.source) == (0.4, -0.02, 0.05, 0.2, 0.85, "spheres")
    assert cal.volume_range_ml == (10.0, float("inf"))
    assert cal.fraction(4.0, 27.0) == pytest.approx(0.4 - 0.02 / 4.0 + 0.05 / 3.0)
    p.write_text(json.dumps({"a": 0.4, "b": 0.0}))
    with pytest.raises(InputDataError, match=r"cal.json: needs the numbers a, b and c"):
        calibration_from_json(p)
    p.write_text(json.dumps({"a": 0.4, "b": 0.0, "c": "x"}))
    with pytest.raises(InputDataError, match="field c must be a finite number"):
        calibration_from_json(p)
    p.write_text("{not json")
    with pytest.raises(InputDataError, match="cannot be read as JSON"):
        calibration_from_json(p)
    p.write_text(json.dumps({"a": 0.4, "b": 0.0, "c": 0.0, "f_min": 0.9, "f_max": 0.5}))
    with pytest.raises(InputDataError, match="f_min < f_max"):
        calibration_from_json(p)
