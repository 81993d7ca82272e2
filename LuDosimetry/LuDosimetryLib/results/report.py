"""``report.html``: one self-contained page (figures embedded as PNG) a physicist can read and sign.

Sections: summary metrics, warnings, per-VOI per-cycle dose table, SPECT maximum-intensity
projections with VOI contours per cycle, registration checks, time-activity curves with the
fitted models, AD/AA across cycles and dose-volume histograms (when voxel dose maps exist).
Plots are drawn with matplotlib's Agg backend (no display needed), image panels composed as pixels
(:mod:`.report_raster`); every figure is rendered once and its pixels reused by ``report.pdf``.
"""

from __future__ import annotations

import datetime as _dt
import html
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import __version__


def _fig_to_img_tag(fig, alt: str) -> str:
    """A matplotlib figure rendered once (:func:`.report_raster.from_figure`) as an embedded PNG."""
    from .report_raster import from_figure

    return from_figure(fig, dpi=100).img_tag(alt)


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
    """Coronal MIP of each cycle's reference-time registered SPECT with VOI contours (pixels composed
    with :mod:`.report_raster`: one panel per cycle, one key for the VOI colours)."""
    from ..imaging.study_registration import cycle_reference_keys
    from . import report_raster as rr

    refs = cycle_reference_keys(result.study, result.summary.get("options", {}).get("reference_hours", 24.0))
    cyc_keys = sorted(refs)
    sp = result.reference_spect.GetSpacing()
    colours = _colours(len(result.vois))
    panels = []
    for c in cyc_keys:
        arr = sitk.GetArrayViewFromImage(result.registered_spect[refs[c]])
        mip = arr.max(axis=1)  # coronal: project along y (anterior-posterior)
        top = float(np.percentile(mip, 99.5)) if mip.max() > 0 else 1.0
        lines = [(v.mask_for(c).any(axis=1), colour[:3], "" if v.included else "dashed")
                 for v, colour in zip(result.vois, colours)]
        k = rr.zoom_for(mip.shape[1], 200, lo=1, hi=6)
        panels.append(rr.fused_panel(1.0 - rr.normalise(mip, top), None, 0.0, "gray", 0.0, lines, k, sp[2] / sp[0],
                                     flip=True, letters=("R", "L", "S", "I"), scale_bar_mm=50.0, mm_per_px=sp[0] / k,
                                     ink=(0, 0, 0)))
    legend = [(v.name + ("" if v.included else " (excluded)"), colour, not v.included)
              for v, colour in zip(result.vois, colours)]
    return rr.grid("SPECT coronal MIP (reference time point, registered) with VOI contours",
                   [f"cycle {c}" for c in cyc_keys], [("", panels)], row_label_px=4,
                   legend=legend).img_tag("MIP with VOI contours")


def _colours(n):
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def _registration_figure(result) -> str:
    """Coronal slice through the reference: reference (magenta) vs each registered scan (green)."""
    from . import report_raster as rr

    keys = [k for k in sorted(result.registered_spect) if k != result.reference_key]
    if not keys:
        return ""
    ref = sitk.GetArrayViewFromImage(result.reference_spect)
    sp = result.reference_spect.GetSpacing()
    iy = int(np.argmax(ref.sum(axis=(0, 2))))
    r = ref[:, iy, :]
    scale = np.percentile(r, 99.5) or 1.0
    k = rr.zoom_for(r.shape[1], 110, lo=1, hi=6)
    panels = []
    for key in keys:
        m = sitk.GetArrayViewFromImage(result.registered_spect[key])[:, iy, :]
        ms = np.percentile(m, 99.5) or 1.0
        rgb = np.stack([np.clip(r / scale, 0, 1), np.clip(m / ms, 0, 1), np.clip(r / scale, 0, 1)], axis=-1)
        panels.append(rr.fused_panel(rgb, None, 0.0, "gray", 0.0, [], k, sp[2] / sp[0], flip=True, grey_is_rgb=True))
    return rr.grid("Registration check: reference (magenta) vs registered scan (green); grey = aligned",
                   [f"c{key[0]} tp{key[1] + 1}" for key in keys], [("", panels)],
                   row_label_px=4).img_tag("registration check")


def _dvh_figure(result) -> str:
    """Cumulative DVHs (voxel-wise, not partial-volume corrected) of every VOI, first and last cycle."""
    stats = result.maps.get("dose_statistics") if isinstance(result.maps, dict) else None
    if not stats:
        return ""
    from matplotlib.figure import Figure

    cycles = sorted({c for (_, c) in stats})
    shown = [cycles[0], cycles[-1]] if len(cycles) > 1 else cycles
    extra = 1.4 * (1 + (len(stats) // len(cycles) - 1) // 16)  # inches for the VOI key on the right
    fig = Figure(figsize=(5.2 * len(shown) + extra, 3.4))
    axes = fig.subplots(1, len(shown), squeeze=False)
    fig.subplots_adjust(left=0.07, right=1 - extra / (5.2 * len(shown) + extra), bottom=0.14, top=0.9, wspace=0.2)
    names = list(dict.fromkeys(n for (n, _) in stats))
    for ax, c in zip(axes[0], shown):
        for name, colour in zip(names, _colours(len(names))):
            st = stats.get((name, c))
            if st is not None:
                ax.plot(st.dvh_dose_Gy, 100 * st.dvh_fraction, lw=1, color=colour, label=name)
        ax.set_xlabel("absorbed dose (Gy)")
        ax.set_ylabel("volume (%)")
        ax.set_title(f"cumulative DVH, cycle {c} (voxel-wise LED, no PVC)", fontsize=9)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=6, loc="center right", ncol=1 + (len(labels) - 1) // 16)
    return _fig_to_img_tag(fig, "DVH")


_CSS = """body{font-family:sans-serif;margin:24px;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}td,th{border:1px solid #bbb;padding:3px 7px;text-align:right}
th{background:#eee}td:first-child,th:first-child{text-align:left}h2{border-bottom:1px solid #ccc;margin-top:28px}
.warn{color:#8a4b00}.inputs td{text-align:left;vertical-align:top}
.hash{font-family:monospace;font-size:10px;word-break:break-all;display:inline-block;max-width:210px}.small{font-size:12px;color:#555}img{max-width:100%}"""


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
    parts.append("Time-activity fit: bi-exponential model of Macsuka et al., J Nucl Med 2026 (Eq. 1) with "
                 f"documented fallbacks (model '{opts.get('fit_model', 'auto')}'); single-time-point cycles after "
                 "Hebert et al., J Nucl Med 2024 (ratio to a fully imaged cycle), Madsen et al., Med Phys 2018 "
                 "(population T_eff of kidneys and tumours from Macsuka et al., J Nucl Med 2026, Table 2) or "
                 "Hänscheid et al., J Nucl Med 2018.")
    if units == {"Gy/h"}:
        parts.append("Dose-rate maps were integrated directly (no activity-to-dose step).")
    elif opts.get("dose_method") == "voxel_s_value":
        parts.append("Absorbed dose by voxel S-value convolution (electrons and photons, ICRP-107).")
    else:
        parts.append("Absorbed dose by local deposition of the ICRP-107 electron energy with the VOI mass from "
                     + ("CT (HU to density, Schneider et al., Phys Med Biol 2000)." if has_ct
                        else "soft-tissue density 1.04 g/mL (no CT)."))
    parts.append("DVH, D90/D50/D10 and EUD: voxel dose inside each VOI scaled so that its mean equals the "
                 "(partial-volume corrected) VOI dose; cumulative DVH over cycles in dvh_cumulative.csv.")
    parts.append("Kidney BED with the Lea-Catcheside factor of each fitted curve (alpha/beta 2.6 Gy, T_rep 2.8 h; "
                 "Sundlöv et al., Eur J Nucl Med Mol Imaging 2022). Dose uncertainty (1σ): calibration, recovery "
                 "coefficient and volume, registration, fit and single-time-point T_eff propagated through the sum "
                 "over cycles and the BED, following Gear et al., Eur J Nucl Med Mol Imaging 2018. Cumulative AD "
                 "(cAD), ΔAD/AA and AD/AA as defined by Macsuka et al., J Nucl Med 2026; lesion tracking categories "
                 "after Santoro-Fernandes et al., J Nucl Med 2025.")
    return " ".join(parts)


def _severity(text: str) -> str:
    """Warning severity for grouping in the report: "attention" (a result may be wrong), "caution"
    (a correction or fallback was applied) or "note"."""
    t = text.lower()
    if any(k in t for k in ("failed", "cannot", "not defined", "unknown", "missing", "underestimated", "exceed",
                            "implausible", "no voxel-wise")):
        return "attention"
    if any(k in t for k in ("refined", "fallback", "fell back", "extrapolat", "clamp", "below", "excluded",
                            "registration")):
        return "caution"
    return "note"


def _cumulative_by_voi(rows) -> list:
    """[(VOI, kind, included, cumulative AD Gy)] over the cycles of the rows."""
    out = {}
    for r in rows:
        name = r["voi"]
        prev = out.get(name, (r["kind"], r["included"], 0.0))
        out[name] = (prev[0], prev[1], prev[2] + float(r["absorbed_dose_Gy"]))
    return [(n, k, inc, d) for n, (k, inc, d) in out.items()]


def _inputs_section(result) -> str:
    from .report_inputs import scan_rows

    rows = scan_rows(result.study)
    body = [[str(r["cycle"]), str(r["scan"]), _fmt(r["injection_time"]), _fmt(r["acquisition_time"]),
             _fmt(r["hours_post_injection_h"], 2), _fmt(float(r["administered_activity_MBq"]), 0),
             _fmt(r["spect_units"]), _fmt(r["calibration"]) + " / " + _fmt(r["calibration_basis"]),
             _fmt(r["spect_name"]) + "<br/><span class='hash'>UID " + _fmt(r["spect_series_uid"]) + "<br/>SHA-256 "
             + _fmt(r["spect_sha256"]) + "</span>",
             _fmt(r["ct_name"]) + "<br/><span class='hash'>UID " + _fmt(r["ct_series_uid"]) + "<br/>SHA-256 "
             + _fmt(r["ct_sha256"]) + "</span>"] for r in rows]
    seg = result.study.segmentation_file
    extra = ""
    if seg is not None:
        from .report_inputs import image_identity

        ident = image_identity(seg)
        extra = f"<p class='small'>Segmentation {_fmt(ident['name'])}, SHA-256 {_fmt(ident['sha256'])}.</p>"
    manifest = result.study.manifest_path
    if manifest is not None:
        from .report_inputs import sha256_of

        extra += f"<p class='small'>Study manifest {html.escape(str(manifest))}, SHA-256 {sha256_of(manifest)}.</p>"
    return ("<h2>Inputs: scans</h2><div class='inputs'>" + _table(
        ["cycle", "scan", "injection time", "acquisition time", "h p.i.", "AA (MBq)", "SPECT units",
         "calibration / basis", "SPECT (file, series UID, SHA-256)", "CT (file, series UID, SHA-256)"], body) + "</div>"
            + extra)


def _rc_curve_text(result) -> str:
    from ..imaging.recovery_model import whole_range_curve
    from .report_figures import rc_curve_label

    return rc_curve_label(whole_range_curve(result.study.recovery_coefficients)[0])


def _rc_section(result) -> str:
    rc = result.study.recovery_coefficients
    if not rc:
        return "<h2>Partial-volume correction</h2><p>No recovery coefficients given: no partial-volume correction.</p>"
    from .report_figures import rc_curve_figure
    from .report_inputs import recovery_points

    points = recovery_points(result)
    table = _table(["volume (mL)", "RC"], [[_fmt(float(v), 2), _fmt(float(c), 3)]
                                            for v, c in zip(rc["volume_ml"], rc["rc"])])
    voi_table = _table(["VOI", "cycle", "volume (mL)", "RC applied"],
                       [[html.escape(p["voi"]), str(p["cycle"]), _fmt(p["volume_ml"], 1), _fmt(p["rc"], 3)]
                        for p in points])
    fig = rc_curve_figure(result, points)
    return ("<h2>Partial-volume correction: recovery-coefficient curve</h2>"
            f"<p>Calibration table; {html.escape(_rc_curve_text(result))}:</p>"
            + table + (_fig_to_img_tag(fig, "recovery-coefficient curve") if fig is not None else "")
            + "<p>Where each VOI sits on the curve:</p>" + voi_table)


def _options_section(result) -> str:
    opts = result.summary.get("options", {})
    sw = result.summary.get("software", {})
    rows = [[html.escape(k), html.escape(str(v))] for k, v in sorted(opts.items())]
    return (f"<h2>Options and software</h2><p>{html.escape(sw.get('name', 'lu-dosimetry'))} "
            f"{html.escape(str(sw.get('version', __version__)))}; run ID {html.escape(str(result.summary.get('run_id')))}."
            "</p>" + _table(["option", "value"], rows))


def _references_section() -> str:
    from ..references import reference_list

    items = "".join(f"<li>{html.escape(t)}</li>" for t in reference_list())
    return f"<h2>References</h2><ol class='small'>{items}</ol>"


def _planning_section(s) -> str:
    p = s.get("planning") or {}
    if not p:
        return ""
    return ("<h2>Next-cycle planning aid</h2>"
            f"<p><b>Rule chosen ({html.escape(p.get('rule', ''))}):</b> {html.escape(p.get('recommendation', ''))}</p>"
            f"<p><b>For comparison:</b> {html.escape(p.get('comparison', ''))}</p>"
            f"<p class='small'>{html.escape(p.get('disclaimer', ''))}</p>")


def _warnings_section(warns) -> str:
    parts = [f"<h2>Warnings ({len(warns)})</h2>"]
    if not warns:
        return parts[0] + "<p>None.</p>"
    for level in ("attention", "caution", "note"):
        ws = [w for w in warns if _severity(w) == level]
        if ws:
            parts.append(f"<h3>{level} ({len(ws)})</h3>" + _table(
                ["#", "warning"], [[str(i + 1), f"<span class='warn'>{html.escape(w)}</span>"] for i, w in enumerate(ws)]))
    return "".join(parts)


def _dose_on_ct_section(result) -> str:
    from .report_figures import dose_on_ct_figures

    figs = dose_on_ct_figures(result)
    if not figs:
        return ""
    return ("<h2>Dose on anatomy</h2><p class='small'>Axial and coronal slices through each tumour and the kidneys: "
            "voxel absorbed dose per cycle and cumulative (colour wash, isodose lines 25/50/75 %), VOI contours; "
            "voxel doses are not partial-volume corrected (the table's VOI doses are).</p>"
            + "".join(f"<div>{fig.img_tag('dose on CT ' + title)}</div>" for title, fig in figs))


def _figures(result, builders) -> list[str]:
    """``<div>`` of each ``(name, builder)`` figure; a failing figure becomes a stated failure (a figure
    must never cost the whole report)."""
    out = []
    for name, builder in builders:
        try:
            fig = builder(result)
        except Exception as exc:  # noqa: BLE001 - any figure error is reported in its place
            fig = f"<p class='warn'>figure {name} failed: {html.escape(str(exc))}</p>"
        if fig:
            out.append(f"<div>{fig}</div>")
    return out


def build_report_sections(result) -> list[str]:
    """The report as a list of HTML fragments, one per section (HTML page and PDF share them)."""
    import matplotlib

    matplotlib.use("Agg")
    from .report_figures import ad_per_aa_figure, tac_figure

    s = result.summary
    study = result.study
    ident = (f"<h1>Dosimetry report — patient {html.escape(s['patient_id'])}</h1>"
             + _table(["field", "value"], [
                 ["patient ID", html.escape(s["patient_id"])],
                 ["study", html.escape(str(study.manifest_path) if study.manifest_path else "in-memory study")],
                 ["radionuclide", html.escape(s.get("radionuclide", ""))],
                 ["cycles", html.escape(", ".join(str(c.cycle) for c in study.cycles))],
                 ["run ID", html.escape(str(s.get("run_id")))],
                 ["generated", _dt.datetime.now().astimezone().isoformat(timespec="seconds")],
                 ["software", f"lu-dosimetry {html.escape(__version__)}"]]))
    sections = [ident, _planning_section(s)]
    cum = _cumulative_by_voi(result.rows)
    sections.append("<h2>Summary</h2>" + _table(["metric", "value"], [
        ["cumulative tumour dose cAD (Gy, mean over included tumours)", _fmt(_pm(s, "cumulative_tumor_dose_Gy", 1))],
        ["ΔAD/AA last vs first cycle (%)", _fmt(_pm(s, "delta_ad_per_aa_percent", 1))],
        ["kidney cumulative dose (Gy, mean of the kidneys)", _fmt(_pm(s, "kidney_cumulative_dose_Gy", 2))],
        ["kidney BED (Gy, mean of the kidneys; ± 1σ from the uncertainty budget)", _fmt(_pm(s, "kidney_bed_Gy", 2))],
        ["tumours included", _fmt(", ".join(s.get("tumors_included", [])))],
        ["tumours excluded", _fmt(", ".join(s.get("tumors_excluded", [])))],
    ] + [[f"cumulative dose {html.escape(n)} ({k}{'' if inc else ', excluded'}) (Gy)", _fmt(d, 2)]
         for n, k, inc, d in cum]))
    sections.append(_warnings_section(s.get("warnings", [])))
    sections.append(_inputs_section(result))
    sections.append(_rc_section(result))
    sections.append(_options_section(result))
    sections.append(f"<h2>Methods</h2><p>{html.escape(methods_text(result))}</p>")
    sections.append("<h2>Results: absorbed dose per VOI per cycle</h2>" + _table(
        ["VOI", "kind", "cycle", "volume (mL)", "AA (MBq)", "AD (Gy)", "± 1σ (Gy)", "AD/AA (Gy/GBq)", "fit",
         "T_eff (h)", "RC", "voxel D90/D50/D10 (Gy)", "flags"],
        [[html.escape(r["voi"]) + ("" if r["included"] else " (excluded)"), r["kind"], str(r["cycle"]),
          _fmt(r["volume_ml"], 1), _fmt(float(r["administered_activity_MBq"]), 0), _fmt(r["absorbed_dose_Gy"]),
          _fmt(r.get("absorbed_dose_uncertainty_Gy")), _fmt(r["ad_per_aa_Gy_per_GBq"], 3), html.escape(r["fit_model"]),
          _fmt(r["effective_half_life_h"], 1), _fmt(r["recovery_coefficient"], 3),
          " / ".join(_fmt(r.get(k), 1) for k in ("D90_Gy", "D50_Gy", "D10_Gy")),
          f"<span class='small'>{html.escape(r['flags'])}</span>"] for r in result.rows]))
    figs = _figures(result, (("dose on anatomy", _dose_on_ct_section),
                             ("time-activity curves", lambda r: _fig_to_img_tag(tac_figure(r), "time-activity curves")),
                             ("AD/AA", lambda r: _fig_to_img_tag(ad_per_aa_figure(r), "AD/AA across cycles")),
                             ("DVH", _dvh_figure)))
    from .report_figures import figure_cap_note

    note = figure_cap_note(result)
    sections.append((f"<p class='small'>{html.escape(note)}</p>" if note and figs else "") + "".join(figs))
    reg_rows = []
    for key, reg in sorted(result.registrations.items()):
        if reg is None:
            reg_rows.append([f"cycle {key[0]} tp {key[1] + 1}", "reference" if key == result.reference_key else "none",
                             "–", "–", "–"])
        else:
            reg_rows.append([f"cycle {key[0]} tp {key[1] + 1}", html.escape(reg.method), _fmt(reg.metric_value, 4),
                             ", ".join(f"{t:.1f}" for t in reg.translation_mm),
                             html.escape("; ".join(reg.warnings)) or "–"])
    from .report_registration import registration_section

    qc = ["<h2>Quality control: registration</h2>" + _table(
        ["scan", "method", "similarity metric (lower = better)", "translation (mm)", "notes"], reg_rows),
        registration_section(result)]
    qc += _figures(result, ((b.__name__, b) for b in (_mip_figure, _registration_figure)))
    sections.append("".join(qc))
    sections.append(_references_section())
    sections.append("<h2>Sign-off</h2><p>Dosimetry reviewed and approved by (medical physicist): "
                    "____________________ Signature: ____________________ Date: __________</p>"
                    f"<p class='small'>Run ID {html.escape(str(s.get('run_id')))}.</p>")
    return [x for x in sections if x]


def build_report_html(result, sections: list[str] | None = None) -> str:
    """The report as an HTML string."""
    s = result.summary
    sections = sections if sections is not None else build_report_sections(result)
    head = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Dosimetry report "
            f"{html.escape(s['patient_id'])}</title><style>{_CSS}</style></head><body>")
    return "\n".join([head, *sections, "</body></html>"])


def write_report(result, path, pdf: bool = True) -> Path:
    """Write ``report.html`` to ``path`` and, with ``pdf``, ``report.pdf`` beside it
    (same sections, :mod:`.report_pdf`)."""
    from .report_raster import collect_pixels

    p = Path(path)
    with collect_pixels() as pixels:  # every figure rendered once: its PNG in the HTML, its pixels in the PDF
        sections = build_report_sections(result)
        p.write_text(build_report_html(result, sections), encoding="utf-8")
        if pdf:
            from .report_pdf import write_pdf

            write_pdf(sections, p.with_suffix(".pdf"), title=f"Dosimetry report {result.summary['patient_id']}",
                      run_id=str(result.summary.get("run_id")), pixels=pixels)
    return p
