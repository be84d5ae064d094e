-- tollgate.entities: the core entity schemas, built once, in dependency order.
--
--   local entities = require "tollgate.entities"
--   entities.ORDER            -- names, parents before children
--   entities.get("services")  -- the tollgate.schema object

local Schema = require "tollgate.schema"

local _M = {}

-- Parents before children (foreign references point backwards).
_M.ORDER = {
  "workspaces", "consumers", "certificates", "ca_certificates", "snis", "services",
  "routes", "upstreams", "targets", "key_sets", "keys", "vaults", "plugins",
}

local schemas = {}

function _M.get(name)
  local s = schemas[name]
  if s then
    return s
  end
  local def = require("tollgate.entities." .. name)
  local err
  s, err = Schema.new_entity(def)
  if not s then
    error("entity schema " .. name .. ": " .. tostring(err))
  end
  local has_subs, subs = pcall(require, "tollgate.entities." .. name .. "_subschemas")
  if has_subs then
    for kind, sub in pairs(subs) do
      assert(s:new_subschema(kind, sub))
    end
  end
  if def.vault_subschemas then
    for kind, sub in pairs(def.vault_subschemas) do
      assert(s:new_subschema(kind, sub))
    end
  end
  schemas[name] = s
  return s
end

for _, name in ipairs(_M.ORDER) do
  _M.get(name)
end

return _M
