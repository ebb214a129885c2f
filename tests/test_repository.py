"""The repository's own promises: the spec copy is current, the README's commands are marked."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["METHOD.md", "STYLE.md"])
def test_copies_match_the_shared_documents(name):
    """METHOD.md (the spec) and STYLE.md (the house style the sources cite) are copies of ../shared/."""
    shared = ROOT.parent / "shared" / name
    if not shared.is_file():
        pytest.skip(f"no ../shared/{name} beside this checkout")
    assert (ROOT / name).read_text() == shared.read_text(), (
        f"{name} is out of date: copy ../shared/{name} over it"
    )


@pytest.mark.parametrize("marker", ["run-command", "test-command"])
def test_readme_marks_the_two_commands_ci_runs(marker):
    text = (ROOT / "README.md").read_text()
    block = text.split(f"<!-- {marker} -->")[1].split(f"<!-- /{marker} -->")[0]
    lines = [l for l in block.strip().splitlines() if not l.startswith("```")]
    assert len(lines) == 1 and lines[0].startswith("pip install"), f"{marker}: {lines}"
