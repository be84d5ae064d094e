/* log.c: the error log and access logs, written by one writer thread.
 *
 * Each logging thread owns a buffer (tg__log_tbuf) of records
 * [uint16 file index][uint32 length][bytes]. Appending takes the thread's own
 * mutex, which only the writer ever contends, and only to swap the buffer for
 * its empty spare. The writer sleeps on a semaphore posted when a buffer goes
 * from empty to non-empty, so an idle gateway costs no wakeups and a busy one
 * gets batches: one write(2) per run of records for the same file. A full
 * buffer drops the line and counts it. */
#include "log.h"
#include "tg.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define TBUF_CAP (512 * 1024)
#define MAX_FILES 64
#define LINE_MAX_LEN 8192
#define REC_HDR 6

typedef struct {
    char *path;    /* NULL for the error log when "off"; "/dev/stderr" kept as written */
    atomic_int fd; /* -1 when off */
    bool is_stderr;
} logfile_t;

struct tg_accesslog_s {
    int idx;
};

typedef struct tbuf_s {
    pthread_mutex_t mu;
    char *buf, *spare;
    size_t len;
    bool dead; /* the thread exited: the writer frees it once drained */
    struct tbuf_s *next;
    /* owner-only state */
    pid_t tid;
    time_t tcache_sec;
    char tcache[24];
} tbuf_t;

static struct {
    pthread_mutex_t mu; /* files table, thread list, start/stop */
    logfile_t files[MAX_FILES];
    tg_accesslog_t handles[MAX_FILES];
    int nfiles;
    tbuf_t *threads;
    pthread_t writer;
    bool running;
    atomic_bool stop;
    atomic_bool reopen;
    sem_t wake;
    bool sem_ready;
    pthread_cond_t flushed;
    uint64_t cycles;  /* completed drain cycles, under mu */
    atomic_int level;
    atomic_bool error_off;
    atomic_uint_fast64_t dropped;
    pthread_key_t key;
    bool key_ready;
} g = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .flushed = PTHREAD_COND_INITIALIZER,
    .level = TG_LOG_NOTICE,
};

static const char *level_names[] = {"debug", "info",  "notice", "warn",
                                    "error", "crit",  "alert",  "emerg"};

int tg_log_level_parse(const char *name)
{
    for (size_t i = 0; i < TG_ARRAY_SIZE(level_names); i++)
        if (strcmp(name, level_names[i]) == 0)
            return (int)i;
    return -1;
}

const char *tg_log_level_name(int level)
{
    if (level < 0 || level >= (int)TG_ARRAY_SIZE(level_names))
        return "?";
    return level_names[level];
}

int tg_log_level(void)
{
    return atomic_load_explicit(&g.level, memory_order_relaxed);
}

void tg_log_set_level(int level)
{
    atomic_store(&g.level, level);
}

uint64_t tg_log_dropped(void)
{
    return atomic_load(&g.dropped);
}

/* ---- the writer ---- */

static int open_append(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0 && fd >= 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* a full disk loses lines; nothing better to do here */
        }
        p += w;
        n -= (size_t)w;
    }
}

static void write_iov(int fd, struct iovec *iov, int niov)
{
    if (fd < 0 || niov == 0)
        return;
    size_t total = 0;
    for (int i = 0; i < niov; i++)
        total += iov[i].iov_len;
    ssize_t w;
    do {
        w = writev(fd, iov, niov);
    } while (w < 0 && errno == EINTR);
    if (w < 0 || (size_t)w == total)
        return;
    size_t skip = (size_t)w; /* a partial writev: finish piece by piece */
    for (int i = 0; i < niov; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        write_all(fd, (char *)iov[i].iov_base + skip, iov[i].iov_len - skip);
        skip = 0;
    }
}

/* Writes a drained buffer: each run of records for the same file is one writev. */
static void write_records(const char *buf, size_t len)
{
    struct iovec iov[256];
    int niov = 0, cur = -1;
    size_t off = 0;
    while (off + REC_HDR <= len) {
        uint16_t idx;
        uint32_t n;
        memcpy(&idx, buf + off, 2);
        memcpy(&n, buf + off + 2, 4);
        if ((int)idx != cur || niov == (int)TG_ARRAY_SIZE(iov)) {
            if (cur >= 0)
                write_iov(atomic_load(&g.files[cur].fd), iov, niov);
            niov = 0;
            cur = idx;
        }
        iov[niov].iov_base = (void *)(buf + off + REC_HDR);
        iov[niov].iov_len = n;
        niov++;
        off += REC_HDR + n;
    }
    if (cur >= 0)
        write_iov(atomic_load(&g.files[cur].fd), iov, niov);
}

static void reopen_files(void)
{
    for (int i = 0; i < g.nfiles; i++) {
        logfile_t *f = &g.files[i];
        int fd = atomic_load(&f->fd);
        if (!f->path || f->is_stderr || fd < 0)
            continue;
        int nfd = open_append(f->path);
        if (nfd < 0)
            continue;
        dup2(nfd, fd);
        close(nfd);
    }
}

/* One pass over every thread's buffer: the list is copied under g.mu, the
 * writes happen without it, so a thread registering or a log being opened
 * never waits for the disk. */
static void drain_all(void)
{
    static tbuf_t **list;
    static size_t cap;
    size_t n = 0;
    pthread_mutex_lock(&g.mu);
    for (tbuf_t *t = g.threads; t; t = t->next) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            tbuf_t **nl = realloc(list, ncap * sizeof(*nl));
            if (!nl)
                break;
            list = nl;
            cap = ncap;
        }
        list[n++] = t;
    }
    pthread_mutex_unlock(&g.mu);

    bool reap = false;
    for (size_t i = 0; i < n; i++) {
        tbuf_t *t = list[i];
        char *out = NULL;
        size_t outlen = 0;
        pthread_mutex_lock(&t->mu);
        if (t->len > 0) {
            out = t->buf;
            outlen = t->len;
            t->buf = t->spare;
            t->spare = NULL;
            t->len = 0;
        }
        reap |= t->dead;
        pthread_mutex_unlock(&t->mu);
        if (out) {
            write_records(out, outlen);
            pthread_mutex_lock(&t->mu);
            t->spare = out;
            pthread_mutex_unlock(&t->mu);
        }
    }

    pthread_mutex_lock(&g.mu);
    if (reap) {
        /* A dead thread appends nothing more; one more pass empties it. */
        tbuf_t **pp = &g.threads;
        while (*pp) {
            tbuf_t *t = *pp;
            if (t->dead && t->len == 0 && t->spare) {
                *pp = t->next;
                pthread_mutex_destroy(&t->mu);
                free(t->buf);
                free(t->spare);
                free(t);
                continue;
            }
            pp = &t->next;
        }
    }
    g.cycles++;
    pthread_cond_broadcast(&g.flushed);
    pthread_mutex_unlock(&g.mu);
}

static void *writer_main(void *arg)
{
    TG_UNUSED(arg);
    for (;;) {
        while (sem_wait(&g.wake) != 0 && errno == EINTR) {
        }
        if (atomic_exchange(&g.reopen, false)) {
            pthread_mutex_lock(&g.mu);
            reopen_files();
            pthread_mutex_unlock(&g.mu);
        }
        drain_all();
        if (atomic_load(&g.stop)) {
            drain_all();
            return NULL;
        }
    }
}

static void tbuf_orphan(void *p)
{
    tbuf_t *t = p;
    pthread_mutex_lock(&t->mu);
    t->dead = true;
    pthread_mutex_unlock(&t->mu);
    if (g.sem_ready)
        sem_post(&g.wake);
}

/* Called with g.mu held. */
static int start_writer_locked(void)
{
    if (g.running)
        return 0;
    if (!g.key_ready) {
        if (pthread_key_create(&g.key, tbuf_orphan) != 0)
            return TG_ENOMEM;
        g.key_ready = true;
    }
    if (!g.sem_ready) {
        sem_init(&g.wake, 0, 0);
        g.sem_ready = true;
    }
    atomic_store(&g.stop, false);
    if (pthread_create(&g.writer, NULL, writer_main, NULL) != 0)
        return TG_ENOMEM;
    g.running = true;
    return 0;
}

static tbuf_t *my_tbuf(void)
{
    tbuf_t *t = pthread_getspecific(g.key);
    if (t)
        return t;
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->buf = malloc(TBUF_CAP);
    t->spare = malloc(TBUF_CAP);
    if (!t->buf || !t->spare) {
        free(t->buf);
        free(t->spare);
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    t->tid = (pid_t)syscall(SYS_gettid);
    pthread_mutex_lock(&g.mu);
    t->next = g.threads;
    g.threads = t;
    pthread_mutex_unlock(&g.mu);
    pthread_setspecific(g.key, t);
    return t;
}

/* Queues one record; false when dropped. */
static bool enqueue(int idx, const char *a, size_t alen, const char *b, size_t blen)
{
    tbuf_t *t = my_tbuf();
    if (!t) {
        atomic_fetch_add(&g.dropped, 1);
        return false;
    }
    uint32_t n = (uint32_t)(alen + blen);
    uint16_t i16 = (uint16_t)idx;
    bool post = false;
    pthread_mutex_lock(&t->mu);
    /* The writer may be holding our spare; t->buf is always ours to fill. */
    if (t->len + REC_HDR + n > TBUF_CAP) {
        pthread_mutex_unlock(&t->mu);
        atomic_fetch_add(&g.dropped, 1);
        sem_post(&g.wake);
        return false;
    }
    char *p = t->buf + t->len;
    memcpy(p, &i16, 2);
    memcpy(p + 2, &n, 4);
    memcpy(p + REC_HDR, a, alen);
    if (blen)
        memcpy(p + REC_HDR + alen, b, blen);
    post = t->len == 0;
    t->len += REC_HDR + n;
    pthread_mutex_unlock(&t->mu);
    if (post)
        sem_post(&g.wake);
    return true;
}

/* ---- the error log ---- */

static size_t format_prefix(char *out, size_t cap, int level, pid_t tid, time_t *cache_sec,
                            char *cache)
{
    time_t now = time(NULL);
    if (!cache_sec || *cache_sec != now || !cache[0]) {
        struct tm tm;
        localtime_r(&now, &tm);
        char tmp[24];
        strftime(tmp, sizeof(tmp), "%Y/%m/%d %H:%M:%S", &tm);
        if (cache_sec) {
            *cache_sec = now;
            memcpy(cache, tmp, sizeof(tmp));
        } else {
            return (size_t)snprintf(out, cap, "%s [%s] %d#%d: ", tmp, tg_log_level_name(level),
                                    (int)getpid(), (int)tid);
        }
    }
    return (size_t)snprintf(out, cap, "%s [%s] %d#%d: ", cache, tg_log_level_name(level),
                            (int)getpid(), (int)tid);
}

void tg_log(int level, const char *fmt, ...)
{
    if (level < atomic_load_explicit(&g.level, memory_order_relaxed))
        return;
    bool async = __atomic_load_n(&g.running, __ATOMIC_ACQUIRE);
    if (async && atomic_load_explicit(&g.error_off, memory_order_relaxed))
        return;
    char line[LINE_MAX_LEN];
    size_t n;
    tbuf_t *t = async ? my_tbuf() : NULL;
    if (t)
        n = format_prefix(line, sizeof(line), level, t->tid, &t->tcache_sec, t->tcache);
    else
        n = format_prefix(line, sizeof(line), level, (pid_t)syscall(SYS_gettid), NULL, NULL);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += (size_t)m;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    if (t)
        enqueue(0, line, n, NULL, 0);
    else
        write_all(2, line, n);
}

/* Called with g.mu held. Slot 0 is the error log: stderr until tg_log_open. */
static void init_locked(void)
{
    if (g.nfiles > 0)
        return;
    g.nfiles = 1;
    g.files[0].is_stderr = true;
    atomic_store(&g.files[0].fd, fcntl(2, F_DUPFD_CLOEXEC, 3));
}

/* Called with g.mu held: the slot of `path`, opening it if new. */
static int file_slot_locked(const char *path, int *out)
{
    for (int i = 1; i < g.nfiles; i++) {
        if (g.files[i].path && strcmp(g.files[i].path, path) == 0) {
            *out = i;
            return 0;
        }
    }
    if (g.nfiles >= MAX_FILES)
        return TG_ETOOLARGE;
    bool is_stderr = strcmp(path, "/dev/stderr") == 0;
    bool is_stdout = strcmp(path, "/dev/stdout") == 0;
    int fd = is_stderr ? dup(2) : is_stdout ? dup(1) : open_append(path);
    if (fd < 0)
        return TG_EIO;
    int i = g.nfiles;
    g.files[i].path = strdup(path);
    g.files[i].is_stderr = is_stderr || is_stdout;
    atomic_store(&g.files[i].fd, fd);
    g.handles[i].idx = i;
    g.nfiles = i + 1;
    *out = i;
    return 0;
}

int tg_log_open(const char *path, int level)
{
    int rc = 0;
    pthread_mutex_lock(&g.mu);
    init_locked();
    logfile_t *f = &g.files[0];
    if (!path || strcmp(path, "off") == 0) {
        atomic_store(&g.error_off, true);
    } else {
        bool is_stderr = strcmp(path, "/dev/stderr") == 0;
        int nfd = is_stderr ? dup(2) : open_append(path);
        if (nfd < 0) {
            rc = TG_EIO;
            goto out;
        }
        fcntl(nfd, F_SETFD, FD_CLOEXEC);
        int old = atomic_load(&f->fd);
        if (old >= 0) {
            dup2(nfd, old); /* atomic for a writer mid-write */
            close(nfd);
        } else {
            atomic_store(&f->fd, nfd);
        }
        free(f->path);
        f->path = strdup(path);
        f->is_stderr = is_stderr;
        atomic_store(&g.error_off, false);
    }
    atomic_store(&g.level, level);
    rc = start_writer_locked();
out:
    pthread_mutex_unlock(&g.mu);
    if (rc == 0)
        __atomic_store_n(&g.running, true, __ATOMIC_RELEASE);
    return rc;
}

tg_accesslog_t *tg_accesslog_open(const char *path)
{
    if (!path || strcmp(path, "off") == 0)
        return NULL;
    pthread_mutex_lock(&g.mu);
    init_locked();
    int idx = -1;
    int rc = file_slot_locked(path, &idx);
    if (rc == 0)
        rc = start_writer_locked();
    pthread_mutex_unlock(&g.mu);
    if (rc != 0) {
        tg_log(TG_LOG_ERR, "could not open access log \"%s\": %s", path,
               rc == TG_EIO ? strerror(errno) : tg_strerror(rc));
        return NULL;
    }
    __atomic_store_n(&g.running, true, __ATOMIC_RELEASE);
    return &g.handles[idx];
}

void tg_accesslog_write(tg_accesslog_t *a, const char *line, size_t len)
{
    if (!a || len == 0)
        return;
    if (!__atomic_load_n(&g.running, __ATOMIC_ACQUIRE))
        return;
    if (len > TBUF_CAP / 2) {
        atomic_fetch_add(&g.dropped, 1);
        return;
    }
    enqueue(a->idx, line, len, NULL, 0);
}

void tg_log_reopen(void)
{
    atomic_store(&g.reopen, true);
    if (g.sem_ready)
        sem_post(&g.wake);
}

void tg_log_flush(void)
{
    if (!__atomic_load_n(&g.running, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&g.mu);
    /* A cycle that started before our call may have missed our lines: wait
     * for two completions. */
    uint64_t target = g.cycles + 2;
    while (g.running && g.cycles < target) {
        sem_post(&g.wake);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&g.flushed, &g.mu, &ts);
    }
    pthread_mutex_unlock(&g.mu);
}

void tg_log_shutdown(void)
{
    pthread_mutex_lock(&g.mu);
    if (!g.running) {
        pthread_mutex_unlock(&g.mu);
        return;
    }
    pthread_mutex_unlock(&g.mu);
    /* From here on tg_log goes to stderr; lines racing with this are still
     * queued and drained below. */
    __atomic_store_n(&g.running, false, __ATOMIC_RELEASE);
    atomic_store(&g.stop, true);
    sem_post(&g.wake);
    pthread_join(g.writer, NULL);
    pthread_mutex_lock(&g.mu);
    g.running = false;
    for (tbuf_t *t = g.threads; t; t = t->next) {
        pthread_mutex_lock(&t->mu);
        t->len = 0; /* lines racing with the shutdown: their files are gone */
        pthread_mutex_unlock(&t->mu);
    }
    for (int i = 0; i < g.nfiles; i++) {
        int fd = atomic_exchange(&g.files[i].fd, -1);
        if (fd >= 0)
            close(fd);
        free(g.files[i].path);
        g.files[i].path = NULL;
    }
    g.nfiles = 0;
    pthread_mutex_unlock(&g.mu);
}
