--- kong.response: the answer to the client.
-- @module kong.response
local base = require "kong.pdk.private.base"
local tctx = require "tollgate.ctx"
local cjson = require "cjson.safe"
local ffi = require "ffi"

local C = base.C
local s1, n1 = base.s1, base.n1
local get_req = base.get_req
local check_phase = base.check_phase
local validate_header = base.validate_header
local validate_headers = base.validate_headers
local normalize_header = base.normalize_header
local ffi_string = ffi.string
local type = type
local pairs = pairs
local ipairs = ipairs
local error = error
local tostring = tostring
local fmt = string.format
local lower = string.lower
local gsub = string.gsub
local find = string.find
local concat = table.concat
local co_yield = coroutine.yield
local co_running = coroutine.running

local MIN_STATUS_CODE, MAX_STATUS_CODE, MIN_ERR_STATUS_CODE = 100, 599, 400
local CONTENT_TYPE_JSON = "application/json; charset=utf-8"
local HDR_SET, HDR_ADD, HDR_CLEAR = base.HDR_SET, base.HDR_ADD, base.HDR_CLEAR

local header_body_log = base.phases("response", "header_filter", "body_filter", "log", "error",
                                    "admin_api")
local rewrite_access_header = base.phases("rewrite", "access", "response", "balancer",
                                          "header_filter", "error", "admin_api")

-- Kong's default messages for kong.response.error (kong/tools/http.lua)
local DEFAULT_MESSAGES = {
  [400] = "Bad request",
  [401] = "Unauthorized",
  [403] = "Forbidden",
  [404] = "Not found",
  [405] = "Method not allowed",
  [408] = "Request timeout",
  [409] = "Conflict",
  [411] = "Length required",
  [412] = "Precondition failed",
  [413] = "Payload too large",
  [414] = "URI too long",
  [417] = "Expectation failed",
  [429] = "API rate limit exceeded",
  [494] = "Request header or cookie too large",
  [500] = "An unexpected error occurred",
  [502] = "An invalid response was received from the upstream server",
  [503] = "The upstream server is currently unavailable",
  [504] = "The upstream server is timing out",
}

local need = base.need_req

local function set_one(r, name, value, mode)
  if type(value) == "table" then
    local first = true
    for _, v in ipairs(value) do
      v = normalize_header(v)
      C.tg_pdk_resp_set_header(r, name, #name, v, #v, (first and mode == HDR_SET) and HDR_SET
                               or HDR_ADD)
      first = false
    end
    if first and mode == HDR_SET then
      C.tg_pdk_resp_set_header(r, name, #name, nil, 0, HDR_CLEAR)
    end
    return
  end
  value = normalize_header(value)
  C.tg_pdk_resp_set_header(r, name, #name, value, #value, mode)
end

-- JSON string escaping for the error templates
local function json_str(s)
  local e = cjson.encode(s)
  return e:sub(2, -2)
end

local function xml_str(s)
  return (gsub(s, "[<>&\"']", { ["<"] = "&lt;", [">"] = "&gt;", ["&"] = "&amp;",
                                 ["\""] = "&quot;", ["'"] = "&apos;" }))
end

-- Kong's get_response_type for an Accept header (highest q wins; */* and
-- unknown types: JSON)
local FORMATS = {
  ["text/html"] = "html", ["application/json"] = "json", ["text/plain"] = "text",
  ["application/xml"] = "xml", ["text/*"] = "text", ["application/*"] = "json",
}

local function pick_format(accept)
  if not accept then
    return "json"
  end
  local best, bestq = "json", -1
  for elem in accept:gmatch("[^,]+") do
    local mime, params = elem:match("^%s*([^;%s]+)%s*(.*)$")
    if mime then
      local q = tonumber(params:match("[Qq]%s*=%s*([%d%.]+)")) or 1
      if q > bestq and q > 0 then
        bestq = q
        best = FORMATS[mime] or "json"
      end
    end
  end
  return best
end

local function error_body(format, message, rid)
  if format == "html" then
    return "text/html; charset=utf-8",
      "<!doctype html>\n<html>\n  <head>\n    <meta charset=\"utf-8\">\n" ..
      "    <title>Error</title>\n  </head>\n  <body>\n    <h1>Error</h1>\n" ..
      "    <p>" .. xml_str(message) .. ".</p>\n    <p>request_id: " .. rid ..
      "</p>\n  </body>\n</html>\n"
  elseif format == "xml" then
    return "application/xml; charset=utf-8",
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>\n  <message>" .. xml_str(message) ..
      "</message>\n  <requestid>" .. rid .. "</requestid>\n</error>\n"
  elseif format == "text" then
    return "text/plain; charset=utf-8", message .. "\nrequest_id: " .. rid .. "\n"
  end
  return CONTENT_TYPE_JSON,
    "{\n  \"message\":\"" .. json_str(message) .. "\",\n  \"request_id\":\"" .. rid .. "\"\n}"
end

-- Kong's status argument check (level: the PDK function's caller)
local function check_status(status, min)
  if type(status) ~= "number" then
    error("code must be a number", 3)
  elseif status < min or status > MAX_STATUS_CODE then
    error(fmt("code must be a number between %u and %u", min, MAX_STATUS_CODE), 3)
  end
end

local function check_headers(headers)
  if type(headers) ~= "table" then
    error("headers must be a nil or table", 3)
  end
  validate_headers(headers, 3)
end

local function new(kong)
  local R = {}

  --- The status code of the answer.
  -- @function kong.response.get_status
  -- @phases header_filter, response, body_filter, log, admin_api
  function R.get_status()
    local r = get_req()
    check_phase(header_body_log, r)
    return C.tg_pdk_resp_get_status(need(r))
  end

  --- The answer's headers (upstream's after edits), lowercase, case-insensitive.
  -- @function kong.response.get_headers
  function R.get_headers(max_headers)
    local r = get_req()
    check_phase(header_body_log, r)
    max_headers = base.max_headers(max_headers)
    return base.collect_headers(need(r), C.tg_pdk_resp_get_header_count,
                                C.tg_pdk_resp_get_header_at, max_headers)
  end

  --- The first value of one header of the answer.
  -- @function kong.response.get_header
  function R.get_header(name)
    local r = get_req()
    check_phase(header_body_log, r)
    if type(name) ~= "string" then
      error("header name must be a string", 2)
    end
    need(r)
    if find(name, "_", 1, true) then
      name = gsub(name, "_", "-") -- as the headers table's lookup does
    end
    if C.tg_pdk_resp_get_header(r, name, #name, s1, n1) < 0 then
      return nil
    end
    return ffi_string(s1[0], n1[0])
  end

  --- "service", "exit" or "error".
  -- @function kong.response.get_source
  function R.get_source()
    local r = get_req()
    check_phase(header_body_log, r)
    if C.tg_pdk_resp_get_source(need(r), s1, n1) < 0 then
      return "error"
    end
    return ffi_string(s1[0], n1[0])
  end

  --- Sets the status of the answer.
  -- @function kong.response.set_status
  function R.set_status(status)
    local r = get_req()
    check_phase(rewrite_access_header, r)
    check_status(status, MIN_STATUS_CODE)
    C.tg_pdk_resp_set_status(need(r), status)
  end

  --- Sets a header of the answer (replacing it).
  -- @function kong.response.set_header
  function R.set_header(name, value)
    local r = get_req()
    check_phase(rewrite_access_header, r)
    value = validate_header(name, value)
    set_one(need(r), name, value, HDR_SET)
  end

  --- Adds a header value to the answer.
  -- @function kong.response.add_header
  function R.add_header(name, value)
    local r = get_req()
    check_phase(rewrite_access_header, r)
    value = validate_header(name, value)
    set_one(need(r), name, value, HDR_ADD)
  end

  --- Removes a header from the answer.
  -- @function kong.response.clear_header
  function R.clear_header(name)
    local r = get_req()
    check_phase(rewrite_access_header, r)
    if type(name) ~= "string" then
      error("header name must be a string", 2)
    end
    C.tg_pdk_resp_set_header(need(r), name, #name, nil, 0, HDR_CLEAR)
  end

  --- Sets several headers of the answer.
  -- @function kong.response.set_headers
  function R.set_headers(headers)
    local r = get_req()
    check_phase(rewrite_access_header, r)
    if type(headers) ~= "table" then
      error("headers must be a table", 2)
    end
    validate_headers(headers)
    need(r)
    for k, v in pairs(headers) do
      set_one(r, k, v, HDR_SET)
    end
  end

  -- Sends status/body/headers as the answer and, in a handler's coroutine,
  -- ends the handler.
  local function send(r, status, body, headers)
    local has_ct, json
    if headers ~= nil then
      for name, value in pairs(headers) do
        local ln = lower(name)
        if ln == "transfer-encoding" or ln == "transfer_encoding" then
          kong.log.warn("manually setting Transfer-Encoding. Ignored.")
        elseif ln ~= "content-length" and ln ~= "content_length" then
          set_one(r, name, value, HDR_SET)
          if ln == "content-type" or ln == "content_type" then
            has_ct = true
          end
        end
      end
    end
    if type(body) == "table" then
      local err
      json, err = cjson.encode(body)
      if not json then
        error(fmt("body encoding failed while flushing response: %s", tostring(err)), 3)
      end
      if not has_ct then
        C.tg_pdk_resp_set_header(r, "Content-Type", 12, CONTENT_TYPE_JSON,
                                 #CONTENT_TYPE_JSON, HDR_SET)
      end
      body = json
    end
    if base.phase_name(r) == "header_filter" then
      -- Kong replaces the answer being sent: its status now; the core sends
      -- the exit body instead of the upstream's (body_filter still runs)
      C.tg_pdk_resp_set_status(r, status)
    end
    local rc
    if body == nil then
      rc = C.tg_pdk_resp_exit(r, status, nil, 0)
    else
      rc = C.tg_pdk_resp_exit(r, status, body, #body)
    end
    if rc < 0 then
      error("could not send the response (" .. rc .. ")", 3)
    end
    local _, main = co_running()
    if not main then
      co_yield(tctx.EXIT)
    end
  end

  --- Ends the request with status, body (string, or table sent as JSON) and
  -- headers; nothing after the call runs in the calling handler.
  -- @function kong.response.exit
  -- @phases rewrite, access, admin_api, header_filter (only if body is nil)
  -- @tparam number status
  -- @tparam[opt] table|string body
  -- @tparam[opt] table headers
  function R.exit(status, body, headers)
    local r = get_req()
    check_phase(rewrite_access_header, r)
    check_status(status, MIN_STATUS_CODE)
    if body ~= nil and type(body) ~= "string" and type(body) ~= "table" then
      error("body must be a nil, string or table", 2)
    end
    if headers ~= nil then
      check_headers(headers)
    end
    need(r)
    local shared = tctx.get(r)
    shared.KONG_EXITED = true
    return send(r, status, body, headers)
  end

  --- Ends the request with Kong's error body (by the request's Accept).
  -- @function kong.response.error
  -- @tparam number status 400..599
  -- @tparam[opt] string|table message
  -- @tparam[opt] table headers
  function R.error(status, message, headers)
    local r = get_req()
    check_phase(rewrite_access_header, r)
    check_status(status, MIN_ERR_STATUS_CODE)
    if message ~= nil then
      if type(message) == "table" then
        local err
        message, err = cjson.encode(message)
        if not message then
          error("could not JSON encode the error message: " .. tostring(err), 2)
        end
      end
      if type(message) ~= "string" then
        error("message must be a nil, a string or a table", 2)
      end
    end
    if headers ~= nil then
      check_headers(headers)
    else
      headers = {}
    end
    need(r)
    local ct
    for k in pairs(headers) do
      if lower(k) == "content-type" or lower(k) == "content_type" then
        ct = headers[k]
      end
    end
    local format
    if ct then
      local m = lower(type(ct) == "table" and ct[1] or ct):match("^%s*([^;%s]+)")
      format = FORMATS[m] or "json"
    else
      local accept
      if C.tg_pdk_req_get_header(r, "Accept", 6, s1, n1) >= 0 then
        accept = ffi_string(s1[0], n1[0])
      end
      format = pick_format(accept)
    end
    message = message or DEFAULT_MESSAGES[status] or
              fmt("The upstream server responded with %d", status)
    local rid = ""
    if C.tg_pdk_req_get_id(r, s1, n1) >= 0 then
      rid = ffi_string(s1[0], n1[0])
    end
    local content_type, body = error_body(format, message, rid)
    if not ct then
      headers["Content-Type"] = content_type
    end
    local shared = tctx.get(r)
    shared.KONG_EXITED = true
    return send(r, status, body, headers)
  end

  -- Kong's key for the chunks get_raw_body keeps until eof
  local BODY_BUFFER = "KONG_BODY_BUFFER"

  --- In body_filter: the whole body once its last chunk is there, else nil.
  -- Each earlier chunk is kept and taken out of the stream (ngx.arg[1] = ""),
  -- so the last call's return value is what the client gets unless
  -- set_raw_body replaces it.
  -- @function kong.response.get_raw_body
  -- @phases body_filter
  function R.get_raw_body()
    local r = get_req()
    check_phase(base.PHASES.body_filter, r)
    local eof_out = base.i1
    C.tg_pdk_resp_get_chunk(need(r), s1, n1, eof_out)
    local eof = eof_out[0] ~= 0
    local shared = tctx.get(r)
    local buf = shared[BODY_BUFFER]
    if eof and not buf then
      return ffi_string(s1[0], n1[0])
    end
    if n1[0] > 0 then
      if not buf then
        buf = {}
        shared[BODY_BUFFER] = buf
      end
      buf[#buf + 1] = ffi_string(s1[0], n1[0])
    end
    if eof then
      local body = buf and concat(buf) or ""
      C.tg_pdk_resp_set_chunk(r, body, #body, -1)
      shared[BODY_BUFFER] = nil
      return body
    end
    C.tg_pdk_resp_set_chunk(r, "", 0, -1)
    return nil
  end

  --- In body_filter: replaces the body with `body` and ends it after this
  -- chunk. As Kong, an empty body is sent as "\n"; a Content-Length set by
  -- the upstream is dropped by the core when the body goes through body_filter.
  -- @function kong.response.set_raw_body
  -- @phases body_filter
  -- @tparam string body
  function R.set_raw_body(body)
    local r = get_req()
    check_phase(base.PHASES.body_filter, r)
    if type(body) ~= "string" then
      error("body must be a string", 2)
    end
    if body == "" then
      body = "\n"
    end
    C.tg_pdk_resp_set_chunk(need(r), body, #body, 1)
    tctx.get(r)[BODY_BUFFER] = nil
  end

  return R
end

return { new = new, pick_format = pick_format, error_body = error_body }
