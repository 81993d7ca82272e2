"""Synthetic cohorts drawn from known models (tests, validation and the ``--demo`` cohort).

* :func:`simulate_sigmoid_cohort` — cAD per patient and responses drawn from Eq. 2.
* :func:`simulate_logistic_cohort` — (cAD, ΔAD/AA) and responses drawn from Eq. 5.
* :func:`make_demo_cohort` — a full cohort with the shape of seed 000 (73 patients, 28 PR /
  33 SD / 12 PD, Table 1 sex / grade / primary site counts, cAD around 100 Gy, ΔAD/AA around
  −30 %, uncorrelated) plus per-cycle VOI doses (contract 2 columns), a lesion table (seed 001
  volume change, seed 003 uptake change) and PFS/OS.  Deterministic for a given seed.

Demo response model: the 2D logistic model (Eq. 5) in latent-variable form.  Every patient gets
u = b1·cAD + b2·ΔAD/AA + e with e ~ standard logistic; the 28 highest u are PR, the 12 lowest
are PD, the rest SD (the intercept b0 is whatever makes exactly 28 responders).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .cohort import (
    CohortTable,
    CycleTable,
    LesionTable,
    cohort_table_from_rows,
    cycle_table_from_rows,
    lesion_table_from_rows,
)
from .sigmoid import sigmoid_probability
from .pet_lesions import PetLesionTable, pet_lesion_table_from_rows
from .visits import VisitTable, visit_table_from_rows

# shape of the seed-000 cohort
SEED000_N = 73
SEED000_COUNTS = {"PR": 28, "SD": 33, "PD": 12}
SEED000_CAD_MEDIAN_GY = 95.0
SEED000_CAD_LOG_SD = 0.55
SEED000_DELTA_MEAN_PERCENT = -30.0
SEED000_DELTA_SD_PERCENT = 22.0
SEED000_SEX = {"M": 49, "F": 24}
SEED000_GRADE = {"1": 12, "2": 51, "3": 7, "unknown": 3}
SEED000_PRIMARY = {"small bowel": 32, "pancreas": 18, "unknown": 7, "colon": 6, "lung": 2, "adrenal": 2,
                   "stomach": 2, "kidney": 2, "paraganglioma": 1, "ovary": 1}

DEMO_BETA_CAD_PER_GY = 0.02
DEMO_BETA_DELTA_PER_PERCENT = -0.04


def draw_cad_Gy(rng: np.random.Generator, n: int, median_Gy: float = SEED000_CAD_MEDIAN_GY,
                log_sd: float = SEED000_CAD_LOG_SD) -> np.ndarray:
    """Log-normal cumulative tumour doses (Gy), clipped to 15–450 Gy."""
    return np.clip(np.exp(rng.normal(np.log(median_Gy), log_sd, n)), 15.0, 450.0)


def draw_delta_percent(rng: np.random.Generator, n: int, mean: float = SEED000_DELTA_MEAN_PERCENT,
                       sd: float = SEED000_DELTA_SD_PERCENT) -> np.ndarray:
    """Normal ΔAD/AA values (%), clipped to −88 … +60 %."""
    return np.clip(rng.normal(mean, sd, n), -88.0, 60.0)


def simulate_sigmoid_cohort(n: int = SEED000_N, D_half_Gy: float = 135.0, k_Gy: float = 58.0,
                            P_max: float = 1.0, seed: int = 0,
                            cad_median_Gy: float = SEED000_CAD_MEDIAN_GY,
                            cad_log_sd: float = SEED000_CAD_LOG_SD) -> tuple[np.ndarray, np.ndarray]:
    """cAD (Gy) per patient and responder flags drawn from Eq. 2 (defaults: the seed's fit)."""
    rng = np.random.default_rng(seed)
    cad = draw_cad_Gy(rng, n, cad_median_Gy, cad_log_sd)
    responder = rng.random(n) < sigmoid_probability(cad, D_half_Gy, k_Gy, P_max)
    return cad, responder


def simulate_logistic_cohort(n: int = SEED000_N, beta0: float = -0.5,
                             beta_cAD_per_Gy: float = 0.025, beta_delta_per_percent: float = -0.03,
                             seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw (X = [cAD_Gy, ΔAD/AA_percent], responder, true probability) from Eq. 5.

    The defaults centre the predictors (β0 applies at cAD = 100 Gy, ΔAD/AA = −30 %)."""
    rng = np.random.default_rng(seed)
    cad = draw_cad_Gy(rng, n)
    delta = draw_delta_percent(rng, n)
    eta = beta0 + beta_cAD_per_Gy * (cad - 100.0) + beta_delta_per_percent * (delta + 30.0)
    p = 1.0 / (1.0 + np.exp(-eta))
    y = rng.random(n) < p
    return np.column_stack([cad, delta]), y, p


def _gumbel_top(rng, score, k, available):
    """Pick k of the available indices without replacement with probability ∝ exp(score)."""
    idx = np.flatnonzero(available)
    g = score[idx] + rng.gumbel(size=idx.size)
    return idx[np.argsort(-g, kind="mergesort")[:k]]


def _assign_counts(rng, n, counts: dict[str, int], score=None):
    """Labels with exact counts; the first label goes preferentially to high ``score``."""
    labels = np.empty(n, dtype=object)
    free = np.ones(n, dtype=bool)
    items = list(counts.items())
    if score is not None:
        first, k = items[0]
        pick = _gumbel_top(rng, score, k, free)
        labels[pick] = first
        free[pick] = False
        items = items[1:]
    rest = []
    for lab, k in items:
        rest += [lab] * k
    rest = np.array(rest, dtype=object)
    rng.shuffle(rest)
    labels[free] = rest
    return labels


@dataclass
class DemoCohort:
    """A synthetic cohort: the cohort table, per-cycle VOI doses, lesions and the true model."""

    table: CohortTable
    cycles: CycleTable
    lesions: LesionTable
    truth: dict = field(default_factory=dict)
    visits: VisitTable | None = None
    pet_lesions: PetLesionTable | None = None


def make_demo_cohort(seed: int = 0) -> DemoCohort:
    """The demo cohort (see module doc).  Same seed, same cohort, on every platform."""
    rng = np.random.default_rng(seed)
    n = SEED000_N
    ids = [f"DEMO{i + 1:03d}" for i in range(n)]
    cad = draw_cad_Gy(rng, n)
    delta = draw_delta_percent(rng, n)
    eta = DEMO_BETA_CAD_PER_GY * cad + DEMO_BETA_DELTA_PER_PERCENT * delta
    u = eta + rng.logistic(size=n)
    order = np.argsort(-u, kind="mergesort")
    response = np.empty(n, dtype=object)
    response[order[:SEED000_COUNTS["PR"]]] = "PR"
    response[order[SEED000_COUNTS["PR"]:n - SEED000_COUNTS["PD"]]] = "SD"
    response[order[n - SEED000_COUNTS["PD"]:]] = "PD"
    # intercept that makes the expected number of responders 28
    from scipy.optimize import brentq
    b0 = brentq(lambda b: np.sum(1 / (1 + np.exp(-(b + eta)))) - SEED000_COUNTS["PR"], -50, 50)

    sex = _assign_counts(rng, n, {"F": SEED000_SEX["F"], "M": SEED000_SEX["M"]}, score=0.006 * cad)
    primary = _assign_counts(rng, n, SEED000_PRIMARY, score=-0.03 * delta)  # pancreas: larger decrease
    grade = _assign_counts(rng, n, SEED000_GRADE)
    age = np.clip(np.round(rng.normal(62, 10, n)), 32, 83)

    # per-cycle doses consistent with cAD and ΔAD/AA (contract 2 columns)
    cycle_rows = []
    lesion_rows = []
    kidney_cum = np.empty(n)
    cum_aa = np.empty(n)
    lesion_stats = []
    for i, p in enumerate(ids):
        aa = np.r_[7400.0, np.clip(rng.normal(8300, 1500, 3), 1700, 11100)]
        r4 = 1.0 + delta[i] / 100.0
        ratio = np.array([1.0, r4 ** (1 / 3) * np.exp(rng.normal(0, 0.05)), r4 ** (2 / 3) * np.exp(rng.normal(0, 0.05)), r4])
        adpa1 = cad[i] / np.sum(aa / 1000.0 * ratio)
        n_t = int(min(1 + rng.poisson(0.9), 6))
        f = np.exp(rng.normal(0, 0.35, n_t))
        f /= f.mean()
        vol = np.clip(np.exp(rng.normal(np.log(28.4), 1.0, n_t)), 10.0, 2340.0)
        t_half = np.clip(rng.normal(80, 20, n_t), 30.0, 159.5)
        kid = float(np.exp(rng.normal(np.log(0.43), 0.25)))
        k_half = float(np.clip(rng.normal(47, 10), 20, 159.5))
        kidney_total = 0.0
        for c in range(4):
            for t in range(n_t):
                adpa = f[t] * adpa1 * ratio[c]
                cycle_rows.append({"patient_id": p, "cycle": c + 1, "voi": f"tumor_{t + 1}", "kind": "tumor",
                                   "volume_ml": float(vol[t]), "administered_activity_MBq": float(aa[c]),
                                   "absorbed_dose_Gy": float(adpa * aa[c] / 1000.0),
                                   "ad_per_aa_Gy_per_GBq": float(adpa), "fit_model": "biexp",
                                   "effective_half_life_h": float(np.clip(t_half[t] + rng.normal(0, 5), 20, 159.5)),
                                   "recovery_coefficient": "", "flags": ""})
            kpa = kid * float(np.exp(rng.normal(0, 0.05)))
            kidney_total += kpa * aa[c] / 1000.0
            for side in ("left", "right"):
                cycle_rows.append({"patient_id": p, "cycle": c + 1, "voi": f"kidney_{side}", "kind": "kidney",
                                   "volume_ml": 150.0, "administered_activity_MBq": float(aa[c]),
                                   "absorbed_dose_Gy": float(kpa * aa[c] / 1000.0),
                                   "ad_per_aa_Gy_per_GBq": float(kpa), "fit_model": "biexp",
                                   "effective_half_life_h": float(np.clip(k_half + rng.normal(0, 3), 20, 159.5)),
                                   "recovery_coefficient": "", "flags": ""})
        kidney_cum[i] = kidney_total
        cum_aa[i] = aa.sum() / 1000.0
        # lesions: seed 001 volume change, seed 003 uptake change
        lad = f * cad[i]
        lesion_stats.append((lad.mean(), lad.min(), lad.max(), n_t))
        for t in range(n_t):
            dv = float(np.clip(15.0 - 0.35 * lad[t] + rng.normal(0, 18), -95, 200))
            base = float(vol[t] * np.exp(rng.normal(np.log(8.0), 0.3)))
            du = float(20.0 - 0.5 * lad[t] + rng.normal(0, 30))
            follow = "" if du <= -95 else base * (1 + max(du, -95) / 100.0)
            lesion_rows.append({"patient_id": p, "lesion_id": f"tumor_{t + 1}", "lesion_ad_Gy": float(lad[t]),
                                "delta_volume_percent": dv, "total_uptake_baseline": base,
                                "total_uptake_followup": follow, "uptake_unit": "SUVtotal",
                                "uptake_modality": "PET"})
        n_new = int(rng.integers(1, 4)) if response[i] == "PD" else int(rng.random() < 0.2)
        for t in range(n_new):
            lesion_rows.append({"patient_id": p, "lesion_id": f"new_{t + 1}", "lesion_ad_Gy": "",
                                "delta_volume_percent": "", "total_uptake_baseline": "",
                                "total_uptake_followup": float(np.exp(rng.normal(np.log(60.0), 0.5))),
                                "uptake_unit": "SUVtotal", "uptake_modality": "PET"})

    # survival (months): PD progresses early; otherwise exponential, lower hazard with dose
    pd = response == "PD"
    pr = response == "PR"
    follow = rng.uniform(12, 60, n)
    lam_pfs = np.log(2) / 26.0 * np.exp(-0.01 * (cad - 95) - 0.3 * pr)
    pfs = np.where(pd, rng.uniform(3, 12, n), rng.exponential(1 / lam_pfs))
    lam_os = np.log(2) / 55.0 * np.exp(-0.008 * (cad - 95) + 1.0 * pd)
    os_t = rng.exponential(1 / lam_os)
    pfs_event = (pfs <= follow).astype(int)
    pfs = np.minimum(pfs, follow)
    os_event = (os_t <= follow).astype(int)
    os_t = np.minimum(os_t, follow)
    early_death = os_t < pfs
    pfs = np.where(early_death, os_t, pfs)
    pfs_event = np.where(early_death, os_event, pfs_event)
    shrink = np.where(pr, rng.uniform(-80, -30, n),
                      np.where(pd, np.clip(rng.normal(25, 12, n), -20, 80), rng.uniform(-29, 19, n)))

    rows = []
    for i, p in enumerate(ids):
        rows.append({"patient_id": p, "cumulative_tumor_dose_Gy": round(float(cad[i]), 3),
                     "delta_ad_per_aa_percent": round(float(delta[i]), 3), "response": response[i],
                     "sex": sex[i], "primary_site": primary[i], "grade": grade[i], "age_years": float(age[i]),
                     "pfs_months": round(float(pfs[i]), 2), "pfs_event": int(pfs_event[i]),
                     "os_months": round(float(os_t[i]), 2), "os_event": int(os_event[i]),
                     "kidney_cumulative_dose_Gy": round(float(kidney_cum[i]), 3),
                     "best_shrinkage_percent": round(float(shrink[i]), 1),
                     "mean_lesion_ad_Gy": round(float(lesion_stats[i][0]), 3),
                     "min_lesion_ad_Gy": round(float(lesion_stats[i][1]), 3),
                     "max_lesion_ad_Gy": round(float(lesion_stats[i][2]), 3),
                     "n_lesions": lesion_stats[i][3], "cumulative_aa_GBq": round(float(cum_aa[i]), 3)})
    table = cohort_table_from_rows(rows, f"synthetic demo cohort (seed {seed})")
    cycles = cycle_table_from_rows(cycle_rows, f"synthetic demo per-cycle doses (seed {seed})")
    lesions = lesion_table_from_rows(lesion_rows, f"synthetic demo lesions (seed {seed})")
    truth = {
        "response_model": "Eq. 5 in latent form: u = b0 + b1*cAD + b2*dAD/AA + logistic noise; top 28 = PR, "
                          "lowest 12 = PD",
        "beta0": float(b0), "beta_cAD_per_Gy": DEMO_BETA_CAD_PER_GY,
        "beta_delta_per_percent": DEMO_BETA_DELTA_PER_PERCENT,
        "true_probability": (1 / (1 + np.exp(-(b0 + eta)))).tolist(),
        "seed": seed,
    }
    visits = _demo_visits(np.random.default_rng([seed, 4]), ids, response, pfs, pfs_event, shrink, seed)
    pet = _demo_pet(np.random.default_rng([seed, 5]), lesion_rows, seed)
    return DemoCohort(table, cycles, lesions, truth, visits, pet)


def _demo_pet(rng, lesion_rows, seed) -> PetLesionTable:
    """Long PET lesion table of the demo: baseline (day -14), first follow-up (day 200: the
    lesion table's follow-up uptake) and a second one (day 400: each lesion drifts by a
    log-normal factor; 60 % of the new lesions resolve, 10 % of the disappeared return)."""
    rows = []
    for r in lesion_rows:
        b = r["total_uptake_baseline"]
        f = r["total_uptake_followup"]
        if f == "":
            f2 = float(b) * 0.5 if rng.random() < 0.1 else 0.0
        elif b == "":
            f2 = 0.0 if rng.random() < 0.6 else float(f) * float(np.exp(rng.normal(0, 0.3)))
        else:
            f2 = float(f) * float(np.exp(rng.normal(0, 0.3)))
        for day, v in ((-14.0, b), (200.0, f), (400.0, f2)):
            rows.append({"patient_id": r["patient_id"], "lesion_id": r["lesion_id"], "days_from_start": day,
                         "total_uptake": 0.0 if v == "" else round(float(v), 3), "uptake_unit": "SUVtotal",
                         "modality": "PET"})
    return pet_lesion_table_from_rows(rows, f"synthetic demo PET lesions (seed {seed})")


def _demo_visits(rng, ids, response, pfs_months, pfs_event, shrink, seed) -> VisitTable:
    """Scans every 12 weeks until progression or censoring; the PCHG deepens towards the
    patient's best shrinkage (reached at the last scan before progression); PD patients'
    scans show their (positive) change; a progression scan closes each progressing patient."""
    rows = []
    for i, p in enumerate(ids):
        end = float(pfs_months[i]) * 30.4375
        base = round(float(rng.uniform(40, 200)), 1)
        rows.append({"patient_id": p, "days_from_start": 0, "sum_of_diameters_mm": base, "progression": 0})
        days = [84.0 * k for k in range(1, 40) if 84.0 * k < end]
        if not days and response[i] != "PD":
            days = [round(end / 2.0, 1)]
        for k, d in enumerate(days, 1):
            pc = shrink[i] if response[i] == "PD" or shrink[i] >= 0 else shrink[i] * math.sqrt(k / len(days))
            rows.append({"patient_id": p, "days_from_start": d, "sum_of_diameters_mm": round(base * (1 + pc / 100), 1),
                         "progression": 0})
        if pfs_event[i]:
            nadir = 1 + min(0.0, float(shrink[i])) / 100
            rows.append({"patient_id": p, "days_from_start": round(end, 1),
                         "sum_of_diameters_mm": round(base * max(nadir * 1.25, 1 + float(shrink[i]) / 100), 1),
                         "progression": 1})
    return visit_table_from_rows(rows, f"synthetic demo scans (seed {seed})")


@dataclass
class ShrinkageCohort:
    """A cohort drawn from a known landmark Cox model (see :func:`simulate_shrinkage_cohort`)."""

    table: CohortTable
    visits: VisitTable
    truth: dict


def simulate_shrinkage_cohort(n: int = 300, beta_per_percent: float = 0.03, landmark_days: float = 180.0,
                              seed: int = 0, scan_interval_days: float = 84.0,
                              median_pfs_days: float = 760.0,
                              tau_days: tuple[float, float] = (150.0, 1500.0)) -> ShrinkageCohort:
    """Patients with known shrinkage trajectories and a known Cox coefficient at a landmark.

    Each patient's PCHG follows a(1 - exp(-t/tau)) (a ~ U(-80, +10) %, tau ~ U(``tau_days``) d) plus
    3 % measurement noise, scanned every ``scan_interval_days``.  Progression hazard: lam0
    (median ``median_pfs_days``) up to the landmark, then lam0 exp(beta B_L) with B_L the best
    PCHG *measured* up to the landmark — so a Cox model of PFS from the landmark on B_L has the
    true coefficient ``beta_per_percent``.  Censoring uniform on 300–1500 d.  Shrinkage keeps
    deepening after the landmark, so the best PCHG over the whole follow-up grows with the time
    a patient stays free of progression (the look-ahead bias the landmark design avoids)."""
    rng = np.random.default_rng(seed)
    lam0 = math.log(2) / median_pfs_days
    rows, visit_rows = [], []
    for i in range(n):
        p = f"S{i + 1:04d}"
        a, tau = rng.uniform(-80, 10), rng.uniform(*tau_days)
        base = float(rng.uniform(40, 200))
        scan_days = scan_interval_days * np.arange(1, 60)
        pchg = a * (1 - np.exp(-scan_days / tau)) + rng.normal(0, 3, scan_days.size)
        pchg = np.maximum(pchg, -100.0)
        b_l = float(pchg[scan_days <= landmark_days].min())
        t = rng.exponential(1 / lam0)
        if t > landmark_days:
            t = landmark_days + rng.exponential(1 / (lam0 * math.exp(beta_per_percent * b_l)))
        c = rng.uniform(300, 1500)
        pfs, event = min(t, c), int(t <= c)
        visit_rows.append({"patient_id": p, "days_from_start": 0.0, "sum_of_diameters_mm": base, "progression": 0})
        before = scan_days < pfs if event else scan_days <= pfs
        for d, pc in zip(scan_days[before], pchg[before]):
            visit_rows.append({"patient_id": p, "days_from_start": float(d), "sum_of_diameters_mm": base * (1 + pc / 100),
                               "progression": 0})
        nadir = float(min(0.0, pchg[before].min())) if before.any() else 0.0
        if event:
            visit_rows.append({"patient_id": p, "days_from_start": float(pfs),
                               "sum_of_diameters_mm": base * (1 + nadir / 100) * 1.25, "progression": 1})
        resp = "PD" if event and not before.any() else ("PR" if nadir <= -30 else "SD")
        rows.append({"patient_id": p, "cumulative_tumor_dose_Gy": float(rng.uniform(30, 250)),
                     "delta_ad_per_aa_percent": float(rng.uniform(-80, 20)), "response": resp,
                     "pfs_months": pfs / 30.4375, "pfs_event": event})
    truth = {"beta_per_percent": beta_per_percent, "landmark_days": landmark_days, "baseline_hazard_per_day": lam0,
             "model": "hazard lam0 before the landmark, lam0*exp(beta*B_L) after; B_L = best measured PCHG up to "
                      "the landmark"}
    return ShrinkageCohort(cohort_table_from_rows(rows, f"synthetic shrinkage cohort (seed {seed})"),
                           visit_table_from_rows(visit_rows, f"synthetic scans (seed {seed})"), truth)


def make_large_cohort(n: int, seed: int = 0) -> ShrinkageCohort:
    """A cohort of ``n`` patients for scale tests and benchmarks: responses from Eq. 5
    (:func:`simulate_logistic_cohort`, PR vs SD/PD; a quarter of the non-responders PD), PFS,
    scans and best shrinkage from :func:`simulate_shrinkage_cohort`, OS = PFS + exponential."""
    sc = simulate_shrinkage_cohort(n=n, seed=seed)
    X, y, _p = simulate_logistic_cohort(n=n, seed=seed + 1)
    rng = np.random.default_rng([seed, 7])
    rows = sc.table.to_rows()
    for i, r in enumerate(rows):
        r["cumulative_tumor_dose_Gy"], r["delta_ad_per_aa_percent"] = float(X[i, 0]), float(X[i, 1])
        if r["response"] != "PD":
            r["response"] = "PR" if y[i] else ("PD" if rng.random() < 0.25 else "SD")
        r["os_months"] = r["pfs_months"] + float(rng.exponential(20.0))
        r["os_event"] = int(rng.random() < 0.6)
        r["sex"] = "F" if rng.random() < 0.33 else "M"
        r["grade"] = str(int(rng.integers(1, 4)))
    table = cohort_table_from_rows(rows, f"synthetic cohort of {n} patients (seed {seed})")
    return ShrinkageCohort(table, sc.visits, {**sc.truth, "response_model": "Eq. 5 (simulate_logistic_cohort)"})
