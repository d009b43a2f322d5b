/* keyfile.h - named HMAC-SHA256 keys shared by a primary and its replicas, read from a key file. */
#ifndef TLD_KEYFILE_H
#define TLD_KEYFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../node/common/err.h"

/*
 * A key file holds one key per line in dig -y form,
 *
 *   hmac-sha256:NAME:BASE64SECRET
 *
 * with blank lines and lines starting with '#' ignored. NAME is 1..64
 * characters among letters, digits, '.', '-' and '_'; the secret is 16..128
 * bytes. Several keys make a keyring (for rotation): messages are sent with
 * the first key and accepted with any key of the file. A file that others
 * may read is accepted, but flagged (world_readable) so the caller can warn.
 */

#define TLD_KEY_NAME_MAX   64
#define TLD_KEY_SECRET_MIN 16
#define TLD_KEY_SECRET_MAX 128
#define TLD_KEYS_MAX       16

typedef struct tld_key {
	char name[TLD_KEY_NAME_MAX + 1];
	uint8_t name_len;
	uint8_t secret[TLD_KEY_SECRET_MAX];
	size_t secret_len;
} tld_key;

typedef struct tld_keyring {
	tld_key keys[TLD_KEYS_MAX];
	unsigned count;
	bool world_readable; /* the file's mode lets anyone read it */
} tld_keyring;

/* Reads the key file at path into kr. Errors: TLD_EIO (cannot read),
 * TLD_ESYNTAX (with "path:line: why" in eb), TLD_EINVAL (no key in the
 * file). eb may be NULL. */
int tld_keyring_load(const char *path, tld_keyring *kr, tld_errbuf *eb);

/* Parses key file text (what tld_keyring_load reads); name is used in
 * messages. Same errors but TLD_EIO. */
int tld_keyring_parse(const char *text, size_t len, const char *name, tld_keyring *kr,
                      tld_errbuf *eb);

/* The key called name (len bytes), or NULL. */
const tld_key *tld_keyring_find(const tld_keyring *kr, const char *name, size_t len);

/* Wipes the secrets. */
void tld_keyring_clear(tld_keyring *kr);

/* Decodes standard base64 (with '=' padding, no whitespace) into out (at most
 * cap bytes). Returns the decoded length, TLD_ESYNTAX or TLD_ESPACE. */
int tld_base64_decode(const char *text, size_t len, uint8_t *out, size_t cap);

#endif
