"""k-NN manifold metrics: precision/recall (Kynkaanniemi et al. 2019), density/coverage (Naeem et
al. 2020).

Each sample's manifold is a ball reaching its k-th nearest neighbour in its own set. Distances are
computed in row blocks against the whole other set, so memory is block_rows x n floats: with
50,000 samples per set the 50,000 x 50,000 matrix never exists.

Ball boundaries follow each paper's own code: precision and recall count a point on the boundary
as inside (<=, Kynkaanniemi et al.'s code), density and coverage count it as outside (<, Naeem et
al.'s code, published as prdc), so fakes that are exact copies of the reals have density 1.

Distances are exact in effect: the |x|^2 + |y|^2 - 2 x.y shortcut (one matrix product per block)
runs on both sets shifted by the mean of the set compared against, so its round-off scales with
the spread and not with the mean (features + 1e6 lose nothing), and every comparison that the
remaining round-off could still decide (a distance within its error bound of a radius, as for
copies) is redone on directly computed distances.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from ganctl.errors import UserError
from ganctl.metrics import checks

# Bytes for one block of float64 distances; the arithmetic around it holds a few such blocks.
BLOCK_BYTES = 64 * 2**20


def block_rows_for(num_columns: int, block_bytes: int = BLOCK_BYTES) -> int:
    """Rows per block so one float64 distance block stays within block_bytes."""
    return max(1, block_bytes // (8 * max(1, num_columns)))


@dataclasses.dataclass
class DistanceBlock:
    """Squared distances from a block of rows to every column point, with their round-off bound."""

    rows: slice                 # which rows of the row set this block holds
    squared: np.ndarray         # (rows, columns) squared distances from the shortcut
    error: np.ndarray           # (rows, 1): |squared - exact| is at most this in each row
    row_points: np.ndarray      # the caller's arrays, for recomputing distances directly
    column_points: np.ndarray

    def exact(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Directly computed squared distances from block rows i to columns j (index arrays)."""
        difference = (np.asarray(self.row_points[self.rows.start + i], np.float64)
                      - np.asarray(self.column_points[j], np.float64))
        return (difference * difference).sum(axis=1)

    def within(self, radii: np.ndarray, strict: bool) -> np.ndarray:
        """Boolean (rows, columns): squared distance < radii (strict) or <= radii (broadcast)."""
        radii = np.broadcast_to(radii, self.squared.shape)
        gap = self.squared - radii          # a - b < 0 exactly when a < b, in IEEE arithmetic
        inside = gap < 0.0 if strict else gap <= 0.0
        np.abs(gap, out=gap)
        near = gap <= self.error
        if near.any():      # rarely: ties and copies; any() is far cheaper than nonzero()
            i, j = np.nonzero(near)
            exact = self.exact(i, j)
            inside[i, j] = exact < radii[i, j] if strict else exact <= radii[i, j]
        return inside

    def kth_smallest(self, k: int) -> np.ndarray:
        """The exact k-th smallest squared distance of each row (k=0 is the smallest).

        The shortcut's k-th value is within `error` of the exact one, so entries more than twice
        the error below it are surely among the smaller ones; the exact k-th value is found among
        the entries within twice the error, which are recomputed (usually just the one).
        """
        approximate = np.partition(self.squared, k, axis=1)[:, k:k + 1]
        gap = self.squared - approximate
        surely_below = (gap < -2.0 * self.error).sum(axis=1)
        np.abs(gap, out=gap)
        i, j = np.nonzero(gap <= 2.0 * self.error)      # row-major: grouped by row i
        exact = self.exact(i, j)
        order = np.lexsort((exact, i))                  # by row, then by exact distance
        group_starts = np.searchsorted(i[order], np.arange(len(self.squared)))
        return exact[order][group_starts + k - surely_below]


def squared_distance_blocks(rows: np.ndarray, columns: np.ndarray, block_rows: int | None = None,
                            same_set: bool = False) -> Iterator[DistanceBlock]:
    """Yield a DistanceBlock of squared Euclidean distances for each block of rows.

    Both sets are shifted by the columns' mean first: distances do not change, but the shortcut's
    round-off then scales with the points' spread rather than their distance from the origin.
    same_set=True means rows and columns are the same points; the self-distances are then set
    to exactly 0, so round-off can never rank another point before the point itself.
    """
    centred_columns = np.array(columns, np.float64)       # a copy, so centring in place is safe
    centre = centred_columns.mean(axis=0)
    centred_columns -= centre
    column_norms = np.einsum("ij,ij->i", centred_columns, centred_columns)
    # |computed - exact| <= (dim + 5) eps (|x|^2 + |y|^2) for the centring, the two norms, the dot
    # product and the sums (Higham's bound for dot products); doubled as a margin.
    error_per_norm = 2.0 * (centred_columns.shape[1] + 5) * np.finfo(np.float64).eps
    largest_column_norm = column_norms.max(initial=0.0)
    block_rows = block_rows or block_rows_for(len(centred_columns))
    for start in range(0, len(rows), block_rows):
        block = np.asarray(rows[start:start + block_rows], np.float64) - centre
        row_norms = np.einsum("ij,ij->i", block, block)
        distances = row_norms[:, None] + column_norms[None, :]
        distances -= 2.0 * (block @ centred_columns.T)
        np.maximum(distances, 0.0, out=distances)   # round-off can go slightly negative
        if same_set:
            distances[np.arange(len(block)), start + np.arange(len(block))] = 0.0
        error = error_per_norm * (row_norms + largest_column_norm)[:, None]
        yield DistanceBlock(slice(start, start + len(block)), distances, error, rows, columns)


def knn_radii(points: np.ndarray, k: int, block_rows: int | None = None) -> np.ndarray:
    """Squared distance from each point to its k-th nearest neighbour, itself excluded."""
    points = _as_2d(points)
    if len(points) <= k:
        raise UserError(f"k-NN metrics with k={k} need more than {k} samples per set, got "
                        f"{len(points)}. Raise num= "
                        "(ganctl eval num=...; train.eval_num=... in training).")
    radii = np.empty(len(points))
    for block in squared_distance_blocks(points, points, block_rows, same_set=True):
        # Index k of the sorted row: index 0 is the point itself at distance 0.
        radii[block.rows] = block.kth_smallest(k)
    return radii


def precision_recall(real_features: np.ndarray, fake_features: np.ndarray, k: int = 3,
                     block_rows: int | None = None) -> tuple[float, float]:
    """Precision: share of fakes inside the real manifold; recall: of reals inside the fake one.

    A point on a ball's boundary is inside (<=), as in Kynkaanniemi et al.'s code.
    """
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
    for block in squared_distance_blocks(fake, real, block_rows):
        balls_containing += int(block.within(real_radii[None, :], strict=True).sum())
    density = balls_containing / (k * len(fake))
    covered = 0
    for block in squared_distance_blocks(real, fake, block_rows):
        near_a_fake = block.within(real_radii[block.rows, None], strict=True).any(axis=1)
        covered += int(near_a_fake.sum())
    return float(density), covered / len(real)


def _share_inside(queries: np.ndarray, centres: np.ndarray, radii: np.ndarray,
                  block_rows: int | None) -> float:
    """Share of queries within radius (boundary included) of at least one centre."""
    inside = 0
    for block in squared_distance_blocks(queries, centres, block_rows):
        inside += int(block.within(radii[None, :], strict=False).any(axis=1).sum())
    return inside / len(queries)


def _as_2d(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features)
    return features.reshape(len(features), -1)
