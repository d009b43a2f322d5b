/* reload.h - configuration files and SIGHUP: re-read the configuration, re-open the store, lose no
 * query. */
#ifndef TLD_RELOAD_H
#define TLD_RELOAD_H

#include <stdbool.h>

#include "../lb/takeover.h"
#include "common/err.h"

/*
 * Configuration file (--config FILE): one option per line, written as on the
 * command line without the leading dashes ("listen 127.0.0.1:53",
 * "hide-version", "rrl-rate 100"); '#' starts a comment. Options on the
 * command line are applied after the file's, so they win for single-valued
 * options and add to repeatable ones (--listen, --rrl-allow).
 *
 * SIGHUP re-executes tldnode in place (same PID, so supervisors keep
 * tracking it): the new configuration is first checked by running
 * `tldnode ARGS --check` in a child (a broken file leaves the running node
 * alone), then the workers stop reading and answer what they read, the
 * store is closed, and the process execs itself with its listening sockets
 * kept open and named in TLDNODE_INHERIT_FDS. Datagrams arriving meanwhile
 * wait in the kernel's socket queues: none is dropped. TCP connections in
 * progress are finished (or given a grace period) before the exec.
 */

/* Builds the effective argument vector: argv[0], the options of the --config
 * file named in argv (if any), then argv[1..]. The result (and its strings)
 * live until exit. Returns 0, or TLD_EIO / TLD_EINVAL with file:line. */
int tld_config_expand(int argc, char **argv, int *out_argc, char ***out_argv, tld_errbuf *eb);

/* Runs `/proc/self/exe argv... --check` and says whether it exited 0. */
bool tld_reload_validate(char **argv);

/* Duplicates the descriptors of socks without close-on-exec, for the exec.
 * Returns how many were kept (dups written to fds). */
unsigned tld_reload_keep(const tld_takeover_sock *socks, unsigned n, int *fds);

/* Execs /proc/self/exe with argv, naming fds[0..n) in TLDNODE_INHERIT_FDS.
 * Returns only on failure (TLD_EIO). */
int tld_reload_exec(char **argv, const int *fds, unsigned n);

/* In a re-executed process: fills set with the inherited sockets (type and
 * address read back from each) and clears TLDNODE_INHERIT_FDS. Returns how
 * many, 0 when the process was not re-executed. */
unsigned tld_reload_inherited(tld_takeover_set *set);

#endif
