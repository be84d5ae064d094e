/* snapshot.c: building, publishing and releasing configuration snapshots. */
#include "snapshot.h"
#include "balancer.h"
#include "log.h"
#include "lua_vm.h"
#include "tls.h"
#include "dns.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static pthread_mutex_t publish_lock = PTHREAD_MUTEX_INITIALIZER;
static tg_snapshot_t *current;
static uint64_t next_generation = 1;

/* ---- small helpers over the Lua rows ---- */

static char *dupfield(lua_State *L, int t, const char *k)
{
    char *r = NULL;
    lua_getfield(L, t, k);
    if (lua_type(L, -1) == LUA_TSTRING)
        r = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    return r;
}

static lua_Number numfield(lua_State *L, int t, const char *k, lua_Number dflt)
{
    lua_getfield(L, t, k);
    lua_Number r = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : dflt;
    lua_pop(L, 1);
    return r;
}

static bool boolfield(lua_State *L, int t, const char *k, bool dflt)
{
    lua_getfield(L, t, k);
    bool r = lua_type(L, -1) == LUA_TBOOLEAN ? lua_toboolean(L, -1) : dflt;
    lua_pop(L, 1);
    return r;
}

/* Id of the foreign key `k` ({id = "..."}) of the row at t, or NULL. */
static char *foreign_id(lua_State *L, int t, const char *k)
{
    char *r = NULL;
    lua_getfield(L, t, k);
    if (lua_type(L, -1) == LUA_TTABLE)
        r = dupfield(L, lua_gettop(L), "id");
    lua_pop(L, 1);
    return r;
}

/* An address literal into t (the service's host, an upstream's target). */
static int resolve_literal(const char *host, uint16_t port, tg_target_t *t)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", port);
    if (getaddrinfo(host, portstr, &hints, &res) != 0 || !res)
        return TG_ENOTFOUND;
    memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
    t->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static char *target_name(const char *host, uint16_t port)
{
    char name[300];
    snprintf(name, sizeof(name), "%s:%u", host, port);
    return strdup(name);
}

/* balancer.c's tg_target_resolve_fn: an address as is; a hostname through
 * dns.c (c-ares, never getaddrinfo's blocking lookup): every current address,
 * the name kept so that a change of its addresses rebuilds the balancer. */
static int resolve_target(const char *host, uint16_t port, tg_target_t *out, size_t max,
                          struct tg_dns_name_s **keep, char *err, size_t errlen)
{
    *keep = NULL;
    if (resolve_literal(host, port, &out[0]) == 0) {
        out[0].name = target_name(host, port);
        return 1;
    }
    int n = tg_dns_resolve_all(host, port, out, max, keep, err, errlen);
    for (int i = 0; i < n; i++)
        out[i].name = target_name(host, port);
    return n > 0 ? n : TG_ENOTFOUND;
}

/* The service's host when it is an address. */
static int resolve(const char *host, uint16_t port, tg_target_t *t, char *err, size_t errlen)
{
    if (resolve_literal(host, port, t) != 0) {
        snprintf(err, errlen, "not an address");
        return TG_ENOTFOUND;
    }
    t->name = target_name(host, port);
    if (!t->weight)
        t->weight = 100;
    return 0;
}

/* Fills the service's targets: the upstream of that name in its workspace, if
 * any (balancer.c), else the host itself, resolved here on the control thread. */
static void service_targets(tg_snapshot_t *snap, tg_service_t *svc)
{
    char err[256];
    svc->upstream = tg_upstream_find(snap->upstreams, snap->nupstreams, svc->host, svc->ws_id);
    if (svc->upstream)
        return;
    svc->targets = calloc(1, sizeof(tg_target_t));
    unsigned char ip[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, svc->host, ip) != 1 && inet_pton(AF_INET6, svc->host, ip) != 1) {
        /* a hostname: dns.c resolves it, the worker picks from its answers */
        svc->dns = tg_dns_name_get(svc->host);
        if (!svc->dns)
            svc->resolve_error = strdup("no resolver");
        return;
    }
    if (resolve(svc->host, svc->port, &svc->targets[0], err, sizeof(err)) == 0) {
        svc->ntargets = 1;
    } else {
        svc->resolve_error = strdup(err);
        tg_log(TG_LOG_ERR, "service %s: could not resolve %s: %s", svc->name ? svc->name : svc->id,
               svc->host, err);
    }
}

static void free_service(tg_service_t *s)
{
    free(s->id);
    free(s->name);
    free(s->ws_id);
    free(s->host);
    free(s->path);
    free(s->host_header);
    for (size_t i = 0; i < s->ntargets; i++)
        free(s->targets[i].name);
    free(s->targets);
    free(s->resolve_error);
    tg_tls_upstream_free(s->tls);
    tg_dns_name_release(s->dns);
}

static void free_route(tg_route_t *r)
{
    free(r->id);
    free(r->name);
    free(r->ws_id);
}

static void snapshot_free(tg_snapshot_t *s)
{
    if (s->router)
        tg_router_free(s->router);
    for (size_t i = 0; i < s->nroutes; i++)
        free_route(&s->routes[i]);
    for (size_t i = 0; i < s->nservices; i++)
        free_service(&s->services[i]);
    free(s->routes);
    free(s->services);
    tg_upstreams_free(s->upstreams, s->nupstreams);
    free(s->lua_json);
    tg_tls_certs_free(s->tls_certs);
    free(s);
}

/* Pushes the array config.entities[name] (or nil) and returns its index, 0 if absent. */
static int entity_list(lua_State *L, int entities, const char *name)
{
    lua_getfield(L, entities, name);
    if (lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
    }
    return lua_gettop(L);
}

int tg_snapshot_build(lua_State *L, int idx, tg_snapshot_t **out, char *err, size_t errlen)
{
    int top = lua_gettop(L);
    idx = idx < 0 ? top + idx + 1 : idx;
    tg_snapshot_t *s = calloc(1, sizeof(*s));
    tg_route_def_t *defs = NULL;
    size_t ndefs = 0;
    int rc = TG_EINVAL;

    atomic_init(&s->refs, 1);
    lua_getfield(L, idx, "hash");
    snprintf(s->hash, sizeof(s->hash), "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
    lua_pop(L, 1);

    lua_getfield(L, idx, "entities");
    if (lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
    }
    int entities = lua_gettop(L);
    int services = entity_list(L, entities, "services");
    int routes = entity_list(L, entities, "routes");
    int upstreams = entity_list(L, entities, "upstreams");
    int targets = entity_list(L, entities, "targets");
    int cas = entity_list(L, entities, "ca_certificates");
    int certs = entity_list(L, entities, "certificates");

    if (tg_upstreams_build(L, upstreams, targets, resolve_target, &s->upstreams, &s->nupstreams, err,
                           errlen) != 0)
        goto done;
    size_t nsvc = lua_objlen(L, services);
    s->services = calloc(nsvc + 1, sizeof(tg_service_t));
    for (size_t i = 1; i <= nsvc; i++) {
        lua_rawgeti(L, services, (int)i);
        int t = lua_gettop(L);
        if (!boolfield(L, t, "enabled", true)) { /* routes of a disabled service are left out */
            lua_pop(L, 1);
            continue;
        }
        tg_service_t *svc = &s->services[s->nservices++];
        svc->id = dupfield(L, t, "id");
        svc->name = dupfield(L, t, "name");
        svc->ws_id = dupfield(L, t, "ws_id");
        char *proto = dupfield(L, t, "protocol");
        svc->protocol = proto && !strcmp(proto, "https") ? TG_PROTO_HTTPS : TG_PROTO_HTTP;
        free(proto);
        svc->host = dupfield(L, t, "host");
        if (!svc->host)
            svc->host = strdup("");
        svc->port = (uint16_t)numfield(L, t, "port", 80);
        svc->path = dupfield(L, t, "path");
        svc->path_len = svc->path ? strlen(svc->path) : 0;
        svc->retries = (int)numfield(L, t, "retries", 5);
        svc->connect_timeout = (int)numfield(L, t, "connect_timeout", 60000);
        svc->write_timeout = (int)numfield(L, t, "write_timeout", 60000);
        svc->read_timeout = (int)numfield(L, t, "read_timeout", 60000);
        char hh[300];
        bool default_port = (svc->protocol == TG_PROTO_HTTP && svc->port == 80) ||
                            (svc->protocol == TG_PROTO_HTTPS && svc->port == 443);
        if (default_port)
            snprintf(hh, sizeof(hh), "%s", svc->host);
        else
            snprintf(hh, sizeof(hh), "%s:%u", svc->host, svc->port);
        svc->host_header = strdup(hh);
        svc->host_header_len = strlen(hh);
        service_targets(s, svc);
        if (svc->protocol == TG_PROTO_HTTPS) {
            char e[512];
            svc->tls = tg_tls_upstream_build(L, t, cas, certs, e, sizeof(e));
            if (!svc->tls) {
                snprintf(err, errlen, "service %s: %s", svc->name ? svc->name : svc->id, e);
                goto done;
            }
        }
        lua_pop(L, 1);
    }

    size_t nrt = lua_objlen(L, routes);
    s->routes = calloc(nrt + 1, sizeof(tg_route_t));
    defs = calloc(nrt + 1, sizeof(tg_route_def_t));
    for (size_t i = 1; i <= nrt; i++) {
        lua_rawgeti(L, routes, (int)i);
        int t = lua_gettop(L);
        char *sid = foreign_id(L, t, "service");
        tg_service_t *svc = NULL;
        bool disabled = false;
        if (sid) {
            for (size_t j = 0; j < s->nservices; j++)
                if (!strcmp(s->services[j].id, sid))
                    svc = &s->services[j];
            disabled = svc == NULL; /* its service exists but is disabled */
            free(sid);
        }
        if (disabled) {
            lua_pop(L, 1);
            continue;
        }
        tg_route_t *r = &s->routes[s->nroutes];
        tg_route_def_t *d = &defs[ndefs];
        r->pos = (int)i;
        r->id = dupfield(L, t, "id");
        r->name = dupfield(L, t, "name");
        r->ws_id = dupfield(L, t, "ws_id");
        r->service = svc;
        r->strip_path = boolfield(L, t, "strip_path", true);
        r->preserve_host = boolfield(L, t, "preserve_host", false);
        r->request_buffering = boolfield(L, t, "request_buffering", true);
        r->response_buffering = boolfield(L, t, "response_buffering", true);
        r->https_redirect_status_code = (int)numfield(L, t, "https_redirect_status_code", 426);
        char *ph = dupfield(L, t, "path_handling");
        r->path_handling = ph && !strcmp(ph, "v1") ? 1 : 0;
        free(ph);

        tg_router_def_from_lua(L, t, d);
        d->position = (uint32_t)ndefs;
        d->data = r;
        s->nroutes++;
        ndefs++;
        lua_pop(L, 1);
    }

    s->nroute_rows = nrt;
    if (tg_lua_require(L, "tollgate.snapshot_json") != 0) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        goto done;
    }
    lua_getfield(L, -1, "encode");
    lua_pushvalue(L, idx);
    if (tg_lua_pcall(L, 1, 2) != 0 || !lua_isstring(L, -2)) {
        snprintf(err, errlen, "could not encode the configuration for the workers: %s",
                 lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
        goto done;
    }
    size_t jl;
    const char *j = lua_tolstring(L, -2, &jl);
    s->lua_json = malloc(jl + 1);
    memcpy(s->lua_json, j, jl + 1);
    s->lua_json_len = jl;

    size_t bad = 0;
    rc = tg_router_build(defs, ndefs, &s->router, &bad, err, errlen);
    if (rc != 0) {
        char tmp[512];
        snprintf(tmp, sizeof(tmp), "route %s: %s", defs[bad].name ? defs[bad].name : defs[bad].id,
                 err);
        snprintf(err, errlen, "%s", tmp);
        goto done;
    }
    rc = tg_tls_certs_build(L, idx, &s->tls_certs, err, errlen);
done:
    for (size_t i = 0; i < ndefs; i++)
        tg_router_def_clear(&defs[i]);
    free(defs);
    lua_settop(L, top);
    if (rc != 0) {
        snapshot_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

tg_snapshot_t *tg_snapshot_empty(void)
{
    tg_snapshot_t *s = calloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    char err[128];
    size_t bad;
    if (tg_router_build(NULL, 0, &s->router, &bad, err, sizeof(err)) != 0)
        s->router = NULL;
    return s;
}

void tg_snapshot_ref(tg_snapshot_t *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void tg_snapshot_unref(tg_snapshot_t *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        snapshot_free(s);
}

void tg_snapshot_publish(tg_snapshot_t *s)
{
    pthread_mutex_lock(&publish_lock);
    tg_snapshot_t *old = current;
    s->generation = next_generation++;
    current = s;
    pthread_mutex_unlock(&publish_lock);
    tg_snapshot_unref(old);
}

tg_snapshot_t *tg_snapshot_current(void)
{
    pthread_mutex_lock(&publish_lock);
    tg_snapshot_t *s = current;
    if (s)
        tg_snapshot_ref(s);
    pthread_mutex_unlock(&publish_lock);
    return s;
}

uint64_t tg_snapshot_generation(void)
{
    pthread_mutex_lock(&publish_lock);
    uint64_t g = current ? current->generation : 0;
    pthread_mutex_unlock(&publish_lock);
    return g;
}
