"""``lu-dosimetry cohort --models DIR --predict CAD,DELTA``: predict new patients from saved models.

No re-analysis: the ``models/*_model.json`` of an earlier cohort run are loaded (with their
bootstrap replicates, :mod:`.prediction`) and the outputs are written like a cohort result set
(atomically, ``LuDosimetryLib.results.result_set``): ``cohort_results.json`` (the predictions
with their intervals, the models used and where they came from), ``cohort_report.html`` and the
figures ``fig5_cutoff_scatter`` (cohort points when the earlier folder holds the cohort table)
and ``fig6_probability_surfaces``, each with the new patient(s) marked by a star.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
from pathlib import Path

from . import __version__
from .prediction import load_models, load_training_points, predict_patient


def _earlier_options(models_dir: Path) -> dict:
    for root in (models_dir, models_dir.parent):
        f = root / "cohort_results.json"
        if f.is_file():
            try:
                o = json.loads(f.read_text(encoding="utf-8")).get("options")
                return o if isinstance(o, dict) else {}
            except (OSError, ValueError, AttributeError):
                return {}
    return {}


def write_prediction_outputs(models_dir, patients, writer, make_plots: bool = True, dpi: int = 120) -> dict:
    """Predict every (cAD Gy, ΔAD/AA %) in ``patients`` with the models in ``models_dir`` and
    write the result set into ``writer`` (an open ``ResultSetWriter``); returns the JSON dict."""
    models_dir = Path(models_dir)
    models = load_models(models_dir)
    earlier = _earlier_options(models_dir)
    conf = float(earlier.get("confidence", 0.95)) if isinstance(earlier.get("confidence"), (int, float)) else 0.95
    preds = [predict_patient(models, c, d, None, conf) for c, d in patients]
    points = load_training_points(models_dir)
    data = {
        "software": f"LuResponseLib {__version__}",
        "mode": "prediction from saved models (no re-analysis)",
        "models_source": str(models_dir),
        "models": {name: {"kind": m.kind, "features": m.feature_names,
                          "training": {"n": m.n_train, "n_responders": m.n_responders,
                                       "min": m.training_min.tolist(), "max": m.training_max.tolist()},
                          "bootstrap_resamples": len((m.bootstrap or {}).get("replicates", [])),
                          "provenance": m.provenance} for name, m in models.items()},
        "cohort_points_source": points[4] if points else None,
        "predictions": preds,
    }
    tmp = writer.staging
    figure_png: dict[str, tuple[str, bytes]] = {}
    if make_plots:
        from .plots import (
            figure_cutoff_scatter,
            figure_probability_surfaces,
            save_figure,
        )

        (tmp / "figures").mkdir()
        marks = [(p["cumulative_tumor_dose_Gy"], p["delta_ad_per_aa_percent"]) for p in preds]
        figs = {}
        if points:
            figs["fig5_cutoff_scatter"] = ("Fig. 5 — cAD vs ΔAD/AA of the cohort, new patient marked",
                                           figure_cutoff_scatter(points[0], points[1], points[2],
                                                                 earlier.get("cad_cutoff_Gy", 100.0),
                                                                 earlier.get("delta_cutoff_percent", -50.0), marks))
        if "logistic" in models or "svm" in models:
            cad, d, y = (points[0], points[1], points[3]) if points else (None, None, None)
            figs["fig6_probability_surfaces"] = ("Fig. 6 — probability of PR, new patient marked",
                                                 figure_probability_surfaces(models, cad, d, y, marks))
        for stem, (title, f) in figs.items():
            paths = save_figure(f, tmp / "figures", stem, ("png", "svg"), dpi)
            figure_png[stem] = (title, paths["png"].read_bytes())
    (tmp / "cohort_results.json").write_text(json.dumps(data, indent=1, allow_nan=False), encoding="utf-8")
    (tmp / "cohort_report.html").write_text(_report_html(data, figure_png), encoding="utf-8")
    writer.commit()
    return data


def _report_html(data: dict, figure_png: dict) -> str:
    from .report import CSS, _img, _predictions_html

    parts = ["<h1>LuResponse — response probability of a new patient</h1>",
             f'<p class="small">Models: <code>{html.escape(data["models_source"])}</code> (saved by an earlier '
             f"cohort analysis, not refitted) · LuResponseLib {__version__} · "
             f"{_dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}</p>"]
    rows = [[html.escape(n), html.escape(m["kind"]), html.escape(", ".join(m["features"])), str(m["training"]["n"]),
             str(m["training"]["n_responders"]), str(m["bootstrap_resamples"])] for n, m in data["models"].items()]
    parts.append("<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in (
        "Model", "Kind", "Predictors", "Patients", "Responders", "Bootstrap resamples")) + "</tr></thead><tbody>" +
        "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows) + "</tbody></table>")
    parts.append(_predictions_html(data["predictions"]))
    if not data["cohort_points_source"]:
        parts.append('<p class="small">The cohort table is not in the models\' folder: Fig. 6 shows the models\' '
                     "training range instead of the patients, and Fig. 5 is not drawn.</p>")
    for stem in ("fig5_cutoff_scatter", "fig6_probability_surfaces"):
        if stem in figure_png:
            parts.append(_img(figure_png[stem][1], figure_png[stem][0]))
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"/>'
            f"<title>LuResponse prediction</title><style>{CSS}</style></head><body>\n{body}\n</body></html>\n")
