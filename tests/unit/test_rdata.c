/* test_rdata.c - unit tests for node/dns/rdata.c: RDATA layouts by type. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dns/rdata.h"
#include "dns/rrtype.h"

#define CHECK_RD(type, bytes) tld_rdata_check(type, (const uint8_t *)(bytes), sizeof(bytes) - 1)

static void test_names(void **state)
{
	(void)state;
	assert_int_equal(CHECK_RD(TLD_T_NS, "\2ns\3tld\0"), TLD_OK);
	assert_int_equal(CHECK_RD(TLD_T_NS, "\0"), TLD_OK);                   /* the root */
	assert_int_equal(CHECK_RD(TLD_T_NS, "\x0a\x0b\x0c\x0d"), TLD_ERDATA); /* label runs off */
	assert_int_equal(CHECK_RD(TLD_T_NS, "\2ns\3tld\0\0"), TLD_ERDATA);    /* a byte left over */
	assert_int_equal(CHECK_RD(TLD_T_NS, "\xc0\x0c"), TLD_ERDATA);         /* compressed */
	assert_int_equal(tld_rdata_check(TLD_T_NS, NULL, 0), TLD_ERDATA);     /* empty */
	assert_int_equal(CHECK_RD(TLD_T_CNAME, "\3www\0"), TLD_OK);
	assert_int_equal(CHECK_RD(TLD_T_CNAME, "\3ww"), TLD_ERDATA);
}

static void test_fixed_fields(void **state)
{
	(void)state;
	assert_int_equal(CHECK_RD(TLD_T_A, "\xc0\x00\x02\x01"), TLD_OK);
	assert_int_equal(CHECK_RD(TLD_T_A, "\xc0\x00\x02"), TLD_ERDATA);
	assert_int_equal(CHECK_RD(TLD_T_A, "\xc0\x00\x02\x01\x01"), TLD_ERDATA);
	assert_int_equal(CHECK_RD(TLD_T_MX, "\0\x0a\2mx\0"), TLD_OK);
	assert_int_equal(CHECK_RD(TLD_T_MX, "\0\x0a\0\xff\xff"), TLD_ERDATA);
	assert_int_equal(CHECK_RD(TLD_T_MX, "\0"), TLD_ERDATA);
	/* SOA: two names, then five 32-bit fields. */
	static const uint8_t soa[] = {2, 'n', 's', 0, 1, 'h', 0, 0, 0, 0, 1, 0, 0, 0,
	                              2, 0,   0,   0, 3, 0,   0, 0, 4, 0, 0, 0, 5};
	assert_int_equal(tld_rdata_check(TLD_T_SOA, soa, sizeof(soa)), TLD_OK);
	assert_int_equal(tld_rdata_check(TLD_T_SOA, soa, sizeof(soa) - 1), TLD_ERDATA);
}

static void test_rrsig_and_naptr(void **state)
{
	(void)state;
	uint8_t sig[18 + 5 + 4] = {0, 2, 13, 1};
	memcpy(sig + 18, "\3tld\0", 5); /* signer, then the signature */
	assert_int_equal(tld_rdata_check(TLD_T_RRSIG, sig, sizeof(sig)), TLD_OK);
	sig[18] = 60; /* the signer's label runs off the end */
	assert_int_equal(tld_rdata_check(TLD_T_RRSIG, sig, sizeof(sig)), TLD_ERDATA);
	/* NAPTR: order, preference, three character-strings, a name. */
	assert_int_equal(CHECK_RD(TLD_T_NAPTR, "\0\1\0\2\1U\7E2U+sip\0\0"), TLD_OK);
	assert_int_equal(CHECK_RD(TLD_T_NAPTR, "\0\1\0\2\1U\x30"), TLD_ERDATA);
}

static void test_structured_remainders(void **state)
{
	(void)state;
	/* character-strings filling the RDATA exactly */
	assert_int_equal(CHECK_RD(TLD_T_TXT, "\5hello\0\2ab"), TLD_OK);
	assert_int_equal(CHECK_RD(TLD_T_TXT, "\5AA"), TLD_ERDATA);
	assert_int_equal(tld_rdata_check(TLD_T_TXT, NULL, 0), TLD_ERDATA);
	assert_int_equal(CHECK_RD(13 /* HINFO */, "\3cpu\2os"), TLD_OK);
	assert_int_equal(CHECK_RD(13, "\3cpu\2os\1x"), TLD_ERDATA);
	/* NSEC: a name, then a type bitmap of increasing windows, no trailing zero */
	assert_int_equal(CHECK_RD(TLD_T_NSEC, "\1b\0\0\6\x40\x01\0\0\0\3"), TLD_OK);
	assert_int_equal(CHECK_RD(TLD_T_NSEC, "\1b\0\0\2\x40\0"), TLD_ERDATA);
	assert_int_equal(CHECK_RD(TLD_T_NSEC, "\1b\0\1\1\1\0\1\1"), TLD_ERDATA);
	assert_int_equal(CHECK_RD(TLD_T_NSEC, "\1b\0\0\x21"), TLD_ERDATA);
	/* NSEC3: algorithm, flags, iterations, salt, hash (1+ bytes), bitmap */
	assert_int_equal(CHECK_RD(TLD_T_NSEC3, "\1\1\0\0\2\xab\xcd\2\x11\x22\0\1\x40"), TLD_OK);
	assert_int_equal(CHECK_RD(TLD_T_NSEC3, "\1\0\0\0\5"), TLD_ERDATA);
	assert_int_equal(CHECK_RD(TLD_T_NSEC3, "\1\0\0\0\0\0"), TLD_ERDATA); /* no hash */
	/* NSEC3PARAM: exactly the salt its length announces */
	assert_int_equal(CHECK_RD(TLD_T_NSEC3PARAM, "\1\0\0\0\1\xaa"), TLD_OK);
	assert_int_equal(CHECK_RD(TLD_T_NSEC3PARAM, "\1\0\0\5"), TLD_ERDATA);
	assert_int_equal(CHECK_RD(TLD_T_NSEC3PARAM, "\1\0\0\0\1\xaa\xbb"), TLD_ERDATA);
	/* DS and DNSKEY need a digest or a key */
	assert_int_equal(CHECK_RD(TLD_T_DS, "\0\1\x08\1\xaa"), TLD_OK);
	assert_int_equal(CHECK_RD(TLD_T_DS, "\0\1\x08\1"), TLD_ERDATA);
	assert_int_equal(CHECK_RD(TLD_T_DNSKEY, "\1\1\3\x0d"), TLD_ERDATA);
	/* CAA: flags, a tag of 1..15 characters, the value */
	assert_int_equal(CHECK_RD(257, "\0\5issueca.example"), TLD_OK);
	assert_int_equal(CHECK_RD(257, "\0\0"), TLD_ERDATA);
	assert_int_equal(CHECK_RD(257, "\0\x10issue"), TLD_ERDATA);
}

static void test_free_form(void **state)
{
	(void)state;
	/* Unknown types have no layout to check beyond their length. */
	assert_int_equal(CHECK_RD(TLD_T_TXT, "\5hello"), TLD_OK);
	assert_int_equal(CHECK_RD(65534, "\x0a\x0b\x0c\x0d"), TLD_OK);
	assert_int_equal(tld_rdata_check(65534, NULL, 0), TLD_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),           cmocka_unit_test(test_fixed_fields),
	    cmocka_unit_test(test_rrsig_and_naptr), cmocka_unit_test(test_structured_remainders),
	    cmocka_unit_test(test_free_form),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
