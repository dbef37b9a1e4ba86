//! The `pinpipe` binary.

fn main() {
    std::process::exit(pinpipe_cli::main_with(std::env::args_os()));
}
