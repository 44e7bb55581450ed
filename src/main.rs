//! The `kumo` binary: parses arguments and hands over to the library.

/// A request builds and drops many small values (JSON maps, strings); with
/// mimalloc the server spent a fifth less CPU per list request than with
/// the system allocator (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    kumo::cli::main()
}
