/* rrl.h - response rate limiting shared by all workers, without locks. */
#ifndef TLD_RRL_H
#define TLD_RRL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/err.h"

/*
 * Response rate limiting (as in NSD and Knot DNS, after Vixie and Schryver's
 * design): a spoofed flood uses the server to amplify, so identical responses
 * to one client network are limited to `rate` per second. A bucket is keyed
 * by the client prefix (IPv4 /24, IPv6 /56), the response class and the name
 * the response is about (the query name for answers, the zone for NXDOMAIN,
 * the delegation for referrals); each holds tokens refilled at `rate` per
 * second. When a bucket is empty, one response in `slip` is sent truncated
 * (TC=1, so a real client retries over TCP) and the others are dropped;
 * slip 0 drops all. TCP is never limited, nor are clients in the allow list
 * or presenting a valid DNS server cookie.
 *
 * One table serves every worker. Buckets are updated with relaxed atomic
 * loads and stores: no lock and no read-modify-write bus lock on the query
 * path; two workers racing on one bucket may lose an update, which only
 * makes the limit slightly inexact.
 */

enum tld_rrl_class {
	TLD_RRL_POSITIVE = 0,
	TLD_RRL_NXDOMAIN,
	TLD_RRL_NODATA,
	TLD_RRL_REFERRAL,
	TLD_RRL_ERROR,
	TLD_RRL_CLASSES,
};

enum tld_rrl_verdict {
	TLD_RRL_PASS = 0, /* send the response */
	TLD_RRL_SLIP,     /* send it truncated (TC=1, no records) */
	TLD_RRL_DROP,     /* send nothing */
};

#define TLD_RRL_ALLOW_MAX 64

typedef struct tld_rrl_prefix {
	int family;
	uint8_t addr[16];
	uint8_t len; /* prefix length */
} tld_rrl_prefix;

typedef struct tld_rrl_conf {
	uint32_t rate;     /* responses per second per bucket; 0 disables RRL */
	uint32_t slip;     /* one limited response in slip is truncated; 0: none */
	uint32_t buckets;  /* table size (rounded up to a power of two) */
	uint8_t v4_prefix; /* 24 */
	uint8_t v6_prefix; /* 56 */
	unsigned nallow;
	tld_rrl_prefix allow[TLD_RRL_ALLOW_MAX];
} tld_rrl_conf;

/* Defaults: rate 200/s, slip 2, 65536 buckets, /24 and /56. */
void tld_rrl_conf_default(tld_rrl_conf *c);

/* Adds "ADDR/LEN" (or a bare address) to the allow list. TLD_EINVAL or
 * TLD_ESPACE on error. */
int tld_rrl_allow(tld_rrl_conf *c, const char *prefix);

typedef struct tld_rrl tld_rrl;

/* Allocates the shared table (the only allocation). */
int tld_rrl_new(tld_rrl **out, const tld_rrl_conf *c);
void tld_rrl_free(tld_rrl *r);

/* The verdict for one UDP response of class cls about name (a wire name;
 * pass the lower-cased form) to client, at now_ms (a monotonic clock in
 * milliseconds; workers pass the time of their current batch). */
enum tld_rrl_verdict tld_rrl_check(tld_rrl *r, const struct sockaddr *client, int cls,
                                   const uint8_t *name, uint64_t now_ms);

/* Counters (approximate sums over all workers). */
typedef struct tld_rrl_stats {
	uint64_t passed, slipped, dropped;
} tld_rrl_stats;

void tld_rrl_stats_get(const tld_rrl *r, tld_rrl_stats *out);

#endif
