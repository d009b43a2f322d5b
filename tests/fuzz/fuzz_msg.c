/* fuzz_msg.c - libFuzzer target: the replication envelope and every message body decoder. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../replication/delta.h"
#include "../../replication/keyfile.h"
#include "../../replication/msg.h"
#include "../../replication/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The key of the seeds in corpus/msg (any 32 bytes; this is a test key). */
static const char key_text[] =
    "hmac-sha256:fuzz-key:ZnV6ei1rZXktZm9yLXRsZG5vZGUtcmVwbGljYXRpb24h\n"
    "hmac-sha256:other:b3RoZXIta2V5LW9mLTMyLWJ5dGVzLWZvci1mdXp6aW5nIQ==\n";

static const tld_keyring *keyring(void)
{
	static tld_keyring kr;
	static int loaded;
	if (!loaded) {
		if (tld_keyring_parse(key_text, sizeof(key_text) - 1, "fuzz", &kr, NULL) < 0)
			abort();
		loaded = 1;
	}
	return &kr;
}

static void parse_heartbeat(const uint8_t *p, size_t n)
{
	size_t pos = 0;
	const uint8_t *apex;
	uint32_t serial;
	while (tld_heartbeat_next(p, n, &pos, &apex, &serial) == 1)
		if (tld_name_check(apex, TLD_NAME_MAX) < 0)
			abort();
}

/* A reply's payload read the ways the client reads them. */
static void parse_reply(const uint8_t *p, size_t n)
{
	tld_reply rep;
	if (tld_reply_parse(p, n, &rep) < 0)
		return;
	tld_rbuf rb = rep.rest;
	tld_report r1;
	tld_r_u64(&rb);
	tld_report_read(&rb, &r1);
	rb = rep.rest;
	tld_r_u8(&rb);
	uint32_t count = tld_r_u32(&rb);
	for (uint32_t i = 0; i < count && !rb.bad; i++) {
		uint32_t len = tld_r_u32(&rb);
		const uint8_t *d = tld_r_bytes(&rb, len);
		tld_delta_view v;
		if (d != NULL)
			tld_delta_parse(d, len, &v);
	}
}

static void parse_body(uint8_t type, const uint8_t *p, size_t n)
{
	tld_delta_view v;
	static tld_report rep; /* ~290 KB */
	tld_rbuf rb = tld_rbuf_make(p, n);
	switch (type) {
	case TLD_MSG_DELTA:
	case TLD_MSG_PUSH_DELTA:
		tld_delta_parse(p, n, &v);
		break;
	case TLD_MSG_HEARTBEAT:
		parse_heartbeat(p, n);
		break;
	case TLD_MSG_REPORT:
		tld_report_read(&rb, &rep);
		break;
	case TLD_MSG_REPLY:
		parse_reply(p, n);
		break;
	default:
		tld_r_name(&rb);
		tld_r_u32(&rb);
		break;
	}
}

/* Seals the input as a body, checks that it opens unchanged and that any
 * altered byte is refused. */
static void roundtrip(const uint8_t *data, size_t size)
{
	const tld_keyring *kr = keyring();
	uint8_t type = (uint8_t)(data[0] % TLD_MSG_TYPE_MAX + 1);
	uint8_t *buf;
	size_t len;
	if (tld_msg_seal_at(&kr->keys[0], 7, 9, 1000, type, data + 1, size - 1, &buf, &len) < 0)
		abort();
	tld_msg m;
	enum tld_reject why;
	if (tld_msg_open(kr, buf, len, &m, &why) < 0 || m.body_len != size - 1 ||
	    (size > 1 && memcmp(m.body, data + 1, size - 1) != 0) || m.seq != 9)
		abort();
	parse_body(type, m.body, m.body_len);
	buf[data[0] % len] ^= 0x20;
	if (tld_msg_open(kr, buf, len, &m, &why) == 0)
		abort();
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tld_msg m;
	enum tld_reject why;
	const char *text;
	size_t tlen;
	if (tld_msg_open(keyring(), data, size, &m, &why) == 0)
		parse_body(m.type, m.body, m.body_len);
	tld_msg_notice(data, size, &text, &tlen);
	if (size > 0)
		roundtrip(data, size);
	return 0;
}
