"""End-to-end dosimetry of one patient (study manifest in, contract-2 results out).

The runner reads like the data flow of ARCHITECTURE.md; each step is one function:

    load_study_images          images of every cycle x time point (+ labelmap)
    register_scans             every scan to the cycle-1 reference scan (24 h by default)
    define_vois                VOIs on the reference: as drawn, or adaptive threshold in a rough ROI;
                               minimum-volume rule on the cycle-1 reference (Macsuka et al. 2026)
    measure_voi_activity       activity (MBq) or dose rate (Gy/h) per VOI per time point
    correct_partial_volume     recovery coefficient for the VOI volume
    fit_and_integrate          time-activity fit (Macsuka et al. 2026, Eq. 1, with fallbacks) and integral
    absorbed_dose              local energy deposition (VOI mass from CT) or voxel S-values
    cross-cycle metrics        AD/AA, cumulative AD, delta AD/AA, kidney dose and BED, next AA

``run_study`` works on in-memory SimpleITK images (what the Slicer module hands over);
``run_manifest`` loads a manifest from disk, runs and writes the results.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk

from . import __version__
from .errors import InputDataError, LuDosimetryError
from .imaging.recovery_model import PVC_ORGAN_NAMES, whole_range_curve
from .io import images as image_io
from .io.study import VOI_KINDS, Study, load_study
from .physics import plausibility, uncertainty
from .physics.radionuclides import get_nuclide
from .physics import voxel_consistency
from .physics.stp_cycle import HANSCHEID_WINDOW_H, STP_METHODS
from .progress import ProgressCallback
from .progress import check_cancel as _check_cancel
from .progress import report_progress as _report
# The steps of the run, one module each; re-exported here because scripts and the Slicer module call them
# as ``pipeline.<step>``.
from .errors import Cancelled  # noqa: F401
from .imaging.study_registration import cycle_reference_keys, local_boxes, reference_index, register_scans  # noqa: F401
from .imaging.study_registration import StudyRegistration, register_study  # noqa: F401
from .imaging.vois import Voi, define_vois, measure_voi_values, resegment_cycles, track_lesions  # noqa: F401
from .io.study_images import StudyImages, load_study_images  # noqa: F401
from .io.study_images import study_units as _units
from .physics.cycle_dose import _add_dose_statistics, _voxel_s_value_dose_rates, voi_cycle_dose, voxel_dose_maps  # noqa: F401
from .results.outputs import CSV_COLUMNS, TIME_ACTIVITY_COLUMNS, write_results  # noqa: F401
from .results.registration_qc import add_registration_flags, registration_summary
from .results.summary import _summarise, new_run_id
from .results.warnings_digest import digest as digest_warnings

log = logging.getLogger(__name__)


REGISTRATION_METHODS = ("auto", "translation", "rigid_ct", "local", "none")
DOSE_METHODS = ("local_deposition", "voxel_s_value")
FIT_MODELS = ("auto", "biexp", "mono", "triexp", "trapezoid", "mono_last2")


@dataclass
class PipelineOptions:
    """Choices of the per-patient run.

    registration: "auto" (rigid CT-to-CT when CT exists, else SPECT translation; falls back),
        "translation" (as Macsuka et al., J Nucl Med 2026), "rigid_ct", "local", or "none".
    dose_method: "local_deposition" (VOI mean, mass from CT) or "voxel_s_value" (voxel-wise
        fit, FFT convolution). Dose-rate input (spect_units "Gy/h") is integrated directly.
    fit_model: "auto" or a model name of :func:`kinetics.fit_time_activity`;
        ``fit_model_per_voi`` overrides it for named VOIs.
    min_tumor_volume_ml: tumours smaller than this on the cycle-1 reference scan are excluded.
    reference_hours: the reference time point (closest scan to this many hours p.i.).
    resegment_each_cycle: contour adaptive-threshold tumours again, inside the same ROI, on each
        cycle's registered reference scan (volume and mass per cycle); otherwise the cycle-1
        contour is copied to every scan (as Macsuka et al. 2026).
    apply_pvc_to: VOI kinds (or organ names "spleen", "liver", matched to the VOI name) corrected with
        recovery coefficients (Macsuka et al. 2026: tumours and kidneys; spleen added, an organ at risk for
        DOTATATE); ``pvc_per_voi`` (VOI name -> bool) overrides it per VOI. Above the largest calibration
        sphere the RC comes from a model fitted to the table (:mod:`imaging.recovery_model`, flagged).
    planned_cycles: cycles in the course (4 in Macsuka et al. 2026), for the suggested next-cycle activity.
    use_cache: registration transforms and voxel S-value kernels are read from and written to the
        user cache folder (:mod:`.cache`; ``--no-cache`` switches it off).
    registration_check_mm: every registration is verified on the SPECT per VOI; a VOI whose residual
        shift exceeds this is refined locally and flagged (``registration:refined`` or, if that is
        impossible, ``registration:check_failed``).
    planning_rule: which published rule makes the next-cycle recommendation in the report and
        summary.json ``planning`` ("kidney_23Gy": 23 Gy cumulative kidney dose, Macsuka et al.,
        J Nucl Med 2026; "renal_BED_27Gy": renal BED 27 ± 2 Gy, Sundlöv et al., Eur J Nucl Med Mol
        Imaging 2022); the other is shown for comparison (:mod:`.results.planning`).
    Invalid values raise InputDataError at construction, before any image is read.
    """

    registration: str = "auto"
    dose_method: str = "local_deposition"
    fit_model: str = "auto"
    min_tumor_volume_ml: float = 10.0
    save_maps: bool = False
    reference_hours: float = 24.0
    apply_pvc_to: tuple = ("tumor", "kidney", "spleen")
    pvc_per_voi: dict = field(default_factory=dict)  # VOI name -> bool, overrides apply_pvc_to
    value_uncertainty: float = 0.05
    fit_model_per_voi: dict = field(default_factory=dict)  # VOI name -> model, overrides fit_model
    local_box_margin_mm: float = 30.0  # "local" registration: box = tumour extent + this margin per side
    resegment_each_cycle: bool = False  # adaptive-threshold tumours contoured again on each cycle's reference
    planned_cycles: int = 4  # length of the treatment course, for the next-cycle activity
    registration_check_mm: float = 2.0  # residual SPECT shift per VOI above which it is refined locally and flagged
    stp_method: str = "auto"  # one-scan cycles: auto | ratio | madsen | hanscheid (physics/stp_cycle.py)
    hanscheid_window_h: tuple = HANSCHEID_WINDOW_H  # scan times (h) where Hänscheid 2018 is used unflagged
    planning_rule: str = "kidney_23Gy"  # the next-cycle rule that recommends; the other is shown for comparison
    use_cache: bool = True  # registrations and VSV kernels from/to the user cache folder (LuDosimetryLib.cache)

    def __post_init__(self):
        problems = []
        if self.registration not in REGISTRATION_METHODS:
            problems.append(f"registration must be one of {REGISTRATION_METHODS}, got {self.registration!r}")
        if self.dose_method not in DOSE_METHODS:
            problems.append(f"dose_method must be one of {DOSE_METHODS}, got {self.dose_method!r}")
        for name, model in [("fit_model", self.fit_model)] + [(f"fit_model_per_voi[{k!r}]", m)
                                                             for k, m in self.fit_model_per_voi.items()]:
            if model not in FIT_MODELS:
                problems.append(f"{name} must be one of {FIT_MODELS}, got {model!r}")
        bad_kinds = [k for k in self.apply_pvc_to if k not in VOI_KINDS + PVC_ORGAN_NAMES]
        if bad_kinds:
            problems.append(f"apply_pvc_to: unknown VOI kind(s) {bad_kinds}; kinds are {VOI_KINDS}, "
                            f"organ names {PVC_ORGAN_NAMES}")
        if not isinstance(self.pvc_per_voi, dict) or not all(isinstance(b, bool) for b in self.pvc_per_voi.values()):
            problems.append(f"pvc_per_voi must be a dict VOI name -> true/false, got {self.pvc_per_voi!r}")
        if not self.min_tumor_volume_ml >= 0:
            problems.append(f"min_tumor_volume_ml must be >= 0 mL, got {self.min_tumor_volume_ml!r}")
        if not (isinstance(self.registration_check_mm, (int, float)) and self.registration_check_mm > 0):
            problems.append(f"registration_check_mm must be > 0 mm, got {self.registration_check_mm!r}")
        if not self.reference_hours > 0:
            problems.append(f"reference_hours must be > 0 h, got {self.reference_hours!r}")
        if not (isinstance(self.planned_cycles, int) and self.planned_cycles >= 1):
            problems.append(f"planned_cycles must be an integer >= 1, got {self.planned_cycles!r}")
        if self.stp_method not in STP_METHODS:
            problems.append(f"stp_method must be one of {STP_METHODS}, got {self.stp_method!r}")
        w = tuple(self.hanscheid_window_h) if isinstance(self.hanscheid_window_h, (tuple, list)) else ()
        if len(w) != 2 or not all(isinstance(x, (int, float)) for x in w) or not 0 < w[0] < w[1]:
            problems.append(f"hanscheid_window_h must be (start_h, end_h) with 0 < start < end, got "
                            f"{self.hanscheid_window_h!r}")
        from .results.planning import PLANNING_RULES

        if self.planning_rule not in PLANNING_RULES:
            problems.append(f"planning_rule must be one of {PLANNING_RULES}, got {self.planning_rule!r}")
        if problems:
            raise InputDataError("PipelineOptions: " + "; ".join(problems))

    def as_dict(self) -> dict:
        """The options as recorded in summary.json."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass
class PipelineResult:
    """Everything a run produced (in memory)."""

    study: Study
    rows: list
    summary: dict
    fits: dict  # (voi name, cycle) -> kinetics.TimeActivityFit
    samples: dict  # (voi name, cycle) -> (hours, values, units)
    time_activity: list  # rows of voi_time_activity.csv
    vois: list
    registrations: dict  # (cycle, i) -> registration.RegistrationResult
    reference_key: tuple
    reference_spect: sitk.Image
    registered_spect: dict
    maps: dict = field(default_factory=dict)
    timings_s: dict = field(default_factory=dict)  # stage name -> wall-clock seconds
    registration_qc: StudyRegistration | None = None  # per-scan search, SPECT check and refinements
    reference_ct: sitk.Image | None = None  # CT of the reference scan (HU), for the report's dose-on-CT figures
    out_dir: Path | None = None
    files: list = field(default_factory=list)


def run_study(study: Study, images: StudyImages, options: PipelineOptions | None = None,
              progress: ProgressCallback | None = None, cancel: Callable[[], bool] | None = None,
              transforms: dict | None = None) -> PipelineResult:
    """Dosimetry of one patient on in-memory images. Input images are never modified.

    ``transforms``: optional {(cycle, i): sitk.Transform} (fixed reference -> moving scan) used
    instead of registering those scans (e.g. registrations accepted in Slicer).
    """
    options = options or PipelineOptions()
    plausibility.check_requests(study, options)  # impossible requests refused before any image computation
    if not options.use_cache:
        from .cache import disabled

        with disabled():
            result = run_study(study, images, dataclasses.replace(options, use_cache=True), progress, cancel, transforms)
        result.summary["options"]["use_cache"] = False
        return result
    nuclide = get_nuclide(study.radionuclide)
    units = _units(study)
    warnings = list(study.warnings)
    first = study.cycles[0]
    ref_key = (first.cycle, reference_index(first.hours, options.reference_hours))
    _report(progress, 0.02, f"reference scan: cycle {ref_key[0]} at {first.hours[ref_key[1]]:g} h p.i.")

    timings = {}
    reference = images.spect[ref_key]
    _report(progress, 0.05, "defining VOIs on the reference scan")
    t0 = time.perf_counter()
    vois, voi_warnings, density = define_vois(study, images, reference, images.ct.get(ref_key), options)
    warnings.extend(voi_warnings)
    timings["segmentation"] = time.perf_counter() - t0

    _check_cancel(cancel)
    t0 = time.perf_counter()
    boxes = local_boxes(vois, reference, options.local_box_margin_mm) if options.registration == "local" else None
    reg_qc = register_study(study, images, ref_key, options.registration, vois=vois, progress=progress,
                            cancel=cancel, transforms=transforms, boxes=boxes, reference_hours=options.reference_hours,
                            check_mm=options.registration_check_mm, use_cache=options.use_cache)
    regs, registered, local = reg_qc.registrations, reg_qc.registered, reg_qc.local
    for key, r in regs.items():
        if r is not None:
            warnings.extend(f"registration cycle {key[0]} #{key[1] + 1}: {w}" for w in r.warnings)
    warnings.extend(reg_qc.warnings())
    if options.registration in ("auto", "local") and images.ct.get(ref_key) is not None:
        no_ct = [k for k in sorted(images.spect) if k != ref_key and images.ct.get(k) is None and k not in (transforms or {})]
        if no_ct:
            warnings.append("registration: no CT for " + ", ".join(f"cycle {c} #{i + 1}" for c, i in no_ct)
                            + " while the reference scan has one: registered on the SPECT alone (translation), "
                            "not CT to CT; check the manifest's ct entries")
    timings["registration"] = time.perf_counter() - t0
    cycle_refs = cycle_reference_keys(study, options.reference_hours)
    if options.resegment_each_cycle:
        t0 = time.perf_counter()
        warnings.extend(resegment_cycles(vois, registered, cycle_refs, density, image_io.voxel_volume_ml(reference)))
        timings["segmentation"] += time.perf_counter() - t0

    rc_curve = None
    if study.recovery_coefficients:
        rc_curve, rc_warnings = whole_range_curve(study.recovery_coefficients)
        warnings.extend(rc_warnings)

    _report(progress, 0.55, "measuring VOI activity at every time point")
    t0 = time.perf_counter()
    values = measure_voi_values(registered, vois, units, local)
    plausibility_flags = {}
    warnings.extend(plausibility.check_measurements(study, images, values, vois, units, nuclide, plausibility_flags))
    voxel_map = None
    if options.dose_method == "voxel_s_value" and units != "Gy/h":
        _report(progress, 0.6, "voxel S-value dose-rate maps")
        voxel_map = _voxel_s_value_dose_rates(study, registered, reference, nuclide, density)

    fits, samples, rows, time_activity = {}, {}, [], []
    # cycles with several time points first: a single-time-point cycle borrows the VOI's T_eff from them
    ordered = sorted(study.cycles, key=lambda c: (len(c.timepoints) == 1, c.cycle))
    for v in vois:
        for cyc in ordered:
            _check_cancel(cancel)
            if voxel_map is not None:
                y = np.array([float(sitk.GetArrayViewFromImage(voxel_map[(cyc.cycle, i)])[v.mask_for(cyc.cycle)].mean())
                              for i in range(len(cyc.timepoints))])
                y_units = "Gy/h"
            else:
                y = np.array([values[(v.name, cyc.cycle, i)] for i in range(len(cyc.timepoints))])
                y_units = "Gy/h" if units == "Gy/h" else "MBq"
            try:
                out = voi_cycle_dose(study, cyc, v, y, y_units, rc_curve, options, nuclide, fits)
            except LuDosimetryError as exc:
                raise type(exc)(f"{v.name} cycle {cyc.cycle}: {exc}") from exc
            fits[(v.name, cyc.cycle)] = out["fit"]
            samples[(v.name, cyc.cycle)] = (np.array(cyc.hours), out["values"], y_units)
            rows.append(out["row"])
            time_activity.extend(out["time_activity"])
            warnings.extend(out["warnings"])
    order = {(c.cycle): i for i, c in enumerate(study.cycles)}
    rows.sort(key=lambda r: ([v.name for v in vois].index(r["voi"]), order[r["cycle"]]))
    add_registration_flags(rows, reg_qc)
    plausibility.add_row_flags(rows, plausibility_flags)

    timings["activity, fit and dose"] = time.perf_counter() - t0
    _check_cancel(cancel)
    _report(progress, 0.8, "voxel-wise time integration and dose maps")
    t0 = time.perf_counter()
    maps = voxel_dose_maps(study, registered, reference, density, vois, nuclide, units, voxel_map,
                           whole_image=options.save_maps)
    voxel_ml = image_io.voxel_volume_ml(reference)
    psf = rc_curve.params.get("sigma_mm") if rc_curve is not None and rc_curve.form == "gaussian_sphere" else None
    factors = voxel_consistency.add_consistent_statistics(rows, maps, vois, density, voxel_ml, psf)
    maps["cumulative_dvh"] = voxel_consistency.cumulative_dvh(rows, vois, density, voxel_ml, factors)
    warnings.extend(maps.pop("warnings"))
    timings["voxel-wise maps and DVH"] = time.perf_counter() - t0
    _report(progress, 0.9, "cross-cycle metrics, kidney BED and next-cycle activity")
    t0 = time.perf_counter()
    summary = _summarise(study, rows, warnings, options.planned_cycles, options.planning_rule)
    summary["run_id"] = new_run_id()
    summary["cumulative_dvh"] = voxel_consistency.cumulative_summary(maps["cumulative_dvh"])
    uncertainty.apply_budget(rows, summary, study.uncertainty, float(np.mean(reference.GetSpacing())), reg_qc)
    summary["warnings_detail"] = summary["warnings"]  # every warning as raised; "warnings": one line per problem
    summary["warnings"] = digest_warnings(summary["warnings"])
    summary["lesion_tracking"] = track_lesions(vois, rows, cycle_refs, reference)
    summary["registration"] = registration_summary(reg_qc, study)
    summary["options"] = options.as_dict()
    summary["software"] = {"name": "lu-dosimetry", "version": __version__}
    timings["cross-cycle metrics"] = time.perf_counter() - t0
    return PipelineResult(study=study, rows=rows, summary=summary, fits=fits, samples=samples,
                          time_activity=time_activity, vois=vois,
                          registrations=regs, reference_key=ref_key, reference_spect=reference,
                          registered_spect=registered, maps=maps, timings_s=timings, registration_qc=reg_qc,
                          reference_ct=images.ct.get(ref_key))


def run_manifest(manifest_path, out_dir, options: PipelineOptions | None = None,
                 progress: ProgressCallback | None = None, cancel=None, overwrite: bool = True,
                 inputs_may_be_inside=()) -> PipelineResult:
    """Load a study manifest, run the dosimetry and write the contract-2 results to ``out_dir``.

    Before any computation ``out_dir`` is checked (:func:`~.results.result_set.check_output_folder`:
    not the study folder, holds no input, holds no result set unless ``overwrite``) and locked;
    the results are then switched in all at once (:func:`write_results`)."""
    from .results.outputs import CORE_RESULT_NAMES, result_file_names, study_input_paths
    from .results.result_set import ResultSetWriter, check_output_folder, input_digests

    _report(progress, 0.0, f"loading study {manifest_path}")
    t0 = time.perf_counter()
    study = load_study(manifest_path)
    result_options = options or PipelineOptions()
    plausibility.check_requests(study, result_options)
    out = check_output_folder(out_dir, study_input_paths(study), overwrite, CORE_RESULT_NAMES,
                              result_file_names(study, result_options.save_maps), inputs_may_be_inside)
    # digests of the inputs as read now (the manifest file, every image file; not the study folder as a whole)
    folder = Path(study.manifest_path).parent if study.manifest_path is not None else None
    inputs = input_digests(p for p in study_input_paths(study) if p != folder)
    with ResultSetWriter(out, overwrite=overwrite, core_names=CORE_RESULT_NAMES, tool="lu-dosimetry run",
                         inputs=inputs) as rs:
        images = load_study_images(study)
        t_load = time.perf_counter() - t0
        result = run_study(study, images, result_options, progress, cancel)
        result.timings_s = {"loading images": t_load, **result.timings_s}
        _report(progress, 0.95, f"writing results to {out_dir}")
        t0 = time.perf_counter()
        write_results(result, out, save_maps=result_options.save_maps, writer=rs)
        result.timings_s["writing results and report"] = time.perf_counter() - t0
    _report(progress, 1.0, "done")
    return result
