"""The command lines of tldctl and tldnode: help, usage errors (exit 2),
failures (exit 1, one line on stderr), lookup output and exit codes, map-full,
re-import, and readers running while an import commits."""

import ctypes
import ctypes.util
import re
import struct
import threading

import pytest

from conftest import (check, describe, dump_zone, import_zone, list_zones, run, store_snapshot,
                      write_zone)


def one_line(stderr):
    lines = [l for l in stderr.splitlines() if l.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    return lines[0]


def synthetic_zone(path, origin, delegations, serial=1, www="192.0.2.80"):
    """A plain TLD-shaped zone, big enough to take a while to write."""
    with open(path, "w") as f:
        f.write(f"$ORIGIN {origin}.\n$TTL 3600\n"
                f"@ SOA ns1.nic hostmaster.nic {serial} 1800 900 604800 3600\n"
                "@ NS ns1.nic\n@ NS ns2.nic\nns1.nic A 192.0.2.1\nns2.nic A 192.0.2.2\n"
                f"www A {www}\n")
        for i in range(delegations):
            f.write(f"d{i} NS ns1.d{i}\nd{i} NS ns.hoster{i % 97}.example.net.\n"
                    f"ns1.d{i} A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}\n")
            if i % 11 == 0:
                f.write(f"d{i} DS {i % 65536} 13 2 {i:064x}\n")
    return path


# ---- help and usage ----

@pytest.mark.parametrize("args", [["--help"], ["-h"], ["help"], ["import", "--help"],
                                  ["lookup", "--help"]])
def test_tldctl_help(tldctl, args):
    p = check(run(tldctl, *args))
    assert p.stdout.startswith("usage: tldctl"), p.stdout
    for cmd in ("import", "lookup", "dump", "zones"):
        assert cmd in p.stdout
    assert p.stderr == ""


@pytest.mark.parametrize("args", [["--help"], ["-h"]])
def test_tldnode_help(tldnode, args):
    p = check(run(tldnode, *args))
    assert p.stdout.startswith("usage: tldnode") and "--store" in p.stdout
    assert p.stderr == ""


USAGE_ERRORS = {
    "no-args": [],
    "unknown-command": ["frobnicate"],
    "unknown-option": ["lookup", "--frobnicate", "--store", "{S}", "a.", "A"],
    "lookup-no-store": ["lookup", "www.sample.", "A"],
    "import-no-store": ["import", "x.zone"],
    "lookup-extra-arg": ["lookup", "--store", "{S}", "www.sample.", "A", "extra"],
    "lookup-no-type": ["lookup", "--store", "{S}", "www.sample."],
    "lookup-bad-type": ["lookup", "--store", "{S}", "www.sample.", "NOSUCHTYPE"],
    "import-no-file": ["import", "--store", "{S}"],
    "import-two-files": ["import", "--store", "{S}", "a.zone", "b.zone"],
    "import-bad-map-size": ["import", "--store", "{S}", "--map-size", "12x", "a.zone"],
    "import-tiny-map-size": ["import", "--store", "{S}", "--map-size", "4096", "a.zone"],
    "dump-no-zone": ["dump", "--store", "{S}"],
    "zones-extra-arg": ["zones", "--store", "{S}", "extra"],
}


@pytest.mark.parametrize("args", USAGE_ERRORS.values(), ids=USAGE_ERRORS.keys())
def test_tldctl_usage_errors(tldctl, tmp_store, args):
    args = [a.replace("{S}", str(tmp_store)) for a in args]
    p = run(tldctl, *args)
    assert p.returncode == 2, describe(p)
    assert "usage: tldctl" in p.stderr, describe(p)
    assert p.stdout == ""
    assert not (tmp_store / "data.mdb").exists()  # nothing was created


@pytest.mark.parametrize("name", ["a..b.", "x" * 64 + ".sample."])
def test_tldctl_bad_name_exits_2(tldctl, tmp_store, name):
    p = run(tldctl, "lookup", "--store", tmp_store, name, "A")
    assert p.returncode == 2, describe(p)
    assert "not a valid domain name" in p.stderr


@pytest.mark.parametrize("args", [[], ["--store", "{S}", "extra"], ["--frobnicate"],
                                  ["--check"]], ids=["no-args", "extra-arg", "unknown-option",
                                                     "no-store"])
def test_tldnode_usage_errors(tldnode, tmp_store, args):
    p = run(tldnode, *[a.replace("{S}", str(tmp_store)) for a in args])
    assert p.returncode == 2, describe(p)
    assert "usage: tldnode" in p.stderr


# ---- failures: exit 1, one line ----

@pytest.mark.parametrize("cmd", [["lookup", "www.sample.", "A"], ["dump", "sample."], ["zones"]])
def test_missing_store(tldctl, tmp_path, cmd):
    missing = tmp_path / "nowhere"
    p = run(tldctl, cmd[0], "--store", missing, *cmd[1:])
    assert p.returncode == 1, describe(p)
    msg = one_line(p.stderr)
    assert str(missing) in msg and "no such store" in msg
    assert not missing.exists()  # readers never create a store


def test_empty_dir_is_not_a_store(tldctl, tmp_store):
    p = run(tldctl, "zones", "--store", tmp_store)
    assert p.returncode == 1 and "no such store" in one_line(p.stderr)


def test_store_is_a_file(tldctl, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    p = run(tldctl, "zones", "--store", f)
    assert p.returncode == 1 and "not a directory" in one_line(p.stderr)


@pytest.mark.parametrize("cmd", [["lookup", "www.sample.", "A"], ["dump", "sample."], ["zones"],
                                 ["import", "{Z}"]])
def test_junk_data_file(tldctl, tmp_store, sample_zone, cmd):
    junk = bytes(range(256)) * 64
    (tmp_store / "data.mdb").write_bytes(junk)
    p = run(tldctl, cmd[0], "--store", tmp_store, *[c.replace("{Z}", str(sample_zone))
                                                     for c in cmd[1:]])
    assert p.returncode == 1, describe(p)
    assert "not a tldnode store" in one_line(p.stderr)
    assert (tmp_store / "data.mdb").read_bytes() == junk


def test_tldnode_junk_data_file(tldnode, tmp_store):
    (tmp_store / "data.mdb").write_bytes(b"\0" * 16384)
    p = run(tldnode, "--store", tmp_store, "--check")
    assert p.returncode == 1, describe(p)
    one_line(p.stderr)


# Foreign LMDB environments, made with liblmdb through ctypes.

class MDBVal(ctypes.Structure):
    _fields_ = [("mv_size", ctypes.c_size_t), ("mv_data", ctypes.c_void_p)]


def make_lmdb(path, dbs):
    """Creates an LMDB environment in path holding dbs: {dbname (None: the
    main one): {key bytes: value bytes}}."""
    name = ctypes.util.find_library("lmdb") or "liblmdb.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        pytest.skip("liblmdb not loadable through ctypes")
    vp = ctypes.c_void_p
    lib.mdb_env_create.argtypes = [ctypes.POINTER(vp)]
    lib.mdb_env_set_maxdbs.argtypes = [vp, ctypes.c_uint]
    lib.mdb_env_set_mapsize.argtypes = [vp, ctypes.c_size_t]
    lib.mdb_env_open.argtypes = [vp, ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint]
    lib.mdb_txn_begin.argtypes = [vp, vp, ctypes.c_uint, ctypes.POINTER(vp)]
    lib.mdb_dbi_open.argtypes = [vp, ctypes.c_char_p, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint)]
    lib.mdb_put.argtypes = [vp, ctypes.c_uint, ctypes.POINTER(MDBVal), ctypes.POINTER(MDBVal),
                            ctypes.c_uint]
    lib.mdb_txn_commit.argtypes = [vp]
    lib.mdb_env_close.argtypes = [vp]
    env, txn = vp(), vp()
    assert lib.mdb_env_create(ctypes.byref(env)) == 0
    assert lib.mdb_env_set_maxdbs(env, 16) == 0
    assert lib.mdb_env_set_mapsize(env, 1 << 20) == 0
    assert lib.mdb_env_open(env, str(path).encode(), 0, 0o644) == 0
    assert lib.mdb_txn_begin(env, None, 0, ctypes.byref(txn)) == 0
    keep = []
    for dbname, entries in dbs.items():
        dbi = ctypes.c_uint()
        assert lib.mdb_dbi_open(txn, dbname.encode() if dbname else None, 0x40000,
                                ctypes.byref(dbi)) == 0
        for k, v in entries.items():
            kb = ctypes.create_string_buffer(k, len(k))
            vb = ctypes.create_string_buffer(v, len(v))
            keep += [kb, vb]
            kv = MDBVal(len(k), ctypes.cast(kb, vp))
            vv = MDBVal(len(v), ctypes.cast(vb, vp))
            assert lib.mdb_put(txn, dbi, ctypes.byref(kv), ctypes.byref(vv), 0) == 0
    assert lib.mdb_txn_commit(txn) == 0
    lib.mdb_env_close(env)


# The named databases of a store (store.h LAYOUT).
STORE_DBS = ("meta", "zones", "rrsets", "cuts", "nsec", "nsec3", "journal")

FOREIGN = {
    # Some other program's environment: data in the main database only.
    "main-db": ({None: {b"hello": b"world"}}, "not a tldnode store"),
    # Our layout, but another magic.
    "wrong-magic": ({**{n: {} for n in STORE_DBS}, "meta": {b"magic": b"other-app"}},
                    "not a tldnode store"),
    # Our magic, a format version from the future.
    "future-version": ({**{n: {} for n in STORE_DBS},
                        "meta": {b"magic": b"tldnode-store",
                                 b"version": struct.pack("=I", 99)}}, "version 99"),
}


@pytest.mark.parametrize("cmd", [["lookup", "www.sample.", "A"], ["dump", "sample."], ["zones"]])
@pytest.mark.parametrize("kind", FOREIGN, ids=FOREIGN.keys())
def test_foreign_lmdb_env_readers(tldctl, tmp_store, kind, cmd):
    dbs, expect = FOREIGN[kind]
    make_lmdb(tmp_store, dbs)
    p = run(tldctl, cmd[0], "--store", tmp_store, *cmd[1:])
    assert p.returncode == 1, describe(p)
    assert expect in one_line(p.stderr)


@pytest.mark.parametrize("kind", [
    "main-db", "wrong-magic", "future-version"])
def test_foreign_lmdb_env_import_refused(tldctl, tmp_store, sample_zone, kind):
    dbs, expect = FOREIGN[kind]
    make_lmdb(tmp_store, dbs)
    before = (tmp_store / "data.mdb").read_bytes()
    p = run(tldctl, "import", "--store", tmp_store, sample_zone)
    assert p.returncode == 1, describe(p)
    assert expect in one_line(p.stderr)
    assert (tmp_store / "data.mdb").read_bytes() == before


def test_missing_zone_file(tldctl, tmp_store, tmp_path):
    missing = tmp_path / "no-such.zone"
    p = run(tldctl, "import", "--store", tmp_store, missing)
    assert p.returncode == 1, describe(p)
    msg = one_line(p.stderr)
    assert str(missing) in msg and "store unchanged" in msg


def test_dump_unknown_zone(tldctl, sample_store):
    p = run(tldctl, "dump", "--store", sample_store, "nozone.")
    assert p.returncode == 1 and "no such zone" in one_line(p.stderr)
    assert p.stdout == ""


# ---- lookup output on the sample zone ----

def rr_lines(out):
    """Records printed by lookup, as [owner, ttl, class, type, rdata...] lists."""
    return [l.split() for l in out.splitlines() if l and not l.startswith(";")]


def test_lookup_referral_with_glue(tldctl, sample_store):
    p = check(run(tldctl, "lookup", "--store", sample_store, "www.glued.sample.", "A"))
    assert p.stdout.startswith(";; delegation glued.sample.\n")
    rrs = rr_lines(p.stdout)
    ns = [r for r in rrs if r[3] == "NS"]
    assert {r[0] for r in ns} == {"glued.sample."} and len(ns) == 2
    targets = {r[4].lower() for r in ns}
    glue = [r for r in rrs if r[3] in ("A", "AAAA")]
    assert glue and {r[0] for r in glue} <= targets
    assert {r[0] for r in glue} == {"ns1.glued.sample.", "ns2.glued.sample."}
    assert any(r[3] == "AAAA" for r in glue)
    assert not any(r[3] == "RRSIG" and r[4] == "NS" for r in rrs)  # NS at a cut is unsigned


def test_lookup_referral_carries_signed_ds(tldctl, sample_store):
    p = check(run(tldctl, "lookup", "--store", sample_store, "www.secure.sample.", "AAAA"))
    rrs = rr_lines(p.stdout)
    assert ";; delegation secure.sample." in p.stdout
    assert any(r[3] == "DS" for r in rrs)
    assert any(r[3] == "RRSIG" and r[4] == "DS" for r in rrs)


def test_lookup_ds_at_delegation(tldctl, sample_store):
    p = check(run(tldctl, "lookup", "--store", sample_store, "secure.sample.", "DS"))
    rrs = rr_lines(p.stdout)
    assert "delegation" not in p.stdout  # DS is the parent's data: an answer
    assert [r[3] for r in rrs].count("DS") >= 1
    sigs = [r for r in rrs if r[3] == "RRSIG"]
    assert sigs and all(r[4] == "DS" and r[0] == "secure.sample." for r in sigs)


def test_lookup_unsigned_delegation_ds_is_nodata(tldctl, sample_store):
    p = run(tldctl, "lookup", "--store", sample_store, "unsigned.sample.", "DS")
    assert p.returncode == 3 and ";; NODATA: unsigned.sample." in p.stdout


def test_lookup_answer_with_rrsig(tldctl, sample_store):
    p = check(run(tldctl, "lookup", "--store", sample_store, "WWW.Sample", "a"))
    rrs = rr_lines(p.stdout)
    assert [r[3] for r in rrs] == ["A", "RRSIG"] and rrs[1][4] == "A"
    assert rrs[0][0] == "www.sample."


@pytest.mark.parametrize("qname,qtype,word", [
    ("nonexistent-zz.sample.", "A", "NXDOMAIN"),
    ("a.b.c.nonexistent-zz.sample.", "TXT", "NXDOMAIN"),
    ("www.sample.", "MX", "NODATA"),
    ("ent.sample.", "A", "NODATA"),  # empty non-terminal
    ("example.com.", "A", "REFUSED"),
    (".", "NS", "REFUSED"),
])
def test_lookup_nothing_exits_3(tldctl, sample_store, qname, qtype, word):
    p = run(tldctl, "lookup", "--store", sample_store, qname, qtype)
    assert p.returncode == 3, describe(p)
    assert p.stdout.startswith(f";; {word}"), p.stdout
    assert p.stderr == ""
    assert not rr_lines(p.stdout)


# ---- map full, re-import ----

def test_map_full_leaves_store_unchanged(tldctl, sample_store, tmp_path):
    big = synthetic_zone(tmp_path / "big.zone", "big", 30000)
    before = store_snapshot(tldctl, sample_store)
    p = run(tldctl, "import", "--store", sample_store, "--map-size", "1M", big)
    assert p.returncode == 1, describe(p)
    msg = one_line(p.stderr)
    assert "map is full" in msg and "--map-size" in msg, msg
    assert store_snapshot(tldctl, sample_store) == before
    # With room, the same import works.
    import_zone(tldctl, sample_store, big)
    assert list_zones(tldctl, sample_store) == ["big.", "sample."]


def test_reimport_replaces_zone(tldctl, sample_store, sample_zone, tmp_path):
    text = sample_zone.read_text()
    old = "www.sample.\t3600\tIN\tA\t192.0.2.80\n"
    assert old in text
    changed = text.replace(old, "www.sample.\t3600\tIN\tA\t192.0.2.180\n")
    # Drop a delegation altogether.
    changed = "\n".join(l for l in changed.split("\n")
                        if not l.startswith("unsigned.sample.\t")) + "\n"
    changed = changed.replace(" 2026112501 ", " 2026112502 ", 1)
    p = import_zone(tldctl, sample_store, write_zone(tmp_path / "sample2.zone", changed))
    assert "serial 2026112502" in p.stdout
    look = check(run(tldctl, "lookup", "--store", sample_store, "www.sample.", "A"))
    a = [r[4] for r in rr_lines(look.stdout) if r[3] == "A"]
    assert a == ["192.0.2.180"]
    gone = run(tldctl, "lookup", "--store", sample_store, "www.unsigned.sample.", "A")
    assert gone.returncode == 3 and "NXDOMAIN" in gone.stdout
    zones = check(run(tldctl, "zones", "--store", sample_store)).stdout
    assert zones.count("sample.") == 1 and "serial 2026112502" in zones
    dump = dump_zone(tldctl, sample_store, "sample.")
    assert "192.0.2.80\n" not in dump
    assert not any(l.startswith("unsigned.sample.") for l in dump.splitlines())


def test_readers_never_fail_during_imports(tldctl, tmp_store, tmp_path):
    za = synthetic_zone(tmp_path / "a.zone", "tld", 20000, serial=1, www="192.0.2.80")
    zb = synthetic_zone(tmp_path / "b.zone", "tld", 20000, serial=2, www="192.0.2.81")
    import_zone(tldctl, tmp_store, za, "--quiet")
    dump_a = dump_zone(tldctl, tmp_store, "tld.")
    import_zone(tldctl, tmp_store, zb, "--quiet")
    dump_b = dump_zone(tldctl, tmp_store, "tld.")
    assert dump_a != dump_b

    errors, imports = [], [0]
    done = threading.Event()

    def importer():
        try:
            for i in range(24):
                p = run(tldctl, "import", "--quiet", "--store", tmp_store, za if i % 2 else zb)
                if p.returncode != 0:
                    errors.append(describe(p))
                imports[0] += 1
        finally:
            done.set()

    t = threading.Thread(target=importer)
    t.start()
    dumps = lookups = 0
    seen = set()
    try:
        while not done.is_set() or dumps < 3:
            p = run(tldctl, "dump", "--store", tmp_store, "tld.")
            dumps += 1
            if p.returncode != 0:
                errors.append(describe(p))
            elif p.stdout not in (dump_a, dump_b):
                errors.append("dump is neither version (torn read?)")
            else:
                seen.add(p.stdout == dump_a)
            q = run(tldctl, "lookup", "--store", tmp_store, "www.tld.", "A")
            lookups += 1
            if q.returncode != 0 or not re.search(r"192\.0\.2\.8[01]\n", q.stdout):
                errors.append(describe(q))
            if len(errors) > 3:
                break
    finally:
        t.join()
    assert not errors, "\n\n".join(errors[:3])
    assert imports[0] == 24 and dumps >= 3 and lookups >= 3


# ---- tldnode --check ----

def test_tldnode_check(tldnode, sample_store):
    p = check(run(tldnode, "--store", sample_store, "--check"))
    assert re.search(r"\b1 zones?\b", p.stdout + p.stderr), describe(p)


def test_tldnode_check_counts_zones(tldctl, tldnode, sample_store, tmp_path):
    import_zone(tldctl, sample_store, synthetic_zone(tmp_path / "x.zone", "x", 3))
    p = check(run(tldnode, "--store", sample_store, "--check"))
    assert re.search(r"\b2 zones\b", p.stdout + p.stderr), describe(p)


def test_tldnode_check_missing_store(tldnode, tmp_path):
    p = run(tldnode, "--store", tmp_path / "nowhere", "--check")
    assert p.returncode == 1, describe(p)
    assert "no such store" in one_line(p.stderr)
    assert not (tmp_path / "nowhere").exists()
