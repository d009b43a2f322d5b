/* takeover.h - hand listening sockets from a running tldnode to its successor over a unix socket.
 */
#ifndef TLD_TAKEOVER_H
#define TLD_TAKEOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "../node/common/err.h"

/*
 * Zero-downtime restart. SO_REUSEPORT alone lets a new process bind the
 * same addresses, but the kernel then splits flows between old and new
 * sockets, and whatever sits in the old sockets' receive queues when the old
 * process closes them is lost. So the old process also hands its sockets
 * over: a new tldnode first connects to the control path of the running one,
 * receives duplicates of all its UDP sockets and TCP listeners (SCM_RIGHTS)
 * and serves them, together with sockets of its own. The old process keeps
 * serving until SIGTERM; it then stops reading, answers what it already
 * read and exits. Because both processes hold the same sockets, every
 * datagram queued at that moment is read by the new process: none is lost.
 *
 * A successor serves every inherited socket, also when it runs fewer
 * workers (one worker then serves several sockets per address), and new
 * ones of its own when it runs more. Inherited UDP sockets keep their places
 * in the reuseport group, which a CPU-steering program depends on: the
 * successor removes such a program rather than trust it (server.h).
 *
 * Protocol (one exchange per connection): the client sends "TAKEOVER 1\n";
 * the server answers with one message carrying n descriptors and n records
 * (struct tld_takeover_sock), or "NONE" when it has nothing to give.
 */

#define TLD_TAKEOVER_MAX 253 /* SCM_MAX_FD is 253 */

/* One inherited socket: its descriptor and what it is. */
typedef struct tld_takeover_sock {
	int fd;
	int type;                     /* SOCK_DGRAM or SOCK_STREAM (a listener) */
	struct sockaddr_storage addr; /* the address it is bound to */
} tld_takeover_sock;

/* Sockets received from a predecessor. */
typedef struct tld_takeover_set {
	tld_takeover_sock socks[TLD_TAKEOVER_MAX];
	unsigned n; /* taken entries have fd -1 */
} tld_takeover_set;

/* Asks the process serving at path for its sockets. Returns the number of
 * sockets received (0 when nobody listens at path, which is not an error),
 * or TLD_EIO / TLD_ETIMEDOUT with a message. */
int tld_takeover_fetch(const char *path, tld_takeover_set *set, tld_errbuf *eb);

/* Removes from set and returns the descriptor of an unused socket of the
 * given type bound exactly to addr, or -1 if none is left. */
int tld_takeover_take(tld_takeover_set *set, int type, const struct sockaddr_storage *addr);

/* Same family, address and port? */
bool tld_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* Closes every descriptor of set that was not taken. */
void tld_takeover_release(tld_takeover_set *set);

/* The serving side: a thread answering TAKEOVER requests at path with the
 * sockets given. It binds path atomically (bind to a temporary name, then
 * rename over path), so a successor replaces a predecessor's socket file. */
typedef struct tld_takeover_server tld_takeover_server;

int tld_takeover_serve(tld_takeover_server **out, const char *path, const tld_takeover_sock *socks,
                       unsigned n, tld_errbuf *eb);

/* Stops the thread; removes path if it is still ours. */
void tld_takeover_stop(tld_takeover_server *s);

/* How many sockets have been handed over so far (for logs). */
unsigned tld_takeover_handed(const tld_takeover_server *s);

#endif
