/* rrtype.h - RR type and class numbers, and their presentation names. */
#ifndef TLD_RRTYPE_H
#define TLD_RRTYPE_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

enum {
	TLD_T_A = 1,
	TLD_T_NS = 2,
	TLD_T_CNAME = 5,
	TLD_T_SOA = 6,
	TLD_T_PTR = 12,
	TLD_T_HINFO = 13,
	TLD_T_MX = 15,
	TLD_T_TXT = 16,
	TLD_T_RP = 17,
	TLD_T_AFSDB = 18,
	TLD_T_SIG = 24,
	TLD_T_KEY = 25,
	TLD_T_AAAA = 28,
	TLD_T_LOC = 29,
	TLD_T_SRV = 33,
	TLD_T_NAPTR = 35,
	TLD_T_KX = 36,
	TLD_T_CERT = 37,
	TLD_T_DNAME = 39,
	TLD_T_OPT = 41,
	TLD_T_APL = 42,
	TLD_T_DS = 43,
	TLD_T_SSHFP = 44,
	TLD_T_IPSECKEY = 45,
	TLD_T_RRSIG = 46,
	TLD_T_NSEC = 47,
	TLD_T_DNSKEY = 48,
	TLD_T_DHCID = 49,
	TLD_T_NSEC3 = 50,
	TLD_T_NSEC3PARAM = 51,
	TLD_T_TLSA = 52,
	TLD_T_SMIMEA = 53,
	TLD_T_HIP = 55,
	TLD_T_CDS = 59,
	TLD_T_CDNSKEY = 60,
	TLD_T_OPENPGPKEY = 61,
	TLD_T_CSYNC = 62,
	TLD_T_ZONEMD = 63,
	TLD_T_SVCB = 64,
	TLD_T_HTTPS = 65,
	TLD_T_SPF = 99,
	TLD_T_NID = 104,
	TLD_T_L32 = 105,
	TLD_T_L64 = 106,
	TLD_T_LP = 107,
	TLD_T_EUI48 = 108,
	TLD_T_EUI64 = 109,
	TLD_T_TKEY = 249,
	TLD_T_TSIG = 250,
	TLD_T_IXFR = 251,
	TLD_T_AXFR = 252,
	TLD_T_ANY = 255,
	TLD_T_URI = 256,
	TLD_T_CAA = 257,
	TLD_T_CHECKED_MAX = 256, /* types below this fit small per-name tables */
};

enum {
	TLD_C_IN = 1,
	TLD_C_CH = 3,
	TLD_C_NONE = 254,
	TLD_C_ANY = 255,
};

/* Writes the mnemonic of type ("NS", or "TYPE65280" per RFC 3597) to buf.
 * Returns the length or TLD_ESPACE. */
int tld_rrtype_to_text(uint16_t type, char *buf, size_t len);

/* Parses a mnemonic (case-insensitive) or TYPEnnn. Returns the type number
 * (>= 0) or TLD_EINVAL. */
int tld_rrtype_from_text(const char *text);

/* Whether records of type t may be zone data: not 0, not OPT (41), and not a
 * Q- or meta-type (128..255: TKEY, TSIG, IXFR, AXFR, ANY...; RFC 6895 3.1). */
bool tld_rrtype_is_data(uint16_t t);

#endif
