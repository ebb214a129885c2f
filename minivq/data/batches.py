"""A modality's arrays in a data dict, and the encoder inputs of a batch of its rows."""
import numpy as np

__all__ = ["DATA_KEYS", "modality_arrays", "batch_inputs"]

#: Keys of each modality's (input, input mask, input labels) in the dicts of
#: :func:`minivq.data.digit_scenes` and :func:`minivq.data.toy_pairs`.
DATA_KEYS = {m: (x, f"{m}_mask", f"{m}_labels") for m, x in
             (("image", "images"), ("speech", "speech"), ("text", "text"), ("a", "a"), ("b", "b"))}


def modality_arrays(data, modality, rows=slice(None)):
    """(x, mask, labels) of one modality from a data dict, restricted to ``rows`` (labels None if absent)."""
    if not isinstance(modality, str) or modality not in DATA_KEYS:
        raise ValueError(f"modality must be one of {tuple(DATA_KEYS)}, got {modality!r}")
    keys = DATA_KEYS[modality]
    if not isinstance(data, dict) or keys[0] not in data or keys[1] not in data:
        raise ValueError(f"data must be a dict holding {keys[0]!r} and {keys[1]!r} (see minivq.data), got "
                         f"{sorted(data) if isinstance(data, dict) else type(data).__name__}")
    out = []
    for key in keys:
        try:
            out.append(np.asarray(data[key])[rows] if key in data else None)
        except (IndexError, TypeError, ValueError) as err:
            culprit = "rows" if key == keys[0] else f"data[{key!r}]"
            raise ValueError(f"{culprit} must index the samples of data[{key!r}] (rows = {rows!r}): {err}") from None
    return tuple(out)


def batch_inputs(data, modalities, rows):
    """Encoder inputs ``{m: (x, mask)}`` of the given rows of a data dict.

    Sequences (speech, text, toy) are cut after the batch's last valid unit:
    the cut columns are padding, so the valid units are unchanged and the
    batch is cheaper.
    """
    out = {}
    for m in modalities:
        x, mask = modality_arrays(data, m, rows)[:2]
        if m != "image":
            T = int(np.max(np.nonzero(mask.any(axis=0))[0], initial=0)) + 1
            x, mask = x[:, :T], mask[:, :T]
        out[m] = (x, mask)
    return out
