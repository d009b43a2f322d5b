/* snapshot.c - whole-zone transfer in chunks: the primary's read sessions, the replica's loader. */
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "../node/common/log.h"
#include "repl_int.h"

#define ZID_LEN 4

/* ---- primary: a session is one read transaction walking the zone's RRsets ---- */

int snap_session_open(tld_repl *r, snap_session *s, const uint8_t *apex)
{
	memset(s, 0, sizeof(*s));
	int err = tld_reader_open(r->st, &s->rd);
	if (err < 0)
		return err;
	if ((err = tld_reader_begin(&s->rd)) == 0)
		err = tld_zone_get(&s->rd, apex, &s->z);
	if (err == 0 && RAND_bytes((unsigned char *)&s->id, sizeof(s->id)) != 1)
		err = TLD_EIO;
	if (err < 0) {
		tld_reader_close(&s->rd);
		return err;
	}
	s->id |= 1; /* never 0: 0 marks a free slot */
	s->last_used_ms = repl_mono_ms();
	return TLD_OK;
}

void snap_session_close(snap_session *s)
{
	if (s->rd.txn != NULL) {
		tld_reader_end(&s->rd);
		tld_reader_close(&s->rd);
	}
	memset(s, 0, sizeof(*s));
}

/* Appends one rrsets entry (key k, value v) of the session's zone; false
 * when the key is not the zone's. */
static bool chunk_entry(snap_session *s, const MDB_val *k, const MDB_val *v, tld_wbuf *b)
{
	const uint8_t *kb = k->mv_data;
	uint8_t full[TLD_KEY_MAX + 8], owner[TLD_NAME_MAX];
	if (k->mv_size < ZID_LEN + 3 || tld_get_be32(kb) != s->z.id)
		return false;
	size_t rlen = k->mv_size - ZID_LEN - 3;
	if ((size_t)s->z.apex_keylen + rlen > TLD_KEY_MAX)
		return false;
	memcpy(full, s->z.apex_key, s->z.apex_keylen);
	memcpy(full + s->z.apex_keylen, kb + ZID_LEN, rlen);
	if (tld_key_name(full, s->z.apex_keylen + rlen, owner) < 0)
		return false;
	tld_w_name(b, owner);
	tld_w_u16(b, tld_get_be16(kb + k->mv_size - 2));
	tld_w_u32(b, (uint32_t)v->mv_size);
	tld_w_bytes(b, v->mv_data, v->mv_size);
	return true;
}

int snap_session_chunk(snap_session *s, tld_wbuf *b, size_t chunk, bool *done)
{
	MDB_cursor *cur = tld_reader_rrsets_cursor(&s->rd);
	if (cur == NULL)
		return TLD_EIO;
	uint8_t prefix[ZID_LEN];
	tld_put_be32(prefix, s->z.id);
	MDB_val k = {ZID_LEN, prefix}, v;
	size_t count_at = b->len, start = b->len;
	tld_w_u32(b, 0); /* count, patched below */
	uint32_t count = 0;
	int rc = s->started ? mdb_cursor_get(cur, &k, &v, MDB_NEXT)
	                    : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	s->started = true;
	*done = false;
	for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (!chunk_entry(s, &k, &v, b))
			break;
		count++;
		if (b->len - start >= chunk)
			break;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		return tld_store_err(rc, NULL, "snapshot read");
	if (rc == MDB_NOTFOUND || (rc == 0 && b->len - start < chunk))
		*done = true;
	if (b->oom)
		return TLD_ENOMEM;
	tld_put_be32(b->p + count_at, count);
	s->entries += count;
	s->last_used_ms = repl_mono_ms();
	return TLD_OK;
}

/* ---- replica: write the chunks into a new zone id, publish it at the end ---- */

struct loader {
	tld_writer w;
	tld_zone z;
	uint8_t cut[TLD_NAME_MAX]; /* the delegation whose subtree is being written */
	bool has_cut;
	uint64_t entries;
	uint64_t began_ms; /* the primary's time in the first reply */
};

static int close_cut(struct loader *l, tld_errbuf *eb)
{
	if (!l->has_cut)
		return TLD_OK;
	l->has_cut = false;
	return tld_cut_rebuild(&l->w, &l->z, l->cut, true, eb);
}

static int load_entry(struct loader *l, const uint8_t *owner, uint16_t type, const uint8_t *val,
                      size_t vlen, tld_errbuf *eb)
{
	tld_rrset rs;
	if (tld_rrset_decode(type, val, vlen, &rs) < 0)
		return tld_errf(eb, TLD_EMALFORMED, "snapshot: malformed RRset value");
	if (!tld_name_is_below(owner, l->z.apex))
		return tld_errf(eb, TLD_EMALFORMED, "snapshot: owner outside the zone");
	int err = TLD_OK;
	if (l->has_cut && !tld_name_is_below(owner, l->cut))
		err = close_cut(l, eb);
	if (err == 0)
		err = tld_rrset_put(&l->w, &l->z, owner, type, val, vlen, true, eb);
	if (err == 0 && type == 2 /* NS */ && !l->has_cut && !tld_name_equal(owner, l->z.apex)) {
		memcpy(l->cut, owner, tld_name_len(owner));
		l->has_cut = true;
	}
	l->entries++;
	return err;
}

/* count u32 | count x (owner | type u16 | len u32 | value) */
static int load_chunk(struct loader *l, tld_rbuf *rb, tld_errbuf *eb)
{
	uint32_t count = tld_r_u32(rb);
	for (uint32_t i = 0; i < count && !rb->bad; i++) {
		const uint8_t *owner = tld_r_name(rb);
		uint16_t type = tld_r_u16(rb);
		uint32_t vlen = tld_r_u32(rb);
		const uint8_t *val = tld_r_bytes(rb, vlen);
		if (rb->bad)
			break;
		int err = load_entry(l, owner, type, val, vlen, eb);
		if (err < 0)
			return err;
	}
	if (!tld_r_done(rb))
		return tld_errf(eb, TLD_EMALFORMED, "snapshot: malformed chunk");
	return TLD_OK;
}

/* Zone parameters from a SNAP_BEGIN reply into the new zone record. */
static void read_params(tld_rbuf *rb, tld_zone *z)
{
	z->flags = tld_r_u32(rb);
	z->nsec3_alg = tld_r_u8(rb);
	z->nsec3_flags = tld_r_u8(rb);
	z->nsec3_iter = tld_r_u16(rb);
	z->nsec3_saltlen = tld_r_u8(rb);
	const uint8_t *salt = tld_r_bytes(rb, z->nsec3_saltlen);
	if (salt != NULL)
		memcpy(z->nsec3_salt, salt, z->nsec3_saltlen);
}

static int snap_request(tld_repl *r, tld_client *cl, uint8_t type, const tld_wbuf *body,
                        tld_reply *rep, tld_errbuf *eb)
{
	if (body->oom)
		return tld_errf(eb, TLD_ENOMEM, "out of memory");
	int err =
	    tld_client_call(cl, type, body->p, body->len, (int)r->o.request_timeout_ms, rep, eb);
	if (err < 0)
		return err;
	if (rep->status < 0)
		return tld_errf(eb, rep->status, "primary: %s", rep->text);
	return TLD_OK;
}

/* Requests the chunks after the first until the primary says done. */
static int fetch_rest(tld_repl *r, tld_client *cl, struct loader *l, uint64_t session,
                      tld_errbuf *eb)
{
	for (;;) {
		tld_wbuf b = {0};
		tld_reply rep;
		tld_w_u64(&b, session);
		int err = snap_request(r, cl, TLD_MSG_SNAP_NEXT, &b, &rep, eb);
		tld_wbuf_free(&b);
		if (err < 0)
			return err;
		uint64_t sid = tld_r_u64(&rep.rest);
		uint32_t serial = tld_r_u32(&rep.rest);
		bool done = tld_r_u8(&rep.rest) != 0;
		if (rep.rest.bad || sid != session || serial != l->z.serial)
			return tld_errf(eb, TLD_EMALFORMED, "snapshot: unexpected chunk");
		if ((err = load_chunk(l, &rep.rest, eb)) < 0 || done)
			return err;
	}
}

static int fetch_all(tld_repl *r, tld_client *cl, struct loader *l, const uint8_t *apex,
                     tld_errbuf *eb)
{
	tld_wbuf b = {0};
	tld_reply rep;
	tld_w_name(&b, apex);
	int err = snap_request(r, cl, TLD_MSG_SNAP_BEGIN, &b, &rep, eb);
	tld_wbuf_free(&b);
	if (err < 0)
		return err;
	uint64_t session = tld_r_u64(&rep.rest);
	uint32_t serial = tld_r_u32(&rep.rest);
	tld_zone params;
	read_params(&rep.rest, &params);
	bool done = tld_r_u8(&rep.rest) != 0;
	if (rep.rest.bad)
		return tld_errf(eb, TLD_EMALFORMED, "snapshot: malformed first chunk");
	l->began_ms = rep.time_ms;
	if ((err = tld_zone_new(&l->w, apex, &l->z, eb)) < 0)
		return err;
	l->z.serial = serial;
	l->z.flags = params.flags;
	l->z.nsec3_alg = params.nsec3_alg;
	l->z.nsec3_flags = params.nsec3_flags;
	l->z.nsec3_iter = params.nsec3_iter;
	l->z.nsec3_saltlen = params.nsec3_saltlen;
	memcpy(l->z.nsec3_salt, params.nsec3_salt, params.nsec3_saltlen);
	if ((err = load_chunk(l, &rep.rest, eb)) < 0 || done)
		return err;
	return fetch_rest(r, cl, l, session, eb);
}

int snap_fetch(tld_repl *r, tld_client *cl, const uint8_t *apex, tld_zone *z, uint64_t *when,
               tld_errbuf *eb)
{
	struct loader l;
	memset(&l, 0, sizeof(l));
	int err = tld_writer_begin(r->st, &l.w, eb);
	if (err < 0)
		return err;
	if ((err = fetch_all(r, cl, &l, apex, eb)) == 0 && (err = close_cut(&l, eb)) == 0 &&
	    (err = tld_zone_publish(&l.w, &l.z, eb)) == 0)
		err = tld_writer_commit(&l.w, eb);
	else
		tld_writer_abort(&l.w);
	if (err == 0) {
		*z = l.z;
		*when = l.began_ms;
		tld_log(TLD_LOG_INFO, "snapshot of %s at serial %u: %llu RRsets", repl_name(apex).s,
		        l.z.serial, (unsigned long long)l.entries);
	}
	return err;
}
