/* tldnode.c - the daemon: serves the zones of a store over UDP and TCP. */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lb/server.h"
#include "../lb/takeover.h"
#include "../replication/keyfile.h"
#include "../replication/client.h"
#include "../replication/repl.h"
#include "common/err.h"
#include "common/log.h"
#include "export.h"
#include "metrics.h"
#include "query.h"
#include "reload.h"
#include "store/store.h"
#include "warm.h"

static const char usage_text[] =
    "usage: tldnode --store DIR --listen ADDR:PORT [--listen ADDR:PORT ...] [OPTIONS]\n"
    "\n"
    "Serves the zones of an LMDB store (written by `tldctl import`) over UDP and\n"
    "TCP, in the foreground, as one process, until SIGTERM or SIGINT.\n"
    "\n"
    "  --store DIR             the store\n"
    "  --listen ADDR:PORT      address to serve (IPv4 or [IPv6]); repeatable\n"
    "  --identity NAME         NSID and CHAOS id.server/hostname.bind (default: hostname)\n"
    "  --version TEXT          CHAOS version.bind answer (default: tldnode)\n"
    "  --hide-version          answer version.bind with REFUSED\n"
    "  --edns-size N           our EDNS UDP payload size, 512..4096 (default 1232)\n"
    "  --workers N             worker threads (default: one per CPU)\n"
    "  --pin-cpus              pin worker i to CPU i\n"
    "  --tcp-max-conns N       TCP connections per worker (default 512)\n"
    "  --tcp-max-per-client N  TCP connections per client address (default 64; 0: no cap)\n"
    "  --tcp-idle-ms N         TCP idle / incomplete-message timeout (default 10000)\n"
    "  --tcp-pipeline N        queries in flight per TCP connection (default 100)\n"
    "  --udp-buffer BYTES      UDP socket receive and send buffers (default 4 MiB)\n"
    "  --map-size BYTES        LMDB map size (default 64 GiB of address space)\n"
    "  --log-level LEVEL       error, warning, info (default) or debug\n"
    "  --check                 open the store, report its zones, test-bind every\n"
    "                          listen address, and exit\n"
    "  --config FILE           options from FILE, one per line (\"listen 127.0.0.1:53\");\n"
    "                          SIGHUP re-reads it and re-opens the store, losing nothing\n"
    "  --metrics ADDR:PORT     serve Prometheus metrics over HTTP there\n"
    "  --control-socket PATH   where a successor asks for our sockets (zero-downtime\n"
    "                          restart; default: STORE/tldnode.sock)\n"
    "  --no-takeover           neither take sockets from a running tldnode nor give them\n"
    "  --no-warm               do not read the store into the page cache in the background\n"
    "                          after start (default: read, when it fits in half of\n"
    "                          MemAvailable)\n"
    "\n"
    "protection (README.md, \"Hardening\"):\n"
    "  --rrl-rate N            responses/s per client /24 (/56) and response kind,\n"
    "                          over UDP (default 200; 0 turns rate limiting off)\n"
    "  --rrl-slip N            send one limited response in N truncated (default 2)\n"
    "  --rrl-allow PREFIX      never rate limit this prefix (repeatable)\n"
    "  --rrl-buckets N         rate-limit table size (default 65536)\n"
    "  --rrl-limit-loopback    rate limit loopback clients too (exempt by default)\n"
    "  --cookie-secret-file F  DNS Cookie secrets (32 hex digits: current, then\n"
    "                          previous), shared by the cluster; default: random\n"
    "  --no-cookies            do not answer DNS Cookies\n"
    "\n"
    "replication (README.md, \"Replication\"):\n"
    "  --role primary|replica  take part in replication (the store is then opened\n"
    "                          writable, and created if absent)\n"
    "  --key FILE              shared keys, hmac-sha256:NAME:BASE64SECRET lines\n"
    "  --publish URL           primary: where deltas and heartbeats are published (PUB)\n"
    "  --control URL           primary: where requests are served (REP);\n"
    "                          replica: the primary's control address\n"
    "  --primary URL           replica: the primary's publish address\n"
    "  --heartbeat MS          primary: heartbeat period; replica: report period (100)\n"
    "  --journal-keep N        changes kept in each zone's journal (10000; 0 = all)\n"
    "  --request-timeout MS    replica: catch-up / snapshot request timeout (5000)\n"
    "  --max-message BYTES     largest replication message (a pushed zone file, a\n"
    "                          delta) sent or accepted (268435456); the same on every\n"
    "                          node and on tldctl\n"
    "  --sync full|meta|none   store durability (primary: full, replica: meta)\n"
    "  --help                  this text\n"
    "\n"
    "exit status: 0 clean exit, 1 failure (message on stderr), 2 usage error\n";

struct config {
	const char *store;
	tld_store_opts store_opts;
	tld_server_opts server;
	tld_engine_conf engine;
	bool check;
	tld_repl_opts repl;
	const char *key_file;
	tld_keyring keys;
	tld_rrl_conf rrl;
	bool rrl_loopback;
	const char *cookie_file;
	bool no_cookies;
	tld_cookie_secrets cookies;
	bool metrics;
	struct sockaddr_storage metrics_addr;
	const char *control_socket;
	bool no_takeover;
	bool no_warm;
};

static int usage_error(const char *why, const char *arg)
{
	fprintf(stderr, "tldnode: %s%s%s\n%s", why, arg ? ": " : "", arg ? arg : "", usage_text);
	return 2;
}

static bool parse_uint(const char *text, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(text, &end, 10);
	if (errno != 0 || *text == 0 || *end != 0 || v < min || v > max)
		return false;
	*out = v;
	return true;
}

enum {
	OPT_IDENTITY = 256,
	OPT_VERSION,
	OPT_HIDE_VERSION,
	OPT_EDNS,
	OPT_PIN,
	OPT_TCP_CONNS,
	OPT_TCP_IDLE,
	OPT_TCP_PIPE,
	OPT_UDP_BUF,
	OPT_MAP,
	OPT_LOG,
	OPT_ROLE,
	OPT_KEY,
	OPT_PUBLISH,
	OPT_CONTROL,
	OPT_PRIMARY,
	OPT_HEARTBEAT,
	OPT_JOURNAL_KEEP,
	OPT_MAX_MESSAGE,
	OPT_REQUEST_TIMEOUT,
	OPT_SYNC,
	OPT_RRL_RATE,
	OPT_RRL_SLIP,
	OPT_RRL_ALLOW,
	OPT_RRL_BUCKETS,
	OPT_RRL_LOOPBACK,
	OPT_COOKIE_FILE,
	OPT_NO_COOKIES,
	OPT_METRICS,
	OPT_TCP_PER_CLIENT,
	OPT_CONTROL_SOCKET,
	OPT_NO_TAKEOVER,
	OPT_NO_WARM,
	OPT_CONFIG,
};

/* Rate limiting, cookies and metrics; returns 0, 2 after a usage message, or
 * -1 when c is not one of them. */
static int parse_protect_arg(int c, const char *arg, struct config *cf)
{
	unsigned long v;
	switch (c) {
	case OPT_RRL_RATE:
		if (!parse_uint(arg, 0, 1000000, &v))
			return usage_error("--rrl-rate takes 0..1000000", arg);
		cf->rrl.rate = (uint32_t)v;
		return 0;
	case OPT_RRL_SLIP:
		if (!parse_uint(arg, 0, 100, &v))
			return usage_error("--rrl-slip takes 0..100", arg);
		cf->rrl.slip = (uint32_t)v;
		return 0;
	case OPT_RRL_ALLOW:
		if (tld_rrl_allow(&cf->rrl, arg) < 0)
			return usage_error("--rrl-allow takes ADDR[/LEN] (at most 64)", arg);
		return 0;
	case OPT_RRL_BUCKETS:
		if (!parse_uint(arg, 1024, 1u << 26, &v))
			return usage_error("--rrl-buckets takes 1024..67108864", arg);
		cf->rrl.buckets = (uint32_t)v;
		return 0;
	case OPT_RRL_LOOPBACK:
		cf->rrl_loopback = true;
		return 0;
	case OPT_COOKIE_FILE:
		cf->cookie_file = arg;
		return 0;
	case OPT_NO_COOKIES:
		cf->no_cookies = true;
		return 0;
	case OPT_CONTROL_SOCKET:
		cf->control_socket = arg;
		return 0;
	case OPT_NO_TAKEOVER:
		cf->no_takeover = true;
		return 0;
	case OPT_NO_WARM:
		cf->no_warm = true;
		return 0;
	case OPT_CONFIG: /* already expanded into the options (reload.h) */
		return 0;
	case OPT_TCP_PER_CLIENT:
		if (!parse_uint(arg, 0, 1000000, &v))
			return usage_error("--tcp-max-per-client takes 0..1000000", arg);
		cf->server.tcp_max_per_client = (unsigned)v;
		return 0;
	case OPT_METRICS:
		if (tld_addr_parse(arg, &cf->metrics_addr) < 0)
			return usage_error("bad --metrics address (ADDR:PORT or [V6]:PORT)", arg);
		cf->metrics = true;
		return 0;
	}
	return -1;
}

/* The replication options; returns 0, or 2 after a usage message. */
static int parse_repl_arg(int c, const char *arg, struct config *cf)
{
	unsigned long v;
	tld_repl_opts *o = &cf->repl;
	switch (c) {
	case OPT_ROLE:
		if (strcmp(arg, "primary") == 0)
			o->role = TLD_ROLE_PRIMARY;
		else if (strcmp(arg, "replica") == 0)
			o->role = TLD_ROLE_REPLICA;
		else
			return usage_error("--role takes primary or replica", arg);
		return 0;
	case OPT_KEY:
		cf->key_file = arg;
		return 0;
	case OPT_PUBLISH:
		o->publish_url = arg;
		return 0;
	case OPT_CONTROL:
		o->control_url = arg;
		return 0;
	case OPT_PRIMARY:
		o->primary_url = arg;
		return 0;
	case OPT_HEARTBEAT:
		if (!parse_uint(arg, 10, 60000, &v))
			return usage_error("--heartbeat takes 10..60000 (ms)", arg);
		o->heartbeat_ms = (unsigned)v;
		return 0;
	case OPT_JOURNAL_KEEP:
		if (!parse_uint(arg, 0, 100000000, &v))
			return usage_error("--journal-keep takes 0..100000000", arg);
		o->journal_keep = (unsigned)v;
		return 0;
	case OPT_REQUEST_TIMEOUT:
		if (!parse_uint(arg, 1, 3600000, &v))
			return usage_error("--request-timeout takes 1..3600000 (ms)", arg);
		o->request_timeout_ms = (unsigned)v;
		return 0;
	case OPT_MAX_MESSAGE:
		if (!parse_uint(arg, 1u << 16, TLD_REPL_MAX_MESSAGE_LIMIT, &v))
			return usage_error("--max-message takes 65536..2147483647 (bytes)", arg);
		o->max_message = v;
		return 0;
	case OPT_SYNC:
		if (strcmp(arg, "full") == 0)
			o->sync = TLD_SYNC_FULL;
		else if (strcmp(arg, "meta") == 0)
			o->sync = TLD_SYNC_META;
		else if (strcmp(arg, "none") == 0)
			o->sync = TLD_SYNC_NONE;
		else
			return usage_error("--sync takes full, meta or none", arg);
		return 0;
	default:
		fputs(usage_text, stderr);
		return 2;
	}
}

/* Checks that the replication options fit the role. */
static int check_repl_args(const struct config *cf)
{
	const tld_repl_opts *o = &cf->repl;
	if (o->role == TLD_ROLE_NONE) {
		if (cf->key_file || o->publish_url || o->control_url || o->primary_url)
			return usage_error("replication options need --role", NULL);
		return 0;
	}
	if (cf->key_file == NULL || o->control_url == NULL)
		return usage_error("--role needs --key FILE and --control URL", NULL);
	if (o->role == TLD_ROLE_PRIMARY && (o->publish_url == NULL || o->primary_url != NULL))
		return usage_error("a primary takes --publish URL (and no --primary)", NULL);
	if (o->role == TLD_ROLE_REPLICA && (o->primary_url == NULL || o->publish_url != NULL))
		return usage_error("a replica takes --primary URL (and no --publish)", NULL);
	return 0;
}

static int parse_args(int argc, char **argv, struct config *cf)
{
	static const struct option longopts[] = {
	    {"store", required_argument, NULL, 's'},
	    {"listen", required_argument, NULL, 'l'},
	    {"identity", required_argument, NULL, OPT_IDENTITY},
	    {"version", required_argument, NULL, OPT_VERSION},
	    {"hide-version", no_argument, NULL, OPT_HIDE_VERSION},
	    {"edns-size", required_argument, NULL, OPT_EDNS},
	    {"workers", required_argument, NULL, 'w'},
	    {"pin-cpus", no_argument, NULL, OPT_PIN},
	    {"tcp-max-conns", required_argument, NULL, OPT_TCP_CONNS},
	    {"tcp-idle-ms", required_argument, NULL, OPT_TCP_IDLE},
	    {"tcp-pipeline", required_argument, NULL, OPT_TCP_PIPE},
	    {"udp-buffer", required_argument, NULL, OPT_UDP_BUF},
	    {"map-size", required_argument, NULL, OPT_MAP},
	    {"log-level", required_argument, NULL, OPT_LOG},
	    {"check", no_argument, NULL, 'c'},
	    {"role", required_argument, NULL, OPT_ROLE},
	    {"key", required_argument, NULL, OPT_KEY},
	    {"publish", required_argument, NULL, OPT_PUBLISH},
	    {"control", required_argument, NULL, OPT_CONTROL},
	    {"primary", required_argument, NULL, OPT_PRIMARY},
	    {"heartbeat", required_argument, NULL, OPT_HEARTBEAT},
	    {"journal-keep", required_argument, NULL, OPT_JOURNAL_KEEP},
	    {"max-message", required_argument, NULL, OPT_MAX_MESSAGE},
	    {"request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT},
	    {"sync", required_argument, NULL, OPT_SYNC},
	    {"rrl-rate", required_argument, NULL, OPT_RRL_RATE},
	    {"rrl-slip", required_argument, NULL, OPT_RRL_SLIP},
	    {"rrl-allow", required_argument, NULL, OPT_RRL_ALLOW},
	    {"rrl-buckets", required_argument, NULL, OPT_RRL_BUCKETS},
	    {"rrl-limit-loopback", no_argument, NULL, OPT_RRL_LOOPBACK},
	    {"cookie-secret-file", required_argument, NULL, OPT_COOKIE_FILE},
	    {"no-cookies", no_argument, NULL, OPT_NO_COOKIES},
	    {"metrics", required_argument, NULL, OPT_METRICS},
	    {"tcp-max-per-client", required_argument, NULL, OPT_TCP_PER_CLIENT},
	    {"control-socket", required_argument, NULL, OPT_CONTROL_SOCKET},
	    {"no-takeover", no_argument, NULL, OPT_NO_TAKEOVER},
	    {"no-warm", no_argument, NULL, OPT_NO_WARM},
	    {"config", required_argument, NULL, OPT_CONFIG},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;
	unsigned long v;
	while ((c = getopt_long(argc, argv, "s:l:w:ch", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			cf->store = optarg;
			break;
		case 'l':
			if (cf->server.nlisten >= TLD_LISTEN_MAX)
				return usage_error("too many --listen addresses", NULL);
			if (tld_addr_parse(optarg, &cf->server.listen[cf->server.nlisten]) < 0)
				return usage_error("bad --listen address (ADDR:PORT or [V6]:PORT)",
				                   optarg);
			cf->server.nlisten++;
			break;
		case OPT_IDENTITY:
			if (strlen(optarg) > TLD_IDENTITY_MAX)
				return usage_error("--identity too long", optarg);
			strcpy(cf->engine.identity, optarg);
			break;
		case OPT_VERSION:
			if (strlen(optarg) > TLD_IDENTITY_MAX)
				return usage_error("--version too long", optarg);
			strcpy(cf->engine.version, optarg);
			break;
		case OPT_HIDE_VERSION:
			cf->engine.version_hidden = true;
			break;
		case OPT_EDNS:
			if (!parse_uint(optarg, 512, 4096, &v))
				return usage_error("--edns-size takes 512..4096", optarg);
			cf->engine.edns_max = (uint16_t)v;
			break;
		case 'w':
			if (!parse_uint(optarg, 1, 256, &v))
				return usage_error("--workers takes 1..256", optarg);
			cf->server.workers = (unsigned)v;
			break;
		case OPT_PIN:
			cf->server.pin_cpus = true;
			break;
		case OPT_TCP_CONNS:
			if (!parse_uint(optarg, 1, 1000000, &v))
				return usage_error("--tcp-max-conns takes 1..1000000", optarg);
			cf->server.tcp_max_conns = (unsigned)v;
			break;
		case OPT_TCP_IDLE:
			if (!parse_uint(optarg, 10, 3600000, &v))
				return usage_error("--tcp-idle-ms takes 10..3600000", optarg);
			cf->server.tcp_idle_ms = (unsigned)v;
			break;
		case OPT_TCP_PIPE:
			if (!parse_uint(optarg, 1, 65535, &v))
				return usage_error("--tcp-pipeline takes 1..65535", optarg);
			cf->server.tcp_max_pipeline = (unsigned)v;
			break;
		case OPT_UDP_BUF:
			if (!parse_uint(optarg, 0, 1u << 30, &v))
				return usage_error("--udp-buffer takes 0..1073741824", optarg);
			cf->server.rcvbuf = cf->server.sndbuf = (int)v;
			break;
		case OPT_MAP:
			if (!parse_uint(optarg, 1u << 20, (unsigned long)-1, &v))
				return usage_error("--map-size takes bytes (at least 1 MiB)",
				                   optarg);
			cf->store_opts.map_size = v;
			break;
		case OPT_LOG: {
			int level = tld_log_parse_level(optarg);
			if (level < 0)
				return usage_error(
				    "--log-level takes error, warning, info or debug", optarg);
			tld_log_set_level(level);
			break;
		}
		case 'c':
			cf->check = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		default: {
			int rc = parse_protect_arg(c, optarg, cf);
			if (rc < 0)
				rc = parse_repl_arg(c, optarg, cf);
			if (rc != 0)
				return rc;
		}
		}
	}
	if (optind != argc)
		return usage_error("unexpected argument", argv[optind]);
	if (cf->store == NULL)
		return usage_error("--store DIR is required", NULL);
	if (!cf->check && cf->server.nlisten == 0)
		return usage_error("at least one --listen ADDR:PORT is required", NULL);
	return check_repl_args(cf);
}

/* ---- the handler the lb layer calls ---- */

struct node_ctx {
	tld_store *store;
	const tld_engine_conf *conf;
};

static void *worker_init(void *arg, unsigned id)
{
	struct node_ctx *nc = arg;
	tld_engine *e = malloc(sizeof(*e));
	if (e == NULL)
		return NULL;
	if (tld_engine_init(e, nc->store, nc->conf) < 0) {
		tld_log(TLD_LOG_ERR, "worker %u: cannot open a store reader", id);
		free(e);
		return NULL;
	}
	return e;
}

static void worker_fini(void *wctx)
{
	tld_engine_fini(wctx);
	free(wctx);
}

static void batch_begin(void *wctx)
{
	tld_engine_batch_begin(wctx);
}

static void batch_end(void *wctx)
{
	tld_engine_batch_end(wctx);
}

static size_t answer(void *wctx, const uint8_t *q, size_t qlen, uint8_t *resp, size_t cap,
                     const tld_peer *peer)
{
	return tld_engine_answer(wctx, q, qlen, resp, cap, peer->transport == TLD_TCP,
	                         peer->remote);
}

/* ---- main ---- */

static int log_zone(const tld_zone *z, void *arg)
{
	char text[TLD_NAME_TXTMAX];
	tld_name_to_text(z->apex, text, sizeof(text));
	tld_log(TLD_LOG_INFO, "zone %s serial %u%s", text, z->serial,
	        (z->flags & TLD_ZONE_SIGNED) ? " (signed)" : "");
	(*(unsigned *)arg)++;
	return 0;
}

static int report_zones(tld_store *st, const char *dir)
{
	tld_reader r;
	unsigned zones = 0;
	int err = tld_reader_open(st, &r);
	if (err == 0 && (err = tld_reader_begin(&r)) == 0) {
		err = tld_zone_foreach(&r, log_zone, &zones);
		tld_reader_end(&r);
	}
	tld_reader_close(&r);
	if (err < 0) {
		tld_log(TLD_LOG_ERR, "%s: %s", dir, tld_strerror(err));
		return err;
	}
	tld_log(TLD_LOG_INFO, "store %s: %u zones", dir, zones);
	return TLD_OK;
}

/* Waits for SIGTERM/SIGINT (blocked in every thread, taken here), or for a
 * SIGHUP whose new configuration checks out. Returns true for a reload. */
static bool wait_for_signal(char **argv)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	for (;;) {
		int sig;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			if (tld_reload_validate(argv)) {
				tld_log(TLD_LOG_INFO,
				        "SIGHUP: reloading (configuration and store)");
				return true;
			}
			tld_log(TLD_LOG_ERR, "SIGHUP: the new configuration does not check out "
			                     "(see above); still serving the old one");
			continue;
		}
		tld_log(TLD_LOG_INFO, "%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		return false;
	}
}

/* Reads the replication key file (when --role is given). */
static int load_keys(struct config *cf)
{
	if (cf->repl.role == TLD_ROLE_NONE)
		return 0;
	tld_errbuf eb = {{0}};
	int err = tld_keyring_load(cf->key_file, &cf->keys, &eb);
	if (err < 0) {
		tld_log(TLD_LOG_ERR, "%s", eb.msg);
		return err;
	}
	if (cf->keys.world_readable)
		tld_log(TLD_LOG_WARN, "%s: the key file is readable by every user", cf->key_file);
	cf->repl.keys = &cf->keys;
	cf->repl.node_name = cf->engine.identity;
	cf->store_opts.read_only = false; /* the replication thread writes the store */
	cf->store_opts.create = true;
	return 0;
}

/* Starts the replication thread (when --role is given). */
static int start_replication(struct config *cf, tld_store *st, tld_repl **repl)
{
	*repl = NULL;
	if (cf->repl.role == TLD_ROLE_NONE)
		return 0;
	tld_errbuf eb = {{0}};
	int err = tld_repl_start(repl, st, &cf->repl, &eb);
	if (err < 0)
		tld_log(TLD_LOG_ERR, "replication: %s", eb.msg[0] ? eb.msg : tld_strerror(err));
	return err;
}

/* Rate limiting (shared by the workers) and cookie secrets, as configured. */
static int setup_protection(struct config *cf, tld_rrl **rrl)
{
	tld_errbuf eb = {{0}};
	*rrl = NULL;
	if (!cf->rrl_loopback) /* local clients (monitoring, health checks) are not floods */
		if (tld_rrl_allow(&cf->rrl, "127.0.0.0/8") < 0 ||
		    tld_rrl_allow(&cf->rrl, "::1") < 0)
			return usage_error("too many --rrl-allow prefixes", NULL);
	if (cf->rrl.rate > 0 && tld_rrl_new(rrl, &cf->rrl) < 0) {
		tld_log(TLD_LOG_ERR, "rate limiting: out of memory");
		return 1;
	}
	cf->engine.rrl = *rrl;
	if (cf->no_cookies)
		return 0;
	int err = cf->cookie_file ? tld_cookie_load(cf->cookie_file, &cf->cookies, &eb)
	                          : tld_cookie_random(&cf->cookies);
	if (err < 0) {
		tld_log(TLD_LOG_ERR, "cookies: %s", eb.msg[0] ? eb.msg : tld_strerror(err));
		tld_rrl_free(*rrl);
		*rrl = NULL;
		return 1;
	}
	cf->engine.cookies = &cf->cookies;
	return 0;
}

static tld_metrics *start_metrics(const struct config *cf, tld_export_src *src)
{
	tld_metrics *m = NULL;
	tld_errbuf eb = {{0}};
	if (!cf->metrics)
		return NULL;
	socklen_t len = cf->metrics_addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
	                                                       : sizeof(struct sockaddr_in);
	if (tld_metrics_start(&m, (const struct sockaddr *)&cf->metrics_addr, len,
	                      tld_export_render, src, &eb) < 0)
		tld_log(TLD_LOG_ERR, "metrics: %s (serving without them)", eb.msg);
	return m;
}

/* Zero-downtime restart, first half: serve the sockets of a tldnode still
 * running on the same control socket (lb/takeover.h). */
static void inherit_sockets(struct config *cf, tld_takeover_set *set, char *path, size_t len)
{
	if (cf->control_socket != NULL)
		snprintf(path, len, "%s", cf->control_socket);
	else
		snprintf(path, len, "%s/tldnode.sock", cf->store);
	cf->server.inherit = set;
	unsigned kept = tld_reload_inherited(set); /* re-executed by SIGHUP */
	if (kept > 0) {
		tld_log(TLD_LOG_INFO, "reloaded: serving %u sockets kept across the reload", kept);
		return;
	}
	if (cf->no_takeover || cf->check)
		return;
	tld_errbuf eb = {{0}};
	int n = tld_takeover_fetch(path, set, &eb);
	if (n < 0)
		tld_log(TLD_LOG_WARN, "%s (opening new sockets)", eb.msg);
	else if (n > 0)
		tld_log(TLD_LOG_INFO, "took over %d sockets from the tldnode running at %s", n,
		        path);
}

/* Second half: offer our sockets to a successor. */
static tld_takeover_server *offer_sockets(const struct config *cf, tld_server *srv,
                                          const char *path)
{
	static tld_takeover_sock socks[TLD_TAKEOVER_MAX];
	tld_takeover_server *ts = NULL;
	tld_errbuf eb = {{0}};
	if (cf->no_takeover)
		return NULL;
	unsigned n = tld_server_sockets(srv, socks, TLD_TAKEOVER_MAX);
	if (tld_takeover_serve(&ts, path, socks, n, &eb) < 0)
		tld_log(TLD_LOG_WARN, "%s: a successor will open its own sockets", eb.msg);
	return ts;
}

static void default_identity(tld_engine_conf *conf)
{
	if (conf->identity[0] == 0 && gethostname(conf->identity, TLD_IDENTITY_MAX) != 0)
		conf->identity[0] = 0;
	conf->identity[TLD_IDENTITY_MAX] = 0;
}

int main(int argc, char **argv)
{
	struct config cf;
	memset(&cf, 0, sizeof(cf));
	cf.store_opts.read_only = true;
	tld_server_opts_default(&cf.server);
	tld_engine_conf_default(&cf.engine);
	tld_repl_opts_default(&cf.repl);
	tld_rrl_conf_default(&cf.rrl);
	tld_errbuf ceb = {{0}};
	char **orig_argv = argv; /* a reload re-reads the --config file: exec these */
	static char **expanded;  /* lives as long as the process: cf points into it */
	if (tld_config_expand(argc, argv, &argc, &expanded, &ceb) < 0) {
		fprintf(stderr, "tldnode: %s\n", ceb.msg);
		return 2;
	}
	argv = expanded;
	int rc = parse_args(argc, argv, &cf);
	if (rc != 0)
		return rc;
	default_identity(&cf.engine);
	/* RFC 7828: tell TCP clients that ask how long an idle connection is kept. */
	unsigned keepalive = cf.server.tcp_idle_ms / 100;
	cf.engine.tcp_keepalive = (uint16_t)(keepalive > 65535 ? 65535 : keepalive);
	if (load_keys(&cf) < 0)
		return 1;
	tld_rrl *rrl;
	if ((rc = setup_protection(&cf, &rrl)) != 0)
		return rc;

	tld_store *st;
	tld_errbuf eb = {{0}};
	int err = tld_store_open(&st, cf.store, &cf.store_opts, &eb);
	if (err < 0) {
		tld_log(TLD_LOG_ERR, "%s", eb.msg[0] ? eb.msg : tld_strerror(err));
		tld_rrl_free(rrl);
		return 1;
	}
	if ((err = report_zones(st, cf.store)) < 0 || cf.check) {
		/* --check fails when the zones cannot be read, or an address bound */
		if (err == 0 && (err = tld_server_check_listen(&cf.server, &eb)) < 0)
			tld_log(TLD_LOG_ERR, "%s", eb.msg);
		tld_store_close(st);
		tld_rrl_free(rrl);
		return err < 0 ? 1 : 0;
	}

	/* Signals go to the main thread only: block them before any worker starts. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	static tld_takeover_set inherited;
	char control_path[4096];
	inherit_sockets(&cf, &inherited, control_path, sizeof(control_path));
	struct node_ctx nc = {.store = st, .conf = &cf.engine};
	tld_handler h = {.worker_init = worker_init,
	                 .worker_fini = worker_fini,
	                 .batch_begin = batch_begin,
	                 .batch_end = batch_end,
	                 .answer = answer,
	                 .arg = &nc};
	tld_server *srv;
	err = tld_server_start(&srv, &cf.server, &h, &eb);
	tld_takeover_release(&inherited); /* those for addresses we no longer serve */
	if (err < 0) {
		tld_log(TLD_LOG_ERR, "%s", eb.msg[0] ? eb.msg : tld_strerror(err));
		tld_store_close(st);
		tld_rrl_free(rrl);
		return 1;
	}
	for (unsigned i = 0; i < cf.server.nlisten; i++) {
		char text[80];
		tld_addr_format((const struct sockaddr *)&cf.server.listen[i], text, sizeof(text));
		tld_log(TLD_LOG_INFO, "listening on %s (udp, tcp)", text);
	}
	tld_log(TLD_LOG_INFO, "serving with %u workers, identity \"%s\"", tld_server_workers(srv),
	        cf.engine.identity);
	tld_repl *repl;
	if (start_replication(&cf, st, &repl) < 0) {
		tld_server_stop(srv);
		tld_server_free(srv);
		tld_store_close(st);
		tld_rrl_free(rrl);
		return 1;
	}
	tld_warm *warm = NULL;
	if (!cf.no_warm && tld_warm_start(&warm, cf.store) < 0)
		tld_log(TLD_LOG_WARN, "cannot start the thread warming the store; serving anyway");
	tld_export_src xsrc = {.identity = cf.engine.identity,
	                       .server = srv,
	                       .store = st,
	                       .rrl = rrl,
	                       .repl = repl,
	                       .warm = warm};
	tld_metrics *metrics = start_metrics(&cf, &xsrc);
	tld_takeover_server *offer = offer_sockets(&cf, srv, control_path);
	bool reload = wait_for_signal(orig_argv);
	static tld_takeover_sock socks[TLD_TAKEOVER_MAX];
	static int kept[TLD_TAKEOVER_MAX];
	unsigned nkept = 0;
	if (reload) /* keep the sockets open across the exec: their queues wait for us */
		nkept =
		    tld_reload_keep(socks, tld_server_sockets(srv, socks, TLD_TAKEOVER_MAX), kept);
	tld_takeover_stop(offer); /* before the sockets it offers are closed */
	tld_metrics_stop(metrics);
	tld_warm_stop(warm);
	tld_repl_stop(repl);
	tld_keyring_clear(&cf.keys);
	tld_server_stop(srv);
	tld_server_free(srv);
	tld_store_close(st);
	tld_rrl_free(rrl);
	if (reload) {
		tld_reload_exec(orig_argv, kept, nkept);
		tld_log(TLD_LOG_ERR, "reload: cannot re-execute: %s", strerror(errno));
		return 1;
	}
	tld_log(TLD_LOG_INFO, "stopped");
	return 0;
}
