"""Registration quality section of ``report.html`` (issue 10): per scan, the QC numbers and the CT
with the SPECT fused around each VOI with its contour, reference scan vs registered scan.

Scans whose SPECT check failed come first, then refined ones, then the others. Each panel is at
least 300 px wide so a physicist can judge the alignment; the named registration metric and the
residual SPECT shift per VOI are printed with it.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import SimpleITK as sitk

PANEL_INCH = 3.5
DPI = 90  # 3.5 in x 90 dpi = 315 px per panel
_ORDER = {"check_failed": 0, "refined": 1, "ok": 2}


def _img_tag(fig, alt: str) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>'


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


def _panel(ax, ct, spect, mask, zc, sy, sx, vmax, title):
    if ct is not None:
        ax.imshow(ct[zc, sy, sx], cmap="gray", vmin=-300, vmax=400, origin="upper", interpolation="nearest")
    s = spect[zc, sy, sx]
    ax.imshow(np.ma.masked_less(s, 0.05 * vmax), cmap="hot", vmin=0, vmax=vmax, alpha=0.55 if ct is not None else 1.0,
              origin="upper", interpolation="bilinear")
    m = mask[zc, sy, sx]
    if m.any() and not m.all():
        ax.contour(m.astype(float), levels=[0.5], colors=["cyan"], linewidths=1.2)
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def scan_figure(result, key, ct_ref: np.ndarray | None) -> str:
    """One figure for scan ``key``: per VOI (columns) the reference (top) and registered (bottom) SPECT
    fused on the reference CT, axial slice through the VOI centre, VOI contour in cyan."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    qc = result.registration_qc
    chk = qc.checks[key]
    vois = [v for v in result.vois if v.name in chk.vois and v.mask.any()]
    if not vois:
        return ""
    ref = sitk.GetArrayViewFromImage(result.reference_spect)
    fig, axes = plt.subplots(2, len(vois), figsize=(PANEL_INCH * len(vois), PANEL_INCH * 2 + 0.5), squeeze=False)
    for col, v in enumerate(vois):
        own = qc.local.get((v.name, key))
        mov = sitk.GetArrayViewFromImage(own if own is not None else result.registered_spect[key])
        zc, sy, sx = _crop(v.mask)
        vmax = float(max(ref[zc, sy, sx].max(), mov[zc, sy, sx].max())) or 1.0
        c = chk.vois[v.name]
        _panel(axes[0, col], ct_ref, ref, v.mask, zc, sy, sx, vmax, f"{v.name}\nreference scan")
        state = ("FAILED " if not c.passed else "") + ("refined " if c.refined else "")
        _panel(axes[1, col], ct_ref, mov, v.mask, zc, sy, sx, vmax,
               f"{state}residual {_fmt(c.residual_mm, 1)} mm"
               + (f" -> {_fmt(c.residual_after_mm, 1)} mm" if c.refined else "")
               + f"\nbox r {_fmt(c.correlation_before)} -> {_fmt(c.correlation_after)}")
    res = qc.registrations.get(key)
    metric = (f"{res.metric_name}: {_fmt(res.metric_value, 4)}" if res is not None and res.metric_name
              else "no metric (not registered)")
    fig.suptitle(f"cycle {key[0]} scan {key[1] + 1} — check {chk.status}; {metric}", fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.86, wspace=0.04, hspace=0.25)
    return _img_tag(fig, f"registration check cycle {key[0]} scan {key[1] + 1}")


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
                f"'registration:check_failed'.</b>" if failed else "All scans passed the check.") + "</p>",
             _table(result)]
    ct_ref = _ct_on(result.reference_spect, getattr(qc, "reference_ct", None))
    for key in ordered_scans(result):
        try:
            parts.append(f"<div>{scan_figure(result, key, ct_ref)}</div>")
        except Exception as exc:  # noqa: BLE001 - a figure must never cost the whole report
            parts.append(f"<p class='warn'>registration figure of cycle {key[0]} scan {key[1] + 1} failed: "
                         f"{html.escape(str(exc))}</p>")
    return "\n".join(parts)
