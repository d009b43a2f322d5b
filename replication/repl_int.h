/* repl_int.h - state shared by the replication thread's modules (primary, replica, snapshot). */
#ifndef TLD_REPL_INT_H
#define TLD_REPL_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "client.h"
#include "delta.h"
#include "msg.h"
#include "proto.h"
#include "repl.h"

#define REPL_LOG_BURST     5     /* reject log lines per reason and window */
#define REPL_LOG_WINDOW_MS 10000 /* rate-limit window */

struct primary;
struct replica;

struct tld_repl {
	tld_store *st;
	tld_repl_opts o;
	char node_name[256];
	pthread_t thread;
	atomic_bool stop;
	tld_reader rd; /* the thread's reader: zone records, journal */
	tld_msg_sender snd;

	pthread_mutex_t lock; /* guards stats */
	tld_repl_stats *stats;

	uint64_t log_window[TLD_REJ_COUNT];
	unsigned log_count[TLD_REJ_COUNT];
	uint64_t log_suppressed[TLD_REJ_COUNT];
	uint64_t last_sync_ms; /* TLD_SYNC_NONE: last mdb_env_sync */

	struct primary *p;
	struct replica *rep;
};

/* Adds n to a counter (under the stats lock). */
void repl_count(tld_repl *r, int counter, uint64_t n);

/* Counts a rejected message and logs it, rate-limited per reason. */
void repl_reject(tld_repl *r, enum tld_reject why, const char *where, const tld_msg *m);

/* The zone at apex as last committed (through the thread's reader; call
 * after tld_writer_begin() to get the writer's starting point). */
int repl_zone_load(tld_repl *r, const uint8_t *apex, tld_zone *z);

/* Monotonic milliseconds. */
uint64_t repl_mono_ms(void);

/* Presentation form of a name in a static-size buffer (for logs). */
typedef struct repl_name_text {
	char s[TLD_NAME_TXTMAX];
} repl_name_text;
repl_name_text repl_name(const uint8_t *name);

/* Seals body as a message of type and sends it on sock. Returns 0 or TLD_EIO. */
int repl_send(tld_repl *r, int sock, uint8_t type, const uint8_t *body, size_t len, int flags);

/* Reads the serials of an encoded delta without validating the rest. */
bool repl_delta_serials(const uint8_t *buf, size_t len, uint32_t *from, uint32_t *to);

/* Role threads and their set-up / tear-down (primary.c, replica.c). */
int primary_init(tld_repl *r, tld_errbuf *eb);
void primary_run(tld_repl *r);
void primary_fini(tld_repl *r);
int replica_init(tld_repl *r, tld_errbuf *eb);
void replica_run(tld_repl *r);
void replica_fini(tld_repl *r);

/* ---- snapshots (snapshot.c) ---- */

/* Primary side: one open session reading a zone. */
typedef struct snap_session {
	uint64_t id;
	tld_reader rd;
	tld_zone z;
	bool started; /* the cursor has been positioned */
	uint64_t last_used_ms;
	uint64_t entries;
} snap_session;

/* Opens a session on the zone at apex. TLD_ENOENT when absent. */
int snap_session_open(tld_repl *r, snap_session *s, const uint8_t *apex);
/* Appends the next entries (at least one unless done, about chunk bytes)
 * to b; sets *done at the end of the zone. */
int snap_session_chunk(snap_session *s, tld_wbuf *b, size_t chunk, bool *done);
void snap_session_close(snap_session *s);

/* Replica side: fetches the zone at apex from the primary over cl and
 * replaces the local zone in one write transaction. Fills z, and *when with
 * the primary's clock at the start of the session (z's serial was current
 * then). */
int snap_fetch(tld_repl *r, tld_client *cl, const uint8_t *apex, tld_zone *z, uint64_t *when,
               tld_errbuf *eb);

#endif
