-- kong.tools.uuid: Kong 3.10's uuid helpers (re-exported by kong.tools.utils).

local tuuid = require "tollgate.uuid"

local _M = {}

--- A random (version 4) UUID, lowercase.
function _M.uuid()
  return tuuid.v4()
end

--- Kong's check: 36 characters, 8-4-4-4-12 hex digits in either case
-- (any version and variant, the nil UUID included).
function _M.is_valid_uuid(str)
  if type(str) ~= "string" or #str ~= 36 then
    return false
  end
  return str:find("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$")
         ~= nil
end

return _M
