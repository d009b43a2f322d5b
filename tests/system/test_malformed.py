"""Malformed and hostile packets sent raw to a running tldnode (sample zone).

Each kind states exactly what must come back: nothing (shorter than a
header, QR=1, over our UDP size), or a reply with the id echoed and a given
rcode (FORMERR, NOTIMP, REFUSED, BADVERS...), or a normal answer (trailing
garbage and ignored bits). After every kind a normal query must still get the
right answer from the same server: it is alive and not confused.

    TLD_BUILD_DIR=build /usr/bin/python3 -m pytest -q tests/system/test_malformed.py
"""

import random
import socket
import struct
import time
from dataclasses import dataclass

import dns.message
import dns.name
import dns.query
import dns.rcode
import pytest

from conftest import read_frame

QID = 0xBEEF
A, NS, SOA, OPT, TXT = 1, 2, 6, 41, 16
IN, CH, NONE, ANY = 1, 3, 254, 255
DO = 0x8000
WWW_A = "192.0.2.80"


# ---- packet building ----

def hdr(qid=QID, flags=0, qd=1, an=0, ns=0, ar=0, opcode=0):
    return struct.pack("!6H", qid, flags | (opcode << 11), qd, an, ns, ar)


def name(text):
    return dns.name.from_text(text).to_wire()


def question(qname="www.sample.", qtype=A, qclass=IN):
    return name(qname) + struct.pack("!HH", qtype, qclass)


Q = question()


def rr(owner, rtype, rclass, ttl, rdata, rdlen=None):
    return owner + struct.pack("!HHIH", rtype, rclass, ttl,
                               len(rdata) if rdlen is None else rdlen) + rdata


def opt(payload=1232, ext=0, version=0, flags=0, rdata=b"", owner=b"\x00", rdlen=None):
    return rr(owner, OPT, payload, (ext << 24) | (version << 16) | flags, rdata, rdlen)


def option(code, data, length=None):
    return struct.pack("!HH", code, len(data) if length is None else length) + data


def cookie(n):
    return opt(rdata=option(10, bytes(range(1, n + 1))))


A_RR = rr(b"\xc0\x0c", A, IN, 300, bytes([192, 0, 2, 1]))  # owner: pointer to the qname


def tsig():
    rdata = name("hmac-sha256.") + struct.pack("!HIH", 0, int(time.time()), 300)
    rdata += struct.pack("!H", 32) + b"\x00" * 32 + struct.pack("!HHH", QID, 0, 0)
    return rr(name("key.example."), 250, ANY, 0, rdata)


# ---- expectations ----

@dataclass
class Kind:
    name: str
    pkt: bytes
    expect: str  # "drop", "rcode" or "answer"
    rcode: int = 0
    opcode: int = 0
    echo_question: bool = False  # the reply holds the question exactly as sent
    edns: object = None  # True/False: the reply must have / must not have an OPT
    check: object = None  # extra check(raw reply, parsed Message or None)
    qid: int = QID


def K(name, pkt, expect, rcode=0, **kw):
    return Kind(name, pkt, expect, rcode, **kw)


FORMERR, NOTIMP, REFUSED, BADVERS = 1, 4, 5, 16
HDR_LONG_NAME = b"".join(b"\x3f" + b"a" * 63 for _ in range(4)) + b"\x00"  # 257 bytes
NAME_255 = b"".join(b"\x3f" + b"b" * 63 for _ in range(3)) + b"\x36" + b"c" * 54 + name(
    "sample.")  # 3*64 + 55 + 8 = 255 bytes, a legal name below sample.
assert len(NAME_255) == 255


def _nodata_soa(raw, msg):
    assert msg.rcode() == dns.rcode.NOERROR and msg.answer == []
    assert msg.flags & 0x0400, "AA"
    assert [rs.rdtype for rs in msg.authority] == [SOA]


def _nxdomain(raw, msg):
    assert msg.rcode() == dns.rcode.NXDOMAIN and msg.flags & 0x0400
    assert [rs.rdtype for rs in msg.authority] == [SOA]


def _small(raw, msg):
    assert len(raw) <= 512


def _ignored_bits_cleared(raw, msg):
    flags = struct.unpack("!H", raw[2:4])[0]
    assert flags & 0x0200 == 0 and flags & 0x0080 == 0 and flags & 0x0040 == 0  # TC RA Z
    assert flags & 0x0020 == 0  # AD: we never validate


def _do_only(raw, msg):
    assert msg.ednsflags & 0xFFFF == DO, hex(msg.ednsflags)  # DO echoed, Z bits not


def _nsid(raw, msg):
    nsid = [o for o in msg.options if o.otype == 3]
    assert len(nsid) == 1 and getattr(nsid[0], "data", None) == b"tldnode-test"


UDP_KINDS = [
    # nothing to answer
    K("empty datagram", b"", "drop"),
    K("one byte", b"\xbe", "drop"),
    K("eleven bytes", hdr()[:11], "drop"),
    K("QR=1 (a response)", hdr(flags=0x8000) + Q, "drop"),
    K("QR=1 with garbage body", hdr(flags=0x8000) + b"\xff" * 40, "drop"),
    K("QR=1 NOTIFY response", hdr(flags=0x8400, opcode=4) + question("sample.", SOA), "drop"),
    K("QR=1 header only", hdr(flags=0x8000, qd=0), "drop"),
    # header and question
    K("qdcount 0, header only", hdr(qd=0), "rcode", FORMERR),
    K("qdcount 0 with a question", hdr(qd=0) + Q, "rcode", FORMERR),
    K("qdcount 2", hdr(qd=2) + Q + Q, "rcode", FORMERR),
    K("qdcount 2 with EDNS: FORMERR with OPT (RFC 6891 7)", hdr(qd=2, ar=1) + Q + Q + opt(),
      "rcode", FORMERR, edns=True),
    K("qdcount 2, the second question cut short", hdr(qd=2, ar=1) + Q + Q[:5], "rcode",
      FORMERR),
    K("qdcount 65535", hdr(qd=65535) + Q, "rcode", FORMERR),
    K("question cut inside a label", hdr() + name("www.sample.")[:6], "rcode", FORMERR),
    K("question without qtype/qclass", hdr() + name("www.sample."), "rcode", FORMERR),
    K("qclass cut to one byte", hdr() + name("www.sample.") + b"\x00\x01\x00", "rcode",
      FORMERR),
    K("label of 64 (type 01)", hdr() + b"\x40" + b"a" * 64 + b"\x00" + b"\x00\x01\x00\x01",
      "rcode", FORMERR),
    K("label type 10", hdr() + b"\x83www\x00\x00\x01\x00\x01", "rcode", FORMERR),
    K("name over 255 bytes", hdr() + HDR_LONG_NAME + b"\x00\x01\x00\x01", "rcode", FORMERR),
    K("compression pointer in qname (to itself)", hdr() + b"\xc0\x0c\x00\x01\x00\x01", "rcode",
      FORMERR),
    K("compression pointer in qname (after a label)",
      hdr() + b"\x03www\xc0\x00\x00\x01\x00\x01", "rcode", FORMERR),
    # records after the question
    K("pointer loop in an additional record", hdr(ar=1) + Q + rr(b"\xc0\x1c", A, IN, 0,
                                                                 b"\x01\x02\x03\x04"),
      "rcode", FORMERR, echo_question=True),
    K("forward pointer in an additional record", hdr(ar=1) + Q + rr(b"\xc0\x40", A, IN, 0,
                                                                    b"\x01\x02\x03\x04")
      + b"\x00" * 40, "rcode", FORMERR, echo_question=True),
    K("two pointers pointing at each other", hdr(ar=2) + Q + rr(b"\xc0\x28", A, IN, 0, b"")
      + rr(b"\xc0\x1c", A, IN, 0, b""), "rcode", FORMERR, echo_question=True),
    K("OPT twice", hdr(ar=2) + Q + opt() + opt(), "rcode", FORMERR, echo_question=True),
    K("OPT in the answer section", hdr(an=1) + Q + opt(), "rcode", FORMERR, echo_question=True),
    K("OPT in the authority section", hdr(ns=1) + Q + opt(), "rcode", FORMERR,
      echo_question=True),
    K("OPT with a non-root owner", hdr(ar=1) + Q + opt(owner=name("sample.")), "rcode",
      FORMERR, echo_question=True),
    K("EDNS option overrunning the RDATA", hdr(ar=1) + Q + opt(rdata=option(3, b"", 20)),
      "rcode", FORMERR, echo_question=True),
    K("EDNS option header cut short", hdr(ar=1) + Q + opt(rdata=b"\x00\x03\x00"), "rcode",
      FORMERR, echo_question=True),
    K("COOKIE of 5 bytes", hdr(ar=1) + Q + cookie(5), "rcode", FORMERR, echo_question=True),
    K("COOKIE of 12 bytes", hdr(ar=1) + Q + cookie(12), "rcode", FORMERR, echo_question=True),
    K("COOKIE of 41 bytes", hdr(ar=1) + Q + cookie(41), "rcode", FORMERR, echo_question=True),
    K("ancount that lies", hdr(an=1) + Q, "rcode", FORMERR, echo_question=True),
    K("nscount that lies", hdr(ns=2) + Q + A_RR, "rcode", FORMERR, echo_question=True),
    K("arcount that lies", hdr(ar=3) + Q + opt(), "rcode", FORMERR, echo_question=True),
    K("arcount 65535", hdr(ar=65535) + Q + A_RR, "rcode", FORMERR, echo_question=True),
    K("rdlength overrunning the message", hdr(ar=1) + Q + rr(b"\xc0\x0c", A, IN, 0,
                                                             b"\x01\x02\x03\x04", 100),
      "rcode", FORMERR, echo_question=True),
    K("record cut inside its fixed fields", hdr(ar=1) + Q + b"\xc0\x0c\x00\x01\x00", "rcode",
      FORMERR, echo_question=True),
    K("OPT RDATA length overrunning", hdr(ar=1) + Q + opt(rdlen=50), "rcode", FORMERR,
      echo_question=True),
    K("TSIG not the last record", hdr(ar=2) + Q + tsig() + opt(), "rcode", FORMERR,
      echo_question=True),
    # opcodes
    K("opcode 3 (unassigned)", hdr(opcode=3) + Q, "rcode", NOTIMP, opcode=3),
    K("opcode 15", hdr(opcode=15) + Q, "rcode", NOTIMP, opcode=15),
    K("opcode 15 with a garbage body", hdr(opcode=15, qd=7, ar=9) + b"\xc0" * 30, "rcode",
      NOTIMP, opcode=15),
    K("opcode IQUERY", hdr(opcode=1) + Q, "rcode", NOTIMP, opcode=1),
    K("opcode NOTIFY", hdr(opcode=4, flags=0x0400) + question("sample.", SOA), "rcode",
      NOTIMP, opcode=4),
    K("opcode UPDATE, empty", hdr(opcode=5, qd=0), "rcode", NOTIMP, opcode=5),
    K("opcode DSO (6)", hdr(opcode=6, qd=0), "rcode", NOTIMP, opcode=6),
    # odd but answerable
    K("trailing garbage after the question", hdr() + Q + b"\xde\xad\xbe\xef" * 10, "answer",
      edns=False),
    K("trailing garbage after the OPT", hdr(ar=1) + Q + opt() + b"\xff" * 33, "answer",
      edns=True),
    K("all-zero 12 bytes", b"\x00" * 12, "rcode", FORMERR, qid=0),
    K("all-zero 512 bytes", b"\x00" * 512, "rcode", FORMERR, qid=0),
    K("UDP datagram of 4096+1 bytes", hdr() + Q + b"\x00" * (4097 - 12 - len(Q)), "drop"),
    K("UDP datagram of exactly 4096 bytes", hdr() + Q + b"\x00" * (4096 - 12 - len(Q)),
      "answer", edns=False),
    K("qclass NONE", hdr() + question(qclass=NONE), "rcode", REFUSED, echo_question=True),
    K("qclass ANY", hdr() + question(qclass=ANY), "rcode", REFUSED, echo_question=True),
    K("qclass 0", hdr() + question(qclass=0), "rcode", REFUSED, echo_question=True),
    K("qclass CHAOS, qtype A", hdr() + question("id.server.", A, CH), "rcode", REFUSED),
    # qtype 0: reserved (RFC 6895); answered as a NODATA for a type the name lacks
    K("qtype 0", hdr() + question(qtype=0), "rcode", 0, echo_question=True, check=_nodata_soa),
    K("qtype OPT in the question", hdr() + question(qtype=OPT), "rcode", FORMERR,
      echo_question=True),
    K("qtype TSIG in the question", hdr() + question(qtype=250), "rcode", FORMERR),
    K("qtype TKEY in the question", hdr() + question(qtype=249), "rcode", FORMERR),
    K("qtype AXFR over UDP", hdr() + question("sample.", 252), "rcode", REFUSED,
      echo_question=True),
    K("qtype IXFR over UDP", hdr(ns=1) + question("sample.", 251)
      + rr(b"\xc0\x0c", SOA, IN, 0, b"\x00\x00" + b"\x00" * 20), "rcode", REFUSED),
    K("EDNS version 255", hdr(ar=1) + Q + opt(version=255), "rcode", BADVERS, edns=True),
    K("EDNS version 1 with DO", hdr(ar=1) + Q + opt(version=1, flags=DO), "rcode", BADVERS,
      edns=True, check=lambda raw, m: _do_only(raw, m)),
    K("DO with every other EDNS flag bit", hdr(ar=1) + Q + opt(flags=0xFFFF), "answer",
      edns=True, check=_do_only),
    K("EDNS ext-rcode bits set in a query", hdr(ar=1) + Q + opt(ext=0xFF), "answer", edns=True),
    K("EDNS payload 0", hdr(ar=1) + Q + opt(payload=0), "answer", edns=True, check=_small),
    K("unknown EDNS options", hdr(ar=1) + Q + opt(rdata=option(65001, b"xyz") + option(
        12, b"\x00" * 30)), "answer", edns=True),
    K("NSID option with data", hdr(ar=1) + Q + opt(rdata=option(3, b"junk")), "answer",
      edns=True, check=_nsid),
    K("header TC, RA, Z, AD, AA and an rcode set", hdr(flags=0x0400 | 0x0200 | 0x0080 | 0x0040
                                                       | 0x0020 | 0x000F) + Q, "answer",
      edns=False, check=_ignored_bits_cleared),
    K("binary label with NUL and dot", hdr() + b"\x04a\x00.b" + name("sample.")
      + b"\x00\x01\x00\x01", "rcode", 3, echo_question=True, check=_nxdomain),
    K("name of exactly 255 bytes", hdr() + NAME_255 + b"\x00\x01\x00\x01", "rcode", 3,
      echo_question=True, check=_nxdomain),
]


# ---- sending and checking ----

def send_udp(node, pkt, timeout=0.6):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(pkt, node.addr)
        try:
            return s.recv(65535)
        except socket.timeout:
            return None


def assert_still_serving(node):
    """The server is alive and answers a normal query correctly, over UDP and TCP."""
    assert node.alive(), f"tldnode died:\n{node.log_text()[-3000:]}"
    for transport in ("udp", "tcp"):
        q = dns.message.make_query("www.sample.", "A")
        if transport == "udp":
            r = dns.query.udp(q, node.host, port=node.port, timeout=2)
        else:
            r = dns.query.tcp(q, node.host, port=node.port, timeout=2)
        assert r.id == q.id and r.rcode() == dns.rcode.NOERROR and r.flags & 0x0400
        assert [rd.to_text() for rs in r.answer for rd in rs] == [WWW_A]


def check_reply(kind, pkt, raw):
    if kind.expect == "drop":
        assert raw is None, f"{kind.name}: expected no reply, got {raw.hex()}"
        return
    assert raw is not None, f"{kind.name}: no reply"
    assert len(raw) >= 12
    qid, flags = struct.unpack("!HH", raw[:4])
    assert qid == kind.qid, f"{kind.name}: id {qid:#x} not echoed"
    assert flags & 0x8000, "QR"
    assert (flags >> 11) & 0xF == kind.opcode, "opcode echoed"
    msg = None
    if kind.opcode == 0:
        msg = dns.message.from_wire(raw)
    if kind.expect == "answer":
        assert msg.rcode() == dns.rcode.NOERROR and msg.flags & 0x0400, f"{kind.name}:\n{msg}"
        assert [rd.to_text() for rs in msg.answer if rs.rdtype == A for rd in rs] == [WWW_A]
    else:
        rcode = msg.rcode() if msg is not None else flags & 0xF
        assert rcode == kind.rcode, f"{kind.name}: rcode {rcode}, want {kind.rcode}\n{msg}"
        if kind.rcode in (FORMERR, NOTIMP, REFUSED):
            assert struct.unpack("!HH", raw[6:10]) == (0, 0), "empty answer and authority"
    if kind.echo_question:
        qlen = len(Q) if pkt[12:12 + len(Q)] == Q else None
        if qlen is None:  # the question ends at its qclass
            end = 12
            while pkt[end] != 0:
                end += 1 + pkt[end]
            qlen = end + 1 + 4 - 12
        assert struct.unpack("!H", raw[4:6])[0] == 1, "qdcount 1"
        assert raw[12:12 + qlen] == pkt[12:12 + qlen], "question echoed byte for byte"
    if kind.edns is not None and msg is not None:
        assert (msg.edns >= 0) == kind.edns, f"{kind.name}: OPT presence"
        if kind.edns:
            assert msg.edns == 0 and msg.payload == 1232
    if kind.check is not None:
        kind.check(raw, msg)


@pytest.fixture(scope="module")
def node(sample_node):
    return sample_node


@pytest.mark.parametrize("kind", UDP_KINDS, ids=[k.name for k in UDP_KINDS])
def test_udp_kind(node, kind):
    raw = send_udp(node, kind.pkt, timeout=0.4 if kind.expect == "drop" else 2)
    check_reply(kind, kind.pkt, raw)
    assert_still_serving(node)


def test_random_bytes(node):
    """500 seeded random datagrams: no reply, or a response echoing the id."""
    rng = random.Random(20261125)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.05)
        replies = 0
        for i in range(500):
            n = rng.choice([rng.randrange(0, 12), rng.randrange(12, 64), rng.randrange(12, 600)])
            pkt = bytes(rng.getrandbits(8) for _ in range(n))
            s.sendto(pkt, node.addr)
            try:
                raw = s.recv(65535)
            except socket.timeout:
                raw = None
            if raw is not None:
                replies += 1
                assert len(pkt) >= 12 and not pkt[2] & 0x80, (pkt.hex(), raw.hex())
                assert raw[:2] == pkt[:2] and raw[2] & 0x80
                assert (raw[2] >> 3) & 0xF == (pkt[2] >> 3) & 0xF
            if i % 100 == 99:
                assert_still_serving(node)
    assert replies > 100  # about half have QR=0
    assert_still_serving(node)


def test_mutated_queries(node):
    """500 valid queries (EDNS, cookie, NSID) with 1-4 random bytes changed."""
    rng = random.Random(53)
    base = hdr(ar=1) + Q + opt(flags=DO, rdata=option(10, b"C" * 8) + option(3, b""))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.05)
        for i in range(500):
            pkt = bytearray(base)
            for _ in range(rng.randint(1, 4)):
                pkt[rng.randrange(len(pkt))] = rng.getrandbits(8)
            if rng.random() < 0.2:
                pkt = pkt[:rng.randrange(len(pkt))]
            s.sendto(bytes(pkt), node.addr)
            try:
                raw = s.recv(65535)
            except socket.timeout:
                continue
            assert raw[:2] == pkt[:2] and raw[2] & 0x80
            dns.message.from_wire(raw) if (raw[2] >> 3) & 0xF == 0 else None
    assert_still_serving(node)


# ---- TCP ----

def tcp_connect(node, timeout=3.0):
    s = socket.create_connection(node.addr, timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def frame(data):
    return struct.pack("!H", len(data)) + data


def read_all_frames(s, timeout=3.0):
    """Reads until the server closes; returns (frames, closed)."""
    s.settimeout(timeout)
    data = b""
    closed = False
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            data += chunk
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    frames = []
    while len(data) >= 2 and len(data) >= 2 + struct.unpack("!H", data[:2])[0]:
        n = struct.unpack("!H", data[:2])[0]
        frames.append(data[2:2 + n])
        data = data[2 + n:]
    return frames, closed



def normal_query_bytes(qid):
    return hdr(qid=qid) + Q


def is_www_answer(raw, qid):
    m = dns.message.from_wire(raw)
    return m.id == qid and [rd.to_text() for rs in m.answer for rd in rs] == [WWW_A]


def tcp_garbage_64k(node):
    rng = random.Random(64)
    garbage = bytes(rng.getrandbits(8) for _ in range(65536))
    with tcp_connect(node) as s:
        try:
            s.sendall(garbage)
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            return  # closed on a zero-length frame: fine
        frames, closed = read_all_frames(s, 5)
    assert closed, "64 KiB of garbage then EOF: the connection must close"
    for f in frames:
        assert len(f) >= 12 and f[2] & 0x80


def tcp_zero_length_frame(node):
    with tcp_connect(node) as s:
        s.sendall(b"\x00\x00")
        frames, closed = read_all_frames(s, 3)
    assert closed and frames == []


def tcp_query_then_zero_length_frame(node):
    with tcp_connect(node) as s:
        s.sendall(frame(normal_query_bytes(1)) + b"\x00\x00" + frame(normal_query_bytes(2)))
        frames, closed = read_all_frames(s, 3)
    assert closed
    assert [struct.unpack("!H", f[:2])[0] for f in frames] == [1], frames


def tcp_length_beyond_data_then_close(node):
    with tcp_connect(node) as s:
        s.sendall(struct.pack("!H", 500) + normal_query_bytes(3))
        s.shutdown(socket.SHUT_WR)
        frames, closed = read_all_frames(s, 3)
    assert closed and frames == []


def tcp_length_prefix_only_then_close(node):
    with tcp_connect(node) as s:
        s.sendall(b"\x01")
        s.shutdown(socket.SHUT_WR)
        frames, closed = read_all_frames(s, 3)
    assert closed and frames == []


def tcp_short_and_response_frames_skipped(node):
    """A 5-byte frame and a QR=1 frame get no reply; the connection goes on."""
    with tcp_connect(node) as s:
        s.sendall(frame(b"\x12\x34\x00\x00\x00") + frame(hdr(qid=7, flags=0x8000) + Q)
                  + frame(normal_query_bytes(8)))
        raw = read_frame(s)
        assert raw is not None and is_www_answer(raw, 8)


def tcp_formerr_then_query(node):
    with tcp_connect(node) as s:
        s.sendall(frame(hdr(qid=9, qd=2) + Q + Q) + frame(normal_query_bytes(10)))
        raw = read_frame(s)
        assert raw[:2] == b"\x00\x09" and raw[3] & 0xF == FORMERR
        assert is_www_answer(read_frame(s), 10)


def tcp_max_size_frame(node):
    """A 65535-byte message (a query then trailing bytes) is answered."""
    pkt = normal_query_bytes(11)
    pkt += b"\x00" * (65535 - len(pkt))
    with tcp_connect(node) as s:
        s.sendall(frame(pkt))
        assert is_www_answer(read_frame(s), 11)


def tcp_random_frames(node):
    """300 random non-empty frames on one connection, then a normal query."""
    rng = random.Random(7766)
    data = b""
    for _ in range(300):
        n = rng.randrange(1, 300)
        data += frame(bytes(rng.getrandbits(8) for _ in range(n)))
    data += frame(normal_query_bytes(0x4242))
    with tcp_connect(node, timeout=5) as s:
        s.sendall(data)
        while True:
            raw = read_frame(s)
            assert raw is not None, "closed before the final answer"
            assert raw[2] & 0x80
            if raw[:2] == b"\x42\x42" and is_www_answer(raw, 0x4242):
                break


def tcp_oversized_udp_limit(node):
    """Over TCP, 4097+ bytes is fine: the UDP cap does not apply."""
    pkt = normal_query_bytes(12) + b"\x00" * 5000
    with tcp_connect(node) as s:
        s.sendall(frame(pkt))
        assert is_www_answer(read_frame(s), 12)


TCP_KINDS = {
    "TCP: 64 KiB of garbage, then EOF": tcp_garbage_64k,
    "TCP: zero-length frame": tcp_zero_length_frame,
    "TCP: query, zero-length frame, query": tcp_query_then_zero_length_frame,
    "TCP: frame length beyond the data, then close": tcp_length_beyond_data_then_close,
    "TCP: half a length prefix, then close": tcp_length_prefix_only_then_close,
    "TCP: short and QR=1 frames skipped": tcp_short_and_response_frames_skipped,
    "TCP: FORMERR then a query on the same connection": tcp_formerr_then_query,
    "TCP: 65535-byte frame": tcp_max_size_frame,
    "TCP: 300 random frames": tcp_random_frames,
    "TCP: 5 KiB query (over the UDP cap)": tcp_oversized_udp_limit,
}


@pytest.mark.parametrize("kind", list(TCP_KINDS), ids=list(TCP_KINDS))
def test_tcp_kind(node, kind):
    TCP_KINDS[kind](node)
    assert_still_serving(node)


KINDS = [k.name for k in UDP_KINDS] + list(TCP_KINDS) + ["random bytes x500",
                                                        "mutated queries x500"]


def test_kind_count():
    assert len(KINDS) == len(set(KINDS))
    assert len(KINDS) >= 35, len(KINDS)


def test_server_clean_after_everything(node):
    """Whatever came before (this module runs it last), the server still exits 0."""
    assert_still_serving(node)
    rc = node.stop()
    assert rc == 0, node.log_text()[-3000:]
