//! The proxy's own command line, built inside the end-to-end crate so its tests can run it as a real
//! process (and kill it with SIGKILL).

fn main() -> anyhow::Result<()> {
    ledgerlink_proxy::cli::main()
}
