"""Evaluation of a learned cross-modal space (METHOD.md section 7): RET, LOC, CC.

Everything here is plain NumPy on arrays the model has already computed, so
each metric can be read, and tested, on its own:

- :mod:`.retrieval` (RET): :func:`retrieval_ranks`, :func:`retrieval_metrics`
  and :func:`retrieval_report` (ranking by S, S^code, and S + lambda_r S^code),
  :func:`set_ceiling_r1` (what a set-of-concepts retriever can reach);
- :mod:`.localization` (LOC): :func:`concept_distributions` (CM-2 over the
  units of one concept), :func:`relevance` and :func:`localization_accuracy`;
- :mod:`.concepts` (CC, VQ-7): :func:`code_concept_counts`,
  :func:`code_purity`, :func:`shared_code_fraction`,
  :func:`cross_modal_agreement` and :func:`usage_per_modality`.

Concepts are integers 0..C-1 (digits); -1 marks background or padding.
``notebooks/06_spoken_digits.ipynb`` shows every metric on a trained model;
``tests/test_metrics.py`` checks each one on hand-made cases.
"""
from .concepts import (code_concept_counts, code_purity, cross_modal_agreement, shared_code_fraction,
                       usage_per_modality)
from .localization import concept_distributions, localization_accuracy, relevance
from .retrieval import recall_at_k, retrieval_metrics, retrieval_ranks, retrieval_report, set_ceiling_r1

__all__ = [
    "retrieval_ranks", "recall_at_k", "retrieval_metrics", "retrieval_report", "set_ceiling_r1",
    "concept_distributions", "relevance", "localization_accuracy", "code_concept_counts",
    "code_purity", "shared_code_fraction", "cross_modal_agreement", "usage_per_modality",
]
