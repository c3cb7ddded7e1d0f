"""FID/KID/precision/recall between two halves of real data, as one half is blurred or noised.

`python -m ganctl.evaluation.sanity [--features classifier|pixels] [--dataset mnist]` prints the
markdown table the README shows: a metric users can trust is ~0 for real vs real and rises
monotonically with the damage.
"""
from __future__ import annotations

import argparse
import os

import numpy as np
from scipy.ndimage import gaussian_filter

CORRUPTIONS = [("none", 0), ("blur", 0.5), ("blur", 1.0), ("blur", 2.0),
               ("noise", 16), ("noise", 32), ("noise", 64)]


def corrupt(images: np.ndarray, kind: str, amount: float, seed: int = 0) -> np.ndarray:
    """uint8 NHWC images blurred (Gaussian sigma in pixels) or noised (std in grey levels)."""
    x = images.astype(np.float64)
    if kind == "blur" and amount:
        x = gaussian_filter(x, sigma=(0, amount, amount, 0))
    elif kind == "noise" and amount:
        x = x + np.random.default_rng(seed).normal(0, amount, x.shape)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def table(dataset_name: str = "mnist", features: str = "classifier", n: int = 5000,
          seed: int = 0) -> list[dict]:
    from ganctl.core.components import dataset_by_name
    from ganctl.evaluation import evaluate
    from ganctl.metrics.features import build_extractor

    dataset, name = dataset_by_name(dataset_name)
    images = dataset.arrays("test")[0]
    # Random halves: MNIST's test split orders its two writer pools one after the other.
    order = np.random.default_rng(seed).permutation(len(images))
    first, second = images[order[:n]], images[order[n:2 * n]]
    extractor = build_extractor(features, dataset=dataset, dataset_name=name)
    rows = []
    for kind, amount in CORRUPTIONS:
        result = evaluate(corrupt(second, kind, amount, seed), first,
                          ["fid", "kid", "precision_recall"], extractor, seed=seed,
                          kid_subsets=20)
        rows.append({"change": kind if kind == "none" else f"{kind} {amount:g}",
                     **result["metrics"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--features", default="classifier")
    parser.add_argument("--num", type=int, default=5000)
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    rows = table(args.dataset, args.features, args.num)
    print(f"| {args.dataset}, {args.features} features: real half vs | FID | KID | precision | recall |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['change']} | {r['fid']:.2f} | {r['kid']:.3f} | {r['precision']:.2f} | "
              f"{r['recall']:.2f} |")


if __name__ == "__main__":
    main()
