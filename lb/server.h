/* server.h - worker threads, each with its own libuv loop and SO_REUSEPORT sockets. */
#ifndef TLD_SERVER_H
#define TLD_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../node/common/err.h"
#include "takeover.h"

/*
 * The lb layer knows nothing of DNS. It owns sockets and threads and hands
 * each received message to a tld_handler, which writes the reply into a
 * buffer the worker owns.
 *
 * Every worker thread runs its own uv loop with its own UDP socket and TCP
 * listener on every listen address, all bound with SO_REUSEPORT so the kernel
 * spreads flows across workers (and across processes: a second tldnode on
 * the same addresses serves at once, which is how restarts lose nothing).
 *
 * UDP: libuv only reports readiness (uv_poll); the worker then drains the
 * socket with recvmmsg() in batches of TLD_UDP_BATCH and answers each batch
 * with one sendmmsg(). The handler's batch_begin/batch_end bracket each batch
 * (one LMDB read transaction per batch). Nothing is allocated per packet.
 * Replies leave from the address the query was sent to: each listen address
 * is bound explicitly, and a wildcard address (0.0.0.0, ::) uses
 * IP_PKTINFO / IPV6_RECVPKTINFO to answer from the query's destination.
 *
 * TCP (RFC 7766): length-framed, pipelined queries answered in order, an
 * idle timeout that only a complete query restarts (so a slowly trickled
 * message is closed), a cap on connections per worker and on queries
 * in flight per connection.
 *
 * Stopping (tld_server_stop), every worker answers what its UDP sockets
 * hold; on each TCP connection it answers every complete query received
 * (in its buffer, or up to 64 KiB more waiting in the kernel), sends a FIN
 * after the last answer and discards input until the peer closes (1 s at
 * most), so a client gets every answer and a clean end, never a reset; an
 * idle connection is closed at once.
 *
 * CPU steering (pin_cpus): worker i is pinned to CPU i, and when there are
 * no more workers than CPUs a classic BPF program (SO_ATTACH_REUSEPORT_CBPF:
 * A = CPU; A %= workers; return A) on each address's UDP reuseport group
 * hands a datagram to the socket of the worker on the CPU whose softirq
 * received it (the NIC's RSS/RPS decides which; on loopback, the sender's
 * CPU). Caveat: the program returns a position in the group, which follows
 * bind order and is compacted when a socket leaves, so it is only attached
 * when our workers' sockets are the whole group in worker order: not when
 * sockets were inherited from a predecessor (then any program it attached is
 * removed and the kernel hashes flows over all sockets), nor when another
 * process was bound there first. Each decision is logged. TCP is not steered.
 */

#define TLD_UDP_BATCH   32
#define TLD_UDP_MSG_MAX 4096 /* larger UDP datagrams are dropped unanswered */
#define TLD_LISTEN_MAX  16

enum tld_transport { TLD_UDP = 0, TLD_TCP = 1 };

/* Who sent a message and where it arrived. */
typedef struct tld_peer {
	enum tld_transport transport;
	const struct sockaddr *remote;
	socklen_t remote_len;
} tld_peer;

/* What the server calls; every function runs on the worker's own thread. */
typedef struct tld_handler {
	/* Per-worker context, created on the worker's thread before it serves;
	 * NULL means failure (the server does not start). */
	void *(*worker_init)(void *arg, unsigned worker_id);
	void (*worker_fini)(void *wctx);
	/* Bracket a batch of answer() calls (UDP batch, or one TCP read). */
	void (*batch_begin)(void *wctx);
	void (*batch_end)(void *wctx);
	/* Answers query q (qlen bytes) into resp (at most cap bytes). Returns the
	 * reply length, or 0 to send nothing. */
	size_t (*answer)(void *wctx, const uint8_t *q, size_t qlen, uint8_t *resp, size_t cap,
	                 const tld_peer *peer);
	void *arg;
} tld_handler;

typedef struct tld_server_opts {
	struct sockaddr_storage listen[TLD_LISTEN_MAX];
	unsigned nlisten;
	unsigned workers;            /* 0: one per CPU */
	int rcvbuf, sndbuf;          /* UDP socket buffers, bytes (0: keep the kernel's) */
	unsigned tcp_max_conns;      /* per worker */
	unsigned tcp_max_per_client; /* per client address, over all workers (0: no cap) */
	unsigned tcp_idle_ms;        /* idle / incomplete-message timeout */
	unsigned tcp_max_pipeline;   /* queries answered per connection before reading pauses */
	bool pin_cpus;               /* pin worker i to CPU i % ncpu, steer UDP (above) */
	tld_takeover_set *inherit;   /* sockets from a predecessor to serve first (takeover.h) */
} tld_server_opts;

/* Sensible defaults for a TLD node. */
void tld_server_opts_default(tld_server_opts *o);

/* Parses "ADDR:PORT", "[V6ADDR]:PORT" or "V6ADDR" with a separate port into
 * a sockaddr. Returns 0 or TLD_EINVAL. */
int tld_addr_parse(const char *text, struct sockaddr_storage *out);

/* Formats an address as "ADDR:PORT" / "[V6]:PORT". */
void tld_addr_format(const struct sockaddr *sa, char *buf, size_t len);

typedef struct tld_server tld_server;

/* Binds, then closes, a UDP and a TCP socket on every listen address, as the
 * workers will (SO_REUSEPORT, so addresses this user's running server holds
 * are fine). tldnode --check runs it so that a reload (SIGHUP) to an
 * address that cannot be bound is refused while the old process still
 * serves. Returns 0 or TLD_EIO with the address and reason in eb. */
int tld_server_check_listen(const tld_server_opts *o, tld_errbuf *eb);

/* Creates every socket (so bind errors are reported here, with the address),
 * then starts the workers. Errors: TLD_EIO (socket/bind), TLD_ENOMEM,
 * TLD_EINVAL (a handler's worker_init failed). */
int tld_server_start(tld_server **out, const tld_server_opts *o, const tld_handler *h,
                     tld_errbuf *eb);

/* Graceful stop: every worker stops reading new messages, answers what it has
 * already read, closes its sockets and exits; returns when all have joined. */
void tld_server_stop(tld_server *s);

/* TCP counters of one worker (read from any thread: exact to within the
 * changes in flight). */
typedef struct tld_server_stats {
	uint64_t tcp_open;     /* connections open now */
	uint64_t tcp_accepted; /* connections accepted */
	uint64_t tcp_refused;  /* closed at once: over a cap, or while stopping */
	uint64_t tcp_timeouts; /* closed for idleness or an incomplete message */
} tld_server_stats;

void tld_server_worker_stats(const tld_server *s, unsigned i, tld_server_stats *out);

/* Every socket the workers serve, for handing them to a successor; returns
 * how many were written to out (at most max). Valid until tld_server_stop(). */
unsigned tld_server_sockets(const tld_server *s, tld_takeover_sock *out, unsigned max);

/* Number of workers actually running, and each one's handler context. */
unsigned tld_server_workers(const tld_server *s);
void *tld_server_worker_ctx(const tld_server *s, unsigned i);

void tld_server_free(tld_server *s);

#endif
