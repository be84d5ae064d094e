--- kong.request: what the client sent (edits by plugins are not seen here).
-- @module kong.request
local base = require "kong.pdk.private.base"
local args = require "kong.pdk.private.args"
local ffi = require "ffi"

local C = base.C
local s1, n1, s2 = base.s1, base.n1, base.s2
local get_req = base.get_req
local check_phase = base.check_phase
local check_not_phase = base.check_not_phase
local PHASES = base.PHASES
local ffi_string = ffi.string
local type = type
local tonumber = tonumber
local error = error
local find = string.find
local sub = string.sub
local lower = string.lower
local gsub = string.gsub

local MIN_QUERY_ARGS, MAX_QUERY_ARGS = 1, 1000
local MIN_PORT, MAX_PORT = 1, 65535

local CT_POST = "application/x-www-form-urlencoded"
local CT_JSON = "application/json"
local CT_FORM_DATA = "multipart/form-data"

local before_content = base.phases("rewrite", "access", "response", "error", "admin_api")

local need = base.need_req

local function get_str(fn, r)
  if fn(r, s1, n1) < 0 then
    return nil
  end
  return ffi_string(s1[0], n1[0])
end

local function header_of(r, name)
  if find(name, "_", 1, true) then -- gsub would end the JIT's trace
    name = gsub(name, "_", "-")
  end
  if C.tg_pdk_req_get_header(r, name, #name, s1, n1) < 0 then
    return nil
  end
  return ffi_string(s1[0], n1[0])
end

-- A PDK function returning one string of the request from the core.
local function str_getter(phases, fn)
  return function()
    local r = get_req()
    check_phase(phases, r)
    return get_str(fn, need(r))
  end
end

-- X-Forwarded-Host without its userinfo, or nil
local function forwarded_host(r)
  local host = header_of(r, "X-Forwarded-Host")
  if host then
    local at = find(host, "@", 1, true)
    if at then
      host = sub(host, at + 1)
    end
  end
  return host
end

local function new(kong)
  local R = {}

  local function is_trusted_peer(r)
    local ip = get_str(C.tg_pdk_client_get_ip, r)
    return ip ~= nil and C.tg_pdk_client_is_trusted(r, ip, #ip) == 1
  end

  --- The scheme of the request's URL ("http" or "https").
  -- @function kong.request.get_scheme
  -- @phases rewrite, access, header_filter, response, body_filter, log, admin_api
  R.get_scheme = str_getter(PHASES.request, C.tg_pdk_req_get_scheme)

  --- The host of the request (Host header or absolute URL), lowercased, no port.
  -- @function kong.request.get_host
  R.get_host = str_getter(PHASES.request, C.tg_pdk_req_get_host)

  --- The port the request was received on.
  -- @function kong.request.get_port
  function R.get_port()
    local r = get_req()
    check_not_phase(PHASES.init_worker, r)
    return C.tg_pdk_req_get_port(need(r))
  end

  --- X-Forwarded-Proto from a trusted peer, else the scheme.
  -- @function kong.request.get_forwarded_scheme
  function R.get_forwarded_scheme()
    local r = get_req()
    check_phase(PHASES.request, r)
    need(r)
    if is_trusted_peer(r) then
      local v = header_of(r, "X-Forwarded-Proto")
      if v then
        return lower(v)
      end
    end
    return get_str(C.tg_pdk_req_get_scheme, r)
  end

  --- X-Forwarded-Host from a trusted peer (no userinfo, no port), else the host.
  -- @function kong.request.get_forwarded_host
  function R.get_forwarded_host()
    local r = get_req()
    check_phase(PHASES.request, r)
    need(r)
    if is_trusted_peer(r) then
      local host = forwarded_host(r)
      if host then
        local colon = find(host, ":", 1, true)
        return colon and lower(sub(host, 1, colon - 1)) or lower(host)
      end
    end
    return get_str(C.tg_pdk_req_get_host, r)
  end

  --- X-Forwarded-Port (or the port of X-Forwarded-Host) from a trusted peer,
  -- else the port the request came in on.
  -- @function kong.request.get_forwarded_port
  function R.get_forwarded_port()
    local r = get_req()
    check_phase(PHASES.request, r)
    need(r)
    if is_trusted_peer(r) then
      local port = tonumber(header_of(r, "X-Forwarded-Port"), 10)
      if port and port >= MIN_PORT and port <= MAX_PORT then
        return port
      end
      local host = forwarded_host(r)
      if host then
        local colon = find(host, ":", 1, true)
        if colon then
          port = tonumber(sub(host, colon + 1), 10)
          if port and port >= MIN_PORT and port <= MAX_PORT then
            return port
          end
        end
      end
    end
    return C.tg_pdk_req_get_port(r)
  end

  --- X-Forwarded-Path from a trusted peer, else the path.
  -- @function kong.request.get_forwarded_path
  function R.get_forwarded_path()
    local r = get_req()
    check_phase(PHASES.request, r)
    need(r)
    if is_trusted_peer(r) then
      local v = header_of(r, "X-Forwarded-Path")
      if v then
        return v
      end
    end
    return get_str(C.tg_pdk_req_get_path, r)
  end

  --- X-Forwarded-Prefix from a trusted peer, else the prefix sent upstream (nil
  -- when none).
  -- @function kong.request.get_forwarded_prefix
  function R.get_forwarded_prefix()
    local r = get_req()
    check_phase(PHASES.request, r)
    need(r)
    if is_trusted_peer(r) then
      local v = header_of(r, "X-Forwarded-Prefix")
      if v then
        return v
      end
    end
    return nil
  end

  --- The HTTP version as a number (1.0, 1.1).
  -- @function kong.request.get_http_version
  function R.get_http_version()
    local r = get_req()
    check_phase(PHASES.request, r)
    local v = C.tg_pdk_req_get_http_version(need(r))
    return v / 10
  end

  --- The request method, uppercase.
  -- @function kong.request.get_method
  R.get_method = str_getter(PHASES.request, C.tg_pdk_req_get_method)

  --- The normalised path (no query).
  -- @function kong.request.get_path
  R.get_path = str_getter(PHASES.request, C.tg_pdk_req_get_path)

  --- The path as sent (not normalised, no query).
  -- @function kong.request.get_raw_path
  R.get_raw_path = str_getter(PHASES.request, C.tg_pdk_req_get_raw_path)

  --- The path as sent with its query.
  -- @function kong.request.get_path_with_query
  function R.get_path_with_query()
    local r = get_req()
    check_phase(PHASES.request, r)
    need(r)
    local p = get_str(C.tg_pdk_req_get_raw_path, r) or ""
    local q = get_str(C.tg_pdk_req_get_raw_query, r) or ""
    if q ~= "" then
      return p .. "?" .. q
    end
    return p
  end

  --- The query string, without "?" ("" when none).
  -- @function kong.request.get_raw_query
  function R.get_raw_query()
    local r = get_req()
    check_phase(PHASES.request, r)
    return get_str(C.tg_pdk_req_get_raw_query, need(r)) or ""
  end

  --- The value of one query argument (first of repeated ones; true when bare).
  -- @function kong.request.get_query_arg
  -- @tparam string name
  function R.get_query_arg(name)
    local r = get_req()
    check_phase(PHASES.request, r)
    if type(name) ~= "string" then
      error("query argument name must be a string", 2)
    end
    local q = args.decode(get_str(C.tg_pdk_req_get_raw_query, need(r)) or "", MAX_QUERY_ARGS)
    local v = q[name]
    if type(v) == "table" then
      return v[1]
    end
    return v
  end

  --- The query arguments as a table (at most max_args, 100 by default).
  -- @function kong.request.get_query
  -- @tparam[opt] number max_args
  function R.get_query(max_args)
    local r = get_req()
    check_phase(PHASES.request, r)
    if max_args == nil then
      max_args = 100
    else
      if type(max_args) ~= "number" then
        error("max_args must be a number", 2)
      end
      if max_args < MIN_QUERY_ARGS then
        error("max_args must be >= " .. MIN_QUERY_ARGS, 2)
      end
      if max_args > MAX_QUERY_ARGS then
        error("max_args must be <= " .. MAX_QUERY_ARGS, 2)
      end
    end
    return args.decode(get_str(C.tg_pdk_req_get_raw_query, need(r)) or "", max_args)
  end

  --- The first value of a header ("_" is read as "-"), nil when absent.
  -- @function kong.request.get_header
  -- @tparam string name
  function R.get_header(name)
    local r = get_req()
    check_phase(PHASES.request, r)
    if type(name) ~= "string" then
      error("header name must be a string", 2)
    end
    return header_of(need(r), name)
  end

  --- The request headers (lowercase names, case-insensitive lookup, repeated
  -- headers as lists); at most max_headers (100 by default).
  -- @function kong.request.get_headers
  -- @tparam[opt] number max_headers
  function R.get_headers(max_headers)
    local r = get_req()
    check_phase(PHASES.request, r)
    max_headers = base.max_headers(max_headers)
    return base.collect_headers(need(r), C.tg_pdk_req_get_header_count,
                                C.tg_pdk_req_get_header_at, max_headers)
  end

  --- The request body, or nil, err when it is not in memory.
  -- @function kong.request.get_raw_body
  -- @phases rewrite, access, response, admin_api
  -- @tparam[opt] number max_allowed_file_size read a body that spilled to a
  -- file when given (0: any size), as Kong 3.10
  function R.get_raw_body(max_allowed_file_size)
    local r = get_req()
    check_phase(before_content, r)
    local rc = C.tg_pdk_req_get_body(need(r), s1, n1)
    if rc >= 0 then
      return ffi_string(s1[0], n1[0])
    end
    if rc == base.E_NOTFOUND then
      return ""
    end
    if rc == base.E_AGAIN then
      return nil, "request body is not read (request buffering is off)"
    end
    local path = base.body_file(r)
    if not path then
      return ""
    end
    if not max_allowed_file_size or max_allowed_file_size < 0 then
      return nil, "request body did not fit into client body buffer, consider raising " ..
                  "'client_body_buffer_size'"
    end
    local file, err = io.open(path, "rb")
    if not file then
      return nil, "failed to open cached request body '" .. path .. "': " .. tostring(err)
    end
    local size = file:seek("end") or 0
    if max_allowed_file_size > 0 and size > max_allowed_file_size then
      file:close()
      return nil, string.format("request body file too big: %d > %d", size,
                                max_allowed_file_size)
    end
    file:seek("set")
    local data, rerr = file:read("*a")
    file:close()
    if not data then
      return nil, "failed to read cached request body '" .. path .. "': " .. tostring(rerr)
    end
    return data
  end

  --- The body decoded by its MIME type (JSON, urlencoded form, multipart).
  -- Returns body, err, mimetype.
  -- @function kong.request.get_body
  -- @tparam[opt] string mimetype
  -- @tparam[opt] number max_args
  -- @tparam[opt] number max_allowed_file_size see get_raw_body (JSON and
  -- multipart bodies; a form body is read from memory only, as Kong's)
  function R.get_body(mimetype, max_args, max_allowed_file_size)
    local r = get_req()
    check_phase(before_content, r)
    need(r)
    local content_type = mimetype or header_of(r, "Content-Type")
    if not content_type then
      return nil, "missing content type"
    end
    local ct = lower(content_type)
    do
      local semi = find(ct, ";", 1, true)
      if semi then
        ct = sub(ct, 1, semi - 1)
      end
      ct = ct:match("^%s*(.-)%s*$")
    end
    local mime = (ct == CT_POST and CT_POST) or
                 ((ct == CT_JSON or find(ct, "+json", 1, true)) and CT_JSON) or
                 (ct == CT_FORM_DATA and CT_FORM_DATA) or nil
    if mime then
      local function raw()
        return R.get_raw_body(mime ~= CT_POST and max_allowed_file_size or nil)
      end
      return args.decode_body(mime, mimetype and header_of(r, "Content-Type") or content_type,
                              raw, max_args, 3)
    end
    return nil, "unsupported content type '" .. content_type .. "'", ct
  end

  --- When the request started, in milliseconds since the epoch.
  -- @function kong.request.get_start_time
  function R.get_start_time()
    local r = get_req()
    check_phase(PHASES.request, r)
    return math.floor(C.tg_pdk_req_start_time(need(r)) * 1000 + 0.5)
  end

  --- The route path's regex captures: { unnamed = {[0]=whole, ...}, named = {...} }.
  -- @function kong.request.get_uri_captures
  function R.get_uri_captures()
    local r = get_req()
    check_phase(PHASES.request, r)
    need(r)
    local named, unnamed = {}, {}
    local n = C.tg_pdk_req_get_capture_count(r)
    for i = 0, n - 1 do
      local rc = C.tg_pdk_req_get_capture(r, i, s1, n1, s2)
      local v = false
      if rc >= 0 and s1[0] ~= nil then
        v = ffi_string(s1[0], n1[0])
      end
      unnamed[i] = v
      if s2[0] ~= nil then
        named[ffi_string(s2[0])] = v
      end
    end
    return { unnamed = unnamed, named = named }
  end

  local _ = kong
  return R
end

return { new = new, header_of = header_of }
