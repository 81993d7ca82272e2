"""``report.html``: one self-contained page (figures embedded as PNG) a physicist can read and sign.

Sections: summary metrics, warnings, per-VOI per-cycle dose table, SPECT maximum-intensity
projections with VOI contours per cycle, registration checks, time-activity curves with the
fitted models, AD/AA across cycles and dose-volume histograms (when voxel dose maps exist).
Figures are drawn with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import __version__


def _fig_to_img_tag(fig, alt: str) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/>'


def _pm(s: dict, key: str, digits: int):
    """A summary metric with its 1σ (uncertainty budget, Gear et al. EJNMMI 2018) as "v ± σ"."""
    from ..physics.uncertainty import value_with_sigma

    return value_with_sigma(s, key, digits)


def _fmt(v, digits=2):
    if v is None:
        return "–"
    if isinstance(v, float):
        if v != v:
            return "–"
        return f"{v:.{digits}f}"
    return html.escape(str(v))


def _table(header, rows) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _mip_figure(result) -> str:
    """Coronal MIP of each cycle's reference-time registered SPECT with VOI contours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..imaging.study_registration import cycle_reference_keys

    refs = cycle_reference_keys(result.study, result.summary.get("options", {}).get("reference_hours", 24.0))
    cyc_keys = sorted(refs)
    fig, axes = plt.subplots(1, len(cyc_keys), figsize=(3.2 * len(cyc_keys), 3.6), squeeze=False)
    sp = result.reference_spect.GetSpacing()
    for ax, c in zip(axes[0], cyc_keys):
        arr = sitk.GetArrayViewFromImage(result.registered_spect[refs[c]])
        mip = arr.max(axis=1)  # coronal: project along y (anterior-posterior)
        ax.imshow(mip, cmap="gray_r", origin="lower", aspect=sp[2] / sp[0],
                  vmax=np.percentile(mip, 99.5) if mip.max() > 0 else 1)
        for v, colour in zip(result.vois, _colours(len(result.vois))):
            proj = v.mask_for(c).any(axis=1)
            if proj.any():
                ax.contour(proj.astype(float), levels=[0.5], colors=[colour], linewidths=0.8,
                           linestyles="-" if v.included else ":")
        ax.set_title(f"cycle {c}", fontsize=9)
        ax.set_axis_off()
    fig.suptitle("SPECT coronal MIP (reference time point, registered) with VOI contours", fontsize=9)
    return _fig_to_img_tag(fig, "MIP with VOI contours")


def _colours(n):
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def _registration_figure(result) -> str:
    """Coronal slice through the reference: reference (magenta) vs each registered scan (green)."""
    import matplotlib.pyplot as plt

    keys = [k for k in sorted(result.registered_spect) if k != result.reference_key]
    if not keys:
        return ""
    ref = sitk.GetArrayViewFromImage(result.reference_spect)
    iy = int(np.argmax(ref.sum(axis=(0, 2))))
    ncol = min(len(keys), 6)
    nrow = int(np.ceil(len(keys) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.2 * ncol, 2.4 * nrow), squeeze=False)
    r = ref[:, iy, :]
    scale = np.percentile(r, 99.5) or 1.0
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, key in zip(axes.flat, keys):
        m = sitk.GetArrayViewFromImage(result.registered_spect[key])[:, iy, :]
        ms = np.percentile(m, 99.5) or 1.0
        rgb = np.stack([np.clip(r / scale, 0, 1), np.clip(m / ms, 0, 1), np.clip(r / scale, 0, 1)], axis=-1)
        ax.imshow(rgb, origin="lower")
        ax.set_title(f"c{key[0]} tp{key[1] + 1}", fontsize=8)
    fig.suptitle("Registration check: reference (magenta) vs registered scan (green); grey = aligned", fontsize=9)
    return _fig_to_img_tag(fig, "registration check")


def _tac_figure(result) -> str:
    """Time-activity (or dose-rate) samples and fitted curves per VOI, one panel per VOI."""
    import matplotlib.pyplot as plt

    vois = [v for v in result.vois]
    ncol = min(len(vois), 4)
    nrow = int(np.ceil(len(vois) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 2.8 * nrow), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    cycles = sorted({c for (_, c) in result.fits})
    for ax, v in zip(axes.flat, vois):
        ax.set_axis_on()
        for c, colour in zip(cycles, _colours(len(cycles))):
            if (v.name, c) not in result.samples:
                continue
            hours, y, units = result.samples[(v.name, c)]
            fit = result.fits[(v.name, c)]
            t = np.linspace(0, max(hours) * 1.6, 200)
            ax.plot(hours, y, "o", color=colour, ms=4)
            ax.plot(t, fit.evaluate(t), "-", color=colour, lw=1, label=f"c{c} {fit.model}")
        ax.set_title(v.name + ("" if v.included else " (excluded)"), fontsize=9)
        ax.set_xlabel("h p.i.", fontsize=8)
        ax.set_ylabel(units, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return _fig_to_img_tag(fig, "time-activity curves")


def _ad_per_aa_figure(result) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    names = list(dict.fromkeys(r["voi"] for r in result.rows))
    for name, colour in zip(names, _colours(len(names))):
        rr = [r for r in result.rows if r["voi"] == name]
        ls = "-" if rr[0]["included"] else ":"
        ax.plot([r["cycle"] for r in rr], [r["ad_per_aa_Gy_per_GBq"] for r in rr], "o" + ls, color=colour,
                label=name, ms=4)
    ax.set_xlabel("cycle")
    ax.set_ylabel("AD/AA (Gy/GBq)")
    ax.set_yscale("log")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Absorbed dose per administered activity across cycles", fontsize=9)
    return _fig_to_img_tag(fig, "AD/AA across cycles")


def _dvh_figure(result) -> str:
    """Cumulative DVHs (voxel-wise, not partial-volume corrected) of every VOI, first and last cycle."""
    stats = result.maps.get("dose_statistics") if isinstance(result.maps, dict) else None
    if not stats:
        return ""
    import matplotlib.pyplot as plt

    cycles = sorted({c for (_, c) in stats})
    shown = [cycles[0], cycles[-1]] if len(cycles) > 1 else cycles
    fig, axes = plt.subplots(1, len(shown), figsize=(5.2 * len(shown), 3.4), squeeze=False)
    names = list(dict.fromkeys(n for (n, _) in stats))
    for ax, c in zip(axes[0], shown):
        for name, colour in zip(names, _colours(len(names))):
            st = stats.get((name, c))
            if st is not None:
                ax.plot(st.dvh_dose_Gy, 100 * st.dvh_fraction, lw=1, color=colour, label=name)
        ax.set_xlabel("absorbed dose (Gy)")
        ax.set_ylabel("volume (%)")
        ax.set_title(f"cumulative DVH, cycle {c} (voxel-wise LED, no PVC)", fontsize=9)
        ax.legend(fontsize=6)
    return _fig_to_img_tag(fig, "DVH")


_CSS = """body{font-family:sans-serif;margin:24px;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}td,th{border:1px solid #bbb;padding:3px 7px;text-align:right}
th{background:#eee}td:first-child,th:first-child{text-align:left}h2{border-bottom:1px solid #ccc;margin-top:28px}
.warn{color:#8a4b00}.small{font-size:12px;color:#555}img{max-width:100%}"""


def methods_text(result) -> str:
    """What was actually done in this run, from its options and inputs (for the signed report)."""
    opts = result.summary.get("options", {})
    units = {tp.spect_units for c in result.study.cycles for tp in c.timepoints}
    has_ct = any(tp.ct is not None for c in result.study.cycles for tp in c.timepoints)
    reg = opts.get("registration", "auto")
    parts = [f"SPECT units {', '.join(sorted(units))}."]
    parts.append("No registration (images assumed aligned)." if reg == "none" else
                 f"Registration '{reg}' of every scan to the cycle-1 reference scan "
                 f"({opts.get('reference_hours', 24):g} h), later cycles in two stages; cubic B-spline resampling "
                 "keeping total activity.")
    parts.append("Tumour contours re-segmented on each cycle's reference scan." if opts.get("resegment_each_cycle")
                 else "VOIs drawn or contoured (adaptive threshold) on the cycle-1 reference scan and copied to all "
                      "scans.")
    parts.append(f"Minimum tumour volume {opts.get('min_tumor_volume_ml', 10):g} mL on the cycle-1 reference scan.")
    if result.study.recovery_coefficients:
        parts.append("Partial-volume correction with recovery coefficients (table; fitted model above its largest "
                     f"sphere, flagged) for {', '.join(opts.get('apply_pvc_to', []))}"
                     + (f"; per VOI: {opts['pvc_per_voi']}" if opts.get("pvc_per_voi") else "") + ".")
    else:
        parts.append("No partial-volume correction (no recovery coefficients given).")
    parts.append("Time-activity fit: seed 000 Eq. 1 bi-exponential with documented fallbacks "
                 f"(model '{opts.get('fit_model', 'auto')}').")
    if units == {"Gy/h"}:
        parts.append("Dose-rate maps were integrated directly (no activity-to-dose step).")
    elif opts.get("dose_method") == "voxel_s_value":
        parts.append("Absorbed dose by voxel S-value convolution (electrons and photons, ICRP-107).")
    else:
        parts.append("Absorbed dose by local deposition of the ICRP-107 electron energy with the VOI mass from "
                     + ("CT (HU to density, Schneider et al. 2000)." if has_ct else "soft-tissue density 1.04 g/mL (no CT)."))
    parts.append("DVH, D90/D50/D10 and EUD: voxel dose inside each VOI scaled so that its mean equals the "
                 "(partial-volume corrected) VOI dose; cumulative DVH over cycles in dvh_cumulative.csv.")
    parts.append("Kidney BED with the Lea-Catcheside factor of each fitted curve (alpha/beta 2.6 Gy, T_rep 2.8 h).")
    return " ".join(parts)


def build_report_html(result) -> str:
    """The report as an HTML string."""
    import matplotlib

    matplotlib.use("Agg")
    s = result.summary
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>LuDosimetry report {html.escape(s['patient_id'])}"
             f"</title><style>{_CSS}</style></head><body>",
             f"<h1>LuDosimetry report — patient {html.escape(s['patient_id'])}</h1>",
             f"<p class='small'>Radionuclide {html.escape(s.get('radionuclide', ''))}; generated "
             f"{_dt.datetime.now().astimezone().isoformat(timespec='seconds')} by lu-dosimetry {__version__}.</p>",
             f"<p><b>Methods.</b> {html.escape(methods_text(result))}</p>"]
    nxt = s.get("next_cycle_activity") or {}
    nxt2 = s.get("next_cycle_activity_seed002") or {}
    parts.append("<h2>Summary</h2>" + _table(["metric", "value"], [
        ["cumulative tumour dose cAD (Gy, mean over included tumours)", _fmt(_pm(s, "cumulative_tumor_dose_Gy", 1))],
        ["ΔAD/AA last vs first cycle (%)", _fmt(_pm(s, "delta_ad_per_aa_percent", 1))],
        ["kidney cumulative dose (Gy)", _fmt(_pm(s, "kidney_cumulative_dose_Gy", 2))],
        ["kidney BED (Gy; ± 1σ from the uncertainty budget, Gear et al. EJNMMI 2018)", _fmt(_pm(s, "kidney_bed_Gy", 2))],
        ["suggested next-cycle activity, seed 000 rule (MBq)", _fmt(nxt.get("activity_MBq"), 0)],
        ["seed 000 rule (kidney 23 Gy)", _fmt(nxt.get("explanation"))],
        ["next-cycle activity, seed 002 rule (MBq)", _fmt(nxt2.get("activity_MBq"), 0)],
        ["seed 002 rule (renal BED 27 ± 2 Gy)", _fmt(nxt2.get("explanation"))],
        ["tumours included", _fmt(", ".join(s.get("tumors_included", [])))],
        ["tumours excluded", _fmt(", ".join(s.get("tumors_excluded", [])))],
    ]))
    warns = s.get("warnings", [])
    parts.append(f"<h2>Warnings ({len(warns)})</h2>")
    parts.append(_table(["#", "warning"], [[str(i + 1), f"<span class='warn'>{html.escape(w)}</span>"]
                                            for i, w in enumerate(warns)]) if warns else "<p>None.</p>")
    parts.append("<h2>Absorbed dose per VOI per cycle</h2>")
    parts.append(_table(
        ["VOI", "kind", "cycle", "volume (mL)", "AA (MBq)", "AD (Gy)", "± 1σ (Gy)", "AD/AA (Gy/GBq)", "fit",
         "T_eff (h)", "RC", "voxel D90/D50/D10 (Gy)", "flags"],
        [[html.escape(r["voi"]) + ("" if r["included"] else " (excluded)"), r["kind"], str(r["cycle"]),
          _fmt(r["volume_ml"], 1), _fmt(float(r["administered_activity_MBq"]), 0), _fmt(r["absorbed_dose_Gy"]),
          _fmt(r.get("absorbed_dose_uncertainty_Gy")), _fmt(r["ad_per_aa_Gy_per_GBq"], 3), html.escape(r["fit_model"]),
          _fmt(r["effective_half_life_h"], 1), _fmt(r["recovery_coefficient"], 3),
          " / ".join(_fmt(r.get(k), 1) for k in ("D90_Gy", "D50_Gy", "D10_Gy")),
          f"<span class='small'>{html.escape(r['flags'])}</span>"] for r in result.rows]))
    reg_rows = []
    for key, reg in sorted(result.registrations.items()):
        if reg is None:
            reg_rows.append([f"cycle {key[0]} tp {key[1] + 1}", "reference" if key == result.reference_key else "none",
                             "–", "–", "–"])
        else:
            reg_rows.append([f"cycle {key[0]} tp {key[1] + 1}", html.escape(reg.method), _fmt(reg.metric_value, 4),
                             ", ".join(f"{t:.1f}" for t in reg.translation_mm),
                             html.escape("; ".join(reg.warnings)) or "–"])
    parts.append("<h2>Registration</h2>" + _table(["scan", "method", "metric", "translation (mm)", "notes"], reg_rows))
    from .report_registration import registration_section

    parts.append(registration_section(result))
    for builder in (_mip_figure, _registration_figure, _tac_figure, _ad_per_aa_figure, _dvh_figure):
        try:
            fig = builder(result)
        except Exception as exc:  # a figure must never cost the whole report
            fig = f"<p class='warn'>figure {builder.__name__} failed: {html.escape(str(exc))}</p>"
        if fig:
            parts.append(f"<div>{fig}</div>")
    parts.append("<h2>Sign-off</h2><p>Physicist: ____________________ Date: __________</p></body></html>")
    return "\n".join(parts)


def write_report(result, path) -> Path:
    """Write ``report.html`` to ``path``."""
    p = Path(path)
    p.write_text(build_report_html(result), encoding="utf-8")
    return p
