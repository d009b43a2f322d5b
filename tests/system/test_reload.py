"""SIGHUP: tldnode re-reads its --config file and re-opens the store in place
(same PID), without losing a query, and keeps running when the new
configuration is broken."""
import os
import signal
import subprocess
import time

import dns.message
import dns.query
import dns.rdatatype
import pytest

from conftest import binary, free_port, import_zone, stop_process, wait_for_soa


def chaos_id(port):
    q = dns.message.make_query("id.server.", "TXT", "CH")
    r = dns.query.udp(q, "127.0.0.1", port=port, timeout=2)
    return r.answer[0][0].strings[0].decode()


def soa_serial(port):
    r = dns.query.udp(dns.message.make_query("sample.", "SOA"), "127.0.0.1", port=port,
                      timeout=2)
    return r.answer[0][0].serial


def wait_log(path, text, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not logged:\n{path.read_text()}")


@pytest.fixture
def reloadable(tldctl, sample_zone, tmp_path):
    store = tmp_path / "store"
    import_zone(tldctl, store, sample_zone)
    port = free_port()
    conf = tmp_path / "node.conf"
    conf.write_text(f"# first\nlisten 127.0.0.1:{port}\nidentity first\nworkers 2\n")
    log = tmp_path / "node.log"
    proc = subprocess.Popen([str(binary("tldnode")), "--store", str(store), "--config",
                             str(conf)], stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    wait_for_soa(port, "sample.", proc, "tldnode")
    yield proc, port, conf, log, store
    stop_process(proc)


def test_sighup_rereads_config_same_pid_no_loss(reloadable, tmp_path):
    proc, port, conf, log, _ = reloadable
    assert chaos_id(port) == "first"
    queries = tmp_path / "q.txt"
    queries.write_text("sample. SOA\nwww.sample. A\nnx.sample. A\n")
    bench = subprocess.Popen([str(binary("tldbench")), "-s", "127.0.0.1", "-p", str(port),
                              "-d", str(queries), "-l", "4", "-Q", "5000", "-t", "2",
                              "--quiet", "--nsid"], stdout=subprocess.PIPE, text=True)
    time.sleep(1.5)
    conf.write_text(f"listen 127.0.0.1:{port}\nidentity second\nworkers 1\n")
    os.kill(proc.pid, signal.SIGHUP)
    out, _ = bench.communicate(timeout=30)
    wait_log(log, "reloaded: serving")
    assert proc.poll() is None, "the same process keeps serving"
    assert chaos_id(port) == "second"
    lost = [l for l in out.splitlines() if "Queries lost:" in l]
    assert lost and lost[0].split()[2] == "0", out
    assert "first" in out and "second" in out, out


def test_sighup_with_broken_config_keeps_serving(reloadable):
    proc, port, conf, log, _ = reloadable
    conf.write_text(f"listen 127.0.0.1:{port}\nno-such-option 1\n")
    os.kill(proc.pid, signal.SIGHUP)
    wait_log(log, "does not check out")
    assert proc.poll() is None
    assert chaos_id(port) == "first"


def test_sighup_to_an_address_that_cannot_be_bound_keeps_serving(reloadable):
    """A reload that adds a listen address this host does not have is refused by the check
    before the re-exec (which would otherwise fail to bind and exit, closing every socket):
    the process keeps serving its old configuration."""
    proc, port, conf, log, _ = reloadable
    conf.write_text(f"listen 127.0.0.1:{port}\nlisten 198.51.100.7:{port}\nidentity second\n")
    os.kill(proc.pid, signal.SIGHUP)
    wait_log(log, "does not check out")
    assert "198.51.100.7" in log.read_text(errors="replace")
    time.sleep(0.5)
    assert proc.poll() is None
    assert chaos_id(port) == "first"


def test_sighup_reopens_a_replaced_store(reloadable, tldctl, sample_zone, tmp_path):
    proc, port, conf, log, store = reloadable
    before = soa_serial(port)
    # The operator builds a new store aside and moves it into place.
    newer = tmp_path / "newer.zone"
    src = open(sample_zone).read()
    newer.write_text(src.replace(str(before), str(before + 1), 1))
    fresh = tmp_path / "fresh"
    import_zone(tldctl, fresh, newer)
    for name in ("data.mdb", "lock.mdb"):
        os.replace(fresh / name, store / name)
    os.kill(proc.pid, signal.SIGHUP)
    wait_log(log, "reloaded: serving")
    deadline = time.monotonic() + 5
    while soa_serial(port) != before + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert soa_serial(port) == before + 1


def test_config_file_errors(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("listen\n")  # option without its value
    p = subprocess.run([str(binary("tldnode")), "--store", str(tmp_path), "--config",
                        str(conf)], capture_output=True, text=True, timeout=10)
    assert p.returncode == 2
    p = subprocess.run([str(binary("tldnode")), "--config", str(tmp_path / "missing.conf")],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "missing.conf" in p.stderr
