"""Tests of minivq.report: snake_case rows, table headings, strict metrics.json, report.md."""
import json
import math

import numpy as np
import pytest

from minivq.report import ablation_table, column_title, jsonable, snake_key, table_row, write_metrics, write_report


def _strict(text):
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def _ev(with_codes=True):
    direction = {"R@1": 0.25, "R@5": 0.5, "R@10": 0.75, "median_rank": 3.0}
    ev = {"modalities": ["image", "speech"], "n_concepts": 10,
          "retrieval": {"summary": {"a2b": direction, "b2a": direction, "mean_R@1": 0.25}}}
    if with_codes:
        ev["localization"] = {"image->speech": {"accuracy": 0.9, "chance": 0.3},
                              "speech->image": {"accuracy": 0.8, "chance": 0.08}}
        ev["code_concept"] = {"agreement": 8, "distinct_top_codes": {"image": 9, "speech": 10}, "purity": 0.7,
                              "usage": {"all": {"perplexity": 12.5}}}
    return ev


def test_table_row_keys_are_snake_case_and_values_right():
    row = table_row(_ev())
    assert list(row) == ["i2s_r1", "i2s_r5", "i2s_r10", "s2i_r1", "s2i_r5", "s2i_r10", "mean_r1", "set_mean_r1",
                         "loc_s2i", "loc_i2s", "agree", "distinct_top_codes", "purity", "ppl"]
    assert math.isnan(row["set_mean_r1"]), "no per-content retrieval in this evaluation: NaN, not 0"
    assert row["loc_s2i"] == 0.8 and row["loc_i2s"] == 0.9
    assert row["distinct_top_codes"] == 9, "the fewer of the two modalities"
    no_codes = table_row(_ev(with_codes=False))
    assert math.isnan(no_codes["agree"]) and math.isnan(no_codes["loc_s2i"])


def test_table_headings_and_cells():
    table = ablation_table({"summary": [table_row(_ev(False))], "full": [table_row(_ev()), table_row(_ev())]},
                           n_concepts=10)
    head, _, summary, full = table.splitlines()
    assert "| I→S R@1 |" in head and "| LOC S→I |" in head and "| agree /10 | distinct codes |" in head
    assert summary.endswith("| - | - | - | - | - | - |")
    assert "| 8.0 ± 0.0 |" in full
    assert column_title("a2b_r5") == "A→B R@5" and column_title("agree") == "agree"


@pytest.mark.parametrize("key, snake", [("mean_R@1", "mean_r1"), ("R@10", "r10"), ("image->speech", "image_to_speech"),
                                        ("I→S R@1", "i2s_r1"), ("agree /10", "agree_10"), ("K", "K"),
                                        ("val_r1", "val_r1")])
def test_snake_key(key, snake):
    assert snake_key(key) == snake


def test_metrics_json_is_strict_with_snake_case_keys(tmp_path):
    payload = {"table": {"summary": [table_row(_ev(False))]}, "arr": np.array([1.5, np.nan]),
               "runs": [{"eval": {"retrieval": {"summary": {"mean_R@1": np.float32(0.5)}}}}],
               "inf": float("inf"), "nested": {"speech->image": {"R@5": 1}}}
    write_metrics(tmp_path / "m.json", payload)
    data = _strict((tmp_path / "m.json").read_text())
    assert data["table"]["summary"][0]["agree"] is None and data["arr"] == [1.5, None] and data["inf"] is None
    assert data["runs"][0]["eval"]["retrieval"]["summary"]["mean_r1"] == 0.5
    assert data["nested"] == {"speech_to_image": {"r5": 1}}
    assert jsonable({"x": np.int64(3)}) == {"x": 3}


def test_report_says_what_each_figure_shows(tmp_path):
    meta = {"command": "minivq demo", "seeds": [0], "wall_seconds": 3.0, "minivq_version": "9.9",
            "config": {"data": {"n_train": 4}, "train": {"epochs": 1}, "model": {"K": 8}},
            "runs_done": 1, "runs_total": 3}
    figures = {"code_digit.png": ("code x digit", "For each digit, the fraction of its units on each code.")}
    write_report(tmp_path / "r.md", "| table |", meta, figures)
    text = (tmp_path / "r.md").read_text()
    assert "For each digit, the fraction of its units on each code.\n\n![code x digit](code_digit.png)" in text
    assert "Unfinished: 1 of 3 runs" in text and "minivq 9.9" in text and '"K": 8' in text
    meta.update(runs_done=3)
    write_report(tmp_path / "r.md", "| table |", meta, figures)
    assert "Unfinished" not in (tmp_path / "r.md").read_text()
