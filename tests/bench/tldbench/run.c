/* run.c - tldbench's workers: UDP (sendmmsg/recvmmsg over many sockets, epoll) and TCP
 * (pipelined, length-framed), paced by a token bucket (-Q) or closed loop (-q outstanding).
 *
 * Matching answers to queries costs no allocation: every socket (or connection) hands out the
 * ids 0..65535 in turn and keeps the send time of each in an array indexed by id (0 = not
 * outstanding). Ids are used in order, so the oldest outstanding query is at the ring's tail and
 * finding timed-out queries is a walk from there that stops at the first one still in time.
 * UDP receive times come from the kernel (SO_TIMESTAMPNS), so the paced loop can sleep a whole
 * tick and read a tick's worth of answers in one recvmmsg without distorting latencies. */
#include "tldbench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "dns/rrtype.h"
#include "dns/wire.h"

#define TICK_NS 1000000ull /* pacing tick and timeout scan period: 1 ms */

uint64_t tb_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int64_t realtime_offset(void)
{
	struct timespec a, b, c;
	clock_gettime(CLOCK_MONOTONIC, &a);
	clock_gettime(CLOCK_REALTIME, &b);
	clock_gettime(CLOCK_MONOTONIC, &c);
	int64_t mono = ((int64_t)a.tv_sec * 1000000000 + a.tv_nsec +
	                (int64_t)c.tv_sec * 1000000000 + c.tv_nsec) /
	               2;
	return (int64_t)b.tv_sec * 1000000000 + b.tv_nsec - mono;
}

/* ---- statistics ---- */

void tb_hist_bucket(unsigned i, uint64_t *low, uint64_t *width)
{
	if (i < 32) {
		*low = i;
		*width = 1;
		return;
	}
	unsigned e = i / 32 + 4, sub = i % 32 + 32;
	*low = (uint64_t)sub << (e - 5);
	*width = 1ull << (e - 5);
}

uint64_t tb_hist_quantile(const tb_stats *st, double q)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < TB_HIST_N; i++)
		total += st->hist[i];
	if (total == 0)
		return 0;
	double want = q * (double)total;
	uint64_t rank = (uint64_t)want;
	if ((double)rank < want || rank == 0)
		rank++;
	uint64_t cum = 0;
	for (unsigned i = 0; i < TB_HIST_N; i++) {
		cum += st->hist[i];
		if (cum >= rank) {
			uint64_t low, width;
			tb_hist_bucket(i, &low, &width);
			uint64_t v = low + width / 2;
			if (v < st->lat_min)
				v = st->lat_min;
			if (v > st->lat_max)
				v = st->lat_max;
			return v;
		}
	}
	return st->lat_max;
}

static void nsid_count(tb_stats *st, const uint8_t *id, unsigned len, uint64_t n)
{
	if (len > TB_NSID_LEN)
		len = TB_NSID_LEN;
	for (unsigned i = 0; i < st->n_nsid; i++)
		if (st->nsid[i].len == len && memcmp(st->nsid[i].id, id, len) == 0) {
			st->nsid[i].count += n;
			return;
		}
	if (st->n_nsid == TB_NSID_MAX) {
		st->nsid_other += n;
		return;
	}
	tb_nsid *e = &st->nsid[st->n_nsid++];
	e->len = (uint8_t)len;
	memcpy(e->id, id, len);
	e->count = n;
}

void tb_stats_merge(tb_stats *a, const tb_stats *b)
{
	if (b->completed && (a->completed == 0 || b->lat_min < a->lat_min))
		a->lat_min = b->lat_min;
	if (b->lat_max > a->lat_max)
		a->lat_max = b->lat_max;
	a->sent += b->sent;
	a->completed += b->completed;
	a->lost += b->lost;
	a->unexpected += b->unexpected;
	a->truncated += b->truncated;
	a->req_bytes += b->req_bytes;
	a->resp_bytes += b->resp_bytes;
	for (int i = 0; i < 16; i++)
		a->rcode[i] += b->rcode[i];
	a->lat_sum += b->lat_sum;
	a->lat_sumsq += b->lat_sumsq;
	for (unsigned i = 0; i < TB_HIST_N; i++)
		a->hist[i] += b->hist[i];
	for (unsigned i = 0; i < b->n_nsid; i++)
		nsid_count(a, b->nsid[i].id, b->nsid[i].len, b->nsid[i].count);
	a->nsid_none += b->nsid_none;
	a->nsid_other += b->nsid_other;
	a->conn_ok += b->conn_ok;
	a->conn_fail += b->conn_fail;
	if (!a->conn_errno)
		a->conn_errno = b->conn_errno;
}

/* Finds the NSID option in a response (only with --nsid: a walk over every record). */
static void note_nsid(tb_stats *st, const uint8_t *p, size_t len)
{
	size_t off = TLD_HDR_LEN, next;
	unsigned qd = (unsigned)p[4] << 8 | p[5];
	unsigned rrs = ((unsigned)p[6] << 8 | p[7]) + ((unsigned)p[8] << 8 | p[9]) +
	               ((unsigned)p[10] << 8 | p[11]);
	for (unsigned i = 0; i < qd; i++) {
		if (tld_wire_name_read(p, len, off, NULL, &next) < 0 || next + 4 > len)
			goto none;
		off = next + 4;
	}
	for (unsigned i = 0; i < rrs; i++) {
		tld_wire_rr rr;
		if (tld_wire_rr_read(p, len, off, &rr, &next) < 0)
			goto none;
		off = next;
		if (rr.type != TLD_T_OPT)
			continue;
		size_t o = rr.rdata_off, end = (size_t)rr.rdata_off + rr.rdlen;
		while (o + 4 <= end) {
			unsigned code = (unsigned)p[o] << 8 | p[o + 1];
			unsigned ol = (unsigned)p[o + 2] << 8 | p[o + 3];
			if (o + 4 + ol > end)
				break;
			if (code == TLD_EDNS_NSID) {
				nsid_count(st, p + o + 4, ol, 1);
				return;
			}
			o += 4 + ol;
		}
		break;
	}
none:
	st->nsid_none++;
}

/* One answer to a query sent at sent_ns, received at rx_ns. */
static inline void note_answer(tb_worker *w, tb_sock *s, uint16_t id, uint64_t sent_ns,
                               uint64_t rx_ns, const uint8_t *p, size_t len)
{
	tb_stats *st = &w->st;
	s->ts[id] = 0;
	s->outstanding--;
	w->outstanding--;
	uint64_t lat = rx_ns > sent_ns ? rx_ns - sent_ns : 0;
	if (rx_ns > w->last_rx_ns)
		w->last_rx_ns = rx_ns;
	st->completed++;
	st->resp_bytes += len;
	st->rcode[p[3] & 15]++;
	st->truncated += (p[2] >> 1) & 1;
	if (lat < st->lat_min || st->completed == 1)
		st->lat_min = lat;
	if (lat > st->lat_max)
		st->lat_max = lat;
	double sec = (double)lat * 1e-9;
	st->lat_sum += sec;
	st->lat_sumsq += sec * sec;
	st->hist[tb_hist_index(lat)]++;
	if (w->cfg->nsid)
		note_nsid(st, p, len);
}

/* A message received at rx_ns on s: the answer to one of its queries in
 * flight, or counted as unexpected (not a response, late, or foreign). */
static void match_answer(tb_worker *w, tb_sock *s, const uint8_t *p, size_t len, uint64_t rx_ns)
{
	if (len < TLD_HDR_LEN || !(p[2] & 0x80)) {
		w->st.unexpected++;
		return;
	}
	uint16_t id = (uint16_t)(p[0] << 8 | p[1]);
	uint64_t t = s->ts[id];
	if (!t) {
		w->st.unexpected++; /* late (already lost) or foreign */
		return;
	}
	note_answer(w, s, id, t, rx_ns, p, len);
}

/* Expires the queries of s sent before now - timeout (all of them when now is UINT64_MAX). */
static void expire(tb_worker *w, tb_sock *s, uint64_t now)
{
	while (s->tail != s->head) {
		uint32_t id = s->tail & (TB_IDS - 1);
		uint64_t t = s->ts[id];
		if (t) {
			if (now != UINT64_MAX && now - t < w->timeout_ns)
				break;
			s->ts[id] = 0;
			s->outstanding--;
			w->outstanding--;
			w->st.lost++;
		}
		s->tail++;
	}
}

/* Takes the next id of s; if the ring is full, the oldest query is given up as lost. */
static inline uint16_t take_id(tb_worker *w, tb_sock *s)
{
	if (s->head - s->tail == TB_IDS) {
		uint32_t old = s->tail & (TB_IDS - 1);
		if (s->ts[old]) {
			s->ts[old] = 0;
			s->outstanding--;
			w->outstanding--;
			w->st.lost++;
		}
		s->tail++;
	}
	return (uint16_t)(s->head++ & (TB_IDS - 1));
}

static inline size_t next_query(tb_worker *w)
{
	size_t q = w->qpos++;
	if (w->qpos == w->qs->n)
		w->qpos = 0;
	return q;
}

static void publish(tb_worker *w)
{
	atomic_store_explicit(&w->p_sent, w->st.sent, memory_order_relaxed);
	atomic_store_explicit(&w->p_completed, w->st.completed, memory_order_relaxed);
	atomic_store_explicit(&w->p_lost, w->st.lost, memory_order_relaxed);
}

/* ---- set-up ---- */

static void set_buffers(int fd, int bytes)
{
	if (bytes <= 0)
		return;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) != 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof(bytes)) != 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes));
}

int tb_worker_init(tb_worker *w, char *err, size_t errlen)
{
	const tb_config *cfg = w->cfg;
	w->ep = epoll_create1(EPOLL_CLOEXEC);
	if (w->ep < 0) {
		snprintf(err, errlen, "epoll_create1: %s", strerror(errno));
		return -1;
	}
	w->socks = calloc(w->nsock, sizeof(*w->socks));
	if (!w->socks) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (unsigned i = 0; i < w->nsock; i++) {
		tb_sock *s = &w->socks[i];
		s->fd = -1;
		/* Pages are touched only as ids are used. */
		s->ts = calloc(TB_IDS, sizeof(uint64_t));
		if (!s->ts) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		if (cfg->tcp) {
			s->rbuf = malloc(TB_TCP_RBUF);
			s->wbuf = malloc(TB_TCP_WBUF);
			if (!s->rbuf || !s->wbuf) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			continue; /* connected by the worker */
		}
		s->fd = socket(cfg->server.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (s->fd < 0) {
			snprintf(err, errlen, "socket: %s", strerror(errno));
			return -1;
		}
		set_buffers(s->fd, cfg->bufsize);
		int one = 1;
		setsockopt(s->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
		if (cfg->local_len &&
		    bind(s->fd, (const struct sockaddr *)&cfg->local, cfg->local_len) != 0) {
			snprintf(err, errlen, "bind to %s: %s", cfg->local_name, strerror(errno));
			return -1;
		}
		if (connect(s->fd, (const struct sockaddr *)&cfg->server, cfg->server_len) != 0) {
			snprintf(err, errlen, "connect to %s: %s", cfg->server_text,
			         strerror(errno));
			return -1;
		}
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
		if (epoll_ctl(w->ep, EPOLL_CTL_ADD, s->fd, &ev) != 0) {
			snprintf(err, errlen, "epoll_ctl: %s", strerror(errno));
			return -1;
		}
	}
	if (!cfg->tcp) {
		w->rbuf = malloc((size_t)TB_BATCH * TB_RBUF);
		w->rctl = malloc((size_t)TB_BATCH * 64);
		if (!w->rbuf || !w->rctl) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		for (int i = 0; i < TB_BATCH; i++) {
			w->smsg[i].msg_hdr =
			    (struct msghdr){.msg_iov = &w->siov[2 * i], .msg_iovlen = 2};
			w->riov[i] = (struct iovec){w->rbuf[i], TB_RBUF};
			w->rmsg[i].msg_hdr = (struct msghdr){.msg_iov = &w->riov[i],
			                                     .msg_iovlen = 1,
			                                     .msg_control = w->rctl[i],
			                                     .msg_controllen = 64};
		}
	}
	return 0;
}

void tb_worker_free(tb_worker *w)
{
	for (unsigned i = 0; w->socks && i < w->nsock; i++) {
		if (w->socks[i].fd >= 0)
			close(w->socks[i].fd);
		free(w->socks[i].ts);
		free(w->socks[i].rbuf);
		free(w->socks[i].wbuf);
	}
	free(w->socks);
	free(w->rbuf);
	free(w->rctl);
	if (w->ep >= 0)
		close(w->ep);
}

/* ---- UDP ---- */

/* Sends up to k (<= TB_BATCH) queries on s with one sendmmsg; returns how many went out.
 * The kernel sends the messages one after the other, so message i gets the send time
 * t0 + i * (t1 - t0) / r, t0 and t1 being the clock before and after the call, r the messages
 * sent (the start of its slot: an answer may come back before the call returns). */
static unsigned udp_send(tb_worker *w, tb_sock *s, unsigned k, uint64_t *clock)
{
	uint64_t t0 = *clock;
	const tb_queries *qs = w->qs;
	uint16_t ids[TB_BATCH];
	uint32_t bytes[TB_BATCH];
	for (unsigned i = 0; i < k; i++) {
		size_t q = next_query(w);
		const uint8_t *pkt = qs->data + qs->off[q];
		uint16_t id = take_id(w, s);
		ids[i] = id;
		w->sid[i] = htons(id);
		w->siov[2 * i] = (struct iovec){&w->sid[i], 2};
		w->siov[2 * i + 1] = (struct iovec){(void *)(pkt + 2), qs->plen[q] - 2u};
		bytes[i] = qs->plen[q];
	}
	int r = sendmmsg(s->fd, w->smsg, k, 0);
	if (r <= 0)
		return 0; /* EAGAIN, ENOBUFS, ECONNREFUSED (ICMP): those ids stay unused */
	uint64_t t1 = tb_now();
	*clock = t1;
	/* Time per message: this call's, unless it is far above the usual (the thread was
	 * preempted inside the call: then the messages after the pause get stamps earlier than
	 * their real send times, which overstates their latency rather than making it negative). */
	double per = (double)(t1 - t0) / r;
	if (w->pkt_ns > 0 && per > 2 * w->pkt_ns)
		per = w->pkt_ns;
	else if (r >= 4)
		w->pkt_ns = w->pkt_ns > 0 ? 0.9 * w->pkt_ns + 0.1 * per : per;
	for (unsigned i = 0; i < (unsigned)r; i++) {
		s->ts[ids[i]] = t0 + (uint64_t)(per * i);
		w->st.req_bytes += bytes[i];
	}
	s->outstanding += (unsigned)r;
	w->outstanding += (unsigned)r;
	w->st.sent += (unsigned)r;
	return (unsigned)r;
}

/* Sends up to k queries of one length (the run at qpos) on s with one sendmsg and UDP GSO: the
 * kernel cuts the buffer into datagrams of that length, so the whole run costs one trip down the
 * stack. Returns how many went out (0 or the run); turns GSO off if the kernel refuses it. */
static unsigned udp_send_gso(tb_worker *w, tb_sock *s, unsigned k, uint64_t *clock)
{
	const tb_queries *qs = w->qs;
	size_t q0 = w->qpos;
	if (k > qs->run[q0])
		k = qs->run[q0];
	uint16_t ids[TB_BATCH];
	uint16_t len = qs->plen[q0];
	for (unsigned i = 0; i < k; i++) {
		size_t q = q0 + i;
		uint16_t id = take_id(w, s);
		ids[i] = id;
		w->sid[i] = htons(id);
		w->siov[2 * i] = (struct iovec){&w->sid[i], 2};
		w->siov[2 * i + 1] = (struct iovec){(void *)(qs->data + qs->off[q] + 2), len - 2u};
	}
	union {
		char buf[CMSG_SPACE(sizeof(uint16_t))];
		struct cmsghdr align;
	} ctl;
	struct msghdr h = {.msg_iov = w->siov, .msg_iovlen = 2 * k};
	if (k > 1) {
		h.msg_control = ctl.buf;
		h.msg_controllen = sizeof(ctl.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&h);
		c->cmsg_level = SOL_UDP;
		c->cmsg_type = UDP_SEGMENT;
		c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
		memcpy(CMSG_DATA(c), &len, sizeof(len));
	}
	ssize_t r = sendmsg(s->fd, &h, 0);
	if (r < 0) {
		if (errno == EINVAL || errno == ENOPROTOOPT || errno == EOPNOTSUPP || errno == EIO)
			w->gso = false; /* no UDP GSO here: sendmmsg from now on */
		return 0;               /* those ids stay unused */
	}
	uint64_t t1 = tb_now();
	uint64_t t0 = *clock;
	*clock = t1;
	double per = (double)(t1 - t0) / k;
	if (w->pkt_ns > 0 && per > 2 * w->pkt_ns)
		per = w->pkt_ns;
	else if (k >= 4)
		w->pkt_ns = w->pkt_ns > 0 ? 0.9 * w->pkt_ns + 0.1 * per : per;
	for (unsigned i = 0; i < k; i++)
		s->ts[ids[i]] = t0 + (uint64_t)(per * i);
	w->qpos = q0 + k == qs->n ? 0 : q0 + k;
	w->st.req_bytes += (uint64_t)len * k;
	s->outstanding += k;
	w->outstanding += k;
	w->st.sent += k;
	return k;
}

/* Sends n queries spread over the sockets in batches; returns how many went out. */
static uint64_t udp_send_many(tb_worker *w, uint64_t n)
{
	uint64_t done = 0;
	unsigned fails = 0;
	uint64_t t0 = tb_now();
	while (done < n && fails < w->nsock) {
		unsigned k = n - done > TB_BATCH ? TB_BATCH : (unsigned)(n - done);
		tb_sock *s = &w->socks[w->rr];
		if (++w->rr == w->nsock)
			w->rr = 0;
		unsigned r = w->gso ? udp_send_gso(w, s, k, &t0) : udp_send(w, s, k, &t0);
		done += r;
		fails = r ? 0 : fails + 1;
	}
	return done;
}

static void udp_recv(tb_worker *w, tb_sock *s, uint64_t now)
{
	for (;;) {
		int n = recvmmsg(s->fd, w->rmsg, TB_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0) {
			if (n < 0 && errno == ECONNREFUSED)
				continue; /* an ICMP error queued on the socket: read on */
			return;
		}
		for (int i = 0; i < n; i++) {
			struct msghdr *h = &w->rmsg[i].msg_hdr;
			const uint8_t *p = w->rbuf[i];
			size_t len = w->rmsg[i].msg_len;
			uint64_t rx = now;
			for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c))
				if (c->cmsg_level == SOL_SOCKET &&
				    c->cmsg_type == SCM_TIMESTAMPNS) {
					struct timespec ts;
					memcpy(&ts, CMSG_DATA(c), sizeof(ts));
					rx = (uint64_t)((int64_t)ts.tv_sec * 1000000000 +
					                ts.tv_nsec - w->rt_off);
				}
			h->msg_controllen = 64;
			match_answer(w, s, p, len, rx);
		}
		if (n < TB_BATCH)
			return;
	}
}

/* Reads whatever the sockets hold; waits up to timeout_ms for the first answer. */
static void udp_poll(tb_worker *w, int timeout_ms)
{
	struct epoll_event ev[256];
	int maxev = w->nsock < 256 ? (int)w->nsock : 256;
	int n = epoll_wait(w->ep, ev, maxev, timeout_ms);
	if (n <= 0)
		return;
	uint64_t now = tb_now();
	for (int i = 0; i < n; i++)
		udp_recv(w, &w->socks[ev[i].data.u32], now);
}

static void expire_all(tb_worker *w, uint64_t now)
{
	for (unsigned i = 0; i < w->nsock; i++)
		expire(w, &w->socks[i], now);
}

/* ---- the send phase, shared by the UDP and TCP loops ---- */

/* Sending stops when the time is up in a closed loop (an open loop stops
 * after its last tick), the query limit is reached or a stop is asked. */
static bool send_should_stop(const tb_worker *w, bool time_up)
{
	return (time_up && w->rate == 0) || w->st.sent >= w->qlimit ||
	       atomic_load_explicit(&w->ctl->stop, memory_order_relaxed);
}

/* Ends sending at now; answers are awaited until the returned deadline. */
static uint64_t stop_sending(tb_worker *w, bool *sending, uint64_t now)
{
	*sending = false;
	w->stop_ns = now;
	return now + w->timeout_ns;
}

/* After sending: every answer is in, the wait is over, or a second stop. */
static bool drain_over(const tb_worker *w, uint64_t now, uint64_t drain_end)
{
	return w->outstanding == 0 || now >= drain_end ||
	       atomic_load_explicit(&w->ctl->stop, memory_order_relaxed) > 1;
}

/* Every tick: time out lost queries and publish the counters; every second,
 * re-read the offset of the realtime clock (for timestamps in the JSON). */
static void every_tick(tb_worker *w, uint64_t now, uint64_t *last_scan, uint64_t *last_sync)
{
	if (now - *last_scan < TICK_NS)
		return;
	expire_all(w, now);
	*last_scan = now;
	publish(w);
	if (now - *last_sync >= 1000000000ull) {
		w->rt_off = realtime_offset();
		*last_sync = now;
	}
}

/* Closed loop: queries that may be sent now (outstanding cap, query limit,
 * one slice at most). */
static uint64_t closed_loop_room(const tb_worker *w)
{
	uint64_t room = w->qmax > w->outstanding ? w->qmax - w->outstanding : 0;
	if (room > w->qlimit - w->st.sent)
		room = w->qlimit - w->st.sent;
	return room > TB_SEND_SLICE ? TB_SEND_SLICE : room;
}

/* Open loop pacing: a token bucket filled at the target rate. Credit accrues up to the end of
 * the run, so a run of L seconds at R q/s sends R * L queries; after a stall, up to 100 ms of
 * missed credit is caught up, but at most 4 ticks' worth per tick, so the catching up does not
 * become one burst that overflows the server's socket buffer. */
typedef struct pacer {
	double tokens, burst;
	uint64_t last, tick, next_tick, tick_sent, tick_cap;
} pacer;

static void pacer_init(pacer *p, const tb_worker *w, uint64_t now)
{
	p->tokens = 0;
	p->burst = w->rate * 0.1;
	if (p->burst < TB_BATCH)
		p->burst = TB_BATCH;
	p->last = w->ctl->start_ns;
	p->tick = w->tick_ns;
	p->next_tick = now + p->tick;
	p->tick_sent = 0;
	p->tick_cap = (uint64_t)(4 * w->rate * (double)p->tick * 1e-9);
	if (p->tick_cap < TB_BATCH)
		p->tick_cap = TB_BATCH;
}

/* How many queries to send now. */
static uint64_t pacer_due(pacer *p, const tb_worker *w, uint64_t now)
{
	if (now >= p->next_tick) { /* a new tick: to the next boundary after now */
		p->next_tick = now - (now - p->next_tick) % p->tick + p->tick;
		p->tick_sent = 0;
	}
	uint64_t t = now < w->ctl->end_ns ? now : w->ctl->end_ns;
	if (t > p->last) {
		p->tokens += w->rate * (double)(t - p->last) * 1e-9;
		p->last = t;
	}
	if (p->tokens > p->burst)
		p->tokens = p->burst;
	uint64_t k = (uint64_t)(p->tokens + 1e-6);
	if (k > p->tick_cap - p->tick_sent)
		k = p->tick_cap - p->tick_sent;
	if (k > TB_SEND_SLICE)
		k = TB_SEND_SLICE;
	if (k > w->qlimit - w->st.sent)
		k = w->qlimit - w->st.sent;
	return k;
}

static void pacer_sent(pacer *p, uint64_t n)
{
	p->tokens -= (double)n;
	p->tick_sent += n;
}

/* Nothing more to send in this tick: wait for the next. */
static bool pacer_idle(const pacer *p)
{
	return p->tokens < 1.0 || p->tick_sent >= p->tick_cap;
}

static void *udp_main(tb_worker *w)
{
	tb_control *ctl = w->ctl;
	uint64_t now = tb_now();
	uint64_t last_scan = now, last_sync = now, drain_end = 0;
	pacer pc;
	pacer_init(&pc, w, now);
	unsigned min_send = w->qmax / 8;
	if (min_send > TB_BATCH / 2)
		min_send = TB_BATCH / 2;
	if (min_send < 1)
		min_send = 1;
	bool sending = true;
	for (;;) {
		now = tb_now();
		bool time_up = now >= ctl->end_ns;
		if (sending && send_should_stop(w, time_up))
			drain_end = stop_sending(w, &sending, now);
		every_tick(w, now, &last_scan, &last_sync);
		if (!sending) {
			if (drain_over(w, now, drain_end))
				break;
			udp_poll(w, 1);
			continue;
		}
		if (w->rate > 0) {
			/* Open loop: a tick's answers, then a tick's queries, then sleep. */
			udp_poll(w, 0);
			uint64_t k = pacer_due(&pc, w, now);
			if (k)
				pacer_sent(&pc, udp_send_many(w, k));
			if (time_up) {
				drain_end = stop_sending(w, &sending, now);
				continue;
			}
			if (pacer_idle(&pc)) {
				struct timespec ts = {(time_t)(pc.next_tick / 1000000000ull),
				                      (long)(pc.next_tick % 1000000000ull)};
				clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
			}
		} else {
			/* Closed loop: keep up to qmax outstanding, in batches. */
			uint64_t room = closed_loop_room(w);
			uint64_t sent = 0;
			if (room >= min_send || (room && w->outstanding == 0))
				sent = udp_send_many(w, room);
			udp_poll(w, sent ? 0 : 1);
		}
	}
	expire_all(w, UINT64_MAX);
	publish(w);
	return NULL;
}

/* ---- TCP ---- */

static void tcp_close(tb_worker *w, tb_sock *s, uint64_t now, int err)
{
	if (s->fd >= 0) {
		epoll_ctl(w->ep, EPOLL_CTL_DEL, s->fd, NULL);
		close(s->fd);
	}
	if (s->state == 1) {
		w->st.conn_fail++;
		if (!w->st.conn_errno)
			w->st.conn_errno = err;
	}
	s->fd = -1;
	s->state = 0;
	s->rlen = s->wlen = s->woff = 0;
	expire(w, s, UINT64_MAX); /* what it had outstanding is lost */
	s->retry_at = now + 10 * TICK_NS;
}

static void tcp_connect(tb_worker *w, tb_sock *s, unsigned idx, uint64_t now)
{
	const tb_config *cfg = w->cfg;
	s->fd = socket(cfg->server.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		s->retry_at = now + 100 * TICK_NS;
		return;
	}
	int one = 1;
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	set_buffers(s->fd, cfg->bufsize);
	if (cfg->local_len)
		bind(s->fd, (const struct sockaddr *)&cfg->local, cfg->local_len);
	s->state = 1;
	if (connect(s->fd, (const struct sockaddr *)&cfg->server, cfg->server_len) != 0 &&
	    errno != EINPROGRESS) {
		tcp_close(w, s, now, errno);
		return;
	}
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = idx};
	epoll_ctl(w->ep, EPOLL_CTL_ADD, s->fd, &ev);
}

static void tcp_flush(tb_worker *w, tb_sock *s, uint64_t now)
{
	while (s->woff < s->wlen) {
		ssize_t r = write(s->fd, s->wbuf + s->woff, s->wlen - s->woff);
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			tcp_close(w, s, now, errno);
			return;
		}
		s->woff += (uint32_t)r;
	}
	s->woff = s->wlen = 0;
}

/* Queues up to k queries on s (as many as its write buffer takes) and writes them. */
static unsigned tcp_send(tb_worker *w, tb_sock *s, unsigned k, uint64_t now)
{
	const tb_queries *qs = w->qs;
	unsigned done = 0;
	if (s->woff) { /* make room */
		memmove(s->wbuf, s->wbuf + s->woff, s->wlen - s->woff);
		s->wlen -= s->woff;
		s->woff = 0;
	}
	while (done < k) {
		size_t q = w->qpos;
		unsigned len = qs->plen[q];
		if (s->wlen + 2 + len > TB_TCP_WBUF)
			break;
		next_query(w);
		uint16_t id = take_id(w, s);
		uint8_t *p = s->wbuf + s->wlen;
		p[0] = (uint8_t)(len >> 8);
		p[1] = (uint8_t)len;
		memcpy(p + 2, qs->data + qs->off[q], len);
		p[2] = (uint8_t)(id >> 8);
		p[3] = (uint8_t)id;
		s->wlen += 2 + len;
		s->ts[id] = now;
		s->outstanding++;
		w->outstanding++;
		w->st.sent++;
		w->st.req_bytes += len;
		done++;
	}
	tcp_flush(w, s, now);
	return done;
}

static uint64_t tcp_send_many(tb_worker *w, uint64_t n, uint64_t now)
{
	uint64_t done = 0;
	unsigned idle = 0;
	while (done < n && idle < w->nsock) {
		tb_sock *s = &w->socks[w->rr];
		if (++w->rr == w->nsock)
			w->rr = 0;
		if (s->state != 2) {
			idle++;
			continue;
		}
		unsigned k = n - done > TB_BATCH ? TB_BATCH : (unsigned)(n - done);
		unsigned r = tcp_send(w, s, k, now);
		done += r;
		idle = r ? 0 : idle + 1;
	}
	return done;
}

static void tcp_read(tb_worker *w, tb_sock *s, uint64_t now)
{
	for (;;) {
		ssize_t r = read(s->fd, s->rbuf + s->rlen, TB_TCP_RBUF - s->rlen);
		if (r == 0) {
			tcp_close(w, s, now, 0);
			return;
		}
		if (r < 0) {
			if (errno != EAGAIN && errno != EINTR)
				tcp_close(w, s, now, errno);
			return;
		}
		s->rlen += (uint32_t)r;
		uint32_t off = 0;
		while (s->rlen - off >= 2) {
			uint32_t len = (uint32_t)s->rbuf[off] << 8 | s->rbuf[off + 1];
			if (s->rlen - off - 2 < len)
				break;
			const uint8_t *p = s->rbuf + off + 2;
			off += 2 + len;
			match_answer(w, s, p, len, now);
		}
		if (off) {
			memmove(s->rbuf, s->rbuf + off, s->rlen - off);
			s->rlen -= off;
		}
		if ((size_t)r < TB_TCP_RBUF / 2)
			return;
	}
}

static void tcp_poll(tb_worker *w, uint64_t timeout_ns)
{
	struct epoll_event ev[256];
	int maxev = w->nsock < 256 ? (int)w->nsock : 256;
	struct timespec ts = {(time_t)(timeout_ns / 1000000000ull),
	                      (long)(timeout_ns % 1000000000ull)};
	int n = epoll_pwait2(w->ep, ev, maxev, &ts, NULL);
	if (n <= 0)
		return;
	uint64_t now = tb_now();
	for (int i = 0; i < n; i++) {
		tb_sock *s = &w->socks[ev[i].data.u32];
		if (s->fd < 0)
			continue;
		if (s->state == 1) {
			int e = 0;
			socklen_t el = sizeof(e);
			getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &e, &el);
			if (e) {
				tcp_close(w, s, now, e);
				continue;
			}
			if (!(ev[i].events & (EPOLLOUT | EPOLLIN)))
				continue;
			s->state = 2;
			w->st.conn_ok++;
			struct epoll_event mev = {.events = EPOLLIN, .data.u32 = ev[i].data.u32};
			epoll_ctl(w->ep, EPOLL_CTL_MOD, s->fd, &mev);
			continue;
		}
		if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
			tcp_read(w, s, now);
	}
}

static void *tcp_main(tb_worker *w)
{
	tb_control *ctl = w->ctl;
	uint64_t now = tb_now();
	uint64_t last_scan = now, last_sync = now, drain_end = 0;
	pacer pc;
	pacer_init(&pc, w, now);
	bool sending = true;
	for (;;) {
		now = tb_now();
		bool time_up = now >= ctl->end_ns;
		if (sending && send_should_stop(w, time_up))
			drain_end = stop_sending(w, &sending, now);
		every_tick(w, now, &last_scan, &last_sync);
		for (unsigned i = 0; i < w->nsock; i++) {
			tb_sock *s = &w->socks[i];
			if (s->state == 0 && sending && now >= s->retry_at)
				tcp_connect(w, s, i, now);
			else if (s->state == 2 && s->woff < s->wlen)
				tcp_flush(w, s, now);
		}
		if (!sending) {
			if (drain_over(w, now, drain_end))
				break;
			tcp_poll(w, TICK_NS);
			continue;
		}
		uint64_t wait = TICK_NS;
		if (w->rate > 0) {
			uint64_t k = pacer_due(&pc, w, now);
			if (k)
				pacer_sent(&pc, tcp_send_many(w, k, now));
			if (time_up) {
				drain_end = stop_sending(w, &sending, now);
				continue;
			}
			wait = pacer_idle(&pc) ? pc.next_tick - now : 0;
		} else {
			uint64_t room = closed_loop_room(w);
			uint64_t sent = room ? tcp_send_many(w, room, now) : 0;
			wait = sent ? 0 : TICK_NS;
		}
		tcp_poll(w, wait);
	}
	for (unsigned i = 0; i < w->nsock; i++)
		if (w->socks[i].state == 1)
			tcp_close(w, &w->socks[i], now, ETIMEDOUT);
	expire_all(w, UINT64_MAX);
	publish(w);
	return NULL;
}

void *tb_worker_main(void *arg)
{
	tb_worker *w = arg;
	w->rt_off = realtime_offset();
	void *r = w->cfg->tcp ? tcp_main(w) : udp_main(w);
	atomic_store(&w->done, 1);
	return r;
}
