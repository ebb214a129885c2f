"""Tests of the ``minivq`` command (minivq.cli): demo --quick, train/resume, evaluate."""
import json
import subprocess
import sys

from minivq.cli import main


def test_demo_quick_writes_table_metrics_report_and_figures(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| variant |" in out and "+ CMCM (full method)" in out and "wall time" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["runs"]) == {"summary", "vq", "full"}
    full = metrics["runs"]["full"][0]["eval"]
    assert {"retrieval", "localization", "code_concept"} <= set(full)
    assert set(full["retrieval"]) == {"summary", "code", "combined"}
    assert "localization" not in metrics["runs"]["summary"][0]["eval"]  # no codes, no LOC
    report = (tmp_path / "report.md").read_text()
    assert "| variant |" in report and "![localization, both ways](localization.png)" in report
    assert "`minivq demo --quick --out" in report
    for name in ("training_curves", "code_usage", "code_digit", "localization", "retrieval"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000, f"{name}.png missing or empty"


def test_demo_two_seeds_reports_mean_and_std(tmp_path, capsys):
    main(["demo", "--quick", "--out", str(tmp_path), "--seeds", "0", "1", "--variants", "summary",
          "--epochs", "1"])
    assert "±" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [r["seed"] for r in metrics["runs"]["summary"]] == [0, 1]


def test_train_resume_and_evaluate(tmp_path, capsys):
    ckpt = str(tmp_path / "m.npz")
    main(["train", "--quick", "--modalities", "image", "text", "--epochs", "1", "--checkpoint", ckpt])
    main(["train", "--quick", "--resume", "--epochs", "2", "--checkpoint", ckpt])
    out = capsys.readouterr().out
    assert "epoch 2/2" in out and "epoch 1/2" not in out.split("saved")[1]
    main(["evaluate", ckpt, "--n", "40", "--json", str(tmp_path / "ev.json")])
    ev = json.loads((tmp_path / "ev.json").read_text())
    assert ev["modalities"] == ["image", "text"] and "localization" in ev


def test_toy_modalities_train(tmp_path, capsys):
    main(["train", "--quick", "--modalities", "a", "b", "--epochs", "1", "--checkpoint",
          str(tmp_path / "t.npz")])
    assert "epoch 1/1" in capsys.readouterr().out


def test_python_dash_m_help():
    res = subprocess.run([sys.executable, "-m", "minivq", "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "demo" in res.stdout and "evaluate" in res.stdout


def test_demo_on_validation_says_so_in_the_report(tmp_path, capsys):
    main(["demo", "--quick", "--out", str(tmp_path), "--variants", "summary", "--epochs", "1",
          "--eval-split", "val"])
    report = (tmp_path / "report.md").read_text()
    assert "measured on the val split" in report and "held-out test split" not in report
