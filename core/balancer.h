/* balancer.h: upstreams (Kong's ring-balancer) in the snapshot, and picking a
 * target for a request.
 *
 * Each upstream of the config becomes an immutable tg_upstream_t of the
 * snapshot: its targets (weight 0 kept, never picked), a round-robin wheel
 * (weights reduced by their gcd, interleaved), for consistent-hashing a table
 * of `slots` entries filled by weighted rendezvous hashing (a target added or
 * removed changes only the slots it wins or won), and a reference to the
 * upstream's entry in the shared health table (health.h). Balancer positions,
 * connection counts and latencies are per worker (as in Kong), allocated by
 * each worker on its first request through the upstream.
 *
 * Target addresses come from the `resolve` function given to the build, so
 * that the resolver can change without this file knowing. */
#ifndef TG_BALANCER_H
#define TG_BALANCER_H

#include "health.h"
#include "snapshot.h"

enum { TG_LB_ROUND_ROBIN, TG_LB_CONSISTENT_HASHING, TG_LB_LEAST_CONNECTIONS, TG_LB_LATENCY };

enum {
    TG_HASH_NONE,
    TG_HASH_CONSUMER,
    TG_HASH_IP,
    TG_HASH_HEADER,
    TG_HASH_COOKIE,
    TG_HASH_PATH,
    TG_HASH_QUERY_ARG,
    TG_HASH_URI_CAPTURE,
};

typedef struct {
    int kind;        /* TG_HASH_* */
    char *name;      /* header (lowercase), query arg, capture group or cookie name */
    size_t name_len;
} tg_hash_src_t;

typedef struct tg_lb_worker_s tg_lb_worker_t;

typedef struct tg_upstream_s {
    char *id, *name, *ws_id;
    int algorithm;
    tg_hash_src_t hash_on, hash_fallback;
    char *cookie_path;
    uint32_t slots;
    char *host_header; /* NULL unless set */
    tg_target_t *targets; /* every target, weight 0 included */
    size_t ntargets;
    uint32_t total_weight;
    uint32_t *wheel; /* round-robin order of target indices */
    size_t nwheel;
    uint32_t *ring;  /* consistent-hashing: slot -> target index (UINT32_MAX: none) */
    tg_health_upstream_t *health;
    bool health_used;
    struct tg_dns_name_s **dns_names; /* its hostname targets' names, followed by dns.c */
    size_t ndns_names;
    tg_lb_worker_t *per_worker[TG_MAX_WORKERS];
} tg_upstream_t;

/* Resolves host:port into up to `max` entries of `out` (addr/addrlen and
 * name; weight when an SRV record gives one, else 0): returns how many (>= 1)
 * or TG_E* with err. *keep is set to a DNS name the upstream holds on to (so
 * that it is followed at its TTL; released with tg_dns_name_release), or NULL. */
typedef int (*tg_target_resolve_fn)(const char *host, uint16_t port, tg_target_t *out, size_t max,
                                    struct tg_dns_name_s **keep, char *err, size_t errlen);

/* Builds every upstream of the config from the arrays at `upstreams` and
 * `targets` on L's stack. Targets that cannot be resolved are logged and left
 * out. Returns 0 (out and n set, owned by the caller) or TG_EINVAL with err. */
int tg_upstreams_build(lua_State *L, int upstreams, int targets, tg_target_resolve_fn resolve,
                       tg_upstream_t **out, size_t *n, char *err, size_t errlen);
void tg_upstreams_free(tg_upstream_t *u, size_t n);

/* The upstream a service's host names in its workspace, or NULL. */
tg_upstream_t *tg_upstream_find(tg_upstream_t *u, size_t n, const char *host, const char *ws_id);

/* What a request carries from one try to the next. */
typedef struct {
    uint64_t tried; /* bit i: target i was tried (the first 64) */
    uint64_t hash;
    int counted;    /* 1 + the target index whose connection count this request holds, 0: none */
    bool hashed;
} tg_lb_state_t;

/* Picks a healthy target, preferring those not tried yet; NULL when none is
 * healthy (503 "failure to get a peer from the ring-balancer"). Worker thread. */
tg_target_t *tg_balancer_pick(tg_upstream_t *u, int worker, tg_lb_state_t *st);
/* The request is done with its target (connection counts). */
void tg_balancer_done(tg_upstream_t *u, int worker, tg_lb_state_t *st);
/* The time from the request's upstream start to the response head. */
void tg_balancer_latency(tg_upstream_t *u, int worker, const tg_target_t *t, double ms);

uint64_t tg_balancer_hash(const void *p, size_t n);

/* The probe set of the snapshot's upstreams, for tg_health_sync (control
 * thread). `*out` is allocated; free it with tg_balancer_probe_set_free. */
size_t tg_balancer_probe_set(tg_upstream_t *u, size_t n, tg_health_probe_set_t **out);
void tg_balancer_probe_set_free(tg_health_probe_set_t *p, size_t n);

/* The Lua module tollgate.c.balancer (control thread: Admin API). */
int luaopen_tollgate_c_balancer(lua_State *L);

#endif
