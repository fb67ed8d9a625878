//! The real Fluent Bit as a receiver: one of its inputs on 127.0.0.1 (chunks on the
//! filesystem, so a SIGKILL loses nothing it accepted) and its `file` output (`Format plain`:
//! one JSON object per line) that the tests count.

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::util::wait_until;

/// A Fluent Bit process started from a classic config; killed when dropped.
pub struct FluentBitReceiver {
    child: Child,
    log: PathBuf,
}

/// What a [`FluentBitReceiver`] runs.
pub struct Receiver<'a> {
    /// Names its config and log files (`<dir>/<label>.conf`, `<dir>/<label>.log`).
    pub label: &'a str,
    /// Where the config, the log and the output file go.
    pub dir: &'a Path,
    /// Extra `[SERVICE]` lines (`    Key value\n` each), such as `Parsers_File`.
    pub service: &'a str,
    /// The `[INPUT]` lines (`    Key value\n` each, `Name` and `Port` among them);
    /// `storage.type filesystem` is added.
    pub input: &'a str,
    /// Where its chunks are kept (`storage.path`): the same after a restart.
    pub storage: &'a Path,
    /// The output file, under `dir`.
    pub file: &'a str,
    /// The port it listens on (UDP when the input says `Mode udp`).
    pub port: u16,
}

impl FluentBitReceiver {
    /// Starts `bin` with `r` and waits (10 s at most) until it listens.
    ///
    /// # Panics
    /// When it cannot be started or does not listen.
    pub fn start(bin: &Path, r: &Receiver<'_>) -> FluentBitReceiver {
        let conf = format!(
            "[SERVICE]\n    Flush 0.2\n    Grace 1\n    Log_Level info\n{}    storage.path {}\n    storage.sync normal\n\
             [INPUT]\n{}    storage.type filesystem\n\
             [OUTPUT]\n    Name file\n    Match *\n    Path {}\n    File {}\n    Format plain\n    Retry_Limit False\n",
            r.service,
            r.storage.display(),
            r.input,
            r.dir.display(),
            r.file
        );
        let conf_path = r.dir.join(format!("{}.conf", r.label));
        std::fs::write(&conf_path, conf).expect("write the Fluent Bit config");
        let log = r.dir.join(format!("{}.log", r.label));
        let out = std::fs::File::create(&log).expect("create the Fluent Bit log");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone a file handle"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let fb = FluentBitReceiver { child, log };
        let (port, udp) = (r.port, r.input.contains("Mode udp"));
        let listening = wait_until(Duration::from_secs(10), || {
            if udp {
                // Bound when our bind of the same port fails.
                UdpSocket::bind(("127.0.0.1", port)).is_err()
            } else {
                fb.log().contains(&format!("listening on 127.0.0.1:{port}"))
                    || TcpStream::connect(("127.0.0.1", port)).is_ok()
            }
        });
        assert!(
            listening,
            "Fluent Bit does not listen on {port}:\n{}",
            fb.log()
        );
        fb
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL; returns its log.
    pub fn kill9(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log()
    }

    /// SIGTERM, then waits (20 s at most, then SIGKILL) for the exit; returns its log.
    pub fn stop(mut self) -> String {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        if !wait_until(Duration::from_secs(20), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        }) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.log()
    }
}

impl Drop for FluentBitReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The records of Fluent Bit's `file` output at `path` (`Format plain`: one JSON object per
/// line; a line cut by a kill is skipped).
pub fn records(path: &Path) -> Vec<Value> {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default())
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A free TCP port on 127.0.0.1.
///
/// # Panics
/// When none can be bound.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A CA and a server certificate for `localhost` / 127.0.0.1 (signed by it), as PEM files in
/// `dir`: returns the paths of the CA, the certificate and its key (`ca.pem`, `server.pem`,
/// `server.key`).
///
/// # Panics
/// When the certificates cannot be made or written.
pub fn make_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "e2e test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().expect("a CA key");
    let ca = ca_params.self_signed(&ca_key).expect("the CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().expect("a server key");
    let cert = params
        .signed_by(&key, &issuer)
        .expect("the server certificate");
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca.pem()).expect("write ca.pem");
    std::fs::write(&paths.1, cert.pem()).expect("write server.pem");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write server.key");
    paths
}
