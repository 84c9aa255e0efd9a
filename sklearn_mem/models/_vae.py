"""Variational auto-encoder density estimator with an importance-weighted score."""

import functools
import math
import numbers

import numpy as np
import torch
from torch import nn

from ._adaptive import RunningIWAE, adaptive_log_prob
from ._base import DensityNet, _score_chunks
from ._likelihoods import LIKELIHOODS, check_likelihood_X, make_likelihood
from ._random import _derive_seed

__all__ = ["VAEModule", "VAEDensity"]

_LOG_2PI = math.log(2 * math.pi)
# VAEDensity(score_precision=...) -> dtype of the scoring matmuls
_SCORE_PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16}
# points (rows x importance samples) per scoring pass at float32
_SCORE_BATCH_SIZE = 4096

# n_importance_samples="auto": the first block of samples of every row, and
# the most a row gets
_AUTO_FIRST = 128
_AUTO_LARGEST = 2**15


def _check_input_shape(input_shape, architecture):
    if architecture not in ("mlp", "conv"):
        raise ValueError(f"architecture={architecture!r}; expected 'mlp' or 'conv'.")
    if input_shape is None:
        if architecture == "conv":
            raise ValueError(
                "architecture='conv' needs input_shape=(channels, height, "
                "width), e.g. (1, 8, 8) for sklearn's digits or (3, 32, 32) "
                "for CIFAR-10."
            )
        return None
    shape = tuple(int(s) for s in np.atleast_1d(input_shape))
    if architecture == "conv" and len(shape) != 3:
        raise ValueError(
            f"input_shape={input_shape!r}; architecture='conv' needs "
            "(channels, height, width), e.g. (1, 8, 8)."
        )
    if any(s < 1 for s in shape):
        raise ValueError(f"input_shape={input_shape!r} must be positive sizes.")
    return shape


class _Workspace:
    """Scratch tensors reused by every chunk of one scoring pass.

    Scoring evaluates the decoder on ``rows x S`` points per chunk; fresh
    activations of that size (megabytes) are, on CPU, mapped and faulted in
    page by page by the allocator at every chunk, which cost more than the
    matrix products themselves. The layers write into these buffers instead
    (``torch.addmm(..., out=)`` and an in-place ReLU: the same kernels, so
    the same numbers). A buffer grows to the largest chunk it has served.
    """

    def __init__(self):
        self._buffers = {}

    def get(self, key, shape, like):
        """A tensor of ``shape`` (dtype and device of ``like``) for ``key``."""
        n = math.prod(shape)
        buf = self._buffers.get(key)
        if (
            buf is None
            or buf.numel() < n
            or buf.dtype != like.dtype
            or buf.device != like.device
        ):
            buf = torch.empty(n, dtype=like.dtype, device=like.device)
            self._buffers[key] = buf
        return buf[:n].view(shape)


def _lowered(fn, h, matmul_dtype):
    """``fn(h)`` with its matrix products in ``matmul_dtype`` (autocast).

    The result (a tensor or a tuple of tensors) comes back in ``h``'s dtype.
    ``matmul_dtype=None`` runs ``fn`` as it is.
    """
    if matmul_dtype is None or matmul_dtype == h.dtype:
        return fn(h)
    with torch.autocast(h.device.type, dtype=matmul_dtype):
        out = fn(h)
    if isinstance(out, tuple):
        return tuple(o.to(h.dtype) for o in out)
    return out.to(h.dtype)


def _forward_reusing(module, h, workspace, name, matmul_dtype=None):
    """``module(h)``, with a Sequential's linear layers writing into buffers.

    Only without autograd (scoring) and for 2-D inputs; anything else, or a
    layer other than ``nn.Linear``/``nn.ReLU``, runs as usual.

    With ``matmul_dtype`` (e.g. ``torch.bfloat16``) the layers multiply in
    that dtype: the input, weights and biases are rounded to it, products
    accumulate in float32 inside the kernel, activations are stored in it,
    and the output is returned in ``h``'s dtype. A module the buffers do
    not cover then runs under ``torch.autocast`` instead.
    """
    lowered = matmul_dtype is not None and matmul_dtype != h.dtype
    if (
        workspace is None
        or torch.is_grad_enabled()
        or type(module) is not nn.Sequential
        or h.dim() != 2
        or (
            lowered and any(type(layer) not in (nn.Linear, nn.ReLU) for layer in module)
        )
    ):
        return _lowered(module, h, matmul_dtype)
    layers = list(module)
    source = h
    if lowered:
        h = _cast_into(workspace, (name, "input"), h, matmul_dtype)
    i = 0
    while i < len(layers):
        layer = layers[i]
        if type(layer) is nn.Linear:
            out = workspace.get((name, i), (h.shape[0], layer.out_features), h)
            weight, bias = layer.weight, layer.bias
            if lowered:
                weight = _cast_into(workspace, (name, i, "weight"), weight, h.dtype)
                if bias is not None:
                    bias = _cast_into(workspace, (name, i, "bias"), bias, h.dtype)
            if bias is None:
                torch.mm(h, weight.t(), out=out)
            else:
                torch.addmm(bias, h, weight.t(), out=out)
            h = out
            if i + 1 < len(layers) and type(layers[i + 1]) is nn.ReLU:
                h.relu_()
                i += 1
        else:
            h = layer(h)
        i += 1
    if lowered:
        h = _cast_into(workspace, (name, "output"), h, source.dtype)
    return h


def _cast_into(workspace, key, tensor, dtype):
    """``tensor.to(dtype)``, written into the workspace buffer ``key``."""
    like = torch.empty((), dtype=dtype, device=tensor.device)
    return workspace.get(key, tuple(tensor.shape), like).copy_(tensor)


def _mlp(sizes, final_activation=False):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or final_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class _ConvEncoder(nn.Module):
    """Stride-2 convolutions and a linear head: ``(..., C*H*W) -> (..., out)``.

    Any leading batch shape: the images go through the convolutions with
    the leading axes merged (fold-major for a fold-stacked copy, whose
    convolutions take that layout) and are flattened back per sample.
    """

    fold_stackable = True

    def __init__(self, input_shape, channels, out_features):
        super().__init__()
        c, h, w = input_shape
        layers = []
        for ch in channels:
            layers += [nn.Conv2d(c, ch, 3, stride=2, padding=1), nn.ReLU()]
            c, h, w = ch, (h + 1) // 2, (w + 1) // 2
        self.input_shape = tuple(input_shape)
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c * h * w, out_features)

    def forward(self, x):
        lead = x.shape[:-1]
        h = self.features(x.reshape(-1, *self.input_shape))
        return self.head(h.reshape(*lead, -1))


class _ConvDecoder(nn.Module):
    """A linear layer and stride-2 transposed convolutions: ``(..., L) -> (..., D)``.

    Any leading batch shape, as :class:`_ConvEncoder`.
    """

    fold_stackable = True

    def __init__(self, input_shape, channels, latent_dim):
        super().__init__()
        c_out, h, w = input_shape
        for _ in channels:
            h, w = (h + 1) // 2, (w + 1) // 2
        self.start = (channels[-1], h, w)
        self.fc = nn.Sequential(nn.Linear(latent_dim, channels[-1] * h * w), nn.ReLU())
        layers = []
        outs = list(reversed(channels[:-1])) + [c_out]
        prev = channels[-1]
        for i, ch in enumerate(outs):
            layers.append(nn.ConvTranspose2d(prev, ch, 4, stride=2, padding=1))
            if i < len(outs) - 1:
                layers.append(nn.ReLU())
            prev = ch
        self.deconv = nn.Sequential(*layers)
        self.input_shape = tuple(input_shape)

    def forward(self, z):
        out = self.deconv(self.fc(z).reshape(-1, *self.start))
        _, h, w = self.input_shape
        return out[:, :, :h, :w].reshape(*z.shape[:-1], -1)


class VAEModule(nn.Module):
    """VAE with a Gaussian encoder q(z|x), N(0, I) prior and a chosen p(x|z).

    ``forward(x)`` returns the per-sample ELBO (analytic KL) used for
    training; :meth:`log_weights` returns importance log-weights
    ``log p(x, z_s) - log q(z_s | x)`` for given noise, from which
    :class:`VAEDensity` forms the IWAE estimate of ``log p(x)``.

    Parameters
    ----------
    n_features : int
        Number of input features (pixels).
    latent_dim : int, default=8
        Size of z.
    architecture : {"mlp", "conv"}, default="mlp"
        Fully connected or convolutional encoder/decoder.
    input_shape : tuple of int or None, default=None
        ``(channels, height, width)`` of one image; required for ``"conv"``.
    hidden_dims : tuple of int, default=(256, 128)
        Hidden layer sizes of the MLP encoder (reversed in the decoder).
    conv_channels : tuple of int, default=(32, 64)
        Channels of the stride-2 convolutions (reversed in the decoder).
    likelihood : {"bernoulli", "gaussian", "gaussian_scalar", "logit_gaussian"}
        Observation model; see :class:`VAEDensity`.
    n_levels : int, default=256
        Grey levels of the data for ``"logit_gaussian"``.
    alpha : float, default=0.05
        Logit-transform margin for ``"logit_gaussian"``.
    min_std : float, default=1e-3
        Floor on the learned Gaussian standard deviations (keeps constant
        pixels from driving the likelihood to infinity).

    Examples
    --------
    >>> import torch
    >>> from sklearn_mem.models import VAEModule
    >>> vae = VAEModule(n_features=4, latent_dim=2, hidden_dims=(8,))
    >>> vae(torch.rand(3, 4)).shape
    torch.Size([3])
    """

    # forward, elbo, draw_noise, the likelihoods and both architectures'
    # encoders and decoders work on fold-stacked inputs (K, B, n_features)
    fold_stackable = True

    def __init__(
        self,
        n_features,
        latent_dim=8,
        architecture="mlp",
        input_shape=None,
        hidden_dims=(256, 128),
        conv_channels=(32, 64),
        likelihood="bernoulli",
        n_levels=256,
        alpha=0.05,
        min_std=1e-3,
    ):
        super().__init__()
        shape = _check_input_shape(input_shape, architecture)
        self.n_features = int(n_features)
        self.latent_dim = int(latent_dim)
        if shape is not None and int(np.prod(shape)) != self.n_features:
            raise ValueError(
                f"input_shape={shape} holds {int(np.prod(shape))} values but "
                f"the data has {self.n_features} features. Set input_shape to "
                "the shape of one sample."
            )
        if architecture == "conv":
            channels = tuple(int(c) for c in conv_channels)
            if not channels:
                raise ValueError("conv_channels must name at least one layer.")
            self.encoder = _ConvEncoder(shape, channels, 2 * self.latent_dim)
            self.decoder = _ConvDecoder(shape, channels, self.latent_dim)
        else:
            hidden = [int(h) for h in hidden_dims]
            self.encoder = _mlp([self.n_features, *hidden, 2 * self.latent_dim])
            self.decoder = _mlp([self.latent_dim, *hidden[::-1], self.n_features])
        self.likelihood = make_likelihood(
            likelihood,
            self.n_features,
            n_levels=n_levels,
            alpha=alpha,
            min_std=min_std,
        )

    def encode(self, value):
        """Mean and log-variance of q(z | x), each of shape (n, latent_dim)."""
        h = self.encoder(value)
        return h[..., : self.latent_dim], h[..., self.latent_dim :]

    def decode(self, z):
        """Decoder output (means or logits), shape (n, n_features)."""
        return self.decoder(z)

    def forward(self, x, generator=None, noise=None):
        """Per-sample ELBO with one reparameterised sample and analytic KL.

        The noise is drawn from ``generator`` (:meth:`draw_noise`), unless
        given as ``noise=(eps, u)``.
        """
        if noise is None:
            noise = self.draw_noise(x.shape[:-1], generator, x.device)
        return self.elbo(x, *noise)

    def draw_noise(self, batch_shape, generator=None, device=None, out=None):
        """The training noise of a batch: ``(eps, u)``, drawn in that order.

        ``u`` (uniform dequantisation noise, ``batch_shape + (n_features,)``,
        or None) is drawn first, then ``eps`` (standard normal,
        ``batch_shape + (latent_dim,)``), so one generator gives the same
        stream whether the noise is drawn here or inside :meth:`forward`.
        ``out``, a pair of contiguous tensors of those shapes (the second
        ignored when there is no ``u``), receives the same numbers instead
        of new tensors.
        """
        batch_shape = tuple(batch_shape)
        eps_out, u_out = (None, None) if out is None else out
        u = None
        if self.likelihood.needs_noise:
            shape = (*batch_shape, self.n_features)
            if u_out is None:
                u = torch.rand(shape, generator=generator, device=device)
            else:
                u = torch.rand(shape, generator=generator, out=u_out)
        shape = (*batch_shape, self.latent_dim)
        if eps_out is None:
            eps = torch.randn(shape, generator=generator, device=device)
        else:
            eps = torch.randn(shape, generator=generator, out=eps_out)
        return eps, u

    def elbo(self, x, eps, u=None):
        """Per-sample ELBO for given noise (see :meth:`draw_noise`).

        Works on any leading batch shape, e.g. ``(folds, batch, n_features)``
        for the fold-stacked copy trained by :meth:`VAEDensity.fit_folds`.
        """
        value, log_jac = self.likelihood.transform(x, u)
        mu, logvar = self.encode(value)
        z = mu + torch.exp(0.5 * logvar) * eps
        rec = self.likelihood.log_prob(value, self.decode(z))
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)
        elbo = rec - kl
        return elbo if log_jac is None else elbo + log_jac

    def log_weights(
        self, x, eps, u=None, dtype=torch.float64, workspace=None, matmul_dtype=None
    ):
        """Importance log-weights ``log p(x, z_s) - log q(z_s | x)``.

        Parameters
        ----------
        x : tensor of shape (B, n_features)
        eps : tensor of shape (B, S, latent_dim)
            Standard normal noise; ``z_s = mu + sigma * eps_s``.
        u : tensor of shape (B, S, n_features) or None
            Uniform dequantisation noise (``logit_gaussian`` only).
        dtype : torch.dtype, default=torch.float64
            Precision of the sums over features.
        workspace : _Workspace or None, default=None
            Scratch buffers for the activations, reused across calls while
            scoring without autograd (same numbers, no fresh allocations).
        matmul_dtype : torch.dtype or None, default=None
            Precision of the encoder's and decoder's matrix products, e.g.
            ``torch.bfloat16``; None keeps the parameters' own. The
            log-densities and sums are computed in full precision from the
            (rounded) network outputs either way.

        Returns
        -------
        log_w : tensor of shape (B, S)
        """
        B, S, L = eps.shape
        if self.likelihood.needs_noise:
            value, log_jac = self.likelihood.transform(x[:, None, :], u, dtype=dtype)
            flat = value.reshape(B * S, -1)
            if type(self).encode is VAEModule.encode:
                h = _forward_reusing(
                    self.encoder, flat, workspace, "encoder", matmul_dtype
                )
                mu, logvar = h[:, :L], h[:, L:]
            else:  # a subclass's own encode
                mu, logvar = _lowered(self.encode, flat, matmul_dtype)
            mu, logvar = mu.reshape(B, S, L), logvar.reshape(B, S, L)
        else:
            value, log_jac = x[:, None, :], None
            mu, logvar = _lowered(self.encode, x, matmul_dtype)
            mu, logvar = mu[:, None, :], logvar[:, None, :]
        z = mu + torch.exp(0.5 * logvar) * eps
        log_q = (-0.5 * eps.pow(2) - 0.5 * logvar - 0.5 * _LOG_2PI).sum(-1, dtype=dtype)
        log_pz = (-0.5 * z.pow(2) - 0.5 * _LOG_2PI).sum(-1, dtype=dtype)
        if type(self).decode is VAEModule.decode:
            out = _forward_reusing(
                self.decoder, z.reshape(B * S, L), workspace, "decoder", matmul_dtype
            )
        else:  # a subclass's own decode
            out = _lowered(self.decode, z.reshape(B * S, L), matmul_dtype)
        out = out.reshape(B, S, -1)
        log_px = self.likelihood.log_prob(value, out, dtype=dtype)
        log_w = log_px + log_pz - log_q
        return log_w if log_jac is None else log_w + log_jac

    def sample(self, n, generator=None):
        """Draw ``n`` samples x ~ p(x | z), z ~ N(0, I)."""
        device = next(self.parameters()).device
        z = torch.randn((n, self.latent_dim), generator=generator, device=device)
        return self.likelihood.sample(self.decode(z), generator=generator)


# rows whose scoring noise is drawn at once and then used by every model in
# turn (bounded memory: rows x S x latent_dim floats, plus n_features for
# dequantisation noise); each model runs over the block's chunks in a row,
# which keeps its weights in cache
_SHARED_NOISE_ROWS = 256


def _score_folds_shared(estimators, X):
    """``[est.score_samples(X) for est in estimators]``, sharing the noise.

    The scoring loop of ``score_samples`` (:func:`_score_chunks`: the same
    chunks, noise and operations, so the rows are identical), with the
    common random numbers of a block of chunks drawn once for all models.
    """
    first = estimators[0]
    S = first._n_importance()
    workspace = _Workspace()  # the models share shapes, hence buffers
    return _score_chunks(
        estimators,
        [
            functools.partial(est._log_prob_chunk, workspace=workspace)
            for est in estimators
        ],
        X,
        noise_fn=lambda start, n_rows: first._crn_noise(start, n_rows, S),
        block_rows=_SHARED_NOISE_ROWS,
        stage="scoring rows (all models)",
    )


class VAEDensity(DensityNet):
    """Variational auto-encoder as a scikit-learn density estimator.

    Trains by minimising the negative ELBO; :meth:`score_samples` returns the
    importance-weighted (IWAE) estimate

        log p(x) ~ log (1/S) sum_s p(x, z_s) / q(z_s | x),   z_s ~ q(z | x)

    with ``S = n_importance_samples``. The estimate is a stochastic lower
    bound that tightens as S grows; it is deterministic for a given
    ``score_seed``, and the noise for row ``i`` depends only on
    ``(score_seed, i)`` -- not on the model or ``random_state`` -- so all
    fits of a cross-validation run score a row with the same draws (common
    random numbers). Across independently initialised VAEs this cancels
    little (their latent spaces are not aligned), so the variance of each
    estimate is kept small instead: randomised quasi-Monte Carlo samples
    (``qmc=True``) and a large default S.

    Parameters
    ----------
    latent_dim : int, default=8
        Size of the latent code z.
    architecture : {"mlp", "conv"}, default="mlp"
        Fully connected or convolutional encoder and decoder.
    input_shape : tuple of int or None, default=None
        Shape of one sample, ``(channels, height, width)`` for images, e.g.
        ``(1, 8, 8)`` for sklearn's digits or ``(3, 32, 32)``. Required for
        ``"conv"``; with it ``X`` may be flat ``(n, C*H*W)`` or
        ``(n, C, H, W)``.
    hidden_dims : tuple of int, default=(256, 128)
        Hidden sizes of the MLP encoder (reversed for the decoder).
    conv_channels : tuple of int, default=(32, 64)
        Channels of the convolutional encoder (reversed for the decoder).
    likelihood : str, default="bernoulli"
        Observation model p(x | z):

        - ``"bernoulli"``: data in [0, 1] (binary or grey levels).
        - ``"gaussian"``: continuous data, learned variance per feature.
        - ``"gaussian_scalar"``: continuous data, one learned variance.
        - ``"logit_gaussian"``: integer pixels ``0 .. n_levels - 1``
          dequantised with uniform noise and modelled by a Gaussian in
          logit space (learned per-pixel variance); the log-likelihood is
          reported for the discrete pixels, Jacobian included.
    n_levels : int, default=256
        Grey levels of the data for ``"logit_gaussian"`` (256 for 8-bit
        images, 17 for sklearn's digits).
    n_importance_samples : int or "auto", default=1000
        S, the importance samples per row in :meth:`score_samples`. Large by
        default: scoring noise must stay well below typical memorization
        scores (a few hundredths of a nat). ``"auto"`` chooses S per row
        from ``target_se``: every row starts with 128 samples, and the rows
        whose Monte Carlo standard error (estimated from their own weights)
        is above the target get their samples doubled -- continuing the same
        Sobol sequence, so a row's estimate is the one a fixed S would give
        -- up to 32768. :meth:`importance_sampling_report` gives each row's
        S and standard error.
    target_se : float, default=0.01
        With ``n_importance_samples="auto"``: the Monte Carlo standard error
        (nats) wanted for memorization scores computed from these
        log-likelihoods. A score is a difference of two estimates (or of
        averages of them), so each row's log-likelihood is estimated to
        ``target_se / sqrt(2)``. The standard error treats the samples as
        independent, which overstates it for the quasi-Monte Carlo points
        of ``qmc=True``.
    qmc : bool, default=True
        Draw each row's latent importance samples as a randomly shifted
        Sobol point set (randomised quasi-Monte Carlo) instead of i.i.d.
        normals. Still an unbiased-weight IWAE estimate, with lower variance
        (``python benchmarks/bench_models.py crn`` measures the spread of
        log p and M over scoring seeds with and without it).
    score_batch_size : int or None, default=None
        Rows x importance samples evaluated per forward pass while scoring;
        bounds memory. None means 4096 with ``score_precision="float32"``
        and 8192 with ``"bfloat16"`` (whose activations take half the
        memory). Keep it fixed across the fits that are compared.
    score_precision : {"float32", "bfloat16"}, default="float32"
        Precision of the encoder's and decoder's matrix products while
        scoring (:meth:`score_samples`, :meth:`elbo`, :meth:`score_folds`;
        training is unaffected). ``"float32"`` keeps full float32 precision.
        ``"bfloat16"`` rounds the weights and activations to bfloat16
        (products still accumulate in float32, and the log-densities and sums
        stay in full precision): on CPUs with AMX or AVX512-BF16 and on GPUs
        the products run faster, at an error far below the Monte Carlo
        noise of the estimate (the user guide's "Parallelism and scale"
        page and ``python benchmarks/run.py`` give the measurements). On
        other CPUs it can be slower. The estimate stays a valid
        importance-weighted bound of the rounded network.
    score_seed : int, default=0
        Seed of the scoring noise (see above).
    module : torch.nn.Module class, default=VAEModule
        The VAE; ``module__*`` parameters (e.g. ``module__min_std``) override
        the ones derived from the arguments above.
    lr : float, default=1e-3
        Adam learning rate.
    max_epochs : int, default=50
        Training epochs.
    batch_size : int, default=128
        Training batch size.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, batch order, training noise and :meth:`sample`.
    device : str, default="cpu"
        Torch device.
    verbose : int, default=0
        skorch's per-epoch log when > 0.
    **kwargs
        Other :class:`DensityNet` / skorch parameters (``optimizer``,
        ``optimizer__weight_decay``, ``callbacks``, ...).

    Attributes
    ----------
    module_ : VAEModule
        The fitted VAE.
    n_features_in_ : int
        Number of features seen during :meth:`fit`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mem.models import VAEDensity
    >>> X = (np.random.RandomState(0).uniform(size=(40, 16)) > 0.5).astype(float)
    >>> vae = VAEDensity(latent_dim=2, hidden_dims=(16,), max_epochs=2,
    ...                  n_importance_samples=16, random_state=0).fit(X)
    >>> vae.score_samples(X[:2]).shape
    (2,)
    >>> bool(np.all(vae.score_samples(X[:2]) == vae.score_samples(X[:2])))
    True
    >>> full = vae.score_samples(X[:2])
    >>> lowered = vae.set_params(score_precision="bfloat16").score_samples(X[:2])
    >>> bool(np.abs(lowered - full).max() < 0.05)
    True
    >>> vae.sample(3).shape
    (3, 16)
    """

    def __init__(
        self,
        module=VAEModule,
        *,
        latent_dim=8,
        architecture="mlp",
        input_shape=None,
        hidden_dims=(256, 128),
        conv_channels=(32, 64),
        likelihood="bernoulli",
        n_levels=256,
        n_importance_samples=1000,
        target_se=0.01,
        qmc=True,
        score_batch_size=None,
        score_precision="float32",
        score_seed=0,
        lr=1e-3,
        max_epochs=50,
        batch_size=128,
        random_state=None,
        device="cpu",
        verbose=0,
        **kwargs,
    ):
        self.latent_dim = latent_dim
        self.architecture = architecture
        self.input_shape = input_shape
        self.hidden_dims = hidden_dims
        self.conv_channels = conv_channels
        self.likelihood = likelihood
        self.n_levels = n_levels
        self.n_importance_samples = n_importance_samples
        self.target_se = target_se
        self.qmc = qmc
        self.score_batch_size = score_batch_size
        self.score_precision = score_precision
        super().__init__(
            module,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            random_state=random_state,
            score_seed=score_seed,
            device=device,
            verbose=verbose,
            **kwargs,
        )

    # -- module construction -------------------------------------------
    def _n_features(self):
        if hasattr(self, "n_features_in_"):
            return self.n_features_in_
        shape = _check_input_shape(self.input_shape, self.architecture)
        return int(np.prod(shape)) if shape is not None else 1

    def _default_module_kwargs(self):
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(
                f"likelihood={self.likelihood!r} is not known; expected one of "
                f"{LIKELIHOODS}."
            )
        self._score_matmul_dtype()  # fail before training, not after
        return {
            "n_features": self._n_features(),
            "latent_dim": self.latent_dim,
            "architecture": self.architecture,
            "input_shape": self.input_shape,
            "hidden_dims": self.hidden_dims,
            "conv_channels": self.conv_channels,
            "likelihood": self.likelihood,
            "n_levels": self.n_levels,
        }

    def _module_needs_rebuild(self):
        return getattr(self.module_, "n_features", None) != self.n_features_in_

    # -- validation ------------------------------------------------------
    def _check_shape(self, X):
        shape = _check_input_shape(self.input_shape, self.architecture)
        name = type(self).__name__
        if shape is None:
            return super()._check_shape(X)
        n_values = int(np.prod(shape))
        if X.ndim == 2 and X.shape[1] == n_values:
            return X
        if X.ndim == 1 + len(shape) and tuple(X.shape[1:]) == shape:
            return X.reshape(len(X), -1)
        raise ValueError(
            f"X has shape {X.shape}, but {name} has input_shape={shape}: "
            f"expected (n_samples, {', '.join(map(str, shape))}) or flat "
            f"(n_samples, {n_values}). Reshape X to that layout, or set "
            "input_shape to the shape of one sample (channels first)."
        )

    def _check_values(self, X):
        if len(X):
            check_likelihood_X(self.likelihood, X, type(self).__name__, self.n_levels)

    # -- scoring -----------------------------------------------------------
    def _adaptive(self):
        return isinstance(self.n_importance_samples, str) and (
            self.n_importance_samples == "auto"
        )

    def _n_importance(self):
        """S, or the first block's S with ``n_importance_samples="auto"``."""
        S = self.n_importance_samples
        if self._adaptive():
            target = self.target_se
            if (
                not isinstance(target, numbers.Real)
                or isinstance(target, bool)
                or not (0 < target < math.inf)
            ):
                raise ValueError(
                    f"target_se={target!r}; expected a positive number of nats "
                    "(e.g. 0.01)."
                )
            return _AUTO_FIRST
        if not isinstance(S, numbers.Integral) or S < 1:
            raise ValueError(
                f"n_importance_samples={S!r}; expected a positive integer (e.g. "
                "1000) or 'auto' (S chosen per row from target_se)."
            )
        return int(S)

    def _score_matmul_dtype(self):
        precision = self.score_precision
        if precision not in _SCORE_PRECISIONS:
            raise ValueError(
                f"score_precision={precision!r}; expected 'float32' (exact) or "
                "'bfloat16' (faster scoring on CPUs with AMX/AVX512-BF16 and "
                "on GPUs)."
            )
        return _SCORE_PRECISIONS[precision]

    def _score_budget(self):
        """Rows x importance samples per forward pass (``score_batch_size``)."""
        budget = self.score_batch_size
        if budget is None:
            # half-size activations in bfloat16: twice the points, same memory
            lowered = self._score_matmul_dtype() is not None
            return 2 * _SCORE_BATCH_SIZE if lowered else _SCORE_BATCH_SIZE
        if not isinstance(budget, numbers.Integral) or budget < 1:
            raise ValueError(
                f"score_batch_size={budget!r}; expected a positive integer "
                "(rows x importance samples per forward pass) or None."
            )
        return int(budget)

    def _score_batch_size(self, n_samples):
        return max(1, self._score_budget() // self._n_importance())

    def _crn_noise(self, start, n_rows, S):
        """Noise for rows ``start .. start + n_rows``, keyed by row index.

        Row ``i`` draws from a generator seeded by ``(score_seed, i)`` only.
        With ``qmc=True`` its latent noise is the first S points of the
        Sobol sequence under a random digital shift (an XOR of the points'
        30-bit expansions with the row's random bits) mapped through the
        normal quantile function: every point is still exactly N(0, I)
        distributed, so the estimate keeps its meaning, but the S points
        cover the latent space evenly, which lowers its variance.
        """
        return self._row_noise(torch.arange(start, start + n_rows), 0, S)

    def _row_noise(self, row_ids, begin, end):
        """Noise of samples ``begin .. end`` of the rows ``row_ids``.

        ``begin == 0`` is :meth:`_crn_noise`. Later samples (the continuation
        of ``n_importance_samples="auto"``) continue the row's shifted Sobol
        sequence with ``qmc=True`` (points ``begin .. end``, the same shift);
        their other noise comes from a generator seeded by
        ``(score_seed, begin, row)``, independent of the earlier samples'.
        """
        module = self.module_
        L, D = module.latent_dim, module.n_features
        needs_u = module.likelihood.needs_noise
        score_seed = int(self.score_seed)
        n_rows, S = len(row_ids), end - begin
        eps = torch.empty((n_rows, S, L))
        u = torch.empty((n_rows, S, D)) if needs_u else None
        if self.qmc:
            bits = torch.quasirandom.SobolEngine.MAXBIT
            sobol = torch.quasirandom.SobolEngine(L, scramble=False)
            if begin:
                sobol.fast_forward(begin)
            base = torch.round(sobol.draw(S, dtype=torch.float64) * 2.0**bits)
            base = base.to(torch.int64)
        gen, more = torch.Generator(), torch.Generator()
        for j, i in enumerate(row_ids.tolist()):
            gen.manual_seed(_derive_seed(score_seed, "score", 1, i))
            draw = gen
            if begin:
                more.manual_seed(_derive_seed(score_seed, "score", 2, begin, i))
                draw = more
            if self.qmc:
                shift = torch.randint(0, 2**bits, (L,), generator=gen)
                points = ((base ^ shift).to(torch.float64) + 0.5) / 2.0**bits
                eps[j] = torch.special.ndtri(points).to(eps.dtype)
            else:
                eps[j] = torch.randn((S, L), generator=draw)
            if needs_u:
                u[j] = torch.rand((S, D), generator=draw)
        device = self.device
        return eps.to(device), (None if u is None else u.to(device))

    def _adaptive_chunk(self, x, start, workspace=None):
        """``(log_prob, stderr, count)`` of rows ``start:start+len(x)``, adaptive S."""
        offset = torch.tensor(start)

        def log_weights(rows, begin, end):
            if begin == 0:
                noise = self._crn_noise(start, len(x), end)
                return self._log_weights_chunk(x, start, noise, workspace)
            noise = self._row_noise(rows.cpu() + offset, begin, end)
            return self._log_weights_chunk(x[rows], start, noise, workspace)

        return adaptive_log_prob(
            log_weights,
            len(x),
            float(self.target_se) / math.sqrt(2),
            _AUTO_FIRST,
            _AUTO_LARGEST,
            device=x.device,
        )

    def _log_weights_chunk(self, x, start, noise=None, workspace=None):
        matmul_dtype = self._score_matmul_dtype()
        if noise is None:
            noise = self._crn_noise(start, len(x), self._n_importance())
        eps, u = noise
        S = eps.shape[1]
        step = max(1, self._score_budget() // max(1, len(x)))
        parts = []
        for s0 in range(0, S, step):
            parts.append(
                self.module_.log_weights(
                    x,
                    eps[:, s0 : s0 + step],
                    None if u is None else u[:, s0 : s0 + step],
                    workspace=workspace,
                    matmul_dtype=matmul_dtype,
                )
            )
        return torch.cat(parts, dim=1)

    def _log_prob_chunk(self, x, start, noise=None, workspace=None):
        if noise is None and self._adaptive():
            log_prob, _, _ = self._adaptive_chunk(x, start, workspace)
            return log_prob
        log_w = self._log_weights_chunk(x, start, noise, workspace)
        return torch.logsumexp(log_w, dim=1) - math.log(log_w.shape[1])

    def _scoring_key(self):
        """What fixes the scoring noise and chunks; equal keys share them."""
        module = self.module_
        return (
            type(module),
            int(self.score_seed),
            bool(self.qmc),
            self._n_importance(),
            self._adaptive() and float(self.target_se),
            self._score_budget(),
            str(torch.device(self.device)),
            module.latent_dim,
            module.n_features,
            module.likelihood.needs_noise,
        )

    def score_folds(self, estimators, X):
        """Log-likelihood of ``X`` under each of several fitted VAEs.

        Equals ``[est.score_samples(X) for est in estimators]`` exactly (same
        chunks, same noise, same operations), but draws the common random
        numbers once for all models instead of once per model: the noise of
        a block of chunks is drawn, then every model scores that block's
        chunks in turn (keeping its weights in cache). Models whose
        scoring noise differs (``score_seed``, ``n_importance_samples``,
        ``qmc``, ...) are scored one by one.

        Parameters
        ----------
        estimators : list of VAEDensity
            Fitted VAEs.
        X : array-like of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        log_likelihood : ndarray of shape (n_estimators, n_samples)
        """
        estimators = list(estimators)
        shared = len(estimators) > 1 and all(
            isinstance(est, VAEDensity)
            and type(est)._log_prob_chunk is VAEDensity._log_prob_chunk
            and type(est)._crn_noise is VAEDensity._crn_noise
            and type(est).score_samples is VAEDensity.score_samples
            and type(est)._score_loop is DensityNet._score_loop
            for est in estimators
        )
        # adaptive S: every model draws the samples its own weights need
        shared = shared and not any(est._adaptive() for est in estimators)
        if shared:
            for est in estimators:
                est._check_fitted()
            keys = {est._scoring_key() for est in estimators}
            n_features = {est.n_features_in_ for est in estimators}
            shared = len(keys) == 1 and len(n_features) == 1
            shared = shared and next(iter(keys))[0] is VAEModule
        if not shared:
            return super().score_folds(estimators, X)
        return _score_folds_shared(estimators, X)

    def _elbo_chunk(self, x, start, workspace=None):
        return self._log_weights_chunk(x, start, workspace=workspace).mean(dim=1)

    def score_samples(self, X):
        """Log-likelihood of each sample under the fitted model, in nats.

        The importance-weighted estimate with ``n_importance_samples``
        common random numbers per row (see the class description).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        log_likelihood : ndarray of shape (n_samples,), dtype float64
            ``log p(x_i)`` for each row. Deterministic for a given
            ``score_seed``.
        """
        return self._score_loop(
            X, functools.partial(self._log_prob_chunk, workspace=_Workspace())
        )

    def elbo(self, X):
        """Monte-Carlo ELBO per sample, with the same noise as the score.

        The mean of the importance log-weights instead of the log of their
        mean, so ``elbo(X) <= score_samples(X)`` holds row by row (Jensen).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to evaluate.

        Returns
        -------
        elbo : ndarray of shape (n_samples,), dtype float64
            Evidence lower bound on ``log p(x_i)``, in nats.
        """
        return self._score_loop(
            X, functools.partial(self._elbo_chunk, workspace=_Workspace())
        )

    def importance_sampling_report(self, X):
        """Each row's log-likelihood, its Monte Carlo error and its S.

        :meth:`score_samples` with the standard error of every estimate,
        ``sd(w) / (sqrt(S) mean(w))`` from the row's own importance weights
        ``w`` (the delta method; it treats the samples as independent, which
        overstates the error of the quasi-Monte Carlo points of
        ``qmc=True``), and the number of samples used: ``n_importance_samples``,
        or per row with ``"auto"``. Use it to choose S or ``target_se``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        report : Bunch
            ``log_likelihood`` (equal to ``score_samples(X)``), ``stderr``
            (nats) and ``n_importance_samples`` (int), each of shape
            ``(n_samples,)``.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_mem.models import VAEDensity
        >>> X = (np.random.RandomState(0).uniform(size=(40, 16)) > 0.5) * 1.0
        >>> vae = VAEDensity(latent_dim=2, hidden_dims=(16,), max_epochs=2,
        ...                  n_importance_samples="auto", target_se=0.05,
        ...                  random_state=0).fit(X)
        >>> report = vae.importance_sampling_report(X)
        >>> bool((report.stderr <= 0.05 / np.sqrt(2)).all())
        True
        >>> bool(np.array_equal(report.log_likelihood, vae.score_samples(X)))
        True
        """
        from sklearn.utils import Bunch

        extra = {}
        workspace = _Workspace()

        def chunk(x, start):
            if self._adaptive():
                log_prob, stderr, count = self._adaptive_chunk(x, start, workspace)
            else:
                log_w = self._log_weights_chunk(x, start, workspace=workspace)
                acc = RunningIWAE(len(x), x.device)
                acc.add(torch.arange(len(x), device=x.device), log_w)
                log_prob = torch.logsumexp(log_w, dim=1) - math.log(log_w.shape[1])
                stderr, count = acc.stderr(), acc.count
            extra[start] = (stderr.cpu().numpy(), count.cpu().numpy())
            return log_prob

        log_likelihood = self._score_loop(X, chunk)
        starts = sorted(extra)
        return Bunch(
            log_likelihood=log_likelihood,
            stderr=np.concatenate([extra[k][0] for k in starts]),
            n_importance_samples=np.concatenate([extra[k][1] for k in starts]),
        )
