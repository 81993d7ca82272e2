"""ITK (fixed -> moving, LPS) transforms <-> Slicer "from parent" RAS matrices."""

import numpy as np
import pytest
import SimpleITK as sitk

from LuDosimetryLib.errors import InputDataError
from LuDosimetryLib.imaging.transform_matrix import affine_matrix_lps, itk_transform_from_ras, slicer_from_parent_ras


def _euler():
    tx = sitk.Euler3DTransform((10.0, -20.0, 5.0), 0.05, -0.03, 0.1, (3.0, -7.0, 12.0))
    return tx


def test_ras_matrix_maps_ras_points_like_the_itk_transform_maps_lps_points():
    tx = _euler()
    m = slicer_from_parent_ras(tx)
    rng = np.random.default_rng(1)
    for p_lps in rng.uniform(-200, 200, size=(5, 3)):
        q_lps = np.array(tx.TransformPoint(tuple(p_lps)))
        p_ras = np.array([-p_lps[0], -p_lps[1], p_lps[2], 1.0])
        q_ras = m @ p_ras
        # independent: flip the ITK result to RAS by hand
        assert q_ras[:3] == pytest.approx([-q_lps[0], -q_lps[1], q_lps[2]], abs=1e-9)
    # a pure translation of +3 mm along L (LPS x) is -3 mm along R
    shift = slicer_from_parent_ras(sitk.TranslationTransform(3, (3.0, 4.0, 5.0)))
    assert shift[:3, 3] == pytest.approx([-3.0, -4.0, 5.0]) and shift[:3, :3] == pytest.approx(np.eye(3))


def test_round_trip_and_composite():
    tx = _euler()
    back = itk_transform_from_ras(slicer_from_parent_ras(tx))
    for p in [(0.0, 0.0, 0.0), (100.0, -50.0, 20.0), (-30.0, 80.0, -60.0)]:
        assert back.TransformPoint(p) == pytest.approx(tx.TransformPoint(p), abs=1e-9)
    composite = sitk.CompositeTransform([sitk.TranslationTransform(3, (1.0, 2.0, 3.0)), tx])
    m = affine_matrix_lps(composite)
    for p in [(5.0, 6.0, 7.0), (-100.0, 20.0, 0.0)]:
        assert (m @ np.r_[p, 1.0])[:3] == pytest.approx(composite.TransformPoint(p), abs=1e-9)


def test_non_linear_and_bad_matrices_are_refused():
    bspline = sitk.BSplineTransform(3)
    bspline.SetTransformDomainOrigin((-600.0,) * 3)
    bspline.SetTransformDomainPhysicalDimensions((1200.0,) * 3)
    bspline.SetTransformDomainMeshSize((3, 3, 3))
    bspline.SetParameters(tuple(np.random.default_rng(2).normal(0.0, 5.0, len(bspline.GetParameters()))))
    with pytest.raises(InputDataError, match="not affine"):
        affine_matrix_lps(bspline)
    with pytest.raises(InputDataError, match="4x4"):
        itk_transform_from_ras(np.eye(3))
