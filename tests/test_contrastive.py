"""Tests of minivq.contrastive: the symmetric InfoNCE / MMS retrieval loss (METHOD.md MMS)."""
import math

import numpy as np
import pytest

from minivq.contrastive import info_nce_backward, info_nce_forward, log_softmax, mms_loss
from minivq.gradcheck import check_backward


def mms_reference(S, margin):
    """(MMS) written term by term with math.exp / math.log."""
    B = len(S)
    Z = [[S[i][j] - (margin if i == j else 0.0) for j in range(B)] for i in range(B)]
    rows = sum(-Z[i][i] + math.log(sum(math.exp(Z[i][j]) for j in range(B))) for i in range(B)) / B
    cols = sum(-Z[j][j] + math.log(sum(math.exp(Z[i][j]) for i in range(B))) for j in range(B)) / B
    return 0.5 * (rows + cols)


@pytest.mark.parametrize("B", [1, 2, 5])
@pytest.mark.parametrize("margin", [0.0, 0.2, 1.0])
def test_info_nce_matches_the_loop_reference(B, margin):
    S = np.random.default_rng(B).standard_normal((B, B)) * 2
    loss, _ = info_nce_forward(S, margin)
    assert loss == pytest.approx(mms_reference(S.tolist(), margin), rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("B", [1, 2, 3, 6])
@pytest.mark.parametrize("margin", [0.0, 0.3])
def test_info_nce_gradient(B, margin):
    S = np.random.default_rng(10 + B).standard_normal((B, B)) * 2
    errors = check_backward(lambda S: info_nce_forward(S, margin), info_nce_backward, {"S": S}, rng=B)
    assert errors["S"] < 1e-7, f"dS rel_error {errors['S']:.1e}, expect < 1e-7"


def test_both_directions_averaged():
    """The 1/2: the loss of S is the mean of the a->b (rows) and b->a (columns) terms."""
    S = np.random.default_rng(0).standard_normal((4, 4))
    rows = -np.mean(np.diag(log_softmax(S, axis=1)))
    cols = -np.mean(np.diag(log_softmax(S, axis=0)))
    assert info_nce_forward(S)[0] == pytest.approx(0.5 * (rows + cols), rel=1e-14)
    assert info_nce_forward(S)[0] == pytest.approx(info_nce_forward(S.T)[0], rel=1e-14)
    assert rows != pytest.approx(cols)  # S is not symmetric: the two directions differ


def test_margin_and_limits():
    S = np.eye(3) * 5.0
    assert info_nce_forward(np.zeros((1, 1)))[0] == 0.0  # B = 1: nothing to confuse
    assert info_nce_forward(np.zeros((4, 4)))[0] == pytest.approx(math.log(4))  # chance
    assert info_nce_forward(S, margin=1.0)[0] > info_nce_forward(S)[0]  # delta makes positives harder


def test_mms_loss_is_forward_then_backward():
    S = np.random.default_rng(1).standard_normal((5, 5))
    loss, dS = mms_loss(S, margin=0.2)
    ref_loss, cache = info_nce_forward(S, 0.2)
    assert loss == ref_loss
    np.testing.assert_array_equal(dS, info_nce_backward(1.0, cache))
    assert abs(dS.sum()) < 1e-15  # each softmax sums to 1 along its axis


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finite_at_large_scale(dtype):
    S = (np.random.default_rng(2).standard_normal((8, 8)) * 1e6).astype(dtype)
    loss, dS = mms_loss(S, margin=0.2)
    assert np.isfinite(loss) and np.isfinite(dS).all() and dS.dtype == dtype


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="S"):
        info_nce_forward(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="S"):
        info_nce_forward(np.zeros((2, 2), dtype=int))
    with pytest.raises(ValueError, match="S"):
        info_nce_forward(np.full((2, 2), np.inf))


def test_margin_must_be_finite():
    with pytest.raises(ValueError, match="margin"):
        info_nce_forward(np.eye(2), margin=float("nan"))


def test_matches_torch_autograd():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    for B, margin in [(1, 0.0), (3, 0.2), (7, 1.0)]:
        S = rng.standard_normal((B, B)) * 3
        loss, dS = mms_loss(S, margin)
        tS = torch.tensor(S, requires_grad=True)
        Z = tS - margin * torch.eye(B, dtype=torch.float64)
        target = torch.arange(B)
        ce = torch.nn.functional.cross_entropy
        t_loss = 0.5 * (ce(Z, target) + ce(Z.T, target))
        t_loss.backward()
        assert loss == pytest.approx(t_loss.item(), rel=1e-12, abs=1e-14)
        np.testing.assert_allclose(dS, tS.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_mms_loss_is_exported_at_top_level():
    """Frozen interface: ``minivq.mms_loss`` (the lead adds the export to minivq/__init__.py)."""
    import minivq

    assert minivq.mms_loss is mms_loss


def test_log_softmax_and_info_nce_check_their_arguments():
    """log_softmax had no checks at all (issue 10); info_nce_backward now checks dloss and cache."""
    with pytest.raises(TypeError, match="Z must have dtype float32 or float64"):
        log_softmax(np.array(["a", "b"]), axis=0)
    with pytest.raises(ValueError, match="Z must be finite"):
        log_softmax(np.array([1.0, np.nan]), axis=0)
    with pytest.raises(ValueError, match=r"axis must be an int in \[-2, 1\], got 2"):
        log_softmax(np.ones((2, 2)), axis=2)
    with pytest.raises(ValueError, match="Z must have at least one entry along axis"):
        log_softmax(np.ones((2, 0)), axis=1)
    _, cache = info_nce_forward(np.eye(3))
    with pytest.raises(TypeError, match="dloss must be a finite number, got str"):
        info_nce_backward("1", cache)
    with pytest.raises(TypeError, match="cache must be the cache tuple returned by info_nce_forward"):
        info_nce_backward(1.0, (np.eye(3),))
    with pytest.raises(ValueError, match="S and margin must span less than"):
        info_nce_forward(np.array([[3e38, -3e38], [0.0, 0.0]], np.float32))
    with pytest.raises(TypeError, match="margin must be a finite number, got NoneType"):
        mms_loss(np.eye(2), margin=None)


def test_dloss_beyond_the_dtype_is_refused():
    _, cache = info_nce_forward(np.eye(2, dtype=np.float32))
    with pytest.raises(ValueError, match="dloss must keep dloss / \\(2B\\) within float32"):
        info_nce_backward(1e300, cache)  # inf * 0 gave NaN
