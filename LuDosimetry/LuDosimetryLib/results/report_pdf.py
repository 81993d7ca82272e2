"""``report.pdf``: the sections of ``report.html`` laid out on A4 pages with page numbers.

Rendered with matplotlib's ``PdfPages`` (a maintained library already required, installed from
the package registries without system libraries; WeasyPrint would need Debian's pango). The PDF
has the same content as the HTML page: every section's text (headings bold, tables as rows of
cells separated by " | ", long lines wrapped) and every embedded figure (the same PNG, scaled to
the text width). Each page carries the title, the run ID and "page n of N".
"""

from __future__ import annotations

import base64
import html
import io
import re
import textwrap
from pathlib import Path

A4_INCH = (8.27, 11.69)
MARGIN_INCH = 0.6
LINE_INCH = 0.16
CHARS_PER_LINE = 118

_IMG = re.compile(r'<img[^>]*src="data:image/png;base64,([^"]+)"[^>]*/?>')


def _text_lines(fragment: str) -> list[tuple[str, str]]:
    """(style, text) lines of an HTML fragment: "h" for headings, "t" otherwise."""
    frag = re.sub(r"<(h[123])[^>]*>", "\n\x01", fragment)
    frag = re.sub(r"</h[123]>", "\n", frag)
    frag = re.sub(r"<br\s*/?>", " ", frag)
    frag = re.sub(r"</t[dh]>", " | ", frag)
    frag = re.sub(r"</tr>|</p>|</li>|<li>|</div>", "\n", frag)
    frag = re.sub(r"<[^>]+>", "", frag)
    out = []
    for raw in html.unescape(frag).split("\n"):
        line = raw.strip().rstrip("|").strip()
        if not line:
            continue
        if line.startswith("\x01"):
            out.append(("h", line[1:]))
        else:
            out.extend(("t", w) for w in textwrap.wrap(line, CHARS_PER_LINE, subsequent_indent="    "))
    return out


def _blocks(sections: list[str]) -> list:
    """("h"|"t", text) and ("img", png bytes) in document order."""
    blocks = []
    for sec in sections:
        pos = 0
        for m in _IMG.finditer(sec):
            blocks += _text_lines(sec[pos:m.start()])
            blocks.append(("img", base64.b64decode(m.group(1))))
            pos = m.end()
        blocks += _text_lines(sec[pos:])
    return blocks


def write_pdf(sections: list[str], path, title: str = "Dosimetry report", run_id: str = "") -> Path:
    """Lay ``sections`` (HTML fragments of :func:`.report.build_report_sections`) out on A4 pages."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    w, h = A4_INCH
    usable_w = w - 2 * MARGIN_INCH
    pages: list[list] = [[]]  # per page: (kind, y_inch_from_top, payload, height)
    y = MARGIN_INCH
    for kind, payload in _blocks(sections):
        if kind == "img":
            img = mpimg.imread(io.BytesIO(payload), format="png")
            ih, iw = img.shape[:2]
            dw = min(usable_w, iw / 100.0)
            dh = dw * ih / iw
            max_h = h - 2 * MARGIN_INCH - 0.3
            if dh > max_h:
                dw, dh = dw * max_h / dh, max_h
            need = dh + 0.1
        else:
            need = LINE_INCH * (2.0 if kind == "h" else 1.0)
            img, dw, dh = None, 0, 0
        if y + need > h - MARGIN_INCH - 0.3:
            pages.append([])
            y = MARGIN_INCH
        pages[-1].append((kind, y, img if kind == "img" else payload, (dw, dh)))
        y += need
    p = Path(path)
    with PdfPages(p) as pdf:
        meta = pdf.infodict()
        meta["Title"] = title
        meta["Creator"] = "lu-dosimetry"
        n = len(pages)
        for i, items in enumerate(pages):
            fig = plt.figure(figsize=A4_INCH)
            for kind, top, payload, (dw, dh) in items:
                if kind == "img":
                    ax = fig.add_axes([MARGIN_INCH / w, 1 - (top + dh) / h, dw / w, dh / h])
                    ax.imshow(payload)
                    ax.set_axis_off()
                else:
                    baseline = top + LINE_INCH * (1.6 if kind == "h" else 1.0)
                    fig.text(MARGIN_INCH / w, 1 - baseline / h, payload,
                             fontsize=11 if kind == "h" else 6.5, weight="bold" if kind == "h" else "normal",
                             family="DejaVu Sans")
            fig.text(0.5, 0.25 / h, f"{title} — run ID {run_id} — page {i + 1} of {n}", ha="center", fontsize=7)
            pdf.savefig(fig)
            plt.close(fig)
    return p
