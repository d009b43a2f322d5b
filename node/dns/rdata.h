/* rdata.h - checks that RDATA in wire form has the layout its type prescribes. */
#ifndef TLD_RDATA_H
#define TLD_RDATA_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/*
 * tld_rdata_check - the RDATA of a record of this type is well formed.
 *
 * Walks rd[0, len) along the type's layout (libknot's RDATA descriptors):
 * fixed-size fields must be present, every embedded domain name must be a
 * valid uncompressed wire name (tld_name_check) inside the RDATA, NAPTR's
 * character-strings must fit, and nothing may be left over. Where the layout
 * ends in a free-form remainder, the types that give it a structure are held
 * to it: TXT/SPF/HINFO character-strings filling it exactly; NSEC and NSEC3
 * type bitmaps (RFC 4034 4.1.2); NSEC3's salt and hash and NSEC3PARAM's
 * salt lengths; a non-empty digest, key or signature (DS, CDS, DLV, DNSKEY,
 * CDNSKEY, RRSIG); CAA's tag. Types without a known layout (and RFC 3597
 * unknown types) accept any RDATA.
 *
 * A zone parser already enforces this for the text forms of known types; the
 * generic form (`TYPE \# LEN HEX`, RFC 3597) is where it does not, so a
 * hostile zone could otherwise store an NS whose target is not a name.
 *
 * Returns TLD_OK or TLD_ERDATA. Reads at most len bytes; keeps no state.
 */
int tld_rdata_check(uint16_t type, const uint8_t *rd, size_t len);

/* What a failed tld_rdata_check means, for messages ("malformed NS RDATA " this). */
#define TLD_RDATA_CHECK_WHY "(a field missing, a bad name or bytes left over)"

#endif
