/* tldbench.h - the DNS load generator's shared types: configuration, query list, statistics,
 * workers. See README.md in this directory. */
#ifndef TLDBENCH_H
#define TLDBENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define TB_BATCH      64    /* messages per sendmmsg / recvmmsg */
#define TB_IDS        65536 /* query ids per socket (the 16-bit DNS id) */
#define TB_RBUF       4096  /* receive buffer per UDP message */
#define TB_HIST_N     1152  /* latency histogram buckets (ns, 32 per power of two, up to 2^40) */
#define TB_NSID_MAX   64    /* distinct NSID strings counted; more go to "(other)" */
#define TB_NSID_LEN   128   /* NSID bytes kept */
#define TB_TCP_RBUF   (2 * 65538)
#define TB_TCP_WBUF   65536
#define TB_SEND_SLICE 1024 /* most queries sent between two looks at the receive side */

enum { TB_MIX_REFERRAL, TB_MIX_NXDOMAIN, TB_MIX_DS, TB_MIX_APEX, TB_MIX_N };

typedef struct tb_config {
	struct sockaddr_storage server;
	socklen_t server_len;
	struct sockaddr_storage local;
	socklen_t local_len; /* 0: no -a */
	char server_text[300];
	int family; /* AF_UNSPEC, AF_INET, AF_INET6 (-f) */
	const char *server_name;
	const char *local_name;
	unsigned port;
	bool tcp;
	double limit_s;       /* -l, 0 = none */
	uint64_t maxruns;     /* -n, 0 = none */
	double qps;           /* -Q, 0 = closed loop */
	unsigned clients;     /* -c */
	unsigned threads;     /* -T */
	unsigned outstanding; /* -q */
	double timeout_s;     /* -t */
	bool edns, do_bit, nsid;
	bool no_gso;
	unsigned edns_size;
	int bufsize; /* socket buffers in bytes (-b is KB) */
	bool quiet;
	double stats_interval;
	unsigned tick_us; /* open loop: one batch per tick */
	const char *json_path;
	const char *datafile; /* NULL or "-": stdin */
	const char *zonefile, *origin;
	double do_share;
	unsigned long nqueries;
	uint64_t seed;
	unsigned mix[TB_MIX_N];
} tb_config;

/* Precomputed query messages (id 0), back to back in data. */
typedef struct tb_queries {
	uint8_t *data;
	size_t len, cap;
	uint32_t *off;
	uint16_t *plen;
	uint8_t
	    *run; /* after tb_queries_group(): queries of the same length from here on (1..64) */
	size_t n, ncap;
	uint64_t n_do;
	uint64_t mix_count[TB_MIX_N];
	char desc[512];
} tb_queries;

/* Fills qs from a dnsperf data file ("name TYPE" lines; NULL or "-" = stdin). Returns 0, or -1
 * with a message in err. */
int tb_queries_from_file(tb_queries *qs, const tb_config *cfg, char *err, size_t errlen);
/* Fills qs with a mix derived from cfg->zonefile (referrals, NXDOMAIN, DS, apex). */
int tb_queries_from_zone(tb_queries *qs, const tb_config *cfg, char *err, size_t errlen);
/* Reorders the queries into runs of up to TB_BATCH messages of one length (each query keeps its
 * place up to the next TB_BATCH of its length), so a run goes out in one UDP GSO send. */
int tb_queries_group(tb_queries *qs);
void tb_queries_free(tb_queries *qs);

typedef struct tb_nsid {
	uint8_t len;
	uint8_t id[TB_NSID_LEN];
	uint64_t count;
} tb_nsid;

typedef struct tb_stats {
	uint64_t sent, completed, lost, unexpected, truncated;
	uint64_t req_bytes, resp_bytes;
	uint64_t rcode[16];
	uint64_t lat_min, lat_max; /* ns */
	double lat_sum, lat_sumsq; /* seconds */
	uint64_t hist[TB_HIST_N];
	unsigned n_nsid;
	tb_nsid nsid[TB_NSID_MAX];
	uint64_t nsid_none, nsid_other;
	uint64_t conn_ok, conn_fail; /* TCP */
	int conn_errno;
} tb_stats;

static inline unsigned tb_hist_index(uint64_t ns)
{
	if (ns >= (1ull << 40))
		ns = (1ull << 40) - 1;
	if (ns < 32)
		return (unsigned)ns;
	unsigned e = 63u - (unsigned)__builtin_clzll(ns);
	return (e - 5) * 32 + (unsigned)(ns >> (e - 5));
}

/* Lower bound and width of bucket i, in ns. */
void tb_hist_bucket(unsigned i, uint64_t *low, uint64_t *width);
/* The q-quantile (0..1) of the latencies in st, in ns (the middle of its bucket, clamped to the
 * observed min/max); 0 when there is none. */
uint64_t tb_hist_quantile(const tb_stats *st, double q);
void tb_stats_merge(tb_stats *into, const tb_stats *from);

/* What the main thread and the workers share. */
typedef struct tb_control {
	uint64_t start_ns, end_ns; /* CLOCK_MONOTONIC; end_ns = UINT64_MAX without -l */
	atomic_int stop;           /* set by SIGINT: stop sending */
} tb_control;

/* A UDP socket or a TCP connection, with its outstanding queries. */
typedef struct tb_sock {
	int fd;
	uint32_t head, tail; /* next id to use; oldest id that may be outstanding */
	uint32_t outstanding;
	uint64_t *ts; /* TB_IDS send times (CLOCK_MONOTONIC ns), 0 = not outstanding */
	/* TCP only */
	int state; /* 0 closed, 1 connecting, 2 up */
	uint64_t retry_at;
	uint8_t *rbuf, *wbuf;
	uint32_t rlen, wlen, woff;
} tb_sock;

typedef struct tb_worker {
	int index;
	const tb_config *cfg;
	const tb_queries *qs;
	tb_control *ctl;
	pthread_t thread;
	int ep;
	tb_sock *socks;
	unsigned nsock, rr;
	size_t qpos;
	uint64_t qlimit; /* queries this worker may send (-n), UINT64_MAX without */
	double rate;     /* its share of -Q, 0 = closed loop */
	unsigned qmax;   /* its share of -q */
	uint64_t outstanding;
	uint64_t timeout_ns;
	uint64_t tick_ns;
	int64_t rt_off;      /* CLOCK_REALTIME - CLOCK_MONOTONIC, for kernel receive timestamps */
	uint64_t stop_ns;    /* when it stopped sending */
	uint64_t last_rx_ns; /* its last answer */
	double pkt_ns;       /* usual sendmmsg time per message (moving average) */
	bool gso;            /* send runs of same-length queries with UDP_SEGMENT */
	tb_stats st;
	atomic_uint_fast64_t p_sent, p_completed, p_lost;
	atomic_int done;
	/* UDP batch buffers */
	struct mmsghdr smsg[TB_BATCH];
	struct iovec siov[2 * TB_BATCH];
	uint16_t sid[TB_BATCH];
	struct mmsghdr rmsg[TB_BATCH];
	struct iovec riov[TB_BATCH];
	uint8_t (*rbuf)[TB_RBUF];
	char (*rctl)[64];
} tb_worker;

/* Opens w's sockets (UDP) or prepares its connections (TCP). Returns 0 or -1 with err. */
int tb_worker_init(tb_worker *w, char *err, size_t errlen);
/* The worker thread. */
void *tb_worker_main(void *arg);
void tb_worker_free(tb_worker *w);

uint64_t tb_now(void); /* CLOCK_MONOTONIC in ns */

#endif
