"""Registration quality section of ``report.html`` (issue 10): per scan, the QC numbers and the CT
with the SPECT fused around each VOI with its contour, reference scan vs registered scan.

Scans whose SPECT check failed come first, then refined ones, then the others. Each panel is at
least 300 px a side so a physicist can judge the alignment (the box around the VOI, each voxel a
block of whole pixels); the named registration metric and the residual SPECT shift per VOI are
printed with it. Panels are composed as pixels (:mod:`.report_raster`) and drawn for the VOIs of
:func:`.report_figures.figure_vois` (at most ``FIGURE_VOI_CAP``; the section names any left out)."""

from __future__ import annotations

import html

import numpy as np
import SimpleITK as sitk

_ORDER = {"check_failed": 0, "refined": 1, "ok": 2}
PANEL_PX = 300  # every panel at least this many pixels a side, so that a physicist can judge the alignment


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


def _pad_to(img, size: int):
    """``img`` (PIL) centred on a black square canvas of at least ``size`` px a side."""
    from PIL import Image

    w, h = img.size
    if w >= size and h >= size:
        return img
    out = Image.new("RGB", (max(w, size), max(h, size)), (0, 0, 0))
    out.paste(img, ((out.size[0] - w) // 2, (out.size[1] - h) // 2))
    out.info.update(img.info)
    return out


def scan_figure(result, key, ct_ref: np.ndarray | None, vois=None, caches: dict | None = None) -> str:
    """One figure for scan ``key``: per VOI (columns) the reference (top) and registered (bottom) SPECT
    fused on the reference CT, axial slice through the VOI centre, VOI contour in cyan; every panel
    >= :data:`PANEL_PX` px a side (the box around the VOI, each voxel a block of whole pixels,
    centred on black; the contour is drawn smooth). Composed as pixels (:mod:`.report_raster`); ``caches`` (per VOI) keeps the
    upsampled CT and contour of a VOI for the next scan."""
    from . import report_raster as rr

    qc = result.registration_qc
    chk = qc.checks[key]
    vois = [v for v in (vois if vois is not None else result.vois) if v.name in chk.vois and v.mask.any()]
    if not vois:
        return ""
    caches = {} if caches is None else caches
    ref = sitk.GetArrayViewFromImage(result.reference_spect)
    sp = result.reference_spect.GetSpacing()
    top, bottom, titles = [], [], []
    for v in vois:
        zc, sy, sx = _crop(v.mask)
        cache = caches.setdefault(v.name, {})
        if "grey" not in cache:
            cache["grey"] = (np.clip((ct_ref[zc, sy, sx] + 300.0) / 700.0, 0, 1) if ct_ref is not None
                             else np.zeros((sy.stop - sy.start, sx.stop - sx.start)))
            m = v.mask[zc, sy, sx]
            cache["lines"] = [(m, (0, 255, 255))] if m.any() and not m.all() else []
        aspect = sp[1] / sp[0]
        k = int(np.ceil(PANEL_PX / max(sx.stop - sx.start, (sy.stop - sy.start) * aspect)))
        own = qc.local.get((v.name, key))
        mov = sitk.GetArrayViewFromImage(own if own is not None else result.registered_spect[key])
        r_box, m_box = np.asarray(ref[zc, sy, sx], dtype=np.float64), np.asarray(mov[zc, sy, sx], dtype=np.float64)
        vmax = float(max(r_box.max(), m_box.max())) or 1.0
        alpha = 0.55 if ct_ref is not None else 1.0
        for box, out in ((r_box, top), (m_box, bottom)):
            out.append(_pad_to(rr.fused_panel(cache["grey"], box / vmax, 0.05, "hot", alpha, cache["lines"], k, aspect,
                                              cache=cache, smooth=False), PANEL_PX))
        c = chk.vois[v.name]
        state = ("FAILED " if not c.passed else "") + ("refined " if c.refined else "")
        text = (f"{v.name}\n{state}residual {_fmt(c.residual_mm, 1)} mm"
                + (f" -> {_fmt(c.residual_after_mm, 1)} mm" if c.refined else "")
                + f"\nbox r {_fmt(c.correlation_before)} -> {_fmt(c.correlation_after)}")
        titles.append((text, (200, 0, 0)) if not c.passed else text)
    res = qc.registrations.get(key)
    metric = (f"{res.metric_name}: {_fmt(res.metric_value, 4)}" if res is not None and res.metric_name
              else "no metric (not registered)")
    fig = rr.grid(f"cycle {key[0]} scan {key[1] + 1} — check {chk.status}; {metric}", titles,
                  [("reference", top), ("registered", bottom)], row_label_px=74)
    return fig.img_tag(f"registration check cycle {key[0]} scan {key[1] + 1}")


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
             "<p class='small'>One figure per scan (failed checks first): per VOI the reference scan (top) and the "
             "registered scan (bottom), with the residual SPECT shift (mm, '->' after local refinement; failed in "
             "red) and the SPECT correlation r in the VOI's box before -> after registration.</p>",
             _table(result)]
    ct_ref = _ct_on(result.reference_spect, getattr(qc, "reference_ct", None))
    from .report_figures import figure_cap_note, figure_vois

    note = figure_cap_note(result)
    if note:
        parts.append(f"<p class='small'>{html.escape(note)}</p>")
    vois, caches = figure_vois(result), {}
    for key in ordered_scans(result):
        try:
            parts.append(f"<div>{scan_figure(result, key, ct_ref, vois, caches)}</div>")
        except Exception as exc:  # noqa: BLE001 - a figure must never cost the whole report
            parts.append(f"<p class='warn'>registration figure of cycle {key[0]} scan {key[1] + 1} failed: "
                         f"{html.escape(str(exc))}</p>")
    return "\n".join(parts)
