"""Observation models p(x | z) for :class:`~sklearn_mem.models.VAEDensity`.

Each likelihood is a small :class:`torch.nn.Module` that owns its learned
noise parameters and knows

- how to check raw data (``check_X``, numpy, clear errors),
- which variable the decoder models (``transform``: identity, or the
  dequantised logit transform with its log-Jacobian),
- the per-sample log-density of that variable given the decoder output
  (``log_prob``), and
- how to draw data-space samples (``sample``).

The decoder always outputs one value per feature (a mean or a logit); the
variances are free parameters of the likelihood, shared by all z. Every
likelihood declares ``fold_stackable``: its code is elementwise with sums
over the last axis, so a fold-stacked VAE (``models/_batched.py``) runs it
unchanged.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

LIKELIHOODS = ("bernoulli", "gaussian", "gaussian_scalar", "logit_gaussian")


def _inverse_softplus(y):
    return math.log(math.expm1(y))


class _GaussianNoise(torch.nn.Module):
    """Learned standard deviation, per feature or one scalar, floored."""

    fold_stackable = True  # elementwise, sums over the last axis

    def __init__(self, n_features, per_feature=True, min_std=1e-3):
        super().__init__()
        self.min_std = float(min_std)
        size = n_features if per_feature else 1
        init = _inverse_softplus(max(1.0 - self.min_std, 1e-6))
        self.raw_std = torch.nn.Parameter(torch.full((size,), init))

    def std(self):
        return self.min_std + F.softplus(self.raw_std)

    def log_prob(self, value, mean, dtype=None):
        std = self.std()
        log_density = (
            -0.5 * ((value - mean) / std) ** 2
            - torch.log(std)
            - 0.5 * math.log(2 * math.pi)
        )
        return log_density.sum(-1, dtype=dtype)


class Likelihood(torch.nn.Module):
    """Base class: the decoder output is the mean/logit of each feature."""

    needs_noise = False  # whether transform() takes dequantisation noise

    def __init__(self, n_features):
        super().__init__()
        self.n_features = int(n_features)

    @staticmethod
    def check_X(X, estimator_name):
        """Raise ValueError if X cannot come from this likelihood."""

    def transform(self, x, u=None, dtype=None):
        """Return (the modelled variable, per-sample log|Jacobian| or None)."""
        return x, None

    def log_prob(self, value, out, dtype=None):
        """Per-sample log-likelihood of ``value`` given decoder output ``out``."""
        raise NotImplementedError("abstract: each likelihood defines log_prob")

    def sample(self, out, generator=None):
        """Draw data given decoder output ``out``."""
        raise NotImplementedError("abstract: each likelihood defines sample")


class BernoulliLikelihood(Likelihood):
    """Independent Bernoulli pixels; data in [0, 1] (grey levels allowed)."""

    fold_stackable = True  # elementwise, sums over the last axis

    @staticmethod
    def check_X(X, estimator_name):
        lo, hi = float(X.min()), float(X.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"X has values in [{lo:g}, {hi:g}], but likelihood='bernoulli' "
                f"of {estimator_name} needs data in [0, 1]. Rescale it (e.g. "
                "X / X.max() or sklearn.preprocessing.MinMaxScaler), or use "
                "likelihood='gaussian' for unbounded data."
            )

    def log_prob(self, value, out, dtype=None):
        # log p = x * logit - softplus(logit), stable for any logit
        log_density = value * out - F.softplus(out)
        return log_density.sum(-1, dtype=dtype)

    def sample(self, out, generator=None):
        return torch.bernoulli(torch.sigmoid(out), generator=generator)


class GaussianLikelihood(Likelihood):
    """Gaussian with a learned variance per feature (or one shared scalar)."""

    fold_stackable = True  # elementwise, sums over the last axis

    def __init__(self, n_features, per_feature=True, min_std=1e-3):
        super().__init__(n_features)
        self.noise = _GaussianNoise(n_features, per_feature, min_std)

    def log_prob(self, value, out, dtype=None):
        return self.noise.log_prob(value, out, dtype)

    def sample(self, out, generator=None):
        eps = torch.randn(out.shape, generator=generator, device=out.device)
        return out + self.noise.std() * eps


class LogitGaussianLikelihood(Likelihood):
    """Dequantised discrete pixels modelled by a Gaussian in logit space.

    Integer pixels ``x`` in ``0 .. n_levels - 1`` are dequantised with uniform
    noise ``v = x + u``, scaled to ``y = v / n_levels`` and mapped to
    ``s = logit(alpha + (1 - 2 alpha) y)``; the decoder's Gaussian models ``s``
    (learned per-pixel variance). The density of ``v`` adds the log-Jacobian
    ``sum_d log(1 - 2 alpha) - log(n_levels) - log t_d - log(1 - t_d)`` with
    ``t = alpha + (1 - 2 alpha) y``, and since ``u`` has density 1 on the unit
    cube, ``P(x) = E_u[p_v(x + u)]``: importance sampling over ``u`` (with the
    latent ``z``) estimates the probability of the discrete image, in nats.
    """

    fold_stackable = True  # elementwise, sums over the last axis

    needs_noise = True

    def __init__(self, n_features, n_levels=256, alpha=0.05, min_std=1e-3):
        super().__init__(n_features)
        if not 0 < alpha < 0.5:
            raise ValueError(
                f"alpha={alpha!r}; the logit transform needs 0 < alpha < 0.5 "
                "(0.05 is the usual choice)."
            )
        self.n_levels = int(n_levels)
        self.alpha = float(alpha)
        self.noise = _GaussianNoise(n_features, True, min_std)

    @staticmethod
    def check_X(X, estimator_name, n_levels=256):
        lo, hi = float(X.min()), float(X.max())
        if lo < 0 or hi > n_levels - 1 or not np.all(X == np.round(X)):
            raise ValueError(
                f"likelihood='logit_gaussian' of {estimator_name} models "
                f"integer pixel values 0..{n_levels - 1} (n_levels={n_levels}), "
                f"but X has values in [{lo:g}, {hi:g}]"
                + ("" if np.all(X == np.round(X)) else " that are not integers")
                + ". Pass raw integer pixels (e.g. uint8 images), set n_levels "
                "to the number of grey levels of your data, or use "
                "likelihood='gaussian' for continuous data."
            )

    def _t(self, v):
        return self.alpha + (1 - 2 * self.alpha) * (v / self.n_levels)

    def transform(self, x, u=None, dtype=None):
        if u is None:
            u = torch.full_like(x, 0.5)
        t = self._t(x + u)
        log_t, log_1mt = torch.log(t), torch.log1p(-t)
        s = log_t - log_1mt
        const = self.n_features * (
            math.log(1 - 2 * self.alpha) - math.log(self.n_levels)
        )
        log_jac = (-log_t - log_1mt).sum(-1, dtype=dtype) + const
        return s, log_jac

    def log_prob(self, value, out, dtype=None):
        return self.noise.log_prob(value, out, dtype)

    def sample(self, out, generator=None):
        eps = torch.randn(out.shape, generator=generator, device=out.device)
        s = out + self.noise.std() * eps
        y = (torch.sigmoid(s) - self.alpha) / (1 - 2 * self.alpha)
        return torch.clamp(torch.floor(y * self.n_levels), 0, self.n_levels - 1)


def make_likelihood(name, n_features, *, n_levels=256, alpha=0.05, min_std=1e-3):
    """Build the likelihood named ``name`` for ``n_features`` features."""
    if name == "bernoulli":
        return BernoulliLikelihood(n_features)
    if name == "gaussian":
        return GaussianLikelihood(n_features, per_feature=True, min_std=min_std)
    if name == "gaussian_scalar":
        return GaussianLikelihood(n_features, per_feature=False, min_std=min_std)
    if name == "logit_gaussian":
        return LogitGaussianLikelihood(
            n_features, n_levels=n_levels, alpha=alpha, min_std=min_std
        )
    raise ValueError(
        f"likelihood={name!r} is not known; expected one of {LIKELIHOODS}."
    )


def check_likelihood_X(name, X, estimator_name, n_levels=256):
    """Validate data for a likelihood by name (numpy, before training)."""
    if name == "bernoulli":
        BernoulliLikelihood.check_X(X, estimator_name)
    elif name == "logit_gaussian":
        LogitGaussianLikelihood.check_X(X, estimator_name, n_levels)
    elif name not in LIKELIHOODS:
        raise ValueError(
            f"likelihood={name!r} is not known; expected one of {LIKELIHOODS}."
        )
