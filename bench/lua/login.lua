-- POST /api/v1/login with a valid username and password. args: username password
dofile("report.lua")
local body

function init(args)
  wrk.headers["Content-Type"] = "application/json"
  body = string.format('{"username": "%s", "password": "%s"}', args[1], args[2])
end

function request()
  return wrk.format("POST", "/api/v1/login/", nil, body)
end
