"""--metrics: the Prometheus text exposition (checked line by line against the format), its
counters following the queries sent (UDP and TCP, rcodes, qtypes, truncation, TCP
connections), each zone's serial; replication metrics on a primary and a replica; and
`tldctl status --metrics`, which summarises several nodes."""

import json
import math
import re
import socket
import struct
import subprocess
import time
import urllib.request

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

import replproto as rp
from conftest import (SAMPLE_ZONE, binary, check, describe, free_port, import_zone, run,
                      write_zone)

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_exposition(text, grouped=True):
    """Checks text against the Prometheus text format (0.0.4), line by line: every line a
    comment, a HELP/TYPE line or a sample; at most one HELP and one TYPE per metric, both
    before its first sample; the samples of a metric in one group; well-formed labels, no
    label twice; numeric values; no series twice; counters >= 0 (grouped=False: samples of a
    metric may be split, a known defect of the replication metrics). Returns (samples, types):
    samples maps (name, ((label, value), ...)) to the value."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    types, helps, samples = {}, {}, {}
    done, current = set(), None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = f"line {n}: {line!r}"
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[0] == "#" and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                assert METRIC_NAME.match(name), where
                assert (name not in done and name != current) or not grouped, \
                    f"{where}: after its samples"
                table = helps if parts[1] == "HELP" else types
                assert name not in table, f"{where}: a second {parts[1]}"
                table[name] = parts[3] if len(parts) > 3 else ""
                if parts[1] == "TYPE":
                    assert table[name] in TYPES, where
            continue
        m = SAMPLE.match(line)
        assert m, f"{where}: not a sample"
        name, labels, value = m.group(1), m.group(2), m.group(3)
        assert name in types, f"{where}: no TYPE before the first sample"
        assert name in helps, f"{where}: no HELP"
        if name != current:
            assert name not in done or not grouped, f"{where}: {name} samples not in one group"
            if current is not None:
                done.add(current)
            current = name
        pairs = []
        if labels:
            pos = 0
            while pos < len(labels):
                lm = LABEL.match(labels, pos)
                assert lm, f"{where}: bad labels at {labels[pos:]!r}"
                pairs.append((lm.group(1), lm.group(2)))
                pos = lm.end()
                if lm.group(3) == "" and pos < len(labels):
                    raise AssertionError(f"{where}: bad labels")
            names = [k for k, _ in pairs]
            assert len(names) == len(set(names)), f"{where}: a label twice"
        try:
            v = float(value)  # NaN, +Inf and -Inf are numbers too
        except ValueError:
            raise AssertionError(f"{where}: not a number") from None
        if types[name] == "counter":
            assert v >= 0 and not math.isnan(v), f"{where}: a negative counter"
        key = (name, tuple(sorted(pairs)))
        assert key not in samples, f"{where}: series twice"
        samples[key] = v
    return samples, types


def scrape(port, host="127.0.0.1"):
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        return r.read().decode()


def metric(samples, name, **labels):
    """Sum of the samples of name whose labels include labels."""
    total = 0.0
    for (n, pairs), v in samples.items():
        d = dict(pairs)
        if n == name and all(d.get(k) == str(x) for k, x in labels.items()):
            total += v
    return total


def by_label(samples, name, label):
    out = {}
    for (n, pairs), v in samples.items():
        d = dict(pairs)
        if n == name and label in d:
            out[d[label]] = out.get(d[label], 0) + v
    return out


@pytest.fixture
def metrics_node(tldnode_server, sample_store):
    mport = free_port()
    node = tldnode_server(sample_store, "--workers", "2", "--metrics", f"127.0.0.1:{mport}")
    node.metrics_port = mport
    # The readiness check opened (and closed) one TCP connection per listen address, which
    # tldnode may accept a little later: wait for the counters to settle.
    deadline = time.monotonic() + 5
    while True:
        s, _ = parse_exposition(scrape(mport))
        if (metric(s, "tldnode_tcp_accepted_total") == len(node.listen)
                and metric(s, "tldnode_tcp_connections") == 0):
            return node
        assert time.monotonic() < deadline, scrape(mport)
        time.sleep(0.02)


# ---- the format ----

def test_exposition_is_valid(metrics_node):
    text = scrape(metrics_node.metrics_port)
    samples, types = parse_exposition(text)
    for name in ("tldnode_info", "tldnode_queries_total", "tldnode_responses_total",
                 "tldnode_queries_by_qtype_total", "tldnode_truncated_total",
                 "tldnode_tcp_connections", "tldnode_tcp_accepted_total", "tldnode_zone_serial"):
        assert name in types, f"{name} missing"
    assert types["tldnode_tcp_connections"] == "gauge"
    assert types["tldnode_zone_serial"] == "gauge"
    assert all(types[n] == "counter" for n in types if n.endswith("_total"))
    assert metric(samples, "tldnode_info", identity="tldnode-test", workers="2") == 1
    # One series per worker.
    assert {dict(p)["worker"] for (n, p) in samples if n == "tldnode_queries_total"} == {"0", "1"}


def test_not_get_is_refused(metrics_node):
    req = urllib.request.Request(f"http://127.0.0.1:{metrics_node.metrics_port}/", method="POST",
                                 data=b"x")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 405


def test_parser_rejects_bad_expositions():
    """The checker itself: what it must refuse."""
    good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 3\n"
    parse_exposition(good)
    for bad in [
        "a_total 1\n",                                            # no TYPE
        good + "a_total{x=\"2\"} one\n",                          # not a number
        good + "# TYPE a_total counter\n",                        # second TYPE
        good + "# HELP b B.\n# TYPE b gauge\nb 1\na_total{x=\"3\"} 1\n",  # not grouped
        good + "a_total{x=\"1\"} 4\n",                            # series twice
        "# HELP a A.\n# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n",    # label twice
        "# HELP a A.\n# TYPE a gauge\na{x=1} 1\n",                # unquoted label
        "# HELP a A.\n# TYPE a counter\na -1\n",                  # negative counter
        good.rstrip("\n"),                                        # no final newline
    ]:
        with pytest.raises(AssertionError):
            parse_exposition(bad)


# ---- counters ----

def _udp(node, name, rdtype, **kw):
    q = dns.message.make_query(name, rdtype, **kw)
    q.flags &= ~dns.flags.RD
    return dns.query.udp(q, "127.0.0.1", port=node.port, timeout=2, ignore_trailing=True)


def _tcp_queries(node, queries):
    """Sends queries (name, type) pipelined on one TCP connection; returns the answers."""
    wire = []
    for i, (name, rdtype) in enumerate(queries):
        q = dns.message.make_query(name, rdtype)
        q.id = i
        w = q.to_wire()
        wire.append(struct.pack("!H", len(w)) + w)
    out = []
    with socket.create_connection(("127.0.0.1", node.port), timeout=5) as s:
        s.sendall(b"".join(wire))
        buf = b""
        while len(out) < len(queries):
            data = s.recv(65536)
            assert data
            buf += data
            while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                n = struct.unpack("!H", buf[:2])[0]
                out.append(dns.message.from_wire(buf[2:2 + n]))
                buf = buf[2 + n:]
    return out


def test_counters_follow_queries(metrics_node):
    node = metrics_node
    before, _ = parse_exposition(scrape(node.metrics_port))
    for _ in range(5):
        assert _udp(node, "sample.", "SOA").rcode() == dns.rcode.NOERROR
    for _ in range(3):
        assert _udp(node, "nosuchname.sample.", "A").rcode() == dns.rcode.NXDOMAIN
    for _ in range(2):
        assert _udp(node, "example.com.", "A").rcode() == dns.rcode.REFUSED
    # NXDOMAIN with NSEC3 proofs, DO=1 and a long name does not fit 512 bytes: TC=1.
    long_name = "x" * 60 + "." + "y" * 60 + ".sample."
    r = _udp(node, long_name, "A", use_edns=0, payload=512, want_dnssec=True)
    assert r.flags & dns.flags.TC
    tcp = _tcp_queries(node, [("sample.", "DNSKEY")] * 4 + [("sample.", "NS")] * 3)
    assert all(m.rcode() == dns.rcode.NOERROR for m in tcp)
    after, _ = parse_exposition(scrape(node.metrics_port))

    def delta(name, **labels):
        return metric(after, name, **labels) - metric(before, name, **labels)
    assert delta("tldnode_queries_total", transport="udp") == 11
    assert delta("tldnode_queries_total", transport="tcp") == 7
    assert delta("tldnode_queries_total") == 18
    assert delta("tldnode_responses_total", rcode="NOERROR") == 12
    assert delta("tldnode_responses_total", rcode="NXDOMAIN") == 4
    assert delta("tldnode_responses_total", rcode="REFUSED") == 2
    assert delta("tldnode_responses_total") == 18
    assert delta("tldnode_queries_by_qtype_total", qtype="SOA") == 5
    assert delta("tldnode_queries_by_qtype_total", qtype="A") == 6
    assert delta("tldnode_queries_by_qtype_total", qtype="DNSKEY") == 4
    assert delta("tldnode_queries_by_qtype_total", qtype="NS") == 3
    assert delta("tldnode_truncated_total") == 1
    assert delta("tldnode_tcp_accepted_total") == 1


def test_tcp_connection_gauge(metrics_node):
    node = metrics_node

    def gauges():
        s, _ = parse_exposition(scrape(node.metrics_port))
        return metric(s, "tldnode_tcp_connections"), metric(s, "tldnode_tcp_accepted_total")
    open0, acc0 = gauges()
    conns = [socket.create_connection(("127.0.0.1", node.port), timeout=5) for _ in range(3)]
    try:
        deadline = time.monotonic() + 5
        while gauges()[0] != open0 + 3:
            assert time.monotonic() < deadline, f"gauge {gauges()} (before {open0})"
            time.sleep(0.05)
        assert gauges()[1] == acc0 + 3
    finally:
        for c in conns:
            c.close()
    deadline = time.monotonic() + 5
    while gauges()[0] != open0:
        assert time.monotonic() < deadline, f"gauge {gauges()} after closing (before {open0})"
        time.sleep(0.05)


def test_zone_serial(metrics_node, tldctl, sample_store):
    samples, _ = parse_exposition(scrape(metrics_node.metrics_port))
    soa = _udp(metrics_node, "sample.", "SOA").answer[0][0].serial
    assert by_label(samples, "tldnode_zone_serial", "zone") == {"sample.": soa}
    zones = check(run(tldctl, "zones", "--store", sample_store)).stdout
    assert f"serial {soa}" in zones


# ---- replication ----

ZONE_B = """$ORIGIN tld.
$TTL 3600
@ IN SOA ns1.nic.tld. hostmaster.nic.tld. 2026010100 1800 900 604800 3600
@ IN NS ns1.nic.tld.
ns1.nic IN A 192.0.2.1
example IN NS ns1.example.net.
"""


@pytest.fixture
def repl_pair(tldnode_server, tmp_path, tldctl):
    """A primary serving two zones and a replica, each with --metrics; returns (primary,
    replica) once the replica serves both zones."""
    key = tmp_path / "repl.key"
    rp.make_key_file(key)
    pub, ctl = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    pstore = tmp_path / "primary"
    import_zone(tldctl, pstore, SAMPLE_ZONE)
    import_zone(tldctl, pstore, write_zone(tmp_path / "tld.zone", ZONE_B))
    common = ["--workers", "1", "--key", key, "--control", ctl, "--heartbeat", "100"]
    mp, mr = free_port(), free_port()
    primary = tldnode_server(pstore, "--role", "primary", "--publish", pub, *common,
                             "--metrics", f"127.0.0.1:{mp}", identity="primary")
    replica = tldnode_server(tmp_path / "replica", "--role", "replica", "--primary", pub,
                             *common, "--metrics", f"127.0.0.1:{mr}", identity="r1",
                             wait=False)
    primary.metrics_port, replica.metrics_port = mp, mr
    deadline = time.monotonic() + 30
    while True:
        try:
            s, _ = parse_exposition(scrape(mr), grouped=False)
            if metric(s, "tldnode_repl_in_sync") == 1 and len(
                    by_label(s, "tldnode_zone_serial", "zone")) == 2:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, replica.log_text()
        time.sleep(0.1)
    return primary, replica


def test_replication_metrics(repl_pair):
    primary, replica = repl_pair
    ps, ptypes = parse_exposition(scrape(primary.metrics_port), grouped=False)
    rs, rtypes = parse_exposition(scrape(replica.metrics_port), grouped=False)
    assert metric(rs, "tldnode_repl_in_sync", role="replica") == 1
    assert metric(ps, "tldnode_repl_in_sync", role="primary") in (0, 1)
    serials = by_label(ps, "tldnode_zone_serial", "zone")
    assert set(serials) == {"sample.", "tld."}
    assert by_label(rs, "tldnode_zone_serial", "zone") == serials
    for zone, serial in serials.items():
        assert metric(rs, "tldnode_repl_zone_serial", zone=zone, of="node") == serial
        assert metric(rs, "tldnode_repl_zone_serial", zone=zone, of="primary") == serial
        assert metric(rs, "tldnode_repl_lag_ms", zone=zone) >= 0
        assert metric(rs, "tldnode_repl_zone_stalled", zone=zone) == 0
    assert rtypes["tldnode_repl_events_total"] == "counter"
    assert rtypes["tldnode_repl_zone_stalled"] == "gauge"
    # A counter never goes down: the number of zones stalled now is not one of them.
    assert by_label(rs, "tldnode_repl_events_total", "event").keys() >= {"gaps", "no_space_stalls"}
    assert "stalled_no_space" not in by_label(rs, "tldnode_repl_events_total", "event")


def test_replication_exposition_grouped(repl_pair):
    for node in repl_pair:
        parse_exposition(scrape(node.metrics_port))


# ---- tldctl status --metrics ----

def test_tldctl_status_two_nodes(tldnode_server, sample_store, tldctl, tmp_path):
    """Two nodes, one under 2000 q/s: the summary gives each one's rate, rcodes, TCP and
    zones; --json the same as figures."""
    ma, mb = free_port(), free_port()
    a = tldnode_server(sample_store, "--workers", "2", "--metrics", f"127.0.0.1:{ma}",
                       identity="node-a")
    b = tldnode_server(sample_store, "--workers", "1", "--no-takeover",
                       "--metrics", f"127.0.0.1:{mb}", identity="node-b")
    bench = subprocess.Popen([str(binary("tldbench")), "-s", "127.0.0.1", "-p", str(a.port),
                              "--zone", str(SAMPLE_ZONE), "--origin", "sample", "-l", "4",
                              "-Q", "2000", "--quiet"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        tcp = socket.create_connection(("127.0.0.1", b.port), timeout=5)
        p = check(run(tldctl, "status", "--metrics", f"127.0.0.1:{ma}",
                      "--metrics", f"127.0.0.1:{mb}", "--json", timeout=30))
        text = check(run(tldctl, "status", "--metrics", f"127.0.0.1:{ma}",
                         "--metrics", f"127.0.0.1:{mb}", timeout=30)).stdout
        tcp.close()
    finally:
        bench.wait(30)
    st = json.loads(p.stdout)
    nodes = {n["identity"]: n for n in st["nodes"]}
    assert set(nodes) == {"node-a", "node-b"}, st
    na, nb = nodes["node-a"], nodes["node-b"]
    assert na["address"] == f"127.0.0.1:{ma}" and na["up"] and na["workers"] == 2
    assert 1500 <= na["qps"] <= 2500, na
    assert nb["qps"] < 50, nb
    assert na["queries"]["udp"] > 1000
    assert set(na["responses"]) >= {"NOERROR", "NXDOMAIN"}
    assert sum(na["responses"].values()) > 1000
    assert na["truncated"] >= 0
    assert nb["tcp"]["open"] >= 1 and nb["tcp"]["accepted"] >= 1
    soa = _udp(a, "sample.", "SOA").answer[0][0].serial
    assert na["zones"] == {"sample.": soa} and nb["zones"] == {"sample.": soa}
    assert "replication" not in na
    for ident, port in (("node-a", ma), ("node-b", mb)):
        assert re.search(rf"^127\.0\.0\.1:{port} .*{ident}", text, re.M), text
    assert re.search(r"queries/s\s+\d", text), text
    assert re.search(r"sample\.\s+serial " + str(soa), text), text
    assert "NOERROR" in text


def test_tldctl_status_replication(repl_pair, tldctl):
    primary, replica = repl_pair
    p = check(run(tldctl, "status", "--metrics", f"127.0.0.1:{primary.metrics_port}",
                  "--metrics", f"127.0.0.1:{replica.metrics_port}", "--json", timeout=30))
    nodes = {n["identity"]: n for n in json.loads(p.stdout)["nodes"]}
    r = nodes["r1"]["replication"]
    assert r["role"] == "replica" and r["in_sync"] is True
    assert set(r["zones"]) == {"sample.", "tld."}
    for zone, z in r["zones"].items():
        assert z["serial"] == z["primary_serial"] == nodes["r1"]["zones"][zone]
        assert z["lag_ms"] >= 0
    assert nodes["primary"]["replication"]["role"] == "primary"
    text = check(run(tldctl, "status", "--metrics", f"127.0.0.1:{replica.metrics_port}",
                     timeout=30)).stdout
    assert re.search(r"replication\s+replica, in sync", text), text


def test_tldctl_status_unreachable(metrics_node, tldctl):
    """A node that does not answer is reported, the others summarised, exit 1."""
    dead = free_port()
    p = run(tldctl, "status", "--metrics", f"127.0.0.1:{metrics_node.metrics_port}",
            "--metrics", f"127.0.0.1:{dead}", "--json", timeout=30)
    assert p.returncode == 1, describe(p)
    nodes = json.loads(p.stdout)["nodes"]
    assert [n["up"] for n in nodes] == [True, False]
    assert nodes[1]["address"] == f"127.0.0.1:{dead}" and nodes[1]["error"]
    assert f"127.0.0.1:{dead}" in p.stderr


def test_tldctl_status_usage(tldctl):
    assert run(tldctl, "status", "--metrics", "nonsense").returncode == 2
    assert run(tldctl, "status", "--metrics", "127.0.0.1:1", "--control",
               "tcp://127.0.0.1:1").returncode == 2
