-- workspaces: Kong's workspace entity. tollgate also refuses the names of its
-- other top-level Admin API paths (KONG_COMPAT.md, "Workspaces").
local typedefs = require "kong.db.schema.typedefs"

local RESERVED = {
  -- Kong 3.10's CORE_ENTITIES, in Kong's order
  "workspaces", "consumers", "certificates", "services", "routes", "snis", "upstreams",
  "targets", "plugins", "tags", "ca_certificates", "clustering_data_planes", "parameters",
  "vaults", "key_sets", "keys", "filter_chains",
  -- tollgate: other top-level Admin API paths
  "schemas", "status", "config", "clustering", "endpoints", "timers", "cache", "debug",
  "key-sets", "metrics",
}

return {
  name = "workspaces",
  primary_key = { "id" },
  cache_key = { "name" },
  endpoint_key = "name",
  fields = {
    { id = typedefs.uuid },
    { name = typedefs.utf8_name { required = true, not_one_of = RESERVED } },
    { comment = { type = "string" } },
    { created_at = typedefs.auto_timestamp_s },
    { updated_at = typedefs.auto_timestamp_s },
    { meta = { type = "record", fields = {} } },
    { config = { type = "record", fields = {} } },
  },
  RESERVED = RESERVED,
}
