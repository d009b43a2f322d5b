"""Warming the store at start (node/warm.c): tldnode reads data.mdb into the page cache on a
background thread, so a node started on a cold store (after a reboot) does not answer its
first queries at the speed of one random disk read each.

Residency is read with util-linux's fincore; the store is evicted first with
posix_fadvise(DONTNEED), which drops clean pages (tldctl import syncs them).
"""

import os
import re
import shutil
import time
import urllib.request

import pytest

from conftest import PYTHON, check, free_port, import_zone, run

DELEGATIONS = 100000


@pytest.fixture(scope="module")
def big_store(tmp_path_factory, gen_zone, tldctl):
    """A store of DELEGATIONS delegations (about 30 MB of data.mdb)."""
    if shutil.which("fincore") is None:
        pytest.skip("fincore (util-linux) not installed")
    d = tmp_path_factory.mktemp("warm")
    zone = d / "tld.zone"
    check(run(PYTHON, gen_zone, "--origin", "tld", "--delegations", DELEGATIONS, "--seed", 3,
              zone))
    store = d / "store"
    import_zone(tldctl, store, zone)
    return store


def data_file(store):
    return os.path.join(store, "data.mdb")


def resident_bytes(path):
    p = check(run("fincore", "--bytes", "--noheadings", "--output", "RES", path))
    return int(p.stdout.split()[0])


def evict(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    size = os.path.getsize(path)
    if resident_bytes(path) > size // 10:
        pytest.skip("the kernel kept the store in the page cache after POSIX_FADV_DONTNEED")
    return size


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"^(tldnode_store_warm_\w+) (\S+)$", text, re.M)}


def wait_for(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_cold_store_is_read_in_background(big_store, tldnode_server):
    path = data_file(big_store)
    size = evict(path)
    mport = free_port()
    node = tldnode_server(big_store, "--metrics", f"127.0.0.1:{mport}")
    assert wait_for(lambda: resident_bytes(path) >= size * 0.95, 30), (
        f"{resident_bytes(path)} of {size} bytes resident 30 s after start\n{node.log_text()}")
    assert wait_for(lambda: scrape(mport).get("tldnode_store_warm_done") == 1, 10)
    m = scrape(mport)
    # It read what was missing (the kernel's readahead may bring in more than it asked for,
    # and chunks found resident are not read again).
    assert 0 < m["tldnode_store_warm_read_bytes"] <= size, m
    assert "warm: store in the page cache" in node.log_text()


def test_warm_store_is_not_read_again(big_store, tldnode_server):
    path = data_file(big_store)
    size = os.path.getsize(path)
    with open(path, "rb") as f:  # the whole file in the page cache
        while f.read(1 << 20):
            pass
    assert resident_bytes(path) >= size * 0.95
    mport = free_port()
    tldnode_server(big_store, "--metrics", f"127.0.0.1:{mport}")
    assert wait_for(lambda: scrape(mport).get("tldnode_store_warm_done") == 1, 10)
    assert scrape(mport)["tldnode_store_warm_read_bytes"] == 0


def test_no_warm_leaves_the_cache_alone(big_store, tldnode_server):
    path = data_file(big_store)
    size = evict(path)
    mport = free_port()
    node = tldnode_server(big_store, "--no-warm", "--metrics", f"127.0.0.1:{mport}")
    time.sleep(1.5)
    assert resident_bytes(path) < size * 0.5, "--no-warm still read the store"
    assert "tldnode_store_warm_done" not in scrape(mport)
    assert "warm:" not in node.log_text()
