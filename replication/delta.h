/* delta.h - zone changes (RRs deleted and added between two serials): encoding, diff, apply. */
#ifndef TLD_DELTA_H
#define TLD_DELTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../node/common/err.h"
#include "../node/store/import.h"
#include "../node/store/store.h"

/*
 * A delta takes one zone from serial `from` to serial `to`, like one IXFR
 * difference sequence (RFC 1995): a list of operations, each deleting or
 * adding one RR. It is what the primary journals and publishes and what
 * replicas apply. Encoding (all integers big-endian):
 *
 *   version u8 (= 1) | apex (wire name) | from u32 | to u32 | count u32 |
 *   count x ( op u8 (0 = delete, 1 = add) | owner (wire name) | type u16 |
 *             ttl u32 | rdlen u16 | rdata )
 *
 * RRSIG records are ordinary operations (type 46); the store keeps them with
 * the RRset they cover. The SOA change is part of the delta: a delta whose
 * `to` differs from the SOA serial it leaves is invalid.
 *
 * Applying is all or nothing: every operation inside the caller's write
 * transaction, then the zone rules are checked around every changed name
 * (the same rules as tldctl import), then the zone record (serial) and the
 * journal entry are written in that same transaction.
 */

#define TLD_DELTA_VERSION 1
#define TLD_OP_DEL        0
#define TLD_OP_ADD        1

/* A delta being built, in a growable buffer. */
typedef struct tld_delta {
	uint8_t *buf;
	size_t len, cap;
	uint32_t count;
} tld_delta;

/* A parsed (validated) encoded delta; points into the encoding. */
typedef struct tld_delta_view {
	const uint8_t *buf;
	size_t len;
	const uint8_t *apex;
	uint32_t from, to, count;
	size_t ops_off; /* offset of the first operation */
} tld_delta_view;

/* One operation of a view. */
typedef struct tld_delta_op {
	uint8_t op;
	const uint8_t *owner;
	uint16_t type;
	uint32_t ttl;
	uint16_t rdlen;
	const uint8_t *rdata;
} tld_delta_op;

/* Starts an empty delta for apex, from -> to. Returns 0 or TLD_ENOMEM. */
int tld_delta_init(tld_delta *d, const uint8_t *apex, uint32_t from, uint32_t to);

/* Appends one operation. Returns 0, TLD_ENOMEM or TLD_EINVAL (bad op). */
int tld_delta_add(tld_delta *d, uint8_t op, const uint8_t *owner, uint16_t type, uint32_t ttl,
                  const uint8_t *rdata, uint16_t rdlen);

/* Rewrites the serials of a built delta (a delta push gets its serial from
 * the primary). */
void tld_delta_set_serials(tld_delta *d, uint32_t from, uint32_t to);

void tld_delta_free(tld_delta *d);

/* Checks an encoded delta completely (every operation in bounds, names
 * valid, owners at or below the apex, no trailing bytes) and fills v.
 * Returns 0 or TLD_EMALFORMED. Safe on any bytes. */
int tld_delta_parse(const uint8_t *buf, size_t len, tld_delta_view *v);

/* Iterates the operations of a parsed view: *pos starts at 0. */
bool tld_delta_next(const tld_delta_view *v, size_t *pos, tld_delta_op *op);

/* Applies v to zone z inside w (z is updated: serial, flags), checks the zone
 * rules around every changed name, appends v to the zone's journal as entry
 * journal_last + 1 and trims the journal to keep_journal entries (0: keep
 * all). Nothing is committed: the caller commits or aborts w.
 * Errors (message in eb):
 *   TLD_ESERIAL  v->from is not the zone's serial (a gap or a replay)
 *   TLD_EZONE    an operation does not apply (deleting an absent RR) or the
 *                result breaks a zone rule
 *   TLD_EMAPFULL, TLD_ESTORE  store failures. */
int tld_delta_apply(tld_writer *w, tld_zone *z, const tld_delta_view *v, unsigned keep_journal,
                    tld_errbuf *eb);

/* The difference between the zone as stored (read through w) and zd (a
 * parsed zone file for the same apex), as a delta from z->serial to zd's
 * serial. Returns 0, TLD_ESERIAL when zd's serial is not newer (RFC 1982),
 * or TLD_ENOMEM. */
int tld_delta_diff(tld_writer *w, const tld_zone *z, const tld_zdata *zd, tld_delta *out,
                   tld_errbuf *eb);

/* Reads a delta file (documented in README.md, "Delta files"): master-file
 * records, each line prefixed by "-" (delete) or "+" (add), with $ORIGIN and
 * $TTL directives. The zone is named by $ORIGIN or origin (wire, may be
 * NULL). Serials are left 0. Errors: TLD_ESYNTAX / TLD_EZONE with
 * file:line in eb, TLD_EIO. */
int tld_delta_read_file(const char *path, const uint8_t *origin, tld_delta *out, tld_errbuf *eb);

/* RFC 1982 serial comparison: true when a is newer than b. */
bool tld_serial_newer(uint32_t a, uint32_t b);

#endif
