"""Issue 17: report figures composed as pixels (results/report_raster.py) and rendered once.

* a contour line drawn on an upsampled panel lies on the voxel edges of the mask (k px per voxel,
  computed here from the mask indices), also with a non-square voxel aspect;
* a figure's PNG decodes to exactly its pixels, and report.pdf places those pixels without decoding
  the PNG (matplotlib's PNG reader is made to fail);
* a grid with a colour bar records its label and tick values and is >= 300 px wide.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from LuDosimetryLib.results import report_raster as rr


@pytest.mark.parametrize("aspect", [1.0, 2.0])
def test_contour_on_voxel_edges(aspect):
    k = 4
    mask = np.zeros((10, 12), bool)
    mask[3:7, 2:8] = True
    img = rr.fused_panel(np.zeros(mask.shape), None, 0.0, "gray", 0.0, [(mask, (255, 0, 0))], k, aspect)
    a = np.asarray(img)
    assert a.shape[:2] == (round(10 * k * aspect), 12 * k)
    ys, xs = np.nonzero((a[..., 0] == 255) & (a[..., 1] == 0))
    rows, cols = np.nonzero(mask)
    assert ys.min() == pytest.approx(rows.min() * k * aspect, abs=1)
    assert ys.max() == pytest.approx((rows.max() + 1) * k * aspect - 1, abs=1)
    assert xs.min() == cols.min() * k and xs.max() == (cols.max() + 1) * k - 1


def test_png_round_trip_and_pdf_uses_the_same_pixels(tmp_path, monkeypatch):
    from LuDosimetryLib.results.report_pdf import write_pdf
    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 256, (40, 320, 3), dtype=np.uint8)
    fig = rr.Raster(rgb)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(fig.png()))), rgb)
    with rr.collect_pixels() as pixels:
        tag = fig.img_tag("test figure")
    assert len(pixels) == 1 and next(iter(pixels.values())) is rgb

    import matplotlib.image

    def no_decoding(*a, **k):
        raise AssertionError("the PDF decoded a PNG it had the pixels of")

    monkeypatch.setattr(matplotlib.image, "imread", no_decoding)
    out = write_pdf([f"<h2>Figure</h2><div>{tag}</div>"], tmp_path / "r.pdf", pixels=pixels)
    pypdf = pytest.importorskip("pypdf")
    page = pypdf.PdfReader(str(out)).pages[0]
    assert "page 1 of 1" in page.extract_text()
    images = [im.image for im in page.images]
    assert any(im.size == (320, 40) for im in images)


def test_grid_colour_bar_labels_and_width():
    panel = rr.fused_panel(np.full((8, 8), 0.5), np.linspace(0, 1, 64).reshape(8, 8), 0.02, "inferno", 0.6, [], 3,
                           letters=("R", "L", "A", "P"))
    fig = rr.grid("title", ["cycle 1"], [("axial", [panel])], colour_bar=("inferno", 0.0, 12.5, "absorbed dose (Gy)"))
    assert fig.width_px >= 300
    assert {"absorbed dose (Gy)", "R", "L", "A", "P", "cycle 1", "axial", "0", "12.5"} <= set(fig.labels)
