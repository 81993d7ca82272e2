"""The cohort table (architecture contract 3) and the other input tables of LuResponse.

Cohort table: CSV, one row per patient::

    patient_id,cumulative_tumor_dose_Gy,delta_ad_per_aa_percent,response[,optional columns]

``response`` is the best overall RECIST 1.1 response, one of CR, PR, SD, PD (CR and PR count as
responders).  Optional columns with a known meaning (and checked range) are listed in
:data:`OPTIONAL_COLUMNS`; any other column is kept, typed as numbers if every value parses as a
number and as text otherwise.

Validation collects *every* problem (unknown response codes, missing required columns, duplicate
patients, non-numeric or out-of-range values) and raises one :class:`CohortTableError` listing
each by line, patient and column.  Empty cells (or ``NA``, ``NaN``, ``n/a``, ``.``) are *missing
values*: they are not errors, they are kept as NaN / ``None``, reported in
:attr:`CohortTable.missing`, and each analysis lists the patients it had to leave out.

A table can also be assembled from a folder of per-patient result folders (contract 2:
``summary.json`` and ``voi_cycle_doses.csv``) plus a clinical CSV joined on ``patient_id``
(:func:`assemble_cohort_table`).
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from .errors import CohortTableError, TableProblem

RESPONSE_CODES = ("CR", "PR", "SD", "PD")
RESPONDER_CODES = ("CR", "PR")
MISSING_TOKENS = {"", "na", "nan", "n/a", "none", "null", ".", "-", "missing"}

CAD = "cumulative_tumor_dose_Gy"
DELTA = "delta_ad_per_aa_percent"
REQUIRED_COLUMNS = ("patient_id", CAD, DELTA, "response")


@dataclass(frozen=True)
class ColumnSpec:
    """Type and allowed range of one column.

    kind: ``id`` (non-empty text), ``number``, ``integer``, ``event`` (0/1), ``category`` (text),
    ``response`` (CR/PR/SD/PD).
    """

    name: str
    kind: str
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    description: str = ""


COHORT_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("patient_id", "id", True, description="patient identifier (unique)"),
    ColumnSpec(CAD, "number", True, 0.0, None, "cumulative tumour absorbed dose cAD (Gy), patient mean over tumours"),
    ColumnSpec(DELTA, "number", True, -100.0, None, "change of tumour AD/AA, last cycle vs cycle 1 (%)"),
    ColumnSpec("response", "response", True, description="best overall RECIST 1.1 response: CR, PR, SD, PD"),
    ColumnSpec("sex", "category", description="sex (e.g. M/F)"),
    ColumnSpec("primary_site", "category", description="primary tumour site"),
    ColumnSpec("grade", "category", description="tumour grade"),
    ColumnSpec("pfs_months", "number", False, 0.0, None, "progression-free survival time (months)"),
    ColumnSpec("pfs_event", "event", description="1 = progression or death, 0 = censored"),
    ColumnSpec("os_months", "number", False, 0.0, None, "overall survival time (months)"),
    ColumnSpec("os_event", "event", description="1 = death, 0 = censored"),
    ColumnSpec("kidney_cumulative_dose_Gy", "number", False, 0.0, None, "cumulative kidney absorbed dose (Gy)"),
    ColumnSpec("kidney_bed_Gy", "number", False, 0.0, None, "kidney biologically effective dose (Gy)"),
    ColumnSpec("best_shrinkage_percent", "number", False, -100.0, None,
               "best % change from baseline of the sum of target-lesion diameters (negative = shrinkage)"),
    ColumnSpec("mean_lesion_ad_Gy", "number", False, 0.0, None, "mean over lesions of the total lesion AD (Gy)"),
    ColumnSpec("min_lesion_ad_Gy", "number", False, 0.0, None, "lowest total lesion AD of the patient (Gy)"),
    ColumnSpec("max_lesion_ad_Gy", "number", False, 0.0, None, "highest total lesion AD of the patient (Gy)"),
    ColumnSpec("n_lesions", "integer", False, 0.0, None, "number of tumours in the dosimetry"),
    ColumnSpec("cumulative_aa_GBq", "number", False, 0.0, None, "cumulative administered activity (GBq)"),
    ColumnSpec("age_years", "number", False, 0.0, 130.0, "age (years)"),
)
OPTIONAL_COLUMNS = tuple(s.name for s in COHORT_COLUMNS if not s.required)


# --------------------------------------------------------------------------------------------
# generic CSV reading and validation
# --------------------------------------------------------------------------------------------

def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in MISSING_TOKENS


def read_csv_rows(path: str | Path) -> tuple[list[str], list[dict[str, str]], list[int]]:
    """Read a CSV file: (header, rows as dicts of stripped strings, 1-based line numbers).

    Accepts a UTF-8 byte-order mark and ``;`` as delimiter when the header has no comma.  Blank
    lines are skipped.  A row with more cells than the header raises a table error listing it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table not found: {path}")
    text = path.read_text(encoding="utf-8-sig")
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = ";" if ("," not in first and ";" in first) else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header: list[str] | None = None
    rows: list[dict[str, str]] = []
    lines: list[int] = []
    problems: list[TableProblem] = []
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        if header is None:
            header = [c.strip() for c in cells]
            continue
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header):]):
            problems.append(TableProblem(reader.line_num, None,
                                         f"{len(cells)} cells but the header has {len(header)} columns"))
        cells = list(cells) + [""] * (len(header) - len(cells))
        rows.append({h: cells[i].strip() for i, h in enumerate(header)})
        lines.append(reader.line_num)
    if header is None:
        raise CohortTableError(str(path), [TableProblem(None, None, "the file is empty (no header line)")])
    if problems:
        raise CohortTableError(str(path), problems)
    return header, rows, lines


def _parse_number(text) -> float:
    if isinstance(text, (int, float, np.integer, np.floating)) and not isinstance(text, bool):
        return float(text)
    return float(str(text).strip())


def _parse_event(text) -> float:
    if isinstance(text, bool):
        return float(text)
    s = str(text).strip().lower()
    if s in ("1", "1.0", "true", "yes", "y", "event"):
        return 1.0
    if s in ("0", "0.0", "false", "no", "n", "censored"):
        return 0.0
    raise ValueError(s)


def _validate_rows(
    header: Sequence[str],
    rows: Sequence[Mapping[str, object]],
    lines: Sequence[int | None],
    specs: Sequence[ColumnSpec],
    source: str,
    kind: str,
    id_column: str | None,
    unique_ids: bool = True,
    collect: list[TableProblem] | None = None,
) -> tuple[dict[str, np.ndarray], list[TableProblem]]:
    """Type every column, collect every problem (raised together) and every missing value.

    With ``collect`` given, problems are appended to it instead of raised (the caller adds its
    own checks and raises once)."""
    problems: list[TableProblem] = []
    missing: list[TableProblem] = []
    spec_by_name = {s.name: s for s in specs}
    header = [h for h in header if h]
    dupl_cols = sorted({h for h in header if header.count(h) > 1})
    for h in dupl_cols:
        problems.append(TableProblem(None, h, "column appears more than once in the header"))
    for s in specs:
        if s.required and s.name not in header:
            hint = difflib.get_close_matches(s.name, header, n=1, cutoff=0.6)
            extra = f" (found '{hint[0]}': check the spelling)" if hint else ""
            problems.append(TableProblem(None, s.name, f"required column is missing{extra}"))

    def pid(i: int) -> str | None:
        if id_column is None:
            return None
        v = rows[i].get(id_column)
        return None if _is_missing(v) else str(v).strip()

    columns: dict[str, np.ndarray] = {}
    for name in header:
        if name in dupl_cols and name in columns:
            continue
        spec = spec_by_name.get(name)
        raw = [r.get(name) for r in rows]
        if spec is None:  # unknown column: numbers if every present value parses, else text
            try:
                vals = [np.nan if _is_missing(v) else _parse_number(v) for v in raw]
                arr = np.asarray(vals, dtype=float)
                if not np.all(np.isfinite(arr[~np.isnan(arr)])):
                    raise ValueError
                columns[name] = arr
            except (TypeError, ValueError):
                columns[name] = np.array([None if _is_missing(v) else str(v).strip() for v in raw], dtype=object)
            continue
        if spec.kind in ("number", "integer", "event"):
            arr = np.full(len(rows), np.nan)
            for i, v in enumerate(raw):
                if _is_missing(v):
                    missing.append(TableProblem(lines[i], name, "missing value", pid(i)))
                    continue
                try:
                    x = _parse_event(v) if spec.kind == "event" else _parse_number(v)
                except (TypeError, ValueError):
                    expected = "0 or 1" if spec.kind == "event" else "a number"
                    problems.append(TableProblem(lines[i], name, f"'{v}' is not {expected}", pid(i)))
                    continue
                if not math.isfinite(x):
                    problems.append(TableProblem(lines[i], name, f"'{v}' is not a finite number", pid(i)))
                    continue
                if spec.kind == "integer" and x != round(x):
                    problems.append(TableProblem(lines[i], name, f"'{v}' is not a whole number", pid(i)))
                    continue
                if spec.minimum is not None and x < spec.minimum:
                    problems.append(TableProblem(lines[i], name, f"{x:g} is below the minimum {spec.minimum:g}", pid(i)))
                    continue
                if spec.maximum is not None and x > spec.maximum:
                    problems.append(TableProblem(lines[i], name, f"{x:g} is above the maximum {spec.maximum:g}", pid(i)))
                    continue
                arr[i] = x
            columns[name] = arr
        elif spec.kind == "response":
            arr = np.empty(len(rows), dtype=object)
            for i, v in enumerate(raw):
                if _is_missing(v):
                    arr[i] = None
                    missing.append(TableProblem(lines[i], name, "missing value", pid(i)))
                    continue
                code = str(v).strip().upper()
                if code not in RESPONSE_CODES:
                    problems.append(TableProblem(lines[i], name,
                                                 f"unknown response code '{v}' (allowed: {', '.join(RESPONSE_CODES)})", pid(i)))
                    arr[i] = None
                else:
                    arr[i] = code
            columns[name] = arr
        elif spec.kind == "id":
            arr = np.empty(len(rows), dtype=object)
            for i, v in enumerate(raw):
                if _is_missing(v):
                    problems.append(TableProblem(lines[i], name, "empty identifier"))
                    arr[i] = None
                else:
                    arr[i] = str(v).strip()
            columns[name] = arr
        else:  # category / text
            arr = np.empty(len(rows), dtype=object)
            for i, v in enumerate(raw):
                arr[i] = None if _is_missing(v) else str(v).strip()
            columns[name] = arr

    if id_column is not None and unique_ids and id_column in columns:
        seen: dict[str, int | None] = {}
        for i, v in enumerate(columns[id_column]):
            if v is None:
                continue
            if v in seen:
                first = seen[v]
                where = f"line {first}" if first is not None else "an earlier row"
                problems.append(TableProblem(lines[i], id_column, f"duplicate patient '{v}' (also on {where})", v))
            else:
                seen[v] = lines[i]

    if collect is not None:
        collect.extend(problems)
    elif problems:
        raise CohortTableError(source, _sorted(problems, header), kind)
    return columns, missing


def _sorted(problems: list[TableProblem], header: Sequence[str]) -> list[TableProblem]:
    header = list(header)
    return sorted(problems, key=lambda p: (-1 if p.line is None else p.line,
                                           header.index(p.column) if p.column in header else -1))


def _cell(name: str, v) -> str:
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return ""
        if name.endswith("_event") or name in ("cycle", "n_lesions"):
            return str(int(v))
        return f"{float(v):.10g}"
    return str(v)


def columns_to_csv_text(columns: Mapping[str, np.ndarray]) -> str:
    """CSV text of a column dict (missing values as empty cells, numbers with 10 digits)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    names = list(columns)
    w.writerow(names)
    n = len(next(iter(columns.values()))) if columns else 0
    for i in range(n):
        w.writerow([_cell(k, columns[k][i]) for k in names])
    return buf.getvalue()


def write_columns_csv(columns: Mapping[str, np.ndarray], path: str | Path) -> Path:
    path = Path(path)
    path.write_text(columns_to_csv_text(columns), encoding="utf-8")
    return path


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
    columns, missing = _validate_rows(header, rows, list(lines), COHORT_COLUMNS, source, "cohort table", "patient_id")
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
    header, rows, lines = read_csv_rows(path)
    return cohort_table_from_rows(rows, str(path), header, lines)


# --------------------------------------------------------------------------------------------
# per-cycle VOI table (contract 2 voi_cycle_doses.csv) and lesion table
# --------------------------------------------------------------------------------------------

CYCLE_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("patient_id", "id", True),
    ColumnSpec("cycle", "integer", True, 1.0),
    ColumnSpec("voi", "id", True),
    ColumnSpec("kind", "category", True),
    ColumnSpec("volume_ml", "number", False, 0.0),
    ColumnSpec("administered_activity_MBq", "number", False, 0.0),
    ColumnSpec("absorbed_dose_Gy", "number", True, 0.0),
    ColumnSpec("ad_per_aa_Gy_per_GBq", "number", True, 0.0),
    ColumnSpec("effective_half_life_h", "number", False, 0.0),
)


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
        return name in self.columns and bool(np.any(~np.isnan(self.columns[name])))

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
    columns, missing = _validate_rows(header, rows, list(lines), CYCLE_COLUMNS, source, "per-cycle table",
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


LESION_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("patient_id", "id", True),
    ColumnSpec("lesion_id", "id", True),
    ColumnSpec("lesion_ad_Gy", "number", False, 0.0, None, "total absorbed dose of the lesion over the course (Gy)"),
    ColumnSpec("delta_volume_percent", "number", False, -100.0, None,
               "lesion volume change, follow-up vs baseline CT (%), seed 001 DeltaV%"),
    ColumnSpec("total_uptake_baseline", "number", False, 0.0, None,
               "lesion total uptake at baseline (e.g. SUVtotal); empty or 0 = new lesion"),
    ColumnSpec("total_uptake_followup", "number", False, 0.0, None,
               "lesion total uptake at follow-up (same unit); empty or 0 = disappeared"),
)


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
    columns, missing = _validate_rows(header, rows, list(lines), LESION_COLUMNS, source, "lesion table",
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


# --------------------------------------------------------------------------------------------
# assembling a cohort from per-patient result folders
# --------------------------------------------------------------------------------------------

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
    summaries = sorted(results_dir.rglob("summary.json"))
    problems: list[TableProblem] = []
    notes: list[str] = []
    dose_rows: dict[str, dict[str, object]] = {}
    cycle_files: list[Path] = []
    for sj in summaries:
        rel = sj.relative_to(results_dir)
        try:
            s = json.loads(sj.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            problems.append(TableProblem(None, None, f"{rel}: cannot read JSON ({e})"))
            continue
        p = s.get("patient_id")
        if _is_missing(p):
            problems.append(TableProblem(None, "patient_id", f"{rel}: no patient_id"))
            continue
        p = str(p).strip()
        if p in dose_rows:
            problems.append(TableProblem(None, "patient_id", f"{rel}: duplicate patient (already in "
                                                             f"{dose_rows[p]['_file']})", p))
            continue
        row: dict[str, object] = {"_file": str(rel)}
        for k in SUMMARY_KEYS:
            v = s.get(k)
            row[k] = "" if v is None else v
        for w in s.get("warnings", []) or []:
            notes.append(f"{p}: {w}")
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
