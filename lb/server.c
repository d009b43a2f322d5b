/* server.c - worker threads, each with its own libuv loop and SO_REUSEPORT sockets. */
#include "server.h"
#include "takeover.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stdatomic.h>

#include <sodium.h>
#include <uv.h>

#include "../node/common/log.h"

#define TCP_MSG_MAX    65535
#define TCP_BACKLOG    1024
#define PKTINFO_SPACE  CMSG_SPACE(sizeof(struct in6_pktinfo))
#define UDP_ROUNDS     16    /* recvmmsg calls per readiness event, for fairness with TCP */
#define STOP_GRACE_MS  1000  /* on stop, longest wait for a connection's queued answers */
#define STOP_DRAIN_MAX 65536 /* on stop, query bytes still read from each connection */

/* Sockets one worker may serve: its own, plus any inherited from a
 * predecessor that ran more workers. */
#define WORKER_SOCK_MAX (2 * TLD_LISTEN_MAX)

struct worker;

struct udp_sock {
	int fd;
	struct sockaddr_storage addr; /* bound to (for a successor's takeover) */
	bool wildcard; /* bound to 0.0.0.0/:: : answer from the query's destination */
	int family;
	uv_poll_t poll;
	struct worker *w;
};

struct tcp_listener {
	int fd;
	int fd_served; /* the descriptor, also once the uv handle owns it */
	struct sockaddr_storage addr;
	uv_tcp_t h;
	struct worker *w;
};

struct tcp_conn {
	uv_tcp_t h;
	uv_timer_t timer;
	struct worker *w;
	uint8_t *rbuf;
	size_t rlen, rcap;
	unsigned inflight; /* writes queued, not yet completed */
	unsigned closing;  /* handles still to close */
	bool paused, eof;
	bool lingering; /* stopping: answers queued, FIN after them, input discarded */
	bool peer_eof;  /* lingering: the peer has closed its side */
	uv_shutdown_t shutdown;
	int client_slot; /* index into client_conns, or -1 */
	struct sockaddr_storage peer;
	int peer_len;
};

struct write_req {
	uv_write_t req;
	struct tcp_conn *c;
	uint8_t data[];
};

struct worker {
	unsigned id;
	pthread_t thread;
	struct tld_server *srv;
	uv_loop_t loop;
	uv_async_t stop_async;
	void *ctx;
	int init_err;
	bool loop_init; /* loop (and stop_async) initialised */
	struct udp_sock udp[WORKER_SOCK_MAX];
	struct tcp_listener tcp[WORKER_SOCK_MAX];
	unsigned nudp, ntcp;
	unsigned tcp_conns;
	tld_server_stats stats; /* written by this worker only */
	bool stopping;
	/* UDP batch buffers: nothing is allocated per packet. */
	struct mmsghdr in[TLD_UDP_BATCH], out[TLD_UDP_BATCH];
	struct iovec iov_in[TLD_UDP_BATCH], iov_out[TLD_UDP_BATCH];
	struct sockaddr_storage from[TLD_UDP_BATCH];
	uint8_t cmsg_in[TLD_UDP_BATCH][PKTINFO_SPACE];
	uint8_t cmsg_out[TLD_UDP_BATCH][PKTINFO_SPACE];
	uint8_t inbuf[TLD_UDP_BATCH][TLD_UDP_MSG_MAX];
	uint8_t outbuf[TLD_UDP_BATCH][TLD_UDP_MSG_MAX];
	uint8_t tcp_out[2 + TCP_MSG_MAX];
};

/* Connections per client address, shared by the workers: a client's
 * connections land on any worker (SO_REUSEPORT hashes the 4-tuple). Slots
 * are indexed by a keyed hash (SipHash, a random key per process) of the
 * address; two clients sharing a slot share a cap, which errs on the safe
 * side. Keyed, so that nobody can pick an address that shares a victim's
 * slot and use up its cap. */
#define CLIENT_SLOTS 4096

struct tld_server {
	tld_server_opts opts;
	tld_handler h;
	struct worker **workers;
	unsigned nworkers;
	sem_t ready;
	_Atomic unsigned client_conns[CLIENT_SLOTS];
	uint8_t slot_key[crypto_shorthash_KEYBYTES];
};

/* ---- options and addresses ---- */

void tld_server_opts_default(tld_server_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->rcvbuf = 4 << 20;
	o->sndbuf = 4 << 20;
	o->tcp_max_conns = 512;
	o->tcp_max_per_client = 64;
	o->tcp_idle_ms = 10000;
	o->tcp_max_pipeline = 100;
}

int tld_addr_parse(const char *text, struct sockaddr_storage *out)
{
	char host[128];
	const char *port = NULL;
	memset(out, 0, sizeof(*out));
	if (text[0] == '[') {
		const char *end = strchr(text, ']');
		if (end == NULL || (size_t)(end - text - 1) >= sizeof(host) || end[1] != ':')
			return TLD_EINVAL;
		memcpy(host, text + 1, (size_t)(end - text - 1));
		host[end - text - 1] = 0;
		port = end + 2;
	} else {
		const char *colon = strrchr(text, ':');
		if (colon == NULL || strchr(text, ':') != colon ||
		    (size_t)(colon - text) >= sizeof(host))
			return TLD_EINVAL;
		memcpy(host, text, (size_t)(colon - text));
		host[colon - text] = 0;
		port = colon + 1;
	}
	char *end;
	unsigned long p = strtoul(port, &end, 10);
	if (*port == 0 || *end != 0 || p > 65535)
		return TLD_EINVAL;
	struct sockaddr_in *v4 = (struct sockaddr_in *)out;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)p);
		return TLD_OK;
	}
	if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)p);
		return TLD_OK;
	}
	return TLD_EINVAL;
}

void tld_addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *v4 = (const void *)sa;
		inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(v4->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *v6 = (const void *)sa;
		inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(v6->sin6_port));
	} else {
		snprintf(buf, len, "?");
	}
}

static socklen_t addr_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static bool addr_is_wildcard(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

/* ---- sockets ---- */

static int sock_open(const struct sockaddr_storage *ss, int type, const tld_server_opts *o,
                     tld_errbuf *eb)
{
	char text[80];
	tld_addr_format((const struct sockaddr *)ss, text, sizeof(text));
	int fd = socket(ss->ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return tld_errf(eb, TLD_EIO, "%s: socket: %s", text, strerror(errno));
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
		goto fail;
	if (ss->ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)
		goto fail;
	if (type == SOCK_DGRAM) {
		if (o->rcvbuf > 0)
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &o->rcvbuf, sizeof(o->rcvbuf));
		if (o->sndbuf > 0)
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &o->sndbuf, sizeof(o->sndbuf));
		if (addr_is_wildcard(ss)) {
			int rc =
			    ss->ss_family == AF_INET
			        ? setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one))
			        : setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
			if (rc != 0)
				goto fail;
		}
	} else {
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (bind(fd, (const struct sockaddr *)ss, addr_len(ss)) != 0)
		goto fail;
	return fd;
fail:;
	int e = errno;
	close(fd);
	return tld_errf(eb, TLD_EIO, "%s (%s): %s", text, type == SOCK_DGRAM ? "udp" : "tcp",
	                strerror(e));
}

int tld_server_check_listen(const tld_server_opts *o, tld_errbuf *eb)
{
	static const int types[] = {SOCK_DGRAM, SOCK_STREAM};
	for (unsigned i = 0; i < o->nlisten; i++)
		for (int t = 0; t < 2; t++) {
			int fd = sock_open(&o->listen[i], types[t], o, eb);
			if (fd < 0)
				return fd;
			close(fd);
		}
	return TLD_OK;
}

/* ---- CPU steering (--pin-cpus) ---- */

/*
 * With worker i pinned to CPU i, a classic BPF program attached to each
 * listen address's UDP reuseport group picks the socket for a datagram:
 * index = (CPU that received it) % workers. The index is a position in the
 * group's socket array, which the kernel fills in bind order (and compacts
 * when a socket leaves: the last one moves into the hole). Our workers bind
 * their sockets in worker order, so position i is worker i's socket only
 * when the group held nothing else before: not when sockets were inherited
 * from a predecessor (they are in its bind order, and it may have had more
 * workers) nor when another process has bound the address. In those cases
 * nothing is attached, and any program a predecessor attached is removed,
 * so the kernel's hash spreads datagrams over every socket again. A wrong
 * index never loses a datagram (an index past the end falls back to the
 * hash; every socket is served), it only defeats the locality.
 */
enum steer_plan {
	STEER_OFF,       /* not pinned: leave the group alone */
	STEER_ATTACH,    /* fresh group, our order: attach */
	STEER_INHERITED, /* inherited sockets: detach any predecessor's program */
	STEER_BUSY,      /* another process is bound there */
	STEER_TOO_MANY,  /* more workers than CPUs: some would get no datagram */
};

static bool addr_inherited(const tld_takeover_set *set, const struct sockaddr_storage *addr)
{
	for (unsigned i = 0; set != NULL && i < set->n; i++)
		if (set->socks[i].fd >= 0 && set->socks[i].type == SOCK_DGRAM &&
		    tld_addr_equal(&set->socks[i].addr, addr))
			return true;
	return false;
}

/* Does some socket already hold addr (UDP)? A probe bound without
 * SO_REUSEADDR/SO_REUSEPORT fails with EADDRINUSE then. */
static bool addr_busy(const struct sockaddr_storage *ss)
{
	int fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	int one = 1;
	if (ss->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	bool busy = bind(fd, (const struct sockaddr *)ss, addr_len(ss)) != 0 && errno == EADDRINUSE;
	close(fd);
	return busy;
}

static enum steer_plan steer_plan(const tld_server_opts *o, const struct sockaddr_storage *addr)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (addr_inherited(o->inherit, addr))
		return STEER_INHERITED;
	if (!o->pin_cpus)
		return STEER_OFF;
	if (ncpu < 1 || o->workers > (unsigned)ncpu)
		return STEER_TOO_MANY;
	return addr_busy(addr) ? STEER_BUSY : STEER_ATTACH;
}

static void steer_apply(tld_server *s, unsigned i, enum steer_plan plan)
{
	char text[80];
	int fd = s->workers[0]->udp[i].fd; /* worker 0's socket for listen[i] */
	tld_addr_format((const struct sockaddr *)&s->opts.listen[i], text, sizeof(text));
	if (plan == STEER_INHERITED) {
		/* Harmless when there is none (ENOENT). */
		if (setsockopt(fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, NULL, 0) == 0)
			tld_log(TLD_LOG_INFO, "udp %s: removed the predecessor's CPU steering",
			        text);
		if (s->opts.pin_cpus)
			tld_log(TLD_LOG_INFO,
			        "udp %s: not steering by CPU: the sockets were inherited, their "
			        "order in the reuseport group is not our workers'",
			        text);
		return;
	}
	if (plan == STEER_TOO_MANY) {
		tld_log(TLD_LOG_INFO, "udp %s: not steering by CPU: %u workers for %ld CPUs", text,
		        s->nworkers, sysconf(_SC_NPROCESSORS_ONLN));
		return;
	}
	if (plan == STEER_BUSY) {
		tld_log(TLD_LOG_INFO,
		        "udp %s: not steering by CPU: another socket was bound there before ours",
		        text);
		return;
	}
	if (plan != STEER_ATTACH)
		return;
	struct sock_filter code[] = {
	    {BPF_LD | BPF_W | BPF_ABS, 0, 0, (uint32_t)(SKF_AD_OFF + SKF_AD_CPU)}, /* A = cpu */
	    {BPF_ALU | BPF_MOD | BPF_K, 0, 0, s->nworkers},                        /* A %= n */
	    {BPF_RET | BPF_A, 0, 0, 0},                                            /* return A */
	};
	struct sock_fprog prog = {.len = sizeof(code) / sizeof(code[0]), .filter = code};
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof(prog)) != 0)
		tld_log(TLD_LOG_WARN, "udp %s: cannot attach the CPU steering program: %s", text,
		        strerror(errno));
	else
		tld_log(TLD_LOG_INFO,
		        "udp %s: steering each datagram to the worker on the receiving CPU "
		        "(%u workers)",
		        text, s->nworkers);
}

/* ---- UDP ---- */

static void udp_prepare_recv(struct worker *w)
{
	for (unsigned i = 0; i < TLD_UDP_BATCH; i++) {
		w->iov_in[i].iov_base = w->inbuf[i];
		w->iov_in[i].iov_len = TLD_UDP_MSG_MAX;
		struct msghdr *m = &w->in[i].msg_hdr;
		m->msg_name = &w->from[i];
		m->msg_namelen = sizeof(w->from[i]);
		m->msg_iov = &w->iov_in[i];
		m->msg_iovlen = 1;
		m->msg_control = w->cmsg_in[i];
		m->msg_controllen = PKTINFO_SPACE;
		m->msg_flags = 0;
	}
}

/* Copies the query's destination address into the reply's source (cmsg). */
static size_t udp_reply_source(const struct msghdr *in, uint8_t *out)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)in); c != NULL;
	     c = CMSG_NXTHDR((struct msghdr *)in, c)) {
		struct cmsghdr *o = (struct cmsghdr *)out;
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			pi.ipi_spec_dst = pi.ipi_addr;
			pi.ipi_ifindex = 0;
			o->cmsg_level = IPPROTO_IP;
			o->cmsg_type = IP_PKTINFO;
			o->cmsg_len = CMSG_LEN(sizeof(pi));
			memcpy(CMSG_DATA(o), &pi, sizeof(pi));
			return CMSG_SPACE(sizeof(pi));
		}
		if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
			o->cmsg_level = IPPROTO_IPV6;
			o->cmsg_type = IPV6_PKTINFO;
			o->cmsg_len = CMSG_LEN(sizeof(struct in6_pktinfo));
			memcpy(CMSG_DATA(o), CMSG_DATA(c), sizeof(struct in6_pktinfo));
			return CMSG_SPACE(sizeof(struct in6_pktinfo));
		}
	}
	return 0;
}

static void udp_send_all(struct udp_sock *u, struct mmsghdr *out, unsigned n)
{
	unsigned sent = 0;
	while (sent < n) {
		int rc = sendmmsg(u->fd, out + sent, n - sent, 0);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			sent++; /* skip the message that failed (e.g. unreachable peer) */
			continue;
		}
		sent += (unsigned)rc;
	}
}

/* One recvmmsg batch: answer and send. Returns messages read (0: drained). */
static int udp_batch(struct udp_sock *u)
{
	struct worker *w = u->w;
	const tld_handler *h = &w->srv->h;
	udp_prepare_recv(w);
	int n = recvmmsg(u->fd, w->in, TLD_UDP_BATCH, MSG_DONTWAIT, NULL);
	if (n <= 0)
		return 0;
	unsigned nout = 0;
	tld_peer peer = {.transport = TLD_UDP};
	h->batch_begin(w->ctx);
	for (int i = 0; i < n; i++) {
		struct msghdr *m = &w->in[i].msg_hdr;
		if (m->msg_flags & MSG_TRUNC)
			continue; /* over TLD_UDP_MSG_MAX: not a query we serve */
		peer.remote = (const struct sockaddr *)&w->from[i];
		peer.remote_len = m->msg_namelen;
		size_t len = h->answer(w->ctx, w->inbuf[i], w->in[i].msg_len, w->outbuf[nout],
		                       TLD_UDP_MSG_MAX, &peer);
		if (len == 0)
			continue;
		struct msghdr *o = &w->out[nout].msg_hdr;
		memset(o, 0, sizeof(*o));
		w->iov_out[nout].iov_base = w->outbuf[nout];
		w->iov_out[nout].iov_len = len;
		o->msg_iov = &w->iov_out[nout];
		o->msg_iovlen = 1;
		o->msg_name = &w->from[i];
		o->msg_namelen = m->msg_namelen;
		if (u->wildcard) {
			size_t cl = udp_reply_source(m, w->cmsg_out[nout]);
			if (cl > 0) {
				o->msg_control = w->cmsg_out[nout];
				o->msg_controllen = cl;
			}
		}
		nout++;
	}
	h->batch_end(w->ctx);
	if (nout > 0)
		udp_send_all(u, w->out, nout);
	return n;
}

static void on_udp_readable(uv_poll_t *p, int status, int events)
{
	struct udp_sock *u = p->data;
	if (status < 0)
		return;
	for (int round = 0; round < UDP_ROUNDS; round++)
		if (udp_batch(u) < TLD_UDP_BATCH)
			break;
}

/* ---- TCP ---- */

static void on_conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void conn_resume(struct tcp_conn *c);

static void conn_handle_closed(uv_handle_t *h)
{
	struct tcp_conn *c = h->data;
	if (--c->closing > 0)
		return;
	c->w->tcp_conns--;
	c->w->stats.tcp_open = c->w->tcp_conns;
	if (c->client_slot >= 0)
		atomic_fetch_sub(&c->w->srv->client_conns[c->client_slot], 1);
	free(c->rbuf);
	free(c);
}

static void conn_close(struct tcp_conn *c)
{
	if (c->closing > 0)
		return;
	c->closing = 2;
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
	uv_close((uv_handle_t *)&c->h, conn_handle_closed);
}

static void on_conn_timeout(uv_timer_t *t)
{
	((struct tcp_conn *)t->data)->w->stats.tcp_timeouts++;
	conn_close(t->data);
}

static void on_write_done(uv_write_t *req, int status)
{
	struct write_req *wr = (struct write_req *)req;
	struct tcp_conn *c = wr->c;
	free(wr);
	c->inflight--;
	if (status < 0) {
		conn_close(c);
		return;
	}
	if (c->closing > 0)
		return;
	if (c->eof && c->inflight == 0 && (!c->lingering || c->peer_eof)) {
		conn_close(c);
		return;
	}
	if (c->paused && !c->eof && c->inflight < c->w->srv->opts.tcp_max_pipeline / 2 + 1)
		conn_resume(c);
}

/* Answers one framed query; returns false if the connection must close. */
static bool conn_answer(struct tcp_conn *c, const uint8_t *q, size_t qlen)
{
	struct worker *w = c->w;
	tld_peer peer = {.transport = TLD_TCP,
	                 .remote = (const struct sockaddr *)&c->peer,
	                 .remote_len = (socklen_t)c->peer_len};
	size_t len = w->srv->h.answer(w->ctx, q, qlen, w->tcp_out + 2, TCP_MSG_MAX, &peer);
	if (len == 0)
		return true;
	struct write_req *wr = malloc(sizeof(*wr) + 2 + len);
	if (wr == NULL)
		return false;
	wr->c = c;
	wr->data[0] = (uint8_t)(len >> 8);
	wr->data[1] = (uint8_t)len;
	memcpy(wr->data + 2, w->tcp_out + 2, len);
	uv_buf_t b = uv_buf_init((char *)wr->data, (unsigned)(2 + len));
	if (uv_write(&wr->req, (uv_stream_t *)&c->h, &b, 1, on_write_done) != 0) {
		free(wr);
		return false;
	}
	c->inflight++;
	return true;
}

/* Answers every complete message in the read buffer. */
static bool conn_process(struct tcp_conn *c)
{
	struct worker *w = c->w;
	size_t off = 0;
	bool ok = true, answered = false;
	w->srv->h.batch_begin(w->ctx);
	while (ok && c->rlen - off >= 2) {
		size_t mlen = (size_t)c->rbuf[off] << 8 | c->rbuf[off + 1];
		if (mlen == 0) {
			ok = false;
			break;
		}
		if (c->rlen - off < 2 + mlen)
			break;
		ok = conn_answer(c, c->rbuf + off + 2, mlen);
		off += 2 + mlen;
		answered = true;
		if (c->inflight >= w->srv->opts.tcp_max_pipeline && !w->stopping)
			break; /* reading pauses; when stopping, everything read is answered */
	}
	w->srv->h.batch_end(w->ctx);
	if (off > 0) { /* rbuf is still NULL when nothing was ever read (conn_stop) */
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
	}
	if (answered && ok && !w->stopping) /* only a complete query restarts the idle clock */
		uv_timer_start(&c->timer, on_conn_timeout, w->srv->opts.tcp_idle_ms, 0);
	return ok;
}

/* Reading paused on a full pipeline: first answer the queries the buffer
 * already holds (no new data may ever come to trigger them), then read again
 * unless the pipeline is full once more (the next completed write resumes). */
static void conn_resume(struct tcp_conn *c)
{
	if (!conn_process(c)) {
		conn_close(c);
		return;
	}
	if (c->inflight >= c->w->srv->opts.tcp_max_pipeline)
		return;
	c->paused = false;
	uv_read_start((uv_stream_t *)&c->h, on_conn_alloc, on_conn_read);
}

static void on_conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct tcp_conn *c = h->data;
	size_t want = c->rlen + 4096;
	if (want > 2 + TCP_MSG_MAX + 4096)
		want = 2 + TCP_MSG_MAX + 4096;
	if (c->rcap < want) {
		uint8_t *p = realloc(c->rbuf, want);
		if (p != NULL) {
			c->rbuf = p;
			c->rcap = want;
		}
	}
	*buf = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void on_conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct tcp_conn *c = s->data;
	if (nread == 0)
		return;
	if (c->lingering) { /* stopping: input is discarded until the peer closes */
		if (nread < 0) {
			uv_read_stop(s);
			c->peer_eof = true;
			if (c->inflight == 0)
				conn_close(c);
		}
		return;
	}
	if (nread < 0) {
		uv_read_stop(s);
		c->eof = true;
		if (c->inflight == 0 || nread != UV_EOF)
			conn_close(c);
		return;
	}
	c->rlen += (size_t)nread;
	if (!conn_process(c)) {
		conn_close(c);
		return;
	}
	if (c->inflight >= c->w->srv->opts.tcp_max_pipeline) {
		uv_read_stop(s);
		c->paused = true;
	}
}

/* Slot of a client address in client_conns. */
static int client_slot(const struct tld_server *srv, const struct sockaddr_storage *ss)
{
	const uint8_t *p;
	size_t n;
	if (ss->ss_family == AF_INET) {
		p = (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;
		n = 4;
	} else if (ss->ss_family == AF_INET6) {
		p = (const uint8_t *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
		n = 16;
	} else {
		return -1;
	}
	uint8_t h[crypto_shorthash_BYTES];
	crypto_shorthash(h, p, n, srv->slot_key);
	return (int)(((uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16) % CLIENT_SLOTS);
}

/* Counts the connection against its client's cap; false when over it. */
static bool client_admit(struct tcp_conn *c)
{
	tld_server *s = c->w->srv;
	c->client_slot = client_slot(c->w->srv, &c->peer);
	if (c->client_slot < 0)
		return true;
	unsigned n = atomic_fetch_add(&s->client_conns[c->client_slot], 1) + 1;
	return s->opts.tcp_max_per_client == 0 || n <= s->opts.tcp_max_per_client;
}

static void on_connection(uv_stream_t *server, int status)
{
	struct tcp_listener *l = server->data;
	struct worker *w = l->w;
	if (status < 0)
		return;
	struct tcp_conn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return;
	c->w = w;
	uv_tcp_init(&w->loop, &c->h);
	uv_timer_init(&w->loop, &c->timer);
	c->h.data = c->timer.data = c;
	c->client_slot = -1;
	w->tcp_conns++;
	w->stats.tcp_open = w->tcp_conns;
	if (uv_accept(server, (uv_stream_t *)&c->h) != 0) {
		conn_close(c);
		return;
	}
	c->peer_len = sizeof(c->peer);
	uv_tcp_getpeername(&c->h, (struct sockaddr *)&c->peer, &c->peer_len);
	if (!client_admit(c) || w->tcp_conns > w->srv->opts.tcp_max_conns || w->stopping) {
		w->stats.tcp_refused++;
		conn_close(c);
		return;
	}
	w->stats.tcp_accepted++;
	uv_timer_start(&c->timer, on_conn_timeout, w->srv->opts.tcp_idle_ms, 0);
	uv_read_start((uv_stream_t *)&c->h, on_conn_alloc, on_conn_read);
}

/* ---- workers ---- */

static void on_conn_shutdown(uv_shutdown_t *req, int status)
{
	struct tcp_conn *c = req->data;
	if (status < 0)
		conn_close(c); /* no-op when already closing (a cancelled shutdown) */
}

/* Stopping, one connection: answer every complete query already received
 * (read into the buffer, or waiting in the kernel's receive queue, up to
 * STOP_DRAIN_MAX bytes more), regardless of the pipeline cap; then send a FIN
 * after the last answer and discard input until the peer closes, so that
 * the connection ends with a FIN and not a reset (which could destroy
 * answers still in flight). A peer that neither reads nor closes holds the
 * stop STOP_GRACE_MS at most (or the idle timeout, if shorter). A client
 * retries on a new connection what it sent after that: the successor serves
 * it. An idle connection is closed at once. */
static void conn_stop(struct tcp_conn *c)
{
	struct worker *w = c->w;
	uv_read_stop((uv_stream_t *)&c->h);
	c->eof = true;
	c->paused = false;
	uv_os_fd_t fd = -1;
	bool ok = conn_process(c);
	size_t budget = STOP_DRAIN_MAX;
	if (uv_fileno((uv_handle_t *)&c->h, &fd) != 0)
		fd = -1;
	while (ok && fd >= 0 && budget > 0) {
		size_t room = 2 + TCP_MSG_MAX + 4096;
		if (c->rcap < room) {
			uint8_t *p = realloc(c->rbuf, room);
			if (p == NULL)
				break;
			c->rbuf = p;
			c->rcap = room;
		}
		room = c->rcap - c->rlen;
		ssize_t r =
		    recv(fd, c->rbuf + c->rlen, room < budget ? room : budget, MSG_DONTWAIT);
		if (r == 0)
			c->peer_eof = true;
		if (r <= 0)
			break;
		c->rlen += (size_t)r;
		budget -= (size_t)r;
		ok = conn_process(c);
	}
	c->rlen = 0; /* an incomplete message is dropped */
	/* Nothing in flight and nothing unread: a plain close() sends the FIN. */
	if (!ok || c->inflight == 0) {
		conn_close(c);
		return;
	}
	c->lingering = true;
	c->shutdown.data = c;
	if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->h, on_conn_shutdown) != 0) {
		conn_close(c);
		return;
	}
	if (!c->peer_eof)
		uv_read_start((uv_stream_t *)&c->h, on_conn_alloc, on_conn_read);
	unsigned grace = w->srv->opts.tcp_idle_ms;
	if (grace > STOP_GRACE_MS)
		grace = STOP_GRACE_MS;
	uv_timer_start(&c->timer, on_conn_timeout, grace, 0);
}

static void close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (uv_is_closing(h))
		return;
	if (h->type == UV_TCP) /* listeners are already closing: a connection */
		conn_stop(h->data);
}

/* At most this many batches are answered from each UDP socket at a stop:
 * more than a 4 MiB receive buffer of queries holds. */
#define STOP_DRAIN_BATCHES 256

static void on_stop(uv_async_t *a)
{
	struct worker *w = a->data;
	w->stopping = true;
	for (unsigned i = 0; i < w->nudp; i++) {
		/* Answer what the socket already holds, then stop reading. A
		 * successor holding the same socket reads what arrives next.
		 * Bounded: under a steady flood the queue never empties, and a
		 * stop (or a reload) must still end. */
		for (int round = 0; round < STOP_DRAIN_BATCHES && udp_batch(&w->udp[i]) > 0;
		     round++)
			;
		uv_poll_stop(&w->udp[i].poll);
		uv_close((uv_handle_t *)&w->udp[i].poll, NULL);
		close(w->udp[i].fd);
		w->udp[i].fd = -1;
	}
	for (unsigned i = 0; i < w->ntcp; i++)
		uv_close((uv_handle_t *)&w->tcp[i].h, NULL);
	uv_walk(&w->loop, close_walk, w);
	uv_close((uv_handle_t *)&w->stop_async, NULL);
}

static int worker_setup(struct worker *w)
{
	const tld_server_opts *o = &w->srv->opts;
	if (uv_loop_init(&w->loop) != 0)
		return TLD_ENOMEM;
	w->loop_init = true;
	uv_async_init(&w->loop, &w->stop_async, on_stop);
	w->stop_async.data = w;
	for (unsigned i = 0; i < w->nudp; i++) {
		struct udp_sock *u = &w->udp[i];
		u->w = w;
		if (uv_poll_init_socket(&w->loop, &u->poll, u->fd) != 0)
			return TLD_EIO;
		u->poll.data = u;
		uv_poll_start(&u->poll, UV_READABLE, on_udp_readable);
	}
	for (unsigned i = 0; i < w->ntcp; i++) {
		struct tcp_listener *l = &w->tcp[i];
		l->w = w;
		uv_tcp_init(&w->loop, &l->h);
		l->h.data = l;
		if (uv_tcp_open(&l->h, l->fd) != 0)
			return TLD_EIO;
		l->fd = -1; /* the handle owns it now: uv_close() closes it */
		if (uv_listen((uv_stream_t *)&l->h, TCP_BACKLOG, on_connection) != 0)
			return TLD_EIO;
	}
	(void)o;
	return TLD_OK;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const tld_server_opts *o = &w->srv->opts;
	if (o->pin_cpus) {
		cpu_set_t set;
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		CPU_ZERO(&set);
		CPU_SET((int)(w->id % (unsigned)(ncpu > 0 ? ncpu : 1)), &set);
		pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	}
	w->ctx = w->srv->h.worker_init(w->srv->h.arg, w->id);
	w->init_err = w->ctx == NULL ? TLD_EINVAL : worker_setup(w);
	sem_post(&w->srv->ready);
	if (w->init_err == 0)
		uv_run(&w->loop, UV_RUN_DEFAULT);
	if (w->ctx != NULL)
		w->srv->h.worker_fini(w->ctx);
	return NULL;
}

static void add_udp(struct worker *w, int fd, const struct sockaddr_storage *addr)
{
	struct udp_sock *u = &w->udp[w->nudp++];
	u->fd = fd;
	u->addr = *addr;
	u->family = addr->ss_family;
	u->wildcard = addr_is_wildcard(addr);
}

static void add_tcp(struct worker *w, int fd, const struct sockaddr_storage *addr)
{
	struct tcp_listener *l = &w->tcp[w->ntcp++];
	l->fd = l->fd_served = fd;
	l->addr = *addr;
}

/* A socket for addr: inherited from a predecessor when it has one left,
 * else a new one. */
static int get_socket(const tld_server_opts *o, int type, const struct sockaddr_storage *addr,
                      tld_errbuf *eb)
{
	int fd = o->inherit ? tld_takeover_take(o->inherit, type, addr) : -1;
	return fd >= 0 ? fd : sock_open(addr, type, o, eb);
}

static int worker_sockets(struct worker *w, const tld_server_opts *o, tld_errbuf *eb)
{
	for (unsigned i = 0; i < o->nlisten; i++) {
		int fd = get_socket(o, SOCK_DGRAM, &o->listen[i], eb);
		if (fd < 0)
			return fd;
		add_udp(w, fd, &o->listen[i]);
		if ((fd = get_socket(o, SOCK_STREAM, &o->listen[i], eb)) < 0)
			return fd;
		add_tcp(w, fd, &o->listen[i]);
	}
	return TLD_OK;
}

/* Inherited sockets beyond what our workers took (the predecessor ran more
 * workers): serve them too, round-robin, or datagrams queued in them would
 * be lost when the predecessor exits. Those for addresses we no longer
 * listen on are left for tld_takeover_release(). */
static void adopt_leftovers(tld_server *s)
{
	tld_takeover_set *set = s->opts.inherit;
	unsigned next = 0;
	for (unsigned i = 0; set != NULL && i < set->n; i++) {
		tld_takeover_sock *t = &set->socks[i];
		bool ours = false;
		for (unsigned j = 0; j < s->opts.nlisten && !ours; j++)
			ours = tld_addr_equal(&s->opts.listen[j], &t->addr);
		if (t->fd < 0 || !ours)
			continue;
		struct worker *w = s->workers[next++ % s->nworkers];
		if (t->type == SOCK_DGRAM && w->nudp < WORKER_SOCK_MAX)
			add_udp(w, t->fd, &t->addr);
		else if (t->type == SOCK_STREAM && w->ntcp < WORKER_SOCK_MAX)
			add_tcp(w, t->fd, &t->addr);
		else
			continue;
		t->fd = -1;
	}
}

static void worker_close_fds(struct worker *w)
{
	for (unsigned i = 0; i < w->nudp; i++) {
		if (w->udp[i].fd >= 0)
			close(w->udp[i].fd);
		w->udp[i].fd = -1;
	}
	for (unsigned i = 0; i < w->ntcp; i++) {
		if (w->tcp[i].fd >= 0)
			close(w->tcp[i].fd);
		w->tcp[i].fd = -1;
	}
}

unsigned tld_server_sockets(const tld_server *s, tld_takeover_sock *out, unsigned max)
{
	unsigned n = 0;
	for (unsigned i = 0; i < s->nworkers; i++) {
		const struct worker *w = s->workers[i];
		for (unsigned j = 0; j < w->nudp && n < max; j++)
			out[n++] = (tld_takeover_sock){
			    .fd = w->udp[j].fd, .type = SOCK_DGRAM, .addr = w->udp[j].addr};
		for (unsigned j = 0; j < w->ntcp && n < max; j++)
			out[n++] = (tld_takeover_sock){
			    .fd = w->tcp[j].fd_served, .type = SOCK_STREAM, .addr = w->tcp[j].addr};
	}
	return n;
}

static void discard_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

/* Releases what a worker that failed to start holds (its thread has exited,
 * so this thread may use its loop): handles first, then its sockets. */
static void worker_discard(struct worker *w)
{
	if (w->loop_init) {
		uv_walk(&w->loop, discard_walk, NULL);
		uv_run(&w->loop, UV_RUN_DEFAULT);
	}
	worker_close_fds(w);
}

int tld_server_start(tld_server **out, const tld_server_opts *o, const tld_handler *h,
                     tld_errbuf *eb)
{
	if (sodium_init() < 0)
		return tld_errf(eb, TLD_EIO, "libsodium cannot start (no randomness?)");
	tld_server *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return tld_errf(eb, TLD_ENOMEM, "out of memory");
	crypto_shorthash_keygen(s->slot_key);
	s->opts = *o;
	s->h = *h;
	if (s->opts.workers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		s->opts.workers = n > 0 ? (unsigned)n : 1;
	}
	if (s->opts.tcp_max_pipeline == 0)
		s->opts.tcp_max_pipeline = 1;
	sem_init(&s->ready, 0, 0);
	enum steer_plan steer[TLD_LISTEN_MAX]; /* before sockets are taken or bound */
	for (unsigned i = 0; i < s->opts.nlisten; i++)
		steer[i] = steer_plan(&s->opts, &s->opts.listen[i]);
	s->workers = calloc(s->opts.workers, sizeof(*s->workers));
	int err = s->workers ? TLD_OK : tld_errf(eb, TLD_ENOMEM, "out of memory");
	for (unsigned i = 0; err == 0 && i < s->opts.workers; i++) {
		struct worker *w = calloc(1, sizeof(*w));
		if (w == NULL) {
			err = tld_errf(eb, TLD_ENOMEM, "out of memory");
			break;
		}
		w->id = i;
		w->srv = s;
		s->workers[s->nworkers++] = w;
		err = worker_sockets(w, &s->opts, eb);
	}
	for (unsigned i = 0; err == 0 && i < s->opts.nlisten; i++)
		steer_apply(s, i, steer[i]);
	if (err == 0)
		adopt_leftovers(s);
	unsigned started = 0;
	for (unsigned i = 0; err == 0 && i < s->nworkers; i++) {
		if (pthread_create(&s->workers[i]->thread, NULL, worker_main, s->workers[i]) != 0) {
			err = tld_errf(eb, TLD_ENOMEM, "cannot start worker thread");
			break;
		}
		started++;
	}
	for (unsigned i = 0; i < started; i++)
		sem_wait(&s->ready);
	for (unsigned i = 0; err == 0 && i < started; i++)
		if (s->workers[i]->init_err < 0)
			err = tld_errf(eb, s->workers[i]->init_err, "worker %u failed to start", i);
	if (err < 0) {
		/* Running workers stop as on tld_server_stop(); one that failed has
		 * no loop running (maybe none at all): its thread has exited. */
		for (unsigned i = 0; i < started; i++) {
			struct worker *w = s->workers[i];
			if (w->init_err == 0)
				uv_async_send(&w->stop_async);
			pthread_join(w->thread, NULL);
			if (w->init_err != 0)
				worker_discard(w);
		}
		for (unsigned i = started; i < s->nworkers; i++)
			worker_close_fds(s->workers[i]);
		tld_server_free(s);
		return err;
	}
	*out = s;
	return TLD_OK;
}

void tld_server_stop(tld_server *s)
{
	for (unsigned i = 0; i < s->nworkers; i++)
		uv_async_send(&s->workers[i]->stop_async);
	for (unsigned i = 0; i < s->nworkers; i++)
		pthread_join(s->workers[i]->thread, NULL);
}

void tld_server_worker_stats(const tld_server *s, unsigned i, tld_server_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (i < s->nworkers)
		*out = s->workers[i]->stats;
}

unsigned tld_server_workers(const tld_server *s)
{
	return s->nworkers;
}

void *tld_server_worker_ctx(const tld_server *s, unsigned i)
{
	return i < s->nworkers ? s->workers[i]->ctx : NULL;
}

void tld_server_free(tld_server *s)
{
	if (s == NULL)
		return;
	for (unsigned i = 0; i < s->nworkers; i++) {
		struct worker *w = s->workers[i];
		if (w->loop_init)
			uv_loop_close(&w->loop);
		free(w);
	}
	free(s->workers);
	sem_destroy(&s->ready);
	free(s);
}
