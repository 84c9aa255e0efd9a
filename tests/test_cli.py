"""The sklearn-mem command: runs, outputs, report, resuming, bad input."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sklearn_mem import _models_table, cli, report
from sklearn_mem.cli import build_parser, load_data, main

ROOT = Path(__file__).resolve().parents[1]


def _files(folder):
    return sorted(p.name for p in Path(folder).iterdir()) if folder.exists() else []


def _cache_entries(run_dir):
    """{entry folder: mtime_ns of its entry.json} of the cached fits."""
    return {
        p.parent: p.stat().st_mtime_ns
        for p in (Path(run_dir) / "cache").rglob("entry.json")
        if "_cached_fit_and_score" in p.parts and not p.parent.name.startswith(".")
    }


def _summary(run_dir):
    return json.loads((Path(run_dir) / "summary.json").read_text())


def _error(capsys):
    return capsys.readouterr().err


@pytest.fixture
def small_npy(tmp_path, digits):
    path = tmp_path / "small.npy"
    np.save(path, digits[:120])
    return path


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------


def test_help_explains_every_option(capsys):
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.choices and "run" in a.choices)
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings} has no help"
    with pytest.raises(SystemExit) as exc:
        main(["run", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--data",
        "--key",
        "--id-column",
        "--dropna",
        "--model",
        "--bandwidth",
        "--components",
        "--reg-covar",
        "--epochs",
        "--latent-dim",
        "--folds",
        "--repeats",
        "--aggregate",
        "--jobs",
        "--seed",
        "--out",
        "--quiet",
        "--overwrite",
        "--rho",
    ):
        assert flag in out


def test_python_dash_m_entry_point():
    proc = subprocess.run(
        [sys.executable, "-m", "sklearn_mem", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "run" in proc.stdout and "report" in proc.stdout


# ---------------------------------------------------------------------------
# runs and their outputs
# ---------------------------------------------------------------------------


def test_run_kde_writes_every_output(small_npy, tmp_path, capsys):
    out = tmp_path / "run"
    status = main(
        [
            "run",
            "--data",
            str(small_npy),
            "--model",
            "kde",
            "--folds",
            "5",
            "--image-shape",
            "8x8",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert status == 0, _error(capsys)
    stdout = capsys.readouterr().out
    assert "most memorized ids" in stdout and "q95" in stdout
    for name in (
        "scores.csv",
        "summary.json",
        "report.html",
        "histogram.png",
        "memorized_samples.png",
        "memorization_vs_loglik.png",
    ):
        assert (out / name).is_file(), name
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]

    scores = report.read_scores(out / "scores.csv")
    assert list(scores) == [
        "id",
        "in_loglik",
        "out_loglik",
        "memorization",
        "n_in",
        "n_out",
    ]
    assert scores["id"] == [str(i) for i in range(120)]
    np.testing.assert_array_equal(
        scores["memorization"], scores["in_loglik"] - scores["out_loglik"]
    )
    assert set(scores["n_in"]) == {4} and set(scores["n_out"]) == {1}

    summary = _summary(out)
    assert summary["fits"]["method"].startswith("exact")
    assert summary["settings"]["model_params"] == {
        "bandwidth": 0.5,
        "kernel": "gaussian",
    }
    assert summary["scores"]["n_nan"] == 0
    assert set(summary["scores"]["quantiles"]) >= {"0.5", "0.95"}
    assert len(summary["scores"]["top_memorized"]) == 20
    top = summary["scores"]["top_memorized"][0]
    assert top["memorization"] == scores["memorization"].max()
    assert {"numpy", "scikit-learn", "sklearn_mem"} <= set(summary["versions"])
    assert summary["data"]["image_shape"] == [8, 8]

    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 3 + 20  # figures + thumbnails
    assert "0.95 quantile" in page and "Most memorized samples" in page


def test_csv_with_ids_nan_rows_and_repeats(tmp_path, digits, capsys):
    X = digits[:60, :6].copy()
    X[[7, 30], 2] = np.nan
    path = tmp_path / "table.csv"
    lines = ["name," + ",".join(f"f{j}" for j in range(6))]
    lines += [
        f"s{i}," + ",".join(repr(float(v)) for v in row) for i, row in enumerate(X)
    ]
    path.write_text("\n".join(lines) + "\n")
    args = [
        "run",
        "--data",
        str(path),
        "--id-column",
        "name",
        "--model",
        "gmm",
        "--components",
        "2",
        "--folds",
        "3",
        "--repeats",
        "2",
        "--jobs",
        "1",
        "--quiet",
    ]

    out = tmp_path / "refused"
    assert main([*args, "--out", str(out)]) == 2
    err = _error(capsys)
    assert "2 of 60 rows" in err and "s7, s30" in err and "--dropna" in err
    assert not out.exists()  # nothing half-written

    out = tmp_path / "run"
    assert main([*args, "--out", str(out), "--dropna"]) == 0
    err = _error(capsys)
    assert "dropping 2 rows" in err and "fits" not in err  # --quiet: no bar
    scores = report.read_scores(out / "scores.csv")
    assert len(scores["id"]) == 58 and "s7" not in scores["id"]
    assert scores["id"][:3] == ["s0", "s1", "s2"]
    assert np.isfinite(scores["stderr"]).all()  # two repeats: a standard error
    assert set(scores["n_in"]) == {4} and set(scores["n_out"]) == {2}
    summary = _summary(out)
    assert summary["data"]["dropped_ids"] == ["s7", "s30"]
    assert summary["n_fits"] == 6 and summary["n_repeats"] == 2
    assert len(summary["seeds"]) == 6
    assert all(t["id"].startswith("s") for t in summary["scores"]["top_memorized"])


def test_rho_and_report_rerender(small_npy, tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "run",
        "--data",
        str(small_npy),
        "--model",
        "gmm",
        "--components",
        "2",
        "--folds",
        "4",
        "--jobs",
        "1",
        "--rho",
        "--image-shape",
        "8x8",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0, _error(capsys)
    scores = report.read_scores(out / "scores.csv")
    rho = scores["rho"]
    # defined for the 90 training rows of the first split, NaN for its 30 others
    assert np.isnan(rho).sum() == 30 and (rho[~np.isnan(rho)] > 0).all()
    assert _summary(out)["rho"]["n_generated"] == 30
    assert (out / "memorization_vs_ratio.png").is_file()

    # re-render from the saved files: no fit, same scores
    before = (out / "scores.csv").read_bytes()
    entries = _cache_entries(out)
    for name in ("report.html", "histogram.png", "memorization_vs_ratio.png"):
        (out / name).unlink()
    capsys.readouterr()
    assert main(["report", str(out), "--quiet"]) == 0, _error(capsys)
    assert (out / "report.html").is_file() and (out / "histogram.png").is_file()
    assert (out / "memorization_vs_ratio.png").is_file()
    assert (out / "scores.csv").read_bytes() == before
    assert _cache_entries(out) == entries
    # the data file is gone: the report still renders, without the image grid
    small_npy.unlink()
    (out / "memorized_samples.png").unlink()
    assert main(["report", str(out)]) == 0
    assert "cannot reload the data" in _error(capsys)
    assert not (out / "memorized_samples.png").exists()


def test_default_model_without_torch(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(_models_table, "_torch_available", lambda: False)
    assert cli.default_model()[0] == "gmm"
    out = tmp_path / "run"
    # no command means "run"
    assert main(["--folds", "2", "--jobs", "1", "--out", str(out)]) == 0
    err = _error(capsys)
    assert "torch is not installed" in err and "GaussianMixture" in err
    assert "2/2" in err  # the progress bar over fits
    assert _summary(out)["settings"]["model"] == "gmm"
    assert _summary(out)["data"]["name"] == "digits"


@pytest.mark.parametrize("model", ["vae", "flow"])
def test_deep_model_needs_torch_extra(model, monkeypatch, small_npy, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "sklearn_mem.models", None)  # not importable
    out = tmp_path / "run"
    assert (
        main(["run", "--data", str(small_npy), "--model", model, "--out", str(out)])
        == 2
    )
    err = _error(capsys)
    assert f"the {model} model needs the torch extra" in err
    assert 'pip install -e ".[torch,cli]"' in err and "whl/cpu" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "model, options",
    [
        (
            "vae",
            [
                "--epochs",
                "1",
                "--importance-samples",
                "4",
                "--latent-dim",
                "2",
                "--hidden-dims",
                "16",
                "--score-precision",
                "bfloat16",
            ],
        ),
        ("flow", ["--epochs", "1", "--layers", "2", "--hidden-dims", "8"]),
    ],
)
def test_deep_models(model, options, small_npy, tmp_path, capsys):
    pytest.importorskip("skorch")
    pytest.importorskip("torch")
    out = tmp_path / "run"
    args = [
        "run",
        "--data",
        str(small_npy),
        "--model",
        model,
        *options,
        "--folds",
        "2",
        "--jobs",
        "1",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0, _error(capsys)
    summary = _summary(out)
    assert summary["settings"]["model"] == model
    assert summary["fits"] == {
        "method": "batched (the folds of each repeat trained as one model)",
        "computed": 2,
        "from_cache": 0,
    }
    if model == "vae":
        assert summary["settings"]["model_params"]["likelihood"] == "bernoulli"
        assert summary["settings"]["model_params"]["score_precision"] == "bfloat16"
    assert np.isfinite(report.read_scores(out / "scores.csv")["memorization"]).all()


# ---------------------------------------------------------------------------
# nothing lost: kill, resume, re-aggregate
# ---------------------------------------------------------------------------


def _start(args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    return subprocess.Popen(
        [sys.executable, "-m", "sklearn_mem", "run", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc, timeout=120):
    stdout, stderr = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, stderr
    return stdout, stderr


def test_killed_run_resumes_with_missing_fits_only(tmp_path, digits):
    data = tmp_path / "d.npy"
    np.save(data, digits[:600])
    n_fits = 30
    common = [
        "--data",
        str(data),
        "--model",
        "gmm",
        "--components",
        "10",
        "--folds",
        str(n_fits),
        "--jobs",
        "1",
        "--seed",
        "3",
        "--quiet",
    ]
    run = tmp_path / "run"

    proc = _start([*common, "--out", str(run)], ROOT)
    deadline = time.monotonic() + 90
    while len(_cache_entries(run)) < 3:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no fit finished in time"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    done = _cache_entries(run)
    assert 3 <= len(done) < n_fits
    assert not (run / "scores.csv").exists()  # killed before any output

    # an unfinished run has no report yet, and says how to finish it
    proc = subprocess.run(
        [sys.executable, "-m", "sklearn_mem", "report", str(run)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 2 and "unfinished run" in proc.stderr

    # resume: only the missing fits run; the finished ones are untouched
    _finish(_start([*common, "--out", str(run)], ROOT))
    after = _cache_entries(run)
    assert len(after) == n_fits
    assert {k: after[k] for k in done} == done
    fits = _summary(run)["fits"]
    assert fits == {
        "method": "refit",
        "computed": n_fits - len(done),
        "from_cache": len(done),
    }

    # bit for bit what an uninterrupted run gives
    fresh = tmp_path / "fresh"
    _finish(_start([*common, "--out", str(fresh)], ROOT))
    assert (run / "scores.csv").read_bytes() == (fresh / "scores.csv").read_bytes()
    assert _summary(run)["scores"] == _summary(fresh)["scores"]
    assert _summary(run)["seeds"] == _summary(fresh)["seeds"]

    # re-aggregate the finished run: every fit comes from the cache
    stdout, _ = _finish(
        _start([*common, "--out", str(run), "--aggregate", "mean"], ROOT)
    )
    assert f"0 computed, {n_fits} from cache" in stdout
    assert _cache_entries(run) == after
    summary = _summary(run)
    assert summary["settings"]["aggregate"] == "mean"
    mean = report.read_scores(run / "scores.csv")
    lme = report.read_scores(fresh / "scores.csv")
    assert not np.array_equal(mean["memorization"], lme["memorization"])
    np.testing.assert_array_equal(mean["n_out"], lme["n_out"])


# ---------------------------------------------------------------------------
# bad input: clear message on stderr, non-zero exit, nothing written
# ---------------------------------------------------------------------------


def _bad(args, tmp_path, capsys, status=2):
    out = tmp_path / "out"
    code = main(["run", *args, "--out", str(out), "--jobs", "1", "--quiet"])
    assert code == status
    assert not out.exists()
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


def test_missing_file(tmp_path, capsys):
    err = _bad(["--data", str(tmp_path / "nope.npy")], tmp_path, capsys)
    assert "does not exist" in err and "nope.npy" in err


def test_unknown_format(tmp_path, capsys):
    path = tmp_path / "x.txt"
    path.write_text("1 2\n3 4\n")
    err = _bad(["--data", str(path)], tmp_path, capsys)
    assert "unknown data format '.txt'" in err and ".npy, .npz, .csv" in err


def test_non_numeric_columns(tmp_path, capsys):
    path = tmp_path / "x.csv"
    path.write_text("a,b,label\n1,2,cat\n3,4,dog\n")
    err = _bad(["--data", str(path)], tmp_path, capsys)
    assert "non-numeric columns" in err and "'label'" in err and "--id-column" in err


def test_fewer_rows_than_folds(tmp_path, capsys):
    path = tmp_path / "x.npy"
    np.save(path, np.random.RandomState(0).rand(5, 2))
    err = _bad(
        ["--data", str(path), "--model", "kde", "--folds", "10"], tmp_path, capsys
    )
    assert "5 rows" in err and "--folds 10" in err


def test_unknown_model(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--model", "pca", "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    assert "invalid choice: 'pca'" in _error(capsys)
    assert not (tmp_path / "out").exists()


def test_option_of_another_model(tmp_path, small_npy, capsys):
    err = _bad(
        ["--data", str(small_npy), "--model", "gmm", "--bandwidth", "1"],
        tmp_path,
        capsys,
    )
    assert "--bandwidth does not apply to the gmm model" in err


def test_rho_needs_a_model_that_samples(small_npy, tmp_path, capsys):
    args = ["--data", str(small_npy), "--model", "kde", "--kernel", "cosine", "--rho"]
    err = _bad(args, tmp_path, capsys)
    assert "gaussian or tophat" in err


def test_pickled_file_is_never_loaded(tmp_path, capsys):
    path = tmp_path / "x.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    err = _bad(["--data", str(path)], tmp_path, capsys)
    assert "never unpickles" in err
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "y.npy"
    path.write_bytes(pickle.dumps(Evil()))
    _bad(["--data", str(path)], tmp_path, capsys)
    assert not marker.exists()


def test_npz_keys(tmp_path, capsys):
    path = tmp_path / "x.npz"
    rng = np.random.RandomState(0)
    np.savez(path, a=rng.rand(20, 2), b=rng.rand(20, 3))
    err = _bad(["--data", str(path)], tmp_path, capsys)
    assert "holds 2 arrays (a, b)" in err and "--key" in err
    err = _bad(["--data", str(path), "--key", "c"], tmp_path, capsys)
    assert "no array named 'c'" in err
    data = load_data(path, key="b")
    assert data.X.shape == (20, 3) and data.description == "x.npz[b]"


def test_image_arrays_and_bad_image_shape(tmp_path, capsys):
    path = tmp_path / "img.npy"
    np.save(path, np.zeros((4, 3, 5)))
    data = load_data(path)
    assert data.X.shape == (4, 15) and data.image_shape == (3, 5)
    err = _bad(["--data", str(path), "--image-shape", "4x4"], tmp_path, capsys)
    assert "holds 16 values" in err and "15 features" in err


def test_output_folder_holding_another_run(small_npy, tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "run",
        "--data",
        str(small_npy),
        "--model",
        "kde",
        "--folds",
        "3",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()

    other = [a if a != "0.5" else "0.7" for a in [*args, "--bandwidth", "0.5"]]
    assert main(other) == 2
    err = _error(capsys)
    assert "holds a different run" in err and "bandwidth" in err
    assert "--overwrite" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before

    np.save(small_npy, np.load(small_npy)[:100])  # other data, same settings
    assert main(args) == 2
    assert "data:" in _error(capsys)

    assert main([*other, "--overwrite"]) == 0
    assert _summary(out)["settings"]["model_params"]["bandwidth"] == 0.7
    assert _summary(out)["data"]["n_samples"] == 100

    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    assert main([*args[:-3], "--out", str(stranger), "--quiet"]) == 2
    assert "holds no sklearn-mem run" in _error(capsys)
    assert _files(stranger) == ["notes.txt"]
