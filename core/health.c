/* health.c: the shared target health table, passive and active health checks. */
#include "health.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <lauxlib.h>

struct tg_health_upstream_s {
    tg_health_upstream_t *next; /* registry */
    atomic_int refs;
    char *id, *name;
    uint64_t fingerprint;
    tg_healthchecks_t hc;
    bool used;
    pthread_mutex_t lock; /* counters and the target list */
    tg_health_target_t *targets;
    /* active checks: control thread only */
    struct event *healthy_ev, *unhealthy_ev;
    tg_health_target_t **probe_targets;
    size_t nprobe_targets;
    size_t inflight;
    bool probing; /* in the current probe set */
    bool queued_healthy, queued_unhealthy;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static tg_health_upstream_t *registry;

/* ------------------------------------------------------------ the record -- */

static lua_Number num(lua_State *L, int t, const char *k, lua_Number dflt)
{
    lua_getfield(L, t, k);
    lua_Number r = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : dflt;
    lua_pop(L, 1);
    return r;
}

static char *str(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    char *r = lua_type(L, -1) == LUA_TSTRING ? strdup(lua_tostring(L, -1)) : NULL;
    lua_pop(L, 1);
    return r;
}

/* Pushes t[k] if it is a table (returns its index), else pushes an empty one. */
static int sub(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    if (lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
    }
    return lua_gettop(L);
}

static void statuses(lua_State *L, int t, const char *k, tg_status_set_t *s, const int *dflt,
                     size_t ndflt)
{
    memset(s, 0, sizeof(*s));
    lua_getfield(L, t, k);
    if (lua_type(L, -1) == LUA_TTABLE) {
        size_t n = lua_objlen(L, -1);
        for (size_t i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, (int)i);
            int st = (int)lua_tointeger(L, -1);
            if (st >= 0 && st < 1000)
                s->bits[st >> 3] |= (uint8_t)(1u << (st & 7));
            lua_pop(L, 1);
        }
    } else {
        for (size_t i = 0; i < ndflt; i++)
            s->bits[dflt[i] >> 3] |= (uint8_t)(1u << (dflt[i] & 7));
    }
    lua_pop(L, 1);
}

static const int ACTIVE_HEALTHY[] = {200, 302};
static const int ACTIVE_UNHEALTHY[] = {429, 404, 500, 501, 502, 503, 504, 505};
static const int PASSIVE_HEALTHY[] = {200, 201, 202, 203, 204, 205, 206, 207, 208, 226,
                                      300, 301, 302, 303, 304, 305, 306, 307, 308};
static const int PASSIVE_UNHEALTHY[] = {429, 500, 503};

static int check_type(const char *t)
{
    if (t && !strcmp(t, "tcp"))
        return TG_HC_TCP;
    if (t && (!strcmp(t, "https") || !strcmp(t, "grpcs")))
        return TG_HC_HTTPS;
    return TG_HC_HTTP;
}

/* headers = { Name = { "v1", "v2" } } -> "Name: v1\r\nName: v2\r\n" */
static char *headers_block(lua_State *L, int t)
{
    size_t cap = 256, len = 0;
    char *out = NULL;
    lua_getfield(L, t, "headers");
    if (lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 1);
        return NULL;
    }
    int h = lua_gettop(L);
    out = malloc(cap);
    out[0] = 0;
    lua_pushnil(L);
    while (lua_next(L, h)) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TTABLE) {
            const char *name = lua_tostring(L, -2);
            size_t n = lua_objlen(L, -1);
            for (size_t i = 1; i <= n; i++) {
                lua_rawgeti(L, -1, (int)i);
                const char *v = lua_tostring(L, -1);
                size_t need = strlen(name) + (v ? strlen(v) : 0) + 5;
                while (len + need >= cap)
                    out = realloc(out, cap *= 2);
                len += (size_t)snprintf(out + len, cap - len, "%s: %s\r\n", name, v ? v : "");
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return out;
}

void tg_healthchecks_from_lua(lua_State *L, int idx, tg_healthchecks_t *hc)
{
    int top = lua_gettop(L);
    idx = idx < 0 ? top + idx + 1 : idx;
    memset(hc, 0, sizeof(*hc));
    int hcs = idx;
    if (lua_type(L, idx) != LUA_TTABLE) {
        lua_newtable(L);
        hcs = lua_gettop(L);
    }
    int a = sub(L, hcs, "active");
    char *t = str(L, a, "type");
    hc->active_type = check_type(t);
    free(t);
    hc->timeout = num(L, a, "timeout", 1);
    hc->concurrency = (int)num(L, a, "concurrency", 10);
    hc->http_path = str(L, a, "http_path");
    if (!hc->http_path)
        hc->http_path = strdup("/");
    hc->https_sni = str(L, a, "https_sni");
    lua_getfield(L, a, "https_verify_certificate");
    hc->https_verify = lua_type(L, -1) == LUA_TBOOLEAN ? lua_toboolean(L, -1) : true;
    lua_pop(L, 1);
    hc->headers = headers_block(L, a);
    int ah = sub(L, a, "healthy");
    hc->healthy_interval = num(L, ah, "interval", 0);
    hc->healthy_successes = (int)num(L, ah, "successes", 0);
    statuses(L, ah, "http_statuses", &hc->healthy_statuses, ACTIVE_HEALTHY,
             TG_ARRAY_SIZE(ACTIVE_HEALTHY));
    int au = sub(L, a, "unhealthy");
    hc->unhealthy_interval = num(L, au, "interval", 0);
    hc->tcp_failures = (int)num(L, au, "tcp_failures", 0);
    hc->timeouts = (int)num(L, au, "timeouts", 0);
    hc->http_failures = (int)num(L, au, "http_failures", 0);
    statuses(L, au, "http_statuses", &hc->unhealthy_statuses, ACTIVE_UNHEALTHY,
             TG_ARRAY_SIZE(ACTIVE_UNHEALTHY));
    int p = sub(L, hcs, "passive");
    t = str(L, p, "type");
    hc->p_tcp = check_type(t) == TG_HC_TCP;
    free(t);
    int ph = sub(L, p, "healthy");
    hc->p_successes = (int)num(L, ph, "successes", 0);
    statuses(L, ph, "http_statuses", &hc->p_healthy_statuses, PASSIVE_HEALTHY,
             TG_ARRAY_SIZE(PASSIVE_HEALTHY));
    int pu = sub(L, p, "unhealthy");
    hc->p_tcp_failures = (int)num(L, pu, "tcp_failures", 0);
    hc->p_timeouts = (int)num(L, pu, "timeouts", 0);
    hc->p_http_failures = (int)num(L, pu, "http_failures", 0);
    statuses(L, pu, "http_statuses", &hc->p_unhealthy_statuses, PASSIVE_UNHEALTHY,
             TG_ARRAY_SIZE(PASSIVE_UNHEALTHY));
    hc->threshold = num(L, hcs, "threshold", 0);
    lua_settop(L, top);
}

void tg_healthchecks_clear(tg_healthchecks_t *hc)
{
    free(hc->http_path);
    free(hc->https_sni);
    free(hc->headers);
    free(hc->host_header);
    memset(hc, 0, sizeof(*hc));
}

bool tg_healthchecks_used(const tg_healthchecks_t *hc)
{
    return hc->healthy_interval != 0 || hc->unhealthy_interval != 0 || hc->p_tcp_failures != 0 ||
           hc->p_timeouts != 0 || hc->p_http_failures != 0;
}

/* -------------------------------------------------------------- registry -- */

tg_health_upstream_t *tg_health_acquire(const char *id, const char *name, uint64_t fingerprint,
                                        tg_healthchecks_t *hc)
{
    pthread_mutex_lock(&registry_lock);
    for (tg_health_upstream_t *hu = registry; hu; hu = hu->next) {
        if (hu->fingerprint == fingerprint && !strcmp(hu->id, id) &&
            atomic_load(&hu->refs) > 0) {
            atomic_fetch_add(&hu->refs, 1);
            pthread_mutex_unlock(&registry_lock);
            tg_healthchecks_clear(hc);
            return hu;
        }
    }
    tg_health_upstream_t *hu = calloc(1, sizeof(*hu));
    atomic_init(&hu->refs, 1);
    hu->id = strdup(id);
    hu->name = strdup(name ? name : id);
    hu->fingerprint = fingerprint;
    hu->hc = *hc;
    memset(hc, 0, sizeof(*hc));
    hu->used = tg_healthchecks_used(&hu->hc);
    pthread_mutex_init(&hu->lock, NULL);
    hu->next = registry;
    registry = hu;
    pthread_mutex_unlock(&registry_lock);
    return hu;
}

static void upstream_free(tg_health_upstream_t *hu)
{
    tg_health_target_t *t = hu->targets;
    while (t) {
        tg_health_target_t *n = t->next;
        free(t->host);
        free(t);
        t = n;
    }
    tg_healthchecks_clear(&hu->hc);
    pthread_mutex_destroy(&hu->lock);
    free(hu->probe_targets);
    free(hu->id);
    free(hu->name);
    free(hu);
}

void tg_health_release(tg_health_upstream_t *hu)
{
    if (!hu)
        return;
    pthread_mutex_lock(&registry_lock);
    if (atomic_fetch_sub(&hu->refs, 1) != 1) {
        pthread_mutex_unlock(&registry_lock);
        return;
    }
    tg_health_upstream_t **pp = &registry;
    while (*pp && *pp != hu)
        pp = &(*pp)->next;
    if (*pp)
        *pp = hu->next;
    pthread_mutex_unlock(&registry_lock);
    upstream_free(hu);
}

const tg_healthchecks_t *tg_health_checks(const tg_health_upstream_t *hu)
{
    return &hu->hc;
}

tg_health_target_t *tg_health_target(tg_health_upstream_t *hu, const struct sockaddr *addr,
                                     socklen_t addrlen, const char *host)
{
    pthread_mutex_lock(&hu->lock);
    tg_health_target_t *t;
    for (t = hu->targets; t; t = t->next)
        if (t->addrlen == addrlen && !memcmp(&t->addr, addr, addrlen))
            break;
    if (!t) {
        t = calloc(1, sizeof(*t));
        memcpy(&t->addr, addr, addrlen);
        t->addrlen = addrlen;
        if (addr->sa_family == AF_INET6) {
            const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)addr;
            inet_ntop(AF_INET6, &a6->sin6_addr, t->ip, sizeof(t->ip));
            t->port = ntohs(a6->sin6_port);
        } else {
            const struct sockaddr_in *a4 = (const struct sockaddr_in *)addr;
            inet_ntop(AF_INET, &a4->sin_addr, t->ip, sizeof(t->ip));
            t->port = ntohs(a4->sin_port);
        }
        t->host = strdup(host ? host : t->ip);
        atomic_init(&t->healthy, true);
        atomic_init(&t->dirty, 0);
        t->next = hu->targets;
        hu->targets = t;
    }
    pthread_mutex_unlock(&hu->lock);
    return t;
}

/* ------------------------------------------------------------- counters -- */

static const char *EVENT_NAMES[] = {"success", "TCP failure", "timeout", "HTTP failure"};

static void set_state(tg_health_upstream_t *hu, tg_health_target_t *t, bool healthy,
                      const char *why)
{
    t->successes = t->tcp_failures = t->timeouts = t->http_failures = 0;
    atomic_store(&t->dirty, 0);
    if (atomic_exchange(&t->healthy, healthy) != healthy)
        tg_log(TG_LOG_WARN, "[healthcheck] (%s) target %s (%s:%u) is now %s (%s)", hu->name,
               t->host, t->ip, t->port, healthy ? "healthy" : "unhealthy", why);
}

/* Counts one event against the thresholds given (0 = that counter is off). */
static void count(tg_health_upstream_t *hu, tg_health_target_t *t, int event, int successes,
                  int tcp_failures, int timeouts, int http_failures, const char *source)
{
    pthread_mutex_lock(&hu->lock);
    bool healthy = atomic_load(&t->healthy);
    char why[96];
    if (event == TG_HEV_SUCCESS) {
        t->tcp_failures = t->timeouts = t->http_failures = 0;
        if (!healthy && successes > 0 && ++t->successes >= successes) {
            snprintf(why, sizeof(why), "%s: %d successes", source, t->successes);
            set_state(hu, t, true, why);
        }
    } else {
        t->successes = 0;
        int *ctr = event == TG_HEV_TCP_FAILURE ? &t->tcp_failures
                   : event == TG_HEV_TIMEOUT   ? &t->timeouts
                                               : &t->http_failures;
        int limit = event == TG_HEV_TCP_FAILURE ? tcp_failures
                    : event == TG_HEV_TIMEOUT   ? timeouts
                                                : http_failures;
        if (healthy && limit > 0 && ++*ctr >= limit) {
            snprintf(why, sizeof(why), "%s: %d %s(s)", source, *ctr, EVENT_NAMES[event]);
            set_state(hu, t, false, why);
        }
    }
    atomic_store(&t->dirty, t->successes || t->tcp_failures || t->timeouts || t->http_failures);
    pthread_mutex_unlock(&hu->lock);
}

void tg_health_passive(tg_health_upstream_t *hu, tg_health_target_t *t, int event, int status)
{
    const tg_healthchecks_t *hc = &hu->hc;
    if (status) {
        if (hc->p_tcp)
            return;
        if (tg_status_in(&hc->p_unhealthy_statuses, status))
            event = TG_HEV_HTTP_FAILURE;
        else if (tg_status_in(&hc->p_healthy_statuses, status))
            event = TG_HEV_SUCCESS;
        else
            return;
    }
    if (event == TG_HEV_SUCCESS) {
        /* the common case: a healthy target with nothing to reset */
        if (tg_health_ok(t) && !atomic_load_explicit(&t->dirty, memory_order_relaxed))
            return;
        if (tg_health_ok(t) || hc->p_successes > 0)
            count(hu, t, event, hc->p_successes, 0, 0, 0, "passive");
        return;
    }
    int limit = event == TG_HEV_TCP_FAILURE ? hc->p_tcp_failures
                : event == TG_HEV_TIMEOUT   ? hc->p_timeouts
                                            : hc->p_http_failures;
    if (limit == 0 && !hc->p_successes)
        return;
    count(hu, t, event, hc->p_successes, hc->p_tcp_failures, hc->p_timeouts, hc->p_http_failures,
          "passive");
}

void tg_health_set(tg_health_upstream_t *hu, tg_health_target_t *t, bool healthy)
{
    pthread_mutex_lock(&hu->lock);
    set_state(hu, t, healthy, "set through the Admin API");
    pthread_mutex_unlock(&hu->lock);
}

/* --------------------------------------------------------------- probes -- */

typedef struct probe_s {
    struct probe_s *next, *prev; /* the probes in flight */
    tg_health_upstream_t *hu;
    tg_health_target_t *t;
    int fd;
    SSL *ssl;
    struct event *ev;
    int stage; /* 0 connect, 1 handshake, 2 write, 3 read */
    char req[2048];
    size_t req_len, req_off;
    char resp[256];
    size_t resp_len;
} probe_t;

static struct event_base *pbase;
static probe_t *inflight_probes;
static SSL_CTX *ssl_verify_ctx, *ssl_noverify_ctx;

static void probe_next(tg_health_upstream_t *hu);

static void probe_free(probe_t *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        inflight_probes = p->next;
    if (p->next)
        p->next->prev = p->prev;
    if (p->ssl)
        SSL_free(p->ssl);
    if (p->ev)
        event_free(p->ev);
    if (p->fd >= 0)
        close(p->fd);
    p->t->probing = false;
    p->hu->inflight--;
    free(p);
}

static void probe_done(probe_t *p, int event, int status)
{
    tg_health_upstream_t *hu = p->hu;
    const tg_healthchecks_t *hc = &hu->hc;
    if (status) {
        if (tg_status_in(&hc->healthy_statuses, status))
            event = TG_HEV_SUCCESS;
        else if (tg_status_in(&hc->unhealthy_statuses, status))
            event = TG_HEV_HTTP_FAILURE;
        else
            event = -1;
    }
    if (event >= 0 && hu->probing)
        count(hu, p->t, event, hc->healthy_successes, hc->tcp_failures, hc->timeouts,
              hc->http_failures, "active");
    probe_free(p);
    probe_next(hu);
    tg_health_release(hu);
}

static void on_probe(evutil_socket_t fd, short what, void *arg);

static void probe_wait(probe_t *p, short what)
{
    const tg_healthchecks_t *hc = &p->hu->hc;
    double to = hc->timeout > 0 ? hc->timeout : 1;
    struct timeval tv = {(time_t)to, (suseconds_t)((to - floor(to)) * 1e6)};
    if (p->ev)
        event_free(p->ev);
    p->ev = event_new(pbase, p->fd, what, on_probe, p);
    event_add(p->ev, &tv);
}

/* Returns 1 to go on, 0 to wait (armed), -1 on failure. */
static int ssl_step(probe_t *p, int rc)
{
    int e = SSL_get_error(p->ssl, rc);
    if (e == SSL_ERROR_WANT_READ) {
        probe_wait(p, EV_READ);
        return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        probe_wait(p, EV_WRITE);
        return 0;
    }
    return -1;
}

static void on_probe(evutil_socket_t fd, short what, void *arg)
{
    probe_t *p = arg;
    const tg_healthchecks_t *hc = &p->hu->hc;
    if (what & EV_TIMEOUT) {
        probe_done(p, TG_HEV_TIMEOUT, 0);
        return;
    }
    if (p->stage == 0) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            probe_done(p, TG_HEV_TCP_FAILURE, 0);
            return;
        }
        if (hc->active_type == TG_HC_TCP) {
            probe_done(p, TG_HEV_SUCCESS, 0);
            return;
        }
        p->stage = 1;
        if (hc->active_type == TG_HC_HTTPS) {
            p->ssl = SSL_new(hc->https_verify ? ssl_verify_ctx : ssl_noverify_ctx);
            SSL_set_fd(p->ssl, p->fd);
            const char *sni = hc->https_sni ? hc->https_sni : p->t->host;
            struct in6_addr tmp;
            if (inet_pton(AF_INET, sni, &tmp) != 1 && inet_pton(AF_INET6, sni, &tmp) != 1)
                SSL_set_tlsext_host_name(p->ssl, sni);
            if (hc->https_verify)
                SSL_set1_host(p->ssl, sni);
        }
    }
    if (p->stage == 1) {
        if (p->ssl) {
            int rc = SSL_connect(p->ssl);
            if (rc != 1) {
                int s = ssl_step(p, rc);
                if (s < 0)
                    probe_done(p, TG_HEV_TCP_FAILURE, 0);
                return;
            }
        }
        p->stage = 2;
    }
    if (p->stage == 2) {
        while (p->req_off < p->req_len) {
            ssize_t n;
            if (p->ssl) {
                int rc = SSL_write(p->ssl, p->req + p->req_off, (int)(p->req_len - p->req_off));
                if (rc <= 0) {
                    if (ssl_step(p, rc) < 0)
                        probe_done(p, TG_HEV_TCP_FAILURE, 0);
                    return;
                }
                n = rc;
            } else {
                n = send(p->fd, p->req + p->req_off, p->req_len - p->req_off, MSG_NOSIGNAL);
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    probe_wait(p, EV_WRITE);
                    return;
                }
                if (n < 0) {
                    probe_done(p, TG_HEV_TCP_FAILURE, 0);
                    return;
                }
            }
            p->req_off += (size_t)n;
        }
        p->stage = 3;
    }
    /* stage 3: the status line */
    for (;;) {
        ssize_t n;
        size_t room = sizeof(p->resp) - 1 - p->resp_len;
        if (p->ssl) {
            int rc = SSL_read(p->ssl, p->resp + p->resp_len, (int)room);
            if (rc <= 0) {
                int e = SSL_get_error(p->ssl, rc);
                if (e == SSL_ERROR_ZERO_RETURN) {
                    n = 0;
                } else if (ssl_step(p, rc) == 0) {
                    return;
                } else {
                    probe_done(p, TG_HEV_TCP_FAILURE, 0);
                    return;
                }
            } else {
                n = rc;
            }
        } else {
            n = recv(p->fd, p->resp + p->resp_len, room, 0);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                probe_wait(p, EV_READ);
                return;
            }
            if (n < 0) {
                probe_done(p, TG_HEV_TCP_FAILURE, 0);
                return;
            }
        }
        p->resp_len += (size_t)n;
        p->resp[p->resp_len] = 0;
        char *eol = strstr(p->resp, "\r\n");
        if (eol || n == 0 || p->resp_len == sizeof(p->resp) - 1) {
            int status = 0;
            if (!strncmp(p->resp, "HTTP/", 5)) {
                const char *sp = strchr(p->resp, ' ');
                if (sp)
                    status = atoi(sp + 1);
            }
            if (status < 100 || status > 999)
                probe_done(p, TG_HEV_TCP_FAILURE, 0);
            else
                probe_done(p, 0, status);
            return;
        }
    }
}

static void probe_start(tg_health_upstream_t *hu, tg_health_target_t *t)
{
    const tg_healthchecks_t *hc = &hu->hc;
    probe_t *p = calloc(1, sizeof(*p));
    p->hu = hu;
    p->t = t;
    p->fd = -1;
    p->next = inflight_probes;
    if (p->next)
        p->next->prev = p;
    inflight_probes = p;
    atomic_fetch_add(&hu->refs, 1);
    hu->inflight++;
    t->probing = true;
    if (hc->active_type != TG_HC_TCP) {
        /* as lua-resty-healthcheck: Host is the upstream's host_header, else
         * the target's host, without a port */
        int n = snprintf(p->req, sizeof(p->req), "GET %s HTTP/1.0\r\n%sHost: %s\r\n\r\n",
                         hc->http_path, hc->headers ? hc->headers : "",
                         hc->host_header ? hc->host_header : t->host);
        p->req_len = n > 0 && (size_t)n < sizeof(p->req) ? (size_t)n : 0;
    }
    p->fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd < 0) {
        probe_done(p, TG_HEV_TCP_FAILURE, 0);
        return;
    }
    int one = 1;
    setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(p->fd, (struct sockaddr *)&t->addr, t->addrlen) != 0 && errno != EINPROGRESS) {
        probe_done(p, TG_HEV_TCP_FAILURE, 0);
        return;
    }
    probe_wait(p, EV_WRITE);
}

/* Starts probes of the queued kind while the concurrency allows. */
static void probe_next(tg_health_upstream_t *hu)
{
    if (!hu->probing)
        return;
    int conc = hu->hc.concurrency > 0 ? hu->hc.concurrency : 1;
    for (size_t i = 0; i < hu->nprobe_targets && hu->inflight < (size_t)conc; i++) {
        tg_health_target_t *t = hu->probe_targets[i];
        if (t->probing)
            continue;
        bool h = tg_health_ok(t);
        if ((h && hu->queued_healthy) || (!h && hu->queued_unhealthy)) {
            /* one probe per target and round: the flag is cleared by the round's end */
            probe_start(hu, t);
        }
    }
    /* the round ends when every wanted target has been started */
    bool pending = false;
    for (size_t i = 0; i < hu->nprobe_targets; i++) {
        tg_health_target_t *t = hu->probe_targets[i];
        bool h = tg_health_ok(t);
        if (!t->probing && ((h && hu->queued_healthy) || (!h && hu->queued_unhealthy)))
            pending = true;
    }
    if (!pending)
        hu->queued_healthy = hu->queued_unhealthy = false;
}

static void on_round(evutil_socket_t fd, short what, void *arg)
{
    tg_health_upstream_t *hu = arg;
    TG_UNUSED(fd);
    TG_UNUSED(what);
    if (!hu->probing)
        return;
    /* which timer fired is told by the event's own argument: see arm_timers */
    probe_next(hu);
}

static void on_healthy_round(evutil_socket_t fd, short what, void *arg)
{
    ((tg_health_upstream_t *)arg)->queued_healthy = true;
    on_round(fd, what, arg);
}

static void on_unhealthy_round(evutil_socket_t fd, short what, void *arg)
{
    ((tg_health_upstream_t *)arg)->queued_unhealthy = true;
    on_round(fd, what, arg);
}

static struct event *interval_timer(tg_health_upstream_t *hu, double s,
                                    void (*cb)(evutil_socket_t, short, void *))
{
    if (s <= 0)
        return NULL;
    struct event *ev = event_new(pbase, -1, EV_PERSIST, cb, hu);
    struct timeval tv = {(time_t)s, (suseconds_t)((s - floor(s)) * 1e6)};
    event_add(ev, &tv);
    return ev;
}

static void stop_probing(tg_health_upstream_t *hu)
{
    if (hu->healthy_ev)
        event_free(hu->healthy_ev);
    if (hu->unhealthy_ev)
        event_free(hu->unhealthy_ev);
    hu->healthy_ev = hu->unhealthy_ev = NULL;
    hu->probing = false;
    free(hu->probe_targets);
    hu->probe_targets = NULL;
    hu->nprobe_targets = 0;
}

/* The upstreams being probed (each holds a reference), control thread only. */
static tg_health_upstream_t **probed;
static size_t nprobed;

void tg_health_sync(struct event_base *base, const tg_health_probe_set_t *list, size_t n)
{
    if (!base)
        n = 0; /* no event loop (config parse): nothing is probed */
    else
        pbase = base;
    if (!ssl_verify_ctx) {
        ssl_verify_ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_default_verify_paths(ssl_verify_ctx);
        SSL_CTX_set_verify(ssl_verify_ctx, SSL_VERIFY_PEER, NULL);
        ssl_noverify_ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_verify(ssl_noverify_ctx, SSL_VERIFY_NONE, NULL);
    }
    tg_health_upstream_t **next = calloc(n + 1, sizeof(*next));
    size_t nnext = 0;
    for (size_t i = 0; i < n; i++) {
        tg_health_upstream_t *hu = list[i].hu;
        const tg_healthchecks_t *hc = &hu->hc;
        if (hc->healthy_interval <= 0 && hc->unhealthy_interval <= 0)
            continue;
        bool had = hu->probing;
        if (!had)
            atomic_fetch_add(&hu->refs, 1);
        free(hu->probe_targets);
        hu->probe_targets = calloc(list[i].ntargets + 1, sizeof(*hu->probe_targets));
        memcpy(hu->probe_targets, list[i].targets, list[i].ntargets * sizeof(*hu->probe_targets));
        hu->nprobe_targets = list[i].ntargets;
        if (!had) {
            hu->probing = true;
            hu->healthy_ev = interval_timer(hu, hc->healthy_interval, on_healthy_round);
            hu->unhealthy_ev = interval_timer(hu, hc->unhealthy_interval, on_unhealthy_round);
        }
        next[nnext++] = hu;
    }
    /* the ones no longer listed stop */
    for (size_t i = 0; i < nprobed; i++) {
        bool kept = false;
        for (size_t j = 0; j < nnext; j++)
            kept = kept || next[j] == probed[i];
        if (!kept) {
            stop_probing(probed[i]);
            tg_health_release(probed[i]);
        }
    }
    free(probed);
    probed = next;
    nprobed = nnext;
}

void tg_health_shutdown(void)
{
    while (inflight_probes) {
        tg_health_upstream_t *hu = inflight_probes->hu;
        probe_free(inflight_probes);
        tg_health_release(hu);
    }
    tg_health_sync(pbase, NULL, 0);
    free(probed);
    probed = NULL;
    if (ssl_verify_ctx) {
        SSL_CTX_free(ssl_verify_ctx);
        SSL_CTX_free(ssl_noverify_ctx);
        ssl_verify_ctx = ssl_noverify_ctx = NULL;
    }
}

/* ---------------------------------------------------------- fingerprint -- */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static uint64_t fp_value(lua_State *L, int idx, const char *const *skip, uint64_t h, int depth)
{
    int t = lua_type(L, idx);
    h = fnv(h, &t, sizeof(t));
    if (t == LUA_TSTRING || t == LUA_TNUMBER) {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n); /* a copy for numbers: idx is ours */
        return fnv(h, s, n);
    }
    if (t == LUA_TBOOLEAN) {
        int b = lua_toboolean(L, idx);
        return fnv(h, &b, sizeof(b));
    }
    if (t != LUA_TTABLE || depth > 8)
        return h;
    /* keys as strings, sorted */
    size_t nk = 0, cap = 16;
    char **keys = malloc(cap * sizeof(char *));
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        const char *k = lua_tostring(L, -1);
        bool skipped = false;
        for (const char *const *s = skip; depth == 0 && s && *s; s++)
            skipped = skipped || (k && !strcmp(k, *s));
        if (k && !skipped) {
            if (nk == cap)
                keys = realloc(keys, (cap *= 2) * sizeof(char *));
            keys[nk++] = strdup(k);
        }
        lua_pop(L, 1);
    }
    qsort(keys, nk, sizeof(char *), cmp_str);
    for (size_t i = 0; i < nk; i++) {
        h = fnv(h, keys[i], strlen(keys[i]) + 1);
        lua_pushstring(L, keys[i]);
        lua_rawget(L, idx);
        if (lua_isnil(L, -1)) { /* an array index */
            lua_pop(L, 1);
            lua_rawgeti(L, idx, atoi(keys[i]));
        }
        h = fp_value(L, lua_gettop(L), skip, h, depth + 1);
        lua_pop(L, 1);
        free(keys[i]);
    }
    free(keys);
    return h;
}

uint64_t tg_health_fingerprint(lua_State *L, int idx, const char *const *skip)
{
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    lua_pushvalue(L, idx);
    uint64_t h = fp_value(L, lua_gettop(L), skip, 14695981039346656037ULL, 0);
    lua_pop(L, 1);
    return h;
}
