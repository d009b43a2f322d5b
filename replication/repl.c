/* repl.c - the replication thread: start, stop, statistics, and helpers both roles use. */
#include "repl_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nanomsg/nn.h>

#include "../node/common/log.h"

_Static_assert(TLD_RC_NO_SPACE_STALLS == TLD_RC_REJECTED + TLD_REJ_COUNT,
               "one rejected_* counter per enum tld_reject");
_Static_assert(TLD_RC_COUNT <= TLD_REPORT_COUNTERS, "reports carry every counter");

const char *tld_repl_counter_name(int c)
{
	static const char *const names[TLD_RC_REJECTED] = {
	    "deltas_applied",   "changes_applied",
	    "duplicates",       "gaps",
	    "catchups",         "catchup_deltas",
	    "snapshots",        "apply_errors",
	    "request_failures", "heartbeats_received",
	    "reports_sent",     "deltas_published",
	    "heartbeats_sent",  "pushes",
	    "pushes_refused",   "requests",
	    "catchups_served",  "snapshots_served",
	};
	static const char *const rejected[TLD_REJ_COUNT] = {
	    "rejected_malformed", "rejected_unknown_key", "rejected_bad_mac",
	    "rejected_stale",     "rejected_replay",      "rejected_mismatch",
	};
	if (c >= 0 && c < TLD_RC_REJECTED)
		return names[c];
	if (c >= TLD_RC_REJECTED && c < TLD_RC_REJECTED + TLD_REJ_COUNT)
		return rejected[c - TLD_RC_REJECTED];
	if (c == TLD_RC_NO_SPACE_STALLS)
		return "no_space_stalls";
	if (c == TLD_RC_STALLED_NO_SPACE)
		return "stalled_no_space";
	return "unknown";
}

void tld_repl_opts_default(tld_repl_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->heartbeat_ms = 100;
	o->journal_keep = 10000;
	o->request_timeout_ms = 5000;
	o->snapshot_chunk = 4u << 20;
}

uint64_t repl_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

repl_name_text repl_name(const uint8_t *name)
{
	repl_name_text t;
	if (tld_name_to_text(name, t.s, sizeof(t.s)) < 0)
		strcpy(t.s, "?");
	return t;
}

void repl_count(tld_repl *r, int counter, uint64_t n)
{
	pthread_mutex_lock(&r->lock);
	r->stats->counters[counter] += n;
	pthread_mutex_unlock(&r->lock);
}

void repl_reject(tld_repl *r, enum tld_reject why, const char *where, const tld_msg *m)
{
	repl_count(r, TLD_RC_REJECTED + (int)why, 1);
	uint64_t now = repl_mono_ms();
	if (now - r->log_window[why] >= REPL_LOG_WINDOW_MS) {
		if (r->log_suppressed[why] > 0)
			tld_log(TLD_LOG_WARN, "%s: %llu more rejected messages (%s) not logged",
			        where, (unsigned long long)r->log_suppressed[why],
			        tld_reject_name((int)why));
		r->log_window[why] = now;
		r->log_count[why] = 0;
		r->log_suppressed[why] = 0;
	}
	if (r->log_count[why]++ >= REPL_LOG_BURST) {
		r->log_suppressed[why]++;
		return;
	}
	if (m != NULL)
		tld_log(TLD_LOG_WARN,
		        "%s: rejected message (%s): type %u key %s sender %016llx seq %llu", where,
		        tld_reject_name((int)why), m->type, m->key ? m->key->name : "?",
		        (unsigned long long)m->sender, (unsigned long long)m->seq);
	else
		tld_log(TLD_LOG_WARN, "%s: rejected message (%s)", where,
		        tld_reject_name((int)why));
}

int repl_zone_load(tld_repl *r, const uint8_t *apex, tld_zone *z)
{
	int err = tld_reader_begin(&r->rd);
	if (err < 0)
		return err;
	err = tld_zone_get(&r->rd, apex, z);
	tld_reader_end(&r->rd);
	return err;
}

int repl_send(tld_repl *r, int sock, uint8_t type, const uint8_t *body, size_t len, int flags)
{
	uint8_t *msg;
	size_t mlen;
	if (tld_msg_seal(&r->snd, type, body, len, &msg, &mlen) < 0)
		return TLD_ENOMEM;
	int rc = nn_send(sock, msg, mlen, flags);
	free(msg);
	return rc < 0 ? TLD_EIO : TLD_OK;
}

bool repl_delta_serials(const uint8_t *buf, size_t len, uint32_t *from, uint32_t *to)
{
	if (len < 1 || buf[0] != TLD_DELTA_VERSION)
		return false;
	int n = tld_name_check(buf + 1, len - 1);
	if (n < 0 || len - 1 - (size_t)n < 8)
		return false;
	*from = tld_get_be32(buf + 1 + n);
	*to = tld_get_be32(buf + 1 + n + 4);
	return true;
}

/* ---- thread ---- */

static void *repl_main(void *arg)
{
	tld_repl *r = arg;
	if (r->o.role == TLD_ROLE_PRIMARY)
		primary_run(r);
	else
		replica_run(r);
	return NULL;
}

static int set_sync(tld_repl *r, tld_errbuf *eb)
{
	int mode = r->o.sync;
	if (mode == TLD_SYNC_DEFAULT)
		mode = r->o.role == TLD_ROLE_PRIMARY ? TLD_SYNC_FULL : TLD_SYNC_META;
	r->o.sync = mode;
	MDB_env *env = tld_store_env(r->st);
	int rc = 0;
	if (mode == TLD_SYNC_META)
		rc = mdb_env_set_flags(env, MDB_NOMETASYNC, 1);
	else if (mode == TLD_SYNC_NONE)
		rc = mdb_env_set_flags(env, MDB_NOSYNC, 1);
	return rc == 0 ? TLD_OK : tld_store_err(rc, eb, "store sync mode");
}

static int check_opts(const tld_repl_opts *o, tld_errbuf *eb)
{
	if (o->keys == NULL || o->keys->count == 0)
		return tld_errf(eb, TLD_EINVAL, "replication needs a key (--key FILE)");
	if (o->control_url == NULL)
		return tld_errf(eb, TLD_EINVAL, "replication needs --control URL");
	if (o->role == TLD_ROLE_PRIMARY && o->publish_url == NULL)
		return tld_errf(eb, TLD_EINVAL, "a primary needs --publish URL");
	if (o->role == TLD_ROLE_REPLICA && o->primary_url == NULL)
		return tld_errf(eb, TLD_EINVAL, "a replica needs --primary URL");
	if (o->role != TLD_ROLE_PRIMARY && o->role != TLD_ROLE_REPLICA)
		return tld_errf(eb, TLD_EINVAL, "unknown replication role");
	if (o->heartbeat_ms == 0 || o->snapshot_chunk == 0 || o->request_timeout_ms == 0)
		return tld_errf(eb, TLD_EINVAL, "heartbeat, chunk size and timeout must be > 0");
	return TLD_OK;
}

static void set_node_name(tld_repl *r)
{
	if (r->o.node_name != NULL && r->o.node_name[0] != 0)
		snprintf(r->node_name, sizeof(r->node_name), "%s", r->o.node_name);
	else if (gethostname(r->node_name, sizeof(r->node_name) - 1) != 0)
		strcpy(r->node_name, "node");
	r->o.node_name = r->node_name;
}

static void repl_free(tld_repl *r)
{
	if (r->rd.txn != NULL)
		tld_reader_close(&r->rd);
	pthread_mutex_destroy(&r->lock);
	free(r->stats);
	free(r);
}

static int role_init(tld_repl *r, tld_errbuf *eb)
{
	return r->o.role == TLD_ROLE_PRIMARY ? primary_init(r, eb) : replica_init(r, eb);
}

static void role_fini(tld_repl *r)
{
	if (r->o.role == TLD_ROLE_PRIMARY)
		primary_fini(r);
	else
		replica_fini(r);
}

int tld_repl_start(tld_repl **out, tld_store *st, const tld_repl_opts *o, tld_errbuf *eb)
{
	int err = check_opts(o, eb);
	if (err < 0)
		return err;
	tld_repl *r = calloc(1, sizeof(*r));
	if (r == NULL || (r->stats = calloc(1, sizeof(*r->stats))) == NULL) {
		free(r);
		return tld_errf(eb, TLD_ENOMEM, "out of memory");
	}
	pthread_mutex_init(&r->lock, NULL);
	r->st = st;
	r->o = *o;
	r->stats->role = o->role;
	set_node_name(r);
	atomic_init(&r->stop, false);
	if ((err = tld_msg_sender_init(&r->snd, &o->keys->keys[0])) < 0 ||
	    (err = tld_reader_open(st, &r->rd)) < 0 || (err = set_sync(r, eb)) < 0) {
		repl_free(r);
		return err == TLD_EIO ? tld_errf(eb, err, "no randomness for a sender id") : err;
	}
	if ((err = role_init(r, eb)) < 0) {
		repl_free(r);
		return err;
	}
	if (pthread_create(&r->thread, NULL, repl_main, r) != 0) {
		role_fini(r);
		repl_free(r);
		return tld_errf(eb, TLD_ENOMEM, "cannot start the replication thread");
	}
	*out = r;
	return TLD_OK;
}

void tld_repl_stop(tld_repl *r)
{
	if (r == NULL)
		return;
	atomic_store(&r->stop, true);
	pthread_join(r->thread, NULL);
	role_fini(r);
	tld_nn_check_released("replication");
	if (r->o.sync == TLD_SYNC_NONE)
		mdb_env_sync(tld_store_env(r->st), 1);
	repl_free(r);
}

void tld_repl_stats_get(const tld_repl *r, tld_repl_stats *out)
{
	tld_repl *m = (tld_repl *)r; /* the lock is the only thing touched */
	pthread_mutex_lock(&m->lock);
	memcpy(out, r->stats, sizeof(*out));
	pthread_mutex_unlock(&m->lock);
}
