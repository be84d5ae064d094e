/* proxy.h: the HTTP/1.1 proxy state machine (one client connection at a time,
 * requests served in order; see DESIGN.md "A request, start to end"). */
#ifndef TG_PROXY_H
#define TG_PROXY_H

#include "worker.h"

/* Bytes of upstream response held for a slow client before reading pauses. */
#define TG_PROXY_READ_AHEAD (64 * 1024)
#define TG_PROXY_MAX_HEADERS 128

#include "log.h"
/* The proxy access log (NULL when off); opened by the server. */
extern tg_accesslog_t *tg_proxy_accesslog;

#endif
