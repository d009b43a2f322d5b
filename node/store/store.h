/* store.h - the zone store: many zones in one memory-mapped LMDB environment. */
#ifndef TLD_STORE_H
#define TLD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "../common/err.h"
#include "../dns/name.h"

/*
 * LAYOUT
 *
 * One LMDB environment (a directory holding data.mdb and lock.mdb) holds every
 * zone a node serves, in these named databases. "zid" is a zone's 32-bit id,
 * big-endian, so that each zone's entries are one contiguous key range; "rel"
 * is the store key (see name.h) of an owner name with the apex's key removed,
 * so a zone's names sort in DNSSEC canonical order after its apex.
 *
 *   meta     "magic" -> "tldnode-store", "version" -> u32, "next_zid" -> u32,
 *            "generation" -> u64 (bumped by every write transaction that changes
 *            which zones exist)
 *   zones    key(apex) -> struct tld_zone_rec (see store.c): id, serial, flags,
 *            NSEC3 parameters, journal bounds
 *   rrsets   zid | rel | 0x00 | type(BE16) -> RRset value (below). Every type of
 *            a name sorts before the name's descendants (0x00 < any label byte),
 *            so "does this name or anything below it exist" is one cursor probe.
 *   cuts     zid | rel -> referral blob, for every delegation point (NS below
 *            the apex): what a referral needs in one probe (see tld_referral)
 *   nsec     zid | rel -> "" for every owner of an NSEC RRset
 *   nsec3    zid | hashlabel -> "" for every NSEC3 owner (first label, lower-case
 *            base32hex, whose order is the hash order)
 *   journal  zid | seq(BE64) -> opaque replication delta (issue 5 defines it);
 *            written in the same transaction as the data it describes
 *
 * RRset value, every integer big-endian so it can be copied to the wire:
 *   ttl u32 | rr_count u16 | sig_count u16 |
 *   rr_count x (rdlen u16 | rdata) | sig_count x (ttl u32 | rdlen u16 | rdata)
 * RDATA is kept exactly as it is on the wire, uncompressed. The RRSIGs covering
 * a type live in the value of that type's RRset (sigs section), so an answer
 * with DO=1 is one probe; an RRset may have rr_count 0 when the zone held only
 * signatures for a type (answering treats it as absent).
 *
 * CONCURRENCY
 *
 * Any number of processes and threads may read while one writes (LMDB's MVCC);
 * readers see the snapshot their transaction began with. The environment is
 * opened with MDB_NOTLS, so a tld_reader (one read transaction, reset and
 * renewed) belongs to whichever thread is using it, one thread at a time.
 * All views returned by read functions point into the map and are valid only
 * until that reader's tld_reader_end().
 */

#define TLD_STORE_VERSION     1
#define TLD_STORE_DEFAULT_MAP ((size_t)64 << 30) /* 64 GiB of address space */
#define TLD_STORE_MAX_READERS 512

/* Zone flags (tld_zone.flags). */
#define TLD_ZONE_NSEC         0x01u /* the apex has NSEC: signed with NSEC */
#define TLD_ZONE_NSEC3        0x02u /* the apex has NSEC3PARAM: signed with NSEC3 */
#define TLD_ZONE_NSEC3_OPTOUT 0x04u /* some NSEC3 record has the opt-out flag */
#define TLD_ZONE_SIGNED       0x08u /* the apex has DNSKEY and RRSIGs */
/* Some owner starts with a '*' label; without it, NXDOMAIN needs no wildcard probe. */
#define TLD_ZONE_WILDCARD 0x10u
/* Some owner has a DNAME; without it, a name that does not exist needs no
 * DNAME probe. Stores imported before this flag existed lack it: re-import
 * a zone with DNAMEs to have them applied (RFC 6672). */
#define TLD_ZONE_DNAME 0x20u

typedef struct tld_store tld_store;

typedef struct tld_store_opts {
	size_t map_size; /* bytes of address space; 0 = TLD_STORE_DEFAULT_MAP */
	bool read_only;  /* open MDB_RDONLY (tldctl lookup/dump, tldnode replicas reading) */
	bool create;     /* create the directory and an empty store if absent */
} tld_store_opts;

/* One zone as the store describes it. Plain data: copying is fine. */
typedef struct tld_zone {
	uint32_t id;
	uint32_t serial; /* SOA serial of the data as stored */
	uint32_t flags;  /* TLD_ZONE_* */
	uint8_t apex[TLD_NAME_MAX];
	uint8_t apex_len;    /* wire length of apex */
	uint8_t apex_labels; /* labels of apex */
	uint8_t apex_keylen; /* length of key(apex): strip it to get a rel key */
	uint8_t apex_key[TLD_KEY_MAX];
	uint8_t nsec3_alg; /* NSEC3PARAM, when TLD_ZONE_NSEC3 */
	uint8_t nsec3_flags;
	uint16_t nsec3_iter;
	uint8_t nsec3_saltlen;
	uint8_t nsec3_salt[255];
	uint64_t journal_first; /* oldest journal sequence kept (0: none) */
	uint64_t journal_last;  /* newest journal sequence (0: none) */
	uint64_t updated;       /* unix time of the last change */
} tld_zone;

/* A read-only view of one RRset in the map; see "RRset value" above. */
typedef struct tld_rrset {
	uint16_t type;
	uint32_t ttl;
	uint16_t rr_count;
	uint16_t sig_count;
	const uint8_t *rrs;  /* rr_count x (rdlen u16 | rdata) */
	const uint8_t *sigs; /* sig_count x (ttl u32 | rdlen u16 | rdata) */
	const uint8_t *end;  /* end of the value */
} tld_rrset;

/* Walks the records of a view: p starts at rrset->rrs (or ->sigs); each call
 * yields one record and advances p. For sigs pass ttl (else NULL). Returns
 * false when the records end. The value was validated when it was parsed, so
 * this does no bounds checks beyond end. */
bool tld_rr_next(const uint8_t **p, const uint8_t *end, uint32_t *ttl, const uint8_t **rdata,
                 uint16_t *rdlen);

/* ---- Environment ---- */

/* Opens (and with opts->create, creates) the store in directory dir. Checks
 * the magic and version (TLD_EFOREIGN / TLD_EVERSION with a message), and
 * clears stale reader slots left by dead processes (mdb_reader_check).
 * Errors: TLD_ENOENT (no store and !create), TLD_EFOREIGN, TLD_EVERSION,
 * TLD_ESTORE, TLD_ENOMEM. eb may be NULL. */
int tld_store_open(tld_store **out, const char *dir, const tld_store_opts *opts, tld_errbuf *eb);

/* Closes the environment. Every reader must be closed first. */
void tld_store_close(tld_store *st);

/* The underlying environment, for code (replication) that needs raw access. */
MDB_env *tld_store_env(tld_store *st);

/* Whether the file system holding st's files has (almost) no room left:
 * less than TLD_STORE_FS_FULL_BYTES for an unprivileged writer. */
#define TLD_STORE_FS_FULL_BYTES (1u << 20)
bool tld_store_fs_full(tld_store *st);

/* Names a write failure for what it was when the disk filled up. LMDB
 * reports a short write as EIO ("short write, filesystem full?"), which
 * becomes TLD_ESTORE: when err is TLD_ESTORE and st's file system is full,
 * returns TLD_EMAPFULL with eb saying "no space left on device" (and what
 * it said before); any other err is returned unchanged. tld_writer_commit()
 * does this itself; call it for a write that fails before the commit (a
 * large transaction writes pages out early). */
int tld_store_space_error(tld_store *st, int err, tld_errbuf *eb);

/* Bytes of the data file in use (last page used x page size), and the map size. */
int tld_store_usage(tld_store *st, uint64_t *used, uint64_t *map_size);

/* Maps an LMDB return code to a TLD_E* code, describing it in eb. */
int tld_store_err(int mdb_rc, tld_errbuf *eb, const char *what);

/* ---- Readers: one read transaction, reset and renewed, never reopened ---- */

enum tld_reader_cursor {
	TLD_CUR_RR,
	TLD_CUR_CUT,
	TLD_CUR_NSEC,
	TLD_CUR_NSEC3,
	TLD_CUR_ZONE,
	TLD_CUR_COUNT
};

typedef struct tld_reader {
	tld_store *st;
	MDB_txn *txn;
	MDB_cursor *cur[TLD_CUR_COUNT];
	/* Bit i set: cur[i] is bound to the current snapshot. Cursors are renewed
	 * on first use, not in tld_reader_begin: renewing one makes LMDB look the
	 * database up in the main DB, which a batch of referrals never needs for
	 * four of the five. */
	unsigned bound;
	bool active;
} tld_reader;

/* Allocates the reader's transaction and cursors (not yet active). */
int tld_reader_open(tld_store *st, tld_reader *r);
/* Starts a snapshot (mdb_txn_renew). TLD_EBUSY when reader slots are exhausted. */
int tld_reader_begin(tld_reader *r);
/* Ends the snapshot (mdb_txn_reset); every view obtained from it is invalid. */
void tld_reader_end(tld_reader *r);
/* Frees the transaction and cursors. */
void tld_reader_close(tld_reader *r);
/* The reader's cursor on the rrsets database, bound to the current snapshot
 * (renewed here on first use). NULL if renewing fails (an LMDB error). Only
 * valid between tld_reader_begin and tld_reader_end. */
MDB_cursor *tld_reader_rrsets_cursor(tld_reader *r);

/* ---- Reads (reader active) ---- */

/* The store's generation: it changes whenever a zone is added, removed,
 * replaced, or changes flags or NSEC3 parameters, so a reader may cache zone
 * records until it changes. */
int tld_reader_generation(tld_reader *r, uint64_t *gen);

/* The zone whose apex is exactly apex. TLD_ENOENT if none. */
int tld_zone_get(tld_reader *r, const uint8_t *apex, tld_zone *out);

/* The closest enclosing zone of name (longest apex that name is at or below).
 * TLD_ENOENT if no served zone contains name. */
int tld_zone_find(tld_reader *r, const uint8_t *name, tld_zone *out);

/* As tld_zone_find(), but for qtype DS at a zone's apex returns the parent
 * zone when the store serves it: DS lives on the parent side of a cut
 * (RFC 4035 3.1.4.1). */
int tld_zone_find_qtype(tld_reader *r, const uint8_t *name, uint16_t qtype, tld_zone *out);

/* Calls fn for every zone in canonical order of apex; stops early and returns
 * fn's value if fn returns non-zero. */
int tld_zone_foreach(tld_reader *r, int (*fn)(const tld_zone *z, void *ctx), void *ctx);

/* The RRset (zone, owner, type). owner must be at or below z->apex. Returns 0
 * and fills out, or TLD_ENOENT. */
int tld_rrset_get(tld_reader *r, const tld_zone *z, const uint8_t *owner, uint16_t type,
                  tld_rrset *out);

/* What exists at name: 0 nothing (NXDOMAIN), 1 the name owns RRsets,
 * 2 an empty non-terminal (no RRsets, but names below it). */
int tld_name_exists(tld_reader *r, const tld_zone *z, const uint8_t *name);

/* The delegation point (an owner of NS strictly below the apex) at or above
 * name, written to cut (TLD_NAME_MAX bytes); returns its wire length, or
 * TLD_ENOENT when name is authoritative data of z. One cursor probe. */
int tld_cut_find(tld_reader *r, const tld_zone *z, const uint8_t *name, uint8_t *cut);

/*
 * Referral data of a delegation point, kept with its cuts entry: the RRsets
 * of the cut (NS; DS and NSEC when present; A and AAAA when the cut names
 * itself as a server), then the A and AAAA RRsets of names below the cut
 * (in-domain glue), in canonical order (so an A of the cut comes before its
 * NS: look entries up by owner and type), each entry being
 *   owner (wire, lower case) | type u16 | value length u32 | RRset value.
 * The store rebuilds it whenever an RRset at or below the cut changes, so a
 * referral is one cursor probe. Views are valid until tld_reader_end().
 */
typedef struct tld_referral {
	uint8_t cut[TLD_NAME_MAX];
	const uint8_t *blob;
	size_t len;
} tld_referral;

/* The delegation covering name (cut at or above name, below the apex) with
 * its referral data. Returns the cut's wire length or TLD_ENOENT. */
int tld_referral_find(tld_reader *r, const tld_zone *z, const uint8_t *name, tld_referral *out);

/* Walks the entries of a referral: *pos starts at 0. Returns false at the
 * end (or on a malformed blob). */
bool tld_referral_next(const tld_referral *ref, size_t *pos, const uint8_t **owner, tld_rrset *rs);

/* The NSEC owner that is name or its closest predecessor in canonical order
 * (wrapping to the last NSEC owner when name sorts before every one of them).
 * Writes it to owner; returns its wire length, or TLD_ENOENT when the zone
 * has no NSEC records. */
int tld_nsec_find(tld_reader *r, const tld_zone *z, const uint8_t *name, uint8_t *owner);

/* The NSEC3 owner whose hash equals hash (base32hex, lower case, hlen chars)
 * or covers it (closest predecessor, wrapping). Writes the owner name to
 * owner; returns its wire length and sets *exact, or TLD_ENOENT. */
int tld_nsec3_find(tld_reader *r, const tld_zone *z, const char *hash, size_t hlen, uint8_t *owner,
                   bool *exact);

/* Calls fn for each RRset of the zone in canonical order (owner, then type).
 * owner is a wire name valid during the call. Stops early on non-zero. */
int tld_zone_foreach_rrset(tld_reader *r, const tld_zone *z,
                           int (*fn)(const uint8_t *owner, const tld_rrset *rs, void *ctx),
                           void *ctx);

/* Same, restricted to the RRsets owned by exactly owner. */
int tld_name_foreach_rrset(tld_reader *r, const tld_zone *z, const uint8_t *owner,
                           int (*fn)(const uint8_t *owner, const tld_rrset *rs, void *ctx),
                           void *ctx);

/* ---- Writes: one write transaction at a time (LMDB serialises writers) ---- */

typedef struct tld_writer {
	tld_store *st;
	MDB_txn *txn;
	MDB_cursor *cur_rr, *cur_cut;
	uint8_t *buf; /* scratch for referral blobs, freed at commit/abort */
	size_t buf_cap;
} tld_writer;

/* Begins a write transaction. */
int tld_writer_begin(tld_store *st, tld_writer *w, tld_errbuf *eb);
/* Commits; on failure (TLD_EMAPFULL, TLD_ESTORE) nothing was written. */
int tld_writer_commit(tld_writer *w, tld_errbuf *eb);

/*
 * Small records of the replication layer in the meta database (keys must not
 * clash with the store's own: begin them with "repl."). Written inside a write
 * transaction, they commit or vanish with the data it changes.
 */

/* The record at key in the reader's current snapshot (between
 * tld_reader_begin and _end): 0 with *val, *vlen set (valid until
 * tld_reader_end), TLD_ENOENT, or TLD_ESTORE. */
int tld_reader_record_get(tld_reader *r, const void *key, size_t klen, const void **val,
                          size_t *vlen);

/* Writes (replaces) the record at key. Returns 0, TLD_EMAPFULL or TLD_ESTORE. */
int tld_writer_record_put(tld_writer *w, const void *key, size_t klen, const void *val, size_t vlen,
                          tld_errbuf *eb);

/* Deletes each record whose key starts with prefix and for which drop(value)
 * is true. Returns 0 or TLD_ESTORE. */
int tld_writer_record_prune(tld_writer *w, const void *prefix, size_t plen,
                            bool (*drop)(const void *val, size_t vlen, void *ctx), void *ctx,
                            tld_errbuf *eb);

/* Discards everything written in the transaction. */
void tld_writer_abort(tld_writer *w);

/* Allocates a fresh zone id for apex and fills z (serial and flags zero). The
 * zone is not visible until tld_zone_publish(). Ids only grow, so the new
 * zone's keys sort after every existing key and may be appended. */
int tld_zone_new(tld_writer *w, const uint8_t *apex, tld_zone *z, tld_errbuf *eb);

/* Makes z the zone served at z->apex. If another zone id held that apex, all
 * of its RRsets, indexes and journal are deleted in the same transaction. */
int tld_zone_publish(tld_writer *w, const tld_zone *z, tld_errbuf *eb);

/* Rewrites z's record (serial, flags, journal bounds) after changes. */
int tld_zone_update(tld_writer *w, const tld_zone *z, tld_errbuf *eb);

/* Removes the zone at apex and all its data. TLD_ENOENT if absent. */
int tld_zone_remove(tld_writer *w, const uint8_t *apex, tld_errbuf *eb);

/* Encodes an RRset value into buf (see layout); returns its length or
 * TLD_ESPACE. rrs/sigs are already in value form (rdlen|rdata, ttl|rdlen|rdata). */
int tld_rrset_encode(uint8_t *buf, size_t buflen, uint32_t ttl, uint16_t rr_count,
                     const uint8_t *rrs, size_t rrs_len, uint16_t sig_count, const uint8_t *sigs,
                     size_t sigs_len);

/* Parses a stored value into a view; TLD_EFOREIGN if it is inconsistent. */
int tld_rrset_decode(uint16_t type, const uint8_t *val, size_t len, tld_rrset *out);

/* Stores (replacing) the RRset value for (zone, owner, type) and keeps the
 * nsec/nsec3 indexes and the referral data of the covering cut in step.
 * append=true promises keys arrive in increasing order within a fresh zone
 * (import), which is much faster; referral data is then NOT maintained: call
 * tld_cut_rebuild() for each cut once its subtree is written. */
int tld_rrset_put(tld_writer *w, const tld_zone *z, const uint8_t *owner, uint16_t type,
                  const uint8_t *val, size_t len, bool append, tld_errbuf *eb);

/* Rebuilds the referral data of cut from the RRsets at and below it (or
 * removes the cuts entry when cut has no NS). append as for tld_rrset_put(). */
int tld_cut_rebuild(tld_writer *w, const tld_zone *z, const uint8_t *cut, bool append,
                    tld_errbuf *eb);

/* Stores ready-made referral data for cut (import builds it from its sorted
 * records instead of reading them back). blob is made with
 * tld_referral_add(). */
int tld_cut_put(tld_writer *w, const tld_zone *z, const uint8_t *cut, const uint8_t *blob,
                size_t len, bool append, tld_errbuf *eb);

/* Appends one entry (owner, type, RRset value) to a referral blob held in a
 * growable buffer (*buf may be NULL at first; free() it when done). Entries
 * must come in the order tld_referral describes. Returns 0 or TLD_ENOMEM. */
int tld_referral_add(uint8_t **buf, size_t *len, size_t *cap, const uint8_t *owner, uint16_t type,
                     const uint8_t *val, size_t vlen);

/* Whether an RRset of type belongs in referral data, at the cut itself
 * (at_cut) or at a name below it. */
bool tld_referral_type(uint16_t type, bool at_cut);

/* Deletes (zone, owner, type) and its index entries. TLD_ENOENT if absent. */
int tld_rrset_del(tld_writer *w, const tld_zone *z, const uint8_t *owner, uint16_t type,
                  tld_errbuf *eb);

/* Reads an RRset inside the write transaction (view valid until the next
 * write or the end of the transaction). */
int tld_writer_rrset_get(tld_writer *w, const tld_zone *z, const uint8_t *owner, uint16_t type,
                         tld_rrset *out);

/* Calls fn for each RRset read inside the write transaction, in canonical
 * order: those owned by exactly owner, or (subtree) those at and below owner,
 * i.e. the whole zone when owner is the apex. fn must not write; views are
 * valid during the call only. Stops early and returns fn's value on non-zero. */
int tld_writer_foreach_rrset(tld_writer *w, const tld_zone *z, const uint8_t *owner, bool subtree,
                             int (*fn)(const uint8_t *owner, const tld_rrset *rs, void *ctx),
                             void *ctx);

/* Appends an opaque journal entry for zone z at sequence seq, in this
 * transaction. */
int tld_journal_put(tld_writer *w, const tld_zone *z, uint64_t seq, const void *data, size_t len,
                    tld_errbuf *eb);
/* Deletes z's journal entries with sequence below keep_from. */
int tld_journal_trim(tld_writer *w, const tld_zone *z, uint64_t keep_from, tld_errbuf *eb);
/* Reads a journal entry through a reader (view valid until tld_reader_end). */
int tld_journal_get(tld_reader *r, const tld_zone *z, uint64_t seq, const void **data, size_t *len);

#endif
