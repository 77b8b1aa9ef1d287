"""Weight clustering (군집화): every weight of a tensor takes one of ``k`` shared values.

The ``k`` values (the *centroids*, together the *codebook*, 코드북) are chosen by k-means in one
dimension: start from some centroids, give each weight the nearest one (``assign_clusters``),
move each centroid to the mean of its weights, repeat (``kmeans``). A clustered tensor is
stored as the codebook plus one ``ceil(log2 k)``-bit index per weight (``packed_bytes``):
16 clusters need 4 bits per weight instead of 32.

tfmot's ``cluster_weights`` can start from the same centroids (``linear_centroids`` is its
``CentroidInitialization.LINEAR``; its default is ``KMEANS_PLUS_PLUS``) and assigns with the
same rule. While it trains, it redoes the assignment on every forward pass
(``ClusterWeights.call``) but moves the centroids by gradient descent, together with the rest
of the model, instead of to the mean of their weights.

Lower squared error is not the goal in itself. Linear centroids leave the rare large weights
a centroid close by, where k-means spends its centroids on the mass of small weights; Han, Mao
and Dally (Deep Compression, 2016, section 3.2) found linear initialisation the most accurate
for that reason.
"""

from __future__ import annotations

import math

import numpy as np

from tutorial_lib.core._validate import as_finite_float32

__all__ = ["linear_centroids", "assign_clusters", "kmeans_step", "kmeans", "cluster",
           "packed_bytes", "bits_per_index", "unique_per_channel"]


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"the number of clusters must be a positive integer (8 or 16 are "
                         f"usual); got {k!r}.")
    return int(k)


def linear_centroids(w, k: int) -> np.ndarray:
    """``k`` float32 centroids evenly spaced from ``min(w)`` to ``max(w)`` (tfmot's LINEAR init).

    >>> linear_centroids([-1.0, 0.2, 3.0], 5).tolist()
    [-1.0, 0.0, 1.0, 2.0, 3.0]
    """
    w = as_finite_float32(w, "w")
    k = _check_k(k)
    return np.linspace(w.min(), w.max(), k, dtype=np.float32)


def assign_clusters(w, centroids, axis: int | None = None) -> np.ndarray:
    """Index (int64) of the nearest centroid for every weight; a tie goes to the lower index.

    This is tfmot's assignment (``tf.argmin(abs(w - c))``), and the first step of k-means. With
    ``axis``, ``centroids`` holds one codebook per slice along it, shape ``(w.shape[axis], k)``
    (tfmot's ``cluster_per_channel=True`` for convolutions).

    >>> assign_clusters([[-0.9, 0.4], [0.5, 2.6]], [-1.0, 0.0, 1.0, 2.0, 3.0]).tolist()
    [[0, 1], [1, 4]]
    >>> assign_clusters([[0.1, 0.9], [0.1, 0.9]], [[0.0, 1.0], [0.5, 2.0]], axis=0).tolist()
    [[0, 1], [0, 0]]
    """
    w = as_finite_float32(w, "w")
    centroids = as_finite_float32(centroids, "centroids")
    if axis is None:
        if centroids.ndim != 1:
            raise ValueError(f"centroids must be a 1-D array (one value per cluster); got shape "
                             f"{centroids.shape}.")
        distance = np.abs(w[..., None].astype(np.float64) - centroids.astype(np.float64))
        return np.argmin(distance, axis=-1).astype(np.int64)
    if isinstance(axis, bool) or not isinstance(axis, int) or not -w.ndim <= axis < w.ndim:
        raise ValueError(f"axis must be None or an integer axis of w (shape {w.shape}); got "
                         f"{axis!r}.")
    if centroids.ndim != 2 or centroids.shape[0] != w.shape[axis]:
        raise ValueError(f"with axis={axis}, centroids must have shape ({w.shape[axis]}, k), one "
                         f"codebook per slice; got shape {centroids.shape}.")
    moved = np.moveaxis(w, axis, 0)
    return np.moveaxis(np.stack([assign_clusters(row, c) for row, c in
                                 zip(moved, centroids, strict=True)]), 0, axis)


def kmeans_step(w, centroids, preserve_zero: bool = True) -> np.ndarray:
    """One step of Lloyd's k-means: the new centroids (float64, in the order given).

    Every weight of ``w`` goes to its nearest centroid (``assign_clusters``: the lower index on
    a tie); each centroid moves to the mean of its weights, and one that no weight chose keeps
    its value. With ``preserve_zero``, a centroid at exactly 0.0 stays there: it holds a pruned
    tensor's zeros, as tfmot's ``preserve_sparsity=True`` keeps them.

    >>> kmeans_step([0.0, 0.0, 0.125, 0.5, 1.0], [0.0, 0.5, 3.0]).tolist()
    [0.0, 0.75, 3.0]
    >>> kmeans_step([0.0, 0.0, 0.125, 0.5, 1.0], [0.0, 0.5, 3.0], preserve_zero=False)[0].item()
    0.041666666666666664
    """
    flat = as_finite_float32(w, "w").ravel().astype(np.float64)
    c = as_finite_float32(centroids, "centroids").astype(np.float64)
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"centroids must be a non-empty 1-D array; got shape {c.shape}.")
    nearest = assign_clusters(flat, c)
    sums = np.bincount(nearest, weights=flat, minlength=c.size)
    counts = np.bincount(nearest, minlength=c.size)
    moved = np.where(counts > 0, sums / np.maximum(counts, 1), c)
    return np.where(c == 0.0, 0.0, moved) if preserve_zero else moved


def kmeans(w, k: int, iterations: int = 30, init=None,
           preserve_zero: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means on the values of ``w``: ``(centroids float32, indices int64)``.

    Starts from ``init`` (default: ``linear_centroids(w, k)``), then repeats ``kmeans_step``
    (assignment, then each centroid to the mean of its weights; an empty cluster keeps its
    value) until nothing moves or ``iterations`` steps are done. ``preserve_zero`` keeps a
    centroid at exactly 0.0 there (give ``init`` one, for a pruned tensor).

    >>> centroids, indices = kmeans([0.0, 0.1, 0.2, 0.9, 1.0], 2)
    >>> [round(float(c), 3) for c in centroids], indices.tolist()
    ([0.1, 0.95], [0, 0, 0, 1, 1])
    """
    w = as_finite_float32(w, "w")
    k = _check_k(k)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"iterations must be an integer >= 0; got {iterations!r}.")
    centroids = linear_centroids(w, k) if init is None else as_finite_float32(init, "init").copy()
    if centroids.shape != (k,):
        raise ValueError(f"init must hold k={k} centroids; got shape {centroids.shape}.")
    for _ in range(iterations):
        updated = kmeans_step(w, centroids, preserve_zero).astype(np.float32)
        if np.array_equal(updated, centroids):
            break
        centroids = updated
    return centroids, assign_clusters(w, centroids)


def cluster(w, k: int, iterations: int = 30) -> np.ndarray:
    """``w`` with each weight replaced by its k-means centroid (float32, at most ``k`` values).

    >>> [round(float(v), 3) for v in cluster([0.0, 0.1, 0.2, 0.9, 1.0], 2)]
    [0.1, 0.1, 0.1, 0.95, 0.95]
    """
    centroids, indices = kmeans(w, k, iterations)
    return centroids[indices]


def bits_per_index(k: int) -> int:
    """Bits that number ``k`` clusters: ``ceil(log2 k)``, at least 1.

    >>> bits_per_index(16), bits_per_index(17), bits_per_index(1)
    (4, 5, 1)
    """
    k = _check_k(k)
    return max(1, math.ceil(math.log2(k)))


def packed_bytes(n_weights: int, k: int, codebook_bits: int = 32) -> int:
    """Bytes of a clustered tensor: ``n_weights`` packed ``ceil(log2 k)``-bit indices plus the
    codebook of ``k`` values of ``codebook_bits`` each, each part rounded up to whole bytes.

    >>> packed_bytes(1024 * 128, 16)  # fc1 of the course CNN: 524,288 bytes in float32
    65600
    """
    if isinstance(n_weights, bool) or not isinstance(n_weights, int | np.integer) or n_weights < 0:
        raise ValueError(f"n_weights must be an integer >= 0; got {n_weights!r}.")
    if isinstance(codebook_bits, bool) or not isinstance(codebook_bits, int) or codebook_bits < 1:
        raise ValueError(f"codebook_bits must be a positive integer (32 for float32); got "
                         f"{codebook_bits!r}.")
    k = _check_k(k)
    return -(-int(n_weights) * bits_per_index(k) // 8) + -(-k * codebook_bits // 8)


def unique_per_channel(w, axis: int) -> np.ndarray:
    """How many distinct values each slice along ``axis`` holds (int64, one per channel).

    A tensor clustered to ``k`` values and then quantized keeps at most ``k`` distinct integers
    in each channel, whether each channel has its own scale (LiteRT's convolutions) or the whole
    tensor shares one (LiteRT's fully connected layers, which then hold at most ``k`` in all).

    >>> unique_per_channel([[1, 1, 2], [3, 3, 3]], axis=0).tolist()
    [2, 1]
    """
    w = np.asarray(w)
    if w.ndim == 0 or isinstance(axis, bool) or not isinstance(axis, int) \
            or not -w.ndim <= axis < w.ndim:
        raise ValueError(f"axis must be an integer axis of w (shape {w.shape}); got {axis!r}.")
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    return np.array([np.unique(row).size for row in moved], dtype=np.int64)
