"""Physics: from activity in a VOI (or voxel) to absorbed dose and its biological effect.

- ``radionuclides``  half-lives and energies per decay (ICRP-107 via maintained packages)
- ``kinetics``       time-activity fits and integration: VOI fits, single time point, voxel-wise
- ``dose``           absorbed dose: local deposition, voxel S-value kernels and convolution, DVH statistics
- ``radiobiology``   BED / EQD2 with Lea-Catcheside factors, next-cycle activity planning
"""
