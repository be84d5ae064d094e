-- upstreams: Kong 3.10's upstream entity with its health check defaults.
local typedefs = require "kong.db.schema.typedefs"
local Schema = require "tollgate.schema"
local net = require "tollgate.schema.net"

local null = Schema.null
local D = Schema.define

local function name_for_error(name)
  if not net.validate_utf8(name) then
    return "Invalid name"
  end
  return "Invalid name ('" .. name .. "')"
end

local function validate_name(name)
  local p = net.normalize_ip(name)
  if not p then
    return nil, name_for_error(name) .. "; must be a valid hostname"
  end
  if p.type ~= "name" then
    return nil, name_for_error(name) .. "; no ip addresses allowed"
  end
  if p.port then
    return nil, name_for_error(name) .. "; no port allowed"
  end
  return true
end

local hash_on = D { type = "string", default = "none",
  one_of = { "none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture" } }
local http_statuses = D { type = "array", elements = { type = "integer", between = { 100, 999 } } }
local seconds = D { type = "number", between = { 0, 65535 } }
local positive_int = D { type = "integer", between = { 1, 2 ^ 31 } }
local one_byte = D { type = "integer", between = { 0, 255 } }
local check_type = D { type = "string", one_of = { "tcp", "http", "https", "grpc", "grpcs" },
                       default = "http" }
local simple_param = D { type = "string", len_min = 1 }

-- A record whose default is the record of its fields' defaults (as Kong's gen_fields).
local function record(fields)
  local default = {}
  for _, item in ipairs(fields) do
    local k, f = next(item)
    if f.default ~= nil then
      default[k] = f.default
    end
  end
  return { type = "record", fields = fields, default = default }
end

local ACTIVE_UNHEALTHY = { 429, 404, 500, 501, 502, 503, 504, 505 }
local PASSIVE_HEALTHY = { 200, 201, 202, 203, 204, 205, 206, 207, 208, 226,
                          300, 301, 302, 303, 304, 305, 306, 307, 308 }

local healthchecks = record {
  { active = record {
      { type = check_type { default = "http" } },
      { timeout = seconds { default = 1 } },
      { concurrency = positive_int { default = 10 } },
      { http_path = typedefs.path { default = "/" } },
      { https_sni = typedefs.sni { required = false } },
      { https_verify_certificate = { type = "boolean", default = true, required = true } },
      { headers = typedefs.headers { required = false } },
      { healthy = record {
          { interval = seconds { default = 0 } },
          { http_statuses = http_statuses { default = { 200, 302 } } },
          { successes = one_byte { default = 0 } },
      } },
      { unhealthy = record {
          { interval = seconds { default = 0 } },
          { http_statuses = http_statuses { default = ACTIVE_UNHEALTHY } },
          { tcp_failures = one_byte { default = 0 } },
          { timeouts = one_byte { default = 0 } },
          { http_failures = one_byte { default = 0 } },
      } },
  } },
  { passive = record {
      { type = check_type { default = "http" } },
      { healthy = record {
          { http_statuses = http_statuses { default = PASSIVE_HEALTHY } },
          { successes = one_byte { default = 0 } },
      } },
      { unhealthy = record {
          { http_statuses = http_statuses { default = { 429, 500, 503 } } },
          { tcp_failures = one_byte { default = 0 } },
          { timeouts = one_byte { default = 0 } },
          { http_failures = one_byte { default = 0 } },
      } },
  } },
  { threshold = { type = "number", default = 0, between = { 0, 100 } } },
}

local function hash_conditional(field, value, then_field, then_match)
  return { conditional = { if_field = field, if_match = { match = "^" .. value .. "$" },
                           then_field = then_field, then_match = then_match } }
end

local ALL_BUT = function(except)
  local out = {}
  for _, v in ipairs({ "none", "consumer", "ip", "header", "cookie", "path", "query_arg",
                       "uri_capture" }) do
    if v ~= except then out[#out + 1] = v end
  end
  return out
end

return {
  name = "upstreams",
  primary_key = { "id" },
  endpoint_key = "name",
  workspaceable = true,
  fields = {
    { id = typedefs.uuid },
    { created_at = typedefs.auto_timestamp_s },
    { name = { type = "string", required = true, unique = true, custom_validator = validate_name,
               description = "This is a hostname, which must be equal to the host of a Service." } },
    { updated_at = typedefs.auto_timestamp_s },
    { algorithm = { type = "string", default = "round-robin",
        one_of = { "consistent-hashing", "least-connections", "round-robin", "latency" } } },
    { hash_on = hash_on },
    { hash_fallback = hash_on },
    { hash_on_header = typedefs.header_name },
    { hash_fallback_header = typedefs.header_name },
    { hash_on_cookie = typedefs.cookie_name {} },
    { hash_on_cookie_path = typedefs.path { default = "/" } },
    { hash_on_query_arg = simple_param },
    { hash_fallback_query_arg = simple_param },
    { hash_on_uri_capture = simple_param },
    { hash_fallback_uri_capture = simple_param },
    { slots = { type = "integer", default = 10000, between = { 10, 2 ^ 16 } } },
    { healthchecks = healthchecks },
    { tags = typedefs.tags },
    { host_header = typedefs.host_with_optional_port },
    { client_certificate = { type = "foreign", reference = "certificates" } },
    { use_srv_name = { type = "boolean", default = false } },
  },
  entity_checks = {
    hash_conditional("hash_on", "header", "hash_on_header", { required = true }),
    hash_conditional("hash_fallback", "header", "hash_fallback_header", { required = true }),
    hash_conditional("hash_on", "cookie", "hash_on_cookie", { required = true }),
    hash_conditional("hash_fallback", "cookie", "hash_on_cookie", { required = true }),
    hash_conditional("hash_on", "none", "hash_fallback", { one_of = { "none" } }),
    hash_conditional("hash_on", "cookie", "hash_fallback", { one_of = { "none" } }),
    hash_conditional("hash_on", "consumer", "hash_fallback", { one_of = ALL_BUT("consumer") }),
    hash_conditional("hash_on", "ip", "hash_fallback", { one_of = ALL_BUT("ip") }),
    hash_conditional("hash_on", "path", "hash_fallback", { one_of = ALL_BUT("path") }),
    { distinct = { "hash_on_header", "hash_fallback_header" } },
    hash_conditional("hash_on", "query_arg", "hash_on_query_arg", { required = true }),
    hash_conditional("hash_fallback", "query_arg", "hash_fallback_query_arg", { required = true }),
    { distinct = { "hash_on_query_arg", "hash_fallback_query_arg" } },
    hash_conditional("hash_on", "uri_capture", "hash_on_uri_capture", { required = true }),
    hash_conditional("hash_fallback", "uri_capture", "hash_fallback_uri_capture", { required = true }),
    { distinct = { "hash_on_uri_capture", "hash_fallback_uri_capture" } },
  },
  shorthand_fields = {
    { algorithm = { type = "string", func = function(value)
        if value == "least-connections" or value == "latency" then
          return { algorithm = value, hash_on = null }
        end
        return { algorithm = value }
    end } },
    { hash_on = { type = "string", func = function(value)
        if value == null then
          return { hash_on = "none" }
        elseif value == "none" then
          return { hash_on = value, algorithm = "round-robin" }
        end
        return { hash_on = value, algorithm = "consistent-hashing" }
    end } },
  },
}
