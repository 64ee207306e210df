//! `ledgerlink-proxy`: runs the comms proxy (see `ledgerlink_proxy::cli`).

fn main() -> anyhow::Result<()> {
    ledgerlink_proxy::cli::main()
}
