/* export.c - what a node exports as Prometheus metrics: queries, responses, TCP, RRL, zones,
 * replication. */
#include "export.h"

#include <stdlib.h>
#include <string.h>

#include "dns/name.h"
#include "dns/rrtype.h"

static const char *const rcode_names[24] = {
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE",  "RCODE11",  "RCODE12", "RCODE13", "RCODE14",  "RCODE15",
    "BADVERS", "RCODE17", "RCODE18",  "RCODE19",  "RCODE20", "RCODE21", "RCODE22",  "BADCOOKIE",
};

#define P(...) tld_metrics_printf(b, __VA_ARGS__)

static void help(tld_metrics_buf *b, const char *name, const char *type, const char *text)
{
	P("# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

static void engine_metrics(tld_metrics_buf *b, const tld_export_src *src)
{
	unsigned n = tld_server_workers(src->server);
	static const char *const transport[2] = {"udp", "tcp"};
	help(b, "tldnode_queries_total", "counter", "Queries received, by worker and transport.");
	for (unsigned w = 0; w < n; w++) {
		const tld_engine *e = tld_server_worker_ctx(src->server, w);
		for (int t = 0; t < 2; t++)
			P("tldnode_queries_total{worker=\"%u\",transport=\"%s\"} %lu\n", w,
			  transport[t], (unsigned long)e->stats.queries[t]);
	}
	help(b, "tldnode_responses_total", "counter", "Responses sent, by worker and rcode.");
	for (unsigned w = 0; w < n; w++) {
		const tld_engine *e = tld_server_worker_ctx(src->server, w);
		for (int r = 0; r < 24; r++)
			if (e->stats.rcode[r] != 0 || r <= 5)
				P("tldnode_responses_total{worker=\"%u\",rcode=\"%s\"} %lu\n", w,
				  rcode_names[r], (unsigned long)e->stats.rcode[r]);
	}
	help(b, "tldnode_queries_by_qtype_total", "counter", "Queries by worker and qtype.");
	for (unsigned w = 0; w < n; w++) {
		const tld_engine *e = tld_server_worker_ctx(src->server, w);
		for (int t = 0; t < TLD_STAT_QTYPES; t++) {
			char name[16];
			if (e->stats.qtype[t] == 0)
				continue;
			tld_rrtype_to_text((uint16_t)t, name, sizeof(name));
			P("tldnode_queries_by_qtype_total{worker=\"%u\",qtype=\"%s\"} %lu\n", w,
			  name, (unsigned long)e->stats.qtype[t]);
		}
		P("tldnode_queries_by_qtype_total{worker=\"%u\",qtype=\"other\"} %lu\n", w,
		  (unsigned long)e->stats.qtype_other);
	}
	struct {
		const char *name, *text;
		size_t off;
	} simple[] = {
	    {"tldnode_truncated_total", "Responses sent with TC=1.",
	     offsetof(tld_engine_stats, truncated)},
	    {"tldnode_dropped_total", "Messages not answered (malformed beyond reply, QR=1).",
	     offsetof(tld_engine_stats, dropped)},
	    {"tldnode_referrals_total", "Referral responses.",
	     offsetof(tld_engine_stats, referrals)},
	    {"tldnode_store_errors_total", "Read transactions that could not start.",
	     offsetof(tld_engine_stats, store_errors)},
	    {"tldnode_cookies_valid_total", "Queries with a valid server cookie.",
	     offsetof(tld_engine_stats, cookies_valid)},
	    {"tldnode_rrl_slipped_total", "Responses sent truncated by rate limiting.",
	     offsetof(tld_engine_stats, rrl_slipped)},
	    {"tldnode_rrl_dropped_total", "Responses not sent by rate limiting.",
	     offsetof(tld_engine_stats, rrl_dropped)},
	};
	for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
		help(b, simple[i].name, "counter", simple[i].text);
		for (unsigned w = 0; w < n; w++) {
			const tld_engine *e = tld_server_worker_ctx(src->server, w);
			uint64_t v;
			memcpy(&v, (const char *)&e->stats + simple[i].off, sizeof(v));
			P("%s{worker=\"%u\"} %lu\n", simple[i].name, w, (unsigned long)v);
		}
	}
}

static void tcp_metrics(tld_metrics_buf *b, const tld_export_src *src)
{
	unsigned n = tld_server_workers(src->server);
	help(b, "tldnode_tcp_connections", "gauge", "Open TCP connections, by worker.");
	for (unsigned w = 0; w < n; w++) {
		tld_server_stats st;
		tld_server_worker_stats(src->server, w, &st);
		P("tldnode_tcp_connections{worker=\"%u\"} %lu\n", w, (unsigned long)st.tcp_open);
	}
	help(b, "tldnode_tcp_accepted_total", "counter", "TCP connections accepted, by worker.");
	for (unsigned w = 0; w < n; w++) {
		tld_server_stats st;
		tld_server_worker_stats(src->server, w, &st);
		P("tldnode_tcp_accepted_total{worker=\"%u\"} %lu\n", w,
		  (unsigned long)st.tcp_accepted);
	}
	help(b, "tldnode_tcp_refused_total", "counter",
	     "TCP connections closed at once: over a connection cap.");
	for (unsigned w = 0; w < n; w++) {
		tld_server_stats st;
		tld_server_worker_stats(src->server, w, &st);
		P("tldnode_tcp_refused_total{worker=\"%u\"} %lu\n", w,
		  (unsigned long)st.tcp_refused);
	}
}

static int zone_serial(const tld_zone *z, void *arg)
{
	tld_metrics_buf *b = arg;
	char apex[TLD_NAME_TXTMAX];
	tld_name_to_text(z->apex, apex, sizeof(apex));
	P("tldnode_zone_serial{zone=\"%s\"} %u\n", apex, z->serial);
	return 0;
}

static void zone_metrics(tld_metrics_buf *b, const tld_export_src *src)
{
	tld_reader r;
	help(b, "tldnode_zone_serial", "gauge", "SOA serial of each zone served.");
	if (tld_reader_open(src->store, &r) < 0)
		return;
	if (tld_reader_begin(&r) == 0) {
		tld_zone_foreach(&r, zone_serial, b);
		tld_reader_end(&r);
	}
	tld_reader_close(&r);
}

static void rrl_metrics(tld_metrics_buf *b, const tld_export_src *src)
{
	if (src->rrl == NULL)
		return;
	tld_rrl_stats st;
	tld_rrl_stats_get(src->rrl, &st);
	help(b, "tldnode_rrl_responses_total", "counter", "Rate limiting verdicts.");
	P("tldnode_rrl_responses_total{verdict=\"pass\"} %lu\n", (unsigned long)st.passed);
	P("tldnode_rrl_responses_total{verdict=\"slip\"} %lu\n", (unsigned long)st.slipped);
	P("tldnode_rrl_responses_total{verdict=\"drop\"} %lu\n", (unsigned long)st.dropped);
}

static void repl_metrics(tld_metrics_buf *b, const tld_export_src *src)
{
	if (src->repl == NULL)
		return;
	tld_repl_stats *st = malloc(sizeof(*st));
	if (st == NULL)
		return;
	tld_repl_stats_get(src->repl, st);
	help(b, "tldnode_repl_in_sync", "gauge", "1 when this node holds the primary's serials.");
	P("tldnode_repl_in_sync{role=\"%s\"} %d\n",
	  st->role == TLD_ROLE_PRIMARY ? "primary" : "replica", st->in_sync ? 1 : 0);
	help(b, "tldnode_repl_events_total", "counter", "Replication events, by kind.");
	for (int i = 0; i < TLD_RC_COUNT; i++)
		if (i != TLD_RC_STALLED_NO_SPACE) /* a gauge: tldnode_repl_zone_stalled below */
			P("tldnode_repl_events_total{event=\"%s\"} %lu\n", tld_repl_counter_name(i),
			  (unsigned long)st->counters[i]);
	/* Each metric's samples together, as the text format requires. */
	char apex[TLD_NAME_TXTMAX];
	help(b, "tldnode_repl_zone_serial", "gauge", "Serial held and primary's serial, by zone.");
	for (unsigned i = 0; i < st->nzones; i++) {
		tld_name_to_text(st->zones[i].apex, apex, sizeof(apex));
		P("tldnode_repl_zone_serial{zone=\"%s\",of=\"node\"} %u\n", apex,
		  st->zones[i].serial);
		P("tldnode_repl_zone_serial{zone=\"%s\",of=\"primary\"} %u\n", apex,
		  st->zones[i].primary_serial);
	}
	help(b, "tldnode_repl_lag_ms", "gauge", "How long each zone has been behind the primary.");
	for (unsigned i = 0; i < st->nzones; i++) {
		tld_name_to_text(st->zones[i].apex, apex, sizeof(apex));
		P("tldnode_repl_lag_ms{zone=\"%s\"} %lu\n", apex,
		  (unsigned long)st->zones[i].lag_ms);
	}
	help(b, "tldnode_repl_zone_stalled", "gauge",
	     "Replica: 1 while applying to the zone is stopped for lack of space (map full or "
	     "ENOSPC); it serves its last serial and retries.");
	for (unsigned i = 0; i < st->nzones; i++) {
		tld_name_to_text(st->zones[i].apex, apex, sizeof(apex));
		P("tldnode_repl_zone_stalled{zone=\"%s\"} %d\n", apex,
		  st->zones[i].stalled ? 1 : 0);
	}
	help(b, "tldnode_repl_peer_serial", "gauge", "Primary: each replica's serial, by zone.");
	for (unsigned i = 0; i < st->npeers; i++) {
		tld_name_to_text(st->peers[i].apex, apex, sizeof(apex));
		P("tldnode_repl_peer_serial{node=\"%s\",zone=\"%s\"} %u\n", st->peers[i].node, apex,
		  st->peers[i].serial);
	}
	help(b, "tldnode_repl_peer_lag_ms", "gauge", "Primary: each replica's lag, by zone.");
	for (unsigned i = 0; i < st->npeers; i++) {
		tld_name_to_text(st->peers[i].apex, apex, sizeof(apex));
		P("tldnode_repl_peer_lag_ms{node=\"%s\",zone=\"%s\"} %lu\n", st->peers[i].node,
		  apex, (unsigned long)st->peers[i].lag_ms);
	}
	free(st);
}

static void warm_metrics(tld_metrics_buf *b, const tld_export_src *src)
{
	if (src->warm == NULL)
		return;
	tld_warm_report r;
	tld_warm_get(src->warm, &r);
	help(b, "tldnode_store_warm_done", "gauge",
	     "1 once the store file has been read into the page cache (or found there), or was "
	     "too large to be.");
	P("tldnode_store_warm_done %d\n", r.done ? 1 : 0);
	help(b, "tldnode_store_warm_read_bytes", "gauge",
	     "Bytes of the store file read at start because they were not in the page cache.");
	P("tldnode_store_warm_read_bytes %llu\n", (unsigned long long)r.read_bytes);
}

void tld_export_render(tld_metrics_buf *b, void *arg)
{
	const tld_export_src *src = arg;
	help(b, "tldnode_info", "gauge", "Node identity.");
	P("tldnode_info{identity=\"%s\",workers=\"%u\"} 1\n", src->identity,
	  tld_server_workers(src->server));
	engine_metrics(b, src);
	tcp_metrics(b, src);
	rrl_metrics(b, src);
	zone_metrics(b, src);
	repl_metrics(b, src);
	warm_metrics(b, src);
}
