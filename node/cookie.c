/* cookie.c - DNS Cookies (RFC 7873) with interoperable server cookies (RFC 9018). */
#include "cookie.h"
#include "common/bytes.h"

#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* Parses exactly 32 hex digits (surrounding blanks ignored). */
static bool parse_secret(const char *line, uint8_t out[TLD_COOKIE_SECRET_LEN])
{
	while (isspace((unsigned char)*line))
		line++;
	for (int i = 0; i < TLD_COOKIE_SECRET_LEN; i++) {
		int hi = hexval((unsigned char)line[2 * i]),
		    lo = hexval((unsigned char)line[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	for (const char *p = line + 2 * TLD_COOKIE_SECRET_LEN; *p; p++)
		if (!isspace((unsigned char)*p))
			return false;
	return true;
}

int tld_cookie_load(const char *path, tld_cookie_secrets *s, tld_errbuf *eb)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return tld_errf(eb, TLD_EIO, "%s: %s", path, strerror(errno));
	memset(s, 0, sizeof(*s));
	char line[256];
	int n = 0, lineno = 0, err = TLD_OK;
	while (err == 0 && fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		char *hash = strchr(line, '#');
		if (hash != NULL)
			*hash = 0;
		if (strspn(line, " \t\r\n") == strlen(line))
			continue;
		if (n >= 2 || !parse_secret(line, n == 0 ? s->current : s->previous))
			err = tld_errf(
			    eb, TLD_EINVAL,
			    "%s:%d: expected 32 hex digits (current, then previous secret)", path,
			    lineno);
		n++;
	}
	fclose(f);
	if (err == 0 && n == 0)
		err = tld_errf(eb, TLD_EINVAL, "%s: no secret", path);
	s->has_previous = n == 2;
	s->enabled = err == 0;
	return err;
}

int tld_cookie_random(tld_cookie_secrets *s)
{
	if (sodium_init() < 0)
		return TLD_EIO;
	memset(s, 0, sizeof(*s));
	randombytes_buf(s->current, sizeof(s->current));
	s->enabled = true;
	return TLD_OK;
}

static void server_hash(const uint8_t *secret, const uint8_t *client_cookie, const uint8_t *head,
                        const struct sockaddr *client, uint8_t out[8])
{
	uint8_t in[TLD_COOKIE_CLIENT_LEN + 8 + 16];
	size_t n = 0;
	memcpy(in, client_cookie, TLD_COOKIE_CLIENT_LEN);
	n += TLD_COOKIE_CLIENT_LEN;
	memcpy(in + n, head, 8); /* version, reserved, timestamp */
	n += 8;
	if (client->sa_family == AF_INET) {
		memcpy(in + n, &((const struct sockaddr_in *)client)->sin_addr, 4);
		n += 4;
	} else if (client->sa_family == AF_INET6) {
		memcpy(in + n, &((const struct sockaddr_in6 *)client)->sin6_addr, 16);
		n += 16;
	}
	crypto_shorthash_siphash24(out, in, n, secret);
}

enum tld_cookie_state tld_cookie_check(const tld_cookie_secrets *s, const uint8_t *opt, size_t len,
                                       const struct sockaddr *client, uint32_t now)
{
	if (len < TLD_COOKIE_CLIENT_LEN)
		return TLD_COOKIE_NONE;
	if (!s->enabled || len != TLD_COOKIE_CLIENT_LEN + TLD_COOKIE_SERVER_LEN)
		return TLD_COOKIE_CLIENT;
	const uint8_t *server = opt + TLD_COOKIE_CLIENT_LEN;
	if (server[0] != 1 || server[1] || server[2] || server[3])
		return TLD_COOKIE_CLIENT;
	uint32_t ts = tld_get_be32(server + 4);
	int64_t age = (int64_t)now - (int64_t)ts;
	if (age > TLD_COOKIE_MAX_AGE || age < -TLD_COOKIE_MAX_AHEAD)
		return TLD_COOKIE_CLIENT;
	uint8_t h[8];
	server_hash(s->current, opt, server, client, h);
	if (sodium_memcmp(h, server + 8, 8) == 0)
		return TLD_COOKIE_VALID;
	if (s->has_previous) {
		server_hash(s->previous, opt, server, client, h);
		if (sodium_memcmp(h, server + 8, 8) == 0)
			return TLD_COOKIE_VALID;
	}
	return TLD_COOKIE_CLIENT;
}

void tld_cookie_make(const tld_cookie_secrets *s, const uint8_t *client_cookie,
                     const struct sockaddr *client, uint32_t now, uint8_t out[24])
{
	memcpy(out, client_cookie, TLD_COOKIE_CLIENT_LEN);
	uint8_t *server = out + TLD_COOKIE_CLIENT_LEN;
	server[0] = 1;
	server[1] = server[2] = server[3] = 0;
	server[4] = (uint8_t)(now >> 24);
	server[5] = (uint8_t)(now >> 16);
	server[6] = (uint8_t)(now >> 8);
	server[7] = (uint8_t)now;
	server_hash(s->current, client_cookie, server, client, server + 8);
}
