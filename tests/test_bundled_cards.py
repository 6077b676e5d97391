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


@pytest.mark.parametrize("name", ENTRIES)
def test_a_bundled_card_is_what_todays_card_code_renders(name):
    """Cards rendered by older code kept stale names in their metadata ('vae6'), no pixel kind beside a Bernoulli
    -log p(x), a classifier's accuracy filed as image reconstruction, and none of a GAN's catalogued figures.
    `python benchmarks/render_cards.py` renders them again."""
    from zoo import registry
    from zoo.runs import checkpoint as ckpt
    from zoo.runs.files import sampler_names
    from zoo.runs.modelcard import render_card

    folder = WEIGHTS / name
    rendered = render_card(ckpt.read_json(folder / "config.json"), ckpt.read_eval(folder)[0], [], name,
                           sampler_names(folder), catalogued=registry.weights()[name].get("metrics"))
    assert (folder / "README.md").read_text() == rendered


def test_the_cards_file_their_figures_under_the_task_of_their_model():
    tasks = {name: re.search(r"task: \{type: ([\w-]+)\}", (WEIGHTS / name / "README.md").read_text()).group(1)
             for name in ("features-mnist", "head-mnist", "gan-mnist", "cgan-mnist", "iwae-mnist", "dae-mnist")}
    assert tasks == {"features-mnist": "image-classification", "head-mnist": "image-classification",
                     "gan-mnist": "unconditional-image-generation", "cgan-mnist": "class-conditional-image-generation",
                     "iwae-mnist": "image-reconstruction", "dae-mnist": "image-reconstruction"}
