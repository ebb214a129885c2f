"""Evaluation of a learned cross-modal space (METHOD.md section 7), in plain NumPy on computed arrays.

:mod:`.retrieval` (RET), :mod:`.localization` (LOC), :mod:`.concepts` (CC,
VQ-7), :mod:`.baselines` (the claims' dense and k-means baselines),
:mod:`.claims` (the three claims' scores in one place), :mod:`.evaluate` (a
trained model on a split). Concepts are integers 0..C-1; -1 marks background
or padding. ``notebooks/06_spoken_digits.ipynb`` shows every metric.
"""
from .concepts import (code_concept_counts, code_purity, cross_modal_agreement, shared_code_fraction,
                       usage_per_modality)
from .localization import concept_distributions, localization_accuracy, relevance
from .retrieval import recall_at_k, retrieval_metrics, retrieval_report, retrieval_ranks, set_ceiling_r1

__all__ = [
    "retrieval_ranks", "recall_at_k", "retrieval_metrics", "retrieval_report", "set_ceiling_r1",
    "concept_distributions", "relevance", "localization_accuracy", "code_concept_counts",
    "code_purity", "shared_code_fraction", "cross_modal_agreement", "usage_per_modality",
]
