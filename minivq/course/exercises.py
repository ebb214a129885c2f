"""The registry: each exercise's regions, points, METHOD.md IDs, graded and hidden tests (COURSE.md)."""
from dataclasses import dataclass, field

try:
    from .hidden.bugs import BUGGY
    from .hidden.redactions import REDACTIONS
except ImportError:  # a student copy: the teacher's side is not handed out
    BUGGY, REDACTIONS = {}, {}

__all__ = ["Exercise", "Course", "COURSE", "EXERCISES", "NOTEBOOK_NEEDS"]


@dataclass(frozen=True)
class Exercise:
    """One graded exercise: its regions are in ``path``; ``tests`` (public) and ``hidden`` (the teacher's)
    are pytest node ids or patterns that must all pass; ``requires``: exercises its tests also run through;
    ``buggy``: a spot-the-bug exercise's replacement of each region, in file order; ``threshold``: the
    gradient-check error shown beside the one measured; ``kind``: "implement" or "bug" (default by ``buggy``)."""

    name: str
    points: int
    method_ids: tuple
    path: str
    instruction: str
    tests: tuple
    notebooks: tuple = ()
    requires: tuple = ()
    buggy: tuple = None
    threshold: float = None
    hidden: tuple = ()
    kind: str = None

    def __post_init__(self):
        if self.kind is None:
            object.__setattr__(self, "kind", "implement" if self.buggy is None else "bug")
        if self.kind not in ("implement", "bug"):
            raise ValueError(f"{self.name}: kind must be 'implement' or 'bug', got {self.kind!r}")


@dataclass(frozen=True)
class Course:
    """The exercises, in syllabus order, and what the student copy does with the rest of the repository:
    ``notebook_needs`` (notebook -> the exercises it runs), ``instructor_only`` (left out), ``unscanned``
    (copied as they are), ``hidden_dir`` and ``redactions`` (see :mod:`minivq.course.redact`)."""

    exercises: tuple
    notebook_needs: dict = field(default_factory=dict)
    package: str = "minivq"
    instructor_only: tuple = ("tests/test_course.py",)
    unscanned: tuple = ("minivq/course",)
    hidden_dir: str = None
    redactions: dict = field(default_factory=dict)

    def names(self):
        return [ex.name for ex in self.exercises]

    def get(self, name):
        """The exercise called ``name`` (KeyError if none)."""
        for ex in self.exercises:
            if ex.name == name:
                return ex
        raise KeyError(name)

    def select(self, names=None, arg="--exercises"):
        """The exercises called ``names`` (all when None), in registry order; ValueError naming ``arg``."""
        if names is None:
            return list(self.exercises)
        unknown = [n for n in names if n not in self.names()]
        if unknown:
            raise ValueError(f"{arg}: unknown exercise {', '.join(map(repr, unknown))}; the exercises are "
                             f"{', '.join(self.names())} (minivq course list)")
        return [ex for ex in self.exercises if ex.name in set(names)]

    def requirements(self, name):
        """Every exercise ``name`` runs through, directly or not, in registry order."""
        found, todo = set(), list(self.get(name).requires)
        while todo:
            req = todo.pop()
            if req not in found:
                found.add(req)
                todo += self.get(req).requires
        return [n for n in self.names() if n in found]

    @property
    def points(self):
        return sum(ex.points for ex in self.exercises)


N01, N02, N03, N04, N05, N06, N07 = (("notebooks/" + n + ".ipynb",) for n in (
    "01_nearest_codeword", "02_layers_and_gradient_checks", "03_vector_quantization", "04_cross_modal_code_matching",
    "05_training_toy", "06_spoken_digits", "07_choices"))
T_NEAREST, T_LAYERS, T_QUANT = "tests/test_nearest.py::", "tests/test_layers.py::", "tests/test_quantizer.py::"
T_MATCH, T_METRICS, T_MODEL = "tests/test_matching.py::", "tests/test_metrics.py::", "tests/test_model.py::"
H_NEAREST, H_LAYERS, H_VQ = "hidden_nearest.py::", "hidden_layers.py::", "hidden_vq.py::"
H_MATCH, H_METRICS = "hidden_matching.py::", "hidden_metrics.py::"


def _bug(name, *args, **kwargs):
    """A spot-the-bug exercise, its buggy variants from the teacher's side when it is there."""
    return Exercise(name, *args, buggy=BUGGY.get(name), kind="bug", **kwargs)


EXERCISES = (
    # session 1: the nearest codeword
    Exercise("nearest_reference", 2, ("VQ-1",), "minivq/nearest.py",
             "return, for each row of X, the index of its nearest code and the score min_k s_k (VQ-1; notebook 01)",
             (T_NEAREST + "test_matches_brute_force[*-reference]",
              T_NEAREST + "test_ties_go_to_the_lowest_index[*-reference]"),
             N01, hidden=(H_NEAREST + "test_nearest_reference_at_fresh_sizes",)),
    Exercise("nearest_teaching", 3, ("VQ-1",), "minivq/_nearest_teaching.pyx",
             "fill e_sq, indices and sq_distances with plain loops over codes, rows and features "
             "(then pip install -e .)",
             (T_NEAREST + "test_matches_brute_force[*-teaching]",
              T_NEAREST + "test_ties_go_to_the_lowest_index[*-teaching]"),
             N01, hidden=(H_NEAREST + "test_nearest_teaching_at_fresh_sizes_with_partial_blocks",)),
    # session 2: backward passes by hand
    Exercise("affine_backward", 2, ("SUM-1",), "minivq/layers/dense.py",
             "return dx, dW, db, the gradients of y = x W + b, for x of any leading shape (notebook 02)",
             (T_LAYERS + "test_affine_gradients",), N02, threshold=1e-7,
             hidden=(H_LAYERS + "test_affine_backward_at_fresh_shapes",)),
    Exercise("masked_mean_backward", 2, ("SUM-1", "CM-2"), "minivq/layers/sequence.py",
             "return dH, the gradient of the masked mean over the valid units (notebook 02)",
             (T_LAYERS + "test_masked_mean_gradient",), N02, threshold=1e-7,
             hidden=(H_LAYERS + "test_masked_mean_backward_at_fresh_shapes",)),
    Exercise("l2_normalize_backward", 3, ("SUM-3",), "minivq/layers/dense.py",
             "return dx, the gradient of y = x / max(||x||, eps), row by row (notebook 02)",
             (T_LAYERS + "test_l2_normalize_gradient", T_LAYERS + "test_l2_normalize_gradient_below_eps"), N02,
             threshold=1e-7, hidden=(H_LAYERS + "test_l2_normalize_backward_at_fresh_shapes_and_below_eps",)),
    Exercise("conv1d_backward", 4, ("ENC",), "minivq/layers/conv.py",
             "return dx, dW, db, the gradients of the strided, padded conv1d of the forward (notebook 02)",
             (T_LAYERS + "test_conv1d_gradients",), N02, threshold=1e-7,
             hidden=(H_LAYERS + "test_conv1d_backward_at_fresh_shapes",)),
    Exercise("patchify_backward", 1, ("ENC",), N02[0],
             "return the gradient on the image: put each entry of dpatches back on its pixel (undo the reshape)",
             ("tests/test_notebook_exercises.py::test_unpatchify_is_the_backward_of_patchify",), N02, threshold=1e-7,
             hidden=(H_LAYERS + "test_patchify_backward_at_fresh_shapes",)),
    # session 3: vector quantization
    Exercise("straight_through", 1, ("VQ-2",), "minivq/quantizer.py",
             "return dH for q = h + sg(q - h), a new array (notebook 03)",
             (T_QUANT + "test_ste_backward_is_a_copy", T_QUANT + "test_ste_is_the_gradient_of_the_copy"), N03,
             threshold=1e-7, hidden=(H_VQ + "test_straight_through_at_fresh_shapes",)),
    Exercise("vq_loss_gradients", 3, ("VQ-3", "VQ-4"), "minivq/quantizer.py",
             "return dH of the commitment loss (VQ-3) and dE of the codebook loss (VQ-4), zero on padding "
             "(notebook 03)",
             (T_QUANT + "test_commitment_gradient_kink_aware", T_QUANT + "test_codebook_gradient_kink_aware",
              T_QUANT + "test_vq_losses_ignore_padding"), N03, threshold=1e-7,
             hidden=(H_VQ + "test_vq_loss_gradients_at_a_fresh_beta",)),
    Exercise("ema_update", 3, ("VQ-5",), "minivq/ema.py",
             "count and sum the valid units of every modality per code, then n, m, E of VQ-5 "
             "(E divides by the Laplace-smoothed count); never change state",
             (T_QUANT + "test_ema_one_step_by_hand", T_QUANT + "test_ema_update_returns_a_new_state",
              T_QUANT + "test_ema_pools_the_units_of_every_modality"), N03,
             hidden=(H_VQ + "test_ema_update_with_smoothing_at_fresh_sizes",)),
    Exercise("restart_dead_codes", 2, ("VQ-6",), "minivq/ema.py",
             "dead = the codes with n_k < threshold; none: return state, dead (the same state); else "
             "E, n, m = copies, and move each dead e_k onto a row of X drawn with rng.choice",
             (T_QUANT + "test_restart_pools_modalities_and_leaves_live_codes",), N03,
             hidden=(H_VQ + "test_restart_dead_codes_at_fresh_sizes",)),
    _bug("bug_ema_smoothed_count", 2, ("VQ-5",), "minivq/ema.py",
         "find and fix the bug: the EMA state drifts from VQ-5",
         (T_QUANT + "test_ema_stores_the_raw_count_not_the_smoothed_one",), N03, requires=("ema_update",),
         hidden=(T_QUANT + "test_ema_fifty_masked_steps_two_modalities_against_the_formula",
                 H_VQ + "test_ema_state_keeps_the_raw_count_over_fresh_steps")),
    _bug("bug_restart_keeps_ema_state", 2, ("VQ-6",), "minivq/ema.py",
         "find and fix the bug: a restarted code is dragged back",
         (T_QUANT + "test_restart_dead_code_is_not_dragged_back",), N03, requires=("ema_update", "restart_dead_codes"),
         hidden=(H_VQ + "test_restart_resets_the_ema_state_of_restarted_codes",)),
    _bug("bug_beta_on_codebook", 2, ("VQ-3", "VQ-4", "LOSS"), "minivq/model.py",
         "find and fix the bug: the total loss weights the two VQ losses unlike VQ-3 and VQ-4",
         (T_MODEL + "test_beta_weights_the_commitment_loss_not_the_codebook_loss",), N03,
         requires=("vq_loss_gradients",), hidden=(H_VQ + "test_beta_weights_the_commitment_loss_at_a_fresh_beta",)),
    # session 4: contrastive losses and cross-modal code matching
    Exercise("info_nce_backward", 3, ("MMS", "CM-4"), "minivq/contrastive.py",
             "return dS, the gradient of the symmetric InfoNCE loss with respect to S (notebook 04)",
             ("tests/test_contrastive.py::test_info_nce_gradient",), N04, threshold=1e-7,
             hidden=(H_MATCH + "test_info_nce_backward_at_a_fresh_size_and_margin",)),
    _bug("bug_cmg_pairing", 2, ("CM-3",), "minivq/matching.py",
         "find and fix the bug: S^code disagrees with CM-3 off the diagonal",
         (T_MATCH + "test_code_similarity_pairing_pitfall",
          T_MATCH + "test_code_similarity_matches_the_pairwise_loop[3-3-4]"),
         N04, hidden=(H_MATCH + "test_code_similarity_pairs_i_with_j_at_fresh_sizes",)),
    Exercise("code_similarity_backward", 3, ("CM-3",), "minivq/matching.py",
             "return dP_a and dP_b, the gradients of S^code (CM-3) (notebook 04)",
             (T_MATCH + "test_code_similarity_gradient",), N04, requires=("bug_cmg_pairing",), threshold=1e-7,
             hidden=(H_MATCH + "test_code_similarity_backward_at_fresh_sizes",)),
    Exercise("code_distribution_backward", 5, ("CM-1", "CM-2"), "minivq/matching.py",
             "return dH, dE: back through the masked mean, the softmax over the codes and the distances "
             "(0 below the floor) (notebook 04)",
             (T_MATCH + "test_code_distribution_gradient", T_MATCH + "test_unit_on_a_codeword_has_finite_gradients"),
             N04, threshold=1e-7,
             hidden=(H_MATCH + "test_code_distribution_backward_at_fresh_sizes_and_temperatures",)),
    # session 5: the whole model
    Exercise("pair_backward", 4, ("LOSS", "MMS", "CM-4"), "minivq/model.py",
             "add the pair's MMS gradient to dr[a], dr[b] and its CMCM gradient to dH[a], dH[b] and dE, "
             "each term at its weight in the loss (notebook 05)",
             (T_MODEL + "test_whole_model_gradient[*-full]",
              T_MODEL + "test_whole_model_gradient_grad_codebook_three_modalities"),
             N05, requires=("affine_backward", "masked_mean_backward", "l2_normalize_backward", "conv1d_backward",
                            "straight_through", "vq_loss_gradients", "info_nce_backward", "bug_cmg_pairing",
                            "code_similarity_backward", "code_distribution_backward"),
             threshold=1e-6, hidden=("hidden_model.py::test_whole_model_gradient_at_fresh_weights",)),
    # session 6: the claims, measured
    Exercise("loc_relevance", 2, ("LOC",), "minivq/metrics/localization.py",
             "return rel[b, l, u], the relevance of target unit u to query span l (LOC), -inf on padded target units",
             (T_METRICS + "test_relevance_is_the_dot_product_of_code_distributions",
              T_METRICS + "test_localization_by_hand_and_chance"), N06,
             hidden=(H_METRICS + "test_relevance_at_fresh_sizes",)),
    Exercise("cc_agreement", 3, ("CC",), "minivq/metrics/concepts.py",
             "top_a, top_b (-1 if absent), n_top_a, n_top_b (concepts per top "
             "code), agree: same top code, no other concept's",
             ("tests/test_concepts.py", T_METRICS + "test_shared_fraction_and_agreement",
              T_METRICS + "test_agreement_ignores_absent_concepts"), N06,
             hidden=(H_METRICS + "test_agreement_at_fresh_counts",)),
)

_EMA = ("ema_update", "bug_ema_smoothed_count", "restart_dead_codes", "bug_restart_keeps_ema_state")
_TRAINING = ("bug_beta_on_codebook", "vq_loss_gradients", "bug_cmg_pairing", "pair_backward", "info_nce_backward",
             "code_similarity_backward", "code_distribution_backward", "masked_mean_backward",
             "l2_normalize_backward", "affine_backward", "straight_through") + _EMA + ("loc_relevance", "cc_agreement")

#: Notebook -> the exercises its cells run, in order of first run (``python -m minivq.course.trace``;
#: a notebook's own regions, patchify_backward in 02, are listed by hand).
NOTEBOOK_NEEDS = {
    N01[0]: ("nearest_reference", "nearest_teaching"),
    N02[0]: ("affine_backward", "conv1d_backward", "patchify_backward", "masked_mean_backward",
             "l2_normalize_backward"),
    N03[0]: ("straight_through", "vq_loss_gradients") + _EMA,
    N04[0]: ("code_distribution_backward", "masked_mean_backward", "bug_cmg_pairing", "code_similarity_backward",
             "info_nce_backward"),
    N05[0]: _TRAINING, N06[0]: _TRAINING, N07[0]: _TRAINING,
}

COURSE = Course(EXERCISES, NOTEBOOK_NEEDS, hidden_dir="minivq/course/hidden", redactions=REDACTIONS,
                instructor_only=("tests/test_course.py", "tests/test_grader.py", "tests/test_grader_hostile.py",
                                 "tests/grader_fixtures", "minivq/course/hidden"))
