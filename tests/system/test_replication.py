"""Replication with real processes: a primary and three replicas on loopback.

Pushes (tldctl push) reach every replica; replicas recover from being killed, paused, starved of
messages (a relay drops some) or left behind the journal; the primary survives kill -9; forged,
altered, unknown-key, stale and replayed messages are rejected, counted and never applied. Every
test ends with each replica's content equal to the primary's (tldctl digest).
"""

import json
import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.zone
import pytest

import replproto as rp
from conftest import SHARED_ZONES, binary, check, describe, free_port, run

ORIGIN = "tld."
SYNC_TIMEOUT = 60  # seconds for the cluster to converge (generous: CI machines are busy)
SMALL_ZONE = f"""$ORIGIN {ORIGIN}
$TTL 3600
@ IN SOA ns1.nic.tld. hostmaster.nic.tld. 2026010100 1800 900 604800 3600
@ IN NS ns1.nic.tld.
@ IN NS ns2.nic.tld.
ns1.nic IN A 192.0.2.1
ns2.nic IN A 192.0.2.2
example IN NS ns1.example.net.
example IN NS ns2.example.net.
glued IN NS ns.glued
ns.glued IN A 192.0.2.10
"""


class Node:
    """One tldnode process (primary or replica)."""

    def __init__(self, name, store, dns_port, args, log):
        self.name, self.store, self.port = name, Path(store), dns_port
        self.args, self.log_path, self.proc = args, Path(log), None

    def start(self):
        self.log = open(self.log_path, "ab")
        argv = [str(binary("tldnode")), "--store", str(self.store), "--listen",
                f"127.0.0.1:{self.port}", "--workers", "1", "--identity", self.name] + self.args
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def kill9(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None:
            self.log.close()
        return self.proc.returncode if self.proc else None

    def log_text(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def query(self, name, rtype, timeout=1.0):
        q = dns.message.make_query(name, rtype)
        q.flags &= ~dns.flags.RD
        return dns.query.udp(q, "127.0.0.1", port=self.port, timeout=timeout)


class Cluster:
    """A primary and replicas; every process is stopped at teardown."""

    def __init__(self, tmp):
        self.tmp = Path(tmp)
        self.key = self.tmp / "repl.key"
        self.key_name, self.secret = rp.make_key_file(self.key)
        self.pub_url = f"tcp://127.0.0.1:{free_port()}"
        self.ctl_url = f"tcp://127.0.0.1:{free_port()}"
        self.primary = None
        self.replicas = {}
        self.relays = []

    # -- processes --
    def start_primary(self, zone_text=None, zone_file=None, extra=()):
        store = self.tmp / "primary"
        if zone_text is not None or zone_file is not None:
            if zone_file is None:
                zone_file = self.tmp / "zone.db"
                zone_file.write_text(zone_text)
            check(run(binary("tldctl"), "import", "--store", store, "--quiet", zone_file))
        self.primary_args = ["--role", "primary", "--publish", self.pub_url, "--control",
                             self.ctl_url, "--key", str(self.key), "--heartbeat", "100",
                             *extra]
        self.primary = Node("primary", store, free_port(), self.primary_args,
                            self.tmp / "primary.log").start()
        return self.primary

    def restart_primary(self):
        self.primary = Node("primary", self.primary.store, self.primary.port, self.primary_args,
                            self.tmp / "primary.log").start()
        return self.primary

    def start_replica(self, name, primary_url=None, extra=()):
        old = self.replicas.get(name)
        store = old.store if old else self.tmp / name
        port = old.port if old else free_port()
        args = ["--role", "replica", "--primary", primary_url or self.pub_url, "--control",
                self.ctl_url, "--key", str(self.key), "--heartbeat", "100", *extra]
        node = Node(name, store, port, args, self.tmp / f"{name}.log").start()
        self.replicas[name] = node
        return node

    def relay(self, name):
        """A relay between the primary and a replica to be started with its URL."""
        r = rp.Relay(self.pub_url, f"tcp://127.0.0.1:{free_port()}")
        self.relays.append(r)
        return r

    def teardown(self):
        for r in self.relays:
            r.close()
        for node in list(self.replicas.values()) + [self.primary]:
            if node is not None:
                node.stop()

    def logs(self):
        out = []
        for node in [self.primary] + list(self.replicas.values()):
            if node is not None:
                out.append(f"--- {node.name} ---\n{node.log_text()[-3000:]}")
        return "\n".join(out)

    # -- tldctl --
    def ctl(self, *args, key=None, timeout=120):
        return run(binary("tldctl"), *args, "--control", self.ctl_url, "--key",
                   key or self.key, timeout=timeout)

    def push_delta(self, path, **kw):
        return self.ctl("push", "--delta", path, **kw)

    def push_zone(self, path, *extra, **kw):
        return self.ctl("push", "--zone-file", path, *extra, **kw)

    def push_until_ok(self, path, deadline):
        """Retries a push while the primary is (re)starting."""
        while True:
            p = self.push_delta(path, timeout=30)
            if p.returncode == 0 or time.monotonic() > deadline:
                return check(p)
            time.sleep(0.2)

    def status(self):
        p = self.ctl("status", "--json", "--timeout", "5", timeout=30)
        if p.returncode != 0:
            return None
        return json.loads(p.stdout)

    def node_status(self, name):
        st = self.status()
        for n in (st or {}).get("nodes", []):
            if n["name"] == name:
                return n
        return None

    def counters(self, name):
        n = self.node_status(name)
        return n["counters"] if n else {}

    def wait_counters(self, name, pred, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            c = self.counters(name)
            if c and pred(c):
                return c
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}: counters not as expected: {c}\n{self.logs()}")
            time.sleep(0.2)

    def digest(self, node):
        return check(run(binary("tldctl"), "digest", "--store", node.store)).stdout

    def wait_in_sync(self, timeout=SYNC_TIMEOUT):
        """Until status shows every replica in sync (fresh report, the primary's serials) and
        every replica's store digest equals the primary's."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            st = self.status()
            last = st
            if st is not None and self._all_in_sync(st):
                want = self.digest(self.primary)
                if all(self.digest(r) == want for r in self.replicas.values()):
                    return st
            if time.monotonic() > deadline:
                raise AssertionError(f"cluster not in sync after {timeout}s: "
                                     f"{json.dumps(last, indent=1)}\n{self.logs()}")
            time.sleep(0.2)

    def _all_in_sync(self, st):
        nodes = {n["name"]: n for n in st["nodes"]}
        prim = nodes.get("primary")
        if prim is None or not prim["zones"]:
            return False
        serials = {z["zone"]: z["serial"] for z in prim["zones"]}
        for name, node in self.replicas.items():
            n = nodes.get(name)
            if n is None or not node.alive() or not n["in_sync"] or n["age_ms"] > 3000:
                return False
            have = {z["zone"]: z["serial"] for z in n["zones"]}
            if any(have.get(z) != s for z, s in serials.items()):
                return False
        return True

    def serial(self, node, zone=ORIGIN):
        r = node.query(zone, "SOA")
        return r.answer[0][0].serial


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.teardown()


def nx_soa_serial(node):
    """The serial of the SOA in a NXDOMAIN answer's authority section."""
    resp = node.query(f"no-such-name.{ORIGIN}", "A")
    assert resp.rcode() == dns.rcode.NXDOMAIN
    return resp.authority[0][0].serial


def three_replicas(cluster, **kw):
    for i in range(1, 4):
        cluster.start_replica(f"r{i}", **kw)


def adds_delta(path, tag, n, origin=ORIGIN):
    """A delta file adding n delegations named d<tag>-<i>."""
    lines = [f"$ORIGIN {origin}", "$TTL 3600"]
    for i in range(n):
        lines.append(f"+ d{tag}-{i} NS ns1.example.net.")
        lines.append(f"+ d{tag}-{i} NS ns2.example.net.")
    Path(path).write_text("\n".join(lines) + "\n")
    return path


def stream(cluster, tmp, first, count, per_push, hooks=None, deadline=None):
    """count pushes of per_push delegation adds; hooks: {push index: callable}."""
    deadline = deadline or time.monotonic() + 120
    for i in range(first, first + count):
        if hooks and i in hooks:
            hooks[i]()
        path = adds_delta(tmp / f"push-{i}.delta", i, per_push)
        cluster.push_until_ok(path, deadline)


# ---- tests ----

def test_bootstrap_and_delta_push(cluster, tmp_path):
    """Empty replicas bootstrap by snapshot; a delta push reaches all of them; the push returns
    only after the primary committed it (its own answer already shows it)."""
    cluster.start_primary(zone_text=SMALL_ZONE)
    three_replicas(cluster)
    cluster.wait_in_sync()
    for r in cluster.replicas.values():  # the engine now holds this snapshot's SOA
        assert nx_soa_serial(r) == 2026010100
    delta = tmp_path / "d.delta"
    delta.write_text(f"$ORIGIN {ORIGIN}\n$TTL 7200\n+ new NS ns1.example.org.\n"
                     f"+ new NS ns2.example.org.\n- example NS ns2.example.net.\n")
    p = check(cluster.push_delta(delta))
    assert "2026010100 -> 2026010101" in p.stdout
    assert cluster.serial(cluster.primary) == 2026010101
    cluster.wait_in_sync()
    for r in cluster.replicas.values():
        resp = r.query("x.new.tld.", "A")
        assert {str(rr) for rr in resp.authority[0]} == {"ns1.example.org.", "ns2.example.org."}
        resp = r.query("example.tld.", "NS")
        assert {str(rr) for rr in resp.authority[0]} == {"ns1.example.net."}
        resp = r.query("www.glued.tld.", "A")  # referral data loaded by the snapshot
        assert [str(rr) for rr in resp.authority[0]] == ["ns.glued.tld."]
        assert [str(rr) for rr in resp.additional[0]] == ["192.0.2.10"]
        assert cluster.serial(r) == 2026010101
        assert nx_soa_serial(r) == 2026010101  # not the SOA of the old snapshot
        c = cluster.counters(r.name)
        assert c["snapshots"] == 1 and c["deltas_applied"] >= 1, c


def test_push_create_zone(cluster, tmp_path):
    """A primary with an empty store gets a zone by `push --create`; replicas load it."""
    cluster.start_primary()
    three_replicas(cluster)
    zone = tmp_path / "new.zone"
    zone.write_text(SMALL_ZONE)
    p = cluster.push_zone(zone)
    assert p.returncode == 1 and "--create" in p.stderr, p.stderr
    check(cluster.push_zone(zone, "--create"))
    cluster.wait_in_sync()
    for r in cluster.replicas.values():
        assert cluster.serial(r) == 2026010100
        assert cluster.counters(r.name)["snapshots"] == 1


def test_push_refused_changes_nothing(cluster, tmp_path):
    cluster.start_primary(zone_text=SMALL_ZONE)
    cluster.start_replica("r1")
    cluster.wait_in_sync()
    before = cluster.digest(cluster.primary)
    bad = tmp_path / "bad.delta"
    bad.write_text(f"$ORIGIN {ORIGIN}\n- nothere NS ns1.example.net.\n")
    p = cluster.push_delta(bad)
    assert p.returncode == 1 and "refused" in p.stderr and p.stderr.strip(), p.stderr
    soa = tmp_path / "soa.delta"
    soa.write_text(f"$ORIGIN {ORIGIN}\n+ @ SOA a. b. 1 2 3 4 5\n")
    p = cluster.push_delta(soa)
    assert p.returncode == 1 and "SOA" in p.stderr, p.stderr
    older = tmp_path / "older.zone"
    older.write_text(SMALL_ZONE.replace("2026010100", "2025010100"))
    p = cluster.push_zone(older)
    assert p.returncode == 1 and "refused" in p.stderr, p.stderr
    broken = tmp_path / "broken.zone"
    broken.write_text(SMALL_ZONE.replace("2026010100", "2026020200") +
                      "deep.example IN TXT \"below a delegation\"\n")
    p = cluster.push_zone(broken)
    assert p.returncode == 1 and "refused" in p.stderr, p.stderr
    assert cluster.digest(cluster.primary) == before
    cluster.wait_in_sync()
    assert cluster.serial(cluster.replicas["r1"]) == 2026010100


def _rrsets_by_name(zone):
    out = {}
    for name, node in zone.nodes.items():
        for rds in node.rdatasets:
            if rds.rdtype in (dns.rdatatype.NS, dns.rdatatype.DS):
                out[(name.to_text(), rds.rdtype)] = {rr.to_text().lower() for rr in rds}
    return out


def test_push_real_root_zone_difference(cluster):
    """The real month of root zone changes (rza-2026072200 -> rza-2026082201), pushed as a
    zone file: the primary publishes only the difference, and every replica answers as the
    newer file says."""
    old = SHARED_ZONES / "rza-2026072200" / "root.zone"
    new = SHARED_ZONES / "rza-2026082201" / "root.zone"
    if not (old.is_file() and new.is_file()):
        pytest.skip(f"../shared/zones absent: {old.parent.parent} holds the rza root zones")
    cluster.start_primary(zone_file=old)
    three_replicas(cluster)
    cluster.wait_in_sync()
    p = check(cluster.push_zone(new))
    assert "2026072200 -> 2026082201" in p.stdout, p.stdout
    changes = int(p.stdout.split(",")[-1].split()[0])
    assert 50 < changes < 500, p.stdout  # a difference, not the whole zone
    cluster.wait_in_sync()
    zo = dns.zone.from_file(str(old), origin=".", relativize=False)
    zn = dns.zone.from_file(str(new), origin=".", relativize=False)
    ro, rn = _rrsets_by_name(zo), _rrsets_by_name(zn)
    changed = sorted(k for k in set(ro) | set(rn) if ro.get(k) != rn.get(k) and k[0] != ".")
    assert len(changed) >= 10
    unchanged = sorted(k for k in rn if ro.get(k) == rn[k] and k[0] != ".")[::60]
    for r in cluster.replicas.values():
        assert cluster.serial(r, ".") == 2026082201
        for name, rtype in changed + unchanged:
            resp = r.query(name, rtype)
            want = rn.get((name, rtype))
            if rtype == dns.rdatatype.DS:
                got = {rr.to_text().lower() for rrs in resp.answer for rr in rrs
                       if rrs.rdtype == rtype}
                assert got == (want or set()), (r.name, name)
            elif want is None:
                assert (resp.rcode() == dns.rcode.NXDOMAIN or not any(
                    rrs.name.to_text() == name for rrs in resp.authority
                    if rrs.rdtype == rtype)), (r.name, name)
            else:
                got = {rr.to_text().lower() for rrs in resp.authority for rr in rrs
                       if rrs.rdtype == rtype}
                assert got == want, (r.name, name, resp)


def test_replica_killed_during_stream(cluster, tmp_path):
    """kill -9 a replica in the middle of 100 pushes of 100 delegations each (10,000 changes),
    restart it: it catches up and converges."""
    cluster.start_primary(zone_text=SMALL_ZONE)
    three_replicas(cluster)
    cluster.wait_in_sync()
    r2 = cluster.replicas["r2"]
    hooks = {30: r2.kill9, 60: lambda: cluster.start_replica("r2")}
    stream(cluster, tmp_path, 0, 100, 100, hooks)
    st = cluster.wait_in_sync()
    c = cluster.counters("r2")
    assert c["catchups"] >= 1 or c["snapshots"] >= 1, c
    assert cluster.serial(cluster.replicas["r1"]) == 2026010100 + 100
    prim = next(n for n in st["nodes"] if n["name"] == "primary")
    assert prim["counters"]["pushes"] == 100


def test_primary_restart(cluster, tmp_path):
    """kill -9 the primary during a stream, start it again on the same store, keep pushing."""
    cluster.start_primary(zone_text=SMALL_ZONE)
    three_replicas(cluster)
    cluster.wait_in_sync()

    def restart():
        cluster.primary.kill9()
        cluster.restart_primary()
    stream(cluster, tmp_path, 0, 40, 50, {20: restart})
    cluster.wait_in_sync()
    assert cluster.serial(cluster.primary) == 2026010100 + 40


def test_gap_recovery_dropped_messages(cluster, tmp_path):
    """A relay drops every third delta on its way to r1: r1 notices the gaps (by serial, or
    from the heartbeat) and catches up from the journal."""
    cluster.start_primary(zone_text=SMALL_ZONE)
    relay = cluster.relay("r1")
    n = {"deltas": 0}

    def drop(env):
        if env["type"] != rp.DELTA:
            return False
        n["deltas"] += 1
        return n["deltas"] % 3 == 0
    relay.drop = drop
    cluster.start_replica("r1", primary_url=relay.url)
    cluster.start_replica("r2")
    cluster.wait_in_sync()
    stream(cluster, tmp_path, 0, 30, 20)
    cluster.wait_in_sync()
    assert relay.dropped >= 5
    c = cluster.counters("r1")
    assert c["gaps"] >= 1 and c["catchups"] >= 1 and c["catchup_deltas"] >= 5, c
    assert cluster.counters("r2")["gaps"] == 0


def test_gap_recovery_paused_replica(cluster, tmp_path):
    """SIGSTOP a replica during a burst of pushes, SIGCONT it: whatever the publisher dropped
    meanwhile is recovered (gaps detected, catch-up), and it converges."""
    cluster.start_primary(zone_text=SMALL_ZONE)
    three_replicas(cluster)
    cluster.wait_in_sync()
    r3 = cluster.replicas["r3"]
    r3.signal(signal.SIGSTOP)
    try:
        stream(cluster, tmp_path, 0, 80, 5000)  # ~40 MB: more than the buffers hold
    finally:
        r3.signal(signal.SIGCONT)
    cluster.wait_in_sync()
    c = cluster.counters("r3")
    assert c["gaps"] >= 1 and (c["catchups"] >= 1 or c["snapshots"] >= 2), c
    assert cluster.counters("r1")["gaps"] == 0


def test_snapshot_after_journal_retention(cluster, tmp_path):
    """A replica offline while more changes than the journal keeps (--journal-keep 5) are made
    recovers with a snapshot."""
    cluster.start_primary(zone_text=SMALL_ZONE, extra=["--journal-keep", "5"])
    three_replicas(cluster)
    cluster.wait_in_sync()
    cluster.replicas["r1"].stop()
    stream(cluster, tmp_path, 0, 12, 10)
    cluster.start_replica("r1")
    cluster.wait_in_sync()
    c = cluster.counters("r1")
    assert c["snapshots"] == 1, c
    assert "not in the journal" in cluster.replicas["r1"].log_text()
    for name in ("r2", "r3"):
        assert cluster.counters(name)["snapshots"] == 1  # only the bootstrap


def _forged_delta(cluster, serial):
    """A well-formed delta adding forged.tld at the replicas' current serial."""
    soa = cluster.primary.query(ORIGIN, "SOA").answer[0]
    old = soa[0].to_digestable()
    new = old[:-20] + struct.pack(">I", serial + 1) + old[-16:]
    ns = rp.wire_name("ns.evil.example.")
    return rp.delta_bytes(ORIGIN, serial, serial + 1, [
        (0, ORIGIN, 6, soa.ttl, old), (1, "forged.tld.", 2, 3600, ns), (1, ORIGIN, 6, soa.ttl, new)])


def test_rejected_messages(cluster, tmp_path):
    """Corrupted, forged (wrong secret), unknown-key, stale and replayed messages, on the
    subscription (through a relay) and on the control socket: rejected, counted, not applied."""
    cluster.start_primary(zone_text=SMALL_ZONE)
    relay = cluster.relay("r1")
    cluster.start_replica("r1", primary_url=relay.url)
    cluster.wait_in_sync()
    check(cluster.push_delta(adds_delta(tmp_path / "one.delta", "one", 1)))
    cluster.wait_in_sync()
    r1 = cluster.replicas["r1"]
    serial = cluster.serial(r1)
    before = cluster.digest(r1)
    delta_env, delta_raw = relay.captured(rp.DELTA)[-1]
    hb_env, hb_raw = relay.captured(rp.HEARTBEAT)[-1]

    forged = _forged_delta(cluster, serial)
    sender = int.from_bytes(os.urandom(8), "big")
    wrong = os.urandom(32)
    altered = bytearray(delta_raw)
    altered[-40] ^= 0x01  # a body byte
    relay.inject(bytes(altered))                                                   # bad_mac
    relay.inject(rp.seal(cluster.key_name, wrong, rp.DELTA, forged, sender, 1))   # bad_mac
    relay.inject(rp.seal("intruder", wrong, rp.DELTA, forged, sender, 2))         # unknown_key
    relay.inject(delta_raw)                                                        # replay
    relay.inject(hb_raw)                                                           # replay
    relay.inject(rp.seal(cluster.key_name, cluster.secret, rp.HEARTBEAT, b"\x00\x00", sender, 3,
                         time_ms=rp.now_ms() - 600_000))                           # stale
    relay.inject(b"TLR1\x01garbage")                                               # malformed
    c = cluster.wait_counters("r1", lambda c: c["rejected_bad_mac"] >= 2 and
                              c["rejected_unknown_key"] >= 1 and c["rejected_replay"] >= 2 and
                              c["rejected_stale"] >= 1 and c["rejected_malformed"] >= 1)
    assert c["rejected_mismatch"] == 0
    assert r1.query("forged.tld.", "NS").rcode() == dns.rcode.NXDOMAIN
    assert cluster.serial(r1) == serial and cluster.digest(r1) == before
    assert "rejected message (bad_mac)" in r1.log_text()

    # the control socket: tldctl with a wrong secret, with an unknown key name
    wrong_key = tmp_path / "wrong.key"
    rp.make_key_file(wrong_key, cluster.key_name)
    p = cluster.push_delta(adds_delta(tmp_path / "x.delta", "x", 1), key=wrong_key)
    assert p.returncode == 1 and "bad_mac" in p.stderr, p.stderr
    other_key = tmp_path / "other.key"
    rp.make_key_file(other_key, "other-key")
    p = cluster.ctl("status", key=other_key)
    assert p.returncode == 1 and "unknown_key" in p.stderr, p.stderr
    # a valid push request sent twice (as nanomsg does when a connection drops before the
    # reply): applied once, the copy answered from the push's record, not applied again
    body = b"\x00" + rp.delta_bytes(ORIGIN, 0, 0, [(1, "replayed.tld.", 2, 3600,
                                                    rp.wire_name("ns.example.net."))])
    sent, reply = rp.request(cluster.ctl_url, cluster.key_name, cluster.secret, rp.PUSH_DELTA,
                             body)
    assert reply and reply["type"] == rp.REPLY, reply
    status = struct.unpack(">i", reply["body"][17:21])[0]
    assert status == 0, reply
    _, reply = rp.request(cluster.ctl_url, "", b"", 0, b"", raw=sent)
    assert reply and reply["type"] == rp.REPLY, reply
    assert struct.unpack(">i", reply["body"][17:21])[0] == 0 and b"applied once" in reply["body"]
    # other requests sent twice are still replays
    sent, reply = rp.request(cluster.ctl_url, cluster.key_name, cluster.secret, rp.STATUS, b"")
    assert reply and reply["type"] == rp.REPLY, reply
    _, reply = rp.request(cluster.ctl_url, "", b"", 0, b"", raw=sent)
    assert reply and reply["type"] == rp.NOTICE and "replay" in reply["text"], reply
    _, reply = rp.request(cluster.ctl_url, cluster.key_name, cluster.secret, rp.STATUS, b"",
                          time_ms=rp.now_ms() - 600_000)
    assert reply and reply["type"] == rp.NOTICE and "stale" in reply["text"], reply
    assert cluster.serial(cluster.primary) == serial + 1
    c = cluster.counters("primary")
    assert c["rejected_bad_mac"] >= 1 and c["rejected_unknown_key"] >= 1, c
    assert c["rejected_replay"] >= 1 and c["rejected_stale"] >= 1, c
    cluster.wait_in_sync()
    assert r1.query("replayed.tld.", "NS").authority


def test_push_sent_again_after_a_restart_is_not_applied_twice(cluster, tmp_path):
    """The primary commits a push and is killed before its reply leaves; nanomsg sends the
    request again to the restarted primary (within the 10 s it accepts requests sent before
    it started). It must not apply the push a second time: the record written with the
    push answers it, with the serial and change count of the first time."""
    cluster.start_primary(zone_text=SMALL_ZONE)
    r1 = cluster.start_replica("r1")
    cluster.wait_in_sync()
    serial = cluster.serial(cluster.primary)
    body = b"\x00" + rp.delta_bytes(ORIGIN, 0, 0, [(1, "once.tld.", 2, 3600,
                                                    rp.wire_name("ns.example.net."))])
    sent, reply = rp.request(cluster.ctl_url, cluster.key_name, cluster.secret, rp.PUSH_DELTA,
                             body)
    assert reply and struct.unpack(">i", reply["body"][17:21])[0] == 0, reply
    first = struct.unpack(">III", reply["body"][21:33])  # serial from, to, changes
    assert first[:2] == (serial, serial + 1), first
    cluster.primary.kill9()
    cluster.restart_primary()
    _, reply = rp.request(cluster.ctl_url, "", b"", 0, b"", raw=sent)
    assert reply and reply["type"] == rp.REPLY, reply
    assert struct.unpack(">i", reply["body"][17:21])[0] == 0 and b"applied once" in reply["body"]
    assert struct.unpack(">III", reply["body"][21:33]) == first, reply
    assert cluster.serial(cluster.primary) == serial + 1  # not applied again
    cluster.wait_in_sync()
    assert cluster.serial(r1) == serial + 1


def test_push_dname_served_everywhere(cluster, tmp_path):
    """A DNAME added by a delta is applied (RFC 6672) on the primary and on every replica,
    without a re-import: names below it get the DNAME and the synthesized CNAME."""
    cluster.start_primary(zone_text=SMALL_ZONE)
    r1 = cluster.start_replica("r1")
    cluster.wait_in_sync()
    delta = tmp_path / "dname.delta"
    delta.write_text(f"$ORIGIN {ORIGIN}\n+ redir 600 DNAME glued.{ORIGIN}\n")
    check(cluster.push_delta(delta))
    cluster.wait_in_sync()
    for node in (cluster.primary, r1):
        r = node.query(f"ns.redir.{ORIGIN}", "A")
        assert r.rcode() == dns.rcode.NOERROR, r
        texts = [rr.to_text() for rr in r.answer]
        assert texts[:2] == [f"redir.{ORIGIN} 600 IN DNAME glued.{ORIGIN}",
                             f"ns.redir.{ORIGIN} 600 IN CNAME ns.glued.{ORIGIN}"], r
        # ns.glued is glue below the glued delegation: the chain ends in its referral
        assert [rr.to_text() for rr in r.authority] == [
            f"glued.{ORIGIN} 3600 IN NS ns.glued.{ORIGIN}"], r


def sp_frame_header(proto, length):
    """A nanomsg TCP connection's opening (the SP header naming protocol proto) and the
    8-byte length of a first message that is never sent."""
    return b"\x00SP\x00" + struct.pack("!HH", proto, 0) + struct.pack("!Q", length)


def test_oversized_frame_does_not_crash_the_primary(cluster, tmp_path):
    """Before any authentication, nanomsg allocates a whole message as soon as its length
    arrives. Lengths of 2^62 and 300 MiB (over the 256 MiB --max-message) from an
    unauthenticated peer on the control socket are refused by dropping the connection:
    the primary stays up and takes pushes. tldctl says why before sending a push over its
    --max-message."""
    cluster.start_primary(zone_text=SMALL_ZONE)
    cluster.start_replica("r1")
    cluster.wait_in_sync()
    host, port = cluster.ctl_url.removeprefix("tcp://").rsplit(":", 1)
    for length in (1 << 62, 300 << 20):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(sp_frame_header(48, length))  # 48: NN_REQ, the peer a REP accepts
            s.settimeout(5)
            try:
                while s.recv(4096):  # the primary's SP header, then it closes
                    pass
            except (ConnectionResetError, socket.timeout):
                pass
    assert cluster.primary.alive()
    check(cluster.push_delta(adds_delta(tmp_path / "after.delta", "after", 1)))
    cluster.wait_in_sync()
    big = adds_delta(tmp_path / "big.delta", "big", 5000)  # about 200 KB of records
    p = cluster.ctl("push", "--delta", big, "--max-message", "64K")
    assert p.returncode == 1 and "over the 65536 a node accepts" in p.stderr, describe(p)
    assert cluster.primary.alive()


def test_a_registry_of_many_zones(cluster, tmp_path):
    """A registry runs hundreds of TLDs from one cluster: a primary with 300 zones (more than
    the 64 replicas used to track) brings a new replica fully in sync, every zone served,
    and a change to the last zone reaches it."""
    n = 300
    store = tmp_path / "primary"
    for i in range(n):
        z = tmp_path / f"z{i}.zone"
        z.write_text(SMALL_ZONE.replace("tld.", f"tld{i}."))
        check(run(binary("tldctl"), "import", "--store", store, "--quiet", z))
    cluster.start_primary()
    r1 = cluster.start_replica("r1")
    st = cluster.wait_in_sync(timeout=120)
    rows = [z for node in st["nodes"] if node["name"] == "r1" for z in node["zones"]]
    assert len(rows) == n, len(rows)
    for i in (0, n // 2, n - 1):
        r = r1.query(f"tld{i}.", "SOA")
        assert r.rcode() == dns.rcode.NOERROR and r.answer, (i, r)
    check(cluster.push_delta(adds_delta(tmp_path / "last.delta", "last", 1, f"tld{n - 1}.")))
    cluster.wait_in_sync(timeout=60)
    r = r1.query(f"x.dlast-0.tld{n - 1}.", "A")
    assert any(rr.rdtype == dns.rdatatype.NS for rr in r.authority), r


def test_zone_limit_refused_at_the_primary(cluster, tmp_path):
    """At 1024 zones (TLD_REPL_MAX_ZONES) the primary refuses `push --create` of another, with
    a message, and changes nothing; a push to an existing zone still goes through."""
    store = tmp_path / "primary"
    for i in range(1024):
        z = tmp_path / "z.zone"
        z.write_text(SMALL_ZONE.replace("tld.", f"tld{i}."))
        check(run(binary("tldctl"), "import", "--store", store, "--quiet", z))
    cluster.start_primary()
    time.sleep(0.5)  # a heartbeat has counted the zones
    extra = tmp_path / "extra.zone"
    extra.write_text(SMALL_ZONE.replace("tld.", "one-too-many."))
    p = cluster.push_zone(extra, "--create")
    assert p.returncode == 1 and "1024 zones" in p.stderr, describe(p)
    assert cluster.primary.query("one-too-many.", "SOA").rcode() == dns.rcode.REFUSED
    check(cluster.push_delta(adds_delta(tmp_path / "d.delta", "d", 1, "tld7.")))


def test_catchup_that_keeps_timing_out_gives_way_to_a_snapshot(cluster, tmp_path):
    """r1 misses a large delta (the relay drops it) and its catch-up request cannot be
    answered in time (--request-timeout 1 ms against a reply of several MB): after three
    timeouts in a row it asks for a snapshot instead of retrying the catch-up forever."""
    cluster.start_primary(zone_text=SMALL_ZONE)
    relay = cluster.relay("r1")
    relay.drop = lambda env: env["type"] == rp.DELTA
    r1 = cluster.start_replica("r1", primary_url=relay.url)
    cluster.wait_in_sync()  # the zone is in r1's store; now requests cannot succeed
    r1.stop()
    r1 = cluster.start_replica("r1", primary_url=relay.url, extra=["--request-timeout", "1"])
    check(cluster.push_delta(adds_delta(tmp_path / "big.delta", "big", 40000)))
    deadline = time.monotonic() + 60
    while "catch-up timed out repeatedly" not in r1.log_text():
        assert time.monotonic() < deadline, r1.log_text()[-3000:]
        time.sleep(0.2)
    log = r1.log_text()
    assert "snapshot needed: catch-up timed out repeatedly" in log, log[-3000:]
    assert log.count("re-sync failed") >= 3
    assert r1.alive()
