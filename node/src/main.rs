//! `xinlian-node`: run a consortium node, start a local consortium, or check a store.

fn main() -> std::process::ExitCode {
    xinlian_node::cli::main()
}
