//! Records the git commit the binary is built from, for `cbh-invite --version`, and lists the
//! message catalogs under `locales/` for `src/i18n/catalog.rs` to build in.
//!
//! Outside a git checkout of this repository (a source tarball, a vendored copy inside another
//! repository) the commit is "unknown" rather than someone else's.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let commit = git(&manifest_dir, &["rev-parse", "--show-toplevel"])
        .filter(|top| same_dir(Path::new(top), &manifest_dir))
        .and_then(|_| git(&manifest_dir, &["rev-parse", "--short", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=CBH_GIT_COMMIT={commit}");

    // Rerun when HEAD moves: HEAD itself (a checkout), the branch it points to (a commit) and
    // packed-refs (a gc). In a worktree these live in different folders, which git names.
    // Only files that exist are watched: cargo reruns a script whose watched file is missing
    // every time, which would rebuild the crate on every build.
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(&manifest_dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(&manifest_dir, &["rev-parse", "--git-path", &name]) {
            let path = manifest_dir.join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
    write_catalog_list(&manifest_dir);
}

/// `$OUT_DIR/catalogs.rs`: `&[(language, file name, contents)]` for every `locales/{lang}/*.ftl`,
/// sorted, so that a catalog file is built in by adding it (no list to keep by hand).
fn write_catalog_list(manifest_dir: &Path) {
    let locales = manifest_dir.join("locales");
    // A directory is watched whole: a new, changed or removed file reruns the script.
    println!("cargo:rerun-if-changed={}", locales.display());
    let mut files = Vec::new();
    for dir in std::fs::read_dir(&locales)
        .expect("locales/ exists")
        .flatten()
    {
        let Ok(lang) = dir.file_name().into_string() else {
            continue;
        };
        if !dir.path().is_dir() {
            continue;
        }
        for file in std::fs::read_dir(dir.path()).expect("readable").flatten() {
            let Ok(name) = file.file_name().into_string() else {
                continue;
            };
            if name.ends_with(".ftl") {
                files.push((lang.clone(), name, file.path()));
            }
        }
    }
    files.sort();
    let mut out = String::from("&[\n");
    for (lang, name, path) in files {
        out.push_str(&format!(
            "    ({lang:?}, {name:?}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    out.push_str("]\n");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set"));
    std::fs::write(out_dir.join("catalogs.rs"), out).expect("writing catalogs.rs");
}

/// The trimmed output of a git command that succeeded, or None (no git, not a checkout).
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
