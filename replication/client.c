/* client.c - authenticated requests to a primary's control socket (nanomsg REQ). */
#include "client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

#include "../node/common/log.h"

#define RESEND_NEVER_MS (24 * 3600 * 1000) /* nanomsg would otherwise resend after 60 s */
#define WAIT_SLICE_MS   50                 /* how often a wait looks at the stop flag */

static size_t max_or_default(size_t max)
{
	if (max == 0)
		return TLD_REPL_MAX_MESSAGE;
	return max < TLD_REPL_MAX_MESSAGE_LIMIT ? max : TLD_REPL_MAX_MESSAGE_LIMIT;
}

int tld_nn_max_message(int sock, size_t max)
{
	int v = (int)max_or_default(max);
	return nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVMAXSIZE, &v, sizeof(v));
}

static atomic_long nn_held; /* buffers taken and not yet released */

int tld_nn_take(int sock, void **buf)
{
	*buf = NULL;
	int n = nn_recv(sock, buf, NN_MSG, NN_DONTWAIT);
	if (n >= 0)
		atomic_fetch_add(&nn_held, 1);
	return n;
}

void tld_nn_release(void *buf)
{
	if (buf == NULL)
		return;
	atomic_fetch_sub(&nn_held, 1);
	nn_freemsg(buf);
}

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZER_BUILD 1
#endif
#endif

void tld_nn_check_released(const char *who)
{
	long held = atomic_load(&nn_held);
	if (held == 0)
		return;
	tld_log(TLD_LOG_ERR, "%s: %ld nanomsg message buffer(s) never released", who, held);
#ifdef SANITIZER_BUILD
	abort();
#endif
}

int tld_client_open(tld_client *c, const char *url, const tld_keyring *kr, size_t max_message,
                    tld_errbuf *eb)
{
	memset(c, 0, sizeof(*c));
	c->kr = kr;
	c->sock = -1;
	c->max_message = max_or_default(max_message);
	if (kr->count == 0 || tld_msg_sender_init(&c->snd, &kr->keys[0]) < 0)
		return tld_errf(eb, TLD_EIO, "no key, or no randomness for a sender id");
	c->sock = nn_socket(AF_SP, NN_REQ);
	if (c->sock < 0)
		return tld_errf(eb, TLD_EIO, "nn_socket: %s", nn_strerror(nn_errno()));
	int resend = RESEND_NEVER_MS;
	nn_setsockopt(c->sock, NN_REQ, NN_REQ_RESEND_IVL, &resend, sizeof(resend));
	tld_nn_max_message(c->sock, c->max_message);
	if (nn_connect(c->sock, url) < 0) {
		int e = nn_errno();
		nn_close(c->sock);
		c->sock = -1;
		return tld_errf(eb, e == EINVAL || e == EPROTONOSUPPORT ? TLD_EINVAL : TLD_EIO,
		                "%s: %s", url, nn_strerror(e));
	}
	return TLD_OK;
}

static void drop_reply(tld_client *c)
{
	tld_nn_release(c->reply_msg);
	c->reply_msg = NULL;
}

void tld_client_close(tld_client *c)
{
	drop_reply(c);
	if (c->sock >= 0)
		nn_close(c->sock);
	c->sock = -1;
}

int tld_client_send(tld_client *c, uint8_t type, const uint8_t *body, size_t len, tld_errbuf *eb)
{
	drop_reply(c);
	uint8_t *msg;
	size_t mlen;
	if (tld_msg_seal(&c->snd, type, body, len, &msg, &mlen) < 0)
		return tld_errf(eb, TLD_ENOMEM, "out of memory");
	if (mlen > c->max_message) {
		free(msg);
		return tld_errf(
		    eb, TLD_EINVAL,
		    "the request is %zu bytes, over the %zu a node accepts (--max-message "
		    "BYTES, on tldctl and on every node)",
		    mlen, c->max_message);
	}
	int rc = nn_send(c->sock, msg, mlen, 0);
	free(msg);
	if (rc < 0)
		return tld_errf(eb, TLD_EIO, "send: %s", nn_strerror(nn_errno()));
	c->pending = true;
	c->pending_seq = c->snd.seq;
	c->pending_type = type;
	return TLD_OK;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int reject(tld_client *c, enum tld_reject why, tld_errbuf *eb)
{
	c->rejected[why]++;
	return tld_errf(eb, TLD_EAUTH, "reply rejected (%s)", tld_reject_name(why));
}

/* Checks a received buffer as the reply to the request in flight. */
static int check_reply(tld_client *c, const uint8_t *buf, size_t len, tld_reply *rep,
                       tld_errbuf *eb)
{
	const char *text;
	size_t tlen;
	if (tld_msg_notice(buf, len, &text, &tlen))
		return tld_errf(eb, TLD_EAUTH, "the primary refused the request: %.*s",
		                (int)(tlen > 400 ? 400 : tlen), text);
	tld_msg m;
	enum tld_reject why;
	if (tld_msg_open(c->kr, buf, len, &m, &why) < 0)
		return reject(c, why, eb);
	if (!tld_msg_fresh(&m, tld_now_ms()))
		return reject(c, TLD_REJ_STALE, eb);
	if (m.type != TLD_MSG_REPLY || tld_reply_parse(m.body, m.body_len, rep) < 0)
		return reject(c, TLD_REJ_MALFORMED, eb);
	if (rep->req_sender != c->snd.id || rep->req_seq != c->pending_seq ||
	    rep->req_type != c->pending_type)
		return reject(c, TLD_REJ_MISMATCH, eb);
	rep->time_ms = m.time_ms;
	return TLD_OK;
}

static bool stopping(const tld_client *c)
{
	return c->stop != NULL && atomic_load(c->stop);
}

int tld_client_recv(tld_client *c, int timeout_ms, tld_reply *rep, tld_errbuf *eb)
{
	if (!c->pending)
		return tld_errf(eb, TLD_EINVAL, "no request in flight");
	uint64_t deadline = mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	for (;;) {
		void *buf;
		int n = tld_nn_take(c->sock, &buf);
		if (n >= 0) {
			c->pending = false;
			c->reply_msg = buf;
			return check_reply(c, buf, (size_t)n, rep, eb);
		}
		if (nn_errno() != EAGAIN)
			return tld_errf(eb, TLD_EIO, "receive: %s", nn_strerror(nn_errno()));
		uint64_t now = mono_ms();
		if (now >= deadline || stopping(c))
			return tld_errf(eb, TLD_ETIMEDOUT, "no reply within %d ms", timeout_ms);
		struct nn_pollfd pfd = {.fd = c->sock, .events = NN_POLLIN};
		uint64_t left = deadline - now;
		nn_poll(&pfd, 1, (int)(left < WAIT_SLICE_MS ? left : WAIT_SLICE_MS));
	}
}

int tld_client_call(tld_client *c, uint8_t type, const uint8_t *body, size_t len, int timeout_ms,
                    tld_reply *rep, tld_errbuf *eb)
{
	int err = tld_client_send(c, type, body, len, eb);
	if (err < 0)
		return err;
	err = tld_client_recv(c, timeout_ms, rep, eb);
	if (err == TLD_ETIMEDOUT)
		c->pending = false;
	return err;
}
