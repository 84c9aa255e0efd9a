"""Fold-batched training: the K fits of a cross-validation as one model.

:meth:`DensityNet.fit_folds` trains K clones of a net, one per training
part, simultaneously: their weights are stacked along a leading fold axis
(every ``nn.Linear`` becomes one batched matrix product, ``torch.bmm`` over
the folds; every other parameter of shape ``s`` becomes ``(K, 1, *s)`` and
broadcasts over the batch) and one forward/backward pass per step serves all
folds. The result equals K independent :meth:`~DensityNet.fit` calls up to
floating-point rounding, because everything that makes a fit what it is stays
per fold:

- initialisation: each clone builds its own module exactly as its ``fit``
  would (``DensityNet._prepare_training``, seeded from its ``random_state``);
  the stacked model is assembled from those modules;
- data: fold ``k`` sees only its training rows, in batches of the same
  composition and order as its sequential fit (its own shuffle generator,
  ``DensityNet._training_streams``); a shorter last batch, or a fold with
  fewer batches, is padded with rows whose loss weight is zero;
- noise: the module draws fold ``k``'s training noise from fold ``k``'s
  generator with the shapes of its own batch (``VAEModule.draw_noise``);
- loss: the per-fold mean losses are summed, so the gradient of fold ``k``'s
  weights is the gradient of its own loss (folds share no parameter, and no
  operation mixes folds: no batch norm, no global gradient clipping);
- optimizer: Adam/AdamW is elementwise, so it runs on the stacked tensors
  with torch's own implementation (``torch.optim.adam.adam``) and the
  hyper-parameters of the clones' optimizers; each fold keeps its own step
  count, and a fold without a batch at some step is left out of that update
  altogether (its weights, moments and step count do not move), exactly as
  its sequential fit, which has no such step.

After training the weights, optimizer state, history and checkpoints are
written back into the clones, which are then ordinary fitted nets.
Everything else (custom modules, convolutional VAEs, other optimizers or
callbacks, ``warm_start``, validation splits, non-integer ``random_state``)
falls back to fitting the clones one after another.
"""

import copy
import logging
import numbers

import numpy as np
import torch
from sklearn.utils import _safe_indexing
from skorch.callbacks import PrintLog
from skorch.dataset import Dataset as SkorchDataset
from torch import nn
from torch.optim.adam import adam as _adam
from torch.utils.data import DataLoader

from .._progress import report
from ._base import _FAST_ITERATOR_KWARGS, DensityLoss, DensityNet
from ._flow import RealNVP, _AffineCoupling
from ._likelihoods import (
    BernoulliLikelihood,
    GaussianLikelihood,
    LogitGaussianLikelihood,
    _GaussianNoise,
)
from ._vae import VAEModule

__all__ = ["fit_folds", "batching_unavailable_reason"]

logger = logging.getLogger("sklearn_mem")

# modules whose own code is batch-shape agnostic: they only use their
# submodules, elementwise operations on broadcastable parameters and sums
# over the last axis, so a copy with fold-stacked parameters runs all folds
_BATCH_SAFE = (
    nn.Sequential,
    nn.ModuleList,
    nn.ReLU,
    nn.LeakyReLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Softplus,
    nn.Identity,
    VAEModule,
    RealNVP,
    _AffineCoupling,
    BernoulliLikelihood,
    GaussianLikelihood,
    LogitGaussianLikelihood,
    _GaussianNoise,
)
_TOP_MODULES = (VAEModule, RealNVP)
_OPTIMIZERS = (torch.optim.Adam, torch.optim.AdamW)
# DensityNet methods the batched loop re-implements; a subclass overriding
# one of them trains differently, so it is fitted sequentially
_LOOP_METHODS = (
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


class _NotBatchable(Exception):
    """Raised while preparing a batched fit that is not possible."""


class _StackedLinear(nn.Module):
    """K ``nn.Linear`` layers, one per fold: ``(K, B, in) -> (K, B, out)``.

    The weight is held as ``(K, in, out)`` (each fold's weight transposed),
    the layout for which ``torch.bmm`` is fastest on CPU.
    """

    def __init__(self, linears):
        super().__init__()
        # set by _fuse_relu when an nn.ReLU follows in a Sequential: the
        # rectification is then applied in place to the product (its
        # backward needs only the inputs), saving a tensor per layer
        self.relu = False
        self.weight = nn.Parameter(
            torch.stack([lin.weight.detach().t() for lin in linears]).contiguous()
        )
        if linears[0].bias is None:
            self.bias = None
        else:
            self.bias = nn.Parameter(
                torch.stack([lin.bias.detach() for lin in linears])[:, None, :]
            )

    def forward(self, x):
        if self.bias is None:
            out = torch.bmm(x, self.weight)
        else:
            out = torch.baddbmm(self.bias, x, self.weight)
        return out.relu_() if self.relu else out


def _fuse_relu(sequential):
    """Let each stacked linear layer of ``sequential`` apply the ReLU after it."""
    names = list(sequential._modules)
    for name, after in zip(names[:-1], names[1:]):
        linear, relu = sequential._modules[name], sequential._modules[after]
        if type(linear) is _StackedLinear and not linear.relu and type(relu) is nn.ReLU:
            linear.relu = True
            sequential._modules[after] = nn.Identity()


def _weight_view(stacked, k):
    return stacked[k].t()


def _row_view(stacked, k):
    return stacked[k, 0]


def _stack(template, folds, entries):
    """Turn ``template`` (a copy of ``folds[0]``) into the stacked module.

    ``entries`` collects ``(stacked parameter, fold parameters, view)`` with
    ``view(stacked, k)`` the part of the stacked tensor that is fold ``k``'s
    parameter, in its layout.
    """
    kind = type(template)
    if any(type(f) is not kind for f in folds):
        raise _NotBatchable("the folds' modules differ in structure")
    if kind is nn.Linear:
        shapes = {(tuple(f.weight.shape), f.bias is None) for f in folds}
        if len(shapes) != 1:
            raise _NotBatchable("the folds' modules differ in shape")
        new = _StackedLinear(folds)
        entries.append((new.weight, [f.weight for f in folds], _weight_view))
        if new.bias is not None:
            entries.append((new.bias, [f.bias for f in folds], _row_view))
        return new
    if kind not in _BATCH_SAFE:
        raise _NotBatchable(f"it contains a {kind.__name__} module")
    for name, child in list(template.named_children()):
        children = [getattr(f, name) for f in folds]
        setattr(template, name, _stack(child, children, entries))
    if kind is nn.Sequential:
        _fuse_relu(template)
    for name, _ in list(template.named_parameters(recurse=False)):
        params = [getattr(f, name) for f in folds]
        if len({tuple(p.shape) for p in params}) != 1:
            raise _NotBatchable("the folds' modules differ in shape")
        stacked = nn.Parameter(torch.stack([p.detach() for p in params])[:, None])
        setattr(template, name, stacked)
        entries.append((stacked, params, _row_view))
    for name, buf in template.named_buffers(recurse=False):
        for f in folds:
            other = getattr(f, name)
            if other.shape != buf.shape or not torch.equal(other, buf):
                raise _NotBatchable(f"the folds' buffer {name!r} differs")
    return template


def stack_modules(modules):
    """A module running ``modules`` (one per fold) on fold-stacked inputs.

    Returns
    -------
    stacked : torch.nn.Module
        Same class as ``modules[0]``; its parameters carry a leading fold
        axis, and it maps inputs of shape ``(K, B, ...)`` to ``(K, B, ...)``.
    entries : list of (Parameter, list of Parameter, callable)
        Each stacked parameter, the fold parameters it holds and the view
        ``view(stacked, k)`` that is fold ``k``'s parameter.
    """
    entries = []
    with torch.no_grad():
        stacked = _stack(copy.deepcopy(modules[0]), modules, entries)
    return stacked, entries


def unstack_into(entries, modules=None):
    """Copy each fold's part of the stacked parameters into its module."""
    with torch.no_grad():
        for stacked, params, view in entries:
            for k, p in enumerate(params):
                p.copy_(view(stacked.detach(), k))


class _FoldAdam:
    """Adam/AdamW over fold-stacked parameters with a step count per fold.

    The arithmetic is torch's own (:func:`torch.optim.adam.adam`, the same
    function ``torch.optim.Adam.step`` calls), applied to the whole stacked
    tensors when every fold steps with the same count, and otherwise to the
    folds' parts, grouped by step count. Folds left out of a step keep their
    weights, moments and step count.
    """

    def __init__(self, entries, n_folds, group, decoupled):
        self.entries = entries
        self.params = [stacked for stacked, _, _ in entries]
        self.n_folds = n_folds
        self.steps = [0] * n_folds
        self.amsgrad = bool(group["amsgrad"])
        beta1, beta2 = group["betas"]
        self.hyper = dict(
            amsgrad=self.amsgrad,
            beta1=beta1,
            beta2=beta2,
            lr=group["lr"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=group["maximize"],
            decoupled_weight_decay=decoupled,
        )
        # torch's fused kernel (one pass over the stacked tensors) unless the
        # clones' optimizer asks for another implementation; same algorithm
        if group.get("foreach") or group.get("fused") is False:
            self.hyper.update(foreach=group.get("foreach"), fused=group.get("fused"))
        else:
            self.hyper.update(foreach=False, fused=True)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.max_exp_avg_sq = (
            [torch.zeros_like(p) for p in self.params] if self.amsgrad else []
        )
        self._data = [p.detach() for p in self.params]
        # step tensors of the last all-fold update (adam() increments them),
        # reused while every fold keeps stepping with the same count
        self._shared_steps = None
        self._shared_count = None

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self, active):
        """One update of the folds ``active`` (a list of fold indices)."""
        groups = {}
        for k in active:
            groups.setdefault(self.steps[k], []).append(k)
        for count, folds in groups.items():
            every = len(folds) == self.n_folds

            def parts(tensors, folds=folds, every=every):
                if every:
                    return list(tensors)
                return [t[k] for t in tensors for k in folds]

            params = parts(self._data)
            grads = parts([p.grad for p in self.params])
            # a step tensor per updated tensor: adam() increments each
            if every and self._shared_count == count:
                steps = self._shared_steps
            else:
                steps = [torch.tensor(float(count)) for _ in params]
            _adam(
                params,
                grads,
                parts(self.exp_avg),
                parts(self.exp_avg_sq),
                parts(self.max_exp_avg_sq) if self.amsgrad else [],
                steps,
                **self.hyper,
            )
            for k in folds:
                self.steps[k] += 1
            if every:
                self._shared_steps, self._shared_count = steps, count + 1

    def state_for_fold(self, k):
        """The ``torch.optim.Adam`` state of fold ``k``, keyed by its params."""
        state = {}
        for i, (_, params, view) in enumerate(self.entries):
            entry = {
                "step": torch.tensor(float(self.steps[k])),
                "exp_avg": view(self.exp_avg[i], k).clone(
                    memory_format=torch.contiguous_format
                ),
                "exp_avg_sq": view(self.exp_avg_sq[i], k).clone(
                    memory_format=torch.contiguous_format
                ),
            }
            if self.amsgrad:
                entry["max_exp_avg_sq"] = view(self.max_exp_avg_sq[i], k).clone(
                    memory_format=torch.contiguous_format
                )
            state[params[k]] = entry
        return state


# ----------------------------------------------------------------------
# When can the folds be batched?
# ----------------------------------------------------------------------
def _overridden(net, name):
    return getattr(type(net), name, None) is not getattr(DensityNet, name, None)


def _train_iterator_config(net):
    """(batch_size, shuffle, drop_last) of the fast tensor iterator, or None."""
    kwargs = net.get_params_for("iterator_train")
    if net.iterator_train is not DataLoader or not set(kwargs) <= (
        _FAST_ITERATOR_KWARGS | {"batch_size"}
    ):
        return None
    if kwargs.get("num_workers", 0):
        return None
    batch_size = kwargs.get("batch_size", net.batch_size)
    return (
        int(batch_size),
        bool(kwargs.get("shuffle", False)),
        bool(kwargs.get("drop_last", False)),
    )


def _net_reason(net):
    """Why this (unfitted) net cannot join a batched fit, or None."""
    name = type(net).__name__
    if not isinstance(net, DensityNet):
        return f"{name} is not a DensityNet"
    for method in _LOOP_METHODS:
        if _overridden(net, method):
            return f"{name} overrides {method}"
    rs = net.random_state
    if not isinstance(rs, numbers.Integral) or isinstance(rs, bool):
        return "random_state is not an integer"
    module = net.module
    if not (isinstance(module, type) and module in _TOP_MODULES):
        shown = getattr(module, "__name__", type(module).__name__)
        return f"the module {shown} is not VAEModule or RealNVP"
    if net.criterion is not DensityLoss or net.get_params_for("criterion"):
        return "the criterion is not the default DensityLoss"
    if net.optimizer not in _OPTIMIZERS:
        shown = getattr(net.optimizer, "__name__", net.optimizer)
        return f"the optimizer {shown} is not Adam or AdamW"
    if net.callbacks not in (None, [], ()):
        return "callbacks are set (only the default callbacks are batched)"
    if net.train_split is not None:
        return "train_split is set"
    if net.warm_start:
        return "warm_start=True"
    if getattr(net, "compile", False):
        return "compile=True"
    if net.dataset is not SkorchDataset or net.get_params_for("dataset"):
        return "a custom dataset is set"
    if _train_iterator_config(net) is None:
        return "the training iterator is customised"
    return None


def _optimizer_config(net):
    """(hyper-parameter group, decoupled weight decay) of a prepared net."""
    opt = net.optimizer_
    if type(opt) not in _OPTIMIZERS:
        raise _NotBatchable(f"the optimizer is a {type(opt).__name__}")
    if len(opt.param_groups) != 1:
        raise _NotBatchable("the optimizer has several parameter groups")
    group = {k: v for k, v in opt.param_groups[0].items() if k != "params"}
    if group.get("capturable") or group.get("differentiable"):
        raise _NotBatchable("the optimizer is capturable or differentiable")
    if isinstance(group["lr"], torch.Tensor):
        raise _NotBatchable("the learning rate is a tensor")
    decoupled = bool(
        group.get("decoupled_weight_decay", False) or type(opt) is torch.optim.AdamW
    )
    return group, decoupled


def _comparable(value):
    if isinstance(value, (list, tuple)):
        return tuple(_comparable(v) for v in value)
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), value.tolist())
    return value


def batching_unavailable_reason(estimators):
    """Why ``estimators`` cannot be fitted as one batched model, or None.

    Checks the parameters only (nothing is fitted). A None answer can still
    turn into a sequential fit when the built modules cannot be stacked.
    """
    if not estimators:
        return "there are no estimators"
    for net in estimators:
        reason = _net_reason(net)
        if reason is not None:
            return reason
    params = []
    for net in estimators:
        p = net.get_params(deep=False)
        p.pop("random_state", None)
        params.append(repr(sorted((k, repr(v)) for k, v in p.items())))
    if len(set(params)) != 1:
        return "the estimators differ in parameters other than random_state"
    return None


# ----------------------------------------------------------------------
# The batched fit
# ----------------------------------------------------------------------
def _fit_sequential(estimators, X, trains):
    fitted = []
    for est, train in zip(estimators, trains):
        fitted.append(est.fit(_safe_indexing(X, train)))
        report("fits (one by one)", len(fitted), len(estimators))
    return fitted


def fit_folds(estimators, X, trains):
    """Fit ``estimators[k]`` on ``X[trains[k]]``, batched when possible.

    See :meth:`DensityNet.fit_folds`.
    """
    estimators = list(estimators)
    trains = [np.asarray(t, dtype=np.intp) for t in trains]
    if len(estimators) != len(trains):
        raise ValueError(
            f"fit_folds got {len(estimators)} estimators for {len(trains)} "
            "training parts; pass one estimator per training part."
        )
    reason = batching_unavailable_reason(estimators)
    if reason is None:
        try:
            return _fit_batched(estimators, X, trains)
        except _NotBatchable as exc:
            reason = str(exc)
    logger.debug("fit_folds: fitting the folds one by one: %s", reason)
    return _fit_sequential(estimators, X, trains)


class _Plan:
    """Row indices, masks and sizes of every step of one epoch."""

    def __init__(self, rows, batch_sizes, drop_last, device):
        n_folds = len(rows)
        counts = []
        for r, b in zip(rows, batch_sizes):
            n = len(r)
            counts.append(n // b if drop_last else -(-n // b))
        n_steps = max(counts)
        width = max(batch_sizes)
        idx = np.empty((n_steps, n_folds, width), dtype=np.int64)
        sizes = np.zeros((n_steps, n_folds), dtype=np.int64)
        columns = np.arange(width)
        for k, (r, b, c) in enumerate(zip(rows, batch_sizes, counts)):
            r = np.asarray(r, dtype=np.int64)
            # batch j holds r[j*b : j*b + size_j]; its padding repeats its
            # first row, and steps past the fold's last batch hold r[0]
            starts = np.arange(c) * b
            size = np.minimum(b, len(r) - starts)
            pos = starts[:, None] + columns[None, :]
            pos = np.where(columns[None, :] < size[:, None], pos, starts[:, None])
            idx[:c, k] = r[pos]
            idx[c:, k] = r[0]
            sizes[:c, k] = size
        positions = torch.arange(width)
        mask = positions[None, None, :] < torch.as_tensor(sizes)[:, :, None]
        self.n_steps = n_steps
        self.counts = counts
        self.sizes = sizes
        self.idx = torch.as_tensor(idx).to(device)
        self.mask = mask.to(device=device, dtype=torch.float32)
        self.denominator = torch.as_tensor(
            np.maximum(sizes, 1), dtype=torch.float32
        ).to(device)


class _NoiseBuffers:
    """Each fold's training noise of a step, drawn into stacked buffers.

    Fold ``k`` draws from its own generator with the shapes of its own batch
    (``VAEModule.draw_noise``), straight into its part of preallocated
    ``(K, width, ...)`` tensors; the rest of a fold's part (a short batch,
    or no batch at this step) is zero.
    """

    def __init__(self, modules, generators, width, device):
        self.modules = modules
        self.generators = generators
        self.device = device
        first = modules[0]
        K = len(modules)
        self.eps = torch.zeros((K, width, first.latent_dim), device=device)
        self.u = None
        if first.likelihood.needs_noise:
            self.u = torch.zeros((K, width, first.n_features), device=device)

    def draw(self, sizes):
        eps, u = self.eps, self.u
        width = eps.shape[1]
        for k, size in enumerate(sizes):
            if size:
                out = (eps[k, :size], None if u is None else u[k, :size])
                self.modules[k].draw_noise(
                    (size,), self.generators[k], self.device, out=out
                )
            if size < width:
                eps[k, size:] = 0.0
                if u is not None:
                    u[k, size:] = 0.0
        return eps, u


def _notify_epoch_end(net):
    """``net.notify("on_epoch_end")``, without a silent PrintLog's table.

    With ``verbose=0`` skorch's PrintLog formats a table per epoch and
    prints nothing (about 1 ms, 10% of a batched step); only its
    first-iteration flag is kept up to date.
    """
    kwargs = {"dataset_train": None, "dataset_valid": None}
    net.on_epoch_end(net, **kwargs)
    for _, cb in net.callbacks_:
        if isinstance(cb, PrintLog) and not net.verbose:
            cb.first_iteration_ = False
            continue
        cb.on_epoch_end(net, **kwargs)


def _fit_batched(nets, X, trains):
    X_parts = []
    for net, train in zip(nets, trains):
        net.initialize()
        X_parts.append(net._prepare_training(_safe_indexing(X, train)))
    first = nets[0]
    modules = [net.module_ for net in nets]
    group, decoupled = _optimizer_config(first)
    for net in nets[1:]:
        if _comparable(_optimizer_config(net)) != _comparable((group, decoupled)):
            raise _NotBatchable("the optimizers differ")
    if any(torch.device(net.device) != torch.device(first.device) for net in nets):
        raise _NotBatchable("the nets are on different devices")
    stacked, entries = stack_modules(modules)
    optimizer = _FoldAdam(entries, len(nets), group, decoupled)
    device = modules[0].parameters().__next__().device

    # the data: every training row once, validated as the fits validate it
    used = np.unique(np.concatenate(trains))
    data = first._to_tensor(first._validate_X(_safe_indexing(X, used), reset=False))
    fold_rows = [torch.as_tensor(np.searchsorted(used, t)) for t in trains]

    batch_size, shuffle, drop_last = _train_iterator_config(first)
    batch_sizes = [len(t) if batch_size == -1 else max(1, batch_size) for t in trains]
    streams = [net._training_streams() for net in nets]
    draws_noise = hasattr(stacked, "draw_noise") and streams[0]["pass_generator"]
    checkpoints = {int(e) for e in (first.checkpoint_epochs or ())}
    n_folds = len(nets)

    if draws_noise:
        width = max(batch_sizes)
        noise = _NoiseBuffers(modules, [st["noise"] for st in streams], width, device)
    for net, Xk in zip(nets, X_parts):
        net.notify("on_train_begin", X=Xk, y=None)
    stacked.train()
    try:
        for epoch in range(first.max_epochs):
            for net in nets:
                net.notify("on_epoch_begin", dataset_train=None, dataset_valid=None)
            rows = []
            for k in range(n_folds):
                r = fold_rows[k]
                if shuffle:
                    r = r[torch.randperm(len(r), generator=streams[k]["shuffle"])]
                rows.append(r)
            plan = _Plan(rows, batch_sizes, drop_last, device)
            all_sizes = plan.sizes.tolist()
            # every step's batches gathered at once: x of step j is a view
            epoch_x = data[plan.idx]
            epoch_losses = torch.empty((plan.n_steps, n_folds), device=device)
            for j in range(plan.n_steps):
                sizes = all_sizes[j]
                active = [k for k in range(n_folds) if sizes[k]]
                x = epoch_x[j]
                if draws_noise:
                    eps, u = noise.draw(sizes)
                    y_pred = stacked.elbo(x, eps, u)
                else:
                    y_pred = stacked(x)
                fold_loss = -(y_pred * plan.mask[j]).sum(1) / plan.denominator[j]
                optimizer.zero_grad()
                fold_loss.sum().backward()
                optimizer.step(active)
                epoch_losses[j] = fold_loss.detach()
            # the history of the epoch's batches, as the sequential fits
            # record it (a fold's batches are its first counts[k] steps)
            losses = epoch_losses.tolist()
            for k, net in enumerate(nets):
                history = net.history
                for j in range(plan.counts[k]):
                    history.new_batch()
                    history.record_batch("train_loss", losses[j][k])
                    history.record_batch("train_batch_size", all_sizes[j][k])
            for k, net in enumerate(nets):
                net.history.record("train_batch_count", plan.counts[k])
            if len(first.history) in checkpoints:
                unstack_into(entries)
            for net in nets:
                _notify_epoch_end(net)
            report("training epochs (all folds)", epoch + 1, first.max_epochs)
    finally:
        unstack_into(entries)
    for k, net in enumerate(nets):
        net.optimizer_.state.clear()
        net.optimizer_.state.update(optimizer.state_for_fold(k))
        net.notify("on_train_end", X=X_parts[k], y=None)
    return nets
