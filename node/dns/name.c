/* name.c - domain names in uncompressed wire form: checks, comparison, store keys, text. */
#include "name.h"

#include "../common/err.h"

#include <stdio.h>
#include <string.h>

static inline uint8_t fold(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

/* Byte mapping of store keys: see the header. */
static inline uint8_t key_byte(uint8_t c)
{
	c = fold(c);
	return c <= 0x40 ? (uint8_t)(c + 1) : c;
}

static inline int key_unbyte(uint8_t k)
{
	if (k == 0 || (k >= 0x42 && k <= 0x5a))
		return -1;
	return k <= 0x41 ? k - 1 : k;
}

int tld_name_check(const uint8_t *buf, size_t buflen)
{
	size_t pos = 0;
	for (;;) {
		if (pos >= buflen)
			return TLD_ENAME;
		uint8_t len = buf[pos];
		if (len == 0)
			break;
		if (len > TLD_LABEL_MAX)
			return TLD_ENAME;
		pos += 1 + (size_t)len;
		if (pos >= TLD_NAME_MAX)
			return TLD_ENAME;
	}
	return (int)pos + 1;
}

size_t tld_name_len(const uint8_t *name)
{
	const uint8_t *p = name;
	while (*p != 0)
		p += 1 + *p;
	return (size_t)(p - name) + 1;
}

int tld_name_labels(const uint8_t *name)
{
	int n = 0;
	for (const uint8_t *p = name; *p != 0; p += 1 + *p)
		n++;
	return n;
}

bool tld_name_equal(const uint8_t *a, const uint8_t *b)
{
	for (;;) {
		if (*a != *b)
			return false;
		uint8_t len = *a;
		if (len == 0)
			return true;
		for (uint8_t i = 1; i <= len; i++)
			if (fold(a[i]) != fold(b[i]))
				return false;
		a += 1 + len;
		b += 1 + len;
	}
}

/* Offsets of the labels of name, leftmost first; returns the label count. */
static int label_offsets(const uint8_t *name, uint8_t off[TLD_LABELS_MAX])
{
	int n = 0;
	for (const uint8_t *p = name; *p != 0; p += 1 + *p)
		off[n++] = (uint8_t)(p - name);
	return n;
}

int tld_name_cmp(const uint8_t *a, const uint8_t *b)
{
	uint8_t oa[TLD_LABELS_MAX], ob[TLD_LABELS_MAX];
	int na = label_offsets(a, oa), nb = label_offsets(b, ob);
	for (int i = na - 1, j = nb - 1; i >= 0 && j >= 0; i--, j--) {
		const uint8_t *la = a + oa[i], *lb = b + ob[j];
		int n = la[0] < lb[0] ? la[0] : lb[0];
		for (int k = 1; k <= n; k++) {
			int d = fold(la[k]) - fold(lb[k]);
			if (d != 0)
				return d;
		}
		if (la[0] != lb[0])
			return la[0] - lb[0];
	}
	return na - nb;
}

const uint8_t *tld_name_suffix(const uint8_t *name, int keep)
{
	int skip = tld_name_labels(name) - keep;
	while (skip-- > 0)
		name += 1 + *name;
	return name;
}

bool tld_name_is_below(const uint8_t *name, const uint8_t *parent)
{
	int n = tld_name_labels(name), p = tld_name_labels(parent);
	if (n < p)
		return false;
	return tld_name_equal(tld_name_suffix(name, p), parent);
}

void tld_name_lower(uint8_t *name)
{
	for (uint8_t *p = name; *p != 0; p += 1 + *p)
		for (uint8_t i = 1; i <= *p; i++)
			p[i] = fold(p[i]);
}

size_t tld_name_key(const uint8_t *name, uint8_t *key)
{
	uint8_t off[TLD_LABELS_MAX];
	int n = label_offsets(name, off);
	size_t k = 0;
	for (int i = n - 1; i >= 0; i--) {
		const uint8_t *l = name + off[i];
		for (uint8_t j = 1; j <= l[0]; j++)
			key[k++] = key_byte(l[j]);
		key[k++] = 0;
	}
	return k;
}

int tld_key_name(const uint8_t *key, size_t keylen, uint8_t *name)
{
	if (keylen > TLD_KEY_MAX || (keylen > 0 && key[keylen - 1] != 0))
		return TLD_ENAME;
	/* Labels come rightmost first; write them from the end of the name. */
	size_t pos = keylen + 1; /* wire length */
	name[--pos] = 0;
	size_t i = 0;
	while (i < keylen) {
		size_t start = i;
		while (key[i] != 0)
			i++;
		size_t len = i - start;
		if (len == 0 || len > TLD_LABEL_MAX)
			return TLD_ENAME;
		pos -= len + 1;
		name[pos] = (uint8_t)len;
		for (size_t j = 0; j < len; j++) {
			int c = key_unbyte(key[start + j]);
			if (c < 0)
				return TLD_ENAME;
			name[pos + 1 + j] = (uint8_t)c;
		}
		i++;
	}
	return (int)keylen + 1;
}

static bool plain_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

int tld_name_to_text(const uint8_t *name, char *buf, size_t buflen)
{
	size_t o = 0;
#define PUT(...)                                                                                   \
	do {                                                                                       \
		int w = snprintf(buf + o, buflen - o, __VA_ARGS__);                                \
		if (w < 0 || (size_t)w >= buflen - o)                                              \
			return TLD_ESPACE;                                                         \
		o += (size_t)w;                                                                    \
	} while (0)
	if (buflen == 0)
		return TLD_ESPACE;
	buf[0] = 0;
	if (name[0] == 0)
		PUT(".");
	for (const uint8_t *p = name; *p != 0; p += 1 + *p) {
		bool star = (p[0] == 1 && p[1] == '*');
		for (uint8_t i = 1; i <= p[0]; i++) {
			uint8_t c = p[i];
			if (plain_char(c) || star)
				PUT("%c", c);
			else if (c > 0x20 && c < 0x7f)
				PUT("\\%c", c);
			else
				PUT("\\%03u", c);
		}
		PUT(".");
	}
#undef PUT
	return (int)o;
}

int tld_name_from_text(const char *text, uint8_t *out)
{
	size_t o = 0; /* position of the current label's length byte */
	size_t len = 0;
	const char *s = text;
	if (strcmp(text, ".") == 0) {
		out[0] = 0;
		return 1;
	}
	if (*s == 0)
		return TLD_ENAME;
	while (*s != 0) {
		if (*s == '.') {
			if (len == 0)
				return TLD_ENAME;
			out[o] = (uint8_t)len;
			o += len + 1;
			len = 0;
			s++;
			continue;
		}
		unsigned c = (unsigned char)*s++;
		if (c == '\\') {
			if (s[0] >= '0' && s[0] <= '9') {
				if (!(s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9'))
					return TLD_ENAME;
				c = (unsigned)((s[0] - '0') * 100 + (s[1] - '0') * 10 +
				               (s[2] - '0'));
				if (c > 255)
					return TLD_ENAME;
				s += 3;
			} else if (*s != 0) {
				c = (unsigned char)*s++;
			} else {
				return TLD_ENAME;
			}
		}
		if (len >= TLD_LABEL_MAX || o + len + 2 >= TLD_NAME_MAX)
			return TLD_ENAME;
		out[o + 1 + len++] = (uint8_t)c;
	}
	if (len > 0) {
		out[o] = (uint8_t)len;
		o += len + 1;
	}
	out[o] = 0;
	return (int)o + 1;
}
