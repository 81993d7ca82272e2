"""One mask per VOI: a tumour inside an organ keeps its voxels (a flattened labelmap loses them)."""

import numpy as np
import pytest
import SimpleITK as sitk

from LuDosimetryLib.errors import InputDataError
from LuDosimetryLib.imaging.voi_masks import check_voi_names, labelmap_from_masks, voi_rois
from LuDosimetryLib.io.study import Cycle, Study, TimePoint, VoiDefinition
from LuDosimetryLib.pipeline import PipelineOptions, StudyImages, define_vois, measure_voi_values


def _scene():
    """20^3 grid of 4 mm voxels: liver = 12^3 cube, tumour = 4^3 cube inside it (hotter)."""
    shape = (20, 20, 20)
    liver = np.zeros(shape, bool)
    liver[4:16, 4:16, 4:16] = True
    tumour = np.zeros(shape, bool)
    tumour[8:12, 8:12, 8:12] = True
    values = np.full(shape, 100.0, np.float32)
    values[liver] = 1000.0
    values[tumour] = 20000.0
    image = sitk.GetImageFromArray(values)
    image.SetSpacing((4.0, 4.0, 4.0))
    image.SetOrigin((-40.0, 12.0, 3.0))
    return image, liver, tumour


def _study(vois):
    tp = TimePoint(hours_post_injection=24.0, spect=None)
    return Study(patient_id="P", radionuclide="Lu-177", cycles=[Cycle(1, 7400.0, [tp])], vois=vois)


VOIS = [VoiDefinition(1, "tumour 1", "tumor"), VoiDefinition(2, "liver", "organ")]


def test_labelmap_loses_the_tumour_but_masks_keep_it():
    image, liver, tumour = _scene()
    # what the old Slicer path did: segments flattened in order, the organ added last wins
    flat = np.zeros(liver.shape, np.uint16)
    flat[tumour] = 1
    flat[liver] = 2
    labelmap = sitk.GetImageFromArray(flat)
    labelmap.CopyInformation(image)
    rois, warnings = voi_rois(VOIS, image, labelmap=labelmap)
    assert "tumour 1" not in rois and any("label 1 (tumour 1) is empty" in w for w in warnings)

    masks = {"tumour 1": tumour, "liver": liver}
    study = _study(VOIS)
    vois, _warnings, _density = define_vois(study, StudyImages({(1, 0): image}, {(1, 0): None}, masks=masks),
                                            image, None, PipelineOptions(min_tumor_volume_ml=0.0))
    by_name = {v.name: v for v in vois}
    assert int(by_name["tumour 1"].mask.sum()) == 64 and int(by_name["liver"].mask.sum()) == 12 ** 3
    assert by_name["tumour 1"].volume_ml == pytest.approx(64 * 0.064)
    values = measure_voi_values({(1, 0): image}, vois, "Bq/mL")
    # independent sums: 64 voxels x 20000 Bq/mL x 0.064 mL; liver includes the tumour voxels (overlap kept)
    assert values[("tumour 1", 1, 0)] == pytest.approx(64 * 20000.0 * 0.064 * 1e-6, rel=1e-9)
    liver_expected = ((12 ** 3 - 64) * 1000.0 + 64 * 20000.0) * 0.064 * 1e-6
    assert values[("liver", 1, 0)] == pytest.approx(liver_expected, rel=1e-9)


def test_flattening_overlapping_masks_is_refused():
    _image, liver, tumour = _scene()
    with pytest.raises(InputDataError, match="tumour 1 / liver|liver / tumour 1"):
        labelmap_from_masks({"tumour 1": tumour, "liver": liver})
    other = np.zeros_like(liver)
    other[0:2, 0:2, 0:2] = True
    labels, names = labelmap_from_masks({"tumour 1": tumour, "spot": other})
    assert names == {1: "tumour 1", 2: "spot"}
    assert int((labels == 1).sum()) == 64 and int((labels == 2).sum()) == 8


def test_empty_or_missing_mask_is_an_error_not_a_skip():
    image, liver, tumour = _scene()
    with pytest.raises(InputDataError, match="tumour 1: the VOI is empty"):
        voi_rois(VOIS, image, masks={"tumour 1": np.zeros_like(tumour), "liver": liver})
    with pytest.raises(InputDataError, match="no mask for VOI"):
        voi_rois(VOIS, image, masks={"liver": liver})
    with pytest.raises(InputDataError, match="shape"):
        voi_rois(VOIS, image, masks={"tumour 1": tumour[:-1], "liver": liver})


def test_mask_lost_on_resampling_is_an_error():
    image, _liver, _tumour = _scene()
    fine = np.zeros((80, 80, 80), np.uint8)
    fine[40, 40, 40] = 1  # one 1 mm voxel between the centres of the 4 mm voxels
    small = sitk.GetImageFromArray(fine)
    small.SetSpacing((1.0, 1.0, 1.0))
    small.SetOrigin((-41.5, 10.5, 1.5))
    with pytest.raises(InputDataError, match="lost all its voxels"):
        voi_rois([VoiDefinition(1, "tiny", "tumor")], image, masks={"tiny": small})
    with pytest.raises(InputDataError, match=r"label 1 \(tiny\) lost all its voxels"):
        voi_rois([VoiDefinition(1, "tiny", "tumor")], image, labelmap=small)


def test_duplicate_voi_names_fail_before_any_computation():
    with pytest.raises(InputDataError, match="'liver'"):
        check_voi_names(["liver", "tumour", "liver"])
    with pytest.raises(InputDataError, match="no name"):
        check_voi_names(["liver", " "])
    check_voi_names(["liver", "Liver"])  # names are case-sensitive keys


def test_default_kind_and_voi_summary():
    from LuDosimetryLib.imaging.voi_masks import default_kind, voi_summary

    assert [default_kind(n) for n in ("Kidney left", "renal cortex", "Tumour 3", "liver lesion", "Liver")] == \
        ["kidney", "kidney", "tumor", "tumor", "organ"]
    assert voi_summary("tumor", "as_drawn", 100, 0.1, 10.0) == {"volume_ml": pytest.approx(10.0), "note": "",
                                                                "below_minimum": False}
    small = voi_summary("tumor", "as_drawn", 99, 0.1, 10.0)
    assert small["below_minimum"] and small["note"] == "below 10 mL: excluded"
    assert not voi_summary("tumor", "adaptive_threshold", 99, 0.1, 10.0)["below_minimum"]  # contoured in the run
    assert voi_summary("organ", "as_drawn", 0, 0.1, 10.0)["note"] == "empty"
    assert voi_summary("organ", "as_drawn", None, None, 10.0)["volume_ml"] is None
