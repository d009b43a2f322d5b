/* fuzz_zone.c - libFuzzer target for zone import: master-file text in, store content out. */
/*
 * Each input is parsed and checked as a master file (tld_zdata_load_string,
 * i.e. libzscanner plus the TLD zone checks). When it loads, it is written
 * to a small scratch store as a new zone inside a write transaction that is
 * always aborted, so the store never changes between inputs. Then the dump
 * round trip README.md promises is checked in the same transaction: every
 * RRset written is dumped as text (tld_dump_rrset), the text must load
 * again, and writing it as a second zone must give exactly the same RRsets
 * (owners, types, TTLs, RDATA and signatures, byte for byte), flags, NSEC3
 * parameters and serial. Inputs containing $INCLUDE are skipped: they would
 * read whatever files the machine holds, which makes runs neither safe nor
 * reproducible (tests/zones/broken/include-*.zone cover that path in the
 * system tests).
 * Seeds are in tests/fuzz/corpus/zone/. Run with tests/fuzz/run zone.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "store/dump.h"
#include "store/import.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static tld_store *store;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[] = "/tmp/fuzz-zone-XXXXXX";
	store = fuzz_scratch_store(dir, 256u << 20);
	return 0;
}

/* A growable byte string. */
struct bytes {
	uint8_t *p;
	size_t len, cap;
};

static void bytes_add(struct bytes *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		CHECK(b->p != NULL);
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

/* Serialises every RRset: owner | type | ttl | counts | records | signatures. */
static int collect(const uint8_t *owner, const tld_rrset *rs, void *arg)
{
	struct bytes *b = arg;
	uint8_t hdr[10] = {(uint8_t)(rs->type >> 8),      (uint8_t)rs->type,
	                   (uint8_t)(rs->ttl >> 24),      (uint8_t)(rs->ttl >> 16),
	                   (uint8_t)(rs->ttl >> 8),       (uint8_t)rs->ttl,
	                   (uint8_t)(rs->rr_count >> 8),  (uint8_t)rs->rr_count,
	                   (uint8_t)(rs->sig_count >> 8), (uint8_t)rs->sig_count};
	bytes_add(b, owner, tld_name_len(owner));
	bytes_add(b, hdr, sizeof(hdr));
	bytes_add(b, rs->rrs, (size_t)(rs->end - rs->rrs));
	return 0;
}

static int dump_one(const uint8_t *owner, const tld_rrset *rs, void *arg)
{
	tld_errbuf eb = {{0}};
	CHECK(tld_dump_rrset(arg, owner, rs, &eb) == 0);
	return 0;
}

/* The zone as text, as `tldctl dump` writes it (order aside: loading sorts). */
static char *dump_text(tld_writer *w, const tld_zone *z, size_t *len)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, len);
	CHECK(f != NULL);
	CHECK(tld_writer_foreach_rrset(w, z, z->apex, true, dump_one, f) == 0);
	CHECK(fclose(f) == 0);
	return text;
}

static bool has_include(const uint8_t *data, size_t size)
{
	static const char word[] = "$include";
	for (size_t i = 0; i + sizeof(word) - 1 <= size; i++)
		if (data[i] == '$' &&
		    strncasecmp((const char *)data + i, word, sizeof(word) - 1) == 0)
			return true;
	return false;
}

static void roundtrip(tld_writer *w, const tld_zone *z)
{
	size_t len;
	char *text = dump_text(w, z, &len);
	tld_zdata *zd2 = NULL;
	tld_errbuf eb = {{0}};
	tld_import_opts o = {.origin = z->apex};
	int rc = tld_zdata_load_string(text, len, "dump", &o, &zd2, NULL, &eb);
	if (rc != 0) { /* what was dumped must load again */
		fprintf(stderr, "dump does not load: %s\n--- dump ---\n%s", eb.msg, text);
		abort();
	}
	tld_zone z2;
	CHECK(tld_zdata_write(zd2, w, &z2, NULL, &eb) == 0);
	struct bytes a = {0}, b = {0};
	CHECK(tld_writer_foreach_rrset(w, z, z->apex, true, collect, &a) == 0);
	CHECK(tld_writer_foreach_rrset(w, &z2, z2.apex, true, collect, &b) == 0);
	if (a.len != b.len || memcmp(a.p, b.p, a.len) != 0 || z->serial != z2.serial ||
	    z->flags != z2.flags || z->nsec3_alg != z2.nsec3_alg ||
	    z->nsec3_flags != z2.nsec3_flags || z->nsec3_iter != z2.nsec3_iter ||
	    z->nsec3_saltlen != z2.nsec3_saltlen ||
	    memcmp(z->nsec3_salt, z2.nsec3_salt, z->nsec3_saltlen) != 0) {
		fprintf(stderr, "dump and reload changed the zone\n--- dump ---\n%s", text);
		abort();
	}
	free(a.p);
	free(b.p);
	free(text);
	tld_zdata_free(zd2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (has_include(data, size))
		return 0;
	tld_zdata *zd = NULL;
	tld_errbuf eb = {{0}};
	int rc = tld_zdata_load_string((const char *)data, size, "fuzz", NULL, &zd, NULL, &eb);
	if (rc != 0) {
		CHECK(rc == TLD_ESYNTAX || rc == TLD_EZONE || rc == TLD_ENAME || rc == TLD_ERDATA ||
		      rc == TLD_EINVAL);
		CHECK(eb.msg[0] != 0); /* a refusal always says why */
		return 0;
	}
	tld_writer w;
	tld_zone z;
	CHECK(tld_writer_begin(store, &w, &eb) == 0);
	CHECK(tld_zdata_write(zd, &w, &z, NULL, &eb) == 0);
	CHECK(tld_zone_publish(&w, &z, &eb) == 0);
	CHECK(z.serial == tld_zdata_serial(zd));
	roundtrip(&w, &z);
	tld_writer_abort(&w);
	tld_zdata_free(zd);
	return 0;
}
