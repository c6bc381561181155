//! The `qaqpa` command: `serve`, `sandbox`, `check-config` and the operator commands.
fn main() -> std::process::ExitCode {
    qaqpa::cli::main()
}
