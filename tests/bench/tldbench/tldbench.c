/* tldbench.c - a cheap DNS load generator with dnsperf's options and summary: options, set-up,
 * progress and the report. The workers are in run.c, the query list in queries.c. */
#include "tldbench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: tldbench [-s SERVER] [-p PORT] [-d DATAFILE | --zone ZONEFILE] [OPTIONS]\n"
    "dnsperf's options:\n"
    "  -s SERVER        server address or name, IPv4 or IPv6 (default 127.0.0.1)\n"
    "  -p PORT          server port (default 53)\n"
    "  -f FAMILY        inet or inet6: address family of SERVER (default any)\n"
    "  -a ADDR          local address to send from\n"
    "  -m MODE          udp (default) or tcp\n"
    "  -d DATAFILE      queries, \"name TYPE\" per line, cycled (default stdin)\n"
    "  -l SECONDS       run for this long (default: through the input once)\n"
    "  -n RUNS          run through the input at most RUNS times\n"
    "  -Q QPS           open loop: send at this rate, whatever the answers\n"
    "                   (default: closed loop, as fast as the server answers)\n"
    "  -q N             closed loop: queries outstanding at most (default 1000)\n"
    "  -c N             clients: UDP sockets or TCP connections (default 64)\n"
    "  -T N             threads (default 1)\n"
    "  -t SECONDS       a query unanswered after this is lost (default 5)\n"
    "  -e               EDNS on (the default; payload size 1232)\n"
    "  -D               DNSSEC OK bit on in every query\n"
    "  -b KB            socket send/receive buffers (default 4096 KB)\n"
    "  -S SECONDS       progress line interval (default 1)\n"
    "tldbench's own:\n"
    "  --no-edns        queries without EDNS\n"
    "  --edns-size N    EDNS payload size (default 1232)\n"
    "  --nsid           request NSID in every query; report answers per responder\n"
    "  --zone FILE      derive the query mix from a zone file instead of -d\n"
    "  --origin NAME    the zone's apex (default: the SOA owner in FILE)\n"
    "  --do-share F     --zone: share of queries with DO=1 (default 0.3)\n"
    "  --mix R,N,D,A    --zone: percentages of referrals, NXDOMAIN, DS, apex (default 70,20,5,5)\n"
    "  --nqueries N     --zone: queries generated (default 100000)\n"
    "  --seed N         --zone: random seed (default 1)\n"
    "  --json FILE      write every figure as JSON to FILE\n"
    "  --no-gso         UDP: sendmmsg, queries in input order (default: runs of same-length\n"
    "                   queries, each sent with one UDP GSO sendmsg)\n"
    "  --tick US        open loop: send one batch every US microseconds (default 1000)\n"
    "  --quiet          no progress lines\n"
    "  -h, --help       this text\n"
    "exit status: 0 run done (lost queries included), 1 failure, 2 usage error\n";

static const char *const rcode_names[16] = {
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE",  "rcode11",  "rcode12", "rcode13", "rcode14",  "rcode15"};

static tb_control control;

static int usage_error(const char *why, const char *arg)
{
	fprintf(stderr, "tldbench: %s%s%s\n%s", why, arg ? ": " : "", arg ? arg : "", usage_text);
	return 2;
}

static void on_signal(int sig)
{
	(void)sig;
	atomic_fetch_add(&control.stop, 1);
}

static bool parse_double(const char *s, double min, double max, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= min && v <= max))
		return false;
	*out = v;
	return true;
}

static bool parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	if (!*s || *s == '-')
		return false;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static int resolve(const char *name, unsigned port, int family, struct sockaddr_storage *ss,
                   socklen_t *len, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_family = family, .ai_socktype = SOCK_DGRAM}, *res;
	char ps[16];
	snprintf(ps, sizeof(ps), "%u", port);
	int rc = getaddrinfo(name, ps, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", name, gai_strerror(rc));
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static double ns_to_s(uint64_t ns)
{
	return (double)ns * 1e-9;
}

static double pct(uint64_t a, uint64_t b)
{
	return b ? 100.0 * (double)a / (double)b : 0.0;
}

static double tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

static void json_string(FILE *f, const uint8_t *s, size_t len)
{
	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			fprintf(f, "\\%c", s[i]);
		else if (s[i] < 0x20 || s[i] >= 0x7f)
			fprintf(f, "\\u%04x", s[i]);
		else
			fputc(s[i], f);
	}
	fputc('"', f);
}

/* NSID for humans: printable ASCII as is, anything else as hex. */
static void nsid_text(const tb_nsid *n, char *buf, size_t buflen)
{
	bool printable = n->len > 0;
	for (unsigned i = 0; i < n->len; i++)
		if (n->id[i] < 0x20 || n->id[i] >= 0x7f)
			printable = false;
	size_t o = 0;
	if (printable)
		o = (size_t)snprintf(buf, buflen, "%.*s", (int)n->len, (const char *)n->id);
	else if (n->len == 0)
		o = (size_t)snprintf(buf, buflen, "(empty)");
	else
		for (unsigned i = 0; i < n->len && o + 3 < buflen; i++)
			o += (size_t)snprintf(buf + o, buflen - o, "%02x", n->id[i]);
	(void)o;
}

typedef struct report {
	const tb_config *cfg;
	const tb_queries *qs;
	tb_stats st;
	double run_s, qps, avg, sd;
	uint64_t p50, p90, p99, p999;
	double cpu_user, cpu_sys;
	unsigned threads, clients;
	const char *ended;
} report;

static int write_json(const report *r, const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
	if (!f)
		return -1;
	const tb_stats *st = &r->st;
	const tb_config *cfg = r->cfg;
	fprintf(f, "{\n  \"tool\": \"tldbench\",\n  \"server\": ");
	json_string(f, (const uint8_t *)cfg->server_text, strlen(cfg->server_text));
	fprintf(f, ",\n  \"mode\": \"%s\",\n  \"clients\": %u,\n  \"threads\": %u,\n",
	        cfg->tcp ? "tcp" : "udp", r->clients, r->threads);
	fprintf(f, "  \"target_qps\": %.3f,\n  \"max_outstanding\": %u,\n  \"timeout_s\": %.3f,\n",
	        cfg->qps, cfg->outstanding, cfg->timeout_s);
	fprintf(f, "  \"edns\": %s,\n  \"do_bit\": %s,\n  \"nsid_requested\": %s,\n",
	        cfg->edns ? "true" : "false", cfg->do_bit ? "true" : "false",
	        cfg->nsid ? "true" : "false");
	fprintf(f, "  \"queries_loaded\": %zu,\n  \"queries_with_do\": %" PRIu64 ",\n  \"input\": ",
	        r->qs->n, r->qs->n_do);
	json_string(f, (const uint8_t *)r->qs->desc, strlen(r->qs->desc));
	fprintf(f,
	        ",\n  \"queries_sent\": %" PRIu64 ",\n  \"queries_completed\": %" PRIu64
	        ",\n  \"queries_lost\": %" PRIu64 ",\n  \"responses_unexpected\": %" PRIu64
	        ",\n  \"responses_truncated\": %" PRIu64 ",\n",
	        st->sent, st->completed, st->lost, st->unexpected, st->truncated);
	fprintf(f, "  \"avg_request_size\": %.2f,\n  \"avg_response_size\": %.2f,\n",
	        st->sent ? (double)st->req_bytes / (double)st->sent : 0.0,
	        st->completed ? (double)st->resp_bytes / (double)st->completed : 0.0);
	fprintf(f, "  \"run_time_s\": %.6f,\n  \"queries_per_second\": %.6f,\n", r->run_s, r->qps);
	fprintf(f,
	        "  \"latency_s\": {\"avg\": %.9f, \"stddev\": %.9f, \"min\": %.9f, \"max\": %.9f, "
	        "\"p50\": %.9f, \"p90\": %.9f, \"p99\": %.9f, \"p99_9\": %.9f},\n",
	        r->avg, r->sd, ns_to_s(st->lat_min), ns_to_s(st->lat_max), ns_to_s(r->p50),
	        ns_to_s(r->p90), ns_to_s(r->p99), ns_to_s(r->p999));
	fprintf(f, "  \"rcodes\": {");
	bool first = true;
	for (int i = 0; i < 16; i++)
		if (st->rcode[i]) {
			fprintf(f, "%s\"%s\": %" PRIu64, first ? "" : ", ", rcode_names[i],
			        st->rcode[i]);
			first = false;
		}
	fprintf(f, "},\n  \"nsid\": {");
	first = true;
	for (unsigned i = 0; i < st->n_nsid; i++) {
		fprintf(f, "%s", first ? "" : ", ");
		json_string(f, st->nsid[i].id, st->nsid[i].len);
		fprintf(f, ": %" PRIu64, st->nsid[i].count);
		first = false;
	}
	fprintf(f, "},\n  \"nsid_none\": %" PRIu64 ",\n  \"nsid_other\": %" PRIu64 ",\n",
	        st->nsid_none, st->nsid_other);
	if (cfg->tcp)
		fprintf(f,
		        "  \"tcp_connections\": %" PRIu64 ",\n  \"tcp_connect_failures\": %" PRIu64
		        ",\n",
		        st->conn_ok, st->conn_fail);
	fprintf(f,
	        "  \"cpu_user_s\": %.6f,\n  \"cpu_sys_s\": %.6f,\n  \"cpu_us_per_query\": %.4f,\n",
	        r->cpu_user, r->cpu_sys,
	        st->sent ? (r->cpu_user + r->cpu_sys) * 1e6 / (double)st->sent : 0.0);
	fprintf(f, "  \"latency_histogram_ns\": [");
	first = true;
	for (unsigned i = 0; i < TB_HIST_N; i++)
		if (st->hist[i]) {
			uint64_t low, width;
			tb_hist_bucket(i, &low, &width);
			fprintf(f, "%s[%" PRIu64 ", %" PRIu64 ", %" PRIu64 "]", first ? "" : ", ",
			        low, low + width, st->hist[i]);
			first = false;
		}
	fprintf(f, "],\n  \"ended\": \"%s\"\n}\n", r->ended);
	if (f == stdout)
		return fflush(f) == 0 ? 0 : -1;
	return fclose(f) == 0 ? 0 : -1;
}

static void print_report(const report *r)
{
	const tb_stats *st = &r->st;
	printf("[Status] Testing complete (%s)\n\n", r->ended);
	printf("Statistics:\n\n");
	printf("  Queries sent:         %" PRIu64 "\n", st->sent);
	printf("  Queries completed:    %" PRIu64 " (%.2f%%)\n", st->completed,
	       pct(st->completed, st->sent));
	printf("  Queries lost:         %" PRIu64 " (%.2f%%)\n", st->lost, pct(st->lost, st->sent));
	printf("\n");
	printf("  Response codes:       ");
	bool first = true;
	for (int i = 0; i < 16; i++)
		if (st->rcode[i]) {
			printf("%s%s %" PRIu64 " (%.2f%%)", first ? "" : ", ", rcode_names[i],
			       st->rcode[i], pct(st->rcode[i], st->completed));
			first = false;
		}
	printf("\n");
	printf("  Average packet size:  request %u, response %u\n",
	       st->sent ? (unsigned)(st->req_bytes / st->sent) : 0,
	       st->completed ? (unsigned)(st->resp_bytes / st->completed) : 0);
	printf("  Run time (s):         %.6f\n", r->run_s);
	printf("  Queries per second:   %.6f\n", r->qps);
	printf("\n");
	printf("  Average Latency (s):  %.6f (min %.6f, max %.6f)\n", r->avg, ns_to_s(st->lat_min),
	       ns_to_s(st->lat_max));
	if (st->completed > 1)
		printf("  Latency StdDev (s):   %.6f\n", r->sd);
	printf("\n");
	printf("Latency percentiles (s):\n");
	printf("  p50:                  %.6f\n", ns_to_s(r->p50));
	printf("  p90:                  %.6f\n", ns_to_s(r->p90));
	printf("  p99:                  %.6f\n", ns_to_s(r->p99));
	printf("  p99.9:                %.6f\n", ns_to_s(r->p999));
	printf("\n");
	printf("Rcode mix:\n");
	for (int i = 0; i < 16; i++)
		if (st->rcode[i])
			printf("  %-22s%" PRIu64 " (%.2f%%)\n", rcode_names[i], st->rcode[i],
			       pct(st->rcode[i], st->completed));
	if (st->completed == 0)
		printf("  (no answers)\n");
	printf("\n");
	if (r->cfg->nsid) {
		printf("Responders (NSID):\n");
		for (unsigned i = 0; i < st->n_nsid; i++) {
			char t[2 * TB_NSID_LEN + 8];
			nsid_text(&st->nsid[i], t, sizeof(t));
			printf("  %-22s%" PRIu64 " (%.2f%%)\n", t, st->nsid[i].count,
			       pct(st->nsid[i].count, st->completed));
		}
		if (st->nsid_none)
			printf("  %-22s%" PRIu64 " (%.2f%%)\n", "(no NSID)", st->nsid_none,
			       pct(st->nsid_none, st->completed));
		if (st->nsid_other)
			printf("  %-22s%" PRIu64 " (%.2f%%)\n", "(other)", st->nsid_other,
			       pct(st->nsid_other, st->completed));
		printf("\n");
	}
	printf("Generator:\n");
	printf("  Unexpected responses: %" PRIu64 "\n", st->unexpected);
	printf("  Truncated (TC=1):     %" PRIu64 "\n", st->truncated);
	if (r->cfg->tcp)
		printf("  TCP connections:      %" PRIu64 " (%" PRIu64 " failed attempts)\n",
		       st->conn_ok, st->conn_fail);
	printf("  CPU (s):              user %.3f, sys %.3f (%.3f us per query sent)\n",
	       r->cpu_user, r->cpu_sys,
	       st->sent ? (r->cpu_user + r->cpu_sys) * 1e6 / (double)st->sent : 0.0);
	printf("\n");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	tb_config cfg = {
	    .server_name = "127.0.0.1",
	    .port = 53,
	    .family = AF_UNSPEC,
	    .clients = 64,
	    .threads = 1,
	    .outstanding = 1000,
	    .timeout_s = 5,
	    .edns = true,
	    .edns_size = 1232,
	    .bufsize = 4 << 20,
	    .stats_interval = 1,
	    .tick_us = 1000,
	    .do_share = 0.3,
	    .nqueries = 100000,
	    .seed = 1,
	    .mix = {70, 20, 5, 5},
	};
	enum {
		O_NO_EDNS = 256,
		O_EDNS_SIZE,
		O_NSID,
		O_ZONE,
		O_ORIGIN,
		O_DO_SHARE,
		O_MIX,
		O_NQUERIES,
		O_SEED,
		O_JSON,
		O_QUIET,
		O_TICK,
		O_NO_GSO
	};
	static const struct option longopts[] = {
	    {"no-edns", no_argument, NULL, O_NO_EDNS},
	    {"edns-size", required_argument, NULL, O_EDNS_SIZE},
	    {"nsid", no_argument, NULL, O_NSID},
	    {"zone", required_argument, NULL, O_ZONE},
	    {"origin", required_argument, NULL, O_ORIGIN},
	    {"do-share", required_argument, NULL, O_DO_SHARE},
	    {"mix", required_argument, NULL, O_MIX},
	    {"nqueries", required_argument, NULL, O_NQUERIES},
	    {"seed", required_argument, NULL, O_SEED},
	    {"json", required_argument, NULL, O_JSON},
	    {"quiet", no_argument, NULL, O_QUIET},
	    {"tick", required_argument, NULL, O_TICK},
	    {"no-gso", no_argument, NULL, O_NO_GSO},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	bool do_share_set = false;
	int opt;
	unsigned long v;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":s:p:f:a:m:d:l:n:Q:q:c:T:t:eDb:S:h", longopts,
	                          NULL)) != -1) {
		switch (opt) {
		case 's':
			cfg.server_name = optarg;
			break;
		case 'p':
			if (!parse_ulong(optarg, 1, 65535, &v))
				return usage_error("-p takes a port 1..65535", optarg);
			cfg.port = (unsigned)v;
			break;
		case 'f':
			if (strcmp(optarg, "inet") == 0)
				cfg.family = AF_INET;
			else if (strcmp(optarg, "inet6") == 0)
				cfg.family = AF_INET6;
			else if (strcmp(optarg, "any") == 0)
				cfg.family = AF_UNSPEC;
			else
				return usage_error("-f takes inet, inet6 or any", optarg);
			break;
		case 'a':
			cfg.local_name = optarg;
			break;
		case 'm':
			if (strcmp(optarg, "udp") == 0)
				cfg.tcp = false;
			else if (strcmp(optarg, "tcp") == 0)
				cfg.tcp = true;
			else
				return usage_error("-m takes udp or tcp", optarg);
			break;
		case 'd':
			cfg.datafile = optarg;
			break;
		case 'l':
			if (!parse_double(optarg, 0.001, 1e7, &cfg.limit_s))
				return usage_error("-l takes seconds (> 0)", optarg);
			break;
		case 'n':
			if (!parse_ulong(optarg, 1, 1000000000000ul, &v))
				return usage_error("-n takes a positive count", optarg);
			cfg.maxruns = v;
			break;
		case 'Q':
			if (!parse_double(optarg, 1, 1e9, &cfg.qps))
				return usage_error("-Q takes queries per second (>= 1)", optarg);
			break;
		case 'q':
			if (!parse_ulong(optarg, 1, 10000000, &v))
				return usage_error("-q takes 1..10000000", optarg);
			cfg.outstanding = (unsigned)v;
			break;
		case 'c':
			if (!parse_ulong(optarg, 1, 65536, &v))
				return usage_error("-c takes 1..65536", optarg);
			cfg.clients = (unsigned)v;
			break;
		case 'T':
			if (!parse_ulong(optarg, 1, 256, &v))
				return usage_error("-T takes 1..256", optarg);
			cfg.threads = (unsigned)v;
			break;
		case 't':
			if (!parse_double(optarg, 0.001, 3600, &cfg.timeout_s))
				return usage_error("-t takes seconds (0.001..3600)", optarg);
			break;
		case 'e':
			cfg.edns = true;
			break;
		case 'D':
			cfg.do_bit = true;
			cfg.edns = true;
			break;
		case 'b':
			if (!parse_ulong(optarg, 1, 1 << 20, &v))
				return usage_error("-b takes kilobytes (1..1048576)", optarg);
			cfg.bufsize = (int)(v * 1024);
			break;
		case 'S':
			if (!parse_double(optarg, 0.1, 3600, &cfg.stats_interval))
				return usage_error("-S takes seconds (0.1..3600)", optarg);
			break;
		case O_NO_EDNS:
			cfg.edns = false;
			break;
		case O_EDNS_SIZE:
			if (!parse_ulong(optarg, 512, 65535, &v))
				return usage_error("--edns-size takes 512..65535", optarg);
			cfg.edns_size = (unsigned)v;
			break;
		case O_NSID:
			cfg.nsid = true;
			break;
		case O_ZONE:
			cfg.zonefile = optarg;
			break;
		case O_ORIGIN:
			cfg.origin = optarg;
			break;
		case O_DO_SHARE:
			if (!parse_double(optarg, 0, 1, &cfg.do_share))
				return usage_error("--do-share takes 0..1", optarg);
			do_share_set = true;
			break;
		case O_MIX: {
			unsigned m[TB_MIX_N], sum = 0;
			char tail;
			if (sscanf(optarg, "%u,%u,%u,%u%c", &m[0], &m[1], &m[2], &m[3], &tail) != 4)
				return usage_error("--mix takes R,N,D,A (percentages)", optarg);
			for (int i = 0; i < TB_MIX_N; i++) {
				if (m[i] > 1000000)
					return usage_error("--mix: share too large", optarg);
				sum += m[i];
			}
			if (sum == 0)
				return usage_error("--mix: all shares are 0", optarg);
			memcpy(cfg.mix, m, sizeof(m));
			break;
		}
		case O_NQUERIES:
			if (!parse_ulong(optarg, 1, 100000000, &v))
				return usage_error("--nqueries takes 1..100000000", optarg);
			cfg.nqueries = v;
			break;
		case O_SEED:
			if (!parse_ulong(optarg, 0, ULONG_MAX, &v))
				return usage_error("--seed takes a number", optarg);
			cfg.seed = v;
			break;
		case O_JSON:
			cfg.json_path = optarg;
			break;
		case O_QUIET:
			cfg.quiet = true;
			break;
		case O_NO_GSO:
			cfg.no_gso = true;
			break;
		case O_TICK:
			if (!parse_ulong(optarg, 10, 1000000, &v))
				return usage_error("--tick takes microseconds (10..1000000)",
				                   optarg);
			cfg.tick_us = (unsigned)v;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case ':':
			return usage_error("option needs an argument", argv[optind - 1]);
		default:
			return usage_error("unknown option", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument", argv[optind]);
	if (cfg.zonefile && cfg.datafile)
		return usage_error("-d and --zone exclude each other", NULL);
	if (!cfg.zonefile && (cfg.origin || do_share_set))
		return usage_error("--origin and --do-share go with --zone", NULL);
	if (cfg.nsid && !cfg.edns)
		return usage_error("--nsid needs EDNS (drop --no-edns)", NULL);
	if (cfg.do_bit && !cfg.edns)
		return usage_error("-D needs EDNS (drop --no-edns)", NULL);
	if (cfg.limit_s == 0 && cfg.maxruns == 0)
		cfg.maxruns = 1; /* as dnsperf: through the input once */
	if (cfg.threads > cfg.clients)
		cfg.threads = cfg.clients;
	if (cfg.qps == 0 && cfg.outstanding < cfg.threads)
		cfg.threads = cfg.outstanding;

	char err[600];
	if (resolve(cfg.server_name, cfg.port, cfg.family, &cfg.server, &cfg.server_len, err,
	            sizeof(err)) != 0) {
		fprintf(stderr, "tldbench: %s\n", err);
		return 1;
	}
	if (cfg.local_name) {
		if (resolve(cfg.local_name, 0, cfg.server.ss_family, &cfg.local, &cfg.local_len,
		            err, sizeof(err)) != 0) {
			fprintf(stderr, "tldbench: -a: %s\n", err);
			return 1;
		}
	}
	{
		char host[INET6_ADDRSTRLEN] = "?";
		const void *a = cfg.server.ss_family == AF_INET6
		                    ? (const void *)&((struct sockaddr_in6 *)&cfg.server)->sin6_addr
		                    : (const void *)&((struct sockaddr_in *)&cfg.server)->sin_addr;
		inet_ntop(cfg.server.ss_family, a, host, sizeof(host));
		snprintf(cfg.server_text, sizeof(cfg.server_text),
		         cfg.server.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, cfg.port);
	}

	tb_queries qs = {0};
	int qrc = cfg.zonefile ? tb_queries_from_zone(&qs, &cfg, err, sizeof(err))
	                       : tb_queries_from_file(&qs, &cfg, err, sizeof(err));
	if (qrc != 0) {
		fprintf(stderr, "tldbench: %s\n", err);
		return 1;
	}

	if (!cfg.tcp && !cfg.no_gso && tb_queries_group(&qs) != 0) {
		fprintf(stderr, "tldbench: out of memory\n");
		return 1;
	}

	printf("tldbench - DNS load generator (dnsperf-compatible summary)\n\n");
	printf("[Status] Command line: tldbench");
	for (int i = 1; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\n[Status] Input: %s\n", qs.desc);
	printf("[Status] Sending queries (to %s, %s, %u clients, %u thread%s, %s)\n",
	       cfg.server_text, cfg.tcp ? "tcp" : "udp", cfg.clients, cfg.threads,
	       cfg.threads == 1 ? "" : "s", cfg.qps > 0 ? "open loop" : "closed loop");
	{
		time_t t = time(NULL);
		char tb[64];
		strftime(tb, sizeof(tb), "%a %b %e %H:%M:%S %Y", localtime(&t));
		printf("[Status] Started at: %s\n", tb);
	}
	if (cfg.limit_s > 0)
		printf("[Status] Stopping after %.6f seconds\n", cfg.limit_s);
	if (cfg.maxruns)
		printf("[Status] Stopping after %" PRIu64 " run%s through the input\n", cfg.maxruns,
		       cfg.maxruns == 1 ? "" : "s");
	fflush(stdout);

	unsigned nt = cfg.threads;
	tb_worker *ws = calloc(nt, sizeof(*ws));
	if (!ws) {
		fprintf(stderr, "tldbench: out of memory\n");
		return 1;
	}
	uint64_t total_limit = cfg.maxruns ? cfg.maxruns * (uint64_t)qs.n : UINT64_MAX;
	int rc = 0;
	for (unsigned i = 0; i < nt; i++) {
		tb_worker *w = &ws[i];
		w->index = (int)i;
		w->ep = -1;
		w->cfg = &cfg;
		w->qs = &qs;
		w->ctl = &control;
		w->nsock = cfg.clients / nt + (i < cfg.clients % nt);
		w->qpos = qs.n * i / nt;
		while (qs.run && w->qpos > 0 && w->qpos < qs.n && qs.run[w->qpos - 1] != 1)
			w->qpos++; /* start at a run */
		if (w->qpos >= qs.n)
			w->qpos = 0;
		w->gso = !cfg.tcp && !cfg.no_gso;
		w->qlimit = total_limit == UINT64_MAX ? UINT64_MAX
		                                      : total_limit / nt + (i < total_limit % nt);
		w->rate = cfg.qps / nt;
		w->qmax = cfg.outstanding / nt + (i < cfg.outstanding % nt);
		w->timeout_ns = (uint64_t)(cfg.timeout_s * 1e9);
		w->tick_ns = (uint64_t)cfg.tick_us * 1000;
		if (tb_worker_init(w, err, sizeof(err)) != 0) {
			fprintf(stderr, "tldbench: %s\n", err);
			rc = 1;
			nt = i + 1;
			goto out;
		}
	}

	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	struct rusage ru0, ru1;
	getrusage(RUSAGE_SELF, &ru0);
	control.start_ns = tb_now();
	control.end_ns =
	    cfg.limit_s > 0 ? control.start_ns + (uint64_t)(cfg.limit_s * 1e9) : UINT64_MAX;
	unsigned started = 0;
	for (; started < nt; started++)
		if (pthread_create(&ws[started].thread, NULL, tb_worker_main, &ws[started]) != 0) {
			fprintf(stderr, "tldbench: cannot start a thread: %s\n", strerror(errno));
			atomic_store(&control.stop, 2);
			rc = 1;
			break;
		}

	/* Progress, once per interval, until every worker is done. */
	uint64_t next = control.start_ns + (uint64_t)(cfg.stats_interval * 1e9);
	uint64_t prev_sent = 0, prev_t = control.start_ns;
	for (;;) {
		bool all_done = true;
		for (unsigned i = 0; i < started; i++)
			if (!atomic_load(&ws[i].done))
				all_done = false;
		if (all_done)
			break;
		struct timespec nap = {0, 20000000};
		nanosleep(&nap, NULL);
		uint64_t now = tb_now();
		if (now < next || cfg.quiet)
			continue;
		uint64_t sent = 0, done = 0, lost = 0;
		for (unsigned i = 0; i < started; i++) {
			sent += atomic_load_explicit(&ws[i].p_sent, memory_order_relaxed);
			done += atomic_load_explicit(&ws[i].p_completed, memory_order_relaxed);
			lost += atomic_load_explicit(&ws[i].p_lost, memory_order_relaxed);
		}
		double dt = ns_to_s(now - prev_t);
		fprintf(stderr,
		        "[tldbench] %6.1fs sent %" PRIu64 " (%.0f q/s) completed %" PRIu64
		        " lost %" PRIu64 " outstanding %" PRIu64 "\n",
		        ns_to_s(now - control.start_ns), sent,
		        dt > 0 ? (double)(sent - prev_sent) / dt : 0, done, lost,
		        sent - done - lost);
		prev_sent = sent;
		prev_t = now;
		next += (uint64_t)(cfg.stats_interval * 1e9);
		if (next <= now)
			next = now + (uint64_t)(cfg.stats_interval * 1e9);
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(ws[i].thread, NULL);
	getrusage(RUSAGE_SELF, &ru1);
	if (rc != 0)
		goto out;

	report r = {.cfg = &cfg, .qs = &qs, .threads = nt, .clients = cfg.clients};
	uint64_t stop_ns = 0, last_rx = 0;
	for (unsigned i = 0; i < nt; i++) {
		tb_stats_merge(&r.st, &ws[i].st);
		if (ws[i].stop_ns > stop_ns)
			stop_ns = ws[i].stop_ns;
		if (ws[i].last_rx_ns > last_rx)
			last_rx = ws[i].last_rx_ns;
	}
	int stops = atomic_load(&control.stop);
	r.ended = stops                                          ? "interrupted"
	          : cfg.limit_s > 0 && stop_ns >= control.end_ns ? "time limit"
	                                                         : "end of input";
	/* Run time: until sending stopped, or until the last answer if that came later (so a run
	 * through the input ends with its answers); never the wait for lost queries. */
	uint64_t end_ns = stop_ns > last_rx ? stop_ns : last_rx;
	if (control.end_ns != UINT64_MAX && end_ns > control.end_ns && stop_ns <= control.end_ns)
		end_ns = control.end_ns; /* answers after the time limit are not run time */
	r.run_s = ns_to_s(end_ns > control.start_ns ? end_ns - control.start_ns : 0);
	const tb_stats *st = &r.st;
	r.qps = r.run_s > 0 ? (double)st->completed / r.run_s : 0;
	r.avg = st->completed ? st->lat_sum / (double)st->completed : 0;
	if (st->completed > 1) {
		double n = (double)st->completed;
		double var = (st->lat_sumsq - st->lat_sum * st->lat_sum / n) / (n - 1);
		r.sd = var > 0 ? sqrt(var) : 0;
	}
	r.p50 = tb_hist_quantile(st, 0.50);
	r.p90 = tb_hist_quantile(st, 0.90);
	r.p99 = tb_hist_quantile(st, 0.99);
	r.p999 = tb_hist_quantile(st, 0.999);
	r.cpu_user = tv_s(ru1.ru_utime) - tv_s(ru0.ru_utime);
	r.cpu_sys = tv_s(ru1.ru_stime) - tv_s(ru0.ru_stime);
	print_report(&r);
	if (cfg.json_path && write_json(&r, cfg.json_path) != 0) {
		fprintf(stderr, "tldbench: cannot write %s: %s\n", cfg.json_path, strerror(errno));
		rc = 1;
	}
	if (rc == 0 && cfg.tcp && st->conn_ok == 0) {
		fprintf(stderr, "tldbench: no TCP connection to %s: %s\n", cfg.server_text,
		        strerror(st->conn_errno ? st->conn_errno : ECONNREFUSED));
		rc = 1;
	}
out:
	for (unsigned i = 0; i < nt; i++)
		tb_worker_free(&ws[i]);
	free(ws);
	tb_queries_free(&qs);
	return rc;
}
