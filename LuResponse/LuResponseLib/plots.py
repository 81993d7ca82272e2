"""Figures of the cohort analysis (matplotlib, drawn off-screen with the Agg canvas).

Uses ``matplotlib.figure.Figure`` with ``FigureCanvasAgg`` directly — never ``pyplot`` and never
``matplotlib.use`` — so it does not touch the backend of a host application such as Slicer.
Every ``figure_*`` function returns a Figure; :func:`save_figure` writes PNG and SVG;
:func:`render_all` makes every figure the results allow.

Figures follow seed 000: Fig. 1 (AD/AA per cycle), Fig. 2 (subgroups), Fig. 3 (box/strip by
response), Fig. 4 (PR proportion per group + fitted sigmoid), Fig. 5 (cAD vs ΔAD/AA with
cut-off lines), Fig. 6 (probability surfaces), ROC curves (Supplemental Fig. 4); plus the
repeated-CV AUC spread, Kaplan–Meier curves (seeds 001, 004), waterfall plots (seed 004), and
lesion ΔV / TCP plots (seed 001).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

RESPONSE_COLORS = {"CR": "#1b7837", "PR": "#4daf4a", "SD": "#f0a500", "PD": "#d73027", None: "#999999"}
RESPONSE_ORDER = ("CR", "PR", "SD", "PD")
CAD_LABEL = "Cumulative tumour AD, cAD (Gy)"
DELTA_LABEL = "ΔAD/AA, cycle 4 vs 1 (%)"


def _figure(w: float = 8.0, h: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, directory: str | Path, stem: str, formats=("png", "svg"), dpi: int = 120) -> dict[str, Path]:
    """Write ``fig`` as ``directory/stem.<fmt>`` for each format (PNG at ``dpi``; SVG is vector);
    returns {fmt: path}."""
    directory = Path(directory)
    out = {}
    for i, fmt in enumerate(formats):
        p = directory / f"{stem}.{fmt}"
        meta = {"Date": None} if fmt == "svg" else None
        fig.savefig(p, format=fmt, dpi=dpi, metadata=meta)
        if i == 0:  # the layout is now computed: freeze it so later formats do not redo it
            fig.set_layout_engine("none")
        out[fmt] = p
    return out


def figure_png_bytes(fig, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


DENSE_POINTS = 2000  # above this many points, point/bar layers are rasterised in the SVG (size, speed)


def _dense(n: int) -> bool:
    return int(n) > DENSE_POINTS


def _jitter(n: int, seed: int = 0, width: float = 0.12) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-width, width, n)


# --------------------------------------------------------------------------------------------
def figure_response_boxplots(cad_Gy, delta_percent, response):
    """Fig. 3: ΔAD/AA (A) and cAD (B) by best overall response (box + points)."""
    fig = _figure(9, 4)
    axes = fig.subplots(1, 2)
    resp = np.asarray(response, dtype=object)
    cats = [c for c in RESPONSE_ORDER if np.any(resp == c)]
    for ax, values, label, title in ((axes[0], delta_percent, DELTA_LABEL, "A  ΔAD/AA by response"),
                                     (axes[1], cad_Gy, CAD_LABEL, "B  cAD by response")):
        v = np.asarray(values, dtype=float)
        data = [v[(resp == c) & ~np.isnan(v)] for c in cats]
        ax.boxplot(data, positions=range(len(cats)), widths=0.55, showfliers=False,
                   medianprops={"color": "black"})
        for i, (c, d) in enumerate(zip(cats, data)):
            ax.scatter(i + _jitter(d.size, i), d, s=16, color=RESPONSE_COLORS[c], edgecolor="black", linewidth=0.3,
                       zorder=3, rasterized=_dense(v.size))
        ax.set_ylabel(label)
        ax.set_title(title, loc="left", fontsize=10)
        ax.set_xticks(range(len(cats)), [f"{c}\n(n={d.size})" for c, d in zip(cats, data)])
    return fig


def figure_group_bars(delta_groups, sigmoid):
    """Fig. 4: proportion of PR per group of patients sorted by ΔAD/AA (A) and by cAD (B), with
    the fitted Eq. 2 sigmoid in B."""
    fig = _figure(10, 4)
    axes = fig.subplots(1, 2)
    for ax, groups, label, title in ((axes[0], delta_groups, "Median ΔAD/AA of group (%)", "A  groups by ΔAD/AA"),
                                     (axes[1], sigmoid.groups if sigmoid else [], "Median cAD of group (Gy)",
                                      "B  groups by cAD")):
        if not groups:
            ax.set_axis_off()
            continue
        x = np.array([g.median_value for g in groups])
        p = np.array([g.proportion_PR for g in groups])
        width = 0.6 * (np.min(np.diff(np.sort(x))) if x.size > 1 and np.min(np.diff(np.sort(x))) > 0 else 1.0)
        many = len(groups) > 40  # large cohorts: hundreds of groups, no per-bar labels
        ax.bar(x, 100 * p, width=width, color="#4daf4a", edgecolor="none" if many else "black", alpha=0.8,
               rasterized=many)
        for g, xi, pi in zip(groups if not many else [], x, p):
            ax.text(xi, 100 * pi + 2, f"{g.n_responders}/{g.n}", ha="center", fontsize=8)
        ax.set_xlabel(label)
        ax.set_ylabel("Patients with PR (%)")
        ax.set_ylim(0, 110)
        ax.set_title(title, loc="left", fontsize=10)
    if sigmoid is not None:
        ax = axes[1]
        lo = min(0.0, min(g.min_value for g in sigmoid.groups))
        hi = max(g.max_value for g in sigmoid.groups) * 1.05
        xx = np.linspace(lo, hi, 300)
        ax.plot(xx, 100 * sigmoid.predict(xx), color="black", lw=1.5,
                label=f"Eq. 2: D½ = {sigmoid.D_half_Gy:.0f} Gy, k = {sigmoid.k_Gy:.0f} Gy, "
                      f"Pmax = {100 * sigmoid.P_max:.0f} %\nR² = {sigmoid.r2:.2f}, RMSE = {100 * sigmoid.rmse:.1f} %")
        ax.legend(fontsize=8, loc="upper left")
    return fig


def _mark_patients(ax, patients) -> None:
    """A star for each new patient (cAD Gy, ΔAD/AA %) predicted, labelled with its values."""
    for i, (c, d) in enumerate(patients or ()):
        ax.scatter([c], [d], marker="*", s=260, color="#00bfff", edgecolor="black", linewidth=0.9, zorder=6,
                   label="new patient" if i == 0 else None)
        ax.annotate(f"{c:g} Gy, {d:+g} %", (c, d), xytext=(7, 7), textcoords="offset points", fontsize=8,
                    zorder=6, bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.8, "lw": 0})


def figure_cutoff_scatter(cad_Gy, delta_percent, response, cad_cutoff_Gy=100.0, delta_cutoff_percent=-50.0,
                          patients=()):
    """Fig. 5: cAD vs ΔAD/AA coloured by response with dashed cut-off lines; ``patients``:
    new patients (cAD Gy, ΔAD/AA %) marked with a star."""
    fig = _figure(6.5, 5)
    ax = fig.subplots()
    _mark_patients(ax, patients)
    resp = np.asarray(response, dtype=object)
    for c in RESPONSE_ORDER:
        m = resp == c
        if m.any():
            ax.scatter(np.asarray(cad_Gy)[m], np.asarray(delta_percent)[m], s=28, color=RESPONSE_COLORS[c],
                       edgecolor="black", linewidth=0.4, label=f"{c} (n={int(m.sum())})", zorder=3,
                       rasterized=_dense(resp.size))
    if cad_cutoff_Gy is not None:
        ax.axvline(cad_cutoff_Gy, ls="--", color="grey", lw=1)
    if delta_cutoff_percent is not None:
        ax.axhline(delta_cutoff_percent, ls="--", color="grey", lw=1)
    ax.set_xlabel(CAD_LABEL)
    ax.set_ylabel(DELTA_LABEL)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title("cAD, ΔAD/AA and response (dashed: cut-offs)", loc="left", fontsize=10)
    return fig


def figure_probability_surfaces(models: dict, cad_Gy, delta_percent, responder, patients=()):
    """Fig. 6: probability of PR over (cAD, ΔAD/AA) for the logistic and SVM models.

    ``cad_Gy``/``delta_percent``/``responder`` may be None (models loaded without their cohort):
    the axes then span the models' training ranges. ``patients``: new patients marked with a star."""
    from .models import probability_surface

    names = [n for n in ("logistic", "svm") if n in models]
    fig = _figure(5.2 * max(len(names), 1), 4.4)
    axes = np.atleast_1d(fig.subplots(1, max(len(names), 1)))
    if cad_Gy is None:
        m = models[names[0]]
        cad, d, y = np.array(m.training_min[:1].tolist() + m.training_max[:1].tolist()), \
            np.array(m.training_min[1:2].tolist() + m.training_max[1:2].tolist()), None
    else:
        cad = np.asarray(cad_Gy, dtype=float)
        d = np.asarray(delta_percent, dtype=float)
        y = np.asarray(responder, dtype=bool)
    pc = np.array([p[0] for p in patients or ()], dtype=float)
    pd = np.array([p[1] for p in patients or ()], dtype=float)
    ca, da = np.r_[cad, pc], np.r_[d, pd]
    xr = (max(0.0, ca.min() - 0.05 * np.ptp(ca)), ca.max() + 0.05 * np.ptp(ca))
    yr = (da.min() - 0.05 * np.ptp(da), da.max() + 0.05 * np.ptp(da))
    cs = None
    for ax, n in zip(axes, names):
        xs, ys, p = probability_surface(models[n], xr, yr, 121)
        cs = ax.contourf(xs, ys, p, levels=np.linspace(0, 1, 11), cmap="RdYlGn", vmin=0, vmax=1)
        ax.contour(xs, ys, p, levels=[0.5], colors="black", linewidths=1)
        if y is not None:
            ax.scatter(cad[y], d[y], marker="o", s=22, color="white", edgecolor="black", label="PR/CR",
                       rasterized=_dense(y.size))
            ax.scatter(cad[~y], d[~y], marker="x", s=22, color="black", label="SD/PD", rasterized=_dense(y.size))
        else:
            from matplotlib.patches import Rectangle

            m = models[n]
            ax.add_patch(Rectangle(
                (m.training_min[0], m.training_min[1]), m.training_max[0] - m.training_min[0],
                m.training_max[1] - m.training_min[1], fill=False, ls="--", ec="black", lw=0.8,
                label="training range"))
        _mark_patients(ax, patients)
        ax.set_xlabel(CAD_LABEL)
        ax.set_ylabel(DELTA_LABEL)
        ax.set_title({"logistic": "Logistic regression (Eq. 5)", "svm": "SVM, RBF kernel"}[n], loc="left", fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
    if cs is not None:
        fig.colorbar(cs, ax=list(axes), label="Probability of PR")
    return fig


def figure_roc(cv: dict, sigmoid_roc: dict | None = None):
    """ROC curves of the cross-validated models (and the in-sample Eq. 2 curve)."""
    fig = _figure(5.5, 5)
    ax = fig.subplots()
    labels = {"logistic": "Logistic 2D", "svm": "SVM 2D", "logistic_cAD": "cAD only", "logistic_delta": "ΔAD/AA only"}
    for name, r in cv.items():
        ax.step(r.roc.fpr, r.roc.tpr, where="post", lw=1.6,
                label=f"{labels.get(name, name)} (CV): AUC {r.auc:.3f} [{r.auc_ci95[0]:.2f}–{r.auc_ci95[1]:.2f}]")
    if sigmoid_roc:
        ax.step(sigmoid_roc["fpr"], sigmoid_roc["tpr"], where="post", lw=1.2, ls=":", color="black",
                label=f"Eq. 2 sigmoid (in-sample): AUC {sigmoid_roc['auc']:.3f}")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("1 − specificity")
    ax.set_ylabel("Sensitivity")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("ROC curves (out-of-fold probabilities)", loc="left", fontsize=10)
    return fig


def figure_repeated_cv(repeated: dict):
    """Spread of the CV AUC over repeated fold splits."""
    fig = _figure(6, 3.8)
    ax = fig.subplots()
    names = list(repeated)
    data = [repeated[n].aucs for n in names]
    ax.boxplot(data, showfliers=False)  # tick labels set below (``tick_labels`` needs matplotlib >= 3.9)
    ax.set_xticks(range(1, len(names) + 1), names)
    for i, d in enumerate(data):
        ax.scatter(i + 1 + _jitter(d.size, i, 0.08), d, s=10, color="#377eb8", zorder=3)
    ax.set_ylabel("CV AUC")
    ax.set_title(f"AUC over {len(data[0]) if data else 0} repeated stratified 5-fold splits", loc="left", fontsize=10)
    return fig


def figure_km(comparisons: list):
    """Kaplan–Meier curves, one panel per comparison, with log-rank p and Cox HR."""
    n = len(comparisons)
    cols = 2 if n > 1 else 1
    rows = int(np.ceil(n / cols))
    fig = _figure(5.2 * cols, 4.4 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    colors = ("#377eb8", "#e41a1c")
    for ax, c in zip(axes, comparisons):
        for g, col in zip(c.groups, colors):
            t = np.r_[0.0, g.timeline_months] if g.timeline_months[0] > 0 else g.timeline_months
            s = np.r_[1.0, g.survival] if g.timeline_months[0] > 0 else g.survival
            ax.step(t, s, where="post", color=col, label=f"{g.label} (n={g.n}, events {g.n_events})")
            lo = np.r_[1.0, g.ci_lower] if g.timeline_months[0] > 0 else g.ci_lower
            hi = np.r_[1.0, g.ci_upper] if g.timeline_months[0] > 0 else g.ci_upper
            ax.fill_between(t, lo, hi, step="post", color=col, alpha=0.12)
        hr = "n/a" if not np.isfinite(c.hazard_ratio) else (
            f"{c.hazard_ratio:.2f} [{c.hazard_ratio_ci95[0]:.2f}–{c.hazard_ratio_ci95[1]:.2f}]")
        p = "n/a" if not np.isfinite(c.logrank_p) else f"{c.logrank_p:.3g}"
        short = c.rule.rsplit(" (", 1)[0] if c.rule.endswith(")") else c.rule  # details are in the report table
        ax.set_title(f"{c.endpoint}: {short}", loc="left", fontsize=8)
        ax.text(0.98, 0.98, f"log-rank p = {p}\nHR = {hr}", transform=ax.transAxes, ha="right", va="top", fontsize=8)
        xl = "Months" + (f" from landmark ({c.landmark_months:g} mo)" if c.landmark_months is not None else "")
        ax.set_xlabel(xl)
        ax.set_ylabel(f"{c.endpoint} probability")
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=7, loc="lower left")
        _at_risk_table(ax, c.groups, colors)
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig


def _at_risk_table(ax, groups, colors) -> None:
    """Number-at-risk rows under a Kaplan–Meier axis, one per group, at the axis' x ticks
    (the layout of lifelines' ``add_at_risk_counts``, drawn here because that helper needs pyplot,
    which this module never imports)."""
    from matplotlib.transforms import blended_transform_factory

    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    tr = blended_transform_factory(ax.transData, ax.transAxes)
    kw = {"textcoords": "offset points", "va": "top", "fontsize": 7}
    ax.annotate("Number at risk", (0.0, 0.0), xycoords="axes fraction", xytext=(0, -36), ha="left",
                fontweight="bold", **kw)
    for k, (g, col) in enumerate(zip(groups, colors)):
        dy = -46 - 9 * k
        ax.annotate(g.label[:20], (0.0, 0.0), xycoords="axes fraction", xytext=(-4, dy), ha="right", color=col, **kw)
        for t, n in zip(ticks, g.n_at_risk(ticks)):
            ax.annotate(str(n), (t, 0.0), xycoords=tr, xytext=(0, dy), ha="center", color=col, **kw)


def figure_landmark(landmarks: list):
    """Forest plot: Cox HR of PFS per 1 % change of the best PCHG at each landmark (95 % CI), n
    eligible and events (Pavel et al., Cancer Med 2025, Fig. 2)."""
    rows = [r for r in landmarks if np.isfinite(r.hazard_ratio_per_percent)]
    fig = _figure(6.0, 0.5 * len(rows) + 1.4)
    ax = fig.subplots()
    for k, r in enumerate(rows):
        lo, hi = r.hazard_ratio_ci95
        ax.plot([lo, hi], [k, k], color="#377eb8")
        ax.plot(r.hazard_ratio_per_percent, k, "s", color="#377eb8")
    ax.axvline(1.0, color="grey", ls="--", lw=0.8)
    ax.set_yticks(range(len(rows)), [f"{r.label} (n={r.n_eligible}, {r.n_events} ev)" for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("PFS hazard ratio per 1 % change of best PCHG (95 % CI)")
    ax.set_title("Landmark analysis: best shrinkage up to the landmark, PFS from the landmark", loc="left", fontsize=9)
    return fig


def figure_waterfall(values, response, ylabel: str, title: str, cutoff: float | None = None):
    """Waterfall plot: one bar per patient sorted from highest to lowest, coloured by response."""
    v = np.asarray(values, dtype=float)
    resp = np.asarray(response, dtype=object)
    ok = ~np.isnan(v)
    v, resp = v[ok], resp[ok]
    order = np.argsort(-v, kind="mergesort")
    fig = _figure(8, 3.8)
    ax = fig.subplots()
    colors = [RESPONSE_COLORS.get(r, "#999999") for r in resp[order]]
    if v.size > 300:  # one line collection instead of thousands of bar artists
        ax.vlines(np.arange(v.size), 0, v[order], colors=colors, lw=max(0.15, 300.0 / v.size),
                  rasterized=_dense(v.size))
        ax.set_xlim(-1, v.size)
    else:
        ax.bar(np.arange(v.size), v[order], color=colors, width=0.85)
    if cutoff is not None:
        ax.axhline(cutoff, ls="--", color="grey", lw=1)
    ax.axhline(0, color="black", lw=0.6)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=RESPONSE_COLORS[c], label=c) for c in RESPONSE_ORDER if np.any(resp == c)],
              fontsize=8, loc="upper right")
    ax.set_xticks([])
    ax.set_xlabel("Patients")
    ax.set_ylabel(ylabel)
    ax.set_title(title, loc="left", fontsize=10)
    return fig


def figure_per_cycle(cycles: dict):
    """Fig. 1: median AD/AA per cycle (± SE) and % change vs cycle 1, tumours and kidneys."""
    kinds = [k for k in ("tumor", "kidney") if k in cycles]
    fig = _figure(5 * len(kinds), 3.8)
    axes = np.atleast_1d(fig.subplots(1, len(kinds)))
    for ax, k in zip(axes, kinds):
        e = cycles[k]
        c = [r["cycle"] for r in e["ad_per_aa_Gy_per_GBq"]]
        m = [r["median"] for r in e["ad_per_aa_Gy_per_GBq"]]
        se = [r["se"] if r["se"] is not None else 0 for r in e["ad_per_aa_Gy_per_GBq"]]
        ax.bar(c, m, yerr=se, color="#377eb8" if k == "tumor" else "#984ea3", capsize=4, alpha=0.85)
        for ch in e["percent_change_vs_cycle1"]:
            i = c.index(ch["cycle"])
            if ch["median"] is not None:
                p = ch["wilcoxon_p"]
                ax.text(ch["cycle"], m[i] + se[i] * 1.1 + 0.02 * max(m),
                        f"{ch['median']:+.0f} %\np={p:.2g}" if p is not None else f"{ch['median']:+.0f} %",
                        ha="center", fontsize=7)
        ax.set_xticks(c)
        ax.set_xlabel("Cycle")
        ax.set_ylabel("Median AD/AA (Gy/GBq) ± SE")
        ax.set_title(f"{'Tumours' if k == 'tumor' else 'Kidneys'} (n={e['n_patients']})", loc="left", fontsize=10)
    return fig


def figure_subgroups(table, columns=("sex", "primary_site", "grade")):
    """Fig. 2: cAD (top) and ΔAD/AA (bottom) by sex, primary site and grade."""
    from .descriptive import UNKNOWN_LEVELS
    from .readers import CAD, DELTA

    cols = [c for c in columns if table.has(c)]
    if not cols:
        return None
    fig = _figure(4.2 * len(cols), 6.5)
    axes = np.array(fig.subplots(2, len(cols))).reshape(2, len(cols))
    for j, col in enumerate(cols):
        cat = table.column(col)
        levels = sorted({str(v) for v in cat if v is not None and str(v).lower() not in UNKNOWN_LEVELS})
        levels = [lv for lv in levels if sum(1 for v in cat if v is not None and str(v) == lv) >= 2]
        for i, (metric, label) in enumerate(((CAD, "cAD (Gy)"), (DELTA, "ΔAD/AA (%)"))):
            ax = axes[i, j]
            v = table.column(metric)
            data = [v[np.array([x is not None and str(x) == lv for x in cat]) & ~np.isnan(v)] for lv in levels]
            if data:
                ax.boxplot(data, showfliers=False)
                ax.set_xticks(range(1, len(levels) + 1), [f"{lv}\n({d.size})" for lv, d in zip(levels, data)])
                for k, d in enumerate(data):
                    ax.scatter(k + 1 + _jitter(d.size, k, 0.1), d, s=8, color="#377eb8", zorder=3,
                               rasterized=_dense(v.size))
            if metric == DELTA:
                ax.axhline(0, color="grey", lw=0.8, ls="--")
            ax.set_ylabel(label)
            ax.tick_params(axis="x", labelsize=7, rotation=30)
            if i == 0:
                ax.set_title(col.replace("_", " "), loc="left", fontsize=10)
    return fig


def figure_lesions(ad_Gy, dv_percent, lin=None, tcp=None):
    """Seed 001 Figs. 3–4: lesion ΔV % vs total lesion AD with the regression line and bands,
    and the TCP curve with its band."""
    fig = _figure(10, 4)
    axes = fig.subplots(1, 2)
    ad = np.asarray(ad_Gy, dtype=float)
    dv = np.asarray(dv_percent, dtype=float)
    ok = ~(np.isnan(ad) | np.isnan(dv))
    ax = axes[0]
    ax.scatter(ad[ok], dv[ok], s=14, color="#377eb8", edgecolor="black", linewidth=0.3)
    if lin is not None:
        # over the lesions' AD range only, and never below -100 % (a lesion cannot lose more than its volume)
        in_range = (lin.grid_Gy >= np.min(ad[ok])) & (lin.grid_Gy <= np.max(ad[ok])) if ok.any() else lin.grid_Gy > 0
        g = lin.grid_Gy[in_range]
        fit = lin.fit_percent[in_range]
        ax.plot(g[fit >= -100], fit[fit >= -100], color="black")
        ax.fill_between(g, *(np.maximum(b[in_range], -100.0) for b in lin.mean_band_percent), color="#377eb8",
                        alpha=0.25, label="95 % CI of the mean")
        ax.plot(g, np.maximum(lin.prediction_band_percent[0][in_range], -100.0), color="grey", ls=":", lw=0.8)
        ax.plot(g, lin.prediction_band_percent[1][in_range], color="grey", ls=":", lw=0.8, label="95 % prediction")
        ax.axhline(-100, color="grey", lw=0.6)
        ax.set_ylim(bottom=min(-105.0, float(np.min(dv[ok])) - 5.0) if ok.any() else -105.0)
        ax.legend(fontsize=7)
        ax.set_title(f"ΔV vs AD: slope {lin.slope_percent_per_Gy:.3f} %/Gy (p={lin.slope_p:.2g})", loc="left",
                     fontsize=9)
    ax.axhline(20, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("Total lesion AD (Gy)")
    ax.set_ylabel("Lesion volume change ΔV (%)")
    ax = axes[1]
    if tcp is not None:
        ctrl = dv[ok] <= 0
        ax.scatter(ad[ok], ctrl.astype(float) + _jitter(int(ok.sum()), 3, 0.02), s=10, color="#377eb8", alpha=0.6)
        ax.plot(tcp.grid_Gy, tcp.tcp, color="black")
        ax.fill_between(tcp.grid_Gy, *tcp.band, color="#4daf4a", alpha=0.25)
        d50 = f", D50 = {tcp.D50_Gy:.0f} Gy" if tcp.D50_Gy is not None and np.isfinite(tcp.D50_Gy) else ""
        ax.set_title(f"TCP (controlled: ΔV <= 0 %){d50}", loc="left", fontsize=9)
        ax.set_ylim(-0.05, 1.05)
    else:
        ax.set_axis_off()
    ax.set_xlabel("Total lesion AD (Gy)")
    ax.set_ylabel("Tumour control probability")
    return fig


def render_all(results) -> dict:
    """Every figure the results allow: {stem: (title, Figure)}."""
    from .readers import CAD, DELTA

    t = results.table
    figs: dict = {}
    patients = [(p["cumulative_tumor_dose_Gy"], p["delta_ad_per_aa_percent"]) for p in results.predictions]
    ok = results.response_mask if results.response_mask is not None else t.complete(CAD, DELTA, "response")
    cad, d, resp, y = t.cumulative_tumor_dose_Gy[ok], t.delta_ad_per_aa_percent[ok], t.response[ok], t.responder[ok]
    if results.cycles and any(k in results.cycles for k in ("tumor", "kidney")):
        figs["fig1_ad_per_aa_per_cycle"] = ("Fig. 1 — AD/AA per cycle", figure_per_cycle(results.cycles))
    f2 = figure_subgroups(t)
    if f2 is not None:
        figs["fig2_subgroups"] = ("Fig. 2 — cAD and ΔAD/AA by subgroup", f2)
    if cad.size:
        figs["fig3_response_boxplots"] = ("Fig. 3 — ΔAD/AA and cAD by response", figure_response_boxplots(cad, d, resp))
    if results.sigmoid is not None or results.delta_groups:
        figs["fig4_groups_sigmoid"] = ("Fig. 4 — proportion of PR per group and Eq. 2 fit",
                                       figure_group_bars(results.delta_groups, results.sigmoid))
    if cad.size:
        o = results.options
        figs["fig5_cutoff_scatter"] = ("Fig. 5 — cAD vs ΔAD/AA with cut-offs",
                                       figure_cutoff_scatter(cad, d, resp, o.cad_cutoff_Gy, o.delta_cutoff_percent,
                                                             patients))
    if "logistic" in results.models or "svm" in results.models:
        figs["fig6_probability_surfaces"] = ("Fig. 6 — probability of PR, logistic and SVM",
                                             figure_probability_surfaces(results.models, cad, d, y, patients))
    if results.cv:
        figs["roc_curves"] = ("ROC curves", figure_roc(results.cv, results.sigmoid_roc))
    if results.repeated_cv:
        figs["repeated_cv_auc"] = ("Repeated cross-validation", figure_repeated_cv(results.repeated_cv))
    if cad.size:
        figs["waterfall_delta_ad_per_aa"] = ("Waterfall — ΔAD/AA", figure_waterfall(
            d, resp, "ΔAD/AA (%)", "ΔAD/AA per patient (cycle 4 vs 1)", results.options.delta_cutoff_percent))
    if t.has("best_shrinkage_percent"):
        figs["waterfall_best_shrinkage"] = ("Waterfall — best tumour shrinkage", figure_waterfall(
            t.column("best_shrinkage_percent"), t.response, "Best change of sum of diameters (%)",
            "Best tumour shrinkage (Pavel et al.)", results.options.shrinkage_cutoff_percent))
    plain = [s for s in results.survival if s.landmark_months is None]
    land = [s for s in results.survival if s.landmark_months is not None]
    if plain:
        figs["km_survival"] = ("Kaplan–Meier — PFS/OS by dose metrics and shrinkage", figure_km(plain))
    if land:
        figs["km_landmark"] = ("Kaplan–Meier — landmark analyses", figure_km(land))
    if any(np.isfinite(r.hazard_ratio_per_percent) for r in results.landmark):
        figs["landmark_hazard_ratios"] = ("Landmark analysis — PFS hazard ratio per 1 % change of best shrinkage",
                                          figure_landmark(results.landmark))
    if results.lesion_fits.get("volume_regression") is not None or results.lesion_fits.get("tcp") is not None:
        lin = results.lesion_fits.get("volume_regression")
        tcp = results.lesion_fits.get("tcp")
        ad, dv = results.lesion_fits.get("data", (np.array([]), np.array([])))
        figs["lesion_dv_tcp"] = ("Lesions — ΔV vs AD and TCP (Hebert et al.)", figure_lesions(ad, dv, lin, tcp))
    return figs
