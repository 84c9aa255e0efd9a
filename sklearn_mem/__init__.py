"""Memorization scores for density estimators and deep generative models.

sklearn_mem measures how much a density estimator memorizes each training
sample with the cross-validated memorization score of van den Burg & Williams
(NeurIPS 2021)::

    M_i = log P(x_i | D) - log P(x_i | D \\ {x_i})

The public entry point is :class:`MemorizationScorer`, a scikit-learn
meta-estimator that wraps any estimator with ``fit`` and ``score_samples``.
Deep models live in :mod:`sklearn_mem.models` (requires the ``torch`` extra);
this module never imports torch.
"""

from ._aggregate import MemorizationWarning
from ._scorer import MemorizationScorer

__version__ = "0.1.0.dev0"

__all__ = ["MemorizationScorer", "MemorizationWarning", "__version__"]
