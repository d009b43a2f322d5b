/* metrics.h - Prometheus text exposition of a node's counters over HTTP. */
#ifndef TLD_METRICS_H
#define TLD_METRICS_H

#include <stddef.h>
#include <sys/socket.h>

#include "common/err.h"

/*
 * A tiny HTTP/1.0 server on its own thread: every GET gets the current
 * metrics (text format 0.0.4) and the connection is closed. It reads the
 * workers' counters while they run; the counters are written by their
 * owner thread only (see TLD_STAT_INC in query.h), so reading is race-free
 * and costs the query path nothing.
 *
 * What is exported is produced by a callback, so this module knows nothing
 * of DNS: tldnode renders its engines' counters and each zone's serial.
 */

/* Appends text to the exposition buffer; returns 0 or TLD_ESPACE. */
typedef struct tld_metrics_buf {
	char *p;
	size_t len, cap;
} tld_metrics_buf;

int tld_metrics_printf(tld_metrics_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Called for every scrape, on the metrics thread. */
typedef void (*tld_metrics_render_fn)(tld_metrics_buf *b, void *arg);

typedef struct tld_metrics tld_metrics;

/* Binds addr (TCP) and starts the metrics thread. Errors: TLD_EIO (bind),
 * TLD_ENOMEM. */
int tld_metrics_start(tld_metrics **out, const struct sockaddr *addr, socklen_t addrlen,
                      tld_metrics_render_fn render, void *arg, tld_errbuf *eb);

/* Stops the thread and closes the socket. */
void tld_metrics_stop(tld_metrics *m);

#endif
