//! The client CLI built from this checkout, for tests that drive it as a user would.
fn main() -> std::process::ExitCode {
    xinlian_cli::main()
}
