"""The gate's evidence: how sure a comparison of models on the same rows is.

A holdout of a few hundred rows is noisy: the best of three candidates beats a coin on it by luck
most of the time. So every score the gate reads carries a confidence interval, and a version is
promoted only when it is better than what it replaces *beyond noise*:

- **Evidence is judged on a proper scoring rule**, per row: log loss for classifiers, with the true
  class's probability floored at 0.001 (``LOG_LOSS_FLOOR``) so that a row costs at most 6.9 and
  one confidently wrong row cannot decide a comparison, and the squared error for regressors (so a
  better R², RMSE or MSE on the same rows); and on the spec's selection metric when that is
  another comparison. Accuracy cannot see a model that only sharpens probabilities of a rare class
  (on a table with 3 % positives a useful model makes the majority class's labels); log loss
  rewards exactly the probabilities closer to the truth, and separated such models from the
  majority class more sharply than the Brier score did (benchmarks/evidence_measures.py).
- **The test is paired**: both models answer the same rows, and the interval is the t interval of
  the mean per-row difference of losses (reference minus challenger: positive means the challenger
  is better). It depends on the rows' values, not their order.
- **Choosing the best of several candidates on the same rows is luck too**, and so is looking at
  two measures: each interval's confidence is raised by Bonferroni's correction for the number of
  candidates and measures compared (95 % with three candidates and two measures becomes 99.2 %),
  which bounds the chance that any no-better candidate passes.
- **Reported scores** (every metric of the winner, production and the baseline, and the selection
  metric's difference) get percentile intervals from a bootstrap over the rows, drawn as weights so
  each resample costs one matrix product; the rows are put in a canonical order first, so the
  reported intervals do not depend on row order either.

A run judged by cross-validation (small tables, mlstack_core.folds) gets the corrected repeated
cross-validation interval of the folds' values instead (``cross_validated_interval``).
``unpaired_difference`` compares the same measure on different rows (the Monitor: ground truth
against the holdout).

The package: ``losses`` (the per-row measures), ``intervals`` (t quantiles, the paired, unpaired
and corrected cross-validation intervals, Bonferroni), ``bootstrap`` (every metric's interval),
``verdict`` (the gate's rule and words), ``labelled`` (the Monitor's ground truth against the
holdout).
"""

from mlstack_core.evidence.bootstrap import (
    RESAMPLES,
    Answers,
    Rows,
    bootstrap_intervals,
    canonical_order,
    weighted_metric,
)
from mlstack_core.evidence.intervals import (
    Interval,
    IntervalDocument,
    adjusted_confidence,
    cross_validated_interval,
    mean_interval,
    normal_quantile,
    paired_improvement,
    t_quantile,
    unpaired_difference,
)
from mlstack_core.evidence.labelled import (
    PER_ROW_METRICS,
    Labelled,
    metric_interval,
    row_values,
    unpaired_metric_difference,
)
from mlstack_core.evidence.losses import (
    EVIDENCE_MEASURE,
    LOG_LOSS_FLOOR,
    LOWER_IS_BETTER,
    bounded_log_loss_rows,
    brier_rows,
    one_hot,
    squared_error_rows,
)
from mlstack_core.evidence.verdict import (
    ADVICE,
    EvidenceDocument,
    Outcome,
    evidence_confidence,
    measures_for,
    weigh,
)
from mlstack_core.evidence_text import MEASURE_NAMES, percent

__all__ = [
    "ADVICE",
    "EVIDENCE_MEASURE",
    "LOG_LOSS_FLOOR",
    "LOWER_IS_BETTER",
    "MEASURE_NAMES",
    "PER_ROW_METRICS",
    "RESAMPLES",
    "Answers",
    "EvidenceDocument",
    "Interval",
    "IntervalDocument",
    "Labelled",
    "Outcome",
    "Rows",
    "adjusted_confidence",
    "bootstrap_intervals",
    "bounded_log_loss_rows",
    "brier_rows",
    "canonical_order",
    "cross_validated_interval",
    "evidence_confidence",
    "mean_interval",
    "measures_for",
    "metric_interval",
    "normal_quantile",
    "one_hot",
    "paired_improvement",
    "percent",
    "row_values",
    "squared_error_rows",
    "t_quantile",
    "unpaired_difference",
    "unpaired_metric_difference",
    "weigh",
    "weighted_metric",
]
