/* router.c: Kong's traditional_compatible router, compiled into an immutable index.
 *
 * Layout of a built router:
 *   - routes: private copies of the definitions (lower-cased hosts and header values,
 *     compiled regexes);
 *   - entries: one per (route, path) (or one per route without paths), sorted by Kong's
 *     priority (router.h); an entry's index in that order is its rank, lower is better;
 *   - buckets: one for routes without hosts, one per distinct host key (exact host, `*.suffix`,
 *     `prefix.*`); each holds its entries split into "no path", "regex path" (ranked) and
 *     prefix paths (a sorted array with, for each prefix, the longest other prefix of it:
 *     every prefix of a request path is found by one binary search and a walk up that chain).
 * A lookup visits the hostless bucket and the buckets of the request's host (one hash probe
 * for the exact host and one per dot for each wildcard kind), scans each candidate list in rank
 * order and stops a list at the first full match or once its ranks cannot beat the best. */
#include "router.h"
#include "uri.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define RX_MATCH_LIMIT 100000
#define RX_DEPTH_LIMIT 10000
#define OVEC_PAIRS 64
#define CACHE_KEY_MAX 480

/* ---------------------------------------------------------------------------------------- */
/* arena */

typedef struct chunk_s {
    struct chunk_s *next;
    size_t used, cap;
    max_align_t data[];
} chunk_t;

typedef struct {
    chunk_t *head;
} arena_t;

static void *arena_alloc(arena_t *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!a->head || a->head->cap - a->head->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        chunk_t *c = malloc(sizeof(*c) + cap);
        if (!c)
            return NULL;
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
    }
    void *p = (char *)a->head->data + a->head->used;
    a->head->used += n;
    return p;
}

static void *arena_calloc(arena_t *a, size_t n)
{
    void *p = arena_alloc(a, n ? n : 1);
    if (p)
        memset(p, 0, n);
    return p;
}

static char *arena_strdup_lower(arena_t *a, const char *s, size_t n, bool lower)
{
    char *p = arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        p[i] = (char)(lower && c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    p[n] = '\0';
    return p;
}

static void arena_free(arena_t *a)
{
    while (a->head) {
        chunk_t *n = a->head->next;
        free(a->head);
        a->head = n;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* types */

enum { HK_EXACT = 0, HK_SUFFIX = 1, HK_PREFIX = 2 };

typedef struct {
    pcre2_code *code;
    uint32_t ngroups;
    const char **names; /* ngroups + 1, NULL where unnamed */
} rx_t;

typedef struct {
    const char *name; /* lower-cased: "a.com", ".a.com" (for *.a.com), "a." (for a.*) */
    uint32_t len;
    uint8_t kind;
    int32_t port; /* -1: any */
    const char *orig;
    uint32_t orig_len;
} rhost_t;

typedef struct {
    const char *s; /* as configured, '~' included for regexes */
    uint32_t len;
    bool regex;
    uint32_t lit; /* regexes: length of the literal text every match starts with (after '~') */
    rx_t rx;
} rpath_t;

typedef struct {
    const char *s; /* lower-cased (exact values) */
    uint32_t len;
    rx_t *rx; /* `~*` values */
} hval_t;

typedef struct {
    const char *name; /* lower-cased */
    uint32_t len;
    hval_t *vals;
    uint32_t nvals;
} rhdr_t;

typedef struct {
    void *data;
    uint32_t index;
    unsigned protocols;
    rhost_t *hosts;
    uint32_t nhosts;
    rpath_t *paths;
    uint32_t npaths;
    tg_str_t *methods;
    uint32_t nmethods;
    rhost_t *snis;
    uint32_t nsnis;
    rhdr_t *hdrs;
    uint32_t nhdrs;
} route_t;

typedef struct {
    route_t *route;
    int32_t path; /* index in route->paths, -1 for none */
    uint8_t weight, plain, regex;
    uint16_t hcount;
    int32_t regex_priority;
    uint32_t length;
    int64_t created_at;
    uint32_t position;
} entry_t;

typedef struct {
    const char *s;
    uint32_t len;
    int32_t parent; /* longest other prefix in the set that is a prefix of this one, or -1 */
    const uint32_t *ranks; /* the entries having this prefix, best first */
    uint32_t n;
} pfx_t;

typedef struct {
    pfx_t *pfx;
    uint32_t npfx;
    uint32_t *regex, nregex;
    uint32_t *nopath, nnopath;
} bucket_t;

typedef struct {
    const char *key;
    uint32_t len;
    uint8_t kind;
    uint8_t used;
    uint32_t val;
} hslot_t;

typedef struct {
    hslot_t *slots;
    size_t cap, count;
} hmap_t;

struct tg_router_s {
    uint64_t id;
    arena_t arena;
    route_t *routes;
    size_t nroutes;
    entry_t *entries;
    size_t nentries;
    bucket_t *buckets;
    size_t nbuckets;
    hmap_t hosts;   /* (kind, name) -> bucket */
    hmap_t hnames;  /* header names some route uses (for the cache key) */
    bool has_suffix, has_prefix;
    pcre2_match_context *mctx;
};

static atomic_uint_fast64_t g_router_ids = 1;

/* ---------------------------------------------------------------------------------------- */
/* hash map */

static uint64_t hash_bytes(uint8_t kind, const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL ^ kind;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static int hmap_init(hmap_t *m, size_t expect)
{
    size_t cap = 16;
    while (cap < expect * 2 + 2)
        cap <<= 1;
    m->slots = calloc(cap, sizeof(*m->slots));
    m->cap = cap;
    m->count = 0;
    return m->slots ? 0 : TG_ENOMEM;
}

static hslot_t *hmap_find(const hmap_t *m, uint8_t kind, const char *s, size_t n)
{
    if (!m->cap)
        return NULL;
    size_t i = hash_bytes(kind, s, n) & (m->cap - 1);
    for (;;) {
        hslot_t *e = &m->slots[i];
        if (!e->used)
            return NULL;
        if (e->kind == kind && e->len == n && memcmp(e->key, s, n) == 0)
            return e;
        i = (i + 1) & (m->cap - 1);
    }
}

/* Inserts (the key must outlive the map) unless present; returns the slot. */
static hslot_t *hmap_put(hmap_t *m, uint8_t kind, const char *s, size_t n, uint32_t val,
                         bool *added)
{
    size_t i = hash_bytes(kind, s, n) & (m->cap - 1);
    for (;;) {
        hslot_t *e = &m->slots[i];
        if (!e->used) {
            e->used = 1;
            e->kind = kind;
            e->key = s;
            e->len = (uint32_t)n;
            e->val = val;
            m->count++;
            *added = true;
            return e;
        }
        if (e->kind == kind && e->len == n && memcmp(e->key, s, n) == 0) {
            *added = false;
            return e;
        }
        i = (i + 1) & (m->cap - 1);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* validation (Kong's messages: kong/db/schema/typedefs.lua, entities/routes.lua) */

static void rx_free(rx_t *rx)
{
    if (rx->code)
        pcre2_code_free(rx->code);
    rx->code = NULL;
}

/* Compiles; on error writes nginx's text ("pcre2_compile() failed: ... in \"...\"") when
 * nginx_style, else "<message> at offset N". */
static int rx_compile(const char *pat, size_t len, uint32_t opts, rx_t *rx, arena_t *a,
                      bool nginx_style, char *err, size_t errlen)
{
    int ec;
    PCRE2_SIZE off;
    memset(rx, 0, sizeof(*rx));
    rx->code = pcre2_compile((PCRE2_SPTR)pat, len, opts, &ec, &off, NULL);
    if (!rx->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof(msg));
        if (!nginx_style)
            snprintf(err, errlen, "%s at offset %zu", (char *)msg, (size_t)off);
        else if (off >= len)
            snprintf(err, errlen, "pcre2_compile() failed: %s in \"%.*s\"", (char *)msg,
                     (int)len, pat);
        else
            snprintf(err, errlen, "pcre2_compile() failed: %s in \"%.*s\" at \"%.*s\"",
                     (char *)msg, (int)len, pat, (int)(len - off), pat + off);
        return TG_EINVAL;
    }
    if (!a)
        return 0;
    pcre2_jit_compile(rx->code, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    pcre2_pattern_info(rx->code, PCRE2_INFO_CAPTURECOUNT, &rx->ngroups);
    rx->names = arena_calloc(a, sizeof(*rx->names) * (rx->ngroups + 1));
    if (!rx->names)
        return TG_ENOMEM;
    uint32_t count = 0, esize = 0;
    PCRE2_SPTR table = NULL;
    pcre2_pattern_info(rx->code, PCRE2_INFO_NAMECOUNT, &count);
    pcre2_pattern_info(rx->code, PCRE2_INFO_NAMEENTRYSIZE, &esize);
    pcre2_pattern_info(rx->code, PCRE2_INFO_NAMETABLE, &table);
    for (uint32_t i = 0; i < count; i++) {
        const unsigned char *e = table + (size_t)i * esize;
        uint32_t g = (uint32_t)e[0] << 8 | e[1];
        if (g <= rx->ngroups)
            rx->names[g] = arena_strdup_lower(a, (const char *)e + 2, strlen((char *)e + 2),
                                              false);
    }
    return 0;
}

int tg_router_regex_error(const char *pattern, size_t len, char *err, size_t errlen)
{
    rx_t rx;
    int rc = rx_compile(pattern, len, PCRE2_ANCHORED, &rx, NULL, false, err, errlen);
    rx_free(&rx);
    return rc;
}

static bool is_digits_dots(const char *s)
{
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || *s == '.'))
            return false;
    return true;
}

/* kong.tools.ip normalize_ip on a host whose wildcard was replaced by "abc". */
static int check_host_name(const char *h, const char *shown, char *err, size_t errlen)
{
    size_t n = strlen(h), colons = 0;
    for (size_t i = 0; i < n; i++)
        colons += h[i] == ':';
    if (colons > 1)
        return 0; /* an IPv6 literal: left to the schema */
    char name[512];
    if (n >= sizeof(name))
        goto bad;
    memcpy(name, h, n + 1);
    char *colon = strrchr(name, ':');
    if (colon) {
        const char *p = colon + 1;
        bool digits = *p != 0;
        for (const char *q = p; *q; q++)
            digits = digits && *q >= '0' && *q <= '9';
        if (digits) {
            if (strlen(p) > 5 || atoi(p) > 65535) {
                snprintf(err, errlen, "invalid port number");
                return TG_EINVAL;
            }
            *colon = 0;
        }
    }
    if (is_digits_dots(name) && !colon) {
        int parts = 0;
        for (char *s = name; *s;) {
            char *e;
            long v = strtol(s, &e, 10);
            if (e == s || v > 255)
                goto bad4;
            parts++;
            s = *e == '.' ? e + 1 : e;
            if (*e && *e != '.')
                goto bad4;
        }
        if (parts != 4)
            goto bad4;
        return 0;
    bad4:
        snprintf(err, errlen, "invalid ipv4 address: %s", shown);
        return TG_EINVAL;
    }
    if (!*name)
        goto bad;
    for (const char *s = name; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_'))
            goto bad;
    }
    /* no label may end with '-'; empty labels only as the last (FQDN dot) */
    for (const char *s = name;;) {
        const char *e = strchr(s, '.');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        if (l > 0 && s[l - 1] == '-')
            goto bad;
        if (l == 0 && e)
            goto bad;
        if (!e)
            break;
        s = e + 1;
    }
    return 0;
bad:
    snprintf(err, errlen, "invalid hostname: %s", shown);
    return TG_EINVAL;
}

static int check_host(const char *h, char *err, size_t errlen)
{
    size_t n = strlen(h), stars = 0;
    for (size_t i = 0; i < n; i++)
        stars += h[i] == '*';
    if (stars > 1) {
        snprintf(err, errlen, "invalid wildcard: must have at most one wildcard");
        return TG_EINVAL;
    }
    if (stars == 1 && !(n >= 2 && h[0] == '*' && h[1] == '.') &&
        !(n >= 2 && h[n - 1] == '*' && h[n - 2] == '.')) {
        snprintf(err, errlen, "invalid wildcard: must be placed at leftmost or rightmost label");
        return TG_EINVAL;
    }
    char sub[520];
    if (n + 3 >= sizeof(sub)) {
        snprintf(err, errlen, "invalid hostname: %s", h);
        return TG_EINVAL;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (h[i] == '*') {
            memcpy(sub + o, "abc", 3);
            o += 3;
        } else {
            sub[o++] = h[i];
        }
    }
    sub[o] = 0;
    return check_host_name(sub, sub, err, errlen);
}

static bool path_charset_ok(const char *p)
{
    if (*p != '/')
        return false;
    for (const unsigned char *s = (const unsigned char *)p; *s; s++) {
        unsigned char c = *s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            continue;
        if (!strchr(".-_~/%:@!$&'()*+,;=", c))
            return false;
    }
    return true;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

static int check_path(const char *p, char *err, size_t errlen)
{
    size_t n = strlen(p);
    if (strstr(p, "//")) {
        snprintf(err, errlen, "must not have empty segments");
        return TG_EINVAL;
    }
    if (!(p[0] == '/' || (p[0] == '~' && p[1] == '/'))) {
        snprintf(err, errlen, "should start with: / (fixed path) or ~/ (regex path)");
        return TG_EINVAL;
    }
    if (path_charset_ok(p)) {
        for (size_t i = 0; i < n; i++) {
            if (p[i] != '%')
                continue;
            if (i + 2 < n + 0 && is_hex(p[i + 1]) && is_hex(p[i + 2])) {
                i += 2;
                continue;
            }
            size_t k = n - i < 3 ? n - i : 3;
            snprintf(err, errlen, "invalid url-encoded value: '%.*s'", (int)k, p + i);
            return TG_EINVAL;
        }
    }
    if (p[0] == '/') {
        char norm[1024];
        if (!tg_uri_is_normalized(p, n, norm, sizeof(norm))) {
            snprintf(err, errlen, "non-normalized path, consider use '%s' instead", norm);
            return TG_EINVAL;
        }
        return 0;
    }
    char msg[512];
    rx_t rx;
    int rc = rx_compile(p + 1, n - 1, PCRE2_ANCHORED, &rx, NULL, true, msg, sizeof(msg));
    rx_free(&rx);
    if (rc) {
        snprintf(err, errlen, "invalid regex: '%s' (PCRE returned: %s)", p + 1, msg);
        return TG_EINVAL;
    }
    return 0;
}

static int check_header_name(const char *h, char *err, size_t errlen)
{
    if (tg_str_ieq(h, strlen(h), "host", 4)) {
        snprintf(err, errlen,
                 "cannot contain 'host' header, which must be specified in the 'hosts' attribute");
        return TG_EINVAL;
    }
    bool ok = *h != 0;
    for (const char *s = h; *s; s++) {
        char c = *s;
        ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_');
    }
    if (!ok) {
        snprintf(err, errlen, "bad header name '%s', allowed characters are A-Z, a-z, 0-9, '_', and '-'",
                 h);
        return TG_EINVAL;
    }
    return 0;
}

/* Validates one route; *field names the offending field ("paths", "hosts", ...). */
static int check_route(const tg_route_def_t *d, const char **field, char *err, size_t errlen)
{
    unsigned protos = d->protocols ? d->protocols : (TG_PROTO_HTTP | TG_PROTO_HTTPS);
    *field = "snis";
    if (d->nsnis && !(protos & (TG_PROTO_HTTPS | TG_PROTO_GRPCS))) {
        snprintf(err, errlen, "'snis' can only be set when 'protocols' is 'grpcs', 'https', "
                              "'tls' or 'tls_passthrough'");
        return TG_EINVAL;
    }
    for (size_t i = 0; i < d->nsnis; i++)
        if (!d->snis[i] || check_host(d->snis[i], err, errlen))
            return TG_EINVAL;
    *field = "hosts";
    for (size_t i = 0; i < d->nhosts; i++)
        if (!d->hosts[i] || check_host(d->hosts[i], err, errlen))
            return TG_EINVAL;
    *field = "paths";
    for (size_t i = 0; i < d->npaths; i++)
        if (!d->paths[i] || check_path(d->paths[i], err, errlen))
            return TG_EINVAL;
    *field = "headers";
    for (size_t i = 0; i < d->nheaders; i++) {
        const tg_route_header_t *h = &d->headers[i];
        if (!h->name || check_header_name(h->name, err, errlen))
            return TG_EINVAL;
        for (size_t k = 0; k < h->nvalues; k++) {
            const char *v = h->values[k];
            if (v && v[0] == '~' && v[1] == '*') {
                char msg[400];
                rx_t rx;
                int rc = rx_compile(v + 2, strlen(v + 2), PCRE2_CASELESS, &rx, NULL, true, msg,
                                    sizeof(msg));
                rx_free(&rx);
                if (rc) {
                    snprintf(err, errlen, "invalid regex: '%s' (PCRE returned: %s)", v + 2, msg);
                    return TG_EINVAL;
                }
            }
        }
    }
    *field = NULL;
    return 0;
}

int tg_router_check_route(const tg_route_def_t *def, char *err, size_t errlen)
{
    const char *field;
    return check_route(def, &field, err, errlen);
}

const char *tg__router_check_route_field(const tg_route_def_t *def, char *err, size_t errlen);
const char *tg__router_check_route_field(const tg_route_def_t *def, char *err, size_t errlen)
{
    const char *field = NULL;
    if (check_route(def, &field, err, errlen) == 0)
        return NULL;
    return field ? field : "route";
}

/* ---------------------------------------------------------------------------------------- */
/* build */

/* strip_dot: an SNI's final dot is not used for routing (Kong's sni_val_transform); hosts
 * keep theirs, as Kong compares them as written. */
static void parse_host(arena_t *a, const char *h, rhost_t *out, bool strip_dot)
{
    size_t n = strlen(h);
    out->orig = h;
    out->orig_len = (uint32_t)n;
    out->port = -1;
    /* a trailing ":digits" is a port (IPv6 literals come bracketed) */
    const char *colon = memrchr(h, ':', n);
    if (colon && colon[1] && (h[0] != '[' || colon > (const char *)memchr(h, ']', n))) {
        bool digits = true;
        for (const char *q = colon + 1; q < h + n; q++)
            digits = digits && *q >= '0' && *q <= '9';
        if (digits) {
            out->port = atoi(colon + 1);
            n = (size_t)(colon - h);
        }
    }
    if (n > 0 && h[0] == '*') {
        out->kind = HK_SUFFIX;
        out->name = arena_strdup_lower(a, h + 1, n - 1, true);
        out->len = (uint32_t)(n - 1);
    } else if (n > 0 && h[n - 1] == '*') {
        out->kind = HK_PREFIX;
        out->name = arena_strdup_lower(a, h, n - 1, true);
        out->len = (uint32_t)(n - 1);
    } else {
        if (strip_dot && n > 1 && h[n - 1] == '.')
            n--;
        out->kind = HK_EXACT;
        out->name = arena_strdup_lower(a, h, n, true);
        out->len = (uint32_t)n;
    }
}

/* The literal text every match of an anchored regex starts with: the run before the first
 * metacharacter, less its last character when a quantifier that allows zero follows; nothing
 * when the pattern has an alternation anywhere. The index files regexes under it. */
uint32_t tg__router_regex_literal_prefix(const char *re, size_t n);
uint32_t tg__router_regex_literal_prefix(const char *re, size_t n)
{
    if (memchr(re, '|', n))
        return 0;
    size_t i = 0;
    while (i < n && !strchr("\\.^$|?*+()[]{}", re[i]))
        i++;
    if (i > 0 && i < n && (re[i] == '?' || re[i] == '*' || re[i] == '{'))
        i--;
    return (uint32_t)i;
}

static int copy_route(tg_router_t *r, const tg_route_def_t *d, route_t *rt, uint32_t idx,
                      char *err, size_t errlen)
{
    arena_t *a = &r->arena;
    rt->data = d->data;
    rt->index = idx;
    rt->protocols = d->protocols ? d->protocols : (TG_PROTO_HTTP | TG_PROTO_HTTPS);
    rt->hosts = arena_calloc(a, sizeof(rhost_t) * d->nhosts);
    rt->snis = arena_calloc(a, sizeof(rhost_t) * d->nsnis);
    rt->paths = arena_calloc(a, sizeof(rpath_t) * d->npaths);
    rt->methods = arena_calloc(a, sizeof(tg_str_t) * d->nmethods);
    rt->hdrs = arena_calloc(a, sizeof(rhdr_t) * d->nheaders);
    if (!rt->hosts || !rt->snis || !rt->paths || !rt->methods || !rt->hdrs)
        return TG_ENOMEM;
    for (size_t i = 0; i < d->nhosts; i++) {
        const char *h = arena_strdup_lower(a, d->hosts[i], strlen(d->hosts[i]), false);
        if (!h)
            return TG_ENOMEM;
        parse_host(a, h, &rt->hosts[i], false);
        r->has_suffix |= rt->hosts[i].kind == HK_SUFFIX;
        r->has_prefix |= rt->hosts[i].kind == HK_PREFIX;
    }
    rt->nhosts = (uint32_t)d->nhosts;
    for (size_t i = 0; i < d->nsnis; i++) {
        const char *h = arena_strdup_lower(a, d->snis[i], strlen(d->snis[i]), false);
        if (!h)
            return TG_ENOMEM;
        parse_host(a, h, &rt->snis[i], true);
        rt->snis[i].port = -1;
    }
    rt->nsnis = (uint32_t)d->nsnis;
    for (size_t i = 0; i < d->nmethods; i++) {
        size_t n = strlen(d->methods[i]);
        rt->methods[i].p = arena_strdup_lower(a, d->methods[i], n, false);
        rt->methods[i].len = n;
    }
    rt->nmethods = (uint32_t)d->nmethods;
    for (size_t i = 0; i < d->npaths; i++) {
        rpath_t *p = &rt->paths[i];
        size_t n = strlen(d->paths[i]);
        p->s = arena_strdup_lower(a, d->paths[i], n, false);
        p->len = (uint32_t)n;
        p->regex = d->paths[i][0] == '~';
        if (p->regex) {
            p->lit = tg__router_regex_literal_prefix(p->s + 1, n - 1);
            char msg[400];
            int rc = rx_compile(p->s + 1, n - 1, PCRE2_ANCHORED, &p->rx, a, true, msg,
                                sizeof(msg));
            rt->npaths = (uint32_t)i + 1;
            if (rc) {
                snprintf(err, errlen, "invalid regex: '%s' (PCRE returned: %s)", p->s + 1, msg);
                return rc;
            }
        }
    }
    rt->npaths = (uint32_t)d->npaths;
    for (size_t i = 0; i < d->nheaders; i++) {
        const tg_route_header_t *h = &d->headers[i];
        rhdr_t *o = &rt->hdrs[i];
        o->len = (uint32_t)strlen(h->name);
        o->name = arena_strdup_lower(a, h->name, o->len, true);
        o->vals = arena_calloc(a, sizeof(hval_t) * h->nvalues);
        if (!o->name || !o->vals)
            return TG_ENOMEM;
        bool added;
        hmap_put(&r->hnames, 0, o->name, o->len, 0, &added);
        for (size_t k = 0; k < h->nvalues; k++) {
            const char *v = h->values[k];
            hval_t *hv = &o->vals[k];
            if (v[0] == '~' && v[1] == '*') {
                hv->rx = arena_calloc(a, sizeof(rx_t));
                if (!hv->rx)
                    return TG_ENOMEM;
                o->nvals = (uint32_t)k + 1;
                char msg[400];
                if (rx_compile(v + 2, strlen(v + 2), PCRE2_CASELESS, hv->rx, a, true, msg,
                               sizeof(msg))) {
                    snprintf(err, errlen, "invalid regex: '%s' (PCRE returned: %s)", v + 2, msg);
                    return TG_EINVAL;
                }
            } else {
                hv->len = (uint32_t)strlen(v);
                hv->s = arena_strdup_lower(a, v, hv->len, true);
            }
        }
        o->nvals = (uint32_t)h->nvalues;
        rt->nhdrs = (uint32_t)i + 1;
    }
    return 0;
}

static int entry_cmp(const void *pa, const void *pb)
{
    const entry_t *a = pa, *b = pb;
#define DESC(f)                                                                                    \
    if (a->f != b->f)                                                                              \
        return a->f > b->f ? -1 : 1;
#define ASC(f)                                                                                     \
    if (a->f != b->f)                                                                              \
        return a->f < b->f ? -1 : 1;
    DESC(weight)
    DESC(plain)
    DESC(hcount)
    DESC(regex)
    DESC(regex_priority)
    DESC(length)
    ASC(created_at)
    ASC(position)
    ASC(route->index)
    ASC(path)
#undef DESC
#undef ASC
    return 0;
}

/* one membership of an entry in a bucket, sorted to lay out the buckets */
typedef struct {
    uint32_t bucket;
    uint8_t kind; /* 0 no path, 1 regex, 2 prefix */
    uint32_t rank;
    const char *path;
    uint32_t plen;
} member_t;

static int member_cmp(const void *pa, const void *pb)
{
    const member_t *a = pa, *b = pb;
    if (a->bucket != b->bucket)
        return a->bucket < b->bucket ? -1 : 1;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    if (a->kind == 2) {
        size_t n = a->plen < b->plen ? a->plen : b->plen;
        int c = memcmp(a->path, b->path, n);
        if (c)
            return c;
        if (a->plen != b->plen)
            return a->plen < b->plen ? -1 : 1;
    }
    return a->rank < b->rank ? -1 : a->rank > b->rank;
}

static int layout_buckets(tg_router_t *r)
{
    /* count memberships */
    size_t nm = 0;
    for (size_t e = 0; e < r->nentries; e++)
        nm += r->entries[e].route->nhosts ? r->entries[e].route->nhosts : 1;
    member_t *ms = malloc(sizeof(*ms) * (nm ? nm : 1));
    if (!ms)
        return TG_ENOMEM;
    size_t k = 0;
    for (size_t e = 0; e < r->nentries; e++) {
        const entry_t *en = &r->entries[e];
        const route_t *rt = en->route;
        member_t m = {0, 0, (uint32_t)e, NULL, 0};
        if (en->path >= 0) {
            const rpath_t *p = &rt->paths[en->path];
            if (p->regex && !p->lit) {
                m.kind = 1;
            } else if (p->regex) { /* filed under its literal prefix, checked by verify() */
                m.kind = 2;
                m.path = p->s + 1;
                m.plen = p->lit;
            } else {
                m.kind = 2;
                m.path = p->s;
                m.plen = p->len;
            }
        }
        if (!rt->nhosts) {
            ms[k++] = m;
            continue;
        }
        size_t first = k;
        for (uint32_t h = 0; h < rt->nhosts; h++) {
            hslot_t *s = hmap_find(&r->hosts, rt->hosts[h].kind, rt->hosts[h].name,
                                   rt->hosts[h].len);
            m.bucket = s->val;
            bool dup = false; /* "a.com" and "a.com:8000" share a bucket */
            for (size_t j = first; j < k; j++)
                dup = dup || ms[j].bucket == m.bucket;
            if (!dup)
                ms[k++] = m;
        }
    }
    nm = k;
    qsort(ms, nm, sizeof(*ms), member_cmp);

    uint32_t *pool = arena_alloc(&r->arena, sizeof(uint32_t) * (nm ? nm : 1));
    pfx_t *pfx = arena_alloc(&r->arena, sizeof(pfx_t) * (nm ? nm : 1));
    int32_t *stack = malloc(sizeof(int32_t) * (nm ? nm : 1));
    if (!pool || !pfx || !stack) {
        free(ms);
        free(stack);
        return TG_ENOMEM;
    }
    size_t i = 0, npool = 0, npfx = 0;
    while (i < nm) {
        bucket_t *b = &r->buckets[ms[i].bucket];
        uint32_t bid = ms[i].bucket;
        /* no-path and regex lists */
        for (uint8_t kind = 0; kind < 2; kind++) {
            size_t start = npool;
            while (i < nm && ms[i].bucket == bid && ms[i].kind == kind)
                pool[npool++] = ms[i++].rank;
            if (kind == 0) {
                b->nopath = pool + start;
                b->nnopath = (uint32_t)(npool - start);
            } else {
                b->regex = pool + start;
                b->nregex = (uint32_t)(npool - start);
            }
        }
        /* prefixes */
        b->pfx = pfx + npfx;
        size_t sp = 0;
        while (i < nm && ms[i].bucket == bid) {
            pfx_t *p = &pfx[npfx];
            p->s = ms[i].path;
            p->len = ms[i].plen;
            p->ranks = pool + npool;
            size_t start = npool;
            while (i < nm && ms[i].bucket == bid && ms[i].plen == p->len &&
                   memcmp(ms[i].path, p->s, p->len) == 0)
                pool[npool++] = ms[i++].rank;
            p->n = (uint32_t)(npool - start);
            /* parent: nearest element on the stack that is a prefix of this one */
            int32_t self = (int32_t)(npfx - (size_t)(b->pfx - pfx));
            while (sp > 0) {
                const pfx_t *q = &b->pfx[stack[sp - 1]];
                if (q->len <= p->len && memcmp(q->s, p->s, q->len) == 0)
                    break;
                sp--;
            }
            p->parent = sp > 0 ? stack[sp - 1] : -1;
            stack[sp++] = self;
            npfx++;
        }
        b->npfx = (uint32_t)(pfx + npfx - b->pfx);
    }
    free(stack);
    free(ms);
    return 0;
}

static void router_release(tg_router_t *r)
{
    for (size_t i = 0; i < r->nroutes; i++) {
        route_t *rt = &r->routes[i];
        for (uint32_t p = 0; p < rt->npaths; p++)
            rx_free(&rt->paths[p].rx);
        for (uint32_t h = 0; h < rt->nhdrs; h++)
            for (uint32_t v = 0; v < rt->hdrs[h].nvals; v++)
                if (rt->hdrs[h].vals[v].rx)
                    rx_free(rt->hdrs[h].vals[v].rx);
    }
    if (r->mctx)
        pcre2_match_context_free(r->mctx);
    free(r->hosts.slots);
    free(r->hnames.slots);
    free(r->routes);
    free(r->entries);
    free(r->buckets);
    arena_free(&r->arena);
    free(r);
}

void tg_router_free(tg_router_t *r)
{
    if (r)
        router_release(r);
}

size_t tg_router_count(const tg_router_t *r)
{
    return r ? r->nroutes : 0;
}

int tg_router_build(const tg_route_def_t *defs, size_t n, tg_router_t **out, size_t *bad,
                    char *err, size_t errlen)
{
    int rc = TG_ENOMEM;
    *out = NULL;
    if (bad)
        *bad = 0;
    if (err && errlen)
        err[0] = 0;
    for (size_t i = 0; i < n; i++) {
        const char *field;
        if (check_route(&defs[i], &field, err, errlen)) {
            if (bad)
                *bad = i;
            return TG_EINVAL;
        }
    }
    tg_router_t *r = calloc(1, sizeof(*r));
    if (!r)
        return TG_ENOMEM;
    r->id = atomic_fetch_add(&g_router_ids, 1);
    size_t nhosts = 0, nentries = 0, nhdr = 0;
    for (size_t i = 0; i < n; i++) {
        nhosts += defs[i].nhosts;
        nentries += defs[i].npaths ? defs[i].npaths : 1;
        nhdr += defs[i].nheaders;
    }
    r->routes = calloc(n ? n : 1, sizeof(route_t));
    r->entries = calloc(nentries ? nentries : 1, sizeof(entry_t));
    r->mctx = pcre2_match_context_create(NULL);
    if (!r->routes || !r->entries || !r->mctx || hmap_init(&r->hosts, nhosts) ||
        hmap_init(&r->hnames, nhdr))
        goto fail;
    pcre2_set_match_limit(r->mctx, RX_MATCH_LIMIT);
    pcre2_set_depth_limit(r->mctx, RX_DEPTH_LIMIT);

    for (size_t i = 0; i < n; i++) {
        rc = copy_route(r, &defs[i], &r->routes[i], (uint32_t)i, err, errlen);
        r->nroutes = i + 1;
        if (rc) {
            if (bad)
                *bad = i;
            goto fail;
        }
    }
    rc = TG_ENOMEM;
    /* entries, with Kong's priority fields */
    size_t ne = 0;
    for (size_t i = 0; i < n; i++) {
        const tg_route_def_t *d = &defs[i];
        route_t *rt = &r->routes[i];
        bool plain = rt->nhosts > 0;
        for (uint32_t h = 0; h < rt->nhosts; h++)
            plain = plain && rt->hosts[h].kind == HK_EXACT;
        uint8_t weight = (uint8_t)((d->nmethods > 0) + (d->nhosts > 0) + (d->nheaders > 0) +
                                   (d->nsnis > 0) + (d->npaths > 0));
        for (int32_t p = 0; p < (int32_t)(d->npaths ? d->npaths : 1); p++) {
            entry_t *e = &r->entries[ne++];
            e->route = rt;
            e->path = d->npaths ? p : -1;
            e->weight = weight;
            e->plain = plain;
            e->hcount = (uint16_t)(d->nheaders > 255 ? 255 : d->nheaders);
            e->created_at = d->created_at;
            e->position = d->position;
            if (d->npaths && rt->paths[p].regex) {
                e->regex = 1;
                e->regex_priority = d->regex_priority;
            } else if (d->npaths) {
                e->length = rt->paths[p].len & 0x7FFFF;
            }
        }
    }
    r->nentries = ne;
    qsort(r->entries, ne, sizeof(entry_t), entry_cmp);

    /* buckets: 0 is "no hosts" */
    r->nbuckets = 1;
    for (size_t i = 0; i < n; i++) {
        route_t *rt = &r->routes[i];
        for (uint32_t h = 0; h < rt->nhosts; h++) {
            bool added;
            hslot_t *s = hmap_put(&r->hosts, rt->hosts[h].kind, rt->hosts[h].name,
                                  rt->hosts[h].len, (uint32_t)r->nbuckets, &added);
            if (added)
                r->nbuckets++;
            TG_UNUSED(s);
        }
    }
    r->buckets = calloc(r->nbuckets, sizeof(bucket_t));
    if (!r->buckets || layout_buckets(r))
        goto fail;
    *out = r;
    return 0;
fail:
    router_release(r);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* match */

typedef struct {
    const tg_router_t *r;
    const tg_router_req_t *req;
    char host[256];
    size_t hlen;
    bool has_host;
    uint16_t port;
    char sni[256];
    size_t snilen;
    bool has_sni;
    pcre2_match_data *md;
    uint32_t best;
    int32_t best_host;
    PCRE2_SIZE ovec[2 * TG_ROUTER_MAX_CAPTURES];
    uint32_t novec;
} mctx_t;

static __thread pcre2_match_data *tl_md;

static bool name_match(const rhost_t *h, const char *s, size_t n)
{
    switch (h->kind) {
    case HK_EXACT:
        return n == h->len && memcmp(s, h->name, n) == 0;
    case HK_SUFFIX:
        return n >= h->len && memcmp(s + n - h->len, h->name, h->len) == 0;
    default:
        return n >= h->len && memcmp(s, h->name, h->len) == 0;
    }
}

static bool header_ok(const mctx_t *c, const rhdr_t *rh)
{
    const tg_router_req_t *q = c->req;
    for (size_t i = 0; i < q->num_headers; i++) {
        const tg_http_header_t *h = &q->headers[i];
        if (!tg_str_ieq(h->name, h->name_len, rh->name, rh->len))
            continue;
        for (uint32_t v = 0; v < rh->nvals; v++) {
            const hval_t *hv = &rh->vals[v];
            if (hv->rx) {
                int rc = pcre2_match(hv->rx->code, (PCRE2_SPTR)h->value, h->value_len, 0, 0,
                                     c->md, c->r->mctx);
                if (rc >= 0)
                    return true;
            } else if (tg_str_ieq(h->value, h->value_len, hv->s, hv->len)) {
                return true;
            }
        }
    }
    return false;
}

/* Everything but the prefix path (which the index guarantees). */
static bool verify(mctx_t *c, const entry_t *e)
{
    const route_t *rt = e->route;
    const tg_router_req_t *q = c->req;
    if (rt->nmethods) {
        bool ok = false;
        for (uint32_t i = 0; i < rt->nmethods && !ok; i++)
            ok = rt->methods[i].len == q->method_len &&
                 memcmp(rt->methods[i].p, q->method, q->method_len) == 0;
        if (!ok)
            return false;
    }
    int32_t hi = -1;
    if (rt->nhosts) {
        if (!c->has_host)
            return false;
        for (uint32_t i = 0; i < rt->nhosts && hi < 0; i++) {
            const rhost_t *h = &rt->hosts[i];
            if ((h->port < 0 || h->port == c->port) && name_match(h, c->host, c->hlen))
                hi = (int32_t)i;
        }
        if (hi < 0)
            return false;
    }
    if (rt->nsnis && q->protocol == TG_PROTO_HTTPS) {
        bool ok = false;
        for (uint32_t i = 0; i < rt->nsnis && !ok && c->has_sni; i++)
            ok = name_match(&rt->snis[i], c->sni, c->snilen);
        if (!ok)
            return false;
    }
    for (uint32_t i = 0; i < rt->nhdrs; i++)
        if (!header_ok(c, &rt->hdrs[i]))
            return false;
    if (e->path >= 0 && rt->paths[e->path].regex) {
        const rx_t *rx = &rt->paths[e->path].rx;
        int rc = pcre2_match(rx->code, (PCRE2_SPTR)q->path, q->path_len, 0, 0, c->md,
                             c->r->mctx);
        if (rc < 0)
            return false;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
        uint32_t np = rx->ngroups + 1;
        if (np > TG_ROUTER_MAX_CAPTURES)
            np = TG_ROUTER_MAX_CAPTURES;
        for (uint32_t i = 0; i < np; i++) {
            bool set = (int)i < rc || rc == 0;
            c->ovec[2 * i] = set ? ov[2 * i] : PCRE2_UNSET;
            c->ovec[2 * i + 1] = set ? ov[2 * i + 1] : PCRE2_UNSET;
        }
        c->novec = np;
    }
    c->best_host = hi;
    return true;
}

static void scan(mctx_t *c, const uint32_t *list, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        uint32_t rank = list[i];
        if (rank >= c->best)
            return;
        if (verify(c, &c->r->entries[rank])) {
            c->best = rank;
            return;
        }
    }
}

static void scan_bucket(mctx_t *c, const bucket_t *b)
{
    scan(c, b->nopath, b->nnopath);
    if (b->npfx) {
        const char *p = c->req->path;
        size_t pl = c->req->path_len;
        /* largest prefix string <= path */
        int32_t lo = 0, hi = (int32_t)b->npfx - 1, at = -1;
        while (lo <= hi) {
            int32_t mid = (lo + hi) / 2;
            const pfx_t *x = &b->pfx[mid];
            size_t n = x->len < pl ? x->len : pl;
            int cmp = memcmp(x->s, p, n);
            if (cmp == 0)
                cmp = x->len < pl ? -1 : x->len > pl;
            if (cmp <= 0) {
                at = mid;
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        if (at >= 0) {
            const pfx_t *x = &b->pfx[at];
            size_t lcp = 0, n = x->len < pl ? x->len : pl;
            while (lcp < n && x->s[lcp] == p[lcp])
                lcp++;
            for (int32_t k = at; k >= 0; k = b->pfx[k].parent) {
                x = &b->pfx[k];
                if (x->len <= lcp)
                    scan(c, x->ranks, x->n);
            }
        }
    }
    scan(c, b->regex, b->nregex);
}

/* Parses the request host into c->host (lower-cased, no port) and c->port. */
static void parse_req_host(mctx_t *c)
{
    const tg_router_req_t *q = c->req;
    c->port = q->port;
    c->has_host = false;
    if (!q->host || !q->host_len)
        return;
    const char *h = q->host;
    size_t n = q->host_len;
    const char *colon = NULL;
    if (h[0] == '[') {
        const char *rb = memchr(h, ']', n);
        if (rb && rb + 1 < h + n && rb[1] == ':')
            colon = rb + 1;
    } else {
        colon = memchr(h, ':', n);
    }
    if (colon) {
        unsigned v = 0;
        bool ok = colon + 1 < h + n;
        for (const char *s = colon + 1; s < h + n && ok; s++) {
            ok = *s >= '0' && *s <= '9' && v < 100000;
            v = v * 10 + (unsigned)(*s - '0');
        }
        if (ok && v <= 65535) {
            c->port = (uint16_t)v;
            n = (size_t)(colon - h);
        }
    }
    if (n >= sizeof(c->host))
        return;
    for (size_t i = 0; i < n; i++)
        c->host[i] = (char)(h[i] >= 'A' && h[i] <= 'Z' ? h[i] + 32 : h[i]);
    c->hlen = n;
    c->has_host = true;
}

/* PCRE2 match data is per thread: a thread-local pointer for speed, and a key whose
 * destructor frees it when the thread ends. */
static pthread_key_t md_key;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

static void md_free(void *p)
{
    pcre2_match_data_free(p);
}

static void md_key_init(void)
{
    pthread_key_create(&md_key, md_free);
}

static pcre2_match_data *thread_md(void)
{
    if (TG_LIKELY(tl_md != NULL))
        return tl_md;
    pthread_once(&md_once, md_key_init);
    tl_md = pcre2_match_data_create(OVEC_PAIRS, NULL);
    pthread_setspecific(md_key, tl_md);
    return tl_md;
}

static void lookup_bucket(mctx_t *c, uint8_t kind, const char *s, size_t n)
{
    const hslot_t *e = hmap_find(&c->r->hosts, kind, s, n);
    if (e)
        scan_bucket(c, &c->r->buckets[e->val]);
}

static int match_nocache(const tg_router_t *r, const tg_router_req_t *q, tg_router_match_t *m)
{
    mctx_t c;
    c.r = r;
    c.req = q;
    c.best = UINT32_MAX;
    c.best_host = -1;
    c.novec = 0;
    c.md = thread_md();
    if (!c.md)
        return TG_ENOMEM;
    parse_req_host(&c);
    c.has_sni = false;
    if (q->sni && q->sni_len && q->sni_len < sizeof(c.sni)) {
        size_t n = q->sni_len;
        if (n > 1 && q->sni[n - 1] == '.')
            n--;
        for (size_t i = 0; i < n; i++)
            c.sni[i] = (char)(q->sni[i] >= 'A' && q->sni[i] <= 'Z' ? q->sni[i] + 32 : q->sni[i]);
        c.snilen = n;
        c.has_sni = true;
    }
    /* host buckets first: their routes outrank hostless ones more often, which prunes more */
    if (c.has_host && r->nbuckets > 1) {
        lookup_bucket(&c, HK_EXACT, c.host, c.hlen);
        if (r->has_suffix)
            for (size_t i = 0; i < c.hlen; i++)
                if (c.host[i] == '.')
                    lookup_bucket(&c, HK_SUFFIX, c.host + i, c.hlen - i);
        if (r->has_prefix)
            for (size_t i = 0; i < c.hlen; i++)
                if (c.host[i] == '.')
                    lookup_bucket(&c, HK_PREFIX, c.host, i + 1);
    }
    if (r->nbuckets)
        scan_bucket(&c, &r->buckets[0]);
    if (c.best == UINT32_MAX)
        return TG_ENOTFOUND;

    const entry_t *e = &r->entries[c.best];
    const route_t *rt = e->route;
    m->data = rt->data;
    m->route_index = rt->index;
    m->matched_path = NULL;
    m->matched_path_len = 0;
    m->prefix_len = 0;
    m->is_regex = false;
    m->ncaptures_regex = 0;
    m->ncaptures = 0;
    if (e->path >= 0) {
        const rpath_t *p = &rt->paths[e->path];
        m->matched_path = p->s;
        m->matched_path_len = p->len;
        if (p->regex) {
            m->is_regex = true;
            m->prefix_len = c.ovec[1];
            m->ncaptures_regex = (int)p->rx.ngroups;
            m->ncaptures = (int)c.novec;
            for (uint32_t i = 0; i < c.novec; i++) {
                bool set = c.ovec[2 * i] != PCRE2_UNSET;
                m->captures[i].start = set ? (int)c.ovec[2 * i] : -1;
                m->captures[i].end = set ? (int)c.ovec[2 * i + 1] : -1;
                m->captures[i].name = p->rx.names[i];
            }
        } else {
            m->prefix_len = p->len;
        }
    }
    m->matched_host = c.best_host >= 0 ? rt->hosts[c.best_host].orig : NULL;
    m->matched_host_len = c.best_host >= 0 ? rt->hosts[c.best_host].orig_len : 0;
    m->protocol_ok = (rt->protocols & q->protocol) != 0;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* per-worker decision cache */

typedef struct {
    uint64_t rid, hash;
    uint32_t klen;
    int rc;
    tg_router_match_t m;
    char key[CACHE_KEY_MAX];
} cslot_t;

struct tg_router_cache_s {
    size_t mask;
    cslot_t *slots;
};

tg_router_cache_t *tg_router_cache_new(size_t entries)
{
    size_t n = 16;
    while (n < entries)
        n <<= 1;
    tg_router_cache_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->slots = calloc(n, sizeof(cslot_t));
    if (!c->slots) {
        free(c);
        return NULL;
    }
    c->mask = n - 1;
    return c;
}

void tg_router_cache_free(tg_router_cache_t *c)
{
    if (c) {
        free(c->slots);
        free(c);
    }
}

#define KPUT(p, n)                                                                                 \
    do {                                                                                           \
        if (k + (n) + 1 > cap)                                                                     \
            return 0;                                                                              \
        memcpy(key + k, (p), (n));                                                                 \
        k += (n);                                                                                  \
        key[k++] = '\0';                                                                           \
    } while (0)

/* Everything the decision depends on; 0 when it does not fit. */
static size_t cache_key(const tg_router_t *r, const tg_router_req_t *q, char *key, size_t cap)
{
    size_t k = 0;
    unsigned char head[3] = {(unsigned char)q->protocol, (unsigned char)(q->port >> 8),
                             (unsigned char)q->port};
    KPUT(head, 3);
    KPUT(q->method, q->method_len);
    KPUT(q->host ? q->host : "", q->host ? q->host_len : 0);
    if (q->protocol == TG_PROTO_HTTPS)
        KPUT(q->sni ? q->sni : "", q->sni ? q->sni_len : 0);
    KPUT(q->path, q->path_len);
    if (r->hnames.count) {
        for (size_t i = 0; i < q->num_headers; i++) {
            const tg_http_header_t *h = &q->headers[i];
            char low[64];
            if (h->name_len >= sizeof(low))
                return 0;
            for (size_t j = 0; j < h->name_len; j++)
                low[j] = (char)(h->name[j] >= 'A' && h->name[j] <= 'Z' ? h->name[j] + 32
                                                                       : h->name[j]);
            if (!hmap_find(&r->hnames, 0, low, h->name_len))
                continue;
            KPUT(low, h->name_len);
            KPUT(h->value, h->value_len);
        }
    }
    return k;
}
#undef KPUT

int tg_router_match(const tg_router_t *r, tg_router_cache_t *cache, const tg_router_req_t *req,
                    tg_router_match_t *m)
{
    if (!r || !req || !m)
        return TG_ENOTFOUND;
    cslot_t *slot = NULL;
    char key[CACHE_KEY_MAX];
    size_t klen = 0;
    uint64_t h = 0;
    if (cache) {
        klen = cache_key(r, req, key, sizeof(key));
        if (klen) {
            h = hash_bytes(0, key, klen);
            slot = &cache->slots[h & cache->mask];
            if (slot->rid == r->id && slot->hash == h && slot->klen == klen &&
                memcmp(slot->key, key, klen) == 0) {
                if (slot->rc == 0)
                    *m = slot->m;
                return slot->rc;
            }
        }
    }
    int rc = match_nocache(r, req, m);
    if (slot && (rc == 0 || rc == TG_ENOTFOUND)) {
        slot->rid = r->id;
        slot->hash = h;
        slot->klen = (uint32_t)klen;
        slot->rc = rc;
        if (rc == 0)
            slot->m = *m;
        memcpy(slot->key, key, klen);
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* upstream path (Kong's get_upstream_uri_v0) */

typedef struct {
    char *p;
    size_t n, cap;
    bool over;
} sbuf_t;

static void sb_put(sbuf_t *b, const char *s, size_t n)
{
    if (b->over || b->n + n > b->cap) {
        b->over = true;
        return;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

int tg_router_upstream_path(const tg_router_match_t *m, const char *path, size_t path_len,
                            const char *svc_path, size_t svc_path_len, bool strip_path,
                            char *out, size_t cap)
{
    if (!svc_path || !svc_path_len) {
        svc_path = "/";
        svc_path_len = 1;
    }
    /* request prefix: the matched path when stripping, else "/" */
    size_t pl = strip_path && m && m->prefix_len ? m->prefix_len : 1;
    if (pl > path_len)
        pl = path_len;
    const char *post = path + pl;
    size_t postlen = path_len - pl;
    if ((postlen == 1 && post[0] == '.') || (postlen == 2 && post[0] == '.' && post[1] == '.')) {
        postlen = 0;
    } else if (postlen >= 2 && post[0] == '.' && post[1] == '/') {
        post += 2;
        postlen -= 2;
    } else if (postlen >= 3 && post[0] == '.' && post[1] == '.' && post[2] == '/') {
        post += 3;
        postlen -= 3;
    }
    bool req_slash_end = path_len > 0 && path[path_len - 1] == '/';

    size_t tcap = svc_path_len + path_len + 2;
    char stackbuf[4096];
    char *tmp = tcap <= sizeof(stackbuf) ? stackbuf : malloc(tcap);
    if (!tmp)
        return TG_ENOMEM;
    sbuf_t b = {tmp, 0, tcap, false};

    if (svc_path[svc_path_len - 1] == '/') {
        if (strip_path) {
            if (postlen == 0) {
                if (svc_path_len == 1)
                    sb_put(&b, "/", 1);
                else if (req_slash_end)
                    sb_put(&b, svc_path, svc_path_len);
                else
                    sb_put(&b, svc_path, svc_path_len - 1);
            } else if (post[0] == '/') {
                sb_put(&b, svc_path, svc_path_len - 1);
                sb_put(&b, post, postlen);
            } else {
                sb_put(&b, svc_path, svc_path_len);
                sb_put(&b, post, postlen);
            }
        } else {
            sb_put(&b, svc_path, svc_path_len);
            if (path_len > 1)
                sb_put(&b, path + 1, path_len - 1);
        }
    } else if (strip_path) {
        sb_put(&b, svc_path, svc_path_len);
        if (postlen == 0) {
            if (path_len > 1 && req_slash_end)
                sb_put(&b, "/", 1);
        } else {
            if (post[0] != '/')
                sb_put(&b, "/", 1);
            sb_put(&b, post, postlen);
        }
    } else {
        sb_put(&b, svc_path, svc_path_len);
        if (!(path_len == 1 && path[0] == '/'))
            sb_put(&b, path, path_len);
    }
    int rc = b.over ? TG_ETOOLARGE : tg_uri_escape_path(b.p, b.n, out, cap);
    if (tmp != stackbuf)
        free(tmp);
    return rc;
}
