-- snis: Kong 3.10's SNI entity (name unique across workspaces).
local typedefs = require "kong.db.schema.typedefs"

return {
  name = "snis",
  primary_key = { "id" },
  endpoint_key = "name",
  workspaceable = true,
  fields = {
    { id = typedefs.uuid },
    { name = typedefs.wildcard_host { required = true, unique = true, unique_across_ws = true } },
    { created_at = typedefs.auto_timestamp_s },
    { updated_at = typedefs.auto_timestamp_s },
    { tags = typedefs.tags },
    { certificate = { type = "foreign", reference = "certificates", required = true,
        description = "The id (a UUID) of the certificate with which to associate the SNI hostname." } },
  },
}
