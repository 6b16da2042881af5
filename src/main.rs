//! The `regfsck` binary: all logic lives in the library; this only hands over the exit status.

fn main() {
    std::process::exit(regfsck::cli::main());
}
