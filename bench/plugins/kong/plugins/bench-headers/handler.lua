-- bench-headers: reads a request header and sets one upstream.
local kong = kong

local Headers = { PRIORITY = 1000, VERSION = "1.0.0" }

function Headers:access(conf)
  local ua = kong.request.get_header("user-agent")
  kong.service.request.set_header("X-Bench", ua or "none")
end

return Headers
