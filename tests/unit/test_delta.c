/* test_delta.c - unit tests of replication/delta.c: encoding, parsing, apply, diff, delta files. */
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
#include <unistd.h>

#include "../../replication/delta.h"

enum { T_A = 1, T_NS = 2, T_SOA = 6, T_TXT = 16, T_DS = 43, T_RRSIG = 46 };

#define SOA_RD    "ns1.nic.tld. hostmaster.nic.tld. %u 7200 3600 1209600 300"
#define SIG_RD(t) "RRSIG " t " 13 2 3600 20300101000000 20200101000000 12345 tld. AAAA"
#define DS_RD     "12345 13 2 0000000000000000000000000000000000000000000000000000000000000000"

/* The base zone of most tests (serial 1). */
static const char zone_a[] =
    "$ORIGIN tld.\n$TTL 3600\n"
    "@ SOA ns1.nic.tld. hostmaster.nic.tld. 1 7200 3600 1209600 300\n"
    "@ NS ns1.nic\n@ NS ns2.nic\n"
    "ns1.nic A 192.0.2.1\nns2.nic A 192.0.2.2\n"
    "d1 NS ns.d1\nd1 NS ns.ext.example.\nns.d1 A 192.0.2.10\nns.d1 AAAA 2001:db8::10\n"
    "d1 DS " DS_RD "\n"
    "d1 " SIG_RD("DS") "\n"
                       "d2 NS ns.ext.example.\n"
                       "gone NS ns.ext.example.\nns.gone A 192.0.2.30\n"
                       "a.sub TXT \"hi\"\n"
                       "www 300 A 192.0.2.80\nwww 300 A 192.0.2.81\n"
                       "www " SIG_RD("A") "\n";

/* zone_a changed in most ways a zone changes (serial 2). */
static const char zone_b[] =
    "$ORIGIN tld.\n$TTL 3600\n"
    "@ SOA ns1.nic.tld. hostmaster.nic.tld. 2 7200 3600 1209600 300\n"
    "@ NS ns1.nic\n@ NS ns2.nic\n"
    "ns1.nic A 192.0.2.1\nns2.nic A 192.0.2.2\n"
    "d1 NS ns.d1\nd1 NS ns2.d1\nns.d1 A 192.0.2.11\nns.d1 AAAA 2001:db8::10\n"
    "ns2.d1 A 192.0.2.12\n"
    "d2 NS ns.ext.example.\nd2 DS " DS_RD "\n"
    "d3 NS ns.ext.example.\nd3 NS ns.other.example.\n"
    "a.sub TXT \"hi\"\na.sub TXT \"there\"\n"
    "www 600 A 192.0.2.80\nwww 600 A 192.0.2.81\n"
    "www 300 " SIG_RD(
        "A") "\n"
             "www 300 RRSIG A 13 2 3600 20300101000000 20200101000000 54321 tld. AAAA\n";

/* ---- helpers ---- */

static const uint8_t *nm(const char *text)
{
	static uint8_t bufs[8][TLD_NAME_MAX];
	static unsigned next;
	uint8_t *b = bufs[next++ % 8];
	if (tld_name_from_text(text, b) < 0)
		fail_msg("bad test name \"%s\"", text);
	return b;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

struct fixture {
	char dir[64];
	tld_store *st;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/test-delta-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	tld_store_opts o = {.create = true, .map_size = 64u << 20};
	tld_errbuf eb = {{0}};
	if (tld_store_open(&f->st, f->dir, &o, &eb) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	tld_store_close(f->st);
	nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static tld_zdata *load(const char *text)
{
	tld_zdata *zd = NULL;
	tld_errbuf eb = {{0}};
	int rc = tld_zdata_load_string(text, strlen(text), "test", NULL, &zd, NULL, &eb);
	if (rc != 0)
		fail_msg("load: %s", eb.msg);
	return zd;
}

static void import_text(tld_store *st, const char *text)
{
	tld_zdata *zd = load(text);
	tld_errbuf eb = {{0}};
	tld_writer w;
	tld_zone z;
	assert_int_equal(tld_writer_begin(st, &w, &eb), 0);
	assert_int_equal(tld_zdata_write(zd, &w, &z, NULL, &eb), 0);
	assert_int_equal(tld_zone_publish(&w, &z, &eb), 0);
	assert_int_equal(tld_writer_commit(&w, &eb), 0);
	tld_zdata_free(zd);
}

static tld_zone zone_of(tld_store *st)
{
	tld_reader r;
	tld_zone z;
	assert_int_equal(tld_reader_open(st, &r), 0);
	assert_int_equal(tld_reader_begin(&r), 0);
	assert_int_equal(tld_zone_get(&r, nm("tld."), &z), 0);
	tld_reader_close(&r);
	return z;
}

/* Parses a delta file given as text (origin tld.) and sets its serials. */
static int delta_text(const char *text, uint32_t from, uint32_t to, tld_delta *d, tld_errbuf *eb)
{
	char path[] = "/tmp/test-delta-file-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	int rc = tld_delta_read_file(path, nm("tld."), d, eb);
	unlink(path);
	if (rc == 0)
		tld_delta_set_serials(d, from, to);
	return rc;
}

/* The SOA change from serial a to b, as delta file lines. */
static const char *soa_change(unsigned a, unsigned b)
{
	static char buf[256];
	snprintf(buf, sizeof(buf), "- @ SOA " SOA_RD "\n+ @ SOA " SOA_RD "\n", a, b);
	return buf;
}

/* Applies delta text (plus the SOA change from..to) in one transaction and
 * returns apply's result; commits on success, aborts otherwise. */
static int apply_text(tld_store *st, const char *text, uint32_t from, uint32_t to, unsigned keep,
                      tld_errbuf *eb)
{
	char full[4096];
	snprintf(full, sizeof(full), "%s%s", from != to ? soa_change(from, to) : "", text);
	tld_delta d;
	if (delta_text(full, from, to, &d, eb) != 0)
		fail_msg("delta file: %s", eb->msg);
	tld_delta_view v;
	assert_int_equal(tld_delta_parse(d.buf, d.len, &v), 0);
	tld_zone z = zone_of(st);
	tld_writer w;
	assert_int_equal(tld_writer_begin(st, &w, eb), 0);
	int rc = tld_delta_apply(&w, &z, &v, keep, eb);
	if (rc == 0)
		assert_int_equal(tld_writer_commit(&w, eb), 0);
	else
		tld_writer_abort(&w);
	tld_delta_free(&d);
	return rc;
}

/* A byte image of a zone: every RRset (owner | type | value), the referral
 * data of the given cuts and the zone record's serial, flags and journal. */
struct image {
	uint8_t *p;
	size_t len, cap;
};

static void img_put(struct image *im, const void *data, size_t n)
{
	if (im->len + n > im->cap) {
		im->cap = (im->len + n) * 2;
		im->p = realloc(im->p, im->cap);
		assert_non_null(im->p);
	}
	memcpy(im->p + im->len, data, n);
	im->len += n;
}

static int img_rrset(const uint8_t *owner, const tld_rrset *rs, void *ctx)
{
	struct image *im = ctx;
	img_put(im, owner, tld_name_len(owner));
	img_put(im, &rs->type, sizeof(rs->type));
	const uint8_t *val = rs->rrs - 8;
	img_put(im, val, (size_t)(rs->end - val));
	return 0;
}

static struct image zone_image(tld_store *st)
{
	static const char *cuts[] = {"d1.tld.", "d2.tld.", "d3.tld.", "gone.tld.", "sub.tld."};
	struct image im = {0};
	tld_reader r;
	tld_zone z;
	assert_int_equal(tld_reader_open(st, &r), 0);
	assert_int_equal(tld_reader_begin(&r), 0);
	assert_int_equal(tld_zone_get(&r, nm("tld."), &z), 0);
	assert_int_equal(tld_zone_foreach_rrset(&r, &z, img_rrset, &im), 0);
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		tld_referral ref;
		if (tld_referral_find(&r, &z, nm(cuts[i]), &ref) > 0) {
			img_put(&im, ref.cut, tld_name_len(ref.cut));
			img_put(&im, ref.blob, ref.len);
		}
	}
	img_put(&im, &z.serial, sizeof(z.serial));
	img_put(&im, &z.flags, sizeof(z.flags));
	img_put(&im, &z.journal_first, sizeof(z.journal_first));
	img_put(&im, &z.journal_last, sizeof(z.journal_last));
	tld_reader_close(&r);
	return im;
}

static void assert_same_image(struct image *a, struct image *b)
{
	assert_int_equal(a->len, b->len);
	assert_memory_equal(a->p, b->p, a->len);
	free(a->p);
	free(b->p);
}

/* ---- serials ---- */

static void test_serial_newer(void **state)
{
	assert_true(tld_serial_newer(1, 0));
	assert_false(tld_serial_newer(0, 1));
	assert_false(tld_serial_newer(5, 5));
	assert_true(tld_serial_newer(0, UINT32_MAX));
	assert_true(tld_serial_newer(0x7fffffffu, 0));
	assert_false(tld_serial_newer(0x80000000u, 0)); /* undefined: not newer */
	assert_false(tld_serial_newer(0, 0x80000000u));
	assert_true(tld_serial_newer(0x80000001u, 2));
}

/* ---- encoding and parsing ---- */

static void build_sample(tld_delta *d)
{
	static const uint8_t a[4] = {192, 0, 2, 1};
	const uint8_t *ns = nm("ns.example.");
	assert_int_equal(tld_delta_init(d, nm("tld."), 7, 8), 0);
	assert_int_equal(
	    tld_delta_add(d, TLD_OP_DEL, nm("a.tld."), T_NS, 3600, ns, (uint16_t)tld_name_len(ns)),
	    0);
	assert_int_equal(tld_delta_add(d, TLD_OP_ADD, nm("ns.a.tld."), T_A, 60, a, 4), 0);
	assert_int_equal(tld_delta_add(d, TLD_OP_ADD, nm("tld."), 65280, 0, NULL, 0), 0);
}

static void test_roundtrip(void **state)
{
	tld_delta d;
	build_sample(&d);
	assert_int_equal(d.count, 3);
	assert_int_equal(tld_delta_add(&d, 2, nm("tld."), T_A, 0, NULL, 0), TLD_EINVAL);
	assert_int_equal(tld_delta_add(&d, TLD_OP_ADD, nm("other."), T_A, 0, NULL, 0), TLD_EINVAL);
	tld_delta_set_serials(&d, 100, 200);
	tld_delta_view v;
	assert_int_equal(tld_delta_parse(d.buf, d.len, &v), 0);
	assert_true(tld_name_equal(v.apex, nm("tld.")));
	assert_int_equal(v.from, 100);
	assert_int_equal(v.to, 200);
	assert_int_equal(v.count, 3);
	tld_delta_op op;
	size_t pos = 0;
	assert_true(tld_delta_next(&v, &pos, &op));
	assert_int_equal(op.op, TLD_OP_DEL);
	assert_true(tld_name_equal(op.owner, nm("a.tld.")));
	assert_int_equal(op.type, T_NS);
	assert_int_equal(op.ttl, 3600);
	assert_true(tld_name_equal(op.rdata, nm("ns.example.")));
	assert_true(tld_delta_next(&v, &pos, &op));
	assert_int_equal(op.op, TLD_OP_ADD);
	assert_int_equal(op.type, T_A);
	assert_int_equal(op.ttl, 60);
	assert_int_equal(op.rdlen, 4);
	assert_int_equal(op.rdata[3], 1);
	assert_true(tld_delta_next(&v, &pos, &op));
	assert_int_equal(op.type, 65280);
	assert_int_equal(op.rdlen, 0);
	assert_false(tld_delta_next(&v, &pos, &op));
	tld_delta_free(&d);
}

static void test_parse_rejects(void **state)
{
	tld_delta d;
	build_sample(&d);
	tld_delta_view v;
	uint8_t *buf = malloc(d.len + 1);
	memcpy(buf, d.buf, d.len);
	/* Every truncation fails, and so does a trailing byte. */
	for (size_t n = 0; n < d.len; n++)
		assert_int_equal(tld_delta_parse(buf, n, &v), TLD_EMALFORMED);
	buf[d.len] = 0;
	assert_int_equal(tld_delta_parse(buf, d.len + 1, &v), TLD_EMALFORMED);
	assert_int_equal(tld_delta_parse(buf, d.len, &v), 0);
	/* Overruns: count one too many / huge; the first rdlen too long. */
	size_t count_off = 1 + 5 + 8;
	buf[count_off + 3]++;
	assert_int_equal(tld_delta_parse(buf, d.len, &v), TLD_EMALFORMED);
	buf[count_off] = 0xff;
	assert_int_equal(tld_delta_parse(buf, d.len, &v), TLD_EMALFORMED);
	memcpy(buf, d.buf, d.len);
	size_t rdlen_off = count_off + 4 + 1 + 7 + 6;
	assert_int_equal(buf[rdlen_off + 1], 12);
	buf[rdlen_off + 1] = 200;
	assert_int_equal(tld_delta_parse(buf, d.len, &v), TLD_EMALFORMED);
	/* Bad version, bad op, owner outside the apex, bad apex label. */
	memcpy(buf, d.buf, d.len);
	buf[0] = 2;
	assert_int_equal(tld_delta_parse(buf, d.len, &v), TLD_EMALFORMED);
	memcpy(buf, d.buf, d.len);
	buf[count_off + 4] = 2;
	assert_int_equal(tld_delta_parse(buf, d.len, &v), TLD_EMALFORMED);
	memcpy(buf, d.buf, d.len);
	buf[count_off + 4 + 1 + 2] = 'x'; /* a.tld. -> a.xld. */
	assert_int_equal(tld_delta_parse(buf, d.len, &v), TLD_EMALFORMED);
	memcpy(buf, d.buf, d.len);
	buf[1] = 64;
	assert_int_equal(tld_delta_parse(buf, d.len, &v), TLD_EMALFORMED);
	assert_int_equal(tld_delta_parse(NULL, 0, &v), TLD_EMALFORMED);
	free(buf);
	tld_delta_free(&d);
}

/* ---- apply ---- */

static void test_apply_delegations(void **state)
{
	struct fixture *f = *state;
	tld_errbuf eb = {{0}};
	import_text(f->st, zone_a);
	const char *ops =
	    "+ d3 NS ns.d3\n"
	    "+ ns.d3 A 192.0.2.33\n"
	    "+ d3 DS " DS_RD "\n"
	    "+ d3 " SIG_RD("DS") "\n"
	                         "- d1 NS ns.ext.example.\n"
	                         "- d1 " SIG_RD(
	                             "DS") "\n"
	                                   "+ ns.d1 A 192.0.2.99\n"
	                                   "+ www 300 A 192.0.2.81\n"; /* present: a no-op */
	int rc = apply_text(f->st, ops, 1, 2, 0, &eb);
	assert_int_equal(rc, 0);

	tld_reader r;
	tld_zone z;
	tld_rrset rs;
	assert_int_equal(tld_reader_open(f->st, &r), 0);
	assert_int_equal(tld_reader_begin(&r), 0);
	assert_int_equal(tld_zone_get(&r, nm("tld."), &z), 0);
	assert_int_equal(z.serial, 2);
	assert_int_equal(tld_rrset_get(&r, &z, nm("d3.tld."), T_NS, &rs), 0);
	assert_int_equal(rs.rr_count, 1);
	assert_int_equal(tld_rrset_get(&r, &z, nm("d3.tld."), T_DS, &rs), 0);
	assert_int_equal(rs.rr_count, 1);
	assert_int_equal(rs.sig_count, 1);
	assert_int_equal(tld_rrset_get(&r, &z, nm("d1.tld."), T_NS, &rs), 0);
	assert_int_equal(rs.rr_count, 1);
	assert_int_equal(tld_rrset_get(&r, &z, nm("d1.tld."), T_DS, &rs), 0);
	assert_int_equal(rs.sig_count, 0);
	assert_int_equal(tld_rrset_get(&r, &z, nm("www.tld."), T_A, &rs), 0);
	assert_int_equal(rs.rr_count, 2);

	/* The referral of the new cut: NS, DS, then glue. */
	tld_referral ref;
	assert_true(tld_referral_find(&r, &z, nm("x.d3.tld."), &ref) > 0);
	assert_true(tld_name_equal(ref.cut, nm("d3.tld.")));
	size_t pos = 0;
	const uint8_t *owner;
	uint16_t types[3];
	int n = 0;
	while (n < 3 && tld_referral_next(&ref, &pos, &owner, &rs))
		types[n++] = rs.type;
	assert_int_equal(n, 3);
	assert_int_equal(types[0], T_NS);
	assert_int_equal(types[1], T_DS);
	assert_int_equal(types[2], T_A);
	assert_true(tld_name_equal(owner, nm("ns.d3.tld.")));
	/* d1's referral: one NS now, two glue addresses for ns.d1. */
	assert_true(tld_referral_find(&r, &z, nm("d1.tld."), &ref) > 0);
	pos = 0;
	assert_true(tld_referral_next(&ref, &pos, &owner, &rs));
	assert_int_equal(rs.type, T_NS);
	assert_int_equal(rs.rr_count, 1);
	bool saw_glue = false;
	while (tld_referral_next(&ref, &pos, &owner, &rs))
		if (rs.type == T_A)
			saw_glue = rs.rr_count == 2;
	assert_true(saw_glue);
	/* The journal holds the delta as entry 1. */
	assert_int_equal(z.journal_first, 1);
	assert_int_equal(z.journal_last, 1);
	const void *data;
	size_t len;
	tld_delta_view v;
	assert_int_equal(tld_journal_get(&r, &z, 1, &data, &len), 0);
	assert_int_equal(tld_delta_parse(data, len, &v), 0);
	assert_int_equal(v.from, 1);
	assert_int_equal(v.to, 2);
	tld_reader_close(&r);

	/* Deleting a delegation and its glue removes its referral. */
	rc = apply_text(f->st,
	                "- d3 NS ns.d3\n- ns.d3 A 192.0.2.33\n- d3 DS " DS_RD "\n"
	                "- d3 " SIG_RD("DS") "\n",
	                2, 3, 0, &eb);
	assert_int_equal(rc, 0);
	assert_int_equal(tld_reader_open(f->st, &r), 0);
	assert_int_equal(tld_reader_begin(&r), 0);
	assert_int_equal(tld_zone_get(&r, nm("tld."), &z), 0);
	assert_int_equal(tld_referral_find(&r, &z, nm("x.d3.tld."), &ref), TLD_ENOENT);
	assert_int_equal(tld_name_exists(&r, &z, nm("d3.tld.")), 0);
	tld_reader_close(&r);
}

static void test_apply_serials(void **state)
{
	struct fixture *f = *state;
	tld_errbuf eb = {{0}};
	import_text(f->st, zone_a);
	struct image before = zone_image(f->st);
	assert_int_equal(apply_text(f->st, "", 5, 6, 0, &eb), TLD_ESERIAL);
	assert_non_null(strstr(eb.msg, "at serial 1, delta is from 5"));
	/* Not newer (to == from) */
	tld_delta d;
	tld_delta_view v;
	assert_int_equal(tld_delta_init(&d, nm("tld."), 1, 1), 0);
	assert_int_equal(tld_delta_parse(d.buf, d.len, &v), 0);
	tld_zone z = zone_of(f->st);
	tld_writer w;
	assert_int_equal(tld_writer_begin(f->st, &w, &eb), 0);
	assert_int_equal(tld_delta_apply(&w, &z, &v, 0, &eb), TLD_ESERIAL);
	tld_writer_abort(&w);
	tld_delta_free(&d);
	/* Another zone's delta. */
	assert_int_equal(tld_delta_init(&d, nm("other."), 1, 2), 0);
	assert_int_equal(tld_delta_parse(d.buf, d.len, &v), 0);
	assert_int_equal(tld_writer_begin(f->st, &w, &eb), 0);
	assert_int_equal(tld_delta_apply(&w, &z, &v, 0, &eb), TLD_EINVAL);
	tld_writer_abort(&w);
	tld_delta_free(&d);
	struct image after = zone_image(f->st);
	assert_same_image(&before, &after);
}

static void test_apply_rules(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *ops;
		const char *why;
	} bad[] = {
	    {"- www A 192.0.2.99\n", "record to delete is not in the zone"},
	    {"- d1 " SIG_RD("NS") "\n", "record to delete is not in the zone"},
	    {"+ www SOA ns1.nic.tld. hostmaster.nic.tld. 2 7200 3600 1209600 300\n",
	     "SOA record outside the apex"},
	    {"+ @ SOA ns1.nic.tld. other.nic.tld. 2 7200 3600 1209600 300\n", "more than one SOA"},
	    {"- @ NS ns1.nic\n- @ NS ns2.nic\n", "no NS records at the apex"},
	    {"+ www CNAME x.example.\n", "data beside a CNAME"},
	    {"+ c CNAME a.example.\n+ c CNAME b.example.\n", "more than one CNAME"},
	    {"+ @ CNAME a.example.\n", "CNAME at the zone apex"},
	    {"+ www DS " DS_RD "\n", "DS at a name that is not a delegation point"},
	    {"+ @ DS " DS_RD "\n", "DS at the zone apex"},
	    {"+ x.d1 TXT \"no\"\n", "below the delegation d1.tld."},
	    {"+ x.d1 NS ns.example.\n", "below the delegation d1.tld."},
	    {"+ ns.d1 " SIG_RD("A") "\n", "below the delegation d1.tld."},
	    {"+ d1 TXT \"no\"\n", "data at a delegation point"},
	    {"+ sub NS ns.example.\n", "a.sub.tld. TXT: below the delegation sub.tld."},
	    {"- d1 NS ns.d1\n- d1 NS ns.ext.example.\n", "DS at a name that is not"},
	    {"+ x NSEC3PARAM 1 0 0 -\n+ x TYPE255 \\# 0\n", "not a zone data type"},
	    {"+ sub DNAME other.example.\n", "a.sub.tld. TXT: below the DNAME at sub.tld."},
	    {"+ dn DNAME other.example.\n+ x.dn TXT \"no\"\n", "below the DNAME at dn.tld."},
	    {"+ @ DNAME other.example.\n", "below the DNAME at tld."},
	    {"+ d1 DNAME other.example.\n", "data at a delegation point"},
	    {"+ dn DNAME a.example.\n+ dn DNAME b.example.\n", "more than one DNAME record"},
	};
	tld_errbuf eb = {{0}};
	import_text(f->st, zone_a);
	struct image before = zone_image(f->st);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		eb.msg[0] = 0;
		int rc = apply_text(f->st, bad[i].ops, 1, 2, 0, &eb);
		if (rc != TLD_EZONE || strstr(eb.msg, bad[i].why) == NULL)
			fail_msg("case %zu: rc %d, \"%s\" (want \"%s\")", i, rc, eb.msg,
			         bad[i].why);
	}
	/* The SOA not changed, or changed to another serial than the delta's. */
	assert_int_equal(apply_text(f->st, "+ x TXT \"a\"\n", 1, 1, 0, &eb) == 0, false);
	char ops[512];
	snprintf(ops, sizeof(ops), "%s", soa_change(1, 3));
	tld_delta d;
	assert_int_equal(delta_text(ops, 1, 2, &d, &eb), 0);
	tld_delta_view v;
	assert_int_equal(tld_delta_parse(d.buf, d.len, &v), 0);
	tld_zone z = zone_of(f->st);
	tld_writer w;
	assert_int_equal(tld_writer_begin(f->st, &w, &eb), 0);
	assert_int_equal(tld_delta_apply(&w, &z, &v, 0, &eb), TLD_EZONE);
	assert_non_null(strstr(eb.msg, "SOA serial 3 is not the delta's serial 2"));
	tld_writer_abort(&w);
	tld_delta_free(&d);
	assert_int_equal(z.serial, 1);

	struct image after = zone_image(f->st);
	assert_same_image(&before, &after);
	/* Good changes still apply after all that. */
	assert_int_equal(
	    apply_text(f->st, "+ sub NS ns.example.\n- a.sub TXT \"hi\"\n", 1, 2, 0, &eb), 0);
	/* A DNAME with nothing below it is fine, and marks the zone for the engine;
	 * then nothing may be added below it. */
	assert_false(zone_of(f->st).flags & TLD_ZONE_DNAME);
	assert_int_equal(apply_text(f->st, "+ dn DNAME other.example.\n", 2, 3, 0, &eb), 0);
	assert_true(zone_of(f->st).flags & TLD_ZONE_DNAME);
	assert_int_equal(apply_text(f->st, "+ www.dn A 192.0.2.1\n", 3, 4, 0, &eb), TLD_EZONE);
	assert_non_null(strstr(eb.msg, "www.dn.tld. A: below the DNAME at dn.tld."));
}

static void test_journal(void **state)
{
	struct fixture *f = *state;
	tld_errbuf eb = {{0}};
	import_text(f->st, zone_a);
	for (unsigned s = 1; s <= 5; s++)
		assert_int_equal(apply_text(f->st, "", s, s + 1, 3, &eb), 0);
	tld_zone z = zone_of(f->st);
	assert_int_equal(z.serial, 6);
	assert_int_equal(z.journal_first, 3);
	assert_int_equal(z.journal_last, 5);
	tld_reader r;
	assert_int_equal(tld_reader_open(f->st, &r), 0);
	assert_int_equal(tld_reader_begin(&r), 0);
	const void *data;
	size_t len;
	for (uint64_t seq = 1; seq <= 6; seq++) {
		int rc = tld_journal_get(&r, &z, seq, &data, &len);
		if (seq < 3 || seq > 5) {
			assert_int_equal(rc, TLD_ENOENT);
			continue;
		}
		assert_int_equal(rc, 0);
		tld_delta_view v;
		assert_int_equal(tld_delta_parse(data, len, &v), 0);
		assert_int_equal(v.from, seq);
		assert_int_equal(v.to, seq + 1);
		assert_int_equal(v.count, 2);
	}
	tld_reader_close(&r);
	/* keep 0: everything is kept. */
	assert_int_equal(apply_text(f->st, "", 6, 7, 0, &eb), 0);
	z = zone_of(f->st);
	assert_int_equal(z.journal_first, 3);
	assert_int_equal(z.journal_last, 6);
}

/* ---- diff ---- */

/* Diffs the stored zone against text, applies the result, commits. */
static int diff_apply(tld_store *st, const char *text, uint32_t *nops, tld_errbuf *eb)
{
	tld_zdata *zd = load(text);
	tld_zone z = zone_of(st);
	tld_writer w;
	tld_delta d;
	assert_int_equal(tld_writer_begin(st, &w, eb), 0);
	int rc = tld_delta_diff(&w, &z, zd, &d, eb);
	if (rc == 0) {
		tld_delta_view v;
		assert_int_equal(tld_delta_parse(d.buf, d.len, &v), 0);
		*nops = v.count;
		rc = tld_delta_apply(&w, &z, &v, 0, eb);
		tld_delta_free(&d);
	}
	if (rc == 0)
		assert_int_equal(tld_writer_commit(&w, eb), 0);
	else
		tld_writer_abort(&w);
	tld_zdata_free(zd);
	return rc;
}

static void test_diff(void **state)
{
	struct fixture *f = *state;
	tld_errbuf eb = {{0}};
	uint32_t nops = 0;
	import_text(f->st, zone_a);
	assert_int_equal(diff_apply(f->st, zone_b, &nops, &eb), 0);
	/* Per RR: SOA 2; d1 NS 2, d1 DS and its RRSIG 2, ns.d1 A 2, ns2.d1 A 1;
	 * d2 DS 1; d3 NS 2; gone NS and glue 2; a.sub TXT 1; www A TTL change
	 * 2 + 2; www RRSIGs: a TTL change 2, a new one 1. */
	assert_int_equal(nops, 2 + 2 + 2 + 2 + 1 + 1 + 2 + 2 + 1 + 4 + 3);
	tld_zone z = zone_of(f->st);
	assert_int_equal(z.serial, 2);

	/* The same zone imported directly. */
	void *gp = NULL;
	assert_int_equal(setup(&gp), 0);
	struct fixture *gf = gp;
	import_text(gf->st, zone_b);
	struct image got = zone_image(f->st), want = zone_image(gf->st);
	/* The journal bounds differ (the import has none): compare the rest. */
	got.len -= 16;
	want.len -= 16;
	assert_same_image(&got, &want);
	teardown(&gp);

	/* Only the SOA changed: two operations. */
	char zone_c[sizeof(zone_b)];
	strcpy(zone_c, zone_b);
	char *serial = strstr(zone_c, " 2 7200");
	serial[1] = '3';
	assert_int_equal(diff_apply(f->st, zone_c, &nops, &eb), 0);
	assert_int_equal(nops, 2);
	/* Not newer. */
	assert_int_equal(diff_apply(f->st, zone_c, &nops, &eb), TLD_ESERIAL);
	assert_int_equal(diff_apply(f->st, zone_a, &nops, &eb), TLD_ESERIAL);
	/* Back to zone_a's content under serial 4. */
	char zone_d[sizeof(zone_a)];
	strcpy(zone_d, zone_a);
	serial = strstr(zone_d, " 1 7200");
	serial[1] = '4';
	assert_int_equal(diff_apply(f->st, zone_d, &nops, &eb), 0);
	assert_int_equal(setup(&gp), 0);
	gf = gp;
	import_text(gf->st, zone_d);
	got = zone_image(f->st);
	want = zone_image(gf->st);
	got.len -= 16;
	want.len -= 16;
	assert_same_image(&got, &want);
	teardown(&gp);
}

/* ---- delta files ---- */

static void test_file_good(void **state)
{
	static const char text[] = "; a delta\n"
	                           "$TTL 600\n"
	                           "  - d1 NS ns.ext.example. ; gone\n"
	                           "\n"
	                           "+d1 NS ns2.d1\n"
	                           "\t+ ns2.d1 300 A 192.0.2.12\n"
	                           "+ @ SOA ns1.nic.tld. hostmaster.nic.tld. (\n"
	                           "        2 7200 ; serial, refresh\n"
	                           "        3600 1209600 300 )\n"
	                           "$ORIGIN sub.tld.\n"
	                           "- a TXT \"semi ; colon (\"\n";
	tld_errbuf eb = {{0}};
	tld_delta d;
	assert_int_equal(delta_text(text, 0, 0, &d, &eb), 0);
	tld_delta_view v;
	assert_int_equal(tld_delta_parse(d.buf, d.len, &v), 0);
	assert_int_equal(v.count, 5);
	assert_int_equal(v.from, 0);
	assert_int_equal(v.to, 0);
	static const struct {
		uint8_t op;
		const char *owner;
		uint16_t type;
		uint32_t ttl;
	} want[] = {
	    {TLD_OP_DEL, "d1.tld.", T_NS, 600}, {TLD_OP_DEL, "a.sub.tld.", T_TXT, 600},
	    {TLD_OP_ADD, "d1.tld.", T_NS, 600}, {TLD_OP_ADD, "ns2.d1.tld.", T_A, 300},
	    {TLD_OP_ADD, "tld.", T_SOA, 600},
	};
	tld_delta_op op;
	size_t pos = 0;
	for (size_t i = 0; i < 5; i++) {
		assert_true(tld_delta_next(&v, &pos, &op));
		assert_int_equal(op.op, want[i].op);
		assert_true(tld_name_equal(op.owner, nm(want[i].owner)));
		assert_int_equal(op.type, want[i].type);
		assert_int_equal(op.ttl, want[i].ttl);
	}
	tld_delta_free(&d);
}

/* Writes text to a file and reads it as a delta with the given origin. */
static int file_rc(const char *text, const uint8_t *origin, tld_errbuf *eb)
{
	char path[] = "/tmp/test-delta-file-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	tld_delta d;
	int rc = tld_delta_read_file(path, origin, &d, eb);
	unlink(path);
	if (rc == 0) {
		tld_delta_view v;
		assert_int_equal(tld_delta_parse(d.buf, d.len, &v), 0);
		tld_delta_free(&d);
	}
	return rc;
}

static void test_file_bad(void **state)
{
	static const struct {
		const char *text;
		int rc;
		const char *why;
	} cases[] = {
	    {"+ a A 192.0.2.1\n; ok\nb A 192.0.2.2\n", TLD_ESYNTAX, ":3: expected a record"},
	    {"\n\n+ a A not-an-address\n", TLD_ESYNTAX, ":3: "},
	    {"+ a A 192.0.2.1\n- b.example. A 192.0.2.2\n", TLD_EZONE, ":2: b.example. is outside"},
	    {"+ a CH A 192.0.2.1\n", TLD_ESYNTAX, ":1: "}, /* zscanner knows only IN */
	    {"$INCLUDE other\n", TLD_ESYNTAX, ":1: $INCLUDE"},
	    {"+\n", TLD_ESYNTAX, ":1: '+' without a record"},
	    {"+ a TXT (\n\"x\"\n", TLD_ESYNTAX, ""},
	    {"+ a A 192.0.2.1\n+ d NS \\# 4 0a0b0c0d\n", TLD_EZONE, ":2: malformed NS RDATA"},
	};
	tld_errbuf eb = {{0}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		eb.msg[0] = 0;
		int rc = file_rc(cases[i].text, nm("tld."), &eb);
		if (rc != cases[i].rc || strstr(eb.msg, cases[i].why) == NULL)
			fail_msg("case %zu: rc %d \"%s\"", i, rc, eb.msg);
	}
	/* The origin: from $ORIGIN, or missing. */
	assert_int_equal(file_rc("$ORIGIN tld.\n+ a A 192.0.2.1\n", NULL, &eb), 0);
	assert_int_equal(file_rc("+ a A 192.0.2.1\n", NULL, &eb), TLD_EZONE);
	assert_non_null(strstr(eb.msg, "no zone origin"));
	assert_int_equal(file_rc("", nm("tld."), &eb), 0);
	tld_delta d;
	assert_int_equal(tld_delta_read_file("/nonexistent/delta", nm("tld."), &d, &eb), TLD_EIO);
}

/* With TLD_DELTA_SEEDS=DIR, writes fuzzing seeds for tests/fuzz/fuzz_delta.c
 * (whose zone is fz., serial 1) to DIR. */
static void test_write_seeds(void **state)
{
	const char *dir = getenv("TLD_DELTA_SEEDS");
	if (dir == NULL)
		skip();
	static const char *seeds[] = {
	    "- @ SOA ns.fz. host.fz. 1 7200 3600 1209600 300\n"
	    "+ @ SOA ns.fz. host.fz. 2 7200 3600 1209600 300\n",
	    "- @ SOA ns.fz. host.fz. 1 7200 3600 1209600 300\n"
	    "+ @ SOA ns.fz. host.fz. 2 7200 3600 1209600 300\n"
	    "+ d3 NS ns.d3\n+ ns.d3 A 192.0.2.3\n+ d3 DS " DS_RD "\n"
	    "- d1 NS ns.other.example.\n",
	    "- @ SOA ns.fz. host.fz. 1 7200 3600 1209600 300\n"
	    "+ @ SOA ns.fz. host.fz. 2 7200 3600 1209600 300\n"
	    "- d1 DS " DS_RD "\n+ d1 RRSIG NS 13 2 3600 20300101000000 20200101000000 1 fz. AAAA\n"
	    "+ x.d2 TXT \"no\"\n",
	    "- ns.d1 A 192.0.2.1\n+ ns.d1 A 192.0.2.9\n+ a CNAME b\n",
	};
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		char path[] = "/tmp/test-delta-seed-XXXXXX", out[4096];
		int fd = mkstemp(path);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, seeds[i], strlen(seeds[i])), (ssize_t)strlen(seeds[i]));
		close(fd);
		tld_delta d;
		tld_errbuf eb = {{0}};
		if (tld_delta_read_file(path, nm("fz."), &d, &eb) != 0)
			fail_msg("seed %zu: %s", i, eb.msg);
		unlink(path);
		tld_delta_set_serials(&d, 1, 2);
		snprintf(out, sizeof(out), "%s/seed-%zu", dir, i);
		FILE *f = fopen(out, "wb");
		assert_non_null(f);
		assert_int_equal(fwrite(d.buf, 1, d.len, f), d.len);
		fclose(f);
		tld_delta_free(&d);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_serial_newer),
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_parse_rejects),
	    cmocka_unit_test_setup_teardown(test_apply_delegations, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_apply_serials, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_apply_rules, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_journal, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_diff, setup, teardown),
	    cmocka_unit_test(test_file_good),
	    cmocka_unit_test(test_file_bad),
	    cmocka_unit_test(test_write_seeds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
