//! Secrets from files: `CBH_DATABASE_URL_FILE` and `CBH_SMTP_URL_FILE` name a file holding the
//! value of their twin (the convention of systemd credentials and container secrets), so the
//! secret stays out of the environment that `ps e` and `/proc/PID/environ` show.

use std::ffi::OsString;

/// The value of `var` read from the file that `<var>_FILE` names, if that is set: the file's
/// content, less one trailing newline. Setting both `var` and `<var>_FILE` is an error, as is a
/// file that cannot be read or is not UTF-8.
pub fn secret_from_file(
    var: &str,
    lookup: impl Fn(&str) -> Option<OsString>,
) -> Result<Option<String>, String> {
    let file_var = format!("{var}_FILE");
    let Some(path) = lookup(&file_var) else {
        return Ok(None);
    };
    if lookup(var).is_some() {
        return Err(format!(
            "{var} and {file_var} are both set: set one of them"
        ));
    }
    let bytes = std::fs::read(&path)
        .map_err(|e| format!("{file_var}: cannot read {}: {e}", path.to_string_lossy()))?;
    let mut value = String::from_utf8(bytes)
        .map_err(|_| format!("{file_var}: {} is not UTF-8 text", path.to_string_lossy()))?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        return Err(format!("{file_var}: {} is empty", path.to_string_lossy()));
    }
    Ok(Some(value))
}
