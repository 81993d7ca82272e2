"""Report figures composed as pixels (numpy + Pillow, Pillow being a dependency of matplotlib):
image panels (CT grey, a colour wash of dose or SPECT, contour lines, orientation letters, scale
bar) laid out in grids with titles and a colour bar, and matplotlib figures rendered once.

Why pixels: the per-VOI image panels of the report (dose on CT, registration checks, MIP contours)
drawn as one matplotlib axes each cost ~30 ms per panel, ~1.6 s per VOI; composed as arrays they
cost about a millisecond each. Every figure is rendered once (:class:`Raster`): its PNG goes into
``report.html`` and the same pixels onto the pages of ``report.pdf`` (no second rendering, no PNG
decoding), collected by :func:`collect_pixels`.

Panels are upsampled with linear interpolation (:func:`scipy.ndimage.zoom`) to whole pixels per
voxel with the voxel aspect kept; contour and isodose lines are the boundary pixels of the
interpolated region (level 0.5 of a mask, the isodose level of a dose), so they follow the same
lines as a marching-squares contour at pixel resolution.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import html
import io
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

# base64 PNG -> RGB pixels while a report is being written (per thread/context: reports written side by
# side in threads of one process keep their own; a miss only means the PDF decodes that PNG)
_STORE: contextvars.ContextVar = contextvars.ContextVar("report_pixels", default=None)


@contextlib.contextmanager
def collect_pixels():
    """Within the block, every :meth:`Raster.img_tag` records its pixels (yielded dict, keyed by
    the base64 PNG text of the tag) so :mod:`.report_pdf` places them without decoding the PNG."""
    store: dict = {}
    token = _STORE.set(store)
    try:
        yield store
    finally:
        _STORE.reset(token)


@dataclass
class Raster:
    """A rendered figure: RGB pixels (uint8, rows top to bottom) and the text drawn on it."""

    rgb: np.ndarray
    labels: list = field(default_factory=list)

    @property
    def width_px(self) -> int:
        return int(self.rgb.shape[1])

    def png(self) -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(self.rgb).save(buf, format="png", compress_level=1)
        return buf.getvalue()

    def img_tag(self, alt: str) -> str:
        data = base64.b64encode(self.png()).decode("ascii")
        store = _STORE.get()
        if store is not None:
            store[data] = self.rgb
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/>'


def from_figure(fig, dpi: float = 100) -> Raster:
    """Render a matplotlib figure once with Agg (a pyplot figure is closed afterwards). The text of a
    matplotlib figure is not collected (``labels`` stays empty; walking its artists costs more than
    a panel)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    managed = getattr(fig.canvas, "manager", None) is not None
    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    if managed:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return Raster(rgb)


@lru_cache(maxsize=8)
def font(size: int):
    """DejaVu Sans (shipped with matplotlib) at ``size`` px."""
    from pathlib import Path

    import matplotlib
    from PIL import ImageFont

    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), size)


@lru_cache(maxsize=8)
def lut(cmap: str) -> np.ndarray:
    """256 x 3 uint8 colours of a matplotlib colormap."""
    import matplotlib

    return (matplotlib.colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)


def normalise(a: np.ndarray, top: float | None = None) -> np.ndarray:
    """``a / top`` clipped to 0..1 (``top``: the maximum of ``a`` when not given)."""
    a = np.asarray(a, dtype=np.float64)
    top = float(a.max()) if top is None else float(top)
    return np.clip(a / top, 0.0, 1.0) if top > 0 else np.zeros_like(a)


def zoom_for(n_vox: int, target_px: int, lo: int = 2, hi: int = 10) -> int:
    """Whole pixels per voxel so that ``n_vox`` voxels span about ``target_px`` pixels."""
    return int(np.clip(round(target_px / max(n_vox, 1)), lo, hi))


def _up(a: np.ndarray, fy: float, fx: float, order: int = 1) -> np.ndarray:
    from scipy import ndimage

    return ndimage.zoom(np.asarray(a, dtype=np.float32), (fy, fx), order=order, mode="nearest", grid_mode=True,
                        output=np.float32)


def edge(region: np.ndarray, width: int = 1) -> np.ndarray:
    """Boundary pixels (``width`` px, inside) of a boolean region."""
    from scipy import ndimage

    if not region.any() or region.all():
        return np.zeros_like(region)
    return region & ~ndimage.binary_erosion(region, iterations=width, border_value=1)


def fused_panel(grey, frac, threshold: float, cmap: str, alpha: float, lines, k: int, aspect: float = 1.0,
                flip: bool = False, letters=None, scale_bar_mm: float | None = None, mm_per_px: float = 1.0,
                grey_is_rgb: bool = False, cache: dict | None = None, ink=(255, 255, 0), levels=(),
                smooth: bool = True):
    """One panel as a PIL image: ``grey`` (0..1, or RGB with ``grey_is_rgb``) with ``frac`` (0..1,
    None for no wash) as a ``cmap`` colour wash of opacity ``alpha`` where ``frac > threshold``;
    ``lines``: [(boolean region on the same grid, RGB colour[, "dashed"])] drawn as boundary lines
    (level 0.5); ``k`` px per voxel along x, ``k * aspect`` along y; ``flip`` puts row 0 at the
    bottom; ``letters``: (left, right, top, bottom) orientation letters; a white scale bar of
    ``scale_bar_mm`` (letters and bar in ``ink``); ``levels``: [(fraction, RGB)] lines (1 px) where the
    upsampled ``frac`` crosses ``fraction`` (isodose lines). ``cache``: a dict shared by panels of the
    same background and lines (the upsampled background and line pixels are computed once).
    ``smooth=False``: background and wash upsampled as blocks, one per voxel (the contours stay
    smooth); such panels also compress several times better as PNG."""
    from PIL import Image, ImageDraw

    fy, fx = k * aspect, float(k)
    cache = {} if cache is None else cache
    order = 1 if smooth else 0
    key = ("grey", id(grey), fy, fx, order)
    if key not in cache:
        g = (_up(grey, fy, fx, order) if not grey_is_rgb else
             np.stack([_up(grey[..., i], fy, fx, order) for i in range(3)], -1))
        g = np.clip(g, 0, 1) * np.float32(255.0)
        cache[key] = (grey, g[..., None].repeat(3, -1) if not grey_is_rgb else g)  # source kept: its id stays unique
    rgb = cache[key][1].copy()
    if frac is not None:
        f = _up(frac, fy, fx, order)
        on = f > threshold
        idx = np.clip(f[on] * 255, 0, 255).astype(np.uint8)
        rgb[on] = (1 - alpha) * rgb[on] + alpha * lut(cmap)[idx].astype(np.float32)
        for level, lc in levels:
            rgb[edge(f >= level, 1)] = lc
    for line in lines:
        region, colour = line[0], line[1]
        style = line[2] if len(line) > 2 else ""
        lkey = ("line", id(region), fy, fx, style)
        if lkey not in cache:
            e = None
            if np.any(region):
                e = edge(_up(region, fy, fx, 1) >= 0.5, 1 if style == "thin" else 2)
                if style == "dashed":
                    yy, xx = np.indices(e.shape)
                    e &= ((yy + xx) // 4) % 2 == 0
            cache[lkey] = (region, e)
        e = cache[lkey][1]
        if e is None:
            continue
        rgb[e] = np.asarray(colour[:3], dtype=np.float32) * (255.0 if max(colour[:3]) <= 1.0 else 1.0)
    img = Image.fromarray(np.ascontiguousarray(((rgb[::-1] if flip else rgb) + 0.5).astype(np.uint8)))
    draw = ImageDraw.Draw(img)
    w, h = img.size
    if scale_bar_mm:
        n = round(scale_bar_mm / mm_per_px)
        bar_ink = (255, 255, 255) if ink == (255, 255, 0) else ink
        draw.line([(3, h - 5), (3 + n, h - 5)], fill=bar_ink, width=2)
        draw.text((3, h - 17), f"{scale_bar_mm:g} mm", fill=bar_ink, font=font(9))
    if letters:
        f9 = font(10)
        for text, (x, y) in zip(letters, ((2, h / 2 - 6), (w - 9, h / 2 - 6), (w / 2 - 3, 1), (w / 2 - 3, h - 12))):
            draw.text((x, y), text, fill=ink, font=f9)
    img.info["letters"] = list(letters or []) + ([f"{scale_bar_mm:g} mm"] if scale_bar_mm else [])
    return img


def grid(title: str, column_titles, rows, colour_bar=None, row_label_px: int = 62, gap: int = 4,
         legend=None) -> Raster:
    """Panels (PIL images) in a grid: ``rows`` = [(row label, [panel, ...])]; ``column_titles``: one
    per column, text or (text, RGB) (``"\\n"`` for more lines); ``colour_bar``: (cmap, vmin, vmax,
    label) drawn right of the panels with five ticks; ``legend``: [(text, RGB, dashed)] line keys
    below the panels."""
    from PIL import Image, ImageDraw

    f_title, f_text = font(12), font(10)
    ncol = max(len(r[1]) for r in rows)
    col_w = [max((r[1][j].size[0] for r in rows if j < len(r[1])), default=0) for j in range(ncol)]
    row_h = [max(p.size[1] for p in r[1]) for r in rows]
    n_title_lines = max((str(t if isinstance(t, str) else t[0]).count("\n") + 1 for t in column_titles), default=0)
    top = 22 + 13 * n_title_lines
    bar_w = 90 if colour_bar else 0
    width = int(max(row_label_px + sum(col_w) + gap * ncol + bar_w + 8, f_title.getlength(title) + 16, 320))
    height = int(top + sum(row_h) + gap * len(rows) + 6)
    legend = list(legend or [])
    entries, lx, ly = [], 8, height
    for text, colour, dashed in legend:
        w = 28 + f_text.getlength(text) + 14
        if lx + w > width - 8 and lx > 8:
            lx, ly = 8, ly + 15
        entries.append((lx, ly, text, colour, dashed))
        lx += w
    if legend:
        height = ly + 18
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    labels = [title]
    draw.text((8, 4), title, fill=(0, 0, 0), font=f_title)
    x = row_label_px
    for j, t in enumerate(column_titles):
        text, colour = (t, (0, 0, 0)) if isinstance(t, str) else t
        draw.multiline_text((x, 22), text, fill=colour, font=f_text, spacing=2)
        labels.append(text)
        x += col_w[j] + gap
    y = top
    for (label, panels), h in zip(rows, row_h):
        draw.text((4, y + h / 2 - 6), label, fill=(0, 0, 0), font=f_text)
        labels.append(label)
        x = row_label_px
        for j, p in enumerate(panels):
            img.paste(p, (x, y))
            labels += p.info.get("letters", [])
            x += col_w[j] + gap
        y += h + gap
    for lx, ly, text, colour, dashed in entries:
        rgb = tuple(round(c * 255) if max(colour[:3]) <= 1.0 else int(c) for c in colour[:3])
        for xs in ((lx, lx + 6), (lx + 10, lx + 16), (lx + 20, lx + 24)) if dashed else ((lx, lx + 24),):
            draw.line([(xs[0], ly + 7), (xs[1], ly + 7)], fill=rgb, width=2)
        draw.text((lx + 28, ly), text, fill=(0, 0, 0), font=f_text)
        labels.append(text)
    if colour_bar:
        cmap, vmin, vmax, label = colour_bar
        x0, y0, y1 = row_label_px + sum(col_w) + gap * ncol + 6, top, top + sum(row_h) + gap * (len(rows) - 1)
        ramp = lut(cmap)[np.linspace(255, 0, y1 - y0).astype(int)]
        img.paste(Image.fromarray(np.repeat(ramp[:, None, :], 12, axis=1)), (x0, y0))
        for q in np.linspace(0, 1, 5):
            yy = y1 - q * (y1 - y0 - 1) - 1
            draw.line([(x0 + 12, yy), (x0 + 15, yy)], fill=(0, 0, 0))
            tick = f"{vmin + q * (vmax - vmin):.3g}"
            draw.text((x0 + 17, yy - 6), tick, fill=(0, 0, 0), font=font(9))
            labels.append(tick)
        lab = Image.new("RGB", (int(f_text.getlength(label)) + 4, 13), (255, 255, 255))
        ImageDraw.Draw(lab).text((2, 0), label, fill=(0, 0, 0), font=f_text)
        lab = lab.rotate(90, expand=True)
        img.paste(lab, (x0 + 58, int(max(y0, (y0 + y1 - lab.size[1]) / 2))))
        labels.append(label)
    return Raster(np.asarray(img), labels)
