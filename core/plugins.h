/* plugins.h: the plugin host — each worker's lua_State, the snapshot's plugin
 * configuration decoded in it, and the request phases run in coroutines
 * (DESIGN.md "Lua"; the Lua side is core/lua/tollgate/runloop.lua). */
#ifndef TG_PLUGINS_H
#define TG_PLUGINS_H

#include "worker.h"

/* Creates the worker's lua_State and runs runloop.init (loads the plugins
 * of `plugins = ...`). Called on the worker's thread. */
int tg_plugins_worker_init(tg_worker_t *w, char *err, size_t errlen);
void tg_plugins_worker_close(tg_worker_t *w);
/* Decodes the snapshot's plugin configuration (runloop.configure). */
int tg_plugins_configure(tg_worker_t *w, tg_snapshot_t *s);
/* Whether plugins may run for a route position (0: global ones, before routing). */
bool tg_plugins_active(const tg_worker_t *w, int pos);
/* Runs `phase` (TG_PHASE_*) for the request: 0, 500 when a plugin failed,
 * or TG_PLUGINS_PENDING when a plugin waits for I/O (rewrite, access,
 * response): the
 * request is parked and tg__proxy_plugins_done() is called with the phase's
 * status once it ends. */
#define TG_PLUGINS_PENDING (-1000)
/* The phases whose call sites in proxy.c handle TG_PLUGINS_PENDING. */
#define TG_PLUGINS_YIELDABLE                                                                       \
    (TG_PHASE_CERTIFICATE | TG_PHASE_REWRITE | TG_PHASE_ACCESS | TG_PHASE_RESPONSE)
int tg_plugins_run(tg_conn_t *c, int phase);
/* proxy.c: a parked phase ended with `st` (0 or 500). */
void tg__proxy_plugins_done(tg_conn_t *c, int phase, int st);
/* Drops a parked request's coroutine and what it waits for (the client went
 * away). */
void tg_plugins_abort(tg_conn_t *c);
/* The worker stops: pending timers run with premature = true. Returns how
 * many light threads are still alive. */
int tg_plugins_worker_stopping(tg_worker_t *w);
/* Whether some plugin of the request's route implements `phase`. */
bool tg_plugins_wants(const tg_conn_t *c, int phase);
/* Releases the request's coroutine and plugin state. */
void tg_plugins_request_done(tg_conn_t *c);

/* pdk.c: which worker this thread is (ngx.worker.id). */
void tg__pdk_set_worker(int id);

/* Loads plugins once on the control thread before workers start, so that a
 * plugin that cannot load refuses the start with Kong's message. */
int tg_plugins_check(const tg_conf_t *conf, char *err, size_t errlen);

#endif
