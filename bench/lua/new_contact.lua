-- POST /api/v1/new_contact/ with a distinct phone and external id per request.
-- args: token campaign_id base stride
-- Request k of thread t uses index base + t + stride*k, so threads and runs never collide.
dofile("report.lua")
local campaign, base, stride, k

function init(args)
  wrk.headers["Authorization"] = "Bearer " .. args[1]
  wrk.headers["Content-Type"] = "application/json"
  campaign = args[2]
  base, stride = tonumber(args[3]), tonumber(args[4])
  k = 0
end

function request()
  local index = base + tid + stride * k
  k = k + 1
  max_index = index
  local body = string.format(
    '{"idCampaign": %s, "TELEFONO": "9%013d", "NOMBRE": "Bench Contact", "CELULAR": "", "id_ext": "api-%d"}',
    campaign, index, index)
  return wrk.format("POST", "/api/v1/new_contact/", nil, body)
end
