//! The quantization grids of the Aria tokenizer the released model was trained with (spec §2.2).
//!
//! The original snaps values with a binary search that keeps the first *strictly* closer candidate
//! met on its path, so exact ties go up or down depending on where they sit in the grid
//! (25 -> 20 but 15 -> 20). We replicate that search rather than "round half up" so that our
//! tokens are bit-identical to the training data.

/// Length of one T-segment window, in milliseconds.
pub const SEGMENT_MS: u32 = 5000;
/// Onset and duration grid step, in milliseconds.
pub const TIME_STEP_MS: u32 = 10;
/// Velocity grid step (the 2024 `aria` tokenizer; `aria-utils` uses 10, which the model never saw).
pub const VELOCITY_STEP: u8 = 15;
/// Largest velocity bin the tokenizer produces (127 has an id but is never produced).
pub const MAX_VELOCITY_BIN: u8 = 120;
/// Longest duration a token can carry.
pub const MAX_DUR_MS: u32 = 5000;

/// Aria's nearest-value binary search over an ascending grid `value(i) = i * step`, `i < len`.
/// `const`, like the quantizers, so the reader's lookup tables are computed by the compiler.
const fn nearest_on_grid(n: u64, step: u64, len: u64) -> u64 {
    let (mut lo, mut hi) = (0i64, len as i64 - 1);
    let mut best: Option<u64> = None;
    while lo <= hi {
        let mid = (lo + hi) / 2;
        let v = mid as u64 * step;
        let closer = match best {
            None => true,
            Some(b) => v.abs_diff(n) < b.abs_diff(n),
        };
        if closer {
            best = Some(v);
        }
        if v < n {
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    match best {
        Some(b) => b,
        None => 0,
    }
}

/// Onset inside a window, snapped to {0, 10, ..., 4990}. `ms_in_window` is `t mod 5000`,
/// so 4995..4999 snap to 4990 and never roll into the next window.
pub const fn quantize_onset(ms_in_window: u32) -> u16 {
    nearest_on_grid(
        ms_in_window as u64,
        TIME_STEP_MS as u64,
        (SEGMENT_MS / TIME_STEP_MS) as u64,
    ) as u16
}

/// Duration snapped to {10, ..., 5000}: 0 becomes 10, anything above 5 s is clipped to 5000.
pub const fn quantize_duration(dur_ms: u64) -> u16 {
    let clipped = if dur_ms < MAX_DUR_MS as u64 {
        dur_ms
    } else {
        MAX_DUR_MS as u64
    };
    let d = nearest_on_grid(
        clipped,
        TIME_STEP_MS as u64,
        (MAX_DUR_MS / TIME_STEP_MS + 1) as u64,
    );
    if d < TIME_STEP_MS as u64 {
        TIME_STEP_MS as u16
    } else {
        d as u16
    }
}

/// Velocity snapped to {0, 15, ..., 120}; a sounding note (1..=7) never becomes silent: 15.
pub const fn quantize_velocity(velocity: u8) -> u8 {
    let v = nearest_on_grid(
        velocity as u64,
        VELOCITY_STEP as u64,
        (MAX_VELOCITY_BIN / VELOCITY_STEP + 1) as u64,
    ) as u8;
    if v == 0 && velocity > 0 {
        VELOCITY_STEP
    } else {
        v
    }
}

/// Python's `round()` of a non-negative float: half to even. Used when the original rounds
/// milliseconds computed from ticks and tempo.
pub fn round_half_even(x: f64) -> u64 {
    // Adding 2^52 leaves no fraction bits, so the FPU's default rounding (nearest, ties to even)
    // rounds for us: exact for 0 <= x < 2^52, and no libm `rint` call on CPUs without SSE4.1,
    // where it was a measurable share of reading a file.
    const TWO_POW_52: f64 = 4_503_599_627_370_496.0;
    if x > 0.0 && x < TWO_POW_52 {
        // Through i64: one instruction, where a saturating `as u64` takes a dozen (it fits).
        ((x + TWO_POW_52) - TWO_POW_52) as i64 as u64
    } else if x >= TWO_POW_52 {
        x as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_onset_and_duration_examples() {
        for (input, want) in [
            (5, 0),
            (15, 20),
            (25, 20),
            (35, 40),
            (45, 40),
            (2495, 2490),
            (4985, 4980),
        ] {
            assert_eq!(quantize_onset(input), want, "onset {input}");
        }
        assert_eq!(quantize_onset(4999), 4990);
        assert_eq!(quantize_onset(4995), 4990);
        assert_eq!(quantize_duration(0), 10);
        assert_eq!(quantize_duration(4), 10);
        assert_eq!(quantize_duration(5000), 5000);
        assert_eq!(quantize_duration(123_456), 5000);
        assert_eq!(quantize_duration(2495), 2500); // the 501-value grid breaks this tie the other way
    }

    #[test]
    fn spec_velocity_examples() {
        for (input, want) in [
            (0, 0),
            (1, 15),
            (7, 15),
            (8, 15),
            (112, 105),
            (113, 120),
            (127, 120),
            (90, 90),
        ] {
            assert_eq!(quantize_velocity(input), want, "velocity {input}");
        }
    }

    #[test]
    fn python_rounding_is_half_to_even() {
        assert_eq!(round_half_even(0.5), 0);
        // Same as the standard library's ties-to-even, on ties, near-ties and odd values.
        for i in 0..200_000u64 {
            for x in [
                i as f64 * 0.5,
                i as f64 * 0.001,
                i as f64 * 1.000_000_1 + 0.499_999_999,
                (i as f64).mul_add(1e9, 0.5),
                -(i as f64),
                f64::NAN,
                f64::INFINITY,
                1e300,
            ] {
                let r = x.round_ties_even();
                let want = if r <= 0.0 || r.is_nan() { 0 } else { r as u64 };
                assert_eq!(round_half_even(x), want, "{x}");
            }
        }
        assert_eq!(round_half_even(1.5), 2);
        assert_eq!(round_half_even(2.5), 2);
        assert_eq!(round_half_even(2.4999), 2);
    }
}
