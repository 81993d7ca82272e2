"""Best tumour shrinkage and PFS as in Pavel et al. (Cancer Med 2025): visit table, landmark
analysis (best shrinkage up to the landmark, exclusions, PFS from the landmark, Cox on the
continuous shrinkage) and the intention-to-treat dichotomised groups."""

import math

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter

from LuResponseLib.analysis import CohortAnalysisOptions, run_cohort_analysis
from LuResponseLib.cohort import cohort_table_from_rows
from LuResponseLib.errors import CohortTableError
from LuResponseLib.landmark import (DAYS_PER_MONTH, PAVEL_LANDMARKS_DAYS, dichotomised_shrinkage_groups,
                                    landmark_analysis, landmark_eligibility)
from LuResponseLib.synthetic import simulate_shrinkage_cohort
from LuResponseLib.visits import load_visit_table, visit_table_from_rows


def _cohort(rows):
    full = [{"patient_id": p, "cumulative_tumor_dose_Gy": 100, "delta_ad_per_aa_percent": -20, "response": r,
             "pfs_months": t, "pfs_event": e} for p, r, t, e in rows]
    return cohort_table_from_rows(full)


def _v(p, d, s=None, pc=None, prog=0):
    r = {"patient_id": p, "days_from_start": d, "progression": prog}
    if s is not None:
        r["sum_of_diameters_mm"] = s
    if pc is not None:
        r["percent_change"] = pc
    return r


def test_landmark_cox_ci_covers_truth_and_whole_followup_is_biased():
    """Acceptance of issue 16: known trajectories and a known Cox coefficient at the 180-day
    landmark; the landmark CI covers the truth in >= 17 of 20 seeds; the whole-follow-up versions
    (the paper's 'no limit' time point, and the former shrinkage-over-everything at the landmark)
    are biased in the same cohorts."""
    beta = 0.03
    cover, est, cover_nl, est_nl, est_old = 0, [], 0, [], []
    for seed in range(20):
        c = simulate_shrinkage_cohort(n=300, beta_per_percent=beta, landmark_days=180.0, seed=seed)
        r, nl = landmark_analysis(c.table, c.visits, (180.0, None))
        lo, hi = np.log(r.hazard_ratio_ci95)
        cover += lo <= beta <= hi
        est.append(r.coef_per_percent)
        lo, hi = np.log(nl.hazard_ratio_ci95)
        cover_nl += lo <= beta <= hi
        est_nl.append(nl.coef_per_percent)
        # the former analysis: same landmark patients, shrinkage over the whole follow-up
        whole = c.visits.best_percent_change(None)
        df = pd.DataFrame({"T": r.time_from_landmark_months, "E": r.event, "x": [whole[p] for p in r.patient_ids]})
        est_old.append(float(CoxPHFitter().fit(df, "T", "E").params_["x"]))
    est, est_nl, est_old = map(np.array, (est, est_nl, est_old))
    assert cover >= 17, (cover, est)
    se_mean = est.std(ddof=1) / math.sqrt(est.size)
    assert abs(est.mean() - beta) < 3 * se_mean  # unbiased within its Monte Carlo error
    # no limit: estimates pulled away from the truth (look-ahead bias), CI misses it more often
    assert est_nl.mean() - beta > 3 * est_nl.std(ddof=1) / math.sqrt(est_nl.size), est_nl.mean()
    assert cover_nl < cover
    assert est_old.mean() - beta > 3 * est_old.std(ddof=1) / math.sqrt(est_old.size), est_old.mean()


def test_best_shrinkage_up_to_landmark_exclusions_and_reset_time():
    L = 150.0
    t_m = lambda d: d / DAYS_PER_MONTH  # noqa: E731
    table = _cohort([
        ("A", "PR", t_m(400), 1),   # eligible: best up to 150 d = -20 (the -50 at 168 d comes later)
        ("B", "SD", t_m(600), 0),   # eligible; a deeper scan after progression is ignored in 'no limit'
        ("C", "PD", t_m(500), 1),   # best response PD
        ("D", "SD", t_m(120), 1),   # progressed before the landmark
        ("E", "SD", t_m(150), 0),   # censored on the landmark: not at risk after it
        ("F", "SD", t_m(300), 1),   # no post-baseline scan before 150 d
        ("G", "SD", t_m(300), 0),   # not in the visit table
        ("H", "SD", t_m(300), 1),   # no baseline sum of diameters
        ("I", "PR", t_m(700), 1),   # eligible, PCHG given directly
        ("J", None, t_m(700), 1),   # response missing: PD derived from the first scan (progression)
        ("K", "SD", t_m(900), 0),
        ("M", "SD", t_m(800), 1),
    ])
    rows = [_v("A", 0, 100), _v("A", 84, 80), _v("A", 168, 50), _v("A", 400, 70, prog=1),
            _v("B", -7, 50), _v("B", 84, 45), _v("B", 250, 60, prog=1), _v("B", 330, 10),
            _v("C", 0, 40), _v("C", 84, 60, prog=1),
            _v("D", 0, 40), _v("D", 84, 30),
            _v("E", 0, 40), _v("E", 84, 30),
            _v("F", 0, 40), _v("F", 168, 30),
            _v("H", 84, 30),
            _v("I", 84, pc=-35.0), _v("I", 140, pc=-41.5),
            _v("J", 0, 40), _v("J", 60, 50, prog=1),
            _v("K", 0, 200), _v("K", 84, 190), _v("K", 140, 170),
            _v("M", 0, 100), _v("M", 100, 104)]
    visits = visit_table_from_rows(rows)
    assert visits.patients["H"].has_baseline is False
    ids, best, t, e, excl = landmark_eligibility(table, visits, L)
    assert ids == ["A", "B", "I", "K", "M"]
    np.testing.assert_allclose(best, [-20.0, -10.0, -41.5, -15.0, 4.0], atol=1e-12)
    np.testing.assert_allclose(t, np.array([400, 600, 700, 900, 800]) / DAYS_PER_MONTH - L / DAYS_PER_MONTH)
    assert {k: sorted(v) for k, v in excl.items() if v} == {
        "best_response_pd": ["C", "J"], "progressed_or_died_before": ["D"], "censored_before": ["E"],
        "no_post_baseline_measurement": ["F"], "no_visits": ["G"], "no_baseline": ["H"]}
    # no limit: PFS from the start, best over the whole follow-up up to first progression (B: -10, not -80)
    ids_nl, best_nl, t_nl, _, excl_nl = landmark_eligibility(table, visits, None)
    assert ids_nl == ["A", "B", "D", "E", "F", "I", "K", "M"]
    np.testing.assert_allclose(best_nl, [-50, -10, -25, -25, -25, -41.5, -15, 4], atol=1e-12)
    np.testing.assert_allclose(t_nl[0], 400 / DAYS_PER_MONTH)
    # the Cox model equals lifelines fitted directly on the same numbers
    res = landmark_analysis(table, visits, (L,))[0]
    ref = CoxPHFitter().fit(pd.DataFrame({"T": t, "E": e, "x": best}), "T", "E",
                            fit_options={"precision": 1e-14, "max_steps": 200}).summary.loc["x"]
    assert res.hazard_ratio_per_percent == pytest.approx(ref["exp(coef)"], rel=1e-9)
    assert res.coef_se == pytest.approx(ref["se(coef)"], rel=1e-9)
    assert res.p == pytest.approx(ref["p"], rel=1e-8)
    d = res.to_dict()
    assert d["excluded_counts"]["best_response_pd"] == 2 and d["n_eligible"] == 5 and d["time_origin"] == "landmark"
    assert any("taken from the scans" in n for n in res.notes)


def test_itt_groups_keep_patients_without_post_baseline_scan():
    table = _cohort([("A", "PR", 20, 1), ("B", "SD", 10, 1), ("C", "SD", 5, 1), ("D", "SD", 8, 0),
                     ("E", "SD", 8, 0)])
    visits = visit_table_from_rows([_v("A", 0, 100), _v("A", 84, 65), _v("B", 0, 100), _v("B", 84, 75),
                                    _v("C", 0, 50),                       # baseline only -> '< 30 %'
                                    _v("D", 60, 40)])                      # no baseline: outside ITT
    g = dichotomised_shrinkage_groups(table, visits)
    assert g.group[:4].tolist()[:3] == [1.0, 0.0, 0.0] and np.isnan(g.group[3]) and np.isnan(g.group[4])
    assert g.n_itt_no_post_baseline == ["C"] and g.not_in_population["no_visits"] == ["E"]
    assert g.not_in_population["no_baseline"] == ["D"]
    # without a visit table: a missing best shrinkage is '< 30 %' only if a baseline is recorded
    rows = [{"patient_id": p, "cumulative_tumor_dose_Gy": 100, "delta_ad_per_aa_percent": -20, "response": "SD",
             "best_shrinkage_percent": b, "baseline_sum_of_diameters_mm": s}
            for p, b, s in (("A", -40, 80), ("B", "", 55), ("C", "", ""))]
    g2 = dichotomised_shrinkage_groups(cohort_table_from_rows(rows))
    assert g2.group[:2].tolist() == [1.0, 0.0] and np.isnan(g2.group[2])
    assert g2.n_itt_no_post_baseline == ["B"] and g2.not_in_population["unknown_baseline"] == ["C"]


def test_without_visit_table_landmark_not_run_and_said(tmp_path):
    c = simulate_shrinkage_cohort(n=60, seed=1)
    opts = CohortAnalysisOptions(n_bootstrap=20, n_cv_repeats=0)
    res = run_cohort_analysis(c.table, opts)
    assert res.landmark == []
    assert "no visit-level table" in res.landmark_not_run
    assert any(w.startswith("landmark analysis not run: no visit-level table") for w in res.warnings)
    assert res.to_dict()["landmark_analysis"]["landmarks"] == []
    res2 = run_cohort_analysis(c.table, opts, visits=c.visits)
    assert [r.landmark_days for r in res2.landmark] == list(PAVEL_LANDMARKS_DAYS)
    assert res2.landmark_not_run is None
    d = res2.to_dict()
    assert d["shrinkage_groups_itt"]["source"].startswith("visit table")
    assert any(s["variable"] == "best_shrinkage_percent" and "intention to treat" in s["rule"] for s in d["survival"])
    from LuResponseLib.report import build_report_html

    assert "<b>Not run:</b> no visit-level table" in build_report_html(res, {})
    html = build_report_html(res2, {})
    assert "landmark analysis (Pavel et al., Cancer Med 2025)" in html and "36 weeks" in html


def test_visit_table_validation_lists_every_problem(tmp_path):
    p = tmp_path / "v.csv"
    p.write_text("patient_id,days_from_start,sum_of_diameters_mm,percent_change,progression\n"
                 "A,0,100,,0\nA,84,80,-30,0\nA,84,70,,0\nA,120,,,0\nB,0,50,,2\nC,x,50,,0\n")
    with pytest.raises(CohortTableError) as e:
        load_visit_table(p)
    msg = str(e.value)
    assert "line 3" in msg and "disagrees" in msg           # -30 % vs -20 % from the sums
    assert "line 4" in msg and "two scans on day 84" in msg
    assert "line 5" in msg and "progression scan" in msg
    assert "line 6" in msg and "'2' is not 0 or 1" in msg
    assert "line 7" in msg and "'x' is not a number" in msg
    q = tmp_path / "w.csv"
    q.write_text("patient_id,days_from_start\nA,0\n")
    with pytest.raises(CohortTableError, match="sum_of_diameters_mm or a percent_change"):
        load_visit_table(q)
