/* pdk_service.c: kong.service.set_upstream, set_target, set_retries,
 * set_timeouts, set_tls_verify(_depth), set_tls_cert_key and
 * kong.service.request.set_scheme (core/pdk.h) — per-request overrides kept in the connection
 * (tg_conn_t.ov, zeroed when the request ends) — and the proxy's pick with
 * them (tg__ov_pick). */
#include "dns.h"
#include "log.h"
#include "pdk.h"
#include "proxy_int.h"
#include "tls.h"
#include "worker.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
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

/* ---- the scheme and TLS parameters towards the upstream ---- */

int tg_pdk_svc_set_scheme(tg_req_t *r, int https)
{
    r->ov.scheme = https ? TG_PROTO_HTTPS : TG_PROTO_HTTP;
    return 0;
}

/* This request's own copy of the service's TLS parameters (made once). */
static tg_tls_upstream_t *own_tls(tg_req_t *r)
{
    if (r->ov.tls)
        return r->ov.tls;
    tg_tls_upstream_t *t = tg__arena_alloc(&r->arena, sizeof(*t));
    if (!t)
        return NULL;
    const tg_tls_upstream_t *s = r->route && r->route->service ? r->route->service->tls : NULL;
    if (s) {
        *t = *s; /* the store and the service's client pair: the snapshot's */
    } else {
        memset(t, 0, sizeof(*t));
        t->verify_depth = -1;
        t->key = 1;
    }
    r->ov.tls = t;
    return t;
}

/* The pool key of the copy: the service's, the overrides and the client
 * certificate's digest (never its address: a freed one's may come back). */
static void rekey(tg_req_t *r, const tg_tls_upstream_t *base)
{
    tg_tls_upstream_t *t = r->ov.tls;
    struct {
        uint64_t base;
        int verify, depth;
        unsigned char md[32];
    } k;
    memset(&k, 0, sizeof(k));
    k.base = base ? base->key : 1;
    k.verify = t->verify;
    k.depth = t->verify_depth;
    unsigned int n = 0;
    if (t->client_cert)
        X509_digest(t->client_cert, EVP_sha256(), k.md, &n);
    t->key = tg_balancer_hash(&k, sizeof(k)) | 1;
}

static const tg_tls_upstream_t *service_tls(tg_req_t *r)
{
    return r->route && r->route->service ? r->route->service->tls : NULL;
}

int tg_pdk_svc_set_tls_verify(tg_req_t *r, int on)
{
    tg_tls_upstream_t *t = own_tls(r);
    if (!t)
        return TG_ENOMEM;
    t->verify = on != 0;
    rekey(r, service_tls(r));
    return 0;
}

int tg_pdk_svc_set_tls_verify_depth(tg_req_t *r, int depth)
{
    tg_tls_upstream_t *t = own_tls(r);
    if (!t)
        return TG_ENOMEM;
    t->verify_depth = depth;
    rekey(r, service_tls(r));
    return 0;
}

int tg_pdk_svc_set_tls_cert_key(tg_req_t *r, X509 *cert, EVP_PKEY *key)
{
    if (!cert || !key || X509_check_private_key(cert, key) != 1) {
        ERR_clear_error();
        return TG_EINVAL;
    }
    tg_tls_upstream_t *t = own_tls(r);
    if (!t)
        return TG_ENOMEM;
    if (r->ov.own_pair) {
        X509_free(t->client_cert);
        EVP_PKEY_free(t->client_key);
    }
    /* referenced until the request ends: the plugin's objects may be
     * collected before the connection is made */
    X509_up_ref(cert);
    EVP_PKEY_up_ref(key);
    t->client_cert = cert;
    t->client_key = key;
    t->client_chain = NULL;
    r->ov.own_pair = true;
    rekey(r, service_tls(r));
    return 0;
}

const tg_tls_upstream_t *tg__ov_tls(tg_conn_t *c, bool *use)
{
    const tg_tls_upstream_t *s = c->route->service->tls;
    *use = c->ov.scheme ? c->ov.scheme == TG_PROTO_HTTPS : s != NULL;
    if (!*use)
        return NULL;
    return c->ov.tls ? c->ov.tls : s;
}

void tg__ov_reset(tg_conn_t *c)
{
    if (c->ov.own_pair && c->ov.tls) {
        X509_free(c->ov.tls->client_cert);
        EVP_PKEY_free(c->ov.tls->client_key);
    }
    memset(&c->ov, 0, sizeof(c->ov));
}
