/* bench_router: build time and lookup latency of the router on 1k / 10k / 100k routes.
 *
 * Routes and requests come from a fixed seed (xorshift64, seed 42), a mix modelled on a large
 * Kong install: 70% of routes on a plain host, 10% on a wildcard host, 20% without hosts;
 * prefix paths under /api/vN/<resource>, 10% regex paths with a named capture, some routes
 * with two paths, 30% with methods, 5% with a header. Requests are derived from random routes
 * (a concrete host for wildcards, a suffix after the prefix, the route's method and header)
 * plus 20% that match nothing (unknown host and path). Lookups run without the decision
 * cache, each one timed on its own (clock_gettime, ~20 ns of overhead included).
 *
 *   bench_router [sizes...]      default: 1000 10000 100000 */
#include "router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng = 42;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static const char *METHODS[] = {"GET", "POST", "PUT", "DELETE"};

typedef struct {
    char host[64], path[128], method[8], hval[16];
    bool has_host, has_hdr;
} req_t;

typedef struct {
    char *strs[8];
    const char *hosts[1], *paths[2], *methods[2];
    const char *hvals[1];
    tg_route_header_t hdr;
} rstore_t;

static char *dupf(const char *fmt, unsigned a, unsigned b)
{
    char buf[160];
    snprintf(buf, sizeof(buf), fmt, a, b);
    return strdup(buf);
}

static void gen_routes(size_t n, tg_route_def_t *defs, rstore_t *st)
{
    unsigned nhosts = (unsigned)(n / 8 + 1), nres = (unsigned)(n / 4 + 1);
    for (size_t i = 0; i < n; i++) {
        tg_route_def_t *d = &defs[i];
        rstore_t *s = &st[i];
        memset(d, 0, sizeof(*d));
        d->id = d->name = s->strs[0] = dupf("route-%u%.0u", (unsigned)i, 0);
        d->ws_id = "default";
        d->protocols = TG_PROTO_HTTP | TG_PROTO_HTTPS;
        d->position = (uint32_t)i;
        d->created_at = 1700000000 + rnd(1000);
        d->strip_path = true;
        d->data = d;
        unsigned hk = rnd(100);
        if (hk < 70) {
            s->hosts[0] = s->strs[1] = dupf("svc-%u.example.com%.0u", rnd(nhosts), 0);
            d->hosts = s->hosts;
            d->nhosts = 1;
        } else if (hk < 80) {
            s->hosts[0] = s->strs[1] = dupf("*.tenant-%u.example.com%.0u", rnd(nhosts / 4 + 1), 0);
            d->hosts = s->hosts;
            d->nhosts = 1;
        }
        unsigned v = 1 + rnd(3), res = rnd(nres);
        if (rnd(10) == 0) {
            s->paths[0] = s->strs[2] =
                dupf("~/api/v%u/res-%u/(?<id>\\d+)/items(/\\w+)?$", v, res);
            d->npaths = 1;
        } else {
            s->paths[0] = s->strs[2] = dupf("/api/v%u/res-%u", v, res);
            d->npaths = 1;
            if (rnd(5) == 0) {
                s->paths[1] = s->strs[3] = dupf("/legacy/v%u/res-%u", v, rnd(nres));
                d->npaths = 2;
            }
        }
        d->paths = s->paths;
        if (rnd(10) < 3) {
            s->methods[0] = METHODS[rnd(4)];
            d->methods = s->methods;
            d->nmethods = 1;
        }
        if (rnd(20) == 0) {
            s->hvals[0] = s->strs[4] = dupf("v%u%.0u", rnd(3), 0);
            s->hdr.name = "x-api-version";
            s->hdr.values = s->hvals;
            s->hdr.nvalues = 1;
            d->headers = &s->hdr;
            d->nheaders = 1;
        }
    }
}

static void gen_requests(const tg_route_def_t *defs, size_t n, req_t *rq, size_t nq)
{
    for (size_t i = 0; i < nq; i++) {
        req_t *q = &rq[i];
        memset(q, 0, sizeof(*q));
        if (rnd(5) == 0) { /* matches nothing */
            snprintf(q->host, sizeof(q->host), "unknown-%u.other.org", rnd(1000));
            snprintf(q->path, sizeof(q->path), "/nothing/here/%u", rnd(100000));
            strcpy(q->method, "GET");
            q->has_host = true;
            continue;
        }
        const tg_route_def_t *d = &defs[rnd((uint32_t)n)];
        if (d->nhosts) {
            const char *h = d->hosts[0];
            if (h[0] == '*')
                snprintf(q->host, sizeof(q->host), "app%u%s", rnd(10), h + 1);
            else
                snprintf(q->host, sizeof(q->host), "%s", h);
        } else {
            snprintf(q->host, sizeof(q->host), "any-%u.example.net", rnd(100));
        }
        q->has_host = true;
        const char *p = d->paths[rnd((uint32_t)d->npaths)];
        if (p[0] == '~') {
            char pre[96];
            const char *cut = strstr(p, "/(?<id>");
            snprintf(pre, sizeof(pre), "%.*s", (int)(cut - p - 1), p + 1);
            snprintf(q->path, sizeof(q->path), "%s/%u/items/x", pre, rnd(100000));
        } else {
            snprintf(q->path, sizeof(q->path), "%s/%u", p, rnd(100000));
        }
        snprintf(q->method, sizeof(q->method), "%s", d->nmethods ? d->methods[0] : METHODS[rnd(2)]);
        if (d->nheaders) {
            snprintf(q->hval, sizeof(q->hval), "%s", d->headers[0].values[0]);
            q->has_hdr = true;
        }
    }
}

static void run(size_t n)
{
    enum { NQ = 200000 };
    tg_route_def_t *defs = calloc(n, sizeof(*defs));
    rstore_t *st = calloc(n, sizeof(*st));
    req_t *rq = calloc(NQ, sizeof(*rq));
    double *lat = calloc(NQ, sizeof(double));
    if (!defs || !st || !rq || !lat) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    rng = 42;
    gen_routes(n, defs, st);
    gen_requests(defs, n, rq, NQ);

    tg_router_t *r = NULL;
    size_t bad;
    char err[256];
    double best_build = 1e18;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now_ns();
        if (tg_router_build(defs, n, &r, &bad, err, sizeof(err)) != 0) {
            fprintf(stderr, "build failed at %zu: %s\n", bad, err);
            exit(1);
        }
        double t = now_ns() - t0;
        if (t < best_build)
            best_build = t;
        if (rep < 2)
            tg_router_free(r);
    }

    size_t matched = 0;
    tg_http_header_t h = {"X-API-Version", 13, NULL, 0};
    double t_all0 = now_ns();
    for (size_t i = 0; i < NQ; i++) {
        req_t *q = &rq[i];
        h.value = q->hval;
        h.value_len = strlen(q->hval);
        tg_router_req_t req = {.method = q->method, .method_len = strlen(q->method),
                               .host = q->host, .host_len = strlen(q->host), .path = q->path,
                               .path_len = strlen(q->path), .protocol = TG_PROTO_HTTP,
                               .port = 8000, .headers = &h, .num_headers = q->has_hdr};
        tg_router_match_t m;
        double t0 = now_ns();
        int rc = tg_router_match(r, NULL, &req, &m);
        lat[i] = now_ns() - t0;
        matched += rc == 0;
    }
    double total = now_ns() - t_all0;
    qsort(lat, NQ, sizeof(double), cmp_double);
    printf("%7zu routes  build %8.1f ms  lookup median %6.3f us  p99 %6.3f us  mean %6.3f us"
           "  (%zu lookups, %.0f%% matched)\n",
           n, best_build / 1e6, lat[NQ / 2] / 1e3, lat[NQ * 99 / 100] / 1e3, total / NQ / 1e3,
           (size_t)NQ, 100.0 * (double)matched / NQ);
    tg_router_free(r);
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 8; k++)
            free(st[i].strs[k]);
    free(defs);
    free(st);
    free(rq);
    free(lat);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            run((size_t)strtoul(argv[i], NULL, 10));
    } else {
        run(1000);
        run(10000);
        run(100000);
    }
    return 0;
}
