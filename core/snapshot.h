/* snapshot.h: the immutable, refcounted configuration the workers serve from.
 *
 * The control thread builds a snapshot from the validated declarative rows
 * (core/lua/tollgate/declarative.lua) and publishes it with one atomic store.
 * Each worker holds one reference to the snapshot it currently serves and
 * counts its own in-flight requests on it without atomics; it drops its
 * reference once it has moved on and its last request on the old snapshot
 * has finished. */
#ifndef TG_SNAPSHOT_H
#define TG_SNAPSHOT_H

#include "tg.h"
#include "router.h"

#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include <lua.h>

#define TG_MAX_WORKERS 64

typedef struct {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int weight;
    char *name; /* "host:port" for logs */
    /* an upstream's target (balancer.c) */
    char *id, *target, *host; /* the row's id, its `target` as configured, its host */
    uint16_t port;
    char *host_header; /* the Host sent to it: the upstream's host_header, else host[:port] */
    size_t host_header_len;
    uint64_t seed; /* hash of `target`: its consistent-hashing identity */
    bool srv_weight; /* weight is an SRV record's, not the target row's */
    struct tg_health_target_s *health;
} tg_target_t;

struct tg_upstream_s;

typedef struct tg_service_s {
    char *id, *name, *ws_id;
    int protocol; /* TG_PROTO_HTTP / TG_PROTO_HTTPS */
    char *host;   /* as configured (an upstream name or a hostname/IP) */
    struct tg_dns_name_s *dns; /* a hostname (not an upstream): dns.c's answers, else NULL */
    uint16_t port;
    char *path;   /* NULL when not set */
    size_t path_len;
    int retries;
    int connect_timeout, write_timeout, read_timeout; /* ms */
    char *host_header; /* Host sent upstream when !preserve_host ("host" or "host:port") */
    size_t host_header_len;
    tg_target_t *targets; /* the host when it is an address (ntargets 0 or 1) */
    size_t ntargets;
    char *resolve_error; /* set when the host could not be resolved */
    struct tg_upstream_s *upstream; /* the upstream its host names, or NULL (balancer.h) */
    struct tg_tls_upstream_s *tls; /* protocol https: TLS parameters (tls.c) */
} tg_service_t;

typedef struct tg_route_s {
    char *id, *name, *ws_id;
    tg_service_t *service; /* NULL: 503 "no Service found with those values" */
    bool strip_path, preserve_host, request_buffering, response_buffering;
    int https_redirect_status_code;
    int path_handling;
    int pos; /* 1-based position among the config's routes (the runloop's key) */
} tg_route_t;

typedef struct tg_snapshot_s {
    atomic_int refs;            /* one per worker holding it, plus the publisher's */
    uint64_t generation;
    char hash[33];
    tg_router_t *router;
    tg_route_t *routes;
    size_t nroutes;
    tg_service_t *services;
    size_t nservices;
    struct tg_upstream_s *upstreams; /* balancer.h */
    size_t nupstreams;
    size_t nroute_rows;  /* routes in the config, disabled services' included */
    char *lua_json;      /* tollgate.snapshot_json: what the workers' Lua needs */
    struct tg_tls_certs_s *tls_certs; /* certificates by SNI (tls.c); NULL: none */
    size_t lua_json_len;
    /* per-worker in-flight request counts: written only by their worker */
    struct {
        uint32_t inflight;
        bool retired;
        char pad[56];
    } per_worker[TG_MAX_WORKERS];
} tg_snapshot_t;

/* Builds a snapshot from the config table at `idx` on L's stack (the loader's
 * `config`). Returns 0, or TG_EINVAL with a message in err. The new snapshot
 * has one reference, owned by the caller. */
int tg_snapshot_build(lua_State *L, int idx, tg_snapshot_t **out, char *err, size_t errlen);

/* An empty snapshot (no routes): every request answers 404. */
tg_snapshot_t *tg_snapshot_empty(void);

void tg_snapshot_ref(tg_snapshot_t *s);
void tg_snapshot_unref(tg_snapshot_t *s);

/* Publishing: the control thread stores; workers load. */
void tg_snapshot_publish(tg_snapshot_t *s); /* takes ownership of one reference */
tg_snapshot_t *tg_snapshot_current(void);   /* a new reference, owned by the caller */
uint64_t tg_snapshot_generation(void);

#endif
