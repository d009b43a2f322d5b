/* nsec3.c - NSEC3 owner-name hashing (RFC 5155 section 5) and base32hex. */
#include "nsec3.h"

#include <string.h>

/* The low-level SHA1_* calls allocate nothing, unlike EVP: fine for the hot path. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include "../common/err.h"
#include "name.h"

int tld_nsec3_hash(uint8_t alg, const uint8_t *salt, size_t saltlen, uint16_t iterations,
                   const uint8_t *name, uint8_t *out)
{
	if (alg != 1)
		return TLD_EINVAL;
	uint8_t lower[TLD_NAME_MAX];
	size_t len = tld_name_len(name);
	memcpy(lower, name, len);
	tld_name_lower(lower);
	SHA_CTX ctx;
	SHA1_Init(&ctx);
	SHA1_Update(&ctx, lower, len);
	SHA1_Update(&ctx, salt, saltlen);
	SHA1_Final(out, &ctx);
	for (unsigned i = 0; i < iterations; i++) {
		SHA1_Init(&ctx);
		SHA1_Update(&ctx, out, TLD_NSEC3_HASH_MAX);
		SHA1_Update(&ctx, salt, saltlen);
		SHA1_Final(out, &ctx);
	}
	return TLD_NSEC3_HASH_MAX;
}

size_t tld_base32hex(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdefghijklmnopqrstuv";
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < len; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 5) {
			out[o++] = digits[(acc >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	if (bits > 0)
		out[o++] = digits[(acc << (5 - bits)) & 31];
	return o;
}
