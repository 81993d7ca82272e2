"""Exception types of LuResponseLib.

Input errors derive from :class:`ValueError` so that the ``lu-dosimetry`` command line prints
them as one clear message.  A table error lists *every* problem found (row, column, message),
not only the first one, so a user can fix the file in one go.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TableProblem:
    """One problem in an input table.

    ``line`` is the 1-based line number in the file (the header is line 1, the first data row
    is line 2); ``None`` for problems of the header or of the file as a whole.
    """

    line: int | None
    column: str | None
    message: str
    patient_id: str | None = None

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}" + (f" (patient {self.patient_id})" if self.patient_id else ""))
        elif self.patient_id:
            where.append(f"patient {self.patient_id}")
        else:
            where.append("header")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        return ", ".join(where) + ": " + self.message


class LuResponseError(Exception):
    """Base class of LuResponseLib errors."""


class CohortTableError(LuResponseError, ValueError):
    """An input table (cohort, clinical, per-cycle or lesion table) has one or more problems.

    ``problems`` holds every :class:`TableProblem` found.
    """

    def __init__(self, source: str, problems: list[TableProblem], kind: str = "cohort table"):
        self.source = str(source)
        self.problems = list(problems)
        self.kind = kind
        lines = [f"{len(self.problems)} problem(s) in {kind} {self.source}:"]
        lines += [f"  - {text}" for text in summarise_problems(self.problems)]
        super().__init__("\n".join(lines))


def summarise_problems(problems: list[TableProblem], max_each: int = 3) -> list[str]:
    """One line per problem, except that a kind of problem (same column, same message apart from
    the quoted value) occurring more than ``max_each`` times becomes one line with its count and
    the first rows — 722 unparsable numbers are one line, not 722."""
    import re

    groups: dict[tuple, list[TableProblem]] = {}
    for p in problems:
        key = (p.column, re.sub(r"'[^']*'", "'…'", re.sub(r"-?\d+(\.\d+)?(e[+-]?\d+)?", "#", p.message)))
        groups.setdefault(key, []).append(p)
    out = []
    for (column, _), members in groups.items():
        if len(members) <= max_each:
            out += [str(p) for p in members]
            continue
        first = members[0]
        where = ", ".join(f"line {p.line}" for p in members[:max_each] if p.line is not None)
        col = f"column '{column}': " if column is not None else ""
        hint = ""
        if any(re.search(r"'[+-]?\d+,\d+'", p.message) for p in members):
            hint = " — numbers written with a decimal comma? Save the file with ';' as separator or use decimal points"
        out.append(f"{col}{len(members)} rows like: {first.message} (first: {where or 'see file'}){hint}")
    return out


class AnalysisError(LuResponseError, ValueError):
    """An analysis cannot be run on the data given (too few patients, a single class, ...)."""


class ExtrapolationWarning(UserWarning):
    """A prediction was requested outside the range of the data the model was trained on."""
