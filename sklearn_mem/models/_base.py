"""DensityNet: a skorch ``NeuralNet`` that is a scikit-learn density estimator.

The net trains a module whose ``forward`` returns per-sample log-likelihoods
(or a lower bound on them) by minimising their negative mean, and scores with
the module's ``log_prob`` (or ``forward`` in eval mode). Everything skorch
offers (callbacks, ``optimizer__*``/``module__*`` parameters, ``set_params``,
pickling, devices) keeps working; this module only overrides skorch's
documented extension points plus a thin seeding wrapper around
``partial_fit``.

Randomness. skorch has no ``random_state``; here one integer seeds three
independent streams derived with :class:`numpy.random.SeedSequence`: the
module's initialisation, the training stream (batch order and any noise the
module draws while training) and :meth:`DensityNet.sample`. The scoring noise
of stochastic modules is seeded by the separate ``score_seed`` so that every
fit of a cross-validation run scores each sample with the same draws (common
random numbers); it deliberately does not end in ``random_state``, which
meta-estimators overwrite with one seed per fit. The global torch RNG is only
touched inside a fork that restores its state afterwards (``_random.py``
holds the seeds, generators and that fork).

Fold batching. :meth:`DensityNet.fit_folds` trains the fits of a
cross-validation as one model when the module class declares
``fold_stackable = True`` (``_batched.py`` has the trainer and the
protocol, and knows no model class); the scoring of several nets shares
one loop, :func:`_score_chunks`, whose single-net case is
:meth:`DensityNet.score_samples`.
"""

import inspect
import logging
import numbers
import time
import warnings

import numpy as np
import torch
from sklearn.base import DensityMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils import _safe_indexing, check_array
from skorch import NeuralNet
from skorch.callbacks import PrintLog
from skorch.dataset import Dataset as SkorchDataset
from skorch.dataset import unpack_data
from skorch.history import History
from skorch.utils import is_dataset
from torch.utils.data import DataLoader

from .. import _progress
from . import _batched
from ._random import (
    _derive_seed,
    _forked_global_rng,
    _seed_global_rng,
    _torch_generator,
)

__all__ = ["DensityNet", "DensityLoss"]

logger = logging.getLogger("sklearn_mem")


def _accepts_kwarg(fn, name):
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )


def _report(stage, done, total):
    """Report progress to the active reporter of :mod:`sklearn_mem._progress`."""
    _progress.report_progress(stage, done, total)


class DensityLoss(torch.nn.Module):
    """Negative mean log-likelihood: the training loss of :class:`DensityNet`.

    ``forward(y_pred)`` accepts what the module's ``forward`` returned: a
    tensor of per-sample log-likelihoods (or lower bounds) of shape
    ``(batch,)``, whose negative mean is returned; a 0-d tensor, which is taken
    to be the loss itself; or a tuple whose first element is one of those.

    Examples
    --------
    >>> import torch
    >>> from sklearn_mem.models import DensityLoss
    >>> DensityLoss()(torch.tensor([-1.0, -3.0]))
    tensor(2.)
    """

    def forward(self, y_pred, y_true=None):
        if isinstance(y_pred, (tuple, list)):
            y_pred = y_pred[0]
        if not isinstance(y_pred, torch.Tensor):
            raise TypeError(
                "The module's forward returned "
                f"{type(y_pred).__name__}; expected a tensor of per-sample "
                "log-likelihoods of shape (batch,) or a 0-d loss tensor."
            )
        if y_pred.ndim == 0:
            return y_pred
        if y_pred.ndim != 1:
            raise ValueError(
                "The module's forward returned a tensor of shape "
                f"{tuple(y_pred.shape)}; expected per-sample log-likelihoods "
                "of shape (batch,) (sum over features inside the module) or a "
                "0-d loss."
            )
        return -y_pred.mean()


class TensorData(torch.utils.data.Dataset):
    """The whole data set as one tensor, already on the net's device.

    Iterating it through :class:`DensityNet`'s iterator slices the tensor
    directly (no per-sample collation, no numpy round trip); it also works
    with a plain :class:`torch.utils.data.DataLoader`.
    """

    def __init__(self, X):
        self.X = X

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i], torch.zeros((), dtype=self.X.dtype)


class _TensorBatches:
    """Mini-batches of a tensor, reshuffled on every pass when asked."""

    def __init__(self, X, batch_size, shuffle=False, drop_last=False, generator=None):
        self.X = X
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = generator

    def __len__(self):
        n = len(self.X)
        if self.drop_last:
            return n // self.batch_size
        return -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.X)
        order = None
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(self.X.device)
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            if self.drop_last and stop - start < self.batch_size:
                break
            if order is None:
                yield self.X[start:stop], None
            else:
                yield self.X[order[start:stop]], None


_FAST_ITERATOR_KWARGS = {"shuffle", "drop_last", "num_workers", "pin_memory"}
# The methods of DensityNet's training loop whose work a fold-batched fit
# does itself (with _batched.FoldStack): a subclass that overrides one of
# them trains differently, so its folds are fitted one by one.
_FOLD_LOOP_METHODS = (
    "fit",
    "partial_fit",
    "fit_loop",
    "run_single_epoch",
    "train_step",
    "train_step_single",
    "infer",
    "get_loss",
    "get_dataset",
    "get_iterator",
    "get_split_datasets",
    "_prepare_training",
    "_training_streams",
    "_validate_X",
)


def _module_unstackable_reason(module):
    """Why the ``module`` parameter cannot be stacked over folds, or None."""
    shown = getattr(module, "__name__", type(module).__name__)
    if not _batched.declares_fold_stacking(module):
        return (
            f"the module {shown} does not declare fold_stackable = True "
            "(a module class whose forward works on fold-stacked inputs)"
        )
    if _accepts_kwarg(module.forward, "generator") and not (
        hasattr(module, "draw_noise") and _accepts_kwarg(module.forward, "noise")
    ):
        return (
            f"the module {shown} draws noise in forward (it takes a generator) "
            "but has no draw_noise method or no noise argument to forward"
        )
    return None


class DensityNet(DensityMixin, NeuralNet):
    """A skorch neural net that is a scikit-learn density estimator.

    Wraps any :class:`torch.nn.Module` whose ``forward(x)`` returns per-sample
    log-likelihoods ``log p(x_i)`` in nats, shape ``(batch,)`` (or a lower
    bound on them, or a 0-d loss tensor). Training minimises the negative mean
    (:class:`DensityLoss`). Optional module methods:

    - ``log_prob(x)``: per-sample log-likelihoods used by
      :meth:`score_samples` (otherwise ``forward`` is used, in eval mode);
      needed when ``forward`` returns a loss or a bound;
    - ``sample(n, generator=None)``: draws used by :meth:`sample`;
    - a ``generator`` keyword on ``forward``: the net then passes a seeded
      :class:`torch.Generator` for the noise drawn while training.

    Parameters
    ----------
    module : torch.nn.Module class or instance
        The density model. ``module__<name>`` keyword arguments are passed to
        its constructor (skorch convention).
    criterion : torch.nn.Module class, default=DensityLoss
        Turns the module's output into the loss.
    optimizer : torch.optim.Optimizer class, default=torch.optim.Adam
        Optimizer; set its options with ``optimizer__<name>`` (e.g.
        ``optimizer__weight_decay``).
    lr : float, default=1e-3
        Learning rate.
    max_epochs : int, default=10
        Number of passes over the training data.
    batch_size : int, default=128
        Mini-batch size for training and scoring; -1 means the whole data.
    train_split : callable or None, default=None
        skorch's internal validation split. None (the default) trains on all
        of ``X``: a density fit should see exactly the rows it is given.
    random_state : int, RandomState instance or None, default=None
        Seeds the module's initialisation, the order of training batches,
        noise drawn while training, and :meth:`sample`. An int makes
        :meth:`fit` reproducible.
    score_seed : int, default=0
        Seed of any noise drawn while scoring (e.g. importance samples).
        Scoring noise depends on this seed and the row's position, never on
        the fitted model or ``random_state``, so the fits of one
        cross-validation run share it (common random numbers). How much of
        the noise then cancels in differences between fits depends on the
        model: little across independently initialised VAEs, whose latent
        spaces are not aligned. Deliberately not named
        ``*random_state``: meta-estimators reseed those per fit.
    checkpoint_epochs : sequence of int or None, default=None
        Epochs (counted from 1) after which a copy of the module's weights is
        kept in ``checkpoints_``, so that :meth:`score_samples_checkpoints`
        can score data as the model was at that point of training. Inside a
        :class:`~sklearn_mem.MemorizationScorer` this gives the memorization
        score at every checkpoint (``epoch_memorization_scores_``).
    save_state_every : int or None, default=None
        In a fold-batched fit inside a :class:`~sklearn_mem.MemorizationScorer`
        with ``memory``, save the whole training state of the batched folds
        (stacked weights, Adam moments and step counts, the random generators
        of batch order and noise, history, checkpoints) into the cache every
        this many epochs, so that a run killed mid-training resumes from the
        last saved epoch and gives bit-identical scores (user guide:
        :ref:`resume`). None: no epoch-count schedule.
    save_state_seconds : float or None, default=60.0
        Also save the training state at the end of an epoch when this many
        seconds have passed since the last save (or the start). With either
        schedule the state is saved after the last epoch too, before the
        (often long) scoring. None together with ``save_state_every=None``
        turns saving (and resuming) off. Neither parameter changes the
        scores; both are part of the cache key like every parameter.
    device : str or torch.device, default="cpu"
        Device to train and score on. A net pickled on a GPU loads on the CPU
        when no GPU is available.
    verbose : int, default=0
        skorch's per-epoch log when > 0.
    **kwargs
        Any other :class:`skorch.NeuralNet` parameter (``callbacks``,
        ``warm_start``, ``iterator_train__*``, ``module__*``, ...). Training
        batches are shuffled (``iterator_train__shuffle=True``) and no
        DataLoader worker processes are used (``iterator_*__num_workers=0``)
        unless overridden.

    Attributes
    ----------
    module_ : torch.nn.Module
        The fitted module.
    n_features_in_ : int
        Number of features seen during :meth:`fit`.
    history_ : skorch.history.History
        Per-epoch training log (``train_loss`` is the negative mean
        log-likelihood or bound).
    checkpoints_ : dict of int to dict
        The module's weights (``state_dict``, on the CPU) after each epoch of
        ``checkpoint_epochs`` reached so far.

    See Also
    --------
    VAEDensity : Variational auto-encoder with an importance-sampled score.
    FlowDensity : RealNVP normalizing flow with exact log-likelihood.

    Examples
    --------
    A diagonal Gaussian written as a module becomes a density estimator:

    >>> import numpy as np
    >>> import torch
    >>> from sklearn_mem.models import DensityNet
    >>> class Gaussian(torch.nn.Module):
    ...     def __init__(self, n_features=2):
    ...         super().__init__()
    ...         self.loc = torch.nn.Parameter(torch.zeros(n_features))
    ...         self.log_scale = torch.nn.Parameter(torch.zeros(n_features))
    ...     def forward(self, x):
    ...         dist = torch.distributions.Normal(self.loc, self.log_scale.exp())
    ...         return dist.log_prob(x).sum(-1)
    >>> X = np.random.RandomState(0).normal(size=(50, 2))
    >>> net = DensityNet(Gaussian, module__n_features=2, max_epochs=2,
    ...                  random_state=0).fit(X)
    >>> net.score_samples(X[:3]).shape
    (3,)
    >>> net.score_samples(X[:3]).dtype
    dtype('float64')
    """

    def __init__(
        self,
        module,
        *,
        criterion=DensityLoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        max_epochs=10,
        batch_size=128,
        train_split=None,
        random_state=None,
        score_seed=0,
        checkpoint_epochs=None,
        save_state_every=None,
        save_state_seconds=60.0,
        device="cpu",
        verbose=0,
        **kwargs,
    ):
        self.random_state = random_state
        self.score_seed = score_seed
        self.checkpoint_epochs = checkpoint_epochs
        self.save_state_every = save_state_every
        self.save_state_seconds = save_state_seconds
        kwargs.setdefault("iterator_train__shuffle", True)
        kwargs.setdefault("iterator_train__num_workers", 0)
        kwargs.setdefault("iterator_valid__num_workers", 0)
        super().__init__(
            module,
            criterion,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            train_split=train_split,
            device=device,
            verbose=verbose,
            **kwargs,
        )

    # ------------------------------------------------------------------
    # Input validation
    # ------------------------------------------------------------------
    def _check_values(self, X):
        """Model-specific checks on the validated float array (hook)."""

    def _validate_X(self, X, *, reset):
        """Validate X; return a C-contiguous 2-D float32 array."""
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        try:
            X = check_array(
                X,
                dtype=np.float32,
                ensure_all_finite=False,
                allow_nd=True,
                input_name="X",
                estimator=self,
            )
        except ValueError as exc:
            raise ValueError(
                f"{type(self).__name__} could not read X: {exc} Pass a numeric "
                "array-like of shape (n_samples, n_features)."
            ) from exc
        X = self._check_shape(X)
        bad = ~np.isfinite(X)
        if bad.any():
            rows = np.flatnonzero(bad.any(axis=1))
            kind = "NaN" if np.isnan(X).any() else "infinite values"
            raise ValueError(
                f"X contains {kind} in {int(bad.sum())} entries across "
                f"{len(rows)} rows (first bad row: {rows[0]}); "
                f"{type(self).__name__} needs finite inputs. Impute the missing "
                "values (e.g. sklearn.impute.SimpleImputer in a Pipeline) or "
                "drop those rows before fit/score_samples."
            )
        n_features = X.shape[1]
        if reset:
            self.n_features_in_ = n_features
        elif hasattr(self, "n_features_in_") and n_features != self.n_features_in_:
            raise ValueError(
                f"X has {n_features} features, but {type(self).__name__} was "
                f"fitted with {self.n_features_in_} features. Pass data with the "
                "same columns as in fit."
            )
        self._check_values(X)
        return np.ascontiguousarray(X)

    def _check_shape(self, X):
        """Return X as 2-D (hook: image models accept and check N-D input)."""
        if X.ndim != 2:
            raise ValueError(
                f"X has shape {X.shape}; {type(self).__name__} expects a 2-D "
                "array of shape (n_samples, n_features). Reshape it, e.g. "
                "X.reshape(len(X), -1)."
            )
        return X

    def _to_tensor(self, X):
        return torch.as_tensor(X, device=self.device)

    # ------------------------------------------------------------------
    # skorch extension points
    # ------------------------------------------------------------------
    def _module_needs_rebuild(self):
        """Whether ``module_`` must be rebuilt for the data seen (hook)."""
        return False

    def _default_module_kwargs(self):
        """Constructor arguments the net derives for its module (hook).

        ``module__*`` parameters override them.
        """
        return {}

    def initialize_module(self):
        """Build the module with its initialisation seeded by ``random_state``."""
        kwargs = {**self._default_module_kwargs(), **self.get_params_for("module")}
        seed = _derive_seed(self.random_state, "init")
        with _forked_global_rng(self.device, seed, hold=True):
            self.module_ = self.initialized_instance(self.module, kwargs)
        return self

    def get_loss(self, y_pred, y_true=None, X=None, training=False):
        """Negative mean log-likelihood of the batch (via ``criterion_``)."""
        return self.criterion_(y_pred)

    def get_dataset(self, X, y=None):
        """Validate ``X`` once and hold it as one tensor on ``device``.

        ``y`` is ignored (density estimation). A torch ``Dataset`` is passed
        through unchanged; a custom ``dataset`` parameter is honoured.
        """
        if is_dataset(X):
            return X
        Xt = self._validate_X(X, reset=False)
        custom = self.dataset is not SkorchDataset or self.get_params_for("dataset")
        if custom:
            return super().get_dataset(Xt, None)
        return TensorData(self._to_tensor(Xt))

    def get_iterator(self, dataset, training=False):
        """Slice tensors directly for :class:`TensorData`; else a DataLoader.

        Training batches are shuffled with a generator seeded from
        ``random_state``; any ``iterator_*`` parameter other than
        ``batch_size``, ``shuffle``, ``drop_last``, ``num_workers=0`` and
        ``pin_memory`` (or a custom iterator class) falls back to skorch's
        DataLoader path, still seeded.
        """
        prefix = "iterator_train" if training else "iterator_valid"
        iterator = self.iterator_train if training else self.iterator_valid
        kwargs = self.get_params_for(prefix)
        batch_size = kwargs.pop("batch_size", self.batch_size)
        if batch_size == -1:
            batch_size = len(dataset)
        shuffle = bool(kwargs.get("shuffle", False))
        generator = self._shuffle_generator() if shuffle else None
        fast = (
            isinstance(dataset, TensorData)
            and iterator is DataLoader
            and set(kwargs) <= _FAST_ITERATOR_KWARGS
            and not kwargs.get("num_workers", 0)
        )
        if fast:
            return _TensorBatches(
                dataset.X,
                batch_size,
                shuffle=shuffle,
                drop_last=bool(kwargs.get("drop_last", False)),
                generator=generator,
            )
        kwargs["batch_size"] = batch_size
        if generator is not None and "generator" not in kwargs:
            kwargs["generator"] = generator
        return iterator(dataset, **kwargs)

    def _shuffle_generator(self):
        state = getattr(self, "_fit_rng_", None)
        if state is not None:
            return state["shuffle"]
        return _torch_generator(_derive_seed(self.random_state, "train", 0))

    def train_step_single(self, batch, **fit_params):
        """One forward/backward pass on a training batch.

        As skorch's, but switches modules to train mode only when one is not
        in it already (a recursive ``train()`` on every batch is a
        noticeable part of the step of a small model; ``python
        benchmarks/bench_models.py micro`` measures it).
        """
        if not all(
            getattr(self, name + "_").training
            for name in self._modules + self._criteria
            if isinstance(getattr(self, name + "_", None), torch.nn.Module)
        ):
            self._set_training(True)
        Xi, yi = unpack_data(batch)
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        loss.backward()
        return {"loss": loss, "y_pred": y_pred}

    def infer(self, x, **fit_params):
        """Forward a batch; pass the training generator when accepted."""
        state = getattr(self, "_fit_rng_", None)
        if (
            state is not None
            and state["pass_generator"]
            and self.module_.training
            and "generator" not in fit_params
        ):
            fit_params = {**fit_params, "generator": state["noise"]}
        return super().infer(x, **fit_params)

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """Train for ``max_epochs`` more epochs without re-initialising.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : None
            Ignored.
        classes : None
            Ignored.
        **fit_params : dict
            Passed to the module's ``forward``.

        Returns
        -------
        self : DensityNet
            The fitted net.
        """
        # A thin wrapper only: validation, data-dependent module size and a
        # seeded, restored RNG around skorch's own partial_fit (and so fit).
        X = self._prepare_training(X)
        self._fit_rng_ = self._training_streams()
        try:
            with _forked_global_rng(self.device, self._fit_rng_["global"]):
                super().partial_fit(X, y, **fit_params)
        finally:
            del self._fit_rng_
        return self

    def _prepare_training(self, X):
        """Initialise, validate ``X`` and size the module for it.

        The preamble of :meth:`partial_fit`, shared with :meth:`fit_folds`
        so that a fold-batched fit starts from exactly the same module.
        """
        if not self.initialized_:
            self.initialize()
        if not is_dataset(X):
            X = self._validate_X(X, reset=len(self.history) == 0)
        if self._module_needs_rebuild():
            self._initialize_module()
            self._initialize_criterion()
            self._initialize_optimizer()
        return X

    def _training_streams(self):
        """Generators of the next training call, derived from random_state.

        ``shuffle`` orders the batches, ``noise`` is passed to a module whose
        ``forward`` takes a ``generator``, ``global`` seeds torch's global
        RNG for the call.
        """
        seed = _derive_seed(self.random_state, "train", len(self.history))
        seeds = np.random.SeedSequence(seed).generate_state(3, np.uint64) >> 1
        return {
            "shuffle": _torch_generator(seeds[0]),
            "noise": _torch_generator(seeds[1], self._generator_device()),
            "pass_generator": _accepts_kwarg(self.module_.forward, "generator"),
            "global": int(seeds[2]),
        }

    def fit_folds(self, estimators, X, trains, *, checkpoint=None):
        """Fit clones of this net on several training parts at once.

        The fold-batching protocol of :class:`~sklearn_mem.MemorizationScorer`
        (``fold_batching``): ``estimators[k]`` is fitted on ``X[trains[k]]``.
        When the module and settings allow it (a module class that declares
        ``fold_stackable = True``, as :class:`~sklearn_mem.models.VAEModule`
        (MLP or convolutional) and :class:`RealNVP` do; Adam or AdamW,
        default callbacks, no ``warm_start``; see
        :meth:`fold_batching_unavailable_reason`) the fits are trained as one
        model whose weights are stacked along a fold axis, each fold with
        its own initialisation, batch order, noise and optimizer state,
        which equals the independent fits up to floating-point rounding;
        otherwise the clones are fitted one after another with :meth:`fit`.

        Parameters
        ----------
        estimators : list of DensityNet
            Unfitted clones (each with its own ``random_state``).
        X : array-like of shape (n_samples, n_features)
            All the data.
        trains : list of ndarray of int
            The training rows of each clone.
        checkpoint : object or None, default=None
            Where a batched fit saves its training state and finds it again
            (:class:`~sklearn_mem.MemorizationScorer` passes one per unit of
            folds when it has ``memory``): ``load()`` returns ``(arrays,
            meta)`` (a dict of numpy arrays and a JSON-able dict) or None, and
            ``save(arrays, meta)`` replaces what was saved. When a saved
            state is found, training continues after its epoch and ends
            exactly as the uninterrupted fit would; ``save_state_every`` and
            ``save_state_seconds`` say when to save. Ignored by fits made one
            by one.

        Returns
        -------
        estimators : list of DensityNet
            The clones, fitted, as ordinary estimators.
        """
        estimators = list(estimators)
        trains = [np.asarray(t, dtype=np.intp) for t in trains]
        if len(estimators) != len(trains):
            raise ValueError(
                f"fit_folds got {len(estimators)} estimators for {len(trains)} "
                "training parts; pass one estimator per training part."
            )
        reason = _batched.batching_unavailable_reason(estimators)
        if reason is None:
            try:
                return _fit_batched(estimators, X, trains, checkpoint)
            except _batched.NotBatchable as exc:
                reason = str(exc)
        logger.debug("fit_folds: fitting the folds one by one: %s", reason)
        return _fit_sequential(estimators, X, trains)

    def fold_batching_unavailable_reason(self):
        """Why this net's folds would be fitted one by one, or None.

        :class:`~sklearn_mem.MemorizationScorer` with ``fold_batching="auto"``
        asks before choosing :meth:`fit_folds`; when batching is unavailable
        it runs one fit per split, in parallel workers. Batching needs a
        module class (``module``) that declares ``fold_stackable = True``
        (and, when its ``forward`` takes a ``generator``, defines
        ``draw_noise``), an integer ``random_state``, the default criterion,
        callbacks, dataset and training iterator, Adam or AdamW, no
        ``train_split``, ``warm_start`` or ``compile``, and no override of
        the training loop in a subclass.

        Returns
        -------
        reason : str or None
        """
        name = type(self).__name__
        for method in _FOLD_LOOP_METHODS:
            if getattr(type(self), method, None) is not getattr(DensityNet, method):
                return f"{name} overrides {method}"
        rs = self.random_state
        if not isinstance(rs, numbers.Integral) or isinstance(rs, bool):
            return "random_state is not an integer"
        reason = _module_unstackable_reason(self.module)
        if reason is not None:
            return reason
        if self.criterion is not DensityLoss or self.get_params_for("criterion"):
            return "the criterion is not the default DensityLoss"
        if self.optimizer not in _batched.STACKED_OPTIMIZERS:
            shown = getattr(self.optimizer, "__name__", self.optimizer)
            return f"the optimizer {shown} is not Adam or AdamW"
        if self.callbacks not in (None, [], ()):
            return "callbacks are set (only the default callbacks are batched)"
        if self.train_split is not None:
            return "train_split is set"
        if self.warm_start:
            return "warm_start=True"
        if getattr(self, "compile", False):
            return "compile=True"
        if self.dataset is not SkorchDataset or self.get_params_for("dataset"):
            return "a custom dataset is set"
        if self._train_iterator_config() is None:
            return "the training iterator is customised"
        return None

    def _train_iterator_config(self):
        """(batch_size, shuffle, drop_last) of the fast tensor iterator, or None."""
        kwargs = self.get_params_for("iterator_train")
        if self.iterator_train is not DataLoader or not set(kwargs) <= (
            _FAST_ITERATOR_KWARGS | {"batch_size"}
        ):
            return None
        if kwargs.get("num_workers", 0):
            return None
        batch_size = kwargs.get("batch_size", self.batch_size)
        return (
            int(batch_size),
            bool(kwargs.get("shuffle", False)),
            bool(kwargs.get("drop_last", False)),
        )

    def _notify_epoch_end(self, first_epoch):
        """``notify("on_epoch_end")`` in a batched fit, minus silent tables.

        A PrintLog that prints to stdout while ``verbose=0`` formats a
        table row per epoch that nobody sees; it is told about the first
        epoch only (which marks its header as done, as in a sequential
        fit).
        """
        kwargs = {"dataset_train": None, "dataset_valid": None}
        self.on_epoch_end(self, **kwargs)
        for _, cb in self.callbacks_:
            silent = isinstance(cb, PrintLog) and cb.sink is print and not self.verbose
            if silent and not first_epoch:
                continue
            cb.on_epoch_end(self, **kwargs)

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Start a fresh set of checkpoints unless training continues."""
        super().on_train_begin(net, X=X, y=y, **kwargs)
        if not hasattr(self, "checkpoints_") or len(self.history) == 0:
            self.checkpoints_ = {}
        if self.checkpoint_epochs is not None:
            epochs = np.asarray(self.checkpoint_epochs)
            if (
                epochs.ndim != 1
                or not np.issubdtype(epochs.dtype, np.integer)
                or (epochs < 1).any()
            ):
                raise ValueError(
                    f"checkpoint_epochs={self.checkpoint_epochs!r}; expected a "
                    "sequence of positive integers (epochs counted from 1), "
                    "e.g. (10, 50, 100)."
                )
        _save_schedule(self)  # fail early, whichever way the net is trained

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        """Keep a copy of the weights at the requested epochs."""
        super().on_epoch_end(
            net, dataset_train=dataset_train, dataset_valid=dataset_valid, **kwargs
        )
        epoch = len(self.history)
        if self.checkpoint_epochs is not None and epoch in set(
            int(e) for e in self.checkpoint_epochs
        ):
            self.checkpoints_[epoch] = {
                k: v.detach().to("cpu", copy=True)
                for k, v in self.module_.state_dict().items()
            }

    def score_samples_checkpoints(self, X):
        """Log-likelihood of each sample under every kept checkpoint.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        epochs : ndarray of int, shape (n_checkpoints,)
            The epochs of the checkpoints, increasing.
        log_likelihood : ndarray of shape (n_checkpoints, n_samples)
            ``score_samples(X)`` as the model was after each of those epochs
            (same scoring noise as :meth:`score_samples`).
        """
        self._check_fitted()
        epochs = np.array(sorted(getattr(self, "checkpoints_", {})), dtype=int)
        final = {k: v.clone() for k, v in self.module_.state_dict().items()}
        rows = []
        try:
            for epoch in epochs:
                self.module_.load_state_dict(self.checkpoints_[int(epoch)])
                rows.append(self.score_samples(X))
        finally:
            self.module_.load_state_dict(final)
        return epochs, np.array(rows).reshape(len(epochs), -1)

    def _generator_device(self):
        device = torch.device(self.device)
        return device if device.type in ("cuda", "cpu") else torch.device("cpu")

    # ------------------------------------------------------------------
    # Density estimator API
    # ------------------------------------------------------------------
    def _check_fitted(self):
        if not (self.initialized_ and hasattr(self, "n_features_in_")):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call "
                "'fit' with training data before using this method."
            )

    def _score_batch_size(self, n_samples):
        """Rows per scoring chunk; fixed by parameters so every fit agrees."""
        kwargs = self.get_params_for("iterator_valid")
        batch_size = kwargs.get("batch_size", self.batch_size)
        return n_samples if batch_size == -1 else max(1, int(batch_size))

    def _log_prob_chunk(self, x, start):
        """Per-sample log-likelihoods of rows ``start:start+len(x)`` (hook)."""
        module = self.module_
        if hasattr(module, "log_prob"):
            out = module.log_prob(x)
        else:
            out = module(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out

    def _score_loop(self, X, chunk_fn):
        """Apply ``chunk_fn(x, start)`` to fixed row chunks, in eval mode.

        The one scoring loop (:func:`_score_chunks`) for this net alone.
        """
        return _score_chunks([self], [chunk_fn], X)[0]

    def score_samples(self, X):
        """Log-likelihood of each sample under the fitted model, in nats.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        log_likelihood : ndarray of shape (n_samples,), dtype float64
            ``log p(x_i)`` for each row (an estimate for latent-variable
            models). Deterministic for a given ``score_seed``.
        """
        return self._score_loop(X, self._log_prob_chunk)

    def score_folds(self, estimators, X):
        """Log-likelihood of ``X`` under each of several fitted nets.

        The scoring side of the fold-batching protocol: row ``k`` is
        ``estimators[k].score_samples(X)`` (subclasses may share work
        between the models, with the same result).

        Parameters
        ----------
        estimators : list of DensityNet
            Fitted nets, e.g. those returned by :meth:`fit_folds`.
        X : array-like of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        log_likelihood : ndarray of shape (n_estimators, n_samples)
        """
        rows = []
        for est in estimators:
            rows.append(est.score_samples(X))
            _report("scoring models", len(rows), len(estimators))
        return np.vstack(rows)

    def score(self, X, y=None):
        """Mean log-likelihood of ``X`` (nats per sample).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.
        y : None
            Ignored.

        Returns
        -------
        score : float
            ``mean(score_samples(X))``.
        """
        return float(np.mean(self.score_samples(X)))

    def _sample_tensor(self, n_samples, generator):
        module = self.module_
        if not hasattr(module, "sample"):
            raise AttributeError(
                f"{type(module).__name__} has no 'sample' method, so "
                f"{type(self).__name__} cannot draw samples. Add "
                "sample(n, generator=None) to the module."
            )
        if _accepts_kwarg(module.sample, "generator"):
            return module.sample(n_samples, generator=generator)
        return module.sample(n_samples)

    def sample(self, n_samples=1, random_state=None):
        """Draw samples from the fitted model.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples.
        random_state : int, RandomState instance or None, default=None
            Seed for the draws; None uses the net's ``random_state``.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            Samples, in the same (flattened) layout as the training data.
        """
        self._check_fitted()
        if not isinstance(n_samples, numbers.Integral) or n_samples < 1:
            raise ValueError(f"n_samples={n_samples!r}; expected a positive integer.")
        source = self.random_state if random_state is None else random_state
        seed = _derive_seed(source, "sample")
        self._set_training(False)
        with torch.no_grad(), _forked_global_rng(self.device, seed, hold=True):
            gen = _torch_generator(seed, self._generator_device())
            draws = self._sample_tensor(int(n_samples), gen)
        draws = draws.detach().cpu().double().numpy()
        return draws.reshape(int(n_samples), -1)


def _check_score_seed(score_seed):
    if not isinstance(score_seed, numbers.Integral) or score_seed < 0:
        raise ValueError(
            f"score_seed={score_seed!r}; expected a non-negative integer "
            "(the same for every fit that should share scoring noise)."
        )


def _score_chunks(nets, chunk_fns, X, *, noise_fn=None, block_rows=None, stage=None):
    """Log-likelihood rows of ``X`` under ``nets``, scored in fixed chunks.

    The scoring loop of every net: the rows are validated once (by
    ``nets[0]``) and cut into chunks of ``nets[0]._score_batch_size``;
    ``chunk_fns[k](x, start)`` returns net ``k``'s per-sample
    log-likelihoods of the rows ``start:start+len(x)``, in eval mode,
    without autograd, with torch's global RNG seeded from ``score_seed`` and
    the chunk's index (per-chunk common noise for modules that draw from
    it) and restored afterwards. Scoring one net is the case of a single
    net. The nets must share what fixes the chunks and the noise.

    With ``noise_fn(start, n_rows)``, the noise of a chunk is drawn once for
    all nets and passed on as ``chunk_fns[k](x, start, noise)``; the chunks
    are then taken in blocks of about ``block_rows`` rows, every net scoring
    a block's chunks in turn, and each block is reported as ``stage``.

    Returns
    -------
    log_likelihood : ndarray of shape (len(nets), n_samples), dtype float64
    """
    first = nets[0]
    for net in nets:
        net._check_fitted()
        _check_score_seed(net.score_seed)
    Xt = first._to_tensor(first._validate_X(X, reset=False))
    n = len(Xt)
    chunk = first._score_batch_size(n)
    out = np.empty((len(nets), n), dtype=np.float64)
    score_seed = int(first.score_seed)
    device = first.device
    for net in nets:
        net._set_training(False)
    starts = list(enumerate(range(0, n, chunk)))
    per_block = len(starts) or 1
    if block_rows is not None:
        per_block = max(1, block_rows // chunk)
    with (
        torch.no_grad(),
        _forked_global_rng(device, _derive_seed(score_seed, "score")),
    ):
        for b0 in range(0, len(starts), per_block):
            block = starts[b0 : b0 + per_block]
            noises = [None] * len(block)
            if noise_fn is not None:
                noises = [
                    noise_fn(start, len(Xt[start : start + chunk]))
                    for _, start in block
                ]
            for k, chunk_fn in enumerate(chunk_fns):
                for (index, start), noise in zip(block, noises):
                    # global-RNG users (custom modules) get per-chunk common noise
                    _seed_global_rng(device, _derive_seed(score_seed, "score", index))
                    xb = Xt[start : start + chunk]
                    if noise is None:
                        lp = chunk_fn(xb, start)
                    else:
                        lp = chunk_fn(xb, start, noise)
                    _check_chunk(lp, len(xb))
                    out[k, start : start + len(xb)] = lp.detach().double().cpu().numpy()
            if stage is not None:
                _report(stage, min(n, block[-1][1] + chunk), n)
    return out


def _check_chunk(lp, n_rows):
    if not isinstance(lp, torch.Tensor) or tuple(lp.shape) != (n_rows,):
        shape = tuple(getattr(lp, "shape", ())) or type(lp).__name__
        raise ValueError(
            f"The module returned log-likelihoods of shape {shape} for "
            f"a batch of {n_rows} rows; expected shape ({n_rows},). "
            "Make forward/log_prob return one value per sample "
            "(sum over features inside the module)."
        )


# ----------------------------------------------------------------------
# Fitting folds: one by one, or as one stacked model
# ----------------------------------------------------------------------
def _fit_sequential(estimators, X, trains):
    fitted = []
    for est, train in zip(estimators, trains):
        fitted.append(est.fit(_safe_indexing(X, train)))
        _report("fits (one by one)", len(fitted), len(estimators))
    return fitted


def _save_schedule(net):
    """Validated ``(save_state_every, save_state_seconds)`` of ``net``."""
    # (a net pickled before these parameters existed has neither)
    every = getattr(net, "save_state_every", None)
    seconds = getattr(net, "save_state_seconds", 60.0)
    if every is not None and (
        not isinstance(every, numbers.Integral) or isinstance(every, bool) or every < 1
    ):
        raise ValueError(
            f"save_state_every={every!r}; expected a positive number of epochs "
            "(e.g. 10) or None."
        )
    if seconds is not None and (
        not isinstance(seconds, numbers.Real)
        or isinstance(seconds, bool)
        or not seconds >= 0
    ):
        raise ValueError(
            f"save_state_seconds={seconds!r}; expected a non-negative number of "
            "seconds (e.g. 60) or None."
        )
    return every, seconds


# what a saved training state holds besides the arrays; a state of another
# format is not loaded (the run then starts afresh)
_STATE_FORMAT = 1


def _training_state(stack, nets, epoch):
    """The state after ``epoch`` epochs: (arrays, JSON-able meta)."""
    arrays = stack.training_state()
    snapshots = []
    for k, net in enumerate(nets):
        epochs = sorted(int(e) for e in getattr(net, "checkpoints_", {}))
        snapshots.append(epochs)
        for e in epochs:
            for name, value in net.checkpoints_[e].items():
                arrays[f"snapshot:{k}:{e}:{name}"] = value.detach().cpu().numpy()
    meta = {
        "format": _STATE_FORMAT,
        "epoch": int(epoch),
        "n_folds": len(nets),
        "histories": [net.history.to_list() for net in nets],
        "snapshots": snapshots,
    }
    return arrays, meta


def _restore_training_state(stack, nets, arrays, meta):
    """Put a saved state back; return its epoch. Raises ValueError if unfit."""
    if not isinstance(meta, dict) or meta.get("format") != _STATE_FORMAT:
        raise ValueError("the saved state has another format")
    if meta.get("n_folds") != len(nets):
        raise ValueError(f"the saved state has {meta.get('n_folds')} folds")
    epoch = int(meta["epoch"])
    histories, snapshots = meta["histories"], meta["snapshots"]
    if not 0 <= epoch <= nets[0].max_epochs or any(len(h) != epoch for h in histories):
        raise ValueError(f"the saved state is at epoch {epoch}")
    if len(histories) != len(nets) or len(snapshots) != len(nets):
        raise ValueError("the saved state has another number of folds")
    stack_arrays = {
        name: value
        for name, value in arrays.items()
        if not name.startswith("snapshot:")
    }
    stack.load_training_state(stack_arrays)  # checks before it changes anything
    for k, net in enumerate(nets):
        net.history = History(histories[k])
        _restore_best_scores(net)
        prefix = f"snapshot:{k}:"
        net.checkpoints_ = {}
        for e in snapshots[k]:
            head = f"{prefix}{int(e)}:"
            net.checkpoints_[int(e)] = {
                name[len(head) :]: torch.from_numpy(value.copy())
                for name, value in arrays.items()
                if name.startswith(head)
            }
    return epoch


def _restore_best_scores(net):
    """Give the net's scoring callbacks the best score of its restored history.

    A callback that marks the best epoch (``<name>_best`` in the history,
    e.g. the default ``train_loss``) compares each epoch with the best
    score so far, which it keeps itself; after a restore it takes it from
    the history, as skorch's scoring callbacks do in ``on_train_begin``.
    """
    for _, cb in net.callbacks_:
        name = getattr(cb, "name", None)
        if not isinstance(name, str) or not hasattr(cb, "best_score_"):
            continue
        best = [row[name] for row in net.history if row.get(f"{name}_best") is True]
        if best:
            cb.best_score_ = best[-1]


def _fit_batched(nets, X, trains, checkpoint=None):
    """Train ``nets[k]`` on ``X[trains[k]]`` as one stacked model.

    Each net is prepared exactly as its own ``fit`` prepares it (module,
    optimizer, validated data, seeded streams); :class:`_batched.FoldStack`
    trains the stacked modules; every net then gets its weights, optimizer
    state, history, checkpoints and callback calls as its sequential fit
    would.

    With ``checkpoint`` (see :meth:`DensityNet.fit_folds`), a saved state is
    loaded before the first epoch and training continues after it; the
    state is saved on the nets' schedule (``save_state_every``,
    ``save_state_seconds``) and after the last epoch. What is saved is
    everything the remaining epochs read (:meth:`FoldStack.training_state`,
    the histories and the weight snapshots of ``checkpoint_epochs``), so a
    resumed fit computes the same numbers as one that was never stopped.
    """
    for net, train in zip(nets, trains):
        net.initialize()
        net._prepare_training(_safe_indexing(X, train))

    def part(k):
        # a fold's training rows, validated, for its callbacks only: made
        # when needed, never all K at once (K copies of the data)
        return nets[k]._validate_X(_safe_indexing(X, trains[k]), reset=False)

    first = nets[0]
    every, seconds = _save_schedule(first)
    if every is None and seconds is None:
        checkpoint = None
    adam = _batched.adam_config([net.optimizer_ for net in nets])
    if any(torch.device(net.device) != torch.device(first.device) for net in nets):
        raise _batched.NotBatchable("the nets are on different devices")

    # the data: every training row once, validated as the fits validate it
    used = np.unique(np.concatenate(trains))
    data = first._to_tensor(first._validate_X(_safe_indexing(X, used), reset=False))
    fold_rows = [torch.as_tensor(np.searchsorted(used, t)) for t in trains]

    batch_size, shuffle, drop_last = first._train_iterator_config()
    batch_sizes = [len(t) if batch_size == -1 else max(1, batch_size) for t in trains]
    streams = [net._training_streams() for net in nets]
    stack = _batched.FoldStack(
        [net.module_ for net in nets],
        adam,
        data,
        fold_rows,
        batch_sizes,
        drop_last=drop_last,
        shuffle_generators=[st["shuffle"] for st in streams] if shuffle else None,
        noise_generators=(
            [st["noise"] for st in streams] if streams[0]["pass_generator"] else None
        ),
    )
    checkpoints = {int(e) for e in (first.checkpoint_epochs or ())}

    for k, net in enumerate(nets):
        net.notify("on_train_begin", X=part(k), y=None)
    start = 0
    if checkpoint is not None:
        saved = checkpoint.load()
        if saved is not None:
            try:
                start = _restore_training_state(stack, nets, *saved)
            except (ValueError, KeyError, TypeError) as exc:
                # checked before anything is restored: the nets are fresh
                warnings.warn(
                    f"The saved training state of these {len(nets)} folds does "
                    f"not fit them ({exc}); training starts afresh.",
                    RuntimeWarning,
                    stacklevel=2,
                )
            else:
                logger.info(
                    "resuming the fold-batched training of %d fits after epoch "
                    "%d of %d (saved state)",
                    len(nets),
                    start,
                    first.max_epochs,
                )
    last_save = time.monotonic()
    try:
        for epoch in range(start, first.max_epochs):
            for net in nets:
                net.notify("on_epoch_begin", dataset_train=None, dataset_valid=None)
            losses, sizes, counts = stack.run_epoch()
            # the history of the epoch's batches, as the sequential fits
            # record it (a fold's batches are its first counts[k] steps)
            for k, net in enumerate(nets):
                history = net.history
                for j in range(counts[k]):
                    history.new_batch()
                    history.record_batch("train_loss", losses[j][k])
                    history.record_batch("train_batch_size", sizes[j][k])
            for k, net in enumerate(nets):
                net.history.record("train_batch_count", counts[k])
            if len(first.history) in checkpoints:
                stack.unstack()
            for net in nets:
                net._notify_epoch_end(first_epoch=epoch == start)
            _report("training epochs (all folds)", epoch + 1, first.max_epochs)
            done = epoch + 1
            if checkpoint is not None and (
                done == first.max_epochs
                or (every is not None and done % every == 0)
                or (seconds is not None and time.monotonic() - last_save >= seconds)
            ):
                try:
                    checkpoint.save(*_training_state(stack, nets, done))
                except OSError as exc:  # a full disk must not end the training
                    warnings.warn(
                        f"The training state of {len(nets)} folds could not be "
                        f"saved after epoch {done} ({exc}); training continues "
                        "without saving it.",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    checkpoint = None
                last_save = time.monotonic()
    finally:
        stack.unstack()
    for k, net in enumerate(nets):
        net.optimizer_.state.clear()
        net.optimizer_.state.update(stack.optimizer_state(k))
        net.notify("on_train_end", X=part(k), y=None)
    return nets
