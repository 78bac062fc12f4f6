//! An independent DKIM verifier: Python's dkimpy (with PyNaCl for Ed25519), from PyPI into a
//! venv under the target directory, made once. Its DNS lookup is answered with the TXT record
//! given, so no DNS is needed.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use crate::support::binary::output_within;

/// Made by the first test that needs it; the lock keeps two tests from making it at once.
static VENV: Mutex<Option<PathBuf>> = Mutex::new(None);

const VERIFY: &str = r#"
import sys, dkim
message = open(sys.argv[1], "rb").read()
record = open(sys.argv[2], "rb").read().strip()
def dns(name, timeout=5):
    return record if name.rstrip(b".") == sys.argv[3].encode().rstrip(b".") else None
print("pass" if dkim.verify(message, dnsfunc=dns) else "fail")
"#;

fn python() -> PathBuf {
    let mut venv = VENV.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(python) = venv.as_ref() {
        return python.clone();
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dkimpy-venv");
    let python = dir.join("bin/python");
    let ready = python.exists()
        && output_within(Command::new(&python).args(["-c", "import dkim, nacl"]))
            .status
            .success();
    if !ready {
        let made = output_within(Command::new("python3").args(["-m", "venv"]).arg(&dir));
        assert!(
            made.status.success(),
            "python3 -m venv: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        let installed = output_within(Command::new(dir.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "dkimpy>=1.1,<2",
            "pynacl>=1.5,<2",
            "dnspython>=2,<3",
        ]));
        assert!(
            installed.status.success(),
            "pip install dkimpy: {}",
            String::from_utf8_lossy(&installed.stderr)
        );
    }
    *venv = Some(python.clone());
    python
}

/// Whether dkimpy finds a valid signature in `message`, the key being `record` published at
/// `name` (`selector._domainkey.domain.`).
pub fn verifies(message: &[u8], name: &str, record: &str) -> bool {
    let python = python();
    let dir = tempfile::tempdir().expect("temp dir");
    let eml = dir.path().join("message.eml");
    let txt = dir.path().join("record.txt");
    std::fs::write(&eml, message).expect("write message");
    std::fs::write(&txt, record).expect("write record");
    let output = output_within(
        Command::new(python)
            .args(["-c", VERIFY])
            .arg(&eml)
            .arg(&txt)
            .arg(name),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "dkimpy failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    match stdout.trim() {
        "pass" => true,
        "fail" => false,
        other => panic!("dkimpy said {other:?}"),
    }
}
