/* test_rrl.c - unit tests of response rate limiting (node/rrl.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "rrl.h"

static const uint8_t zone[] = "\003tld";

static struct sockaddr_in v4(const char *ip)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	inet_pton(AF_INET, ip, &sa.sin_addr);
	return sa;
}

/* Counts the verdicts of n responses at time t. */
static void run(tld_rrl *r, const char *ip, int cls, int n, uint64_t t, int *pass, int *slip,
                int *drop)
{
	struct sockaddr_in c = v4(ip);
	*pass = *slip = *drop = 0;
	for (int i = 0; i < n; i++) {
		switch (tld_rrl_check(r, (struct sockaddr *)&c, cls, zone, t)) {
		case TLD_RRL_PASS:
			(*pass)++;
			break;
		case TLD_RRL_SLIP:
			(*slip)++;
			break;
		case TLD_RRL_DROP:
			(*drop)++;
			break;
		}
	}
}

static void test_rate_and_slip(void **state)
{
	tld_rrl_conf c;
	tld_rrl_conf_default(&c);
	c.rate = 10;
	c.slip = 2;
	tld_rrl *r;
	assert_int_equal(tld_rrl_new(&r, &c), 0);
	int pass, slip, drop;
	run(r, "192.0.2.1", TLD_RRL_POSITIVE, 100, 1000, &pass, &slip, &drop);
	assert_int_equal(pass, 10); /* one second's burst */
	assert_int_equal(slip, 45);
	assert_int_equal(drop, 45);
	/* the same /24, another host: same bucket */
	run(r, "192.0.2.200", TLD_RRL_POSITIVE, 5, 1000, &pass, &slip, &drop);
	assert_int_equal(pass, 0);
	/* another class, another /24: their own buckets */
	run(r, "192.0.2.1", TLD_RRL_NXDOMAIN, 5, 1000, &pass, &slip, &drop);
	assert_int_equal(pass, 5);
	run(r, "192.0.3.1", TLD_RRL_POSITIVE, 5, 1000, &pass, &slip, &drop);
	assert_int_equal(pass, 5);
	/* half a second later: half the rate refilled */
	run(r, "192.0.2.1", TLD_RRL_POSITIVE, 100, 1500, &pass, &slip, &drop);
	assert_int_equal(pass, 5);
	tld_rrl_stats st;
	tld_rrl_stats_get(r, &st);
	assert_int_equal(st.passed, 25);
	tld_rrl_free(r);
}

static void test_allow_list_and_off(void **state)
{
	tld_rrl_conf c;
	tld_rrl_conf_default(&c);
	c.rate = 1;
	c.slip = 0;
	assert_int_equal(tld_rrl_allow(&c, "198.51.100.0/24"), 0);
	assert_int_equal(tld_rrl_allow(&c, "2001:db8::/32"), 0);
	assert_int_equal(tld_rrl_allow(&c, "nonsense/8"), TLD_EINVAL);
	assert_int_equal(tld_rrl_allow(&c, "10.0.0.0/33"), TLD_EINVAL);
	tld_rrl *r;
	assert_int_equal(tld_rrl_new(&r, &c), 0);
	int pass, slip, drop;
	run(r, "198.51.100.7", TLD_RRL_POSITIVE, 50, 0, &pass, &slip, &drop);
	assert_int_equal(pass, 50);
	run(r, "203.0.113.7", TLD_RRL_POSITIVE, 50, 0, &pass, &slip, &drop);
	assert_int_equal(pass, 1);
	assert_int_equal(slip, 0); /* slip 0: every limited response dropped */
	assert_int_equal(drop, 49);
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
	inet_pton(AF_INET6, "2001:db8:1::1", &a6.sin6_addr);
	assert_int_equal(tld_rrl_check(r, (struct sockaddr *)&a6, 0, zone, 0), TLD_RRL_PASS);
	assert_int_equal(tld_rrl_check(r, (struct sockaddr *)&a6, 0, zone, 0), TLD_RRL_PASS);
	tld_rrl_free(r);
	c.rate = 0; /* off */
	assert_int_equal(tld_rrl_new(&r, &c), 0);
	run(r, "203.0.113.7", TLD_RRL_POSITIVE, 50, 0, &pass, &slip, &drop);
	assert_int_equal(pass, 50);
	tld_rrl_free(r);
}

/* IPv6 clients share a bucket per /56. */
static void test_v6_prefix(void **state)
{
	tld_rrl_conf c;
	tld_rrl_conf_default(&c);
	c.rate = 2;
	tld_rrl *r;
	assert_int_equal(tld_rrl_new(&r, &c), 0);
	struct sockaddr_in6 a = {.sin6_family = AF_INET6}, b = a, d = a;
	inet_pton(AF_INET6, "2001:db8:0:1::1", &a.sin6_addr);
	inet_pton(AF_INET6, "2001:db8:0:ff::9", &b.sin6_addr);  /* same /56 */
	inet_pton(AF_INET6, "2001:db8:0:100::1", &d.sin6_addr); /* next /56 */
	assert_int_equal(tld_rrl_check(r, (struct sockaddr *)&a, 0, zone, 0), TLD_RRL_PASS);
	assert_int_equal(tld_rrl_check(r, (struct sockaddr *)&b, 0, zone, 0), TLD_RRL_PASS);
	assert_int_not_equal(tld_rrl_check(r, (struct sockaddr *)&a, 0, zone, 0), TLD_RRL_PASS);
	assert_int_equal(tld_rrl_check(r, (struct sockaddr *)&d, 0, zone, 0), TLD_RRL_PASS);
	tld_rrl_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rate_and_slip),
	    cmocka_unit_test(test_allow_list_and_off),
	    cmocka_unit_test(test_v6_prefix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
