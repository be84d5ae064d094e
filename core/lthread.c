/* lthread.c: light threads on an event loop (see lthread.h) and the Lua module
 * tollgate.c.sched:
 *   new_wait() -> wait        w:timer(ms[, startup]) w:fd(fd, "r"|"w", ms) w:manual(ms)
 *   w:wake()  w:cancel()      (configure returns w: coroutine.yield(w:timer(10)))
 *   is_wait(v)                spawn(fn, ...)  adopt(co, wait)  exiting()  alive()
 * A wait's result is "ok", "timeout" (fd or manual waits past their deadline)
 * or "premature" (a timer's start wait when the worker stops). */
#include "lthread.h"
#include "log.h"

#include <event2/event_struct.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MT "tollgate.wait"
#define SCHED_KEY "tollgate.sched"

typedef struct tg_lthread_s tg_lthread_t;

enum { W_TIMER, W_FD, W_MANUAL };

typedef struct tg_wait_s {
    struct event ev;
    tg_sched_t *s;
    int kind;
    int fd;
    short what;
    int timeout_ms; /* < 0: none */
    bool startup;   /* a timer's start: fires "premature" at shutdown */
    bool armed, woken, premature;
    int ref;                       /* the userdata, kept while armed */
    void *owner;                   /* a request's top coroutine waits */
    tg_lthread_t *lt;              /* or a light thread */
    struct tg_wait_s *next, *prev; /* s->owner_waits */
} tg_wait_t;

struct tg_lthread_s {
    lua_State *co;
    int co_ref;
    void *owner;     /* the request of an ngx.thread child, NULL for timers */
    int phase;       /* the owner's phase when it spawned the child */
    tg_wait_t *wait; /* armed */
    tg_lthread_t *next, *prev;
};

struct tg_sched_s {
    lua_State *L;
    struct event_base *base;
    tg_sched_wake_fn wake;
    tg_sched_phase_fn phase;
    tg_lthread_t *threads;
    int nthreads;
    int nowned; /* threads with an owner (ngx.thread children) */
    tg_wait_t *owner_waits;
    bool exiting;
};

tg_sched_t *tg_sched_of(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, SCHED_KEY);
    tg_sched_t *s = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return s;
}

static tg_sched_t *need_sched(lua_State *L)
{
    tg_sched_t *s = tg_sched_of(L);
    if (!s)
        luaL_error(L, "no event loop in this Lua state");
    return s;
}

/* ------------------------------------------------------------- threads -- */

static void lt_unlink(tg_sched_t *s, tg_lthread_t *lt)
{
    if (lt->prev)
        lt->prev->next = lt->next;
    else
        s->threads = lt->next;
    if (lt->next)
        lt->next->prev = lt->prev;
    s->nthreads--;
}

static void disarm(tg_wait_t *w);

static void lt_free(tg_sched_t *s, tg_lthread_t *lt)
{
    if (lt->wait)
        disarm(lt->wait);
    lt_unlink(s, lt);
    if (lt->owner)
        s->nowned--;
    luaL_unref(s->L, LUA_REGISTRYINDEX, lt->co_ref);
    free(lt);
    if (s->exiting && s->nthreads == 0)
        event_base_loopbreak(s->base);
}

static tg_lthread_t *lt_new(tg_sched_t *s, lua_State *co, int co_ref, void *owner)
{
    tg_lthread_t *lt = calloc(1, sizeof(*lt));
    if (!lt)
        return NULL;
    lt->co = co;
    lt->co_ref = co_ref;
    lt->owner = owner;
    if (owner)
        s->nowned++;
    lt->next = s->threads;
    if (s->threads)
        s->threads->prev = lt;
    s->threads = lt;
    s->nthreads++;
    return lt;
}

static void arm(tg_sched_t *s, lua_State *co, int idx, void *owner, tg_lthread_t *lt);

/* Resumes a light thread with `nargs` values on its stack; frees it once it
 * ends (an error is logged as OpenResty logs a timer's). */
static void lt_resume(tg_sched_t *s, tg_lthread_t *lt, int nargs)
{
    lua_State *co = lt->co;
    int saved = lt->owner && s->phase ? s->phase(lt->owner, lt->phase) : 0;
    int rc = lua_resume(co, nargs);
    if (lt->owner && s->phase)
        s->phase(lt->owner, saved);
    if (rc == LUA_YIELD) {
        if (lua_gettop(co) >= 1 && tg_sched_is_wait(co, -1)) {
            arm(s, co, -1, NULL, lt);
            lua_settop(co, 0);
            return;
        }
        tg_log(TG_LOG_ERR, "lua entry thread aborted: a light thread yielded a value that is "
                           "not an I/O wait (kong.response.exit outside a request?)");
    } else if (rc != 0) {
        const char *msg = lua_tostring(co, -1);
        luaL_traceback(s->L, co, msg ? msg : "(error object is not a string)", 0);
        tg_log(TG_LOG_ERR, "lua entry thread aborted: runtime error: %s", lua_tostring(s->L, -1));
        lua_pop(s->L, 1);
    }
    lua_settop(co, 0);
    lt_free(s, lt);
}

/* --------------------------------------------------------------- waits -- */

static void disarm(tg_wait_t *w)
{
    if (!w->armed)
        return;
    tg_sched_t *s = w->s;
    event_del(&w->ev);
    w->armed = false;
    if (w->owner) {
        if (w->prev)
            w->prev->next = w->next;
        else
            s->owner_waits = w->next;
        if (w->next)
            w->next->prev = w->prev;
        w->next = w->prev = NULL;
    }
    if (w->lt)
        w->lt->wait = NULL;
    w->owner = NULL;
    w->lt = NULL;
    luaL_unref(s->L, LUA_REGISTRYINDEX, w->ref);
    w->ref = LUA_NOREF;
}

static void on_wait(evutil_socket_t fd, short what, void *arg)
{
    tg_wait_t *w = arg;
    tg_sched_t *s = w->s;
    const char *res = "ok";
    if (w->premature)
        res = "premature";
    else if (!w->woken && (what & EV_TIMEOUT) && w->kind != W_TIMER)
        res = "timeout";
    void *owner = w->owner;
    tg_lthread_t *lt = w->lt;
    w->woken = w->premature = false;
    disarm(w); /* w may be collected from here on */
    if (owner) {
        s->wake(owner, res);
    } else if (lt) {
        lua_pushstring(lt->co, res);
        lt_resume(s, lt, 1);
    }
}

static void arm(tg_sched_t *s, lua_State *co, int idx, void *owner, tg_lthread_t *lt)
{
    tg_wait_t *w = luaL_checkudata(co, idx, WAIT_MT);
    if (w->armed)
        disarm(w);
    lua_pushvalue(co, idx);
    w->ref = luaL_ref(co, LUA_REGISTRYINDEX);
    w->owner = owner;
    w->lt = lt;
    w->armed = true;
    if (lt)
        lt->wait = w;
    if (owner) {
        w->next = s->owner_waits;
        if (s->owner_waits)
            s->owner_waits->prev = w;
        s->owner_waits = w;
    }
    if (w->kind == W_FD)
        event_assign(&w->ev, s->base, w->fd, w->what, on_wait, w);
    else
        evtimer_assign(&w->ev, s->base, on_wait, w);
    if (w->woken || (w->startup && s->exiting)) {
        w->premature = w->startup && s->exiting;
        event_active(&w->ev, EV_TIMEOUT, 0);
        return;
    }
    if (w->timeout_ms >= 0) {
        struct timeval tv = {w->timeout_ms / 1000, (w->timeout_ms % 1000) * 1000};
        event_add(&w->ev, &tv);
    } else if (w->kind == W_FD) {
        event_add(&w->ev, NULL);
    }
    /* a manual wait without deadline waits for event_active (w:wake()) */
}

void tg_sched_arm_owner(tg_sched_t *s, lua_State *co, int idx, void *owner)
{
    arm(s, co, idx, owner, NULL);
}

bool tg_sched_is_wait(lua_State *co, int idx)
{
    return luaL_testudata(co, idx, WAIT_MT) != NULL;
}

void tg_sched_cancel_children(tg_sched_t *s, void *owner)
{
    if (!s || s->nowned == 0)
        return;
    tg_lthread_t *lt = s->threads;
    while (lt) {
        tg_lthread_t *next = lt->next;
        if (lt->owner == owner)
            lt_free(s, lt);
        lt = next;
    }
}

void tg_sched_cancel_owner(tg_sched_t *s, void *owner)
{
    if (!s)
        return;
    tg_wait_t *w = s->owner_waits;
    while (w) {
        tg_wait_t *next = w->next;
        if (w->owner == owner)
            disarm(w);
        w = next;
    }
    tg_sched_cancel_children(s, owner);
}

/* ----------------------------------------------------------- lifecycle -- */

tg_sched_t *tg_sched_attach(lua_State *L, struct event_base *base, tg_sched_wake_fn wake,
                            tg_sched_phase_fn phase)
{
    tg_sched_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->L = L;
    s->base = base;
    s->wake = wake;
    s->phase = phase;
    lua_pushlightuserdata(L, s);
    lua_setfield(L, LUA_REGISTRYINDEX, SCHED_KEY);
    return s;
}

int tg_sched_alive(const tg_sched_t *s)
{
    return s ? s->nthreads : 0;
}

int tg_sched_shutdown(tg_sched_t *s)
{
    if (!s)
        return 0;
    s->exiting = true;
    for (tg_lthread_t *lt = s->threads; lt; lt = lt->next) {
        tg_wait_t *w = lt->wait;
        if (w && w->startup) {
            w->premature = true;
            event_del(&w->ev);
            event_active(&w->ev, EV_TIMEOUT, 0);
        }
    }
    return s->nthreads;
}

void tg_sched_detach(tg_sched_t *s)
{
    if (!s)
        return;
    while (s->owner_waits)
        disarm(s->owner_waits);
    s->exiting = false;
    while (s->threads)
        lt_free(s, s->threads);
    lua_pushnil(s->L);
    lua_setfield(s->L, LUA_REGISTRYINDEX, SCHED_KEY);
    free(s);
}

/* ------------------------------------------------------------- the module -- */

static tg_wait_t *check_wait(lua_State *L)
{
    return luaL_checkudata(L, 1, WAIT_MT);
}

static int l_new_wait(lua_State *L)
{
    tg_sched_t *s = need_sched(L);
    tg_wait_t *w = lua_newuserdata(L, sizeof(*w));
    memset(w, 0, sizeof(*w));
    w->s = s;
    w->ref = LUA_NOREF;
    w->fd = -1;
    w->timeout_ms = -1;
    luaL_getmetatable(L, WAIT_MT);
    lua_setmetatable(L, -2);
    return 1;
}

static int ms_arg(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx))
        return -1;
    lua_Number ms = luaL_checknumber(L, idx);
    if (ms < 0)
        return -1;
    return ms > 2e9 ? 2000000000 : (int)ms;
}

static int l_timer(lua_State *L)
{
    tg_wait_t *w = check_wait(L);
    w->kind = W_TIMER;
    w->timeout_ms = ms_arg(L, 2);
    if (w->timeout_ms < 0)
        w->timeout_ms = 0;
    w->startup = lua_toboolean(L, 3);
    w->woken = false;
    lua_settop(L, 1);
    return 1;
}

static int l_fd(lua_State *L)
{
    tg_wait_t *w = check_wait(L);
    w->kind = W_FD;
    w->fd = (int)luaL_checkinteger(L, 2);
    const char *m = luaL_checkstring(L, 3);
    w->what = m[0] == 'w' ? EV_WRITE : EV_READ;
    w->timeout_ms = ms_arg(L, 4);
    w->startup = false;
    w->woken = false;
    lua_settop(L, 1);
    return 1;
}

static int l_manual(lua_State *L)
{
    tg_wait_t *w = check_wait(L);
    w->kind = W_MANUAL;
    w->timeout_ms = ms_arg(L, 2);
    w->startup = false;
    w->woken = false;
    lua_settop(L, 1);
    return 1;
}

static int l_wake(lua_State *L)
{
    tg_wait_t *w = check_wait(L);
    if (w->woken)
        return 0;
    w->woken = true;
    if (w->armed) {
        event_del(&w->ev);
        event_active(&w->ev, EV_TIMEOUT, 0);
    }
    return 0;
}

static int l_cancel(lua_State *L)
{
    tg_wait_t *w = check_wait(L);
    tg_lthread_t *lt = w->lt;
    w->woken = false;
    if (lt)
        lt_free(w->s, lt); /* the thread parked on it is killed */
    else
        disarm(w);
    return 0;
}

static int l_wait_gc(lua_State *L)
{
    tg_wait_t *w = check_wait(L);
    if (w->armed)
        event_del(&w->ev); /* not reached: an armed wait is referenced */
    return 0;
}

static int l_is_wait(lua_State *L)
{
    lua_pushboolean(L, luaL_testudata(L, 1, WAIT_MT) != NULL);
    return 1;
}

/* spawn(fn, ...): a new detached light thread (a timer's), run at once until
 * it parks or ends. */
static int l_spawn(lua_State *L)
{
    tg_sched_t *s = need_sched(L);
    luaL_checktype(L, 1, LUA_TFUNCTION);
    int n = lua_gettop(L);
    lua_State *co = lua_newthread(s->L);
    int ref = luaL_ref(s->L, LUA_REGISTRYINDEX);
    tg_lthread_t *lt = lt_new(s, co, ref, NULL);
    if (!lt) {
        luaL_unref(s->L, LUA_REGISTRYINDEX, ref);
        return luaL_error(L, "no memory");
    }
    lua_xmove(L, co, n);
    lt_resume(s, lt, n - 1);
    lua_pushboolean(L, 1);
    return 1;
}

/* adopt(co, wait): an ngx.thread child parked on `wait`; from now on the
 * scheduler resumes it. It belongs to the request of its exdata. */
static int l_adopt(lua_State *L)
{
    tg_sched_t *s = need_sched(L);
    lua_State *co = lua_tothread(L, 1);
    luaL_argcheck(L, co != NULL, 1, "coroutine expected");
    luaL_checkudata(L, 2, WAIT_MT);
    lua_pushvalue(L, 1);
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    tg_lthread_t *lt = lt_new(s, co, ref, lua_getexdata(co));
    if (!lt) {
        luaL_unref(L, LUA_REGISTRYINDEX, ref);
        return luaL_error(L, "no memory");
    }
    if (lt->owner && s->phase)
        lt->phase = s->phase(lt->owner, -1);
    arm(s, L, 2, NULL, lt);
    return 0;
}

/* kill(co): drops the light thread running `co` (ngx.thread.kill). */
static int l_kill(lua_State *L)
{
    tg_sched_t *s = need_sched(L);
    lua_State *co = lua_tothread(L, 1);
    for (tg_lthread_t *lt = s->threads; lt; lt = lt->next) {
        if (lt->co == co) {
            lt_free(s, lt);
            lua_pushboolean(L, 1);
            return 1;
        }
    }
    lua_pushboolean(L, 0);
    return 1;
}

static int l_exiting(lua_State *L)
{
    tg_sched_t *s = tg_sched_of(L);
    lua_pushboolean(L, s && s->exiting);
    return 1;
}

static int l_alive(lua_State *L)
{
    lua_pushinteger(L, tg_sched_alive(tg_sched_of(L)));
    return 1;
}

int luaopen_tollgate_c_sched(lua_State *L)
{
    static const luaL_Reg wait_methods[] = {
        {"timer", l_timer}, {"fd", l_fd},         {"manual", l_manual},
        {"wake", l_wake},   {"cancel", l_cancel}, {NULL, NULL},
    };
    if (luaL_newmetatable(L, WAIT_MT)) {
        lua_newtable(L);
        luaL_register(L, NULL, wait_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_wait_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushliteral(L, "tollgate.wait");
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {
        {"new_wait", l_new_wait}, {"is_wait", l_is_wait}, {"spawn", l_spawn}, {"adopt", l_adopt},
        {"kill", l_kill},         {"exiting", l_exiting}, {"alive", l_alive}, {NULL, NULL},
    };
    lua_newtable(L);
    luaL_register(L, NULL, fns);
    return 1;
}
