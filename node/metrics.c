/* metrics.c - Prometheus text exposition of a node's counters over HTTP. */
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define METRICS_MAX   (4u << 20) /* refuse to grow an exposition beyond this */
#define IO_TIMEOUT_MS 2000

struct tld_metrics {
	int fd;
	int stop_pipe[2];
	pthread_t thread;
	tld_metrics_render_fn render;
	void *arg;
};

int tld_metrics_printf(tld_metrics_buf *b, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		size_t room = b->cap - b->len;
		int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return TLD_EINVAL;
		if (b->p != NULL && (size_t)n < room) {
			b->len += (size_t)n;
			return TLD_OK;
		}
		size_t cap = b->cap ? b->cap * 2 : 16384;
		while (cap < b->len + (size_t)n + 1)
			cap *= 2;
		if (cap > METRICS_MAX)
			return TLD_ESPACE;
		char *p = realloc(b->p, cap);
		if (p == NULL)
			return TLD_ENOMEM;
		b->p = p;
		b->cap = cap;
	}
}

static void write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		len -= (size_t)w;
	}
}

/* Reads the request head (to its blank line, or what fits) and answers. */
static void serve_one(struct tld_metrics *m, int c)
{
	struct timeval tv = {.tv_sec = IO_TIMEOUT_MS / 1000, .tv_usec = 0};
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	char req[2048];
	size_t got = 0;
	while (got < sizeof(req) - 1) {
		ssize_t r = read(c, req + got, sizeof(req) - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
		req[got] = 0;
		if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
			break;
	}
	req[got] = 0;
	bool get = strncmp(req, "GET ", 4) == 0;
	tld_metrics_buf b = {0};
	if (get)
		m->render(&b, m->arg);
	char head[256];
	int hl = snprintf(head, sizeof(head),
	                  "HTTP/1.0 %s\r\nContent-Type: text/plain; version=0.0.4\r\n"
	                  "Content-Length: %zu\r\nConnection: close\r\n\r\n",
	                  get ? "200 OK" : "405 Method Not Allowed", get ? b.len : 0);
	write_all(c, head, (size_t)hl);
	if (get && b.len > 0)
		write_all(c, b.p, b.len);
	free(b.p);
}

static void *metrics_main(void *arg)
{
	struct tld_metrics *m = arg;
	struct pollfd pfd[2] = {{.fd = m->fd, .events = POLLIN},
	                        {.fd = m->stop_pipe[0], .events = POLLIN}};
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		int c = accept(m->fd, NULL, NULL);
		if (c < 0)
			continue;
		serve_one(m, c);
		close(c);
	}
	return NULL;
}

int tld_metrics_start(tld_metrics **out, const struct sockaddr *addr, socklen_t addrlen,
                      tld_metrics_render_fn render, void *arg, tld_errbuf *eb)
{
	struct tld_metrics *m = calloc(1, sizeof(*m));
	if (m == NULL)
		return tld_errf(eb, TLD_ENOMEM, "out of memory");
	m->render = render;
	m->arg = arg;
	m->fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (m->fd < 0 || setsockopt(m->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(m->fd, addr, addrlen) != 0 || listen(m->fd, 16) != 0 ||
	    pipe2(m->stop_pipe, O_CLOEXEC) != 0) {
		int e = errno;
		if (m->fd >= 0)
			close(m->fd);
		free(m);
		return tld_errf(eb, TLD_EIO, "metrics listener: %s", strerror(e));
	}
	if (pthread_create(&m->thread, NULL, metrics_main, m) != 0) {
		close(m->fd);
		close(m->stop_pipe[0]);
		close(m->stop_pipe[1]);
		free(m);
		return tld_errf(eb, TLD_ENOMEM, "cannot start the metrics thread");
	}
	*out = m;
	return TLD_OK;
}

void tld_metrics_stop(tld_metrics *m)
{
	if (m == NULL)
		return;
	ssize_t w = write(m->stop_pipe[1], "x", 1);
	(void)w;
	pthread_join(m->thread, NULL);
	close(m->fd);
	close(m->stop_pipe[0]);
	close(m->stop_pipe[1]);
	free(m);
}
