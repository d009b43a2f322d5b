/* test_store.c - unit tests of node/store/store.c: zones, RRsets, indexes, snapshots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ftw.h>
#include <sys/stat.h>
#include <lmdb.h>

#include "store/store.h"

/* RR types used here. */
enum {
	T_A = 1,
	T_NS = 2,
	T_SOA = 6,
	T_MX = 15,
	T_TXT = 16,
	T_DS = 43,
	T_RRSIG = 46,
	T_NSEC = 47,
	T_NSEC3 = 50
};

/* ---- helpers ---- */

/* Wire form of a presentation name; a few rotating buffers so that several
 * can appear in one expression. */
static const uint8_t *nm(const char *text)
{
	static uint8_t bufs[8][TLD_NAME_MAX];
	static unsigned next;
	uint8_t *b = bufs[next++ % 8];
	int rc = tld_name_from_text(text, b);
	if (rc < 0)
		fail_msg("bad test name \"%s\"", text);
	return b;
}

/* A growing byte string: RDATA, or a value section of records. */
struct bytes {
	uint8_t b[2048];
	size_t n;
	uint16_t count; /* records appended with rec_add / sig_add */
};

static void b_put(struct bytes *w, const void *p, size_t len)
{
	assert_true(w->n + len <= sizeof(w->b));
	memcpy(w->b + w->n, p, len);
	w->n += len;
}

static void b_u8(struct bytes *w, uint8_t v)
{
	b_put(w, &v, 1);
}

static void b_u16(struct bytes *w, uint16_t v)
{
	uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	b_put(w, x, 2);
}

static void b_u32(struct bytes *w, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	b_put(w, x, 4);
}

static void b_name(struct bytes *w, const char *text)
{
	const uint8_t *n = nm(text);
	b_put(w, n, tld_name_len(n));
}

/* Appends one (rdlen | rdata) record. */
static void rec_add(struct bytes *rrs, const struct bytes *rd)
{
	b_u16(rrs, (uint16_t)rd->n);
	b_put(rrs, rd->b, rd->n);
	rrs->count++;
}

/* Appends one (ttl | rdlen | rdata) signature. */
static void sig_add(struct bytes *sigs, uint32_t ttl, const struct bytes *rd)
{
	b_u32(sigs, ttl);
	rec_add(sigs, rd);
}

static struct bytes rd_soa(uint32_t serial)
{
	struct bytes w = {0};
	b_name(&w, "ns1.example.");
	b_name(&w, "hostmaster.example.");
	b_u32(&w, serial);
	b_u32(&w, 7200);
	b_u32(&w, 3600);
	b_u32(&w, 1209600);
	b_u32(&w, 3600);
	return w;
}

static struct bytes rd_name(const char *text)
{
	struct bytes w = {0};
	b_name(&w, text);
	return w;
}

static struct bytes rd_a(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
	struct bytes w = {0};
	uint8_t x[4] = {a, b, c, d};
	b_put(&w, x, 4);
	return w;
}

static struct bytes rd_txt(const char *s)
{
	struct bytes w = {0};
	b_u8(&w, (uint8_t)strlen(s));
	b_put(&w, s, strlen(s));
	return w;
}

static struct bytes rd_ds(uint16_t tag)
{
	struct bytes w = {0};
	b_u16(&w, tag);
	b_u8(&w, 8);
	b_u8(&w, 2);
	for (int i = 0; i < 32; i++)
		b_u8(&w, (uint8_t)(i * 7));
	return w;
}

/* NSEC with a one-window bitmap of types below 256. */
static struct bytes rd_nsec(const char *next, const uint16_t *types, int n)
{
	struct bytes w = {0};
	uint8_t bitmap[32] = {0};
	int len = 0;
	b_name(&w, next);
	for (int i = 0; i < n; i++) {
		bitmap[types[i] / 8] |= (uint8_t)(0x80 >> (types[i] % 8));
		if (types[i] / 8 + 1 > len)
			len = types[i] / 8 + 1;
	}
	b_u8(&w, 0);
	b_u8(&w, (uint8_t)len);
	b_put(&w, bitmap, (size_t)len);
	return w;
}

static struct bytes rd_rrsig(uint16_t covered, uint8_t labels, uint32_t ottl)
{
	struct bytes w = {0};
	b_u16(&w, covered);
	b_u8(&w, 8);
	b_u8(&w, labels);
	b_u32(&w, ottl);
	b_u32(&w, 1767225600); /* 2026-01-01 */
	b_u32(&w, 1764547200); /* 2025-12-01 */
	b_u16(&w, 12345);
	b_name(&w, "example.");
	for (int i = 0; i < 64; i++)
		b_u8(&w, (uint8_t)(255 - i));
	return w;
}

static struct bytes rd_nsec3(void)
{
	struct bytes w = {0};
	b_u8(&w, 1);
	b_u8(&w, 0);
	b_u16(&w, 0);
	b_u8(&w, 0);
	b_u8(&w, 20);
	for (int i = 0; i < 20; i++)
		b_u8(&w, (uint8_t)i);
	return w;
}

/* Encodes and stores an RRset. sigs may be NULL. */
static void put(tld_writer *w, const tld_zone *z, const char *owner, uint16_t type, uint32_t ttl,
                const struct bytes *rrs, const struct bytes *sigs)
{
	static const struct bytes none = {{0}, 0, 0};
	uint8_t val[4096];
	tld_errbuf eb = {{0}};
	if (sigs == NULL)
		sigs = &none;
	int len = tld_rrset_encode(val, sizeof(val), ttl, rrs->count, rrs->b, rrs->n, sigs->count,
	                           sigs->b, sigs->n);
	assert_true(len > 0);
	int rc = tld_rrset_put(w, z, nm(owner), type, val, (size_t)len, false, &eb);
	if (rc != 0)
		fail_msg("tld_rrset_put(%s, %u): %d %s", owner, type, rc, eb.msg);
}

/* Stores an RRset of one record. */
static void put1(tld_writer *w, const tld_zone *z, const char *owner, uint16_t type, uint32_t ttl,
                 struct bytes rd)
{
	struct bytes rrs = {0};
	rec_add(&rrs, &rd);
	put(w, z, owner, type, ttl, &rrs, NULL);
}

static void put_apex(tld_writer *w, const tld_zone *z, const char *apex, uint32_t serial)
{
	put1(w, z, apex, T_SOA, 3600, rd_soa(serial));
	put1(w, z, apex, T_NS, 3600, rd_name("ns1.example."));
}

struct fx {
	char dir[64];   /* mkdtemp directory */
	char path[128]; /* the store: dir/db (created by tld_store_open) */
	tld_store *st;
	tld_reader r;
	tld_zone z;   /* example. */
	tld_zone sub; /* sub.example. */
};

static void writer_begin(struct fx *f, tld_writer *w)
{
	tld_errbuf eb = {{0}};
	int rc = tld_writer_begin(f->st, w, &eb);
	if (rc != 0)
		fail_msg("tld_writer_begin: %d %s", rc, eb.msg);
}

static void writer_commit(tld_writer *w)
{
	tld_errbuf eb = {{0}};
	int rc = tld_writer_commit(w, &eb);
	if (rc != 0)
		fail_msg("tld_writer_commit: %d %s", rc, eb.msg);
}

static void zone_new(tld_writer *w, const char *apex, tld_zone *z)
{
	tld_errbuf eb = {{0}};
	int rc = tld_zone_new(w, nm(apex), z, &eb);
	if (rc != 0)
		fail_msg("tld_zone_new(%s): %d %s", apex, rc, eb.msg);
}

static void publish(tld_writer *w, const tld_zone *z)
{
	tld_errbuf eb = {{0}};
	int rc = tld_zone_publish(w, z, &eb);
	if (rc != 0)
		fail_msg("tld_zone_publish: %d %s", rc, eb.msg);
}

/*
 * example.          SOA, NS
 * b.example.        TXT, NSEC
 * d.example.        NS, DS (+ RRSIG), NSEC      delegation
 * ns.d.example.     A                           glue
 * y.example.                                    empty non-terminal
 * x.y.example.      TXT
 * sub.example.      SOA, NS                     a second zone
 */
static void populate(struct fx *f)
{
	tld_writer w;
	writer_begin(f, &w);
	zone_new(&w, "example.", &f->z);
	f->z.serial = 2024010101;
	f->z.flags = TLD_ZONE_NSEC;
	put_apex(&w, &f->z, "example.", 2024010101);

	static const uint16_t b_types[] = {T_TXT, T_RRSIG, T_NSEC};
	put1(&w, &f->z, "b.example.", T_TXT, 300, rd_txt("hello"));
	put1(&w, &f->z, "b.example.", T_NSEC, 3600, rd_nsec("d.example.", b_types, 3));

	static const uint16_t d_types[] = {T_NS, T_DS, T_RRSIG, T_NSEC};
	put1(&w, &f->z, "d.example.", T_NS, 86400, rd_name("ns.d.example."));
	struct bytes ds = {0}, ds_sig = {0}, ds_rd = rd_ds(4711), sig_rd = rd_rrsig(T_DS, 2, 3600);
	rec_add(&ds, &ds_rd);
	sig_add(&ds_sig, 3600, &sig_rd);
	put(&w, &f->z, "d.example.", T_DS, 3600, &ds, &ds_sig);
	put1(&w, &f->z, "d.example.", T_NSEC, 3600, rd_nsec("b.example.", d_types, 4));
	put1(&w, &f->z, "ns.d.example.", T_A, 86400, rd_a(192, 0, 2, 1));
	put1(&w, &f->z, "x.y.example.", T_TXT, 300, rd_txt("below an ENT"));
	publish(&w, &f->z);

	zone_new(&w, "sub.example.", &f->sub);
	f->sub.serial = 7;
	put_apex(&w, &f->sub, "sub.example.", 7);
	publish(&w, &f->sub);
	writer_commit(&w);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	strcpy(f->dir, "/tmp/tld-test-store.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/db", f->dir);
	tld_store_opts o = {.map_size = (size_t)64 << 20, .create = true};
	tld_errbuf eb = {{0}};
	int rc = tld_store_open(&f->st, f->path, &o, &eb);
	if (rc != 0)
		fail_msg("tld_store_open: %d %s", rc, eb.msg);
	populate(f);
	assert_int_equal(tld_reader_open(f->st, &f->r), 0);
	*state = f;
	return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	tld_reader_end(&f->r);
	tld_reader_close(&f->r);
	tld_store_close(f->st);
	nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void begin(struct fx *f)
{
	assert_int_equal(tld_reader_begin(&f->r), 0);
}

/* ---- environment ---- */

/* tld_store_open's result; a store opened by mistake is closed again. */
static int open_and_close(const char *path, const tld_store_opts *o)
{
	tld_store *st = NULL;
	tld_errbuf eb = {{0}};
	int rc = tld_store_open(&st, path, o, &eb);
	if (rc == 0)
		tld_store_close(st);
	return rc;
}

static void test_open_errors(void **state)
{
	struct fx *f = *state;
	char path[160];
	tld_store *st = NULL;
	tld_errbuf eb = {{0}};
	tld_store_opts ro = {.map_size = (size_t)64 << 20};

	snprintf(path, sizeof(path), "%s/absent", f->dir);
	assert_int_equal(tld_store_open(&st, path, &ro, &eb), TLD_ENOENT);

	/* a valid LMDB environment that is not a tldnode store */
	snprintf(path, sizeof(path), "%s/plain", f->dir);
	assert_int_equal(mkdir(path, 0755), 0);
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_open(env, path, 0, 0644), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
	MDB_val k = {3, "foo"}, v = {3, "bar"};
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	ro.read_only = true;
	assert_int_equal(open_and_close(path, &ro), TLD_EFOREIGN);
	ro.read_only = false;
	assert_int_equal(open_and_close(path, &ro), TLD_EFOREIGN);
	ro.create = true;
	assert_int_equal(open_and_close(path, &ro), TLD_EFOREIGN);
}

static void test_reopen_read_only(void **state)
{
	struct fx *f = *state;
	tld_store *st = NULL;
	tld_errbuf eb = {{0}};
	tld_store_opts ro = {.map_size = (size_t)64 << 20, .read_only = true};
	assert_int_equal(tld_store_open(&st, f->path, &ro, &eb), 0);
	tld_reader r;
	tld_zone z;
	assert_int_equal(tld_reader_open(st, &r), 0);
	assert_int_equal(tld_reader_begin(&r), 0);
	assert_int_equal(tld_zone_get(&r, nm("example."), &z), 0);
	assert_int_equal(z.id, f->z.id);
	tld_rrset rs;
	assert_int_equal(tld_rrset_get(&r, &z, nm("b.example."), T_TXT, &rs), 0);
	tld_reader_end(&r);
	tld_reader_close(&r);

	tld_writer w;
	assert_true(tld_writer_begin(st, &w, &eb) < 0);
	tld_store_close(st);
}

/* ---- values ---- */

static void test_encode_decode(void **state)
{
	struct bytes rrs = {0}, sigs = {0};
	struct bytes a1 = rd_a(10, 0, 0, 1), a2 = rd_a(10, 0, 0, 2), s = rd_txt("sig");
	rec_add(&rrs, &a1);
	rec_add(&rrs, &a2);
	sig_add(&sigs, 77, &s);
	uint8_t val[256];
	int len = tld_rrset_encode(val, sizeof(val), 600, rrs.count, rrs.b, rrs.n, sigs.count,
	                           sigs.b, sigs.n);
	assert_int_equal(len, 8 + 2 * 6 + 6 + 4);
	assert_int_equal(tld_rrset_encode(val, (size_t)len - 1, 600, rrs.count, rrs.b, rrs.n,
	                                  sigs.count, sigs.b, sigs.n),
	                 TLD_ESPACE);

	tld_rrset rs;
	assert_int_equal(tld_rrset_decode(T_A, val, (size_t)len, &rs), 0);
	assert_int_equal(rs.type, T_A);
	assert_int_equal(rs.ttl, 600);
	assert_int_equal(rs.rr_count, 2);
	assert_int_equal(rs.sig_count, 1);
	const uint8_t *p = rs.rrs, *rd;
	uint16_t rdlen;
	uint32_t ttl = 0;
	assert_true(tld_rr_next(&p, rs.end, NULL, &rd, &rdlen));
	assert_int_equal(rdlen, 4);
	assert_memory_equal(rd, a1.b, 4);
	assert_true(tld_rr_next(&p, rs.end, NULL, &rd, &rdlen));
	assert_memory_equal(rd, a2.b, 4);
	assert_ptr_equal(p, rs.sigs);
	assert_true(tld_rr_next(&p, rs.end, &ttl, &rd, &rdlen));
	assert_int_equal(ttl, 77);
	assert_int_equal(rdlen, s.n);
	assert_memory_equal(rd, s.b, s.n);
	assert_ptr_equal(p, rs.end);
	assert_false(tld_rr_next(&p, rs.end, &ttl, &rd, &rdlen));

	/* inconsistent values */
	assert_int_equal(tld_rrset_decode(T_A, val, 7, &rs), TLD_EFOREIGN);
	assert_int_equal(tld_rrset_decode(T_A, val, (size_t)len - 1, &rs), TLD_EFOREIGN);
	val[5] = 3; /* rr_count 3 */
	assert_int_equal(tld_rrset_decode(T_A, val, (size_t)len, &rs), TLD_EFOREIGN);
}

/* ---- zones ---- */

static void test_zone_get_find(void **state)
{
	struct fx *f = *state;
	tld_zone z;
	begin(f);
	assert_int_equal(tld_zone_get(&f->r, nm("example."), &z), 0);
	assert_int_equal(z.id, f->z.id);
	assert_int_equal(z.serial, 2024010101);
	assert_int_equal(z.flags, TLD_ZONE_NSEC);
	assert_true(tld_name_equal(z.apex, nm("example.")));
	assert_int_equal(z.apex_len, 9);
	assert_int_equal(z.apex_labels, 1);
	assert_int_equal(tld_zone_get(&f->r, nm("EXAMPLE."), &z), 0);
	assert_int_equal(tld_zone_get(&f->r, nm("b.example."), &z), TLD_ENOENT);

	struct {
		const char *name;
		const tld_zone *want; /* NULL: TLD_ENOENT */
	} cases[] = {
	    {"example.", &f->z},       {"www.example.", &f->z},       {"a.b.c.EXAMPLE.", &f->z},
	    {"sub.example.", &f->sub}, {"www.Sub.Example.", &f->sub}, {"a.b.sub.example.", &f->sub},
	    {"xsub.example.", &f->z},  {"sub.example.org.", NULL},    {"org.", NULL},
	    {"exampl.", NULL},         {"example.com.", NULL},        {".", NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&z, 0, sizeof(z));
		int rc = tld_zone_find(&f->r, nm(cases[i].name), &z);
		if (cases[i].want == NULL && rc != TLD_ENOENT)
			fail_msg("tld_zone_find(%s) = %d, want TLD_ENOENT", cases[i].name, rc);
		if (cases[i].want != NULL && (rc != 0 || z.id != cases[i].want->id))
			fail_msg("tld_zone_find(%s) = %d, zone %u, want zone %u", cases[i].name, rc,
			         z.id, cases[i].want->id);
	}
}

static int count_zone(const tld_zone *z, void *ctx)
{
	uint32_t *ids = ctx;
	ids[++ids[0]] = z->id;
	return ids[0] == 5 ? 99 : 0;
}

static void test_zone_foreach(void **state)
{
	struct fx *f = *state;
	uint32_t ids[8] = {0};
	begin(f);
	assert_int_equal(tld_zone_foreach(&f->r, count_zone, ids), 0);
	assert_int_equal(ids[0], 2);
	assert_int_equal(ids[1], f->z.id); /* canonical order: example. < sub.example. */
	assert_int_equal(ids[2], f->sub.id);
}

/* ---- RRsets ---- */

static void test_rrset_get(void **state)
{
	struct fx *f = *state;
	tld_rrset rs;
	const uint8_t *p, *rd;
	uint16_t rdlen;
	uint32_t ttl;
	begin(f);

	assert_int_equal(tld_rrset_get(&f->r, &f->z, nm("d.example."), T_NS, &rs), 0);
	assert_int_equal(rs.type, T_NS);
	assert_int_equal(rs.ttl, 86400);
	assert_int_equal(rs.rr_count, 1);
	assert_int_equal(rs.sig_count, 0);
	p = rs.rrs;
	assert_true(tld_rr_next(&p, rs.end, NULL, &rd, &rdlen));
	assert_int_equal(rdlen, tld_name_len(nm("ns.d.example.")));
	assert_memory_equal(rd, nm("ns.d.example."), rdlen);

	/* case-insensitive owner */
	assert_int_equal(tld_rrset_get(&f->r, &f->z, nm("D.eXample."), T_NS, &rs), 0);
	assert_int_equal(rs.ttl, 86400);

	assert_int_equal(tld_rrset_get(&f->r, &f->z, nm("d.example."), T_DS, &rs), 0);
	assert_int_equal(rs.rr_count, 1);
	assert_int_equal(rs.sig_count, 1);
	struct bytes sig = rd_rrsig(T_DS, 2, 3600);
	p = rs.sigs;
	assert_true(tld_rr_next(&p, rs.end, &ttl, &rd, &rdlen));
	assert_int_equal(ttl, 3600);
	assert_int_equal(rdlen, sig.n);
	assert_memory_equal(rd, sig.b, sig.n);

	assert_int_equal(tld_rrset_get(&f->r, &f->z, nm("example."), T_SOA, &rs), 0);
	struct bytes soa = rd_soa(2024010101);
	p = rs.rrs;
	assert_true(tld_rr_next(&p, rs.end, NULL, &rd, &rdlen));
	assert_int_equal(rdlen, soa.n);
	assert_memory_equal(rd, soa.b, soa.n);

	assert_int_equal(tld_rrset_get(&f->r, &f->z, nm("ns.d.example."), T_A, &rs), 0);
	assert_int_equal(tld_rrset_get(&f->r, &f->z, nm("x.y.example."), T_TXT, &rs), 0);

	/* misses */
	assert_int_equal(tld_rrset_get(&f->r, &f->z, nm("d.example."), T_A, &rs), TLD_ENOENT);
	assert_int_equal(tld_rrset_get(&f->r, &f->z, nm("example."), T_MX, &rs), TLD_ENOENT);
	assert_int_equal(tld_rrset_get(&f->r, &f->z, nm("nope.example."), T_NS, &rs), TLD_ENOENT);
	assert_int_equal(tld_rrset_get(&f->r, &f->z, nm("y.example."), T_TXT, &rs), TLD_ENOENT);
	assert_int_equal(tld_rrset_get(&f->r, &f->z, nm("b.example."), T_A, &rs), TLD_ENOENT);
	/* the second zone's data stays in the second zone */
	assert_int_equal(tld_rrset_get(&f->r, &f->z, nm("sub.example."), T_SOA, &rs), TLD_ENOENT);
	assert_int_equal(tld_rrset_get(&f->r, &f->sub, nm("sub.example."), T_SOA, &rs), 0);
	assert_int_equal(tld_rrset_get(&f->r, &f->sub, nm("b.sub.example."), T_TXT, &rs),
	                 TLD_ENOENT);
}

static void test_name_exists(void **state)
{
	struct fx *f = *state;
	struct {
		const char *name;
		int want;
	} cases[] = {
	    {"example.", 1},   {"b.example.", 1},    {"B.EXAMPLE.", 1},
	    {"d.example.", 1}, {"ns.d.example.", 1}, {"x.y.example.", 1},
	    {"y.example.", 2}, {"Y.Example.", 2},    {"nope.example.", 0},
	    {"a.example.", 0}, {"bb.example.", 0},   {"z.x.y.example.", 0},
	    {"c.example.", 0}, {"zzzz.example.", 0}, {"www.d.example.", 0},
	    {"x.example.", 0}, {"y.y.example.", 0},  {"\\000.example.", 0},
	};
	begin(f);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = tld_name_exists(&f->r, &f->z, nm(cases[i].name));
		if (rc != cases[i].want)
			fail_msg("tld_name_exists(%s) = %d, want %d", cases[i].name, rc,
			         cases[i].want);
	}
	assert_int_equal(tld_name_exists(&f->r, &f->sub, nm("sub.example.")), 1);
	assert_int_equal(tld_name_exists(&f->r, &f->sub, nm("www.sub.example.")), 0);
}

static void test_cut_find(void **state)
{
	struct fx *f = *state;
	struct {
		const char *name;
		const char *cut; /* NULL: TLD_ENOENT */
	} cases[] = {
	    {"d.example.", "d.example."},
	    {"ns.d.example.", "d.example."},
	    {"www.d.example.", "d.example."},
	    {"a.b.c.D.EXAMPLE.", "d.example."},
	    {"example.", NULL},
	    {"b.example.", NULL},
	    {"x.y.example.", NULL},
	    {"y.example.", NULL},
	    {"dd.example.", NULL},
	    {"c.example.", NULL},
	    {"zzz.example.", NULL},
	    {"d.b.example.", NULL},
	    {"a.example.", NULL},
	    {"e.example.", NULL},
	};
	begin(f);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t cut[TLD_NAME_MAX];
		int rc = tld_cut_find(&f->r, &f->z, nm(cases[i].name), cut);
		if (cases[i].cut == NULL) {
			if (rc != TLD_ENOENT)
				fail_msg("tld_cut_find(%s) = %d, want TLD_ENOENT", cases[i].name,
				         rc);
			continue;
		}
		const uint8_t *want = nm(cases[i].cut);
		if (rc != (int)tld_name_len(want) || !tld_name_equal(cut, want))
			fail_msg("tld_cut_find(%s) = %d, want %s", cases[i].name, rc, cases[i].cut);
	}
	/* the apex NS of a zone is not a cut */
	uint8_t cut[TLD_NAME_MAX];
	assert_int_equal(tld_cut_find(&f->r, &f->sub, nm("www.sub.example."), cut), TLD_ENOENT);
}

/* More cuts, with neighbours that share key prefixes. */
static void test_cut_find_many(void **state)
{
	struct fx *f = *state;
	tld_writer w;
	static const char *const cuts[] = {"a.example.", "aa.example.", "a-b.example.",
	                                   "e.example.", "zz.example."};
	writer_begin(f, &w);
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
		put1(&w, &f->z, cuts[i], T_NS, 3600, rd_name("ns.elsewhere."));
	put1(&w, &f->z, "ab.example.", T_TXT, 3600, rd_txt("not a cut"));
	writer_commit(&w);

	struct {
		const char *name;
		const char *cut;
	} cases[] = {
	    {"x.a.example.", "a.example."},
	    {"a.example.", "a.example."},
	    {"x.aa.example.", "aa.example."},
	    {"aa.example.", "aa.example."},
	    {"q.a-b.example.", "a-b.example."},
	    {"ab.example.", NULL},
	    {"x.ab.example.", NULL},
	    {"ns.d.example.", "d.example."},
	    {"e.example.", "e.example."},
	    {"x.y.z.e.example.", "e.example."},
	    {"f.example.", NULL},
	    {"z.example.", NULL},
	    {"zz.example.", "zz.example."},
	    {"a.zz.example.", "zz.example."},
	    {"zzz.example.", NULL},
	    {"0.example.", NULL},
	};
	begin(f);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t cut[TLD_NAME_MAX];
		int rc = tld_cut_find(&f->r, &f->z, nm(cases[i].name), cut);
		if (cases[i].cut == NULL ? rc != TLD_ENOENT
		                         : (rc < 0 || !tld_name_equal(cut, nm(cases[i].cut))))
			fail_msg("tld_cut_find(%s) = %d, want %s", cases[i].name, rc,
			         cases[i].cut ? cases[i].cut : "TLD_ENOENT");
	}
}

static void test_nsec_find(void **state)
{
	struct fx *f = *state;
	/* NSEC owners: b.example., d.example. (none at the apex, so names before
	 * b.example. wrap around to the last one) */
	struct {
		const char *name;
		const char *want;
	} cases[] = {
	    {"b.example.", "b.example."},   {"B.Example.", "b.example."},
	    {"c.example.", "b.example."},   {"a.b.example.", "b.example."},
	    {"bb.example.", "b.example."},  {"d.example.", "d.example."},
	    {"a.d.example.", "d.example."}, {"zzz.example.", "d.example."},
	    {"y.example.", "d.example."},   {"example.", "d.example."},
	    {"a.example.", "d.example."},   {"\\000.example.", "d.example."},
	};
	begin(f);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t owner[TLD_NAME_MAX];
		const uint8_t *want = nm(cases[i].want);
		int rc = tld_nsec_find(&f->r, &f->z, nm(cases[i].name), owner);
		if (rc != (int)tld_name_len(want) || !tld_name_equal(owner, want))
			fail_msg("tld_nsec_find(%s) = %d, want %s", cases[i].name, rc,
			         cases[i].want);
	}
	/* no NSEC in the zone: TLD_ENOENT, never another zone's owner */
	uint8_t owner[TLD_NAME_MAX];
	assert_int_equal(tld_nsec_find(&f->r, &f->sub, nm("a.sub.example."), owner), TLD_ENOENT);
	assert_int_equal(tld_nsec_find(&f->r, &f->sub, nm("sub.example."), owner), TLD_ENOENT);
}

static void test_nsec3_find(void **state)
{
	struct fx *f = *state;
	tld_writer w;
	tld_zone z;
	static const char *const owners[] = {"10000000000000000000000000000000.n3test.",
	                                     "5000000000000000000000000000000G.N3TEST.",
	                                     "a0000000000000000000000000000000.n3test."};
	writer_begin(f, &w);
	zone_new(&w, "n3test.", &z);
	put_apex(&w, &z, "n3test.", 1);
	for (size_t i = 0; i < 3; i++)
		put1(&w, &z, owners[i], T_NSEC3, 3600, rd_nsec3());
	publish(&w, &z);
	writer_commit(&w);

	struct {
		const char *hash;
		int want; /* index in owners */
		bool exact;
	} cases[] = {
	    {"10000000000000000000000000000000", 0, true},
	    {"5000000000000000000000000000000g", 1, true},
	    {"a0000000000000000000000000000000", 2, true},
	    {"10000000000000000000000000000001", 0, false},
	    {"5000000000000000000000000000000h", 1, false},
	    {"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv", 2, false},
	    {"00000000000000000000000000000000", 2, false}, /* wraps */
	    {"0vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv", 2, false},
	};
	begin(f);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t owner[TLD_NAME_MAX];
		bool exact = !cases[i].exact;
		const uint8_t *want = nm(owners[cases[i].want]);
		int rc =
		    tld_nsec3_find(&f->r, &z, cases[i].hash, strlen(cases[i].hash), owner, &exact);
		if (rc != (int)tld_name_len(want) || !tld_name_equal(owner, want) ||
		    exact != cases[i].exact)
			fail_msg("tld_nsec3_find(%s) = %d exact %d, want %s exact %d",
			         cases[i].hash, rc, exact, owners[cases[i].want], cases[i].exact);
	}
	uint8_t owner[TLD_NAME_MAX];
	bool exact;
	assert_int_equal(
	    tld_nsec3_find(&f->r, &f->z, "10000000000000000000000000000000", 32, owner, &exact),
	    TLD_ENOENT);
}

/* Collects (owner text, type) of every RRset visited. */
struct walk {
	char seen[32][TLD_NAME_TXTMAX + 16];
	int n;
};

static int walk_fn(const uint8_t *owner, const tld_rrset *rs, void *ctx)
{
	struct walk *wk = ctx;
	char name[TLD_NAME_TXTMAX];
	assert_true(tld_name_to_text(owner, name, sizeof(name)) > 0);
	assert_true(wk->n < 32);
	snprintf(wk->seen[wk->n++], sizeof(wk->seen[0]), "%s/%u", name, rs->type);
	return 0;
}

static void test_foreach_rrset(void **state)
{
	struct fx *f = *state;
	static const char *const want[] = {
	    "example./2",    "example./6",    "b.example./16",   "b.example./47",   "d.example./2",
	    "d.example./43", "d.example./47", "ns.d.example./1", "x.y.example./16",
	};
	struct walk wk = {.n = 0};
	begin(f);
	assert_int_equal(tld_zone_foreach_rrset(&f->r, &f->z, walk_fn, &wk), 0);
	assert_int_equal(wk.n, sizeof(want) / sizeof(want[0]));
	for (int i = 0; i < wk.n; i++)
		assert_string_equal(wk.seen[i], want[i]);

	wk.n = 0;
	assert_int_equal(tld_name_foreach_rrset(&f->r, &f->z, nm("D.example."), walk_fn, &wk), 0);
	assert_int_equal(wk.n, 3);
	assert_string_equal(wk.seen[0], "d.example./2");
	assert_string_equal(wk.seen[2], "d.example./47");

	wk.n = 0;
	assert_int_equal(tld_name_foreach_rrset(&f->r, &f->z, nm("y.example."), walk_fn, &wk), 0);
	assert_int_equal(wk.n, 0);
	assert_int_equal(tld_name_foreach_rrset(&f->r, &f->z, nm("example."), walk_fn, &wk), 0);
	assert_int_equal(wk.n, 2);

	wk.n = 0;
	assert_int_equal(tld_zone_foreach_rrset(&f->r, &f->sub, walk_fn, &wk), 0);
	assert_int_equal(wk.n, 2);
	assert_string_equal(wk.seen[0], "sub.example./2");
}

static int stop_fn(const uint8_t *owner, const tld_rrset *rs, void *ctx)
{
	int *n = ctx;
	return ++*n == 3 ? -42 : 0;
}

static void test_foreach_stops(void **state)
{
	struct fx *f = *state;
	int n = 0;
	begin(f);
	assert_int_equal(tld_zone_foreach_rrset(&f->r, &f->z, stop_fn, &n), -42);
	assert_int_equal(n, 3);
}

/* ---- writes ---- */

static void test_republish(void **state)
{
	struct fx *f = *state;
	tld_writer w;
	tld_zone z2;
	writer_begin(f, &w);
	zone_new(&w, "example.", &z2);
	assert_true(z2.id != f->z.id);
	assert_true(z2.id > f->sub.id);
	z2.serial = 2024010102;
	put_apex(&w, &z2, "example.", 2024010102);
	put1(&w, &z2, "new.example.", T_A, 60, rd_a(192, 0, 2, 99));
	assert_int_equal(tld_journal_put(&w, &f->z, 1, "old", 3, NULL), 0);
	publish(&w, &z2);
	writer_commit(&w);

	tld_zone z;
	tld_rrset rs;
	uint8_t name[TLD_NAME_MAX];
	begin(f);
	assert_int_equal(tld_zone_get(&f->r, nm("example."), &z), 0);
	assert_int_equal(z.id, z2.id);
	assert_int_equal(z.serial, 2024010102);
	assert_int_equal(tld_rrset_get(&f->r, &z, nm("new.example."), T_A, &rs), 0);
	assert_int_equal(tld_rrset_get(&f->r, &z, nm("b.example."), T_TXT, &rs), TLD_ENOENT);
	assert_int_equal(tld_name_exists(&f->r, &z, nm("y.example.")), 0);
	/* the old id's data and indexes are gone */
	assert_int_equal(tld_rrset_get(&f->r, &f->z, nm("b.example."), T_TXT, &rs), TLD_ENOENT);
	assert_int_equal(tld_rrset_get(&f->r, &f->z, nm("example."), T_SOA, &rs), TLD_ENOENT);
	assert_int_equal(tld_name_exists(&f->r, &f->z, nm("example.")), 0);
	assert_int_equal(tld_cut_find(&f->r, &f->z, nm("ns.d.example."), name), TLD_ENOENT);
	assert_int_equal(tld_nsec_find(&f->r, &f->z, nm("c.example."), name), TLD_ENOENT);
	const void *data;
	size_t len;
	assert_int_equal(tld_journal_get(&f->r, &f->z, 1, &data, &len), TLD_ENOENT);
	/* the other zone is untouched */
	assert_int_equal(tld_zone_find(&f->r, nm("www.sub.example."), &z), 0);
	assert_int_equal(z.id, f->sub.id);
	assert_int_equal(tld_rrset_get(&f->r, &f->sub, nm("sub.example."), T_SOA, &rs), 0);
}

static void test_snapshot(void **state)
{
	struct fx *f = *state;
	tld_writer w;
	tld_errbuf eb = {{0}};
	tld_rrset rs;
	begin(f); /* snapshot taken before the write */

	writer_begin(f, &w);
	put1(&w, &f->z, "new.example.", T_TXT, 60, rd_txt("new"));
	assert_int_equal(tld_rrset_del(&w, &f->z, nm("b.example."), T_TXT, &eb), 0);
	assert_int_equal(tld_zone_remove(&w, nm("sub.example."), &eb), 0);
	writer_commit(&w);

	tld_zone z;
	assert_int_equal(tld_rrset_get(&f->r, &f->z, nm("b.example."), T_TXT, &rs), 0);
	assert_int_equal(tld_rrset_get(&f->r, &f->z, nm("new.example."), T_TXT, &rs), TLD_ENOENT);
	assert_int_equal(tld_zone_get(&f->r, nm("sub.example."), &z), 0);
	tld_reader_end(&f->r);

	begin(f);
	assert_int_equal(tld_rrset_get(&f->r, &f->z, nm("b.example."), T_TXT, &rs), TLD_ENOENT);
	assert_int_equal(tld_rrset_get(&f->r, &f->z, nm("new.example."), T_TXT, &rs), 0);
	assert_int_equal(tld_zone_get(&f->r, nm("sub.example."), &z), TLD_ENOENT);
	assert_int_equal(tld_zone_find(&f->r, nm("www.sub.example."), &z), 0);
	assert_int_equal(z.id, f->z.id);
	/* b.example. still owns its NSEC */
	assert_int_equal(tld_name_exists(&f->r, &f->z, nm("b.example.")), 1);
}

static void test_abort(void **state)
{
	struct fx *f = *state;
	tld_writer w;
	tld_zone z;
	tld_rrset rs;
	tld_errbuf eb = {{0}};
	writer_begin(f, &w);
	zone_new(&w, "aborted.", &z);
	put_apex(&w, &z, "aborted.", 1);
	publish(&w, &z);
	put1(&w, &f->z, "c.example.", T_TXT, 60, rd_txt("gone"));
	put1(&w, &f->z, "e.example.", T_NS, 60, rd_name("ns.e.example."));
	assert_int_equal(tld_rrset_del(&w, &f->z, nm("d.example."), T_NS, &eb), 0);
	assert_int_equal(tld_zone_remove(&w, nm("sub.example."), &eb), 0);
	tld_writer_abort(&w);

	uint8_t name[TLD_NAME_MAX];
	begin(f);
	assert_int_equal(tld_zone_get(&f->r, nm("aborted."), &z), TLD_ENOENT);
	assert_int_equal(tld_zone_find(&f->r, nm("www.aborted."), &z), TLD_ENOENT);
	assert_int_equal(tld_rrset_get(&f->r, &f->z, nm("c.example."), T_TXT, &rs), TLD_ENOENT);
	assert_int_equal(tld_cut_find(&f->r, &f->z, nm("e.example."), name), TLD_ENOENT);
	assert_int_equal(tld_cut_find(&f->r, &f->z, nm("ns.d.example."), name), 11);
	assert_int_equal(tld_zone_get(&f->r, nm("sub.example."), &z), 0);
	tld_reader_end(&f->r);

	/* the next zone id is not reused-and-confused either way: a new one is fresh */
	writer_begin(f, &w);
	zone_new(&w, "later.", &z);
	assert_true(z.id > f->sub.id);
	tld_writer_abort(&w);
}

static void test_rrset_del(void **state)
{
	struct fx *f = *state;
	tld_writer w;
	tld_errbuf eb = {{0}};
	uint8_t name[TLD_NAME_MAX];
	writer_begin(f, &w);
	assert_int_equal(tld_rrset_del(&w, &f->z, nm("d.example."), T_NS, &eb), 0);
	assert_int_equal(tld_rrset_del(&w, &f->z, nm("d.example."), T_NS, &eb), TLD_ENOENT);
	assert_int_equal(tld_rrset_del(&w, &f->z, nm("b.example."), T_NSEC, &eb), 0);
	assert_int_equal(tld_rrset_del(&w, &f->z, nm("q.example."), T_A, &eb), TLD_ENOENT);
	tld_rrset rs;
	assert_int_equal(tld_writer_rrset_get(&w, &f->z, nm("d.example."), T_DS, &rs), 0);
	assert_int_equal(tld_writer_rrset_get(&w, &f->z, nm("d.example."), T_NS, &rs), TLD_ENOENT);
	writer_commit(&w);

	begin(f);
	assert_int_equal(tld_cut_find(&f->r, &f->z, nm("ns.d.example."), name), TLD_ENOENT);
	assert_int_equal(tld_nsec_find(&f->r, &f->z, nm("c.example."), name),
	                 (int)tld_name_len(nm("d.example.")));
	assert_true(tld_name_equal(name, nm("d.example.")));
}

static void test_rrset_replace(void **state)
{
	struct fx *f = *state;
	tld_writer w;
	tld_rrset rs;
	writer_begin(f, &w);
	struct bytes two = {0}, a = rd_a(198, 51, 100, 1), b = rd_a(198, 51, 100, 2);
	rec_add(&two, &a);
	rec_add(&two, &b);
	put(&w, &f->z, "NS.D.EXAMPLE.", T_A, 1234, &two, NULL);
	writer_commit(&w);

	begin(f);
	assert_int_equal(tld_rrset_get(&f->r, &f->z, nm("ns.d.example."), T_A, &rs), 0);
	assert_int_equal(rs.ttl, 1234);
	assert_int_equal(rs.rr_count, 2);
	const uint8_t *p = rs.rrs, *rd;
	uint16_t rdlen;
	assert_true(tld_rr_next(&p, rs.end, NULL, &rd, &rdlen));
	assert_memory_equal(rd, a.b, 4);
	assert_true(tld_rr_next(&p, rs.end, NULL, &rd, &rdlen));
	assert_memory_equal(rd, b.b, 4);
}

static void test_zone_update_remove(void **state)
{
	struct fx *f = *state;
	tld_writer w;
	tld_errbuf eb = {{0}};
	tld_zone z;
	writer_begin(f, &w);
	f->z.serial = 99;
	f->z.journal_first = 5;
	f->z.journal_last = 6;
	assert_int_equal(tld_zone_update(&w, &f->z, &eb), 0);
	assert_int_equal(tld_zone_remove(&w, nm("sub.example."), &eb), 0);
	assert_int_equal(tld_zone_remove(&w, nm("sub.example."), &eb), TLD_ENOENT);
	assert_int_equal(tld_zone_remove(&w, nm("nowhere."), &eb), TLD_ENOENT);
	writer_commit(&w);

	tld_rrset rs;
	begin(f);
	assert_int_equal(tld_zone_get(&f->r, nm("example."), &z), 0);
	assert_int_equal(z.serial, 99);
	assert_int_equal(z.journal_first, 5);
	assert_int_equal(z.journal_last, 6);
	assert_int_equal(tld_rrset_get(&f->r, &z, nm("b.example."), T_TXT, &rs), 0);
	assert_int_equal(tld_zone_get(&f->r, nm("sub.example."), &z), TLD_ENOENT);
	assert_int_equal(tld_rrset_get(&f->r, &f->sub, nm("sub.example."), T_SOA, &rs), TLD_ENOENT);
}

static void test_journal(void **state)
{
	struct fx *f = *state;
	tld_writer w;
	tld_errbuf eb = {{0}};
	writer_begin(f, &w);
	assert_int_equal(tld_journal_put(&w, &f->z, 1, "one", 3, &eb), 0);
	assert_int_equal(tld_journal_put(&w, &f->z, 2, "two", 3, &eb), 0);
	assert_int_equal(tld_journal_put(&w, &f->z, 300, "three", 5, &eb), 0);
	assert_int_equal(tld_journal_put(&w, &f->sub, 1, "sub", 3, &eb), 0);
	writer_commit(&w);

	const void *data;
	size_t len;
	begin(f);
	assert_int_equal(tld_journal_get(&f->r, &f->z, 2, &data, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(data, "two", 3);
	assert_int_equal(tld_journal_get(&f->r, &f->z, 3, &data, &len), TLD_ENOENT);
	tld_reader_end(&f->r);

	writer_begin(f, &w);
	assert_int_equal(tld_journal_trim(&w, &f->z, 300, &eb), 0);
	writer_commit(&w);
	begin(f);
	assert_int_equal(tld_journal_get(&f->r, &f->z, 1, &data, &len), TLD_ENOENT);
	assert_int_equal(tld_journal_get(&f->r, &f->z, 2, &data, &len), TLD_ENOENT);
	assert_int_equal(tld_journal_get(&f->r, &f->z, 300, &data, &len), 0);
	assert_memory_equal(data, "three", 5);
	assert_int_equal(tld_journal_get(&f->r, &f->sub, 1, &data, &len), 0);
	tld_reader_end(&f->r);

	/* trimming the last entries of the whole journal */
	writer_begin(f, &w);
	assert_int_equal(tld_journal_trim(&w, &f->z, 1000, &eb), 0);
	int rc = tld_journal_trim(&w, &f->sub, 1000, &eb);
	if (rc != 0)
		fail_msg("tld_journal_trim emptying the journal: %d %s", rc, eb.msg);
	writer_commit(&w);
	begin(f);
	assert_int_equal(tld_journal_get(&f->r, &f->z, 300, &data, &len), TLD_ENOENT);
	assert_int_equal(tld_journal_get(&f->r, &f->sub, 1, &data, &len), TLD_ENOENT);
}

static void test_outside_owner(void **state)
{
	struct fx *f = *state;
	tld_writer w;
	tld_errbuf eb = {{0}};
	uint8_t val[64];
	int len = tld_rrset_encode(val, sizeof(val), 1, 0, NULL, 0, 0, NULL, 0);
	assert_int_equal(len, 8);
	writer_begin(f, &w);
	assert_true(
	    tld_rrset_put(&w, &f->sub, nm("example."), T_TXT, val, (size_t)len, false, &eb) < 0);
	assert_true(
	    tld_rrset_put(&w, &f->z, nm("example.org."), T_TXT, val, (size_t)len, false, &eb) < 0);
	tld_writer_abort(&w);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_open_errors),
	    T(test_reopen_read_only),
	    cmocka_unit_test(test_encode_decode),
	    T(test_zone_get_find),
	    T(test_zone_foreach),
	    T(test_rrset_get),
	    T(test_name_exists),
	    T(test_cut_find),
	    T(test_cut_find_many),
	    T(test_nsec_find),
	    T(test_nsec3_find),
	    T(test_foreach_rrset),
	    T(test_foreach_stops),
	    T(test_republish),
	    T(test_snapshot),
	    T(test_abort),
	    T(test_rrset_del),
	    T(test_rrset_replace),
	    T(test_zone_update_remove),
	    T(test_journal),
	    T(test_outside_owner),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
