/* query.h - the query engine: one DNS query in, one response out, answered from the store. */
#ifndef TLD_QUERY_H
#define TLD_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cookie.h"
#include "rrl.h"
#include "store/store.h"

/*
 * What a TLD server answers (RFC 1034 4.3.2 with DNSSEC per RFC 4035/5155):
 *   - REFUSED for names in no served zone, and for classes other than IN
 *     (CHAOS only for the identity names below);
 *   - a referral (AA=0, NS in authority, glue in additional: every in-domain
 *     glue record or TC=1 (RFC 9471), sibling glue when it fits; with DO=1 the
 *     DS RRset and its RRSIGs, or the NSEC/NSEC3 proof that there is none);
 *   - DS at a delegation point answered authoritatively from the parent;
 *   - authoritative answers (AA=1) with RRSIGs when DO=1, CNAME chains
 *     followed inside the zone (a loop stops at the first name reached
 *     again; a chain into a delegation ends with its referral), wildcard
 *     synthesis, DNAME substitution (RFC 6672; YXDOMAIN when too long);
 *   - NSEC3 owner names treated as names that do not exist (RFC 5155 7.2.8);
 *   - NODATA and NXDOMAIN with the SOA (TTL min(SOA TTL, SOA MINIMUM)) and,
 *     with DO=1, the NSEC or NSEC3 denial proofs;
 *   - NOTAUTH with an unsigned BADKEY TSIG to a query signed with TSIG (no
 *     keys are configured: RFC 8945 5.2.2);
 *   - FORMERR, NOTIMP (opcodes other than QUERY), BADVERS (EDNS version > 0),
 *     no reply to responses (QR=1); ANY answered with one RRset,
 *     the smallest (RFC 8482);
 *   - EDNS(0): our payload size (configurable, 1232 by default), DO echoed,
 *     NSID (RFC 5001); without EDNS every UDP reply fits 512 bytes;
 *   - Extended DNS Errors (RFC 8914) with REFUSED (Not Authoritative, or
 *     Prohibited for AXFR/IXFR) and NOTIMP (Not Supported), EDNS queries only;
 *   - CHAOS TXT id.server / hostname.bind (the identity) and version.bind /
 *     version.server (configurable, or REFUSED when hidden).
 * Answering allocates nothing (the per-worker zone table is rebuilt, with an
 * allocation, only when the set of zones changes); a worker owns one
 * tld_engine and uses it from one thread. LMDB read transactions are
 * bracketed by the caller
 * (tld_engine_batch_begin/end) so one covers a whole batch of queries.
 */

#define TLD_EDNS_DEFAULT_MAX 1232
#define TLD_IDENTITY_MAX     255

/* Configuration shared (read-only) by every worker. */
typedef struct tld_engine_conf {
	char identity[TLD_IDENTITY_MAX + 1]; /* NSID and id.server; "" = none */
	char version[TLD_IDENTITY_MAX + 1];  /* version.bind text */
	bool version_hidden;                 /* REFUSED for version.bind */
	uint16_t edns_max;                   /* our UDP payload size */
	const tld_cookie_secrets *cookies;   /* DNS Cookies (RFC 7873/9018); NULL: off */
	tld_rrl *rrl;                        /* response rate limiting, shared; NULL: off */
	uint16_t tcp_keepalive;              /* TCP idle timeout sent to a client asking with
	                                        edns-tcp-keepalive over TCP (RFC 7828), in
	                                        units of 100 ms; 0: the option is not sent */
} tld_engine_conf;

/* Counters of one worker, read by the metrics exporter (plain loads: exact
 * enough for monitoring, and no lock or atomic op on the query path). */
#define TLD_STAT_QTYPES 64 /* qtype counters kept for types below this, the rest in [0] */
typedef struct tld_engine_stats {
	uint64_t queries[2]; /* by transport: [0] UDP, [1] TCP */
	uint64_t responses[2];
	uint64_t rcode[24]; /* responses by rcode (BADVERS = 16, BADCOOKIE = 23) */
	uint64_t qtype[TLD_STAT_QTYPES];
	uint64_t qtype_other;
	uint64_t truncated;
	uint64_t dropped; /* no reply: malformed beyond answering, or QR=1 */
	uint64_t referrals;
	uint64_t store_errors;  /* read transaction failures (answered SERVFAIL) */
	uint64_t cookies_valid; /* queries with a valid server cookie (exempt from RRL) */
	uint64_t rrl_slipped;   /* responses sent truncated by rate limiting */
	uint64_t rrl_dropped;   /* responses not sent by rate limiting */
} tld_engine_stats;

/* The zones of the store, cached per worker until the store's generation
 * changes (checked once per batch), so finding a query's zone costs no
 * B-tree probe: an open-addressing table keyed by a hash of the apex. */
typedef struct tld_zone_cache {
	uint64_t generation;
	uint64_t txnid; /* snapshot it was last checked against */
	tld_zone *zones;
	unsigned nzones;
	uint32_t *slots;    /* index + 1 into zones; 0 = empty */
	unsigned nslots;    /* power of two, >= 2 * nzones */
	uint8_t max_labels; /* of any apex: longer suffixes need no probe */
	bool valid;
} tld_zone_cache;

typedef struct tld_engine {
	const tld_engine_conf *conf;
	tld_reader reader;
	bool reader_ok;
	tld_zone_cache zc;
	uint64_t now_ms;  /* monotonic clock at the start of the batch (RRL) */
	uint32_t now_s;   /* wall clock at the start of the batch (cookies) */
	uint32_t soa_zid; /* zone whose SOA is in soa, read from the snapshot zc.txnid (0: none) */
	tld_rrset soa;
	tld_engine_stats stats;
} tld_engine;

/* Fills conf with defaults: no identity, version "tldnode", EDNS 1232. */
void tld_engine_conf_default(tld_engine_conf *conf);

/* Prepares e to answer from st with conf (both must outlive e). Returns 0 or
 * a store error (reader slots exhausted). */
int tld_engine_init(tld_engine *e, tld_store *st, const tld_engine_conf *conf);
void tld_engine_fini(tld_engine *e);

/* Starts/ends the read snapshot used by the following answers. */
void tld_engine_batch_begin(tld_engine *e);
void tld_engine_batch_end(tld_engine *e);

/* Answers the query pkt[0..len) into out (cap bytes: 65535 suffice for TCP,
 * our EDNS maximum for UDP) for client (for cookies and rate limiting; may
 * be NULL). tcp selects the transport's size limit; TCP is never rate
 * limited. Returns the response length, or 0 when nothing must be sent
 * (including a response dropped by rate limiting). Must be called between
 * batch_begin and batch_end. */
size_t tld_engine_answer(tld_engine *e, const uint8_t *pkt, size_t len, uint8_t *out, size_t cap,
                         bool tcp, const struct sockaddr *client);

#endif
