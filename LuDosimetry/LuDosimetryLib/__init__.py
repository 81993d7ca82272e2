"""LuDosimetryLib: the pure-Python core of the LuDosimetry 3D Slicer extension.

Patient-specific multi-cycle SPECT/CT dosimetry of [177Lu]Lu-DOTATATE therapy.
This package never imports slicer, qt, ctk, vtk or sitkUtils: everything the Slicer
modules do is a call into it, so it is testable with pytest and scriptable from the
Slicer Python console (``import LuDosimetryLib``) or the ``lu-dosimetry`` command.

The tree follows the data flow (see docs/ARCHITECTURE.md)::

  io/         input: study manifest, image files, DICOM headers and inspection
  imaging/    registration, segmentation, organs, partial-volume correction, lesion tracking
  physics/    radionuclide data, kinetics (VOI / single time point / voxel-wise), dose, radiobiology
  results/    cross-cycle metrics, report.html, comparison with a synthetic truth
  synthetic/  SPECT forward model, sphere phantom, synthetic patient (NIfTI and DICOM)
  pipeline    the per-patient runner (contract 2 outputs): io -> imaging -> physics -> results
  cli         the ``lu-dosimetry`` command
  errors      the exception types every layer raises; checks: shared scalar validation

Progress of long steps (pipeline, phantom generation) goes to the ``logging`` logger
``"LuDosimetryLib"`` at INFO when no progress callback is given; Python shows nothing below
WARNING by default, so call ``LuDosimetryLib.enable_logging()`` (or attach your own handler to
that logger) to see it. The ``lu-dosimetry`` command prints progress to stderr itself.

The functions users script against are attributes of the package (imported on first use), e.g.
``LuDosimetryLib.run_manifest(...)`` or ``from LuDosimetryLib import fit_time_activity``.
Module paths of the earlier flat layout (``LuDosimetryLib.kinetics``, ``LuDosimetryLib.dose``, ...)
keep working: they are aliases of the modules in the subpackages.
"""

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

# public name -> defining module (relative to this package)
_LAZY = {
    "run_manifest": "pipeline", "run_study": "pipeline", "PipelineOptions": "pipeline", "PipelineResult": "pipeline",
    "load_study_images": "pipeline",
    "load_study": "io.study", "study_from_dict": "io.study", "Study": "io.study",
    "read_image": "io.images", "inspect_directory": "io.dicom",
    "fit_time_activity": "physics.kinetics", "fit_time_activity_voxelwise": "physics.kinetics",
    "fit_single_time_point": "physics.kinetics", "TimeActivityFit": "physics.kinetics",
    "voxel_s_value_kernel": "physics.dose", "led_dose_Gy": "physics.dose", "voi_led_dose_Gy": "physics.dose",
    "vsv_dose_Gy": "physics.dose", "voi_dose_statistics": "physics.dose", "hu_to_density_g_per_ml": "physics.dose",
    "get_nuclide": "physics.radionuclides",
    "bed_Gy": "physics.radiobiology", "plan_next_activity_seed000": "physics.radiobiology",
    "cross_cycle_metrics": "results.cycle_metrics",
    "register_time_point": "imaging.registration",
    "adaptive_threshold_segment": "imaging.segmentation",
    "write_phantom_study": "synthetic.phantom", "PhantomConfig": "synthetic.phantom",
    "compare_with_ground_truth": "results.truth",
    "LuDosimetryError": "errors", "InputDataError": "errors", "ManifestError": "errors", "FitError": "errors",
}

# module paths of the flat layout (<= 0.1.0 before the subpackages) -> where the module lives now
_MOVED = {
    "study": "io.study", "images": "io.images", "dicom": "io.dicom",
    "registration": "imaging.registration", "segmentation": "imaging.segmentation", "organs": "imaging.organs",
    "pvc": "imaging.pvc", "tracking": "imaging.tracking",
    "radionuclides": "physics.radionuclides", "kinetics": "physics.kinetics", "dose": "physics.dose",
    "radiobiology": "physics.radiobiology",
    "cycles": "results.cycle_metrics", "report": "results.report", "validation": "results.truth",
    "phantom": "synthetic.phantom", "phantom_dicom": "synthetic.phantom_dicom",
    "sphere_phantom": "synthetic.spheres", "spect_model": "synthetic.spect_model",
}


def enable_logging(level="INFO", stream=None):
    """Show the progress and log messages of LuDosimetryLib (and LuResponseLib) on ``stream``
    (default ``sys.stderr``) from ``level`` up ("DEBUG", "INFO", ... or a ``logging`` level).
    Calling it again replaces the handler it added before. Returns the handler."""
    import logging

    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s", "%H:%M:%S"))
    handler._lu_enable_logging = True
    for name in ("LuDosimetryLib", "LuResponseLib"):
        lg = logging.getLogger(name)
        for h in [h for h in lg.handlers if getattr(h, "_lu_enable_logging", False)]:
            lg.removeHandler(h)
        lg.addHandler(handler)
        lg.setLevel(level)
    return handler


def __getattr__(name):  # PEP 562: import the defining module on first use
    mod = _LAZY.get(name)
    if mod is not None:
        return getattr(importlib.import_module(f".{mod}", __name__), name)
    if name in _MOVED:
        return importlib.import_module(f"{__name__}.{_MOVED[name]}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


class _MovedModuleAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes ``import LuDosimetryLib.kinetics`` (old flat path) return ``LuDosimetryLib.physics.kinetics``."""

    def find_spec(self, fullname, path=None, target=None):
        head, _, tail = fullname.partition(".")
        if head != __name__ or tail not in _MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module(f"{__name__}.{_MOVED[spec.name.partition('.')[2]]}")
        self._real_spec = module.__spec__  # the import system overwrites __spec__ with the alias spec
        return module

    def exec_module(self, module):  # already executed under its real name; give its own spec back
        module.__spec__ = self._real_spec


if not any(isinstance(f, _MovedModuleAlias) for f in sys.meta_path):
    sys.meta_path.append(_MovedModuleAlias())
