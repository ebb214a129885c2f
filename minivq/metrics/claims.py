"""The paper's three claims, each scored against its strongest baseline (METHOD.md section 7).

- claim 1 (RET per content): :func:`set_retrieval_metrics` (:mod:`.retrieval`);
- claim 2 (CC): :func:`transfer_accuracy` (:mod:`.concepts`) and the k-means
  baseline :func:`kmeans_codebook` (:mod:`.baselines`);
- claim 3 (LOC): :func:`localize` and :func:`pointing_game` (:mod:`.localization`)
  and the dense baseline :func:`cosine_relevance` (:mod:`.baselines`).
"""
from .baselines import assign_codes, cosine_relevance, kmeans_codebook, span_means
from .concepts import transfer_accuracy
from .localization import localize, pointing_game
from .retrieval import content_ids, distractor_ceiling_r1, set_retrieval_metrics, set_retrieval_ranks

__all__ = ["content_ids", "set_retrieval_ranks", "set_retrieval_metrics", "distractor_ceiling_r1", "span_means",
           "cosine_relevance", "localize", "pointing_game", "transfer_accuracy", "kmeans_codebook", "assign_codes"]
