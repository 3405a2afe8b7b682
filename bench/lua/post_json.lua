-- POST a fixed JSON body with a Bearer token. args: token path body
dofile("report.lua")
local path, body

function init(args)
  use_token(args[1])
  path, body = args[2], args[3]
end

function request()
  return wrk.format("POST", path, nil, body)
end
