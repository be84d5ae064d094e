/* worker.h: worker threads — one event loop, one listener socket per address
 * (SO_REUSEPORT), one snapshot reference, one upstream keepalive pool each. */
#ifndef TG_WORKER_H
#define TG_WORKER_H

#include "tg.h"
#include "conf.h"
#include "snapshot.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>

typedef struct tg_conn_s tg_conn_t;
typedef struct tg_upconn_s tg_upconn_t;

typedef struct {
    atomic_ulong connections_accepted, connections_handled, total_requests;
    atomic_long connections_active, connections_reading, connections_writing;
} tg_server_stats_t;

extern tg_server_stats_t tg_stats;

typedef struct tg_worker_s {
    int id;
    pthread_t thread;
    struct event_base *base;
    const tg_conf_t *conf;
    int *listen_fds;
    struct event **listen_evs;
    size_t nlisten;
    int notify_fd; /* eventfd: snapshot changes, stop */
    struct event *notify_ev;
    tg_snapshot_t *snap; /* the snapshot new requests use */
    tg_router_cache_t *router_cache;
    tg_conn_t *conns;    /* live client connections (for graceful stop) */
    tg_conn_t *free_conns;
    tg_upconn_t *idle_up; /* upstream keepalive pool, newest first (proxy.c) */
    tg_upconn_t *idle_up_tail;
    tg_upconn_t *idle_bucket[256]; /* the same connections by address */
    size_t nidle_up;
    atomic_int stopping; /* 1 = graceful, 2 = fast */

    /* the plugin host (plugins.c) */
    struct lua_State *L;
    int execute_ref, configure_ref, phase_mask_ref, exit_ref;
    uint16_t *plugin_pos; /* per route position (0 = global): TG_PHASE_* bits plugins implement */
    size_t nplugin_pos;
    struct lua_State *co_pool[64]; /* finished request coroutines, reused */
    int co_pool_ref[64];
    int nco_pool;
    struct tg_sched_s *sched; /* timers, cosockets (lthread.c) */
} tg_worker_t;

/* Opens the listener sockets of every worker (so that bind errors are known
 * before the start is reported) and starts the threads. */
int tg_workers_start(const tg_conf_t *conf, int n, char *err, size_t errlen);
/* Tells every worker a new snapshot is published. */
void tg_workers_notify(void);
/* Graceful (stop accepting, finish in-flight, bounded by timeout_ms) or fast. */
void tg_workers_stop(bool graceful, int timeout_ms);
int tg_workers_count(void);
/* 1 once every worker has adopted a snapshot. */
bool tg_workers_ready(void);

/* proxy.c */
void tg_proxy_accept(tg_worker_t *w, int fd, const struct sockaddr *peer, socklen_t len,
                     const tg_listen_t *l);
void tg_proxy_close_idle(tg_worker_t *w);
size_t tg_proxy_live(tg_worker_t *w);

#endif
