-- smcpair.lua: Wireshark/tshark dissector for SMC dump records (the frames Alibaba Cloud
-- Linux kernels mirror onto smc-dummy devices) and for the annotations `smcpair merge`
-- writes into merged.pcapng.
--
--   tshark -X lua_script:wireshark/smcpair.lua -2 -r capture.pcapng -Y smcdump.cdc
--   (or copy this file into Wireshark's personal Lua plugin folder, ~/.local/lib/wireshark/plugins/;
--   `tshark -G folders` prints it. Install steps: docs/wireshark.md)
--
-- A dump record carries its connection's ports, so it must decode on any port, also on one a
-- port dissector owns (AFS RX owns UDP 7000-7009). UDP asks port dissectors before heuristic
-- ones, so this file also puts a guard in front of every UDP port dissector: a dump record
-- (by its magic) is decoded here, anything else goes on to the port's own dissector.
--
-- The dump header's layout is not public. As smcpair does, the header length is measured:
-- an SMC-R CDC record always carries 48 bytes starting FE 2C, so H = UDP payload - 48 on
-- the first such record; SMC-D CDC records (32 bytes starting FE) count when no SMC-R one
-- is seen. Set the preference "SMC dump header length" to override. Use -2 (two passes) so
-- data records before the first CDC record are decoded too.

local dump = Proto("smcdump", "SMC dump record (smcpair)")
local f = dump.fields
f.magic = ProtoField.uint32("smcdump.magic", "Magic", base.HEX)
f.header_len = ProtoField.uint16("smcdump.header_len", "Header length (calibrated)")
f.kind = ProtoField.string("smcdump.kind", "Record")
f.cdc_seqno = ProtoField.uint16("smcdump.cdc.seqno", "CDC sequence number")
f.cdc_token = ProtoField.uint32("smcdump.cdc.token", "CDC alert token")
f.cdc_prod_wrap = ProtoField.uint16("smcdump.cdc.prod_wrap", "Producer wrap")
f.cdc_prod_count = ProtoField.uint32("smcdump.cdc.prod_count", "Producer count")
f.cdc_cons_wrap = ProtoField.uint16("smcdump.cdc.cons_wrap", "Consumer wrap")
f.cdc_cons_count = ProtoField.uint32("smcdump.cdc.cons_count", "Consumer count")
f.cdc_flags = ProtoField.uint8("smcdump.cdc.flags", "Producer flags", base.HEX)
f.cdc_state = ProtoField.uint8("smcdump.cdc.conn_state", "Connection state", base.HEX)
f.data_len = ProtoField.uint32("smcdump.data.length", "Data bytes")
f.mode = ProtoField.string("smcdump.mode", "Mode")

dump.prefs.header_len = Pref.uint("SMC dump header length", 0, "0 = calibrate from CDC records")

local learned = nil

local function calibrate(tvb)
  local n = tvb:len()
  if n >= 56 and tvb(n - 48, 1):uint() == 0xFE and tvb(n - 47, 1):uint() == 0x2C then return n - 48, "R" end
  if n >= 40 and tvb(n - 32, 1):uint() == 0xFE then return n - 32, "D" end
  return nil, nil
end

local function heuristic(tvb, pinfo, tree)
  if tvb:len() < 8 or tvb(0, 4):uint() ~= 0xCFD3E7A5 then return false end
  pinfo.cols.protocol = "SMC-DUMP"
  local n = tvb:len()
  local h = dump.prefs.header_len
  local shape_h, shape_mode = calibrate(tvb)
  if h == 0 then
    if shape_h and (learned == nil or learned == shape_h) then learned = shape_h end
    h = learned
  end
  local t = tree:add(dump, tvb())
  t:add(f.magic, tvb(0, 4))
  if h == nil or h > n then
    t:add(f.kind, "unknown (header length not calibrated yet; use tshark -2 or set the preference)")
    return true
  end
  t:add(f.header_len, h)
  local body = n - h
  if shape_h == h and shape_mode == "R" then
    local b = h
    t:add(f.kind, "CDC"); t:add(f.mode, "SMC-R")
    t:add(f.cdc_seqno, tvb(b + 2, 2)); t:add(f.cdc_token, tvb(b + 4, 4))
    t:add(f.cdc_prod_wrap, tvb(b + 10, 2)); t:add(f.cdc_prod_count, tvb(b + 12, 4))
    t:add(f.cdc_cons_wrap, tvb(b + 18, 2)); t:add(f.cdc_cons_count, tvb(b + 20, 4))
    t:add(f.cdc_flags, tvb(b + 24, 1)); t:add(f.cdc_state, tvb(b + 25, 1))
    pinfo.cols.info = string.format("CDC seq=%d prod=%d:%d cons=%d:%d", tvb(b + 2, 2):uint(), tvb(b + 10, 2):uint(),
      tvb(b + 12, 4):uint(), tvb(b + 18, 2):uint(), tvb(b + 20, 4):uint())
  elseif shape_h == h and shape_mode == "D" then
    local b = h
    t:add(f.kind, "CDC"); t:add(f.mode, "SMC-D")
    -- SMC-D cursors are in the sender's host byte order (little-endian on x86/ARM).
    t:add_le(f.cdc_prod_wrap, tvb(b + 8, 2)); t:add_le(f.cdc_prod_count, tvb(b + 10, 4))
    t:add_le(f.cdc_cons_wrap, tvb(b + 16, 2)); t:add_le(f.cdc_cons_count, tvb(b + 18, 4))
    t:add(f.cdc_flags, tvb(b + 22, 1)); t:add(f.cdc_state, tvb(b + 23, 1))
    pinfo.cols.info = string.format("SMC-D CDC prod=%d:%d cons=%d:%d", tvb(b + 8, 2):le_uint(), tvb(b + 10, 4):le_uint(),
      tvb(b + 16, 2):le_uint(), tvb(b + 18, 4):le_uint())
  else
    t:add(f.kind, "data"); t:add(f.data_len, body)
    pinfo.cols.info = string.format("SMC data %d bytes", body)
  end
  return true
end

dump:register_heuristic("udp", heuristic)

-- The guard in front of the UDP port dissectors (see the top of the file).
local guard = Proto("smcdump_port", "SMC dump record or the port's own protocol (smcpair)")
local udp_ports = DissectorTable.get("udp.port")
local owners = {}
for port = 1, 65535 do
  local owner = udp_ports:get_dissector(port)
  if owner then owners[port] = owner end
end

function guard.dissector(tvb, pinfo, tree)
  if heuristic(tvb, pinfo, tree) then return tvb:len() end
  local owner = owners[pinfo.match_uint]
  if owner then return owner:call(tvb, pinfo, tree) end
  return 0
end

for port in pairs(owners) do udp_ports:add(port, guard) end

-- What smcpair merge writes into merged.pcapng, as filterable fields:
--   smcpair.side, smcpair.host   from the interface description "<side> <host>: <role>"
--                                (e.g. "client h1: NIC"), on every packet of a merged file;
--   smcpair.pair, smcpair.kind, smcpair.direction, smcpair.delay_us
--                                from the comment of a paired packet,
--                                "smcpair pair N: KIND DIRECTION, one-way delay X us".
--   tshark -X lua_script:wireshark/smcpair.lua -r merged.pcapng -Y 'smcpair.delay_us > 100'
local merged = Proto("smcpair", "smcpair merge annotations")
merged.fields.side = ProtoField.string("smcpair.side", "Captured on side (client or server)")
merged.fields.host = ProtoField.string("smcpair.host", "Captured on host")
merged.fields.role = ProtoField.string("smcpair.interface_role", "Capture interface role")
merged.fields.pair = ProtoField.uint32("smcpair.pair", "Pair (same id on both copies)")
merged.fields.kind = ProtoField.string("smcpair.kind", "Layer")
merged.fields.direction = ProtoField.string("smcpair.direction", "Direction")
merged.fields.delay = ProtoField.double("smcpair.delay_us", "One-way delay (us)")
local comment = Field.new("frame.comment")
local interface_description = Field.new("frame.interface_description")

function merged.dissector(tvb, pinfo, tree)
  local t = nil
  local description = interface_description()
  if description then
    local side, host, role = string.match(tostring(description.value), "^(%a+) (.-): (.*)$")
    if side == "client" or side == "server" then
      t = tree:add(merged, "smcpair: captured on " .. side .. " " .. host)
      t:add(merged.fields.side, side)
      t:add(merged.fields.host, host)
      t:add(merged.fields.role, role)
    end
  end
  local values = { comment() }
  for _, value in ipairs(values) do
    local text = tostring(value.value)
    local pair, kind, direction, delay = string.match(text, "^smcpair pair (%d+): (%S+) (%S+), one%-way delay ([%-%d%.]+) us")
    if pair then
      t = t or tree:add(merged, "smcpair")
      t:append_text(", pair " .. pair .. ", " .. kind .. " " .. direction .. ", one-way delay " .. delay .. " us")
      t:add(merged.fields.pair, tonumber(pair))
      t:add(merged.fields.kind, kind)
      t:add(merged.fields.direction, direction)
      t:add(merged.fields.delay, tonumber(delay))
    end
  end
end

register_postdissector(merged)
