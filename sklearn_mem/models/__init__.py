"""Deep generative density estimators on skorch (requires the ``torch`` extra).

Every estimator here is a scikit-learn density estimator (``fit(X)``,
``score_samples(X)`` in nats, ``score``, ``sample``) built on
:class:`skorch.NeuralNet`, so it works with ``clone``, pickling,
:class:`~sklearn.model_selection.GridSearchCV`, :class:`~sklearn.pipeline.Pipeline`
and :class:`~sklearn_mem.MemorizationScorer`.

- :class:`DensityNet`: base class; any module whose ``forward`` returns
  per-sample log-likelihoods becomes a density estimator.
- :class:`VAEDensity`: variational auto-encoder (MLP or convolutional;
  Bernoulli, Gaussian or dequantised logit-Gaussian likelihood) scored by an
  importance-weighted estimate with common random numbers.
- :class:`FlowDensity`: RealNVP normalizing flow with exact log-likelihood.
- :class:`ZukoFlowDensity`: any normalizing flow of the zuko library (neural
  spline flows, MAF, ...); zuko is imported only when it is used.
"""

try:
    import skorch  # noqa: F401
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "sklearn_mem.models needs torch and skorch, which are not installed. "
        'Install them from a clone of sklearn_mem with: pip install -e ".[torch]" '
        "(for a CPU-only torch, first: pip install torch --index-url "
        "https://download.pytorch.org/whl/cpu)"
    ) from exc

from ._base import DensityLoss, DensityNet
from ._flow import FlowDensity, RealNVP
from ._vae import VAEDensity, VAEModule
from ._zuko import ZukoFlowDensity

__all__ = [
    "DensityLoss",
    "DensityNet",
    "FlowDensity",
    "RealNVP",
    "VAEDensity",
    "VAEModule",
    "ZukoFlowDensity",
]
