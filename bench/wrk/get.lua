-- GET $PATHS (a '|'-separated list), rotating per request.
dofile(os.getenv("WRK_DIR") .. "/common.lua")
local paths = {}
for p in string.gmatch(os.getenv("PATHS"), "[^|]+") do paths[#paths + 1] = p end
local i = 0
function request()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
