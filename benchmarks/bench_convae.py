"""Training speed of zoo against the reference reports' loop, same model, same optimizer, one run.

    python benchmarks/bench_convae.py                      # CPU defaults: 3 timed epochs each
    python benchmarks/bench_convae.py --device cuda --epochs 30 --latent 6
    python benchmarks/bench_convae.py --device cuda --variant eager: --variant graph:cuda_graph=true
    python benchmarks/bench_convae.py --rounds 7 --variant plain:plot_every=1 \
        --variant tensorboard:loggers=tensorboard,plot_every=1

The reference loop is what the reports wrote by hand: torchvision.datasets.MNIST + ToTensor +
DataLoader(batch 256, shuffle=True), the model and Adam stepped per batch. zoo trains the same
lab-basic ConvAE (preset convae-lab) with its engine: the data set on the device as uint8, batches by
indexing. Both train on the same number of images per epoch (zoo's train split, 54,000).
Prints images/s and seconds per epoch (medians) for both, their ratio, and zoo's test MSE. Each
`--variant NAME:key=value,...` trains zoo once more with those settings (e.g. cuda_graph=true), in the
same run, for a side-by-side table.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import zoo
from zoo.data import sources


def reference_root(tmp: Path, data_dir: str | None) -> Path:
    """Lay the MNIST files out as torchvision expects: <root>/MNIST/raw/<name> (not gzipped)."""
    files = sources.locate(sources.SETS["mnist"], data_dir, download=False)
    raw = tmp / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for path in files.values():
        target = raw / path.name.removesuffix(".gz")
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return tmp


def reference_loop(root: Path, model, epochs: int, n_train: int, device: torch.device, workers: int):
    """The reports' training loop, timed per epoch (training only)."""
    from torchvision import datasets, transforms

    full = datasets.MNIST(str(root), train=True, download=False, transform=transforms.ToTensor())
    train_set, _ = torch.utils.data.random_split(full, [n_train, len(full) - n_train],
                                                 generator=torch.Generator().manual_seed(0))
    loader = torch.utils.data.DataLoader(train_set, batch_size=256, shuffle=True, num_workers=workers,
                                         pin_memory=device.type == "cuda")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    times = []
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        for x, _ in loader:
            x = x.to(device)
            loss = F.mse_loss(model.reconstruct(x), x)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def pythae_loop(images: torch.Tensor, epochs: int, latent: int, device: torch.device, out: Path):
    """pythae's trainer (BaseTrainer.train_step: its DataLoader over a tensor data set, a loss.item() per
    batch) on the same ConvAE, wrapped in pythae's encoder / decoder classes; timed per epoch, without
    its progress bar (zoo's runs here have none either)."""
    from pythae.data.datasets import BaseDataset
    from pythae.models import AE, AEConfig
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
    from pythae_nets import wrap

    torch.manual_seed(0)
    net = zoo.create("convae", latent_dim=latent)
    encoder, decoder = wrap(net.encoder, net.decoder, variational=False)
    model = AE(AEConfig(input_dim=tuple(images.shape[1:]), latent_dim=latent), encoder=encoder, decoder=decoder)
    config = BaseTrainerConfig(output_dir=str(out), num_epochs=epochs, learning_rate=1e-3,
                               per_device_train_batch_size=256, per_device_eval_batch_size=256,
                               optimizer_cls="Adam", optimizer_params={"weight_decay": 1e-5},
                               no_cuda=device.type != "cuda")
    trainer = BaseTrainer(model, train_dataset=BaseDataset(images, torch.zeros(len(images))), training_config=config)
    trainer.prepare_training()
    handler = trainer.callback_handler
    handler.callbacks = [c for c in handler.callbacks if type(c).__name__ != "ProgressBarCallback"]
    times = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        trainer.train_step(epoch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=3, help="epochs zoo trains (test MSE is after these)")
    ap.add_argument("--ref-epochs", type=int, default=3, help="epochs of the reference loop")
    ap.add_argument("--latent", type=int, default=4, help="latent size (the lab preset has 4)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers of the reference loop")
    ap.add_argument("--set", dest="assignments", action="append", default=[], help="extra zoo config key=value")
    ap.add_argument("--pythae", action="store_true", help="also time pythae's trainer on the same net (needs pythae)")
    ap.add_argument("--variant", dest="variants", action="append", default=[],
                    help="NAME:key=value,... a zoo run with these settings (repeatable; default: one run, 'zoo')")
    ap.add_argument("--rounds", type=int, default=1,
                    help="train every variant this many times, in alternating order (a noisy machine's drift "
                         "falls on all of them); prints each variant's median against the first, round by round")
    args = ap.parse_args()

    from zoo.runs.config import parse_assignments
    from zoo.device import pick_device

    device = pick_device(args.device)
    extra = parse_assignments(args.assignments)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = reference_root(tmp / "ref", args.data_dir)
        torch.manual_seed(0)
        ref_model = zoo.create("convae", latent_dim=args.latent).to(device)
        n_train = 54_000
        ref_times = reference_loop(root, ref_model, args.ref_epochs, n_train, device, args.workers)
        pythae_times = None
        if args.pythae:
            data = zoo.load_dataset("mnist", data_dir=args.data_dir or None)
            images = data.train_x[:n_train].float().div(255.0)
            pythae_times = pythae_loop(images, args.ref_epochs, args.latent, device, tmp / "pythae")

        variants = [v.partition(":") for v in args.variants] or [("zoo", ":", "")]
        runs: dict[str, list[tuple[list[float], dict, float]]] = {name: [] for name, _, _ in variants}
        for round_ in range(args.rounds):
            for name, _, settings in (variants if round_ % 2 == 0 else variants[::-1]):
                overrides = {**extra, **parse_assignments([a for a in settings.split(",") if a])}
                try:
                    result = zoo.train("convae", preset="convae-lab", dataset="mnist", data_dir=args.data_dir or "",
                                       epochs=args.epochs, latent_dim=args.latent, device=str(device),
                                       out=tmp / f"zoo-{name}-{round_}", progress=False, log=lambda m: None,
                                       **overrides)
                except Exception as e:  # one failing variant must not cost the others' figures
                    print(f"variant {name} failed: {type(e).__name__}: {e}", flush=True)
                    continue
                # the first epoch holds one-off costs (cuDNN autotuning, graph recording, compiling): medians
                # leave it out
                times = [r["seconds"] for r in result.history]
                logging = sum(result.logging_seconds.values()) / max(len(times), 1)  # --log: its time per epoch
                runs[name].append((times, zoo.evaluate(result.run_dir, save=False)["metrics"], logging))

    def summary(times):
        times = times[1:] if len(times) > 2 else times
        med = statistics.median(times)
        return med, n_train / med

    ref_s, ref_ips = summary(ref_times)
    print(f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"model: convae-lab, latent {args.latent}, batch 256, Adam 1e-3, {n_train} training images an epoch")
    print(f"{'loop':<12} {'epochs':>6} {'s/epoch':>9} {'images/s':>10} {'vs ref':>7} {'test MSE':>9} "
          f"{'logging s/epoch':>16}")
    print(f"{'reference':<12} {len(ref_times):>6} {ref_s:>9.3f} {ref_ips:>10,.0f} {1:>6.2f}x {'':>9}")
    if pythae_times:
        s, ips = summary(pythae_times)
        print(f"{'pythae':<12} {len(pythae_times):>6} {s:>9.3f} {ips:>10,.0f} {ips / ref_ips:>6.2f}x {'':>9}")
    first = next((name for name, _, _ in variants if len(runs[name]) == args.rounds), None)
    for name, done in runs.items():
        if not done:
            continue
        s = statistics.median(summary(times)[0] for times, _, _ in done)  # the median of the runs' medians
        ips = n_train / s
        logging = statistics.median(log for _, _, log in done)
        cost = f"{logging:.3f} ({logging / s:.1%})" if logging else ""
        epochs = sum(len(times) for times, _, _ in done)
        print(f"{name:<12} {epochs:>6} {s:>9.3f} {ips:>10,.0f} {ips / ref_ips:>6.2f}x {done[-1][1]['mse']:>9.4f} "
              f"{cost:>16}")
    if args.rounds > 1 and first is not None:
        for name, done in runs.items():
            if name != first and len(done) == args.rounds:
                ratios = [summary(a[0])[0] / summary(b[0])[0] for a, b in zip(done, runs[first])]
                print(f"{name} against {first}, round by round: median {statistics.median(ratios):.3f}x "
                      f"(rounds: {', '.join(f'{r:.3f}' for r in ratios)})")
    print("s/epoch and images/s: medians over the epochs, without the first when there are 3 or more"
          + (f"; with --rounds, the median of the {args.rounds} runs' medians" if args.rounds > 1 else ""))
    print("logging s/epoch: the time loggers (--variant NAME:loggers=tensorboard) took, per epoch, opening and "
          "closing included, and its share of the median epoch")


if __name__ == "__main__":
    main()
