"""Pipeline steps on small sphere phantoms: per-cycle re-segmentation and lesion tracking."""

import numpy as np
import pytest
import SimpleITK as sitk

from LuDosimetryLib.pipeline import Voi, resegment_cycles, track_lesions
from LuDosimetryLib.synthetic.spheres import make_sphere_phantom
from LuDosimetryLib.io.study import VoiDefinition


def _cycle_image(volume_ml, concentration, seed):
    return make_sphere_phantom([volume_ml], sphere_to_background=8.0, sphere_concentration_Bq_per_ml=concentration,
                               seed=seed)


def _smaller_lesion_on_same_grid(ph, volume_ml, concentration, seed):
    """The phantom's grid and centre with a sphere of ``volume_ml`` (mL) at ``concentration``."""
    from LuDosimetryLib.synthetic.spect_model import simulate_spect
    from LuDosimetryLib.synthetic.spheres import ellipsoid_occupancy

    shape = ph.true_image.shape
    z, y, x = np.meshgrid(*[(np.arange(n) + 0.5) * 4.8 for n in shape], indexing="ij")
    r = (3 * volume_ml * 1000 / (4 * np.pi)) ** (1 / 3)
    occ = ellipsoid_occupancy(x, y, z, ph.centers_mm[0], (r, r, r), 4.8)
    bg = ph.background_Bq_per_ml
    true = bg * (1 - occ) + concentration * occ
    img = sitk.GetImageFromArray(simulate_spect(true, (4.8,) * 3, rng=np.random.default_rng(seed)))
    img.CopyInformation(ph.image)
    return img


def _voi_for(ph, margin_vox=3):
    from scipy import ndimage

    roi = ndimage.binary_dilation(ph.masks[0], iterations=margin_vox)
    d = VoiDefinition(label=10, name="t1", kind="tumor", mode="adaptive_threshold")
    return Voi(definition=d, mask=ph.masks[0], volume_ml=ph.voxel_volumes_ml[0], mass_g=ph.voxel_volumes_ml[0], roi=roi)


def test_resegment_each_cycle_follows_volume_and_tracking_categories():
    # same position, cycle 2 with a smaller lesion (20 -> 12 mL) and a third of the uptake
    c1 = _cycle_image(20.0, 1.0e6, seed=1)
    voi = _voi_for(c1)
    registered = {(1, 1): c1.image, (2, 1): _smaller_lesion_on_same_grid(c1, 12.0, 0.55e6, seed=2)}
    refs = {1: (1, 1), 2: (2, 1)}
    warnings = resegment_cycles([voi], registered, refs, density=None, voxel_ml=4.8 ** 3 / 1000)
    assert warnings == []
    assert voi.volume_for(1) == pytest.approx(20.0, rel=0.15)
    assert voi.volume_for(2) == pytest.approx(12.0, rel=0.25)
    assert voi.mask_for(2).sum() < voi.mask_for(1).sum()
    rows = [{"voi": "t1", "cycle": 1, "ad_per_aa_Gy_per_GBq": 3.2}, {"voi": "t1", "cycle": 2, "ad_per_aa_Gy_per_GBq": 1.6}]
    out = track_lesions([voi], rows, refs, c1.image)
    (track,) = out["tracks"]
    assert track["lesion"] == "t1"
    # AD/AA 3.2 -> 1.6 Gy/GBq: -50 %, "decreasing" (< -30 %, seed 003); per-cycle volumes from re-segmentation
    assert track["category"] == "decreasing"
    assert track["change_percent"] == pytest.approx(-50.0)
    assert track["volume_ml_by_cycle"][2] < track["volume_ml_by_cycle"][1]
    assert out["heterogeneous"] is False


def test_as_drawn_vois_are_not_resegmented():
    c1 = _cycle_image(20.0, 1.0e6, seed=1)
    voi = _voi_for(c1)
    voi.definition.mode = "as_drawn"
    resegment_cycles([voi], {(1, 1): c1.image}, {1: (1, 1)}, density=None, voxel_ml=0.11)
    assert voi.per_cycle == {}
    assert np.array_equal(voi.mask_for(1), c1.masks[0])


def test_tracking_needs_two_cycles():
    c1 = _cycle_image(20.0, 1.0e6, seed=1)
    out = track_lesions([_voi_for(c1)], [], {1: (1, 1)}, c1.image)
    assert out["tracks"] == [] and "two cycles" in out["note"]
