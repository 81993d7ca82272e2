"""Image reading, geometry checks, activity-conserving resampling and counts → Bq/mL."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from LuDosimetryLib.io import images
from LuDosimetryLib.errors import InputDataError


def _blob_image(shape=(40, 44, 48), spacing=(4.8, 4.8, 4.8), origin=(-100.0, -110.0, -90.0), seed=0):
    """Smooth positive 'activity' (Bq/mL): a few Gaussian blobs on a low background inside an
    ellipsoidal 'body'; zero (air) at the edges of the field of view."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape).astype(float)
    body = sum(((g - (n - 1) / 2) / (0.4 * n)) ** 2 for g, n in zip((z, y, x), shape)) <= 1.0
    arr = np.where(body, 50.0, 0.0)
    for _ in range(4):
        c = [rng.uniform(0.3, 0.7) * n for n in shape]
        s = rng.uniform(2.0, 4.0)
        arr += 1000.0 * np.exp(-((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) / (2 * s * s))
    img = sitk.GetImageFromArray(arr.astype(np.float32))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    return img


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz", ".nii", ".mha", ".mhd"])
def test_read_image_formats_round_trip(tmp_path, suffix):
    img = _blob_image(shape=(12, 14, 16))
    path = tmp_path / f"spect{suffix}"
    sitk.WriteImage(img, str(path))
    out = images.read_image(path)
    assert out.GetSize() == img.GetSize()
    np.testing.assert_allclose(out.GetSpacing(), img.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(out.GetOrigin(), img.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(sitk.GetArrayViewFromImage(out), sitk.GetArrayViewFromImage(img), rtol=1e-6)


def test_read_image_errors_name_the_file(tmp_path):
    with pytest.raises(InputDataError, match=r"missing\.nrrd: file or folder not found"):
        images.read_image(tmp_path / "missing.nrrd")
    bad = tmp_path / "broken.nrrd"
    bad.write_text("this is not an image")
    with pytest.raises(InputDataError, match=r"broken\.nrrd: cannot be read"):
        images.read_image(bad)
    flat = sitk.Image(10, 12, sitk.sitkFloat32)
    sitk.WriteImage(flat, str(tmp_path / "slice.nrrd"))
    with pytest.raises(InputDataError, match=r"slice\.nrrd: image is 2-D"):
        images.read_image(tmp_path / "slice.nrrd")
    empty = tmp_path / "emptydir"
    empty.mkdir()
    with pytest.raises(InputDataError, match="emptydir: no readable DICOM image files found"):
        images.read_image(empty)


def test_nan_voxels_raise_or_zero(tmp_path):
    arr = np.ones((6, 7, 8), np.float32)
    arr[2, 3, 4] = np.nan
    arr[1, 1, 1] = np.inf
    img = sitk.GetImageFromArray(arr)
    for name in ("nan.nrrd", "nan.nii.gz", "nan.nii"):  # ITK's NIfTI reader hides NaN: checked on raw data
        path = tmp_path / name
        sitk.WriteImage(img, str(path))
        with pytest.raises(InputDataError, match=name.replace(".", r"\.") + ": 2 of 336 voxels are NaN"):
            images.read_image(path)
        out = images.read_image(path, nan_policy="zero")
        a = sitk.GetArrayViewFromImage(out)
        assert a[2, 3, 4] == 0 and a[1, 1, 1] == 0 and a.sum() == pytest.approx(336 - 2)
    assert np.isnan(sitk.GetArrayViewFromImage(img)[2, 3, 4])  # input untouched


def test_single_frame_4d_is_reduced_to_3d(tmp_path):
    arr = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(1, 2, 3, 4, 5)[0][None]  # (t=1, z, y, x)
    img = sitk.GetImageFromArray(arr.reshape(1, 2, 3, 4 * 5).reshape(1, 2, 3, 20), isVector=False)
    sitk.WriteImage(img, str(tmp_path / "t1.nii"))
    out = images.read_image(tmp_path / "t1.nii")
    assert out.GetDimension() == 3 and out.GetSize() == (20, 3, 2)


def test_dicom_folder_with_two_series_is_ambiguous(tmp_path):
    from test_dicom import write_ct

    folder = tmp_path / "mixed"
    from datetime import datetime

    write_ct(folder, datetime(2025, 1, 6, 9), n=4, prefix="a")
    write_ct(folder, datetime(2025, 1, 6, 10), n=5, prefix="b")
    with pytest.raises(InputDataError, match=r"2 DICOM series found, cannot tell which one to use"):
        images.read_image(folder)
    series = images.list_dicom_series(folder)
    sizes = sorted(len(files) for _, files in series)
    assert sizes == [4, 5]
    uid5 = [uid for uid, files in series if len(files) == 5][0]
    assert images.read_image(folder, series_uid=uid5).GetSize()[2] == 5


def test_check_same_geometry(tmp_path):
    a = _blob_image(shape=(10, 10, 10))
    images.check_same_geometry(a, a, "24 h SPECT", "4 h SPECT")
    b = sitk.Image(a)
    b.SetOrigin((0.0, 0.0, 0.0))
    with pytest.raises(InputDataError, match=r"24 h SPECT and 4 h SPECT are not on the same voxel grid: origin"):
        images.check_same_geometry(a, b, "24 h SPECT", "4 h SPECT")
    c = _blob_image(shape=(10, 10, 11))
    with pytest.raises(InputDataError, match="size"):
        images.check_same_geometry(a, c)


def _rigid(angle_deg, translation_mm, center):
    t = sitk.Euler3DTransform()
    t.SetCenter(center)
    t.SetRotation(math.radians(angle_deg), math.radians(-0.5 * angle_deg), math.radians(0.7 * angle_deg))
    t.SetTranslation(translation_mm)
    return t


@pytest.mark.parametrize("case", ["translation", "rotation", "finer_grid", "coarser_grid"])
def test_resample_preserves_total_activity_within_1_percent(case):
    img = _blob_image()
    center = img.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in img.GetSize()])
    ref, tx = img, None
    if case == "translation":
        tx = sitk.TranslationTransform(3, (3.1, -2.3, 1.7))
    elif case == "rotation":
        tx = _rigid(3.0, (2.0, 1.0, -4.0), center)
    else:
        new_spacing = 3.3 if case == "finer_grid" else 6.0
        size = [int(round(n * 4.8 / new_spacing)) for n in img.GetSize()]
        ref = sitk.Image(size, sitk.sitkFloat32)
        ref.SetSpacing((new_spacing,) * 3)
        ref.SetOrigin(img.GetOrigin())
    total_in = images.total_activity_MBq(img)
    raw = images.resample_to_reference(img, ref, tx, preserve_total=False).image
    rep = images.resample_to_reference(img, ref, tx)
    out = rep.image
    assert images.total_activity_MBq(out) == pytest.approx(total_in, rel=0.01)
    assert images.total_activity_MBq(raw) == pytest.approx(total_in, rel=0.01)  # linear interpolation alone
    assert rep.fraction_outside_fov < 0.01
    assert out.GetSize() == ref.GetSize() and out.GetPixelID() == sitk.sitkFloat32
    assert sitk.GetArrayViewFromImage(out).min() >= 0


def test_resample_reports_activity_leaving_the_field_of_view():
    img = _blob_image(shape=(20, 20, 20))
    tx = sitk.TranslationTransform(3, (0.0, 0.0, 40.0))  # reference point z -> image z+40: top part leaves
    rep = images.resample_to_reference(img, img, tx)
    out = rep.image
    # image slice k maps to reference slice k - 40/4.8 = k - 8.33: slices 0..7 fall outside
    expected_frac = sitk.GetArrayViewFromImage(img)[:8].sum() / sitk.GetArrayViewFromImage(img).sum()
    assert rep.fraction_outside_fov == pytest.approx(expected_frac, abs=0.03)
    assert any("outside the reference field of view" in w for w in rep.warnings)
    assert images.total_activity_MBq(out) == pytest.approx(images.total_activity_MBq(img) * (1 - rep.fraction_outside_fov),
                                                          rel=0.01)


def test_resample_amount_images_keeps_counts():
    img = _blob_image(shape=(20, 22, 24))
    ref = sitk.Image([36, 33, 30], sitk.sitkFloat32)
    ref.SetSpacing((3.2, 3.2, 3.2))
    ref.SetOrigin(img.GetOrigin())
    out = images.resample_to_reference(img, ref, quantity="amount").image
    assert float(sitk.GetArrayViewFromImage(out).sum()) == pytest.approx(float(sitk.GetArrayViewFromImage(img).sum()),
                                                                          rel=0.01)


def test_labelmap_nearest_neighbour_keeps_labels():
    lab = np.zeros((20, 20, 20), np.uint8)
    lab[5:10, 5:10, 5:10] = 3
    lab[12:16, 4:8, 10:18] = 7
    img = sitk.GetImageFromArray(lab)
    img.SetSpacing((4.8,) * 3)
    tx = sitk.TranslationTransform(3, (4.8, 0.0, -9.6))  # whole voxels: exact shift
    out = sitk.GetArrayFromImage(images.resample_labelmap(img, img, tx))
    assert set(np.unique(out)) == {0, 3, 7}
    # reference voxel (x, y, z) takes the label at (x + 1, y, z - 2)
    np.testing.assert_array_equal(out[7:12, 5:10, 4:9], 3)
    m = images.resample_mask(lab == 7, img, img, tx)
    assert m.dtype == bool and m.sum() == (lab == 7).sum()


def test_counts_to_bq_per_ml():
    counts = sitk.GetImageFromArray(np.full((4, 4, 4), 1200.0, np.float32))
    counts.SetSpacing((4.0, 5.0, 5.0))  # 0.1 mL voxels
    out = images.counts_to_bq_per_ml(counts, calibration_cps_per_MBq=10.0, acquisition_duration_s=1800.0)
    # 1200 counts / 1800 s / 10 cps/MBq = 0.0666.. MBq per voxel → / 0.1 mL
    expected = 1200.0 / 1800.0 / 10.0 * 1e6 / 0.1
    np.testing.assert_allclose(sitk.GetArrayViewFromImage(out), expected, rtol=1e-6)
    dc = images.counts_to_bq_per_ml(counts, 10.0, 1800.0, half_life_h=159.5)
    lam_t = math.log(2) / (159.5 * 3600) * 1800
    np.testing.assert_allclose(sitk.GetArrayViewFromImage(dc), expected * lam_t / (1 - math.exp(-lam_t)), rtol=1e-6)
    assert float(sitk.GetArrayViewFromImage(dc)[0, 0, 0]) / expected == pytest.approx(1.0011, abs=1e-4)
    with pytest.raises(InputDataError, match="calibration_cps_per_MBq must be a positive number"):
        images.counts_to_bq_per_ml(counts, 0.0, 1800.0, source="cycle1/spect_004h.nii.gz")
    with pytest.raises(InputDataError, match="acquisition_duration_s"):
        images.counts_to_bq_per_ml(counts, 10.0, None)
