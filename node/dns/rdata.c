/* rdata.c - checks that RDATA in wire form has the layout its type prescribes. */
#include "rdata.h"

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

int tld_rdata_check(uint16_t type, const uint8_t *rd, size_t len)
{
	const knot_rdata_descriptor_t *d = knot_get_rdata_descriptor(type);
	size_t pos = 0;
	for (const int *b = d->block_types; *b != KNOT_RDATA_WF_END; b++) {
		long n;
		switch (*b) {
		case KNOT_RDATA_WF_REMAINDER:
			return TLD_OK; /* free-form to the end */
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
