"""LuDosimetryLib: the pure-Python core of the LuDosimetry 3D Slicer extension.

Patient-specific multi-cycle SPECT/CT dosimetry of [177Lu]Lu-DOTATATE therapy.
This package never imports slicer, qt, ctk, vtk or sitkUtils: everything the Slicer
modules do is a call into it, so it is testable with pytest and scriptable from the
Slicer Python console (``import LuDosimetryLib``) or the ``lu-dosimetry`` command.

Modules (one concept each):
  study         study manifest (contract 1): Study -> Cycle -> TimePoint, validation
  phantom       synthetic multi-cycle patient with analytic ground truth
  pipeline      end-to-end per-patient runner (contract 2 outputs)
  radionuclides half-lives and energies per decay (ICRP-107 via maintained packages)
  kinetics      time-activity curve fitting and integration (VOI and voxel-wise)
  dose          activity -> absorbed dose (local deposition, voxel S-values), DVH
  pvc           partial-volume correction with recovery coefficients
  radiobiology  BED / EQD2 with Lea-Catcheside factors, next-cycle activity planning
  cycles        cross-cycle metrics (AD/AA, cAD, delta AD/AA)
  images, dicom image and DICOM input
  registration  time-point and cycle registration
  segmentation  adaptive-threshold and fixed-threshold segmentation
  report        report.html
  cli           the ``lu-dosimetry`` command
"""

__version__ = "0.1.0"
