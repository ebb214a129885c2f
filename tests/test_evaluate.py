"""Tests of minivq.metrics.evaluate: per-unit code assignments (CM-1), chunked encoding, the report dict."""
import numpy as np
import pytest

from minivq.metrics.evaluate import encode_split, evaluate, unit_assignments
from minivq.model import init_params
from minivq.train import config_from_data

from test_train import random_pairs


def test_unit_assignments_is_cm1_per_unit():
    rng = np.random.default_rng(0)
    H, E = rng.normal(size=(2, 3, 4)), rng.normal(size=(5, 4))
    M = np.array([[True, True, False], [True, False, False]])
    p = unit_assignments(H, M, E, tau=0.5)
    d = np.sqrt(((H[:, :, None, :] - E[None, None]) ** 2).sum(-1))  # (B, T, K)
    expected = np.exp(-d / 0.5) / np.exp(-d / 0.5).sum(-1, keepdims=True)
    np.testing.assert_allclose(p[M], expected[M], rtol=1e-12)
    assert np.all(p[~M] == 0)


@pytest.mark.parametrize("variant", ["summary", "full"])
def test_chunked_encoding_matches_one_pass(variant):
    data = random_pairs(37)
    data["a_mask"][::3, -2:] = False  # ragged sequences: chunks get cut to different lengths
    cfg = config_from_data(data, ("a", "b"), variant=variant, D=4, K=8, hidden=8, embed_dim=8)
    params = init_params(cfg, np.random.default_rng(0))
    one = encode_split(params, cfg, data, chunk=64)
    many = encode_split(params, cfg, data, chunk=5)
    for m in ("a", "b"):
        np.testing.assert_allclose(many[m]["r"], one[m]["r"], rtol=1e-5)
        assert np.array_equal(many[m]["M"], one[m]["M"])
        if variant == "full":
            assert np.array_equal(many[m]["idx"][one[m]["M"]], one[m]["idx"][one[m]["M"]])


def test_evaluate_keys_by_variant():
    data = random_pairs(30)
    for variant, has_codes in (("summary", False), ("vq", True)):
        cfg = config_from_data(data, ("a", "b"), variant=variant, D=4, K=8, hidden=8, embed_dim=8)
        ev = evaluate(init_params(cfg, np.random.default_rng(0)), cfg, data)
        assert ev["modalities"] == ["a", "b"]
        assert ("localization" in ev) == has_codes and ("code_concept" in ev) == has_codes
        assert ("code" in ev["retrieval"]) == has_codes
        if has_codes:
            assert set(ev["localization"]) == {"a->b", "b->a"}
            assert len(ev["code_concept"]["agree_per_concept"]) == int(data["concepts"].max()) + 1
            cc = ev["code_concept"]
            for m in ("a", "b"):  # distinct top codes among the concepts that occur
                tops = [k for k in cc["top_codes"][m] if k >= 0]
                assert cc["distinct_top_codes"][m] == len(set(tops))
            assert cc["agreement"] <= min(cc["distinct_top_codes"].values())


def test_scenes_get_set_level_retrieval_and_the_chance_of_the_task_as_posed():
    """Per content, a candidate naming the same digits counts (so recall can only rise); the LOC
    chance among digit units is above the chance among all units (blank cells are easy to skip)."""
    from minivq.cli.demo import load_split
    from minivq.metrics.claims import set_retrieval_metrics
    data = load_split(("image", "speech"), "val", 40, world="hard_on_grid")
    cfg = config_from_data(data, ("image", "speech"), variant="full", D=8, K=8, hidden=8, embed_dim=8)
    params = init_params(cfg, np.random.default_rng(0))
    ev = evaluate(params, cfg, data)
    inst, per_set = ev["retrieval"]["summary"], ev["retrieval"]["set"]
    for way in ("a2b", "b2a"):
        for k in (1, 5, 10):
            assert per_set[way][f"R@{k}"] >= inst[way][f"R@{k}"]
    enc = encode_split(params, cfg, data)
    S = (enc["image"]["r"] @ enc["speech"]["r"].T) / cfg.tau
    assert per_set == set_retrieval_metrics(S, data["digits"])
    for loc in ev["localization"].values():
        assert loc["chance_digit_unit"] > loc["chance"] > 0
