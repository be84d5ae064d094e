-- ngx.re (lua-resty-core's module): split and opt, over tollgate.ngx_re.
local re = require "tollgate.ngx_re"

return {
  split = re.split,
  opt = re.opt,
}
