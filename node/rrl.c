/* rrl.c - response rate limiting shared by all workers, without locks. */
#include "rrl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/name.h"

/* Tokens are kept in thousandths so that refills at any rate are exact to
 * the millisecond. */
#define MILLI 1000

struct bucket {
	_Atomic uint64_t key;     /* hash of (prefix, class, name); 0: empty */
	_Atomic uint64_t stamp;   /* last refill, ms */
	_Atomic int64_t tokens;   /* thousandths of a response */
	_Atomic uint32_t limited; /* responses limited so far, for slip */
};

struct tld_rrl {
	tld_rrl_conf conf;
	struct bucket *b;
	uint64_t mask;
	_Atomic uint64_t passed, slipped, dropped;
};

void tld_rrl_conf_default(tld_rrl_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->rate = 200;
	c->slip = 2;
	c->buckets = 65536;
	c->v4_prefix = 24;
	c->v6_prefix = 56;
}

int tld_rrl_allow(tld_rrl_conf *c, const char *prefix)
{
	if (c->nallow >= TLD_RRL_ALLOW_MAX)
		return TLD_ESPACE;
	char host[64];
	const char *slash = strchr(prefix, '/');
	size_t hl = slash ? (size_t)(slash - prefix) : strlen(prefix);
	if (hl >= sizeof(host))
		return TLD_EINVAL;
	memcpy(host, prefix, hl);
	host[hl] = 0;
	tld_rrl_prefix *a = &c->allow[c->nallow];
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, host, a->addr) == 1)
		a->family = AF_INET;
	else if (inet_pton(AF_INET6, host, a->addr) == 1)
		a->family = AF_INET6;
	else
		return TLD_EINVAL;
	unsigned max = a->family == AF_INET ? 32 : 128;
	unsigned long len = max;
	if (slash != NULL) {
		char *end;
		len = strtoul(slash + 1, &end, 10);
		if (slash[1] == 0 || *end != 0 || len > max)
			return TLD_EINVAL;
	}
	a->len = (uint8_t)len;
	c->nallow++;
	return TLD_OK;
}

int tld_rrl_new(tld_rrl **out, const tld_rrl_conf *c)
{
	struct tld_rrl *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return TLD_ENOMEM;
	r->conf = *c;
	uint64_t n = 1024;
	while (n < c->buckets)
		n *= 2;
	r->mask = n - 1;
	r->b = calloc(n, sizeof(*r->b));
	if (r->b == NULL) {
		free(r);
		return TLD_ENOMEM;
	}
	*out = r;
	return TLD_OK;
}

void tld_rrl_free(tld_rrl *r)
{
	if (r == NULL)
		return;
	free(r->b);
	free(r);
}

/* The client's address bytes and family-specific prefix length. */
static const uint8_t *client_bytes(const struct sockaddr *sa, int *family, size_t *len)
{
	*family = sa->sa_family;
	if (sa->sa_family == AF_INET) {
		*len = 4;
		return (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
	}
	if (sa->sa_family == AF_INET6) {
		*len = 16;
		return (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
	}
	return NULL;
}

static bool prefix_match(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;
	if (memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t m = (uint8_t)(0xff << (8 - rest));
	return (a[full] & m) == (b[full] & m);
}

static bool allowed(const tld_rrl_conf *c, int family, const uint8_t *addr)
{
	for (unsigned i = 0; i < c->nallow; i++)
		if (c->allow[i].family == family &&
		    prefix_match(c->allow[i].addr, addr, c->allow[i].len))
			return true;
	return false;
}

/* FNV-1a 64 over the masked prefix, the class and the name. */
static uint64_t bucket_key(const uint8_t *addr, size_t alen, unsigned bits, int cls,
                           const uint8_t *name)
{
	uint64_t h = 14695981039346656037ull;
	for (size_t i = 0; i < alen; i++) {
		unsigned keep = bits > i * 8 ? bits - (unsigned)i * 8 : 0;
		uint8_t m = keep >= 8 ? 0xff : (uint8_t)(0xff << (8 - keep));
		h = (h ^ (addr[i] & m)) * 1099511628211ull;
	}
	h = (h ^ (uint8_t)cls) * 1099511628211ull;
	size_t nlen = tld_name_len(name);
	for (size_t i = 0; i < nlen; i++)
		h = (h ^ name[i]) * 1099511628211ull;
	return h | 1; /* never 0, which marks an empty bucket */
}

#define LOAD(x)     atomic_load_explicit(&(x), memory_order_relaxed)
#define STORE(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)

enum tld_rrl_verdict tld_rrl_check(tld_rrl *r, const struct sockaddr *client, int cls,
                                   const uint8_t *name, uint64_t now_ms)
{
	const tld_rrl_conf *c = &r->conf;
	int family;
	size_t alen;
	const uint8_t *addr = client_bytes(client, &family, &alen);
	if (c->rate == 0 || addr == NULL || allowed(c, family, addr))
		return TLD_RRL_PASS;
	unsigned bits = family == AF_INET ? c->v4_prefix : c->v6_prefix;
	uint64_t key = bucket_key(addr, alen, bits, cls, name);
	struct bucket *b = &r->b[key & r->mask];
	int64_t cap = (int64_t)c->rate * MILLI; /* a burst of one second */
	int64_t tokens;
	if (LOAD(b->key) != key) { /* a new bucket (or one taken over) */
		STORE(b->key, key);
		STORE(b->limited, 0);
		tokens = cap;
	} else {
		uint64_t last = LOAD(b->stamp);
		uint64_t elapsed = now_ms > last ? now_ms - last : 0;
		tokens = LOAD(b->tokens) + (int64_t)(elapsed * c->rate);
		if (tokens > cap)
			tokens = cap;
	}
	STORE(b->stamp, now_ms);
	if (tokens >= MILLI) {
		STORE(b->tokens, tokens - MILLI);
		STORE(r->passed, LOAD(r->passed) + 1);
		return TLD_RRL_PASS;
	}
	STORE(b->tokens, tokens);
	uint32_t n = LOAD(b->limited) + 1;
	STORE(b->limited, n);
	if (c->slip != 0 && n % c->slip == 0) {
		STORE(r->slipped, LOAD(r->slipped) + 1);
		return TLD_RRL_SLIP;
	}
	STORE(r->dropped, LOAD(r->dropped) + 1);
	return TLD_RRL_DROP;
}

void tld_rrl_stats_get(const tld_rrl *r, tld_rrl_stats *out)
{
	struct tld_rrl *m = (struct tld_rrl *)r;
	out->passed = LOAD(m->passed);
	out->slipped = LOAD(m->slipped);
	out->dropped = LOAD(m->dropped);
}
