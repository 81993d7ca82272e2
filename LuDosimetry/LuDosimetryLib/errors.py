"""Exception types shared by the library.

Every error names the file and the field it concerns so a user can fix the input.
"""

from __future__ import annotations


class LuDosimetryError(Exception):
    """Base class of all errors raised on bad input or failed processing."""


class ManifestError(LuDosimetryError):
    """A study manifest has one or more problems; ``problems`` lists each (field, message)."""

    def __init__(self, manifest_path, problems: list[tuple[str, str]]):
        self.manifest_path = str(manifest_path)
        self.problems = list(problems)
        lines = [f"{len(self.problems)} problem(s) in study manifest {self.manifest_path}:"]
        lines += [f"  - {field}: {msg}" for field, msg in self.problems]
        super().__init__("\n".join(lines))


class InputDataError(LuDosimetryError):
    """An image or table cannot be used (missing file, NaN voxels, wrong units, geometry)."""


class FitError(LuDosimetryError):
    """A time-activity fit could not be made even with the fallbacks."""


class Cancelled(LuDosimetryError):
    """The user cancelled the run (progress dialog); nothing was written."""
