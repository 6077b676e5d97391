"""README.md runs: every line of its runnable blocks, in order, as a newcomer would type them on a fresh
machine, each a real process in one empty working directory.

Which blocks run:
- ```bash blocks, line by line through `bash -c` (`zoo` is the one installed beside this Python). A line
  ending in a backslash is joined with the next, and a heredoc (`cat > F <<'EOF'`) with its body.
- ```python blocks, each as one `python -` process in the same directory, at its place in the order.
- A block right after `<!-- not run by tests/test_readme.py: REASON -->` is not run (installing zoo, the
  test suite itself); other blocks (```text, ```toml) only illustrate and hold no commands.

What the test changes, so that the whole README runs in a few minutes on a 2-core CPU:
- ZOO_DATA_DIR is a fresh folder holding a tiny MNIST (300 training and 100 test random 28×28 images,
  labels 0-9, the standard gzipped IDX files); `digits` is sklearn's own.
- Only these numbers are made small, nothing else is rewritten: `--epochs N`, `epochs = N` and
  `epochs=N` become N // 20, at least 1 (so 30 then `--resume --epochs 40` still trains on: 1, then 2);
  `--trials N` becomes 2; `--iwae-k N` becomes 10.
- Lines that name hf:// talk to a loopback stand-in for the Hugging Face Hub (tests/hubserver.py) through
  HF_ENDPOINT, with a token. Every other line runs offline (ZOO_OFFLINE=1, HF_HUB_OFFLINE=1), which is
  what the README promises.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, is_png, write_idx_set
from hubserver import HubServer

README = REPO / "README.md"
FENCE = re.compile(r"^```(\S*)\s*$")
NOT_RUN = re.compile(r"<!--\s*not run by tests/test_readme\.py:(.*?)-->")
RUNNABLE = {"bash", "python"}
ILLUSTRATIVE = {"text", "toml"}
HEREDOC = re.compile(r"<<-?\s*['\"]?(\w+)['\"]?")

# The only rewrites (see the module docstring): (pattern, replacement).
SMALL_NUMBERS = [
    (re.compile(r"(--epochs[ =]|\bepochs\s*=\s*)(\d+)"), lambda m: f"{m[1]}{max(1, int(m[2]) // 20)}"),
    (re.compile(r"(--trials[ =])(\d+)"), lambda m: f"{m[1]}2"),
    (re.compile(r"(--iwae-k[ =])(\d+)"), lambda m: f"{m[1]}10"),
]

# Files the README says its lines write (each path appears in README.md as written here).
NAMED_OUTPUTS = [
    "zoo-outputs/gan-mnist/samples-prior.png",
    "runs/digits/eval.json",
    "digits-recon.png",
    "zoo-outputs/convae-mnist/reconstructions-test.png",
    "runs/dae/noise_sweep.png",
    "runs/ae6/latent-tsne.png",
    "runs/vae/manifold.png",
    "runs/ae6/interpolation.png",
    "hf-samples.png",
]


@dataclass
class Block:
    lang: str
    text: str
    line: int  # the README line of its opening fence
    not_run: str | None  # the reason given, for a block marked not run


@dataclass
class Step:
    kind: str  # "bash" or "python"
    text: str  # as written in the README
    line: int


@dataclass
class Done:
    step: Step
    ran: str  # the text run, after SMALL_NUMBERS
    returncode: int
    output: str


def readme_blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text, with the reason of a `not run` marker just above one."""
    lines, blocks, i = text.splitlines(), [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        above = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = NOT_RUN.search(above)
        blocks.append(Block(fence[1], "\n".join(lines[i + 1:end]), i + 1, marker[1].strip() if marker else None))
        i = end + 1
    return blocks


def shell_commands(block: Block) -> list[Step]:
    """A bash block's commands in order: one a line; continuation lines and heredoc bodies joined in."""
    lines, steps, i = block.text.splitlines(), [], 0
    while i < len(lines):
        first, command = i, lines[i]
        i += 1
        if not command.strip() or command.lstrip().startswith("#"):
            continue
        while command.endswith("\\") and i < len(lines):
            command, i = command + "\n" + lines[i], i + 1
        heredoc = HEREDOC.search(command)
        if heredoc:
            end = lines.index(heredoc[1], i)
            command, i = "\n".join([command, *lines[i:end + 1]]), end + 1
        steps.append(Step("bash", command, block.line + 1 + first))
    return steps


def readme_steps() -> list[Step]:
    """Everything the README asks a user to run, in order."""
    steps = []
    for block in readme_blocks(README.read_text(encoding="utf-8")):
        if block.not_run is not None or block.lang not in RUNNABLE:
            continue
        steps += shell_commands(block) if block.lang == "bash" else [Step("python", block.text, block.line)]
    return steps


def small(text: str) -> str:
    """The text with SMALL_NUMBERS applied: the README's own command, only shorter to run."""
    for pattern, replacement in SMALL_NUMBERS:
        text = pattern.sub(replacement, text)
    return text


def environment(data: Path, cache: Path, hub: HubServer, online: bool) -> dict[str, str]:
    """A fresh user's environment: tiny data, an empty cache; offline unless the line needs the hub."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")}
    env.update(ZOO_DATA_DIR=str(data), XDG_CACHE_HOME=str(cache), PATH=f"{Path(sys.executable).parent}:{env['PATH']}",
               ZOO_OFFLINE="1", HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    if online:
        env.update(ZOO_OFFLINE="0", HF_HUB_OFFLINE="0", HF_ENDPOINT=hub.url, HF_TOKEN="readme-test")
    return env


def run_step(step: Step, cwd: Path, env: dict[str, str]) -> Done:
    """One step as its own process, as a user's shell or `python` would run it."""
    ran = small(step.text)
    command = ["bash", "-c", ran] if step.kind == "bash" else [sys.executable, "-"]
    result = subprocess.run(command, input=ran if step.kind == "python" else None, cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=600)
    return Done(step, ran, result.returncode, result.stdout + result.stderr)


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory):
    """The README run once, in order, in an empty folder; stops at the first line that fails."""
    root = tmp_path_factory.mktemp("readme")
    write_idx_set(root / "data" / "mnist", n_train=300, n_test=100)
    work = root / "work"
    work.mkdir()
    done = []
    with HubServer() as hub:
        for step in readme_steps():
            env = environment(root / "data", root / "cache", hub, online="hf://" in step.text)
            done.append(run_step(step, work, env))
            if done[-1].returncode != 0:
                break
    return work, done


def test_readme_blocks_are_run_or_say_why_not():
    """Each block is runnable, or marked not run with a reason, or an illustration without commands."""
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    for b in blocks:
        where = f"README.md line {b.line}"
        assert b.lang in RUNNABLE | ILLUSTRATIVE, f"{where}: say what the block is (```bash, ```python, ```text)"
        if b.not_run is not None:
            assert b.not_run and b.lang in RUNNABLE, f"{where}: a block not run says why"
        if b.lang in ILLUSTRATIVE:
            assert not re.search(r"^\s*(\$ )?(zoo|python|pip) ", b.text, re.M), f"{where}: commands belong in ```bash"
    assert len(readme_steps()) >= 30  # the blocks were found and split into lines


def test_every_readme_line_runs_in_order_in_a_fresh_folder(readme_run):
    _, done = readme_run
    last = done[-1]
    assert last.returncode == 0, (f"README.md line {last.step.line} failed (exit {last.returncode}):\n{last.ran}\n"
                                  f"---\n{last.output[-4000:]}")
    assert [d.step for d in done] == readme_steps()  # every step ran
    assert all("Traceback" not in d.output for d in done)


def test_the_files_the_readme_names_are_written(readme_run):
    work, done = readme_run
    assert done[-1].returncode == 0, "the README did not run to its end"
    readme = README.read_text(encoding="utf-8")
    for name in NAMED_OUTPUTS:
        assert name in readme, f"{name} is no longer named in the README: update NAMED_OUTPUTS"
        assert is_png(work / name) or (name.endswith(".json") and (work / name).is_file()), name
    denoised = sorted(p.name for p in (work / "runs" / "dae" / "denoised-my_images_files").iterdir())
    assert denoised == sorted(p.name for p in (work / "my_images").iterdir()) and len(denoised) == 8
    assert (work / "runs" / "best" / "model.safetensors").is_file()  # retrained from best.toml
