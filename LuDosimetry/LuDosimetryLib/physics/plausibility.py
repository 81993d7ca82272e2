"""Plausibility of the measured data before any fit (issue 12): a confident dose from impossible
input is worse than an error.

Called by :func:`~LuDosimetryLib.pipeline.run_study` after the VOI values are measured and before
the time-activity fits, and (:func:`check_requests`) before any image is read or computed.

Checks, in this order (each error is an :class:`~LuDosimetryLib.errors.InputDataError` naming the
cycle, the scan and its file, or the radionuclide):

1. **Empty scan**: a scan whose VOI values are all zero, or whose total SPECT activity (or, for
   dose-rate input, VOI sum) is below :data:`EMPTY_SCAN_FRACTION` (1 %) of its neighbours in the
   same cycle (a frame-count mismatch or a wrong file reads as zeros).
2. **Radionuclide contradicted by the data**: the apparent effective half-life of each VOI between
   the first and the last scan of a cycle, against the stated nuclide's physical half-life. No tissue
   retains activity longer than the nuclide lives: longer than :data:`DECAY_MARGIN` (1.5) × the
   physical half-life at *every* VOI (e.g. ``Lu-178``, T½ 28 min, with 177Lu data) is an error,
   judged when every cycle's scans span at least one physical half-life (over a shorter span,
   tumours still taking up activity could all rise).
   Biological washout makes VOIs fall faster than physical decay, but every tumour and organ falling
   more than :data:`FAST_FACTOR` (10) × faster between the last two scans of each cycle (after the
   uptake phase) says the data belong to a shorter-lived nuclide (or the stated one is far too
   long-lived, e.g. ``Lu-177m``): error. Any nuclide other than ``Lu-177`` gives a warning.
3. **Total activity** (activity-concentration input only, not Gy/h): the total SPECT activity of
   each scan (sum over the image of Bq/mL × voxel volume) against the administered activity decayed
   to the scan time: above :data:`MAX_TOTAL_FRACTION` (1.5 ×) is an error (a unit or calibration
   mistake; SPECT × 1e25 stops here); below :data:`LOW_TOTAL_FRACTION` (5 %) at a scan before
   :data:`LOW_TOTAL_BEFORE_H` (96 h) is a warning (the field of view misses the body, or the
   calibration is off; the VOI rows of that cycle carry ``plausibility:low_total_activity``), below
   :data:`MIN_TOTAL_FRACTION` (1 %) an error.

:func:`compare_fit_with_auto`: a requested fit model whose integral differs from the automatic
choice by more than :data:`MODEL_DIFFERENCE` (20 %) gives a warning with both numbers.
"""

from __future__ import annotations

import math

import numpy as np
import SimpleITK as sitk

from ..errors import InputDataError

MAX_TOTAL_FRACTION = 1.5
LOW_TOTAL_FRACTION = 0.05
LOW_TOTAL_BEFORE_H = 96.0
EMPTY_SCAN_FRACTION = 0.01
MIN_TOTAL_FRACTION = 0.01  # below this of the decayed AA before LOW_TOTAL_BEFORE_H: error
EXPECTED_NUCLIDE = "Lu-177"  # what the kernels, population T_eff, RC and planning rules are for
DECAY_MARGIN = 1.5
FAST_FACTOR = 10.0
MODEL_DIFFERENCE = 0.20
# fewest time points each fit model needs (its number of free parameters; trapezoid and the
# two-point mono-exponential need two)
MIN_POINTS = {"mono": 2, "biexp": 3, "triexp": 5, "trapezoid": 2, "mono_last2": 2, "auto": 2}


def check_requests(study, options) -> None:
    """Refuse impossible requests before any image is read: a fit model needing more time points
    than a cycle has (e.g. ``triexp`` with 3 scans), or ``fit_model_per_voi`` naming a VOI the
    manifest does not define. The message names the VOI(s) and cycle(s)."""
    problems = []
    names = [v.name for v in study.vois]
    if names:
        unknown = [n for n in options.fit_model_per_voi if n not in names]
        if unknown:
            problems.append(f"fit_model_per_voi names VOI(s) {unknown} not in the manifest (VOIs: {names})")
        unknown = [n for n in getattr(options, "pvc_per_voi", {}) if n not in names]
        if unknown:
            problems.append(f"pvc_per_voi (--pvc-voi) names VOI(s) {unknown} not in the manifest (VOIs: {names})")
    requests = [("all VOIs", options.fit_model)] if options.fit_model != "auto" else []
    requests += [(f"VOI {n}", m) for n, m in options.fit_model_per_voi.items()]
    for who, model in requests:
        need = MIN_POINTS.get(model, 2)
        short = [c for c in study.cycles if 1 < len(c.timepoints) < need]
        if short:
            problems.append(f"fit model {model!r} requested for {who} needs at least {need} time points; cycle(s) "
                            + ", ".join(f"{c.cycle} ({len(c.timepoints)} scans)" for c in short) + " have fewer")
    if problems:
        raise InputDataError("impossible request, refused before any computation: " + "; ".join(problems))


def _scan_name(study, cycle: int, i: int) -> str:
    cyc = next(c for c in study.cycles if c.cycle == cycle)
    tp = cyc.timepoints[i]
    return f"cycle {cycle} scan {i + 1} ({cyc.hours[i]:g} h p.i., file {tp.spect})"


def total_activity_MBq(image: sitk.Image) -> float:
    """Sum of an activity-concentration image (Bq/mL) × voxel volume (mL), in MBq."""
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
    return float(np.sum(sitk.GetArrayViewFromImage(image), dtype=np.float64)) * voxel_ml * 1e-6


FLAG_LOW_TOTAL = "plausibility:low_total_activity"
FLAG_NUCLIDE = "plausibility:radionuclide_not_Lu-177"


def check_measurements(study, images, values: dict, vois: list, units: str, nuclide,
                       cycle_flags: dict | None = None) -> list[str]:
    """Run checks 1-3 of the module docstring. ``values``: {(voi, cycle, i): MBq or Gy/h} as from
    :func:`imaging.vois.measure_voi_values`; ``images``: the study's :class:`StudyImages` (original
    SPECT, before registration). Returns the warnings; raises :class:`InputDataError`.
    ``cycle_flags`` (if given) receives {cycle: [row flags]} for the VOI rows of the cycles a
    warning concerns (:func:`add_row_flags`)."""
    cycle_flags = {} if cycle_flags is None else cycle_flags
    activity = units != "Gy/h"
    names = [v.name for v in vois]
    totals = {}
    for cyc in study.cycles:
        for i in range(len(cyc.timepoints)):
            key = (cyc.cycle, i)
            vals = [float(values.get((n, cyc.cycle, i), 0.0)) for n in names]
            if names and all(v == 0.0 for v in vals):
                raise InputDataError(f"{_scan_name(study, *key)}: every VOI value is zero (empty scan, wrong file or "
                                     "a frame-count mismatch read as zeros); a scan without activity would change "
                                     "every dose: fix or remove it")
            totals[key] = (total_activity_MBq(images.spect[key]) if activity and key in images.spect
                           else float(np.sum(np.abs(vals))))
    for cyc in study.cycles:
        n = len(cyc.timepoints)
        for i in range(n):
            neighbours = [totals[(cyc.cycle, j)] for j in (i - 1, i + 1) if 0 <= j < n]
            ref = min(neighbours) if neighbours else 0.0
            if ref > 0 and totals[(cyc.cycle, i)] < EMPTY_SCAN_FRACTION * ref:
                raise InputDataError(f"{_scan_name(study, cyc.cycle, i)}: total {totals[(cyc.cycle, i)]:.4g} is below "
                                     f"{100 * EMPTY_SCAN_FRACTION:g} % of its neighbouring scans ({ref:.4g}): an "
                                     "(almost) empty scan; fix or remove it")
    _check_decay(study, values, vois, nuclide)
    warnings = []
    if nuclide.name != EXPECTED_NUCLIDE:
        warnings.append(f"radionuclide {study.radionuclide!r} is not {EXPECTED_NUCLIDE}: the population effective "
                        "half-lives, the planning rules and the published dose-response of this tool are for "
                        "[177Lu]Lu-DOTATATE; check the manifest's radionuclide")
        for cyc in study.cycles:
            cycle_flags.setdefault(cyc.cycle, []).append(FLAG_NUCLIDE)
    if activity:
        lam = math.log(2) / nuclide.half_life_h
        for cyc in study.cycles:
            for i, h in enumerate(cyc.hours):
                expected = cyc.administered_activity_MBq * math.exp(-lam * h)
                total = totals[(cyc.cycle, i)]
                if total > MAX_TOTAL_FRACTION * expected:
                    raise InputDataError(
                        f"{_scan_name(study, cyc.cycle, i)}: total SPECT activity {total:.4g} MBq is "
                        f"{total / expected:.3g} x the administered activity {cyc.administered_activity_MBq:g} MBq "
                        f"decayed to the scan time ({expected:.4g} MBq, {study.radionuclide}); more than "
                        f"{MAX_TOTAL_FRACTION:g} x is impossible: check spect_units, the calibration and "
                        "administered_activity_MBq")
                if h < LOW_TOTAL_BEFORE_H and total < MIN_TOTAL_FRACTION * expected:
                    raise InputDataError(
                        f"{_scan_name(study, cyc.cycle, i)}: total SPECT activity {total:.4g} MBq is "
                        f"{100 * total / expected:.2g} % of the administered activity {cyc.administered_activity_MBq:g} "
                        f"MBq decayed to the scan time ({expected:.4g} MBq, {study.radionuclide}); below "
                        f"{100 * MIN_TOTAL_FRACTION:g} % before {LOW_TOTAL_BEFORE_H:g} h is impossible for a "
                        "whole-body field of view: check spect_units, calibration_cps_per_MBq and "
                        "administered_activity_MBq")
                if h < LOW_TOTAL_BEFORE_H and total < LOW_TOTAL_FRACTION * expected:
                    cycle_flags.setdefault(cyc.cycle, []).append(FLAG_LOW_TOTAL)
                    warnings.append(
                        f"{_scan_name(study, cyc.cycle, i)}: the body holds {100 * total / expected:.1f} % of the "
                        f"administered activity decayed to the scan time (< {100 * LOW_TOTAL_FRACTION:g} % before "
                        f"{LOW_TOTAL_BEFORE_H:g} h): field of view or calibration?")
    return warnings


def add_row_flags(rows: list, cycle_flags: dict) -> None:
    """Append the flags of :func:`check_measurements` to the ``flags`` of every row of those cycles."""
    for r in rows:
        extra = cycle_flags.get(r["cycle"], [])
        if extra:
            have = [f for f in str(r.get("flags") or "").split(";") if f]
            r["flags"] = ";".join(dict.fromkeys(have + list(extra)))


def _check_decay(study, values: dict, vois: list, nuclide) -> None:
    """Check 2: apparent effective half-life between the first and last scan of each cycle, at
    every VOI with positive values, against the physical half-life."""
    t_phys = nuclide.half_life_h
    apparent, long_span = [], []  # long_span: cycles spanning >= one physical half-life
    washout = []  # apparent half-life between the last two scans (after the uptake phase)
    for cyc in study.cycles:
        n = len(cyc.timepoints)
        if n < 2:
            continue
        dt = cyc.hours[-1] - cyc.hours[0]
        dt_last = cyc.hours[-1] - cyc.hours[-2]
        for v in vois:
            a0 = float(values.get((v.name, cyc.cycle, 0), 0.0))
            a1 = float(values.get((v.name, cyc.cycle, n - 1), 0.0))
            a_prev = float(values.get((v.name, cyc.cycle, n - 2), 0.0))
            if a0 > 0 and a1 > 0 and dt > 0:
                rate = math.log(a0 / a1) / dt  # 1/h, > 0 when falling
                apparent.append(math.inf if rate <= 0 else math.log(2) / rate)
                if dt >= t_phys:
                    long_span.append(apparent[-1])
            if a_prev > 0 and a1 > 0 and dt_last > 0:
                rate = math.log(a_prev / a1) / dt_last
                washout.append(math.inf if rate <= 0 else math.log(2) / rate)
    if not apparent:
        return
    # retention beyond physical decay is judged only over a span of at least one physical half-life:
    # over a shorter span, tumours still taking up activity (early scans) could all rise
    if long_span and len(long_span) == len(apparent) and all(t > DECAY_MARGIN * t_phys for t in long_span):
        shortest = min(long_span)
        raise InputDataError(
            f"radionuclide {study.radionuclide!r} (physical half-life {t_phys:.4g} h) contradicts the data: every VOI "
            f"keeps its activity longer than that nuclide lives (apparent effective half-life >= {shortest:.3g} h "
            "between the first and last scan of a cycle); check the manifest's radionuclide")
    # washout judged between the last two scans of each cycle: tumours still taking up activity
    # between the first scans would otherwise hide a nuclide that lives far longer than the data
    if washout and all(t < t_phys / FAST_FACTOR for t in washout):
        longest = max(washout)
        raise InputDataError(
            f"radionuclide {study.radionuclide!r} (physical half-life {t_phys:.4g} h) contradicts the data: every VOI "
            f"loses its activity more than {FAST_FACTOR:g} x faster than physical decay between the last two scans "
            f"of each cycle (apparent effective half-life <= {longest:.3g} h); check the manifest's radionuclide "
            "and the scan times")


def compare_fit_with_auto(fit, hours, y, nuclide, value_uncertainty, where: str) -> str | None:
    """A warning when the requested model's integral differs from the automatic choice by more
    than :data:`MODEL_DIFFERENCE`, with both numbers; None otherwise (or when auto cannot fit)."""
    from ..errors import LuDosimetryError
    from . import kinetics

    try:
        auto = kinetics.fit_time_activity(hours, y, model="auto", physical_half_life_h=nuclide.half_life_h,
                                          value_uncertainty=value_uncertainty)
    except LuDosimetryError:
        return None
    if auto.integral > 0 and abs(fit.integral / auto.integral - 1.0) > MODEL_DIFFERENCE:
        return (f"{where}: requested fit model {fit.model!r} gives a time integral of {fit.integral:.4g}, "
                f"{100 * (fit.integral / auto.integral - 1):+.0f} % from the automatic choice {auto.model!r} "
                f"({auto.integral:.4g}); more than {100 * MODEL_DIFFERENCE:g} % apart: check the model choice")
    return None
