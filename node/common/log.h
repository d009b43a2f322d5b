/* log.h - leveled logging to stderr, one line per event. */
#ifndef TLD_LOG_H
#define TLD_LOG_H

enum tld_log_level { TLD_LOG_ERR = 0, TLD_LOG_WARN = 1, TLD_LOG_INFO = 2, TLD_LOG_DEBUG = 3 };

/* Messages above this level are discarded (default TLD_LOG_INFO). */
void tld_log_set_level(int level);

/* Parses "error", "warning", "info" or "debug"; returns the level or -1. */
int tld_log_parse_level(const char *text);

/* Writes "YYYY-mm-ddTHH:MM:SS.mmmZ tldnode[pid] LEVEL: message\n" to stderr in
 * one write(), so lines from different threads never interleave. */
void tld_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
