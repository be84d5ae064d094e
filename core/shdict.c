/* shdict.c: shared dictionaries (see shdict.h). */
#include "shdict.h"
#include "conf.h"
#include "tg.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_DICTS 64
#define NAME_MAX_LEN 64
/* What each entry and list node costs on top of its bytes (nginx's slab
 * rounds similarly); keeps a dict of tiny values bounded too. */
#define ENTRY_OVERHEAD 64
#define NODE_OVERHEAD 32
/* Live entries evicted at most per store before giving up ("no memory"). */
#define MAX_EVICT 30

typedef struct sd_node_s {
    struct sd_node_s *prev, *next;
    int type; /* TG_SD_STRING | TG_SD_NUMBER */
    double num;
    size_t len;
    char data[];
} sd_node_t;

typedef struct sd_entry_s {
    struct sd_entry_s *hnext;               /* hash chain */
    struct sd_entry_s *lru_prev, *lru_next; /* lru_prev toward the head (most recent) */
    uint64_t expires_ms;                    /* 0: never */
    uint32_t hash;
    int flags;
    int type;
    size_t klen, vlen;
    double num;                /* number and boolean values */
    sd_node_t *lhead, *ltail;  /* list values */
    size_t llen;
    size_t mem;                /* bytes accounted, list nodes included */
    char data[];               /* key, then string value */
} sd_entry_t;

struct tg_shdict_s {
    pthread_mutex_t lock;
    char name[NAME_MAX_LEN + 1];
    size_t capacity, used;
    sd_entry_t **buckets;
    size_t nbuckets, count;
    sd_entry_t *lru_head, *lru_tail;
};

static tg_shdict_t *dicts[MAX_DICTS];
static int ndicts;

/* ---- time, hashing ---- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t expiry_of(double exptime)
{
    if (exptime <= 0)
        return 0;
    uint64_t ms = (uint64_t)(exptime * 1000.0);
    return now_ms() + (ms ? ms : 1);
}

static bool expired(const sd_entry_t *e, uint64_t now)
{
    return e->expires_ms != 0 && e->expires_ms <= now;
}

static uint32_t hash_of(const char *k, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)k[i]) * 16777619u;
    return h;
}

/* ---- the table and the LRU list (lock held) ---- */

static void lru_unlink(tg_shdict_t *d, sd_entry_t *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        d->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        d->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_head(tg_shdict_t *d, sd_entry_t *e)
{
    e->lru_prev = NULL;
    e->lru_next = d->lru_head;
    if (d->lru_head)
        d->lru_head->lru_prev = e;
    d->lru_head = e;
    if (!d->lru_tail)
        d->lru_tail = e;
}

static void touch(tg_shdict_t *d, sd_entry_t *e)
{
    if (d->lru_head != e) {
        lru_unlink(d, e);
        lru_push_head(d, e);
    }
}

static sd_entry_t *lookup(tg_shdict_t *d, const char *key, size_t klen, uint32_t h)
{
    if (!d->nbuckets)
        return NULL;
    for (sd_entry_t *e = d->buckets[h & (d->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && e->klen == klen && memcmp(e->data, key, klen) == 0)
            return e;
    return NULL;
}

static void free_list(sd_entry_t *e)
{
    sd_node_t *n = e->lhead;
    while (n) {
        sd_node_t *next = n->next;
        free(n);
        n = next;
    }
    e->lhead = e->ltail = NULL;
    e->llen = 0;
}

static void remove_entry(tg_shdict_t *d, sd_entry_t *e)
{
    sd_entry_t **pp = &d->buckets[e->hash & (d->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(d, e);
    d->used -= e->mem;
    d->count--;
    free_list(e);
    free(e);
}

static int grow(tg_shdict_t *d)
{
    size_t n = d->nbuckets ? d->nbuckets * 2 : 64;
    sd_entry_t **b = calloc(n, sizeof(*b));
    if (!b)
        return TG_ENOMEM;
    for (size_t i = 0; i < d->nbuckets; i++) {
        sd_entry_t *e = d->buckets[i];
        while (e) {
            sd_entry_t *next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(d->buckets);
    d->buckets = b;
    d->nbuckets = n;
    return 0;
}

/* Drops up to `n` expired entries from the LRU tail (nginx does this on every
 * store). */
static void expire_tail(tg_shdict_t *d, int n, uint64_t now)
{
    sd_entry_t *e = d->lru_tail;
    while (e && n > 0) {
        sd_entry_t *prev = e->lru_prev;
        if (!expired(e, now))
            break;
        remove_entry(d, e);
        n--;
        e = prev;
    }
}

/* Makes room for `need` more bytes: expired entries first, then (unless safe)
 * the least recently used live ones, never `keep`. */
static int make_room(tg_shdict_t *d, size_t need, bool safe, const sd_entry_t *keep,
                     int *forcible)
{
    if (need > d->capacity)
        return TG_ENOMEM;
    uint64_t now = now_ms();
    expire_tail(d, 2, now);
    if (d->used + need <= d->capacity)
        return 0;
    /* expired ones anywhere in the LRU tail region */
    for (sd_entry_t *e = d->lru_tail; e && d->used + need > d->capacity;) {
        sd_entry_t *prev = e->lru_prev;
        if (e != keep && expired(e, now))
            remove_entry(d, e);
        e = prev;
    }
    int evicted = 0;
    while (d->used + need > d->capacity) {
        if (safe || evicted >= MAX_EVICT)
            return TG_ENOMEM;
        sd_entry_t *e = d->lru_tail;
        if (e == keep)
            e = e->lru_prev;
        if (!e)
            return TG_ENOMEM;
        remove_entry(d, e);
        evicted++;
        if (forcible)
            *forcible = 1;
    }
    return 0;
}

static sd_entry_t *insert_entry(tg_shdict_t *d, const char *key, size_t klen, uint32_t h,
                                const char *str, size_t slen)
{
    if (d->count >= d->nbuckets && grow(d) != 0)
        return NULL;
    sd_entry_t *e = calloc(1, sizeof(*e) + klen + slen);
    if (!e)
        return NULL;
    memcpy(e->data, key, klen);
    if (slen)
        memcpy(e->data + klen, str, slen);
    e->klen = klen;
    e->vlen = slen;
    e->hash = h;
    e->mem = ENTRY_OVERHEAD + klen + slen;
    size_t bi = h & (d->nbuckets - 1);
    e->hnext = d->buckets[bi];
    d->buckets[bi] = e;
    lru_push_head(d, e);
    d->used += e->mem;
    d->count++;
    return e;
}

/* ---- registry ---- */

int tg_shdict_define(const char *name, size_t capacity)
{
    for (int i = 0; i < ndicts; i++)
        if (strcmp(dicts[i]->name, name) == 0) {
            dicts[i]->capacity = capacity;
            return 0;
        }
    if (ndicts >= MAX_DICTS || strlen(name) > NAME_MAX_LEN)
        return TG_EINVAL;
    tg_shdict_t *d = calloc(1, sizeof(*d));
    if (!d)
        return TG_ENOMEM;
    pthread_mutex_init(&d->lock, NULL);
    snprintf(d->name, sizeof(d->name), "%s", name);
    d->capacity = capacity;
    dicts[ndicts++] = d;
    return 0;
}

static const struct {
    const char *name;
    size_t size; /* 0: mem_cache_size */
} kong_dicts[] = {
    {"kong", 5u << 20},
    {"kong_locks", 8u << 20},
    {"kong_healthchecks", 5u << 20},
    {"kong_cluster_events", 5u << 20},
    {"kong_rate_limiting_counters", 12u << 20},
    {"kong_core_db_cache", 0},
    {"kong_core_db_cache_miss", 12u << 20},
    {"kong_db_cache", 0},
    {"kong_db_cache_miss", 12u << 20},
    {"kong_secrets", 5u << 20},
};

static bool kong_defined;

static void define_kong(size_t mem_cache_size, bool prometheus)
{
    kong_defined = true;
    for (size_t i = 0; i < TG_ARRAY_SIZE(kong_dicts); i++)
        tg_shdict_define(kong_dicts[i].name, kong_dicts[i].size ? kong_dicts[i].size
                                                                : mem_cache_size);
    if (prometheus)
        tg_shdict_define("prometheus_metrics", 5u << 20);
}

static int parse_size(const char *s, size_t n, size_t *out)
{
    if (n == 0)
        return TG_EINVAL;
    size_t mult = 1;
    char u = (char)tolower((unsigned char)s[n - 1]);
    if (u == 'k' || u == 'm' || u == 'g') {
        mult = u == 'k' ? 1024u : u == 'm' ? 1024u * 1024u : 1024u * 1024u * 1024u;
        n--;
    }
    if (n == 0 || n > 12)
        return TG_EINVAL;
    size_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return TG_EINVAL;
        v = v * 10 + (size_t)(s[i] - '0');
    }
    *out = v * mult;
    return 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Next whitespace-delimited word of [*p, end). */
static bool next_word(const char **p, const char *end, const char **w, size_t *wn)
{
    const char *s = *p;
    while (s < end && is_space(*s))
        s++;
    const char *b = s;
    while (s < end && !is_space(*s))
        s++;
    *p = s;
    *w = b;
    *wn = (size_t)(s - b);
    return *wn > 0;
}

int tg_shdict_parse(const char *value, int define, char *err, size_t errlen)
{
    const char *p = value;
    while (*p) {
        const char *semi = strchr(p, ';');
        const char *end = semi ? semi : p + strlen(p);
        const char *w[3];
        size_t wn[3];
        int nw = 0;
        const char *q = p;
        while (nw < 3 && next_word(&q, end, &w[nw], &wn[nw]))
            nw++;
        const char *rest;
        size_t restn;
        if (next_word(&q, end, &rest, &restn))
            nw = 4;
        if (nw >= 1 && wn[0] == 15 && memcmp(w[0], "lua_shared_dict", 15) == 0) {
            w[0] = w[1], wn[0] = wn[1];
            w[1] = w[2], wn[1] = wn[2];
            nw--;
        }
        if (nw == 0) {
            /* an empty entry (";;", a trailing ';') */
        } else if (nw != 2) {
            snprintf(err, errlen, "invalid lua_shared_dict '%.*s' (expected: name size)",
                     (int)(end - p), p);
            return TG_EINVAL;
        } else {
            size_t size;
            if (wn[0] > NAME_MAX_LEN) {
                snprintf(err, errlen, "lua_shared_dict name '%.*s' is too long", (int)wn[0],
                         w[0]);
                return TG_EINVAL;
            }
            if (parse_size(w[1], wn[1], &size) != 0 || size < 8192) {
                snprintf(err, errlen,
                         "invalid lua_shared_dict size '%.*s' for '%.*s' (a size of at "
                         "least 8k, e.g. 10m)",
                         (int)wn[1], w[1], (int)wn[0], w[0]);
                return TG_EINVAL;
            }
            if (define) {
                char name[NAME_MAX_LEN + 1];
                snprintf(name, sizeof(name), "%.*s", (int)wn[0], w[0]);
                if (tg_shdict_define(name, size) != 0) {
                    snprintf(err, errlen, "too many shared dictionaries (at most %d)",
                             MAX_DICTS);
                    return TG_EINVAL;
                }
            }
        }
        p = semi ? semi + 1 : end;
    }
    return 0;
}

int tg_shdict_setup(const tg_conf_t *conf, char *err, size_t errlen)
{
    bool prometheus = false;
    for (size_t i = 0; i < conf->nplugins; i++)
        if (!strcmp(conf->plugins[i], "bundled") || !strcmp(conf->plugins[i], "prometheus"))
            prometheus = true;
    define_kong(conf->mem_cache_size, prometheus);
    if (conf->lua_shared_dict)
        return tg_shdict_parse(conf->lua_shared_dict, 1, err, errlen);
    return 0;
}

void tg_shdict_ensure(void)
{
    static pthread_mutex_t once = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&once);
    if (!kong_defined)
        define_kong(128u << 20, true);
    pthread_mutex_unlock(&once);
}

int tg_shdict_count(void)
{
    return ndicts;
}

const char *tg_shdict_name_at(int i)
{
    return i >= 0 && i < ndicts ? dicts[i]->name : NULL;
}

tg_shdict_t *tg_shdict_find(const char *name, size_t len)
{
    for (int i = 0; i < ndicts; i++)
        if (strlen(dicts[i]->name) == len && memcmp(dicts[i]->name, name, len) == 0)
            return dicts[i];
    return NULL;
}

/* ---- operations ---- */

#define LOCK(d) pthread_mutex_lock(&(d)->lock)
#define UNLOCK(d) pthread_mutex_unlock(&(d)->lock)

static void set_scalar(sd_entry_t *e, int vtype, double num, double exptime, int flags)
{
    e->type = vtype;
    e->num = vtype == TG_SD_BOOLEAN ? (num != 0) : num;
    e->flags = flags;
    e->expires_ms = expiry_of(exptime);
}

int tg_shdict_store(tg_shdict_t *d, int op, const char *key, size_t klen, int vtype,
                    const char *str, size_t slen, double num, double exptime, int flags,
                    const char **err, int *forcible)
{
    bool safe = (op & TG_SD_SAFE) != 0;
    op &= ~TG_SD_SAFE;
    *forcible = 0;
    uint32_t h = hash_of(key, klen);
    size_t vlen = vtype == TG_SD_STRING ? slen : 0;
    int rc = 0;
    LOCK(d);
    uint64_t now = now_ms();
    sd_entry_t *e = lookup(d, key, klen, h);
    if (e && expired(e, now)) {
        if (op == TG_SD_REPLACE) {
            *err = "not found";
            rc = -1;
            goto out;
        }
    } else if (e && op == TG_SD_ADD) {
        *err = "exists";
        rc = -1;
        goto out;
    }
    if (!e && op == TG_SD_REPLACE) {
        *err = "not found";
        rc = -1;
        goto out;
    }
    if (vtype == TG_SD_NIL) {
        if (e)
            remove_entry(d, e);
        goto out;
    }
    if (e && e->type != TG_SD_LIST && e->vlen == vlen) {
        /* same size: in place */
        if (vlen)
            memcpy(e->data + e->klen, str, vlen);
        set_scalar(e, vtype, num, exptime, flags);
        touch(d, e);
        goto out;
    }
    if (e)
        remove_entry(d, e);
    if (make_room(d, ENTRY_OVERHEAD + klen + vlen, safe, NULL, forcible) != 0 ||
        !(e = insert_entry(d, key, klen, h, str, vlen))) {
        *err = "no memory";
        rc = -1;
        goto out;
    }
    set_scalar(e, vtype, num, exptime, flags);
out:
    UNLOCK(d);
    return rc;
}

/* Copies a string value out (see tg_shdict_get); false when out of memory. */
static bool copy_out(const char *src, size_t n, char **buf, size_t *blen)
{
    if (n > *blen) {
        char *p = malloc(n);
        if (!p)
            return false;
        *buf = p;
    }
    if (n)
        memcpy(*buf, src, n);
    *blen = n;
    return true;
}

int tg_shdict_get(tg_shdict_t *d, const char *key, size_t klen, int *vtype, char **buf,
                  size_t *blen, double *num, int *flags, int get_stale, int *is_stale)
{
    uint32_t h = hash_of(key, klen);
    int rc = 0;
    *vtype = TG_SD_NIL;
    *flags = 0;
    *is_stale = 0;
    LOCK(d);
    sd_entry_t *e = lookup(d, key, klen, h);
    if (!e)
        goto out;
    if (expired(e, now_ms())) {
        if (!get_stale)
            goto out;
        *is_stale = 1;
    } else {
        touch(d, e);
    }
    *vtype = e->type;
    *flags = e->flags;
    if (e->type == TG_SD_STRING) {
        if (!copy_out(e->data + e->klen, e->vlen, buf, blen))
            rc = TG_ENOMEM;
    } else {
        *num = e->num;
    }
out:
    UNLOCK(d);
    return rc;
}

void tg_shdict_free(void *p)
{
    free(p);
}

int tg_shdict_incr(tg_shdict_t *d, const char *key, size_t klen, double *value, int has_init,
                   double init, double init_ttl, const char **err, int *forcible)
{
    uint32_t h = hash_of(key, klen);
    int rc = 0;
    *forcible = 0;
    LOCK(d);
    sd_entry_t *e = lookup(d, key, klen, h);
    if (e && !expired(e, now_ms())) {
        if (e->type != TG_SD_NUMBER) {
            *err = "not a number";
            rc = -1;
            goto out;
        }
        e->num += *value;
        *value = e->num;
        touch(d, e);
        goto out;
    }
    if (!has_init) {
        *err = "not found";
        rc = -1;
        goto out;
    }
    if (e)
        remove_entry(d, e);
    if (make_room(d, ENTRY_OVERHEAD + klen, false, NULL, forcible) != 0 ||
        !(e = insert_entry(d, key, klen, h, NULL, 0))) {
        *err = "no memory";
        rc = -1;
        goto out;
    }
    set_scalar(e, TG_SD_NUMBER, init + *value, init_ttl, 0);
    *value = e->num;
out:
    UNLOCK(d);
    return rc;
}

int tg_shdict_push(tg_shdict_t *d, const char *key, size_t klen, int left, int vtype,
                   const char *str, size_t slen, double num, const char **err)
{
    uint32_t h = hash_of(key, klen);
    size_t vlen = vtype == TG_SD_STRING ? slen : 0;
    int rc;
    LOCK(d);
    sd_entry_t *e = lookup(d, key, klen, h);
    if (e && expired(e, now_ms())) {
        remove_entry(d, e);
        e = NULL;
    }
    if (e && e->type != TG_SD_LIST) {
        *err = "value not a list";
        rc = -1;
        goto out;
    }
    size_t need = NODE_OVERHEAD + vlen + (e ? 0 : ENTRY_OVERHEAD + klen);
    sd_node_t *n = NULL;
    if (make_room(d, need, false, e, NULL) != 0 || !(n = malloc(sizeof(*n) + vlen)) ||
        (!e && !(e = insert_entry(d, key, klen, h, NULL, 0)))) {
        free(n);
        *err = "no memory";
        rc = -1;
        goto out;
    }
    if (e->type != TG_SD_LIST) {
        e->type = TG_SD_LIST;
        e->expires_ms = 0;
    }
    n->type = vtype;
    n->num = num;
    n->len = vlen;
    if (vlen)
        memcpy(n->data, str, vlen);
    if (left) {
        n->prev = NULL;
        n->next = e->lhead;
        if (e->lhead)
            e->lhead->prev = n;
        e->lhead = n;
        if (!e->ltail)
            e->ltail = n;
    } else {
        n->next = NULL;
        n->prev = e->ltail;
        if (e->ltail)
            e->ltail->next = n;
        e->ltail = n;
        if (!e->lhead)
            e->lhead = n;
    }
    e->llen++;
    e->mem += NODE_OVERHEAD + vlen;
    d->used += NODE_OVERHEAD + vlen;
    touch(d, e);
    rc = (int)e->llen;
out:
    UNLOCK(d);
    return rc;
}

int tg_shdict_pop(tg_shdict_t *d, const char *key, size_t klen, int left, int *vtype,
                  char **buf, size_t *blen, double *num, const char **err)
{
    uint32_t h = hash_of(key, klen);
    int rc = 0;
    *vtype = TG_SD_NIL;
    LOCK(d);
    sd_entry_t *e = lookup(d, key, klen, h);
    if (!e || expired(e, now_ms()))
        goto out;
    if (e->type != TG_SD_LIST) {
        *err = "value not a list";
        rc = -1;
        goto out;
    }
    sd_node_t *n = left ? e->lhead : e->ltail;
    if (!copy_out(n->data, n->len, buf, blen)) {
        *err = "no memory";
        rc = -1;
        goto out;
    }
    *vtype = n->type;
    *num = n->num;
    if (n->prev)
        n->prev->next = n->next;
    else
        e->lhead = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        e->ltail = n->prev;
    e->llen--;
    e->mem -= NODE_OVERHEAD + n->len;
    d->used -= NODE_OVERHEAD + n->len;
    free(n);
    if (e->llen == 0)
        remove_entry(d, e);
out:
    UNLOCK(d);
    return rc;
}

int tg_shdict_llen(tg_shdict_t *d, const char *key, size_t klen, const char **err)
{
    uint32_t h = hash_of(key, klen);
    int rc = 0;
    LOCK(d);
    sd_entry_t *e = lookup(d, key, klen, h);
    if (e && !expired(e, now_ms())) {
        if (e->type != TG_SD_LIST) {
            *err = "value not a list";
            rc = -1;
        } else {
            rc = (int)e->llen;
        }
    }
    UNLOCK(d);
    return rc;
}

double tg_shdict_ttl(tg_shdict_t *d, const char *key, size_t klen)
{
    uint32_t h = hash_of(key, klen);
    double rc = -1;
    LOCK(d);
    uint64_t now = now_ms();
    sd_entry_t *e = lookup(d, key, klen, h);
    if (e && !expired(e, now))
        rc = e->expires_ms ? (double)(e->expires_ms - now) / 1000.0 : 0;
    UNLOCK(d);
    return rc;
}

int tg_shdict_expire(tg_shdict_t *d, const char *key, size_t klen, double exptime)
{
    uint32_t h = hash_of(key, klen);
    int rc = -1;
    LOCK(d);
    sd_entry_t *e = lookup(d, key, klen, h);
    if (e && !expired(e, now_ms())) {
        e->expires_ms = expiry_of(exptime);
        rc = 0;
    }
    UNLOCK(d);
    return rc;
}

void tg_shdict_flush_all(tg_shdict_t *d)
{
    LOCK(d);
    /* as nginx: everything becomes stale (get_stale still sees it) */
    uint64_t past = now_ms() - 1;
    for (sd_entry_t *e = d->lru_head; e; e = e->lru_next)
        e->expires_ms = past ? past : 1;
    UNLOCK(d);
}

int tg_shdict_flush_expired(tg_shdict_t *d, int max)
{
    int n = 0;
    LOCK(d);
    uint64_t now = now_ms();
    for (sd_entry_t *e = d->lru_tail; e && (max <= 0 || n < max);) {
        sd_entry_t *prev = e->lru_prev;
        if (expired(e, now)) {
            remove_entry(d, e);
            n++;
        }
        e = prev;
    }
    UNLOCK(d);
    return n;
}

int tg_shdict_get_keys(tg_shdict_t *d, int max, char **out)
{
    int n = 0;
    LOCK(d);
    uint64_t now = now_ms();
    size_t total = 1;
    for (sd_entry_t *e = d->lru_head; e; e = e->lru_next)
        if (!expired(e, now))
            total += 2 + e->klen;
    char *buf = malloc(total);
    if (!buf) {
        UNLOCK(d);
        return -1;
    }
    char *p = buf;
    for (sd_entry_t *e = d->lru_head; e && (max <= 0 || n < max); e = e->lru_next) {
        if (expired(e, now))
            continue;
        *p++ = (char)(e->klen >> 8);
        *p++ = (char)(e->klen & 0xff);
        memcpy(p, e->data, e->klen);
        p += e->klen;
        n++;
    }
    UNLOCK(d);
    *out = buf;
    return n;
}

static uint64_t generation;

uint64_t tg_shdict_generation(void)
{
    return __atomic_load_n(&generation, __ATOMIC_ACQUIRE);
}

void tg_shdict_bump_generation(void)
{
    __atomic_add_fetch(&generation, 1, __ATOMIC_RELEASE);
}

size_t tg_shdict_capacity(tg_shdict_t *d)
{
    return d->capacity;
}

size_t tg_shdict_free_space(tg_shdict_t *d)
{
    LOCK(d);
    size_t f = d->used < d->capacity ? d->capacity - d->used : 0;
    UNLOCK(d);
    return f;
}
