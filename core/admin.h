/* admin.h: the Admin API and status listeners (libevent's evhttp, control thread).
 *
 * Every admin_listen and status_listen address is bound on the control thread's
 * event_base. Each request is handed to Lua on the control lua_State:
 *
 *   status, headers, body = require("tollgate.admin").handle(req)   -- admin_listen
 *   status, headers, body = require("tollgate.status").handle(req)  -- status_listen
 *
 *   req = { method = "GET", path = "/services" (raw, no query), query = "size=2" or "",
 *           headers = { ["content-type"] = "...", ... } (lowercase names; repeated
 *           headers joined with ", "), body = "...", remote_addr = "127.0.0.1",
 *           remote_port = 51234, listener = "admin" | "status" }
 *
 * The C side adds what Kong's admin header filter adds: X-Kong-Admin-Latency
 * (when `headers` enables it) and Server: tollgate/<version> (server_tokens).
 * A Lua error answers 500 {"message":"An unexpected error occurred"} and logs
 * the traceback. One access log line per request (admin_access_log,
 * status_access_log), nginx's combined format. */
#ifndef TG_ADMIN_H
#define TG_ADMIN_H

#include "conf.h"

#include <event2/event.h>

/* Binds every admin_listen and status_listen address and starts serving.
 * `L` is the control thread's lua_State, only used from `base`'s thread; `conf`
 * must outlive the listeners. An ssl address is refused (TLS on these
 * listeners is not implemented yet). Returns 0, or a negative TG_E* with the
 * reason in err (nothing stays bound then). */
int tg_admin_start(struct event_base *base, lua_State *L, const tg_conf_t *conf, char *err,
                   size_t errlen);

/* Closes the listeners and frees the servers (idempotent). */
void tg_admin_stop(void);

#endif
