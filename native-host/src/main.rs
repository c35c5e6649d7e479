//! The `mailmesh` binary: parse the command line, then hand over to the
//! library. Everything with logic lives in `mailmesh_host`.

fn main() -> std::process::ExitCode {
    mailmesh_host::cli::main()
}
