//! The built `hearth serve` binary as a child process on 127.0.0.1:0, for tests that kill
//! it (SIGKILL) or watch its children.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Serve {
    pub child: Child,
    pub base: String,
}

impl Serve {
    pub fn start(data: &Path) -> Serve {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
        // The server reads every HEARTH_* variable as config and refuses unknown ones, such
        // as this test's own HEARTH_CRASH_SERVE_SEEDS.
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("HEARTH_")) {
            cmd.env_remove(k);
        }
        let mut child = cmd
            .args(["serve", "--data"])
            .arg(data)
            .args(["--http", "127.0.0.1:0", "--https", "off"])
            .env("HEARTH_LOG", "warn,hearth=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hearth serve");
        let (tx, rx) = std::sync::mpsc::channel();
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if line.contains("ERROR") || line.contains("error:") {
                        let _ = tx.send(Err(line.clone()));
                    }
                    if line.contains("panicked") {
                        let _ = tx.send(Err(line.clone()));
                    }
                    if let Some(i) = line.find("listening on http://") {
                        let url = line[i + "listening on ".len()..]
                            .split_whitespace()
                            .next()
                            .unwrap_or("")
                            .to_owned();
                        let _ = tx.send(Ok(url));
                    }
                }
            });
        }
        let base = loop {
            match rx.recv_timeout(Duration::from_secs(120)) {
                Ok(Ok(url)) => break url,
                // Errors logged at start are reported if start-up then fails.
                Ok(Err(line)) => eprintln!("hearth serve: {line}"),
                Err(e) => {
                    let status = child.try_wait();
                    let _ = child.kill();
                    panic!("hearth serve did not start ({e:?}, exit status {status:?})");
                }
            }
        };
        assert_eq!(
            super::get(&format!("{base}/api/v1/health"), None).status,
            200
        );
        Serve { child, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
    }

    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().unwrap();
    }
}
