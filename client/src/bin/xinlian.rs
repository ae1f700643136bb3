fn main() -> std::process::ExitCode {
    xinlian_client::cli::main()
}
