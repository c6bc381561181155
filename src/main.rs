//! The `qaqpa` command: `serve`, `sandbox`, `check-config` and the operator commands.

/// mimalloc instead of glibc's allocator: the request path allocates many small, short-lived
/// buffers (headers, JSON, SQL parameters), where glibc's malloc/free took a quarter of the
/// gateway's CPU under load (see docs/BENCHMARKS.md). Version 2 of mimalloc (the `v2` feature):
/// v3 was no faster here and held 110–125 MB while draining a backlog, v2 80–88 MB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    qaqpa::cli::main()
}
