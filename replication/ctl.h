/* ctl.h - tldctl's replication commands: push a change to a primary, show every node's status. */
#ifndef TLD_CTL_H
#define TLD_CTL_H

#include <stdbool.h>
#include <stddef.h>

/* What `tldctl push` and `tldctl status` take. */
typedef struct tld_ctl_opts {
	const char *control_url; /* the primary's control (REP) address */
	const char *key_file;
	const char *zone_file;  /* push: a whole new version of the zone */
	const char *delta_file; /* push: changes ("+"/"-" lines) */
	const char *origin;     /* push: the zone's name when the file does not say */
	bool create;            /* push --zone-file: make the zone if the primary lacks it */
	bool json;              /* status: JSON instead of a table */
	unsigned timeout_s;     /* how long to wait for the reply (0: push 300 s, status 10 s) */
	size_t max_message;     /* largest request or reply, bytes (0: TLD_REPL_MAX_MESSAGE) */
} tld_ctl_opts;

/* Sends the push and waits until the primary has committed and published
 * it (or refused it). Prints the result (stdout) or why it failed (stderr).
 * Returns the exit status: 0 done, 1 refused or failed, 2 usage error. */
int tld_ctl_push(const tld_ctl_opts *o);

/* Prints the primary's and every replica's zones, serials, lag, last report
 * and sync state. Returns the exit status (0, 1 or 2). */
int tld_ctl_status(const tld_ctl_opts *o);

#endif
