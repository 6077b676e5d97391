"""`zoo compare RUN...`: runs side by side, what differs in their configs and how their training ended.
A thin wrapper over zoo.api.compare; torch is imported only when the command runs."""

from __future__ import annotations

import click
from zoo.cli.app import OUT_FILE, TEXT, cli, echo_json


@cli.command()
@click.argument("runs", nargs=-1, type=TEXT)
@click.option("--sort", "metric", type=TEXT, default=None, metavar="METRIC",
              help="Sort by this metric of the best epoch (val_loss, train_loss, val_bce, ...; test_mse etc. from "
                   "eval.json or a model card). Default: the models' monitored metric, val_loss.")
@click.option("--desc/--asc", default=None,
              help="Sort descending (largest first) or ascending. Default: best first, ascending but for a metric "
                   "better when higher (accuracy, PSNR).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (stdout only).")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV, a row per run (stdout only).")
@click.option("--plot", type=OUT_FILE, default=None, metavar="FILE.png",
              help="Also draw every run's curve of the sort metric against the epoch into one PNG.")
def compare(runs, metric, desc, as_json, as_csv, plot):
    """Compare RUNS: their models, the config keys that differ between them, and their final metrics.

    \b
    RUNS are run folders, globs of folders (quoted: 'runs/vae-*'), catalogued names (iwae-mnist) or hub
    locations (hf://ORG/NAME, file:///PATH). Only their records are read (config.json, metrics.jsonl,
    eval.json, the model card), never the weights.
    Each row shows the best epoch's metrics (the last epoch's where none is marked best), the epochs trained
    and the seconds they took; runs without the sort metric come last. Test metrics come from `zoo eval`
    (for a catalogued name, its evaluation of the whole test split in ./zoo-outputs/NAME/, else the
    published figures: the bundled likelihood models ship their K=1000 evaluation); a run whose test
    figures are of other images than the others' (a --limit look, another split) is noted. Sorted by a test
    metric, the table gives its standard error over the images and,
    for runs evaluated on the same images, a paired difference from the first of them, image by image: far
    more precise than the two standard errors (`zoo eval A --iwae-k 1000`, `zoo eval B --iwae-k 1000`,
    then `zoo compare A B --sort test_nll_iwae_k1000_nats`).

    \b
    zoo compare runs/ae6 runs/ae8 runs/mine
    zoo compare 'runs/vae-*' --sort val_loss --plot vae-curves.png
    zoo compare 'runs/*' --csv > runs.csv
    zoo compare iwae50-mnist piwae-mnist --sort test_nll_iwae_k1000_nats
    """
    from zoo.api import compare as api_compare

    if as_json and as_csv:
        raise click.UsageError("--json and --csv: choose one")
    result = api_compare(list(runs), metric, descending=desc, plot=plot)
    if as_json:
        echo_json(result.to_dict())
    elif as_csv:
        click.echo(result.to_csv(), nl=False)
    else:
        for line in result.table():
            click.echo(line)
    if result.plot:
        click.echo(f"wrote {result.plot}", err=as_json or as_csv)
