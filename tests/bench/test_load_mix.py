"""The load benchmark's pure parts: percentiles, the latency summary, errors by kind,
the query mix and the /metrics step sums (bench/load_mix.py, bench/load_clients.py)."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.api_load import by_tenant, redacted
from bench.load_clients import Sample, parse_step_seconds, run_groups, step_means_ms
from bench.load_mix import (
    Documented,
    LoadQuery,
    TenantCorpus,
    build_mix,
    errors_by_kind,
    latency_summary,
    percentile,
)


@pytest.mark.parametrize(
    ("values", "pct", "expected"),
    [
        ([5.0], 50, 5.0),
        ([5.0], 99, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
        ([4.0, 3.0, 2.0, 1.0], 50, 2.0),  # order does not matter
        ([1.0, 2.0, 3.0, 4.0], 75, 3.0),
        ([1.0, 2.0, 3.0, 4.0], 76, 4.0),
        ([1.0, 2.0, 3.0, 4.0], 100, 4.0),
        ([float(n) for n in range(1, 101)], 95, 95.0),
        ([float(n) for n in range(1, 101)], 99, 99.0),
        ([float(n) for n in range(1, 1001)], 99, 990.0),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], pct: float, expected: float) -> None:
    assert percentile(values, pct) == expected


@pytest.mark.parametrize(("values", "pct"), [([], 50), ([1.0], 0), ([1.0], 101)])
def test_percentile_refuses_no_values_and_out_of_range(values: list[float], pct: float) -> None:
    with pytest.raises(ValueError, match=r"percentile|pct"):
        percentile(values, pct)


def test_latency_summary_in_milliseconds() -> None:
    summary = latency_summary([0.010] * 94 + [0.050] * 5 + [0.200])
    assert summary == {
        "count": 100,
        "p50_ms": 10.0,
        "p95_ms": 50.0,
        "p99_ms": 50.0,
        "max_ms": 200.0,
        "mean_ms": 13.9,
    }


def test_latency_summary_of_nothing_has_no_percentiles() -> None:
    assert latency_summary([])["p95_ms"] is None


def test_errors_by_kind_leaves_ok_out() -> None:
    outcomes = ["ok", "http_503", "ok", "timeout", "http_503"]
    assert errors_by_kind(outcomes) == {"http_503": 2, "timeout": 1}
    assert errors_by_kind(["ok"]) == {}


def _corpus(tenant: str, repo: str, functions: int = 3) -> TenantCorpus:
    return TenantCorpus(
        tenant,
        repo,
        tuple(
            Documented(f"Return thing {n} of the {repo} session.", f"src/{repo}/m{n}.py", f"f{n}")
            for n in range(functions)
        ),
    )


def test_mix_takes_tenants_in_turn_and_draws_from_their_own_corpus() -> None:
    corpora = [_corpus("a", "alpha"), _corpus("b", "beta"), _corpus("c", "gamma")]
    mix = build_mix(corpora, 300, seed=1)
    assert [q.tenant for q in mix[:6]] == ["a", "b", "c", "a", "b", "c"]
    assert Counter(q.tenant for q in mix) == {"a": 100, "b": 100, "c": 100}
    for query in mix:
        params = dict(query.params)
        repo = {"a": "alpha", "b": "beta", "c": "gamma"}[query.tenant]
        assert params.get("repo", repo) == repo  # never another tenant's repository
        assert params["k"] == "10"
        if "path" in params:
            assert params["path"] == f"src/{repo}"
            assert params["lang"] == "python"


def test_mix_kinds_follow_the_weights_and_carry_their_query() -> None:
    corpus = _corpus("a", "alpha")
    names = {f.name for f in corpus.functions}
    texts = {f.text for f in corpus.functions}
    mix = build_mix([corpus], 4000, seed=3)
    kinds = Counter(q.kind for q in mix)
    assert 1800 < kinds["natural"] < 2200
    assert 800 < kinds["identifier"] < 1200
    assert 800 < kinds["filtered"] < 1200
    for query in mix:
        params = dict(query.params)
        if query.kind == "natural":
            assert params["q"] in texts and params.keys() <= {"q", "repo", "k"}
        elif query.kind == "identifier":
            assert params["q"] in names and params.keys() <= {"q", "repo", "k"}
        else:
            assert params["q"] in texts | names
            assert "path" in params or params.get("kind") == "function,method"
    named = sum("repo" in dict(q.params) for q in mix)
    assert 1800 < named < 2200  # about half name the repository


def test_mix_is_seeded() -> None:
    corpora = [_corpus("a", "alpha"), _corpus("b", "beta")]
    assert build_mix(corpora, 50, seed=9) == build_mix(corpora, 50, seed=9)
    assert build_mix(corpora, 50, seed=9) != build_mix(corpora, 50, seed=10)


def test_a_function_at_the_root_gets_no_path_filter() -> None:
    corpus = TenantCorpus("a", "alpha", (Documented("Do the thing now.", "top.py", "thing"),))
    for query in build_mix([corpus], 200, seed=0):
        assert "path" not in dict(query.params)


@pytest.mark.parametrize(
    ("corpora", "weights", "message"),
    [
        ([TenantCorpus("a", "alpha", ())], None, "tenant 'a': no documented function"),
        ([], None, "at least one tenant"),
        ([_corpus("a", "alpha")], {"natural": 0.0}, "at least one kind"),
        ([_corpus("a", "alpha")], {"fuzzy": 1.0}, "unknown kind 'fuzzy'"),
    ],
)
def test_mix_refuses_what_it_cannot_build(
    corpora: list[TenantCorpus], weights: dict[str, float] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        if weights is None:
            build_mix(corpora, 10, seed=0)
        else:
            build_mix(corpora, 10, seed=0, weights=weights)


def test_step_means_between_two_scrapes() -> None:
    before = {"embed": (1.0, 100.0), "total": (5.0, 100.0)}
    after = {"embed": (1.5, 200.0), "total": (9.0, 200.0), "vector": (0.2, 10.0)}
    assert step_means_ms(before, after) == {
        "embed": {"count": 100.0, "mean_ms": 5.0},
        "total": {"count": 100.0, "mean_ms": 40.0},
        "vector": {"count": 10.0, "mean_ms": 20.0},
    }


def test_step_seconds_read_from_a_metrics_page() -> None:
    page = "\n".join(
        [
            "# HELP quarry_search_seconds Time of one search step",
            'quarry_search_seconds_bucket{le="0.01",step="embed"} 3.0',
            'quarry_search_seconds_count{step="embed"} 4.0',
            'quarry_search_seconds_sum{step="embed"} 0.042',
            'quarry_search_seconds_count{step="total"} 4.0',
            'quarry_search_seconds_sum{step="total"} 1.5e-01',
            'quarry_searches_total{mode="hybrid",outcome="ok"} 4.0',
        ]
    )
    assert parse_step_seconds(page) == {"embed": (0.042, 4.0), "total": (0.15, 4.0)}


def test_recorded_command_line_keeps_no_token() -> None:
    argv = ["--api", "http://h:1", "--token", "qk_secret1", "--token=qk_secret2", "--seed", "3"]
    assert redacted(argv) == ["--api", "http://h:1", "--token", "***", "--token=***", "--seed", "3"]


def test_by_tenant_keeps_each_tenants_latency_and_errors_apart() -> None:
    samples = [
        Sample("natural", "load-a", 0.0, 0.010, "ok"),
        Sample("natural", "load-a", 0.1, 0.030, "ok"),
        Sample("natural", "load-a", 0.2, 0.001, "http_429"),
        Sample("identifier", "load-b", 0.0, 0.020, "ok"),
    ]
    found = by_tenant(samples, elapsed_s=2.0)
    assert found["load-a"]["latency"]["count"] == 2
    assert found["load-a"]["latency"]["max_ms"] == 30.0  # the refused one is not a latency
    assert found["load-a"]["errors"] == {"http_429": 1}
    assert found["load-a"]["throughput_rps"] == 1.0
    assert found["load-b"] == {
        "latency": latency_summary([0.020]),
        "throughput_rps": 0.5,
        "errors": {},
    }


def test_run_groups_refuses_an_empty_group_naming_it() -> None:
    mix = [LoadQuery("load-a", "natural", (("q", "x"),))]
    with pytest.raises(ValueError, match="at least 1"):
        run_groups(
            "http://127.0.0.1:9", {"load-a": "t"}, [(mix, 1), (mix, 0)], duration_s=1, timeout_s=1
        )
