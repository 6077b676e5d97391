"""The pictures a run folder gets while it trains, as a training callback: a grid of what the model
does every `plot_every` epochs (RUN/progress/), and at the end the loss curves (loss.png) and the best
epoch's reconstructions or samples."""

from __future__ import annotations

from zoo.analysis import plots
from zoo.runs import checkpoint as ckpt
from zoo.training.callbacks import Callback


class Pictures(Callback):
    name = "pictures"
    description = "progress grids every plot_every epochs; loss curves and a picture of the best epoch at the end"
    keys = ("plot_every",)

    def __init__(self, every: int):
        self.every = every

    @classmethod
    def from_config(cls, train) -> "Pictures":
        return cls(train.plot_every)  # always on: plot_every 0 leaves out only the progress grids

    def on_epoch_end(self, trainer, epoch: int, record) -> None:
        last = epoch == trainer.train.epochs
        if trainer.run_dir and self.every and (epoch % self.every == 0 or last):
            plots.preview(trainer.model, trainer.data.test_x[:16],
                          trainer.run_dir / "progress" / f"epoch_{epoch:04d}.png", title=f"epoch {epoch}")

    def on_train_end(self, trainer) -> None:
        if not trainer.run_dir:
            return
        model = trainer.model
        plots.loss_curves(trainer.history, trainer.run_dir / "loss.png", title=f"{model.name} on {trainer.data.name}")
        name = "reconstructions.png" if model.can("reconstruct") else "samples.png"
        weights = trainer.run_dir / ckpt.WEIGHTS  # the best epoch's, which the model holds again now
        plots.preview(model, trainer.data.test_x[:16], trainer.run_dir / name,
                      title=f"{model.name}, best epoch {trainer.state['best_epoch']}",
                      weights=ckpt.weights_digest(weights) if weights.is_file() else None)
