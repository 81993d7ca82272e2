"""Input: everything that turns files on disk into validated objects.

- ``study``   the study manifest (contract 1): ``Study`` -> ``Cycle`` -> ``TimePoint``, VOI definitions, validation
- ``images``  image files (NIfTI, NRRD, MHA, DICOM folders) -> SimpleITK images in Bq/mL, geometry checks
- ``dicom``   DICOM headers: series classification, quantification tags, times, ``inspect``, draft manifests
- ``scene_rows`` study rows as edited in a table (Slicer) -> manifest -> validated ``Study``
"""
