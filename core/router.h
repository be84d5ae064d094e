/* router.h: Kong's HTTP router (router_flavor traditional_compatible, Kong 3.10), compiled.
 *
 * Matching, as Kong's ATC translation of traditional routes does it:
 *   - hosts: exact (`example.com`), leftmost wildcard (`*.example.com`, any number of labels
 *     in front), rightmost wildcard (`example.*`); a route host with a port (`a.com:8000`)
 *     requires that port, taken from the Host header or else the listener's port; a route
 *     host without port matches any port; case-insensitive.
 *   - paths: prefix (plain string prefix, not segment-bound), or `~regex` (PCRE2, anchored at
 *     the start of the normalised path, JIT, match limit). The request path must already be
 *     normalised with tg_uri_normalize.
 *   - methods: exact. headers: every configured header must have one request value equal
 *     (case-insensitive) to one of the route's values, or matching a `~*` value (a
 *     case-insensitive regex, searched unanchored). snis: only checked for https requests.
 *   - protocols are NOT a routing criterion (Kong matches the route, then answers the
 *     route's https_redirect_status_code); tg_router_match_t.protocol_ok says whether the
 *     request's protocol is among the route's.
 * Priority (Kong's 64-bit priority from kong/router/transform.lua get_priority, compared as
 * fields): number of criteria categories set (methods, hosts, headers, snis, paths), then
 * "all hosts plain" (no wildcard) over others, then header count, then regex path over
 * prefix path, then regex_priority (regex paths only), then prefix length (prefix paths
 * only). A route with several paths is ranked per path group, as Kong splits it. Ties,
 * which Kong settles by route id, are settled here by created_at (older first), then
 * position in the config, then the path's index in the route.
 *
 * tollgate: departures from Kong 3.10 (whose traditional_compatible router runs Rust regexes
 * through ATC):
 *   - regex paths and `~*` header values are PCRE2 (JIT, match limit 100000, depth 10000; a
 *     regex that hits a limit does not match), so lookarounds and backreferences work;
 *   - a `~*` header regex is compiled caseless as written; Kong lower-cases the pattern
 *     itself, which turns `\D`, `\W`, `\S` into `\d`, `\w`, `\s`;
 *   - a negative regex_priority ranks below 0 among regexes; Kong's unsigned shift lets it
 *     spill into the higher priority bits;
 *   - equal priorities are settled by created_at, then config position, not by route id.
 *
 * The router is immutable once built and may be shared by any number of threads. */
#ifndef TG_ROUTER_H
#define TG_ROUTER_H

#include "tg.h"
#include "http_parse.h" /* tg_http_header_t */

enum { TG_PROTO_HTTP = 1, TG_PROTO_HTTPS = 2, TG_PROTO_GRPC = 4, TG_PROTO_GRPCS = 8 };

typedef struct {
    const char *name;
    const char **values;
    size_t nvalues;
} tg_route_header_t;

typedef struct {
    const char *id, *name, *ws_id; /* NUL-terminated; name and ws_id may be NULL */
    const char **hosts;
    size_t nhosts;
    const char **paths; /* "~..." = regex */
    size_t npaths;
    const char **methods;
    size_t nmethods;
    const char **snis;
    size_t nsnis;
    const tg_route_header_t *headers;
    size_t nheaders;
    unsigned protocols; /* TG_PROTO_* bits; 0 = http|https */
    int regex_priority;
    int64_t created_at; /* seconds */
    uint32_t position;  /* order in the config (tie-breaker of last resort) */
    bool strip_path, preserve_host;
    int path_handling; /* 0 = v0, 1 = v1 (routed as v0 under traditional_compatible) */
    void *data;        /* opaque to the router, returned on match */
} tg_route_def_t;

typedef struct tg_router_s tg_router_t;

/* Builds a router; copies everything it needs from defs (defs may be freed after).
 * On a bad route returns TG_EINVAL, *bad = index of the route, err = Kong's message
 * (e.g. "invalid regex: '/a(' (PCRE returned: ...)"). TG_ENOMEM on allocation failure.
 * n == 0 builds an empty router (every lookup is TG_ENOTFOUND). */
int tg_router_build(const tg_route_def_t *defs, size_t n, tg_router_t **out, size_t *bad,
                    char *err, size_t errlen);
void tg_router_free(tg_router_t *r);
size_t tg_router_count(const tg_router_t *r);

typedef struct {
    const char *method;
    size_t method_len;
    const char *host; /* Host header or absolute-form authority; may carry ":port"; any case */
    size_t host_len;
    const char *path; /* ALREADY normalised with tg_uri_normalize (no query) */
    size_t path_len;
    const char *sni; /* NULL if none */
    size_t sni_len;
    unsigned protocol; /* TG_PROTO_HTTP or TG_PROTO_HTTPS */
    uint16_t port;     /* the listener's port, for a Host without port */
    const tg_http_header_t *headers;
    size_t num_headers;
} tg_router_req_t;

#define TG_ROUTER_MAX_CAPTURES 16
typedef struct {
    void *data;           /* the matched route's def->data */
    uint32_t route_index; /* index into the defs array given to build */
    const char *matched_path; /* the route's path that matched (prefix, or regex source with
                                 its '~'); NULL when the route has no paths */
    size_t matched_path_len;
    size_t prefix_len; /* length of the request path consumed by the match (the prefix length,
                          or the regex match end); 0 when the route has no paths */
    bool is_regex;     /* matched through a regex path */
    int ncaptures_regex; /* capture groups the matched regex has (0 for prefix matches) */
    int ncaptures; /* numbered captures 0..n-1 (0 = whole match), offsets into req->path;
                      start/end -1 if unset. 0 for prefix matches. */
    struct {
        int start, end;
        const char *name; /* NULL for unnamed */
    } captures[TG_ROUTER_MAX_CAPTURES];
    const char *matched_host; /* the route host that matched (as configured), or NULL */
    size_t matched_host_len;
    bool protocol_ok; /* the request's protocol is among the route's protocols */
} tg_router_match_t;

/* Per-worker cache of recent decisions (hits and misses); owned by one thread. Entries are
 * tagged with the router's build id, so a cache survives a router swap (stale entries miss). */
typedef struct tg_router_cache_s tg_router_cache_t;
tg_router_cache_t *tg_router_cache_new(size_t entries);
void tg_router_cache_free(tg_router_cache_t *c);

/* Finds the best route: 0 with *m filled, or TG_ENOTFOUND. Thread-safe on a shared router
 * (PCRE2 match data is per thread). cache may be NULL. */
int tg_router_match(const tg_router_t *r, tg_router_cache_t *cache, const tg_router_req_t *req,
                    tg_router_match_t *m);

/* The upstream path per Kong's v0 path handling (kong/router/utils.lua get_upstream_uri_v0):
 * `path` is the normalised request path given to tg_router_match, `m` its result,
 * svc_path the service's path (NULL or "" means "/"). With strip_path the matched prefix
 * (m->prefix_len) is removed. The result is escaped with tg_uri_escape_path into out.
 * Returns the length, or TG_ETOOLARGE. */
int tg_router_upstream_path(const tg_router_match_t *m, const char *path, size_t path_len,
                            const char *svc_path, size_t svc_path_len, bool strip_path,
                            char *out, size_t cap);

/* Workspace conflict check (seeds/001): finds a pair of routes in different workspaces
 * whose traffic overlaps (hosts x paths x methods, see router.c) and whose hosts make it a
 * conflict. Returns 0 if none, TG_ECONFLICT with *a < *b set and a message in err. */
int tg_router_find_conflict(const tg_route_def_t *defs, size_t n, size_t *a, size_t *b,
                            char *err, size_t errlen);
/* One candidate against a set: TG_ECONFLICT with *which = the first conflicting route. */
int tg_router_conflicts_with(const tg_route_def_t *candidate, const tg_route_def_t *defs,
                             size_t n, size_t *which);

/* Checks one route the way Kong's schema does (paths, hosts, headers, snis): 0, or
 * TG_EINVAL with Kong's message in err. tg_router_build runs this on every route. */
int tg_router_check_route(const tg_route_def_t *def, char *err, size_t errlen);

/* Reads the route row at stack index t of L (Kong's DAO shape: id, name, ws_id, hosts, paths,
 * methods, snis, headers = {name = {values}}, protocols = {"http", ...}, regex_priority,
 * created_at, strip_path, preserve_host, path_handling; ngx.null or absent = empty/default)
 * into *d, copying every string. position and data are left 0 for the caller. Free with
 * tg_router_def_clear. TG_EINVAL when the value at t is not a table. (router_lua.c) */
struct lua_State;
int tg_router_def_from_lua(struct lua_State *L, int t, tg_route_def_t *d);
void tg_router_def_clear(tg_route_def_t *d);

/* PCRE2 compile check of a regex path (without its '~'): 0, or TG_EINVAL with
 * "<PCRE2 message> at offset N" in err. */
int tg_router_regex_error(const char *pattern, size_t len, char *err, size_t errlen);

#endif
