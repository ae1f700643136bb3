//! `xinlian`: the client command line (see the crate's library for what it does).

fn main() -> std::process::ExitCode {
    xinlian_cli::main()
}
