/* test_repl_msg.c - unit tests of replication keys, the message envelope and replay protection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../replication/keyfile.h"
#include "../../replication/msg.h"
#include "../../replication/proto.h"

static const char keys_text[] = "# test keys\n"
                                "\n"
                                "hmac-sha256:k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"
                                "  HMAC-SHA256:k2.b_c-d:c2Vjb25kLWtleS1zZWNyZXQtMTIzNDU2  \r\n";

static void load(tld_keyring *kr)
{
	assert_int_equal(tld_keyring_parse(keys_text, sizeof(keys_text) - 1, "t", kr, NULL), 0);
}

static void test_base64(void **state)
{
	uint8_t out[16];
	assert_int_equal(tld_base64_decode("QUJD", 4, out, sizeof(out)), 3);
	assert_memory_equal(out, "ABC", 3);
	assert_int_equal(tld_base64_decode("QUI=", 4, out, sizeof(out)), 2);
	assert_int_equal(tld_base64_decode("QQ==", 4, out, sizeof(out)), 1);
	assert_int_equal(tld_base64_decode("Q===", 4, out, sizeof(out)), TLD_ESYNTAX);
	assert_int_equal(tld_base64_decode("Q=I=", 4, out, sizeof(out)), TLD_ESYNTAX);
	assert_int_equal(tld_base64_decode("QUJ", 3, out, sizeof(out)), TLD_ESYNTAX);
	assert_int_equal(tld_base64_decode("QU*D", 4, out, sizeof(out)), TLD_ESYNTAX);
	assert_int_equal(tld_base64_decode("QUJDQUJD", 8, out, 5), TLD_ESPACE);
}

static void test_keyring_parse(void **state)
{
	tld_keyring kr;
	load(&kr);
	assert_int_equal(kr.count, 2);
	assert_string_equal(kr.keys[0].name, "k1");
	assert_int_equal(kr.keys[0].secret_len, 32);
	assert_string_equal(kr.keys[1].name, "k2.b_c-d");
	assert_non_null(tld_keyring_find(&kr, "k2.b_c-d", 8));
	assert_null(tld_keyring_find(&kr, "k3", 2));
	tld_keyring_clear(&kr);
	assert_int_equal(kr.count, 0);
}

static void test_keyring_rejects(void **state)
{
	static const char *const bad[] = {
	    "hmac-md5:k:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n",
	    "hmac-sha256::MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n",
	    "hmac-sha256:bad name:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n",
	    "hmac-sha256:k:c2hvcnQ=\n", /* 5 bytes: too short */
	    "hmac-sha256:k:not base64!\n",
	    "hmac-sha256:k\n",
	    "hmac-sha256:k:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"
	    "hmac-sha256:k:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n",
	    "# only a comment\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tld_keyring kr;
		tld_errbuf eb = {{0}};
		assert_true(tld_keyring_parse(bad[i], strlen(bad[i]), "f", &kr, &eb) < 0);
		assert_true(eb.msg[0] != 0);
	}
}

static void test_seal_open(void **state)
{
	tld_keyring kr;
	load(&kr);
	tld_msg_sender s;
	assert_int_equal(tld_msg_sender_init(&s, &kr.keys[1]), 0);
	uint8_t *buf;
	size_t len;
	assert_int_equal(
	    tld_msg_seal(&s, TLD_MSG_HEARTBEAT, (const uint8_t *)"\0\0", 2, &buf, &len), 0);
	tld_msg m;
	enum tld_reject why;
	assert_int_equal(tld_msg_open(&kr, buf, len, &m, &why), 0);
	assert_int_equal(m.type, TLD_MSG_HEARTBEAT);
	assert_ptr_equal(m.key, &kr.keys[1]);
	assert_int_equal(m.seq, 1);
	assert_int_equal(m.sender, s.id);
	assert_int_equal(m.body_len, 2);
	assert_true(tld_msg_fresh(&m, tld_now_ms()));
	for (size_t i = 0; i < len; i++) { /* every altered byte is refused */
		buf[i] ^= 0x04;
		assert_true(tld_msg_open(&kr, buf, len, &m, &why) < 0);
		buf[i] ^= 0x04;
	}
	for (size_t n = 0; n < len; n++) /* and every truncation */
		assert_true(tld_msg_open(&kr, buf, n, &m, &why) < 0);
	free(buf);
}

static void test_open_reasons(void **state)
{
	tld_keyring kr, other;
	load(&kr);
	static const char other_text[] = "hmac-sha256:k1:b3RoZXItc2VjcmV0LTEyMzQ1Njc4OQ==\n"
	                                 "hmac-sha256:zz:b3RoZXItc2VjcmV0LTEyMzQ1Njc4OQ==\n";
	assert_int_equal(tld_keyring_parse(other_text, sizeof(other_text) - 1, "o", &other, NULL),
	                 0);
	uint8_t *buf;
	size_t len;
	tld_msg m;
	enum tld_reject why;
	assert_int_equal(
	    tld_msg_seal_at(&other.keys[0], 1, 1, 5, TLD_MSG_STATUS, NULL, 0, &buf, &len), 0);
	assert_int_equal(tld_msg_open(&kr, buf, len, &m, &why), TLD_EAUTH);
	assert_int_equal(why, TLD_REJ_BAD_MAC); /* same name, other secret: forged */
	free(buf);
	assert_int_equal(
	    tld_msg_seal_at(&other.keys[1], 1, 1, 5, TLD_MSG_STATUS, NULL, 0, &buf, &len), 0);
	assert_int_equal(tld_msg_open(&kr, buf, len, &m, &why), TLD_EAUTH);
	assert_int_equal(why, TLD_REJ_UNKNOWN_KEY);
	free(buf);
	assert_int_equal(tld_msg_open(&kr, (const uint8_t *)"TLR1", 4, &m, &why), TLD_EMALFORMED);
	assert_int_equal(why, TLD_REJ_MALFORMED);
	uint8_t notice[64];
	size_t n = tld_msg_notice_make("request rejected: replay", notice, sizeof(notice));
	const char *text;
	size_t tlen;
	assert_true(tld_msg_notice(notice, n, &text, &tlen));
	assert_int_equal(tlen, strlen("request rejected: replay"));
	assert_true(tld_msg_open(&kr, notice, n, &m, &why) < 0);
}

static tld_msg msg_at(uint64_t sender, uint64_t seq, uint64_t t)
{
	tld_msg m = {.type = TLD_MSG_DELTA, .sender = sender, .seq = seq, .time_ms = t};
	return m;
}

static void test_replay_multi(void **state)
{
	tld_replay g;
	enum tld_reject why;
	uint64_t now = 10000000;
	tld_replay_init(&g, 2, false);
	tld_msg a1 = msg_at(1, 1, now), a2 = msg_at(1, 2, now), b1 = msg_at(2, 5, now - 1000);
	assert_int_equal(tld_replay_check(&g, &a1, now, &why), 0);
	assert_int_equal(tld_replay_check(&g, &a2, now, &why), 0);
	assert_int_equal(tld_replay_check(&g, &a1, now, &why), TLD_ESERIAL);
	assert_int_equal(why, TLD_REJ_REPLAY);
	assert_int_equal(tld_replay_check(&g, &b1, now, &why), 0); /* older, other sender: fine */
	tld_msg c1 = msg_at(3, 1, now);
	assert_int_equal(tld_replay_check(&g, &c1, now, &why), TLD_ESERIAL); /* table full */
	tld_msg old = msg_at(4, 1, now - TLD_MSG_WINDOW_MS - 1);
	assert_int_equal(tld_replay_check(&g, &old, now, &why), TLD_ESERIAL);
	assert_int_equal(why, TLD_REJ_STALE);
	/* once the window has passed, entries are evicted and new senders fit again */
	uint64_t later = now + TLD_MSG_WINDOW_MS + 120000;
	tld_msg d1 = msg_at(5, 1, later);
	assert_int_equal(tld_replay_check(&g, &d1, later, &why), 0);
	g.not_before = later + 1;
	tld_msg e1 = msg_at(6, 1, later);
	assert_int_equal(tld_replay_check(&g, &e1, later, &why), TLD_ESERIAL);
	assert_int_equal(why, TLD_REJ_STALE);
	tld_replay_free(&g);
}

static void test_replay_single_source(void **state)
{
	tld_replay g;
	enum tld_reject why;
	uint64_t now = 10000000;
	tld_replay_init(&g, 8, true);
	tld_msg first = msg_at(1, 7, now - 500), restarted = msg_at(2, 1, now);
	tld_msg earlier_run = msg_at(3, 9, now - 800);
	assert_int_equal(tld_replay_check(&g, &first, now, &why), 0);
	assert_int_equal(tld_replay_check(&g, &restarted, now, &why), 0);
	assert_int_equal(tld_replay_check(&g, &earlier_run, now, &why), TLD_ESERIAL);
	assert_int_equal(why, TLD_REJ_REPLAY);
	/* the first run is over: its later messages are refused */
	tld_msg first_later = msg_at(1, 8, now - 400);
	assert_int_equal(tld_replay_check(&g, &first_later, now, &why), TLD_ESERIAL);
	/* many more runs than the table holds (8), one after the other: each is taken */
	for (uint64_t run = 0; run < 100; run++) {
		tld_msg m = msg_at(100 + run, 1, now + run), m2 = msg_at(100 + run, 2, now + run);
		assert_int_equal(tld_replay_check(&g, &m, now + run, &why), 0);
		assert_int_equal(tld_replay_check(&g, &m2, now + run, &why), 0);
		assert_int_equal(tld_replay_check(&g, &m, now + run, &why), TLD_ESERIAL);
	}
	tld_replay_free(&g);
}

static void test_report_roundtrip(void **state)
{
	tld_report *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	strcpy(a->name, "replica-7");
	a->role = 2;
	a->in_sync = 1;
	a->ncounters = 3;
	a->counters[2] = 99;
	a->nzones = 1;
	memcpy(a->zones[0].apex, "\3tld", 5);
	a->zones[0].serial = 42;
	a->zones[0].lag_ms = 7;
	tld_wbuf w = {0};
	tld_report_write(&w, a);
	tld_rbuf r = tld_rbuf_make(w.p, w.len);
	tld_report_read(&r, b);
	assert_true(tld_r_done(&r));
	assert_string_equal(b->name, "replica-7");
	assert_int_equal(b->counters[2], 99);
	assert_int_equal(b->zones[0].serial, 42);
	assert_int_equal(b->zones[0].lag_ms, 7);
	for (size_t n = 0; n < w.len; n++) { /* truncations are detected */
		tld_rbuf t = tld_rbuf_make(w.p, n);
		tld_report_read(&t, b);
		assert_false(tld_r_done(&t));
	}
	tld_wbuf_free(&w);
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_base64),
	    cmocka_unit_test(test_keyring_parse),
	    cmocka_unit_test(test_keyring_rejects),
	    cmocka_unit_test(test_seal_open),
	    cmocka_unit_test(test_open_reasons),
	    cmocka_unit_test(test_replay_multi),
	    cmocka_unit_test(test_replay_single_source),
	    cmocka_unit_test(test_report_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
