//! `ledgerlink`: the command-line client (see `ledgerlink_client::cli`).

fn main() -> std::process::ExitCode {
    ledgerlink_client::cli::main()
}
