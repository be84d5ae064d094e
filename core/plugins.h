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
/* Runs `phase` (TG_PHASE_*) for the request: 0, or 500 when a plugin failed. */
int tg_plugins_run(tg_conn_t *c, int phase);
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
