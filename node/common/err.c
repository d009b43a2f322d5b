/* err.c - descriptions of the project's error codes. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>

const char *tld_strerror(int code)
{
	switch (code) {
	case TLD_OK:
		return "success";
	case TLD_ENOMEM:
		return "out of memory";
	case TLD_EINVAL:
		return "invalid argument";
	case TLD_ENOENT:
		return "not found";
	case TLD_EEXIST:
		return "already exists";
	case TLD_ESPACE:
		return "buffer too small";
	case TLD_ENAME:
		return "malformed domain name";
	case TLD_ESYNTAX:
		return "zone file syntax error";
	case TLD_EZONE:
		return "invalid zone content";
	case TLD_ESTORE:
		return "store (LMDB) failure";
	case TLD_EMAPFULL:
		return "store map is full (raise --map-size)";
	case TLD_EFOREIGN:
		return "not a tldnode store, or a corrupt one";
	case TLD_EVERSION:
		return "store format version not supported";
	case TLD_EIO:
		return "I/O error";
	case TLD_EMALFORMED:
		return "malformed DNS message";
	case TLD_ERDATA:
		return "malformed RDATA";
	case TLD_EBUSY:
		return "resource busy";
	case TLD_ESERIAL:
		return "serial mismatch";
	case TLD_EAUTH:
		return "authentication failed";
	case TLD_ETIMEDOUT:
		return "timed out";
	default:
		return "unknown error";
	}
}

int tld_errf(tld_errbuf *eb, int code, const char *fmt, ...)
{
	if (eb != NULL) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(eb->msg, sizeof(eb->msg), fmt, ap);
		va_end(ap);
	}
	return code;
}
