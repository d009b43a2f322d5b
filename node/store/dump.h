/* dump.h - write store contents back as RFC 1035 master-file text. */
#ifndef TLD_DUMP_H
#define TLD_DUMP_H

#include <stdio.h>

#include "store.h"

/*
 * Text conversion of RDATA is libknot's (knot_rrset_txt_dump), so every type
 * Knot knows is written in its usual presentation form and unknown types in
 * RFC 3597 form (\# len hex). Owner names are absolute and lower case.
 * Import of the output gives back exactly the same store content.
 */

/* Writes one RRset: its records, then the RRSIGs covering it. */
int tld_dump_rrset(FILE *out, const uint8_t *owner, const tld_rrset *rs, tld_errbuf *eb);

/* Writes the whole zone z (SOA first, then canonical order). */
int tld_dump_zone(tld_reader *r, const tld_zone *z, FILE *out, tld_errbuf *eb);

#endif
