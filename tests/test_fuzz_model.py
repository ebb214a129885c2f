"""Fuzz of the model's configuration, encoders and losses (ENC, SUM, LOSS), in a child process
(the discrete path reaches the compiled kernel): a correct result or a named error (issue 10)."""
import dataclasses

import numpy as np
from fuzz import model_contract as MC
from fuzz.oracle import WrongResult, arr, cache, equal, generator, integer, need, num
from fuzz.runner import Spec, run_area_in_child
from hypothesis import strategies as st

from minivq import encoders as ENC
from minivq import model as MOD
from minivq.config import ModelConfig
from minivq.gradcheck import GradientCheckError
from minivq import model_check as MCK
from minivq.model_check import check_model_gradients, tiny_config, tiny_inputs

PAIRS = [("image", "speech"), ("image", "text"), ("a", "b"), ("speech", "text", "image")]


def draw_cfg(data, dtype=None):
    mods = data.draw(st.sampled_from(PAIRS), label="modalities")
    variant = data.draw(st.sampled_from(["summary", "vq", "full"]), label="variant")
    extra = {"dtype": dtype or data.draw(st.sampled_from(["float32", "float64"])),
             "codebook": data.draw(st.sampled_from(["ema", "grad"])), "unit_norm": data.draw(st.booleans())}
    return tiny_config(mods, variant, **extra)


def draw_model(data, require_all=True):
    cfg = draw_cfg(data)
    rng = np.random.default_rng(data.draw(st.integers(0, 99), label="seed"))
    params = MOD.init_params(cfg, rng)
    inputs = tiny_inputs(cfg, rng, B=data.draw(st.integers(1, 3)))
    inputs = {m: (np.asarray(x).astype(cfg.dtype) if m != "text" else x, mk) for m, (x, mk) in inputs.items()}
    if not require_all:
        inputs = {m: inputs[m] for m in cfg.modalities[:data.draw(st.integers(1, len(cfg.modalities)))]}
    return {"params": params, "inputs": inputs, "cfg": cfg}


def model_args(a, require_all=True):
    cfg = MC.config(a["cfg"])
    MC.inputs(a["inputs"], cfg, require_all)
    MC.params(a["params"], cfg, cfg.modalities if require_all else list(a["inputs"]), exact=require_all)
    return cfg


def clean(inputs):
    """Writeable C-contiguous copies: the same values, so the same loss."""
    return {m: (np.array(x), None if mk is None else np.array(mk)) for m, (x, mk) in inputs.items()}


# ----------------------------------------------------------------------------- config, model
def draw_config_kwargs(data):
    return dataclasses.asdict(draw_cfg(data))


def expect_config(a):
    MC.config_fields(a)
    return lambda r: equal(r.to_dict()["modalities"], tuple(a["modalities"]))


def draw_init_params(data):
    return {"cfg": draw_cfg(data), "rng": data.draw(st.sampled_from([0, np.random.default_rng(3)]))}


def expect_init_params(a):
    cfg = MC.config(a["cfg"])
    generator(a["rng"])
    shapes = MC.param_shapes(cfg, cfg.modalities)

    def check(r):
        dt = np.dtype(cfg.dtype)
        if set(r) != set(shapes) or any(r[k].shape != s or r[k].dtype != dt for k, s in shapes.items()):
            raise WrongResult(f"params {({k: v.shape for k, v in r.items()})} != {shapes}")
    return check


def draw_loss(data):
    return draw_model(data)


def draw_frozen_loss(data):
    a = draw_model(data)
    return {**a, "frozen": MCK.freeze_point(**a)}


def magnitude(a):
    """The largest |value| of the (checked) parameters and inputs; an overflow is documented above its 4th root."""
    keys = MC.param_shapes(a["cfg"], list(a["inputs"]))
    vals = [a["params"][k] for k in keys] + [x for x, _ in a["inputs"].values()]
    return max(float(np.abs(f64(v)).max(initial=0)) for v in vals)


def expect_loss(a):
    cfg = model_args(a)
    with np.errstate(all="ignore"):
        ref = MOD.loss_forward(a["params"], clean(a["inputs"]), cfg)[0]
    may_overflow = magnitude(a) > float(np.finfo(cfg.dtype).max) ** 0.25

    def check(r):
        loss, c = r
        parts = c["parts"]
        if may_overflow and not np.isfinite(loss):  # documented: NaN or inf when the forward overflows
            return
        total = parts["mms"] + cfg.lambda_cmcm * parts["cmcm"] + parts["commit"] + parts["codebook"]
        if not (isinstance(loss, float) and np.isfinite(loss) and loss >= 0 and abs(loss - total) <= 1e-9 * (1 + loss)):
            raise WrongResult(f"loss {loss!r}, parts {parts}")
        if loss != ref:
            raise WrongResult(f"the loss depends on the memory layout: {loss!r} != {ref!r}")
    return check


def draw_loss_back(data):
    a = draw_model(data)
    c = MOD.loss_forward(**a)[1]
    return {"cache": c, "_cache": c, "dloss": data.draw(st.sampled_from([1.0, 0.5, -2])), "_params": a["params"]}


NEEDED = ("cfg", "r", "pairs", "dE", "caches", "param_keys")  # what loss_backward reads


def expect_loss_back(a):
    c = a["_cache"]
    need(isinstance(a["cache"], dict) and all(k in a["cache"] for k in NEEDED), "cache")
    dloss = num(a["dloss"], "dloss")
    need(abs(dloss) <= float(np.finfo(c["cfg"].dtype).max), "dloss")
    unit = MOD.loss_backward(c, 1.0)

    def check(r):
        for k, p in a["_params"].items():
            g = r[k]
            if g.shape != p.shape or g.dtype != p.dtype or not np.isfinite(g).all():
                raise WrongResult(f"grads[{k!r}] {g.shape} {g.dtype}")
            tol = 1e-3 if p.dtype == np.float32 else 1e-9  # sums that cancel round differently at two scales
            atol = tol * np.abs(unit[k] * dloss).max(initial=0) + 64 * float(np.finfo(p.dtype).tiny)
            if not np.allclose(g, unit[k] * dloss, rtol=tol, atol=atol):
                raise WrongResult(f"grads[{k!r}] is not dloss times the gradient of the loss")
    return check


def draw_represent(data):
    return draw_model(data, require_all=False)


def expect_represent(a):
    cfg = model_args(a, require_all=False)
    may_overflow = magnitude(a) > float(np.finfo(cfg.dtype).max) ** 0.25

    def check(r):
        for m in a["inputs"]:
            rep = r[m]
            B = len(a["inputs"][m][0])
            if may_overflow and not np.isfinite(rep["r"]).all():  # documented: NaN/inf units on overflow
                continue
            if rep["r"].shape != (B, cfg.embed_dim) or not np.isfinite(rep["r"]).all():
                raise WrongResult(f"r of {m!r}: {rep['r'].shape}")
            if cfg.cosine and not np.allclose(np.linalg.norm(f64(rep["r"]), axis=1), 1, rtol=1e-4):
                raise WrongResult(f"r of {m!r} is not unit length")
    return check


def f64(x):
    return np.asarray(x, np.float64)


def expect_frozen_loss(a):
    """frozen_loss_forward: frozen is freeze_point's dict (None without VQ); at the base point the loss is loss_forward's."""
    cfg = model_args(a)
    fr = a["frozen"]
    if not cfg.use_vq:
        need(fr is None, "frozen")
    else:
        need(isinstance(fr, dict) and set(fr) == set(cfg.modalities), "frozen")
        units = MOD.loss_forward(a["params"], clean(a["inputs"]), cfg)[1]["units"]
        for m, entry in fr.items():
            need(isinstance(entry, dict) and set(entry) == {"Q", "H"}, f"frozen[{m!r}]")
            for k in ("Q", "H"):
                x = arr(entry[k], f"frozen[{m!r}][{k!r}]", coerce=False, ndim=3, dtype=np.dtype(cfg.dtype))
                need(x.shape == units[m]["H"].shape, f"frozen[{m!r}][{k!r}]")
    with np.errstate(all="ignore"):
        ref = MOD.loss_forward(a["params"], clean(a["inputs"]), cfg)[0]
    base = fr is None or all(np.array_equal(fr[m][k], MCK.freeze_point(a["params"], clean(a["inputs"]), cfg)[m][k])
                             for m in fr for k in ("Q", "H"))

    def check(r):
        loss = r[0]
        if not isinstance(loss, float):
            raise WrongResult(f"loss {loss!r}")
        tol = 100 * float(np.finfo(cfg.dtype).eps)  # h + (q - h) is q up to rounding
        if base and np.isfinite(ref) and abs(loss - ref) > tol * (1 + abs(ref)):
            raise WrongResult(f"at the base point the held loss {loss!r} differs from loss_forward's {ref!r}")
    return check


def expect_freeze(a):
    cfg = model_args(a)

    def check(r):
        if (r is None) != (not cfg.use_vq):
            raise WrongResult(f"freeze_point {type(r).__name__} for variant {cfg.variant!r}")
    return check


# ----------------------------------------------------------------------------- encoders
def draw_encoder(data):
    a = draw_model(data)
    m = data.draw(st.sampled_from(a["cfg"].modalities), label="modality")
    x, mask = a["inputs"][m]
    return {"modality": m, "params": a["params"], "x": x, "mask": mask, "cfg": a["cfg"]}


def encoder_args(a):
    cfg = MC.config(a["cfg"])
    m = a["modality"]
    need(isinstance(m, str) and m in MC.MODALITIES, "modality")
    need(m not in ("a", "b") or m in cfg.toy_dims, "modality", "cfg.toy_dims")
    MC.params(a["params"], cfg, [m], exact=False, encoders_only=True)
    x, _ = MC.encoder_input(m, a["x"], a["mask"], cfg, units=False)
    return cfg, m, x


def expect_encoder(a):
    cfg, m, x = encoder_args(a)
    P = [f64(a["params"][f"{m}.{n}"]) for n in ("W1", "b1", "W2", "b2") if f"{m}.{n}" in a["params"]]
    reach = np.abs(f64(x)).max(initial=0) * np.prod([np.abs(W).sum() + 1 for W in P])  # bound of any activation
    may_overflow = reach > float(np.finfo(cfg.dtype).max) / 4  # documented: NaN/inf units

    def check(r):
        H, M, _ = r
        if H.ndim != 3 or H.shape[0] != len(x) or H.shape[2] != cfg.D or H.dtype != np.dtype(cfg.dtype):
            raise WrongResult(f"H {H.shape} {H.dtype}")
        if M.shape != H.shape[:2] or M.dtype != bool or not (may_overflow or np.isfinite(H).all()):
            raise WrongResult(f"M {M.shape} or H not finite")
    return check


def draw_encoder_back(data):
    a = draw_encoder(data)
    H, _, c = ENC.encoder_forward(**a)
    return {"dH": np.random.default_rng(0).standard_normal(H.shape).astype(H.dtype), "cache": c, "_cache": c,
            "_keys": [f"{a['modality']}.{n}" for n in ("W1", "b1", "W2", "b2")
                      if not (a["modality"] == "text" and n == "b1")]}


def expect_encoder_back(a):
    shape, dtype = cache(a)[2]  # (modality, backward, (shape, dtype), caches, norm cache)
    arr(a["dH"], "dH", dtype=dtype, shape=shape)
    return lambda r: equal(sorted(r), sorted(a["_keys"]))


def draw_init_encoder(data):
    cfg = draw_cfg(data)
    return {"modality": data.draw(st.sampled_from(cfg.modalities)), "cfg": cfg, "rng": np.random.default_rng(1)}


def expect_init_encoder(a):
    cfg = MC.config(a["cfg"])
    m = a["modality"]
    need(isinstance(m, str) and m in MC.MODALITIES and (m not in ("a", "b") or m in cfg.toy_dims), "modality")
    need(isinstance(a["rng"], np.random.Generator), "rng")
    shapes = {k: v for k, v in MC.param_shapes(cfg, [m]).items() if k.split(".")[-1] in ("W1", "b1", "W2", "b2")}
    return lambda r: equal({k: v.shape for k, v in r.items()} == shapes, True)


def expect_input_dim(a):
    cfg = MC.config(a["cfg"])
    m = a["modality"]
    need(isinstance(m, str) and m in MC.MODALITIES and (m not in ("a", "b") or m in cfg.toy_dims), "modality",
         "cfg.toy_dims")
    return lambda r: equal(r, int(MC.input_width(m, cfg)))


def draw_unit_labels(data):
    cfg = draw_cfg(data)
    m = data.draw(st.sampled_from(cfg.modalities))
    T = data.draw(st.integers(5, 12))
    return {"modality": m, "labels": np.random.default_rng(T).integers(-1, 4, size=(2, T)), "cfg": cfg}


def expect_unit_labels(a):
    cfg = MC.config(a["cfg"])
    m = a["modality"]
    need(isinstance(m, str) and m in MC.MODALITIES and (m not in ("a", "b") or m in cfg.toy_dims), "modality")
    labels = arr(a["labels"], "labels", "i", ndim=2)
    if m != "speech":
        return lambda r: equal(r, labels)
    labels = labels.astype(np.int64)  # -1 for units beyond the input, whatever the input's integer dtype
    k, s = cfg.speech_kernel, cfg.speech_stride
    for _ in range(2):
        T_out = MC._conv_out(labels.shape[1], k, s)
        need(T_out >= 1 and labels.shape[1] >= 1, "labels", "T")
        labels = np.stack([labels[:, t * s] if t * s < labels.shape[1] else np.full(len(labels), -1)
                           for t in range(T_out)], axis=1)
    return lambda r: equal(r, labels)


def run_gradcheck(seed, tol):
    try:
        return check_model_gradients(tiny_config(("image", "text"), "full"), seed=seed, tol=tol)
    except GradientCheckError as err:  # the documented report of a failed check
        return err


def expect_gradcheck(a):
    integer(a["seed"], "seed", 0)
    tol = num(a["tol"], "tol", 0, low_open=True)

    def check(r):
        if isinstance(r, GradientCheckError) and tol < 1e-4:  # finite differences near their noise floor
            return
        if isinstance(r, GradientCheckError) or not all(e < tol for e in r.values()):
            raise WrongResult(f"a correct backward failed the check: {r}")
    return check


SPECS = [
    Spec("ModelConfig", ModelConfig, draw_config_kwargs, expect_config),
    Spec("init_params", MOD.init_params, draw_init_params, expect_init_params, weight=0.5),
    Spec("loss_forward", MOD.loss_forward, draw_loss, expect_loss, weight=0.5),
    Spec("loss_backward", MOD.loss_backward, draw_loss_back, expect_loss_back, weight=0.4),
    Spec("represent", MOD.represent, draw_represent, expect_represent, weight=0.4),
    Spec("freeze_point", MCK.freeze_point, lambda d: draw_model(d), expect_freeze, weight=0.3),
    Spec("frozen_loss_forward", MCK.frozen_loss_forward, draw_frozen_loss, expect_frozen_loss, weight=0.4),
    Spec("encoder_forward", ENC.encoder_forward, draw_encoder, expect_encoder, weight=0.5),
    Spec("encoder_backward", ENC.encoder_backward, draw_encoder_back, expect_encoder_back, weight=0.4),
    Spec("init_encoder", ENC.init_encoder, draw_init_encoder, expect_init_encoder, weight=0.5),
    Spec("input_dim", ENC.input_dim, lambda d: {k: v for k, v in draw_init_encoder(d).items() if k != "rng"},
         expect_input_dim, weight=0.5),
    Spec("unit_labels", ENC.unit_labels, draw_unit_labels, expect_unit_labels, weight=0.5),
    Spec("check_model_gradients", run_gradcheck, lambda d: {"seed": d.draw(st.integers(0, 3)), "tol": 1e-6},
         expect_gradcheck, weight=0.05),
]

def test_fuzz_in_a_child_process():
    report = run_area_in_child("test_fuzz_model")
    assert not report["failures"], "\n\n".join(report["failures"])
