"""Quantification conventions of an emission series, read from its DICOM headers.

* Units and scaling (:func:`read_scaling`): ``Units`` (0054,1001) ``BQML`` → Bq/mL after GDCM's
  Rescale; else a Real World Value Mapping in Bq/mL (0040,9096); else the Philips private activity
  concentration factor (7053,xx09); ``CNTS`` → counts.
* Acquisition duration (:func:`read_durations`), needed to turn counts into Bq/mL:
  NM tomography: Σ over ``RotationInformationSequence`` (0054,0052) items of
  ``NumberOfFramesInRotation`` (0054,0053) × ``ActualFrameDuration`` (0018,1242, ms) = the *scan
  duration* (NumberOfFramesInRotation counts the angular views of one detector, PS3.3 C.8.4.12).
  Number of heads: ``NumberOfDetectors`` (0054,0021) and the items of
  ``DetectorInformationSequence`` (0054,0022), the larger. PET: top-level ``ActualFrameDuration``
  (``FrameReferenceTime`` (0054,1300) is reported). A calibration factor refers either to the scan
  duration or to the *detector time* (scan duration × number of heads); the manifest says which
  (``calibration_time_basis``), see :func:`duration_for_basis`.
* Decay correction (:func:`read_decay_correction`): ``DecayCorrection`` (0054,1102) ``NONE`` and
  ``START`` (activity at the scan start, what dosimetry wants) are used as is; ``ADMIN`` (decayed
  back to the administration) is undone with ``DecayFactor`` (0054,1321), else with the injection
  and acquisition times and the half-life; any other value, or ``DECY`` in ``CorrectedImage``
  (0028,0051) without ``DecayCorrection``, makes the series unusable (``info.refusal``).
"""

from __future__ import annotations

import math

import numpy as np

from .dicom_tags import _float, _int, _private_value, _text

_RWV_BQML_UNITS = {"bq/ml": 1.0, "kbq/ml": 1e3, "mbq/ml": 1e6, "bq/cc": 1.0}
CALIBRATION_TIME_BASES = ("scan_duration", "detector_time")


def _rwv_bqml_item(ds):
    """(slope, intercept, unit text, factor to Bq/mL) of the first Bq/mL RWVM item, or None."""
    seq = ds.get("RealWorldValueMappingSequence", None)
    if seq is None:
        return None
    for item in seq:
        ucs = item.get("MeasurementUnitsCodeSequence", None)
        unit = None
        if ucs is not None and len(ucs) > 0:
            unit = _text(ucs[0], "CodeValue") or _text(ucs[0], "CodeMeaning")
        unit = unit or _text(item, "LUTLabel")
        key = (unit or "").strip().lower().replace(" ", "")
        if key in _RWV_BQML_UNITS:
            slope = _float(item, "RealWorldValueSlope")
            icpt = _float(item, "RealWorldValueIntercept") or 0.0
            if slope is not None:
                return slope, icpt, unit, _RWV_BQML_UNITS[key]
    return None


def read_scaling(ds, datasets, info) -> None:
    units = (info.units or "").upper()
    rwv = _rwv_bqml_item(ds)
    if rwv is not None:
        info.real_world_slope, info.real_world_intercept, info.real_world_units, _ = rwv
    if units == "BQML":
        info.spect_units = "Bq/mL"
        info.scaling = "rescale slope/intercept (GDCM); Units BQML"
        if rwv is not None:
            rs, ri = info.rescale_slope or 1.0, info.rescale_intercept or 0.0
            if not (np.isclose(rwv[0] * rwv[3], rs, rtol=1e-4) and np.isclose(rwv[1] * rwv[3], ri, atol=1e-6)):
                info.warnings.append("RealWorldValueMapping (Bq/mL) disagrees with RescaleSlope/Intercept while "
                                     "Units = BQML; the Units/Rescale values are used")
        return
    if rwv is not None:
        same = all(_rwv_bqml_item(d) == rwv for d in datasets[1:])
        if len(datasets) == 1 or same:
            info.spect_units = "Bq/mL"
            info.scaling = (f"Real World Value Mapping (0040,9096): stored × {rwv[0]:.6g} + {rwv[1]:.6g} {rwv[2]}"
                            + (f" × {rwv[3]:g}" if rwv[3] != 1 else ""))
            return
        info.warnings.append("RealWorldValueMapping differs between files of the series; not applied")
    if "PHILIPS" in info.manufacturer.upper():
        f9 = _private_value(ds, 0x7053, 0x09, "Philips PET Private Group")
        f0 = _private_value(ds, 0x7053, 0x00, "Philips PET Private Group")
        try:
            f9 = float(f9.decode() if isinstance(f9, bytes) else f9) if f9 is not None else None
        except (TypeError, ValueError):
            f9 = None
        if f0 is not None:
            info.warnings.append(f"Philips SUV scale factor (7053,xx00) = {f0} present (not used)")
        if f9 is not None and f9 > 0 and units in ("CNTS", ""):
            info.private_scale_factor = f9
            info.private_scale_source = "Philips activity concentration scale factor (7053,xx09)"
            info.spect_units = "Bq/mL"
            info.scaling = f"rescale slope/intercept (GDCM) × Philips (7053,xx09) = {f9:.6g}"
            return
    if units == "CNTS":
        info.spect_units = "counts"


def read_durations(ds, info) -> None:
    """Scan duration (s), number of heads and a sentence saying how they were derived."""
    rot = ds.get("RotationInformationSequence", None)
    parts = []
    if rot is not None and len(rot) > 0:
        total, fd, nf = 0.0, None, 0
        for r in rot:
            afd = _float(r, "ActualFrameDuration")
            n = _int(r, "NumberOfFramesInRotation")
            if afd is not None and n:
                total += afd / 1000.0 * n
                fd = afd / 1000.0 if fd is None else fd
                nf += n
                parts.append(f"{n} × {afd / 1000.0:g} s")
        if fd is not None:
            info.frame_duration_s, info.number_of_frames_in_rotation = fd, nf
            info.acquisition_duration_s = total
            info.duration_derivation = (f"NumberOfFramesInRotation (0054,0053) × ActualFrameDuration (0018,1242) of "
                                        f"RotationInformationSequence (0054,0052): {' + '.join(parts)} = {total:g} s "
                                        "scan duration")
    if info.frame_duration_s is None:
        afd = _float(ds, "ActualFrameDuration")
        if afd is not None:
            info.frame_duration_s = afd / 1000.0
            info.acquisition_duration_s = afd / 1000.0
            ref = _float(ds, "FrameReferenceTime")
            info.duration_derivation = (f"ActualFrameDuration (0018,1242) = {afd / 1000.0:g} s"
                                        + (f" (FrameReferenceTime (0054,1300) {ref / 1000.0:g} s)" if ref is not None
                                           else ""))
    info.number_of_detectors = _int(ds, "NumberOfDetectors")
    if info.modality != "NM" or info.acquisition_duration_s is None:
        return
    det_seq = ds.get("DetectorInformationSequence", None)
    n_items = len(det_seq) if det_seq is not None else 0
    candidates = []
    if info.number_of_detectors:
        candidates.append((info.number_of_detectors, f"NumberOfDetectors (0054,0021) = {info.number_of_detectors}"))
    if n_items:
        candidates.append((n_items, f"{n_items} item(s) in DetectorInformationSequence (0054,0022)"))
    if candidates:
        info.number_of_heads = max(c[0] for c in candidates)
        info.heads_source = "; ".join(c[1] for c in candidates)
        info.duration_derivation += (f"; {info.number_of_heads} head(s) ({info.heads_source}) → detector time "
                                     f"{info.acquisition_duration_s * info.number_of_heads:g} s")


def duration_for_basis(info, basis: str | None) -> float | None:
    """Acquisition duration (s) a calibration factor with ``basis`` refers to: ``scan_duration`` →
    the scan duration; ``detector_time`` → scan duration × number of heads (1 when unknown)."""
    if info.acquisition_duration_s is None:
        return None
    if basis == "detector_time":
        return info.acquisition_duration_s * (info.number_of_heads or 1)
    return info.acquisition_duration_s


def read_decay_correction(ds, datasets, info) -> None:
    """Set ``info.decay_undo_factor`` (ADMIN), or ``info.refusal`` for a decay correction that
    cannot be used. Needs ``info.hours_post_injection`` and ``info.half_life_s`` for ADMIN without
    DecayFactor."""
    corrected = ds.get("CorrectedImage", None)
    if isinstance(corrected, str):
        corrected = [corrected]
    corrected = [str(c).upper() for c in corrected] if corrected is not None else []
    dc = (info.decay_correction or "").strip().upper()
    if not dc:
        if "DECY" in corrected:
            info.refusal = ("CorrectedImage (0028,0051) lists DECY but DecayCorrection (0054,1102) is absent: the time "
                            "the values are decay-corrected to is unknown; export with DecayCorrection START or ADMIN")
        return
    if dc in ("NONE", "START"):
        if dc == "START":
            info.decay_note = "DecayCorrection (0054,1102) START: values are the activity at the scan start, used as is"
        return
    if dc != "ADMIN":
        info.refusal = (f"DecayCorrection (0054,1102) = {info.decay_correction!r} is not one of NONE, START, ADMIN: "
                        "the time the values are decay-corrected to is unknown")
        return
    factors = [_float(d, "DecayFactor") for d in datasets]
    factors = [f for f in factors if f is not None and f > 0]
    computed = None
    if info.hours_post_injection is not None and info.hours_post_injection > 0 and info.half_life_s:
        computed = math.exp(math.log(2.0) * info.hours_post_injection * 3600.0 / info.half_life_s)
    if factors:
        f = factors[0]
        if max(factors) / min(factors) - 1.0 > 1e-3:
            info.warnings.append(f"DecayFactor (0054,1321) differs between files ({min(factors):g}..{max(factors):g}); "
                                 f"the first, {f:g}, is used")
        if computed is not None and abs(f / computed - 1.0) > 0.01:
            info.warnings.append(f"DecayFactor (0054,1321) = {f:.6g} differs by {100 * abs(f / computed - 1):.1f} % from "
                                 f"exp(λ·t) = {computed:.6g} for {info.hours_post_injection:.2f} h p.i.; DecayFactor is used")
        info.decay_undo_factor = 1.0 / f
        source = f"DecayFactor (0054,1321) = {f:.6g}"
    elif computed is not None:
        info.decay_undo_factor = 1.0 / computed
        source = (f"exp(−ln2 · {info.hours_post_injection:.3f} h / T½ {info.half_life_s / 3600.0:.2f} h) from the "
                  "injection and acquisition times and RadionuclideHalfLife (0018,1075)")
    else:
        info.refusal = ("DecayCorrection (0054,1102) = ADMIN (values decayed back to the administration) and neither "
                        "DecayFactor (0054,1321) nor injection/acquisition times with RadionuclideHalfLife (0018,1075) "
                        "are there to undo it")
        return
    info.decay_note = (f"DecayCorrection (0054,1102) ADMIN undone: values × {info.decay_undo_factor:.6g} ({source}) "
                       "to give the activity at the scan start")
    info.warnings.append(info.decay_note)
    info.scaling += f"; {info.decay_note}"  # a reader that applies only Rescale (e.g. Slicer's) must read again


def recompute_admin_decay(info) -> None:
    """Recompute an ADMIN undo factor that came from the times (after the injection date was
    inferred or a time zone resolved); a factor from DecayFactor is kept."""
    if (info.decay_correction or "").strip().upper() != "ADMIN" or info.decay_note is None \
            or "DecayFactor (0054,1321) =" in info.decay_note:
        return
    if info.hours_post_injection is None or info.hours_post_injection <= 0 or not info.half_life_s:
        return
    info.warnings = [w for w in info.warnings if w != info.decay_note]
    info.scaling = info.scaling.replace(f"; {info.decay_note}", "")
    info.decay_undo_factor = math.exp(-math.log(2.0) * info.hours_post_injection * 3600.0 / info.half_life_s)
    info.decay_note = (f"DecayCorrection (0054,1102) ADMIN undone: values × {info.decay_undo_factor:.6g} (exp(−ln2 · "
                       f"{info.hours_post_injection:.3f} h / T½ {info.half_life_s / 3600.0:.2f} h) from the injection "
                       "and acquisition times and RadionuclideHalfLife (0018,1075)) to give the activity at the scan start")
    info.warnings.append(info.decay_note)
    info.scaling += f"; {info.decay_note}"  # a reader that applies only Rescale (e.g. Slicer's) must read again
