"""The representation space: layer codes, their t-SNE embedding, and nearest neighbours.

"fc7: a 4096-dimensional code for an image (layer immediately before the classifier); collect the
code for many images" and embed them in 2-D with t-SNE (van der Maaten & Hinton 2008), so that
images with close codes land close together (lecture 13, slides 18-20). Nearest neighbours of a
query in feature space find images of the same class that are far apart in pixel space
(Krizhevsky et al. 2012; FIT3181 week 6 "last layer: nearest neighbours").
"""

from __future__ import annotations

import inspect
from typing import NamedTuple

import numpy as np

from visualization._model import all_layers, find_layer
from visualization.activations import layer_outputs

_PASS_THROUGH = ("Dropout", "AlphaDropout", "GaussianDropout", "GaussianNoise",
                 "ActivityRegularization", "Activation", "Softmax", "InputLayer")


class Neighbours(NamedTuple):
    """``indices`` ``(Q, k)`` into the database and L2 ``distances`` ``(Q, k)``, nearest first."""

    indices: np.ndarray
    distances: np.ndarray


class NeighbourComparison(NamedTuple):
    """Nearest neighbours of the same queries in pixel space and in feature space."""

    pixel: Neighbours
    feature: Neighbours
    layer_name: str


def code_layer_name(model) -> str:
    """Name of the layer before the classifier: the input of the last ``Dense`` layer.

    Trailing softmax/activation layers and dropout/noise layers in between are skipped, so for
    ``... -> fc7 -> Dropout -> Dense(1000) -> Softmax`` the answer is ``"fc7"``.

    Raises:
        ValueError: the model has no ``Dense`` classifier with a layer before it.
    """
    layers = [layer for layer in all_layers(model) if not hasattr(layer, "layers")]
    kinds = [type(layer).__name__ for layer in layers]
    dense = [i for i, kind in enumerate(kinds) if kind == "Dense"]
    if dense:
        before = [i for i in range(dense[-1]) if kinds[i] not in _PASS_THROUGH]
        if before:
            return layers[before[-1]].name
    raise ValueError(f"layer_name is needed: no layer before a Dense classifier found among "
                     f"{[layer.name for layer in layers]}")


def layer_codes(model, images, layer_name: str | None = None, *,
                batch_size: int = 256) -> np.ndarray:
    """``phi(x)``: the code of each image at a layer, flattened to a vector.

    Args:
        model: Keras model.
        images: ``(N, H, W, C)``.
        layer_name: default the layer before the classifier (:func:`code_layer_name`).
        batch_size: images per forward pass.

    Returns:
        float32 array ``(N, D)``; a spatial output ``(H', W', K)`` is flattened row-major.
    """
    name = code_layer_name(model) if layer_name is None else layer_name
    outputs = layer_outputs(model, images, name, batch_size=batch_size)
    return outputs.reshape(len(outputs), -1)


def tsne_embedding(codes, *, perplexity: float = 30.0, seed: int = 0,
                   max_iter: int = 1000) -> np.ndarray:
    """2-D t-SNE embedding of codes (scikit-learn's Barnes-Hut ``TSNE``).

    t-SNE matches ``p_ij`` (Gaussian affinities of the codes, bandwidth set per point so that the
    perplexity ``2^H(P_i)`` is ``perplexity``) with ``q_ij ~ (1 + ||y_i - y_j||^2)^-1`` in the
    plane by minimising ``KL(P || Q)``: locally, pairwise distances are kept.

    The perplexity is an effective number of neighbours and must stay below the number of points:
    it is clipped to ``(n - 1) / 3`` (scikit-learn looks at ``3 * perplexity`` neighbours).
    The optimisation runs on one OpenMP thread (see the comment in the code).

    Args:
        codes: ``(n, D)`` with ``n >= 4``; higher-rank arrays are flattened per row.
        perplexity: > 0.
        seed: seed of the PCA-initialised optimisation; same seed, same embedding.
        max_iter: optimisation steps, >= 250.

    Returns:
        float32 array ``(n, 2)``.
    """
    x = _as_rows(codes, "codes")
    if len(x) < 4:
        raise ValueError(f"codes must hold at least 4 points for t-SNE, got shape {x.shape}")
    if isinstance(perplexity, bool) or not isinstance(perplexity, (int, float, np.number)) \
            or not perplexity > 0:
        raise ValueError(f"perplexity must be a positive number, got {perplexity!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 250:
        raise ValueError(f"max_iter must be an int >= 250, got {max_iter!r}")
    from sklearn.manifold import TSNE

    steps = "max_iter" if "max_iter" in inspect.signature(TSNE).parameters else "n_iter"  # <1.5
    tsne = TSNE(n_components=2, perplexity=min(float(perplexity), (len(x) - 1) / 3.0),
                init="pca", random_state=seed, **{steps: int(max_iter)})
    from threadpoolctl import threadpool_limits  # a dependency of scikit-learn

    # One OpenMP thread: on a busy 2-core machine the spin-waiting of more threads made the
    # Barnes-Hut gradient ~8x slower (450 points: 6 s against 48 s at load 6.6).
    with threadpool_limits(limits=1):
        return tsne.fit_transform(x.astype(np.float64)).astype(np.float32)


def nearest_neighbours(queries, database, k: int = 5) -> Neighbours:
    """The ``k`` database items closest to each query in L2 distance.

    ``d(q, x) = ||q - x||_2 = sqrt(||q||^2 - 2 q.x + ||x||^2)``, on flattened rows, so the same
    function serves pixel space (images ``(N, H, W, C)``) and feature space (codes ``(N, D)``).
    Ties keep database order.

    Args:
        queries: ``(Q, ...)``.
        database: ``(N, ...)`` with the same trailing size as ``queries``.
        k: neighbours per query, in ``[1, N]``.

    Returns:
        :class:`Neighbours` ``(indices (Q, k) int64, distances (Q, k) float32)``, nearest first.
    """
    q, db = _as_rows(queries, "queries"), _as_rows(database, "database")
    if q.shape[1] != db.shape[1]:
        raise ValueError(f"queries and database must have the same size per item, got shapes "
                         f"{np.shape(queries)} and {np.shape(database)}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {k!r}")
    if not 1 <= k <= len(db):
        raise ValueError(f"k must be in [1, {len(db)}] (the database size), got {k!r}")
    q, db = q.astype(np.float64), db.astype(np.float64)
    squared = (q ** 2).sum(1)[:, None] - 2.0 * q @ db.T + (db ** 2).sum(1)[None, :]
    distances = np.sqrt(np.maximum(squared, 0.0))
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return Neighbours(order.astype(np.int64),
                      np.take_along_axis(distances, order, axis=1).astype(np.float32))


def compare_neighbours(model, queries, database, k: int = 5, *, layer_name: str | None = None,
                       batch_size: int = 256) -> NeighbourComparison:
    """Nearest neighbours of query images in pixel space against in feature space.

    Args:
        model: Keras model.
        queries: images ``(Q, H, W, C)``.
        database: images ``(N, H, W, C)``.
        k: neighbours per query, in ``[1, N]``.
        layer_name: the feature layer, default the layer before the classifier.
        batch_size: images per forward pass.

    Returns:
        :class:`NeighbourComparison` with ``pixel`` and ``feature`` :class:`Neighbours`.
    """
    name = code_layer_name(model) if layer_name is None else find_layer(model, layer_name).name
    pixel = nearest_neighbours(queries, database, k)
    feature = nearest_neighbours(layer_codes(model, queries, name, batch_size=batch_size),
                                 layer_codes(model, database, name, batch_size=batch_size), k)
    return NeighbourComparison(pixel, feature, name)


def _as_rows(values, name: str) -> np.ndarray:
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a numeric array, got {type(values).__name__}") from err
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"{name} must have shape (n, ...) with n >= 1 items, got shape "
                         f"{x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite, got NaN or infinite values")
    return x.reshape(len(x), -1)
