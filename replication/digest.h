/* digest.h - a SHA-256 digest of a zone's content, to check that two nodes hold the same data. */
#ifndef TLD_DIGEST_H
#define TLD_DIGEST_H

#include <stdint.h>

#include "../node/store/store.h"

#define TLD_DIGEST_LEN 32

/*
 * The digest covers every RRset of the zone in canonical order (owner, then
 * type), each as: owner (wire, lower case) | type u16 | TTL u32 | rr_count
 * u16 | the RDATA of its RRs sorted (rdlen u16 | rdata each, in octet order)
 * | sig_count u16 | its RRSIGs sorted the same way (ttl u32 | rdlen u16 |
 * rdata). It starts with the zone's serial (u32). Two stores give the same
 * digest exactly when they serve the same data for the zone, however the RRs
 * of an RRset happen to be ordered in each.
 */

/* Computes the digest of z through the active reader r; *rrsets counts the
 * RRsets. Returns 0, TLD_ENOMEM or a store error. */
int tld_zone_digest(tld_reader *r, const tld_zone *z, uint8_t out[TLD_DIGEST_LEN],
                    uint64_t *rrsets);

#endif
