/* err.h - the project's one error convention: negative TLD_E* codes and tld_strerror(). */
#ifndef TLD_ERR_H
#define TLD_ERR_H

/*
 * Every function of the project that can fail returns an int: 0 (TLD_OK) or a
 * non-negative result on success, and one of the negative codes below on
 * failure. tld_strerror() turns a code into a short English phrase. Functions
 * that need to say more (file:line, which record) fill a caller-supplied
 * tld_errbuf as well; the code alone is always enough to decide what to do.
 */

enum tld_err {
	TLD_OK = 0,
	TLD_ENOMEM = -1,      /* out of memory */
	TLD_EINVAL = -2,      /* invalid argument */
	TLD_ENOENT = -3,      /* not found */
	TLD_EEXIST = -4,      /* already exists */
	TLD_ESPACE = -5,      /* output buffer too small */
	TLD_ENAME = -6,       /* malformed domain name */
	TLD_ESYNTAX = -7,     /* zone file syntax error */
	TLD_EZONE = -8,       /* zone content violates a rule (see the message) */
	TLD_ESTORE = -9,      /* LMDB failure (see the message) */
	TLD_EMAPFULL = -10,   /* LMDB map is full: nothing was written */
	TLD_EFOREIGN = -11,   /* the directory holds no tldnode store, or a corrupt one */
	TLD_EVERSION = -12,   /* store written by an incompatible version */
	TLD_EIO = -13,        /* I/O error (see errno/message) */
	TLD_EMALFORMED = -14, /* malformed DNS message */
	TLD_ERDATA = -15,     /* malformed RDATA */
	TLD_EBUSY = -16,      /* resource busy (e.g. too many readers) */
	TLD_ESERIAL = -17,    /* serial mismatch: a gap, a replay, or not newer */
	TLD_EAUTH = -18,      /* message authentication failed */
	TLD_ETIMEDOUT = -19,  /* no answer in time */
	TLD_ERR_MIN = -19,
};

/* Returns a static, never-NULL description of code (also for unknown codes). */
const char *tld_strerror(int code);

/* Room for a human-readable message accompanying an error code. */
typedef struct tld_errbuf {
	char msg[512];
} tld_errbuf;

/* Formats a message into eb (if not NULL) and returns code, so callers can write
 * `return tld_errf(eb, TLD_EZONE, "%s:%lu: ...", ...)`. */
int tld_errf(tld_errbuf *eb, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
