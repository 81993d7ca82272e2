"""LuResponseLib: cohort dose-response analysis (pure Python core of the LuResponse module).

Never imports slicer/qt/ctk/vtk; scikit-learn and lifelines are imported lazily inside the
functions that need them so the package imports in a bare Slicer Python environment.
"""

__version__ = "0.1.0"
