/* conf.h: tollgate.conf — Kong's kong.conf keys, defaults and syntax.
 *
 * Sources, later wins: built-in defaults (tollgate.conf.default documents them)
 * < the conf file (-c FILE, else /etc/tollgate/tollgate.conf if it exists, else
 * /etc/kong/kong.conf if it exists) < KONG_<KEY> env < TOLLGATE_<KEY> env.
 * Unknown keys and Kong keys tollgate does not implement are warnings (the
 * nearest known key is named); known keys with bad values are refused. */
#ifndef TG_CONF_H
#define TG_CONF_H

#include "tg.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct lua_State lua_State;

/* One address of a *_listen key: "0.0.0.0:8000 reuseport backlog=16384". */
typedef struct {
    char host[256]; /* as written, IPv6 with brackets: "[::1]", "0.0.0.0", "localhost" */
    uint16_t port;
    struct sockaddr_storage addr; /* resolved at load time */
    socklen_t addrlen;
    bool ssl, http2, reuseport, proxy_protocol, deferred, bind;
    int backlog;       /* backlog=N; -1 when not given (the listener picks) */
    int ipv6only;      /* ipv6only=on|off: 1 / 0; -1 when not given */
    int so_keepalive;  /* so_keepalive=on|off|idle:intvl:cnt: 1 / 0; -1 when not given */
    int keepidle, keepintvl, keepcnt; /* from so_keepalive=idle:intvl:cnt, 0 = system */
} tg_listen_t;

/* `headers` / `headers_upstream` tokens as a bitmask. server_tokens = SERVER|VIA,
 * latency_tokens = the four *_LATENCY bits. `off` = 0. */
enum {
    TG_HDR_SERVER = 1u << 0,
    TG_HDR_VIA = 1u << 1,
    TG_HDR_PROXY_LATENCY = 1u << 2,
    TG_HDR_UPSTREAM_LATENCY = 1u << 3,
    TG_HDR_RESPONSE_LATENCY = 1u << 4,
    TG_HDR_ADMIN_LATENCY = 1u << 5,
    TG_HDR_UPSTREAM_STATUS = 1u << 6,
    TG_HDR_REQUEST_ID = 1u << 7,
};
#define TG_HDR_SERVER_TOKENS (TG_HDR_SERVER | TG_HDR_VIA)
#define TG_HDR_LATENCY_TOKENS                                                                      \
    (TG_HDR_PROXY_LATENCY | TG_HDR_UPSTREAM_LATENCY | TG_HDR_RESPONSE_LATENCY |                    \
     TG_HDR_ADMIN_LATENCY)

/* What tollgate sends in Server and Via (KONG_COMPAT.md "Version"). */
#define TG_SERVER_TOKEN "tollgate/" TG_VERSION

/* error_default_type, mirrored from core/respond.h's TG_FMT_* order. */
enum {
    TG_CONF_FMT_JSON = 0,
    TG_CONF_FMT_HTML = 1,
    TG_CONF_FMT_XML = 2,
    TG_CONF_FMT_TEXT = 3,
};

/* One trusted_ips entry. */
typedef struct {
    int family; /* AF_INET, AF_INET6 */
    uint8_t addr[16]; /* network order, masked */
    int bits;
} tg_cidr_t;

typedef struct tg_conf_s {
    char *conf_path; /* the file loaded, or NULL when none */
    char *prefix;    /* absolute, no trailing slash */
    char *pid_file;  /* <prefix>/pids/tollgate.pid */
    char *env_file;  /* <prefix>/.tollgate_env: the effective key = value lines */

    tg_listen_t *proxy_listen;
    size_t nproxy_listen;
    tg_listen_t *admin_listen;
    size_t nadmin_listen;
    tg_listen_t *status_listen;
    size_t nstatus_listen;
    tg_listen_t *cluster_listen;
    size_t ncluster_listen;

    int worker_threads; /* worker_threads, or nginx_worker_processes; auto = cores */
    bool database_off;  /* database = off */
    char *database;     /* "off" | "postgres" */
    char **declarative_config; /* absolute paths (files or directories) */
    size_t ndeclarative_config;
    char *declarative_config_string;

    int log_level; /* TG_LOG_* */
    /* Absolute paths resolved against the prefix, or "off", or "/dev/stderr". */
    char *proxy_access_log, *proxy_error_log;
    char *admin_access_log, *admin_error_log;
    char *status_access_log, *status_error_log;

    unsigned headers, headers_upstream; /* TG_HDR_* */
    char *real_ip_header;
    bool real_ip_recursive;
    tg_cidr_t *trusted_ips;
    size_t ntrusted_ips;
    bool trusted_unix;  /* "unix:" listed */
    bool trusted_all4, trusted_all6; /* 0.0.0.0/0, ::/0 */

    char *error_default_type; /* the MIME type as configured */
    int error_default_fmt;    /* TG_CONF_FMT_* (== respond.h's TG_FMT_*) */

    size_t client_max_body_size;    /* 0 = no limit */
    size_t client_body_buffer_size; /* memory before the body spills to a file */
    size_t admin_client_max_body_size, admin_client_body_buffer_size;
    /* From nginx_http_large_client_header_buffers "N SIZE" (Kong/nginx: "4 8k"):
     * a request line longer than SIZE is 414; the header section (all header
     * lines) larger than N*SIZE, or one header line over SIZE, is 400. */
    size_t max_request_line, max_header_line, max_header_size;
    size_t max_headers; /* header lines per request (tollgate's max_request_headers, 1000) */
    int client_header_timeout_ms, client_body_timeout_ms, send_timeout_ms, keepalive_timeout_ms;
    int keepalive_requests; /* nginx_http_keepalive_requests */

    int upstream_keepalive_pool_size, upstream_keepalive_max_requests;
    int upstream_keepalive_idle_timeout_ms;

    bool nginx_daemon;
    char **plugins; /* "bundled" expanded by the plugin loader, kept as written here */
    size_t nplugins;
    char *lua_package_path, *lua_package_cpath;
    char *role; /* traditional | control_plane | data_plane */
    char *router_flavor;
    size_t mem_cache_size;
    char *lua_shared_dict; /* nginx_http_lua_shared_dict: "name size[; name size]" */
    int lua_max_req_headers, lua_max_resp_headers, lua_max_uri_args, lua_max_post_args;
    bool allow_debug_header;
    char *node_id;

    char *pg_host, *pg_user, *pg_password, *pg_database, *pg_schema;
    int pg_port, pg_timeout_ms;
    bool pg_ssl, pg_ssl_verify;

    char **ssl_cert, **ssl_cert_key;
    size_t nssl_cert, nssl_cert_key;
    char *ssl_protocols, *ssl_cipher_suite, *ssl_ciphers, *ssl_dhparam;
    bool ssl_prefer_server_ciphers, ssl_session_tickets;
    int ssl_session_timeout_s;
    bool client_ssl; /* present client_ssl_cert to every TLS upstream */
    char *client_ssl_cert, *client_ssl_cert_key;

    char **dns_resolver; /* "ip[:port]" entries */
    size_t ndns_resolver;
    char *dns_hostsfile;
    char **dns_order;
    size_t ndns_order;
    int dns_stale_ttl, dns_not_found_ttl, dns_error_ttl, dns_valid_ttl; /* s; valid -1 = unset */
    int dns_cache_size;
    bool dns_no_sync;

    char *cluster_control_plane, *cluster_cert, *cluster_cert_key, *cluster_ca_cert;
    char *cluster_mtls, *cluster_server_name;
    int cluster_data_plane_purge_delay;
    size_t cluster_max_payload;
    bool cluster_use_proxy;

    /* Every key with its effective raw value (after file and env), in table
     * order: used for tg_conf_push_lua, the env file and `tollgate check`. */
    char **raw_keys, **raw_values;
    bool *raw_set; /* given by the file or the environment, not a default */
    size_t nraw;
    /* The warnings given while loading (also sent to tg_log), for `check`. */
    char **warnings;
    size_t nwarnings;
} tg_conf_t;

/* Loads the configuration: defaults < `path` (NULL: /etc/tollgate/tollgate.conf,
 * else /etc/kong/kong.conf, when they exist) < KONG_* < TOLLGATE_* env.
 * `prefix_override` (-p, may be relative) beats every source. Warnings
 * (unknown or unimplemented keys) go to tg_log (stderr before the log is
 * open). On a bad value returns TG_EINVAL with "key: reason" in err (every
 * bad key, one per line). The caller owns *out (tg_conf_free). */
int tg_conf_load(const char *path, const char *prefix_override, tg_conf_t **out, char *err,
                 size_t errlen);
/* As tg_conf_load but with the file's text given and the environment taken from
 * `envp` (NULL-terminated "NAME=value" strings; NULL = the process's). For tests
 * and for `.tollgate_env`. `path` is only used in messages. */
int tg_conf_load_string(const char *text, const char *path, const char *prefix_override,
                        char *const *envp, tg_conf_t **out, char *err, size_t errlen);
void tg_conf_free(tg_conf_t *c);

/* Pushes a kong.configuration-style table: Kong's key names, parsed values
 * (lists as arrays, booleans, numbers), listeners also as Kong's
 * proxy_listeners = { {ip=, port=, ssl=, http2=, ...}, ... }. */
void tg_conf_push_lua(lua_State *L, const tg_conf_t *c);

/* Writes c->env_file (0600): the effective configuration as kong.conf lines,
 * every implemented key plus the Kong keys that were set explicitly. */
int tg_conf_write_env(const tg_conf_t *c);

/* Is the peer in trusted_ips? AF_UNIX peers match "unix:". IPv4-mapped IPv6
 * peers are matched as IPv4. */
bool tg_conf_ip_trusted(const tg_conf_t *c, const struct sockaddr *sa);

/* Parsers, exposed for tests and for other modules. */
/* "0.0.0.0:8000 reuseport backlog=16384, [::1]:8001" | "off". *out may be NULL
 * with *n = 0 for "off". Returns 0 or TG_EINVAL with a reason in err. */
int tg_conf_parse_listen(const char *value, tg_listen_t **out, size_t *n, char *err,
                         size_t errlen);
/* "0", "512", "8k", "10m", "1g" (nginx size units, case-insensitive). */
int tg_conf_parse_size(const char *value, size_t *out);
/* nginx time: "60", "60s", "500ms", "1m", "1h", "1d" → milliseconds. */
int tg_conf_parse_time_ms(const char *value, int *out);
/* "10.0.0.0/8", "192.168.1.7", "2001:db8::/32": the address masked to its bits. */
int tg_conf_parse_cidr(const char *s, tg_cidr_t *out);
/* The known key nearest to `key` by edit distance (NULL if none is close). */
const char *tg_conf_suggest(const char *key);

/* Internal to the conf subsystem (conf.c: keys and loading; conf_value.c:
 * value syntaxes — listen, sizes, times, CIDRs). */
typedef struct {
    char **v;
    size_t n, cap;
} tg__conf_strv_t;
int tg__conf_strv_push(tg__conf_strv_t *s, char *p); /* takes ownership of p (may be NULL) */
void tg__conf_strv_free(char **v, size_t n);
/* A comma list into trimmed, non-empty items; the caller frees with strv_free. */
int tg__conf_split(const char *value, char ***out, size_t *n);
char *tg__conf_trim(char *s); /* in place */
int tg__conf_parse_int(const char *v, long long lo, long long hi, long long *out);

#endif
