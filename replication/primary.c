/* primary.c - the primary's replication thread: pushes, publishing, heartbeats, catch-up,
 * snapshots. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nanomsg/nn.h>
#include <nanomsg/pubsub.h>
#include <nanomsg/reqrep.h>

#include "../node/common/log.h"
#include "repl_int.h"

#define MAX_SESSIONS      8
#define SESSION_IDLE_MS   30000
#define MAX_PEERS         TLD_REPL_STATS_PEERS
#define PEER_FRESH_MS     5000 /* a replica not heard from for this long is not in sync */
#define CATCHUP_MAX_BYTES (16u << 20)
#define PUB_SNDBUF        (4 << 20)
#define REQUEST_SENDERS   65536 /* replay table size for the control socket */
#define START_GRACE_MS    10000 /* requests sent this long before we started are accepted */
#define TLD_T_SOA         6

struct peer {
	uint64_t last_seen_ms;
	tld_report rep;
};

struct primary {
	int pub, rep;
	tld_replay guard;
	snap_session sessions[MAX_SESSIONS];
	struct peer *peers;
	size_t npeers;
	uint64_t next_hb;
	const tld_msg *push; /* the push being served: its result is recorded */
	uint32_t push_from;  /* the zone's serial before it */
};

/* ---- set-up ---- */

static int bind_sock(int *sock, int proto, const char *url, size_t max_message, tld_errbuf *eb)
{
	*sock = nn_socket(AF_SP, proto);
	if (*sock < 0)
		return tld_errf(eb, TLD_EIO, "nn_socket: %s", nn_strerror(nn_errno()));
	if (proto == NN_PUB) {
		int sz = PUB_SNDBUF;
		nn_setsockopt(*sock, NN_SOL_SOCKET, NN_SNDBUF, &sz, sizeof(sz));
	} else {
		tld_nn_max_message(*sock, max_message);
	}
	if (nn_bind(*sock, url) < 0) {
		int e = nn_errno();
		nn_close(*sock);
		*sock = -1;
		return tld_errf(eb, TLD_EIO, "cannot bind %s: %s", url, nn_strerror(e));
	}
	return TLD_OK;
}

int primary_init(tld_repl *r, tld_errbuf *eb)
{
	struct primary *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return tld_errf(eb, TLD_ENOMEM, "out of memory");
	p->pub = p->rep = -1;
	int err = bind_sock(&p->pub, NN_PUB, r->o.publish_url, 0, eb);
	if (err == 0)
		err = bind_sock(&p->rep, NN_REP, r->o.control_url, r->o.max_message, eb);
	if (err < 0) {
		if (p->pub >= 0)
			nn_close(p->pub);
		free(p);
		return err;
	}
	tld_replay_init(&p->guard, REQUEST_SENDERS, false);
	p->guard.not_before = tld_now_ms() - START_GRACE_MS;
	r->p = p;
	tld_log(TLD_LOG_INFO,
	        "primary: publishing on %s, control on %s, heartbeat %u ms, "
	        "journal keeps %u changes",
	        r->o.publish_url, r->o.control_url, r->o.heartbeat_ms, r->o.journal_keep);
	return TLD_OK;
}

void primary_fini(tld_repl *r)
{
	struct primary *p = r->p;
	if (p == NULL)
		return;
	for (int i = 0; i < MAX_SESSIONS; i++)
		if (p->sessions[i].id != 0)
			snap_session_close(&p->sessions[i]);
	nn_close(p->pub);
	nn_close(p->rep);
	tld_replay_free(&p->guard);
	free(p->peers);
	free(p);
	r->p = NULL;
}

/* ---- replies ---- */

static void reply_error(tld_wbuf *b, const tld_msg *m, int code, const char *text)
{
	b->len = 0;
	tld_reply_begin(b, m->sender, m->seq, m->type, code < 0 ? code : TLD_EINVAL);
	size_t n = strlen(text);
	if (n > 1000)
		n = 1000;
	tld_w_u16(b, (uint16_t)n);
	tld_w_bytes(b, text, n);
}

static void reply_push(tld_wbuf *b, const tld_msg *m, uint32_t from, uint32_t to, uint32_t ops,
                       const char *text)
{
	tld_reply_begin(b, m->sender, m->seq, m->type, TLD_OK);
	tld_w_u32(b, from);
	tld_w_u32(b, to);
	tld_w_u32(b, ops);
	size_t n = strlen(text);
	tld_w_u16(b, (uint16_t)n);
	tld_w_bytes(b, text, n);
}

/* ---- push records ----
 *
 * nanomsg's REQ socket sends a request again when its connection drops
 * before the reply: a push the primary committed may come back (to the same
 * primary, or to it restarted). Its replay guard would refuse it, and tldctl
 * would report as refused a change that was made; restarted, the primary
 * would apply it twice. So each committed push leaves a record, in the same
 * transaction, under its sender: its seq and result. A push that comes back
 * is answered from the record, not applied again. Records older than
 * PUSH_RECORD_MS are dropped as new ones are written.
 */

#define PUSH_RECORD_MS     (3600u * 1000)
#define PUSH_RECORD_PREFIX "repl.push."

/* On disk, big-endian: seq u64 | time_ms u64 | from u32 | to u32 | ops u32 |
 * apex (wire). Read back, the seq has matched and the time is not needed. */
struct push_record {
	uint32_t from, to, ops;
	uint8_t apex[TLD_NAME_MAX];
};

#define PUSH_RESULT_FMT "%s: serial %u -> %u, %u changes" /* zone, from, to, ops */

static size_t push_record_key(uint64_t sender, uint8_t *key)
{
	size_t n = strlen(PUSH_RECORD_PREFIX);
	memcpy(key, PUSH_RECORD_PREFIX, n);
	tld_put_be64(key + n, sender);
	return n + 8;
}

static bool push_record_old(const void *val, size_t len, void *now)
{
	return len < 16 ||
	       tld_get_be64((const uint8_t *)val + 8) + PUSH_RECORD_MS < *(const uint64_t *)now;
}

/* In w, before its commit: the result of the push being served, if any. */
static int push_record_write(tld_repl *r, tld_writer *w, const tld_zone *z, uint32_t ops,
                             tld_errbuf *eb)
{
	const tld_msg *m = r->p->push;
	if (m == NULL)
		return TLD_OK;
	uint64_t now = tld_now_ms();
	uint8_t key[32], val[28 + TLD_NAME_MAX];
	int err = tld_writer_record_prune(w, PUSH_RECORD_PREFIX, strlen(PUSH_RECORD_PREFIX),
	                                  push_record_old, &now, eb);
	if (err < 0)
		return err;
	tld_put_be64(val, m->seq);
	tld_put_be64(val + 8, now);
	tld_put_be32(val + 16, r->p->push_from);
	tld_put_be32(val + 20, z->serial);
	tld_put_be32(val + 24, ops);
	size_t alen = tld_name_len(z->apex);
	memcpy(val + 28, z->apex, alen);
	return tld_writer_record_put(w, key, push_record_key(m->sender, key), val, 28 + alen, eb);
}

/* The record of push m if it was committed before: true with *pr filled. */
static bool push_record_find(tld_repl *r, const tld_msg *m, struct push_record *pr)
{
	uint8_t key[32];
	const void *v;
	size_t len;
	bool found = false;
	if (tld_reader_begin(&r->rd) < 0)
		return false;
	if (tld_reader_record_get(&r->rd, key, push_record_key(m->sender, key), &v, &len) == 0 &&
	    len > 28 && tld_get_be64(v) == m->seq &&
	    tld_name_check((const uint8_t *)v + 28, len - 28) == (int)(len - 28)) {
		const uint8_t *p = v;
		pr->from = tld_get_be32(p + 16);
		pr->to = tld_get_be32(p + 20);
		pr->ops = tld_get_be32(p + 24);
		memcpy(pr->apex, p + 28, len - 28);
		found = true;
	}
	tld_reader_end(&r->rd);
	return found;
}

/* ---- publishing ---- */

static void publish_delta(tld_repl *r, const tld_delta *d)
{
	if (repl_send(r, r->p->pub, TLD_MSG_DELTA, d->buf, d->len, NN_DONTWAIT) < 0)
		tld_log(TLD_LOG_WARN, "primary: publishing a delta failed: %s",
		        nn_strerror(nn_errno()));
	else
		repl_count(r, TLD_RC_DELTAS_PUBLISHED, 1);
}

struct hb_ctx {
	tld_wbuf *b;
	tld_repl_stats *stats;
	unsigned n;
};

static int hb_zone(const tld_zone *z, void *arg)
{
	struct hb_ctx *c = arg;
	if (c->n == 0xffff)
		return 0;
	tld_w_name(c->b, z->apex);
	tld_w_u32(c->b, z->serial);
	if (c->n < TLD_REPL_STATS_ZONES) {
		tld_repl_zone_stats *zs = &c->stats->zones[c->n];
		memcpy(zs->apex, z->apex, z->apex_len);
		zs->serial = zs->primary_serial = z->serial;
		zs->applied_ms = z->updated * 1000;
		zs->lag_ms = zs->delay_ms = 0;
	}
	c->n++;
	return 0;
}

/* Every zone's serial, published; the stats' zone table is refreshed too. */
static void heartbeat(tld_repl *r)
{
	tld_wbuf b = {0};
	tld_w_u16(&b, 0);
	pthread_mutex_lock(&r->lock);
	struct hb_ctx c = {&b, r->stats, 0};
	int err = tld_reader_begin(&r->rd);
	if (err == 0) {
		err = tld_zone_foreach(&r->rd, hb_zone, &c);
		tld_reader_end(&r->rd);
	}
	r->stats->nzones = c.n < TLD_REPL_STATS_ZONES ? c.n : TLD_REPL_STATS_ZONES;
	r->stats->in_sync = true;
	pthread_mutex_unlock(&r->lock);
	if (err == 0 && !b.oom) {
		tld_put_be16(b.p, (uint16_t)c.n);
		if (repl_send(r, r->p->pub, TLD_MSG_HEARTBEAT, b.p, b.len, NN_DONTWAIT) == 0)
			repl_count(r, TLD_RC_HEARTBEATS_SENT, 1);
	}
	tld_wbuf_free(&b);
}

/* ---- committing a change ---- */

/* Applies d to z in w, commits, publishes. Aborts w on failure. */
static int commit_delta(tld_repl *r, tld_writer *w, tld_zone *z, const tld_delta *d, tld_errbuf *eb)
{
	tld_delta_view v;
	int err = tld_delta_parse(d->buf, d->len, &v);
	if (err < 0)
		err = tld_errf(eb, err, "internal error: the delta does not parse");
	else
		err = tld_delta_apply(w, z, &v, r->o.journal_keep, eb);
	if (err == 0)
		err = push_record_write(r, w, z, d->count, eb);
	if (err < 0) {
		tld_writer_abort(w);
		return tld_store_space_error(r->st, err, eb);
	}
	if ((err = tld_writer_commit(w, eb)) < 0)
		return err;
	publish_delta(r, d);
	return TLD_OK;
}

/* SOA RDATA rd with its serial replaced, into out (rdlen bytes). */
static int soa_with_serial(const uint8_t *rd, uint16_t rdlen, uint32_t serial, uint8_t *out)
{
	int n1 = tld_name_check(rd, rdlen);
	int n2 = n1 < 0 ? n1 : tld_name_check(rd + n1, rdlen - (size_t)n1);
	if (n2 < 0 || (size_t)n1 + (size_t)n2 + 20 != rdlen)
		return TLD_ERDATA;
	memcpy(out, rd, rdlen);
	tld_put_be32(out + n1 + n2, serial);
	return TLD_OK;
}

/* Builds the delta of a delta push: old SOA out, the pushed operations, new SOA in. */
static int build_push_delta(tld_writer *w, const tld_zone *z, const tld_delta_view *pushed,
                            tld_delta *d, tld_errbuf *eb)
{
	tld_rrset soa;
	const uint8_t *rd, *p;
	uint16_t rdlen;
	uint8_t newrd[2 * TLD_NAME_MAX + 20];
	if (tld_writer_rrset_get(w, z, z->apex, TLD_T_SOA, &soa) < 0 || soa.rr_count != 1 ||
	    (p = soa.rrs, !tld_rr_next(&p, soa.sigs, NULL, &rd, &rdlen)) ||
	    soa_with_serial(rd, rdlen, z->serial + 1, newrd) < 0)
		return tld_errf(eb, TLD_EZONE, "the zone's SOA cannot be read");
	if (tld_delta_init(d, z->apex, z->serial, z->serial + 1) < 0)
		return tld_errf(eb, TLD_ENOMEM, "out of memory");
	int err = tld_delta_add(d, TLD_OP_DEL, z->apex, TLD_T_SOA, soa.ttl, rd, rdlen);
	size_t pos = 0;
	tld_delta_op op;
	while (err == 0 && tld_delta_next(pushed, &pos, &op)) {
		if (op.type == TLD_T_SOA) {
			tld_delta_free(d);
			return tld_errf(eb, TLD_EZONE,
			                "a delta push may not change the SOA: "
			                "the primary sets the serial");
		}
		err = tld_delta_add(d, op.op, op.owner, op.type, op.ttl, op.rdata, op.rdlen);
	}
	if (err == 0)
		err = tld_delta_add(d, TLD_OP_ADD, z->apex, TLD_T_SOA, soa.ttl, newrd, rdlen);
	if (err < 0) {
		tld_delta_free(d);
		return tld_errf(eb, err, "building the delta: %s", tld_strerror(err));
	}
	return TLD_OK;
}

static void push_done(tld_repl *r, const tld_msg *m, tld_wbuf *out, int err, const tld_errbuf *eb,
                      uint32_t from, uint32_t to, uint32_t ops, const char *what)
{
	if (err < 0) {
		repl_count(r, TLD_RC_PUSHES_REFUSED, 1);
		tld_log(TLD_LOG_WARN, "push refused: %s", eb->msg[0] ? eb->msg : tld_strerror(err));
		reply_error(out, m, err, eb->msg[0] ? eb->msg : tld_strerror(err));
		return;
	}
	repl_count(r, TLD_RC_PUSHES, 1);
	char text[600];
	snprintf(text, sizeof(text), PUSH_RESULT_FMT, what, from, to, ops);
	tld_log(TLD_LOG_INFO, "push committed and published: %s", text);
	reply_push(out, m, from, to, ops, text);
}

/* PUSH_DELTA: flags u8 | delta (serials ignored). */
static void push_delta(tld_repl *r, const tld_msg *m, tld_wbuf *out)
{
	tld_errbuf eb = {{0}};
	tld_delta_view pushed;
	tld_writer w;
	tld_zone z;
	tld_delta d = {0};
	int err;
	if (m->body_len < 1 || tld_delta_parse(m->body + 1, m->body_len - 1, &pushed) < 0) {
		err = tld_errf(&eb, TLD_EMALFORMED, "the pushed delta is malformed");
		return push_done(r, m, out, err, &eb, 0, 0, 0, "");
	}
	if ((err = tld_writer_begin(r->st, &w, &eb)) < 0)
		return push_done(r, m, out, err, &eb, 0, 0, 0, "");
	if ((err = repl_zone_load(r, pushed.apex, &z)) < 0) {
		tld_writer_abort(&w);
		tld_errf(&eb, err, "%s: no such zone at the primary", repl_name(pushed.apex).s);
		return push_done(r, m, out, err, &eb, 0, 0, 0, "");
	}
	uint32_t from = z.serial;
	r->p->push_from = from;
	if ((err = build_push_delta(&w, &z, &pushed, &d, &eb)) < 0)
		tld_writer_abort(&w);
	else
		err = commit_delta(r, &w, &z, &d, &eb);
	push_done(r, m, out, err, &eb, from, z.serial, d.count, repl_name(z.apex).s);
	tld_delta_free(&d);
}

/* A pushed zone that the primary does not have yet (push --create). */
static int create_zone(tld_repl *r, tld_writer *w, const tld_zdata *zd, tld_zone *z, tld_errbuf *eb)
{
	pthread_mutex_lock(&r->lock);
	unsigned zones = r->stats->nzones; /* counted by the last heartbeat */
	pthread_mutex_unlock(&r->lock);
	if (zones >= TLD_REPL_MAX_ZONES) {
		tld_writer_abort(w);
		return tld_errf(eb, TLD_EINVAL,
		                "the primary already has %u zones, as many as a "
		                "cluster replicates",
		                zones);
	}
	tld_import_stats is;
	int err = tld_zdata_write(zd, w, z, &is, eb);
	if (err == 0)
		err = tld_zone_publish(w, z, eb);
	if (err == 0)
		err = push_record_write(r, w, z, (uint32_t)is.records, eb);
	if (err < 0) {
		tld_writer_abort(w);
		return err;
	}
	return tld_writer_commit(w, eb);
}

/* The pushed zone zd against the stored one: diff, apply, publish. */
static int diff_zone(tld_repl *r, const tld_zdata *zd, bool create, tld_zone *z, uint32_t *ops,
                     bool *created, tld_errbuf *eb)
{
	tld_writer w;
	int err = tld_writer_begin(r->st, &w, eb);
	if (err < 0)
		return err;
	const uint8_t *apex = tld_zdata_apex(zd);
	if ((err = repl_zone_load(r, apex, z)) == TLD_ENOENT && create) {
		*created = true;
		return create_zone(r, &w, zd, z, eb);
	}
	if (err < 0) {
		tld_writer_abort(&w);
		return tld_errf(eb, err, "%s: no such zone at the primary (push --create makes it)",
		                repl_name(apex).s);
	}
	tld_delta d = {0};
	if ((err = tld_delta_diff(&w, z, zd, &d, eb)) < 0) {
		tld_writer_abort(&w);
		tld_delta_free(&d);
		return err;
	}
	*ops = d.count;
	err = commit_delta(r, &w, z, &d, eb);
	tld_delta_free(&d);
	return err;
}

/* PUSH_ZONE: flags u8 | has_origin u8 | [origin] | text_len u32 | text. */
static void push_zone(tld_repl *r, const tld_msg *m, tld_wbuf *out)
{
	tld_errbuf eb = {{0}};
	tld_rbuf rb = tld_rbuf_make(m->body, m->body_len);
	uint8_t flags = tld_r_u8(&rb);
	const uint8_t *origin = tld_r_u8(&rb) ? tld_r_name(&rb) : NULL;
	uint32_t tlen = tld_r_u32(&rb);
	const uint8_t *text = tld_r_bytes(&rb, tlen);
	if (!tld_r_done(&rb)) {
		int err = tld_errf(&eb, TLD_EMALFORMED, "malformed zone push");
		return push_done(r, m, out, err, &eb, 0, 0, 0, "");
	}
	tld_import_opts io = {.origin = origin};
	tld_import_stats is;
	tld_zdata *zd = NULL;
	int err =
	    tld_zdata_load_string((const char *)text, tlen, "pushed zone", &io, &zd, &is, &eb);
	tld_zone z = {0};
	uint32_t from = 0, ops = 0;
	bool created = false;
	if (err == 0) {
		repl_zone_load(r, tld_zdata_apex(zd), &z);
		from = r->p->push_from = z.serial;
		err = diff_zone(r, zd, (flags & 1) != 0, &z, &ops, &created, &eb);
	}
	if (err == 0 && created)
		ops = (uint32_t)is.records;
	push_done(r, m, out, err, &eb, created ? 0 : from, z.serial, ops,
	          err == 0 ? repl_name(z.apex).s : "");
	tld_zdata_free(zd);
}

/* ---- catch-up ---- */

/* The journal sequence whose delta starts at serial from, or 0. */
static uint64_t journal_find(tld_repl *r, const tld_zone *z, uint32_t from)
{
	uint64_t lo = z->journal_first, hi = z->journal_last;
	while (lo <= hi && lo != 0) {
		uint64_t mid = lo + (hi - lo) / 2;
		const void *data;
		size_t len;
		uint32_t f, t;
		if (tld_journal_get(&r->rd, z, mid, &data, &len) < 0 ||
		    !repl_delta_serials(data, len, &f, &t))
			return 0;
		if (f == from)
			return mid;
		if (tld_serial_newer(f, from))
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return 0;
}

/* Appends the deltas from seq on (at least one, about max bytes). */
static void catchup_collect(tld_repl *r, const tld_zone *z, uint64_t seq, uint32_t max,
                            tld_wbuf *out)
{
	size_t more_at = out->len, total = 0;
	tld_w_u8(out, 0);
	size_t count_at = out->len;
	tld_w_u32(out, 0);
	uint32_t count = 0;
	for (; seq <= z->journal_last; seq++) {
		const void *data;
		size_t len;
		if (tld_journal_get(&r->rd, z, seq, &data, &len) < 0)
			break;
		if (count > 0 && total + len > max)
			break;
		tld_w_u32(out, (uint32_t)len);
		tld_w_bytes(out, data, len);
		total += len;
		count++;
	}
	if (!out->oom) {
		out->p[more_at] = seq <= z->journal_last;
		tld_put_be32(out->p + count_at, count);
	}
}

/* CATCHUP: apex | from u32 | max_bytes u32. */
static void catchup(tld_repl *r, const tld_msg *m, tld_wbuf *out)
{
	tld_rbuf rb = tld_rbuf_make(m->body, m->body_len);
	const uint8_t *apex = tld_r_name(&rb);
	uint32_t from = tld_r_u32(&rb), max = tld_r_u32(&rb);
	if (!tld_r_done(&rb))
		return reply_error(out, m, TLD_EMALFORMED, "malformed catch-up request");
	if (max == 0 || max > CATCHUP_MAX_BYTES)
		max = CATCHUP_MAX_BYTES;
	tld_zone z;
	char text[TLD_NAME_TXTMAX + 200];
	int err = tld_reader_begin(&r->rd);
	if (err == 0 && (err = tld_zone_get(&r->rd, apex, &z)) < 0) {
		snprintf(text, sizeof(text), "%s: no such zone", repl_name(apex).s);
		reply_error(out, m, err, text);
	} else if (err == 0) {
		uint64_t seq = from == z.serial ? z.journal_last + 1 : journal_find(r, &z, from);
		if (seq == 0) {
			snprintf(text, sizeof(text),
			         "%s: serial %u is not in the journal (serial %u, %llu entries)",
			         repl_name(apex).s, from, z.serial,
			         (unsigned long long)(z.journal_last
			                                  ? z.journal_last - z.journal_first + 1
			                                  : 0));
			reply_error(out, m, TLD_ESERIAL, text);
		} else {
			tld_reply_begin(out, m->sender, m->seq, m->type, TLD_OK);
			catchup_collect(r, &z, seq, max, out);
			repl_count(r, TLD_RC_CATCHUPS_SERVED, 1);
		}
	} else {
		reply_error(out, m, err, "store read failed");
	}
	tld_reader_end(&r->rd);
}

/* ---- snapshots ---- */

static snap_session *session_find(struct primary *p, uint64_t id)
{
	for (int i = 0; i < MAX_SESSIONS; i++)
		if (p->sessions[i].id == id && id != 0)
			return &p->sessions[i];
	return NULL;
}

static void sessions_expire(tld_repl *r, uint64_t now)
{
	for (int i = 0; i < MAX_SESSIONS; i++) {
		snap_session *s = &r->p->sessions[i];
		if (s->id != 0 && now - s->last_used_ms > SESSION_IDLE_MS) {
			tld_log(TLD_LOG_INFO, "snapshot session of %s expired (idle)",
			        repl_name(s->z.apex).s);
			snap_session_close(s);
		}
	}
}

/* Writes session | serial | [params] | done | chunk, closing s when done. */
static void snap_reply(tld_repl *r, snap_session *s, const tld_msg *m, bool first, tld_wbuf *out)
{
	tld_reply_begin(out, m->sender, m->seq, m->type, TLD_OK);
	tld_w_u64(out, s->id);
	tld_w_u32(out, s->z.serial);
	if (first) {
		tld_w_u32(out, s->z.flags);
		tld_w_u8(out, s->z.nsec3_alg);
		tld_w_u8(out, s->z.nsec3_flags);
		tld_w_u16(out, s->z.nsec3_iter);
		tld_w_u8(out, s->z.nsec3_saltlen);
		tld_w_bytes(out, s->z.nsec3_salt, s->z.nsec3_saltlen);
	}
	size_t done_at = out->len;
	tld_w_u8(out, 0);
	bool done = false;
	int err = snap_session_chunk(s, out, r->o.snapshot_chunk, &done);
	if (err < 0) {
		reply_error(out, m, err, "snapshot read failed");
		snap_session_close(s);
		return;
	}
	out->p[done_at] = done;
	if (done) {
		tld_log(TLD_LOG_INFO, "snapshot of %s at serial %u served: %llu RRsets",
		        repl_name(s->z.apex).s, s->z.serial, (unsigned long long)s->entries);
		repl_count(r, TLD_RC_SNAPSHOTS_SERVED, 1);
		snap_session_close(s);
	}
}

/* SNAP_BEGIN: apex. */
static void snap_begin(tld_repl *r, const tld_msg *m, tld_wbuf *out)
{
	tld_rbuf rb = tld_rbuf_make(m->body, m->body_len);
	const uint8_t *apex = tld_r_name(&rb);
	if (!tld_r_done(&rb))
		return reply_error(out, m, TLD_EMALFORMED, "malformed snapshot request");
	snap_session *s = session_find(r->p, 0);
	for (int i = 0; i < MAX_SESSIONS && s == NULL; i++)
		if (r->p->sessions[i].id == 0)
			s = &r->p->sessions[i];
	if (s == NULL)
		return reply_error(out, m, TLD_EBUSY, "too many snapshot sessions; retry later");
	int err = snap_session_open(r, s, apex);
	if (err < 0)
		return reply_error(out, m, err,
		                   err == TLD_ENOENT ? "no such zone" : "cannot read the store");
	snap_reply(r, s, m, true, out);
}

/* SNAP_NEXT: session u64. */
static void snap_next(tld_repl *r, const tld_msg *m, tld_wbuf *out)
{
	tld_rbuf rb = tld_rbuf_make(m->body, m->body_len);
	uint64_t id = tld_r_u64(&rb);
	if (!tld_r_done(&rb))
		return reply_error(out, m, TLD_EMALFORMED, "malformed snapshot request");
	snap_session *s = session_find(r->p, id);
	/* Not ENOENT, which tells a replica the zone is gone: the session is
	 * (expired, or this primary restarted), so the replica starts again. */
	if (s == NULL)
		return reply_error(out, m, TLD_EBUSY,
		                   "no such snapshot session (expired, or the primary restarted)");
	snap_reply(r, s, m, false, out);
}

/* ---- reports and status ---- */

static struct peer *peer_slot(struct primary *p, const char *name)
{
	for (size_t i = 0; i < p->npeers; i++)
		if (strcmp(p->peers[i].rep.name, name) == 0)
			return &p->peers[i];
	if (p->npeers == MAX_PEERS)
		return NULL;
	struct peer *np = realloc(p->peers, (p->npeers + 1) * sizeof(*np));
	if (np == NULL)
		return NULL;
	p->peers = np;
	return &p->peers[p->npeers++];
}

/* Rewrites the stats' peer rows from the table (called after each report). */
static void peers_to_stats(tld_repl *r, uint64_t now)
{
	struct primary *p = r->p;
	pthread_mutex_lock(&r->lock);
	tld_repl_stats *st = r->stats;
	unsigned n = 0;
	for (size_t i = 0; i < p->npeers; i++) {
		const tld_report *rep = &p->peers[i].rep;
		for (unsigned j = 0; j < rep->nzones && n < TLD_REPL_STATS_PEERS; j++, n++) {
			tld_repl_peer_stats *ps = &st->peers[n];
			snprintf(ps->node, sizeof(ps->node), "%s", rep->name);
			memcpy(ps->apex, rep->zones[j].apex, tld_name_len(rep->zones[j].apex));
			ps->serial = rep->zones[j].serial;
			ps->lag_ms = rep->zones[j].lag_ms;
			ps->last_seen_ms = p->peers[i].last_seen_ms;
			ps->in_sync = rep->in_sync &&
			              now - p->peers[i].last_seen_ms < PEER_FRESH_MS &&
			              rep->zones[j].serial == rep->zones[j].primary_serial;
		}
	}
	st->npeers = n;
	pthread_mutex_unlock(&r->lock);
}

/* REPORT: a replica's state. */
static void report(tld_repl *r, const tld_msg *m, tld_wbuf *out)
{
	tld_report *rep = malloc(sizeof(*rep)); /* ~290 KB: not on the stack */
	if (rep == NULL)
		return reply_error(out, m, TLD_ENOMEM, "out of memory");
	tld_rbuf rb = tld_rbuf_make(m->body, m->body_len);
	tld_report_read(&rb, rep);
	struct peer *pe = NULL;
	if (!tld_r_done(&rb) || rep->name[0] == 0)
		reply_error(out, m, TLD_EMALFORMED, "malformed report");
	else if ((pe = peer_slot(r->p, rep->name)) == NULL)
		reply_error(out, m, TLD_ENOMEM, "too many nodes");
	if (pe != NULL) {
		pe->rep = *rep;
		pe->last_seen_ms = tld_now_ms();
		peers_to_stats(r, pe->last_seen_ms);
		tld_reply_begin(out, m->sender, m->seq, m->type, TLD_OK);
	}
	free(rep);
}

/* The primary's own line of the status table. */
static void self_report(tld_repl *r, tld_report *rep)
{
	memset(rep, 0, sizeof(*rep));
	snprintf(rep->name, sizeof(rep->name), "%s", r->node_name);
	rep->role = TLD_ROLE_PRIMARY;
	rep->in_sync = 1;
	pthread_mutex_lock(&r->lock);
	rep->ncounters = TLD_RC_COUNT;
	memcpy(rep->counters, r->stats->counters, sizeof(r->stats->counters));
	for (unsigned i = 0; i < r->stats->nzones && i < TLD_REPORT_ZONES; i++) {
		const tld_repl_zone_stats *zs = &r->stats->zones[i];
		tld_report_zone *z = &rep->zones[rep->nzones++];
		memcpy(z->apex, zs->apex, tld_name_len(zs->apex));
		z->serial = z->primary_serial = zs->serial;
		z->applied_ms = zs->applied_ms;
	}
	pthread_mutex_unlock(&r->lock);
}

/* STATUS: now | the primary's report | the replicas' reports. */
static void status(tld_repl *r, const tld_msg *m, tld_wbuf *out)
{
	heartbeat(r); /* fresh serials in the stats, and one more heartbeat is harmless */
	tld_report *self = malloc(sizeof(*self));
	if (self == NULL)
		return reply_error(out, m, TLD_ENOMEM, "out of memory");
	self_report(r, self);
	tld_reply_begin(out, m->sender, m->seq, m->type, TLD_OK);
	tld_w_u64(out, tld_now_ms());
	tld_report_write(out, self);
	free(self);
	tld_w_u16(out, (uint16_t)r->p->npeers);
	for (size_t i = 0; i < r->p->npeers; i++) {
		tld_w_u64(out, r->p->peers[i].last_seen_ms);
		tld_report_write(out, &r->p->peers[i].rep);
	}
}

/* ---- the request loop ---- */

static void dispatch(tld_repl *r, const tld_msg *m, tld_wbuf *out)
{
	switch (m->type) {
	case TLD_MSG_CATCHUP:
		return catchup(r, m, out);
	case TLD_MSG_SNAP_BEGIN:
		return snap_begin(r, m, out);
	case TLD_MSG_SNAP_NEXT:
		return snap_next(r, m, out);
	case TLD_MSG_PUSH_ZONE:
	case TLD_MSG_PUSH_DELTA:
		r->p->push = m;
		r->p->push_from = 0;
		(m->type == TLD_MSG_PUSH_ZONE ? push_zone : push_delta)(r, m, out);
		r->p->push = NULL;
		return;
	case TLD_MSG_REPORT:
		return report(r, m, out);
	case TLD_MSG_STATUS:
		return status(r, m, out);
	default:
		return reply_error(out, m, TLD_EINVAL, "not a request");
	}
}

static void send_notice(tld_repl *r, enum tld_reject why)
{
	char text[80];
	uint8_t buf[100];
	snprintf(text, sizeof(text), "request rejected: %s", tld_reject_name((int)why));
	size_t n = tld_msg_notice_make(text, buf, sizeof(buf));
	nn_send(r->p->rep, buf, n, NN_DONTWAIT);
}

/* A push committed before (see push records): its reply, from the record,
 * into out. False when m is no such push. */
static bool push_came_back(tld_repl *r, const tld_msg *m, tld_wbuf *out)
{
	struct push_record pr;
	if ((m->type != TLD_MSG_PUSH_ZONE && m->type != TLD_MSG_PUSH_DELTA) ||
	    !push_record_find(r, m, &pr))
		return false;
	char text[1200];
	snprintf(text, sizeof(text),
	         PUSH_RESULT_FMT " (sent again after a lost reply: applied once)",
	         repl_name(pr.apex).s, pr.from, pr.to, pr.ops);
	tld_log(TLD_LOG_INFO, "push came back: %s", text);
	reply_push(out, m, pr.from, pr.to, pr.ops, text);
	return true;
}

/* Sends the reply built in out (or, if building it ran out of memory, an
 * error saying so) and frees out. */
static void send_reply(tld_repl *r, const tld_msg *m, tld_wbuf *out)
{
	if (out->oom) {
		tld_wbuf_free(out);
		reply_error(out, m, TLD_ENOMEM, "out of memory");
	}
	if (repl_send(r, r->p->rep, TLD_MSG_REPLY, out->p, out->len, 0) < 0)
		tld_log(TLD_LOG_WARN, "control: reply not sent: %s", nn_strerror(nn_errno()));
	tld_wbuf_free(out);
}

/* Authenticates one request and answers it (a REP socket must answer each). */
static void serve_request(tld_repl *r, const uint8_t *buf, size_t len)
{
	tld_msg m;
	enum tld_reject why;
	tld_wbuf out = {0};
	bool opened = tld_msg_open(r->o.keys, buf, len, &m, &why) == 0;
	if (opened && push_came_back(r, &m, &out))
		return send_reply(r, &m, &out);
	if (!opened || tld_replay_check(&r->p->guard, &m, tld_now_ms(), &why) < 0) {
		/* m is filled only when the envelope opened (a stale or replayed
		 * message); for a bad MAC or an unknown key it is not. */
		repl_reject(r, why, "control", opened ? &m : NULL);
		return send_notice(r, why);
	}
	if (m.type == TLD_MSG_DELTA || m.type == TLD_MSG_HEARTBEAT || m.type == TLD_MSG_REPLY) {
		repl_reject(r, TLD_REJ_MISMATCH, "control", &m);
		return send_notice(r, TLD_REJ_MISMATCH);
	}
	repl_count(r, TLD_RC_REQUESTS, 1);
	dispatch(r, &m, &out);
	send_reply(r, &m, &out);
}

static void drain_requests(tld_repl *r)
{
	for (int i = 0; i < 64 && !atomic_load(&r->stop); i++) {
		void *buf;
		int n = tld_nn_take(r->p->rep, &buf);
		if (n < 0)
			return;
		serve_request(r, buf, (size_t)n);
		tld_nn_release(buf);
	}
}

void primary_run(tld_repl *r)
{
	struct primary *p = r->p;
	p->next_hb = repl_mono_ms();
	while (!atomic_load(&r->stop)) {
		uint64_t now = repl_mono_ms();
		if (now >= p->next_hb) {
			heartbeat(r);
			p->next_hb = now + r->o.heartbeat_ms;
			sessions_expire(r, now);
			if (r->o.sync == TLD_SYNC_NONE && now - r->last_sync_ms >= 1000) {
				mdb_env_sync(tld_store_env(r->st), 1);
				r->last_sync_ms = now;
			}
		}
		int wait = (int)(p->next_hb > now ? p->next_hb - now : 0);
		struct nn_pollfd pfd = {.fd = p->rep, .events = NN_POLLIN};
		if (nn_poll(&pfd, 1, wait < 100 ? wait : 100) > 0)
			drain_requests(r);
	}
}
