#!/usr/bin/python3
"""gen-zone.py - write a synthetic TLD zone (and optionally a query mix).

usage: gen-zone.py --origin ORIGIN --delegations N [--seed S] [--serial SERIAL]
                   [--order sorted|random] [--queries FILE --nqueries M] OUT.zone

The zone is shaped like a real TLD's:
  - SOA and 4 apex NS (a..d.nic.ORIGIN) with in-zone glue, A and AAAA;
  - N delegations with 2-4 NS each (mostly 2);
  - about 20% use nameservers inside the delegated domain (ns1.NAME.ORIGIN)
    with glue: an A record each, and about half of them also an AAAA;
  - the rest point at a pool of shared out-of-zone hosting providers whose
    popularity is heavily skewed (a few providers host most domains);
  - about 8% carry a DS record (algorithm 13, digest type 2, SHA-256 digest);
  - TTL 172800 for NS and glue, 86400 for DS; the zone is unsigned;
  - names in DNSSEC canonical order, each delegation's glue right after it, as
    a server or registry would dump the zone (--order random: shuffled; loaders
    that build a tree are markedly slower on such input).

The optional query file is in dnsperf's format ("NAME TYPE" per line):
  70% names at or below existing delegations (referrals), 20% names that do
  not exist (NXDOMAIN), 5% apex queries (SOA/NS/DNSKEY), 5% glue names (A/AAAA
  of in-domain nameservers).

Output is a function of the arguments only: the same seed gives the same
files. Standard library only; run with /usr/bin/python3.
"""

import argparse
import bisect
import random
import sys

NS_TTL = 172800
DS_TTL = 86400
IN_DOMAIN_SHARE = 0.20
DS_SHARE = 0.08
GLUE_AAAA_SHARE = 0.50
PROVIDERS = 600
FLUSH_BYTES = 1 << 22

# Pieces of pronounceable labels: "webshop", "kavinora", "tel-max24"...
ONSETS = ("b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v",
          "w", "z", "br", "ch", "cl", "cr", "dr", "fl", "fr", "gr", "kl", "pl", "pr", "sh",
          "sk", "sl", "sp", "st", "str", "th", "tr", "")
VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ai", "ea", "ee", "io", "oo", "ou", "y")
CODAS = ("", "", "", "", "n", "r", "s", "t", "l", "m", "x", "ck", "nd", "ng", "rt", "st")
WORDS = ("shop", "web", "net", "online", "group", "media", "tech", "home", "store", "art",
         "design", "bau", "auto", "hotel", "travel", "cloud", "data", "food", "law", "med",
         "info", "land", "haus", "studio", "photo", "digital", "consult", "immo", "sport",
         "music", "solutions", "systems", "service", "partner", "events", "fashion")
PROVIDER_TLDS = ("net", "com", "net", "com", "org", "io", "de", "eu", "co.uk", "nl")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--origin", required=True, help="zone apex, e.g. tld or tld.")
    p.add_argument("--delegations", type=int, required=True, metavar="N")
    p.add_argument("--seed", type=int, default=1, metavar="S")
    p.add_argument("--serial", type=int, default=2026112501)
    p.add_argument("--order", choices=("sorted", "random"), default="sorted",
                   help="delegations in canonical order (default, like a zone dumped by a "
                   "server) or in random order")
    p.add_argument("--queries", metavar="FILE", help="also write a dnsperf query file")
    p.add_argument("--nqueries", type=int, default=100000, metavar="M")
    p.add_argument("out", metavar="OUT.zone")
    a = p.parse_args(argv)
    if a.delegations < 1:
        p.error("--delegations must be at least 1")
    if a.nqueries < 0:
        p.error("--nqueries must not be negative")
    a.origin = a.origin.strip(".").lower()
    if not a.origin:
        p.error("--origin must not be the root")
    return a


class Writer:
    """Collects lines and writes them in large blocks."""

    def __init__(self, path):
        self.f = open(path, "w", encoding="ascii", buffering=FLUSH_BYTES)
        self.buf = []
        self.size = 0

    def add(self, s):
        self.buf.append(s)
        self.size += len(s)
        if self.size >= FLUSH_BYTES:
            self.flush()

    def flush(self):
        self.f.write("".join(self.buf))
        self.buf.clear()
        self.size = 0

    def close(self):
        self.flush()
        self.f.close()


def make_labeler(rnd):
    """Returns a function giving pseudo-random, pronounceable DNS labels."""
    rand = rnd.random
    choice = rnd.choice
    randrange = rnd.randrange

    def word():
        n = 2 if rand() < 0.6 else (3 if rand() < 0.8 else 1)
        return "".join(choice(ONSETS) + choice(VOWELS) + choice(CODAS) for _ in range(n))

    def label():
        r = rand()
        if r < 0.55:
            s = word()
        elif r < 0.80:
            s = word() + choice(WORDS)
        elif r < 0.90:
            s = word() + "-" + word()
        else:
            s = word() + str(randrange(1, 1000))
        return s[:63]

    return label


def make_providers(rnd):
    """A pool of hosting providers: (cumulative weight list, NS RDATA lists)."""
    labeler = make_labeler(rnd)
    seen = set()
    nslists = []
    cum = []
    total = 0.0
    for rank in range(1, PROVIDERS + 1):
        name = labeler()
        while name in seen:
            name = labeler()
        seen.add(name)
        tld = PROVIDER_TLDS[rank % len(PROVIDER_TLDS)]
        k = 2 if rnd.random() < 0.65 else (3 if rnd.random() < 0.55 else 4)
        style = rnd.randrange(3)
        if style == 0:
            hosts = ["ns%d.%s.%s." % (i, name, tld) for i in range(1, k + 1)]
        elif style == 1:
            hosts = ["%s.ns.%s.%s." % ("abcd"[i], name, tld) for i in range(k)]
        else:
            hosts = ["dns%d.%s-dns.%s." % (i, name, tld) for i in range(1, k + 1)]
        nslists.append(hosts)
        total += 1.0 / rank ** 1.1  # Zipf-like: a few providers host most domains
        cum.append(total)
    return [c / total for c in cum], nslists


def ipv4(n):
    # Spread over 1.0.0.0-223.255.255.255, avoiding 0/8, 10/8 and 127/8.
    a = 1 + (n >> 24) % 222
    if a in (10, 127):
        a += 1
    return "%d.%d.%d.%d" % (a, (n >> 16) & 255, (n >> 8) & 255, (n & 255) or 1)


def ipv6(n):
    return "2001:db8:%x:%x::%x" % ((n >> 32) & 0xffff, (n >> 16) & 0xffff, (n & 0xffff) or 1)


def write_zone(a, rnd):
    origin = a.origin
    labeler = make_labeler(rnd)
    cum, nslists = make_providers(rnd)
    rand = rnd.random
    bits = rnd.getrandbits
    randrange = rnd.randrange
    bis = bisect.bisect_left
    last = len(nslists) - 1

    labels = []        # every delegated label (and "nic"), in output order
    indomain = []      # (label, number of NS) of delegations with in-domain NS
    seen = set()
    counts = {"delegations": 0, "ns": 0, "glue_a": 0, "glue_aaaa": 0, "ds": 0,
              "in_domain": 0}

    # Labels first, so that they can be written in canonical order.
    seen.add("nic")
    for _ in range(a.delegations):
        lab = labeler()
        while lab in seen:
            lab = (labeler() + str(randrange(10, 100)))[-63:]
        seen.add(lab)
        labels.append(lab)
    if a.order == "sorted":
        # For single lower-case labels of letters, digits and '-', code point
        # order is the DNSSEC canonical order; each delegation's glue follows it.
        labels.append("nic")
        labels.sort()
    else:
        labels.append("nic")
        rnd.shuffle(labels)

    w = Writer(a.out)
    w.add("; synthetic TLD zone written by tests/bench/gen-zone.py\n"
          "; origin %s. delegations %d seed %d order %s\n"
          % (origin, a.delegations, a.seed, a.order))
    w.add("$ORIGIN %s.\n$TTL 86400\n" % origin)
    w.add("@ 86400 IN SOA a.nic.%s. hostmaster.nic.%s. %d 1800 900 604800 3600\n"
          % (origin, origin, a.serial))
    for s in "abcd":
        w.add("@ %d IN NS %s.nic.%s.\n" % (NS_TTL, s, origin))
    nic = "".join("%s.nic %d IN A 192.0.2.%d\n%s.nic %d IN AAAA 2001:db8:53::%d\n"
                  % (s, NS_TTL, k + 1, s, NS_TTL, k + 1) for k, s in enumerate("abcd"))

    for lab in labels:
        if lab == "nic":
            w.add(nic)
            continue
        out = []
        if rand() < IN_DOMAIN_SHARE:
            k = 2 if rand() < 0.75 else (3 if rand() < 0.6 else 4)
            indomain.append((lab, k))
            for j in range(1, k + 1):
                out.append("%s %d IN NS ns%d.%s\n" % (lab, NS_TTL, j, lab))
            counts["in_domain"] += 1
            counts["ns"] += k
        else:
            k = 0
            hosts = nslists[min(bis(cum, rand()), last)]
            counts["ns"] += len(hosts)
            out.extend(["%s %d IN NS %s\n" % (lab, NS_TTL, h) for h in hosts])
        if rand() < DS_SHARE:
            out.append("%s %d IN DS %d 13 2 %064X\n" % (lab, DS_TTL, bits(16), bits(256)))
            counts["ds"] += 1
        for j in range(1, k + 1):
            out.append("ns%d.%s %d IN A %s\n" % (j, lab, NS_TTL, ipv4(bits(32))))
            counts["glue_a"] += 1
            if rand() < GLUE_AAAA_SHARE:
                out.append("ns%d.%s %d IN AAAA %s\n" % (j, lab, NS_TTL, ipv6(bits(48))))
                counts["glue_aaaa"] += 1
        counts["delegations"] += 1
        w.add("".join(out))
    w.close()
    labels.remove("nic")
    return labels, indomain, seen, labeler, counts


def write_queries(a, rnd, labels, indomain, seen, labeler):
    origin = a.origin
    rand = rnd.random
    choice = rnd.choice
    n = len(labels)
    randbelow = rnd.randrange
    prefixes = ("", "", "www.", "www.", "mail.", "m.", "shop.", "api.")
    below_types = ("A", "A", "A", "A", "AAAA", "AAAA", "MX", "NS", "DS", "TXT")
    nx_types = ("A", "A", "AAAA", "MX", "NS")
    apex_types = ("SOA", "NS", "DNSKEY")
    written = 0
    w = Writer(a.queries)
    for _ in range(a.nqueries):
        r = rand()
        if r < 0.70:
            w.add("%s%s.%s. %s\n" % (choice(prefixes), labels[randbelow(n)], origin,
                                      choice(below_types)))
        elif r < 0.90:
            lab = labeler()
            while lab in seen:
                lab = labeler() + "x"
            w.add("%s%s.%s. %s\n" % (choice(prefixes), lab[:63], origin, choice(nx_types)))
        elif r < 0.95 or not indomain:
            w.add("%s. %s\n" % (origin, choice(apex_types)))
        else:
            lab, k = indomain[randbelow(len(indomain))]
            w.add("ns%d.%s.%s. %s\n" % (randbelow(k) + 1, lab, origin,
                                         "A" if rand() < 0.7 else "AAAA"))
        written += 1
    w.close()
    return written


def main(argv):
    a = parse_args(argv)
    rnd = random.Random(a.seed)
    labels, indomain, seen, labeler, counts = write_zone(a, rnd)
    msg = ("gen-zone: %s: %d delegations (%d in-domain), %d NS, %d glue A, %d glue AAAA, %d DS"
           % (a.out, counts["delegations"], counts["in_domain"], counts["ns"],
              counts["glue_a"], counts["glue_aaaa"], counts["ds"]))
    if a.queries:
        # The query mix draws from its own stream so that the zone does not
        # depend on whether queries are asked for.
        q = write_queries(a, random.Random(a.seed * 1000003 + 7), labels, indomain, seen,
                          labeler)
        msg += "; %s: %d queries" % (a.queries, q)
    print(msg, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
