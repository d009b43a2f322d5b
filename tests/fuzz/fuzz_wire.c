/* fuzz_wire.c - libFuzzer target for node/dns/wire.c: parse, build a response, read it back. */
/*
 * Build and run (from the repository root):
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *         -fno-sanitize-recover=all -Inode node/common/err.c node/dns/name.c \
 *         node/dns/rrtype.c node/dns/wire.c tests/fuzz/fuzz_wire.c -o /tmp/fuzz_wire
 *   /tmp/fuzz_wire -max_total_time=60 -max_len=1500 /tmp/wire-corpus tests/fuzz/corpus/wire
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "dns/name.h"
#include "dns/rrtype.h"
#include "dns/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			abort();                                                                   \
	} while (0)

/* What was added, to compare with what is read back. */
struct added {
	uint16_t type;
	uint8_t owner[TLD_NAME_MAX];
	uint8_t n1[TLD_NAME_MAX], n2[TLD_NAME_MAX];
};

/* Prefixes name with one label of text; returns false if it would not fit. */
static bool prefix(uint8_t *out, const char *label, const uint8_t *name)
{
	size_t l = strlen(label), n = tld_name_len(name);
	if (1 + l + n > TLD_NAME_MAX)
		return false;
	out[0] = (uint8_t)l;
	memcpy(out + 1, label, l);
	memcpy(out + 1 + l, name, n);
	return true;
}

/* Decodes the response and checks it against what was added. */
static void verify(const uint8_t *m, size_t len, const struct added *want, int nwant)
{
	CHECK(len >= TLD_HDR_LEN);
	unsigned cnt[4];
	for (int i = 0; i < 4; i++)
		cnt[i] = (unsigned)m[4 + 2 * i] << 8 | m[5 + 2 * i];
	size_t pos = TLD_HDR_LEN;
	uint8_t name[TLD_NAME_MAX];
	CHECK(cnt[0] <= 1);
	if (cnt[0] == 1) {
		CHECK(tld_wire_name_read(m, len, pos, name, &pos) > 0);
		CHECK(len - pos >= 4);
		pos += 4;
	}
	int k = 0;
	for (int s = 1; s <= 3; s++) {
		for (unsigned i = 0; i < cnt[s]; i++) {
			tld_wire_rr rr;
			CHECK(tld_wire_rr_read(m, len, pos, &rr, &pos) == 0);
			if (rr.type == TLD_T_OPT)
				continue;
			CHECK(k < nwant);
			const struct added *w = &want[k++];
			CHECK(rr.type == w->type);
			CHECK(tld_name_equal(rr.owner, w->owner));
			size_t rd = rr.rdata_off, end = rd + rr.rdlen, next;
			switch (rr.type) {
			case TLD_T_MX:
				rd += 2;
				/* fall through */
			case TLD_T_NS:
			case TLD_T_CNAME:
			case TLD_T_SOA:
				CHECK(tld_wire_name_read(m, len, rd, name, &next) > 0);
				CHECK(next <= end && tld_name_equal(name, w->n1));
				if (rr.type == TLD_T_SOA) {
					CHECK(tld_wire_name_read(m, len, next, name, &next) > 0);
					CHECK(tld_name_equal(name, w->n2));
					CHECK(next + 20 == end);
				} else {
					CHECK(next == end);
				}
				break;
			default:
				break;
			}
		}
	}
	CHECK(k == nwant);
	CHECK(pos == len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The readers on every offset of arbitrary bytes. */
	uint8_t name[TLD_NAME_MAX];
	size_t lim = size < 600 ? size : 600;
	for (size_t off = 0; off < lim; off++) {
		size_t next;
		int n = tld_wire_name_read(data, size, off, name, &next);
		if (n > 0)
			CHECK(tld_name_check(name, TLD_NAME_MAX) == n && next > off &&
			      next <= size);
		tld_wire_rr rr;
		if (tld_wire_rr_read(data, size, off, &rr, &next) == 0)
			CHECK((size_t)rr.rdata_off + rr.rdlen == next && next <= size);
	}

	tld_query q;
	int pr = tld_query_parse(data, size, &q);
	CHECK(pr == TLD_PARSE_OK || pr == TLD_PARSE_FORMERR || pr == TLD_PARSE_DROP);
	if (pr == TLD_PARSE_DROP)
		return 0;
	if (q.has_question) {
		CHECK(tld_name_check(q.qname, TLD_NAME_MAX) == q.qname_wirelen);
		CHECK(memcmp(q.qname, data + q.qname_off, q.qname_wirelen) == 0);
		CHECK(tld_name_equal(q.qname, q.qname_lc));
	}
	if (q.cookie_len != 0)
		CHECK((size_t)q.cookie_off + q.cookie_len <= size);

	/* Build a response, in place (in a copy of the input) or not. */
	static uint8_t inbuf[TLD_MSG_MAX], outbuf[TLD_MSG_MAX];
	size_t cap = tld_query_udp_max(&q, 4096);
	if (q.id & 0x100)
		cap = TLD_MSG_MAX;
	uint8_t *buf = outbuf;
	if (q.id & 1) {
		memcpy(inbuf, data, q.len);
		int pr2 = tld_query_parse(inbuf, q.len, &q);
		CHECK(pr2 == pr);
		buf = inbuf;
	}
	tld_resp r;
	CHECK(tld_resp_init(&r, buf, cap, &q) == 0);
	if (pr == TLD_PARSE_FORMERR || !q.has_question) {
		tld_resp_set_rcode(&r, TLD_RCODE_FORMERR);
		int n = tld_resp_finish(&r);
		verify(buf, (size_t)n, NULL, 0);
		return 0;
	}
	if (q.has_opt)
		CHECK(tld_resp_reserve(&r, TLD_OPT_LEN + 4 + 8) == 0);

	struct added want[24];
	int nw = 0;
	uint8_t rd[600];
	const uint8_t *qn = (q.id & 2) ? q.qname : q.qname_lc;
	const uint8_t *parent = q.qname_labels > 0 ? tld_name_suffix(qn, q.qname_labels - 1) : qn;
	static const uint16_t types[] = {TLD_T_A,   TLD_T_CNAME, TLD_T_NS, TLD_T_MX,
	                                 TLD_T_SOA, TLD_T_NS,    TLD_T_A,  TLD_T_TXT};
	for (int i = 0; i < 8 + (int)(q.qtype & 7); i++) {
		struct added *w = &want[nw];
		uint16_t type = types[(i + q.qtype) & 7];
		int section = i < 3   ? TLD_SEC_ANSWER
		              : i < 6 ? TLD_SEC_AUTHORITY
		                      : TLD_SEC_ADDITIONAL;
		memcpy(w->owner, i & 1 ? parent : qn, tld_name_len(i & 1 ? parent : qn));
		if (!prefix(w->n1, i & 2 ? "ns1" : "Mail", parent))
			memcpy(w->n1, parent, tld_name_len(parent));
		if (!prefix(w->n2, "hostmaster", qn))
			memcpy(w->n2, qn, tld_name_len(qn));
		size_t rl = 0, l1 = tld_name_len(w->n1), l2 = tld_name_len(w->n2);
		switch (type) {
		case TLD_T_MX:
			rd[rl++] = 0;
			rd[rl++] = 10;
			/* fall through */
		case TLD_T_NS:
		case TLD_T_CNAME:
			memcpy(rd + rl, w->n1, l1);
			rl += l1;
			break;
		case TLD_T_SOA:
			memcpy(rd, w->n1, l1);
			memcpy(rd + l1, w->n2, l2);
			memset(rd + l1 + l2, 0x5a, 20);
			rl = l1 + l2 + 20;
			break;
		default:
			rl = (size_t)(i * 7) % 40;
			memset(rd, 'x', rl);
			break;
		}
		size_t before = r.len;
		int rc =
		    tld_resp_add_rr(&r, section, w->owner, type, TLD_C_IN, 3600, rd, (uint16_t)rl);
		if (rc == TLD_ESPACE) {
			CHECK(r.len == before);
			continue;
		}
		CHECK(rc == 0);
		CHECK(r.len <= r.cap - r.reserve);
		w->type = type;
		nw++;
	}
	/* An RRset of three, all or nothing. */
	uint8_t rrs[3 * (2 + TLD_NAME_MAX)];
	size_t rrl = 0;
	const char *hosts[3] = {"a", "b", "c"};
	uint8_t tgt[3][TLD_NAME_MAX];
	for (int i = 0; i < 3; i++) {
		if (!prefix(tgt[i], hosts[i], parent))
			memcpy(tgt[i], parent, tld_name_len(parent));
		size_t l = tld_name_len(tgt[i]);
		rrs[rrl++] = (uint8_t)(l >> 8);
		rrs[rrl++] = (uint8_t)l;
		memcpy(rrs + rrl, tgt[i], l);
		rrl += l;
	}
	size_t before = r.len;
	int rc = tld_resp_add_rrset(&r, TLD_SEC_ADDITIONAL, qn, TLD_T_NS, TLD_C_IN, 60, rrs, rrl);
	if (rc == TLD_ESPACE) {
		CHECK(r.len == before);
	} else {
		CHECK(rc == 3);
		for (int i = 0; i < 3; i++) {
			want[nw].type = TLD_T_NS;
			memcpy(want[nw].owner, qn, tld_name_len(qn));
			memcpy(want[nw].n1, tgt[i], tld_name_len(tgt[i]));
			nw++;
		}
	}
	if (q.has_opt) {
		if (q.edns_version != 0)
			tld_resp_set_rcode(&r, TLD_RCODE_BADVERS);
		CHECK(tld_resp_add_opt(&r, 1232, q.edns_do, NULL, 0) == 0);
		if (q.cookie_len != 0) {
			uint8_t ck[8];
			memcpy(ck, data + q.cookie_off, 8); /* in place, buf no longer has it */
			CHECK(tld_resp_add_edns_option(&r, TLD_EDNS_COOKIE, ck, 8) == 0);
		}
	}
	int n = tld_resp_finish(&r);
	CHECK(n > 0 && (size_t)n <= cap);
	verify(buf, (size_t)n, want, nw);
	/* The question is echoed byte for byte, in place or not. */
	CHECK(memcmp(buf + TLD_HDR_LEN, data + TLD_HDR_LEN, q.question_end - TLD_HDR_LEN) == 0);
	return 0;
}
