/* msg.h - the authenticated envelope of every replication message, and replay protection. */
#ifndef TLD_MSG_H
#define TLD_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../node/common/err.h"
#include "keyfile.h"

/*
 * Every replication message, on the PUB socket and over REQ/REP, is one
 * envelope (integers big-endian):
 *
 *   "TLR1" | type u8 | keyname_len u8 | keyname | sender u64 | seq u64 |
 *   time_ms u64 | body_len u32 | body | HMAC-SHA256 (32 bytes)
 *
 * The HMAC, with the named key, covers every byte before it. sender is a
 * random id drawn when a process starts; seq counts that sender's messages
 * from 1, strictly increasing; time_ms is the sender's clock (unix ms).
 *
 * A receiver accepts a message only when the key is one of its keyring, the
 * HMAC matches, the time is within TLD_MSG_WINDOW_MS of its own clock, and
 * (tld_replay_check) seq is above the last one accepted from that sender. A
 * sender id never seen is accepted; a receiver that has a single source (a
 * replica listening to its primary) also requires a new sender's time to be
 * no older than the newest message it accepted, so an earlier run's messages
 * cannot be replayed once the source restarts. Replies carry the request's
 * (sender, seq) inside their authenticated body instead (proto.h).
 *
 * The one unauthenticated message is a NOTICE: "TLR1" | 0xff | text, sent by
 * a primary in place of a reply it cannot authenticate (the request was
 * rejected); a client shows it and trusts nothing else about it.
 */

#define TLD_MSG_MAGIC     "TLR1"
#define TLD_MSG_HMAC_LEN  32
#define TLD_MSG_WINDOW_MS (300 * 1000) /* accepted clock difference */
#define TLD_MSG_OVERHEAD  (4 + 1 + 1 + 8 + 8 + 8 + 4 + TLD_MSG_HMAC_LEN) /* plus the key name */

enum tld_msg_type {
	TLD_MSG_DELTA = 1,      /* PUB: one zone delta (delta.h encoding) */
	TLD_MSG_HEARTBEAT = 2,  /* PUB: every zone's serial */
	TLD_MSG_CATCHUP = 3,    /* REQ: journal deltas from a serial */
	TLD_MSG_SNAP_BEGIN = 4, /* REQ: start a snapshot of a zone */
	TLD_MSG_SNAP_NEXT = 5,  /* REQ: next chunk of a snapshot session */
	TLD_MSG_PUSH_ZONE = 6,  /* REQ: a new version of a zone, as master-file text */
	TLD_MSG_PUSH_DELTA = 7, /* REQ: changes to apply (serials set by the primary) */
	TLD_MSG_REPORT = 8,     /* REQ: a replica's state */
	TLD_MSG_STATUS = 9,     /* REQ: every node's state */
	TLD_MSG_REPLY = 10,     /* REP: the answer to any request */
	TLD_MSG_TYPE_MAX = 10,
	TLD_MSG_NOTICE = 0xff, /* REP: unauthenticated rejection text */
};

/* Why a message was refused (counted per reason). */
enum tld_reject {
	TLD_REJ_MALFORMED = 0,   /* not an envelope, or a body that does not parse */
	TLD_REJ_UNKNOWN_KEY = 1, /* the key name is not in our keyring */
	TLD_REJ_BAD_MAC = 2,     /* forged or altered */
	TLD_REJ_STALE = 3,       /* time outside the window */
	TLD_REJ_REPLAY = 4,      /* seq not above the sender's last, or an old sender */
	TLD_REJ_MISMATCH = 5,    /* a reply to no request of ours, or an unexpected type */
	TLD_REJ_COUNT = 6,
};

/* Short name of a reason ("bad_mac", ...), for logs and metrics labels. */
const char *tld_reject_name(int reason);

/* An opened (authenticated) message; pointers into the received buffer. */
typedef struct tld_msg {
	uint8_t type;
	const tld_key *key;
	uint64_t sender, seq, time_ms;
	const uint8_t *body;
	size_t body_len;
} tld_msg;

/* Our side of the envelope: the key we sign with, our id and counter. */
typedef struct tld_msg_sender {
	const tld_key *key;
	uint64_t id;
	uint64_t seq; /* last seq used */
} tld_msg_sender;

/* Draws a random sender id (RAND_bytes) for key. Returns 0 or TLD_EIO. */
int tld_msg_sender_init(tld_msg_sender *s, const tld_key *key);

/* Builds an envelope around body with the next seq and the current time into
 * a malloc()ed buffer (*out, *outlen; free() it). Returns 0 or TLD_ENOMEM. */
int tld_msg_seal(tld_msg_sender *s, uint8_t type, const uint8_t *body, size_t len, uint8_t **out,
                 size_t *outlen);

/* As tld_msg_seal() with an explicit time and seq (tests, fuzzing). */
int tld_msg_seal_at(const tld_key *key, uint64_t sender, uint64_t seq, uint64_t time_ms,
                    uint8_t type, const uint8_t *body, size_t len, uint8_t **out, size_t *outlen);

/* Checks the envelope of buf[0..len) against the keyring and fills m.
 * Returns 0, or TLD_EMALFORMED / TLD_EAUTH with *why set (MALFORMED,
 * UNKNOWN_KEY, BAD_MAC). Does not look at time or seq. Safe on any bytes. */
int tld_msg_open(const tld_keyring *kr, const uint8_t *buf, size_t len, tld_msg *m,
                 enum tld_reject *why);

/* True when buf is a NOTICE; its text (not NUL-terminated) in *text, *tlen. */
bool tld_msg_notice(const uint8_t *buf, size_t len, const char **text, size_t *tlen);

/* Builds a NOTICE with text into out (cap bytes); returns its length. */
size_t tld_msg_notice_make(const char *text, uint8_t *out, size_t cap);

/* True when |now_ms - m->time_ms| is within TLD_MSG_WINDOW_MS. */
bool tld_msg_fresh(const tld_msg *m, uint64_t now_ms);

/* The current time, unix milliseconds. */
uint64_t tld_now_ms(void);

/* ---- replay protection: the last seq accepted from each sender ---- */

typedef struct tld_replay_entry {
	uint64_t sender, last_seq, last_time;
} tld_replay_entry;

typedef struct tld_replay {
	tld_replay_entry *e;
	size_t n, cap, max; /* max: table size bound */
	bool single_source; /* a new sender must not be older than newest_time */
	uint64_t newest_time;
	uint64_t not_before; /* messages sent before this (unix ms) are stale; 0: no bound */
} tld_replay;

/* Prepares a guard holding at most max senders (entries whose last message
 * is older than the time window are evicted first, and a full table refuses
 * new senders: their messages could otherwise be replayed). */
void tld_replay_init(tld_replay *g, size_t max, bool single_source);
void tld_replay_free(tld_replay *g);

/* Checks time and seq of an authenticated message and records it when
 * accepted. Returns 0, or TLD_ESERIAL with *why set (STALE, REPLAY). A
 * receiver whose table starts empty (a restarted primary) sets not_before a
 * little before its start, so that requests captured before the restart
 * cannot be replayed to it. */
int tld_replay_check(tld_replay *g, const tld_msg *m, uint64_t now_ms, enum tld_reject *why);

#endif
