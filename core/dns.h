/* dns.h: names resolved without blocking a worker (c-ares on the control thread).
 *
 * Design
 *   - One c-ares channel lives on the control thread's event_base. Servers come
 *     from `dns_resolver` (else resolv.conf, which c-ares reads with its
 *     search/ndots options); `dns_hostsfile` is parsed once at start and its
 *     names never reach the DNS servers (they never expire).
 *   - A name (tg_dns_name_t) is shared by every snapshot that mentions it:
 *     tg_snapshot_build takes a reference with tg_dns_name_get, freeing the
 *     snapshot drops it (from any thread). The control thread frees a name
 *     with no reference left at its next timer or answer.
 *   - What a name resolves to is an immutable, refcounted answer set
 *     (tg_dns_answers_t): addresses with the port and weight of their SRV
 *     record, or a failure with the status and message a request gets. The
 *     control thread swaps a name's set under the name's mutex and bumps its
 *     generation. A worker keeps its own reference to the set it last saw in
 *     its slot of the name and re-takes it (the mutex, one atomic increment)
 *     only when the generation moved: a request costs one relaxed load and a
 *     compare. tg_dns_pick copies the chosen address into the caller's
 *     tg_target_t (its `name` points to the name's host, which outlives the
 *     snapshot's requests), so no request holds on to a set.
 *   - Resolution follows `dns_order` (LAST = the type that answered last time,
 *     then SRV, A, CNAME by default; AAAA only when listed): the first type
 *     with records wins. An answer without records (NXDOMAIN, empty, SERVFAIL,
 *     REFUSED...) moves to the next type, a timeout or network failure ends
 *     the attempt, and the last try's error is the one reported, as with
 *     Kong's resolver. SRV keeps the records of
 *     the lowest priority and resolves their targets (A, then AAAA) unless
 *     they are addresses or hostsfile names; a CNAME's target is resolved the
 *     same way. The set lives for the smallest TTL of the records used
 *     (`dns_valid_ttl` replaces it when set; at least 1 s); at expiry the
 *     control thread queries again while workers keep serving the old set.
 *   - Failures: as in Kong's cache, only NXDOMAIN replaces a previous good
 *     set at once; any other failure keeps it (stale) until `dns_stale_ttl`
 *     seconds past its expiry, retrying every `dns_error_ttl` (a refresh
 *     still waiting on a silent server ends the stale period too). Otherwise
 *     a last error of NXDOMAIN or "empty" is published as "name resolution
 *     failed" (503) and asked again after `dns_not_found_ttl`, any other as
 *     Kong's 500 "failed the initial dns/balancer resolve for '<host>' with:
 *     ..." and asked again after `dns_error_ttl` (a TTL of 0 counts as 1 s).
 *   - Search domains and ndots (resolv.conf) apply per type (c-ares'
 *     ares_search); Kong loops over search names outside the types.
 *   - A config's names are resolved before it is published: control.c calls
 *     tg_dns_wait after building the snapshot, which drives the channel
 *     itself (bounded; a name still unanswered then answers 503 until its
 *     first answer arrives).
 *   - `dns_no_sync` and `dns_cache_size` are accepted and have no effect: one
 *     resolver serves all workers, and the table holds the names in use.
 */
#ifndef TG_DNS_H
#define TG_DNS_H

#include "conf.h"
#include "snapshot.h"

#include <event2/event.h>
#include <stdatomic.h>

typedef struct {
    struct sockaddr_storage addr; /* port 0 unless from SRV */
    socklen_t addrlen;
    uint16_t port; /* the SRV record's port; 0: the service's */
    int weight;
} tg_dns_addr_t;

typedef struct tg_dns_answers_s {
    atomic_int refs;
    int status;        /* 0, or the HTTP status a request gets (503, 500) */
    const char *error; /* the message with it (points into this allocation) */
    size_t n;
    int total_weight;
    uint32_t stride; /* the pick's step through [0, total_weight) */
    tg_dns_addr_t a[];
} tg_dns_answers_t;

typedef struct tg_dns_name_s tg_dns_name_t;

/* Control thread. Creates the channel on `base`, reads the hostsfile. */
int tg_dns_init(struct event_base *base, const tg_conf_t *conf, char *err, size_t errlen);
void tg_dns_shutdown(void);

/* Control thread: the name `host` (created and resolving if new) with one
 * more reference, owned by the caller; NULL when tg_dns_init has not run. */
tg_dns_name_t *tg_dns_name_get(const char *host);
/* Any thread: drops a reference taken by tg_dns_name_get. */
void tg_dns_name_release(tg_dns_name_t *n);
/* Control thread: resolves until every name has a first answer or
 * `timeout_ms` passed. */
void tg_dns_wait(int timeout_ms);

/* Control thread, while a config is built: the first current address of
 * `host` (resolved now if new, bounded as tg_dns_wait) into t->addr/addrlen
 * with `port` unless an SRV record gives one. 0, or TG_ENOTFOUND with the
 * reason in err. */
int tg_dns_resolve_now(const char *host, uint16_t port, tg_target_t *t, char *err, size_t errlen);

/* Control thread, while a config is built: every current address of `host`
 * (resolved now if new, bounded as tg_dns_wait) into up to `max` entries of
 * `out` (addr/addrlen with `port` unless an SRV record gives one, weight the
 * SRV record's or 0). The name is returned in *keep with a reference for the
 * caller and is watched: when its addresses change, the callback given to
 * tg_dns_on_change runs (control thread, from the event loop). Returns the
 * number of addresses, or TG_ENOTFOUND with the reason in err. */
int tg_dns_resolve_all(const char *host, uint16_t port, tg_target_t *out, size_t max,
                       tg_dns_name_t **keep, char *err, size_t errlen);
void tg_dns_on_change(void (*fn)(void));

/* Worker `worker`: the name's current answers, NULL before the first. The
 * set stays valid until this worker's next call for this name. */
const tg_dns_answers_t *tg_dns_answers(tg_dns_name_t *n, int worker);
/* Worker: picks an address by weight (round-robin per worker) and copies it to
 * *out with `port` unless the record carries its own. Returns 0, or the HTTP
 * status to answer with its message in *msg. */
int tg_dns_pick(tg_dns_name_t *n, int worker, uint16_t port, tg_target_t *out, const char **msg);

#endif
