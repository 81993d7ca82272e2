"""Rigid/affine transforms as 4x4 matrices in the RAS convention of 3D Slicer, and back.

SimpleITK/ITK work in LPS coordinates and a registration transform maps points of the fixed
(reference) image to the moving image. 3D Slicer works in RAS; a transform node holds a matrix
"to parent" (child -> world) and its inverse "from parent" (world -> child). Put under a moving
volume, a node whose *from-parent* matrix is the fixed -> moving map aligns that volume with the
fixed one -- so the ITK transform is Slicer's "from parent" matrix, after the LPS <-> RAS flip
``F = diag(-1, -1, 1)``: ``M_RAS = F M_LPS F``. (This is what Slicer's own ITK transform file
reader does; see vtkITKTransformConverter in Slicer's source.) Holding the matrix in the node
keeps it in the scene file, unlike a node read from a temporary transform file.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..errors import InputDataError

_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])


def affine_matrix_lps(transform: sitk.Transform, extent_mm: float = 500.0, tolerance_mm: float = 1e-4) -> np.ndarray:
    """4x4 homogeneous matrix (LPS, mm) of a transform that is affine (translation, Euler, versor,
    similarity, affine, or a composite of these): ``T(p) = A p + t``.

    The matrix is read from the transform itself (images of the origin and the unit vectors) and
    checked at random points within ``extent_mm``; a non-linear transform (B-spline,
    displacement field) raises InputDataError.
    """
    origin = np.asarray(transform.TransformPoint((0.0, 0.0, 0.0)), dtype=float)
    columns = [np.asarray(transform.TransformPoint(tuple(e)), dtype=float) - origin for e in np.eye(3)]
    matrix = np.eye(4)
    matrix[:3, :3] = np.column_stack(columns)
    matrix[:3, 3] = origin
    rng = np.random.default_rng(0)
    for p in rng.uniform(-extent_mm, extent_mm, size=(8, 3)):
        expected = matrix[:3, :3] @ p + origin
        got = np.asarray(transform.TransformPoint(tuple(float(x) for x in p)), dtype=float)
        if np.max(np.abs(got - expected)) > tolerance_mm:
            raise InputDataError(f"transform {transform.GetName()} is not affine (differs from its matrix by "
                                 f"{np.max(np.abs(got - expected)):.3g} mm): it cannot be stored as a matrix")
    return matrix


def slicer_from_parent_ras(transform: sitk.Transform) -> np.ndarray:
    """The 4x4 RAS matrix to set as a Slicer transform node's "from parent" transform, for an ITK
    transform mapping fixed (reference) points to moving points."""
    return _FLIP @ affine_matrix_lps(transform) @ _FLIP


def itk_transform_from_ras(from_parent_ras) -> sitk.AffineTransform:
    """Inverse of :func:`slicer_from_parent_ras`: the ITK (fixed -> moving, LPS) affine transform
    of a Slicer node's "from parent" RAS matrix."""
    m = np.asarray(from_parent_ras, dtype=float)
    if m.shape != (4, 4) or not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0]):
        raise InputDataError(f"transform matrix must be 4x4 homogeneous, got {m.tolist()}")
    lps = _FLIP @ m @ _FLIP
    tx = sitk.AffineTransform(3)
    tx.SetMatrix(tuple(float(x) for x in lps[:3, :3].ravel()))
    tx.SetTranslation(tuple(float(x) for x in lps[:3, 3]))
    return tx
