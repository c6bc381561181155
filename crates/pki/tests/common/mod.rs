//! Shared helpers for the integration tests: where the public NCA material is, how to run
//! external tools (failing loudly when they are absent), and scratch directories.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// ../shared/specs relative to the project root (the public copies of NCA's test material).
pub fn specs() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/specs");
    assert!(
        p.join("nca").is_dir(),
        "the public NCA test material is missing: expected {} (see ../shared/specs/FACTS.md)",
        p.display()
    );
    p
}

pub fn nca(rel: &str) -> PathBuf {
    specs().join("nca").join(rel)
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The 12 NCA test keystores (password Qwerty12).
pub fn nca_keystores() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for state in ["valid", "revoked"] {
        out.push((
            format!("individual/{state}"),
            nca(&format!(
                "ncanode-go/individual/{state}/individual_{state}.p12"
            )),
        ));
        for k in [
            "employee",
            "employee_signright",
            "head",
            "infosystem",
            "treasury_client",
        ] {
            out.push((
                format!("legal/{state}/{k}"),
                nca(&format!("ncanode-go/legal/{state}/{k}.p12")),
            ));
        }
    }
    out
}

pub const NCA_PASSWORD: &str = "Qwerty12";

/// A fresh scratch directory under the target dir.
pub fn scratch(name: &str) -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = base.join(format!("pki-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// Runs `openssl` with `args`; panics with a clear message if it is not installed.
pub fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("`openssl` is required for this test (Debian package openssl): {e}")
        })
}

pub fn openssl_ok(args: &[&str]) -> String {
    let out = openssl(args);
    assert!(
        out.status.success(),
        "openssl {:?} failed: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An RSA CA and a signer certificate made by OpenSSL in `dir`: (ca.pem, key.pem, cert.pem,
/// signer.p12 with password "pw").
pub fn openssl_rsa_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n);
    let s = |pb: &PathBuf| pb.to_str().unwrap_or("").to_string();
    let (ca_key, ca, key, csr, cert, p12, ext) = (
        p("ca.key"),
        p("ca.pem"),
        p("key.pem"),
        p("req.csr"),
        p("cert.pem"),
        p("signer.p12"),
        p("ext.cnf"),
    );
    openssl_ok(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &s(&ca_key),
        "-out",
        &s(&ca),
        "-days",
        "3650",
        "-subj",
        "/C=KZ/CN=Test RSA CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl_ok(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &s(&key),
        "-out",
        &s(&csr),
        "-subj",
        "/C=KZ/CN=ТЕСТОВ ТЕСТ/serialNumber=IIN123456789011/O=АО ТЕСТ/OU=BIN123456789021",
        "-utf8",
    ]);
    std::fs::write(
        &ext,
        "keyUsage=critical,digitalSignature,nonRepudiation\nextendedKeyUsage=emailProtection,1.2.398.3.3.4.1.2,1.2.398.3.3.4.1.2.1\n",
    )
    .expect("write ext");
    openssl_ok(&[
        "x509",
        "-req",
        "-in",
        &s(&csr),
        "-CA",
        &s(&ca),
        "-CAkey",
        &s(&ca_key),
        "-CAcreateserial",
        "-out",
        &s(&cert),
        "-days",
        "365",
        "-extfile",
        &s(&ext),
    ]);
    openssl_ok(&[
        "pkcs12",
        "-export",
        "-inkey",
        &s(&key),
        "-in",
        &s(&cert),
        "-certfile",
        &s(&ca),
        "-out",
        &s(&p12),
        "-passout",
        "pass:pw",
    ]);
    (ca, key, cert, p12)
}

pub fn path_str(p: &Path) -> String {
    p.to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 path {}", p.display()))
        .to_string()
}

/// Issues a certificate from the CA made by `openssl_rsa_pki` in `dir`: returns (key, cert).
pub fn openssl_issue(dir: &Path, name: &str, subj: &str, ext: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let cert = dir.join(format!("{name}.pem"));
    let extf = dir.join(format!("{name}.ext"));
    std::fs::write(&extf, ext).expect("write ext");
    openssl_ok(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &path_str(&key),
        "-out",
        &path_str(&csr),
        "-subj",
        subj,
    ]);
    openssl_ok(&[
        "x509",
        "-req",
        "-in",
        &path_str(&csr),
        "-CA",
        &path_str(&dir.join("ca.pem")),
        "-CAkey",
        &path_str(&dir.join("ca.key")),
        "-CAcreateserial",
        "-out",
        &path_str(&cert),
        "-days",
        "365",
        "-extfile",
        &path_str(&extf),
    ]);
    (key, cert)
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Waits (bounded) until something accepts connections on `port`.
pub fn wait_listening(port: u16) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("nothing listens on 127.0.0.1:{port} after 5 s");
}

/// A child process killed on drop.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
