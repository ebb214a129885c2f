"""Hidden check of the whole model's backward (LOSS): every weighted term at a weight drawn at grading time."""
from _draw import integer, setup

from minivq.model_check import check_model_gradients, tiny_config

PAIRS = (("image", "speech"), ("image", "text"), ("speech", "text"), ("a", "b"))


def test_whole_model_gradient_at_fresh_weights(request):
    rng, note = setup(request)
    for modalities, codebook in ((PAIRS[integer(rng, 0, 3)], ("ema", "grad")[integer(rng, 0, 1)]),):
        weights = {"lambda_cmcm": round(float(rng.uniform(0.2, 0.8)), 3), "beta": round(float(rng.uniform(0.1, 2)), 3),
                   "margin": round(float(rng.uniform(0.0, 0.3)), 3)}
        seed = integer(rng, 0, 10 ** 6)
        note(modalities=modalities, codebook=codebook, seed=seed, **weights)
        cfg = tiny_config(modalities, "full", codebook=codebook, **weights)
        errors = check_model_gradients(cfg, seed=seed)
        worst = max(errors, key=errors.get)
        assert errors[worst] < 1e-6, f"{modalities} {weights}: d{worst} rel_error {errors[worst]:.1e}, expect < 1e-6"
