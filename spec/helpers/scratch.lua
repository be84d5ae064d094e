-- spec.helpers.scratch: a throwaway directory for specs that produce files
-- with command-line tools (openssl, luarocks) and read them back.
local pl_utils = require "pl.utils"

local scratch = {}
scratch.__index = scratch

--- A new empty directory under /tmp (removed by :remove()).
function scratch.new()
  local dir = os.tmpname()
  os.remove(dir)
  assert(pl_utils.executeex("mkdir -p '" .. dir .. "'"))
  return setmetatable({ dir = dir }, scratch)
end

--- Runs `cmd` in the directory; true when it exits 0 (output discarded).
function scratch:sh(cmd)
  local ok = pl_utils.executeex("cd '" .. self.dir .. "' && " .. cmd)
  return ok
end

--- Runs `cmd` in the directory; its stdout (stderr follows on failure).
function scratch:out(cmd)
  local ok, _, out, err = pl_utils.executeex("cd '" .. self.dir .. "' && " .. cmd)
  return out, not ok and err or nil
end

function scratch:path(name)
  return self.dir .. "/" .. name
end

function scratch:read(name)
  return assert(pl_utils.readfile(self:path(name), true))
end

function scratch:write(name, s)
  assert(pl_utils.writefile(self:path(name), s, true))
end

function scratch:remove()
  pl_utils.executeex("rm -rf '" .. self.dir .. "'")
end

return scratch
