/* wire.c - DNS wire format: query parsing and response building; no state, no allocation. */
#include "wire.h"

#include "../common/err.h"
#include "rrtype.h"

#include <string.h>

static inline uint8_t fold(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

static inline uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* ---- Reading names and records ---- */

/* The walk behind tld_wire_name_read(); see the header for the rules. */
static int name_walk(const uint8_t *pkt, size_t len, size_t off, uint8_t *out, size_t *next_off)
{
	size_t pos = off, seg = off, wl = 0, end = 0;
	int hops = 0;
	for (;;) {
		if (pos >= len)
			return TLD_EMALFORMED;
		uint8_t b = pkt[pos];
		if (b == 0)
			break;
		if (b >= 0xc0) {
			if (pos + 1 >= len)
				return TLD_EMALFORMED;
			size_t t = (size_t)(b & 0x3f) << 8 | pkt[pos + 1];
			if (t >= seg || ++hops > TLD_PTR_HOPS)
				return TLD_EMALFORMED;
			if (end == 0)
				end = pos + 2;
			pos = seg = t;
			continue;
		}
		if (b > TLD_LABEL_MAX)
			return TLD_EMALFORMED;
		/* The label, then at least one more byte, must fit; so must the
		 * name with its root label. */
		if (b >= len - pos - 1 || wl + 1 + b >= TLD_NAME_MAX)
			return TLD_EMALFORMED;
		if (out != NULL)
			memcpy(out + wl, pkt + pos, 1 + (size_t)b);
		wl += 1 + (size_t)b;
		pos += 1 + (size_t)b;
	}
	if (out != NULL)
		out[wl] = 0;
	if (end == 0)
		end = pos + 1;
	if (next_off != NULL)
		*next_off = end;
	return (int)wl + 1;
}

int tld_wire_name_read(const uint8_t *pkt, size_t len, size_t off, uint8_t *out, size_t *next_off)
{
	if (len > TLD_MSG_MAX)
		len = TLD_MSG_MAX;
	return name_walk(pkt, len, off, out, next_off);
}

/* Reads one RR's fixed fields after its owner; *pos moves past the RDATA. */
static int rr_walk(const uint8_t *pkt, size_t len, size_t *pos, uint8_t *owner, int *owner_len,
                   uint16_t *type, uint16_t *rclass, uint32_t *ttl, size_t *rdata_off,
                   uint16_t *rdlen)
{
	size_t p;
	int wl = name_walk(pkt, len, *pos, owner, &p);
	if (wl < 0)
		return wl;
	if (len - p < 10)
		return TLD_EMALFORMED;
	*type = get16(pkt + p);
	*rclass = get16(pkt + p + 2);
	*ttl = get32(pkt + p + 4);
	*rdlen = get16(pkt + p + 8);
	p += 10;
	if (*rdlen > len - p)
		return TLD_EMALFORMED;
	*rdata_off = p;
	*pos = p + *rdlen;
	*owner_len = wl;
	return 0;
}

int tld_wire_rr_read(const uint8_t *pkt, size_t len, size_t off, tld_wire_rr *rr, size_t *next_off)
{
	if (len > TLD_MSG_MAX)
		len = TLD_MSG_MAX;
	size_t pos = off, rdata_off;
	int owner_len;
	int rc = rr_walk(pkt, len, &pos, rr->owner, &owner_len, &rr->type, &rr->rclass, &rr->ttl,
	                 &rdata_off, &rr->rdlen);
	if (rc < 0)
		return rc;
	rr->owner_off = (uint16_t)off;
	rr->rdata_off = (uint16_t)rdata_off;
	if (next_off != NULL)
		*next_off = pos;
	return 0;
}

/* ---- Query parsing ---- */

const char *tld_parse_why_text(int why)
{
	switch (why) {
	case TLD_WHY_NONE:
		return "well-formed";
	case TLD_WHY_SHORT:
		return "shorter than a header";
	case TLD_WHY_QR:
		return "QR set (a response)";
	case TLD_WHY_QDCOUNT:
		return "qdcount is not 1";
	case TLD_WHY_QNAME:
		return "malformed qname";
	case TLD_WHY_QNAME_PTR:
		return "compression pointer in qname";
	case TLD_WHY_QTRUNC:
		return "question truncated";
	case TLD_WHY_COUNT:
		return "fewer records than counted";
	case TLD_WHY_RR:
		return "malformed record";
	case TLD_WHY_OPT_SECTION:
		return "OPT outside the additional section";
	case TLD_WHY_OPT_DUP:
		return "more than one OPT";
	case TLD_WHY_OPT_OWNER:
		return "OPT owner not root";
	case TLD_WHY_OPT_OPTION:
		return "malformed EDNS option";
	case TLD_WHY_COOKIE:
		return "malformed COOKIE option";
	case TLD_WHY_TSIG:
		return "TSIG not last";
	default:
		return "unknown";
	}
}

static int formerr(tld_query *q, int why)
{
	q->why = (uint8_t)why;
	return TLD_PARSE_FORMERR;
}

/* The QNAME at offset 12: no pointers, copied as is and lower-cased. */
static int parse_question(const uint8_t *pkt, size_t len, tld_query *q)
{
	uint8_t *qn = q->qname, *lc = q->qname_lc;
	size_t pos = TLD_HDR_LEN, wl = 0;
	int labels = 0;
	for (;;) {
		if (pos >= len)
			return TLD_WHY_QNAME;
		uint8_t b = pkt[pos];
		if (b == 0)
			break;
		if (b > TLD_LABEL_MAX)
			return b >= 0xc0 ? TLD_WHY_QNAME_PTR : TLD_WHY_QNAME;
		if (b >= len - pos - 1 || wl + 1 + b >= TLD_NAME_MAX)
			return TLD_WHY_QNAME;
		const uint8_t *s = pkt + pos;
		qn[wl] = lc[wl] = b;
		for (size_t i = 1; i <= b; i++) {
			qn[wl + i] = s[i];
			lc[wl + i] = fold(s[i]);
		}
		wl += 1 + (size_t)b;
		pos += 1 + (size_t)b;
		labels++;
	}
	qn[wl] = lc[wl] = 0;
	pos++;
	if (len - pos < 4)
		return TLD_WHY_QTRUNC;
	q->qname_off = TLD_HDR_LEN;
	q->qname_wirelen = (uint16_t)(wl + 1);
	q->qname_labels = (uint8_t)labels;
	q->qtype = get16(pkt + pos);
	q->qclass = get16(pkt + pos + 2);
	q->question_end = (uint16_t)(pos + 4);
	q->has_question = true;
	return TLD_WHY_NONE;
}

/* The OPT RR whose RDATA is pkt[rd .. rd + rdlen). */
static int parse_opt(const uint8_t *pkt, size_t rd, uint16_t rdlen, tld_query *q)
{
	size_t o = rd, end = rd + rdlen;
	while (o < end) {
		if (end - o < 4)
			return TLD_WHY_OPT_OPTION;
		uint16_t code = get16(pkt + o), olen = get16(pkt + o + 2);
		o += 4;
		if (olen > end - o)
			return TLD_WHY_OPT_OPTION;
		q->opt_count++;
		if (code == TLD_EDNS_NSID) {
			q->nsid = true;
		} else if (code == TLD_EDNS_TCP_KEEPALIVE) {
			q->tcp_keepalive = true;
		} else if (code == TLD_EDNS_COOKIE && q->cookie_len == 0) {
			if (olen != 8 && (olen < 16 || olen > 40))
				return TLD_WHY_COOKIE;
			q->cookie_off = (uint16_t)o;
			q->cookie_len = (uint8_t)olen;
		}
		o += olen;
	}
	return TLD_WHY_NONE;
}

int tld_query_parse(const uint8_t *pkt, size_t len, tld_query *q)
{
	memset(q, 0, offsetof(tld_query, qname));
	if (len > TLD_MSG_MAX)
		len = TLD_MSG_MAX;
	q->pkt = pkt;
	q->len = (uint16_t)len;
	if (len < TLD_HDR_LEN) {
		q->why = TLD_WHY_SHORT;
		return TLD_PARSE_DROP;
	}
	uint16_t fl = get16(pkt + 2);
	q->id = get16(pkt);
	q->flags = fl;
	q->opcode = (uint8_t)((fl >> 11) & 0xf);
	q->rcode = (uint8_t)(fl & 0xf);
	q->qr = (fl & TLD_WIRE_QR) != 0;
	q->aa = (fl & TLD_WIRE_AA) != 0;
	q->tc = (fl & TLD_WIRE_TC) != 0;
	q->rd = (fl & TLD_WIRE_RD) != 0;
	q->ra = (fl & TLD_WIRE_RA) != 0;
	q->z = (fl & TLD_WIRE_Z) != 0;
	q->ad = (fl & TLD_WIRE_AD) != 0;
	q->cd = (fl & TLD_WIRE_CD) != 0;
	q->qdcount = get16(pkt + 4);
	q->ancount = get16(pkt + 6);
	q->nscount = get16(pkt + 8);
	q->arcount = get16(pkt + 10);
	if (q->qr) {
		q->why = TLD_WHY_QR;
		return TLD_PARSE_DROP;
	}
	int why = TLD_WHY_NONE;
	size_t pos = TLD_HDR_LEN;
	if (q->qdcount == 1) {
		if ((why = parse_question(pkt, len, q)) != TLD_WHY_NONE)
			return formerr(q, why);
		pos = q->question_end;
	} else {
		/* No question, or several: none is echoed, but the records are
		 * still read so that the FORMERR carries EDNS when the query did
		 * (RFC 6891 7). */
		q->question_end = TLD_HDR_LEN;
		for (unsigned i = 0; i < q->qdcount; i++) {
			size_t after;
			if (name_walk(pkt, len, pos, NULL, &after) < 0 || len - after < 4)
				return formerr(q, TLD_WHY_QDCOUNT);
			pos = after + 4;
		}
	}
	const unsigned counts[4] = {0, q->ancount, q->nscount, q->arcount};
	for (int sec = TLD_SEC_ANSWER; sec <= TLD_SEC_ADDITIONAL; sec++) {
		for (unsigned i = 0; i < counts[sec]; i++) {
			if (pos >= len)
				return formerr(q, TLD_WHY_COUNT);
			size_t rr_off = pos, rd;
			uint16_t type, rclass, rdlen;
			uint32_t ttl;
			int owner_len;
			if (rr_walk(pkt, len, &pos, NULL, &owner_len, &type, &rclass, &ttl, &rd,
			            &rdlen) < 0)
				return formerr(q, TLD_WHY_RR);
			if (type == TLD_T_OPT) {
				if (sec != TLD_SEC_ADDITIONAL)
					return formerr(q, TLD_WHY_OPT_SECTION);
				if (q->has_opt)
					return formerr(q, TLD_WHY_OPT_DUP);
				if (owner_len != 1)
					return formerr(q, TLD_WHY_OPT_OWNER);
				q->has_opt = true;
				q->edns_udp = rclass;
				q->edns_ext_rcode = (uint8_t)(ttl >> 24);
				q->edns_version = (uint8_t)(ttl >> 16);
				q->edns_flags = (uint16_t)ttl;
				q->edns_do = (ttl & TLD_EDNS_DO) != 0;
				q->opt_off = (uint16_t)rr_off;
				q->opt_rdlen = rdlen;
				why = parse_opt(pkt, rd, rdlen, q);
				if (why != TLD_WHY_NONE)
					return formerr(q, why);
			} else if (type == TLD_T_TSIG) {
				if (sec != TLD_SEC_ADDITIONAL || i + 1 != counts[sec])
					return formerr(q, TLD_WHY_TSIG);
				q->has_tsig = true;
				q->tsig_off = (uint16_t)rr_off;
			}
		}
	}
	q->msg_end = (uint16_t)pos;
	q->trailing = pos < len;
	/* No question: FORMERR, which a server with cookies turns into an answer
	 * to a COOKIE-only query (RFC 7873 5.4). Several: FORMERR. */
	return q->qdcount != 1 ? formerr(q, TLD_WHY_QDCOUNT) : TLD_PARSE_OK;
}

size_t tld_query_udp_max(const tld_query *q, size_t our_max)
{
	if (our_max < TLD_UDP_MIN)
		our_max = TLD_UDP_MIN;
	if (our_max > TLD_MSG_MAX)
		our_max = TLD_MSG_MAX;
	if (!q->has_opt)
		return TLD_UDP_MIN;
	size_t c = q->edns_udp < TLD_UDP_MIN ? TLD_UDP_MIN : q->edns_udp;
	return c < our_max ? c : our_max;
}

/* ---- Response building ---- */

/* A valid uncompressed name split into labels. */
typedef struct name_info {
	size_t wirelen;
	int n;
	uint8_t lo[TLD_LABELS_MAX]; /* offset of each label */
} name_info;

/* Splits name (at most maxlen bytes readable) into labels; TLD_ENAME if it
 * is not a valid uncompressed name within maxlen. */
static int name_split(const uint8_t *name, size_t maxlen, name_info *ni)
{
	size_t pos = 0;
	int n = 0;
	for (;;) {
		if (pos >= maxlen)
			return TLD_ENAME;
		uint8_t b = name[pos];
		if (b == 0)
			break;
		if (b > TLD_LABEL_MAX || pos + 1 + b >= TLD_NAME_MAX)
			return TLD_ENAME;
		ni->lo[n++] = (uint8_t)pos;
		pos += 1 + (size_t)b;
	}
	ni->n = n;
	ni->wirelen = pos + 1;
	return 0;
}

/* Case-insensitive equality of the name written at buf[off] (compressed,
 * written by us or validated by the parser) and the uncompressed name c of
 * the same length and label count. */
static bool buf_name_eq(const uint8_t *buf, size_t off, const uint8_t *c)
{
	for (;;) {
		uint8_t b = buf[off];
		if (b >= 0xc0) {
			off = (size_t)(b & 0x3f) << 8 | buf[off + 1];
			continue;
		}
		if (b != *c)
			return false;
		if (b == 0)
			return true;
		const uint8_t *l = buf + off;
		for (size_t i = 1; i <= b; i++)
			if (fold(l[i]) != fold(c[i]))
				return false;
		off += 1 + (size_t)b;
		c += 1 + (size_t)b;
	}
}

/* Records the labels [0, upto) of a name just written literally at off. */
static void comp_add(tld_resp *r, size_t off, const name_info *ni, int upto)
{
	for (int j = 0; j < upto && r->ncomp < TLD_COMP_MAX; j++) {
		size_t o = off + ni->lo[j];
		if (o >= 0x4000)
			return;
		tld_comp_entry *e = &r->comp[r->ncomp++];
		e->off = (uint16_t)o;
		e->wirelen = (uint8_t)(ni->wirelen - ni->lo[j]);
		e->labels = (uint8_t)(ni->n - j);
	}
}

/* Writes name (at most maxlen bytes readable) at r->len, compressed, not
 * past limit. Returns its uncompressed length, TLD_ENAME or TLD_ESPACE. */
static int put_name(tld_resp *r, const uint8_t *name, size_t maxlen, size_t limit)
{
	name_info ni;
	if (name_split(name, maxlen, &ni) < 0)
		return TLD_ENAME;
	/* Longest suffix already written: labels [i, n) at hit. */
	const tld_comp_entry *hit = NULL;
	int i;
	for (i = 0; i < ni.n; i++) {
		size_t wl = ni.wirelen - ni.lo[i];
		int nl = ni.n - i;
		for (unsigned k = 0; k < r->ncomp && hit == NULL; k++) {
			const tld_comp_entry *e = &r->comp[k];
			if (e->wirelen == wl && e->labels == nl &&
			    buf_name_eq(r->buf, e->off, name + ni.lo[i]))
				hit = e;
		}
		if (hit != NULL)
			break;
	}
	/* Labels [0, i) are written literally, then a pointer or the root. */
	size_t lit = hit != NULL ? ni.lo[i] : ni.wirelen;
	size_t need = hit != NULL ? lit + 2 : lit;
	if (need > limit - r->len)
		return TLD_ESPACE;
	uint8_t *p = r->buf + r->len;
	memcpy(p, name, lit);
	if (hit != NULL)
		put16(p + lit, 0xc000u | hit->off);
	comp_add(r, r->len, &ni, i);
	r->len += need;
	return (int)ni.wirelen;
}

/* Appends one RR without touching counts; the caller rolls back on error. */
static int put_rr(tld_resp *r, const uint8_t *owner, uint16_t type, uint16_t rclass, uint32_t ttl,
                  const uint8_t *rd, size_t rdlen, size_t limit)
{
	int rc = put_name(r, owner, TLD_NAME_MAX, limit);
	if (rc < 0)
		return rc;
	if (limit - r->len < 10)
		return TLD_ESPACE;
	uint8_t *p = r->buf + r->len;
	put16(p, type);
	put16(p + 2, rclass);
	put32(p + 4, ttl);
	size_t rdlen_off = r->len + 8;
	r->len += 10;
	size_t used = 0;
	switch (type) {
	case TLD_T_NS:
	case TLD_T_CNAME:
	case TLD_T_PTR:
	case TLD_T_SOA:
	case TLD_T_MX:
		if (rdlen == 0)
			return TLD_ERDATA;
		break;
	default:
		break;
	}
	switch (type) {
	case TLD_T_MX:
		if (rdlen < 3)
			return TLD_ERDATA;
		if (limit - r->len < 2)
			return TLD_ESPACE;
		memcpy(r->buf + r->len, rd, 2);
		r->len += 2;
		used = 2;
		/* fall through */
	case TLD_T_NS:
	case TLD_T_CNAME:
	case TLD_T_PTR:
	case TLD_T_SOA:
		rc = put_name(r, rd + used, rdlen - used, limit);
		if (rc < 0)
			return rc == TLD_ENAME ? TLD_ERDATA : rc;
		used += (size_t)rc;
		if (type == TLD_T_SOA) {
			rc = put_name(r, rd + used, rdlen - used, limit);
			if (rc < 0)
				return rc == TLD_ENAME ? TLD_ERDATA : rc;
			used += (size_t)rc;
			if (rdlen - used != 20)
				return TLD_ERDATA;
			if (limit - r->len < 20)
				return TLD_ESPACE;
			memcpy(r->buf + r->len, rd + used, 20);
			r->len += 20;
			used += 20;
		}
		if (used != rdlen)
			return TLD_ERDATA;
		break;
	default:
		if (rdlen > limit - r->len)
			return TLD_ESPACE;
		if (rdlen > 0)
			memcpy(r->buf + r->len, rd, rdlen);
		r->len += rdlen;
	}
	put16(r->buf + rdlen_off, (unsigned)(r->len - rdlen_off - 2));
	return 0;
}

static size_t rr_limit(const tld_resp *r)
{
	return r->cap - r->reserve;
}

static bool section_ok(const tld_resp *r, int section)
{
	return section >= TLD_SEC_ANSWER && section <= TLD_SEC_ADDITIONAL && section >= r->section;
}

int tld_resp_init(tld_resp *r, uint8_t *buf, size_t cap, const tld_query *q)
{
	if (q->len < TLD_HDR_LEN)
		return TLD_EINVAL;
	if (cap > TLD_MSG_MAX)
		cap = TLD_MSG_MAX;
	size_t qlen = q->has_question ? (size_t)q->question_end - TLD_HDR_LEN : 0;
	if (cap < TLD_HDR_LEN + qlen)
		return TLD_ESPACE;
	r->buf = buf;
	r->cap = cap;
	r->reserve = 0;
	memset(r->count, 0, sizeof(r->count));
	r->opt_off = 0;
	r->section = TLD_SEC_QUESTION;
	r->ext_rcode = 0;
	r->ncomp = 0;
	put16(buf, q->id);
	put16(buf + 2,
	      TLD_WIRE_QR | (unsigned)q->opcode << 11 | (q->flags & (TLD_WIRE_RD | TLD_WIRE_CD)));
	memset(buf + 4, 0, 8);
	r->len = TLD_HDR_LEN;
	if (qlen > 0) {
		if (buf != q->pkt)
			memcpy(buf + TLD_HDR_LEN, q->pkt + TLD_HDR_LEN, qlen);
		r->count[0] = 1;
		buf[5] = 1;
		name_info ni;
		if (name_split(q->qname, TLD_NAME_MAX, &ni) == 0)
			comp_add(r, TLD_HDR_LEN, &ni, ni.n);
		r->len += qlen;
	}
	return 0;
}

int tld_resp_reserve(tld_resp *r, size_t n)
{
	if (n > r->cap - r->len)
		return TLD_ESPACE;
	r->reserve = n;
	return 0;
}

void tld_resp_set_rcode(tld_resp *r, unsigned rcode)
{
	rcode &= 0xfff;
	r->buf[3] = (uint8_t)((r->buf[3] & 0xf0) | (rcode & 0xf));
	r->ext_rcode = (uint8_t)(rcode >> 4);
	if (r->opt_off != 0)
		r->buf[r->opt_off + 5] = r->ext_rcode;
}

void tld_resp_set_flags(tld_resp *r, uint16_t set, uint16_t clear)
{
	const unsigned ok = TLD_WIRE_AA | TLD_WIRE_TC | TLD_WIRE_RD | TLD_WIRE_RA | TLD_WIRE_Z |
	                    TLD_WIRE_AD | TLD_WIRE_CD;
	unsigned fl = get16(r->buf + 2);
	fl = (fl | (set & ok)) & ~(clear & ok);
	put16(r->buf + 2, fl);
}

tld_resp_mark tld_resp_save(const tld_resp *r)
{
	tld_resp_mark m;
	m.len = r->len;
	memcpy(m.count, r->count, sizeof(m.count));
	m.opt_off = r->opt_off;
	m.section = r->section;
	m.ncomp = r->ncomp;
	return m;
}

void tld_resp_restore(tld_resp *r, const tld_resp_mark *m)
{
	r->len = m->len;
	memcpy(r->count, m->count, sizeof(r->count));
	r->opt_off = m->opt_off;
	r->section = m->section;
	r->ncomp = m->ncomp;
}

int tld_resp_add_rr(tld_resp *r, int section, const uint8_t *owner, uint16_t type, uint16_t rclass,
                    uint32_t ttl, const uint8_t *rdata, uint16_t rdlen)
{
	if (!section_ok(r, section))
		return TLD_EINVAL;
	if (r->count[section] == UINT16_MAX || r->len > rr_limit(r))
		return TLD_ESPACE;
	size_t len = r->len;
	uint8_t ncomp = r->ncomp;
	int rc = put_rr(r, owner, type, rclass, ttl, rdata, rdlen, rr_limit(r));
	if (rc < 0) {
		r->len = len;
		r->ncomp = ncomp;
		return rc;
	}
	r->count[section]++;
	r->section = (uint8_t)section;
	return 0;
}

/* Shared by add_rrset (sig = false: rdlen|rdata) and add_sigs (ttl|rdlen|rdata). */
static int add_packed(tld_resp *r, int section, const uint8_t *owner, uint16_t type,
                      uint16_t rclass, uint32_t ttl, const uint8_t *p, size_t plen, bool sig)
{
	if (!section_ok(r, section))
		return TLD_EINVAL;
	size_t len = r->len, limit = rr_limit(r), hdr = sig ? 6 : 2;
	if (len > limit)
		return TLD_ESPACE;
	uint8_t ncomp = r->ncomp;
	unsigned n = 0;
	int rc = 0;
	size_t o = 0;
	while (o < plen) {
		if (plen - o < hdr) {
			rc = TLD_ERDATA;
			break;
		}
		uint32_t t = ttl;
		if (sig) {
			t = get32(p + o);
			if (t > ttl)
				t = ttl;
		}
		uint16_t rdlen = get16(p + o + hdr - 2);
		o += hdr;
		if (rdlen > plen - o) {
			rc = TLD_ERDATA;
			break;
		}
		if (r->count[section] + n == UINT16_MAX) {
			rc = TLD_ESPACE;
			break;
		}
		rc = put_rr(r, owner, type, rclass, t, p + o, rdlen, limit);
		if (rc < 0)
			break;
		o += rdlen;
		n++;
	}
	if (rc < 0) {
		r->len = len;
		r->ncomp = ncomp;
		return rc;
	}
	r->count[section] = (uint16_t)(r->count[section] + n);
	if (n > 0)
		r->section = (uint8_t)section;
	return (int)n;
}

int tld_resp_add_rrset(tld_resp *r, int section, const uint8_t *owner, uint16_t type,
                       uint16_t rclass, uint32_t ttl, const uint8_t *rrs, size_t rrs_len)
{
	return add_packed(r, section, owner, type, rclass, ttl, rrs, rrs_len, false);
}

int tld_resp_add_sigs(tld_resp *r, int section, const uint8_t *owner, uint16_t rclass,
                      uint32_t ttl_max, const uint8_t *sigs, size_t sigs_len)
{
	return add_packed(r, section, owner, TLD_T_RRSIG, rclass, ttl_max, sigs, sigs_len, true);
}

int tld_resp_add_opt(tld_resp *r, uint16_t udp_size, bool do_bit, const uint8_t *nsid,
                     uint16_t nsid_len)
{
	if (r->opt_off != 0)
		return TLD_EEXIST;
	if (r->count[TLD_SEC_ADDITIONAL] == UINT16_MAX)
		return TLD_ESPACE;
	size_t rdlen = nsid != NULL ? 4 + (size_t)nsid_len : 0;
	if (TLD_OPT_LEN + rdlen > r->cap - r->len)
		return TLD_ESPACE;
	uint8_t *p = r->buf + r->len;
	p[0] = 0;
	put16(p + 1, TLD_T_OPT);
	put16(p + 3, udp_size);
	p[5] = r->ext_rcode;
	p[6] = 0; /* version */
	put16(p + 7, do_bit ? TLD_EDNS_DO : 0);
	put16(p + 9, (unsigned)rdlen);
	if (nsid != NULL) {
		put16(p + 11, TLD_EDNS_NSID);
		put16(p + 13, nsid_len);
		memcpy(p + 15, nsid, nsid_len);
	}
	r->opt_off = (uint16_t)r->len;
	r->len += TLD_OPT_LEN + rdlen;
	r->count[TLD_SEC_ADDITIONAL]++;
	r->section = TLD_SEC_ADDITIONAL;
	return 0;
}

int tld_resp_add_edns_option(tld_resp *r, uint16_t code, const uint8_t *data, uint16_t len)
{
	if (r->opt_off == 0)
		return TLD_EINVAL;
	uint8_t *opt = r->buf + r->opt_off;
	size_t rdlen = get16(opt + 9);
	if (r->opt_off + TLD_OPT_LEN + rdlen != r->len)
		return TLD_EINVAL;
	if (4 + (size_t)len > r->cap - r->len)
		return TLD_ESPACE;
	uint8_t *p = r->buf + r->len;
	put16(p, code);
	put16(p + 2, len);
	if (len > 0)
		memcpy(p + 4, data, len);
	r->len += 4 + (size_t)len;
	put16(opt + 9, (unsigned)(rdlen + 4 + len));
	return 0;
}

int tld_resp_add_tsig_error(tld_resp *r, const tld_query *q, uint16_t error)
{
	if (!q->has_tsig)
		return TLD_EINVAL;
	uint8_t owner[TLD_NAME_MAX], rd[TLD_NAME_MAX + 16];
	size_t pos = q->tsig_off, rdoff;
	uint16_t type, rclass, rdlen;
	uint32_t ttl;
	int owner_len;
	if (rr_walk(q->pkt, q->len, &pos, owner, &owner_len, &type, &rclass, &ttl, &rdoff, &rdlen) <
	    0)
		return TLD_EMALFORMED;
	/* algorithm name | time signed (48 bits) | fudge | MAC size | MAC |
	 * original ID | error | other length | other */
	const uint8_t *p = q->pkt + rdoff;
	int alg = tld_name_check(p, rdlen);
	if (alg < 0 || rdlen < (size_t)alg + 16)
		return TLD_EMALFORMED;
	size_t mac = get16(p + alg + 8);
	if (rdlen < (size_t)alg + 16 + mac)
		return TLD_EMALFORMED;
	memcpy(rd, p, (size_t)alg + 8);
	put16(rd + alg + 8, 0);                       /* no MAC: unsigned */
	memcpy(rd + alg + 10, p + alg + 10 + mac, 2); /* original ID */
	put16(rd + alg + 12, error);
	put16(rd + alg + 14, 0); /* no other data */
	return tld_resp_add_rr(r, TLD_SEC_ADDITIONAL, owner, TLD_T_TSIG, TLD_C_ANY, 0, rd,
	                       (uint16_t)(alg + 16));
}

int tld_resp_finish(tld_resp *r)
{
	for (int i = 0; i < 4; i++)
		put16(r->buf + 4 + 2 * i, r->count[i]);
	return (int)r->len;
}
