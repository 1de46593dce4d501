//! moto's server (PyPI `moto[server]`) on loopback, for tests of the
//! responders here and of the binary: a fresh server per test on a free
//! port, killed on drop. `TRAILHOUND_MOTO` names the `moto_server`
//! program; `scripts/test` installs it into the cache's virtual
//! environment and sets it.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server.
pub struct MotoServer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

/// Where `moto_server` is: `TRAILHOUND_MOTO`, else the cache's virtual environment.
pub fn moto_program() -> PathBuf {
    std::env::var_os("TRAILHOUND_MOTO")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            home.join(".cache/trailhound/venv/bin/moto_server")
        })
}

impl MotoServer {
    /// Starts one and waits (at most 60 s) until it listens.
    pub fn start() -> Result<Self, String> {
        let program = moto_program();
        if !program.exists() {
            return Err(format!(
                "moto_server not found at {}: run scripts/test (it installs moto[server]) \
                 or set TRAILHOUND_MOTO to a moto_server program",
                program.display()
            ));
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("no free port: {e}"))?;
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let mut server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("moto_server exited at start: {status}"));
            }
            if Instant::now() > deadline {
                return Err("moto_server did not listen within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Listening is not yet serving: wait for a first answer.
        while ureq::get(&format!("{}/moto-api/", server.url))
            .call()
            .is_err()
        {
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(server)
    }

    /// An IAM client configuration for this server (static test credentials).
    pub fn iam_conf(&self) -> aws_sdk_iam::Config {
        use aws_sdk_iam::config::{BehaviorVersion, Credentials, Region};
        aws_sdk_iam::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.url)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
            .retry_config(trailhound_aws::config::retry(3))
            .build()
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
