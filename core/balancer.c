/* balancer.c: upstreams, their targets and the four algorithms. */
#include "balancer.h"
#include "dns.h"
#include "log.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include <lauxlib.h>

struct tg_lb_worker_s {
    uint32_t rr;
    uint32_t *conns;
    double *ewma; /* ms, 0 until measured */
};

#define MAX_WHEEL 65536

/* ------------------------------------------------------------- hashing -- */

uint64_t tg_balancer_hash(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    /* finalise (splitmix64) so that close keys spread over the slots */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Weighted rendezvous score of a target for a slot: the highest wins. */
static double hrw_score(uint32_t slot, uint64_t seed, int weight)
{
    uint64_t h = mix64(seed ^ ((uint64_t)slot * 0x9e3779b97f4a7c15ULL));
    double u = ((double)(h >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    return (double)weight / -log(u);
}

/* -------------------------------------------------------------- build -- */

static char *dupf(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    char *r = lua_type(L, -1) == LUA_TSTRING ? strdup(lua_tostring(L, -1)) : NULL;
    lua_pop(L, 1);
    return r;
}

static int hash_kind(const char *s)
{
    static const char *names[] = {"none", "consumer", "ip",    "header",
                                  "cookie", "path",   "query_arg", "uri_capture"};
    for (int i = 0; s && i < (int)TG_ARRAY_SIZE(names); i++)
        if (!strcmp(s, names[i]))
            return i;
    return TG_HASH_NONE;
}

static void hash_src(lua_State *L, int u, const char *kind_field, const char *header,
                     const char *arg, const char *capture, tg_hash_src_t *h)
{
    char *k = dupf(L, u, kind_field);
    h->kind = hash_kind(k);
    free(k);
    const char *f = h->kind == TG_HASH_HEADER      ? header
                    : h->kind == TG_HASH_QUERY_ARG ? arg
                    : h->kind == TG_HASH_URI_CAPTURE ? capture
                    : h->kind == TG_HASH_COOKIE      ? "hash_on_cookie"
                                                     : NULL;
    h->name = f ? dupf(L, u, f) : NULL;
    h->name_len = h->name ? strlen(h->name) : 0;
    if (h->kind == TG_HASH_HEADER && h->name) /* lowercase; dashes as sent */
        for (char *p = h->name; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : (*p == '_' ? '-' : *p));
}

/* "host:port" / "[v6]:port" / "host" (port 8000, as Kong's targets) */
static void split_target(const char *s, char *host, size_t hostcap, uint16_t *port)
{
    *port = 8000;
    const char *colon;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        size_t n = end ? (size_t)(end - s - 1) : strlen(s + 1);
        snprintf(host, hostcap, "%.*s", (int)n, s + 1);
        colon = end ? strchr(end, ':') : NULL;
    } else {
        colon = strrchr(s, ':');
        if (colon && strchr(s, ':') != colon)
            colon = NULL;
        size_t n = colon ? (size_t)(colon - s) : strlen(s);
        snprintf(host, hostcap, "%.*s", (int)n, s);
    }
    if (colon)
        *port = (uint16_t)atoi(colon + 1);
}

static uint32_t gcd(uint32_t a, uint32_t b)
{
    while (b) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* The round-robin order: weights reduced by their gcd (scaled down past
 * MAX_WHEEL), interleaved as smooth weighted round-robin does. */
static void build_wheel(tg_upstream_t *u)
{
    uint32_t g = 0, sum = 0;
    for (size_t i = 0; i < u->ntargets; i++)
        if (u->targets[i].weight > 0)
            g = gcd(g, (uint32_t)u->targets[i].weight);
    if (!g)
        return;
    uint32_t *w = calloc(u->ntargets + 1, sizeof(uint32_t));
    for (size_t i = 0; i < u->ntargets; i++) {
        w[i] = (uint32_t)u->targets[i].weight / g;
        sum += w[i];
    }
    if (sum > MAX_WHEEL) {
        uint32_t s2 = 0;
        for (size_t i = 0; i < u->ntargets; i++) {
            if (w[i]) {
                w[i] = (uint32_t)((uint64_t)w[i] * MAX_WHEEL / sum);
                if (!w[i])
                    w[i] = 1;
            }
            s2 += w[i];
        }
        sum = s2;
    }
    int64_t *cur = calloc(u->ntargets + 1, sizeof(int64_t));
    u->wheel = malloc(sum * sizeof(uint32_t));
    u->nwheel = sum;
    for (uint32_t k = 0; k < sum; k++) {
        size_t best = 0;
        for (size_t i = 0; i < u->ntargets; i++) {
            cur[i] += w[i];
            if (w[i] && (!w[best] || cur[i] > cur[best]))
                best = i;
        }
        cur[best] -= sum;
        u->wheel[k] = (uint32_t)best;
    }
    free(cur);
    free(w);
}

static void build_ring(tg_upstream_t *u)
{
    u->ring = malloc(u->slots * sizeof(uint32_t));
    for (uint32_t s = 0; s < u->slots; s++) {
        uint32_t best = UINT32_MAX;
        double bs = -1;
        for (size_t i = 0; i < u->ntargets; i++) {
            if (u->targets[i].weight <= 0)
                continue;
            double sc = hrw_score(s, u->targets[i].seed, u->targets[i].weight);
            if (sc > bs) {
                bs = sc;
                best = (uint32_t)i;
            }
        }
        u->ring[s] = best;
    }
}

static const char *const FINGERPRINT_SKIP[] = {"created_at", "updated_at", "tags", NULL};

/* Pushes { [upstream id] = { target row indices } } */
static int group_targets(lua_State *L, int targets)
{
    lua_newtable(L);
    int map = lua_gettop(L);
    size_t nt = lua_objlen(L, targets);
    for (size_t j = 1; j <= nt; j++) {
        lua_rawgeti(L, targets, (int)j);
        lua_getfield(L, -1, "upstream");
        if (lua_type(L, -1) == LUA_TTABLE) {
            lua_getfield(L, -1, "id");
            if (lua_type(L, -1) == LUA_TSTRING) {
                lua_pushvalue(L, -1);
                lua_rawget(L, map);
                if (lua_isnil(L, -1)) {
                    lua_pop(L, 1);
                    lua_newtable(L);
                    lua_pushvalue(L, -2);
                    lua_pushvalue(L, -2);
                    lua_rawset(L, map);
                }
                lua_pushinteger(L, (lua_Integer)j);
                lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 2);
    }
    return map;
}

/* Appends one balancer entry of a target: one of its addresses. */
static tg_target_t *add_entry(tg_upstream_t *u, size_t *cap)
{
    if (u->ntargets == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        tg_target_t *nt = realloc(u->targets, (nc + 1) * sizeof(tg_target_t));
        if (!nt)
            return NULL;
        u->targets = nt;
        *cap = nc;
    }
    tg_target_t *tt = &u->targets[u->ntargets];
    memset(tt, 0, sizeof(*tt));
    return tt;
}

#define TG_MAX_TARGET_ADDRS 64

/* The upstream's balancer entries: each target row, one entry per address
 * of its host (a hostname's A/AAAA records each with the target's weight, an
 * SRV record's with its own weight and port, as Kong's balancer). */
static void build_targets(lua_State *L, int targets, int list, tg_upstream_t *u,
                          tg_target_resolve_fn resolve)
{
    size_t nl = list ? lua_objlen(L, list) : 0;
    size_t cap = 0;
    u->targets = calloc(1, sizeof(tg_target_t));
    for (size_t k = 1; k <= nl; k++) {
        lua_rawgeti(L, list, (int)k);
        int j = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
        lua_rawgeti(L, targets, j);
        int t = lua_gettop(L);
        char *target = dupf(L, t, "target");
        lua_getfield(L, t, "weight");
        int weight = lua_type(L, -1) == LUA_TNUMBER ? (int)lua_tointeger(L, -1) : 100;
        lua_pop(L, 1);
        char *id = dupf(L, t, "id");
        lua_pop(L, 1);
        if (!target) {
            free(id);
            continue;
        }
        /* a target listed twice: the last row wins (each of its entries) */
        bool seen = false;
        for (size_t i = 0; i < u->ntargets; i++) {
            tg_target_t *tt = &u->targets[i];
            if (strcmp(tt->target, target) != 0)
                continue;
            free(tt->id);
            tt->id = id ? strdup(id) : NULL;
            if (!tt->srv_weight)
                tt->weight = weight;
            seen = true;
        }
        if (seen) {
            free(target);
            free(id);
            continue;
        }
        char host[256], err[256];
        uint16_t port;
        split_target(target, host, sizeof(host), &port);
        tg_target_t addrs[TG_MAX_TARGET_ADDRS];
        memset(addrs, 0, sizeof(addrs));
        struct tg_dns_name_s *keep = NULL;
        int n = resolve(host, port, addrs, TG_MAX_TARGET_ADDRS, &keep, err, sizeof(err));
        if (keep) {
            struct tg_dns_name_s **nn =
                realloc(u->dns_names, (u->ndns_names + 1) * sizeof(*u->dns_names));
            if (nn) {
                u->dns_names = nn;
                u->dns_names[u->ndns_names++] = keep;
            } else {
                tg_dns_name_release(keep);
            }
        }
        if (n <= 0) {
            tg_log(TG_LOG_ERR, "upstream %s: target %s: %s", u->name, target, err);
            free(target);
            free(id);
            continue;
        }
        char hh[300];
        if (u->host_header)
            snprintf(hh, sizeof(hh), "%s", u->host_header);
        else if (port == 80 || port == 443)
            snprintf(hh, sizeof(hh), "%s", host);
        else
            snprintf(hh, sizeof(hh), "%s:%u", host, port);
        for (int a = 0; a < n; a++) {
            tg_target_t *tt = add_entry(u, &cap);
            if (!tt) {
                free(addrs[a].name);
                continue;
            }
            *tt = addrs[a];
            tt->srv_weight = addrs[a].weight > 0;
            tt->weight = tt->srv_weight ? addrs[a].weight : weight;
            tt->id = id ? strdup(id) : NULL;
            tt->target = strdup(target);
            tt->host = strdup(host);
            tt->port = addrs[a].addr.ss_family == AF_INET6
                           ? ntohs(((struct sockaddr_in6 *)&tt->addr)->sin6_port)
                           : ntohs(((struct sockaddr_in *)&tt->addr)->sin_port);
            if (!tt->port)
                tt->port = port;
            /* its consistent-hashing identity: the target, and the address
             * when the name has several */
            if (n == 1) {
                tt->seed = tg_balancer_hash(target, strlen(target));
            } else {
                char ip[INET6_ADDRSTRLEN] = "", key[400];
                const void *in = tt->addr.ss_family == AF_INET6
                                     ? (const void *)&((struct sockaddr_in6 *)&tt->addr)->sin6_addr
                                     : (const void *)&((struct sockaddr_in *)&tt->addr)->sin_addr;
                inet_ntop(tt->addr.ss_family, in, ip, sizeof(ip));
                int kl = snprintf(key, sizeof(key), "%s#%s:%u", target, ip, tt->port);
                tt->seed = tg_balancer_hash(key, (size_t)kl);
            }
            tt->host_header = strdup(hh);
            tt->host_header_len = strlen(hh);
            tt->health =
                tg_health_target(u->health, (struct sockaddr *)&tt->addr, tt->addrlen, host);
            u->ntargets++;
        }
        free(target);
        free(id);
    }
    for (size_t i = 0; i < u->ntargets; i++)
        if (u->targets[i].weight > 0)
            u->total_weight += (uint32_t)u->targets[i].weight;
}

int tg_upstreams_build(lua_State *L, int upstreams, int targets, tg_target_resolve_fn resolve,
                       tg_upstream_t **out, size_t *n, char *err, size_t errlen)
{
    TG_UNUSED(err);
    TG_UNUSED(errlen);
    int top = lua_gettop(L);
    size_t nup = lua_objlen(L, upstreams);
    tg_upstream_t *ups = calloc(nup + 1, sizeof(tg_upstream_t));
    int map = group_targets(L, targets);
    for (size_t i = 1; i <= nup; i++) {
        lua_rawgeti(L, upstreams, (int)i);
        int r = lua_gettop(L);
        tg_upstream_t *u = &ups[i - 1];
        u->id = dupf(L, r, "id");
        if (!u->id)
            u->id = strdup("");
        u->name = dupf(L, r, "name");
        if (!u->name)
            u->name = strdup("");
        u->ws_id = dupf(L, r, "ws_id");
        char *alg = dupf(L, r, "algorithm");
        u->algorithm = !alg                                   ? TG_LB_ROUND_ROBIN
                       : !strcmp(alg, "consistent-hashing")  ? TG_LB_CONSISTENT_HASHING
                       : !strcmp(alg, "least-connections")   ? TG_LB_LEAST_CONNECTIONS
                       : !strcmp(alg, "latency")             ? TG_LB_LATENCY
                                                             : TG_LB_ROUND_ROBIN;
        free(alg);
        hash_src(L, r, "hash_on", "hash_on_header", "hash_on_query_arg", "hash_on_uri_capture",
                 &u->hash_on);
        hash_src(L, r, "hash_fallback", "hash_fallback_header", "hash_fallback_query_arg",
                 "hash_fallback_uri_capture", &u->hash_fallback);
        u->cookie_path = dupf(L, r, "hash_on_cookie_path");
        lua_getfield(L, r, "slots");
        u->slots = lua_type(L, -1) == LUA_TNUMBER ? (uint32_t)lua_tointeger(L, -1) : 10000;
        lua_pop(L, 1);
        if (u->slots < 10)
            u->slots = 10;
        u->host_header = dupf(L, r, "host_header");

        tg_healthchecks_t hc;
        lua_getfield(L, r, "healthchecks");
        tg_healthchecks_from_lua(L, -1, &hc);
        lua_pop(L, 1);
        hc.host_header = u->host_header ? strdup(u->host_header) : NULL;
        uint64_t fp = tg_health_fingerprint(L, r, FINGERPRINT_SKIP);
        u->health = tg_health_acquire(u->id, u->name, fp, &hc);
        u->health_used = tg_healthchecks_used(tg_health_checks(u->health));

        lua_getfield(L, map, u->id);
        int list = lua_type(L, -1) == LUA_TTABLE ? lua_gettop(L) : 0;
        build_targets(L, targets, list, u, resolve);
        lua_settop(L, r);
        build_wheel(u);
        if (u->algorithm == TG_LB_CONSISTENT_HASHING)
            build_ring(u);
        lua_pop(L, 1);
    }
    lua_settop(L, top);
    *out = ups;
    *n = nup;
    return 0;
}

void tg_upstreams_free(tg_upstream_t *ups, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        tg_upstream_t *u = &ups[i];
        for (size_t j = 0; j < u->ntargets; j++) {
            tg_target_t *t = &u->targets[j];
            free(t->name);
            free(t->id);
            free(t->target);
            free(t->host);
            free(t->host_header);
        }
        free(u->targets);
        for (size_t j = 0; j < u->ndns_names; j++)
            tg_dns_name_release(u->dns_names[j]);
        free(u->dns_names);
        free(u->wheel);
        free(u->ring);
        free(u->id);
        free(u->name);
        free(u->ws_id);
        free(u->hash_on.name);
        free(u->hash_fallback.name);
        free(u->cookie_path);
        free(u->host_header);
        for (int w = 0; w < TG_MAX_WORKERS; w++) {
            if (u->per_worker[w]) {
                free(u->per_worker[w]->conns);
                free(u->per_worker[w]->ewma);
                free(u->per_worker[w]);
            }
        }
        tg_health_release(u->health);
    }
    free(ups);
}

tg_upstream_t *tg_upstream_find(tg_upstream_t *ups, size_t n, const char *host, const char *ws_id)
{
    for (size_t i = 0; i < n; i++)
        if (!strcasecmp(ups[i].name, host) &&
            (!ups[i].ws_id || !ws_id || !strcmp(ups[i].ws_id, ws_id)))
            return &ups[i];
    return NULL;
}

/* ------------------------------------------------------------- picking -- */

static tg_lb_worker_t *worker_state(tg_upstream_t *u, int worker)
{
    tg_lb_worker_t *lw = u->per_worker[worker];
    if (TG_UNLIKELY(!lw)) {
        /* once per snapshot, upstream and worker */
        lw = calloc(1, sizeof(*lw));
        lw->conns = calloc(u->ntargets + 1, sizeof(uint32_t));
        lw->ewma = calloc(u->ntargets + 1, sizeof(double));
        u->per_worker[worker] = lw;
    }
    return lw;
}

static inline bool usable(const tg_upstream_t *u, size_t i, uint64_t tried)
{
    const tg_target_t *t = &u->targets[i];
    return t->weight > 0 && tg_health_ok(t->health) && !(i < 64 && (tried >> i) & 1);
}

static bool above_threshold(const tg_upstream_t *u)
{
    double th = tg_health_checks(u->health)->threshold;
    if (th <= 0 || !u->total_weight)
        return true;
    uint32_t ok = 0;
    for (size_t i = 0; i < u->ntargets; i++)
        if (u->targets[i].weight > 0 && tg_health_ok(u->targets[i].health))
            ok += (uint32_t)u->targets[i].weight;
    return (double)ok * 100.0 / (double)u->total_weight >= th;
}

static long pick_rr(tg_upstream_t *u, tg_lb_worker_t *lw, uint64_t tried)
{
    for (size_t k = 0; k < u->nwheel; k++) {
        uint32_t pos = (lw->rr + (uint32_t)k) % (uint32_t)u->nwheel;
        uint32_t i = u->wheel[pos];
        if (usable(u, i, tried)) {
            lw->rr = pos + 1;
            return i;
        }
    }
    return -1;
}

static long pick_hash(tg_upstream_t *u, uint64_t hash, uint64_t tried)
{
    uint32_t slot = (uint32_t)(hash % u->slots);
    uint32_t i = u->ring[slot];
    if (i != UINT32_MAX && usable(u, i, tried))
        return i;
    /* the slot's owner is out: the next best for this slot (rendezvous order) */
    long best = -1;
    double bs = -1;
    for (size_t j = 0; j < u->ntargets; j++) {
        if (!usable(u, j, tried))
            continue;
        double sc = hrw_score(slot, u->targets[j].seed, u->targets[j].weight);
        if (sc > bs) {
            bs = sc;
            best = (long)j;
        }
    }
    return best;
}

/* least-connections: fewest in flight per weight; latency: lowest measured
 * latency times load. Ties go round-robin. */
static long pick_scored(tg_upstream_t *u, tg_lb_worker_t *lw, uint64_t tried, bool latency)
{
    long best = -1;
    double bs = 0;
    size_t n = u->ntargets;
    uint32_t start = lw->rr++;
    for (size_t k = 0; k < n; k++) {
        size_t i = (start + k) % n;
        if (!usable(u, i, tried))
            continue;
        double sc = (double)(lw->conns[i] + 1) / (double)u->targets[i].weight;
        if (latency)
            sc *= lw->ewma[i] + 0.1;
        if (best < 0 || sc < bs) {
            bs = sc;
            best = (long)i;
        }
    }
    return best;
}

tg_target_t *tg_balancer_pick(tg_upstream_t *u, int worker, tg_lb_state_t *st)
{
    tg_lb_worker_t *lw = worker_state(u, worker);
    tg_balancer_done(u, worker, st);
    if (!u->total_weight || !above_threshold(u))
        return NULL;
    long i = -1;
    /* first among the targets not tried yet, then any healthy one */
    for (int pass = 0; pass < 2 && i < 0; pass++) {
        uint64_t tried = pass == 0 ? st->tried : 0;
        switch (u->algorithm) {
        case TG_LB_CONSISTENT_HASHING:
            i = pick_hash(u, st->hash, tried);
            break;
        case TG_LB_LEAST_CONNECTIONS:
            i = pick_scored(u, lw, tried, false);
            break;
        case TG_LB_LATENCY:
            i = pick_scored(u, lw, tried, true);
            break;
        default:
            i = pick_rr(u, lw, tried);
        }
        if (!st->tried)
            break;
    }
    if (i < 0)
        return NULL;
    if (i < 64)
        st->tried |= 1ULL << i;
    lw->conns[i]++;
    st->counted = (int)i + 1;
    return &u->targets[i];
}

void tg_balancer_done(tg_upstream_t *u, int worker, tg_lb_state_t *st)
{
    if (!st->counted)
        return;
    tg_lb_worker_t *lw = u->per_worker[worker];
    if (lw && lw->conns[st->counted - 1])
        lw->conns[st->counted - 1]--;
    st->counted = 0;
}

void tg_balancer_latency(tg_upstream_t *u, int worker, const tg_target_t *t, double ms)
{
    if (u->algorithm != TG_LB_LATENCY)
        return;
    tg_lb_worker_t *lw = worker_state(u, worker);
    size_t i = (size_t)(t - u->targets);
    if (i >= u->ntargets)
        return;
    lw->ewma[i] = lw->ewma[i] == 0 ? ms : lw->ewma[i] * 0.7 + ms * 0.3;
}

/* -------------------------------------------------------- health probes -- */

size_t tg_balancer_probe_set(tg_upstream_t *ups, size_t n, tg_health_probe_set_t **out)
{
    tg_health_probe_set_t *p = calloc(n + 1, sizeof(*p));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        tg_upstream_t *u = &ups[i];
        p[k].hu = u->health;
        p[k].targets = calloc(u->ntargets + 1, sizeof(tg_health_target_t *));
        for (size_t j = 0; j < u->ntargets; j++)
            if (u->targets[j].weight > 0)
                p[k].targets[p[k].ntargets++] = u->targets[j].health;
        k++;
    }
    *out = p;
    return k;
}

void tg_balancer_probe_set_free(tg_health_probe_set_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(p[i].targets);
    free(p);
}

/* ------------------------------------------------- tollgate.c.balancer -- */

static tg_upstream_t *find_by_id(tg_snapshot_t *s, const char *id)
{
    for (size_t i = 0; i < s->nupstreams; i++)
        if (!strcmp(s->upstreams[i].id, id))
            return &s->upstreams[i];
    return NULL;
}

static const char *health_name(const tg_upstream_t *u, const tg_target_t *t)
{
    if (!u->health_used || t->weight <= 0)
        return "HEALTHCHECKS_OFF";
    return tg_health_ok(t->health) ? "HEALTHY" : "UNHEALTHY";
}

/* health(upstream_id) -> { used = bool, healthy = bool, total = n, available = n,
 *   targets = { [target] = { host, port, weight, addresses = { { ip, port, weight, health } } } } }
 * or nil when the upstream is not in the running snapshot. */
static int l_health(lua_State *L)
{
    const char *id = luaL_checkstring(L, 1);
    tg_snapshot_t *s = tg_snapshot_current();
    tg_upstream_t *u = s ? find_by_id(s, id) : NULL;
    if (!u) {
        tg_snapshot_unref(s);
        lua_pushnil(L);
        return 1;
    }
    lua_newtable(L);
    lua_pushboolean(L, u->health_used);
    lua_setfield(L, -2, "used");
    lua_newtable(L);
    int tt_idx = lua_gettop(L);
    uint32_t avail = 0;
    for (size_t i = 0; i < u->ntargets; i++) {
        tg_target_t *t = &u->targets[i];
        bool ok = t->weight > 0 && tg_health_ok(t->health);
        if (ok)
            avail += (uint32_t)t->weight;
        /* one table per target row, its addresses (a hostname's several) in it */
        lua_getfield(L, tt_idx, t->target);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_newtable(L);
            lua_pushstring(L, t->host);
            lua_setfield(L, -2, "host");
            lua_pushinteger(L, t->port);
            lua_setfield(L, -2, "port");
            lua_pushinteger(L, 0);
            lua_setfield(L, -2, "weight");
            lua_pushboolean(L, 0);
            lua_setfield(L, -2, "available");
            lua_newtable(L);
            lua_setfield(L, -2, "addresses");
            lua_pushvalue(L, -1);
            lua_setfield(L, tt_idx, t->target);
        }
        int row = lua_gettop(L);
        lua_getfield(L, row, "weight");
        lua_Integer w = lua_tointeger(L, -1) + t->weight;
        lua_pop(L, 1);
        lua_pushinteger(L, w);
        lua_setfield(L, row, "weight");
        if (ok) {
            lua_pushboolean(L, 1);
            lua_setfield(L, row, "available");
        }
        lua_getfield(L, row, "addresses");
        lua_newtable(L);
        lua_pushstring(L, t->health->ip);
        lua_setfield(L, -2, "ip");
        lua_pushinteger(L, t->port);
        lua_setfield(L, -2, "port");
        lua_pushinteger(L, t->weight);
        lua_setfield(L, -2, "weight");
        lua_pushstring(L, health_name(u, t));
        lua_setfield(L, -2, "health");
        lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
        lua_settop(L, tt_idx);
    }
    lua_setfield(L, -2, "targets");
    lua_pushinteger(L, u->total_weight);
    lua_setfield(L, -2, "total");
    lua_pushinteger(L, avail);
    lua_setfield(L, -2, "available");
    double th = tg_health_checks(u->health)->threshold;
    lua_pushboolean(L, u->total_weight && (th <= 0 || avail * 100.0 / u->total_weight >= th));
    lua_setfield(L, -2, "healthy");
    tg_snapshot_unref(s);
    return 1;
}

/* set_health(upstream_id, target, address|nil, healthy) -> true | nil, err */
static int l_set_health(lua_State *L)
{
    const char *id = luaL_checkstring(L, 1);
    const char *target = luaL_checkstring(L, 2);
    const char *address = luaL_optstring(L, 3, NULL);
    bool healthy = lua_toboolean(L, 4);
    tg_snapshot_t *s = tg_snapshot_current();
    tg_upstream_t *u = s ? find_by_id(s, id) : NULL;
    int found = 0;
    for (size_t i = 0; u && i < u->ntargets; i++) {
        tg_target_t *t = &u->targets[i];
        if (strcmp(t->target, target) != 0)
            continue;
        if (address) {
            char ip[256];
            uint16_t port;
            split_target(address, ip, sizeof(ip), &port);
            if (strcmp(ip, t->health->ip) != 0 || port != t->port)
                continue;
        }
        tg_health_set(u->health, t->health, healthy);
        found++;
    }
    tg_snapshot_unref(s);
    if (!found) {
        lua_pushnil(L);
        lua_pushstring(L, u ? "target not found in the balancer" : "no balancer");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

int luaopen_tollgate_c_balancer(lua_State *L)
{
    static const luaL_Reg fns[] = {{"health", l_health}, {"set_health", l_set_health}, {NULL, NULL}};
    lua_newtable(L);
    luaL_register(L, NULL, fns);
    return 1;
}
