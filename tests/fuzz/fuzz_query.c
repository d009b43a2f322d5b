/* fuzz_query.c - libFuzzer target for the query path: packet in, response out, on a small store. */
/*
 * The store is built once, in a temporary directory, from a small signed-like
 * zone with every kind of node the engine handles (delegations with and
 * without DS and glue, a wildcard, a CNAME chain and loop, a CNAME into a
 * delegation, DNAMEs (in and out of the zone, in a loop, one whose
 * substitutions overflow), an empty non-terminal, NSEC records). Each input
 * is answered as a UDP and as a TCP query; the response must be a
 * well-formed DNS message that echoes the query id.
 * Built by tests/fuzz/run (see there); run for longer with
 *   tests/fuzz/run --seconds 3600 query
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dns/wire.h"
#include "query.h"
#include "store/import.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static const char zone_text[] =
    "$ORIGIN fz.\n$TTL 3600\n"
    "@ SOA ns.fz. host.fz. 1 7200 3600 1209600 300\n"
    "@ NS ns.fz.\n@ NS ns.d1.fz.\n"
    "@ DNSKEY 257 3 13 "
    "mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==\n"
    "@ NSEC a.fz. NS SOA RRSIG NSEC DNSKEY\n"
    "@ RRSIG SOA 13 1 3600 20361231000000 20260101000000 1 fz. "
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n"
    "a CNAME b\nb CNAME c\nc A 192.0.2.3\n"
    "a NSEC d1 CNAME RRSIG NSEC\n"
    "d1 NS ns.d1\nd1 NS ns.other.example.\nd1 DS 1 13 2 "
    "0000000000000000000000000000000000000000000000000000000000000000\n"
    "ns.d1 A 192.0.2.1\nns.d1 AAAA 2001:db8::1\n"
    "d2 NS ns1.d1\nd2 NSEC x.y.ent NS RRSIG NSEC\n"
    "x.y.ent TXT \"ent\"\n"
    "*.wild TXT \"wild\"\n*.wild MX 10 mail\n"
    "ns A 192.0.2.53\nmail A 192.0.2.25\n"
    "loop CNAME loop\n"
    "old DNAME d1.fz.\nout DNAME example.net.\nl1 DNAME l2.fz.\nl2 DNAME l1.fz.\n"
    "long DNAME a-label-long-enough-to-make-substitutions-overflow-255-bytes.fz.\n"
    "tocut CNAME www.d1.fz.\n";

static tld_store *store;
static tld_engine engine;
static tld_engine_conf conf;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[] = "/tmp/fuzz-query-XXXXXX";
	tld_zone z;
	store = fuzz_scratch_store(dir, 64u << 20);
	fuzz_import(store, zone_text, sizeof(zone_text) - 1, &z);
	tld_engine_conf_default(&conf);
	strcpy(conf.identity, "fuzz-node");
	CHECK(tld_engine_init(&engine, store, &conf) == 0);
	return 0;
}

/* The response must parse as a message: header, counted records in bounds. */
static void check_response(const uint8_t *q, size_t qlen, const uint8_t *r, size_t rlen, size_t cap)
{
	CHECK(rlen >= TLD_HDR_LEN && rlen <= cap);
	CHECK(r[0] == q[0] && r[1] == q[1]); /* id echoed */
	CHECK(r[2] & 0x80);                  /* QR */
	unsigned counts[4];
	for (int i = 0; i < 4; i++)
		counts[i] = (unsigned)(r[4 + 2 * i] << 8 | r[5 + 2 * i]);
	size_t off = TLD_HDR_LEN;
	for (unsigned i = 0; i < counts[0]; i++) {
		size_t next;
		CHECK(tld_wire_name_read(r, rlen, off, NULL, &next) > 0);
		off = next + 4;
		CHECK(off <= rlen);
	}
	for (unsigned i = 0; i < counts[1] + counts[2] + counts[3]; i++) {
		tld_wire_rr rr;
		size_t next;
		CHECK(tld_wire_rr_read(r, rlen, off, &rr, &next) == 0);
		off = next;
	}
	CHECK(off == rlen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[TLD_MSG_MAX];
	tld_engine_batch_begin(&engine);
	for (int tcp = 0; tcp < 2; tcp++) {
		size_t cap = tcp ? TLD_MSG_MAX : 4096;
		size_t n = tld_engine_answer(&engine, data, size, out, cap, tcp, NULL);
		if (n > 0)
			check_response(data, size, out, n, cap);
	}
	tld_engine_batch_end(&engine);
	return 0;
}
