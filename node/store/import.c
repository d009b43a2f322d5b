/* import.c - read an RFC 1035 master file, check it as a TLD zone, write it to the store. */
#include "import.h"
#include "../common/bytes.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libzscanner/scanner.h>

#include "../dns/rdata.h"
#include "../dns/rrtype.h"

/* One resource record as read, pointing into the arena. */
struct rec {
	uint32_t key_off; /* full store key of the owner (see name.h) */
	uint32_t rdata_off;
	uint32_t ttl;
	uint32_t line;
	uint16_t key_len;
	uint16_t rdlen;
	uint16_t type; /* the RRset it belongs to: RRSIGs use the covered type */
	uint8_t is_sig;
	uint8_t file; /* index into files[] */
};

struct tld_zdata {
	uint8_t *arena;
	size_t arena_len, arena_cap;
	struct rec *recs;
	size_t nrecs, recs_cap;
	struct rec **sorted; /* canonical order, duplicates removed */
	size_t nsorted;
	char **files;
	size_t nfiles;
	uint8_t apex[TLD_NAME_MAX];
	uint8_t apex_key[TLD_KEY_MAX];
	size_t apex_keylen;
	bool have_apex;
	uint32_t serial;
	uint32_t flags;
	uint8_t nsec3param[4 + 256];
	size_t nsec3param_len;
	/* scanning state */
	const tld_import_opts *opts;
	tld_import_stats *stats;
	tld_errbuf *eb;
	int err;
	uint8_t last_owner[TLD_NAME_MAX];
	size_t last_owner_len;
	uint32_t last_key_off;
	uint16_t last_key_len;
};

/* ---- helpers ---- */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *rec_file(const tld_zdata *zd, const struct rec *r)
{
	return r->file < zd->nfiles ? zd->files[r->file] : "?";
}

static const uint8_t *rec_key(const tld_zdata *zd, const struct rec *r)
{
	return zd->arena + r->key_off;
}

static const uint8_t *rec_rdata(const tld_zdata *zd, const struct rec *r)
{
	return zd->arena + r->rdata_off;
}

/* Text of a record's owner, for messages. */
static const char *rec_owner_text(const tld_zdata *zd, const struct rec *r, char *buf, size_t len)
{
	uint8_t name[TLD_NAME_MAX];
	if (tld_key_name(rec_key(zd, r), r->key_len, name) < 0 ||
	    tld_name_to_text(name, buf, len) < 0)
		snprintf(buf, len, "?");
	return buf;
}

/* An error about record r: "file:line: owner TYPE: why". */
static int rec_error(tld_zdata *zd, const struct rec *r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int rec_error(tld_zdata *zd, const struct rec *r, const char *fmt, ...)
{
	char why[256], owner[TLD_NAME_TXTMAX], type[32];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	tld_rrtype_to_text(r->is_sig ? TLD_T_RRSIG : r->type, type, sizeof(type));
	return tld_errf(zd->eb, TLD_EZONE, "%s:%u: %s %s: %s", rec_file(zd, r), r->line,
	                rec_owner_text(zd, r, owner, sizeof(owner)), type, why);
}

#define TLD_TTL_MAX 0x7fffffffu /* the largest TTL (RFC 2181 8) */

static void warnf(tld_zdata *zd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warnf(tld_zdata *zd, const char *fmt, ...)
{
	unsigned max = zd->opts->max_warnings ? zd->opts->max_warnings : 20;
	zd->stats->warnings++;
	if (zd->opts->warn == NULL)
		return;
	if (zd->stats->warnings <= max) {
		va_list ap;
		va_start(ap, fmt);
		fputs("warning: ", zd->opts->warn);
		vfprintf(zd->opts->warn, fmt, ap);
		fputc('\n', zd->opts->warn);
		va_end(ap);
	} else if (zd->stats->warnings == max + 1) {
		fprintf(zd->opts->warn, "warning: further warnings counted, not shown\n");
	}
}

static int arena_add(tld_zdata *zd, const void *data, size_t len, uint32_t *off)
{
	if (zd->arena_len + len > zd->arena_cap) {
		size_t cap = zd->arena_cap ? zd->arena_cap : (1u << 20);
		while (cap < zd->arena_len + len)
			cap *= 2;
		if (cap > UINT32_MAX)
			return TLD_ENOMEM;
		uint8_t *a = realloc(zd->arena, cap);
		if (a == NULL)
			return TLD_ENOMEM;
		zd->arena = a;
		zd->arena_cap = cap;
	}
	if (len > 0) /* empty RDATA comes with a NULL pointer */
		memcpy(zd->arena + zd->arena_len, data, len);
	*off = (uint32_t)zd->arena_len;
	zd->arena_len += len;
	return TLD_OK;
}

static int file_index(tld_zdata *zd, const char *name, uint8_t *idx)
{
	const char *n = name ? name : "-";
	if (zd->nfiles > 0 && strcmp(zd->files[zd->nfiles - 1], n) == 0) {
		*idx = (uint8_t)(zd->nfiles - 1);
		return TLD_OK;
	}
	for (size_t i = 0; i < zd->nfiles; i++)
		if (strcmp(zd->files[i], n) == 0) {
			*idx = (uint8_t)i;
			return TLD_OK;
		}
	if (zd->nfiles >= 255)
		return TLD_EINVAL;
	char **f = realloc(zd->files, (zd->nfiles + 1) * sizeof(*f));
	if (f == NULL)
		return TLD_ENOMEM;
	zd->files = f;
	if ((f[zd->nfiles] = strdup(n)) == NULL)
		return TLD_ENOMEM;
	*idx = (uint8_t)zd->nfiles++;
	return TLD_OK;
}

/* ---- scanning ---- */

static void scan_stop(zs_scanner_t *s, tld_zdata *zd, int err)
{
	zd->err = err;
	s->state = ZS_STATE_STOP;
}

static int add_record(tld_zdata *zd, zs_scanner_t *s)
{
	struct rec r = {0};
	int err = file_index(zd, s->file.name, &r.file);
	if (err < 0)
		return tld_errf(zd->eb, err, "%s: too many $INCLUDE files", s->file.name);
	r.line = (uint32_t)s->line_counter;
	if (s->r_class != 1)
		return tld_errf(zd->eb, TLD_EZONE, "%s:%u: class %u is not supported (only IN)",
		                zd->files[r.file], r.line, s->r_class);
	/* Owners usually repeat: share the key of the previous record. */
	if (s->r_owner_length == zd->last_owner_len &&
	    memcmp(s->r_owner, zd->last_owner, zd->last_owner_len) == 0) {
		r.key_off = zd->last_key_off;
		r.key_len = zd->last_key_len;
	} else {
		uint8_t key[TLD_KEY_MAX];
		size_t klen = tld_name_key(s->r_owner, key);
		if ((err = arena_add(zd, key, klen, &r.key_off)) < 0)
			return tld_errf(zd->eb, err, "out of memory");
		r.key_len = (uint16_t)klen;
		memcpy(zd->last_owner, s->r_owner, s->r_owner_length);
		zd->last_owner_len = s->r_owner_length;
		zd->last_key_off = r.key_off;
		zd->last_key_len = r.key_len;
	}
	r.ttl = s->r_ttl;
	if (r.ttl > TLD_TTL_MAX) { /* RFC 2181 8: resolvers would take it for 0 */
		warnf(zd, "%s:%u: TTL %u is above %u (RFC 2181 8): %u is stored", zd->files[r.file],
		      r.line, r.ttl, TLD_TTL_MAX, TLD_TTL_MAX);
		r.ttl = TLD_TTL_MAX;
	}
	r.rdlen = (uint16_t)s->r_data_length;
	r.type = s->r_type;
	if (s->r_type == TLD_T_RRSIG) {
		if (s->r_data_length < 18)
			return tld_errf(zd->eb, TLD_EZONE, "%s:%u: RRSIG RDATA too short",
			                zd->files[r.file], r.line);
		r.is_sig = 1;
		r.type = (uint16_t)(s->r_data[0] << 8 | s->r_data[1]);
	}
	if (!tld_rrtype_is_data(s->r_type)) {
		char tname[32];
		tld_rrtype_to_text(s->r_type, tname, sizeof(tname));
		return tld_errf(zd->eb, TLD_EZONE, "%s:%u: %s is not a zone data type",
		                zd->files[r.file], r.line, tname);
	}
	if (tld_rdata_check(s->r_type, s->r_data, s->r_data_length) < 0) {
		char tname[32];
		tld_rrtype_to_text(s->r_type, tname, sizeof(tname));
		return tld_errf(zd->eb, TLD_EZONE, "%s:%u: malformed %s RDATA " TLD_RDATA_CHECK_WHY,
		                zd->files[r.file], r.line, tname);
	}
	if ((err = arena_add(zd, s->r_data, s->r_data_length, &r.rdata_off)) < 0)
		return tld_errf(zd->eb, err, "out of memory");
	if (zd->nrecs == zd->recs_cap) {
		size_t cap = zd->recs_cap ? zd->recs_cap * 2 : 65536;
		struct rec *nr = realloc(zd->recs, cap * sizeof(*nr));
		if (nr == NULL)
			return tld_errf(zd->eb, TLD_ENOMEM, "out of memory");
		zd->recs = nr;
		zd->recs_cap = cap;
	}
	zd->recs[zd->nrecs++] = r;
	zd->stats->records++;
	/* The apex is the SOA owner unless --origin named it. */
	if (s->r_type == TLD_T_SOA && !zd->have_apex) {
		memcpy(zd->apex, s->r_owner, s->r_owner_length);
		tld_name_lower(zd->apex);
		zd->apex_keylen = tld_name_key(zd->apex, zd->apex_key);
		zd->have_apex = true;
	}
	return TLD_OK;
}

static void on_record(zs_scanner_t *s)
{
	tld_zdata *zd = s->process.data;
	int err = add_record(zd, s);
	if (err < 0)
		scan_stop(s, zd, err);
}

static void on_error(zs_scanner_t *s)
{
	tld_zdata *zd = s->process.data;
	/* An error inside an $INCLUDEd file was already reported with its own
	 * file and line; the including scanner then fails too: keep the first. */
	if (zd->err == 0) {
		const char *file = s->file.name ? s->file.name : "-";
		if (s->error.code == ZS_FILE_OPEN && s->include_filename[0] != 0)
			tld_errf(zd->eb, TLD_ESYNTAX,
			         "%s:%" PRIu64 ": cannot open $INCLUDE file %s", file,
			         s->line_counter, s->include_filename);
		else
			tld_errf(zd->eb, TLD_ESYNTAX, "%s:%" PRIu64 ": %s", file, s->line_counter,
			         zs_strerror(s->error.code));
	}
	scan_stop(s, zd, zd->err != 0 ? zd->err : TLD_ESYNTAX);
}

static int zdata_new(const tld_import_opts *o, tld_import_stats *stats, tld_errbuf *eb,
                     tld_zdata **out)
{
	tld_zdata *zd = calloc(1, sizeof(*zd));
	if (zd == NULL)
		return tld_errf(eb, TLD_ENOMEM, "out of memory");
	zd->opts = o;
	zd->stats = stats;
	zd->eb = eb;
	if (o->origin != NULL) {
		size_t len = tld_name_len(o->origin);
		memcpy(zd->apex, o->origin, len);
		tld_name_lower(zd->apex);
		zd->apex_keylen = tld_name_key(zd->apex, zd->apex_key);
		zd->have_apex = true;
	}
	*out = zd;
	return TLD_OK;
}

/* Runs the scanner over its input, filling zd. */
static int scan(zs_scanner_t *s, tld_zdata *zd, const char *name)
{
	if (zs_set_processing(s, on_record, on_error, zd) != 0)
		return tld_errf(zd->eb, TLD_EINVAL, "%s: %s", name, zs_strerror(s->error.code));
	if (zs_parse_all(s) != 0 && zd->err == 0)
		zd->err = tld_errf(zd->eb, TLD_ESYNTAX, "%s:%" PRIu64 ": %s", name, s->line_counter,
		                   zs_strerror(s->error.code));
	return zd->err;
}

/* ---- sorting ---- */

static int rec_cmp(const void *pa, const void *pb, void *arg)
{
	const tld_zdata *zd = arg;
	const struct rec *a = *(struct rec *const *)pa, *b = *(struct rec *const *)pb;
	if (a->key_off != b->key_off) {
		size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
		int c = memcmp(rec_key(zd, a), rec_key(zd, b), n);
		if (c != 0)
			return c;
		if (a->key_len != b->key_len)
			return a->key_len < b->key_len ? -1 : 1;
	}
	if (a->type != b->type)
		return a->type < b->type ? -1 : 1;
	if (a->is_sig != b->is_sig)
		return a->is_sig - b->is_sig;
	size_t n = a->rdlen < b->rdlen ? a->rdlen : b->rdlen;
	int c = memcmp(rec_rdata(zd, a), rec_rdata(zd, b), n);
	if (c != 0)
		return c;
	if (a->rdlen != b->rdlen)
		return a->rdlen < b->rdlen ? -1 : 1;
	return a->line < b->line ? -1 : (a->line > b->line);
}

static bool same_rr(const tld_zdata *zd, const struct rec *a, const struct rec *b)
{
	return a->key_len == b->key_len && a->type == b->type && a->is_sig == b->is_sig &&
	       a->rdlen == b->rdlen &&
	       (a->key_off == b->key_off ||
	        memcmp(rec_key(zd, a), rec_key(zd, b), a->key_len) == 0) &&
	       memcmp(rec_rdata(zd, a), rec_rdata(zd, b), a->rdlen) == 0;
}

static int sort_records(tld_zdata *zd)
{
	zd->sorted = malloc((zd->nrecs ? zd->nrecs : 1) * sizeof(*zd->sorted));
	if (zd->sorted == NULL)
		return tld_errf(zd->eb, TLD_ENOMEM, "out of memory");
	for (size_t i = 0; i < zd->nrecs; i++)
		zd->sorted[i] = &zd->recs[i];
	qsort_r(zd->sorted, zd->nrecs, sizeof(*zd->sorted), rec_cmp, zd);
	size_t n = 0;
	for (size_t i = 0; i < zd->nrecs; i++) {
		if (n > 0 && same_rr(zd, zd->sorted[n - 1], zd->sorted[i])) {
			zd->stats->duplicates++;
			continue;
		}
		zd->sorted[n++] = zd->sorted[i];
	}
	zd->nsorted = n;
	return TLD_OK;
}

/* ---- checks ---- */

/* Is key a (label-aligned) prefix of other, i.e. other at or below key? */
static bool key_is_below(const uint8_t *other, size_t olen, const uint8_t *key, size_t klen)
{
	return olen >= klen && memcmp(other, key, klen) == 0;
}

static bool rec_same_owner(const struct rec *a, const struct rec *b, const tld_zdata *zd)
{
	return a->key_off == b->key_off ||
	       (a->key_len == b->key_len &&
	        memcmp(rec_key(zd, a), rec_key(zd, b), a->key_len) == 0);
}

/* What a name holds: records [begin, end) of sorted. */
struct node {
	size_t begin, end;
	bool has[TLD_T_CHECKED_MAX];
	bool has_other; /* a type we do not track by number */
	size_t cname_count, soa_count, dname_count;
};

static void node_scan(tld_zdata *zd, size_t begin, struct node *n)
{
	memset(n, 0, sizeof(*n));
	n->begin = begin;
	size_t i = begin;
	const struct rec *first = zd->sorted[begin];
	for (; i < zd->nsorted && rec_same_owner(zd->sorted[i], first, zd); i++) {
		const struct rec *r = zd->sorted[i];
		if (r->is_sig) {
			n->has[TLD_T_RRSIG] = true;
			continue;
		}
		if (r->type < TLD_T_CHECKED_MAX)
			n->has[r->type] = true;
		else
			n->has_other = true;
		n->cname_count += (r->type == TLD_T_CNAME);
		n->soa_count += (r->type == TLD_T_SOA);
		n->dname_count += (r->type == TLD_T_DNAME);
	}
	n->end = i;
}

/* The first record of node n with a type for which pred is true. */
static const struct rec *node_find(tld_zdata *zd, const struct node *n, bool (*pred)(uint16_t))
{
	for (size_t i = n->begin; i < n->end; i++)
		if (!zd->sorted[i]->is_sig && pred(zd->sorted[i]->type))
			return zd->sorted[i];
	for (size_t i = n->begin; i < n->end; i++)
		if (zd->sorted[i]->is_sig && pred(TLD_T_RRSIG))
			return zd->sorted[i];
	return zd->sorted[n->begin];
}

static bool is_glue_type(uint16_t t)
{
	return t == TLD_T_A || t == TLD_T_AAAA;
}
static bool not_glue_type(uint16_t t)
{
	return !is_glue_type(t);
}
static bool allowed_at_cut(uint16_t t)
{
	return t == TLD_T_NS || t == TLD_T_DS || t == TLD_T_NSEC || t == TLD_T_RRSIG ||
	       is_glue_type(t);
}
static bool not_allowed_at_cut(uint16_t t)
{
	return !allowed_at_cut(t);
}
static bool cname_companion_bad(uint16_t t)
{
	return t != TLD_T_CNAME && t != TLD_T_RRSIG && t != TLD_T_NSEC;
}
static bool is_cname(uint16_t t)
{
	return t == TLD_T_CNAME;
}
static bool is_dname(uint16_t t)
{
	return t == TLD_T_DNAME;
}
static bool is_soa(uint16_t t)
{
	return t == TLD_T_SOA;
}
static bool is_ds(uint16_t t)
{
	return t == TLD_T_DS;
}

static bool node_only(const struct node *n, bool (*allowed)(uint16_t))
{
	if (n->has_other)
		return false;
	for (uint16_t t = 0; t < TLD_T_CHECKED_MAX; t++)
		if (n->has[t] && !allowed(t))
			return false;
	return true;
}

static int check_cname(tld_zdata *zd, const struct node *n, bool apex)
{
	if (!n->has[TLD_T_CNAME])
		return TLD_OK;
	const struct rec *c = node_find(zd, n, is_cname);
	if (apex)
		return rec_error(zd, c, "CNAME at the zone apex");
	if (n->cname_count > 1)
		return rec_error(zd, c, "more than one CNAME record at a name");
	for (uint16_t t = 0; t < TLD_T_CHECKED_MAX; t++)
		if (n->has[t] && cname_companion_bad(t))
			return rec_error(zd, node_find(zd, n, cname_companion_bad),
			                 "data beside a CNAME (RFC 1034 3.6.2)");
	if (n->has_other)
		return rec_error(zd, node_find(zd, n, cname_companion_bad),
		                 "data beside a CNAME (RFC 1034 3.6.2)");
	return TLD_OK;
}

/* The walk over names in canonical order, remembering the last cut and DNAME. */
struct walk {
	const uint8_t *cut_key;
	size_t cut_len;
	const struct rec *cut_rec;
	const uint8_t *dname_key;
	size_t dname_len;
	const struct rec *dname_rec;
};

static int check_node(tld_zdata *zd, struct walk *w, const struct node *n)
{
	const struct rec *first = zd->sorted[n->begin];
	const uint8_t *key = rec_key(zd, first);
	size_t klen = first->key_len;
	char cut[TLD_NAME_TXTMAX];

	if (!key_is_below(key, klen, zd->apex_key, zd->apex_keylen))
		return rec_error(zd, first, "outside the zone (not at or below the apex)");
	bool apex = (klen == zd->apex_keylen);
	if (w->cut_key != NULL && key_is_below(key, klen, w->cut_key, w->cut_len)) {
		if (!node_only(n, is_glue_type))
			return rec_error(zd, node_find(zd, n, not_glue_type),
			                 "below the delegation %s; only glue (A/AAAA) is allowed",
			                 rec_owner_text(zd, w->cut_rec, cut, sizeof(cut)));
		zd->stats->glue += n->has[TLD_T_A] + n->has[TLD_T_AAAA];
		return TLD_OK;
	}
	w->cut_key = NULL;
	if (w->dname_key != NULL && key_is_below(key, klen, w->dname_key, w->dname_len))
		return rec_error(zd, first, "below the DNAME at %s",
		                 rec_owner_text(zd, w->dname_rec, cut, sizeof(cut)));
	w->dname_key = NULL;
	if (n->has[TLD_T_SOA] && !apex)
		return rec_error(zd, node_find(zd, n, is_soa), "SOA record outside the apex");
	if (n->soa_count > 1)
		return rec_error(zd, zd->sorted[n->begin + 1], "more than one SOA record");
	int err = check_cname(zd, n, apex);
	if (err < 0)
		return err;
	if (n->has[TLD_T_NS] && !apex) {
		if (!node_only(n, allowed_at_cut))
			return rec_error(zd, node_find(zd, n, not_allowed_at_cut),
			                 "data at a delegation point other than NS, DS, NSEC, "
			                 "RRSIG and glue");
		w->cut_key = key;
		w->cut_len = klen;
		w->cut_rec = first;
		zd->stats->delegations++;
		zd->stats->glue += n->has[TLD_T_A] + n->has[TLD_T_AAAA];
	} else if (n->has[TLD_T_DS]) {
		return rec_error(zd, node_find(zd, n, is_ds),
		                 apex ? "DS at the zone apex (DS belongs in the parent)"
		                      : "DS at a name that is not a delegation point");
	}
	/* A leftmost '*' label: in key form, '*' + 1 then the terminator, last. */
	if (klen >= 2 && key[klen - 2] == '*' + 1 && (klen == 2 || key[klen - 3] == 0))
		zd->flags |= TLD_ZONE_WILDCARD;
	if (n->dname_count > 1)
		return rec_error(zd, node_find(zd, n, is_dname),
		                 "more than one DNAME record at a name (RFC 6672 2.4)");
	if (n->has[TLD_T_DNAME]) {
		zd->flags |= TLD_ZONE_DNAME;
		w->dname_key = key;
		w->dname_len = klen;
		w->dname_rec = first;
	}
	return TLD_OK;
}

/* Does any record exist at key (binary search over sorted)? with_type: 0 = any
 * A or AAAA, else exactly that type. */
static bool has_address(tld_zdata *zd, const uint8_t *key, size_t klen)
{
	size_t lo = 0, hi = zd->nsorted;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct rec *r = zd->sorted[mid];
		size_t n = r->key_len < klen ? r->key_len : klen;
		int c = memcmp(rec_key(zd, r), key, n);
		if (c == 0 && r->key_len != klen)
			c = r->key_len < klen ? -1 : 1;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < zd->nsorted; i++) {
		const struct rec *r = zd->sorted[i];
		if (r->key_len != klen || memcmp(rec_key(zd, r), key, klen) != 0)
			return false;
		if (!r->is_sig && is_glue_type(r->type))
			return true;
	}
	return false;
}

/* Warns about in-zone NS targets that have no address records. */
static void check_glue(tld_zdata *zd, const struct rec *ns)
{
	uint8_t key[TLD_KEY_MAX];
	const uint8_t *target = rec_rdata(zd, ns);
	if (tld_name_check(target, ns->rdlen) < 0)
		return;
	size_t klen = tld_name_key(target, key);
	if (!key_is_below(key, klen, zd->apex_key, zd->apex_keylen) || has_address(zd, key, klen))
		return;
	char owner[TLD_NAME_TXTMAX], tname[TLD_NAME_TXTMAX];
	tld_name_to_text(target, tname, sizeof(tname));
	warnf(zd, "%s:%u: %s NS %s: in-domain name server without glue (no A/AAAA)",
	      rec_file(zd, ns), ns->line, rec_owner_text(zd, ns, owner, sizeof(owner)), tname);
}

static void note_apex(tld_zdata *zd, const struct node *n)
{
	for (size_t i = n->begin; i < n->end; i++) {
		const struct rec *r = zd->sorted[i];
		if (r->is_sig)
			continue;
		const uint8_t *rd = rec_rdata(zd, r);
		if (r->type == TLD_T_SOA) {
			size_t l1 = tld_name_len(rd);
			size_t l2 = tld_name_len(rd + l1);
			zd->serial = tld_get_be32(rd + l1 + l2);
		} else if (r->type == TLD_T_NSEC3PARAM && r->rdlen >= 5 &&
		           zd->nsec3param_len == 0) {
			memcpy(zd->nsec3param, rd, r->rdlen);
			zd->nsec3param_len = r->rdlen;
			zd->flags |= TLD_ZONE_NSEC3;
		} else if (r->type == TLD_T_NSEC) {
			zd->flags |= TLD_ZONE_NSEC;
		} else if (r->type == TLD_T_DNSKEY) {
			zd->flags |= TLD_ZONE_SIGNED;
		}
	}
}

static int check_zone(tld_zdata *zd)
{
	struct walk w = {0};
	struct node n;
	const struct rec *apex_rec = NULL;
	bool apex_ns = false, apex_soa = false;
	for (size_t i = 0; i < zd->nsorted; i = n.end) {
		node_scan(zd, i, &n);
		int err = check_node(zd, &w, &n);
		if (err < 0)
			return err;
		zd->stats->names++;
		const struct rec *r = zd->sorted[i];
		if (r->key_len == zd->apex_keylen) {
			apex_rec = r;
			apex_ns = n.has[TLD_T_NS];
			apex_soa = n.has[TLD_T_SOA];
			note_apex(zd, &n);
		}
		for (size_t j = n.begin; j < n.end; j++) {
			const struct rec *x = zd->sorted[j];
			if (!x->is_sig && x->type == TLD_T_NS)
				check_glue(zd, x);
			if (!x->is_sig && x->type == TLD_T_NSEC3 && x->rdlen > 1 &&
			    (rec_rdata(zd, x)[1] & 1))
				zd->flags |= TLD_ZONE_NSEC3_OPTOUT;
		}
	}
	char apex[TLD_NAME_TXTMAX];
	tld_name_to_text(zd->apex, apex, sizeof(apex));
	const char *file = zd->nfiles ? zd->files[0] : "-";
	if (!apex_soa)
		return tld_errf(zd->eb, TLD_EZONE, "%s: no SOA record at the apex %s", file, apex);
	if (!apex_ns)
		return tld_errf(zd->eb, TLD_EZONE, "%s:%u: no NS records at the apex %s",
		                rec_file(zd, apex_rec), apex_rec->line, apex);
	return TLD_OK;
}

/* Warns once per RRset whose records disagree on TTL. */
/* The record of sorted[begin, end) read first (records are stored in
 * reading order; RRSIGs aside), whose TTL the RRset takes. */
static const struct rec *first_read(const tld_zdata *zd, size_t begin, size_t end)
{
	const struct rec *first = NULL;
	for (size_t i = begin; i < end; i++)
		if (!zd->sorted[i]->is_sig && (first == NULL || zd->sorted[i] < first))
			first = zd->sorted[i];
	return first != NULL ? first : zd->sorted[begin];
}

static void check_ttls(tld_zdata *zd, size_t begin, size_t end)
{
	const struct rec *first = first_read(zd, begin, end);
	for (size_t i = begin; i < end; i++) {
		const struct rec *r = zd->sorted[i];
		if (!r->is_sig && r->ttl != first->ttl) {
			char owner[TLD_NAME_TXTMAX], type[32];
			tld_rrtype_to_text(r->type, type, sizeof(type));
			warnf(zd,
			      "%s:%u: %s %s: TTL %u differs from %u in the same RRset; using %u",
			      rec_file(zd, r), r->line, rec_owner_text(zd, r, owner, sizeof(owner)),
			      type, r->ttl, first->ttl, first->ttl);
			return;
		}
	}
}

static bool same_rrset(const tld_zdata *zd, const struct rec *a, const struct rec *b);

/* The most an RRset with its RRSIGs may take in a response: a 65535-byte
 * message less its header, the longest question and an OPT RR. */
#define RRSET_WIRE_MAX (65535u - 12 - (255 + 4) - 11)

/* Refuses an RRset that no DNS message can carry, even over TCP: the server
 * could only ever answer it with TC=1 and nothing. Each RR is counted with a
 * compressed owner (2 bytes), its fixed fields (10) and its RDATA. */
static int check_rrset_sizes(tld_zdata *zd)
{
	for (size_t i = 0, j; i < zd->nsorted; i = j) {
		size_t wire = 0;
		for (j = i; j < zd->nsorted && same_rrset(zd, zd->sorted[i], zd->sorted[j]); j++)
			wire += 12u + zd->sorted[j]->rdlen;
		if (wire > RRSET_WIRE_MAX) {
			char type[32];
			tld_rrtype_to_text(zd->sorted[i]->type, type, sizeof(type));
			return rec_error(
			    zd, zd->sorted[i],
			    "%s RRset of %zu records takes %zu bytes on the wire, more "
			    "than a DNS message can carry (%u)",
			    type, j - i, wire, RRSET_WIRE_MAX);
		}
	}
	return TLD_OK;
}

/* ---- public ---- */

static int finish_load(tld_zdata *zd, const char *name, tld_import_stats *stats, double t0)
{
	if (!zd->have_apex)
		return tld_errf(zd->eb, TLD_EZONE, "%s: no SOA record", name);
	stats->parse_s = now_s() - t0;
	double t1 = now_s();
	int err = sort_records(zd);
	if (err == 0)
		err = check_zone(zd);
	if (err == 0)
		err = check_rrset_sizes(zd);
	stats->serial = zd->serial;
	stats->check_s = now_s() - t1;
	return err;
}

static int load_with(zs_scanner_t *s, tld_zdata *zd, const char *name, tld_import_stats *stats,
                     double t0)
{
	int err = scan(s, zd, name);
	zs_deinit(s);
	if (err == 0)
		err = finish_load(zd, name, stats, t0);
	return err;
}

static int scanner_init(zs_scanner_t *s, const tld_import_opts *o, tld_errbuf *eb)
{
	char origin[TLD_NAME_TXTMAX] = ".";
	if (o->origin != NULL && tld_name_to_text(o->origin, origin, sizeof(origin)) < 0)
		return tld_errf(eb, TLD_ENAME, "origin too long");
	if (zs_init(s, origin, 1, 3600) != 0)
		return tld_errf(eb, TLD_EINVAL, "zone scanner: %s", zs_strerror(s->error.code));
	return TLD_OK;
}

typedef int (*input_fn)(zs_scanner_t *s, const void *arg, size_t len);

static int load_common(input_fn set_input, const void *arg, size_t len, const char *name,
                       const tld_import_opts *o, tld_zdata **out, tld_import_stats *stats,
                       tld_errbuf *eb)
{
	static const tld_import_opts no_opts = {0};
	tld_import_stats dummy;
	if (o == NULL)
		o = &no_opts;
	if (stats == NULL)
		stats = &dummy;
	memset(stats, 0, sizeof(*stats));
	double t0 = now_s();
	tld_zdata *zd = NULL;
	int err = zdata_new(o, stats, eb, &zd);
	if (err < 0)
		return err;
	zs_scanner_t *s = malloc(sizeof(*s));
	if (s == NULL) {
		tld_zdata_free(zd);
		return tld_errf(eb, TLD_ENOMEM, "out of memory");
	}
	if ((err = scanner_init(s, o, eb)) == 0) {
		errno = 0;
		if (set_input(s, arg, len) != 0) {
			int e = errno;
			err =
			    tld_errf(eb, e == ENOENT ? TLD_ENOENT : TLD_EIO, "%s: cannot read: %s",
			             name, e != 0 ? strerror(e) : zs_strerror(s->error.code));
			zs_deinit(s);
		} else {
			err = load_with(s, zd, name, stats, t0);
		}
	}
	free(s);
	if (err < 0) {
		tld_zdata_free(zd);
		return err;
	}
	*out = zd;
	return TLD_OK;
}

static int input_file(zs_scanner_t *s, const void *path, size_t len)
{
	return zs_set_input_file(s, path);
}

static int input_string(zs_scanner_t *s, const void *text, size_t len)
{
	return zs_set_input_string(s, text, len);
}

/* Whether text, the end of a zone file, ends in a $ directive ($INCLUDE,
 * $ORIGIN, $TTL) with no newline after it: libzscanner skips such a line
 * without a word, and a skipped $INCLUDE loses every record it names. */
static bool open_last_directive(const char *text, size_t n)
{
	if (n == 0 || text[n - 1] == '\n')
		return false;
	size_t start = n;
	while (start > 0 && text[start - 1] != '\n')
		start--;
	while (start < n && (text[start] == ' ' || text[start] == '\t'))
		start++;
	return start < n && text[start] == '$';
}

#define TAIL_BYTES 4096 /* a directive line is shorter than this */

static bool file_ends_in_open_directive(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	bool open_end = false;
	if (fd < 0)
		return false;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
		char tail[TAIL_BYTES];
		off_t n = st.st_size < TAIL_BYTES ? st.st_size : TAIL_BYTES;
		open_end = pread(fd, tail, (size_t)n, st.st_size - n) == n &&
		           open_last_directive(tail, (size_t)n);
	}
	close(fd);
	return open_end;
}

#define OPEN_DIRECTIVE_WHY                                                                         \
	"%s: the last line, a $ directive, has no newline after it, and the zone parser "          \
	"would skip it (and any records it includes): end the file with a newline"

int tld_zdata_load(const char *path, const tld_import_opts *o, tld_zdata **out,
                   tld_import_stats *stats, tld_errbuf *eb)
{
	if (file_ends_in_open_directive(path))
		return tld_errf(eb, TLD_ESYNTAX, OPEN_DIRECTIVE_WHY, path);
	return load_common(input_file, path, 0, path, o, out, stats, eb);
}

int tld_zdata_load_string(const char *text, size_t len, const char *name, const tld_import_opts *o,
                          tld_zdata **out, tld_import_stats *stats, tld_errbuf *eb)
{
	if (open_last_directive(text, len))
		return tld_errf(eb, TLD_ESYNTAX, OPEN_DIRECTIVE_WHY, name);
	return load_common(input_string, text, len, name, o, out, stats, eb);
}

const uint8_t *tld_zdata_apex(const tld_zdata *zd)
{
	return zd->apex;
}

uint32_t tld_zdata_serial(const tld_zdata *zd)
{
	return zd->serial;
}

size_t tld_zdata_count(const tld_zdata *zd)
{
	return zd->nsorted;
}

void tld_zdata_rec(const tld_zdata *zd, size_t i, tld_zrec *out)
{
	const struct rec *r = zd->sorted[i];
	out->key = rec_key(zd, r);
	out->key_len = r->key_len;
	out->type = r->type;
	out->is_sig = r->is_sig != 0;
	out->ttl = r->ttl;
	out->rdata = rec_rdata(zd, r);
	out->rdlen = r->rdlen;
}

void tld_zdata_free(tld_zdata *zd)
{
	if (zd == NULL)
		return;
	for (size_t i = 0; i < zd->nfiles; i++)
		free(zd->files[i]);
	free(zd->files);
	free(zd->arena);
	free(zd->recs);
	free(zd->sorted);
	free(zd);
}

/* Growable byte buffer for building values. */
struct buf {
	uint8_t *p;
	size_t len, cap;
};

static int buf_need(struct buf *b, size_t more)
{
	if (b->len + more <= b->cap)
		return TLD_OK;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more)
		cap *= 2;
	uint8_t *p = realloc(b->p, cap);
	if (p == NULL)
		return TLD_ENOMEM;
	b->p = p;
	b->cap = cap;
	return TLD_OK;
}

static void buf_be16(struct buf *b, uint16_t v)
{
	b->p[b->len++] = (uint8_t)(v >> 8);
	b->p[b->len++] = (uint8_t)v;
}

static void buf_be32(struct buf *b, uint32_t v)
{
	buf_be16(b, (uint16_t)(v >> 16));
	buf_be16(b, (uint16_t)v);
}

/* Builds the value of the RRset [begin, end) (same owner and type; records
 * first, then RRSIGs, as sorted). */
static int build_value(tld_zdata *zd, size_t begin, size_t end, struct buf *b)
{
	b->len = 0;
	uint16_t nrr = 0, nsig = 0;
	int err = buf_need(b, 8);
	if (err < 0)
		return err;
	b->len = 8;
	for (size_t i = begin; i < end; i++) {
		const struct rec *r = zd->sorted[i];
		if ((err = buf_need(b, 6u + r->rdlen)) < 0)
			return err;
		if (r->is_sig) {
			buf_be32(b, r->ttl);
			nsig++;
		} else {
			nrr++;
		}
		if (nrr == UINT16_MAX || nsig == UINT16_MAX)
			return TLD_ESPACE;
		buf_be16(b, r->rdlen);
		memcpy(b->p + b->len, rec_rdata(zd, r), r->rdlen);
		b->len += r->rdlen;
	}
	uint32_t ttl = first_read(zd, begin, end)->ttl; /* signatures only: theirs */
	size_t len = b->len;
	b->len = 0;
	buf_be32(b, ttl);
	buf_be16(b, nrr);
	buf_be16(b, nsig);
	b->len = len;
	return TLD_OK;
}

static bool same_rrset(const tld_zdata *zd, const struct rec *a, const struct rec *b)
{
	return a->type == b->type && rec_same_owner(a, b, zd);
}

/* Referral data is built while the sorted RRsets are written: a cut's
 * entries (NS, DS, NSEC at the cut, A/AAAA below it) are contiguous. */
struct referral {
	const struct rec *cut; /* first record of the cut being collected, or NULL */
	uint8_t cut_name[TLD_NAME_MAX];
	uint8_t *blob;
	size_t len, cap;
};

static int referral_flush(tld_zdata *zd, tld_writer *w, tld_zone *z, struct referral *ref,
                          tld_errbuf *eb)
{
	if (ref->cut == NULL)
		return TLD_OK;
	int err = tld_cut_put(w, z, ref->cut_name, ref->blob, ref->len, true, eb);
	ref->cut = NULL;
	ref->len = 0;
	return err;
}

/* Does the node starting at sorted[i] own NS (below the apex)? */
static bool node_is_cut(const tld_zdata *zd, size_t i)
{
	const struct rec *first = zd->sorted[i];
	if (first->key_len == zd->apex_keylen)
		return false;
	for (; i < zd->nsorted && rec_same_owner(zd->sorted[i], first, zd); i++)
		if (!zd->sorted[i]->is_sig && zd->sorted[i]->type == TLD_T_NS)
			return true;
	return false;
}

/* Accounts for the RRset sorted[i] (value in b) in the referral data. */
static int referral_step(tld_zdata *zd, tld_writer *w, tld_zone *z, struct referral *ref, size_t i,
                         const uint8_t *owner, const struct buf *b, tld_errbuf *eb)
{
	const struct rec *r = zd->sorted[i];
	bool new_node = (i == 0 || !rec_same_owner(zd->sorted[i - 1], r, zd));
	if (new_node && ref->cut != NULL &&
	    !key_is_below(rec_key(zd, r), r->key_len, rec_key(zd, ref->cut), ref->cut->key_len)) {
		int err = referral_flush(zd, w, z, ref, eb);
		if (err < 0)
			return err;
	}
	if (new_node && ref->cut == NULL && node_is_cut(zd, i)) {
		ref->cut = r;
		memcpy(ref->cut_name, owner, tld_name_len(owner));
	}
	if (ref->cut == NULL || !tld_referral_type(r->type, rec_same_owner(r, ref->cut, zd)))
		return TLD_OK;
	if (tld_referral_add(&ref->blob, &ref->len, &ref->cap, owner, r->type, b->p, b->len) < 0)
		return tld_errf(eb, TLD_ENOMEM, "out of memory");
	return TLD_OK;
}

int tld_zdata_write(const tld_zdata *zdc, tld_writer *w, tld_zone *z, tld_import_stats *stats,
                    tld_errbuf *eb)
{
	tld_zdata *zd = (tld_zdata *)zdc;
	tld_import_stats dummy = {0};
	if (stats == NULL)
		stats = &dummy;
	zd->stats = stats;
	zd->eb = eb;
	int err = tld_zone_new(w, zd->apex, z, eb);
	if (err < 0)
		return err;
	z->serial = zd->serial;
	z->flags = zd->flags;
	if (zd->nsec3param_len >= 5) {
		z->nsec3_alg = zd->nsec3param[0];
		z->nsec3_flags = zd->nsec3param[1];
		z->nsec3_iter = (uint16_t)(zd->nsec3param[2] << 8 | zd->nsec3param[3]);
		z->nsec3_saltlen = zd->nsec3param[4];
		memcpy(z->nsec3_salt, zd->nsec3param + 5, z->nsec3_saltlen);
	}
	struct buf b = {0};
	struct referral ref = {0};
	uint8_t owner[TLD_NAME_MAX];
	for (size_t i = 0, j; i < zd->nsorted && err == 0; i = j) {
		for (j = i + 1; j < zd->nsorted && same_rrset(zd, zd->sorted[i], zd->sorted[j]);)
			j++;
		check_ttls(zd, i, j);
		const struct rec *r = zd->sorted[i];
		if ((err = build_value(zd, i, j, &b)) < 0) {
			err = rec_error(zd, r, "RRset too large");
			break;
		}
		if (tld_key_name(rec_key(zd, r), r->key_len, owner) < 0) {
			err = rec_error(zd, r, "bad owner name");
			break;
		}
		if ((err = referral_step(zd, w, z, &ref, i, owner, &b, eb)) < 0)
			break;
		err = tld_rrset_put(w, z, owner, r->type, b.p, b.len, true, eb);
		stats->rrsets++;
	}
	if (err == 0)
		err = referral_flush(zd, w, z, &ref, eb);
	free(b.p);
	free(ref.blob);
	return err;
}

int tld_import_file(tld_store *st, const char *path, const tld_import_opts *o,
                    tld_import_stats *stats, tld_errbuf *eb)
{
	tld_import_stats dummy;
	if (stats == NULL)
		stats = &dummy;
	tld_zdata *zd = NULL;
	int err = tld_zdata_load(path, o, &zd, stats, eb);
	if (err < 0)
		return err;
	double t0 = now_s();
	tld_writer w;
	tld_zone z;
	if ((err = tld_writer_begin(st, &w, eb)) == 0) {
		err = tld_zdata_write(zd, &w, &z, stats, eb);
		if (err == 0)
			err = tld_zone_publish(&w, &z, eb);
		stats->write_s = now_s() - t0;
		t0 = now_s();
		if (err == 0) {
			err = tld_writer_commit(&w, eb);
		} else {
			tld_writer_abort(&w);
			err = tld_store_space_error(st, err, eb);
		}
		stats->commit_s = now_s() - t0;
	}
	tld_zdata_free(zd);
	return err;
}
