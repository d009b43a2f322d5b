/* warm.c - reads the store's data file into the page cache in the background after start. */
#include "warm.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

#define CHUNK    (8u << 20) /* mincore and read granularity */
#define READ_BUF (1u << 20)

struct tld_warm {
	pthread_t thread;
	char path[4096];
	atomic_bool stop;
	pthread_mutex_t lock; /* guards report */
	tld_warm_report report;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* MemAvailable in bytes, or 0 when unknown. */
static uint64_t mem_available(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	if (f == NULL)
		return 0;
	char line[256];
	unsigned long long kb = 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return (uint64_t)kb * 1024;
}

static void publish(tld_warm *w, uint64_t read_bytes, bool done)
{
	pthread_mutex_lock(&w->lock);
	w->report.read_bytes = read_bytes;
	w->report.done = done;
	pthread_mutex_unlock(&w->lock);
}

/* True when every page of map[0, len) is in the page cache. A failing
 * mincore (not allowed on this file) says no: the chunk is read. */
static bool resident(const uint8_t *map, size_t len, unsigned char *vec, size_t page)
{
	if (map == NULL || mincore((void *)map, len, vec) != 0)
		return false;
	for (size_t i = 0; i < (len + page - 1) / page; i++)
		if (!(vec[i] & 1))
			return false;
	return true;
}

/* Reads [off, off+len) of fd into buf, piece by piece; false on an error. */
static bool read_range(int fd, uint64_t off, size_t len, uint8_t *buf)
{
	while (len > 0) {
		size_t n = len < READ_BUF ? len : READ_BUF;
		ssize_t got = pread(fd, buf, n, (off_t)off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return false;
		off += (uint64_t)got;
		len -= (size_t)got;
	}
	return true;
}

static void warm_file(tld_warm *w, int fd, uint64_t size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	unsigned char *vec = malloc(CHUNK / page + 1);
	uint8_t *buf = malloc(READ_BUF);
	void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	const uint8_t *map = m == MAP_FAILED ? NULL : m;
	uint64_t read_bytes = 0;
	if (vec == NULL || buf == NULL) {
		tld_log(TLD_LOG_WARN, "warm: out of memory; not warming the store");
		goto out;
	}
	/* Larger readahead on this descriptor only (LMDB's has its own). */
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	for (uint64_t off = 0; off < size && !atomic_load(&w->stop); off += CHUNK) {
		size_t len = size - off < CHUNK ? (size_t)(size - off) : CHUNK;
		if (resident(map ? map + off : NULL, len, vec, page))
			continue;
		if (!read_range(fd, off, len, buf)) {
			tld_log(TLD_LOG_WARN, "warm: reading %s: %s", w->path,
			        errno ? strerror(errno) : "short read");
			break;
		}
		read_bytes += len;
		publish(w, read_bytes, false);
	}
out:
	if (map != NULL)
		munmap(m, size);
	free(buf);
	free(vec);
}

static void *warm_main(void *arg)
{
	tld_warm *w = arg;
	double t0 = now_s();
	int fd = open(w->path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) != 0) {
		tld_log(TLD_LOG_WARN, "warm: %s: %s", w->path, strerror(errno));
		if (fd >= 0)
			close(fd);
		publish(w, 0, true);
		return NULL;
	}
	uint64_t size = (uint64_t)sb.st_size, avail = mem_available();
	pthread_mutex_lock(&w->lock);
	w->report.file_bytes = size;
	w->report.skipped = avail > 0 && size > avail / 2;
	pthread_mutex_unlock(&w->lock);
	if (avail > 0 && size > avail / 2)
		tld_log(TLD_LOG_INFO,
		        "warm: not reading the store into the page cache: %llu MB is more than "
		        "half of the %llu MB available",
		        (unsigned long long)(size >> 20), (unsigned long long)(avail >> 20));
	else
		warm_file(w, fd, size);
	close(fd);
	double secs = now_s() - t0;
	pthread_mutex_lock(&w->lock);
	w->report.seconds = secs;
	w->report.done = true;
	tld_warm_report r = w->report;
	pthread_mutex_unlock(&w->lock);
	if (!r.skipped)
		tld_log(TLD_LOG_INFO,
		        "warm: store in the page cache: read %llu of %llu MB in %.2f s",
		        (unsigned long long)(r.read_bytes >> 20),
		        (unsigned long long)(r.file_bytes >> 20), secs);
	return NULL;
}

int tld_warm_start(tld_warm **out, const char *store_dir)
{
	tld_warm *w = calloc(1, sizeof(*w));
	if (w == NULL)
		return TLD_ENOMEM;
	snprintf(w->path, sizeof(w->path), "%s/data.mdb", store_dir);
	atomic_init(&w->stop, false);
	pthread_mutex_init(&w->lock, NULL);
	if (pthread_create(&w->thread, NULL, warm_main, w) != 0) {
		pthread_mutex_destroy(&w->lock);
		free(w);
		return TLD_EIO;
	}
	*out = w;
	return TLD_OK;
}

void tld_warm_get(tld_warm *w, tld_warm_report *out)
{
	pthread_mutex_lock(&w->lock);
	*out = w->report;
	pthread_mutex_unlock(&w->lock);
}

void tld_warm_stop(tld_warm *w)
{
	if (w == NULL)
		return;
	atomic_store(&w->stop, true);
	pthread_join(w->thread, NULL);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
