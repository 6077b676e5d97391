"""`zoo latent`, `zoo manifold`, `zoo interpolate`: pictures of a run's latent space.
Thin wrappers over zoo.analysis; torch is imported only when a command runs."""

from __future__ import annotations

import click

from zoo.cli.main import IN_FOLDER, OUT_FILE, SEED, TEXT, cli


@cli.command()
@click.argument("run", type=TEXT)
@click.option("--method", "-m", type=TEXT, default="pca", show_default=True,
              help="pca or tsne (a 2-D latent is plotted as it is).")
@click.option("--n", default=5000, show_default=True, type=click.IntRange(1, 1_000_000),
              help="How many test images (the first N).")
@click.option("--out", "-o", type=OUT_FILE,
              help="PNG to write (default RUN/latent-METHOD.png); the coordinates go beside it as .csv.")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "val", "test"]))
@click.option("--seed", default=0, show_default=True, type=SEED, help="Seed of PCA / t-SNE.")
@click.option("--data-dir", type=IN_FOLDER)
@click.option("--device", type=TEXT, default=None)
def latent(run, method, n, out, split, seed, data_dir, device):
    """A 2-D scatter of RUN's codes of test images, coloured by class (PNG + CSV)."""
    from zoo.analysis import latent_scatter

    r = latent_scatter(run, method=method, n=n, out=out, split=split, seed=seed, data_dir=data_dir, device=device)
    how = "the 2-D latent as it is" if r.method == "as-is" and r.latent_dim == 2 else \
        "the 1-D latent against the class" if r.method == "as-is" else f"{r.method} ({r.seconds:.1f} s)"
    click.echo(f"{len(r.labels)} {split} codes ({r.latent_dim}-D), {how}")
    click.echo(f"wrote {r.png} and {r.csv}")


@cli.command()
@click.argument("run", type=TEXT)
@click.option("--steps", default=15, show_default=True, type=click.IntRange(2, 100), help="Grid points per axis.")
@click.option("--out", "-o", type=OUT_FILE, help="PNG to write (default RUN/manifold.png).")
@click.option("--data-dir", type=IN_FOLDER)
@click.option("--device", type=TEXT, default=None)
def manifold(run, steps, out, data_dir, device):
    """Decode a regular 2-D grid of codes: prior quantiles (VAE), the 2-D latent, or two principal directions."""
    from zoo.analysis import manifold as api_manifold

    r = api_manifold(run, steps=steps, out=out, data_dir=data_dir, device=device)
    over = {"prior": "the prior's quantiles", "latent": "the latent (range of the test codes)",
            "pca": "the first two principal directions of the test codes"}[r.kind]
    click.echo(f"decoded a {r.latents.shape[0]}×{r.latents.shape[1]} grid over {over}")
    click.echo(f"wrote {r.png}")


@cli.command()
@click.argument("run", type=TEXT)
@click.option("--from", "start", type=TEXT, required=True, help="A class (index or name) or a test image #INDEX.")
@click.option("--to", "end", type=TEXT, required=True, help="A class (index or name) or a test image #INDEX.")
@click.option("--steps", default=10, show_default=True, type=click.IntRange(2, 200), help="Images along the line.")
@click.option("--out", "-o", type=OUT_FILE, help="PNG to write (default RUN/interpolation.png).")
@click.option("--data-dir", type=IN_FOLDER)
@click.option("--device", type=TEXT, default=None)
def interpolate(run, start, end, steps, out, data_dir, device):
    """Decode along the line between two class means or two test images' codes."""
    from zoo.analysis import interpolate as api_interpolate

    r = api_interpolate(run, start, end, steps=steps, out=out, data_dir=data_dir, device=device)
    click.echo(f"{steps} steps from {r.start.label.replace(chr(10), ' ')} to {r.end.label.replace(chr(10), ' ')}")
    click.echo(f"wrote {r.png}")
