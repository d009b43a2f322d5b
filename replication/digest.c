/* digest.c - a SHA-256 digest of a zone's content, to check that two nodes hold the same data. */
#include "digest.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "proto.h"

struct rec {
	const uint8_t *p; /* the record as stored: [ttl u32 |] rdlen u16 | rdata */
	size_t len;
};

static int rec_cmp(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->p, y->p, n);
	return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

struct digest_ctx {
	EVP_MD_CTX *md;
	uint64_t rrsets;
	struct rec *recs;
	size_t cap;
};

/* Hashes count records starting at p (header hdr bytes each), sorted. For
 * sorting, a signature's TTL is skipped so the order is that of rdlen|rdata. */
static int hash_records(struct digest_ctx *c, const uint8_t *p, const uint8_t *end, unsigned count,
                        size_t hdr)
{
	if (count > c->cap) {
		struct rec *n = realloc(c->recs, count * sizeof(*n));
		if (n == NULL)
			return TLD_ENOMEM;
		c->recs = n;
		c->cap = count;
	}
	unsigned got = 0;
	while (got < count && (size_t)(end - p) >= hdr) {
		size_t rdlen = tld_get_be16(p + hdr - 2);
		c->recs[got].p = p + hdr - 2;
		c->recs[got].len = 2 + rdlen;
		p += hdr + rdlen;
		got++;
	}
	qsort(c->recs, got, sizeof(*c->recs), rec_cmp);
	uint8_t n[2];
	tld_put_be16(n, (uint16_t)got);
	EVP_DigestUpdate(c->md, n, 2);
	for (unsigned i = 0; i < got; i++)
		EVP_DigestUpdate(c->md, c->recs[i].p - (hdr - 2), c->recs[i].len + hdr - 2);
	return TLD_OK;
}

static int digest_rrset(const uint8_t *owner, const tld_rrset *rs, void *arg)
{
	struct digest_ctx *c = arg;
	uint8_t lower[TLD_NAME_MAX], hdr[6];
	size_t nlen = tld_name_len(owner);
	memcpy(lower, owner, nlen);
	tld_name_lower(lower);
	tld_put_be16(hdr, rs->type);
	tld_put_be32(hdr + 2, rs->ttl);
	EVP_DigestUpdate(c->md, lower, nlen);
	EVP_DigestUpdate(c->md, hdr, sizeof(hdr));
	int err = hash_records(c, rs->rrs, rs->sigs, rs->rr_count, 2);
	if (err == 0)
		err = hash_records(c, rs->sigs, rs->end, rs->sig_count, 6);
	c->rrsets++;
	return err;
}

int tld_zone_digest(tld_reader *r, const tld_zone *z, uint8_t out[TLD_DIGEST_LEN], uint64_t *rrsets)
{
	struct digest_ctx c = {0};
	c.md = EVP_MD_CTX_new();
	if (c.md == NULL || EVP_DigestInit_ex(c.md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(c.md);
		return TLD_ENOMEM;
	}
	uint8_t serial[4];
	tld_put_be32(serial, z->serial);
	EVP_DigestUpdate(c.md, serial, sizeof(serial));
	int err = tld_zone_foreach_rrset(r, z, digest_rrset, &c);
	unsigned len = 0;
	if (err == 0 && EVP_DigestFinal_ex(c.md, out, &len) != 1)
		err = TLD_ENOMEM;
	EVP_MD_CTX_free(c.md);
	free(c.recs);
	*rrsets = c.rrsets;
	return err;
}
