/* pdk_service.c: kong.service.set_upstream, set_target, set_retries and
 * set_timeouts (core/pdk.h) — per-request overrides kept in the connection
 * (tg_conn_t.ov, zeroed when the request ends) — and the proxy's pick with
 * them (tg__ov_pick). */
#include "dns.h"
#include "log.h"
#include "pdk.h"
#include "proxy_int.h"
#include "worker.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Kong keeps one host per request: the last set_upstream / set_target wins. */
static void clear_where(tg_req_t *r)
{
    r->ov.up = NULL;
    r->ov.target = NULL;
    r->ov.dns = NULL;
    r->ov.status = 0;
    r->ov.error = NULL;
}

int tg_pdk_svc_set_upstream(tg_req_t *r, const char *name, size_t len)
{
    char buf[256];
    if (!r->snap || !r->route || len >= sizeof(buf))
        return TG_ENOTFOUND;
    memcpy(buf, name, len);
    buf[len] = 0;
    tg_upstream_t *u =
        tg_upstream_find(r->snap->upstreams, r->snap->nupstreams, buf, r->route->ws_id);
    if (!u)
        return TG_ENOTFOUND;
    clear_where(r);
    r->ov.up = u;
    return 0;
}

/* The Host a set_target sends (Kong sets $upstream_host to it). */
static int keep_host(tg_req_t *r, const char *host, size_t hlen)
{
    r->ov.host = tg__arena_dup(&r->arena, host, hlen);
    r->ov.host_len = hlen;
    return r->ov.host ? 0 : TG_ENOMEM;
}

/* A name the snapshot's services use: dns.c keeps its answers current, so a
 * worker picks from them without a query (NULL when no service has it). */
static struct tg_dns_name_s *known_name(tg_req_t *r, const char *host, size_t hlen)
{
    for (size_t i = 0; r->snap && i < r->snap->nservices; i++) {
        const tg_service_t *s = &r->snap->services[i];
        if (s->dns && s->host && strlen(s->host) == hlen && !strncasecmp(s->host, host, hlen))
            return s->dns;
    }
    return NULL;
}

int tg_pdk_svc_set_target(tg_req_t *r, const char *host, size_t hlen, const char *addr, int port)
{
    if (port < 0 || port > 65535)
        return TG_EINVAL;
    tg_target_t *t = tg__arena_alloc(&r->arena, sizeof(*t));
    if (!t)
        return TG_ENOMEM;
    memset(t, 0, sizeof(*t));
    struct sockaddr_in *s4 = (struct sockaddr_in *)&t->addr;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&t->addr;
    struct tg_dns_name_s *dns = NULL;
    if (addr && inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        t->addrlen = sizeof(*s4);
    } else if (addr && inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        t->addrlen = sizeof(*s6);
    } else if (addr || !(dns = known_name(r, host, hlen))) {
        return TG_ENOTFOUND;
    }
    char name[300];
    int n = snprintf(name, sizeof(name), "%.*s:%d", (int)(hlen < 256 ? hlen : 256), host, port);
    t->name = tg__arena_dup(&r->arena, name, (size_t)n);
    t->port = (uint16_t)port;
    t->weight = 100;
    if (!t->name || keep_host(r, host, hlen) != 0)
        return TG_ENOMEM;
    t->host = (char *)r->ov.host;
    clear_where(r);
    r->ov.target = t;
    r->ov.dns = dns;
    return 0;
}

int tg_pdk_svc_set_target_failed(tg_req_t *r, const char *host, size_t hlen, int status,
                                 const char *msg, size_t mlen)
{
    if (keep_host(r, host, hlen) != 0)
        return TG_ENOMEM;
    const char *error = tg__arena_dup(&r->arena, msg, mlen);
    if (!error)
        return TG_ENOMEM;
    clear_where(r);
    r->ov.status = status;
    r->ov.error = error;
    return 0;
}

int tg_pdk_svc_set_retries(tg_req_t *r, int retries)
{
    if (retries < 0 || retries > 32767)
        return TG_EINVAL;
    r->ov.has_retries = true;
    r->ov.retries = retries;
    return 0;
}

int tg_pdk_svc_set_timeouts(tg_req_t *r, int connect, int write, int read)
{
    if (connect < 1 || write < 1 || read < 1)
        return TG_EINVAL;
    r->ov.connect = connect;
    r->ov.write = write;
    r->ov.read = read;
    return 0;
}

int tg__ov_pick(tg_conn_t *c, int *status, const char **msg)
{
    if (c->ov.status) {
        *status = c->ov.status;
        *msg = c->ov.error;
        return -1;
    }
    if (c->ov.target && c->ov.dns) {
        /* a name: dns.c's current answers, copied into the target */
        tg_target_t *t = c->ov.target;
        char *name = t->name, *host = t->host;
        int st = tg_dns_pick(c->ov.dns, c->w->id, t->port, t, msg);
        t->name = name; /* ours (host:port), not dns.c's */
        t->host = host;
        if (st) {
            *status = st;
            return -1;
        }
        c->target = t;
        return 1;
    }
    if (c->ov.target) {
        c->target = c->ov.target;
        return 1;
    }
    if (c->ov.up) {
        c->target = tg__lb_pick(c, c->ov.up);
        return 1;
    }
    return 0;
}
