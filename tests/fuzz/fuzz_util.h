/* fuzz_util.h - what the store-backed fuzz targets share: CHECK, a scratch store, a loaded zone. */
#ifndef TLD_FUZZ_UTIL_H
#define TLD_FUZZ_UTIL_H

#include <stdlib.h>

#include "store/import.h"
#include "store/store.h"

/* A property that must hold: abort, so libFuzzer records the input. */
#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			abort();                                                                   \
	} while (0)

/* A fresh store in a new directory made from tmpl ("/tmp/fuzz-x-XXXXXX"). */
static inline tld_store *fuzz_scratch_store(char *tmpl, size_t map_size)
{
	tld_store *st;
	tld_store_opts so = {.create = true, .map_size = map_size};
	tld_errbuf eb = {{0}};
	CHECK(mkdtemp(tmpl) != NULL);
	CHECK(tld_store_open(&st, tmpl, &so, &eb) == 0);
	return st;
}

/* Imports the zone text into st and commits it; fills z. */
static inline void fuzz_import(tld_store *st, const char *text, size_t len, tld_zone *z)
{
	tld_errbuf eb = {{0}};
	tld_zdata *zd;
	tld_writer w;
	CHECK(tld_zdata_load_string(text, len, "fuzz", NULL, &zd, NULL, &eb) == 0);
	CHECK(tld_writer_begin(st, &w, &eb) == 0);
	CHECK(tld_zdata_write(zd, &w, z, NULL, &eb) == 0);
	CHECK(tld_zone_publish(&w, z, &eb) == 0);
	CHECK(tld_writer_commit(&w, &eb) == 0);
	tld_zdata_free(zd);
}

#endif
