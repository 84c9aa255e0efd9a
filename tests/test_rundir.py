"""The run folder: no pickle, a lock, a manifest, an output set replaced whole.

Every test asserts the exit status, the message and the state of the folder
afterwards (files intact, the old or the new set, no temporary files).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sklearn_mem import _rundir, report
from sklearn_mem.cli import FitStore, main

ROOT = Path(__file__).resolve().parents[1]


class _Payload:
    """Unpickling this creates a marker file (what an attacker would run)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.fixture
def data(tmp_path, digits):
    path = tmp_path / "d.npy"
    np.save(path, digits[:90])
    return path


def _gmm(data, out, *extra):
    return [
        "run",
        "--data",
        str(data),
        "--model",
        "gmm",
        "--components",
        "2",
        "--folds",
        "3",
        "--jobs",
        "1",
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


def _tree(folder):
    """{relative path: bytes or link target} of everything in a folder."""
    folder = Path(folder)
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = p.read_bytes()
    return out


def _no_temporaries(folder):
    names = [p.name for p in Path(folder).rglob("*")]
    return not [n for n in names if n.endswith(".tmp") or n.startswith("staging-")]


def _entries(out):
    return sorted((Path(out) / "cache").rglob("entry.json"))


# ---------------------------------------------------------------------------
# 1. the fit store never unpickles; corrupt or edited entries are recomputed
# ---------------------------------------------------------------------------


def test_planted_pickle_never_runs_and_is_recomputed(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_gmm(data, out)) == 0
    scores = (out / "scores.csv").read_bytes()
    entries = _entries(out)
    assert len(entries) == 3
    marker = tmp_path / "pwned"
    for entry in entries:
        folder = entry.parent
        # the worst case: arrays replaced by a pickle, checksum updated to match
        np.savez(
            folder / "arrays.npz",
            a0=np.array([_Payload(marker)], dtype=object),
            allow_pickle=True,
        )
        meta = json.loads(entry.read_text())
        meta["sha256"] = _sha256(folder / "arrays.npz")
        entry.write_text(json.dumps(meta))
        # and a joblib-style pickle next to it, as earlier versions wrote
        (folder / "output.pkl").write_bytes(
            __import__("pickle").dumps(_Payload(marker))
        )
    capsys.readouterr()
    assert main(_gmm(data, out, "--aggregate", "logmeanexp")) == 0
    err = capsys.readouterr().err
    assert not marker.exists()
    assert err.count("is corrupt") == 3 and "recomputed" in err
    assert (out / "scores.csv").read_bytes() == scores
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fits"]["computed"] == 3 and summary["fits"]["from_cache"] == 0


def _sha256(path):
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_edited_numbers_are_detected(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_gmm(data, out)) == 0
    scores = (out / "scores.csv").read_bytes()
    entry = _entries(out)[0].parent
    with np.load(entry / "arrays.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["a0"] = arrays["a0"] + 1.0  # a valid archive of wrong numbers
    np.savez(entry / "arrays.npz", **arrays)
    (_entries(out)[1].parent / "arrays.npz").write_bytes(b"truncated")
    capsys.readouterr()
    assert main(_gmm(data, out)) == 0
    err = capsys.readouterr().err
    assert err.count("is corrupt") == 2
    assert "checksum" in err
    assert (out / "scores.csv").read_bytes() == scores
    fits = json.loads((out / "summary.json").read_text())["fits"]
    assert fits["computed"] == 2 and fits["from_cache"] == 1


def test_fit_store_round_trip_and_interface(tmp_path):
    store = FitStore(tmp_path / "store")

    def pair(a):
        return a * 2, (np.arange(3), None, [1.5, "x"])

    cached = store.cache(pair)
    assert not cached.check_call_in_cache(np.ones(2))
    first = cached(np.ones(2))
    assert cached.check_call_in_cache(np.ones(2))
    again = cached(np.ones(2))
    np.testing.assert_array_equal(again[0], first[0])
    assert again[1][1] is None and again[1][2] == [1.5, "x"]
    assert isinstance(again, tuple) and isinstance(again[1][2], list)
    assert len(store.cached_seconds) == 1 and store.cached_seconds[0] >= 0
    with pytest.raises(TypeError, match="cannot store"):
        store.cache(lambda: {"a": 1})()
    assert store.clear() == 1 and not store.entries()


def test_memory_docstring_names_the_trust_boundary():
    from sklearn_mem import MemorizationScorer

    doc = MemorizationScorer.__doc__
    assert "joblib.Memory" in doc and "pickle" in doc and "FitStore" in doc


# ---------------------------------------------------------------------------
# 2. the report is rendered with autoescaping
# ---------------------------------------------------------------------------


def test_report_escapes_every_value_from_files(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_gmm(data, out)) == 0
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text())
    evil = "<script>alert(1)</script>"
    summary["scores"]["n_nan"] = evil
    summary["scores"]["n_finite"] = evil
    summary["scores"]["n_posinf"] = evil
    summary["settings"]["estimator"] = evil
    summary["data"]["description"] = evil
    summary["data"]["name"] = evil
    summary["scores"]["quantiles"] = {evil: evil}
    summary["timings"]["fit_s"] = evil
    summary_path.write_text(json.dumps(summary))
    assert main(["report", str(out), "--quiet"]) == 0, capsys.readouterr().err
    page = (out / "report.html").read_text()
    assert "<script>" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 6


# ---------------------------------------------------------------------------
# 3. a folder sklearn-mem did not write is never touched
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("flags", [[], ["--overwrite"]])
def test_foreign_folder_is_refused_whatever_the_flags(data, tmp_path, capsys, flags):
    stranger = tmp_path / "stranger"
    (stranger / "cache").mkdir(parents=True)
    (stranger / "cache" / "mine.txt").write_text("my cache")
    (stranger / "scores.csv").write_text("my scores")
    (stranger / "run.json").write_text("{}")
    before = _tree(stranger)
    assert main(_gmm(data, stranger, *flags)) == 2
    err = capsys.readouterr().err
    assert "cannot be told from yours" in err or "holds no sklearn-mem run" in err
    assert "Traceback" not in err
    assert _tree(stranger) == before

    (stranger / "run.json").unlink()
    assert main(_gmm(data, stranger, *flags)) == 2
    assert "not empty and holds no sklearn-mem run" in capsys.readouterr().err
    assert _tree(stranger) == {k: v for k, v in before.items() if k != "run.json"}

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(_gmm(data, empty, *flags)) == 0
    assert (empty / "scores.csv").is_file()


def test_overwrite_removes_only_what_sklearn_mem_wrote(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_gmm(data, out)) == 0
    (out / "notes.txt").write_text("mine")
    (out / "cache" / "mine.txt").write_text("mine too")
    assert main(_gmm(data, out, "--components", "3")) == 2
    assert "holds a different run" in capsys.readouterr().err
    assert main(_gmm(data, out, "--components", "3", "--overwrite")) == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "cache" / "mine.txt").read_text() == "mine too"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["model_params"]["components"] == 3
    assert len(_entries(out)) == 3  # the old run's entries are gone


# ---------------------------------------------------------------------------
# 4. every option is checked before the folder is touched
# ---------------------------------------------------------------------------


def test_bad_option_leaves_the_previous_run_intact(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_gmm(data, out)) == 0
    before = _tree(out)
    assert main(_gmm(data, out, "--overwrite", "--seed", "-5")) == 2
    err = capsys.readouterr().err
    assert "--seed -5" in err and "random_state" not in err
    assert _tree(out) == before

    fresh = tmp_path / "fresh"
    assert main(_gmm(data, fresh, "--seed", "-5")) == 2
    assert not fresh.exists()
    assert main(_gmm(data, fresh, "--seed", "5")) == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--folds", "1"], "--folds"),
        (["--repeats", "0"], "--repeats"),
        (["--seed", str(2**32)], "--seed"),
        (["--top", "0"], "--top"),
        (["--jobs", "0"], "--jobs"),
        (["--jobs", "-100000"], "--jobs"),
        (["--components", "0"], "--components"),
        (["--image-shape", "3x3"], "--image-shape"),
    ],
)
def test_invalid_options_touch_nothing(data, tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert main([*_gmm(data, out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_jobs_beyond_the_cores_are_capped(data, tmp_path, capsys):
    from joblib import cpu_count

    out = tmp_path / "run"
    args = _gmm(data, out)
    args[args.index("--jobs") + 1] = "1000"
    args.remove("--quiet")
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "--jobs 1000 exceeds" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["jobs"] == cpu_count()


# ---------------------------------------------------------------------------
# 5. one process writes a folder at a time
# ---------------------------------------------------------------------------


def _start(args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env.update(kw.pop("env", {}))
    return subprocess.Popen(
        [sys.executable, "-m", "sklearn_mem", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_second_run_is_refused_while_the_first_holds_the_lock(
    tmp_path, digits, capsys
):
    data = tmp_path / "d.npy"
    np.save(data, digits[:600])
    out = tmp_path / "run"
    first = _gmm(data, out)
    first[first.index("--folds") + 1] = "40"
    first[first.index("--components") + 1] = "5"
    proc = _start(first)
    deadline = time.monotonic() + 90
    while not _entries(out):  # the first run holds the lock and is fitting
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    second = subprocess.run(
        [sys.executable, "-m", "sklearn_mem", *_gmm(data, out, "--seed", "7")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert second.returncode == 2
    assert "another sklearn-mem process is writing" in second.stderr
    assert "Traceback" not in second.stderr
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    run = json.loads((out / "run.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert run["fingerprint"] == summary["fingerprint"]
    assert summary["settings"]["seed"] == 0 and summary["n_fits"] == 40


def test_lock_held_by_another_process(data, tmp_path, capsys):
    from filelock import FileLock

    out = tmp_path / "run"
    assert main(_gmm(data, out)) == 0
    before = _tree(out)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, filelock; l = filelock.FileLock(sys.argv[1]); "
            "l.acquire(); print('held', flush=True); time.sleep(60)",
            str(out / ".sklearn-mem" / "lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(_gmm(data, out, "--aggregate", "mean")) == 2
        assert "lock is held" in capsys.readouterr().err
        assert main(["report", str(out)]) == 2
        assert "another sklearn-mem process" in capsys.readouterr().err
        assert _tree(out) == before
    finally:
        holder.kill()
        holder.wait()
    assert FileLock(str(out / ".sklearn-mem" / "lock"), timeout=5).acquire()


# ---------------------------------------------------------------------------
# 6. the output set is replaced as a whole
# ---------------------------------------------------------------------------


def _consistent_set(out):
    """The files behind the links come from one set; return its aggregate."""
    targets = {Path(os.path.realpath(out / n)).parent for n in _OUTPUT_NAMES}
    assert len(targets) == 1, targets
    summary = json.loads((out / "summary.json").read_text())
    scores = report.read_scores(out / "scores.csv")
    page = (out / "report.html").read_text()
    aggregate = summary["settings"]["aggregate"]
    assert f'<th class="l">aggregate</th><td class="l">{aggregate}' in page
    top = summary["scores"]["top_memorized"][0]
    i = scores["id"].index(str(top["id"]))
    assert scores["memorization"][i] == top["memorization"]
    return aggregate


_OUTPUT_NAMES = ("scores.csv", "summary.json", "report.html", "histogram.png")


@pytest.mark.parametrize("step", _rundir.PUBLISH_STEPS)
def test_kill_at_each_step_of_the_output_phase(data, tmp_path, step):
    out = tmp_path / "run"
    assert main(_gmm(data, out)) == 0
    old = _tree(out / ".sklearn-mem" / "current")
    proc = _start(
        _gmm(data, out, "--aggregate", "mean"), env={_rundir.KILL_AT_ENV: step}
    )
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    # a reader right after the kill sees one complete set, old or new
    aggregate = _consistent_set(out)
    switched = _rundir.PUBLISH_STEPS.index(step) >= _rundir.PUBLISH_STEPS.index(
        "switched"
    )
    assert aggregate == ("mean" if switched else "logmeanexp")
    if not switched:
        assert _tree(out / ".sklearn-mem" / "current") == old
    # the next command tidies what the killed one left, and finishes the job
    assert main(_gmm(data, out, "--aggregate", "mean")) == 0
    assert _consistent_set(out) == "mean"
    assert _no_temporaries(out)
    sets = list((out / ".sklearn-mem" / "sets").iterdir())
    assert len(sets) == 1
    manifest = json.loads((out / ".sklearn-mem" / "manifest.json").read_text())
    assert str(manifest["generation"]) == sets[0].name


def _mount_tmpfs(path, options):
    """Mount a tmpfs at ``path`` (root only) or skip; return an unmount call."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root (root also ignores chmod)")
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr!r}")
    return lambda: subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def tiny_fs(tmp_path):
    """A 600 KiB tmpfs, unmounted afterwards."""
    unmount = _mount_tmpfs(tmp_path / "tiny", "size=600k")
    yield tmp_path / "tiny"
    unmount()


def test_full_disk_keeps_the_previous_set(data, tiny_fs, capsys):
    out = tiny_fs / "run"
    assert main(_gmm(data, out)) == 0
    before = _tree(out)
    ballast = tiny_fs / "ballast"
    free = shutil.disk_usage(tiny_fs).free
    with open(ballast, "wb") as fh:  # fill the disk up to a few KiB
        fh.write(b"\0" * max(0, free - 8 * 1024))
    capsys.readouterr()
    assert main(_gmm(data, out, "--aggregate", "mean")) == 2
    err = capsys.readouterr().err
    assert "no space left" in err.lower() and "Traceback" not in err
    ballast.unlink()
    assert _no_temporaries(out)
    after = _tree(out)
    assert {k: v for k, v in after.items() if k != "run.json"} == {
        k: v for k, v in before.items() if k != "run.json"
    }
    assert _consistent_set(out) == "logmeanexp"


def test_full_disk_during_the_fits(data, tiny_fs, capsys):
    out = tiny_fs / "run"
    ballast = tiny_fs / "ballast"
    free = shutil.disk_usage(tiny_fs).free
    with open(ballast, "wb") as fh:
        fh.write(b"\0" * max(0, free - 12 * 1024))
    assert main(_gmm(data, out)) == 2
    err = capsys.readouterr().err
    assert "no space left" in err.lower() and "Traceback" not in err
    assert _no_temporaries(out)
    ballast.unlink()
    assert main(_gmm(data, out)) == 0
    _consistent_set(out)


@pytest.fixture
def read_only_dir(tmp_path):
    """A read-only tmpfs, unmounted afterwards."""
    unmount = _mount_tmpfs(tmp_path / "ro", "ro,size=64k")
    yield tmp_path / "ro"
    unmount()


def test_read_only_out(data, read_only_dir, capsys):
    assert main(_gmm(data, read_only_dir / "run")) == 2
    err = capsys.readouterr().err
    assert "cannot write the run folder" in err and "Read-only" in err
    assert err.count("error:") == 1 and "Traceback" not in err


def test_out_under_a_file(data, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(_gmm(data, tmp_path / "file" / "run")) == 2
    err = capsys.readouterr().err
    assert "which is a file, not a folder" in err
    assert (tmp_path / "file").read_text() == "x"


# ---------------------------------------------------------------------------
# 8. the cache key covers the estimator's code
# ---------------------------------------------------------------------------


_ESTIMATOR_SOURCE = """
import numpy as np
from sklearn.base import BaseEstimator


class Shifted(BaseEstimator):
    def fit(self, X, y=None):
        self.mean_ = X.mean(axis=0)
        return self

    def score_samples(self, X):
        return -((X - self.mean_) ** 2).sum(axis=1) + OFFSET
"""


def test_cache_key_covers_the_estimators_source(tmp_path, monkeypatch):
    import importlib

    from sklearn_mem import MemorizationScorer

    module = tmp_path / "user_density.py"
    module.write_text(_ESTIMATOR_SOURCE.replace("OFFSET", "0.0"))
    monkeypatch.syspath_prepend(str(tmp_path))
    import user_density

    X = np.random.RandomState(0).rand(30, 2)
    store = FitStore(tmp_path / "cache")
    first = MemorizationScorer(
        user_density.Shifted(), cv=3, memory=store, random_state=0, refit=False
    ).fit(X)
    again = MemorizationScorer(
        user_density.Shifted(), cv=3, memory=store, random_state=0, refit=False
    ).fit(X)
    assert again.n_fits_from_cache_ == 3

    module.write_text(_ESTIMATOR_SOURCE.replace("OFFSET", "(X[:, 0] > 0.5)"))
    user_density = importlib.reload(user_density)
    edited = MemorizationScorer(
        user_density.Shifted(), cv=3, memory=store, random_state=0, refit=False
    ).fit(X)
    assert edited.n_fits_from_cache_ == 0
    assert not np.allclose(edited.loglik_, first.loglik_)


# ---------------------------------------------------------------------------
# resume messages tell the truth
# ---------------------------------------------------------------------------


def test_resume_reports_both_fitting_times(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_gmm(data, out)) == 0
    first = json.loads((out / "summary.json").read_text())
    args = _gmm(data, out, "--aggregate", "mean")
    args.remove("--quiet")
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "3 of 3 fits read from the run folder's cache, 0 computed" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fits"]["from_cache"] == 3
    assert summary["timings"]["cached_fit_s"] > 0
    assert first["timings"]["cached_fit_s"] == 0
    page = (out / "report.html").read_text()
    assert "fitting time of the cached fits, when computed" in page
    assert "fitting time, this run" in page


def test_unfinished_run_hint_repeats_the_command(data, tmp_path, capsys):
    out = tmp_path / "run"
    proc = _start(_gmm(data, out), env={_rundir.KILL_AT_ENV: "staged"})
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unfinished run" in err
    assert f"sklearn-mem run --data {data}" in err
    assert _no_temporaries(out)


def test_report_on_damaged_outputs(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_gmm(data, out)) == 0
    target = Path(os.path.realpath(out / "scores.csv"))
    text = target.read_text()
    target.write_text(text[: len(text) // 2])  # truncated mid-line
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert "fields, but the header has" in err or "rows but the run has" in err
    assert "Traceback" not in err
    target.write_text(text.replace("memorization", "memorisation", 1))
    assert main(["report", str(out)]) == 2
    assert "unexpected or repeated columns" in capsys.readouterr().err
    target.write_text(text)
    Path(os.path.realpath(out / "summary.json")).write_text("{not json")
    assert main(["report", str(out)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# workers do not outlive a killed parent
# ---------------------------------------------------------------------------


def _children(pid):
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_workers_exit_after_the_parent_is_killed(tmp_path, digits):
    data = tmp_path / "d.npy"
    np.save(data, digits[:600])
    out = tmp_path / "run"
    args = _gmm(data, out)
    args[args.index("--folds") + 1] = "200"
    args[args.index("--jobs") + 1] = "2"
    proc = _start(args)
    deadline = time.monotonic() + 90
    while len(_entries(out)) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert workers
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    deadline = time.monotonic() + 30
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [w for w in workers if _alive(w)]


# ---------------------------------------------------------------------------
# no tracebacks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b""), "npy"),
        (lambda p: np.save(p, np.full((40, 3), 1e308)), "Rescale the data"),
    ],
)
def test_bad_data_files_are_messages(tmp_path, capsys, make, message):
    path = tmp_path / "bad.npy"
    make(path)
    out = tmp_path / "run"
    assert main(["run", "--data", str(path), "--model", "kde", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_bandwidth_out_of_range_is_a_message(data, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", "--data", str(data), "--model", "kde", "--out", str(out), "-q"]
    for bandwidth in ("1e-300", "1e300"):
        assert main([*args, "--bandwidth", bandwidth]) == 2
        err = capsys.readouterr().err
        assert f"bandwidth={float(bandwidth):g}" in err and "Traceback" not in err


def test_fit_failure_names_its_fit(data, tmp_path, capsys):
    out = tmp_path / "run"
    args = _gmm(data, out)
    args[args.index("--components") + 1] = "70"  # more than a split's 60 rows
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "raised by fit 0" in err and "fitted on 60 of 90 rows" in err
    assert "Traceback" not in err and "--debug" in err
    assert main([*args, "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_csv_with_numeric_header_is_refused_in_auto_mode(tmp_path, capsys):
    path = tmp_path / "years.csv"
    rng = np.random.RandomState(0)
    rows = "\n".join(",".join(f"{v:.3f}" for v in row) for row in rng.rand(20, 3))
    path.write_text("2019,2020,2021\n" + rows + "\n")
    out = tmp_path / "run"
    base = ["run", "--data", str(path), "--model", "kde", "--folds", "2"]
    assert main([*base, "--out", str(out), "-q"]) == 2
    assert "--header" in capsys.readouterr().err
    assert not out.exists()
    assert main([*base, "--header", "yes", "--out", str(out), "-q"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data"]["n_samples"] == 20
