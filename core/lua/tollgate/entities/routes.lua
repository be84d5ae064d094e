-- routes: Kong 3.10's route entity (router_flavor traditional_compatible).
-- Path normalisation, regexes and router-level checks come from the C router
-- (tollgate.c.router); without it validation raises an error.
local typedefs = require "kong.db.schema.typedefs"

local PATH_V1_DEPRECATION_MSG = "path_handling='v1' is deprecated and will not work under " ..
  "'expressions' or 'traditional_compatible' router_flavor, please use path_handling='v0' instead"

local function warn(msg)
  if kong and kong.log and kong.log.warn then
    kong.log.warn(msg)
  elseif ngx and ngx.log then
    ngx.log(ngx.WARN, msg)
  else
    io.stderr:write("[warn] ", msg, "\n")
  end
end

local function router()
  local ok, r = pcall(require, "tollgate.c.router")
  if not ok then
    error("tollgate.c.router is not available: cannot validate routes (" .. tostring(r) .. ")", 0)
  end
  return r
end

local function validate_route(entity)
  local r = router()
  if not r.validate then
    return true
  end
  local i, msg = r.validate({ entity })
  if i then
    return nil, msg
  end
  return true
end

return {
  name = "routes",
  primary_key = { "id" },
  endpoint_key = "name",
  workspaceable = true,
  subschema_key = "protocols",
  fields = {
    { id = typedefs.uuid },
    { created_at = typedefs.auto_timestamp_s },
    { updated_at = typedefs.auto_timestamp_s },
    { name = typedefs.utf8_name },
    { protocols = { type = "set", len_min = 1, required = true, elements = typedefs.protocol,
                    mutually_exclusive_subsets = { { "http", "https" }, { "tcp", "tls", "udp" },
                                                   { "tls_passthrough" }, { "grpc", "grpcs" } },
                    default = { "http", "https" },
                    description = "An array of the protocols this Route should allow." } },
    { https_redirect_status_code = { type = "integer", one_of = { 426, 301, 302, 307, 308 },
                                     default = 426, required = true,
        description = "The status code Kong responds with when all properties of a Route match except the protocol" } },
    { strip_path = { type = "boolean", required = true, default = true,
        description = "When matching a Route via one of the paths, strip the matching prefix from the upstream request URL." } },
    { preserve_host = { type = "boolean", required = true, default = false,
        description = "When matching a Route via one of the hosts domain names, use the request Host header in the upstream request headers." } },
    { request_buffering = { type = "boolean", required = true, default = true,
        description = "Whether to enable request body buffering or not. With HTTP 1.1." } },
    { response_buffering = { type = "boolean", required = true, default = true,
        description = "Whether to enable response body buffering or not." } },
    { tags = typedefs.tags },
    { service = { type = "foreign", reference = "services",
        description = "The Service this Route is associated to." } },
    { snis = { type = "set", elements = typedefs.wildcard_host,
               description = "A list of SNIs that match this Route." } },
    { sources = typedefs.sources },
    { destinations = typedefs.destinations },
    { methods = typedefs.methods },
    { hosts = typedefs.hosts },
    { paths = typedefs.router_paths },
    { headers = typedefs.headers {
        keys = typedefs.header_name {
          match_none = { { pattern = "^[Hh][Oo][Ss][Tt]$",
            err = "cannot contain 'host' header, which must be specified in the 'hosts' attribute" } },
        },
    } },
    { regex_priority = { type = "integer", default = 0,
        description = "A number used to choose which route resolves a given request when several routes match it using regexes simultaneously." } },
    { path_handling = { type = "string", default = "v0", one_of = { "v0", "v1" },
        description = "Controls how the Service path, Route path and requested path are combined when sending a request to the upstream." } },
  },
  entity_checks = {
    { conditional = { if_field = "protocols",
                      if_match = { elements = { type = "string",
                                   not_one_of = { "grpcs", "https", "tls", "tls_passthrough" } } },
                      then_field = "snis", then_match = { len_eq = 0 },
                      then_err = "'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or 'tls_passthrough'" } },
    { custom_entity_check = {
        field_sources = { "path_handling" },
        fn = function(entity)
          if entity.path_handling == "v1" then
            warn(PATH_V1_DEPRECATION_MSG)
          end
          return true
        end,
    } },
    { custom_entity_check = {
        field_sources = { "id", "protocols", "snis", "sources", "destinations", "methods",
                          "hosts", "paths", "headers", "regex_priority" },
        run_with_missing_fields = true,
        fn = validate_route,
    } },
  },
  PATH_V1_DEPRECATION_MSG = PATH_V1_DEPRECATION_MSG,
}
