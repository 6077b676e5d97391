"""`zoo latent`, `zoo manifold`, `zoo interpolate`: pictures of a run's latent space.
Thin wrappers over zoo.analysis.latent, .manifold and .interpolation; torch is imported only when a command runs."""

from __future__ import annotations

import click
from zoo.cli.app import DATA_DIR_HELP, DEVICE_HELP, IN_FOLDER, OUT_FILE, SEED, SPLIT_HELP, TEXT, Count, cli


@cli.command()
@click.argument("run", type=TEXT)
@click.option("--method", "-m", type=TEXT, default="pca", show_default=True,
              help="pca or tsne (a 2-D latent is plotted as it is).")
@click.option("--n", default=5000, show_default=True, type=Count(1, 1_000_000),
              help="How many test images (the first N).")
@click.option("--out", "-o", type=OUT_FILE,
              help="PNG to write (default RUN/latent-METHOD.png, or RUN/latent.png for a latent of 1 or 2 "
                   "dimensions, which is plotted as it is; -SPLIT before .png for --split train or val: "
                   "RUN/latent-pca-train.png); the coordinates go beside it as .csv.")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "val", "test"]),
              help=SPLIT_HELP)
@click.option("--seed", default=0, show_default=True, type=SEED,
              help="t-SNE's start: 0 its codes' principal components, another seed random positions drawn with it "
                   "(to see which clusters stay). PCA is exact: no seed changes it.")
@click.option("--data-dir", type=IN_FOLDER, help=DATA_DIR_HELP)
@click.option("--device", type=TEXT, default=None, help=DEVICE_HELP)
@click.option("--log", "loggers", type=TEXT, default=None, metavar="NAME",
              help="Also write the codes with their labels and images for a logger's viewer: tensorboard "
                   "(its Projector; `tensorboard --logdir` the folder printed).")
def latent(run, method, n, out, split, seed, data_dir, device, loggers):
    """A 2-D scatter of RUN's codes of test images, coloured by class (PNG + CSV)."""
    from zoo.analysis.latent import METHODS, latent_scatter

    r = latent_scatter(run, method=method, n=n, out=out, split=split, seed=seed, data_dir=data_dir, device=device,
                       loggers=loggers)
    if r.method == "as-is":
        against = " against the class" if r.latent_dim == 1 else ""
        click.echo(f"{len(r.labels)} {split} codes ({r.latent_dim}-D) plotted as they are{against}: the codes are "
                   f"already {r.latent_dim}-D, so the {METHODS[r.requested]} projection was skipped")
    else:
        click.echo(f"{len(r.labels)} {split} codes ({r.latent_dim}-D), {r.method} ({r.seconds:.1f} s)")
    if r.codes_note:
        click.echo(f"note: {r.codes_note}")
    click.echo(f"wrote {r.png} and {r.csv}")
    for folder in r.logged:
        click.echo(f"wrote the codes with their labels and images for the embedding viewer in {folder}")


@cli.command()
@click.argument("run", type=TEXT)
@click.option("--steps", default=15, show_default=True, type=Count(2, 100), help="Grid points per axis.")
@click.option("--dims", type=TEXT, default=None,
              help="The two latent dimensions to sweep, e.g. 3,7 (default: a VAE's two most active; a 2-D "
                   "latent's own; the principal directions of a larger latent).")
@click.option("--out", "-o", type=OUT_FILE, help="PNG to write (default RUN/manifold.png).")
@click.option("--data-dir", type=IN_FOLDER, help=DATA_DIR_HELP)
@click.option("--device", type=TEXT, default=None, help=DEVICE_HELP)
def manifold(run, steps, dims, out, data_dir, device):
    """Decode a regular 2-D grid of codes: a VAE's prior quantiles, or the central 90% of the test codes.

    The grid runs along two latent dimensions (for a VAE by default the two most active: whose posterior
    means vary most over the test images), or the first two principal directions of a larger latent."""
    from zoo.analysis.manifold import manifold as api_manifold

    r = api_manifold(run, steps=steps, dims=dims, out=out, data_dir=data_dir, device=device)
    for line in r.summary() + ([f"note: {r.codes_note}"] if r.codes_note else []):
        click.echo(line)
    click.echo(f"wrote {r.png}")


@cli.command()
@click.argument("run", type=TEXT)
@click.option("--from", "start", type=TEXT, required=True, help="A class (index or name) or a test image #INDEX.")
@click.option("--to", "end", type=TEXT, required=True, help="A class (index or name) or a test image #INDEX.")
@click.option("--steps", default=10, show_default=True, type=Count(2, 200), help="Images along the line.")
@click.option("--out", "-o", type=OUT_FILE, help="PNG to write (default RUN/interpolation.png).")
@click.option("--data-dir", type=IN_FOLDER, help=DATA_DIR_HELP)
@click.option("--device", type=TEXT, default=None, help=DEVICE_HELP)
def interpolate(run, start, end, steps, out, data_dir, device):
    """Decode along the line between two class means or two test images' codes."""
    from zoo.analysis.interpolation import interpolate as api_interpolate

    r = api_interpolate(run, start, end, steps=steps, out=out, data_dir=data_dir, device=device)
    click.echo(f"{steps} steps from {r.start.label.replace(chr(10), ' ')} to {r.end.label.replace(chr(10), ' ')}")
    if r.codes_note:
        click.echo(f"note: {r.codes_note}")
    click.echo(f"wrote {r.png}")
