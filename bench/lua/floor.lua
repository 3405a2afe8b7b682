-- The HTTP floor: the same POST shape as new_contact (headers and a ~100-byte body) sent
-- to bench/floor_server.py, which answers a fixed JSON body.
dofile("report.lua")
local body = '{"idCampaign": 1, "TELEFONO": "90000000000001", "NOMBRE": "Bench Contact", "CELULAR": "", "id_ext": "api-1"}'

function init(args)
  wrk.headers["Authorization"] = "Bearer " .. string.rep("x", 200)
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  return wrk.format("POST", "/api/v1/new_contact/", nil, body)
end
