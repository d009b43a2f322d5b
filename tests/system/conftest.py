"""Fixtures and helpers shared by every system test (tests/system).

System tests run the built programs (tldctl, tldnode) as a user would. Run
them with Debian's interpreter, which has dnspython and pytest:

    TLD_BUILD_DIR=build /usr/bin/python3 -m pytest -q tests/system

TLD_BUILD_DIR is the CMake build directory holding the binaries (default
<repo>/build; a relative path is taken from the current directory).

Helpers are plain functions so that test modules can import them
(`from conftest import run, store_snapshot`); the same things are also offered
as fixtures.
"""

import hashlib
import os
import struct
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
BROKEN_ZONES = TESTS / "zones" / "broken"
SHARED_ZONES = REPO.parent / "shared" / "zones"
SAMPLE_ZONE = REPO / "deploy" / "sample" / "sample.zone"
GEN_ZONE = TESTS / "bench" / "gen-zone.py"
PYTHON = "/usr/bin/python3"  # Debian's, with dnspython

# Generous: a whole root zone imports in well under a second.
DEFAULT_TIMEOUT = 120


def build_dir():
    """The CMake build directory (TLD_BUILD_DIR, default <repo>/build)."""
    return Path(os.environ.get("TLD_BUILD_DIR", REPO / "build")).resolve()


def binary(name):
    """Path of a built program, or skip the test with a clear message."""
    path = build_dir() / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.skip(f"{name} is not built: {path} missing (build it, or set TLD_BUILD_DIR "
                    f"to the build directory)")
    return path


def run(*cmd, input=None, timeout=DEFAULT_TIMEOUT, cwd=None, env=None):
    """Runs cmd (any mix of str/Path; lists are flattened) and returns the
    CompletedProcess with text stdout/stderr. Never raises on a non-zero exit."""
    args = []
    for c in cmd:
        if isinstance(c, (list, tuple)):
            args.extend(str(x) for x in c)
        else:
            args.append(str(c))
    return subprocess.run(args, input=input, capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=env, errors="surrogateescape")


def describe(proc):
    """A failure message for a CompletedProcess."""
    return (f"$ {' '.join(map(str, proc.args))}\nexit {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}")


def check(proc, rc=0):
    """Asserts proc exited with rc and returns it."""
    assert proc.returncode == rc, describe(proc)
    return proc


def recv_exact(s, n):
    """Exactly n bytes from socket s, or None when the peer closed the connection
    (EOF or reset) first."""
    buf = b""
    while len(buf) < n:
        try:
            chunk = s.recv(n - len(buf))
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


def read_frame(s):
    """One length-framed DNS message (TCP, RFC 1035 4.2.2) from socket s, or None if the
    connection closed first."""
    head = recv_exact(s, 2)
    if head is None:
        return None
    return recv_exact(s, struct.unpack("!H", head)[0])


def import_zone(tldctl, store, zonefile, *extra):
    """`tldctl import`, which must succeed; returns the CompletedProcess."""
    return check(run(tldctl, "import", "--store", store, *extra, zonefile))


def dump_zone(tldctl, store, apex):
    """`tldctl dump` of one zone, which must succeed; returns its text."""
    return check(run(tldctl, "dump", "--store", store, apex)).stdout


def list_zones(tldctl, store):
    """Apexes of the zones in the store (`tldctl zones`), in its order."""
    out = check(run(tldctl, "zones", "--store", store)).stdout
    return [line.split("\t")[0] for line in out.splitlines() if line.strip()]


def store_snapshot(tldctl, store):
    """What the store holds, as text: the zone list, then every zone's dump.
    Two snapshots are equal exactly when the stores serve the same data."""
    zones = check(run(tldctl, "zones", "--store", store)).stdout
    parts = [zones]
    for apex in list_zones(tldctl, store):
        parts.append(dump_zone(tldctl, store, apex))
    return "\0".join(parts)


def store_digest(tldctl, store):
    """SHA-256 of store_snapshot()."""
    return hashlib.sha256(store_snapshot(tldctl, store).encode("utf-8", "surrogateescape")
                          ).hexdigest()


def write_zone(path, text):
    """Writes a master file (dedenting nothing: pass the text as it should be)."""
    path = Path(path)
    path.write_text(text)
    return path


# ---- fixtures ----

@pytest.fixture(scope="session")
def build():
    """The build directory (may not exist: the binary fixtures skip then)."""
    return build_dir()


@pytest.fixture(scope="session")
def tldctl():
    return binary("tldctl")


@pytest.fixture(scope="session")
def tldnode():
    return binary("tldnode")


@pytest.fixture(name="run")
def run_fixture():
    """The run() helper, for tests that prefer a fixture to an import."""
    return run


@pytest.fixture
def tmp_store(tmp_path):
    """A fresh, empty directory for a store (`tldctl import` fills it)."""
    d = tmp_path / "store"
    d.mkdir()
    return d


@pytest.fixture
def tmp_store2(tmp_path):
    """A second fresh store directory."""
    d = tmp_path / "store2"
    d.mkdir()
    return d


@pytest.fixture(scope="session")
def shared_zones():
    """<repo>/../shared/zones: real root zone copies (README.md there)."""
    if not SHARED_ZONES.is_dir():
        pytest.skip(f"../shared/zones absent: {SHARED_ZONES} holds the real root zones")
    return SHARED_ZONES


@pytest.fixture(scope="session")
def sample_zone():
    """deploy/sample/sample.zone: the signed sample TLD `sample.`."""
    if not SAMPLE_ZONE.is_file():
        pytest.skip(f"sample zone absent: {SAMPLE_ZONE} (made by deploy/sample/make-sample)")
    return SAMPLE_ZONE


@pytest.fixture(scope="session")
def gen_zone():
    """tests/bench/gen-zone.py, the synthetic TLD generator."""
    if not GEN_ZONE.is_file():
        pytest.skip(f"zone generator absent: {GEN_ZONE}")
    return GEN_ZONE


@pytest.fixture
def sample_store(tldctl, sample_zone, tmp_store):
    """A store holding the sample zone."""
    import_zone(tldctl, tmp_store, sample_zone)
    return tmp_store


# ---- a running Knot DNS (knotd), to compare answers with (test_differential.py) ----
#
# free_port() is defined with the tldnode fixtures below.

def wait_for_soa(port, origin, proc, what, timeout=DEFAULT_TIMEOUT):
    """Polls SOA origin over UDP until the server answers it NOERROR with an
    answer; fails with the server's stderr if it exits or the time runs out."""
    import time

    import dns.message
    import dns.query
    import dns.rcode
    deadline = time.monotonic() + timeout
    q = dns.message.make_query(origin, "SOA")
    while True:
        if proc.poll() is not None:
            err = ""
            if proc.stderr:  # a temporary file (never a pipe: it could fill up)
                proc.stderr.seek(0)
                err = proc.stderr.read()
            pytest.fail(f"{what} exited with {proc.returncode} before serving {origin}\n{err}")
        try:
            r = dns.query.udp(q, "127.0.0.1", port=port, timeout=0.2)
            if r.rcode() == dns.rcode.NOERROR and r.answer:
                return
        except Exception:  # not listening yet, or zone not loaded
            pass
        if time.monotonic() > deadline:
            stop_process(proc)
            pytest.fail(f"{what} did not answer SOA {origin} within {timeout} s")
        time.sleep(0.02)


def stop_process(proc, timeout=10):
    """SIGTERM, then SIGKILL after timeout; returns the exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _errfile():
    """A temporary file for a server's stderr (kept as proc.stderr)."""
    import tempfile
    return tempfile.TemporaryFile("w+")


class KnotServer:
    """A running DNS server (knotd) on 127.0.0.1:port (stop() it, or use `with`)."""

    def __init__(self, proc, port, what):
        self.proc, self.port, self.what = proc, port, what
        self.addr = "127.0.0.1"

    def stop(self):
        return stop_process(self.proc)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


KNOTD = "/usr/sbin/knotd"


def start_knotd(workdir, zones, nsid="tldnode-test", timeout=DEFAULT_TIMEOUT):
    """Starts Debian's knotd with its own config, storage and rundir under
    workdir, serving zones ({origin: zonefile}) on a free port of 127.0.0.1,
    one UDP and one TCP worker, the zone file loaded whole, no journal, no
    DNSSEC signing, no RRL (no modules). identity and nsid are set to nsid
    (Knot's NSID default is the hostname). Waits until every zone answers its
    SOA. Returns a KnotServer; skips the test when knotd is not installed."""
    if not os.access(KNOTD, os.X_OK):
        pytest.skip(f"knotd is not installed ({KNOTD}: apt-get install knot)")
    workdir = Path(workdir)
    for d in ("run", "db", "zones"):
        (workdir / d).mkdir(parents=True, exist_ok=True)
    port = free_port()
    zone_conf = "".join(f"  - domain: \"{o}\"\n    file: \"{Path(f).resolve()}\"\n"
                        for o, f in zones.items())
    conf = workdir / "knot.conf"
    conf.write_text(f"""server:
    rundir: "{workdir}/run"
    listen: 127.0.0.1@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
    identity: "{nsid}"
    nsid: "{nsid}"
database:
    storage: "{workdir}/db"
log:
  - target: "{workdir}/knot.log"
    any: info
template:
  - id: default
    storage: "{workdir}/zones"
    journal-content: none
    zonefile-load: whole
    zonefile-sync: -1
    semantic-checks: off
    dnssec-signing: off
zone:
{zone_conf}""")
    err = _errfile()
    proc = subprocess.Popen([KNOTD, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=err,
                            text=True)
    proc.stderr = err
    for origin in zones:
        wait_for_soa(port, origin, proc, f"knotd (log: {workdir}/knot.log)", timeout)
    return KnotServer(proc, port, "knotd")


def _server_factory(tmp_path_factory, start, prefix):
    """Yields start(zones, **kw) with a fresh work directory each call; stops
    every server it started when resumed (at the end of the session)."""
    servers = []

    def make(zones, **kw):
        server = start(tmp_path_factory.mktemp(prefix), zones, **kw)
        servers.append(server)
        return server
    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def knotd_factory(tmp_path_factory):
    """start_knotd(zones, nsid=...) with a fresh work directory each call;
    every server started is stopped at the end of the session."""
    yield from _server_factory(tmp_path_factory, start_knotd, "knotd")


NSD = "/usr/sbin/nsd"


def start_nsd(workdir, zones, nsid="tldnode-test", timeout=DEFAULT_TIMEOUT):
    """Starts Debian's nsd in the foreground with its own config under workdir,
    serving zones ({origin: zonefile}) on a free port of 127.0.0.1: one server
    process, no database file, no RRL, no remote control; identity and NSID set
    to nsid. Waits until every zone answers its SOA. Returns a KnotServer (the
    same handle); skips the test when nsd is not installed."""
    if not os.access(NSD, os.X_OK):
        pytest.skip(f"nsd is not installed ({NSD}: apt-get install nsd)")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    zone_conf = "".join(f"zone:\n    name: \"{o}\"\n    zonefile: \"{Path(f).resolve()}\"\n"
                        for o, f in zones.items())
    conf = workdir / "nsd.conf"
    conf.write_text(f"""server:
    ip-address: 127.0.0.1@{port}
    do-ip6: no
    server-count: 1
    username: ""
    chroot: ""
    database: ""
    zonelistfile: "{workdir}/zone.list"
    pidfile: "{workdir}/nsd.pid"
    xfrdfile: "{workdir}/xfrd.state"
    xfrdir: "{workdir}"
    logfile: "{workdir}/nsd.log"
    identity: "{nsid}"
    nsid: "ascii_{nsid}"
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
{zone_conf}""")
    err = _errfile()
    proc = subprocess.Popen([NSD, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=err,
                            text=True)
    proc.stderr = err
    for origin in zones:
        wait_for_soa(port, origin, proc, f"nsd (log: {workdir}/nsd.log)", timeout)
    return KnotServer(proc, port, "nsd")


@pytest.fixture(scope="session")
def nsd_factory(tmp_path_factory):
    """start_nsd(zones, nsid=...), as knotd_factory."""
    yield from _server_factory(tmp_path_factory, start_nsd, "nsd")


# ---- a running tldnode ----
#
# start = tldnode_server (a factory fixture) imports nothing itself: give it a
# store (e.g. the sample_store fixture) and it starts tldnode on a free port on
# 127.0.0.1 and [::1], waits until it answers, and on teardown sends SIGTERM
# and asserts a clean exit (status 0 within 5 s). sample_node is one such
# server on the sample zone, shared by a whole test module.

import signal  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402


def ipv6_loopback():
    """True when [::1] can be bound here."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_port(hosts=("127.0.0.1",)):
    """A port that no socket (UDP or TCP) uses on any of hosts. Racy by nature,
    but tldnode's own bind reports a clash clearly."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            for host in hosts:
                fam = socket.AF_INET6 if ":" in host else socket.AF_INET
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    with socket.socket(fam, kind) as s:
                        s.bind((host, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port found")


def _probe(host, port, timeout=0.2):
    """Sends a minimal query (. SOA, no EDNS) over UDP; True on any reply."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    qid = int.from_bytes(os.urandom(2), "big")
    pkt = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0) + b"\x00" + struct.pack("!HH", 6, 1)
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(pkt, (host, port))
            while True:
                data, _ = s.recvfrom(65535)
                if len(data) >= 2 and data[:2] == pkt[:2]:
                    return True
        except OSError:
            return False


class TldNode:
    """One tldnode process. host/port: the first listen address."""

    def __init__(self, binary, store, port, listen, args, log_path):
        self.binary, self.store, self.port = binary, Path(store), port
        self.listen = list(listen)
        self.args = [str(a) for a in args]
        self.log_path = Path(log_path)
        self.proc = None
        self.stopped_rc = None

    @property
    def host(self):
        return self.listen[0]

    @property
    def addr(self):
        return (self.host, self.port)

    def argv(self):
        argv = [str(self.binary), "--store", str(self.store)]
        for h in self.listen:
            argv += ["--listen", f"[{h}]:{self.port}" if ":" in h else f"{h}:{self.port}"]
        return argv + self.args

    def start(self, wait=True, timeout=10):
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv(), stdout=self.log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready(timeout)
        return self

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout=10):
        """Until tldnode has logged that it serves (every worker started: one
        worker may answer before the others are up), answers on every listen
        address (over UDP) and accepts TCP connections; fails with the log if
        it exits first."""
        deadline = time.monotonic() + timeout
        while "serving with" not in self.log_text():
            if self.proc.poll() is not None:
                raise AssertionError(f"tldnode exited with {self.proc.returncode} while "
                                     f"starting: {self.argv()}\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"tldnode not serving after {timeout}s\n{self.log_text()}")
            time.sleep(0.01)
        pending = list(self.listen)
        while pending:
            if self.proc.poll() is not None:
                raise AssertionError(f"tldnode exited with {self.proc.returncode} while "
                                     f"starting: {self.argv()}\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"tldnode does not answer on {pending} after {timeout}s"
                                     f"\n{self.log_text()}")
            if _probe(pending[0], self.port):
                pending.pop(0)
        for h in self.listen:
            fam = socket.AF_INET6 if ":" in h else socket.AF_INET
            with socket.socket(fam, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                s.connect((h, self.port))
        return self

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=5):
        """Sends sig and returns the exit status (None if still running after
        timeout, in which case the process is killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.stopped_rc = None
                self.log.close()
                return None
        self.stopped_rc = self.proc.returncode
        self.log.close()
        return self.stopped_rc

    def stop_clean(self, timeout=5):
        """SIGTERM; asserts exit status 0 within timeout."""
        start = time.monotonic()
        rc = self.stop(signal.SIGTERM, timeout)
        assert rc == 0, (f"tldnode did not exit cleanly on SIGTERM (status {rc}, "
                         f"{time.monotonic() - start:.1f}s)\n{self.log_text()[-4000:]}")


class _NodeFactory:
    def __init__(self, binary, workdir):
        self.binary, self.workdir = binary, Path(workdir)
        self.nodes = []

    def __call__(self, store, *args, listen=None, port=None, identity="tldnode-test",
                 wait=True):
        """Starts tldnode on store. listen: hosts (default 127.0.0.1 and ::1 when
        available); args: more options; identity: --identity (None: leave it out)."""
        if listen is None:
            listen = ["127.0.0.1"] + (["::1"] if ipv6_loopback() else [])
        if port is None:
            port = free_port(listen)
        extra = list(args)
        if identity is not None:
            extra = ["--identity", identity] + extra
        log = self.workdir / f"tldnode-{len(self.nodes)}.log"
        node = TldNode(self.binary, store, port, listen, extra, log)
        self.nodes.append(node)
        return node.start(wait=wait)

    def teardown(self):
        errors = []
        for node in self.nodes:
            if node.alive():
                try:
                    node.stop_clean()
                except AssertionError as e:
                    errors.append(str(e))
        assert not errors, "\n".join(errors)


@pytest.fixture
def tldnode_server(tldnode, tmp_path):
    """Factory: tldnode_server(store, *options, listen=None, identity=...) -> TldNode,
    started and answering; stopped with SIGTERM (exit 0 asserted) at teardown."""
    factory = _NodeFactory(tldnode, tmp_path)
    yield factory
    factory.teardown()


@pytest.fixture(scope="module")
def tldnode_server_module(tmp_path_factory):
    """tldnode_server for servers shared by a test module."""
    factory = _NodeFactory(binary("tldnode"), tmp_path_factory.mktemp("tldnode"))
    yield factory
    factory.teardown()


@pytest.fixture(scope="module")
def sample_node(tldnode_server_module, tmp_path_factory):
    """tldnode serving the sample zone (identity "tldnode-test"), module-wide."""
    if not SAMPLE_ZONE.is_file():
        pytest.skip(f"sample zone absent: {SAMPLE_ZONE}")
    store = tmp_path_factory.mktemp("sample-store")
    import_zone(binary("tldctl"), store, SAMPLE_ZONE)
    return tldnode_server_module(store)
