//! The `ledgerlink` CLI, built inside the end-to-end crate so its tests can run it as a process.

fn main() -> std::process::ExitCode {
    ledgerlink_client::cli::main()
}
