"""Exception types shared by the library.

Every error names the file and the field it concerns so a user can fix the input;
:func:`error_message` is the one text a user sees for an error (command line and batch).
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


def shorten_text(text: str, limit: int = 160) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit // 2] + " ... " + text[-limit // 3:]


def error_message(exc: BaseException) -> str:
    """The one message a user sees for ``exc``: names the file (shortened when absurdly long)
    and, for input errors, the field; OS errors without Python's ``[Errno N]`` noise."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f" {shorten_text(exc.filename)}" if exc.filename is not None else ""
        other = f" -> {shorten_text(exc.filename2)}" if getattr(exc, "filename2", None) else ""
        return f"{exc.strerror}:{where}{other}"
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 20000 else text[:20000] + " ... (message shortened)"
