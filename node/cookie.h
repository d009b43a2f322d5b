/* cookie.h - DNS Cookies (RFC 7873) with interoperable server cookies (RFC 9018). */
#ifndef TLD_COOKIE_H
#define TLD_COOKIE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/err.h"

/*
 * A server cookie is Version (1) | Reserved (3 bytes, 0) | Timestamp (32-bit
 * seconds) | Hash (8 bytes), where Hash = SipHash-2-4 over client cookie |
 * version | reserved | timestamp | client IP, keyed by a 16-byte secret
 * (RFC 9018). Every node of an anycast cluster given the same secret accepts
 * the cookies any of them issued, so a client keeps its cookie when routing
 * moves it. Rotation: a node knows the current secret (used to issue) and
 * optionally the previous one (still accepted), per RFC 9018 section 3.
 * SipHash is libsodium's; nothing here allocates.
 */

#define TLD_COOKIE_CLIENT_LEN 8
#define TLD_COOKIE_SERVER_LEN 16
#define TLD_COOKIE_SECRET_LEN 16
#define TLD_COOKIE_MAX_AGE    3600 /* seconds a server cookie is accepted (RFC 9018: 1 hour) */
#define TLD_COOKIE_MAX_AHEAD  300  /* seconds in the future accepted (clock skew) */
#define TLD_COOKIE_REFRESH    1800 /* issue a new cookie when the old one is older */

typedef struct tld_cookie_secrets {
	uint8_t current[TLD_COOKIE_SECRET_LEN];
	uint8_t previous[TLD_COOKIE_SECRET_LEN];
	bool has_previous;
	bool enabled;
} tld_cookie_secrets;

/* Reads a secret file: one or two lines of 32 hex digits, the current secret
 * first, then the previous one ('#' comments allowed). Returns 0 or
 * TLD_EIO / TLD_EINVAL with a message. */
int tld_cookie_load(const char *path, tld_cookie_secrets *s, tld_errbuf *eb);

/* A random secret for a node that was given none (cookies then only work
 * against this node). Returns 0 or TLD_EIO. */
int tld_cookie_random(tld_cookie_secrets *s);

/* What a query's COOKIE option says. */
enum tld_cookie_state {
	TLD_COOKIE_NONE = 0, /* no COOKIE option */
	TLD_COOKIE_CLIENT,   /* a client cookie only, or a server cookie we did not make */
	TLD_COOKIE_VALID,    /* a server cookie we (or a cluster peer) made, fresh */
};

/* Checks the COOKIE option data (8 bytes, or 16..40: client + server cookie)
 * against the client's address at time now (unix seconds). */
enum tld_cookie_state tld_cookie_check(const tld_cookie_secrets *s, const uint8_t *opt, size_t len,
                                       const struct sockaddr *client, uint32_t now);

/* Writes the COOKIE option data for the reply (client cookie + a fresh server
 * cookie) to out (24 bytes). */
void tld_cookie_make(const tld_cookie_secrets *s, const uint8_t *client_cookie,
                     const struct sockaddr *client, uint32_t now, uint8_t out[24]);

#endif
