"""Zero-downtime restart (lb/takeover.h): a successor tldnode takes the running one's sockets
over the control socket, the old one is sent SIGTERM, and no query is lost, over UDP (IPv4
and IPv6) and TCP. Also: a SIGTERM without a successor, an unrelated tldnode beside a running
one, and the CPU steering of --pin-cpus (SO_ATTACH_REUSEPORT_CBPF), which a restart affects."""

import json
import os
import re
import socket
import struct
import subprocess
import threading
import time
import urllib.request

import dns.edns
import dns.message
import dns.query
import dns.rcode
import pytest

from conftest import SAMPLE_ZONE, binary, free_port, import_zone, ipv6_loopback

RATE = 5000  # q/s per generator
DURATION = 6  # s


@pytest.fixture(scope="module")
def tldbench():
    return binary("tldbench")


def start_bench(tldbench, host, port, out_json, rate=RATE, duration=DURATION, *extra):
    """tldbench at a fixed rate with the sample zone's query mix, asking for NSID."""
    cmd = [str(tldbench), "-s", host, "-p", str(port), "--zone", str(SAMPLE_ZONE),
           "--origin", "sample", "-l", str(duration), "-Q", str(rate), "-t", "2", "--nsid",
           "--json", str(out_json), "--quiet", *map(str, extra)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def bench_result(proc, out_json, timeout=60):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"tldbench: exit {proc.returncode}\n{out}\n{err}"
    return json.loads(out_json.read_text()), out


def nsid_of(node, host=None, tcp=False):
    """The NSID (identity) of whoever answers SOA sample. at node's port."""
    q = dns.message.make_query("sample.", "SOA", use_edns=0,
                               options=[dns.edns.GenericOption(dns.edns.NSID, b"")])
    host = host or node.host
    r = (dns.query.tcp if tcp else dns.query.udp)(q, host, port=node.port, timeout=2)
    assert r.rcode() == dns.rcode.NOERROR
    for opt in r.options:
        if opt.otype == dns.edns.NSID:
            data = opt.data if hasattr(opt, "data") else opt.to_wire()
            return bytes(data).decode()
    return None


def stop_timed(node, timeout=5):
    """SIGTERM; asserts exit 0; returns the seconds it took."""
    t0 = time.monotonic()
    node.stop_clean(timeout)
    return time.monotonic() - t0


# ---- UDP under steady load ----

def test_restart_under_load_loses_nothing(tldnode_server, sample_store, tldbench, tmp_path):
    """5000 q/s for 6 s (and as much again over IPv6 when there is ::1); B starts after 2 s
    with one worker against A's two (so it adopts more sockets than it has workers), A gets
    SIGTERM after 3 s: every query is answered, both identities answered some, B serves on."""
    a = tldnode_server(sample_store, "--workers", "2", identity="node-a")
    benches = [("127.0.0.1", tmp_path / "v4.json")]
    if ipv6_loopback():
        benches.append(("::1", tmp_path / "v6.json"))
    procs = [(start_bench(tldbench, h, a.port, j), j) for h, j in benches]
    time.sleep(2)
    b = tldnode_server(sample_store, "--workers", "1", port=a.port, identity="node-b")
    assert re.search(r"took over \d+ sockets", b.log_text()), b.log_text()
    # A: 2 workers x (udp + tcp) x listen addresses; B holds them all.
    assert f"took over {2 * 2 * len(a.listen)} sockets" in b.log_text(), b.log_text()
    time.sleep(1)
    took = stop_timed(a)
    assert took < 3, f"A took {took:.1f}s to stop"
    for (host, _), (proc, out_json) in zip(benches, procs):
        data, out = bench_result(proc, out_json)
        sent = data["queries_sent"]
        assert sent >= RATE * DURATION * 0.95, out
        assert data["queries_lost"] == 0, f"{host}: lost queries across the restart\n{out}"
        assert data["queries_completed"] == sent, out
        spread = data["nsid"]
        assert set(spread) == {"node-a", "node-b"}, f"{host}: {spread}"
        assert sum(spread.values()) == sent
        # A served the first ~3 s, B (also) the last ~3 s.
        assert spread["node-a"] > RATE, spread
        assert spread["node-b"] > RATE, spread
    assert b.alive()
    for host in b.listen:
        assert nsid_of(b, host) == "node-b"
        assert nsid_of(b, host, tcp=True) == "node-b"


# ---- TCP across a restart ----

def _query_wire(qid, name="sample.", rdtype="SOA", dnssec=False):
    q = dns.message.make_query(name, rdtype, use_edns=0, want_dnssec=dnssec,
                               options=[dns.edns.GenericOption(dns.edns.NSID, b"")])
    q.id = qid
    w = q.to_wire()
    return struct.pack("!H", len(w)) + w


def _read_answers(sock, answers, errors, parse=True):
    """Reads framed answers into answers, (id, nsid, rcode) each (parse=False: the id only),
    until EOF, or an error (appended to errors)."""
    buf = b""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return
            buf += data
            while len(buf) >= 2:
                n = struct.unpack("!H", buf[:2])[0]
                if len(buf) < 2 + n:
                    break
                if not parse:
                    answers.append(struct.unpack("!H", buf[2:4])[0])
                    buf = buf[2 + n:]
                    continue
                m = dns.message.from_wire(buf[2:2 + n])
                buf = buf[2 + n:]
                nsid = None
                for opt in m.options:
                    if opt.otype == dns.edns.NSID:
                        nsid = bytes(opt.data if hasattr(opt, "data") else opt.to_wire()).decode()
                answers.append((m.id, nsid, m.rcode()))
    except OSError as e:
        errors.append(e)


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_tcp_client_across_restart(tldnode_server, sample_store, family):
    """A TCP client connected to A keeps sending queries (one every 2 ms, pipelined) while B
    takes over and A is stopped: A answers every query it read, in order, then closes the
    connection cleanly (FIN, not RST); what it had not read is answered by B on a new
    connection."""
    if family == "ipv6" and not ipv6_loopback():
        pytest.skip("no IPv6 loopback")
    host = "127.0.0.1" if family == "ipv4" else "::1"
    a = tldnode_server(sample_store, "--workers", "2", identity="node-a")
    fam = socket.AF_INET if family == "ipv4" else socket.AF_INET6
    sock = socket.socket(fam, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect((host, a.port))
    answers, errors = [], []
    reader = threading.Thread(target=_read_answers, args=(sock, answers, errors))
    reader.start()
    sent = []

    def writer():
        qid = 0
        try:
            while reader.is_alive() and qid < 20000:
                sock.sendall(_query_wire(qid))
                sent.append(qid)
                qid += 1
                time.sleep(0.002)
        except OSError:
            pass  # the server closed: what follows the last answer is resent below
    wt = threading.Thread(target=writer)
    wt.start()
    time.sleep(0.5)
    b = tldnode_server(sample_store, "--workers", "1", port=a.port, identity="node-b")
    assert "took over" in b.log_text()
    time.sleep(0.5)
    assert answers, "no answer from A before the restart"
    stop_timed(a)
    reader.join(10)
    wt.join(10)
    sock.close()
    assert not reader.is_alive() and not wt.is_alive()
    assert not errors, f"the connection to A ended with an error, not a FIN: {errors}"
    ids = [qid for qid, _, _ in answers]
    # Answered in order, without a gap: A answered every query it had read.
    assert ids == list(range(len(ids))), "answers out of order or missing"
    assert all(n == "node-a" for _, n, _ in answers)
    assert all(rc == dns.rcode.NOERROR for _, _, rc in answers)
    assert len(ids) > 100
    unanswered = sent[len(ids):]
    assert len(unanswered) < 50, f"{len(unanswered)} queries sent but never answered"
    # The client retries those on a new connection (RFC 7766 6.2.1): B answers them.
    with socket.socket(fam, socket.SOCK_STREAM) as s2:
        s2.settimeout(5)
        s2.connect((host, b.port))
        retry = unanswered + [50000]
        for qid in retry:
            s2.sendall(_query_wire(qid))
        s2.shutdown(socket.SHUT_WR)
        got, errs = [], []
        _read_answers(s2, got, errs)
    assert not errs
    assert [qid for qid, _, _ in got] == retry
    assert all(n == "node-b" for _, n, _ in got)


def _tcp_queries(metrics_port):
    """tldnode_queries_total over TCP, summed over the workers, from --metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(int(v) for v in re.findall(
        r'^tldnode_queries_total\{worker="\d+",transport="tcp"\} (\d+)$', text, re.M))


def test_tcp_pipelined_burst_answered_on_stop(tldnode_server, sample_store):
    """A client sends 12000 pipelined DNSKEY queries (DO=1) and reads nothing: A's answers fill
    every buffer, its writes stall and it stops reading (--tcp-pipeline 4), with queries left
    in its buffer and in the kernel's. Then A is stopped: it answers all it had answered
    before the stop and more (what it had received), in order, and ends the connection with
    a FIN (a close() with unread input would reset it, destroying answers in flight). The
    rest, still in the client's send buffer at the stop, is for the client to retry."""
    mport = free_port()
    a = tldnode_server(sample_store, "--workers", "1", "--tcp-pipeline", "4",
                       "--metrics", f"127.0.0.1:{mport}", identity="node-a")
    n = 12000
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", a.port))
        burst = b"".join(_query_wire(i, "sample.", "DNSKEY", True) for i in range(n))
        sender = threading.Thread(target=s.sendall, args=(burst,))
        sender.start()
        sender.join(10)
        assert not sender.is_alive(), "the burst could not be sent"
        time.sleep(0.3)  # A answers until its writes block, and pauses reading
        before = _tcp_queries(mport)
        assert before < n, "A answered everything before the stop: the test needs a bigger burst"
        stop = threading.Thread(target=a.stop_clean)
        stop.start()
        time.sleep(0.2)
        answers, errors = [], []
        _read_answers(s, answers, errors, parse=False)
        stop.join()
    assert not errors, f"{errors} after {len(answers)} answers (answered before the stop: {before})"
    assert answers == list(range(len(answers)))
    assert len(answers) > before


# ---- without a successor; with an unrelated node ----

def test_sigterm_without_successor(tldnode_server, sample_store):
    """Alone, SIGTERM exits 0 at once and removes the control socket file."""
    a = tldnode_server(sample_store, "--workers", "2")
    sock_path = sample_store / "tldnode.sock"
    assert sock_path.is_socket()
    took = stop_timed(a)
    assert took < 1.5, f"{took:.2f}s to stop"
    assert not sock_path.exists()
    assert "took over" not in a.log_text()


def test_control_socket_kept_by_successor(tldnode_server, sample_store):
    """After a takeover the control socket is the successor's: the old node does not remove
    it, and a third node takes the sockets over from the second."""
    a = tldnode_server(sample_store, "--workers", "1", identity="node-a")
    b = tldnode_server(sample_store, "--workers", "1", port=a.port, identity="node-b")
    stop_timed(a)
    assert (sample_store / "tldnode.sock").is_socket()
    c = tldnode_server(sample_store, "--workers", "2", port=a.port, identity="node-c")
    assert "took over" in c.log_text()
    stop_timed(b)
    assert nsid_of(c) == "node-c"


def test_unrelated_node_does_not_steal(tldnode_server, sample_store, tmp_path, tldbench):
    """A second tldnode on another store and port starts, serves and stops beside A without
    taking A's sockets: A's clients see only A, and lose nothing."""
    a = tldnode_server(sample_store, "--workers", "2", identity="node-a")
    out_json = tmp_path / "a.json"
    proc = start_bench(tldbench, "127.0.0.1", a.port, out_json, 2000, 3)
    time.sleep(0.5)
    store2 = tmp_path / "store-c"
    store2.mkdir()
    import_zone(binary("tldctl"), store2, SAMPLE_ZONE)
    c = tldnode_server(store2, "--workers", "1", identity="node-c")
    assert c.port != a.port
    assert "took over" not in c.log_text()
    assert nsid_of(c) == "node-c"
    time.sleep(1)
    stop_timed(c)
    data, out = bench_result(proc, out_json)
    assert data["queries_lost"] == 0, out
    assert data["nsid"] == {"node-a": data["queries_sent"]}, out
    assert (sample_store / "tldnode.sock").is_socket()
    assert not (store2 / "tldnode.sock").exists()
    assert nsid_of(a) == "node-a"


def test_no_takeover_restart(tldnode_server, sample_store, tldbench, tmp_path):
    """Informational: the same restart with --no-takeover on B (B binds its own sockets
    beside A's, SO_REUSEPORT splits the flows, A's are closed under load). Whether that loses
    queries is a race (loopback is fast and A drains its sockets before closing them), so
    nothing is asserted about loss: the figure is reported as the skip reason."""
    a = tldnode_server(sample_store, "--workers", "2", identity="node-a")
    out_json = tmp_path / "nt.json"
    proc = start_bench(tldbench, "127.0.0.1", a.port, out_json, RATE, 4)
    time.sleep(1.5)
    b = tldnode_server(sample_store, "--workers", "1", "--no-takeover", port=a.port,
                       identity="node-b")
    assert "took over" not in b.log_text()
    time.sleep(1)
    stop_timed(a)
    data, out = bench_result(proc, out_json)
    assert nsid_of(b) == "node-b"
    pytest.skip(f"informational: --no-takeover restart lost {data['queries_lost']} of "
                f"{data['queries_sent']} queries (with takeover: 0 asserted above)")


# ---- CPU steering (--pin-cpus) ----

def ncpus():
    return os.cpu_count() or 1


STEER = re.compile(r"udp (\S+): steering each datagram to the worker on the receiving CPU "
                   r"\((\d+) workers\)")


def _udp_by_worker(metrics_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {int(w): int(v) for w, v in re.findall(
        r'^tldnode_queries_total\{worker="(\d+)",transport="udp"\} (\d+)$', text, re.M)}


@pytest.mark.skipif(ncpus() < 2 or not {0, 1} <= os.sched_getaffinity(0),
                    reason="needs CPUs 0 and 1")
def test_pin_cpus_steering(tldnode_server, sample_store, tldbench, tmp_path):
    """--pin-cpus with as many workers as CPUs (or fewer) attaches the CPU-steering program to
    each listen address's UDP group (logged), and every query is answered, over IPv4 and
    IPv6. Which worker gets a datagram depends on the CPU that ran its receive softirq: on
    loopback that is the sender's, so a generator pinned to CPU c is answered by worker c
    alone (on a real NIC it is the CPU the NIC's RSS/RPS picks, which loopback says nothing
    about)."""
    mport = free_port()
    a = tldnode_server(sample_store, "--workers", "2", "--pin-cpus",
                       "--metrics", f"127.0.0.1:{mport}", identity="node-a")
    steered = STEER.findall(a.log_text())
    assert len(steered) == len(a.listen), a.log_text()
    assert all(n == "2" for _, n in steered)
    out_json = tmp_path / "pin.json"
    for host in a.listen:
        for cpu in (0, 1):
            before = _udp_by_worker(mport)
            cmd = [str(tldbench), "-s", host, "-p", str(a.port), "--zone", str(SAMPLE_ZONE),
                   "-l", "1", "-Q", "2000", "--json", str(out_json), "--quiet"]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True,
                                    preexec_fn=lambda c=cpu: os.sched_setaffinity(0, {c}))
            data, out = bench_result(proc, out_json)
            assert data["queries_lost"] == 0, out
            assert data["queries_completed"] == data["queries_sent"], out
            after = _udp_by_worker(mport)
            got = {w: after[w] - before.get(w, 0) for w in after}
            assert got[cpu] >= 0.95 * sum(got.values()), f"sender on CPU {cpu}: {got}"
        assert nsid_of(a, host, tcp=True) == "node-a"


@pytest.mark.skipif(ncpus() < 2, reason="needs 2 CPUs")
def test_pin_cpus_more_workers_than_cpus(tldnode_server, sample_store):
    """More workers than CPUs: no steering (some workers would get no UDP), said in the log."""
    a = tldnode_server(sample_store, "--workers", str(ncpus() + 1), "--pin-cpus")
    assert not STEER.search(a.log_text())
    assert "not steering" in a.log_text(), a.log_text()
    assert nsid_of(a) == "tldnode-test"


def test_pin_cpus_not_attached_when_inherited(tldnode_server, sample_store, tldbench,
                                              tmp_path):
    """A successor that inherited sockets does not attach the program (the group's socket
    indices follow the predecessor's bind order, not its workers), and loses nothing."""
    a = tldnode_server(sample_store, "--workers", "2", "--pin-cpus", identity="node-a")
    out_json = tmp_path / "pin.json"
    proc = start_bench(tldbench, "127.0.0.1", a.port, out_json, 3000, 3)
    time.sleep(1)
    b = tldnode_server(sample_store, "--workers", "2", "--pin-cpus", port=a.port,
                       identity="node-b")
    assert "took over" in b.log_text()
    assert not STEER.search(b.log_text())
    assert "not steering" in b.log_text() and "inherited" in b.log_text(), b.log_text()
    time.sleep(0.5)
    stop_timed(a)
    data, out = bench_result(proc, out_json)
    assert data["queries_lost"] == 0, out
    assert set(data["nsid"]) == {"node-a", "node-b"}
