/* dump.c - write store contents back as RFC 1035 master-file text (libknot's dumper). */
#include "dump.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libknot/libknot.h>

/*
 * Records are dumped one at a time (a one-RR knot_rrset_t): the store's order
 * of RRs is kept, each RRSIG keeps its own TTL, and libknot's "not enough
 * space" can only mean malformed RDATA, since one record's text always fits
 * in the dumper's growth limit (a 65535-byte RDATA is at most ~256 KiB of
 * text). The text buffer is reused between records; knot_rrset_txt_dump()
 * replaces it when it must grow.
 */

#define DUMP_BUF_INIT 4096

/* State shared by every record of one dump. */
struct dumper {
	FILE *out;
	tld_errbuf *eb;
	knot_dump_style_t style;
	char *txt; /* malloc'd: libknot frees and replaces it when it grows */
	size_t txt_size;
	uint8_t owner[TLD_NAME_MAX]; /* lower-case copy of the current owner */
};

static int dumper_init(struct dumper *d, FILE *out, tld_errbuf *eb)
{
	d->out = out;
	d->eb = eb;
	d->style = KNOT_DUMP_STYLE_DEFAULT;
	d->style.show_class = true;    /* "owner ttl IN type rdata" */
	d->style.original_ttl = false; /* an RRSIG's own TTL, not its Original TTL field */
	d->txt_size = DUMP_BUF_INIT;
	d->txt = malloc(d->txt_size);
	if (d->txt == NULL)
		return tld_errf(eb, TLD_ENOMEM, "dump: out of memory");
	return TLD_OK;
}

static void dumper_free(struct dumper *d)
{
	free(d->txt);
	d->txt = NULL;
}

/* Rejected RDATA: names the owner and type in the message. */
static int rdata_error(struct dumper *d, uint16_t type, int knot_rc)
{
	char name[TLD_NAME_TXTMAX], tname[32];
	if (tld_name_to_text(d->owner, name, sizeof(name)) < 0)
		strcpy(name, "?");
	if (knot_rrtype_to_string(type, tname, sizeof(tname)) < 0)
		snprintf(tname, sizeof(tname), "TYPE%u", type);
	return tld_errf(d->eb, TLD_ERDATA, "%s %s: RDATA rejected by the text dumper (%s)", name,
	                tname, knot_strerror(knot_rc));
}

/* Records libknot 3.2's presentation form would not read back the same, so
 * they are written in the RFC 3597 generic form instead (found by fuzzing):
 * SVCB/HTTPS values holding '(', ')' or ';' lose their escapes, and RRSIG
 * times more than 68 years from now wrap around (serial arithmetic). */
static bool needs_generic(uint16_t type, const uint8_t *rdata, uint16_t rdlen)
{
	if (type == KNOT_RRTYPE_SVCB || type == KNOT_RRTYPE_HTTPS)
		return memchr(rdata, '(', rdlen) || memchr(rdata, ')', rdlen) ||
		       memchr(rdata, ';', rdlen);
	if (type != KNOT_RRTYPE_RRSIG || rdlen < 16)
		return false;
	int64_t now = (int64_t)time(NULL), far = INT32_MAX - 366 * 86400; /* a year's margin */
	for (int i = 8; i <= 12; i += 4) { /* expiration, inception */
		int64_t t = (int64_t)((uint32_t)rdata[i] << 24 | (uint32_t)rdata[i + 1] << 16 |
		                      (uint32_t)rdata[i + 2] << 8 | rdata[i + 3]);
		if (t - now > far || now - t > far)
			return true;
	}
	return false;
}

/* Dumps one record of (d->owner, type, class IN, ttl). */
static int dump_record(struct dumper *d, uint16_t type, uint32_t ttl, const uint8_t *rdata,
                       uint16_t rdlen)
{
	knot_rrset_t rr;
	knot_rrset_init(&rr, d->owner, type, KNOT_CLASS_IN, ttl);
	int rc = knot_rrset_add_rdata(&rr, rdata, rdlen, NULL);
	if (rc != KNOT_EOK)
		return tld_errf(d->eb, TLD_ENOMEM, "dump: out of memory");
	knot_dump_style_t style = d->style;
	style.generic = needs_generic(type, rdata, rdlen);
	rc = knot_rrset_txt_dump(&rr, &d->txt, &d->txt_size, &style);
	if (rc < 0 && rc != KNOT_ENOMEM && !style.generic) {
		/* RDATA the presentation form cannot express (a store written before
		 * import checked RDATA layouts): the generic form holds any bytes. */
		style.generic = true;
		rc = knot_rrset_txt_dump(&rr, &d->txt, &d->txt_size, &style);
	}
	/* Only the RDATA belongs to us: knot_rrset_clear() would free the owner. */
	knot_rdataset_clear(&rr.rrs, NULL);
	if (rc == KNOT_ENOMEM)
		return tld_errf(d->eb, TLD_ENOMEM, "dump: out of memory");
	if (rc < 0)
		return rdata_error(d, type, rc);
	if (fwrite(d->txt, 1, (size_t)rc, d->out) != (size_t)rc)
		return tld_errf(d->eb, TLD_EIO, "dump: write failed: %s", strerror(errno));
	return TLD_OK;
}

/* Dumps the records of rs, then its RRSIGs, owned by owner. */
static int dump_rrset(struct dumper *d, const uint8_t *owner, const tld_rrset *rs)
{
	memcpy(d->owner, owner, tld_name_len(owner));
	tld_name_lower(d->owner);

	const uint8_t *p = rs->rrs, *rdata;
	uint16_t rdlen;
	uint32_t ttl;
	for (uint16_t i = 0; i < rs->rr_count && tld_rr_next(&p, rs->end, NULL, &rdata, &rdlen);
	     i++) {
		int rc = dump_record(d, rs->type, rs->ttl, rdata, rdlen);
		if (rc < 0)
			return rc;
	}
	p = rs->sigs;
	for (uint16_t i = 0; i < rs->sig_count && tld_rr_next(&p, rs->end, &ttl, &rdata, &rdlen);
	     i++) {
		int rc = dump_record(d, KNOT_RRTYPE_RRSIG, ttl, rdata, rdlen);
		if (rc < 0)
			return rc;
	}
	return TLD_OK;
}

int tld_dump_rrset(FILE *out, const uint8_t *owner, const tld_rrset *rs, tld_errbuf *eb)
{
	struct dumper d;
	int rc = dumper_init(&d, out, eb);
	if (rc < 0)
		return rc;
	rc = dump_rrset(&d, owner, rs);
	dumper_free(&d);
	return rc;
}

/* Context of tld_dump_zone's walk. */
struct zone_walk {
	struct dumper *d;
	const tld_zone *z;
};

/* tld_zone_foreach_rrset callback: every RRset but the apex SOA (dumped first). */
static int dump_one(const uint8_t *owner, const tld_rrset *rs, void *ctx)
{
	struct zone_walk *zw = ctx;
	if (rs->type == KNOT_RRTYPE_SOA && tld_name_equal(owner, zw->z->apex))
		return TLD_OK;
	return dump_rrset(zw->d, owner, rs);
}

static int dump_header(struct dumper *d, const tld_zone *z)
{
	char apex[TLD_NAME_TXTMAX];
	int rc = tld_name_to_text(z->apex, apex, sizeof(apex));
	if (rc < 0)
		return tld_errf(d->eb, rc, "dump: cannot print the apex name");
	if (fprintf(d->out, "; zone %s serial %u dumped by tldctl\n", apex, z->serial) < 0)
		return tld_errf(d->eb, TLD_EIO, "dump: write failed: %s", strerror(errno));
	return TLD_OK;
}

/* Header, apex SOA, then every other RRset in canonical order. */
static int dump_zone(struct dumper *d, tld_reader *r, const tld_zone *z)
{
	int rc = dump_header(d, z);
	if (rc < 0)
		return rc;
	tld_rrset soa;
	rc = tld_rrset_get(r, z, z->apex, KNOT_RRTYPE_SOA, &soa);
	if (rc == TLD_OK)
		rc = dump_rrset(d, z->apex, &soa);
	if (rc < 0 && rc != TLD_ENOENT)
		return rc;
	struct zone_walk zw = {.d = d, .z = z};
	rc = tld_zone_foreach_rrset(r, z, dump_one, &zw);
	if (rc < 0)
		return rc;
	if (fflush(d->out) != 0)
		return tld_errf(d->eb, TLD_EIO, "dump: write failed: %s", strerror(errno));
	return TLD_OK;
}

int tld_dump_zone(tld_reader *r, const tld_zone *z, FILE *out, tld_errbuf *eb)
{
	struct dumper d;
	int rc = dumper_init(&d, out, eb);
	if (rc < 0)
		return rc;
	rc = dump_zone(&d, r, z);
	dumper_free(&d);
	return rc;
}
