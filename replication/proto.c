/* proto.c - bodies of the replication messages: heartbeat, requests, replies, reports. */
#include "proto.h"

#include <stdlib.h>
#include <string.h>

/* ---- output buffer ---- */

uint8_t *tld_w_room(tld_wbuf *b, size_t n)
{
	if (b->oom)
		return NULL;
	if (n > b->cap - b->len) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap - b->len < n) {
			if (cap > SIZE_MAX / 2) {
				b->oom = true;
				return NULL;
			}
			cap *= 2;
		}
		uint8_t *p = realloc(b->p, cap);
		if (p == NULL) {
			b->oom = true;
			return NULL;
		}
		b->p = p;
		b->cap = cap;
	}
	uint8_t *at = b->p + b->len;
	b->len += n;
	return at;
}

void tld_w_u8(tld_wbuf *b, uint8_t v)
{
	uint8_t *p = tld_w_room(b, 1);
	if (p != NULL)
		*p = v;
}

void tld_w_u16(tld_wbuf *b, uint16_t v)
{
	uint8_t *p = tld_w_room(b, 2);
	if (p != NULL)
		tld_put_be16(p, v);
}

void tld_w_u32(tld_wbuf *b, uint32_t v)
{
	uint8_t *p = tld_w_room(b, 4);
	if (p != NULL)
		tld_put_be32(p, v);
}

void tld_w_u64(tld_wbuf *b, uint64_t v)
{
	uint8_t *p = tld_w_room(b, 8);
	if (p != NULL)
		tld_put_be64(p, v);
}

void tld_w_bytes(tld_wbuf *b, const void *src, size_t n)
{
	uint8_t *p = tld_w_room(b, n);
	if (p != NULL && n > 0)
		memcpy(p, src, n);
}

void tld_w_name(tld_wbuf *b, const uint8_t *name)
{
	tld_w_bytes(b, name, tld_name_len(name));
}

void tld_w_str(tld_wbuf *b, const char *text)
{
	size_t n = strlen(text);
	if (n > 255)
		n = 255;
	tld_w_u8(b, (uint8_t)n);
	tld_w_bytes(b, text, n);
}

void tld_wbuf_free(tld_wbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* ---- reader ---- */

const uint8_t *tld_r_bytes(tld_rbuf *r, size_t n)
{
	if (r->bad || n > r->len - r->pos) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p + r->pos;
	r->pos += n;
	return p;
}

uint8_t tld_r_u8(tld_rbuf *r)
{
	const uint8_t *p = tld_r_bytes(r, 1);
	return p != NULL ? *p : 0;
}

uint16_t tld_r_u16(tld_rbuf *r)
{
	const uint8_t *p = tld_r_bytes(r, 2);
	return p != NULL ? tld_get_be16(p) : 0;
}

uint32_t tld_r_u32(tld_rbuf *r)
{
	const uint8_t *p = tld_r_bytes(r, 4);
	return p != NULL ? tld_get_be32(p) : 0;
}

uint64_t tld_r_u64(tld_rbuf *r)
{
	const uint8_t *p = tld_r_bytes(r, 8);
	return p != NULL ? tld_get_be64(p) : 0;
}

const uint8_t *tld_r_name(tld_rbuf *r)
{
	if (r->bad)
		return NULL;
	int n = tld_name_check(r->p + r->pos, r->len - r->pos);
	if (n < 0) {
		r->bad = true;
		return NULL;
	}
	return tld_r_bytes(r, (size_t)n);
}

void tld_r_str(tld_rbuf *r, char *out)
{
	size_t n = tld_r_u8(r);
	const uint8_t *p = tld_r_bytes(r, n);
	if (p == NULL)
		n = 0;
	else
		memcpy(out, p, n);
	out[n] = 0;
}

/* ---- heartbeat ---- */

int tld_heartbeat_next(const uint8_t *body, size_t len, size_t *pos, const uint8_t **apex,
                       uint32_t *serial)
{
	if (len < 2)
		return TLD_EMALFORMED;
	if (*pos == 0)
		*pos = 2;
	if (*pos == len)
		return 0;
	tld_rbuf r = tld_rbuf_make(body, len);
	r.pos = *pos;
	*apex = tld_r_name(&r);
	*serial = tld_r_u32(&r);
	if (r.bad)
		return TLD_EMALFORMED;
	*pos = r.pos;
	return 1;
}

/* ---- replies ---- */

void tld_reply_begin(tld_wbuf *b, uint64_t sender, uint64_t seq, uint8_t type, int status)
{
	tld_w_u64(b, sender);
	tld_w_u64(b, seq);
	tld_w_u8(b, type);
	tld_w_u32(b, (uint32_t)status);
}

int tld_reply_parse(const uint8_t *body, size_t len, tld_reply *out)
{
	tld_rbuf r = tld_rbuf_make(body, len);
	out->req_sender = tld_r_u64(&r);
	out->req_seq = tld_r_u64(&r);
	out->req_type = tld_r_u8(&r);
	out->status = (int)tld_r_u32(&r);
	out->text[0] = 0;
	if (!r.bad && out->status < 0) {
		size_t n = tld_r_u16(&r);
		const uint8_t *t = tld_r_bytes(&r, n);
		if (t != NULL) {
			if (n >= sizeof(out->text))
				n = sizeof(out->text) - 1;
			memcpy(out->text, t, n);
			out->text[n] = 0;
		}
	}
	if (r.bad || out->status < TLD_ERR_MIN - 100 || out->status > 0)
		return TLD_EMALFORMED;
	out->rest = r;
	return TLD_OK;
}

/* ---- reports ---- */

void tld_report_write(tld_wbuf *b, const tld_report *rep)
{
	tld_w_str(b, rep->name);
	tld_w_u8(b, rep->role);
	tld_w_u8(b, rep->in_sync);
	unsigned nc = rep->ncounters <= TLD_REPORT_COUNTERS ? rep->ncounters : TLD_REPORT_COUNTERS;
	tld_w_u8(b, (uint8_t)nc);
	for (unsigned i = 0; i < nc; i++)
		tld_w_u64(b, rep->counters[i]);
	unsigned nz = rep->nzones <= TLD_REPORT_ZONES ? rep->nzones : TLD_REPORT_ZONES;
	tld_w_u16(b, (uint16_t)nz);
	for (unsigned i = 0; i < nz; i++) {
		const tld_report_zone *z = &rep->zones[i];
		tld_w_name(b, z->apex);
		tld_w_u32(b, z->serial);
		tld_w_u32(b, z->primary_serial);
		tld_w_u32(b, z->lag_ms);
		tld_w_u64(b, z->applied_ms);
	}
}

void tld_report_read(tld_rbuf *r, tld_report *rep)
{
	memset(rep, 0, sizeof(*rep));
	tld_r_str(r, rep->name);
	rep->role = tld_r_u8(r);
	rep->in_sync = tld_r_u8(r);
	unsigned nc = tld_r_u8(r);
	for (unsigned i = 0; i < nc; i++) {
		uint64_t v = tld_r_u64(r);
		if (i < TLD_REPORT_COUNTERS)
			rep->counters[i] = v;
	}
	rep->ncounters = (uint8_t)(nc < TLD_REPORT_COUNTERS ? nc : TLD_REPORT_COUNTERS);
	unsigned nz = tld_r_u16(r);
	for (unsigned i = 0; i < nz && !r->bad; i++) {
		tld_report_zone z;
		const uint8_t *apex = tld_r_name(r);
		z.serial = tld_r_u32(r);
		z.primary_serial = tld_r_u32(r);
		z.lag_ms = tld_r_u32(r);
		z.applied_ms = tld_r_u64(r);
		if (apex == NULL || i >= TLD_REPORT_ZONES)
			continue;
		memcpy(z.apex, apex, tld_name_len(apex));
		rep->zones[rep->nzones++] = z;
	}
}
