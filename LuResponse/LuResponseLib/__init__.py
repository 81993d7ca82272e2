"""LuResponseLib: cohort dose-response analysis (pure Python core of the LuResponse module).

Never imports slicer/qt/ctk/vtk; scikit-learn, lifelines and matplotlib are imported lazily
inside the functions that need them so the package imports in a bare Slicer Python environment
(numpy + scipy).

Modules (one concept each):

- ``readers``      CSV reading, column specifications, typing and validation of the input tables
- ``cohort``       the tables as objects: cohort table (contract 3), per-cycle VOI table, lesion table
- ``assemble``     the cohort table from per-patient result folders plus a clinical CSV
- ``table``        compatibility: re-exports the three above under their old module name
- ``descriptive``  Table 2 per-cycle statistics, rank tests, Spearman, subgroups
- ``sigmoid``      groups of 11 and the Eq. 2 sigmoid with profile CIs, R^2 (Eq. 3), RMSE (Eq. 4)
- ``roc``          AUC, ROC curve, stratified bootstrap CI
- ``models``       logistic (Eq. 5, maximum likelihood) and RBF-SVM pipelines, stratified CV, JSON models
- ``svm``          the RBF-SVM with explicit Platt scaling; stratified subsample on large cohorts
- ``prediction``   a new patient's probability of PR with a bootstrap interval (replicates saved in the models)
- ``prediction_outputs``  ``cohort --models DIR --predict``: outputs from saved models, no re-analysis
- ``rules``        cut-off rules with Clopper-Pearson intervals
- ``visits``       visit-level tumour measurements (sum of diameters per scan), best shrinkage up to a day
- ``survival``     Kaplan-Meier, log-rank (lifelines), vectorised Efron Cox fit
- ``landmark``     Pavel et al.: landmark analysis of best shrinkage and PFS, intention-to-treat groups
- ``lesions``      lesion dV vs AD, TCP (Hebert et al.); response categories, heterogeneity, their relation to dose
- ``pet_lesions``  lesion uptake per PET scan: Santoro-Fernandes et al. categories over time
- ``synthetic``    cohorts drawn from known models, the ``--demo`` cohort
- ``analysis``     ``run_cohort_analysis``: everything in one call
- ``plots``/``report``  figures (PNG/SVG) and the self-contained HTML report, atomic output
- ``cli``          ``lu-dosimetry cohort``

The most used functions are also reachable as attributes of the package (imported on first use),
e.g. ``LuResponseLib.load_cohort_table(path)``.
"""

__version__ = "0.1.0"

_LAZY = {
    "load_cohort_table": "cohort", "cohort_table_from_rows": "cohort", "assemble_cohort_table": "assemble",
    "load_cycle_table": "cohort", "load_lesion_table": "cohort", "CohortTable": "cohort",
    "CohortTableError": "errors", "AnalysisError": "errors", "ExtrapolationWarning": "errors",
    "group_by_metric": "sigmoid", "fit_sigmoid": "sigmoid", "sigmoid_probability": "sigmoid",
    "cross_validated_probabilities": "models", "fit_response_model": "models", "ResponseModel": "models",
    "repeated_cv_auc": "models", "probability_surface": "models",
    "predict_patient": "prediction", "load_models": "prediction",
    "evaluate_cutoff_rule": "rules", "clopper_pearson": "rules",
    "roc_auc": "roc", "bootstrap_auc_ci": "roc",
    "run_cohort_analysis": "analysis", "CohortAnalysisOptions": "analysis",
    "write_cohort_outputs": "report", "make_demo_cohort": "synthetic",
    "load_visit_table": "visits", "load_pet_lesion_table": "pet_lesions", "VisitTable": "visits", "landmark_analysis": "landmark",
}


def __getattr__(name):  # PEP 562: import the defining module on first use
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'LuResponseLib' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(f".{mod}", __name__), name)


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
