/* test_router.c: Kong's traditional_compatible routing rules, table by table. */
#include "test.h"
#include "router.h"
#include "uri.h"

#include <stdlib.h>

/* ---- route and request fixtures ---- */

#define MAXV 4
typedef struct {
    const char *name;
    const char *hosts[MAXV], *paths[MAXV], *methods[MAXV], *snis[MAXV];
    const char *h1, *h1v[MAXV]; /* up to two headers */
    const char *h2, *h2v[MAXV];
    int regex_priority;
    int64_t created_at;
    unsigned protocols;
    const char *ws;
} rs_t;

typedef struct {
    tg_route_def_t *defs;
    tg_route_header_t *hdrs;
    size_t n;
} fixture_t;

static size_t count(const char *const *v)
{
    size_t n = 0;
    while (n < MAXV && v[n])
        n++;
    return n;
}

static fixture_t make_defs(const rs_t *rs, size_t n)
{
    fixture_t f = {calloc(n ? n : 1, sizeof(tg_route_def_t)), calloc(2 * n + 1, sizeof(tg_route_header_t)), n};
    for (size_t i = 0; i < n; i++) {
        tg_route_def_t *d = &f.defs[i];
        const rs_t *r = &rs[i];
        d->id = r->name;
        d->name = r->name;
        d->ws_id = r->ws ? r->ws : "default";
        d->hosts = (const char **)r->hosts;
        d->nhosts = count(r->hosts);
        d->paths = (const char **)r->paths;
        d->npaths = count(r->paths);
        d->methods = (const char **)r->methods;
        d->nmethods = count(r->methods);
        d->snis = (const char **)r->snis;
        d->nsnis = count(r->snis);
        d->protocols = r->protocols ? r->protocols : (TG_PROTO_HTTP | TG_PROTO_HTTPS);
        d->regex_priority = r->regex_priority;
        d->created_at = r->created_at;
        d->position = (uint32_t)i;
        d->strip_path = true;
        d->data = (void *)r->name;
        tg_route_header_t *h = &f.hdrs[2 * i];
        size_t nh = 0;
        if (r->h1) {
            h[nh].name = r->h1;
            h[nh].values = (const char **)r->h1v;
            h[nh++].nvalues = count(r->h1v);
        }
        if (r->h2) {
            h[nh].name = r->h2;
            h[nh].values = (const char **)r->h2v;
            h[nh++].nvalues = count(r->h2v);
        }
        d->headers = h;
        d->nheaders = nh;
    }
    return f;
}

static void free_defs(fixture_t *f)
{
    free(f->defs);
    free(f->hdrs);
}

static tg_router_t *build(const rs_t *rs, size_t n)
{
    fixture_t f = make_defs(rs, n);
    tg_router_t *r = NULL;
    size_t bad = 0;
    char err[256];
    int rc = tg_router_build(f.defs, n, &r, &bad, err, sizeof(err));
    if (rc)
        fprintf(stderr, "build failed: route %zu: %s\n", bad, err);
    free_defs(&f);
    return r;
}

typedef struct {
    const char *method, *host, *path, *sni;
    unsigned proto;
    uint16_t port;
    const char *hdrs[6]; /* "name: value" */
    const char *expect;  /* route name or NULL */
} rq_t;

/* Runs one request; returns the matched route's name or NULL. */
static const char *run(const tg_router_t *r, tg_router_cache_t *cache, const rq_t *q,
                       tg_router_match_t *m, char *npath)
{
    tg_http_header_t hs[6];
    size_t nh = 0;
    for (; nh < 6 && q->hdrs[nh]; nh++) {
        const char *c = strchr(q->hdrs[nh], ':');
        hs[nh].name = q->hdrs[nh];
        hs[nh].name_len = (size_t)(c - q->hdrs[nh]);
        hs[nh].value = c + 2;
        hs[nh].value_len = strlen(c + 2);
    }
    int pl = tg_uri_normalize(q->path, strlen(q->path), npath, 1024);
    if (pl < 0)
        return "(bad path)";
    tg_router_req_t req = {
        .method = q->method ? q->method : "GET",
        .method_len = strlen(q->method ? q->method : "GET"),
        .host = q->host,
        .host_len = q->host ? strlen(q->host) : 0,
        .path = npath,
        .path_len = (size_t)pl,
        .sni = q->sni,
        .sni_len = q->sni ? strlen(q->sni) : 0,
        .protocol = q->proto ? q->proto : TG_PROTO_HTTP,
        .port = q->port ? q->port : 8000,
        .headers = hs,
        .num_headers = nh,
    };
    if (tg_router_match(r, cache, &req, m) != 0)
        return NULL;
    return m->data;
}

static void run_table(const rs_t *rs, size_t nr, const rq_t *qs, size_t nq, const char *table)
{
    tg_router_t *r = build(rs, nr);
    if (!r) {
        tg_test_fail(__FILE__, __LINE__, "%s: build failed", table);
        return;
    }
    tg_router_cache_t *cache = tg_router_cache_new(64);
    for (int pass = 0; pass < 3; pass++) { /* no cache, cold cache, warm cache */
        for (size_t i = 0; i < nq; i++) {
            tg_router_match_t m;
            char np[1024];
            const char *got = run(r, pass ? cache : NULL, &qs[i], &m, np);
            bool ok = (!got && !qs[i].expect) ||
                      (got && qs[i].expect && strcmp(got, qs[i].expect) == 0);
            CHECK(ok, "%s row %zu (pass %d) %s %s%s: expected %s, got %s", table, i, pass,
                  qs[i].method ? qs[i].method : "GET", qs[i].host ? qs[i].host : "",
                  qs[i].path, qs[i].expect ? qs[i].expect : "(none)", got ? got : "(none)");
        }
    }
    tg_router_cache_free(cache);
    tg_router_free(r);
}

#define RUN(rs, qs, name) run_table(rs, TG_ARRAY_SIZE(rs), qs, TG_ARRAY_SIZE(qs), name)

/* ---- hosts ---- */

TEST(router_hosts)
{
    static const rs_t rs[] = {
        {.name = "exact", .hosts = {"example.com"}},
        {.name = "port", .hosts = {"ported.com:8443"}},
        {.name = "left", .hosts = {"*.wild.com"}},
        {.name = "right", .hosts = {"right.*"}},
        {.name = "upper", .hosts = {"UPPER.Example.ORG"}},
        {.name = "multi", .hosts = {"a.multi.com", "b.multi.com"}},
    };
    static const rq_t qs[] = {
        {.host = "example.com", .path = "/", .expect = "exact"},
        {.host = "EXAMPLE.com", .path = "/", .expect = "exact"},
        {.host = "example.com:1234", .path = "/", .expect = "exact"},
        {.host = "example.com.", .path = "/", .expect = NULL}, /* compared as written */
        {.host = "www.example.com", .path = "/", .expect = NULL},
        {.host = "ported.com:8443", .path = "/", .expect = "port"},
        {.host = "ported.com:8000", .path = "/", .expect = NULL},
        {.host = "ported.com", .port = 8443, .path = "/", .expect = "port"},
        {.host = "ported.com", .port = 8000, .path = "/", .expect = NULL},
        {.host = "a.wild.com", .path = "/", .expect = "left"},
        {.host = "a.b.wild.com", .path = "/", .expect = "left"},
        {.host = "wild.com", .path = "/", .expect = NULL},
        {.host = "right.io", .path = "/", .expect = "right"},
        {.host = "right.co.uk:99", .path = "/", .expect = "right"},
        {.host = "notright.io", .path = "/", .expect = NULL},
        {.host = "upper.example.org", .path = "/", .expect = "upper"},
        {.host = "b.multi.com", .path = "/", .expect = "multi"},
        {.host = NULL, .path = "/", .expect = NULL},
    };
    RUN(rs, qs, "hosts");
}

TEST(router_host_matched_is_reported)
{
    static const rs_t rs[] = {{.name = "multi", .hosts = {"a.com", "*.b.com"}, .paths = {"/x"}}};
    tg_router_t *r = build(rs, 1);
    ASSERT(r);
    tg_router_match_t m;
    char np[1024];
    rq_t q = {.host = "z.b.com", .path = "/x/y"};
    ASSERT_STREQ(run(r, NULL, &q, &m, np), "multi");
    ASSERT_MEMEQ(m.matched_host, m.matched_host_len, "*.b.com");
    ASSERT_MEMEQ(m.matched_path, m.matched_path_len, "/x");
    ASSERT_EQ(m.prefix_len, 2);
    ASSERT_EQ(m.is_regex, 0);
    ASSERT_EQ(m.ncaptures, 0);
    ASSERT_EQ(m.route_index, 0);
    tg_router_free(r);
}

/* ---- priority ---- */

TEST(router_priority_criteria_count)
{
    static const rs_t rs[] = {
        {.name = "path", .paths = {"/foo"}},
        {.name = "path+method", .paths = {"/foo"}, .methods = {"GET"}},
        /* more criteria beat a longer prefix and a plain host */
        {.name = "host", .hosts = {"h.com"}, .paths = {"/foo/bar/baz"}},
        {.name = "host+method+hdr", .hosts = {"*.h.com"}, .paths = {"/"}, .methods = {"GET"},
         .h1 = "x-v", .h1v = {"1"}},
    };
    static const rq_t qs[] = {
        {.method = "GET", .path = "/foo", .expect = "path+method"},
        {.method = "POST", .path = "/foo", .expect = "path"},
        {.method = "GET", .host = "h.com", .path = "/foo/bar/baz", .expect = "host"},
        {.method = "GET", .host = "a.h.com", .path = "/foo/bar/baz", .hdrs = {"X-V: 1"},
         .expect = "host+method+hdr"},
        {.method = "GET", .host = "a.h.com", .path = "/foo", .expect = "path+method"},
    };
    RUN(rs, qs, "criteria");
}

TEST(router_priority_plain_host_over_wildcard)
{
    static const rs_t rs[] = {
        {.name = "wild-long", .hosts = {"*.ex.com"}, .paths = {"/a/very/long/prefix"}},
        {.name = "plain-short", .hosts = {"api.ex.com"}, .paths = {"/"}},
        {.name = "mixed", .hosts = {"mixed.ex.com", "*.mixed.com"}, .paths = {"/"}},
        {.name = "wild-mixed", .hosts = {"*.ex.com"}, .paths = {"/b/c"}},
    };
    static const rq_t qs[] = {
        {.host = "api.ex.com", .path = "/a/very/long/prefix/x", .expect = "plain-short"},
        {.host = "web.ex.com", .path = "/a/very/long/prefix/x", .expect = "wild-long"},
        /* a route with any wildcard host is not "plain": the longer prefix decides */
        {.host = "mixed.ex.com", .path = "/b/c", .expect = "wild-mixed"},
        {.host = "mixed.ex.com", .path = "/b", .expect = "mixed"},
    };
    RUN(rs, qs, "plain-host");
}

TEST(router_priority_header_count_then_regex)
{
    static const rs_t rs[] = {
        {.name = "one-hdr", .paths = {"/p"}, .h1 = "x-a", .h1v = {"1"}},
        {.name = "two-hdr", .paths = {"/p"}, .h1 = "x-a", .h1v = {"1"}, .h2 = "x-b", .h2v = {"2"}},
        /* header count outranks regex over prefix */
        {.name = "hdr-prefix", .paths = {"/q"}, .h1 = "x-a", .h1v = {"1"}},
        {.name = "method-regex", .paths = {"~/q"}, .methods = {"GET"}},
    };
    static const rq_t qs[] = {
        {.path = "/p", .hdrs = {"x-a: 1", "x-b: 2"}, .expect = "two-hdr"},
        {.path = "/p", .hdrs = {"x-a: 1", "x-b: 3"}, .expect = "one-hdr"},
        {.path = "/p", .hdrs = {"x-b: 2"}, .expect = NULL},
        {.path = "/q", .hdrs = {"x-a: 1"}, .expect = "hdr-prefix"},
        {.path = "/q", .expect = "method-regex"},
    };
    RUN(rs, qs, "header-count");
}

TEST(router_priority_regex_over_prefix_and_regex_priority)
{
    static const rs_t rs[] = {
        {.name = "prefix-long", .paths = {"/users/profile/settings"}},
        {.name = "regex", .paths = {"~/users/\\w+"}},
        {.name = "regex-prio", .paths = {"~/users/p\\w+"}, .regex_priority = 5},
        {.name = "regex-neg", .paths = {"~/users/x"}, .regex_priority = -1},
        {.name = "prefix-x", .paths = {"/users/x"}},
    };
    static const rq_t qs[] = {
        {.path = "/users/profile/settings", .expect = "regex-prio"},
        {.path = "/users/bob", .expect = "regex"},
        /* regex_priority only orders regexes; a negative one still beats any prefix */
        {.path = "/users/x", .expect = "regex"},
        {.path = "/users/-", .expect = NULL},
        {.path = "/other", .expect = NULL},
    };
    RUN(rs, qs, "regex");
    static const rs_t rs2[] = {
        {.name = "neg", .paths = {"~/a"}, .regex_priority = -5},
        {.name = "zero", .paths = {"~/a"}, .regex_priority = 0},
    };
    static const rq_t qs2[] = {{.path = "/a", .expect = "zero"}};
    RUN(rs2, qs2, "regex-neg");
}

TEST(router_priority_longest_prefix_and_ties)
{
    static const rs_t rs[] = {
        {.name = "root", .paths = {"/"}},
        {.name = "foo", .paths = {"/foo"}},
        {.name = "foobar", .paths = {"/foo/bar"}},
        {.name = "newer", .paths = {"/t"}, .created_at = 200},
        {.name = "older", .paths = {"/t"}, .created_at = 100},
        {.name = "first", .paths = {"/u"}, .created_at = 100},
        {.name = "second", .paths = {"/u"}, .created_at = 100},
    };
    static const rq_t qs[] = {
        {.path = "/", .expect = "root"},
        {.path = "/fo", .expect = "root"},
        {.path = "/foo", .expect = "foo"},
        {.path = "/foobar", .expect = "foo"}, /* a prefix is a string prefix */
        {.path = "/foo/bar/baz", .expect = "foobar"},
        {.path = "/foo/ba", .expect = "foo"},
        {.path = "/t", .expect = "older"},
        {.path = "/u", .expect = "first"},
    };
    RUN(rs, qs, "longest-prefix");
}

TEST(router_priority_split_by_path_group)
{
    /* Kong ranks each path group of a route on its own */
    static const rs_t rs[] = {
        {.name = "A", .paths = {"/a", "/abc/def"}},
        {.name = "B", .paths = {"/abc"}},
        {.name = "C", .paths = {"/zz", "~/re/\\d+"}, .regex_priority = 1},
        {.name = "D", .paths = {"~/re/1"}},
    };
    static const rq_t qs[] = {
        {.path = "/abc/def/x", .expect = "A"},
        {.path = "/abc/x", .expect = "B"},
        {.path = "/a", .expect = "A"},
        {.path = "/re/1", .expect = "C"},
        {.path = "/zz", .expect = "C"},
    };
    RUN(rs, qs, "split");
}

/* ---- methods, headers, snis, protocols ---- */

TEST(router_methods_headers_snis)
{
    static const rs_t rs[] = {
        {.name = "get-post", .paths = {"/m"}, .methods = {"GET", "POST"}},
        {.name = "hdr", .paths = {"/h"}, .h1 = "X-Version", .h1v = {"V1", "v2"}},
        {.name = "hdr-re", .paths = {"/h"}, .h1 = "x-version", .h1v = {"~*^beta-\\d+$"},
         .created_at = 1},
        {.name = "sni", .paths = {"/s"}, .snis = {"secure.com"}},
        {.name = "sni-wild", .paths = {"/s"}, .snis = {"*.wild.com"}, .created_at = 1},
        {.name = "https-only", .paths = {"/p"}, .protocols = TG_PROTO_HTTPS},
    };
    static const rq_t qs[] = {
        {.method = "GET", .path = "/m", .expect = "get-post"},
        {.method = "POST", .path = "/m", .expect = "get-post"},
        {.method = "PUT", .path = "/m", .expect = NULL},
        {.method = "get", .path = "/m", .expect = NULL},
        {.path = "/h", .hdrs = {"x-version: v1"}, .expect = "hdr"},
        {.path = "/h", .hdrs = {"X-VERSION: V2"}, .expect = "hdr"},
        {.path = "/h", .hdrs = {"x-version: v3"}, .expect = NULL},
        {.path = "/h", .hdrs = {"x-version: v3", "x-version: v2"}, .expect = "hdr"},
        {.path = "/h", .hdrs = {"x-version: BETA-42"}, .expect = "hdr-re"},
        {.path = "/h", .hdrs = {"x-version: beta-42x"}, .expect = NULL},
        {.path = "/h", .expect = NULL},
        {.path = "/s", .proto = TG_PROTO_HTTPS, .sni = "secure.com", .expect = "sni"},
        {.path = "/s", .proto = TG_PROTO_HTTPS, .sni = "a.wild.com", .expect = "sni-wild"},
        {.path = "/s", .proto = TG_PROTO_HTTPS, .sni = "other.com", .expect = NULL},
        {.path = "/s", .proto = TG_PROTO_HTTPS, .expect = NULL},
        /* snis are not considered for plain http */
        {.path = "/s", .proto = TG_PROTO_HTTP, .expect = "sni"},
        /* protocols do not route: the route matches, protocol_ok tells the proxy */
        {.path = "/p", .proto = TG_PROTO_HTTP, .expect = "https-only"},
    };
    RUN(rs, qs, "methods-headers-snis");

    tg_router_t *r = build(rs, TG_ARRAY_SIZE(rs));
    ASSERT(r);
    tg_router_match_t m;
    char np[1024];
    rq_t q = {.path = "/p", .proto = TG_PROTO_HTTP};
    ASSERT_STREQ(run(r, NULL, &q, &m, np), "https-only");
    ASSERT_EQ(m.protocol_ok, 0);
    q.proto = TG_PROTO_HTTPS;
    ASSERT_STREQ(run(r, NULL, &q, &m, np), "https-only");
    ASSERT_EQ(m.protocol_ok, 1);
    tg_router_free(r);
}

/* ---- regex captures ---- */

TEST(router_regex_captures)
{
    static const rs_t rs[] = {
        {.name = "cap", .paths = {"~/users/(?<id>\\d+)/(\\w+)(/x)?"}},
    };
    tg_router_t *r = build(rs, 1);
    ASSERT(r);
    tg_router_match_t m;
    char np[1024];
    rq_t q = {.path = "/users/42/posts/rest"};
    ASSERT_STREQ(run(r, NULL, &q, &m, np), "cap");
    ASSERT_EQ(m.is_regex, 1);
    ASSERT_EQ(m.ncaptures_regex, 3);
    ASSERT_EQ(m.ncaptures, 4);
    ASSERT_EQ(m.captures[0].start, 0);
    ASSERT_EQ(m.captures[0].end, 15); /* "/users/42/posts" */
    ASSERT_EQ(m.prefix_len, 15);
    ASSERT_MEMEQ(np + m.captures[1].start, m.captures[1].end - m.captures[1].start, "42");
    ASSERT_STREQ(m.captures[1].name, "id");
    ASSERT_MEMEQ(np + m.captures[2].start, m.captures[2].end - m.captures[2].start, "posts");
    ASSERT(m.captures[2].name == NULL);
    ASSERT_EQ(m.captures[3].start, -1);
    ASSERT_EQ(m.captures[3].end, -1);
    ASSERT_MEMEQ(m.matched_path, m.matched_path_len, "~/users/(?<id>\\d+)/(\\w+)(/x)?");
    /* anchored at the start of the path */
    rq_t q2 = {.path = "/v1/users/42/posts"};
    ASSERT(run(r, NULL, &q2, &m, np) == NULL);
    tg_router_free(r);
}

TEST(router_regex_sees_normalized_path)
{
    static const rs_t rs[] = {{.name = "re", .paths = {"~/a b/(?<x>.+)$"}}};
    static const rq_t qs[] = {
        {.path = "/a%20b/c", .expect = "re"},
        {.path = "/x/../a%20b/c", .expect = "re"},
        {.path = "/a%2fb/c", .expect = NULL},
    };
    RUN(rs, qs, "regex-normalized");
}

TEST(router_regex_literal_prefix_index)
{
    /* regexes are filed under the literal text they start with; optional characters,
     * alternations and inline options must not hide a match */
    static const rs_t rs[] = {
        {.name = "opt", .paths = {"~/ab?c"}},
        {.name = "alt", .paths = {"~/left|/right"}},
        {.name = "brace", .paths = {"~/x{0,1}y"}},
        {.name = "star", .paths = {"~/qq*z"}},
        {.name = "caseless", .paths = {"~/(?i)CaSe"}},
        {.name = "plus", .paths = {"~/p+w"}},
    };
    static const rq_t qs[] = {
        {.path = "/ac", .expect = "opt"},
        {.path = "/abc", .expect = "opt"},
        {.path = "/right", .expect = "alt"},
        {.path = "/left", .expect = "alt"},
        {.path = "/y", .expect = "brace"},
        {.path = "/xy", .expect = "brace"},
        {.path = "/qz", .expect = "star"},
        {.path = "/case", .expect = "caseless"},
        {.path = "/ppw", .expect = "plus"},
        {.path = "/w", .expect = NULL},
    };
    RUN(rs, qs, "regex-literal");
}

/* ---- cache ---- */

TEST(router_cache_keys_on_headers_and_host)
{
    static const rs_t rs[] = {
        {.name = "v1", .paths = {"/c"}, .h1 = "x-v", .h1v = {"1"}},
        {.name = "plain", .paths = {"/c"}},
        {.name = "host", .hosts = {"h.com"}, .paths = {"/c"}},
    };
    tg_router_t *r = build(rs, TG_ARRAY_SIZE(rs));
    ASSERT(r);
    tg_router_cache_t *c = tg_router_cache_new(8);
    tg_router_match_t m;
    char np[1024];
    for (int i = 0; i < 3; i++) {
        rq_t a = {.path = "/c", .hdrs = {"X-V: 1"}};
        rq_t b = {.path = "/c"};
        rq_t h = {.path = "/c", .host = "h.com"};
        rq_t n = {.path = "/nothing"};
        ASSERT_STREQ(run(r, c, &a, &m, np), "v1");
        ASSERT_STREQ(run(r, c, &b, &m, np), "plain");
        ASSERT_STREQ(run(r, c, &h, &m, np), "host");
        ASSERT(run(r, c, &n, &m, np) == NULL);
    }
    /* a new router with the same cache: stale entries never answer */
    static const rs_t rs2[] = {{.name = "other", .paths = {"/c"}}};
    tg_router_t *r2 = build(rs2, 1);
    ASSERT(r2);
    rq_t b = {.path = "/c"};
    ASSERT_STREQ(run(r2, c, &b, &m, np), "other");
    tg_router_free(r2);
    tg_router_cache_free(c);
    tg_router_free(r);
}

TEST(router_empty)
{
    tg_router_t *r = NULL;
    size_t bad;
    char err[64];
    ASSERT_EQ(tg_router_build(NULL, 0, &r, &bad, err, sizeof(err)), 0);
    ASSERT(r);
    tg_router_match_t m;
    char np[1024];
    rq_t q = {.path = "/"};
    ASSERT(run(r, NULL, &q, &m, np) == NULL);
    ASSERT_EQ(tg_router_count(r), 0);
    tg_router_free(r);
}

/* ---- validation messages (Kong's schema) ---- */

TEST(router_validation_messages)
{
    static const struct {
        rs_t r;
        const char *msg;
    } T[] = {
        {{.name = "a", .paths = {"foo"}}, "should start with: / (fixed path) or ~/ (regex path)"},
        {{.name = "a", .paths = {"/foo//bar"}}, "must not have empty segments"},
        {{.name = "a", .paths = {"/foo/../bar"}},
         "non-normalized path, consider use '/bar' instead"},
        {{.name = "a", .paths = {"/foo%2fbar"}},
         "non-normalized path, consider use '/foo%2Fbar' instead"},
        {{.name = "a", .paths = {"/%7Efoo"}}, "non-normalized path, consider use '/~foo' instead"},
        {{.name = "a", .paths = {"/some%2words"}}, "invalid url-encoded value: '%2w'"},
        {{.name = "a", .paths = {"/some%0Xwords"}}, "invalid url-encoded value: '%0X'"},
        {{.name = "a", .paths = {"/some%"}}, "invalid url-encoded value: '%'"},
        {{.name = "a", .paths = {"~/users/(foo/profile"}},
         "invalid regex: '/users/(foo/profile' (PCRE returned: pcre2_compile() failed: missing "
         "closing parenthesis in \"/users/(foo/profile\")"},
        {{.name = "a", .hosts = {"*.example.*"}},
         "invalid wildcard: must have at most one wildcard"},
        {{.name = "a", .hosts = {"ex*ample.com"}},
         "invalid wildcard: must be placed at leftmost or rightmost label"},
        {{.name = "a", .hosts = {"exa mple.com"}}, "invalid hostname: exa mple.com"},
        {{.name = "a", .hosts = {"example.com:99999"}}, "invalid port number"},
        {{.name = "a", .paths = {"/"}, .h1 = "Host", .h1v = {"x"}},
         "cannot contain 'host' header, which must be specified in the 'hosts' attribute"},
        {{.name = "a", .paths = {"/"}, .snis = {"x.com"}, .protocols = TG_PROTO_HTTP},
         "'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or "
         "'tls_passthrough'"},
        {{.name = "ok", .paths = {"/foo%2Fbar", "~/x(?<a>y)", "/"}, .hosts = {"*.a.com", "b.*",
                                                                               "c.com:80"}},
         NULL},
    };
    for (size_t i = 0; i < TG_ARRAY_SIZE(T); i++) {
        fixture_t f = make_defs(&T[i].r, 1);
        char err[512] = "";
        int rc = tg_router_check_route(&f.defs[0], err, sizeof(err));
        if (T[i].msg)
            CHECK(rc == TG_EINVAL && strcmp(err, T[i].msg) == 0, "row %zu: got %d '%s'", i, rc,
                  err);
        else
            CHECK(rc == 0, "row %zu: unexpected '%s'", i, err);
        /* build refuses the same route, naming its index */
        rs_t two[2] = {{.name = "fine", .paths = {"/fine"}}, T[i].r};
        fixture_t g = make_defs(two, 2);
        tg_router_t *r = NULL;
        size_t bad = 99;
        char berr[512] = "";
        int brc = tg_router_build(g.defs, 2, &r, &bad, berr, sizeof(berr));
        if (T[i].msg)
            CHECK(brc == TG_EINVAL && bad == 1 && strcmp(berr, T[i].msg) == 0,
                  "row %zu build: %d %zu '%s'", i, brc, bad, berr);
        else
            CHECK(brc == 0 && r, "row %zu build failed: %s", i, berr);
        tg_router_free(r);
        free_defs(&g);
        free_defs(&f);
    }
    char err[256];
    ASSERT_EQ(tg_router_regex_error("/ok/(\\d+)", 9, err, sizeof(err)), 0);
    ASSERT_EQ(tg_router_regex_error("/bad(", 5, err, sizeof(err)), TG_EINVAL);
    ASSERT_STREQ(err, "missing closing parenthesis at offset 5");
}

/* ---- upstream path: Kong's path_handling v0 table (spec/fixtures) ---- */

TEST(router_upstream_path_v0_table)
{
    static const struct {
        const char *svc, *route; /* route NULL: matched by host */
        int strip;               /* 0, 1, 2 = both */
        const char *req, *up;
    } T[] = {
        {"/", "/", 2, "/", "/"},
        {"/", "/", 2, "/route", "/route"},
        {"/", "/", 2, "/route/", "/route/"},
        {"/", "/", 2, "/routereq", "/routereq"},
        {"/", "/", 2, "/route/req", "/route/req"},
        {"/", "/route", 0, "/route", "/route"},
        {"/", "/route", 0, "/route/", "/route/"},
        {"/", "/route", 0, "/routereq", "/routereq"},
        {"/", "/route", 1, "/route", "/"},
        {"/", "/route", 1, "/route/", "/"},
        {"/", "/route", 1, "/routereq", "/req"},
        {"/", "/route/", 0, "/route/", "/route/"},
        {"/", "/route/", 0, "/route/req", "/route/req"},
        {"/", "/route/", 1, "/route/", "/"},
        {"/", "/route/", 1, "/route/req", "/req"},
        {"/srv", "/rou", 0, "/roureq", "/srv/roureq"},
        {"/srv", "/rou", 1, "/roureq", "/srv/req"},
        {"/srv/", "/rou", 0, "/rou", "/srv/rou"},
        {"/srv/", "/rou", 1, "/rou", "/srv"},
        {"/service", "/", 2, "/", "/service"},
        {"/service", "/", 2, "/route", "/service/route"},
        {"/service", "/", 2, "/route/", "/service/route/"},
        {"/service", "/", 2, "/routereq", "/service/routereq"},
        {"/service", "/", 2, "/route/req", "/service/route/req"},
        {"/service", "/route", 0, "/route", "/service/route"},
        {"/service", "/route", 0, "/route/", "/service/route/"},
        {"/service", "/route", 0, "/routereq", "/service/routereq"},
        {"/service", "/route", 1, "/route", "/service"},
        {"/service", "/route", 1, "/route/", "/service/"},
        {"/service", "/route", 1, "/routereq", "/service/req"},
        {"/service", "/route/", 0, "/route/", "/service/route/"},
        {"/service", "/route/", 0, "/route/req", "/service/route/req"},
        {"/service", "/route/", 1, "/route/", "/service/"},
        {"/service", "/route/", 1, "/route/req", "/service/req"},
        {"/service/", "/", 2, "/route/", "/service/route/"},
        {"/service/", "/", 2, "/", "/service/"},
        {"/service/", "/", 2, "/route", "/service/route"},
        {"/service/", "/", 2, "/routereq", "/service/routereq"},
        {"/service/", "/", 2, "/route/req", "/service/route/req"},
        {"/service/", "/route", 0, "/route", "/service/route"},
        {"/service/", "/route", 0, "/route/", "/service/route/"},
        {"/service/", "/route", 0, "/routereq", "/service/routereq"},
        {"/service/", "/route", 1, "/route", "/service"},
        {"/service/", "/route", 1, "/route/", "/service/"},
        {"/service/", "/route", 1, "/routereq", "/service/req"},
        {"/service/", "/route/", 0, "/route/", "/service/route/"},
        {"/service/", "/route/", 0, "/route/req", "/service/route/req"},
        {"/service/", "/route/", 1, "/route/", "/service/"},
        {"/service/", "/route/", 1, "/route/req", "/service/req"},
        {"/", NULL, 2, "/", "/"},
        {"/", NULL, 2, "/route", "/route"},
        {"/", NULL, 2, "/route/", "/route/"},
        {"/service", NULL, 2, "/", "/service"},
        {"/service", NULL, 2, "/route", "/service/route"},
        {"/service", NULL, 2, "/route/", "/service/route/"},
        {"/service/", NULL, 2, "/", "/service/"},
        {"/service/", NULL, 2, "/route", "/service/route"},
        {"/service/", NULL, 2, "/route/", "/service/route/"},
        {"/service", "/route", 1, "/route./req", "/service/req"},
        {"/service/", "/route", 1, "/route./req", "/service/req"},
        {"/service", "/route", 1, "/route%2E/req", "/service/req"},
        {"/service/", "/route", 1, "/route%2e/req", "/service/req"},
        {"/service", "/route", 1, "/route../req", "/service/req"},
        {"/service/", "/route", 1, "/route../req", "/service/req"},
        {"/service", "/route", 1, "/route%2E%2E/req", "/service/req"},
        {"/service/", "/route", 1, "/route%2e%2E/req", "/service/req"},
        {"/service", "/route", 0, "/route./req", "/service/route./req"},
        {"/service/", "/route", 0, "/route./req", "/service/route./req"},
        {"/service", "/route", 0, "/route%2E/req", "/service/route./req"},
        {"/service/", "/route", 0, "/route%2e/req", "/service/route./req"},
        {"/service", "/route", 0, "/route../req", "/service/route../req"},
        {"/service/", "/route", 0, "/route%2E%2E/req", "/service/route../req"},
        /* tollgate: re-escaping of the normalised path, as Kong's escape() */
        {"/s", "/r", 1, "/r/a%20b/%2F/%7e", "/s/a%20b/%2F/~"},
        {"/s", "/r", 0, "/r/caf%C3%A9", "/s/r/caf%C3%A9"},
        {NULL, "/r", 1, "/r/x", "/x"},
    };
    for (size_t i = 0; i < TG_ARRAY_SIZE(T); i++) {
        for (int strip = 0; strip < 2; strip++) {
            if (T[i].strip != 2 && T[i].strip != strip)
                continue;
            rs_t rs = {.name = "r"};
            if (T[i].route)
                rs.paths[0] = T[i].route;
            else
                rs.hosts[0] = "byhost.com";
            tg_router_t *r = build(&rs, 1);
            if (!r) {
                CHECK(0, "row %zu: build", i);
                continue;
            }
            rq_t q = {.path = T[i].req, .host = "byhost.com"};
            tg_router_match_t m;
            char np[1024], up[1024];
            const char *got = run(r, NULL, &q, &m, np);
            CHECK(got != NULL, "row %zu: no match", i);
            if (got) {
                int n = tg_router_upstream_path(&m, np, strlen(np), T[i].svc,
                                                T[i].svc ? strlen(T[i].svc) : 0, strip, up,
                                                sizeof(up));
                CHECK(n >= 0 && (size_t)n == strlen(T[i].up) && memcmp(up, T[i].up, n) == 0,
                      "row %zu strip=%d svc=%s route=%s req=%s: expected %s, got %.*s", i, strip,
                      T[i].svc, T[i].route ? T[i].route : "(host)", T[i].req, T[i].up,
                      n < 0 ? 0 : n, up);
            }
            tg_router_free(r);
        }
    }
}

TEST(router_upstream_path_regex_strip)
{
    static const rs_t rs[] = {{.name = "re", .paths = {"~/api/v(?<ver>\\d+)"}}};
    tg_router_t *r = build(rs, 1);
    ASSERT(r);
    rq_t q = {.path = "/api/v2/users"};
    tg_router_match_t m;
    char np[1024], up[64];
    ASSERT_STREQ(run(r, NULL, &q, &m, np), "re");
    int n = tg_router_upstream_path(&m, np, strlen(np), "/backend", 8, true, up, sizeof(up));
    ASSERT_MEMEQ(up, n, "/backend/users");
    n = tg_router_upstream_path(&m, np, strlen(np), "/backend", 8, false, up, sizeof(up));
    ASSERT_MEMEQ(up, n, "/backend/api/v2/users");
    char small[8];
    ASSERT_EQ(tg_router_upstream_path(&m, np, strlen(np), "/backend", 8, false, small,
                                      sizeof(small)),
              TG_ETOOLARGE);
    tg_router_free(r);
}

/* ---- workspace conflicts (seeds/001) ---- */

TEST(router_workspace_conflicts)
{
    static const struct {
        rs_t a, b;
        bool conflict;
    } T[] = {
        /* the other route has no host */
        {{.name = "a", .ws = "w1", .paths = {"/x"}},
         {.name = "b", .ws = "w2", .hosts = {"b.com"}, .paths = {"/x"}}, true},
        {{.name = "a", .ws = "w1", .hosts = {"a.com"}, .paths = {"/x/y"}},
         {.name = "b", .ws = "w2", .paths = {"/x"}}, true},
        /* b never takes a request made of a's values (a.com, /x), and b's carry no host */
        {{.name = "a", .ws = "w1", .hosts = {"a.com"}, .paths = {"/x"}},
         {.name = "b", .ws = "w2", .paths = {"/x/y"}}, false},
        /* both wildcards, equal / different */
        {{.name = "a", .ws = "w1", .hosts = {"*.ex.com"}},
         {.name = "b", .ws = "w2", .hosts = {"*.EX.com"}}, true},
        {{.name = "a", .ws = "w1", .hosts = {"*.ex.com"}},
         {.name = "b", .ws = "w2", .hosts = {"*.other.com"}}, false},
        {{.name = "a", .ws = "w1", .hosts = {"*.ex.com"}},
         {.name = "b", .ws = "w2", .hosts = {"api.*"}}, false},
        /* absolute hosts */
        {{.name = "a", .ws = "w1", .hosts = {"api.com"}, .paths = {"/"}},
         {.name = "b", .ws = "w2", .hosts = {"api.com"}, .paths = {"/v1"}}, true},
        {{.name = "a", .ws = "w1", .hosts = {"api.com"}},
         {.name = "b", .ws = "w2", .hosts = {"web.com"}}, false},
        {{.name = "a", .ws = "w1", .hosts = {"api.com:8000"}},
         {.name = "b", .ws = "w2", .hosts = {"api.com:9000"}}, false},
        {{.name = "a", .ws = "w1", .hosts = {"api.com:8000"}},
         {.name = "b", .ws = "w2", .hosts = {"api.com"}}, true},
        /* a wildcard capturing an absolute host of another workspace: not equal, proceed */
        {{.name = "a", .ws = "w1", .hosts = {"*.ex.com"}},
         {.name = "b", .ws = "w2", .hosts = {"api.ex.com"}}, false},
        /* same workspace never conflicts */
        {{.name = "a", .ws = "w1", .paths = {"/x"}}, {.name = "b", .ws = "w1", .paths = {"/x"}},
         false},
        /* paths: prefixes, regex vs prefix, regex vs regex */
        {{.name = "a", .ws = "w1", .hosts = {"h.com"}, .paths = {"/a"}},
         {.name = "b", .ws = "w2", .hosts = {"h.com"}, .paths = {"/b"}}, false},
        {{.name = "a", .ws = "w1", .hosts = {"h.com"}, .paths = {"~/users/\\d+"}},
         {.name = "b", .ws = "w2", .hosts = {"h.com"}, .paths = {"/users/42"}}, true},
        {{.name = "a", .ws = "w1", .hosts = {"h.com"}, .paths = {"~/users/\\d+"}},
         {.name = "b", .ws = "w2", .hosts = {"h.com"}, .paths = {"/users"}}, false},
        {{.name = "a", .ws = "w1", .hosts = {"h.com"}, .paths = {"~/example/(?<id>\\d+)"}},
         {.name = "b", .ws = "w2", .hosts = {"h.com"}, .paths = {"~/example/(?<id_2>\\d+)"}},
         true},
        {{.name = "a", .ws = "w1", .hosts = {"h.com"}, .paths = {"~/example/(?P<id>\\d+)"}},
         {.name = "b", .ws = "w2", .hosts = {"h.com"}, .paths = {"~/example/(?'x'\\d+)"}}, true},
        {{.name = "a", .ws = "w1", .hosts = {"h.com"}, .paths = {"~/example/\\d+"}},
         {.name = "b", .ws = "w2", .hosts = {"h.com"}, .paths = {"~/example/[0-9]+"}}, false},
        /* methods */
        {{.name = "a", .ws = "w1", .paths = {"/x"}, .methods = {"GET"}},
         {.name = "b", .ws = "w2", .paths = {"/x"}, .methods = {"POST"}}, false},
        {{.name = "a", .ws = "w1", .paths = {"/x"}, .methods = {"GET", "PUT"}},
         {.name = "b", .ws = "w2", .paths = {"/x"}, .methods = {"PUT"}}, true},
        {{.name = "a", .ws = "w1", .paths = {"/x"}},
         {.name = "b", .ws = "w2", .paths = {"/x"}, .methods = {"PUT"}}, true},
        /* a route without paths makes requests for "/": a hostless "/m" never takes them,
         * and its own requests carry no host */
        {{.name = "a", .ws = "w1", .paths = {"/m"}},
         {.name = "b", .ws = "w2", .hosts = {"ws-b.test"}}, false},
        {{.name = "a", .ws = "w1", .paths = {"/"}},
         {.name = "b", .ws = "w2", .hosts = {"ws-b.test"}}, true},
        {{.name = "a", .ws = "w1", .paths = {"~/(index)?$"}},
         {.name = "b", .ws = "w2", .hosts = {"ws-b.test"}}, true},
        {{.name = "a", .ws = "w1", .hosts = {"h.com"}},
         {.name = "b", .ws = "w2", .hosts = {"h.com"}, .paths = {"/m"}}, true},
    };
    for (size_t i = 0; i < TG_ARRAY_SIZE(T); i++) {
        rs_t pair[3] = {{.name = "z", .ws = "w1", .hosts = {"zzz.com"}, .paths = {"/zzz"}}, T[i].a,
                        T[i].b};
        fixture_t f = make_defs(pair, 3);
        size_t a = 9, b = 9;
        char err[512] = "";
        int rc = tg_router_find_conflict(f.defs, 3, &a, &b, err, sizeof(err));
        if (T[i].conflict) {
            CHECK(rc == TG_ECONFLICT && a == 1 && b == 2, "row %zu: expected conflict, got %d", i,
                  rc);
            CHECK(strstr(err, "API route collides with an existing API") &&
                      strstr(err, "'a'") && strstr(err, "'b'") && strstr(err, "w1") &&
                      strstr(err, "w2"),
                  "row %zu: message '%s'", i, err);
        } else {
            CHECK(rc == 0, "row %zu: unexpected conflict %zu/%zu: %s", i, a, b, err);
        }
        size_t which = 9;
        int rc2 = tg_router_conflicts_with(&f.defs[2], f.defs, 2, &which);
        CHECK((rc2 == TG_ECONFLICT) == T[i].conflict && (!T[i].conflict || which == 1),
              "row %zu: conflicts_with %d %zu", i, rc2, which);
        rc2 = tg_router_conflicts_with(&f.defs[1], f.defs + 2, 1, &which);
        CHECK((rc2 == TG_ECONFLICT) == T[i].conflict, "row %zu: conflicts_with reversed", i);
        free_defs(&f);
    }
}

/* ---- the index against a linear scan, on random routes ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

/* Kong's 64-bit priority (transform.lua), for routes whose regex_priority is >= 0. */
static uint64_t kong_priority(const tg_route_def_t *d, int path)
{
    uint64_t w = (d->nmethods > 0) + (d->nhosts > 0) + (d->nheaders > 0) + (d->npaths > 0) +
                 (d->nsnis > 0);
    bool plain = d->nhosts > 0;
    for (size_t i = 0; i < d->nhosts; i++)
        plain = plain && !strchr(d->hosts[i], '*');
    bool rx = path >= 0 && d->paths[path][0] == '~';
    uint64_t len = path >= 0 && !rx ? strlen(d->paths[path]) : 0;
    return w << 61 | (uint64_t)plain << 60 | (uint64_t)d->nheaders << 52 | (uint64_t)rx << 51 |
           (uint64_t)(rx ? d->regex_priority : 0) << 19 | len;
}

static bool naive_path_ok(const char *p, const char *path)
{
    if (p[0] != '~')
        return strncmp(path, p, strlen(p)) == 0;
    /* the random regexes are "~<literal>\d*": literal prefix then digits */
    size_t l = strlen(p + 1) - 3;
    return strncmp(path, p + 1, l) == 0;
}

static bool naive_host_ok(const char *h, const char *host)
{
    if (h[0] == '*') {
        size_t lh = strlen(h + 1), ln = strlen(host);
        return ln >= lh && strcmp(host + ln - lh, h + 1) == 0;
    }
    return strcmp(h, host) == 0;
}

TEST(router_index_agrees_with_linear_scan)
{
    enum { NR = 400, NQ = 4000 };
    static const char *hosts[] = {"a.com", "b.com", "*.a.com", "*.c.com", "x.a.com"};
    static const char *prefixes[] = {"/", "/api", "/api/v1", "/api/v1/users", "/apix", "/b",
                                     "/b/c", "/users"};
    static const char *methods[] = {"GET", "POST"};
    static char names[NR][16];
    static char rxpaths[NR][48];
    tg_route_def_t *defs = calloc(NR, sizeof(*defs));
    const char *(*hv)[2] = calloc(NR, sizeof(*hv));
    const char *(*pv)[2] = calloc(NR, sizeof(*pv));
    const char *(*mv)[1] = calloc(NR, sizeof(*mv));
    tg_route_header_t *hd = calloc(NR, sizeof(*hd));
    static const char *hdvals[] = {"on"};
    ASSERT(defs && hv && pv && mv && hd);
    for (int i = 0; i < NR; i++) {
        tg_route_def_t *d = &defs[i];
        snprintf(names[i], sizeof(names[i]), "r%d", i);
        d->id = d->name = names[i];
        d->data = names[i];
        d->position = (uint32_t)i;
        d->created_at = rnd(3);
        d->protocols = TG_PROTO_HTTP | TG_PROTO_HTTPS;
        d->nhosts = rnd(3) == 0 ? 0 : 1 + rnd(2);
        for (size_t k = 0; k < d->nhosts; k++)
            hv[i][k] = hosts[rnd(TG_ARRAY_SIZE(hosts))];
        if (d->nhosts == 2 && hv[i][0] == hv[i][1])
            d->nhosts = 1;
        d->hosts = hv[i];
        d->npaths = rnd(4) == 0 ? 0 : 1 + rnd(2);
        for (size_t k = 0; k < d->npaths; k++) {
            if (rnd(5) == 0) {
                snprintf(rxpaths[i], sizeof(rxpaths[i]), "~%s\\d*",
                         prefixes[rnd(TG_ARRAY_SIZE(prefixes))]);
                pv[i][k] = rxpaths[i];
            } else {
                pv[i][k] = prefixes[rnd(TG_ARRAY_SIZE(prefixes))];
            }
        }
        d->paths = pv[i];
        d->regex_priority = (int)rnd(3);
        if (rnd(3) == 0) {
            mv[i][0] = methods[rnd(2)];
            d->methods = mv[i];
            d->nmethods = 1;
        }
        if (rnd(6) == 0) {
            hd[i].name = "x-flag";
            hd[i].values = hdvals;
            hd[i].nvalues = 1;
            d->headers = &hd[i];
            d->nheaders = 1;
        }
    }
    tg_router_t *r = NULL;
    size_t bad;
    char err[256];
    ASSERT_EQ(tg_router_build(defs, NR, &r, &bad, err, sizeof(err)), 0);
    tg_router_cache_t *cache = tg_router_cache_new(256);
    static const char *qhosts[] = {"a.com", "b.com", "x.a.com", "y.a.com", "q.c.com", "none.org"};
    static const char *qpaths[] = {"/", "/api", "/api/v1/users/7", "/apix", "/api7", "/b/c/d",
                                   "/users", "/zzz", "/api/v12", "/b"};
    int mismatches = 0;
    for (int qi = 0; qi < NQ; qi++) {
        const char *host = qhosts[rnd(TG_ARRAY_SIZE(qhosts))];
        const char *path = qpaths[rnd(TG_ARRAY_SIZE(qpaths))];
        const char *method = methods[rnd(2)];
        bool flag = rnd(2);
        tg_http_header_t h = {"X-Flag", 6, "on", 2};
        /* linear scan */
        int best = -1, bestp = -2;
        uint64_t bprio = 0;
        for (int i = 0; i < NR; i++) {
            const tg_route_def_t *d = &defs[i];
            if (d->nmethods && strcmp(d->methods[0], method))
                continue;
            if (d->nheaders && !flag)
                continue;
            bool hok = !d->nhosts;
            for (size_t k = 0; k < d->nhosts; k++)
                hok = hok || naive_host_ok(d->hosts[k], host);
            if (!hok)
                continue;
            for (int p = d->npaths ? 0 : -1; p < (int)d->npaths; p++) {
                if (p >= 0 && !naive_path_ok(d->paths[p], path))
                    continue;
                uint64_t pr = kong_priority(d, p);
                bool better = best < 0 || pr > bprio ||
                              (pr == bprio && (d->created_at < defs[best].created_at ||
                                               (d->created_at == defs[best].created_at &&
                                                i < best)));
                if (better) {
                    best = i;
                    bestp = p;
                    bprio = pr;
                }
            }
        }
        tg_router_req_t req = {.method = method, .method_len = strlen(method), .host = host,
                               .host_len = strlen(host), .path = path, .path_len = strlen(path),
                               .protocol = TG_PROTO_HTTP, .port = 80, .headers = &h,
                               .num_headers = flag ? 1 : 0};
        tg_router_match_t m;
        int rc = tg_router_match(r, (qi & 1) ? cache : NULL, &req, &m);
        int got = rc == 0 ? atoi((const char *)m.data + 1) : -1;
        if (got != best) {
            if (mismatches++ < 5) {
                uint64_t gp = got >= 0 ? kong_priority(&defs[got], -1) : 0;
                CHECK(0, "%s %s%s flag=%d: index %d, linear %d (path %d) prio %llx/%llx", method,
                      host, path, flag, got, best, bestp, (unsigned long long)gp,
                      (unsigned long long)bprio);
            }
        }
    }
    CHECK(mismatches == 0, "%d mismatches of %d", mismatches, NQ);
    tg_router_cache_free(cache);
    tg_router_free(r);
    free(defs);
    free(hv);
    free(pv);
    free(mv);
    free(hd);
}

/* ---- the Lua module the config validator uses ---- */

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

int luaopen_tollgate_c_router(lua_State *L);

TEST(router_lua_module)
{
    lua_State *L = luaL_newstate();
    ASSERT(L);
    luaL_openlibs(L);
    lua_pushcfunction(L, luaopen_tollgate_c_router);
    lua_call(L, 0, 1);
    lua_setglobal(L, "R");
    static const char *script =
        "local out = {}\n"
        "local function add(...) local t = {} for i = 1, select('#', ...) do\n"
        "  t[#t+1] = tostring((select(i, ...))) end out[#out+1] = table.concat(t, '|') end\n"
        "add(R.normalize_path('/a/./b/../c%7e%2f'))\n"
        "add(R.regex_error('/ok/(\\\\d+)'))\n"
        "add(R.regex_error('/users/(foo/profile'))\n"
        "add(R.regex_error('/a)b'))\n"
        "add(R.validate({ { paths = { '/ok' } }, { paths = { '/x/../y' } } }))\n"
        "add(R.validate({ { hosts = { 'a.com' }, protocols = { 'http' }, paths = { '/' },\n"
        "                   headers = { ['x-a'] = { '~*^v\\\\d$' } } } }))\n"
        "add(R.find_conflict({ { ws_id = 'w1', name = 'a', paths = { '/x' } },\n"
        "                      { ws_id = 'w1', name = 'b', paths = { '/x' } },\n"
        "                      { ws_id = 'w2', name = 'c', hosts = { 'c.com' }, paths = { '/x/y' } } }))\n"
        "add(R.find_conflict({ { ws_id = 'w1', hosts = { '*.a.com' } },\n"
        "                      { ws_id = 'w2', hosts = { '*.b.com' } } }))\n"
        "return table.concat(out, '\\n')\n";
    if (luaL_dostring(L, script) != 0) {
        tg_test_fail(__FILE__, __LINE__, "lua: %s", lua_tostring(L, -1));
        lua_close(L);
        return;
    }
    const char *got = lua_tostring(L, -1);
    const char *want =
        "/a/c~%2F\n"
        "nil\n"
        "pcre2_compile() failed: missing closing parenthesis in \"/users/(foo/profile\"|"
        "missing closing parenthesis at offset 19\n"
        "pcre2_compile() failed: unmatched closing parenthesis in \"/a)b\" at \")b\"|"
        "unmatched closing parenthesis at offset 2\n"
        "2|non-normalized path, consider use '/y' instead|paths\n"
        "nil\n"
        "1|3|API route collides with an existing API: route 'c' (workspace 'w2') and route 'a' "
        "(workspace 'w1')\n"
        "nil";
    CHECK(got && strcmp(got, want) == 0, "got:\n%s\nwant:\n%s", got ? got : "(null)", want);
    lua_close(L);
}

/* ---- one router, several threads ---- */

#include <pthread.h>

typedef struct {
    const tg_router_t *r;
    int errors;
} thr_arg_t;

static void *thr_main(void *p)
{
    thr_arg_t *a = p;
    tg_router_cache_t *cache = tg_router_cache_new(16);
    char path[64];
    for (int i = 0; i < 20000; i++) {
        int id = i % 97;
        snprintf(path, sizeof(path), "/item/%d/detail", id);
        tg_router_req_t req = {.method = "GET", .method_len = 3, .path = path,
                               .path_len = strlen(path), .protocol = TG_PROTO_HTTP, .port = 80};
        tg_router_match_t m;
        if (tg_router_match(a->r, (i & 1) ? cache : NULL, &req, &m) != 0 || m.ncaptures != 2 ||
            m.captures[1].end - m.captures[1].start != (id < 10 ? 1 : 2) ||
            atoi(path + m.captures[1].start) != id)
            a->errors++;
    }
    tg_router_cache_free(cache);
    return NULL;
}

TEST(router_shared_between_threads)
{
    static const rs_t rs[] = {{.name = "item", .paths = {"~/item/(?<id>\\d+)/detail"}}};
    tg_router_t *r = build(rs, 1);
    ASSERT(r);
    pthread_t t[4];
    thr_arg_t args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thr_arg_t){r, 0};
        ASSERT_EQ(pthread_create(&t[i], NULL, thr_main, &args[i]), 0);
    }
    int errors = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        errors += args[i].errors;
    }
    ASSERT_EQ(errors, 0);
    tg_router_free(r);
}

/* ---- the conflict index against pairwise checks ---- */

TEST(router_find_conflict_agrees_with_pairwise)
{
    static const char *hosts[] = {"a.com", "b.com", "*.a.com", "*.b.com", "A.com:80", "c.*",
                                  "d.com", "e.com", "f.com", "g.com", "h.com", "i.com",
                                  "j.com", "k.com", "*.d.com", "l.com:8000", "l.com:9000"};
    static const char *paths[] = {"/", "/api", "/api/v1", "/apiv", "/b", "~/api/\\d+",
                                  "~/api/(?<x>\\d+)", "~/b|/c", "/api/7", "/c"};
    static const char *wss[] = {"w1", "w2", "w3"};
    enum { N = 40 };
    tg_route_def_t defs[N];
    const char *hv[N][2], *pv[N][2];
    char names[N][16];
    int with_conflict = 0;
    for (int round = 0; round < 300; round++) {
        memset(defs, 0, sizeof(defs));
        int n = 2 + (int)rnd(N / 2);
        for (int i = 0; i < n; i++) {
            tg_route_def_t *d = &defs[i];
            snprintf(names[i], sizeof(names[i]), "r%d", i);
            d->name = d->id = names[i];
            d->ws_id = wss[rnd(3)];
            /* mostly hosts and paths, so that many rounds have no conflict */
            d->nhosts = rnd(25) == 0 ? 0 : 1 + rnd(2);
            for (size_t k = 0; k < d->nhosts; k++)
                hv[i][k] = hosts[rnd(TG_ARRAY_SIZE(hosts))];
            d->hosts = hv[i];
            d->npaths = rnd(8) == 0 ? 0 : 1 + rnd(2);
            for (size_t k = 0; k < d->npaths; k++)
                pv[i][k] = paths[rnd(TG_ARRAY_SIZE(paths))];
            d->paths = pv[i];
        }
        size_t ea = 0, eb = 0;
        bool expect = false;
        for (int b = 1; b < n && !expect; b++)
            for (int a = 0; a < b && !expect; a++)
                if (tg_router_conflicts_with(&defs[b], &defs[a], 1, NULL) == TG_ECONFLICT) {
                    ea = (size_t)a;
                    eb = (size_t)b;
                    expect = true;
                }
        size_t ga = 99, gb = 99;
        char err[256];
        int rc = tg_router_find_conflict(defs, (size_t)n, &ga, &gb, err, sizeof(err));
        with_conflict += expect;
        CHECK(rc == (expect ? TG_ECONFLICT : 0) && (!expect || (ga == ea && gb == eb)),
              "round %d: pairwise %d (%zu,%zu), index %d (%zu,%zu)", round, expect, ea, eb, rc,
              ga, gb);
    }
    CHECK(with_conflict > 30 && with_conflict < 270, "only %d of 300 rounds had a conflict",
          with_conflict);
}

TEST(router_def_from_lua)
{
    lua_State *L = luaL_newstate();
    ASSERT(L);
    ASSERT_EQ(luaL_dostring(L, "return { id = 'i1', name = 'n1', ws_id = 'w', hosts = { 'a.com' },"
                               " paths = { '/p', '~/r' }, methods = { 'GET' }, snis = {},"
                               " headers = { ['x-a'] = { 'v1', 'v2' } },"
                               " protocols = { 'https' }, regex_priority = 3, created_at = 17,"
                               " strip_path = false, preserve_host = true, path_handling = 'v1' }"),
              0);
    tg_route_def_t d;
    ASSERT_EQ(tg_router_def_from_lua(L, -1, &d), 0);
    lua_close(L); /* every string was copied */
    ASSERT_STREQ(d.id, "i1");
    ASSERT_STREQ(d.name, "n1");
    ASSERT_STREQ(d.ws_id, "w");
    ASSERT_EQ(d.nhosts, 1);
    ASSERT_STREQ(d.hosts[0], "a.com");
    ASSERT_EQ(d.npaths, 2);
    ASSERT_STREQ(d.paths[1], "~/r");
    ASSERT_EQ(d.nmethods, 1);
    ASSERT_EQ(d.nsnis, 0);
    ASSERT_EQ(d.nheaders, 1);
    ASSERT_STREQ(d.headers[0].name, "x-a");
    ASSERT_EQ(d.headers[0].nvalues, 2);
    ASSERT_STREQ(d.headers[0].values[1], "v2");
    ASSERT_EQ(d.protocols, TG_PROTO_HTTPS);
    ASSERT_EQ(d.regex_priority, 3);
    ASSERT_EQ(d.created_at, 17);
    ASSERT_EQ(d.strip_path, 0);
    ASSERT_EQ(d.preserve_host, 1);
    ASSERT_EQ(d.path_handling, 1);
    tg_router_def_clear(&d);
    ASSERT(d.hosts == NULL);
}
