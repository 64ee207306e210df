//! The proxy's own command line, built inside the end-to-end crate so its tests can run it as a real
//! process (and kill it with SIGKILL).

/// The same allocator as the shipped binary (`crates/proxy/src/main.rs`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    ledgerlink_proxy::cli::main()
}
