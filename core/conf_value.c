/* conf_value.c: the value syntaxes of tollgate.conf — Kong's listen lists,
 * nginx sizes and times, CIDRs and the trusted_ips match — and the small string
 * helpers the loader (conf.c) shares. */
#include "conf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- strings ---- */

int tg__conf_strv_push(tg__conf_strv_t *s, char *p)
{
    if (!p)
        return TG_ENOMEM;
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 8;
        char **nv = realloc(s->v, ncap * sizeof(*nv));
        if (!nv) {
            free(p);
            return TG_ENOMEM;
        }
        s->v = nv;
        s->cap = ncap;
    }
    s->v[s->n++] = p;
    return 0;
}

void tg__conf_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

char *tg__conf_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int tg__conf_split(const char *value, char ***out, size_t *n)
{
    tg__conf_strv_t sv = {0};
    *out = NULL;
    *n = 0;
    char *copy = strdup(value);
    if (!copy)
        return TG_ENOMEM;
    int rc = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *t = tg__conf_trim(tok);
        if (*t && (rc = tg__conf_strv_push(&sv, strdup(t))) != 0)
            break;
    }
    free(copy);
    *out = sv.v;
    *n = sv.n;
    return rc;
}

/* ---- numbers, sizes, times ---- */

int tg__conf_parse_int(const char *v, long long lo, long long hi, long long *out)
{
    if (!*v)
        return TG_EINVAL;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end || x < lo || x > hi)
        return TG_EINVAL;
    *out = x;
    return 0;
}

int tg_conf_parse_size(const char *v, size_t *out)
{
    if (!v || !isdigit((unsigned char)*v))
        return TG_EINVAL;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno)
        return TG_EINVAL;
    unsigned long long mul = 1;
    if (*end) {
        switch (*end) {
        case 'k': case 'K': mul = 1ull << 10; break;
        case 'm': case 'M': mul = 1ull << 20; break;
        case 'g': case 'G': mul = 1ull << 30; break;
        default: return TG_EINVAL;
        }
        if (end[1])
            return TG_EINVAL;
    }
    if (x > SIZE_MAX / mul)
        return TG_EINVAL;
    *out = (size_t)(x * mul);
    return 0;
}

int tg_conf_parse_time_ms(const char *v, int *out)
{
    /* nginx: a sequence of <number><unit>, units ms s m h d w; none = seconds. */
    if (!v || !*v)
        return TG_EINVAL;
    long long total = 0;
    const char *p = v;
    while (*p) {
        if (!isdigit((unsigned char)*p))
            return TG_EINVAL;
        long long x = 0;
        while (isdigit((unsigned char)*p)) {
            x = x * 10 + (*p++ - '0');
            if (x > INT_MAX)
                return TG_EINVAL;
        }
        long long mul;
        if (strncmp(p, "ms", 2) == 0) {
            mul = 1;
            p += 2;
        } else if (*p == 's' || *p == '\0') {
            mul = 1000;
            p += *p ? 1 : 0;
        } else if (*p == 'm') {
            mul = 60000;
            p++;
        } else if (*p == 'h') {
            mul = 3600000;
            p++;
        } else if (*p == 'd') {
            mul = 86400000;
            p++;
        } else if (*p == 'w') {
            mul = 7 * 86400000LL;
            p++;
        } else {
            return TG_EINVAL;
        }
        total += x * mul;
        if (total > INT_MAX)
            return TG_EINVAL;
    }
    *out = (int)total;
    return 0;
}

/* ---- listeners ---- */

static const char *const listen_flags_usage =
    "[ssl] [http2] [proxy_protocol] [deferred] [bind] [reuseport] [backlog=%d+] "
    "[ipv6only=on] [ipv6only=off] [so_keepalive=on] [so_keepalive=off] "
    "[so_keepalive=%w*:%w*:%d*]";

static int listen_usage(char *err, size_t errlen)
{
    snprintf(err, errlen, "must be of form: [off] | <ip>:<port> %s, [... next entry ...]",
             listen_flags_usage);
    return TG_EINVAL;
}

static int parse_listen_flag(tg_listen_t *l, const char *t)
{
    long long x;
    if (strcmp(t, "ssl") == 0)
        l->ssl = true;
    else if (strcmp(t, "http2") == 0)
        l->http2 = true;
    else if (strcmp(t, "proxy_protocol") == 0)
        l->proxy_protocol = true;
    else if (strcmp(t, "deferred") == 0)
        l->deferred = true;
    else if (strcmp(t, "bind") == 0)
        l->bind = true;
    else if (strcmp(t, "reuseport") == 0)
        l->reuseport = true;
    else if (strncmp(t, "backlog=", 8) == 0 && tg__conf_parse_int(t + 8, 1, INT_MAX, &x) == 0)
        l->backlog = (int)x;
    else if (strcmp(t, "ipv6only=on") == 0)
        l->ipv6only = 1;
    else if (strcmp(t, "ipv6only=off") == 0)
        l->ipv6only = 0;
    else if (strcmp(t, "so_keepalive=on") == 0)
        l->so_keepalive = 1;
    else if (strcmp(t, "so_keepalive=off") == 0)
        l->so_keepalive = 0;
    else if (strncmp(t, "so_keepalive=", 13) == 0) {
        /* idle:intvl:cnt, each optional; idle/intvl may carry s/m/h units */
        char buf[64];
        snprintf(buf, sizeof(buf), "%s", t + 13);
        char *parts[3] = {buf, NULL, NULL};
        char *c1 = strchr(buf, ':');
        if (!c1)
            return TG_EINVAL;
        *c1 = '\0';
        parts[1] = c1 + 1;
        char *c2 = strchr(parts[1], ':');
        if (!c2)
            return TG_EINVAL;
        *c2 = '\0';
        parts[2] = c2 + 1;
        int vals[3] = {0, 0, 0};
        for (int i = 0; i < 3; i++) {
            if (!*parts[i])
                continue;
            if (i < 2) {
                int ms;
                if (tg_conf_parse_time_ms(parts[i], &ms) != 0)
                    return TG_EINVAL;
                vals[i] = ms / 1000;
            } else {
                if (tg__conf_parse_int(parts[i], 0, INT_MAX, &x) != 0)
                    return TG_EINVAL;
                vals[i] = (int)x;
            }
        }
        l->so_keepalive = 1;
        l->keepidle = vals[0];
        l->keepintvl = vals[1];
        l->keepcnt = vals[2];
    } else
        return TG_EINVAL;
    return 0;
}

static int parse_listen_addr(tg_listen_t *l, const char *a)
{
    char host[256];
    const char *colon;
    if (a[0] == '[') {
        const char *rb = strchr(a, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - a - 1) >= sizeof(host))
            return TG_EINVAL;
        memcpy(host, a + 1, (size_t)(rb - a - 1));
        host[rb - a - 1] = '\0';
        colon = rb + 1;
    } else {
        colon = strrchr(a, ':');
        if (!colon || colon == a || (size_t)(colon - a) >= sizeof(host))
            return TG_EINVAL;
        memcpy(host, a, (size_t)(colon - a));
        host[colon - a] = '\0';
        if (strchr(host, ':'))
            return TG_EINVAL; /* IPv6 without brackets */
    }
    long long port;
    if (tg__conf_parse_int(colon + 1, 0, 65535, &port) != 0)
        return TG_EINVAL;
    l->port = (uint16_t)port;
    memset(&l->addr, 0, sizeof(l->addr));
    struct sockaddr_in *s4 = (struct sockaddr_in *)&l->addr;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&l->addr;
    if (strcmp(host, "*") == 0 || inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        if (strcmp(host, "*") == 0)
            s4->sin_addr.s_addr = htonl(INADDR_ANY);
        s4->sin_family = AF_INET;
        s4->sin_port = htons(l->port);
        l->addrlen = sizeof(*s4);
        inet_ntop(AF_INET, &s4->sin_addr, l->host, sizeof(l->host));
    } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(l->port);
        l->addrlen = sizeof(*s6);
        char norm[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &s6->sin6_addr, norm, sizeof(norm));
        snprintf(l->host, sizeof(l->host), "[%s]", norm);
    } else {
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
        struct addrinfo *res = NULL;
        char portstr[8];
        snprintf(portstr, sizeof(portstr), "%u", l->port);
        if (getaddrinfo(host, portstr, &hints, &res) != 0 || !res)
            return TG_ENOTFOUND;
        memcpy(&l->addr, res->ai_addr, res->ai_addrlen);
        l->addrlen = res->ai_addrlen;
        freeaddrinfo(res);
        snprintf(l->host, sizeof(l->host), "%s", host);
    }
    return 0;
}

int tg_conf_parse_listen(const char *value, tg_listen_t **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    tg__conf_strv_t entries = {0};
    if (!value || tg__conf_split(value, &entries.v, &entries.n) != 0 || entries.n == 0) {
        tg__conf_strv_free(entries.v, entries.n);
        return listen_usage(err, errlen);
    }
    if (strcmp(entries.v[0], "off") == 0) {
        tg__conf_strv_free(entries.v, entries.n);
        return 0;
    }
    tg_listen_t *ls = calloc(entries.n, sizeof(*ls));
    if (!ls) {
        tg__conf_strv_free(entries.v, entries.n);
        return TG_ENOMEM;
    }
    int rc = 0;
    for (size_t i = 0; i < entries.n && rc == 0; i++) {
        tg_listen_t *l = &ls[i];
        l->backlog = -1;
        l->ipv6only = -1;
        l->so_keepalive = -1;
        bool have_addr = false;
        char *save = NULL;
        for (char *t = strtok_r(entries.v[i], " \t", &save); t && rc == 0;
             t = strtok_r(NULL, " \t", &save)) {
            if (parse_listen_flag(l, t) == 0)
                continue;
            if (have_addr) {
                rc = listen_usage(err, errlen);
                break;
            }
            int r = parse_listen_addr(l, t);
            if (r == TG_ENOTFOUND) {
                snprintf(err, errlen, "could not resolve '%s'", t);
                rc = TG_EINVAL;
            } else if (r != 0) {
                rc = listen_usage(err, errlen);
            }
            have_addr = true;
        }
        if (rc == 0 && !have_addr)
            rc = listen_usage(err, errlen);
    }
    tg__conf_strv_free(entries.v, entries.n);
    if (rc != 0) {
        free(ls);
        return rc;
    }
    *out = ls;
    *n = entries.n;
    return 0;
}

/* ---- trusted_ips ---- */

int tg_conf_parse_cidr(const char *s, tg_cidr_t *c)
{
    char buf[INET6_ADDRSTRLEN + 8];
    if (strlen(s) >= sizeof(buf))
        return TG_EINVAL;
    strcpy(buf, s);
    char *slash = strchr(buf, '/');
    long long bits = -1;
    if (slash) {
        *slash = '\0';
        if (tg__conf_parse_int(slash + 1, 0, 128, &bits) != 0)
            return TG_EINVAL;
    }
    memset(c, 0, sizeof(*c));
    if (inet_pton(AF_INET, buf, c->addr) == 1) {
        c->family = AF_INET;
        if (bits > 32)
            return TG_EINVAL;
        c->bits = bits < 0 ? 32 : (int)bits;
    } else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
        c->family = AF_INET6;
        c->bits = bits < 0 ? 128 : (int)bits;
    } else {
        return TG_EINVAL;
    }
    /* mask the host part so matching is a straight compare */
    int nbytes = c->family == AF_INET ? 4 : 16;
    for (int i = 0; i < nbytes; i++) {
        int keep = c->bits - i * 8;
        uint8_t mask = keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
        c->addr[i] &= mask;
    }
    return 0;
}

static bool cidr_match(const tg_cidr_t *c, const uint8_t *a)
{
    int full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->addr, a, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == c->addr[full];
}

bool tg_conf_ip_trusted(const tg_conf_t *c, const struct sockaddr *sa)
{
    if (!c || !sa)
        return false;
    const uint8_t *a;
    int family = sa->sa_family;
    if (family == AF_UNIX)
        return c->trusted_unix;
    if (family == AF_INET) {
        a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    } else if (family == AF_INET6) {
        const struct in6_addr *in6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        a = (const uint8_t *)in6;
        if (IN6_IS_ADDR_V4MAPPED(in6)) {
            family = AF_INET;
            a += 12;
        }
    } else {
        return false;
    }
    if (family == AF_INET ? c->trusted_all4 : c->trusted_all6)
        return true;
    for (size_t i = 0; i < c->ntrusted_ips; i++)
        if (c->trusted_ips[i].family == family && cidr_match(&c->trusted_ips[i], a))
            return true;
    return false;
}
