/* store.c - the zone store: many zones in one memory-mapped LMDB environment. */
#include "store.h"
#include "../common/bytes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#define STORE_MAGIC    "tldnode-store"
#define ZONE_REC_MAGIC 0x746c647aU /* "tldz" */
#define ZID_LEN        4
#define RR_KEY_MAX     (ZID_LEN + TLD_KEY_MAX + 1 + 2)

struct tld_store {
	MDB_env *env;
	MDB_dbi meta, zones, rrsets, cuts, nsec, nsec3, journal;
	bool read_only;
};

/* What the zones database holds for each apex. */
struct zone_rec {
	uint32_t magic;
	uint32_t size;
	tld_zone zone;
};

/* ---- small helpers ---- */

int tld_store_err(int rc, tld_errbuf *eb, const char *what)
{
	switch (rc) {
	case MDB_SUCCESS:
		return TLD_OK;
	case MDB_NOTFOUND:
		return TLD_ENOENT;
	case MDB_MAP_FULL:
		return tld_errf(eb, TLD_EMAPFULL,
		                "%s: the store's map is full; nothing was written "
		                "(open it with a larger --map-size)",
		                what);
	case MDB_READERS_FULL:
		return tld_errf(eb, TLD_EBUSY, "%s: too many store readers", what);
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
		return tld_errf(eb, TLD_EFOREIGN, "%s: not a tldnode store, or a corrupt one (%s)",
		                what, mdb_strerror(rc));
	case ENOMEM:
		return tld_errf(eb, TLD_ENOMEM, "%s: out of memory", what);
	case ENOSPC:
		return tld_errf(eb, TLD_EMAPFULL,
		                "%s: no space left on device; nothing was written", what);
	default:
		return tld_errf(eb, TLD_ESTORE, "%s: %s", what, mdb_strerror(rc));
	}
}

/* zid | rel : the key of a name inside a zone; returns its length or TLD_EINVAL
 * when the name is not at or below the zone's apex. */
static int name_rel_key(const tld_zone *z, const uint8_t *name, uint8_t *key)
{
	uint8_t full[TLD_KEY_MAX];
	size_t flen = tld_name_key(name, full);
	if (flen < z->apex_keylen || memcmp(full, z->apex_key, z->apex_keylen) != 0)
		return TLD_EINVAL;
	tld_put_be32(key, z->id);
	size_t rlen = flen - z->apex_keylen;
	memcpy(key + ZID_LEN, full + z->apex_keylen, rlen);
	return (int)(ZID_LEN + rlen);
}

static int rr_key(const tld_zone *z, const uint8_t *owner, uint16_t type, uint8_t *key)
{
	int n = name_rel_key(z, owner, key);
	if (n < 0)
		return n;
	key[n] = 0;
	tld_put_be16(key + n + 1, type);
	return n + 3;
}

/* Name of a zid|rel key (rel of length rlen at key+ZID_LEN). */
static int rel_key_name(const tld_zone *z, const uint8_t *rel, size_t rlen, uint8_t *name)
{
	uint8_t full[TLD_KEY_MAX + 1];
	if ((size_t)z->apex_keylen + rlen > TLD_KEY_MAX)
		return TLD_ENAME;
	memcpy(full, z->apex_key, z->apex_keylen);
	memcpy(full + z->apex_keylen, rel, rlen);
	return tld_key_name(full, z->apex_keylen + rlen, name);
}

/* ---- RRset values ---- */

int tld_rrset_encode(uint8_t *buf, size_t buflen, uint32_t ttl, uint16_t rr_count,
                     const uint8_t *rrs, size_t rrs_len, uint16_t sig_count, const uint8_t *sigs,
                     size_t sigs_len)
{
	size_t need = 8 + rrs_len + sigs_len;
	if (need > buflen)
		return TLD_ESPACE;
	tld_put_be32(buf, ttl);
	tld_put_be16(buf + 4, rr_count);
	tld_put_be16(buf + 6, sig_count);
	if (rrs_len > 0)
		memcpy(buf + 8, rrs, rrs_len);
	if (sigs_len > 0)
		memcpy(buf + 8 + rrs_len, sigs, sigs_len);
	return (int)need;
}

/* Skips count records of the given header size; NULL if they overrun end. */
static const uint8_t *skip_records(const uint8_t *p, const uint8_t *end, unsigned count, size_t hdr)
{
	for (unsigned i = 0; i < count; i++) {
		if ((size_t)(end - p) < hdr)
			return NULL;
		size_t rdlen = tld_get_be16(p + hdr - 2);
		if ((size_t)(end - p) < hdr + rdlen)
			return NULL;
		p += hdr + rdlen;
	}
	return p;
}

int tld_rrset_decode(uint16_t type, const uint8_t *val, size_t len, tld_rrset *out)
{
	if (len < 8)
		return TLD_EFOREIGN;
	const uint8_t *end = val + len;
	out->type = type;
	out->ttl = tld_get_be32(val);
	out->rr_count = tld_get_be16(val + 4);
	out->sig_count = tld_get_be16(val + 6);
	out->rrs = val + 8;
	out->sigs = skip_records(out->rrs, end, out->rr_count, 2);
	if (out->sigs == NULL || skip_records(out->sigs, end, out->sig_count, 6) != end)
		return TLD_EFOREIGN;
	out->end = end;
	return TLD_OK;
}

bool tld_rr_next(const uint8_t **p, const uint8_t *end, uint32_t *ttl, const uint8_t **rdata,
                 uint16_t *rdlen)
{
	const uint8_t *q = *p;
	size_t hdr = ttl != NULL ? 6 : 2;
	if ((size_t)(end - q) < hdr)
		return false;
	if (ttl != NULL)
		*ttl = tld_get_be32(q);
	*rdlen = tld_get_be16(q + hdr - 2);
	*rdata = q + hdr;
	*p = q + hdr + *rdlen;
	return true;
}

/* ---- environment ---- */

static int open_dbis(tld_store *st, MDB_txn *txn, unsigned flags)
{
	struct {
		const char *name;
		MDB_dbi *dbi;
	} dbs[] = {
	    {"meta", &st->meta},       {"zones", &st->zones}, {"rrsets", &st->rrsets},
	    {"cuts", &st->cuts},       {"nsec", &st->nsec},   {"nsec3", &st->nsec3},
	    {"journal", &st->journal},
	};
	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
		int rc = mdb_dbi_open(txn, dbs[i].name, flags, dbs[i].dbi);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int meta_get(tld_store *st, MDB_txn *txn, const char *name, MDB_val *out)
{
	MDB_val k = {strlen(name), (void *)name};
	return mdb_get(txn, st->meta, &k, out);
}

static int meta_put(tld_store *st, MDB_txn *txn, const char *name, const void *v, size_t len)
{
	MDB_val k = {strlen(name), (void *)name}, d = {len, (void *)v};
	return mdb_put(txn, st->meta, &k, &d, 0);
}

int tld_reader_record_get(tld_reader *r, const void *key, size_t klen, const void **val,
                          size_t *vlen)
{
	MDB_val k = {klen, (void *)key}, v;
	int rc = mdb_get(r->txn, r->st->meta, &k, &v);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? TLD_ENOENT : tld_store_err(rc, NULL, "record");
	*val = v.mv_data;
	*vlen = v.mv_size;
	return TLD_OK;
}

int tld_writer_record_put(tld_writer *w, const void *key, size_t klen, const void *val, size_t vlen,
                          tld_errbuf *eb)
{
	MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
	int rc = mdb_put(w->txn, w->st->meta, &k, &v, 0);
	return rc == 0 ? TLD_OK : tld_store_err(rc, eb, "record");
}

int tld_writer_record_prune(tld_writer *w, const void *prefix, size_t plen,
                            bool (*drop)(const void *val, size_t vlen, void *ctx), void *ctx,
                            tld_errbuf *eb)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(w->txn, w->st->meta, &cur);
	if (rc != 0)
		return tld_store_err(rc, eb, "record");
	MDB_val k = {plen, (void *)prefix}, v;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     rc == 0 && k.mv_size >= plen && memcmp(k.mv_data, prefix, plen) == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (drop(v.mv_data, v.mv_size, ctx) && (rc = mdb_cursor_del(cur, 0)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc == 0 || rc == MDB_NOTFOUND ? TLD_OK : tld_store_err(rc, eb, "record");
}

/* Checks (or, when empty and writable, writes) the magic and version. */
static int check_identity(tld_store *st, MDB_txn *txn, bool fresh, const char *dir, tld_errbuf *eb)
{
	MDB_val v;
	int rc = meta_get(st, txn, "magic", &v);
	if (rc == MDB_NOTFOUND && fresh) {
		uint32_t ver = TLD_STORE_VERSION, zid = 1;
		uint64_t gen = 1;
		if ((rc = meta_put(st, txn, "magic", STORE_MAGIC, strlen(STORE_MAGIC))) != 0 ||
		    (rc = meta_put(st, txn, "version", &ver, sizeof(ver))) != 0 ||
		    (rc = meta_put(st, txn, "next_zid", &zid, sizeof(zid))) != 0 ||
		    (rc = meta_put(st, txn, "generation", &gen, sizeof(gen))) != 0)
			return tld_store_err(rc, eb, dir);
		return TLD_OK;
	}
	if (rc != 0 || v.mv_size != strlen(STORE_MAGIC) ||
	    memcmp(v.mv_data, STORE_MAGIC, v.mv_size) != 0)
		return tld_errf(eb, TLD_EFOREIGN,
		                "%s: an LMDB environment, but not a tldnode store", dir);
	rc = meta_get(st, txn, "version", &v);
	uint32_t ver = 0;
	if (rc == 0 && v.mv_size == sizeof(ver))
		memcpy(&ver, v.mv_data, sizeof(ver));
	if (ver != TLD_STORE_VERSION)
		return tld_errf(eb, TLD_EVERSION,
		                "%s: store format version %u, this build reads version %u", dir,
		                ver, TLD_STORE_VERSION);
	return TLD_OK;
}

static int env_setup(tld_store *st, const char *dir, const tld_store_opts *opts, tld_errbuf *eb)
{
	int rc = mdb_env_create(&st->env);
	if (rc != 0)
		return tld_store_err(rc, eb, "mdb_env_create");
	size_t map = opts->map_size != 0 ? opts->map_size : TLD_STORE_DEFAULT_MAP;
	if ((rc = mdb_env_set_mapsize(st->env, map)) != 0 ||
	    (rc = mdb_env_set_maxdbs(st->env, 8)) != 0 ||
	    (rc = mdb_env_set_maxreaders(st->env, TLD_STORE_MAX_READERS)) != 0)
		return tld_store_err(rc, eb, dir);
	unsigned flags = MDB_NOTLS | MDB_NORDAHEAD | (opts->read_only ? MDB_RDONLY : 0);
	rc = mdb_env_open(st->env, dir, flags, 0644);
	if (rc == EACCES && opts->read_only)
		return tld_errf(eb, TLD_EIO, "%s: permission denied", dir);
	if (rc != 0)
		return tld_store_err(rc, eb, dir);
	int dead = 0;
	mdb_reader_check(st->env, &dead);
	return TLD_OK;
}

/* Does dir hold a data file? Distinguishes "no store" from other failures. */
static int probe_dir(const char *dir, bool create, tld_errbuf *eb, bool *fresh)
{
	struct stat sb;
	char path[4096];
	*fresh = false;
	if (stat(dir, &sb) != 0) {
		if (!create)
			return tld_errf(eb, TLD_ENOENT, "%s: no such store", dir);
		if (mkdir(dir, 0755) != 0)
			return tld_errf(eb, TLD_EIO, "%s: cannot create: %s", dir, strerror(errno));
		*fresh = true;
		return TLD_OK;
	}
	if (!S_ISDIR(sb.st_mode))
		return tld_errf(eb, TLD_EFOREIGN, "%s: not a directory", dir);
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (stat(path, &sb) != 0) {
		if (!create)
			return tld_errf(eb, TLD_ENOENT, "%s: no such store (no data.mdb)", dir);
		*fresh = true;
	}
	return TLD_OK;
}

int tld_store_open(tld_store **out, const char *dir, const tld_store_opts *opts, tld_errbuf *eb)
{
	static const tld_store_opts defaults = {0};
	if (opts == NULL)
		opts = &defaults;
	bool fresh;
	int err = probe_dir(dir, opts->create && !opts->read_only, eb, &fresh);
	if (err < 0)
		return err;
	tld_store *st = calloc(1, sizeof(*st));
	if (st == NULL)
		return tld_errf(eb, TLD_ENOMEM, "out of memory");
	st->read_only = opts->read_only;
	MDB_txn *txn = NULL;
	if ((err = env_setup(st, dir, opts, eb)) < 0)
		goto fail;
	int rc = mdb_txn_begin(st->env, NULL, opts->read_only ? MDB_RDONLY : 0, &txn);
	if (rc == 0)
		rc = open_dbis(st, txn, opts->read_only ? 0 : MDB_CREATE);
	if (rc == MDB_NOTFOUND) {
		err = tld_errf(eb, TLD_EFOREIGN, "%s: an LMDB environment, but not a tldnode store",
		               dir);
		goto fail;
	}
	if (rc != 0) {
		err = tld_store_err(rc, eb, dir);
		goto fail;
	}
	if ((err = check_identity(st, txn, fresh && !opts->read_only, dir, eb)) < 0)
		goto fail;
	rc = mdb_txn_commit(txn); /* also for read-only: aborting would close the dbis */
	txn = NULL;
	if (rc != 0) {
		err = tld_store_err(rc, eb, dir);
		goto fail;
	}
	*out = st;
	return TLD_OK;
fail:
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (st->env != NULL)
		mdb_env_close(st->env);
	free(st);
	return err;
}

void tld_store_close(tld_store *st)
{
	if (st == NULL)
		return;
	mdb_env_close(st->env);
	free(st);
}

MDB_env *tld_store_env(tld_store *st)
{
	return st->env;
}

int tld_store_usage(tld_store *st, uint64_t *used, uint64_t *map_size)
{
	MDB_envinfo info;
	MDB_stat stat;
	int rc = mdb_env_info(st->env, &info);
	if (rc == 0)
		rc = mdb_env_stat(st->env, &stat);
	if (rc != 0)
		return tld_store_err(rc, NULL, "mdb_env_info");
	*used = (uint64_t)(info.me_last_pgno + 1) * stat.ms_psize;
	*map_size = info.me_mapsize;
	return TLD_OK;
}

/* ---- readers ---- */

static const MDB_dbi *reader_dbis(const tld_store *st, MDB_dbi out[TLD_CUR_COUNT])
{
	out[TLD_CUR_RR] = st->rrsets;
	out[TLD_CUR_CUT] = st->cuts;
	out[TLD_CUR_NSEC] = st->nsec;
	out[TLD_CUR_NSEC3] = st->nsec3;
	out[TLD_CUR_ZONE] = st->zones;
	return out;
}

int tld_reader_open(tld_store *st, tld_reader *r)
{
	memset(r, 0, sizeof(*r));
	r->st = st;
	int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &r->txn);
	if (rc != 0)
		return tld_store_err(rc, NULL, "read transaction");
	MDB_dbi dbi[TLD_CUR_COUNT];
	reader_dbis(st, dbi);
	for (size_t i = 0; i < TLD_CUR_COUNT && rc == 0; i++)
		rc = mdb_cursor_open(r->txn, dbi[i], &r->cur[i]);
	if (rc != 0) {
		tld_reader_close(r);
		return tld_store_err(rc, NULL, "read cursor");
	}
	mdb_txn_reset(r->txn);
	return TLD_OK;
}

int tld_reader_begin(tld_reader *r)
{
	int rc = mdb_txn_renew(r->txn);
	if (rc != 0)
		return tld_store_err(rc, NULL, "renew read transaction");
	r->bound = 0;
	r->active = true;
	return TLD_OK;
}

/* Sets *cur to cursor i, bound to the current snapshot. */
static int reader_cursor(tld_reader *r, enum tld_reader_cursor i, MDB_cursor **cur)
{
	if (!(r->bound & (1u << i))) {
		int rc = mdb_cursor_renew(r->txn, r->cur[i]);
		if (rc != 0)
			return tld_store_err(rc, NULL, "renew read cursor");
		r->bound |= 1u << i;
	}
	*cur = r->cur[i];
	return TLD_OK;
}

/* Writes name's zid|rel key to key and binds cursor i; returns the key length. */
static int reader_name_key(tld_reader *r, enum tld_reader_cursor i, const tld_zone *z,
                           const uint8_t *name, uint8_t *key, MDB_cursor **cur)
{
	int klen = name_rel_key(z, name, key);
	if (klen < 0)
		return klen;
	int rc = reader_cursor(r, i, cur);
	return rc < 0 ? rc : klen;
}

MDB_cursor *tld_reader_rrsets_cursor(tld_reader *r)
{
	MDB_cursor *cur = NULL;
	return reader_cursor(r, TLD_CUR_RR, &cur) == TLD_OK ? cur : NULL;
}

void tld_reader_end(tld_reader *r)
{
	if (r->active)
		mdb_txn_reset(r->txn);
	r->active = false;
	r->bound = 0;
}

void tld_reader_close(tld_reader *r)
{
	for (size_t i = 0; i < TLD_CUR_COUNT; i++)
		if (r->cur[i] != NULL)
			mdb_cursor_close(r->cur[i]);
	if (r->txn != NULL)
		mdb_txn_abort(r->txn);
	memset(r, 0, sizeof(*r));
}

/* ---- zones ---- */

static int zone_from_val(const MDB_val *v, tld_zone *out)
{
	struct zone_rec rec;
	if (v->mv_size != sizeof(rec))
		return TLD_EFOREIGN;
	memcpy(&rec, v->mv_data, sizeof(rec));
	if (rec.magic != ZONE_REC_MAGIC || rec.size != sizeof(rec))
		return TLD_EFOREIGN;
	*out = rec.zone;
	return TLD_OK;
}

/* Keys of the zones database are ZONE_KEY_TAG | key(apex): LMDB keys cannot be
 * empty, and the root zone's key is. */
#define ZONE_KEY_TAG 'z'

static size_t zone_key(const uint8_t *apex, uint8_t *key)
{
	key[0] = ZONE_KEY_TAG;
	return 1 + tld_name_key(apex, key + 1);
}

static int zone_lookup_key(MDB_txn *txn, MDB_dbi dbi, const uint8_t *key, size_t klen,
                           tld_zone *out)
{
	MDB_val k = {klen, (void *)key}, v;
	int rc = mdb_get(txn, dbi, &k, &v);
	if (rc != 0)
		return tld_store_err(rc, NULL, "zone lookup");
	return zone_from_val(&v, out);
}

int tld_zone_get(tld_reader *r, const uint8_t *apex, tld_zone *out)
{
	uint8_t key[1 + TLD_KEY_MAX];
	size_t klen = zone_key(apex, key);
	return zone_lookup_key(r->txn, r->st->zones, key, klen, out);
}

int tld_zone_find(tld_reader *r, const uint8_t *name, tld_zone *out)
{
	uint8_t key[1 + TLD_KEY_MAX];
	size_t klen = zone_key(name, key);
	/* Every suffix of name has a key that is a prefix of key(name) ending at a
	 * label terminator: try them from the longest. */
	for (size_t len = klen;; len--) {
		if (len == 1 || key[len - 1] == 0) {
			int err = zone_lookup_key(r->txn, r->st->zones, key, len, out);
			if (err != TLD_ENOENT)
				return err;
		}
		if (len == 1)
			return TLD_ENOENT;
	}
}

int tld_zone_find_qtype(tld_reader *r, const uint8_t *name, uint16_t qtype, tld_zone *out)
{
	int err = tld_zone_find(r, name, out);
	if (err < 0 || qtype != 43 /* DS */ || name[0] == 0 || out->apex_len != tld_name_len(name))
		return err;
	tld_zone parent;
	if (tld_zone_find(r, name + 1 + name[0], &parent) == 0)
		*out = parent;
	return TLD_OK;
}

int tld_zone_foreach(tld_reader *r, int (*fn)(const tld_zone *z, void *ctx), void *ctx)
{
	MDB_val k, v;
	MDB_cursor *cur = NULL;
	int rc = reader_cursor(r, TLD_CUR_ZONE, &cur);
	if (rc < 0)
		return rc;
	rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	while (rc == 0) {
		tld_zone z;
		int err = zone_from_val(&v, &z);
		if (err < 0)
			return err;
		if ((err = fn(&z, ctx)) != 0)
			return err;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	return rc == MDB_NOTFOUND ? TLD_OK : tld_store_err(rc, NULL, "zone list");
}

/* ---- RRset reads ---- */

static int rrset_get_txn(MDB_txn *txn, MDB_dbi dbi, const tld_zone *z, const uint8_t *owner,
                         uint16_t type, tld_rrset *out)
{
	uint8_t key[RR_KEY_MAX];
	int klen = rr_key(z, owner, type, key);
	if (klen < 0)
		return klen;
	MDB_val k = {(size_t)klen, key}, v;
	int rc = mdb_get(txn, dbi, &k, &v);
	if (rc != 0)
		return tld_store_err(rc, NULL, "rrset lookup");
	return tld_rrset_decode(type, v.mv_data, v.mv_size, out);
}

int tld_rrset_get(tld_reader *r, const tld_zone *z, const uint8_t *owner, uint16_t type,
                  tld_rrset *out)
{
	return rrset_get_txn(r->txn, r->st->rrsets, z, owner, type, out);
}

int tld_name_exists(tld_reader *r, const tld_zone *z, const uint8_t *name)
{
	uint8_t key[RR_KEY_MAX];
	MDB_cursor *cur = NULL;
	int klen = reader_name_key(r, TLD_CUR_RR, z, name, key, &cur);
	if (klen < 0)
		return klen;
	MDB_val k = {(size_t)klen, key}, v;
	int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return tld_store_err(rc, NULL, "name lookup");
	if (k.mv_size <= (size_t)klen || memcmp(k.mv_data, key, (size_t)klen) != 0)
		return 0;
	return ((const uint8_t *)k.mv_data)[klen] == 0 ? 1 : 2;
}

/* Length of the longest common label-aligned prefix of two rel keys. */
static size_t common_labels(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	size_t last = 0, n = alen < blen ? alen : blen;
	for (size_t i = 0; i < n && a[i] == b[i]; i++)
		if (a[i] == 0)
			last = i + 1;
	return last;
}

/*
 * The greatest key <= zid|rel in an index database whose keys are zid|rel.
 * Returns the found rel length (rel copied to found) or TLD_ENOENT when no key
 * of this zone is <= the probe.
 */
static int index_floor_val(MDB_cursor *cur, const uint8_t *key, size_t klen, uint8_t *found,
                           MDB_val *val)
{
	MDB_val k = {klen, (void *)key}, v;
	int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (rc == 0 && k.mv_size == klen && memcmp(k.mv_data, key, klen) == 0)
		goto hit;
	rc = mdb_cursor_get(cur, &k, &v, rc == MDB_NOTFOUND ? MDB_LAST : MDB_PREV);
	if (rc == MDB_NOTFOUND)
		return TLD_ENOENT;
	if (rc != 0)
		return tld_store_err(rc, NULL, "index lookup");
hit:
	if (k.mv_size < ZID_LEN || memcmp(k.mv_data, key, ZID_LEN) != 0)
		return TLD_ENOENT;
	memcpy(found, (uint8_t *)k.mv_data + ZID_LEN, k.mv_size - ZID_LEN);
	if (val != NULL)
		*val = v;
	return (int)(k.mv_size - ZID_LEN);
}

static int index_floor(MDB_cursor *cur, const uint8_t *key, size_t klen, uint8_t *found)
{
	return index_floor_val(cur, key, klen, found, NULL);
}

/* The last key of zone zid in an index (for wrap-around). */
static int index_last(MDB_cursor *cur, uint32_t zid, uint8_t *found)
{
	uint8_t next[ZID_LEN];
	tld_put_be32(next, zid + 1);
	MDB_val k = {ZID_LEN, next}, v;
	int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	rc = mdb_cursor_get(cur, &k, &v, rc == MDB_NOTFOUND ? MDB_LAST : MDB_PREV);
	if (rc == MDB_NOTFOUND)
		return TLD_ENOENT;
	if (rc != 0)
		return tld_store_err(rc, NULL, "index lookup");
	if (k.mv_size < ZID_LEN || tld_get_be32(k.mv_data) != zid)
		return TLD_ENOENT;
	memcpy(found, (uint8_t *)k.mv_data + ZID_LEN, k.mv_size - ZID_LEN);
	return (int)(k.mv_size - ZID_LEN);
}

/* The floor of key in an index, or the zone's last entry when the key sorts
 * before every entry of the zone (the NSEC chain wraps around). */
static int index_floor_wrap(MDB_cursor *cur, uint32_t zid, const uint8_t *key, size_t klen,
                            uint8_t *found)
{
	int flen = index_floor(cur, key, klen, found);
	return flen == TLD_ENOENT ? index_last(cur, zid, found) : flen;
}

/* The cuts entry covering the name whose zid|rel key is key[0..klen): writes
 * its rel key to found and its value to val; returns the rel length. */
static int cut_floor(MDB_cursor *cur, const uint8_t *key, size_t klen, uint8_t *found, MDB_val *val)
{
	size_t rlen = klen - ZID_LEN;
	/* The floor is the cut when it is an ancestor; otherwise any covering cut
	 * is an ancestor of the common part of the floor and name (names between
	 * a cut and its descendants are descendants, and cuts do not nest). */
	while (rlen > 0) {
		int flen = index_floor_val(cur, key, ZID_LEN + rlen, found, val);
		if (flen < 0)
			return flen;
		size_t common = common_labels(found, (size_t)flen, key + ZID_LEN, rlen);
		if (common == (size_t)flen && flen > 0)
			return flen;
		rlen = common;
	}
	return TLD_ENOENT;
}

int tld_referral_find(tld_reader *r, const tld_zone *z, const uint8_t *name, tld_referral *out)
{
	uint8_t key[RR_KEY_MAX], found[TLD_KEY_MAX + ZID_LEN];
	MDB_val v;
	MDB_cursor *cur = NULL;
	int klen = reader_name_key(r, TLD_CUR_CUT, z, name, key, &cur);
	if (klen < 0)
		return klen;
	int flen = cut_floor(cur, key, (size_t)klen, found, &v);
	if (flen < 0)
		return flen;
	out->blob = v.mv_data;
	out->len = v.mv_size;
	return rel_key_name(z, found, (size_t)flen, out->cut);
}

bool tld_referral_next(const tld_referral *ref, size_t *pos, const uint8_t **owner, tld_rrset *rs)
{
	const uint8_t *p = ref->blob + *pos, *end = ref->blob + ref->len;
	if (p >= end)
		return false;
	int nlen = tld_name_check(p, (size_t)(end - p));
	if (nlen < 0 || (size_t)(end - p) < (size_t)nlen + 6)
		return false;
	uint16_t type = tld_get_be16(p + nlen);
	uint32_t vlen = tld_get_be32(p + nlen + 2);
	const uint8_t *val = p + nlen + 6;
	if ((size_t)(end - val) < vlen || tld_rrset_decode(type, val, vlen, rs) < 0)
		return false;
	*owner = p;
	*pos = (size_t)(val + vlen - ref->blob);
	return true;
}

int tld_cut_find(tld_reader *r, const tld_zone *z, const uint8_t *name, uint8_t *cut)
{
	tld_referral ref;
	int n = tld_referral_find(r, z, name, &ref);
	if (n > 0)
		memcpy(cut, ref.cut, (size_t)n);
	return n;
}

int tld_nsec_find(tld_reader *r, const tld_zone *z, const uint8_t *name, uint8_t *owner)
{
	uint8_t key[RR_KEY_MAX], found[TLD_KEY_MAX + ZID_LEN];
	MDB_cursor *cur = NULL;
	int klen = reader_name_key(r, TLD_CUR_NSEC, z, name, key, &cur);
	if (klen < 0)
		return klen;
	int flen = index_floor_wrap(cur, z->id, key, (size_t)klen, found);
	if (flen < 0)
		return flen;
	return rel_key_name(z, found, (size_t)flen, owner);
}

int tld_nsec3_find(tld_reader *r, const tld_zone *z, const char *hash, size_t hlen, uint8_t *owner,
                   bool *exact)
{
	uint8_t key[ZID_LEN + TLD_LABEL_MAX], found[ZID_LEN + TLD_KEY_MAX];
	if (hlen == 0 || hlen > TLD_LABEL_MAX)
		return TLD_EINVAL;
	tld_put_be32(key, z->id);
	memcpy(key + ZID_LEN, hash, hlen);
	MDB_cursor *cur = NULL;
	int flen = reader_cursor(r, TLD_CUR_NSEC3, &cur);
	if (flen < 0)
		return flen;
	flen = index_floor_wrap(cur, z->id, key, ZID_LEN + hlen, found);
	if (flen < 0)
		return flen;
	if ((size_t)flen + 1 + z->apex_len > TLD_NAME_MAX)
		return TLD_EFOREIGN;
	*exact = ((size_t)flen == hlen && memcmp(found, hash, hlen) == 0);
	owner[0] = (uint8_t)flen;
	memcpy(owner + 1, found, (size_t)flen);
	memcpy(owner + 1 + flen, z->apex, z->apex_len);
	return 1 + flen + z->apex_len;
}

/* Walks rrsets keys from zid|prefix while they start with it. */
static int foreach_prefix(MDB_cursor *cur, const tld_zone *z, const uint8_t *prefix, size_t plen,
                          bool exact_owner,
                          int (*fn)(const uint8_t *owner, const tld_rrset *rs, void *ctx),
                          void *ctx)
{
	MDB_val k = {plen, (void *)prefix}, v;
	int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	uint8_t owner[TLD_NAME_MAX];
	while (rc == 0) {
		const uint8_t *kb = k.mv_data;
		if (k.mv_size < ZID_LEN + 3 || k.mv_size < plen + 2 ||
		    memcmp(kb, prefix, plen) != 0)
			break;
		size_t rlen = k.mv_size - ZID_LEN - 3;
		if (exact_owner && k.mv_size != plen + 2)
			break;
		tld_rrset rs;
		int err =
		    tld_rrset_decode(tld_get_be16(kb + k.mv_size - 2), v.mv_data, v.mv_size, &rs);
		if (err == 0 && rel_key_name(z, kb + ZID_LEN, rlen, owner) < 0)
			err = TLD_EFOREIGN;
		if (err < 0)
			return err;
		if ((err = fn(owner, &rs, ctx)) != 0)
			return err;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	return (rc == 0 || rc == MDB_NOTFOUND) ? TLD_OK : tld_store_err(rc, NULL, "rrset walk");
}

int tld_zone_foreach_rrset(tld_reader *r, const tld_zone *z,
                           int (*fn)(const uint8_t *owner, const tld_rrset *rs, void *ctx),
                           void *ctx)
{
	uint8_t prefix[ZID_LEN];
	tld_put_be32(prefix, z->id);
	MDB_cursor *cur = NULL;
	int rc = reader_cursor(r, TLD_CUR_RR, &cur);
	return rc < 0 ? rc : foreach_prefix(cur, z, prefix, ZID_LEN, false, fn, ctx);
}

int tld_name_foreach_rrset(tld_reader *r, const tld_zone *z, const uint8_t *owner,
                           int (*fn)(const uint8_t *owner, const tld_rrset *rs, void *ctx),
                           void *ctx)
{
	uint8_t key[RR_KEY_MAX];
	int klen = name_rel_key(z, owner, key);
	if (klen < 0)
		return klen;
	key[klen] = 0; /* the owner's own RRsets, not its descendants */
	MDB_cursor *cur = NULL;
	int rc = reader_cursor(r, TLD_CUR_RR, &cur);
	return rc < 0 ? rc : foreach_prefix(cur, z, key, (size_t)klen + 1, true, fn, ctx);
}

/* ---- writers ---- */

int tld_writer_begin(tld_store *st, tld_writer *w, tld_errbuf *eb)
{
	memset(w, 0, sizeof(*w));
	w->st = st;
	if (st->read_only)
		return tld_errf(eb, TLD_EINVAL, "store opened read-only");
	int rc = mdb_txn_begin(st->env, NULL, 0, &w->txn);
	if (rc == 0)
		rc = mdb_cursor_open(w->txn, st->rrsets, &w->cur_rr);
	if (rc == 0)
		rc = mdb_cursor_open(w->txn, st->cuts, &w->cur_cut);
	if (rc != 0) {
		if (w->txn != NULL)
			mdb_txn_abort(w->txn);
		w->txn = NULL;
		return tld_store_err(rc, eb, "begin write transaction");
	}
	return TLD_OK;
}

static void writer_release(tld_writer *w)
{
	free(w->buf);
	w->buf = NULL;
	w->buf_cap = 0;
}

bool tld_store_fs_full(tld_store *st)
{
	const char *dir = NULL;
	struct statvfs sv;
	return mdb_env_get_path(st->env, &dir) == 0 && dir != NULL && statvfs(dir, &sv) == 0 &&
	       (uint64_t)sv.f_bavail * sv.f_frsize < TLD_STORE_FS_FULL_BYTES;
}

int tld_store_space_error(tld_store *st, int err, tld_errbuf *eb)
{
	if (err != TLD_ESTORE || !tld_store_fs_full(st))
		return err;
	char was[sizeof(eb->msg)];
	snprintf(was, sizeof(was), "%s", eb->msg);
	return tld_errf(eb, TLD_EMAPFULL, "no space left on device (%s); nothing was written", was);
}

int tld_writer_commit(tld_writer *w, tld_errbuf *eb)
{
	int rc = mdb_txn_commit(w->txn);
	w->txn = NULL;
	writer_release(w);
	if (rc == 0)
		return TLD_OK;
	return tld_store_space_error(w->st, tld_store_err(rc, eb, "commit"), eb);
}

void tld_writer_abort(tld_writer *w)
{
	if (w->txn != NULL)
		mdb_txn_abort(w->txn);
	w->txn = NULL;
	writer_release(w);
}

static int bump_generation(tld_writer *w, tld_errbuf *eb)
{
	MDB_val v;
	uint64_t gen = 0;
	int rc = meta_get(w->st, w->txn, "generation", &v);
	if (rc == 0 && v.mv_size == sizeof(gen))
		memcpy(&gen, v.mv_data, sizeof(gen));
	gen++;
	rc = meta_put(w->st, w->txn, "generation", &gen, sizeof(gen));
	return rc == 0 ? TLD_OK : tld_store_err(rc, eb, "generation");
}

int tld_zone_new(tld_writer *w, const uint8_t *apex, tld_zone *z, tld_errbuf *eb)
{
	MDB_val v;
	uint32_t zid = 1;
	int rc = meta_get(w->st, w->txn, "next_zid", &v);
	if (rc == 0 && v.mv_size == sizeof(zid))
		memcpy(&zid, v.mv_data, sizeof(zid));
	else if (rc != MDB_NOTFOUND)
		return tld_store_err(rc, eb, "next zone id");
	if (zid == UINT32_MAX)
		return tld_errf(eb, TLD_ESTORE, "zone ids exhausted");
	uint32_t next = zid + 1;
	if ((rc = meta_put(w->st, w->txn, "next_zid", &next, sizeof(next))) != 0)
		return tld_store_err(rc, eb, "next zone id");
	memset(z, 0, sizeof(*z));
	z->id = zid;
	z->apex_len = (uint8_t)tld_name_len(apex);
	memcpy(z->apex, apex, z->apex_len);
	tld_name_lower(z->apex);
	z->apex_labels = (uint8_t)tld_name_labels(apex);
	z->apex_keylen = (uint8_t)tld_name_key(apex, z->apex_key);
	z->updated = (uint64_t)time(NULL);
	return TLD_OK;
}

/* Deletes every key of zone zid from one database. */
static int drop_zid_range(MDB_txn *txn, MDB_dbi dbi, uint32_t zid)
{
	MDB_cursor *cur = NULL;
	int rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc != 0)
		return rc;
	uint8_t prefix[ZID_LEN];
	tld_put_be32(prefix, zid);
	MDB_val k = {ZID_LEN, prefix}, v;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size >= ZID_LEN && memcmp(k.mv_data, prefix, ZID_LEN) == 0) {
		if ((rc = mdb_cursor_del(cur, 0)) != 0)
			break;
		/* MDB_GET_CURRENT fails once the database is empty: seek again. */
		k = (MDB_val){ZID_LEN, prefix};
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int drop_zone_data(tld_writer *w, uint32_t zid, tld_errbuf *eb)
{
	tld_store *st = w->st;
	MDB_dbi dbis[] = {st->rrsets, st->cuts, st->nsec, st->nsec3, st->journal};
	for (size_t i = 0; i < sizeof(dbis) / sizeof(dbis[0]); i++) {
		int rc = drop_zid_range(w->txn, dbis[i], zid);
		if (rc != 0)
			return tld_store_err(rc, eb, "delete old zone data");
	}
	return TLD_OK;
}

static int zone_put(tld_writer *w, const tld_zone *z, tld_errbuf *eb)
{
	struct zone_rec rec;
	uint8_t key[1 + TLD_KEY_MAX];
	memset(&rec, 0, sizeof(rec));
	rec.magic = ZONE_REC_MAGIC;
	rec.size = sizeof(rec);
	rec.zone = *z;
	MDB_val k = {zone_key(z->apex, key), key}, v = {sizeof(rec), &rec};
	int rc = mdb_put(w->txn, w->st->zones, &k, &v, 0);
	return rc == 0 ? TLD_OK : tld_store_err(rc, eb, "zone record");
}

int tld_zone_publish(tld_writer *w, const tld_zone *z, tld_errbuf *eb)
{
	MDB_val v;
	tld_zone old;
	uint8_t key[1 + TLD_KEY_MAX];
	MDB_val k = {zone_key(z->apex, key), key};
	int rc = mdb_get(w->txn, w->st->zones, &k, &v);
	if (rc == 0 && zone_from_val(&v, &old) == 0 && old.id != z->id) {
		int err = drop_zone_data(w, old.id, eb);
		if (err < 0)
			return err;
	} else if (rc != 0 && rc != MDB_NOTFOUND) {
		return tld_store_err(rc, eb, "zone record");
	}
	int err = zone_put(w, z, eb);
	return err < 0 ? err : bump_generation(w, eb);
}

/* Do two records of one zone differ in what answering depends on (not the
 * serial, journal bounds or time)? */
static bool zone_shape_differs(const tld_zone *a, const tld_zone *b)
{
	return a->id != b->id || a->flags != b->flags || a->nsec3_alg != b->nsec3_alg ||
	       a->nsec3_flags != b->nsec3_flags || a->nsec3_iter != b->nsec3_iter ||
	       a->nsec3_saltlen != b->nsec3_saltlen ||
	       memcmp(a->nsec3_salt, b->nsec3_salt, a->nsec3_saltlen) != 0;
}

int tld_zone_update(tld_writer *w, const tld_zone *z, tld_errbuf *eb)
{
	uint8_t key[1 + TLD_KEY_MAX];
	tld_zone old;
	int found = zone_lookup_key(w->txn, w->st->zones, key, zone_key(z->apex, key), &old);
	if (found < 0 && found != TLD_ENOENT)
		return tld_errf(eb, found, "zone record: %s", tld_strerror(found));
	int err = zone_put(w, z, eb);
	if (err < 0)
		return err;
	/* Readers cache zone records by generation: tell them when it matters. */
	return (found == TLD_ENOENT || zone_shape_differs(&old, z)) ? bump_generation(w, eb)
	                                                            : TLD_OK;
}

int tld_reader_generation(tld_reader *r, uint64_t *gen)
{
	MDB_val v;
	int rc = meta_get(r->st, r->txn, "generation", &v);
	if (rc != 0 || v.mv_size != sizeof(*gen))
		return rc != 0 ? tld_store_err(rc, NULL, "generation") : TLD_EFOREIGN;
	memcpy(gen, v.mv_data, sizeof(*gen));
	return TLD_OK;
}

int tld_zone_remove(tld_writer *w, const uint8_t *apex, tld_errbuf *eb)
{
	uint8_t key[1 + TLD_KEY_MAX];
	MDB_val k = {zone_key(apex, key), key}, v;
	tld_zone old;
	int rc = mdb_get(w->txn, w->st->zones, &k, &v);
	if (rc != 0)
		return tld_store_err(rc, eb, "zone record");
	if (zone_from_val(&v, &old) < 0)
		return tld_errf(eb, TLD_EFOREIGN, "corrupt zone record");
	int err = drop_zone_data(w, old.id, eb);
	if (err < 0)
		return err;
	if ((rc = mdb_del(w->txn, w->st->zones, &k, NULL)) != 0)
		return tld_store_err(rc, eb, "zone record");
	return bump_generation(w, eb);
}

/* Index entry (zid|rel) for an RRset type that has one; returns its database
 * or 0 when the type is not indexed at this owner. */
static MDB_dbi index_for(tld_store *st, const tld_zone *z, const uint8_t *key, int klen,
                         uint16_t type, uint8_t *ikey, size_t *ilen)
{
	if (type == 47 /* NSEC */) {
		memcpy(ikey, key, (size_t)klen);
		*ilen = (size_t)klen;
		return st->nsec;
	}
	if (type == 50 /* NSEC3 */ && klen > ZID_LEN) {
		/* rel = hashlabel 0x00 (directly below the apex) */
		const uint8_t *rel = key + ZID_LEN;
		size_t rlen = (size_t)klen - ZID_LEN;
		if (memchr(rel, 0, rlen) != rel + rlen - 1)
			return 0;
		tld_put_be32(ikey, z->id);
		/* undo the key byte shift: base32hex digits are all > 0x2f */
		for (size_t i = 0; i + 1 < rlen; i++)
			ikey[ZID_LEN + i] = rel[i] <= 0x41 ? (uint8_t)(rel[i] - 1) : rel[i];
		*ilen = ZID_LEN + rlen - 1;
		return st->nsec3;
	}
	return 0;
}

static int put_maybe_append(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v, bool append)
{
	if (append) {
		int rc = mdb_put(txn, dbi, k, v, MDB_APPEND);
		if (rc != MDB_KEYEXIST)
			return rc;
	}
	return mdb_put(txn, dbi, k, v, 0);
}

bool tld_referral_type(uint16_t type, bool at_cut)
{
	/* Addresses are glue below the cut, and at the cut itself when the
	 * delegation names itself as a server (d NS d): RFC 9471 in-domain. */
	if (type == 1 /* A */ || type == 28 /* AAAA */)
		return true;
	return at_cut && (type == 2 /* NS */ || type == 43 /* DS */ || type == 47 /* NSEC */);
}

/* Builds the blob of the cut whose zid|rel key is ckey[0..clen) into w->buf;
 * returns its length (0: the name has no NS, so it is no cut). */
int tld_referral_add(uint8_t **buf, size_t *len, size_t *cap, const uint8_t *owner, uint16_t type,
                     const uint8_t *val, size_t vlen)
{
	size_t nlen = tld_name_len(owner), need = *len + nlen + 6 + vlen;
	if (need > *cap) {
		size_t c = *cap ? *cap : 4096;
		while (c < need)
			c *= 2;
		uint8_t *p = realloc(*buf, c);
		if (p == NULL)
			return TLD_ENOMEM;
		*buf = p;
		*cap = c;
	}
	uint8_t *p = *buf + *len;
	memcpy(p, owner, nlen);
	tld_put_be16(p + nlen, type);
	tld_put_be32(p + nlen + 2, (uint32_t)vlen);
	memcpy(p + nlen + 6, val, vlen);
	*len = need;
	return TLD_OK;
}

/* Builds the blob of the cut whose zid|rel key is ckey[0..clen) into w->buf;
 * returns its length (0: the name has no NS, so it is no cut). */
static int referral_build(tld_writer *w, const tld_zone *z, const uint8_t *ckey, size_t clen)
{
	MDB_val k = {clen, (void *)ckey}, v;
	size_t len = 0;
	bool has_ns = false;
	int rc = mdb_cursor_get(w->cur_rr, &k, &v, MDB_SET_RANGE);
	for (; rc == 0; rc = mdb_cursor_get(w->cur_rr, &k, &v, MDB_NEXT)) {
		const uint8_t *kb = k.mv_data;
		if (k.mv_size < clen + 3 || memcmp(kb, ckey, clen) != 0)
			break;
		size_t rlen = k.mv_size - ZID_LEN - 3;
		uint16_t type = tld_get_be16(kb + k.mv_size - 2);
		bool at_cut = (k.mv_size == clen + 3);
		if (!tld_referral_type(type, at_cut))
			continue;
		has_ns |= at_cut && type == 2;
		uint8_t owner[TLD_NAME_MAX];
		if (rel_key_name(z, kb + ZID_LEN, rlen, owner) < 0)
			return TLD_EFOREIGN;
		int err =
		    tld_referral_add(&w->buf, &len, &w->buf_cap, owner, type, v.mv_data, v.mv_size);
		if (err < 0)
			return err;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		return tld_store_err(rc, NULL, "referral rebuild");
	return has_ns ? (int)len : 0;
}

static int cut_rebuild_key(tld_writer *w, const tld_zone *z, const uint8_t *ckey, size_t clen,
                           bool append, tld_errbuf *eb)
{
	int len = referral_build(w, z, ckey, clen);
	if (len < 0)
		return tld_errf(eb, len, "referral rebuild: %s", tld_strerror(len));
	MDB_val k = {clen, (void *)ckey}, v = {(size_t)len, w->buf};
	int rc;
	if (len == 0) {
		rc = mdb_del(w->txn, w->st->cuts, &k, NULL);
		rc = rc == MDB_NOTFOUND ? 0 : rc;
	} else {
		rc = put_maybe_append(w->txn, w->st->cuts, &k, &v, append);
	}
	return rc == 0 ? TLD_OK : tld_store_err(rc, eb, "write referral");
}

int tld_cut_put(tld_writer *w, const tld_zone *z, const uint8_t *cut, const uint8_t *blob,
                size_t len, bool append, tld_errbuf *eb)
{
	uint8_t key[RR_KEY_MAX];
	int klen = name_rel_key(z, cut, key);
	if (klen <= ZID_LEN)
		return tld_errf(eb, TLD_EINVAL, "cut is outside the zone or at its apex");
	MDB_val k = {(size_t)klen, key}, v = {len, (void *)blob};
	int rc = put_maybe_append(w->txn, w->st->cuts, &k, &v, append);
	return rc == 0 ? TLD_OK : tld_store_err(rc, eb, "write referral");
}

int tld_cut_rebuild(tld_writer *w, const tld_zone *z, const uint8_t *cut, bool append,
                    tld_errbuf *eb)
{
	uint8_t key[RR_KEY_MAX];
	int klen = name_rel_key(z, cut, key);
	if (klen < 0)
		return tld_errf(eb, klen, "cut is outside the zone");
	if (klen == ZID_LEN)
		return TLD_OK; /* the apex is no cut */
	return cut_rebuild_key(w, z, key, (size_t)klen, append, eb);
}

/* After a change at the owner whose zid|rel key is key[0..klen): refresh the
 * referral data it is part of. */
static int cut_maintain(tld_writer *w, const tld_zone *z, const uint8_t *key, size_t klen,
                        uint16_t type, tld_errbuf *eb)
{
	if (klen == ZID_LEN)
		return TLD_OK; /* apex data is in no referral */
	if (type == 2)         /* NS: this name becomes (or stops being) a cut */
		return cut_rebuild_key(w, z, key, klen, false, eb);
	if (!tld_referral_type(type, true) && !tld_referral_type(type, false))
		return TLD_OK;
	uint8_t found[TLD_KEY_MAX + ZID_LEN], ckey[RR_KEY_MAX];
	MDB_val v;
	int flen = cut_floor(w->cur_cut, key, klen, found, &v);
	if (flen == TLD_ENOENT)
		return TLD_OK;
	if (flen < 0)
		return tld_errf(eb, flen, "referral lookup: %s", tld_strerror(flen));
	memcpy(ckey, key, ZID_LEN);
	memcpy(ckey + ZID_LEN, found, (size_t)flen);
	return cut_rebuild_key(w, z, ckey, ZID_LEN + (size_t)flen, false, eb);
}

int tld_rrset_put(tld_writer *w, const tld_zone *z, const uint8_t *owner, uint16_t type,
                  const uint8_t *val, size_t len, bool append, tld_errbuf *eb)
{
	uint8_t key[RR_KEY_MAX], ikey[RR_KEY_MAX];
	int klen = rr_key(z, owner, type, key);
	if (klen < 0)
		return tld_errf(eb, klen, "owner is outside the zone");
	MDB_val k = {(size_t)klen, key}, v = {len, (void *)val};
	int rc = put_maybe_append(w->txn, w->st->rrsets, &k, &v, append);
	if (rc != 0)
		return tld_store_err(rc, eb, "write rrset");
	size_t ilen;
	MDB_dbi idx = index_for(w->st, z, key, klen - 3, type, ikey, &ilen);
	if (idx != 0) {
		MDB_val ik = {ilen, ikey}, iv = {0, (void *)""};
		if ((rc = put_maybe_append(w->txn, idx, &ik, &iv, append)) != 0)
			return tld_store_err(rc, eb, "write index");
	}
	return append ? TLD_OK : cut_maintain(w, z, key, (size_t)klen - 3, type, eb);
}

int tld_rrset_del(tld_writer *w, const tld_zone *z, const uint8_t *owner, uint16_t type,
                  tld_errbuf *eb)
{
	uint8_t key[RR_KEY_MAX], ikey[RR_KEY_MAX];
	int klen = rr_key(z, owner, type, key);
	if (klen < 0)
		return tld_errf(eb, klen, "owner is outside the zone");
	MDB_val k = {(size_t)klen, key};
	int rc = mdb_del(w->txn, w->st->rrsets, &k, NULL);
	if (rc != 0)
		return tld_store_err(rc, eb, "delete rrset");
	size_t ilen;
	MDB_dbi idx = index_for(w->st, z, key, klen - 3, type, ikey, &ilen);
	if (idx != 0) {
		MDB_val ik = {ilen, ikey};
		rc = mdb_del(w->txn, idx, &ik, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return tld_store_err(rc, eb, "delete index");
	}
	return cut_maintain(w, z, key, (size_t)klen - 3, type, eb);
}

int tld_writer_rrset_get(tld_writer *w, const tld_zone *z, const uint8_t *owner, uint16_t type,
                         tld_rrset *out)
{
	return rrset_get_txn(w->txn, w->st->rrsets, z, owner, type, out);
}

int tld_writer_foreach_rrset(tld_writer *w, const tld_zone *z, const uint8_t *owner, bool subtree,
                             int (*fn)(const uint8_t *owner, const tld_rrset *rs, void *ctx),
                             void *ctx)
{
	uint8_t key[RR_KEY_MAX];
	int klen = name_rel_key(z, owner, key);
	if (klen < 0)
		return klen;
	if (subtree) /* zid|rel prefixes the owner's own keys and its descendants' */
		return foreach_prefix(w->cur_rr, z, key, (size_t)klen, false, fn, ctx);
	key[klen] = 0;
	return foreach_prefix(w->cur_rr, z, key, (size_t)klen + 1, true, fn, ctx);
}

/* ---- journal ---- */

static void journal_key(uint8_t *key, uint32_t zid, uint64_t seq)
{
	tld_put_be32(key, zid);
	tld_put_be64(key + ZID_LEN, seq);
}

int tld_journal_put(tld_writer *w, const tld_zone *z, uint64_t seq, const void *data, size_t len,
                    tld_errbuf *eb)
{
	uint8_t key[ZID_LEN + 8];
	journal_key(key, z->id, seq);
	MDB_val k = {sizeof(key), key}, v = {len, (void *)data};
	int rc = mdb_put(w->txn, w->st->journal, &k, &v, 0);
	return rc == 0 ? TLD_OK : tld_store_err(rc, eb, "journal write");
}

int tld_journal_trim(tld_writer *w, const tld_zone *z, uint64_t keep_from, tld_errbuf *eb)
{
	MDB_cursor *cur = NULL;
	int rc = mdb_cursor_open(w->txn, w->st->journal, &cur);
	if (rc != 0)
		return tld_store_err(rc, eb, "journal trim");
	uint8_t key[ZID_LEN + 8], stop[ZID_LEN + 8];
	journal_key(key, z->id, 0);
	journal_key(stop, z->id, keep_from);
	MDB_val k = {sizeof(key), key}, v;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size == sizeof(stop) && memcmp(k.mv_data, stop, sizeof(stop)) < 0) {
		if ((rc = mdb_cursor_del(cur, 0)) != 0)
			break;
		k = (MDB_val){sizeof(key), key};
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	}
	mdb_cursor_close(cur);
	return (rc == 0 || rc == MDB_NOTFOUND) ? TLD_OK : tld_store_err(rc, eb, "journal trim");
}

int tld_journal_get(tld_reader *r, const tld_zone *z, uint64_t seq, const void **data, size_t *len)
{
	uint8_t key[ZID_LEN + 8];
	journal_key(key, z->id, seq);
	MDB_val k = {sizeof(key), key}, v;
	int rc = mdb_get(r->txn, r->st->journal, &k, &v);
	if (rc != 0)
		return tld_store_err(rc, NULL, "journal read");
	*data = v.mv_data;
	*len = v.mv_size;
	return TLD_OK;
}
