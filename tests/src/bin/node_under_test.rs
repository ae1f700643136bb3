//! Exactly `xinlian-node`'s main, built inside this package for its tests.

fn main() -> std::process::ExitCode {
    xinlian_node::cli::main()
}
