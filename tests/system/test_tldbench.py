"""tldbench (tests/bench/tldbench), the load generator, run briefly against tldnode serving the
sample zone: fixed-rate UDP, dnsperf's summary lines, JSON, TCP, NSID, usage errors."""

import json
import re

import pytest

from conftest import SAMPLE_ZONE, binary, check, describe, ipv6_loopback, run

DNSPERF_LABELS = [
    "Statistics:",
    "  Queries sent:",
    "  Queries completed:",
    "  Queries lost:",
    "  Response codes:",
    "  Average packet size:",
    "  Run time (s):",
    "  Queries per second:",
    "  Average Latency (s):",
    "  Latency StdDev (s):",
]


@pytest.fixture(scope="module")
def tldbench():
    return binary("tldbench")


def figure(out, label):
    """The first number after `label` on its line of the summary."""
    m = re.search(r"^" + re.escape(label) + r"\s+([0-9.]+)", out, re.M)
    assert m, f"no {label!r} line in:\n{out}"
    return float(m.group(1))


def bench(tldbench, node, *args, host="127.0.0.1", rc=0):
    proc = run(tldbench, "-s", host, "-p", node.port, "--quiet", *args, timeout=60)
    return check(proc, rc)


def test_fixed_rate_zone_mix(tldbench, sample_node, tmp_path):
    """2000 q/s for 2 s with the mix derived from the zone: ~4000 answered, none lost,
    dnsperf's lines and tldbench's own present, the JSON agrees."""
    out_json = tmp_path / "bench.json"
    out = bench(tldbench, sample_node, "--zone", SAMPLE_ZONE, "--origin", "sample",
                "-l", "2", "-Q", "2000", "--json", out_json).stdout
    for label in DNSPERF_LABELS + ["Latency percentiles (s):", "  p50:", "  p90:", "  p99:",
                                   "  p99.9:", "Rcode mix:"]:
        assert "\n" + label in out, f"{label!r} missing:\n{out}"
    sent = figure(out, "  Queries sent:")
    completed = figure(out, "  Queries completed:")
    assert 3960 <= sent <= 4040, out
    assert completed == sent, out
    assert figure(out, "  Queries lost:") == 0, out
    assert 1.9 < figure(out, "  Run time (s):") < 2.5, out
    # The sample zone answers referrals (NOERROR) and random names (NXDOMAIN).
    assert re.search(r"Response codes:.*NOERROR \d+", out) and "NXDOMAIN" in out, out

    data = json.loads(out_json.read_text())
    assert data["queries_sent"] == sent
    assert data["queries_completed"] == completed
    assert data["queries_lost"] == 0
    assert data["mode"] == "udp"
    assert sum(data["rcodes"].values()) == completed
    assert set(data["rcodes"]) <= {"NOERROR", "NXDOMAIN"}
    lat = data["latency_s"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99_9"] <= lat["max"]
    assert sum(b[2] for b in data["latency_histogram_ns"]) == completed
    # --do-share 0.3 (the default): about 30% of the generated queries ask for DNSSEC.
    assert 0.25 < data["queries_with_do"] / data["queries_loaded"] < 0.35


def test_datafile_through_input(tldbench, sample_node, tmp_path):
    """dnsperf's data file format; without -l, one run through the input."""
    qfile = tmp_path / "q.txt"
    qfile.write_text("; comment\nsample. SOA\nsample. NS\n\nnosuchname.sample. A\n"
                     "www.bainfo.sample. A\nbainfo.sample. DS\n")
    out = bench(tldbench, sample_node, "-d", qfile, "-n", "3", "-D").stdout
    assert figure(out, "  Queries sent:") == 15, out
    assert figure(out, "  Queries completed:") == 15, out
    assert re.search(r"Response codes:\s+NOERROR 12 \(80.00%\), NXDOMAIN 3 \(20.00%\)", out), out


def test_tcp(tldbench, sample_node, tmp_path):
    out_json = tmp_path / "tcp.json"
    out = bench(tldbench, sample_node, "-m", "tcp", "-c", "4", "--zone", SAMPLE_ZONE,
                "-l", "1", "-Q", "1000", "--json", out_json).stdout
    sent = figure(out, "  Queries sent:")
    assert 980 <= sent <= 1020, out
    assert figure(out, "  Queries completed:") == sent, out
    assert figure(out, "  Queries lost:") == 0, out
    assert re.search(r"TCP connections:\s+4 ", out), out
    data = json.loads(out_json.read_text())
    assert data["mode"] == "tcp" and data["queries_completed"] == sent


def test_tcp_closed_loop(tldbench, sample_node):
    out = bench(tldbench, sample_node, "-m", "tcp", "-c", "2", "-q", "50", "--zone", SAMPLE_ZONE,
                "--nqueries", "3000").stdout
    assert figure(out, "  Queries sent:") == 3000, out
    assert figure(out, "  Queries completed:") == 3000, out


def test_nsid(tldbench, sample_node, tmp_path):
    """--nsid: every answer carries the node's identity, and the table says so."""
    out_json = tmp_path / "nsid.json"
    out = bench(tldbench, sample_node, "--nsid", "--zone", SAMPLE_ZONE, "-l", "1", "-Q", "500",
                "--json", out_json).stdout
    completed = figure(out, "  Queries completed:")
    assert completed > 0
    assert re.search(r"^Responders \(NSID\):\n  tldnode-test\s+%d \(100.00%%\)" % completed,
                     out, re.M), out
    assert json.loads(out_json.read_text())["nsid"] == {"tldnode-test": completed}


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_closed_loop(tldbench, sample_node):
    out = bench(tldbench, sample_node, "--zone", SAMPLE_ZONE, "--nqueries", "5000", "-c", "8",
                "-q", "100", host="::1").stdout
    assert "[::1]:" in out
    assert figure(out, "  Queries completed:") == 5000, out


def test_no_gso_and_threads(tldbench, sample_node):
    out = bench(tldbench, sample_node, "--zone", SAMPLE_ZONE, "--no-gso", "-T", "2", "-c", "8",
                "-l", "1", "-Q", "1000").stdout
    assert 980 <= figure(out, "  Queries sent:") <= 1020, out
    assert figure(out, "  Queries lost:") == 0, out


def test_usage_and_failures(tldbench, tmp_path):
    proc = run(tldbench, "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: tldbench"), describe(proc)
    for args in (["--bogus"], ["-Q", "fast"], ["-m", "quic"], ["-d", "x", "--zone", "y"],
                 ["extra-argument"], ["-c"]):
        proc = run(tldbench, *args)
        assert proc.returncode == 2, describe(proc)
        assert proc.stderr.startswith("tldbench: ") and "usage: tldbench" in proc.stderr
    proc = run(tldbench, "-d", tmp_path / "missing.txt")
    assert proc.returncode == 1, describe(proc)
    assert proc.stderr.count("\n") == 1 and "missing.txt" in proc.stderr
    bad = tmp_path / "bad.txt"
    bad.write_text("sample. NOSUCHTYPE\n")
    proc = run(tldbench, "-d", bad)
    assert proc.returncode == 1 and "bad.txt:1:" in proc.stderr, describe(proc)
