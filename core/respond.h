/* respond.h: Kong's generated error responses (bodies, content negotiation,
 * default messages), reason phrases and request ids. */
#ifndef TG_RESPOND_H
#define TG_RESPOND_H

#include "tg.h"

/* Equal to conf.h's TG_CONF_FMT_*. */
enum {
    TG_FMT_JSON = 0,
    TG_FMT_HTML = 1,
    TG_FMT_XML = 2,
    TG_FMT_TEXT = 3,
};

/* 32 lowercase hex characters and a NUL; a per-thread PRNG seeded from
 * getrandom (no syscall per id). */
void tg_request_id_new(char out[33]);

/* Picks the body format as Kong's get_response_type does. accept == NULL
 * (the header is absent) gives default_fmt. Otherwise each comma-separated
 * media range is read as Kong's pattern reads it; the highest q wins, the
 * first listed wins a tie, q=0 never wins. The winner maps by exact-case
 * lookup: text/html, application/json, application/xml, text/plain,
 * text/ * (plain) and application/ * (JSON); anything else - * / *, unknown
 * or differently-cased types, grpc, an Accept with no valid range - gives
 * JSON, Kong's default (not default_fmt: Kong applies error_default_type
 * only when neither Accept nor Content-Type is present, and reads
 * Content-Type like an Accept value when Accept is absent). */
int tg_respond_pick_format(const char *accept, size_t len, int default_fmt);

/* "application/json" -> TG_FMT_JSON, "text/html", "application/xml",
 * "text/plain"; anything else -> -1. */
int tg_respond_format_from_mime(const char *mime);

/* Writes Kong's error body for fmt into out (NUL-terminated when cap > 0)
 * and returns its length (truncated to cap - 1 if needed). *content_type is
 * set to the matching Content-Type value (static). request_id may be NULL
 * (written as "", as Kong does). The message is inserted verbatim, without
 * escaping, exactly as Kong's templates do. */
size_t tg_respond_error_body(int fmt, const char *message, const char *request_id, char *out,
                             size_t cap, const char **content_type);

/* The error handler's message for status. Statuses without a fixed message
 * ("The upstream server responded with <status>") are written into buf
 * (buf may be NULL: then a static generic text is returned). */
const char *tg_respond_default_message(int status, char *buf, size_t cap);

/* The reason phrase for status ("Unknown" when none). */
const char *tg_http_reason(int status);

#endif
