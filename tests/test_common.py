"""scikit-learn's common estimator checks on MemorizationScorer."""

from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KernelDensity
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_mem import MemorizationScorer

TRANSFORM_ONLY_TRAINING_ROWS = (
    "transform returns the stored memorization scores of training rows; the "
    "check calls it on rows the scorer was not fitted on, which is an error "
    "by design (a new row has no memorization score)"
)

# Every expected failure, with its reason.
EXPECTED_FAILED_CHECKS = {
    "check_fit_idempotent": TRANSFORM_ONLY_TRAINING_ROWS,
}


def _instances():
    return [
        MemorizationScorer(KernelDensity(bandwidth=0.8), cv=3),
        MemorizationScorer(KernelDensity(bandwidth=0.8), cv=3, method="refit"),
        MemorizationScorer(GaussianMixture(n_components=1), cv=3),
    ]


@parametrize_with_checks(
    _instances(), expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
