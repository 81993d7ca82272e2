"""Figures of the per-patient report: dose on the CT, the recovery-coefficient curve, AD/AA across
cycles and the time-activity curves.

The plots (RC curve, AD/AA, TACs) return a matplotlib Figure (outside pyplot, rendered once by
:func:`.report_raster.from_figure`); the dose-on-CT figures are composed as pixels
(:mod:`.report_raster`, ~1 ms a panel instead of ~30 ms for a matplotlib axes). Sizes are chosen so
that every figure is at least 300 px wide. Axes carry units; colours follow one VOI -> colour key
(:func:`voi_colours`) in all figures.

Dose on anatomy (:func:`dose_on_ct_figures`): for each tumour and for the kidneys, an axial and a
coronal slice through the VOI's centre of mass showing the CT (grey, HU window -160..240; the
reference SPECT when there is no CT), the voxel-wise absorbed dose (Gy) of each cycle and the
cumulative dose as a colour wash with isodose lines at 25/50/75 % of the figure's maximum, the VOI
contours, a colour bar in Gy, a 20 mm scale bar and orientation letters (R/L, A/P, S/I; the images
are LPS).
The voxel dose maps are not partial-volume corrected and exist only inside the VOIs (the run
computes them there unless maps are saved).

Per-VOI figures (dose on anatomy, TAC panels, registration checks) are drawn for at most
:data:`FIGURE_VOI_CAP` VOIs (:func:`figure_vois`: kidneys, then the largest included tumours, then
the others); the report names the VOIs left out, whose numbers stay in the tables. This keeps the
cost of a VOI beyond the cap to its table rows and its lines in the shared plots (issue 17:
<= 0.05 s a VOI, ``bench/bench_report.py``).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

DPI = 100
FIGURE_VOI_CAP = 8  # VOIs drawn in the per-VOI figures (dose on CT, TACs, registration checks); see figure_vois


def figure_vois(result) -> list:
    """The VOIs drawn in the per-VOI figures: all when there are at most :data:`FIGURE_VOI_CAP`,
    else the kidneys, then the included tumours by decreasing volume, then the other VOIs, up to the
    cap (in the run's order). The tables list every VOI; :func:`figure_cap_note` says which were left out."""
    vois = list(result.vois)
    if len(vois) <= FIGURE_VOI_CAP:
        return vois

    def rank(v):
        if v.kind == "kidney":
            return (0, 0.0)
        if v.kind == "tumor" and v.included:
            return (1, -float(v.volume_ml))
        return (2 if v.included else 3, 0.0)

    keep = {v.name for v in sorted(vois, key=rank)[:FIGURE_VOI_CAP]}
    return [v for v in vois if v.name in keep]


def figure_cap_note(result) -> str:
    """A sentence naming the VOIs left out of the per-VOI figures ("" when none is)."""
    shown = {v.name for v in figure_vois(result)}
    left = [v.name for v in result.vois if v.name not in shown]
    if not left:
        return ""
    return (f"Per-VOI figures (dose on anatomy, time-activity curves, registration checks) are drawn for "
            f"{len(shown)} of {len(result.vois)} VOIs (at most {FIGURE_VOI_CAP}: the kidneys, then the largest "
            f"included tumours, then the others); not drawn: {', '.join(left)}. Their numbers are in the tables.")


def _figure(w_inch: float, h_inch: float):
    """A matplotlib Figure outside pyplot (no figure manager; rendered by :func:`.report_raster.from_figure`)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(w_inch, h_inch), dpi=DPI)


def voi_colours(names) -> dict:
    """VOI name -> RGBA colour (tab10), the same in every figure of a report."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {n: cmap(i % 10) for i, n in enumerate(dict.fromkeys(names))}


def _anatomy(result) -> tuple[np.ndarray, str]:
    """CT (HU) on the reference SPECT grid, or the reference SPECT when no CT was given."""
    ct = getattr(result, "reference_ct", None)
    ref = result.reference_spect
    if ct is not None:
        img = sitk.Resample(ct, ref, sitk.Transform(), sitk.sitkLinear, -1000.0, sitk.sitkFloat32)
        return sitk.GetArrayFromImage(img), "CT"
    return sitk.GetArrayFromImage(ref).astype(np.float32), "SPECT"


def _panels(result):
    """(title, union mask, [VOI]) per tumour and one for the kidneys."""
    shown = figure_vois(result)
    out = [(v.name, v.mask, [v]) for v in shown if v.kind == "tumor"]
    kidneys = [v for v in shown if v.kind == "kidney"]
    if kidneys:
        m = np.zeros_like(kidneys[0].mask)
        for k in kidneys:
            m = m | k.mask
        out.append(("kidneys", m, kidneys))
    return out


def _crop_box(mask: np.ndarray, pad: int):
    zyx = np.argwhere(mask)
    lo, hi = zyx.min(axis=0), zyx.max(axis=0)
    centre = [round(float(x)) for x in zyx.mean(axis=0)]
    box = [slice(max(int(a) - pad, 0), min(int(b) + pad + 1, n)) for a, b, n in zip(lo, hi, mask.shape)]
    return centre, box


def dose_on_ct_figures(result) -> list:
    """[(title, :class:`~.report_raster.Raster`)], one per tumour and one for the kidneys (see the
    module docstring); [] without dose maps. Each is a grid of panels (rows axial / coronal, columns
    the cycles and the cumulative dose) composed as pixels (:mod:`.report_raster`), no matplotlib axes."""
    from . import report_raster as rr

    doses = (result.maps or {}).get("dose_Gy") or {}
    if not doses:
        return []
    cycles = sorted(doses)
    arrays = {c: sitk.GetArrayViewFromImage(doses[c]) for c in cycles}
    columns = [(f"cycle {c}", arrays[c]) for c in cycles]
    if len(cycles) > 1:
        columns.append(("cumulative", None))
    anat, anat_name = _anatomy(result)
    sp = result.reference_spect.GetSpacing()
    colours = voi_colours(v.name for v in result.vois)
    iso = [(0.25, (68, 221, 255)), (0.5, (136, 255, 136)), (0.75, (255, 255, 255))]
    figs = []
    for title, mask, vois in _panels(result):
        if not mask.any():
            continue
        (zc, yc, _), (bz, by, bx) = _crop_box(mask, 6)
        views = (("axial", np.s_[zc, by, bx], sp[1] / sp[0], False), ("coronal", np.s_[bz, yc, bx], sp[2] / sp[0], True))
        crops = {}
        for ctitle, d in columns:
            for view, sl, _, _ in views:
                crops[(ctitle, view)] = (np.asarray(d[sl], dtype=np.float64) if d is not None else
                                         sum(np.asarray(arrays[c][sl], dtype=np.float64) for c in cycles))
        m3 = mask[bz, by, bx]
        boxes = [np.asarray(arrays[c][bz, by, bx], dtype=np.float64)[m3] for c in cycles]
        vmax = max([float(b.max()) for b in boxes] + ([float(sum(boxes).max())] if len(cycles) > 1 else [])) or 1.0
        k = rr.zoom_for(bx.stop - bx.start, 110)
        rows = []
        for view, sl, aspect, flip in views:
            a = anat[sl]
            grey = np.clip((a + 160.0) / 400.0, 0, 1) if anat_name == "CT" else 1.0 - rr.normalise(a)
            voi_lines = {c: [(v.mask_for(c)[sl], colours[v.name][:3]) for v in vois] for c in cycles}
            cache, row = {}, []
            for j, (ctitle, _) in enumerate(columns):
                dd = crops[(ctitle, view)]
                cyc = cycles[min(j, len(cycles) - 1)] if ctitle != "cumulative" else cycles[0]
                row.append(rr.fused_panel(grey, dd / vmax, 0.02, "inferno", 0.6, voi_lines[cyc], k, aspect, flip,
                                          levels=iso if dd.max() > 0 else (),
                                          letters=("R", "L", "A", "P") if view == "axial" else ("R", "L", "S", "I"),
                                          scale_bar_mm=20.0 if j == 0 and view == "axial" else None,
                                          mm_per_px=sp[0] / k, cache=cache))
            rows.append((view, row))
        figs.append((title, rr.grid(
            f"{title}: voxel absorbed dose on {anat_name} (isodose 25/50/75 % of {vmax:.1f} Gy; no PVC)",
            [c for c, _ in columns], rows, colour_bar=("inferno", 0.0, vmax, "absorbed dose (Gy)"))))
    return figs


def rc_curve_label(curve) -> str:
    """What the recovery curve used is: the table, and the fitted model above it when there is one."""
    if not hasattr(curve, "form"):
        return "curve used: table (piecewise linear in ln V, constant beyond its ends)"
    p = ", ".join(f"{k} {v:.3g}" for k, v in curve.params.items())
    return (f"curve used: table up to {curve.max_volume_ml:g} mL (piecewise linear in ln V, clamped below "
            f"{curve.min_volume_ml:g} mL); fitted {curve.form} model above ({p})")


def rc_curve_figure(result, points: list):
    """The recovery-coefficient curve used (table points and interpolated curve) with every
    partial-volume-corrected VOI-cycle placed on it (volume mL, RC). None without a table."""
    rc = result.study.recovery_coefficients
    if not rc:
        return None
    from ..imaging.recovery_model import whole_range_curve

    curve, _ = whole_range_curve(rc)  # the curve the pipeline used (table; fitted model above its range)
    vols = np.asarray(rc["volume_ml"], dtype=float)
    lo = min(vols.min(), min((p["volume_ml"] for p in points), default=vols.min()))
    hi = max(vols.max(), max((p["volume_ml"] for p in points), default=vols.max()))
    v = np.geomspace(max(lo * 0.8, 1e-3), hi * 1.2, 200)
    fig = _figure(6.0, 3.4)
    ax = fig.subplots()
    fig.subplots_adjust(left=0.1, right=0.72, bottom=0.14, top=0.9)
    ax.plot(v, [float(curve.rc(x)) for x in v], "-", color="0.3", lw=1, label="curve used")
    ax.axvline(curve.max_volume_ml, color="0.6", lw=0.6, ls=":",
               label=f"largest sphere\n{curve.max_volume_ml:.0f} mL" + ("; model\nabove" if hasattr(curve, "form") else ""))
    ax.plot(vols, rc["rc"], "s", color="k", ms=4, label="calibration table")
    colours = voi_colours(v.name for v in result.vois)
    for name, colour in colours.items():
        pp = [p for p in points if p["voi"] == name]
        if not pp:
            continue
        ax.plot([p["volume_ml"] for p in pp], [p["rc"] for p in pp], "o", color=colour, ms=5, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("VOI volume (mL)")
    ax.set_ylabel("recovery coefficient (1)")
    ax.set_title("Recovery-coefficient curve and the VOIs on it", fontsize=9)
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def ad_per_aa_figure(result):
    """AD/AA (Gy/GBq) per VOI across cycles on a linear axis with integer cycle ticks; kidneys
    individually and their mean (dashed)."""
    names = list(dict.fromkeys(r["voi"] for r in result.rows))
    colours = voi_colours(names)
    fig = _figure(6.4 + 1.2 * max(0, (len(names) - 1) // 14), 3.4)
    ax = fig.subplots()
    fig.subplots_adjust(left=0.1, right=0.66 - 0.08 * max(0, (len(names) - 1) // 14), bottom=0.14, top=0.9)
    cycles = sorted({int(r["cycle"]) for r in result.rows})
    for name in names:
        rr = [r for r in result.rows if r["voi"] == name]
        ls = "-" if rr[0]["included"] else ":"
        label = name + (" (kidney)" if rr[0]["kind"] == "kidney" else "") + ("" if rr[0]["included"] else " (excluded)")
        ax.plot([r["cycle"] for r in rr], [r["ad_per_aa_Gy_per_GBq"] for r in rr], "o" + ls, color=colours[name],
                label=label, ms=4)
    kid = [r for r in result.rows if r["kind"] == "kidney"]
    if len({r["voi"] for r in kid}) > 1:
        mean = [float(np.mean([r["ad_per_aa_Gy_per_GBq"] for r in kid if r["cycle"] == c])) for c in cycles]
        ax.plot(cycles, mean, "k--", lw=1.2, label="kidneys, mean")
    ax.set_xticks(cycles)
    ax.set_xlabel("cycle")
    ax.set_ylabel("AD/AA (Gy/GBq)")
    ax.set_ylim(bottom=0)
    ax.set_title("Absorbed dose per administered activity across cycles", fontsize=9)
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5), ncol=1 + (len(names) - 1) // 14)
    return fig


def tac_figure(result):
    """Samples and fitted curves, one panel per VOI; cycles differ by colour and marker (one key for
    the figure), each panel names the fitted model per cycle."""
    import matplotlib
    from matplotlib.lines import Line2D

    vois = figure_vois(result)
    ncol = min(len(vois), 4)
    nrow = int(np.ceil(len(vois) / ncol))
    height = 2.5 * nrow + 0.75
    fig = _figure(3.3 * ncol, height)
    axes = fig.subplots(nrow, ncol, squeeze=False)
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.4 / height, top=1 - 0.75 / height, wspace=0.32,
                        hspace=0.75)
    for ax in axes.flat[len(vois):]:
        ax.set_axis_off()
    cycles = sorted({c for (_, c) in result.fits})
    cmap = matplotlib.colormaps["viridis"]
    markers = "osD^vP*X"
    colour = {c: cmap(k / max(len(cycles) - 1, 1) * 0.9) for k, c in enumerate(cycles)}
    for ax, v in zip(axes.flat, vois):
        units, models = "", []
        for k, c in enumerate(cycles):
            if (v.name, c) not in result.samples:
                continue
            hours, y, units = result.samples[(v.name, c)]
            fit = result.fits[(v.name, c)]
            t = np.linspace(0, max(hours) * 1.6, 60)
            ax.plot(hours, y, markers[k % len(markers)], color=colour[c], ms=4, mfc="none")
            ax.plot(t, fit.evaluate(t), "-", color=colour[c], lw=1)
            models.append(f"c{c} {fit.model}")
        ax.set_title(v.name + ("" if v.included else " (excluded)") + "\n" + ", ".join(models), fontsize=7)
        ax.set_xlabel("time after injection (h)", fontsize=7)
        ax.set_ylabel("activity (MBq)" if units == "MBq" else f"value ({units})", fontsize=7)
        ax.locator_params(nbins=4)
        ax.tick_params(labelsize=6)
    fig.legend([Line2D([], [], color=colour[c], marker=markers[k % len(markers)], mfc="none", lw=1)
                for k, c in enumerate(cycles)], [f"cycle {c} (samples, fitted curve)" for c in cycles],
               loc="upper center", ncol=len(cycles), fontsize=7, frameon=False)
    return fig
