//! The reachability check the owner runs: the device asks for a one-time address through
//! its own public address (the router's external address and the mapped port, from inside
//! the home: "hairpin") and sees whether the request comes back to itself.
//!
//! The request carries a fresh random token that only this device knows and answers, so a
//! 200 with the token proves the path ends here, whatever certificate is on the way (the
//! check sends nothing secret, so it does not verify the certificate).

use std::io::Read;
use std::time::Duration;

use serde::Serialize;

use super::{PortMode, Reach};

/// Longest probe answer read.
const MAX_ANSWER: u64 = 4096;

/// The verdict, for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A request through the public address reached this device.
    Reachable,
    /// The router has the mapping, but does not loop connections from inside back to the
    /// home (no hairpin NAT): this check cannot tell; friends outside may well get in.
    Unconfirmed,
    /// Friends outside cannot reach the device: see the message.
    NotReachable,
    /// Remote access is off.
    Off,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CheckResult {
    pub verdict: Verdict,
    /// The verdict in plain words, with what to do.
    pub message: String,
    /// The address tried, if any.
    pub url: Option<String>,
    /// Unix seconds.
    pub at: u64,
}

impl Reach {
    /// The token the probe route answers to now, if a check is running.
    pub fn probe_matches(&self, token: &str) -> bool {
        let current = self
            .inner
            .probe
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match current {
            // Length first (not secret: always 32), then every byte, so timing tells nothing.
            Some(t) => {
                t.len() == token.len()
                    && t.bytes()
                        .zip(token.bytes())
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                        == 0
            }
            None => false,
        }
    }

    /// Runs the check and keeps its result for the Network page. Blocks (a few seconds at
    /// most): call it off the async runtime.
    pub fn check(&self, remote_access: bool) -> CheckResult {
        let result = self.check_inner(remote_access);
        *self
            .inner
            .last_check
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(result.clone());
        result
    }

    fn check_inner(&self, remote_access: bool) -> CheckResult {
        let at = crate::model::clock::now_secs();
        let done = |verdict, message: String, url: Option<String>| CheckResult {
            verdict,
            message,
            url,
            at,
        };
        let view = self.view(remote_access);
        if !remote_access {
            return done(
                Verdict::Off,
                "Remote access is off, so nobody outside the home can connect. Turn it on first."
                    .into(),
                None,
            );
        }
        let Some(url) = view.public_url.clone() else {
            let why = view
                .not_reachable_because
                .unwrap_or_else(|| "The device has no public address.".into());
            let warnings: Vec<String> = view.warnings.iter().map(|w| w.message.clone()).collect();
            return done(
                Verdict::NotReachable,
                format!(
                    "Friends outside cannot reach this server. {why} {}",
                    warnings.join(" ")
                )
                .trim()
                .to_owned(),
                None,
            );
        };
        // Through the router's own external address only: never a DNS lookup, never a
        // host beyond the router.
        let (Some(ext), Some(port), Some(scheme)) = (
            view.mapping
                .external_address
                .filter(|a| super::public_address(*a)),
            view.public_port,
            view.internal_scheme,
        ) else {
            return done(
                Verdict::Unconfirmed,
                format!(
                    "The device does not know the router's internet address, so it cannot check from inside the home. Ask someone outside to open {url}."
                ),
                Some(url),
            );
        };
        let target = match ext {
            std::net::IpAddr::V6(a) => format!("{scheme}://[{a}]:{port}"),
            std::net::IpAddr::V4(a) => format!("{scheme}://{a}:{port}"),
        };
        let token = random_token();
        *self.inner.probe.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
        let probe = format!("{target}/api/v1/reach/probe/{token}");
        let answered = ask(&probe);
        *self.inner.probe.lock().unwrap_or_else(|e| e.into_inner()) = None;
        match answered {
            Ok(true) => done(
                Verdict::Reachable,
                format!(
                    "Reachable from outside: a request to {url} came back to this server. Friends can use this address."
                ),
                Some(url),
            ),
            Ok(false) => done(
                Verdict::NotReachable,
                format!(
                    "{url} answers, but it is not this server: the router sends that port to another device. Check the port forward on the router."
                ),
                Some(url),
            ),
            Err(why)
                if view.settings.port_mode == PortMode::Automatic
                    && view.mapping.phase == super::mapper::Phase::Mapped =>
            {
                done(
                    Verdict::Unconfirmed,
                    format!(
                        "The router has opened port {} for this server, but it does not loop connections from inside the home back ({why}), so this check cannot confirm it. Many routers behave this way and still let friends in: ask someone outside to open {url}.",
                        view.public_port.unwrap_or_default()
                    ),
                    Some(url),
                )
            }
            Err(why) => done(
                Verdict::NotReachable,
                format!(
                    "{url} could not be reached from here ({why}). Check the port forward on the router, or ask someone outside to try it."
                ),
                Some(url),
            ),
        }
    }
}

/// 128 random bits, hex.
fn random_token() -> String {
    let mut b = [0u8; 16];
    // The system RNG does not fail on Linux once booted; a zero token would only make the
    // check answer "not this server".
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    hex::encode(b)
}

/// Whether `url` answers 200 with this device's probe answer. `Err` when nothing answered.
fn ask(url: &str) -> Result<bool, String> {
    let tls = ureq::tls::TlsConfig::builder()
        .disable_verification(true)
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(4)))
        .max_redirects(0)
        .build()
        .into();
    let resp = agent.get(url).call().map_err(|e| e.to_string())?;
    if resp.status() != 200 {
        return Ok(false);
    }
    let mut text = String::new();
    resp.into_body()
        .into_reader()
        .take(MAX_ANSWER)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    Ok(text.contains(PROBE_ANSWER))
}

/// What the probe route answers when the token matches.
pub const PROBE_ANSWER: &str = "hearth-reach-probe-ok";
