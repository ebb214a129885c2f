"""The documented contract of a ModelConfig, of encoder inputs and of model parameters,
written independently of minivq's checks (for tests/test_fuzz_model.py)."""
import numpy as np

from .oracle import Invalid, arr, boolean, integer, need, num

MODALITIES = ("image", "speech", "text", "a", "b")
CHOICES = {"variant": ("summary", "vq", "full"), "codebook": ("ema", "grad"),
           "codebook_init": ("uniform", "kmeans++"), "dtype": ("float32", "float64")}
INTS = ("D", "K", "hidden", "embed_dim", "patch", "n_mels", "vocab", "speech_kernel", "speech_stride", "text_kernel",
        "image_stride")
RANGES = {"tau": (0.01, 100), "tau_code": (0.01, 100), "margin": (0, 100), "lambda_cmcm": (0, 100), "beta": (0, 100)}
BOOLS = ("unit_norm", "cosine", "squared")


def config_fields(f, prefix="ModelConfig "):
    """Invalid naming "ModelConfig <field>" unless the field values ``f`` (a dict) are valid."""
    def bad(name):
        return (prefix + name, name)
    for name, choices in CHOICES.items():
        need(isinstance(f[name], str) and f[name] in choices, *bad(name))
    mods = f["modalities"]
    need(isinstance(mods, (list, tuple)) and all(isinstance(m, str) for m in mods), *bad("modalities"))
    need(len(mods) >= 2 and len(set(mods)) == len(mods) and all(m in MODALITIES for m in mods), *bad("modalities"))
    for name in INTS:
        try:
            integer(f[name], name, 1, 1 << 20)
        except Invalid:
            raise Invalid(*bad(name)) from None
    for name, (lo, hi) in RANGES.items():
        try:
            num(f[name], name, lo, hi)
        except Invalid:
            raise Invalid(*bad(name)) from None
    for name in BOOLS:
        try:
            boolean(f[name], name)
        except Invalid:
            raise Invalid(*bad(name)) from None
    toy = f["toy_dims"]
    need(isinstance(toy, dict) and set(toy) <= {"a", "b"}, *bad("toy_dims"))
    need(all(m in toy for m in mods if m in ("a", "b")), *bad("toy_dims"))
    for k, v in toy.items():
        try:
            integer(v, k, 1, 1 << 20)
        except Invalid:
            raise Invalid(*bad("toy_dims")) from None
    w, p, s = f["image_window"], f["patch"], f["image_stride"]
    if w is not None:  # a window around each cell: patch plus an even margin, a whole number of strides
        try:
            integer(w, "image_window", 1, 1 << 20)
        except Invalid:
            raise Invalid(*bad("image_window")) from None
        need(w >= p and (w - p) % 2 == 0, *bad("image_window"))
        need(p % s == 0 and (w - p) % s == 0, *bad("image_stride"))


def config(cfg):
    from minivq.config import ModelConfig
    need(isinstance(cfg, ModelConfig), "cfg")
    config_fields(vars(cfg))
    return cfg


def input_width(m, cfg):
    return {"image": cfg.patch ** 2, "speech": cfg.n_mels, "text": cfg.vocab, "a": cfg.toy_dims.get("a"),
            "b": cfg.toy_dims.get("b")}[m]


def param_shapes(cfg, modalities):
    shapes = {}
    for m in modalities:
        F, Hd, D = input_width(m, cfg), cfg.hidden, cfg.D
        if m == "speech":
            W1, W2 = (cfg.speech_kernel, F, Hd), (cfg.speech_kernel, Hd, D)
        elif m == "text":
            W1, W2 = (F, Hd), (cfg.text_kernel, Hd, D)
        else:
            W1, W2 = (F, Hd), (Hd, D)
        shapes.update({f"{m}.W1": W1, f"{m}.W2": W2, f"{m}.b2": (D,)})
        if m != "text":
            shapes[f"{m}.b1"] = (Hd,)
        for h in ("z", "q") if cfg.variant != "summary" else ("z",):
            shapes.update({f"{m}.W{h}": (D, cfg.embed_dim), f"{m}.c{h}": (cfg.embed_dim,)})
    if cfg.variant != "summary":
        shapes["E"] = (cfg.K, cfg.D)
    return shapes


def params(P, cfg, modalities, exact=True, encoders_only=False):
    need(isinstance(P, dict), "params")
    shapes = param_shapes(cfg, modalities)
    if encoders_only:
        shapes = {k: v for k, v in shapes.items() if k.split(".")[-1] in ("W1", "b1", "W2", "b2")}
    need(all(k in P for k in shapes), "params")
    need(not exact or set(P) == set(shapes), "params")
    for k, shape in shapes.items():
        arr(P[k], f"params[{k!r}]", coerce=False, dtype=np.dtype(cfg.dtype), shape=shape, also=("cfg.dtype",))


def _conv_out(T, k, s):
    p = (k - 1) // 2
    return (T + 2 * p - k) // s + 1 if T + 2 * p >= k else 0


def unit_mask(m, mask, cfg):
    if m != "speech":
        return mask
    k, s = cfg.speech_kernel, cfg.speech_stride
    for _ in range(2):
        T_out = _conv_out(mask.shape[1], k, s)
        c = np.arange(T_out) * s - (k - 1) // 2 + (k - 1) // 2
        out = np.zeros((mask.shape[0], T_out), bool)
        inside = (c >= 0) & (c < mask.shape[1])
        out[:, inside] = mask[:, c[inside]]
        mask = out
    return mask


def encoder_input(m, x, mask, cfg, units=True):
    """(x in cfg.dtype, mask) of one modality, or Invalid naming "x of 'm'" / "mask of 'm'"."""
    xn, mn = f"x of {m!r}", f"mask of {m!r}"
    if m == "text":
        x = arr(x, xn, "i", ndim=2)
        need(x.size == 0 or (x.min() >= 0 and x.max() < cfg.vocab), xn)
    else:
        x = arr(x, xn, "r", ndim=3, finite=False)
        need(x.dtype.kind != "f" or np.isfinite(x).all(), xn)
        with np.errstate(over="ignore"):
            need(np.isfinite(x.astype(cfg.dtype)).all(), xn)
    need(x.shape[0] >= 1 and x.shape[1] >= 1, xn)
    if m == "image":
        need(x.shape[1] % cfg.patch == 0 and x.shape[2] % cfg.patch == 0 and x.shape[2] >= 1, xn)
        T_in = (x.shape[1] // cfg.patch) * (x.shape[2] // cfg.patch)
    else:
        T_in = x.shape[1]
    if m == "speech":
        T1 = _conv_out(x.shape[1], cfg.speech_kernel, cfg.speech_stride)
        need(T1 >= 1 and _conv_out(T1, cfg.speech_kernel, cfg.speech_stride) >= 1, xn, "cfg.speech_kernel")
    if m == "text":
        need(_conv_out(x.shape[1], cfg.text_kernel, 1) >= 1, xn, "cfg.text_kernel")
    if m in ("speech", "a", "b"):
        need(x.shape[2] == input_width(m, cfg), xn)
    mask = np.ones((x.shape[0], T_in), bool) if mask is None else arr(mask, mn, "b", shape=(x.shape[0], T_in))
    need(not units or unit_mask(m, mask, cfg).any(axis=1).all(), mn)
    return x, mask


def inputs(inp, cfg, require_all=True):
    need(isinstance(inp, dict) and len(inp) >= 1, "inputs")
    need(all(m in cfg.modalities for m in inp), "inputs")
    need(not require_all or set(inp) == set(cfg.modalities), "inputs")
    sizes = set()
    for m, pair in inp.items():
        need(isinstance(pair, (tuple, list)) and len(pair) == 2, f"inputs[{m!r}]")
        x, _ = encoder_input(m, pair[0], pair[1], cfg)
        sizes.add(len(x))
    need(len(sizes) == 1, "inputs")
