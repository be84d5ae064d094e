/* balancer_req.c: the proxy's side of the balancer — the value to hash, the
 * pick for each try, passive health reports, the hash cookie. */
#include "balancer.h"
#include "log.h"
#include "lua_vm.h"
#include "proxy_int.h"
#include "respond.h"
#include "util_lua.h"
#include "worker.h"

#include <lauxlib.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>

/* The authenticated consumer's id, else the credential's (as Kong's
 * balancer reads ngx.ctx), copied into the request's arena. */
static bool consumer_id(tg_conn_t *c, const char **out, size_t *outlen)
{
    lua_State *L = c->w->L;
    if (!L || !c->co_used)
        return false;
    int top = lua_gettop(L);
    bool found = false;
    if (tg_lua_require(L, "tollgate.ctx") == 0) {
        lua_getfield(L, -1, "get");
        lua_pushnumber(L, (lua_Number)(uintptr_t)c);
        if (lua_pcall(L, 1, 1, 0) == 0 && lua_type(L, -1) == LUA_TTABLE) {
            int shared = lua_gettop(L);
            static const char *fields[] = {"authenticated_consumer", "authenticated_credential"};
            for (size_t i = 0; i < 2 && !found; i++) {
                lua_getfield(L, shared, fields[i]);
                if (lua_type(L, -1) == LUA_TTABLE) {
                    lua_getfield(L, -1, "id");
                    if (lua_type(L, -1) == LUA_TSTRING) {
                        size_t n;
                        const char *s = lua_tolstring(L, -1, &n);
                        *out = tg__arena_dup(&c->arena, s, n);
                        *outlen = n;
                        found = *out != NULL;
                    }
                    lua_pop(L, 1);
                }
                lua_pop(L, 1);
            }
        }
    }
    lua_settop(L, top);
    return found;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = (char)(ch | 0x20);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* url-decodes [p, p+n) into out (cap bytes); returns the length */
static size_t unescape(const char *p, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o < cap; i++) {
        if (p[i] == '%' && i + 2 < n && hexval(p[i + 1]) >= 0 && hexval(p[i + 2]) >= 0) {
            out[o++] = (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
            i += 2;
        } else {
            out[o++] = p[i] == '+' ? ' ' : p[i];
        }
    }
    return o;
}

typedef struct {
    const char *p;
    size_t n;
} slice_t;

static int cmp_slice(const void *a, const void *b)
{
    const slice_t *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int r = memcmp(x->p, y->p, n);
    return r ? r : (x->n > y->n) - (x->n < y->n);
}

/* The query argument `name`: its values sorted and joined with "," (an
 * argument without "=" counts as "true"), as Kong normalises them. */
static bool query_arg(tg_conn_t *c, const tg_hash_src_t *h, char *buf, size_t cap, size_t *len)
{
    const char *q = c->up_query ? c->up_query : c->req.query;
    size_t qn = c->up_query ? c->up_query_len : c->req.query_len;
    if (!q)
        return false;
    slice_t vals[32];
    size_t nv = 0, used = 0;
    char tmp[512];
    size_t i = 0;
    while (i < qn && nv < TG_ARRAY_SIZE(vals)) {
        size_t j = i;
        while (j < qn && q[j] != '&')
            j++;
        const char *eq = memchr(q + i, '=', j - i);
        size_t kl = eq ? (size_t)(eq - (q + i)) : j - i;
        size_t dk = unescape(q + i, kl, tmp, sizeof(tmp));
        if (dk == h->name_len && !memcmp(tmp, h->name, dk) && used < cap) {
            if (eq) {
                size_t dv = unescape(eq + 1, (size_t)(q + j - eq - 1), buf + used, cap - used);
                vals[nv++] = (slice_t){buf + used, dv};
                used += dv;
            } else {
                vals[nv++] = (slice_t){"true", 4};
            }
        }
        i = j + 1;
    }
    if (!nv)
        return false;
    qsort(vals, nv, sizeof(slice_t), cmp_slice);
    char joined[2048];
    size_t o = 0;
    for (size_t k = 0; k < nv; k++) {
        if (k && o < sizeof(joined))
            joined[o++] = ',';
        size_t m = vals[k].n < sizeof(joined) - o ? vals[k].n : sizeof(joined) - o;
        memcpy(joined + o, vals[k].p, m);
        o += m;
    }
    size_t n = o < cap ? o : cap;
    memcpy(buf, joined, n);
    *len = n;
    return true;
}

/* The cookie `name` of the request, if sent. */
static bool cookie(tg_conn_t *c, const tg_hash_src_t *h, const char **out, size_t *outlen)
{
    for (size_t i = 0; i < c->req.num_headers; i++) {
        const tg_http_header_t *hd = &c->req.headers[i];
        if (!tg_str_ieq(hd->name, hd->name_len, "cookie", 6))
            continue;
        const char *p = hd->value, *end = hd->value + hd->value_len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';'))
                p++;
            const char *semi = memchr(p, ';', (size_t)(end - p));
            const char *e = semi ? semi : end;
            const char *eq = memchr(p, '=', (size_t)(e - p));
            if (eq && (size_t)(eq - p) == h->name_len && !memcmp(p, h->name, h->name_len)) {
                *out = eq + 1;
                *outlen = (size_t)(e - eq - 1);
                return true;
            }
            p = e;
        }
    }
    return false;
}

/* Hashes the identifier of one source; false when the request has none. */
static bool identifier(tg_conn_t *c, const tg_hash_src_t *h, uint64_t *hash)
{
    const char *v = NULL;
    size_t n = 0;
    char buf[2048];
    switch (h->kind) {
    case TG_HASH_CONSUMER:
        if (!consumer_id(c, &v, &n))
            return false;
        break;
    case TG_HASH_IP:
        v = c->client_ip;
        n = strlen(v);
        break;
    case TG_HASH_HEADER: {
        /* every value of the header, joined with ", " (as nginx's $http_) */
        size_t used = 0;
        bool any = false;
        for (size_t i = 0; i < c->req.num_headers; i++) {
            const tg_http_header_t *hd = &c->req.headers[i];
            if (!tg_str_ieq(hd->name, hd->name_len, h->name, h->name_len))
                continue;
            if (any && used + 2 < sizeof(buf)) {
                memcpy(buf + used, ", ", 2);
                used += 2;
            }
            size_t k = hd->value_len < sizeof(buf) - used ? hd->value_len : sizeof(buf) - used;
            memcpy(buf + used, hd->value, k);
            used += k;
            any = true;
        }
        if (!any)
            return false;
        v = buf;
        n = used;
        break;
    }
    case TG_HASH_COOKIE:
        if (!cookie(c, h, &v, &n)) {
            /* none sent: a new one, hashed now and set on the response */
            unsigned char b[16];
            RAND_bytes(b, sizeof(b));
            b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
            b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
            tg_util_uuid_format(b, c->lb_cookie);
            v = c->lb_cookie;
            n = strlen(v);
        }
        break;
    case TG_HASH_PATH:
        v = c->path;
        n = c->path_len;
        break;
    case TG_HASH_QUERY_ARG:
        if (!query_arg(c, h, buf, sizeof(buf), &n))
            return false;
        v = buf;
        break;
    case TG_HASH_URI_CAPTURE: {
        bool found = false;
        for (int i = 1; i < c->match.ncaptures && !found; i++) {
            const char *name = c->match.captures[i].name;
            bool hit = name ? strlen(name) == h->name_len && !memcmp(name, h->name, h->name_len)
                            : (size_t)snprintf(buf, sizeof(buf), "%d", i) == h->name_len &&
                                  !memcmp(buf, h->name, h->name_len);
            if (hit && c->match.captures[i].start >= 0) {
                v = c->path + c->match.captures[i].start;
                n = (size_t)(c->match.captures[i].end - c->match.captures[i].start);
                found = true;
            }
        }
        if (!found)
            return false;
        break;
    }
    default:
        return false;
    }
    *hash = tg_balancer_hash(v, n);
    return true;
}

tg_target_t *tg__lb_pick(tg_conn_t *c, tg_upstream_t *u)
{
    c->lb_up = u;
    if (!c->lb.hashed) {
        c->lb.hashed = true;
        if (u->algorithm == TG_LB_CONSISTENT_HASHING) {
            uint64_t h;
            if (identifier(c, &u->hash_on, &h) ||
                (u->hash_on.kind != TG_HASH_NONE && identifier(c, &u->hash_fallback, &h)))
                c->lb.hash = h;
            else
                c->lb.hash = tg_balancer_hash("", 0);
        }
    }
    return tg_balancer_pick(u, c->w->id, &c->lb);
}

void tg__lb_report(tg_conn_t *c, int event, int status)
{
    tg_upstream_t *u = c->lb_up;
    if (!u || !c->target || !u->health_used)
        return;
    tg_health_passive(u->health, c->target->health, event, status);
}

void tg__lb_response(tg_conn_t *c, tg_buf_t *o)
{
    tg_upstream_t *u = c->lb_up;
    if (!u || !c->target)
        return;
    tg_balancer_latency(u, c->w->id, c->target, (double)(c->t_proxy_done - c->t_upstream_start));
    if (c->lb_cookie[0]) {
        const tg_hash_src_t *h = u->hash_on.kind == TG_HASH_COOKIE ? &u->hash_on : &u->hash_fallback;
        tg_buf_append_lit(o, "Set-Cookie: ");
        tg_buf_append(o, h->name, h->name_len);
        tg_buf_append_lit(o, "=");
        tg_buf_append_str(o, c->lb_cookie);
        tg_buf_append_lit(o, "; Path=");
        tg_buf_append_str(o, u->cookie_path ? u->cookie_path : "/");
        tg_buf_append_lit(o, "; Same-Site=Lax; HttpOnly\r\n");
    }
}

void tg__lb_done(tg_conn_t *c)
{
    if (c->lb_up)
        tg_balancer_done(c->lb_up, c->w->id, &c->lb);
    c->lb_up = NULL;
    memset(&c->lb, 0, sizeof(c->lb));
    c->lb_cookie[0] = 0;
}

/* The Host sent upstream for a balanced request without preserve_host (built
 * with the target: the upstream's host_header, else the target's host and
 * port unless 80/443). */
const char *tg__lb_host(tg_conn_t *c, size_t *len)
{
    *len = c->target->host_header_len;
    return c->target->host_header;
}
