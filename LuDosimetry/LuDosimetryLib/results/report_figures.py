"""Figures of the per-patient report (matplotlib, Agg backend): dose on the CT, the recovery-coefficient
curve, AD/AA across cycles and the time-activity curves.

Every function returns a matplotlib Figure (the caller saves it as PNG); sizes are chosen so that
a figure saved at :data:`DPI` is at least 300 px wide. Axes carry units; colours follow one
VOI -> colour key (:func:`voi_colours`) in all figures.

Dose on anatomy (:func:`dose_on_ct_figure`): for each tumour and for the kidneys, an axial and a
coronal slice through the VOI's centre of mass showing the CT (grey, HU window -160..240; the
reference SPECT when there is no CT), the voxel-wise absorbed dose (Gy) of each cycle and the
cumulative dose as a colour wash with isodose lines at 25/50/75 % of the panel's maximum, the VOI
contours, a colour bar in Gy, a 20 mm scale bar and orientation letters (R/L, A/P, S/I; the images
are LPS).
The voxel dose maps are not partial-volume corrected and exist only inside the VOIs (the run
computes them there unless maps are saved).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

DPI = 100


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
    out = [(v.name, v.mask, [v]) for v in result.vois if v.kind == "tumor"]
    kidneys = [v for v in result.vois if v.kind == "kidney"]
    if kidneys:
        m = np.zeros_like(kidneys[0].mask)
        for k in kidneys:
            m = m | k.mask
        out.append(("kidneys", m, kidneys))
    return out


def dose_on_ct_figures(result) -> list:
    """One figure per tumour and one for the kidneys (see the module docstring); [] without dose maps."""
    doses = (result.maps or {}).get("dose_Gy") or {}
    if not doses:
        return []
    plt = _plt()
    cycles = sorted(doses)
    arrays = {c: sitk.GetArrayViewFromImage(doses[c]) for c in cycles}
    columns = [(f"cycle {c}", arrays[c]) for c in cycles]
    if len(cycles) > 1:
        columns.append(("cumulative", sum(np.asarray(arrays[c], dtype=np.float64) for c in cycles)))
    anat, anat_name = _anatomy(result)
    sp = result.reference_spect.GetSpacing()
    colours = voi_colours(v.name for v in result.vois)
    figs = []
    for title, mask, vois in _panels(result):
        if not mask.any():
            continue
        zc, yc, _ = (round(float(x)) for x in np.argwhere(mask).mean(axis=0))
        zyx = np.argwhere(mask)
        lo, hi = zyx.min(axis=0), zyx.max(axis=0)
        pad = 6
        z0, z1 = max(lo[0] - pad, 0), min(hi[0] + pad + 1, mask.shape[0])
        y0, y1 = max(lo[1] - pad, 0), min(hi[1] + pad + 1, mask.shape[1])
        x0, x1 = max(lo[2] - pad, 0), min(hi[2] + pad + 1, mask.shape[2])
        ncol = len(columns)
        fig, axes = plt.subplots(2, ncol, figsize=(1.9 * ncol + 0.9, 4.0), squeeze=False)
        vmax = max(float(np.max(d[mask])) for _, d in columns) or 1.0
        im = None
        for j, (ctitle, d) in enumerate(columns):
            for i, (view, sl) in enumerate((("axial", np.s_[zc, y0:y1, x0:x1]), ("coronal", np.s_[z0:z1, yc, x0:x1]))):
                ax = axes[i, j]
                a = anat[sl]
                aspect = sp[1] / sp[0] if view == "axial" else sp[2] / sp[0]
                origin = "upper" if view == "axial" else "lower"
                if anat_name == "CT":
                    ax.imshow(a, cmap="gray", vmin=-160, vmax=240, origin=origin, aspect=aspect)
                else:
                    ax.imshow(a, cmap="gray_r", origin=origin, aspect=aspect)
                dd = np.asarray(d[sl], dtype=float)
                im = ax.imshow(np.ma.masked_less_equal(dd, 0.02 * vmax), cmap="inferno", alpha=0.6, vmin=0, vmax=vmax,
                               origin=origin, aspect=aspect)
                if dd.max() > 0:
                    ax.contour(dd, levels=[0.25 * vmax, 0.5 * vmax, 0.75 * vmax], colors=["#4df", "#8f8", "#fff"],
                               linewidths=0.6, origin=origin)
                for v in vois:
                    m = v.mask_for(cycles[min(j, len(cycles) - 1)] if ctitle != "cumulative" else cycles[0])[sl]
                    if m.any():
                        ax.contour(m.astype(float), levels=[0.5], colors=[colours[v.name]], linewidths=1.0,
                                   origin=origin)
                ax.set_xticks([])
                ax.set_yticks([])
                # LPS arrays: column index increases to patient left, row to posterior (axial) / superior (coronal)
                kw = {"transform": ax.transAxes, "color": "yellow", "fontsize": 7, "ha": "center", "va": "center"}
                ax.text(0.06, 0.5, "R", **kw)
                ax.text(0.94, 0.5, "L", **kw)
                ax.text(0.5, 0.93, "A" if view == "axial" else "S", **kw)
                ax.text(0.5, 0.07, "P" if view == "axial" else "I", **kw)
                if i == 0 and j == 0:  # 20 mm scale bar (x spacing), axial panel of the first column
                    xl, yl = ax.get_xlim(), ax.get_ylim()
                    ax.plot([1, 1 + 20.0 / sp[0]], [a.shape[0] - 1.5] * 2, "-", color="white", lw=2)
                    ax.text(1, a.shape[0] - 2.5, "20 mm", color="white", fontsize=6, ha="left")
                    ax.set_xlim(xl)
                    ax.set_ylim(yl)
                if i == 0:
                    ax.set_title(ctitle, fontsize=8)
                if j == 0:
                    ax.set_ylabel(view, fontsize=8)
        cb = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, pad=0.02)
        cb.set_label("absorbed dose (Gy)", fontsize=8)
        cb.ax.tick_params(labelsize=7)
        fig.suptitle(f"{title}: voxel absorbed dose on {anat_name} (isodose 25/50/75 % of {vmax:.1f} Gy; "
                     "no PVC)", fontsize=8)
        figs.append((title, fig))
    return figs


def rc_curve_figure(result, points: list):
    """The recovery-coefficient curve used (table points and interpolated curve) with every
    partial-volume-corrected VOI-cycle placed on it (volume mL, RC). None without a table."""
    rc = result.study.recovery_coefficients
    if not rc:
        return None
    from ..imaging import pvc

    plt = _plt()
    curve = pvc.recovery_curve_from_table(rc["volume_ml"], rc["rc"])
    vols = np.asarray(rc["volume_ml"], dtype=float)
    lo = min(vols.min(), min((p["volume_ml"] for p in points), default=vols.min()))
    hi = max(vols.max(), max((p["volume_ml"] for p in points), default=vols.max()))
    v = np.geomspace(max(lo * 0.8, 1e-3), hi * 1.2, 200)
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    ax.plot(v, [float(curve.rc(x)) for x in v], "-", color="0.3", lw=1,
            label="curve used (piecewise linear in ln V)")
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
    plt = _plt()
    names = list(dict.fromkeys(r["voi"] for r in result.rows))
    colours = voi_colours(names)
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
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
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def tac_figure(result):
    """Samples and fitted curves, one panel per VOI; cycles differ by colour and marker."""
    plt = _plt()
    vois = list(result.vois)
    ncol = min(len(vois), 4)
    nrow = int(np.ceil(len(vois) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.3 * ncol, 2.7 * nrow), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    cycles = sorted({c for (_, c) in result.fits})
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    markers = "osD^vP*X"
    for ax, v in zip(axes.flat, vois):
        ax.set_axis_on()
        units = ""
        for k, c in enumerate(cycles):
            if (v.name, c) not in result.samples:
                continue
            colour = cmap(k / max(len(cycles) - 1, 1) * 0.9)
            hours, y, units = result.samples[(v.name, c)]
            fit = result.fits[(v.name, c)]
            t = np.linspace(0, max(hours) * 1.6, 200)
            ax.plot(hours, y, markers[k % len(markers)], color=colour, ms=4, mfc="none")
            ax.plot(t, fit.evaluate(t), "-", color=colour, lw=1, label=f"cycle {c} ({fit.model})")
        ax.set_title(v.name + ("" if v.included else " (excluded)"), fontsize=9)
        ax.set_xlabel("time after injection (h)", fontsize=8)
        ax.set_ylabel("activity (MBq)" if units == "MBq" else f"value ({units})", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig
