"""Tests of ``minivq study`` on --quick sizes: statistics, outputs, the protocol first, exact reruns.

The study is run once (two seeds, one process); ``--rerun`` then retrains a
seed in two worker processes and must reproduce every number of study.json,
which also shows that the numbers do not depend on --jobs.
"""
import json
import math

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from minivq import study
from minivq.study import report as study_report


def parse(*argv):
    from minivq.cli.parser import build_parser
    args = build_parser().parse_args(["study", *argv])
    args.argv = ["study", *argv]
    return args


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    payload = study.run(parse("--quick", "--seeds", "2", "--jobs", "1", "--out", str(out)))
    return out, payload


def test_paired_hand_made_and_against_scipy():
    st = study_report.paired([3.0, 4.0, 6.0, 5.0], [2.0, 2.0, 3.0, 5.0])  # differences 1, 2, 3, 0
    assert st["differences"] == [1.0, 2.0, 3.0, 0.0]
    assert st["mean_difference"] == pytest.approx(1.5)
    assert (st["n_positive"], st["n_negative"], st["n_zero"]) == (3, 0, 1)
    d = np.array([1.0, 2.0, 3.0, 0.0])
    low, high = stats.t.interval(0.95, 3, loc=d.mean(), scale=d.std(ddof=1) / 2)
    assert st["ci95"] == pytest.approx([low, high])
    assert st["p_value"] == pytest.approx(stats.ttest_rel([3, 4, 6, 5], [2, 2, 3, 5]).pvalue)
    # by hand: sd = sqrt(5/3), t_{0.975, 3} = 3.182446
    assert st["ci95"][0] == pytest.approx(1.5 - 3.182446 * math.sqrt(5 / 3) / 2, abs=1e-5)


def test_verdict_rule():
    assert study_report.verdict({"ci95": [0.01, 0.2]}) == "holds"
    assert study_report.verdict({"ci95": [-0.2, -0.01]}) == "reversed"
    assert study_report.verdict({"ci95": [-0.01, 0.2]}) == "not shown"
    assert study_report.verdict(study_report.paired([1.0], [0.0])) == "not shown"  # one seed: no interval
    with pytest.raises(ValueError, match="method and baseline"):
        study_report.paired([1.0, 2.0], [1.0])


def test_outputs_and_intervals_recomputed_from_the_per_seed_numbers(quick):
    out, payload = quick
    data = json.loads((out / "study.json").read_text())  # strict JSON: no NaN
    assert {p.name for p in out.iterdir()} >= {"study.json", "study.md", "paired_differences.png",
                                               "learning_curves.png"}
    runs = {(r["arm"], r["variant"], r["seed"]): r["metrics"] for r in data["runs"]}
    prim = data["results"]["primary"]
    assert set(prim) == {"claim1_retrieval", "claim2_shared_codes", "claim3_localization"}
    c1 = prim["claim1_retrieval"]
    assert c1["method_values"] == [runs[("image_speech", "full", s)]["set_mean_r1"] for s in (0, 1)]
    assert c1["baseline_values"] == [runs[("image_speech", "summary", s)]["set_mean_r1"] for s in (0, 1)]
    c2 = prim["claim2_shared_codes"]
    assert c2["baseline_values"] == [runs[("image_speech", "summary", s)]["kmeans_agreement"] for s in (0, 1)]
    for st in prim.values():
        again = study_report.paired(st["method_values"], st["baseline_values"])
        assert again["ci95"] == pytest.approx(st["ci95"]) and st["verdict"] == study_report.verdict(again)
    choices = data["tuning"]["choices"]["image_speech"]
    assert set(choices["lr"]) == {"summary", "vq", "full"}
    assert choices["claim3_baseline"] in ("full_units", "summary_units")
    assert all(r["split"] == "val" for r in data["tuning"]["runs"]) and all(r["split"] == "test" for r in data["runs"])
    assert len(data["results"]["curves"]["image_speech"]["full"][0]) == data["settings"]["epochs"]


def test_report_states_the_protocol_before_the_results(quick):
    out, _ = quick
    md = (out / "study.md").read_text()
    assert md.index("## Protocol (stated before any result)") < md.index("## Primary endpoints")
    assert "13 writers" in md and "Secondary results (no verdict)" in md and "## Left out" in md


def test_protocol_is_written_before_any_run(tmp_path, monkeypatch):
    def stop(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(study, "run_jobs", stop)
    with pytest.raises(KeyboardInterrupt):
        study.run(parse("--quick", "--seeds", "2", "--out", str(tmp_path)))
    md = (tmp_path / "study.md").read_text()
    assert "Primary endpoints" in md and "Results pending" in md and not (tmp_path / "study.json").exists()


def test_rerun_reproduces_a_seed_exactly_in_two_processes(quick, capsys):
    out, _ = quick
    study.run(parse("--rerun", "1", "--jobs", "2", "--out", str(out)))  # the settings: the quick study's json
    assert "all identical" in capsys.readouterr().out


def test_rerun_finds_a_changed_number(quick, tmp_path):
    out, _ = quick
    data = json.loads((out / "study.json").read_text())
    for r in data["runs"]:
        if (r["arm"], r["variant"], r["seed"]) == ("image_speech", "full", 0):
            r["metrics"]["set_mean_r1"] += 0.5
    (tmp_path / "study.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="set_mean_r1"):
        study.run(parse("--rerun", "0", "--jobs", "1", "--out", str(tmp_path)))


def test_rerun_errors_name_the_option(tmp_path, quick):
    with pytest.raises(ValueError, match="--rerun"):
        study.run(parse("--rerun", "0", "--out", str(tmp_path)))
    with pytest.raises(ValueError, match="--rerun: expected seeds in 0..1"):
        study.run(parse("--rerun", "5", "--out", str(quick[0])))


def test_a_study_of_other_settings_is_not_overwritten(quick, tmp_path):
    """A --quick study aimed at a folder holding another study (the committed one, say) refuses and writes
    nothing; the same settings again replace it, as asked."""
    out, _ = quick
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ValueError, match=r"--out .* holds a study of other settings \(2 seeds, 2 epochs"):
        study.run(parse("--quick", "--seeds", "3", "--jobs", "1", "--out", str(out)))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    (tmp_path / "study.json").write_text("{not json")
    with pytest.raises(ValueError, match="exists and is not a study's"):
        study.run(parse("--quick", "--seeds", "2", "--jobs", "1", "--out", str(tmp_path)))
    assert (tmp_path / "study.json").read_text() == "{not json"


def test_the_same_study_again_replaces_it(tmp_path):
    argv = ("--quick", "--seeds", "2", "--jobs", "1", "--no-image-text", "--out", str(tmp_path))
    first = study.run(parse(*argv))
    second = study.run(parse(*argv))
    assert second["results"] == first["results"]


def test_rerun_refuses_the_options_it_would_ignore(quick, tmp_path):
    out, _ = quick
    for extra in (["--quick"], ["--epochs", "5"], ["--seeds", "3"], ["--off-grid-window"], ["--extra-seeds", "2"]):
        with pytest.raises(ValueError, match=f"--rerun retrains with the settings of .*; {extra[0]} cannot change"):
            study.run(parse("--rerun", "0", "--out", str(out), *extra))
    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="--out .*f.txt is a file, expected the folder of a study"):
        study.run(parse("--rerun", "0", "--out", str(a_file)))


@pytest.mark.parametrize("option, value, expected", [("--seeds", "abc", "an int >= 1, got 'abc'"),
                                                     ("--epochs", "2.5", "an int >= 1, got '2.5'"),
                                                     ("--rerun", "x", "an int >= 0, got 'x'")])
def test_integer_options_say_what_they_expect(capsys, option, value, expected):
    with pytest.raises(SystemExit):
        parse(option, value)
    err = capsys.readouterr().err
    assert f"argument {option}: expected {expected}" in err and "_positive" not in err and "_seed" not in err


def test_a_one_seed_interval_prints_as_n_a():
    assert study._signed(math.nan) == "n/a" and study._signed(None) == "n/a" and study._signed(0.0123) == "+0.012"


def test_help_shows_defaults_and_an_example(capsys):
    with pytest.raises(SystemExit):
        parse("--help")
    text = capsys.readouterr().out
    assert "(default: 10)" in text and "(default: 2)" in text and "minivq study --rerun 3" in text
    with pytest.raises(SystemExit):
        parse("--seeds", "0")


def test_training_epoch_by_epoch_equals_one_fit_call():
    from minivq.data.world import world_scenes
    from minivq.study.runs import _train_with_curve
    from minivq.train import TrainConfig, config_from_data, fit, init_state
    train, val = world_scenes("train", 48, 0, world="hard_on_grid"), world_scenes("val", 16, 0, world="hard_on_grid")
    cfg = config_from_data(train, ("image", "speech"), variant="full", D=8, K=8, hidden=16, embed_dim=16)

    def tc(epochs):
        return TrainConfig(seed=3, epochs=epochs, batch_size=16, val_size=0)

    state, curve, snaps = _train_with_curve(cfg, tc(3), train, val, at=(2,),
                                            score_at=lambda p: {k: v.copy() for k, v in p.items()})
    assert len(curve) == 3 and all(0.0 <= c <= 1.0 for c in curve) and list(snaps) == [2]
    for epochs, params in ((3, state.params), (2, snaps[2])):
        once = fit(init_state(cfg, tc(epochs), train), train, log=None)
        for key in once.params:
            np.testing.assert_array_equal(params[key], once.params[key], err_msg=f"{key} after {epochs} epochs")


def test_scenes_shared_through_the_cache_folder_are_the_same_bits(tmp_path, monkeypatch):
    from minivq.study import runs as study_runs
    from minivq.data.world import world_scenes
    made = world_scenes("test", 12, 5, world="hard_on_grid")
    monkeypatch.setattr(study_runs, "_CACHE", {})
    first = study_runs.load("test", 12, 5, 8, "hard_on_grid", tmp_path)  # makes the set and saves it
    assert [p.name for p in tmp_path.iterdir()] == ["test-12-5-8-hard_on_grid.npz"]
    monkeypatch.setattr(study_runs, "_CACHE", {})  # as another worker: reads the file
    monkeypatch.setattr(study_runs, "world_scenes", lambda *a, **k: pytest.fail("made again"))
    second = study_runs.load("test", 12, 5, 8, "hard_on_grid", tmp_path)
    for got in (first, second):
        assert sorted(got) == sorted(made)
        for key in made:
            assert got[key].dtype == made[key].dtype, key
            np.testing.assert_array_equal(got[key], made[key], err_msg=key)


def test_a_set_that_cannot_be_saved_is_used_from_memory(tmp_path, monkeypatch):
    from minivq.study import runs as study_runs

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(study_runs, "_CACHE", {})
    monkeypatch.setattr(study_runs.np, "savez", full_disk)
    got = study_runs.load("val", 6, 0, 8, "hard_on_grid", tmp_path)
    assert got["images"].shape == (6, 32, 48) and list(tmp_path.iterdir()) == []


def test_the_scenes_folder_goes_on_sigterm_and_a_killed_study_s_is_swept(tmp_path, monkeypatch):
    import os
    import signal
    import subprocess
    import sys
    import tempfile
    import time
    env = {**os.environ, "TMPDIR": str(tmp_path), "MINIVQ_DEBUG": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "minivq", "study", "--quick", "--seeds", "2", "--epochs", "5000",
                             "--out", str(tmp_path / "out")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("minivq-study-data-*/*.npz")) and time.monotonic() < deadline:
        time.sleep(0.2)
    folders = list(tmp_path.glob("minivq-study-data-*"))
    assert len(folders) == 1 and folders[0].name.startswith(f"minivq-study-data-{proc.pid}-")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, out[-2000:]
    assert not list(tmp_path.glob("minivq-study-data-*")), "the scenes folder outlived the study"
    # SIGKILL cannot be caught: the folder stays, named by the dead pid, and the next study removes it
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"minivq-study-data-{int(dead.stdout)}-abc"
    (stale / "sub").mkdir(parents=True)
    mine = tmp_path / f"minivq-study-data-{os.getpid()}-abc"  # a live process's: kept
    mine.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with study.scenes_folder() as folder:
        assert Path(folder).parent == tmp_path and Path(folder).is_dir()
        assert not stale.exists() and mine.exists()
    assert not Path(folder).exists()


def fake_run(variant, lr, by_epoch, loc=0.3):
    metrics = {e: {"set_mean_r1": r1, "loc_dense_to_image": loc, "combined_set_mean_r1": {"0.1": r1, "1.0": r1 + 0.01}}
               for e, r1 in by_epoch.items()}
    return {"arm": "image_speech", "variant": variant, "lr": lr, "diverged": False,
            "metrics_by_epoch": {str(e): m for e, m in metrics.items()},
            "history": [{"val_set_r1": 0.0}] * max(by_epoch)}


def test_tuning_picks_lr_and_epochs_on_val_with_ties_to_the_cheaper_point():
    s = {"arms": {"image_speech": {}}, "lr_grid": [1e-3, 3e-3], "epoch_grid": [5, 10], "lambdas": [0.1, 1.0]}
    records = [fake_run("summary", 1e-3, {5: 0.2, 10: 0.1}), fake_run("summary", 3e-3, {5: 0.1, 10: 0.2}),
               fake_run("vq", 1e-3, {5: 0.1, 10: 0.3}), fake_run("vq", 3e-3, {5: 0.3, 10: 0.25}),
               fake_run("full", 1e-3, {5: 0.1, 10: 0.1}, loc=0.5), fake_run("full", 3e-3, {5: 0.1, 10: 0.4}, loc=0.5)]
    c = study.tune_choices(s, records)["image_speech"]
    assert c["lr"] == {"summary": 1e-3, "vq": 1e-3, "full": 3e-3}
    assert c["epochs"] == {"summary": 5, "vq": 10, "full": 10}  # summary: tie 0.2 -> smaller lr, fewer epochs
    assert c["lambda"] == {"vq": 1.0, "full": 1.0} and c["claim3_baseline"] == "full_units"


def test_an_arm_tuned_on_its_own_gets_its_lr_grid_and_its_own_choices():
    """--off-grid-window: a secondary arm with its own tuning (both lrs), its seed runs use its choices."""
    s = study.settings_from(parse("--quick", "--seeds", "4", "--extra-seeds", "2", "--off-grid-window",
                                  "--codebook-sizes", "12"))
    arm = s["arms"]["image_speech_free_window"]
    assert arm["world"] == "hard" and arm["model"] == {"image_window": 16, "image_stride": 2}
    assert study.tuned_arms(s) == ["image_speech", "image_text", "image_speech_free_window"]
    assert study.lr_grid(s, "image_speech_free_window") == [1e-3, 3e-3]
    choices = {a: {"lr": dict.fromkeys(study.VARIANTS, lr), "epochs": dict.fromkeys(study.VARIANTS, e)}
               for a, lr, e in (("image_speech", 1e-3, 7), ("image_text", 2e-3, 8),
                                ("image_speech_free_window", 3e-3, 9))}
    jobs = study.seed_jobs(s, choices, range(4))
    got = {(j["arm"], j["lr"], j["epochs"]) for j in jobs}
    assert got == {("image_speech", 1e-3, 7), ("image_text", 2e-3, 8), ("image_speech_free_window", 3e-3, 9),
                   ("image_speech_k12", 1e-3, 7)}  # the K arm reuses image-speech's choices
    window_seeds = sorted({j["seed"] for j in jobs if j["arm"] == "image_speech_free_window"})
    assert window_seeds == [0, 1]  # a secondary arm: --extra-seeds seeds
    assert "image_speech_free_window" in study_report.protocol(s, 4)


def test_the_window_arm_takes_its_own_training_size():
    """--window-train-size sizes the --off-grid-window arm alone; its jobs, the protocol and the start line say so."""
    s = study.settings_from(parse("--quick", "--seeds", "2", "--off-grid-window", "--window-train-size", "300"))
    assert s["arms"]["image_speech_free_window"]["n_train"] == 300
    assert s["arms"]["image_speech"]["n_train"] == s["n_train"] != 300
    choices = {a: {"lr": dict.fromkeys(study.VARIANTS, 1e-3), "epochs": dict.fromkeys(study.VARIANTS, 2)}
               for a in study.tuned_arms(s)}
    sizes = {(j["arm"], j["n_train"]) for j in study.seed_jobs(s, choices, range(2))}
    assert ("image_speech_free_window", 300) in sizes and ("image_speech", s["n_train"]) in sizes
    assert "300 training scenes" in study_report.protocol(s, 2)
    assert study._scene_counts(s) == f"{s['n_train']} scenes (image_speech_free_window: 300)"
    with pytest.raises(ValueError, match="--window-train-size 300 sizes the --off-grid-window arm"):
        study.settings_from(parse("--quick", "--window-train-size", "300"))


@pytest.mark.parametrize("n, rows, cols", [(1, 1, 1), (2, 1, 2), (3, 1, 3), (5, 2, 3), (7, 3, 3)])
def test_figures_wrap_at_three_panels_a_row(n, rows, cols):
    """Five secondary arms make a 2 x 3 grid with the sixth axis hidden, not one row 18 inches wide."""
    fig, axes = study_report._figure(n)
    assert len(axes) == n
    assert axes[0].get_subplotspec().get_gridspec().get_geometry() == (rows, cols)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == n and len(fig.axes) == rows * cols
    assert fig.get_size_inches()[0] == pytest.approx(3.2 * cols)


def test_sizes_are_checked_before_anything_runs(tmp_path, monkeypatch):
    """A training size the generator cannot make, or this memory cannot hold, fails at once naming its option
    (it failed after the tuning runs, with the generator's message)."""
    from minivq.cli import checks as cli_checks
    from minivq.data.bank import MAX_SCENES
    with pytest.raises(ValueError, match=f"--train-sizes: expected at most {MAX_SCENES} training scenes, got 100000000"):
        study.run(parse("--quick", "--train-sizes", "100000000", "--out", str(tmp_path / "new")))
    assert not (tmp_path / "new").exists()  # nothing made, not even the folder
    with pytest.raises(ValueError, match=f"--window-train-size: expected at most {MAX_SCENES}"):
        study.run(parse("--quick", "--off-grid-window", "--window-train-size", str(MAX_SCENES + 1),
                        "--out", str(tmp_path)))
    with pytest.raises(ValueError, match="--codebook-sizes 100000000: ModelConfig K must be"):
        study.run(parse("--quick", "--codebook-sizes", "16", "100000000", "--out", str(tmp_path)))
    monkeypatch.setattr(cli_checks, "available_memory", lambda: 1 << 30)  # 1 GiB free
    with pytest.raises(ValueError, match="--train-sizes 100000"):
        study.run(parse("--quick", "--train-sizes", "100000", "--out", str(tmp_path)))
    assert not any(tmp_path.iterdir())


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_a_stopped_study_leaves_the_finished_one_whole(quick, tmp_path):
    """`minivq study` overwrote study.md at start and dropped study.json's results after tuning; a study killed
    or interrupted on the way now leaves a finished one whole, and keeps its protocol beside it."""
    import shutil
    import signal
    from launch import start
    out = tmp_path / "s"
    shutil.copytree(quick[0], out)
    before = _files(out)
    for sig in (signal.SIGKILL, signal.SIGINT):
        proc = start("study", "--quick", "--seeds", "2", "--jobs", "1", "--out", out, cwd=tmp_path)
        for line in proc.stdout:
            if line.startswith("[tuning on val 1/"):
                proc.send_signal(sig)
                break
        _, err = proc.communicate(timeout=60)
        assert _files(out) == before, f"after {sig!r} the finished study changed"
    assert proc.returncode == 130 and err.strip().splitlines() == [
        f"minivq study: error: interrupted; the protocol kept in {tmp_path / 's.partial'}/; {out}/ keeps its "
        "earlier study, whole"], err
    assert "Results pending" in (tmp_path / "s.partial" / "study.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s", "s.partial"], "the killed study's folder is swept"


def test_the_default_out_is_not_the_committed_study(capsys):
    from minivq.cli import main
    assert parse().out == "results/study"
    with pytest.raises(SystemExit):
        main(["study", "--help"])
    text = capsys.readouterr().out
    assert "minivq study --out study" in text and "(default: results/study)" in " ".join(text.split())


def test_another_study_is_replaced_only_with_overwrite(quick, tmp_path, monkeypatch):
    import shutil
    out = tmp_path / "s"
    shutil.copytree(quick[0], out)
    with pytest.raises(ValueError, match=r"holds a study of other settings .* or add --overwrite to replace it"):
        study.run(parse("--quick", "--seeds", "3", "--jobs", "1", "--out", str(out)))

    def stop(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(study, "run_jobs", stop)  # past the check: the first phase starts
    with pytest.raises(KeyboardInterrupt, match=r"the protocol kept in \S+s.partial/; \S+ keeps its earlier study"):
        study.run(parse("--quick", "--seeds", "3", "--jobs", "1", "--out", str(out), "--overwrite"))
