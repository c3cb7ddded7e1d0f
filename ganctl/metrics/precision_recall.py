"""k-NN manifold metrics: precision/recall (Kynkaanniemi et al. 2019), density/coverage (Naeem et
al. 2020).

Each sample's manifold is a ball reaching its k-th nearest neighbour in its own set. Distances are
computed in row blocks against the whole other set, so memory is block_rows x n floats: with
50,000 samples per set the 50,000 x 50,000 matrix never exists. A point on a ball's boundary
counts as inside for precision and recall (<=, Kynkaanniemi et al.'s code) and outside for
density and coverage (<, Naeem et al.'s code, published as prdc), so fakes that are exact copies
of the reals have density 1.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ganctl.errors import UserError
from ganctl.metrics import checks

# Bytes for one block of float64 distances; the arithmetic around it holds a few such blocks.
BLOCK_BYTES = 64 * 2**20


def block_rows_for(num_columns: int, block_bytes: int = BLOCK_BYTES) -> int:
    """Rows per block so one float64 distance block stays within block_bytes."""
    return max(1, block_bytes // (8 * max(1, num_columns)))


def squared_distance_blocks(rows: np.ndarray, columns: np.ndarray, block_rows: int | None = None,
                            same_set: bool = False) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield (row slice, squared Euclidean distances of those rows to every column point).

    same_set=True means rows and columns are the same points; the self-distances are then set
    to exactly 0, so round-off can never rank another point before the point itself.
    """
    columns = np.asarray(columns, np.float64)
    column_norms = np.einsum("ij,ij->i", columns, columns)
    block_rows = block_rows or block_rows_for(len(columns))
    for start in range(0, len(rows), block_rows):
        block = np.asarray(rows[start:start + block_rows], np.float64)
        distances = np.einsum("ij,ij->i", block, block)[:, None] + column_norms[None, :]
        distances -= 2.0 * (block @ columns.T)
        np.maximum(distances, 0.0, out=distances)   # round-off can go slightly negative
        if same_set:
            distances[np.arange(len(block)), start + np.arange(len(block))] = 0.0
        yield slice(start, start + len(block)), distances


def knn_radii(points: np.ndarray, k: int, block_rows: int | None = None) -> np.ndarray:
    """Squared distance from each point to its k-th nearest neighbour, itself excluded."""
    points = _as_2d(points)
    if len(points) <= k:
        raise UserError(f"k-NN metrics with k={k} need more than {k} samples per set, got "
                        f"{len(points)}. Raise eval.num.")
    radii = np.empty(len(points))
    for rows, distances in squared_distance_blocks(points, points, block_rows, same_set=True):
        # Index k of the sorted row: index 0 is the point itself at distance 0.
        radii[rows] = np.partition(distances, k, axis=1)[:, k]
    return radii


def precision_recall(real_features: np.ndarray, fake_features: np.ndarray, k: int = 3,
                     block_rows: int | None = None) -> tuple[float, float]:
    """Precision: share of fakes inside the real manifold; recall: of reals inside the fake one."""
    real, fake = checks.feature_pair(real_features, fake_features, "Precision/recall")
    precision = _share_inside(fake, real, knn_radii(real, k, block_rows), block_rows)
    recall = _share_inside(real, fake, knn_radii(fake, k, block_rows), block_rows)
    return precision, recall


def density_coverage(real_features: np.ndarray, fake_features: np.ndarray, k: int = 5,
                     block_rows: int | None = None) -> tuple[float, float]:
    """Density: real balls containing each fake, / k, averaged (about 1 for matching sets, can
    exceed 1). Coverage: share of real balls containing at least one fake. Only real radii are
    used, which makes both robust to fake outliers (Naeem et al. 2020). A point on a ball's
    boundary is outside (<), as in the authors' code (prdc)."""
    real, fake = checks.feature_pair(real_features, fake_features, "Density/coverage")
    real_radii = knn_radii(real, k, block_rows)
    balls_containing = 0
    for _, distances in squared_distance_blocks(fake, real, block_rows):
        balls_containing += int((distances < real_radii[None, :]).sum())
    density = balls_containing / (k * len(fake))
    covered = 0
    for rows, distances in squared_distance_blocks(real, fake, block_rows):
        covered += int((distances.min(axis=1) < real_radii[rows]).sum())
    return float(density), covered / len(real)


def _share_inside(queries: np.ndarray, centres: np.ndarray, radii: np.ndarray,
                  block_rows: int | None) -> float:
    """Share of queries within radius (boundary included) of at least one centre."""
    inside = 0
    for _, distances in squared_distance_blocks(queries, centres, block_rows):
        inside += int((distances <= radii[None, :]).any(axis=1).sum())
    return inside / len(queries)


def _as_2d(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features)
    return features.reshape(len(features), -1)
