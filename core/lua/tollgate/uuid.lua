-- tollgate.uuid: UUID helpers (v4, v5, validation) over tollgate.c.util.
--
--   uuid.v4()              -> random UUID
--   uuid.v5(ns, name)      -> RFC 4122 name-based (SHA-1) UUID
--   uuid.factory_v5(ns)    -> function(name) returning uuid.v5(ns, name)
--   uuid.is_valid(s)       -> true when s is a canonical UUID (any version)
--   uuid.ENTITY_NAMESPACE  -> Kong's namespace for declarative ids
--   uuid.entity_id(entity, key) -> UUIDv5(UUIDv5(ENTITY_NAMESPACE, entity), key)

local util = require "tollgate.c.util"

local _M = {
  ENTITY_NAMESPACE = "fd02801f-0957-4a15-a55a-c8d9606f30b5",
}

local PATTERN = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

function _M.is_valid(s)
  return type(s) == "string" and #s == 36 and s:find(PATTERN) ~= nil
end

function _M.v4()
  return util.uuid_v4()
end

function _M.v5(ns, name)
  local id, err = util.uuid_v5(ns, name)
  if not id then
    error("uuid.v5: " .. err, 2)
  end
  return id
end

function _M.factory_v5(ns)
  return function(name)
    return _M.v5(ns, name)
  end
end

local namespaces = {}

function _M.entity_id(entity, key)
  local ns = namespaces[entity]
  if not ns then
    ns = _M.v5(_M.ENTITY_NAMESPACE, entity)
    namespaces[entity] = ns
  end
  return _M.v5(ns, key)
end

return _M
