/* replica.c - a replica's replication thread: apply published deltas, detect gaps, catch up,
 * report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nanomsg/nn.h>
#include <nanomsg/pubsub.h>

#include "../node/common/log.h"
#include "repl_int.h"

#define MAX_ZONES       TLD_REPL_MAX_ZONES
#define BATCH_MAX       256 /* deltas applied in one write transaction */
#define BATCH_BYTES     (32u << 20)
#define DRAIN_MAX       1024 /* messages taken from SUB per loop */
#define SUB_RCVBUF      (4 << 20)
#define CATCHUP_BYTES   (8u << 20) /* asked per catch-up reply */
#define RETRY_MAX_MS    5000
#define HB_STALE_MIN_MS 1000 /* no heartbeat for this long (or 5 periods): not in sync */
#define PUB_SENDERS     64
#define STALL_RETRY_MS  500 /* no space: retry applying this often (snapshots back off to 5 s) */
/* Catch-ups that time out this many times in a row give way to a snapshot,
 * which comes in chunks that each fit a request's time, where a catch-up
 * reply holds at least one whole delta, however large. */
#define CATCHUP_TIMEOUTS_MAX 3

enum need { NEED_NONE = 0, NEED_CATCHUP, NEED_SNAPSHOT };

struct rzone {
	uint8_t apex[TLD_NAME_MAX];
	bool local;              /* the zone is in our store */
	uint32_t serial;         /* its serial there */
	bool heard;              /* primary_serial is known */
	uint32_t primary_serial; /* the newest serial we know the primary has */
	uint64_t primary_time;   /* primary's clock when that was true (newer info wins) */
	bool listed;             /* in the last heartbeat */
	uint64_t behind_since;   /* unix ms since when serial != primary_serial (0: in step) */
	uint64_t applied_ms, delay_ms;
	enum need need;
	unsigned failures;
	uint64_t retry_at; /* monotonic ms */
	/* Stalled: a write failed for lack of space (LMDB map full, or ENOSPC from
	 * the file system). Nothing of it was written: the zone keeps serving its
	 * last committed serial, `need` stays set (catch-up from that serial, so no
	 * delta is ever skipped) and the write is retried every STALL_RETRY_MS
	 * until it fits. Logged once when it starts and once when it ends. */
	bool stalled;
	uint64_t stalled_since; /* monotonic ms */
	char stall_reason[128];
};

struct pending {
	void *msg; /* nanomsg buffer holding the view */
	tld_delta_view v;
	uint64_t time_ms;
};

struct replica {
	int sub;
	tld_client cl;
	tld_replay guard;
	struct rzone zones[MAX_ZONES];
	unsigned nzones;
	bool zones_full; /* the primary has more zones than MAX_ZONES: never in sync */
	struct pending batch[BATCH_MAX];
	unsigned nbatch;
	size_t batch_bytes;
	struct rzone *batch_zone;
	bool hb_seen;
	uint64_t last_hb; /* monotonic ms */
	uint64_t next_report;
	bool report_due, report_pending;
	uint64_t report_sent_at;
	bool in_sync;
	uint64_t client_rejects_seen[TLD_REJ_COUNT];
};

/* ---- the zone table ---- */

static struct rzone *zone_find(struct replica *rp, const uint8_t *apex)
{
	for (unsigned i = 0; i < rp->nzones; i++)
		if (tld_name_equal(rp->zones[i].apex, apex))
			return &rp->zones[i];
	return NULL;
}

static struct rzone *zone_add(struct replica *rp, const uint8_t *apex)
{
	struct rzone *z = zone_find(rp, apex);
	if (z != NULL)
		return z;
	if (rp->nzones == MAX_ZONES) {
		if (!rp->zones_full)
			tld_log(TLD_LOG_ERR,
			        "the primary has more than %u zones: %s and any beyond it are not "
			        "replicated here",
			        MAX_ZONES, repl_name(apex).s);
		rp->zones_full = true;
		return NULL;
	}
	z = &rp->zones[rp->nzones++];
	memset(z, 0, sizeof(*z));
	memcpy(z->apex, apex, tld_name_len(apex));
	tld_name_lower(z->apex);
	return z;
}

static int load_local(const tld_zone *z, void *arg)
{
	struct rzone *rz = zone_add(arg, z->apex);
	if (rz != NULL) {
		rz->local = true;
		rz->serial = z->serial;
		rz->applied_ms = z->updated * 1000;
	}
	return 0;
}

static void update_behind(struct rzone *z)
{
	if (!z->heard || (z->local && z->serial == z->primary_serial))
		z->behind_since = 0;
	else if (z->behind_since == 0)
		z->behind_since = tld_now_ms();
}

/* What the primary has, learnt at time t (primary's clock); older news is ignored. */
static bool note_primary(struct rzone *z, uint32_t serial, uint64_t t)
{
	if (z->heard && t < z->primary_time)
		return false;
	if (!z->heard || serial != z->primary_serial)
		z->primary_serial = serial;
	z->heard = true;
	z->primary_time = t;
	update_behind(z);
	return true;
}

/* Our serial moved to serial, as the primary's state at time t says. */
static void set_serial(struct rzone *z, uint32_t serial, uint64_t t, bool at_primary)
{
	z->local = true;
	z->serial = serial;
	z->applied_ms = tld_now_ms();
	if (at_primary || !z->heard || tld_serial_newer(serial, z->primary_serial))
		note_primary(z, serial, t);
	update_behind(z);
}

static void need(tld_repl *r, struct rzone *z, enum need what, const char *why)
{
	if (z->need >= what)
		return;
	if (z->need == NEED_NONE)
		z->retry_at = 0;
	z->need = what;
	tld_log(TLD_LOG_INFO, "%s: %s: %s", repl_name(z->apex).s,
	        what == NEED_SNAPSHOT ? "snapshot needed" : "catching up", why);
}

static void zones_to_stats(tld_repl *r)
{
	struct replica *rp = r->rep;
	uint64_t now = tld_now_ms();
	pthread_mutex_lock(&r->lock);
	tld_repl_stats *st = r->stats;
	uint64_t stalled = 0;
	st->nzones = 0;
	for (unsigned i = 0; i < rp->nzones; i++) {
		const struct rzone *z = &rp->zones[i];
		tld_repl_zone_stats *zs = &st->zones[st->nzones++];
		memcpy(zs->apex, z->apex, tld_name_len(z->apex));
		zs->serial = z->local ? z->serial : 0;
		zs->primary_serial = z->heard ? z->primary_serial : 0;
		zs->lag_ms = z->behind_since ? now - z->behind_since : 0;
		zs->applied_ms = z->applied_ms;
		zs->delay_ms = z->delay_ms;
		zs->stalled = z->stalled;
		memcpy(zs->stall_reason, z->stall_reason, sizeof(zs->stall_reason));
		stalled += z->stalled;
	}
	st->counters[TLD_RC_STALLED_NO_SPACE] = stalled;
	st->in_sync = rp->in_sync;
	pthread_mutex_unlock(&r->lock);
}

/* ---- running out of space ---- */

/* A write for z failed with TLD_EMAPFULL (map full or ENOSPC; the
 * transaction was aborted, nothing was written). Keeps z's need (a
 * catch-up from the serial it has at least) and schedules the retry. */
static void stall(tld_repl *r, struct rzone *z, const char *why)
{
	uint64_t now = repl_mono_ms();
	if (z->need == NEED_NONE)
		z->need = NEED_CATCHUP;
	if (!z->stalled) {
		z->stalled = true;
		z->stalled_since = now;
		z->failures = 0;
		snprintf(z->stall_reason, sizeof(z->stall_reason), "%s", why);
		repl_count(r, TLD_RC_NO_SPACE_STALLS, 1);
		tld_log(TLD_LOG_ERR,
		        "%s: applying stopped: %s; serving serial %u, retrying every %u ms "
		        "until there is room",
		        repl_name(z->apex).s, why, z->serial, STALL_RETRY_MS);
	}
	uint64_t wait = STALL_RETRY_MS;
	if (z->need == NEED_SNAPSHOT) { /* a whole zone each time: back off */
		z->failures++;
		wait <<= z->failures < 4 ? z->failures - 1 : 3;
		if (wait > RETRY_MAX_MS)
			wait = RETRY_MAX_MS;
	}
	z->retry_at = now + wait;
}

static void unstall(struct rzone *z)
{
	if (!z->stalled)
		return;
	z->stalled = false;
	z->stall_reason[0] = 0;
	tld_log(TLD_LOG_INFO, "%s: applying resumed after %.1f s without space; serial %u",
	        repl_name(z->apex).s, (double)(repl_mono_ms() - z->stalled_since) / 1000.0,
	        z->serial);
}

/* ---- set-up ---- */

int replica_init(tld_repl *r, tld_errbuf *eb)
{
	struct replica *rp = calloc(1, sizeof(*rp));
	if (rp == NULL)
		return tld_errf(eb, TLD_ENOMEM, "out of memory");
	int err = tld_client_open(&rp->cl, r->o.control_url, r->o.keys, r->o.max_message, eb);
	if (err < 0) {
		free(rp);
		return err;
	}
	rp->cl.stop = &r->stop;
	rp->sub = nn_socket(AF_SP, NN_SUB);
	int sz = SUB_RCVBUF;
	if (rp->sub < 0 || nn_setsockopt(rp->sub, NN_SUB, NN_SUB_SUBSCRIBE, "", 0) < 0 ||
	    tld_nn_max_message(rp->sub, r->o.max_message) < 0 ||
	    nn_setsockopt(rp->sub, NN_SOL_SOCKET, NN_RCVBUF, &sz, sizeof(sz)) < 0 ||
	    nn_connect(rp->sub, r->o.primary_url) < 0) {
		err = tld_errf(eb, TLD_EIO, "%s: %s", r->o.primary_url, nn_strerror(nn_errno()));
		if (rp->sub >= 0)
			nn_close(rp->sub);
		tld_client_close(&rp->cl);
		free(rp);
		return err;
	}
	tld_replay_init(&rp->guard, PUB_SENDERS, true);
	r->rep = rp;
	if ((err = tld_reader_begin(&r->rd)) == 0) {
		err = tld_zone_foreach(&r->rd, load_local, rp);
		tld_reader_end(&r->rd);
	}
	zones_to_stats(r);
	tld_log(TLD_LOG_INFO, "replica \"%s\": primary %s, control %s, %u local zones",
	        r->node_name, r->o.primary_url, r->o.control_url, rp->nzones);
	return err < 0 ? tld_errf(eb, err, "reading the zone list failed") : TLD_OK;
}

static void batch_drop(struct replica *rp)
{
	for (unsigned i = 0; i < rp->nbatch; i++)
		tld_nn_release(rp->batch[i].msg);
	rp->nbatch = 0;
	rp->batch_bytes = 0;
	rp->batch_zone = NULL;
}

void replica_fini(tld_repl *r)
{
	struct replica *rp = r->rep;
	if (rp == NULL)
		return;
	batch_drop(rp);
	nn_close(rp->sub);
	tld_client_close(&rp->cl);
	tld_replay_free(&rp->guard);
	free(rp);
	r->rep = NULL;
}

/* ---- applying ---- */

/* Applies n deltas to zone zn in one write transaction. Returns the number
 * of RR operations applied, or an error (nothing written). */
static int apply_views(tld_repl *r, struct rzone *zn, const tld_delta_view *const *v, size_t n,
                       tld_errbuf *eb)
{
	tld_writer w;
	tld_zone z;
	int err = tld_writer_begin(r->st, &w, eb);
	if (err < 0)
		return err;
	if ((err = repl_zone_load(r, zn->apex, &z)) < 0) {
		tld_writer_abort(&w);
		return tld_errf(eb, err, "the zone is not in the store");
	}
	uint64_t ops = 0;
	for (size_t i = 0; i < n && err == 0; i++) {
		err = tld_delta_apply(&w, &z, v[i], r->o.journal_keep, eb);
		ops += v[i]->count;
	}
	if (err < 0) {
		tld_writer_abort(&w);
		return tld_store_space_error(r->st, err, eb);
	}
	if ((err = tld_writer_commit(&w, eb)) < 0)
		return tld_store_space_error(r->st, err, eb);
	zn->serial = z.serial;
	repl_count(r, TLD_RC_DELTAS_APPLIED, n);
	repl_count(r, TLD_RC_CHANGES_APPLIED, ops);
	return (int)(ops > INT32_MAX ? INT32_MAX : ops);
}

static void flush_batch(tld_repl *r)
{
	struct replica *rp = r->rep;
	if (rp->nbatch == 0)
		return;
	const tld_delta_view *views[BATCH_MAX];
	for (unsigned i = 0; i < rp->nbatch; i++)
		views[i] = &rp->batch[i].v;
	struct rzone *z = rp->batch_zone;
	tld_errbuf eb = {{0}};
	int err = apply_views(r, z, views, rp->nbatch, &eb);
	if (err >= 0) {
		const struct pending *last = &rp->batch[rp->nbatch - 1];
		set_serial(z, last->v.to, last->time_ms, false);
		z->delay_ms = z->applied_ms > last->time_ms ? z->applied_ms - last->time_ms : 0;
		tld_log(TLD_LOG_DEBUG, "%s: applied %u deltas, serial %u", repl_name(z->apex).s,
		        rp->nbatch, z->serial);
		rp->report_due = true;
	} else if (err == TLD_EMAPFULL) {
		stall(r, z, eb.msg[0] ? eb.msg : tld_strerror(err)); /* retried by catch-up */
		rp->report_due = true;
	} else {
		repl_count(r, TLD_RC_APPLY_ERRORS, 1);
		tld_log(TLD_LOG_WARN, "%s: a published delta did not apply: %s",
		        repl_name(z->apex).s, eb.msg[0] ? eb.msg : tld_strerror(err));
		need(r, z, NEED_CATCHUP, "re-reading the journal");
	}
	batch_drop(rp);
	zones_to_stats(r);
}

/* ---- messages from the primary's PUB socket ---- */

static void on_heartbeat(tld_repl *r, const tld_msg *m)
{
	struct replica *rp = r->rep;
	flush_batch(r);
	size_t pos = 0;
	const uint8_t *apex;
	uint32_t serial;
	int rc;
	char why[160];
	for (unsigned i = 0; i < rp->nzones; i++)
		rp->zones[i].listed = false;
	while ((rc = tld_heartbeat_next(m->body, m->body_len, &pos, &apex, &serial)) == 1) {
		struct rzone *z = zone_add(rp, apex);
		if (z == NULL)
			continue;
		z->listed = true;
		if (!note_primary(z, serial, m->time_ms))
			continue; /* we know better already (a catch-up overtook this heartbeat) */
		if (!z->local) {
			need(r, z, NEED_SNAPSHOT, "a zone we do not have");
		} else if (z->serial == serial) {
			continue;
		} else if (tld_serial_newer(serial, z->serial)) {
			if (z->need == NEED_NONE) {
				repl_count(r, TLD_RC_GAPS, 1);
				snprintf(why, sizeof(why), "heartbeat shows serial %u, we have %u",
				         serial, z->serial);
				need(r, z, NEED_CATCHUP, why);
			}
		} else {
			snprintf(why, sizeof(why),
			         "the primary's serial %u is older than ours (%u)", serial,
			         z->serial);
			need(r, z, NEED_SNAPSHOT, why);
		}
	}
	if (rc < 0)
		repl_reject(r, TLD_REJ_MALFORMED, "subscription", m);
	rp->hb_seen = true;
	rp->last_hb = repl_mono_ms();
	repl_count(r, TLD_RC_HEARTBEATS_RECEIVED, 1);
}

/* Queues a delta that follows the zone's serial; returns true when it kept msg. */
static bool queue_delta(tld_repl *r, struct rzone *z, void *msg, const tld_delta_view *v,
                        uint64_t time_ms)
{
	struct replica *rp = r->rep;
	if (rp->nbatch > 0 &&
	    (rp->batch_zone != z || rp->nbatch == BATCH_MAX || rp->batch_bytes >= BATCH_BYTES))
		flush_batch(r);
	if (z->need != NEED_NONE)
		return false; /* the flush failed */
	rp->batch_zone = z;
	rp->batch[rp->nbatch++] = (struct pending){msg, *v, time_ms};
	rp->batch_bytes += v->len;
	return true;
}

/* Returns true when it kept msg (queued for applying). */
static bool on_delta(tld_repl *r, const tld_msg *m, void *msg)
{
	struct replica *rp = r->rep;
	tld_delta_view v;
	if (tld_delta_parse(m->body, m->body_len, &v) < 0) {
		repl_reject(r, TLD_REJ_MALFORMED, "subscription", m);
		return false;
	}
	struct rzone *z = zone_add(rp, v.apex);
	if (z == NULL)
		return false;
	note_primary(z, v.to, m->time_ms);
	if (!z->local) {
		need(r, z, NEED_SNAPSHOT, "a zone we do not have");
		return false;
	}
	if (z->need != NEED_NONE)
		return false; /* catch-up or snapshot will bring it */
	uint32_t expect =
	    rp->nbatch > 0 && rp->batch_zone == z ? rp->batch[rp->nbatch - 1].v.to : z->serial;
	if (v.from == expect)
		return queue_delta(r, z, msg, &v, m->time_ms);
	if (!tld_serial_newer(v.to, expect)) {
		repl_count(r, TLD_RC_DUPLICATES, 1);
		return false;
	}
	flush_batch(r);
	char why[160];
	snprintf(why, sizeof(why), "delta %u -> %u, we have %u", v.from, v.to, z->serial);
	repl_count(r, TLD_RC_GAPS, 1);
	need(r, z, NEED_CATCHUP, why);
	return false;
}

static void on_pub(tld_repl *r, void *buf, size_t len)
{
	struct replica *rp = r->rep;
	tld_msg m;
	enum tld_reject why;
	bool kept = false;
	bool opened = tld_msg_open(r->o.keys, buf, len, &m, &why) == 0;
	if (!opened || tld_replay_check(&rp->guard, &m, tld_now_ms(), &why) < 0)
		repl_reject(r, why, "subscription", opened ? &m : NULL); /* m: only if opened */
	else if (m.type == TLD_MSG_DELTA)
		kept = on_delta(r, &m, buf);
	else if (m.type == TLD_MSG_HEARTBEAT)
		on_heartbeat(r, &m);
	else
		repl_reject(r, TLD_REJ_MISMATCH, "subscription", &m);
	if (!kept)
		tld_nn_release(buf);
}

static void drain_sub(tld_repl *r)
{
	for (int i = 0; i < DRAIN_MAX && !atomic_load(&r->stop); i++) {
		void *buf;
		int n = tld_nn_take(r->rep->sub, &buf);
		if (n < 0)
			break;
		on_pub(r, buf, (size_t)n);
	}
	flush_batch(r);
}

/* ---- catch-up and snapshots ---- */

static void client_rejects(tld_repl *r)
{
	struct replica *rp = r->rep;
	for (int i = 0; i < TLD_REJ_COUNT; i++) {
		uint64_t d = rp->cl.rejected[i] - rp->client_rejects_seen[i];
		if (d > 0) {
			repl_count(r, TLD_RC_REJECTED + i, d);
			rp->client_rejects_seen[i] = rp->cl.rejected[i];
		}
	}
}

/* Parses a catch-up reply's deltas and applies them. */
static int apply_catchup(tld_repl *r, struct rzone *z, tld_rbuf *rb, uint32_t count, tld_errbuf *eb)
{
	if (count == 0)
		return tld_r_done(rb) ? TLD_OK : tld_errf(eb, TLD_EMALFORMED, "malformed reply");
	tld_delta_view *views = calloc(count, sizeof(*views));
	const tld_delta_view **pv = calloc(count, sizeof(*pv));
	int err = views && pv ? TLD_OK : tld_errf(eb, TLD_ENOMEM, "out of memory");
	for (uint32_t i = 0; i < count && err == 0; i++) {
		uint32_t len = tld_r_u32(rb);
		const uint8_t *d = tld_r_bytes(rb, len);
		if (d == NULL || tld_delta_parse(d, len, &views[i]) < 0 ||
		    !tld_name_equal(views[i].apex, z->apex))
			err = tld_errf(eb, TLD_EMALFORMED, "malformed delta in a catch-up reply");
		pv[i] = &views[i];
	}
	if (err == 0 && !tld_r_done(rb))
		err = tld_errf(eb, TLD_EMALFORMED, "malformed catch-up reply");
	if (err == 0 && (err = apply_views(r, z, pv, count, eb)) >= 0) {
		repl_count(r, TLD_RC_CATCHUP_DELTAS, count);
		err = TLD_OK;
	} else if (err != TLD_ENOMEM && err != TLD_EMALFORMED && err != TLD_EMAPFULL) {
		repl_count(r, TLD_RC_APPLY_ERRORS, 1);
		err = TLD_EZONE;
	}
	free(views);
	free(pv);
	return err;
}

/* One catch-up round: returns 1 when more is to come, 0 when done, or an
 * error (TLD_ESERIAL: the journal does not reach back; TLD_EZONE: the
 * deltas did not apply). */
static int catchup_round(tld_repl *r, struct rzone *z, tld_errbuf *eb)
{
	tld_wbuf b = {0};
	tld_w_name(&b, z->apex);
	tld_w_u32(&b, z->serial);
	tld_w_u32(&b, CATCHUP_BYTES);
	tld_reply rep;
	int err = b.oom ? TLD_ENOMEM
	                : tld_client_call(&r->rep->cl, TLD_MSG_CATCHUP, b.p, b.len,
	                                  (int)r->o.request_timeout_ms, &rep, eb);
	tld_wbuf_free(&b);
	if (err < 0)
		return err;
	if (rep.status < 0)
		return tld_errf(eb, rep.status, "primary: %s", rep.text);
	bool more = tld_r_u8(&rep.rest) != 0;
	uint32_t count = tld_r_u32(&rep.rest);
	if ((err = apply_catchup(r, z, &rep.rest, count, eb)) < 0)
		return err;
	set_serial(z, z->serial, rep.time_ms, !more);
	return more ? 1 : 0;
}

static int do_catchup(tld_repl *r, struct rzone *z, tld_errbuf *eb)
{
	uint32_t from = z->serial;
	int rc;
	while ((rc = catchup_round(r, z, eb)) == 1 && !atomic_load(&r->stop))
		;
	if (rc == 0) {
		repl_count(r, TLD_RC_CATCHUPS, 1);
		tld_log(TLD_LOG_INFO, "%s: caught up from serial %u to %u", repl_name(z->apex).s,
		        from, z->serial);
	}
	return rc;
}

static int do_snapshot(tld_repl *r, struct rzone *z, tld_errbuf *eb)
{
	tld_zone nz;
	uint64_t when = 0;
	int err = snap_fetch(r, &r->rep->cl, z->apex, &nz, &when, eb);
	if (err < 0)
		return tld_store_space_error(r->st, err, eb);
	repl_count(r, TLD_RC_SNAPSHOTS, 1);
	set_serial(z, nz.serial, when, true);
	return TLD_OK;
}

/* Brings one zone back in step; on failure schedules a retry with backoff. */
static void resolve(tld_repl *r, struct rzone *z)
{
	struct replica *rp = r->rep;
	tld_errbuf eb = {{0}};
	if (z->stalled &&
	    tld_store_fs_full(r->st)) { /* still no room: fetch nothing that cannot be written */
		z->retry_at = repl_mono_ms() + STALL_RETRY_MS;
		return;
	}
	rp->report_pending = false; /* the request below abandons it */
	int err = TLD_OK;
	if (z->need == NEED_CATCHUP && !z->local)
		z->need = NEED_SNAPSHOT;
	if (z->need == NEED_CATCHUP) {
		err = do_catchup(r, z, &eb);
		if (err == TLD_ESERIAL || err == TLD_EZONE) {
			need(r, z, NEED_SNAPSHOT, eb.msg);
			err = do_snapshot(r, z, &eb);
		}
	} else if (z->need == NEED_SNAPSHOT) {
		err = do_snapshot(r, z, &eb);
	}
	client_rejects(r);
	if (err == TLD_ENOENT) {
		tld_log(TLD_LOG_WARN, "%s: %s", repl_name(z->apex).s, eb.msg);
		err = TLD_OK; /* the primary dropped the zone: nothing to fetch */
	}
	if (err == TLD_EMAPFULL) {
		stall(r, z, eb.msg[0] ? eb.msg : tld_strerror(err));
		rp->report_due = true;
	} else if (err < 0) {
		if (err == TLD_ETIMEDOUT || err == TLD_EAUTH || err == TLD_EIO)
			repl_count(r, TLD_RC_REQUEST_FAILURES, 1);
		z->failures++;
		if (z->need == NEED_CATCHUP && err == TLD_ETIMEDOUT &&
		    z->failures >= CATCHUP_TIMEOUTS_MAX) {
			need(r, z, NEED_SNAPSHOT, "catch-up timed out repeatedly (a large delta?)");
			z->failures = 0;
		}
		uint64_t backoff = 100u << (z->failures < 6 ? z->failures : 6);
		z->retry_at = repl_mono_ms() + (backoff < RETRY_MAX_MS ? backoff : RETRY_MAX_MS);
		if (!atomic_load(&r->stop))
			tld_log(TLD_LOG_WARN, "%s: re-sync failed (retry in %llu ms): %s",
			        repl_name(z->apex).s,
			        (unsigned long long)(z->retry_at - repl_mono_ms()),
			        eb.msg[0] ? eb.msg : tld_strerror(err));
	} else {
		z->need = NEED_NONE;
		z->failures = 0;
		unstall(z);
		rp->report_due = true;
	}
	zones_to_stats(r);
}

static void resolve_needs(tld_repl *r)
{
	struct replica *rp = r->rep;
	uint64_t now = repl_mono_ms();
	for (unsigned i = 0; i < rp->nzones && !atomic_load(&r->stop); i++)
		if (rp->zones[i].need != NEED_NONE && rp->zones[i].retry_at <= now)
			resolve(r, &rp->zones[i]);
}

/* ---- reports and sync state ---- */

static void build_report(tld_repl *r, tld_report *rep)
{
	struct replica *rp = r->rep;
	uint64_t now = tld_now_ms();
	memset(rep, 0, sizeof(*rep));
	snprintf(rep->name, sizeof(rep->name), "%s", r->node_name);
	rep->role = TLD_ROLE_REPLICA;
	rep->in_sync = rp->in_sync;
	pthread_mutex_lock(&r->lock);
	rep->ncounters = TLD_RC_COUNT;
	memcpy(rep->counters, r->stats->counters, sizeof(r->stats->counters));
	pthread_mutex_unlock(&r->lock);
	for (unsigned i = 0; i < rp->nzones && rep->nzones < TLD_REPORT_ZONES; i++) {
		const struct rzone *z = &rp->zones[i];
		if (!z->local && !z->listed)
			continue; /* heard of once, gone from the primary since */
		tld_report_zone *rz = &rep->zones[rep->nzones++];
		memcpy(rz->apex, z->apex, tld_name_len(z->apex));
		rz->serial = z->local ? z->serial : 0;
		rz->primary_serial = z->heard ? z->primary_serial : 0;
		uint64_t lag = z->behind_since ? now - z->behind_since : 0;
		rz->lag_ms = lag > UINT32_MAX ? UINT32_MAX : (uint32_t)lag;
		rz->applied_ms = z->applied_ms;
	}
}

static void check_report(tld_repl *r)
{
	struct replica *rp = r->rep;
	if (!rp->report_pending)
		return;
	tld_reply rep;
	tld_errbuf eb = {{0}};
	int err = tld_client_recv(&rp->cl, 0, &rep, &eb);
	if (err == TLD_ETIMEDOUT && repl_mono_ms() - rp->report_sent_at < r->o.request_timeout_ms)
		return;
	rp->report_pending = false;
	client_rejects(r);
	if (err < 0 || rep.status < 0)
		tld_log(TLD_LOG_DEBUG, "report: %s", err < 0 ? eb.msg : rep.text);
}

static void maybe_report(tld_repl *r)
{
	struct replica *rp = r->rep;
	uint64_t now = repl_mono_ms();
	if (rp->report_pending || (now < rp->next_report && !rp->report_due))
		return;
	tld_report *rep = malloc(sizeof(*rep));
	tld_wbuf b = {0};
	if (rep == NULL)
		return;
	build_report(r, rep);
	tld_report_write(&b, rep);
	free(rep);
	tld_errbuf eb = {{0}};
	if (!b.oom && tld_client_send(&rp->cl, TLD_MSG_REPORT, b.p, b.len, &eb) == 0) {
		rp->report_pending = true;
		rp->report_sent_at = now;
		repl_count(r, TLD_RC_REPORTS_SENT, 1);
	}
	tld_wbuf_free(&b);
	rp->report_due = false;
	rp->next_report = now + r->o.heartbeat_ms;
}

static bool compute_sync(tld_repl *r)
{
	struct replica *rp = r->rep;
	uint64_t stale = 5 * (uint64_t)r->o.heartbeat_ms;
	if (stale < HB_STALE_MIN_MS)
		stale = HB_STALE_MIN_MS;
	if (!rp->hb_seen || repl_mono_ms() - rp->last_hb > stale || rp->zones_full)
		return false;
	for (unsigned i = 0; i < rp->nzones; i++) {
		const struct rzone *z = &rp->zones[i];
		if (z->listed && (!z->local || z->need != NEED_NONE || !z->heard ||
		                  z->serial != z->primary_serial))
			return false;
	}
	return true;
}

static void update_sync(tld_repl *r)
{
	struct replica *rp = r->rep;
	bool now_sync = compute_sync(r);
	if (now_sync == rp->in_sync)
		return;
	rp->in_sync = now_sync;
	rp->report_due = true;
	zones_to_stats(r);
	if (now_sync)
		tld_log(TLD_LOG_INFO, "in sync with the primary (%u zones)", rp->nzones);
	else
		tld_log(TLD_LOG_INFO, "not in sync with the primary%s",
		        rp->hb_seen ? "" : " (no heartbeat yet)");
}

/* How long the loop may sleep. */
static int wait_ms(tld_repl *r)
{
	struct replica *rp = r->rep;
	uint64_t now = repl_mono_ms(), next = rp->next_report;
	for (unsigned i = 0; i < rp->nzones; i++)
		if (rp->zones[i].need != NEED_NONE && rp->zones[i].retry_at < next)
			next = rp->zones[i].retry_at;
	uint64_t w = next > now ? next - now : 0;
	return (int)(w < 100 ? w : 100);
}

void replica_run(tld_repl *r)
{
	struct replica *rp = r->rep;
	rp->next_report = repl_mono_ms();
	while (!atomic_load(&r->stop)) {
		struct nn_pollfd pfd[2] = {{.fd = rp->sub, .events = NN_POLLIN},
		                           {.fd = rp->cl.sock, .events = NN_POLLIN}};
		nn_poll(pfd, rp->report_pending ? 2 : 1, wait_ms(r));
		drain_sub(r);
		check_report(r);
		resolve_needs(r);
		update_sync(r);
		maybe_report(r);
		uint64_t now = repl_mono_ms();
		if (r->o.sync == TLD_SYNC_NONE && now - r->last_sync_ms >= 1000) {
			mdb_env_sync(tld_store_env(r->st), 1);
			r->last_sync_ms = now;
		}
	}
}
