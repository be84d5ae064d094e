-- services: Kong 3.10's service entity.
local typedefs = require "kong.db.schema.typedefs"
local Schema = require "tollgate.schema"

local null = Schema.null
local nonzero_timeout = Schema.define { type = "integer", between = { 1, 2 ^ 31 - 2 } }
local DEFAULT_PROTOCOL, DEFAULT_PORT = "http", 80

local function not_tls_eq_null(field)
  return { conditional = { if_field = "protocol",
                           if_match = { not_one_of = { "https", "tls" } },
                           then_field = field, then_match = { eq = null } } }
end

return {
  name = "services",
  primary_key = { "id" },
  workspaceable = true,
  endpoint_key = "name",
  fields = {
    { id = typedefs.uuid },
    { created_at = typedefs.auto_timestamp_s },
    { updated_at = typedefs.auto_timestamp_s },
    { name = typedefs.utf8_name },
    { retries = { type = "integer", default = 5, between = { 0, 32767 },
                  description = "The number of retries to execute upon failure to proxy." } },
    { protocol = typedefs.protocol { required = true, default = DEFAULT_PROTOCOL } },
    { host = typedefs.host { required = true } },
    { port = typedefs.port { required = true, default = DEFAULT_PORT } },
    { path = typedefs.path },
    { connect_timeout = nonzero_timeout { default = 60000 } },
    { write_timeout = nonzero_timeout { default = 60000 } },
    { read_timeout = nonzero_timeout { default = 60000 } },
    { tags = typedefs.tags },
    { client_certificate = { type = "foreign", reference = "certificates",
        description = "Certificate to be used as client certificate while TLS handshaking to the upstream server." } },
    { tls_verify = { type = "boolean",
        description = "Whether to enable verification of upstream server TLS certificate." } },
    { tls_verify_depth = { type = "integer", default = null, between = { 0, 64 },
        description = "Maximum depth of chain while verifying Upstream server's TLS certificate." } },
    { ca_certificates = { type = "array", elements = { type = "string", uuid = true },
        description = "Array of CA Certificate object UUIDs used to verify the upstream server's certificate." } },
    { enabled = { type = "boolean", required = true, default = true,
                  description = "Whether the Service is active." } },
  },
  entity_checks = {
    { conditional = { if_field = "protocol",
                      if_match = { one_of = { "tcp", "tls", "udp", "grpc", "grpcs" } },
                      then_field = "path", then_match = { eq = null } } },
    not_tls_eq_null("client_certificate"),
    not_tls_eq_null("tls_verify"),
    not_tls_eq_null("tls_verify_depth"),
    not_tls_eq_null("ca_certificates"),
  },
  shorthand_fields = {
    { url = {
      type = "string",
      func = function(sugar)
        local parsed = require("socket.url").parse(tostring(sugar))
        if not parsed then
          return
        end
        local port = tonumber(parsed.port)
        local implied = (port == 80 and "http") or (port == 443 and "https") or nil
        local protocol = parsed.scheme or implied or DEFAULT_PROTOCOL
        return {
          protocol = protocol,
          host = parsed.host or null,
          port = port or parsed.port or (protocol == "http" and 80)
                 or (protocol == "https" and 443) or DEFAULT_PORT,
          path = parsed.path or null,
        }
      end,
    } },
  },
}
