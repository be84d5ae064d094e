-- kong.db.schema.typedefs: Kong 3.10's reusable field definitions, so that
-- entity and plugin schemas written for Kong load unchanged. Each typedef is
-- callable: `typedefs.port { default = 80 }` returns a completed copy.

local Schema = require "tollgate.schema"
local net = require "tollgate.schema.net"

local null = Schema.null
local match, gsub, tostring, type = string.match, string.gsub, tostring, type

local function router()
  local ok, r = pcall(require, "tollgate.c.router")
  if not ok then
    error("tollgate.c.router is not available: cannot validate route paths (" .. tostring(r) .. ")", 0)
  end
  return r
end

local function util()
  return require "tollgate.c.util"
end

local function validate_host(host)
  local res, err = net.normalize_ip(host)
  if type(err) == "string" and err ~= "invalid port number" then
    return nil, "invalid value: " .. host
  end
  if err == "invalid port number" or type(res.port) == "number" then
    return nil, "must not have a port"
  end
  return true
end

local function validate_host_with_optional_port(host)
  local res, err = net.normalize_ip(host)
  return (res and true or nil), err
end

-- A validator accepting what `ok(value)` accepts, else the message `fmt` (with the value).
local function accepting(ok, fmt)
  return function(value)
    if ok(value) then
      return true
    end
    return nil, fmt:format(value)
  end
end

local validate_ip = accepting(net.is_valid_ip, "not an ip address: %s")
local validate_ip_or_cidr = accepting(net.is_valid_ip_or_cidr, "invalid ip or cidr range: '%s'")
local validate_ip_or_cidr_v4 = accepting(net.is_valid_ip_or_cidr_v4,
                                         "invalid ipv4 cidr range: '%s'")

local function validate_path(path)
  if not match(path, "^/[%w%.%-%_%~%/%%%:%@%!%$%&%'%(%)%*%+%,%;%=]*$") then
    return nil, "invalid path: '" .. path ..
                "' (characters outside of the reserved list of RFC 3986 found)", "rfc3986"
  end
  local raw = gsub(path, "%%%x%x", "___")
  if raw:find("%", nil, true) then
    return nil, "invalid url-encoded value: '" .. raw:sub(raw:find("%%.?.?")) .. "'", "percent"
  end
  return true
end

local function validate_name(name)
  if not match(name, "^[%w%.%-%_~]+$") then
    return nil, "invalid value '" .. name ..
                "': it must only contain alphanumeric and '., -, _, ~' characters"
  end
  return true
end

local function validate_utf8_string(s)
  local ok, index = net.validate_utf8(s)
  if not ok then
    return nil, "invalid utf-8 character sequence detected at position " .. tostring(index)
  end
  return true
end

-- Valid UTF-8 whose bytes all match `pattern`, else the message `fmt` (with the value).
local function utf8_matching(pattern, fmt)
  return function(value)
    local ok, err = validate_utf8_string(value)
    if not ok then
      return nil, err
    end
    if not match(value, pattern) then
      return nil, fmt:format(value)
    end
    return true
  end
end

local validate_tag = utf8_matching("^[ \033-\043\045\046\048-\126\128-\244]+$",
  "invalid tag '%s': expected printable ascii (except `,` and `/`) or valid utf-8 sequences")

local validate_utf8_name = utf8_matching("^[%w%.%-%_~\128-\244]+$",
  "invalid value '%s': the only accepted ascii characters are alphanumerics or ., -, _, and ~")

local function validate_sni(host)
  local res, err = net.normalize_ip(host)
  if type(err) == "string" and err ~= "invalid port number" then
    return nil, "invalid value: " .. host
  end
  if res and res.type ~= "name" then
    return nil, "must not be an IP"
  end
  if err == "invalid port number" or type(res.port) == "number" then
    return nil, "must not have a port"
  end
  return true
end

local function validate_wildcard_host(host)
  local idx = host:find("*", nil, true)
  if idx then
    if idx ~= 1 and idx ~= #host then
      return nil, "wildcard must be leftmost or rightmost character"
    end
    local mock, count = gsub(host, "%*", "wildcard")
    if count > 1 then
      return nil, "only one wildcard must be specified"
    end
    host = mock
  end
  return validate_sni(host)
end

local function validate_url(url)
  local parsed = require("socket.url").parse(url)
  if not parsed then
    return nil, "could not parse url. " .. url
  end
  if not parsed.host then
    return nil, "missing host in url"
  end
  if not parsed.scheme then
    return nil, "missing scheme in url"
  end
  return true
end

local function validate_header_name(name)
  if name == "" then
    return nil, "no header name provided"
  end
  if match(name, "^[%w%-_]+$") then
    return true
  end
  return nil, "bad header name '" .. name ..
              "', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
end

local function validate_http_token(name)
  if match(name, "^[%w!#%$%%&'%*%+%-%.%^_`|~]+$") then
    return true
  end
  return nil, "invalid value: " .. name
end

local function validate_certificate(cert)
  local ok, err = util().pem_cert_check(cert)
  if not ok then
    return nil, "invalid certificate: " .. err
  end
  return true
end

local function validate_key(key)
  local ok, err = util().pem_key_check(key)
  if not ok then
    return nil, "invalid key: " .. err
  end
  return true
end

local typedefs = {}
local D = Schema.define

typedefs.http_method = D { type = "string", match = "^%u+$",
  description = "A string representing an HTTP method, such as GET, POST, PUT, or DELETE." }

local PROTOCOLS = { "grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp" }
local HTTP_PROTOCOLS = { "grpc", "grpcs", "http", "https" }
typedefs.PROTOCOLS = PROTOCOLS

typedefs.protocol = D { type = "string", one_of = PROTOCOLS,
  description = "A string representing a protocol, such as HTTP or HTTPS." }
typedefs.host = D { type = "string", custom_validator = validate_host,
  description = "A string representing a host name, such as example.com." }
typedefs.redis_host = D { type = "string", custom_validator = validate_host,
  description = "A string representing a host name, such as example.com." }
typedefs.host_with_optional_port = D { type = "string",
  custom_validator = validate_host_with_optional_port,
  description = "A string representing a host name with an optional port." }
typedefs.wildcard_host = D { type = "string", custom_validator = validate_wildcard_host,
  description = "A string representing a wildcard host name, such as *.example.com." }
typedefs.ip = D { type = "string", custom_validator = validate_ip,
  description = "A string representing an IP address." }
typedefs.ip_or_cidr = D { type = "string", custom_validator = validate_ip_or_cidr,
  description = "A string representing an IP address or CIDR block." }
typedefs.cidr_v4 = D { type = "string", custom_validator = validate_ip_or_cidr_v4,
  description = "A string representing an IPv4 address or CIDR block." }
typedefs.cidr = typedefs.cidr_v4
typedefs.port = D { type = "integer", between = { 0, 65535 },
  description = "An integer representing a port number between 0 and 65535, inclusive." }
typedefs.path = D { type = "string", starts_with = "/",
  match_none = { { pattern = "//", err = "must not have empty segments" } },
  custom_validator = validate_path,
  description = "A string representing a URL path, such as /path/to/resource." }
typedefs.url = D { type = "string", custom_validator = validate_url,
  description = "A string representing a URL, such as https://example.com/path/to/resource?q=search." }
typedefs.cookie_name = D { type = "string", custom_validator = validate_http_token,
  description = "A string representing an HTTP token defined by RFC 2616." }
typedefs.header_name = D { type = "string", custom_validator = validate_header_name,
  description = "A string representing an HTTP header name." }
typedefs.timeout = D { type = "integer", between = { 0, 2 ^ 31 - 2 },
  description = "An integer representing a timeout value in milliseconds. Must be between 0 and 2^31-2." }
typedefs.uuid = D { type = "string", uuid = true, auto = true,
  description = "A string representing a UUID (universally unique identifier)." }
typedefs.auto_timestamp_s = D { type = "integer", timestamp = true, auto = true,
  description = "An integer representing an automatic Unix timestamp in seconds." }
typedefs.auto_timestamp_ms = D { type = "number", timestamp = true, auto = true,
  description = "A number representing an automatic Unix timestamp in milliseconds." }
typedefs.no_route = D { type = "foreign", reference = "routes", eq = null,
  description = "A reference to a route that must be null." }
typedefs.no_service = D { type = "foreign", reference = "services", eq = null,
  description = "A reference to a service that must be null." }
typedefs.no_consumer = D { type = "foreign", reference = "consumers", eq = null,
  description = "Custom type for representing a foreign key with a null value allowed." }
typedefs.name = D { type = "string", unique = true, custom_validator = validate_name,
  description = "A unique string representing a name." }
typedefs.utf8_name = D { type = "string", unique = true, custom_validator = validate_utf8_name,
  description = "A unique string representing a UTF-8 encoded name." }
typedefs.sni = D { type = "string", custom_validator = validate_sni,
  description = "A string representing an SNI (server name indication) value for TLS." }
typedefs.redis_server_name = D { type = "string", custom_validator = validate_sni,
  description = "A string representing an SNI (server name indication) value for TLS." }
typedefs.certificate = D { type = "string", custom_validator = validate_certificate,
  description = "A string representing a certificate." }
typedefs.key = D { type = "string", custom_validator = validate_key,
  description = "A string representing a key." }
typedefs.tag = D { type = "string", required = true, custom_validator = validate_tag,
  description = "A string representing a tag." }
typedefs.tags = D { type = "set", elements = typedefs.tag,
  description = "A set of strings representing tags." }
typedefs.capability = D { type = "string",
  description = "A string representing an RBAC capability." }
typedefs.protocols = D { type = "set", required = true, default = HTTP_PROTOCOLS,
  elements = typedefs.protocol,
  description = "A set of strings representing protocols." }
typedefs.protocols_http = D { type = "set", required = true, default = HTTP_PROTOCOLS,
  elements = { type = "string", one_of = HTTP_PROTOCOLS },
  description = "A set of strings representing HTTP protocols." }

local function validate_host_with_wildcards(host)
  return validate_host_with_optional_port((gsub(host, "%*", "abc")))
end

local function validate_path_with_regexes(path)
  local ok, err, code = validate_path(path)
  if code == "percent" then
    return ok, err, code
  end
  if path:sub(1, 1) ~= "~" then
    local normalized, nerr = router().normalize_path(path)
    if not normalized then
      return nil, nerr
    end
    if path ~= normalized then
      return nil, "non-normalized path, consider use '" .. normalized .. "' instead"
    end
    return true
  end
  path = path:sub(2)
  local rerr = router().regex_error(path)
  if rerr then
    return nil, string.format("invalid regex: '%s' (PCRE returned: %s)", path, rerr)
  end
  return true
end

local function source_records(desc)
  return D { type = "set", description = desc,
    elements = { type = "record",
      fields = { { ip = typedefs.ip_or_cidr }, { port = typedefs.port } },
      entity_checks = { { at_least_one_of = { "ip", "port" } } } } }
end

typedefs.sources = source_records("A list of IP sources of incoming connections that match this Route when using stream routing.")
typedefs.no_sources = D(typedefs.sources { eq = null })
typedefs.destinations = source_records("A list of IP destinations of incoming connections that match this Route when using stream routing.")
typedefs.no_destinations = D(typedefs.destinations { eq = null })
typedefs.methods = D { type = "set", elements = typedefs.http_method,
  description = "A list of HTTP methods that match this Route." }
typedefs.no_methods = D(typedefs.methods { eq = null })
typedefs.hosts = D { type = "array",
  elements = { type = "string",
    match_all = { { pattern = "^[^*]*%*?[^*]*$",
                    err = "invalid wildcard: must have at most one wildcard" } },
    match_any = { patterns = { "^%*%.", "%.%*$", "^[^*]*$" },
                  err = "invalid wildcard: must be placed at leftmost or rightmost label" },
    custom_validator = validate_host_with_wildcards },
  description = "A list of domain names that match this Route." }
typedefs.no_hosts = D(typedefs.hosts { eq = null })
typedefs.router_path = D { type = "string",
  match_any = { patterns = { "^/", "^~/" },
                err = "should start with: / (fixed path) or ~/ (regex path)" },
  match_none = { { pattern = "//", err = "must not have empty segments" } },
  custom_validator = validate_path_with_regexes,
  description = "A string representing a router path." }
typedefs.router_paths = D { type = "array", elements = typedefs.router_path,
  description = "A list of paths that match this Route." }
typedefs.no_paths = D(typedefs.router_paths { eq = null })
typedefs.headers = D { type = "map", keys = typedefs.header_name,
  values = { type = "array", elements = { type = "string" } },
  description = "One or more lists of values indexed by header name that will cause this Route to match if present in the request." }
typedefs.no_headers = D(typedefs.headers { eq = null })
typedefs.semantic_version = D { type = "string",
  match_any = { patterns = { "^%d+[%.%d]*$", "^%d+[%.%d]*%-?.*$" },
                err = "invalid version number: must be in format of X.Y.Z" },
  match_none = { { pattern = "%.%.", err = "must not have empty version segments" } },
  description = "A string representing a semantic version number." }

local function validate_pem_keys(values)
  local pub, priv = values.public_key, values.private_key
  if pub and pub ~= null and not util().pem_key_check(pub) then
    return false, "could not load public key"
  end
  if priv and priv ~= null and not util().pem_key_check(priv) then
    return false, "could not load private key"
  end
  return true
end

typedefs.pem = D { type = "record", required = false,
  fields = {
    { private_key = { type = "string", required = false, referenceable = true, encrypted = true } },
    { public_key = { type = "string", referenceable = true, required = false } },
  },
  entity_checks = { { at_least_one_of = { "private_key", "public_key" } } },
  custom_validator = validate_pem_keys,
  description = "A pair of PEM-encoded public and private keys." }

local jwk_fields = { { kid = { type = "string", required = true } } }
for _, n in ipairs({ "issuer", "kty", "use", "alg", "x5u", "x5t", "x5t#S256", "k", "x", "y", "crv",
                     "n", "e", "d", "p", "q", "dp", "dq", "qi", "oth", "r", "t" }) do
  jwk_fields[#jwk_fields + 1] = { [n] = { type = "string", required = false } }
end
jwk_fields[#jwk_fields + 1] = { key_ops = { type = "array", required = false,
                                            elements = { type = "string", required = false } } }
jwk_fields[#jwk_fields + 1] = { x5c = { type = "array", required = false,
                                        elements = { type = "string", required = false } } }
typedefs.jwk = D { type = "record", required = false, fields = jwk_fields,
  description = "A JSON Web Key represented as a string." }

typedefs.lua_code = D { type = "map",
  keys = { type = "string", len_min = 1 },
  values = { type = "string", len_min = 1, custom_validator = function(code)
    local loader = loadstring or load
    local _, err = loader(code, "=code")
    if err then
      return nil, err
    end
    return true
  end },
  description = "A map of strings of Lua code." }

typedefs.ttl = D { type = "number", between = { 0, 100000000 },
  description = "Time-to-live value for data" }

-- Kong's queue parameters (kong.tools.queue_schema), for log plugins.
typedefs.queue = D { type = "record", fields = {
  { max_batch_size = { type = "integer", default = 1, between = { 1, 1000000 } } },
  { max_coalescing_delay = { type = "number", default = 1, between = { 0, 3600 } } },
  { max_entries = { type = "integer", default = 10000, between = { 1, 1000000 } } },
  { max_bytes = { type = "integer", default = null } },
  { max_retry_time = { type = "number", default = 60 } },
  { initial_retry_delay = { type = "number", default = 0.01, between = { 0.001, 1000000 } } },
  { max_retry_delay = { type = "number", default = 60, between = { 0.001, 1000000 } } },
  { concurrency_limit = { type = "integer", default = 1, one_of = { -1, 1 } } },
} }

typedefs.propagation = D { type = "record", fields = {
  { extract = { type = "array", elements = { type = "string", one_of = {
      "w3c", "datadog", "b3", "jaeger", "ot", "gcp", "aws", "instana" } } } },
  { clear = { type = "array", elements = typedefs.header_name } },
  { inject = { type = "array", elements = { type = "string", one_of = {
      "preserve", "w3c", "datadog", "b3", "b3-single", "jaeger", "ot", "gcp", "aws",
      "instana" } } } },
  { default_format = { type = "string", required = true, default = "w3c", one_of = {
      "w3c", "datadog", "b3", "b3-single", "jaeger", "ot", "gcp", "aws", "instana" } } },
} }

setmetatable(typedefs, {
  __index = function(_, k)
    error("schema typedef error: definition " .. tostring(k) .. " does not exist", 2)
  end,
})

return typedefs
