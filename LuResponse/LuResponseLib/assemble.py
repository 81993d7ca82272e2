"""Assembling the cohort table from per-patient result folders (contract 2) plus a clinical CSV.

:func:`assemble_cohort_table` reads every ``summary.json`` (and the ``voi_cycle_doses.csv`` next
to it) below a results folder and joins a clinical CSV on ``patient_id``; see its docstring.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .cohort import (
    CohortTable,
    CycleTable,
    cohort_table_from_rows,
    cycle_table_lesion_metrics,
    load_cycle_table,
)
from .errors import CohortTableError, TableProblem
from .readers import CAD, DELTA, REQUIRED_COLUMNS, _is_missing, read_csv_rows

SUMMARY_KEYS = (CAD, DELTA, "kidney_cumulative_dose_Gy", "kidney_bed_Gy")


@dataclass
class AssembledCohort:
    """Result of :func:`assemble_cohort_table`: the cohort table, the pooled per-cycle table
    (None if no folder had ``voi_cycle_doses.csv``) and notes on what was joined."""

    table: CohortTable
    cycles: CycleTable | None
    notes: list[str]


def assemble_cohort_table(results_dir: str | Path, clinical_csv: str | Path | None = None) -> AssembledCohort:
    """Build the cohort table from a folder of per-patient result folders plus a clinical CSV.

    Every ``summary.json`` below ``results_dir`` (contract 2) gives ``patient_id``,
    ``cumulative_tumor_dose_Gy``, ``delta_ad_per_aa_percent``, ``kidney_cumulative_dose_Gy``,
    ``kidney_bed_Gy``; the ``voi_cycle_doses.csv`` next to it adds the seed-001 lesion indices
    (mean/min/max total tumour AD), the number of tumours and the cumulative AA.  The clinical
    CSV (``patient_id`` plus ``response`` and any optional cohort column) is joined on
    ``patient_id``.  Dose values come from the summaries; a clinical column with the same name
    is overridden (with a note when values differ).  Patients found on one side only are kept
    with missing values and named in the notes.  Every problem in every file is reported in one
    :class:`CohortTableError`.
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"results folder not found: {results_dir}")
    from LuDosimetryLib.results.result_set import OutputFolderError, is_internal_path, settle_output_folder

    problems: list[TableProblem] = []
    # leftovers of killed runs (.lu-staging-*, old .results-*) are never read; a switch interrupted
    # after its commit point is completed first, so a folder holds exactly one result set
    summaries = sorted(p for p in results_dir.rglob("summary.json") if not is_internal_path(p, results_dir))
    for sj in list(summaries):
        try:
            if settle_output_folder(sj.parent, clean=False) == "busy":
                problems.append(TableProblem(None, None, f"{sj.parent.relative_to(results_dir)}: a run is still "
                                                         "writing results into this folder (lock file present)"))
        except (OutputFolderError, OSError) as e:
            problems.append(TableProblem(None, None, f"{sj.parent.relative_to(results_dir)}: {e}"))
    notes: list[str] = []
    dose_rows: dict[str, dict[str, object]] = {}
    cycle_files: list[Path] = []
    for sj in summaries:
        rel = sj.relative_to(results_dir)
        try:
            s = json.loads(sj.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as e:
            problems.append(TableProblem(None, None, f"{rel}: cannot read JSON ({type(e).__name__}: {e})"))
            continue
        if not isinstance(s, dict):
            problems.append(TableProblem(None, None, f"{rel}: not a summary.json (a JSON object is expected)"))
            continue
        p = s.get("patient_id")
        if isinstance(p, (dict, list, bool)) or (p is not None and not isinstance(p, (str, int))):
            problems.append(TableProblem(None, "patient_id", f"{rel}: patient_id must be text, got {type(p).__name__}"))
            continue
        if _is_missing(p):
            problems.append(TableProblem(None, "patient_id", f"{rel}: no patient_id"))
            continue
        p = str(p).strip()
        if p in dose_rows:
            problems.append(TableProblem(None, "patient_id", f"{rel}: duplicate patient (already in "
                                                             f"{dose_rows[p]['_file']})", p))
            continue
        row: dict[str, object] = {"_file": str(rel)}
        bad = [k for k in SUMMARY_KEYS if s.get(k) is not None and (isinstance(s.get(k), bool)
                                                                     or not isinstance(s.get(k), (int, float)))]
        if bad:
            problems.append(TableProblem(None, bad[0], f"{rel}: must be a number, got {s.get(bad[0])!r:.60}", p))
            continue
        for k in SUMMARY_KEYS:
            v = s.get(k)
            row[k] = "" if v is None else v
        ws = s.get("warnings", [])
        for w in ws if isinstance(ws, list) else [ws]:
            notes.append(f"{p}: {str(w)[:500]}")
        dose_rows[p] = row
        vc = sj.parent / "voi_cycle_doses.csv"
        if vc.is_file():
            cycle_files.append(vc)
    if not summaries:
        problems.append(TableProblem(None, None, f"no summary.json found below {results_dir}"))

    clinical: dict[str, dict[str, str]] = {}
    clinical_header: list[str] = []
    if clinical_csv is not None:
        try:
            clinical_header, crow, clines = read_csv_rows(clinical_csv)
        except CohortTableError as e:
            problems += [TableProblem(q.line, q.column, f"{Path(clinical_csv).name}: {q.message}", q.patient_id)
                         for q in e.problems]
            crow, clines = [], []
        if crow and "patient_id" not in clinical_header:
            problems.append(TableProblem(None, "patient_id", f"{Path(clinical_csv).name}: no patient_id column"))
        else:
            for r, ln in zip(crow, clines):
                p = r.get("patient_id", "").strip()
                if not p:
                    problems.append(TableProblem(ln, "patient_id", f"{Path(clinical_csv).name}: empty patient_id"))
                elif p in clinical:
                    problems.append(TableProblem(ln, "patient_id", f"{Path(clinical_csv).name}: duplicate patient", p))
                else:
                    clinical[p] = r

    cycles = None
    if cycle_files:
        try:
            cycles = load_cycle_table(cycle_files)
        except CohortTableError as e:
            problems += e.problems
    if problems:
        raise CohortTableError(str(results_dir) + (f" + {clinical_csv}" if clinical_csv else ""), problems,
                               "cohort assembly")

    lesion_metrics = cycle_table_lesion_metrics(cycles) if cycles is not None else {}
    only_dose = [p for p in dose_rows if clinical and p not in clinical]
    only_clin = [p for p in clinical if p not in dose_rows]
    if only_dose:
        notes.append(f"{len(only_dose)} patient(s) with results but no clinical row: {', '.join(only_dose)}")
    if only_clin:
        notes.append(f"{len(only_clin)} patient(s) in the clinical table without results: {', '.join(only_clin)}")
    if clinical_csv is None:
        notes.append("no clinical table given: response and clinical columns are missing")

    rows: list[dict[str, object]] = []
    for p in list(dose_rows) + only_clin:
        row: dict[str, object] = {"patient_id": p}
        c = clinical.get(p, {})
        for k, v in c.items():
            if k != "patient_id":
                row[k] = v
        d = dose_rows.get(p)
        if d is not None:
            for k in SUMMARY_KEYS:
                new = d[k]
                old = c.get(k)
                if old not in (None, "") and new not in (None, ""):
                    try:
                        if abs(float(old) - float(new)) > 1e-6 * max(1.0, abs(float(new))):
                            notes.append(f"{p}: {k} from the clinical table ({old}) replaced by the result "
                                         f"folder value ({new})")
                    except (TypeError, ValueError):
                        pass
                if new not in (None, "") or k not in row:
                    row[k] = new
        for k, v in lesion_metrics.get(p, {}).items():
            if _is_missing(row.get(k)):
                row[k] = v
        row.setdefault("response", "")
        rows.append(row)
    header = list(REQUIRED_COLUMNS)
    for r in rows:
        header += [k for k in r if k not in header]
    table = cohort_table_from_rows(rows, f"{results_dir}" + (f" + {clinical_csv}" if clinical_csv else ""),
                                   header, [None] * len(rows))
    table.notes = notes + table.notes
    return AssembledCohort(table, cycles, notes)
