//! The `acaload` command: parse arguments, run, map the outcome to an exit code.

/// mimalloc: the hot path allocates small short-lived buffers per request, where glibc's
/// allocator cost about a fifth of the CPU in the benchmark (bench/PROFILE.md). Built
/// without transparent huge pages (`no_thp`): they put 2 MiB behind each of its first touches
/// of its arena, 12 of the 28 MB a one-user run held (bench/LEAN.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    acaload::cli::main()
}
