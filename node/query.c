/* query.c - the query engine: one DNS query in, one response out, answered from the store. */
#include "query.h"
#include "common/bytes.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dns/nsec3.h"
#include "dns/rrtype.h"
#include "dns/wire.h"

#define CNAME_HOPS 8
#define PROOFS_MAX 6 /* distinct NSEC/NSEC3 owners in one response */
#define NS_TARGETS 32

/* State of the answer being built. */
struct ctx {
	tld_engine *e;
	tld_reader *r;
	const tld_query *q;
	tld_resp *resp;
	const tld_zone *zone;
	tld_zone zone_buf; /* when the zone cache could not be loaded */
	bool dnssec;       /* DO=1 and the zone is signed */
	bool full;         /* something required did not fit: TC is set, stop adding */
	bool damaged;      /* a stored record could not be written: answer SERVFAIL */
	unsigned rcode;
	int ede; /* an Extended DNS Error (enum tld_ede) to send, or -1 */
	uint8_t proofs[PROOFS_MAX][TLD_NAME_MAX]; /* denial owners already added */
	unsigned nproofs;
	const uint8_t *cut; /* the delegation of a referral (for rate limiting) */
	/* An NS/MX/SRV answer whose targets' addresses go in the additional
	 * section, which comes last: written when the answer is complete. */
	tld_rrset extra;
	bool has_extra;
};

static inline uint32_t min32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

void tld_engine_conf_default(tld_engine_conf *conf)
{
	memset(conf, 0, sizeof(*conf));
	strcpy(conf->version, "tldnode");
	conf->edns_max = TLD_EDNS_DEFAULT_MAX;
}

int tld_engine_init(tld_engine *e, tld_store *st, const tld_engine_conf *conf)
{
	memset(e, 0, sizeof(*e));
	e->conf = conf;
	int err = tld_reader_open(st, &e->reader);
	return err;
}

/* ---- zone cache ---- */

/* FNV-1a over a lower-cased wire name. */
static uint32_t name_hash(const uint8_t *name, size_t len)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ name[i]) * 16777619u;
	return h;
}

static void zone_cache_clear(tld_zone_cache *zc)
{
	free(zc->zones);
	free(zc->slots);
	memset(zc, 0, sizeof(*zc));
}

static int zone_cache_add(const tld_zone *z, void *arg)
{
	tld_zone_cache *zc = arg;
	tld_zone *zones = realloc(zc->zones, (zc->nzones + 1) * sizeof(*zones));
	if (zones == NULL)
		return TLD_ENOMEM;
	zc->zones = zones;
	zc->zones[zc->nzones++] = *z;
	if (z->apex_labels > zc->max_labels)
		zc->max_labels = z->apex_labels;
	return 0;
}

/* Reloads the cache from the store; allocation happens here only, when the
 * set of zones changed. */
static void zone_cache_load(tld_engine *e, uint64_t gen)
{
	tld_zone_cache *zc = &e->zc;
	zone_cache_clear(zc);
	if (tld_zone_foreach(&e->reader, zone_cache_add, zc) < 0)
		goto fail;
	zc->nslots = 16;
	while (zc->nslots < 2 * zc->nzones)
		zc->nslots *= 2;
	if ((zc->slots = calloc(zc->nslots, sizeof(*zc->slots))) == NULL)
		goto fail;
	for (unsigned i = 0; i < zc->nzones; i++) {
		uint32_t h = name_hash(zc->zones[i].apex, zc->zones[i].apex_len);
		unsigned j = h & (zc->nslots - 1);
		while (zc->slots[j] != 0)
			j = (j + 1) & (zc->nslots - 1);
		zc->slots[j] = i + 1;
	}
	zc->generation = gen;
	zc->valid = true;
	return;
fail:
	zone_cache_clear(zc);
}

static const tld_zone *zone_cache_get(const tld_zone_cache *zc, const uint8_t *apex)
{
	size_t len = tld_name_len(apex);
	uint32_t h = name_hash(apex, len);
	for (unsigned j = h & (zc->nslots - 1); zc->slots[j] != 0; j = (j + 1) & (zc->nslots - 1)) {
		const tld_zone *z = &zc->zones[zc->slots[j] - 1];
		if (z->apex_len == len && memcmp(z->apex, apex, len) == 0)
			return z;
	}
	return NULL;
}

/* The closest enclosing zone of a lower-case name, as tld_zone_find_qtype()
 * would find it, from the cache. */
static const tld_zone *zone_cache_find(const tld_zone_cache *zc, const uint8_t *name,
                                       uint16_t qtype)
{
	int labels = tld_name_labels(name);
	const uint8_t *p = labels > zc->max_labels ? tld_name_suffix(name, zc->max_labels) : name;
	for (; p != NULL; p = *p ? p + 1 + *p : NULL) {
		const tld_zone *z = zone_cache_get(zc, p);
		if (z == NULL)
			continue;
		/* DS at a zone's apex belongs to the parent zone, if served here. */
		if (qtype == TLD_T_DS && p == name && *p != 0) {
			for (const uint8_t *q = p + 1 + *p; q != NULL; q = *q ? q + 1 + *q : NULL) {
				const tld_zone *parent = zone_cache_get(zc, q);
				if (parent != NULL)
					return parent;
			}
		}
		return z;
	}
	return NULL;
}

void tld_engine_fini(tld_engine *e)
{
	zone_cache_clear(&e->zc);
	tld_reader_close(&e->reader);
}

void tld_engine_batch_begin(tld_engine *e)
{
	uint64_t gen;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	e->now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	e->now_s = (uint32_t)ts.tv_sec;
	e->reader_ok = tld_reader_begin(&e->reader) == 0;
	if (!e->reader_ok) {
		e->stats.store_errors++;
		return;
	}
	/* Same snapshot as the last batch (no commit since): nothing to check,
	 * and views into it (the cached SOA) are still valid, since LMDB only
	 * reuses pages that a later commit freed. */
	uint64_t txnid = mdb_txn_id(e->reader.txn);
	if (e->zc.valid && txnid == e->zc.txnid)
		return;
	e->soa_zid = 0;
	if (tld_reader_generation(&e->reader, &gen) == 0 &&
	    (!e->zc.valid || gen != e->zc.generation))
		zone_cache_load(e, gen);
	e->zc.txnid = txnid;
}

void tld_engine_batch_end(tld_engine *e)
{
	if (e->reader_ok)
		tld_reader_end(&e->reader);
	e->reader_ok = false;
}

/* ---- writing RRsets ---- */

/* Marks the response truncated: a required record did not fit. */
static void truncate_resp(struct ctx *c)
{
	c->full = true;
	tld_resp_set_flags(c->resp, TLD_WIRE_TC, 0);
}

/* Adds an RRset (and its RRSIGs when DNSSEC is on), all or nothing; TTLs are
 * capped at ttl_cap. Returns 0, or TLD_ESPACE (nothing added). */
static int put_rrset(struct ctx *c, int sec, const uint8_t *owner, const tld_rrset *rs,
                     uint32_t ttl_cap)
{
	if (c->full)
		return TLD_ESPACE;
	tld_resp_mark m = tld_resp_save(c->resp);
	int n = tld_resp_add_rrset(c->resp, sec, owner, rs->type, TLD_C_IN, min32(rs->ttl, ttl_cap),
	                           rs->rrs, (size_t)(rs->sigs - rs->rrs));
	if (n >= 0 && c->dnssec && rs->sig_count > 0)
		n = tld_resp_add_sigs(c->resp, sec, owner, TLD_C_IN, ttl_cap, rs->sigs,
		                      (size_t)(rs->end - rs->sigs));
	if (n < 0) {
		tld_resp_restore(c->resp, &m);
		return n;
	}
	return 0;
}

/* A stored record could not be written (a store from before import checked
 * RDATA layouts, or damage): the answer becomes an empty SERVFAIL. */
static void store_damaged(struct ctx *c)
{
	c->damaged = c->full = true;
	c->e->stats.store_errors++;
}

/* A required RRset: when it does not fit, the response is truncated. When
 * its stored RDATA cannot be written (a store from before import checked
 * RDATA layouts, or damage), the answer becomes SERVFAIL: TC would send the
 * client to TCP for the same failure. */
static void put_required(struct ctx *c, int sec, const uint8_t *owner, const tld_rrset *rs,
                         uint32_t ttl_cap)
{
	if (c->full)
		return;
	int rc = put_rrset(c, sec, owner, rs, ttl_cap);
	if (rc == TLD_ESPACE) {
		truncate_resp(c);
	} else if (rc < 0) {
		store_damaged(c);
	}
}

static bool get_rrset(struct ctx *c, const uint8_t *owner, uint16_t type, tld_rrset *rs)
{
	return tld_rrset_get(c->r, c->zone, owner, type, rs) == 0 && rs->rr_count > 0;
}

/* ---- negative answers and proofs ---- */

/* Adds the zone's SOA to authority with the negative-caching TTL. */
static void put_soa(struct ctx *c)
{
	tld_engine *e = c->e;
	tld_rrset soa;
	if (e->soa_zid == c->zone->id) { /* already read from this snapshot */
		soa = e->soa;
	} else {
		if (!get_rrset(c, c->zone->apex, TLD_T_SOA, &soa))
			return;
		e->soa = soa;
		e->soa_zid = c->zone->id;
	}
	const uint8_t *p = soa.rrs, *rd;
	uint16_t rdlen;
	uint32_t ttl = soa.ttl;
	if (tld_rr_next(&p, soa.sigs, NULL, &rd, &rdlen) && rdlen >= 22)
		ttl = min32(ttl, tld_get_be32(rd + rdlen - 4)); /* MINIMUM */
	put_required(c, TLD_SEC_AUTHORITY, c->zone->apex, &soa, ttl);
}

/* Adds the RRset (owner, type) as a denial proof unless already present. */
static void put_proof(struct ctx *c, const uint8_t *owner, uint16_t type)
{
	for (unsigned i = 0; i < c->nproofs; i++)
		if (tld_name_equal(c->proofs[i], owner))
			return;
	tld_rrset rs;
	if (!get_rrset(c, owner, type, &rs))
		return;
	if (c->nproofs < PROOFS_MAX)
		memcpy(c->proofs[c->nproofs++], owner, tld_name_len(owner));
	put_required(c, TLD_SEC_AUTHORITY, owner, &rs, UINT32_MAX);
}

/* The NSEC that matches or covers name. */
static void nsec_cover(struct ctx *c, const uint8_t *name)
{
	uint8_t owner[TLD_NAME_MAX];
	if (tld_nsec_find(c->r, c->zone, name, owner) > 0)
		put_proof(c, owner, TLD_T_NSEC);
}

/* The NSEC3 that matches (exact) or covers (!exact) the hash of name.
 * Returns true when one was found in the wanted relation. */
static bool nsec3_proof(struct ctx *c, const uint8_t *name, bool exact)
{
	uint8_t hash[TLD_NSEC3_HASH_MAX], owner[TLD_NAME_MAX];
	char b32[TLD_NSEC3_B32_MAX];
	const tld_zone *z = c->zone;
	if (tld_nsec3_hash(z->nsec3_alg, z->nsec3_salt, z->nsec3_saltlen, z->nsec3_iter, name,
	                   hash) < 0)
		return false;
	size_t blen = tld_base32hex(hash, sizeof(hash), b32);
	bool is_exact;
	if (tld_nsec3_find(c->r, z, b32, blen, owner, &is_exact) < 0 || is_exact != exact)
		return false;
	put_proof(c, owner, TLD_T_NSEC3);
	return true;
}

/* The parent of name (name must not be the root). */
static const uint8_t *parent_of(const uint8_t *name)
{
	return name + 1 + name[0];
}

/* Closest encloser of a name that does not exist: the nearest existing
 * ancestor (the apex at worst). *next_closer gets its child on the way. */
static const uint8_t *closest_encloser(struct ctx *c, const uint8_t *name,
                                       const uint8_t **next_closer)
{
	const uint8_t *nc = name, *p = parent_of(name);
	while (tld_name_labels(p) > c->zone->apex_labels &&
	       tld_name_exists(c->r, c->zone, p) == 0) {
		nc = p;
		p = parent_of(p);
	}
	*next_closer = nc;
	return p;
}

/* RFC 5155 7.2.1 closest encloser proof: match CE, cover next closer. */
static void nsec3_closest_encloser_proof(struct ctx *c, const uint8_t *ce,
                                         const uint8_t *next_closer)
{
	nsec3_proof(c, ce, true);
	nsec3_proof(c, next_closer, false);
}

/* Writes "*." + ce into out. */
static bool wildcard_of(const uint8_t *ce, uint8_t *out)
{
	size_t len = tld_name_len(ce);
	if (len + 2 > TLD_NAME_MAX)
		return false;
	out[0] = 1;
	out[1] = '*';
	memcpy(out + 2, ce, len);
	return true;
}

/* RFC 5155 7.2.4, name without an NSEC3 of its own (in an opt-out span):
 * the NSEC3 matching its closest provable encloser, the nearest ancestor that
 * has one (the apex at worst), and the one covering the next closer name.
 * The nearest existing ancestor will not do: an empty non-terminal inside an
 * opt-out span has no NSEC3 either. */
static void nsec3_optout_proof(struct ctx *c, const uint8_t *name)
{
	const uint8_t *nc = name, *ce = parent_of(name);
	while (tld_name_labels(ce) > c->zone->apex_labels && !nsec3_proof(c, ce, true)) {
		nc = ce;
		ce = parent_of(ce);
	}
	if (tld_name_labels(ce) == c->zone->apex_labels)
		nsec3_proof(c, ce, true);
	nsec3_proof(c, nc, false);
}

/* NODATA for name (which exists, or matched wildcard wc when not NULL). */
static void nodata(struct ctx *c, const uint8_t *name, const uint8_t *wc)
{
	put_soa(c);
	if (!c->dnssec)
		return;
	if (c->zone->flags & TLD_ZONE_NSEC3) {
		if (wc == NULL) {
			if (!nsec3_proof(c, name, true))
				nsec3_optout_proof(c, name);
		} else {
			const uint8_t *nc, *ce = closest_encloser(c, name, &nc);
			nsec3_closest_encloser_proof(c, ce, nc);
			nsec3_proof(c, wc, true);
		}
		return;
	}
	/* NSEC: the NSEC at the name (or the one covering an empty non-terminal). */
	nsec_cover(c, wc != NULL ? wc : name);
	if (wc != NULL)
		nsec_cover(c, name);
}

static void nxdomain(struct ctx *c, const uint8_t *name, const uint8_t *ce, const uint8_t *nc)
{
	uint8_t wc[TLD_NAME_MAX];
	c->rcode = TLD_RCODE_NXDOMAIN;
	put_soa(c);
	if (!c->dnssec || !wildcard_of(ce, wc))
		return;
	if (c->zone->flags & TLD_ZONE_NSEC3) {
		nsec3_closest_encloser_proof(c, ce, nc);
		nsec3_proof(c, wc, false);
		return;
	}
	nsec_cover(c, name);
	nsec_cover(c, wc);
}

/* ---- positive answers ---- */

/* Adds address records of the in-zone targets of an NS/MX/SRV answer. They
 * are optional (RFC 2181 9): one that does not fit is skipped, and the
 * following ones, often smaller (A after AAAA), are still tried. */
static void additional_for(struct ctx *c, const tld_rrset *rs)
{
	const uint8_t *p = rs->rrs, *rd;
	uint16_t rdlen;
	size_t skip = rs->type == TLD_T_MX ? 2 : rs->type == TLD_T_SRV ? 6 : 0;
	while (!c->full && tld_rr_next(&p, rs->sigs, NULL, &rd, &rdlen)) {
		if (rdlen <= skip || tld_name_check(rd + skip, rdlen - skip) < 0)
			continue;
		const uint8_t *target = rd + skip;
		if (!tld_name_is_below(target, c->zone->apex))
			continue;
		tld_rrset a;
		if (get_rrset(c, target, TLD_T_A, &a))
			put_rrset(c, TLD_SEC_ADDITIONAL, target, &a, UINT32_MAX);
		if (get_rrset(c, target, TLD_T_AAAA, &a))
			put_rrset(c, TLD_SEC_ADDITIONAL, target, &a, UINT32_MAX);
	}
}

struct any_pick {
	tld_rrset rs;
	size_t size;    /* of rs as it will be written */
	bool with_sigs; /* RRSIGs are written too (DO=1, signed zone) */
	bool found;
};

/* The smallest RRset (as stored: the RDATA, and the RRSIGs if sent) answers ANY:
 * RFC 8482 leaves the choice open, and the smallest is the most likely to fit
 * over UDP without TC, and the least use for amplification. NSEC is not data. */
static int pick_smallest(const uint8_t *owner, const tld_rrset *rs, void *arg)
{
	struct any_pick *ap = arg;
	(void)owner;
	if (rs->rr_count == 0 || rs->type == TLD_T_NSEC)
		return 0;
	size_t size = (size_t)((ap->with_sigs ? rs->end : rs->sigs) - rs->rrs);
	if (!ap->found || size < ap->size) {
		ap->rs = *rs;
		ap->size = size;
		ap->found = true;
	}
	return 0;
}

struct sig_answer {
	struct ctx *c;
	const uint8_t *owner;
	bool found;
};

static int put_sigs_of(const uint8_t *node, const tld_rrset *rs, void *arg)
{
	struct sig_answer *sa = arg;
	if (rs->sig_count == 0)
		return 0;
	sa->found = true;
	if (tld_resp_add_sigs(sa->c->resp, TLD_SEC_ANSWER, sa->owner, TLD_C_IN, UINT32_MAX,
	                      rs->sigs, (size_t)(rs->end - rs->sigs)) < 0) {
		truncate_resp(sa->c);
		return 1;
	}
	return 0;
}

/* qtype RRSIG: the signatures are the data asked for, whatever DO says
 * (stored with the RRsets they cover, so gathered from each). */
static bool answer_rrsigs(struct ctx *c, const uint8_t *node, const uint8_t *owner)
{
	struct sig_answer sa = {.c = c, .owner = owner};
	tld_name_foreach_rrset(c->r, c->zone, node, put_sigs_of, &sa);
	return sa.found;
}

/* Answers from the RRsets at node (owner as written: qname or a CNAME
 * target). Returns true when the answer is complete, false when there is no
 * data of the type. On a CNAME, writes the target to *next. */
static bool answer_at(struct ctx *c, const uint8_t *node, const uint8_t *owner, uint16_t qtype,
                      const uint8_t **next)
{
	tld_rrset rs;
	*next = NULL;
	if (qtype == TLD_T_RRSIG)
		return answer_rrsigs(c, node, owner);
	if (qtype == TLD_T_ANY) { /* RFC 8482: one RRset is enough */
		struct any_pick ap = {.with_sigs = c->dnssec};
		tld_name_foreach_rrset(c->r, c->zone, node, pick_smallest, &ap);
		if (!ap.found)
			return false;
		put_required(c, TLD_SEC_ANSWER, owner, &ap.rs, UINT32_MAX);
		return true;
	}
	if (get_rrset(c, node, qtype, &rs)) {
		put_required(c, TLD_SEC_ANSWER, owner, &rs, UINT32_MAX);
		if (qtype == TLD_T_NS || qtype == TLD_T_MX || qtype == TLD_T_SRV) {
			c->extra = rs;
			c->has_extra = true;
		}
		return true;
	}
	if (qtype != TLD_T_CNAME && get_rrset(c, node, TLD_T_CNAME, &rs)) {
		put_required(c, TLD_SEC_ANSWER, owner, &rs, UINT32_MAX);
		const uint8_t *p = rs.rrs, *rd;
		uint16_t rdlen;
		if (tld_rr_next(&p, rs.sigs, NULL, &rd, &rdlen) && tld_name_check(rd, rdlen) > 0)
			*next = rd;
		return true;
	}
	return false;
}

/* ---- referrals ---- */

/* Adds the glue of the NS targets below the cut (in_domain) or elsewhere in
 * the zone (sibling glue). RFC 9471: all in-domain glue, or TC=1. Sibling
 * glue is optional: an RRset that does not fit is skipped and the rest are
 * still tried, so a small A can follow an AAAA that did not fit. */
/* The RRset (owner, type) among a referral's entries (cut and in-domain glue). */
static bool ref_get(const tld_referral *ref, const uint8_t *owner, uint16_t type, tld_rrset *rs)
{
	size_t pos = 0;
	const uint8_t *o;
	while (tld_referral_next(ref, &pos, &o, rs))
		if (rs->type == type && tld_name_equal(o, owner))
			return rs->rr_count > 0;
	return false;
}

/* Adds the address records of the NS targets: in-domain glue from the
 * referral data (all of it, or TC=1: RFC 9471), then sibling glue (other
 * names of this zone) from the store, when it fits. */
static void glue_for(struct ctx *c, const tld_referral *ref, const tld_rrset *ns, bool in_domain)
{
	const uint8_t *p = ns->rrs, *rd;
	uint16_t rdlen;
	while (!c->full && tld_rr_next(&p, ns->sigs, NULL, &rd, &rdlen)) {
		if (tld_name_check(rd, rdlen) < 0 || !tld_name_is_below(rd, c->zone->apex))
			continue;
		if (tld_name_is_below(rd, ref->cut) != in_domain)
			continue;
		static const uint16_t types[] = {TLD_T_A, TLD_T_AAAA};
		for (int i = 0; i < 2; i++) {
			tld_rrset a;
			bool found = in_domain ? ref_get(ref, rd, types[i], &a)
			                       : get_rrset(c, rd, types[i], &a);
			/* A record that does not fit is skipped: smaller ones may. */
			if (found && put_rrset(c, TLD_SEC_ADDITIONAL, rd, &a, UINT32_MAX) < 0 &&
			    in_domain) {
				truncate_resp(c);
				return;
			}
		}
	}
}

static void ds_denial(struct ctx *c, const tld_referral *ref)
{
	const uint8_t *cut = ref->cut;
	if (c->zone->flags & TLD_ZONE_NSEC3) {
		if (!nsec3_proof(c, cut, true))
			nsec3_optout_proof(c, cut);
		return;
	}
	tld_rrset nsec;
	if (ref_get(ref, cut, TLD_T_NSEC, &nsec))
		put_required(c, TLD_SEC_AUTHORITY, cut, &nsec, UINT32_MAX);
}

static void referral(struct ctx *c, const tld_referral *ref)
{
	tld_rrset ns, ds;
	if (!ref_get(ref, ref->cut, TLD_T_NS, &ns)) {
		c->rcode = TLD_RCODE_SERVFAIL;
		return;
	}
	c->e->stats.referrals++;
	c->cut = ref->cut;
	/* NS at a cut is not signed: write it without RRSIGs. */
	bool dnssec = c->dnssec;
	c->dnssec = false;
	put_required(c, TLD_SEC_AUTHORITY, ref->cut, &ns, UINT32_MAX);
	c->dnssec = dnssec;
	if (c->dnssec) {
		if (ref_get(ref, ref->cut, TLD_T_DS, &ds))
			put_required(c, TLD_SEC_AUTHORITY, ref->cut, &ds, UINT32_MAX);
		else
			ds_denial(c, ref);
	}
	if (c->full)
		return;
	c->dnssec = false; /* glue is never signed */
	glue_for(c, ref, &ns, true);
	if (!c->full)
		glue_for(c, ref, &ns, false);
	c->dnssec = dnssec;
}

/* ---- authoritative data ---- */

/* The names a chain of CNAMEs (and DNAME substitutions) has reached, the
 * QNAME aside; and the names answered from a wildcard, whose proofs (RFC 4035
 * 3.1.3.3, RFC 5155 7.2.6) go in the authority section once the answer
 * section is complete: sections are written in order. */
struct chain {
	uint8_t names[CNAME_HOPS][TLD_NAME_MAX];
	int n;
	const uint8_t *wild[CNAME_HOPS + 1];    /* name answered from a wildcard */
	const uint8_t *wild_nc[CNAME_HOPS + 1]; /* its next closer name (NSEC3) */
	int nwild;
};

/* The proofs that no closer name matched, for each wildcard answer so far. */
static void wildcard_proofs(struct ctx *c, struct chain *ch)
{
	for (int i = 0; i < ch->nwild && c->dnssec; i++) {
		if (c->zone->flags & TLD_ZONE_NSEC3)
			nsec3_proof(c, ch->wild_nc[i], false);
		else
			nsec_cover(c, ch->wild[i]);
	}
	ch->nwild = 0;
}

/* After an answer: the CNAME target next (NULL: no CNAME) if it is to be
 * followed here, as a copy in ch; else NULL. Not followed: a target outside
 * the zone; one the chain has already reached (a loop ends there, as in
 * other servers); one at or below a delegation, which gets the referral
 * (RFC 1034 4.3.2 step 3b). */
static const uint8_t *cname_hop(struct ctx *c, const uint8_t *next, struct chain *ch)
{
	tld_referral ref;
	if (next == NULL || ch->n == CNAME_HOPS || !tld_name_is_below(next, c->zone->apex) ||
	    tld_name_equal(next, c->q->qname_lc))
		return NULL;
	for (int i = 0; i < ch->n; i++)
		if (tld_name_equal(next, ch->names[i]))
			return NULL;
	if (tld_referral_find(c->r, c->zone, next, &ref) > 0) {
		wildcard_proofs(c, ch); /* authority, before the referral's additional */
		referral(c, &ref);
		return NULL;
	}
	uint8_t *hop = ch->names[ch->n++];
	memcpy(hop, next, tld_name_len(next));
	return hop;
}

/* RFC 6672: name does not exist and its closest encloser ce may own a DNAME.
 * If it does, adds the DNAME (with its RRSIGs) and the CNAME synthesized from
 * it (unsigned, the DNAME's TTL) owned by owner, and writes the substituted
 * name to syn. Returns 1 when syn is to be resolved next, 0 when the answer
 * is complete (or YXDOMAIN: the new name would be too long), -1 when ce has
 * no DNAME. */
static int dname_answer(struct ctx *c, const uint8_t *name, const uint8_t *owner, const uint8_t *ce,
                        uint8_t *syn)
{
	tld_rrset dname;
	const uint8_t *p, *target;
	uint16_t tlen;
	if (!get_rrset(c, ce, TLD_T_DNAME, &dname))
		return -1;
	p = dname.rrs;
	if (!tld_rr_next(&p, dname.sigs, NULL, &target, &tlen) ||
	    tld_name_check(target, tlen) <= 0) {
		store_damaged(c);
		return 0;
	}
	/* The DNAME's owner as the query spells it: owner less its first labels. */
	const uint8_t *dname_owner = owner;
	for (unsigned i = tld_name_labels(name) - tld_name_labels(ce); i > 0; i--)
		dname_owner += 1 + dname_owner[0];
	put_required(c, TLD_SEC_ANSWER, dname_owner, &dname, UINT32_MAX);
	size_t prefix = (size_t)(dname_owner - owner), tl = tld_name_len(target);
	if (prefix + tl > TLD_NAME_MAX) {
		c->rcode = TLD_RCODE_YXDOMAIN;
		return 0;
	}
	memcpy(syn, owner, prefix);
	memcpy(syn + prefix, target, tl);
	uint8_t rd[2 + TLD_NAME_MAX];
	tld_put_be16(rd, (uint16_t)(prefix + tl));
	memcpy(rd + 2, syn, prefix + tl);
	const uint8_t *rd_end = rd + 2 + prefix + tl;
	tld_rrset cname = {.type = TLD_T_CNAME,
	                   .ttl = dname.ttl,
	                   .rr_count = 1,
	                   .rrs = rd,
	                   .sigs = rd_end,
	                   .end = rd_end};
	put_required(c, TLD_SEC_ANSWER, owner, &cname, UINT32_MAX);
	return c->q->qtype == TLD_T_CNAME ? 0 : 1;
}

static int count_not_nsec3(const uint8_t *owner, const tld_rrset *rs, void *arg)
{
	(void)owner;
	*(int *)arg += rs->type != TLD_T_NSEC3;
	return 0;
}

/* RFC 5155 7.2.8: an NSEC3 owner name is no name of the zone; queries for it
 * get NXDOMAIN like any name that does not exist. Whether name is one: in an
 * NSEC3 zone, one label of 32 base32hex characters right below the apex,
 * owning NSEC3 records and nothing else. (Only such names pay for the look.) */
static bool is_nsec3_owner(struct ctx *c, const uint8_t *name)
{
	if (!(c->zone->flags & TLD_ZONE_NSEC3) || name[0] != 32 ||
	    tld_name_labels(name) != c->zone->apex_labels + 1)
		return false;
	for (int i = 1; i <= 32; i++) {
		uint8_t ch = name[i] | 0x20;
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'v')))
			return false;
	}
	int others = 0;
	tld_name_foreach_rrset(c->r, c->zone, name, count_not_nsec3, &others);
	return others == 0;
}

/* The work of authoritative(): answers name, then each name a CNAME or DNAME
 * leads to, until the answer is complete. */
static void resolve(struct ctx *c, const uint8_t *name, uint16_t qtype, struct chain *ch)
{
	uint8_t wc[TLD_NAME_MAX];
	const uint8_t *owner = c->q->qname;
	while (name != NULL && !c->full) {
		const uint8_t *next;
		/* Existence first: one probe settles a name that does not exist,
		 * where trying the type and then CNAME would take two. */
		int exists = tld_name_exists(c->r, c->zone, name);
		if (exists < 0) {
			c->rcode = TLD_RCODE_SERVFAIL;
			return;
		}
		if (exists == 1 && is_nsec3_owner(c, name))
			exists = 0;
		if (exists == 1 && answer_at(c, name, owner, qtype, &next)) {
			name = owner = cname_hop(c, next, ch);
			continue;
		}
		if (exists != 0) { /* RRsets, none of the type; or an empty non-terminal */
			nodata(c, name, NULL);
			return;
		}
		const uint8_t *nc, *ce = closest_encloser(c, name, &nc);
		int dname =
		    (c->zone->flags & TLD_ZONE_DNAME) ? dname_answer(c, name, owner, ce, wc) : -1;
		if (dname >= 0) { /* wc holds the substituted name */
			name = owner = dname == 1 ? cname_hop(c, wc, ch) : NULL;
			continue;
		}
		if (!(c->zone->flags & TLD_ZONE_WILDCARD) || !wildcard_of(ce, wc) ||
		    tld_name_exists(c->r, c->zone, wc) != 1) {
			nxdomain(c, name, ce, nc);
			return;
		}
		/* Wildcard synthesis (RFC 4592): owner stays the name asked for. */
		if (answer_at(c, wc, owner, qtype, &next)) {
			ch->wild[ch->nwild] = name;
			ch->wild_nc[ch->nwild++] = nc;
			name = owner = cname_hop(c, next, ch);
			continue;
		}
		nodata(c, name, wc);
		return;
	}
}

/* Resolves name inside the zone, following CNAMEs and DNAMEs; the owner
 * names written are the query's (its case) for the first hop. */
static void authoritative(struct ctx *c, const uint8_t *name, uint16_t qtype)
{
	struct chain ch;
	ch.n = ch.nwild = 0;
	tld_resp_set_flags(c->resp, TLD_WIRE_AA, 0);
	resolve(c, name, qtype, &ch);
	wildcard_proofs(c, &ch);
	if (c->has_extra && !c->full)
		additional_for(c, &c->extra);
}

/* ---- CHAOS ---- */

static bool name_is(const uint8_t *lc, const char *wire)
{
	return strcmp((const char *)lc, wire) == 0;
}

/* REFUSED, explained by an Extended DNS Error when the query has EDNS. */
static void refuse(struct ctx *c, enum tld_ede why)
{
	c->rcode = TLD_RCODE_REFUSED;
	c->ede = (int)why;
}

static void chaos(struct ctx *c)
{
	const tld_engine_conf *conf = c->e->conf;
	const uint8_t *n = c->q->qname_lc;
	const char *text = NULL;
	if (name_is(n, "\002id\006server") || name_is(n, "\010hostname\004bind"))
		text = conf->identity[0] ? conf->identity : NULL;
	else if (name_is(n, "\007version\004bind") || name_is(n, "\007version\006server"))
		text = conf->version_hidden ? NULL : conf->version;
	if (text == NULL || (c->q->qtype != TLD_T_TXT && c->q->qtype != TLD_T_ANY)) {
		refuse(c, TLD_EDE_NOT_AUTHORITATIVE);
		return;
	}
	uint8_t rd[1 + TLD_IDENTITY_MAX];
	size_t len = strlen(text);
	rd[0] = (uint8_t)len;
	memcpy(rd + 1, text, len);
	tld_resp_set_flags(c->resp, TLD_WIRE_AA, 0);
	if (tld_resp_add_rr(c->resp, TLD_SEC_ANSWER, c->q->qname, TLD_T_TXT, TLD_C_CH, 0, rd,
	                    (uint16_t)(len + 1)) < 0)
		truncate_resp(c);
}

/* ---- top level ---- */

static void answer_query(struct ctx *c)
{
	const tld_query *q = c->q;
	if (q->qclass == TLD_C_CH) {
		chaos(c);
		return;
	}
	if (q->qclass != TLD_C_IN) {
		refuse(c, TLD_EDE_NOT_AUTHORITATIVE);
		return;
	}
	switch (q->qtype) {
	case TLD_T_AXFR:
	case TLD_T_IXFR: /* zones move by replication, not by transfer */
		refuse(c, TLD_EDE_PROHIBITED);
		return;
	case TLD_T_OPT:
	case TLD_T_TSIG:
	case TLD_T_TKEY:
		c->rcode = TLD_RCODE_FORMERR;
		return;
	}
	if (!c->e->reader_ok) {
		c->rcode = TLD_RCODE_SERVFAIL;
		return;
	}
	const tld_zone *z =
	    c->e->zc.valid ? zone_cache_find(&c->e->zc, q->qname_lc, q->qtype) : NULL;
	if (z == NULL && !c->e->zc.valid &&
	    tld_zone_find_qtype(c->r, q->qname_lc, q->qtype, &c->zone_buf) == 0)
		z = &c->zone_buf;
	if (z == NULL) {
		refuse(c, TLD_EDE_NOT_AUTHORITATIVE);
		return;
	}
	c->zone = z;
	c->dnssec = q->edns_do && (c->zone->flags & TLD_ZONE_SIGNED);
	tld_referral ref;
	bool at_apex = q->qname_labels == c->zone->apex_labels; /* no cut above the apex */
	if (!at_apex && tld_referral_find(c->r, c->zone, q->qname_lc, &ref) > 0 &&
	    !(q->qtype == TLD_T_DS && tld_name_equal(ref.cut, q->qname_lc))) {
		referral(c, &ref);
		return;
	}
	authoritative(c, q->qname_lc, q->qtype);
}

/* Cookie option we send: client cookie + a fresh 16-byte server cookie. */
#define COOKIE_OPT_LEN (4 + TLD_COOKIE_CLIENT_LEN + TLD_COOKIE_SERVER_LEN)

static bool wants_cookie(const tld_engine_conf *conf, const tld_query *q)
{
	return conf->cookies != NULL && conf->cookies->enabled &&
	       q->cookie_len >= TLD_COOKIE_CLIENT_LEN;
}

/* A query with no question and a COOKIE option, asking for a server cookie
 * (RFC 7873 5.4): answered NOERROR with an empty answer and our cookie. */
static bool cookie_request(const tld_engine_conf *conf, const tld_query *q)
{
	return q->qdcount == 0 && q->why == TLD_WHY_QDCOUNT && q->has_opt && q->edns_version == 0 &&
	       wants_cookie(conf, q);
}

static size_t our_opt_len(const tld_engine_conf *conf, const tld_query *q, bool tcp)
{
	size_t n = TLD_OPT_LEN;
	if (tcp && q->tcp_keepalive && conf->tcp_keepalive > 0)
		n += 4 + 2;
	if (q->nsid && conf->identity[0])
		n += 4 + strlen(conf->identity);
	if (wants_cookie(conf, q))
		n += COOKIE_OPT_LEN;
	return n;
}

static void count(tld_engine_stats *s, const tld_query *q, unsigned rcode, bool tc, bool tcp)
{
	s->queries[tcp]++;
	s->responses[tcp]++;
	s->rcode[rcode < 24 ? rcode : 2]++;
	if (q->qtype < TLD_STAT_QTYPES)
		s->qtype[q->qtype]++;
	else
		s->qtype_other++;
	s->truncated += tc;
}

/* The rate-limiting class of a finished response, and the name it is about. */
static int rrl_class(const struct ctx *c, const tld_resp *resp, const uint8_t **name)
{
	static const uint8_t root[1] = {0};
	*name = c->zone != NULL ? c->zone->apex : root;
	if (c->rcode == TLD_RCODE_NXDOMAIN)
		return TLD_RRL_NXDOMAIN;
	if (c->rcode != TLD_RCODE_NOERROR)
		return TLD_RRL_ERROR;
	if (c->cut != NULL) {
		*name = c->cut;
		return TLD_RRL_REFERRAL;
	}
	*name = c->q->qname_lc;
	return resp->count[TLD_SEC_ANSWER] > 0 ? TLD_RRL_POSITIVE : TLD_RRL_NODATA;
}

/* Adds our OPT RR (NSID, cookie) to a response to q. */
static void add_opt(tld_engine *e, tld_resp *resp, const tld_query *q, bool tcp,
                    const struct sockaddr *client)
{
	const tld_engine_conf *conf = e->conf;
	bool nsid = q->nsid && conf->identity[0];
	if (tld_resp_add_opt(resp, conf->edns_max, q->edns_do,
	                     nsid ? (const uint8_t *)conf->identity : NULL,
	                     nsid ? (uint16_t)strlen(conf->identity) : 0) < 0 &&
	    tld_resp_add_opt(resp, conf->edns_max, q->edns_do, NULL, 0) < 0)
		return;
	if (client != NULL && wants_cookie(conf, q)) {
		uint8_t cookie[TLD_COOKIE_CLIENT_LEN + TLD_COOKIE_SERVER_LEN];
		tld_cookie_make(conf->cookies, q->pkt + q->cookie_off, client, e->now_s, cookie);
		tld_resp_add_edns_option(resp, TLD_EDNS_COOKIE, cookie, sizeof(cookie));
	}
	/* RFC 7828: over TCP only (the option is ignored over UDP). */
	if (tcp && q->tcp_keepalive && conf->tcp_keepalive > 0) {
		uint8_t t[2] = {(uint8_t)(conf->tcp_keepalive >> 8), (uint8_t)conf->tcp_keepalive};
		tld_resp_add_edns_option(resp, TLD_EDNS_TCP_KEEPALIVE, t, sizeof(t));
	}
}

/* RFC 8914: an info code alone, no EXTRA-TEXT. It is not in the space
 * reserved for OPT, which only REFUSED and NOTIMP answers need it beside: it
 * always fits those, and is left out of anything else that ran out of room. */
static void add_ede(tld_resp *resp, int ede)
{
	if (ede < 0)
		return;
	uint8_t code[2] = {(uint8_t)(ede >> 8), (uint8_t)ede};
	tld_resp_add_edns_option(resp, TLD_EDNS_EDE, code, sizeof(code));
}

/* A rate-limited response slips out truncated: header, question, OPT. */
static void slip(tld_engine *e, tld_resp *resp, const tld_query *q, const struct sockaddr *client,
                 unsigned rcode)
{
	tld_resp_init(resp, resp->buf, resp->cap, q);
	tld_resp_set_flags(resp, TLD_WIRE_TC, 0);
	tld_resp_set_rcode(resp, rcode);
	if (q->has_opt)
		add_opt(e, resp, q, false, client);
}

size_t tld_engine_answer(tld_engine *e, const uint8_t *pkt, size_t len, uint8_t *out, size_t cap,
                         bool tcp, const struct sockaddr *client)
{
	tld_query q;
	int pr = tld_query_parse(pkt, len, &q);
	if (pr == TLD_PARSE_DROP) {
		e->stats.dropped++;
		return 0;
	}
	size_t limit = tcp ? TLD_MSG_MAX : tld_query_udp_max(&q, e->conf->edns_max);
	if (limit > cap)
		limit = cap;
	tld_resp resp;
	if (tld_resp_init(&resp, out, limit, &q) < 0) {
		e->stats.dropped++;
		return 0;
	}
	struct ctx c = {.e = e, .r = &e->reader, .q = &q, .resp = &resp, .ede = -1};
	if (q.opcode != TLD_OP_QUERY) {
		c.rcode = TLD_RCODE_NOTIMP;
		c.ede = TLD_EDE_NOT_SUPPORTED;
	} else if (pr == TLD_PARSE_FORMERR)
		c.rcode = cookie_request(e->conf, &q) ? TLD_RCODE_NOERROR : TLD_RCODE_FORMERR;
	else if (q.has_opt && q.edns_version != 0)
		c.rcode = TLD_RCODE_BADVERS;
	else if (q.has_tsig) /* RFC 8945 5.2.2: no keys here, so every key is unknown */
		c.rcode = TLD_RCODE_NOTAUTH;
	else if (q.has_opt && tld_resp_reserve(&resp, our_opt_len(e->conf, &q, tcp)) < 0)
		c.rcode = TLD_RCODE_SERVFAIL;
	else
		answer_query(&c);
	if (c.damaged) { /* nothing of a half-written answer: an empty SERVFAIL */
		tld_resp_init(&resp, out, limit, &q);
		c.rcode = TLD_RCODE_SERVFAIL;
		c.full = false;
	}
	tld_resp_set_rcode(&resp, c.rcode);
	if (q.has_opt) {
		add_opt(e, &resp, &q, tcp, client);
		add_ede(&resp, c.ede);
	}
	if (c.rcode == TLD_RCODE_NOTAUTH) /* the TSIG RR is last, after the OPT */
		tld_resp_add_tsig_error(&resp, &q, TLD_TSIG_BADKEY);
	/* Rate limiting: UDP only, and not for a client proving its address with
	 * a valid server cookie (RFC 7873 5.2.3). */
	if (!tcp && client != NULL && e->conf->rrl != NULL) {
		bool valid = wants_cookie(e->conf, &q) &&
		             tld_cookie_check(e->conf->cookies, q.pkt + q.cookie_off, q.cookie_len,
		                              client, e->now_s) == TLD_COOKIE_VALID;
		e->stats.cookies_valid += valid;
		const uint8_t *name;
		int cls = rrl_class(&c, &resp, &name);
		enum tld_rrl_verdict v =
		    valid ? TLD_RRL_PASS
		          : tld_rrl_check(e->conf->rrl, client, cls, name, e->now_ms);
		if (v == TLD_RRL_DROP) {
			e->stats.rrl_dropped++;
			return 0;
		}
		if (v == TLD_RRL_SLIP) {
			e->stats.rrl_slipped++;
			slip(e, &resp, &q, client, c.rcode);
			c.full = true;
		}
	}
	int n = tld_resp_finish(&resp);
	count(&e->stats, &q, c.rcode, c.full, tcp);
	return n > 0 ? (size_t)n : 0;
}
