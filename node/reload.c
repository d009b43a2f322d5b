/* reload.c - configuration files and SIGHUP: re-read the configuration, re-open the store, lose no
 * query. */
#include "reload.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define ENV_FDS "TLDNODE_INHERIT_FDS"

static int push_arg(char ***v, int *n, int *cap, const char *s)
{
	if (*n + 1 >= *cap) {
		int c = *cap ? *cap * 2 : 32;
		char **nv = realloc(*v, (size_t)c * sizeof(*nv));
		if (nv == NULL)
			return TLD_ENOMEM;
		*v = nv;
		*cap = c;
	}
	if (((*v)[(*n)++] = strdup(s)) == NULL)
		return TLD_ENOMEM;
	(*v)[*n] = NULL;
	return TLD_OK;
}

static void free_args(char **v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static const char *config_path(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			return argv[i + 1];
		if (strncmp(argv[i], "--config=", 9) == 0)
			return argv[i] + 9;
		if (strcmp(argv[i], "--") == 0)
			break;
	}
	return NULL;
}

/* One line of a config file: "name [value]" becomes "--name" [value]. */
static int config_line(char *line, char ***v, int *n, int *cap)
{
	char *hash = strchr(line, '#');
	if (hash != NULL)
		*hash = 0;
	char *name = line;
	while (isspace((unsigned char)*name))
		name++;
	if (*name == 0)
		return 0;
	char *end = name;
	while (*end && !isspace((unsigned char)*end))
		end++;
	char *value = end;
	while (isspace((unsigned char)*value))
		value++;
	*end = 0;
	char *vend = value + strlen(value);
	while (vend > value && isspace((unsigned char)vend[-1]))
		*--vend = 0;
	if (strcmp(name, "config") == 0)
		return TLD_EINVAL; /* no nesting */
	char opt[128];
	if (snprintf(opt, sizeof(opt), "--%s", name) >= (int)sizeof(opt))
		return TLD_EINVAL;
	int err = push_arg(v, n, cap, opt);
	if (err == 0 && *value != 0)
		err = push_arg(v, n, cap, value);
	return err;
}

int tld_config_expand(int argc, char **argv, int *out_argc, char ***out_argv, tld_errbuf *eb)
{
	char **v = NULL;
	int n = 0, cap = 0, err = push_arg(&v, &n, &cap, argv[0]);
	const char *path = config_path(argc, argv);
	if (path != NULL && err == 0) {
		FILE *f = fopen(path, "r");
		if (f == NULL) {
			free_args(v, n);
			return tld_errf(eb, TLD_EIO, "%s: %s", path, strerror(errno));
		}
		char line[4096];
		for (int lineno = 1; err == 0 && fgets(line, sizeof(line), f) != NULL; lineno++)
			if ((err = config_line(line, &v, &n, &cap)) < 0)
				tld_errf(eb, err, "%s:%d: not an option line", path, lineno);
		fclose(f);
	}
	for (int i = 1; err == 0 && i < argc; i++)
		err = push_arg(&v, &n, &cap, argv[i]);
	if (err < 0) {
		free_args(v, n);
		return eb && eb->msg[0] ? err : tld_errf(eb, err, "out of memory");
	}
	*out_argc = n;
	*out_argv = v;
	return TLD_OK;
}

bool tld_reload_validate(char **argv)
{
	pid_t pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		int argc = 0;
		while (argv[argc] != NULL)
			argc++;
		char **v = calloc((size_t)argc + 2, sizeof(*v));
		if (v == NULL)
			_exit(127);
		memcpy(v, argv, (size_t)argc * sizeof(*v));
		v[argc] = "--check";
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, STDOUT_FILENO);
		unsetenv(ENV_FDS);
		execv("/proc/self/exe", v);
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return false;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

unsigned tld_reload_keep(const tld_takeover_sock *socks, unsigned n, int *fds)
{
	unsigned k = 0;
	for (unsigned i = 0; i < n; i++) {
		int fd = fcntl(socks[i].fd, F_DUPFD, 3); /* no FD_CLOEXEC: survives exec */
		if (fd >= 0)
			fds[k++] = fd;
	}
	return k;
}

int tld_reload_exec(char **argv, const int *fds, unsigned n)
{
	char list[TLD_TAKEOVER_MAX * 8] = "";
	size_t len = 0;
	for (unsigned i = 0; i < n && len + 12 < sizeof(list); i++)
		len +=
		    (size_t)snprintf(list + len, sizeof(list) - len, "%s%d", i ? "," : "", fds[i]);
	setenv(ENV_FDS, list, 1);
	execv("/proc/self/exe", argv);
	return TLD_EIO;
}

unsigned tld_reload_inherited(tld_takeover_set *set)
{
	const char *list = getenv(ENV_FDS);
	set->n = 0;
	if (list == NULL)
		return 0;
	for (const char *p = list; *p && set->n < TLD_TAKEOVER_MAX;) {
		char *end;
		long fd = strtol(p, &end, 10);
		if (end == p)
			break;
		p = *end == ',' ? end + 1 : end;
		tld_takeover_sock *s = &set->socks[set->n];
		socklen_t tl = sizeof(s->type), al = sizeof(s->addr);
		if (fd < 3 || getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &s->type, &tl) != 0 ||
		    getsockname((int)fd, (struct sockaddr *)&s->addr, &al) != 0)
			continue;
		fcntl((int)fd, F_SETFD, FD_CLOEXEC);
		s->fd = (int)fd;
		set->n++;
	}
	unsetenv(ENV_FDS);
	return set->n;
}
