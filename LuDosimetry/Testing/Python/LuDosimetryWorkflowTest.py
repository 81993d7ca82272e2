"""In-Slicer workflow tests of the LuDosimetry module: the synthetic patient end to end, and the paths a user
clicks that only Slicer can show (a tumour inside an organ segment, duplicate VOI names, local registration, a
failed registration that cannot be accepted, accepted transforms kept through a scene save and reload).

Registered by Testing/Python/CMakeLists.txt (slicer_add_python_unittest); CI without Slicer does not run them.
They never install Python packages: a test whose packages are missing is skipped with a message.
"""

import logging
import pathlib
import tempfile
import unittest

import numpy as np

import slicer
from slicer.ScriptedLoadableModule import *

import LuSlicerCommon
from LuDosimetry import (
    DOSIMETRY_REQUIREMENTS,
    REG_ACCEPTED,
    REG_FAILED,
    REG_REGISTERED,
    REPORT_REQUIREMENTS,
    LuDosimetryLogic,
    TimePointRow,
)


class LuDosimetryWorkflowTest(ScriptedLoadableModuleTest):
    """Uses ScriptedLoadableModuleTest base class, available at:
    https://github.com/Slicer/Slicer/blob/main/Base/Python/slicer/ScriptedLoadableModule.py
    """

    # Largest accepted |relative error| of VOI absorbed doses (tumours and kidneys >= 10 mL) against
    # ground_truth.json: the acceptance of the command-line pipeline (Testing/test_end_to_end.py), which the
    # Slicer path reproduces (same Lib calls; accepted transforms are applied by images.resample_to_reference).
    DOSE_TOLERANCE = 0.10

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        for test in (self.test_TumourInsideOrganKeepsItsVoxels, self.test_DuplicateVoiNamesFailFirst,
                     self.test_FailedRegistrationCannotBeAccepted, self.test_SceneSaveKeepsAcceptedTransforms,
                     self.test_LocalRegistration, self.test_SyntheticPatientEndToEnd):
            self.setUp()
            try:
                test()
            except unittest.SkipTest as exc:
                self.delayDisplay(f"{test.__name__} skipped: {exc}")

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _referenceAndSegmentation(names=("tumour 1", "liver")):
        """4 mm grid 20^3; "tumour 1" (4^3 voxels) inside "liver" (12^3), the organ added last (as Organs from CT)."""
        values = np.full((20, 20, 20), 100.0, np.float32)
        values[4:16, 4:16, 4:16] = 1000.0
        values[8:12, 8:12, 8:12] = 20000.0
        reference = slicer.util.addVolumeFromArray(values, np.diag([4.0, 4.0, 4.0, 1.0]), "reference SPECT")
        logic = LuDosimetryLogic()
        segmentationNode = logic.createSegmentation(reference, "P1")
        boxes = {names[0]: (slice(8, 12),) * 3, names[1]: (slice(4, 16),) * 3}
        for name in names:
            mask = np.zeros(values.shape, np.uint8)
            mask[boxes[name]] = 1
            segmentId = segmentationNode.GetSegmentation().AddEmptySegment("", name)
            slicer.util.updateSegmentBinaryLabelmapFromArray(mask, segmentationNode, segmentId, reference)
        return logic, reference, segmentationNode

    # ------------------------------------------------------------------ tests

    def test_TumourInsideOrganKeepsItsVoxels(self):
        """Every segment reaches the Lib as its own mask: a liver segment does not take the tumour's voxels."""
        self.delayDisplay("Tumour inside an organ segment")
        logic, reference, segmentationNode = self._referenceAndSegmentation()
        masks = logic.voiMasks(segmentationNode, reference)
        self.assertEqual(int(masks["tumour 1"].sum()), 4 ** 3)
        self.assertEqual(int(masks["liver"].sum()), 12 ** 3)
        self.assertEqual(int((masks["tumour 1"] & masks["liver"]).sum()), 4 ** 3)

        from LuDosimetryLib.imaging.voi_masks import voi_rois

        rois, warnings = voi_rois(logic.voiDefinitions(segmentationNode), logic.sitkImageFromVolume(reference), masks=masks)
        self.assertEqual(int(rois["tumour 1"].sum()), 4 ** 3)
        self.assertEqual(warnings, [])

    def test_DuplicateVoiNamesFailFirst(self):
        """Two segments with one name stop the run before any computation (no progress reported)."""
        self.delayDisplay("Duplicate VOI names")
        logic, reference, segmentationNode = self._referenceAndSegmentation(names=("liver", "liver"))
        parameterNode = logic.getParameterNode()
        parameterNode.segmentation = segmentationNode
        rows = [TimePointRow.of(reference, cycle=1, hours_post_injection=24.0, administered_activity_MBq=7400.0)]
        messages = []
        from LuDosimetryLib.errors import InputDataError

        with self.assertRaises(InputDataError) as context:
            logic.runDosimetry(parameterNode, rows, progress=lambda f, m: messages.append(m))
        self.assertIn("'liver'", str(context.exception))
        self.assertEqual(messages, [])

    def test_FailedRegistrationCannotBeAccepted(self):
        """A row whose registration failed its quality check has Accept disabled, and accepting it does nothing."""
        self.delayDisplay("Failed registration cannot be accepted")
        slicer.util.selectModule("LuDosimetry")  # entered: the widget observes the parameter node
        widget = slicer.modules.ludosimetry.widgetRepresentation().self()
        volume = slicer.util.addVolumeFromArray(np.ones((8, 8, 8), np.float32), name="spect")
        pn = widget._parameterNode
        pn.patientId = "P1"
        widget._rows = [TimePointRow.of(volume, cycle=1, hours_post_injection=h, administered_activity_MBq=7400.0)
                        for h in (4.0, 24.0)]
        widget._rows[0].registrationStatus = REG_FAILED
        widget.storeRows()
        pn.referenceRow = 1
        widget.populateRegistrationTable()
        widget.ui.registrationTableWidget.selectRow(0)
        self.assertFalse(widget.ui.acceptRegistrationButton.enabled)
        widget.onAcceptRegistration()
        self.assertEqual(widget.readRows()[0].registrationStatus, REG_FAILED)
        widget._rows[0].registrationStatus = REG_REGISTERED
        widget.storeRows()
        widget.populateRegistrationTable()
        widget.ui.registrationTableWidget.selectRow(0)
        self.assertTrue(widget.ui.acceptRegistrationButton.enabled)

    def test_SceneSaveKeepsAcceptedTransforms(self):
        """An accepted transform is a matrix in the scene: it survives saving and loading the scene (.mrb)."""
        import SimpleITK as sitk

        self.delayDisplay("Scene save and reload keeps accepted transforms")
        logic = LuDosimetryLogic()
        volume = slicer.util.addVolumeFromArray(np.ones((8, 8, 8), np.float32), name="spect")
        transform = sitk.Euler3DTransform((10.0, -20.0, 5.0), 0.05, -0.03, 0.1, (3.0, -7.0, 12.0))
        rows = [TimePointRow.of(volume, cycle=1, hours_post_injection=h, administered_activity_MBq=7400.0)
                for h in (4.0, 24.0)]
        rows[0].transformNode = logic.transformNodeFromSitk(transform, "P1 C1 4 h to reference")
        rows[0].registrationStatus = REG_ACCEPTED
        table = logic.createStudyTable("P1")
        logic.writeStudyRows(table, rows)
        with tempfile.TemporaryDirectory() as folder:
            path = str(pathlib.Path(folder) / "scene.mrb")
            self.assertTrue(slicer.util.saveScene(path))
            slicer.mrmlScene.Clear()
            slicer.util.loadScene(path)
            table = slicer.mrmlScene.GetFirstNodeByName("P1 study")
            again = logic.readStudyRows(table)
        self.assertEqual(again[0].registrationStatus, REG_ACCEPTED)
        restored = logic.sitkTransformFromNode(again[0].transformNode)
        for point in [(0.0, 0.0, 0.0), (100.0, -50.0, 20.0)]:
            for a, b in zip(restored.TransformPoint(point), transform.TransformPoint(point)):
                self.assertAlmostEqual(a, b, places=6)

    def test_LocalRegistration(self):
        """Method "local" registers through the study-level Lib function with tumour boxes from the VOIs."""
        LuSlicerCommon.skipUnlessInstalled(self, DOSIMETRY_REQUIREMENTS)
        self.delayDisplay("Local registration on the synthetic patient")
        logic = LuDosimetryLogic()
        parameterNode = logic.getParameterNode()
        logic.initializeParameterNodeDefaults(parameterNode)
        loaded = logic.loadSyntheticPatient()
        parameterNode.registrationMethod = "local"
        failed = logic.registerStudy(parameterNode, loaded.rows)
        logging.info(f"local registration failed for: {failed}")
        for index, row in enumerate(loaded.rows):
            if index != loaded.referenceRow:
                self.assertIsNotNone(row.transformNode, row.label())
                self.assertIn(row.registrationStatus, (REG_REGISTERED, REG_FAILED))

    def test_SyntheticPatientEndToEnd(self):
        """Synthetic patient: load, register, run, create result nodes, export, compare with ground truth."""
        import json

        LuSlicerCommon.skipUnlessInstalled(self, {**DOSIMETRY_REQUIREMENTS, **REPORT_REQUIREMENTS})
        self.delayDisplay("Generating / loading the synthetic patient")
        logic = LuDosimetryLogic()
        parameterNode = logic.getParameterNode()
        logic.initializeParameterNodeDefaults(parameterNode)
        loaded = logic.loadSyntheticPatient()
        manifest = logic.ensureSyntheticPatient()
        truth = json.loads((manifest.parent / "ground_truth.json").read_text())

        rows = loaded.rows
        self.assertEqual(len(rows), sum(len(c.timepoints) for c in loaded.study.cycles))
        self.assertEqual(parameterNode.studyTable.GetNumberOfRows(), len(rows))
        self.assertEqual(logic.validateStudyRows(parameterNode.patientId, rows), [])
        self.assertIsNotNone(loaded.segmentationNode)
        self.assertEqual(loaded.segmentationNode.GetSegmentation().GetNumberOfSegments(), len(loaded.study.vois))
        self.assertEqual(rows[loaded.referenceRow].scan.hours_post_injection, 24.0)
        # Rows survive the round trip through the study table node
        again = logic.readStudyRows(parameterNode.studyTable)
        self.assertEqual([r.spectNode for r in again], [r.spectNode for r in rows])

        self.delayDisplay("Registering every time point to the reference (study-level, as the pipeline)")
        parameterNode.registrationMethod = "auto"
        self.assertEqual(logic.registerStudy(parameterNode, rows), [])
        for index, row in enumerate(rows):
            if index != loaded.referenceRow:
                self.assertIsNotNone(row.transformNode)
                row.registrationStatus = REG_ACCEPTED
        logic.writeStudyRows(parameterNode.studyTable, rows)
        # The input volumes were not touched: no parent transform on them
        self.assertTrue(all(r.spectNode.GetParentTransformNode() is None for r in rows))

        self.delayDisplay("Running the dosimetry")
        messages = []
        result = logic.runDosimetry(parameterNode, rows, progress=lambda f, m: messages.append(m))
        self.assertTrue(messages)
        self.assertEqual(len(result.rows), len(loaded.study.vois) * len(loaded.study.cycles))

        nodes = logic.createResultNodes(parameterNode, result)
        self.assertEqual(nodes["resultsTable"].GetNumberOfRows(), len(result.rows))
        self.assertIn(parameterNode.patientId, nodes["resultsTable"].GetName())
        self.assertGreater(nodes["tacChart"].GetNumberOfPlotSeriesNodes(), 0)
        self.assertGreater(nodes["adPerAaChart"].GetNumberOfPlotSeriesNodes(), 0)
        self.assertIn("Cumulative tumour dose", logic.summaryHtml(parameterNode.summaryTable))

        self.delayDisplay("Comparing with the analytic ground truth")
        comparison = logic.compareWithGroundTruth(result, manifest.parent / "ground_truth.json")
        logging.info(comparison.to_text())
        self.assertGreater(len(comparison.rows), 0)
        self.assertLess(comparison.max_abs_relative_error, self.DOSE_TOLERANCE, comparison.to_text())
        self.assertEqual(result.summary["patient_id"], truth["patient_id"])

        self.delayDisplay("Exporting contract-2 files")
        with tempfile.TemporaryDirectory() as folder:
            files = logic.exportResults(result, folder)
            names = {pathlib.Path(f).name for f in files}
            self.assertTrue({"voi_cycle_doses.csv", "summary.json", "report.html"} <= names, names)

        self.delayDisplay("Sending the patient to LuResponse")
        record = logic.sendToLuResponse(parameterNode.summaryTable, "PR")  # needs the LuResponse module
        self.assertEqual(record["patient_id"], truth["patient_id"])
        self.delayDisplay("Test passed")
