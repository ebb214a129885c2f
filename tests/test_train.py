"""Tests of minivq.train: determinism, checkpoint resume, EMA codebook, learning, divergence (LOSS, VQ-5, VQ-6)."""
import re

import numpy as np
import pytest

import minivq.train
from minivq.cli.progress import Clock
from minivq.train import (TrainConfig, TrainingDiverged, config_from_data, fit, init_state, load_checkpoint,
                          save_checkpoint, train_step, batch_inputs)


def random_pairs(n, seed=0, C=4, T=5):
    """Tiny toy-shaped data: concept c adds prototype c to one unit of each modality."""
    rng = np.random.default_rng(seed)
    protos = {"a": np.random.default_rng(7).normal(size=(C, 3)) * 2,
              "b": np.random.default_rng(8).normal(size=(C, 4)) * 2}
    concepts = rng.integers(0, C, size=n)
    data = {"concepts": concepts[:, None]}
    for m, P in protos.items():
        x = 0.3 * rng.normal(size=(n, T, P.shape[1]))
        pos = rng.integers(0, T, size=n)
        x[np.arange(n), pos] += P[concepts]
        labels = np.full((n, T), -1)
        labels[np.arange(n), pos] = concepts
        data.update({m: x.astype(np.float32), f"{m}_mask": np.ones((n, T), bool), f"{m}_labels": labels})
    return data


SMALL = dict(D=4, K=8, hidden=8, embed_dim=8)


def make_state(variant="full", epochs=2, seed=0, **train):
    data = random_pairs(96)
    cfg = config_from_data(data, ("a", "b"), variant=variant, **SMALL)
    tc = TrainConfig(epochs=epochs, batch_size=16, seed=seed, **{"val_size": 0, **train})
    return init_state(cfg, tc, data), data


def assert_same_state(s1, s2):
    assert s1.params.keys() == s2.params.keys()
    for k in s1.params:
        assert np.array_equal(s1.params[k], s2.params[k]), f"params[{k!r}] differ"
    if s1.ema is not None:
        for name in ("n", "m", "E"):
            assert np.array_equal(getattr(s1.ema, name), getattr(s2.ema, name)), f"ema.{name} differs"
    losses1 = [h["loss"] for h in s1.history]
    losses2 = [h["loss"] for h in s2.history]
    assert losses1 == losses2


@pytest.mark.parametrize("variant", ["summary", "vq", "full"])
def test_same_seed_same_bits(variant):
    s1, data = make_state(variant)
    s2, _ = make_state(variant)
    fit(s1, data, log=None)
    fit(s2, data, log=None)
    assert_same_state(s1, s2)


def test_different_seed_differs():
    s1, data = make_state(seed=0)
    s2, _ = make_state(seed=1)
    fit(s1, data, log=None)
    fit(s2, data, log=None)
    assert not np.array_equal(s1.params["a.W1"], s2.params["a.W1"])


@pytest.mark.parametrize("variant", ["summary", "full"])
def test_resume_equals_uninterrupted(tmp_path, variant):
    # dead_threshold high: codes get restarted, so the RNG state matters too
    straight, data = make_state(variant, epochs=3, dead_threshold=2.0)
    fit(straight, data, log=None)
    first, _ = make_state(variant, epochs=1, dead_threshold=2.0)
    fit(first, data, log=None)
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, first)
    resumed = load_checkpoint(path, epochs=3)
    assert resumed.epoch == 1 and resumed.step == first.step
    fit(resumed, data, log=None)
    assert_same_state(straight, resumed)
    if variant == "full":
        assert any(h["restarted"] > 0 for h in straight.history), "the test should exercise restarts"


def test_checkpoint_round_trip(tmp_path):
    state, data = make_state()
    fit(state, data, log=None)
    save_checkpoint(tmp_path / "c.npz", state)
    loaded = load_checkpoint(tmp_path / "c.npz")
    assert loaded.model_cfg == state.model_cfg and loaded.train_cfg == state.train_cfg
    assert loaded.optimizer.t == state.optimizer.t
    assert_same_state(state, loaded)


def test_ema_codebook_is_not_moved_by_adam():
    state, data = make_state()
    E_before = state.params["E"].copy()
    inputs = batch_inputs(data, ("a", "b"), np.arange(16))
    train_step(state, inputs)
    assert "E" not in state.optimizer.params
    np.testing.assert_array_equal(state.params["E"], state.ema.E)  # E follows the EMA (VQ-5)
    assert not np.array_equal(E_before, state.params["E"])


def test_grad_codebook_is_trained_by_adam():
    data = random_pairs(32)
    cfg = config_from_data(data, ("a", "b"), codebook="grad", **SMALL)
    state = init_state(cfg, TrainConfig(epochs=1, batch_size=16, val_size=0), data)
    assert "E" in state.optimizer.params and state.ema is None
    logs = train_step(state, batch_inputs(data, ("a", "b"), np.arange(16)))
    assert logs["codebook"] > 0


def test_training_lowers_the_loss_and_logs(capsys):
    state, data = make_state(epochs=8, val_size=50)
    fit(state, data, val_data=data)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 8 and "ppl" in lines[-1]
    assert "val R@1 (50 pairs)" in lines[-1], "the quick R@1 must name its set size"
    assert state.history[-1]["loss"] < 0.9 * state.history[0]["loss"], [h["loss"] for h in state.history]


def test_after_epoch_sees_each_epoch_and_must_be_callable():
    from minivq.data import toy_pairs
    data = toy_pairs(32, seed=0)
    cfg = config_from_data(data, ("a", "b"), variant="full", D=8, K=8, hidden=16, embed_dim=16)
    state = init_state(cfg, TrainConfig(seed=0, epochs=3, batch_size=16), data)
    seen = []
    fit(state, data, log=None, after_epoch=lambda st: seen.append((st.epoch, len(st.history))))
    assert seen == [(1, 1), (2, 2), (3, 3)]
    with pytest.raises(TypeError, match="after_epoch must be None or a callable.*got int"):
        fit(init_state(cfg, TrainConfig(seed=0, epochs=1), data), data, log=None, after_epoch=3)


def test_progress_lines_name_the_run_and_give_an_eta():
    state, data = make_state(epochs=3, seed=4, val_size=500)  # val_size above the 96 pairs held
    lines = []
    fit(state, data, val_data=data, log=lines.append)
    assert lines[0].startswith("[full, seed 4] epoch 1/3") and "val R@1 (96 pairs)" in lines[0]
    assert re.search(r"ETA \d+s$", lines[0]) and lines[-1].endswith("ETA 0s")
    state2, _ = make_state(epochs=2)
    clock = Clock(total=10)  # a command of 10 epochs in all: 8 remain after this run's 2
    fit(state2, data, log=lines.append, label="[vq 2/3, seed 1]", clock=clock)
    assert lines[-1].startswith("[vq 2/3, seed 1] epoch 2/2") and clock.done == 2
    assert clock.eta() == pytest.approx(8 * clock.seconds / 2), "ETA: the command's remaining epochs"


@pytest.mark.parametrize("clip", [5.0, 0.0])
def test_an_extreme_learning_rate_stops_saying_the_loss_diverged(clip):
    state, data = make_state(epochs=3, lr=1e18, clip=clip)
    with pytest.raises(TrainingDiverged) as err:
        fit(state, data, log=None)
    message = str(err.value)
    assert re.fullmatch(r"training diverged at epoch \d, step \d+ \(.*\); try a smaller learning rate "
                        r"\(lr = 1e\+18 now\)", message), message
    assert err.value.step == state.step + 1 and err.value.epoch == state.epoch + 1
    assert f"epoch {state.epoch + 1}, step {state.step + 1} " in message
    assert "must be finite" not in message.split("(")[1], "the cause is the learning rate, not a layer's input"
    assert isinstance(err.value, FloatingPointError)


def test_a_non_finite_loss_stops_before_the_weights_change(monkeypatch):
    state, data = make_state(epochs=2)
    real_forward, calls = minivq.train.loss_forward, []

    def forward(params, inputs, cfg):
        loss, cache = real_forward(params, inputs, cfg)
        calls.append(1)
        return (np.float32(np.inf) if len(calls) == 4 else loss), cache

    monkeypatch.setattr(minivq.train, "loss_forward", forward)
    with pytest.raises(TrainingDiverged, match=r"at epoch 1, step 4 \(loss = inf\); try a smaller learning rate"):
        fit(state, data, log=None)
    assert state.step == 3 and state.optimizer.t == 3, "the failing step must not update the weights"


def test_bad_input_data_is_not_called_divergence():
    state, data = make_state(epochs=1)
    data["a"][5:, 1] = np.nan  # finite first batch, NaN later
    with pytest.raises(ValueError) as err:
        fit(state, data, log=None)
    assert not isinstance(err.value, TrainingDiverged)
    assert str(err.value).startswith("train_data: x of 'a' must be finite"), "checked once, before any step"
    assert state.step == 0


def test_training_step_restarts_a_dead_code_from_the_batch_units():
    from minivq.train import batch_inputs, train_step
    data = random_pairs(32)
    cfg = config_from_data(data, ("a", "b"), variant="full", **SMALL)
    state = init_state(cfg, TrainConfig(batch_size=16, seed=0, val_size=0), data)
    inputs = batch_inputs(data, cfg.modalities, np.arange(16))
    train_step(state, inputs)
    state.ema.n[:] = 1e3  # every code alive ...
    state.ema.n[5] = 1e-9  # ... but one
    logs = train_step(state, inputs)
    assert logs["restarted"] == 1
    assert np.isclose(state.ema.n[5], state.train_cfg.dead_threshold)
    restarted = state.params["E"][5].copy()
    assert restarted.shape == (cfg.D,) and np.isfinite(restarted).all()
    assert abs(np.linalg.norm(restarted) - 1) < 1e-5  # a unit of the batch: on the unit sphere
    state.ema.n[:] = 1e3  # nothing dead: no restart, and the rng is not drawn from
    rng_state = state.rng.bit_generator.state
    assert train_step(state, inputs)["restarted"] == 0
    assert state.rng.bit_generator.state == rng_state
