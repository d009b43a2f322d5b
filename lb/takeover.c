/* takeover.c - hand listening sockets from a running tldnode to its successor over a unix socket.
 */
#include "takeover.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define REQUEST    "TAKEOVER 1\n"
#define TIMEOUT_MS 2000

struct tld_takeover_server {
	int fd;
	int stop_pipe[2];
	pthread_t thread;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	ino_t ino;
	tld_takeover_sock socks[TLD_TAKEOVER_MAX];
	unsigned n;
	atomic_uint handed;
};

static int unix_addr(const char *path, struct sockaddr_un *sun, tld_errbuf *eb)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun->sun_path))
		return tld_errf(eb, TLD_EINVAL, "%s: control socket path too long", path);
	strcpy(sun->sun_path, path);
	return TLD_OK;
}

static void set_timeouts(int fd)
{
	struct timeval tv = {.tv_sec = TIMEOUT_MS / 1000, .tv_usec = (TIMEOUT_MS % 1000) * 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* ---- client (the new process) ---- */

static int receive_set(int fd, tld_takeover_set *set, tld_errbuf *eb)
{
	static tld_takeover_sock recs[TLD_TAKEOVER_MAX];
	union {
		char buf[CMSG_SPACE(sizeof(int) * TLD_TAKEOVER_MAX)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {.iov_base = recs, .iov_len = sizeof(recs)};
	struct msghdr m = {.msg_iov = &iov,
	                   .msg_iovlen = 1,
	                   .msg_control = ctl.buf,
	                   .msg_controllen = sizeof(ctl.buf)};
	ssize_t got = recvmsg(fd, &m, MSG_CMSG_CLOEXEC | MSG_WAITALL);
	if (got < 0)
		return tld_errf(eb, errno == EAGAIN ? TLD_ETIMEDOUT : TLD_EIO,
		                "takeover: no answer from the running tldnode: %s",
		                strerror(errno));
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	if (c == NULL || c->cmsg_type != SCM_RIGHTS)
		return 0; /* "NONE" */
	unsigned nfd = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
	unsigned nrec = (unsigned)((size_t)got / sizeof(tld_takeover_sock));
	int *fds = (int *)CMSG_DATA(c);
	if (nfd != nrec || (m.msg_flags & (MSG_CTRUNC | MSG_TRUNC))) {
		for (unsigned i = 0; i < nfd; i++)
			close(fds[i]);
		return tld_errf(eb, TLD_EIO, "takeover: malformed answer (%u sockets, %u records)",
		                nfd, nrec);
	}
	for (unsigned i = 0; i < nfd; i++) {
		set->socks[i] = recs[i];
		set->socks[i].fd = fds[i];
	}
	set->n = nfd;
	return (int)nfd;
}

int tld_takeover_fetch(const char *path, tld_takeover_set *set, tld_errbuf *eb)
{
	struct sockaddr_un sun;
	set->n = 0;
	int err = unix_addr(path, &sun, eb);
	if (err < 0)
		return err;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return tld_errf(eb, TLD_EIO, "takeover: socket: %s", strerror(errno));
	set_timeouts(fd);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		/* Nobody serves there: a first start, or a stale socket file. */
		close(fd);
		return 0;
	}
	if (write(fd, REQUEST, strlen(REQUEST)) != (ssize_t)strlen(REQUEST)) {
		close(fd);
		return tld_errf(eb, TLD_EIO, "takeover: cannot ask %s: %s", path, strerror(errno));
	}
	int n = receive_set(fd, set, eb);
	close(fd);
	return n;
}

bool tld_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
	return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
}

int tld_takeover_take(tld_takeover_set *set, int type, const struct sockaddr_storage *addr)
{
	for (unsigned i = 0; i < set->n; i++) {
		tld_takeover_sock *s = &set->socks[i];
		if (s->fd >= 0 && s->type == type && tld_addr_equal(&s->addr, addr)) {
			int fd = s->fd;
			s->fd = -1;
			return fd;
		}
	}
	return -1;
}

void tld_takeover_release(tld_takeover_set *set)
{
	for (unsigned i = 0; i < set->n; i++)
		if (set->socks[i].fd >= 0)
			close(set->socks[i].fd);
	set->n = 0;
}

/* ---- server (the running process) ---- */

static void answer(struct tld_takeover_server *s, int c)
{
	char req[32] = {0};
	set_timeouts(c);
	ssize_t r = read(c, req, sizeof(req) - 1);
	if (r <= 0 || strcmp(req, REQUEST) != 0)
		return;
	if (s->n == 0) {
		ssize_t w = write(c, "NONE", 4);
		(void)w;
		return;
	}
	union {
		char buf[CMSG_SPACE(sizeof(int) * TLD_TAKEOVER_MAX)];
		struct cmsghdr align;
	} ctl;
	memset(&ctl, 0, sizeof(ctl));
	struct iovec iov = {.iov_base = s->socks, .iov_len = s->n * sizeof(tld_takeover_sock)};
	struct msghdr m = {.msg_iov = &iov,
	                   .msg_iovlen = 1,
	                   .msg_control = ctl.buf,
	                   .msg_controllen = CMSG_SPACE(sizeof(int) * s->n)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * s->n);
	int *fds = (int *)CMSG_DATA(cm);
	for (unsigned i = 0; i < s->n; i++)
		fds[i] = s->socks[i].fd;
	if (sendmsg(c, &m, MSG_NOSIGNAL) > 0)
		atomic_fetch_add(&s->handed, s->n);
}

static void *serve_main(void *arg)
{
	struct tld_takeover_server *s = arg;
	struct pollfd pfd[2] = {{.fd = s->fd, .events = POLLIN},
	                        {.fd = s->stop_pipe[0], .events = POLLIN}};
	for (;;) {
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
		if (!(pfd[0].revents & POLLIN))
			continue;
		int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		answer(s, c);
		close(c);
	}
	return NULL;
}

/* Binds a listening unix socket at path via a temporary name and rename(),
 * so a running predecessor's socket file is replaced atomically. */
static int bind_atomic(struct tld_takeover_server *s, const char *path, tld_errbuf *eb)
{
	struct sockaddr_un sun;
	char tmp[sizeof(sun.sun_path)];
	if (snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return tld_errf(eb, TLD_EINVAL, "%s: control socket path too long", path);
	int err = unix_addr(tmp, &sun, eb);
	if (err < 0)
		return err;
	unlink(tmp);
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    listen(s->fd, 8) != 0 || rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		return tld_errf(eb, TLD_EIO, "control socket %s: %s", path, strerror(e));
	}
	chmod(path, 0600);
	struct stat sb;
	s->ino = stat(path, &sb) == 0 ? sb.st_ino : 0;
	snprintf(s->path, sizeof(s->path), "%s", path);
	return TLD_OK;
}

int tld_takeover_serve(tld_takeover_server **out, const char *path, const tld_takeover_sock *socks,
                       unsigned n, tld_errbuf *eb)
{
	struct tld_takeover_server *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return tld_errf(eb, TLD_ENOMEM, "out of memory");
	s->fd = -1;
	s->n = n > TLD_TAKEOVER_MAX ? TLD_TAKEOVER_MAX : n;
	memcpy(s->socks, socks, s->n * sizeof(*socks));
	int err = bind_atomic(s, path, eb);
	if (err == 0 && pipe2(s->stop_pipe, O_CLOEXEC) != 0)
		err = tld_errf(eb, TLD_EIO, "pipe: %s", strerror(errno));
	if (err == 0 && pthread_create(&s->thread, NULL, serve_main, s) != 0)
		err = tld_errf(eb, TLD_ENOMEM, "cannot start the takeover thread");
	if (err < 0) {
		if (s->fd >= 0)
			close(s->fd);
		free(s);
		return err;
	}
	*out = s;
	return TLD_OK;
}

void tld_takeover_stop(tld_takeover_server *s)
{
	if (s == NULL)
		return;
	ssize_t w = write(s->stop_pipe[1], "x", 1);
	(void)w;
	pthread_join(s->thread, NULL);
	struct stat sb;
	if (stat(s->path, &sb) == 0 && sb.st_ino == s->ino)
		unlink(s->path); /* still ours: no successor replaced it */
	close(s->fd);
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
	free(s);
}

unsigned tld_takeover_handed(const tld_takeover_server *s)
{
	return atomic_load(&((struct tld_takeover_server *)s)->handed);
}
