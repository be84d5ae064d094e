-- tollgate.modules: keeps the module families tollgate implements itself
-- (lua-resty-string's, lua-resty-openssl's, lua-resty-core's ngx.* and
-- resty.core.*, lua-resty-http's, lua-resty-redis) to tollgate's own files.
-- A member tollgate does not ship fails `require` with a message naming it,
-- instead of being picked up from an OpenResty install elsewhere on
-- package.path and mixing with tollgate's. Installed by tg_lua_new_state.
local M = {}

-- exact names and prefixes ("x." covers x.*)
local OWNED = {
  "resty.string", "resty.aes", "resty.md5", "resty.sha", "resty.sha1", "resty.sha224",
  "resty.sha256", "resty.sha384", "resty.sha512", "resty.random",
  "resty.openssl", "resty.openssl.", "resty.core", "resty.core.", "ngx.",
  "resty.http", "resty.http_headers", "resty.http_connect", "resty.redis",
}

function M.owned(name)
  for _, o in ipairs(OWNED) do
    if name == o or (o:sub(-1) == "." and name:sub(1, #o) == o) then
      return true
    end
  end
  return false
end

local src = debug.getinfo(1, "S").source
local lua_dir = src:match("^@(.*)/tollgate/modules%.lua$")
-- tollgate's own directories: core/lua and pdk
M.path = lua_dir and (lua_dir .. "/?.lua;" .. lua_dir .. "/?/init.lua;" ..
                      lua_dir .. "/../../pdk/?.lua;" .. lua_dir .. "/../../pdk/?/init.lua")

function M.searcher(name)
  if not M.path or not M.owned(name) then
    return nil
  end
  local file = package.searchpath(name, M.path)
  if not file then
    error("module '" .. name .. "' is not shipped by tollgate (tollgate provides its own " ..
          "implementation of this module family and does not load it from elsewhere)", 0)
  end
  local chunk, err = loadfile(file)
  if not chunk then
    error("error loading module '" .. name .. "' from file '" .. file .. "':\n\t" .. err, 0)
  end
  return chunk
end

function M.install()
  local loaders = package.loaders or package.searchers
  for _, l in ipairs(loaders) do
    if l == M.searcher then
      return
    end
  end
  table.insert(loaders, 2, M.searcher)
end

M.install()
return M
