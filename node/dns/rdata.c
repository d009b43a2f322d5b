/* rdata.c - checks that RDATA in wire form has the layout its type prescribes. */
#include "rdata.h"

#include <stdbool.h>

#include <libknot/descriptor.h>

#include "name.h"

/* NAPTR before its replacement name: order, preference, then flags,
 * services and regexp as character-strings. Returns the bytes or -1. */
static long naptr_header(const uint8_t *rd, size_t len)
{
	size_t pos = 4;
	if (len < pos)
		return -1;
	for (int i = 0; i < 3; i++) {
		if (pos >= len || len - pos < 1u + rd[pos])
			return -1;
		pos += 1u + rd[pos];
	}
	return (long)pos;
}

/* One or more character-strings filling rd exactly (max: at most that many). */
static bool char_strings(const uint8_t *rd, size_t len, unsigned max)
{
	size_t pos = 0;
	unsigned n = 0;
	while (pos < len) {
		if (len - pos < 1u + rd[pos] || ++n > max)
			return false;
		pos += 1u + rd[pos];
	}
	return n > 0;
}

/* RFC 4034 4.1.2 type bitmap: blocks of (window, length 1..32, bitmap) with
 * windows in increasing order and no trailing zero octet. May be empty. */
static bool type_bitmap(const uint8_t *rd, size_t len)
{
	size_t pos = 0;
	int last = -1;
	while (pos < len) {
		if (len - pos < 2)
			return false;
		uint8_t win = rd[pos], blen = rd[pos + 1];
		if ((int)win <= last || blen == 0 || blen > 32 || len - pos - 2 < blen ||
		    rd[pos + 1 + blen] == 0)
			return false;
		last = win;
		pos += 2u + blen;
	}
	return true;
}

/* The free-form end of the RDATA (for most types libknot describes, the
 * whole of it) of types whose layout libknot leaves open there: a generic
 * (RFC 3597) record of such a type would otherwise pass with anything, which
 * later writers (the wire, the dump) are not built for. */
static bool remainder_ok(uint16_t type, const uint8_t *rd, size_t len)
{
	switch (type) {
	case 16: /* TXT */
	case 99: /* SPF */
		return char_strings(rd, len, UINT32_MAX);
	case 13: /* HINFO: cpu and os */
		return char_strings(rd, len, 2) && len > 1u + rd[0];
	case 47: /* NSEC: after the next name */
		return type_bitmap(rd, len);
	case 50: { /* NSEC3: algorithm, flags, iterations, salt, hash, bitmap */
		if (len < 5 || len - 5 < rd[4] + 1u)
			return false;
		size_t h = 5u + rd[4]; /* the hash length */
		if (rd[h] == 0 || len - h - 1 < rd[h])
			return false;
		return type_bitmap(rd + h + 1 + rd[h], len - h - 1 - rd[h]);
	}
	case 51: /* NSEC3PARAM: algorithm, flags, iterations, salt */
		return len >= 5 && len == 5u + rd[4];
	case 43:    /* DS: key tag, algorithm, digest type, digest */
	case 59:    /* CDS */
	case 32769: /* DLV */
	case 48:    /* DNSKEY: flags, protocol, algorithm, key */
	case 60:    /* CDNSKEY */
		return len > 4;
	case 46: /* RRSIG, after the signer: the signature */
		return len > 0;
	case 257: /* CAA: flags, a tag of 1..15 characters, the value */
		return len >= 2 && rd[1] >= 1 && rd[1] <= 15 && len - 2 >= rd[1];
	default:
		return true;
	}
}

int tld_rdata_check(uint16_t type, const uint8_t *rd, size_t len)
{
	const knot_rdata_descriptor_t *d = knot_get_rdata_descriptor(type);
	size_t pos = 0;
	for (const int *b = d->block_types; *b != KNOT_RDATA_WF_END; b++) {
		long n;
		switch (*b) {
		case KNOT_RDATA_WF_REMAINDER: /* to the end: what each type puts there */
			return remainder_ok(type, rd + pos, len - pos) ? TLD_OK : TLD_ERDATA;
		case KNOT_RDATA_WF_NAPTR_HEADER:
			n = naptr_header(rd + pos, len - pos);
			break;
		case KNOT_RDATA_WF_FIXED_DNAME:
		case KNOT_RDATA_WF_COMPRESSIBLE_DNAME:
		case KNOT_RDATA_WF_DECOMPRESSIBLE_DNAME:
			n = tld_name_check(rd + pos, len - pos);
			break;
		default: /* a fixed-size field of *b bytes */
			n = *b > 0 && (size_t)*b <= len - pos ? *b : -1;
		}
		if (n < 0)
			return TLD_ERDATA;
		pos += (size_t)n;
	}
	return pos == len ? TLD_OK : TLD_ERDATA;
}
