/* test_name.c - unit tests of node/dns/name.c: checks, canonical order, store keys, text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "dns/name.h"

/* Wire names as C literals: the literal's terminating NUL is the root label. */
#define N(lit) ((const uint8_t *)(lit))

/* ---- helpers ---- */

/* Builds a wire name from label lengths, filling label i with byte fill[i]. */
static size_t build_name(uint8_t *out, const int *lens, int n, uint8_t fill)
{
	size_t o = 0;
	for (int i = 0; i < n; i++) {
		out[o++] = (uint8_t)lens[i];
		memset(out + o, fill, (size_t)lens[i]);
		o += (size_t)lens[i];
	}
	out[o++] = 0;
	return o;
}

static int sign(int v)
{
	return (v > 0) - (v < 0);
}

static uint8_t ascii_lower(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

/* Labels of a wire name, leftmost first. */
struct labels {
	int n;
	const uint8_t *l[TLD_LABELS_MAX];
};

static void split(const uint8_t *name, struct labels *ls)
{
	ls->n = 0;
	for (const uint8_t *p = name; *p != 0; p += 1 + *p)
		ls->l[ls->n++] = p;
}

/* Reference canonical order (RFC 4034 6.1), written independently of name.c:
 * labels compared right to left as lower-cased unsigned octet strings, where
 * a label that is a prefix of another sorts first; fewer labels sort first. */
static int ref_cmp(const uint8_t *a, const uint8_t *b)
{
	struct labels la, lb;
	split(a, &la);
	split(b, &lb);
	for (int i = la.n - 1, j = lb.n - 1; i >= 0 && j >= 0; i--, j--) {
		const uint8_t *x = la.l[i], *y = lb.l[j];
		for (int k = 1; k <= x[0] && k <= y[0]; k++) {
			uint8_t cx = ascii_lower(x[k]), cy = ascii_lower(y[k]);
			if (cx != cy)
				return cx < cy ? -1 : 1;
		}
		if (x[0] != y[0])
			return x[0] < y[0] ? -1 : 1;
	}
	return la.n == lb.n ? 0 : (la.n < lb.n ? -1 : 1);
}

/* Order of two keys as LMDB's default comparator sees them. */
static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c != 0)
		return c;
	return alen == blen ? 0 : (alen < blen ? -1 : 1);
}

static size_t wire_len(const uint8_t *name)
{
	const uint8_t *p = name;
	while (*p != 0)
		p += 1 + *p;
	return (size_t)(p - name) + 1;
}

/* Deterministic xorshift64* generator, so failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t bound)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32) % bound;
}

/* Bytes that sit on the edges of the key mapping and of case folding. */
static const uint8_t special[] = {0x00, 0x01, '.',  0x3f, 0x40, 'A', 'B',  'Y',  'Z',
                                  0x5b, 0x5c, 0x60, 'a',  'b',  'y', 'z',  0x7b, 0x7f,
                                  0x80, 0xfe, 0xff, '*',  '-',  ' ', '\\', '"'};

static uint8_t rnd_byte(void)
{
	switch (rnd(4)) {
	case 0:
		return (uint8_t)rnd(256);
	case 1:
		return (uint8_t)("aAbB"[rnd(4)]); /* small alphabet: many shared prefixes */
	default:
		return special[rnd(sizeof(special))];
	}
}

/* Appends a random label of length len to name (wire length *wl), if it fits. */
static void add_label_front(uint8_t *name, size_t *wl, int len)
{
	if (*wl + 1 + (size_t)len > TLD_NAME_MAX)
		return;
	memmove(name + 1 + len, name, *wl);
	name[0] = (uint8_t)len;
	for (int i = 1; i <= len; i++)
		name[i] = rnd_byte();
	*wl += 1 + (size_t)len;
}

static int rnd_label_len(void)
{
	switch (rnd(8)) {
	case 0:
		return 1 + (int)rnd(TLD_LABEL_MAX);
	case 1:
		return TLD_LABEL_MAX;
	default:
		return 1 + (int)rnd(3);
	}
}

static void rnd_name(uint8_t *name)
{
	size_t wl = 1;
	name[0] = 0;
	int n = (int)rnd(6);
	if (rnd(10) == 0)
		n = 200; /* as many as fit */
	for (int i = 0; i < n; i++)
		add_label_front(name, &wl, rnd(4) == 0 ? 1 : rnd_label_len());
}

/* A name related to src: same with another case, one more label, one label
 * fewer, or one byte changed, so comparisons reach deep into both names. */
static void derive_name(uint8_t *name, const uint8_t *src)
{
	size_t wl = wire_len(src);
	memcpy(name, src, wl);
	struct labels ls;
	split(name, &ls);
	switch (rnd(4)) {
	case 0:
		for (size_t i = 0; i < wl; i++)
			if (rnd(2) && ((name[i] | 0x20) >= 'a' && (name[i] | 0x20) <= 'z'))
				name[i] ^= 0x20; /* length bytes (<= 63) are never letters */
		break;
	case 1:
		add_label_front(name, &wl, rnd_label_len());
		break;
	case 2:
		if (ls.n > 0)
			memmove(name, name + 1 + name[0], wl - 1 - name[0]);
		break;
	default:
		if (ls.n > 0) {
			const uint8_t *l = ls.l[rnd((uint32_t)ls.n)];
			name[(size_t)(l - name) + 1 + rnd(l[0])] = rnd_byte();
		}
		break;
	}
	assert_true(tld_name_check(name, TLD_NAME_MAX) > 0);
}

#define POOL 700

typedef uint8_t namebuf[TLD_NAME_MAX];

static namebuf *make_pool(void)
{
	namebuf *pool = calloc(POOL, TLD_NAME_MAX);
	assert_non_null(pool);
	for (int i = 0; i < POOL; i++) {
		if (i < 50 || rnd(3) == 0)
			rnd_name(pool[i]);
		else
			derive_name(pool[i], pool[rnd((uint32_t)i)]);
		int len = tld_name_check(pool[i], TLD_NAME_MAX);
		assert_true(len > 0);
		assert_int_equal((size_t)len, wire_len(pool[i]));
	}
	return pool;
}

/* ---- tld_name_check ---- */

static void test_check_valid(void **state)
{
	assert_int_equal(tld_name_check(N(""), 1), 1);
	assert_int_equal(tld_name_check(N("\7example"), 9), 9);
	assert_int_equal(tld_name_check(N("\3www\7example"), 13), 13);
	/* buflen larger than the name: the name's own length is returned */
	assert_int_equal(tld_name_check(N("\3com\0garbage"), 13), 5);
	/* any byte is allowed inside a label */
	assert_int_equal(tld_name_check(N("\3\0.\377\1@"), 7), 7);
}

static void test_check_truncated(void **state)
{
	assert_int_equal(tld_name_check(N(""), 0), TLD_ENAME);
	assert_int_equal(tld_name_check(N("\7example"), 8), TLD_ENAME); /* no root label */
	assert_int_equal(tld_name_check(N("\7example"), 5), TLD_ENAME); /* label cut */
	assert_int_equal(tld_name_check(N("\7example"), 1), TLD_ENAME);
	assert_int_equal(tld_name_check(N("\3www\7example"), 12), TLD_ENAME);
}

static void test_check_label_max(void **state)
{
	uint8_t buf[300];
	int lens[1] = {63};
	size_t len = build_name(buf, lens, 1, 'a');
	assert_int_equal(tld_name_check(buf, sizeof(buf)), (int)len);
	lens[0] = 64;
	build_name(buf, lens, 1, 'a');
	assert_int_equal(tld_name_check(buf, sizeof(buf)), TLD_ENAME);
	/* a too-long label after a good one */
	int lens2[2] = {3, 64};
	build_name(buf, lens2, 2, 'b');
	assert_int_equal(tld_name_check(buf, sizeof(buf)), TLD_ENAME);
}

static void test_check_pointer(void **state)
{
	static const uint8_t ptr[] = {0xc0, 0x0c};
	static const uint8_t after[] = {1, 'a', 0xc0, 0x00};
	static const uint8_t ext[] = {0x41, 'a', 0}; /* extended label type 01 */
	static const uint8_t ptr_hi[] = {0xff, 0xff, 0};
	assert_int_equal(tld_name_check(ptr, sizeof(ptr)), TLD_ENAME);
	assert_int_equal(tld_name_check(after, sizeof(after)), TLD_ENAME);
	assert_int_equal(tld_name_check(ext, sizeof(ext)), TLD_ENAME);
	assert_int_equal(tld_name_check(ptr_hi, sizeof(ptr_hi)), TLD_ENAME);
}

static void test_check_name_max(void **state)
{
	uint8_t buf[512];
	int exact[4] = {63, 63, 63, 61}; /* 64 + 64 + 64 + 62 + 1 = 255 */
	assert_int_equal(build_name(buf, exact, 4, 'x'), 255);
	assert_int_equal(tld_name_check(buf, sizeof(buf)), 255);
	assert_int_equal(tld_name_check(buf, 255), 255);
	assert_int_equal(tld_name_check(buf, 254), TLD_ENAME);

	int over[4] = {63, 63, 63, 62}; /* 256 */
	assert_int_equal(build_name(buf, over, 4, 'x'), 256);
	assert_int_equal(tld_name_check(buf, sizeof(buf)), TLD_ENAME);

	/* 127 one-byte labels = 255, 128 = 257 */
	int ones[128];
	for (int i = 0; i < 128; i++)
		ones[i] = 1;
	assert_int_equal(build_name(buf, ones, 127, 'o'), 255);
	assert_int_equal(tld_name_check(buf, sizeof(buf)), 255);
	assert_int_equal(tld_name_labels(buf), 127);
	build_name(buf, ones, 128, 'o');
	assert_int_equal(tld_name_check(buf, sizeof(buf)), TLD_ENAME);
}

static void test_len_labels(void **state)
{
	assert_int_equal(tld_name_len(N("")), 1);
	assert_int_equal(tld_name_labels(N("")), 0);
	assert_int_equal(tld_name_len(N("\3com")), 5);
	assert_int_equal(tld_name_labels(N("\3com")), 1);
	assert_int_equal(tld_name_len(N("\1a\2bb\3ccc")), 10);
	assert_int_equal(tld_name_labels(N("\1a\2bb\3ccc")), 3);
}

/* ---- equality and order ---- */

static void test_equal(void **state)
{
	assert_true(tld_name_equal(N(""), N("")));
	assert_true(tld_name_equal(N("\7example"), N("\7EXAMPLE")));
	assert_true(tld_name_equal(N("\3WwW\7eXaMpLe"), N("\3www\7example")));
	assert_false(tld_name_equal(N("\7example"), N("\7exampld")));
	assert_false(tld_name_equal(N("\7example"), N("")));
	assert_false(tld_name_equal(N("\1a\7example"), N("\7example")));
	/* same bytes, different label structure */
	assert_false(tld_name_equal(N("\2ab\1c"), N("\1a\2bc")));
	/* only ASCII letters fold: '@'/'`', '['/'{', 0xC4/0xE4 differ */
	assert_false(tld_name_equal(N("\1@"), N("\1`")));
	assert_false(tld_name_equal(N("\1["), N("\1{")));
	assert_false(tld_name_equal(N("\1\304"), N("\1\344")));
	/* bytes after a label's 0x00 still count */
	assert_false(tld_name_equal(N("\2\0a"), N("\2\0b")));
	assert_true(tld_name_equal(N("\2\0a"), N("\2\0A")));
}

static void test_cmp_basic(void **state)
{
	assert_int_equal(tld_name_cmp(N("\7example"), N("\7EXAMPLE")), 0);
	assert_int_equal(tld_name_cmp(N(""), N("")), 0);
	assert_true(tld_name_cmp(N(""), N("\3com")) < 0);
	assert_true(tld_name_cmp(N("\3com"), N("")) > 0);
	assert_true(tld_name_cmp(N("\3com"), N("\3net")) < 0);
	assert_true(tld_name_cmp(N("\3zzz\3com"), N("\3aaa\3net")) < 0); /* right to left */
	assert_true(tld_name_cmp(N("\1a\3com"), N("\2aa\3com")) < 0);    /* prefix first */
	assert_true(tld_name_cmp(N("\1b\3com"), N("\2aa\3com")) > 0);
	/* folding comes first: 'Z' compares as 'z' (0x7a), above '_' (0x5f) */
	assert_true(tld_name_cmp(N("\1Z"), N("\1_")) > 0);
	/* unsigned octets */
	assert_true(tld_name_cmp(N("\1\177"), N("\1\200")) < 0);
	assert_true(tld_name_cmp(N("\1\0"), N("\1\1")) < 0);
}

/* RFC 4034 section 6.1, in canonical order. */
static const char *const rfc4034_text[] = {
    "example.",   "a.example.",       "yljkjljk.a.example.", "Z.a.example.",     "zABC.a.EXAMPLE.",
    "z.example.", "\\001.z.example.", "*.z.example.",        "\\200.z.example.",
};
#define RFC_N (sizeof(rfc4034_text) / sizeof(rfc4034_text[0]))

static int qsort_cmp(const void *a, const void *b)
{
	return tld_name_cmp(*(const uint8_t *const *)a, *(const uint8_t *const *)b);
}

static void test_cmp_rfc4034(void **state)
{
	static uint8_t wire[RFC_N][TLD_NAME_MAX];
	const uint8_t *shuffled[RFC_N];
	uint8_t keys[RFC_N][TLD_KEY_MAX];
	size_t klen[RFC_N];
	for (size_t i = 0; i < RFC_N; i++) {
		assert_true(tld_name_from_text(rfc4034_text[i], wire[i]) > 0);
		klen[i] = tld_name_key(wire[i], keys[i]);
	}
	for (size_t i = 0; i < RFC_N; i++) {
		assert_int_equal(tld_name_cmp(wire[i], wire[i]), 0);
		for (size_t j = i + 1; j < RFC_N; j++) {
			assert_true(tld_name_cmp(wire[i], wire[j]) < 0);
			assert_true(tld_name_cmp(wire[j], wire[i]) > 0);
			assert_true(key_cmp(keys[i], klen[i], keys[j], klen[j]) < 0);
		}
	}
	/* sorting a reversed list gives the RFC order */
	for (size_t i = 0; i < RFC_N; i++)
		shuffled[i] = wire[RFC_N - 1 - i];
	qsort(shuffled, RFC_N, sizeof(shuffled[0]), qsort_cmp);
	for (size_t i = 0; i < RFC_N; i++)
		assert_ptr_equal(shuffled[i], wire[i]);
}

/* ---- store keys ---- */

static void check_key(const uint8_t *name, const uint8_t *want, size_t wantlen)
{
	uint8_t key[TLD_KEY_MAX];
	size_t len = tld_name_key(name, key);
	assert_int_equal(len, wantlen);
	assert_memory_equal(key, want, wantlen);
}

static void test_key_examples(void **state)
{
	uint8_t key[TLD_KEY_MAX];
	assert_int_equal(tld_name_key(N(""), key), 0);
	check_key(N("\7example"), N("example"), 8);
	check_key(N("\7EXAMPLE"), N("example"), 8);
	check_key(N("\1A\7example"), N("example\0a"), 10);
	/* 0x00 -> 0x01, '.' -> '/', '@' -> 'A', 0xff unchanged */
	check_key(N("\4\0.@\377"), N("\1/A\377"), 5);
}

static void test_key_name_decode(void **state)
{
	uint8_t name[TLD_NAME_MAX];
	assert_int_equal(tld_key_name(N(""), 0, name), 1);
	assert_int_equal(name[0], 0);
	assert_int_equal(tld_key_name(N("example\0a"), 10, name), 11);
	assert_memory_equal(name, N("\1a\7example"), 11);
	assert_int_equal(tld_key_name(N("\1/A\377"), 5, name), 6);
	assert_memory_equal(name, N("\4\0.@\377"), 6);
}

static void test_key_name_rejects(void **state)
{
	uint8_t name[TLD_NAME_MAX], key[300];
	/* not terminated */
	assert_int_equal(tld_key_name(N("example"), 7, name), TLD_ENAME);
	/* empty label */
	assert_int_equal(tld_key_name(N(""), 1, name), TLD_ENAME);
	assert_int_equal(tld_key_name(N("com\0\0"), 5, name), TLD_ENAME);
	/* bytes that no name maps to (folded upper case) */
	assert_int_equal(tld_key_name(N("B"), 2, name), TLD_ENAME);
	assert_int_equal(tld_key_name(N("Z"), 2, name), TLD_ENAME);
	/* 'A' (0x41) is the image of '@' and is fine */
	assert_int_equal(tld_key_name(N("A"), 2, name), 3);
	assert_memory_equal(name, N("\1@"), 3);
	/* label of 64 */
	memset(key, 'a', 64);
	key[64] = 0;
	assert_int_equal(tld_key_name(key, 65, name), TLD_ENAME);
	key[63] = 0;
	assert_int_equal(tld_key_name(key, 64, name), 65);
	/* too long: 255 bytes of key */
	memset(key, 'a', 255);
	for (int i = 10; i < 255; i += 11)
		key[i] = 0;
	key[254] = 0;
	assert_int_equal(tld_key_name(key, 255, name), TLD_ENAME);
	assert_int_equal(tld_key_name(key, 254, name), TLD_ENAME); /* 254 not a terminator */
}

/* For many random names with arbitrary bytes: tld_name_cmp agrees with the
 * reference comparator and with memcmp of the keys; keys decode back to the
 * lower-cased name and are one byte shorter than the wire form. */
static void test_random_order_and_keys(void **state)
{
	namebuf *pool = make_pool();
	static uint8_t keys[POOL][TLD_KEY_MAX];
	static size_t klen[POOL];
	for (int i = 0; i < POOL; i++) {
		size_t wl = wire_len(pool[i]);
		klen[i] = tld_name_key(pool[i], keys[i]);
		assert_int_equal(klen[i], wl - 1);
		for (size_t k = 0; k < klen[i]; k++)
			assert_false(keys[i][k] >= 0x42 && keys[i][k] <= 0x5a);

		uint8_t back[TLD_NAME_MAX], lower[TLD_NAME_MAX];
		memcpy(lower, pool[i], wl);
		tld_name_lower(lower);
		assert_int_equal(tld_key_name(keys[i], klen[i], back), (int)wl);
		assert_memory_equal(back, lower, wl);
	}
	int less = 0, equal = 0;
	for (int i = 0; i < POOL; i++) {
		for (int j = 0; j < POOL; j++) {
			int want = ref_cmp(pool[i], pool[j]);
			int got = sign(tld_name_cmp(pool[i], pool[j]));
			if (got != want)
				fail_msg("tld_name_cmp(pool[%d], pool[%d]) = %d, want %d", i, j,
				         got, want);
			assert_int_equal(sign(key_cmp(keys[i], klen[i], keys[j], klen[j])), want);
			assert_int_equal(tld_name_equal(pool[i], pool[j]), want == 0);
			less += want < 0;
			equal += want == 0 && i != j;
		}
	}
	/* the generator must produce ties and deep comparisons, or this proves little */
	assert_true(equal > 0);
	assert_true(less > POOL);
	free(pool);
}

/* ---- hierarchy ---- */

static void test_is_below(void **state)
{
	assert_true(tld_name_is_below(N("\1a\7example"), N("\7example")));
	assert_true(tld_name_is_below(N("\1b\1a\7example"), N("\7example")));
	assert_true(tld_name_is_below(N("\7example"), N("\7example")));
	assert_true(tld_name_is_below(N("\1A\7EXAMPLE"), N("\7example")));
	assert_true(tld_name_is_below(N("\7example"), N("")));
	assert_true(tld_name_is_below(N(""), N("")));
	assert_false(tld_name_is_below(N("\7example"), N("\1a\7example")));
	assert_false(tld_name_is_below(N(""), N("\7example")));
	assert_false(tld_name_is_below(N("\10xexample"), N("\7example"))); /* label boundary */
	assert_false(tld_name_is_below(N("\7example\3com"), N("\7example")));
	assert_false(tld_name_is_below(N("\1a\7example"), N("\1b\7example")));
}

static void test_suffix(void **state)
{
	const uint8_t *n = N("\1a\2bb\3ccc");
	assert_ptr_equal(tld_name_suffix(n, 3), n);
	assert_ptr_equal(tld_name_suffix(n, 2), n + 2);
	assert_ptr_equal(tld_name_suffix(n, 1), n + 5);
	assert_ptr_equal(tld_name_suffix(n, 0), n + 9);
	assert_int_equal(*tld_name_suffix(n, 0), 0);
	assert_ptr_equal(tld_name_suffix(N(""), 0), N(""));
}

static void test_lower(void **state)
{
	uint8_t n[] = "\3AbC\1Z\2\304@";
	tld_name_lower(n);
	assert_memory_equal(n, N("\3abc\1z\2\304@"), sizeof(n));
}

/* ---- text ---- */

static void check_to_text(const uint8_t *name, const char *want)
{
	char buf[TLD_NAME_TXTMAX];
	int len = tld_name_to_text(name, buf, sizeof(buf));
	assert_int_equal(len, (int)strlen(want));
	assert_string_equal(buf, want);
}

static void test_to_text(void **state)
{
	check_to_text(N(""), ".");
	check_to_text(N("\7example"), "example.");
	check_to_text(N("\3WwW\7Example"), "WwW.Example.");
	check_to_text(N("\3a.b\7example"), "a\\.b.example.");
	check_to_text(N("\1\\"), "\\\\.");
	check_to_text(N("\1\0"), "\\000.");
	check_to_text(N("\3a b"), "a\\032b.");
	check_to_text(N("\1\377\1\177"), "\\255.\\127.");
	check_to_text(N("\1*\7example"), "*.example.");
	check_to_text(N("\2a*"), "a\\*.");
	check_to_text(N("\3_-9"), "_-9.");
	check_to_text(N("\1\""), "\\\".");
}

static void test_to_text_space(void **state)
{
	char buf[16];
	assert_int_equal(tld_name_to_text(N("\7example"), buf, 0), TLD_ESPACE);
	assert_int_equal(tld_name_to_text(N("\7example"), buf, 8), TLD_ESPACE);
	assert_int_equal(tld_name_to_text(N("\7example"), buf, 9), 8);
	assert_int_equal(tld_name_to_text(N(""), buf, 1), TLD_ESPACE);
	assert_int_equal(tld_name_to_text(N(""), buf, 2), 1);
	assert_int_equal(tld_name_to_text(N("\1\0"), buf, 5), TLD_ESPACE);

	/* worst case: every byte escaped as \DDD fits TLD_NAME_TXTMAX */
	uint8_t name[TLD_NAME_MAX];
	int lens[4] = {63, 63, 63, 61};
	build_name(name, lens, 4, 0x00);
	char big[TLD_NAME_TXTMAX];
	assert_int_equal(tld_name_to_text(name, big, sizeof(big)), 250 * 4 + 4);
}

static void check_from_text(const char *text, const uint8_t *want, size_t wantlen)
{
	uint8_t out[TLD_NAME_MAX];
	int len = tld_name_from_text(text, out);
	if (len != (int)wantlen)
		fail_msg("tld_name_from_text(\"%s\") = %d, want %zu", text, len, wantlen);
	assert_memory_equal(out, want, wantlen);
}

static void test_from_text(void **state)
{
	check_from_text(".", N(""), 1);
	check_from_text("example.", N("\7example"), 9);
	check_from_text("example", N("\7example"), 9);
	check_from_text("WWW.Example.", N("\3WWW\7Example"), 13);
	check_from_text("\\065bc", N("\3Abc"), 5);
	check_from_text("\\000.", N("\1\0"), 3);
	check_from_text("a\\.b.c.", N("\3a.b\1c"), 7);
	check_from_text("\\\\.", N("\1\\"), 3);
	check_from_text("\\255\\128", N("\2\377\200"), 4);
	check_from_text("*.example.", N("\1*\7example"), 11);
	check_from_text("a\\ b", N("\3a b"), 5);
}

static void check_from_text_fails(const char *text)
{
	uint8_t out[TLD_NAME_MAX];
	int rc = tld_name_from_text(text, out);
	if (rc != TLD_ENAME)
		fail_msg("tld_name_from_text(\"%s\") = %d, want TLD_ENAME", text, rc);
}

/* Text of labels of the given lengths, all 'a'. */
static void label_text(char *buf, const int *lens, int n)
{
	char *p = buf;
	for (int i = 0; i < n; i++) {
		memset(p, 'a', (size_t)lens[i]);
		p += lens[i];
		*p++ = '.';
	}
	*p = 0;
}

static void test_from_text_rejects(void **state)
{
	check_from_text_fails("");
	check_from_text_fails("a..b");
	check_from_text_fails("..");
	check_from_text_fails(".a");
	check_from_text_fails("a..");
	check_from_text_fails("\\");
	check_from_text_fails("a\\");
	check_from_text_fails("\\1");
	check_from_text_fails("\\12");
	check_from_text_fails("\\12x");
	check_from_text_fails("\\256");
	check_from_text_fails("\\999");

	char text[600];
	uint8_t out[TLD_NAME_MAX];
	int l63[1] = {63}, l64[1] = {64};
	label_text(text, l63, 1);
	assert_int_equal(tld_name_from_text(text, out), 65);
	label_text(text, l64, 1);
	check_from_text_fails(text);
	/* 64 via escapes */
	text[0] = 0;
	for (int i = 0; i < 64; i++)
		strcat(text, "\\097");
	check_from_text_fails(text);
	text[strlen(text) - 4] = 0;
	assert_int_equal(tld_name_from_text(text, out), 65);

	int l255[4] = {63, 63, 63, 61}, l256[4] = {63, 63, 63, 62};
	label_text(text, l255, 4);
	assert_int_equal(tld_name_from_text(text, out), 255);
	text[strlen(text) - 1] = 0; /* relative form: same name */
	assert_int_equal(tld_name_from_text(text, out), 255);
	label_text(text, l256, 4);
	check_from_text_fails(text);
	text[strlen(text) - 1] = 0;
	check_from_text_fails(text);
	int l5x[5] = {63, 63, 63, 61, 1}; /* a label more after exactly 255 */
	label_text(text, l5x, 5);
	check_from_text_fails(text);
}

/* to_text then from_text gives back the exact bytes, case included. */
static void test_text_roundtrip_random(void **state)
{
	namebuf *pool = make_pool();
	for (int i = 0; i < POOL; i++) {
		char text[TLD_NAME_TXTMAX];
		uint8_t back[TLD_NAME_MAX];
		size_t wl = wire_len(pool[i]);
		int tl = tld_name_to_text(pool[i], text, sizeof(text));
		assert_true(tl > 0);
		assert_int_equal((size_t)tl, strlen(text));
		int bl = tld_name_from_text(text, back);
		if (bl != (int)wl)
			fail_msg("round trip of \"%s\": %d bytes, want %zu", text, bl, wl);
		assert_memory_equal(back, pool[i], wl);
	}
	free(pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_check_valid),
	    cmocka_unit_test(test_check_truncated),
	    cmocka_unit_test(test_check_label_max),
	    cmocka_unit_test(test_check_pointer),
	    cmocka_unit_test(test_check_name_max),
	    cmocka_unit_test(test_len_labels),
	    cmocka_unit_test(test_equal),
	    cmocka_unit_test(test_cmp_basic),
	    cmocka_unit_test(test_cmp_rfc4034),
	    cmocka_unit_test(test_key_examples),
	    cmocka_unit_test(test_key_name_decode),
	    cmocka_unit_test(test_key_name_rejects),
	    cmocka_unit_test(test_random_order_and_keys),
	    cmocka_unit_test(test_is_below),
	    cmocka_unit_test(test_suffix),
	    cmocka_unit_test(test_lower),
	    cmocka_unit_test(test_to_text),
	    cmocka_unit_test(test_to_text_space),
	    cmocka_unit_test(test_from_text),
	    cmocka_unit_test(test_from_text_rejects),
	    cmocka_unit_test(test_text_roundtrip_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
