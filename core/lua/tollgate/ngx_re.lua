-- tollgate.ngx_re: ngx.re.match/find/gmatch/sub/gsub over PCRE2
-- (core/ngx_re.c), with OpenResty's options, return values and messages;
-- `require "ngx.re"` (split, opt) builds on it.
local ffi = require "ffi"
local bit = require "bit"

local C = ffi.C
local ffi_string = ffi.string
local ffi_gc = ffi.gc
local ffi_new = ffi.new
local bor, band = bit.bor, bit.band
local byte, sub, find = string.byte, string.sub, string.find
local concat = table.concat
local type, tostring, tonumber, error = type, tostring, tonumber, error
local rawget = rawget

ffi.cdef [[
  typedef struct tg_re_s tg_re_t;
  tg_re_t *tg_re_compile(const char *pat, size_t len, int flags, char *err, size_t errlen);
  void tg_re_free(tg_re_t *re);
  int tg_re_ncaptures(const tg_re_t *re);
  int tg_re_name_count(const tg_re_t *re);
  const char *tg_re_name_at(const tg_re_t *re, int i, int *group);
  int tg_re_exec(const tg_re_t *re, const char *s, size_t len, size_t pos,
                 uint32_t match_limit, int *ovec, int ovec_pairs);
  int tg_re_set_jit_stack_size(int size, char *err, size_t errlen);
]]

local F = {
  i = 0x1, s = 0x2, m = 0x4, x = 0x8, u = 0x10, U = 0x20, a = 0x40, D = 0x80,
  J = 0x100, d = 0x200, j = 0x400, o = 0x800,
}
local DUPNAMES, DFA, ONCE = F.D, F.d, F.o
local NOMATCH = -1
local ERRLEN = 512

local M = {}

local errbuf = ffi_new("char[?]", ERRLEN)
local groupp = ffi_new("int[1]")
local ovec_pairs = 16
local ovec = ffi_new("int[?]", ovec_pairs * 2)

-- options string -> flags, cached per string
local opt_cache = {}

local function parse_opts(opts)
  if opts == nil then
    return 0
  end
  local flags = opt_cache[opts]
  if flags then
    return flags
  end
  opts = tostring(opts)
  flags = 0
  for i = 1, #opts do
    local c = sub(opts, i, i)
    local f = F[c]
    if not f then
      error('unknown flag "' .. c .. '" (flags "' .. opts .. '")', 3)
    end
    flags = bor(flags, f)
  end
  opt_cache[opts] = flags
  return flags
end

-- compiled regexes for the "o" option, bounded as lua_regex_cache_max_entries
local cache, cache_size = {}, 0
local cache_max = 1024
local match_limit = 0

--- How many regexes "o" keeps compiled.
function M.cache_count()
  return cache_size
end

--- Settings from kong.configuration (nginx_http_lua_regex_cache_max_entries,
-- nginx_http_lua_regex_match_limit).
function M.configure(conf)
  configured = true
  if type(conf) ~= "table" then
    return
  end
  cache_max = tonumber(conf.nginx_http_lua_regex_cache_max_entries) or cache_max
  match_limit = tonumber(conf.nginx_http_lua_regex_match_limit) or match_limit
end

local configured = false

-- A compiled regex: { re = cdata, ncap = n, names = { {name, group}... } | false }
local function compile(regex, flags)
  if not configured then
    local k = rawget(_G, "kong")
    if k and k.configuration then
      M.configure(k.configuration)
    end
  end
  if type(regex) ~= "string" then
    regex = tostring(regex)
  end
  local key
  if band(flags, ONCE) ~= 0 then
    key = flags .. "\0" .. regex
    local c = cache[key]
    if c then
      return c
    end
  end
  local re = C.tg_re_compile(regex, #regex, flags, errbuf, ERRLEN)
  if re == nil then
    return nil, ffi_string(errbuf)
  end
  re = ffi_gc(re, C.tg_re_free)
  local c = { re = re, ncap = C.tg_re_ncaptures(re), flags = flags, names = false }
  local nn = C.tg_re_name_count(re)
  if nn > 0 then
    local names = {}
    for i = 0, nn - 1 do
      local name = ffi_string(C.tg_re_name_at(re, i, groupp))
      names[#names + 1] = { name, groupp[0] }
    end
    c.names = names
  end
  if key and cache_size < cache_max then
    cache[key] = c
    cache_size = cache_size + 1
  end
  return c
end

-- Runs c on subj from byte offset pos (0-based). Returns the pair count, or nil
-- (no match), or nil, err.
local function exec(c, subj, pos)
  local need = c.ncap + 1
  if need > ovec_pairs then
    ovec_pairs = need
    ovec = ffi_new("int[?]", need * 2)
  end
  local rc = C.tg_re_exec(c.re, subj, #subj, pos, match_limit, ovec, need)
  if rc == NOMATCH then
    return nil
  end
  if rc < 0 then
    return nil, "pcre_exec() failed: " .. rc
  end
  return rc
end

-- The captures table; a given `res` is reused as is (OpenResty does not
-- clear it: only [0..ncaptures] and the names are written).
local function captures(c, subj, rc, res)
  res = res or {}
  local n = band(c.flags, DFA) ~= 0 and 0 or c.ncap
  for i = 0, n do
    local from = i < rc and ovec[2 * i] or -1
    if from >= 0 then
      res[i] = sub(subj, from + 1, ovec[2 * i + 1])
    else
      res[i] = false
    end
  end
  local names = c.names
  if names then
    local dup = band(c.flags, DUPNAMES) ~= 0
    for i = 1, #names do
      local name, group = names[i][1], names[i][2]
      local v = res[group]
      if dup then
        if v then
          local t = rawget(res, name)
          if type(t) ~= "table" then
            t = {}
            res[name] = t
          end
          t[#t + 1] = v
        end
      elseif v or res[name] == nil then
        res[name] = v
      end
    end
  end
  return res
end

local function start_pos(ctx)
  local pos = ctx and ctx.pos
  if not pos or pos <= 0 then
    return 0
  end
  return pos - 1
end

--- captures, err = ngx.re.match(subject, regex, options?, ctx?, res_table?)
function M.match(subj, regex, opts, ctx, res)
  local c, err = compile(regex, parse_opts(opts))
  if not c then
    return nil, err
  end
  subj = tostring(subj)
  local rc, xerr = exec(c, subj, start_pos(ctx))
  if not rc then
    return nil, xerr
  end
  if ctx then
    ctx.pos = ovec[1] + 1
  end
  return captures(c, subj, rc, res)
end

--- from, to, err = ngx.re.find(subject, regex, options?, ctx?, nth?)
function M.find(subj, regex, opts, ctx, nth)
  local c, err = compile(regex, parse_opts(opts))
  if not c then
    return nil, nil, err
  end
  subj = tostring(subj)
  local rc, xerr = exec(c, subj, start_pos(ctx))
  if not rc then
    return nil, nil, xerr
  end
  if ctx then
    ctx.pos = ovec[1] + 1
  end
  nth = nth and nth > 0 and nth or 0
  if nth > c.ncap then
    return nil, nil, "nth out of bound"
  end
  if nth >= rc then
    return nil, nil
  end
  local from, to = ovec[2 * nth], ovec[2 * nth + 1]
  if from < 0 or to < 0 then
    return nil, nil
  end
  return from + 1, to
end

-- the byte length of the character at 0-based offset pos (UTF-8 with u/U)
local function char_len(subj, pos, flags)
  if band(flags, 0x30) == 0 then
    return 1
  end
  local b = byte(subj, pos + 1)
  if not b or b < 0xC0 then
    return 1
  end
  return b >= 0xF0 and 4 or b >= 0xE0 and 3 or 2
end

--- iterator, err = ngx.re.gmatch(subject, regex, options?)
function M.gmatch(subj, regex, opts)
  local flags = parse_opts(opts)
  local c, err = compile(regex, flags)
  if not c then
    return nil, err
  end
  subj = tostring(subj)
  local pos, done = 0, false
  return function()
    if done then
      return nil
    end
    local rc, xerr = exec(c, subj, pos)
    if not rc then
      done = true
      return nil, xerr
    end
    local from, to = ovec[0], ovec[1]
    local res = captures(c, subj, rc)
    if from == to then
      if to >= #subj then
        done = true
      end
      pos = to + char_len(subj, to, flags)
    else
      pos = to
    end
    return res
  end
end

-- A replacement template: "$0", "$1", "${1}", "$$" -> list of literal
-- strings and capture numbers. As OpenResty, a named capture ("${name}") or
-- anything else after "$" fails the template (nil), with its log line.
local function template_error(fmt, ...)
  local ngx = rawget(_G, "ngx")
  if ngx and ngx.log then
    ngx.log(ngx.ERR, string.format(fmt, ...))
  end
end
local template_cache = {}

local function compile_template(s)
  local t = template_cache[s]
  if t then
    return t
  end
  t = {}
  local i, n, lit = 1, #s, {}
  while i <= n do
    local d = find(s, "$", i, true)
    if not d then
      lit[#lit + 1] = sub(s, i)
      break
    end
    lit[#lit + 1] = sub(s, i, d - 1)
    local nxt = sub(s, d + 1, d + 1)
    if nxt == "$" then
      lit[#lit + 1] = "$"
      i = d + 2
    elseif nxt == "{" then
      local close = find(s, "}", d + 2, true)
      if not close then
        template_error('lua script: invalid capturing variable name found in "%s"', s)
        return nil
      end
      local name = sub(s, d + 2, close - 1)
      if not find(name, "^%d+$") then
        if name ~= "" and find(name, "^[%a_][%w_]*$") then
          template_error('attempt to use named capturing variable "%s" (named captures not ' ..
                         'supported yet)', name)
        else
          template_error('lua script: invalid capturing variable name found in "%s"', s)
        end
        return nil
      end
      t[#t + 1] = concat(lit)
      lit = {}
      t[#t + 1] = tonumber(name)
      i = close + 1
    else
      local digits = s:match("^%d+", d + 1)
      if not digits then
        template_error('lua script: invalid capturing variable name found in "%s"', s)
        return nil
      end
      t[#t + 1] = concat(lit)
      lit = {}
      t[#t + 1] = tonumber(digits)
      i = d + 1 + #digits
    end
  end
  t[#t + 1] = concat(lit)
  template_cache[s] = t
  return t
end

local function expand(t, c, subj, rc, out)
  for i = 1, #t do
    local part = t[i]
    if type(part) == "string" then
      out[#out + 1] = part
    else
      local g = part
      if type(g) == "table" then
        g = nil
        local names = c.names
        for k = 1, names and #names or 0 do
          local name, group = names[k][1], names[k][2]
          if name == part[1] and group < rc and ovec[2 * group] >= 0 then
            g = group
            break
          end
        end
      end
      if g and g < rc and ovec[2 * g] >= 0 then
        out[#out + 1] = sub(subj, ovec[2 * g] + 1, ovec[2 * g + 1])
      end
    end
  end
end

local function substitute(subj, regex, replace, opts, global)
  local flags = parse_opts(opts)
  local c, err = compile(regex, flags)
  if not c then
    return nil, nil, err
  end
  local func, tmpl
  if type(replace) == "function" then
    func = replace
  else
    tmpl = compile_template(tostring(replace))
    if not tmpl then
      return nil, nil, "failed to compile the replacement template"
    end
  end
  subj = tostring(subj)
  local len = #subj
  local out, count, pos, copied = {}, 0, 0, 0
  while pos <= len do
    local rc, xerr = exec(c, subj, pos)
    if not rc then
      if xerr then
        return nil, nil, xerr
      end
      break
    end
    local from, to = ovec[0], ovec[1]
    count = count + 1
    out[#out + 1] = sub(subj, copied + 1, from)
    if func then
      local v = tostring(func(captures(c, subj, rc)))
      out[#out + 1] = v
    else
      expand(tmpl, c, subj, rc, out)
    end
    copied = to
    if not global then
      break
    end
    if from == to then
      if to >= len then
        break
      end
      local cl = char_len(subj, to, flags)
      out[#out + 1] = sub(subj, to + 1, to + cl)
      copied = to + cl
      pos = to + cl
    else
      pos = to
    end
  end
  if count == 0 then
    return subj, 0
  end
  out[#out + 1] = sub(subj, copied + 1)
  return concat(out), count
end

--- newstr, n, err = ngx.re.sub(subject, regex, replace, options?)
function M.sub(subj, regex, replace, opts)
  return substitute(subj, regex, replace, opts, false)
end

--- newstr, n, err = ngx.re.gsub(subject, regex, replace, options?)
function M.gsub(subj, regex, replace, opts)
  return substitute(subj, regex, replace, opts, true)
end

--- res, err = require("ngx.re").split(subject, regex, options?, ctx?, max?, res?)
function M.split(subj, regex, opts, ctx, max, res)
  subj = tostring(subj)
  ctx = ctx or {}
  ctx.pos = ctx.pos or 1
  max = max or 0
  if res == nil then
    res = {}
  elseif type(res) ~= "table" then
    error("res is not a table", 2)
  end
  local len = #subj
  if ctx.pos > len then
    res[1] = nil
    return res
  end
  local c, err = compile(regex, parse_opts(opts))
  if not c then
    return nil, err
  end
  local piece_start = ctx.pos -- 1-based start of the piece being collected
  local n, pieces = 0, 1
  local last_empty
  while max <= 0 or pieces < max do
    local pos = ctx.pos - 1
    if pos < 0 then pos = 0 end
    local rc, xerr = exec(c, subj, pos)
    if not rc then
      if xerr then
        return nil, xerr
      end
      break
    end
    local from, to = ovec[0] + 1, ovec[1] + 1 -- to: one past the match
    ctx.pos = to + 1
    local cap = c.ncap > 0 and rc > 1 and ovec[2] >= 0 and sub(subj, ovec[2] + 1, ovec[3])
                or nil
    if last_empty then
      piece_start = last_empty
    end
    if from == to then
      last_empty = from
    end
    if from > piece_start or not last_empty then
      pieces = pieces + 1
      n = n + 1
      res[n] = sub(subj, piece_start, from - 1)
      if cap then
        n = n + 1
        res[n] = cap
      end
      piece_start = to
      if piece_start >= len then
        break
      end
    end
  end
  res[n + 1] = sub(subj, piece_start)
  res[n + 2] = nil
  return res
end

--- require("ngx.re").opt(name, value): only "jit_stack_size" exists.
function M.opt(option, value)
  if option == "jit_stack_size" then
    if cache_size > 0 then
      error("changing jit stack size is not allowed when some regexs have already been "
            .. "compiled and cached", 2)
    end
    if type(value) ~= "number" then
      error("bad jit stack size", 2)
    end
    if C.tg_re_set_jit_stack_size(value, errbuf, ERRLEN) ~= 0 then
      error(ffi_string(errbuf), 2)
    end
    return
  end
  error("unrecognized option name", 2)
end

return M
