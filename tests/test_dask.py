"""The Dask backend: a real distributed.LocalCluster on 127.0.0.1."""

import joblib
import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from sklearn_mem import MemorizationScorer

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=40,
    )
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


def test_dask_backend_gives_identical_scores(client, blobs):
    gm = GaussianMixture(2, max_iter=30)
    ref = MemorizationScorer(gm, cv=4, random_state=0).fit(blobs)
    with distributed.get_task_stream(client) as stream:
        with joblib.parallel_config(backend="dask"):
            mem = MemorizationScorer(gm, cv=4, random_state=0, n_jobs=-1).fit(blobs)
    np.testing.assert_array_equal(mem.loglik_, ref.loglik_)
    np.testing.assert_array_equal(mem.memorization_scores_, ref.memorization_scores_)
    # the fits really ran on the cluster's workers
    assert len(stream.data) >= 1
    assert {t["worker"] for t in stream.data} <= set(client.scheduler_info()["workers"])
