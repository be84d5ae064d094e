-- targets: Kong 3.10's target entity (a target without a port gets 8000 when loaded).
local typedefs = require "kong.db.schema.typedefs"
local net = require "tollgate.schema.net"

local function validate_target(target)
  if not net.normalize_ip(target) then
    if not net.validate_utf8(target) then
      return nil, "Invalid target; not a valid hostname or ip address"
    end
    return nil, "Invalid target ('" .. target .. "'); not a valid hostname or ip address"
  end
  return true
end

return {
  name = "targets",
  primary_key = { "id" },
  cache_key = { "upstream", "target" },
  endpoint_key = "target",
  workspaceable = true,
  fields = {
    { id = typedefs.uuid },
    { created_at = typedefs.auto_timestamp_ms },
    { updated_at = typedefs.auto_timestamp_ms },
    { upstream = { type = "foreign", reference = "upstreams", required = true, on_delete = "cascade",
        description = "The unique identifier or the name of the upstream for which to update the target." } },
    { target = { type = "string", required = true, custom_validator = validate_target,
                 description = "The target address (ip or hostname) and port." } },
    { weight = { type = "integer", default = 100, between = { 0, 65535 },
                 description = "The weight this target gets within the upstream loadbalancer (0-65535)." } },
    { tags = typedefs.tags },
  },
}
