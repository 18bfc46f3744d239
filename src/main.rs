//! `improvnet`: the command-line front door (`src/cli/`).
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
