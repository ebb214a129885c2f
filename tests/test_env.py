"""minivq.env: the boolean environment switches read one way, and refused in one line when unreadable."""
import pytest

from minivq.env import SWITCHES, EnvError, env_flag

from launch import minivq_command, command_env


@pytest.mark.parametrize("value, expected", [
    ("1", True), ("true", True), ("TRUE", True), ("Yes", True), ("on", True), (" ON ", True),
    ("0", False), ("false", False), ("False", False), ("no", False), ("NO", False), ("off", False),
    ("", False), (None, False)])
def test_the_words_a_switch_takes(value, expected):
    environ = {} if value is None else {"MINIVQ_DEBUG": value}
    assert env_flag("MINIVQ_DEBUG", environ=environ) is expected


@pytest.mark.parametrize("value", ["maybe", "2", "ture", "y", "-1", "0.0"])
def test_anything_else_is_refused_naming_the_variable(value):
    with pytest.raises(EnvError, match=rf"^environment variable MINIVQ_PUREPYTHON='{value}': expected 1/0, "
                                       r"true/false, yes/no or on/off \(any case\), or unset it$"):
        env_flag("MINIVQ_PUREPYTHON", environ={"MINIVQ_PUREPYTHON": value})


def test_both_switches_are_known():
    assert SWITCHES == ("MINIVQ_PUREPYTHON", "MINIVQ_DEBUG")


def test_a_user_s_false_means_off_and_a_typo_is_one_line(tmp_path, monkeypatch, capsys):
    """MINIVQ_PUREPYTHON=false used to force the NumPy path and MINIVQ_DEBUG=no to show tracebacks."""
    import subprocess
    from minivq.cli import main

    def minivq(*argv, **env):
        return subprocess.run(minivq_command(*argv), cwd=tmp_path, capture_output=True, text=True, timeout=60,
                              env=command_env(**env))

    off, on = minivq("--version", MINIVQ_PUREPYTHON="false"), minivq("--version", MINIVQ_PUREPYTHON="Yes")
    assert off.returncode == 0 and "MINIVQ_PUREPYTHON is set" not in off.stdout, off.stdout
    assert on.returncode == 0 and "backend: numpy" in on.stdout and "MINIVQ_PUREPYTHON is set" in on.stdout
    bad = minivq("evaluate", tmp_path / "missing.npz", MINIVQ_PUREPYTHON="maybe")  # read as minivq is imported
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.strip().splitlines() == [
        "minivq evaluate: error: environment variable MINIVQ_PUREPYTHON='maybe': expected 1/0, true/false, yes/no "
        "or on/off (any case), or unset it"], bad.stderr
    monkeypatch.setenv("MINIVQ_DEBUG", "no")  # read by the command: no traceback
    assert main(["evaluate", str(tmp_path / "missing.npz")]) == 2
    assert capsys.readouterr().err == f"minivq evaluate: error: checkpoint {tmp_path / 'missing.npz'}: no such file\n"
    monkeypatch.setenv("MINIVQ_DEBUG", "maybe")
    assert main(["evaluate", str(tmp_path / "missing.npz")]) == 2
    assert capsys.readouterr().err == ("minivq evaluate: error: environment variable MINIVQ_DEBUG='maybe': expected "
                                       "1/0, true/false, yes/no or on/off (any case), or unset it\n")
