-- bench/scale-random.lua — wrk script: each request GETs a path picked at random from the file
-- named by $SCALE_PATHS (one request path a line). Headers from -H apply (wrk.headers).
local paths = {}
for line in io.lines(os.getenv("SCALE_PATHS")) do paths[#paths + 1] = line end
local threads = 0
function setup(thread) threads = threads + 1; thread:set("id", threads) end
function init(args) math.randomseed(os.time() * 1000 + (id or 0)) end
function request() return wrk.format("GET", paths[math.random(#paths)]) end
