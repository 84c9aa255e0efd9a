"""Fold-batched training: the K fits of a cross-validation as one model.

:meth:`DensityNet.fit_folds` trains K clones of a net, one per training
part, simultaneously: their modules are stacked along a leading fold axis
(every ``nn.Linear`` becomes one batched matrix product, ``torch.bmm`` over
the folds; every other parameter of shape ``s`` becomes ``(K, 1, *s)`` and
broadcasts over the batch) and one forward/backward pass per step serves all
folds. The result equals K independent :meth:`~DensityNet.fit` calls up to
floating-point rounding, because everything that makes a fit what it is stays
per fold:

- initialisation: each clone builds its own module exactly as its ``fit``
  would; the stacked module is assembled from those modules;
- data: fold ``k`` sees only its training rows, in batches of the same
  composition and order as its sequential fit (its own shuffle generator);
  a shorter last batch, or a fold with fewer batches, is padded with rows
  whose loss weight is zero;
- noise: the module draws fold ``k``'s training noise from fold ``k``'s
  generator with the shapes of its own batch (``draw_noise``, below);
- loss: the per-fold mean losses are summed, so the gradient of fold ``k``'s
  weights is the gradient of its own loss (folds share no parameter, and no
  operation mixes folds: no batch norm, no global gradient clipping);
- optimizer: Adam/AdamW is elementwise, so it runs on the stacked tensors
  with torch's own implementation (``torch.optim.adam.adam``) and the
  hyper-parameters of the clones' optimizers; each fold keeps its own step
  count, and a fold without a batch at some step is left out of that update
  altogether (its weights, moments and step count do not move), exactly as
  its sequential fit, which has no such step.

The stacking protocol. This module knows no model class: a module is
stacked when its class declares it, with the class attribute
``fold_stackable = True`` written in the class itself (the declaration is
not inherited: a subclass may compute differently, so it declares again).
The declaration says that the module's own code is batch-shape agnostic: it
only uses its submodules, elementwise operations on broadcastable parameters
and buffers, and reductions over the last axis, so a copy with fold-stacked
parameters maps inputs of shape ``(K, B, ...)`` to outputs ``(K, B)`` and
runs every fold at once. Its submodules are stacked in turn: ``nn.Linear``
becomes a batched product, ``nn.Conv2d`` and ``nn.ConvTranspose2d`` become
fold-stacked convolutions (below), torch's containers and elementwise
activations need no change, and any other submodule must declare
``fold_stackable`` itself. Buffers must be equal across the folds.

Convolutions. An image module reshapes its input to ``(-1, C, H, W)``
before its convolutions, which merges the fold axis into the batch axis,
fold-major: a stacked convolution therefore takes ``(K * B, C, H, W)`` (or
``(K, B, C, H, W)``) and returns its output in the same form, each fold's
images convolved with that fold's weights; the module reshapes back to
``(K, B, ...)`` with ``reshape(*lead, -1)`` where it flattens. Consecutive
stacked convolutions of a Sequential (with the activations between them)
run together: on a GPU as one grouped convolution per layer
(``groups = K * groups``: the folds' channels side by side, laid out once
for the whole run), one kernel launch instead of K; on the CPU fold by
fold, each fold's images through all the layers with that fold's
weights, so that every activation is one fold's (the stacked activations
of MNIST-size images are tens of MiB, which the allocator maps afresh,
page by page, at every step) and each fold's convolutions are computed
exactly as its sequential fit computes them. ``python
benchmarks/bench_deep.py`` times both forms (and ``torch.func.vmap``).

Noise. A module whose ``forward``
draws training noise (it takes a ``generator``) also defines
``draw_noise(batch_shape, generator=None, device=None, out=None)``, which
returns the noise of a batch as a tuple of tensors (or None) drawn in the
order ``forward`` draws it, writing into the tensors of ``out`` when given,
and accepts that tuple back as ``forward(x, noise=...)``.

After training the weights and optimizer state are written back into the
fold modules; :class:`DensityNet` then fills each clone's history and
checkpoints, so the clones are ordinary fitted nets. Anything else
(undeclared modules, other optimizers or callbacks, ``warm_start``,
validation splits, non-integer ``random_state``) is fitted one clone after
another.
"""

import copy

import numpy as np
import torch
from torch import nn
from torch.optim.adam import adam as _adam

__all__ = [
    "FoldStack",
    "NotBatchable",
    "STACKED_OPTIMIZERS",
    "adam_config",
    "batching_unavailable_reason",
    "declares_fold_stacking",
    "fit_folds",
    "stack_modules",
    "unstack_into",
]

# torch's own modules that a stacked copy runs unchanged: containers and
# elementwise activations (nn.Linear is replaced by _StackedLinear)
_TORCH_STACKABLE = (
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
)
# the optimizers whose update runs on the stacked tensors
STACKED_OPTIMIZERS = (torch.optim.Adam, torch.optim.AdamW)


class NotBatchable(Exception):
    """Raised while preparing a batched fit that is not possible."""


def declares_fold_stacking(cls):
    """Whether the module class ``cls`` itself declares ``fold_stackable = True``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_mem.models._batched import declares_fold_stacking
    >>> class Scale(torch.nn.Module):
    ...     fold_stackable = True
    >>> class Subclass(Scale):
    ...     pass
    >>> declares_fold_stacking(Scale), declares_fold_stacking(Subclass)
    (True, False)
    """
    return isinstance(cls, type) and vars(cls).get("fold_stackable", False) is True


def _stackable_part(cls):
    return cls in _TORCH_STACKABLE or declares_fold_stacking(cls)


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
        stacked = type(linear) in (_StackedLinear, _StackedConv)
        if stacked and not linear.relu and type(relu) is nn.ReLU:
            linear.relu = True
            sequential._modules[after] = nn.Identity()


# devices on which stacked convolutions run as one grouped convolution
# (elsewhere: one convolution per fold); bench_deep.py times both on the CPU
_GROUPED_CONV_DEVICES = ("cuda",)


class _StackedConv(nn.Module):
    """K ``nn.Conv2d`` (or ``nn.ConvTranspose2d``) layers, one per fold.

    Input ``(K * B, C, H, W)`` (folds merged into the batch axis, fold-major)
    or ``(K, B, C, H, W)``; output in the same form. The weight is held as
    ``(K, *w)`` with ``w`` each fold's weight shape, the bias as ``(K, out)``;
    flattened over the first two axes they are the weight and bias of the
    grouped convolution that runs every fold at once.
    """

    def __init__(self, convs):
        super().__init__()
        first = convs[0]
        self.transposed = isinstance(first, nn.ConvTranspose2d)
        self.n_folds = len(convs)
        self.stride, self.padding = first.stride, first.padding
        self.dilation, self.groups = first.dilation, first.groups
        self.output_padding = first.output_padding
        self.relu = False  # set by _fuse_relu, as for _StackedLinear
        self.weight = nn.Parameter(torch.stack([c.weight.detach() for c in convs]))
        if first.bias is None:
            self.bias = None
        else:
            self.bias = nn.Parameter(torch.stack([c.bias.detach() for c in convs]))

    def _conv(self, x, weight, bias, groups):
        if self.transposed:
            return torch.nn.functional.conv_transpose2d(
                x,
                weight,
                bias,
                self.stride,
                self.padding,
                self.output_padding,
                groups,
                self.dilation,
            )
        return torch.nn.functional.conv2d(
            x, weight, bias, self.stride, self.padding, self.dilation, groups
        )

    def fold_parts(self):
        """Each fold's (weight, bias), as views (one unbind per tensor)."""
        biases = [None] * self.n_folds if self.bias is None else self.bias.unbind(0)
        return list(zip(self.weight.unbind(0), biases))

    def fold_forward(self, x, part):
        """Fold ``k``'s convolution of its images ``x``; ``part = fold_parts()[k]``."""
        out = self._conv(x, *part, self.groups)
        return out.relu_() if self.relu else out

    def grouped_forward(self, x):
        """Every fold at once on ``(B, K * C, H, W)`` (folds' channels side by side)."""
        bias = None if self.bias is None else self.bias.flatten()
        out = self._conv(x, self.weight.flatten(0, 1), bias, self.n_folds * self.groups)
        return out.relu_() if self.relu else out

    def forward(self, x):
        return _ConvRun([self])(x)


class _ConvRun(nn.Module):
    """Consecutive stacked convolutions (and activations) of a Sequential.

    Takes and returns what a stacked convolution does (``(K * B, C, H, W)``
    or ``(K, B, C, H, W)``). On a device of :data:`_GROUPED_CONV_DEVICES` the
    input is laid out once as ``(B, K * C, H, W)`` and every layer is one
    grouped convolution; elsewhere (the CPU) each fold's images go through
    all the layers in turn with that fold's weights, and only the run's
    output is stacked: every activation is then one fold's, a tenth of the
    stacked size, which on the CPU stays in the allocator's reused memory
    and in cache (stacked activations of tens of MiB are mapped afresh,
    page by page, at every step) and computes exactly what the fold's
    sequential fit computes.
    """

    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        first = next(m for m in self.layers if type(m) is _StackedConv)
        K = first.n_folds
        merged = x.dim() == 4
        xs = x.reshape(K, -1, *x.shape[1:]) if merged else x
        if x.device.type in _GROUPED_CONV_DEVICES:
            B = xs.shape[1]
            h = xs.transpose(0, 1).reshape(B, -1, *xs.shape[3:])
            for layer in self.layers:
                stacked = type(layer) is _StackedConv
                h = layer.grouped_forward(h) if stacked else layer(h)
            out = h.reshape(B, K, -1, *h.shape[2:]).transpose(0, 1).contiguous()
        else:
            parts = [
                layer.fold_parts() if type(layer) is _StackedConv else None
                for layer in self.layers
            ]
            outs = []
            # unbind, not xs[k]: the backward of K selections would write K
            # zero-filled gradients of the whole stack; unbind's stacks once
            for k, h in enumerate(xs.unbind(0)):
                for layer, part in zip(self.layers, parts):
                    h = layer(h) if part is None else layer.fold_forward(h, part[k])
                outs.append(h)
            out = torch.stack(outs)
        return out.reshape(-1, *out.shape[2:]) if merged else out


# elementwise modules that a run of stacked convolutions carries along
_ELEMENTWISE = tuple(
    kind for kind in _TORCH_STACKABLE if kind not in (nn.Sequential, nn.ModuleList)
)


def _group_conv_runs(sequential):
    """Wrap each run of stacked convolutions of ``sequential`` in a _ConvRun."""
    modules = list(sequential._modules.items())
    kept, run = [], []

    def close():
        if any(type(m) is _StackedConv for _, m in run):
            kept.append((run[0][0], _ConvRun([m for _, m in run])))
        else:
            kept.extend(run)
        run.clear()

    for name, module in modules:
        if type(module) is _StackedConv or type(module) in _ELEMENTWISE:
            run.append((name, module))
        else:
            close()
            kept.append((name, module))
    close()
    sequential._modules.clear()
    for name, module in kept:
        sequential._modules[name] = module


def _check_conv(folds):
    first = folds[0]
    if any(f.padding_mode != "zeros" for f in folds):
        raise NotBatchable("a convolution pads other than with zeros")
    if isinstance(first.padding, str):
        raise NotBatchable("a convolution has a named padding")
    settings = {
        (
            tuple(f.weight.shape),
            f.bias is None,
            f.stride,
            f.padding,
            f.dilation,
            f.groups,
            f.output_padding,
        )
        for f in folds
    }
    if len(settings) != 1:
        raise NotBatchable("the folds' convolutions differ")


def _weight_view(stacked, k):
    return stacked[k].t()


def _fold_view(stacked, k):
    return stacked[k]


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
        raise NotBatchable("the folds' modules differ in structure")
    if kind is nn.Linear:
        shapes = {(tuple(f.weight.shape), f.bias is None) for f in folds}
        if len(shapes) != 1:
            raise NotBatchable("the folds' modules differ in shape")
        new = _StackedLinear(folds)
        entries.append((new.weight, [f.weight for f in folds], _weight_view))
        if new.bias is not None:
            entries.append((new.bias, [f.bias for f in folds], _row_view))
        return new
    if kind in (nn.Conv2d, nn.ConvTranspose2d):
        _check_conv(folds)
        new = _StackedConv(folds)
        entries.append((new.weight, [f.weight for f in folds], _fold_view))
        if new.bias is not None:
            entries.append((new.bias, [f.bias for f in folds], _fold_view))
        return new
    if not _stackable_part(kind):
        raise NotBatchable(f"it contains a {kind.__name__} module")
    for name, child in list(template.named_children()):
        children = [getattr(f, name) for f in folds]
        setattr(template, name, _stack(child, children, entries))
    if kind is nn.Sequential:
        _fuse_relu(template)
        _group_conv_runs(template)
    for name, _ in list(template.named_parameters(recurse=False)):
        params = [getattr(f, name) for f in folds]
        if len({tuple(p.shape) for p in params}) != 1:
            raise NotBatchable("the folds' modules differ in shape")
        stacked = nn.Parameter(torch.stack([p.detach() for p in params])[:, None])
        setattr(template, name, stacked)
        entries.append((stacked, params, _row_view))
    for name, buf in template.named_buffers(recurse=False):
        for f in folds:
            other = getattr(f, name)
            if other.shape != buf.shape or not torch.equal(other, buf):
                raise NotBatchable(f"the folds' buffer {name!r} differs")
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


def unstack_into(entries):
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


def _adam_config(opt):
    """(hyper-parameter group, decoupled weight decay) of one optimizer."""
    if type(opt) not in STACKED_OPTIMIZERS:
        raise NotBatchable(f"the optimizer is a {type(opt).__name__}")
    if len(opt.param_groups) != 1:
        raise NotBatchable("the optimizer has several parameter groups")
    group = {k: v for k, v in opt.param_groups[0].items() if k != "params"}
    if group.get("capturable") or group.get("differentiable"):
        raise NotBatchable("the optimizer is capturable or differentiable")
    if isinstance(group["lr"], torch.Tensor):
        raise NotBatchable("the learning rate is a tensor")
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


def adam_config(optimizers):
    """The shared Adam/AdamW configuration of the folds' optimizers.

    Returns
    -------
    group : dict
        The hyper-parameters of the (single) parameter group.
    decoupled : bool
        Whether weight decay is decoupled (AdamW).

    Raises
    ------
    NotBatchable
        When an optimizer is not Adam or AdamW, or the optimizers differ.
    """
    config = _adam_config(optimizers[0])
    for opt in optimizers[1:]:
        if _comparable(_adam_config(opt)) != _comparable(config):
            raise NotBatchable("the optimizers differ")
    return config


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
    (the module's ``draw_noise``), straight into its part of preallocated
    ``(K, width, ...)`` tensors; the rest of a fold's part (a short batch,
    or no batch at this step) is zero. The layout of the noise comes from
    one draw of a single row on a scratch generator.
    """

    def __init__(self, modules, generators, width, device):
        self.modules = modules
        self.generators = generators
        self.device = device
        self.width = width
        scratch = torch.Generator(device=generators[0].device)
        layout = modules[0].draw_noise((1,), scratch, device)
        K = len(modules)
        self.buffers = tuple(
            None
            if t is None
            else torch.zeros((K, width, *t.shape[1:]), dtype=t.dtype, device=device)
            for t in layout
        )

    def draw(self, sizes):
        buffers = self.buffers
        for k, size in enumerate(sizes):
            if size:
                out = tuple(None if b is None else b[k, :size] for b in buffers)
                self.modules[k].draw_noise(
                    (size,), self.generators[k], self.device, out=out
                )
            if size < self.width:
                for b in buffers:
                    if b is not None:
                        b[k, size:] = 0.0
        return buffers


class FoldStack:
    """K fold modules trained as one stacked module, one epoch at a time.

    Parameters
    ----------
    modules : list of torch.nn.Module
        The folds' freshly initialised modules (stackable, see above).
    adam : tuple
        ``adam_config`` of the folds' optimizers.
    data : tensor of shape (n_rows, n_features)
        Every training row once, on the modules' device.
    fold_rows : list of int tensors
        Fold ``k``'s training rows, as positions in ``data``.
    batch_sizes : list of int
        Each fold's batch size.
    drop_last : bool
        Whether a fold's shorter last batch is dropped.
    shuffle_generators : list of torch.Generator or None
        Each fold's batch-order generator; None keeps the rows in order.
    noise_generators : list of torch.Generator or None
        Each fold's training-noise generator, for modules that draw noise.

    Raises
    ------
    NotBatchable
        When the modules cannot be stacked.
    """

    def __init__(
        self,
        modules,
        adam,
        data,
        fold_rows,
        batch_sizes,
        *,
        drop_last=False,
        shuffle_generators=None,
        noise_generators=None,
    ):
        group, decoupled = adam
        self.n_folds = len(modules)
        self.stacked, self.entries = stack_modules(modules)
        self.optimizer = _FoldAdam(self.entries, self.n_folds, group, decoupled)
        self.device = next(modules[0].parameters()).device
        self.data = data
        self.fold_rows = fold_rows
        self.batch_sizes = batch_sizes
        self.drop_last = drop_last
        self.shuffle_generators = shuffle_generators
        self.noise = None
        if noise_generators is not None:
            if not hasattr(self.stacked, "draw_noise"):
                raise NotBatchable("the module draws noise but has no draw_noise")
            width = max(batch_sizes)
            self.noise = _NoiseBuffers(modules, noise_generators, width, self.device)
        self.stacked.train()

    def run_epoch(self):
        """Train every fold for one pass over its rows.

        Returns
        -------
        losses : list of list of float
            ``losses[j][k]``: fold ``k``'s mean loss at step ``j``.
        sizes : list of list of int
            ``sizes[j][k]``: fold ``k``'s batch size at step ``j`` (0 when
            it has no batch there).
        counts : list of int
            The number of batches of each fold (its first ``counts[k]``
            steps).
        """
        n_folds = self.n_folds
        rows = []
        for k in range(n_folds):
            r = self.fold_rows[k]
            if self.shuffle_generators is not None:
                r = r[torch.randperm(len(r), generator=self.shuffle_generators[k])]
            rows.append(r)
        plan = _Plan(rows, self.batch_sizes, self.drop_last, self.device)
        all_sizes = plan.sizes.tolist()
        # each step's batches gathered when it runs: gathering the whole
        # epoch at once held K copies of the training rows (1.7 GB for ten
        # folds of 54,000 x 784)
        epoch_losses = torch.empty((plan.n_steps, n_folds), device=self.device)
        stacked, optimizer = self.stacked, self.optimizer
        for j in range(plan.n_steps):
            sizes = all_sizes[j]
            active = [k for k in range(n_folds) if sizes[k]]
            x = self.data[plan.idx[j]]
            if self.noise is not None:
                y_pred = stacked(x, noise=self.noise.draw(sizes))
            else:
                y_pred = stacked(x)
            fold_loss = -(y_pred * plan.mask[j]).sum(1) / plan.denominator[j]
            optimizer.zero_grad()
            fold_loss.sum().backward()
            optimizer.step(active)
            epoch_losses[j] = fold_loss.detach()
        return epoch_losses.tolist(), all_sizes, plan.counts

    def unstack(self):
        """Write each fold's current weights into its module."""
        unstack_into(self.entries)

    def optimizer_state(self, k):
        """The ``torch.optim.Adam`` state of fold ``k``, keyed by its params."""
        return self.optimizer.state_for_fold(k)

    def training_state(self):
        """Everything the next epochs depend on, as plain numpy arrays.

        The stacked weights and buffers, the Adam moments and per-fold step
        counts, and the states of the folds' shuffle and noise generators;
        :meth:`load_training_state` puts them back, after which the next
        epochs compute exactly what they would have computed without the
        round trip (the batches of an epoch are planned from the shuffle
        generators at its start, and nothing else carries over).

        Returns
        -------
        arrays : dict of str to ndarray
        """
        arrays = {}
        for name, t in self.stacked.state_dict().items():
            arrays[f"module:{name}"] = _to_numpy(t)
        opt = self.optimizer
        moments = [("exp_avg", opt.exp_avg), ("exp_avg_sq", opt.exp_avg_sq)]
        if opt.amsgrad:
            moments.append(("max_exp_avg_sq", opt.max_exp_avg_sq))
        for name, tensors in moments:
            for i, t in enumerate(tensors):
                arrays[f"adam:{name}:{i}"] = _to_numpy(t)
        arrays["adam:steps"] = np.asarray(opt.steps, dtype=np.int64)
        for name, gens in self._generators():
            arrays[f"rng:{name}"] = np.stack([_to_numpy(g.get_state()) for g in gens])
        return arrays

    def load_training_state(self, arrays):
        """Restore what :meth:`training_state` returned.

        Raises
        ------
        ValueError
            When ``arrays`` do not fit this stack (another model, other
            folds or optimizer settings); nothing is changed then.
        """
        expected = set(self.training_state())
        if set(arrays) != expected:
            missing = sorted(expected - set(arrays))[:3]
            extra = sorted(set(arrays) - expected)[:3]
            raise ValueError(
                f"the saved state holds other tensors (missing {missing}, "
                f"unexpected {extra})"
            )
        current = self.training_state()
        for name, value in arrays.items():
            if value.shape != current[name].shape or value.dtype != current[name].dtype:
                raise ValueError(
                    f"the saved {name} has shape {value.shape} and dtype "
                    f"{value.dtype}; expected {current[name].shape} and "
                    f"{current[name].dtype}"
                )
        with torch.no_grad():
            self.stacked.load_state_dict(
                {
                    name[len("module:") :]: torch.from_numpy(value.copy())
                    for name, value in arrays.items()
                    if name.startswith("module:")
                }
            )
            opt = self.optimizer
            for name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
                for i, t in enumerate(getattr(opt, name)):
                    t.copy_(torch.from_numpy(arrays[f"adam:{name}:{i}"].copy()))
        opt.steps = [int(s) for s in arrays["adam:steps"]]
        # step tensors are rebuilt from the counts at the next update
        opt._shared_steps = opt._shared_count = None
        for name, gens in self._generators():
            for g, state in zip(gens, arrays[f"rng:{name}"]):
                g.set_state(torch.from_numpy(state.copy()))

    def _generators(self):
        if self.shuffle_generators is not None:
            yield "shuffle", self.shuffle_generators
        if self.noise is not None:
            yield "noise", self.noise.generators


def _to_numpy(tensor):
    return tensor.detach().to("cpu", copy=True).numpy()


# ----------------------------------------------------------------------
# The protocol seen from a list of nets
# ----------------------------------------------------------------------
def batching_unavailable_reason(estimators):
    """Why ``estimators`` cannot be fitted as one batched model, or None.

    Each estimator answers for itself (its
    ``fold_batching_unavailable_reason()``); the estimators must then differ
    in ``random_state`` only. Checks the parameters only (nothing is
    fitted): a None answer can still turn into a sequential fit when the
    built modules cannot be stacked.
    """
    if not estimators:
        return "there are no estimators"
    for net in estimators:
        ask = getattr(net, "fold_batching_unavailable_reason", None)
        if ask is None:
            return f"{type(net).__name__} is not a DensityNet"
        reason = ask()
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


def fit_folds(estimators, X, trains):
    """Fit ``estimators[k]`` on ``X[trains[k]]``, batched when possible.

    The estimators' own protocol method: ``estimators[0].fit_folds``
    (see :meth:`DensityNet.fit_folds`).
    """
    estimators = list(estimators)
    if len(estimators) != len(trains):
        raise ValueError(
            f"fit_folds got {len(estimators)} estimators for {len(trains)} "
            "training parts; pass one estimator per training part."
        )
    if not estimators:
        return []
    return estimators[0].fit_folds(estimators, X, trains)
