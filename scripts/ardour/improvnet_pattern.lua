ardour {
	["type"]    = "dsp",
	name        = "ImprovNet Test Pattern",
	category    = "Utility",
	license     = "MIT",
	author      = "ImprovNet check",
	description = [[ImprovNet Ardour check, two modes.
Mode 0 (generator, MIDI only): while the transport rolls, emits a fixed piano pattern (120 bpm, an
eighth note per step, a triad every bar) as a pure function of the transport position; incoming
MIDI is dropped.
Mode 1 (probe, after the synth, 2 audio in/out): passes the left channel through and overwrites the
right channel with a code stream: one non-zero sample per MIDI note event,
value = (code + 1) / 65536, code = tag * 32768 + on * 16384 + note * 128 + velocity,
tag 0 = the pattern's own events (what the generator sends), tag 1 = the MIDI arriving here (the
plugin's output). Events at the same sample are written to consecutive samples.
Lua DSP scripts cannot write files (io = nil), so the exported audio carries the log.]]
}

function dsp_ioconfig ()
	return {
		{ midi_in = 1, midi_out = 1, audio_in = 0, audio_out = 0 },
		{ midi_in = 1, midi_out = 1, audio_in = 2, audio_out = 2 },
	}
end

function dsp_params ()
	return {
		{ ["type"] = "input", name = "Pattern length (s)", min = 1, max = 600, default = 45, integer = true },
		{ ["type"] = "input", name = "Mode", min = 0, max = 1, default = 0, integer = true },
	}
end

local rate = 48000
local step = 12000 -- samples per eighth note at 120 bpm
-- A two-bar melody (C major), repeated; every bar (8 steps) starts with a triad under it.
local melody = { 60, 64, 67, 72, 71, 67, 64, 62, 65, 69, 72, 77, 76, 72, 69, 67 }
local chords = { { 48, 55, 64 }, { 53, 57, 60 } }
local pending = {} -- probe: codes not yet written
local last_end = -1

function dsp_init (r)
	rate = r
	step = math.floor (r * 60 / 120 / 2)
end

-- The note events { time, bytes } of step k.
local function step_events (k, out)
	local m = melody[(k % #melody) + 1]
	local vel = 70 + (k * 7) % 40
	out[#out + 1] = { k * step, { 0x90, m, vel } }
	out[#out + 1] = { k * step + math.floor (step * 0.8), { 0x80, m, 0 } }
	if k % 8 == 0 then
		local c = chords[(k // 8) % #chords + 1]
		for _, n in ipairs (c) do
			out[#out + 1] = { k * step, { 0x90, n, 60 } }
			out[#out + 1] = { k * step + 4 * step - 1, { 0x80, n, 0 } }
		end
	end
end

-- The pattern's events in [s0, s1), sorted, as { time, bytes }.
local function pattern (s0, s1, stop)
	local evs = {}
	for k = math.max (0, s0 // step - 4), s1 // step do
		if k * step < stop then step_events (k, evs) end
	end
	table.sort (evs, function (a, b)
		if a[1] ~= b[1] then return a[1] < b[1] end
		if a[2][1] ~= b[2][1] then return a[2][1] < b[2][1] end -- note-offs first
		return a[2][2] < b[2][2]
	end)
	local r = {}
	for _, e in ipairs (evs) do
		if e[1] >= s0 and e[1] < s1 then r[#r + 1] = e end
	end
	return r
end

local function code (tag, d)
	if #d ~= 3 then return nil end
	local kind = d[1] >> 4
	if kind ~= 8 and kind ~= 9 then return nil end
	local on = (kind == 9 and d[3] > 0) and 1 or 0
	return tag * 32768 + on * 16384 + d[2] * 128 + d[3]
end

function dsp_run (ins, outs, n_samples)
	local ctrl = CtrlPorts:array ()
	local stop = ctrl[1] * rate
	local rolling = Session:transport_rolling ()
	local s0 = Session:transport_sample ()
	if ctrl[2] < 0.5 then
		-- generator
		if not rolling then return end
		local cnt = 1
		for _, e in ipairs (pattern (s0, s0 + n_samples, stop)) do
			midiout[cnt] = { time = e[1] - s0 + 1, data = e[2] }
			cnt = cnt + 1
		end
		return
	end
	-- probe: left passes (in place), right carries the codes
	if ins[1] ~= outs[1] then ARDOUR.DSP.copy_vector (outs[1], ins[1], n_samples) end
	local r = {}
	for i = 1, n_samples do r[i] = 0 end
	if not rolling then outs[2]:set_table (r, n_samples) return end
	if s0 ~= last_end then pending = {} end -- relocated: start afresh
	last_end = s0 + n_samples
	for _, e in ipairs (pattern (s0, s0 + n_samples, stop)) do
		pending[#pending + 1] = { e[1] - s0, code (0, e[2]) }
	end
	for _, b in ipairs (midiin) do
		local c = code (1, b["data"])
		if c then pending[#pending + 1] = { b["time"] - 1, c } end
	end
	table.sort (pending, function (a, b) return a[1] < b[1] end)
	local next_free = 0
	local rest = {}
	for _, p in ipairs (pending) do
		local t = math.max (p[1], next_free)
		if t < n_samples then
			r[t + 1] = (p[2] + 1) / 65536
			next_free = t + 1
		else
			rest[#rest + 1] = { t - n_samples, p[2] }
			next_free = t + 1
		end
	end
	pending = rest
	outs[2]:set_table (r, n_samples)
end
