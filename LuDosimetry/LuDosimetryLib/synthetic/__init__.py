"""Synthetic data for tests, benches and the demo (never used on patient data).

- ``spect_model``    SPECT forward model (resolution blur, Poisson noise)
- ``spheres``        sphere phantom and recovery-coefficient measurement
- ``phantom``        the multi-cycle synthetic patient with its analytic ground truth
- ``phantom_dicom``  the synthetic patient written as DICOM NM/CT series
"""
