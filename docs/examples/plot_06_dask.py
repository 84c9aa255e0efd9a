"""
=====================================
Running the fits on a Dask cluster
=====================================

The fits of a memorization run are independent; with joblib's ``dask``
backend they run on the workers of a Dask cluster. Seeds are drawn once in
the calling process, so the scores are the same bit for bit as a local run.
Here the cluster is a :class:`distributed.LocalCluster` with two worker
processes; on a real cluster, connect the
:class:`~distributed.Client` to its scheduler instead (and, for neural
models on GPUs, run one worker per GPU).

This example needs the ``dask`` extra (``pip install "sklearn_mem[dask]"``).

.. note::

   A script that starts *process* workers must protect its entry point with
   ``if __name__ == "__main__":`` -- each worker process imports the main
   script, which must not start another cluster.
"""

# %%
import os

import joblib
import numpy as np
from distributed import Client, LocalCluster
from sklearn.datasets import load_digits
from sklearn.mixture import GaussianMixture

from sklearn_mem import MemorizationScorer

FAST = os.environ.get("SKLEARN_MEM_EXAMPLE_FAST", "0") == "1"
N_SAMPLES = 300 if FAST else None
N_COMPONENTS = 3 if FAST else 10
K = 4 if FAST else 5

X = load_digits().data[:N_SAMPLES] / 16


def make_scorer():
    return MemorizationScorer(
        GaussianMixture(N_COMPONENTS, reg_covar=1e-2, max_iter=50),
        cv=K,
        n_jobs=-1,
        random_state=0,
    )


# %%
# A local cluster
# ---------------
# Two worker processes with one thread each: one fit per worker at a time.
if __name__ == "__main__":
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
    )
    client = Client(cluster)
    print(client)

# %%
# The fits on the cluster
# -----------------------
# ``joblib.parallel_config(backend="dask")`` sends every fit to the cluster;
# each returns one row of log-likelihoods.
if __name__ == "__main__":
    with joblib.parallel_config(backend="dask"):
        on_cluster = make_scorer().fit(X)
    print("fits:", on_cluster.loglik_.shape[0])
    print(f"median M = {np.median(on_cluster.memorization_scores_):.3f} nats")

# %%
# The same scores as a local run
# ------------------------------
# The local run uses loky processes; the splits and per-fit seeds are the
# same, so the scores are identical bit for bit.
if __name__ == "__main__":
    local = make_scorer().fit(X)
    same = np.array_equal(local.memorization_scores_, on_cluster.memorization_scores_)
    print("identical to the local run:", same)

# %%
# Shut down
# ---------
if __name__ == "__main__":
    client.close()
    cluster.close()
