"""Slicer helpers shared by the LuDosimetry and LuResponse modules (MRML tables, plots, progress,
Python packages). No computation: the Libs compute, these only move values into MRML nodes.

Installed once, by LuDosimetry/CMakeLists.txt, into the folder of the extension's scripted modules
(so both modules import it as ``LuSlicerCommon``; neither imports the other's module file).
Not in LuDosimetryLib: that package must stay free of Slicer, Qt and VTK.
"""

import contextlib
import importlib
import importlib.util
import math

import qt
import vtk

import slicer
from slicer.i18n import tr as _


def parseFloat(text, default=None):
    """Finite float from a text or number; ``default`` if there is none (empty, not a number, NaN, infinite)."""
    try:
        value = float(str(text).strip())
    except (TypeError, ValueError):
        return default
    return value if math.isfinite(value) else default


def paletteColor(palette, index: int) -> tuple:
    """Colour ``index`` of ``palette`` (cycled)."""
    return palette[index % len(palette)]


def missingPackages(requirements: dict) -> list:
    """pip requirements (of ``requirements``: pip requirement -> import name) whose module is not importable."""
    return [req for req, module in requirements.items() if importlib.util.find_spec(module) is None]


def ensurePythonPackages(requirements: dict, purpose: str, requester: str) -> bool:
    """Install the missing packages of ``requirements`` (pip requirement -> import name) after asking the
    user; never at import time, never while Slicer runs its self-tests. Returns True when all are importable,
    False if the user declined. Call it inside slicer.util.tryWithErrorDisplay: a failed installation raises.

    Uses slicer.packaging.pip_ensure (Slicer >= 5.12) or slicer.util.pip_install (older Slicer).
    """
    missing = missingPackages(requirements)
    if not missing:
        return True
    if slicer.app.testingEnabled():
        return False  # tests skip instead of changing Slicer's Python environment
    if not slicer.util.confirmOkCancelDisplay(
            _("{purpose} needs Python packages that are not installed in Slicer yet:\n\n{packages}\n\n"
              "Install them now? (internet connection needed)").format(purpose=purpose, packages="\n".join(missing)),
            windowTitle=_("Install Python packages")):
        return False
    try:
        # not "import slicer.packaging": that would make "slicer" a local name of this function
        from slicer import packaging as slicerPackaging
    except ImportError:  # Slicer < 5.12
        slicer.util.pip_install(" ".join(missing))
    else:
        slicerPackaging.pip_ensure(missing, prompt_install=False, requester=requester)
    importlib.invalidate_caches()
    stillMissing = missingPackages(requirements)
    if stillMissing:
        raise RuntimeError(_("Installing {packages} did not make them importable; see the Python console.").format(
            packages=", ".join(stillMissing)))
    return True


def skipUnlessInstalled(testCase, requirements: dict) -> None:
    """In an in-Slicer test: skip (unittest.SkipTest with a message) when a package is not installed."""
    missing = missingPackages(requirements)
    if missing:
        testCase.skipTest("not installed in this Slicer: " + ", ".join(missing) + " (install them to run this test)")


def createProgress(windowTitle: str, labelText: str, maximum: int = 100):
    """A modal progress dialog (0 to 100; maximum 0: busy indicator) and ``report(fraction, message)`` that
    updates it and processes events. Returns (dialog, report); the caller closes the dialog."""
    progress = slicer.util.createProgressDialog(maximum=maximum, windowTitle=windowTitle, labelText=labelText)
    progress.setWindowModality(qt.Qt.ApplicationModal)  # no second run can start from the GUI meanwhile
    slicer.app.processEvents()

    def report(fraction, message):
        if maximum:
            progress.value = int(round(100 * fraction))
        progress.labelText = message
        slicer.app.processEvents()

    return progress, report


@contextlib.contextmanager
def progressDialog(windowTitle: str, labelText: str, maximum: int = 100):
    """``with progressDialog(...) as (dialog, report):`` createProgress, closed however the block ends."""
    dialog, report = createProgress(windowTitle, labelText, maximum)
    try:
        yield dialog, report
    finally:
        dialog.close()


def nodeByAttribute(className: str, attribute: str, value: str):
    """The first node of ``className`` in the scene whose ``attribute`` is ``value``, or None."""
    for node in slicer.util.getNodesByClass(className):
        if node.GetAttribute(attribute) == value:
            return node
    return None


def outputNode(className: str, existing, name: str):
    """Reuse an output node (renamed to ``name``) if it is still in the scene, or create one (never an input node)."""
    if existing is not None and existing.GetScene() is not None:
        existing.SetName(name)
        return existing
    return slicer.mrmlScene.AddNewNodeByClass(className, name)


def taggedNode(className: str, attribute: str, value: str, name: str):
    """The node of ``className`` whose ``attribute`` is ``value`` (renamed to ``name``), or a new one so tagged."""
    node = outputNode(className, nodeByAttribute(className, attribute, value), name)
    node.SetAttribute(attribute, value)
    return node


def outputChart(existing, name: str, xTitle: str, yTitle: str):
    """Reuse (see outputNode) or create a plot chart titled ``name`` with these axis titles."""
    chart = outputNode("vtkMRMLPlotChartNode", existing, name)
    chart.SetTitle(name)
    chart.SetXAxisTitle(xTitle)
    chart.SetYAxisTitle(yTitle)
    return chart


def plotSeries(name: str, tableNode, xColumn: str, yColumn: str, color, line: bool, dashed: bool = False,
               markers: bool = True, *, seriesAttribute: str):
    """A plot series node showing two table columns, found again between runs by ``name`` in its
    ``seriesAttribute`` attribute (e.g. "LuDosimetry.series")."""
    series = nodeByAttribute("vtkMRMLPlotSeriesNode", seriesAttribute, name)
    if series is None:
        series = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", name)
        series.SetAttribute(seriesAttribute, name)
    series.SetAndObserveTableNodeID(tableNode.GetID())
    series.SetXColumnName(xColumn)
    series.SetYColumnName(yColumn)
    series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
    if not line:
        series.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleNone)
    elif dashed:
        series.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleDash)
    else:
        series.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleSolid)
    series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle if markers
                          else slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone)
    series.SetColor(*color)
    return series


def addSeriesOnce(chartNode, seriesNode) -> None:
    """Show a plot series in a chart unless it is already there."""
    if not chartNode.HasPlotSeriesNodeID(seriesNode.GetID()):
        chartNode.AddAndObservePlotSeriesNodeID(seriesNode.GetID())


def showChart(chartNode, missingMessage: str) -> None:
    """Show a plot chart in the layout, fitted to its content; ValueError(missingMessage) if there is none."""
    if chartNode is None:
        raise ValueError(missingMessage)
    slicer.modules.plots.logic().ShowChartInLayout(chartNode)
    layoutManager = slicer.app.layoutManager()
    if layoutManager is not None and layoutManager.plotWidget(0) is not None:
        layoutManager.plotWidget(0).plotView().fitToContent()


def writeTableColumns(tableNode, columns, numericColumns, toNumber=float) -> None:
    """Replace the content of a table node with ``columns``, (name, values) pairs. Columns named in
    ``numericColumns`` become vtkDoubleArray (plottable: toNumber(value); NaN where the value is None or
    toNumber gives None), the others vtkStringArray ("" for None)."""
    tableNode.RemoveAllColumns()
    for name, values in columns:
        numeric = name in numericColumns
        array = vtk.vtkDoubleArray() if numeric else vtk.vtkStringArray()
        array.SetName(name)
        array.SetNumberOfValues(len(values))
        for i, value in enumerate(values):
            if numeric:
                number = None if value is None else toNumber(value)
                array.SetValue(i, float("nan") if number is None else number)
            else:
                array.SetValue(i, "" if value is None else str(value))
        tableNode.AddColumn(array)
    tableNode.Modified()


def writeColumnDict(tableNode, columns: dict) -> None:
    """writeTableColumns for {name: values}; lists of numbers/None (no bool) become numeric columns."""
    pairs = [(name, list(values)) for name, values in columns.items()]
    numeric = {name for name, values in pairs
               if all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values)}
    writeTableColumns(tableNode, pairs, numeric, toNumber=parseFloat)


def readTableRows(tableNode, nanAsEmpty: bool = False) -> list:
    """Rows of a table node as dicts of column name -> cell text (with nanAsEmpty, "" for NaN cells)."""
    if tableNode is None:
        return []
    names = [tableNode.GetColumnName(c) for c in range(tableNode.GetNumberOfColumns())]

    def cell(r, c):
        text = tableNode.GetCellText(r, c)
        return "" if nanAsEmpty and text.lower() == "nan" else text

    return [{name: cell(r, c) for c, name in enumerate(names)} for r in range(tableNode.GetNumberOfRows())]


def labelComboItems(combo, labels: dict) -> None:
    """Show readable texts in a combo box bound to a Choice parameter (the connector reads the index, so
    only the texts change): ``labels`` maps choice -> text."""
    for index in range(combo.count):
        text = combo.itemText(index)
        if text in labels:
            combo.setItemText(index, labels[text])


def writeTableRows(tableNode, columnNames, rows, numericColumns=()) -> None:
    """writeTableColumns for rows (lists in ``columnNames`` order); numeric cells parsed with parseFloat."""
    writeTableColumns(tableNode, [(name, [row[c] for row in rows]) for c, name in enumerate(columnNames)],
                      numericColumns, toNumber=parseFloat)
