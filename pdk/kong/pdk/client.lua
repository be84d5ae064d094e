--- kong.client: the client of the request.
-- @module kong.client
local base = require "kong.pdk.private.base"
local tctx = require "tollgate.ctx"
local ffi = require "ffi"

local C = base.C
local s1, n1 = base.s1, base.n1
local get_req = base.get_req
local check_phase = base.check_phase
local check_not_phase = base.check_not_phase
local PHASES = base.PHASES
local ffi_string = ffi.string
local type = type
local error = error
local tonumber = tonumber
local lower = string.lower
local find = string.find

local AUTH_AND_LATER = base.phases("access", "header_filter", "response", "body_filter", "log")
local TABLE_OR_NIL = { ["table"] = true, ["nil"] = true }
local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

local need = base.need_req

local function new(kong)
  local CL = {}

  --- The address of the peer that connected (not X-Forwarded-For).
  -- @function kong.client.get_ip
  function CL.get_ip()
    local r = get_req()
    check_not_phase(PHASES.init_worker, r)
    if C.tg_pdk_client_get_ip(need(r), s1, n1) < 0 then
      return nil
    end
    return ffi_string(s1[0], n1[0])
  end

  --- The client address after real_ip_header from a trusted peer.
  -- @function kong.client.get_forwarded_ip
  function CL.get_forwarded_ip()
    local r = get_req()
    check_not_phase(PHASES.init_worker, r)
    if C.tg_pdk_client_get_forwarded_ip(need(r), s1, n1) < 0 then
      return nil
    end
    return ffi_string(s1[0], n1[0])
  end

  --- The peer's port.
  -- @function kong.client.get_port
  function CL.get_port()
    local r = get_req()
    check_not_phase(PHASES.init_worker, r)
    return C.tg_pdk_client_get_port(need(r))
  end

  --- The client's port: the peer's (no realip port is kept).
  -- @function kong.client.get_forwarded_port
  function CL.get_forwarded_port()
    local r = get_req()
    check_not_phase(PHASES.init_worker, r)
    return C.tg_pdk_client_get_port(need(r))
  end

  --- The credential set by an authentication plugin.
  -- @function kong.client.get_credential
  function CL.get_credential()
    local r = get_req()
    check_phase(AUTH_AND_LATER, r)
    return tctx.get(need(r)).authenticated_credential
  end

  --- The consumer set by an authentication plugin.
  -- @function kong.client.get_consumer
  function CL.get_consumer()
    local r = get_req()
    check_phase(AUTH_AND_LATER, r)
    return tctx.get(need(r)).authenticated_consumer
  end

  --- Sets the authenticated consumer and/or credential of the request.
  -- @function kong.client.authenticate
  function CL.authenticate(consumer, credential)
    local r = get_req()
    check_phase(PHASES.access, r)
    if not TABLE_OR_NIL[type(consumer)] then
      error("consumer must be a table or nil", 2)
    elseif not TABLE_OR_NIL[type(credential)] then
      error("credential must be a table or nil", 2)
    elseif credential == nil and consumer == nil then
      error("either credential or consumer must be provided", 2)
    end
    local shared = tctx.get(need(r))
    shared.authenticated_consumer = consumer
    shared.authenticated_credential = credential
  end

  --- Loads a consumer by id (or by username when search_by_username).
  -- @function kong.client.load_consumer
  function CL.load_consumer(consumer_id, search_by_username)
    local r = get_req()
    check_phase(AUTH_AND_LATER, r)
    if not consumer_id or type(consumer_id) ~= "string" then
      error("consumer_id must be a string", 2)
    end
    local is_uuid = find(consumer_id, UUID) ~= nil
    if not is_uuid and not search_by_username then
      error("cannot load a consumer with an id that is not a uuid", 2)
    end
    local db = kong.db
    local consumers = db and db.consumers
    if not consumers then
      return nil, "consumers are not available in this node"
    end
    if is_uuid then
      local res, err = consumers:select({ id = consumer_id })
      if res then
        return res
      end
      if err then
        return nil, err
      end
    end
    if search_by_username then
      return consumers:select_by_username(consumer_id)
    end
  end

  --- The protocol of the route the request matched ("http", "https", ...).
  -- @function kong.client.get_protocol
  function CL.get_protocol(allow_terminated)
    local r = get_req()
    check_phase(AUTH_AND_LATER, r)
    local route = tctx.get(need(r)).route
    if not route then
      return nil, "No active route found"
    end
    local protocols = route.protocols
    if type(protocols) == "table" and #protocols == 1 then
      return protocols[1]
    end
    local scheme
    if C.tg_pdk_req_get_scheme(r, s1, n1) >= 0 then
      scheme = ffi_string(s1[0], n1[0])
    end
    if scheme == "https" then
      return "https"
    end
    if allow_terminated then
      local ip = CL.get_ip()
      if ip and C.tg_pdk_client_is_trusted(r, ip, #ip) == 1 then
        local v
        if C.tg_pdk_req_get_header(r, "X-Forwarded-Proto", 17, s1, n1) >= 0 then
          v = lower(ffi_string(s1[0], n1[0]))
        end
        if v == "https" then
          return "https"
        end
        if v and find(v, ",", 1, true) then
          return nil, "Only one X-Forwarded-Proto header allowed"
        end
      end
    end
    return "http"
  end

  local _ = tonumber
  CL.tls = require("kong.pdk.client.tls").new(kong)

  return CL
end

return { new = new }
