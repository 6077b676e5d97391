"""The best linear denoiser, for comparison with zoo's DAE: PCA fitted on clean training images,
noisy test images projected onto the first k components, k chosen best on the test set.

    python benchmarks/pca_denoise.py --dataset mnist --sigmas 0.1,0.2,0.3,0.5

Gaussian noise clipped to [0, 1], seeded; prints test MSE against the clean images for each sigma
and the k that reached it.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.decomposition import PCA

import zoo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--sigmas", default="0.1,0.2,0.3,0.5")
    ap.add_argument("--ks", default="5,10,15,20,25,30,40,50,60,80,100,130,160,200")
    args = ap.parse_args()

    data = zoo.load_dataset(args.dataset, data_dir=args.data_dir, val_fraction=0.0)
    train = data.train_x.flatten(1).float().numpy() / 255.0
    test = data.test_x.flatten(1).float().numpy() / 255.0
    ks = [int(k) for k in args.ks.split(",")]
    pca = PCA(n_components=max(ks), random_state=0).fit(train)
    print(f"PCA denoiser on {data.name}: fitted on {len(train)} clean training images, {len(test)} test images")
    print(f"{'sigma':>6} {'noisy MSE':>10} {'best k':>7} {'PCA MSE':>9}")
    for i, sigma in enumerate(float(s) for s in args.sigmas.split(",")):
        gen = torch.Generator().manual_seed(i)
        noisy = (torch.from_numpy(test) + sigma * torch.randn(test.shape, generator=gen)).clamp(0, 1).numpy()
        codes = pca.transform(noisy)
        best = None
        for k in ks:
            recon = codes[:, :k] @ pca.components_[:k] + pca.mean_
            mse = float(((np.clip(recon, 0, 1) - test) ** 2).mean())
            if best is None or mse < best[1]:
                best = (k, mse)
        print(f"{sigma:>6.2f} {float(((noisy - test) ** 2).mean()):>10.4f} {best[0]:>7d} {best[1]:>9.4f}")


if __name__ == "__main__":
    main()
