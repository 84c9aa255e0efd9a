"""Nearest-neighbour views of memorization and data copying.

These functions compare a model's *samples* (or its log-likelihoods) with the
real data, the tests that the memorization score of van den Burg & Williams
(NeurIPS 2021) is usually set against:

- :func:`nearest_neighbor_ratio`: the paper's ratio, for each training row, of
  the distance to the nearest held-out real sample over the distance to the
  nearest generated sample (large values: the model generates near-copies of
  that row);
- :func:`distance_to_closest_record`: distance from every generated sample to
  its closest training row (DCR), compared with the same distance for
  held-out real rows;
- :func:`data_copying_test`: the three-sample test statistic ``C_T`` of
  Meehan, Chaudhuri & Dasgupta (AISTATS 2020);
- the train/test log-likelihood gap of a fitted density estimator lives in
  :func:`sklearn_mem.metrics.loglik_gap` (still importable from here).

All distances come from :class:`sklearn.neighbors.NearestNeighbors` (memory
``O(chunk_size * n)`` with ``chunk_size`` rows queried at a time) and the
cells of ``C_T`` from :class:`sklearn.cluster.KMeans`.

Every function that takes a ``feature_map`` computes its distances in that
feature space. A fitted transformer is used as it is; an unfitted one is
cloned and fitted on ``X_train`` alone, never on held-out or generated data,
so the representation is that of the training data and the generated samples
cannot shape the space in which they are judged.
"""

import warnings
from numbers import Integral, Real

import numpy as np
from scipy.stats import mannwhitneyu
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import NearestNeighbors
from sklearn.utils import Bunch, check_array
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    StrOptions,
    validate_params,
)
from sklearn.utils.validation import check_is_fitted

from ._validation import _ARRAY, _check_sets

__all__ = [
    "data_copying_test",
    "distance_to_closest_record",
    "nearest_neighbor_ratio",
]

_FEATURE_MAP = [HasMethods(["transform"]), callable, None]
_METRIC = [str, callable]
_CHUNK = [Interval(Integral, 1, None, closed="left"), None]


# ---------------------------------------------------------------------------
# input checks shared by the functions below
# ---------------------------------------------------------------------------


def _fit_feature_map(feature_map, X_train):
    """Return a function mapping an array to the feature space (or identity).

    A fitted transformer is used as it is; an unfitted one is cloned and
    fitted on ``X_train``. A plain callable is applied as it is.
    """
    if feature_map is None:
        return lambda X: X
    if hasattr(feature_map, "transform"):
        try:
            check_is_fitted(feature_map)
            fitted = feature_map
        except NotFittedError:
            fitted = clone(feature_map).fit(X_train)
        func = fitted.transform
    else:
        func = feature_map

    def transform(X):
        Z = func(X)
        return check_array(Z, input_name="feature_map output", dtype="numeric")

    return transform


def _nn_distance(X_ref, X_query, *, metric, chunk_size, n_jobs):
    """Distance from every row of ``X_query`` to its nearest row of ``X_ref``.

    ``chunk_size`` rows of ``X_query`` are searched at a time (memory
    ``O(chunk_size * len(X_ref))`` on the brute-force path); None lets
    scikit-learn's ``working_memory`` choose.
    """
    nn = NearestNeighbors(n_neighbors=1, metric=metric, n_jobs=n_jobs).fit(X_ref)
    n = X_query.shape[0]
    step = n if chunk_size is None else chunk_size
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, step):
        stop = min(start + step, n)
        dist, _ = nn.kneighbors(X_query[start:stop], n_neighbors=1)
        out[start:stop] = dist[:, 0]
    return out


# ---------------------------------------------------------------------------
# nearest-neighbour ratio (van den Burg & Williams, 2021)
# ---------------------------------------------------------------------------


@validate_params(
    {
        "X_train": _ARRAY,
        "X_heldout": _ARRAY,
        "X_generated": _ARRAY,
        "feature_map": _FEATURE_MAP,
        "metric": _METRIC,
        "chunk_size": _CHUNK,
        "n_jobs": [Integral, None],
        "return_distances": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def nearest_neighbor_ratio(
    X_train,
    X_heldout,
    X_generated,
    *,
    feature_map=None,
    metric="euclidean",
    chunk_size=None,
    n_jobs=None,
    return_distances=False,
):
    """Nearest-neighbour ratio of every training sample.

    For each training row ``x_i`` (van den Burg & Williams, 2021)::

        rho_i = d(x_i, nearest held-out real sample)
                / d(x_i, nearest generated sample)

    A large ``rho_i`` means the model generates samples much closer to
    ``x_i`` than fresh real data comes: a sign that ``x_i`` is memorized.
    Every row gets its own minimum over the whole held-out and generated
    sets (the paper's reference code took the first row of each batch).

    Parameters
    ----------
    X_train : array-like of shape (n_train, n_features)
        Training samples, the rows that get a ratio.
    X_heldout : array-like of shape (n_heldout, n_features)
        Real samples the model was not trained on.
    X_generated : array-like of shape (n_generated, n_features)
        Samples drawn from the model.
    feature_map : transformer, callable or None, default=None
        Representation in which distances are measured, e.g. a
        :class:`~sklearn.decomposition.PCA` or a downsampler. A fitted
        transformer is used as it is; an unfitted one is cloned and fitted on
        ``X_train`` only. A callable is applied to each set as it is. None
        measures distances on the raw features.
    metric : str or callable, default="euclidean"
        Distance metric, as for :class:`~sklearn.neighbors.NearestNeighbors`.
    chunk_size : int or None, default=None
        Number of training rows searched at a time, which bounds memory by
        ``O(chunk_size * max(n_heldout, n_generated))``. None lets
        scikit-learn choose by its ``working_memory`` setting.
    n_jobs : int or None, default=None
        Parallel jobs for the neighbour search, as for
        :class:`~sklearn.neighbors.NearestNeighbors`.
    return_distances : bool, default=False
        Whether to return both distances as well as the ratio.

    Returns
    -------
    ratio : ndarray of shape (n_train,)
        ``rho_i``. ``+inf`` where a generated sample coincides with ``x_i``
        but no held-out sample does; NaN where both coincide with it (0 / 0,
        counted in a warning).
    result : Bunch
        Only when ``return_distances=True``, instead of ``ratio``: a Bunch
        with ``ratio``, ``heldout_distance`` and ``generated_distance``, each
        of shape (n_train,).

    See Also
    --------
    distance_to_closest_record : Distances from generated samples to the
        training set.
    data_copying_test : The three-sample data-copying test.

    References
    ----------
    G. J. J. van den Burg and C. K. I. Williams, "On Memorization in
    Probabilistic Deep Generative Models", NeurIPS 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mem.neighbors import nearest_neighbor_ratio
    >>> X_train = np.array([[0.0], [10.0]])
    >>> X_heldout = np.array([[1.0], [12.0]])
    >>> X_generated = np.array([[-0.5], [20.0]])
    >>> nearest_neighbor_ratio(X_train, X_heldout, X_generated)
    array([2. , 0.2])
    """
    X_train, X_heldout, X_generated = _check_sets(
        X_train=(X_train, "Pass the training samples."),
        X_heldout=(X_heldout, "Pass real samples the model was not trained on."),
        X_generated=(X_generated, "Draw samples from the model (e.g. sample(n))."),
    )
    fmap = _fit_feature_map(feature_map, X_train)
    Z_train, Z_heldout, Z_generated = fmap(X_train), fmap(X_heldout), fmap(X_generated)
    kw = dict(metric=metric, chunk_size=chunk_size, n_jobs=n_jobs)
    d_heldout = _nn_distance(Z_heldout, Z_train, **kw)
    d_generated = _nn_distance(Z_generated, Z_train, **kw)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = d_heldout / d_generated
    n_nan = int(np.isnan(ratio).sum())
    if n_nan:
        warnings.warn(
            f"{n_nan} of {ratio.shape[0]} training samples coincide with both a "
            "held-out and a generated sample (0 / 0), so their ratio is NaN. "
            "Remove duplicated rows between the training and held-out sets.",
            UserWarning,
            stacklevel=2,
        )
    if return_distances:
        return Bunch(
            ratio=ratio, heldout_distance=d_heldout, generated_distance=d_generated
        )
    return ratio


# ---------------------------------------------------------------------------
# distance to closest record
# ---------------------------------------------------------------------------


@validate_params(
    {
        "X_train": _ARRAY,
        "X_generated": _ARRAY,
        "X_heldout": ["array-like", None],
        "feature_map": _FEATURE_MAP,
        "metric": _METRIC,
        "chunk_size": _CHUNK,
        "n_jobs": [Integral, None],
    },
    prefer_skip_nested_validation=True,
)
def distance_to_closest_record(
    X_train,
    X_generated,
    X_heldout=None,
    *,
    feature_map=None,
    metric="euclidean",
    chunk_size=None,
    n_jobs=None,
):
    """Distance to closest record (DCR) of generated and held-out samples.

    The DCR of a sample is its distance to the nearest training row. A model
    that copies its training data produces generated samples with smaller
    DCRs than real samples it never saw; the held-out rows' DCRs are that
    reference.

    Parameters
    ----------
    X_train : array-like of shape (n_train, n_features)
        Training samples (the "records").
    X_generated : array-like of shape (n_generated, n_features)
        Samples drawn from the model.
    X_heldout : array-like of shape (n_heldout, n_features), default=None
        Real samples the model was not trained on, the reference. None
        computes the generated samples' DCRs only.
    feature_map : transformer, callable or None, default=None
        Representation in which distances are measured; a fitted transformer
        is used as it is, an unfitted one is cloned and fitted on ``X_train``.
    metric : str or callable, default="euclidean"
        Distance metric, as for :class:`~sklearn.neighbors.NearestNeighbors`.
    chunk_size : int or None, default=None
        Number of query rows searched at a time (memory
        ``O(chunk_size * n_train)``); None lets scikit-learn choose.
    n_jobs : int or None, default=None
        Parallel jobs for the neighbour search.

    Returns
    -------
    result : Bunch
        - ``generated_dcr``: ndarray of shape (n_generated,), each generated
          sample's distance to its nearest training row.
        - ``heldout_dcr``: ndarray of shape (n_heldout,), the same for the
          held-out rows, or None.
        - ``generated_median``, ``heldout_median``: medians of the two
          (``heldout_median`` is None without ``X_heldout``).
        - ``n_exact_copies``: number of generated samples at distance 0 from a
          training row.
        - ``prob_generated_closer``: the probability that a random generated
          sample is closer to the training set than a random held-out row,
          ties counting one half (the Mann-Whitney ``U`` of the generated DCRs
          against the held-out DCRs, divided by ``n_generated * n_heldout``).
          About 0.5 when generated samples are as far from the training data
          as fresh real data; towards 1 when the model copies. None without
          ``X_heldout``.

    See Also
    --------
    nearest_neighbor_ratio : The per-training-sample ratio.
    data_copying_test : A cell-wise test built on the same distances.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mem.neighbors import distance_to_closest_record
    >>> X_train = np.array([[0.0], [10.0]])
    >>> X_generated = np.array([[0.0], [9.0]])
    >>> X_heldout = np.array([[2.0], [13.0]])
    >>> res = distance_to_closest_record(X_train, X_generated, X_heldout)
    >>> res.generated_dcr
    array([0., 1.])
    >>> res.heldout_dcr
    array([2., 3.])
    >>> res.n_exact_copies, res.prob_generated_closer
    (1, 1.0)
    """
    X_train, X_generated, X_heldout = _check_sets(
        X_train=(X_train, "Pass the training samples."),
        X_generated=(X_generated, "Draw samples from the model (e.g. sample(n))."),
        X_heldout=(
            X_heldout,
            "Pass real samples the model was not trained on, or None.",
        ),
    )
    fmap = _fit_feature_map(feature_map, X_train)
    Z_train = fmap(X_train)
    kw = dict(metric=metric, chunk_size=chunk_size, n_jobs=n_jobs)
    gen = _nn_distance(Z_train, fmap(X_generated), **kw)
    result = Bunch(
        generated_dcr=gen,
        heldout_dcr=None,
        generated_median=float(np.median(gen)),
        heldout_median=None,
        n_exact_copies=int(np.sum(gen == 0)),
        prob_generated_closer=None,
    )
    if X_heldout is not None:
        held = _nn_distance(Z_train, fmap(X_heldout), **kw)
        # U of the generated DCRs: pairs with generated > held-out (+1/2 ties).
        u_gen = mannwhitneyu(gen, held, method="asymptotic").statistic
        result.heldout_dcr = held
        result.heldout_median = float(np.median(held))
        result.prob_generated_closer = float(1.0 - u_gen / (gen.size * held.size))
    return result


# ---------------------------------------------------------------------------
# data-copying test C_T (Meehan, Chaudhuri & Dasgupta, 2020)
# ---------------------------------------------------------------------------


def _z_u(d_test, d_generated, continuity=0.0):
    """Z-scored Mann-Whitney U of generated vs test distances.

    ``U`` counts the (generated, test) pairs in which the generated sample is
    farther from the training data than the test sample (ties count 1/2), and
    is standardised under the null by its mean ``m n / 2`` and standard
    deviation ``sqrt(m n (m + n + 1) / 12)``; ``continuity`` is subtracted
    from the mean (0: no correction; the authors' code uses 0.5). Negative:
    generated samples are closer than test samples.
    """
    m, n = d_generated.size, d_test.size
    u = float(mannwhitneyu(d_generated, d_test, method="asymptotic").statistic)
    z = (u - (m * n / 2.0 - continuity)) / np.sqrt(m * n * (m + n + 1) / 12.0)
    return u, z


@validate_params(
    {
        "X_train": _ARRAY,
        "X_test": _ARRAY,
        "X_generated": _ARRAY,
        "n_cells": [Interval(Integral, 1, None, closed="left")],
        "min_generated_per_cell": [Interval(Integral, 1, None, closed="left")],
        "feature_map": _FEATURE_MAP,
        "random_state": ["random_state"],
        "convention": [StrOptions({"sklearn_mem", "authors"})],
        "tau": [Interval(Real, 0, 1, closed="left"), None],
    },
    prefer_skip_nested_validation=True,
)
def data_copying_test(
    X_train,
    X_test,
    X_generated,
    *,
    n_cells=10,
    min_generated_per_cell=20,
    feature_map=None,
    random_state=None,
    convention="sklearn_mem",
    tau=None,
):
    """Three-sample data-copying test statistic ``C_T``.

    The test of Meehan, Chaudhuri & Dasgupta (2020). The instance space is
    split into ``n_cells`` cells by :class:`~sklearn.cluster.KMeans` fitted
    on the training data; test and generated samples go to the cell of their
    nearest centre. In each cell ``l``, the Euclidean distance of every test
    and every generated sample to its nearest *training sample of that cell*
    is computed, and the Mann-Whitney ``U`` of the generated distances
    against the test distances is z-scored::

        U_l = #{(g, t): d(g) > d(t)} + #{(g, t): d(g) = d(t)} / 2
        Z_l = (U_l - m_l n_l / 2) / sqrt(m_l n_l (m_l + n_l + 1) / 12)

    with ``m_l`` generated and ``n_l`` test samples in the cell. The
    statistic averages ``Z_l`` over the kept cells (the paper's ``Pi_tau``),
    weighted by the fraction of test samples in each cell ``pi_l``::

        C_T = sum_{l in Pi_tau} pi_l Z_l / sum_{l in Pi_tau} pi_l

    Two conventions (``convention``):

    - ``"sklearn_mem"`` (default): ``Z_l`` as above, without continuity
      correction, and a cell is kept when it holds *at least*
      ``min_generated_per_cell`` generated samples;
    - ``"authors"``: the convention of Meehan et al.'s published code, which
      reproduces their numbers: ``Z_l`` subtracts a continuity correction of
      0.5 from the mean, ``(U_l - (m_l n_l / 2 - 0.5)) / sd``, and a cell is
      kept when its share of generated samples is *more than* ``tau``
      (strictly). ``tau`` defaults to ``min_generated_per_cell /
      n_generated``, so a cell with exactly ``min_generated_per_cell``
      generated samples is kept by the default convention and left out by
      the authors'.

    ``C_T << 0`` means data copying (generated samples are closer to the
    training data than test samples are); ``C_T >> 0`` means underfitting;
    about 0 is what a model that neither copies nor underfits gives.

    Parameters
    ----------
    X_train : array-like of shape (n_train, n_features)
        Training samples of the model; also what the cells are fitted on.
    X_test : array-like of shape (n_test, n_features)
        Real samples the model was not trained on.
    X_generated : array-like of shape (n_generated, n_features)
        Samples drawn from the model.
    n_cells : int, default=10
        Number of cells (k-means clusters of the training data).
    min_generated_per_cell : int, default=20
        Cells with fewer generated samples are left out of ``C_T``, as in the
        paper (its ``tau``); a z-score from a handful of samples is noise.
    feature_map : transformer, callable or None, default=None
        Representation in which cells and distances are computed (the paper
        uses an embedding for images); a fitted transformer is used as it is,
        an unfitted one is cloned and fitted on ``X_train``.
    random_state : int, RandomState instance or None, default=None
        Seed of the k-means clustering.
    convention : {"sklearn_mem", "authors"}, default="sklearn_mem"
        How ``Z_l`` is standardised and which cells are kept; see above.
    tau : float in [0, 1) or None, default=None
        With ``convention="authors"``: the share of generated samples a cell
        must exceed to be kept (None: ``min_generated_per_cell /
        n_generated``). Only for the authors' convention.

    Returns
    -------
    result : Bunch
        - ``statistic``: float, ``C_T``.
        - ``z_scores``: ndarray of shape (n_cells,), ``Z_l`` for every cell
          with at least one test, generated and training sample (NaN
          otherwise), whether it counts in ``C_T`` or not.
        - ``u_statistics``: ndarray of shape (n_cells,), ``U_l`` (NaN where
          undefined).
        - ``test_fraction``: ndarray of shape (n_cells,), ``pi_l``.
        - ``generated_fraction``: ndarray of shape (n_cells,).
        - ``n_train``, ``n_test``, ``n_generated``: per-cell counts.
        - ``kept``: bool ndarray of shape (n_cells,), the cells in ``Pi_tau``
          (enough generated samples and at least one test sample).
        - ``kmeans``: the fitted :class:`~sklearn.cluster.KMeans`.

    Raises
    ------
    ValueError
        If no cell has at least ``min_generated_per_cell`` generated samples
        and a test sample, or if there are fewer training samples than cells.

    See Also
    --------
    distance_to_closest_record : The same distances without the cells.

    References
    ----------
    C. Meehan, K. Chaudhuri and S. Dasgupta, "A Non-Parametric Test to Detect
    Data-Copying in Generative Models", AISTATS 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mem.neighbors import data_copying_test
    >>> rng = np.random.RandomState(0)
    >>> X_train = rng.normal(size=(200, 2))
    >>> X_test = rng.normal(size=(200, 2))
    >>> copies = X_train[rng.randint(200, size=200)] + 1e-3
    >>> res = data_copying_test(X_train, X_test, copies, n_cells=3,
    ...                         random_state=0)
    >>> bool(res.statistic < -5)
    True
    >>> fresh = rng.normal(size=(200, 2))
    >>> res = data_copying_test(X_train, X_test, fresh, n_cells=3,
    ...                         random_state=0)
    >>> bool(abs(res.statistic) < 3)
    True
    """
    X_train, X_test, X_generated = _check_sets(
        X_train=(X_train, "Pass the training samples."),
        X_test=(X_test, "Pass real samples the model was not trained on."),
        X_generated=(X_generated, "Draw samples from the model (e.g. sample(n))."),
    )
    if X_train.shape[0] < n_cells:
        raise ValueError(
            f"n_cells={n_cells} cells need at least as many training samples, "
            f"got {X_train.shape[0]}. Lower n_cells."
        )
    fmap = _fit_feature_map(feature_map, X_train)
    Z_train, Z_test, Z_gen = fmap(X_train), fmap(X_test), fmap(X_generated)

    if tau is not None and convention != "authors":
        raise ValueError(
            "tau belongs to the authors' convention: pass convention='authors' "
            "with it, or use min_generated_per_cell."
        )
    continuity = 0.5 if convention == "authors" else 0.0
    kmeans = KMeans(n_clusters=n_cells, n_init=10, random_state=random_state)
    cell_train = kmeans.fit(Z_train).labels_
    cell_test = kmeans.predict(Z_test)
    cell_gen = kmeans.predict(Z_gen)

    n_train = np.bincount(cell_train, minlength=n_cells)
    n_test = np.bincount(cell_test, minlength=n_cells)
    n_gen = np.bincount(cell_gen, minlength=n_cells)
    z_scores = np.full(n_cells, np.nan)
    u_stats = np.full(n_cells, np.nan)
    for cell in range(n_cells):
        if min(n_train[cell], n_test[cell], n_gen[cell]) == 0:
            continue
        # Distances to the nearest training sample *of the same cell*.
        T = Z_train[cell_train == cell]
        kw = dict(metric="euclidean", chunk_size=None, n_jobs=None)
        d_test = _nn_distance(T, Z_test[cell_test == cell], **kw)
        d_gen = _nn_distance(T, Z_gen[cell_gen == cell], **kw)
        u_stats[cell], z_scores[cell] = _z_u(d_test, d_gen, continuity)

    if convention == "authors":
        m = X_generated.shape[0]
        enough = n_gen / m > (min_generated_per_cell / m if tau is None else tau)
    else:
        enough = n_gen >= min_generated_per_cell
    kept = enough & (n_test > 0) & (n_train > 0)
    if not kept.any():
        raise ValueError(
            (
                f"No cell has a share of generated samples above tau={tau!r}"
                if convention == "authors"
                else "No cell has at least min_generated_per_cell="
                f"{min_generated_per_cell} generated samples"
            )
            + " and a test sample, so C_T is undefined. Generated "
            f"samples per cell: {n_gen.tolist()}; test samples per cell: "
            f"{n_test.tolist()}. Draw more generated samples, lower n_cells "
            "or lower min_generated_per_cell."
        )
    pi = n_test / X_test.shape[0]
    statistic = float(np.sum(pi[kept] * z_scores[kept]) / np.sum(pi[kept]))
    return Bunch(
        statistic=statistic,
        z_scores=z_scores,
        u_statistics=u_stats,
        test_fraction=pi,
        generated_fraction=n_gen / X_generated.shape[0],
        n_train=n_train,
        n_test=n_test,
        n_generated=n_gen,
        kept=kept,
        kmeans=kmeans,
    )


# ---------------------------------------------------------------------------
# train/test log-likelihood gap
# ---------------------------------------------------------------------------


def __getattr__(name):
    # loglik_gap moved to sklearn_mem.metrics; still importable from here
    if name == "loglik_gap":
        from .metrics import loglik_gap

        return loglik_gap
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
