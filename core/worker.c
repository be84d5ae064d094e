/* worker.c: worker threads, their listeners and their event queues. */
#include "worker.h"
#include "log.h"
#include "plugins.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

tg_server_stats_t tg_stats;

static tg_worker_t *workers;
static int nworkers;
static atomic_int nready;

/* Every worker binds its own socket with SO_REUSEPORT, which would also let a
 * second tollgate (another prefix, so another pid file) silently share the
 * port. A plain bind first proves nobody else listens there. */
static int probe_free(const tg_listen_t *l, char *err, size_t errlen)
{
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (l->addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    int rc = bind(fd, (const struct sockaddr *)&l->addr, l->addrlen);
    int e = errno;
    close(fd);
    if (rc != 0) {
        snprintf(err, errlen, "proxy_listen: bind() to %s:%u failed (%d: %s)", l->host, l->port,
                 e, strerror(e));
        return TG_ERROR;
    }
    return 0;
}

static int open_listener(const tg_listen_t *l, char *err, size_t errlen)
{
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket() for %s:%u failed: %s", l->host, l->port, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* Every worker has its own socket on the address, so SO_REUSEPORT is
     * always on; the pid file lock keeps a second instance off the port. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (l->addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (l->deferred)
        setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) != 0) {
        snprintf(err, errlen, "proxy_listen: bind() to %s:%u failed (%d: %s)", l->host, l->port,
                 errno, strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, l->backlog > 0 ? l->backlog : 511) != 0) {
        snprintf(err, errlen, "listen() on %s:%u failed: %s", l->host, l->port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void adopt_snapshot(tg_worker_t *w)
{
    tg_snapshot_t *s = tg_snapshot_current();
    if (!s)
        return;
    if (s == w->snap) {
        tg_snapshot_unref(s);
        return;
    }
    tg_snapshot_t *old = w->snap;
    w->snap = s;
    tg_plugins_configure(w, s);
    if (w->router_cache) {
        tg_router_cache_free(w->router_cache);
        w->router_cache = tg_router_cache_new(1024);
    }
    if (old) {
        old->per_worker[w->id].retired = true;
        if (old->per_worker[w->id].inflight == 0)
            tg_snapshot_unref(old);
    } else {
        atomic_fetch_add(&nready, 1);
    }
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    tg_worker_t *w = arg;
    size_t idx = 0;
    while (idx < w->nlisten && w->listen_fds[idx] != lfd)
        idx++;
    const tg_listen_t *l = &w->conf->proxy_listen[idx];
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            if (errno == EMFILE || errno == ENFILE)
                tg_log(TG_LOG_CRIT, "accept() failed: %s", strerror(errno));
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        atomic_fetch_add_explicit(&tg_stats.connections_accepted, 1, memory_order_relaxed);
        tg_proxy_accept(w, fd, (struct sockaddr *)&peer, len, l);
    }
}

static void close_listeners(tg_worker_t *w)
{
    for (size_t i = 0; i < w->nlisten; i++) {
        if (w->listen_evs[i]) {
            event_free(w->listen_evs[i]);
            w->listen_evs[i] = NULL;
        }
        if (w->listen_fds[i] >= 0) {
            close(w->listen_fds[i]);
            w->listen_fds[i] = -1;
        }
    }
}

static void check_drained(tg_worker_t *w)
{
    if (atomic_load(&w->stopping) == 2 || tg_proxy_live(w) == 0)
        event_base_loopbreak(w->base);
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    tg_worker_t *w = arg;
    uint64_t v;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        tg_log(TG_LOG_ERR, "worker %d: eventfd read: %s", w->id, strerror(errno));
    int stopping = atomic_load(&w->stopping);
    if (stopping) {
        tg_plugins_worker_stopping(w); /* timers run with premature = true */
        close_listeners(w);
        tg_proxy_close_idle(w);
        check_drained(w);
        return;
    }
    adopt_snapshot(w);
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    tg_worker_t *w = arg;
    if (atomic_load(&w->stopping)) {
        tg_proxy_close_idle(w);
        check_drained(w);
    }
}

static void *worker_main(void *arg)
{
    tg_worker_t *w = arg;
    char name[16];
    snprintf(name, sizeof(name), "tg-worker-%d", w->id);
    pthread_setname_np(pthread_self(), name);
    tg__pdk_set_worker(w->id);
    char err[4096];
    if (tg_plugins_worker_init(w, err, sizeof(err)) != 0)
        tg_log(TG_LOG_CRIT, "worker %d: the plugin host failed to start: %s", w->id, err);
    adopt_snapshot(w);
    struct timeval tick = {0, 100 * 1000};
    struct event *drain = event_new(w->base, -1, EV_PERSIST, on_drain_tick, w);
    event_add(drain, &tick);
    event_base_dispatch(w->base);
    if (tg_plugins_worker_stopping(w) > 0) {
        /* premature timers may still do I/O (a queue's last flush): bounded */
        struct timeval grace = {5, 0};
        event_base_loopexit(w->base, &grace);
        event_base_dispatch(w->base);
    }
    event_free(drain);
    close_listeners(w);
    tg_plugins_worker_close(w);
    return NULL;
}

int tg_workers_start(const tg_conf_t *conf, int n, char *err, size_t errlen)
{
    if (n < 1)
        n = 1;
    if (n > TG_MAX_WORKERS)
        n = TG_MAX_WORKERS;
    for (size_t j = 0; j < conf->nproxy_listen; j++)
        if (probe_free(&conf->proxy_listen[j], err, errlen) != 0)
            return TG_ERROR;
    workers = calloc((size_t)n, sizeof(*workers));
    nworkers = n;
    for (int i = 0; i < n; i++) {
        tg_worker_t *w = &workers[i];
        w->id = i;
        w->conf = conf;
        /* the changelist folds the del/add pairs of one loop turn (an event
         * that fired and is armed again) into nothing: no epoll_ctl */
        struct event_config *cfg = event_config_new();
        event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
        w->base = event_base_new_with_config(cfg);
        event_config_free(cfg);
        if (!w->base) {
            snprintf(err, errlen, "event_base_new() failed");
            return TG_ERROR;
        }
        w->router_cache = tg_router_cache_new(1024);
        w->nlisten = conf->nproxy_listen;
        w->listen_fds = calloc(w->nlisten + 1, sizeof(int));
        w->listen_evs = calloc(w->nlisten + 1, sizeof(struct event *));
        for (size_t j = 0; j < w->nlisten; j++) {
            w->listen_fds[j] = open_listener(&conf->proxy_listen[j], err, errlen);
            if (w->listen_fds[j] < 0)
                return TG_ERROR;
            w->listen_evs[j] = event_new(w->base, w->listen_fds[j], EV_READ | EV_PERSIST,
                                         on_accept, w);
            event_add(w->listen_evs[j], NULL);
        }
        w->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        w->notify_ev = event_new(w->base, w->notify_fd, EV_READ | EV_PERSIST, on_notify, w);
        event_add(w->notify_ev, NULL);
    }
    for (int i = 0; i < n; i++) {
        if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
            snprintf(err, errlen, "pthread_create failed");
            return TG_ERROR;
        }
    }
    return 0;
}

static void poke(tg_worker_t *w)
{
    uint64_t one = 1;
    if (write(w->notify_fd, &one, sizeof(one)) < 0)
        tg_log(TG_LOG_ERR, "worker %d: eventfd write: %s", w->id, strerror(errno));
}

void tg_workers_notify(void)
{
    for (int i = 0; i < nworkers; i++)
        poke(&workers[i]);
}

void tg_workers_stop(bool graceful, int timeout_ms)
{
    for (int i = 0; i < nworkers; i++) {
        atomic_store(&workers[i].stopping, graceful ? 1 : 2);
        poke(&workers[i]);
    }
    if (graceful && timeout_ms > 0) {
        /* escalate to a fast stop after the timeout */
        for (int waited = 0; waited < timeout_ms; waited += 50) {
            bool alive = false;
            for (int i = 0; i < nworkers; i++) {
                if (!workers[i].thread)
                    continue;
                if (pthread_tryjoin_np(workers[i].thread, NULL) == EBUSY)
                    alive = true;
                else
                    workers[i].thread = 0;
            }
            if (!alive)
                return;
            usleep(50 * 1000);
        }
        for (int i = 0; i < nworkers; i++) {
            if (!workers[i].thread)
                continue;
            atomic_store(&workers[i].stopping, 2);
            poke(&workers[i]);
        }
    }
    for (int i = 0; i < nworkers; i++)
        if (workers[i].thread)
            pthread_join(workers[i].thread, NULL);
}

int tg_workers_count(void)
{
    return nworkers;
}

bool tg_workers_ready(void)
{
    return nworkers > 0 && atomic_load(&nready) >= nworkers;
}
