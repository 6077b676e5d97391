"""How sensitive classifier-feature FID is to small changes of real images: the MNIST test images, as
they are and slightly noised, blurred or dimmed, against 10,000 training images (features-mnist).

    python benchmarks/fid_sensitivity.py
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.analysis import quality
from zoo.data import load_dataset
from zoo.runs.loading import load


def main() -> None:
    feat = load("features-mnist", device="cpu").model
    data = load_dataset("mnist")
    test, _ = data.split("test")
    train, _ = data.split("train")
    t = test.float() / 255
    reference = quality.embed(feat, train[:10_000])
    gen = torch.Generator().manual_seed(0)
    changed = [("test", t),
               ("test + N(0, 0.05²)", (t + 0.05 * torch.randn(t.shape, generator=gen)).clamp(0, 1)),
               ("test + N(0, 0.1²)", (t + 0.1 * torch.randn(t.shape, generator=gen)).clamp(0, 1)),
               ("test blurred (3×3 box)", F.avg_pool2d(t, 3, 1, 1)),
               ("test strokes × 0.8", t * 0.8)]
    for name, images in changed:
        print(f"{name:<24} FID {quality.frechet_distance(quality.embed(feat, images), reference):7.1f}", flush=True)


if __name__ == "__main__":
    main()
