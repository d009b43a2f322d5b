"""engine_costs.py - the engine's own cost beside the kernel's floor (qps-bench, run-all).

Runs build/engine-bench (batch 1: one read transaction per query, as at a low rate) on the
store the servers were measured on, and words what it means for the CPU-per-query ratio to
the null responder. Standard library only.
"""

import os
import re
import statistics
import subprocess


def measure(build, store, queries, runs, log=None):
    """Medians over runs of engine-bench on CPU 0: {"engine_ns": [...], "lmdb_lookup_ns": [...],
    "engine_ns_median", "lmdb_lookup_ns_median"}; None when engine-bench is not built or
    printed nothing usable."""
    exe = os.path.join(build, "engine-bench")
    if not os.access(exe, os.X_OK):
        return None
    eng, lmdb = [], []
    for _ in range(runs):
        out = subprocess.run(["taskset", "-c", "0", exe, store, queries, "1000000", "1"],
                             capture_output=True, text=True, timeout=600).stdout
        m = re.search(r"engine: (\d+) ns/query", out)
        f = re.search(r"lmdb: (\d+) ns per bare lookup", out)
        if m and f:
            eng.append(int(m.group(1)))
            lmdb.append(int(f.group(1)))
    if not eng:
        return None
    res = {"engine_ns": eng, "lmdb_lookup_ns": lmdb,
           "engine_ns_median": statistics.median(eng),
           "lmdb_lookup_ns_median": statistics.median(lmdb)}
    if log:
        log("engine alone: %d ns/query, one bare LMDB lookup: %d ns (medians of %d)"
            % (res["engine_ns_median"], res["lmdb_lookup_ns_median"], len(eng)))
    return res


def explain(costs, tld_us, null_us, load):
    """One paragraph: tldnode's CPU per query split into the null responder's floor, the
    engine and one LMDB lookup, against the budget a ratio of 1.1 would leave."""
    budget = 0.1 * null_us
    lookup_us = costs["lmdb_lookup_ns_median"] / 1000
    return ("Where tldnode's time goes at 50k q/s (%s): %.2f µs/query against the null "
            "responder's %.2f, so %.2f µs of its own work per query. The engine alone "
            "(build/engine-bench, no sockets, one read transaction per query) takes %.2f µs "
            "per query on this zone; one bare LMDB lookup (mdb_get of a random delegation, "
            "the single lookup a referral needs) takes %.2f µs. A ratio of 1.1 to the null "
            "responder would leave %.2f µs per query for all of the server's own work: the "
            "bare lookup alone is %.1f× that."
            % (load, tld_us, null_us, tld_us - null_us, costs["engine_ns_median"] / 1000,
               lookup_us, budget, lookup_us / budget))
