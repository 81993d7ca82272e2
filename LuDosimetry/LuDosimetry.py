"""LuDosimetry: per-patient multi-cycle [177Lu]Lu-DOTATATE SPECT/CT dosimetry in 3D Slicer.

The module is a thin Slicer layer: a wizard GUI (Study, Register, Segment, Dose, Results), a
typed parameter node, and a Logic that converts MRML nodes to numpy/SimpleITK and back. Every
computation is a call into the pure-Python package ``LuDosimetryLib`` (next to this file), so it
is tested without Slicer and can be scripted from the Python console or the ``lu-dosimetry``
command. The Lib function behind each Logic method is named in its docstring.
"""

import dataclasses
import functools
import html
import logging
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

import LuSlicerCommon
from LuSlicerCommon import outputChart, outputNode, paletteColor, parseFloat, plotSeries, taggedNode

from slicer import (
    vtkMRMLPlotChartNode,
    vtkMRMLSegmentationNode,
    vtkMRMLSegmentEditorNode,
    vtkMRMLTableNode,
)

# ---------- Choices shared by the GUI and the Logic (the names are those of LuDosimetryLib.pipeline.PipelineOptions)

REGISTRATION_METHODS = ["auto", "translation", "rigid_ct", "local", "none"]  # LuDosimetryLib.imaging.registration.METHODS
DOSE_METHODS = ["local_deposition", "voxel_s_value"]
FIT_MODELS = ["auto", "mono", "biexp", "triexp", "trapezoid", "mono_last2"]  # LuDosimetryLib.physics.kinetics.MODELS
VOI_KINDS = ["tumor", "kidney", "organ"]  # LuDosimetryLib.io.study.VOI_KINDS
VOI_MODES = ["as_drawn", "adaptive_threshold"]  # LuDosimetryLib.io.study.VOI_MODES
SPECT_UNITS = ["Bq/mL", "counts", "Gy/h"]  # LuDosimetryLib.io.study.SPECT_UNITS
RESPONSES = ["", "CR", "PR", "SD", "PD"]
STP_METHODS = ["auto", "ratio", "madsen", "hanscheid"]  # LuDosimetryLib.physics.stp_cycle.STP_METHODS
PLANNING_RULES = ["kidney_23Gy", "renal_BED_27Gy"]  # LuDosimetryLib.results.planning.PLANNING_RULES

STATUS_NOT_STARTED = "not started"
STATUS_DONE = "done"
STATUS_ATTENTION = "needs attention"

# Segment tags that hold the per-VOI settings (saved with the segmentation).
KIND_TAG = "LuDosimetry.kind"
MODE_TAG = "LuDosimetry.mode"
FIT_MODEL_TAG = "LuDosimetry.fitModel"
DEFAULT_FIT_MODEL = "default"

# Columns of the study table node (one row per time point) and node-reference roles per row.
# (the first ten are LuDosimetryLib.io.scene_rows.ROW_COLUMNS)
STUDY_COLUMNS = [
    "cycle", "hours_post_injection", "administered_activity_MBq", "spect_units", "injection_time",
    "acquisition_time", "calibration_cps_per_MBq", "acquisition_duration_s", "spect", "ct",
    "registration_status", "registration_method", "registration_metric",
]
SPECT_ROLE = "LuDosimetry.spect"
CT_ROLE = "LuDosimetry.ct"
TRANSFORM_ROLE = "LuDosimetry.transform"
REGISTERED_ROLE = "LuDosimetry.registeredSpect"
ROW_COUNT_ATTRIBUTE = "LuDosimetry.rowCount"

# Registration status of a time point.
REG_REFERENCE = "reference"
REG_PENDING = ""
REG_REGISTERED = "registered"
REG_ACCEPTED = "accepted"
REG_FAILED = "failed"



# ---------- LuDosimetry


class LuDosimetry(ScriptedLoadableModule):
    """Uses ScriptedLoadableModule base class, available at:
    https://github.com/Slicer/Slicer/blob/main/Base/Python/slicer/ScriptedLoadableModule.py
    """

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Lu Dosimetry")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Nuclear Medicine")]
        self.parent.dependencies = ["Segmentations"]
        self.parent.contributors = ["LuDosimetry developers (LuDosimetry project)"]
        self.parent.helpText = _("""
Patient-specific multi-cycle [177Lu]Lu-DOTATATE SPECT/CT dosimetry: load the study (cycles x time points),
register every scan to the reference scan, define tumour and organ VOIs (adaptive threshold available),
compute time-activity curves and absorbed doses per VOI per cycle, cumulative tumour dose, change of AD/AA,
kidney BED and the suggested next-cycle activity.
All computations are done by the LuDosimetryLib Python package, also usable without Slicer
(command <code>lu-dosimetry</code>).
See the <a href="https://github.com/ludosimetry/SlicerLuDosimetry#readme">documentation</a>.
""")
        self.parent.acknowledgementText = _("""
Methods follow the EANM dosimetry guidance and the publications cited in the documentation.
Not a medical device: results must be reviewed by a qualified medical physicist.
""")
        # Sample data is registered after startup (SampleData module must be loaded first).
        slicer.app.connect("startupCompleted()", registerSampleData)


# ---------- Register sample data sets in Sample Data module


def registerSampleData():
    """Add the synthetic patient to the Sample Data module.

    Nothing is downloaded: the patient is generated on first use by
    ``LuDosimetryLib.synthetic.phantom.write_phantom_study`` into Slicer's cache folder (a custom downloader).
    """
    import SampleData

    iconsPath = os.path.join(os.path.dirname(__file__), "Resources", "Icons")
    if hasattr(SampleData.SampleDataLogic, "registerCustomSampleDataCategory"):  # Slicer >= 5.12 (a title for the category)
        SampleData.SampleDataLogic.registerCustomSampleDataCategory("LuDosimetry", title=_("Lu Dosimetry"))
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="LuDosimetry",
        sampleName="LuDosimetrySyntheticPatient",
        thumbnailFileName=os.path.join(iconsPath, "LuDosimetrySyntheticPatient.png"),
        # Generated by the custom downloader; SampleDataSource still requires a uri and file name (placeholders).
        uris="lu-dosimetry://synthetic-patient/seed-1",
        fileNames="study.json",
        nodeNames="LuDosimetrySyntheticPatient",
        customDownloader=loadSyntheticPatientSample,
    )


def loadSyntheticPatientSample(source=None):
    """Custom downloader of the Sample Data button: generate (once) and load the synthetic patient,
    then open the LuDosimetry module on it."""
    with slicer.util.tryWithErrorDisplay(_("Failed to load the synthetic patient."), waitCursor=True):
        if ensurePythonPackages(DOSIMETRY_REQUIREMENTS, _("The synthetic patient")):
            with LuSlicerCommon.progressDialog(_("LuDosimetry"), SYNTHETIC_PATIENT_MESSAGE, maximum=0):
                slicer.util.getModuleLogic("LuDosimetry").loadSyntheticPatient()
            slicer.util.selectModule("LuDosimetry")


# ---------- Python packages not bundled with Slicer (installed on first use, after asking)

# pip requirement -> import name. Kept in sync with Resources/LuDosimetry-requirements.txt (decay data used by
# every dose computation and by the synthetic patient).
DOSIMETRY_REQUIREMENTS = {"radioactivedecay>=0.4.21": "radioactivedecay", "icrp107-database>=0.0.3": "icrp107_database"}
# Only for report.html (figures); without it the other result files are still written.
REPORT_REQUIREMENTS = {"matplotlib>=3.7": "matplotlib"}


def ensurePythonPackages(requirements: dict, purpose: str, requester: str = "LuDosimetry") -> bool:
    """LuSlicerCommon.ensurePythonPackages with LuDosimetry as the requester (call inside tryWithErrorDisplay)."""
    return LuSlicerCommon.ensurePythonPackages(requirements, purpose, requester)


SYNTHETIC_PATIENT_MESSAGE = _("Generating the synthetic patient (first time only, about 20 s), then loading it...")
# Colours of the plot series (cycled).
PALETTE = [(0.89, 0.10, 0.11), (0.22, 0.49, 0.72), (0.30, 0.69, 0.29), (0.60, 0.31, 0.64),
           (1.00, 0.50, 0.00), (0.65, 0.34, 0.16), (0.97, 0.51, 0.75), (0.40, 0.40, 0.40)]
# Texts shown for the choices of the combo boxes bound to the parameter node.
CHOICE_LABELS = {
    "local_deposition": "local energy deposition", "voxel_s_value": "voxel S-value convolution",
    "auto": "automatic", "translation": "translation only", "rigid_ct": "rigid on CT", "local": "local, per tumour",
    "none": "none (same grid)", "mono": "mono-exponential", "biexp": "bi-exponential", "triexp": "tri-exponential",
    "trapezoid": "trapezoid", "mono_last2": "mono-exponential, last 2 points",
}


# ---------- Plain data held by the Logic (no computation)


@dataclasses.dataclass
class TimePointRow:
    """One row of the study table: the scan's values (``scan``, a LuDosimetryLib.io.scene_rows.ScanRow), its
    volumes and its registration."""

    scan: object = None
    spectNode: object = None
    ctNode: object = None
    transformNode: object = None
    registeredSpectNode: object = None
    registrationStatus: str = REG_PENDING
    registrationMethod: str = ""
    registrationMetric: float | None = None

    def __post_init__(self):
        if self.scan is None:
            from LuDosimetryLib.io.scene_rows import ScanRow

            self.scan = ScanRow()

    @classmethod
    def of(cls, spectNode=None, ctNode=None, **values):
        """A row with these volumes and ScanRow values (cycle, hours_post_injection, administered_activity_MBq, ...)."""
        from LuDosimetryLib.io.scene_rows import ScanRow

        return cls(ScanRow(**values), spectNode=spectNode, ctNode=ctNode)

    @property
    def cycle(self):
        return self.scan.cycle

    def label(self) -> str:
        return self.scanRow().label()

    def scanRow(self):
        """The row for the Lib: the scan's values with the names of its volumes."""
        return dataclasses.replace(self.scan, spect=self.spectNode.GetName() if self.spectNode else "",
                                   ct=self.ctNode.GetName() if self.ctNode else "")


@dataclasses.dataclass
class LoadedStudy:
    """What :meth:`LuDosimetryLogic.loadStudyIntoScene` created."""

    study: object
    rows: list
    tableNode: object
    segmentationNode: object
    recoveryTableNode: object
    referenceRow: int


# ---------- LuDosimetryParameterNode


@parameterNodeWrapper
class LuDosimetryParameterNode:
    """The state of the wizard, saved with the scene.

    studyTable - one row per time point (STUDY_COLUMNS) with node references to the SPECT, CT, transform and
        registered SPECT of each row; referenceRow - its cycle-1 reference row. segmentation - the VOIs (segment
        tags: kind, mode, fit model). doseMethod, fitModel, referenceHours, saveMaps, usePvc, stpMethod, planningRule, registrationMethod -
        LuDosimetryLib.pipeline.PipelineOptions. recoveryTable - columns volume_ml, rc. resultsTable, summaryTable,
        tacChart, adPerAaChart - outputs. response - RECIST response sent to LuResponse. *Status - wizard steps.
    """

    patientId: str = ""
    manifestPath: str = ""
    studyTable: vtkMRMLTableNode | None
    referenceRow: int = -1
    registrationMethod: Annotated[str, Choice(REGISTRATION_METHODS)] = "auto"
    fusionOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    segmentation: vtkMRMLSegmentationNode | None
    segmentEditorNode: vtkMRMLSegmentEditorNode | None
    minTumorVolumeMl: Annotated[float, WithinRange(0.0, 1000.0)] = 10.0
    doseMethod: Annotated[str, Choice(DOSE_METHODS)] = "local_deposition"
    fitModel: Annotated[str, Choice(FIT_MODELS)] = "auto"
    referenceHours: Annotated[float, WithinRange(0.0, 1000.0)] = 24.0
    saveMaps: bool = True
    usePvc: bool = True
    stpMethod: Annotated[str, Choice(STP_METHODS)] = "auto"
    planningRule: Annotated[str, Choice(PLANNING_RULES)] = "kidney_23Gy"
    recoveryTable: vtkMRMLTableNode | None
    resultsTable: vtkMRMLTableNode | None
    summaryTable: vtkMRMLTableNode | None
    tacChart: vtkMRMLPlotChartNode | None
    adPerAaChart: vtkMRMLPlotChartNode | None
    outputDirectory: pathlib.Path
    response: Annotated[str, Choice(RESPONSES)] = ""
    studyStatus: str = STATUS_NOT_STARTED
    registerStatus: str = STATUS_NOT_STARTED
    segmentStatus: str = STATUS_NOT_STARTED
    doseStatus: str = STATUS_NOT_STARTED
    resultsStatus: str = STATUS_NOT_STARTED


# ---------- LuDosimetryWidget


class LuDosimetryWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Wizard GUI. Holds no computation: every action is one Logic call inside tryWithErrorDisplay.

    Uses ScriptedLoadableModuleWidget base class, available at:
    https://github.com/Slicer/Slicer/blob/main/Base/Python/slicer/ScriptedLoadableModule.py
    """

    # Columns of the VOI table widget
    VOI_NAME, VOI_KIND, VOI_MODE, VOI_FIT, VOI_VOLUME, VOI_NOTE = range(6)

    def __init__(self, parent=None) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)  # needed for parameter node observation
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._rows = []  # TimePointRow list of the study table node (read again before each action)
        self._updatingGui = False
        self._steps = []
        self._observedSegmentation = None
        self._observedStudyTable = None
        self._storingRows = False
        self._running = False  # a dosimetry run is in progress

    def setup(self) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.setup(self)

        # Load widget from .ui file (created by Qt Designer).
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/LuDosimetry.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)

        # Set scene in MRML widgets (the .ui connects mrmlSceneChanged to each MRML widget's setMRMLScene).
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = LuDosimetryLogic()

        # Wizard: one step open at a time, each with a status label
        self._steps = [
            (self.ui.studyCollapsibleButton, self.ui.studyStatusLabel, "studyStatus", _("1. Study")),
            (self.ui.registerCollapsibleButton, self.ui.registerStatusLabel, "registerStatus", _("2. Register")),
            (self.ui.segmentCollapsibleButton, self.ui.segmentStatusLabel, "segmentStatus", _("3. Segment")),
            (self.ui.doseCollapsibleButton, self.ui.doseStatusLabel, "doseStatus", _("4. Dose")),
            (self.ui.resultsCollapsibleButton, self.ui.resultsStatusLabel, "resultsStatus", _("5. Results")),
        ]
        for index, (button, _label, _status, _title) in enumerate(self._steps):
            button.connect("contentsCollapsed(bool)", functools.partial(self.onStepToggled, index))
        for button, slot in (
                (self.ui.studyNextButton, lambda: self.openStep(1)), (self.ui.registerNextButton, lambda: self.openStep(2)),
                (self.ui.segmentNextButton, lambda: self.openStep(3)), (self.ui.doseNextButton, lambda: self.openStep(4)),
                # Study step
                (self.ui.loadManifestButton, self.onLoadManifest), (self.ui.loadSampleButton, self.onLoadSample),
                (self.ui.openDicomBrowserButton, self.onOpenDicomBrowser), (self.ui.fromSceneButton, self.onBuildFromScene),
                (self.ui.addTimePointButton, self.onAddTimePoint), (self.ui.removeTimePointButton, self.onRemoveTimePoint),
                (self.ui.validateStudyButton, lambda: self.onValidateStudy()),
                # Register step
                (self.ui.registerButton, self.onRegisterAll), (self.ui.showRegistrationButton, self.onShowRegistration),
                (self.ui.acceptRegistrationButton, self.onAcceptRegistration),
                # Segment, Dose and Results steps
                (self.ui.createSegmentationButton, self.onCreateSegmentation),
                (self.ui.totalSegmentatorButton, self.onTotalSegmentator),
                (self.ui.refreshVoiTableButton, lambda: self.updateVoiTable()),
                (self.ui.newRecoveryTableButton, self.onNewRecoveryTable), (self.ui.runDoseButton, self.onRunDosimetry),
                (self.ui.showTacButton, self.onShowTac), (self.ui.showAdPerAaButton, self.onShowAdPerAa),
                (self.ui.showMapsButton, self.onShowMaps), (self.ui.exportButton, self.onExport),
                (self.ui.sendToLuResponseButton, self.onSendToLuResponse)):
            button.connect("clicked(bool)", slot)
        self.ui.studyTableView.connect("selectionChanged()", self.onStudyRowSelected)
        self.ui.studySpectSelector.connect("currentNodeChanged(vtkMRMLNode*)", lambda _node: self.onStudyImageChanged("spect"))
        self.ui.studyCtSelector.connect("currentNodeChanged(vtkMRMLNode*)", lambda _node: self.onStudyImageChanged("ct"))
        self.ui.referenceTimePointComboBox.connect("currentIndexChanged(int)", self.onReferenceChanged)
        self.ui.registrationTableWidget.connect("itemSelectionChanged()", self.onRegistrationSelectionChanged)
        self.ui.registrationTableWidget.horizontalHeader().setStretchLastSection(True)

        # Segment step
        # VOI volumes are recomputed at most twice a second while the user paints
        self._voiTableTimer = qt.QTimer()
        self._voiTableTimer.setSingleShot(True)
        self._voiTableTimer.setInterval(500)
        self._voiTableTimer.connect("timeout()", self.updateVoiTable)
        self.ui.voiTableWidget.horizontalHeader().setStretchLastSection(True)
        self.ui.segmentEditorWidget.setMRMLScene(slicer.mrmlScene)
        # The effects a dosimetry user needs first; the others stay available after them.
        self.ui.segmentEditorWidget.setEffectNameOrder(["Paint", "Draw", "Erase", "LuAdaptiveThreshold", "Threshold",
                                                        "Islands", "Margin", "Scissors", "Smoothing", "Logical operators"])
        if hasattr(slicer.modules, "totalsegmentator"):
            self.ui.totalSegmentatorHintLabel.text = _("Uses the installed TotalSegmentator extension on the reference CT "
                                                      "(kidneys, liver, spleen); review the result before use.")
        else:
            self.ui.totalSegmentatorButton.enabled = False
            self.ui.totalSegmentatorHintLabel.text = _(
                "<i>TotalSegmentator is not installed.</i> To segment kidneys from CT automatically, install the "
                "<b>TotalSegmentator</b> extension with the Extensions Manager and restart Slicer; otherwise draw "
                "the kidneys with Paint or Threshold.")

        # Dose step
        self.ui.addRecoveryRowButton.connect("clicked()", self.ui.recoveryTableView.insertRow)  # the view edits the node
        self.ui.removeRecoveryRowButton.connect("clicked()", self.ui.recoveryTableView.deleteRow)

        # Results step
        self.ui.tacVoiComboBox.connect("currentIndexChanged(int)", lambda _index: self.onShowTac())

        # These connections ensure that we update parameter node when scene is closed
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        # Make sure parameter node is initialized (needed for module reload)
        self.initializeParameterNode()
        self.openStep(0)

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed."""
        self.removeObservers()

    def enter(self) -> None:
        """Called each time the user opens this module."""
        self.initializeParameterNode()
        self.ui.segmentEditorWidget.installKeyboardShortcuts()
        self.ui.segmentEditorWidget.setupViewObservations()

    def exit(self) -> None:
        """Called each time the user opens a different module."""
        self.ui.segmentEditorWidget.setActiveEffect(None)
        self.ui.segmentEditorWidget.uninstallKeyboardShortcuts()
        self.ui.segmentEditorWidget.removeViewObservations()
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event) -> None:
        """Called just before the scene is closed."""
        self.setParameterNode(None)
        self.observeStudyTable(None)  # also empties self._rows
        self.logic.lastResult = None

    def onSceneEndClose(self, caller, event) -> None:
        """Called just after the scene is closed."""
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        """Ensure parameter node exists and observed."""
        self.setParameterNode(self.logic.getParameterNode())
        self.logic.initializeParameterNodeDefaults(self._parameterNode)
        self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(self._parameterNode.segmentEditorNode)

    def setParameterNode(self, inputParameterNode: LuDosimetryParameterNode | None) -> None:
        """Set and observe the parameter node; the GUI follows it."""
        if self._parameterNode == inputParameterNode:
            return
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Widgets with the dynamic property SlicerParameterName in the .ui file are bound here.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
            for combo in (self.ui.registrationMethodComboBox, self.ui.doseMethodComboBox, self.ui.fitModelComboBox):
                LuSlicerCommon.labelComboItems(combo, CHOICE_LABELS)
            self.onParameterNodeModified()

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        """Update the parts of the GUI that are not bound to the parameter node."""
        if not self._parameterNode or self._updatingGui:
            return
        self._updatingGui = True
        try:
            pn = self._parameterNode
            self.observeStudyTable(pn.studyTable)  # another study (loaded, scene read) or the same one
            # Segment step: segment editor follows the VOI segmentation and the reference SPECT
            reference = self.referenceSpect()
            editor = self.ui.segmentEditorWidget
            if editor.segmentationNode() != pn.segmentation:
                editor.setSegmentationNode(pn.segmentation)
            if reference and editor.sourceVolumeNode() != reference:
                editor.setSourceVolumeNode(reference)
            self.observeSegmentation(pn.segmentation)
            self.ui.createSegmentationButton.enabled = reference is not None
            self.updateMinimumVolumeRule()
            # Dose step
            self.ui.recoveryTableView.setMRMLTableNode(pn.recoveryTable)
            self.ui.recoveryTableView.enabled = pn.usePvc
            self.ui.runDoseButton.enabled = bool(self._rows) and pn.segmentation is not None
            # Results step
            self.ui.resultsTableView.setMRMLTableNode(pn.resultsTable)
            hasResult = self.logic.lastResult is not None
            self.ui.exportButton.enabled = hasResult
            self.ui.exportButton.toolTip = (_("Write voi_cycle_doses.csv, summary.json and report.html (contract 2).") if hasResult
                                            else _("Run the dosimetry first (results of a saved scene are kept as tables only)."))
            self.ui.sendToLuResponseButton.enabled = pn.summaryTable is not None
            self.ui.summaryLabel.text = self.logic.summaryHtml(pn.summaryTable)
        finally:
            self._updatingGui = False
        self.updateStepStatus()  # after the updates above, which may have changed a status

    # ------------------------------------------------------------------ wizard

    def openStep(self, index: int) -> None:
        """Expand one step and collapse the others."""
        for i, (button, _label, _status, _title) in enumerate(self._steps):
            button.collapsed = i != index

    def onStepToggled(self, index: int, collapsed: bool) -> None:
        if collapsed:
            return
        for i, (button, _label, _status, _title) in enumerate(self._steps):
            if i != index and not button.collapsed:
                button.collapsed = True
        if index == 1:
            self.populateReferenceCombo()
            self.populateRegistrationTable()
        elif index == 2:
            self.updateVoiTable()
        elif index == 4:
            self.populateTacVoiCombo()

    def updateStepStatus(self) -> None:
        """Show each step's status in its title and status label."""
        colors = {STATUS_DONE: "#1b7f3b", STATUS_NOT_STARTED: "#666666"}
        for button, label, statusName, title in self._steps:
            status = getattr(self._parameterNode, statusName) or STATUS_NOT_STARTED
            kind = status.split(":", 1)[0].strip()
            color = colors.get(kind, "#b00020")
            label.text = f'<span style="color:{color}"><b>{status[0].upper() + status[1:]}</b></span>'
            shown = {STATUS_DONE: _("done"), STATUS_NOT_STARTED: _("not started")}.get(kind, _("needs attention"))
            button.text = f"{title}  ({shown})"

    def setStatus(self, statusName: str, kind: str, message: str = "") -> None:
        setattr(self._parameterNode, statusName, f"{kind}: {message}" if message else kind)

    # ------------------------------------------------------------------ helpers

    def referenceRowData(self):
        pn = self._parameterNode
        return self._rows[pn.referenceRow] if pn and 0 <= pn.referenceRow < len(self._rows) else TimePointRow()

    def referenceSpect(self):
        return self.referenceRowData().spectNode

    def referenceCt(self):
        return self.referenceRowData().ctNode

    def readRows(self) -> list:
        """The rows of the study table node as they are now (the user edits the node's cells in the view)."""
        self._rows = self.logic.readStudyRows(self._parameterNode.studyTable) if self._parameterNode else []
        return self._rows

    def storeRows(self) -> None:
        """Write self._rows to the study table node (created on first use)."""
        pn, rows = self._parameterNode, self._rows
        self._storingRows = True
        try:
            if pn.studyTable is None:
                pn.studyTable = self.logic.createStudyTable(pn.patientId)  # observed from now on
            self.logic.writeStudyRows(pn.studyTable, rows)
            self._rows = rows
        finally:
            self._storingRows = False

    def observeStudyTable(self, tableNode) -> None:
        """Show the study table node in the view and follow the user's edits of its cells."""
        if tableNode is self._observedStudyTable:
            return
        if self._observedStudyTable is not None:
            self.removeObserver(self._observedStudyTable, vtk.vtkCommand.ModifiedEvent, self.onStudyTableModified)
        self._observedStudyTable = tableNode
        self.ui.studyTableView.setMRMLTableNode(tableNode)
        if tableNode is not None:
            self.addObserver(tableNode, vtk.vtkCommand.ModifiedEvent, self.onStudyTableModified)
        self.readRows()
        self.onStudyRowSelected()

    def onStudyTableModified(self, caller=None, event=None) -> None:
        if self._storingRows or not self._parameterNode:
            return
        self.readRows()
        if self._parameterNode.studyStatus == STATUS_DONE:
            self._parameterNode.studyStatus = STATUS_ATTENTION + ": " + _("edited, validate again")

    def applyLoadedStudy(self, loaded: LoadedStudy) -> None:
        self.logic.applyLoadedStudy(self._parameterNode, loaded, self._parameterNode.manifestPath)
        self.showLoadedStudy()

    def showLoadedStudy(self) -> None:
        """Validate the study just applied to the parameter node and show its reference SPECT."""
        self.observeStudyTable(self._parameterNode.studyTable)
        self.onValidateStudy()
        reference = self.referenceSpect()
        if reference:
            slicer.util.setSliceViewerLayers(background=reference, foreground=None, fit=True)

    # ------------------------------------------------------------------ 1. Study

    def onLoadManifest(self) -> None:
        path = self.ui.manifestPathLineEdit.currentPath
        with slicer.util.tryWithErrorDisplay(_("Failed to load the study."), waitCursor=True):
            if not path:
                raise ValueError(_("Choose a study.json file first."))
            self._parameterNode.manifestPath = path
            self.applyLoadedStudy(self.logic.loadStudyIntoScene(path))

    def onLoadSample(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to load the synthetic patient."), waitCursor=True):
            if ensurePythonPackages(DOSIMETRY_REQUIREMENTS, _("The synthetic patient")):
                with LuSlicerCommon.progressDialog(_("LuDosimetry"), SYNTHETIC_PATIENT_MESSAGE, maximum=0):
                    self.logic.loadSyntheticPatient()  # also applies it to the parameter node
                self.ui.manifestPathLineEdit.currentPath = self._parameterNode.manifestPath
                self.showLoadedStudy()

    def onOpenDicomBrowser(self) -> None:
        slicer.util.selectModule("DICOM")

    def onBuildFromScene(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to build the study from the loaded volumes."), waitCursor=True):
            rows, messages = self.logic.studyRowsFromScene()
            if not rows:
                raise ValueError(_("No SPECT volume found in the scene. Load the series (DICOM module or Add Data) first."))
            self._rows = rows
            pn = self._parameterNode
            if not pn.patientId:
                pn.patientId = self.logic.patientIdFromScene() or "PATIENT"
            pn.referenceRow = self.logic.defaultReferenceRow(self._rows, pn.referenceHours)
            self.storeRows()
            self.observeStudyTable(pn.studyTable)
            self.onValidateStudy(extraMessages=messages)

    def onAddTimePoint(self) -> None:
        rows = self.readRows()
        last = rows[-1] if rows else None
        rows.append(TimePointRow(dataclasses.replace(last.scan, hours_post_injection=None, acquisition_time="",
                                                     spect="", ct="") if last else None))
        self.storeRows()
        self.observeStudyTable(self._parameterNode.studyTable)

    def onRemoveTimePoint(self) -> None:
        rows = self.readRows()
        row = self.selectedStudyRow()
        if rows:
            del rows[row if row >= 0 else len(rows) - 1]
        pn = self._parameterNode
        if pn.referenceRow >= len(rows):
            pn.referenceRow = self.logic.defaultReferenceRow(rows, pn.referenceHours)
        self.storeRows()

    def selectedStudyRow(self) -> int:
        """Row of the study table node holding the view's current cell, or -1."""
        view = self.ui.studyTableView
        if view.mrmlTableNode() is None or not view.currentIndex().isValid():
            return -1
        row = view.tableModel().mrmlTableRowIndex(view.sortFilterProxyModel().mapToSource(view.currentIndex()))
        return row if 0 <= row < len(self._rows) else -1

    def onStudyRowSelected(self) -> None:
        """The SPECT / CT selectors show the volumes of the selected row."""
        r = self.selectedStudyRow()
        for selector, node in ((self.ui.studySpectSelector, self._rows[r].spectNode if r >= 0 else None),
                               (self.ui.studyCtSelector, self._rows[r].ctNode if r >= 0 else None)):
            wasBlocked = selector.blockSignals(True)
            selector.setCurrentNode(node)
            selector.enabled = r >= 0
            selector.blockSignals(wasBlocked)

    def onStudyImageChanged(self, role: str) -> None:
        r = self.selectedStudyRow()
        if r < 0:
            return
        row = self.readRows()[r]
        if role == "spect":
            if self.ui.studySpectSelector.currentNode() != row.spectNode:
                row.registrationStatus, row.transformNode = REG_PENDING, None  # a new image invalidates the registration
            row.spectNode = self.ui.studySpectSelector.currentNode()
        else:
            row.ctNode = self.ui.studyCtSelector.currentNode()
        self.storeRows()
        self.onStudyTableModified()

    def onValidateStudy(self, extraMessages=None) -> None:
        """Validate the table with the manifest rules (the Lib's); list the problems by row and column."""
        with slicer.util.tryWithErrorDisplay(_("Validation failed."), waitCursor=True):
            pn = self._parameterNode
            rows = self.readRows()
            problems = self.logic.validateStudyRows(pn.patientId, rows)
            lines = []
            for p in problems:
                where = _("Study") if p.row < 0 else _("Row {row} ({label})").format(row=p.row + 1, label=rows[p.row].label())
                lines.append(f"<li><b>{where}{', ' + p.column if p.column else ''}</b>: {html.escape(p.message)}</li>")
            lines += [f"<li>{html.escape(m)}</li>" for m in extraMessages or []]
            if problems:
                self.ui.studyMessagesLabel.text = (f'<span style="color:#b00020">{len(problems)} problem(s):</span><ul>'
                                                   + "".join(lines) + "</ul>")
                self.setStatus("studyStatus", STATUS_ATTENTION, _("{n} problem(s) in the study table").format(n=len(problems)))
            else:
                self.ui.studyMessagesLabel.text = (_("Study is valid: {n} time point(s) in {c} cycle(s).").format(
                    n=len(rows), c=len({r.cycle for r in rows})) + ("<ul>" + "".join(lines) + "</ul>" if lines else ""))
                self.setStatus("studyStatus", STATUS_DONE)
                if not 0 <= pn.referenceRow < len(rows):
                    pn.referenceRow = self.logic.defaultReferenceRow(rows, pn.referenceHours)

    # ------------------------------------------------------------------ 2. Register

    def populateReferenceCombo(self) -> None:
        combo = self.ui.referenceTimePointComboBox
        wasBlocked = combo.blockSignals(True)
        combo.clear()
        firstCycle = min((r.cycle for r in self._rows), default=1)
        for index, row in enumerate(self._rows):
            if row.cycle == firstCycle:
                combo.addItem(row.label(), index)
        position = combo.findData(self._parameterNode.referenceRow)
        combo.currentIndex = position if position >= 0 else -1
        combo.blockSignals(wasBlocked)

    def onReferenceChanged(self, comboIndex: int) -> None:
        if comboIndex < 0 or not self._parameterNode:
            return
        row = self.ui.referenceTimePointComboBox.itemData(comboIndex)
        pn = self._parameterNode
        if row is None or row == pn.referenceRow:
            return
        pn.referenceRow = int(row)
        hours = self._rows[pn.referenceRow].scan.hours_post_injection
        if hours is not None:
            pn.referenceHours = hours  # the pipeline picks its reference scan by this time
        for r in self._rows:  # all registrations were made to the previous reference
            r.registrationStatus = REG_PENDING
        self.storeRows()
        self.populateRegistrationTable()
        pn.registerStatus = STATUS_ATTENTION + ": " + _("reference changed, register again")

    def populateRegistrationTable(self) -> None:
        table = self.ui.registrationTableWidget
        pn = self._parameterNode
        table.clearContents()
        table.setRowCount(len(self._rows))
        for r, row in enumerate(self._rows):
            status = REG_REFERENCE if r == pn.referenceRow else (row.registrationStatus or _("not registered"))
            metric = "" if row.registrationMetric is None else f"{row.registrationMetric:.4g}"
            for column, text in enumerate((row.label(), row.registrationMethod, metric, status)):
                item = qt.QTableWidgetItem(text)
                item.setFlags(qt.Qt.ItemIsSelectable | qt.Qt.ItemIsEnabled)
                table.setItem(r, column, item)
        table.resizeColumnsToContents()
        self.onRegistrationSelectionChanged()
        self.updateRegisterStatus()

    def selectedRegistrationRow(self) -> int:
        rows = {index.row() for index in self.ui.registrationTableWidget.selectedIndexes()}
        return min(rows) if len(rows) == 1 else -1

    def onRegistrationSelectionChanged(self) -> None:
        """Show/Accept act on the selected row; only a registration that passed its quality check can be accepted."""
        r = self.selectedRegistrationRow()
        row = self._rows[r] if 0 <= r < len(self._rows) and r != self._parameterNode.referenceRow else None
        self.ui.showRegistrationButton.enabled = row is not None and row.spectNode is not None
        self.ui.acceptRegistrationButton.enabled = row is not None and row.registrationStatus == REG_REGISTERED
        self.ui.acceptRegistrationButton.toolTip = (
            _("This registration failed its quality check: it cannot be accepted. Register again (another method), "
              "or leave it to the pipeline.") if row is not None and row.registrationStatus == REG_FAILED
            else _("Use this transform for the dose calculation."))

    def updateRegisterStatus(self) -> None:
        pn = self._parameterNode
        others = [row for r, row in enumerate(self._rows) if r != pn.referenceRow]
        if not others:
            return
        accepted = sum(1 for row in others if row.registrationStatus == REG_ACCEPTED)
        if accepted == len(others):
            pn.registerStatus = STATUS_DONE
        elif any(row.registrationStatus for row in others):
            pn.registerStatus = STATUS_ATTENTION + ": " + _("{a} of {n} time points accepted").format(a=accepted, n=len(others))

    def onRegisterAll(self) -> None:
        """Register every time point not accepted yet (the Lib's study-level registration)."""
        pn = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Registration failed."), waitCursor=True):
            with LuSlicerCommon.progressDialog(_("Registering time points"), _("Registering...")) as (progress, report):
                failed = self.logic.registerStudy(pn, self.readRows(), progress=report, cancel=lambda: progress.wasCanceled)
            self.storeRows()
            self.populateRegistrationTable()
            if failed:
                pn.registerStatus = STATUS_ATTENTION + ": " + _("failed for {labels}").format(labels=", ".join(failed))

    def onShowRegistration(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Cannot show the fused view."), waitCursor=True):
            pn = self._parameterNode
            self.logic.showFusedTimePoint(self._rows, pn.referenceRow, self.selectedRegistrationRow(), pn.fusionOpacity)

    def onAcceptRegistration(self) -> None:
        row = self._rows[self.selectedRegistrationRow()]
        if row.registrationStatus == REG_REGISTERED:
            row.registrationStatus = REG_ACCEPTED
            self.storeRows()
            self.populateRegistrationTable()

    # ------------------------------------------------------------------ 3. Segment

    def observeSegmentation(self, segmentationNode) -> None:
        """Refresh the VOI table when segments are added, removed or renamed."""
        if segmentationNode == self._observedSegmentation:
            return
        events = (slicer.vtkSegmentation.SegmentAdded, slicer.vtkSegmentation.SegmentRemoved,
                  slicer.vtkSegmentation.SegmentModified)
        if self._observedSegmentation is not None and self._observedSegmentation.GetSegmentation():
            for event in events:
                self.removeObserver(self._observedSegmentation.GetSegmentation(), event, self.onSegmentsChanged)
        self._observedSegmentation = segmentationNode
        if segmentationNode is not None:
            for event in events:
                self.addObserver(segmentationNode.GetSegmentation(), event, self.onSegmentsChanged)
        self.updateVoiTable()

    def onSegmentsChanged(self, caller=None, event=None) -> None:
        if not self.ui.segmentCollapsibleButton.collapsed:
            self._voiTableTimer.start()  # after the segment editor has finished its change

    def onCreateSegmentation(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to create the segmentation."), waitCursor=True):
            pn = self._parameterNode
            pn.segmentation = self.logic.createSegmentation(self.referenceSpect(), pn.patientId)

    def onTotalSegmentator(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("TotalSegmentator failed."), waitCursor=True):
            pn = self._parameterNode
            if pn.segmentation is None:
                pn.segmentation = self.logic.createSegmentation(self.referenceSpect(), pn.patientId)
            added = self.logic.segmentOrgansWithTotalSegmentator(self.referenceCt(), pn.segmentation)
            slicer.util.showStatusMessage(_("Added {n} organ VOIs from TotalSegmentator").format(n=len(added)), 5000)
            self.updateVoiTable()

    def updateVoiTable(self) -> None:
        """List the segments with their kind, mode, fit model and volume."""
        if not self._parameterNode:
            return
        pn = self._parameterNode
        table = self.ui.voiTableWidget
        table.clearContents()
        vois = self.logic.voiSummaries(pn.segmentation, self.referenceSpect(), pn.minTumorVolumeMl)
        table.setRowCount(len(vois))
        for r, voi in enumerate(vois):
            volume = "" if voi["volumeMl"] is None else f"{voi['volumeMl']:.1f}"
            for column, text in ((self.VOI_NAME, voi["name"]), (self.VOI_VOLUME, volume), (self.VOI_NOTE, voi["note"])):
                item = qt.QTableWidgetItem(text)
                item.setFlags(qt.Qt.ItemIsSelectable | qt.Qt.ItemIsEnabled)
                item.setForeground(qt.QBrush(qt.QColor("#b00020" if column == self.VOI_NOTE else "#000000")))
                table.setItem(r, column, item)
            for column, choices, key, tag in ((self.VOI_KIND, VOI_KINDS, "kind", KIND_TAG),
                                              (self.VOI_MODE, VOI_MODES, "mode", MODE_TAG),
                                              (self.VOI_FIT, [DEFAULT_FIT_MODEL] + FIT_MODELS, "fitModel", FIT_MODEL_TAG)):
                combo = qt.QComboBox()
                combo.addItems(choices)
                combo.setCurrentText(voi[key])
                combo.connect("currentTextChanged(QString)", functools.partial(self.onVoiPropertyChanged, voi["segmentId"], tag))
                table.setCellWidget(r, column, combo)
        table.resizeColumnsToContents()
        self.updateMinimumVolumeRule(vois)
        kinds = {v["kind"] for v in vois}
        pn.segmentStatus = (STATUS_NOT_STARTED if not vois else STATUS_DONE if kinds & {"tumor", "kidney"}
                            else STATUS_ATTENTION + ": " + _("no tumour or kidney VOI"))

    def onVoiPropertyChanged(self, segmentId: str, tag: str, value: str) -> None:
        self.logic.setVoiProperty(self._parameterNode.segmentation, segmentId, tag, value)

    def updateMinimumVolumeRule(self, vois=None) -> None:
        pn = self._parameterNode
        text = _("Rule (Macsuka et al., J Nucl Med 2026): tumours smaller than <b>{v:g} mL</b> on the cycle-1 reference scan are excluded "
                 "from the patient metrics; they stay listed with a flag.").format(v=pn.minTumorVolumeMl)
        small = [v["name"] for v in vois or [] if v["belowMinimum"]]
        if small:
            text += " " + _("Below the limit now: {names}.").format(names=", ".join(small))
        self.ui.minVolumeRuleLabel.text = text

    # ------------------------------------------------------------------ 4. Dose

    def onNewRecoveryTable(self) -> None:
        pn = self._parameterNode
        pn.recoveryTable = self.logic.createRecoveryTable(pn.patientId, None)

    def onRunDosimetry(self) -> None:
        pn = self._parameterNode
        if self._running:
            return  # one run at a time (the progress dialog is modal; this also guards scripted clicks)
        self._running = True
        self.ui.runDoseButton.enabled = False
        try:
            with slicer.util.tryWithErrorDisplay(_("Dosimetry failed."), waitCursor=False):
                if not ensurePythonPackages(DOSIMETRY_REQUIREMENTS, _("The dose calculation")):
                    return
                try:
                    with LuSlicerCommon.progressDialog(_("LuDosimetry"), _("Starting the dosimetry...")) as (progress, report):
                        result = self.logic.runDosimetry(pn, self.readRows(), progress=report,
                                                         cancel=lambda: progress.wasCanceled)
                except Exception as exc:
                    if self.logic.isCancellation(exc):
                        pn.doseStatus = STATUS_ATTENTION + ": " + _("cancelled")
                        return
                    pn.doseStatus = STATUS_ATTENTION + ": " + _("failed")
                    raise
                nodes = self.logic.createResultNodes(pn, result)
                warnings = result.summary.get("warnings") or []
                pn.doseStatus = (STATUS_DONE if not warnings else
                                 STATUS_ATTENTION + ": " + _("{n} warning(s), see Results").format(n=len(warnings)))
                pn.resultsStatus = STATUS_ATTENTION + ": " + _("review, then export")
                if nodes.get("tacChart") is not None:
                    self.logic.showChart(nodes["tacChart"])
                self.openStep(4)
        finally:
            self._running = False
            self.ui.runDoseButton.enabled = bool(self._rows) and pn.segmentation is not None

    # ------------------------------------------------------------------ 5. Results

    def populateTacVoiCombo(self) -> None:
        combo = self.ui.tacVoiComboBox
        current = combo.currentText
        wasBlocked = combo.blockSignals(True)
        combo.clear()
        combo.addItems(self.logic.tacVoiNames(self._parameterNode))
        if current:
            combo.setCurrentText(current)
        combo.blockSignals(wasBlocked)

    def onShowTac(self) -> None:
        if not self._parameterNode or self._updatingGui:
            return
        with slicer.util.tryWithErrorDisplay(_("No time-activity curves."), waitCursor=True):
            voi = self.ui.tacVoiComboBox.currentText
            if voi:
                self.logic.showTacForVoi(self._parameterNode, voi)
            self.logic.showChart(self._parameterNode.tacChart)

    def onShowAdPerAa(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("No AD/AA plot."), waitCursor=True):
            self.logic.showChart(self._parameterNode.adPerAaChart)

    def onShowMaps(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("No dose maps."), waitCursor=True):
            self.logic.showMaps(self._parameterNode, self.referenceCt() or self.referenceSpect())

    def onExport(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Export failed."), waitCursor=True):
            pn = self._parameterNode
            withReport = ensurePythonPackages(REPORT_REQUIREMENTS, _("The HTML report (report.html)"))
            files = self.logic.exportResults(self.logic.lastResult, pn.outputDirectory, report=withReport,
                                             saveMaps=pn.saveMaps)
            pn.resultsStatus = STATUS_DONE
            slicer.util.infoDisplay(_("Results written to {folder}:\n{files}").format(
                folder=pn.outputDirectory, files="\n".join(pathlib.Path(f).name for f in files)))

    def onSendToLuResponse(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not send the patient to LuResponse."), waitCursor=True):
            pn = self._parameterNode
            self.logic.sendToLuResponse(pn.summaryTable, pn.response)
            slicer.util.selectModule("LuResponse")


# ---------- LuDosimetryLogic


class LuDosimetryLogic(ScriptedLoadableModuleLogic):
    """MRML adapter around LuDosimetryLib: MRML nodes -> SimpleITK images / numpy arrays, one call of the Lib
    function named in each method's docstring, results -> new nodes named after the patient and cycle. Input
    nodes are never modified. Usable without the GUI (see the tests).

    Uses ScriptedLoadableModuleLogic base class, available at:
    https://github.com/Slicer/Slicer/blob/main/Base/Python/slicer/ScriptedLoadableModule.py
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.lastResult = None  # LuDosimetryLib.pipeline.PipelineResult of the last run (in memory only)
        self._wrappedParameterNode = None

    def getParameterNode(self):
        """The typed wrapper of the module's parameter node (made once per parameter node, not on every call)."""
        node = super().getParameterNode()
        if self._wrappedParameterNode is None or self._wrappedParameterNode.parameterNode is not node:
            self._wrappedParameterNode = LuDosimetryParameterNode(node)
        return self._wrappedParameterNode

    def initializeParameterNodeDefaults(self, parameterNode: LuDosimetryParameterNode) -> None:
        """Create the segment editor node and choose an output folder (no Lib call)."""
        if parameterNode.segmentEditorNode is None:
            parameterNode.segmentEditorNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentEditorNode",
                                                                                  "LuDosimetry segment editor")
        if str(parameterNode.outputDirectory) in ("", "."):
            parameterNode.outputDirectory = self.defaultOutputDirectory(parameterNode.patientId)

    @staticmethod
    def defaultOutputDirectory(patientId: str = "") -> pathlib.Path:
        """~/LuDosimetry/<patient ID>: one folder per patient, so exports of two patients never mix."""
        root = pathlib.Path.home() / "LuDosimetry"
        return root / patientId if patientId else root

    # ------------------------------------------------------------------ small converters (no computation)

    parseFloat = staticmethod(parseFloat)

    @staticmethod
    def parseInt(text, default=None):
        value = parseFloat(text)
        return default if value is None else int(value)

    @staticmethod
    def sitkImageFromVolume(volumeNode):
        """SimpleITK copy of a volume node's voxels and geometry (parent transforms are not applied)."""
        import sitkUtils

        return sitkUtils.PullVolumeFromSlicer(volumeNode)

    @staticmethod
    def volumeFromSitkImage(image, name: str, className: str = "vtkMRMLScalarVolumeNode"):
        """New volume node holding a SimpleITK image."""
        import sitkUtils

        return sitkUtils.PushVolumeToSlicer(image, name=name, className=className)

    writeTable = staticmethod(LuSlicerCommon.writeTableRows)
    readTable = staticmethod(LuSlicerCommon.readTableRows)

    # ------------------------------------------------------------------ study table node <-> rows

    def createStudyTable(self, patientId: str):
        tableNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", f"{patientId or 'LuDosimetry'} study")
        tableNode.SetAttribute("LuDosimetry.role", "study")
        tableNode.SetUseColumnTitleAsColumnHeader(True)  # the view shows names as headers, not as an editable row
        return tableNode

    def writeStudyRows(self, tableNode, rows) -> None:
        """Store the rows in the study table node (cells: LuDosimetryLib.io.scene_rows.scan_row_cells); volumes and
        transforms are node references (remapped on scene load)."""
        from LuDosimetryLib.io.scene_rows import scan_row_cells

        if tableNode is None:
            return
        with slicer.util.NodeModify(tableNode):
            cells = [scan_row_cells(row.scanRow()) + ["" if v is None else v for v in (
                row.registrationStatus, row.registrationMethod, row.registrationMetric)] for row in rows]
            self.writeTable(tableNode, STUDY_COLUMNS, cells)
            previous = self.parseInt(tableNode.GetAttribute(ROW_COUNT_ATTRIBUTE), default=0) or 0
            for r in range(max(previous, len(rows))):
                row = rows[r] if r < len(rows) else None
                for role, node in ((SPECT_ROLE, row and row.spectNode), (CT_ROLE, row and row.ctNode),
                                   (TRANSFORM_ROLE, row and row.transformNode), (REGISTERED_ROLE, row and row.registeredSpectNode)):
                    tableNode.SetNodeReferenceID(f"{role}.{r}", node.GetID() if node else None)
            tableNode.SetAttribute(ROW_COUNT_ATTRIBUTE, str(len(rows)))

    def readStudyRows(self, tableNode) -> list:
        """Rows of the study table node (Lib: LuDosimetryLib.io.scene_rows.scan_row_from_cells; text that is not a
        number is kept, and validation names it)."""
        from LuDosimetryLib.io.scene_rows import scan_row_from_cells

        rows = []
        for r, cells in enumerate(self.readTable(tableNode)):
            row = TimePointRow(scan_row_from_cells(cells), tableNode.GetNodeReference(f"{SPECT_ROLE}.{r}"),
                                           tableNode.GetNodeReference(f"{CT_ROLE}.{r}"))
            row.transformNode = tableNode.GetNodeReference(f"{TRANSFORM_ROLE}.{r}")
            row.registeredSpectNode = tableNode.GetNodeReference(f"{REGISTERED_ROLE}.{r}")
            row.registrationStatus = cells.get("registration_status", "")
            row.registrationMethod = cells.get("registration_method", "")
            row.registrationMetric = self.parseFloat(cells.get("registration_metric"))
            rows.append(row)
        return rows

    # ------------------------------------------------------------------ 1. Study

    def ensureSyntheticPatient(self, seed: int = 1) -> pathlib.Path:
        """Generate the synthetic patient once in Slicer's cache folder; return its study.json.

        Lib: LuDosimetryLib.synthetic.phantom.write_phantom_study(out_dir, PhantomConfig(seed=seed)).
        """
        import LuDosimetryLib
        from LuDosimetryLib.synthetic.phantom import PhantomConfig, write_phantom_study

        cache = pathlib.Path(slicer.mrmlScene.GetCacheManager().GetRemoteCacheDirectory())
        folder = cache / "LuDosimetry" / f"SyntheticPatient-seed{seed}-v{LuDosimetryLib.__version__}"
        manifest = folder / "study.json"
        if manifest.is_file() and (folder / "ground_truth.json").is_file():
            return manifest
        if folder.exists() and not manifest.is_file():
            import shutil

            shutil.rmtree(folder)  # an interrupted earlier generation
        return pathlib.Path(write_phantom_study(folder, PhantomConfig(seed=seed)))

    def loadSyntheticPatient(self, seed: int = 1) -> LoadedStudy:
        """Generate (once) and load the synthetic patient, and make it the module's current study.

        Lib: LuDosimetryLib.synthetic.phantom.write_phantom_study, then as loadStudyIntoScene.
        """
        manifest = self.ensureSyntheticPatient(seed)
        loaded = self.loadStudyIntoScene(manifest)
        self.applyLoadedStudy(self.getParameterNode(), loaded, manifest)
        return loaded

    def applyLoadedStudy(self, parameterNode: LuDosimetryParameterNode, loaded: LoadedStudy, manifestPath=None) -> None:
        """Make a loaded study the current one in the parameter node (no Lib call)."""
        with slicer.util.NodeModify(parameterNode):
            parameterNode.patientId = loaded.study.patient_id
            if pathlib.Path(parameterNode.outputDirectory) in (self.defaultOutputDirectory(), pathlib.Path(".")) or \
                    pathlib.Path(parameterNode.outputDirectory).parent == self.defaultOutputDirectory():
                parameterNode.outputDirectory = self.defaultOutputDirectory(loaded.study.patient_id)
            parameterNode.manifestPath = str(manifestPath or "")
            parameterNode.studyTable = loaded.tableNode
            parameterNode.referenceRow = loaded.referenceRow
            parameterNode.segmentation = loaded.segmentationNode
            parameterNode.recoveryTable = loaded.recoveryTableNode
            parameterNode.usePvc = loaded.recoveryTableNode is not None
            reference = loaded.rows[loaded.referenceRow] if 0 <= loaded.referenceRow < len(loaded.rows) else None
            if reference is not None and isinstance(reference.scan.hours_post_injection, float):
                parameterNode.referenceHours = reference.scan.hours_post_injection
            parameterNode.studyStatus = STATUS_DONE
            parameterNode.segmentStatus = STATUS_DONE if loaded.segmentationNode else STATUS_NOT_STARTED
            parameterNode.registerStatus = parameterNode.doseStatus = parameterNode.resultsStatus = STATUS_NOT_STARTED
        self.lastResult = None

    def loadStudyIntoScene(self, manifestPath) -> LoadedStudy:
        """Load a study manifest with its images, segmentation and recovery coefficients into new nodes.

        Lib: LuDosimetryLib.io.study.load_study (validation; raises ManifestError listing every problem),
        LuDosimetryLib.io.images.read_image (NRRD/NIfTI/MHA/DICOM with quantitative DICOM scaling),
        LuDosimetryLib.io.scene_rows.rows_from_study.
        """
        from LuDosimetryLib.io import images as image_io
        from LuDosimetryLib.io.scene_rows import rows_from_study
        from LuDosimetryLib.io.study import load_study

        study = load_study(manifestPath)
        pid = study.patient_id
        rows, scans = [], iter(rows_from_study(study))
        for cycle in study.cycles:
            for tp in cycle.timepoints:
                name = f"{pid} C{cycle.cycle} {tp.hours_post_injection:g}h"
                spectNode = self.volumeFromSitkImage(image_io.read_image(tp.spect, series_uid=tp.spect_series_uid),
                                                     f"{name} SPECT")
                ctNode = (self.volumeFromSitkImage(image_io.read_image(tp.ct, series_uid=tp.ct_series_uid), f"{name} CT")
                          if tp.ct is not None else None)
                rows.append(TimePointRow(next(scans), spectNode, ctNode))
        tableNode = self.createStudyTable(pid)
        tableNode.SetAttribute("LuDosimetry.radionuclide", study.radionuclide)
        self.writeStudyRows(tableNode, rows)
        referenceRow = self.defaultReferenceRow(rows, 24.0)
        segmentationNode = None
        if study.segmentation_file is not None and 0 <= referenceRow < len(rows):
            segmentationNode = self.segmentationFromLabelmapFile(study.segmentation_file, study.vois,
                                                                 rows[referenceRow].spectNode, pid)
        recoveryTableNode = None
        if study.recovery_coefficients:
            recoveryTableNode = self.createRecoveryTable(pid, study.recovery_coefficients)
        for warning in study.warnings:
            logging.warning(f"LuDosimetry study {pid}: {warning}")
        return LoadedStudy(study=study, rows=rows, tableNode=tableNode, segmentationNode=segmentationNode,
                           recoveryTableNode=recoveryTableNode, referenceRow=referenceRow)

    def segmentationFromLabelmapFile(self, labelmapPath, vois, referenceVolumeNode, patientId: str):
        """New segmentation node (geometry of the reference SPECT) with one segment per manifest VOI.

        Lib: LuDosimetryLib.imaging.voi_masks.voi_rois (as the pipeline: nearest-neighbour resampling onto the
        reference grid; a label that loses all its voxels is an error), LuDosimetryLib.io.images.read_image.
        """
        from LuDosimetryLib.imaging.voi_masks import voi_rois
        from LuDosimetryLib.io import images as image_io

        rois, warnings = voi_rois(vois, self.sitkImageFromVolume(referenceVolumeNode),
                                  labelmap=image_io.read_image(labelmapPath), source=str(labelmapPath))
        for warning in warnings:
            logging.warning(f"LuDosimetry: {warning}")
        segmentationNode = self.createSegmentation(referenceVolumeNode, patientId)
        segmentation = segmentationNode.GetSegmentation()
        for voi in (v for v in vois if v.name in rois):
            segmentId = segmentation.AddEmptySegment(voi.name, voi.name)
            slicer.util.updateSegmentBinaryLabelmapFromArray(rois[voi.name].astype("uint8"), segmentationNode, segmentId,
                                                             referenceVolumeNode)
            segment = segmentation.GetSegment(segmentId)
            for tag, value in ((KIND_TAG, voi.kind), (MODE_TAG, voi.mode), (FIT_MODEL_TAG, DEFAULT_FIT_MODEL)):
                segment.SetTag(tag, value)
            segment.SetColor(*self.defaultVoiColor(voi.kind))
        return segmentationNode

    @staticmethod
    def defaultVoiColor(kind: str) -> tuple:
        return {"tumor": (0.95, 0.25, 0.2), "kidney": (0.95, 0.65, 0.25)}.get(kind, (0.4, 0.7, 0.95))

    def patientIdFromScene(self) -> str:
        """Patient ID of the first DICOM-loaded volume (subject hierarchy), or ""."""
        shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
        for volumeNode in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"):
            item = shNode.GetItemByDataNode(volumeNode)
            patientItem = shNode.GetItemAncestorAtLevel(item, "Patient") if item else 0
            if patientItem:
                patientId = shNode.GetItemUID(patientItem, "DICOM")
                if patientId:
                    return patientId
        return ""

    def dicomSeriesOfVolume(self, volumeNode):
        """(path, series UID) of the DICOM files a volume was loaded from (DICOM database), or (None, None)."""
        instanceUids = (volumeNode.GetAttribute("DICOM.instanceUIDs") or "").split()
        if not instanceUids or not getattr(slicer, "dicomDatabase", None):
            return None, None
        files = [slicer.dicomDatabase.fileForInstance(uid) for uid in instanceUids]
        files = [f for f in files if f]
        if not files:
            return None, None
        seriesUid = slicer.dicomDatabase.instanceValue(instanceUids[0], "0020,000E") or None
        if len(files) == 1:
            return pathlib.Path(files[0]), seriesUid
        return pathlib.Path(files[0]).parent, seriesUid

    def studyRowsFromScene(self) -> tuple:
        """One time point per SPECT/NM volume in the scene, grouped into cycles, with its CT.

        For volumes loaded from the DICOM database the headers give modality, times, activity, units and
        duration (Lib: LuDosimetryLib.io.dicom.read_series_info); cycles and CT pairing are the DICOM module's
        grouping (Lib: LuDosimetryLib.io.scene_rows.rows_from_series). Emission series whose quantitative scaling
        Slicer's DICOM reader does not apply are read again into a new volume (Lib:
        LuDosimetryLib.io.dicom.read_dicom_image). Outputs of this module (registered copies, maps) are left
        out. Returns (rows, messages).
        """
        from LuDosimetryLib.io import dicom as dicom_io
        from LuDosimetryLib.io.scene_rows import rows_from_series

        scans, cts, messages = [], [], []
        for volumeNode in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"):
            if volumeNode.IsA("vtkMRMLLabelMapVolumeNode") or any(
                    volumeNode.GetAttribute(a) for a in ("LuDosimetry.map", "LuDosimetry.sourceVolume", REGISTERED_ROLE)):
                continue
            path, seriesUid = self.dicomSeriesOfVolume(volumeNode)
            info = None
            if path is not None:
                try:
                    info = dicom_io.read_series_info(path, seriesUid if path.is_dir() else None)
                except Exception as exc:  # a header problem must not stop the other series
                    messages.append(f"{volumeNode.GetName()}: DICOM header not read ({exc})")
            if info is not None and not (info.is_emission or info.modality == "CT"):
                continue  # MR, planar, structured reports...: not a time point nor its CT
            if info is not None and info.is_emission and info.scaling != "rescale slope/intercept (GDCM)":
                image = dicom_io.read_dicom_image(path, seriesUid if path.is_dir() else None)
                scaled = self.volumeFromSitkImage(image.image, f"{volumeNode.GetName()} ({info.spect_units})")
                scaled.SetAttribute("LuDosimetry.sourceVolume", volumeNode.GetID())
                messages.append(f"{volumeNode.GetName()}: read again with quantitative scaling ({image.scaling})")
                volumeNode = scaled
            isCt = info.modality == "CT" if info is not None else " CT" in f" {volumeNode.GetName().upper()}"
            (cts if isCt else scans).append((volumeNode.GetID(), info))
        node = slicer.mrmlScene.GetNodeByID
        scanRows, more = rows_from_series(scans, cts, names={nodeId: node(nodeId).GetName() for nodeId, _i in scans + cts})
        return [TimePointRow(r, node(r.spect), node(r.ct) if r.ct else None) for r in scanRows], messages + more

    def defaultReferenceRow(self, rows, referenceHours: float = 24.0) -> int:
        """Row of the first cycle's scan closest to referenceHours (Lib: LuDosimetryLib.io.scene_rows.default_reference_row)."""
        from LuDosimetryLib.io.scene_rows import default_reference_row

        return default_reference_row([r.scanRow() for r in rows], referenceHours)

    def rowsStudy(self, patientId: str, rows, vois=(), recoveryCoefficients=None, radionuclide: str = "Lu-177",
                  require: bool = False):
        """The Study of the rows, built once by the manifest validation, or the problems per row and column
        (with require, a ValueError listing them).

        Lib: LuDosimetryLib.io.scene_rows.study_from_rows (LuDosimetryLib.io.study.study_from_dict with
        check_files=False); returns its RowsStudy (study, problems, keys row -> (cycle, time-point index)).
        """
        from LuDosimetryLib.io.scene_rows import study_from_rows

        rs = study_from_rows(patientId, [r.scanRow() for r in rows], radionuclide, vois, recoveryCoefficients)
        if require and not rs.ok:
            raise ValueError(_("The study table has problems (Study step):\n") + rs.problems_text())
        return rs

    def validateStudyRows(self, patientId: str, rows, radionuclide: str = "Lu-177") -> list:
        """Problems of the study table (LuDosimetryLib.io.scene_rows.RowProblem: row, column, message)."""
        return self.rowsStudy(patientId, rows, radionuclide=radionuclide).problems

    # ------------------------------------------------------------------ 2. Register

    def transformNodeFromSitk(self, transform, name: str, transformNode=None):
        """Linear transform node holding a SimpleITK transform (fixed -> moving, LPS) as its "from parent" RAS matrix.

        Lib: LuDosimetryLib.imaging.transform_matrix.slicer_from_parent_ras. The matrix is stored in the node, so it
        is saved with the scene (no temporary transform file).
        """
        from LuDosimetryLib.imaging.transform_matrix import slicer_from_parent_ras

        if transformNode is None or transformNode.GetScene() is None:
            transformNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode",
                                                               slicer.mrmlScene.GetUniqueNameByString(name))
        transformNode.SetMatrixTransformFromParent(slicer.util.vtkMatrixFromArray(slicer_from_parent_ras(transform)))
        return transformNode

    def sitkTransformFromNode(self, transformNode):
        """SimpleITK transform (fixed -> moving, LPS) of a linear transform node's "from parent" matrix.

        Lib: LuDosimetryLib.imaging.transform_matrix.itk_transform_from_ras (inverse of transformNodeFromSitk).
        """
        from LuDosimetryLib.imaging.transform_matrix import itk_transform_from_ras

        matrix = vtk.vtkMatrix4x4()
        transformNode.GetMatrixTransformFromParent(matrix)
        return itk_transform_from_ras(slicer.util.arrayFromVTKMatrix(matrix))

    def registerStudy(self, parameterNode: LuDosimetryParameterNode, rows, progress=None, cancel=None) -> list:
        """Register every time point that is not accepted yet to the reference, with the pipeline's strategy (within
        the reference cycle to the reference scan; a later cycle's reference scan to the cycle-1 reference, its other
        scans to that one, chained; method "local": per tumour after the global one). Each row gets its transform
        node, a registered copy of its SPECT for display (input volumes are not modified) and its status: "failed"
        when the registration's quality check fails (it cannot be accepted then). Returns the labels of failed rows.

        Lib: LuDosimetryLib.pipeline.register_scans (study-level registration; accepted rows are passed as given
        transforms), LuDosimetryLib.pipeline.define_vois + local_boxes for method "local".
        """
        from LuDosimetryLib import pipeline

        method = parameterNode.registrationMethod
        referenceRow = parameterNode.referenceRow
        if not (0 <= referenceRow < len(rows)) or rows[referenceRow].spectNode is None:
            raise ValueError(_("Choose the reference time point (with a SPECT volume) first."))
        local = method == "local" and parameterNode.segmentation is not None
        rs = self.rowsStudy(parameterNode.patientId, rows, self.voiDefinitions(parameterNode.segmentation) if local else (),
                            require=True)
        options = self.pipelineOptions(parameterNode, method)
        images = self.studyImages(rows, rs.keys, referenceRow, parameterNode.segmentation if local else None)
        refKey = rs.keys[referenceRow]
        boxes = None
        if method == "local":
            if images.masks is None:
                raise ValueError(_('Method "local" registers each tumour on its own: draw the tumour VOIs first '
                                   '(Segment step), or choose "automatic".'))
            vois, _warnings, _density = pipeline.define_vois(rs.study, images, images.spect[refKey],
                                                             images.ct.get(refKey), options)
            boxes = pipeline.local_boxes(vois, images.spect[refKey], options.local_box_margin_mm)
            if not boxes:
                raise ValueError(_('Method "local" needs at least one included tumour VOI.'))
        accepted = {rs.keys[i]: t for i, t in self.acceptedTransforms(rows, referenceRow).items()}
        # One place calls the study-level registration of the Lib (redirect here when it moves).
        regs, _registered, _local = pipeline.register_scans(rs.study, images, refKey, method, progress, cancel,
                                                            transforms=accepted, boxes=boxes,
                                                            reference_hours=options.reference_hours)
        failed = []
        for index, row in enumerate(rows):
            key = rs.keys[index]
            if index == referenceRow or key in accepted:
                continue
            result = regs.get(key)
            row.registrationMethod = result.method if result is not None else method
            row.registrationMetric = getattr(result, "metric_value", None)
            if result is None:  # method "none": same grid, nothing to transform
                row.registrationStatus = REG_REGISTERED
                continue
            for warning in result.warnings:
                logging.warning(f"Registration of {row.label()}: {warning}")
            row.transformNode = self.transformNodeFromSitk(result.transform, f"{parameterNode.patientId} {row.label()} to reference",
                                                           row.transformNode)
            if row.registeredSpectNode is None or row.registeredSpectNode.GetScene() is None:
                row.registeredSpectNode = slicer.modules.volumes.logic().CloneVolume(
                    slicer.mrmlScene, row.spectNode, f"{parameterNode.patientId} {row.label()} SPECT registered")
                row.registeredSpectNode.SetAttribute(REGISTERED_ROLE, row.spectNode.GetID())
            row.registeredSpectNode.SetAndObserveTransformNodeID(row.transformNode.GetID())
            row.registrationStatus = REG_REGISTERED if result.ok else REG_FAILED
            if not result.ok:
                failed.append(row.label())
        return failed

    def showFusedTimePoint(self, rows, referenceRow: int, row: int, opacity: float = 0.5) -> None:
        """Fused view: reference CT (or SPECT) in the background, registered SPECT in hot colours on top."""
        reference, moving = rows[referenceRow], rows[row]
        foreground = moving.registeredSpectNode or moving.spectNode
        if foreground is None:
            raise ValueError(_("Time point {label} has no SPECT volume.").format(label=moving.label()))
        displayNode = foreground.GetDisplayNode()
        if displayNode is None:
            foreground.CreateDefaultDisplayNodes()
            displayNode = foreground.GetDisplayNode()
        displayNode.SetAndObserveColorNodeID("vtkMRMLPETProceduralColorNodePET-Heat")
        background = reference.ctNode or reference.spectNode
        slicer.util.setSliceViewerLayers(background=background, foreground=foreground,
                                         foregroundOpacity=opacity, fit=True)

    # ------------------------------------------------------------------ 3. Segment

    def createSegmentation(self, referenceVolumeNode, patientId: str):
        """New empty segmentation in the geometry of the reference SPECT."""
        if referenceVolumeNode is None:
            raise ValueError(_("Load the study and choose the reference time point first."))
        segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{patientId} VOIs")
        segmentationNode.CreateDefaultDisplayNodes()
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(referenceVolumeNode)
        return segmentationNode

    @staticmethod
    def defaultKind(segmentName: str) -> str:
        """VOI kind from a segment name (Lib: LuDosimetryLib.imaging.voi_masks.default_kind)."""
        from LuDosimetryLib.imaging.voi_masks import default_kind

        return default_kind(segmentName)

    @staticmethod
    def segmentTag(segment, tag: str, default: str) -> str:
        """Value of a segment tag (vtkSegment.GetTag fills a vtk.mutable), or default."""
        value = vtk.mutable("")
        return str(value) if segment.GetTag(tag, value) else default

    def voiProperties(self, segment) -> dict:
        """Kind, mode and fit model of a segment (tags, with defaults from the segment name)."""
        kind = self.segmentTag(segment, KIND_TAG, self.defaultKind(segment.GetName()))
        mode = self.segmentTag(segment, MODE_TAG, "as_drawn")
        fitModel = self.segmentTag(segment, FIT_MODEL_TAG, DEFAULT_FIT_MODEL)
        return {"kind": kind if kind in VOI_KINDS else "organ", "mode": mode if mode in VOI_MODES else "as_drawn",
                "fitModel": fitModel}

    def setVoiProperty(self, segmentationNode, segmentId: str, tag: str, value: str) -> None:
        """Store kind / mode / fit model of a VOI as a segment tag (saved with the segmentation)."""
        segment = segmentationNode.GetSegmentation().GetSegment(segmentId) if segmentationNode else None
        if segment is not None:
            segment.SetTag(tag, value)

    def segmentMask(self, segmentationNode, segmentId: str, referenceVolumeNode):
        """Binary mask [k, j, i] of a segment on the reference volume grid (binary labelmap representation)."""
        return slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, referenceVolumeNode)

    def voiSummaries(self, segmentationNode, referenceVolumeNode, minTumorVolumeMl: float) -> list:
        """One dict per segment: segmentId, name, kind, mode, fitModel, volumeMl, note, belowMinimum (volume = voxel
        count on the reference grid; Lib: LuDosimetryLib.imaging.voi_masks.voi_summary)."""
        from LuDosimetryLib.imaging.voi_masks import voi_summary

        if segmentationNode is None:
            return []
        segmentation = segmentationNode.GetSegmentation()
        voxelMl = (lambda sx, sy, sz: sx * sy * sz / 1000.0)(*referenceVolumeNode.GetSpacing()) if referenceVolumeNode else None
        vois = []
        for index in range(segmentation.GetNumberOfSegments()):
            segmentId = segmentation.GetNthSegmentID(index)
            segment = segmentation.GetSegment(segmentId)
            voi = {"segmentId": segmentId, "name": segment.GetName(), **self.voiProperties(segment)}
            count = int((self.segmentMask(segmentationNode, segmentId, referenceVolumeNode) > 0).sum()) if voxelMl else None
            summary = voi_summary(voi["kind"], voi["mode"], count, voxelMl, minTumorVolumeMl)
            vois.append({**voi, "volumeMl": summary["volume_ml"], "note": summary["note"],
                         "belowMinimum": summary["below_minimum"]})
        return vois

    def segmentOrgansWithTotalSegmentator(self, ctNode, segmentationNode) -> list:
        """Kidneys, liver and spleen from the reference CT with the optional TotalSegmentator extension.

        Not a LuDosimetryLib call: TotalSegmentatorLogic.process of the TotalSegmentator extension (guarded;
        the user is asked before it installs its own Python packages). Returns the names of the added segments.
        """
        if not hasattr(slicer.modules, "totalsegmentator"):
            raise RuntimeError(_("The TotalSegmentator extension is not installed (Extensions Manager)."))
        if ctNode is None:
            raise ValueError(_("The reference time point has no CT."))
        if not slicer.util.confirmOkCancelDisplay(
                _("TotalSegmentator will segment the kidneys, liver and spleen on the reference CT. On first use it "
                  "downloads its AI model and Python packages (several GB). Continue?")):
            return []
        import TotalSegmentator

        tsLogic = TotalSegmentator.TotalSegmentatorLogic()
        output = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "LuDosimetry TotalSegmentator output")
        added = []
        try:
            tsLogic.setupPythonRequirements()
            # interactive: TotalSegmentator offers its fast mode when there is no GPU (minutes instead of an hour)
            tsLogic.process(ctNode, output, task="total", subset=["kidney_left", "kidney_right", "liver", "spleen"],
                            interactive=True)
            source = output.GetSegmentation()
            target = segmentationNode.GetSegmentation()
            for index in range(source.GetNumberOfSegments()):
                segmentId = source.GetNthSegmentID(index)
                name = source.GetSegment(segmentId).GetName()
                if target.GetSegmentIdBySegmentName(name):
                    logging.warning(f"LuDosimetry: a VOI named {name} exists already; TotalSegmentator's {name} not added")
                    continue  # VOI names are the keys of the results: never two with one name
                target.CopySegmentFromSegmentation(source, segmentId)
                segment = target.GetSegment(segmentId)
                if segment is not None:
                    segment.SetTag(KIND_TAG, self.defaultKind(name))
                    segment.SetTag(MODE_TAG, "as_drawn")
                    added.append(name)
        finally:
            slicer.mrmlScene.RemoveNode(output)
        return added

    def voiDefinitions(self, segmentationNode) -> list:
        """LuDosimetryLib.io.study.VoiDefinition per segment (label = segment index + 1, used only in messages).

        Lib: LuDosimetryLib.imaging.voi_masks.check_voi_names -- duplicate or empty names stop here, before any
        computation.
        """
        from LuDosimetryLib.imaging.voi_masks import check_voi_names
        from LuDosimetryLib.io.study import VoiDefinition

        segmentation = segmentationNode.GetSegmentation()
        segments = [segmentation.GetSegment(segmentation.GetNthSegmentID(i)) for i in range(segmentation.GetNumberOfSegments())]
        check_voi_names(segment.GetName() for segment in segments)
        return [VoiDefinition(label=index + 1, name=segment.GetName(), kind=self.voiProperties(segment)["kind"],
                              mode=self.voiProperties(segment)["mode"]) for index, segment in enumerate(segments)]

    def voiMasks(self, segmentationNode, referenceVolumeNode) -> dict:
        """{segment name: binary mask [k, j, i] on the reference grid}, one per segment: overlapping segments
        (a tumour inside an organ) keep all their voxels (LuDosimetryLib.pipeline.StudyImages.masks)."""
        segmentation = segmentationNode.GetSegmentation()
        masks = {}
        for index in range(segmentation.GetNumberOfSegments()):
            segmentId = segmentation.GetNthSegmentID(index)
            masks[segmentation.GetSegment(segmentId).GetName()] = self.segmentMask(segmentationNode, segmentId,
                                                                                   referenceVolumeNode) > 0
        return masks

    # ------------------------------------------------------------------ 4. Dose

    def createRecoveryTable(self, patientId: str, recoveryCoefficients: dict | None):
        """Table node with columns volume_ml and rc (editable, saved with the scene)."""
        tableNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", f"{patientId or 'LuDosimetry'} recovery coefficients")
        tableNode.SetAttribute("LuDosimetry.role", "recoveryCoefficients")
        volumes = list((recoveryCoefficients or {}).get("volume_ml", [])) or ["", ""]
        rcs = list((recoveryCoefficients or {}).get("rc", [])) or ["", ""]
        self.writeTable(tableNode, ["volume_ml", "rc"], list(zip(volumes, rcs)), numericColumns=("volume_ml", "rc"))
        tableNode.SetColumnUnitLabel("volume_ml", "mL")
        tableNode.SetColumnDescription("rc", "recovery coefficient (measured / true activity concentration)")
        source = (recoveryCoefficients or {}).get("source")
        if source:
            tableNode.SetAttribute("LuDosimetry.source", str(source))
        return tableNode

    def recoveryCoefficientsFromTable(self, tableNode) -> dict | None:
        """Contract-1 recovery_coefficients dict from the table (rows with both values), or None if empty; the
        manifest validation checks it (LuDosimetryLib.io.scene_rows.study_from_rows)."""
        pairs = [(self.parseFloat(c.get("volume_ml")), self.parseFloat(c.get("rc"))) for c in self.readTable(tableNode)]
        pairs = [p for p in pairs if None not in p]
        return {"volume_ml": [v for v, _rc in pairs], "rc": [rc for _v, rc in pairs]} if pairs else None

    def pipelineOptions(self, parameterNode: LuDosimetryParameterNode, registration: str):
        """LuDosimetryLib.pipeline.PipelineOptions from the parameter node."""
        from LuDosimetryLib.pipeline import PipelineOptions

        return PipelineOptions(registration=registration, dose_method=parameterNode.doseMethod,
                               fit_model=parameterNode.fitModel, min_tumor_volume_ml=parameterNode.minTumorVolumeMl,
                               save_maps=parameterNode.saveMaps, reference_hours=parameterNode.referenceHours,
                               stp_method=parameterNode.stpMethod, planning_rule=parameterNode.planningRule)

    def studyImages(self, rows, keys: dict, referenceRow: int, segmentationNode=None):
        """LuDosimetryLib.pipeline.StudyImages from the scene: SPECT (counts converted to Bq/mL) and CT per
        (cycle, time-point index) of ``keys`` (row -> key), and one mask per VOI on the reference grid.

        Lib: LuDosimetryLib.io.images.counts_to_bq_per_ml for counts. Input nodes are only read.
        """
        from LuDosimetryLib.io import images as image_io
        from LuDosimetryLib.pipeline import StudyImages

        spect, ct = {}, {}
        for index, key in keys.items():
            row = rows[index]
            image = self.sitkImageFromVolume(row.spectNode)
            if row.scan.spect_units == "counts":
                image = image_io.counts_to_bq_per_ml(image, row.scan.calibration_cps_per_MBq, row.scan.acquisition_duration_s)
            spect[key] = image
            ct[key] = self.sitkImageFromVolume(row.ctNode) if row.ctNode is not None else None
        masks = None
        if segmentationNode is not None and segmentationNode.GetSegmentation().GetNumberOfSegments():
            masks = self.voiMasks(segmentationNode, rows[referenceRow].spectNode)
        return StudyImages(spect=spect, ct=ct, masks=masks)

    def acceptedTransforms(self, rows, referenceRow: int) -> dict:
        """{row index: sitk.Transform} of the registrations accepted in the Register step (fixed -> moving)."""
        return {i: self.sitkTransformFromNode(r.transformNode) for i, r in enumerate(rows)
                if i != referenceRow and r.registrationStatus == REG_ACCEPTED and r.transformNode is not None}

    def runDosimetry(self, parameterNode: LuDosimetryParameterNode, rows, progress=None, cancel=None):
        """Run the per-patient dosimetry on the scene data; returns the PipelineResult (also kept in lastResult).

        Lib: LuDosimetryLib.io.scene_rows.study_from_rows (the Study Validate accepted), then
        LuDosimetryLib.pipeline.run_study(study, images, options, progress, cancel, transforms) with one mask per VOI.
        Registrations accepted in the Register step are passed as transforms; the pipeline registers the other
        scans itself with the chosen method, and a warning says so.
        """
        segmentationNode = parameterNode.segmentation
        if segmentationNode is None or segmentationNode.GetSegmentation().GetNumberOfSegments() == 0:
            raise ValueError(_("Define the VOIs first (Segment step)."))
        vois = self.voiDefinitions(segmentationNode)  # duplicate names stop here, before any computation
        table = parameterNode.studyTable
        radionuclide = (table.GetAttribute("LuDosimetry.radionuclide") if table is not None else None) or "Lu-177"
        recovery = self.recoveryCoefficientsFromTable(parameterNode.recoveryTable) if parameterNode.usePvc else None
        rs = self.rowsStudy(parameterNode.patientId, rows, vois, recovery, radionuclide, require=True)
        referenceRow = parameterNode.referenceRow
        if not (0 <= referenceRow < len(rows)):
            referenceRow = parameterNode.referenceRow = self.defaultReferenceRow(rows, parameterNode.referenceHours)
        cycle, index = rs.keys[referenceRow]
        parameterNode.referenceHours = next(c for c in rs.study.cycles if c.cycle == cycle).hours[index]
        method = parameterNode.registrationMethod
        transforms = ({rs.keys[i]: t for i, t in self.acceptedTransforms(rows, referenceRow).items()}
                      if method != "none" else {})
        extraWarnings = []
        if method != "none" and len(transforms) < len(rows) - 1:
            extraWarnings.append(f"{len(rows) - 1 - len(transforms)} registration(s) of the Register step not accepted: "
                                 f"the pipeline registered those scans itself (method {method})")
        images = self.studyImages(rows, rs.keys, referenceRow, segmentationNode)
        options = self.pipelineOptions(parameterNode, method)
        options.fit_model_per_voi.update({v["name"]: v["fitModel"] for v in self.voiSummaries(segmentationNode, None, 0.0)
                                          if v["fitModel"] != DEFAULT_FIT_MODEL})

        from LuDosimetryLib.pipeline import run_study

        result = run_study(rs.study, images, options, progress=progress, cancel=cancel, transforms=transforms)
        result.summary["warnings"] = extraWarnings + list(result.summary.get("warnings") or [])
        self.lastResult = result
        return result

    @staticmethod
    def isCancellation(exception) -> bool:
        """True if the exception is LuDosimetryLib.pipeline.Cancelled (the user pressed Cancel)."""
        from LuDosimetryLib.pipeline import Cancelled

        return isinstance(exception, Cancelled)

    # ------------------------------------------------------------------ 5. Results

    def createResultNodes(self, parameterNode: LuDosimetryParameterNode, result) -> dict:
        """Put a PipelineResult into nodes named after the patient and cycle: VOI x cycle table, summary table,
        time-activity and AD/AA data tables with plot charts, and map volumes. Returns the nodes by kind.

        Lib: LuDosimetryLib.pipeline.CSV_COLUMNS (contract-2 columns); fits are evaluated with
        TimeActivityFit.evaluate(hours) of LuDosimetryLib.physics.kinetics.
        """
        from LuDosimetryLib.pipeline import CSV_COLUMNS
        from LuDosimetryLib.results import tables

        pid = result.study.patient_id
        cycles = [c.cycle for c in result.study.cycles]
        cycleText = f"C{cycles[0]}-C{cycles[-1]}" if len(cycles) > 1 else f"C{cycles[0]}"
        columns = list(CSV_COLUMNS)
        resultsTable = outputNode("vtkMRMLTableNode", parameterNode.resultsTable, f"{pid} VOI doses {cycleText}")
        self.writeTable(resultsTable, columns, [[r.get(c) for c in columns] for r in result.rows],
                        numericColumns=tables.numeric_columns(result.rows, columns))
        for column, unit in tables.column_units(columns).items():
            resultsTable.SetColumnUnitLabel(column, unit)
        parameterNode.resultsTable = resultsTable

        summaryTable = outputNode("vtkMRMLTableNode", parameterNode.summaryTable, f"{pid} dosimetry summary {cycleText}")
        self.writeTable(summaryTable, ["quantity", "value"], tables.summary_rows(result.summary))
        parameterNode.summaryTable = summaryTable

        # Time-activity data: measured points and fitted curves of every VOI and cycle
        measured, fitted, units = tables.time_activity_columns(result)
        measuredTable = taggedNode("vtkMRMLTableNode", "LuDosimetry.output", f"{pid}/tacMeasured",
                                   f"{pid} time-activity measured")
        measuredTable.SetAttribute("LuDosimetry.units", units)
        LuSlicerCommon.writeColumnDict(measuredTable, measured)
        fitTable = taggedNode("vtkMRMLTableNode", "LuDosimetry.output", f"{pid}/tacFit", f"{pid} time-activity fits")
        LuSlicerCommon.writeColumnDict(fitTable, fitted)
        parameterNode.tacChart = self.outputChart(parameterNode.tacChart, f"{pid} time-activity curves",
                                                  _("Time after injection (h)"),
                                                  _("VOI activity ({units})").format(units=units))
        vois = list(dict.fromkeys(r["voi"] for r in result.rows))
        tumours = [r["voi"] for r in result.rows if r["kind"] == "tumor"]
        self.showTacForVoi(parameterNode, tumours[0] if tumours else vois[0] if vois else "")

        # AD/AA across cycles
        adTable = taggedNode("vtkMRMLTableNode", "LuDosimetry.output", f"{pid}/adPerAa", f"{pid} AD per AA per cycle")
        LuSlicerCommon.writeColumnDict(adTable, tables.ad_per_aa_columns(result.rows))
        chart = self.outputChart(parameterNode.adPerAaChart, f"{pid} AD per AA", _("Cycle"), _("AD/AA (Gy/GBq)"))
        chart.RemoveAllPlotSeriesNodeIDs()
        kinds = {r["voi"]: r["kind"] for r in result.rows}
        for index, voi in enumerate(vois):
            series = self.plotSeries(f"{pid} {voi} AD per AA", adTable, "cycle", voi, self.color(index),
                                     line=True, dashed=kinds.get(voi) != "tumor")
            chart.AddAndObservePlotSeriesNodeID(series.GetID())
        parameterNode.adPerAaChart = chart

        # Voxel maps (per cycle: dose in Gy, time-integrated activity in MBq h per voxel; per scan for dose-rate maps)
        for node in self.mapNodesOfPatient(pid):
            slicer.mrmlScene.RemoveNode(node)  # maps of an earlier run of this patient are replaced
        mapNodes = []
        for where, mapName, image in tables.map_images(result.maps):
            mapNodes.append(self.volumeFromSitkImage(image, f"{pid} {where} {mapName}"))
            mapNodes[-1].SetAttribute("LuDosimetry.map", f"{pid}/{mapName}")
        return {"resultsTable": resultsTable, "summaryTable": summaryTable, "tacChart": parameterNode.tacChart,
                "adPerAaChart": chart, "maps": mapNodes, "tacMeasuredTable": measuredTable, "tacFitTable": fitTable}

    nodeByAttribute = staticmethod(LuSlicerCommon.nodeByAttribute)
    outputChart = staticmethod(outputChart)

    @staticmethod
    def color(index: int) -> tuple:
        return paletteColor(PALETTE, index)

    def plotSeries(self, name: str, tableNode, xColumn: str, yColumn: str, color, line: bool, dashed: bool = False,
                   markers: bool = True):
        """A plot series node showing two table columns (reused by name between runs)."""
        return plotSeries(name, tableNode, xColumn, yColumn, color, line, dashed=dashed, markers=markers,
                          seriesAttribute="LuDosimetry.series")

    def tacVoiNames(self, parameterNode: LuDosimetryParameterNode) -> list:
        """VOI names of the results table (for the time-activity curve chooser)."""
        return list(dict.fromkeys(cells.get("voi", "") for cells in self.readTable(parameterNode.resultsTable)))

    def showTacForVoi(self, parameterNode: LuDosimetryParameterNode, voi: str) -> None:
        """Put the measured points and fitted curves of one VOI (all cycles) into the time-activity chart
        (Lib: LuDosimetryLib.results.tables.tac_series_columns)."""
        chart = parameterNode.tacChart
        pid = parameterNode.patientId
        measured = self.nodeByAttribute("vtkMRMLTableNode", "LuDosimetry.output", f"{pid}/tacMeasured")
        fits = self.nodeByAttribute("vtkMRMLTableNode", "LuDosimetry.output", f"{pid}/tacFit")
        if chart is None or measured is None or not voi:
            return
        chart.RemoveAllPlotSeriesNodeIDs()
        chart.SetTitle(f"{pid} {voi}: time-activity curves")
        from LuDosimetryLib.results.tables import tac_series_columns

        columns = [measured.GetColumnName(c) for c in range(measured.GetNumberOfColumns())]
        for index, name in enumerate(tac_series_columns(columns, voi)):
            chart.AddAndObservePlotSeriesNodeID(self.plotSeries(f"{pid} {name} measured", measured, f"{name} hours", name,
                                                                self.color(index), line=False).GetID())
            if fits is not None and fits.GetColumnIndex(name) >= 0:
                chart.AddAndObservePlotSeriesNodeID(self.plotSeries(f"{pid} {name} fit", fits, "hours", name,
                                                                    self.color(index), line=True, markers=False).GetID())

    def showChart(self, chartNode) -> None:
        """Show a plot chart in the layout."""
        LuSlicerCommon.showChart(chartNode, _("Run the dosimetry first."))

    def mapNodesOfPatient(self, patientId: str) -> list:
        return [n for n in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
                if (n.GetAttribute("LuDosimetry.map") or "").startswith(f"{patientId}/")]

    def showMaps(self, parameterNode: LuDosimetryParameterNode, backgroundNode) -> list:
        """Show the first absorbed-dose map of the patient over the reference CT; returns all map volumes."""
        maps = self.mapNodesOfPatient(parameterNode.patientId)
        if not maps:
            raise ValueError(_("No map volumes: run the dosimetry first."))
        maps.sort(key=lambda n: ("dose" not in (n.GetAttribute("LuDosimetry.map") or ""), n.GetName()))
        displayNode = maps[0].GetDisplayNode()
        if displayNode is not None:
            displayNode.SetAndObserveColorNodeID("vtkMRMLColorTableNodeRainbow")
        slicer.util.setSliceViewerLayers(background=backgroundNode, foreground=maps[0], foregroundOpacity=0.6, fit=True)
        return maps

    def summaryFromTable(self, summaryTable) -> dict:
        return {cells.get("quantity", ""): cells.get("value", "") for cells in self.readTable(summaryTable)}

    def summaryHtml(self, summaryTable) -> str:
        """The key patient numbers as HTML (Lib: LuDosimetryLib.results.tables.summary_html)."""
        from LuDosimetryLib.results.tables import summary_html

        return summary_html(self.summaryFromTable(summaryTable)) if summaryTable is not None else ""

    def exportResults(self, result, outputDirectory, report: bool = True, saveMaps: bool = False) -> list:
        """Write the contract-2 files (voi_cycle_doses.csv, summary.json, report.html, and the TIA / dose maps
        with saveMaps) to a folder.

        Lib: LuDosimetryLib.pipeline.write_results(result, out_dir, report, save_maps). report.html needs matplotlib.
        """
        from LuDosimetryLib.pipeline import write_results

        if result is None:
            raise ValueError(_("Run the dosimetry first (the full results are kept in memory only)."))
        written = write_results(result, pathlib.Path(outputDirectory), report=report, save_maps=saveMaps)
        return [str(f) for f in written.files]

    def cohortRecord(self, summaryTable, response: str = "") -> dict:
        """Contract-3 cohort row of this patient from the summary table (Lib: LuDosimetryLib.results.tables.cohort_record)."""
        from LuDosimetryLib.results.tables import cohort_record

        return cohort_record(self.summaryFromTable(summaryTable), response)

    def sendToLuResponse(self, summaryTable, response: str = "") -> dict:
        """Add this patient to the LuResponse cohort table and make it LuResponse's current patient."""
        record = self.cohortRecord(summaryTable, response)
        slicer.util.getModuleLogic("LuResponse").addPatientRecord(record, makeCurrent=True)
        return record

    def compareWithGroundTruth(self, result, groundTruthPath, minVolumeMl: float = 10.0):
        """Compare a run with a synthetic patient's analytic ground truth.

        Lib: LuDosimetryLib.results.truth.compare_doses(rows, truth, min_volume_ml).
        """
        import json

        from LuDosimetryLib.results.truth import compare_doses

        truth = json.loads(pathlib.Path(groundTruthPath).read_text())
        return compare_doses(result.rows, truth, min_volume_ml=minVolumeMl)


# ---------- LuDosimetryTest


class LuDosimetryTest(ScriptedLoadableModuleTest):
    """Quick test of the module (Reload and Test). The workflow tests -- synthetic patient end to end, a tumour
    inside an organ segment, duplicate VOI names, local registration, failed registrations, scene save and
    reload -- are in Testing/Python/LuDosimetryWorkflowTest.py.

    Uses ScriptedLoadableModuleTest base class, available at:
    https://github.com/Slicer/Slicer/blob/main/Base/Python/slicer/ScriptedLoadableModule.py
    """

    def setUp(self):
        """Do whatever is needed to reset the state - typically a scene clear will be enough."""
        slicer.mrmlScene.Clear()

    def runTest(self):
        """Run as few or as many tests as needed here."""
        self.setUp()
        self.test_StudyValidation()

    def test_StudyValidation(self):
        """Problems of the study table are reported per row and column."""
        import numpy as np

        self.delayDisplay("Study table validation")
        logic = LuDosimetryLogic()
        volume = slicer.util.addVolumeFromArray(np.zeros((4, 4, 4), "float32"), name="spect")
        rows = [TimePointRow.of(volume, cycle=1, hours_post_injection=4.0, administered_activity_MBq=7400.0),
                TimePointRow.of(None, cycle=1, hours_post_injection=-2.0, administered_activity_MBq=7400.0)]
        problems = logic.validateStudyRows("P001", rows)
        self.assertTrue(any(p.row == 1 and p.column == "hours_post_injection" for p in problems), problems)
        self.assertTrue(any(p.row == 1 and p.column == "spect" for p in problems), problems)
        self.assertFalse(any(p.row == 0 for p in problems), problems)
        self.delayDisplay("Study table validation passed")
