fn main() -> std::process::ExitCode {
    alliance_gateway::cli::main()
}
