"""Tests of minivq.io.checkpoint and minivq.io.atomic: atomic writes, safe reads, the data record, real kills."""
import os
import pickle
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from minivq.io.atomic import atomic_write, atomic_write_text, check_writable_folder
from minivq.io.checkpoint import (CheckpointError, data_record, load_checkpoint, read_checkpoint_file,
                               save_checkpoint, write_checkpoint_file)

from launch import command_env, start
from test_train import make_state

META = {"model_cfg": {}, "train_cfg": {}, "rng": {}, "epoch": 0, "step": 0}


def test_atomic_write_replaces_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "f.txt"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["f.txt"]


def test_a_failing_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_text(path, "old")

    def half_then_fail(f):
        f.write(b"half of the new")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["f.bin"], "the temporary file must be removed"


def test_orphaned_temp_files_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = tmp_path / f".f.txt.tmp-{dead.pid}"
    orphan.write_text("left by a kill")
    atomic_write_text(tmp_path / "f.txt", "x")
    assert not orphan.exists()


def test_check_writable_folder(tmp_path):
    (tmp_path / "file").write_text("")
    assert check_writable_folder(tmp_path) is None
    assert "is a file" in check_writable_folder(tmp_path / "file")
    assert "does not exist" in check_writable_folder(tmp_path / "new")
    assert check_writable_folder(tmp_path / "new" / "deeper", create=True) is None
    assert (tmp_path / "new" / "deeper").is_dir()
    expected = f"{tmp_path / 'file'} is a file, expected a folder"
    assert check_writable_folder(tmp_path / "file" / "sub", create=True) == expected


def _bad_files(tmp_path):
    """name -> (path, expected message fragment)."""
    good = tmp_path / "good.npz"
    write_checkpoint_file(good, {"param/W": np.ones(3)}, META)
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "text.npz").write_text("hello\n")
    (tmp_path / "truncated.npz").write_bytes(good.read_bytes()[:200])
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    np.savez(tmp_path / "pickled.npz", meta=np.array("{}"), obj=np.array([{"a": 1}], dtype=object))
    np.savez(tmp_path / "notjson.npz", meta=np.array("not json"))
    np.savez(tmp_path / "alien_meta.npz", meta=np.array('{"epoch": 1}'))
    (tmp_path / "folder.npz").mkdir()
    return {
        "missing": (tmp_path / "missing.npz", "missing.npz: no such file"),
        "folder": (tmp_path / "folder.npz", "is a folder"),
        "empty": (tmp_path / "empty.npz", "empty.npz is empty"),
        "text": (tmp_path / "text.npz", "text.npz is not a minivq checkpoint (not an .npz archive)"),
        "truncated": (tmp_path / "truncated.npz", "truncated.npz is truncated or not a zip file"),
        "other": (tmp_path / "other.npz", "other.npz is not a minivq checkpoint (no 'meta' entry)"),
        "pickled": (tmp_path / "pickled.npz", "pickled.npz is not a minivq checkpoint (an entry holds pickled"),
        "notjson": (tmp_path / "notjson.npz", "not JSON"),
        "alien_meta": (tmp_path / "alien_meta.npz", "lacks model_cfg"),
    }


@pytest.mark.parametrize("case", ["missing", "folder", "empty", "text", "truncated", "other", "pickled",
                                  "notjson", "alien_meta"])
def test_a_file_that_is_not_a_checkpoint_is_called_that(tmp_path, case):
    path, fragment = _bad_files(tmp_path)[case]
    with pytest.raises(CheckpointError) as err:
        read_checkpoint_file(path)
    message = str(err.value)
    assert fragment in message and str(path.name) in message
    assert "allow_pickle" not in message and "\n" not in message
    assert isinstance(err.value, ValueError)
    # the file and the reason apart, so that a command can say "--checkpoint PATH: REASON"
    reason = err.value.reason
    assert err.value.path == path and message in (f"{path}: {reason}", f"{path} is {reason}"), (message, reason)
    again = pickle.loads(pickle.dumps(err.value))  # as a worker process sends it back
    assert (type(again), str(again), again.path, again.reason) == (CheckpointError, message, path, err.value.reason)


def test_checkpoint_records_its_data_and_version(tmp_path):
    from minivq import __version__
    state, _ = make_state()
    state.data = data_record(("a", "b"), 96, 0, seed=0, patch=8)
    save_checkpoint(tmp_path / "c.npz", state)
    meta, _ = read_checkpoint_file(tmp_path / "c.npz")
    assert meta["minivq_version"] == __version__
    assert load_checkpoint(tmp_path / "c.npz").data == {"modalities": ["a", "b"], "n_train": 96, "n_val": 0,
                                                         "seed": 0, "patch": 8, "world": "easy"}


def _signature(path):
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _kill_during_a_save(cmd, ckpt, saves, delay, timeout=30):
    """Start cmd, SIGKILL it ``delay`` s after the ``saves``-th moment around a save; True if killed mid-write."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    prefix, seen, writing, last = f".{ckpt.name}.tmp-{proc.pid}", 0, False, _signature(ckpt)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            tmp_now = any(n.startswith(prefix) for n in os.listdir(ckpt.parent))
            sig = _signature(ckpt)
            # a moment around a save: a temporary file appears, or the checkpoint changes (renamed
            # into place, or written in place by a non-atomic writer)
            started = (tmp_now and not writing) or (sig != last and not tmp_now)
            writing, last = tmp_now, sig
            if started:
                seen += 1
                if seen >= saves:
                    if delay:
                        time.sleep(delay)
                    proc.send_signal(signal.SIGKILL)
                    break
    finally:
        proc.kill()
        _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the run ended on its own: {err.decode()[-500:]}"
    return any(n.startswith(prefix) for n in os.listdir(ckpt.parent))


def test_sigkill_at_any_moment_leaves_a_loadable_checkpoint(tmp_path):
    """Kill `minivq train` with SIGKILL at, and just after, the start of checkpoint writes, many times."""
    ckpt = tmp_path / "m.npz"
    base = [sys.executable, "-m", "minivq", "train", "--quick", "--modalities", "a", "b", "--epochs", "1000",
            "--checkpoint", str(ckpt)]
    rng = random.Random(0)
    epoch, mid_write = 0, 0
    for _ in range(8):
        cmd = base + (["--resume"] if ckpt.exists() else [])
        mid_write += _kill_during_a_save(cmd, ckpt, saves=rng.randint(1, 3),
                                         delay=rng.choice([0, 0, 0, 1e-4, 1e-3, 5e-3]))
        if ckpt.exists():  # the old or the new checkpoint, never a broken one
            state = load_checkpoint(ckpt)
            assert state.epoch >= epoch and state.data["n_train"] == 192
            epoch = state.epoch
    assert epoch >= 1, "no checkpoint survived: the kills came before any write finished"
    assert mid_write >= 1, "no kill landed during a write; the test did not exercise the window"
    leftovers = [n for n in os.listdir(tmp_path) if n.startswith(".m.npz.tmp-")]
    assert len(leftovers) <= 1, f"orphaned temporary files pile up: {leftovers}"


def test_a_lock_is_refused_while_held_and_free_once_released(tmp_path):
    from minivq.io.lock import LockHeld, file_lock, lock_path
    path = tmp_path / "run.npz"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from minivq.io.lock import file_lock\n"
                               f"with file_lock({str(path)!r}):\n    print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, env=command_env())
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(LockHeld, match=rf"^--checkpoint {path} is being written by another minivq run "
                                           rf"\(process {holder.pid}\); wait for it to end, or choose another "
                                           r"--checkpoint$"):
            with file_lock(path, "--checkpoint"):
                pass
    finally:
        holder.kill()  # SIGKILL: the holder cannot clean up; the OS releases its lock
        holder.wait()
    assert lock_path(path).read_text() == f"{holder.pid}\n", "the killed holder's file stays..."
    with file_lock(path) as lock:  # ... and does not block the next run
        assert lock.read_text() == f"{os.getpid()}\n"
    assert sorted(os.listdir(tmp_path)) == [], "a run that ends removes its lock file"


def test_two_trainings_started_together_one_is_refused(tmp_path):
    """Both said "saved" and one run was silently lost; now the second is refused in one line naming the first."""
    ckpt = tmp_path / "minivq_checkpoint.npz"  # the default name, in the folder both start from
    train = ("train", "--quick", "--modalities", "a", "b", "--epochs", "100000")
    runs = [start(*train, cwd=tmp_path), start(*train, cwd=tmp_path)]
    deadline = time.monotonic() + 60
    while all(p.poll() is None for p in runs) and time.monotonic() < deadline:
        time.sleep(0.05)
    refused = next(p for p in runs if p.poll() is not None)
    winner = runs[1 - runs.index(refused)]
    _, err = refused.communicate(timeout=10)
    assert refused.returncode == 1 and err.strip().splitlines() == [
        f"minivq train: error: --checkpoint minivq_checkpoint.npz is being written by another minivq run (process "
        f"{winner.pid}); wait for it to end, or choose another --checkpoint"], err
    for line in winner.stdout:  # the winner trains on, and saves
        if "epoch 2/" in line:
            break
    winner.kill()  # SIGKILL mid-run: its lock dies with it
    winner.communicate(timeout=10)
    epoch = load_checkpoint(ckpt).epoch
    from minivq.cli import main
    assert main(["train", "--resume", "--epochs", str(epoch + 1), "--checkpoint", str(ckpt)]) == 0
    assert load_checkpoint(ckpt).epoch == epoch + 1
    assert sorted(os.listdir(tmp_path)) == ["minivq_checkpoint.npz"]
