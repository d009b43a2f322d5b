/* tldctl.c - operator's tool: import, look up, dump and digest zones; push changes, show status. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    "       [--origin NAME] [--timeout SECONDS]\n"
    "      send a new version of a zone, or changes (\"+\"/\"-\" lines), to a primary;\n"
    "      returns once the primary has committed and published it, or says why not\n"
    "  status --control URL --key FILE [--json] [--timeout SECONDS]\n"
    "      every node (the primary and its replicas): zone, serial, lag, last\n"
    "      report, in sync or not\n"
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

/* Options every subcommand shares. */
struct opts {
	const char *store;
	const char *origin;
	const char *output;
	size_t map_size;
	bool quiet;
	tld_ctl_opts ctl; /* push, status */
	int argc;         /* positional arguments left */
	char **argv;
};

enum { OPT_CONTROL = 256, OPT_KEY, OPT_ZONE_FILE, OPT_DELTA, OPT_CREATE, OPT_JSON, OPT_TIMEOUT };

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
			char *end;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (*end == 'G' || *end == 'g')
				v <<= 30, end++;
			else if (*end == 'M' || *end == 'm')
				v <<= 20, end++;
			if (*end != 0 || v < (1u << 20))
				return usage(
				    "--map-size takes a size in bytes (suffix M or G allowed)");
			o->map_size = (size_t)v;
			break;
		}
		case 'h':
			fputs(usage_text, stdout);
			exit(EXIT_OK);
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

static int cmd_import(struct opts *o)
{
	if (o->argc != 1)
		return usage("import takes exactly one ZONEFILE");
	uint8_t origin[TLD_NAME_MAX];
	tld_import_opts io = {.warn = stderr};
	if (o->origin != NULL) {
		int rc = parse_name(o->origin, origin);
		if (rc != EXIT_OK)
			return rc;
		io.origin = origin;
	}
	if (access(o->argv[0], R_OK) != 0) /* before the store is created */
		return fail("import failed, store unchanged: %s: %s", o->argv[0], strerror(errno));
	tld_store *st;
	int rc = open_store(o, true, &st);
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

static int cmd_status(struct opts *o)
{
	if (o->argc != 0)
		return usage("status takes no positional arguments");
	return tld_ctl_status(&o->ctl);
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct opts *o);
		bool store; /* --store is required */
	} cmds[] = {
	    {"import", cmd_import, true},  {"lookup", cmd_lookup, true}, {"dump", cmd_dump, true},
	    {"zones", cmd_zones, true},    {"digest", cmd_digest, true}, {"push", cmd_push, false},
	    {"status", cmd_status, false},
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
