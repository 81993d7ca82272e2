"""Consistency of the Slicer-bound files, checked without Slicer.

- every .py listed in a module's MODULE_PYTHON_SCRIPTS exists, and every .py under the module
  folder is listed (Slicer installs only what is listed; Testing/ is not installed);
- every resource listed exists and every resource file (icons, .ui, Lib data) is listed;
- the top-level CMakeLists adds every module folder, and each module registers its in-Slicer test;
- .ui files are well-formed XML with unique widget names; every ``self.ui.<name>`` used by a module
  exists in its .ui, and every SlicerParameterName in a .ui is a field of the module's parameter node;
- the Slicer files compile with py_compile (on the interpreter running the tests; Slicer >= 5.10 has 3.12);
- the pure libraries import no Slicer, Qt, CTK or VTK module;
- the extension icon and the Extensions Index entry are as the index requires.
"""

from __future__ import annotations

import ast
import json
import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULE_DIRS = ["LuDosimetry", "LuResponse", "SegmentEditorLuAdaptiveThreshold"]
LIB_DIRS = [ROOT / "LuDosimetry" / "LuDosimetryLib", ROOT / "LuResponse" / "LuResponseLib"]
SLICER_MODULES = {"slicer", "qt", "ctk", "vtk", "sitkUtils", "vtkmodules", "mrml", "SampleData", "DICOMLib",
                  "SegmentEditorEffects", "qSlicerSegmentationsEditorEffectsPythonQt"}
SKIP_PARTS = {"__pycache__", "Testing"}


def _cmake_text(folder: Path) -> str:
    text = (folder / "CMakeLists.txt").read_text(encoding="utf-8")
    return re.sub(r"#[^\n]*", "", text)  # drop comments


def _cmake_list(folder: Path, variable: str) -> list[str]:
    """Entries of ``set(<variable> ...)`` with ${MODULE_NAME} substituted."""
    text = _cmake_text(folder)
    module_name = re.search(r"set\(\s*MODULE_NAME\s+(\S+?)\s*\)", text).group(1)
    match = re.search(rf"set\(\s*{variable}\s+(.*?)\)", text, re.S)
    assert match, f"{folder.name}/CMakeLists.txt has no set({variable} ...)"
    return [e.replace("${MODULE_NAME}", module_name) for e in match.group(1).split()]


def _module_files(folder: Path, predicate) -> set[str]:
    out = set()
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if p.is_file() and not (set(rel.parts) & SKIP_PARTS) and predicate(p):
            out.add(rel.as_posix())
    return out


def _is_resource(p: Path) -> bool:
    return p.suffix not in (".py", ".pyc") and p.name != "CMakeLists.txt"


def _slicer_py_files() -> list[Path]:
    files = []
    for name in MODULE_DIRS:
        for p in (ROOT / name).rglob("*.py"):
            if "__pycache__" in p.parts or any(lib in p.parents for lib in LIB_DIRS):
                continue
            files.append(p)
    return sorted(files)


def _ui_widgets(ui_path: Path) -> dict[str, ET.Element]:
    tree = ET.parse(ui_path)
    return {w.get("name"): w for w in tree.iter("widget")}


# ------------------------------------------------------------------------------------------ CMake


@pytest.mark.parametrize("module", MODULE_DIRS)
def test_module_scripts_listed_and_present(module):
    folder = ROOT / module
    listed = _cmake_list(folder, "MODULE_PYTHON_SCRIPTS")
    missing = [s for s in listed if not (folder / s).is_file()]
    assert not missing, f"{module}/CMakeLists.txt lists files that do not exist: {missing}"
    present = _module_files(folder, lambda p: p.suffix == ".py")
    unlisted = sorted(present - set(listed))
    assert not unlisted, f"{module}/CMakeLists.txt MODULE_PYTHON_SCRIPTS does not list: {unlisted}"
    assert len(listed) == len(set(listed)), f"{module}: duplicate entries in MODULE_PYTHON_SCRIPTS"


@pytest.mark.parametrize("module", MODULE_DIRS)
def test_module_resources_listed_and_present(module):
    folder = ROOT / module
    listed = _cmake_list(folder, "MODULE_PYTHON_RESOURCES")
    missing = [s for s in listed if not (folder / s).is_file()]
    assert not missing, f"{module}/CMakeLists.txt lists resources that do not exist: {missing}"
    present = _module_files(folder, _is_resource)
    unlisted = sorted(present - set(listed))
    assert not unlisted, f"{module}/CMakeLists.txt MODULE_PYTHON_RESOURCES does not list: {unlisted}"


@pytest.mark.parametrize("module", MODULE_DIRS)
def test_module_cmake_builds_with_tests(module):
    folder = ROOT / module
    text = _cmake_text(folder)
    assert "slicerMacroBuildScriptedModule(" in text and "WITH_GENERIC_TESTS" in text
    python_tests = (folder / "Testing" / "Python" / "CMakeLists.txt")
    assert "add_subdirectory(Testing)" in text and python_tests.is_file()
    assert re.search(r"^\s*slicer_add_python_unittest\(", python_tests.read_text(), re.M), \
        f"{module}: Testing/Python/CMakeLists.txt does not register the in-Slicer test"
    assert (folder / "Testing" / "CMakeLists.txt").read_text().strip() == "add_subdirectory(Python)"


def test_every_installed_file_has_one_destination():
    """slicerMacroBuildScriptedModule (without WITH_SUBDIR) installs every module's scripts and resources into
    one folder (qt-scripted-modules), keeping their path relative to the module folder: two modules listing the
    same relative path make two build rules for one file (Ninja: "multiple rules generate ...")."""
    destinations = {}
    for module in MODULE_DIRS:
        text = _cmake_text(ROOT / module)
        assert "WITH_SUBDIR" not in text, f"{module}: the test assumes one shared destination folder"
        for variable in ("MODULE_PYTHON_SCRIPTS", "MODULE_PYTHON_RESOURCES"):
            for entry in _cmake_list(ROOT / module, variable):
                assert not entry.startswith(".."), f"{module}: {entry} lies outside the module folder"
                destinations.setdefault(entry, []).append(module)
    duplicated = {d: m for d, m in destinations.items() if len(m) > 1}
    assert not duplicated, f"installed to the same destination more than once: {duplicated}"


def test_shared_slicer_helpers_not_imported_from_a_module_file():
    """LuResponse uses the shared helpers package, not LuDosimetry.py (that would load the other module)."""
    for path in (ROOT / "LuResponse" / "LuResponse.py",
                 ROOT / "SegmentEditorLuAdaptiveThreshold" / "SegmentEditorLuAdaptiveThresholdLib" / "SegmentEditorEffect.py"):
        imported = _imported_top_modules(path)
        assert "LuDosimetry" not in imported, f"{path.name} imports the LuDosimetry module file"
    assert (ROOT / "LuDosimetry" / "LuSlicerCommon" / "__init__.py").is_file()


def test_top_level_cmake_adds_every_module():
    text = re.sub(r"#[^\n]*", "", (ROOT / "CMakeLists.txt").read_text())
    added = re.findall(r"add_subdirectory\((\w+)\)", text)
    assert sorted(added) == sorted(MODULE_DIRS)
    for variable in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                     "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS"):
        assert re.search(rf"set\({variable}\s", text), f"top-level CMakeLists.txt does not set {variable}"
    assert "project(LuDosimetry)" in text
    for line in ("find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})",
                 "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})"):
        assert line in text


# ------------------------------------------------------------------------------------------ .ui


def _ui_files():
    return sorted(p for name in MODULE_DIRS for p in (ROOT / name).rglob("*.ui"))


@pytest.mark.parametrize("ui_path", _ui_files(), ids=lambda p: p.name)
def test_ui_is_xml_with_unique_names(ui_path):
    tree = ET.parse(ui_path)
    names = [w.get("name") for w in tree.iter("widget")] + [w.get("name") for w in tree.iter("layout")]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"{ui_path.name}: duplicate object names {duplicates}"
    root = tree.getroot().find("widget")
    assert root is not None and root.get("class") == "qMRMLWidget"


def _module_ui_pairs():
    pairs = []
    for name in ("LuDosimetry", "LuResponse"):
        pairs.append((ROOT / name / f"{name}.py", ROOT / name / "Resources" / "UI" / f"{name}.ui"))
    return pairs


@pytest.mark.parametrize("py_path,ui_path", _module_ui_pairs(), ids=lambda p: p.name)
def test_every_ui_attribute_used_exists(py_path, ui_path):
    widgets = _ui_widgets(ui_path)
    used = set(re.findall(r"self\.ui\.(\w+)", py_path.read_text(encoding="utf-8")))
    unknown = sorted(used - set(widgets))
    assert not unknown, f"{py_path.name} uses self.ui.<name> not in {ui_path.name}: {unknown}"


def _parameter_node_fields(py_path: Path) -> dict[str, str]:
    tree = ast.parse(py_path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(
                (isinstance(d, ast.Name) and d.id == "parameterNodeWrapper") for d in node.decorator_list):
            return {stmt.target.id: ast.unparse(stmt.annotation) for stmt in node.body
                    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)}
    raise AssertionError(f"{py_path.name}: no @parameterNodeWrapper class")


@pytest.mark.parametrize("py_path,ui_path", _module_ui_pairs(), ids=lambda p: p.name)
def test_ui_parameter_bindings_match_parameter_node(py_path, ui_path):
    fields = _parameter_node_fields(py_path)
    widget_for_type = {"bool": ("QCheckBox",), "int": ("QSpinBox", "QSlider"),
                       "float": ("QDoubleSpinBox", "ctkSliderWidget", "qMRMLSpinBox", "ctkDoubleSpinBox"),
                       "pathlib.Path": ("ctkPathLineEdit", "ctkDirectoryButton"), "str": ("QLineEdit", "QLabel")}
    for name, widget in _ui_widgets(ui_path).items():
        for prop in widget.findall("property"):
            if prop.get("name") != "SlicerParameterName":
                continue
            parameter = prop.find("string").text
            assert parameter in fields, f"{ui_path.name}: widget {name} is bound to unknown parameter {parameter!r}"
            annotation, cls = fields[parameter], widget.get("class")
            if "Choice(" in annotation:
                assert cls == "QComboBox", f"{name}: Choice parameter {parameter} needs a QComboBox"
            elif annotation.startswith("vtkMRML"):
                assert cls == "qMRMLNodeComboBox", f"{name}: node parameter {parameter} needs a qMRMLNodeComboBox"
            else:
                base = re.sub(r"Annotated\[(\w+(?:\.\w+)?),.*", r"\1", annotation)
                assert cls in widget_for_type.get(base, ()), f"{name} ({cls}) cannot show {parameter}: {annotation}"


# ------------------------------------------------------------------------------------------ Python


@pytest.mark.parametrize("py_path", _slicer_py_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_slicer_file_compiles(py_path, tmp_path):
    """py_compile (byte code written to a temporary folder, not next to the sources)."""
    import py_compile

    py_compile.compile(str(py_path), cfile=str(tmp_path / (py_path.stem + ".pyc")), doraise=True)


def _imported_top_modules(py_path: Path) -> set[str]:
    tree = ast.parse(py_path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("lib_dir", LIB_DIRS, ids=lambda p: p.name)
def test_pure_libraries_do_not_import_slicer(lib_dir):
    offenders = {}
    for py_path in sorted(lib_dir.rglob("*.py")):
        bad = _imported_top_modules(py_path) & SLICER_MODULES
        if bad:
            offenders[py_path.relative_to(ROOT).as_posix()] = sorted(bad)
    assert not offenders, f"pure libraries import Slicer-only modules: {offenders}"


def test_module_files_define_expected_classes():
    expected = {
        ROOT / "LuDosimetry" / "LuDosimetry.py": ["LuDosimetry", "LuDosimetryWidget", "LuDosimetryLogic", "LuDosimetryTest"],
        ROOT / "LuResponse" / "LuResponse.py": ["LuResponse", "LuResponseWidget", "LuResponseLogic", "LuResponseTest"],
        ROOT / "SegmentEditorLuAdaptiveThreshold" / "SegmentEditorLuAdaptiveThreshold.py":
            ["SegmentEditorLuAdaptiveThreshold", "SegmentEditorLuAdaptiveThresholdTest"],
        ROOT / "SegmentEditorLuAdaptiveThreshold" / "SegmentEditorLuAdaptiveThresholdLib" / "SegmentEditorEffect.py":
            ["SegmentEditorEffect"],
    }
    for path, classes in expected.items():
        defined = {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.ClassDef)}
        assert set(classes) <= defined, f"{path.name} lacks {sorted(set(classes) - defined)}"


def test_logic_methods_name_their_lib_function():
    """Each Logic method that imports from a Lib names a Lib function in its docstring."""
    for path, lib in ((ROOT / "LuDosimetry" / "LuDosimetry.py", "LuDosimetryLib"),
                      (ROOT / "LuResponse" / "LuResponse.py", "LuResponseLib")):
        tree = ast.parse(path.read_text())
        logic = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name.endswith("Logic"))
        for fn in logic.body:
            if not isinstance(fn, ast.FunctionDef):
                continue
            imports_lib = any(isinstance(n, ast.ImportFrom) and (n.module or "").startswith(lib) for n in ast.walk(fn))
            if imports_lib:
                doc = ast.get_docstring(fn) or ""
                assert lib in doc, f"{path.name}: {logic.name}.{fn.name} calls {lib} but its docstring does not name it"


# ------------------------------------------------------------------------------------------ extension


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_icons_are_128_px_png():
    for path in (ROOT / "Resources" / "LuDosimetry.png", ROOT / "LuDosimetry" / "Resources" / "Icons" / "LuDosimetry.png",
                 ROOT / "LuResponse" / "Resources" / "Icons" / "LuResponse.png"):
        assert _png_size(path) == (128, 128), path


def test_extensions_index_entry():
    entry = json.loads((ROOT / "LuDosimetry.json").read_text())
    assert entry["$schema"].startswith("https://raw.githubusercontent.com/Slicer/Slicer/main/Schemas/"
                                       "slicer-extension-catalog-entry-schema-v1.0.")
    assert entry["category"] == "Nuclear Medicine"
    assert entry["scm_url"].startswith("https://")
    allowed = {"$schema", "category", "scm_url", "scm_revision", "scm_type", "build_dependencies",
               "dicom_support_rule", "build_subdirectory", "enabled", "tier"}
    assert set(entry) <= allowed
    assert 1 <= entry.get("tier", 1) <= 5
    assert not "LuDosimetry".startswith("Slicer")
    # the index's check_description_files.py: the git repository name starts with "Slicer"
    repository = entry["scm_url"].rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
    assert repository.startswith("Slicer"), repository


def _cmake_string(variable: str) -> str:
    text = (ROOT / "CMakeLists.txt").read_text()
    match = re.search(rf'set\(\s*{variable}\s+"([^"]*)"\s*\)', text)
    assert match, f"top-level CMakeLists.txt: set({variable} \"...\") not found"
    return match.group(1)


def test_extension_metadata_in_the_index_form():
    """Contributors as "Name (Organization)"; every icon / screenshot URL points to a file of this repository."""
    contributors = [c.strip() for c in _cmake_string("EXTENSION_CONTRIBUTORS").split(",")]
    assert contributors and all(re.fullmatch(r"[^()]+ \([^()]+\)", c) for c in contributors), contributors
    urls = [_cmake_string("EXTENSION_ICONURL")] + _cmake_string("EXTENSION_SCREENSHOTURLS").split()
    for url in urls:
        match = re.fullmatch(r"https://raw\.githubusercontent\.com/[^/]+/[^/]+/[^/]+/(.+)", url)
        assert match, f"not a raw GitHub URL: {url}"
        assert (ROOT / match.group(1)).is_file(), f"{url} points to {match.group(1)}, which does not exist"


# ------------------------------------------------------------------------------------------ choices


def _module_constant(py_path: Path, name: str):
    for node in ast.parse(py_path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{py_path.name} has no constant {name}")


@pytest.mark.parametrize("module_file,constant,lib_module,lib_constant", [
    ("LuDosimetry/LuDosimetry.py", "REGISTRATION_METHODS", "LuDosimetryLib.imaging.registration", "METHODS"),
    ("LuDosimetry/LuDosimetry.py", "FIT_MODELS", "LuDosimetryLib.physics.kinetics", "MODELS"),
    ("LuDosimetry/LuDosimetry.py", "SPECT_UNITS", "LuDosimetryLib.io.study", "SPECT_UNITS"),
    ("LuDosimetry/LuDosimetry.py", "VOI_KINDS", "LuDosimetryLib.io.study", "VOI_KINDS"),
    ("LuDosimetry/LuDosimetry.py", "VOI_MODES", "LuDosimetryLib.io.study", "VOI_MODES"),
    ("LuDosimetry/LuDosimetry.py", "STP_METHODS", "LuDosimetryLib.physics.stp_cycle", "STP_METHODS"),
    ("LuDosimetry/LuDosimetry.py", "PLANNING_RULES", "LuDosimetryLib.results.planning", "PLANNING_RULES"),
    ("LuResponse/LuResponse.py", "MODEL_KINDS", "LuResponseLib.models", "MODEL_KINDS"),
    ("LuResponse/LuResponse.py", "RESPONSE_CODES", "LuResponseLib.table", "RESPONSE_CODES"),
])
def test_gui_choices_match_the_library(module_file, constant, lib_module, lib_constant):
    """The choices offered in the GUI (hard-coded so the module loads without importing the Lib) are the Lib's."""
    import importlib

    gui = _module_constant(ROOT / module_file, constant)
    lib = getattr(importlib.import_module(lib_module), lib_constant)
    assert list(gui) == list(lib), f"{module_file} {constant} = {gui}, but {lib_module}.{lib_constant} = {lib}"


@pytest.mark.parametrize("module_file,requirements_file,constants", [
    ("LuDosimetry/LuDosimetry.py", "LuDosimetry/Resources/LuDosimetry-requirements.txt", ["DOSIMETRY_REQUIREMENTS"]),
    ("LuResponse/LuResponse.py", "LuResponse/Resources/LuResponse-requirements.txt",
     ["MODEL_REQUIREMENTS", "SURVIVAL_REQUIREMENTS", "REPORT_REQUIREMENTS"]),
])
def test_requirements_files_match_the_install_on_first_use(module_file, requirements_file, constants):
    listed = {line.strip() for line in (ROOT / requirements_file).read_text().splitlines()
              if line.strip() and not line.lstrip().startswith("#")}
    asked = set()
    for name in constants:
        asked |= set(_module_constant(ROOT / module_file, name))
    assert listed == asked, f"{requirements_file} lists {sorted(listed)}, {module_file} installs {sorted(asked)}"
