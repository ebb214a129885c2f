"""The repository's own promises: the spec copy is current, the README's commands are marked."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_method_copy_matches_the_shared_specification():
    """METHOD.md in the repo is a copy of the project's spec (../shared/METHOD.md) for readers."""
    shared = ROOT.parent / "shared" / "METHOD.md"
    if not shared.is_file():
        pytest.skip("no ../shared/METHOD.md beside this checkout")
    assert (ROOT / "METHOD.md").read_text() == shared.read_text(), (
        "METHOD.md is out of date: copy ../shared/METHOD.md over it"
    )


@pytest.mark.parametrize("marker", ["run-command", "test-command"])
def test_readme_marks_the_two_commands_ci_runs(marker):
    text = (ROOT / "README.md").read_text()
    block = text.split(f"<!-- {marker} -->")[1].split(f"<!-- /{marker} -->")[0]
    lines = [l for l in block.strip().splitlines() if not l.startswith("```")]
    assert len(lines) == 1 and lines[0].startswith("pip install"), f"{marker}: {lines}"
