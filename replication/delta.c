/* delta.c - zone changes (RRs deleted and added between two serials): encoding, diff, apply. */
#include "delta.h"
#include "../node/common/bytes.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libzscanner/scanner.h>

#include "../node/dns/rdata.h"
#include "../node/dns/rrtype.h"

#define HDR_FIXED 12 /* from, to, count: after version and apex */
#define OP_FIXED  8  /* type, ttl, rdlen: after op and owner */
#define SIG_MIN   18 /* RRSIG RDATA before the signer's name */

/* ---- byte helpers ---- */

/* Canonical order of two RDATAs (RFC 4034 6.3), the order import sorts in. */
static int rdata_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c != 0)
		return c;
	return alen < blen ? -1 : (alen > blen);
}

/* Presentation text of a name and a type, for messages. */
static const char *name_text(const uint8_t *name, char *buf, size_t len)
{
	if (tld_name_to_text(name, buf, len) < 0)
		snprintf(buf, len, "?");
	return buf;
}

static const char *type_text(uint16_t type, char *buf, size_t len)
{
	if (tld_rrtype_to_text(type, buf, len) < 0)
		snprintf(buf, len, "?");
	return buf;
}

bool tld_serial_newer(uint32_t a, uint32_t b)
{
	/* RFC 1982 3.2: a - b in (0, 2^31); exactly 2^31 is undefined: not newer. */
	uint32_t d = a - b;
	return d != 0 && d < UINT32_C(0x80000000);
}

/* ---- building ---- */

static int delta_reserve(tld_delta *d, size_t more)
{
	if (more <= d->cap - d->len)
		return TLD_OK;
	size_t cap = d->cap ? d->cap : 256;
	while (cap - d->len < more) {
		if (cap > SIZE_MAX / 2)
			return TLD_ENOMEM;
		cap *= 2;
	}
	uint8_t *p = realloc(d->buf, cap);
	if (p == NULL)
		return TLD_ENOMEM;
	d->buf = p;
	d->cap = cap;
	return TLD_OK;
}

/* Offset of the serials in a built delta (after version and apex). */
static size_t serials_off(const tld_delta *d)
{
	return 1 + tld_name_len(d->buf + 1);
}

int tld_delta_init(tld_delta *d, const uint8_t *apex, uint32_t from, uint32_t to)
{
	memset(d, 0, sizeof(*d));
	size_t alen = tld_name_len(apex);
	if (delta_reserve(d, 1 + alen + HDR_FIXED) < 0)
		return TLD_ENOMEM;
	d->buf[0] = TLD_DELTA_VERSION;
	memcpy(d->buf + 1, apex, alen);
	d->len = 1 + alen + HDR_FIXED;
	tld_delta_set_serials(d, from, to);
	tld_put_be32(d->buf + 1 + alen + 8, 0);
	return TLD_OK;
}

int tld_delta_add(tld_delta *d, uint8_t op, const uint8_t *owner, uint16_t type, uint32_t ttl,
                  const uint8_t *rdata, uint16_t rdlen)
{
	if (op > TLD_OP_ADD || d->buf == NULL || d->count == UINT32_MAX ||
	    (rdlen > 0 && rdata == NULL))
		return TLD_EINVAL;
	/* Refused here so that whatever is built also parses. */
	if (!tld_name_is_below(owner, d->buf + 1))
		return TLD_EINVAL;
	size_t olen = tld_name_len(owner);
	if (delta_reserve(d, 1 + olen + OP_FIXED + rdlen) < 0)
		return TLD_ENOMEM;
	uint8_t *p = d->buf + d->len;
	p[0] = op;
	memcpy(p + 1, owner, olen);
	p += 1 + olen;
	tld_put_be16(p, type);
	tld_put_be32(p + 2, ttl);
	tld_put_be16(p + 6, rdlen);
	if (rdlen > 0)
		memcpy(p + OP_FIXED, rdata, rdlen);
	d->len += 1 + olen + OP_FIXED + rdlen;
	d->count++;
	tld_put_be32(d->buf + serials_off(d) + 8, d->count);
	return TLD_OK;
}

void tld_delta_set_serials(tld_delta *d, uint32_t from, uint32_t to)
{
	size_t off = serials_off(d);
	tld_put_be32(d->buf + off, from);
	tld_put_be32(d->buf + off + 4, to);
}

void tld_delta_free(tld_delta *d)
{
	free(d->buf);
	memset(d, 0, sizeof(*d));
}

/* ---- parsing ---- */

/* Reads the operation at *pos of buf[0..len), checking every bound, and
 * advances *pos. False when it is malformed. */
static bool read_op(const uint8_t *buf, size_t len, const uint8_t *apex, size_t *pos,
                    tld_delta_op *op)
{
	size_t p = *pos;
	if (p >= len || buf[p] > TLD_OP_ADD)
		return false;
	op->op = buf[p++];
	int nlen = tld_name_check(buf + p, len - p);
	if (nlen < 0 || !tld_name_is_below(buf + p, apex))
		return false;
	op->owner = buf + p;
	p += (size_t)nlen;
	if (len - p < OP_FIXED)
		return false;
	op->type = tld_get_be16(buf + p);
	op->ttl = tld_get_be32(buf + p + 2);
	op->rdlen = tld_get_be16(buf + p + 6);
	p += OP_FIXED;
	if (len - p < op->rdlen)
		return false;
	op->rdata = buf + p;
	*pos = p + op->rdlen;
	return true;
}

int tld_delta_parse(const uint8_t *buf, size_t len, tld_delta_view *v)
{
	memset(v, 0, sizeof(*v));
	if (buf == NULL || len < 1 || buf[0] != TLD_DELTA_VERSION)
		return TLD_EMALFORMED;
	int alen = tld_name_check(buf + 1, len - 1);
	if (alen < 0 || len - 1 - (size_t)alen < HDR_FIXED)
		return TLD_EMALFORMED;
	const uint8_t *h = buf + 1 + alen;
	size_t pos = 1 + (size_t)alen + HDR_FIXED;
	uint32_t count = tld_get_be32(h + 8);
	/* An operation takes at least 10 bytes: a count that cannot fit is
	 * refused before looping over it. */
	if (count > (len - pos) / (1 + 1 + OP_FIXED))
		return TLD_EMALFORMED;
	for (uint32_t i = 0; i < count; i++) {
		tld_delta_op op;
		if (!read_op(buf, len, buf + 1, &pos, &op))
			return TLD_EMALFORMED;
	}
	if (pos != len)
		return TLD_EMALFORMED;
	v->buf = buf;
	v->len = len;
	v->apex = buf + 1;
	v->from = tld_get_be32(h);
	v->to = tld_get_be32(h + 4);
	v->count = count;
	v->ops_off = 1 + (size_t)alen + HDR_FIXED;
	return TLD_OK;
}

bool tld_delta_next(const tld_delta_view *v, size_t *pos, tld_delta_op *op)
{
	if (*pos == 0)
		*pos = v->ops_off;
	if (*pos >= v->len)
		return false;
	return read_op(v->buf, v->len, v->apex, pos, op);
}

/* ---- applying ---- */

/* One section of an RRset value being edited: records (rdlen | rdata), or
 * signatures (ttl | rdlen | rdata) when hdr is 6. */
struct sect {
	uint8_t *p;
	size_t len, cap;
	uint32_t count;
	size_t hdr;
};

/* The RRset being edited. Consecutive operations on one RRset (the usual
 * case: a diff emits them grouped) are applied to this copy and written once,
 * which keeps the store's per-write referral maintenance off the hot path. */
struct edit {
	bool active, existed;
	uint8_t owner[TLD_NAME_MAX];
	uint16_t type;
	uint32_t ttl;
	struct sect rrs, sigs;
};

/* Changed owner names, kept in an arena (offsets) to be sorted once. */
struct owners {
	uint8_t *arena;
	size_t len, cap;
	size_t *off;
	size_t n, ncap;
};

struct apply {
	tld_writer *w;
	tld_zone z; /* working copy: the caller's is updated only on success */
	const tld_delta_view *v;
	tld_errbuf *eb;
	struct edit e;
	struct owners own;
	uint8_t *val; /* scratch for encoded values */
	size_t val_cap;
	uint32_t opno;
};

static int grow(uint8_t **p, size_t *cap, size_t need)
{
	if (need <= *cap)
		return TLD_OK;
	size_t c = *cap ? *cap : 512;
	while (c < need)
		c *= 2;
	uint8_t *n = realloc(*p, c);
	if (n == NULL)
		return TLD_ENOMEM;
	*p = n;
	*cap = c;
	return TLD_OK;
}

static int sect_set(struct sect *s, const uint8_t *from, const uint8_t *to, uint32_t count)
{
	size_t n = (size_t)(to - from);
	if (grow(&s->p, &s->cap, n) < 0)
		return TLD_ENOMEM;
	if (n > 0)
		memcpy(s->p, from, n);
	s->len = n;
	s->count = count;
	return TLD_OK;
}

/* Looks for rdata in s: *at is the offset of the equal record (return true)
 * or of the first greater one, where an insertion keeps the order. */
static bool sect_find(const struct sect *s, const uint8_t *rdata, uint16_t rdlen, size_t *at)
{
	bool have_ins = false;
	*at = s->len;
	for (size_t p = 0; p + s->hdr <= s->len;) {
		uint16_t l = tld_get_be16(s->p + p + s->hdr - 2);
		int c = rdata_cmp(s->p + p + s->hdr, l, rdata, rdlen);
		if (c == 0) {
			*at = p;
			return true;
		}
		/* Keep looking for an equal record past a greater one: a value
		 * written by something else need not be sorted. */
		if (c > 0 && !have_ins) {
			*at = p;
			have_ins = true;
		}
		p += s->hdr + l;
	}
	return false;
}

static void sect_remove(struct sect *s, size_t at)
{
	size_t n = s->hdr + tld_get_be16(s->p + at + s->hdr - 2);
	memmove(s->p + at, s->p + at + n, s->len - at - n);
	s->len -= n;
	s->count--;
}

static int sect_insert(struct sect *s, size_t at, uint32_t ttl, const uint8_t *rdata,
                       uint16_t rdlen)
{
	size_t n = s->hdr + rdlen;
	if (grow(&s->p, &s->cap, s->len + n) < 0)
		return TLD_ENOMEM;
	memmove(s->p + at + n, s->p + at, s->len - at);
	uint8_t *q = s->p + at;
	if (s->hdr == 6) {
		tld_put_be32(q, ttl);
		q += 4;
	}
	tld_put_be16(q, rdlen);
	memcpy(q + 2, rdata, rdlen);
	s->len += n;
	s->count++;
	return TLD_OK;
}

/* An error about one RRset: "owner TYPE: why". */
static int rrset_err(tld_errbuf *eb, const uint8_t *owner, uint16_t type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int rrset_err(tld_errbuf *eb, const uint8_t *owner, uint16_t type, const char *fmt, ...)
{
	char why[256], on[TLD_NAME_TXTMAX], tn[32];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return tld_errf(eb, TLD_EZONE, "%s %s: %s", name_text(owner, on, sizeof(on)),
	                type_text(type, tn, sizeof(tn)), why);
}

/* Loads the stored RRset (owner, type) into the edit. */
static int edit_load(struct apply *a, const uint8_t *owner, uint16_t type)
{
	struct edit *e = &a->e;
	tld_rrset rs;
	int err = tld_writer_rrset_get(a->w, &a->z, owner, type, &rs);
	if (err < 0 && err != TLD_ENOENT)
		return tld_errf(a->eb, err, "cannot read an RRset: %s", tld_strerror(err));
	memcpy(e->owner, owner, tld_name_len(owner));
	e->type = type;
	e->active = true;
	e->existed = (err == 0);
	e->ttl = err == 0 ? rs.ttl : 0;
	if (err == TLD_ENOENT) {
		e->rrs.len = e->sigs.len = 0;
		e->rrs.count = e->sigs.count = 0;
		return TLD_OK;
	}
	/* The view dies at the next write: copy it. */
	if (sect_set(&e->rrs, rs.rrs, rs.sigs, rs.rr_count) < 0 ||
	    sect_set(&e->sigs, rs.sigs, rs.end, rs.sig_count) < 0)
		return tld_errf(a->eb, TLD_ENOMEM, "out of memory");
	return TLD_OK;
}

/* Writes the edited RRset back (or deletes it once it holds nothing). */
static int edit_flush(struct apply *a)
{
	struct edit *e = &a->e;
	if (!e->active)
		return TLD_OK;
	e->active = false;
	if (e->rrs.count == 0 && e->sigs.count == 0)
		return e->existed ? tld_rrset_del(a->w, &a->z, e->owner, e->type, a->eb) : TLD_OK;
	if (e->rrs.count > UINT16_MAX || e->sigs.count > UINT16_MAX)
		return rrset_err(a->eb, e->owner, e->type, "RRset too large");
	/* Signatures alone: the RRset TTL is the first one's, as import does. */
	uint32_t ttl = e->rrs.count > 0 ? e->ttl : tld_get_be32(e->sigs.p);
	size_t need = 8 + e->rrs.len + e->sigs.len;
	if (grow(&a->val, &a->val_cap, need) < 0)
		return tld_errf(a->eb, TLD_ENOMEM, "out of memory");
	int len = tld_rrset_encode(a->val, a->val_cap, ttl, (uint16_t)e->rrs.count, e->rrs.p,
	                           e->rrs.len, (uint16_t)e->sigs.count, e->sigs.p, e->sigs.len);
	if (len < 0)
		return tld_errf(a->eb, len, "encode RRset");
	return tld_rrset_put(a->w, &a->z, e->owner, e->type, a->val, (size_t)len, false, a->eb);
}

static int owners_add(struct owners *o, const uint8_t *name)
{
	size_t n = tld_name_len(name);
	if (o->n > 0 && tld_name_equal(o->arena + o->off[o->n - 1], name))
		return TLD_OK;
	if (grow(&o->arena, &o->cap, o->len + n) < 0)
		return TLD_ENOMEM;
	if (o->n == o->ncap) {
		size_t c = o->ncap ? o->ncap * 2 : 64;
		size_t *p = realloc(o->off, c * sizeof(*p));
		if (p == NULL)
			return TLD_ENOMEM;
		o->off = p;
		o->ncap = c;
	}
	memcpy(o->arena + o->len, name, n);
	o->off[o->n++] = o->len;
	o->len += n;
	return TLD_OK;
}

static int owner_cmp(const void *pa, const void *pb, void *arg)
{
	const uint8_t *arena = arg;
	return tld_name_cmp(arena + *(const size_t *)pa, arena + *(const size_t *)pb);
}

/* Sorts the owners in canonical order and drops repeats. */
static void owners_sort(struct owners *o)
{
	if (o->n == 0)
		return;
	qsort_r(o->off, o->n, sizeof(*o->off), owner_cmp, o->arena);
	size_t n = 0;
	for (size_t i = 0; i < o->n; i++)
		if (n == 0 || !tld_name_equal(o->arena + o->off[n - 1], o->arena + o->off[i]))
			o->off[n++] = o->off[i];
	o->n = n;
}

/* Checks what the rules below need from one operation's data. */
static int op_check(struct apply *a, const tld_delta_op *op)
{
	if (!tld_rrtype_is_data(op->type))
		return rrset_err(a->eb, op->owner, op->type, "op %" PRIu32 ": not a zone data type",
		                 a->opno);
	if (op->type == TLD_T_RRSIG && op->rdlen < SIG_MIN)
		return rrset_err(a->eb, op->owner, op->type,
		                 "op %" PRIu32 ": RRSIG RDATA too short", a->opno);
	return TLD_OK;
}

static int apply_op(struct apply *a, const tld_delta_op *op)
{
	int err = op_check(a, op);
	if (err < 0)
		return err;
	bool sig = (op->type == TLD_T_RRSIG);
	uint16_t type = sig ? tld_get_be16(op->rdata) : op->type;
	struct edit *e = &a->e;
	if (!e->active || e->type != type || !tld_name_equal(e->owner, op->owner)) {
		if ((err = edit_flush(a)) < 0 || (err = edit_load(a, op->owner, type)) < 0)
			return err;
	}
	struct sect *s = sig ? &e->sigs : &e->rrs;
	size_t at;
	bool found = sect_find(s, op->rdata, op->rdlen, &at);
	if (op->op == TLD_OP_DEL) {
		if (!found)
			return rrset_err(a->eb, op->owner, op->type,
			                 "op %" PRIu32 ": record to delete is not in the zone",
			                 a->opno);
		sect_remove(s, at);
	} else if (!found) { /* adding a present RR changes nothing (RFC 1995) */
		if (sect_insert(s, at, op->ttl, op->rdata, op->rdlen) < 0)
			return tld_errf(a->eb, TLD_ENOMEM, "out of memory");
		if (!sig)
			e->ttl = op->ttl;
		/* Opt-out is noted when seen; finding that it went away would
		 * take a scan of every NSEC3, so the flag is never cleared here. */
		if (op->type == TLD_T_NSEC3 && op->rdlen > 1 && (op->rdata[1] & 1))
			a->z.flags |= TLD_ZONE_NSEC3_OPTOUT;
		/* Likewise for wildcards: the flag only lets NXDOMAIN skip a probe. */
		if (op->owner[0] == 1 && op->owner[1] == '*')
			a->z.flags |= TLD_ZONE_WILDCARD;
		if (op->type == TLD_T_DNAME)
			a->z.flags |= TLD_ZONE_DNAME;
	}
	return owners_add(&a->own, op->owner) < 0 ? tld_errf(a->eb, TLD_ENOMEM, "out of memory")
	                                          : TLD_OK;
}

/* ---- zone rules around changed names ---- */

/* What one name holds. */
struct node {
	bool any;
	bool has[TLD_T_CHECKED_MAX];
	uint16_t other; /* a present type >= TLD_T_CHECKED_MAX, or 0 */
	uint32_t soa_count, cname_count, dname_count;
};

static int node_add(const uint8_t *owner, const tld_rrset *rs, void *ctx)
{
	struct node *n = ctx;
	if (rs->sig_count > 0) {
		n->has[TLD_T_RRSIG] = true;
		n->any = true;
	}
	if (rs->rr_count == 0)
		return 0;
	n->any = true;
	if (rs->type < TLD_T_CHECKED_MAX)
		n->has[rs->type] = true;
	else if (n->other == 0)
		n->other = rs->type;
	n->soa_count += rs->type == TLD_T_SOA ? rs->rr_count : 0;
	n->cname_count += rs->type == TLD_T_CNAME ? rs->rr_count : 0;
	n->dname_count += rs->type == TLD_T_DNAME ? rs->rr_count : 0;
	return 0;
}

static int node_read(struct apply *a, const uint8_t *owner, struct node *n)
{
	memset(n, 0, sizeof(*n));
	int err = tld_writer_foreach_rrset(a->w, &a->z, owner, false, node_add, n);
	return err < 0 ? tld_errf(a->eb, err, "zone check: %s", tld_strerror(err)) : TLD_OK;
}

/* The first type present at n for which ok() is false, or -1. */
static int node_bad_type(const struct node *n, bool (*ok)(uint16_t))
{
	for (uint16_t t = 0; t < TLD_T_CHECKED_MAX; t++)
		if (n->has[t] && !ok(t))
			return t;
	return n->other != 0 && !ok(n->other) ? n->other : -1;
}

static bool is_glue_type(uint16_t t)
{
	return t == TLD_T_A || t == TLD_T_AAAA;
}

static bool allowed_at_cut(uint16_t t)
{
	return t == TLD_T_NS || t == TLD_T_DS || t == TLD_T_NSEC || t == TLD_T_RRSIG ||
	       is_glue_type(t);
}

static bool no_type(uint16_t t)
{
	(void)t;
	return false;
}

static bool cname_companion_ok(uint16_t t)
{
	return t == TLD_T_CNAME || t == TLD_T_RRSIG || t == TLD_T_NSEC;
}

/* Does owner (inside the zone) hold NS records? */
static int has_ns(struct apply *a, const uint8_t *owner)
{
	tld_rrset rs;
	int err = tld_writer_rrset_get(a->w, &a->z, owner, TLD_T_NS, &rs);
	if (err == TLD_ENOENT)
		return 0;
	if (err < 0)
		return tld_errf(a->eb, err, "zone check: %s", tld_strerror(err));
	return rs.rr_count > 0;
}

/* The highest delegation point strictly between the apex and owner: writes it
 * to cut and returns 1, or 0 when owner is not below a delegation. */
static int enclosing_cut(struct apply *a, const uint8_t *owner, uint8_t *cut)
{
	int labels = tld_name_labels(owner);
	for (int keep = a->z.apex_labels + 1; keep < labels; keep++) {
		const uint8_t *anc = tld_name_suffix(owner, keep);
		int r = has_ns(a, anc);
		if (r != 0) {
			if (r > 0)
				memcpy(cut, anc, tld_name_len(anc));
			return r;
		}
	}
	return 0;
}

struct below_cut {
	const uint8_t *cut;
	size_t cut_len;
	tld_errbuf *eb;
};

/* Names below a delegation may hold only unsigned A/AAAA glue. */
static int below_cut_check(const uint8_t *owner, const tld_rrset *rs, void *ctx)
{
	struct below_cut *b = ctx;
	if (tld_name_len(owner) == b->cut_len) /* the cut's own RRsets */
		return 0;
	if (is_glue_type(rs->type) && rs->sig_count == 0)
		return 0;
	char cut[TLD_NAME_TXTMAX];
	return rrset_err(b->eb, owner, rs->sig_count > 0 ? TLD_T_RRSIG : rs->type,
	                 "below the delegation %s; only glue (A/AAAA) is allowed",
	                 name_text(b->cut, cut, sizeof(cut)));
}

static int check_cname(struct apply *a, const uint8_t *owner, const struct node *n)
{
	if (!n->has[TLD_T_CNAME])
		return TLD_OK;
	if (n->cname_count > 1)
		return rrset_err(a->eb, owner, TLD_T_CNAME, "more than one CNAME record at a name");
	int bad = node_bad_type(n, cname_companion_ok);
	if (bad >= 0)
		return rrset_err(a->eb, owner, (uint16_t)bad,
		                 "data beside a CNAME (RFC 1034 3.6.2)");
	return TLD_OK;
}

/* A delegation point: only referral types, and only glue below it. */
static int check_cut(struct apply *a, const uint8_t *owner, const struct node *n)
{
	int bad = node_bad_type(n, allowed_at_cut);
	if (bad >= 0)
		return rrset_err(a->eb, owner, (uint16_t)bad,
		                 "data at a delegation point other than NS, DS, NSEC, RRSIG and "
		                 "glue");
	/* The name may have just become a delegation above existing data. */
	struct below_cut b = {owner, tld_name_len(owner), a->eb};
	return tld_writer_foreach_rrset(a->w, &a->z, owner, true, below_cut_check, &b);
}

/* The nearest name from the apex down to owner's parent that owns a DNAME:
 * writes it to dname and returns 1, or 0 when there is none. */
static int enclosing_dname(struct apply *a, const uint8_t *owner, uint8_t *dname)
{
	int labels = tld_name_labels(owner);
	for (int keep = labels - 1; keep >= a->z.apex_labels; keep--) {
		const uint8_t *anc = tld_name_suffix(owner, keep);
		tld_rrset rs;
		int err = tld_writer_rrset_get(a->w, &a->z, anc, TLD_T_DNAME, &rs);
		if (err == TLD_ENOENT)
			continue;
		if (err < 0)
			return tld_errf(a->eb, err, "zone check: %s", tld_strerror(err));
		if (rs.rr_count > 0) {
			memcpy(dname, anc, tld_name_len(anc));
			return 1;
		}
	}
	return 0;
}

/* RFC 6672 2.4: no names below a DNAME (its owner's own RRsets aside). */
static int below_dname_check(const uint8_t *owner, const tld_rrset *rs, void *ctx)
{
	struct below_cut *b = ctx; /* the DNAME's owner in place of a cut */
	if (tld_name_len(owner) == b->cut_len)
		return 0;
	char dn[TLD_NAME_TXTMAX];
	return rrset_err(b->eb, owner, rs->rr_count > 0 ? rs->type : TLD_T_RRSIG,
	                 "below the DNAME at %s", name_text(b->cut, dn, sizeof(dn)));
}

/* The DNAME rules for a changed name: none of its ancestors owns a DNAME,
 * and when it owns one, nothing is below it. */
static int check_dname(struct apply *a, const uint8_t *owner, const struct node *n)
{
	uint8_t dname[TLD_NAME_MAX];
	int err = enclosing_dname(a, owner, dname);
	if (err < 0)
		return err;
	if (err > 0) {
		char dn[TLD_NAME_TXTMAX];
		return rrset_err(a->eb, owner, (uint16_t)node_bad_type(n, no_type),
		                 "below the DNAME at %s", name_text(dname, dn, sizeof(dn)));
	}
	if (!n->has[TLD_T_DNAME])
		return TLD_OK;
	if (n->dname_count > 1)
		return rrset_err(a->eb, owner, TLD_T_DNAME,
		                 "more than one DNAME record at a name (RFC 6672 2.4)");
	struct below_cut b = {owner, tld_name_len(owner), a->eb};
	return tld_writer_foreach_rrset(a->w, &a->z, owner, true, below_dname_check, &b);
}

/* The rules for a changed name below the apex. */
static int check_name(struct apply *a, const uint8_t *owner)
{
	struct node n;
	uint8_t cut[TLD_NAME_MAX];
	int err = node_read(a, owner, &n);
	if (err < 0 || !n.any)
		return err;
	if ((err = enclosing_cut(a, owner, cut)) < 0)
		return err;
	if (err > 0) {
		int bad = node_bad_type(&n, is_glue_type);
		char ct[TLD_NAME_TXTMAX];
		return bad < 0 ? TLD_OK
		               : rrset_err(a->eb, owner, (uint16_t)bad,
		                           "below the delegation %s; only glue (A/AAAA) is allowed",
		                           name_text(cut, ct, sizeof(ct)));
	}
	if (n.has[TLD_T_SOA])
		return rrset_err(a->eb, owner, TLD_T_SOA, "SOA record outside the apex");
	if ((err = check_cname(a, owner, &n)) < 0)
		return err;
	if (n.has[TLD_T_NS] && (err = check_cut(a, owner, &n)) < 0) /* DNAME included */
		return err;
	if (!n.has[TLD_T_NS] && n.has[TLD_T_DS])
		return rrset_err(a->eb, owner, TLD_T_DS,
		                 "DS at a name that is not a delegation point");
	return check_dname(a, owner, &n);
}

/* The SOA serial of the zone as written; TLD_EZONE when it does not parse. */
static int apex_serial(struct apply *a, uint32_t *serial)
{
	tld_rrset rs;
	const uint8_t *p, *rd;
	uint16_t rdlen;
	int err = tld_writer_rrset_get(a->w, &a->z, a->z.apex, TLD_T_SOA, &rs);
	if (err < 0)
		return tld_errf(a->eb, err, "zone check: %s", tld_strerror(err));
	p = rs.rrs;
	if (!tld_rr_next(&p, rs.sigs, NULL, &rd, &rdlen))
		return rrset_err(a->eb, a->z.apex, TLD_T_SOA, "no SOA record at the apex");
	int l1 = tld_name_check(rd, rdlen);
	int l2 = l1 < 0 ? -1 : tld_name_check(rd + l1, rdlen - (size_t)l1);
	if (l2 < 0 || rdlen - (size_t)l1 - (size_t)l2 != 20)
		return rrset_err(a->eb, a->z.apex, TLD_T_SOA, "malformed SOA RDATA");
	*serial = tld_get_be32(rd + l1 + l2);
	return TLD_OK;
}

static int check_apex(struct apply *a, struct node *n)
{
	const uint8_t *apex = a->z.apex;
	int err = node_read(a, apex, n);
	if (err < 0)
		return err;
	if (n->soa_count == 0)
		return rrset_err(a->eb, apex, TLD_T_SOA, "no SOA record at the apex");
	if (n->soa_count > 1)
		return rrset_err(a->eb, apex, TLD_T_SOA, "more than one SOA record");
	uint32_t serial = 0;
	if ((err = apex_serial(a, &serial)) < 0)
		return err;
	if (serial != a->v->to)
		return rrset_err(a->eb, apex, TLD_T_SOA,
		                 "SOA serial %" PRIu32 " is not the delta's serial %" PRIu32,
		                 serial, a->v->to);
	if (!n->has[TLD_T_NS])
		return rrset_err(a->eb, apex, TLD_T_NS, "no NS records at the apex");
	if (n->has[TLD_T_CNAME])
		return rrset_err(a->eb, apex, TLD_T_CNAME, "CNAME at the zone apex");
	if (n->has[TLD_T_DS])
		return rrset_err(a->eb, apex, TLD_T_DS,
		                 "DS at the zone apex (DS belongs in the parent)");
	if (n->has[TLD_T_DNAME]) { /* allowed at the apex, with nothing below it */
		struct below_cut b = {apex, tld_name_len(apex), a->eb};
		return tld_writer_foreach_rrset(a->w, &a->z, apex, true, below_dname_check, &b);
	}
	return TLD_OK;
}

/* Zone flags that follow the apex's types, as import sets them. */
static int update_flags(struct apply *a, const struct node *apex)
{
	tld_zone *z = &a->z;
	z->flags &= ~(TLD_ZONE_NSEC | TLD_ZONE_NSEC3 | TLD_ZONE_SIGNED);
	z->flags |= apex->has[TLD_T_NSEC] ? TLD_ZONE_NSEC : 0;
	z->flags |= apex->has[TLD_T_DNSKEY] ? TLD_ZONE_SIGNED : 0;
	z->nsec3_alg = z->nsec3_flags = z->nsec3_saltlen = 0;
	z->nsec3_iter = 0;
	if (!apex->has[TLD_T_NSEC3PARAM])
		return TLD_OK;
	tld_rrset rs;
	const uint8_t *p, *rd;
	uint16_t rdlen;
	int err = tld_writer_rrset_get(a->w, z, z->apex, TLD_T_NSEC3PARAM, &rs);
	if (err < 0)
		return tld_errf(a->eb, err, "zone check: %s", tld_strerror(err));
	p = rs.rrs;
	if (!tld_rr_next(&p, rs.sigs, NULL, &rd, &rdlen) || rdlen < 5 || rdlen != 5 + rd[4])
		return rrset_err(a->eb, z->apex, TLD_T_NSEC3PARAM, "malformed NSEC3PARAM RDATA");
	z->flags |= TLD_ZONE_NSEC3;
	z->nsec3_alg = rd[0];
	z->nsec3_flags = rd[1];
	z->nsec3_iter = tld_get_be16(rd + 2);
	z->nsec3_saltlen = rd[4];
	memcpy(z->nsec3_salt, rd + 5, rd[4]);
	return TLD_OK;
}

static int check_zone(struct apply *a)
{
	struct node apex;
	int err = check_apex(a, &apex);
	if (err < 0)
		return err;
	owners_sort(&a->own);
	for (size_t i = 0; i < a->own.n; i++) {
		const uint8_t *owner = a->own.arena + a->own.off[i];
		if (tld_name_len(owner) == a->z.apex_len) /* at or below the apex: the apex */
			continue;
		if ((err = check_name(a, owner)) < 0)
			return err;
	}
	return update_flags(a, &apex);
}

/* Appends the delta to the journal and trims it to keep entries. */
static int journal_append(struct apply *a, unsigned keep)
{
	tld_zone *z = &a->z;
	uint64_t seq = z->journal_last + 1;
	int err = tld_journal_put(a->w, z, seq, a->v->buf, a->v->len, a->eb);
	if (err < 0)
		return err;
	z->journal_last = seq;
	if (z->journal_first == 0)
		z->journal_first = seq;
	if (keep > 0 && z->journal_last - z->journal_first + 1 > keep) {
		uint64_t keep_from = z->journal_last - keep + 1;
		if ((err = tld_journal_trim(a->w, z, keep_from, a->eb)) < 0)
			return err;
		z->journal_first = keep_from;
	}
	return TLD_OK;
}

static int apply_header(const tld_zone *z, const tld_delta_view *v, tld_errbuf *eb)
{
	char an[TLD_NAME_TXTMAX], zn[TLD_NAME_TXTMAX];
	name_text(z->apex, zn, sizeof(zn));
	if (!tld_name_equal(v->apex, z->apex))
		return tld_errf(eb, TLD_EINVAL, "delta is for zone %s, not %s",
		                name_text(v->apex, an, sizeof(an)), zn);
	if (v->from != z->serial)
		return tld_errf(eb, TLD_ESERIAL,
		                "zone %s at serial %" PRIu32 ", delta is from %" PRIu32, zn,
		                z->serial, v->from);
	if (!tld_serial_newer(v->to, v->from))
		return tld_errf(eb, TLD_ESERIAL,
		                "zone %s: delta to serial %" PRIu32 " is not newer than %" PRIu32,
		                zn, v->to, v->from);
	return TLD_OK;
}

static int apply_all(struct apply *a, unsigned keep_journal)
{
	tld_delta_op op;
	size_t pos = 0;
	int err = TLD_OK;
	for (a->opno = 1; err == 0 && tld_delta_next(a->v, &pos, &op); a->opno++)
		err = apply_op(a, &op);
	if (err == 0)
		err = edit_flush(a);
	if (err == 0)
		err = check_zone(a);
	if (err < 0)
		return err;
	a->z.serial = a->v->to;
	a->z.updated = (uint64_t)time(NULL);
	if ((err = journal_append(a, keep_journal)) < 0)
		return err;
	return tld_zone_update(a->w, &a->z, a->eb);
}

int tld_delta_apply(tld_writer *w, tld_zone *z, const tld_delta_view *v, unsigned keep_journal,
                    tld_errbuf *eb)
{
	int err = apply_header(z, v, eb);
	if (err < 0)
		return err;
	struct apply a = {.w = w, .z = *z, .v = v, .eb = eb};
	a.e.rrs.hdr = 2;
	a.e.sigs.hdr = 6;
	err = apply_all(&a, keep_journal);
	if (err == 0)
		*z = a.z;
	free(a.e.rrs.p);
	free(a.e.sigs.p);
	free(a.own.arena);
	free(a.own.off);
	free(a.val);
	return err;
}

/* ---- diff ---- */

/* One record of either side of a diff. */
struct rref {
	const uint8_t *rd;
	uint16_t len;
	uint32_t ttl;
};

struct rlist {
	struct rref *r;
	size_t n, cap;
};

struct differ {
	tld_delta *out;
	const tld_zdata *zd;
	size_t i, n; /* next record of zd */
	tld_errbuf *eb;
	struct rlist old_rrs, old_sigs, new_rrs, new_sigs;
};

static int rlist_push(struct rlist *l, const uint8_t *rd, uint16_t len, uint32_t ttl)
{
	if (l->n == l->cap) {
		size_t c = l->cap ? l->cap * 2 : 16;
		struct rref *p = realloc(l->r, c * sizeof(*p));
		if (p == NULL)
			return TLD_ENOMEM;
		l->r = p;
		l->cap = c;
	}
	l->r[l->n++] = (struct rref){rd, len, ttl};
	return TLD_OK;
}

static int rref_cmp(const void *pa, const void *pb)
{
	const struct rref *a = pa, *b = pb;
	return rdata_cmp(a->rd, a->len, b->rd, b->len);
}

/* Fills l from a stored section, sorted (the store keeps them sorted; a
 * value from elsewhere is sorted here rather than trusted). */
static int rlist_stored(struct rlist *l, const uint8_t *p, const uint8_t *end, bool sigs,
                        uint32_t rrset_ttl)
{
	uint32_t ttl = rrset_ttl;
	const uint8_t *rd;
	uint16_t len;
	bool sorted = true;
	l->n = 0;
	while (tld_rr_next(&p, end, sigs ? &ttl : NULL, &rd, &len)) {
		if (rlist_push(l, rd, len, ttl) < 0)
			return TLD_ENOMEM;
		if (l->n > 1 && rref_cmp(&l->r[l->n - 2], &l->r[l->n - 1]) > 0)
			sorted = false;
	}
	if (!sorted)
		qsort(l->r, l->n, sizeof(*l->r), rref_cmp);
	return TLD_OK;
}

static bool same_rrset(const tld_zrec *a, const tld_zrec *b)
{
	return a->type == b->type && a->key_len == b->key_len &&
	       memcmp(a->key, b->key, a->key_len) == 0;
}

/* Fills new_rrs/new_sigs from zd's RRset at d->i and moves d->i past it; the
 * RRs take the RRset's TTL (the first one's, as import stores it). */
static int zd_take(struct differ *d, tld_zrec *first)
{
	tld_zrec r;
	tld_zdata_rec(d->zd, d->i, first);
	d->new_rrs.n = d->new_sigs.n = 0;
	for (; d->i < d->n; d->i++) {
		tld_zdata_rec(d->zd, d->i, &r);
		if (!same_rrset(first, &r))
			break;
		uint32_t ttl = r.is_sig ? r.ttl : first->ttl;
		if (rlist_push(r.is_sig ? &d->new_sigs : &d->new_rrs, r.rdata, r.rdlen, ttl) < 0)
			return TLD_ENOMEM;
	}
	return TLD_OK;
}

/* Emits op for each record of a missing from b (both sorted), or present in
 * b with another TTL when cmp_ttl, or for every record when all. */
static int emit_missing(struct differ *d, uint8_t op, const uint8_t *owner, uint16_t type,
                        const struct rlist *a, const struct rlist *b, bool cmp_ttl, bool all)
{
	size_t j = 0;
	for (size_t i = 0; i < a->n; i++) {
		const struct rref *x = &a->r[i];
		int c = 1;
		while (j < b->n && (c = rref_cmp(&b->r[j], x)) < 0)
			j++;
		bool same = j < b->n && c == 0 && (!cmp_ttl || b->r[j].ttl == x->ttl);
		if (!all && same)
			continue;
		if (tld_delta_add(d->out, op, owner, type, x->ttl, x->rd, x->len) < 0)
			return TLD_ENOMEM;
	}
	return TLD_OK;
}

/* Deletes then adds turning old_* into new_* for (owner, type). */
static int emit_rrset(struct differ *d, const uint8_t *owner, uint16_t type)
{
	const struct rlist *orr = &d->old_rrs, *nrr = &d->new_rrs;
	/* One TTL per RRset: when it changes every RR is deleted and re-added. */
	bool ttl_changed = orr->n > 0 && nrr->n > 0 && orr->r[0].ttl != nrr->r[0].ttl;
	int err;
	if ((err = emit_missing(d, TLD_OP_DEL, owner, type, orr, nrr, false, ttl_changed)) < 0 ||
	    (err = emit_missing(d, TLD_OP_DEL, owner, TLD_T_RRSIG, &d->old_sigs, &d->new_sigs, true,
	                        false)) < 0 ||
	    (err = emit_missing(d, TLD_OP_ADD, owner, type, nrr, orr, false, ttl_changed)) < 0 ||
	    (err = emit_missing(d, TLD_OP_ADD, owner, TLD_T_RRSIG, &d->new_sigs, &d->old_sigs, true,
	                        false)) < 0)
		return err;
	return TLD_OK;
}

/* Adds zd's RRset at d->i (absent from the store). */
static int emit_zd_rrset(struct differ *d)
{
	tld_zrec first;
	uint8_t owner[TLD_NAME_MAX];
	if (zd_take(d, &first) < 0)
		return TLD_ENOMEM;
	if (tld_key_name(first.key, first.key_len, owner) < 0)
		return TLD_ENAME;
	d->old_rrs.n = d->old_sigs.n = 0;
	return emit_rrset(d, owner, first.type);
}

/* (key, type) of a stored RRset against zd's record r: <0, 0, >0. */
static int rrset_order(const uint8_t *key, size_t klen, uint16_t type, const tld_zrec *r)
{
	int c = rdata_cmp(key, klen, r->key, r->key_len);
	if (c != 0)
		return c;
	return type < r->type ? -1 : (type > r->type);
}

/* One stored RRset, in canonical order: first add zd's RRsets that sort
 * before it, then diff it against zd's (or delete it). */
static int diff_stored(const uint8_t *owner, const tld_rrset *rs, void *ctx)
{
	struct differ *d = ctx;
	uint8_t key[TLD_KEY_MAX];
	size_t klen = tld_name_key(owner, key);
	int c = 1, err;
	while (d->i < d->n) {
		tld_zrec r;
		tld_zdata_rec(d->zd, d->i, &r);
		if ((c = rrset_order(key, klen, rs->type, &r)) <= 0)
			break;
		if ((err = emit_zd_rrset(d)) < 0)
			return err;
	}
	if (rlist_stored(&d->old_rrs, rs->rrs, rs->sigs, false, rs->ttl) < 0 ||
	    rlist_stored(&d->old_sigs, rs->sigs, rs->end, true, 0) < 0)
		return TLD_ENOMEM;
	d->new_rrs.n = d->new_sigs.n = 0;
	if (d->i < d->n && c == 0) {
		tld_zrec first;
		if (zd_take(d, &first) < 0)
			return TLD_ENOMEM;
	}
	return emit_rrset(d, owner, rs->type);
}

static int diff_all(tld_writer *w, const tld_zone *z, struct differ *d)
{
	int err = tld_writer_foreach_rrset(w, z, z->apex, true, diff_stored, d);
	while (err == 0 && d->i < d->n)
		err = emit_zd_rrset(d);
	return err;
}

int tld_delta_diff(tld_writer *w, const tld_zone *z, const tld_zdata *zd, tld_delta *out,
                   tld_errbuf *eb)
{
	char an[TLD_NAME_TXTMAX];
	uint32_t serial = tld_zdata_serial(zd);
	memset(out, 0, sizeof(*out));
	if (!tld_name_equal(tld_zdata_apex(zd), z->apex))
		return tld_errf(eb, TLD_EINVAL, "the zone file is not for zone %s",
		                name_text(z->apex, an, sizeof(an)));
	if (!tld_serial_newer(serial, z->serial))
		return tld_errf(eb, TLD_ESERIAL,
		                "zone %s: serial %" PRIu32 " is not newer than the stored %" PRIu32,
		                name_text(z->apex, an, sizeof(an)), serial, z->serial);
	if (tld_delta_init(out, z->apex, z->serial, serial) < 0)
		return tld_errf(eb, TLD_ENOMEM, "out of memory");
	struct differ d = {.out = out, .zd = zd, .n = tld_zdata_count(zd), .eb = eb};
	int err = diff_all(w, z, &d);
	free(d.old_rrs.r);
	free(d.old_sigs.r);
	free(d.new_rrs.r);
	free(d.new_sigs.r);
	if (err < 0) {
		tld_delta_free(out);
		return tld_errf(eb, err, "diff of zone %s: %s", name_text(z->apex, an, sizeof(an)),
		                tld_strerror(err));
	}
	return TLD_OK;
}

/* ---- delta files ---- */

/* A growable text. */
struct text {
	char *p;
	size_t len, cap;
};

static int text_add(struct text *t, const char *s, size_t n)
{
	if (grow((uint8_t **)&t->p, &t->cap, t->len + n + 1) < 0)
		return TLD_ENOMEM;
	memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len] = 0;
	return TLD_OK;
}

/* The file split into two master-file texts, line for line. */
struct split {
	const char *path;
	struct text del, add;
	struct text *open; /* the text a record continued over lines goes to */
	int depth;         /* open parentheses of that record */
	uint8_t apex[TLD_NAME_MAX];
	bool have_apex;
	tld_errbuf *eb;
};

/* Tracks master-file parentheses over s[0..n), skipping quoted strings,
 * escapes and comments. */
static int paren_depth(const char *s, size_t n, int depth)
{
	bool quoted = false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '\\')
			i++;
		else if (c == '"')
			quoted = !quoted;
		else if (quoted)
			continue;
		else if (c == ';')
			break;
		else if (c == '(')
			depth++;
		else if (c == ')' && depth > 0)
			depth--;
	}
	return depth;
}

static size_t skip_blank(const char *s, size_t n, size_t i)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
		i++;
	return i;
}

/* A $ directive: kept in both texts; the first $ORIGIN names the zone when
 * the caller did not. */
static int split_directive(struct split *sp, const char *s, size_t n, unsigned long line)
{
	static const char inc[] = "$INCLUDE", org[] = "$ORIGIN";
	if (n >= sizeof(inc) - 1 && strncasecmp(s, inc, sizeof(inc) - 1) == 0)
		return tld_errf(sp->eb, TLD_ESYNTAX,
		                "%s:%lu: $INCLUDE is not allowed in a delta file", sp->path, line);
	if (!sp->have_apex && n > sizeof(org) - 1 && strncasecmp(s, org, sizeof(org) - 1) == 0 &&
	    (s[sizeof(org) - 1] == ' ' || s[sizeof(org) - 1] == '\t')) {
		size_t b = skip_blank(s, n, sizeof(org) - 1), e = b;
		while (e < n && s[e] != ' ' && s[e] != '\t' && s[e] != ';' && s[e] != '\r')
			e++;
		char name[TLD_NAME_TXTMAX];
		if (e - b >= sizeof(name))
			return tld_errf(sp->eb, TLD_ESYNTAX, "%s:%lu: $ORIGIN too long", sp->path,
			                line);
		memcpy(name, s + b, e - b);
		name[e - b] = 0;
		if (tld_name_from_text(name, sp->apex) < 0)
			return tld_errf(sp->eb, TLD_ESYNTAX, "%s:%lu: bad $ORIGIN name", sp->path,
			                line);
		sp->have_apex = true;
	}
	if (text_add(&sp->del, s, n) < 0 || text_add(&sp->del, "\n", 1) < 0 ||
	    text_add(&sp->add, s, n) < 0 || text_add(&sp->add, "\n", 1) < 0)
		return tld_errf(sp->eb, TLD_ENOMEM, "out of memory");
	return TLD_OK;
}

/* Puts s[0..n) as the next line of one text and an empty line in the other. */
static int split_put(struct split *sp, struct text *to, const char *s, size_t n)
{
	struct text *other = to == &sp->del ? &sp->add : &sp->del;
	if (text_add(to, s, n) < 0 || text_add(to, "\n", 1) < 0 || text_add(other, "\n", 1) < 0)
		return tld_errf(sp->eb, TLD_ENOMEM, "out of memory");
	return TLD_OK;
}

static int split_line(struct split *sp, const char *s, size_t n, unsigned long line)
{
	if (sp->depth > 0) { /* inside a record's parentheses */
		sp->depth = paren_depth(s, n, sp->depth);
		return split_put(sp, sp->open, s, n);
	}
	size_t i = skip_blank(s, n, 0);
	if (i == n || s[i] == ';') {
		if (text_add(&sp->del, "\n", 1) < 0 || text_add(&sp->add, "\n", 1) < 0)
			return tld_errf(sp->eb, TLD_ENOMEM, "out of memory");
		return TLD_OK;
	}
	if (s[i] == '$')
		return split_directive(sp, s + i, n - i, line);
	if (s[i] != '+' && s[i] != '-')
		return tld_errf(sp->eb, TLD_ESYNTAX,
		                "%s:%lu: expected a record after '+' or '-', a $ directive or a "
		                "comment",
		                sp->path, line);
	sp->open = s[i] == '-' ? &sp->del : &sp->add;
	/* The record's first field is always its owner: no inherited owners. */
	size_t b = skip_blank(s, n, i + 1);
	if (b == n || s[b] == ';')
		return tld_errf(sp->eb, TLD_ESYNTAX, "%s:%lu: '%c' without a record", sp->path,
		                line, s[i]);
	sp->depth = paren_depth(s + b, n - b, 0);
	return split_put(sp, sp->open, s + b, n - b);
}

static int split_text(struct split *sp, const char *buf, size_t len)
{
	unsigned long line = 1;
	for (size_t i = 0; i < len; line++) {
		const char *nl = memchr(buf + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (buf + i)) : len - i;
		if (memchr(buf + i, 0, n) != NULL)
			return tld_errf(sp->eb, TLD_ESYNTAX, "%s:%lu: NUL byte", sp->path, line);
		int err = split_line(sp, buf + i, n, line);
		if (err < 0)
			return err;
		i += n + 1;
	}
	return TLD_OK;
}

/* Scanning one of the texts into operations. */
struct scan {
	const char *path;
	const uint8_t *apex;
	uint8_t op;
	tld_delta *out;
	tld_errbuf *eb;
	int err;
};

static void scan_fail(zs_scanner_t *s, struct scan *sc, int err)
{
	sc->err = err;
	s->state = ZS_STATE_STOP;
}

static void scan_record(zs_scanner_t *s)
{
	struct scan *sc = s->process.data;
	char on[TLD_NAME_TXTMAX], an[TLD_NAME_TXTMAX];
	int err = TLD_OK;
	if (s->r_class != TLD_C_IN)
		err = tld_errf(sc->eb, TLD_EZONE,
		               "%s:%" PRIu64 ": class %u is not supported (only IN)", sc->path,
		               s->line_counter, s->r_class);
	else if (!tld_name_is_below(s->r_owner, sc->apex))
		err = tld_errf(sc->eb, TLD_EZONE, "%s:%" PRIu64 ": %s is outside the zone %s",
		               sc->path, s->line_counter, name_text(s->r_owner, on, sizeof(on)),
		               name_text(sc->apex, an, sizeof(an)));
	else if (tld_rdata_check(s->r_type, s->r_data, s->r_data_length) < 0)
		err = tld_errf(sc->eb, TLD_EZONE,
		               "%s:%" PRIu64 ": malformed %s RDATA " TLD_RDATA_CHECK_WHY, sc->path,
		               s->line_counter, type_text(s->r_type, an, sizeof(an)));
	else if (tld_delta_add(sc->out, sc->op, s->r_owner, s->r_type, s->r_ttl, s->r_data,
	                       (uint16_t)s->r_data_length) < 0)
		err = tld_errf(sc->eb, TLD_ENOMEM, "out of memory");
	if (err < 0)
		scan_fail(s, sc, err);
}

static void scan_error(zs_scanner_t *s)
{
	struct scan *sc = s->process.data;
	if (sc->err == 0)
		sc->err = tld_errf(sc->eb, TLD_ESYNTAX, "%s:%" PRIu64 ": %s", sc->path,
		                   s->line_counter, zs_strerror(s->error.code));
	s->state = ZS_STATE_STOP;
}

static int scan_text(struct scan *sc, const char *origin, const struct text *t)
{
	zs_scanner_t *s = malloc(sizeof(*s));
	if (s == NULL)
		return tld_errf(sc->eb, TLD_ENOMEM, "out of memory");
	int err = TLD_OK;
	if (zs_init(s, origin, TLD_C_IN, 3600) != 0) {
		err = tld_errf(sc->eb, TLD_EINVAL, "zone scanner: %s", zs_strerror(s->error.code));
		free(s);
		return err;
	}
	static const char empty[] = "";
	if (zs_set_input_string(s, t->p ? t->p : empty, t->len) != 0 ||
	    zs_set_processing(s, scan_record, scan_error, sc) != 0)
		err = tld_errf(sc->eb, TLD_EINVAL, "zone scanner: %s", zs_strerror(s->error.code));
	else if (zs_parse_all(s) != 0 && sc->err == 0)
		err = tld_errf(sc->eb, TLD_ESYNTAX, "%s:%" PRIu64 ": %s", sc->path, s->line_counter,
		               zs_strerror(s->error.code));
	zs_deinit(s);
	free(s);
	return sc->err != 0 ? sc->err : err;
}

static int read_all(const char *path, char **buf, size_t *len, tld_errbuf *eb)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return tld_errf(eb, TLD_EIO, "%s: cannot open: %s", path, strerror(errno));
	struct text t = {0};
	char chunk[65536];
	size_t n;
	int err = TLD_OK;
	while (err == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		err = text_add(&t, chunk, n);
	if (err == 0 && ferror(f))
		err = tld_errf(eb, TLD_EIO, "%s: read error", path);
	else if (err < 0)
		err = tld_errf(eb, err, "out of memory");
	fclose(f);
	if (err < 0) {
		free(t.p);
		return err;
	}
	*buf = t.p;
	*len = t.len;
	return TLD_OK;
}

static int read_split(struct split *sp, const uint8_t *origin, tld_delta *out)
{
	char otext[TLD_NAME_TXTMAX] = ".";
	if (origin != NULL && tld_name_to_text(origin, otext, sizeof(otext)) < 0)
		return tld_errf(sp->eb, TLD_ENAME, "origin too long");
	if (!sp->have_apex)
		return tld_errf(sp->eb, TLD_EZONE,
		                "%s: no zone origin ($ORIGIN or an origin given)", sp->path);
	if (tld_delta_init(out, sp->apex, 0, 0) < 0)
		return tld_errf(sp->eb, TLD_ENOMEM, "out of memory");
	struct scan sc = {sp->path, sp->apex, TLD_OP_DEL, out, sp->eb, 0};
	int err = scan_text(&sc, otext, &sp->del);
	if (err == 0) {
		sc.op = TLD_OP_ADD;
		err = scan_text(&sc, otext, &sp->add);
	}
	if (err < 0)
		tld_delta_free(out);
	return err;
}

int tld_delta_read_file(const char *path, const uint8_t *origin, tld_delta *out, tld_errbuf *eb)
{
	char *buf = NULL;
	size_t len = 0;
	memset(out, 0, sizeof(*out));
	int err = read_all(path, &buf, &len, eb);
	if (err < 0)
		return err;
	struct split sp = {.path = path, .eb = eb};
	if (origin != NULL) {
		memcpy(sp.apex, origin, tld_name_len(origin));
		sp.have_apex = true;
	}
	err = split_text(&sp, buf, len);
	if (err == 0)
		err = read_split(&sp, origin, out);
	free(buf);
	free(sp.del.p);
	free(sp.add.p);
	return err;
}
