"""Tests of the ``minivq`` command (minivq.cli.parser, minivq.cli.commands): errors, help, train/resume, evaluate.

Each wrong usage is judged as a user sees it: the last line of stderr (one
line, naming the argument or file, no traceback) and the exit code.
"""
import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from minivq.io.checkpoint import load_checkpoint
from minivq.cli import main

QUICK_TOY = ["--quick", "--modalities", "a", "b"]


def cli(capsys, *argv):
    """Run ``minivq argv`` in-process; returns (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse's own errors and --help
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def last_line(err):
    lines = err.strip().splitlines()
    return lines[-1] if lines else ""


@pytest.fixture(scope="module")
def toy_ckpt(tmp_path_factory):
    """A 1-epoch toy checkpoint (the data record says n_train 64)."""
    path = tmp_path_factory.mktemp("ckpt") / "toy.npz"
    assert main(["train", *QUICK_TOY, "--epochs", "1", "--n-train", "64", "--checkpoint", str(path)]) == 0
    return path


@pytest.fixture
def files(tmp_path, toy_ckpt):
    """Files a user might pass by mistake."""
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "truncated.npz").write_bytes(toy_ckpt.read_bytes()[:300])
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    (tmp_path / "folder").mkdir()
    return tmp_path


WRONG_USAGES = [  # (argv, exit code, regex found in the last stderr line, "minivq <command>: error: ...")
    (["evaluate", "{d}/missing.npz"], 2, r"checkpoint \S*missing.npz: no such file"),
    (["evaluate", "{d}/truncated.npz"], 2, r"error: checkpoint \S*truncated.npz: truncated or not a zip file"),
    (["evaluate", "{d}/notes.txt"], 2,
     r"error: checkpoint \S*notes.txt: not a minivq checkpoint \(not an .npz archive\)$"),
    (["evaluate", "{d}/other.npz"], 2, r"error: checkpoint \S*other.npz: not a minivq checkpoint \(no 'meta' entry\)$"),
    (["evaluate", "{d}/folder"], 2, r"checkpoint \S*folder is a folder, expected a file"),
    (["evaluate", "{ckpt}", "--n", "100000"], 2,
     r"--n 100000 needs about 232.7 GiB of memory \(the data and the 100000 x 100000 similarity matrices\), "
     r"but 16.0 GiB is available; expected at most about 2\d\d\d\d$"),
    (["evaluate", "{ckpt}", "--n", "0"], 2, r"argument --n: expected a positive integer \(>= 1\), got 0"),
    (["evaluate", "{ckpt}", "--json", "{d}/folder"], 2, r"--json \S*folder is a folder"),
    (["evaluate", "{ckpt}", "--json", "{ckpt}"], 2,
     r"--json \S*toy.npz is the checkpoint itself, which the JSON would overwrite; expected another file name, "
     r"such as \S*toy.json$"),
    (["evaluate", "{ckpt}", "--json", "{d}/other.npz"], 2,
     r"--json \S*other.npz: expected a new file or a JSON file, got an existing .npz file \(a checkpoint\?\)"),
    (["evaluate", "{ckpt}", "--jso", "{d}/x.json"], 2, r"unrecognized arguments: --jso"),
    (["evaluate", "{ckpt}", "--lambda-r", "nan"], 2, r"argument --lambda-r: expected a finite number >= 0, got nan"),
    (["train", "--seed", "-1"], 2, r"argument --seed: expected a non-negative integer \(>= 0\), got -1"),
    (["train", "--model", "{{bad"], 2, r"argument --model: expected a JSON object .*got '\{{bad'"),
    (["train", "--model", "[1]"], 2, r"argument --model: expected a JSON object"),
    (["train", "--model", '{{"lr": 0.1}}'], 2, r"--model: unknown field 'lr'; expected ModelConfig fields \(D, K,"),
    (["train", "--model", '{{"variant": "vq"}}'], 2,
     r"--model: field 'variant' cannot be set here \(set it with --variant\)"),
    (["train", "--model", '{{"codebook": "nope"}}'], 2, r"--model: .*codebook .*'nope'"),
    (["train", "--model", '{{"K": -3}}'], 2, r"--model: .*\bK\b.*-3"),
    (["train", "--model", '{{"patch": 5}}'], 2,
     r"error: --model: patch: expected one of 1, 2, 4, 8 for the spoken-digit scenes \(a divisor of the 8-pixel "
     r"digit\), got 5$"),
    (["train", "--modalities", "image", "text", "--model", '{{"patch": 3}}'], 2, r"--model: patch: .*, got 3$"),
    (["train", "--modalities", "image", "a"], 2,
     r"--modalities: the toy modalities a and b .* cannot be mixed with image, speech or text; got image a"),
    (["train", "--modalities", "text", "text"], 2, r"--modalities: expected two different modalities, got text text"),
    (["train", "--epochs", "0"], 2, r"argument --epochs: expected a positive integer \(>= 1\), got 0"),
    (["train", "--n-train", "0"], 2, r"argument --n-train: expected a positive integer \(>= 1\), got 0"),
    (["train", "--n-train", "-3"], 2, r"argument --n-train: expected a positive integer \(>= 1\), got -3"),
    (["train", "--n-train", "10000000000"], 2, r"--n-train 10000000000 needs about [\d.]+ GiB of memory"),
    (["train", "--lr", "0"], 2, r"argument --lr: expected a finite number > 0, got 0"),
    (["train", "--checkpoint", "{d}/folder"], 2, r"--checkpoint \S*folder is a folder, expected a file name"),
    (["train", "--checkpoint", "{d}/nowhere/x.npz"], 2,
     r"--checkpoint \S*nowhere/x.npz: folder \S*nowhere does not exist"),
    (["train", "--checkpoint", "{d}/notes.txt/x.npz"], 2,
     r"--checkpoint \S*: \S*notes.txt is a file, expected a folder"),
    (["train", "--resume", "--checkpoint", "{d}/missing.npz"], 2,
     r"--checkpoint \(with --resume\) \S*missing.npz: no such file"),
    (["train", "--resume", "--checkpoint", "{d}/other.npz", "--epochs", "3"], 2,
     r"error: --checkpoint \S*other.npz: not a minivq checkpoint \(no 'meta' entry\)$"),
    (["train", "--resume", "--checkpoint", "{d}/notes.txt", "--epochs", "3"], 2,
     r"error: --checkpoint \S*notes.txt: not a minivq checkpoint \(not an .npz archive\)$"),
    (["train", "--resume", "--checkpoint", "{d}/truncated.npz", "--epochs", "3"], 2,
     r"error: --checkpoint \S*truncated.npz: truncated or not a zip file"),
    (["train", *QUICK_TOY, "--checkpoint", "{ckpt}"], 2,
     r"error: --checkpoint \S*toy.npz exists \(a\+b full, epoch 1\): add --resume to continue it, "
     r"or --overwrite to start over$"),
    (["train", *QUICK_TOY, "--checkpoint", "{d}/notes.txt"], 2,
     r"error: --checkpoint \S*notes.txt exists and is not a minivq checkpoint: choose another file name, "
     r"or add --overwrite to replace it$"),
    (["train", "--resume", "--overwrite", "--checkpoint", "{ckpt}"], 2,
     r"argument --overwrite: not allowed with argument --resume"),
    (["train", "--check", "{d}/x.npz"], 2, r"unrecognized arguments: --check"),
    (["train", "--resume", "--checkpoint", "{ckpt}", "--n-train", "192", "--epochs", "3"], 2,
     r"--n-train 192 conflicts with the checkpoint's n_train 64"),
    (["train", "--resume", "--checkpoint", "{ckpt}", "--modalities", "image", "speech", "--epochs", "3"], 2,
     r"--modalities image speech conflicts with the checkpoint's modalities a b"),
    (["train", "--resume", "--checkpoint", "{ckpt}", "--seed", "5", "--epochs", "3"], 2,
     r"--seed 5 conflicts with the checkpoint's seed 0"),
    (["train", "--resume", "--checkpoint", "{ckpt}", "--model", '{{"K": 64}}', "--epochs", "3"], 2,
     r'--model \{{"K": 64\}} conflicts with the checkpoint\'s K 16'),
    (["train", "--resume", "--checkpoint", "{ckpt}", "--epochs", "1"], 2,
     r"--epochs 1: the checkpoint \S*toy.npz is at epoch 1 already; expected --epochs > 1"),
    (["train", "--resume", "--checkpoint", "{ckpt}"], 2,
     r"--resume: the checkpoint \S* has finished its 1 epochs; pass --epochs N"),
    (["demo", "--out", "{d}/notes.txt"], 2, r"--out \S*notes.txt: \S*notes.txt is a file, expected a folder"),
    (["demo", "--seeds", "-1"], 2, r"argument --seeds: expected a non-negative integer"),
    (["demo", "--seed", "3"], 2, r"unrecognized arguments: --seed 3$"),  # not taken for --seeds
    (["study", "--seed", "3"], 2, r"unrecognized arguments: --seed 3$"),
    (["demo", "--seeds", "1", "1"], 2, r"--seeds: expected distinct values, got 1 1"),
    (["demo", "--epochs", "0"], 2, r"argument --epochs: expected a positive integer"),
    (["demo", "--variants", "full", "nope"], 2, r"argument --variants: invalid choice: 'nope'"),]


@pytest.mark.parametrize("argv, code, pattern", WRONG_USAGES, ids=[" ".join(u[0])[:60] for u in WRONG_USAGES])
def test_wrong_usage_ends_in_one_line_and_an_exit_code(capsys, monkeypatch, files, toy_ckpt, argv, code, pattern):
    monkeypatch.setattr("minivq.cli.checks.available_memory", lambda: 16 * 2 ** 30)  # the same on any machine
    argv = [a.format(d=files, ckpt=toy_ckpt) for a in argv]
    got, out, err = cli(capsys, *argv)
    assert got == code, f"exit {got}, expected {code}; stderr: {err}"
    line = last_line(err)
    assert line.startswith(f"minivq {argv[0]}: error: ") and re.search(pattern.format(), line), line
    assert "Traceback" not in err and "saved" not in out


def test_no_parser_takes_an_abbreviated_option(capsys, tmp_path):
    """`--seed 3` is not `--seeds 3`: every parser, the study's and the course's included, says so itself."""
    from minivq.cli.parser import build_parser

    def parsers(parser, name="minivq"):
        yield name, parser
        for action in parser._actions:
            if isinstance(action.choices, dict):
                for sub, child in action.choices.items():
                    yield from parsers(child, f"{name} {sub}")

    found = dict(parsers(build_parser()))
    assert {"minivq demo", "minivq study", "minivq course list"} <= set(found)
    assert [name for name, p in found.items() if p.allow_abbrev] == []
    for argv, prog in ((["demo", "--seed", "3"], "minivq demo"), (["study", "--seed", "3"], "minivq study"),
                       (["course", "list", "--js", tmp_path / "x.json"], "minivq course list"),
                       (["train", "--check", tmp_path / "x.npz"], "minivq train")):
        code, _, err = cli(capsys, *argv)
        wrong = " ".join(map(str, argv[-2:]))
        assert code == 2 and last_line(err) == f"{prog}: error: unrecognized arguments: {wrong}", err
        assert f"usage: {prog} " in err, "the usage shown is the subcommand's, which lists the right option"
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "x.npz").exists()


def test_memory_check_refuses_only_what_cannot_fit():
    from minivq.cli.checks import BYTES_PER_PAIR, BYTES_PER_SIMILARITY, UsageError, check_memory
    need = 20000 * BYTES_PER_PAIR + 20000 ** 2 * BYTES_PER_SIMILARITY
    check_memory("--n 20000", 20000, square=True, available=need)  # fits exactly: no error
    with pytest.raises(UsageError, match=r"10.8 GiB is available; expected at most about 20000$"):
        check_memory("--n 20001", 20001, square=True, available=need)
    check_memory("--n 20001", 20001, available=need)  # without the n x n matrices it fits


def test_checkpoint_unchanged_by_refused_resumes(capsys, toy_ckpt):
    before = toy_ckpt.read_bytes()
    cli(capsys, "train", "--resume", "--checkpoint", toy_ckpt, "--epochs", "1")
    assert toy_ckpt.read_bytes() == before


def test_errors_from_python_dash_m_have_no_traceback_unless_asked(tmp_path):
    cmd = [sys.executable, "-m", "minivq", "evaluate", str(tmp_path / "missing.npz")]
    plain = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert plain.returncode == 2 and plain.stderr.strip().count("\n") == 0
    assert plain.stderr.startswith("minivq evaluate: error: checkpoint")
    (tmp_path / "notes.txt").write_text("hi")
    cmd[-1] = str(tmp_path / "notes.txt")
    for extra, env in (([], {"MINIVQ_DEBUG": "1"}), (["--debug"], {})):
        debug = subprocess.run(cmd + extra, capture_output=True, text=True, timeout=60, env={**os.environ, **env})
        assert debug.returncode != 0 and "Traceback" in debug.stderr and "CheckpointError" in debug.stderr


def test_an_extreme_learning_rate_says_the_loss_diverged(capsys, tmp_path):
    code, out, err = cli(capsys, "train", *QUICK_TOY, "--lr", "1e18", "--checkpoint", tmp_path / "lr.npz")
    assert code == 1 and "saved" not in out
    assert re.fullmatch(r"minivq train: error: training diverged at epoch \d+, step \d+ \(.*\); "
                        r"try a smaller learning rate \(lr = 1e\+18 now\)", last_line(err)), err


def test_ctrl_c_during_train_is_one_line_and_exit_130(tmp_path):
    ckpt = tmp_path / "m.npz"
    proc = subprocess.Popen([sys.executable, "-m", "minivq", "train", *QUICK_TOY, "--epochs", "10000",
                             "--checkpoint", str(ckpt)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if "epoch 2/" in line:
            proc.send_signal(signal.SIGINT)
            break
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert re.fullmatch(rf"minivq train: error: interrupted; {re.escape(str(ckpt))} holds epoch \d+; "
                        r"continue with --resume",
                        last_line(err)), err
    assert load_checkpoint(ckpt).epoch >= 2


def test_help_of_every_subcommand_shows_defaults_examples_and_no_markup(capsys):
    texts = {}
    for sub in ("", "demo", "train", "evaluate", "study", "course", "course student", "course grade"):
        code, out, _ = cli(capsys, *sub.split(), "--help")
        assert code == 0
        assert "``" not in out and ":func:" not in out and ":mod:" not in out
        assert "%%" not in out and "(default: None)" not in out and "(default: )" not in out, out
        assert max(map(len, out.splitlines())) <= 100, f"minivq {sub} --help: a line runs over 100 columns"
        texts[sub] = out
    assert "(default: results)" in texts["demo"] and "(default: 0)" in texts["demo"]
    assert "(default: minivq_checkpoint.npz)" in " ".join(texts["train"].split())
    assert "(default: 500)" in texts["evaluate"] and "(default: test)" in texts["evaluate"]
    for sub in ("demo", "train", "evaluate", "study"):
        assert f"examples:\n  minivq {sub}" in texts[sub]
    assert "(default: 10)" in texts["study"] and "--debug" in texts["study"]
    assert "95% CIs" in " ".join(texts["study"].split())
    train = " ".join(texts["train"].split())
    assert "a and b: two synthetic toy modalities" in train and "shared concepts" in train
    # the number of digits depends on --world (hard_on_grid by default: 2 to 5), so --modalities names none
    modalities = train[train.index("--modalities M M two"):train.index("--variant {summary,vq,full} summary")]
    assert "is set by --world" in modalities and not re.search(r"\d-\d|\d to \d", modalities), modalities
    assert "--resume | --overwrite" in train and "--overwrite start a new run even if --checkpoint exists" in train
    assert "~30 s on 2 cores" in texts["demo"] and "minutes" not in texts["demo"]


def test_version(capsys):
    import minivq
    code, out, _ = cli(capsys, "--version")
    assert code == 0 and out.startswith(f"minivq {minivq.__version__}")


def test_python_dash_m_help():
    res = subprocess.run([sys.executable, "-m", "minivq", "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "demo" in res.stdout and "evaluate" in res.stdout


def test_train_says_what_it_does_and_saves_only_what_it_wrote(capsys, tmp_path):
    ckpt = tmp_path / "m.npz"
    code, out, _ = cli(capsys, "train", "--quick", "--modalities", "image", "text", "--epochs", "1",
                       "--checkpoint", ckpt)
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("minivq train: full on image + text, 192 train pairs, epochs 1..1")
    assert lines[1].startswith("loading the spoken-digit scenes")
    assert re.match(r"\[full, seed 0\] epoch 1/1 .*val R@1 \(48 pairs\) .*ETA", lines[3])
    assert lines[-1] == f"saved {ckpt} (epoch 1, step 6)" and load_checkpoint(ckpt).epoch == 1


def test_resume_trains_on_the_checkpoints_data(capsys, tmp_path):
    # the case: --n-train 64, then --resume --quick without --n-train
    ckpt = tmp_path / "m.npz"
    cli(capsys, "train", *QUICK_TOY, "--n-train", "64", "--epochs", "1", "--checkpoint", ckpt)
    code, out, _ = cli(capsys, "train", "--quick", "--resume", "--epochs", "2", "--checkpoint", ckpt,
                       "--seed", "0", "--model", '{"K": 16}', "--modalities", "a", "b")  # agreeing flags are fine
    assert code == 0 and "64 train pairs, epochs 2..2" in out and "(resumed)" in out
    assert "epoch 1/2" not in out and "epoch 2/2" in out
    state = load_checkpoint(ckpt)
    assert state.data["n_train"] == 64 and state.epoch == 2
    assert state.step == 2 * (64 // 32), "steps of 64 pairs in batches of 32"


def test_train_refuses_to_overwrite_a_checkpoint_unless_told(capsys, tmp_path, toy_ckpt):
    """The student's case: 40 epochs trained, then `minivq train --epochs 60` without --resume."""
    ckpt = tmp_path / "minivq_checkpoint.npz"
    ckpt.write_bytes(toy_ckpt.read_bytes())
    before = ckpt.read_bytes()
    code, out, err = cli(capsys, "train", *QUICK_TOY, "--epochs", "2", "--checkpoint", ckpt)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "loading" not in out
    assert err.strip() == (f"minivq train: error: --checkpoint {ckpt} exists (a+b full, epoch 1): add --resume to "
                           "continue it, or --overwrite to start over")
    assert ckpt.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [ckpt.name]
    # --overwrite starts over: a new run of 2 epochs from scratch, on its own data
    code, out, err = cli(capsys, "train", *QUICK_TOY, "--epochs", "2", "--overwrite", "--checkpoint", ckpt)
    assert code == 0 and "epochs 1..2" in out and "(resumed)" not in out, err
    state = load_checkpoint(ckpt)
    assert state.epoch == 2 and [h["epoch"] for h in state.history] == [1, 2] and state.data["n_train"] == 192
    # --overwrite on a path that does not exist yet is a plain new run
    code, _, _ = cli(capsys, "train", *QUICK_TOY, "--epochs", "1", "--overwrite", "--checkpoint", tmp_path / "new.npz")
    assert code == 0 and load_checkpoint(tmp_path / "new.npz").epoch == 1


def test_an_overwrite_interrupted_before_its_first_epoch_keeps_the_old_checkpoint(capsys, monkeypatch, tmp_path,
                                                                                   toy_ckpt):
    ckpt = tmp_path / "m.npz"
    ckpt.write_bytes(toy_ckpt.read_bytes())

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("minivq.cli.commands.fit", interrupted)
    code, _, err = cli(capsys, "train", *QUICK_TOY, "--overwrite", "--checkpoint", ckpt)
    assert code == 130 and last_line(err) == (f"minivq train: error: interrupted; no checkpoint was written; {ckpt} "
                                              "still holds the earlier run (--overwrite replaces it after epoch 1)")
    assert ckpt.read_bytes() == toy_ckpt.read_bytes()


def test_train_checks_the_patch_before_loading_data(capsys, tmp_path):
    code, out, err = cli(capsys, "train", "--model", '{"patch": 5}', "--checkpoint", tmp_path / "m.npz")
    assert code == 2 and "loading" not in out and out == "", out
    assert err.strip() == ("minivq train: error: --model: patch: expected one of 1, 2, 4, 8 for the spoken-digit "
                           "scenes (a divisor of the 8-pixel digit), got 5")
    assert list(tmp_path.iterdir()) == []


def test_evaluate_never_writes_its_json_over_a_checkpoint(capsys, tmp_path, toy_ckpt):
    ckpt = tmp_path / "run.npz"
    ckpt.write_bytes(toy_ckpt.read_bytes())
    (tmp_path / "sub").mkdir()
    other = tmp_path / "other.npz"
    other.write_bytes(toy_ckpt.read_bytes())
    link = tmp_path / "link.json"
    link.symlink_to(ckpt)
    for spelled, expected in ((ckpt, f"--json {ckpt} is the checkpoint itself"),
                              (tmp_path / "sub" / ".." / "run.npz", "is the checkpoint itself"),
                              (link, f"--json {link} is the checkpoint itself"),
                              (other, f"--json {other}: expected a new file or a JSON file, got an existing .npz")):
        code, out, err = cli(capsys, "evaluate", ckpt, "--n", "40", "--json", spelled)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "evaluating" not in out
        assert last_line(err).startswith("minivq evaluate: error: ") and expected in err, err
    assert ckpt.read_bytes() == toy_ckpt.read_bytes() and other.read_bytes() == toy_ckpt.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "other.npz", "run.npz", "sub"]


def test_evaluate_prints_the_row_and_writes_strict_json(capsys, tmp_path, toy_ckpt):
    code, out, _ = cli(capsys, "evaluate", toy_ckpt, "--n", "40", "--json", tmp_path / "ev.json")
    assert code == 0 and "evaluating" in out and "on 40 test pairs" in out and "| + CMCM (full method) |" in out

    def refuse(constant):
        raise ValueError(constant)

    ev = json.loads((tmp_path / "ev.json").read_text(), parse_constant=refuse)
    assert ev["modalities"] == ["a", "b"] and "localization" in ev and ev["n"] == 40
    assert ev["retrieval"]["summary"]["mean_r1"] >= 0 and ev["config"]["data"]["n_train"] == 64
    assert "a_to_b" in ev["localization"]


def test_a_closed_stdout_stops_quietly(tmp_path):
    """`minivq train ... | head -1`: no error message, no 'Exception ignored' noise."""
    proc = subprocess.Popen([sys.executable, "-m", "minivq", "train", *QUICK_TOY, "--epochs", "200",
                             "--checkpoint", str(tmp_path / "m.npz")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and err == ""


def test_an_unwritten_course_exercise_is_one_line(capsys, monkeypatch):
    """In a student copy a command stops at an exercise stub: one line that names it, exit 1."""
    import minivq.cli.commands as commands

    def stub(args):
        raise NotImplementedError("exercise ema_update: write the EMA step of the codebook (VQ-5)")

    monkeypatch.setattr(commands, "demo_cmd", stub)
    monkeypatch.setattr("minivq.cli.parser.demo_cmd", stub)
    code, out, err = cli(capsys, "demo", "--quick")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert err.strip() == ("minivq demo: error: exercise ema_update: write the EMA step of the codebook (VQ-5) "
                           "(a course exercise not written yet: `minivq course grade` shows which)")


@pytest.mark.parametrize("delay", [0.0, 0.15, 0.4, 0.8])
def test_ctrl_c_at_any_moment_of_the_start_is_one_line_and_130(tmp_path, delay):
    """Ctrl-C from the terminal (the whole process group) while the command imports NumPy, parses, loads data,
    starts its worker processes: one line, exit 130, no traceback from the command or a worker."""
    from launch import command_env
    cmd = [sys.executable, "-X", "importtime", "-m", "minivq", "demo", "--quick", "--out", tmp_path / "r",
           "--jobs", "2"]
    proc = subprocess.Popen(list(map(str, cmd)), cwd=tmp_path, env=command_env(), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in proc.stderr:  # -X importtime: a line as each module is imported
        if "minivq.env" in line:  # imported by minivq.cli.startup once it holds Ctrl-C: the command has begun
            break
    import time
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    said = [line for line in err.splitlines() if not line.startswith("import time:")]
    assert proc.returncode == 130 and len(said) == 1, err[-3000:]
    assert re.fullmatch(r"minivq demo: error: interrupted.*", said[0]), said


def _interrupt_at(monkeypatch, name, call):
    """Make minivq.train.<name> raise KeyboardInterrupt (as Ctrl-C would) at its ``call``-th call."""
    import minivq.train as train
    real, calls = getattr(train, name), []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            if name == "save_checkpoint":  # the temporary file is written, not yet renamed into place
                real(str(args[0]) + ".partial.npz", *args[1:], **kwargs)
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train, name, wrapped)


@pytest.mark.parametrize("name, call, said", [
    ("quick_val_r1", 1, "no checkpoint was written (the first is saved after epoch 1)"),  # epoch 1's validation
    ("save_checkpoint", 1, "no checkpoint was written (the first is saved after epoch 1)"),  # epoch 1's save
    ("quick_val_r1", 3, "{ckpt} holds epoch 2; continue with --resume"),  # epoch 3's validation
    ("save_checkpoint", 3, "{ckpt} holds epoch 2; continue with --resume"),  # epoch 3's save
])
def test_ctrl_c_names_the_epoch_on_disk(capsys, monkeypatch, tmp_path, name, call, said):
    """Ctrl-C during an epoch's validation or save: the epoch the file holds (it said 3 for a file holding 2)."""
    ckpt = tmp_path / "m.npz"
    _interrupt_at(monkeypatch, name, call)
    code, out, err = cli(capsys, "train", *QUICK_TOY, "--epochs", "5", "--checkpoint", ckpt)
    assert code == 130 and last_line(err) == f"minivq train: error: interrupted; {said.format(ckpt=ckpt)}"
    assert (load_checkpoint(ckpt).epoch == 2) if call == 3 else not ckpt.exists()


def test_ctrl_c_of_a_resumed_or_overwriting_run_names_what_the_file_holds(capsys, monkeypatch, tmp_path, toy_ckpt):
    ckpt = tmp_path / "m.npz"
    ckpt.write_bytes(toy_ckpt.read_bytes())  # epoch 1
    with pytest.MonkeyPatch.context() as mp:
        _interrupt_at(mp, "save_checkpoint", 1)
        code, _, err = cli(capsys, "train", "--resume", "--epochs", "4", "--checkpoint", ckpt)
    assert code == 130 and last_line(err) == (f"minivq train: error: interrupted; {ckpt} still holds epoch 1 "
                                              "(no epoch finished since); continue with --resume")
    _interrupt_at(monkeypatch, "quick_val_r1", 1)
    code, _, err = cli(capsys, "train", *QUICK_TOY, "--overwrite", "--epochs", "4", "--checkpoint", ckpt)
    assert code == 130 and last_line(err) == (f"minivq train: error: interrupted; no checkpoint was written; {ckpt} "
                                              "still holds the earlier run (--overwrite replaces it after epoch 1)")
    assert ckpt.read_bytes() == toy_ckpt.read_bytes()


def test_ctrl_c_at_random_moments_of_train_names_the_epoch_on_disk(tmp_path):
    import random
    import time
    from launch import start
    ckpt, rng = tmp_path / "m.npz", random.Random(1)
    for _ in range(2):
        proc = start("train", *QUICK_TOY, "--epochs", "10000", "--checkpoint", ckpt, "--overwrite", cwd=tmp_path)
        for line in proc.stdout:
            if line.startswith("loaded in"):
                break
        time.sleep(rng.uniform(0.0, 0.15))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130 and len(err.strip().splitlines()) == 1, err
        held = re.fullmatch(rf"minivq train: error: interrupted; {re.escape(str(ckpt))} holds epoch (\d+); "
                            r"continue with --resume", err.strip())
        if held:
            assert load_checkpoint(ckpt).epoch == int(held.group(1))
        else:
            assert "no checkpoint was written" in err


def test_evaluate_json_never_overwrites_a_file_it_did_not_write(capsys, tmp_path, toy_ckpt):
    mine = tmp_path / "notes.json"
    mine.write_text('{"my": "notes"}')
    code, out, err = cli(capsys, "evaluate", toy_ckpt, "--n", "40", "--json", mine)
    assert code == 2 and out == "" and mine.read_text() == '{"my": "notes"}'
    assert last_line(err) == (f"minivq evaluate: error: --json {mine} exists and was not written by minivq evaluate; "
                              "choose another file name, or add --overwrite to replace it")
    code, _, _ = cli(capsys, "evaluate", toy_ckpt, "--n", "40", "--json", mine, "--overwrite")
    assert code == 0 and json.loads(mine.read_text())["n"] == 40
    code, _, _ = cli(capsys, "evaluate", toy_ckpt, "--n", "30", "--json", mine)  # its own file: replaced
    assert code == 0 and json.loads(mine.read_text())["n"] == 30
