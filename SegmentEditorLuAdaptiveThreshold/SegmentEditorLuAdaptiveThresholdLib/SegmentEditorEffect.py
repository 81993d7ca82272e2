"""Lu adaptive threshold: contour a SPECT lesion inside a rough ROI by iterative adaptive thresholding.

The user paints a rough, oversized ROI around one lesion as the selected segment; Apply replaces the
segment with the contour found by ``LuDosimetryLib.imaging.segmentation.adaptive_threshold_segment`` (threshold
from the source-to-background ratio and object size through a phantom calibration curve, iterated until
it stops changing). This file only converts between the segment editor and numpy/SimpleITK.
"""

import logging
import os

import ctk
import qt

import slicer
from slicer.i18n import tr as _

from SegmentEditorEffects import *

CALIBRATION_FILE_PARAMETER = "CalibrationFile"
MINIMUM_VOLUME_PARAMETER = "MinimumVolumeMl"
DEFAULT_MINIMUM_VOLUME_ML = 10.0


class SegmentEditorEffect(AbstractScriptedSegmentEditorEffect):
    """Iterative adaptive-threshold contouring of the selected segment's ROI on the source (SPECT) volume."""

    def __init__(self, scriptedEffect):
        scriptedEffect.name = "LuAdaptiveThreshold"
        scriptedEffect.title = _("Lu adaptive threshold")
        scriptedEffect.perSegment = True  # operates on the selected segment (its current content is the ROI)
        scriptedEffect.requireSegments = True
        AbstractScriptedSegmentEditorEffect.__init__(self, scriptedEffect)
        self.lastResultText = ""

    def clone(self):
        # It should not be necessary to modify this method
        import qSlicerSegmentationsEditorEffectsPythonQt as effects

        clonedEffect = effects.qSlicerSegmentEditorScriptedEffect(None)
        clonedEffect.setPythonSource(__file__.replace("\\", "/"))
        return clonedEffect

    def icon(self):
        # It should not be necessary to modify this method
        iconPath = os.path.join(os.path.dirname(__file__), "SegmentEditorEffect.png")
        if os.path.exists(iconPath):
            return qt.QIcon(iconPath)
        return qt.QIcon()

    def helpText(self):
        return _("""<html>Contour a SPECT lesion automatically inside a rough region of interest.<br>
<ol>
<li>Select the tumour's segment and paint a rough, <b>oversized</b> ROI around one lesion (keep other hot
structures out of it).</li>
<li>Click <b>Apply</b>: the segment is replaced by the contour of the iterative adaptive threshold
(threshold from source-to-background ratio and lesion size through the calibration curve).</li>
</ol>
Calibration file: JSON made from phantom spheres of your camera (empty: the built-in default curve).
Lesions smaller than the minimum volume are flagged; they are excluded from the patient metrics.
</html>""")

    def setupOptionsFrame(self):
        self.calibrationPathEdit = ctk.ctkPathLineEdit()
        self.calibrationPathEdit.filters = ctk.ctkPathLineEdit.Files
        self.calibrationPathEdit.nameFilters = ["Threshold calibration (*.json)", "All files (*)"]
        self.calibrationPathEdit.toolTip = _("Phantom calibration of the adaptive threshold (JSON). Empty: built-in default curve.")
        self.scriptedEffect.addLabeledOptionsWidget(_("Calibration curve:"), self.calibrationPathEdit)
        self.calibrationPathEdit.connect("currentPathChanged(QString)", self.updateMRMLFromGUI)

        self.minimumVolumeSpinBox = qt.QDoubleSpinBox()
        self.minimumVolumeSpinBox.minimum = 0.0
        self.minimumVolumeSpinBox.maximum = 1000.0
        self.minimumVolumeSpinBox.decimals = 1
        self.minimumVolumeSpinBox.suffix = " mL"
        self.minimumVolumeSpinBox.toolTip = _("Lesions smaller than this are flagged (Macsuka et al., J Nucl Med 2026, excluded tumours < 10 mL).")
        self.scriptedEffect.addLabeledOptionsWidget(_("Minimum volume:"), self.minimumVolumeSpinBox)
        self.minimumVolumeSpinBox.connect("valueChanged(double)", self.updateMRMLFromGUI)

        self.applyButton = qt.QPushButton(_("Apply"))
        self.applyButton.objectName = self.__class__.__name__ + "Apply"
        self.applyButton.toolTip = _("Replace the selected segment (rough ROI) by the adaptive-threshold contour.")
        self.scriptedEffect.addOptionsWidget(self.applyButton)
        self.applyButton.connect("clicked()", self.onApply)

        self.resultLabel = qt.QLabel("")
        self.resultLabel.wordWrap = True
        self.scriptedEffect.addOptionsWidget(self.resultLabel)

    def createCursor(self, widget):
        # Turn off effect-specific cursor for this effect
        return slicer.util.mainWindow().cursor

    def setMRMLDefaults(self):
        self.scriptedEffect.setParameterDefault(CALIBRATION_FILE_PARAMETER, "")
        self.scriptedEffect.setParameterDefault(MINIMUM_VOLUME_PARAMETER, DEFAULT_MINIMUM_VOLUME_ML)

    def updateGUIFromMRML(self):
        wasBlocked = self.calibrationPathEdit.blockSignals(True)
        self.calibrationPathEdit.currentPath = self.scriptedEffect.parameter(CALIBRATION_FILE_PARAMETER)
        self.calibrationPathEdit.blockSignals(wasBlocked)
        wasBlocked = self.minimumVolumeSpinBox.blockSignals(True)
        self.minimumVolumeSpinBox.value = self.scriptedEffect.doubleParameter(MINIMUM_VOLUME_PARAMETER)
        self.minimumVolumeSpinBox.blockSignals(wasBlocked)
        self.resultLabel.text = self.lastResultText

    def updateMRMLFromGUI(self):
        self.scriptedEffect.setParameter(CALIBRATION_FILE_PARAMETER, self.calibrationPathEdit.currentPath)
        self.scriptedEffect.setParameter(MINIMUM_VOLUME_PARAMETER, self.minimumVolumeSpinBox.value)

    def calibration(self):
        """The threshold calibration of the chosen JSON file, or None for the Lib's default curve.

        Lib: LuDosimetryLib.imaging.segmentation.calibration_from_json (DEFAULT_CALIBRATION when no file is chosen).
        """
        from LuDosimetryLib.imaging.segmentation import calibration_from_json

        path = self.scriptedEffect.parameter(CALIBRATION_FILE_PARAMETER)
        return calibration_from_json(path) if path else None

    def onApply(self):
        """Replace the selected segment (a rough ROI) by its adaptive-threshold contour.

        Lib: LuDosimetryLib.imaging.segmentation.adaptive_threshold_segment(image, roi_mask, calibration).
        """
        if not self.scriptedEffect.confirmCurrentSegmentVisible():
            return
        parameterSetNode = self.scriptedEffect.parameterSetNode()
        segmentationNode = parameterSetNode.GetSegmentationNode()
        segmentId = parameterSetNode.GetSelectedSegmentID()
        sourceImageData = self.scriptedEffect.sourceVolumeImageData()
        if not segmentId or sourceImageData is None:
            slicer.util.errorDisplay(_("Select a source volume (SPECT) and the segment holding the rough ROI."))
            return

        with slicer.util.tryWithErrorDisplay(_("Adaptive threshold failed."), waitCursor=True):
            import numpy as np
            import sitkUtils

            from LuDosimetryLib.imaging.segmentation import adaptive_threshold_segment

            # The source image is the source volume resampled to the segmentation geometry; copy it to a
            # temporary volume in the segmentation's coordinate system to hand it over to SimpleITK.
            temporaryVolume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "__LuAdaptiveThresholdSource")
            try:
                temporaryVolume.SetAndObserveTransformNodeID(segmentationNode.GetTransformNodeID())
                slicer.vtkSlicerSegmentationsModuleLogic.CopyOrientedImageDataToVolumeNode(sourceImageData, temporaryVolume)
                image = sitkUtils.PullVolumeFromSlicer(temporaryVolume)
                roi = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, temporaryVolume) > 0
                if not roi.any():
                    raise ValueError(_("The selected segment is empty: paint a rough ROI around the lesion first."))

                result = adaptive_threshold_segment(image, roi, calibration=self.calibration())
                mask = np.asarray(result.mask, dtype=np.uint8)
                if not mask.any():
                    raise ValueError(_("No voxel inside the ROI is above the adaptive threshold; the segment was not changed."))

                # Allow users to revert to the rough ROI with Undo
                self.scriptedEffect.saveStateForUndo()
                slicer.util.updateVolumeFromArray(temporaryVolume, mask)
                modifierLabelmap = slicer.vtkSlicerSegmentationsModuleLogic.CreateOrientedImageDataFromVolumeNode(
                    temporaryVolume, segmentationNode.GetParentTransformNode())
                modifierLabelmap.UnRegister(None)  # Create... returns a new reference: Python owns it from here
                self.scriptedEffect.modifySelectedSegmentByLabelmap(
                    modifierLabelmap, slicer.qSlicerSegmentEditorAbstractEffect.ModificationModeSet)
            finally:
                slicer.mrmlScene.RemoveNode(temporaryVolume)

            # Record how the VOI was made (read by the LuDosimetry module); it is now contoured
            segment = segmentationNode.GetSegmentation().GetSegment(segmentId)
            segment.SetTag("LuDosimetry.kind", "tumor")
            segment.SetTag("LuDosimetry.mode", "as_drawn")
            segment.SetTag("LuDosimetry.adaptiveThreshold", f"{result.threshold_value:.6g}")
            minimumVolume = self.scriptedEffect.doubleParameter(MINIMUM_VOLUME_PARAMETER)
            lines = [_("Threshold {t:.4g} ({f:.0%} of peak above background), source/background {sbr:.1f}, "
                       "volume {v:.1f} mL, {n} iteration(s)").format(
                t=result.threshold_value, f=result.threshold_fraction, sbr=result.source_to_background,
                v=result.volume_ml, n=result.iterations)]
            if not result.converged:
                lines.append(_("The threshold did not converge: check the contour."))
            if result.volume_ml < minimumVolume:
                lines.append(_("Below the minimum volume of {m:g} mL: this tumour will be excluded.").format(m=minimumVolume))
            lines += [str(w) for w in result.warnings]
            self.lastResultText = "\n".join(lines)
            self.resultLabel.text = self.lastResultText
            for warning in result.warnings:
                logging.warning(f"Lu adaptive threshold ({segment.GetName()}): {warning}")
