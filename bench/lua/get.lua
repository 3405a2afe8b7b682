-- GET a path with a Bearer token. args: token path
dofile("report.lua")
local path

function init(args)
  if args[1] ~= "" then wrk.headers["Authorization"] = "Bearer " .. args[1] end
  path = args[2]
end

function request()
  return wrk.format("GET", path)
end
