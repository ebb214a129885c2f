"""Tests of minivq.report.figures: figures are returned, saved only on request, never pile up, tell the truth.

The inputs come from the real pipeline (digit scenes, an untrained model,
``encode_split`` and ``evaluate``), so the figures are drawn from the
structures the demo hands them.
"""
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from minivq.data import digit_scenes
from minivq.metrics.evaluate import encode_split, evaluate
from minivq.model import init_params
from minivq.report import figures
from minivq.train import config_from_data

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def scored():
    data = digit_scenes("val", 6, seed=0, patch=8)
    cfg = config_from_data(data, ("image", "speech"), D=4, K=8, hidden=8, embed_dim=8, patch=8)
    params = init_params(cfg, np.random.default_rng(0))
    enc = encode_split(params, cfg, data)
    return data, cfg, enc, evaluate(params, cfg, data, enc=enc)


def history(n, cmcm):
    return [{"epoch": e, "mms": 1.0 / e, "cmcm": cmcm / e, "val_r1": 0.1 * e, "val_pairs": 200} for e in range(1, n + 1)]


def calls(scored):
    """Every plotting function with its inputs: name -> f(path) returning the figure."""
    data, cfg, enc, ev = scored
    cc = ev["code_concept"]
    return {
        "training_curves": lambda path: figures.plot_training_curves({"vq": history(3, 0), "full": history(3, 2)}, path),
        "code_usage": lambda path: figures.plot_code_usage(cc, path),
        "code_digit": lambda path: figures.plot_code_digit(cc, path),
        "code_digit_ablation": lambda path: figures.plot_code_digit(cc, path, baseline=cc),
        "localization": lambda path: figures.plot_localization(data, enc, cfg, path, samples=(0, 1)),
        "retrieval": lambda path: figures.plot_retrieval(data, enc, path, queries=(0, 1), top=3),
    }


NAMES = ["training_curves", "code_usage", "code_digit", "code_digit_ablation", "localization", "retrieval"]


@pytest.mark.parametrize("name", NAMES)
def test_figure_is_returned_and_saved_only_with_a_path(name, scored, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = plt.get_fignums()
    fig = calls(scored)[name](None)
    assert isinstance(fig, Figure), f"plot of {name} returned {type(fig).__name__}, expected a Figure"
    assert list(tmp_path.iterdir()) == [], "path=None must write nothing"
    out = tmp_path / f"{name}.png"
    assert calls(scored)[name](out) is not None
    assert out.read_bytes()[:8] == PNG, f"{out} is not a PNG"
    assert [p.name for p in tmp_path.iterdir()] == [out.name], "no temporary file is left beside the figure"
    assert plt.get_fignums() == before, "figures must not accumulate in pyplot (a long demo run)"


def test_the_library_never_selects_a_backend(scored, monkeypatch, tmp_path):
    backend = matplotlib.get_backend()

    def forbidden(*args, **kwargs):
        raise AssertionError(f"minivq called matplotlib.use{args}")

    monkeypatch.setattr(matplotlib, "use", forbidden)
    monkeypatch.setattr(plt, "switch_backend", forbidden)
    for name, draw in calls(scored).items():
        draw(tmp_path / f"{name}.png")
    assert matplotlib.get_backend() == backend


def colorbar_labels(fig):
    """Labels of the colour bars of a figure (and of its subfigures)."""
    return [ax.get_ylabel() or ax.get_xlabel() for ax in fig.get_axes() if hasattr(ax, "_colorbar")]


def test_heat_maps_have_labelled_colour_bars(scored):
    cc = scored[3]["code_concept"]
    assert colorbar_labels(figures.plot_code_digit(cc)) == ["fraction of the concept's units"]
    assert len(colorbar_labels(figures.plot_code_digit(cc, baseline=cc))) == 2, "one colour bar per model"
    labels = colorbar_labels(calls(scored)["localization"](None))
    assert len(labels) == 2 and all(labels), f"relevance and spectrogram colour bars, labelled; got {labels}"


def shared_top_code_cc():
    """Concepts 0 and 1 share top code 2 in both modalities; concept 2 has code 0 in both; v0.1 said 3/3."""
    counts = np.zeros((4, 5), dtype=np.int64)
    counts[0, 2], counts[1, 2], counts[2, 0], counts[3, 4] = 5, 4, 6, 9  # last row: background
    counts[0, 1] = counts[1, 3] = 1
    return {"counts": {"image": counts.tolist(), "speech": counts.tolist()}, "agreement": 3,
            "top_codes": {"image": [2, 2, 0], "speech": [2, 2, 0]}, "shared_codes": 1.0, "purity": 0.9}


def suptitles(fig):
    return [sf._suptitle.get_text() for sf in fig.subfigs]


def test_code_digit_titles_state_the_one_to_one_agreement():
    cc = shared_top_code_cc()
    (title,) = suptitles(figures.plot_code_digit(cc, concept_names=["zero", "one", "two"]))
    assert "agreement 1/3" in title, f"concepts 0 and 1 share code 2: agreement is 1/3, title says {title!r}"
    assert "distinct top codes image 2/3, speech 2/3" in title, title


def test_code_digit_shows_the_ablation_above_the_full_method(scored):
    cc = scored[3]["code_concept"]
    titles = suptitles(figures.plot_code_digit(cc, baseline=shared_top_code_cc(), concept_names=list("abcdefghij")))
    assert len(titles) == 2
    assert titles[0].startswith("VQ only (no CMCM): agreement 1/3"), titles[0]
    assert titles[1].startswith("full method: agreement "), titles[1]


def test_path_stays_the_second_positional_argument(scored, tmp_path):
    data, cfg, enc, ev = scored
    figures.plot_code_digit(ev["code_concept"], tmp_path / "a.png")
    figures.plot_code_usage(ev["code_concept"], tmp_path / "b.png")
    figures.plot_retrieval(data, enc, tmp_path / "c.png", queries=(0,), top=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "c.png"]
