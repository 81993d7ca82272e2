"""`lu-dosimetry` command line polish: help on every argument, no project jargon ("seed 000") in
any --help, --version, `run DIR` with a folder holding one study.json, progress of phantom
generation and a documented logging switch for the Python API."""

import argparse
import io
import logging
import re

import LuDosimetryLib
import pytest
from LuDosimetryLib import cli


def _subparsers(parser):
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            return dict(a.choices)
    return {}


def test_every_argument_of_every_subcommand_has_help():
    parser = cli.build_parser()
    subs = _subparsers(parser)
    assert {"phantom", "run", "demo", "inspect", "cohort"} <= set(subs)
    missing = []
    for name, p in [("lu-dosimetry", parser), *subs.items()]:
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                continue
            if not (a.help and a.help.strip() and a.help != argparse.SUPPRESS):
                missing.append(f"{name} {'/'.join(a.option_strings) or a.dest}")
    assert not missing, f"arguments without help text: {missing}"


def test_no_paper_jargon_in_any_help(capsys):
    """The papers are cited by authors and journal; 'seed NNN' must not appear (the random-seed
    option --seed stays)."""
    parser = cli.build_parser()
    texts = [parser.format_help()] + [p.format_help() for p in _subparsers(parser).values()]
    for t in texts:
        assert not re.search(r"seed\s*0\d\d", t, re.IGNORECASE), re.search(r".{60}seed\s*0\d\d.{20}", t, re.IGNORECASE | re.DOTALL)
    joined = "\n".join(texts)
    assert "--seed" in joined and "Macsuka et al., J Nucl Med 2026" in joined
    for name in ["--help", *[f"{s} --help" for s in _subparsers(parser)]]:  # through main(), as a user sees it
        with pytest.raises(SystemExit):
            cli.main(name.split())
        assert not re.search(r"seed\s*0\d\d", capsys.readouterr().out, re.IGNORECASE), name


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"lu-dosimetry {LuDosimetryLib.__version__}"


def test_survival_thresholds_published_alias():
    p = cli.build_parser()
    assert p.parse_args(["cohort", "--survival-thresholds", "published"]).survival_thresholds == "seed"
    assert p.parse_args(["cohort", "--survival-thresholds", "median"]).survival_thresholds == "median"


def test_run_accepts_a_folder_with_one_study_json(tmp_path):
    f = tmp_path / "study.json"
    f.write_text("{}")
    assert cli.resolve_manifest(tmp_path) == f
    assert cli.resolve_manifest(f) == f
    (tmp_path / "study_dicom.json").write_text("{}")
    with pytest.raises(ValueError, match=r"holds 2 study manifests \(study\.json, study_dicom\.json\)"):
        cli.resolve_manifest(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as e:
        cli.resolve_manifest(empty)
    assert "no study manifest (study.json)" in cli.error_message(e.value) and str(empty) in cli.error_message(e.value)


def test_run_folder_errors_through_main(tmp_path, capsys):
    assert cli.main(["run", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no study manifest (study.json)" in err and str(tmp_path) in err
    assert not (tmp_path / "out").exists()


def test_phantom_progress_and_logging_switch(tmp_path, monkeypatch):
    """Phantom generation reports every stage to a callback; without one the messages go to the
    'LuDosimetryLib' logger, shown by LuDosimetryLib.enable_logging()."""
    from LuDosimetryLib.synthetic import phantom
    from LuDosimetryLib.synthetic.phantom_dicom import write_phantom_dicom

    cfg = phantom.PhantomConfig(n_cycles=1, hours=(24.0,), shape_xyz=(64, 64, 48), spacing_mm=9.6)
    for writer, folder in ((phantom.write_phantom_study, "a"), (write_phantom_dicom, "dicom")):
        calls = []
        writer(tmp_path / folder, cfg, progress=lambda f, m: calls.append((f, m)))  # noqa: B023
        fr = [f for f, _ in calls]
        assert fr[0] == 0.0 and fr[-1] == 1.0 and fr == sorted(fr) and len(calls) >= 3
        assert any("scan 1/1" in m for _, m in calls)
    buf = io.StringIO()
    h = LuDosimetryLib.enable_logging("INFO", buf)
    try:
        phantom.write_phantom_study(tmp_path / "b", cfg)
        assert LuDosimetryLib.enable_logging("INFO", buf) is not h  # replaced, not stacked
        assert len([x for x in logging.getLogger("LuDosimetryLib").handlers if getattr(x, "_lu_enable_logging", 0)]) == 1
    finally:
        for name in ("LuDosimetryLib", "LuResponseLib"):
            lg = logging.getLogger(name)
            for x in [x for x in lg.handlers if getattr(x, "_lu_enable_logging", False)]:
                lg.removeHandler(x)
            lg.setLevel(logging.NOTSET)
    out = buf.getvalue()
    assert "[100%] synthetic patient written" in out and "scan 1/1" in out


def test_readme_quick_start_starts_from_clone():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    qs = text[text.index("## Quick start"):]
    qs = qs[: qs.index("\n## ", 5)] if "\n## " in qs[5:] else qs
    assert qs.index("git clone") < qs.index("cd ") < qs.index("python3 -m venv")
    assert "python3-venv" in qs and "enable_logging" in text


def test_pvc_and_stp_options_reach_the_pipeline_options():
    from LuDosimetryLib.cli import _run_options, build_parser
    from LuDosimetryLib.errors import InputDataError

    base = ["run", "study.json", "--out", "o"]
    opts = _run_options(build_parser().parse_args(base))
    assert opts.apply_pvc_to == ("tumor", "kidney", "spleen") and opts.stp_method == "auto"
    opts = _run_options(build_parser().parse_args(base + ["--pvc", "tumor,kidney,spleen,liver", "--stp-method",
                                                          "hanscheid"]))
    assert opts.apply_pvc_to == ("tumor", "kidney", "spleen", "liver") and opts.stp_method == "hanscheid"
    assert _run_options(build_parser().parse_args(base + ["--pvc", ""])).apply_pvc_to == ()
    with pytest.raises(InputDataError, match="apply_pvc_to: unknown VOI kind"):
        _run_options(build_parser().parse_args(base + ["--pvc", "tumour"]))
