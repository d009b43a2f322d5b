/* engine-bench.c - nanoseconds per query of the query engine alone (no sockets), on a real store.
 */
/*
 * usage: engine-bench STORE QUERYFILE [ITERATIONS] [BATCH]
 * QUERYFILE is dnsperf's format ("name TYPE" per line). Queries are encoded
 * once (half with DO=1), then answered in batches of BATCH (default 32) per
 * read transaction, as a worker does, and the mean time per query printed.
 *
 * A second line gives the floor of any store-backed answer: the mean time of
 * one bare LMDB lookup (mdb_get of a random existing key of the cuts database,
 * the one lookup a referral needs), each in its own renewed read transaction
 * as with BATCH 1. No engine work at all: on a zone much larger than the CPU
 * caches this is mostly cache misses along the B-tree path.
 */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dns/name.h"
#include "dns/rrtype.h"
#include "dns/wire.h"
#include "query.h"
#include "store/store.h"

#define MAXQ       200000
#define FLOOR_KEYS 200000

static double elapsed_ns(const struct timespec *t0, const struct timespec *t1)
{
	return (double)(t1->tv_sec - t0->tv_sec) * 1e9 + (double)(t1->tv_nsec - t0->tv_nsec);
}

/* Every step-th key of the cuts database (at most FLOOR_KEYS), copied out. */
static size_t floor_keys(MDB_env *env, MDB_dbi *dbi, uint8_t (*keys)[TLD_KEY_MAX + 8], size_t *lens)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_stat ms;
	if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
		return 0;
	size_t n = 0;
	if (mdb_dbi_open(txn, "cuts", 0, dbi) == 0 && mdb_stat(txn, *dbi, &ms) == 0 &&
	    mdb_cursor_open(txn, *dbi, &cur) == 0) {
		size_t step = ms.ms_entries / FLOOR_KEYS + 1, i = 0;
		MDB_val k, v;
		for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && n < FLOOR_KEYS;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
			if (i++ % step == 0 && k.mv_size <= sizeof(keys[0])) {
				memcpy(keys[n], k.mv_data, k.mv_size);
				lens[n++] = k.mv_size;
			}
		mdb_cursor_close(cur);
	}
	mdb_txn_commit(txn); /* makes the dbi handle usable in later transactions */
	return n;
}

/* Mean ns of one mdb_get of a random key from keys, in its own snapshot. */
static double lmdb_floor(MDB_env *env, long iters)
{
	static uint8_t keys[FLOOR_KEYS][TLD_KEY_MAX + 8];
	static size_t lens[FLOOR_KEYS];
	MDB_dbi dbi;
	MDB_txn *txn;
	size_t n = floor_keys(env, &dbi, keys, lens);
	if (n == 0 || mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
		return -1;
	mdb_txn_reset(txn);
	uint64_t x = 88172645463325252u, sum = 0; /* xorshift: keys in random order */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < iters; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		size_t j = (size_t)(x % n);
		MDB_val k = {lens[j], keys[j]}, v;
		mdb_txn_renew(txn);
		if (mdb_get(txn, dbi, &k, &v) == 0)
			sum += v.mv_size;
		mdb_txn_reset(txn);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	mdb_txn_abort(txn);
	return sum > 0 ? elapsed_ns(&t0, &t1) / (double)iters : -1;
}

static size_t make_query(const char *name, const char *type, uint16_t id, bool dnssec, uint8_t *out)
{
	uint8_t wire[TLD_NAME_MAX];
	int nlen = tld_name_from_text(name, wire);
	int t = tld_rrtype_from_text(type);
	if (nlen < 0 || t < 0)
		return 0;
	memset(out, 0, 12);
	out[0] = (uint8_t)(id >> 8);
	out[1] = (uint8_t)id;
	out[5] = 1;  /* qdcount */
	out[11] = 1; /* arcount: OPT */
	memcpy(out + 12, wire, (size_t)nlen);
	size_t o = 12 + (size_t)nlen;
	out[o++] = (uint8_t)(t >> 8);
	out[o++] = (uint8_t)t;
	out[o++] = 0;
	out[o++] = 1;
	const uint8_t opt[11] = {0, 0, 41, 4, 0xd0, 0, 0, dnssec ? 0x80 : 0, 0, 0, 0};
	memcpy(out + o, opt, sizeof(opt));
	return o + sizeof(opt);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: engine-bench STORE QUERYFILE [ITERATIONS] [BATCH]\n");
		return 2;
	}
	long iters = argc > 3 ? atol(argv[3]) : 2000000;
	int batch = argc > 4 ? atoi(argv[4]) : 32;
	static uint8_t qbuf[MAXQ][300];
	static size_t qlen[MAXQ];
	FILE *f = fopen(argv[2], "r");
	if (f == NULL) {
		perror(argv[2]);
		return 1;
	}
	char line[600], name[512], type[32];
	size_t nq = 0;
	while (nq < MAXQ && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "%511s %31s", name, type) == 2 &&
		    (qlen[nq] = make_query(name, type, (uint16_t)nq, nq & 1, qbuf[nq])) > 0)
			nq++;
	fclose(f);
	tld_store *st;
	tld_errbuf eb = {{0}};
	tld_store_opts so = {.read_only = true};
	if (nq == 0 || tld_store_open(&st, argv[1], &so, &eb) < 0) {
		fprintf(stderr, "engine-bench: no queries or store: %s\n", eb.msg);
		return 1;
	}
	tld_engine_conf conf;
	tld_engine_conf_default(&conf);
	tld_engine e;
	tld_engine_init(&e, st, &conf);
	static uint8_t out[4096];
	size_t bytes = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < iters; i += batch) {
		tld_engine_batch_begin(&e);
		for (int j = 0; j < batch; j++) {
			size_t k = (size_t)(i + j) % nq;
			bytes +=
			    tld_engine_answer(&e, qbuf[k], qlen[k], out, sizeof(out), false, NULL);
		}
		tld_engine_batch_end(&e);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ns = elapsed_ns(&t0, &t1) / (double)iters;
	printf(
	    "engine: %.0f ns/query over %ld queries (%zu distinct, batch %d), %.0f bytes/answer, "
	    "rcodes: noerror %lu nxdomain %lu refused %lu\n",
	    ns, iters, nq, batch, (double)bytes / (double)iters, (unsigned long)e.stats.rcode[0],
	    (unsigned long)e.stats.rcode[3], (unsigned long)e.stats.rcode[5]);
	tld_engine_fini(&e);
	double floor = lmdb_floor(tld_store_env(st), iters);
	if (floor > 0)
		printf("lmdb: %.0f ns per bare lookup (mdb_get of a random delegation in the cuts "
		       "database, one read transaction each) over %ld lookups\n",
		       floor, iters);
	tld_store_close(st);
	return 0;
}
