"""Hidden module that registers the "Lu adaptive threshold" Segment Editor effect.

Layout of Slicer's ScriptedSegmentEditorEffect template (and SegmentEditorExtraEffects): the effect
class lives in SegmentEditorLuAdaptiveThresholdLib/SegmentEditorEffect.py and is registered when the
application has started. The computation is LuDosimetryLib.imaging.segmentation (installed with the
LuDosimetry module of this extension).
"""

import os

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import *


class SegmentEditorLuAdaptiveThreshold(ScriptedLoadableModule):
    """Uses ScriptedLoadableModule base class, available at:
    https://github.com/Slicer/Slicer/blob/main/Base/Python/slicer/ScriptedLoadableModule.py
    """

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SegmentEditorLuAdaptiveThreshold")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = ["Segmentations", "LuDosimetry"]  # LuDosimetryLib is installed with LuDosimetry
        self.parent.contributors = ["LuDosimetry developers (LuDosimetry project)"]
        self.parent.hidden = True
        self.parent.helpText = _("This hidden module registers the Lu adaptive threshold segment editor effect "
                                 "(iterative source-to-background adaptive thresholding of SPECT lesions).")
        self.parent.helpText += self.getDefaultModuleDocumentationLink()
        self.parent.acknowledgementText = _("Part of the LuDosimetry extension.")
        slicer.app.connect("startupCompleted()", self.registerEditorEffect)

    def registerEditorEffect(self):
        import qSlicerSegmentationsEditorEffectsPythonQt as qSlicerSegmentationsEditorEffects

        instance = qSlicerSegmentationsEditorEffects.qSlicerSegmentEditorScriptedEffect(None)
        effectFilename = os.path.join(os.path.dirname(__file__), self.__class__.__name__ + "Lib/SegmentEditorEffect.py")
        instance.setPythonSource(effectFilename.replace("\\", "/"))
        instance.self().register()


class SegmentEditorLuAdaptiveThresholdTest(ScriptedLoadableModuleTest):
    """Applies the effect through a segment editor widget on the synthetic patient's reference SPECT.

    Uses ScriptedLoadableModuleTest base class, available at:
    https://github.com/Slicer/Slicer/blob/main/Base/Python/slicer/ScriptedLoadableModule.py
    """

    def setUp(self):
        """Do whatever is needed to reset the state - typically a scene clear will be enough."""
        slicer.mrmlScene.Clear(0)

    def runTest(self):
        """Run as few or as many tests as needed here."""
        import unittest

        self.setUp()
        try:
            self.test_AdaptiveThresholdOnSyntheticLesion()
        except unittest.SkipTest as exc:
            self.delayDisplay(f"skipped: {exc}")

    def test_AdaptiveThresholdOnSyntheticLesion(self):
        """Oversized ROI around a synthetic tumour -> contour close to the true volume (ground_truth.json)."""
        import json

        import LuSlicerCommon
        from LuDosimetry import DOSIMETRY_REQUIREMENTS, LuDosimetryLogic

        LuSlicerCommon.skipUnlessInstalled(self, DOSIMETRY_REQUIREMENTS)  # never installs packages in a test
        self.delayDisplay("Loading the synthetic patient")
        logic = LuDosimetryLogic()
        manifest = logic.ensureSyntheticPatient()
        truth = json.loads((manifest.parent / "ground_truth.json").read_text())
        loaded = logic.loadStudyIntoScene(manifest)
        reference = loaded.rows[loaded.referenceRow].spectNode
        segmentationNode = loaded.segmentationNode
        tumour = next(v for v in truth["vois"] if v["kind"] == "tumor" and v["volume_ml"] >= 10.0)
        segmentId = segmentationNode.GetSegmentation().GetSegmentIdBySegmentName(tumour["name"])
        self.assertTrue(segmentId)

        # Make the tumour's segment a rough, oversized ROI (grow it by 2 voxels)
        import numpy as np
        import scipy.ndimage

        roi = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, reference) > 0
        roi = scipy.ndimage.binary_dilation(roi, iterations=2)
        slicer.util.updateSegmentBinaryLabelmapFromArray(roi.astype(np.uint8), segmentationNode, segmentId, reference)

        self.delayDisplay("Applying the effect")
        segmentEditorWidget = slicer.qMRMLSegmentEditorWidget()
        segmentEditorWidget.setMRMLScene(slicer.mrmlScene)
        segmentEditorNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
        segmentEditorWidget.setMRMLSegmentEditorNode(segmentEditorNode)
        segmentEditorWidget.setSegmentationNode(segmentationNode)
        segmentEditorWidget.setSourceVolumeNode(reference)
        segmentEditorWidget.setCurrentSegmentID(segmentId)
        segmentEditorWidget.setActiveEffectByName("LuAdaptiveThreshold")
        effect = segmentEditorWidget.activeEffect()
        self.assertIsNotNone(effect, "effect not registered")
        effect.setParameter("MinimumVolumeMl", 10.0)
        effect.self().onApply()

        contour = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, reference) > 0
        sx, sy, sz = reference.GetSpacing()
        volumeMl = contour.sum() * sx * sy * sz / 1000.0
        self.assertLess(contour.sum(), roi.sum())
        self.assertAlmostEqual(volumeMl / tumour["volume_ml"], 1.0, delta=0.35)
        segmentEditorWidget.setActiveEffect(None)
        self.delayDisplay("Test passed")
