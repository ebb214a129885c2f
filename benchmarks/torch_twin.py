"""A PyTorch (eager, CPU) twin of minivq's model and training step, for the benchmark only.

The twin takes minivq's parameters, batch and configuration and computes the
same loss (METHOD.md LOSS) with autograd, then the same update: global-norm
clipping, Adam on the weights, one EMA step of the codebook (VQ-5) and the
restart of dead codes (VQ-6). ``benchmarks/bench_train.py`` first checks that
its loss and every gradient agree with minivq's hand-written backward in
float64, then times the two steps side by side.

torch is not a dependency of minivq: ``pip install torch==2.13.0`` (a CPU
build already on this machine's disk) before running the benchmark.
"""
import numpy as np
import torch

from minivq.layers import conv1d_output_mask


def _masked_mean(H, M):
    """(B, T, D), (B, T) bool -> (B, D): the mean of the valid units (SUM-1, CM-2)."""
    w = M.to(H.dtype)
    return (H * w[..., None]).sum(1) / w.sum(1, keepdim=True)


def _normalize(x, eps=1e-12):
    """x / max(||x||, eps) on the last axis, as minivq.layers.l2_normalize_forward."""
    return x / torch.clamp(torch.linalg.vector_norm(x, dim=-1, keepdim=True), min=eps)


def _conv1d(x, W, b, stride, pad):
    """minivq's conv1d: x (B, T, C_in), W (k, C_in, C_out) -> (B, T_out, C_out)."""
    y = torch.nn.functional.conv1d(x.transpose(1, 2), W.permute(2, 1, 0), b, stride=stride, padding=pad)
    return y.transpose(1, 2)


def encode(m, P, x, mask, cfg):
    """Units H (B, T, D) and their mask of modality m (ENC)."""
    if m == "image":
        B, Hh, Ww = x.shape
        p = cfg.patch
        x = x.reshape(B, Hh // p, p, Ww // p, p).permute(0, 1, 3, 2, 4).reshape(B, -1, p * p)
        H = torch.relu(x @ P["W1"] + P["b1"]) @ P["W2"] + P["b2"]
        M = mask
    elif m == "speech":
        k, s = cfg.speech_kernel, cfg.speech_stride
        pad = (k - 1) // 2
        M1 = torch.from_numpy(conv1d_output_mask(mask.numpy(), k, s, pad))
        x = x * mask[..., None].to(x.dtype)  # padded frames read as zeros
        h = torch.relu(_conv1d(x, P["W1"], P["b1"], s, pad)) * M1[..., None].to(x.dtype)
        H = _conv1d(h, P["W2"], P["b2"], s, pad)
        M = torch.from_numpy(conv1d_output_mask(M1.numpy(), k, s, pad))
    else:
        raise ValueError(f"the twin knows the image and speech encoders, got {m!r}")
    if cfg.unit_norm:
        H = _normalize(H)
    return H, M


def _info_nce(S, margin=0.0):
    """Symmetric InfoNCE of a (B, B) similarity, positives on the diagonal (MMS, CM-4)."""
    Z = S - margin * torch.eye(S.shape[0], dtype=S.dtype)
    idx = torch.arange(S.shape[0])
    rows = torch.log_softmax(Z, dim=1)[idx, idx].mean()
    cols = torch.log_softmax(Z, dim=0)[idx, idx].mean()
    return -0.5 * (rows + cols)


def _code_distribution(H, M, E, tau, squared):
    """P (B, K): the masked mean of softmax(-d(h, e)/tau) over the valid units (CM-1, CM-2)."""
    sq = (H * H).sum(-1, keepdim=True) - 2.0 * H @ E.T + (E * E).sum(-1)  # (B, T, K)
    d = sq if squared else torch.sqrt(torch.clamp(sq, min=1e-12))
    return _masked_mean(torch.softmax(-d / tau, dim=-1), M)


def loss(params, inputs, cfg):
    """Total loss of one batch (LOSS) and the per-modality units (for the EMA step)."""
    r, units, commit = {}, {}, 0.0
    E = params.get("E")
    for m in cfg.modalities:
        P = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith(m + ".")}
        H, M = encode(m, P, *inputs[m], cfg)
        z = _masked_mean(H, M) @ P["Wz"] + P["cz"]  # (SUM-1)
        units[m] = {"H": H, "M": M}
        if cfg.use_vq:
            with torch.no_grad():
                flat = H.reshape(-1, cfg.D)
                sq = (flat * flat).sum(1, keepdim=True) - 2.0 * flat @ E.T + (E * E).sum(1)
                idx = sq.argmin(1).reshape(M.shape)  # (VQ-1)
            Q = E.detach()[idx]
            Q_st = H + (Q - H).detach()  # straight-through (VQ-2)
            z = z + _masked_mean(Q_st, M) @ P["Wq"] + P["cq"]  # (SUM-2, SUM-3)
            w = M.to(H.dtype)[..., None]
            commit = commit + cfg.beta * (((H - Q) * w) ** 2).sum() / (w.sum() * cfg.D)  # (VQ-3)
            units[m]["idx"] = idx
        r[m] = _normalize(z) if cfg.cosine else z
    a, b = cfg.modalities
    total = _info_nce(r[a] @ r[b].T / cfg.tau, cfg.margin) + commit
    if cfg.use_cmcm:
        P_a = _code_distribution(units[a]["H"], units[a]["M"], E, cfg.tau_code, cfg.squared)
        P_b = _code_distribution(units[b]["H"], units[b]["M"], E, cfg.tau_code, cfg.squared)
        S_code = P_a @ torch.log(P_b + 1e-10).T + torch.log(P_a + 1e-10) @ P_b.T  # (CM-3)
        total = total + cfg.lambda_cmcm * _info_nce(S_code)  # (CM-4)
    return total, units


def to_torch(params, inputs, trainable):
    """minivq's numpy params and batch as torch tensors (trainable ones require grad)."""
    tp = {k: torch.tensor(v, requires_grad=k in trainable) for k, v in params.items()}
    dtype = next(iter(params.values())).dtype
    ti = {m: (torch.from_numpy(np.ascontiguousarray(x, dtype=dtype)), torch.from_numpy(mask))
          for m, (x, mask) in inputs.items()}
    return tp, ti


def gradients(params, inputs, cfg):
    """(loss, {name: gradient}) of every parameter, with autograd (float64 for the check)."""
    tp, ti = to_torch(params, inputs, trainable=set(params))
    total, _ = loss(tp, ti, cfg)
    total.backward()
    return float(total.detach()), {k: np.zeros_like(params[k]) if v.grad is None else v.grad.detach().numpy() for k, v in tp.items()}


class TwinStep:
    """The whole training step of :func:`minivq.train.train_step`, in torch."""

    def __init__(self, state, inputs):
        cfg, tc = state.model_cfg, state.train_cfg
        self.cfg, self.tc = cfg, tc
        trainable = set(state.optimizer.params)
        self.params, self.inputs = to_torch(state.params, inputs, trainable)
        self.weights = [v for k, v in self.params.items() if k in trainable]
        self.opt = torch.optim.Adam(self.weights, lr=tc.lr, weight_decay=tc.weight_decay)
        if state.ema is not None:
            self.n = torch.tensor(state.ema.n)
            self.m = torch.tensor(state.ema.m)
        self.gen = torch.Generator().manual_seed(0)

    def __call__(self):
        self.opt.zero_grad(set_to_none=True)
        total, units = loss(self.params, self.inputs, self.cfg)
        total.backward()
        if self.tc.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.weights, self.tc.clip)
        self.opt.step()
        if self.cfg.use_vq and self.cfg.codebook == "ema":
            self._ema(units)
        return total.item()

    @torch.no_grad()
    def _ema(self, units):
        """VQ-5 over the valid units of both modalities, then VQ-6."""
        E, K, g, tc = self.params["E"], self.cfg.K, self.tc.ema_decay, self.tc
        X = torch.cat([u["H"][u["M"]] for u in units.values()])  # (N, D)
        k = torch.cat([u["idx"][u["M"]] for u in units.values()])
        counts = torch.bincount(k, minlength=K).to(X.dtype)
        sums = torch.zeros_like(self.m).index_add_(0, k, X)
        self.n.mul_(g).add_((1 - g) * counts)
        self.m.mul_(g).add_((1 - g) * sums)
        total = self.n.sum()
        smoothed = (self.n + tc.ema_eps) / (total + K * tc.ema_eps) * total
        E.copy_(self.m / smoothed[:, None])
        dead = torch.nonzero(self.n < tc.dead_threshold).ravel()
        if len(dead):
            pick = torch.randint(len(X), (len(dead),), generator=self.gen)
            E[dead] = X[pick]
            self.n[dead] = tc.dead_threshold
            self.m[dead] = X[pick] * tc.dead_threshold
