"""The model cards of the bundled weights: each shows a load line that works as written, and no picture
that is not bundled with it (a card is what a user reads first; issue 12 found one that failed)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import zoo

WEIGHTS = Path(zoo.__file__).parent / "weights"
ENTRIES = sorted(p.name for p in WEIGHTS.iterdir() if (p / "README.md").is_file())


@pytest.mark.parametrize("name", ENTRIES)
def test_a_bundled_card_loads_by_its_catalogued_name_and_shows_only_bundled_pictures(name):
    card = (WEIGHTS / name / "README.md").read_text()
    assert f'zoo.load("{name}")' in card
    assert "/tmp/" not in card and "runs/" not in card.split("## Training configuration")[0]
    shown = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", card)
    assert all((WEIGHTS / name / picture).is_file() for picture in shown), shown


@pytest.mark.parametrize("name", ENTRIES)
def test_the_methods_a_bundled_card_names_are_what_its_model_can_do(name):
    run = zoo.load(name)
    line = next(x for x in (WEIGHTS / name / "README.md").read_text().splitlines() if "zoo.load(" in x)
    named = set(re.findall(r"run\.(\w+)\(", line))
    assert named <= set(run.capabilities()), named - set(run.capabilities())


def test_every_bundled_file_is_one_git_keeps():
    """A file .gitignore drops (a card's loss.png) is on the machine that bundled it and in no clone or wheel."""
    repo = WEIGHTS.parents[1]
    if not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    files = [str(p.relative_to(repo)) for p in WEIGHTS.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *files], cwd=repo, capture_output=True, text=True)
    assert ignored.stdout.split() == []
