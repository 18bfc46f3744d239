//! `improvnet`: the command-line front door (`src/cli/`).
mod cli;

fn main() -> std::process::ExitCode {
    keep_big_allocations();
    cli::main()
}

/// glibc serves every allocation above a (dynamic) threshold from `mmap` and unmaps it on free,
/// so the large tensors a training step (or an encoder run) makes and drops fault in freshly
/// zeroed pages each time: 10–15 % of a training step was spent in the kernel. No `mmap` at all
/// and no trimming keep them in the heap for reuse (a fixed 32 MB threshold, glibc's ceiling,
/// still left the base model's attention tensors, 44 MB a layer, to `mmap`): a small-model training
/// step took 16 % less time, a base one 13–22 % less, for 2–6 % more peak memory
/// (docs/speed.md). The plugin leaves its host's allocator alone.
fn keep_big_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::ffi::c_int;
        extern "C" {
            fn mallopt(param: c_int, value: c_int) -> c_int;
        }
        const M_TRIM_THRESHOLD: c_int = -1;
        const M_MMAP_MAX: c_int = -4;
        // SAFETY: glibc's mallopt, called before any thread starts; a refused value (0) leaves
        // glibc's default in place.
        unsafe {
            mallopt(M_TRIM_THRESHOLD, c_int::MAX);
            mallopt(M_MMAP_MAX, 0);
        }
    }
}
