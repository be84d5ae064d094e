-- tollgate.admin: the Admin API (admin_listen), called by core/admin.c.
--
--   local status, headers, body = require("tollgate.admin").handle(req)
--
-- Routing as Kong's lapis application: path patterns with `:param` segments
-- (a literal segment beats a parameter), a trailing slash ignored, HEAD
-- served by GET, OPTIONS answered from the methods a path has, 404
-- {"message":"Not found"} for unknown paths and 405 {"message":"Method not
-- allowed"} for a known path without that method. A path may start with a
-- workspace name (/teamA/services); without one the default workspace is
-- used. CORS headers as Kong's cors_filter.

local http = require "tollgate.admin.http"
local kong_routes = require "tollgate.admin.kong"

local type, ipairs, concat = type, ipairs, table.concat

local _M = {}

local DEFAULT_WS_ID = "0dc6f45b-8f8d-40d2-a504-473544ee190b"
local METHODS = { "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT" }
local ACCEPTS_YAML = { ["/config"] = true }

local function state()
  return require "tollgate.state"
end

---------------------------------------------------------------------------
-- route table

local compiled -- http.compile(route_table())

--- Every route of the Admin API: pattern -> { METHOD = handler(self) }.
function _M.route_table()
  local routes = {
    ["/"] = { GET = kong_routes.root },
    ["/status"] = { GET = kong_routes.status },
    ["/config"] = { GET = kong_routes.config_get, POST = kong_routes.config_post },
    ["/plugins/enabled"] = { GET = kong_routes.plugins_enabled },
  }
  require("tollgate.admin.entities").routes(routes)
  routes["/endpoints"] = {
    GET = function()
      local patterns = {}
      for _, r in ipairs(compiled) do
        patterns[#patterns + 1] = r.pattern
      end
      return kong_routes.endpoints_body(patterns)
    end,
  }
  return routes
end

local function match(segs)
  return http.match(compiled, segs)
end

local function find_workspace(name)
  local config = state().config
  for _, ws in ipairs(config and config.workspaces or {}) do
    if ws.name == name then
      return ws
    end
  end
end

local function default_workspace()
  return find_workspace("default") or { id = DEFAULT_WS_ID, name = "default" }
end

---------------------------------------------------------------------------

local function allowed(methods)
  local list = {}
  for _, m in ipairs(METHODS) do
    if methods[m] or (m == "HEAD" and methods.GET) or m == "OPTIONS" then
      list[#list + 1] = m
    end
  end
  return concat(list, ", ")
end

-- Resolves path -> route, params, workspace, prefix.
local function resolve(path)
  local segs = http.split_path(path)
  local route, params = match(segs)
  if route then
    return route, params, default_workspace(), ""
  end
  if #segs >= 1 then
    local ws = find_workspace(http.unescape_uri(segs[1]))
    if ws then
      local rest = {}
      for i = 2, #segs do rest[#rest + 1] = segs[i] end
      route, params = match(rest)
      if route then
        return route, params, ws, "/" .. segs[1]
      end
    end
  end
end

local function dispatch(req)
  if req.path == "/robots.txt" then
    return http.response(200, "User-agent: *\nDisallow: /", { ["Content-Type"] = "text/plain" })
  end
  local route, raw, ws, prefix = resolve(req.path)
  if not route then
    return http.not_found()
  end
  local methods = route.methods
  local method = req.method
  local handler = methods.ANY or methods[method] or (method == "HEAD" and methods.GET)
  if not handler then
    if method == "OPTIONS" then
      local allow = allowed(methods)
      return http.response(204, nil, {
        ["Allow"] = allow,
        ["Access-Control-Allow-Methods"] = allow,
        ["Access-Control-Allow-Headers"] = req.headers["access-control-request-headers"]
                                           or "Content-Type",
      })
    end
    return http.method_not_allowed()
  end
  local refused = http.parse_body(req, ACCEPTS_YAML[route.pattern])
  if refused then
    return refused
  end
  local self = { req = req, args = req.args, params = http.unescape_params(raw), raw = raw, ws = ws,
                 prefix = prefix }
  return handler(self)
end

local function cors(req, headers)
  local origins = (state().conf or {}).admin_gui_origin
  local origin = req.headers["origin"]
  if type(origins) == "string" then
    origins = { origins }
  end
  if type(origins) == "table" and #origins > 0 then
    local ok = false
    for _, o in ipairs(origins) do
      if o == origin then ok = true end
    end
    if not ok then origin = origins[1] end
  else
    origin = origin or "*"
  end
  headers["Access-Control-Allow-Origin"] = origin
  headers["Access-Control-Allow-Credentials"] = "true"
end

--- Answers one request (see core/admin.h for `req`).
-- @treturn number status
-- @treturn table headers
-- @treturn string body
function _M.handle(req)
  if not compiled then
    compiled = http.compile(_M.route_table())
  end
  req.headers = req.headers or {}
  req.body = req.body or ""
  req.args = http.decode_args(req.query)
  local res = dispatch(req)
  cors(req, res.headers)
  return res.status, res.headers, res.body
end

return _M
