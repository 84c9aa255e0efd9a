"""MemorizationScorer: cross-validated memorization scores for any density estimator."""

from numbers import Integral

import numpy as np
from sklearn import get_config
from sklearn.base import (
    BaseEstimator,
    MetaEstimatorMixin,
    TransformerMixin,
    _fit_context,
    clone,
    is_classifier,
)
from sklearn.model_selection import KFold, StratifiedKFold, check_cv
from sklearn.neighbors import KernelDensity
from sklearn.utils import Bunch, check_random_state, get_tags
from sklearn.utils._param_validation import (
    HasMethods,
    InvalidParameterError,
    StrOptions,
)
from sklearn.utils.metadata_routing import (
    MetadataRouter,
    MethodMapping,
    _routing_enabled,
    process_routing,
)
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import (
    _check_feature_names_in,
    check_is_fitted,
    validate_data,
)

from ._aggregate import (
    AGGREGATES,
    _warn_undefined,
    aggregate_loglik,
    repeat_interval,
    repeat_standard_error,
)
from ._folds import (
    MAX_SEED,
    REFIT,
    check_loglik,
    draw_seeds,
    fit_seeded_clone,
    run_fits,
    set_random_states,
)
from ._kde import KERNELS, kde_loglik_chunks
from ._response import (
    RESPONSES,
    check_response_method,
    compute_response,
    describe_response,
    resolve_response,
    response_needs_y,
)
from ._splits import compact_splits
from ._threads import inner_thread_limit


def _exact_unavailable_reason(estimator, fit_params):
    """Why the closed-form KernelDensity path cannot be used, or None."""
    if not isinstance(estimator, KernelDensity) or any(
        getattr(type(estimator), name) is not getattr(KernelDensity, name)
        for name in ("fit", "score_samples")
    ):
        return (
            f"the estimator is {type(estimator).__name__}, not a "
            "sklearn.neighbors.KernelDensity (a Pipeline or a subclass that "
            "overrides fit/score_samples is refitted)"
        )
    if estimator.metric != "euclidean":
        return f"KernelDensity(metric={estimator.metric!r}) is not Euclidean"
    if estimator.kernel not in KERNELS:
        return f"kernel {estimator.kernel!r} is not one of {KERNELS}"
    if fit_params:
        return f"fit parameters {sorted(fit_params)} are passed to the estimator"
    return None


def _rounds_partition(splits, rounds):
    """Whether every round of fits holds each sample out exactly once.

    True for KFold, RepeatedKFold, GroupKFold, LeaveOneOut (repeats of a
    partition, whose spread gives the standard error); False for
    subsampling designs such as ShuffleSplit.
    """
    n = splits.n_samples
    for r in np.unique(rounds):
        held = np.zeros(n, dtype=np.intp)
        for k in np.flatnonzero(rounds == r):
            if splits.is_complement(k):
                held[splits.test(k)] += 1
            else:
                out = np.ones(n, dtype=bool)
                out[splits.train(k)] = False
                held += out
        if not (held == 1).all():
            return False
    return True


# Columns of log-likelihoods aggregated at a time: consecutive chunks are
# joined up to this many bytes, so that the aggregation's fixed costs (a
# Student-t quantile, the masks) are paid a few times, not once per chunk
_GROUP_BYTES = 4 * 2**20


def _grouped_chunks(chunks, n_fits):
    """Join consecutive ``(rows, loglik, full_loglik)`` chunks up to _GROUP_BYTES.

    ``loglik`` is an (n_fits, n_rows) array or a Bunch of per-row aggregates;
    the scores are per column, so joining changes no value.
    """
    pending, size = [], 0
    for chunk in chunks:
        pending.append(chunk)
        size += 8 * max(n_fits, 1) * (chunk[0].stop - chunk[0].start)
        if size >= _GROUP_BYTES:
            yield _join_chunks(pending)
            pending, size = [], 0
    if pending:
        yield _join_chunks(pending)


def _join_chunks(chunks):
    if len(chunks) == 1:
        return chunks[0]
    rows = slice(chunks[0][0].start, chunks[-1][0].stop)
    parts = [c[1] for c in chunks]
    if isinstance(parts[0], Bunch):
        part = Bunch(**{k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
    else:
        part = np.hstack(parts)
    full = None if chunks[0][2] is None else np.concatenate([c[2] for c in chunks])
    return rows, part, full


def _column_chunks(loglik, full_loglik):
    """``(rows, loglik, full_loglik)`` column blocks of a computed matrix.

    Blocks of at most scikit-learn's ``working_memory`` (in the handful of
    temporaries the aggregation makes), so that aggregating many fits never
    holds several (n_fits, n_samples) temporaries at once.
    """
    n_fits, n = loglik.shape
    budget = get_config()["working_memory"] * 2**20
    width = int(max(1, min(n, budget // (8 * 8 * max(n_fits, 1)))))
    for start in range(0, n, width):
        rows = slice(start, min(n, start + width))
        yield (
            rows,
            loglik[:, rows],
            (None if full_loglik is None else full_loglik[rows]),
        )


def _side_variance(loglik, mask, aggregate):
    """Squared delta-method standard error of one side (U or V), per sample."""
    n = mask.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if aggregate == "logmeanexp":
            top = np.where(mask, loglik, -np.inf).max(axis=0)
            values = np.exp(loglik - top)  # p_k / max_k p_k
        else:
            values = loglik
        values = np.where(mask, values, 0.0)
        mean = values.sum(axis=0) / n
        dev = np.where(mask, values - mean, 0.0)
        var = (dev**2).sum(axis=0) / (n - 1)  # sample variance, ddof=1
        if aggregate == "logmeanexp":
            var = var / mean**2  # Var(log mean p) ~ Var(p) / (n mean(p)^2)
        out = var / n
    out[n < 2] = np.nan
    return out


def subsample_standard_error(loglik, in_mask, *, aggregate="logmeanexp"):
    """Standard error of M for a subsampling design (e.g. ShuffleSplit).

    Each fit trains on a random subsample, so for sample ``i`` its "in"
    values and its "out" values are two independent samples (disjoint sets
    of independent fits). ``M_i = U_i - V_i`` is a difference of two
    aggregates, with the standard error::

        SE(M_i) = sqrt(SE(U_i)^2 + SE(V_i)^2)

    - ``aggregate="mean"``: ``SE(U_i)^2 = s_in^2 / n_in``, the sample variance
      (``ddof=1``) of the "in" values over their number (for 0/1 correctness,
      the binomial variance ``p(1 - p) n / (n - 1)``); alike for V;
    - ``aggregate="logmeanexp"``: the delta method on ``U = log mean_k p_k``
      with ``p_k = exp(l_k)``: ``SE(U_i)^2 = s_p^2 / (n_in * mean(p)^2)``, with
      ``s_p^2`` the sample variance of the "in" probabilities (computed
      relative to their maximum, so it never overflows); alike for V.

    NaN where a side has fewer than two fits or where M is not finite.

    Parameters
    ----------
    loglik, in_mask : ndarray of shape (n_fits, n_samples)
        As for :func:`~sklearn_mem._aggregate.aggregate_loglik`.
    aggregate : {"logmeanexp", "mean"}

    Returns
    -------
    stderr : ndarray of shape (n_samples,)
    """
    loglik = np.asarray(loglik, dtype=np.float64)
    in_mask = np.asarray(in_mask, dtype=bool)
    var = _side_variance(loglik, in_mask, aggregate) + _side_variance(
        loglik, ~in_mask, aggregate
    )
    M = aggregate_loglik(loglik, in_mask, aggregate=aggregate, warn=False).memorization
    stderr = np.sqrt(var)
    stderr[~np.isfinite(M) | ~np.isfinite(stderr)] = np.nan
    return stderr


def _normal_interval(memorization, stderr, level=0.95):
    """Normal (large-sample) interval ``M +- z * stderr``; NaN where stderr is."""
    from scipy.stats import norm

    half = norm.ppf(0.5 + level / 2) * stderr
    return np.column_stack([memorization - half, memorization + half])


def _influence_side(values, mask, aggregate):
    """Aggregate ``values`` (n_fits, n_rows) over the fits ``mask`` selects.

    ``mask`` is (n_fits, n_train); the result is (n_train, n_rows), entry
    ``[i, z]`` aggregating ``values[k, z]`` over the fits ``k`` with
    ``mask[k, i]``, by matrix products. ``-inf`` values are exact (a mean
    with one is ``-inf``; a logmeanexp of only ``-inf`` is ``-inf``); a
    logmeanexp that underflows against the largest value of its column is
    recomputed directly.
    """
    m = mask.astype(np.float64)
    count = m.sum(axis=0)[:, None]
    neginf = np.isneginf(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        if aggregate == "mean":
            total = m.T @ np.where(neginf, 0.0, values)
            out = total / count
            out[(m.T @ neginf) > 0] = -np.inf
        else:
            top = np.where(neginf, -np.inf, values).max(axis=0)
            top = np.where(np.isfinite(top), top, 0.0)
            sums = m.T @ np.exp(values - top)
            out = np.log(sums / count) + top
            # a side whose values all lie far below the column's top
            # underflows (to 0, or to subnormals that have lost digits):
            # recompute those entries with their own top
            n_finite = m.T @ (~neginf).astype(np.float64)
            tiny = np.finfo(np.float64).tiny
            redo = np.argwhere((sums < tiny) & (n_finite > 0))
            for i, z in redo:
                v = values[mask[:, i], z]
                t = v.max()
                out[i, z] = np.log(np.exp(v - t).sum() / v.size) + t
    out[count[:, 0] == 0] = np.nan
    return out


def _estimator_has(attr):
    """Check the refit estimator (or the unfitted one) for ``attr``."""

    def check(self):
        if not self.refit:
            raise AttributeError(
                f"'{type(self).__name__}' has no attribute {attr!r} when "
                "refit=False: set refit=True to delegate it to the estimator "
                "refit on all of X."
            )
        if hasattr(self, "estimator_"):
            getattr(self.estimator_, attr)
        else:
            getattr(self.estimator, attr)
        return True

    return check


class MemorizationScorer(TransformerMixin, MetaEstimatorMixin, BaseEstimator):
    """Cross-validated memorization score of every training sample.

    For a training set ``D`` and a density estimator ``A``, the memorization
    score of sample ``x_i`` (van den Burg & Williams, NeurIPS 2021) is::

        M_i = log P_A(x_i | D) - log P_A(x_i | D \\ {x_i})

    It is estimated by cross-validation: every split of ``cv`` trains a clone
    of ``estimator`` on its training part and scores every row of ``X``. For
    sample ``i`` the fits that trained on it give the "in" log-likelihood
    ``U_i`` and the others the "out" log-likelihood ``V_i``; ``M_i = U_i - V_i``
    in nats. A high score means the model assigns ``x_i`` much more
    probability when ``x_i`` is in its training data: it memorized ``x_i``.

    A classifier is scored the same way on its labels (Feldman's supervised
    memorization): ``fit(X, y)`` passes ``y`` to every fit, and each fit
    scores every row by its true label, with the conditional log-likelihood
    ``log p(y_i | x_i)`` or the correctness ``1[h(x_i) = y_i]`` (see
    ``response``).

    Parameters
    ----------
    estimator : estimator object
        A density estimator with ``fit`` and ``score_samples`` (log-likelihood
        per sample): KernelDensity, GaussianMixture, BayesianGaussianMixture,
        a Pipeline ending in one, a :mod:`sklearn_mem.models` network. Or a
        classifier (:func:`sklearn.base.is_classifier`, a Pipeline ending in
        one), or any estimator with ``fit`` and ``predict`` when ``response``
        is a callable.

    cv : int, cross-validation generator or iterable, default=10
        The splits. An int ``K`` gives a shuffled ``KFold(K)`` seeded from
        ``random_state`` (the paper's design); any scikit-learn splitter
        works: ``RepeatedKFold`` (the paper with L > 1 repeats),
        ``ShuffleSplit`` (subsampling), ``GroupKFold`` (pass ``groups``),
        ``LeaveOneOut`` (exact). The training and held-out parts of a split
        must not overlap.

    aggregate : {"logmeanexp", "mean"}, default="logmeanexp"
        How the log-likelihoods of several fits are combined: the log of the
        mean probability (the paper's estimator of ``log P_A``) or the mean of
        the log-likelihoods (of the responses, for a supervised ``response``).

    response : {"auto", "score_samples", "log_proba", "correct"} or callable, \
            default="auto"
        What each fit records for every row ``i`` (the entries of
        ``loglik_``):

        - ``"score_samples"``: the log-likelihood ``log p_k(x_i)`` of a
          density estimator; ``y`` is ignored;
        - ``"log_proba"``: ``log predict_proba(X)[i, y_i]``, the conditional
          log-likelihood ``log p_k(y_i | x_i)`` of a classifier; ``M`` is then
          the paper's score for the conditional model ``p(y | x)``. The
          columns are matched to labels through the fit's ``classes_``; a
          label the fit never saw (its class was absent from the fit's
          training part) gets ``-inf``, as does a probability of 0, and
          ``-inf`` is handled as a zero density is (kept, warned about);
        - ``"correct"``: ``1[predict(X)[i] == y_i]``, 0 for a label the fit
          never saw. Needs ``aggregate="mean"``, with which ``M`` is exactly
          Feldman's estimator: the mean correctness over the fits trained on
          ``i`` minus that over the fits not trained on ``i``;
        - a callable ``response(estimator, X, y) -> ndarray of shape
          (n_samples,)``, called with each fitted clone, all of ``X`` and all
          of ``y`` (None when ``fit`` got no ``y``): a regressor's negative
          squared error, a margin, any per-sample score. ``-inf`` is allowed;
          NaN, ``+inf`` and a wrong shape raise. With
          ``aggregate="logmeanexp"`` the values are treated as
          log-likelihoods;
        - ``"auto"``: ``"log_proba"`` for a classifier, ``"score_samples"``
          otherwise.

        Any response other than ``"score_samples"`` is computed by refits
        (``method="exact"`` raises; ``"auto"`` refits a KernelDensity too)
        and passes ``y`` to every ``fit``; it is part of the ``memory`` cache
        key (a callable by its qualified name, code, defaults and closure).

    method : {"auto", "refit", "exact"}, default="auto"
        ``"exact"`` computes the log-likelihood of every KernelDensity fit in
        closed form from pairwise kernel sums (no refits, any kernel,
        Euclidean metric, any splitter) and raises when the estimator is not
        such a KernelDensity; ``"refit"`` always fits a clone per split;
        ``"auto"`` takes the closed form when it applies.

    refit : bool, default=True
        Refit the estimator on all of ``X`` (``estimator_``), to which
        ``score`` and ``score_samples`` delegate, and record the
        log-likelihood of every row under it (``full_loglik_``).

    keep_estimators : bool, default=False
        Keep the fitted estimator of every split (``estimators_``), for
        :meth:`influence`. It makes every fit a refit (``method="auto"``
        refits a KernelDensity; ``"exact"`` raises), per split (never
        fold-batched), and bypasses ``memory`` (a cached row has no model);
        the scores are the same as without it.

    fold_batching : bool or "auto", default="auto"
        Train the fits of the refit path simultaneously, as one batched model,
        through the estimator's ``fit_folds(estimators, X, trains)`` (the
        torch density nets of :mod:`sklearn_mem.models` that support it).
        ``"auto"`` batches when the estimator offers ``fit_folds``, says it
        can batch (``fold_batching_unavailable_reason()`` returns None, when
        it has that method) and no fit parameters are passed, and fits per
        split otherwise; ``True`` demands ``fit_folds``. The batched fits
        equal independent fits with the same seeds up to floating-point
        rounding.

    n_jobs : int, default=None
        How many cores the fits use; what runs in parallel depends on the
        path (``method_``):

        - ``"refit"``: fits (and the refit on all of ``X``) run as jobs of
          :class:`sklearn.utils.parallel.Parallel`, processes under loky;
          the backend (loky, threading, dask, ray) is chosen with
          ``joblib.parallel_config(backend=...)``. Each fit runs with one
          BLAS/OpenMP/torch thread (raise it with
          ``parallel_config(inner_max_num_threads=k)``), so workers never
          oversubscribe the cores;
        - ``"batched"``: one process trains every fold at once, with
          ``n_jobs`` torch threads;
        - ``"exact"``: threads over chunks of rows of the kernel sums.

        ``None`` means 1 unless in a :func:`joblib.parallel_config` context;
        ``-1`` means all processors. The scores do not depend on it.

    memory : str or object with the joblib.Memory interface, default=None
        Cache of the per-fit log-likelihood rows, keyed by the estimator's
        parameters, the source code of its classes (nested estimators
        included), the data, the split, the seed and the versions of
        sklearn_mem, scikit-learn and the estimator's package: an
        interrupted run resumes with the missing fits only, and a finished
        one can be re-aggregated (e.g. another ``aggregate``) without
        refitting. Only the per-split fits are cached, not the refit on all
        of ``X``. A path or ``joblib.Memory`` stores pickles, and loading a
        pickle can run code: as with scikit-learn's ``Pipeline(memory=)``,
        use a location only you write to. :class:`sklearn_mem.cli.FitStore`
        has the same interface but stores plain arrays with checksums and
        never unpickles; the ``sklearn-mem`` command uses it for the cache
        of its run folders, which get shared.

    store_loglik : bool or "auto", default="auto"
        Whether to keep the ``(n_fits, n_samples)`` log-likelihood matrix
        (``loglik_``) and the training membership matrix (``in_mask_``).
        ``"auto"`` keeps them when they take at most scikit-learn's
        ``working_memory`` (:func:`sklearn.set_config`, 1 GiB by default;
        with ``cv=LeaveOneOut()`` up to about n = 10,000); ``False`` never
        keeps them. When they are not kept, the scores, their standard
        errors and intervals are computed in one streaming pass over chunks
        of samples, so that memory stays O(n_fits x chunk) on the exact path
        (exact LeaveOneOut at n = 100,000 runs in under 2 GiB), and equal
        the stored-matrix results. Tools that read ``loglik_`` or
        ``in_mask_`` (:func:`~sklearn_mem.metrics.membership_auc`,
        :meth:`influence`, :class:`~sklearn_mem.plotting.InfluentialPairsDisplay`)
        then raise, naming this parameter. Per-epoch scores
        (``epoch_loglik_``) of the refit path are kept either way.

    random_state : int, RandomState instance or None, default=None
        Seeds the shuffled KFold (StratifiedKFold for a classifier with
        binary or multiclass ``y``, as :func:`sklearn.model_selection.check_cv`
        chooses) of an int ``cv`` and one seed per fit, drawn
        once in the parent and pushed into every ``random_state`` parameter
        of each clone, so the scores are the same whatever the backend and
        ``n_jobs``. Pass an int for reproducible scores.

    verbose : int, default=0
        ``1`` shows a progress bar over the fits (tqdm, or log lines on the
        ``sklearn_mem`` logger when tqdm is not installed); a fold-batched
        run (``method_ == "batched"``) shows one over its training epochs
        and one over the rows it scores instead. Above ``1`` joblib's own
        messages are printed too.

    Attributes
    ----------
    memorization_scores_ : ndarray of shape (n_samples,)
        ``M = in_loglik_ - out_loglik_``. NaN where a sample has no "in" or no
        "out" fit, or zero density under both; ``+inf`` where only the "out"
        fits give zero density.
    in_loglik_ : ndarray of shape (n_samples,)
        ``U``: aggregated log-likelihood of each sample under the fits that
        trained on it.
    out_loglik_ : ndarray of shape (n_samples,)
        ``V``: aggregated log-likelihood under the fits that did not.
    loglik_ : ndarray of shape (n_fits, n_samples)
        ``log p_k(x_i)`` for every fit ``k`` and sample ``i`` (only when
        ``store_loglik_`` is True).
    in_mask_ : ndarray of bool, shape (n_fits, n_samples)
        True where sample ``i`` was in fit ``k``'s training part (only when
        ``store_loglik_`` is True).
    store_loglik_ : bool
        Whether ``loglik_`` and ``in_mask_`` were kept (``store_loglik`` with
        ``"auto"`` resolved).
    n_splits_ : int
        Number of fits (splits of ``cv_``).
    n_in_, n_out_ : ndarray of int, shape (n_samples,)
        Number of "in" and "out" fits of each sample.
    memorization_stderr_ : ndarray of shape (n_samples,)
        Standard error of M across the repeats of the splitter (rounds of
        fits with disjoint held-out parts, e.g. the repeats of RepeatedKFold):
        the standard deviation of the per-repeat scores over the square root
        of their number. NaN with fewer than two repeats.

        For a supervised ``response`` with a subsampling design (the
        splitter's rounds do not hold every sample out exactly once, e.g.
        Feldman and Zhang's ``ShuffleSplit(n_splits=m, train_size=0.7)``),
        the "in" and "out" values of a sample come from disjoint sets of
        independent fits and the standard error is that of a difference of
        two aggregates, ``sqrt(SE(U)^2 + SE(V)^2)``: with
        ``aggregate="mean"``, ``SE(U)^2 = s_in^2 / n_in`` (``s_in^2`` the
        sample variance, ``ddof=1``, of the "in" values; for 0/1 correctness
        the binomial variance), alike for V; with ``"logmeanexp"``, the delta
        method on the log of the mean probability,
        ``SE(U)^2 = s_p^2 / (n_in * mean(p)^2)`` with ``p = exp(values)``.
        NaN where a side has fewer than two fits or M is not finite. (Density
        estimators keep the repeat-based standard error only.)
    memorization_interval_ : ndarray of shape (n_samples, 2)
        A 95% interval around ``memorization_scores_``: plus or minus the
        Student-t quantile (degrees of freedom: repeats with a finite score
        minus one) times ``memorization_stderr_``; for the subsampling
        standard error above, the normal quantile (1.96). NaN where the
        standard error is undefined.
    n_repeats_ : int
        Number of such repeats.
    full_loglik_ : ndarray of shape (n_samples,)
        Log-likelihood of each sample under the estimator refit on all of
        ``X`` (only with ``refit=True``).
    full_memorization_scores_ : ndarray of shape (n_samples,)
        The definitional score ``full_loglik_ - out_loglik_``, whose "in" side
        is the model trained on all of ``D``. With ``cv=LeaveOneOut()`` and a
        deterministic estimator it equals
        ``log P(x_i | D) - log P(x_i | D \\ {x_i})`` exactly. (Only with
        ``refit=True``.)
    estimator_ : estimator object
        The estimator refit on all of ``X`` (only with ``refit=True``).
    estimators_ : list of estimator objects, length n_fits
        The fitted estimator of every split, in the order of ``loglik_``
        (only with ``keep_estimators=True``); used by :meth:`influence`.
    method_ : str
        The path taken: ``"exact"``, ``"refit"`` or ``"batched"``.
    response_ : str or callable
        The response computed: ``"score_samples"``, ``"log_proba"``,
        ``"correct"`` or the callable (``response`` with ``"auto"``
        resolved).
    epochs_ : ndarray of int, shape (n_checkpoints,)
        Epochs of the checkpoints kept by every fit (estimators with
        ``checkpoint_epochs``, e.g. :class:`~sklearn_mem.models.VAEDensity`).
    epoch_loglik_ : ndarray of shape (n_checkpoints, n_fits, n_samples)
        ``loglik_`` at each checkpoint.
    epoch_memorization_scores_ : ndarray of shape (n_checkpoints, n_samples)
        Memorization scores at each checkpoint: memorization over training
        time.
    cv_ : cross-validation generator
        The splitter used.
    n_fits_from_cache_ : int
        Number of fits whose log-likelihoods were read from ``memory`` rather
        than computed in this call to ``fit`` (0 without ``memory``).
    seeds_ : ndarray of int, shape (n_fits,) or None
        The seed of each fit (None on the exact path, which is deterministic).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    sklearn.model_selection.cross_val_predict : The same fold loop for
        predictions.

    Notes
    -----
    ``fit(X).transform(X)`` and ``fit_transform(X)`` return the same stored
    scores: ``transform`` looks the rows of its input up among the training
    rows. A row that was not a training row has no memorization score and
    raises an error; use ``score_samples`` for its log-likelihood.

    With ``LeaveOneOut`` the "in" fits of ``x_i`` are the fits that left out
    some other row (each on ``n - 1`` rows), not the fit on all of ``D``;
    ``full_memorization_scores_`` gives the definition's version.

    References
    ----------
    G. J. J. van den Burg and C. K. I. Williams, "On Memorization in
    Probabilistic Deep Generative Models", NeurIPS 2021.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.neighbors import KernelDensity
    >>> from sklearn_mem import MemorizationScorer
    >>> X = load_digits().data / 16
    >>> mem = MemorizationScorer(KernelDensity(bandwidth=0.5), cv=10, random_state=0)
    >>> M = mem.fit_transform(X)
    >>> M.shape
    (1797, 1)
    >>> mem.method_
    'exact'
    >>> bool((mem.memorization_scores_ > 0).all())
    True

    A classifier, scored by the conditional log-likelihood of its labels
    (``response="auto"``) or, Feldman's estimator, by its correctness:

    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import ShuffleSplit
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = LogisticRegression(max_iter=1000)
    >>> mem = MemorizationScorer(clf, cv=5, random_state=0).fit(X, y)
    >>> mem.response_
    'log_proba'
    >>> feldman = MemorizationScorer(
    ...     clf,
    ...     cv=ShuffleSplit(n_splits=20, train_size=0.7, random_state=0),
    ...     response="correct",
    ...     aggregate="mean",
    ...     random_state=0,
    ... ).fit(X, y)
    >>> feldman.memorization_scores_.shape, feldman.memorization_stderr_.shape
    ((150,), (150,))
    >>> bool((abs(feldman.memorization_scores_) <= 1).all())
    True
    """

    _parameter_constraints: dict = {
        "estimator": [
            HasMethods(["fit", "score_samples"]),
            HasMethods(["fit", "predict"]),
        ],
        "cv": ["cv_object"],
        "aggregate": [StrOptions(set(AGGREGATES))],
        "response": [StrOptions(set(RESPONSES)), callable],
        "method": [StrOptions({"auto", "refit", "exact"})],
        "refit": ["boolean"],
        "keep_estimators": ["boolean"],
        "fold_batching": ["boolean", StrOptions({"auto"})],
        "n_jobs": [Integral, None],
        "memory": [None, str, HasMethods(["cache"])],
        "store_loglik": ["boolean", StrOptions({"auto"})],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        estimator,
        *,
        cv=10,
        aggregate="logmeanexp",
        response="auto",
        method="auto",
        refit=True,
        keep_estimators=False,
        fold_batching="auto",
        n_jobs=None,
        memory=None,
        store_loglik="auto",
        random_state=None,
        verbose=0,
    ):
        self.estimator = estimator
        self.cv = cv
        self.aggregate = aggregate
        self.response = response
        self.method = method
        self.refit = refit
        self.keep_estimators = keep_estimators
        self.fold_batching = fold_batching
        self.n_jobs = n_jobs
        self.memory = memory
        self.store_loglik = store_loglik
        self.random_state = random_state
        self.verbose = verbose

    def _check_cv(self, rng, y=None, classifier=False):
        if isinstance(self.cv, Integral):
            seed = rng.randint(MAX_SEED)
            if (
                classifier
                and y is not None
                and type_of_target(y) in ("binary", "multiclass")
            ):
                # as scikit-learn's check_cv: stratified folds for a classifier
                return StratifiedKFold(self.cv, shuffle=True, random_state=seed)
            return KFold(self.cv, shuffle=True, random_state=seed)
        return check_cv(self.cv)

    def _check_response(self, X, y):
        """Resolve ``response`` and validate ``X`` and ``y`` for it.

        Returns
        -------
        response : str or callable
            ``"score_samples"``, ``"log_proba"``, ``"correct"`` or the callable.
        X : ndarray
        y : ndarray or None
            None for ``"score_samples"`` (density estimation ignores ``y``).
        """
        response = resolve_response(self.estimator, self.response)
        name = type(self.estimator).__name__
        if response == "score_samples":
            if not hasattr(self.estimator, "score_samples"):
                raise InvalidParameterError(
                    "The 'estimator' parameter of MemorizationScorer must be an "
                    "object implementing 'fit' and 'score_samples' (a density "
                    f"estimator) for {describe_response(self.response)}; got "
                    f"{name}, which is not a classifier. For a regressor or any "
                    "other model pass a callable response(estimator, X, y) -> "
                    "array of shape (n_samples,)."
                )
            X = validate_data(self, X, accept_sparse=False, ensure_min_samples=2)
            return response, X, None
        check_response_method(self.estimator, response)
        if self.method == "exact":
            raise ValueError(
                "method='exact' computes KernelDensity log-likelihoods in closed "
                f"form and cannot compute {describe_response(response)}. Use "
                "method='refit' (or 'auto') to refit the estimator on every split."
            )
        if response == "correct" and self.aggregate != "mean":
            raise ValueError(
                "response='correct' gives 0/1 correctness, not a log-likelihood, "
                f"so aggregate={self.aggregate!r} does not apply; use "
                "aggregate='mean' (Feldman's estimator: mean correctness over "
                "the fits trained on a sample minus over the others)."
            )
        if y is None:
            if response_needs_y(response) or is_classifier(self.estimator):
                raise ValueError(
                    f"{name} is fitted on labels: MemorizationScorer.fit(X, y) "
                    f"needs y for {describe_response(response)} (every fit "
                    "scores each training row by its true label). Pass y, or "
                    "use a density estimator to score X alone."
                )
            X = validate_data(self, X, accept_sparse=False, ensure_min_samples=2)
            return response, X, None
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=False,
            ensure_min_samples=2,
            multi_output=not response_needs_y(response),
        )
        if response_needs_y(response) or is_classifier(self.estimator):
            check_classification_targets(y)
        return response, X, y

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, *, groups=None, **params):
        """Fit one clone per split and compute the memorization scores.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,), default=None
            True labels: required for a classifier (``response`` "auto",
            "log_proba" or "correct"), passed to every ``fit`` and to the
            response; optional for a callable ``response`` (passed on when
            given). Ignored for a density estimator (``response`` resolving
            to "score_samples"), so that Pipelines and scikit-learn's checks
            can pass one.
        groups : array-like of shape (n_samples,), default=None
            Group labels for a group splitter (e.g. GroupKFold). With metadata
            routing enabled it is routed to the splitter's ``split``.
        **params : dict
            Parameters of the estimator's ``fit`` (sample-aligned ones are
            sliced per split). With metadata routing enabled, routed to the
            estimator and the splitter as they request.

        Returns
        -------
        self : object
            The fitted scorer.
        """
        self._reset_fitted_attributes()
        response, X, y_fit = self._check_response(X, y)
        supervised = response != "score_samples"
        n_samples = X.shape[0]
        if isinstance(self.cv, Integral) and n_samples < self.cv:
            raise ValueError(
                f"cv={self.cv} folds need at least {self.cv} samples, got "
                f"n_samples={n_samples}. Use fewer folds (cv <= {n_samples}) "
                "or more data."
            )
        if _routing_enabled():
            # groups only when given: a splitter that does not request it
            # (KFold, an int cv) must not see an unrouted groups=None
            extra = {} if groups is None else {"groups": groups}
            routed = process_routing(self, "fit", **extra, **params)
            split_params = routed.splitter.split
            fit_params = routed.estimator.fit
        else:
            split_params = {} if groups is None else {"groups": groups}
            fit_params = params

        rng = check_random_state(self.random_state)
        if supervised:
            self.cv_ = self._check_cv(
                rng, y_fit, classifier=is_classifier(self.estimator)
            )
            splits = compact_splits(self.cv_, X, y_fit, **split_params)
        else:
            self.cv_ = self._check_cv(rng)
            splits = compact_splits(self.cv_, X, y, **split_params)
        store = self._resolve_store_loglik(len(splits), n_samples)

        reason = _exact_unavailable_reason(self.estimator, fit_params)
        if supervised:
            reason = f"{describe_response(response)} is not a KernelDensity's"
        elif self.keep_estimators and reason is None:
            reason = (
                "keep_estimators=True keeps the fitted split estimators, which "
                "the closed form does not make"
            )
        if self.method == "exact" and reason is not None:
            raise ValueError(
                "method='exact' computes KernelDensity fits in closed form and "
                f"cannot be used here: {reason}. Use method='refit' (or "
                "'auto') to refit the estimator on every split."
            )
        batched = self._use_fold_batching(
            fit_params, supervised or self.keep_estimators, response
        )
        if self.method == "refit" or reason:
            self.method_ = "batched" if batched else "refit"
        else:
            self.method_ = "exact"

        full_loglik, checkpoints = None, None
        if self.method_ == "exact":
            self.seeds_ = None
            self.n_fits_from_cache_ = 0
            kde = self.estimator
            chunks = kde_loglik_chunks(
                np.asarray(X, dtype=np.float64),
                splits,
                bandwidth=kde.bandwidth,
                kernel=kde.kernel,
                full=self.refit,
                n_jobs=self.n_jobs,
                # LeaveOneOut's logmeanexp straight from the kernel sums
                aggregated=not store and self.aggregate == "logmeanexp",
            )
            # aggregated chunk by chunk, as the kernel sums are computed
            self._set_scores(chunks, splits, store)
            if self.refit:
                self.estimator_ = fit_seeded_clone(
                    self.estimator,
                    X,
                    None,
                    fit_params,
                    rng.randint(MAX_SEED),
                    inner_thread_limit(),
                    REFIT,
                )
        else:
            self.seeds_ = draw_seeds(rng, len(splits))
            refit_seed = rng.randint(MAX_SEED) if self.refit else None
            kept = [] if self.keep_estimators else None
            loglik, checkpoints, self.n_fits_from_cache_, refit = run_fits(
                self.estimator,
                X,
                splits,
                fit_params,
                self.seeds_,
                n_jobs=self.n_jobs,
                memory=self.memory,
                verbose=self.verbose,
                batched=batched,
                refit_seed=refit_seed,
                **({"y": y_fit, "response": response} if supervised else {}),
                **({"kept": kept} if kept is not None else {}),
            )
            if kept is not None:
                self.estimators_ = kept
            if refit is not None:
                self.estimator_, full_loglik = refit
            self._set_scores(
                _column_chunks(loglik, full_loglik), splits, store, supervised
            )
            if checkpoints and all(c is not None for c in checkpoints):
                self._set_epoch_scores(checkpoints, splits.in_mask())

        self.response_ = response
        self._X_fit = X
        return self

    def _resolve_store_loglik(self, n_fits, n_samples):
        if self.store_loglik != "auto":
            self._store_reason = "store_loglik=False"
            return bool(self.store_loglik)
        need = n_fits * n_samples * 9  # float64 log-likelihoods and a bool mask
        budget = get_config()["working_memory"] * 2**20
        self._store_reason = (
            f"store_loglik='auto' and the {n_fits} x {n_samples} matrices "
            f"would take {need / 2**30:.2f} GiB, above scikit-learn's "
            f"working_memory ({budget / 2**30:.2f} GiB)"
        )
        return need <= budget

    def __getattr__(self, name):
        # only reached when normal lookup fails
        if (
            name in ("loglik_", "in_mask_")
            and self.__dict__.get("store_loglik_") is False
        ):
            raise AttributeError(
                f"{name} was not kept: {self.__dict__.get('_store_reason')}. The "
                "scores were aggregated in a streaming pass. Fit with "
                "store_loglik=True to keep loglik_ and in_mask_ (they take "
                "n_fits x n_samples x 9 bytes), or raise working_memory with "
                "sklearn.set_config."
            )
        raise AttributeError(
            f"{type(self).__name__!r} object has no attribute {name!r}"
        )

    def _reset_fitted_attributes(self):
        """Remove what an earlier fit set, so each fit sets every attribute anew."""
        for name in list(vars(self)):
            if (name.endswith("_") and not name.startswith("__")) or name == "_X_fit":
                delattr(self, name)

    def _use_fold_batching(self, fit_params, per_split=False, response=None):
        has = hasattr(self.estimator, "fit_folds")
        if per_split:
            if self.fold_batching is True:
                what = (
                    "keep the split estimators (keep_estimators=True)"
                    if self.keep_estimators
                    else "compute "
                    + describe_response(self.response if response is None else response)
                )
                raise ValueError(
                    "fold_batching=True trains density nets through fit_folds "
                    f"and scores them with score_samples; it cannot {what}. "
                    "Use fold_batching='auto' or False."
                )
            return False
        if self.fold_batching is True:
            if not has:
                raise ValueError(
                    f"fold_batching=True needs an estimator with a fit_folds "
                    f"method; {type(self.estimator).__name__} has none. Use "
                    "fold_batching='auto' or False to fit one clone per split."
                )
            if fit_params:
                raise ValueError(
                    "fold_batching=True cannot pass fit parameters "
                    f"{sorted(fit_params)}; use fold_batching=False."
                )
            return True
        if self.fold_batching is False or not has or fit_params:
            return False
        if not hasattr(self.estimator, "fold_batching_unavailable_reason"):
            return True
        # ask a clone carrying seeds, as the fits will
        probe = set_random_states(clone(self.estimator), 0)
        return probe.fold_batching_unavailable_reason() is None

    def _set_epoch_scores(self, checkpoints, in_mask):
        # every fit kept checkpoints (fit checks); fit has already removed
        # the attributes of a previous fit
        epochs = checkpoints[0][0]
        if any(not np.array_equal(c[0], epochs) for c in checkpoints):
            return  # fits that stopped at different epochs: nothing to align
        self.epochs_ = epochs
        self.epoch_loglik_ = np.stack([c[1] for c in checkpoints], axis=1)
        self.epoch_memorization_scores_ = np.vstack(
            [
                aggregate_loglik(
                    rows, in_mask, aggregate=self.aggregate, warn=False
                ).memorization
                for rows in self.epoch_loglik_
            ]
        )

    def _set_scores(self, chunks, splits, store, supervised=False):
        """Aggregate ``(rows, loglik, full_loglik)`` chunks into the scores.

        Every score is a function of its own column of ``loglik``, so the
        chunks are aggregated one at a time, with only their slice of the
        membership matrix; ``loglik_`` and ``in_mask_`` are assembled only
        when ``store`` is true.
        """
        n = splits.n_samples
        n_fits = len(splits)
        rounds = splits.rounds()
        # a subsampling design (ShuffleSplit) of a supervised response: no
        # repeats to compare
        subsample = supervised and not _rounds_partition(splits, rounds)
        columns = {}
        loglik = np.empty((n_fits, n)) if store else None
        full_loglik = None
        for rows, part, full_part in _grouped_chunks(chunks, n_fits):
            aggregated = isinstance(part, Bunch)
            mask = None if aggregated else splits.in_mask(rows.start, rows.stop)
            scores = self._column_scores(part, mask, rounds, subsample)
            for key, value in scores.items():
                columns.setdefault(key, []).append(value)
            if store:
                loglik[:, rows] = part
            if full_part is not None:
                if full_loglik is None:
                    full_loglik = np.empty(n)
                full_loglik[rows] = full_part
        result = {key: np.concatenate(parts) for key, parts in columns.items()}
        _warn_undefined(
            result["n_in"], result["n_out"], result["in_loglik"], result["out_loglik"]
        )
        self.store_loglik_ = bool(store)
        if store:
            self.loglik_ = loglik
            self.in_mask_ = splits.in_mask()
        self.n_splits_ = n_fits
        self.in_loglik_ = result["in_loglik"]
        self.out_loglik_ = result["out_loglik"]
        self.memorization_scores_ = result["memorization"]
        self.n_in_ = result["n_in"]
        self.n_out_ = result["n_out"]
        self.n_repeats_ = int(rounds.max()) + 1
        self.memorization_stderr_ = result["stderr"]
        self.memorization_interval_ = result["interval"]
        if full_loglik is not None:
            self.full_loglik_ = full_loglik
            with np.errstate(invalid="ignore"):
                self.full_memorization_scores_ = full_loglik - self.out_loglik_

    def _column_scores(self, loglik, in_mask, rounds, subsample):
        """The per-sample results of the columns ``loglik`` (n_fits, n_cols).

        ``loglik`` may also be a Bunch of the aggregates of one round of fits
        (the closed-form LeaveOneOut), which only needs M.
        """
        if isinstance(loglik, Bunch):
            result = loglik
            with np.errstate(invalid="ignore"):
                result.memorization = result.in_loglik - result.out_loglik
        else:
            result = aggregate_loglik(
                loglik, in_mask, aggregate=self.aggregate, warn=False
            )
        if subsample:
            stderr = subsample_standard_error(loglik, in_mask, aggregate=self.aggregate)
            interval = _normal_interval(result.memorization, stderr)
        elif rounds[-1] == 0:
            # one round (KFold, LeaveOneOut): its score is M itself, and one
            # score has no spread; skips aggregating the round a second time
            per_repeat = result.memorization[None, :]
            stderr = np.full(result.memorization.shape, np.nan)
            interval = repeat_interval(result.memorization, stderr, per_repeat)
        else:
            stderr, per_repeat = repeat_standard_error(
                loglik, in_mask, rounds, aggregate=self.aggregate
            )
            interval = repeat_interval(result.memorization, stderr, per_repeat)
        return {
            "in_loglik": result.in_loglik,
            "out_loglik": result.out_loglik,
            "memorization": result.memorization,
            "n_in": result.n_in,
            "n_out": result.n_out,
            "stderr": stderr,
            "interval": interval,
        }

    def fit_transform(self, X, y=None, *, groups=None, **params):
        """Fit and return the memorization score of every row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,), default=None
            True labels, as for ``fit``.
        groups : array-like of shape (n_samples,), default=None
            Group labels for a group splitter.
        **params : dict
            Parameters of the estimator's ``fit``.

        Returns
        -------
        M : ndarray of shape (n_samples, 1)
            ``memorization_scores_`` as a column.
        """
        return self.fit(X, y, groups=groups, **params).memorization_scores_[:, None]

    def transform(self, X):
        """Return the stored memorization scores of training rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows of the training data, in any order and any subset.

        Returns
        -------
        M : ndarray of shape (n_samples, 1)
            The memorization score of each row.

        Raises
        ------
        ValueError
            If a row of ``X`` is not a training row (it has no memorization
            score), or matches several training rows with different scores.
        """
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=False, reset=False)
        return self.memorization_scores_[self._training_rows(X)][:, None]

    def influence(self, X, y=None, *, chunk_size=1024):
        """Influence of every training sample on the response of every row of X.

        The memorization score's aggregation taken over another row's
        responses: the influence of training sample ``i`` on row ``z`` is::

            infl[i, z] = agg_{k: i in fit k} r_k(z) - agg_{k: i not in fit k} r_k(z)

        with ``r_k(z)`` the response (``response_``) of kept split estimator
        ``k`` on ``z`` and ``agg`` the ``aggregate``. On the training rows
        themselves the diagonal is ``memorization_scores_``:
        ``influence(X_train, y_train)[i, i] == memorization_scores_[i]``.
        Feldman and Zhang's influence estimate is ``response="correct"``,
        ``aggregate="mean"``, ``X`` a test set.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Rows whose responses are influenced (a test set, or the training
            data).
        y : array-like of shape (n_rows,), default=None
            Their true labels; required for the responses ``"log_proba"`` and
            ``"correct"``, passed to a callable response, ignored for
            ``"score_samples"``.
        chunk_size : int, default=1024
            Rows of ``X`` aggregated at a time, bounding the temporaries to
            ``n_fits * chunk_size`` and ``n_train * chunk_size`` values.

        Returns
        -------
        influence : ndarray of shape (n_train, n_rows)
            NaN where a training sample has no "in" or no "out" fit, or both
            sides are ``-inf``; ``+inf`` / ``-inf`` as for
            ``memorization_scores_``.

        Raises
        ------
        AttributeError
            If the scorer was not fitted with ``keep_estimators=True``.
        """
        check_is_fitted(self)
        if not hasattr(self, "estimators_"):
            raise AttributeError(
                "influence needs the fitted split estimators: fit the scorer "
                "with keep_estimators=True."
            )
        X = validate_data(self, X, accept_sparse=False, reset=False)
        response = self.response_
        if response == "score_samples":
            y = None
        elif response_needs_y(response):
            if y is None:
                raise ValueError(
                    f"influence needs y for {describe_response(response)}: "
                    "the true labels of the rows of X."
                )
            y = np.asarray(y)
            if y.shape != (X.shape[0],):
                raise ValueError(
                    f"y has shape {y.shape}; expected ({X.shape[0]},), one "
                    "label per row of X."
                )
        elif y is not None:
            y = np.asarray(y)
        n_rows = X.shape[0]
        in_mask = self.in_mask_
        out = np.empty((in_mask.shape[1], n_rows))
        chunk_size = max(1, int(chunk_size))
        for start in range(0, n_rows, chunk_size):
            # every fit's responses to this chunk of rows only
            rows = slice(start, start + chunk_size)
            Xc, yc = X[rows], None if y is None else y[rows]
            block = np.empty((len(self.estimators_), Xc.shape[0]))
            for k, est in enumerate(self.estimators_):
                if response == "score_samples":
                    block[k] = check_loglik(est.score_samples(Xc), len(Xc), est, k)
                else:
                    block[k] = compute_response(
                        est, Xc, yc, response, f"fit {k} ({type(est).__name__})"
                    )
            U = _influence_side(block, in_mask, self.aggregate)
            V = _influence_side(block, ~in_mask, self.aggregate)
            with np.errstate(invalid="ignore"):
                out[:, start : start + chunk_size] = U - V
        return out

    def top_influences(self, X, y=None, *, k=5, chunk_size=1024):
        """The ``k`` training samples with the highest influence on each row.

        :meth:`influence`, ranked per row of ``X`` and computed in chunks of
        ``chunk_size`` rows, so that only ``n_train * chunk_size`` influence
        values exist at a time.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Rows whose responses are influenced.
        y : array-like of shape (n_rows,), default=None
            Their true labels, as for :meth:`influence`.
        k : int, default=5
            Training samples returned per row (at most ``n_train``).
        chunk_size : int, default=1024
            Rows of ``X`` handled at a time.

        Returns
        -------
        result : Bunch
            ``indices``: ndarray of int, shape (n_rows, k), training-row
            indices, highest influence first (``+inf`` first, NaN last, ties
            in training-row order); ``influence``: ndarray of shape
            (n_rows, k), their influence.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.model_selection import ShuffleSplit
        >>> from sklearn.neighbors import KNeighborsClassifier
        >>> from sklearn_mem import MemorizationScorer
        >>> rng = np.random.RandomState(0)
        >>> X = rng.normal(size=(40, 2))
        >>> y = (X[:, 0] > 0).astype(int)
        >>> mem = MemorizationScorer(
        ...     KNeighborsClassifier(1), cv=ShuffleSplit(20, train_size=0.7,
        ...     random_state=0), response="correct", aggregate="mean",
        ...     keep_estimators=True, random_state=0).fit(X, y)
        >>> top = mem.top_influences(X[:3], y[:3], k=2)
        >>> top.indices.shape, top.influence.shape
        ((3, 2), (3, 2))
        """
        X = validate_data(self, X, accept_sparse=False, reset=False)
        if y is not None:
            y = np.asarray(y)
        n_rows = X.shape[0]
        n_train = self.in_mask_.shape[1]
        k = int(min(max(1, k), n_train))
        chunk_size = max(1, int(chunk_size))
        indices = np.empty((n_rows, k), dtype=np.intp)
        values = np.empty((n_rows, k))
        for start in range(0, n_rows, chunk_size):
            rows = slice(start, start + chunk_size)
            infl = self.influence(
                X[rows], None if y is None else y[rows], chunk_size=chunk_size
            ).T
            nan = np.isnan(infl)
            with np.errstate(invalid="ignore"):
                key = np.where(nan, 0.0, -infl)
            order = np.lexsort((key, nan), axis=-1)[:, :k]
            indices[rows] = order
            values[rows] = np.take_along_axis(infl, order, axis=1)
        return Bunch(indices=indices, influence=values)

    def _training_rows(self, X):
        """Index of each row of X among the training rows."""
        train = self._X_fit
        if X.shape == train.shape and np.array_equal(X, train):
            return np.arange(X.shape[0])

        def keys(A):
            A = np.ascontiguousarray(A, dtype=np.float64) + 0.0  # -0.0 -> 0.0
            return A.view(np.dtype((np.void, A.dtype.itemsize * A.shape[1]))).ravel()

        uniq, first, inverse = np.unique(
            keys(train), return_index=True, return_inverse=True
        )
        query = keys(X)
        pos = np.minimum(np.searchsorted(uniq, query), len(uniq) - 1)
        missing = np.flatnonzero(uniq[pos] != query)
        if missing.size:
            raise ValueError(
                f"{missing.size} of {X.shape[0]} rows of X (e.g. row "
                f"{missing[0]}) are not rows of the training data: a "
                "memorization score exists only for the samples the scorer "
                "was fitted on. Use score_samples for the log-likelihood of "
                "new data."
            )
        scores = self.memorization_scores_
        ref = scores[first][inverse]
        same = (scores == ref) | (np.isnan(scores) & np.isnan(ref))
        ambiguous = np.zeros(len(uniq), dtype=bool)
        ambiguous[inverse[~same]] = True
        if ambiguous[pos].any():
            row = int(np.flatnonzero(ambiguous[pos])[0])
            raise ValueError(
                f"Row {row} of X occurs several times in the training data "
                "with different memorization scores, so it cannot be looked "
                "up; index memorization_scores_ by position instead."
            )
        return first[pos]

    def get_feature_names_out(self, input_features=None):
        """Name of the output column.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Checked against the input features seen in fit.

        Returns
        -------
        feature_names_out : ndarray of str objects
            ``["memorization_score"]``.
        """
        check_is_fitted(self)
        _check_feature_names_in(self, input_features, generate_names=False)
        return np.asarray(["memorization_score"], dtype=object)

    @available_if(_estimator_has("score_samples"))
    def score_samples(self, X):
        """Log-likelihood of each row under the estimator refit on all of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        loglik : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self.estimator_.score_samples(X)

    @available_if(_estimator_has("score"))
    def score(self, X, y=None):
        """The refit estimator's ``score`` on ``X`` (and ``y``).

        A density estimator's log-likelihood of ``X``; a classifier's
        ``score(X, y)`` (its accuracy, for scikit-learn's classifiers).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.
        y : array-like of shape (n_samples,), default=None
            True labels, passed on when the scorer was fitted with a
            supervised response (``response_`` other than
            ``"score_samples"``); ignored for density estimators.

        Returns
        -------
        score : float
        """
        check_is_fitted(self)
        if y is not None and self.response_ != "score_samples":
            return self.estimator_.score(X, y)
        return self.estimator_.score(X)

    def get_metadata_routing(self):
        """Metadata routing of this scorer: to the estimator and the splitter.

        Returns
        -------
        routing : MetadataRouter
            ``fit`` routes to the estimator's ``fit`` and the splitter's
            ``split``.
        """
        return (
            MetadataRouter(owner=self)
            .add(
                estimator=self.estimator,
                method_mapping=MethodMapping().add(caller="fit", callee="fit"),
            )
            .add(
                splitter=check_cv(self.cv),
                method_mapping=MethodMapping().add(caller="fit", callee="split"),
            )
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator)
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        tags.non_deterministic = inner.non_deterministic
        response = resolve_response(self.estimator, self.response)
        if response_needs_y(response):
            tags.target_tags.required = True
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags
