"""Metrics and model-selection scorers that read a fitted MemorizationScorer.

- :func:`membership_auc`: the LOSS membership-inference attack's ROC AUC from
  the "in" and "out" log-likelihoods of the cross-validation fits;
- :func:`make_memorization_scorer`: scorers for
  :class:`~sklearn.model_selection.GridSearchCV` and
  :func:`~sklearn.model_selection.cross_validate` that summarise the
  memorization scores of the training part (a high quantile, the mean, the
  fraction above a threshold);
- :func:`heldout_loglik_scorer`: the mean held-out log-likelihood, the usual
  partner of a memorization scorer in a multi-metric search.

Nothing here refits: everything is read from the fitted attributes
``loglik_``, ``in_mask_`` and ``memorization_scores_``.
"""

import warnings
from numbers import Real

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.pipeline import Pipeline
from sklearn.utils import Bunch
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    StrOptions,
    validate_params,
)
from sklearn.utils.metadata_routing import MetadataRequest
from sklearn.utils.validation import check_is_fitted

from ._aggregate import MemorizationWarning
from ._folds import check_loglik_row
from ._validation import _ARRAY, _check_sets

__all__ = [
    "heldout_loglik_scorer",
    "loglik_gap",
    "make_memorization_scorer",
    "membership_auc",
]


def _unwrap_memorization_scorer(estimator, attributes, caller):
    """Return the fitted MemorizationScorer inside ``estimator``.

    ``estimator`` may be a MemorizationScorer or a Pipeline whose last step is
    one. Duck-typed on the fitted ``attributes`` so that any object holding
    them (e.g. a stand-in in tests) works.
    """
    est = estimator
    if isinstance(est, Pipeline):
        est = est.steps[-1][1]
    if all(hasattr(est, a) for a in attributes):
        return est
    name = type(est).__name__
    if name == "MemorizationScorer":
        for attribute in attributes:
            if hasattr(est, "store_loglik_"):
                # fitted without keeping loglik_ / in_mask_: its own message
                getattr(est, attribute)
        raise NotFittedError(
            f"{caller} reads the fitted attributes {', '.join(attributes)} of a "
            "MemorizationScorer, but this one is not fitted. Call fit(X) first "
            "(GridSearchCV and cross_validate do that for you)."
        )
    where = (
        f"a Pipeline whose last step is a {name}"
        if est is not estimator
        else f"a {name}"
    )
    raise TypeError(
        f"{caller} needs a fitted MemorizationScorer (or a Pipeline whose last "
        f"step is one), got {where} without the attributes "
        f"{', '.join(attributes)}. Wrap the density estimator: "
        f"MemorizationScorer({name}(...)).fit(X), and pass that."
    )


# ---------------------------------------------------------------------------
# membership inference
# ---------------------------------------------------------------------------


@validate_params(
    {
        "scorer": "no_validation",
        "loglik": ["array-like", None],
        "in_mask": ["array-like", None],
        "return_curve": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def membership_auc(scorer=None, *, loglik=None, in_mask=None, return_curve=False):
    """ROC AUC of the LOSS membership-inference attack on the fold fits.

    Every cross-validation fit ``k`` and sample ``i`` form one attack case:
    the attacker's score is ``log p_k(x_i)`` (higher: "x_i was a member"),
    the truth is whether ``x_i`` was in fit ``k``'s training part. The AUC
    is taken over all ``(k, i)`` pairs together, so it is the probability
    that a random member pair gets a higher log-likelihood than a random
    non-member pair (ties count one half). 0.5: the fits do not tell members
    from non-members; 1: every member is more likely than every non-member.

    ``-inf`` log-likelihoods (zero density) are valid scores that rank below
    every finite one (and tie with each other); ``+inf`` ranks above. NaN
    entries are left out with a warning.

    Parameters
    ----------
    scorer : MemorizationScorer or Pipeline, default=None
        A fitted MemorizationScorer (or a Pipeline ending in one); its
        ``loglik_`` and ``in_mask_`` are used. Give either this or both
        ``loglik`` and ``in_mask``.
    loglik : array-like of shape (n_fits, n_samples), default=None
        ``log p_k(x_i)`` for every fit ``k`` and sample ``i``.
    in_mask : array-like of bool, shape (n_fits, n_samples), default=None
        True where sample ``i`` was in fit ``k``'s training part.
    return_curve : bool, default=False
        Whether to return the ROC curve as well.

    Returns
    -------
    auc : float
        The attack's ROC AUC.
    result : Bunch
        Only when ``return_curve=True``, instead of ``auc``: ``auc``, ``fpr``,
        ``tpr``, ``thresholds`` (log-likelihood thresholds, as from
        :func:`sklearn.metrics.roc_curve`; the first is ``+inf``), ``n_in`` and
        ``n_out`` (numbers of member and non-member pairs used).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mem.metrics import membership_auc
    >>> loglik = np.array([[-1.0, -3.0, -np.inf],
    ...                    [-2.0, -0.5, -4.0]])
    >>> in_mask = np.array([[True, False, False],
    ...                     [False, True, True]])
    >>> membership_auc(loglik=loglik, in_mask=in_mask)
    0.7777...
    """
    if scorer is not None:
        if loglik is not None or in_mask is not None:
            raise ValueError(
                "Pass either a fitted MemorizationScorer or loglik and in_mask, "
                "not both."
            )
        est = _unwrap_memorization_scorer(
            scorer, ("loglik_", "in_mask_"), "membership_auc"
        )
        loglik, in_mask = est.loglik_, est.in_mask_
    elif loglik is None or in_mask is None:
        raise ValueError(
            "membership_auc needs a fitted MemorizationScorer, or both loglik "
            "and in_mask arrays of shape (n_fits, n_samples); got "
            f"loglik={'None' if loglik is None else 'an array'} and "
            f"in_mask={'None' if in_mask is None else 'an array'}."
        )
    loglik = np.asarray(loglik, dtype=np.float64)
    in_mask = np.asarray(in_mask)
    if in_mask.dtype != bool:
        if not np.isin(in_mask, (0, 1)).all():
            raise ValueError(
                "in_mask must be boolean (True where the sample was in the fit's "
                "training part)."
            )
        in_mask = in_mask.astype(bool)
    if loglik.ndim != 2 or loglik.shape != in_mask.shape:
        raise ValueError(
            "loglik and in_mask must be 2-D arrays of the same shape "
            f"(n_fits, n_samples); got {loglik.shape} and {in_mask.shape}."
        )
    scores, labels = loglik.ravel(), in_mask.ravel()
    nan = np.isnan(scores)
    if nan.any():
        warnings.warn(
            f"{int(nan.sum())} of {scores.size} (fit, sample) log-likelihoods are "
            "NaN and are left out of the membership AUC.",
            MemorizationWarning,
            stacklevel=2,
        )
        scores, labels = scores[~nan], labels[~nan]
    n_in = int(labels.sum())
    n_out = int(labels.size - n_in)
    if n_in == 0 or n_out == 0:
        raise ValueError(
            f"The membership AUC needs both member and non-member pairs; got "
            f"{n_in} member and {n_out} non-member (fit, sample) pairs. Use a "
            "splitter whose fits each leave some samples out (e.g. KFold)."
        )
    # roc_auc_score rejects infinities; the AUC depends only on the order of
    # the scores, so rank them (dense ranks keep ties and map back exactly).
    values, ranks = np.unique(scores, return_inverse=True)
    ranks = ranks.astype(np.float64)
    auc = float(roc_auc_score(labels, ranks))
    if not return_curve:
        return auc
    fpr, tpr, rank_thresholds = roc_curve(labels, ranks)
    finite = np.isfinite(rank_thresholds)
    thresholds = np.full(rank_thresholds.shape, np.inf)
    thresholds[finite] = values[rank_thresholds[finite].astype(np.intp)]
    return Bunch(
        auc=auc, fpr=fpr, tpr=tpr, thresholds=thresholds, n_in=n_in, n_out=n_out
    )


# ---------------------------------------------------------------------------
# scorers for model selection
# ---------------------------------------------------------------------------


def _quantile(values, q):
    """Linear-interpolation quantile (numpy's default) that handles infinities.

    ``np.quantile`` returns NaN as soon as an infinity is involved; here the
    interpolation between two order statistics takes its limit instead: equal
    neighbours give their value, a finite and an infinite neighbour give the
    infinite one (unless the weight on it is zero), ``-inf`` and ``+inf``
    give the nearer one.
    """
    v = np.sort(values)
    h = (v.size - 1) * q
    lo = int(np.floor(h))
    hi = min(lo + 1, v.size - 1)
    g = h - lo
    a, b = v[lo], v[hi]
    if g == 0 or a == b:
        return float(a)
    if np.isfinite(a) and np.isfinite(b):
        return float(a + (b - a) * g)
    if np.isinf(a) and np.isinf(b):
        return float(a if g < 0.5 else b)
    return float(a if np.isinf(a) else b)


class _MemorizationStatisticScorer:
    """Scorer ``scorer(estimator, X, y=None)`` reading ``memorization_scores_``.

    Made by :func:`make_memorization_scorer`; see there.
    """

    def __init__(self, statistic, q, threshold, sign):
        self._statistic = statistic
        self._q = q
        self._threshold = threshold
        self._sign = sign

    def __call__(self, estimator, X=None, y=None):
        """Return ``sign * statistic(estimator.memorization_scores_)``.

        ``X`` and ``y`` are ignored: memorization scores exist only for the
        rows the estimator was fitted on.
        """
        est = _unwrap_memorization_scorer(
            estimator, ("memorization_scores_",), "make_memorization_scorer"
        )
        return self._sign * self.statistic(est.memorization_scores_)

    def statistic(self, scores):
        """The unsigned statistic of an array of memorization scores."""
        M = np.asarray(scores, dtype=np.float64).ravel()
        nan = np.isnan(M)
        if nan.all():
            warnings.warn(
                f"No memorization score is defined (all {M.size} are NaN), so "
                f"the {self._describe()} statistic is NaN.",
                MemorizationWarning,
                stacklevel=3,
            )
            return float("nan")
        if nan.any():
            warnings.warn(
                f"{int(nan.sum())} of {M.size} memorization scores are NaN "
                "(undefined) and are left out of the "
                f"{self._describe()} statistic.",
                MemorizationWarning,
                stacklevel=3,
            )
            M = M[~nan]
        if callable(self._statistic):
            return float(self._statistic(M))
        if self._statistic == "quantile":
            return _quantile(M, self._q)
        if self._statistic == "mean":
            with np.errstate(invalid="ignore"):
                return float(np.mean(M))
        return float(np.mean(M > self._threshold))

    def _describe(self):
        if callable(self._statistic):
            return getattr(self._statistic, "__name__", repr(self._statistic))
        if self._statistic == "quantile":
            return f"quantile(q={self._q})"
        if self._statistic == "fraction_above":
            return f"fraction_above(threshold={self._threshold})"
        return self._statistic

    def __repr__(self):
        gib = "" if self._sign < 0 else ", greater_is_better=True"
        return f"make_memorization_scorer({self._describe()}{gib})"

    # Hooks of scikit-learn's scoring machinery (multi-metric scoring asks
    # each scorer whether it takes sample_weight; routing asks what it needs).
    def _accept_sample_weight(self):
        return False

    def get_metadata_routing(self):
        """Request no metadata: the scorer uses only the fitted estimator."""
        return MetadataRequest(owner=self)


@validate_params(
    {
        "statistic": [StrOptions({"quantile", "mean", "fraction_above"}), callable],
        "q": [Interval(Real, 0, 1, closed="both")],
        "threshold": [Real, None],
        "greater_is_better": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def make_memorization_scorer(
    statistic="quantile", *, q=0.95, threshold=None, greater_is_better=False
):
    """Make a model-selection scorer from a statistic of the memorization scores.

    The scorer has scikit-learn's signature ``scorer(estimator, X, y=None)``
    and can be given as ``scoring`` to
    :class:`~sklearn.model_selection.GridSearchCV` or
    :func:`~sklearn.model_selection.cross_validate`, alone or in a dict with
    other scorers (e.g. :func:`heldout_loglik_scorer`).

    The statistic is computed from the fitted estimator's stored
    ``memorization_scores_``, i.e. from the rows it was **fitted on** (in a
    search, the training part of each outer split), and **not from X**: in
    ``GridSearchCV`` a scorer receives the validation fold, whose rows have
    no memorization score. ``X`` and ``y`` are ignored.

    NaN (undefined) scores are left out, with their number in a
    :class:`~sklearn_mem.MemorizationWarning`; ``+inf`` scores count
    as above every threshold and as the largest values in quantiles
    (``-inf`` as the smallest).

    Parameters
    ----------
    statistic : {"quantile", "mean", "fraction_above"} or callable, \
            default="quantile"
        - ``"quantile"``: the ``q``-quantile of the scores (linear
          interpolation, as :func:`numpy.quantile`, with infinities handled);
        - ``"mean"``: their mean (``inf`` if any is ``+inf``);
        - ``"fraction_above"``: the fraction of scores strictly greater than
          ``threshold``;
        - a callable: ``statistic(M) -> float`` on the non-NaN scores.
    q : float in [0, 1], default=0.95
        Quantile level for ``statistic="quantile"``.
    threshold : float, default=None
        Threshold for ``statistic="fraction_above"`` (required there, not
        allowed otherwise).
    greater_is_better : bool, default=False
        scikit-learn maximises scores; with the default False the scorer
        returns the negated statistic (as ``make_scorer`` does for losses),
        so the search prefers less memorization.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y=None) -> float``. ``estimator`` must be a
        fitted MemorizationScorer or a Pipeline whose last step is one;
        anything else raises a TypeError (NotFittedError if unfitted).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mem.metrics import make_memorization_scorer
    >>> class Fitted:  # stands in for a fitted MemorizationScorer
    ...     memorization_scores_ = np.array([0.0, 0.5, 1.0, 3.0, np.inf])
    >>> make_memorization_scorer("quantile", q=0.5)(Fitted(), None)
    -1.0
    >>> make_memorization_scorer("fraction_above", threshold=0.9)(Fitted(), None)
    -0.6

    In a multi-metric search (``refit`` picks the model by held-out
    log-likelihood; the memorization quantile is reported next to it)::

        from sklearn.model_selection import GridSearchCV
        search = GridSearchCV(
            MemorizationScorer(KernelDensity(), cv=5),
            {"estimator__bandwidth": [0.1, 0.5, 1.0]},
            scoring={"loglik": heldout_loglik_scorer,
                     "mem_q95": make_memorization_scorer(q=0.95)},
            refit="loglik",
        )
    """
    if statistic == "fraction_above" and threshold is None:
        raise ValueError(
            "statistic='fraction_above' needs a threshold, e.g. "
            "make_memorization_scorer('fraction_above', threshold=1.0)."
        )
    if statistic != "fraction_above" and threshold is not None:
        raise ValueError(
            f"threshold is only used with statistic='fraction_above', got "
            f"statistic={statistic!r} and threshold={threshold!r}. Drop the "
            "threshold or use statistic='fraction_above'."
        )
    sign = 1 if greater_is_better else -1
    return _MemorizationStatisticScorer(statistic, q, threshold, sign)


def heldout_loglik_scorer(estimator, X, y=None):
    """Mean log-likelihood of ``X``, a scorer for model selection.

    ``mean(estimator.score_samples(X))``, in nats per sample. Unlike
    ``estimator.score(X)`` (a sum for :class:`~sklearn.neighbors.KernelDensity`,
    a mean for :class:`~sklearn.mixture.GaussianMixture`), it does not depend
    on the size of the validation fold. A fitted MemorizationScorer delegates
    ``score_samples`` to its refit estimator, so in a search this scores the
    validation fold with the model fitted on the training part.

    Parameters
    ----------
    estimator : fitted estimator with ``score_samples``
        The estimator to score.
    X : array-like of shape (n_samples, n_features)
        Samples to score (the validation fold in a search).
    y : None
        Ignored.

    Returns
    -------
    score : float
        Mean log-likelihood; greater is better. ``-inf`` if any sample has
        zero density.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.neighbors import KernelDensity
    >>> from sklearn_mem.metrics import heldout_loglik_scorer
    >>> X = np.zeros((4, 1))
    >>> kde = KernelDensity(bandwidth=1.0).fit(X)
    >>> heldout_loglik_scorer(kde, X)
    -0.9189...
    """
    if not hasattr(estimator, "score_samples"):
        raise TypeError(
            f"heldout_loglik_scorer needs an estimator with score_samples, got "
            f"{type(estimator).__name__}. Use a density estimator (KernelDensity, "
            "GaussianMixture, a MemorizationScorer with refit=True)."
        )
    return float(np.mean(estimator.score_samples(X)))


def _mean_loglik(estimator, X, name):
    where = f"{type(estimator).__name__} on {name}"
    ll = check_loglik_row(
        estimator.score_samples(X), X.shape[0], where, allow_posinf=True
    )
    return float(np.mean(ll))


@validate_params(
    {
        "estimator": [HasMethods(["score_samples"])],
        "X_train": _ARRAY,
        "X_test": _ARRAY,
        "return_means": ["boolean"],
    },
    prefer_skip_nested_validation=False,
)
def loglik_gap(estimator, X_train, X_test, *, return_means=False):
    """Train/test log-likelihood gap of a fitted density estimator.

    ``gap = mean(log p(X_train)) - mean(log p(X_test))``, in nats per sample,
    with ``log p`` from ``estimator.score_samples``. The classical sign of
    overfitting: a model that memorizes its training data gives it much
    higher likelihood than new data. Zero-density samples (``-inf``) are kept:
    a ``-inf`` on the test side gives a gap of ``+inf``, on both sides NaN
    (with a warning).

    Parameters
    ----------
    estimator : fitted estimator with ``score_samples``
        E.g. a fitted :class:`~sklearn.neighbors.KernelDensity`,
        :class:`~sklearn.mixture.GaussianMixture` or MemorizationScorer (its
        ``score_samples`` delegates to the refit estimator).
    X_train : array-like of shape (n_train, n_features)
        The samples the estimator was fitted on.
    X_test : array-like of shape (n_test, n_features)
        Samples from the same distribution it was not fitted on.
    return_means : bool, default=False
        Whether to return the two means as well.

    Returns
    -------
    gap : float
        Mean train log-likelihood minus mean test log-likelihood.
    result : Bunch
        Only when ``return_means=True``, instead of ``gap``: ``gap``,
        ``train_mean`` and ``test_mean``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.neighbors import KernelDensity
    >>> from sklearn_mem.metrics import loglik_gap
    >>> rng = np.random.RandomState(0)
    >>> X_train, X_test = rng.normal(size=(100, 2)), rng.normal(size=(100, 2))
    >>> narrow = KernelDensity(bandwidth=0.05).fit(X_train)
    >>> wide = KernelDensity(bandwidth=0.5).fit(X_train)
    >>> bool(loglik_gap(narrow, X_train, X_test) > loglik_gap(wide, X_train, X_test))
    True
    """
    try:
        check_is_fitted(estimator)
    except NotFittedError as exc:
        raise NotFittedError(
            f"loglik_gap needs a fitted estimator; {type(estimator).__name__} is "
            "not fitted. Call fit(X_train) first."
        ) from exc
    X_train, X_test = _check_sets(
        X_train=(X_train, "Pass the samples the estimator was fitted on."),
        X_test=(X_test, "Pass samples the estimator was not fitted on."),
    )
    train_mean = _mean_loglik(estimator, X_train, "X_train")
    test_mean = _mean_loglik(estimator, X_test, "X_test")
    with np.errstate(invalid="ignore"):
        gap = train_mean - test_mean
    if np.isnan(gap):
        warnings.warn(
            "Both the train and the test set contain zero-density samples "
            "(log-likelihood -inf), so the log-likelihood gap is undefined "
            "(NaN). A wider bandwidth or a kernel with unbounded support avoids "
            "zero densities.",
            UserWarning,
            stacklevel=2,
        )
    if return_means:
        return Bunch(gap=gap, train_mean=train_mean, test_mean=test_mean)
    return gap
