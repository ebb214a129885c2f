"""What the student copy strips from the files it keeps (teacher's side only: it quotes the answers)."""
_NB02, _NB04 = "notebooks/02_layers_and_gradient_checks.ipynb", "notebooks/04_cross_modal_code_matching.ipynb"

#: This repository's redactions (docstrings state the forward; the notebooks derive the backward).
REDACTIONS = {
    # a full VQ-5 loop: the answer of ema_update; the test that uses it is graded on the teacher's side
    "tests/test_quantizer.py": {"drop": ("ema_reference_step",
                                         "test_ema_fifty_masked_steps_two_modalities_against_the_formula")},
    "minivq/layers/dense.py": {"docstrings": {
        "affine_backward": {"lines": {"With X (N, D_in) the rows": f"Derivation: {_NB02}.",
                                      "dW = X^T dY, db = sum_n dY_n.": "``need_dx=False`` (a first layer, whose"}},
        "l2_normalize_backward": {"lines": {"dx = (dout - [||x|| > eps]": "Gradient of :func:`l2_normalize_forward` "
                                                                          "with respect to x (SUM-3).",
                                            "With y = x / n, n = ||x||": "Below eps the forward divides by the "
                                                                         f"constant eps. Derivation: {_NB02}.",
                                            "component of dout along y.": None}}}},
    "minivq/layers/sequence.py": {"docstrings": {
        "masked_mean_backward": {"lines": {"dH[b, t] = w_bt dout[b]": "Gradient of :func:`masked_mean_forward` "
                                                                      "with respect to H (B, T, D)."}}}},
    "minivq/layers/conv.py": {"docstrings": {"conv1d_backward": {"notes": f"Derivation: {_NB02}."}}},
    "minivq/quantizer.py": {"docstrings": {
        "quantize_backward": {"lines": {"Straight-through estimator (VQ-2): dH = dQ.":
                                        "Straight-through estimator (VQ-2): the gradient of q = h + sg(q - h).",
                                        "A copy of dQ": "A new array (no gradient reaches E through the argmin)."}},
        "commitment_loss": {"lines": {"2 beta/(N D) M (h - q)": "The gradient of L with respect to H; zero on "
                                                                "padded units."}},
        "codebook_loss": {"lines": {"dE_k = 2/(N D) sum_": "The gradient of L with respect to E."}}}},
    "minivq/contrastive.py": {"docstrings": {
        "info_nce_backward": {"lines": {"dloss / (2B) [(softmax_rows(Z) - I)": "The gradient of the loss with "
                                                                               "respect to S."},
                              "notes": f"The margin shifts the diagonal by a constant. Derivation: {_NB04}."}}},
    "minivq/matching.py": {"docstrings": {
        "code_distribution_backward": {"notes": f"Derivation: {_NB04}."},
        "code_similarity_backward": {"lines": {"dS L_b + (dS P_b) / (P_a + eps).": "The gradient with respect to P_a.",
                                               "dS^T L_a + (dS^T P_a) / (P_b + eps).": "The gradient with respect to "
                                                                                       "P_b."},
                                     "notes": f"Derivation: {_NB04}."}}},
}
