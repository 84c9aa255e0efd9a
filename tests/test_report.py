"""Tests for the report page: what it explains to a reader, the rows after a
resume, the note on far outliers, and that every file value stays text."""

import html
import re

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("jinja2")

from sklearn_mem import report  # noqa: E402


def _scores(M, ids=None):
    M = np.asarray(M, dtype=np.float64)
    n = M.size
    return {
        "id": [str(i) for i in range(n)] if ids is None else list(ids),
        "memorization": M,
        "in_loglik": -5.0 + 0 * M,
        "out_loglik": -5.0 - M,
        "n_in": np.full(n, 4),
        "n_out": np.ones(n, dtype=int),
    }


def _summary(**changes):
    """A summary as ``sklearn-mem run`` writes it (the parts the page reads)."""
    summary = {
        "data": {"name": "data", "description": "data.csv", "n_samples": 60},
        "settings": {
            "model": "kde",
            "estimator": "KernelDensity(bandwidth=0.5)",
            "cv": "KFold(n_splits=5, random_state=209652396, shuffle=True)",
            "seed": 0,
            "aggregate": "logmeanexp",
        },
        "seeds": None,
        "n_fits": 5,
        "fits": {
            "method": "exact (closed-form kernel sums)",
            "computed": 5,
            "from_cache": 0,
        },
        "timings": {"fit_s": 0.1, "cached_fit_s": 0.0},
        "scores": {"n_samples": 60, "n_finite": 60, "quantiles": {}},
    }
    for key, value in changes.items():
        summary[key] = value
    return summary


def _page(summary, scores, **kwargs):
    page = report.render_files(summary, scores, **kwargs)["report.html"]
    return page.decode("utf-8")


def _text(page):
    """The page's visible text, tags removed and whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _planted(n=60, outlier=327.0, at=17, seed=0):
    M = np.random.RandomState(seed).exponential(size=n)
    M[at] = outlier
    return M


@pytest.fixture(scope="module")
def outlier_page():
    M = _planted()
    summary = _summary(scores=report.summarize_scores(M, [str(i) for i in range(60)]))
    return _page(summary, _scores(M))


# ---------------------------------------------------------------------------
# what the page explains
# ---------------------------------------------------------------------------


def test_page_explains_seeds_aggregate_and_counts(outlier_page):
    text = _text(outlier_page)
    # the run's seed and the splitter's random_state, told apart
    assert "KFold(n_splits=5, random_state=209652396, shuffle=True)" in text
    assert "the run's --seed" in text
    assert "random_state=209652396 shown in the splits is not another setting" in text
    assert "drawn from this seed" in text
    # what logmeanexp means
    assert "logmeanexp U and V are the log of the mean likelihood" in text
    assert "log-mean-exp" in text
    # what n_in / n_out are, next to the table that shows them
    assert "n_in and n_out: how many fits of each kind scored it" in text
    assert "logmeanexp: how a sample's fits are combined" in text


def test_page_explains_what_size_of_m_matters(outlier_page):
    text = _text(outlier_page)
    assert "exp(M) is a likelihood ratio" in text
    assert "2.3 nats is 10 times" in text
    assert "The paper's summary: the 0.95 quantile" in text
    assert "5% of the samples score higher" in text
    assert "differentially private bounds |M| by ε" in text
    # the most memorized sample, with its ratio readable at any size
    assert "(id 17, M = 327.000 nats) is 10^142 times as probable" in text


def test_quantiles_table_has_headers_ratio_and_marks_the_papers_row():
    M = np.linspace(0.0, 3.0, 31)
    summary = _summary(scores=report.summarize_scores(M, list(range(31))))
    page = _page(summary, _scores(M))
    assert "<tr><th>quantile</th><th>M (nats)</th>" in page
    assert "exp(M)</th>" in page
    assert page.count('class="paper"') == 1
    row = re.search(r'<tr class="paper">(.*?)</tr>', page).group(1)
    assert "<th>0.95</th>" in row and "2.850" in row and "17.3x" in row
    # another marked quantile moves the highlight and the sentence
    page = _page(summary, _scores(M), quantile=0.99)
    row = re.search(r'<tr class="paper">(.*?)</tr>', page).group(1)
    assert "<th>0.99</th>" in row
    assert "1% of the samples score higher" in _text(page)


@pytest.mark.parametrize(
    "m, unit, expected",
    [
        (0.0, "x", "1x"),
        (np.log(10), "x", "10x"),
        (-np.log(2), "x", "0.5x"),
        (243.5, " times", "10^106 times"),
        (float("inf"), "x", "infx"),
        ("inf", "x", "n/a"),
        (None, "x", "n/a"),
        (float("nan"), "x", "n/a"),
    ],
)
def test_ratio_text(m, unit, expected):
    assert report._ratio_text(m, unit=unit) == expected


def test_seed_given_to_the_splitter_and_per_fit_seeds():
    settings = {
        "seed": 7,
        "cv": "RepeatedKFold(n_repeats=2, n_splits=3, random_state=7)",
        "aggregate": "mean",
    }
    summary = _summary(settings=settings, seeds=[11, 12, 13])
    text = _text(_page(summary, _scores(np.arange(10.0))))
    assert "given to the splitter as its random_state" in text
    assert "not another setting" not in text
    assert "each fit's own seed, drawn from it, is in summary.json (seeds)" in text
    assert "mean U and V are the mean log-likelihood over the fits" in text


# ---------------------------------------------------------------------------
# fitting times after a resume
# ---------------------------------------------------------------------------


def _rows(page):
    """Settings rows as {header: cell text}."""
    found = re.findall(
        r'<tr><th class="l">(.*?)</th><td class="l">(.*?)</td></tr>', page, flags=re.S
    )
    return {k: _text(v) for k, v in found}


def test_fresh_run_times_and_counts_in_one_row():
    rows = _rows(_page(_summary(), _scores(np.arange(10.0))))
    assert rows["fits"] == "5 method: exact (closed-form kernel sums)"
    assert rows["fitting time, this run"] == (
        "0.1 s (wall clock) for 5 fits, all computed in this run"
    )
    assert "fitting time of the cached fits, when computed" not in rows
    assert "fits computed / from cache" not in rows


def test_resumed_run_times_and_counts_consistent():
    summary = _summary(
        n_fits=5,
        fits={"method": "refit", "computed": 2, "from_cache": 3},
        timings={"fit_s": 4.0, "cached_fit_s": 12.34},
    )
    rows = _rows(_page(summary, _scores(np.arange(10.0))))
    assert rows["fitting time, this run"] == (
        "4.0 s (wall clock) for 2 fits computed in this run and 3 fits read "
        "from the cache"
    )
    assert rows["fitting time of the cached fits, when computed"] == (
        "12.3 s for the 3 fits read from the cache (sum over fits, computed in an "
        "earlier run)"
    )
    # one fit from the cache, singular
    summary["fits"] = {"computed": 4, "from_cache": 1}
    rows = _rows(_page(summary, _scores(np.arange(10.0))))
    assert (
        "4 fits computed in this run and 1 fit read" in rows["fitting time, this run"]
    )
    assert rows["fitting time of the cached fits, when computed"].startswith(
        "12.3 s for the 1 fit read from the cache"
    )


def test_summary_without_timings_or_fits_still_renders():
    page = _page({}, _scores(np.arange(10.0)))
    rows = _rows(page)
    assert rows["fits"] == "?"
    assert rows["seed"] == "?"  # no seed, no note about it
    assert "fitting time, this run" not in rows
    summary = {"fits": {"computed": 3, "from_cache": 2}}
    assert (
        _rows(_page(summary, _scores(np.arange(10.0))))["fits computed / from cache"]
        == "3 / 2"
    )


# ---------------------------------------------------------------------------
# far outliers
# ---------------------------------------------------------------------------


def test_outlier_is_named_and_the_figures_explained(outlier_page):
    text = _text(outlier_page)
    M = _planted()
    bulk = np.delete(M, 17)
    assert (
        "1 score lies far from the others (id 17: 327.000 nats). The figures "
        "keep their axes on the other 59 scores "
        f"({bulk.min():.3f} to {bulk.max():.3f} nats)"
    ) in text
    assert (
        "draw the far ones as arrowheads on the edge, counted in the legend; "
        "scores.csv has every value."
    ) in text


def test_no_outlier_note_for_a_long_tail():
    M = np.random.RandomState(1).exponential(size=300)
    text = _text(_page(_summary(), _scores(M)))
    assert "far from the others" not in text


def test_many_outliers_are_named_five_at_most():
    M = np.random.RandomState(0).exponential(size=200)
    M[:7] = 1000.0 + np.arange(7)
    text = _text(_page(_summary(), _scores(M)))
    assert "7 scores lie far from the others (id 6: 1006.000 nats" in text
    assert "id 2: 1002.000 nats and 2 more)" in text


def test_outlier_figures_keep_the_bulk_readable():
    """The report's figures use the Displays' robust limits."""
    import matplotlib.pyplot as plt

    from sklearn_mem.plotting import MemorizationHistogramDisplay

    M = _planted()
    png, q = report._histogram(M, 0.95)
    assert png.startswith(b"\x89PNG") and q == pytest.approx(np.quantile(M, 0.95))
    disp = MemorizationHistogramDisplay.from_predictions(M)
    assert disp.n_above_ == 1 and disp.limits_[1] < 10
    plt.close("all")


# ---------------------------------------------------------------------------
# file data is text, never markup
# ---------------------------------------------------------------------------


def test_every_file_value_is_escaped():
    evil = "<script>alert(1)</script>"
    summary = _summary(
        settings={
            "seed": evil,
            "cv": f"KFold(random_state={evil})",
            "aggregate": evil,
            "estimator": evil,
            "model": evil,
        },
        fits={"method": evil, "computed": 1, "from_cache": 1},
        timings={"fit_s": evil, "cached_fit_s": evil},
        n_fits=evil,
        seeds=[evil],
        versions={evil: evil},
        data={"name": evil, "description": evil},
        scores={"quantiles": {evil: evil, "0.95": evil}, "n_finite": evil},
    )
    M = _planted(n=30, at=3)
    ids = [f"<b>{i}</b>" for i in range(30)]
    page = _page(summary, _scores(M, ids=ids))
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;" in page
    assert "&lt;b&gt;3&lt;/b&gt;: 327.000 nats" in page  # the outlier note
