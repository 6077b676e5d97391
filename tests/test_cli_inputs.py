"""Hostile and careless values for the options of every command end in one clean message: a non-zero exit,
one "Error:" line and never a traceback. Numbers out of range or not numbers, empty strings, unicode,
files where folders belong and back, paths that are missing, too long or not regular files, config
files that are not UTF-8 TOML, and --seed beyond 32 bits or negative on any command."""

from __future__ import annotations

import os

import click
import pytest
from conftest import assert_clean_error, invoke

from zoo.cli.main import cli
from zoo.runs.config_files import MAX_CONFIG_BYTES, read_toml
from zoo.errors import ConfigError

BIG = str(2**64)

# {run}: a trained tiny ConvAE run; {tmp}: a folder; {file}: a text file; {fifo}: a named pipe;
# {latin1} / {junk}: "TOML" files that are Latin-1 text / random bytes; {long}: a name too long for the OS.
HOSTILE = [
    # numbers out of range, or not numbers
    ["train", "convae", "--epochs", "-1"],
    ["train", "convae", "--epochs", BIG],
    ["train", "convae", "--batch-size", "9" * 40],
    ["train", "convae", "--lr", "nan"],
    ["train", "convae", "--lr", "inf"],
    ["train", "convae", "--lr", "-1"],
    ["train", "convae", "--patience", "-1"],
    ["train", "convae", "--set", "latent_dim=1e400"],
    ["train", "--resume", "{run}", "--epochs", BIG],
    ["finetune", "{run}", "--epochs", "-1"],
    ["finetune", "{run}", "--hidden", "-1"],
    ["finetune", "{run}", "--hidden", "60,,"],
    ["finetune", "{run}", "--unfreeze-last", "99"],
    ["finetune", "{run}", "--freeze", "none", "--unfreeze-last", "2"],
    ["reconstruct", "{run}", "--out", "{tmp}/r.jpg"],
    ["generate", "{run}", "--out", "{tmp}/g.txt"],
    ["manifold", "{run}", "--out", "{tmp}/m.pdf"],
    ["eval", "{run}", "--limit", "0"],
    ["eval", "{run}", "--iwae-k", "-1"],
    ["eval", "{run}", "--iwae-k", "0"],  # not a silent "off": an estimate of no samples is no estimate
    ["reconstruct", "{run}", "--n", BIG],
    ["generate", "{run}", "--class", "3", "--spread", "nan"],
    ["generate", "{run}", "--class", "3", "--spread", "inf"],
    ["generate", "{run}", "--class", "3", "--spread", "-1"],
    ["denoise", "{run}", "--noise", "gaussian:nan"],
    ["denoise", "{run}", "--noise", "gaussian:1e400"],
    ["latent", "{run}", "--n", "1"],
    ["interpolate", "{run}", "--from", "-1", "--to", "1"],
    ["interpolate", "{run}", "--from", "#99999", "--to", "1"],
    ["interpolate", "{run}", "--from", "9" * 5000, "--to", "1"],
    ["interpolate", "{run}", "--from", "#" + "9" * 5000, "--to", "1"],
    # empty strings and unicode
    ["info", ""],
    ["train", ""],
    ["train", "ü"],
    ["train", "convae", "--dataset", ""],
    ["train", "convae", "--dataset", "folder:"],
    ["train", "convae", "--preset", ""],
    ["train", "convae", "--device", ""],
    ["cv", "convae", "--device", ""],  # cv and search took "" for auto
    ["cv", "convae", "--dataset", ""],
    ["cv", "convae", "--data-dir", ""],
    ["search", "convae", "--device", ""],
    ["train", "convae", "--device", "ü"],
    ["train", "convae", "--set", "ü=1"],
    ["eval", ""],
    ["eval", "ü"],
    ["generate", "{run}", "--sampler", ""],
    ["latent", "{run}", "--method", ""],
    ["interpolate", "{run}", "--from", "", "--to", "1"],
    # an empty path, for every option that takes one
    ["train", "convae", "--out", ""],
    ["train", "convae", "--config", ""],
    ["train", "convae", "--data-dir", ""],
    ["train", "--resume", ""],
    ["finetune", "{run}", "--out", ""],
    ["reconstruct", "{run}", "--out", ""],
    ["denoise", "{run}", "--out", ""],
    ["denoise", "{run}", "--input", ""],
    ["generate", "{run}", "--out", ""],
    ["latent", "{run}", "--out", ""],
    ["manifold", "{run}", "--out", ""],
    ["interpolate", "{run}", "--from", "1", "--to", "2", "--out", ""],
    # files where folders belong and back, missing paths, names too long, what is not a regular file
    ["train", "convae", "--out", "{file}"],
    ["train", "convae", "--out", "{fifo}"],
    ["train", "convae", "--config", "{tmp}"],
    ["train", "convae", "--config", "{tmp}/nowhere.toml"],
    ["train", "convae", "--config", "{fifo}"],
    ["train", "convae", "--data-dir", "{file}"],
    ["train", "convae", "--dataset", "folder:{file}"],
    ["train", "--resume", "{file}"],
    ["train", "--resume", "{tmp}/nowhere"],
    ["train", "--resume", "{long}"],
    ["eval", "{file}"],
    ["eval", "{tmp}"],
    ["eval", "{long}"],
    ["reconstruct", "{run}", "--out", "{tmp}"],
    ["reconstruct", "{run}", "--out", "{fifo}"],
    ["reconstruct", "{run}", "--out", "{file}/x.png"],
    ["generate", "{run}", "--out", "{fifo}"],
    ["denoise", "{run}", "--noise", "gaussian:0.3", "--input", "{tmp}/nowhere"],
    ["latent", "{run}", "--data-dir", "{file}"],
    # --set keys that are also arguments of the API the command calls (they reached it twice)
    ["train", "convae", "--set", "dataset=", "--out", "{tmp}/run"],
    ["train", "convae", "--set", "model=vae"],
    ["train", "convae", "--set", "out={tmp}/run"],
    ["train", "convae", "--set", "log=1"],
    ["train", "--resume", "{run}", "--set", "resume={tmp}"],
    ["finetune", "{run}", "--set", "freeze=none"],
    ["finetune", "{run}", "--set", "progress=1"],
    # config files that are not UTF-8 TOML
    ["train", "convae", "--config", "{latin1}"],
    ["train", "convae", "--config", "{junk}"],
]


@pytest.fixture
def places(run_copy, tmp_path) -> dict[str, str]:
    """What the {placeholders} of HOSTILE stand for."""
    (tmp_path / "file.txt").write_text("not a folder\n")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "latin1.toml").write_bytes("latent_dim = 3  # café\n".encode("latin-1"))
    (tmp_path / "junk.toml").write_bytes(bytes(range(256)) * 4)
    return {"run": str(run_copy), "tmp": str(tmp_path), "file": str(tmp_path / "file.txt"),
            "fifo": str(tmp_path / "fifo"), "latin1": str(tmp_path / "latin1.toml"),
            "junk": str(tmp_path / "junk.toml"), "long": "x" * 300}


@pytest.mark.parametrize("args", HOSTILE, ids=[" ".join(a)[:60] for a in HOSTILE])
def test_hostile_value_is_one_clean_message(places, args):
    output = assert_clean_error(invoke(*(a.format(**places) for a in args)))
    assert output.count("Error:") == 1, output


def _commands_with(option: str) -> list[str]:
    return sorted(name for name, command in cli.commands.items()
                  if any(option in p.opts for p in command.params if isinstance(p, click.Option)))


@pytest.mark.parametrize("seed", ["-1", BIG, str(2**32)])
@pytest.mark.parametrize("command", _commands_with("--seed"))
def test_seed_beyond_32_bits_or_negative_is_a_usage_error_on_every_command(command, seed):
    result = invoke(command, "--seed", seed)
    assert_clean_error(result, "--seed", code=2)


def test_a_count_that_is_no_number_is_called_a_whole_number_not_an_integer_range(tmp_path):
    assert_clean_error(invoke("eval", "vae-mnist", "--iwae-k", "abc"), "'abc' is not a valid whole number", code=2)


@pytest.mark.parametrize("content, words", [
    ("latent_dim = 3  # café\n".encode("latin-1"), ["is not UTF-8 text", "byte 0xe9"]),
    (bytes(range(256)), ["is not UTF-8 text"]),
    (b"latent_dim = = 3\n", ["is not valid TOML"]),
])
def test_config_file_that_is_not_utf8_toml_is_a_config_error(tmp_path, content, words):
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        read_toml(path)
    for word in words:
        assert word in caught.value.message


def test_config_path_that_is_a_folder_or_that_the_os_refuses_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="is not a file"):
        read_toml(tmp_path)
    with pytest.raises(ConfigError, match="cannot read config file"):
        read_toml(tmp_path / ("x" * 300))  # a name the OS refuses: too long


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])
def test_utf8_config_file_reads_with_or_without_a_byte_order_mark(tmp_path, encoding):
    path = tmp_path / "good.toml"
    path.write_text('[model]\nlatent_dim = 3\n[train]\nnote = "café"\n', encoding=encoding)
    assert read_toml(path) == {"latent_dim": 3, "note": "café"}


def test_config_file_too_large_to_be_one_is_refused(tmp_path):
    path = tmp_path / "huge.toml"
    with open(path, "wb") as fh:
        fh.truncate(MAX_CONFIG_BYTES + 1)  # sparse: no disk space used
    with pytest.raises(ConfigError, match="too large to be a config file"):
        read_toml(path)
