/* proxy_protocol.h: PROXY protocol v1 (text) and v2 (binary) headers at the
 * start of a connection. */
#ifndef TG_PROXY_PROTOCOL_H
#define TG_PROXY_PROTOCOL_H

#include "tg.h"

#include <sys/socket.h>

typedef struct {
    struct sockaddr_storage src, dst;
    int has_addr; /* 0 for LOCAL / UNKNOWN / unsupported families */
} tg_proxy_protocol_t;

#define TG_PROXY_PROTOCOL_V1_MAX 107

/* Returns bytes consumed (> 0), TG_EAGAIN (need more), or TG_ERROR
 * (malformed, or not a PROXY header at all). */
int tg_proxy_protocol_parse(const char *buf, size_t len, tg_proxy_protocol_t *out);

#endif
