"""The validated input tables of LuResponse as objects (numpy columns by name).

* :class:`CohortTable` — one row per patient (architecture contract 3)::

      patient_id,cumulative_tumor_dose_Gy,delta_ad_per_aa_percent,response[,optional columns]

  ``response`` is the best overall RECIST 1.1 response, one of CR, PR, SD, PD (CR and PR count
  as responders).  Optional columns with a known meaning and range are listed in
  :data:`.readers.OPTIONAL_COLUMNS`; any other column is kept, typed as numbers if every value
  parses as a number and as text otherwise.
* :class:`CycleTable` — per-VOI, per-cycle doses of many patients (contract-2
  ``voi_cycle_doses.csv`` rows) and the seed-001 lesion indices derived from it.
* :class:`LesionTable` — one row per lesion (dose, volume change, total uptake).

Each has a ``*_from_rows`` constructor (validation through :func:`.readers.validate_rows`, one
error listing every problem) and a ``load_*`` reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from .errors import CohortTableError, TableProblem
from .readers import (
    CAD,
    COHORT_COLUMNS,
    CYCLE_COLUMNS,
    DELTA,
    LESION_COLUMNS,
    REQUIRED_COLUMNS,
    RESPONDER_CODES,
    RESPONSE_CODES,
    _sorted,
    columns_to_csv_text,
    read_csv_rows,
    validate_rows,
    write_columns_csv,
)

# --------------------------------------------------------------------------------------------
# cohort table
# --------------------------------------------------------------------------------------------

@dataclass
class CohortTable:
    """A validated cohort table: one entry per patient.

    ``columns`` maps column name to a numpy array (float64 with NaN for numeric columns, object
    arrays with ``None`` for text).  ``missing`` lists every missing value (line, column,
    patient).  Use :meth:`complete` to get the rows an analysis can use.
    """

    columns: dict[str, np.ndarray]
    source: str = "<memory>"
    lines: list[int | None] = field(default_factory=list)
    missing: list[TableProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    # -- basic access -------------------------------------------------------------------------
    @property
    def n_patients(self) -> int:
        return len(self.columns["patient_id"])

    def __len__(self) -> int:
        return self.n_patients

    @property
    def patient_ids(self) -> np.ndarray:
        return self.columns["patient_id"]

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)

    def has(self, name: str) -> bool:
        """True if the column exists and has at least one non-missing value."""
        if name not in self.columns:
            return False
        a = self.columns[name]
        if a.dtype == object:
            return any(v is not None for v in a)
        return bool(np.any(~np.isnan(a)))

    def column(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise KeyError(f"column '{name}' is not in the cohort table {self.source} "
                           f"(columns: {', '.join(self.columns)})")
        return self.columns[name]

    def is_present(self, name: str) -> np.ndarray:
        """Boolean mask of rows where column ``name`` has a value."""
        a = self.column(name)
        if a.dtype == object:
            return np.array([v is not None for v in a], dtype=bool)
        return ~np.isnan(a)

    def complete(self, *names: str) -> np.ndarray:
        """Boolean mask of rows with a value in every one of ``names``."""
        mask = np.ones(self.n_patients, dtype=bool)
        for n in names:
            mask &= self.is_present(n)
        return mask

    @property
    def cumulative_tumor_dose_Gy(self) -> np.ndarray:
        return self.column(CAD)

    @property
    def delta_ad_per_aa_percent(self) -> np.ndarray:
        return self.column(DELTA)

    @property
    def response(self) -> np.ndarray:
        return self.column("response")

    @property
    def responder(self) -> np.ndarray:
        """True for CR or PR (False also where the response is missing: combine with
        ``complete('response')``)."""
        return np.array([r in RESPONDER_CODES for r in self.response], dtype=bool)

    def response_counts(self) -> dict[str, int]:
        r = list(self.response)
        counts = {c: r.count(c) for c in RESPONSE_CODES}
        counts["missing"] = r.count(None)
        return counts

    def subset(self, mask: np.ndarray) -> "CohortTable":
        mask = np.asarray(mask)
        idx = np.flatnonzero(mask) if mask.dtype == bool else mask
        return CohortTable({k: v[idx] for k, v in self.columns.items()}, self.source,
                           [self.lines[i] for i in idx] if self.lines else [],
                           [m for m in self.missing if m.patient_id in set(self.patient_ids[idx])],
                           list(self.notes))

    def excluded_ids(self, *names: str) -> list[str]:
        """Patients without a value in one of ``names`` (for the 'left out' line of a result)."""
        return [str(p) for p in self.patient_ids[~self.complete(*names)]]

    def missing_summary(self) -> list[str]:
        """One line per column with missing values, naming the patients."""
        by_col: dict[str, list[str]] = {}
        for m in self.missing:
            by_col.setdefault(m.column or "?", []).append(
                f"{m.patient_id or '?'}" + (f" (line {m.line})" if m.line is not None else ""))
        return [f"{col}: missing for {len(v)} patient(s): {', '.join(v)}" for col, v in by_col.items()]

    # -- conversion -------------------------------------------------------------------------
    def to_rows(self) -> list[dict[str, object]]:
        """Rows as dicts of plain Python values (None for missing)."""
        out = []
        for i in range(self.n_patients):
            row = {}
            for k, a in self.columns.items():
                v = a[i]
                if a.dtype != object:
                    v = None if np.isnan(v) else float(v)
                    if v is not None and k.endswith("_event"):
                        v = int(v)
                row[k] = v
            out.append(row)
        return out

    def to_csv_text(self) -> str:
        return columns_to_csv_text(self.columns)

    def write_csv(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_csv_text(), encoding="utf-8")
        return path


def cohort_table_from_rows(
    rows: Sequence[Mapping[str, object]],
    source: str = "<memory>",
    header: Sequence[str] | None = None,
    lines: Sequence[int | None] | None = None,
) -> CohortTable:
    """Validate rows (dicts column -> value; strings or numbers) into a :class:`CohortTable`.

    Raises :class:`CohortTableError` listing every problem.  ``lines`` gives the source line of
    each row for messages (default: row i is line i + 2, as in a CSV with one header line).
    """
    if header is None:
        header = []
        for r in rows:
            for k in r:
                if k not in header:
                    header.append(k)
        if not rows:
            header = list(REQUIRED_COLUMNS)
    if lines is None:
        lines = [i + 2 for i in range(len(rows))]
    columns, missing = validate_rows(header, rows, list(lines), COHORT_COLUMNS, source, "cohort table", "patient_id")
    if not rows:
        raise CohortTableError(source, [TableProblem(None, None, "the table has no patient rows")])
    # canonical column order: required first
    ordered = {k: columns[k] for k in REQUIRED_COLUMNS if k in columns}
    ordered.update({k: v for k, v in columns.items() if k not in ordered})
    table = CohortTable(ordered, source, list(lines), missing)
    table.notes.extend(table.missing_summary())
    return table


def load_cohort_table(path: str | Path) -> CohortTable:
    """Read and validate a cohort CSV (contract 3).  One :class:`CohortTableError` lists every
    bad row and column; missing values are kept and reported in ``table.missing``."""
    notes: list[str] = []
    header, rows, lines = read_csv_rows(path, notes)
    table = cohort_table_from_rows(rows, str(path), header, lines)
    table.notes[:0] = notes
    return table


# --------------------------------------------------------------------------------------------
# per-cycle VOI table (contract 2 voi_cycle_doses.csv) and lesion table
# --------------------------------------------------------------------------------------------

@dataclass
class _ColumnTable:
    """Columns by name (numpy arrays), where they came from, and the rows with missing values."""

    columns: dict[str, np.ndarray]
    source: str = "<memory>"
    missing: list[TableProblem] = field(default_factory=list)
    _kind = "table"

    def __len__(self) -> int:
        return len(self.columns["patient_id"])

    def column(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise KeyError(f"column '{name}' is not in the {self._kind} {self.source}")
        return self.columns[name]

    def has(self, name: str) -> bool:
        """True if the column exists and has at least one non-missing value (numbers or text)."""
        if name not in self.columns:
            return False
        a = self.columns[name]
        if a.dtype == object:
            return any(v is not None for v in a)
        return bool(np.any(~np.isnan(a)))

    def write_csv(self, path: str | Path) -> Path:
        return write_columns_csv(self.columns, path)


@dataclass
class CycleTable(_ColumnTable):
    """Per-VOI, per-cycle doses of many patients (rows of contract-2 ``voi_cycle_doses.csv``)."""

    _kind = "per-cycle table"


def cycle_table_from_rows(rows: Sequence[Mapping[str, object]], source: str = "<memory>",
                          header: Sequence[str] | None = None,
                          lines: Sequence[int | None] | None = None) -> CycleTable:
    """Validate per-cycle VOI rows (one error listing every problem)."""
    if header is None:
        header = list(dict.fromkeys(k for r in rows for k in r)) or [s.name for s in CYCLE_COLUMNS if s.required]
    if lines is None:
        lines = [i + 2 for i in range(len(rows))]
    problems: list[TableProblem] = []
    columns, missing = validate_rows(header, rows, list(lines), CYCLE_COLUMNS, source, "per-cycle table",
                                      "patient_id", unique_ids=False, collect=problems)
    seen: dict[tuple, int | None] = {}
    for i in range(len(rows)):
        key = tuple(columns[k][i] if k in columns else None for k in ("patient_id", "voi", "cycle"))
        if None in key or any(isinstance(v, float) and np.isnan(v) for v in key):
            continue
        if key in seen:
            problems.append(TableProblem(lines[i], "cycle", f"VOI '{key[1]}' cycle {key[2]:g} appears twice",
                                         str(key[0])))
        seen[key] = lines[i]
    if problems:
        raise CohortTableError(source, _sorted(problems, header), "per-cycle table")
    columns["kind"] = np.array([None if k is None else str(k).lower() for k in columns["kind"]], dtype=object)
    return CycleTable(columns, source, missing)


def load_cycle_table(paths: str | Path | Iterable[str | Path]) -> CycleTable:
    """Read one or more ``voi_cycle_doses.csv`` files (contract 2) into one :class:`CycleTable`.

    Every problem in every file is reported in one error."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    rows: list[dict] = []
    lines: list[int | None] = []
    header: list[str] = []
    problems: list[TableProblem] = []
    sources = []
    for p in paths:
        sources.append(str(p))
        try:
            h, r, ln = read_csv_rows(p)
        except CohortTableError as e:
            problems += [TableProblem(q.line, q.column, f"{Path(p).name}: {q.message}", q.patient_id) for q in e.problems]
            continue
        header += [c for c in h if c not in header]
        rows += r
        lines += ln
    if problems:
        raise CohortTableError(", ".join(sources), problems, "per-cycle table")
    return cycle_table_from_rows(rows, ", ".join(sources) if len(sources) < 4 else f"{len(sources)} files",
                                 header, lines)


@dataclass
class LesionTable(_ColumnTable):
    """One row per lesion: dose, volume change and/or total uptake before and after therapy."""

    _kind = "lesion table"


def lesion_table_from_rows(rows: Sequence[Mapping[str, object]], source: str = "<memory>",
                           header: Sequence[str] | None = None,
                           lines: Sequence[int | None] | None = None) -> LesionTable:
    """Validate lesion rows (one error listing every problem, incl. duplicate lesions)."""
    if header is None:
        header = list(dict.fromkeys(k for r in rows for k in r)) or ["patient_id", "lesion_id"]
    if lines is None:
        lines = [i + 2 for i in range(len(rows))]
    problems: list[TableProblem] = []
    columns, missing = validate_rows(header, rows, list(lines), LESION_COLUMNS, source, "lesion table",
                                      "patient_id", unique_ids=False, collect=problems)
    seen = set()
    for i in range(len(rows)):
        key = tuple(columns[k][i] if k in columns else None for k in ("patient_id", "lesion_id"))
        if None not in key:
            if key in seen:
                problems.append(TableProblem(lines[i], "lesion_id", f"duplicate lesion '{key[1]}'", str(key[0])))
            seen.add(key)
        if "total_uptake_baseline" in columns and "total_uptake_followup" in columns:
            b, f = columns["total_uptake_baseline"][i], columns["total_uptake_followup"][i]
            if (np.isnan(b) or b == 0) and (np.isnan(f) or f == 0):
                problems.append(TableProblem(lines[i], "total_uptake_baseline",
                                             "no uptake at baseline nor at follow-up", str(key[0])))
    if problems:
        raise CohortTableError(source, _sorted(problems, header), "lesion table")
    return LesionTable(columns, source, missing)


def load_lesion_table(path: str | Path) -> LesionTable:
    """Read and validate a per-lesion CSV (columns in :data:`LESION_COLUMNS`)."""
    header, rows, lines = read_csv_rows(path)
    return lesion_table_from_rows(rows, str(path), header, lines)


def patient_lesion_dose_metrics(patient_id: np.ndarray, lesion_ad_Gy: np.ndarray) -> dict[str, dict[str, float]]:
    """Seed 001 dosimetric indices per patient: mean, min and max total lesion AD (Gy) and the
    number of lesions with a dose."""
    out: dict[str, dict[str, float]] = {}
    for p in dict.fromkeys(patient_id):
        d = lesion_ad_Gy[(patient_id == p) & ~np.isnan(lesion_ad_Gy)]
        if d.size:
            out[str(p)] = {"mean_lesion_ad_Gy": float(d.mean()), "min_lesion_ad_Gy": float(d.min()),
                           "max_lesion_ad_Gy": float(d.max()), "n_lesions": float(d.size)}
    return out


def cycle_table_lesion_metrics(cycles: CycleTable) -> dict[str, dict[str, float]]:
    """Per patient: total AD per tumour VOI (sum over cycles), then mean/min/max over tumours,
    and the cumulative administered activity (GBq). Tumours flagged ``excluded`` (below the
    minimum volume, contract-2 column) are left out, as in the patient's cAD."""
    pid = cycles.column("patient_id")
    kind = cycles.column("kind")
    voi = cycles.column("voi")
    ad = cycles.column("absorbed_dose_Gy")
    out: dict[str, dict[str, float]] = {}
    tumour = np.array([k == "tumor" or k == "tumour" for k in kind])
    if "excluded" in cycles.columns:
        tumour &= ~np.array([str(x).strip().lower() in ("true", "1", "yes", "1.0") for x in cycles.column("excluded")])
    for p in dict.fromkeys(pid):
        sel = (pid == p) & tumour
        totals = [float(np.nansum(ad[sel & (voi == v)])) for v in dict.fromkeys(voi[sel])]
        entry: dict[str, float] = {}
        if totals:
            entry.update(mean_lesion_ad_Gy=float(np.mean(totals)), min_lesion_ad_Gy=float(np.min(totals)),
                         max_lesion_ad_Gy=float(np.max(totals)), n_lesions=float(len(totals)))
        if "administered_activity_MBq" in cycles.columns:
            aa = cycles.column("administered_activity_MBq")
            cyc = cycles.column("cycle")
            per_cycle = {}
            for c, a in zip(cyc[pid == p], aa[pid == p]):
                if not np.isnan(a):
                    per_cycle.setdefault(c, a)
            if per_cycle:
                entry["cumulative_aa_GBq"] = float(sum(per_cycle.values()) / 1000.0)
        if entry:
            out[str(p)] = entry
    return out
