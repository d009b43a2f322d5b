"""tldnode serving real clients: every behaviour promised by node/query.h and
lb/server.h, checked with dnspython (and dig/kdig for a few) over UDP, TCP and
IPv6 against the signed sample TLD, a small unsigned zone made here to force
truncation, and (when ../shared/zones is there) the real root zone.

    TLD_BUILD_DIR=build /usr/bin/python3 -m pytest -q tests/system/test_serve.py
"""

import calendar
import shutil
import signal
import socket
import struct
import time

import dns.dnssec
import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest

from conftest import (REPO, SAMPLE_ZONE, SHARED_ZONES, binary, free_port, import_zone,
                      read_frame,
                      ipv6_loopback, run, write_zone)

IN = dns.rdataclass.IN
CH = dns.rdataclass.CH
T = dns.rdatatype
IDENTITY = "tldnode-test"
VERSION_TEXT = "tldnode 9.9-test"
SAMPLE = dns.name.from_text("sample.")
SAMPLE_NOW = calendar.timegm((2030, 1, 1, 0, 0, 0))  # inside the sample's RRSIG validity
ROOT_NOW = calendar.timegm((2023, 5, 12, 0, 0, 0))  # inside root.zone's RRSIG validity
ROOT_ZONE = SHARED_ZONES / "root.zone"


# ---- a small unsigned zone whose referrals do not fit in 512 / 1232 bytes ----

def many_zone_text():
    """many.: SOA TTL 300 below MINIMUM 900 (negative TTL 300);
    mid.many.: 8 in-domain NS with A+AAAA glue: NS fit in 512 bytes, glue does not;
    big.many.: 13 in-domain NS, long names, A+AAAA: over 1232 bytes, under 4096;
    sib.many.: one in-domain NS and one sibling NS (glue under mid.many.)."""
    lines = ["$ORIGIN many.", "$TTL 3600",
             "@ 300 IN SOA ns.many. hostmaster.many. 1 1800 900 604800 900",
             "@ IN NS ns.many.", "ns IN A 192.0.2.53"]
    for i in range(8):
        host = f"ns{i}.{'m' * 27}{i}.mid"
        lines += [f"mid IN NS {host}", f"{host} IN A 198.51.100.{i + 1}",
                  f"{host} IN AAAA 2001:db8:100::{i + 1:x}"]
    for i in range(13):
        host = f"ns{i:02d}.{chr(ord('a') + i) * 50}.big"
        lines += [f"big IN NS {host}", f"{host} IN A 203.0.113.{i + 1}",
                  f"{host} IN AAAA 2001:db8:200::{i + 1:x}"]
    lines += ["sib IN NS ns.sib", "ns.sib IN A 192.0.2.99",
              f"sib IN NS ns0.{'m' * 27}0.mid"]
    return "\n".join(lines) + "\n"


MID_NS = [dns.name.from_text(f"ns{i}.{'m' * 27}{i}.mid.many.") for i in range(8)]
BIG_NS = [dns.name.from_text(f"ns{i:02d}.{chr(ord('a') + i) * 50}.big.many.")
          for i in range(13)]


# ---- fixtures ----

@pytest.fixture(scope="module")
def sample():
    """The sample zone parsed by dnspython (the expected data)."""
    if not SAMPLE_ZONE.is_file():
        pytest.skip(f"sample zone absent: {SAMPLE_ZONE}")
    return dns.zone.from_file(str(SAMPLE_ZONE), origin=SAMPLE, relativize=False)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store with the sample zone and many."""
    if not SAMPLE_ZONE.is_file():
        pytest.skip(f"sample zone absent: {SAMPLE_ZONE}")
    d = tmp_path_factory.mktemp("serve-store")
    tldctl = binary("tldctl")
    import_zone(tldctl, d, SAMPLE_ZONE)
    many = write_zone(d.parent / "many.zone", many_zone_text())
    import_zone(tldctl, d, many)
    return d


@pytest.fixture(scope="module")
def node(tldnode_server_module, store):
    """The main server: sample. and many., identity IDENTITY, --version VERSION_TEXT."""
    return tldnode_server_module(store, "--version", VERSION_TEXT, identity=IDENTITY)


@pytest.fixture(scope="module")
def root_node(tldnode_server_module, tmp_path_factory):
    """A server on the real root zone (skipped when ../shared/zones is absent)."""
    if not ROOT_ZONE.is_file():
        pytest.skip(f"root zone absent: {ROOT_ZONE}")
    d = tmp_path_factory.mktemp("root-store")
    import_zone(binary("tldctl"), d, ROOT_ZONE)
    return tldnode_server_module(d)


@pytest.fixture(scope="module")
def root():
    if not ROOT_ZONE.is_file():
        pytest.skip(f"root zone absent: {ROOT_ZONE}")
    return dns.zone.from_file(str(ROOT_ZONE), origin=dns.name.root, relativize=False)


# ---- helpers ----

def make(name, rdtype="A", rdclass="IN", *, do=False, edns=None, payload=1232, nsid=False,
         version=0):
    """A query; EDNS when edns (default: only with do or nsid)."""
    if edns is None:
        edns = do or nsid
    options = [dns.edns.GenericOption(dns.edns.NSID, b"")] if nsid else []
    m = dns.message.make_query(name, rdtype, rdclass)
    if edns:  # not through make_query, which turns use_edns=1 into 0 (dnspython 2.3)
        m.use_edns(version, ednsflags=dns.flags.DO if do else 0, payload=payload,
                   options=options)
    m.flags &= ~dns.flags.RD
    return m


def udp(node, msg, host=None, timeout=2.0):
    return dns.query.udp(msg, host or node.host, port=node.port, timeout=timeout)


def tcp(node, msg, host=None, timeout=2.0):
    return dns.query.tcp(msg, host or node.host, port=node.port, timeout=timeout)


def ask(node, name, rdtype="A", rdclass="IN", transport="udp", **kw):
    msg = make(name, rdtype, rdclass, **kw)
    return (udp if transport == "udp" else tcp)(node, msg)


def wire_udp(node, msg, host=None, timeout=2.0):
    """Sends a Message over UDP and returns (response bytes, Message)."""
    raw = raw_udp(node, msg.to_wire(), host=host, timeout=timeout)
    assert raw is not None, "no reply"
    return raw, dns.message.from_wire(raw)


def raw_udp(node, data, host=None, timeout=1.0):
    """Sends bytes over UDP; the reply's bytes, or None after timeout."""
    host = host or node.host
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(data, (host, node.port))
        try:
            return s.recv(65535)
        except socket.timeout:
            return None


def tcp_connect(node, host=None, timeout=3.0):
    host = host or node.host
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(timeout)
    s.connect((host, node.port))
    return s


def frame(data):
    return struct.pack("!H", len(data)) + data


def wait_closed(s, timeout):
    """Seconds until the peer closes s (EOF or reset), or None after timeout.
    Data received meanwhile is discarded."""
    start = time.monotonic()
    s.settimeout(0.05)
    while time.monotonic() - start < timeout:
        try:
            if s.recv(65535) == b"":
                return time.monotonic() - start
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
    return None


def aa(r):
    return bool(r.flags & dns.flags.AA)


def tc(r):
    return bool(r.flags & dns.flags.TC)


def rrsets(section, rdtype=None, covers=None):
    out = [rs for rs in section if rdtype is None or rs.rdtype == rdtype]
    if covers is not None:
        out = [rs for rs in out if rs.covers == covers]
    return out


def get(section, name, rdtype, covers=T.NONE):
    name = dns.name.from_text(name) if isinstance(name, str) else name
    for rs in section:
        if rs.name == name and rs.rdtype == rdtype and rs.covers == covers:
            return rs
    return None


def no_rrsig(r):
    for section in (r.answer, r.authority, r.additional):
        assert not rrsets(section, T.RRSIG), f"RRSIG without DO:\n{r}"


def sample_keys(sample):
    return {SAMPLE: sample.get_rrset(SAMPLE, T.DNSKEY)}


def validate(rrset, section, keys, now):
    """Asserts rrset has an RRSIG in section that validates with keys."""
    sig = get(section, rrset.name, T.RRSIG, covers=rrset.rdtype)
    assert sig is not None, f"no RRSIG for {rrset.name} {T.to_text(rrset.rdtype)}"
    dns.dnssec.validate(rrset, sig, keys, now=now)


def soa_negative_ttl(soa_rrset):
    return min(soa_rrset.ttl, soa_rrset[0].minimum)


def nsec_covers(nsec_rrset, name, apex):
    """True when the NSEC at nsec_rrset's owner covers name (owner < name < next,
    canonical order, the last NSEC wrapping to the apex)."""
    owner, nxt = nsec_rrset.name, nsec_rrset[0].next
    if nxt == apex:
        return owner < name
    return owner < name < nxt


def delegations(zone, apex):
    """[(cut, NS rdataset, DS rdataset or None)] of zone."""
    out = []
    for name, node in zone.nodes.items():
        if name == apex:
            continue
        ns = node.get_rdataset(IN, T.NS)
        if ns is not None:
            out.append((name, ns, node.get_rdataset(IN, T.DS)))
    return sorted(out, key=lambda x: x[0])


def expected_glue(zone, cut, ns):
    """{(name, type)} of the in-domain glue of a delegation."""
    glue = set()
    for rd in ns:
        if rd.target.is_subdomain(cut):
            node = zone.get_node(rd.target)
            for t in (T.A, T.AAAA):
                if node is not None and node.get_rdataset(IN, t) is not None:
                    glue.add((rd.target, t))
    return glue


def check_referral(r, zone, cut, ns, ds, do, keys=None, now=None, apex=None):
    """A referral to cut, as query.h promises it."""
    assert r.rcode() == dns.rcode.NOERROR, r
    assert not aa(r), f"referral with AA=1:\n{r}"
    assert r.answer == [], r
    got_ns = get(r.authority, cut, T.NS)
    if tc(r) and got_ns is None:
        return  # the NS RRset itself did not fit: TC=1, nothing more to check
    assert got_ns is not None, f"no NS for {cut}:\n{r}"
    assert {rd.target for rd in got_ns} == {rd.target for rd in ns}
    assert get(r.authority, cut, T.RRSIG, covers=T.NS) is None, "NS at a cut signed"
    if do:
        if ds is not None:
            got_ds = get(r.authority, cut, T.DS)
            assert got_ds is not None, f"DS missing with DO:\n{r}"
            assert set(got_ds) == set(ds)
            validate(got_ds, r.authority, keys, now)
        elif not tc(r):
            nsec = get(r.authority, cut, T.NSEC)
            assert nsec is not None, f"no NSEC proving no DS at {cut}:\n{r}"
            types = nsec_types(nsec[0])
            assert T.NS in types and T.DS not in types and T.SOA not in types
            validate(nsec, r.authority, keys, now)
    else:
        assert get(r.authority, cut, T.DS) is None, "DS without DO"
        no_rrsig(r)
    # RFC 9471: all in-domain glue, or TC=1
    want = expected_glue(zone, cut, ns)
    have = {(rs.name, rs.rdtype) for rs in r.additional if rs.rdtype in (T.A, T.AAAA)}
    if not tc(r):
        assert want <= have, f"in-domain glue missing without TC: {want - have}\n{r}"
    for rs in r.additional:
        if rs.rdtype in (T.A, T.AAAA):
            node = zone.get_node(rs.name)
            assert node is not None and set(rs) == set(node.get_rdataset(IN, rs.rdtype))


def _bitmap(window, bitmap):
    for i, byte in enumerate(bitmap):
        for bit in range(8):
            if byte & (0x80 >> bit):
                yield window * 256 + i * 8 + bit


def nsec_types(rd):
    return set(_bitmap_all(rd))


def _bitmap_all(rd):
    for window, bm in rd.windows:
        yield from _bitmap(window, bm)


# ---- referrals ----

def test_referral_in_domain_glue(node, sample):
    cut = dns.name.from_text("bosgrock.sample.")
    for qname in ("bosgrock.sample.", "www.bosgrock.sample.", "a.b.c.bosgrock.sample."):
        r = ask(node, qname, "A")
        zone_ns = sample.get_rdataset(cut, T.NS)
        check_referral(r, sample, cut, zone_ns, None, do=False)
        assert not tc(r)
        assert {(rs.name, rs.rdtype) for rs in r.additional} == {
            (dns.name.from_text("ns1.bosgrock.sample."), T.A),
            (dns.name.from_text("ns2.bosgrock.sample."), T.A),
            (dns.name.from_text("ns2.bosgrock.sample."), T.AAAA)}
        assert get(r.authority, cut, T.NS).ttl == 172800


def test_referral_for_glue_name_itself(node, sample):
    """An address query for a glue name below a cut is a referral, not an answer."""
    r = ask(node, "ns1.bosgrock.sample.", "A")
    assert not aa(r) and r.answer == []
    assert get(r.authority, "bosgrock.sample.", T.NS) is not None


def test_referral_out_of_zone_ns_has_no_additional(node, sample):
    r = ask(node, "bainfo.sample.", "A")
    check_referral(r, sample, dns.name.from_text("bainfo.sample."),
                   sample.get_rdataset("bainfo.sample.", T.NS), None, do=False)
    assert [rs for rs in r.additional if rs.rdtype != T.OPT] == []


def test_referral_with_ds_and_do(node, sample):
    cut = dns.name.from_text("chastskee794.sample.")
    r = ask(node, "www.chastskee794.sample.", "AAAA", do=True)
    check_referral(r, sample, cut, sample.get_rdataset(cut, T.NS),
                   sample.get_rdataset(cut, T.DS), do=True, keys=sample_keys(sample),
                   now=SAMPLE_NOW)
    assert get(r.authority, cut, T.RRSIG, covers=T.DS) is not None
    assert r.ednsflags & dns.flags.DO


def test_referral_unsigned_nsec_no_ds_proof(node, sample):
    cut = dns.name.from_text("bosgrock.sample.")
    r = ask(node, "host.bosgrock.sample.", "A", do=True)
    check_referral(r, sample, cut, sample.get_rdataset(cut, T.NS), None, do=True,
                   keys=sample_keys(sample), now=SAMPLE_NOW)
    nsec = get(r.authority, cut, T.NSEC)
    assert T.DS not in nsec_types(nsec[0]) and T.NS in nsec_types(nsec[0])
    assert get(r.authority, cut, T.DS) is None


@pytest.mark.parametrize("do", [False, True], ids=["plain", "do"])
def test_every_sample_delegation(node, sample, do):
    """Each of the ~300 delegations: NS, in-domain glue or TC, DS/NSEC with DO;
    without EDNS the response fits in 512 bytes."""
    keys = sample_keys(sample)
    dels = delegations(sample, SAMPLE)
    assert len(dels) > 250
    for cut, ns, ds in dels:
        for edns in ([True] if do else [False, True]):
            msg = make(dns.name.from_text("x", cut), "A", do=do, edns=edns)
            raw, r = wire_udp(node, msg)
            if not edns:
                assert len(raw) <= 512 and r.edns == -1
            check_referral(r, sample, cut, ns, ds, do, keys=keys, now=SAMPLE_NOW)


def test_referral_tc_without_edns_many_in_domain_ns(node):
    """mid.many.: 8 NS fit in 512 bytes, their 16 glue records do not: TC=1."""
    raw, r = wire_udp(node, make("www.mid.many.", "A", edns=False))
    assert len(raw) <= 512
    assert tc(r) and not aa(r) and r.rcode() == dns.rcode.NOERROR
    assert {rd.target for rd in get(r.authority, "mid.many.", T.NS)} == set(MID_NS)
    # the same over EDNS 1232 fits, without TC, with every glue record
    raw, r = wire_udp(node, make("www.mid.many.", "A", edns=True, payload=1232))
    assert not tc(r) and 512 < len(raw) <= 1232
    have = {(rs.name, rs.rdtype) for rs in r.additional}
    assert have >= {(n, t) for n in MID_NS for t in (T.A, T.AAAA)}


def test_referral_tc_over_1232_and_full_over_tcp(node):
    """big.many. (13 long in-domain NS + 26 glue, ~1500 bytes): TC=1 at 1232 and
    without EDNS; complete over TCP."""
    raw, r = wire_udp(node, make("big.many.", "A", edns=True, payload=4096))
    assert tc(r) and len(raw) <= 1232 and r.payload == 1232
    raw, r = wire_udp(node, make("big.many.", "A", edns=False))
    assert tc(r) and len(raw) <= 512
    r = tcp(node, make("big.many.", "A"))
    assert not tc(r)
    assert {rd.target for rd in get(r.authority, "big.many.", T.NS)} == set(BIG_NS)
    have = {(rs.name, rs.rdtype) for rs in r.additional}
    assert have == {(n, t) for n in BIG_NS for t in (T.A, T.AAAA)}
    assert len(r.to_wire()) > 1232


def test_referral_sibling_glue_when_it_fits(node):
    r = ask(node, "sib.many.", "A", edns=True)
    assert not tc(r) and not aa(r)
    have = {(rs.name, rs.rdtype) for rs in r.additional}
    assert (dns.name.from_text("ns.sib.many."), T.A) in have  # in-domain
    assert (MID_NS[0], T.A) in have  # sibling, room enough


def test_ds_at_delegation_is_authoritative(node, sample):
    keys = sample_keys(sample)
    for cut in ("chastskee794.sample.", "choflystudio.sample.", "zetmo-skaimklost.sample."):
        r = ask(node, cut, "DS", do=True)
        assert aa(r) and r.rcode() == dns.rcode.NOERROR, r
        ds = get(r.answer, cut, T.DS)
        assert ds is not None and set(ds) == set(sample.get_rdataset(cut, T.DS))
        validate(ds, r.answer, keys, SAMPLE_NOW)
        assert get(r.authority, cut, T.NS) is None
        r = ask(node, cut, "DS")
        assert aa(r) and get(r.answer, cut, T.DS) is not None
        no_rrsig(r)


def test_ds_at_unsigned_delegation_is_nodata(node, sample):
    cut = "bosgrock.sample."
    r = ask(node, cut, "DS", do=True)
    assert aa(r) and r.rcode() == dns.rcode.NOERROR and r.answer == []
    soa = get(r.authority, SAMPLE, T.SOA)
    assert soa is not None and soa.ttl == 3600
    nsec = get(r.authority, cut, T.NSEC)
    assert nsec is not None and T.DS not in nsec_types(nsec[0])
    validate(nsec, r.authority, sample_keys(sample), SAMPLE_NOW)


# ---- apex ----

@pytest.mark.parametrize("rdtype", ["SOA", "NS", "DNSKEY", "TXT"])
def test_apex_rrsets_with_rrsigs(node, sample, rdtype):
    t = T.from_text(rdtype)
    r = ask(node, "sample.", rdtype, do=True)
    assert aa(r) and r.rcode() == dns.rcode.NOERROR
    rs = get(r.answer, SAMPLE, t)
    assert rs is not None and set(rs) == set(sample.get_rdataset(SAMPLE, t))
    assert rs.ttl == sample.get_rdataset(SAMPLE, t).ttl
    validate(rs, r.answer, sample_keys(sample), SAMPLE_NOW)
    r = ask(node, "sample.", rdtype)
    assert aa(r) and get(r.answer, SAMPLE, t) is not None
    no_rrsig(r)


def test_apex_ns_has_address_records(node, sample):
    r = ask(node, "sample.", "NS", edns=True)
    have = {(rs.name, rs.rdtype) for rs in r.additional}
    for x in "abcd":
        n = dns.name.from_text(f"{x}.nic.sample.")
        if sample.get_node(n) is not None:
            assert (n, T.A) in have, r


# ---- authoritative answers, negative answers ----

def test_positive_answer(node, sample):
    for rdtype, want in (("A", "192.0.2.80"), ("AAAA", "2001:db8:80::80")):
        r = ask(node, "www.sample.", rdtype, do=True)
        assert aa(r) and r.rcode() == dns.rcode.NOERROR
        rs = get(r.answer, "www.sample.", T.from_text(rdtype))
        assert [rd.to_text() for rd in rs] == [want] and rs.ttl == 3600
        validate(rs, r.answer, sample_keys(sample), SAMPLE_NOW)
        assert r.authority == []


def test_nodata(node, sample):
    r = ask(node, "www.sample.", "MX")
    assert aa(r) and r.rcode() == dns.rcode.NOERROR and r.answer == []
    soa = get(r.authority, SAMPLE, T.SOA)
    assert soa is not None
    assert soa.ttl == soa_negative_ttl(sample.get_rrset(SAMPLE, T.SOA)) == 3600
    no_rrsig(r)
    r = ask(node, "www.sample.", "MX", do=True)
    keys = sample_keys(sample)
    validate(get(r.authority, SAMPLE, T.SOA), r.authority, keys, SAMPLE_NOW)
    nsec = get(r.authority, "www.sample.", T.NSEC)
    assert nsec is not None and T.MX not in nsec_types(nsec[0])
    validate(nsec, r.authority, keys, SAMPLE_NOW)


def test_nxdomain(node, sample):
    qname = dns.name.from_text("no-such-name.sample.")
    r = ask(node, qname, "A")
    assert aa(r) and r.rcode() == dns.rcode.NXDOMAIN and r.answer == []
    soa = get(r.authority, SAMPLE, T.SOA)
    assert soa.ttl == 3600
    no_rrsig(r)
    r = ask(node, qname, "A", do=True)
    assert r.rcode() == dns.rcode.NXDOMAIN
    keys = sample_keys(sample)
    nsecs = rrsets(r.authority, T.NSEC)
    assert any(nsec_covers(n, qname, SAMPLE) for n in nsecs), r
    wildcard = dns.name.from_text("*.sample.")
    assert any(nsec_covers(n, wildcard, SAMPLE) for n in nsecs), r
    for n in nsecs:
        validate(n, r.authority, keys, SAMPLE_NOW)
    validate(get(r.authority, SAMPLE, T.SOA), r.authority, keys, SAMPLE_NOW)


def test_negative_ttl_is_min_of_soa_ttl_and_minimum(node):
    """many.: SOA TTL 300, MINIMUM 900 -> 300 (sample: 86400 vs 3600 -> 3600)."""
    r = ask(node, "nothing.many.", "A")
    assert r.rcode() == dns.rcode.NXDOMAIN and aa(r)
    assert get(r.authority, "many.", T.SOA).ttl == 300
    r = ask(node, "ns.many.", "TXT")
    assert r.rcode() == dns.rcode.NOERROR and get(r.authority, "many.", T.SOA).ttl == 300


def test_empty_non_terminal_is_nodata(node, sample):
    for qname in ("ent.sample.", "b.ent.sample."):
        r = ask(node, qname, "A", do=True)
        assert r.rcode() == dns.rcode.NOERROR and aa(r) and r.answer == [], r
        assert get(r.authority, SAMPLE, T.SOA) is not None
        nsecs = rrsets(r.authority, T.NSEC)
        assert any(nsec_covers(n, dns.name.from_text(qname), SAMPLE) for n in nsecs), r
    r = ask(node, "a.b.ent.sample.", "TXT")
    assert aa(r) and get(r.answer, "a.b.ent.sample.", T.TXT) is not None


def test_cname(node, sample):
    keys = sample_keys(sample)
    r = ask(node, "alias.sample.", "A", do=True)
    assert aa(r) and r.rcode() == dns.rcode.NOERROR
    cname = get(r.answer, "alias.sample.", T.CNAME)
    assert cname is not None and cname[0].target == dns.name.from_text("www.sample.")
    a = get(r.answer, "www.sample.", T.A)
    assert a is not None and a[0].to_text() == "192.0.2.80"
    validate(cname, r.answer, keys, SAMPLE_NOW)
    validate(a, r.answer, keys, SAMPLE_NOW)
    r = ask(node, "alias.sample.", "CNAME")
    assert [rs.rdtype for rs in r.answer] == [T.CNAME]
    # CNAME to a name without the type: the CNAME, then NODATA's SOA
    r = ask(node, "alias.sample.", "MX")
    assert r.rcode() == dns.rcode.NOERROR and [rs.rdtype for rs in r.answer] == [T.CNAME]
    assert get(r.authority, SAMPLE, T.SOA) is not None


@pytest.mark.parametrize("qname", ["foo.wild.sample.", "a.b.wild.sample.", "WiLd1.wild.sample."])
def test_wildcard_answer(node, sample, qname):
    r = ask(node, qname, "TXT", do=True)
    assert aa(r) and r.rcode() == dns.rcode.NOERROR
    assert len(r.answer) == 2  # TXT and its RRSIG
    txt = get(r.answer, qname, T.TXT)
    assert txt is not None, f"owner must be the qname:\n{r}"
    assert txt.name.to_text() == qname  # as asked, case included
    assert [rd.strings for rd in txt] == [(b"wildcard",)]
    sig = get(r.answer, qname, T.RRSIG, covers=T.TXT)
    assert sig[0].labels == 2  # signed as *.wild.sample.
    validate(txt, r.answer, sample_keys(sample), SAMPLE_NOW)
    nsecs = rrsets(r.authority, T.NSEC)
    assert any(nsec_covers(n, dns.name.from_text(qname), SAMPLE) for n in nsecs), \
        f"no NSEC proving the qname does not exist:\n{r}"


def test_wildcard_nodata(node, sample):
    qname = dns.name.from_text("foo.wild.sample.")
    r = ask(node, qname, "A", do=True)
    assert aa(r) and r.rcode() == dns.rcode.NOERROR and r.answer == []
    assert get(r.authority, SAMPLE, T.SOA) is not None
    wc = get(r.authority, "*.wild.sample.", T.NSEC)
    assert wc is not None and T.A not in nsec_types(wc[0]), r
    nsecs = rrsets(r.authority, T.NSEC)
    assert any(nsec_covers(n, qname, SAMPLE) for n in nsecs)
    for n in nsecs:
        validate(n, r.authority, sample_keys(sample), SAMPLE_NOW)
    r = ask(node, "wild.sample.", "TXT")  # the wildcard's parent: an empty non-terminal
    assert r.rcode() == dns.rcode.NOERROR and r.answer == []


def test_rrsig_query(node, sample):
    r = ask(node, "www.sample.", "RRSIG", do=True)
    assert aa(r) and r.rcode() == dns.rcode.NOERROR
    assert r.answer and all(rs.rdtype == T.RRSIG for rs in r.answer), r
    covered = {rd.type_covered for rs in r.answer for rd in rs}
    assert {T.A, T.AAAA} <= covered


def test_refused_outside_zones(node):
    for qname, rdclass in (("example.com.", "IN"), ("com.", "IN"), (".", "IN"),
                           ("samplex.", "IN"), ("www.sample.", "HS"), ("www.sample.", "CH")):
        r = ask(node, qname, "A", rdclass)
        assert r.rcode() == dns.rcode.REFUSED, (qname, rdclass, r)
        assert not aa(r) and r.answer == [] and r.authority == []


def ede_codes(r):
    return [o.code for o in r.options if o.otype == dns.edns.EDE]


def test_extended_dns_errors(node):
    """RFC 8914: REFUSED and NOTIMP say why, with EDNS only; answers carry none."""
    E = dns.edns.EDECode
    for qname, rdtype, rdclass, want in (("example.com.", "A", "IN", E.NOT_AUTHORITATIVE),
                                         (".", "NS", "IN", E.NOT_AUTHORITATIVE),
                                         ("www.sample.", "A", "HS", E.NOT_AUTHORITATIVE),
                                         ("nothing.here.", "TXT", "CH", E.NOT_AUTHORITATIVE),
                                         ("sample.", "AXFR", "IN", E.PROHIBITED),
                                         ("sample.", "IXFR", "IN", E.PROHIBITED)):
        r = ask(node, qname, rdtype, rdclass, edns=True)
        assert r.rcode() == dns.rcode.REFUSED and ede_codes(r) == [want], (qname, rdtype, r)
        r = ask(node, qname, rdtype, rdclass, edns=False)
        assert r.rcode() == dns.rcode.REFUSED and r.edns == -1, (qname, rdtype, r)
    r = tcp(node, make("sample.", "AXFR", edns=True))
    assert r.rcode() == dns.rcode.REFUSED and ede_codes(r) == [E.PROHIBITED]
    m = make("sample.", "SOA", edns=True)
    m.set_opcode(dns.opcode.NOTIFY)
    r = udp(node, m)
    assert r.rcode() == dns.rcode.NOTIMP and ede_codes(r) == [E.NOT_SUPPORTED], r
    for qname, rdtype in (("www.sample.", "A"), ("no-such.sample.", "A"), ("sample.", "SOA"),
                          ("bainfo.sample.", "NS")):
        r = ask(node, qname, rdtype, do=True)
        assert r.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN) and ede_codes(r) == [], r


def test_any_gets_one_rrset(node):
    for qname in ("www.sample.", "sample."):
        r = ask(node, qname, "ANY", do=True)
        assert aa(r) and r.rcode() == dns.rcode.NOERROR
        data = [rs for rs in r.answer if rs.rdtype != T.RRSIG]
        sigs = [rs for rs in r.answer if rs.rdtype == T.RRSIG]
        assert len(data) == 1, r
        assert [s.covers for s in sigs] == [data[0].rdtype]
        assert data[0].rdtype != T.NSEC


def test_0x20_question_echoed_byte_for_byte(node):
    msg = make("wWw.SaMpLe.", "A")
    q = msg.to_wire()
    raw, r = wire_udp(node, msg)
    assert raw[12:len(q)] == q[12:], "question not echoed as sent"
    assert get(r.answer, "www.sample.", T.A) is not None
    # over TCP too
    with tcp_connect(node) as s:
        s.sendall(frame(q))
        assert read_frame(s)[12:len(q)] == q[12:]


# ---- header, opcode, EDNS ----

def test_formerr_qdcount_2(node):
    q = make("www.sample.", "A").to_wire()
    body = q[12:]
    pkt = q[:4] + struct.pack("!H", 2) + q[6:12] + body + body
    raw = raw_udp(node, pkt)
    assert raw is not None and raw[:2] == pkt[:2]
    assert raw[3] & 0x0F == dns.rcode.FORMERR and raw[2] & 0x80


@pytest.mark.parametrize("opcode", [dns.opcode.IQUERY, dns.opcode.NOTIFY, dns.opcode.UPDATE,
                                    dns.opcode.STATUS])
def test_notimp_for_other_opcodes(node, opcode):
    msg = make("sample.", "SOA")
    msg.set_opcode(opcode)
    raw = raw_udp(node, msg.to_wire())
    assert raw is not None and raw[:2] == msg.to_wire()[:2]
    assert (raw[2] >> 3) & 0xF == opcode
    assert raw[3] & 0xF == dns.rcode.NOTIMP
    assert struct.unpack("!H", raw[6:8])[0] == 0  # no answer


def test_badvers(node):
    r = ask(node, "www.sample.", "A", edns=True, version=1)
    assert r.rcode() == dns.rcode.BADVERS  # 16: header 0 + OPT extended rcode 1
    assert r.flags & 0xF == 0 and r.edns == 0 and r.answer == []
    r = ask(node, "www.sample.", "A", edns=True, version=255)
    assert r.rcode() == dns.rcode.BADVERS


def test_no_reply_to_responses(node):
    msg = make("www.sample.", "A")
    msg.flags |= dns.flags.QR
    assert raw_udp(node, msg.to_wire(), timeout=0.5) is None
    assert ask(node, "www.sample.", "A").rcode() == dns.rcode.NOERROR


def test_edns_payload_is_ours(node):
    for payload in (512, 1232, 4096, 65535):
        r = ask(node, "www.sample.", "A", edns=True, payload=payload)
        assert r.edns == 0 and r.payload == 1232


def test_edns_payload_honoured(node):
    """A response never exceeds the requestor's payload (at least 512)."""
    for payload, limit in ((600, 600), (100, 512), (512, 512), (1000, 1000)):
        raw, r = wire_udp(node, make("big.many.", "A", edns=True, payload=payload))
        assert len(raw) <= limit and tc(r), (payload, len(raw))
        raw, r = wire_udp(node, make("www.mid.many.", "A", edns=True, payload=payload))
        assert len(raw) <= limit


def test_edns_size_4096(tldnode_server, store):
    n = tldnode_server(store, "--edns-size", "4096")
    raw, r = wire_udp(n, make("big.many.", "A", edns=True, payload=4096))
    assert r.payload == 4096 and not tc(r) and len(raw) > 1232
    raw, r = wire_udp(n, make("big.many.", "A", edns=True, payload=1232))
    assert tc(r) and len(raw) <= 1232


def test_do_echoed(node):
    r = ask(node, "www.sample.", "A", do=True)
    assert r.ednsflags & dns.flags.DO
    r = ask(node, "www.sample.", "A", edns=True)
    assert r.edns == 0 and not r.ednsflags & dns.flags.DO
    no_rrsig(r)
    r = ask(node, "example.com.", "A", do=True)  # even on REFUSED
    assert r.rcode() == dns.rcode.REFUSED and r.ednsflags & dns.flags.DO


def test_no_edns_no_opt_and_512(node):
    for qname, rdtype in (("sample.", "DNSKEY"), ("sample.", "NS"), ("big.many.", "A"),
                          ("no-such.sample.", "A")):
        raw, r = wire_udp(node, make(qname, rdtype, edns=False))
        assert r.edns == -1 and len(raw) <= 512


def test_nsid(node):
    r = ask(node, "www.sample.", "A", nsid=True)
    opts = [o for o in r.options if o.otype == dns.edns.NSID]
    assert len(opts) == 1
    data = opts[0].data if hasattr(opts[0], "data") else opts[0].nsid
    assert data == IDENTITY.encode()
    r = ask(node, "www.sample.", "A", edns=True)
    assert not [o for o in r.options if o.otype == dns.edns.NSID]


@pytest.mark.parametrize("qname", ["id.server.", "hostname.bind.", "ID.Server."])
def test_chaos_identity(node, qname):
    r = ask(node, qname, "TXT", "CH")
    assert r.rcode() == dns.rcode.NOERROR and aa(r)
    assert len(r.answer) == 1
    rs = r.answer[0]
    assert rs.name == dns.name.from_text(qname)
    assert rs.rdclass == CH and rs.rdtype == T.TXT
    assert [rd.strings for rd in rs] == [(IDENTITY.encode(),)]


@pytest.mark.parametrize("qname", ["version.bind.", "version.server."])
def test_chaos_version(node, qname):
    r = ask(node, qname, "TXT", "CH")
    assert r.rcode() == dns.rcode.NOERROR
    assert [rd.strings for rd in r.answer[0]] == [(VERSION_TEXT.encode(),)]


def test_chaos_other_refused(node):
    for qname, rdtype in (("version.bind.", "A"), ("foo.bind.", "TXT"), ("sample.", "TXT")):
        assert ask(node, qname, rdtype, "CH").rcode() == dns.rcode.REFUSED


def test_hide_version(tldnode_server, store):
    n = tldnode_server(store, "--hide-version", identity="hidden-node")
    assert ask(n, "version.bind.", "TXT", "CH").rcode() == dns.rcode.REFUSED
    assert ask(n, "version.server.", "TXT", "CH").rcode() == dns.rcode.REFUSED
    r = ask(n, "id.server.", "TXT", "CH")
    assert [rd.strings for rd in r.answer[0]] == [(b"hidden-node",)]


def test_default_version(tldnode_server, store):
    n = tldnode_server(store)
    r = ask(n, "version.bind.", "TXT", "CH")
    assert [rd.strings for rd in r.answer[0]] == [(b"tldnode",)]


# ---- dig and kdig ----

def _tool(name):
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed")
    return path


def test_dig(node):
    dig = _tool("dig")
    out = run(dig, "+norec", "+dnssec", "+nsid", "-p", node.port, f"@{node.host}",
              "sample.", "SOA").stdout
    assert "status: NOERROR" in out and "flags: qr aa;" in out
    assert "RRSIG\tSOA 13 1 86400" in out
    assert f'("{IDENTITY}")' in out
    out = run(dig, "+norec", "-p", node.port, f"@{node.host}", "version.bind", "CH",
              "TXT").stdout
    assert f'"{VERSION_TEXT}"' in out
    out = run(dig, "+norec", "+noedns", "-p", node.port, f"@{node.host}", "bosgrock.sample.",
              "A").stdout
    assert "flags: qr;" in out and "AUTHORITY: 2, ADDITIONAL: 3" in out
    out = run(dig, "+norec", "-p", node.port, f"@{node.host}", "nope.sample.", "A").stdout
    assert "status: NXDOMAIN" in out


def test_kdig_tcp_and_ipv6(node):
    kdig = _tool("kdig")
    for host in [node.host] + (["::1"] if "::1" in node.listen else []):
        out = run(kdig, "+tcp", "+dnssec", "+norec", "-p", node.port, f"@{host}",
                  "chastskee794.sample.", "NS").stdout
        assert "status: NOERROR" in out and "Flags: qr;" in out, out
        assert "chastskee794.sample." in out and "DS\t44516 13 2" in out
        assert "(TCP)" in out
    out = run(kdig, "+norec", "+nsid", "-p", node.port, f"@{node.host}", "sample.",
              "DNSKEY").stdout
    assert f'"{IDENTITY}"' in out and "Flags: qr aa;" in out


# ---- TCP ----

QUERIES = [("www.sample.", "A", True), ("www.sample.", "MX", True), ("nope.sample.", "A", True),
           ("bosgrock.sample.", "A", True), ("chastskee794.sample.", "DS", True),
           ("foo.wild.sample.", "TXT", True), ("alias.sample.", "A", False),
           ("sample.", "DNSKEY", True), ("example.com.", "A", False), ("mid.many.", "A", False)]


@pytest.mark.parametrize("qname,rdtype,do", QUERIES)
def test_tcp_same_answers_as_udp(node, qname, rdtype, do):
    a = ask(node, qname, rdtype, do=do, edns=True, payload=4096)
    b = ask(node, qname, rdtype, do=do, edns=True, transport="tcp")
    assert not tc(a) and not tc(b)
    assert a.flags == b.flags and a.rcode() == b.rcode()
    assert a.answer == b.answer and a.authority == b.authority and a.additional == b.additional


def test_tcp_pipelined_50(node):
    msgs = []
    for i in range(50):
        qname, rdtype, do = QUERIES[i % len(QUERIES)]
        m = make(qname, rdtype, do=do)
        m.id = 1000 + i
        msgs.append(m)
    with tcp_connect(node) as s:
        s.sendall(b"".join(frame(m.to_wire()) for m in msgs))
        answers = [read_frame(s) for _ in msgs]
    assert all(a is not None for a in answers)
    got = [dns.message.from_wire(a) for a in answers]
    assert [r.id for r in got] == [m.id for m in msgs]  # in order, ids echoed
    for m, r in zip(msgs, got):
        assert r.question == m.question


def test_tcp_pipeline_limit_does_not_stall(tldnode_server, store):
    """More queries in one burst than --tcp-pipeline: all answered (reading
    pauses and resumes, and queries already buffered are not forgotten)."""
    n = tldnode_server(store, "--tcp-pipeline", "10", "--workers", "1")
    msgs = []
    for i in range(300):
        m = make("www.sample.", "A")
        m.id = i
        msgs.append(m)
    with tcp_connect(n, timeout=5) as s:
        s.sendall(b"".join(frame(m.to_wire()) for m in msgs))
        ids = []
        for _ in msgs:
            a = read_frame(s)
            assert a is not None, f"closed after {len(ids)} answers"
            ids.append(struct.unpack("!H", a[:2])[0])
    assert ids == list(range(300))


def test_tcp_tiny_writes(node):
    """Length prefix and messages split across one-byte writes."""
    a = make("www.sample.", "A")
    b = make("alias.sample.", "A", do=True)
    data = frame(a.to_wire()) + frame(b.to_wire())
    with tcp_connect(node) as s:
        for i in range(len(data)):
            s.send(data[i:i + 1])
            time.sleep(0.002)
        ra = dns.message.from_wire(read_frame(s))
        rb = dns.message.from_wire(read_frame(s))
    assert ra.id == a.id and get(ra.answer, "www.sample.", T.A) is not None
    assert rb.id == b.id and get(rb.answer, "alias.sample.", T.CNAME) is not None


@pytest.fixture(scope="module")
def idle_node(tldnode_server_module, store):
    return tldnode_server_module(store, "--tcp-idle-ms", "300", "--workers", "1")


def test_tcp_idle_timeout(idle_node):
    with tcp_connect(idle_node) as s:  # silent connection
        t = wait_closed(s, 3)
        assert t is not None and 0.2 <= t < 2.0, t
    with tcp_connect(idle_node) as s:  # after an answer
        m = make("www.sample.", "A")
        s.sendall(frame(m.to_wire()))
        assert read_frame(s) is not None
        t = wait_closed(s, 3)
        assert t is not None and 0.2 <= t < 2.0, t


def test_tcp_complete_queries_keep_connection_open(idle_node):
    with tcp_connect(idle_node) as s:
        for i in range(8):  # 1.2 s in all, 4 x the idle timeout
            m = make("www.sample.", "A")
            s.sendall(frame(m.to_wire()))
            r = read_frame(s)
            assert r is not None, f"closed after {i} queries"
            time.sleep(0.15)


def test_tcp_half_sent_message_closed(idle_node):
    m = frame(make("www.sample.", "A").to_wire())
    with tcp_connect(idle_node) as s:  # half a message, then nothing
        s.sendall(m[:len(m) // 2])
        t = wait_closed(s, 3)
        assert t is not None and t < 2.0
    with tcp_connect(idle_node) as s:  # a message trickled too slowly
        start = time.monotonic()
        closed = False
        for i in range(len(m) - 1):
            try:
                s.send(m[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if wait_closed(s, 0.1) is not None:
                closed = True
                break
        assert closed, "a trickled message kept the connection open"
        assert time.monotonic() - start < 2.0


def test_tcp_connection_cap(tldnode_server, store):
    n = tldnode_server(store, "--tcp-max-conns", "2", "--workers", "1")
    q = make("www.sample.", "A")

    def works(s):
        s.sendall(frame(q.to_wire()))
        return read_frame(s) is not None

    # The start-up probe's connections count until the server has seen them
    # close: retry until two connections are served.
    deadline = time.monotonic() + 3
    while True:
        c1, c2 = tcp_connect(n), tcp_connect(n)
        try:
            if works(c1) and works(c2):
                break
        except OSError:
            pass
        c1.close()
        c2.close()
        assert time.monotonic() < deadline, "two connections never served"
        time.sleep(0.1)
    try:
        with tcp_connect(n) as c3:
            assert wait_closed(c3, 2) is not None, "third connection not closed"
        assert works(c1) and works(c2)
        c1.close()
        deadline = time.monotonic() + 3
        while True:  # the freed slot is reusable once the server saw the close
            with tcp_connect(n) as c4:
                try:
                    if works(c4):
                        break
                except OSError:
                    pass
            assert time.monotonic() < deadline, "slot not freed after a close"
            time.sleep(0.1)
        assert works(c2)
    finally:
        c1.close()
        c2.close()


def test_tcp_eof_after_queries_still_answered(node):
    """A client that sends its queries then shuts down its side gets the answers."""
    with tcp_connect(node) as s:
        s.sendall(b"".join(frame(make("www.sample.", "A").to_wire()) for _ in range(5)))
        s.shutdown(socket.SHUT_WR)
        got = 0
        while read_frame(s) is not None:
            got += 1
    assert got == 5


# ---- IPv6, addresses ----

def test_ipv6(node):
    if "::1" not in node.listen:
        pytest.skip("no IPv6 loopback")
    for transport in ("udp", "tcp"):
        msg = make("www.sample.", "AAAA")
        r = (udp if transport == "udp" else tcp)(node, msg, host="::1")
        assert [rd.to_text() for rd in get(r.answer, "www.sample.", T.AAAA)] == \
            ["2001:db8:80::80"]


def test_reply_source_is_query_destination(tldnode_server, store):
    n = tldnode_server(store, listen=["0.0.0.0"] + (["::"] if ipv6_loopback() else []))
    q = make("www.sample.", "A").to_wire()
    targets = ["127.0.0.1", "127.0.0.2", "127.0.0.3"] + (["::1"] if ipv6_loopback() else [])
    for dest in targets:
        fam = socket.AF_INET6 if ":" in dest else socket.AF_INET
        with socket.socket(fam, socket.SOCK_DGRAM) as s:  # unconnected: see the source
            s.settimeout(2)
            s.sendto(q, (dest, n.port))
            data, src = s.recvfrom(65535)
        assert src[0] == dest and src[1] == n.port, (dest, src)
        assert data[:2] == q[:2]
        # a connected socket only accepts replies from where it sent
        with socket.socket(fam, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            s.connect((dest, n.port))
            s.send(q)
            assert s.recv(65535)[:2] == q[:2]
        r = tcp(n, make("www.sample.", "A"), host=dest)
        assert get(r.answer, "www.sample.", T.A) is not None


# ---- signals ----

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signals_exit_0_promptly(tldnode_server, store, sig):
    n = tldnode_server(store)
    idle = tcp_connect(n)  # an open idle connection must not hold the exit
    try:
        start = time.monotonic()
        rc = n.stop(sig, timeout=5)
        elapsed = time.monotonic() - start
    finally:
        idle.close()
    assert rc == 0, n.log_text()
    assert elapsed < 2.0, elapsed
    assert "stopping" in n.log_text() and "stopped" in n.log_text()


def test_stop_with_a_client_that_does_not_read(tldnode_server, store):
    """A TCP client that sends queries but never reads its answers (the
    server's send buffer full, writes pending) must not hold SIGTERM until the
    idle timeout (10 s by default)."""
    n = tldnode_server(store, "--workers", "1")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(n.addr)
    s.setblocking(False)
    data = frame(make("big.many.", "A").to_wire()) * 20000  # ~30 MB of answers
    sent, deadline = 0, time.monotonic() + 3
    try:
        while sent < len(data) and time.monotonic() < deadline:
            try:
                sent += s.send(data[sent:sent + 65536])
            except BlockingIOError:
                time.sleep(0.01)
        time.sleep(0.3)
        start = time.monotonic()
        rc = n.stop(signal.SIGTERM, timeout=15)
        elapsed = time.monotonic() - start
    finally:
        s.close()
    assert rc == 0, n.log_text()
    assert elapsed < 3.0, f"SIGTERM took {elapsed:.1f}s with a non-reading client"


def test_sighup_does_not_stop(tldnode_server, store):
    n = tldnode_server(store)
    for _ in range(3):
        n.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    assert n.alive(), n.log_text()
    assert ask(n, "www.sample.", "A").rcode() == dns.rcode.NOERROR
    assert "SIGHUP" in n.log_text()


def test_stop_under_load(tldnode_server, store):
    """SIGTERM while queries keep arriving: still exits 0 promptly."""
    n = tldnode_server(store)
    q = make("www.sample.", "A").to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(2000):
            s.sendto(q, n.addr)
        start = time.monotonic()
        n.send_signal(signal.SIGTERM)
        for _ in range(2000):
            try:
                s.sendto(q, n.addr)
            except OSError:
                break
    n.proc.wait(5)
    assert n.proc.returncode == 0 and time.monotonic() - start < 3


# ---- startup errors ----

def _start_fail(store, *args, timeout=10):
    p = run(binary("tldnode"), "--store", store, *args, timeout=timeout)
    return p


def test_unassignable_address(store):
    p = _start_fail(store, "--listen", "192.0.2.1:53")
    assert p.returncode == 1, p
    assert "192.0.2.1:53" in p.stderr and "Cannot assign requested address" in p.stderr


def test_port_in_use_without_reuseport(store):
    port = free_port(["127.0.0.1"])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as blocker:
        blocker.bind(("127.0.0.1", port))  # no SO_REUSEPORT: tldnode cannot share it
        p = _start_fail(store, "--listen", f"127.0.0.1:{port}")
    assert p.returncode == 1, p
    assert f"127.0.0.1:{port}" in p.stderr and "Address already in use" in p.stderr
    port = free_port(["127.0.0.1"])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        p = _start_fail(store, "--listen", f"127.0.0.1:{port}")
    assert p.returncode == 1 and "Address already in use" in p.stderr, p


def test_missing_store(tmp_path):
    port = free_port()
    p = _start_fail(tmp_path / "nope", "--listen", f"127.0.0.1:{port}")
    assert p.returncode == 1, p
    assert "nope" in p.stderr or "No such file" in p.stderr, p.stderr
    p = _start_fail(tmp_path, "--listen", f"127.0.0.1:{port}")  # a directory, no store
    assert p.returncode == 1, p


def test_worker_start_failure_exits_cleanly(tldnode_server, sample_store):
    """When a worker cannot get a store reader (LMDB reader slots all taken by
    other processes on the same store), tldnode exits 1 with a message; it used
    to crash (SIGSEGV in the start-up error path)."""
    text = (REPO / "node" / "store" / "store.h").read_text()
    m = [line for line in text.splitlines() if "define TLD_STORE_MAX_READERS" in line]
    max_readers = int(m[0].split()[2]) if m else 512
    first = min(256, max_readers // 2)
    store = sample_store  # a store of its own: the module's servers hold readers too
    tldnode_server(store, "--workers", str(first))
    tldnode_server(store, "--workers", str(max_readers - first - 1))
    port = free_port()
    p = _start_fail(store, "--listen", f"127.0.0.1:{port}", "--workers", "8")
    assert p.returncode == 1, p
    assert "store reader" in p.stderr, p.stderr
    # every slot taken: --check cannot list the zones and must fail (it said 0)
    tldnode_server(store, "--workers", "1")
    p = _start_fail(store, "--check")
    assert "store readers" in p.stderr and p.returncode == 1, p


@pytest.mark.parametrize("listen", ["127.0.0.1", "localhost:53", "[::1]53", "::1:53",
                                    "127.0.0.1:99999", "127.0.0.1:", "1.2.3:53", "[::1:53",
                                    "300.1.1.1:53", ":53", ""])
def test_bad_listen_is_usage_error(store, listen):
    p = _start_fail(store, "--listen", listen)
    assert p.returncode == 2, p
    assert "--listen" in p.stderr and "usage:" in p.stderr


@pytest.mark.parametrize("args", [[], ["--workers", "0"], ["--edns-size", "100"],
                                  ["--tcp-idle-ms", "x"], ["--bogus"]])
def test_other_usage_errors(store, args):
    extra = [] if not args else ["--listen", "127.0.0.1:1"]
    p = _start_fail(store, *extra, *args)
    assert p.returncode == 2, p


# ---- the root zone ----

def root_keys(root):
    return {dns.name.root: root.get_rrset(dns.name.root, T.DNSKEY)}


def test_root_apex(root_node, root):
    for rdtype in ("SOA", "NS", "DNSKEY"):
        r = ask(root_node, ".", rdtype, do=True, payload=4096)
        assert aa(r) and not tc(r)
        rs = get(r.answer, dns.name.root, T.from_text(rdtype))
        assert set(rs) == set(root.get_rdataset(dns.name.root, T.from_text(rdtype)))
        validate(rs, r.answer, root_keys(root), ROOT_NOW)


def test_root_referrals(root_node, root):
    keys = root_keys(root)
    dels = {cut: (ns, ds) for cut, ns, ds in delegations(root, dns.name.root)}
    assert len(dels) > 1400
    unsigned = [c for c, (ns, ds) in dels.items() if ds is None]
    picks = [dns.name.from_text(x) for x in ("com.", "net.", "org.", "arpa.", "de.", "uk.")]
    picks += unsigned[:5] + list(dels)[::50]
    for cut in picks:
        ns, ds = dels[cut]
        for do, edns, payload in ((False, False, 512), (True, True, 1232), (True, True, 4096)):
            raw, r = wire_udp(root_node, make(dns.name.from_text("www", cut), "A", do=do,
                                              edns=edns, payload=payload))
            assert len(raw) <= (payload if edns else 512)
            check_referral(r, root, cut, ns, ds, do, keys=keys, now=ROOT_NOW)


def test_root_net_referral_truncates_without_edns(root_node, root):
    """net.: 13 NS in net. itself, so 26 in-domain glue records: not in 512."""
    raw, r = wire_udp(root_node, make("example.net.", "A", edns=False))
    assert tc(r) and len(raw) <= 512
    raw, r = wire_udp(root_node, make("example.net.", "A", edns=True, payload=1232))
    cut = dns.name.from_text("net.")
    check_referral(r, root, cut, root.get_rdataset(cut, T.NS), None, do=False)
    if not tc(r):
        assert len(expected_glue(root, cut, root.get_rdataset(cut, T.NS))) == 26


def test_root_negative(root_node, root):
    r = ask(root_node, "no-such-tld-xyz.", "A", do=True)
    assert r.rcode() == dns.rcode.NXDOMAIN and aa(r)
    soa = get(r.authority, dns.name.root, T.SOA)
    assert soa.ttl == soa_negative_ttl(root.get_rrset(dns.name.root, T.SOA))
    nsecs = rrsets(r.authority, T.NSEC)
    qn = dns.name.from_text("no-such-tld-xyz.")
    assert any(nsec_covers(n, qn, dns.name.root) for n in nsecs)
    for n in nsecs:
        validate(n, r.authority, root_keys(root), ROOT_NOW)
    r = ask(root_node, "com.", "DS", do=True)
    assert aa(r) and get(r.answer, "com.", T.DS) is not None
    validate(get(r.answer, "com.", T.DS), r.answer, root_keys(root), ROOT_NOW)


def optout_zone():
    """oo.: an NSEC3 opt-out zone built by hand (fake signatures: tldnode does not
    validate). The chain holds the apex, ns and the secure delegation `sec`; the
    insecure delegations ins1.ent and ins2.ent, and the empty non-terminal ent above
    them, have no NSEC3 (RFC 5155 6: opt-out)."""
    salt, sig = "c0ffee", "AAAA" * 22
    names = {"oo.": "NS SOA RRSIG DNSKEY NSEC3PARAM", "ns.oo.": "A RRSIG",
             "sec.oo.": "NS DS RRSIG"}
    hashed = sorted((dns.dnssec.nsec3_hash(n, salt, 0, 1).lower(), types)
                    for n, types in names.items())
    lines = ["$ORIGIN oo.", "$TTL 3600",
             "@ SOA ns.oo. h.oo. 1 1800 900 604800 300",
             f"@ RRSIG SOA 13 1 3600 20361231000000 20260101000000 1 oo. {sig}",
             "@ NS ns.oo.",
             "@ DNSKEY 257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+"
             "KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==",
             f"@ NSEC3PARAM 1 0 0 {salt}", "ns A 192.0.2.1",
             "sec NS ns.example.", "sec DS 1 13 2 " + "00" * 32,
             "ins1.ent NS ns.example.", "ins2.ent NS ns.example."]
    for i, (h, types) in enumerate(hashed):
        nxt = hashed[(i + 1) % len(hashed)][0]
        lines.append(f"{h} 300 NSEC3 1 1 0 {salt} {nxt} {types}")
    return "\n".join(lines) + "\n", salt


def covers(h, owner, nxt):
    """Whether an NSEC3 from owner to nxt (base32hex hashes) covers hash h."""
    return owner < h < nxt if owner < nxt else (h > owner or h < nxt)


def test_nsec3_optout_proofs_through_an_empty_non_terminal(tldctl, tldnode_server, tmp_path):
    """No DS at an opt-out delegation below an empty non-terminal that has no NSEC3 either:
    the proof is the NSEC3 matching the closest *provable* encloser (the apex here) and an
    opt-out NSEC3 covering the next closer name (ent.oo.), as a DS query and as a referral
    (RFC 5155 7.2.4, 7.2.7)."""
    text, salt = optout_zone()
    store = tmp_path / "store"
    import_zone(tldctl, store, write_zone(tmp_path / "oo.zone", text))
    n = tldnode_server(store)
    apex_h = dns.dnssec.nsec3_hash("oo.", salt, 0, 1).lower()
    ent_h = dns.dnssec.nsec3_hash("ent.oo.", salt, 0, 1).lower()
    for qname, rdtype in (("ins1.ent.oo.", "DS"), ("x.ins2.ent.oo.", "A"),
                          ("ins2.ent.oo.", "NS")):
        r = ask(n, qname, rdtype, do=True)
        assert r.rcode() == dns.rcode.NOERROR, r
        nsec3 = {rs.name.labels[0].decode().lower(): rs[0] for rs in r.authority
                 if rs.rdtype == T.NSEC3}
        assert apex_h in nsec3, (qname, r)  # the closest provable encloser matched
        covering = [o for o, rd in nsec3.items()
                    if covers(ent_h, o, rd.to_text().split()[4].lower())]
        assert covering and all(nsec3[o].flags & 1 for o in covering), (qname, r)


def test_tsig_query_gets_notauth_badkey(node):
    """tldnode knows no TSIG keys: a signed query gets NOTAUTH with an unsigned TSIG whose
    error is BADKEY (RFC 8945 5.2.2, 5.3.2), which a TSIG client recognises, over UDP and
    TCP; the same query unsigned is answered."""
    import dns.tsig
    import dns.tsigkeyring
    keyring = dns.tsigkeyring.from_text({"transfer-key.": ("hmac-sha256", "c2VjcmV0" * 4)})

    def signed():
        m = make("www.sample.", "A", edns=True)
        m.use_tsig(keyring, keyname="transfer-key.")
        return m
    for send in (udp, tcp):
        with pytest.raises(dns.tsig.PeerBadKey):
            send(node, signed())
    raw = raw_udp(node, signed().to_wire())
    assert raw[3] & 0x0F == dns.rcode.NOTAUTH and struct.unpack("!HHH", raw[6:12]) == (0, 0, 2)
    assert ask(node, "www.sample.", "A").rcode() == dns.rcode.NOERROR
