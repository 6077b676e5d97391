"""Render the model card (README.md) of every bundled entry again, with today's card code: from its folder's
config.json and eval.json, its shipped samplers and the figures registry.toml quotes for it. The weights and
every other file stay as they are.

    python benchmarks/render_cards.py            # all of them
    python benchmarks/render_cards.py gan-mnist  # some
"""

from __future__ import annotations

import sys
from pathlib import Path

from zoo import registry
from zoo.runs import checkpoint as ckpt
from zoo.runs.files import sampler_names
from zoo.runs.modelcard import render_card

WEIGHTS = Path(registry.__file__).parent / "weights"


def main(names: list[str]) -> None:
    catalogue = registry.weights()
    for name in names or sorted(catalogue):
        folder = WEIGHTS / name
        if not (folder / ckpt.CONFIG).is_file():
            continue  # catalogued elsewhere (a hub), not bundled
        eval_result, note = ckpt.read_eval(folder)
        if note:
            print(f"{name}: {note}")
        card = render_card(ckpt.read_json(folder / ckpt.CONFIG), eval_result, [], name, sampler_names(folder),
                           catalogued=catalogue[name].get("metrics"))
        (folder / ckpt.CARD).write_text(card)
        print(f"{name}: {folder / ckpt.CARD}")


if __name__ == "__main__":
    main(sys.argv[1:])
