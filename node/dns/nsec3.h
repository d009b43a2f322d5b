/* nsec3.h - NSEC3 owner-name hashing (RFC 5155 section 5) and base32hex. */
#ifndef TLD_NSEC3_H
#define TLD_NSEC3_H

#include <stddef.h>
#include <stdint.h>

#define TLD_NSEC3_HASH_MAX 20 /* SHA-1, the only algorithm defined */
#define TLD_NSEC3_B32_MAX  32 /* base32hex of 20 bytes */

/* Iterated hash of a wire name (lower-cased before hashing, as RFC 5155
 * requires): IH(salt, x, 0) = H(x | salt), IH(salt, x, k) = H(IH(k-1) | salt).
 * Only algorithm 1 (SHA-1) exists. Writes 20 bytes to out and returns 20, or
 * TLD_EINVAL for another algorithm. iterations is capped by the caller's
 * policy (RFC 9276 says 0). */
int tld_nsec3_hash(uint8_t alg, const uint8_t *salt, size_t saltlen, uint16_t iterations,
                   const uint8_t *name, uint8_t *out);

/* Base32hex (RFC 4648 section 7), lower case, no padding. Returns the text length;
 * out must hold (len * 8 + 4) / 5 bytes (no NUL is written). */
size_t tld_base32hex(const uint8_t *in, size_t len, char *out);

#endif
