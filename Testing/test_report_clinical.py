"""Issue 15: the per-patient report a physicist signs (report.html and report.pdf).

* per-scan input table with the SHA-256 of every input file (checked against hashlib) and, for a
  DICOM study, the SeriesInstanceUID read independently with pydicom;
* the recovery-coefficient curve, the references list with full citations, dose-on-CT figures
  with a colour bar in Gy, every embedded figure >= 300 px wide (read from the PNG header);
* no "seed NNN" in the HTML or the PDF text; the run ID of summary.json in both;
* report.pdf is A4 with "page n of N";
* one planning statement: the chosen rule recommends, the other is shown for comparison, with
  numbers recomputed independently from the BED formula.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from LuDosimetryLib.errors import InputDataError
from LuDosimetryLib.pipeline import PipelineOptions, run_manifest

SEED_RE = re.compile(r"seed\s*0\d\d", re.IGNORECASE)
A4_PT = (595.3, 841.9)  # 210 x 297 mm in points


def _png_widths(html_text: str) -> dict:
    out = {}
    for alt, data in re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)"', html_text):
        png = base64.b64decode(data)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        out[alt] = struct.unpack(">II", png[16:24])[0]
    return out


def _pdf_text(path: Path) -> tuple[str, list]:
    pypdf = pytest.importorskip("pypdf")
    reader = pypdf.PdfReader(str(path))
    return "\n".join(p.extract_text() for p in reader.pages), reader.pages


def _check_report(out: Path, manifest: Path) -> tuple[str, str]:
    html_text = (out / "report.html").read_text(encoding="utf-8")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    pdf_text, pages = _pdf_text(out / "report.pdf")
    study = json.loads(manifest.read_text(encoding="utf-8"))
    # per-scan table: every SPECT/CT input's SHA-256, computed here independently
    tp0 = study["cycles"][0]["timepoints"][0]
    for key in ("spect", "ct"):
        p = (manifest.parent / tp0[key]).resolve()
        h = hashlib.sha256()
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
        for f in files:
            if p.is_dir():
                h.update(f.relative_to(p).as_posix().encode() + b"\0")
            h.update(f.read_bytes())
        assert h.hexdigest() in html_text, key
        assert h.hexdigest()[:40] in pdf_text.replace("\n", "").replace(" ", ""), key
    assert "Inputs: scans" in html_text and "h p.i." in html_text
    assert "recovery-coefficient curve" in html_text
    assert "Macsuka MJ" in html_text and "Sundlöv A" in html_text and "Gear JI" in html_text
    assert "Macsuka MJ" in pdf_text
    assert html_text.count('alt="dose on CT') >= 2  # tumours and kidneys
    assert not SEED_RE.search(html_text), SEED_RE.search(html_text)
    assert not SEED_RE.search(pdf_text), SEED_RE.search(pdf_text)
    assert not SEED_RE.search(json.dumps(summary))
    assert summary["run_id"] in html_text and summary["run_id"] in pdf_text
    widths = _png_widths(html_text)
    assert len(widths) >= 6
    narrow = {k: w for k, w in widths.items() if w < 300}
    assert not narrow, narrow
    # A4, numbered pages
    w, h = float(pages[0].mediabox.width), float(pages[0].mediabox.height)
    assert w == pytest.approx(A4_PT[0], abs=1.0) and h == pytest.approx(A4_PT[1], abs=1.0)
    assert f"page 1 of {len(pages)}" in pdf_text and f"page {len(pages)} of {len(pages)}" in pdf_text
    return html_text, pdf_text


@pytest.fixture(scope="module")
def coarse_run(coarse_patient, tmp_path_factory):
    out = tmp_path_factory.mktemp("report_clinical") / "out"
    return run_manifest(coarse_patient, out, PipelineOptions(registration="none")), out


def test_report_record_of_inputs_figures_and_pdf(coarse_run, coarse_patient):
    result, out = coarse_run
    html_text, _ = _check_report(out, Path(coarse_patient))
    # planning: one recommendation (23 Gy rule by default), the other for comparison, a planning aid
    plan = result.summary["planning"]
    assert plan["rule"] == "kidney_23Gy" and plan["comparison_rule"] == "renal_BED_27Gy"
    assert "Macsuka et al., J Nucl Med 2026" in plan["recommendation"]
    assert "Sundlöv et al., Eur J Nucl Med Mol Imaging 2022" in plan["comparison"]
    assert "not a prescription" in html_text and "For comparison" in html_text
    assert "give it" not in html_text
    # per-kidney cumulative doses and the mean are labelled
    kid = [r for r in result.rows if r["kind"] == "kidney"]
    for name in {r["voi"] for r in kid}:
        total = sum(r["absorbed_dose_Gy"] for r in kid if r["voi"] == name)
        assert f"cumulative dose {name} (kidney) (Gy)" in html_text and f"{total:.2f}" in html_text
    assert "mean of the kidneys" in html_text
    # summary.json keys are descriptive
    s = json.loads((out / "summary.json").read_text())
    assert "next_cycle_activity_renal_bed" in s and s["next_cycle_activity"]["rule"] == "kidney_23Gy"
    assert s["next_cycle_activity_renal_bed"]["rule"] == "renal_BED_27Gy"
    assert (out / "report.pdf") in result.files


def test_renal_bed_sentence_matches_independent_bed(coarse_run):
    """The comparison sentence's projected BED equals sum(D + G D^2 / (alpha/beta)) recomputed here."""
    result, _ = coarse_run
    kid = [r for r in result.rows if r["kind"] == "kidney"]
    cycles = sorted({r["cycle"] for r in kid})
    d = [np.mean([r["absorbed_dose_Gy"] for r in kid if r["cycle"] == c]) for c in cycles]
    g = [np.mean([r["lea_catcheside_g"] for r in kid if r["cycle"] == c]) for c in cycles]
    adaa = np.mean([r["ad_per_aa_Gy_per_GBq"] for r in kid if r["cycle"] == cycles[-1]])
    alpha_beta = 2.6  # Gy, Sundlöv et al. 2022
    dn = adaa * 7.4
    projected = sum(x + gg * x * x / alpha_beta for x, gg in zip(d, g)) + dn + g[-1] * dn * dn / alpha_beta
    plan = result.summary["next_cycle_activity_renal_bed"]
    assert plan["numbers"]["projected_bed_Gy"] == pytest.approx(projected, rel=1e-6)
    assert f"renal BED to {projected:.1f} Gy (limit 27 ± 2 Gy)" in result.summary["planning"]["comparison"]


def test_planning_rule_option_swaps_recommendation(coarse_run):
    from LuDosimetryLib.results.planning import planning_statement

    result, _ = coarse_run
    swapped = planning_statement(result.summary, "renal_BED_27Gy")
    assert swapped["recommendation"] == result.summary["planning"]["comparison"]
    assert swapped["comparison"] == result.summary["planning"]["recommendation"]
    with pytest.raises(InputDataError, match="planning_rule"):
        PipelineOptions(planning_rule="seed002")


def test_dose_on_ct_figures_have_colour_bar_and_orientation(coarse_run):
    from LuDosimetryLib.results.report_figures import dose_on_ct_figures

    result, _ = coarse_run
    figs = dose_on_ct_figures(result)
    tumours = [v.name for v in result.vois if v.kind == "tumor"]
    assert [t for t, _ in figs] == tumours + ["kidneys"]
    for _, fig in figs:  # composed as pixels (report_raster): the text drawn on them is recorded
        assert "absorbed dose (Gy)" in fig.labels  # the colour bar
        assert {"R", "L", "A", "P", "S", "I"} <= set(fig.labels)
        assert fig.rgb.ndim == 3 and fig.width_px >= 300


def test_per_voi_figures_capped_and_stated(coarse_run):
    """Above FIGURE_VOI_CAP VOIs the per-VOI figures show the kidneys and the largest included
    tumours first, and the report names the VOIs left out."""
    import copy
    import dataclasses

    from LuDosimetryLib.results import report_figures as rf

    result, _ = coarse_run
    extra = []
    for i in range(rf.FIGURE_VOI_CAP):
        v = copy.copy(next(v for v in result.vois if v.kind == "tumor"))
        v.definition = dataclasses.replace(v.definition, name=f"extra_{i}")
        v.volume_ml, v.included = 0.5 + i, False
        extra.append(v)
    many = copy.copy(result)
    many.vois = list(result.vois) + extra
    shown = rf.figure_vois(many)
    assert len(shown) == rf.FIGURE_VOI_CAP
    assert {v.name for v in many.vois if v.kind == "kidney"} <= {v.name for v in shown}
    note = rf.figure_cap_note(many)
    left = [v.name for v in many.vois if v.name not in {s.name for s in shown}]
    assert left and all(n in note for n in left) and rf.figure_cap_note(result) == ""


def test_report_time_per_voi(coarse_run, tmp_path):
    from LuDosimetryLib.results.report import write_report

    result, _ = coarse_run
    t0 = time.perf_counter()
    write_report(result, tmp_path / "report.html")
    per_voi = (time.perf_counter() - t0) / len(result.vois)
    print(f"report (HTML + PDF) {per_voi:.3f} s per VOI over {len(result.vois)} VOIs")
    assert per_voi < 3.0  # a loose bound on 2 shared cores; the issue-17 speed is measured in bench/bench_report.py


def test_dicom_study_report_shows_series_uids(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from LuDosimetryLib.synthetic.phantom import PhantomConfig
    from LuDosimetryLib.synthetic.phantom_dicom import write_phantom_dicom

    cfg = PhantomConfig(shape_xyz=(32, 24, 20), spacing_mm=9.6, max_shift_mm=0.0, max_rotation_deg=0.0, n_cycles=2)
    manifest = write_phantom_dicom(tmp_path / "dcm", cfg)
    out = tmp_path / "out"
    run_manifest(manifest, out, PipelineOptions(registration="none"))
    html_text, pdf_text = _check_report(out, manifest)
    folders = sorted((manifest.parent / "dicom").iterdir())
    uids = {str(pydicom.dcmread(next(f for f in sorted(d.rglob("*")) if f.is_file()), stop_before_pixels=True)
                .SeriesInstanceUID) for d in folders}
    assert len(uids) == len(folders) >= 4
    flat_pdf = pdf_text.replace("\n", "").replace(" ", "")
    for uid in uids:
        assert uid in html_text and uid in flat_pdf, uid


@pytest.mark.slow  # uses the demo run (~1.5 min, shared with test_end_to_end)
def test_demo_report(demo_dir):
    html_text, _ = _check_report(demo_dir, demo_dir / "synthetic_patient" / "study.json")
    assert html_text.count('alt="dose on CT') >= 3


def test_gui_summary_shows_one_planning_statement(coarse_run):
    from LuDosimetryLib.results.tables import summary_html, summary_rows

    result, _ = coarse_run
    flat = dict(summary_rows(result.summary))
    text = summary_html(flat)
    assert "planning aid, not a prescription" in text and "For comparison" in text
    assert "Macsuka et al., J Nucl Med 2026" in text and not SEED_RE.search(text)


def test_cli_planning_rule_reaches_the_options():
    from LuDosimetryLib.cli import _run_options, build_parser

    args = build_parser().parse_args(["run", "study.json", "--out", "o", "--planning-rule", "renal_BED_27Gy"])
    assert _run_options(args).planning_rule == "renal_BED_27Gy"
    default = build_parser().parse_args(["run", "study.json", "--out", "o"])
    assert _run_options(default).planning_rule == "kidney_23Gy"


def test_rc_section_states_the_curve_the_pipeline_used():
    """The report's RC text names the fitted model above the table, and the curve it describes gives the
    RC the pipeline applied to a VOI above the largest sphere (the 150 mL kidneys of the demo-like table)."""
    from types import SimpleNamespace

    from LuDosimetryLib.imaging.recovery_model import whole_range_curve
    from LuDosimetryLib.results.report import _rc_curve_text

    table = {"volume_ml": [0.5, 1.2, 2.6, 5.6, 11.5, 26.5], "rc": [0.18, 0.27, 0.37, 0.48, 0.58, 0.67]}
    result = SimpleNamespace(study=SimpleNamespace(recovery_coefficients=table))
    text = _rc_curve_text(result)
    assert "table up to 26.5 mL" in text and "gaussian_sphere model above" in text and "sigma_mm" in text
    curve, _ = whole_range_curve(table)
    assert curve.rc(150.0) > 0.67  # saturating model above the table, not the clamp at the last sphere
