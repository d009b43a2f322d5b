"""Hardening: what tldnode does under abuse and when resources run out.

- Response rate limiting against a flood from many spoofed sources (loopback accepts any
  127/8 source address, so each socket binds its own), with the figures printed
  (responses/s per /24 against the configured limit; run with -s to see them).
- DNS Cookies: a valid server cookie exempts a client from rate limiting, an altered one
  does not; nodes sharing --cookie-secret-file accept each other's cookies; a cookie made
  with the previous secret stays valid after a rotation.
- TCP limits: connections per worker and per client, idle and half-sent messages,
  oversize and truncated frames.
- A corrupt or foreign store is refused at start with one line.
- A replica that runs out of space (a small tmpfs, or a small --map-size) stops applying,
  keeps serving its last consistent serial, reports it, and resumes and converges once
  there is room again.
"""

import base64
import json
import os
import random
import re
import select
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from conftest import (SAMPLE_ZONE, check, free_port, import_zone, list_zones, read_frame, run,
                      store_digest)

SAMPLE = "sample."
COOKIE = 10  # EDNS option code


# ---- DNS messages, built and read without dnspython on the hot path ----

def query_wire(name, rtype="A", cookie=None, qid=0):
    """A query (RD clear) with EDNS; cookie: the COOKIE option data to send."""
    opts = [dns.edns.GenericOption(COOKIE, cookie)] if cookie is not None else []
    q = dns.message.make_query(name, rtype, use_edns=0, options=opts)
    q.flags &= ~dns.flags.RD
    q.id = qid
    return q.to_wire()


def with_id(wire, qid):
    return struct.pack("!H", qid & 0xFFFF) + wire[2:]


def is_tc(wire):
    return len(wire) >= 4 and bool(wire[2] & 0x02)


def response_cookie(wire):
    """The COOKIE option data of a response, or None."""
    m = dns.message.from_wire(wire)
    for o in m.options:
        if o.otype == COOKIE:
            return o.data
    return None


def udp_socket(src, rcvbuf=4 << 20):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.bind((src, 0))
    s.setblocking(False)
    return s


def drain(socks, counts, timeout):
    """Reads every datagram waiting (waiting up to timeout for the first) and counts
    full and truncated responses per socket."""
    r, _, _ = select.select(socks, [], [], timeout)
    for s in r:
        while True:
            try:
                data = s.recv(65535)
            except BlockingIOError:
                break
            c = counts[s]
            c["tc" if is_tc(data) else "full"] += 1


def burst(port, src, wires, wait=1.0):
    """Sends every query in wires from src as fast as possible, then collects responses for
    wait seconds. Returns (full, truncated, the responses)."""
    s = udp_socket(src)
    try:
        for i, w in enumerate(wires):
            s.sendto(with_id(w, i), ("127.0.0.1", port))
        got = []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            r, _, _ = select.select([s], [], [], max(0.0, deadline - time.monotonic()))
            if not r:
                break
            while True:
                try:
                    got.append(s.recv(65535))
                except BlockingIOError:
                    break
            if len(got) == len(wires):
                break
    finally:
        s.close()
    full = sum(1 for g in got if not is_tc(g))
    return full, len(got) - full, got


# ---- (a) rate limiting against a spoofed flood ----

RRL_RATE, RRL_SLIP = 20, 2


def test_rrl_flood_from_spoofed_sources(tldnode_server, sample_store):
    """Three /24s (four source addresses each) flood 2000 queries per address over 2 s, two of
    them the same positive name, one random names of one zone (NXDOMAIN: one bucket, the
    zone). Per /24, full answers stay near the rate (plus the one-second burst) and one in
    RRL_SLIP of the others comes back truncated; a legitimate client in another /24 gets every
    answer. Prints the figures."""
    node = tldnode_server(sample_store, "--rrl-rate", str(RRL_RATE), "--rrl-slip", str(RRL_SLIP),
                          "--rrl-limit-loopback", "--workers", "2", listen=["127.0.0.1"])
    per_source, duration = 2000, 2.0
    floods = {"127.0.10": "www.sample.", "127.0.11": "www.sample.", "127.0.12": None}
    socks, prefix_of, counts = [], {}, {}
    for prefix in floods:
        for host in range(1, 5):
            s = udp_socket(f"{prefix}.{host}")
            socks.append(s)
            prefix_of[s] = prefix
            counts[s] = {"sent": 0, "full": 0, "tc": 0}
    legit = udp_socket("127.0.99.7")
    counts[legit] = {"sent": 0, "full": 0, "tc": 0}
    positive = query_wire("www.sample.")
    rng = random.Random(7)
    nx = [query_wire(f"nx{rng.getrandbits(40):x}.sample.") for _ in range(512)]
    legit_q = query_wire("sample.", "NS")
    dest = ("127.0.0.1", node.port)
    start = time.monotonic()
    for i in range(per_source):
        target = start + duration * i / per_source
        while True:
            left = target - time.monotonic()
            drain(socks + [legit], counts, max(0.0, left))
            if left <= 0:
                break
        for s in socks:
            name = floods[prefix_of[s]]
            s.sendto(with_id(positive if name else nx[i % len(nx)], i), dest)
            counts[s]["sent"] += 1
        if i % 100 == 0:  # 20 queries over the 2 s
            legit.sendto(with_id(legit_q, i), dest)
            counts[legit]["sent"] += 1
    elapsed = time.monotonic() - start
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        drain(socks + [legit], counts, 0.05)
    for s in socks + [legit]:
        s.close()

    print(f"\nRRL flood: --rrl-rate {RRL_RATE} --rrl-slip {RRL_SLIP}, {len(socks)} spoofed "
          f"sources in {len(floods)} /24s, {per_source} queries each over {elapsed:.2f} s")
    failures = []
    for prefix, name in floods.items():
        cs = [counts[s] for s in socks if prefix_of[s] == prefix]
        sent = sum(c["sent"] for c in cs)
        full = sum(c["full"] for c in cs)
        tc = sum(c["tc"] for c in cs)
        # The bucket starts full (one second's worth), then refills at the rate.
        want_full = RRL_RATE * elapsed + RRL_RATE
        want_tc = (sent - want_full) / RRL_SLIP
        print(f"  {prefix}.0/24 ({name or 'NXDOMAIN, random names'}): {sent / elapsed:.0f} q/s "
              f"-> full {full / elapsed:.1f}/s (limit {RRL_RATE}/s + {RRL_RATE} burst: "
              f"expected {want_full / elapsed:.1f}/s), truncated {tc / elapsed:.1f}/s "
              f"(1 in {RRL_SLIP} of the excess: expected {want_tc / elapsed:.1f}/s), "
              f"dropped {(sent - full - tc) / elapsed:.1f}/s; "
              f"{(full + tc) / sent:.1%} of queries answered")
        if not 0.7 * RRL_RATE * elapsed <= full <= 1.5 * want_full + 5:
            failures.append(f"{prefix}: {full} full answers, expected about {want_full:.0f}")
        if not 0.8 * want_tc <= tc <= 1.1 * want_tc + 5:
            failures.append(f"{prefix}: {tc} truncated answers, expected about {want_tc:.0f}")
    lc = counts[legit]
    print(f"  127.0.99.0/24 (legitimate): {lc['sent']} queries, {lc['full']} full answers, "
          f"{lc['tc']} truncated")
    assert lc["full"] == lc["sent"] == 20, lc
    assert not failures, "\n".join(failures)


# ---- (b) DNS Cookies ----

def secret_file(path, *secrets):
    Path(path).write_text("# current, then previous\n" + "".join(s.hex() + "\n" for s in secrets))
    return path


def rrl_node(start, store, secrets_path):
    """A node that drops everything over 5 responses/s per /24 (slip 0), loopback included."""
    return start(store, "--rrl-rate", "5", "--rrl-slip", "0", "--rrl-limit-loopback",
                 "--workers", "1", "--cookie-secret-file", secrets_path, listen=["127.0.0.1"])


def get_cookie(port, src, client_cookie):
    """Client cookie only -> the server's cookie (client cookie + 16 bytes)."""
    full, _, got = burst(port, src, [query_wire(SAMPLE, "SOA", client_cookie)])
    assert full == 1, "no answer to the first query"
    c = response_cookie(got[0])
    assert c is not None and len(c) == 24 and c[:8] == client_cookie, c
    return c


def flood_with(port, src, cookie, n=200):
    """n identical queries sent at once with cookie; returns the full answers."""
    full, tc, got = burst(port, src, [query_wire("www.sample.", "A", cookie)] * n)
    assert tc == 0  # slip 0
    return full, got


def test_cookie_exempts_from_rrl(tldnode_server, sample_store, tmp_path):
    s1 = os.urandom(16)
    node = rrl_node(tldnode_server, sample_store, secret_file(tmp_path / "secrets", s1))
    src, cc = "127.0.30.1", os.urandom(8)
    cookie = get_cookie(node.port, src, cc)
    full, got = flood_with(node.port, src, cookie)
    assert full == 200, f"a valid server cookie: {full} of 200 answered"
    for g in got[:5]:  # every response carries a (fresh) server cookie for this client
        c = response_cookie(g)
        assert c is not None and len(c) == 24 and c[:8] == cc
    altered = cookie[:-1] + bytes([cookie[-1] ^ 0x01])
    full, _ = flood_with(node.port, src, altered)
    assert full <= 20, f"an altered server cookie: {full} of 200 answered (rate 5/s)"
    full, _ = flood_with(node.port, "127.0.31.1", cc)  # client cookie only: limited too
    assert full <= 20, f"a client cookie only: {full} of 200 answered"
    other_client = get_cookie(node.port, "127.0.32.1", cc)  # the hash covers the address
    full, _ = flood_with(node.port, "127.0.33.1", other_client)
    assert full <= 20, f"another address's cookie: {full} of 200 answered"


def no_question(port, options=None, edns=True):
    """A query with QDCOUNT 0 (and an OPT with these raw options, unless edns is False);
    returns the response's wire form."""
    opt = b""
    if edns:
        raw = b"".join(struct.pack("!HH", code, len(data)) + data for code, data in options or ())
        opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, len(raw)) + raw
    pkt = struct.pack("!HHHHHH", 0x4242, 0, 0, 0, 0, 1 if edns else 0) + opt
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(pkt, ("127.0.0.1", port))
        return s.recv(4096)


@pytest.mark.parametrize("cookies", [True, False], ids=["cookies", "no-cookies"])
def test_cookie_only_query(tldnode_server, sample_store, cookies):
    """RFC 7873 5.4: a query with no question and a COOKIE option holding only a client
    cookie gets NOERROR, no records, and the client cookie with a fresh server cookie.
    Without a COOKIE (or with cookies off) no question stays FORMERR, with EDNS when the
    query had it."""
    node = tldnode_server(sample_store, *([] if cookies else ["--no-cookies"]))
    cc = os.urandom(8)
    wire = no_question(node.port, [(COOKIE, cc)])
    r = dns.message.from_wire(wire)
    assert not r.question and not r.answer and not r.authority
    if cookies:
        assert r.rcode() == dns.rcode.NOERROR, r
        c = response_cookie(wire)
        assert c is not None and len(c) == 24 and c[:8] == cc, c
    else:
        assert r.rcode() == dns.rcode.FORMERR and response_cookie(wire) is None, r
    r = dns.message.from_wire(no_question(node.port))
    assert r.rcode() == dns.rcode.FORMERR and r.edns == 0, r
    r = dns.message.from_wire(no_question(node.port, edns=False))
    assert r.rcode() == dns.rcode.FORMERR and r.edns == -1, r
    # A malformed COOKIE (5 bytes): FORMERR as before.
    r = dns.message.from_wire(no_question(node.port, [(COOKIE, cc[:5])]))
    assert r.rcode() == dns.rcode.FORMERR, r


def test_cookie_shared_secret_and_rotation(tldnode_server, sample_store, tmp_path):
    """Nodes with the same secret accept each other's cookies; after a rotation (file:
    new secret, then the old one) cookies made with the old secret stay valid and new ones
    are made with the new secret; a node that knows only one secret refuses the other's."""
    old, new = os.urandom(16), os.urandom(16)
    a = rrl_node(tldnode_server, sample_store, secret_file(tmp_path / "a", old))
    b = rrl_node(tldnode_server, sample_store, secret_file(tmp_path / "b", old))
    rotated = rrl_node(tldnode_server, sample_store, secret_file(tmp_path / "c", new, old))
    only_new = rrl_node(tldnode_server, sample_store, secret_file(tmp_path / "d", new))
    src, cc = "127.0.40.1", os.urandom(8)
    from_a = get_cookie(a.port, src, cc)
    full, _ = flood_with(b.port, src, from_a)
    assert full == 200, f"node b, same secret as a: {full} of 200 answered"
    full, got = flood_with(rotated.port, src, from_a)
    assert full == 200, f"rotated node, a's cookie (previous secret): {full} of 200 answered"
    from_rotated = response_cookie(got[-1])
    assert from_rotated[:8] == cc and from_rotated[16:] != from_a[16:]
    full, _ = flood_with(only_new.port, src, from_rotated)
    assert full == 200, f"a cookie the rotated node made (new secret): {full} of 200 answered"
    full, _ = flood_with(only_new.port, "127.0.41.1", get_cookie(a.port, "127.0.41.1", cc))
    assert full <= 20, f"a node without the old secret: {full} of 200 answered"


# ---- (c) TCP limits ----

def tcp_connect(port, src="127.0.0.1", timeout=2.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def tcp_exchange(s, wire):
    """Sends one framed query; returns the response, or None when the server closed the
    connection (EOF or reset) instead of answering."""
    try:
        s.sendall(struct.pack("!H", len(wire)) + wire)
        return read_frame(s)
    except (ConnectionResetError, BrokenPipeError):
        return None


def served(port, src="127.0.0.1", tries=20):
    """A connection the server answers on (retrying briefly: the server may still be
    closing an earlier connection of the same client)."""
    for _ in range(tries):
        s = tcp_connect(port, src)
        r = tcp_exchange(s, query_wire(SAMPLE, "SOA", qid=1))
        if r is not None:
            return s
        s.close()
        time.sleep(0.1)
    raise AssertionError(f"no TCP connection from {src} was served")


def refused(port, src="127.0.0.1"):
    s = tcp_connect(port, src)
    try:
        return tcp_exchange(s, query_wire(SAMPLE, "SOA", qid=2)) is None
    finally:
        s.close()


def wait_closed(s, timeout, start=None):
    """Seconds from start (default: now) until the server closes s (EOF or reset), or None
    after timeout."""
    start = time.monotonic() if start is None else start
    s.settimeout(timeout)
    try:
        while True:
            data = s.recv(65535)
            if not data:
                return time.monotonic() - start
    except (ConnectionResetError, BrokenPipeError):
        return time.monotonic() - start
    except socket.timeout:
        return None


def test_tcp_keepalive_option(tldnode_server, sample_store):
    """RFC 7828: a query over TCP with edns-tcp-keepalive gets the option back with the idle
    timeout in units of 100 ms (--tcp-idle-ms 5000: 50); over UDP the option is ignored; a
    query without it gets none."""
    node = tldnode_server(sample_store, "--tcp-idle-ms", "5000")
    ka = dns.edns.GenericOption(11, b"")

    def keepalive(r):
        return [o.to_wire() if hasattr(o, "to_wire") else o.data for o in r.options
                if o.otype == 11]

    q = dns.message.make_query("sample.", "SOA", use_edns=0, options=[ka])
    r = dns.query.tcp(q, "127.0.0.1", port=node.port, timeout=2)
    assert r.rcode() == dns.rcode.NOERROR and keepalive(r) == [b"\x00\x32"], r
    r = dns.query.udp(q, "127.0.0.1", port=node.port, timeout=2)
    assert r.rcode() == dns.rcode.NOERROR and keepalive(r) == [], r
    q = dns.message.make_query("sample.", "SOA", use_edns=0)
    r = dns.query.tcp(q, "127.0.0.1", port=node.port, timeout=2)
    assert keepalive(r) == [], r


def test_tcp_max_conns(tldnode_server, sample_store):
    node = tldnode_server(sample_store, "--workers", "1", "--tcp-max-conns", "3",
                          listen=["127.0.0.1"])
    conns = [served(node.port) for _ in range(3)]
    assert refused(node.port), "a 4th connection was served (--tcp-max-conns 3, one worker)"
    assert refused(node.port, "127.0.0.2"), "the cap is per worker, whatever the client"
    for s in conns:  # the three are still served
        assert tcp_exchange(s, query_wire("www.sample.")) is not None
    conns.pop().close()
    conns.append(served(node.port))  # room again once one closed
    for s in conns:
        s.close()


def test_tcp_max_per_client(tldnode_server, sample_store):
    node = tldnode_server(sample_store, "--tcp-max-per-client", "2", listen=["127.0.0.1"])
    conns = [served(node.port) for _ in range(2)]
    assert refused(node.port), "a 3rd connection from 127.0.0.1 was served (cap 2)"
    other = served(node.port, "127.0.0.2")  # another client is not affected
    assert tcp_exchange(other, query_wire("www.sample.")) is not None
    for s in conns + [other]:
        s.close()


def test_tcp_cap_slot_cannot_be_aimed_at(tldnode_server, sample_store):
    """Under the unkeyed hash the per-client cap used, 127.0.10.191 shared 127.0.0.1's
    slot: holding the cap's connections from it shut 127.0.0.1 out of TCP. The slot hash is
    keyed per process now (a chance collision is 1 in 4096)."""
    node = tldnode_server(sample_store, "--tcp-max-per-client", "4", listen=["127.0.0.1"])
    held = [served(node.port, "127.0.10.191") for _ in range(4)]
    victim = served(node.port, "127.0.0.1")
    assert tcp_exchange(victim, query_wire("www.sample.")) is not None
    for s in held + [victim]:
        s.close()


def test_tcp_idle_and_half_sent(tldnode_server, sample_store):
    """--tcp-idle-ms 300: a silent connection, a half-sent message and a client dripping a
    message byte by byte (only a complete query restarts the clock) are all closed after about
    300 ms; an active connection is not."""
    node = tldnode_server(sample_store, "--tcp-idle-ms", "300", listen=["127.0.0.1"])
    q = query_wire("www.sample.")
    frame = struct.pack("!H", len(q)) + q
    t0 = time.monotonic()
    silent = tcp_connect(node.port)
    half = tcp_connect(node.port)
    half.sendall(frame[: len(frame) // 2])
    t_silent, t_half = wait_closed(silent, 5, t0), wait_closed(half, 5, t0)
    assert t_silent is not None and 0.15 <= t_silent < 3, t_silent
    assert t_half is not None and 0.15 <= t_half < 3, t_half
    drip = tcp_connect(node.port)
    start = time.monotonic()
    closed_at = None
    for b in frame * 3:  # would take 10 s at 100 ms a byte
        try:
            drip.sendall(bytes([b]))
        except (BrokenPipeError, ConnectionResetError):
            closed_at = time.monotonic() - start
            break
        r, _, _ = select.select([drip], [], [], 0.1)
        if r:
            try:
                if drip.recv(65535) == b"":
                    closed_at = time.monotonic() - start
                    break
            except ConnectionResetError:
                closed_at = time.monotonic() - start
                break
    assert closed_at is not None and closed_at < 3, "a dripping client kept its connection"
    active = tcp_connect(node.port)
    for _ in range(8):  # 8 x 100 ms: well past the idle time, a query every 100 ms
        assert tcp_exchange(active, q) is not None
        time.sleep(0.1)
    for s in (silent, half, drip, active):
        s.close()


def test_tcp_oversize_and_truncated_frames(tldnode_server, sample_store):
    node = tldnode_server(sample_store, listen=["127.0.0.1"])
    rng = random.Random(65535)
    garbage = bytearray(rng.getrandbits(8) for _ in range(65535))
    garbage[0:4] = b"\x12\x34\x00\x00"  # id 0x1234, QR=0, opcode QUERY: worth an answer
    s = tcp_connect(node.port, timeout=5)
    r = tcp_exchange(s, bytes(garbage))
    if r is not None:  # answered: FORMERR for our id, and the connection still works
        m = dns.message.from_wire(r, question_only=True)
        assert m.id == 0x1234 and m.rcode() == dns.rcode.FORMERR, m
        assert tcp_exchange(s, query_wire("www.sample.")) is not None
    s.close()
    # A length prefix announcing more than is sent, then the client closes its side.
    s = tcp_connect(node.port)
    s.sendall(struct.pack("!H", 512) + b"\x00" * 100)
    s.shutdown(socket.SHUT_WR)
    t = wait_closed(s, 5)
    assert t is not None and t < 2, "incomplete frame then EOF: not closed promptly"
    s.close()
    # A zero-length frame closes the connection.
    s = tcp_connect(node.port)
    s.sendall(b"\x00\x00")
    assert wait_closed(s, 5) is not None
    s.close()
    # The server is unharmed.
    s = served(node.port)
    s.close()
    assert node.alive()


# ---- (d) stores that are not ours ----

def make_foreign_env(path):
    from test_cli import make_lmdb  # ctypes over liblmdb: another program's environment
    make_lmdb(path, {None: {b"hello": b"world"}})


def corrupt_pages(tldctl, path):
    """A real store whose pages after the two meta pages are overwritten (seeded)."""
    import_zone(tldctl, path, SAMPLE_ZONE, "--quiet")
    data = path / "data.mdb"
    size = data.stat().st_size
    rng = random.Random(1873)
    with open(data, "r+b") as f:
        f.seek(8192)
        f.write(bytes(rng.getrandbits(8) for _ in range(size - 8192)))


STORES = {
    "random-bytes": lambda tldctl, p: (p / "data.mdb").write_bytes(
        random.Random(9).randbytes(65536)),
    "zero-bytes": lambda tldctl, p: (p / "data.mdb").write_bytes(bytes(65536)),
    "truncated": lambda tldctl, p: (p / "data.mdb").write_bytes(b"\x00" * 100),
    "corrupt-pages": corrupt_pages,
    "other-application": lambda tldctl, p: make_foreign_env(p),
}


DAMAGED_ZONE = """$ORIGIN tld.
$TTL 3600
@ SOA ns1.nic hostmaster.nic 2024010101 1800 900 604800 3600
@ NS ns1.nic
ns1.nic A 192.0.2.1
victim NS ns1.damaged-example.net.
healthy NS ns1.example.net.
"""


def test_damaged_record_in_store_gives_servfail(tldctl, tldnode_server, tmp_path):
    """A record whose stored RDATA cannot be written (bytes damaged on disk, or a store from
    before import checked RDATA layouts) makes that answer an empty SERVFAIL, not TC=1
    (which would send the client to TCP for the same failure); other names are unaffected."""
    zone = tmp_path / "d.zone"
    zone.write_text(DAMAGED_ZONE)
    store = tmp_path / "store"
    import_zone(tldctl, store, zone)
    data = (store / "data.mdb").read_bytes()
    target = b"\x0fdamaged-example\x03net\x00"
    assert data.count(target) >= 1
    # The first label now claims 63 bytes: the NS target runs past its RDATA.
    (store / "data.mdb").write_bytes(data.replace(target, b"\x3f" + target[1:]))
    node = tldnode_server(store)
    for tcp in (False, True):
        q = dns.message.make_query("www.victim.tld.", "A")
        r = (dns.query.tcp if tcp else dns.query.udp)(q, "127.0.0.1", port=node.port, timeout=2)
        assert r.rcode() == dns.rcode.SERVFAIL, r
        assert not r.flags & dns.flags.TC and not r.answer and not r.authority, r
        r = (dns.query.tcp if tcp else dns.query.udp)(
            dns.message.make_query("www.healthy.tld.", "A"), "127.0.0.1", port=node.port,
            timeout=2)
        assert r.rcode() == dns.rcode.NOERROR and r.authority, r


@pytest.mark.parametrize("role", ["serve", "replica"])
@pytest.mark.parametrize("kind", STORES, ids=STORES.keys())
def test_foreign_or_corrupt_store_refused(tldctl, tldnode, tmp_path, kind, role):
    if not SAMPLE_ZONE.is_file():
        pytest.skip("sample zone absent")
    store = tmp_path / "store"
    store.mkdir()
    STORES[kind](tldctl, store)
    before = (store / "data.mdb").read_bytes()
    args = [tldnode, "--store", store, "--listen", f"127.0.0.1:{free_port()}", "--workers", "1"]
    if role == "replica":  # opened writable, created if absent: must not be overwritten
        key = tmp_path / "key"
        key.write_text("hmac-sha256:k:" + base64.b64encode(b"k" * 32).decode() + "\n")
        key.chmod(0o600)
        args += ["--role", "replica", "--key", key, "--primary", "tcp://127.0.0.1:1",
                 "--control", "tcp://127.0.0.1:2"]
    p = run(args, timeout=30)
    lines = [l for l in (p.stdout + p.stderr).splitlines() if l.strip()]
    assert p.returncode == 1, f"exit {p.returncode}\n{p.stdout}{p.stderr}"
    assert len(lines) == 1, f"expected one line:\n{p.stdout}{p.stderr}"
    assert "not a tldnode store" in lines[0] and str(store) in lines[0], lines[0]
    assert (store / "data.mdb").read_bytes() == before


# ---- (e) a replica out of space ----

def _cluster_helpers():
    from test_replication import SMALL_ZONE, Cluster, adds_delta
    return SMALL_ZONE, Cluster, adds_delta


@pytest.fixture
def cluster(tmp_path):
    _, Cluster, _ = _cluster_helpers()
    c = Cluster(tmp_path)
    yield c
    c.teardown()


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 6 MiB tmpfs mounted at tmp_path/r1 (the store directory of replica r1)."""
    yield from mount_small_tmpfs(tmp_path / "r1")


@pytest.fixture
def primary_tmpfs(tmp_path):
    """A 6 MiB tmpfs mounted at tmp_path/primary (the primary's store directory)."""
    yield from mount_small_tmpfs(tmp_path / "primary")


def mount_small_tmpfs(mnt):
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6M,mode=0755", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): "
                    f"{p.stderr.strip()}")
    yield mnt
    if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def digest_line(cluster, node):
    """(serial, rrsets, sha256) of the zone in node's store."""
    out = cluster.digest(node).split("\n")[0].split("\t")
    return int(out[1].split()[1]), int(out[2].split()[1]), out[3].split()[1]


def node_json(cluster, name):
    return cluster.node_status(name) or {}


PER_PUSH = 300


def fill_until_stalled(cluster, tmp_path, replica, max_pushes=150):
    """Pushes PER_PUSH delegations at a time until the replica reports a stall; returns the
    number of pushes."""
    _, _, adds_delta = _cluster_helpers()
    for i in range(max_pushes):
        check(cluster.push_delta(adds_delta(tmp_path / f"p{i}.delta", i, PER_PUSH)))
        if "applying stopped" in replica.log_text():
            return i + 1
    raise AssertionError(f"no stall after {max_pushes} pushes\n{cluster.logs()}")


def check_stalled(cluster, tmp_path, replica, pushes, base, reason):
    """The stalled replica serves an older serial, consistently (each push whole or absent),
    and says why: in its log (once) and in `tldctl status`. base: (serial, RRsets) before the
    pushes."""
    base, base_rrsets = base
    _, _, adds_delta = _cluster_helpers()
    for i in range(pushes, pushes + 3):  # more changes while it is stalled
        check(cluster.push_delta(adds_delta(tmp_path / f"p{i}.delta", i, PER_PUSH)))
    pushes += 3
    time.sleep(1.5)  # several retries (every 500 ms)
    primary_serial = cluster.serial(cluster.primary)
    assert primary_serial == base + pushes
    deadline = time.monotonic() + 20
    while True:  # the status table shows the stall
        n = node_json(cluster, replica.name)
        c = n.get("counters", {})
        if c.get("stalled_no_space") == 1 and not n.get("in_sync", True):
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"status does not show the stall: {json.dumps(n)}")
        time.sleep(0.2)
    assert c["no_space_stalls"] >= 1 and c["snapshots"] == 1, c  # never escalated
    served = cluster.serial(replica)
    assert base < served < primary_serial, (served, primary_serial)
    # Consistent: exactly the pushes up to the served serial, each whole.
    serial, rrsets, _ = digest_line(cluster, replica)
    assert serial == served
    applied = served - base
    assert rrsets == base_rrsets + PER_PUSH * applied, (rrsets, applied)
    for i in range(pushes):
        for j in (0, PER_PUSH - 1):
            r = replica.query(f"x.d{i}-{j}.tld.", "A")
            delegated = any(rr.rdtype == 2 for rr in r.authority) and r.rcode() == 0
            assert delegated == (i < applied), (i, j, served, r)
    log = replica.log_text()
    stops = [l for l in log.splitlines() if "applying stopped" in l]
    assert len(stops) == 1 and reason in stops[0], stops  # logged once
    print(f"\n{replica.name}: stalled at serial {served} (primary {primary_serial}): "
          f"{stops[0].split(': ', 2)[-1]}")
    return pushes


def zone_stalled_gauge(metrics_port, zone="tld."):
    """tldnode_repl_zone_stalled{zone} from a node's metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    m = re.search(r'^tldnode_repl_zone_stalled\{zone="%s"\} (\d+)$' % re.escape(zone), text,
                  re.M)
    assert m, text[-2000:]
    return int(m.group(1))


def start_small_cluster(cluster, replica_extra=()):
    SMALL_ZONE, _, _ = _cluster_helpers()
    cluster.start_primary(zone_text=SMALL_ZONE)
    r1 = cluster.start_replica("r1", extra=replica_extra)
    cluster.wait_in_sync()
    serial, rrsets, _ = digest_line(cluster, r1)
    return r1, (serial, rrsets)


def test_replica_disk_full(cluster, small_tmpfs, tmp_path):
    """The replica's store is on a 6 MiB tmpfs, filled by a ballast file and pushes: it stops
    applying (ENOSPC at commit: nothing written), keeps answering from its last serial, logs it
    once and shows it in `tldctl status`; once the ballast is removed it resumes and
    converges."""
    mport = free_port()
    r1, base = start_small_cluster(cluster, ["--metrics", f"127.0.0.1:{mport}"])
    assert zone_stalled_gauge(mport) == 0
    ballast = fill_with_ballast(small_tmpfs, 1 << 20)
    pushes = fill_until_stalled(cluster, tmp_path, r1)
    check_stalled(cluster, tmp_path, r1, pushes, base, "no space left on device")
    assert zone_stalled_gauge(mport) == 1
    ballast.unlink()
    cluster.wait_in_sync()
    assert "applying resumed" in r1.log_text()
    c = cluster.counters("r1")
    assert c["stalled_no_space"] == 0 and c["snapshots"] == 1, c
    assert zone_stalled_gauge(mport) == 0
    assert r1.alive()


def fill_with_ballast(mnt, leave):
    """Fills the filesystem at mnt with a file, leaving about `leave` bytes free."""
    st = os.statvfs(mnt)
    free = st.f_bavail * st.f_frsize
    ballast = mnt / "ballast"
    with open(ballast, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return ballast


def push_until_refused(cluster, tmp_path, what):
    """Pushes PER_PUSH delegations at a time until the primary refuses one, and checks that
    the refused push changed nothing: the primary serves every earlier push and nothing of
    that one. Returns (its number, tldctl's output, the serial served)."""
    _, _, adds_delta = _cluster_helpers()
    for i in range(150):
        p = cluster.push_delta(adds_delta(tmp_path / f"p{i}.delta", i, PER_PUSH))
        if p.returncode != 0:
            break
    else:
        raise AssertionError(f"{what} never filled\n{cluster.logs()}")
    out = p.stdout + p.stderr
    print(f"\npush {i} refused: {out.strip()}")
    served = cluster.serial(cluster.primary)
    assert served == 2026010100 + i, (served, i)  # every earlier push, not the refused one
    for j in (0, PER_PUSH - 1):
        r = cluster.primary.query(f"x.d{i}-{j}.tld.", "A")
        assert not any(rr.rdtype == 2 for rr in r.authority), r
    assert cluster.primary.alive()
    return i, out, served


def test_primary_disk_full_refuses_push(cluster, primary_tmpfs, tmp_path):
    """The primary's store is on a 6 MiB tmpfs filled by a ballast file: the push that meets
    ENOSPC is refused with a message saying so and changes nothing (not half a push, not the
    journal); the primary keeps serving and its replica stays in step; once space is back,
    pushes go through again and reach the replica."""
    SMALL_ZONE, _, adds_delta = _cluster_helpers()
    cluster.start_primary(zone_text=SMALL_ZONE)
    r1 = cluster.start_replica("r1")
    cluster.wait_in_sync()
    ballast = fill_with_ballast(primary_tmpfs, 256 << 10)
    i, out, served = push_until_refused(cluster, tmp_path, "the disk")
    assert "no space left on device" in out, out
    cluster.wait_in_sync()
    assert cluster.serial(r1) == served and digest_line(cluster, r1) == digest_line(
        cluster, cluster.primary)
    ballast.unlink()
    check(cluster.push_delta(adds_delta(tmp_path / f"p{i}.delta", i, PER_PUSH)))
    cluster.wait_in_sync()
    assert cluster.serial(r1) == served + 1
    r = r1.query(f"x.d{i}-0.tld.", "A")
    assert any(rr.rdtype == 2 for rr in r.authority), r


@pytest.fixture
def store_tmpfs(tmp_path):
    """A 6 MiB tmpfs mounted at tmp_path/store."""
    yield from mount_small_tmpfs(tmp_path / "store")


def test_import_disk_full_changes_nothing(tldctl, gen_zone, store_tmpfs, tmp_path):
    """`tldctl import` into a store whose disk fills up part-way: it fails saying the disk is
    full, and the store holds exactly what it held (no part of the new zone); with room again
    the same import succeeds."""
    import_zone(tldctl, store_tmpfs, SAMPLE_ZONE)
    before = store_digest(tldctl, store_tmpfs)
    big = tmp_path / "big.zone"
    check(run("/usr/bin/python3", gen_zone, "--origin", "big", "--delegations", "8000", big))
    ballast = fill_with_ballast(store_tmpfs, 512 << 10)
    p = run(tldctl, "import", "--store", store_tmpfs, "--quiet", big)
    print(f"\nimport on a full disk: exit {p.returncode}: {p.stderr.strip()}")
    assert p.returncode != 0 and "no space left on device" in p.stderr, p.stderr
    assert store_digest(tldctl, store_tmpfs) == before
    assert list_zones(tldctl, store_tmpfs) == ["sample."]
    ballast.unlink()
    check(run(tldctl, "import", "--store", store_tmpfs, "--quiet", big))
    assert set(list_zones(tldctl, store_tmpfs)) == {"sample.", "big."}


def test_replica_map_full(cluster, tmp_path):
    """A replica with a 1 MiB --map-size: LMDB's map fills up (MDB_MAP_FULL); it stops applying
    and keeps serving, as above. The map size is fixed when the store is opened, so it resumes
    when restarted with a larger --map-size, and converges."""
    r1, base = start_small_cluster(cluster, ["--map-size", str(1 << 20)])
    pushes = fill_until_stalled(cluster, tmp_path, r1)
    check_stalled(cluster, tmp_path, r1, pushes, base, "map is full")
    r1.stop()
    cluster.start_replica("r1", extra=["--map-size", str(64 << 20)])
    cluster.wait_in_sync()
    c = cluster.counters("r1")
    assert c["stalled_no_space"] == 0 and c["snapshots"] == 0, c  # caught up, no snapshot


def test_primary_map_full_refuses_push(cluster, tmp_path):
    """A primary whose LMDB map fills up refuses the push that does not fit, with a message
    saying so, and changes nothing: it keeps serving the last serial, the replica stays in
    step with it, and pushes that fit go through afterwards."""
    SMALL_ZONE, _, adds_delta = _cluster_helpers()
    cluster.start_primary(zone_text=SMALL_ZONE, extra=["--map-size", str(1 << 20)])
    r1 = cluster.start_replica("r1")
    cluster.wait_in_sync()
    i, out, served = push_until_refused(cluster, tmp_path, "the 1 MiB map")
    assert "map is full" in out, out
    cluster.wait_in_sync()  # the replica holds exactly what the primary holds
    assert cluster.serial(r1) == served
    small = tmp_path / "small.delta"  # one delegation still fits
    small.write_text("$ORIGIN tld.\n+ tiny NS ns1.example.net.\n")
    p2 = cluster.push_delta(small)
    if p2.returncode == 0:  # (a 1 MiB map may be too full even for one)
        cluster.wait_in_sync()
        assert cluster.serial(r1) == served + 1

