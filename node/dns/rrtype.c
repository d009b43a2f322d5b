/* rrtype.c - RR type mnemonics (RFC 1035, 3597 and the IANA registry). */
#include "rrtype.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/err.h"

static const struct {
	uint16_t type;
	const char *name;
} types[] = {
    {TLD_T_A, "A"},         {TLD_T_NS, "NS"},           {TLD_T_CNAME, "CNAME"},
    {TLD_T_SOA, "SOA"},     {TLD_T_PTR, "PTR"},         {TLD_T_HINFO, "HINFO"},
    {TLD_T_MX, "MX"},       {TLD_T_TXT, "TXT"},         {TLD_T_RP, "RP"},
    {TLD_T_AFSDB, "AFSDB"}, {TLD_T_SIG, "SIG"},         {TLD_T_KEY, "KEY"},
    {TLD_T_AAAA, "AAAA"},   {TLD_T_LOC, "LOC"},         {TLD_T_SRV, "SRV"},
    {TLD_T_NAPTR, "NAPTR"}, {TLD_T_KX, "KX"},           {TLD_T_CERT, "CERT"},
    {TLD_T_DNAME, "DNAME"}, {TLD_T_OPT, "OPT"},         {TLD_T_APL, "APL"},
    {TLD_T_DS, "DS"},       {TLD_T_SSHFP, "SSHFP"},     {TLD_T_IPSECKEY, "IPSECKEY"},
    {TLD_T_RRSIG, "RRSIG"}, {TLD_T_NSEC, "NSEC"},       {TLD_T_DNSKEY, "DNSKEY"},
    {TLD_T_DHCID, "DHCID"}, {TLD_T_NSEC3, "NSEC3"},     {TLD_T_NSEC3PARAM, "NSEC3PARAM"},
    {TLD_T_TLSA, "TLSA"},   {TLD_T_SMIMEA, "SMIMEA"},   {TLD_T_HIP, "HIP"},
    {TLD_T_CDS, "CDS"},     {TLD_T_CDNSKEY, "CDNSKEY"}, {TLD_T_OPENPGPKEY, "OPENPGPKEY"},
    {TLD_T_CSYNC, "CSYNC"}, {TLD_T_ZONEMD, "ZONEMD"},   {TLD_T_SVCB, "SVCB"},
    {TLD_T_HTTPS, "HTTPS"}, {TLD_T_SPF, "SPF"},         {TLD_T_NID, "NID"},
    {TLD_T_L32, "L32"},     {TLD_T_L64, "L64"},         {TLD_T_LP, "LP"},
    {TLD_T_EUI48, "EUI48"}, {TLD_T_EUI64, "EUI64"},     {TLD_T_TKEY, "TKEY"},
    {TLD_T_TSIG, "TSIG"},   {TLD_T_IXFR, "IXFR"},       {TLD_T_AXFR, "AXFR"},
    {TLD_T_ANY, "ANY"},     {TLD_T_URI, "URI"},         {TLD_T_CAA, "CAA"},
};

int tld_rrtype_to_text(uint16_t type, char *buf, size_t len)
{
	int n = -1;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (types[i].type == type) {
			n = snprintf(buf, len, "%s", types[i].name);
			break;
		}
	if (n < 0)
		n = snprintf(buf, len, "TYPE%u", type);
	return (n < 0 || (size_t)n >= len) ? TLD_ESPACE : n;
}

int tld_rrtype_from_text(const char *text)
{
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcasecmp(types[i].name, text) == 0)
			return types[i].type;
	if (strncasecmp(text, "TYPE", 4) == 0 && text[4] >= '0' && text[4] <= '9') {
		char *end;
		unsigned long v = strtoul(text + 4, &end, 10);
		if (*end == 0 && v <= 65535)
			return (int)v;
	}
	return TLD_EINVAL;
}

bool tld_rrtype_is_data(uint16_t t)
{
	return t != 0 && t != TLD_T_OPT && (t < 128 || t > 255);
}
