/* tldnode.c - the daemon: serves the zones of a store over UDP and TCP. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lb/server.h"
#include "common/err.h"
#include "common/log.h"
#include "query.h"
#include "store/store.h"

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
    "  --tcp-idle-ms N         TCP idle / incomplete-message timeout (default 10000)\n"
    "  --tcp-pipeline N        queries in flight per TCP connection (default 100)\n"
    "  --udp-buffer BYTES      UDP socket receive and send buffers (default 4 MiB)\n"
    "  --map-size BYTES        LMDB map size (default 64 GiB of address space)\n"
    "  --log-level LEVEL       error, warning, info (default) or debug\n"
    "  --check                 open the store, report its zones and exit\n"
    "  --help                  this text\n"
    "\n"
    "exit status: 0 clean exit, 1 failure (message on stderr), 2 usage error\n";

struct config {
	const char *store;
	tld_store_opts store_opts;
	tld_server_opts server;
	tld_engine_conf engine;
	bool check;
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
};

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
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (optind != argc)
		return usage_error("unexpected argument", argv[optind]);
	if (cf->store == NULL)
		return usage_error("--store DIR is required", NULL);
	if (!cf->check && cf->server.nlisten == 0)
		return usage_error("at least one --listen ADDR:PORT is required", NULL);
	return 0;
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
	return tld_engine_answer(wctx, q, qlen, resp, cap, peer->transport == TLD_TCP);
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

/* Waits for SIGTERM/SIGINT (blocked in every thread, taken here). */
static void wait_for_stop(void)
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
			tld_log(TLD_LOG_INFO, "SIGHUP: the store is re-read on every batch; "
			                      "nothing else to reload");
			continue;
		}
		tld_log(TLD_LOG_INFO, "%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		return;
	}
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
	int rc = parse_args(argc, argv, &cf);
	if (rc != 0)
		return rc;
	default_identity(&cf.engine);

	tld_store *st;
	tld_errbuf eb = {{0}};
	int err = tld_store_open(&st, cf.store, &cf.store_opts, &eb);
	if (err < 0) {
		tld_log(TLD_LOG_ERR, "%s", eb.msg[0] ? eb.msg : tld_strerror(err));
		return 1;
	}
	if (report_zones(st, cf.store) < 0 || cf.check) {
		tld_store_close(st);
		return cf.check && err == 0 ? 0 : 1;
	}

	/* Signals go to the main thread only: block them before any worker starts. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct node_ctx nc = {.store = st, .conf = &cf.engine};
	tld_handler h = {.worker_init = worker_init,
	                 .worker_fini = worker_fini,
	                 .batch_begin = batch_begin,
	                 .batch_end = batch_end,
	                 .answer = answer,
	                 .arg = &nc};
	tld_server *srv;
	if ((err = tld_server_start(&srv, &cf.server, &h, &eb)) < 0) {
		tld_log(TLD_LOG_ERR, "%s", eb.msg[0] ? eb.msg : tld_strerror(err));
		tld_store_close(st);
		return 1;
	}
	for (unsigned i = 0; i < cf.server.nlisten; i++) {
		char text[80];
		tld_addr_format((const struct sockaddr *)&cf.server.listen[i], text, sizeof(text));
		tld_log(TLD_LOG_INFO, "listening on %s (udp, tcp)", text);
	}
	tld_log(TLD_LOG_INFO, "serving with %u workers, identity \"%s\"", tld_server_workers(srv),
	        cf.engine.identity);
	wait_for_stop();
	tld_server_stop(srv);
	tld_server_free(srv);
	tld_store_close(st);
	tld_log(TLD_LOG_INFO, "stopped");
	return 0;
}
