use std::process::ExitCode;

use cbh_invite::cli::{self, Cli, UsageError};

#[tokio::main]
async fn main() -> ExitCode {
    return_large_buffers_to_the_system();
    let cli = match Cli::parse_with_secret_files() {
        Ok(cli) => cli,
        Err(usage) => {
            eprintln!("error: {usage}");
            return ExitCode::from(2);
        }
    };
    cbh_invite::telemetry::init();
    match cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if let Some(usage) = error.downcast_ref::<UsageError>() {
                eprintln!("error: {usage}");
                ExitCode::from(2)
            } else if error.downcast_ref::<cli::TempFail>().is_some() {
                // `bounce`: the mail server that piped the report keeps it and tries again.
                eprintln!("error: {error:#}");
                ExitCode::from(cli::EX_TEMPFAIL)
            } else {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        }
    }
}

/// Each argon2 hash allocates and frees a 19 MiB buffer. glibc serves an allocation that large
/// with its own mmap, returned to the system on free, but after the first such free it raises
/// its threshold and serves the next ones from the heap of whichever thread asked, where freed
/// memory stays: logins on a few blocking threads left the server holding 100 MiB more
/// (BENCHMARKS.md). A fixed threshold keeps every large buffer in an mmap of its own.
fn return_large_buffers_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a tuning parameter of glibc's allocator.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
