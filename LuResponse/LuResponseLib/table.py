"""The input tables of LuResponse — compatibility module that re-exports them.

Since the split of this module (issue 9) the code lives in:

* :mod:`.readers`  — CSV reading, column specifications (:data:`COHORT_COLUMNS`,
  :data:`CYCLE_COLUMNS`, :data:`LESION_COLUMNS`), typing and validation;
* :mod:`.cohort`   — the table objects :class:`CohortTable`, :class:`CycleTable`,
  :class:`LesionTable`, their ``*_from_rows`` constructors and ``load_*`` readers;
* :mod:`.assemble` — :func:`assemble_cohort_table` from per-patient result folders.

Every name that was importable from ``LuResponseLib.table`` still is.
"""

from __future__ import annotations

from .assemble import SUMMARY_KEYS, AssembledCohort, assemble_cohort_table
from .cohort import (
                     CohortTable,
                     CycleTable,
                     LesionTable,
                     _ColumnTable,  # noqa: F401  (private names kept for old imports)
                     cohort_table_from_rows,
                     cycle_table_from_rows,
                     cycle_table_lesion_metrics,
                     lesion_table_from_rows,
                     load_cohort_table,
                     load_cycle_table,
                     load_lesion_table,
                     patient_lesion_dose_metrics,
)
from .errors import CohortTableError, TableProblem
from .readers import (  # noqa: F401
                     CAD,
                     COHORT_COLUMNS,
                     CYCLE_COLUMNS,
                     DELTA,
                     LESION_COLUMNS,
                     MISSING_TOKENS,
                     OPTIONAL_COLUMNS,
                     REQUIRED_COLUMNS,
                     RESPONDER_CODES,
                     RESPONSE_CODES,
                     ColumnSpec,
                     _cell,
                     _is_missing,
                     _parse_event,
                     _parse_number,
                     _sorted,
                     _validate_rows,
                     columns_to_csv_text,
                     read_csv_rows,
                     validate_rows,
                     write_columns_csv,
)

__all__ = [
    "SUMMARY_KEYS", "AssembledCohort", "assemble_cohort_table", "CohortTable", "CycleTable", "LesionTable",
    "cohort_table_from_rows", "cycle_table_from_rows", "cycle_table_lesion_metrics", "lesion_table_from_rows",
    "load_cohort_table", "load_cycle_table", "load_lesion_table", "patient_lesion_dose_metrics", "CAD",
    "COHORT_COLUMNS", "CYCLE_COLUMNS", "DELTA", "LESION_COLUMNS", "MISSING_TOKENS", "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS", "RESPONDER_CODES", "RESPONSE_CODES", "ColumnSpec", "columns_to_csv_text", "read_csv_rows",
    "validate_rows", "write_columns_csv", "CohortTableError", "TableProblem",
]
