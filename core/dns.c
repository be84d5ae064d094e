/* dns.c: the resolver behind service hosts (design in dns.h). */
#include "dns.h"
#include "log.h"

#include <ares.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum { Q_LAST = -1, T_A = 1, T_CNAME = 5, T_AAAA = 28, T_SRV = 33, C_IN = 1 };
#define MAX_ORDER 5

struct tg_dns_name_s {
    char *host;
    atomic_int refs; /* snapshots referring to it */
    pthread_mutex_t lock;
    tg_dns_answers_t *current;
    atomic_uint_fast64_t gen;
    struct {
        const tg_dns_answers_t *a; /* this worker's reference */
        uint64_t gen;
        uint32_t rr;
        char pad[40];
    } pw[TG_MAX_WORKERS];
    /* control thread only */
    struct tg_dns_name_s *next;
    struct event *timer;
    int last_type;
    bool busy;          /* a resolution is in flight */
    bool good;          /* current holds addresses */
    bool fixed;         /* an address or hostsfile name: never asked again */
    bool watched;       /* an upstream target's: a change of addresses is told */
    double stale_until; /* monotonic: a good set may be served until then */
};

typedef struct {
    char *target;
    uint16_t port;
    int weight;
} srv_t;

typedef struct {
    tg_dns_name_t *n;
    int types[MAX_ORDER];
    int ntypes, ti;
    int fail;        /* of the last query without records: 0, 503 (none) or 500 (error) */
    bool name_error; /* that query's answer was NXDOMAIN */
    bool stop;       /* a network failure: no other type is tried */
    char err[160];
    uint32_t ttl;
    srv_t *srv;
    size_t nsrv;
    uint16_t best_prio; /* of the SRV records kept */
    int pending;        /* target lookups in flight */
    tg_dns_addr_t *addrs;
    size_t naddrs, cap;
} job_t;

typedef struct {
    job_t *job;
    size_t srv;
    int type;
} sub_t;

typedef struct {
    char *name;
    struct sockaddr_storage addr;
    socklen_t addrlen;
} host_entry_t;

static struct {
    struct event_base *base;
    ares_channel ch;
    bool up;
    struct event *tev; /* c-ares timeouts */
    struct {
        int fd;
        struct event *ev;
    } socks[ARES_GETSOCK_MAXNUM * 4];
    size_t nsocks;
    tg_dns_name_t *names;
    int order[MAX_ORDER];
    int norder;
    bool want_aaaa;
    host_entry_t *hosts;
    size_t nhosts;
    int valid_ttl, stale_ttl, not_found_ttl, error_ttl;
} D;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- answer sets ---- */

static tg_dns_answers_t *answers_new(size_t n, int status, const char *msg)
{
    size_t ml = msg ? strlen(msg) + 1 : 0;
    tg_dns_answers_t *a = calloc(1, sizeof(*a) + n * sizeof(tg_dns_addr_t) + ml);
    atomic_init(&a->refs, 1);
    a->status = status;
    a->n = n;
    if (msg) {
        char *m = (char *)&a->a[n];
        memcpy(m, msg, ml);
        a->error = m;
    }
    return a;
}

static void answers_unref(const tg_dns_answers_t *c)
{
    tg_dns_answers_t *a = (tg_dns_answers_t *)c;
    if (a && atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) == 1)
        free(a);
}

static void (*on_change)(void); /* tg_dns_on_change */

void tg_dns_on_change(void (*fn)(void))
{
    on_change = fn;
}

/* Whether two answer sets hold the same addresses (ports, weights) in the
 * same order, or fail alike. */
static bool same_answers(const tg_dns_answers_t *a, const tg_dns_answers_t *b)
{
    if (!a || !b || a->status != b->status || a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (a->a[i].addrlen != b->a[i].addrlen || a->a[i].port != b->a[i].port ||
            a->a[i].weight != b->a[i].weight ||
            memcmp(&a->a[i].addr, &b->a[i].addr, a->a[i].addrlen) != 0)
            return false;
    return true;
}

/* Control thread: makes `a` the name's answers (takes ownership). */
static void publish(tg_dns_name_t *n, tg_dns_answers_t *a)
{
    pthread_mutex_lock(&n->lock);
    tg_dns_answers_t *old = n->current;
    n->current = a;
    atomic_fetch_add_explicit(&n->gen, 1, memory_order_release);
    pthread_mutex_unlock(&n->lock);
    n->good = a->status == 0;
    bool changed = n->watched && old && !same_answers(old, a);
    answers_unref(old);
    if (changed && on_change)
        on_change(); /* upstream targets: the balancer is built again */
}

static void publish_failure(tg_dns_name_t *n, int status, const char *err)
{
    char msg[400];
    if (status == 503)
        snprintf(msg, sizeof(msg), "name resolution failed");
    else
        snprintf(msg, sizeof(msg), "failed the initial dns/balancer resolve for '%s' with: %s",
                 n->host, err);
    publish(n, answers_new(0, status, msg));
}

/* ---- the worker side ---- */

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

const tg_dns_answers_t *tg_dns_answers(tg_dns_name_t *n, int worker)
{
    uint64_t g = atomic_load_explicit(&n->gen, memory_order_acquire);
    if (n->pw[worker].gen != g) {
        pthread_mutex_lock(&n->lock);
        tg_dns_answers_t *a = n->current;
        if (a)
            atomic_fetch_add_explicit(&a->refs, 1, memory_order_relaxed);
        g = atomic_load_explicit(&n->gen, memory_order_relaxed);
        pthread_mutex_unlock(&n->lock);
        answers_unref(n->pw[worker].a);
        n->pw[worker].a = a;
        n->pw[worker].gen = g;
    }
    return n->pw[worker].a;
}

int tg_dns_pick(tg_dns_name_t *n, int worker, uint16_t port, tg_target_t *out, const char **msg)
{
    const tg_dns_answers_t *a = tg_dns_answers(n, worker);
    if (!a || a->status || !a->n || a->total_weight <= 0) {
        *msg = a && a->status ? a->error : "name resolution failed";
        return a && a->status ? a->status : 503;
    }
    const tg_dns_addr_t *p = &a->a[0];
    if (a->n > 1) {
        /* a stride coprime with the total visits every position once per
         * cycle: exact shares, interleaved rather than in runs */
        uint32_t pos =
            (uint32_t)((uint64_t)n->pw[worker].rr++ * a->stride % (uint64_t)a->total_weight);
        for (size_t i = 0; i < a->n; i++) {
            if (pos < (uint32_t)a->a[i].weight) {
                p = &a->a[i];
                break;
            }
            pos -= (uint32_t)a->a[i].weight;
        }
    }
    memcpy(&out->addr, &p->addr, p->addrlen);
    out->addrlen = p->addrlen;
    set_port(&out->addr, p->port ? p->port : port);
    out->weight = p->weight;
    out->name = n->host;
    return 0;
}

/* ---- c-ares on the event_base ---- */

static void arm_timeout(void)
{
    struct timeval tv, *t = ares_timeout(D.ch, NULL, &tv);
    if (t)
        evtimer_add(D.tev, t);
    else
        evtimer_del(D.tev);
}

static void on_sock(evutil_socket_t fd, short what, void *arg)
{
    ares_process_fd(D.ch, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
                    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    arm_timeout();
}

static void on_ares_timeout(evutil_socket_t fd, short what, void *arg)
{
    ares_process_fd(D.ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    arm_timeout();
}

static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    size_t i = 0;
    while (i < D.nsocks && D.socks[i].fd != fd)
        i++;
    if (i < D.nsocks) {
        event_free(D.socks[i].ev);
        D.socks[i] = D.socks[--D.nsocks];
    }
    if (!readable && !writable)
        return;
    if (D.nsocks == TG_ARRAY_SIZE(D.socks)) {
        tg_log(TG_LOG_ERR, "dns: too many resolver sockets");
        return;
    }
    short ev = EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
    D.socks[D.nsocks].fd = fd;
    D.socks[D.nsocks].ev = event_new(D.base, fd, ev, on_sock, NULL);
    event_add(D.socks[D.nsocks].ev, NULL);
    D.nsocks++;
}

/* ---- answers on the wire ---- */

typedef struct {
    int type;
    uint32_t ttl;
    unsigned char addr[16];
    uint16_t prio, weight, port;
    char *target; /* SRV, CNAME: ares_free_string */
} rr_t;

static uint16_t rd16(const unsigned char *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* Walks the answer section, calling fn for each record. Returns 0 or -1. */
static int walk_answers(const unsigned char *buf, int len, void (*fn)(rr_t *, void *), void *arg)
{
    if (len < 12)
        return -1;
    int qd = rd16(buf + 4), an = rd16(buf + 6);
    const unsigned char *p = buf + 12, *end = buf + len;
    for (int i = 0; i < qd; i++) {
        char *name;
        long el;
        if (ares_expand_name(p, buf, len, &name, &el) != ARES_SUCCESS)
            return -1;
        ares_free_string(name);
        p += el + 4;
        if (p > end)
            return -1;
    }
    for (int i = 0; i < an; i++) {
        char *name;
        long el;
        if (ares_expand_name(p, buf, len, &name, &el) != ARES_SUCCESS)
            return -1;
        ares_free_string(name);
        p += el;
        if (p + 10 > end)
            return -1;
        rr_t r = {.type = rd16(p), .ttl = (uint32_t)rd16(p + 4) << 16 | rd16(p + 6)};
        int rdlen = rd16(p + 8);
        p += 10;
        if (p + rdlen > end)
            return -1;
        if (r.ttl > 0x7fffffff)
            r.ttl = 0;
        bool ok = false;
        if (r.type == T_A && rdlen == 4) {
            memcpy(r.addr, p, 4);
            ok = true;
        } else if (r.type == T_AAAA && rdlen == 16) {
            memcpy(r.addr, p, 16);
            ok = true;
        } else if (r.type == T_SRV && rdlen > 6) {
            r.prio = rd16(p);
            r.weight = rd16(p + 2);
            r.port = rd16(p + 4);
            ok = ares_expand_name(p + 6, buf, len, &r.target, &el) == ARES_SUCCESS;
        } else if (r.type == T_CNAME) {
            ok = ares_expand_name(p, buf, len, &r.target, &el) == ARES_SUCCESS;
        }
        if (ok) {
            fn(&r, arg);
            if (r.target)
                ares_free_string(r.target);
        }
        p += rdlen;
    }
    return 0;
}

/* ---- resolution jobs (control thread) ---- */

static void start_resolve(tg_dns_name_t *n);
static void on_answer(void *arg, int status, int timeouts, unsigned char *buf, int len);

static void arm_timer(tg_dns_name_t *n, double secs)
{
    struct timeval tv = {.tv_sec = (time_t)secs,
                         .tv_usec = (suseconds_t)((secs - (double)(time_t)secs) * 1e6)};
    evtimer_add(n->timer, &tv);
}

static void name_free(tg_dns_name_t *n)
{
    tg_dns_name_t **pp = &D.names;
    while (*pp && *pp != n)
        pp = &(*pp)->next;
    if (*pp)
        *pp = n->next;
    for (int i = 0; i < TG_MAX_WORKERS; i++)
        answers_unref(n->pw[i].a);
    answers_unref(n->current);
    if (n->timer)
        event_free(n->timer);
    pthread_mutex_destroy(&n->lock);
    free(n->host);
    free(n);
}

static void job_free(job_t *j)
{
    for (size_t i = 0; i < j->nsrv; i++)
        free(j->srv[i].target);
    free(j->srv);
    free(j->addrs);
    free(j);
}

static void add_addr(job_t *j, const struct sockaddr *sa, socklen_t len, uint16_t port, int weight)
{
    if (j->naddrs == j->cap) {
        j->cap = j->cap ? j->cap * 2 : 4;
        j->addrs = realloc(j->addrs, j->cap * sizeof(tg_dns_addr_t));
    }
    tg_dns_addr_t *a = &j->addrs[j->naddrs++];
    memset(a, 0, sizeof(*a));
    memcpy(&a->addr, sa, len);
    a->addrlen = len;
    a->port = port;
    a->weight = weight;
}

static void min_ttl(job_t *j, uint32_t ttl)
{
    if (ttl < j->ttl)
        j->ttl = ttl;
}

/* An IP literal or a hostsfile name: its addresses, without asking a server. */
static bool static_addrs(job_t *j, const char *host, uint16_t port, int weight)
{
    struct sockaddr_in s4 = {.sin_family = AF_INET};
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
    if (inet_pton(AF_INET, host, &s4.sin_addr) == 1) {
        add_addr(j, (struct sockaddr *)&s4, sizeof(s4), port, weight);
        return true;
    }
    if (inet_pton(AF_INET6, host, &s6.sin6_addr) == 1) {
        add_addr(j, (struct sockaddr *)&s6, sizeof(s6), port, weight);
        return true;
    }
    bool found = false, v4 = false;
    for (size_t i = 0; i < D.nhosts; i++)
        if (!strcasecmp(D.hosts[i].name, host) && D.hosts[i].addr.ss_family == AF_INET)
            v4 = true;
    for (size_t i = 0; i < D.nhosts; i++) {
        host_entry_t *h = &D.hosts[i];
        if (strcasecmp(h->name, host) != 0)
            continue;
        /* IPv6 entries only when AAAA is asked for, or when they are all there is */
        if (h->addr.ss_family == AF_INET6 && v4 && !D.want_aaaa)
            continue;
        add_addr(j, (struct sockaddr *)&h->addr, h->addrlen, port, weight);
        found = true;
    }
    return found;
}

static uint32_t gcd(uint32_t a, uint32_t b)
{
    while (b) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* The job's addresses as an answer set. */
static tg_dns_answers_t *answers_of(const job_t *j)
{
    tg_dns_answers_t *a = answers_new(j->naddrs, 0, NULL);
    for (size_t i = 0; i < j->naddrs; i++) {
        a->a[i] = j->addrs[i];
        a->total_weight += a->a[i].weight;
    }
    uint32_t total = (uint32_t)a->total_weight;
    a->stride = total > 2 ? total * 5 / 8 : 1; /* near the golden ratio of the cycle */
    while (total > 1 && gcd(a->stride, total) != 1)
        a->stride++;
    return a;
}

static void job_finish(job_t *j)
{
    tg_dns_name_t *n = j->n;
    n->busy = false;
    if (atomic_load(&n->refs) == 0) {
        job_free(j);
        name_free(n);
        return;
    }
    double now = now_s();
    if (j->naddrs > 0) {
        tg_dns_answers_t *a = answers_of(j);
        uint32_t ttl = D.valid_ttl >= 0 ? (uint32_t)D.valid_ttl : j->ttl;
        if (ttl < 1)
            ttl = 1;
        n->last_type = j->types[j->ti - 1];
        publish(n, a);
        n->stale_until = now + ttl + D.stale_ttl;
        arm_timer(n, ttl);
    } else if (!j->name_error && n->good && now < n->stale_until) {
        /* as Kong's cache: only NXDOMAIN replaces answers that are still usable */
        tg_log(TG_LOG_WARN, "dns: %s: %s, serving the previous answers", n->host, j->err);
        double next = D.error_ttl > 0 ? D.error_ttl : 1;
        if (now + next > n->stale_until)
            next = n->stale_until - now;
        arm_timer(n, next);
    } else {
        int st = j->fail ? j->fail : 503;
        tg_log(TG_LOG_ERR, "dns: %s: %s", n->host, j->err[0] ? j->err : "no records");
        publish_failure(n, st, j->err);
        int again = st == 503 ? D.not_found_ttl : D.error_ttl;
        arm_timer(n, again > 0 ? again : 1); /* 0 would ask in a loop */
    }
    job_free(j);
}

static void on_target(void *arg, int status, int timeouts, unsigned char *buf, int len);

/* A query that gave no records. As Kong's resolver, the last one is what a
 * request is told (in Kong's words: rcode and its name), an answer with an
 * error moves on to the next type, and a network failure ends the attempt. */
static void set_error(job_t *j, int status)
{
    const char *what;
    j->fail = 500;
    j->name_error = status == ARES_ENOTFOUND;
    switch (status) {
    case ARES_ENOTFOUND:
        j->fail = 503;
        what = "dns server error: 3 name error";
        break;
    case ARES_SUCCESS:
    case ARES_ENODATA:
        j->fail = 503;
        what = "dns client error: 101 empty record received";
        break;
    case ARES_EFORMERR:
        what = "dns server error: 1 format error";
        break;
    case ARES_ESERVFAIL:
        what = "dns server error: 2 server failure";
        break;
    case ARES_ENOTIMP:
        what = "dns server error: 4 not implemented";
        break;
    case ARES_EREFUSED:
        what = "dns server error: 5 refused";
        break;
    default:
        j->stop = true;
        what = status == ARES_ETIMEOUT ? "dns server error: timeout" : ares_strerror(status);
    }
    snprintf(j->err, sizeof(j->err), "%s", what);
}

static void query(const char *name, int type, ares_callback cb, void *arg)
{
    ares_search(D.ch, name, C_IN, type, cb, arg);
}

static void next_type(job_t *j)
{
    if (j->ti >= j->ntypes || j->stop) {
        job_finish(j);
        return;
    }
    for (size_t i = 0; i < j->nsrv; i++) /* targets of a type that gave no address */
        free(j->srv[i].target);
    j->nsrv = 0;
    query(j->n->host, j->types[j->ti++], on_answer, j);
}

/* A target (SRV or CNAME) resolved or failed: finish when it was the last. */
static void target_done(job_t *j)
{
    if (--j->pending > 0)
        return;
    if (j->naddrs > 0) {
        job_finish(j);
        return;
    }
    if (!j->fail)
        set_error(j, ARES_ENODATA);
    next_type(j);
}

static void add_rr_addr(job_t *j, const rr_t *r, uint16_t port, int weight)
{
    if (r->type == T_A) {
        struct sockaddr_in a = {.sin_family = AF_INET};
        memcpy(&a.sin_addr, r->addr, 4);
        add_addr(j, (struct sockaddr *)&a, sizeof(a), port, weight);
    } else {
        struct sockaddr_in6 a = {.sin6_family = AF_INET6};
        memcpy(&a.sin6_addr, r->addr, 16);
        add_addr(j, (struct sockaddr *)&a, sizeof(a), port, weight);
    }
    min_ttl(j, r->ttl);
}

static void collect_addr(rr_t *r, void *arg)
{
    sub_t *s = arg;
    if (r->type == s->type)
        add_rr_addr(s->job, r, s->job->srv[s->srv].port, s->job->srv[s->srv].weight);
}

static void on_target(void *arg, int status, int timeouts, unsigned char *buf, int len)
{
    sub_t *s = arg;
    job_t *j = s->job;
    if (status == ARES_EDESTRUCTION) {
        free(s);
        if (--j->pending == 0)
            job_free(j);
        return;
    }
    size_t before = j->naddrs;
    if (status == ARES_SUCCESS)
        walk_answers(buf, len, collect_addr, s);
    if (j->naddrs == before && s->type == T_A && D.want_aaaa &&
        (status == ARES_SUCCESS || status == ARES_ENODATA || status == ARES_ENOTFOUND)) {
        s->type = T_AAAA; /* a target with no IPv4 address: try IPv6 */
        query(j->srv[s->srv].target, T_AAAA, on_target, s);
        return;
    }
    if (j->naddrs == before)
        set_error(j, status);
    free(s);
    target_done(j);
}

static void collect(rr_t *r, void *arg)
{
    job_t *j = arg;
    int want = j->types[j->ti - 1];
    if (r->type != want)
        return;
    if (want == T_A || want == T_AAAA) {
        add_rr_addr(j, r, 0, 100);
        return;
    }
    /* SRV (lowest priority only) or CNAME: targets to resolve */
    if (want == T_SRV && j->nsrv > 0 && r->prio > j->best_prio)
        return;
    if (want == T_SRV && j->nsrv > 0 && r->prio < j->best_prio) {
        for (size_t i = 0; i < j->nsrv; i++)
            free(j->srv[i].target);
        j->nsrv = 0;
    }
    j->best_prio = r->prio;
    j->srv = realloc(j->srv, (j->nsrv + 1) * sizeof(srv_t));
    srv_t *t = &j->srv[j->nsrv++];
    t->target = strdup(r->target);
    t->port = want == T_SRV ? r->port : 0;
    t->weight = want == T_SRV ? (r->weight ? r->weight : 1) : 100;
    min_ttl(j, r->ttl);
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *buf, int len)
{
    job_t *j = arg;
    if (status == ARES_EDESTRUCTION) {
        job_free(j);
        return;
    }
    if (status == ARES_SUCCESS) {
        j->ttl = UINT32_MAX;
        walk_answers(buf, len, collect, j);
        if (j->naddrs > 0) {
            job_finish(j);
            return;
        }
        if (j->nsrv > 0) {
            /* resolve the targets; the pending count covers this loop */
            j->pending = 1;
            for (size_t i = 0; i < j->nsrv; i++) {
                if (static_addrs(j, j->srv[i].target, j->srv[i].port, j->srv[i].weight))
                    continue;
                sub_t *s = calloc(1, sizeof(*s));
                s->job = j;
                s->srv = i;
                s->type = T_A;
                j->pending++;
                query(j->srv[i].target, T_A, on_target, s);
            }
            target_done(j);
            return;
        }
        status = ARES_ENODATA;
    }
    set_error(j, status);
    next_type(j);
}

static void start_resolve(tg_dns_name_t *n)
{
    job_t *j = calloc(1, sizeof(*j));
    j->n = n;
    j->ttl = UINT32_MAX;
    n->busy = true;
    if (static_addrs(j, n->host, 0, 100)) {
        /* hostsfile entries do not expire */
        n->busy = false;
        tg_dns_answers_t *a = answers_of(j);
        publish(n, a);
        n->stale_until = 1e300;
        n->fixed = true;
        arm_timer(n, 60); /* only to free it once unused */
        job_free(j);
        return;
    }
    for (int i = 0; i < D.norder; i++) {
        int t = D.order[i] == Q_LAST ? n->last_type : D.order[i];
        bool dup = t == 0;
        for (int k = 0; k < j->ntypes && !dup; k++)
            dup = j->types[k] == t;
        if (!dup)
            j->types[j->ntypes++] = t;
    }
    next_type(j);
    arm_timeout();
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    tg_dns_name_t *n = arg;
    if (n->busy) {
        /* a refresh still waiting on a silent server: stale answers end here */
        if (n->good && now_s() >= n->stale_until)
            publish_failure(n, 500, "dns server error: timeout");
        return;
    }
    if (atomic_load(&n->refs) == 0) {
        name_free(n);
        return;
    }
    if (n->fixed) {
        arm_timer(n, 60);
        return;
    }
    if (n->good && now_s() >= n->stale_until)
        publish_failure(n, 500, "dns server error: timeout");
    start_resolve(n);
    if (n->busy && n->good)
        arm_timer(n, n->stale_until - now_s() > 0 ? n->stale_until - now_s() : 0);
}

/* ---- the table ---- */

tg_dns_name_t *tg_dns_name_get(const char *host)
{
    if (!D.up)
        return NULL;
    for (tg_dns_name_t *n = D.names; n; n = n->next) {
        if (!strcasecmp(n->host, host)) {
            atomic_fetch_add(&n->refs, 1);
            return n;
        }
    }
    tg_dns_name_t *n = calloc(1, sizeof(*n));
    n->host = strdup(host);
    atomic_init(&n->refs, 1);
    atomic_init(&n->gen, 0);
    pthread_mutex_init(&n->lock, NULL);
    n->timer = evtimer_new(D.base, on_timer, n);
    n->next = D.names;
    D.names = n;
    start_resolve(n);
    return n;
}

void tg_dns_name_release(tg_dns_name_t *n)
{
    if (n)
        atomic_fetch_sub_explicit(&n->refs, 1, memory_order_acq_rel);
}

void tg_dns_wait(int timeout_ms)
{
    if (!D.up)
        return;
    double deadline = now_s() + timeout_ms / 1000.0;
    for (;;) {
        bool waiting = false;
        for (tg_dns_name_t *n = D.names; n && !waiting; n = n->next)
            waiting = n->busy && !n->current;
        double left = deadline - now_s();
        if (!waiting || left <= 0)
            break;
        ares_socket_t socks[ARES_GETSOCK_MAXNUM];
        int bits = ares_getsock(D.ch, socks, ARES_GETSOCK_MAXNUM);
        struct pollfd pfd[ARES_GETSOCK_MAXNUM];
        int np = 0;
        for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
            /* c-ares' ARES_GETSOCK_WRITABLE shifts a signed 1 by up to 31 */
            unsigned ub = (unsigned)bits;
            short ev = (short)((ub & (1u << i) ? POLLIN : 0) |
                               (ub & (1u << (i + ARES_GETSOCK_MAXNUM)) ? POLLOUT : 0));
            if (ev)
                pfd[np++] = (struct pollfd){.fd = socks[i], .events = ev};
        }
        struct timeval maxtv = {.tv_sec = (time_t)left,
                                .tv_usec = (suseconds_t)((left - (double)(time_t)left) * 1e6)},
                       tv;
        struct timeval *t = ares_timeout(D.ch, &maxtv, &tv);
        int ms = (int)(t->tv_sec * 1000 + t->tv_usec / 1000) + 1;
        int r = poll(pfd, (nfds_t)np, ms);
        if (r <= 0) {
            ares_process_fd(D.ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
            continue;
        }
        for (int i = 0; i < np; i++)
            if (pfd[i].revents)
                ares_process_fd(D.ch,
                                (pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) ? pfd[i].fd
                                                                                : ARES_SOCKET_BAD,
                                (pfd[i].revents & POLLOUT) ? pfd[i].fd : ARES_SOCKET_BAD);
    }
    arm_timeout();
}

int tg_dns_resolve_now(const char *host, uint16_t port, tg_target_t *t, char *err, size_t errlen)
{
    tg_dns_name_t *n = tg_dns_name_get(host);
    if (!n) {
        snprintf(err, errlen, "no resolver");
        return TG_ENOTFOUND;
    }
    tg_dns_wait(5000);
    const tg_dns_answers_t *a = n->current; /* written by this thread only */
    int rc = 0;
    if (!a || a->status || !a->n) {
        snprintf(err, errlen, "%s", a && a->status ? a->error : "name resolution failed");
        rc = TG_ENOTFOUND;
    } else {
        const tg_dns_addr_t *p = &a->a[0];
        memcpy(&t->addr, &p->addr, p->addrlen);
        t->addrlen = p->addrlen;
        set_port(&t->addr, p->port ? p->port : port);
    }
    tg_dns_name_release(n);
    return rc;
}

int tg_dns_resolve_all(const char *host, uint16_t port, tg_target_t *out, size_t max,
                       tg_dns_name_t **keep, char *err, size_t errlen)
{
    *keep = NULL;
    tg_dns_name_t *n = tg_dns_name_get(host);
    if (!n) {
        snprintf(err, errlen, "no resolver");
        return TG_ENOTFOUND;
    }
    n->watched = true;
    if (!n->current)
        tg_dns_wait(5000);
    const tg_dns_answers_t *a = n->current; /* written by this thread only */
    *keep = n;
    if (!a || a->status || !a->n) {
        snprintf(err, errlen, "%s", a && a->status ? a->error : "name resolution failed");
        return TG_ENOTFOUND;
    }
    size_t k = a->n < max ? a->n : max;
    for (size_t i = 0; i < k; i++) {
        const tg_dns_addr_t *p = &a->a[i];
        memcpy(&out[i].addr, &p->addr, p->addrlen);
        out[i].addrlen = p->addrlen;
        set_port(&out[i].addr, p->port ? p->port : port);
        out[i].weight = p->port ? p->weight : 0; /* an SRV record's own weight */
    }
    return (int)k;
}

/* ---- set-up ---- */

static void read_hostsfile(const char *path)
{
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f)
        return;
    char line[1024];
    size_t cap = 0;
    while (fgets(line, sizeof(line), f)) {
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char *save = NULL, *ip = strtok_r(line, " \t\r\n", &save);
        if (!ip)
            continue;
        struct sockaddr_storage ss = {0};
        socklen_t len;
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
            s4->sin_family = AF_INET;
            len = sizeof(*s4);
        } else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1) {
            s6->sin6_family = AF_INET6;
            len = sizeof(*s6);
        } else {
            continue;
        }
        for (char *name; (name = strtok_r(NULL, " \t\r\n", &save));) {
            if (D.nhosts == cap) {
                cap = cap ? cap * 2 : 16;
                D.hosts = realloc(D.hosts, cap * sizeof(host_entry_t));
            }
            D.hosts[D.nhosts++] = (host_entry_t){.name = strdup(name), .addr = ss, .addrlen = len};
        }
    }
    fclose(f);
}

int tg_dns_init(struct event_base *base, const tg_conf_t *conf, char *err, size_t errlen)
{
    int rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "dns: %s", ares_strerror(rc));
        return TG_EINVAL;
    }
    /* NOCHECKRESP: a SERVFAIL or REFUSED answer is reported as such rather
     * than retried until it reads "could not contact DNS servers" */
    struct ares_options o = {.sock_state_cb = sock_state,
                             .flags = ARES_FLAG_NOCHECKRESP,
                             .timeout = 2000,
                             .tries = 2,
                             .lookups = (char *)"b"};
    rc = ares_init_options(&D.ch, &o,
                           ARES_OPT_SOCK_STATE_CB | ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS |
                               ARES_OPT_TRIES | ARES_OPT_LOOKUPS);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "dns: could not create the resolver: %s", ares_strerror(rc));
        ares_library_cleanup();
        return TG_EINVAL;
    }
    if (conf->ndns_resolver > 0) {
        char csv[2048] = "";
        for (size_t i = 0; i < conf->ndns_resolver; i++)
            snprintf(csv + strlen(csv), sizeof(csv) - strlen(csv), "%s%s", i ? "," : "",
                     conf->dns_resolver[i]);
        rc = ares_set_servers_ports_csv(D.ch, csv);
        if (rc != ARES_SUCCESS) {
            snprintf(err, errlen, "dns_resolver: %s", ares_strerror(rc));
            ares_destroy(D.ch);
            ares_library_cleanup();
            return TG_EINVAL;
        }
    }
    D.base = base;
    D.tev = evtimer_new(base, on_ares_timeout, NULL);
    D.norder = 0;
    for (size_t i = 0; i < conf->ndns_order && D.norder < MAX_ORDER; i++) {
        const char *o2 = conf->dns_order[i];
        int t = !strcasecmp(o2, "LAST")    ? Q_LAST
                : !strcasecmp(o2, "SRV")   ? T_SRV
                : !strcasecmp(o2, "A")     ? T_A
                : !strcasecmp(o2, "AAAA")  ? T_AAAA
                : !strcasecmp(o2, "CNAME") ? T_CNAME
                                           : 0;
        if (t)
            D.order[D.norder++] = t;
        if (t == T_AAAA)
            D.want_aaaa = true;
    }
    D.valid_ttl = conf->dns_valid_ttl;
    D.stale_ttl = conf->dns_stale_ttl;
    D.not_found_ttl = conf->dns_not_found_ttl;
    D.error_ttl = conf->dns_error_ttl;
    read_hostsfile(conf->dns_hostsfile);
    D.up = true;
    return 0;
}

void tg_dns_shutdown(void)
{
    if (!D.up)
        return;
    D.up = false;
    ares_destroy(D.ch); /* pending callbacks run with ARES_EDESTRUCTION */
    while (D.nsocks > 0)
        event_free(D.socks[--D.nsocks].ev);
    event_free(D.tev);
    for (tg_dns_name_t *n = D.names; n; n = n->next)
        if (n->timer) {
            event_free(n->timer);
            n->timer = NULL;
            n->busy = false;
        }
    for (size_t i = 0; i < D.nhosts; i++)
        free(D.hosts[i].name);
    free(D.hosts);
    D.hosts = NULL;
    D.nhosts = 0;
    ares_library_cleanup();
}
