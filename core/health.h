/* health.h: target health, shared by every worker, and the health checks.
 *
 * One table, process-wide, keyed by upstream (its id and a fingerprint of its
 * row) and target address. A snapshot holds a reference to the health entry of
 * each of its upstreams; a new snapshot whose upstream row is unchanged finds
 * the same entry, so health survives reloads, while a changed upstream starts
 * afresh (as Kong recreates its balancer and healthchecker).
 *
 * Workers read a target's state with one relaxed atomic load and report
 * passive events (Kong's `healthchecks.passive`) from proxied traffic. Active
 * probes (`healthchecks.active`: tcp, http, https) run on the control
 * thread's event_base (tg_health_sync after each published snapshot). The
 * Admin API reads and overrides the states from the control thread. */
#ifndef TG_HEALTH_H
#define TG_HEALTH_H

#include "tg.h"

#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include <lua.h>

/* HTTP statuses 100..999 as a bit set */
typedef struct {
    uint8_t bits[125];
} tg_status_set_t;

static inline bool tg_status_in(const tg_status_set_t *s, int status)
{
    return status >= 0 && status < 1000 && (s->bits[status >> 3] & (1u << (status & 7)));
}

enum { TG_HC_TCP, TG_HC_HTTP, TG_HC_HTTPS };

/* Kong's `healthchecks` record, as the schema filled it. */
typedef struct {
    int active_type;
    double timeout; /* s */
    int concurrency;
    char *http_path, *https_sni;
    bool https_verify;
    char *headers; /* "Name: value\r\n"..., NULL when none */
    char *host_header; /* the upstream's host_header: Host of the probes (else the target's host) */
    double healthy_interval, unhealthy_interval; /* s, 0 = off */
    tg_status_set_t healthy_statuses, unhealthy_statuses;
    int healthy_successes, tcp_failures, timeouts, http_failures;
    /* passive */
    bool p_tcp; /* passive.type = tcp: HTTP statuses are not counted */
    tg_status_set_t p_healthy_statuses, p_unhealthy_statuses;
    int p_successes, p_tcp_failures, p_timeouts, p_http_failures;
    double threshold; /* % of weight that must be healthy, 0 = off */
} tg_healthchecks_t;

/* Reads the record at `idx` (the upstream's healthchecks table) into hc.
 * Strings in hc are allocated; tg_healthchecks_clear frees them. */
void tg_healthchecks_from_lua(lua_State *L, int idx, tg_healthchecks_t *hc);
void tg_healthchecks_clear(tg_healthchecks_t *hc);
/* Kong's is_upstream_using_healthcheck */
bool tg_healthchecks_used(const tg_healthchecks_t *hc);

typedef struct tg_health_target_s {
    struct tg_health_target_s *next;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char ip[64];
    uint16_t port;
    char *host; /* the target's host as configured (Host of active probes) */
    atomic_bool healthy;
    atomic_int dirty; /* some counter is non-zero */
    int successes, tcp_failures, timeouts, http_failures; /* under the upstream's lock */
    bool probing;     /* an active probe is in flight (control thread) */
} tg_health_target_t;

typedef struct tg_health_upstream_s tg_health_upstream_t;

/* The entry of upstream `id` whose row has `fingerprint`, created if none is
 * alive. Takes ownership of hc's strings. Returns a new reference. */
tg_health_upstream_t *tg_health_acquire(const char *id, const char *name, uint64_t fingerprint,
                                        tg_healthchecks_t *hc);
void tg_health_release(tg_health_upstream_t *hu);
const tg_healthchecks_t *tg_health_checks(const tg_health_upstream_t *hu);

/* The entry of one target address (created healthy if new). The pointer lives
 * as long as hu. */
tg_health_target_t *tg_health_target(tg_health_upstream_t *hu, const struct sockaddr *addr,
                                     socklen_t addrlen, const char *host);

static inline bool tg_health_ok(const tg_health_target_t *t)
{
    return atomic_load_explicit(&t->healthy, memory_order_relaxed);
}

enum { TG_HEV_SUCCESS, TG_HEV_TCP_FAILURE, TG_HEV_TIMEOUT, TG_HEV_HTTP_FAILURE };

/* Passive checks: an event of proxied traffic. `status` for an HTTP answer
 * (0 otherwise). Lock-free when there is nothing to count. */
void tg_health_passive(tg_health_upstream_t *hu, tg_health_target_t *t, int event, int status);

/* The Admin API's overrides (control thread). */
void tg_health_set(tg_health_upstream_t *hu, tg_health_target_t *t, bool healthy);

/* Active checks: the probe set is the upstreams of `s`'s targets list. Called on
 * the control thread after each publish; keeps the timers of an upstream that
 * is still there. `list` holds n (upstream, targets, ntargets) triples. */
typedef struct {
    tg_health_upstream_t *hu;
    tg_health_target_t **targets;
    size_t ntargets;
} tg_health_probe_set_t;
void tg_health_sync(struct event_base *base, const tg_health_probe_set_t *list, size_t n);
void tg_health_shutdown(void);

/* 64-bit FNV-1a over a canonical dump of the Lua value at idx (sorted keys),
 * skipping the keys named in `skip` (NULL-terminated): the row fingerprint. */
uint64_t tg_health_fingerprint(lua_State *L, int idx, const char *const *skip);

#endif
