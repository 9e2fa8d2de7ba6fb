//! Security-sensitive: the device's TLS identity. It guards the private keys under
//! `<data>/tls/` (files 0600), the device CA that may only vouch for this device's own names
//! (X.509 name constraints), the leaf certificate served to clients, and the checks on an
//! owner-uploaded certificate.
//!
//! The CA is made once (ECDSA P-256) and kept; the leaf is re-issued before it expires and
//! whenever the device's names or addresses change, and swapped into the running listener
//! through [`CertResolver`]: new handshakes get the new certificate, open connections keep
//! theirs.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, KeyPair, KeyUsagePurpose, NameConstraints,
    SanType,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::Serialize;

use super::client::{InterfaceAddr, IpNet, LanNetworks};

/// Lifetime of a leaf certificate. Short, since renewal is automatic and offline.
const LEAF_DAYS: i64 = 90;
/// A leaf with less than this left is re-issued.
const LEAF_RENEW_DAYS: i64 = 30;
/// Lifetime of the device CA: the household trusts it once, so it lasts.
const CA_DAYS: i64 = 3650;
/// A CA with less than this left is replaced (the household has to trust the new one).
const CA_RENEW_DAYS: i64 = 180;
/// Certificates are back-dated this much so a device clock slightly behind still accepts
/// a fresh one.
const BACKDATE_SECS: i64 = 3600;
const DAY: i64 = 86_400;
/// Largest PEM accepted for an uploaded chain or key.
pub const MAX_PEM_BYTES: usize = 64 * 1024;
/// Most certificates in an uploaded chain.
const MAX_CHAIN: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot use the certificate directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make a certificate: {0}")]
    Generate(String),
    #[error(
        "the stored certificate {0} is damaged; delete it and restart hearth to make a new one"
    )]
    Damaged(PathBuf),
    /// The owner's upload was refused; the message says why and what to do.
    #[error("{0}")]
    Rejected(String),
    #[error("TLS set-up failed: {0}")]
    Rustls(#[from] rustls::Error),
}

impl From<rcgen::Error> for TlsError {
    fn from(e: rcgen::Error) -> Self {
        TlsError::Generate(e.to_string())
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What the device is called and where it can be reached: what the leaf must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNames {
    /// A valid lowercase DNS name (the system hostname, or `hearth` if that is unusable).
    pub hostname: String,
    /// The device's own interface addresses (loopback excluded).
    pub interfaces: Vec<InterfaceAddr>,
}

impl DeviceNames {
    /// The names as the system reports them now.
    pub fn detect() -> DeviceNames {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        DeviceNames::new(&host, LanNetworks::interface_addrs())
    }

    pub fn new(hostname: &str, interfaces: Vec<InterfaceAddr>) -> DeviceNames {
        let h = hostname.trim().trim_end_matches('.').to_ascii_lowercase();
        let valid = !h.is_empty()
            && h.len() <= 253
            && h.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            && h != "localhost";
        DeviceNames {
            hostname: if valid { h } else { "hearth".into() },
            interfaces,
        }
    }

    /// `hostname`, `<first label>.local`, `localhost`.
    pub fn dns_names(&self) -> Vec<String> {
        let label = self.hostname.split('.').next().unwrap_or("hearth");
        let mut names = vec![self.hostname.clone()];
        for n in [format!("{label}.local"), "localhost".to_owned()] {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        names
    }

    /// Addresses the leaf names: loopback plus every interface address that is stable
    /// enough to certify (see [`certifiable`]).
    pub fn leaf_ips(&self) -> Vec<IpAddr> {
        let mut set = BTreeSet::new();
        set.insert(IpAddr::V4(Ipv4Addr::LOCALHOST));
        set.insert(IpAddr::V6(Ipv6Addr::LOCALHOST));
        for i in &self.interfaces {
            if certifiable(i.addr) {
                set.insert(i.addr);
            }
        }
        set.into_iter().collect()
    }

    /// The address ranges the CA may vouch for: loopback and the subnets the device's own
    /// addresses sit in.
    pub fn ca_ip_ranges(&self) -> Vec<IpNet> {
        let mut nets = vec![
            IpNet {
                addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
                prefix: 8,
            },
            IpNet {
                addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
                prefix: 128,
            },
        ];
        for i in &self.interfaces {
            if !certifiable(i.addr) {
                continue;
            }
            if let Some(n) = IpNet::new(i.addr, i.prefix).map(|n| n.network())
                && !nets.contains(&n)
            {
                nets.push(n);
            }
        }
        nets
    }
}

/// Whether an interface address belongs in the certificate: IPv4 and IPv6 ULA (fc00::/7)
/// yes. IPv6 link-local no (it needs a zone, which no URL or certificate can carry), and
/// global IPv6 no: providers rotate those prefixes (often daily) and privacy addresses change
/// hourly, which would mean a new leaf (and a new CA for the household to trust) each time.
fn certifiable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(_) => true,
        IpAddr::V6(v6) => v6.is_unique_local(),
    }
}

/// Where a served certificate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CertSource {
    /// Issued by this device's own CA.
    Device,
    /// Uploaded by the owner.
    Custom,
}

/// What a person needs to know about a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CertInfo {
    pub source: CertSource,
    pub subject: String,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<String>,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// SHA-256 of the certificate (DER), lowercase hex with colons.
    pub fingerprint_sha256: String,
    /// Where clients may fetch the issuer's revocation list.
    pub crl_urls: Vec<String>,
}

/// The certificate and key new handshakes get; swapped atomically.
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    fn new(key: Arc<CertifiedKey>) -> CertResolver {
        CertResolver {
            current: RwLock::new(key),
        }
    }

    fn swap(&self, key: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = key;
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        // Poisoning only means a writer panicked between two whole-Arc assignments.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A certificate chain with its key, ready to serve.
struct Served {
    info: CertInfo,
    key: Arc<CertifiedKey>,
}

struct DeviceCa {
    pem: String,
    key: KeyPair,
    /// Parsed back from `pem`: the issuer rcgen signs leaves with.
    issuer: rcgen::Certificate,
    dns: Vec<String>,
    ips: Vec<IpNet>,
    not_after: i64,
    fingerprint: String,
}

impl DeviceCa {
    fn covers(&self, names: &DeviceNames) -> bool {
        names.dns_names().iter().all(|n| {
            self.dns
                .iter()
                .any(|c| n == c || n.ends_with(&format!(".{c}")))
        }) && names
            .leaf_ips()
            .iter()
            .all(|ip| self.ips.iter().any(|n| n.contains(*ip)))
    }
}

struct Inner {
    ca: DeviceCa,
    leaf: Served,
    leaf_names: (Vec<String>, Vec<IpAddr>),
    custom: Option<Served>,
    /// Leaves this CA issued and then replaced; listed in the CRL until they expire.
    revoked: Vec<Revoked>,
    /// The last CRL made, with when it was made; cleared when `revoked` changes.
    crl: Option<(i64, Vec<u8>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
struct Revoked {
    serial_hex: String,
    revoked_at: i64,
    not_after: i64,
}

/// Most superseded leaves remembered in the CRL.
const MAX_REVOKED: usize = 256;
/// A CRL is re-signed after this long, and says the next one comes within [`CRL_NEXT`].
const CRL_REFRESH: i64 = 3600;
const CRL_NEXT: i64 = 7 * DAY;

/// The URL of the device's CRL, written into each leaf it issues: plain HTTP on the
/// device's `.local` name (a CRL is signed, and fetching it over HTTPS would be circular).
fn crl_url(names: &DeviceNames, http_port: Option<u16>) -> Option<String> {
    let port = http_port?;
    let label = names.hostname.split('.').next().unwrap_or("hearth");
    Some(if port == 80 {
        format!("http://{label}.local/api/v1/tls/crl")
    } else {
        format!("http://{label}.local:{port}/api/v1/tls/crl")
    })
}

/// The device's certificates and the resolver the HTTPS listener uses.
pub struct TlsManager {
    dir: PathBuf,
    /// The HTTP port the CRL is served on, if any (goes into each leaf's CRL URL).
    http_port: Option<u16>,
    provider: Arc<CryptoProvider>,
    resolver: Arc<CertResolver>,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for TlsManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsManager")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The crypto used for every handshake: ring, with rustls's default suites (TLS 1.3 AEADs
/// and TLS 1.2 ECDHE with AES-GCM or ChaCha20-Poly1305 only) and key exchanges.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server side of TLS: 1.2 and 1.3 only, HTTP/1.1, certificates from `resolver`.
pub fn server_config(resolver: Arc<CertResolver>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Our suite order (AES-256-GCM, AES-128-GCM, ChaCha20) wins over a client's preference,
    // so an old client that lists weaker choices first still gets the strongest shared one.
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

impl TlsManager {
    /// Opens `<data>/tls`, creating the CA and a leaf on first start; re-issues whatever is
    /// missing, damaged, expiring or no longer matching `names`. Blocks (files, key
    /// generation): call from a blocking thread.
    pub fn open(dir: &Path, names: &DeviceNames, now: i64) -> Result<TlsManager, TlsError> {
        Self::open_with(dir, names, None, now)
    }

    /// Like [`TlsManager::open`], with leaves that name a CRL served on `http_port`.
    pub fn open_with(
        dir: &Path,
        names: &DeviceNames,
        http_port: Option<u16>,
        now: i64,
    ) -> Result<TlsManager, TlsError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err(dir))?;
        let provider = provider();
        let ca = match load_ca(dir)? {
            Some(ca) if ca.covers(names) && ca.not_after - now > CA_RENEW_DAYS * DAY => ca,
            old => {
                if old.is_some() {
                    tracing::warn!(
                        "the device CA no longer covers this device's names or is about to expire; making a new one (devices that trusted the old CA must download the new one)"
                    );
                }
                new_ca(dir, names, now)?
            }
        };
        let url = crl_url(names, http_port);
        let mut revoked = load_revoked(dir, &ca);
        let leaf = match load_served(&provider, dir, "leaf", CertSource::Device)? {
            Some(leaf)
                if leaf_matches(&leaf.info, names, url.as_deref())
                    && leaf.info.not_after - now > LEAF_RENEW_DAYS * DAY
                    && issued_by(&leaf.key, &ca) =>
            {
                leaf
            }
            old => {
                if let Some(old) = old
                    && issued_by(&old.key, &ca)
                {
                    revoke(&mut revoked, &old, now);
                    save_revoked(dir, &ca, &revoked)?;
                }
                new_leaf(&provider, dir, &ca, names, url.as_deref(), now)?
            }
        };
        let custom = load_served(&provider, dir, "custom", CertSource::Custom)?;
        let active = custom.as_ref().unwrap_or(&leaf).key.clone();
        Ok(TlsManager {
            dir: dir.to_owned(),
            http_port,
            resolver: Arc::new(CertResolver::new(active)),
            provider,
            inner: Mutex::new(Inner {
                ca,
                leaf,
                leaf_names: (names.dns_names(), names.leaf_ips()),
                custom,
                revoked,
                crl: None,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-replaced certificate: fields are
        // only ever replaced whole after their files are written.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn resolver(&self) -> Arc<CertResolver> {
        self.resolver.clone()
    }

    /// Re-issues the leaf (and the CA if it cannot cover the new names) when the names or
    /// addresses changed or the leaf is close to expiry. Returns whether anything changed.
    /// Blocks.
    pub fn refresh(&self, names: &DeviceNames, now: i64) -> Result<bool, TlsError> {
        let mut inner = self.lock();
        let wanted = (names.dns_names(), names.leaf_ips());
        let ca_ok = inner.ca.covers(names) && inner.ca.not_after - now > CA_RENEW_DAYS * DAY;
        if ca_ok
            && inner.leaf_names == wanted
            && inner.leaf.info.not_after - now > LEAF_RENEW_DAYS * DAY
        {
            return Ok(false);
        }
        if !ca_ok {
            tracing::warn!(
                "the device CA does not cover this device's names any more or is about to expire; making a new one (devices that trusted the old CA must download the new one)"
            );
            inner.ca = new_ca(&self.dir, names, now)?;
            inner.revoked.clear();
        } else {
            // The replaced leaf goes on the CRL: it names addresses the device may no longer
            // have, so nobody should accept it from anyone else.
            let inner = &mut *inner;
            revoke(&mut inner.revoked, &inner.leaf, now);
        }
        save_revoked(&self.dir, &inner.ca, &inner.revoked)?;
        inner.crl = None;
        let url = crl_url(names, self.http_port);
        inner.leaf = new_leaf(
            &self.provider,
            &self.dir,
            &inner.ca,
            names,
            url.as_deref(),
            now,
        )?;
        inner.leaf_names = wanted;
        tracing::info!(
            names = ?inner.leaf.info.dns_names,
            addresses = ?inner.leaf.info.ip_addresses,
            "issued a new device certificate"
        );
        if inner.custom.is_none() {
            self.resolver.swap(inner.leaf.key.clone());
        }
        Ok(true)
    }

    /// Checks and installs the owner's own certificate chain (leaf first) and key, used
    /// instead of the device certificate until removed. Nothing changes if it is refused.
    /// Blocks.
    pub fn set_custom(
        &self,
        _owner: &crate::policy::OwnerProof,
        chain_pem: &str,
        key_pem: &str,
        now: i64,
    ) -> Result<CertInfo, TlsError> {
        let served = check_custom(&self.provider, chain_pem, key_pem, now)?;
        let mut inner = self.lock();
        write_file(&self.dir.join("custom.key"), key_pem.as_bytes(), 0o600)?;
        write_file(&self.dir.join("custom.pem"), chain_pem.as_bytes(), 0o644)?;
        self.resolver.swap(served.key.clone());
        let info = served.info.clone();
        inner.custom = Some(served);
        Ok(info)
    }

    /// Goes back to the device certificate. Blocks.
    pub fn remove_custom(&self, _owner: &crate::policy::OwnerProof) -> Result<(), TlsError> {
        let mut inner = self.lock();
        for f in ["custom.pem", "custom.key"] {
            let p = self.dir.join(f);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&p)(e)),
            }
        }
        inner.custom = None;
        self.resolver.swap(inner.leaf.key.clone());
        Ok(())
    }

    /// The certificate new connections get.
    pub fn active(&self) -> CertInfo {
        let inner = self.lock();
        inner.custom.as_ref().unwrap_or(&inner.leaf).info.clone()
    }

    /// The device CA in PEM, for the household to trust once.
    pub fn ca_pem(&self) -> String {
        self.lock().ca.pem.clone()
    }

    /// The device CA's certificate revocation list (DER): the leaves it issued and then
    /// replaced. Re-signed at most hourly. Blocks briefly (one signature).
    pub fn crl_der(&self, now: i64) -> Result<Vec<u8>, TlsError> {
        let mut inner = self.lock();
        if let Some((made, der)) = &inner.crl
            && now - made < CRL_REFRESH
            && now >= *made
        {
            return Ok(der.clone());
        }
        let revoked_certs = inner
            .revoked
            .iter()
            .filter(|r| r.not_after > now)
            .filter_map(|r| {
                Some(rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from_slice(
                        &hex::decode(&r.serial_hex).ok()?,
                    ),
                    revocation_time: offset(r.revoked_at).ok()?,
                    reason_code: Some(rcgen::RevocationReason::Superseded),
                    invalidity_date: None,
                })
            })
            .collect();
        let params = rcgen::CertificateRevocationListParams {
            this_update: offset(now - BACKDATE_SECS)?,
            next_update: offset(now + CRL_NEXT)?,
            // Seconds only move forward, so each CRL's number is larger than the last.
            crl_number: rcgen::SerialNumber::from(now.max(1) as u64),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: inner.ca.issuer.params().key_identifier_method.clone(),
        };
        let der = params
            .signed_by(&inner.ca.issuer, &inner.ca.key)?
            .der()
            .to_vec();
        inner.crl = Some((now, der.clone()));
        Ok(der)
    }

    /// The device CA's SHA-256 fingerprint and expiry (unix seconds).
    pub fn ca_summary(&self) -> (String, i64) {
        let inner = self.lock();
        (inner.ca.fingerprint.clone(), inner.ca.not_after)
    }
}

fn offset(now: i64) -> Result<time::OffsetDateTime, TlsError> {
    time::OffsetDateTime::from_unix_timestamp(now)
        .map_err(|e| TlsError::Generate(format!("the clock reads an impossible time: {e}")))
}

fn random_serial() -> Result<rcgen::SerialNumber, TlsError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| TlsError::Generate("no randomness available".into()))?;
    bytes[0] &= 0x7f; // keep the serial positive
    Ok(rcgen::SerialNumber::from_slice(&bytes))
}

fn cidr(net: &IpNet) -> CidrSubnet {
    CidrSubnet::from_addr_prefix(net.addr, net.prefix)
}

fn new_ca(dir: &Path, names: &DeviceNames, now: i64) -> Result<DeviceCa, TlsError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Hearth");
    dn.push(
        DnType::CommonName,
        format!("Hearth device CA for {}", names.hostname),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let mut permitted: Vec<GeneralSubtree> = names
        .dns_names()
        .into_iter()
        .map(GeneralSubtree::DnsName)
        .collect();
    permitted.extend(
        names
            .ca_ip_ranges()
            .iter()
            .map(|n| GeneralSubtree::IpAddress(cidr(n))),
    );
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: Vec::new(),
    });
    params.not_before = offset(now - BACKDATE_SECS)?;
    params.not_after = offset(now + CA_DAYS * DAY)?;
    params.serial_number = Some(random_serial()?);
    let cert = params.self_signed(&key)?;
    let pem = cert.pem();
    write_file(&dir.join("ca.key"), key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&dir.join("ca.pem"), pem.as_bytes(), 0o644)?;
    tracing::info!("made a new device CA for {}", names.hostname);
    ca_from_parts(pem, key).ok_or_else(|| TlsError::Damaged(dir.join("ca.pem")))
}

fn load_ca(dir: &Path) -> Result<Option<DeviceCa>, TlsError> {
    let (pem_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
    let (Some(pem), Some(key)) = (read_capped(&pem_path)?, read_capped(&key_path)?) else {
        return Ok(None);
    };
    let key = KeyPair::from_pem(&key).map_err(|_| TlsError::Damaged(key_path.clone()))?;
    match ca_from_parts(pem, key) {
        Some(ca) => Ok(Some(ca)),
        None => Err(TlsError::Damaged(pem_path)),
    }
}

/// The CA from its PEM and key, with its name constraints read back from the certificate.
fn ca_from_parts(pem: String, key: KeyPair) -> Option<DeviceCa> {
    let params = CertificateParams::from_ca_cert_pem(&pem).ok()?;
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).ok()?;
    // The stored key must be the certificate's key, or every leaf would be unverifiable.
    if parsed.public_key().raw != key.public_key_der().as_slice() {
        return None;
    }
    let not_after = parsed.validity().not_after.timestamp();
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    for sub in params
        .name_constraints
        .as_ref()
        .map(|c| c.permitted_subtrees.clone())
        .unwrap_or_default()
    {
        match sub {
            GeneralSubtree::DnsName(d) => dns.push(d),
            GeneralSubtree::IpAddress(CidrSubnet::V4(a, m)) => ips.push(IpNet {
                addr: IpAddr::V4(Ipv4Addr::from(a)),
                prefix: u32::from_be_bytes(m).count_ones() as u8,
            }),
            GeneralSubtree::IpAddress(CidrSubnet::V6(a, m)) => ips.push(IpNet {
                addr: IpAddr::V6(Ipv6Addr::from(a)),
                prefix: u128::from_be_bytes(m).count_ones() as u8,
            }),
            _ => {}
        }
    }
    let fingerprint = fingerprint(&der);
    let issuer = params.self_signed(&key).ok()?;
    Some(DeviceCa {
        pem,
        key,
        issuer,
        dns,
        ips,
        not_after,
        fingerprint,
    })
}

fn new_leaf(
    provider: &CryptoProvider,
    dir: &Path,
    ca: &DeviceCa,
    names: &DeviceNames,
    crl_url: Option<&str>,
    now: i64,
) -> Result<Served, TlsError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, names.hostname.clone());
    params.distinguished_name = dn;
    let mut sans = Vec::new();
    for n in names.dns_names() {
        sans.push(SanType::DnsName(n.try_into()?));
    }
    for ip in names.leaf_ips() {
        sans.push(SanType::IpAddress(ip));
    }
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    if let Some(url) = crl_url {
        params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: vec![url.to_owned()],
        }];
    }
    params.not_before = offset(now - BACKDATE_SECS)?;
    params.not_after = offset(now + LEAF_DAYS * DAY)?;
    params.serial_number = Some(random_serial()?);
    let cert = params.signed_by(&key, &ca.issuer, &ca.key)?;
    let chain_pem = format!("{}{}", cert.pem(), ca.pem);
    let key_pem = key.serialize_pem();
    write_file(&dir.join("leaf.key"), key_pem.as_bytes(), 0o600)?;
    write_file(&dir.join("leaf.pem"), chain_pem.as_bytes(), 0o644)?;
    served_from_pem(provider, &chain_pem, &key_pem, CertSource::Device)
        .map_err(|e| TlsError::Generate(e.to_string()))
}

fn leaf_matches(info: &CertInfo, names: &DeviceNames, crl_url: Option<&str>) -> bool {
    if info.crl_urls.iter().map(String::as_str).ne(crl_url) {
        return false;
    }
    let ips: Vec<String> = names.leaf_ips().iter().map(|i| i.to_string()).collect();
    let mut a = info.dns_names.clone();
    let mut b = names.dns_names();
    a.sort();
    b.sort();
    let mut c = info.ip_addresses.clone();
    c.sort();
    let mut d = ips;
    d.sort();
    a == b && c == d
}

fn issued_by(leaf: &CertifiedKey, ca: &DeviceCa) -> bool {
    let Ok(ca_der) = CertificateDer::from_pem_slice(ca.pem.as_bytes()) else {
        return false;
    };
    let (Ok((_, ca_cert)), Ok((_, leaf_cert))) = (
        x509_parser::parse_x509_certificate(&ca_der),
        x509_parser::parse_x509_certificate(
            leaf.end_entity_cert().map(|c| c.as_ref()).unwrap_or(&[]),
        ),
    ) else {
        return false;
    };
    leaf_cert
        .verify_signature(Some(ca_cert.public_key()))
        .is_ok()
}

fn revoke(list: &mut Vec<Revoked>, leaf: &Served, now: i64) {
    let Some(der) = leaf.key.end_entity_cert().ok() else {
        return;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return;
    };
    list.retain(|r| r.not_after > now);
    list.push(Revoked {
        serial_hex: hex::encode(cert.raw_serial()),
        revoked_at: now,
        not_after: leaf.info.not_after,
    });
    if list.len() > MAX_REVOKED {
        let extra = list.len() - MAX_REVOKED;
        list.drain(..extra);
    }
}

/// `revoked.json` holds the list for one CA (named by fingerprint): a new CA starts empty.
#[derive(Serialize, serde::Deserialize)]
struct RevokedFile {
    ca_fingerprint: String,
    revoked: Vec<Revoked>,
}

fn load_revoked(dir: &Path, ca: &DeviceCa) -> Vec<Revoked> {
    let Ok(Some(text)) = read_capped(&dir.join("revoked.json")) else {
        return Vec::new();
    };
    match serde_json::from_str::<RevokedFile>(&text) {
        Ok(f) if f.ca_fingerprint == ca.fingerprint => f.revoked,
        _ => Vec::new(),
    }
}

fn save_revoked(dir: &Path, ca: &DeviceCa, revoked: &[Revoked]) -> Result<(), TlsError> {
    let file = RevokedFile {
        ca_fingerprint: ca.fingerprint.clone(),
        revoked: revoked.to_vec(),
    };
    let text = serde_json::to_vec(&file).map_err(|e| TlsError::Generate(e.to_string()))?;
    write_file(&dir.join("revoked.json"), &text, 0o644)
}

fn load_served(
    provider: &CryptoProvider,
    dir: &Path,
    stem: &str,
    source: CertSource,
) -> Result<Option<Served>, TlsError> {
    let (pem_path, key_path) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    let (Some(pem), Some(key)) = (read_capped(&pem_path)?, read_capped(&key_path)?) else {
        return Ok(None);
    };
    match served_from_pem(provider, &pem, &key, source) {
        Ok(s) => Ok(Some(s)),
        Err(e) => {
            tracing::warn!(path = %pem_path.display(), error = %e, "ignoring a stored certificate that cannot be used");
            Ok(None)
        }
    }
}

/// Parses a chain and key into something rustls can serve; checks the key matches.
fn served_from_pem(
    provider: &CryptoProvider,
    chain_pem: &str,
    key_pem: &str,
    source: CertSource,
) -> Result<Served, TlsError> {
    let reject = |m: &str| TlsError::Rejected(m.to_owned());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|_| reject("The certificate file is not valid PEM. Send the chain as PEM text, your certificate first."))?;
    if chain.is_empty() {
        return Err(reject(
            "No certificate was found in the chain. Send PEM text with at least one -----BEGIN CERTIFICATE----- block.",
        ));
    }
    if chain.len() > MAX_CHAIN {
        return Err(TlsError::Rejected(format!(
            "The chain has {} certificates; at most {MAX_CHAIN} are accepted.",
            chain.len()
        )));
    }
    let key_der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|_| {
        reject("The private key is not a PEM private key (PKCS#8, PKCS#1 or SEC1). Send the unencrypted key.")
    })?;
    let signing = provider.key_provider.load_private_key(key_der).map_err(|_| {
        reject("The private key is of a kind this server cannot use. Use an ECDSA (P-256/P-384), RSA or Ed25519 key.")
    })?;
    let certified = CertifiedKey::new(chain, signing);
    if certified.keys_match().is_err() {
        return Err(reject(
            "The private key does not belong to the certificate. Upload the key that was made together with this certificate.",
        ));
    }
    let info = cert_info(
        certified.cert.first().map(|c| c.as_ref()).unwrap_or(&[]),
        source,
    )
    .ok_or_else(|| {
        reject("The certificate cannot be read. Check that it is an X.509 certificate in PEM form.")
    })?;
    Ok(Served {
        info,
        key: Arc::new(certified),
    })
}

/// Everything an uploaded certificate must satisfy before it replaces the device's own.
fn check_custom(
    provider: &CryptoProvider,
    chain_pem: &str,
    key_pem: &str,
    now: i64,
) -> Result<Served, TlsError> {
    if chain_pem.len() > MAX_PEM_BYTES || key_pem.len() > MAX_PEM_BYTES {
        return Err(TlsError::Rejected(format!(
            "The certificate or key is larger than {MAX_PEM_BYTES} bytes; upload only your certificate, its intermediates and its key."
        )));
    }
    let served = served_from_pem(provider, chain_pem, key_pem, CertSource::Custom)?;
    let parsed: Vec<_> = served
        .key
        .cert
        .iter()
        .map(|c| x509_parser::parse_x509_certificate(c.as_ref()).map(|(_, p)| p))
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::Rejected("A certificate in the chain cannot be read.".into()))?;
    for (i, c) in parsed.iter().enumerate() {
        let what = if i == 0 {
            "your certificate".to_owned()
        } else {
            format!("certificate {} of the chain", i + 1)
        };
        if c.validity().not_after.timestamp() < now {
            return Err(TlsError::Rejected(format!(
                "{what} expired on {}; renew it and upload the new one.",
                c.validity().not_after
            )));
        }
        if c.validity().not_before.timestamp() > now {
            return Err(TlsError::Rejected(format!(
                "{what} is not valid until {}; check the device clock or upload a current certificate.",
                c.validity().not_before
            )));
        }
    }
    for pair in parsed.windows(2) {
        let (child, parent) = (&pair[0], &pair[1]);
        let is_ca = parent
            .basic_constraints()
            .ok()
            .flatten()
            .map(|b| b.value.ca)
            .unwrap_or(false);
        if child.issuer() != parent.subject()
            || !is_ca
            || child.verify_signature(Some(parent.public_key())).is_err()
        {
            return Err(TlsError::Rejected(format!(
                "The chain is not in order: \"{}\" was not issued by \"{}\". Put your certificate first, then each issuer in turn.",
                child.subject(),
                parent.subject()
            )));
        }
    }
    if let Some(last) = parsed.last()
        && last.issuer() == last.subject()
        && parsed.len() > 1
        && last.verify_signature(None).is_err()
    {
        return Err(TlsError::Rejected(
            "The root certificate at the end of the chain has a bad signature.".into(),
        ));
    }
    if served.info.dns_names.is_empty() && served.info.ip_addresses.is_empty() {
        return Err(TlsError::Rejected(
            "Your certificate names no host (no subject alternative names); browsers would refuse it.".into(),
        ));
    }
    Ok(served)
}

/// Reads a certificate's names, validity and fingerprint.
pub fn cert_info(der: &[u8], source: CertSource) -> Option<CertInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => dns_names.push((*d).to_owned()),
                x509_parser::extensions::GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(*b).ok().map(|a| IpAddr::V4(a.into())),
                        16 => <[u8; 16]>::try_from(*b).ok().map(|a| IpAddr::V6(a.into())),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        ip_addresses.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Some(CertInfo {
        source,
        subject: cert.subject().to_string(),
        dns_names,
        ip_addresses,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        fingerprint_sha256: fingerprint(der),
        crl_urls: crl_urls_of(&cert),
    })
}

fn crl_urls_of(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
    let mut out = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() {
            for p in points.iter() {
                if let Some(DistributionPointName::FullName(names)) = &p.distribution_point {
                    for n in names {
                        if let GeneralName::URI(u) = n {
                            out.push((*u).to_owned());
                        }
                    }
                }
            }
        }
    }
    out
}

fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Reads a small file; `None` if it does not exist.
fn read_capped(path: &Path) -> Result<Option<String>, TlsError> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut text = String::new();
    file.take(MAX_PEM_BYTES as u64 + 1)
        .read_to_string(&mut text)
        .map_err(|_| TlsError::Damaged(path.to_owned()))?;
    if text.len() > MAX_PEM_BYTES {
        return Err(TlsError::Damaged(path.to_owned()));
    }
    Ok(Some(text))
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename) with `mode` from the start,
/// so a key is never readable by others, not even for a moment.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(parent) = path.parent()
        && let Ok(d) = std::fs::File::open(parent)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::FromDer;

    fn names(host: &str, addrs: &[(&str, u8)]) -> DeviceNames {
        DeviceNames::new(
            host,
            addrs
                .iter()
                .map(|(a, p)| InterfaceAddr {
                    addr: a.parse().unwrap(),
                    prefix: *p,
                })
                .collect(),
        )
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn hostnames_are_sanitised() {
        let cases = [
            ("Den-Box", "den-box"),
            ("nas.home.arpa.", "nas.home.arpa"),
            ("", "hearth"),
            ("bad_name!", "hearth"),
            ("localhost", "hearth"),
            ("-x", "hearth"),
        ];
        for (raw, want) in cases {
            assert_eq!(DeviceNames::new(raw, vec![]).hostname, want, "{raw}");
        }
        let n = names("nas.home.arpa", &[]);
        assert_eq!(n.dns_names(), ["nas.home.arpa", "nas.local", "localhost"]);
    }

    #[test]
    fn first_start_makes_ca_and_leaf_with_private_keys() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        let n = names(
            "den",
            &[
                ("192.168.1.7", 24),
                ("fd00:1::7", 64),
                ("fe80::7", 64),
                ("2001:db8:1:2::7", 64),
            ],
        );
        let m = TlsManager::open(&tls, &n, NOW).unwrap();
        for (f, mode) in [
            ("ca.key", 0o600),
            ("leaf.key", 0o600),
            ("ca.pem", 0o644),
            ("leaf.pem", 0o644),
        ] {
            let meta = std::fs::metadata(tls.join(f)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, mode, "{f}");
        }
        assert_eq!(
            std::fs::metadata(&tls).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let info = m.active();
        assert_eq!(info.source, CertSource::Device);
        assert_eq!(info.dns_names, ["den", "den.local", "localhost"]);
        let mut ips = info.ip_addresses.clone();
        ips.sort();
        // No link-local (needs a zone) and no global IPv6 (its prefix rotates).
        assert_eq!(ips, ["127.0.0.1", "192.168.1.7", "::1", "fd00:1::7"]);
        assert_eq!(info.not_after - NOW, LEAF_DAYS * DAY);

        // Reopening keeps both.
        let ca = m.ca_pem();
        let fp = info.fingerprint_sha256.clone();
        drop(m);
        let m = TlsManager::open(&tls, &n, NOW + DAY).unwrap();
        assert_eq!(m.ca_pem(), ca);
        assert_eq!(m.active().fingerprint_sha256, fp);
    }

    #[test]
    fn reissue_on_change_and_expiry_but_not_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        let n = names("den", &[("192.168.1.7", 24)]);
        let m = TlsManager::open(&tls, &n, NOW).unwrap();
        let ca = m.ca_pem();
        let first = m.active();
        assert!(!m.refresh(&n, NOW + DAY).unwrap());
        assert_eq!(m.active(), first);
        // A new address in the same subnet: new leaf, same CA.
        let moved = names("den", &[("192.168.1.8", 24)]);
        assert!(m.refresh(&moved, NOW + DAY).unwrap());
        assert!(m.active().ip_addresses.contains(&"192.168.1.8".to_owned()));
        assert_eq!(m.ca_pem(), ca);
        // Near expiry: re-issued.
        let second = m.active();
        let late = second.not_after - (LEAF_RENEW_DAYS - 1) * DAY;
        assert!(m.refresh(&moved, late).unwrap());
        assert!(m.active().not_after > second.not_after);
        assert_eq!(m.ca_pem(), ca);
        // An address outside every network the CA may vouch for: a new CA.
        let elsewhere = names("den", &[("10.20.30.40", 16)]);
        assert!(m.refresh(&elsewhere, late).unwrap());
        assert_ne!(m.ca_pem(), ca);
        // A renamed device is outside the old CA's names too.
        let ca2 = m.ca_pem();
        assert!(
            m.refresh(&names("attic", &[("10.20.30.40", 16)]), late)
                .unwrap()
        );
        assert_ne!(m.ca_pem(), ca2);
        assert_eq!(m.active().dns_names[0], "attic");
    }

    #[test]
    fn replaced_leaves_are_listed_in_the_crl_the_leaf_points_to() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        let n = names("den", &[("192.168.1.7", 24)]);
        let m = TlsManager::open_with(&tls, &n, Some(8080), NOW).unwrap();
        let first = m.active();
        assert_eq!(first.crl_urls, ["http://den.local:8080/api/v1/tls/crl"]);
        let serial_of = |m: &TlsManager| {
            let der = m.resolver().current().end_entity_cert().unwrap().to_vec();
            let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
            c.raw_serial().to_vec()
        };
        let first_serial = serial_of(&m);
        let crl = m.crl_der(NOW).unwrap();
        let (_, parsed) =
            x509_parser::revocation_list::CertificateRevocationList::from_der(&crl).unwrap();
        assert_eq!(parsed.iter_revoked_certificates().count(), 0);
        let ca_der = CertificateDer::from_pem_slice(m.ca_pem().as_bytes()).unwrap();
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        assert_eq!(parsed.issuer(), ca.subject());

        assert!(
            m.refresh(&names("den", &[("192.168.1.9", 24)]), NOW + 10)
                .unwrap()
        );
        let crl = m.crl_der(NOW + 10).unwrap();
        let (_, parsed) =
            x509_parser::revocation_list::CertificateRevocationList::from_der(&crl).unwrap();
        let listed: Vec<Vec<u8>> = parsed
            .iter_revoked_certificates()
            .map(|r| r.raw_serial().to_vec())
            .collect();
        assert_eq!(listed, vec![first_serial]);
        assert_ne!(serial_of(&m), listed[0]);

        // A restart keeps the list; a different HTTP port means a new leaf (its URL changed).
        drop(m);
        let m = TlsManager::open_with(
            &tls,
            &names("den", &[("192.168.1.9", 24)]),
            Some(80),
            NOW + 20,
        )
        .unwrap();
        assert_eq!(m.active().crl_urls, ["http://den.local/api/v1/tls/crl"]);
        let crl = m.crl_der(NOW + 20).unwrap();
        let (_, parsed) =
            x509_parser::revocation_list::CertificateRevocationList::from_der(&crl).unwrap();
        assert_eq!(parsed.iter_revoked_certificates().count(), 2);
    }

    #[test]
    fn a_rotating_global_ipv6_prefix_does_not_churn_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        let m = TlsManager::open(
            &tls,
            &names("den", &[("192.168.1.7", 24), ("2001:db8:aa::7", 64)]),
            NOW,
        )
        .unwrap();
        let (ca, leaf) = (m.ca_pem(), m.active());
        assert!(
            !m.refresh(
                &names("den", &[("192.168.1.7", 24), ("2001:db8:bb::7", 64)]),
                NOW + 10
            )
            .unwrap()
        );
        assert_eq!((m.ca_pem(), m.active()), (ca, leaf));
    }

    #[test]
    fn damaged_ca_is_reported_not_replaced_silently() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        let n = names("den", &[]);
        drop(TlsManager::open(&tls, &n, NOW).unwrap());
        std::fs::write(tls.join("ca.pem"), "not a certificate").unwrap();
        let e = TlsManager::open(&tls, &n, NOW).unwrap_err();
        assert!(matches!(e, TlsError::Damaged(_)), "{e}");
        assert!(e.to_string().contains("delete it"), "{e}");
    }
}
