/* ctl.c - tldctl's replication commands: push a change to a primary, show every node's status. */
#include "ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "delta.h"
#include "repl.h"

#define PUSH_TIMEOUT_S   300 /* default wait for a push (a big zone takes a while) */
#define STATUS_TIMEOUT_S 10
#define FRESH_MS         5000 /* a replica that reported within this is "up" */

static int failf(const char *what, const char *why)
{
	fprintf(stderr, "tldctl: %s: %s\n", what, why);
	return 1;
}

static int timeout_ms(const tld_ctl_opts *o, uint8_t type)
{
	unsigned dflt = type == TLD_MSG_STATUS ? STATUS_TIMEOUT_S : PUSH_TIMEOUT_S;
	return (int)(o->timeout_s ? o->timeout_s : dflt) * 1000;
}

/* Loads the key file and connects; prints why on failure. */
static int connect_primary(const tld_ctl_opts *o, tld_keyring *kr, tld_client *cl)
{
	tld_errbuf eb = {{0}};
	if (o->control_url == NULL || o->key_file == NULL) {
		fprintf(stderr, "tldctl: --control URL and --key FILE are required\n");
		return 2;
	}
	if (tld_keyring_load(o->key_file, kr, &eb) < 0)
		return failf("key file", eb.msg);
	if (kr->world_readable)
		fprintf(stderr, "tldctl: warning: %s is readable by every user\n", o->key_file);
	if (tld_client_open(cl, o->control_url, kr, o->max_message, &eb) < 0) {
		tld_keyring_clear(kr);
		return failf("control", eb.msg);
	}
	return 0;
}

/* Undoes connect_primary(), checking that no nanomsg buffer was left held. */
static void disconnect_primary(tld_client *cl, tld_keyring *kr)
{
	tld_client_close(cl);
	tld_nn_check_released("tldctl");
	tld_keyring_clear(kr);
}

/* One request and its reply; prints why on failure (returns 1). */
static int call(tld_client *cl, const tld_ctl_opts *o, uint8_t type, const tld_wbuf *body,
                tld_reply *rep)
{
	tld_errbuf eb = {{0}};
	if (body->oom)
		return failf("request", "out of memory");
	int err = tld_client_call(cl, type, body->p, body->len, timeout_ms(o, type), rep, &eb);
	if (err == TLD_ETIMEDOUT)
		return failf(o->control_url,
		             "no reply in time (a push may or may not have been applied: see "
		             "tldctl status)");
	if (err < 0)
		return failf(o->control_url, eb.msg);
	return 0;
}

/* ---- push ---- */

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	while (buf != NULL) {
		n += fread(buf + n, 1, cap - n, f);
		if (n < cap || ferror(f))
			break;
		char *nb = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
		if (nb == NULL) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = nb;
		cap *= 2;
	}
	if (buf != NULL && ferror(f)) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = n;
	return buf;
}

static int origin_wire(const tld_ctl_opts *o, uint8_t *origin)
{
	if (o->origin != NULL && tld_name_from_text(o->origin, origin) < 0) {
		fprintf(stderr, "tldctl: %s: not a valid domain name\n", o->origin);
		return 2;
	}
	return 0;
}

static int zone_body(const tld_ctl_opts *o, tld_wbuf *b)
{
	uint8_t origin[TLD_NAME_MAX];
	int rc = origin_wire(o, origin);
	if (rc != 0)
		return rc;
	size_t len;
	char *text = read_file(o->zone_file, &len);
	if (text == NULL)
		return failf(o->zone_file, strerror(errno ? errno : ENOMEM));
	if (len > UINT32_MAX) {
		free(text);
		return failf(o->zone_file, "larger than 4 GiB");
	}
	tld_w_u8(b, o->create ? 1 : 0);
	tld_w_u8(b, o->origin != NULL);
	if (o->origin != NULL)
		tld_w_name(b, origin);
	tld_w_u32(b, (uint32_t)len);
	tld_w_bytes(b, text, len);
	free(text);
	return 0;
}

static int delta_body(const tld_ctl_opts *o, tld_wbuf *b)
{
	uint8_t origin[TLD_NAME_MAX];
	int rc = origin_wire(o, origin);
	if (rc != 0)
		return rc;
	tld_delta d = {0};
	tld_errbuf eb = {{0}};
	int err = tld_delta_read_file(o->delta_file, o->origin ? origin : NULL, &d, &eb);
	if (err < 0) {
		tld_delta_free(&d);
		fprintf(stderr, "tldctl: push refused, nothing sent: %s\n",
		        eb.msg[0] ? eb.msg : tld_strerror(err));
		return 1;
	}
	tld_w_u8(b, 0);
	tld_w_bytes(b, d.buf, d.len);
	tld_delta_free(&d);
	return 0;
}

int tld_ctl_push(const tld_ctl_opts *o)
{
	if ((o->zone_file == NULL) == (o->delta_file == NULL)) {
		fprintf(stderr, "tldctl: push takes either --zone-file FILE or --delta FILE\n");
		return 2;
	}
	tld_wbuf body = {0};
	int rc = o->zone_file ? zone_body(o, &body) : delta_body(o, &body);
	tld_keyring kr;
	tld_client cl;
	if (rc == 0)
		rc = connect_primary(o, &kr, &cl);
	if (rc != 0) {
		tld_wbuf_free(&body);
		return rc;
	}
	tld_reply rep;
	rc = call(&cl, o, o->zone_file ? TLD_MSG_PUSH_ZONE : TLD_MSG_PUSH_DELTA, &body, &rep);
	tld_wbuf_free(&body);
	if (rc == 0 && rep.status < 0) {
		fprintf(stderr, "tldctl: push refused, nothing changed: %s\n", rep.text);
		rc = 1;
	} else if (rc == 0) {
		tld_r_u32(&rep.rest), tld_r_u32(&rep.rest), tld_r_u32(&rep.rest);
		size_t n = tld_r_u16(&rep.rest);
		const uint8_t *text = tld_r_bytes(&rep.rest, n);
		printf("pushed %.*s\n", text ? (int)n : 0, text ? (const char *)text : "");
	}
	disconnect_primary(&cl, &kr);
	return rc;
}

/* ---- status ---- */

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* The serial the primary has for apex (0 and false when it has no such zone). */
static bool primary_serial(const tld_report *prim, const uint8_t *apex, uint32_t *serial)
{
	for (unsigned i = 0; i < prim->nzones; i++)
		if (tld_name_equal(prim->zones[i].apex, apex)) {
			*serial = prim->zones[i].serial;
			return true;
		}
	return false;
}

static bool zone_in_sync(const tld_report *prim, const tld_report *rep, const tld_report_zone *z,
                         uint64_t age_ms)
{
	uint32_t ps;
	if (rep == prim)
		return true;
	return rep->in_sync && age_ms < FRESH_MS && primary_serial(prim, z->apex, &ps) &&
	       ps == z->serial;
}

static void print_json_node(const tld_report *prim, const tld_report *rep, uint64_t age_ms,
                            bool first)
{
	printf("%s\n  {\"name\": ", first ? "" : ",");
	json_str(rep->name);
	printf(", \"role\": \"%s\", \"in_sync\": %s, \"age_ms\": %" PRIu64 ", \"counters\": {",
	       rep->role == TLD_ROLE_PRIMARY ? "primary" : "replica",
	       rep->in_sync ? "true" : "false", age_ms);
	for (unsigned i = 0; i < rep->ncounters && i < TLD_RC_COUNT; i++)
		printf("%s\"%s\": %" PRIu64, i ? ", " : "", tld_repl_counter_name((int)i),
		       rep->counters[i]);
	printf("}, \"zones\": [");
	for (unsigned i = 0; i < rep->nzones; i++) {
		const tld_report_zone *z = &rep->zones[i];
		char apex[TLD_NAME_TXTMAX];
		tld_name_to_text(z->apex, apex, sizeof(apex));
		printf("%s{\"zone\": ", i ? ", " : "");
		json_str(apex);
		printf(", \"serial\": %u, \"primary_serial\": %u, \"lag_ms\": %u, \"applied_ms\": "
		       "%" PRIu64 ", \"in_sync\": %s}",
		       z->serial, z->primary_serial, z->lag_ms, z->applied_ms,
		       zone_in_sync(prim, rep, z, age_ms) ? "true" : "false");
	}
	printf("]}");
}

static void print_row(const tld_report *prim, const tld_report *rep, uint64_t age_ms)
{
	for (unsigned i = 0; i < rep->nzones; i++) {
		const tld_report_zone *z = &rep->zones[i];
		char apex[TLD_NAME_TXTMAX];
		tld_name_to_text(z->apex, apex, sizeof(apex));
		printf("%-20s %-8s %-20s %10u %8u %9.1fs  %s\n", rep->name,
		       rep->role == TLD_ROLE_PRIMARY ? "primary" : "replica", apex, z->serial,
		       z->lag_ms, (double)age_ms / 1000.0,
		       zone_in_sync(prim, rep, z, age_ms) ? "yes" : "no");
	}
	if (rep->nzones == 0)
		printf("%-20s %-8s %-20s %10s %8s %9.1fs  %s\n", rep->name,
		       rep->role == TLD_ROLE_PRIMARY ? "primary" : "replica", "-", "-", "-",
		       (double)age_ms / 1000.0, rep->in_sync && age_ms < FRESH_MS ? "yes" : "no");
}

static int print_status(const tld_ctl_opts *o, tld_rbuf *rb)
{
	uint64_t now = tld_r_u64(rb);
	tld_report *prim = malloc(sizeof(*prim)), *rep = malloc(sizeof(*rep));
	if (prim == NULL || rep == NULL) {
		free(prim);
		free(rep);
		return failf("status", "out of memory");
	}
	tld_report_read(rb, prim);
	unsigned n = tld_r_u16(rb);
	if (o->json)
		printf("{\"now_ms\": %" PRIu64 ", \"nodes\": [", now);
	else
		printf("%-20s %-8s %-20s %10s %8s %10s  %s\n", "NODE", "ROLE", "ZONE", "SERIAL",
		       "LAG_MS", "LAST_SEEN", "IN_SYNC");
	o->json ? print_json_node(prim, prim, 0, true) : print_row(prim, prim, 0);
	for (unsigned i = 0; i < n && !rb->bad; i++) {
		uint64_t seen = tld_r_u64(rb);
		tld_report_read(rb, rep);
		uint64_t age = now > seen ? now - seen : 0;
		if (!rb->bad)
			o->json ? print_json_node(prim, rep, age, false)
			        : print_row(prim, rep, age);
	}
	if (o->json)
		printf("\n]}\n");
	free(prim);
	free(rep);
	return tld_r_done(rb) ? 0 : failf("status", "malformed reply");
}

int tld_ctl_status(const tld_ctl_opts *o)
{
	tld_keyring kr;
	tld_client cl;
	int rc = connect_primary(o, &kr, &cl);
	if (rc != 0)
		return rc;
	tld_wbuf body = {0};
	tld_reply rep;
	rc = call(&cl, o, TLD_MSG_STATUS, &body, &rep);
	if (rc == 0 && rep.status < 0)
		rc = failf("status", rep.text);
	else if (rc == 0)
		rc = print_status(o, &rep.rest);
	disconnect_primary(&cl, &kr);
	return rc;
}
