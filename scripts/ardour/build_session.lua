-- Builds the ImprovNet check session headless (run by run.sh through ardour7-lua).
-- Environment: IN_SESSION_DIR, IN_SESSION_NAME, IN_SECONDS (session length), IN_SEED.
-- Track "Piano" (MIDI): ImprovNet Test Pattern (generator) -> ImprovNet (VST3)
-- -> ACE Reasonable Synth -> ImprovNet Test Pattern (probe: left = synth, right = MIDI codes) -> master.  Snapshots written:
--   <name>        Delay 2 (constant), Corruption rate 1.0, Fidelity free
--   <name>-auto   the same, with "Delay" automated (Play) from 8 to 2 at half the length
local dir = os.getenv ("IN_SESSION_DIR")
local name = os.getenv ("IN_SESSION_NAME") or "improvnet-check"
local seconds = tonumber (os.getenv ("IN_SECONDS") or "45")
local seed = tonumber (os.getenv ("IN_SEED") or "7")
local rate = 48000
assert (dir, "IN_SESSION_DIR not set")

local s = create_session (dir, name, rate)
assert (s, "cannot create the session")

local function plugin (pname, ptype)
	local p = ARDOUR.LuaAPI.new_plugin (Session, pname, ptype, "")
	assert (not p:isnil (), "plugin not found: " .. pname)
	return p
end

local tl = Session:new_midi_track (
	ARDOUR.ChanCount (ARDOUR.DataType ("midi"), 1),
	ARDOUR.ChanCount (ARDOUR.DataType ("audio"), 2),
	false, ARDOUR.PluginInfo (), nil, nil, 1, "Piano",
	ARDOUR.PresentationInfo.max_order, ARDOUR.TrackMode.Normal, true)
local track = tl:front ()

local chain = {
	plugin ("ImprovNet Test Pattern", ARDOUR.PluginType.Lua),
	plugin ("ImprovNet", ARDOUR.PluginType.VST3),
	plugin ("ACE Reasonable Synth", ARDOUR.PluginType.LV2),
	plugin ("ImprovNet Test Pattern", ARDOUR.PluginType.Lua),
}
for i, p in ipairs (chain) do
	assert (track:add_processor_by_index (p, i - 1, nil, true) == 0, "cannot add plugin " .. i)
end
local improv = chain[2]
assert (ARDOUR.LuaAPI.set_processor_param (chain[1], 1, 0)) -- generator
assert (ARDOUR.LuaAPI.set_processor_param (chain[4], 0, seconds))
assert (ARDOUR.LuaAPI.set_processor_param (chain[4], 1, 1)) -- probe
-- no pan law on the probe channel: the track's two outputs go straight to the master's two
local ps = track:panner_shell ()
if ps and not ps:isnil () then ps:set_bypassed (true) end

-- Control-input index of each ImprovNet parameter, by label.
local pi = improv:to_insert ():plugin (0)
local idx, raw, n = {}, {}, 0
for j = 0, pi:parameter_count () - 1 do
	if pi:parameter_is_control (j) and pi:parameter_is_input (j) then
		idx[pi:parameter_label (j)] = n
		raw[pi:parameter_label (j)] = j
		n = n + 1
	end
end
for k, v in pairs (idx) do print ("param", v, k) end

local function set (label, value)
	assert (idx[label], "no parameter " .. label)
	assert (ARDOUR.LuaAPI.set_processor_param (improv, idx[label], value), "cannot set " .. label)
	print ("set", label, value, (ARDOUR.LuaAPI.get_processor_param (improv, idx[label])))
end
set ("Corruption rate", 1.0)
-- Free: every answer rewrites what its corruption removed, so a refined window is visibly not
-- the input (strict keeps the top voice, and this pattern is mostly top voice).
set ("Fidelity", 1.0)
set ("Delay", 2)
set ("Seed", seed)
-- A VST3 host hands parameter changes to the processor in its next process() call; nice-plug
-- applies setParamNormalized only while not processing, so the saved state would hold the old
-- values if the session were saved before the engine ran a cycle.
local function settle () ARDOUR.LuaAPI.usleep (1000000) end
settle ()
assert (ARDOUR.LuaAPI.set_processor_param (chain[1], 0, seconds)) -- pattern length

Session:save_state ("", false, false, false, false, false)
print ("saved", name)

-- Snapshot with the Delay automated from 8 to 2 at half the length.
local al, cl, pd = ARDOUR.LuaAPI.plugin_automation (improv, idx["Delay"])
assert (not al:isnil (), "no automation list for Delay")
print ("Delay range", pd.lower, pd.upper)
local half = math.floor (seconds * rate / 2)
set ("Delay", 8)
cl:clear_list ()
cl:add (Temporal.timepos_t (0), 8, false, false)
cl:add (Temporal.timepos_t (half - 480), 8, false, false) -- a 10 ms step down to 2
cl:add (Temporal.timepos_t (half), 2, false, false)
cl:add (Temporal.timepos_t (seconds * rate), 2, false, false)
local ac = improv:to_automatable ():automation_control (
	Evoral.Parameter (ARDOUR.AutomationType.PluginAutomation, 0, raw["Delay"]), false)
assert (not ac:isnil (), "no automation control for Delay")
ac:set_automation_state (ARDOUR.AutoState.Play)
for _, t in ipairs ({ 0, 1, half / rate - 0.02, half / rate - 0.005, half / rate + 0.01, seconds - 0.01 }) do
	print (string.format ("Delay automation at %.2f s: %.3f", t, cl:eval (Temporal.timepos_t (math.floor (t * rate)))))
end
settle ()
Session:save_state (name .. "-auto", false, false, false, false, false)
print ("saved", name .. "-auto")
close_session ()
io.stdout:flush ()

-- The export range: Ardour 7's Lua cannot construct a session-range Location, so it is written
-- into both snapshot files (superclock units: 282240000 per second).
local sc = 282240000
local loc = string.format ('<Locations>\n    <Location id="999999" name="session" start="a0" end="a%d" '
	.. 'flags="IsSessionRange" locked="0" timestamp="0" cue="0"/>\n  </Locations>', seconds * sc)
for _, snap in ipairs ({ name, name .. "-auto" }) do
	local path = dir .. "/" .. snap .. ".ardour"
	local f = assert (io.open (path, "r"))
	local xml = f:read ("a")
	f:close ()
	local n
	xml, n = xml:gsub ("<Locations/>", loc, 1)
	assert (n == 1, "no empty <Locations/> in " .. path)
	f = assert (io.open (path, "w"))
	f:write (xml)
	f:close ()
	print ("session range 0 ..", seconds, "s written to", path)
end
