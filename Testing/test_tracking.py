"""Lesion tracking across cycles and seed-003 response categories / heterogeneity flag."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from LuDosimetryLib.imaging import tracking
from LuDosimetryLib.errors import InputDataError

SHAPE = (40, 40, 40)
SPACING = 4.8


def _ball(center_vox, radius_vox):
    z, y, x = np.indices(SHAPE)
    c = center_vox
    return (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= radius_vox ** 2


def _image(lesions):
    """Activity image (Bq/mL): each (mask, concentration) uniform, zero elsewhere."""
    arr = np.zeros(SHAPE, np.float32)
    for m, c in lesions:
        arr[m] = c
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((SPACING,) * 3)
    return img


# lesion -> centre (voxels) per cycle (None = absent) and concentration (Bq/mL) per cycle
LESIONS = {
    "decreasing": ([(10, 10, 10)] * 4, [1e5, 8e4, 6e4, 5e4]),
    "stable": ([(10, 30, 10)] * 4, [1e5, 1.05e5, 9.5e4, 1.1e5]),
    "increasing": ([(30, 10, 10)] * 4, [1e5, 1.2e5, 1.4e5, 1.5e5]),
    "disappearing": ([(30, 30, 10), (30, 30, 10), None, None], [1e5, 5e4, 0, 0]),
    "new": ([None, None, (20, 20, 30), (20, 20, 30)], [0, 0, 5e4, 6e4]),
    "moving": ([(10, 10, 30), (11, 10, 30), (11, 11, 31), (12, 11, 31)], [1e5, 1e5, 1e5, 1e5]),
    "returning": ([(30, 30, 30), None, None, (30, 31, 30)], [1e5, 0, 0, 1.6e5]),
}


def _cycles():
    masks, imgs = [], []
    for c in range(4):
        ms, content = [], []
        for centres, conc in LESIONS.values():
            if centres[c] is not None:
                m = _ball(centres[c], 3.0)
                ms.append(m)
                content.append((m, conc[c]))
        masks.append(ms)
        imgs.append(_image(content))
    return masks, imgs


def test_tracks_categories_and_heterogeneity():
    masks, imgs = _cycles()
    res = tracking.match_lesions(masks, imgs[0], images_by_cycle=imgs)
    assert len(res.tracks) == len(LESIONS)  # the returning lesion keeps its track
    by_first_obs = {}
    for t in res.tracks:
        c0 = next(c for c, m in enumerate(t.members) if m is not None)
        by_first_obs[(c0, t.members[c0])] = t
    names = list(LESIONS)
    cats = {}
    for name in names:
        centres, _ = LESIONS[name]
        c0 = next(c for c, x in enumerate(centres) if x is not None)
        present_before = [n for n in names if LESIONS[n][0][c0] is not None]
        idx = present_before.index(name)
        cats[name] = by_first_obs[(c0, idx)]
    assert cats["decreasing"].category == "decreasing"
    assert cats["decreasing"].change_percent == pytest.approx(-50.0, abs=1e-6)
    assert cats["stable"].category == "stable" and cats["stable"].change_percent == pytest.approx(10.0, abs=1e-6)
    assert cats["increasing"].category == "increasing" and cats["increasing"].change_percent == pytest.approx(50.0)
    assert cats["disappearing"].category == "disappearing"
    assert cats["disappearing"].members[2:] == [None, None]
    assert cats["new"].category == "new" and cats["new"].members[:2] == [None, None]
    assert cats["moving"].category == "stable" and all(m is not None for m in cats["moving"].members)
    assert cats["returning"].members[1:3] == [None, None] and cats["returning"].category == "increasing"
    # per-track values are total uptake: concentration × volume
    vol_ml = _ball((10, 10, 10), 3.0).sum() * SPACING ** 3 / 1000
    np.testing.assert_allclose(cats["decreasing"].values, [c * vol_ml / 1e6 for c in LESIONS["decreasing"][1]],
                               rtol=1e-5)
    assert res.counts == {"disappearing": 1, "decreasing": 1, "stable": 2, "increasing": 2, "new": 1}
    assert res.heterogeneous
    rows = res.to_rows()
    assert len(rows) == 7 and {"track", "category", "cycle4_value"} <= set(rows[0])


def test_no_heterogeneity_when_all_respond_and_labelmap_input():
    lab_c1 = np.zeros(SHAPE, np.uint8)
    lab_c2 = np.zeros(SHAPE, np.uint8)
    lab_c1[_ball((10, 10, 10), 3)] = 1
    lab_c1[_ball((30, 30, 30), 3)] = 2
    lab_c2[_ball((30, 30, 30), 3)] = 5  # label values need not agree between cycles
    res = tracking.match_lesions([lab_c1, lab_c2], (SPACING,) * 3, values_by_cycle=[[10.0, 10.0], [5.0]])
    assert sorted(t.category for t in res.tracks) == ["decreasing", "disappearing"]
    assert not res.heterogeneous
    bool_mask = lab_c1 > 0  # one bool mask: components are lesions
    res2 = tracking.match_lesions([bool_mask, bool_mask], (SPACING,) * 3, values_by_cycle=[[1, 1], [1, 1]])
    assert len(res2.tracks) == 2 and all(t.category == "stable" for t in res2.tracks)


def test_far_lesions_are_not_matched():
    a = [_ball((10, 10, 10), 2)]
    b = [_ball((10, 10, 16), 2)]  # 6 voxels = 28.8 mm away, no overlap
    res = tracking.match_lesions([a, b], (SPACING,) * 3, values_by_cycle=[[1.0], [1.0]], max_distance_mm=20.0)
    assert [t.category for t in res.tracks] == ["disappearing", "new"]
    res = tracking.match_lesions([a, b], (SPACING,) * 3, values_by_cycle=[[1.0], [1.0]], max_distance_mm=40.0)
    assert [t.category for t in res.tracks] == ["stable"]


def test_categorize_rules_and_errors():
    assert tracking.categorize(100, 69.9) == ("decreasing", pytest.approx(-30.1))
    assert tracking.categorize(100, 70)[0] == "stable" and tracking.categorize(100, 130)[0] == "stable"
    assert tracking.categorize(100, 130.1)[0] == "increasing"
    assert tracking.categorize(None, None, False, False) == (None, None)
    assert tracking.response_heterogeneity(["new", "stable", "disappearing"])
    assert not tracking.response_heterogeneity(["increasing", "stable", "new"])
    with pytest.raises(InputDataError, match="lesion values are needed"):
        tracking.match_lesions([[_ball((10, 10, 10), 2)]] * 2, (SPACING,) * 3)
    with pytest.raises(InputDataError, match=r"values_by_cycle\[0\]: 2 values for 1 lesions"):
        tracking.match_lesions([[_ball((10, 10, 10), 2)]], (SPACING,) * 3, values_by_cycle=[[1, 2]])
    with pytest.raises(InputDataError, match="register them first"):
        tracking.match_lesions([[_ball((10, 10, 10), 2), np.ones((5, 5, 5), bool)]], (SPACING,) * 3,
                               values_by_cycle=[[1, 2]])
