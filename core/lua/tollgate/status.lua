-- tollgate.status: the status API (status_listen), called by core/admin.c.
--
--   local status, headers, body = require("tollgate.status").handle(req)
--
-- As Kong's kong/status: GET /status (the Admin API's), GET /status/ready
-- (200 {"message":"ready"}, or 503 with the reason), POST /status/ready with
-- status=draining (then every GET answers 503 "draining"), and DB-less the
-- read-only upstream routes (/upstreams/{u}/targets, .../all, .../{t},
-- /upstreams/{u}/health). No CORS headers (Kong's status app has no
-- cors_filter).

local http = require "tollgate.admin.http"
local kong_routes = require "tollgate.admin.kong"
local admin = require "tollgate.admin"

local _M = {}

local draining = false

local function state()
  return require "tollgate.state"
end

--- Kong's is_dbless_ready / is_traditional_ready, over tollgate's workers.
function _M.ready()
  local st = state()
  local ok, reason = st.ready()
  if not ok then
    return false, reason or "not ready"
  end
  local c = st.conf or {}
  if c.role == "control_plane" then
    return true
  end
  if c.database == "off" or c.database == nil then
    local hash = kong_routes.current_hash()
    if not hash then
      return false, "no configuration available (configuration hash is not initialized)"
    end
    if hash == kong_routes.EMPTY_CONFIG_HASH then
      return false, "no configuration available (empty configuration present)"
    end
  end
  return true
end

local function ready_get()
  if draining then
    return http.message(503, "draining")
  end
  local ok, reason = _M.ready()
  if ok then
    return http.message(200, "ready")
  end
  return http.message(503, reason)
end

local function ready_post(self)
  if self.req.params and self.req.params.status == "draining" then
    draining = true
    return http.response(204, nil)
  end
  return http.response(400, nil)
end

local compiled

local function routes()
  local all = admin.route_table()
  local r = {
    ["/status"] = { GET = kong_routes.status },
    ["/status/ready"] = { GET = ready_get, POST = ready_post },
  }
  local c = state().conf or {}
  if c.database == "off" or c.database == nil then
    for _, p in ipairs({ "/upstreams/:upstreams/health", "/upstreams/:upstreams/targets",
                         "/upstreams/:upstreams/targets/all",
                         "/upstreams/:upstreams/targets/:targets" }) do
      if all[p] and all[p].GET then
        r[p] = { GET = all[p].GET }
      end
    end
  end
  return r
end

local function dispatch(req)
  if req.path == "/robots.txt" then
    return http.response(200, "User-agent: *\nDisallow: /", { ["Content-Type"] = "text/plain" })
  end
  local route, raw = http.match(compiled, http.split_path(req.path))
  if not route then
    return http.not_found()
  end
  local handler = route.methods[req.method] or (req.method == "HEAD" and route.methods.GET)
  if not handler then
    return http.method_not_allowed()
  end
  local refused = http.parse_body(req, false)
  if refused then
    return refused
  end
  local params = http.unescape_params(raw)
  local ws = { id = "0dc6f45b-8f8d-40d2-a504-473544ee190b", name = "default" }
  local config = state().config
  for _, w in ipairs(config and config.workspaces or {}) do
    if w.name == "default" then ws = w end
  end
  return handler({ req = req, args = req.args, params = params, raw = raw, ws = ws,
                   prefix = "" })
end

function _M.handle(req)
  if not compiled then
    compiled = http.compile(routes())
  end
  req.headers = req.headers or {}
  req.body = req.body or ""
  req.args = http.decode_args(req.query)
  local res = dispatch(req)
  return res.status, res.headers, res.body
end

return _M
