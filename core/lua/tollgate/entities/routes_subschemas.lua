-- Route subschemas keyed by protocol (Kong 3.10, traditional_compatible):
-- which matching fields each protocol family allows and requires.
local typedefs = require "kong.db.schema.typedefs"

local function must_set(if_match, names, err, else_match, else_names, else_err)
  return { conditional_at_least_one_of = {
    if_field = "protocols", if_match = if_match,
    then_at_least_one_of = names, then_err = err,
    else_match = else_match, else_then_at_least_one_of = else_names, else_then_err = else_err,
  } }
end

local HTTP = "cannot set '%s' when 'protocols' is 'http' or 'https'"
local STREAM = "cannot set '%s' when 'protocols' is 'tcp', 'tls', 'tls_passthrough' or 'udp'"
local GRPC = "cannot set '%s' when 'protocols' is 'grpc' or 'grpcs'"

local http = {
  name = "http",
  fields = {
    { sources = typedefs.no_sources { err = HTTP:format("sources") } },
    { destinations = typedefs.no_destinations { err = HTTP:format("destinations") } },
  },
  entity_checks = {
    must_set({ contains = "https" }, { "methods", "hosts", "headers", "paths", "snis" },
             "must set one of %s when 'protocols' is 'https'",
             { contains = "http" }, { "methods", "hosts", "headers", "paths" },
             "must set one of %s when 'protocols' is 'http'"),
  },
}

local stream = {
  name = "tcp",
  fields = {
    { methods = typedefs.no_methods { err = STREAM:format("methods") } },
    { hosts = typedefs.no_hosts { err = STREAM:format("hosts") } },
    { paths = typedefs.no_paths { err = STREAM:format("paths") } },
    { headers = typedefs.no_headers { err = STREAM:format("headers") } },
  },
  entity_checks = {
    must_set({ elements = { type = "string", one_of = { "tcp", "tls", "udp" } } },
             { "sources", "destinations", "snis" },
             "must set one of %s when 'protocols' is 'tcp', 'tls' or 'udp'"),
    must_set({ elements = { type = "string", one_of = { "tls_passthrough" } } }, { "snis" },
             "must set snis when 'protocols' is 'tls_passthrough'"),
  },
}

local grpc = {
  name = "grpc",
  fields = {
    { strip_path = { type = "boolean", required = true, default = false, ne = true,
                     err = GRPC:format("strip_path"),
                     description = "When matching a Route via one of the paths, strip the matching prefix from the upstream request URL." } },
    { methods = typedefs.no_methods { err = GRPC:format("methods") } },
    { sources = typedefs.no_sources { err = GRPC:format("sources") } },
    { destinations = typedefs.no_sources { err = GRPC:format("destinations") } },
  },
  entity_checks = {
    must_set({ contains = "grpcs" }, { "hosts", "headers", "paths", "snis" },
             "must set one of %s when 'protocols' is 'grpcs'",
             { contains = "grpc" }, { "hosts", "headers", "paths" },
             "must set one of %s when 'protocols' is 'grpc'"),
  },
}

return {
  http = http, https = http,
  tcp = stream, tls = stream, udp = stream, tls_passthrough = stream,
  grpc = grpc, grpcs = grpc,
}
