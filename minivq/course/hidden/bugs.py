"""The buggy variant of every spot-the-bug exercise, each a real bug of public code (teacher's side only)."""
BUGGY = {
    # the Laplace-smoothed count written back into the state (VQ-5)
    "bug_ema_smoothed_count": (
        "return EMAState(n=_smoothed_counts(n, eps), m=m, E=E.astype(state.E.dtype, copy=False))",),
    # the restarted codes' EMA state reset in the state passed in, not in the one returned (VQ-6)
    "bug_restart_keeps_ema_state": ("state.n[dead] = threshold\nstate.m[dead] = E[dead] * threshold",),
    # beta on the codebook loss instead of the commitment loss (VQ-3, VQ-4)
    "bug_beta_on_codebook": ("commit, dH_commit = commitment_loss(H, Q, M, 1.0)  # (VQ-3)",
                             'code, dE_m = codebook_loss(H, idx, M, params["E"])  # (VQ-4)\n'
                             "code, dE_m = cfg.beta * code, cfg.beta * dE_m"),
    # the CMG re-implementation pairs the second term (j, i) (CM-3)
    "bug_cmg_pairing": ("S = P_a @ L_b.T + P_b @ L_a.T  # (B_a, B_b)",),
}
