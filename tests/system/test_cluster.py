"""The local anycast cluster (deploy/cluster): a client, a router, three nodes
and a hidden primary in network namespaces, with BIRD 2 (eBGP + BFD) and the
node-local health check (deploy/healthcheck), and the same without BGP
(static ECMP routes kept with `ip route replace`).

Checks that queries to the anycast address reach every node over UDP and TCP,
IPv4 and IPv6; that killing or hanging (SIGSTOP) one node's tldnode under a
steady 200 q/s load withdraws its route with no query lost after the
withdrawal; that a restarted node is announced again only once in sync; that
a change pushed to the primary is answered by every node at the anycast
address. Prints the failover figures (run with -s to see them):

    sudo TLD_BUILD_DIR=build /usr/bin/python3 -m pytest -s tests/system/test_cluster.py

Needs root (network namespaces); skipped, with the reason, only when a
namespace cannot be made. Uses its own namespace prefix (tt<pid>-) and state
directory, so it disturbs neither a cluster started by hand nor another test
run, and always tears its cluster down. TLD_CLUSTER_MODES=bgp,no-bgp (default) selects the variants.
"""

import importlib.machinery
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from conftest import REPO, SAMPLE_ZONE, binary, build_dir

DEPLOY = REPO / "deploy"
# Namespaces "tt<pytest pid>-*": test runs that overlap (several checkouts, CI
# jobs) each get their own cluster; leftovers of dead runs are removed first.
PREFIX = f"tt{os.getpid()}-"
ANY4, ANY6 = "10.53.0.53", "fd53::53"
NODES = ["n1", "n2", "n3"]
# Targets are 500 ms; the assertions leave room for a loaded CI machine.
MAX_KILL_CONVERGENCE_MS = 1500
MAX_STOP_CONVERGENCE_MS = 2000


def _load_measure():
    loader = importlib.machinery.SourceFileLoader("tld_measure", str(DEPLOY / "measure"))
    spec = importlib.util.spec_from_loader("tld_measure", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


measure = _load_measure()
FIGURES = []  # rows printed at the end of the module


def netns_unavailable():
    """Why network namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (run the system tests as root)"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is missing"
    name = f"{PREFIX}probe"
    p = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if p.returncode != 0:
        return f"cannot create a network namespace: {p.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


MODES = [m for m in os.environ.get("TLD_CLUSTER_MODES", "bgp,no-bgp").split(",") if m]


@pytest.fixture(scope="module", params=MODES)
def cluster(request):
    why = netns_unavailable()
    if why:
        pytest.skip(why)
    binary("tldnode")
    binary("tldctl")
    mode = request.param
    if mode == "bgp" and shutil.which("bird") is None:
        pytest.fail("bird (BIRD 2) is missing: scripts/install-deps installs bird2")
    if shutil.which("dig") is None:
        pytest.fail("dig is missing: scripts/install-deps installs bind9-dnsutils")
    remove_stale_clusters()
    cl = measure.Cluster(prefix=PREFIX, build=build_dir())
    args = ["up", "--nodes", len(NODES)] + (["--no-bgp"] if mode == "no-bgp" else [])
    try:
        t0 = time.monotonic()
        p = cl.run(*args, check=False, timeout=120)
        assert p.returncode == 0, f"cluster up failed:\n{p.stdout}\n{p.stderr}\n" + logs(cl)
        cl.mode = mode
        cl.bringup_s = time.monotonic() - t0
        cl.monitor = measure.RouteMonitor(cl)
        yield cl
    finally:
        mon = getattr(cl, "monitor", None)
        if mon:
            mon.close()
        cl.run("down", check=False, timeout=60)
    assert not [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                          text=True).stdout.split() if n.startswith(PREFIX)]


def remove_stale_clusters():
    """Takes down the clusters of earlier test runs whose process is gone."""
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    for prefix in sorted({m.group(0) for n in names if (m := re.match(r"tt(\d+)-", n))}):
        pid = int(prefix[2:-1])
        if pid != os.getpid() and not os.path.exists(f"/proc/{pid}"):
            measure.Cluster(prefix=prefix).run("down", check=False, timeout=60)


def logs(cl):
    """The tail of every log of the cluster, for failure messages."""
    out = []
    for f in sorted(cl.state.glob("*/*.log")):
        out.append(f"--- {f} ---\n" + "\n".join(f.read_text(errors="replace").splitlines()[-15:]))
    return "\n".join(out)


def cexec(cl, ns, *cmd, timeout=30):
    return subprocess.run(["ip", "netns", "exec", cl.ns(ns), *map(str, cmd)],
                          capture_output=True, text=True, timeout=timeout)


def dig(cl, ns, server, qname, qtype, *opts):
    p = cexec(cl, ns, "dig", "+norec", "+time=1", "+tries=1", "+short", *opts, f"@{server}",
              qname, qtype)
    return p.stdout.strip()


def primary_serial(cl):
    out = dig(cl, "primary", "10.53.250.1", "sample.", "SOA")
    return int(out.split()[2])


def healthy(cl):
    assert cl.wait_announced(NODES, timeout=30), \
        f"not every node announced: {cl.announced(4)} / {cl.announced(6)}\n" + \
        cl.run("status", check=False).stdout + logs(cl)


def zone_with(serial, text):
    """The sample zone with another SOA serial and apex TXT."""
    z = SAMPLE_ZONE.read_text()
    z, n = re.subn(r"(sample\.\s+\d+\s+IN\s+SOA\s+\S+\s+\S+\s+)\d+", rf"\g<1>{serial}", z, count=1)
    assert n == 1
    z, n = re.subn(r'(sample\.\s+\d+\s+IN\s+TXT\s+)"[^"]*"', rf'\1"{text}"', z, count=1)
    assert n == 1
    return z


def push(cl, tmp_path, serial, text):
    f = tmp_path / f"sample-{serial}.zone"
    f.write_text(zone_with(serial, text))
    p = cl.run("push", "--zone-file", f, check=False, timeout=60)
    assert p.returncode == 0, f"push failed:\n{p.stdout}\n{p.stderr}\n" + logs(cl)
    return f


# ---- tests ----

def test_every_node_answers_udp_and_tcp(cluster):
    healthy(cluster)
    for tcp, count in ((False, 240), (True, 90)):
        for server in (ANY4, ANY6):
            data = cluster.result(cluster.load(0, servers=[server], tcp=tcp, count=count,
                                               rate=400, timeout=1.0))
            results = [q[3] for q in data["queries"]]
            proto = "tcp" if tcp else "udp"
            lost = [r for r in results if not measure.loadgen.is_answer(r)]
            assert not lost, f"{proto} {server}: {len(lost)} of {count} unanswered: {set(lost)}"
            assert sorted(set(results)) == NODES, \
                f"{proto} {server}: answers only from {sorted(set(results))}"


def test_unicast_addresses_and_hidden_primary(cluster):
    for k, node in enumerate(NODES, 1):
        out = cexec(cluster, "client", "dig", "+norec", "+time=1", "+tries=1", "+nsid",
                    f"@10.53.{100 + k}.2", "sample.", "SOA").stdout
        assert f'("{node}")' in out, out
        out = cexec(cluster, "client", "dig", "+norec", "+time=1", "+tries=1", "+nsid",
                    f"@fd53:{100 + k}::2", "sample.", "SOA").stdout
        assert f'("{node}")' in out, out
    # the primary answers the nodes on the management network, not the client
    assert dig(cluster, "n1", "10.53.250.1", "sample.", "SOA")
    p = cexec(cluster, "client", "dig", "+time=1", "+tries=1", "@10.53.250.1", "sample.", "SOA")
    assert "status: NOERROR" not in p.stdout


@pytest.mark.parametrize("mode", ["kill", "stop"])
def test_failover_under_load(cluster, mode):
    healthy(cluster)
    victim = "n2" if mode == "kill" else "n3"
    fig = measure.failover_round(cluster, mode, victim, rate=200, before=1.0, fail_for=2.0,
                                 after=2.5, monitor=cluster.monitor)
    fig["cluster"] = cluster.mode
    FIGURES.append(fig)
    print(f"\n[{cluster.mode}] {mode} {victim}: {fig}")
    info = f"{fig}\n" + logs(cluster)
    assert fig["lost_before"] == 0, info
    assert fig["withdrawn_ms"] is not None, "the route was not withdrawn\n" + info
    assert fig["lost_after_withdrawal"] == 0, info
    limit = MAX_KILL_CONVERGENCE_MS if mode == "kill" else MAX_STOP_CONVERGENCE_MS
    assert fig["convergence_ms"] < limit, info
    assert fig["back_ms"] is not None, "not announced again\n" + info
    assert fig["first_answer_ms"] is not None, info
    assert fig["lost_after_return"] == 0, info
    healthy(cluster)


def test_push_reaches_every_node(cluster, tmp_path):
    healthy(cluster)
    serial = primary_serial(cluster) + 1
    push(cluster, tmp_path, serial, f"pushed {serial}")
    assert primary_serial(cluster) == serial
    deadline = time.monotonic() + 20
    seen = {}
    while time.monotonic() < deadline:
        data = cluster.result(cluster.load(0, count=60, rate=300, timeout=1.0))
        for q in data["queries"]:
            if q[3] in NODES and q[5] == serial:
                seen[q[3]] = True
        if sorted(seen) == NODES:
            break
        time.sleep(0.2)
    assert sorted(seen) == NODES, f"new serial {serial} answered only by {sorted(seen)}\n" + \
        logs(cluster)
    for k, node in enumerate(NODES, 1):
        assert dig(cluster, "client", f"10.53.{100 + k}.2", "sample.", "TXT") == \
            f'"pushed {serial}"'


def node_serial(cl, k):
    """Node k's SOA serial at its unicast address (asked from the router), or None."""
    out = dig(cl, "router", f"10.53.{100 + k}.2", "sample.", "SOA").split()
    return int(out[2]) if len(out) >= 7 and out[2].isdigit() else None


def test_restarted_node_announced_only_in_sync(cluster, tmp_path):
    """A node restarted behind the primary answers (at its unicast address)
    with its old data but stays withdrawn until it has caught up."""
    healthy(cluster)
    victim, k = "n1", 1
    pid = cluster.pid(f"{victim}.tldnode")
    cluster.run("kill", victim)
    deadline = time.monotonic() + 5
    while victim in cluster.announced(4) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert victim not in cluster.announced(4)
    old = primary_serial(cluster)
    serial = old + 1
    push(cluster, tmp_path, serial, f"while {victim} was down")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and \
            not all(node_serial(cluster, j) == serial for j in (2, 3)):
        time.sleep(0.1)
    assert all(node_serial(cluster, j) == serial for j in (2, 3)), logs(cluster)
    # the victim's health check has seen the primary's new serial (it keeps
    # the last one it got when the primary cannot be asked)
    state = cluster.state / victim / "health.json"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and \
            json.loads(state.read_text()).get("primary", {}).get("sample.") != serial:
        time.sleep(0.05)
    assert json.loads(state.read_text())["primary"]["sample."] == serial

    # hold the victim back after its restart: a replica loses its management
    # link (no catch-up; its health check keeps the primary's last serial);
    # a standalone node is caught up by `cluster start` only after a delay
    replication = cluster.conf()["REPL"] == "replication"
    hold = 1.5
    if replication:
        subprocess.run(["ip", "-n", cluster.ns(victim), "link", "set", "mgmt", "down"],
                       check=True)
    lg = cluster.load(8.0, rate=200)
    time.sleep(0.5)
    t_start = time.time()
    env = dict(cluster.env, TLD_CLUSTER_CATCHUP_DELAY=str(hold))
    starter = subprocess.Popen([str(measure.CLUSTER), "start", victim], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # it answers with the old serial, and is not announced meanwhile
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and node_serial(cluster, k) != old:
            time.sleep(0.05)
        assert node_serial(cluster, k) == old, "restarted node never answered\n" + logs(cluster)
        t_old = time.monotonic()
        while time.monotonic() - t_old < hold - 0.3:
            assert victim not in cluster.announced(4), \
                "announced while behind the primary\n" + logs(cluster)
            time.sleep(0.05)
    finally:
        if replication:
            subprocess.run(["ip", "-n", cluster.ns(victim), "link", "set", "mgmt", "up"])
        starter.wait(timeout=30)
    assert starter.returncode == 0, starter.stdout
    healthy(cluster)
    data = cluster.result(lg)
    assert cluster.pid(f"{victim}.tldnode") not in (None, pid)
    assert node_serial(cluster, k) == serial
    q = data["queries"]
    from_victim = [x for x in q if x[3] == victim and x[0] >= t_start]
    assert from_victim, f"{victim} was not announced again\n" + logs(cluster)
    stale = [x for x in from_victim if x[5] != serial]
    assert not stale, f"{victim} answered at the anycast address with an old serial: " \
                      f"{stale[:3]}\n" + logs(cluster)
    lost = [x for x in q if not measure.loadgen.is_answer(x[3])]
    assert not lost, f"{len(lost)} queries lost during the restart: {lost[:3]}"
    back = measure.loadgen.analyze_return(q, t_start, victim)
    FIGURES.append({"cluster": cluster.mode, "mode": "behind", "victim": victim,
                    "first_answer_ms": back, "total": len(q), "lost": len(lost)})
    print(f"\n[{cluster.mode}] {victim} restarted behind the primary, held back {hold} s: "
          f"first anycast answer after {back} ms")


def test_zz_figures(cluster):
    """Prints the figures of this module's runs (pytest -s)."""
    rows = [r for r in FIGURES if r.get("cluster") == cluster.mode]
    print(f"\n== anycast cluster figures [{cluster.mode}], bring-up {cluster.bringup_s:.1f} s ==")
    measure.print_table(rows, out=sys.stdout)
