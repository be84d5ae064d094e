/* log.h: the error log and access logs, written without blocking the caller.
 *
 * Callers (worker threads, the control thread) append a line to their own
 * thread's buffer (a mutex only the writer ever contends, for a pointer swap);
 * one writer thread swaps each non-empty buffer out and does the write(2)s, a
 * batch per file. If the writer falls behind and a thread's buffer is full,
 * its lines are dropped and counted (tg_log_dropped), never waited for. Error-log lines look like nginx's:
 *
 *   2026/11/23 20:00:00 [error] 1234#7: message
 *
 * (pid, then the logging thread's kernel tid, as nginx prints pid#tid). Before tg_log_open, and after
 * tg_log_shutdown, tg_log writes synchronously to stderr. */
#ifndef TG_LOG_H
#define TG_LOG_H

#include <stddef.h>
#include <stdint.h>

/* nginx's levels; tollgate.conf's log_level names them debug .. emerg. */
enum {
    TG_LOG_DEBUG,
    TG_LOG_INFO,
    TG_LOG_NOTICE,
    TG_LOG_WARN,
    TG_LOG_ERR,
    TG_LOG_CRIT,
    TG_LOG_ALERT,
    TG_LOG_EMERG,
};

/* "debug" .. "emerg" (nginx's names, "warn" and "error"); -1 if unknown. */
int tg_log_level_parse(const char *name);
const char *tg_log_level_name(int level);

/* Opens the error log ("off", "/dev/stderr", or a path, opened for append and
 * created 0644) and starts the writer thread. Lines below `level` are skipped.
 * May be called again to switch path/level. Returns 0 or a negative TG_E*. */
int tg_log_open(const char *error_log_path, int level);

/* Thread-safe; never blocks on disk. Lines below the current level cost one
 * comparison. A trailing newline is added. */
void tg_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int tg_log_level(void);
void tg_log_set_level(int level);

typedef struct tg_accesslog_s tg_accesslog_t;

/* An access log at `path` (appended, created 0644); NULL for "off" or NULL,
 * and NULL (with an error-log line) when the file cannot be opened. Several
 * opens of the same path share one file. Owned by the log subsystem: freed by
 * tg_log_shutdown. */
tg_accesslog_t *tg_accesslog_open(const char *path);
/* Queues one line (the caller includes its newline). From any thread; never
 * blocks on I/O; a NULL log is a no-op. */
void tg_accesslog_write(tg_accesslog_t *a, const char *line, size_t len);

/* Reopens every file (log rotation, SIGUSR1); safe from any thread, not from
 * a signal handler (the handler should defer to the event loop). */
void tg_log_reopen(void);
/* Flushes every thread's pending lines, stops the writer, closes the files.
 * Later tg_log calls go to stderr synchronously. */
void tg_log_shutdown(void);
/* Waits until every line queued before the call is written (tests, exit
 * paths; this one does block). */
void tg_log_flush(void);

/* Lines dropped because the writer fell behind (since start). */
uint64_t tg_log_dropped(void);

#endif
