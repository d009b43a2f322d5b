/* export.h - what a node exports as Prometheus metrics: queries, responses, TCP, RRL, zones,
 * replication. */
#ifndef TLD_EXPORT_H
#define TLD_EXPORT_H

#include "../lb/server.h"
#include "../replication/repl.h"
#include "metrics.h"
#include "query.h"
#include "rrl.h"
#include "store/store.h"
#include "warm.h"

/*
 * Metric names (all prefixed tldnode_): queries_total{worker,transport},
 * responses_total{worker,rcode}, queries_by_qtype_total{worker,qtype},
 * truncated_total, dropped_total, referrals_total, store_errors_total,
 * cookies_valid_total, rrl_slipped_total, rrl_dropped_total (per worker),
 * tcp_connections, tcp_accepted_total, tcp_refused_total (per worker),
 * rrl_responses_total{verdict}, zone_serial{zone}, and with replication
 * repl_in_sync, repl_events_total{event}, repl_zone_serial{zone,of},
 * repl_lag_ms{zone}, repl_zone_stalled{zone}, repl_peer_serial{node,zone},
 * repl_peer_lag_ms{node,zone}, and unless --no-warm store_warm_done, store_warm_read_bytes
 * (warm.h). Worker counters are plain per-thread integers read while they change: each value is
 * exact to within the increments in flight.
 */

typedef struct tld_export_src {
	const char *identity;
	tld_server *server; /* worker contexts are tld_engine */
	tld_store *store;
	tld_rrl *rrl;   /* may be NULL */
	tld_repl *repl; /* may be NULL */
	tld_warm *warm; /* may be NULL (--no-warm) */
} tld_export_src;

/* A tld_metrics_render_fn; arg is a tld_export_src. */
void tld_export_render(tld_metrics_buf *b, void *arg);

#endif
