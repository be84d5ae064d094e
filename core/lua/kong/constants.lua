-- kong.constants: the tables of Kong 3.10's constants module that plugins and
-- tools read. BUNDLED_PLUGINS lists Kong's bundled plugins, for reference
-- (tollgate's own bundled set is tollgate.plugins.bundled()).

local ngx = rawget(_G, "ngx") or {}

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do
    s[v] = true
  end
  return s
end

local KONG_BUNDLED = {
  "jwt", "acl", "correlation-id", "cors", "oauth2", "tcp-log", "udp-log", "file-log",
  "http-log", "key-auth", "hmac-auth", "basic-auth", "ip-restriction",
  "request-transformer", "response-transformer", "request-size-limiting", "rate-limiting",
  "response-ratelimiting", "syslog", "loggly", "datadog", "ldap-auth", "statsd",
  "bot-detection", "aws-lambda", "request-termination", "prometheus", "proxy-cache",
  "session", "acme", "grpc-gateway", "grpc-web", "pre-function", "post-function",
  "azure-functions", "zipkin", "opentelemetry", "ai-proxy", "ai-prompt-decorator",
  "ai-prompt-template", "ai-prompt-guard", "ai-request-transformer",
  "ai-response-transformer", "standard-webhooks", "redirect",
}

local SUBSYSTEM_OF = {
  http = "http", https = "http", grpc = "http", grpcs = "http",
  tcp = "stream", tls = "stream", udp = "stream", tls_passthrough = "stream",
}

local protocols = {}
for p in pairs(SUBSYSTEM_OF) do
  protocols[#protocols + 1] = p
end
table.sort(protocols)

local CORE_ENTITIES = {
  "workspaces", "consumers", "certificates", "services", "routes", "snis", "upstreams",
  "targets", "plugins", "tags", "ca_certificates", "clustering_data_planes", "parameters",
  "vaults", "key_sets", "keys", "filter_chains",
}
for _, e in ipairs({ unpack(CORE_ENTITIES) }) do
  CORE_ENTITIES[e] = true -- an ordered array and a set
end

local CORE_CACHE = set_of({ "certificates", "services", "routes", "snis", "upstreams", "targets",
                            "plugins", "ca_certificates", "vaults", "key_sets", "keys" })
local ENTITY_CACHE_STORE = setmetatable({}, {
  __index = function(_, k)
    return CORE_CACHE[k] and "core_cache" or "cache"
  end,
})
for k in pairs(CORE_CACHE) do
  rawset(ENTITY_CACHE_STORE, k, "core_cache")
end
rawset(ENTITY_CACHE_STORE, "consumers", "cache")
rawset(ENTITY_CACHE_STORE, "tags", "cache")

-- nginx's log level numbers (ngx.DEBUG .. ngx.EMERG)
local LEVELS = {
  debug = ngx.DEBUG or 8, info = ngx.INFO or 7, notice = ngx.NOTICE or 6, warn = ngx.WARN or 5,
  error = ngx.ERR or 4, crit = ngx.CRIT or 3, alert = ngx.ALERT or 2, emerg = ngx.EMERG or 1,
}
local LOG_LEVELS = {}
for name, n in pairs(LEVELS) do
  LOG_LEVELS[name] = n
  LOG_LEVELS[n] = name
end

local SYNC_STATUS = {
  { UNKNOWN = "unknown" },
  { NORMAL = "normal" },
  { KONG_VERSION_INCOMPATIBLE = "kong_version_incompatible" },
  { PLUGIN_SET_INCOMPATIBLE = "plugin_set_incompatible" },
  { PLUGIN_VERSION_INCOMPATIBLE = "plugin_version_incompatible" },
  { FILTER_SET_INCOMPATIBLE = "filter_set_incompatible" },
}
for _, pair in ipairs({ unpack(SYNC_STATUS) }) do
  local k, v = next(pair)
  SYNC_STATUS[k] = v
end

return {
  CJSON_MAX_PRECISION = 16,
  BUNDLED_PLUGINS = set_of(KONG_BUNDLED),
  DEPRECATED_PLUGINS = {},
  BUNDLED_VAULTS = { env = true },
  DEPRECATED_VAULTS = {},
  HEADERS = {
    HOST_OVERRIDE = "X-Host-Override",
    PROXY_LATENCY = "X-Kong-Proxy-Latency",
    RESPONSE_LATENCY = "X-Kong-Response-Latency",
    ADMIN_LATENCY = "X-Kong-Admin-Latency",
    UPSTREAM_LATENCY = "X-Kong-Upstream-Latency",
    UPSTREAM_STATUS = "X-Kong-Upstream-Status",
    CONSUMER_ID = "X-Consumer-ID",
    CONSUMER_CUSTOM_ID = "X-Consumer-Custom-ID",
    CONSUMER_USERNAME = "X-Consumer-Username",
    CREDENTIAL_IDENTIFIER = "X-Credential-Identifier",
    RATELIMIT_LIMIT = "X-RateLimit-Limit",
    RATELIMIT_REMAINING = "X-RateLimit-Remaining",
    CONSUMER_GROUPS = "X-Consumer-Groups",
    AUTHENTICATED_GROUPS = "X-Authenticated-Groups",
    FORWARDED_HOST = "X-Forwarded-Host",
    FORWARDED_PATH = "X-Forwarded-Path",
    FORWARDED_PREFIX = "X-Forwarded-Prefix",
    ANONYMOUS = "X-Anonymous-Consumer",
    REQUEST_ID = "X-Kong-Request-Id",
    VIA = "Via",
    SERVER = "Server",
  },
  CORE_ENTITIES = CORE_ENTITIES,
  ENTITY_CACHE_STORE = ENTITY_CACHE_STORE,
  RATELIMIT = { PERIODS = { "second", "minute", "hour", "day", "month", "year" } },
  REPORTS = { ADDRESS = "kong-hf.konghq.com", STATS_TLS_PORT = 61833 },
  DICTS = {
    "kong", "kong_locks", "kong_db_cache", "kong_db_cache_miss", "kong_cluster_events",
    "kong_healthchecks", "kong_rate_limiting_counters", "kong_secrets",
  },
  DATABASE = { POSTGRES = { MIN = "9.5" }, DAO_MAX_TTL = 1e8 },
  PROTOCOLS = protocols,
  PROTOCOLS_WITH_SUBSYSTEM = SUBSYSTEM_OF,
  DECLARATIVE_DEFAULT_WORKSPACE_ID = "0dc6f45b-8f8d-40d2-a504-473544ee190b",
  DECLARATIVE_LOAD_KEY = "declarative_config:loaded",
  DECLARATIVE_HASH_KEY = "declarative_config:hash",
  DECLARATIVE_DEFAULT_WORKSPACE_KEY = "declarative_config:default_workspace",
  PLUGINS_REBUILD_COUNTER_KEY = "readiness_probe_config:plugins_rebuild_counter",
  ROUTERS_REBUILD_COUNTER_KEY = "readiness_probe_config:routers_rebuild_counter",
  DECLARATIVE_EMPTY_CONFIG_HASH = ("0"):rep(32),
  CLUSTER_ID_PARAM_KEY = "cluster_id",
  CLUSTERING_SYNC_STATUS = SYNC_STATUS,
  CLUSTERING_TIMEOUT = 5000,
  CLUSTERING_PING_INTERVAL = 30,
  CLUSTERING_OCSP_TIMEOUT = 5000,
  CLUSTERING_DATA_PLANE_ERROR = {
    CONFIG_PARSE = "declarative configuration parse failure",
    DELTAS_PARSE = "sync deltas parse failure",
    RELOAD = "configuration reload failed",
    GENERIC = "generic or unknown error",
  },
  CLUSTERING_DATA_PLANES_LATEST_VERSION_KEY = "clustering_data_planes:latest_version",
  CLEAR_HEALTH_STATUS_DELAY = 300,
  KEY_FORMATS_MAP = { jwk = true, pem = true },
  KEY_FORMATS = { "jwk", "pem" },
  LOG_LEVELS = LOG_LEVELS,
  DYN_LOG_LEVEL_KEY = "kong:dyn_log_level",
  DYN_LOG_LEVEL_TIMEOUT_AT_KEY = "kong:dyn_log_level_timeout_at",
  DYN_LOG_LEVEL_DEFAULT_TIMEOUT = 60,
  ADMIN_GUI_KCONFIG_CACHE_KEY = "admin:gui:kconfig",
  REQUEST_DEBUG_TOKEN_FILE = ".request_debug_token",
  REQUEST_DEBUG_LOG_PREFIX = "[request-debug]",
  SCHEMA_NAMESPACES = { PROXY_WASM_FILTERS = "proxy-wasm-filters" },
  RESPONSE_SOURCE = {
    TYPES = { ERROR = "error", EXIT = "exit", SERVICE = "service" },
    NAMES = { error = "kong", exit = "kong", service = "upstream" },
  },
  SOCKET_DIRECTORY = "sockets",
  SOCKETS = {
    WORKER_EVENTS = "we", STREAM_WORKER_EVENTS = "sw", CLUSTER_PROXY_SSL_TERMINATOR = "cp",
    STREAM_CONFIG = "sc", STREAM_TLS_TERMINATE = "st", STREAM_TLS_PASSTHROUGH = "sp",
    STREAM_RPC = "rp",
  },
}
