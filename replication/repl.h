/* repl.h - a node's replication thread: the primary publishes zone changes, replicas apply them. */
#ifndef TLD_REPL_H
#define TLD_REPL_H

#include <stdbool.h>
#include <stdint.h>

#include "../node/common/err.h"
#include "../node/dns/name.h"
#include "../node/store/store.h"
#include "keyfile.h"

/*
 * One thread per node does all replication and is the only writer of the
 * node's store; the DNS workers keep reading their LMDB snapshots meanwhile.
 *
 * Primary: binds a nanomsg PUB socket (publish_url) and a REP socket
 * (control_url). A push (REQ on control) is applied to the store and
 * appended to the zone's journal in one write transaction, committed with a
 * full sync, published on PUB, and only then answered. Every heartbeat_ms it
 * publishes a heartbeat with every zone's serial. It serves catch-up (the
 * journal from a serial on), snapshots (chunked, one read transaction per
 * session, sessions idle for 30 s expire), replicas' reports and status.
 *
 * Replica: subscribes to the primary's PUB (primary_url) and sends requests
 * to its REP (control_url). A delta whose `from` is the zone's serial is
 * applied (one write transaction: data, journal, serial); an older one is a
 * duplicate and ignored; a newer one, or a heartbeat showing a newer serial,
 * is a gap: the replica catches up from the primary's journal, or takes a
 * snapshot when the journal no longer reaches back (or the zone is new to
 * it, or the primary's serial went backwards). It reports its state to the
 * primary every heartbeat_ms and after each change. It is "in sync" when a
 * fresh heartbeat shows every zone at the serial it holds.
 *
 * Every message is authenticated and checked against replays (msg.h);
 * rejected ones are counted by reason and logged (at most a few lines per
 * reason every 10 s).
 */

enum tld_repl_role { TLD_ROLE_NONE = 0, TLD_ROLE_PRIMARY = 1, TLD_ROLE_REPLICA = 2 };

/* How a node's store reaches the disk (LMDB flags). */
enum tld_repl_sync {
	TLD_SYNC_DEFAULT = 0, /* primary: full, replica: meta */
	TLD_SYNC_FULL = 1,    /* data and meta page flushed at every commit */
	TLD_SYNC_META = 2,    /* MDB_NOMETASYNC: one flush per commit; a system crash may
	                         lose the last commit, never consistency */
	TLD_SYNC_NONE = 3,    /* MDB_NOSYNC, flushed every second by the thread */
};

typedef struct tld_repl_opts {
	int role;                    /* TLD_ROLE_PRIMARY or TLD_ROLE_REPLICA */
	const char *publish_url;     /* primary: PUB bind address */
	const char *control_url;     /* primary: REP bind address; replica: where to connect */
	const char *primary_url;     /* replica: the primary's PUB address */
	const tld_keyring *keys;     /* first key signs; any key verifies (must outlive the node) */
	const char *node_name;       /* in reports and status (default: hostname) */
	unsigned heartbeat_ms;       /* primary: heartbeat period; replica: report period (100) */
	unsigned journal_keep;       /* changes kept per zone (10000; 0 = all) */
	unsigned request_timeout_ms; /* replica: catch-up / snapshot request timeout (5000) */
	unsigned snapshot_chunk;     /* primary: bytes per snapshot chunk (4 MiB) */
	size_t max_message;          /* largest message received or sent, bytes (0:
	                                TLD_REPL_MAX_MESSAGE, 256 MiB) */
	int sync;                    /* enum tld_repl_sync */
} tld_repl_opts;

/* Fills the defaults above (role NONE, URLs NULL). */
void tld_repl_opts_default(tld_repl_opts *o);

typedef struct tld_repl tld_repl;

/* Starts replication on st (opened writable). The primary binds its sockets
 * here, so an address in use is reported now. Errors: TLD_EINVAL (missing
 * option), TLD_EIO (socket, bind, connect: message in eb), TLD_ENOMEM. */
int tld_repl_start(tld_repl **out, tld_store *st, const tld_repl_opts *o, tld_errbuf *eb);

/* Stops the thread (within about 100 ms, or a request timeout at worst),
 * closes its sockets and frees r. */
void tld_repl_stop(tld_repl *r);

/* ---- statistics, for the metrics exporter ---- */

/* Counters every node keeps (the ones that do not apply to its role stay 0). */
enum tld_repl_counter {
	TLD_RC_DELTAS_APPLIED = 0,  /* replica: deltas applied (published or caught up) */
	TLD_RC_CHANGES_APPLIED,     /* replica: RR operations in them */
	TLD_RC_DUPLICATES,          /* replica: deltas already applied (ignored) */
	TLD_RC_GAPS,                /* replica: gaps detected (missed or reordered deltas) */
	TLD_RC_CATCHUPS,            /* replica: catch-ups from the journal completed */
	TLD_RC_CATCHUP_DELTAS,      /* replica: deltas received by catch-up */
	TLD_RC_SNAPSHOTS,           /* replica: snapshots taken */
	TLD_RC_APPLY_ERRORS,        /* replica: deltas that did not apply (then re-synced) */
	TLD_RC_REQUEST_FAILURES,    /* replica: requests without a valid reply in time */
	TLD_RC_HEARTBEATS_RECEIVED, /* replica */
	TLD_RC_REPORTS_SENT,        /* replica */
	TLD_RC_DELTAS_PUBLISHED,    /* primary */
	TLD_RC_HEARTBEATS_SENT,     /* primary */
	TLD_RC_PUSHES,              /* primary: pushes committed */
	TLD_RC_PUSHES_REFUSED,      /* primary: pushes refused (validation, serial) */
	TLD_RC_REQUESTS,            /* primary: authenticated requests served */
	TLD_RC_CATCHUPS_SERVED,     /* primary */
	TLD_RC_SNAPSHOTS_SERVED,    /* primary: snapshot sessions completed */
	TLD_RC_REJECTED,            /* TLD_REJ_COUNT counters follow, by enum tld_reject */
	TLD_RC_NO_SPACE_STALLS = TLD_RC_REJECTED + 6, /* replica: times a zone stopped applying
	                                                 for lack of space (map full, ENOSPC) */
	TLD_RC_STALLED_NO_SPACE, /* replica: zones stalled for lack of space NOW (a gauge: 0 once
	                            applying resumed) */
	TLD_RC_COUNT,
};

/* Short snake_case name of a counter ("gaps", "rejected_bad_mac", ...). */
const char *tld_repl_counter_name(int counter);

/* Zones a cluster replicates: a registry's hundreds of TLDs. A primary refuses
 * to create more; a replica that hears of more logs it and is not in sync. */
#define TLD_REPL_MAX_ZONES   1024
#define TLD_REPL_STATS_ZONES TLD_REPL_MAX_ZONES
#define TLD_REPL_STATS_PEERS 256

typedef struct tld_repl_zone_stats {
	uint8_t apex[TLD_NAME_MAX];
	uint32_t serial;         /* the serial this node holds */
	uint32_t primary_serial; /* replica: the primary's, as last heard (primary: = serial) */
	uint64_t lag_ms;         /* replica: how long it has been behind the primary (0: in step) */
	uint64_t applied_ms;     /* unix ms of the last change applied / committed */
	uint64_t delay_ms;       /* replica: primary's send time -> applied, last published delta */
	bool stalled;            /* replica: applying stopped for lack of space (map full or
	                            ENOSPC); it serves `serial` and retries until space returns */
	char stall_reason[128];  /* replica: why, when stalled */
} tld_repl_zone_stats;

/* Primary: one row per replica and zone, from the replicas' reports. */
typedef struct tld_repl_peer_stats {
	char node[256];
	uint8_t apex[TLD_NAME_MAX];
	uint32_t serial;
	uint64_t lag_ms;
	uint64_t last_seen_ms; /* unix ms of its last report */
	bool in_sync;          /* at the primary's serial, and reporting */
} tld_repl_peer_stats;

typedef struct tld_repl_stats {
	int role;
	bool in_sync; /* replica: see above; primary: always */
	uint64_t counters[TLD_RC_COUNT];
	unsigned nzones;
	tld_repl_zone_stats zones[TLD_REPL_STATS_ZONES];
	unsigned npeers;
	tld_repl_peer_stats peers[TLD_REPL_STATS_PEERS];
} tld_repl_stats;

/* A consistent copy of r's statistics (any thread; takes a mutex briefly).
 * The struct is large (~150 KB): do not put it on a small stack. */
void tld_repl_stats_get(const tld_repl *r, tld_repl_stats *out);

#endif
