"""``lu-dosimetry cohort``: the command-line front of LuResponseLib.

Wired by ``LuDosimetryLib.cli``: it calls :func:`add_cohort_arguments` on the ``cohort``
sub-parser and :func:`run_cohort_command` to run it.  Only ``argparse`` is imported at module
level so ``lu-dosimetry --help`` stays instant.

Examples::

    lu-dosimetry cohort cohort.csv --out results/
    lu-dosimetry cohort --results-dir patients/ --clinical clinical.csv --out results/
    lu-dosimetry cohort --demo --seed 3 --out demo_cohort/
    lu-dosimetry cohort cohort.csv --out results/ --cutoff 120,-40 --predict 110,-55
    lu-dosimetry cohort --models results/ --predict 120,-40 --out prediction/   (no re-analysis)

Values with a leading minus (``--predict -40,120``) are accepted: the sub-parser treats any
argument that starts with ``-`` and a digit as a value, not an option.
"""

from __future__ import annotations

import argparse
import re


def _pair(text: str) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers 'cAD_Gy,dAD/AA_percent', got '{text}'") from None
    return a, b


def add_cohort_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``cohort`` options to ``p``."""
    # "-40,120" is a value, not an option: argparse only treats "-40" or "-.5" as a negative number by
    # default (the cohort options contain no option that starts with "-" and a digit)
    p._negative_number_matcher = re.compile(r"^-\.?\d")
    p.description = ("Cohort dose-response analysis (methods of Macsuka et al., J Nucl Med 2026): descriptive statistics, groupwise "
                     "analysis and Eq. 2 sigmoid, cross-validated logistic/SVM models, cut-off rules, survival "
                     "and lesion analyses. Writes cohort_report.html, cohort_results.json, figures/ and models/.")
    p.add_argument("table", nargs="?", help="cohort CSV (patient_id, cumulative_tumor_dose_Gy, "
                                            "delta_ad_per_aa_percent, response, optional columns)")
    p.add_argument("--out", default="lu_cohort_results", help="output folder (default: %(default)s)")
    src = p.add_argument_group("other inputs")
    src.add_argument("--demo", action="store_true", help="analyse a synthetic cohort with the shape of Macsuka et al. "
                                                         "(73 patients, 28 PR / 33 SD / 12 PD)")
    src.add_argument("--results-dir", help="folder of per-patient result folders (summary.json, "
                                           "voi_cycle_doses.csv) to assemble the cohort from")
    src.add_argument("--clinical", help="clinical CSV joined on patient_id (response, sex, grade, pfs_months, ...)"
                                        " — with --results-dir")
    src.add_argument("--cycles", action="append", default=[], metavar="CSV",
                     help="per-cycle VOI table(s) (voi_cycle_doses.csv columns) for Table 2 statistics; repeatable")
    src.add_argument("--visits", help="visit-level tumour measurements CSV (patient_id, days_from_start, "
                                      "sum_of_diameters_mm or percent_change, progression) for the landmark and "
                                      "intention-to-treat shrinkage analyses")
    src.add_argument("--pet-lesions", help="lesion uptake per PET scan CSV (patient_id, lesion_id, days_from_start, "
                                           "total_uptake, uptake_unit) for the Santoro-Fernandes et al. categories")
    src.add_argument("--lesions", help="per-lesion CSV (patient_id, lesion_id, lesion_ad_Gy, delta_volume_percent, "
                                       "total_uptake_baseline, total_uptake_followup)")
    st = p.add_argument_group("analysis")
    st.add_argument("--seed", type=int, default=0, help="random seed of folds, bootstrap, demo (default 0)")
    st.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for CIs (default 1000)")
    st.add_argument("--cv-folds", type=int, default=5, help="stratified CV folds (default 5)")
    st.add_argument("--cv-repeats", type=int, default=20, help="repeated CV splits for the AUC spread (default 20)")
    st.add_argument("--group-size", type=int, default=11, help="patients per group for Fig. 4 / Eq. 2 (default 11)")
    st.add_argument("--cad-cutoff-Gy", type=float, default=100.0, help="cAD cut-off of the rule (default 100 Gy)")
    st.add_argument("--delta-cutoff-percent", type=float, default=-50.0,
                    help="dAD/AA cut-off of the rule (default -50 %%)")
    st.add_argument("--cutoff", type=_pair, action="append", default=[], metavar="CAD_GY,DELTA_PERCENT",
                    help="extra cut-off rule to evaluate, e.g. 120,-40; repeatable")
    st.add_argument("--survival-thresholds", type=_thresholds, choices=["seed", "median"], default="seed",
                    metavar="{published,median}",
                    help="dose thresholds for KM/Cox: 'published' = the values of Hebert et al. (J Nucl Med 2024: "
                         "91.36 / 52.52 Gy, default) or 'median' = the cohort's medians")
    st.add_argument("--landmark-days", type=_landmark, action="append", default=None, metavar="DAYS",
                    help="landmark time(s) in days for the shrinkage analysis, 'none' = no limit; repeatable "
                         "(default as Pavel et al., Cancer Med 2025: 150, 180, 252, 336, 504 days and none)")
    st.add_argument("--logistic-penalty", choices=["none", "l2"], default="none",
                    help="Eq. 5 fit: 'none' = maximum likelihood as in Macsuka et al. (default; separable data "
                         "fall back to l2 with a warning), 'l2' = ridge-penalised with --logistic-C")
    st.add_argument("--logistic-C", type=float, default=1.0,
                    help="inverse L2 strength of Eq. 5 with --logistic-penalty l2 (default 1)")
    st.add_argument("--svm-C", type=float, default=1.0, help="SVM C (default 1)")
    st.add_argument("--svm-gamma", default="scale", help="SVM RBF gamma: number or 'scale' (default)")
    o = p.add_argument_group("output")
    o.add_argument("--predict", type=_pair, action="append", default=[], metavar="CAD_GY,DELTA_PERCENT",
                   help="probability of PR for a new patient from every model, with a bootstrap interval; written "
                        "to cohort_results.json and the report and marked on Figs. 5 and 6; repeatable "
                        "(e.g. --predict 120,-40 or --predict -40,120)")
    o.add_argument("--models", metavar="DIR",
                   help="with --predict: load the saved models (DIR/models/*_model.json of an earlier cohort run, or "
                        "that models/ folder) instead of analysing a cohort; answers in seconds")
    o.add_argument("--no-plots", action="store_true", help="skip figures (report without images)")
    o.add_argument("--overwrite", action="store_true",
                   help="replace a cohort result set already in --out (atomically); without it such a folder is "
                        "refused before any computation")


def _thresholds(text: str) -> str:
    """'published' (the earlier name 'seed' is still accepted) or 'median'."""
    return "seed" if text in ("published", "seed") else text


def _landmark(text: str):
    if text.strip().lower() in ("none", "no-limit", "nolimit", "inf"):
        return None
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a landmark is a number of days or 'none' (got '{text}')") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"a landmark must be > 0 days (got {text})")
    return v


def _gamma(text: str):
    try:
        return float(text)
    except ValueError:
        if text not in ("scale", "auto"):
            raise ValueError(f"--svm-gamma must be a number, 'scale' or 'auto' (got '{text}')") from None
        return text


def run_cohort_command(args: argparse.Namespace) -> int:
    """Run the cohort analysis for parsed ``args``; returns the exit code (0 = success).

    ``--out`` is checked (holds no input; an earlier cohort result set only with ``--overwrite``)
    and locked before any computation; the outputs are switched in all at once."""
    n_sources = sum(bool(x) for x in (args.table, args.demo, args.results_dir))
    if getattr(args, "models", None):
        return _run_prediction_command(args, n_sources)
    if n_sources != 1:
        raise ValueError("give exactly one of: a cohort TABLE.csv, --demo, or --results-dir")
    if args.clinical and not args.results_dir:
        raise ValueError("--clinical is joined to --results-dir; put clinical columns into TABLE.csv otherwise")
    if args.bootstrap < 1:
        raise ValueError("--bootstrap must be >= 1")
    from LuDosimetryLib.results.result_set import ResultSetWriter, check_output_folder

    from .report import COHORT_CORE_NAMES

    inputs = [x for x in (args.table, args.results_dir, args.clinical, args.lesions, *args.cycles) if x]
    out = check_output_folder(args.out, inputs, args.overwrite, COHORT_CORE_NAMES, COHORT_CORE_NAMES)
    with ResultSetWriter(out, overwrite=args.overwrite, core_names=COHORT_CORE_NAMES,
                         tool="lu-dosimetry cohort") as writer:
        return _run_cohort(args, writer)


def _run_prediction_command(args: argparse.Namespace, n_sources: int) -> int:
    """``--models DIR --predict ...``: predictions from saved models, no analysis."""
    if not args.predict:
        raise ValueError("--models is used with --predict CAD_GY,DELTA_PERCENT (the patient to predict)")
    if n_sources:
        raise ValueError("--models predicts from saved models: give no cohort TABLE.csv, --demo or --results-dir")
    from LuDosimetryLib.results.result_set import ResultSetWriter, check_output_folder

    from .prediction import find_model_files
    from .prediction_outputs import write_prediction_outputs
    from .report import COHORT_CORE_NAMES

    find_model_files(args.models)  # a clear message before the output folder is touched
    out = check_output_folder(args.out, [args.models], args.overwrite, COHORT_CORE_NAMES, COHORT_CORE_NAMES)
    with ResultSetWriter(out, overwrite=args.overwrite, core_names=COHORT_CORE_NAMES,
                         tool="lu-dosimetry cohort --predict") as writer:
        data = write_prediction_outputs(args.models, args.predict, writer, make_plots=not args.no_plots)
    for p in data["predictions"]:
        _print_prediction(p)
    print(f"Prediction in {args.out}: cohort_results.json, cohort_report.html"
          + ("" if args.no_plots else ", figures/"))
    return 0


def _print_prediction(p: dict) -> None:
    print(f"  new patient cAD {p['cumulative_tumor_dose_Gy']:g} Gy, dAD/AA {p['delta_ad_per_aa_percent']:g} %: " +
          ", ".join(f"{k} {100 * v['probability']:.0f} %" + (f" [{100 * v['ci'][0]:.0f}-{100 * v['ci'][1]:.0f} %]"
                                                           if v["ci"] else "") for k, v in p["models"].items()))
    for k, v in p["models"].items():
        for w in v["warnings"]:
            print(f"    note ({k}): {w}")


def _run_cohort(args: argparse.Namespace, writer) -> int:
    import logging

    import numpy as np
    from pathlib import Path

    from .analysis import CohortAnalysisOptions, run_cohort_analysis
    from .landmark import PAVEL_LANDMARKS_DAYS
    from .assemble import assemble_cohort_table
    from .cohort import load_cohort_table, load_cycle_table, load_lesion_table
    from .pet_lesions import load_pet_lesion_table, pet_lesion_csv_text
    from .visits import load_visit_table
    from .models import ModelSettings
    from .report import write_cohort_outputs

    log = logging.getLogger("lu-dosimetry.cohort")

    extra: dict[str, str] = {}
    cycles = lesions = visits = pet = None
    demo_truth = None
    if args.demo:
        from .synthetic import make_demo_cohort

        demo = make_demo_cohort(args.seed)
        table, cycles, lesions, demo_truth, visits = demo.table, demo.cycles, demo.lesions, demo.truth, demo.visits
        pet = demo.pet_lesions
        from .readers import columns_to_csv_text

        extra["demo_cohort.csv"] = table.to_csv_text()
        extra["demo_voi_cycle_doses.csv"] = columns_to_csv_text(cycles.columns)
        extra["demo_lesions.csv"] = columns_to_csv_text(lesions.columns)
        extra["demo_visits.csv"] = columns_to_csv_text(visits.columns)
        extra["demo_pet_lesions.csv"] = pet_lesion_csv_text(pet)
    elif args.results_dir:
        assembled = assemble_cohort_table(args.results_dir, args.clinical)
        table, cycles = assembled.table, assembled.cycles
        extra["cohort_table.csv"] = table.to_csv_text()
    else:
        table = load_cohort_table(args.table)
    if args.cycles:
        cycles = load_cycle_table([Path(c) for c in args.cycles])
    if args.lesions:
        lesions = load_lesion_table(args.lesions)
    if args.visits:
        visits = load_visit_table(args.visits)
    if args.pet_lesions:
        pet = load_pet_lesion_table(args.pet_lesions)

    options = CohortAnalysisOptions(
        seed=args.seed, n_bootstrap=args.bootstrap, n_cv_splits=args.cv_folds, n_cv_repeats=args.cv_repeats,
        group_size=args.group_size, cad_cutoff_Gy=args.cad_cutoff_Gy, delta_cutoff_percent=args.delta_cutoff_percent,
        user_cutoffs=tuple(args.cutoff), survival_thresholds=args.survival_thresholds,
        landmark_days=tuple(args.landmark_days) if args.landmark_days else PAVEL_LANDMARKS_DAYS,
        model_settings=ModelSettings(logistic_C=args.logistic_C, logistic_penalty=args.logistic_penalty,
                                     svm_C=args.svm_C, svm_gamma=_gamma(args.svm_gamma)))
    log.info("Cohort: %d patients from %s", table.n_patients, table.source)
    results = run_cohort_analysis(table, options, cycles, lesions,
                                  progress=lambda f, m: log.info("[%3d%%] %s", int(round(100 * f)), m), visits=visits,
                                  pet_lesions=pet)
    results.demo_truth = demo_truth
    for cad, delta in args.predict:
        results.add_prediction(cad, delta)
    log.info("Writing figures and report to %s", args.out)
    paths = write_cohort_outputs(results, Path(args.out), extra, make_plots=not args.no_plots, writer=writer)

    print(f"Cohort: {table.n_patients} patients ({table.source})")
    rc = table.response_counts()
    print("  response: " + ", ".join(f"{k} {v}" for k, v in rc.items() if v))
    s = results.sigmoid
    if s is not None:
        print(f"  Eq. 2 sigmoid: D_half {s.D_half_Gy:.1f} Gy [{s.D_half_ci95_Gy[0]:.1f}, {s.D_half_ci95_Gy[1]:.1f}], "
              f"k {s.k_Gy:.1f} Gy [{s.k_ci95_Gy[0]:.1f}, {s.k_ci95_Gy[1]:.1f}], P_max {100 * s.P_max:.0f} %, "
              f"R2 {s.r2:.2f}, RMSE {100 * s.rmse:.1f} %, AUC {s.auc:.3f}")
    for name, cv in results.cv.items():
        print(f"  {name:15s} CV AUC {cv.auc:.3f} [{cv.auc_ci95[0]:.3f}, {cv.auc_ci95[1]:.3f}]")
    if results.rules:
        r = results.rules[0]
        print(f"  rule {r.name}: {r.true_positive}/{r.true_positive + r.false_positive} responders "
              f"(PPV {100 * r.ppv.estimate:.0f} %)" if r.ppv.n else f"  rule {r.name}: no patient positive")
    for p in results.predictions:
        _print_prediction(p)
    for r in results.landmark:
        hr = r.hazard_ratio_per_percent
        print(f"  landmark {r.label:9s} PFS Cox HR per 1 % change {hr:.3f} [{r.hazard_ratio_ci95[0]:.3f}, "
              f"{r.hazard_ratio_ci95[1]:.3f}], n {r.n_eligible}, events {r.n_events}" if np.isfinite(hr) else
              f"  landmark {r.label:9s} not estimable (n {r.n_eligible}, events {r.n_events})")
    for w in results.warnings:
        print(f"  note: {w}")
    print(f"Results in {Path(args.out)}: cohort_report.html, cohort_results.json, "
          f"{sum(1 for p in paths if p.parent.name == 'figures')} figure files, "
          f"{sum(1 for p in paths if p.parent.name == 'models')} models")
    return 0
