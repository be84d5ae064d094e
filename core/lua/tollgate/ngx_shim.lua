-- tollgate.ngx_shim: the part of OpenResty's `ngx` API Kong plugins use,
-- over the PDK's C ABI. install() sets _G.ngx when there is none.
--
-- ngx.shared is tollgate.shdict, ngx.re tollgate.ngx_re; ngx.sleep,
-- ngx.timer, ngx.thread, ngx.socket and ngx.worker.exiting come from
-- tollgate.sched (the worker's event loop), ngx.semaphore is a module.
local ffi = require "ffi"
local cjson = require "cjson.safe"
local base = require "kong.pdk.private.base"
local args = require "kong.pdk.private.args"
local tctx = require "tollgate.ctx"
local ossl = require "tollgate.openssl"

local C = base.C
local s1, n1 = base.s1, base.n1
local get_req = base.get_req
local ffi_string = ffi.string
local type = type
local tostring = tostring
local tonumber = tonumber
local select = select
local pairs = pairs
local ipairs = ipairs
local error = error
local floor = math.floor
local concat = table.concat
local sub = string.sub
local find = string.find
local lower = string.lower
local gsub = string.gsub
local co_yield = coroutine.yield
local co_running = coroutine.running

local shim = {}

local BODY_KEY = "__tg_ngx_body"        -- ngx.print/say output of the request
local UPSTREAM_URI_KEY = "__tg_upstream_uri"
local UPQUERY_KEY = "__tg_upstream_query" -- shared with kong.pdk.service

ffi.cdef [[
  int tg_pdk_tls_var(tg_req_t *r, const char *name, size_t nlen, const char **out, size_t *len);
]]

-- nginx's $ssl_* variables (core/pdk_tls.c); nil on a plain connection
local function tls_var(r, name)
  if C.tg_pdk_tls_var(r, name, #name, s1, n1) <= 0 then
    return nil
  end
  return ffi_string(s1[0], n1[0])
end

local function str_of(fn, r)
  if fn(r, s1, n1) < 0 then
    return nil
  end
  return ffi_string(s1[0], n1[0])
end

local function req_header(r, name)
  if C.tg_pdk_req_get_header(r, name, #name, s1, n1) < 0 then
    return nil
  end
  return ffi_string(s1[0], n1[0])
end

-- ------------------------------------------- base64, crc32, digests --
-- over libcrypto and zlib (tollgate.openssl, the one FFI binding)

function shim.encode_base64(s, no_padding)
  if type(s) ~= "string" then
    if s == nil then
      s = ""
    else
      s = tostring(s)
    end
  end
  return ossl.b64_encode(s, no_padding)
end

--- nil when the input is not valid base64 (padding optional; decoding stops
-- at the first '=', as nginx's ngx_decode_base64).
function shim.decode_base64(s)
  if type(s) ~= "string" then
    error("string argument only", 2)
  end
  return ossl.b64_decode(s)
end

function shim.crc32(s)
  return ossl.crc32(tostring(s))
end

function shim.hmac_sha1(key, data)
  return ossl.hmac("sha1", tostring(key), tostring(data))
end

-- ------------------------------------------------------------------ times --

local function now()
  return C.tg_pdk_now()
end

local DAYS = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }
local MONTHS = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                 "Dec" }

function shim.http_time(sec)
  local t = os.date("!*t", floor(tonumber(sec) or 0))
  return string.format("%s, %02d %s %d %02d:%02d:%02d GMT", DAYS[t.wday], t.day,
                       MONTHS[t.month], t.year, t.hour, t.min, t.sec)
end

function shim.cookie_time(sec)
  local t = os.date("!*t", floor(tonumber(sec) or 0))
  return string.format("%s, %02d-%s-%d %02d:%02d:%02d GMT", DAYS[t.wday], t.day,
                       MONTHS[t.month], t.year, t.hour, t.min, t.sec)
end

-- ------------------------------------------------------------------- log --

-- nginx's levels (ngx.STDERR .. ngx.DEBUG) -> TG_LOG_* (core/log.h)
local NGX_TO_TG = { [0] = 7, [1] = 7, [2] = 6, [3] = 5, [4] = 4, [5] = 3, [6] = 2, [7] = 1,
                    [8] = 0 }

local function ngx_log(level, ...)
  local lvl = NGX_TO_TG[level]
  if lvl == nil then
    error("bad log level", 2)
  end
  if lvl < C.tg_pdk_log_level() then
    return
  end
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do
    local v = select(i, ...)
    if v == nil then
      parts[i] = "nil"
    elseif v == cjson.null then
      parts[i] = "null"
    else
      parts[i] = tostring(v)
    end
  end
  local info = debug.getinfo(2, "Sln")
  local src = info and info.short_src and info.short_src:match("([^/]+)$") or "?"
  local where = src .. ":" .. tostring(info and info.currentline or "?") .. ": "
  if info and info.name then
    where = where .. info.name .. "(): "
  end
  local msg = "[lua] " .. where .. concat(parts)
  C.tg_pdk_log(lvl, msg, #msg)
end

-- ------------------------------------------------------------- ngx.var --

local function upstream_uri_set(r, v)
  if type(v) ~= "string" then
    error("upstream_uri must be a string", 3)
  end
  local q = find(v, "?", 1, true)
  local path = q and sub(v, 1, q - 1) or v
  C.tg_pdk_upreq_set_path(r, path, #path)
  if q then
    local query = sub(v, q + 1)
    C.tg_pdk_upreq_set_raw_query(r, query, #query)
    tctx.get(r)[UPQUERY_KEY] = query
  end
  tctx.get(r)[UPSTREAM_URI_KEY] = v
end

local VARS = {
  request_method = function(r) return str_of(C.tg_pdk_req_get_method, r) end,
  uri = function(r) return str_of(C.tg_pdk_req_get_path, r) end,
  args = function(r)
    local q = str_of(C.tg_pdk_req_get_raw_query, r)
    if q == nil or q == "" then
      return nil
    end
    return q
  end,
  is_args = function(r)
    local q = str_of(C.tg_pdk_req_get_raw_query, r)
    return (q and q ~= "") and "?" or ""
  end,
  request_uri = function(r)
    local p = str_of(C.tg_pdk_req_get_raw_path, r) or ""
    local q = str_of(C.tg_pdk_req_get_raw_query, r)
    if q and q ~= "" then
      return p .. "?" .. q
    end
    return p
  end,
  host = function(r) return str_of(C.tg_pdk_req_get_host, r) end,
  scheme = function(r) return str_of(C.tg_pdk_req_get_scheme, r) end,
  https = function(r)
    return str_of(C.tg_pdk_req_get_scheme, r) == "https" and "on" or ""
  end,
  server_port = function(r) return tostring(C.tg_pdk_req_get_port(r)) end,
  remote_addr = function(r) return str_of(C.tg_pdk_client_get_forwarded_ip, r) end,
  realip_remote_addr = function(r) return str_of(C.tg_pdk_client_get_ip, r) end,
  remote_port = function(r) return tostring(C.tg_pdk_client_get_port(r)) end,
  realip_remote_port = function(r) return tostring(C.tg_pdk_client_get_port(r)) end,
  server_protocol = function(r)
    return C.tg_pdk_req_get_http_version(r) == 10 and "HTTP/1.0" or "HTTP/1.1"
  end,
  request_id = function(r) return str_of(C.tg_pdk_req_get_id, r) end,
  request_time = function(r)
    return string.format("%.3f", now() - C.tg_pdk_req_start_time(r))
  end,
  status = function(r)
    local s = C.tg_pdk_resp_get_status(r)
    return s > 0 and tostring(s) or "000"
  end,
  upstream_status = function(r)
    local s = C.tg_pdk_svcresp_get_status(r)
    return s > 0 and tostring(s) or nil
  end,
  upstream_uri = function(r) return tctx.get(r)[UPSTREAM_URI_KEY] end,
  -- kong.client.tls.set_client_verify overrides it, as in Kong
  ssl_client_verify = function(r)
    local v = tls_var(r, "ssl_client_verify")
    return v and (tctx.get(r).CLIENT_VERIFY_OVERRIDE or v)
  end,
}
for _, name in ipairs { "ssl_server_name", "ssl_protocol", "ssl_cipher", "ssl_session_reused",
                        "ssl_client_s_dn" } do
  VARS[name] = function(r) return tls_var(r, name) end
end
VARS.query_string = VARS.args

local var_mt = {
  __index = function(_, name)
    local r = get_req()
    if r == nil then
      error("API disabled in the current context", 2)
    end
    local f = VARS[name]
    if f then
      return f(r)
    end
    if type(name) ~= "string" then
      return nil
    end
    if sub(name, 1, 5) == "http_" then
      return req_header(r, gsub(sub(name, 6), "_", "-"))
    end
    if sub(name, 1, 4) == "arg_" then
      local q = args.decode(str_of(C.tg_pdk_req_get_raw_query, r) or "", 100)
      local v = q[sub(name, 5)]
      if type(v) == "table" then
        v = v[1]
      end
      if v == true then
        return ""
      end
      return v
    end
    if sub(name, 1, 7) == "cookie_" then
      local cookie = req_header(r, "Cookie")
      if not cookie then
        return nil
      end
      local want = sub(name, 8)
      for pair in cookie:gmatch("[^;]+") do
        local k, v = pair:match("^%s*([^=]+)=(.*)$")
        if k == want then
          return v
        end
      end
      return nil
    end
    return nil
  end,
  __newindex = function(_, name, value)
    local r = get_req()
    if r == nil then
      error("API disabled in the current context", 2)
    end
    if name == "upstream_uri" then
      return upstream_uri_set(r, value)
    end
    error("variable \"" .. tostring(name) .. "\" not changeable", 2)
  end,
}

-- ------------------------------------------------------------- ngx.req --

local function need_req()
  local r = get_req()
  if r == nil then
    error("no request found", 3)
  end
  return r
end

local function new_req()
  local R = {}

  function R.get_method()
    return str_of(C.tg_pdk_req_get_method, need_req())
  end

  function R.http_version()
    return C.tg_pdk_req_get_http_version(need_req()) / 10
  end

  function R.start_time()
    return C.tg_pdk_req_start_time(need_req())
  end

  function R.get_headers(max, raw)
    local r = need_req()
    if max == nil then
      max = 100
    elseif max == 0 then
      max = 1e9
    end
    local t, err = base.collect_headers(r, C.tg_pdk_req_get_header_count,
                                        C.tg_pdk_req_get_header_at, max)
    if raw then
      setmetatable(t, nil)
    end
    return t, err
  end

  function R.get_uri_args(max)
    return args.decode(str_of(C.tg_pdk_req_get_raw_query, need_req()) or "", max)
  end

  function R.set_uri_args(a)
    local r = need_req()
    local q
    if type(a) == "table" then
      q = args.encode(a)
    elseif type(a) == "string" then
      q = a
    else
      error("bad argument #1 to 'set_uri_args' (string or table expected)", 2)
    end
    C.tg_pdk_upreq_set_raw_query(r, q, #q)
    tctx.get(r)[UPQUERY_KEY] = q
  end

  local METHOD_NAMES = {
    [2] = "GET", [4] = "HEAD", [8] = "POST", [16] = "PUT", [32] = "DELETE", [64] = "MKCOL",
    [128] = "COPY", [256] = "MOVE", [512] = "OPTIONS", [1024] = "PROPFIND",
    [2048] = "PROPPATCH", [4096] = "LOCK", [8192] = "UNLOCK", [16384] = "PATCH",
    [32768] = "TRACE",
  }

  --- ngx.req.set_method(ngx.HTTP_POST): the method sent upstream.
  function R.set_method(id)
    local r = need_req()
    local m = METHOD_NAMES[id]
    if not m then
      error("unsupported HTTP method: " .. tostring(id), 2)
    end
    C.tg_pdk_upreq_set_method(r, m, #m)
  end

  function R.set_uri(uri)
    local r = need_req()
    if type(uri) ~= "string" or uri == "" then
      error("bad argument #1 to 'set_uri' (non-empty string expected)", 2)
    end
    C.tg_pdk_upreq_set_path(r, uri, #uri)
  end

  function R.set_header(name, value)
    local r = need_req()
    if type(name) ~= "string" then
      error("bad argument #1 to 'set_header' (string expected)", 2)
    end
    if value == nil then
      C.tg_pdk_upreq_set_header(r, name, #name, nil, 0, base.HDR_CLEAR)
      return
    end
    if type(value) == "table" then
      local first = true
      for _, v in ipairs(value) do
        v = tostring(v)
        C.tg_pdk_upreq_set_header(r, name, #name, v, #v, first and base.HDR_SET or base.HDR_ADD)
        first = false
      end
      return
    end
    value = tostring(value)
    C.tg_pdk_upreq_set_header(r, name, #name, value, #value, base.HDR_SET)
  end

  function R.clear_header(name)
    local r = need_req()
    C.tg_pdk_upreq_set_header(r, name, #name, nil, 0, base.HDR_CLEAR)
  end

  --- A no-op: the core has buffered the body before access when it can.
  function R.read_body()
    need_req()
  end

  function R.discard_body()
    need_req()
  end

  function R.get_body_data()
    local r = need_req()
    if C.tg_pdk_req_get_body(r, s1, n1) < 0 then
      return nil
    end
    return ffi_string(s1[0], n1[0])
  end

  function R.get_body_file()
    return base.body_file(need_req())
  end

  function R.get_post_args(max)
    local body = R.get_body_data()
    return args.decode(body or "", max)
  end

  function R.set_body_data(data)
    local r = need_req()
    if type(data) ~= "string" then
      error("bad argument #1 to 'set_body_data' (string expected)", 2)
    end
    C.tg_pdk_upreq_set_body(r, data, #data)
  end

  return R
end

-- ---------------------------------------------------------- ngx.header --

local header_mt = {
  __index = function(_, name)
    local r = get_req()
    if r == nil or type(name) ~= "string" then
      return nil
    end
    name = gsub(name, "_", "-")
    if C.tg_pdk_resp_get_header(r, name, #name, s1, n1) < 0 then
      return nil
    end
    return ffi_string(s1[0], n1[0])
  end,
  __newindex = function(_, name, value)
    local r = get_req()
    if r == nil then
      error("API disabled in the current context", 2)
    end
    name = gsub(tostring(name), "_", "-")
    if value == nil or (type(value) == "table" and #value == 0) then
      C.tg_pdk_resp_set_header(r, name, #name, nil, 0, base.HDR_CLEAR)
      return
    end
    if type(value) == "table" then
      for i, v in ipairs(value) do
        v = tostring(v)
        C.tg_pdk_resp_set_header(r, name, #name, v, #v, i == 1 and base.HDR_SET or base.HDR_ADD)
      end
      return
    end
    value = tostring(value)
    C.tg_pdk_resp_set_header(r, name, #name, value, #value, base.HDR_SET)
  end,
}

-- ------------------------------------------------------ print/say/exit --

local function buffer_output(r, s)
  local shared = tctx.get(r)
  local buf = shared[BODY_KEY]
  if not buf then
    buf = {}
    shared[BODY_KEY] = buf
  end
  buf[#buf + 1] = s
end

local function flatten(out, v)
  local t = type(v)
  if t == "table" then
    for _, x in ipairs(v) do
      flatten(out, x)
    end
  elseif v == nil then
    out[#out + 1] = "nil"
  elseif v == cjson.null then
    out[#out + 1] = "null"
  elseif t == "boolean" then
    out[#out + 1] = v and "true" or "false"
  else
    out[#out + 1] = tostring(v)
  end
end

local function output(newline, ...)
  local r = need_req()
  local out = {}
  for i = 1, select("#", ...) do
    flatten(out, (select(i, ...)))
  end
  if newline then
    out[#out + 1] = "\n"
  end
  buffer_output(r, concat(out))
  return 1
end

local function ngx_print(...)
  return output(false, ...)
end

local function ngx_say(...)
  return output(true, ...)
end

-- ngx.exit: status >= 200 (or 444) answers the request with what ngx.print/say
-- buffered and ends the handler; ngx.OK (0) ends the handler and the phase
-- (the buffered output, if any, is sent with the current status or 200).
local function ngx_exit(status)
  local r = need_req()
  if type(status) ~= "number" then
    error("bad argument #1 to 'exit' (number expected)", 2)
  end
  local shared = tctx.get(r)
  local buf = shared[BODY_KEY]
  local body = buf and concat(buf) or nil
  shared[BODY_KEY] = nil
  if status >= 100 then
    C.tg_pdk_resp_exit(r, status, body, body and #body or 0)
    shared.KONG_EXITED = true
  elseif body then
    local st = C.tg_pdk_resp_get_status(r)
    C.tg_pdk_resp_exit(r, st > 0 and st or 200, body, #body)
    shared.KONG_EXITED = true
  end
  local _, main = co_running()
  if not main then
    co_yield(tctx.EXIT)
  end
end

-- ---------------------------------------------------------------- ngx.arg --

-- In body_filter: ngx.arg[1] the chunk (replacing it changes what the client
-- gets; nil or "" drops it), ngx.arg[2] whether it is the last (true ends the
-- body after this chunk).
local function chunk_value(v)
  if v == nil then
    return ""
  end
  local t = type(v)
  if t == "string" then
    return v
  elseif t == "number" then
    return tostring(v)
  elseif t == "table" then
    local out = {}
    flatten(out, v)
    return concat(out)
  end
  error("bad argument #2 to '?' (string, number, nil or table expected, got " .. t .. ")", 3)
end

local arg_mt = {
  __index = function(_, k)
    local r = get_req()
    if r == nil or base.phase_name(r) ~= "body_filter" then
      return nil
    end
    local eof = base.i1
    C.tg_pdk_resp_get_chunk(r, s1, n1, eof)
    if k == 1 then
      return ffi_string(s1[0], n1[0])
    elseif k == 2 then
      return eof[0] ~= 0
    end
    return nil
  end,
  __newindex = function(_, k, v)
    local r = get_req()
    if r == nil or base.phase_name(r) ~= "body_filter" then
      error("API disabled in the current context", 2)
    end
    if k == 1 then
      v = chunk_value(v)
      C.tg_pdk_resp_set_chunk(r, v, #v, -1)
    elseif k == 2 then
      C.tg_pdk_resp_set_chunk(r, nil, 0, v and 1 or 0)
    else
      error("bad index: " .. tostring(k), 2)
    end
  end,
}

-- --------------------------------------------------------------- install --

local PHASE_NAMES = { init_worker = "init_worker", rewrite = "rewrite", access = "access",
                      header_filter = "header_filter", body_filter = "body_filter",
                      log = "log", balancer = "balancer", certificate = "ssl_cert",
                      response = "content", admin_api = "content" }

function shim.new()
  local ngx = {}
  ngx.null = cjson.null
  ngx.OK, ngx.ERROR, ngx.AGAIN, ngx.DONE, ngx.DECLINED = 0, -1, -2, -4, -5
  ngx.STDERR, ngx.EMERG, ngx.ALERT, ngx.CRIT, ngx.ERR = 0, 1, 2, 3, 4
  ngx.WARN, ngx.NOTICE, ngx.INFO, ngx.DEBUG = 5, 6, 7, 8
  local codes = {
    HTTP_CONTINUE = 100, HTTP_SWITCHING_PROTOCOLS = 101, HTTP_OK = 200, HTTP_CREATED = 201,
    HTTP_ACCEPTED = 202, HTTP_NO_CONTENT = 204, HTTP_PARTIAL_CONTENT = 206,
    HTTP_SPECIAL_RESPONSE = 300, HTTP_MOVED_PERMANENTLY = 301, HTTP_MOVED_TEMPORARILY = 302,
    HTTP_SEE_OTHER = 303, HTTP_NOT_MODIFIED = 304, HTTP_TEMPORARY_REDIRECT = 307,
    HTTP_PERMANENT_REDIRECT = 308, HTTP_BAD_REQUEST = 400, HTTP_UNAUTHORIZED = 401,
    HTTP_PAYMENT_REQUIRED = 402, HTTP_FORBIDDEN = 403, HTTP_NOT_FOUND = 404,
    HTTP_NOT_ALLOWED = 405, HTTP_NOT_ACCEPTABLE = 406, HTTP_REQUEST_TIMEOUT = 408,
    HTTP_CONFLICT = 409, HTTP_GONE = 410, HTTP_UPGRADE_REQUIRED = 426,
    HTTP_TOO_MANY_REQUESTS = 429, HTTP_CLOSE = 444, HTTP_ILLEGAL = 451,
    HTTP_INTERNAL_SERVER_ERROR = 500, HTTP_METHOD_NOT_IMPLEMENTED = 501,
    HTTP_BAD_GATEWAY = 502, HTTP_SERVICE_UNAVAILABLE = 503, HTTP_GATEWAY_TIMEOUT = 504,
    HTTP_VERSION_NOT_SUPPORTED = 505, HTTP_INSUFFICIENT_STORAGE = 507,
    HTTP_GET = 2, HTTP_HEAD = 4, HTTP_POST = 8, HTTP_PUT = 16, HTTP_DELETE = 32,
    HTTP_MKCOL = 64, HTTP_COPY = 128, HTTP_MOVE = 256, HTTP_OPTIONS = 512,
    HTTP_PROPFIND = 1024, HTTP_PROPPATCH = 2048, HTTP_LOCK = 4096, HTTP_UNLOCK = 8192,
    HTTP_PATCH = 16384, HTTP_TRACE = 32768,
  }
  for k, v in pairs(codes) do
    ngx[k] = v
  end

  ngx.log = ngx_log
  ngx.now = now
  ngx.time = function() return floor(now()) end
  ngx.update_time = function() end
  ngx.today = function() return os.date("%Y-%m-%d", floor(now())) end
  ngx.localtime = function() return os.date("%Y-%m-%d %H:%M:%S", floor(now())) end
  ngx.utctime = function() return os.date("!%Y-%m-%d %H:%M:%S", floor(now())) end
  ngx.http_time = shim.http_time
  ngx.cookie_time = shim.cookie_time
  ngx.parse_http_time = nil

  ngx.encode_base64 = shim.encode_base64
  ngx.decode_base64 = shim.decode_base64
  ngx.escape_uri = args.escape_uri
  ngx.unescape_uri = args.unescape_uri
  ngx.encode_args = args.encode
  ngx.decode_args = args.decode
  ngx.md5_bin = function(s) return ossl.digest("md5", tostring(s)) end
  ngx.md5 = function(s) return ossl.to_hex(ossl.digest("md5", tostring(s))) end
  ngx.sha1_bin = function(s) return ossl.digest("sha1", tostring(s)) end
  ngx.hmac_sha1 = shim.hmac_sha1
  ngx.crc32_short = shim.crc32
  ngx.crc32_long = shim.crc32
  ngx.quote_sql_str = function(s)
    return "'" .. gsub(tostring(s), "[%z\b\n\r\t\26\\'\"]", {
      ["\0"] = "\\0", ["\b"] = "\\b", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
      ["\26"] = "\\Z", ["\\"] = "\\\\", ["'"] = "\\'", ["\""] = "\\\"" }) .. "'"
  end

  local worker_pid
  ngx.worker = {
    id = function() return C.tg_pdk_worker_id() end,
    count = function() return C.tg_pdk_worker_count() end,
    -- the worker's own id, as nginx's workers each have a pid: tollgate's
    -- workers are threads of one process, so this is the thread's id (a
    -- lua_State belongs to one thread: read once)
    pid = function()
      if not worker_pid then
        local f = io.open("/proc/thread-self/stat", "r") or io.open("/proc/self/stat", "r")
        worker_pid = f and tonumber((f:read("*l") or ""):match("^(%d+)"))
        if f then f:close() end
      end
      return worker_pid
    end,
    exiting = function() return false end,
  }
  require("tollgate.sched").install(ngx) -- sleep, timer, thread, socket
  ngx.config = {
    subsystem = "http",
    ngx_lua_version = 10026,
    nginx_version = 1025003,
    debug = false,
    is_console = false,
    prefix = function()
      local k = rawget(_G, "kong")
      return k and k.configuration and k.configuration.prefix or ""
    end,
    nginx_configure = function() return "" end,
  }
  ngx.var = setmetatable({}, var_mt)
  ngx.shared = require("tollgate.shdict").new()
  local re = require "tollgate.ngx_re"
  ngx.re = { match = re.match, find = re.find, gmatch = re.gmatch, sub = re.sub, gsub = re.gsub }
  ngx.req = new_req()
  ngx.resp = {
    get_headers = function(max, raw)
      local r = need_req()
      local t, err = base.collect_headers(r, C.tg_pdk_resp_get_header_count,
                                          C.tg_pdk_resp_get_header_at,
                                          (max == nil and 100) or (max == 0 and 1e9) or max)
      if raw then
        setmetatable(t, nil)
      end
      return t, err
    end,
  }
  ngx.header = setmetatable({}, header_mt)
  ngx.arg = setmetatable({}, arg_mt)
  ngx.print = ngx_print
  ngx.say = ngx_say
  ngx.exit = ngx_exit
  ngx.flush = function() return 1 end
  ngx.eof = function() return 1 end
  ngx.get_phase = function()
    local name = base.phase_name()
    if name == nil then
      local _, main = co_running()
      return main and "init" or "timer" -- timers run in coroutines of their own
    end
    return PHASE_NAMES[name] or name
  end

  -- ngx.ctx, ngx.status and ngx.headers_sent depend on the running request
  return setmetatable(ngx, {
    __index = function(_, k)
      if k == "ctx" then
        local r = get_req()
        if r == nil then
          error("no request found", 2)
        end
        return tctx.get(r)
      elseif k == "status" then
        local r = get_req()
        if r == nil then
          error("API disabled in the current context", 2)
        end
        return C.tg_pdk_resp_get_status(r)
      elseif k == "headers_sent" then
        local p = base.phase_name()
        return p == "body_filter" or p == "log"
      end
      return nil
    end,
    __newindex = function(t, k, v)
      if k == "status" then
        local r = get_req()
        if r == nil then
          error("API disabled in the current context", 2)
        end
        if type(v) ~= "number" then
          error("bad argument to 'ngx.status' (number expected)", 2)
        end
        C.tg_pdk_resp_set_status(r, v)
        return
      elseif k == "ctx" then
        local r = get_req()
        if r == nil or type(v) ~= "table" then
          error("ngx.ctx can only be set to a table in a request", 2)
        end
        local cur = tctx.get(r)
        for key in pairs(cur) do cur[key] = nil end
        for key, val in pairs(v) do cur[key] = val end
        return
      end
      rawset(t, k, v)
    end,
  })
end

-- A kong.response.exit / ngx.exit inside a plugin's own coroutine
-- (coroutine.wrap in access) must end the handler, as in OpenResty: resume and
-- wrap pass tollgate.ctx.EXIT on up to the request's coroutine instead of
-- handing it to the plugin's code. Other yields are untouched.
local coroutines_patched = false

function shim.patch_coroutines()
  if coroutines_patched then
    return
  end
  coroutines_patched = true
  local co = coroutine
  local orig_resume, orig_create, orig_status = co.resume, co.create, co.status
  shim.raw_resume = orig_resume -- the unpatched resume (specs)
  local EXIT = tctx.EXIT
  local unpack = unpack or table.unpack

  local is_wait = require("tollgate.c.sched").is_wait
  local function pass_on(thread, ok, first, ...)
    if ok and first == EXIT and orig_status(thread) == "suspended" then
      local _, main = co_running()
      if not main then
        -- the core never resumes a request after EXIT
        return co_yield(EXIT)
      end
    end
    -- the thread parked on I/O (tollgate.sched): this one parks on the same
    -- wait, then hands the thread the result
    if ok and is_wait(first) and select("#", ...) == 0 and orig_status(thread) == "suspended" then
      return pass_on(thread, orig_resume(thread, co_yield(first)))
    end
    return ok, first, ...
  end

  co.resume = function(thread, ...)
    return pass_on(thread, orig_resume(thread, ...))
  end

  co.wrap = function(f)
    local thread = orig_create(f)
    return function(...)
      local res = { co.resume(thread, ...) }
      if not res[1] then
        error(res[2], 0)
      end
      return unpack(res, 2, table.maxn(res))
    end
  end
end

--- Sets _G.ngx to the shim unless an ngx already exists (and makes exits
-- inside plugins' coroutines end the handler). Returns it.
function shim.install()
  shim.patch_coroutines()
  local g = rawget(_G, "ngx")
  if g ~= nil then
    return g
  end
  g = shim.new()
  rawset(_G, "ngx", g)
  return g
end

local _ = { lower, pairs }
return shim
