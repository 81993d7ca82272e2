"""Registration quality section of ``report.html`` (issue 10): per scan, the QC numbers (table) and,
per VOI, the CT with the SPECT fused around the VOI with its contour: the reference scan, then every
registered scan.

Scans whose SPECT check failed come first (title in red), then refined ones, then the others. The
panels show every voxel of the box around the VOI at a whole number of pixels per voxel (>= 2;
about 96 px per panel), composed as pixels (:mod:`.report_raster`) so a report with many VOIs
and scans stays fast; each VOI's figure is >= 300 px wide. The named registration metric is in
the table, the residual SPECT shift and box correlation per VOI above each panel.
"""

from __future__ import annotations

import html

import numpy as np
import SimpleITK as sitk

_ORDER = {"check_failed": 0, "refined": 1, "ok": 2}


def _fmt(v, digits=2) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{digits}f}"


def ordered_scans(result) -> list:
    """Keys of the checked scans, failed checks first, then refined, then the rest (by scan)."""
    qc = result.registration_qc
    if qc is None:
        return []
    return sorted(qc.checks, key=lambda k: (_ORDER.get(qc.checks[k].status, 3), k))


def _ct_on(reference: sitk.Image, ct: sitk.Image | None) -> np.ndarray | None:
    if ct is None:
        return None
    return sitk.GetArrayFromImage(sitk.Resample(ct, reference, sitk.Transform(3, sitk.sitkIdentity), sitk.sitkLinear,
                                                -1000.0, sitk.sitkFloat32))


def _crop(mask: np.ndarray, margin_vox: int = 5):
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - margin_vox, 0)
    hi = np.minimum(idx.max(axis=0) + margin_vox + 1, mask.shape)
    zc = round(float(idx[:, 0].mean()))
    return zc, slice(lo[1], hi[1]), slice(lo[2], hi[2])


def voi_figure(result, voi, keys, ct_ref: np.ndarray | None):
    """One figure (:class:`~.report_raster.Raster`) for ``voi``: the reference scan, then the
    registered SPECT of each scan in ``keys`` (failed checks first), fused on the reference CT,
    axial slice through the VOI centre, VOI contour in cyan; above each panel the scan, its
    check and the VOI's residual shift and box correlation. None if the VOI has no voxels."""
    from . import report_raster as rr

    qc = result.registration_qc
    if not voi.mask.any():
        return None
    ref = sitk.GetArrayViewFromImage(result.reference_spect)
    zc, sy, sx = _crop(voi.mask)
    k = rr.zoom_for(sx.stop - sx.start, 96)
    sp = result.reference_spect.GetSpacing()
    grey = None if ct_ref is None else np.clip((ct_ref[zc, sy, sx] + 300.0) / 700.0, 0, 1)
    mask = voi.mask[zc, sy, sx]
    lines = [(mask, (0, 255, 255))] if mask.any() and not mask.all() else []

    cache = {}

    def panel(spect, vmax):
        s = np.asarray(spect[zc, sy, sx], dtype=np.float64)
        g = grey if grey is not None else cache.setdefault("black", np.zeros_like(s))
        return rr.fused_panel(g, s / vmax, 0.05, "hot", 0.55 if grey is not None else 1.0, lines, k, sp[1] / sp[0],
                              cache=cache)

    ref_max = float(ref[zc, sy, sx].max()) or 1.0
    panels, titles = [panel(ref, ref_max)], ["reference scan\n\n"]
    for key in keys:
        c = qc.checks[key].vois.get(voi.name)
        if c is None:
            continue
        own = qc.local.get((voi.name, key))
        mov = sitk.GetArrayViewFromImage(own if own is not None else result.registered_spect[key])
        vmax = float(max(ref_max, mov[zc, sy, sx].max())) or 1.0
        panels.append(panel(mov, vmax))
        state = ("FAILED " if not c.passed else "") + ("refined" if c.refined else "")
        text = (f"cycle {key[0]} scan {key[1] + 1} {state}\nresidual {_fmt(c.residual_mm, 1)}"
                + (f"->{_fmt(c.residual_after_mm, 1)}" if c.refined else "") + " mm"
                + f"\nr {_fmt(c.correlation_before)}->{_fmt(c.correlation_after)}")
        titles.append((text, (200, 0, 0)) if not c.passed else text)
    return rr.grid(f"{voi.name}: SPECT (hot) on the reference CT, axial slice through the VOI centre, contour cyan",
                   titles, [("", panels)], row_label_px=4)


def _table(result) -> str:
    qc = result.registration_qc
    rows = []
    for key in ordered_scans(result):
        res, chk = qc.registrations.get(key), qc.checks[key]
        per_voi = "; ".join(f"{n} {_fmt(v.residual_mm, 1)}" + (f"→{_fmt(v.residual_after_mm, 1)} (refined)"
                                                                if v.refined else "") + ("" if v.passed else " FAILED")
                            for n, v in chk.vois.items())
        cells = [f"cycle {key[0]} scan {key[1] + 1}", chk.status, res.method if res else "none",
                 (res.start or "–") if res else "–",
                 ", ".join(f"{t:.1f}" for t in res.translation_mm) if res else "0, 0, 0",
                 ", ".join(f"{t:.1f}" for t in res.rotation_deg) if res else "0, 0, 0",
                 f"{res.metric_name}: {_fmt(res.metric_value, 4)}" if res and res.metric_name else "–",
                 f"{_fmt(chk.correlation_before, 3)} → {_fmt(chk.correlation_after, 3)}", per_voi]
        cls = " class='warn'" if chk.status == "check_failed" else ""
        rows.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("scan", "check", "method", "winning start", "translation (mm)",
                                             "rotation (°)", "metric", "SPECT r before → after",
                                             "residual SPECT shift per VOI (mm)"))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def registration_section(result) -> str:
    """HTML of the registration-quality section (empty if the run has no SPECT check)."""
    qc = getattr(result, "registration_qc", None)
    if qc is None or not qc.checks:
        return ""
    failed = [k for k in qc.checks if qc.checks[k].status == "check_failed"]
    parts = ["<h2>Registration quality (SPECT check per VOI)</h2>",
             f"<p>Every registration was checked on the SPECT: the residual shift of the registered SPECT in a box "
             f"around each VOI; above {qc.threshold_mm:g} mm the VOI was refined locally. "
             + (f"<b class='warn'>{len(failed)} scan(s) failed the check; their doses are flagged "
                f"'registration:check_failed'.</b>" if failed else "All scans passed the check.") + "</p>"
             "<p class='small'>Figures per VOI: the reference scan, then each registered scan (failed checks first, "
             "in red) with the residual SPECT shift (mm, '->' after local refinement) and the SPECT correlation r "
             "in the VOI's box before -> after registration.</p>",
             _table(result)]
    ct_ref = _ct_on(result.reference_spect, getattr(qc, "reference_ct", None))
    from .report_figures import figure_cap_note, figure_vois

    keys = ordered_scans(result)
    note = figure_cap_note(result)
    if note:
        parts.append(f"<p class='small'>{html.escape(note)}</p>")
    for voi in figure_vois(result):
        if not any(voi.name in qc.checks[k].vois for k in keys):
            continue
        try:
            fig = voi_figure(result, voi, keys, ct_ref)
            if fig is not None:
                parts.append(f"<div>{fig.img_tag(f'registration check {voi.name}')}</div>")
        except Exception as exc:  # noqa: BLE001 - a figure must never cost the whole report
            parts.append(f"<p class='warn'>registration figure of {html.escape(voi.name)} failed: "
                         f"{html.escape(str(exc))}</p>")
    return "\n".join(parts)
