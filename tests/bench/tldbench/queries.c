/* queries.c - tldbench's query list: precomputed messages from a dnsperf data file, or a mix
 * derived from a zone file. Built once before the run; the workers only patch the id. */
#include "tldbench.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "dns/name.h"
#include "dns/rrtype.h"
#include "dns/wire.h"

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap : 1024;
	while (c < need)
		c *= 2;
	void *n = realloc(*p, c * elem);
	if (!n)
		return -1;
	*p = n;
	*cap = c;
	return 0;
}

/* Appends one query message for (qname, qtype) with id 0 and RD set (as dnsperf does). */
static int add_query(tb_queries *qs, const tb_config *cfg, const uint8_t *qname, uint16_t qtype,
                     bool do_bit)
{
	size_t nl = tld_name_len(qname);
	size_t len = TLD_HDR_LEN + nl + 4 + (cfg->edns ? TLD_OPT_LEN + (cfg->nsid ? 4 : 0) : 0);
	size_t ncap = qs->ncap;
	if (grow((void **)&qs->data, &qs->cap, qs->len + len, 1) != 0 ||
	    grow((void **)&qs->off, &ncap, qs->n + 1, sizeof(uint32_t)) != 0 ||
	    grow((void **)&qs->plen, &qs->ncap, qs->n + 1, sizeof(uint16_t)) != 0)
		return -1;
	if (qs->len + len > UINT32_MAX)
		return -1;
	uint8_t *p = qs->data + qs->len;
	memset(p, 0, TLD_HDR_LEN);
	p[2] = 0x01; /* RD */
	p[5] = 1;    /* QDCOUNT */
	p[11] = cfg->edns ? 1 : 0;
	memcpy(p + TLD_HDR_LEN, qname, nl);
	uint8_t *q = p + TLD_HDR_LEN + nl;
	*q++ = (uint8_t)(qtype >> 8);
	*q++ = (uint8_t)qtype;
	*q++ = 0;
	*q++ = TLD_C_IN;
	if (cfg->edns) {
		*q++ = 0; /* root owner */
		*q++ = 0;
		*q++ = TLD_T_OPT;
		*q++ = (uint8_t)(cfg->edns_size >> 8);
		*q++ = (uint8_t)cfg->edns_size;
		*q++ = 0; /* extended rcode */
		*q++ = 0; /* version */
		*q++ = do_bit ? 0x80 : 0;
		*q++ = 0;
		*q++ = 0;
		*q++ = cfg->nsid ? 4 : 0;
		if (cfg->nsid) {
			*q++ = 0;
			*q++ = TLD_EDNS_NSID;
			*q++ = 0;
			*q++ = 0;
		}
	}
	qs->off[qs->n] = (uint32_t)qs->len;
	qs->plen[qs->n] = (uint16_t)len;
	qs->n++;
	qs->len += len;
	if (do_bit && cfg->edns)
		qs->n_do++;
	return 0;
}

static char *trim_token(char **s)
{
	char *p = *s;
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	if (!*p)
		return NULL;
	char *t = p;
	while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
		p++;
	if (*p)
		*p++ = 0;
	*s = p;
	return t;
}

int tb_queries_from_file(tb_queries *qs, const tb_config *cfg, char *err, size_t errlen)
{
	const char *path = cfg->datafile && strcmp(cfg->datafile, "-") != 0 ? cfg->datafile : NULL;
	FILE *f = path ? fopen(path, "r") : stdin;
	if (!f) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	const char *shown = path ? path : "(stdin)";
	char *line = NULL;
	size_t cap = 0;
	unsigned long lineno = 0;
	int rc = 0;
	while (getline(&line, &cap, f) >= 0) {
		lineno++;
		char *s = line;
		char *name = trim_token(&s);
		if (!name || name[0] == ';' || name[0] == '#')
			continue;
		char *type = trim_token(&s);
		uint8_t wire[TLD_NAME_MAX];
		int t = type ? tld_rrtype_from_text(type) : TLD_EINVAL;
		if (t < 0) {
			snprintf(err, errlen, "%s:%lu: expected \"name TYPE\"", shown, lineno);
			rc = -1;
			break;
		}
		if (tld_name_from_text(name, wire) < 0) {
			snprintf(err, errlen, "%s:%lu: bad name: %.300s", shown, lineno, name);
			rc = -1;
			break;
		}
		if (add_query(qs, cfg, wire, (uint16_t)t, cfg->do_bit) != 0) {
			snprintf(err, errlen, "out of memory reading %s", shown);
			rc = -1;
			break;
		}
	}
	if (rc == 0 && ferror(f)) {
		snprintf(err, errlen, "cannot read %s: %s", shown, strerror(errno));
		rc = -1;
	}
	if (rc == 0 && qs->n == 0) {
		snprintf(err, errlen, "%s holds no queries", shown);
		rc = -1;
	}
	free(line);
	if (path)
		fclose(f);
	if (rc == 0)
		snprintf(qs->desc, sizeof(qs->desc), "%zu queries from %.400s", qs->n, shown);
	return rc;
}

/* ---- a query mix from a zone file ---- */

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64* */
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

typedef struct name_list {
	uint8_t *data;
	size_t len, cap;
	uint32_t *off;
	size_t n, ncap;
} name_list;

static int name_list_add(name_list *l, const uint8_t *name)
{
	size_t nl = tld_name_len(name);
	if (grow((void **)&l->data, &l->cap, l->len + nl, 1) != 0 ||
	    grow((void **)&l->off, &l->ncap, l->n + 1, sizeof(uint32_t)) != 0 ||
	    l->len + nl > UINT32_MAX)
		return -1;
	memcpy(l->data + l->len, name, nl);
	l->off[l->n++] = (uint32_t)l->len;
	l->len += nl;
	return 0;
}

static bool is_ttl(const char *t)
{
	if (!isdigit((unsigned char)t[0]))
		return false;
	for (; *t; t++)
		if (!isdigit((unsigned char)*t) && !strchr("smhdwSMHDW", *t))
			return false;
	return true;
}

static bool is_class(const char *t)
{
	return strcasecmp(t, "IN") == 0 || strcasecmp(t, "CH") == 0 || strcasecmp(t, "HS") == 0 ||
	       strcasecmp(t, "CS") == 0 ||
	       (strncasecmp(t, "CLASS", 5) == 0 && isdigit((unsigned char)t[5]));
}

/* Makes an absolute wire name of a zone-file owner, relative to origin (wire). */
static int owner_to_wire(const char *text, const uint8_t *origin, uint8_t *out)
{
	size_t tl = strlen(text);
	if (strcmp(text, "@") == 0) {
		memcpy(out, origin, tld_name_len(origin));
		return 0;
	}
	if (tl > 0 && text[tl - 1] == '.' && (tl < 2 || text[tl - 2] != '\\'))
		return tld_name_from_text(text, out) < 0 ? -1 : 0;
	uint8_t rel[TLD_NAME_MAX];
	int rl = tld_name_from_text(text, rel);
	if (rl < 0)
		return -1;
	size_t ol = tld_name_len(origin);
	if ((size_t)rl - 1 + ol > TLD_NAME_MAX)
		return -1;
	memcpy(out, rel, (size_t)rl - 1);
	memcpy(out + rl - 1, origin, ol);
	return 0;
}

int tb_queries_from_zone(tb_queries *qs, const tb_config *cfg, char *err, size_t errlen)
{
	FILE *f = fopen(cfg->zonefile, "r");
	if (!f) {
		snprintf(err, errlen, "cannot open %s: %s", cfg->zonefile, strerror(errno));
		return -1;
	}
	uint8_t apex[TLD_NAME_MAX] = {0}, cur_origin[TLD_NAME_MAX] = {0};
	bool have_apex = false;
	if (cfg->origin) {
		if (tld_name_from_text(cfg->origin, apex) < 0) {
			fclose(f);
			snprintf(err, errlen, "bad --origin: %s", cfg->origin);
			return -1;
		}
		have_apex = true;
		memcpy(cur_origin, apex, tld_name_len(apex));
	}
	name_list deleg = {0};
	uint64_t n_ds = 0, n_lines = 0;
	uint8_t owner[TLD_NAME_MAX] = {0}, last_deleg[TLD_NAME_MAX] = {0};
	bool have_owner = false;
	int depth = 0, rc = 0;
	char *line = NULL;
	size_t cap = 0;
	unsigned long lineno = 0;
	while (getline(&line, &cap, f) >= 0) {
		lineno++;
		/* Cut the comment (outside quotes) and track parentheses. */
		bool quoted = false, opened = false;
		int depth0 = depth;
		for (char *p = line; *p; p++) {
			if (*p == '\\' && p[1]) {
				p++;
				continue;
			}
			if (*p == '"')
				quoted = !quoted;
			else if (!quoted && *p == ';') {
				*p = 0;
				break;
			} else if (!quoted && *p == '(') {
				depth++;
				opened = true;
			} else if (!quoted && *p == ')' && depth > 0)
				depth--;
		}
		(void)opened;
		if (depth0 > 0)
			continue; /* continuation of a multi-line record */
		bool indented = line[0] == ' ' || line[0] == '\t';
		char *s = line;
		char *tok = trim_token(&s);
		if (!tok)
			continue;
		if (tok[0] == '$') {
			if (strcasecmp(tok, "$ORIGIN") == 0) {
				char *o = trim_token(&s);
				uint8_t w[TLD_NAME_MAX];
				if (o && owner_to_wire(o, cur_origin, w) == 0)
					memcpy(cur_origin, w, tld_name_len(w));
			}
			continue;
		}
		if (!indented) {
			if (owner_to_wire(tok, cur_origin, owner) != 0) {
				snprintf(err, errlen, "%s:%lu: bad owner name: %.200s",
				         cfg->zonefile, lineno, tok);
				rc = -1;
				break;
			}
			have_owner = true;
			tok = trim_token(&s);
		}
		if (!have_owner)
			continue;
		while (tok && (is_ttl(tok) || is_class(tok)))
			tok = trim_token(&s);
		if (!tok)
			continue;
		int type = tld_rrtype_from_text(tok);
		if (type < 0)
			continue;
		n_lines++;
		if (type == TLD_T_SOA && !have_apex) {
			memcpy(apex, owner, tld_name_len(owner));
			have_apex = true;
		}
		if (type == TLD_T_DS)
			n_ds++;
		if (type == TLD_T_NS && have_apex && !tld_name_equal(owner, apex) &&
		    tld_name_is_below(owner, apex) &&
		    !(deleg.n > 0 && tld_name_equal(owner, last_deleg))) {
			if (name_list_add(&deleg, owner) != 0) {
				snprintf(err, errlen, "out of memory reading %s", cfg->zonefile);
				rc = -1;
				break;
			}
			memcpy(last_deleg, owner, tld_name_len(owner));
		}
	}
	if (rc == 0 && ferror(f)) {
		snprintf(err, errlen, "cannot read %s: %s", cfg->zonefile, strerror(errno));
		rc = -1;
	}
	fclose(f);
	free(line);
	if (rc == 0 && !have_apex) {
		snprintf(err, errlen, "%s: no SOA found (give --origin)", cfg->zonefile);
		rc = -1;
	}
	if (rc != 0) {
		free(deleg.data);
		free(deleg.off);
		return -1;
	}

	/* Generate the mix. */
	unsigned mix[TB_MIX_N];
	memcpy(mix, cfg->mix, sizeof(mix));
	if (deleg.n == 0) { /* no delegations: referrals and DS become NXDOMAIN */
		mix[TB_MIX_NXDOMAIN] += mix[TB_MIX_REFERRAL] + mix[TB_MIX_DS];
		mix[TB_MIX_REFERRAL] = mix[TB_MIX_DS] = 0;
	}
	unsigned total = 0;
	for (int i = 0; i < TB_MIX_N; i++)
		total += mix[i];
	uint64_t seed = cfg->seed ? cfg->seed : 0x9E3779B97F4A7C15ull;
	size_t apexlen = tld_name_len(apex);
	static const uint16_t apex_types[] = {TLD_T_SOA, TLD_T_NS, TLD_T_DNSKEY};
	static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	for (unsigned long i = 0; i < cfg->nqueries && rc == 0; i++) {
		unsigned r = (unsigned)(rng_next(&seed) % total), kind = 0;
		while (r >= mix[kind]) {
			r -= mix[kind];
			kind++;
		}
		uint8_t qname[TLD_NAME_MAX];
		uint16_t qtype = TLD_T_A;
		const uint8_t *d =
		    deleg.n ? deleg.data + deleg.off[rng_next(&seed) % deleg.n] : NULL;
		switch (kind) {
		case TB_MIX_REFERRAL:
			if (tld_name_len(d) + 4 <= TLD_NAME_MAX) {
				memcpy(qname, "\3www", 4);
				memcpy(qname + 4, d, tld_name_len(d));
			} else
				memcpy(qname, d, tld_name_len(d));
			break;
		case TB_MIX_NXDOMAIN:
			if (apexlen + 13 <= TLD_NAME_MAX) {
				qname[0] = 12;
				for (int k = 0; k < 12; k++)
					qname[1 + k] = (uint8_t)alnum[rng_next(&seed) % 36];
				memcpy(qname + 13, apex, apexlen);
			} else
				memcpy(qname, apex, apexlen);
			break;
		case TB_MIX_DS:
			memcpy(qname, d, tld_name_len(d));
			qtype = TLD_T_DS;
			break;
		default:
			memcpy(qname, apex, apexlen);
			qtype = apex_types[rng_next(&seed) % 3];
			break;
		}
		bool do_bit =
		    cfg->do_bit || (double)(rng_next(&seed) >> 11) * 0x1.0p-53 < cfg->do_share;
		if (add_query(qs, cfg, qname, qtype, do_bit) != 0) {
			snprintf(err, errlen, "out of memory generating queries");
			rc = -1;
		}
		qs->mix_count[kind]++;
	}
	if (rc == 0 && qs->n == 0) {
		snprintf(err, errlen, "no queries generated (--nqueries 0?)");
		rc = -1;
	}
	char apex_text[TLD_NAME_TXTMAX];
	tld_name_to_text(apex, apex_text, sizeof(apex_text));
	if (rc == 0)
		snprintf(qs->desc, sizeof(qs->desc),
		         "%zu queries from zone %.255s (%.100s: %zu delegations, %llu DS): %llu "
		         "referral, "
		         "%llu NXDOMAIN, %llu DS, %llu apex; %llu with DO",
		         qs->n, apex_text, cfg->zonefile, deleg.n, (unsigned long long)n_ds,
		         (unsigned long long)qs->mix_count[TB_MIX_REFERRAL],
		         (unsigned long long)qs->mix_count[TB_MIX_NXDOMAIN],
		         (unsigned long long)qs->mix_count[TB_MIX_DS],
		         (unsigned long long)qs->mix_count[TB_MIX_APEX],
		         (unsigned long long)qs->n_do);
	(void)n_lines;
	free(deleg.data);
	free(deleg.off);
	return rc;
}

int tb_queries_group(tb_queries *qs)
{
	/* Lengths are at most 12 + 255 + 4 + 15 bytes: one pending list per length. */
	enum { MAXLEN = 512 };
	uint32_t(*pend)[TB_BATCH] = malloc(sizeof(uint32_t[MAXLEN][TB_BATCH]));
	uint8_t *npend = calloc(MAXLEN, 1);
	uint32_t *noff = malloc(qs->n * sizeof(uint32_t));
	uint16_t *nplen = malloc(qs->n * sizeof(uint16_t));
	uint8_t *run = malloc(qs->n);
	if (!pend || !npend || !noff || !nplen || !run) {
		free(pend);
		free(npend);
		free(noff);
		free(nplen);
		free(run);
		return -1;
	}
	size_t o = 0;
	for (size_t i = 0; i <= qs->n; i++) {
		unsigned flush_from = MAXLEN, flush_to = MAXLEN;
		if (i < qs->n) {
			unsigned l = qs->plen[i] < MAXLEN ? qs->plen[i] : MAXLEN - 1;
			pend[l][npend[l]++] = (uint32_t)i;
			if (npend[l] == TB_BATCH) {
				flush_from = l;
				flush_to = l + 1;
			}
		} else {
			flush_from = 0; /* the end: every partial run */
		}
		for (unsigned l = flush_from; l < flush_to; l++) {
			for (unsigned j = 0; j < npend[l]; j++) {
				noff[o] = qs->off[pend[l][j]];
				nplen[o] = qs->plen[pend[l][j]];
				run[o] = (uint8_t)(npend[l] - j);
				o++;
			}
			npend[l] = 0;
		}
	}
	free(pend);
	free(npend);
	free(qs->off);
	free(qs->plen);
	free(qs->run);
	qs->off = noff;
	qs->plen = nplen;
	qs->run = run;
	qs->ncap = qs->n;
	return 0;
}

void tb_queries_free(tb_queries *qs)
{
	free(qs->run);
	free(qs->data);
	free(qs->off);
	free(qs->plen);
	memset(qs, 0, sizeof(*qs));
}
