"""Hypothesis draws of valid values, and the corruptions of one argument.

Valid arrays come from a NumPy generator seeded by Hypothesis (fast; the
shapes and the seed shrink), in one of several styles (normal, tiny ranges,
small integers that make ties, repeated rows, zeros). A corruption replaces
one argument, or one entry of a dict/list argument, by a value of another
kind: every dtype (bool, ints, float16/32/64, complex, object, str), wrong
shapes (a lost, added, grown, emptied axis; 0-d), layouts that must not
matter (Fortran order, strided, negative strides, read-only), NaN and inf,
huge and tiny values, ragged lists, and wrong scalars (None, "0.9", inf,
nan, negative, bool, complex).
"""
import dataclasses

import numpy as np
from hypothesis import strategies as st

DTYPES = [np.bool_, np.int8, np.int64, np.uint8, np.float16, np.float32, np.float64, np.complex128, object, str]


# ------------------------------------------------------------------ valid values
def rng_of(data):
    return np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))


def floats(data, shape, dtype=np.float64, scale=None):
    """A finite array of ``shape`` in one of several styles (ties and repeats included)."""
    rng = rng_of(data)
    style = data.draw(st.sampled_from(["normal", "normal", "small_ints", "repeat_rows", "zeros", "wide"]),
                      label="style")
    if style == "small_ints":
        a = rng.integers(-2, 3, size=shape).astype(np.float64)
    elif style == "repeat_rows" and len(shape) >= 2 and shape[0] > 1:
        a = rng.standard_normal(shape)
        a[1:] = a[rng.integers(0, shape[0], size=shape[0] - 1)]
    elif style == "zeros":
        a = np.zeros(shape)
    elif style == "wide":
        a = rng.standard_normal(shape) * 10.0 ** rng.integers(-6, 7, size=shape)
    else:
        a = rng.standard_normal(shape)
    if scale is not None:
        a = a * scale
    return a.astype(dtype)


def probs(data, shape, dtype=np.float64):
    """Rows that sum to 1 over the last axis (some exact zeros)."""
    rng = rng_of(data)
    p = rng.random(shape) ** 3
    p[rng.random(shape) < 0.2] = 0.0
    p[..., 0] += 1e-3
    return (p / p.sum(axis=-1, keepdims=True)).astype(dtype)


def mask(data, shape, at_least_one_per_row=True):
    rng = rng_of(data)
    m = rng.random(shape) < data.draw(st.sampled_from([0.5, 0.9, 1.0]), label="density")
    if at_least_one_per_row and m.ndim >= 1 and m.shape[-1]:
        m[..., 0] = True
    return m


def ints(data, shape, low, high):
    return rng_of(data).integers(low, high, size=shape).astype(np.int64)


def dims(data, *names, low=1, high=4):
    return [data.draw(st.integers(low, high), label=n) for n in names]


def dtype_of(data):
    return data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")


# ------------------------------------------------------------------ corruptions
def _layouts(a):
    out = []
    if a.ndim >= 2:
        out.append(("fortran", np.asfortranarray(a)))
    if a.ndim >= 1:
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        big[..., ::2] = a
        out.append(("strided", big[..., ::2]))
        out.append(("negative_strides", np.ascontiguousarray(a[::-1])[::-1]))
    ro = a.copy()
    ro.setflags(write=False)
    out.append(("readonly", ro))
    return out


def _cast(a, dt):
    with np.errstate(all="ignore"):
        if dt is str:
            return a.astype(str)
        return a.astype(dt)


def _values(data, a):
    """Special values at one position: NaN, inf, huge, tiny, negative."""
    if a.size == 0:
        return []
    i = data.draw(st.integers(0, a.size - 1), label="index")
    out = []
    for label, v in [("nan", np.nan), ("inf", np.inf), ("-inf", -np.inf), ("huge", 1e30), ("max", "max"),
                     ("tiny", 1e-40), ("negative", -1.0), ("big_int", 2**40)]:
        b = a.astype(np.float64) if a.dtype.kind in "iub" and label in ("nan", "inf", "-inf", "huge", "tiny") \
            else a.copy()
        if v == "max":
            v = np.finfo(b.dtype).max if b.dtype.kind == "f" else np.iinfo(b.dtype).max if b.dtype.kind in "iu" else 1
        with np.errstate(all="ignore"):
            flat = b.reshape(-1)
            try:
                flat[i] = v if b.dtype.kind != "b" else not flat[i]
            except (OverflowError, ValueError):  # e.g. -1 into uint8: no such value of this dtype
                continue
        out.append((label, b))
    if a.dtype.kind == "f":
        out.append(("all_huge", np.full_like(a, np.finfo(a.dtype).max / 4)))
    if a.dtype.kind == "b":
        out += [("all_false", np.zeros_like(a)), ("all_true", np.ones_like(a))]
    return out


def _shapes(data, a):
    out = [("0d", np.asarray(a.reshape(-1)[0] if a.size else 0.0, dtype=a.dtype)),
           ("add_axis", a[None]), ("add_axis_end", a[..., None])]
    if a.ndim >= 1:
        ax = data.draw(st.integers(0, a.ndim - 1), label="axis")
        out.append(("drop_axis", np.take(a, 0, axis=ax) if a.shape[ax] else a.sum(axis=ax).astype(a.dtype)))
        grown = np.concatenate([a, np.take(a, [0] if a.shape[ax] else [], axis=ax)], axis=ax) \
            if a.shape[ax] else np.ones(a.shape[:ax] + (1,) + a.shape[ax + 1:], a.dtype)
        out.append(("grow_axis", grown))
        out.append(("empty_axis", np.take(a, [], axis=ax)))
        if a.shape[ax] > 1:
            out.append(("shrink_axis", np.take(a, range(a.shape[ax] - 1), axis=ax)))
    if a.ndim >= 2:
        out.append(("transpose", a.T))
    return out


def array_corruptions(data, a):
    cands = _layouts(a) + [(f"dtype_{np.dtype(d).name}", _cast(a, d)) for d in DTYPES if np.dtype(d) != a.dtype]
    cands += _values(data, a) + _shapes(data, a)
    cands += [("list", a.tolist()), ("ragged", _ragged(a)), ("none", None), ("str", "array"), ("scalar", 1.0),
              ("dict", {"a": a})]
    return cands


def _ragged(a):
    rows = a.tolist() if a.ndim >= 2 and len(a) >= 2 else [[1.0, 2.0], [3.0]]
    if a.ndim >= 2 and len(a) >= 2:
        rows[-1] = rows[-1][:-1] if len(rows[-1]) > 1 else rows[-1] + rows[-1] + [0]
    return rows


SCALAR_BAD = [None, "0.9", "abc", float("nan"), float("inf"), -float("inf"), True, False, 1j, [1.0], (),
              np.array(0.5), 0, -1, -1.5, 0.0, 1e-320, 1e-46, 1e-30, 1e30, 1e300, 2**70, -(2**70), 1.5]


def scalar_corruptions(v):
    out = [(f"scalar_{x!r}"[:40], x) for x in SCALAR_BAD]
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)):
        out += [("negated", -v), ("times_1e10", v * 10_000_000_000), ("np_float32", np.float32(v)),
                ("np_int8", np.int8(1)), ("str_of", str(v)), ("plus_one", v + 1)]
    return out


def corruptions(data, v):
    """(label, new value) candidates for one value."""
    if isinstance(v, np.ndarray):
        return array_corruptions(data, v)
    if isinstance(v, (bool, np.bool_, int, float, np.integer, np.floating)):
        return scalar_corruptions(v)
    if isinstance(v, str):
        return [("empty_str", ""), ("other_str", "nope"), ("upper", v.upper()), ("none", None), ("int", 1)]
    if isinstance(v, np.random.Generator):
        return [("none", None), ("str", "0"), ("float", 1.5), ("negative", -1), ("legacy", np.random.RandomState(0)),
                ("seed", 7), ("big_seed", 2**70), ("list", [1, 2])]
    if isinstance(v, dict):
        return _dict_corruptions(data, v)
    if isinstance(v, (list, tuple)):
        return _seq_corruptions(data, v)
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return _dataclass_corruptions(data, v)
    if callable(v):
        return [("none", None), ("int", 1), ("str", "f")]
    if v is None:
        return [("ones", np.ones(3)), ("zero", 0), ("str", "none"), ("empty_list", [])]
    return [("none", None), ("int", 1), ("str", "x")]


def _dict_corruptions(data, d):
    out = [("none", None), ("list", list(d.values())), ("empty", {})]
    if d:
        key = data.draw(st.sampled_from(sorted(d, key=str)), label="key")
        out.append((f"drop[{key!r}]", {k: v for k, v in d.items() if k != key}))
        out.append(("extra_key", {**d, "extra": np.ones(2)}))
        for label, new in corruptions(data, d[key]):
            out.append((f"[{key!r}]:{label}", {**d, key: new}))
    return out


def _seq_corruptions(data, s):
    kind = type(s)
    out = [("none", None), ("empty", kind()), ("other_kind", list(s) if kind is tuple else tuple(s))]
    if s:
        i = data.draw(st.integers(0, len(s) - 1), label="item")
        out += [("drop_item", kind(list(s[:i]) + list(s[i + 1:]))), ("dup_item", kind(list(s) + [s[i]]))]
        for label, new in corruptions(data, s[i]):
            out.append((f"[{i}]:{label}", kind(list(s[:i]) + [new] + list(s[i + 1:]))))
    return out


def _dataclass_corruptions(data, obj):
    out = [("none", None), ("int", 1)]
    fields = [f.name for f in dataclasses.fields(obj)]
    name = data.draw(st.sampled_from(fields), label="field")
    for label, new in corruptions(data, getattr(obj, name)):
        clone = dataclasses.replace(obj) if not hasattr(obj, "validate") else _unchecked_copy(obj)
        object.__setattr__(clone, name, new)
        out.append((f".{name}:{label}", clone))
    return out


def _unchecked_copy(obj):
    """A copy of a validating dataclass (ModelConfig) whose fields can then be set to anything."""
    clone = object.__new__(type(obj))
    clone.__dict__.update(obj.__dict__)
    return clone


def coarse_corruptions(v):
    """Whole-object corruptions only: for opaque tokens such as a forward's cache."""
    out = [("none", None), ("int", 1), ("str", "cache"), ("empty_tuple", ()), ("dict", {})]
    if isinstance(v, tuple) and v:
        out += [("drop_last", v[:-1]), ("dup_last", v + v[-1:]), ("list", list(v))]
    if isinstance(v, dict) and v:
        out.append(("drop_key", dict(list(v.items())[1:])))
    return out


def corrupt(data, args, fixed=(), coarse=()):
    """args with one argument replaced by a corruption: (new args, label).

    Never ``fixed`` arguments or hidden context (names starting with "_");
    ``coarse`` arguments get only whole-object corruptions.
    """
    names = [n for n in args if n not in fixed and not n.startswith("_")]
    name = data.draw(st.sampled_from(names), label="argument")
    cands = coarse_corruptions(args[name]) if name in coarse else corruptions(data, args[name])
    label, new = data.draw(st.sampled_from(cands), label="corruption")
    return {**args, name: new}, f"{name}:{label}"
