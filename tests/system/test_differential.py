"""Differential test: tldnode answers the same queries as Knot DNS and NSD.

Each test runs twice, against each peer: Knot DNS and NSD. Both servers serve
the same zone file (tldnode from a store made by `tldctl import`, with
--workers 1; Knot DNS's knotd loading the file whole, one UDP and one TCP
worker, no journal, no signing, no RRL: conftest.start_knotd; NSD with one
server process, no database, no RRL: conftest.start_nsd), both with the same
identity, which the peer also uses as NSID. Below, "Knot" stands for either
peer where both behave alike. Every query of a mix
built from the zone itself goes to both, and the two responses must have:
  - the same RCODE (extended RCODE included) and header flags (QR, opcode, AA,
    TC, RD, RA, Z, AD, CD), the ID and the question echoed byte for byte (the
    QNAME's case kept: 0x20), RD and CD copied from the query by tldnode;
  - the same EDNS: present iff the query had it, version, payload size, DO
    echoed, the same options (NSID when asked for);
  - unless TC=1: the same answer, authority and additional sections, as
    multisets of records (owner, type, class, TTL, RDATA): the order of RRsets
    and of records does not matter, each record's TTL does;
  - over UDP, tldnode's response within the limit: 512 without EDNS, else the
    payload size clamped to [512, 1232].
Responses alike record for record are recognised by a small wire reader
(raw_sections); the others are parsed with dnspython and examined under the
rules below.

Zones: deploy/sample/sample.zone (NSEC-signed; wildcard, CNAME, empty
non-terminals, delegations with and without DS, in-domain glue), the real root
zone ../shared/zones/root.zone (NSEC-signed, 1,479 delegations; skipped when
../shared is absent), a 100,000-delegation unsigned zone from
tests/bench/gen-zone.py (3,000 of its delegations sampled), a 5,000-delegation
one signed with NSEC3 by ldns-signzone (queries at a sample of its NSEC3
owner names too), and DNAME_ZONE:
DNAMEs (to names in the zone, out of it, to the apex, into delegations, in
a loop, one whose substitutions overflow), CNAME loops and CNAMEs into
delegations, wildcards whose answers bring more records (a CNAME, and an MX
with addresses in the zone), a delegation that names itself as its server
(its own address is its glue), signed by ldns-signzone with NSEC and with
NSEC3. The mix
(build_queries): per delegation its first NS name A, www.<deleg> A, <deleg> DS
with and without DO, <deleg> NS; every glue name A and AAAA; the apex SOA, NS,
DNSKEY, NSEC, TXT, MX, A, AAAA, NSEC3PARAM, DS and ANY, with and without DO over
every transport; names that do not exist (random labels; names sorting before
the first and after the last owner, for the NSEC wrap); NODATA at existing
names; empty non-terminals and names below them; wildcard matches (one and two
labels deep) and wildcard NODATA; CNAMEs; ANY; DS at the apex; CHAOS
id.server/hostname.bind and NSID. Queries rotate over UDP with EDNS payload
1232, 4096 and 512, UDP without EDNS, TCP with and without EDNS, and over the
header flags RD, none, CD, RD+CD; some are sent again with a mixed-case QNAME.

Both servers give the SOA in negative answers the TTL min(SOA TTL, MINIMUM)
(RFC 2308 3), and its RRSIG the same TTL (RFC 4034 3: an RRSIG's TTL matches
its RRset's): nothing to normalise there.

Where the servers differ and the RFCs allow both answers, or Knot 3.2 is the
one that is wrong, tldnode's behaviour is kept and the comparison normalises
that one aspect (each case is counted and printed):
  - CD: Knot clears it in every response; RFC 4035 3.1.6 says the server MUST
    copy it from the query, as tldnode does. Knot's CD is put back.
  - EDE: both servers add an Extended DNS Error (20, Not Authoritative) to
    REFUSED; when both send one its code must match, and when only one does
    (RFC 8914 makes them optional) that is counted and ignored.
  - AA on CHAOS id.server/hostname.bind answers: tldnode sets it, Knot 3.2
    and NSD 4.6 do not; RFC 4892 does not say. Ignored for class CH.
  - ANY: every server answers with one RRset (RFC 8482), but not the same
    one: tldnode sends the smallest, Knot and NSD the first (Knot adds the NS
    targets' addresses). When tldnode's answer is authoritative data, only the
    RCODE and flags (TC aside) are compared, tldnode's answer must be a
    subset of the peer's complete answer (over TCP when the peer truncated)
    or else of the zone's records at the QNAME, and the authority sections
    equal; the additional sections are not compared.
  - Apex NS: NSD also puts the zone's NS RRset (and its RRSIG, and the NS
    targets' addresses in the additional section) in authoritative answers;
    tldnode and Knot send minimal responses. Ignored when that is the only
    difference in the authority section.
  - Additional data: it is optional (RFC 1034 4.3.2 step 6, RFC 2181 9) and
    an RRSIG in it may be dropped while its RRset is kept (RFC 4035 3.1.1);
    only glue below the delegation is required, or TC=1 (RFC 9471 2.1). The
    servers choose differently when space runs out (tldnode adds an RRset with
    its RRSIGs or not at all, Knot keeps the RRset and drops the RRSIGs), and
    Knot leaves some out even with room to spare (the root's l/m.root-servers
    addresses in the apex NS answer). When only the additional sections
    differ, both must hold nothing but A/AAAA records (and their RRSIGs) of
    the zone at the NS/MX/SRV targets (ZoneModel.additional_for), tldnode's
    must hold all in-domain glue of a referral, and every such RRset tldnode
    left out must be one that does not fit in its response.
  - A query for a wildcard's own name ("*.x") in an NSEC3 zone: NSD 4.6 adds
    an NSEC3 beyond the one matching the name (RFC 5155 7.2.3). Ignored.
  - DNAME: NSD 4.6 leaves out the NSEC proof for the name a substitution
    leads to (with NSEC3 it sends it); Knot 3.2 sometimes repeats the
    records of a CNAME/DNAME loop, adds the SOA to YXDOMAIN and answers
    NXDOMAIN where a substitution after another overflows (RFC 6672 2.2:
    YXDOMAIN). Each is accepted only as that one difference.
  - Truncation: Knot compresses names less than tldnode (a root referral
    with DO that takes tldnode 511 bytes takes Knot 554), so Knot sets TC
    where tldnode fits the limit. Then tldnode's response is compared, by
    the same rules, with Knot's complete answer fetched over TCP. Where
    tldnode sets TC and Knot does not, that is accepted only when Knot left
    out in-domain glue (Knot 3.2 predates RFC 9471 and never sets TC for
    glue; NSD 4.6 neither), or when tldnode's complete answer (over TCP)
    exceeds the limit and matches the peer's by these rules (the peer fit by
    sending less). When both set TC, the sections are not compared.
  - qtype NSEC at a name synthesised from a wildcard: the answer is the
    wildcard's NSEC under the QNAME; RFC 4035 3.1.3.3 requires the NSEC
    proving that no closer name exists, which here is the wildcard's own NSEC
    under its own name. tldnode sends it, Knot 3.2 leaves it out (its
    duplicate check takes it for the record in the answer). Accepted as the
    only difference in the authority section.
"""

import random
import socket
import struct
import time
from collections import Counter, namedtuple

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.zone
import pytest

from conftest import PYTHON, check, import_zone, read_frame, run

IDENTITY = "difftest-ns1"  # NSID and id.server of both servers
TIMEOUT = 2.0
SEED = 20260101

# One query: qname as sent (case kept), type name, DO, EDNS payload (None: no
# EDNS), over TCP, header flags, NSID requested, class.
Q = namedtuple("Q", "qname qtype do payload tcp flags nsid rdclass", defaults=(False, "IN"))

RD, CD = dns.flags.RD, dns.flags.CD
# Transports rotated over: (EDNS payload or None, TCP).
TRANSPORTS = [(1232, False), (4096, False), (512, False), (None, False), (1232, True),
              (None, True)]
FLAGS = [RD, 0, CD, RD | CD]


# ---- the zone, as dnspython reads it ----

class ZoneModel:
    """What the query mix needs to know about a zone."""

    def __init__(self, zone, origin):
        self.origin = origin
        self.zone = zone
        nodes = {name: node for name, node in zone.nodes.items()}
        self.types = {n: {rds.rdtype for rds in node.rdatasets
                          if rds.rdtype != dns.rdatatype.RRSIG} for n, node in nodes.items()}
        self.types = {n: t for n, t in self.types.items() if t}
        self.cuts = sorted(n for n, t in self.types.items()
                           if n != origin and dns.rdatatype.NS in t)
        cutset = set(self.cuts)

        def below_cut(n):
            p = n
            while p != origin:
                if p in cutset and p != n:
                    return True
                p = p.parent()
            return False
        self.ns = {c: sorted(rd.target for rd in zone.find_rdataset(c, "NS")) for c in self.cuts}
        self.glue = sorted(n for n in self.types if below_cut(n) and
                           self.types[n] & {dns.rdatatype.A, dns.rdatatype.AAAA})
        auth = sorted(n for n in self.types
                      if n != origin and n not in cutset and not below_cut(n))
        # NSEC3 owner names are no names of the zone (RFC 5155 7.2.8).
        self.nsec3_owners = [n for n in auth if self.types[n] == {dns.rdatatype.NSEC3}]
        self.auth = [n for n in auth if self.types[n] != {dns.rdatatype.NSEC3}]
        self.signed = dns.rdatatype.DNSKEY in self.types.get(origin, ())
        ents = set()
        for n in self.auth + self.cuts:
            p = n.parent()
            while p != origin:
                if p not in self.types:
                    ents.add(p)
                p = p.parent()
        self.ents = sorted(ents)
        self.wildcards = sorted(n for n in self.auth if n.labels[0] == b"*")
        self.cnames = sorted(n for n in self.auth if dns.rdatatype.CNAME in self.types[n])
        self.dnames = sorted(n for n in self.auth if dns.rdatatype.DNAME in self.types[n])

    def records_at(self, name):
        """Every record of the zone at name (RRSIGs included), as an rr_key
        Counter."""
        node = self.zone.get_node(name)
        return Counter((name.to_text().lower(), rds.rdtype, rds.covers, rds.ttl,
                        x.to_digestable()) for rds in (node.rdatasets if node else ())
                       for x in rds)

    def additional_for(self, msg):
        """The records that may go in the additional section of msg: A and
        AAAA (with their RRSIGs) at the NS/MX/SRV targets of its answer and
        authority sections, as rr_key Counters; and the part of them that is
        in-domain glue of a referral (targets below the delegation)."""
        allowed, in_domain = Counter(), Counter()
        for r in list(msg.answer) + list(msg.authority):
            if r.rdtype not in (dns.rdatatype.NS, dns.rdatatype.MX, dns.rdatatype.SRV):
                continue
            target = r[0].exchange if r.rdtype == dns.rdatatype.MX else r[0].target
            node = self.zone.get_node(target)
            if node is None:
                continue
            for rds in node.rdatasets:
                t = rds.covers if rds.rdtype == dns.rdatatype.RRSIG else rds.rdtype
                if t not in (dns.rdatatype.A, dns.rdatatype.AAAA):
                    continue
                for x in rds:
                    k = (target.to_text().lower(), rds.rdtype, rds.covers, rds.ttl,
                         x.to_digestable())
                    allowed[k] = 1
                    if r.rdtype == dns.rdatatype.NS and rds.rdtype != dns.rdatatype.RRSIG \
                            and target.is_subdomain(r.name) and r.name != self.origin:
                        in_domain[k] = 1
        return allowed, in_domain


def read_zone(path, origin, keep=None):
    """A ZoneModel of the master file at path. keep(relative owner text) ->
    bool, when given, selects the lines (one record per line, as gen-zone.py
    writes them) handed to dnspython: parsing 350,000 records takes it half a
    minute, a sample of them a moment."""
    origin = dns.name.from_text(origin)
    if keep is None:
        z = dns.zone.from_file(str(path), origin=origin, relativize=False, check_origin=False)
    else:
        lines = []
        with open(path) as f:
            for line in f:
                if line.startswith(("$", ";")) or keep(line.split(None, 1)[0]):
                    lines.append(line)
        z = dns.zone.from_text("".join(lines), origin=origin, relativize=False,
                               check_origin=False)
    return ZoneModel(z, origin)


# ---- the query mix ----

def mixed_case(name, rng):
    """name with each letter's case flipped at random (0x20); at least one
    letter upper-case when there is any."""
    text = name.to_text()
    out = "".join(c.upper() if c.isalpha() and rng.random() < 0.5 else c for c in text)
    if out == text:
        out = "".join(c.upper() for c in text)
    return out


def rand_label(rng, n=12):
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


class Mix:
    """Collects queries, rotating transports and flags."""

    def __init__(self, rng):
        self.rng = rng
        self.queries = []
        self.i = 0

    def add(self, qname, qtype, do=False, payload=1232, tcp=False, flags=RD, nsid=False,
            rdclass="IN"):
        assert payload is not None or not do, "DO needs EDNS"
        text = qname.to_text() if isinstance(qname, dns.name.Name) else qname
        self.queries.append(Q(text, qtype, do, payload, tcp, flags, nsid, rdclass))

    def rot(self, qname, qtype, do=False, case=False):
        """Adds a query with the next transport and flags of the rotation
        (and, with case, again with a mixed-case QNAME)."""
        payload, tcp = TRANSPORTS[self.i % len(TRANSPORTS)]
        flags = FLAGS[(self.i // len(TRANSPORTS)) % len(FLAGS)]
        self.i += 1
        do = do and payload is not None  # without EDNS, without DO
        self.add(qname, qtype, do, payload, tcp, flags)
        if case:
            name = qname if isinstance(qname, dns.name.Name) else dns.name.from_text(qname)
            self.add(mixed_case(name, self.rng), qtype, do, payload, tcp, flags)

    def every_transport(self, qname, qtype):
        for do in (False, True):
            for payload, tcp in TRANSPORTS:
                if payload is not None or not do:
                    self.add(qname, qtype, do, payload, tcp)


def build_queries(zm, nx=300, seed=SEED):
    """The query mix for the zone zm (see the module's docstring); nx names
    that do not exist."""
    rng = random.Random(seed)
    m = Mix(rng)
    o = zm.origin
    cuts = zm.cuts

    # Delegations: referrals, and DS answered by the parent.
    for i, c in enumerate(cuts):
        m.add(zm.ns[c][0], "A", do=i % 2 == 0)
        m.add(dns.name.from_text("www", c), "A", do=i % 2 == 1, flags=FLAGS[i % 4])
        m.add(c, "DS", do=False)
        m.add(c, "DS", do=True)
        m.rot(c, "NS", do=True, case=i % 7 == 0)
    # Glue: A and AAAA at every glue name.
    for i, g in enumerate(zm.glue):
        m.add(g, "A", do=i % 2 == 0)
        m.add(g, "AAAA", do=i % 2 == 1)
    # The apex: each type with and without DO over every transport.
    for t in ("SOA", "NS", "DNSKEY", "NSEC", "TXT", "MX", "A", "AAAA", "NSEC3PARAM", "DS",
              "ANY"):
        m.every_transport(o, t)
    m.add(mixed_case(o, rng) if len(o) > 1 else o, "SOA", do=True)
    # Names that do not exist.
    first, last = dns.name.from_text("0", o), dns.name.from_text("zzzzzzzz", o)
    for i in range(nx):
        name = dns.name.from_text(rand_label(rng, rng.randint(3, 20)), o)
        if i % 5 == 4:
            name = dns.name.from_text(rand_label(rng, 4), name)
        m.rot(name, rng.choice(["A", "AAAA", "MX", "TXT", "NS", "DS", "SOA"]), do=i % 2 == 0,
              case=i % 10 == 0)
    for n in (first, last, dns.name.from_text("-", o), dns.name.from_text("~", o)):
        for do in (False, True):
            m.add(n, "A", do=do)
    # NODATA at existing authoritative names, and their own data.
    for i, n in enumerate(zm.auth):
        if n.labels[0] == b"*":
            continue
        for t in sorted(zm.types[n]):
            if t not in (dns.rdatatype.NSEC, dns.rdatatype.CNAME):
                m.rot(n, dns.rdatatype.to_text(t), do=True, case=True)
        for t in ("MX", "SRV", "DS", "NS"):
            for do in (False, True):
                m.rot(n, t, do=do)
    # NSEC3 owner names (a sample): answered as names that do not exist.
    for n in zm.nsec3_owners[:20]:
        for t in ("NSEC3", "A"):
            m.rot(n, t, do=True, case=True)
            m.rot(n, t, do=False)
    # Empty non-terminals, and names below them.
    for e in zm.ents:
        for do in (False, True):
            m.rot(e, "A", do=do)
            m.rot(e, "DS", do=do)
            m.rot(dns.name.from_text("nonexistent", e), "TXT", do=do)
    # Wildcards: matches (one and two labels deep), NODATA, the '*' name itself.
    for w in zm.wildcards:
        parent = w.parent()
        for do in (False, True):
            for t in sorted(zm.types[w]) + [dns.rdatatype.A, dns.rdatatype.MX]:
                t = dns.rdatatype.to_text(t)
                m.rot(dns.name.from_text("match", parent), t, do=do, case=True)
                m.rot(dns.name.from_text("two.deep", parent), t, do=do)
                m.rot(w, t, do=do)
    # CNAMEs: the CNAME itself, a type its target has and one it lacks.
    for c in zm.cnames:
        for do in (False, True):
            for t in ("CNAME", "A", "AAAA", "MX", "TXT", "DS"):
                m.rot(c, t, do=do, case=True)
    # DNAMEs (RFC 6672): the owner itself, and names one and two labels below
    # it for types the target has or lacks; a name whose substitution would
    # be too long (YXDOMAIN).
    for d in zm.dnames:
        for do in (False, True):
            for t in ("DNAME", "A", "NS"):
                m.rot(d, t, do=do, case=True)
            for below in ("www", "a.b", "x", "ns1"):
                for t in ("A", "AAAA", "TXT", "CNAME", "DNAME", "DS", "NS", "ANY"):
                    m.rot(dns.name.from_text(below, d), t, do=do, case=True)
        target = zm.zone.find_rdataset(d, "DNAME")[0].target
        room = 255 - len(d.to_wire())
        if len(target.to_wire()) > len(d.to_wire()) and room > 2:
            labels, left = [], room
            while left > 2:  # fill the QNAME to 255 bytes: its substitution is longer
                n = min(63, left - 1)
                labels.append("y" * n)
                left -= n + 1
            long = dns.name.Name(tuple(lab.encode() for lab in labels) + d.labels)
            for do in (False, True):
                m.rot(long, "A", do=do)
    # ANY over UDP and TCP, at the apex, a delegation, glue, data, NXDOMAIN.
    anys = [o, cuts[0], cuts[-1], dns.name.from_text("nonexistent-any", o)]
    anys += zm.glue[:2] + zm.auth[:3] + zm.ents[:1] + zm.cnames[:1]
    anys += [dns.name.from_text("match-any", w.parent()) for w in zm.wildcards[:1]]
    for n in anys:
        m.every_transport(n, "ANY")
    # DS at the apex, over both transports.
    for do in (False, True):
        m.add(o, "DS", do=do, tcp=True)
        m.add(o, "DS", do=do)
    m.add(o, "DS", payload=None)
    # CHAOS identity (both servers are given IDENTITY) and NSID.
    for n in ("id.server.", "hostname.bind."):
        m.add(n, "TXT", rdclass="CH")
        m.add(n, "TXT", payload=None, rdclass="CH")
    for n, t in ((o, "SOA"), (cuts[0], "NS"), (dns.name.from_text("nsid-nx", o), "A")):
        m.add(n, t, do=True, nsid=True)
        m.add(n, t, do=True, nsid=True, tcp=True)
    return m.queries


# ---- sending ----

def query_wire(q, qid):
    m = dns.message.make_query(q.qname, q.qtype, rdclass=q.rdclass,
                               use_edns=0 if q.payload is not None else None,
                               payload=q.payload or 0, want_dnssec=q.do)
    m.id = qid
    m.flags = q.flags
    if q.nsid:
        m.use_edns(0, dns.flags.DO if q.do else 0, q.payload,
                   options=[dns.edns.GenericOption(dns.edns.NSID, b"")])
    return m.to_wire()


class Client:
    """Sends queries to one server: UDP on one connected socket (a query is
    resent when no answer comes), TCP a connection per query."""

    def __init__(self, host, port, what):
        self.addr = (host, port)
        self.what = what
        self.udp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp_sock.connect(self.addr)
        self.udp_sock.settimeout(TIMEOUT)

    def close(self):
        self.udp_sock.close()

    def ask(self, wire, tcp):
        return self.tcp(wire) if tcp else self.udp(wire)

    def udp(self, wire):
        for _ in range(3):
            self.udp_sock.send(wire)
            deadline = time.monotonic() + TIMEOUT
            try:
                while time.monotonic() < deadline:
                    r = self.udp_sock.recv(65535)
                    if r[:2] == wire[:2]:  # a late answer to an earlier try otherwise
                        return r
            except socket.timeout:
                continue
        raise AssertionError(f"{self.what}: no UDP answer to {dns.message.from_wire(wire)}")

    def tcp(self, wire):
        with socket.create_connection(self.addr, timeout=TIMEOUT) as s:
            s.sendall(struct.pack("!H", len(wire)) + wire)
            msg = read_frame(s)
            assert msg is not None, "TCP connection closed mid-message"
            return msg


# ---- comparing ----

def rr_key(rrset):
    """One record (messages are parsed one RR per RRset) as a comparable tuple:
    owner lower-cased, type, covered type, TTL, canonical RDATA."""
    return (rrset.name.to_text().lower(), rrset.rdtype, rrset.covers, rrset.ttl,
            rrset[0].to_digestable())


def texts(msg):
    """rr_key -> presentation text, for messages."""
    out = {}
    for sec in (msg.answer, msg.authority, msg.additional):
        for r in sec:
            out[rr_key(r)] = r.to_text()
    return out


def edns_view(msg):
    if msg.edns < 0:
        return None
    return (msg.edns, msg.payload, msg.ednsflags & dns.flags.DO,
            sorted((o.otype, o.to_wire()) for o in msg.options))


def ede_options(view):
    """The info codes of the EDE options in an edns_view (EXTRA-TEXT aside)."""
    return [o[1][:2].hex() for o in view[3] if o[0] == dns.edns.EDE] if view is not None else []


def without_ede(view):
    return view[:3] + ([o for o in view[3] if o[0] != dns.edns.EDE],) if view is not None else None


SEC_NAMES = ("answer", "authority", "additional")


class Comparer:
    """Compares tldnode's response (a) with the peer's (b) to the same query;
    peer is "Knot" or "NSD", client a Client to fetch the peer's complete
    (TCP) answer when it truncated and tldnode did not, tldnode one to fetch
    tldnode's when tldnode alone truncated."""

    def __init__(self, zm, peer, client, tldnode):
        self.zm = zm
        self.peer = peer
        self.client = client
        self.tldnode = tldnode
        self.normalised = Counter()
        self.differences = []
        self.compared = 0
        self.kinds = Counter()

    def compare(self, q, qwire, a, b):
        self.compared += 1
        self.kinds[response_kind(a)] += 1
        if wire_flags(qwire) & dns.flags.CD and not wire_flags(b) & dns.flags.CD:
            self.normalised[f"CD cleared by {self.peer} (RFC 4035 3.1.6: copy it)"] += 1
        if wire_flags(a) & wire_flags(b) & dns.flags.TC:
            self.normalised["both truncated (TC=1): sections not compared"] += 1
        if self.same(q, qwire, a, b):
            return
        problems = self.compare_one(q, qwire, a, b)
        if problems:
            self.differences.append((q, problems))

    def same(self, q, qwire, a, b):
        """Fast path (dnspython takes milliseconds to parse a referral): True
        when the responses are plainly alike: ids and questions echoed, RD
        and CD copied, the same flags (Knot's CD put back) and the same
        records, OPT included, in each section; and a UDP response within
        the limit. Anything else goes to compare_one()."""
        qend = question_end(qwire)
        if a[:2] != qwire[:2] or b[:2] != qwire[:2] or a[12:qend] != qwire[12:qend] \
                or b[12:qend] != qwire[12:qend] or (not q.tcp and len(a) > udp_limit(q)):
            return False
        fa, fb, fq = wire_flags(a), wire_flags(b), wire_flags(qwire)
        if (fa ^ fq) & (dns.flags.RD | dns.flags.CD):
            return False
        if fq & dns.flags.CD:
            fb |= dns.flags.CD
        try:
            return fa == fb and raw_sections(a) == raw_sections(b)
        except (IndexError, ValueError):
            return False

    def compare_one(self, q, qwire, a, b):
        problems = []
        qend = question_end(qwire)
        for who, w in (("tldnode", a), (self.peer, b)):
            if w[:2] != qwire[:2]:
                problems.append(f"{who}: id not echoed")
            if w[12:qend] != qwire[12:qend]:
                problems.append(f"{who}: question not echoed byte for byte (0x20)")
        limit = udp_limit(q)
        if not q.tcp and len(a) > limit:
            problems.append(f"tldnode: {len(a)} bytes over UDP, limit {limit}")
        ma = dns.message.from_wire(a, one_rr_per_rrset=True)
        mb = dns.message.from_wire(b, one_rr_per_rrset=True)
        fa, fb, fq = wire_flags(a), wire_flags(b), wire_flags(qwire)
        if (fa ^ fq) & (dns.flags.RD | dns.flags.CD):
            problems.append(f"tldnode: RD/CD not copied: query {flags_text(qwire)}, "
                            f"response {flags_text(a)}")
        if fq & dns.flags.CD:
            fb |= dns.flags.CD
        if q.rdclass == "CH" and (fa ^ fb) & dns.flags.AA:
            fb ^= dns.flags.AA
            self.normalised["AA on CHAOS identity answers (RFC 4892: unspecified)"] += 1
        if ma.rcode() == dns.rcode.YXDOMAIN:
            return problems + self.compare_yxdomain(ma, mb)
        tc_a, tc_b = bool(fa & dns.flags.TC), bool(fb & dns.flags.TC)
        if (fa & ~dns.flags.TC) != (fb & ~dns.flags.TC):
            problems.append(f"header flags/rcode: tldnode {flags_text(a)}, {self.peer} {flags_text(b)}")
        if ma.rcode() != mb.rcode():
            problems.append(f"rcode: tldnode {dns.rcode.to_text(ma.rcode())}, "
                            f"{self.peer} {dns.rcode.to_text(mb.rcode())}")
        ea, eb = edns_view(ma), edns_view(mb)
        ede_a, ede_b = ede_options(ea), ede_options(eb)
        if ede_a and ede_b and ede_a != ede_b:
            problems.append(f"EDE: tldnode {ede_a}, {self.peer} {ede_b}")
        elif ede_a != ede_b:
            self.normalised["EDE sent by one server only (RFC 8914: optional)"] += 1
        ea, eb = without_ede(ea), without_ede(eb)
        if ea != eb:
            problems.append(f"EDNS: tldnode {ea}, {self.peer} {eb}")
        if problems:
            return problems
        if q.qtype == "ANY" and fa & dns.flags.AA and ma.answer and not tc_a:
            return self.compare_any(q, qwire, ma, mb, tc_b)
        if tc_a == tc_b:
            if tc_a:
                return []
            return self.compare_sections(q, a, ma, mb)
        if tc_b:
            # Knot truncated what fits (it keeps more room free than the
            # limit needs): compare with its complete answer.
            ref = self.reference(qwire)
            self.normalised[f"{self.peer} truncated, tldnode fit the limit: compared with "
                            f"{self.peer} over TCP"] += 1
            return self.compare_sections(q, a, ma, ref)
        # tldnode truncated, Knot did not: only right when Knot left out
        # in-domain glue, which RFC 9471 2.1 forbids without TC=1.
        ref = self.reference(qwire)
        if not ma.answer and self.missing_in_domain_glue(mb, ref):
            self.normalised[f"tldnode TC=1, {self.peer} dropped in-domain glue without TC "
                            "(RFC 9471 2.1)"] += 1
            return []
        # Or when tldnode's complete answer (over TCP) does not fit the limit
        # and matches the peer's under the rules here: the peer sent less
        # than tldnode must (e.g. NSD's proofs after a DNAME, below).
        full = self.tldnode.tcp(qwire)
        if len(full) > udp_limit(q) and not self.compare_sections(
                q, full, dns.message.from_wire(full, one_rr_per_rrset=True), mb):
            self.normalised[f"tldnode TC=1 (its complete answer exceeds the limit), {self.peer} "
                            "fit by sending less"] += 1
            return []
        return [f"tldnode truncated (TC=1), {self.peer} did not, and kept all in-domain glue"]

    def reference(self, qwire):
        return dns.message.from_wire(self.client.tcp(qwire), one_rr_per_rrset=True)

    def compare_any(self, q, qwire, ma, mb, tc_b):
        """RFC 8482: one RRset answers ANY. tldnode's answer must be a subset
        of Knot's (complete) one, the authority sections equal; the additional
        section (Knot adds NS targets' addresses) is not compared."""
        ref = self.reference(qwire) if tc_b else mb
        sa = [section(s) for s in (ma.answer, ma.authority)]
        sr = [section(s) for s in (ref.answer, ref.authority)]
        if sa[0] - sr[0]:
            # The peer chose another RRset (RFC 8482 4.1 leaves the choice
            # open): tldnode's must still be the zone's data at the name.
            held = self.zm.records_at(dns.name.from_text(q.qname))
            if sa[0] - held:
                return [f"ANY: not in {self.peer}'s answer nor in the zone: "
                        f"{sorted(sa[0] - held)}"]
            self.normalised[f"ANY: tldnode and {self.peer} chose different RRsets "
                            "(RFC 8482 4.1)"] += 1
        elif sa[0] != sr[0]:
            self.normalised[f"ANY: tldnode answers a subset of {self.peer}'s (RFC 8482)"] += 1
        if sa[1] != sr[1] and not self.apex_ns_added(ma, sa[1], sr[1]) and \
                not self.dname_proof_left_out(ma, sa[1], sr[1]):
            return ["ANY: authority sections differ"]
        return []

    def compare_sections(self, q, a, ma, mb):
        sa = [section(s) for s in (ma.answer, ma.authority, ma.additional)]
        sb = [section(s) for s in (mb.answer, mb.authority, mb.additional)]
        if sa == sb:
            return []
        if sa[0] == sb[0] and sa[1] != sb[1] and self.wildcard_nsec_proof(q, ma, sa[1], sb[1]):
            sb[1] = sa[1]
        if sa[0] == sb[0] and sa[1] != sb[1] and self.apex_ns_added(ma, sa[1], sb[1]):
            sb[1] = sa[1]
        if sa[0] == sb[0] and sa[1] != sb[1] and self.dname_proof_left_out(ma, sa[1], sb[1]):
            sb[1] = sa[1]
        if sa[0] == sb[0] and sa[1] != sb[1] and self.wildcard_name_extra(q, sa[1], sb[1]):
            sb[1] = sa[1]
        if sa[0] != sb[0] and sa[1:] == sb[1:] and self.loop_repeated(sa[0], sb[0]):
            sb[0] = sa[0]
        if sa[:2] == sb[:2]:
            p = self.additional_choice(q, a, ma, mb, sa[2], sb[2])
            if p is None:
                return []
            return [p]
        ta, tb = texts(ma), texts(mb)
        out = []
        for i, name in enumerate(SEC_NAMES):
            for k in sa[i] - sb[i]:
                out.append(f"{name}: only tldnode: {ta.get(k, k)}")
            for k in sb[i] - sa[i]:
                out.append(f"{name}: only {self.peer}: {tb.get(k, k)}")
        return out

    def wildcard_nsec_proof(self, q, ma, aa, ab):
        """qtype NSEC answered from a wildcard: the answer is the wildcard's
        NSEC with the QNAME as owner, and the NSEC proving that no closer
        name exists (RFC 4035 3.1.3.3: MUST) is the wildcard's own NSEC.
        Knot 3.2 leaves that proof out (it sees the same record in the
        answer); tldnode sends it. True when that is the only difference."""
        if q.qtype != "NSEC" or ab - aa:
            return False
        sigs = [r for r in ma.answer if r.rdtype == dns.rdatatype.RRSIG]
        if not sigs or sigs[0][0].labels >= len(sigs[0].name) - 1:
            return False  # not a wildcard expansion
        wild = dns.name.Name((b"*",) + sigs[0].name.labels[-1 - sigs[0][0].labels:])
        if any(dns.name.from_text(k[0]) != wild or k[1] != dns.rdatatype.NSEC and
               k[2] != dns.rdatatype.NSEC for k in aa - ab):
            return False
        self.normalised[f"wildcard NSEC proof left out by {self.peer} for qtype NSEC "
                        "(RFC 4035 3.1.3.3)"] += 1
        return True

    def compare_yxdomain(self, ma, mb):
        """A DNAME substitution longer than a name may be: RFC 6672 2.2 sets
        YXDOMAIN, and tldnode answers with the DNAME (and its RRSIG) alone.
        NSD answers so too; Knot 3.2 adds the SOA, and when the DNAME is met
        after another substitution it answers NXDOMAIN. The peer's answer
        must hold the same DNAME records."""
        aa, ab = section(ma.answer), section(mb.answer)
        if any(k[1] != dns.rdatatype.DNAME and k[2] != dns.rdatatype.DNAME for k in aa):
            return ["YXDOMAIN: tldnode's answer holds more than the DNAME"]
        if aa - ab:
            return [f"YXDOMAIN: the DNAME is not in {self.peer}'s answer"]
        if mb.rcode() != dns.rcode.YXDOMAIN:
            if self.peer != "Knot" or mb.rcode() != dns.rcode.NXDOMAIN:
                return [f"YXDOMAIN: {self.peer} answers {dns.rcode.to_text(mb.rcode())}"]
            self.normalised["Knot NXDOMAIN where a DNAME substitution is too long "
                            "(RFC 6672 2.2: YXDOMAIN)"] += 1
        elif ma.authority != mb.authority or ab != aa:
            self.normalised[f"YXDOMAIN: {self.peer} adds records beside the DNAME"] += 1
        return []

    def dname_proof_left_out(self, ma, aa, ab):
        """NSD 4.6 leaves out the NSEC records that deny the name a DNAME
        substitution leads to (with NSEC3 it sends them, as tldnode and Knot
        do with both: RFC 4035 3.1.3.2 asks for the proof of the last name).
        True when that is the only authority difference."""
        if not any(r.rdtype == dns.rdatatype.DNAME for r in ma.answer) or ab - aa:
            return False
        if not all(dns.rdatatype.NSEC in (k[1], k[2]) for k in aa - ab):
            return False
        self.normalised[f"NSEC proof after a DNAME left out by {self.peer}"] += 1
        return True

    def wildcard_name_extra(self, q, aa, ab):
        """A query for a wildcard's own name ("*.x", which exists): the NSEC3
        matching it proves NODATA (RFC 5155 7.2.3), as tldnode and Knot
        answer; NSD 4.6 adds another NSEC3, as if the name were expanded.
        True when that is the only authority difference."""
        if not q.qname.startswith("*.") or aa - ab:
            return False
        if not all(dns.rdatatype.NSEC3 in (k[1], k[2]) for k in ab - aa):
            return False
        self.normalised[f"extra NSEC3 from {self.peer} at a wildcard's own name"] += 1
        return True

    def loop_repeated(self, aa, ab):
        """A chain of CNAMEs (or DNAME substitutions) that comes back to a
        name it has reached: tldnode stops there, with each record once;
        Knot 3.2 sometimes goes round the loop again. True when that is the
        only answer difference."""
        if set(aa) != set(ab) or any(n != 1 for n in aa.values()):
            return False
        chain = (dns.rdatatype.CNAME, dns.rdatatype.DNAME)
        if not all(k[1] in chain or k[2] in chain for k in ab - aa):
            return False
        self.normalised[f"records repeated by {self.peer} in a CNAME/DNAME loop"] += 1
        return True

    def apex_ns_added(self, ma, aa, ab):
        """NSD puts the zone's NS RRset (and its RRSIG) in the authority
        section of an authoritative answer, where tldnode and Knot leave it
        out (minimal responses: it is optional, RFC 2181 6.1 names the
        apex NS the zone's authoritative servers but no RFC requires
        repeating them). True when that is the only authority difference."""
        if not ma.flags & dns.flags.AA or not ma.answer or aa - ab:
            return False
        apex = self.zm.origin.to_text().lower()
        if not all(k[0] == apex and dns.rdatatype.NS in (k[1], k[2]) for k in ab - aa):
            return False
        self.normalised[f"apex NS in the authority of answers, from {self.peer} "
                        "(optional)"] += 1
        return True

    def additional_choice(self, q, a, ma, mb, ga, gb):
        """Additional sections differ (answer and authority equal). Additional
        data is optional (RFC 1034 4.3.2 step 6, RFC 2181 9), its RRSIGs too
        (RFC 4035 3.1.1: an RRset may be kept without them), but not glue
        below the delegation (RFC 9471 2.1). Both sections must hold only
        A/AAAA (and their RRSIGs) of the zone at the NS/MX/SRV targets;
        tldnode may leave out what Knot sent only when it did not fit, and
        never in-domain glue. Returns None when that holds."""
        allowed, in_domain = self.zm.additional_for(ma)
        allowed_b, _ = self.zm.additional_for(mb)  # its authority may have the apex NS
        for who, g, ok in (("tldnode", ga, allowed), (self.peer, gb, allowed_b)):
            extra = g - ok
            if extra:
                return f"additional: {who} sent records that are not target addresses: " \
                    f"{sorted(extra)}"
        if not ma.flags & dns.flags.AA and in_domain - ga:
            return "additional: tldnode left out in-domain glue without TC (RFC 9471)"
        # tldnode adds each RRset with its RRSIGs (with DO), all or nothing,
        # and tries every one: what it left out must not fit in what is left.
        units = rrset_sizes(allowed if q.do else
                            Counter({k: n for k, n in allowed.items()
                                     if k[1] != dns.rdatatype.RRSIG}))
        have = rrset_sizes(ga)
        for unit, size in units.items():
            if unit not in have and (q.tcp or len(a) + size <= udp_limit(q)):
                return f"additional: tldnode left out {unit} ({size} bytes) with room for it"
        if not ma.flags & dns.flags.AA and in_domain - gb:
            self.normalised[f"{self.peer} dropped in-domain glue without TC (RFC 9471 2.1)"] += 1
        self.normalised["additional data chosen differently (RFC 2181 9, RFC 4035 "
                        "3.1.1)"] += 1
        return None

    def missing_in_domain_glue(self, mb, ref):
        """True when Knot's referral mb lacks in-domain glue its complete
        answer ref has."""
        if mb.flags & dns.flags.AA or not mb.authority:
            return False
        _, in_domain = self.zm.additional_for(ref)
        return bool(in_domain - section(mb.additional))


# Types whose RDATA names may be compressed (RFC 3597 4), and where.
COMPRESSED = {2: "n", 5: "n", 12: "n", 15: "2n", 6: "nn20"}


def raw_name(w, off):
    """The name at w[off] (compression followed), lower-cased, and the offset
    after it as it sits at off."""
    labels, end, hops = [], None, 0
    while True:
        n = w[off]
        if n >= 0xC0:
            if end is None:
                end = off + 2
            off = (n & 0x3F) << 8 | w[off + 1]
            hops += 1
            if hops > 128:
                raise ValueError("pointer loop")
            continue
        if n == 0:
            return b".".join(labels).lower(), (off + 1 if end is None else end)
        labels.append(w[off + 1:off + 1 + n])
        off += 1 + n


def raw_rdata(w, rtype, off, rdlen):
    """The RDATA, with the names of compressible types expanded and
    lower-cased (compression may copy the QNAME's case into them)."""
    layout = COMPRESSED.get(rtype)
    if layout is None:
        return bytes(w[off:off + rdlen])
    out, p = [], off
    for part in layout:
        if part == "n":
            name, p = raw_name(w, p)
            out.append(name + b"\0")
        else:
            out.append(bytes(w[p:p + int(part)]))
            p += int(part)
    return b"".join(out)


def raw_sections(w):
    """The answer, authority and additional sections of a response as sorted
    lists of (owner, type, class, TTL, RDATA); the OPT RR is one of them."""
    qd, an, ns, ar = struct.unpack("!HHHH", w[4:12])
    off = 12
    for _ in range(qd):
        _, off = raw_name(w, off)
        off += 4
    out = []
    for count in (an, ns, ar):
        sec = []
        for _ in range(count):
            owner, off = raw_name(w, off)
            rtype, rclass, ttl, rdlen = struct.unpack("!HHIH", w[off:off + 10])
            off += 10
            if off + rdlen > len(w):
                raise ValueError("truncated")
            sec.append((owner, rtype, rclass, ttl, raw_rdata(w, rtype, off, rdlen)))
            off += rdlen
        out.append(sorted(sec))
    return out


def section(sec):
    return Counter(rr_key(r) for r in sec)


def rrset_sizes(keys):
    """Approximate wire size of each RRset (RRSIGs counted with the RRset
    they cover) among record keys: 12 bytes per record plus its RDATA."""
    out = Counter()
    for k, n in keys.items():
        out[(k[0], k[2] or k[1])] += n * (12 + len(k[4]))
    return out


def response_kind(w):
    """What a response is, from its header: for the summary."""
    f = wire_flags(w)
    an, ns = struct.unpack("!HH", w[6:10])
    rcode = dns.rcode.to_text(f & 0xF)
    if f & dns.flags.TC:
        return "truncated"
    if rcode != "NOERROR":
        return rcode
    if not f & dns.flags.AA:
        return "referral" if ns else "other"
    return "answer" if an else "NODATA"


def udp_limit(q):
    """The UDP size limit of a response: 512 without EDNS, else the payload
    size clamped to [512, 1232] (both servers' own maximum is 1232)."""
    return 512 if q.payload is None else max(512, min(q.payload, 1232))


def question_end(wire):
    """Offset just after the question of a query (QNAME uncompressed)."""
    i = 12
    while wire[i]:
        i += wire[i] + 1
    return i + 1 + 4


def wire_flags(w):
    return struct.unpack("!H", w[2:4])[0]


def flags_text(w):
    f = wire_flags(w)
    return f"{dns.flags.to_text(f) or '-'} rcode={f & 0xF}"


# ---- running a zone ----

@pytest.fixture(params=["Knot", "NSD"])
def peer(request):
    """(name, factory) of the server to compare with: Knot, then NSD."""
    factory = {"Knot": "knotd_factory", "NSD": "nsd_factory"}[request.param]
    return request.param, request.getfixturevalue(factory)


def run_differential(zm, zonefile, tldctl, store, tldnode_server, peer, queries, label,
                     capsys):
    t0 = time.monotonic()
    origin = zm.origin.to_text()
    import_zone(tldctl, store, zonefile)
    node = tldnode_server(store, "--workers", 1,
                          listen=["127.0.0.1"], identity=IDENTITY)
    name, factory = peer
    knot = factory({origin: zonefile}, nsid=IDENTITY)
    t_ready = time.monotonic()
    ca, cb = Client(node.host, node.port, "tldnode"), Client(knot.addr, knot.port, name)
    cmp = Comparer(zm, name, cb, ca)
    try:
        for i, q in enumerate(queries):
            qwire = query_wire(q, (i * 7919) & 0xFFFF)
            a = ca.ask(qwire, q.tcp)
            b = cb.ask(qwire, q.tcp)
            cmp.compare(q, qwire, a, b)
    finally:
        ca.close()
        cb.close()
        knot.stop()
    t_end = time.monotonic()
    mix = Counter()
    for q in queries:
        mix["TCP" if q.tcp else "UDP"] += 1
        mix["no EDNS" if q.payload is None else f"EDNS {q.payload}"] += 1
        mix["DO"] += q.do
        mix["mixed case"] += q.qname != q.qname.lower()
    with capsys.disabled():
        print(f"\ndifferential {label} against {name}: {cmp.compared} queries compared, "
              f"{len(cmp.differences)} differences "
              f"(setup {t_ready - t0:.1f} s, queries {t_end - t_ready:.1f} s)")
        print("  queries: " + ", ".join(f"{k} {n}" for k, n in sorted(mix.items())))
        print("  tldnode's responses: " + ", ".join(f"{k} {n}" for k, n in
                                                  sorted(cmp.kinds.items())))
        for what, n in sorted(cmp.normalised.items()):
            print(f"  normalised: {what}: {n}")
        for q, problems in cmp.differences[:20]:
            print(f"  DIFF {q}")
            for p in problems[:12]:
                print(f"     {p}")
    return cmp


def report(cmp, n):
    assert cmp.compared == n
    assert not cmp.differences, (
        f"{len(cmp.differences)} of {cmp.compared} queries answered differently; first: "
        + "\n".join(f"{q}: {p}" for q, p in cmp.differences[:5]))


# ---- the tests ----

def test_differential_sample(tldctl, tmp_store, tldnode_server, peer, sample_zone,
                             capsys):
    zm = read_zone(sample_zone, "sample.")
    assert zm.signed and zm.wildcards and zm.cnames and zm.ents
    queries = build_queries(zm)
    cmp = run_differential(zm, sample_zone, tldctl, tmp_store, tldnode_server, peer,
                           queries, "sample.zone", capsys)
    assert len(queries) > 2000
    report(cmp, len(queries))


def test_differential_root(tldctl, tmp_store, tldnode_server, peer, shared_zones,
                           capsys):
    zonefile = shared_zones / "root.zone"
    zm = read_zone(zonefile, ".")
    assert zm.signed and len(zm.cuts) == 1479
    queries = build_queries(zm)
    cmp = run_differential(zm, zonefile, tldctl, tmp_store, tldnode_server, peer,
                           queries, "root.zone", capsys)
    assert len(queries) > 15000
    report(cmp, len(queries))


DNAME_ZONE = """\
$ORIGIN dntest.
$TTL 3600
@	IN SOA ns1.nic.dntest. hostmaster.nic.dntest. 2026010101 1800 900 604800 300
@	IN NS ns1.nic.dntest.
@	IN NS ns2.nic.dntest.
ns1.nic	IN A 192.0.2.1
ns2.nic	IN A 192.0.2.2
ns2.nic	IN AAAA 2001:db8::2
www	IN A 192.0.2.80
www	IN AAAA 2001:db8::80
new	IN A 192.0.2.90
www.new	IN A 192.0.2.91
www.new	IN TXT "below the DNAME target"
a.b.new	IN A 192.0.2.92
old	7200 IN DNAME new.dntest.
out	IN DNAME example.net.
apexward	IN DNAME dntest.
loop	IN DNAME loop2.dntest.
loop2	IN DNAME loop.dntest.
deleg	IN NS ns1.deleg.dntest.
deleg	IN NS ns1.example.net.
ns1.deleg	IN A 192.0.2.53
signed	IN NS ns1.example.net.
signed	IN DS 12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
todeleg	IN DNAME deleg.dntest.
tosigned	IN DNAME signed.dntest.
short	IN DNAME a-rather-long-label-to-make-substitutions-overflow-the-limit.dntest.
alias	IN CNAME old.dntest.
chain	IN CNAME www.old.dntest.
tocut	IN CNAME www.deleg.dntest.
toapex	IN CNAME dntest.
cloop1	IN CNAME cloop2.dntest.
cloop2	IN CNAME cloop1.dntest.
*.wc	IN CNAME www.dntest.
*.wmx	IN MX 10 www.dntest.
self	IN NS self.dntest.
self	IN A 192.0.2.77
self	IN AAAA 2001:db8::77
"""


def sign_zone(unsigned, origin, denial):
    """Signs the master file unsigned with ldns-signzone and fresh ECDSA keys
    (made beside it): denial "NSEC", or "NSEC3" (opt-out flag, salt, no extra
    iterations). Returns the signed file's path; skips the test when
    ldnsutils is not installed."""
    import shutil
    if not (shutil.which("ldns-keygen") and shutil.which("ldns-signzone")):
        pytest.skip("ldns-keygen / ldns-signzone absent (apt-get install ldnsutils)")
    d = unsigned.parent
    keys = []
    for ksk in (True, False):
        p = check(run("ldns-keygen", "-a", "ECDSAP256SHA256", *(["-k"] if ksk else []),
                      origin, cwd=d))
        keys.append(str(d / p.stdout.strip()))
    nsec3 = ["-n", "-p", "-s", "c0ffee", "-t", "0"] if denial == "NSEC3" else []
    signed = d / "signed.zone"
    check(run("ldns-signzone", *nsec3, "-o", origin, "-e", "20361231000000", "-f", signed,
              unsigned, *reversed(keys)))
    return signed


@pytest.fixture(scope="session", params=["NSEC", "NSEC3"])
def dname_zone(request, tmp_path_factory):
    """DNAME_ZONE signed with NSEC, or with NSEC3 opt-out (sign_zone)."""
    unsigned = tmp_path_factory.mktemp("dname") / "dntest.zone"
    unsigned.write_text(DNAME_ZONE)
    return sign_zone(unsigned, "dntest.", request.param), request.param


def test_differential_dname(tldctl, tmp_store, tldnode_server, peer, dname_zone, capsys):
    """DNAME substitution (RFC 6672), CNAME chains into a delegation or back to
    a name already reached, on a small zone signed with NSEC or NSEC3."""
    zonefile, denial = dname_zone
    zm = read_zone(zonefile, "dntest.")
    assert zm.signed and len(zm.dnames) == 8 and zm.cnames
    queries = build_queries(zm, nx=100)
    cmp = run_differential(zm, zonefile, tldctl, tmp_store, tldnode_server, peer, queries,
                           f"dntest. (DNAMEs, {denial})", capsys)
    report(cmp, len(queries))


NSEC3_DELEGATIONS = 5000


@pytest.fixture(scope="session")
def nsec3_zone(tmp_path_factory, gen_zone):
    """A 5,000-delegation TLD `nsec3tld.` from gen-zone.py (seed 11; some
    delegations with DS, some with in-domain glue), signed with NSEC3."""
    unsigned = tmp_path_factory.mktemp("nsec3") / "nsec3tld.zone"
    check(run(PYTHON, gen_zone, "--origin", "nsec3tld", "--delegations", NSEC3_DELEGATIONS,
              "--seed", 11, unsigned))
    return sign_zone(unsigned, "nsec3tld.", "NSEC3")


def test_differential_nsec3(tldctl, tmp_store, tldnode_server, peer, nsec3_zone, capsys):
    """An NSEC3-signed TLD (as most large TLDs are): referrals to delegations with and
    without DS, and NXDOMAIN/NODATA with closest-encloser proofs."""
    zm = read_zone(nsec3_zone, "nsec3tld.")
    assert zm.signed and len(zm.cuts) == NSEC3_DELEGATIONS
    queries = build_queries(zm, nx=1000)
    cmp = run_differential(zm, nsec3_zone, tldctl, tmp_store, tldnode_server, peer, queries,
                           "nsec3tld. (5,000 delegations, NSEC3)", capsys)
    report(cmp, len(queries))


SYNTH_DELEGATIONS = 100000
SYNTH_SAMPLE = 3000


@pytest.fixture(scope="session")
def synthetic_zone(tmp_path_factory, gen_zone):
    """A 100,000-delegation TLD `difftld.` from gen-zone.py (seed 7)."""
    path = tmp_path_factory.mktemp("synthetic") / "difftld.zone"
    check(run(PYTHON, gen_zone, "--origin", "difftld", "--delegations", SYNTH_DELEGATIONS,
              "--seed", 7, path))
    return path


def test_differential_synthetic(tldctl, tmp_store, tldnode_server, peer,
                                synthetic_zone, capsys):
    rng = random.Random(SEED)
    # The sample of delegations, picked from the owner column: a delegation's
    # glue (ns1.<deleg>) shares its last relative label.
    delegs = set()
    with open(synthetic_zone) as f:
        for line in f:
            w = line.split(None, 4)
            if len(w) > 3 and w[3] == "NS" and w[0] != "@":
                delegs.add(w[0])
    keep = set(rng.sample(sorted(delegs), SYNTH_SAMPLE)) | {"@", "a.nic", "b.nic", "c.nic",
                                                             "d.nic", "nic"}
    zm = read_zone(synthetic_zone, "difftld.",
                   keep=lambda o: o in keep or o.rsplit(".", 1)[-1] in keep)
    assert len(zm.cuts) == SYNTH_SAMPLE and not zm.signed
    queries = build_queries(zm, nx=1000)
    cmp = run_differential(zm, synthetic_zone, tldctl, tmp_store, tldnode_server,
                           peer, queries, "synthetic difftld. (100k delegations)",
                           capsys)
    assert len(queries) > 15000
    report(cmp, len(queries))
