"""All images of a study in memory: SPECT (Bq/mL or Gy/h) and CT per cycle and time point, and the labelmap."""

from __future__ import annotations

from dataclasses import dataclass

import SimpleITK as sitk

from ..errors import InputDataError
from . import images as image_io
from .study import Study


@dataclass
class StudyImages:
    """Images of a study: ``spect[(cycle, i)]`` and ``ct[(cycle, i)]`` (i = time-point index,
    CT may be None) as SimpleITK images in Bq/mL (or Gy/h), and the VOIs: the labelmap, or
    ``masks`` {VOI name: boolean [z, y, x] array on the reference grid} (overlaps allowed; wins
    over the labelmap; see :mod:`LuDosimetryLib.imaging.voi_masks`)."""

    spect: dict
    ct: dict
    labelmap: sitk.Image | None = None
    masks: dict | None = None



def load_study_images(study: Study) -> StudyImages:
    """Read every SPECT/CT and the labelmap of ``study``; counts are converted to Bq/mL."""
    spect, ct = {}, {}
    for cyc in study.cycles:
        for i, tp in enumerate(cyc.timepoints):
            img = image_io.read_image(tp.spect, series_uid=tp.spect_series_uid)
            if tp.spect_units == "counts":
                img = image_io.counts_to_bq_per_ml(img, tp.calibration_cps_per_MBq, tp.acquisition_duration_s)
            spect[(cyc.cycle, i)] = img
            ct[(cyc.cycle, i)] = (image_io.read_image(tp.ct, series_uid=tp.ct_series_uid)
                                  if tp.ct is not None else None)
    labelmap = image_io.read_image(study.segmentation_file)
    return StudyImages(spect=spect, ct=ct, labelmap=labelmap)



def study_units(study: Study) -> str:
    units = {tp.spect_units for c in study.cycles for tp in c.timepoints}
    if "Gy/h" in units and len(units) > 1:
        raise InputDataError("spect_units: dose-rate maps (Gy/h) and activity images cannot be mixed in one study")
    return "Gy/h" if "Gy/h" in units else "Bq/mL"
