"""The ``sklearn-mem`` command: a whole memorization study from the shell.

``sklearn-mem run`` loads data (scikit-learn's digits by default, or a
``.npy``, ``.npz`` or ``.csv`` file), computes the cross-validated
memorization score of every sample with
:class:`~sklearn_mem.MemorizationScorer` and writes, into its run folder,
``scores.csv``, ``summary.json``, PNG figures and a one-page
``report.html``. Every fit's log-likelihood row is kept in the folder's
fit store (plain arrays with checksums, never pickles): an interrupted run
resumes with the missing fits only, and rerunning with another
``--aggregate`` refits nothing. ``sklearn-mem report DIR`` re-renders the
report of a finished run.

The command's parts live in private modules: data loading
(``_data``), the model table (``_models_table``) and the run folder
(``_rundir``); their public helpers are re-exported here.

Also available as ``python -m sklearn_mem``.
"""

import argparse
import importlib.util
import inspect
import json
import logging
import os
import shlex
import sys
import time
import traceback
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import __version__
from . import report as _report
from ._data import (
    _parse_shape,
    _settings_fingerprint,
    data_fingerprint,
    load_data,
)
from ._errors import CLIError
from ._models_table import (
    _ALL_MODEL_OPTIONS,
    MODEL_OPTIONS,
    build_estimator,
    default_model,
)
from ._rundir import FitStore, RunFolder
from ._versions import environment_versions

__all__ = [
    "CLIError",
    "FitStore",
    "RunFolder",
    "build_estimator",
    "build_parser",
    "data_fingerprint",
    "default_model",
    "load_data",
    "main",
]

logger = logging.getLogger("sklearn_mem")

#: Environment variable that makes the command print tracebacks (as --debug).
DEBUG_ENV = "SKLEARN_MEM_DEBUG"
MAX_SEED = 2**32 - 1


def _fit_and_sample(estimator, X, train, seed, n_samples):
    """Fit a clone on ``X[train]`` with ``seed`` and draw ``n_samples``."""
    from ._folds import fit_seeded_clone
    from ._threads import limit_threads

    where = f"the --rho fit on the {len(train)} training rows of split 0"
    est = fit_seeded_clone(estimator, X, train, {}, int(seed), 1, where)
    with limit_threads(1):
        if "random_state" in inspect.signature(est.sample).parameters:
            draws = est.sample(n_samples, random_state=int(seed))
        else:
            draws = est.sample(n_samples)
    if isinstance(draws, tuple):  # GaussianMixture returns (X, labels)
        draws = draws[0]
    return np.asarray(draws, dtype=np.float64).reshape(n_samples, -1)


def _nearest_neighbor_ratio(scorer, estimator, X, seed, store):
    """rho for the training rows of the first split (NaN elsewhere)."""
    from .neighbors import nearest_neighbor_ratio

    train, test = next(iter(scorer.cv_.split(X)))
    fit_seed = seed if scorer.seeds_ is None else int(scorer.seeds_[0])
    sample = store.cache(_fit_and_sample)
    try:
        sample.check_call_in_cache(estimator, X, train, fit_seed, len(test))
        generated = sample(estimator, X, train, fit_seed, len(test))
    except (NotImplementedError, ValueError) as exc:
        raise CLIError(f"--rho: the model cannot sample: {exc}") from None
    rho = np.full(X.shape[0], np.nan)
    rho[train] = nearest_neighbor_ratio(X[train], X[test], generated)
    return rho, {
        "split": "split 0",
        "n_train": int(len(train)),
        "n_heldout": int(len(test)),
        "n_generated": int(len(test)),
        "seed": int(fit_seed),
    }


# ---------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------


def _model_options(args):
    return {k: getattr(args, k) for k in _ALL_MODEL_OPTIONS}


def _check_model_options(model, args):
    given = [k for k in _ALL_MODEL_OPTIONS if getattr(args, k) is not None]
    wrong = [k for k in given if k not in MODEL_OPTIONS[model]]
    if wrong:
        flags = ", ".join("--" + k.replace("_", "-") for k in wrong)
        raise CLIError(
            f"{flags} {'does' if len(wrong) == 1 else 'do'} not apply to the "
            f"{model} model; its options are: "
            + ", ".join("--" + k.replace("_", "-") for k in MODEL_OPTIONS[model])
            + "."
        )


_NET_PARAMS = {
    "vae": ("latent_dim", "architecture", "hidden_dims", "likelihood",
            "n_importance_samples", "score_precision", "max_epochs",
            "batch_size", "lr"),
    "flow": ("n_layers", "hidden_dims", "max_epochs", "batch_size", "lr"),
}  # fmt: skip


def _estimator_text(estimator, model):
    """A one-line description (skorch's repr of an unfitted net says little)."""
    if model in _NET_PARAMS:
        params = estimator.get_params(deep=False)
        inner = ", ".join(f"{k}={params[k]!r}" for k in _NET_PARAMS[model])
        return f"{type(estimator).__name__}({inner})"
    return repr(estimator).replace("\n", " ")


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _check_jobs(jobs):
    """``--jobs`` as joblib reads it, capped at the machine's cores."""
    from joblib import cpu_count

    n_cpus = cpu_count()
    if jobs == 0:
        raise CLIError("--jobs 0 is not a number of jobs: use 1, 2, ... or -1.")
    if jobs < 0:
        if n_cpus + 1 + jobs < 1:
            raise CLIError(
                f"--jobs {jobs} leaves no worker on this machine's {n_cpus} cores: "
                "use -1 (all cores) or a positive number."
            )
        return jobs
    if jobs > n_cpus:
        logger.warning(
            "--jobs %d exceeds the %d cores of this machine: using %d "
            "(more would only compete for the cores)",
            jobs,
            n_cpus,
            n_cpus,
        )
        return n_cpus
    return jobs


def _check_study_options(args):
    """Every option of ``run`` that needs no data, checked before anything."""
    if args.folds < 2:
        raise CLIError(f"--folds {args.folds}: need at least 2 folds.")
    if args.repeats < 1:
        raise CLIError(f"--repeats {args.repeats}: need at least 1.")
    if not 0 <= args.seed <= MAX_SEED:
        raise CLIError(f"--seed {args.seed}: expected an integer from 0 to {MAX_SEED}.")
    if args.top < 1:
        raise CLIError("--top must be at least 1.")
    if importlib.util.find_spec("matplotlib") is None:
        raise CLIError(
            "the report needs matplotlib, which is not installed: "
            'pip install -e ".[cli]" in a clone of sklearn_mem'
        )
    return _check_jobs(args.jobs)


def _run(args, argv):
    t_start = time.perf_counter()
    started = _now()
    # 1. every option and the data are checked before the folder is touched
    jobs = _check_study_options(args)
    image_shape = None if args.image_shape is None else _parse_shape(args.image_shape)
    data = load_data(
        args.data,
        key=args.key,
        id_column=args.id_column,
        dropna=args.dropna,
        image_shape=image_shape,
        header=args.header,
    )
    X, ids = data.X, data.ids
    n_samples = X.shape[0]
    if n_samples < args.folds:
        raise CLIError(
            f"{data.description} has {n_samples} rows (after dropping NaN rows) "
            f"but --folds {args.folds} needs at least {args.folds}: use fewer "
            "folds or more data."
        )
    if args.model is None:
        model, reason = default_model()
        logger.info("model: %s: %s. Choose the model with --model.", model, reason)
    else:
        model = args.model
    _check_model_options(model, args)
    estimator, model_params = build_estimator(
        model, _model_options(args), X, data.image_shape
    )
    if args.rho and not hasattr(estimator, "sample"):
        raise CLIError(f"--rho needs a model that can sample; {model} cannot.")
    if args.rho and model_params.get("kernel", "gaussian") not in (
        "gaussian",
        "tophat",
    ):
        raise CLIError(
            "--rho needs samples from the model, and KernelDensity samples only "
            "with the gaussian or tophat kernel."
        )
    from sklearn.model_selection import RepeatedKFold

    from . import MemorizationScorer

    cv = (
        args.folds
        if args.repeats == 1
        else RepeatedKFold(
            n_splits=args.folds, n_repeats=args.repeats, random_state=args.seed
        )
    )
    t_loaded = time.perf_counter()

    fit_settings = {
        "model": model,
        "model_params": model_params,
        "folds": args.folds,
        "repeats": args.repeats,
        "seed": args.seed,
    }
    data_fp = data_fingerprint(X, ids)
    fingerprint = _settings_fingerprint({"data": data_fp, **fit_settings})
    out = Path(args.out or f"sklearn-mem-{data.name}-{model}")
    data_info = {
        "name": data.name,
        "description": data.description,
        "source": data.source,
        "n_samples": int(n_samples),
        "n_features": int(X.shape[1]),
        "image_shape": None if data.image_shape is None else list(data.image_shape),
        "dropped_ids": data.dropped,
        "sha256": data_fp,
    }
    description = {
        "sklearn_mem_run": 2,
        "fingerprint": fingerprint,
        "data_fingerprint": data_fp,
        "fit_settings": fit_settings,
        "data": data_info,
        "command": ["sklearn-mem", "run", *argv],
        "started": started,
    }

    # 2. the folder: refused if foreign or held by another process
    with RunFolder(out) as folder:
        resumed = folder.claim(description, overwrite=args.overwrite)
        store = folder.store()
        scorer = MemorizationScorer(
            estimator,
            cv=cv,
            aggregate=args.aggregate,
            refit=False,
            n_jobs=jobs,
            memory=store,
            random_state=args.seed,
            verbose=0 if args.quiet else 1,
        )
        logger.info(
            "%s: %d x %d, %s, %d fits, results in %s",
            data.description,
            n_samples,
            X.shape[1],
            type(estimator).__name__,
            args.folds * args.repeats,
            out,
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scorer.fit(X)
        for w in caught:
            if not issubclass(
                w.category, (DeprecationWarning, PendingDeprecationWarning)
            ):
                logger.warning("%s: %s", w.category.__name__, w.message)
        t_fitted = time.perf_counter()
        n_fits = int(scorer.n_splits_)
        if resumed or scorer.n_fits_from_cache_:
            logger.info(
                "%d of %d fits read from the run folder's cache, %d computed",
                scorer.n_fits_from_cache_,
                n_fits,
                n_fits - scorer.n_fits_from_cache_,
            )
        methods = {
            "exact": "exact (closed-form kernel sums)",
            "refit": "refit",
            "batched": "batched (the folds of each repeat trained as one model)",
        }
        fits = {
            "method": methods[scorer.method_],
            "computed": n_fits - scorer.n_fits_from_cache_,
            "from_cache": scorer.n_fits_from_cache_,
        }
        cached_fit_s = float(sum(store.cached_seconds))

        columns = {
            "in_loglik": scorer.in_loglik_,
            "out_loglik": scorer.out_loglik_,
            "memorization": scorer.memorization_scores_,
            "n_in": scorer.n_in_,
            "n_out": scorer.n_out_,
        }
        if scorer.n_repeats_ > 1:
            columns["stderr"] = scorer.memorization_stderr_
        rho_info = None
        if args.rho:
            rho, rho_info = _nearest_neighbor_ratio(
                scorer, estimator, X, args.seed, store
            )
            columns["rho"] = rho
        t_rho = time.perf_counter()

        scores_csv = _report.format_scores(ids, columns)
        summary = {
            **description,
            "settings": {
                **fit_settings,
                "aggregate": args.aggregate,
                "jobs": jobs,
                "estimator": _estimator_text(estimator, model),
                "cv": repr(scorer.cv_),
                "rho": bool(args.rho),
            },
            "seeds": None if scorer.seeds_ is None else [int(s) for s in scorer.seeds_],
            "n_fits": n_fits,
            "n_repeats": int(scorer.n_repeats_),
            "fits": fits,
            "rho": rho_info,
            "scores": _report.summarize_scores(
                scorer.memorization_scores_, ids, n_top=args.top
            ),
            "versions": environment_versions(),
            "timings": {
                "load_s": round(t_loaded - t_start, 3),
                "fit_s": round(t_fitted - t_loaded, 3),
                "cached_fit_s": round(cached_fit_s, 3),
                "rho_s": round(t_rho - t_fitted, 3),
            },
        }
        files = _report.render_files(
            summary,
            _report.parse_scores(scores_csv),
            X=X,
            image_shape=data.image_shape,
            n_top=args.top,
        )
        t_end = time.perf_counter()
        summary["timings"]["report_s"] = round(t_end - t_rho, 3)
        summary["timings"]["total_s"] = round(t_end - t_start, 3)
        summary["finished"] = _now()
        files[_report.SCORES_FILE] = scores_csv
        files[_report.SUMMARY_FILE] = json.dumps(summary, indent=2)
        # 3. the output set is replaced as a whole
        folder.publish(files)
    logger.info("report written to %s", out / _report.REPORT_FILE)
    _print_summary(summary, out)
    return 0


def _print_summary(summary, out):
    data, stats, fits = summary["data"], summary["scores"], summary["fits"]
    q = stats["quantiles"]

    def f(v):
        if v is None:
            return "n/a"
        return v if isinstance(v, str) else f"{v:.3f}"

    top = ", ".join(str(t["id"]) for t in stats["top_memorized"][:10])
    print(
        f"{data['description']}: {data['n_samples']} samples x {data['n_features']} "
        f"features, {summary['settings']['model']}, {summary['settings']['cv']}\n"
        f"{summary['n_fits']} fits ({fits['computed']} computed, "
        f"{fits['from_cache']} from cache) in {summary['timings']['fit_s']:.1f} s; "
        f"total {summary['timings']['total_s']:.1f} s\n"
        f"memorization M (nats): median {f(q.get('0.5'))}, "
        f"q95 {f(q.get('0.95'))}, q99 {f(q.get('0.99'))}; "
        f"{stats['n_nan']} NaN, {stats['n_posinf'] + stats['n_neginf']} infinite\n"
        f"most memorized ids: {top}\n"
        f"results: {out / _report.SCORES_FILE}, {out / _report.SUMMARY_FILE}, "
        f"{out / _report.REPORT_FILE}"
    )


def _report_command(args):
    out = Path(args.dir)
    if not out.is_dir():
        raise CLIError(f"{str(out)!r} is not a folder.")
    if not (out / ".sklearn-mem").is_dir():
        raise CLIError(
            f"{str(out)!r} holds no sklearn-mem run (no manifest): it was not "
            "written by sklearn-mem run, or by an earlier version."
        )
    with RunFolder(out) as folder:
        current = folder.current_set()
        if current is None:
            run = folder.run_description() or {}
            command = run.get("command")
            if not (
                isinstance(command, list) and all(isinstance(c, str) for c in command)
            ):
                command = ["sklearn-mem", "run", "--out", str(out)]
            raise CLIError(
                f"{str(out)!r} holds an unfinished run; rerun `{shlex.join(command)}` "
                "to finish it (cached fits are reused)."
            )
        try:
            scores_csv = (current / _report.SCORES_FILE).read_text(encoding="utf-8")
            scores = _report.parse_scores(
                scores_csv, required=_report.REPORT_COLUMNS, name=_report.SCORES_FILE
            )
            summary_json = (current / _report.SUMMARY_FILE).read_text(encoding="utf-8")
            summary = _report.parse_summary(summary_json, name=_report.SUMMARY_FILE)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise CLIError(
                f"cannot re-render the report of {str(out)!r}: {exc}"
            ) from None
        info = summary.get("data") if isinstance(summary.get("data"), dict) else {}
        n_rows = info.get("n_samples")
        if n_rows is not None and n_rows != len(scores["id"]):
            raise CLIError(
                f"{_report.SCORES_FILE} of {str(out)!r} has {len(scores['id'])} rows "
                f"but the run has {n_rows} samples; rerun the study to write it again."
            )
        X, shape = _reload_data(info, len(scores["id"]))
        files = _report.render_files(
            summary, scores, X=X, image_shape=shape, n_top=args.top
        )
        files[_report.SCORES_FILE] = scores_csv
        files[_report.SUMMARY_FILE] = summary_json
        folder.publish(files)
    path = out / _report.REPORT_FILE
    print(f"report: {path}")
    return 0


def _reload_data(info, n_rows):
    """The run's data for the image grid, or (None, None) with a warning."""
    src = info.get("source") if isinstance(info.get("source"), dict) else {}
    try:
        data = load_data(
            src.get("path"),
            key=src.get("key"),
            id_column=src.get("id_column"),
            dropna=bool(src.get("dropna", False)),
            image_shape=src.get("image_shape"),
            header=src.get("header", "auto"),
        )
    except (CLIError, TypeError, ValueError) as exc:
        logger.warning("cannot reload the data (%s): no image grid in the report", exc)
        return None, None
    if (
        data_fingerprint(data.X, data.ids) != info.get("sha256")
        or len(data.X) != n_rows
    ):
        logger.warning(
            "the data at %s changed since the run: no image grid in the report",
            src.get("path") or "digits",
        )
        return None, None
    return data.X, data.image_shape


# ---------------------------------------------------------------------------
# argument parsing
# ---------------------------------------------------------------------------


def _hidden_dims(text):
    try:
        dims = tuple(int(h) for h in text.split(","))
    except ValueError:
        dims = ()
    if not dims or any(h < 1 for h in dims):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected positive integers separated by commas, e.g. 256,128"
        )
    return dims


def build_parser():
    """The argument parser of ``sklearn-mem``.

    Returns
    -------
    parser : argparse.ArgumentParser

    Examples
    --------
    >>> from sklearn_mem.cli import build_parser
    >>> args = build_parser().parse_args(["run", "--model", "gmm", "--folds", "5"])
    >>> args.model, args.folds
    ('gmm', 5)
    """
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="sklearn-mem",
        formatter_class=fmt,
        description=(
            "Measure how much a density estimator memorizes each training sample:\n"
            "M_i = log P(x_i | D) - log P(x_i | D without x_i), in nats, estimated\n"
            "by K-fold cross-validation (van den Burg & Williams, NeurIPS 2021)."
        ),
        epilog=(
            "examples:\n"
            "  sklearn-mem run                      the paper's study on digits\n"
            "  sklearn-mem run --model gmm --components 20 --folds 10\n"
            "  sklearn-mem run --data X.npy --model kde --bandwidth 0.3 --out kde1\n"
            "  sklearn-mem run --data table.csv --id-column name --dropna\n"
            "  sklearn-mem report kde1              re-render a finished run's report\n"
            "\nsklearn-mem with no command runs the default study."
        ),
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        formatter_class=fmt,
        help="run a memorization study and write its report",
        description=(
            "Run a memorization study: fit the model on every cross-validation\n"
            "split, score every sample, and write scores.csv, summary.json,\n"
            "figures and report.html into the output folder. Each fit is cached\n"
            "in OUT/cache: rerunning the same command after an interruption\n"
            "computes only the missing fits, and rerunning with another\n"
            "--aggregate refits nothing. Without options: scikit-learn's digits\n"
            "with a VAE when torch is installed, else a GaussianMixture."
        ),
    )
    g = run.add_argument_group("data")
    g.add_argument(
        "--data",
        metavar="FILE",
        help="a .npy file (one numeric array), a .npz file (one array, or --key) "
        "or a .csv file (numeric columns, optional header); default: "
        "scikit-learn's digits scaled to [0, 1]. Arrays of images (n, H, W) are "
        "flattened. Files are never unpickled.",
    )
    g.add_argument("--key", help="the array to use from a .npz file holding several")
    g.add_argument(
        "--id-column",
        metavar="NAME",
        help="a .csv column of sample identifiers, kept in scores.csv and not "
        "used as a feature (default: ids are row numbers, from 0)",
    )
    g.add_argument(
        "--header",
        choices=["auto", "yes", "no"],
        default="auto",
        help="whether the first line of a .csv file is a header: auto decides "
        "from its cells and refuses a line that could be either (auto)",
    )
    g.add_argument(
        "--dropna",
        action="store_true",
        help="drop rows with NaN or infinite values (default: refuse them and "
        "name them)",
    )
    g.add_argument(
        "--image-shape",
        metavar="HxW",
        help="shape of one sample as an image (e.g. 28x28 or 32x32x3), for the "
        "report's image grid and the convolutional VAE; inferred for digits and "
        "(n, H, W) arrays",
    )

    g = run.add_argument_group("model")
    g.add_argument(
        "--model",
        choices=tuple(MODEL_OPTIONS),
        help="kde: KernelDensity (closed form, no refits); gmm: GaussianMixture; "
        "vae: variational auto-encoder; flow: RealNVP normalizing flow (vae and "
        "flow need the torch extra). Default: vae with torch, else gmm",
    )
    g.add_argument(
        "--bandwidth", type=float, metavar="X", help="kde: kernel bandwidth (0.5)"
    )
    g.add_argument(
        "--kernel",
        choices=[
            "gaussian",
            "tophat",
            "epanechnikov",
            "exponential",
            "linear",
            "cosine",
        ],
        help="kde: kernel (gaussian)",
    )
    g.add_argument(
        "--components", type=int, metavar="N", help="gmm: mixture components (10)"
    )
    g.add_argument(
        "--covariance-type",
        choices=["full", "tied", "diag", "spherical"],
        help="gmm: covariance type (full)",
    )
    g.add_argument(
        "--reg-covar",
        type=float,
        metavar="X",
        help="gmm: added to the covariance diagonals (1e-2, suited to data in "
        "[0, 1] with constant pixels; scikit-learn's default is 1e-6)",
    )
    g.add_argument("--max-iter", type=int, metavar="N", help="gmm: EM iterations (100)")
    g.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help="vae, flow: training epochs (vae 200, flow 50)",
    )
    g.add_argument(
        "--latent-dim", type=int, metavar="N", help="vae: size of the latent code (8)"
    )
    g.add_argument(
        "--hidden-dims",
        type=_hidden_dims,
        metavar="H1,H2",
        help="vae, flow: hidden layer sizes (vae 256,128; flow 64,64)",
    )
    g.add_argument(
        "--likelihood",
        choices=["auto", "bernoulli", "gaussian", "gaussian_scalar"],
        help="vae: observation model; auto is bernoulli for data in [0, 1], "
        "else gaussian (auto)",
    )
    g.add_argument(
        "--importance-samples",
        type=int,
        metavar="N",
        help="vae: importance samples per row for the log-likelihood estimate "
        "(256, the paper's choice on MNIST)",
    )
    g.add_argument(
        "--score-precision",
        choices=["float32", "bfloat16"],
        help="vae: precision of the scoring matrix products; bfloat16 is faster "
        "on CPUs with AMX/AVX512-BF16 and on GPUs, off by a few thousandths "
        "of a nat (float32)",
    )
    g.add_argument(
        "--architecture",
        choices=["mlp", "conv"],
        help="vae: MLP or convolutional encoder/decoder (mlp; conv needs images)",
    )
    g.add_argument("--layers", type=int, metavar="N", help="flow: coupling layers (6)")
    g.add_argument(
        "--batch-size", type=int, metavar="N", help="vae, flow: batch size (128)"
    )
    g.add_argument(
        "--lr", type=float, metavar="X", help="vae, flow: Adam learning rate (1e-3)"
    )

    g = run.add_argument_group("study")
    g.add_argument(
        "--folds",
        type=int,
        metavar="N",
        default=10,
        help="K of K-fold cross-validation (10)",
    )
    g.add_argument(
        "--repeats",
        type=int,
        metavar="N",
        default=1,
        help="L repeats of the K folds (RepeatedKFold when > 1; gives a "
        "standard error per sample; the paper uses 10) (1)",
    )
    g.add_argument(
        "--aggregate",
        choices=["logmeanexp", "mean"],
        default="logmeanexp",
        help="how the fits' log-likelihoods are combined: log of the mean "
        "probability (the paper) or mean log-likelihood; changing it on a "
        "finished run refits nothing (logmeanexp)",
    )
    g.add_argument(
        "--rho",
        action="store_true",
        help="also compute the paper's nearest-neighbour ratio rho (one extra "
        "fit on the first split; defined for that split's training rows only; "
        "needs a model that can sample)",
    )
    g.add_argument(
        "--seed",
        type=int,
        metavar="N",
        default=0,
        help="random seed of splits and fits (0)",
    )
    g.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        default=-1,
        help="fits run in parallel; -1 uses all cores; scores do not depend on it (-1)",
    )

    g = run.add_argument_group("output")
    g.add_argument(
        "--out",
        metavar="DIR",
        help="run folder (default: ./sklearn-mem-<data>-<model>); a folder "
        "holding the same run is resumed",
    )
    g.add_argument(
        "--overwrite",
        "--force",
        action="store_true",
        help="replace a different run (other data or settings) in the output "
        "folder instead of refusing",
    )
    g.add_argument(
        "--top",
        type=int,
        metavar="N",
        default=20,
        help="most memorized samples listed (20)",
    )
    g.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no progress bar or log messages; only the final summary and errors",
    )
    g.add_argument(
        "--debug",
        action="store_true",
        help=f"show the traceback of an error (also with {DEBUG_ENV}=1)",
    )

    rep = sub.add_parser(
        "report",
        help="re-render the report of a finished run (no refitting)",
        description=(
            "Re-render the figures and report.html of a finished run from its "
            "scores.csv and summary.json (the data are reloaded for the image "
            "grid). Nothing is refitted."
        ),
    )
    rep.add_argument("dir", metavar="DIR", help="the run folder")
    rep.add_argument(
        "--top",
        type=int,
        metavar="N",
        default=20,
        help="most memorized samples listed (20)",
    )
    rep.add_argument("--quiet", "-q", action="store_true", help="no log messages")
    rep.add_argument(
        "--debug",
        action="store_true",
        help=f"show the traceback of an error (also with {DEBUG_ENV}=1)",
    )
    return parser


def _message(exc):
    """The text of an error for the user, with the notes attached to it."""
    if isinstance(exc, CLIError):
        return str(exc)
    if isinstance(exc, ImportError):
        return (
            f"{exc}. Install the command's dependencies with: "
            'pip install -e ".[cli]" in a clone of sklearn_mem'
        )
    if isinstance(exc, OSError) and exc.errno is not None:
        text = f"{exc.strerror} ({exc.filename})" if exc.filename else exc.strerror
        if exc.errno == getattr(os, "ENOSPC", None):
            text += (
                "; free some space and rerun the same command (finished fits are "
                "cached)"
            )
    elif isinstance(exc, MemoryError):
        text = "out of memory; use fewer --jobs or a smaller data file"
    else:
        text = str(exc) or type(exc).__name__
        if not isinstance(exc, ValueError):
            text = f"{type(exc).__name__}: {text}"
    notes = [str(n) for n in getattr(exc, "__notes__", ())]
    return " ".join([text, *notes])


def main(argv=None):
    """Entry point of the ``sklearn-mem`` command.

    Parameters
    ----------
    argv : list of str or None, default=None
        Arguments (default: ``sys.argv[1:]``). No command runs the default
        study (``run``).

    Returns
    -------
    status : int
        0 on success; 2 for any failure (bad input, a fit that fails, a
        full disk: a message on stderr, no traceback unless ``--debug`` or
        ``SKLEARN_MEM_DEBUG=1``); 130 when interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (
        argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")
    ):
        argv = ["run", *argv]
    parser = build_parser()
    args = parser.parse_args(argv)

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("sklearn-mem: %(message)s"))
    previous = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if args.quiet else logging.INFO)
    logger.propagate = False
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        pass
    debug = args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        if args.command == "report":
            return _report_command(args)
        return _run(args, argv[1:])
    except KeyboardInterrupt:
        print(
            "sklearn-mem: interrupted; rerun the same command to resume (finished "
            "fits are cached in the run folder).",
            file=sys.stderr,
        )
        return 130
    except Exception as exc:  # noqa: BLE001 - every failure is a message
        if debug:
            traceback.print_exc()
        print(f"sklearn-mem: error: {_message(exc)}", file=sys.stderr)
        if not debug and not isinstance(exc, CLIError):
            print(
                f"sklearn-mem: (rerun with --debug, or {DEBUG_ENV}=1, for the "
                "traceback)",
                file=sys.stderr,
            )
        return 2
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous[0])
        logger.propagate = previous[1]


if __name__ == "__main__":
    sys.exit(main())
