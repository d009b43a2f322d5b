/* tldnode.c - the daemon: serves the zones of a store (serving arrives with issue 3). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "store/store.h"

static const char usage_text[] = "usage: tldnode --store DIR [--map-size BYTES] [--check]\n"
                                 "  --store DIR   the LMDB store written by `tldctl import`\n"
                                 "  --check       open the store, report its zones and exit\n"
                                 "Runs in the foreground as one process until SIGTERM or SIGINT.\n";

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int count_zone(const tld_zone *z, void *arg)
{
	(*(unsigned *)arg)++;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"store", required_argument, NULL, 's'},
	    {"map-size", required_argument, NULL, 'm'},
	    {"check", no_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *dir = NULL;
	tld_store_opts so = {.read_only = true};
	int check = 0, c;
	while ((c = getopt_long(argc, argv, "s:m:ch", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			dir = optarg;
			break;
		case 'm':
			so.map_size = strtoull(optarg, NULL, 10);
			break;
		case 'c':
			check = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (dir == NULL || optind != argc) {
		fprintf(stderr, "tldnode: %s\n%s",
		        dir ? "unexpected argument" : "--store DIR is required", usage_text);
		return 2;
	}
	tld_store *st;
	tld_errbuf eb = {{0}};
	int err = tld_store_open(&st, dir, &so, &eb);
	if (err < 0) {
		fprintf(stderr, "tldnode: %s\n", eb.msg[0] ? eb.msg : tld_strerror(err));
		return 1;
	}
	tld_reader r;
	unsigned zones = 0;
	if ((err = tld_reader_open(st, &r)) == 0 && (err = tld_reader_begin(&r)) == 0) {
		err = tld_zone_foreach(&r, count_zone, &zones);
		tld_reader_end(&r);
	}
	tld_reader_close(&r);
	if (err < 0) {
		fprintf(stderr, "tldnode: %s: %s\n", dir, tld_strerror(err));
		tld_store_close(st);
		return 1;
	}
	fprintf(stderr, "tldnode: store %s: %u zones\n", dir, zones);
	if (!check) {
		signal(SIGTERM, on_signal);
		signal(SIGINT, on_signal);
		while (!stop)
			pause();
		fprintf(stderr, "tldnode: exiting\n");
	}
	tld_store_close(st);
	return 0;
}
