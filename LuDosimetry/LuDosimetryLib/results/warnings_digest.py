"""Warnings a physicist reads (issue 12): one line per distinct problem, not one per cycle.

:func:`digest` groups the warnings of a run: those about the same subject (a VOI, the
registration, the voxel-wise fit) that differ only by the cycle number and the numbers in the text
become one line, e.g. ``kidney_left cycles 1, 2, 3: voxel-wise fit fallback in 12/15/9 of 400 VOI
voxels ...`` (a number that differs between the cycles is listed per cycle, separated by ``/``, in
cycle order; one that does not, once). Warnings without a cycle are kept as they are; duplicates
are dropped; the order is that of the first occurrence.

Used for summary.json ``warnings`` (the full list stays in ``warnings_detail``), the report and
the command line.
"""

from __future__ import annotations

import re

_CYCLE = re.compile(r"^(?P<subject>[^:]*?)\bcycle (?P<cycle>\d+)(?P<rest>.*)$", re.DOTALL)
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w])")


def _template(text: str) -> tuple[str, list[str]]:
    return _NUMBER.sub("\x00", text), _NUMBER.findall(text)


def digest(warnings) -> list[str]:
    """The warnings grouped (see the module docstring)."""
    groups: dict = {}
    order: list = []
    for w in dict.fromkeys(str(x) for x in warnings):
        m = _CYCLE.match(w)
        if m is None:
            order.append(("plain", w))
            continue
        tmpl, numbers = _template(m.group("rest"))
        key = (m.group("subject"), tmpl)
        if key in groups and any(c == int(m.group("cycle")) for c, _ in groups[key]):
            order.append(("plain", w))  # a second warning of the same cycle (e.g. another scan): kept whole
            continue
        if key not in groups:
            groups[key] = []
            order.append(("group", key))
        groups[key].append((int(m.group("cycle")), numbers))
    out = []
    for kind, item in order:
        if kind == "plain":
            out.append(item)
            continue
        subject, tmpl = item
        members = sorted(groups[item], key=lambda x: x[0])
        cycles = [c for c, _ in members]
        columns = list(zip(*[nums for _, nums in members])) if members[0][1] else []
        values = ["/".join(col) if len(set(col)) > 1 else col[0] for col in columns]
        rest = tmpl
        for v in values:
            rest = rest.replace("\x00", v, 1)
        label = f"cycle {cycles[0]}" if len(cycles) == 1 else "cycles " + ", ".join(str(c) for c in cycles)
        out.append(f"{subject}{label}{rest}")
    return out
