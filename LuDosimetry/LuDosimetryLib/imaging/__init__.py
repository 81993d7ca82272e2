"""Imaging: from images to VOI values on one reference grid.

- ``registration``  rigid/translation/local registration of scans and cycles, with QC numbers
- ``segmentation``  adaptive-threshold (and fixed-threshold) tumour segmentation
- ``organs``        organ labelmaps (kidneys) from a CT segmentation, resampled to the SPECT grid
- ``pvc``           partial-volume correction with recovery coefficients, minimum-volume rule
- ``tracking``      lesion tracking across cycles and response categories
- ``voi_masks``     one boolean mask per VOI (overlaps kept) from per-VOI masks or a labelmap
- ``transform_matrix`` ITK transforms <-> 4x4 RAS matrices of Slicer transform nodes
"""
