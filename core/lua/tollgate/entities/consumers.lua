-- consumers: Kong 3.10's consumer entity.
local typedefs = require "kong.db.schema.typedefs"

return {
  name = "consumers",
  primary_key = { "id" },
  endpoint_key = "username",
  workspaceable = true,
  fields = {
    { id = typedefs.uuid },
    { created_at = typedefs.auto_timestamp_s },
    { updated_at = typedefs.auto_timestamp_s },
    { username = { type = "string", unique = true,
        description = "The unique username of the Consumer." } },
    { custom_id = { type = "string", unique = true,
        description = "Stores the existing unique ID of the consumer." } },
    { tags = typedefs.tags },
  },
  entity_checks = {
    { at_least_one_of = { "custom_id", "username" } },
  },
}
