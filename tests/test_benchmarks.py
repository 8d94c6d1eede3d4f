"""`python -m benchmarks` and the journal benchmark still run end to end (tiny sizes); no timing is
asserted, only the keys."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEYS = {
    "matcher_ratio_10k_to_10",
    "proxy_allowed_ratio_vs_mitmproxy",
    "proxy_allowed_rps",
    "mitmproxy_allowed_rps",
    "direct_rps",
    "blocked_p99_ms",
    "blocked_api_p99_ms",
    "pac_non_target_proxied",
    "passthrough_tls_untouched",
    "passthrough_connect_overhead_p50_ms",
    "watcher_stop_p95_ms",
    "watcher_idle_cpu_percent",
    "reload_p95_ms",
    "rss_mb",
    "rss_mb_after_start",
    "startup_s",
    "journal_ingest_per_second",
    "journal_stats_seconds",
    "policy_evaluate_ms_1000_wednesday_windows",
    "traffic_rps_ratio_min",
    "traffic_p50_ratio_max",
    "feed_rewrite_rps_ratio_min",
    "feed_rewrite_cpu_ratio_min",
    "blocked_vs_addon_https_rps_ratio",
    "blocked_vs_addon_h2_p99_ratio",
    "blocked_lookup_p99_ms",
    "blocked_lookup_loaded_p99_ms",
    "rss_mixed_mb",
    "mitmproxy_rss_mixed_mb",
    "rss_mixed_ratio",
    "rules_check_s_max",
    "daemon_start_s_max",
    "mitmdump_start_s",
    "daemon_start_over_mitmdump_s_max",
    "rules_load_per_person_ratio",
    "prefilter_ms_json2m",
    "decode_walk_ms_json2m",
    "whole_ms_mention200k",
    "around_ms_mention200k",
    "inputs",
    "machine",
}


@pytest.mark.e2e
def test_benchmarks_quick_run_reports_every_figure() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert set(out) >= KEYS, KEYS - set(out)
    # what the measurements confirm, not how fast: non-targets stay out, TLS passes untouched
    assert out["pac_non_target_proxied"] == 0 and out["passthrough_tls_untouched"] is True
    assert {
        "proxy_allowed",
        "proxy_blocked",
        "non_target",
        "reload",
        "matcher",
        "watcher",
        "journal",
        "traffic",
        "rules_scale",
        "prefilter",
    } <= set(out["inputs"])
    # every realistic body, over every protocol, side by side with plain mitmproxy
    # a feed without her and with; bodies compressed as platforms send them
    cases = ("json2m", "html500k", "blocked", "json200k", "feed_theirs200k", "json2m_gzip", "json200k_br")
    assert {f"{p}_{c}" for p in ("http", "https", "h2") for c in cases} <= set(out["traffic"])
    rounds = out["inputs"]["traffic"]["rounds"]
    for cell in out["traffic"].values():  # each round's own ratios, to show the spread the medians hide
        assert len(cell["rps_ratio_per_round"]) == len(cell["p50_ratio_per_round"]) == rounds


def test_benchmark_runs_on_a_small_journal(tmp_path: Path) -> None:
    # run as its own process from the repository (the test process never imports from the root)
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.journal", "--attempts", "300", "--keep", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["attempts"] == 300
    assert {"ingest_per_second", "stats_seconds", "log_limit_50_seconds"} <= set(result)
