"""Registration acceptance on a synthetic torso: SPECT blurred with FWHM 12 mm plus Poisson noise,
4.8 mm voxels, rigid patient motion (shifts up to 10 mm, rotations up to 3°); the residual error
at the tumour centres must be below 2 mm and the resampled total activity within 1 %."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from LuDosimetryLib.io import images
from LuDosimetryLib.imaging import registration as reg
from LuDosimetryLib.errors import InputDataError
from LuDosimetryLib.synthetic.spect_model import simulate_spect

# canonical anatomy (LPS mm about the volume centre): name, centre, semi-axes, relative uptake, HU
SHAPES = [
    ("body", (0, 0, 0), (140, 100, 125), 1.0, 40.0),
    ("lung_r", (-70, 0, 95), (50, 65, 70), 0.2, -800.0),
    ("lung_l", (70, 0, 95), (50, 65, 70), 0.2, -800.0),
    ("spine", (0, 70, 0), (16, 16, 120), 1.5, 700.0),
    ("liver", (-55, -10, 20), (75, 65, 50), 4.0, 55.0),
    ("spleen", (75, 35, 30), (32, 25, 40), 8.0, 45.0),
    ("kidney_l", (62, 50, -40), (25, 22, 40), 15.0, 30.0),
    ("kidney_r", (-62, 50, -50), (25, 22, 40), 15.0, 30.0),
]
TUMOURS = [((-45, -30, 30), 30.0), ((-95, 20, 0), 15.0), ((0, 10, -90), 20.0), ((40, -40, -110), 12.0)]
EARLY = {"body": 3.0, "kidney_l": 1.5, "kidney_r": 1.5, "tumour": 0.6}  # 4 h vs 24 h uptake pattern


def rotation_matrix(rot_deg):
    ax, ay, az = np.deg2rad(rot_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ rx @ ry


def true_point(q, rot_deg, shift_mm):
    """Where canonical (reference-scan) point q is in a scan taken at pose (R, t): R q + t."""
    return rotation_matrix(rot_deg) @ np.asarray(q, float) + np.asarray(shift_mm, float)


def _paint(shape, spacing, rot_deg, shift_mm, kind, uptake):
    nz, ny, nx = shape
    z, y, x = np.meshgrid(*[(np.arange(n) - (n - 1) / 2.0) * spacing for n in (nz, ny, nx)], indexing="ij")
    R, t = rotation_matrix(rot_deg), np.asarray(shift_mm, float)
    px, py, pz = x - t[0], y - t[1], z - t[2]
    qx = R[0, 0] * px + R[1, 0] * py + R[2, 0] * pz
    qy = R[0, 1] * px + R[1, 1] * py + R[2, 1] * pz
    qz = R[0, 2] * px + R[1, 2] * py + R[2, 2] * pz
    out = np.full(x.shape, 0.0 if kind == "spect" else -1000.0)
    for name, c, a, act, hu in SHAPES:
        inside = ((qx - c[0]) / a[0]) ** 2 + ((qy - c[1]) / a[1]) ** 2 + \
            (((qz - c[2]) / a[2]) ** 2 if a[2] < 1e8 else 0.0) <= 1.0
        out[inside] = act * uptake.get(name, 1.0) if kind == "spect" else hu
    for c, v in TUMOURS:
        r = (3 * v * 1000 / (4 * math.pi)) ** (1 / 3)
        inside = (qx - c[0]) ** 2 + (qy - c[1]) ** 2 + (qz - c[2]) ** 2 <= r * r
        out[inside] = 25.0 * uptake.get("tumour", 1.0) if kind == "spect" else 50.0
    return out


def _image(arr, spacing):
    img = sitk.GetImageFromArray(arr.astype(np.float32))
    img.SetSpacing((spacing,) * 3)
    img.SetOrigin(tuple(-(n - 1) / 2.0 * spacing for n in arr.shape[::-1]))
    return img


def make_scan(rot_deg=(0, 0, 0), shift_mm=(0, 0, 0), seed=0, uptake=None, scale=1.0, shape=(64, 64, 64),
              spacing=4.8, ct_spacing=4.8):
    """(SPECT Bq/mL, CT HU) of the torso at pose (rot, shift): FWHM 12 mm, Poisson noise."""
    rng = np.random.default_rng(seed)
    act = _paint(shape, spacing, rot_deg, shift_mm, "spect", uptake or {}) * 1e4 * scale
    spect = _image(simulate_spect(act, (spacing,) * 3, 12.0, 10.0, 1800.0, rng), spacing)
    cshape = tuple(int(round(n * spacing / ct_spacing)) for n in shape)
    hu = _paint(cshape, ct_spacing, rot_deg, shift_mm, "ct", {}) + rng.normal(0, 10, cshape)
    return spect, _image(hu, ct_spacing)


def residuals_mm(result, rot, shift):
    return [float(np.linalg.norm(np.asarray(result.map_point(c)) - true_point(c, rot, shift))) for c, _ in TUMOURS]


@pytest.fixture(scope="module")
def reference():
    return make_scan(seed=1)


@pytest.mark.parametrize("shift, uptake", [((8.0, -6.0, 5.0), EARLY), ((-4.5, 9.0, -7.5), {})])
def test_translation_residual_below_2mm_and_activity_kept(reference, shift, uptake):
    fixed, _ = reference
    moving, _ = make_scan((0, 0, 0), shift, seed=2, uptake=uptake, scale=0.4)
    res = reg.register_time_point(fixed, moving)  # no CT: auto = translation
    assert res.method == "translation" and res.ok, res.warnings
    err = residuals_mm(res, (0, 0, 0), shift)
    print(f"translation {shift}: residual at tumours {np.round(err, 2)} mm, {res.elapsed_s:.2f} s")
    assert max(err) < 2.0
    assert res.correlation_after > res.correlation_before
    rs = images.resample_to_reference(moving, fixed, res.transform)
    total_in = images.total_activity_MBq(moving)
    assert images.total_activity_MBq(rs.image) == pytest.approx(total_in, rel=0.01)
    assert rs.scale_factor == pytest.approx(1.0, abs=0.01)  # linear resampling alone keeps it


@pytest.mark.parametrize("rot, shift", [((2.0, -3.0, 1.5), (6.0, 5.0, -7.0)), ((-2.5, 2.0, 3.0), (-9.0, -2.0, 8.0))])
def test_rigid_ct_residual_below_2mm_with_rotation(reference, rot, shift):
    fixed, fixed_ct = reference
    moving, moving_ct = make_scan(rot, shift, seed=3, uptake=EARLY, scale=0.5, ct_spacing=3.2)  # CT on its own grid
    res = reg.register_time_point(fixed, moving, fixed_ct=fixed_ct, moving_ct=moving_ct)
    assert res.method == "rigid_ct" and res.ok, res.warnings
    err = residuals_mm(res, rot, shift)
    print(f"rigid_ct rot {rot} shift {shift}: residual {np.round(err, 2)} mm, {res.elapsed_s:.2f} s")
    assert max(err) < 2.0
    assert reg.rotation_angle_deg(res.transform) == pytest.approx(reg.rotation_angle_deg(
        sitk.AffineTransform(tuple(rotation_matrix(rot).ravel()), (0, 0, 0))), abs=0.5)
    rs = images.resample_to_reference(moving, fixed, res.transform)
    assert images.total_activity_MBq(rs.image) == pytest.approx(images.total_activity_MBq(moving), rel=0.01)


def test_local_box_registration_fixes_rotation_left_by_translation(reference):
    fixed, _ = reference
    rot, shift = (-2.7, -2.7, 3.0), (-8.9, -2.3, -1.8)
    moving, _ = make_scan(rot, shift, seed=4, scale=0.5)
    boxes = [(f"tumour{i}", c, 80.0) for i, (c, _) in enumerate(TUMOURS)]
    res = reg.register_time_point(fixed, moving, method="local", local_boxes=boxes)
    glob = residuals_mm(res, rot, shift)
    loc = [float(np.linalg.norm(np.asarray(res.local[f"tumour{i}"].map_point(c)) - true_point(c, rot, shift)))
           for i, (c, _) in enumerate(TUMOURS)]
    print(f"local: global translation residual {np.round(glob, 2)} mm, per-box rigid {np.round(loc, 2)} mm")
    assert max(glob) > 3.0  # translation alone cannot follow a 3° rotation far from the centre
    assert max(loc) < 2.0
    assert all(res.local[k].ok for k in res.local)


def test_rigid_ct_rejected_falls_back_to_translation(reference):
    fixed, fixed_ct = reference
    shift = (7.0, -5.0, 4.0)
    moving, moving_ct = make_scan((0, 0, 3.0), shift, seed=5)
    res = reg.register_time_point(fixed, moving, fixed_ct=fixed_ct, moving_ct=moving_ct, max_rotation_deg=1.0)
    assert res.method == "translation" and res.requested_method == "auto" and res.ok
    assert any("rigid_ct registration rejected" in w and "rotation" in w and "exceeds the bound of 1°" in w for w in res.warnings)
    assert any("fell back to translation" in w for w in res.warnings)


def test_all_methods_failing_returns_identity_flagged(reference):
    fixed, _ = reference
    moving, _ = make_scan((0, 0, 0), (9.0, 0.0, 0.0), seed=6)
    res = reg.register_time_point(fixed, moving, method="translation", max_translation_mm=2.0)
    assert res.quality == "failed" and res.method == "none"
    assert res.map_point((1.0, 2.0, 3.0)) == pytest.approx((1.0, 2.0, 3.0))
    assert any("exceeds the bound of 2 mm" in w for w in res.warnings)
    assert any("failed with every method" in w for w in res.warnings)


def test_register_cycles_large_shift_and_chaining(reference):
    fixed, fixed_ct = reference
    rot_c, shift_c = (3.0, -2.0, 4.0), (25.0, -18.0, 12.0)  # repositioning between cycles
    other, other_ct = make_scan(rot_c, shift_c, seed=7, scale=0.8)
    res = reg.register_cycles(fixed, other, fixed_ct, other_ct)
    err = residuals_mm(res, rot_c, shift_c)
    print(f"cycles: residual {np.round(err, 2)} mm ({res.method}, {res.elapsed_s:.2f} s)")
    assert res.ok and max(err) < 2.0
    tp = sitk.TranslationTransform(3, (1.0, 2.0, 3.0))
    chained = reg.chain_transforms(res.transform, tp)
    p = (10.0, -20.0, 30.0)
    expected = np.asarray(tp.TransformPoint(res.transform.TransformPoint(p)))
    np.testing.assert_allclose(chained.TransformPoint(p), expected, atol=1e-9)
    d = reg.transform_to_dict(res.transform)
    assert np.asarray(d["matrix_fixed_to_moving_mm"]).shape == (4, 4)


def test_none_method_deterministic_and_validation(reference):
    fixed, _ = reference
    moving, _ = make_scan((0, 0, 0), (3.0, 3.0, -3.0), seed=8)
    r0 = reg.register_time_point(fixed, moving, method="none")
    assert r0.method == "none" and r0.map_point((5, 5, 5)) == pytest.approx((5, 5, 5))
    a = reg.register_time_point(fixed, moving, method="translation")
    b = reg.register_time_point(fixed, moving, method="translation")
    np.testing.assert_allclose(a.translation_mm, b.translation_mm, atol=1e-6)
    with pytest.raises(ValueError, match="method must be one of"):
        reg.register_time_point(fixed, moving, method="bspline")
    with pytest.raises(ValueError, match="local_boxes"):
        reg.register_time_point(fixed, moving, method="local")
    with pytest.raises(InputDataError, match="fixed_spect: expected a SimpleITK image"):
        reg.register_time_point(np.zeros((4, 4, 4)), moving)
    with pytest.raises(InputDataError, match="outside the fixed image"):
        reg.register_local(fixed, moving, (5000.0, 0.0, 0.0), 50.0)
