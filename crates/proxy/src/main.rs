//! `ledgerlink-proxy`: runs the comms proxy (see `ledgerlink_proxy::cli`).

/// jemalloc, for every allocation of the process (SQLite's too: the symbols are unprefixed), tuned in
/// `.cargo/config.toml` to give freed memory back within about a second. glibc's malloc kept the
/// peak of a burst of large pushes resident for good (docs/BENCHMARKS.md, "Proxy memory").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    ledgerlink_proxy::cli::main()
}
