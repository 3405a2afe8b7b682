-- POST /api/v1/new_contact/ with a distinct phone and external id per request.
-- args: token campaign_id base stride
dofile("report.lua")
local campaign

function init(args)
  use_token(args[1])
  campaign = args[2]
  start_indexes(args[3], args[4])
end

function request()
  local index = next_index()
  local body = string.format(
    '{"idCampaign": %s, "TELEFONO": "9%013d", "NOMBRE": "Bench Contact", "CELULAR": "", "id_ext": "api-%d"}',
    campaign, index, index)
  return wrk.format("POST", "/api/v1/new_contact/", nil, body)
end
