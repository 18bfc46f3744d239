//! Soak: one simulated hour of random playing through capture and playback, with random
//! transport jumps and a worker that answers some segments late or never. No stuck note, no
//! unbalanced event, no panic; the state is fixed-size by construction.
#![cfg(feature = "plugin")]

use improvnet::plugin::capture::Capture;
use improvnet::plugin::notes::{NoteBuf, SampleNote};
use improvnet::plugin::playback::{Answer, PlayEvent, Playback};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SR: i64 = 48_000;
const SEG: i64 = 5 * SR;
const BLOCK: i64 = 512;

/// Advances capture to `t`; the fake worker answers each finished segment, mostly on time.
fn hand_on(cap: &mut Capture, t: i64, rng: &mut ChaCha8Rng, pending: &mut Vec<(i64, i64, Answer)>) {
    let mut handed: Vec<(i64, NoteBuf)> = Vec::new();
    cap.advance(t, &mut |k, b| handed.push((k, *b)));
    for (k, b) in handed {
        let answer = if rng.gen_bool(0.3) {
            Answer::Original
        } else {
            let mut n = b;
            for x in n.as_mut_slice() {
                x.pitch = rng.gen_range(21..=108);
            }
            n.push(SampleNote {
                pitch: 60,
                velocity: 64,
                onset: (SEG - 1) as u32,
                dur: SEG as u32,
            });
            Answer::Refined(n)
        };
        let delay = if rng.gen_bool(0.1) { 3 * SEG } else { SEG / 2 };
        pending.push((t + delay, k, answer));
    }
}

/// Hands playback the answers due by `t`.
fn deliver(play: &mut Playback, t: i64, pending: &mut Vec<(i64, i64, Answer)>) {
    pending.retain(|(at, k, a)| {
        if *at <= t {
            play.receive(*k, *a);
            false
        } else {
            true
        }
    });
}

#[test]
fn an_hour_of_random_playing_and_jumps_leaves_nothing_stuck() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut cap = Capture::new(SEG as u32, (SR / 4) as u32);
    let mut play = Playback::new(SEG as u32, 2);
    let mut sounding = [false; 128];
    let mut check = |e: PlayEvent| match e {
        PlayEvent::On { pitch, .. } => {
            assert!(!sounding[usize::from(pitch)], "on while sounding: {pitch}");
            sounding[usize::from(pitch)] = true;
        }
        PlayEvent::Off { pitch, .. } => {
            assert!(sounding[usize::from(pitch)], "off while silent: {pitch}");
            sounding[usize::from(pitch)] = false;
        }
    };
    let mut held = [false; 128];
    let mut pending: Vec<(i64, i64, Answer)> = Vec::new(); // (deliver at, index, answer)
    let mut t = 0i64;
    let mut events = 0u64;
    let mut jumps = 0;
    for _ in 0..(3600 * SR / BLOCK) {
        let t0 = t;
        let t1 = t0 + BLOCK;
        let mut from = t0;
        if rng.gen_bool(0.0005) {
            // Transport jump: release everything, forget the timeline.
            play.all_off(0, true, &mut check);
            cap.reset();
            pending.clear();
            held = [false; 128];
            t = rng.gen_range(-SEG..100 * SEG);
            jumps += 1;
            continue;
        }
        for _ in 0..rng.gen_range(0..4) {
            let te = rng.gen_range(from..t1);
            hand_on(&mut cap, te, &mut rng, &mut pending);
            deliver(&mut play, te, &mut pending);
            play.render(t0, from, te, &cap, true, &mut check);
            from = te;
            let pitch = rng.gen_range(21u8..=108);
            if held[usize::from(pitch)] {
                cap.note_off(te, pitch);
                held[usize::from(pitch)] = false;
            } else {
                cap.note_on(te, pitch, rng.gen_range(1..=127));
                held[usize::from(pitch)] = true;
            }
            events += 1;
        }
        hand_on(&mut cap, t1, &mut rng, &mut pending);
        deliver(&mut play, t1, &mut pending);
        play.render(t0, from, t1, &cap, true, &mut check);
        assert!(play.sounding() <= 128);
        assert!(pending.len() < 64, "answers pile up: {}", pending.len());
        t = t1;
    }
    play.all_off(0, true, &mut check);
    assert_eq!(play.sounding(), 0);
    assert!(sounding.iter().all(|s| !s), "stuck notes");
    assert!(
        events > 100_000 && jumps > 10,
        "{events} events, {jumps} jumps"
    );
}
