/* client.h - authenticated requests to a primary's control socket (nanomsg REQ). */
#ifndef TLD_CLIENT_H
#define TLD_CLIENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../node/common/err.h"
#include "keyfile.h"
#include "msg.h"
#include "proto.h"

/*
 * One request at a time (REQ semantics): sending a new request abandons the
 * one in flight, whose late reply the socket then drops. A reply is accepted
 * only when its envelope verifies, its time is fresh, it is a REPLY and it
 * echoes the (sender, seq, type) of the request in flight; anything else
 * ends the request with TLD_EAUTH and is counted in rejected[].
 * nanomsg's own resending is disabled: callers choose their timeouts.
 */

typedef struct tld_client {
	int sock;
	const tld_keyring *kr;
	tld_msg_sender snd;
	bool pending;
	uint64_t pending_seq;
	uint8_t pending_type;
	atomic_bool *stop; /* when set (and true), waits end early with TLD_ETIMEDOUT */
	void *reply_msg;   /* the last reply's buffer (nanomsg's), freed on the next call */
	size_t max_message;
	uint64_t rejected[TLD_REJ_COUNT];
} tld_client;

/* The largest replication message a socket accepts by default (a pushed
 * zone file, a delta, a snapshot chunk): a bound that nanomsg needs, since it
 * allocates a whole message as soon as its length arrives, before any
 * authentication, and aborts when that fails. tldnode and tldctl take
 * --max-message to change it; every node of a cluster needs the same. */
#define TLD_REPL_MAX_MESSAGE       ((size_t)256 << 20)
#define TLD_REPL_MAX_MESSAGE_LIMIT ((size_t)0x7fffffff) /* nanomsg takes an int */

/* Creates the REQ socket, connects it to url (nanomsg URL; the connection is
 * made in the background), signs with the keyring's first key, and neither
 * sends nor accepts a message over max_message bytes (0: the default).
 * Errors: TLD_EINVAL (bad URL), TLD_EIO. */
int tld_client_open(tld_client *c, const char *url, const tld_keyring *kr, size_t max_message,
                    tld_errbuf *eb);

void tld_client_close(tld_client *c);

/* Sends a request (abandoning any in flight). Returns 0, TLD_EINVAL (the
 * message would exceed max_message: nothing is sent), TLD_EIO or TLD_ENOMEM. */
int tld_client_send(tld_client *c, uint8_t type, const uint8_t *body, size_t len, tld_errbuf *eb);

/* Waits up to timeout_ms (0: just look) for the reply to the request in
 * flight. Returns 0 with rep filled (rep->status says whether the primary
 * did what was asked; rep->rest points into a buffer valid until the next
 * call), TLD_ETIMEDOUT (nothing yet; the request stays in flight), TLD_EAUTH
 * (a reply was rejected, or the primary sent a NOTICE: the text is in eb),
 * TLD_EINVAL (no request in flight) or TLD_EIO. */
int tld_client_recv(tld_client *c, int timeout_ms, tld_reply *rep, tld_errbuf *eb);

/* tld_client_send() then tld_client_recv(). On TLD_ETIMEDOUT the request is
 * abandoned. */
int tld_client_call(tld_client *c, uint8_t type, const uint8_t *body, size_t len, int timeout_ms,
                    tld_reply *rep, tld_errbuf *eb);

/* Sets the largest message a receiving socket accepts (NN_RCVMAXSIZE;
 * 0: TLD_REPL_MAX_MESSAGE). A larger one makes nanomsg drop the connection
 * (the sender then times out). Returns 0 or -1 (nn_errno()). */
int tld_nn_max_message(int sock, size_t max);

/*
 * Every message buffer replication takes from nanomsg goes through these
 * two, which count the buffers held. The count is how the sanitizer pass
 * checks our side: LeakSanitizer cannot, because nanomsg allocates the
 * buffer on its own worker thread, and a chunk it now and then leaks itself
 * on close has the same allocation stack (tests/lsan.supp).
 */

/* nn_recv(sock, buf, NN_MSG, NN_DONTWAIT): returns the length with *buf
 * nanomsg's buffer (release it with tld_nn_release), or -1 with nn_errno()
 * set (EAGAIN when nothing is queued). */
int tld_nn_take(int sock, void **buf);

/* nn_freemsg() of a buffer from tld_nn_take(); NULL is ignored. */
void tld_nn_release(void *buf);

/* Checks that every buffer taken in this process was released; call it
 * once every socket is closed. On a leak it logs an error naming who, and in
 * a sanitizer build aborts so the test run fails. */
void tld_nn_check_released(const char *who);

#endif
