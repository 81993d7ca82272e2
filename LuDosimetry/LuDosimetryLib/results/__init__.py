"""Results: what is derived from the per-VOI-cycle doses and what is written for the user.

- ``cycle_metrics``  cross-cycle metrics (AD/AA, cAD, delta AD/AA, kidney cumulative dose and BED)
- ``report``         the per-patient ``report.html``
- ``truth``          comparison of a run with a synthetic patient's analytic ground truth
- ``tables``         result columns for display (time-activity curves, AD/AA per cycle, summary rows, cohort record)
"""
