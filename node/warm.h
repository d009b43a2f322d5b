/* warm.h - reads the store's data file into the page cache in the background after start. */
#ifndef TLD_WARM_H
#define TLD_WARM_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

/*
 * tldnode maps its store and parses nothing at start, so after a reboot (or
 * any time the store is not in the page cache) every query that touches a new
 * page waits for a random disk read, and a worker blocked on a page fault
 * answers nobody. Warming reads the data file once, sequentially, on its own
 * thread while the workers already serve: the cache fills at the disk's
 * sequential speed instead of one random read per query.
 *
 * Only what is missing is read (mincore on a read-only map of the file), so a
 * warm store (a SIGHUP reload, a restart) costs almost nothing. A store larger
 * than half of MemAvailable is not warmed: pulling it in would evict the
 * pages other work needs, and the queries would keep only part of it anyway.
 *
 * The thread is best effort: any error is logged and ends it; serving never
 * depends on it.
 */

typedef struct tld_warm tld_warm;

typedef struct tld_warm_report {
	uint64_t file_bytes; /* size of data.mdb */
	uint64_t read_bytes; /* bytes that were not resident and were read */
	double seconds;      /* from start to done */
	bool skipped;        /* not warmed: too large for the available memory */
	bool done;           /* finished (or skipped, or failed) */
} tld_warm_report;

/* Starts warming STORE_DIR/data.mdb on a new thread. Returns TLD_OK, or
 * TLD_ENOMEM / TLD_EIO when the thread cannot be started (nothing runs then).
 * A missing or unreadable file is not an error here: the thread logs it. */
int tld_warm_start(tld_warm **out, const char *store_dir);

/* A snapshot of the progress (thread-safe). */
void tld_warm_get(tld_warm *w, tld_warm_report *out);

/* Asks the thread to stop at the next chunk, joins it and frees w (NULL: no-op). */
void tld_warm_stop(tld_warm *w);

#endif
