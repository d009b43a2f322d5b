/* name.h - domain names in uncompressed wire form: checks, comparison, store keys, text. */
#ifndef TLD_NAME_H
#define TLD_NAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A "name" here is always an uncompressed wire-format domain name: a sequence
 * of length-prefixed labels ending with the zero-length root label. Labels may
 * hold any byte, including 0x00 and '.'. Nothing in this module allocates or
 * touches server state; every function is safe on hostile input as long as the
 * stated buffer lengths are honest.
 *
 * Store keys. tld_name_key() maps a name to a byte string whose memcmp()
 * order is the DNSSEC canonical order of RFC 4034 section 6.1: labels are
 * emitted from the rightmost, each followed by a 0x00 terminator; inside a
 * label, ASCII upper case is folded to lower case and every byte b <= 0x40 is
 * written as b + 1. The shift is order-preserving because the bytes 0x41..0x5a
 * (upper case letters) never occur after folding, and it keeps 0x00 free for
 * the terminator, so a key is exactly (wire length - 1) bytes and decodes
 * back to the (lower-cased) name. The root name has the empty key. Keys of the
 * names below a name N all start with N's key, and (canonical order) follow
 * it immediately.
 */

#define TLD_NAME_MAX    255 /* wire length, root label included */
#define TLD_LABEL_MAX   63
#define TLD_LABELS_MAX  128
#define TLD_KEY_MAX     254  /* key of a name: wire length - 1 */
#define TLD_NAME_TXTMAX 1024 /* text form, every byte escaped as \DDD, plus NUL */

/* Returns the wire length of the name at buf (at most buflen bytes are read),
 * or TLD_ENAME if it is truncated, has a label over 63 bytes, a compression
 * pointer, or is longer than 255 bytes. */
int tld_name_check(const uint8_t *buf, size_t buflen);

/* Wire length of a name already known to be valid. */
size_t tld_name_len(const uint8_t *name);

/* Number of labels, the root label not counted ("." = 0, "com." = 1). */
int tld_name_labels(const uint8_t *name);

/* Case-insensitive (ASCII only) equality of two valid names. */
bool tld_name_equal(const uint8_t *a, const uint8_t *b);

/* RFC 4034 canonical order of two valid names: <0, 0 or >0. */
int tld_name_cmp(const uint8_t *a, const uint8_t *b);

/* True when name equals parent or lies below it (case-insensitive). */
bool tld_name_is_below(const uint8_t *name, const uint8_t *parent);

/* Returns a pointer inside name to its suffix with `keep` labels (keep must
 * not exceed tld_name_labels(name)). */
const uint8_t *tld_name_suffix(const uint8_t *name, int keep);

/* Folds ASCII upper case to lower case in place. */
void tld_name_lower(uint8_t *name);

/* Writes the canonical store key of a valid name to key (TLD_KEY_MAX bytes
 * suffice) and returns its length. */
size_t tld_name_key(const uint8_t *name, uint8_t *key);

/* Decodes a key made by tld_name_key() into a (lower-case) wire name in name
 * (TLD_NAME_MAX bytes suffice). Returns the wire length, or TLD_ENAME if key
 * is not a well-formed key. */
int tld_key_name(const uint8_t *key, size_t keylen, uint8_t *name);

/* Presentation form (RFC 1035 5.1: "example.com.", "." for the root; bytes
 * outside letters, digits, '-', '_' and '*' (as a whole label) are escaped
 * as \DDD or \X). Returns the text length or TLD_ESPACE. */
int tld_name_to_text(const uint8_t *name, char *buf, size_t buflen);

/* Parses an absolute or relative presentation name (a missing final dot means
 * absolute, as on a command line; "@" is an ordinary label, not the origin). Escapes \X and \DDD
 * are honoured. Writes the wire form to out (TLD_NAME_MAX bytes) and returns
 * its length, or TLD_ENAME. */
int tld_name_from_text(const char *text, uint8_t *out);

#endif
