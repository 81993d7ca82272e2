"""Progress reporting and cancellation shared by the long-running steps (pipeline, study registration).

``ProgressCallback(fraction 0..1, message)`` is what the CLI logs and the Slicer progress dialog shows;
``cancel()`` returning True makes the next check raise :class:`~LuDosimetryLib.errors.Cancelled`.
"""

from __future__ import annotations

import logging
from typing import Callable

from .errors import Cancelled

log = logging.getLogger("LuDosimetryLib.pipeline")

ProgressCallback = Callable[[float, str], None]


def report_progress(progress: ProgressCallback | None, fraction: float, message: str) -> None:
    """Pass ``message`` with ``fraction`` (clipped to 0..1) to ``progress``; without a callback
    (Python API) log it at INFO on the ``LuDosimetryLib`` logger, shown after
    :func:`LuDosimetryLib.enable_logging` (with a callback: DEBUG, the callback shows it)."""
    fraction = float(min(max(fraction, 0.0), 1.0))
    if progress is not None:
        log.debug("%s", message)
        progress(fraction, message)
    else:
        log.info("[%3d%%] %s", int(round(100 * fraction)), message)


def check_cancel(cancel: Callable[[], bool] | None) -> None:
    """Raise Cancelled when the user asked to stop."""
    if cancel is not None and cancel():
        raise Cancelled("run cancelled by the user; no results were written")
