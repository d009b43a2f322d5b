/* wire.h - DNS wire format: query parsing and response building; no state, no allocation. */
#ifndef TLD_WIRE_H
#define TLD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "name.h"

/*
 * This module reads DNS queries and writes DNS responses in caller-supplied
 * buffers. It keeps no state between calls, never allocates, and every reader
 * is safe on arbitrary bytes: all offsets are bounds-checked against the
 * length the caller gives. Structures are fixed-size and meant to live on the
 * stack or in a per-thread context.
 *
 * Typical use for one UDP query:
 *
 *   tld_query q;
 *   tld_resp r;
 *   int pr = tld_query_parse(pkt, n, &q);
 *   if (pr == TLD_PARSE_DROP)
 *           return;                                     // send nothing
 *   tld_resp_init(&r, out, tld_query_udp_max(&q, 1232), &q);
 *   if (q.opcode != TLD_OP_QUERY)
 *           tld_resp_set_rcode(&r, TLD_RCODE_NOTIMP);
 *   else if (pr == TLD_PARSE_FORMERR)
 *           tld_resp_set_rcode(&r, TLD_RCODE_FORMERR);
 *   else if (q.has_opt && q.edns_version != 0)
 *           tld_resp_set_rcode(&r, TLD_RCODE_BADVERS); // needs the OPT below
 *   else {
 *           tld_resp_reserve(&r, TLD_OPT_LEN);          // + 4 + len per option
 *           tld_resp_add_rrset(&r, ...);                // ... until TLD_ESPACE
 *   }
 *   if (q.has_opt)
 *           tld_resp_add_opt(&r, 1232, q.edns_do, NULL, 0);
 *   send(out, tld_resp_finish(&r));
 *
 * Offsets stored in structures are 16-bit: a DNS message never exceeds 65535
 * bytes, and longer inputs are cut to that length.
 */

#define TLD_HDR_LEN  12    /* DNS header */
#define TLD_MSG_MAX  65535 /* largest DNS message */
#define TLD_UDP_MIN  512   /* RFC 1035 UDP size, the floor of every UDP limit */
#define TLD_PTR_HOPS 128   /* most compression pointers followed in one name */
#define TLD_OPT_LEN  11    /* an OPT RR without options */
#define TLD_COMP_MAX 64    /* names (suffixes) remembered for compression */

/* Header flag bits (the 16-bit word at offset 2). */
#define TLD_WIRE_QR 0x8000u
#define TLD_WIRE_AA 0x0400u
#define TLD_WIRE_TC 0x0200u
#define TLD_WIRE_RD 0x0100u
#define TLD_WIRE_RA 0x0080u
#define TLD_WIRE_Z  0x0040u
#define TLD_WIRE_AD 0x0020u
#define TLD_WIRE_CD 0x0010u

/* EDNS flags (low 16 bits of the OPT TTL). */
#define TLD_EDNS_DO 0x8000u

enum tld_opcode {
	TLD_OP_QUERY = 0,
	TLD_OP_IQUERY = 1,
	TLD_OP_STATUS = 2,
	TLD_OP_NOTIFY = 4,
	TLD_OP_UPDATE = 5,
	TLD_OP_DSO = 6,
};

/* Response codes; values above 15 need an OPT RR (extended RCODE). */
enum tld_rcode {
	TLD_RCODE_NOERROR = 0,
	TLD_RCODE_FORMERR = 1,
	TLD_RCODE_SERVFAIL = 2,
	TLD_RCODE_NXDOMAIN = 3,
	TLD_RCODE_NOTIMP = 4,
	TLD_RCODE_REFUSED = 5,
	TLD_RCODE_YXDOMAIN = 6,
	TLD_RCODE_NOTAUTH = 9,
	TLD_RCODE_NOTZONE = 10,
	TLD_RCODE_BADVERS = 16,
	TLD_RCODE_BADCOOKIE = 23,
};

/* EDNS option codes. */
enum tld_edns_opt {
	TLD_EDNS_NSID = 3,
	TLD_EDNS_COOKIE = 10,
	TLD_EDNS_TCP_KEEPALIVE = 11,
	TLD_EDNS_PADDING = 12,
	TLD_EDNS_EDE = 15,
};

/* Extended DNS Error info codes (RFC 8914 4) that an authoritative server
 * has a use for. */
enum tld_ede {
	TLD_EDE_PROHIBITED = 18,        /* refused by policy (zone transfers) */
	TLD_EDE_NOT_AUTHORITATIVE = 20, /* the name is in no zone served here */
	TLD_EDE_NOT_SUPPORTED = 21,     /* an opcode other than QUERY */
};

/* Message sections, in the order they must be written. */
enum tld_section {
	TLD_SEC_QUESTION = 0,
	TLD_SEC_ANSWER = 1,
	TLD_SEC_AUTHORITY = 2,
	TLD_SEC_ADDITIONAL = 3,
};

/* ---- Query parsing ---- */

/* What tld_query_parse() says to do with a message. */
enum tld_parse_result {
	TLD_PARSE_OK = 0,      /* a well-formed query: answer it */
	TLD_PARSE_FORMERR = 1, /* malformed: answer FORMERR (or NOTIMP for a foreign opcode) */
	TLD_PARSE_DROP = 2,    /* send nothing: shorter than a header, or QR=1 */
};

/* Why a message was not TLD_PARSE_OK (tld_query.why), for logs and stats. */
enum tld_parse_why {
	TLD_WHY_NONE = 0,
	TLD_WHY_SHORT,       /* DROP: fewer than 12 bytes */
	TLD_WHY_QR,          /* DROP: QR=1, a response */
	TLD_WHY_QDCOUNT,     /* QDCOUNT is not 1 */
	TLD_WHY_QNAME,       /* QNAME truncated, label > 63 (or a reserved label type), or > 255 */
	TLD_WHY_QNAME_PTR,   /* compression pointer in the QNAME */
	TLD_WHY_QTRUNC,      /* QTYPE/QCLASS truncated */
	TLD_WHY_COUNT,       /* the message ends before the record counts are satisfied */
	TLD_WHY_RR,          /* a malformed or truncated record (bad name, pointer loop, RDATA) */
	TLD_WHY_OPT_SECTION, /* OPT in the answer or authority section */
	TLD_WHY_OPT_DUP,     /* more than one OPT */
	TLD_WHY_OPT_OWNER,   /* OPT owner is not the root */
	TLD_WHY_OPT_OPTION,  /* an EDNS option overruns the OPT RDATA */
	TLD_WHY_COOKIE,      /* COOKIE option of a bad length (RFC 7873 5.2.2) */
	TLD_WHY_TSIG,        /* TSIG not the last record of the additional section */
};

/* A parsed query. Fields are valid as documented per parse result; the
 * question and EDNS fields are zero/false unless said otherwise. */
typedef struct tld_query {
	const uint8_t *pkt; /* the parsed message (borrowed, not copied) */
	uint16_t len;       /* bytes of pkt looked at: min(len, 65535) */
	uint8_t why;        /* enum tld_parse_why */

	/* Header: valid unless why == TLD_WHY_SHORT. */
	uint16_t id;
	uint16_t flags; /* the raw flags word: TLD_WIRE_* bits, opcode, rcode */
	uint8_t opcode;
	uint8_t rcode; /* the 4 header bits */
	bool qr, aa, tc, rd, ra, z, ad, cd;
	uint16_t qdcount, ancount, nscount, arcount;

	/* Question: valid when has_question (also on some FORMERR results). */
	bool has_question;
	uint8_t qname_labels;   /* labels of qname, the root not counted */
	uint16_t qname_off;     /* offset of the QNAME in pkt (always 12) */
	uint16_t qname_wirelen; /* its length (never compressed) */
	uint16_t qtype, qclass;
	uint16_t question_end; /* offset just after QCLASS */

	/* Message end: valid on TLD_PARSE_OK. */
	uint16_t msg_end; /* offset after the last record counted by the header */
	bool trailing;    /* bytes follow msg_end (ignored, as NSD and Knot do) */

	/* EDNS: has_opt once the OPT RR header was accepted (also on FORMERR
	 * for a bad option, so the caller may answer with EDNS). */
	bool has_opt;
	bool edns_do;           /* DO bit */
	bool nsid;              /* NSID option present (a request for our NSID) */
	bool tcp_keepalive;     /* edns-tcp-keepalive option present (RFC 7828) */
	uint8_t edns_version;   /* answer BADVERS when not 0 */
	uint8_t edns_ext_rcode; /* upper 8 bits of the extended RCODE (0 in queries) */
	uint16_t edns_udp;      /* requestor's payload size, as sent (may be < 512) */
	uint16_t edns_flags;    /* the 16 flag bits, DO included */
	uint16_t opt_off;       /* offset of the OPT RR (its root owner) */
	uint16_t opt_rdlen;     /* its RDATA length; RDATA starts at opt_off + 11 */
	uint16_t opt_count;     /* number of options */
	uint16_t cookie_off;    /* offset of the COOKIE option data in pkt: client cookie (8),
	                           then server cookie (cookie_len - 8) */
	uint8_t cookie_len;     /* 0: no COOKIE; else 8 (client only) or 16..40 */

	/* TSIG: present as the last additional record (we do not verify it). */
	bool has_tsig;
	uint16_t tsig_off; /* offset of the TSIG RR */

	/* The QNAME as sent (case preserved) and lower-cased, uncompressed. */
	uint8_t qname[TLD_NAME_MAX];
	uint8_t qname_lc[TLD_NAME_MAX];
} tld_query;

/* Parses the DNS message pkt[0..len) as a query into q.
 *
 * Returns TLD_PARSE_OK, TLD_PARSE_FORMERR or TLD_PARSE_DROP (never a negative
 * code); q->why says why it was not OK.
 *  - DROP: len < 12 (nothing can be answered) or QR=1 (never answer a
 *    response: reflection loops). Header fields are valid for QR=1.
 *  - FORMERR: the header is valid (id, opcode, rd, cd...). The question is
 *    valid if q->has_question; EDNS fields if q->has_opt. The caller should
 *    test q->opcode first: a foreign opcode gets NOTIMP whatever its body.
 *    QDCOUNT 0 is FORMERR (why TLD_WHY_QDCOUNT) after the whole message was
 *    walked as for OK, so its OPT and COOKIE are known: a server with DNS
 *    Cookies answers such a query that carries a COOKIE (RFC 7873 5.4).
 *  - OK: one question, every record of the answer, authority and additional
 *    sections walked and bounds-checked (compressed names followed, pointer
 *    loops rejected), at most one OPT, in the additional section, with the
 *    root owner and well-formed options.
 * The QNAME must not contain compression pointers (FORMERR). Bytes after the
 * last record are ignored and flagged in q->trailing. Only the first COOKIE
 * option counts; NSID is flagged whatever its payload.
 *
 * Caveat: q keeps a pointer to pkt (q->pkt), used by tld_resp_init() to copy
 * the question; pkt must stay unchanged until then. Cost: one pass over the
 * message, two copies of the QNAME; no allocation. */
int tld_query_parse(const uint8_t *pkt, size_t len, tld_query *q);

/* Short static description of a tld_parse_why value ("qdcount is not 1"). */
const char *tld_parse_why_text(int why);

/* The size limit of a UDP response to q: 512 without EDNS, else the
 * requestor's payload size clamped to [512, our_max] (our_max itself is
 * raised to 512 and capped at 65535). */
size_t tld_query_udp_max(const tld_query *q, size_t our_max);

/* ---- Reading names and records anywhere in a message ---- */

/* Reads the possibly compressed name at pkt[off] and writes it uncompressed
 * (case preserved) to out (TLD_NAME_MAX bytes; NULL only validates).
 * Compression pointers are followed, at most TLD_PTR_HOPS of them, and each
 * must point strictly before the start of the run of labels that holds it,
 * so loops are impossible; the result must be at most 255 bytes.
 * *next_off (if not NULL) gets the offset just after the name as it sits at
 * off (after its first pointer, or after its root label).
 * Returns the uncompressed wire length (>= 1) or TLD_EMALFORMED (truncated,
 * label type 01/10, label over 63, forward or looping pointer, too long). */
int tld_wire_name_read(const uint8_t *pkt, size_t len, size_t off, uint8_t *out, size_t *next_off);

/* One resource record as found in a message. */
typedef struct tld_wire_rr {
	uint8_t owner[TLD_NAME_MAX]; /* uncompressed, case preserved */
	uint16_t owner_off;          /* where the owner starts in the message */
	uint16_t type, rclass;
	uint32_t ttl;
	uint16_t rdata_off; /* RDATA is pkt[rdata_off .. rdata_off + rdlen) */
	uint16_t rdlen;
} tld_wire_rr;

/* Reads the RR starting at pkt[off] into rr and sets *next_off (if not NULL)
 * after its RDATA. Names inside the RDATA are not examined (read them with
 * tld_wire_name_read() at rr->rdata_off). Returns 0 or TLD_EMALFORMED. */
int tld_wire_rr_read(const uint8_t *pkt, size_t len, size_t off, tld_wire_rr *rr, size_t *next_off);

/* ---- Response building ---- */

/* A compression target: a name (or suffix) already written at off. */
typedef struct tld_comp_entry {
	uint16_t off;
	uint8_t wirelen; /* uncompressed length of the name at off */
	uint8_t labels;
} tld_comp_entry;

/* A response under construction in a caller buffer. Treat as opaque: use
 * the functions below. Fixed size (about 300 bytes), no allocation. */
typedef struct tld_resp {
	uint8_t *buf;
	size_t cap;     /* the response may not exceed this */
	size_t len;     /* bytes written */
	size_t reserve; /* bytes RRs must leave free (for the OPT RR) */
	uint16_t count[4];
	uint16_t opt_off; /* offset of our OPT RR, 0 if none */
	uint8_t section;  /* last section written: sections only move forward */
	uint8_t ext_rcode;
	uint8_t ncomp;
	tld_comp_entry comp[TLD_COMP_MAX];
} tld_resp;

/* A saved state of a tld_resp, to undo several additions at once. */
typedef struct tld_resp_mark {
	size_t len;
	uint16_t count[4];
	uint16_t opt_off;
	uint8_t section, ncomp;
} tld_resp_mark;

/* Starts a response to q in buf, which holds at least cap bytes (cap above
 * 65535 is cut to 65535). Writes the header: q's id, QR=1, q's opcode, RD and
 * CD copied, everything else 0 (AA, TC, RA, AD, rcode NOERROR); then, if
 * q->has_question, the question exactly as it was received (QNAME case
 * preserved, for 0x20 clients), and records the QNAME and its suffixes as
 * compression targets.
 * buf may be q->pkt itself (the response is then built in place): the
 * question is already there. Otherwise buf must not overlap q->pkt.
 * Caveat: in place, everything after the question is overwritten as the
 * response grows: copy what you still need (the client cookie) first.
 * Works for any q that was not dropped for being short, so it can build the
 * FORMERR and NOTIMP replies too.
 * Returns 0, TLD_EINVAL (q->len < 12) or TLD_ESPACE (cap below the header
 * and question). */
int tld_resp_init(tld_resp *r, uint8_t *buf, size_t cap, const tld_query *q);

/* Keeps n bytes at the end of the buffer free for the OPT RR: later RRs fail
 * with TLD_ESPACE rather than eat them. tld_resp_add_opt() and
 * tld_resp_add_edns_option() may use them. n replaces any earlier value;
 * size it as TLD_OPT_LEN + 4 + length of each option to be sent.
 * Returns 0, or TLD_ESPACE if fewer than n bytes remain (nothing changes). */
int tld_resp_reserve(tld_resp *r, size_t n);

/* Sets the response code, 0..4095. The low 4 bits go to the header and the
 * upper 8 to the OPT RR (now, or when tld_resp_add_opt() writes it). An
 * rcode above 15 is only meaningful with an OPT RR: the caller must add one. */
void tld_resp_set_rcode(tld_resp *r, unsigned rcode);

/* Sets then clears header flag bits among TLD_WIRE_AA, TC, RA, Z, AD, CD and
 * RD; other bits of set and clear are ignored (QR and the opcode stay). */
void tld_resp_set_flags(tld_resp *r, uint16_t set, uint16_t clear);

/* Appends one RR to section (TLD_SEC_ANSWER, _AUTHORITY or _ADDITIONAL).
 * owner is an uncompressed, valid name; it is compressed against the names
 * already written (case-insensitive suffix match, pointers only to offsets
 * below 0x4000). For NS, CNAME, PTR, MX and SOA the names in the RDATA
 * (RFC 3597 section 4) are compressed too and become targets themselves; any
 * other RDATA is copied verbatim.
 * Returns 0 or a negative code, and on any error the response is exactly as
 * before the call (length, counts, compression table; bytes past the length
 * may have been scribbled on):
 *   TLD_ESPACE  it does not fit in cap minus the reserve: set TC, or skip
 *               this (additional) record;
 *   TLD_EINVAL  bad section, or one before a section already written;
 *   TLD_ENAME   owner is not a valid name;
 *   TLD_ERDATA  the RDATA of a compressible type does not hold exactly the
 *               names (and fixed fields) its type requires. */
int tld_resp_add_rr(tld_resp *r, int section, const uint8_t *owner, uint16_t type, uint16_t rclass,
                    uint32_t ttl, const uint8_t *rdata, uint16_t rdlen);

/* Appends a whole RRset, all its RRs or none. rrs holds the records in the
 * store's packed form: each is rdlen (16 bits, big-endian) then RDATA, and
 * rrs_len is their total size. Owner and RDATA compression as in
 * tld_resp_add_rr(). Returns the number of RRs written (0 for an empty set),
 * or a code of tld_resp_add_rr() (TLD_ERDATA also for a truncated rrs) with
 * nothing written. */
int tld_resp_add_rrset(tld_resp *r, int section, const uint8_t *owner, uint16_t type,
                       uint16_t rclass, uint32_t ttl, const uint8_t *rrs, size_t rrs_len);

/* Appends RRSIG records, all or none, from the store's packed signature form:
 * each is ttl (32 bits), rdlen (16 bits), RDATA, all big-endian. Each RR's
 * TTL is min(its stored TTL, ttl_max). Returns the number written or a code
 * as tld_resp_add_rrset(). */
int tld_resp_add_sigs(tld_resp *r, int section, const uint8_t *owner, uint16_t rclass,
                      uint32_t ttl_max, const uint8_t *sigs, size_t sigs_len);

/* Appends our OPT RR to the additional section: EDNS version 0, payload size
 * udp_size, the DO bit if do_bit, the upper bits of the rcode set with
 * tld_resp_set_rcode(), and an NSID option if nsid is not NULL. It may use
 * the reserved bytes. Only one per response; afterwards no RR of an earlier
 * section can be added.
 * Returns 0, TLD_EEXIST (already added) or TLD_ESPACE (nothing written). */
int tld_resp_add_opt(tld_resp *r, uint16_t udp_size, bool do_bit, const uint8_t *nsid,
                     uint16_t nsid_len);

/* TSIG error codes (RFC 8945 4.3). */
#define TLD_TSIG_BADKEY 17

/* Appends the unsigned TSIG RR of an error response to a query that carried
 * a TSIG (RFC 8945 5.3.2): the query's key and algorithm names, time signed
 * and fudge, no MAC, its original ID, and the TSIG error (TLD_TSIG_BADKEY
 * from a server that knows no keys). It must be the last record: add it after
 * the OPT and its options. Returns 0, TLD_EINVAL (the query has no TSIG),
 * TLD_EMALFORMED (its TSIG RDATA does not parse) or TLD_ESPACE. */
int tld_resp_add_tsig_error(tld_resp *r, const tld_query *q, uint16_t error);

/* Appends one EDNS option (a server cookie, an extended error...) to the OPT
 * RR, which must be the last thing written. May use the reserved bytes.
 * Returns 0, TLD_EINVAL (no OPT, or records written after it) or TLD_ESPACE
 * (nothing written). */
int tld_resp_add_edns_option(tld_resp *r, uint16_t code, const uint8_t *data, uint16_t len);

/* Saves the current state, to roll back several additions with
 * tld_resp_restore() (e.g. an RRset with its signatures, or a whole
 * additional section). */
tld_resp_mark tld_resp_save(const tld_resp *r);

/* Returns the response to the state saved in m (which must come from this
 * response, and nothing before it may have been undone since). The rcode
 * and header flags are not part of the state. */
void tld_resp_restore(tld_resp *r, const tld_resp_mark *m);

/* Writes the section counts into the header and returns the message length:
 * send buf[0 .. return value). The response may still grow afterwards (call
 * finish again). */
int tld_resp_finish(tld_resp *r);

#endif
