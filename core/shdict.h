/* shdict.h: shared dictionaries (`ngx.shared.NAME`), one store per dict shared
 * by every worker thread of the process.
 *
 * Each dict is a hash table with an LRU list and per-key expiry, bounded by its
 * configured size: entries and list nodes are accounted in bytes, and a store
 * that does not fit first drops expired entries at the LRU tail, then (unless
 * "safe") evicts the least recently used ones, as lua-nginx-module's
 * shared dictionaries do. One mutex per dict; every call is short.
 *
 * The registry is filled once, before any worker starts (tg_shdict_setup), and
 * never changes afterwards, so a tg_shdict_t pointer stays valid for the life
 * of the process. The functions below form the FFI ABI the Lua side
 * (core/lua/tollgate/shdict.lua) calls; value types use Lua's type numbers. */
#ifndef TG_SHDICT_H
#define TG_SHDICT_H

#include <stddef.h>
#include <stdint.h>

typedef struct tg_shdict_s tg_shdict_t;
struct tg_conf_s;

/* Value types (Lua's type numbers; LIST as lua-resty-core's SHDICT_TLIST). */
enum {
    TG_SD_NIL = 0,
    TG_SD_BOOLEAN = 1,
    TG_SD_NUMBER = 3,
    TG_SD_STRING = 4,
    TG_SD_LIST = 5,
};

/* Store operations for tg_shdict_store; TG_SD_SAFE never evicts live entries. */
enum {
    TG_SD_SET = 0,
    TG_SD_ADD = 1,
    TG_SD_REPLACE = 2,
    TG_SD_SAFE = 0x10,
};

/* Declares Kong's dicts (nginx_kong.lua: kong, kong_locks, kong_db_cache of
 * mem_cache_size, ...) plus prometheus_metrics when that plugin may load, and
 * the custom ones of nginx_http_lua_shared_dict. Call once before workers
 * start. Returns 0 or TG_EINVAL with a reason in err. */
int tg_shdict_setup(const struct tg_conf_s *conf, char *err, size_t errlen);
/* Parses an nginx_http_lua_shared_dict value: "name size" entries separated by
 * ';' (each may repeat the "lua_shared_dict" directive name). With define != 0
 * also declares them. Returns 0 or TG_EINVAL with a reason in err. */
int tg_shdict_parse(const char *value, int define, char *err, size_t errlen);
/* Declares one dict; an existing name keeps its store and takes the new
 * capacity. Only before workers start. */
int tg_shdict_define(const char *name, size_t capacity);

/* ---- FFI ABI (thread-safe) ---- */

/* For `tollgate lua`/`busted`: declares Kong's dicts with their default sizes
 * unless tg_shdict_setup did. */
void tg_shdict_ensure(void);
int tg_shdict_count(void);
const char *tg_shdict_name_at(int i);
tg_shdict_t *tg_shdict_find(const char *name, size_t len);

/* Stores (op TG_SD_SET/ADD/REPLACE, | TG_SD_SAFE) a value; vtype TG_SD_NIL
 * deletes. exptime in seconds, 0 = never. Returns 0, or -1 with *err
 * ("exists", "not found", "no memory"). *forcible = 1 when live entries were
 * evicted to make room. */
int tg_shdict_store(tg_shdict_t *d, int op, const char *key, size_t klen, int vtype,
                    const char *str, size_t slen, double num, double exptime, int flags,
                    const char **err, int *forcible);
/* Reads a value. *vtype TG_SD_NIL when absent (or expired, unless get_stale).
 * String values are copied into *buf (capacity *blen); a longer one is copied
 * into a malloc'd buffer put in *buf, which the caller frees with
 * tg_shdict_free. *blen gets the length. */
int tg_shdict_get(tg_shdict_t *d, const char *key, size_t klen, int *vtype, char **buf,
                  size_t *blen, double *num, int *flags, int get_stale, int *is_stale);
void tg_shdict_free(void *p);
/* incr: *value in: the step, out: the new value. Returns 0, or -1 with *err
 * ("not found", "not a number", "no memory"). */
int tg_shdict_incr(tg_shdict_t *d, const char *key, size_t klen, double *value, int has_init,
                   double init, double init_ttl, const char **err, int *forcible);
/* List push (left: lpush); returns the new length or -1 with *err. */
int tg_shdict_push(tg_shdict_t *d, const char *key, size_t klen, int left, int vtype,
                   const char *str, size_t slen, double num, const char **err);
/* List pop; *vtype TG_SD_NIL when the list is absent. Returns 0 or -1 with *err.
 * Strings as tg_shdict_get. */
int tg_shdict_pop(tg_shdict_t *d, const char *key, size_t klen, int left, int *vtype,
                  char **buf, size_t *blen, double *num, const char **err);
/* List length (0 when absent), or -1 with *err. */
int tg_shdict_llen(tg_shdict_t *d, const char *key, size_t klen, const char **err);
/* Remaining time to live in seconds (0: never expires), or -1 when absent. */
double tg_shdict_ttl(tg_shdict_t *d, const char *key, size_t klen);
/* Sets the expiry (seconds, 0 = never); -1 when absent. */
int tg_shdict_expire(tg_shdict_t *d, const char *key, size_t klen, double exptime);
void tg_shdict_flush_all(tg_shdict_t *d);
/* Frees up to max (0: all) expired entries; returns how many. */
int tg_shdict_flush_expired(tg_shdict_t *d, int max);
/* Live keys, up to max (0: all), as a malloc'd buffer of (2-byte big-endian
 * length, bytes) records in *out (free with tg_shdict_free); returns the count
 * or -1 when out of memory. */
int tg_shdict_get_keys(tg_shdict_t *d, int max, char **out);
size_t tg_shdict_capacity(tg_shdict_t *d);
/* A process-wide counter kong.cache bumps after writing an invalidation event
 * (release) and reads before looking for events (acquire), so that a lookup
 * with nothing new to apply takes no lock. */
uint64_t tg_shdict_generation(void);
void tg_shdict_bump_generation(void);
size_t tg_shdict_free_space(tg_shdict_t *d);

#endif
