//! Foote novelty on a chroma self-similarity matrix, and SSMNet's peak picking (spec §13.1).
//!
//! SSMNet learns its embeddings and kernels; we use the classic, untrained form of the same
//! pipeline: cosine self-similarity of chroma frames, a Gaussian-tapered checkerboard kernel slid
//! along the diagonal, then exactly SSMNet's post-processing (peak-to-local-mean ratio, scipy
//! `find_peaks` with a minimum distance, ratio threshold).
//!
//! The kernel is centred on frame *edges*: its half-size `L` covers frames `n-L..n` before edge
//! `n` and `n..n+L` after it, so a change between two frames is located exactly at their shared
//! edge (an odd kernel centred on a frame would tie between the two frames next to a change).
//! Near the ends of the piece the kernel is truncated symmetrically to the largest half-size that
//! fits, so the first and last edges have novelty 0 instead of the zero-padding artefacts.
//!
//! Because frames are unit vectors (or zero), `S = C Cᵀ` and the kernel is an outer product
//! `u uᵀ`, so the novelty at edge `n` is `‖Σ_a u_a c_{n-L+a}‖²`: computed in O(N·L) without
//! the matrix. [`foote_novelty_ssm`] is the textbook form on an explicit matrix; the two agree.

use super::chroma::{Chroma, ChromaParams};

/// Parameters of boundary finding. Defaults are SSMNet's (spec §13, `config_ssm.yaml`), except
/// `min_novelty`, our addition.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoveltyParams {
    /// Chroma features (frame rate, smoothing).
    pub chroma: ChromaParams,
    /// Kernel half-size (`kernel_Ldemi_sec`): 10 s.
    pub kernel_half_s: f64,
    /// Gaussian taper σ (`kernel_sigma_sec`): 5 s.
    pub kernel_sigma_s: f64,
    /// Half-width of the local mean the novelty is divided by (`peak_mean_Ldemi_sec`): 10 s.
    pub mean_half_s: f64,
    /// Minimum distance between peaks (`peak_distance_sec`): 7 s.
    pub peak_distance_s: f64,
    /// Minimum peak-to-local-mean ratio (`peak_threshold`): 1.35.
    pub peak_threshold: f64,
    /// Peaks whose novelty (normalised to a maximum of 1 over the piece) is below this are not
    /// candidates. SSMNet's sigmoid novelty never reaches 0, so its ratio stays near 1 where
    /// nothing happens; ours is exactly 0 on repeated material, where the ratio of tiny ripples
    /// can be large. 0 gives SSMNet's rule exactly. Default 0.1.
    pub min_novelty: f64,
}

impl Default for NoveltyParams {
    fn default() -> Self {
        Self {
            chroma: ChromaParams::default(),
            kernel_half_s: 10.0,
            kernel_sigma_s: 5.0,
            mean_half_s: 10.0,
            peak_distance_s: 7.0,
            peak_threshold: 1.35,
            min_novelty: 0.1,
        }
    }
}

impl NoveltyParams {
    /// A duration in seconds as a whole number of frames (SSMNet: `round(sec / step)`).
    fn frames(&self, seconds: f64) -> usize {
        (seconds * self.chroma.frame_rate_hz).round().max(0.0) as usize
    }
}

/// A structural boundary: a change in the music at `time_s` seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Boundary {
    /// Time on the timeline of the analysed input (see [`super::chroma`]).
    pub time_s: f64,
    /// Novelty there, normalised to a maximum of 1 over the piece: what the top-n ranking uses.
    pub novelty: f64,
    /// Novelty divided by its local mean: what the threshold tests.
    pub ratio: f64,
}

/// Cosine self-similarity of chroma frames. A silent (zero) frame is similar to nothing (0).
pub fn self_similarity(chroma: &Chroma) -> Vec<Vec<f64>> {
    let f = &chroma.frames;
    f.iter()
        .map(|a| f.iter().map(|b| dot(a, b)).collect())
        .collect()
}

fn dot(a: &[f64; 12], b: &[f64; 12]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The kernel's 1-D factor over the `2·half` frames around an edge: `sign(x)·exp(-x²/2σ²)` at
/// `x = a - half + 0.5` frames from the edge (negative before it, positive after it).
pub fn kernel_taper(half: usize, sigma_frames: f64) -> Vec<f64> {
    (0..2 * half)
        .map(|a| {
            let x = a as f64 - half as f64 + 0.5;
            x.signum() * (-x * x / (2.0 * sigma_frames * sigma_frames)).exp()
        })
        .collect()
}

/// Gaussian-tapered checkerboard kernel `K = u uᵀ` (`2·half` square): positive where both
/// frames lie on the same side of the edge, negative across it.
pub fn checkerboard_kernel(half: usize, sigma_frames: f64) -> Vec<Vec<f64>> {
    let u = kernel_taper(half, sigma_frames);
    u.iter()
        .map(|a| u.iter().map(|b| a * b).collect())
        .collect()
}

/// Foote novelty at every frame edge `0..=N` from an explicit similarity matrix: `Σ K·S` over the
/// kernel placed on the diagonal at the edge, truncated symmetrically near the ends.
pub fn foote_novelty_ssm(ssm: &[Vec<f64>], half: usize, sigma_frames: f64) -> Vec<f64> {
    let n = ssm.len();
    let u = kernel_taper(half, sigma_frames);
    (0..=n)
        .map(|edge| {
            let l = half.min(edge).min(n - edge);
            let mut sum = 0.0;
            for a in half - l..half + l {
                for b in half - l..half + l {
                    sum += u[a] * u[b] * ssm[edge + a - half][edge + b - half];
                }
            }
            sum
        })
        .collect()
}

/// Foote novelty at every frame edge `0..=N` straight from unit (or zero) chroma frames; equal to
/// [`foote_novelty_ssm`] on [`self_similarity`], in O(N·half).
pub fn foote_novelty(chroma: &Chroma, half: usize, sigma_frames: f64) -> Vec<f64> {
    let f = &chroma.frames;
    let n = f.len();
    let u = kernel_taper(half, sigma_frames);
    (0..=n)
        .map(|edge| {
            let l = half.min(edge).min(n - edge);
            let mut v = [0.0; 12];
            for a in half - l..half + l {
                let frame = &f[edge + a - half];
                for (vi, x) in v.iter_mut().zip(frame) {
                    *vi += u[a] * x;
                }
            }
            v.iter().map(|x| x * x).sum()
        })
        .collect()
}

/// SSMNet's peak-to-mean ratio: `x[n]` over the mean of `x` on `n-half..=n+half` (clipped to the
/// signal). 0 where that mean is 0.
pub fn peak_to_mean(x: &[f64], half: usize) -> Vec<f64> {
    let mut prefix = Vec::with_capacity(x.len() + 1);
    prefix.push(0.0);
    for v in x {
        prefix.push(prefix.last().copied().unwrap_or(0.0) + v);
    }
    (0..x.len())
        .map(|n| {
            let lo = n.saturating_sub(half);
            let hi = (n + half + 1).min(x.len());
            let mean = (prefix[hi] - prefix[lo]) / (hi - lo) as f64;
            if mean > 0.0 {
                x[n] / mean
            } else {
                0.0
            }
        })
        .collect()
}

/// Local maxima as scipy's `find_peaks` finds them: strictly higher than the left neighbour and
/// than the first different right neighbour; a flat top gives its middle sample (rounded down);
/// the first and last samples are never peaks.
pub fn local_maxima(x: &[f64]) -> Vec<usize> {
    let mut peaks = Vec::new();
    if x.len() < 3 {
        return peaks;
    }
    let last = x.len() - 1;
    let mut i = 1;
    while i < last {
        if x[i - 1] < x[i] {
            let mut ahead = i + 1;
            while ahead < last && x[ahead] == x[i] {
                ahead += 1;
            }
            if x[ahead] < x[i] {
                peaks.push((i + ahead - 1) / 2);
                i = ahead;
            }
        }
        i += 1;
    }
    peaks
}

/// scipy's `distance` rule: taking peaks from the highest down (of equal heights, the later
/// first), drop every other peak closer than `distance` samples to a kept one.
pub fn select_by_distance(x: &[f64], peaks: &[usize], distance: usize) -> Vec<usize> {
    let mut keep = vec![true; peaks.len()];
    let mut order: Vec<usize> = (0..peaks.len()).collect();
    order.sort_by(|&a, &b| x[peaks[a]].total_cmp(&x[peaks[b]]).then(a.cmp(&b)));
    for &i in order.iter().rev() {
        if !keep[i] {
            continue;
        }
        for (j, k) in keep.iter_mut().enumerate() {
            if j != i && peaks[i].abs_diff(peaks[j]) < distance {
                *k = false;
            }
        }
    }
    peaks
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(p, _)| *p)
        .collect()
}

/// `find_peaks(x, distance)`: [`local_maxima`] then [`select_by_distance`].
pub fn find_peaks(x: &[f64], distance: usize) -> Vec<usize> {
    select_by_distance(x, &local_maxima(x), distance)
}

/// Novelty curve (one value per frame edge, normalised to a maximum of 1; all zeros if flat).
pub fn novelty_curve(chroma: &Chroma, params: &NoveltyParams) -> Vec<f64> {
    let half = params.frames(params.kernel_half_s).max(1);
    let sigma = (params.kernel_sigma_s * params.chroma.frame_rate_hz).max(1e-9);
    let mut nov = foote_novelty(chroma, half, sigma);
    let max = nov.iter().copied().fold(0.0, f64::max);
    if max > 0.0 {
        nov.iter_mut().for_each(|x| *x /= max);
    }
    nov
}

/// Boundaries from a novelty curve sampled at `frame_rate_hz` (value `n` at `n / rate` s):
/// ratio to the local mean, local maxima of the ratio with novelty ≥ `min_novelty`, the distance
/// rule on the ratio, then ratio ≥ `peak_threshold`. In time order.
pub fn pick_boundaries(novelty: &[f64], params: &NoveltyParams) -> Vec<Boundary> {
    let ratio = peak_to_mean(novelty, params.frames(params.mean_half_s));
    let candidates: Vec<usize> = local_maxima(&ratio)
        .into_iter()
        .filter(|&i| novelty[i] >= params.min_novelty)
        .collect();
    select_by_distance(&ratio, &candidates, params.frames(params.peak_distance_s))
        .into_iter()
        .filter(|&i| ratio[i] >= params.peak_threshold)
        .map(|i| Boundary {
            time_s: i as f64 / params.chroma.frame_rate_hz,
            novelty: novelty[i],
            ratio: ratio[i],
        })
        .collect()
}

/// Chroma -> novelty -> boundaries. `chroma.frame_rate_hz` must equal `params.chroma`'s.
pub fn boundaries_from_chroma(chroma: &Chroma, params: &NoveltyParams) -> Vec<Boundary> {
    pick_boundaries(&novelty_curve(chroma, params), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_is_a_symmetric_gaussian_checkerboard() {
        let k = checkerboard_kernel(4, 2.0);
        assert_eq!(k.len(), 8);
        for a in 0..8 {
            for b in 0..8 {
                let same_side = (a < 4) == (b < 4);
                assert_eq!(k[a][b] > 0.0, same_side, "sign at ({a}, {b})");
                assert_eq!(k[a][b], k[b][a]);
                assert!((k[a][b] - k[7 - a][7 - b]).abs() < 1e-15);
                assert!((k[a][b] + k[a][7 - b]).abs() < 1e-15);
            }
        }
        // Largest next to the centre, tapering outwards.
        assert!(k[3][3] > k[2][2] && k[2][2] > k[0][0]);
        assert!((k[3][3] - (-0.25f64 / 4.0).exp()).abs() < 1e-12);
    }

    fn chroma_of(pcs: &[usize]) -> Chroma {
        Chroma {
            frames: pcs
                .iter()
                .map(|&pc| {
                    let mut f = [0.0; 12];
                    if pc < 12 {
                        f[pc] = 1.0;
                    }
                    f
                })
                .collect(),
            frame_rate_hz: 1.0,
        }
    }

    #[test]
    fn fast_novelty_equals_the_matrix_form() {
        let c = chroma_of(&[0, 0, 4, 0, 12, 7, 7, 7, 2, 2, 2, 9, 0]);
        let ssm = self_similarity(&c);
        assert_eq!(ssm[0][1], 1.0);
        assert_eq!(ssm[0][2], 0.0);
        assert_eq!(ssm[4][4], 0.0, "silence is similar to nothing");
        let slow = foote_novelty_ssm(&ssm, 3, 1.5);
        let fast = foote_novelty(&c, 3, 1.5);
        assert_eq!(slow.len(), c.len() + 1);
        for (s, f) in slow.iter().zip(&fast) {
            assert!((s - f).abs() < 1e-12, "{slow:?} vs {fast:?}");
        }
    }

    #[test]
    fn novelty_peaks_at_the_change_and_is_zero_on_steady_material() {
        let c = chroma_of(&[0, 0, 0, 0, 0, 0, 7, 7, 7, 7, 7, 7]);
        let nov = foote_novelty(&c, 3, 2.0);
        let best = (0..nov.len())
            .max_by(|a, b| nov[*a].total_cmp(&nov[*b]))
            .unwrap();
        assert_eq!(best, 6);
        assert_eq!(nov[0], 0.0);
        assert_eq!(nov[12], 0.0);
        assert!(nov[2] < 1e-12 && nov[10] < 1e-12);
    }

    #[test]
    fn local_maxima_follow_scipy() {
        let x = [0.0, 1.0, 0.0, 2.0, 2.0, 2.0, 1.0, 3.0, 3.0, 4.0, 1.0, 5.0];
        // 1 (single), 4 (flat top 3..=5, middle), 9 (after a rising plateau); 11 is the last.
        assert_eq!(local_maxima(&x), vec![1, 4, 9]);
        assert_eq!(local_maxima(&[1.0, 2.0, 2.0, 1.0]), vec![1]);
        assert!(local_maxima(&[1.0, 2.0, 2.0]).is_empty());
        assert!(local_maxima(&[3.0, 1.0]).is_empty());
    }

    #[test]
    fn distance_rule_keeps_higher_peaks_first() {
        let mut x = vec![0.0; 30];
        x[5] = 1.0;
        x[8] = 3.0;
        x[12] = 2.0;
        x[20] = 1.5;
        x[27] = 1.0;
        // 8 suppresses 5 and 12 (closer than 5), 20 survives, 27 is 7 away from 20: kept.
        assert_eq!(find_peaks(&x, 5), vec![8, 20, 27]);
        // Distance 8: 20 suppresses 27; distance exactly equal is allowed.
        assert_eq!(find_peaks(&x, 8), vec![8, 20]);
        assert_eq!(find_peaks(&x, 7), vec![8, 20, 27]);
        // Equal heights: the later one wins.
        let mut y = vec![0.0; 10];
        y[3] = 1.0;
        y[5] = 1.0;
        assert_eq!(find_peaks(&y, 3), vec![5]);
        assert_eq!(find_peaks(&y, 1), vec![3, 5]);
    }

    #[test]
    fn peak_to_mean_uses_a_clipped_window() {
        let r = peak_to_mean(&[0.0, 3.0, 0.0, 0.0, 0.0], 1);
        assert_eq!(r, vec![0.0, 3.0, 0.0, 0.0, 0.0]);
        let r = peak_to_mean(&[2.0, 2.0, 2.0], 5);
        assert_eq!(r, vec![1.0, 1.0, 1.0]);
    }

    #[test]
    fn threshold_and_floor_filter_peaks() {
        let params = NoveltyParams {
            chroma: ChromaParams {
                frame_rate_hz: 1.0,
                ..ChromaParams::default()
            },
            mean_half_s: 3.0,
            peak_distance_s: 2.0,
            ..NoveltyParams::default()
        };
        // A sharp peak (ratio 1 / (1.6 / 7) ≈ 4.4) and a small one (ratio 0.12 / (0.72 / 7) ≈ 1.17).
        let mut nov = vec![0.1; 30];
        nov[4] = 1.0;
        nov[20] = 0.12;
        let b = pick_boundaries(&nov, &params);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].time_s, 4.0);
        assert_eq!(b[0].novelty, 1.0);
        assert!(b[0].ratio > 1.35);
        // A lower threshold lets the small peak through too.
        let low = NoveltyParams {
            peak_threshold: 1.1,
            ..params
        };
        let times: Vec<f64> = pick_boundaries(&nov, &low)
            .iter()
            .map(|b| b.time_s)
            .collect();
        assert_eq!(times, vec![4.0, 20.0]);
        // A novelty floor above the small peak removes it again.
        let floor = NoveltyParams {
            min_novelty: 0.2,
            ..low
        };
        assert_eq!(pick_boundaries(&nov, &floor).len(), 1);
    }
}
