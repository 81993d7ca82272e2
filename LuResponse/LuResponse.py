"""LuResponse: cohort dose-response modelling of [177Lu]Lu-DOTATATE therapy in 3D Slicer.

Thin Slicer layer over the pure-Python package ``LuResponseLib`` (next to this file): the cohort
table (contract 3) lives in a table node; the analyses (grouped proportion of responders with the
sigmoid of seed 000 Eq. 2, ROC curves, the cut-off rule, logistic / SVM responder models and their
probability surface) are LuResponseLib calls; results go into plot charts, a surface volume and text.
The Lib function behind each Logic method is named in its docstring.
"""

import json
import os
import pathlib
from typing import Annotated

import qt
import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin
from slicer.parameterNodeWrapper import (
    Choice,
    WithinRange,
    parameterNodeWrapper,
)

from slicer import (
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLPlotChartNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLTableNode,
)

# Slicer helpers shared with the LuDosimetry module of this extension (a package installed next to both
# module files; this module does not import LuDosimetry.py).
import LuSlicerCommon
from LuSlicerCommon import (
    addSeriesOnce,
    outputChart,
    outputNode,
    paletteColor,
    parseFloat,
    plotSeries,
    readTableRows,
    showChart,
    taggedNode,
)

MODEL_KINDS = ["logistic", "svm"]
RESPONSE_CODES = ["CR", "PR", "SD", "PD"]
CAD = "cumulative_tumor_dose_Gy"
DELTA = "delta_ad_per_aa_percent"
FEATURES = [CAD, DELTA]

# pip requirement -> import name (kept in sync with Resources/LuResponse-requirements.txt). scikit-learn trains the
# responder models (predicting with a trained model needs numpy only); lifelines is for the survival
# analyses (PFS/OS columns); matplotlib draws the figures of the exported report.
MODEL_REQUIREMENTS = {"scikit-learn>=1.3": "sklearn"}
SURVIVAL_REQUIREMENTS = {"lifelines>=0.27": "lifelines"}
REPORT_REQUIREMENTS = {"matplotlib>=3.7": "matplotlib"}
SURVIVAL_COLUMNS = ("pfs_months", "pfs_event", "os_months", "os_event")

# Colours of the plot series (cycled).
PALETTE = [(0.10, 0.60, 0.30), (0.22, 0.49, 0.72), (0.95, 0.60, 0.10), (0.85, 0.15, 0.15),
           (0.50, 0.30, 0.65), (0.40, 0.40, 0.40)]


def ensurePythonPackages(requirements: dict, purpose: str, requester: str = "LuResponse") -> bool:
    """LuSlicerCommon.ensurePythonPackages with LuResponse as the requester (call inside tryWithErrorDisplay)."""
    return LuSlicerCommon.ensurePythonPackages(requirements, purpose, requester)


#
# LuResponse
#


class LuResponse(ScriptedLoadableModule):
    """Uses ScriptedLoadableModule base class, available at:
    https://github.com/Slicer/Slicer/blob/main/Base/Python/slicer/ScriptedLoadableModule.py
    """

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Lu Response")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Nuclear Medicine")]
        self.parent.dependencies = ["LuDosimetry"]  # LuSlicerCommon is installed (and put on sys.path) with LuDosimetry
        self.parent.contributors = ["LuDosimetry developers (LuDosimetry project)"]
        self.parent.helpText = _("""
Cohort dose-response analysis of [177Lu]Lu-DOTATATE therapy: load a cohort table (one row per patient:
cumulative tumour dose, change of AD/AA between cycles, RECIST response), fit the sigmoid of the grouped
proportion of responders, compare ROC curves, evaluate the cut-off rule, train a logistic or SVM responder
model, and place the current patient (sent from Lu Dosimetry) with its predicted probability of response.
All computations are done by the LuResponseLib Python package (also usable without Slicer).
See the <a href="https://github.com/ludosimetry/SlicerLuDosimetry#readme">documentation</a>.
""")
        self.parent.acknowledgementText = _("""
Not a medical device: predictions come from the cohort they were trained on and must not be used alone
for treatment decisions.
""")


#
# LuResponseParameterNode
#


@parameterNodeWrapper
class LuResponseParameterNode:
    """The state of the module, saved with the scene.

    cohortTable - contract-3 cohort table (one row per patient).
    groupSize - patients per group for the grouped proportion of responders (seed 000: 11).
    modelKind - responder model (LuResponseLib.models: logistic or svm).
    currentPatientId, currentCadGy, currentDeltaPercent - the patient placed on the plots.
    modelsJson, sigmoidJson - the trained models ({name: LuResponseLib model JSON}) and the sigmoid fit, so that
        predictions survive a scene reload.
    analysesHtml - text summary of the last analyses.
    scatterChart, sigmoidChart, rocChart, surfaceVolume, currentPatientMarkup - outputs.
    """

    cohortTable: vtkMRMLTableNode | None
    groupSize: Annotated[int, WithinRange(2, 100)] = 11
    modelKind: Annotated[str, Choice(MODEL_KINDS)] = "logistic"
    currentPatientId: str = ""
    currentCadGy: Annotated[float, WithinRange(0.0, 10000.0)] = 0.0
    currentDeltaPercent: Annotated[float, WithinRange(-100.0, 1.0e6)] = 0.0
    modelsJson: str = ""
    sigmoidJson: str = ""
    analysesHtml: str = ""
    scatterChart: vtkMRMLPlotChartNode | None
    sigmoidChart: vtkMRMLPlotChartNode | None
    rocChart: vtkMRMLPlotChartNode | None
    surfaceVolume: vtkMRMLScalarVolumeNode | None
    currentPatientMarkup: vtkMRMLMarkupsFiducialNode | None


#
# LuResponseWidget
#


class LuResponseWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """GUI. Holds no computation: every action is one Logic call inside tryWithErrorDisplay.

    Uses ScriptedLoadableModuleWidget base class, available at:
    https://github.com/Slicer/Slicer/blob/main/Base/Python/slicer/ScriptedLoadableModule.py
    """

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)  # needed for parameter node observation
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/LuResponse.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = LuResponseLogic()

        self.ui.loadCohortButton.connect("clicked(bool)", self.onLoadCohort)
        self.ui.syntheticCohortButton.connect("clicked(bool)", self.onSyntheticCohort)
        self.ui.saveCohortButton.connect("clicked(bool)", self.onSaveCohort)
        self.ui.runAnalysesButton.connect("clicked(bool)", self.onRunAnalyses)
        self.ui.showScatterButton.connect("clicked(bool)", lambda: self.onShowChart("scatterChart"))
        self.ui.showSigmoidButton.connect("clicked(bool)", lambda: self.onShowChart("sigmoidChart"))
        self.ui.showRocButton.connect("clicked(bool)", lambda: self.onShowChart("rocChart"))
        self.ui.showSurfaceButton.connect("clicked(bool)", self.onShowSurface)
        self.ui.saveModelButton.connect("clicked(bool)", self.onSaveModel)
        self.ui.loadModelButton.connect("clicked(bool)", self.onLoadModel)
        self.ui.exportResultsButton.connect("clicked(bool)", self.onExportResults)
        self.ui.predictButton.connect("clicked(bool)", self.onPredict)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode: LuResponseParameterNode | None) -> None:
        if self._parameterNode == inputParameterNode:
            return
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
            self.onParameterNodeModified()

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        pn = self._parameterNode
        if not pn:
            return
        self.ui.cohortTableView.setMRMLTableNode(pn.cohortTable)
        hasCohort = pn.cohortTable is not None and pn.cohortTable.GetNumberOfRows() > 0
        self.ui.runAnalysesButton.enabled = hasCohort
        self.ui.saveCohortButton.enabled = hasCohort
        self.ui.saveModelButton.enabled = bool(pn.modelsJson)
        self.ui.predictButton.enabled = bool(pn.modelsJson or pn.sigmoidJson)
        self.ui.exportResultsButton.enabled = self.logic.lastResults is not None
        self.ui.analysesResultsLabel.text = pn.analysesHtml

    def onLoadCohort(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to load the cohort table."), waitCursor=True):
            path = self.ui.cohortCsvPathLineEdit.currentPath
            if not path:
                raise ValueError(_("Choose a cohort CSV file first."))
            tableNode, notes = self.logic.loadCohortCsv(path)
            self._parameterNode.cohortTable = tableNode
            self.ui.cohortMessagesLabel.text = self.logic.notesHtml(notes)

    def onSyntheticCohort(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to make the synthetic cohort."), waitCursor=True):
            tableNode, notes = self.logic.loadSyntheticCohort()
            self._parameterNode.cohortTable = tableNode
            self.ui.cohortMessagesLabel.text = self.logic.notesHtml(notes)

    def onSaveCohort(self) -> None:
        path = qt.QFileDialog.getSaveFileName(None, _("Save cohort table"), "cohort.csv", "CSV (*.csv)")
        if not path:
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to save the cohort table."), waitCursor=True):
            self.logic.saveCohortCsv(self._parameterNode.cohortTable, path)

    def onRunAnalyses(self) -> None:
        pn = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("The analyses failed."), waitCursor=True):
            withModels = ensurePythonPackages(MODEL_REQUIREMENTS, _("Training the responder models"))
            withSurvival = not self.logic.hasSurvivalColumns(pn.cohortTable) or ensurePythonPackages(
                SURVIVAL_REQUIREMENTS, _("The survival analyses (PFS / OS columns)"))
            with LuSlicerCommon.progressDialog(_("LuResponse"), _("Analysing...")) as (_dialog, report):
                self.logic.runAnalyses(pn, withModels=withModels, withSurvival=withSurvival, progress=report)
            self.logic.showChart(pn.sigmoidChart)

    def onExportResults(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(None, _("Folder for the cohort results"))
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay(_("Export failed."), waitCursor=True):
            withFigures = ensurePythonPackages(REPORT_REQUIREMENTS, _("The figures of the cohort report"))
            files = self.logic.exportResults(folder, withFigures=withFigures)
            slicer.util.infoDisplay(_("{n} files written to {folder}").format(n=len(files), folder=folder))

    def onShowChart(self, name: str) -> None:
        with slicer.util.tryWithErrorDisplay(_("Nothing to show yet."), waitCursor=True):
            self.logic.showChart(getattr(self._parameterNode, name))

    def onShowSurface(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Nothing to show yet."), waitCursor=True):
            self.logic.showSurface(self._parameterNode)

    def onSaveModel(self) -> None:
        path = qt.QFileDialog.getSaveFileName(None, _("Save responder model"), "luresponse_model.json", "JSON (*.json)")
        if not path:
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to save the model."), waitCursor=True):
            self.logic.saveModel(self._parameterNode, path)

    def onLoadModel(self) -> None:
        path = qt.QFileDialog.getOpenFileName(None, _("Load responder model"), "", "JSON (*.json)")
        if not path:
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to load the model."), waitCursor=True):
            self.logic.loadModel(self._parameterNode, path)

    def onPredict(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Prediction failed."), waitCursor=True):
            prediction = self.logic.predictCurrentPatient(self._parameterNode)
            self.ui.predictionLabel.text = self.logic.predictionHtml(prediction)


#
# LuResponseLogic
#


class LuResponseLogic(ScriptedLoadableModuleLogic):
    """MRML adapter around LuResponseLib: table nodes <-> CohortTable, results -> plot charts and volumes.

    Uses ScriptedLoadableModuleLogic base class, available at:
    https://github.com/Slicer/Slicer/blob/main/Base/Python/slicer/ScriptedLoadableModule.py
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.lastResults = None  # LuResponseLib.analysis.CohortResults of the last run (in memory only)
        self._wrappedParameterNode = None

    def getParameterNode(self):
        """The typed wrapper of the module's parameter node (made once per parameter node, not on every call)."""
        node = super().getParameterNode()
        if self._wrappedParameterNode is None or self._wrappedParameterNode.parameterNode is not node:
            self._wrappedParameterNode = LuResponseParameterNode(node)
        return self._wrappedParameterNode

    # ------------------------------------------------------------------ table helpers (no computation)

    parseFloat = staticmethod(parseFloat)
    outputNode = staticmethod(outputNode)

    @staticmethod
    def writeColumns(tableNode, columns: dict) -> None:
        """Replace a table node's content: ``columns`` maps name -> list of values; numeric lists
        (all values float/int/None) become vtkDoubleArray (plottable, NaN for None), others strings."""
        LuSlicerCommon.writeColumnDict(tableNode, columns)

    @staticmethod
    def readRows(tableNode) -> list:
        """Rows of a table node as dicts of column name -> cell text ("" for empty/NaN)."""
        return readTableRows(tableNode, nanAsEmpty=True)

    def dataTable(self, role: str, name: str):
        """A data table for plots, found again by its role attribute (reused between runs)."""
        return taggedNode("vtkMRMLTableNode", "LuResponse.role", role, name)

    # ------------------------------------------------------------------ cohort

    def cohortToTableNode(self, cohort, tableNode=None, name: str = "LuResponse cohort"):
        """Table node holding a LuResponseLib.table.CohortTable (numbers as numeric columns)."""
        tableNode = self.outputNode("vtkMRMLTableNode", tableNode, name)
        rows = cohort.to_rows()
        self.writeColumns(tableNode, {c: [r[c] for r in rows] for c in cohort.column_names})
        tableNode.SetColumnUnitLabel(CAD, "Gy")
        tableNode.SetColumnUnitLabel(DELTA, "%")
        return tableNode

    def loadCohortCsv(self, path):
        """Read and validate a contract-3 cohort CSV into a new table node; returns (node, notes).

        Lib: LuResponseLib.table.load_cohort_table (CohortTableError lists every bad line and column).
        """
        from LuResponseLib.table import load_cohort_table

        cohort = load_cohort_table(path)
        node = self.cohortToTableNode(cohort, None, f"LuResponse cohort {pathlib.Path(path).stem}")
        return node, list(cohort.notes)

    def loadSyntheticCohort(self, seed: int = 0):
        """Synthetic 73-patient cohort with the shape of seed 000 into a table node; returns (node, notes).

        Lib: LuResponseLib.synthetic.make_demo_cohort(seed).
        """
        from LuResponseLib.synthetic import make_demo_cohort

        demo = make_demo_cohort(seed)
        node = self.cohortToTableNode(demo.table, None, f"LuResponse synthetic cohort (seed {seed})")
        return node, [_("Synthetic cohort: responses drawn from a known logistic model (not patient data).")]

    def cohortFromTableNode(self, tableNode):
        """Validated LuResponseLib CohortTable from a table node (edited in Slicer or sent by LuDosimetry).

        Lib: LuResponseLib.table.cohort_table_from_rows.
        """
        from LuResponseLib.table import cohort_table_from_rows

        if tableNode is None:
            raise ValueError(_("Load or create a cohort table first."))
        rows = self.readRows(tableNode)
        header = [tableNode.GetColumnName(c) for c in range(tableNode.GetNumberOfColumns())]
        return cohort_table_from_rows(rows, source=f"table '{tableNode.GetName()}'", header=header)

    def saveCohortCsv(self, tableNode, path) -> pathlib.Path:
        """Write the cohort table node as a validated contract-3 CSV.

        Lib: LuResponseLib.table.cohort_table_from_rows + CohortTable.write_csv.
        """
        return self.cohortFromTableNode(tableNode).write_csv(path)

    def addPatientRecord(self, record: dict, makeCurrent: bool = True):
        """Add (or replace, same patient_id) one contract-3 row in the cohort table and, with makeCurrent,
        make it the patient placed on the plots. Creates the cohort table if there is none.

        Lib: LuResponseLib.views.merge_patient_record (columns, text vs numbers).
        """
        from LuResponseLib.views import merge_patient_record

        pn = self.getParameterNode()
        tableNode = pn.cohortTable
        if tableNode is None:
            tableNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", "LuResponse cohort")
            pn.cohortTable = tableNode
        columns = [tableNode.GetColumnName(c) for c in range(tableNode.GetNumberOfColumns())]
        self.writeColumns(tableNode, merge_patient_record(self.readRows(tableNode), columns, record))
        if makeCurrent:
            with slicer.util.NodeModify(pn):
                pn.currentPatientId = str(record.get("patient_id", ""))
                if record.get(CAD) is not None:
                    pn.currentCadGy = float(record[CAD])
                if record.get(DELTA) is not None:
                    pn.currentDeltaPercent = float(record[DELTA])
        return tableNode

    @staticmethod
    def notesHtml(notes) -> str:
        return "<ul>" + "".join(f"<li>{n}</li>" for n in notes) + "</ul>" if notes else ""

    # ------------------------------------------------------------------ analyses

    def hasSurvivalColumns(self, tableNode) -> bool:
        return tableNode is not None and any(tableNode.GetColumnIndex(c) >= 0 for c in SURVIVAL_COLUMNS)

    def runAnalyses(self, parameterNode: LuResponseParameterNode, withModels: bool = True, withSurvival: bool = True,
                    progress=None) -> dict:
        """Run the cohort analyses and put the results into plot charts, a surface volume and text.

        Lib: LuResponseLib.analysis.run_cohort_analysis (descriptive statistics, grouped proportion of
        responders with the Eq. 2 sigmoid, cross-validated logistic / SVM models, cut-off rules, survival).
        Without scikit-learn (withModels False): LuResponseLib.sigmoid.fit_sigmoid, LuResponseLib.roc.roc_curve and
        LuResponseLib.rules.evaluate_cutoff_rule only. Without lifelines (withSurvival False) the PFS/OS columns
        are left out. Returns {"results", "sigmoid", "rules", "roc", "models"}.
        """
        import importlib.util

        from LuResponseLib.analysis import CohortAnalysisOptions, run_cohort_analysis
        from LuResponseLib.table import CohortTable
        from LuResponseLib.views import basic_analysis

        cohort = self.cohortFromTableNode(parameterNode.cohortTable)
        if not withSurvival or importlib.util.find_spec("lifelines") is None:
            cohort = CohortTable({k: v for k, v in cohort.columns.items() if k not in SURVIVAL_COLUMNS},
                                 cohort.source, cohort.lines, cohort.missing, cohort.notes)
        withModels = withModels and importlib.util.find_spec("sklearn") is not None
        lines, rocs, models, results = [], {}, {}, None
        if withModels:
            results = run_cohort_analysis(cohort, CohortAnalysisOptions(group_size=parameterNode.groupSize),
                                          progress=progress)
            sigmoid, rules, models = results.sigmoid, list(results.rules), dict(results.models)
            for name, cv in results.cv.items():
                rocs[_("{name} (cross-validated)").format(name=name)] = cv.roc
                lines.append(_("Model {name}: cross-validated AUC {auc:.2f} ({lo:.2f}-{hi:.2f})").format(
                    name=name, auc=cv.auc, lo=cv.auc_ci95[0], hi=cv.auc_ci95[1]))
            warnings = list(results.warnings)
        else:
            basic = basic_analysis(cohort, parameterNode.groupSize)
            sigmoid, rules, rocs = basic["sigmoid"], basic["rules"], basic["rocs"]
            lines, warnings = basic["lines"], basic["warnings"]
        self.lastResults = results

        if sigmoid is not None:
            lines.insert(0, _("Sigmoid (Eq. 2): D<sub>50</sub> = {d:.0f} Gy (95 % CI {dl:.0f} to {du:.0f}), k = {k:.0f} Gy, "
                              "P<sub>max</sub> = {p:.2f}, R<sup>2</sup> = {r2:.2f}").format(
                d=sigmoid.D_half_Gy, dl=sigmoid.D_half_ci95_Gy[0], du=sigmoid.D_half_ci95_Gy[1], k=sigmoid.k_Gy,
                p=sigmoid.P_max, r2=sigmoid.r2))
        for rule in rules:
            lines.append(_("Rule {name}: sensitivity {se:.0%}, specificity {sp:.0%}").format(
                name=rule.name, se=rule.sensitivity.estimate, sp=rule.specificity.estimate))
        if warnings:
            lines.append('<span style="color:#b00020">' + "<br>".join(str(w) for w in warnings) + "</span>")
        with slicer.util.NodeModify(parameterNode):
            parameterNode.sigmoidJson = json.dumps(sigmoid.to_dict()) if sigmoid is not None else ""
            parameterNode.modelsJson = json.dumps({name: m.to_dict() for name, m in models.items()}) if models else ""
            parameterNode.analysesHtml = "<br>".join(lines)

        twoCutoffRule = next((r for r in rules if r.cad_cutoff_Gy is not None and r.delta_cutoff_percent is not None), None)
        self.updateScatterChart(parameterNode, cohort, twoCutoffRule)
        self.updateSigmoidChart(parameterNode, sigmoid)
        if results is not None and results.sigmoid_roc:
            rocs[_("sigmoid Eq. 2 (in-sample)")] = results.sigmoid_roc
        self.updateRocChart(parameterNode, rocs)
        surfaceModel = models.get(parameterNode.modelKind)
        if surfaceModel is not None:
            complete = cohort.complete(CAD, DELTA)
            self.updateSurface(parameterNode, surfaceModel, cohort.column(CAD)[complete], cohort.column(DELTA)[complete])
        self.placeCurrentPatient(parameterNode)
        return {"results": results, "sigmoid": sigmoid, "rules": rules, "roc": rocs, "models": models}

    def exportResults(self, folder, withFigures: bool = True) -> list:
        """Write the cohort report, results JSON, figures and models of the last run to a folder.

        Lib: LuResponseLib.report.write_cohort_outputs(results, out_dir, make_plots).
        """
        from LuResponseLib.report import write_cohort_outputs

        if self.lastResults is None:
            raise ValueError(_("Run the analyses (with scikit-learn) first; results are kept in memory only."))
        return [str(p) for p in write_cohort_outputs(self.lastResults, folder, make_plots=withFigures)]

    # ------------------------------------------------------------------ plots

    @staticmethod
    def color(index: int) -> tuple:
        return paletteColor(PALETTE, index)

    def plotSeries(self, name: str, tableNode, xColumn: str, yColumn: str, color, line: bool, markers: bool = True,
                   dashed: bool = False):
        """A plot series node showing two table columns (reused by name between runs)."""
        return plotSeries(name, tableNode, xColumn, yColumn, color, line, dashed=dashed, markers=markers,
                          seriesAttribute="LuResponse.series")

    def chart(self, existing, name: str, xTitle: str, yTitle: str):
        chart = outputChart(existing, name, xTitle, yTitle)
        chart.RemoveAllPlotSeriesNodeIDs()
        return chart

    def updateScatterChart(self, parameterNode: LuResponseParameterNode, cohort, rule) -> None:
        """cAD vs delta AD/AA per response group, with the cut-off lines of the rule (Lib: LuResponseLib.views.scatter_columns)."""
        from LuResponseLib.views import scatter_columns

        columns = scatter_columns(cohort, rule, RESPONSE_CODES)
        table = self.dataTable("scatter", "LuResponse scatter data")
        self.writeColumns(table, columns)
        chart = self.chart(parameterNode.scatterChart, _("Cohort: cAD vs change of AD/AA"), _("cAD (Gy)"),
                           _("delta AD/AA (%)"))
        for index, code in enumerate(RESPONSE_CODES):
            if any(v is not None for v in columns[f"{code} cAD"]):
                chart.AddAndObservePlotSeriesNodeID(self.plotSeries(
                    f"LuResponse {code}", table, f"{code} cAD", f"{code} delta", self.color(index), line=False).GetID())
        if rule is not None:
            for key in ("cAD cut-off", "delta cut-off"):
                chart.AddAndObservePlotSeriesNodeID(self.plotSeries(f"LuResponse {key}", table, f"{key} x", f"{key} y",
                                                                    (0.3, 0.3, 0.3), line=True, markers=False,
                                                                    dashed=True).GetID())
        parameterNode.scatterChart = chart

    def updateSigmoidChart(self, parameterNode: LuResponseParameterNode, sigmoid) -> None:
        """Grouped proportion of responders (median cAD per group) with the fitted sigmoid
        (Lib: LuResponseLib.views.sigmoid_columns)."""
        from LuResponseLib.views import sigmoid_columns

        chart = self.chart(parameterNode.sigmoidChart, _("Proportion of responders vs cAD"), _("cAD (Gy)"),
                           _("Proportion of PR (CR/PR)"))
        parameterNode.sigmoidChart = chart
        if sigmoid is None:
            return
        groupColumns, curveColumns = sigmoid_columns(sigmoid)
        groups = self.dataTable("groups", "LuResponse groups")
        self.writeColumns(groups, groupColumns)
        curve = self.dataTable("sigmoid", "LuResponse sigmoid")
        self.writeColumns(curve, curveColumns)
        chart.AddAndObservePlotSeriesNodeID(self.plotSeries("LuResponse groups", groups, "median cAD", "proportion PR",
                                                            self.color(1), line=False).GetID())
        chart.AddAndObservePlotSeriesNodeID(self.plotSeries("LuResponse sigmoid fit", curve, "cAD", "P", self.color(0),
                                                            line=True, markers=False).GetID())

    def updateRocChart(self, parameterNode: LuResponseParameterNode, rocs: dict) -> None:
        """ROC curves (false vs true positive rate) with their AUC in the legend (Lib: LuResponseLib.views.roc_columns)."""
        from LuResponseLib.views import roc_columns

        chart = self.chart(parameterNode.rocChart, _("ROC curves"), _("1 - specificity"), _("Sensitivity"))
        table = self.dataTable("roc", "LuResponse ROC data")
        self.writeColumns(table, roc_columns(rocs))
        for index, (label, roc) in enumerate(rocs.items()):
            series = self.plotSeries(f"LuResponse ROC {label}", table, f"{label} fpr", f"{label} tpr", self.color(index),
                                     line=True, markers=False)
            auc = roc["auc"] if isinstance(roc, dict) else roc.auc
            series.SetName(f"{label} (AUC {auc:.2f})")
            chart.AddAndObservePlotSeriesNodeID(series.GetID())
        chart.AddAndObservePlotSeriesNodeID(self.plotSeries("LuResponse ROC chance", table, "chance x", "chance y",
                                                            (0.6, 0.6, 0.6), line=True, markers=False, dashed=True).GetID())
        parameterNode.rocChart = chart

    def updateSurface(self, parameterNode: LuResponseParameterNode, model, cad, delta) -> None:
        """Probability of response over (cAD, delta AD/AA) as a single-slice volume (1 mm = 1 Gy across,
        1 mm = 1 % up; cAD increases to the right in the axial view).

        Lib: LuResponseLib.models.probability_surface(model, x_range, y_range, n).
        """
        import numpy as np
        from LuResponseLib.models import probability_surface

        xRange = (0.0, float(np.max(cad)) * 1.2)
        yRange = (float(np.min(delta)) - 10.0, float(np.max(delta)) + 10.0)
        xs, ys, probability = probability_surface(model, xRange, yRange, n=121)
        dx, dy = xs[1] - xs[0], ys[1] - ys[0]
        # i -> cAD (shown left to right: RAS x = -cAD), j -> delta (RAS y = delta), one slice at z = 0
        ijkToRas = np.array([[-dx, 0, 0, -xs[0]], [0, dy, 0, ys[0]], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float)
        name = _("LuResponse probability of response ({kind})").format(kind=model.kind)
        volume = parameterNode.surfaceVolume
        if volume is None or volume.GetScene() is None:
            volume = slicer.util.addVolumeFromArray(probability[np.newaxis, :, :].astype(np.float32), ijkToRas, name)
        else:
            volume.SetName(name)
            volume.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijkToRas))
            slicer.util.updateVolumeFromArray(volume, probability[np.newaxis, :, :].astype(np.float32))
        displayNode = volume.GetDisplayNode()
        if displayNode is not None:
            displayNode.SetAndObserveColorNodeID("vtkMRMLColorTableNodeRainbow")
            displayNode.AutoWindowLevelOff()
            displayNode.SetWindowLevelMinMax(0.0, 1.0)
        parameterNode.surfaceVolume = volume

    def showChart(self, chartNode) -> None:
        """Show a plot chart in the layout."""
        showChart(chartNode, _("Run the analyses first."))

    def showSurface(self, parameterNode: LuResponseParameterNode) -> None:
        if parameterNode.surfaceVolume is None:
            raise ValueError(_("Run the analyses with a responder model first (needs scikit-learn)."))
        slicer.app.layoutManager().setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutOneUpRedSliceView)
        slicer.util.setSliceViewerLayers(background=parameterNode.surfaceVolume, foreground=None, fit=True)

    # ------------------------------------------------------------------ models and the current patient

    def models(self, parameterNode: LuResponseParameterNode) -> dict:
        """The trained models of the parameter node by name (Lib: LuResponseLib.models.ResponseModel.from_dict)."""
        from LuResponseLib.models import ResponseModel

        if not parameterNode.modelsJson:
            return {}
        return {name: ResponseModel.from_dict(d) for name, d in json.loads(parameterNode.modelsJson).items()}

    def saveModel(self, parameterNode: LuResponseParameterNode, path) -> pathlib.Path:
        """Save the selected model (modelKind) as JSON (Lib: LuResponseLib.models.ResponseModel.save_json)."""
        model = self.models(parameterNode).get(parameterNode.modelKind)
        if model is None:
            raise ValueError(_("No trained {kind} model: run the analyses first.").format(kind=parameterNode.modelKind))
        return model.save_json(path)

    def loadModel(self, parameterNode: LuResponseParameterNode, path):
        """Load a model saved as JSON; it replaces the model of its kind (Lib: LuResponseLib.models.ResponseModel.load_json)."""
        from LuResponseLib.models import ResponseModel

        model = ResponseModel.load_json(path)
        stored = json.loads(parameterNode.modelsJson) if parameterNode.modelsJson else {}
        stored[model.kind] = model.to_dict()
        with slicer.util.NodeModify(parameterNode):
            parameterNode.modelsJson = json.dumps(stored)
            if model.kind in MODEL_KINDS:
                parameterNode.modelKind = model.kind
        return model

    def predictCurrentPatient(self, parameterNode: LuResponseParameterNode) -> dict:
        """Probability of response of the current patient from every trained model and the sigmoid; places
        the patient on the plots. Returns {name: {probability, warnings}}.

        Lib: LuResponseLib.views.predict_current_patient (LuResponseLib.models.predict_new_patient with the stored
        sigmoid; values outside a model's training range are named in its warnings).
        """
        from LuResponseLib.views import predict_current_patient

        sigmoid = json.loads(parameterNode.sigmoidJson) if parameterNode.sigmoidJson else None
        prediction = predict_current_patient(self.models(parameterNode), sigmoid, parameterNode.currentCadGy,
                                             parameterNode.currentDeltaPercent)
        self.placeCurrentPatient(parameterNode, prediction)
        return prediction

    def predictionHtml(self, prediction: dict) -> str:
        names = {"logistic": _("Logistic model (cAD, delta AD/AA)"), "svm": _("SVM model (cAD, delta AD/AA)"),
                 "logistic_cAD": _("Logistic model (cAD)"), "logistic_delta": _("Logistic model (delta AD/AA)"),
                 "sigmoid_eq2": _("Sigmoid of cAD (Eq. 2)")}
        lines = []
        for key, value in prediction.items():
            line = _("{name}: probability of response <b>{p:.0%}</b>").format(name=names.get(key, key), p=value["probability"])
            for w in value.get("warnings", []):
                line += f'<br><span style="color:#b00020">{w}</span>'
            lines.append(line)
        return "<br>".join(lines)

    def placeCurrentPatient(self, parameterNode: LuResponseParameterNode, prediction: dict | None = None) -> None:
        """Show the current patient on the scatter and sigmoid charts and on the probability surface."""
        if not parameterNode.currentPatientId and parameterNode.currentCadGy == 0.0:
            return
        cad, delta = parameterNode.currentCadGy, parameterNode.currentDeltaPercent
        label = parameterNode.currentPatientId or _("current patient")
        table = self.dataTable("current", "LuResponse current patient")
        sigmoidP = (prediction or {}).get("sigmoid_eq2", {}).get("probability")
        self.writeColumns(table, {"cAD": [cad], "delta": [delta], "P sigmoid": [sigmoidP]})
        color = (0.0, 0.0, 0.0)
        # the series is found again by name, and shown once however often Predict is clicked
        if parameterNode.scatterChart is not None:
            addSeriesOnce(parameterNode.scatterChart,
                          self.plotSeries("LuResponse current patient", table, "cAD", "delta", color, line=False))
        if parameterNode.sigmoidChart is not None and sigmoidP is not None:
            addSeriesOnce(parameterNode.sigmoidChart,
                          self.plotSeries("LuResponse current patient sigmoid", table, "cAD", "P sigmoid", color,
                                          line=False))
        if parameterNode.surfaceVolume is not None:
            markup = parameterNode.currentPatientMarkup
            if markup is None or markup.GetScene() is None:
                markup = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "LuResponse current patient")
                parameterNode.currentPatientMarkup = markup
            markup.RemoveAllControlPoints()
            modelP = (prediction or {}).get(parameterNode.modelKind, {}).get("probability")
            text = label if modelP is None else f"{label} {modelP:.0%}"
            markup.AddControlPoint(-cad, delta, 0.0, text)


#
# LuResponseTest
#


class LuResponseTest(ScriptedLoadableModuleTest):
    """Logic end to end on the synthetic cohort (and a round trip of the cohort CSV and the model JSON).

    Uses ScriptedLoadableModuleTest base class, available at:
    https://github.com/Slicer/Slicer/blob/main/Base/Python/slicer/ScriptedLoadableModule.py
    """

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        import unittest

        for test in (self.test_SyntheticCohortAnalyses, self.test_AddPatientRecord):
            self.setUp()
            try:
                test()
            except unittest.SkipTest as exc:  # a package is missing: tests never install packages
                self.delayDisplay(f"{test.__name__} skipped: {exc}")

    def test_SyntheticCohortAnalyses(self):
        import tempfile

        self.delayDisplay("Synthetic cohort")
        logic = LuResponseLogic()
        parameterNode = logic.getParameterNode()
        tableNode, _notes = logic.loadSyntheticCohort(seed=0)
        parameterNode.cohortTable = tableNode
        self.assertEqual(tableNode.GetNumberOfRows(), 73)

        LuSlicerCommon.skipUnlessInstalled(self, {**MODEL_REQUIREMENTS, **SURVIVAL_REQUIREMENTS})
        results = logic.runAnalyses(parameterNode)
        self.assertIsNotNone(results["sigmoid"])
        self.assertGreater(results["sigmoid"].D_half_Gy, 0.0)
        self.assertIn("logistic", results["models"])
        self.assertGreater(results["results"].cv["logistic"].auc, 0.6)
        self.assertGreater(parameterNode.scatterChart.GetNumberOfPlotSeriesNodes(), 2)
        self.assertGreater(parameterNode.rocChart.GetNumberOfPlotSeriesNodes(), 1)
        self.assertIsNotNone(parameterNode.surfaceVolume)

        self.delayDisplay("Current patient")
        parameterNode.currentPatientId = "NEW"
        parameterNode.currentCadGy = 150.0
        parameterNode.currentDeltaPercent = -40.0
        prediction = logic.predictCurrentPatient(parameterNode)
        probability = prediction[parameterNode.modelKind]["probability"]
        self.assertTrue(0.0 <= probability <= 1.0)

        self.delayDisplay("Export and round trips of the cohort CSV and the model JSON")
        with tempfile.TemporaryDirectory() as folder:
            files = logic.exportResults(os.path.join(folder, "results"), withFigures=False)
            self.assertTrue(any(f.endswith("cohort_results.json") for f in files), files)
            csvPath = os.path.join(folder, "cohort.csv")
            logic.saveCohortCsv(tableNode, csvPath)
            again, _notes = logic.loadCohortCsv(csvPath)
            self.assertEqual(again.GetNumberOfRows(), tableNode.GetNumberOfRows())
            modelPath = os.path.join(folder, "model.json")
            logic.saveModel(parameterNode, modelPath)
            parameterNode.modelsJson = ""
            logic.loadModel(parameterNode, modelPath)
            self.assertAlmostEqual(logic.predictCurrentPatient(parameterNode)[parameterNode.modelKind]["probability"],
                                   probability, places=12)
        self.delayDisplay("Test passed")

    def test_AddPatientRecord(self):
        logic = LuResponseLogic()
        record = {"patient_id": "P1", CAD: 120.0, DELTA: -35.0, "response": "", "kidney_cumulative_dose_Gy": 14.2}
        tableNode = logic.addPatientRecord(record)
        logic.addPatientRecord(dict(record, response="PR"))  # same patient: replaced, not added
        self.assertEqual(tableNode.GetNumberOfRows(), 1)
        self.assertEqual(logic.getParameterNode().currentCadGy, 120.0)
        rows = logic.readRows(tableNode)
        self.assertEqual(rows[0]["response"], "PR")
        self.delayDisplay("Test passed")
