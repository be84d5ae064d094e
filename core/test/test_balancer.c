/* test_balancer.c: the balancer's tables — the round-robin wheel, the
 * consistent-hashing slots (weights, consistency when targets come and go),
 * and the health the picks respect. */
#include <arpa/inet.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>

#include "balancer.h"
#include "test.h"

/* IP literals only: the tests build targets such as 10.0.0.1:80 */
static int resolve_ip(const char *host, uint16_t port, tg_target_t *t, size_t max,
                      struct tg_dns_name_s **keep, char *err, size_t errlen)
{
    (void)max;
    *keep = NULL;
    struct sockaddr_in *a = (struct sockaddr_in *)&t->addr;
    memset(a, 0, sizeof(*a));
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) {
        snprintf(err, errlen, "not an IPv4 address");
        return TG_EINVAL;
    }
    t->addrlen = sizeof(*a);
    char name[300];
    snprintf(name, sizeof(name), "%s:%u", host, port);
    t->name = strdup(name);
    return 1;
}

/* Builds the upstream "u" of `algorithm` with targets "10.0.0.I:80" of the
 * given weights (n of them, `first` the first I). */
static tg_upstream_t *build(const char *algorithm, int first, const int *weights, size_t n,
                            size_t *nup)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    char chunk[8192];
    int len = snprintf(chunk, sizeof(chunk),
                       "local ups = {{ id = 'u1', name = 'u', algorithm = '%s', slots = 1000,"
                       " hash_on = 'header', hash_on_header = 'x' }} local ts = {",
                       algorithm);
    for (size_t i = 0; i < n; i++)
        len += snprintf(chunk + len, sizeof(chunk) - (size_t)len,
                        "{ id = 't%zu', upstream = { id = 'u1' }, target = '10.0.0.%zu:80',"
                        " weight = %d },",
                        i, (size_t)first + i, weights[i]);
    snprintf(chunk + len, sizeof(chunk) - (size_t)len, "} return ups, ts");
    tg_upstream_t *ups = NULL;
    char err[256];
    if (luaL_dostring(L, chunk) == 0)
        tg_upstreams_build(L, 1, 2, resolve_ip, &ups, nup, err, sizeof(err));
    lua_close(L);
    return ups;
}

static int pick_port_octet(tg_upstream_t *u, uint64_t hash)
{
    tg_lb_state_t st = {.hash = hash, .hashed = true};
    tg_target_t *t = tg_balancer_pick(u, 0, &st);
    tg_balancer_done(u, 0, &st);
    if (!t)
        return -1;
    return ((unsigned char *)&((struct sockaddr_in *)&t->addr)->sin_addr)[3];
}

TEST(balancer_round_robin_follows_weights)
{
    static const int w[] = {100, 200, 0, 300};
    size_t n;
    tg_upstream_t *u = build("round-robin", 1, w, 4, &n);
    ASSERT(u != NULL);
    int count[8] = {0};
    for (int i = 0; i < 600; i++)
        count[pick_port_octet(u, 0)]++;
    ASSERT_EQ(count[1], 100);
    ASSERT_EQ(count[2], 200);
    ASSERT_EQ(count[3], 0);
    ASSERT_EQ(count[4], 300);
    /* interleaved: never the heaviest target three times in a row */
    int run = 0, worst = 0;
    for (int i = 0; i < 60; i++) {
        run = pick_port_octet(u, 0) == 4 ? run + 1 : 0;
        worst = run > worst ? run : worst;
    }
    ASSERT(worst <= 2);
    tg_upstreams_free(u, n);
}

TEST(balancer_hashing_weights_and_consistency)
{
    static const int w3[] = {100, 100, 300};
    static const int w4[] = {100, 100, 300, 100};
    size_t n3, n4;
    tg_upstream_t *u3 = build("consistent-hashing", 1, w3, 3, &n3);
    tg_upstream_t *u4 = build("consistent-hashing", 1, w4, 4, &n4);
    ASSERT(u3 && u4);
    int count[8] = {0}, moved = 0;
    for (uint64_t k = 0; k < 20000; k++) {
        uint64_t h = tg_balancer_hash(&k, sizeof(k));
        int a = pick_port_octet(u3, h), b = pick_port_octet(u4, h);
        count[a]++;
        if (a != b) {
            moved++;
            ASSERT_EQ(b, 4); /* only to the target added */
        }
    }
    /* shares 1/5, 1/5, 3/5 within 2.5 points */
    ASSERT(count[1] > 3500 && count[1] < 4500);
    ASSERT(count[2] > 3500 && count[2] < 4500);
    ASSERT(count[3] > 11500 && count[3] < 12500);
    /* the new target takes about 100/600 of the keys */
    ASSERT(moved > 2800 && moved < 3900);
    tg_upstreams_free(u3, n3);
    tg_upstreams_free(u4, n4);
}

TEST(balancer_hashing_skips_unhealthy_targets_only)
{
    static const int w[] = {100, 100, 100};
    size_t n;
    tg_upstream_t *u = build("consistent-hashing", 21, w, 3, &n);
    ASSERT(u != NULL);
    int before[2000];
    for (uint64_t k = 0; k < 2000; k++)
        before[k] = pick_port_octet(u, tg_balancer_hash(&k, sizeof(k)));
    tg_health_set(u->health, u->targets[0].health, false);
    int down = ((unsigned char *)&((struct sockaddr_in *)&u->targets[0].addr)->sin_addr)[3];
    for (uint64_t k = 0; k < 2000; k++) {
        int now = pick_port_octet(u, tg_balancer_hash(&k, sizeof(k)));
        ASSERT(now != down);
        if (before[k] != down)
            ASSERT_EQ(now, before[k]);
    }
    tg_health_set(u->health, u->targets[1].health, false);
    tg_health_set(u->health, u->targets[2].health, false);
    ASSERT_EQ(pick_port_octet(u, 42), -1);
    tg_upstreams_free(u, n);
}

TEST(balancer_least_connections_counts_requests_in_flight)
{
    static const int w[] = {100, 100};
    size_t n;
    tg_upstream_t *u = build("least-connections", 1, w, 2, &n);
    ASSERT(u != NULL);
    tg_lb_state_t busy = {0};
    tg_target_t *held = tg_balancer_pick(u, 0, &busy); /* kept in flight */
    ASSERT(held != NULL);
    for (int i = 0; i < 10; i++) {
        tg_lb_state_t st = {0};
        tg_target_t *t = tg_balancer_pick(u, 0, &st);
        ASSERT(t != held);
        tg_balancer_done(u, 0, &st);
    }
    tg_balancer_done(u, 0, &busy);
    tg_upstreams_free(u, n);
}
