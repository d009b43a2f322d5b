/* keyfile.c - named HMAC-SHA256 keys shared by a primary and its replicas, read from a key file. */
#include "keyfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#define KEYFILE_MAX (1u << 20)

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int tld_base64_decode(const char *text, size_t len, uint8_t *out, size_t cap)
{
	if (len == 0 || len % 4 != 0)
		return TLD_ESYNTAX;
	size_t pad = (text[len - 1] == '=') + (len > 1 && text[len - 2] == '=');
	size_t outlen = len / 4 * 3 - pad;
	if (outlen > cap)
		return TLD_ESPACE;
	size_t o = 0;
	for (size_t i = 0; i < len; i += 4) {
		uint32_t acc = 0;
		for (size_t j = 0; j < 4; j++) {
			int v = b64_value((unsigned char)text[i + j]);
			bool padding = text[i + j] == '=' && i + 4 == len && j >= 4 - pad;
			if (v < 0 && !padding)
				return TLD_ESYNTAX;
			acc = acc << 6 | (uint32_t)(v < 0 ? 0 : v);
		}
		for (size_t j = 0; j < 3 && o < outlen; j++)
			out[o++] = (uint8_t)(acc >> (16 - 8 * j));
	}
	return (int)outlen;
}

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_';
}

/* One "hmac-sha256:NAME:SECRET" line (already trimmed) into k. */
static int parse_key_line(const char *p, size_t len, tld_key *k, const char **why)
{
	static const char alg[] = "hmac-sha256:";
	size_t alen = sizeof(alg) - 1;
	if (len < alen || strncasecmp(p, alg, alen) != 0) {
		*why = "expected hmac-sha256:NAME:BASE64SECRET (only hmac-sha256 is supported)";
		return TLD_ESYNTAX;
	}
	p += alen;
	len -= alen;
	const char *colon = memchr(p, ':', len);
	size_t nlen = colon != NULL ? (size_t)(colon - p) : len;
	if (colon == NULL || nlen == 0 || nlen > TLD_KEY_NAME_MAX) {
		*why = "the key name must be 1..64 characters followed by ':'";
		return TLD_ESYNTAX;
	}
	for (size_t i = 0; i < nlen; i++)
		if (!name_char(p[i])) {
			*why = "the key name may hold only letters, digits, '.', '-' and '_'";
			return TLD_ESYNTAX;
		}
	memcpy(k->name, p, nlen);
	k->name[nlen] = 0;
	k->name_len = (uint8_t)nlen;
	int n = tld_base64_decode(colon + 1, len - nlen - 1, k->secret, sizeof(k->secret));
	if (n < 0) {
		*why = n == TLD_ESPACE ? "the secret is longer than 128 bytes"
		                       : "the secret is not valid base64";
		return TLD_ESYNTAX;
	}
	if (n < TLD_KEY_SECRET_MIN) {
		*why = "the secret is shorter than 16 bytes";
		return TLD_ESYNTAX;
	}
	k->secret_len = (size_t)n;
	return TLD_OK;
}

static void trim(const char **p, size_t *len)
{
	while (*len > 0 && (**p == ' ' || **p == '\t'))
		(*p)++, (*len)--;
	while (*len > 0 &&
	       ((*p)[*len - 1] == ' ' || (*p)[*len - 1] == '\t' || (*p)[*len - 1] == '\r'))
		(*len)--;
}

static int add_line(tld_keyring *kr, const char *p, size_t len, const char *name, unsigned line,
                    tld_errbuf *eb)
{
	trim(&p, &len);
	if (len == 0 || p[0] == '#')
		return TLD_OK;
	if (kr->count == TLD_KEYS_MAX)
		return tld_errf(eb, TLD_ESYNTAX, "%s:%u: more than %d keys", name, line,
		                TLD_KEYS_MAX);
	tld_key *k = &kr->keys[kr->count];
	const char *why = "";
	if (parse_key_line(p, len, k, &why) < 0) {
		OPENSSL_cleanse(k, sizeof(*k));
		return tld_errf(eb, TLD_ESYNTAX, "%s:%u: %s", name, line, why);
	}
	if (tld_keyring_find(kr, k->name, k->name_len) != NULL) {
		OPENSSL_cleanse(k, sizeof(*k));
		return tld_errf(eb, TLD_ESYNTAX, "%s:%u: key name given twice", name, line);
	}
	kr->count++;
	return TLD_OK;
}

int tld_keyring_parse(const char *text, size_t len, const char *name, tld_keyring *kr,
                      tld_errbuf *eb)
{
	memset(kr, 0, sizeof(*kr));
	unsigned line = 1;
	while (len > 0) {
		const char *nl = memchr(text, '\n', len);
		size_t llen = nl != NULL ? (size_t)(nl - text) : len;
		int err = add_line(kr, text, llen, name, line, eb);
		if (err < 0) {
			tld_keyring_clear(kr);
			return err;
		}
		if (nl == NULL)
			break;
		text = nl + 1;
		len -= llen + 1;
		line++;
	}
	if (kr->count == 0)
		return tld_errf(eb, TLD_EINVAL,
		                "%s: no key (expected hmac-sha256:NAME:BASE64SECRET)", name);
	return TLD_OK;
}

int tld_keyring_load(const char *path, tld_keyring *kr, tld_errbuf *eb)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return tld_errf(eb, TLD_EIO, "%s: %s", path, strerror(errno));
	struct stat sb;
	bool world = fstat(fileno(f), &sb) == 0 && (sb.st_mode & S_IROTH) != 0;
	char *buf = malloc(KEYFILE_MAX);
	if (buf == NULL) {
		fclose(f);
		return tld_errf(eb, TLD_ENOMEM, "out of memory");
	}
	size_t n = fread(buf, 1, KEYFILE_MAX, f);
	bool bad = ferror(f) != 0 || n == KEYFILE_MAX;
	fclose(f);
	int err = bad ? tld_errf(eb, TLD_EIO, "%s: read error or larger than 1 MiB", path)
	              : tld_keyring_parse(buf, n, path, kr, eb);
	OPENSSL_cleanse(buf, n);
	free(buf);
	if (err == 0)
		kr->world_readable = world;
	return err;
}

const tld_key *tld_keyring_find(const tld_keyring *kr, const char *name, size_t len)
{
	for (unsigned i = 0; i < kr->count; i++)
		if (kr->keys[i].name_len == len && memcmp(kr->keys[i].name, name, len) == 0)
			return &kr->keys[i];
	return NULL;
}

void tld_keyring_clear(tld_keyring *kr)
{
	OPENSSL_cleanse(kr, sizeof(*kr));
	kr->count = 0;
}
