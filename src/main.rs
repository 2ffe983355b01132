//! The `acaload` command: parse arguments, run, map the outcome to an exit code.

/// mimalloc: the hot path allocates small short-lived buffers per request, where glibc's
/// allocator cost about a fifth of the CPU in the benchmark (bench/PROFILE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    acaload::cli::main()
}
