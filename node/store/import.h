/* import.h - read an RFC 1035 master file, check it as a TLD zone, write it to the store. */
#ifndef TLD_IMPORT_H
#define TLD_IMPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "store.h"

/*
 * Parsing is libzscanner's (Knot DNS): $ORIGIN, $TTL, $INCLUDE, relative
 * names, parentheses, escapes, RFC 3597 \# RDATA, every registered type.
 * The whole zone is then held in memory, sorted in canonical order, checked,
 * and written in ONE write transaction, so a failed import changes nothing.
 *
 * Checks (errors, with file:line of the offending record):
 *   - syntax errors reported by the scanner;
 *   - class other than IN;
 *   - no SOA, more than one SOA, SOA not at the apex;
 *   - no NS at the apex;
 *   - a record whose owner is outside the zone;
 *   - data below a delegation other than A/AAAA glue (NS, DS, TXT, ...);
 *   - DS at a name that is not a delegation (or at the apex);
 *   - CNAME beside other data (RRSIG/NSEC excepted), more than one CNAME,
 *     CNAME at the apex or at a delegation;
 *   - DNAME at a delegation, with names below it, or more than one at a name.
 * Warnings (printed, import goes on): an in-domain NS target without
 * address records (missing glue), RRs of one RRset with different TTLs (the
 * first TTL is used), duplicate RRs (dropped).
 */

typedef struct tld_import_opts {
	const uint8_t *origin; /* wire name of the apex; NULL: the SOA owner */
	FILE *warn;            /* where warnings go; NULL: discarded */
	unsigned max_warnings; /* print at most this many (all are counted); 0 = 20 */
} tld_import_opts;

typedef struct tld_import_stats {
	uint64_t records;     /* RRs read (duplicates included) */
	uint64_t rrsets;      /* RRsets written */
	uint64_t names;       /* distinct owner names */
	uint64_t delegations; /* zone cuts */
	uint64_t glue;        /* address RRsets below cuts */
	uint64_t duplicates;  /* duplicate RRs dropped */
	uint64_t warnings;
	uint32_t serial;
	double parse_s, check_s, write_s, commit_s;
} tld_import_stats;

/* A parsed, sorted and checked zone held in memory. */
typedef struct tld_zdata tld_zdata;

/* Parses and checks the master file at path. On failure returns TLD_ESYNTAX,
 * TLD_EZONE, TLD_EIO or TLD_ENOMEM with "file:line: why" in eb. */
int tld_zdata_load(const char *path, const tld_import_opts *o, tld_zdata **out,
                   tld_import_stats *stats, tld_errbuf *eb);

/* Same, from a string (tests, fuzzing, pushes). name is used in messages. */
int tld_zdata_load_string(const char *text, size_t len, const char *name, const tld_import_opts *o,
                          tld_zdata **out, tld_import_stats *stats, tld_errbuf *eb);

/* The apex (wire) and SOA serial of a loaded zone. */
const uint8_t *tld_zdata_apex(const tld_zdata *zd);
uint32_t tld_zdata_serial(const tld_zdata *zd);

/* One record of a loaded zone: its owner as a store key (name.h), the RRset
 * it belongs to (for an RRSIG: the covered type, with is_sig set), its TTL as
 * read and its RDATA. Views are valid until tld_zdata_free(). */
typedef struct tld_zrec {
	const uint8_t *key;
	size_t key_len;
	uint16_t type;
	bool is_sig;
	uint32_t ttl;
	const uint8_t *rdata;
	uint16_t rdlen;
} tld_zrec;

/* Number of records of zd, duplicates dropped. tld_zdata_rec() reads record
 * i < count in canonical order: owner key, type, the RRs before the RRSIGs
 * covering them, then RDATA (octets, the shorter first on a common prefix),
 * which is the order tld_zdata_write() stores them in. */
size_t tld_zdata_count(const tld_zdata *zd);
void tld_zdata_rec(const tld_zdata *zd, size_t i, tld_zrec *out);

/* Writes zd as a new zone id in w and fills z (flags, serial, NSEC3 params);
 * the caller publishes it with tld_zone_publish(). */
int tld_zdata_write(const tld_zdata *zd, tld_writer *w, tld_zone *z, tld_import_stats *stats,
                    tld_errbuf *eb);

void tld_zdata_free(tld_zdata *zd);

/* The whole of `tldctl import`: load, check, write, publish and commit in one
 * transaction, replacing any zone at the same apex. */
int tld_import_file(tld_store *st, const char *path, const tld_import_opts *o,
                    tld_import_stats *stats, tld_errbuf *eb);

#endif
