/* test_wire.c - unit tests of node/dns/wire.c: query parsing, name reading, response building. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "dns/name.h"
#include "dns/rrtype.h"
#include "dns/wire.h"

/* Wire names as C literals: the literal's terminating NUL is the root label. */
#define N(lit) ((const uint8_t *)(lit))

/* ---- packet builder ---- */

typedef struct pb {
	uint8_t b[70000];
	size_t n;
} pb;

static void pb_bytes(pb *p, const void *d, size_t n)
{
	memcpy(p->b + p->n, d, n);
	p->n += n;
}

static void pb_u8(pb *p, unsigned v)
{
	p->b[p->n++] = (uint8_t)v;
}

static void pb_u16(pb *p, unsigned v)
{
	pb_u8(p, v >> 8);
	pb_u8(p, v);
}

static void pb_u32(pb *p, uint32_t v)
{
	pb_u16(p, v >> 16);
	pb_u16(p, v & 0xffff);
}

static void pb_set16(pb *p, size_t off, unsigned v)
{
	p->b[off] = (uint8_t)(v >> 8);
	p->b[off + 1] = (uint8_t)v;
}

static void pb_name(pb *p, const uint8_t *name)
{
	pb_bytes(p, name, tld_name_len(name));
}

static void pb_hdr(pb *p, unsigned id, unsigned flags, unsigned qd, unsigned an, unsigned ns,
                   unsigned ar)
{
	p->n = 0;
	pb_u16(p, id);
	pb_u16(p, flags);
	pb_u16(p, qd);
	pb_u16(p, an);
	pb_u16(p, ns);
	pb_u16(p, ar);
}

/* A query with one question and arcount additional records to follow. */
static void pb_query(pb *p, const uint8_t *qname, unsigned qtype, unsigned ar)
{
	pb_hdr(p, 0x1234, TLD_WIRE_RD, 1, 0, 0, ar);
	pb_name(p, qname);
	pb_u16(p, qtype);
	pb_u16(p, TLD_C_IN);
}

/* An OPT RR with the given options (already encoded). */
static void pb_opt(pb *p, unsigned udp, uint32_t ttl, const uint8_t *opts, size_t optlen)
{
	pb_u8(p, 0);
	pb_u16(p, TLD_T_OPT);
	pb_u16(p, udp);
	pb_u32(p, ttl);
	pb_u16(p, (unsigned)optlen);
	if (optlen > 0)
		pb_bytes(p, opts, optlen);
}

/* An RR whose owner bytes are given raw (possibly a pointer). */
static void pb_rr_raw(pb *p, const uint8_t *owner, size_t olen, unsigned type, const void *rd,
                      size_t rdlen)
{
	pb_bytes(p, owner, olen);
	pb_u16(p, type);
	pb_u16(p, TLD_C_IN);
	pb_u32(p, 3600);
	pb_u16(p, (unsigned)rdlen);
	if (rdlen > 0)
		pb_bytes(p, rd, rdlen);
}

static int parse(pb *p, tld_query *q)
{
	return tld_query_parse(p->b, p->n, q);
}

/* ---- parsing: good queries ---- */

static void test_parse_plain(void **state)
{
	(void)state;
	pb p;
	tld_query q;
	pb_query(&p, N("\3www\7example\3com"), TLD_T_A, 0);
	assert_int_equal(parse(&p, &q), TLD_PARSE_OK);
	assert_int_equal(q.why, TLD_WHY_NONE);
	assert_int_equal(q.id, 0x1234);
	assert_true(q.rd);
	assert_false(q.qr || q.aa || q.tc || q.cd || q.ad || q.ra);
	assert_int_equal(q.opcode, TLD_OP_QUERY);
	assert_int_equal(q.qdcount, 1);
	assert_true(q.has_question);
	assert_int_equal(q.qname_off, 12);
	assert_int_equal(q.qname_wirelen, 17);
	assert_int_equal(q.qname_labels, 3);
	assert_memory_equal(q.qname, "\3www\7example\3com", 17);
	assert_int_equal(q.qtype, TLD_T_A);
	assert_int_equal(q.qclass, TLD_C_IN);
	assert_int_equal(q.question_end, 12 + 17 + 4);
	assert_int_equal(q.msg_end, p.n);
	assert_false(q.trailing);
	assert_false(q.has_opt);
	assert_int_equal(tld_query_udp_max(&q, 4096), 512);

	/* The root name, opcode and flags. */
	pb_hdr(&p, 7, (unsigned)TLD_OP_NOTIFY << 11 | TLD_WIRE_CD | TLD_WIRE_AD | TLD_WIRE_AA, 1, 0,
	       0, 0);
	pb_u8(&p, 0);
	pb_u16(&p, TLD_T_SOA);
	pb_u16(&p, TLD_C_IN);
	assert_int_equal(parse(&p, &q), TLD_PARSE_OK);
	assert_int_equal(q.opcode, TLD_OP_NOTIFY);
	assert_true(q.cd && q.ad && q.aa);
	assert_false(q.rd);
	assert_int_equal(q.qname_wirelen, 1);
	assert_int_equal(q.qname_labels, 0);
}

static void test_parse_edns(void **state)
{
	(void)state;
	pb p;
	tld_query q;
	/* EDNS, DO, udp 1232, no options. */
	pb_query(&p, N("\3com"), TLD_T_NS, 1);
	pb_opt(&p, 1232, TLD_EDNS_DO, NULL, 0);
	assert_int_equal(parse(&p, &q), TLD_PARSE_OK);
	assert_true(q.has_opt);
	assert_true(q.edns_do);
	assert_int_equal(q.edns_version, 0);
	assert_int_equal(q.edns_udp, 1232);
	assert_int_equal(q.edns_flags, TLD_EDNS_DO);
	assert_int_equal(q.opt_off, 12 + 5 + 4);
	assert_int_equal(q.opt_rdlen, 0);
	assert_int_equal(q.opt_count, 0);
	assert_false(q.nsid);
	assert_int_equal(q.cookie_len, 0);
	assert_int_equal(tld_query_udp_max(&q, 4096), 1232);
	assert_int_equal(tld_query_udp_max(&q, 1000), 1000);
	assert_int_equal(tld_query_udp_max(&q, 100), 512);

	/* Version 1, ext rcode bits, no DO, tiny udp size, NSID + full cookie. */
	uint8_t opts[64];
	size_t o = 0;
	opts[o++] = 0, opts[o++] = TLD_EDNS_NSID, opts[o++] = 0, opts[o++] = 0;
	opts[o++] = 0, opts[o++] = TLD_EDNS_COOKIE, opts[o++] = 0, opts[o++] = 24;
	for (int i = 0; i < 24; i++)
		opts[o++] = (uint8_t)(0xa0 + i);
	opts[o++] = 0xff, opts[o++] = 0x01, opts[o++] = 0, opts[o++] = 1, opts[o++] = 9;
	pb_query(&p, N("\3com"), TLD_T_NS, 1);
	size_t opt_at = p.n;
	pb_opt(&p, 100, 0x03010000u, opts, o);
	assert_int_equal(parse(&p, &q), TLD_PARSE_OK);
	assert_true(q.has_opt);
	assert_false(q.edns_do);
	assert_int_equal(q.edns_version, 1);
	assert_int_equal(q.edns_ext_rcode, 3);
	assert_int_equal(q.edns_udp, 100);
	assert_int_equal(tld_query_udp_max(&q, 4096), 512);
	assert_true(q.nsid);
	assert_int_equal(q.opt_count, 3);
	assert_int_equal(q.opt_rdlen, o);
	assert_int_equal(q.cookie_len, 24);
	assert_int_equal(q.cookie_off, opt_at + 11 + 4 + 4);
	assert_int_equal(p.b[q.cookie_off], 0xa0);
	assert_int_equal(p.b[q.cookie_off + 8], 0xa8);

	/* Client cookie only. */
	uint8_t ck[12] = {0, TLD_EDNS_COOKIE, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8};
	pb_query(&p, N("\3com"), TLD_T_NS, 1);
	pb_opt(&p, 4096, 0, ck, sizeof(ck));
	assert_int_equal(parse(&p, &q), TLD_PARSE_OK);
	assert_int_equal(q.cookie_len, 8);
	assert_memory_equal(p.b + q.cookie_off, ck + 4, 8);
	assert_false(q.nsid);
	assert_int_equal(q.opt_count, 1);

	/* Cookies of 16 and 40 bytes are fine. */
	uint8_t big[44] = {0, TLD_EDNS_COOKIE, 0, 40};
	pb_query(&p, N("\3com"), TLD_T_NS, 1);
	pb_opt(&p, 4096, 0, big, 44);
	assert_int_equal(parse(&p, &q), TLD_PARSE_OK);
	assert_int_equal(q.cookie_len, 40);
	big[3] = 16;
	pb_query(&p, N("\3com"), TLD_T_NS, 1);
	pb_opt(&p, 4096, 0, big, 20);
	assert_int_equal(parse(&p, &q), TLD_PARSE_OK);
	assert_int_equal(q.cookie_len, 16);
}

static void test_parse_other_sections(void **state)
{
	(void)state;
	pb p;
	tld_query q;
	/* Answer and authority records with compressed owners and RDATA are walked;
	 * a TSIG last in the additional section is noted; trailing bytes flagged. */
	pb_hdr(&p, 1, 0, 1, 2, 1, 2);
	pb_name(&p, N("\3www\7example\3com"));
	pb_u16(&p, TLD_T_A);
	pb_u16(&p, TLD_C_IN);
	uint8_t ptr12[2] = {0xc0, 12}, ptr16[2] = {0xc0, 16};
	pb_rr_raw(&p, ptr12, 2, TLD_T_A, "\1\2\3\4", 4);
	pb_rr_raw(&p, ptr16, 2, TLD_T_NS, "\2ns\xc0\x10", 5);
	pb_rr_raw(&p, N("\3sub\xc0\x10"), 6, TLD_T_TXT, "\3abc", 4);
	pb_opt(&p, 1400, 0, NULL, 0);
	size_t tsig_at = p.n;
	pb_rr_raw(&p, N("\3key\0"), 5, TLD_T_TSIG, "xxxxxxxx", 8);
	size_t end = p.n;
	pb_bytes(&p, "junk", 4);
	assert_int_equal(parse(&p, &q), TLD_PARSE_OK);
	assert_true(q.has_opt);
	assert_true(q.has_tsig);
	assert_int_equal(q.tsig_off, tsig_at);
	assert_int_equal(q.msg_end, end);
	assert_true(q.trailing);
}

static void test_parse_mixed_case_echo(void **state)
{
	(void)state;
	pb p;
	tld_query q;
	const uint8_t *mixed = N("\3wWw\7ExAmPlE\3CoM");
	pb_query(&p, mixed, TLD_T_A, 0);
	assert_int_equal(parse(&p, &q), TLD_PARSE_OK);
	assert_memory_equal(q.qname, mixed, 17);
	assert_memory_equal(q.qname_lc, "\3www\7example\3com", 17);
	assert_memory_equal(p.b + q.qname_off, mixed, q.qname_wirelen);

	uint8_t out[512];
	tld_resp r;
	assert_int_equal(tld_resp_init(&r, out, sizeof(out), &q), 0);
	/* An answer owned by the lower-case name points at the original bytes. */
	assert_int_equal(tld_resp_add_rr(&r, TLD_SEC_ANSWER, q.qname_lc, TLD_T_A, TLD_C_IN, 60,
	                                 N("\1\2\3\4"), 4),
	                 0);
	int n = tld_resp_finish(&r);
	assert_int_equal(n, 12 + 21 + 2 + 10 + 4);
	assert_int_equal(out[0], 0x12);
	assert_int_equal(out[1], 0x34);
	assert_int_equal(out[2], 0x81); /* QR, RD */
	assert_int_equal(out[3], 0x00);
	assert_memory_equal(out + 12, p.b + 12, 21); /* question byte for byte */
	assert_int_equal(out[33], 0xc0);
	assert_int_equal(out[34], 12);
	uint8_t name[TLD_NAME_MAX];
	size_t next;
	assert_int_equal(tld_wire_name_read(out, (size_t)n, 33, name, &next), 17);
	assert_memory_equal(name, mixed, 17);
	assert_int_equal(next, 35);
}

/* ---- parsing: malformed input ---- */

static void expect(pb *p, int result, int why)
{
	tld_query q;
	int rc = parse(p, &q);
	if (rc != result || q.why != why)
		fail_msg("got result %d why %d (%s), want %d why %d", rc, q.why,
		         tld_parse_why_text(q.why), result, why);
}

static void test_parse_drop(void **state)
{
	(void)state;
	pb p;
	tld_query q;
	pb_query(&p, N("\3com"), TLD_T_A, 0);
	for (size_t n = 0; n < 12; n++) {
		assert_int_equal(tld_query_parse(p.b, n, &q), TLD_PARSE_DROP);
		assert_int_equal(q.why, TLD_WHY_SHORT);
	}
	uint8_t out[512];
	tld_resp r;
	assert_int_equal(tld_resp_init(&r, out, sizeof(out), &q), TLD_EINVAL);

	pb_set16(&p, 2, TLD_WIRE_QR);
	expect(&p, TLD_PARSE_DROP, TLD_WHY_QR);
	assert_int_equal(parse(&p, &q), TLD_PARSE_DROP);
	assert_int_equal(q.id, 0x1234);
	assert_true(q.qr);
	/* A bare header with QR=1 too. */
	assert_int_equal(tld_query_parse(p.b, 12, &q), TLD_PARSE_DROP);
}

static void test_parse_qdcount(void **state)
{
	(void)state;
	pb p;
	tld_query q;
	pb_query(&p, N("\3com"), TLD_T_A, 0);
	pb_set16(&p, 4, 0);
	expect(&p, TLD_PARSE_FORMERR, TLD_WHY_QDCOUNT);
	pb_set16(&p, 4, 2);
	expect(&p, TLD_PARSE_FORMERR, TLD_WHY_QDCOUNT);

	/* A FORMERR reply carries id, opcode, RD, CD and no question. */
	pb_set16(&p, 2, (unsigned)TLD_OP_QUERY << 11 | TLD_WIRE_RD | TLD_WIRE_CD | TLD_WIRE_AA);
	assert_int_equal(parse(&p, &q), TLD_PARSE_FORMERR);
	assert_false(q.has_question);
	uint8_t out[512];
	tld_resp r;
	assert_int_equal(tld_resp_init(&r, out, sizeof(out), &q), 0);
	tld_resp_set_rcode(&r, TLD_RCODE_FORMERR);
	assert_int_equal(tld_resp_finish(&r), 12);
	static const uint8_t want[12] = {0x12, 0x34, 0x81, 0x11, 0, 0, 0, 0, 0, 0, 0, 0};
	assert_memory_equal(out, want, 12);

	/* Header only, qdcount 0: FORMERR (or NOTIMP for a foreign opcode). */
	pb_hdr(&p, 9, (unsigned)TLD_OP_UPDATE << 11, 0, 0, 0, 0);
	assert_int_equal(parse(&p, &q), TLD_PARSE_FORMERR);
	assert_int_equal(q.opcode, TLD_OP_UPDATE);
}

static void test_parse_bad_qname(void **state)
{
	(void)state;
	pb p;
	/* Truncated at every point of the question. */
	pb_query(&p, N("\3www\7example\3com"), TLD_T_A, 0);
	size_t full = p.n;
	for (size_t n = 12; n < full; n++) {
		p.n = n;
		expect(&p, TLD_PARSE_FORMERR, n < 12 + 17 ? TLD_WHY_QNAME : TLD_WHY_QTRUNC);
	}
	p.n = full;
	expect(&p, TLD_PARSE_OK, TLD_WHY_NONE);

	/* Label of 64 bytes (0x40 is also the reserved 01 label type). */
	uint8_t name[300];
	name[0] = 64;
	memset(name + 1, 'a', 64);
	name[65] = 0;
	pb_query(&p, name, TLD_T_A, 0);
	expect(&p, TLD_PARSE_FORMERR, TLD_WHY_QNAME);
	/* Label type 10. */
	pb_hdr(&p, 1, 0, 1, 0, 0, 0);
	pb_bytes(&p, "\x80\0\0\1\0\1", 6);
	expect(&p, TLD_PARSE_FORMERR, TLD_WHY_QNAME);
	/* A 63-byte label is fine. */
	name[0] = 63;
	name[64] = 0;
	pb_query(&p, name, TLD_T_A, 0);
	expect(&p, TLD_PARSE_OK, TLD_WHY_NONE);

	/* Names of 255 (fine) and 256 bytes: 4 labels of 62 make 252; a fifth of
	 * 1 or 2 bytes makes 255 or 256 with the root. */
	for (int extra = 1; extra <= 2; extra++) {
		size_t o = 0;
		for (int l = 0; l < 4; l++) {
			name[o++] = 62;
			memset(name + o, 'b', 62);
			o += 62;
		}
		name[o++] = (uint8_t)extra;
		memset(name + o, 'c', (size_t)extra);
		o += (size_t)extra;
		name[o++] = 0;
		assert_int_equal(o, 254 + (size_t)extra);
		pb_hdr(&p, 1, 0, 1, 0, 0, 0);
		pb_bytes(&p, name, o);
		pb_u16(&p, TLD_T_A);
		pb_u16(&p, TLD_C_IN);
		expect(&p, extra == 1 ? TLD_PARSE_OK : TLD_PARSE_FORMERR,
		       extra == 1 ? TLD_WHY_NONE : TLD_WHY_QNAME);
	}

	/* Compression pointer in the QNAME, alone or after a label. */
	pb_hdr(&p, 1, 0, 1, 0, 0, 0);
	pb_bytes(&p, "\xc0\x0c", 2);
	pb_u16(&p, TLD_T_A);
	pb_u16(&p, TLD_C_IN);
	expect(&p, TLD_PARSE_FORMERR, TLD_WHY_QNAME_PTR);
	pb_hdr(&p, 1, 0, 1, 0, 0, 0);
	pb_bytes(&p, "\3www\xc0\x02", 6);
	pb_u16(&p, TLD_T_A);
	pb_u16(&p, TLD_C_IN);
	expect(&p, TLD_PARSE_FORMERR, TLD_WHY_QNAME_PTR);
}

static void test_parse_bad_records(void **state)
{
	(void)state;
	pb p;
	tld_query q;
	/* Counts that lie: arcount 1, nothing follows; ancount 65535. */
	pb_query(&p, N("\3com"), TLD_T_A, 1);
	expect(&p, TLD_PARSE_FORMERR, TLD_WHY_COUNT);
	pb_query(&p, N("\3com"), TLD_T_A, 0);
	pb_set16(&p, 6, 65535);
	pb_rr_raw(&p, N(""), 1, TLD_T_A, "abcd", 4);
	expect(&p, TLD_PARSE_FORMERR, TLD_WHY_COUNT);
	/* The question parsed, so a FORMERR reply may echo it. */
	assert_int_equal(parse(&p, &q), TLD_PARSE_FORMERR);
	assert_true(q.has_question);

	/* RDATA overrunning the message, fixed fields truncated. */
	pb_query(&p, N("\3com"), TLD_T_A, 0);
	pb_set16(&p, 8, 1);
	pb_rr_raw(&p, N(""), 1, TLD_T_A, "abcd", 4);
	p.n--;
	expect(&p, TLD_PARSE_FORMERR, TLD_WHY_RR);
	p.n -= 5;
	expect(&p, TLD_PARSE_FORMERR, TLD_WHY_RR);

	/* Pointer loops in an additional record's owner: to itself, a cycle of
	 * two (forward, then back), a forward pointer, pointers into its own labels. */
	static const struct {
		const char *owner;
		size_t len;
	} loops[] = {
	    {"\xc0\x15", 2}, /* offset 21 is the owner itself */
	    {"\1a\xc0\x18\xc0\x15", 6},
	    {"\xc0\x40", 2},       /* forward, past the end */
	    {"\1a\1b\xc0\x15", 6}, /* back to its own first label */
	    {"\1a\1b\xc0\x17", 6}, /* to its own second label */
	    {"\x41", 1},           /* label type 01 */
	};
	for (size_t i = 0; i < sizeof(loops) / sizeof(loops[0]); i++) {
		pb_query(&p, N("\3com"), TLD_T_A, 1);
		assert_int_equal(p.n, 21);
		pb_rr_raw(&p, N(loops[i].owner), loops[i].len, TLD_T_A, "abcd", 4);
		expect(&p, TLD_PARSE_FORMERR, TLD_WHY_RR);
	}
	/* A pointer cut by the end of the message. */
	pb_query(&p, N("\3com"), TLD_T_A, 1);
	pb_u8(&p, 0xc0);
	expect(&p, TLD_PARSE_FORMERR, TLD_WHY_RR);
	/* The same records with a good backward pointer parse. */
	pb_query(&p, N("\3com"), TLD_T_A, 1);
	pb_rr_raw(&p, N("\1a\1b\xc0\x0c"), 6, TLD_T_A, "abcd", 4);
	expect(&p, TLD_PARSE_OK, TLD_WHY_NONE);
}

static void test_parse_bad_opt(void **state)
{
	(void)state;
	pb p;
	tld_query q;
	/* OPT twice. */
	pb_query(&p, N("\3com"), TLD_T_A, 2);
	pb_opt(&p, 1232, 0, NULL, 0);
	pb_opt(&p, 1232, 0, NULL, 0);
	expect(&p, TLD_PARSE_FORMERR, TLD_WHY_OPT_DUP);
	/* OPT in the answer and in the authority section. */
	for (int sec = 6; sec <= 8; sec += 2) {
		pb_query(&p, N("\3com"), TLD_T_A, 0);
		pb_set16(&p, (size_t)sec, 1);
		pb_opt(&p, 1232, 0, NULL, 0);
		expect(&p, TLD_PARSE_FORMERR, TLD_WHY_OPT_SECTION);
	}
	/* OPT with a non-root owner, literal or compressed. */
	pb_query(&p, N("\3com"), TLD_T_A, 1);
	pb_rr_raw(&p, N("\3com"), 5, TLD_T_OPT, NULL, 0);
	expect(&p, TLD_PARSE_FORMERR, TLD_WHY_OPT_OWNER);
	pb_query(&p, N("\3com"), TLD_T_A, 1);
	pb_rr_raw(&p, N("\xc0\x0c"), 2, TLD_T_OPT, NULL, 0);
	expect(&p, TLD_PARSE_FORMERR, TLD_WHY_OPT_OWNER);

	/* Option length overrunning the OPT RDATA; option header cut short. */
	uint8_t opts[16] = {0, TLD_EDNS_NSID, 0, 5, 'a', 'b', 'c', 'd'};
	pb_query(&p, N("\3com"), TLD_T_A, 1);
	pb_opt(&p, 1232, 0, opts, 8);
	expect(&p, TLD_PARSE_FORMERR, TLD_WHY_OPT_OPTION);
	/* The OPT header was read: the FORMERR reply may carry EDNS. */
	assert_int_equal(parse(&p, &q), TLD_PARSE_FORMERR);
	assert_true(q.has_opt);
	assert_int_equal(q.edns_udp, 1232);
	opts[3] = 4;
	pb_query(&p, N("\3com"), TLD_T_A, 1);
	pb_opt(&p, 1232, 0, opts, 8);
	expect(&p, TLD_PARSE_OK, TLD_WHY_NONE);
	pb_query(&p, N("\3com"), TLD_T_A, 1);
	pb_opt(&p, 1232, 0, opts, 11); /* 3 stray bytes */
	expect(&p, TLD_PARSE_FORMERR, TLD_WHY_OPT_OPTION);

	/* COOKIE of bad lengths. */
	static const unsigned bad[] = {0, 5, 7, 9, 15, 41};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t ck[64] = {0, TLD_EDNS_COOKIE, 0, (uint8_t)bad[i]};
		pb_query(&p, N("\3com"), TLD_T_A, 1);
		pb_opt(&p, 1232, 0, ck, 4 + bad[i]);
		expect(&p, TLD_PARSE_FORMERR, TLD_WHY_COOKIE);
	}

	/* TSIG not last, or outside the additional section. */
	pb_query(&p, N("\3com"), TLD_T_A, 2);
	pb_rr_raw(&p, N("\3key"), 5, TLD_T_TSIG, "x", 1);
	pb_opt(&p, 1232, 0, NULL, 0);
	expect(&p, TLD_PARSE_FORMERR, TLD_WHY_TSIG);
	pb_query(&p, N("\3com"), TLD_T_A, 0);
	pb_set16(&p, 6, 1);
	pb_rr_raw(&p, N("\3key"), 5, TLD_T_TSIG, "x", 1);
	expect(&p, TLD_PARSE_FORMERR, TLD_WHY_TSIG);
}

/* ---- tld_wire_name_read ---- */

static void test_name_read(void **state)
{
	(void)state;
	uint8_t m[600], out[TLD_NAME_MAX];
	size_t next = 0;
	memset(m, 0, sizeof(m));
	memcpy(m + 12, "\3www\7example\3com\0", 17); /* 12..28 */
	memcpy(m + 29, "\4mail\xc0\x10", 7);         /* 29: mail.example.com */
	memcpy(m + 36, "\2ns\xc0\x1d", 5);           /* 36: ns.mail.example.com */
	assert_int_equal(tld_wire_name_read(m, 41, 36, out, &next), 21);
	assert_memory_equal(out, "\2ns\4mail\7example\3com", 21);
	assert_int_equal(next, 41);
	assert_int_equal(tld_wire_name_read(m, 41, 12, out, &next), 17);
	assert_int_equal(next, 29);
	assert_int_equal(tld_wire_name_read(m, 41, 36, NULL, NULL), 21);
	/* Truncation anywhere fails. */
	for (size_t n = 36; n < 41; n++)
		assert_int_equal(tld_wire_name_read(m, n, 36, out, &next), TLD_EMALFORMED);
	/* Pointer to itself, forward pointer. */
	memcpy(m + 50, "\xc0\x32", 2);
	assert_int_equal(tld_wire_name_read(m, 52, 50, out, &next), TLD_EMALFORMED);
	memcpy(m + 50, "\xc0\x33", 2);
	assert_int_equal(tld_wire_name_read(m, 52, 50, out, &next), TLD_EMALFORMED);
	/* A chain of pointers each one step back: legal, but more than
	 * TLD_PTR_HOPS hops is refused. */
	m[100] = 0;
	for (size_t i = 0; i < 200; i++) {
		m[102 + 2 * i] = 0xc0 | (uint8_t)((100 + 2 * i) >> 8);
		m[103 + 2 * i] = (uint8_t)(100 + 2 * i);
	}
	assert_int_equal(tld_wire_name_read(m, sizeof(m), 102 + 2 * (TLD_PTR_HOPS - 1), out, &next),
	                 1);
	assert_int_equal(next, 102 + 2 * (TLD_PTR_HOPS - 1) + 2);
	assert_int_equal(tld_wire_name_read(m, sizeof(m), 102 + 2 * TLD_PTR_HOPS, out, &next),
	                 TLD_EMALFORMED);

	/* Over 255 bytes through pointers: 5 names of 60-byte labels chained. */
	memset(m, 0, sizeof(m));
	size_t o = 0;
	m[o++] = 0;
	for (int i = 0; i < 5; i++) {
		size_t start = o;
		m[o++] = 60;
		memset(m + o, 'x', 60);
		o += 60;
		m[o++] = 0xc0;
		m[o++] = (uint8_t)(i == 0 ? 0 : start - 63);
		if (i == 3)
			assert_int_equal(tld_wire_name_read(m, o, start, out, &next), 245);
		if (i == 4)
			assert_int_equal(tld_wire_name_read(m, o, start, out, &next),
			                 TLD_EMALFORMED);
	}
}

/* ---- response building ---- */

/* Parses a query for qname/qtype (with OPT if udp != 0) into q, from p. */
static void mkquery(pb *p, tld_query *q, const uint8_t *qname, unsigned qtype, unsigned udp)
{
	pb_query(p, qname, qtype, udp != 0);
	if (udp != 0)
		pb_opt(p, udp, 0, NULL, 0);
	assert_int_equal(parse(p, q), TLD_PARSE_OK);
}

/* A decoded record of a response. */
typedef struct drr {
	int section;
	tld_wire_rr rr;
	uint8_t names[2][TLD_NAME_MAX]; /* RDATA names of NS/CNAME/PTR/MX/SOA */
} drr;

/* Decodes a whole response with the module's own readers, checking that it
 * is well-formed and that every compression pointer is below 0x4000. */
static int decode(const uint8_t *m, size_t len, drr *out, int max)
{
	assert_true(len >= 12);
	unsigned cnt[4];
	for (int i = 0; i < 4; i++)
		cnt[i] = (unsigned)m[4 + 2 * i] << 8 | m[5 + 2 * i];
	size_t pos = 12;
	uint8_t name[TLD_NAME_MAX];
	if (cnt[0] == 1) {
		assert_true(tld_wire_name_read(m, len, pos, name, &pos) > 0);
		pos += 4;
	}
	int n = 0;
	for (int s = 1; s <= 3; s++) {
		for (unsigned i = 0; i < cnt[s]; i++) {
			assert_true(n < max);
			drr *d = &out[n++];
			d->section = s;
			assert_int_equal(tld_wire_rr_read(m, len, pos, &d->rr, &pos), 0);
			size_t rd = d->rr.rdata_off, end = rd + d->rr.rdlen, next;
			switch (d->rr.type) {
			case TLD_T_MX:
				rd += 2;
				/* fall through */
			case TLD_T_NS:
			case TLD_T_CNAME:
			case TLD_T_PTR:
			case TLD_T_SOA:
				assert_true(tld_wire_name_read(m, len, rd, d->names[0], &next) > 0);
				assert_true(next <= end);
				if (d->rr.type == TLD_T_SOA) {
					assert_true(tld_wire_name_read(m, len, next, d->names[1],
					                               &next) > 0);
					assert_int_equal(next + 20, end);
				} else {
					assert_int_equal(next, end);
				}
				break;
			default:
				break;
			}
		}
	}
	assert_int_equal(pos, len);
	/* Every pointer in the message targets an offset below 0x4000 (by
	 * construction a pointer's high byte is at most 0xff: 0x3fff max). */
	return n;
}

static void test_resp_compression(void **state)
{
	(void)state;
	pb p;
	tld_query q;
	mkquery(&p, &q, N("\3WWW\7Example\3COM"), TLD_T_A, 1232);
	uint8_t out[1232];
	tld_resp r;
	assert_int_equal(tld_resp_init(&r, out, tld_query_udp_max(&q, 4096), &q), 0);
	assert_int_equal(r.cap, 1232);
	assert_int_equal(tld_resp_reserve(&r, TLD_OPT_LEN), 0);
	tld_resp_set_flags(&r, TLD_WIRE_AA, 0);

	static const uint8_t soa[] = "\3ns1\7example\3com\0\12hostmaster\7example\3com\0"
	                             "\0\0\0\1\0\0\0\2\0\0\0\3\0\0\0\4\0\0\0\5";
	static const uint8_t mx[] = "\0\12\4mail\7example\3com";
	assert_int_equal(tld_resp_add_rr(&r, TLD_SEC_ANSWER, N("\3www\7example\3com"), TLD_T_CNAME,
	                                 TLD_C_IN, 300, N("\3web\7example\3net"), 17),
	                 0);
	size_t before = r.len;
	assert_int_equal(tld_resp_add_rr(&r, TLD_SEC_ANSWER, N("\3web\7example\3net"), TLD_T_MX,
	                                 TLD_C_IN, 300, mx, sizeof(mx)),
	                 0);
	/* owner: pointer (2) + fixed (10) + pref (2) + "mail" (5) + pointer (2) */
	assert_int_equal(r.len - before, 21);
	assert_int_equal(tld_resp_add_rr(&r, TLD_SEC_AUTHORITY, N("\7example\3com"), TLD_T_NS,
	                                 TLD_C_IN, 86400, N("\3ns1\7example\3com"), 17),
	                 0);
	assert_int_equal(tld_resp_add_rr(&r, TLD_SEC_AUTHORITY, N("\7example\3com"), TLD_T_NS,
	                                 TLD_C_IN, 86400, N("\3ns2\7example\3org"), 17),
	                 0);
	assert_int_equal(tld_resp_add_rr(&r, TLD_SEC_AUTHORITY, N("\7example\3com"), TLD_T_SOA,
	                                 TLD_C_IN, 3600, soa, sizeof(soa) - 1),
	                 0);
	assert_int_equal(tld_resp_add_rr(&r, TLD_SEC_ADDITIONAL, N("\3NS1\7example\3com"), TLD_T_A,
	                                 TLD_C_IN, 86400, N("\xc0\0\2\1"), 4),
	                 0);
	before = r.len;
	assert_int_equal(tld_resp_add_rr(&r, TLD_SEC_ADDITIONAL, N("\3ns2\7example\3org"),
	                                 TLD_T_AAAA, TLD_C_IN, 86400,
	                                 N("\x20\1\xd\xb8\0\0\0\0\0\0\0\0\0\0\0\1"), 16),
	                 0);
	assert_int_equal(r.len - before, 2 + 10 + 16); /* the owner is one pointer */
	/* Types whose RDATA names must not be compressed: copied verbatim. */
	static const uint8_t srv[] = "\0\1\0\2\0\3\3www\7example\3com";
	before = r.len;
	assert_int_equal(tld_resp_add_rr(&r, TLD_SEC_ADDITIONAL, N("\7example\3com"), TLD_T_SRV,
	                                 TLD_C_IN, 60, srv, sizeof(srv)),
	                 0);
	assert_int_equal(r.len - before, 2 + 10 + sizeof(srv));
	assert_memory_equal(out + r.len - sizeof(srv), srv, sizeof(srv));
	assert_int_equal(tld_resp_add_rr(&r, TLD_SEC_ADDITIONAL, N("\7example\3com"), TLD_T_DNAME,
	                                 TLD_C_IN, 60, N("\7example\3com"), 13),
	                 0);
	assert_memory_equal(out + r.len - 13, "\7example\3com", 13);
	assert_int_equal(tld_resp_add_opt(&r, 1232, true, N("node1"), 5), 0);
	tld_resp_set_rcode(&r, TLD_RCODE_NOERROR);
	int n = tld_resp_finish(&r);
	assert_true(n > 0);
	assert_int_equal(out[2], 0x85); /* QR AA RD */

	drr d[16];
	int nrr = decode(out, (size_t)n, d, 16);
	assert_int_equal(nrr, 10);
	assert_true(tld_name_equal(d[0].rr.owner, N("\3www\7example\3com")));
	assert_memory_equal(d[0].rr.owner, "\3WWW\7Example\3COM", 17); /* 0x20 case kept */
	assert_true(tld_name_equal(d[0].names[0], N("\3web\7example\3net")));
	assert_int_equal(d[0].rr.ttl, 300);
	assert_true(tld_name_equal(d[1].rr.owner, N("\3web\7example\3net")));
	assert_true(tld_name_equal(d[1].names[0], N("\4mail\7example\3com")));
	assert_int_equal(out[d[1].rr.rdata_off + 1], 10);
	assert_true(tld_name_equal(d[2].rr.owner, N("\7example\3com")));
	assert_true(tld_name_equal(d[2].names[0], N("\3ns1\7example\3com")));
	assert_true(tld_name_equal(d[3].names[0], N("\3ns2\7example\3org")));
	assert_int_equal(d[4].rr.type, TLD_T_SOA);
	assert_true(tld_name_equal(d[4].names[0], N("\3ns1\7example\3com")));
	assert_true(tld_name_equal(d[4].names[1], N("\12hostmaster\7example\3com")));
	assert_memory_equal(out + d[4].rr.rdata_off + d[4].rr.rdlen - 20, soa + sizeof(soa) - 21,
	                    20);
	assert_int_equal(d[4].rr.rdlen, 2 + 11 + 2 + 20);
	assert_int_equal(d[4].section, TLD_SEC_AUTHORITY);
	assert_true(tld_name_equal(d[5].rr.owner, N("\3ns1\7example\3com")));
	assert_int_equal(d[5].section, TLD_SEC_ADDITIONAL);
	assert_true(tld_name_equal(d[6].rr.owner, N("\3ns2\7example\3org")));
	assert_int_equal(d[9].rr.type, TLD_T_OPT);
	assert_int_equal(d[9].rr.rclass, 1232);
	assert_int_equal(d[9].rr.ttl, TLD_EDNS_DO);
	assert_int_equal(d[9].rr.rdlen, 9);
	assert_memory_equal(out + d[9].rr.rdata_off, "\0\3\0\5node1", 9);

	/* Exact size: header+question 33, CNAME 29, MX 21, NS 18 + 29, SOA 47,
	 * A 16, AAAA 28, SRV 35, DNAME 25, OPT 20. */
	assert_int_equal(n, 301);

	/* And a parser sees our response as a response. */
	assert_int_equal(tld_query_parse(out, (size_t)n, &q), TLD_PARSE_DROP);
	assert_int_equal(q.why, TLD_WHY_QR);
}

static void test_resp_rdata_errors(void **state)
{
	(void)state;
	pb p;
	tld_query q;
	mkquery(&p, &q, N("\3com"), TLD_T_NS, 0);
	uint8_t out[512];
	tld_resp r;
	assert_int_equal(tld_resp_init(&r, out, sizeof(out), &q), 0);
	size_t len = r.len;
	uint8_t nc = r.ncomp;
	/* NS with a name plus a stray byte, an empty MX, an SOA without its 20
	 * bytes, a truncated name, a bad owner. */
	assert_int_equal(tld_resp_add_rr(&r, TLD_SEC_ANSWER, N("\3com"), TLD_T_NS, TLD_C_IN, 1,
	                                 N("\1a\3com\0x"), 8),
	                 TLD_ERDATA);
	assert_int_equal(
	    tld_resp_add_rr(&r, TLD_SEC_ANSWER, N("\3com"), TLD_T_MX, TLD_C_IN, 1, N("\0\1"), 2),
	    TLD_ERDATA);
	assert_int_equal(tld_resp_add_rr(&r, TLD_SEC_ANSWER, N("\3com"), TLD_T_SOA, TLD_C_IN, 1,
	                                 N("\1a\0\1b\0"), 6),
	                 TLD_ERDATA);
	assert_int_equal(
	    tld_resp_add_rr(&r, TLD_SEC_ANSWER, N("\3com"), TLD_T_CNAME, TLD_C_IN, 1, N("\3co"), 3),
	    TLD_ERDATA);
	assert_int_equal(
	    tld_resp_add_rr(&r, TLD_SEC_ANSWER, N("\3com"), TLD_T_PTR, TLD_C_IN, 1, NULL, 0),
	    TLD_ERDATA);
	assert_int_equal(
	    tld_resp_add_rr(&r, TLD_SEC_ANSWER, N("\x50x"), TLD_T_A, TLD_C_IN, 1, N("abcd"), 4),
	    TLD_ENAME);
	assert_int_equal(tld_resp_add_rr(&r, 0, N("\3com"), TLD_T_A, TLD_C_IN, 1, N("abcd"), 4),
	                 TLD_EINVAL);
	assert_int_equal(tld_resp_add_rr(&r, 4, N("\3com"), TLD_T_A, TLD_C_IN, 1, N("abcd"), 4),
	                 TLD_EINVAL);
	assert_int_equal(r.len, len);
	assert_int_equal(r.ncomp, nc);
	/* Empty RDATA of other types is fine. */
	assert_int_equal(
	    tld_resp_add_rr(&r, TLD_SEC_ANSWER, N("\3com"), TLD_T_TXT, TLD_C_IN, 1, NULL, 0), 0);
	/* Sections only move forward. */
	assert_int_equal(
	    tld_resp_add_rr(&r, TLD_SEC_ADDITIONAL, N("\3com"), TLD_T_A, TLD_C_IN, 1, N("abcd"), 4),
	    0);
	assert_int_equal(
	    tld_resp_add_rr(&r, TLD_SEC_AUTHORITY, N("\3com"), TLD_T_A, TLD_C_IN, 1, N("abcd"), 4),
	    TLD_EINVAL);
	drr d[4];
	assert_int_equal(decode(out, (size_t)tld_resp_finish(&r), d, 4), 2);
}

static bool resp_same(const tld_resp *a, const tld_resp *b)
{
	if (a->buf != b->buf || a->cap != b->cap || a->len != b->len || a->reserve != b->reserve ||
	    memcmp(a->count, b->count, sizeof(a->count)) != 0 || a->opt_off != b->opt_off ||
	    a->section != b->section || a->ext_rcode != b->ext_rcode || a->ncomp != b->ncomp)
		return false;
	for (unsigned i = 0; i < a->ncomp; i++)
		if (a->comp[i].off != b->comp[i].off || a->comp[i].wirelen != b->comp[i].wirelen ||
		    a->comp[i].labels != b->comp[i].labels)
			return false;
	return true;
}

static void test_resp_espace_rollback(void **state)
{
	(void)state;
	pb p;
	tld_query q;
	mkquery(&p, &q, N("\7example\3com"), TLD_T_NS, 0);
	assert_int_equal(tld_query_udp_max(&q, 4096), 512); /* no EDNS: 512 */
	uint8_t out[600], snap[600];
	memset(out, 0xee, sizeof(out));
	tld_resp r;
	assert_int_equal(tld_resp_init(&r, out, tld_query_udp_max(&q, 4096), &q), 0);
	assert_int_equal(r.cap, 512);
	/* Add NS records with fresh target names until one does not fit. */
	int added = 0, rc;
	for (;;) {
		uint8_t target[64];
		int k = snprintf((char *)target + 1, 60, "host-%d", added);
		target[0] = (uint8_t)k;
		memcpy(target + 1 + k, "\7example\3net", 13);
		tld_resp saved;
		memcpy(&saved, &r, sizeof(r));
		memcpy(snap, out, r.len);
		rc = tld_resp_add_rr(&r, TLD_SEC_AUTHORITY, N("\7example\3com"), TLD_T_NS, TLD_C_IN,
		                     3600, target, (uint16_t)(k + 1 + 13));
		if (rc != 0) {
			assert_int_equal(rc, TLD_ESPACE);
			assert_true(resp_same(&saved, &r));
			assert_memory_equal(snap, out, r.len);
			break;
		}
		added++;
	}
	assert_true(added > 20);
	assert_true(r.len <= 512);
	for (size_t i = 512; i < sizeof(out); i++)
		assert_int_equal(out[i], 0xee);
	/* A smaller record still fits after the failure. */
	while (r.len + 2 + 10 + 4 <= 512)
		assert_int_equal(tld_resp_add_rr(&r, TLD_SEC_ADDITIONAL, N("\7example\3com"),
		                                 TLD_T_A, TLD_C_IN, 1, N("abcd"), 4),
		                 0);
	assert_int_equal(tld_resp_add_rr(&r, TLD_SEC_ADDITIONAL, N("\7example\3com"), TLD_T_A,
	                                 TLD_C_IN, 1, N("abcd"), 4),
	                 TLD_ESPACE);
	tld_resp_set_flags(&r, TLD_WIRE_TC, 0);
	int n = tld_resp_finish(&r);
	assert_true(n <= 512);
	assert_true(out[2] & 0x02);
	drr d[200];
	decode(out, (size_t)n, d, 200);
}

static void test_resp_reserve_opt(void **state)
{
	(void)state;
	pb p;
	tld_query q;
	mkquery(&p, &q, N("\3com"), TLD_T_TXT, 512);
	uint8_t out[512];
	tld_resp r;
	assert_int_equal(tld_resp_init(&r, out, tld_query_udp_max(&q, 1232), &q), 0);
	size_t hq = r.len; /* 12 + 9 */
	uint8_t txt[512];
	memset(txt, 'x', sizeof(txt));
	const size_t reserve = TLD_OPT_LEN + 4 + 4 + 4 + 16; /* NSID "abcd", COOKIE 16 */
	assert_int_equal(tld_resp_reserve(&r, 512), TLD_ESPACE);
	assert_int_equal(tld_resp_reserve(&r, reserve), 0);
	/* The largest TXT that fits leaves exactly the reserve. */
	uint16_t max = (uint16_t)(512 - hq - reserve - 12);
	assert_int_equal(tld_resp_add_rr(&r, TLD_SEC_ANSWER, N("\3com"), TLD_T_TXT, TLD_C_IN, 1,
	                                 txt, (uint16_t)(max + 1)),
	                 TLD_ESPACE);
	assert_int_equal(
	    tld_resp_add_rr(&r, TLD_SEC_ANSWER, N("\3com"), TLD_T_TXT, TLD_C_IN, 1, txt, max), 0);
	assert_int_equal(r.len, 512 - reserve);
	assert_int_equal(tld_resp_add_edns_option(&r, TLD_EDNS_COOKIE, txt, 16), TLD_EINVAL);
	/* BADVERS set before the OPT: ext rcode 1, header 0. */
	tld_resp_set_rcode(&r, TLD_RCODE_BADVERS);
	assert_int_equal(tld_resp_add_opt(&r, 1232, false, N("abcd"), 4), 0);
	assert_int_equal(tld_resp_add_opt(&r, 1232, false, NULL, 0), TLD_EEXIST);
	assert_int_equal(tld_resp_add_edns_option(&r, TLD_EDNS_COOKIE, txt, 16), 0);
	assert_int_equal(r.len, 512);
	assert_int_equal(tld_resp_add_edns_option(&r, TLD_EDNS_PADDING, NULL, 0), TLD_ESPACE);
	assert_int_equal(
	    tld_resp_add_rr(&r, TLD_SEC_ADDITIONAL, N(""), TLD_T_A, TLD_C_IN, 1, txt, 0),
	    TLD_ESPACE);
	int n = tld_resp_finish(&r);
	assert_int_equal(n, 512);
	assert_int_equal(out[3] & 0xf, 0);
	drr d[4];
	assert_int_equal(decode(out, 512, d, 4), 2);
	assert_int_equal(d[1].rr.type, TLD_T_OPT);
	assert_int_equal(d[1].rr.ttl >> 24, 1);
	assert_int_equal(d[1].rr.rdlen, 8 + 20);
	/* Our own parser reads the extended rcode back (flip QR to parse it). */
	out[2] &= 0x7f;
	assert_int_equal(tld_query_parse(out, 512, &q), TLD_PARSE_OK);
	assert_int_equal(q.edns_ext_rcode, 1);
	assert_int_equal(q.cookie_len, 16);
	assert_true(q.nsid);

	/* Rcode set after the OPT is patched in; back to NOERROR clears it. */
	tld_resp_set_rcode(&r, 23);
	assert_int_equal(out[3] & 0xf, 23 & 0xf);
	assert_int_equal(out[r.opt_off + 5], 1);
	tld_resp_set_rcode(&r, 0);
	assert_int_equal(out[r.opt_off + 5], 0);
	assert_int_equal(out[3] & 0xf, 0);
}

/* Every cap from the bare question upward: each addition either succeeds or
 * fails with TLD_ESPACE leaving the response untouched, wherever in the RR
 * (owner, fixed fields, either SOA name, the SOA numbers) space runs out. */
static void test_resp_espace_sweep(void **state)
{
	(void)state;
	pb p;
	tld_query q;
	mkquery(&p, &q, N("\3www\7example\3com"), TLD_T_A, 1232);
	static const uint8_t soa[] = "\3ns1\7example\3net\0\12hostmaster\7example\3org\0"
	                             "\0\0\0\1\0\0\0\2\0\0\0\3\0\0\0\4\0\0\0\5";
	static const uint8_t mx[] = "\0\12\4mail\7example\3biz";
	int full = 0;
	for (size_t cap = 33; cap < 400; cap++) {
		uint8_t out[400];
		tld_resp r;
		assert_int_equal(tld_resp_init(&r, out, cap, &q), 0);
		int ok = 0, rrs = 0;
		for (int step = 0; step < 6; step++) {
			tld_resp saved;
			memcpy(&saved, &r, sizeof(r));
			uint8_t snap[400];
			memcpy(snap, out, r.len);
			int rc;
			switch (step) {
			case 0:
				rc = tld_resp_add_rr(&r, TLD_SEC_ANSWER, N("\3www\7example\3com"),
				                     TLD_T_CNAME, TLD_C_IN, 1,
				                     N("\1x\7example\3com"), 15);
				break;
			case 1:
				rc = tld_resp_add_rr(&r, TLD_SEC_ANSWER, N("\1x\7example\3com"),
				                     TLD_T_MX, TLD_C_IN, 1, mx, sizeof(mx));
				break;
			case 2:
				rc = tld_resp_add_rr(&r, TLD_SEC_AUTHORITY, N("\7example\3com"),
				                     TLD_T_SOA, TLD_C_IN, 1, soa, sizeof(soa) - 1);
				break;
			case 3:
				rc = tld_resp_add_rr(&r, TLD_SEC_ADDITIONAL,
				                     N("\4mail\7example\3biz"), TLD_T_A, TLD_C_IN,
				                     1, N("abcd"), 4);
				break;
			case 4:
				rc = tld_resp_add_opt(&r, 1232, true, N("nsid"), 4);
				break;
			default:
				rc = tld_resp_add_edns_option(&r, TLD_EDNS_COOKIE,
				                              N("0123456789abcdef"), 16);
				break;
			}
			if (rc == 0) {
				ok++;
				rrs += step <= 4;
				continue;
			}
			if (step == 5 && rc == TLD_EINVAL) /* no OPT was written */
				continue;
			assert_int_equal(rc, TLD_ESPACE);
			assert_true(resp_same(&saved, &r));
			assert_memory_equal(snap, out, r.len);
		}
		int n = tld_resp_finish(&r);
		assert_true((size_t)n <= cap);
		drr d[8];
		assert_int_equal(decode(out, (size_t)n, d, 8), rrs);
		if (ok == 6)
			full++;
	}
	assert_true(full > 0);
}

static void test_parse_misc(void **state)
{
	(void)state;
	for (int w = TLD_WHY_NONE; w <= TLD_WHY_TSIG + 1; w++)
		assert_non_null(tld_parse_why_text(w));
	/* Input over 65535 bytes: the rest is trailing garbage. */
	static pb p;
	tld_query q;
	pb_query(&p, N("\3com"), TLD_T_A, 0);
	memset(p.b + p.n, 0, 70000 - p.n);
	assert_int_equal(tld_query_parse(p.b, 70000, &q), TLD_PARSE_OK);
	assert_int_equal(q.len, 65535);
	assert_true(q.trailing);
	assert_int_equal(tld_query_udp_max(&q, 100000), 512);
	uint8_t name[TLD_NAME_MAX];
	size_t next;
	assert_int_equal(tld_wire_name_read(p.b, 70000, 12, name, &next), 5);
	/* A query that is nothing but a question fits in a response of its size. */
	uint8_t out[64];
	tld_resp r;
	assert_int_equal(tld_resp_init(&r, out, 12 + 9, &q), 0);
	assert_int_equal(tld_resp_init(&r, out, 12 + 8, &q), TLD_ESPACE);
}

/* Packs RDATAs in the store's form: rdlen | rdata (sig: ttl | rdlen | rdata). */
static size_t pack(uint8_t *buf, size_t off, const void *rd, size_t rdlen, const uint32_t *ttl)
{
	if (ttl != NULL) {
		buf[off++] = (uint8_t)(*ttl >> 24);
		buf[off++] = (uint8_t)(*ttl >> 16);
		buf[off++] = (uint8_t)(*ttl >> 8);
		buf[off++] = (uint8_t)*ttl;
	}
	buf[off++] = (uint8_t)(rdlen >> 8);
	buf[off++] = (uint8_t)rdlen;
	memcpy(buf + off, rd, rdlen);
	return off + rdlen;
}

static void test_resp_rrset_sigs_mark(void **state)
{
	(void)state;
	pb p;
	tld_query q;
	mkquery(&p, &q, N("\3foo\3com"), TLD_T_A, 4096);
	uint8_t out[4096];
	tld_resp r;
	assert_int_equal(tld_resp_init(&r, out, tld_query_udp_max(&q, 4096), &q), 0);
	assert_int_equal(r.cap, 4096);
	uint8_t rrs[256], sigs[512];
	size_t rl = 0, sl = 0;
	rl = pack(rrs, rl, "\3ns1\3foo\3com", 13, NULL);
	rl = pack(rrs, rl, "\3ns2\3foo\3net", 13, NULL);
	rl = pack(rrs, rl, "\3ns3\3foo\3com", 13, NULL);
	uint32_t t1 = 100, t2 = 999999;
	uint8_t sig[100];
	memset(sig, 's', sizeof(sig));
	sl = pack(sigs, sl, sig, sizeof(sig), &t1);
	sl = pack(sigs, sl, sig, sizeof(sig), &t2);

	assert_int_equal(tld_resp_add_rrset(&r, TLD_SEC_AUTHORITY, N("\3foo\3com"), TLD_T_NS,
	                                    TLD_C_IN, 3600, rrs, 0),
	                 0);
	/* A truncated packed set: nothing written. */
	size_t len = r.len;
	assert_int_equal(tld_resp_add_rrset(&r, TLD_SEC_AUTHORITY, N("\3foo\3com"), TLD_T_NS,
	                                    TLD_C_IN, 3600, rrs, rl - 1),
	                 TLD_ERDATA);
	assert_int_equal(tld_resp_add_rrset(&r, TLD_SEC_AUTHORITY, N("\3foo\3com"), TLD_T_NS,
	                                    TLD_C_IN, 3600, rrs, 1),
	                 TLD_ERDATA);
	assert_int_equal(r.len, len);
	assert_int_equal(r.count[TLD_SEC_AUTHORITY], 0);

	tld_resp_mark m = tld_resp_save(&r);
	assert_int_equal(tld_resp_add_rrset(&r, TLD_SEC_AUTHORITY, N("\3foo\3com"), TLD_T_NS,
	                                    TLD_C_IN, 3600, rrs, rl),
	                 3);
	assert_int_equal(
	    tld_resp_add_sigs(&r, TLD_SEC_AUTHORITY, N("\3foo\3com"), TLD_C_IN, 3600, sigs, sl), 2);
	assert_int_equal(r.count[TLD_SEC_AUTHORITY], 5);
	int n = tld_resp_finish(&r);
	drr d[8];
	assert_int_equal(decode(out, (size_t)n, d, 8), 5);
	assert_true(tld_name_equal(d[1].names[0], N("\3ns2\3foo\3net")));
	assert_int_equal(d[3].rr.type, TLD_T_RRSIG);
	assert_int_equal(d[3].rr.ttl, 100);
	assert_int_equal(d[4].rr.ttl, 3600);
	assert_int_equal(d[4].rr.rdlen, 100);
	/* Roll back both sets at once. */
	tld_resp_restore(&r, &m);
	assert_int_equal(r.len, len);
	assert_int_equal(r.count[TLD_SEC_AUTHORITY], 0);
	/* All or nothing when the set does not fit. */
	r.cap = len + 30;
	assert_int_equal(tld_resp_add_rrset(&r, TLD_SEC_AUTHORITY, N("\3foo\3com"), TLD_T_NS,
	                                    TLD_C_IN, 3600, rrs, rl),
	                 TLD_ESPACE);
	assert_int_equal(r.len, len);
	assert_int_equal(r.count[TLD_SEC_AUTHORITY], 0);
	assert_int_equal(tld_resp_finish(&r), len);
}

static void test_resp_inplace(void **state)
{
	(void)state;
	pb p;
	tld_query q;
	mkquery(&p, &q, N("\3wWw\3cOm"), TLD_T_A, 1232);
	uint8_t qcopy[64];
	memcpy(qcopy, p.b, q.question_end);
	tld_resp r;
	assert_int_equal(tld_resp_init(&r, p.b, 1232, &q), 0);
	assert_int_equal(
	    tld_resp_add_rr(&r, TLD_SEC_ANSWER, q.qname_lc, TLD_T_A, TLD_C_IN, 5, N("\1\2\3\4"), 4),
	    0);
	assert_int_equal(tld_resp_add_opt(&r, 1232, false, NULL, 0), 0);
	int n = tld_resp_finish(&r);
	assert_memory_equal(p.b + 12, qcopy + 12, q.question_end - 12u);
	assert_int_equal(p.b[2], 0x81);
	drr d[4];
	assert_int_equal(decode(p.b, (size_t)n, d, 4), 2);
	assert_memory_equal(d[0].rr.owner, "\3wWw\3cOm", 9);
}

/* Big TCP-sized response: no pointer to 0x4000 or beyond, and it decodes. */
static void test_resp_big_pointers(void **state)
{
	(void)state;
	pb p;
	tld_query q;
	mkquery(&p, &q, N("\3big\7example"), TLD_T_NS, 0);
	static uint8_t out[65535];
	tld_resp r;
	assert_int_equal(tld_resp_init(&r, out, 70000, &q), 0);
	assert_int_equal(r.cap, 65535);
	int i;
	for (i = 0;; i++) {
		uint8_t t[80];
		int k = snprintf((char *)t + 1, 70, "ns-%d", i);
		t[0] = (uint8_t)k;
		memcpy(t + 1 + k, "\6shared\7example\0", 16);
		int rc = tld_resp_add_rr(&r, TLD_SEC_ANSWER, N("\3big\7example"), TLD_T_NS,
		                         TLD_C_IN, 1, t, (uint16_t)(k + 1 + 16));
		if (rc == TLD_ESPACE)
			break;
		assert_int_equal(rc, 0);
	}
	assert_true(r.len > 0x4000);
	for (unsigned k = 0; k < r.ncomp; k++)
		assert_true(r.comp[k].off < 0x4000);
	int n = tld_resp_finish(&r);
	static drr d[8000];
	assert_int_equal(decode(out, (size_t)n, d, 8000), i);
	for (int k = 0; k < i; k += 997) {
		char want[80];
		snprintf(want, sizeof(want), "ns-%d", k);
		assert_int_equal(d[k].names[0][0], strlen(want));
		assert_memory_equal(d[k].names[0] + 1, want, strlen(want));
		assert_true(
		    tld_name_equal(tld_name_suffix(d[k].names[0], 2), N("\6shared\7example")));
	}
}

/* Random names from a small alphabet, so suffixes are shared often; every RR
 * added must read back identical (case-insensitively). */
static void rand_name(uint8_t *name, unsigned *seed)
{
	static const char *labels[] = {"a", "B", "com", "Net", "example", "x-y", "ns1", "zz"};
	int n = (int)(rand_r(seed) % 5);
	size_t o = 0;
	for (int i = 0; i < n; i++) {
		const char *l = labels[rand_r(seed) % 8];
		name[o++] = (uint8_t)strlen(l);
		memcpy(name + o, l, strlen(l));
		o += strlen(l);
	}
	name[o] = 0;
}

static void test_resp_random_roundtrip(void **state)
{
	(void)state;
	unsigned seed = 12345;
	static const uint16_t types[] = {TLD_T_NS,  TLD_T_CNAME, TLD_T_PTR,  TLD_T_MX,
	                                 TLD_T_SOA, TLD_T_A,     TLD_T_DNAME};
	for (int round = 0; round < 300; round++) {
		pb p;
		tld_query q;
		uint8_t qn[TLD_NAME_MAX];
		rand_name(qn, &seed);
		mkquery(&p, &q, qn, TLD_T_A, 0);
		uint8_t out[2048];
		tld_resp r;
		assert_int_equal(tld_resp_init(&r, out, sizeof(out), &q), 0);
		struct {
			uint8_t owner[TLD_NAME_MAX], n1[TLD_NAME_MAX], n2[TLD_NAME_MAX];
			uint16_t type;
		} want[40];
		int nw = 0;
		for (int k = 0; k < 40; k++) {
			uint16_t type = types[rand_r(&seed) % 7];
			rand_name(want[nw].owner, &seed);
			rand_name(want[nw].n1, &seed);
			rand_name(want[nw].n2, &seed);
			uint8_t rd[600];
			size_t rl = 0, l1 = tld_name_len(want[nw].n1),
			       l2 = tld_name_len(want[nw].n2);
			if (type == TLD_T_MX) {
				rd[rl++] = 0;
				rd[rl++] = 5;
			}
			memcpy(rd + rl, want[nw].n1, l1);
			rl += l1;
			if (type == TLD_T_SOA) {
				memcpy(rd + rl, want[nw].n2, l2);
				rl += l2;
				memset(rd + rl, 7, 20);
				rl += 20;
			}
			if (type == TLD_T_A)
				rl = 4;
			int rc = tld_resp_add_rr(&r, TLD_SEC_ANSWER, want[nw].owner, type, TLD_C_IN,
			                         1, rd, (uint16_t)rl);
			if (rc == TLD_ESPACE)
				continue;
			assert_int_equal(rc, 0);
			want[nw++].type = type;
		}
		int n = tld_resp_finish(&r);
		drr d[40];
		assert_int_equal(decode(out, (size_t)n, d, 40), nw);
		for (int k = 0; k < nw; k++) {
			assert_int_equal(d[k].rr.type, want[k].type);
			assert_true(tld_name_equal(d[k].rr.owner, want[k].owner));
			if (want[k].type == TLD_T_A)
				continue;
			if (want[k].type == TLD_T_DNAME) {
				assert_memory_equal(out + d[k].rr.rdata_off, want[k].n1,
				                    tld_name_len(want[k].n1));
				continue;
			}
			assert_true(tld_name_equal(d[k].names[0], want[k].n1));
			if (want[k].type == TLD_T_SOA)
				assert_true(tld_name_equal(d[k].names[1], want[k].n2));
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_plain),
	    cmocka_unit_test(test_parse_edns),
	    cmocka_unit_test(test_parse_other_sections),
	    cmocka_unit_test(test_parse_mixed_case_echo),
	    cmocka_unit_test(test_parse_drop),
	    cmocka_unit_test(test_parse_qdcount),
	    cmocka_unit_test(test_parse_bad_qname),
	    cmocka_unit_test(test_parse_bad_records),
	    cmocka_unit_test(test_parse_bad_opt),
	    cmocka_unit_test(test_parse_misc),
	    cmocka_unit_test(test_name_read),
	    cmocka_unit_test(test_resp_compression),
	    cmocka_unit_test(test_resp_rdata_errors),
	    cmocka_unit_test(test_resp_espace_rollback),
	    cmocka_unit_test(test_resp_espace_sweep),
	    cmocka_unit_test(test_resp_reserve_opt),
	    cmocka_unit_test(test_resp_rrset_sigs_mark),
	    cmocka_unit_test(test_resp_inplace),
	    cmocka_unit_test(test_resp_big_pointers),
	    cmocka_unit_test(test_resp_random_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
