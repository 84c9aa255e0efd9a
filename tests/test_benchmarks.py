"""The performance suite's helpers: tiny runs, exact comparisons."""

import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("skorch")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import bench_speed, run  # noqa: E402


@pytest.fixture(scope="module")
def small_run():
    X = bench_speed.digits()[:120]
    trains = [np.arange(0, 80), np.arange(40, 120), np.arange(20, 100)]
    est = bench_speed.vae(epochs=1)
    nets = est.fit_folds(bench_speed.clones(est, n=len(trains)), X, trains)
    for net in nets:
        net.set_params(n_importance_samples=16)
    return X, trains, nets


def test_chunk_loop_and_vmap_agree(small_run):
    """The two ways of scoring a chunk that the suite times give one result."""
    X, _, nets = small_run
    loop = bench_speed.score_chunk_loop(nets, X, reps=1, n_threads=1)
    vmapped = bench_speed.score_chunk_vmap(nets, X, reps=1, n_threads=1)
    S = nets[0].n_importance_samples
    rows = min(len(X), nets[0]._score_batch_size(len(X)))
    assert loop.shape == (len(nets), rows, S)
    torch.testing.assert_close(vmapped, loop, rtol=1e-6, atol=1e-5)


def test_score_variants_match_score_samples(small_run):
    X, _, nets = small_run
    expected = np.vstack([net.score_samples(X) for net in nets])
    np.testing.assert_array_equal(bench_speed.score_folds(nets, X, 1), expected)
    np.testing.assert_array_equal(bench_speed.score_loop(nets, X, 1), expected)


def test_median_run_and_table():
    runs = [
        {"seconds": s, "peak_rss_mib": m, "workers_peak_rss_mib": 0.0}
        for s, m in ((3.0, 10.0), (1.0, 30.0), (2.0, 20.0))
    ]
    mid = run._median_run(runs)
    assert mid["seconds"] == 2.0 and mid["spread"] == (1.0, 3.0)
    assert mid["peak_rss_mib"] == 30.0  # the largest of the runs
    names = ["one_fold", "sequential", "joblib", "batched"]
    r = {name: dict(mid, seconds=t) for name, t in zip(names, (1.0, 8.0, 4.0, 2.0))}
    r[("score_loop", 16)] = dict(mid, seconds=3.0)
    r[("score_folds", 16)] = dict(mid, seconds=2.5)
    table = run.vae_table(r, 1, [16], (1e9, 0.5), {16: (2e9, 1.0)})
    assert "| sequential skorch fits (1 thread) | 8.00 |" in table
    assert "batched vs sequential: 4.00x" in table
    assert "vs joblib n_jobs=2: 2.00x" in table
    assert "score_folds 2.50 s = 2.5x the floor" in table


def test_bfloat16_variant_and_precision_gap(small_run):
    X, _, nets = small_run
    lowered = bench_speed.score_folds_bf16(nets, X, 1)
    for net, row in zip(nets, lowered):
        twin = bench_speed.clone_fitted(net, score_precision="bfloat16")
        np.testing.assert_array_equal(row, twin.score_samples(X))
    assert all(net.score_precision == "float32" for net in nets)  # untouched
    folds = [np.setdiff1d(np.arange(len(X)), np.arange(k, len(X), 3)) for k in range(3)]
    gap = bench_speed.precision_gap(X, folds, epochs=2, S=16)
    assert set(gap) == {"bf16", "seed"}
    assert 0 < gap["bf16"]["loglik_max"] < 0.05
    # bfloat16 moves the scores far less than another draw of the noise
    assert gap["bf16"]["loglik_median"] < 0.1 * gap["seed"]["loglik_median"]
    assert gap["bf16"]["mem_median"] < 0.1 * gap["seed"]["mem_median"]


def test_table_reports_bfloat16_rows():
    res = {"seconds": 2.0, "peak_rss_mib": 10.0, "workers_peak_rss_mib": 0.0}
    r = {name: dict(res) for name in ("one_fold", "sequential", "joblib", "batched")}
    r[("score_loop", 16)] = dict(res, seconds=6.0)
    r[("score_folds", 16)] = dict(res, seconds=4.0)
    r[("score_folds_bf16", 16)] = dict(res, seconds=1.0)
    stats = {"loglik_median": 1e-3, "loglik_max": 1e-2}
    stats.update(mem_median=2e-3, mem_max=2e-2)
    gap = {"bf16": stats, "seed": {k: 10 * v for k, v in stats.items()}}
    table = run.vae_table(r, 1, [16], (1e9, 0.5), gap=gap, gap_samples=16)
    assert "| IWAE S=16, score_folds, bfloat16 | 1.00 |" in table
    assert "score_precision='bfloat16': 0.50x the batched training; 4.00x" in table
    assert "|d log p| median 1.0e-03, max 1.0e-02" in table


def test_scale_benchmark_checks_the_exact_path_against_refits():
    from benchmarks import bench_scale

    result = bench_scale.kde_floor(n=400, d=4, folds=5, repeat=1, check_rows=60)
    # the exact path agrees with scikit-learn's exact tree sums
    assert result["max_abs_diff_vs_refits"] < 1e-8
    assert min(result["floor"], result["n_jobs_1"], result["n_jobs_2"]) > 0
    text = bench_scale.table(result, [])
    assert "n=400, d=4" in text and "x floor" in text
