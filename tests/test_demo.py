"""Tests of ``minivq demo`` (minivq.cli.demo): rows as they come, outputs for people and programs, Ctrl-C."""
import io
import json
import re
import signal
import subprocess
import sys

import pytest

from minivq import __version__
from minivq.cli import main
from minivq.cli.demo import FIGURES
from minivq.report import figures


def strict_json(path):
    def refuse(constant):
        raise ValueError(f"{path} is not strict JSON: {constant}")
    return json.loads(path.read_text(), parse_constant=refuse)


def all_keys(x):
    if isinstance(x, dict):
        for k, v in x.items():
            yield k
            yield from all_keys(v)
    elif isinstance(x, list):
        for v in x:
            yield from all_keys(v)


class _Capture:
    """Capture sys.stdout in a module-scoped fixture (capsys is function-scoped)."""

    def __enter__(self):
        self._old, self._buf = sys.stdout, io.StringIO()
        sys.stdout = self._buf
        return self

    def __exit__(self, *exc):
        sys.stdout = self._old
        self.text = self._buf.getvalue()


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One `minivq demo --quick` (all three variants); its stdout, folder, and the code_digit calls."""
    out = tmp_path_factory.mktemp("demo")
    calls, real = [], figures.plot_code_digit

    def spy(cc, path=None, **kw):
        calls.append(kw)
        return real(cc, path, **kw)

    with pytest.MonkeyPatch.context() as mp, _Capture() as cap:
        mp.setattr(figures, "plot_code_digit", spy)
        assert main(["demo", "--quick", "--out", str(out), "--jobs", "1"]) == 0
    return {"out": out, "stdout": cap.text, "code_digit_calls": calls}


def without_times(runs):
    """metrics.json's runs without the wall times (the only numbers allowed to differ)."""
    return {v: [{**{k: x for k, x in r.items() if k != "train_seconds"},
                 "history": [{k: x for k, x in h.items() if k != "seconds"} for h in r["history"]]}
                for r in rs] for v, rs in runs.items()}


def test_worker_processes_give_the_same_numbers(quick, tmp_path):
    """--jobs 2 trains two runs at a time in spawned workers; every number is as with --jobs 1."""
    proc = subprocess.run([sys.executable, "-m", "minivq", "demo", "--quick", "--out", str(tmp_path), "--jobs", "2"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "training 2 runs at a time, in worker processes (--jobs)" in proc.stdout
    progress = [l for l in proc.stdout.splitlines() if re.match(r"\[(summary|vq|full) \d/3, seed 0\] epoch", l)]
    assert len(progress) == 6, proc.stdout
    assert all(re.search(r"ETA \S+$", l) for l in progress), [l for l in progress if not re.search(r"ETA \S+$", l)]
    one, two = strict_json(quick["out"] / "metrics.json"), strict_json(tmp_path / "metrics.json")
    assert two["table"] == one["table"]
    assert without_times(two["runs"]) == without_times(one["runs"])


def test_demo_says_what_it_does_and_prints_each_row_as_it_comes(quick):
    lines = quick["stdout"].splitlines()
    assert lines[0].startswith("minivq demo: 3 variants (summary, vq, full) x 1 seed (0), 2 epochs each, "
                               "192 train pairs; scored on 48 test pairs")
    assert lines[1].startswith("loading the spoken-digit scenes of the hard_on_grid world "
                               "(192 train, 48 val, 48 test pairs) ...")
    progress = [l for l in lines if re.match(r"\[(summary|vq|full) \d/3, seed 0\] epoch", l)]
    assert len(progress) == 6 and all(re.search(r"val R@1 \(48 pairs\) [\d.]+ .*ETA \S+$", l) for l in progress)
    assert progress[2].startswith("[vq 2/3, seed 0] epoch 1/2")
    summary_row = lines.index(next(l for l in lines if l.startswith("| summary only")))
    assert summary_row < lines.index(progress[2]), "the summary row must be printed before vq trains"
    assert lines[summary_row - 2].startswith("| variant | I→S R@1"), "each row comes with its header"
    assert "[full 3/3, seed 0] evaluating on 48 test pairs ..." in lines
    assert any(re.fullmatch(r"\[full 3/3, seed 0\] evaluated in [\d.]+s", l) for l in lines)
    assert lines[-1].startswith(f"wrote {quick['out'] / 'metrics.json'}") and "wall time" in lines[-1]


def test_metrics_json_is_strict_snake_case_with_version_and_config(quick):
    metrics = strict_json(quick["out"] / "metrics.json")
    assert metrics["minivq_version"] == __version__ and metrics["runs_done"] == metrics["runs_total"] == 3
    assert set(metrics["config"]) == {"data", "train", "model"}
    assert metrics["config"]["data"]["n_train"] == 192 and metrics["config"]["train"]["epochs"] == 2
    assert metrics["config"]["model"]["K"] == 16 and metrics["config"]["model"]["variant"] == "full"
    assert set(metrics["runs"]) == {"summary", "vq", "full"}
    assert set(metrics["table"]["full"][0]) >= {"i2s_r1", "s2i_r5", "mean_r1", "loc_s2i", "agree",
                                                "distinct_top_codes", "purity", "ppl"}
    assert metrics["table"]["summary"][0]["agree"] is None, "NaN must be written as null"
    bad = {k for k in all_keys(metrics) if not re.fullmatch(r"[a-z][a-z0-9_]*", k)} - {"D", "K"}
    assert not bad, f"keys not in snake_case: {bad}"
    full = metrics["runs"]["full"][0]["eval"]
    assert {"retrieval", "localization", "code_concept"} <= set(full)
    assert "localization" not in metrics["runs"]["summary"][0]["eval"]  # no codes, no LOC


def test_report_says_in_a_sentence_what_each_figure_shows(quick):
    report = (quick["out"] / "report.md").read_text()
    assert "| variant |" in report and "`minivq demo --quick --out" in report and "Unfinished" not in report
    for name, (caption, sentence) in FIGURES.items():
        assert f"## {caption}\n\n{sentence}\n\n![{caption}]({name})" in report
        assert (quick["out"] / name).stat().st_size > 1000, f"{name} missing or empty"


def test_code_digit_figure_shows_the_vq_only_baseline_beside_the_full_method(quick):
    (call,) = quick["code_digit_calls"]
    metrics = strict_json(quick["out"] / "metrics.json")
    assert call["baseline"]["top_codes"] == metrics["runs"]["vq"][0]["eval"]["code_concept"]["top_codes"]


def test_rerun_removes_stale_figures_and_reports_seeds(tmp_path, capsys):
    for name in FIGURES:
        (tmp_path / name).write_bytes(b"old figure")
    (tmp_path / "my_notes.png").write_bytes(b"not minivq's")
    assert main(["demo", "--quick", "--out", str(tmp_path), "--seeds", "0", "1", "--variants", "summary",
                 "--epochs", "1", "--eval-split", "val", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "±" in out and "[summary 2/2, seed 1] epoch 1/1" in out
    for name in ("code_usage.png", "code_digit.png", "localization.png"):  # summary has no codes
        assert not (tmp_path / name).exists(), f"stale {name} left beside the new report"
    assert (tmp_path / "training_curves.png").read_bytes() != b"old figure"
    assert (tmp_path / "my_notes.png").read_bytes() == b"not minivq's"
    metrics = strict_json(tmp_path / "metrics.json")
    assert [r["seed"] for r in metrics["runs"]["summary"]] == [0, 1]
    report = (tmp_path / "report.md").read_text()
    assert "measured on the val split" in report and "held-out test split" not in report
    assert "code_digit.png" not in report


def test_unwritable_output_is_refused_before_any_training(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    code = main(["demo", "--quick", "--out", str(tmp_path / "file" / "sub")])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.strip().endswith("file is a file, expected a folder")


def test_ctrl_c_keeps_and_prints_what_finished(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "minivq", "demo", "--quick", "--epochs", "4", "--out",
                             str(tmp_path), "--jobs", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("| + shared VQ"):  # vq's row: two runs have finished
            proc.send_signal(signal.SIGINT)
            break
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == (f"minivq demo: error: interrupted; 2 of 3 runs finished, kept in "
                                            f"{tmp_path / 'metrics.json'} and {tmp_path / 'report.md'}")
    assert "| summary only" in rest and "| + shared VQ" in rest, "the finished rows are printed again"
    metrics = strict_json(tmp_path / "metrics.json")
    assert list(metrics["table"]) == ["summary", "vq"] and metrics["runs_done"] == 2
    assert "Unfinished: 2 of 3 runs" in (tmp_path / "report.md").read_text()


def test_ctrl_c_stops_the_workers_and_keeps_what_finished(tmp_path):
    """With worker processes, Ctrl-C reaches the parent only: one line, the workers stopped, rows kept."""
    proc = subprocess.Popen([sys.executable, "-m", "minivq", "demo", "--quick", "--epochs", "8", "--out",
                             str(tmp_path), "--jobs", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("| summary only"):  # the first run has finished; two others are training
            proc.send_signal(signal.SIGINT)
            break
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert len(err.strip().splitlines()) == 1, f"one line on stderr, no worker tracebacks: {err}"
    assert re.fullmatch(r"minivq demo: error: interrupted; [12] of 3 runs finished, kept in \S+ and \S+",
                        err.strip())
    metrics = strict_json(tmp_path / "metrics.json")
    assert "summary" in metrics["table"] and metrics["runs_done"] in (1, 2)


def test_a_killed_demo_takes_its_workers_with_it(tmp_path):
    """SIGKILL to `minivq demo`: its workers trained on for 29-65 s, then printed a BrokenPipeError."""
    import time
    from launch import start
    proc = start("demo", "--quick", "--epochs", "200", "--out", tmp_path, "--jobs", "2", cwd=tmp_path)
    training = set()
    for line in proc.stdout:  # both workers are in an epoch
        if " epoch " in line:
            training.add(line.split("]")[0])
            if len(training) == 2:
                break
    proc.kill()
    t0 = time.monotonic()
    out, err = proc.communicate(timeout=60)  # returns once no worker holds the output pipes
    assert time.monotonic() - t0 < 3, "the workers outlived the demo"
    assert err == "" and "Traceback" not in out, err


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_an_interrupted_rerun_leaves_the_finished_results_whole(quick, tmp_path):
    """A rerun into a folder holding a finished demo deleted its figures at start and, interrupted, said
    "nothing written". Now the earlier results stay whole through a SIGKILL and a Ctrl-C; the finished runs of
    the interrupted one go beside them."""
    import shutil
    from launch import start
    out = tmp_path / "results"
    shutil.copytree(quick["out"], out)
    (out / "notes.txt").write_text("mine")  # not the demo's: never touched
    before = _files(out)
    for sig in (signal.SIGKILL, signal.SIGINT):
        proc = start("demo", "--quick", "--out", out, "--jobs", "1", cwd=tmp_path)
        for line in proc.stdout:
            if line.startswith("| summary only"):  # one run finished, the next training
                proc.send_signal(sig)
                break
        _, err = proc.communicate(timeout=60)
        assert _files(out) == before, f"after {sig!r} the earlier results changed"
    assert proc.returncode == 130 and err.strip().splitlines() == [
        f"minivq demo: error: interrupted; 1 of 3 runs finished, kept in {tmp_path / 'results.partial/metrics.json'} "
        f"and {tmp_path / 'results.partial/report.md'}; {out}/ keeps its earlier results, whole"], err
    assert strict_json(tmp_path / "results.partial" / "metrics.json")["runs_done"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results", "results.partial"], \
        "the killed run's temporary folder is removed by the next run"


def test_a_folder_of_another_demo_is_refused_unless_overwrite(quick, tmp_path, capsys):
    import shutil
    from minivq.cli.demo import demo_settings
    from minivq.cli.demo_report import check_folder
    out = tmp_path / "r"
    shutil.copytree(quick["out"], out)
    before = _files(out)
    assert main(["demo", "--quick", "--epochs", "3", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"minivq demo: error: --out {out} holds the results of a demo of other settings (variants "
                           "summary vq full, seeds 0, 2 epochs, 192 train pairs, world hard_on_grid, scored on test); "
                           "give another --out, or add --overwrite to replace them")
    assert _files(out) == before
    settings = demo_settings(True, 3)
    check_folder(out, settings, ["summary", "vq", "full"], [0], "test", overwrite=True)  # allowed: no error
    check_folder(out, demo_settings(True), ["summary", "vq", "full"], [0], "test")  # the same settings: allowed
    (out / "metrics.json").write_text("{}")
    assert main(["demo", "--quick", "--out", str(out)]) == 2
    assert "metrics.json exists and is not a minivq demo's" in capsys.readouterr().err
