/* lthread.h: light threads on an event loop — what lets plugin code yield on
 * I/O (DESIGN.md "Lua"). The Lua side is core/lua/tollgate/sched.lua.
 *
 * A coroutine parks by yielding one "wait" (a userdata of tollgate.c.sched:
 * a timer, a file descriptor with a deadline, or a manual wake-up). Whoever
 * resumed it at the top (plugins.c for a request's coroutine, this file for
 * timers and ngx.thread children) arms the wait; when it fires the top
 * coroutine is resumed with "ok", "timeout" or "premature". */
#ifndef TG_LTHREAD_H
#define TG_LTHREAD_H

#include <event2/event.h>
#include <lua.h>
#include <stdbool.h>

typedef struct tg_sched_s tg_sched_t;

/* How a request's parked coroutine is resumed: `owner` is the request, `res`
 * the wait's result. Set by plugins.c. */
typedef void (*tg_sched_wake_fn)(void *owner, const char *res);
/* A request's current phase (set < 0) or sets it and returns the old one:
 * an ngx.thread child runs in the phase that spawned it. */
typedef int (*tg_sched_phase_fn)(void *owner, int set);

/* Gives the lua_State an event loop (workers, `tollgate lua`). The state must
 * be the main one; tollgate.c.sched finds it in the registry. */
tg_sched_t *tg_sched_attach(lua_State *L, struct event_base *base, tg_sched_wake_fn wake,
                            tg_sched_phase_fn phase);
/* The worker stops: pending timers fire with premature = true. Returns how
 * many light threads are still alive. */
int tg_sched_shutdown(tg_sched_t *s);
int tg_sched_alive(const tg_sched_t *s);
/* Drops every light thread (before lua_close). */
void tg_sched_detach(tg_sched_t *s);

/* Whether the value at `idx` of `co` is a wait. */
bool tg_sched_is_wait(lua_State *co, int idx);
/* Arms the wait at `idx` of `co` for the request `owner` (its top coroutine
 * is resumed through the wake function). */
void tg_sched_arm_owner(tg_sched_t *s, lua_State *co, int idx, void *owner);
/* Drops what a request left: its armed wait and the ngx.thread children it
 * spawned. */
void tg_sched_cancel_owner(tg_sched_t *s, void *owner);
/* Drops only the ngx.thread children of a request (cheap when there are none). */
void tg_sched_cancel_children(tg_sched_t *s, void *owner);
tg_sched_t *tg_sched_of(lua_State *L);

#endif
