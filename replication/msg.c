/* msg.c - the authenticated envelope of every replication message, and replay protection. */
#include "msg.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "proto.h"

const char *tld_reject_name(int reason)
{
	static const char *const names[TLD_REJ_COUNT] = {
	    "malformed", "unknown_key", "bad_mac", "stale", "replay", "mismatch",
	};
	return reason >= 0 && reason < TLD_REJ_COUNT ? names[reason] : "unknown";
}

uint64_t tld_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int tld_msg_sender_init(tld_msg_sender *s, const tld_key *key)
{
	s->key = key;
	s->seq = 0;
	if (RAND_bytes((unsigned char *)&s->id, sizeof(s->id)) != 1)
		return TLD_EIO;
	return TLD_OK;
}

static bool mac(const tld_key *key, const uint8_t *data, size_t len, uint8_t *out)
{
	unsigned outlen = 0;
	return HMAC(EVP_sha256(), key->secret, (int)key->secret_len, data, len, out, &outlen) !=
	           NULL &&
	       outlen == TLD_MSG_HMAC_LEN;
}

int tld_msg_seal_at(const tld_key *key, uint64_t sender, uint64_t seq, uint64_t time_ms,
                    uint8_t type, const uint8_t *body, size_t len, uint8_t **out, size_t *outlen)
{
	if (len > UINT32_MAX)
		return TLD_EINVAL;
	size_t total = TLD_MSG_OVERHEAD + key->name_len + len;
	uint8_t *p = malloc(total);
	if (p == NULL)
		return TLD_ENOMEM;
	memcpy(p, TLD_MSG_MAGIC, 4);
	p[4] = type;
	p[5] = key->name_len;
	uint8_t *q = p + 6;
	memcpy(q, key->name, key->name_len);
	q += key->name_len;
	tld_put_be64(q, sender);
	tld_put_be64(q + 8, seq);
	tld_put_be64(q + 16, time_ms);
	tld_put_be32(q + 24, (uint32_t)len);
	q += 28;
	if (len > 0)
		memcpy(q, body, len);
	q += len;
	if (!mac(key, p, (size_t)(q - p), q)) {
		free(p);
		return TLD_ENOMEM;
	}
	*out = p;
	*outlen = total;
	return TLD_OK;
}

int tld_msg_seal(tld_msg_sender *s, uint8_t type, const uint8_t *body, size_t len, uint8_t **out,
                 size_t *outlen)
{
	return tld_msg_seal_at(s->key, s->id, ++s->seq, tld_now_ms(), type, body, len, out, outlen);
}

static int reject(enum tld_reject *why, enum tld_reject reason, int code)
{
	*why = reason;
	return code;
}

int tld_msg_open(const tld_keyring *kr, const uint8_t *buf, size_t len, tld_msg *m,
                 enum tld_reject *why)
{
	if (len < TLD_MSG_OVERHEAD || memcmp(buf, TLD_MSG_MAGIC, 4) != 0 || buf[4] == 0 ||
	    buf[4] > TLD_MSG_TYPE_MAX)
		return reject(why, TLD_REJ_MALFORMED, TLD_EMALFORMED);
	size_t nlen = buf[5];
	if (nlen == 0 || len < TLD_MSG_OVERHEAD + nlen)
		return reject(why, TLD_REJ_MALFORMED, TLD_EMALFORMED);
	const uint8_t *q = buf + 6 + nlen;
	size_t body_len = tld_get_be32(q + 24);
	if (body_len != len - TLD_MSG_OVERHEAD - nlen)
		return reject(why, TLD_REJ_MALFORMED, TLD_EMALFORMED);
	const tld_key *key = tld_keyring_find(kr, (const char *)buf + 6, nlen);
	if (key == NULL)
		return reject(why, TLD_REJ_UNKNOWN_KEY, TLD_EAUTH);
	uint8_t want[TLD_MSG_HMAC_LEN];
	size_t signed_len = len - TLD_MSG_HMAC_LEN;
	if (!mac(key, buf, signed_len, want) ||
	    CRYPTO_memcmp(want, buf + signed_len, TLD_MSG_HMAC_LEN) != 0)
		return reject(why, TLD_REJ_BAD_MAC, TLD_EAUTH);
	m->type = buf[4];
	m->key = key;
	m->sender = tld_get_be64(q);
	m->seq = tld_get_be64(q + 8);
	m->time_ms = tld_get_be64(q + 16);
	m->body = q + 28;
	m->body_len = body_len;
	return TLD_OK;
}

bool tld_msg_notice(const uint8_t *buf, size_t len, const char **text, size_t *tlen)
{
	if (len < 5 || memcmp(buf, TLD_MSG_MAGIC, 4) != 0 || buf[4] != TLD_MSG_NOTICE)
		return false;
	*text = (const char *)buf + 5;
	*tlen = len - 5;
	return true;
}

size_t tld_msg_notice_make(const char *text, uint8_t *out, size_t cap)
{
	size_t tlen = strlen(text);
	if (cap < 5)
		return 0;
	if (tlen > cap - 5)
		tlen = cap - 5;
	memcpy(out, TLD_MSG_MAGIC, 4);
	out[4] = TLD_MSG_NOTICE;
	memcpy(out + 5, text, tlen);
	return 5 + tlen;
}

bool tld_msg_fresh(const tld_msg *m, uint64_t now_ms)
{
	uint64_t d = m->time_ms > now_ms ? m->time_ms - now_ms : now_ms - m->time_ms;
	return d <= TLD_MSG_WINDOW_MS;
}

/* ---- replay guard ---- */

void tld_replay_init(tld_replay *g, size_t max, bool single_source)
{
	memset(g, 0, sizeof(*g));
	g->max = max > 0 ? max : 1;
	g->single_source = single_source;
}

void tld_replay_free(tld_replay *g)
{
	free(g->e);
	memset(g, 0, sizeof(*g));
}

static tld_replay_entry *replay_find(tld_replay *g, uint64_t sender)
{
	for (size_t i = 0; i < g->n; i++)
		if (g->e[i].sender == sender)
			return &g->e[i];
	return NULL;
}

/* Drops entries whose last message is so old that any message of theirs
 * would now fail the time check anyway. */
static void replay_evict(tld_replay *g, uint64_t now_ms)
{
	size_t j = 0;
	for (size_t i = 0; i < g->n; i++)
		if (g->e[i].last_time + TLD_MSG_WINDOW_MS + 60000 >= now_ms)
			g->e[j++] = g->e[i];
	g->n = j;
}

static tld_replay_entry *replay_add(tld_replay *g, uint64_t sender, uint64_t now_ms)
{
	if (g->n == g->cap || g->n == g->max)
		replay_evict(g, now_ms);
	if (g->n == g->max)
		return NULL;
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 8;
		tld_replay_entry *e = realloc(g->e, cap * sizeof(*e));
		if (e == NULL)
			return NULL;
		g->e = e;
		g->cap = cap;
	}
	tld_replay_entry *e = &g->e[g->n++];
	e->sender = sender;
	e->last_seq = 0;
	e->last_time = 0;
	return e;
}

int tld_replay_check(tld_replay *g, const tld_msg *m, uint64_t now_ms, enum tld_reject *why)
{
	if (!tld_msg_fresh(m, now_ms) || m->time_ms < g->not_before)
		return reject(why, TLD_REJ_STALE, TLD_ESERIAL);
	tld_replay_entry *e = replay_find(g, m->sender);
	if (e == NULL) {
		if (g->single_source && m->time_ms < g->newest_time)
			return reject(why, TLD_REJ_REPLAY, TLD_ESERIAL);
		/* One source: a newer sender is its next run, and the runs before
		 * it are over. Forgetting them keeps the table from filling up
		 * with dead runs (which would refuse the next one), and refuses any
		 * late message of theirs: it is older than the newest seen. */
		if (g->single_source)
			g->n = 0;
		if ((e = replay_add(g, m->sender, now_ms)) == NULL)
			return reject(why, TLD_REJ_REPLAY, TLD_ESERIAL);
	} else if (m->seq <= e->last_seq) {
		return reject(why, TLD_REJ_REPLAY, TLD_ESERIAL);
	}
	e->last_seq = m->seq;
	e->last_time = m->time_ms;
	if (m->time_ms > g->newest_time)
		g->newest_time = m->time_ms;
	return TLD_OK;
}
