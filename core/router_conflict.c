/* router_conflict.c: the workspace conflict check (seeds/001, issue "Router").
 *
 * Two routes A and B of different workspaces conflict when one would take a request made of
 * the other's values — every combination of its hosts x paths x methods, a missing field
 * giving a request without host, with path "/", without method (as Kong probes its router
 * with a new route's values) — and the seed's host rules say so:
 *   - methods: B without methods takes any; otherwise it needs one of A's methods;
 *   - paths: B without paths takes any; B's prefix takes A's prefix that starts with it (so,
 *     both ways round, two prefixes collide when one is a prefix of the other); a regex and a prefix collide when the regex (anchored, as routed) matches the
 *     prefix's literal text; two regexes collide when they are equal once their capture-group
 *     names are erased (`/a/(?<id>\d+)` and `/a/(?<id_2>\d+)` collide, which Kong misses).
 *     Any other pair of regexes is reported as not colliding (whether two regexes share a
 *     match is not decided);
 *   - hosts: B without hosts conflicts (it captures every host); otherwise a host of A must
 *     equal a host of B, wildcard to wildcard or absolute to absolute (case-insensitive;
 *     ports equal or one side without a port). A wildcard that merely covers an absolute host
 *     of the other route, or two different wildcards, do not conflict; a route without hosts
 *     makes requests without a host, which B with hosts never takes.
 * Routes of the same workspace never conflict. The check runs both ways (A into B, B into A).
 *
 * find_conflict indexes the routes by (host, path): a conflict needs a shared host key or a
 * route without hosts, and colliding paths are found in a sorted key array (every prefix of a
 * path by binary search, every extension of it as a range). A regex is keyed by the literal
 * text its matches start with, which any prefix or regex it collides with must share. */
#include "router.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>

/* Lower-cased host without its port (wildcard kept) into out; *port = -1 when none. */
static size_t host_key(const char *h, char *out, size_t cap, int *port)
{
    size_t n = strlen(h);
    *port = -1;
    const char *colon = memrchr(h, ':', n);
    if (colon && colon[1] && h[0] != '[') {
        bool digits = true;
        for (const char *q = colon + 1; q < h + n; q++)
            digits = digits && *q >= '0' && *q <= '9';
        if (digits) {
            *port = atoi(colon + 1);
            n = (size_t)(colon - h);
        }
    }
    if (n >= cap)
        n = cap - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)(h[i] >= 'A' && h[i] <= 'Z' ? h[i] + 32 : h[i]);
    out[n] = 0;
    return n;
}

/* The seed's host rules, for B capturing a request made of A's values: B without hosts
 * conflicts; otherwise some host of A must equal a host of B, wildcard to wildcard or
 * absolute to absolute (ports equal, or one of them without a port). A request made from a
 * route without hosts carries no host, which a route with hosts never matches. */
static bool hosts_capture(const tg_route_def_t *a, const tg_route_def_t *b)
{
    if (!b->nhosts)
        return true;
    for (size_t i = 0; i < a->nhosts; i++) {
        char ka[300];
        int pa;
        size_t la = host_key(a->hosts[i], ka, sizeof(ka), &pa);
        for (size_t j = 0; j < b->nhosts; j++) {
            char kb[300];
            int pb;
            size_t lb = host_key(b->hosts[j], kb, sizeof(kb), &pb);
            if (la == lb && memcmp(ka, kb, la) == 0 && (pa < 0 || pb < 0 || pa == pb))
                return true;
        }
    }
    return false;
}

/* B matches a request made with A's methods (none: a request with no method, which a route
 * with methods never matches). */
static bool methods_capture(const tg_route_def_t *a, const tg_route_def_t *b)
{
    if (!b->nmethods)
        return true;
    for (size_t i = 0; i < a->nmethods; i++)
        for (size_t j = 0; j < b->nmethods; j++)
            if (strcmp(a->methods[i], b->methods[j]) == 0)
                return true;
    return false;
}

/* A regex with every capture-group name erased: (?<x>, (?'x', (?P<x> all become (?<>. */
static size_t regex_shape(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; s[i] && o + 5 < cap; i++) {
        if (s[i] == '\\' && s[i + 1]) {
            out[o++] = s[i++];
            out[o++] = s[i];
            continue;
        }
        const char *q = NULL;
        char close = 0;
        if (s[i] == '(' && s[i + 1] == '?' && s[i + 2] == '<' && s[i + 3] != '=' &&
            s[i + 3] != '!') {
            q = s + i + 3;
            close = '>';
        } else if (s[i] == '(' && s[i + 1] == '?' && s[i + 2] == 'P' && s[i + 3] == '<') {
            q = s + i + 4;
            close = '>';
        } else if (s[i] == '(' && s[i + 1] == '?' && s[i + 2] == '\'') {
            q = s + i + 3;
            close = '\'';
        }
        if (q) {
            const char *e = strchr(q, close);
            if (e) {
                memcpy(out + o, "(?<>", 4);
                o += 4;
                i = (size_t)(e - s);
                continue;
            }
        }
        out[o++] = s[i];
    }
    out[o] = 0;
    return o;
}

static bool regex_matches_literal(const char *re, const char *lit)
{
    int ec;
    PCRE2_SIZE off;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_ANCHORED, &ec,
                                     &off, NULL);
    if (!code)
        return false;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(code, NULL);
    int rc = md ? pcre2_match(code, (PCRE2_SPTR)lit, strlen(lit), 0, 0, md, NULL) : -1;
    pcre2_match_data_free(md);
    pcre2_code_free(code);
    return rc >= 0;
}

/* B's path `b` takes a request for A's path `a`: a prefix b takes a literal a that starts
 * with it; a regex and a prefix collide when the regex matches the prefix's literal text
 * (either way round); two regexes when their shapes are equal. */
static bool path_captures(const char *a, const char *b)
{
    bool ra = a[0] == '~', rb = b[0] == '~';
    if (!ra && !rb)
        return strncmp(a, b, strlen(b)) == 0;
    if (ra && rb) {
        char sa[1024], sb[1024];
        regex_shape(a + 1, sa, sizeof(sa));
        regex_shape(b + 1, sb, sizeof(sb));
        return strcmp(sa, sb) == 0;
    }
    return ra ? regex_matches_literal(a + 1, b) : regex_matches_literal(b + 1, a);
}

/* B matches a request made with A's paths (none: the path "/"); B without paths takes any. */
static bool paths_capture(const tg_route_def_t *a, const tg_route_def_t *b)
{
    if (!b->npaths)
        return true;
    for (size_t j = 0; j < b->npaths; j++) {
        if (!a->npaths && path_captures("/", b->paths[j]))
            return true;
        for (size_t i = 0; i < a->npaths; i++)
            if (path_captures(a->paths[i], b->paths[j]))
                return true;
    }
    return false;
}

static bool same_ws(const tg_route_def_t *a, const tg_route_def_t *b)
{
    return strcmp(a->ws_id ? a->ws_id : "", b->ws_id ? b->ws_id : "") == 0;
}

/* B, in another workspace, would take a request made of A's hosts x paths x methods. */
static bool captures(const tg_route_def_t *a, const tg_route_def_t *b)
{
    return hosts_capture(a, b) && methods_capture(a, b) && paths_capture(a, b);
}

static bool pair_conflict(const tg_route_def_t *a, const tg_route_def_t *b)
{
    return !same_ws(a, b) && (captures(a, b) || captures(b, a));
}

int tg_router_conflicts_with(const tg_route_def_t *candidate, const tg_route_def_t *defs,
                             size_t n, size_t *which)
{
    for (size_t j = 0; j < n; j++) {
        if (candidate->id && defs[j].id && strcmp(candidate->id, defs[j].id) == 0)
            continue;
        if (pair_conflict(candidate, &defs[j])) {
            if (which)
                *which = j;
            return TG_ECONFLICT;
        }
    }
    return 0;
}

/* router.c: the literal text every match of an anchored regex starts with */
uint32_t tg__router_regex_literal_prefix(const char *re, size_t n);

static size_t literal_prefix(const char *re)
{
    return tg__router_regex_literal_prefix(re, strlen(re));
}

/* one (group, path key) of a route; group 0 holds routes without hosts, group g > 0 the
 * routes having host key g; nopath entries (routes without paths) sort first in a group */
typedef struct {
    uint32_t group;
    uint8_t keyed;
    const char *key;
    uint32_t klen;
    uint32_t idx;
} pk_t;

static int key_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al < bl ? -1 : al > bl);
}

static int pk_cmp(const void *pa, const void *pb)
{
    const pk_t *a = pa, *b = pb;
    if (a->group != b->group)
        return a->group < b->group ? -1 : 1;
    if (a->keyed != b->keyed)
        return a->keyed < b->keyed ? -1 : 1;
    int c = a->keyed ? key_cmp(a->key, a->klen, b->key, b->klen) : 0;
    return c ? c : (a->idx < b->idx ? -1 : a->idx > b->idx);
}

typedef struct {
    char key[300];
    uint32_t idx;
    uint32_t group;
} hk_t;

static int hk_cmp(const void *pa, const void *pb)
{
    const hk_t *a = pa, *b = pb;
    int c = strcmp(a->key, b->key);
    return c ? c : (a->idx < b->idx ? -1 : a->idx > b->idx);
}

typedef struct {
    const tg_route_def_t *defs;
    const pk_t *pk;
    size_t npk;
    size_t ba, bb;
    bool found;
} search_t;

static void consider(search_t *s, size_t i, size_t j)
{
    size_t a = i < j ? i : j, b = i < j ? j : i;
    if (a == b || (s->found && (b > s->bb || (b == s->bb && a >= s->ba))))
        return;
    if (pair_conflict(&s->defs[a], &s->defs[b])) {
        s->ba = a;
        s->bb = b;
        s->found = true;
    }
}

/* First entry of [lo, hi) whose key is >= (k, kl). */
static size_t lower_bound(const pk_t *pk, size_t lo, size_t hi, const char *k, size_t kl)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(pk[mid].key, pk[mid].klen, k, kl) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Route i against the routes of group g [gs, ge) whose paths may collide with its own. */
static void search_group(search_t *s, size_t i, size_t gs, size_t ge)
{
    const tg_route_def_t *d = &s->defs[i];
    const pk_t *pk = s->pk;
    size_t ks = gs;
    while (ks < ge && !pk[ks].keyed)
        consider(s, i, pk[ks++].idx); /* routes without paths */
    if (!d->npaths) {
        for (size_t x = ks; x < ge; x++)
            consider(s, i, pk[x].idx);
        return;
    }
    for (size_t p = 0; p < d->npaths; p++) {
        const char *path = d->paths[p];
        const char *k = path[0] == '~' ? path + 1 : path;
        size_t kl = path[0] == '~' ? literal_prefix(k) : strlen(k);
        /* keys that are prefixes of k (k itself included) */
        for (size_t l = 0; l <= kl; l++) {
            size_t x = lower_bound(pk, ks, ge, k, l);
            for (; x < ge && pk[x].klen == l && memcmp(pk[x].key, k, l) == 0; x++)
                consider(s, i, pk[x].idx);
        }
        /* keys that extend k */
        for (size_t x = lower_bound(pk, ks, ge, k, kl);
             x < ge && pk[x].klen >= kl && memcmp(pk[x].key, k, kl) == 0; x++)
            if (pk[x].klen > kl)
                consider(s, i, pk[x].idx);
    }
}

int tg_router_find_conflict(const tg_route_def_t *defs, size_t n, size_t *a, size_t *b,
                            char *err, size_t errlen)
{
    bool multi = false;
    for (size_t i = 1; i < n && !multi; i++)
        multi = !same_ws(&defs[0], &defs[i]);
    if (!multi)
        return 0;
    int rc = TG_ENOMEM;
    size_t nk = 0, npk = 0;
    for (size_t i = 0; i < n; i++) {
        nk += defs[i].nhosts;
        npk += (defs[i].nhosts ? defs[i].nhosts : 1) * (defs[i].npaths ? defs[i].npaths : 1);
    }
    hk_t *ks = malloc(sizeof(*ks) * (nk ? nk : 1));
    pk_t *pk = malloc(sizeof(*pk) * (npk ? npk : 1));
    size_t *gstart = NULL;
    search_t s = {defs, pk, 0, 0, 0, false};
    if (!ks || !pk)
        goto done;
    /* host keys -> groups 1..G */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t h = 0; h < defs[i].nhosts; h++) {
            int port;
            host_key(defs[i].hosts[h], ks[k].key, sizeof(ks[k].key), &port);
            ks[k++].idx = (uint32_t)i;
        }
    }
    qsort(ks, nk, sizeof(*ks), hk_cmp);
    uint32_t ngroups = 1;
    for (size_t x = 0; x < nk; x++) {
        if (x > 0 && strcmp(ks[x].key, ks[x - 1].key) != 0)
            ngroups++;
        ks[x].group = ngroups;
    }
    /* (group, path key) entries, one route listed once per group */
    size_t np = 0;
    for (size_t x = 0; x <= nk; x++) {
        bool hostless_pass = x == nk;
        for (size_t i = 0; i < (hostless_pass ? n : 1); i++) {
            size_t r = hostless_pass ? i : ks[x].idx;
            uint32_t g = hostless_pass ? 0 : ks[x].group;
            if (hostless_pass && defs[r].nhosts)
                continue;
            if (!hostless_pass && x > 0 && ks[x - 1].group == g && ks[x - 1].idx == r)
                continue; /* "a.com" and "a.com:80" on one route */
            const tg_route_def_t *d = &defs[r];
            if (!d->npaths)
                pk[np++] = (pk_t){g, 0, "", 0, (uint32_t)r};
            for (size_t p = 0; p < d->npaths; p++) {
                const char *path = d->paths[p];
                const char *key = path[0] == '~' ? path + 1 : path;
                size_t kl = path[0] == '~' ? literal_prefix(key) : strlen(key);
                pk[np++] = (pk_t){g, 1, key, (uint32_t)kl, (uint32_t)r};
            }
        }
    }
    qsort(pk, np, sizeof(*pk), pk_cmp);
    s.npk = np;
    gstart = calloc(ngroups + 2, sizeof(*gstart));
    if (!gstart)
        goto done;
    for (size_t g = 0, x = 0; g <= ngroups; g++) {
        while (x < np && pk[x].group < g)
            x++;
        gstart[g] = x;
    }
    gstart[ngroups + 1] = np;
    /* every route against the hostless group, and against each of its host groups */
    for (size_t i = 0; i < n; i++)
        search_group(&s, i, gstart[0], gstart[1]);
    for (size_t x = 0; x < nk; x++)
        if (x == 0 || ks[x - 1].group != ks[x].group || ks[x - 1].idx != ks[x].idx)
            search_group(&s, ks[x].idx, gstart[ks[x].group], gstart[ks[x].group + 1]);
    rc = 0;
done:
    free(ks);
    free(pk);
    free(gstart);
    if (rc)
        return rc;
    if (!s.found)
        return 0;
    if (a)
        *a = s.ba;
    if (b)
        *b = s.bb;
    const tg_route_def_t *x = &defs[s.ba], *y = &defs[s.bb];
    if (err && errlen)
        snprintf(err, errlen,
                 "API route collides with an existing API: route '%s' (workspace '%s') and "
                 "route '%s' (workspace '%s')",
                 y->name ? y->name : (y->id ? y->id : "?"), y->ws_id ? y->ws_id : "default",
                 x->name ? x->name : (x->id ? x->id : "?"), x->ws_id ? x->ws_id : "default");
    return TG_ECONFLICT;
}
