/// mimalloc instead of glibc's allocator: a request allocates and frees many small buffers
/// across threads (TLS records, JSON, SQL rows), where glibc's malloc was 6 % of the gateway's
/// time in the verify benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    alliance_gateway::cli::main()
}
