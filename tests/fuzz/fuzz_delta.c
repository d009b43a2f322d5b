/* fuzz_delta.c - libFuzzer target for deltas: parse and iterate any bytes, apply what parses. */
/*
 * Each input is parsed as an encoded delta. When it parses, its operations
 * are iterated, re-encoded with tld_delta_add() (which must give back the
 * same bytes), and, when small, applied to a small zone inside a write
 * transaction that is always aborted, so the store never changes between
 * inputs. The zone's serial is taken from the delta so that the operations
 * and zone rules are reached rather than the serial check. Seeds are in
 * tests/fuzz/corpus/delta/ (written by tests/unit/test_delta with
 * TLD_DELTA_SEEDS=DIR). Run with tests/fuzz/run delta.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../replication/delta.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define APPLY_MAX_OPS 64 /* keeps each input cheap */

static const char zone_text[] =
    "$ORIGIN fz.\n$TTL 3600\n"
    "@ SOA ns.fz. host.fz. 1 7200 3600 1209600 300\n"
    "@ NS ns.fz.\n@ NS ns.d1.fz.\n"
    "@ NSEC a.fz. NS SOA RRSIG NSEC\n"
    "a CNAME b\nb A 192.0.2.3\n"
    "d1 NS ns.d1\nd1 NS ns.other.example.\n"
    "d1 DS 1 13 2 0000000000000000000000000000000000000000000000000000000000000000\n"
    "ns.d1 A 192.0.2.1\nns.d1 AAAA 2001:db8::1\n"
    "d2 NS ns1.d1\nx.y.ent TXT \"ent\"\nns A 192.0.2.53\n";

static tld_store *store;
static tld_zone zone;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[] = "/tmp/fuzz-delta-XXXXXX";
	store = fuzz_scratch_store(dir, 64u << 20);
	fuzz_import(store, zone_text, sizeof(zone_text) - 1, &zone);
	return 0;
}

/* Iterates v, rebuilding it: the encoding of what parsed must be the input. */
static void check_reencode(const tld_delta_view *v, const uint8_t *data, size_t size)
{
	tld_delta d;
	tld_delta_op op;
	size_t pos = 0;
	uint32_t n = 0;
	CHECK(tld_delta_init(&d, v->apex, v->from, v->to) == 0);
	while (tld_delta_next(v, &pos, &op)) {
		CHECK(op.op <= TLD_OP_ADD && tld_name_is_below(op.owner, v->apex));
		CHECK(tld_delta_add(&d, op.op, op.owner, op.type, op.ttl, op.rdata, op.rdlen) == 0);
		n++;
	}
	CHECK(n == v->count && pos == size);
	CHECK(d.len == size && memcmp(d.buf, data, size) == 0);
	tld_delta_free(&d);
}

static void try_apply(const tld_delta_view *v)
{
	tld_errbuf eb = {{0}};
	tld_writer w;
	tld_zone z = zone;
	z.serial = v->from;
	CHECK(tld_writer_begin(store, &w, &eb) == 0);
	int rc = tld_delta_apply(&w, &z, v, 2, &eb);
	CHECK(rc == 0 || rc == TLD_EZONE || rc == TLD_ESERIAL || rc == TLD_EINVAL);
	if (rc == 0)
		CHECK(z.serial == v->to && z.journal_last == zone.journal_last + 1);
	tld_writer_abort(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tld_delta_view v;
	if (tld_delta_parse(data, size, &v) != 0)
		return 0;
	check_reencode(&v, data, size);
	if (v.count <= APPLY_MAX_OPS)
		try_apply(&v);
	return 0;
}
