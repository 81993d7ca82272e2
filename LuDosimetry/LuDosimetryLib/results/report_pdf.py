"""``report.pdf``: the sections of ``report.html`` laid out on A4 pages with page numbers.

Rendered with matplotlib's ``PdfPages`` (a maintained library already required, installed from
the package registries without system libraries; WeasyPrint would need Debian's pango). The PDF
has the same content as the HTML page: every section's text (headings bold, tables as rows of
cells separated by " | ", long lines wrapped) and every embedded figure (the same pixels as the
HTML's PNG, scaled to the text width: taken from the report's rendering when given, else decoded
from the PNG; resized to 200 pixels per printed inch where it has more). Each page carries the title, the run ID and "page n of N". One axes spans each page
and images are placed on it at their own resolution (no axes per figure, no resampling); text is
set in the standard PDF font Helvetica (one string per line; an embedded TrueType font costs
~60 us a character), in its Windows-1252 character set with Greek letters and arrows spelled out.
"""

from __future__ import annotations

import base64
import html
import io
import re
import textwrap
from pathlib import Path

import numpy as np

A4_INCH = (8.27, 11.69)
MARGIN_INCH = 0.6
LINE_INCH = 0.16
PDF_MAX_DPI = 200  # figures with more pixels than this per printed inch are resized (box filter) in the PDF
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


_SPELLED = {"σ": "sigma", "Δ": "Delta ", "→": "->", "≤": "<=", "≥": ">=", "≈": "~", "α": "alpha", "β": "beta",
            "λ": "lambda", "μ": "u", "γ": "gamma", "∑": "sum", "√": "sqrt", "−": "-", "₀": "0", "₁": "1", "₂": "2", "⁻": "^-"}


def _latin(text: str) -> str:
    """``text`` in the Windows-1252 set of the standard PDF fonts: Greek letters and arrows spelled out."""
    out = "".join(_SPELLED.get(ch, ch) for ch in text)
    return out.encode("cp1252", "replace").decode("cp1252")


def _blocks(sections: list[str], pixels: dict | None = None) -> list:
    """("h"|"t", text) and ("img", RGB(A) pixels) in document order (``pixels``: base64 PNG -> pixels
    of the rendered figures, used instead of decoding the PNG)."""
    import matplotlib.image as mpimg

    blocks = []
    for sec in sections:
        pos = 0
        for m in _IMG.finditer(sec):
            blocks += _text_lines(sec[pos:m.start()])
            img = (pixels or {}).get(m.group(1))
            if img is None:
                img = mpimg.imread(io.BytesIO(base64.b64decode(m.group(1))), format="png")
            blocks.append(("img", img))
            pos = m.end()
        blocks += _text_lines(sec[pos:])
    return blocks


def _at_most_dpi(img, width_inch: float):
    """``img`` resized (box filter, Pillow) to :data:`PDF_MAX_DPI` pixels per printed inch when it has
    more than 1.2 times that (e.g. the 300 px panels of the registration checks printed 7 inches wide)."""
    target = int(PDF_MAX_DPI * width_inch)
    if img.shape[1] <= 1.2 * target or img.dtype != np.uint8:
        return img
    from PIL import Image

    size = (target, max(1, round(img.shape[0] * target / img.shape[1])))
    return np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize(size, Image.Resampling.BOX))


def write_pdf(sections: list[str], path, title: str = "Dosimetry report", run_id: str = "",
              pixels: dict | None = None) -> Path:
    """Lay ``sections`` (HTML fragments of :func:`.report.build_report_sections`) out on A4 pages;
    ``pixels``: the figures' pixels by base64 PNG (:func:`.report_raster.collect_pixels`)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    w, h = A4_INCH
    usable_w = w - 2 * MARGIN_INCH
    pages: list[list] = [[]]  # per page: (kind, y_inch_from_top, payload, (width, height))
    y = MARGIN_INCH
    for kind, payload in _blocks(sections, pixels):
        if kind == "img":
            ih, iw = payload.shape[:2]
            dw = min(usable_w, iw / 100.0)
            dh = dw * ih / iw
            max_h = h - 2 * MARGIN_INCH - 0.3
            if dh > max_h:
                dw, dh = dw * max_h / dh, max_h
            payload = _at_most_dpi(payload, dw)
            need = dh + 0.1
        else:
            need = LINE_INCH * (2.0 if kind == "h" else 1.0)
            dw, dh = 0, 0
        if y + need > h - MARGIN_INCH - 0.3:
            pages.append([])
            y = MARGIN_INCH
        pages[-1].append((kind, y, payload, (dw, dh)))
        y += need
    p = Path(path)
    # the 14 standard PDF fonts (Helvetica): a line is written as one string; embedded TrueType text is
    # laid out glyph by glyph (~60 us a character, most of the PDF's time)
    with matplotlib.rc_context({"pdf.use14corefonts": True}), PdfPages(p) as pdf:
        meta = pdf.infodict()
        meta["Title"] = title
        meta["Creator"] = "lu-dosimetry"
        n = len(pages)
        for i, items in enumerate(pages):
            fig = Figure(figsize=A4_INCH)
            fig.suppressComposite = True  # each image at its own resolution
            ax = fig.add_axes((0, 0, 1, 1))
            ax.set_axis_off()
            ax.set_autoscale_on(False)
            for kind, top, payload, (dw, dh) in items:
                if kind == "img":
                    ax.imshow(payload, extent=(MARGIN_INCH, MARGIN_INCH + dw, top + dh, top), aspect="auto",
                              interpolation="none")  # "none": the pixels go into the PDF as they are
                elif kind == "h":
                    ax.text(MARGIN_INCH, top + LINE_INCH * 1.6, _latin(payload), fontsize=11, weight="bold",
                            family="Helvetica", va="baseline")
                else:
                    ax.text(MARGIN_INCH, top + LINE_INCH, _latin(payload), fontsize=6.5, family="Helvetica",
                            weight="medium", va="baseline")
            ax.set_xlim(0, w)
            ax.set_ylim(h, 0)
            ax.text(w / 2, h - 0.25, _latin(f"{title} — run ID {run_id} — page {i + 1} of {n}"), ha="center",
                    fontsize=7, family="Helvetica", weight="medium")
            pdf.savefig(fig)
    return p
