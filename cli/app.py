"""The `zoo` command group and what every command module shares: the types of its names and paths,
the group that turns zoo's and the operating system's errors into one clean message, and the reading
of --set assignments. The command modules (main, analysis, hub, search) import this; nothing here
imports them."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import sys

import click

from zoo.runs.config import SEED_MAX, TrainConfig, default_of, fields_of


class Count(click.IntRange):
    """A whole number within bounds, named as one in messages ("'abc' is not a valid whole number", where
    click's own says "integer range")."""
    name = "whole number"


# Every command's --seed: what torch, numpy and scikit-learn all accept.
SEED = Count(0, SEED_MAX)


def _refuse_empty(kind: click.ParamType, value, param, ctx) -> None:
    """An empty value would silently mean the default (--preset "", --device "") or the working directory
    (pathlib reads "" as "."): refuse it."""
    if isinstance(value, str) and not value.strip():
        kind.fail("an empty value names nothing", param, ctx)


class Text(click.ParamType):
    """A name or a value in words that is not empty (a model, a run, a preset, a device, a noise, ...)."""

    name = "text"

    def convert(self, value, param, ctx):
        _refuse_empty(self, value, param, ctx)
        return value


class ZooPath(click.Path):
    """click.Path that refuses an empty name and, for what zoo writes, anything already there that is
    neither a regular file nor a folder (zoo writes by renaming a finished file into place, which would
    replace a device such as /dev/null, a FIFO or a socket) and a name with a control character."""

    def __init__(self, *, output: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.output = output

    def convert(self, value, param, ctx):
        _refuse_empty(self, value, param, ctx)
        if isinstance(value, str) and value.startswith("~"):  # --out=~/x and a quoted "~/x": no shell expands it
            value = os.path.expanduser(value)
        path = super().convert(value, param, ctx)
        if self.output and os.path.lexists(path) and not (os.path.isfile(path) or os.path.isdir(path)):
            self.fail(f"{path} exists and is not a regular file; zoo writes only files and folders", param, ctx)
        if self.output and any(ord(c) < 32 or ord(c) == 127 for c in str(path)):  # a newline, a tab, an escape
            self.fail(f"{str(path)!r} holds a control character: every message naming it would be garbled",
                      param, ctx)
        return path


# The types of every command's names and paths (the other command modules use them too).
TEXT = Text()
DEVICE_HELP = "auto (the default: CUDA, else MPS, else the CPU), cpu, cuda, cuda:N or mps."
IN_FILE = ZooPath(dir_okay=False)
IN_FOLDER = ZooPath(file_okay=False)
IN_PATH = ZooPath()
OUT_FILE = ZooPath(dir_okay=False, output=True)
OUT_FOLDER = ZooPath(file_okay=False, output=True)

# The help of options several commands share.
SPLIT_HELP = "Which split of the run's data set: train, val (the validation images held out of training) or test."
DATA_DIR_HELP = ("Where the data set's files are (default: where RUN found them; for a run trained on a folder of "
                 "images: where that folder is now).")


def train_default(key: str) -> object:
    """zoo's default of a training key (TrainConfig's), which a model's train_defaults or a preset may change."""
    return next(default_of(f) for f in fields_of(TrainConfig) if f.name == key)


def training_default(key: str, what: str) -> str:
    """An option's help for a training key whose default is the preset's or the model's (a GAN's lr is not a
    ConvAE's): `what` it is, then zoo's default, which most models keep."""
    return f"{what} Default: the preset's, else the model's (`zoo info MODEL`; {train_default(key)} for most)."


DATASET_HELP = training_default("dataset", "mnist, fashion-mnist, kmnist, digits or folder:PATH (a preset named for "
                                           "a data set, such as convae-mnist, holds it).")

# Errors only a write can cause: the message says "cannot write" even when the OS names no file.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


_STOPPED_BY: list[int] = []  # the SIGTERM or SIGHUP that stopped the command (see stop_like_ctrl_c)
INTERRUPTED = 130             # 128 + SIGINT: Ctrl-C's exit code


def stop_like_ctrl_c() -> None:
    """SIGTERM (`kill`, `timeout`, a job scheduler) and SIGHUP (a closed terminal) stop a command as Ctrl-C
    does, instead of ending the process where it stands: a training keeps its finished epochs and says so,
    an evaluation saves its progress, a search stores its trials. The exit code is then 128 + the signal's
    number, as a shell reports a process the signal ended. A second one ends the process at once."""
    def stop(signum, frame):
        _STOPPED_BY.append(signum)
        signal.signal(signum, signal.SIG_DFL)
        raise KeyboardInterrupt

    for name in ("SIGTERM", "SIGHUP"):  # Windows has no SIGHUP
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), stop)


def _exit_code(code: int) -> int:
    """Ctrl-C's code, or the code of the signal that stopped the command as Ctrl-C does."""
    return 128 + _STOPPED_BY[0] if code == INTERRUPTED and _STOPPED_BY else code


def _fail(ctx: click.Context, error) -> None:
    """Print a ZooError as one "Error:" line (and its hint) on stderr and exit with its code."""
    say(error)
    ctx.exit(_exit_code(error.exit_code))


def say(error) -> None:
    """A ZooError as one "Error:" line (and its hint) on stderr."""
    click.secho(f"Error: {error.message}", err=True, fg="red")
    if error.hint:
        click.echo(error.hint, err=True)


def os_error(e: OSError):
    """An OSError no command worded itself, as a StorageError: the path, why, and what to do. One of the standard
    output (`zoo list > /dev/full`: it names no file) says so; the output then goes to /dev/null, so that the last
    flush at exit does not fail on it again."""
    from zoo.errors import storage_error

    if e.filename is None and _writing_stdout(e):
        e.filename = "the standard output"
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return storage_error(e, "cannot write" if e.errno in _WRITE_ERRNOS else "")


def _writing_stdout(e: OSError) -> bool:
    """Whether `e` was raised printing to the standard output: click.echo (not err=True) or zoo.console.to_stdout
    is where it was raised (Python drops what failed to be written, so a second flush cannot tell)."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    code, names = tb.tb_frame.f_code, tb.tb_frame.f_locals
    return code.co_name == "to_stdout" or (code.co_name == "echo" and names.get("err") is False
                                           and getattr(names.get("file"), "name", None) == "<stdout>")


def _discard_output() -> None:
    """Point stdout and stderr at /dev/null, so the interpreter's last flush at exit does not fail on the closed
    pipe (a training's log lines go to stderr: `zoo train ... 2>&1 | head -2`)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        except (OSError, ValueError, AttributeError):  # not a real file (a test's captured output)
            pass


class ZooGroup(click.Group):
    """Turns zoo's errors, and the operating system's (a full disk, a file-size limit, a read-only
    folder), into one clean message and an exit code instead of a traceback."""

    def invoke(self, ctx):
        from zoo.errors import Interrupted, ZooError, out_of_memory

        try:
            return super().invoke(ctx)
        except click.NoSuchOption as e:  # --latent-dim: a config key, which --set gives (it suggested --data-dir)
            key = e.option_name.lstrip("-").replace("-", "_")
            from zoo.runs.config import is_config_key

            command = e.ctx.command if e.ctx is not None else None
            takes_set = command is not None and any("--set" in getattr(p, "opts", ()) for p in command.params)
            if e.option_name.startswith("--") and is_config_key(key) and takes_set:
                e.message = f"No such option: {e.option_name}; {key} is a config key: --set {key}=VALUE gives it"
                e.possibilities = None
            elif e.option_name.startswith("--") and is_config_key(key) and command is not None:
                spread = " (the spread of codes around a class mean is --spread F)" if key == "noise" else ""
                e.message = (f"No such option: {e.option_name}; {key} is a config key, which a trained run keeps as "
                             f"it was trained: zoo {command.name} takes none{spread} (zoo train, cv, search and "
                             "finetune set them with --set)")
                e.possibilities = None
            elif any(e.option_name in p.opts for p in self.params):  # zoo's own (--threads): before the command
                own = next(p for p in self.params if e.option_name in p.opts)
                given = f"zoo {e.option_name}" if getattr(own, "is_flag", False) or own.name == "version" else \
                    f"zoo {e.option_name} N {ctx.invoked_subcommand} ..."
                e.message = (f"No such option: {e.option_name} of zoo {ctx.invoked_subcommand}; it is zoo's own "
                             f"option, given before the command: {given}")
                e.possibilities = None
            raise
        except click.UsageError as e:  # --set latent_dim 3: the 3 is an extra argument
            _set_in_one_word(e)
            raise
        except ZooError as e:
            _fail(ctx, e)
        except BrokenPipeError:  # the reader went away (`zoo list | head -1`): nothing left to say
            _discard_output()
            ctx.exit(141)  # 128 + SIGPIPE, as a shell reports a process a closed pipe ended
        except OSError as e:  # whatever a command did not word itself: the path, why, and what to do
            _fail(ctx, os_error(e))
        except Interrupted as e:  # what was kept, and how to go on
            _fail(ctx, e)
        except KeyboardInterrupt:
            stopped = f"Stopped by {signal.Signals(_STOPPED_BY[0]).name}." if _STOPPED_BY else "Interrupted."
            click.echo(stopped, err=True)
            ctx.exit(_exit_code(INTERRUPTED))
        except (MemoryError, RuntimeError) as e:  # an allocation that failed, outside training (which says it)
            oom = out_of_memory(e)
            if oom is None:
                raise
            _fail(ctx, oom)


def _set_in_one_word(e: click.UsageError) -> None:
    """Where click found an extra argument after a --set KEY without '=' (`--set latent_dim 3`), say that --set
    takes KEY=VALUE as one word."""
    extra = re.match(r"Got unexpected extra arguments? \((.*)\)$", e.message)
    assignments = (e.ctx.params.get("assignments") if e.ctx is not None else None) or ()
    keys = [a for a in assignments if isinstance(a, str) and "=" not in a]
    if extra and keys:
        value = extra[1].split(" ")[0]
        e.message += (f"; --set takes KEY=VALUE as one word: --set {keys[0]}={value}, not --set {keys[0]} {value}")


def note_preset_dataset(preset: str | None, dataset: str | None) -> None:
    """A preset made for a data set (convae-mnist: mnist) trains on it; a data set given (--dataset, --set) wins,
    and is said to, as the preset's values were chosen for its own."""
    from zoo import registry
    from zoo.data import canonical_dataset_name
    from zoo.errors import ZooError

    if not preset or not dataset:
        return
    try:
        made_for = registry.presets().get(preset, {}).get("config", {}).get("dataset")
    except ZooError:  # a catalogue that cannot be read: the command itself says so
        return
    if isinstance(made_for, str) and canonical_dataset_name(made_for) != canonical_dataset_name(str(dataset)):
        click.echo(f"note: the data set given ({dataset}) wins over preset {preset}'s ({made_for}), which its values "
                   "were chosen for", err=True)


def config_overrides(command: str, assignments, functions, options: dict) -> dict:
    """The config keys a command passes on to the API: its --set KEY=VALUE pairs, then the options given
    (which win, said where they differ). A key that is an argument of those API functions themselves (out,
    resume, progress, ...) is no config key, and passed on it would reach them twice: it is refused."""
    import inspect

    from zoo.runs.config import parse_assignments
    from zoo.errors import ConfigError

    for item in assignments:  # --set latent_dim (its value a word of its own): said how it is written
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got '{item}'",
                              f"--set takes KEY=VALUE as one word: --set {item.strip() or 'KEY'}=VALUE.")
    overrides = parse_assignments(assignments)
    arguments = {name for f in functions for name, p in inspect.signature(f).parameters.items()
                 if p.kind is not p.VAR_KEYWORD} - set(options)
    taken = sorted(set(overrides) & arguments)
    if taken:
        raise ConfigError(f"--set {taken[0]}=...: --set cannot change '{taken[0]}'",
                          f"`zoo {command} --help` lists its options; `zoo info MODEL` lists the config keys.")
    given = {k: v for k, v in options.items() if v is not None}
    ctx = click.get_current_context(silent=True)
    flags = {p.name: p for p in (ctx.command.params if ctx else [])}  # a key's option: loggers is --log
    for key in sorted(k for k in set(overrides) & set(given) if not _same(overrides[k], given[k])):
        option = flags.get(key)
        shown = max(option.opts, key=len) if option is not None else f"--{key.replace('_', '-')}"
        value = "" if option is not None and getattr(option, "is_flag", False) else f" {given[key]}"
        click.echo(f"note: {shown}{value} wins over --set {key}={overrides[key]}", err=True)
    overrides.update(given)
    return overrides


def _same(text: str, value) -> bool:
    """Whether --set's text gives the option's value (1e-3 is 0.001, true is True): then nothing is said."""
    if isinstance(value, bool):
        return text.strip().lower() in (("true", "1", "yes", "on") if value else ("false", "0", "no", "off"))
    try:
        return float(text) == float(value)
    except (TypeError, ValueError):
        return text == str(value)


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="zoo", prog_name="zoo")
@click.option("--threads", type=Count(1, 4096), envvar="ZOO_THREADS", show_envvar=True,
              help="CPU threads torch computes on (default: torch's, one per core). On a machine shared "
                   "with other work, fewer threads than cores is often faster.")
def cli(threads):
    """zoo: a plugin-based model zoo for unsupervised deep learning on images.

    \b
    zoo list                                  installed architectures
    zoo info convae                           hyperparameters and presets
    zoo train convae --dataset mnist --epochs 30 --set latent_dim=6 --out runs/ae6
    zoo train --resume runs/ae6               continue after Ctrl-C or a crash
    zoo eval runs/ae6                         test MSE, BCE, PSNR
    zoo reconstruct runs/ae6 --n 16 --out recon.png
    """
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":  # no-color.org; a terminal without colours
        click.get_current_context().color = False  # the commands' contexts inherit it: click.echo strips styles
    if threads is not None:
        import torch  # only here: `zoo --help` and `zoo list` stay quick

        torch.set_num_threads(threads)
        os.environ["ZOO_THREADS"] = str(threads)  # a search's worker processes compute on as many


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))
