-- vaults: Kong 3.10's vault entity; `config` is specialised per vault kind
-- (subschemas keyed by `name`). tollgate bundles the `env` vault.
local typedefs = require "kong.db.schema.typedefs"

local BUNDLED = { "env" }

return {
  name = "vaults",
  primary_key = { "id" },
  cache_key = { "prefix" },
  endpoint_key = "prefix",
  workspaceable = true,
  subschema_key = "name",
  subschema_error = "vault '%s' is not installed",
  fields = {
    { id = typedefs.uuid },
    { prefix = { type = "string", required = true, unique = true, unique_across_ws = true,
                 match = [[^[a-z][a-z%d-]-[a-z%d]+$]], not_one_of = BUNDLED } },
    { name = { type = "string", required = true } },
    { description = { type = "string" } },
    { config = { type = "record", abstract = true } },
    { created_at = typedefs.auto_timestamp_s },
    { updated_at = typedefs.auto_timestamp_s },
    { tags = typedefs.tags },
  },
  vault_subschemas = {
    env = { name = "env", fields = { { config = { type = "record", fields = {
      { prefix = { type = "string", match = [[^[%a_][%a%d_]*$]] } },
      { base64_decode = { type = "boolean", default = false } },
    } } } } },
  },
  BUNDLED = BUNDLED,
}
