/* proto.h - bodies of the replication messages: heartbeat, requests, replies, reports. */
#ifndef TLD_PROTO_H
#define TLD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../node/common/bytes.h"

#include "../node/common/err.h"
#include "../node/dns/name.h"

/*
 * Bodies (inside the envelope of msg.h; integers big-endian, names in wire
 * form, "str" = len u8 | bytes):
 *
 *   DELTA       the delta encoding of delta.h
 *   HEARTBEAT   count u16 | count x (apex | serial u32)
 *   CATCHUP     apex | from u32 | max_bytes u32
 *   SNAP_BEGIN  apex
 *   SNAP_NEXT   session u64
 *   PUSH_ZONE   flags u8 (1 = create) | has_origin u8 | [origin] | text_len u32 | text
 *   PUSH_DELTA  flags u8 (0) | delta encoding (serials ignored)
 *   REPORT      report (below)
 *   STATUS      (empty)
 *   REPLY       req_sender u64 | req_seq u64 | req_type u8 | status u32 (a
 *               TLD_E* code, 0 = success) | then, when status < 0, text_len
 *               u16 | text; otherwise the payload for req_type:
 *     CATCHUP     more u8 | count u32 | count x (len u32 | delta)
 *     SNAP_*      session u64 | serial u32 | zone params (BEGIN only:
 *                 flags u32 | nsec3 alg u8 | flags u8 | iter u16 | saltlen u8 | salt) |
 *                 done u8 | count u32 | count x (owner | type u16 | len u32 | RRset value)
 *     PUSH_*      from u32 | to u32 | ops u32 | text_len u16 | text
 *     REPORT      (empty)
 *     STATUS      now_ms u64 | report of the primary | count u16 |
 *                 count x (last_seen_ms u64 | report)
 *   report = name str | role u8 | in_sync u8 | ncounters u8 | ncounters x u64 |
 *            nzones u16 | nzones x (apex | serial u32 | primary_serial u32 |
 *            lag_ms u32 | applied_ms u64)
 *
 * Decoders are safe on any bytes.
 */

/* Big-endian helpers: node/common/bytes.h. */

/* ---- a growable output buffer; errors are sticky (check .oom at the end) ---- */

typedef struct tld_wbuf {
	uint8_t *p;
	size_t len, cap;
	bool oom;
} tld_wbuf;

/* Makes room for n more bytes; returns a pointer to them or NULL (oom set). */
uint8_t *tld_w_room(tld_wbuf *b, size_t n);
void tld_w_u8(tld_wbuf *b, uint8_t v);
void tld_w_u16(tld_wbuf *b, uint16_t v);
void tld_w_u32(tld_wbuf *b, uint32_t v);
void tld_w_u64(tld_wbuf *b, uint64_t v);
void tld_w_bytes(tld_wbuf *b, const void *p, size_t n);
void tld_w_name(tld_wbuf *b, const uint8_t *name);
/* len u8 | text (truncated to 255 bytes). */
void tld_w_str(tld_wbuf *b, const char *text);
void tld_wbuf_free(tld_wbuf *b);

/* ---- a bounds-checked reader; errors are sticky (check .bad at the end) ---- */

typedef struct tld_rbuf {
	const uint8_t *p;
	size_t len, pos;
	bool bad;
} tld_rbuf;

static inline tld_rbuf tld_rbuf_make(const uint8_t *p, size_t len)
{
	tld_rbuf r = {p, len, 0, false};
	return r;
}

const uint8_t *tld_r_bytes(tld_rbuf *r, size_t n);
uint8_t tld_r_u8(tld_rbuf *r);
uint16_t tld_r_u16(tld_rbuf *r);
uint32_t tld_r_u32(tld_rbuf *r);
uint64_t tld_r_u64(tld_rbuf *r);
/* A valid wire name (pointer into the buffer), or NULL (bad set). */
const uint8_t *tld_r_name(tld_rbuf *r);
/* len u8 | text, copied NUL-terminated into out (256 bytes). */
void tld_r_str(tld_rbuf *r, char *out);
/* True when everything was read and nothing was out of bounds. */
static inline bool tld_r_done(const tld_rbuf *r)
{
	return !r->bad && r->pos == r->len;
}

/* ---- heartbeat ---- */

/* Iterates a heartbeat body: call with *pos = 0; each call yields one zone.
 * Returns 1 (a zone), 0 (end) or TLD_EMALFORMED. */
int tld_heartbeat_next(const uint8_t *body, size_t len, size_t *pos, const uint8_t **apex,
                       uint32_t *serial);

/* ---- reply header ---- */

typedef struct tld_reply {
	uint64_t req_sender, req_seq;
	uint8_t req_type;
	int status;
	uint64_t time_ms; /* the reply's envelope time (the primary's clock), set by the client */
	char text[1024];  /* the error text when status < 0, or the push message */
	tld_rbuf rest;    /* the payload after the header */
} tld_reply;

/* Starts a reply body for a request (sender, seq, type) with status. */
void tld_reply_begin(tld_wbuf *b, uint64_t sender, uint64_t seq, uint8_t type, int status);

/* Parses the reply header of body; text filled for errors. Returns 0 or
 * TLD_EMALFORMED. */
int tld_reply_parse(const uint8_t *body, size_t len, tld_reply *out);

/* ---- reports: a node's state as the primary's status table shows it ---- */

#define TLD_REPORT_ZONES 1024 /* TLD_REPL_MAX_ZONES; the struct is ~290 KB: heap */

/* Counters a node reports (the same set every node keeps; see repl.h). */
#define TLD_REPORT_COUNTERS 32

typedef struct tld_report_zone {
	uint8_t apex[TLD_NAME_MAX];
	uint32_t serial;         /* the node's serial */
	uint32_t primary_serial; /* the primary's, as the node last heard it */
	uint32_t lag_ms;         /* how long the node has been behind (0: in step) */
	uint64_t applied_ms;     /* unix ms of the last change applied */
} tld_report_zone;

typedef struct tld_report {
	char name[256];
	uint8_t role; /* 1 primary, 2 replica */
	uint8_t in_sync;
	uint8_t ncounters;
	uint64_t counters[TLD_REPORT_COUNTERS];
	uint16_t nzones;
	tld_report_zone zones[TLD_REPORT_ZONES];
} tld_report;

void tld_report_write(tld_wbuf *b, const tld_report *rep);
/* Reads one report; zones beyond TLD_REPORT_ZONES and counters beyond
 * TLD_REPORT_COUNTERS are skipped. Sets r->bad on malformed input. */
void tld_report_read(tld_rbuf *r, tld_report *rep);

#endif
