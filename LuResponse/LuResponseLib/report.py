"""Cohort outputs: ``cohort_results.json``, figures (PNG + SVG), trained models (JSON) and the
self-contained ``cohort_report.html`` (figures embedded as base64 PNG).

:func:`write_cohort_outputs` stages everything in a fresh folder inside the output folder and
switches the set in one step when every file has been written (``LuDosimetryLib.results.result_set``):
the output is the complete previous set or the complete new one, never a mix, and only files the
tool recorded as its own are ever removed.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from pathlib import Path

import numpy as np

from . import __version__

METHODS_TEXT = [
    ("Responders", "CR or PR (RECIST 1.1) vs SD or PD."),
    ("Groups (Fig. 4)", "Patients sorted by the metric (ascending, stable), consecutive groups of {group_size}, "
                        "remainder in the last group; proportion of PR and median metric per group."),
    ("Eq. 2 sigmoid", "P = P_max / (1 + exp(-(cAD - D_half)/k)), 0 <= P_max <= 1, k > 0, unweighted least squares "
                      "on the group points (global grid search then trust-region refinement). R^2 (Eq. 3) and RMSE "
                      "(Eq. 4) over groups. 95 % CIs: profile intervals (F-test on the SSE, df = groups - 3). "
                      "AUC: patient-level, in-sample."),
    ("2D models", "Pipeline(StandardScaler, LogisticRegression) (Eq. 5, {logistic_method}; separated data get the L2-penalised fit, named in the warnings) and Pipeline(StandardScaler, "
                  "SVC(rbf, C={svm_C}, gamma={svm_gamma}) + Platt scaling on internal 5-fold CV decision values; training "
                  "sets above {svm_max_train} patients: the SVM is fitted on a stratified random subsample of "
                  "{svm_max_train}, and its repeated CV is reduced in proportion, at least 5 splits — both named in the "
                  "warnings when they apply). "
                  "StratifiedKFold({n_cv_splits}, shuffle, seed {seed}); the scaler is fitted inside each training "
                  "fold. AUC of the out-of-fold probabilities with a stratified bootstrap percentile CI "
                  "({n_bootstrap} resamples); spread over {n_cv_repeats} repeated splits."),
    ("Cut-off rules", "Positive = cAD >= cut-off and dAD/AA <= cut-off; exact Clopper-Pearson CIs."),
    ("Tests", "Wilcoxon signed-rank (paired), Wilcoxon rank-sum / Mann-Whitney U (independent), Kruskal-Wallis "
              "(>2 groups), Spearman correlation; two-sided, alpha 0.05, no multiplicity correction. SE of a median "
              "by bootstrap."),
    ("Survival", "Kaplan-Meier (log-log CI), log-rank test, Cox PH hazard ratio with Wald CI (lifelines). Hebert et al. "
                 "thresholds: 91.36 Gy mean lesion AD (= cAD), 52.52 Gy min lesion AD ('more than' = high). "
                 "Pavel et al. (Cancer Med 2025): best shrinkage >= 30 % vs < 30 % over the whole follow-up, "
                 "intention to treat (baseline but no post-baseline measurement = '< 30 %'); landmark analysis from "
                 "the visit table: best shrinkage up to each landmark, Cox model with shrinkage as a continuous "
                 "covariate, PFS from the landmark."),
    ("Lesions", "Hebert et al. (J Nucl Med 2024): OLS of volume change on lesion AD (t bands); TCP by ML logistic "
                "regression of control (dV <= 0 %) on AD, Wald band. Santoro-Fernandes et al. (J Nucl Med 2025): "
                "total-uptake (SUVtotal) change of each lesion from baseline to follow-up PET, categories new / "
                "disappearing / decreasing (< -30 %) / stable / increasing (> +30 %), heterogeneity = (new or "
                "increasing) and (decreasing or disappearing); uptake from therapy SPECT between cycles is reported "
                "as a dosimetry analogue. Lesion AD by category: Kruskal-Wallis, Mann-Whitney AUC, Spearman."),
]


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    try:
        f = float(v)
    except (TypeError, ValueError):
        return html.escape(str(v))
    if not np.isfinite(f):
        return "–"
    if f != 0 and (abs(f) < 10 ** -(digits) or abs(f) >= 1e6):
        return f"{f:.{digits - 1}e}"
    return f"{f:.{digits}g}" if abs(f) < 1 else f"{f:.{max(digits - len(str(int(abs(f)))), 0) + 1}f}".rstrip("0").rstrip(".")


def _p(v) -> str:
    if v is None:
        return "–"
    f = float(v)
    if not np.isfinite(f):
        return "–"
    return "&lt; 0.001" if f < 0.001 else f"{f:.3f}"


def _peq(v) -> str:
    """'= 0.123' or '&lt; 0.001' (for running text)."""
    s = _p(v)
    return s if s.startswith("&lt;") else f"= {s}"


def _ci(pair, digits: int = 3) -> str:
    if pair is None:
        return "–"
    a, b = pair
    return f"[{_fmt(a, digits)}, {_fmt(b, digits)}]"


def _table(headers, rows, cls: str = "") -> str:
    h = "".join(f"<th>{html.escape(str(c))}</th>" for c in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>'


def _dose_relation_html(dr: dict | None, het: list | None) -> str:
    """Lesion AD by response category and patient heterogeneity vs dose (report paragraph)."""
    parts = []
    if dr and dr.get("by_category"):
        rows = [[html.escape(k), str(v["n"]), f"{_fmt(v['median_Gy'])} [{_fmt(v['q1_Gy'])}–{_fmt(v['q3_Gy'])}]"]
                for k, v in dr["by_category"].items()]
        parts.append(_table(["Category", "Lesions with a dose", "Lesion AD, median [IQR] (Gy)"], rows))
        txt = f"Kruskal-Wallis p {_peq(dr['kruskal_wallis_p'])}"
        if dr.get("auc_responding") is not None:
            txt += (f"; AUC of lesion AD for decreasing/disappearing vs stable/increasing "
                    f"{_fmt(dr['auc_responding'])} (Mann-Whitney p {_peq(dr['mann_whitney_p'])})")
        if dr.get("spearman_rho_change") is not None:
            txt += f"; Spearman ρ of AD with the uptake change {_fmt(dr['spearman_rho_change'])} (p {_peq(dr['spearman_p'])})"
        parts.append(f"<p>{txt}. {dr['n_lesions_without_dose']} lesion(s) without a dose (e.g. new lesions).</p>")
    for h in het or []:
        parts.append(f"<p>{html.escape(h['dose'])}: median {_fmt(h['median_heterogeneous'])} in "
                     f"{h['n_heterogeneous']} patient(s) with heterogeneity vs {_fmt(h['median_not_heterogeneous'])} in "
                     f"{h['n_not_heterogeneous']} without (Mann-Whitney p {_peq(h['mann_whitney_p'])}).</p>")
    return "".join(parts)


def _predictions_html(predictions) -> str:
    """The 'new patient' tables: probability of PR per model with its bootstrap interval."""
    from .prediction import prediction_rows

    parts = []
    for p in predictions or []:
        parts.append(f"<h3>New patient: cAD {_fmt(p['cumulative_tumor_dose_Gy'])} Gy, ΔAD/AA "
                     f"{_fmt(p['delta_ad_per_aa_percent'])} % (star on Figs. 5 and 6)</h3>")
        parts.append(_table(["Model", "Probability of PR", "Bootstrap interval", "Notes"],
                            [[html.escape(c) for c in r] for r in prediction_rows(p)]))
    if parts:
        parts.append('<p class="small">Interval: percentile interval of the probability predicted by the models '
                     "refitted on stratified bootstrap resamples of the cohort (uncertainty of the fitted model). A "
                     "probability from these models is a research estimate, not a prediction for clinical use.</p>")
    return "".join(parts)


def _img(png: bytes, alt: str) -> str:
    return (f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"/>'
            f"<figcaption>{html.escape(alt)}</figcaption></figure>")


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;color:#222;
line-height:1.4;padding:0 1em} h1{font-size:1.6em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em} th,td{border:1px solid #ccc;padding:.25em .55em;
text-align:right} th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
figure{margin:1em 0} img{max-width:100%} figcaption{font-size:.85em;color:#555} .warn{background:#fff6e0;
border-left:4px solid #f0a500;padding:.5em 1em} .small{font-size:.85em;color:#555} code{background:#f5f5f5}
"""


def build_report_html(results, figure_png: dict[str, tuple[str, bytes]]) -> str:
    """The report page: tables from ``results`` and the given PNG figures {stem: (title, png)}."""
    d = results.to_dict()
    t = results.table
    o = results.options
    parts: list[str] = []
    add = parts.append
    fig = lambda stem: _img(figure_png[stem][1], figure_png[stem][0]) if stem in figure_png else ""

    add("<h1>LuResponse — cohort dose–response analysis</h1>")
    rc = d["descriptive"].get("response_counts", {})
    add(f'<p class="small">Source: <code>{html.escape(t.source)}</code> · {t.n_patients} patients · '
        f"CR {rc.get('CR', 0)}, PR {rc.get('PR', 0)}, SD {rc.get('SD', 0)}, PD {rc.get('PD', 0)}"
        f"{', response missing ' + str(rc['missing']) if rc.get('missing') else ''} · "
        f"LuResponseLib {__version__} · {_dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}</p>")
    if results.demo_truth:
        tr = results.demo_truth
        add('<p class="warn">Synthetic demonstration cohort (not patient data). True model: '
            f"{html.escape(tr.get('response_model', ''))}; b1 = {tr.get('beta_cAD_per_Gy')} /Gy, "
            f"b2 = {tr.get('beta_delta_per_percent')} /%.</p>")
    if results.warnings:
        add('<div class="warn"><b>Data notes and warnings</b><ul>' +
            "".join(f"<li>{html.escape(w)}</li>" for w in results.warnings) + "</ul></div>")

    # key results --------------------------------------------------------------------------------
    add("<h2>Key results</h2>")
    rows = []
    for name, label in (("logistic", "Logistic regression 2D (Eq. 5)"), ("svm", "SVM (RBF) 2D"),
                        ("logistic_cAD", "Logistic, cAD only"), ("logistic_delta", "Logistic, ΔAD/AA only"),
                        ("sigmoid_eq2", "Eq. 2 sigmoid on cAD (in-sample)")):
        m = d["models"].get(name)
        if not m:
            continue
        rep = m.get("repeated_cv")
        rows.append([label, _fmt(m["auc"]), _ci(m.get("auc_ci95")),
                     "–" if not rep else f"{_fmt(rep['median_auc'])} [{_fmt(rep['auc_p2_5'])}, {_fmt(rep['auc_p97_5'])}]"])
    if rows:
        add(_table(["Model", "AUC", "95 % CI (bootstrap)", "Repeated CV: median [2.5–97.5 %]"], rows))
    sg = d.get("sigmoid")
    if sg:
        add(_table(["Eq. 2 parameter", "Estimate", "95 % CI (profile)"],
                   [["D_half (Gy)", _fmt(sg["D_half_Gy"]), _ci(sg["D_half_ci95_Gy"])],
                    ["k (Gy)", _fmt(sg["k_Gy"]), _ci(sg["k_ci95_Gy"])],
                    ["P_max", _fmt(sg["P_max"]), _ci(sg["P_max_ci95"])],
                    ["R² (Eq. 3)", _fmt(sg["r2"]), ""], ["RMSE (Eq. 4)", f"{_fmt(100 * sg['rmse'])} %", ""],
                    ["AUC (patients)", _fmt(sg["auc"]), ""]]))
        for n in sg.get("notes", []):
            add(f'<p class="small">Note: {html.escape(n)}</p>')
    desc = d["descriptive"]
    sp = desc.get("spearman_cAD_vs_delta")
    if sp:
        add(f"<p>Spearman correlation cAD vs ΔAD/AA: ρ = {_fmt(sp['statistic'])}, p {_peq(sp['p_value'])} "
            f"(n = {sp['n']}).</p>")

    # descriptive ---------------------------------------------------------------------------------
    add("<h2>Responders vs non-responders</h2>")
    rows = []
    for name, e in desc.get("responders_vs_nonresponders", {}).items():
        r, nr = e["responders"], e["non_responders"]
        rows.append([html.escape(name), f"{_fmt(r['median'])} ({_fmt(r['q1'])}–{_fmt(r['q3'])}), n={r['n']}",
                     f"{_fmt(nr['median'])} ({_fmt(nr['q1'])}–{_fmt(nr['q3'])}), n={nr['n']}",
                     _p(e["rank_sum"]["p_value"]),
                     "; ".join(f"{k}: {_p(v['p_value'])}" for k, v in e["pairwise"].items())])
    add(_table(["Metric", "Responders median (IQR)", "Non-responders median (IQR)", "Rank-sum p", "Pairwise p"], rows))
    add(fig("fig3_response_boxplots"))

    if desc.get("subgroups"):
        add("<h2>Subgroups (Fig. 2)</h2>")
        rows = []
        for col, e in desc["subgroups"].items():
            for metric in ("cumulative_tumor_dose_Gy", "delta_ad_per_aa_percent"):
                m = e.get(metric)
                if not m:
                    continue
                levels = "; ".join(f"{html.escape(k)}: {_fmt(v['median'])} (n={v['n']})" for k, v in m["by_level"].items())
                test = m.get("test")
                tz = ""
                if "differs_from_zero" in m:
                    tz = "; ".join(f"{html.escape(k)}: {_p(v['p_value'])}" for k, v in m["differs_from_zero"].items())
                rows.append([html.escape(col), html.escape(metric), levels,
                             "–" if not test else f"{html.escape(test['method'])}: {_p(test['p_value'])}", tz or "–"])
        add(_table(["Subgroup", "Metric", "Median per level", "Test p", "ΔAD/AA ≠ 0 (signed-rank p)"], rows))
        add(fig("fig2_subgroups"))

    # per cycle -----------------------------------------------------------------------------------
    if d.get("per_cycle"):
        add("<h2>AD/AA and washout per cycle (Table 2, Fig. 1)</h2>")
        pc = d["per_cycle"]
        rows = []
        for kind in ("tumor", "kidney"):
            e = pc.get(kind)
            if not e:
                continue
            rows.append([f"{kind.capitalize()} AD/AA (Gy/GBq)"] +
                        [f"{_fmt(r['median'])} ± {_fmt(r['se'], 2)}" for r in e["ad_per_aa_Gy_per_GBq"]])
            if e.get("washout_half_life_h"):
                rows.append([f"{kind.capitalize()} washout half-life (h)"] +
                            [f"{_fmt(r['median'])} ± {_fmt(r['se'], 2)}" for r in e["washout_half_life_h"]])
            rows.append([f"{kind.capitalize()} AD/AA change vs cycle 1 (median %, Wilcoxon p)", "–"] +
                        [f"{_fmt(r['median'])} % (p {_p(r['wilcoxon_p'])})" for r in e["percent_change_vs_cycle1"]])
        cyc = pc.get("tumor", pc.get("kidney", {})).get("cycles", [])
        add(_table(["Variable"] + [f"Cycle {c}" for c in cyc], rows))
        fr = pc.get("tumor", {}).get("successive_change_percent", {})
        if fr:
            steps = "; ".join(f"{s['from_cycle']}→{s['to_cycle']}: {_fmt(s['median'])} %" for s in fr["steps"])
            fp = fr.get("friedman")
            friedman = "" if not fp else f"; Friedman p = {_p(fp['p_value'])}"
            add(f"<p>Tumour AD/AA change between successive cycles (median): {steps}{friedman}.</p>")
        add(f'<p class="small">{html.escape(pc.get("method", ""))}</p>')
        add(fig("fig1_ad_per_aa_per_cycle"))

    # groups -------------------------------------------------------------------------------------
    add("<h2>Groupwise analysis and sigmoid (Fig. 4)</h2>")
    if sg:
        add(_table(["Group", "n", "Median cAD (Gy)", "cAD range (Gy)", "PR", "Proportion PR"],
                   [[str(i + 1), str(g["n"]), _fmt(g["median_cAD_Gy"]), f"{_fmt(g['min_cAD_Gy'])}–{_fmt(g['max_cAD_Gy'])}",
                     str(g["n_responders"]), f"{_fmt(100 * g['proportion_PR'])} %"] for i, g in enumerate(sg["groups"])]))
    if d.get("delta_groups"):
        add(_table(["Group", "n", "Median ΔAD/AA (%)", "Range (%)", "PR", "Proportion PR"],
                   [[str(i + 1), str(g["n"]), _fmt(g["median_delta_ad_per_aa_percent"]),
                     f"{_fmt(g['min_delta_ad_per_aa_percent'])}–{_fmt(g['max_delta_ad_per_aa_percent'])}",
                     str(g["n_responders"]), f"{_fmt(100 * g['proportion_PR'])} %"] for i, g in enumerate(d["delta_groups"])]))
    add(fig("fig4_groups_sigmoid"))

    # rules -------------------------------------------------------------------------------------
    if d.get("rules"):
        add("<h2>Cut-off rules (Fig. 5)</h2>")
        rows = []
        for r in d["rules"]:
            rows.append([html.escape(r["name"]), f"{r['true_positive']}/{r['true_positive'] + r['false_positive']}",
                         *(f"{_fmt(r[k]['estimate'])} {_ci(r[k]['ci95'])}" for k in ("ppv", "npv", "sensitivity",
                                                                                      "specificity"))])
        add(_table(["Rule (positive = predicted PR)", "PR among positives", "PPV [95 % CI]", "NPV", "Sensitivity",
                    "Specificity"], rows))
        q = d["rules"][0].get("quadrants")
        if q:
            add(_table(["Quadrant", "Patients", "Responders"],
                       [[html.escape(k.replace("_", " ")), str(v["n"]), str(v["n_responders"])] for k, v in q.items()]))
        add(fig("fig5_cutoff_scatter"))

    # models --------------------------------------------------------------------------------------
    if d["models"]:
        add("<h2>Logistic regression and SVM (Fig. 6, ROC)</h2>")
        lg = d["models"].get("logistic", {}).get("trained_model", {}).get("coefficients_original_units")
        if lg:
            terms = "".join(f" {'−' if v < 0 else '+'} {_fmt(abs(v), 4)} × {html.escape(k[5:])}"
                            for k, v in lg.items() if k != "beta0" and v is not None)
            add(f"<p>Eq. 5 fitted on all patients: logit P = {_fmt(lg['beta0'], 4)}{terms}</p>")
        add(_predictions_html(d.get("predictions")))
        add(fig("fig6_probability_surfaces"))
        add(fig("roc_curves"))
        add(fig("repeated_cv_auc"))
        add(fig("waterfall_delta_ad_per_aa"))

    # survival ------------------------------------------------------------------------------------
    if d.get("survival"):
        add("<h2>Survival</h2>")
        rows = []
        for s in d["survival"]:
            g0, g1 = s["groups"]
            med = lambda g: "not reached" if g["median_months"] is None else f"{_fmt(g['median_months'])} months"
            rows.append([s["endpoint"], html.escape(s["rule"]), str(s["n_used"]),
                         f"{html.escape(g0['label'])}: {g0['n']} ({g0['n_events']} ev), median {med(g0)}",
                         f"{html.escape(g1['label'])}: {g1['n']} ({g1['n_events']} ev), median {med(g1)}",
                         _p(s["logrank_p"]), f"{_fmt(s['hazard_ratio'])} {_ci(s['hazard_ratio_ci95'])}"])
        add(_table(["Endpoint", "Split", "n", "Group 1", "Group 2", "Log-rank p", "HR (2 vs 1) [95 % CI]"], rows))
        if d.get("survival_cox_continuous"):
            add(_table(["Endpoint", "Covariate", "n", "HR per unit [95 % CI]", "p"],
                       [[c.get("endpoint", ""), html.escape(c["covariate"]) + f" ({html.escape(c.get('unit', ''))})",
                         str(c["n_used"]),
                         f"{_fmt(c['hazard_ratio_per_unit'], 4)} {_ci(c['ci95'], 4)}", _p(c["p"])]
                        for c in d["survival_cox_continuous"]]))
        add(fig("km_survival"))
        add(fig("waterfall_best_shrinkage"))
    lm = d.get("landmark_analysis") or {}
    if lm.get("landmarks") or lm.get("not_run"):
        add("<h2>Best tumour shrinkage and PFS: landmark analysis (Pavel et al., Cancer Med 2025)</h2>")
        if lm.get("not_run"):
            add(f"<p><b>Not run:</b> {html.escape(lm['not_run'])}.</p>")
        rows = []
        for r in lm.get("landmarks", []):
            ex = ", ".join(f"{html.escape(r['exclusion_reasons'][k])} {v}" for k, v in r["excluded_counts"].items()
                           if v) or "none"
            rows.append([html.escape(r["landmark"]), str(r["n_eligible"]), str(r["n_events"]), ex,
                         f"{_fmt(r['hazard_ratio_per_1_percent_change'], 4)} {_ci(r['hazard_ratio_ci95'], 4)}",
                         _p(r["p"]), html.escape(r["time_origin"])])
        if rows:
            add("<p>Best percent change from baseline of the sum of target-lesion diameters up to each landmark "
                "(on or before first progression) as a continuous covariate of a Cox model of PFS from the "
                "landmark; patients with best response PD and patients no longer at risk at the landmark are "
                "excluded (counts below). 'No limit' uses the whole follow-up and PFS from the start of therapy, "
                "as in the paper, and carries look-ahead bias.</p>")
            add(_table(["Landmark", "n", "Events", "Excluded", "HR per 1 % change [95 % CI]", "p", "PFS from"], rows))
        add(fig("landmark_hazard_ratios"))

    # lesions -------------------------------------------------------------------------------------
    les = d.get("lesions")
    if les:
        add("<h2>Lesion level</h2>")
        lin = les.get("volume_change_vs_ad")
        if lin:
            add(f"<p>Volume change vs total lesion AD ({lin['n']} lesions): ΔV = {_fmt(lin['intercept_percent'])} "
                f"{'+' if lin['slope_percent_per_Gy'] >= 0 else '−'} {_fmt(abs(lin['slope_percent_per_Gy']), 3)} × AD "
                f"(slope 95 % CI {_ci(lin['slope_ci95'])} %/Gy, p {_peq(lin['slope_p'])}); Spearman ρ = "
                f"{_fmt(lin['spearman_rho'])} (p {_peq(lin['spearman_p'])}).</p>")
        tcp = les.get("tcp")
        if tcp:
            add(f"<p>TCP ({html.escape(tcp['control_definition'])}; {tcp['n_controlled']}/{tcp['n']} controlled): "
                f"b0 = {_fmt(tcp['beta0'])}, b1 = {_fmt(tcp['beta1_per_Gy'], 4)} /Gy {_ci(tcp['beta1_ci95'], 3)}, "
                f"p {_peq(tcp['beta1_p'])}; D50 = {_fmt(tcp['D50_Gy'])} Gy; AUC = {_fmt(tcp['auc'])}.</p>")
        cat = les.get("categories")
        if cat:
            add(f"<h3>{html.escape(cat['label'])[:1].upper()}{html.escape(cat['label'])[1:]} — lesion table "
                f"(unit: {html.escape(cat['unit'])})</h3>")
            add(_table(["Lesion category"] + list(cat["lesion_counts"]),
                       [["Lesions"] + [str(v) for v in cat["lesion_counts"].values()]]))
            add(f"<p>Patients with response heterogeneity: {cat['n_heterogeneous']} of {cat['n_patients']} "
                f"({html.escape(cat['definition'])}). By response: " +
                "; ".join(f"{html.escape(k)} {v['n_heterogeneous']}/{v['n']}" for k, v in cat["heterogeneity_by_response"].items())
                + "</p>")
            add(_dose_relation_html(cat.get("dose_relation"), cat.get("heterogeneity_vs_dose")))
        pet = les.get("pet_response")
        if pet:
            add(f"<h3>{html.escape(pet['label'])[:1].upper()}{html.escape(pet['label'])[1:]} — per-scan lesion "
                "table, first follow-up vs baseline</h3>")
            c = pet["first_followup_lesion_counts"]
            add(_table(["Lesion category"] + list(c), [["Lesions"] + [str(v) for v in c.values()]]))
            nr, dr = pet["new_at_first_followup_resolved_at_last"], pet["disappearing_at_first_followup_returned_at_last"]
            add(f"<p>Patients with response heterogeneity at the first follow-up: "
                f"{pet['n_heterogeneous_first_followup']} of {pet['n_patients_with_followup']}. Lesions new at the "
                f"first follow-up that resolved by the last: {nr[1]} of {nr[0]}; lesions disappearing at the first "
                f"follow-up that returned: {dr[1]} of {dr[0]}.</p>")
            add(_dose_relation_html(pet.get("dose_relation_first_followup"),
                                    pet.get("heterogeneity_first_followup_vs_dose")))
        add(fig("lesion_dv_tcp"))

    # methods -------------------------------------------------------------------------------------
    add("<h2>Methods</h2><ul>")
    fmt_args = {"group_size": o.group_size, "n_cv_splits": o.n_cv_splits, "seed": o.seed, "n_bootstrap": o.n_bootstrap,
                "n_cv_repeats": o.n_cv_repeats, **o.model_settings.to_dict()}
    for title, text in METHODS_TEXT:
        add(f"<li><b>{html.escape(title)}.</b> {html.escape(text.format(**fmt_args))}</li>")
    add("</ul>")
    timing = ", ".join(f"{k} {v:.2f} s" for k, v in results.timings_s.items())
    add(f'<p class="small">Computation: {html.escape(timing)}.</p>')
    body = "\n".join(p for p in parts if p)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"/>'
            f"<title>LuResponse cohort report</title><style>{CSS}</style></head><body>\n{body}\n</body></html>\n")


COHORT_CORE_NAMES = ("cohort_results.json", "cohort_report.html")


def write_cohort_outputs(results, out_dir: str | Path, extra_files: dict[str, str] | None = None,
                         formats=("png", "svg"), make_plots: bool = True, dpi: int = 120, overwrite: bool = True,
                         writer=None) -> list[Path]:
    """Write report, JSON, figures, models and ``extra_files`` ({relative name: text}) into
    ``out_dir`` (created if needed), all or nothing: staged in a fresh folder inside ``out_dir``
    and switched in one step (``LuDosimetryLib.results.result_set``). An earlier cohort result
    set is replaced only with ``overwrite``, and only the files it recorded as its own are
    removed (a user's own files in ``figures/`` or ``models/`` stay). ``writer``: an open
    ``ResultSetWriter`` (the CLI locks the folder before the analysis). Returns the written paths."""
    from LuDosimetryLib.results.result_set import ResultSetWriter

    if writer is None:
        with ResultSetWriter(out_dir, overwrite=overwrite, core_names=COHORT_CORE_NAMES,
                             tool="lu-dosimetry cohort") as rs:
            return write_cohort_outputs(results, out_dir, extra_files, formats, make_plots, dpi, overwrite, rs)
    tmp = writer.staging
    figure_png: dict[str, tuple[str, bytes]] = {}
    if make_plots:
        from .plots import figure_png_bytes, render_all, save_figure

        (tmp / "figures").mkdir()
        for stem, (title, f) in render_all(results).items():
            paths = save_figure(f, tmp / "figures", stem, formats, dpi)
            png = paths["png"].read_bytes() if "png" in paths else figure_png_bytes(f)
            figure_png[stem] = (title, png)
            f.clear()
    (tmp / "models").mkdir()
    for name, m in results.models.items():
        m.save_json(tmp / "models" / f"{name}_model.json")
    data = results.to_dict()
    (tmp / "cohort_results.json").write_text(json.dumps(data, indent=1, allow_nan=False), encoding="utf-8")
    for name, text in (extra_files or {}).items():
        q = tmp / name
        q.parent.mkdir(parents=True, exist_ok=True)
        q.write_text(text, encoding="utf-8")
    (tmp / "cohort_report.html").write_text(build_report_html(results, figure_png), encoding="utf-8")
    return writer.commit()
