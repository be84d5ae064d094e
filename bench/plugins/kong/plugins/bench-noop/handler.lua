-- bench-noop: an access phase that does nothing (the plugin host's own cost).
local Noop = { PRIORITY = 1000, VERSION = "1.0.0" }

function Noop:access(conf)
end

return Noop
