/* test_cookie.c - unit tests of DNS Cookies (node/cookie.c) against RFC 9018 Appendix A. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "cookie.h"

static void unhex(const char *h, uint8_t *out)
{
	for (size_t i = 0; h[2 * i]; i++)
		sscanf(h + 2 * i, "%2hhx", &out[i]);
}

static struct sockaddr_in v4(const char *ip)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	inet_pton(AF_INET, ip, &sa.sin_addr);
	return sa;
}

static tld_cookie_secrets secrets(const char *current, const char *previous)
{
	tld_cookie_secrets s = {.enabled = true};
	unhex(current, s.current);
	if (previous != NULL) {
		unhex(previous, s.previous);
		s.has_previous = true;
	}
	return s;
}

#define SECRET "e5e973e5a6b2a43f48e7dc849e37bfcf"

/* RFC 9018 A.1 and A.2: the server cookies a server must make. */
static void test_rfc9018_vectors(void **state)
{
	tld_cookie_secrets s = secrets(SECRET, NULL);
	struct sockaddr_in c = v4("198.51.100.100");
	uint8_t client[8], want[24], out[24];
	unhex("2464c4abcf10c957", client);
	tld_cookie_make(&s, client, (struct sockaddr *)&c, 1559731985u, out);
	unhex("2464c4abcf10c957010000005cf79f111f8130c3eee29480", want);
	assert_memory_equal(out, want, 24);
	tld_cookie_make(&s, client, (struct sockaddr *)&c, 1559734385u, out);
	unhex("2464c4abcf10c957010000005cf7a871d4a564a1442aca77", want);
	assert_memory_equal(out, want, 24);
}

static void test_check(void **state)
{
	tld_cookie_secrets s = secrets(SECRET, NULL);
	struct sockaddr_in c = v4("198.51.100.100"), other = v4("198.51.100.101");
	uint8_t opt[24];
	unhex("2464c4abcf10c957010000005cf79f111f8130c3eee29480", opt);
	uint32_t t = 1559731985u;
	assert_int_equal(tld_cookie_check(&s, opt, 24, (struct sockaddr *)&c, t), TLD_COOKIE_VALID);
	assert_int_equal(tld_cookie_check(&s, opt, 24, (struct sockaddr *)&c, t + 3000),
	                 TLD_COOKIE_VALID);
	/* too old, from the future, another client, altered, client cookie only */
	assert_int_equal(tld_cookie_check(&s, opt, 24, (struct sockaddr *)&c, t + 3601),
	                 TLD_COOKIE_CLIENT);
	assert_int_equal(tld_cookie_check(&s, opt, 24, (struct sockaddr *)&c, t - 301),
	                 TLD_COOKIE_CLIENT);
	assert_int_equal(tld_cookie_check(&s, opt, 24, (struct sockaddr *)&other, t),
	                 TLD_COOKIE_CLIENT);
	opt[23] ^= 1;
	assert_int_equal(tld_cookie_check(&s, opt, 24, (struct sockaddr *)&c, t),
	                 TLD_COOKIE_CLIENT);
	assert_int_equal(tld_cookie_check(&s, opt, 8, (struct sockaddr *)&c, t), TLD_COOKIE_CLIENT);
	assert_int_equal(tld_cookie_check(&s, opt, 0, (struct sockaddr *)&c, t), TLD_COOKIE_NONE);
}

/* A cookie made with the previous secret stays valid during a rotation. */
static void test_rotation(void **state)
{
	tld_cookie_secrets old = secrets(SECRET, NULL);
	tld_cookie_secrets rotated = secrets("000102030405060708090a0b0c0d0e0f", SECRET);
	tld_cookie_secrets forgot = secrets("000102030405060708090a0b0c0d0e0f", NULL);
	struct sockaddr_in6 c6 = {.sin6_family = AF_INET6};
	inet_pton(AF_INET6, "2001:db8::53", &c6.sin6_addr);
	uint8_t client[8] = {1, 2, 3, 4, 5, 6, 7, 8}, opt[24];
	tld_cookie_make(&old, client, (struct sockaddr *)&c6, 1000000u, opt);
	assert_int_equal(tld_cookie_check(&rotated, opt, 24, (struct sockaddr *)&c6, 1000010u),
	                 TLD_COOKIE_VALID);
	assert_int_equal(tld_cookie_check(&forgot, opt, 24, (struct sockaddr *)&c6, 1000010u),
	                 TLD_COOKIE_CLIENT);
}

static void test_load(void **state)
{
	char path[] = "/tmp/cookie-test-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char good[] = "# current\n" SECRET "\n000102030405060708090a0b0c0d0e0f  # previous\n";
	assert_int_equal(write(fd, good, strlen(good)), (ssize_t)strlen(good));
	close(fd);
	tld_cookie_secrets s;
	tld_errbuf eb;
	assert_int_equal(tld_cookie_load(path, &s, &eb), 0);
	assert_true(s.enabled && s.has_previous);
	assert_int_equal(s.current[0], 0xe5);
	assert_int_equal(s.previous[15], 0x0f);
	FILE *f = fopen(path, "w");
	fputs("e5e973e5a6b2a43f48e7dc849e37bfc\n", f); /* 31 digits */
	fclose(f);
	assert_int_equal(tld_cookie_load(path, &s, &eb), TLD_EINVAL);
	assert_non_null(strstr(eb.msg, ":1:"));
	unlink(path);
	assert_int_equal(tld_cookie_load(path, &s, &eb), TLD_EIO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc9018_vectors),
	    cmocka_unit_test(test_check),
	    cmocka_unit_test(test_rotation),
	    cmocka_unit_test(test_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
