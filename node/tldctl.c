/* tldctl.c - operator's tool: import, look up, dump and digest zones; push changes, show status. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "../replication/client.h"
#include "../replication/ctl.h"
#include "../replication/digest.h"
#include "common/err.h"
#include "dns/name.h"
#include "dns/rrtype.h"
#include "store/dump.h"
#include "store/import.h"
#include "store/store.h"

/* Exit codes, the same for every subcommand. */
enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,   /* the command failed: message on stderr */
	EXIT_USAGE = 2,  /* bad command line: usage on stderr */
	EXIT_NODATA = 3, /* lookup: the store holds nothing for that name and type */
};

static const char usage_text[] =
    "usage: tldctl COMMAND [OPTIONS] ARGS\n"
    "\n"
    "commands:\n"
    "  import --store DIR [--origin NAME] [--map-size BYTES] [--quiet] ZONEFILE\n"
    "      check ZONEFILE and write it to the store in one transaction, replacing\n"
    "      any zone with the same apex; a failed import changes nothing\n"
    "  check [--origin NAME] [--quiet] ZONEFILE\n"
    "      run every check of import on ZONEFILE without a store: exit 0 when it\n"
    "      would import (warnings on stderr), 1 with file:line and why when not\n"
    "  lookup --store DIR NAME TYPE\n"
    "      print the RRset (with its RRSIGs), or the delegation covering NAME;\n"
    "      exit 3 when there is none (NXDOMAIN or NODATA)\n"
    "  dump --store DIR [--output FILE] ZONE\n"
    "      write ZONE back as a master file (stdout by default)\n"
    "  zones --store DIR\n"
    "      list the zones of the store with their serials\n"
    "  digest --store DIR [ZONE]\n"
    "      SHA-256 of each zone's content (or ZONE's), to compare two nodes\n"
    "  push --control URL --key FILE (--zone-file FILE [--create] | --delta FILE)\n"
    "       [--origin NAME] [--timeout SECONDS] [--max-message BYTES]\n"
    "      send a new version of a zone, or changes (\"+\"/\"-\" lines), to a primary;\n"
    "      returns once the primary has committed and published it, or says why not\n"
    "  status --control URL --key FILE [--json] [--timeout SECONDS]\n"
    "      every node (the primary and its replicas): zone, serial, lag, last\n"
    "      report, in sync or not\n"
    "  status --metrics ADDR:PORT [--metrics ADDR:PORT ...] [--json] [--timeout SECONDS]\n"
    "      each node's --metrics, read twice 1 s apart: queries/s, responses by\n"
    "      rcode, truncations, TCP connections, zone serials, replication state;\n"
    "      exit 1 when a node cannot be read\n"
    "\n"
    "exit status: 0 success, 1 failure, 2 usage error, 3 lookup found nothing\n";

static int usage(const char *why)
{
	if (why != NULL)
		fprintf(stderr, "tldctl: %s\n", why);
	fputs(usage_text, stderr);
	return EXIT_USAGE;
}

static int fail(const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, "tldctl: ");
	fprintf(stderr, fmt, a, b);
	fputc('\n', stderr);
	return EXIT_FAIL;
}

#define METRICS_NODES_MAX 64

/* Options every subcommand shares. */
struct opts {
	const char *store;
	const char *origin;
	const char *output;
	size_t map_size;
	bool quiet;
	tld_ctl_opts ctl;                       /* push, status */
	const char *metrics[METRICS_NODES_MAX]; /* status --metrics */
	unsigned nmetrics;
	int argc; /* positional arguments left */
	char **argv;
};

enum {
	OPT_CONTROL = 256,
	OPT_KEY,
	OPT_ZONE_FILE,
	OPT_DELTA,
	OPT_CREATE,
	OPT_JSON,
	OPT_TIMEOUT,
	OPT_METRICS,
	OPT_MAX_MESSAGE,
};

/* A size in bytes, with an optional suffix K, M or G; false when it does not
 * parse or is below min. */
static bool parse_size(const char *text, unsigned long long min, unsigned long long *out)
{
	char *end;
	unsigned long long v = strtoull(text, &end, 10);
	int shift = *end == 'G' || *end == 'g'   ? 30
	            : *end == 'M' || *end == 'm' ? 20
	            : *end == 'K' || *end == 'k' ? 10
	                                         : 0;
	end += shift != 0;
	if (*end != 0 || v > (~0ull >> shift) || (v << shift) < min)
		return false;
	*out = v << shift;
	return true;
}

static int split_hostport(const char *text, char *host, size_t hlen, char *port, size_t plen);

/* The options of push and status; returns EXIT_OK or a usage error. */
static int parse_ctl_opt(int c, const char *arg, tld_ctl_opts *o)
{
	char *end;
	switch (c) {
	case OPT_CONTROL:
		o->control_url = arg;
		return EXIT_OK;
	case OPT_KEY:
		o->key_file = arg;
		return EXIT_OK;
	case OPT_ZONE_FILE:
		o->zone_file = arg;
		return EXIT_OK;
	case OPT_DELTA:
		o->delta_file = arg;
		return EXIT_OK;
	case OPT_CREATE:
		o->create = true;
		return EXIT_OK;
	case OPT_JSON:
		o->json = true;
		return EXIT_OK;
	case OPT_TIMEOUT:
		o->timeout_s = (unsigned)strtoul(arg, &end, 10);
		if (*end != 0 || o->timeout_s == 0 || o->timeout_s > 86400)
			return usage("--timeout takes 1..86400 seconds");
		return EXIT_OK;
	case OPT_MAX_MESSAGE: {
		unsigned long long v;
		if (!parse_size(arg, 1u << 16, &v) || v > TLD_REPL_MAX_MESSAGE_LIMIT)
			return usage("--max-message takes 64K..2147483647 bytes (suffix K, M, G)");
		o->max_message = (size_t)v;
		return EXIT_OK;
	}
	default:
		return usage(NULL);
	}
}

static int parse_opts(int argc, char **argv, bool need_store, struct opts *o)
{
	static const struct option longopts[] = {
	    {"control", required_argument, NULL, OPT_CONTROL},
	    {"key", required_argument, NULL, OPT_KEY},
	    {"zone-file", required_argument, NULL, OPT_ZONE_FILE},
	    {"delta", required_argument, NULL, OPT_DELTA},
	    {"create", no_argument, NULL, OPT_CREATE},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"max-message", required_argument, NULL, OPT_MAX_MESSAGE},
	    {"metrics", required_argument, NULL, OPT_METRICS},
	    {"store", required_argument, NULL, 's'},
	    {"origin", required_argument, NULL, 'o'},
	    {"map-size", required_argument, NULL, 'm'},
	    {"output", required_argument, NULL, 'O'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	memset(o, 0, sizeof(*o));
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "+s:o:m:O:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->store = optarg;
			break;
		case 'o':
			o->origin = optarg;
			break;
		case 'O':
			o->output = optarg;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'm': {
			unsigned long long v;
			if (!parse_size(optarg, 1u << 20, &v))
				return usage(
				    "--map-size takes a size in bytes (suffix M or G allowed)");
			o->map_size = (size_t)v;
			break;
		}
		case 'h':
			fputs(usage_text, stdout);
			exit(EXIT_OK);
		case OPT_METRICS: {
			char host[256], port[16];
			if (o->nmetrics >= METRICS_NODES_MAX)
				return usage("too many --metrics addresses");
			if (split_hostport(optarg, host, sizeof(host), port, sizeof(port)) < 0)
				return usage("--metrics takes ADDR:PORT or [V6ADDR]:PORT");
			o->metrics[o->nmetrics++] = optarg;
			break;
		}
		default: {
			int rc = parse_ctl_opt(c, optarg, &o->ctl);
			if (rc != EXIT_OK)
				return rc;
		}
		}
	}
	o->ctl.origin = o->origin;
	if (o->store == NULL && need_store)
		return usage("--store DIR is required");
	o->argc = argc - optind;
	o->argv = argv + optind;
	return EXIT_OK;
}

static int open_store(const struct opts *o, bool writable, tld_store **st)
{
	tld_errbuf eb = {{0}};
	tld_store_opts so = {.map_size = o->map_size, .read_only = !writable, .create = writable};
	int err = tld_store_open(st, o->store, &so, &eb);
	if (err < 0)
		return eb.msg[0] ? fail("%s%s", eb.msg, "")
		                 : fail("%s: %s", o->store, tld_strerror(err));
	return EXIT_OK;
}

static int parse_name(const char *text, uint8_t *name)
{
	if (tld_name_from_text(text, name) < 0) {
		fprintf(stderr, "tldctl: %s: not a valid domain name\n", text);
		return usage(NULL);
	}
	return EXIT_OK;
}

/* ---- import ---- */

/* The import options from the command line (--origin into origin). */
static int import_opts(const struct opts *o, uint8_t *origin, tld_import_opts *io)
{
	memset(io, 0, sizeof(*io));
	io->warn = stderr;
	if (o->origin == NULL)
		return EXIT_OK;
	int rc = parse_name(o->origin, origin);
	io->origin = origin;
	return rc;
}

static int cmd_check(struct opts *o)
{
	if (o->argc != 1)
		return usage("check takes exactly one ZONEFILE");
	uint8_t origin[TLD_NAME_MAX];
	tld_import_opts io;
	int rc = import_opts(o, origin, &io);
	if (rc != EXIT_OK)
		return rc;
	tld_zdata *zd;
	tld_import_stats s;
	tld_errbuf eb = {{0}};
	int err = tld_zdata_load(o->argv[0], &io, &zd, &s, &eb);
	if (err < 0) {
		fprintf(stderr, "tldctl: check failed: %s\n",
		        eb.msg[0] ? eb.msg : tld_strerror(err));
		return EXIT_FAIL;
	}
	char apex[TLD_NAME_TXTMAX];
	if (tld_name_to_text(tld_zdata_apex(zd), apex, sizeof(apex)) < 0)
		strcpy(apex, "?");
	tld_zdata_free(zd);
	if (!o->quiet)
		printf("%s: zone %s, serial %u, %" PRIu64 " records, %" PRIu64 " names, %" PRIu64
		       " delegations, %" PRIu64 " duplicates dropped, %" PRIu64 " warnings: OK\n",
		       o->argv[0], apex, s.serial, s.records, s.names, s.delegations, s.duplicates,
		       s.warnings);
	return EXIT_OK;
}

static int cmd_import(struct opts *o)
{
	if (o->argc != 1)
		return usage("import takes exactly one ZONEFILE");
	uint8_t origin[TLD_NAME_MAX];
	tld_import_opts io;
	int rc = import_opts(o, origin, &io);
	if (rc != EXIT_OK)
		return rc;
	if (access(o->argv[0], R_OK) != 0) /* before the store is created */
		return fail("import failed, store unchanged: %s: %s", o->argv[0], strerror(errno));
	tld_store *st;
	rc = open_store(o, true, &st);
	if (rc != EXIT_OK)
		return rc;
	tld_import_stats s;
	tld_errbuf eb = {{0}};
	int err = tld_import_file(st, o->argv[0], &io, &s, &eb);
	tld_store_close(st);
	if (err < 0) {
		fprintf(stderr, "tldctl: import failed, store unchanged: %s\n",
		        eb.msg[0] ? eb.msg : tld_strerror(err));
		return EXIT_FAIL;
	}
	if (!o->quiet)
		printf("imported %s: serial %u, %" PRIu64 " records, %" PRIu64 " rrsets, %" PRIu64
		       " names, %" PRIu64 " delegations, %" PRIu64 " glue rrsets, %" PRIu64
		       " duplicates dropped, %" PRIu64 " warnings; parse %.2fs check %.2fs "
		       "write %.2fs commit %.2fs\n",
		       o->argv[0], s.serial, s.records, s.rrsets, s.names, s.delegations, s.glue,
		       s.duplicates, s.warnings, s.parse_s, s.check_s, s.write_s, s.commit_s);
	return EXIT_OK;
}

/* ---- lookup ---- */

struct print_ctx {
	uint16_t type; /* 0: every type */
	int printed;
	int err;
	tld_errbuf eb;
};

static int print_rrset_cb(const uint8_t *owner, const tld_rrset *rs, void *arg)
{
	struct print_ctx *pc = arg;
	if (pc->type != 0 && rs->type != pc->type)
		return 0;
	int err = tld_dump_rrset(stdout, owner, rs, &pc->eb);
	if (err < 0)
		return pc->err = err;
	pc->printed++;
	return 0;
}

static int print_at(tld_reader *r, const tld_zone *z, const uint8_t *name, uint16_t type,
                    struct print_ctx *pc)
{
	pc->type = type;
	int err = tld_name_foreach_rrset(r, z, name, print_rrset_cb, pc);
	return err < 0 ? err : pc->err;
}

/* Prints the referral for cut: NS, DS, and address records of in-zone targets. */
static int print_delegation(tld_reader *r, const tld_zone *z, const uint8_t *cut,
                            struct print_ctx *pc)
{
	char text[TLD_NAME_TXTMAX];
	tld_name_to_text(cut, text, sizeof(text));
	printf(";; delegation %s\n", text);
	int err = print_at(r, z, cut, TLD_T_NS, pc);
	if (err == 0)
		err = print_at(r, z, cut, TLD_T_DS, pc);
	tld_rrset ns;
	if (err < 0 || tld_rrset_get(r, z, cut, TLD_T_NS, &ns) < 0)
		return err;
	const uint8_t *p = ns.rrs, *rd;
	uint16_t rdlen;
	for (unsigned i = 0; i < ns.rr_count && tld_rr_next(&p, ns.sigs, NULL, &rd, &rdlen); i++) {
		if (tld_name_check(rd, rdlen) < 0 || !tld_name_is_below(rd, z->apex))
			continue;
		if ((err = print_at(r, z, rd, TLD_T_A, pc)) < 0 ||
		    (err = print_at(r, z, rd, TLD_T_AAAA, pc)) < 0)
			return err;
	}
	return TLD_OK;
}

static int lookup_in(tld_reader *r, const uint8_t *name, uint16_t type, struct print_ctx *pc)
{
	tld_zone z;
	char text[TLD_NAME_TXTMAX];
	int err = tld_zone_find_qtype(r, name, type, &z);
	if (err == TLD_ENOENT) {
		tld_name_to_text(name, text, sizeof(text));
		printf(";; REFUSED: no zone in the store contains %s\n", text);
		return EXIT_NODATA;
	}
	if (err < 0)
		return fail("lookup: %s%s", tld_strerror(err), "");
	uint8_t cut[TLD_NAME_MAX];
	err = tld_cut_find(r, &z, name, cut);
	bool at_cut = err > 0 && tld_name_equal(cut, name);
	if (err > 0 && !(at_cut && type == TLD_T_DS))
		err = print_delegation(r, &z, cut, pc);
	else if (err == TLD_ENOENT || err > 0)
		err = print_at(r, &z, name, type == TLD_T_ANY ? 0 : type, pc);
	if (err == 0 && pc->printed == 0 && type != TLD_T_CNAME)
		err = print_at(r, &z, name, TLD_T_CNAME, pc);
	if (err < 0)
		return fail("lookup: %s%s", pc->eb.msg[0] ? pc->eb.msg : tld_strerror(err), "");
	if (pc->printed > 0)
		return EXIT_OK;
	int exists = tld_name_exists(r, &z, name);
	tld_name_to_text(name, text, sizeof(text));
	printf(";; %s: %s\n", exists ? "NODATA" : "NXDOMAIN", text);
	return EXIT_NODATA;
}

static int cmd_lookup(struct opts *o)
{
	if (o->argc != 2)
		return usage("lookup takes NAME and TYPE");
	uint8_t name[TLD_NAME_MAX];
	int rc = parse_name(o->argv[0], name);
	if (rc != EXIT_OK)
		return rc;
	int type = tld_rrtype_from_text(o->argv[1]);
	if (type < 0)
		return usage("unknown TYPE");
	tld_store *st;
	if ((rc = open_store(o, false, &st)) != EXIT_OK)
		return rc;
	tld_reader r;
	struct print_ctx pc = {0};
	if (tld_reader_open(st, &r) < 0 || tld_reader_begin(&r) < 0) {
		tld_store_close(st);
		return fail("%s: cannot start a read transaction%s", o->store, "");
	}
	rc = lookup_in(&r, name, (uint16_t)type, &pc);
	tld_reader_end(&r);
	tld_reader_close(&r);
	tld_store_close(st);
	if (fflush(stdout) != 0)
		return fail("writing output failed%s%s", "", "");
	return rc;
}

/* ---- dump, zones ---- */

static int cmd_dump(struct opts *o)
{
	if (o->argc != 1)
		return usage("dump takes exactly one ZONE");
	uint8_t apex[TLD_NAME_MAX];
	int rc = parse_name(o->argv[0], apex);
	if (rc != EXIT_OK)
		return rc;
	tld_store *st;
	if ((rc = open_store(o, false, &st)) != EXIT_OK)
		return rc;
	FILE *out = stdout;
	if (o->output != NULL && (out = fopen(o->output, "w")) == NULL) {
		tld_store_close(st);
		return fail("%s: cannot create%s", o->output, "");
	}
	tld_reader r;
	tld_zone z;
	tld_errbuf eb = {{0}};
	int err = tld_reader_open(st, &r);
	if (err == 0 && (err = tld_reader_begin(&r)) == 0) {
		err = tld_zone_get(&r, apex, &z);
		if (err == TLD_ENOENT)
			tld_errf(&eb, err, "%s: no such zone in the store", o->argv[0]);
		else if (err == 0)
			err = tld_dump_zone(&r, &z, out, &eb);
		tld_reader_end(&r);
	}
	tld_reader_close(&r);
	tld_store_close(st);
	if (out != stdout && fclose(out) != 0 && err == 0)
		err = tld_errf(&eb, TLD_EIO, "%s: write failed", o->output);
	if (err == 0 && out == stdout && fflush(stdout) != 0)
		err = tld_errf(&eb, TLD_EIO, "write to stdout failed");
	if (err < 0)
		return fail("dump: %s%s", eb.msg[0] ? eb.msg : tld_strerror(err), "");
	return EXIT_OK;
}

static int print_zone_cb(const tld_zone *z, void *arg)
{
	char text[TLD_NAME_TXTMAX];
	tld_name_to_text(z->apex, text, sizeof(text));
	printf("%s\tserial %u\t%s%s%s\n", text, z->serial,
	       (z->flags & TLD_ZONE_SIGNED) ? "signed" : "unsigned",
	       (z->flags & TLD_ZONE_NSEC) ? " nsec" : "",
	       (z->flags & TLD_ZONE_NSEC3) ? " nsec3" : "");
	return 0;
}

static int cmd_zones(struct opts *o)
{
	if (o->argc != 0)
		return usage("zones takes no arguments");
	tld_store *st;
	int rc = open_store(o, false, &st);
	if (rc != EXIT_OK)
		return rc;
	tld_reader r;
	int err = tld_reader_open(st, &r);
	if (err == 0 && (err = tld_reader_begin(&r)) == 0) {
		err = tld_zone_foreach(&r, print_zone_cb, NULL);
		tld_reader_end(&r);
	}
	tld_reader_close(&r);
	tld_store_close(st);
	return err < 0 ? fail("zones: %s%s", tld_strerror(err), "") : EXIT_OK;
}

/* ---- digest, push, status ---- */

struct digest_ctx {
	tld_reader *r;
	const uint8_t *only; /* NULL: every zone */
	int found;
	int err;
};

static int digest_zone_cb(const tld_zone *z, void *arg)
{
	struct digest_ctx *dc = arg;
	if (dc->only != NULL && !tld_name_equal(dc->only, z->apex))
		return 0;
	uint8_t md[TLD_DIGEST_LEN];
	uint64_t rrsets;
	char text[TLD_NAME_TXTMAX], hex[2 * TLD_DIGEST_LEN + 1];
	tld_zone copy = *z; /* the walk below moves the zone cursor's data */
	if ((dc->err = tld_zone_digest(dc->r, &copy, md, &rrsets)) < 0)
		return dc->err;
	for (int i = 0; i < TLD_DIGEST_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	tld_name_to_text(copy.apex, text, sizeof(text));
	printf("%s\tserial %u\trrsets %" PRIu64 "\tsha256 %s\n", text, copy.serial, rrsets, hex);
	dc->found++;
	return 0;
}

static int cmd_digest(struct opts *o)
{
	uint8_t apex[TLD_NAME_MAX];
	if (o->argc > 1)
		return usage("digest takes at most one ZONE");
	if (o->argc == 1 && parse_name(o->argv[0], apex) != EXIT_OK)
		return EXIT_USAGE;
	tld_store *st;
	int rc = open_store(o, false, &st);
	if (rc != EXIT_OK)
		return rc;
	tld_reader r;
	struct digest_ctx dc = {.r = &r, .only = o->argc == 1 ? apex : NULL};
	int err = tld_reader_open(st, &r);
	if (err == 0 && (err = tld_reader_begin(&r)) == 0) {
		err = tld_zone_foreach(&r, digest_zone_cb, &dc);
		tld_reader_end(&r);
	}
	tld_reader_close(&r);
	tld_store_close(st);
	if (err < 0)
		return fail("digest: %s%s", tld_strerror(err), "");
	if (o->argc == 1 && dc.found == 0)
		return fail("digest: %s: no such zone in the store%s", o->argv[0], "");
	return EXIT_OK;
}

static int cmd_push(struct opts *o)
{
	if (o->argc != 0)
		return usage("push takes no positional arguments");
	return tld_ctl_push(&o->ctl);
}

/* ---- status --metrics: each node's Prometheus metrics, summarised ---- */

#define METRICS_BODY_MAX  (16u << 20)
#define METRICS_TIMEOUT_S 5

/* "HOST:PORT" or "[V6]:PORT" into its parts; 0 or -1. */
static int split_hostport(const char *text, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon, *h = text;
	size_t n;
	if (text[0] == '[') {
		const char *end = strchr(text, ']');
		if (end == NULL || end[1] != ':')
			return -1;
		h = text + 1;
		n = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strchr(text, ':');
		if (colon == NULL || strchr(colon + 1, ':') != NULL)
			return -1;
		n = (size_t)(colon - text);
	}
	char *end;
	unsigned long p = strtoul(colon + 1, &end, 10);
	if (n == 0 || n >= hlen || colon[1] == 0 || *end != 0 || p == 0 || p > 65535)
		return -1;
	memcpy(host, h, n);
	host[n] = 0;
	snprintf(port, plen, "%lu", p);
	return 0;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct sample {
	const char *name;
	const char *labels; /* what is between the braces, or "" */
	double v;
};

/* One scrape of one node. */
struct scrape {
	char *text; /* the body, cut in place into the samples' strings */
	struct sample *s;
	size_t n;
	double at; /* when (monotonic seconds) */
	char err[200];
};

static void scrape_free(struct scrape *sc)
{
	free(sc->text);
	free(sc->s);
	memset(sc, 0, sizeof(*sc));
}

/* GET /metrics from addr; the body into sc->text. Returns 0 or -1 (sc->err). */
static int http_get(const char *addr, unsigned timeout_s, struct scrape *sc)
{
	char host[256], port[16];
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	split_hostport(addr, host, sizeof(host), port, sizeof(port)); /* checked when parsed */
	int rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0) {
		snprintf(sc->err, sizeof(sc->err), "%s", gai_strerror(rc));
		return -1;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = {.tv_sec = timeout_s};
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)); /* connect() too */
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	sc->at = now_s();
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		snprintf(sc->err, sizeof(sc->err), "connect: %s", strerror(errno));
		freeaddrinfo(ai);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	freeaddrinfo(ai);
	char req[320];
	int len = snprintf(req, sizeof(req), "GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n", addr);
	size_t cap = 1 << 16, got = 0;
	char *buf = malloc(cap);
	bool ok = buf != NULL && write(fd, req, (size_t)len) == len;
	while (ok) {
		if (got + 1 >= cap) {
			char *nb = cap >= METRICS_BODY_MAX ? NULL : realloc(buf, cap * 2);
			if (nb == NULL) {
				ok = false;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + got, cap - 1 - got);
		if (r == 0)
			break;
		if (r < 0 && errno == EINTR)
			continue;
		ok = r > 0;
		got += r > 0 ? (size_t)r : 0;
	}
	int e = errno;
	close(fd);
	if (!ok) {
		snprintf(sc->err, sizeof(sc->err), "reading the answer: %s",
		         buf == NULL || got + 1 >= cap ? "too large" : strerror(e));
		free(buf);
		return -1;
	}
	buf[got] = 0;
	char *body = strstr(buf, "\r\n\r\n");
	if (strncmp(buf, "HTTP/1.", 7) != 0 || strlen(buf) < 12 || body == NULL ||
	    strncmp(buf + 9, "200", 3) != 0) {
		char *eol = strpbrk(buf, "\r\n");
		if (eol != NULL)
			*eol = 0;
		snprintf(sc->err, sizeof(sc->err), "not a metrics answer: %.80s", buf);
		free(buf);
		return -1;
	}
	body += 4;
	memmove(buf, body, strlen(body) + 1);
	sc->text = buf;
	sc->at = (sc->at + now_s()) / 2;
	return 0;
}

/* Cuts the text into samples (comments skipped). Returns 0 or -1 (sc->err). */
static int parse_samples(struct scrape *sc)
{
	size_t cap = 0;
	for (char *line = sc->text, *next; line != NULL && *line != 0; line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = 0;
		if (*line == '#' || *line == 0)
			continue;
		struct sample smp = {.name = line, .labels = ""};
		char *p = line + strcspn(line, "{ ");
		if (*p == '{') {
			*p++ = 0;
			smp.labels = p;
			bool quoted = false;
			for (; *p != 0 && (quoted || *p != '}'); p++) {
				if (quoted && *p == '\\' && p[1] != 0)
					p++;
				else if (*p == '"')
					quoted = !quoted;
			}
			if (*p != '}')
				goto bad;
			*p++ = 0;
		}
		if (*p != ' ')
			goto bad;
		*p++ = 0;
		char *end;
		smp.v = strtod(p, &end);
		if (end == p || (*end != 0 && *end != ' '))
			goto bad;
		if (sc->n == cap) {
			size_t nc = cap ? cap * 2 : 256;
			struct sample *ns = realloc(sc->s, nc * sizeof(*ns));
			if (ns == NULL) {
				snprintf(sc->err, sizeof(sc->err), "out of memory");
				return -1;
			}
			sc->s = ns;
			cap = nc;
		}
		sc->s[sc->n++] = smp;
		continue;
	bad:
		snprintf(sc->err, sizeof(sc->err), "not Prometheus text: %.60s", line);
		return -1;
	}
	return 0;
}

static int scrape_node(const char *addr, unsigned timeout_s, struct scrape *sc)
{
	scrape_free(sc);
	if (http_get(addr, timeout_s, sc) < 0 || parse_samples(sc) < 0)
		return -1;
	return 0;
}

/* The value of label key in a label list, unescaped into out; false if absent. */
static bool label_get(const char *labels, const char *key, char *out, size_t len)
{
	size_t kl = strlen(key);
	for (const char *p = labels; *p != 0;) {
		bool match = strncmp(p, key, kl) == 0 && p[kl] == '=' && p[kl + 1] == '"';
		p = strchr(p, '"');
		if (p == NULL)
			return false;
		size_t n = 0;
		for (p++; *p != 0 && *p != '"'; p++) {
			char c = *p;
			if (c == '\\' && p[1] != 0)
				c = *++p == 'n' ? '\n' : *p;
			if (match && n + 1 < len)
				out[n++] = c;
		}
		if (match) {
			out[n] = 0;
			return true;
		}
		if (*p == '"')
			p++;
		if (*p == ',')
			p++;
	}
	return false;
}

/* Sum of the samples of name, only those with label key = val when key is
 * given. */
static double sum_of(const struct scrape *sc, const char *name, const char *key, const char *val)
{
	double t = 0;
	char have[256];
	for (size_t i = 0; i < sc->n; i++)
		if (strcmp(sc->s[i].name, name) == 0 &&
		    (key == NULL || (label_get(sc->s[i].labels, key, have, sizeof(have)) &&
		                     strcmp(have, val) == 0)))
			t += sc->s[i].v;
	return t;
}

/* Figures summed by one label's values (rcode, zone), in order of appearance. */
struct kv {
	char key[256];
	double v;
};

struct kvlist {
	struct kv *a;
	size_t n;
};

static void kv_add(struct kvlist *l, const char *key, double v)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->a[i].key, key) == 0) {
			l->a[i].v += v;
			return;
		}
	struct kv *na = realloc(l->a, (l->n + 1) * sizeof(*na));
	if (na == NULL)
		return;
	l->a = na;
	snprintf(l->a[l->n].key, sizeof(l->a[l->n].key), "%s", key);
	l->a[l->n++].v = v;
}

/* name's samples summed by label key (those with label want = wantval, when
 * want is given). */
static void by_label(const struct scrape *sc, const char *name, const char *key, const char *want,
                     const char *wantval, struct kvlist *out)
{
	char val[256], w[256];
	for (size_t i = 0; i < sc->n; i++) {
		if (strcmp(sc->s[i].name, name) != 0 ||
		    !label_get(sc->s[i].labels, key, val, sizeof(val)))
			continue;
		if (want != NULL &&
		    (!label_get(sc->s[i].labels, want, w, sizeof(w)) || strcmp(w, wantval) != 0))
			continue;
		kv_add(out, val, sc->s[i].v);
	}
}

static double kv_get(const struct kvlist *l, const char *key)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->a[i].key, key) == 0)
			return l->a[i].v;
	return 0;
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s != 0; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* What is shown of one node. */
struct node_view {
	const char *addr;
	bool up;
	const char *err;
	char identity[256];
	double workers, interval, qps, qps_udp, qps_tcp, udp, tcp, truncated;
	double tcp_open, tcp_accepted, tcp_refused;
	struct kvlist rcodes, zones;
	bool repl, in_sync;
	char role[32];
	struct kvlist rserial, rprimary, rlag;
};

static void node_view_fill(struct node_view *v, const struct scrape *a, const struct scrape *b)
{
	for (size_t i = 0; i < b->n; i++)
		if (strcmp(b->s[i].name, "tldnode_info") == 0) {
			char w[32] = "";
			label_get(b->s[i].labels, "identity", v->identity, sizeof(v->identity));
			label_get(b->s[i].labels, "workers", w, sizeof(w));
			v->workers = strtod(w, NULL);
		}
	v->interval = b->at - a->at;
	v->udp = sum_of(b, "tldnode_queries_total", "transport", "udp");
	v->tcp = sum_of(b, "tldnode_queries_total", "transport", "tcp");
	double du = v->udp - sum_of(a, "tldnode_queries_total", "transport", "udp");
	double dt = v->tcp - sum_of(a, "tldnode_queries_total", "transport", "tcp");
	if (v->interval > 0) { /* a counter that went down: the node restarted */
		v->qps_udp = du > 0 ? du / v->interval : 0;
		v->qps_tcp = dt > 0 ? dt / v->interval : 0;
	}
	v->qps = v->qps_udp + v->qps_tcp;
	by_label(b, "tldnode_responses_total", "rcode", NULL, NULL, &v->rcodes);
	v->truncated = sum_of(b, "tldnode_truncated_total", NULL, NULL);
	v->tcp_open = sum_of(b, "tldnode_tcp_connections", NULL, NULL);
	v->tcp_accepted = sum_of(b, "tldnode_tcp_accepted_total", NULL, NULL);
	v->tcp_refused = sum_of(b, "tldnode_tcp_refused_total", NULL, NULL);
	by_label(b, "tldnode_zone_serial", "zone", NULL, NULL, &v->zones);
	for (size_t i = 0; i < b->n; i++)
		if (strcmp(b->s[i].name, "tldnode_repl_in_sync") == 0) {
			v->repl = true;
			v->in_sync = b->s[i].v != 0;
			label_get(b->s[i].labels, "role", v->role, sizeof(v->role));
		}
	by_label(b, "tldnode_repl_zone_serial", "zone", "of", "node", &v->rserial);
	by_label(b, "tldnode_repl_zone_serial", "zone", "of", "primary", &v->rprimary);
	by_label(b, "tldnode_repl_lag_ms", "zone", NULL, NULL, &v->rlag);
}

static void node_view_free(struct node_view *v)
{
	free(v->rcodes.a);
	free(v->zones.a);
	free(v->rserial.a);
	free(v->rprimary.a);
	free(v->rlag.a);
}

static void print_kvs(const struct kvlist *l, bool skip_zero)
{
	const char *sep = "";
	for (size_t i = 0; i < l->n; i++) {
		if (skip_zero && l->a[i].v == 0)
			continue;
		printf("%s%s %.0f", sep, l->a[i].key, l->a[i].v);
		sep = ", ";
	}
	printf("%s\n", *sep ? "" : "none");
}

static void print_node_text(const struct node_view *v)
{
	if (!v->up) {
		printf("%s  unreachable: %s\n", v->addr, v->err);
		return;
	}
	printf("%s  %s  %.0f workers\n", v->addr, v->identity[0] ? v->identity : "?", v->workers);
	printf("  %-13s %.1f (udp %.1f, tcp %.1f; over %.2f s)\n", "queries/s", v->qps, v->qps_udp,
	       v->qps_tcp, v->interval);
	printf("  %-13s %.0f (udp %.0f, tcp %.0f)\n", "queries", v->udp + v->tcp, v->udp, v->tcp);
	printf("  %-13s ", "responses");
	print_kvs(&v->rcodes, true);
	printf("  %-13s %.0f\n", "truncated", v->truncated);
	printf("  %-13s %.0f open, %.0f accepted, %.0f refused\n", "tcp", v->tcp_open,
	       v->tcp_accepted, v->tcp_refused);
	for (size_t i = 0; i < v->zones.n; i++)
		printf("  %-13s %s  serial %.0f\n", "zone", v->zones.a[i].key, v->zones.a[i].v);
	if (!v->repl)
		return;
	printf("  %-13s %s, %s\n", "replication", v->role[0] ? v->role : "?",
	       v->in_sync ? "in sync" : "NOT in sync");
	for (size_t i = 0; i < v->rserial.n; i++) {
		const char *z = v->rserial.a[i].key;
		printf("    %-11s serial %.0f, primary's %.0f, lag %.0f ms\n", z, v->rserial.a[i].v,
		       kv_get(&v->rprimary, z), kv_get(&v->rlag, z));
	}
}

static void print_json_kvs(const struct kvlist *l)
{
	putchar('{');
	for (size_t i = 0; i < l->n; i++) {
		printf("%s", i ? ", " : "");
		json_str(l->a[i].key);
		printf(": %.0f", l->a[i].v);
	}
	putchar('}');
}

static void print_node_json(const struct node_view *v)
{
	printf("{\"address\": ");
	json_str(v->addr);
	if (!v->up) {
		printf(", \"up\": false, \"error\": ");
		json_str(v->err);
		putchar('}');
		return;
	}
	printf(", \"up\": true, \"identity\": ");
	json_str(v->identity);
	printf(", \"workers\": %.0f, \"interval_s\": %.3f, \"qps\": %.1f, \"qps_udp\": %.1f, "
	       "\"qps_tcp\": %.1f, \"queries\": {\"udp\": %.0f, \"tcp\": %.0f}, \"responses\": ",
	       v->workers, v->interval, v->qps, v->qps_udp, v->qps_tcp, v->udp, v->tcp);
	print_json_kvs(&v->rcodes);
	printf(", \"truncated\": %.0f, \"tcp\": {\"open\": %.0f, \"accepted\": %.0f, "
	       "\"refused\": %.0f}, \"zones\": ",
	       v->truncated, v->tcp_open, v->tcp_accepted, v->tcp_refused);
	print_json_kvs(&v->zones);
	if (v->repl) {
		printf(", \"replication\": {\"role\": ");
		json_str(v->role);
		printf(", \"in_sync\": %s, \"zones\": {", v->in_sync ? "true" : "false");
		for (size_t i = 0; i < v->rserial.n; i++) {
			const char *z = v->rserial.a[i].key;
			printf("%s", i ? ", " : "");
			json_str(z);
			printf(": {\"serial\": %.0f, \"primary_serial\": %.0f, \"lag_ms\": %.0f}",
			       v->rserial.a[i].v, kv_get(&v->rprimary, z), kv_get(&v->rlag, z));
		}
		printf("}}");
	}
	putchar('}');
}

/* tldctl status --metrics: every node scraped, 1 s later scraped again. */
static int metrics_status(const struct opts *o)
{
	unsigned n = o->nmetrics, timeout = o->ctl.timeout_s ? o->ctl.timeout_s : METRICS_TIMEOUT_S;
	struct scrape *first = calloc(n, sizeof(*first)), *second = calloc(n, sizeof(*second));
	struct node_view *views = calloc(n, sizeof(*views));
	if (first == NULL || second == NULL || views == NULL) {
		free(first);
		free(second);
		free(views);
		return fail("out of memory%s%s", "", "");
	}
	double start = now_s();
	for (unsigned i = 0; i < n; i++)
		scrape_node(o->metrics[i], timeout, &first[i]);
	double wait = start + 1.0 - now_s();
	if (wait > 0) {
		struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(wait * 1e9)};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	int rc = EXIT_OK;
	for (unsigned i = 0; i < n; i++) {
		struct node_view *v = &views[i];
		v->addr = o->metrics[i];
		v->up =
		    first[i].err[0] == 0 && scrape_node(o->metrics[i], timeout, &second[i]) == 0;
		v->err = first[i].err[0] ? first[i].err : second[i].err;
		if (v->up) {
			node_view_fill(v, &first[i], &second[i]);
		} else {
			fprintf(stderr, "tldctl: %s: %s\n", v->addr, v->err);
			rc = EXIT_FAIL;
		}
	}
	if (o->ctl.json)
		printf("{\"nodes\": [");
	for (unsigned i = 0; i < n; i++) {
		if (o->ctl.json) {
			printf("%s", i ? ", " : "");
			print_node_json(&views[i]);
		} else {
			print_node_text(&views[i]);
		}
	}
	if (o->ctl.json)
		printf("]}\n");
	for (unsigned i = 0; i < n; i++) {
		node_view_free(&views[i]);
		scrape_free(&first[i]);
		scrape_free(&second[i]);
	}
	free(first);
	free(second);
	free(views);
	if (fflush(stdout) != 0)
		return fail("writing output failed%s%s", "", "");
	return rc;
}

static int cmd_status(struct opts *o)
{
	if (o->argc != 0)
		return usage("status takes no positional arguments");
	if (o->nmetrics > 0 && (o->ctl.control_url != NULL || o->ctl.key_file != NULL))
		return usage("status takes --metrics ADDR:PORT or --control URL --key FILE, "
		             "not both");
	if (o->nmetrics > 0)
		return metrics_status(o);
	return tld_ctl_status(&o->ctl);
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct opts *o);
		bool store; /* --store is required */
	} cmds[] = {
	    {"import", cmd_import, true}, {"check", cmd_check, false},
	    {"lookup", cmd_lookup, true}, {"dump", cmd_dump, true},
	    {"zones", cmd_zones, true},   {"digest", cmd_digest, true},
	    {"push", cmd_push, false},    {"status", cmd_status, false},
	};
	if (argc < 2)
		return usage("a COMMAND is required");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(usage_text, stdout);
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name) != 0)
			continue;
		struct opts o;
		int rc = parse_opts(argc - 1, argv + 1, cmds[i].store, &o);
		return rc != EXIT_OK ? rc : cmds[i].fn(&o);
	}
	return usage("unknown COMMAND");
}
