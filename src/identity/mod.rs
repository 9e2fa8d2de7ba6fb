//! Security-sensitive: accounts, passwords, sessions and device tokens, the claim of an
//! unclaimed device and its reset. Guards who may act on the appliance at all.

mod confusables;
pub mod household;
pub mod known;
pub mod names;
pub mod password;
pub mod setup_code;
pub mod throttle;
pub mod token;
pub mod totp;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::model::clock::SharedClock;
use crate::model::{ClientInfo, NetClass};
use crate::store::devices::DeviceRecord;
use crate::store::users::{Role, UserRecord};
use crate::store::{Store, StoreError};
use throttle::{Policy, Throttle};

/// Settings keys owned by this module.
pub const CLAIMED_KEY: &str = "claimed";
pub const SERVER_NAME_KEY: &str = "server_name";
/// The name shown before the owner picks one.
pub const DEFAULT_SERVER_NAME: &str = "Hearth";
/// File on the ESP whose presence at start returns the device to unclaimed.
pub const RESET_FILE: &str = "reset-claim";
/// Settings key: client ids the owner blocked from signing in.
pub const BLOCKED_KEY: &str = "blocked_client_ids";

/// last_seen is written at most this often per device, to keep reads read-only.
const LAST_SEEN_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "The device can only be claimed from the home network or the device itself, and this request comes from the internet."
    )]
    ClaimNeedsLan,
    #[error(
        "The setup code is wrong. Check the code printed on the device's console and try again."
    )]
    WrongSetupCode,
    #[error("This device has already been claimed. Sign in instead.")]
    AlreadyClaimed,
    #[error("{0}")]
    WeakPassword(String),
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("Too many attempts. Wait {0} seconds and try again.")]
    Throttled(u64),
    #[error("The username or password is wrong.")]
    BadCredentials,
    #[error("There is nothing here.")]
    NotFound,
    #[error("{0}")]
    Forbidden(String),
    #[error("This profile is protected by a PIN. Enter it to switch.")]
    PinRequired,
    #[error("The PIN is wrong.")]
    WrongPin,
    #[error(
        "The owner blocked this app (its client id) from signing in here. Ask the owner if you think this is a mistake."
    )]
    DeviceBlocked,
    #[error(
        "This account has been suspended by the owner, so it cannot sign in. Ask the owner to lift the suspension."
    )]
    Suspended,
    #[error("Enter the 6-digit code from your authenticator app (or a recovery code).")]
    TotpRequired,
    #[error("The two-factor code is wrong or was already used.")]
    WrongTotp,
    #[error("{0}")]
    Denied(#[from] crate::policy::Denied),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl IdentityError {
    fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        IdentityError::Invalid {
            code,
            message: message.into(),
        }
    }
}

/// How a client describes itself at sign-in; each sign-in is a device the owner can revoke.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceInfo {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub platform: String,
    #[serde(default)]
    pub client_id: String,
}

impl DeviceInfo {
    /// The record of a new sign-in by `user_id` on this device (its id is assigned on insert).
    fn record_for(self, user_id: u64, token_hash: [u8; 32], now: u64, addr: &str) -> DeviceRecord {
        DeviceRecord {
            id: 0,
            user_id,
            active_user_id: user_id,
            name: self.name,
            platform: self.platform,
            client_id: self.client_id,
            token_hash,
            first_seen: now,
            last_seen: now,
            last_address: addr.to_owned(),
        }
    }

    fn cleaned(&self) -> Result<DeviceInfo, IdentityError> {
        let clean = |s: &str, what: &str, default: &str| -> Result<String, IdentityError> {
            let s = s.trim();
            if s.chars().count() > 100 || s.chars().any(char::is_control) {
                return Err(IdentityError::invalid(
                    "invalid_device",
                    format!("The device {what} must be at most 100 plain characters."),
                ));
            }
            Ok(if s.is_empty() {
                default.to_owned()
            } else {
                s.to_owned()
            })
        };
        Ok(DeviceInfo {
            name: clean(&self.name, "name", "Unnamed device")?,
            platform: clean(&self.platform, "platform", "unknown")?,
            client_id: clean(&self.client_id, "client id", "")?,
        })
    }
}

/// What a valid token resolves to.
#[derive(Debug, Clone)]
pub struct Session {
    /// The profile acting on this device (after a profile switch, not the account that signed in).
    pub user: UserRecord,
    pub device: DeviceRecord,
}

/// A new sign-in: the token is shown to the client exactly once.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub token: String,
    pub user: UserRecord,
    pub device: DeviceRecord,
    /// Value for the known-device cookie ([`known::KNOWN_COOKIE`]): with it, this browser
    /// signs in to this account on its own throttle lane.
    pub known_cookie: String,
}

pub struct ClaimRequest {
    pub setup_code: String,
    pub server_name: String,
    pub username: String,
    pub password: String,
    pub device: DeviceInfo,
}

/// Accounts and sessions; one per server, shared by handlers.
pub struct Identity {
    store: Store,
    /// Where "now" comes from: expiry, audit times and throttle delays.
    clock: SharedClock,
    data_dir: PathBuf,
    esp_dir: Option<PathBuf>,
    /// Sign-in failures per client address.
    login_by_addr: Throttle<IpAddr>,
    /// Sign-in failures per account, from clients the account does not know. Clients it
    /// knows (a known-device cookie, an address it has a device at) skip this lane, so
    /// strangers' guesses never keep the owner out.
    login_by_account: Throttle<String>,
    /// Sign-in failures per known-device cookie.
    login_by_known: Throttle<String>,
    /// Wrong two-factor codes per user (turning it on or off while signed in).
    totp_throttle: Throttle<u64>,
    /// The known-device cookie key, read once.
    known_key: OnceLock<Vec<u8>>,
    /// Wrong setup codes per address.
    claim_by_addr: Throttle<IpAddr>,
    /// Wrong setup codes from anywhere: a LAN full of addresses still gets one slow lane.
    claim_global: Throttle<()>,
    /// Argon2 uses 19 MiB and a core each; bound how many run at once.
    hashing: Semaphore,
    /// Hashes waiting for a permit; past [`MAX_HASH_QUEUE`] new ones are turned away.
    hash_queue: AtomicUsize,
    /// Wrong PINs per target profile.
    pin_throttle: Throttle<u64>,
    last_seen: Mutex<std::collections::HashMap<u64, Instant>>,
}

fn login_addr_policy() -> Policy {
    Policy {
        free: 5,
        base: Duration::from_secs(1),
        max: Duration::from_secs(15 * 60),
        forget_after: Duration::from_secs(3600),
    }
}

/// Strangers only: the account's own clients sign in on their own lanes, so this lane
/// can slow a distributed guesser to a crawl without locking the owner out.
fn login_account_policy() -> Policy {
    Policy {
        free: 10,
        base: Duration::from_secs(1),
        max: Duration::from_secs(15 * 60),
        forget_after: Duration::from_secs(3600),
    }
}

/// Argon2 computations allowed to wait for a core; more are answered "try again later"
/// rather than queued, so a flood costs neither memory nor minutes of latency.
const MAX_HASH_QUEUE: usize = 16;

/// The error for a guess that must wait, rounded up to whole seconds.
fn throttled(wait: Duration) -> IdentityError {
    IdentityError::Throttled(
        u64::try_from(wait.as_millis().div_ceil(1000))
            .unwrap_or(u64::MAX)
            .max(1),
    )
}

fn claim_addr_policy() -> Policy {
    Policy {
        free: 5,
        base: Duration::from_secs(2),
        max: Duration::from_secs(15 * 60),
        forget_after: Duration::from_secs(3600),
    }
}

/// At most ~one guess per second across the whole LAN after 20 misses: 54 bits of code
/// would take far longer than the universe has to guess.
fn claim_global_policy() -> Policy {
    Policy {
        free: 20,
        base: Duration::from_secs(1),
        max: Duration::from_secs(60),
        forget_after: Duration::from_secs(3600),
    }
}

/// Checks a new username and returns it as Hearth keeps it (trimmed, NFKC). Whether it
/// looks like someone else's is [`refuse_lookalike`]'s question.
pub fn validate_username(name: &str) -> Result<String, IdentityError> {
    let name = names::normalised(name);
    let n = name.chars().count();
    if n == 0 || n > 64 {
        return Err(IdentityError::invalid(
            "invalid_username",
            "The username must be 1 to 64 characters long.",
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+'))
    {
        return Err(IdentityError::invalid(
            "invalid_username",
            "The username may contain letters, digits and . _ - @ + only (no spaces).",
        ));
    }
    Ok(name)
}

/// Refuses `name` when it looks like (TR39 skeleton, any case) the name of a user other
/// than `except`. `reveal` names the look-alike in the message: for the owner, who sees
/// every name anyway, not for someone accepting an invite.
pub(crate) fn refuse_lookalike(
    tx: &crate::store::Tx<'_>,
    name: &str,
    except: Option<u64>,
    reveal: bool,
) -> Result<(), IdentityError> {
    let users = tx.users()?;
    let others = users
        .iter()
        .filter(|u| Some(u.id) != except)
        .map(|u| u.username.as_str());
    match names::lookalike(name, others) {
        None => Ok(()),
        Some(other) if reveal => Err(IdentityError::invalid(
            "username_lookalike",
            format!(
                "{name:?} looks too much like {other:?}, who is already on this Hearth. Choose a name that reads differently."
            ),
        )),
        Some(_) => Err(IdentityError::invalid(
            "username_lookalike",
            "That name looks too much like someone already on this Hearth. Choose a name that reads differently.",
        )),
    }
}

pub fn validate_server_name(name: &str) -> Result<String, IdentityError> {
    let name = name.trim();
    let n = name.chars().count();
    if n == 0 || n > 63 || name.chars().any(char::is_control) {
        return Err(IdentityError::invalid(
            "invalid_server_name",
            "The server name must be 1 to 63 characters long.",
        ));
    }
    Ok(name.to_owned())
}

impl Identity {
    pub fn new(store: Store, data_dir: PathBuf, esp_dir: Option<PathBuf>) -> Self {
        Identity {
            store,
            clock: crate::model::clock::system(),
            data_dir,
            esp_dir,
            login_by_addr: Throttle::new(login_addr_policy()),
            login_by_account: Throttle::new(login_account_policy()),
            login_by_known: Throttle::new(login_addr_policy()),
            totp_throttle: Throttle::new(household::pin_policy()),
            known_key: OnceLock::new(),
            claim_by_addr: Throttle::new(claim_addr_policy()),
            claim_global: Throttle::new(claim_global_policy()),
            hashing: Semaphore::new(2),
            hash_queue: AtomicUsize::new(0),
            pin_throttle: Throttle::new(household::pin_policy()),
            last_seen: Mutex::new(Default::default()),
        }
    }

    /// The same, reading time from `clock` (tests move a `ManualClock` instead of sleeping).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    pub fn is_claimed(&self) -> Result<bool, StoreError> {
        is_claimed(&self.store)
    }

    pub fn server_name(&self) -> Result<String, StoreError> {
        Ok(self
            .store
            .read(|r| r.setting::<String>(SERVER_NAME_KEY))?
            .unwrap_or_else(|| DEFAULT_SERVER_NAME.to_owned()))
    }

    /// Checks a setup code: the network rule, the throttles, then the code itself.
    /// A wrong code counts against this address and against everyone.
    pub fn check_code(&self, input: &str, client: ClientInfo) -> Result<(), IdentityError> {
        if client.class == NetClass::Remote {
            return Err(IdentityError::ClaimNeedsLan);
        }
        let now = self.clock.monotonic();
        let by_addr = self
            .claim_by_addr
            .begin(&client.addr, now)
            .map_err(throttled)?;
        let global = match self.claim_global.begin(&(), now) {
            Ok(g) => g,
            Err(wait) => {
                by_addr.withdraw();
                return Err(throttled(wait));
            }
        };
        let code = match self.is_claimed() {
            Ok(true) => Err(IdentityError::AlreadyClaimed),
            Ok(false) => setup_code::read(&self.data_dir)
                .map_err(|e| IdentityError::Internal(format!("cannot read the setup code: {e}"))),
            Err(e) => Err(e.into()),
        };
        let code = match code {
            Ok(c) => c,
            Err(e) => {
                by_addr.withdraw();
                global.withdraw();
                return Err(e);
            }
        };
        let right = code
            .as_deref()
            .is_some_and(|c| setup_code::matches(input, c));
        if right {
            by_addr.succeeded();
            global.withdraw();
        } else {
            by_addr.failed_at(self.clock.monotonic());
            global.failed_at(self.clock.monotonic());
            let addr = client.addr.to_string();
            self.store.write(|tx| {
                tx.audit(
                    self.clock.now_secs(),
                    "claim_failed",
                    None,
                    Some(addr),
                    "wrong setup code",
                )
            })?;
            return Err(IdentityError::WrongSetupCode);
        }
        Ok(())
    }

    /// Claims the device for its owner and signs the claiming client in.
    pub async fn claim(
        self: &Arc<Self>,
        req: ClaimRequest,
        client: ClientInfo,
    ) -> Result<SignedIn, IdentityError> {
        if client.class == NetClass::Remote {
            return Err(IdentityError::ClaimNeedsLan);
        }
        self.check_code(&req.setup_code, client)?;
        let username = validate_username(&req.username)?;
        let server_name = validate_server_name(&req.server_name)?;
        if let Some(why) = password::weakness(&req.password, &req.username) {
            return Err(IdentityError::WeakPassword(why));
        }
        let device = req.device.cleaned()?;
        let hash = self.hash_password(req.password).await?;
        let (token, token_hash) = token::generate().map_err(IdentityError::Internal)?;
        let now_s = self.clock.now_secs();
        let addr = client.addr.to_string();
        let signed = self.store.write(|tx| {
            // Checked again inside the transaction: write transactions are serialised, so
            // of two racing claims exactly one sees "unclaimed" here.
            if tx.setting::<bool>(CLAIMED_KEY)?.unwrap_or(false) {
                return Err(IdentityError::AlreadyClaimed);
            }
            // A reset keeps the old owner's record (and so their history); the new claim
            // takes it over.
            let existing = tx.users()?.into_iter().find(|u| u.role == Role::Owner);
            let user = match existing {
                Some(mut owner) => {
                    refuse_lookalike(tx, &username, Some(owner.id), true)?;
                    owner.username = username.clone();
                    owner.password_hash = Some(hash);
                    tx.update_user(&owner)?;
                    owner
                }
                None => {
                    refuse_lookalike(tx, &username, None, true)?;
                    tx.create_user(&username, Role::Owner, Some(hash), now_s)?
                        .ok_or_else(|| {
                            IdentityError::invalid("username_taken", "That username is taken.")
                        })?
                }
            };
            tx.set_setting(CLAIMED_KEY, &true)?;
            tx.set_setting(SERVER_NAME_KEY, &server_name)?;
            let device = tx.create_device(device.record_for(user.id, token_hash, now_s, &addr))?;
            tx.audit(
                now_s,
                "claim",
                Some(user.id),
                Some(addr),
                format!("claimed by {} as \"{server_name}\"", user.username),
            )?;
            Ok(SignedIn {
                token,
                user,
                device,
                known_cookie: String::new(),
            })
        })?;
        let signed = SignedIn {
            known_cookie: self.known_cookie_for(signed.user.id)?,
            ..signed
        };
        if let Err(e) = setup_code::remove(&self.data_dir, self.esp_dir.as_deref()) {
            // The claim stands; the stale file is removed at the next start.
            tracing::warn!(error = %e, "could not remove the setup code file");
        }
        tracing::info!(user = %signed.user.username, "device claimed");
        Ok(signed)
    }

    /// Signs in with username and password, creating a device for this client.
    /// `known_cookie` is the browser's known-device cookie, if it sent one.
    pub async fn login(
        self: &Arc<Self>,
        username: &str,
        password: String,
        totp_code: Option<String>,
        device: DeviceInfo,
        client: ClientInfo,
        known_cookie: Option<&str>,
    ) -> Result<SignedIn, IdentityError> {
        let account = names::normalised(username).to_lowercase();
        if password.len() > password::MAX_LEN * 4 || account.len() > 256 {
            return Err(IdentityError::BadCredentials);
        }
        let device = device.cleaned()?;
        if !device.client_id.is_empty() {
            let blocked: Vec<String> = self
                .store
                .read(|r| r.setting(BLOCKED_KEY))?
                .unwrap_or_default();
            if blocked.contains(&device.client_id) {
                return Err(IdentityError::DeviceBlocked);
            }
        }
        let user = self.store.read(|r| r.user_by_name(&account))?;
        let lane = self.lane_for(user.as_ref().map(|u| u.id), client.addr, known_cookie)?;
        // The guess is reserved before the slow check: a burst gets no more guesses
        // evaluated than the same guesses one after another.
        let attempt = known::reserve(
            &self.login_by_addr,
            &self.login_by_account,
            &self.login_by_known,
            &lane,
            client.addr,
            &account,
            self.clock.monotonic(),
        )?;
        let phc = user
            .as_ref()
            .and_then(|u| u.password_hash.clone())
            .unwrap_or_else(|| password::decoy_hash().to_owned());
        let ok = self.verify_password(password, phc).await?
            && user.as_ref().is_some_and(|u| u.password_hash.is_some());
        let addr = client.addr.to_string();
        let now_s = self.clock.now_secs();
        let Some(user) = user.filter(|_| ok) else {
            attempt.failed_at(self.clock.monotonic());
            let detail = format!("failed sign-in as {:?}", truncate(&account, 64));
            self.store
                .write(|tx| tx.audit(now_s, "login_failed", None, Some(addr), detail))?;
            return Err(IdentityError::BadCredentials);
        };
        self.refuse_if_suspended(&user, &addr)?;
        let (token, token_hash) = token::generate().map_err(IdentityError::Internal)?;
        let known_cookie = self.known_cookie_for(user.id)?;
        let signed = self.store.write(|tx| {
            // Two-factor is checked (and its replay state saved) only after the password
            // was right, so a missing code reveals nothing to someone without it.
            if let Some(mut rec) = tx
                .user(user.id)?
                .and_then(|u| u.totp)
                .filter(|t| t.confirmed)
            {
                let Some(code) = totp_code.as_deref() else {
                    return Err(IdentityError::TotpRequired);
                };
                if !totp::check(&mut rec, code, now_s) {
                    return Err(IdentityError::WrongTotp);
                }
                let mut fresh = tx.user(user.id)?.ok_or(IdentityError::NotFound)?;
                fresh.totp = Some(rec);
                tx.update_user(&fresh)?;
            }
            let device = tx.create_device(device.record_for(user.id, token_hash, now_s, &addr))?;
            tx.audit(
                now_s,
                "login",
                Some(user.id),
                Some(addr),
                format!("signed in on \"{}\"", device.name),
            )?;
            Ok::<_, IdentityError>(SignedIn {
                token,
                user,
                device,
                known_cookie,
            })
        });
        match signed {
            Ok(signed) => {
                attempt.succeeded();
                Ok(signed)
            }
            Err(IdentityError::WrongTotp) => {
                attempt.failed_at(self.clock.monotonic());
                let addr = client.addr.to_string();
                self.store.write(|tx| {
                    tx.audit(
                        now_s,
                        "login_failed",
                        None,
                        Some(addr),
                        format!("wrong two-factor code for {:?}", truncate(&account, 64)),
                    )
                })?;
                Err(IdentityError::WrongTotp)
            }
            Err(IdentityError::TotpRequired) => {
                // The password was right, but the sign-in is not done: neither a wrong
                // guess nor a success that would forgive earlier ones (that would let
                // someone with the password but not the phone reset the count between
                // code guesses).
                attempt.withdraw();
                Err(IdentityError::TotpRequired)
            }
            Err(e) => Err(e),
        }
    }

    /// Refuses a sign-in by a suspended account, with an audit entry. Asked only after the
    /// password was right, so the answer tells nobody else that the account exists.
    fn refuse_if_suspended(&self, user: &UserRecord, addr: &str) -> Result<(), IdentityError> {
        if !user.suspended || user.role == Role::Owner {
            return Ok(());
        }
        let detail = format!("sign-in refused: {:?} is suspended", user.username);
        let addr = addr.to_owned();
        self.store.write(|tx| {
            tx.audit(
                self.clock.now_secs(),
                "login_refused",
                Some(user.id),
                Some(addr),
                detail,
            )
        })?;
        Err(IdentityError::Suspended)
    }

    /// Resolves a bearer token or session cookie. `None` for anything not currently valid:
    /// malformed, unknown, revoked, or belonging to a removed user.
    pub fn authenticate(
        &self,
        token: &str,
        client: &ClientInfo,
    ) -> Result<Option<Session>, StoreError> {
        if !token::plausible(token) {
            return Ok(None);
        }
        let hash = token::hash(token);
        let found = self.store.read(|r| {
            let Some(device) = r.device_by_token_hash(&hash)? else {
                return Ok::<_, StoreError>(None);
            };
            let Some(user) = r.user(device.active_user_id)? else {
                return Ok(None);
            };
            Ok(Some(Session { user, device }))
        })?;
        if let Some(s) = &found {
            self.touch(&s.device, client);
        }
        Ok(found)
    }

    /// Records when and from where a device was last seen, at most once a minute.
    fn touch(&self, device: &DeviceRecord, client: &ClientInfo) {
        let now = self.clock.monotonic();
        let addr = client.addr.to_string();
        {
            let mut seen = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
            let due = seen
                .get(&device.id)
                .is_none_or(|t| now.duration_since(*t) >= LAST_SEEN_EVERY);
            if !due && device.last_address == addr {
                return;
            }
            if seen.len() > 10_000 {
                seen.clear();
            }
            seen.insert(device.id, now);
        }
        let id = device.id;
        let r: Result<(), StoreError> = self.store.write(|tx| {
            // The device may have been revoked since it was read; then there is nothing to touch.
            if let Some(mut d) = tx.device(id)? {
                d.last_seen = self.clock.now_secs();
                d.last_address = addr;
                tx.update_device(&d)?;
            }
            Ok(())
        });
        if let Err(e) = r {
            tracing::warn!(error = %e, "could not record device last-seen");
        }
    }

    /// The facts policy needs about this moment: local time, home mode, guest on/off.
    pub fn policy_context(
        &self,
        network: NetClass,
        utc_offset_minutes: i32,
    ) -> Result<crate::policy::Context, IdentityError> {
        let users = self.store.read(|r| r.users())?;
        let home_mode = household::home_mode_of(&users).on;
        let guest_enabled = users.iter().any(|u| u.role == Role::Guest && u.enabled);
        let now = i64::try_from(self.clock.now_secs()).unwrap_or(i64::MAX);
        Ok(crate::policy::Context {
            now: crate::policy::LocalTime::from_unix(now, utc_offset_minutes * 60),
            home_mode,
            network,
            guest_enabled,
        })
    }

    /// Ends one device's session.
    pub fn logout(&self, session: &Session, client: &ClientInfo) -> Result<(), IdentityError> {
        let addr = client.addr.to_string();
        self.store.write(|tx| {
            tx.delete_device(session.device.id)?;
            tx.audit(
                self.clock.now_secs(),
                "logout",
                Some(session.device.user_id),
                Some(addr),
                format!("signed out on \"{}\"", session.device.name),
            )?;
            Ok(())
        })
    }

    /// Devices the actor may see: every device for the owner, their own for others.
    pub fn devices_visible_to(
        &self,
        actor: &crate::policy::Actor,
        ctx: &crate::policy::Context,
    ) -> Result<Vec<DeviceRecord>, IdentityError> {
        use crate::policy::{Action, AdminArea, authorize};
        let all = self.store.read(|r| r.devices())?;
        if authorize(actor, &Action::Admin(AdminArea::AllDevices), ctx).is_allowed() {
            return Ok(all);
        }
        authorize(actor, &Action::ViewOwnDevices, ctx).then(|| ())?;
        let me = actor.user_id();
        Ok(all
            .into_iter()
            .filter(|d| d.user_id == me || d.active_user_id == me)
            .collect())
    }

    /// Revokes a device; its token stops working with this commit.
    pub fn revoke_device(
        &self,
        actor: &crate::policy::Actor,
        ctx: &crate::policy::Context,
        device_id: u64,
        client: &ClientInfo,
    ) -> Result<DeviceRecord, IdentityError> {
        let addr = client.addr.to_string();
        self.store.write(|tx| {
            let Some(device) = tx.device(device_id)? else {
                return Err(IdentityError::NotFound);
            };
            let decision = crate::policy::authorize(
                actor,
                &crate::policy::Action::RevokeDevice {
                    device_owner: device.user_id,
                },
                ctx,
            );
            // Same answer as a missing device: don't reveal other people's device ids.
            decision.then(|| ()).map_err(|_| IdentityError::NotFound)?;
            tx.delete_device(device_id)?;
            tx.audit(
                self.clock.now_secs(),
                "device_revoked",
                Some(actor.user_id()),
                Some(addr),
                format!("revoked \"{}\" (device {device_id})", device.name),
            )?;
            Ok(device)
        })
    }

    async fn hash_password(&self, password: String) -> Result<String, IdentityError> {
        self.argon2(move || password::hash(&password))
            .await?
            .map_err(IdentityError::Internal)
    }

    async fn verify_password(&self, password: String, phc: String) -> Result<bool, IdentityError> {
        self.argon2(move || password::verify(&password, &phc)).await
    }

    /// Runs one argon2 computation on the blocking pool, at most two at a time; a caller
    /// that would wait behind [`MAX_HASH_QUEUE`] others is told to try again shortly.
    async fn argon2<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, IdentityError> {
        let permit = match self.hashing.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                if self.hash_queue.fetch_add(1, Ordering::AcqRel) >= MAX_HASH_QUEUE {
                    self.hash_queue.fetch_sub(1, Ordering::AcqRel);
                    return Err(throttled(Duration::from_secs(2)));
                }
                let p = self.hashing.acquire().await;
                self.hash_queue.fetch_sub(1, Ordering::AcqRel);
                p.map_err(|e| IdentityError::Internal(e.to_string()))?
            }
        };
        let out = tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| IdentityError::Internal(e.to_string()));
        drop(permit);
        out
    }
}

/// What a user sees when turning on two-factor sign-in.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TotpEnrolment {
    pub otpauth_url: String,
    /// Base32 secret for typing into an app by hand.
    pub secret: String,
    /// The otpauth URL as a QR code (SVG markup).
    pub qr_svg: String,
    /// One-time codes for when the phone is lost. Shown only now.
    pub recovery_codes: Vec<String>,
}

impl Identity {
    /// Starts two-factor enrolment; it takes effect once confirmed with a code.
    pub fn totp_begin(&self, user_id: u64) -> Result<TotpEnrolment, IdentityError> {
        let (rec, recovery_codes) = totp::enroll().map_err(IdentityError::Internal)?;
        let server = self.server_name()?;
        let user = self.store.write(|tx| {
            let mut user = tx.user(user_id)?.ok_or(IdentityError::NotFound)?;
            if user.password_hash.is_none() {
                return Err(IdentityError::Invalid {
                    code: "no_password",
                    message: "Profiles without a password cannot use two-factor sign-in.".into(),
                });
            }
            if user.totp.as_ref().is_some_and(|t| t.confirmed) {
                return Err(IdentityError::Invalid {
                    code: "totp_already_on",
                    message:
                        "Two-factor sign-in is already on. Turn it off first to enrol a new phone."
                            .into(),
                });
            }
            user.totp = Some(rec.clone());
            tx.update_user(&user)?;
            Ok(user)
        })?;
        let url = totp::otpauth_url(&rec.secret, &format!("Hearth {server}"), &user.username);
        Ok(TotpEnrolment {
            secret: totp::base32(&rec.secret),
            qr_svg: totp::qr_svg(&url).map_err(IdentityError::Internal)?,
            otpauth_url: url,
            recovery_codes,
        })
    }

    /// Confirms enrolment with a code from the app; from then on sign-in needs one.
    pub fn totp_confirm(&self, user_id: u64, code: &str) -> Result<(), IdentityError> {
        let attempt = self
            .totp_throttle
            .begin(&user_id, self.clock.monotonic())
            .map_err(throttled)?;
        let r = self.store.write(|tx| {
            let mut user = tx.user(user_id)?.ok_or(IdentityError::NotFound)?;
            let Some(mut rec) = user.totp.clone().filter(|t| !t.confirmed) else {
                return Err(IdentityError::Invalid {
                    code: "totp_not_started",
                    message: "Start two-factor enrolment first.".into(),
                });
            };
            if !totp::check(&mut rec, code, self.clock.now_secs()) {
                return Err(IdentityError::WrongTotp);
            }
            rec.confirmed = true;
            user.totp = Some(rec);
            tx.update_user(&user)?;
            tx.audit(
                self.clock.now_secs(),
                "totp_enabled",
                Some(user_id),
                None,
                format!("two-factor on for {:?}", user.username),
            )?;
            Ok(())
        });
        settle_code_attempt(attempt, r, self.clock.monotonic())
    }

    /// Turns two-factor off; needs a current code (or a recovery code).
    pub fn totp_disable(&self, user_id: u64, code: &str) -> Result<(), IdentityError> {
        let attempt = self
            .totp_throttle
            .begin(&user_id, self.clock.monotonic())
            .map_err(throttled)?;
        let r = self.store.write(|tx| {
            let mut user = tx.user(user_id)?.ok_or(IdentityError::NotFound)?;
            let Some(mut rec) = user.totp.clone() else {
                return Ok(());
            };
            if rec.confirmed && !totp::check(&mut rec, code, self.clock.now_secs()) {
                return Err(IdentityError::WrongTotp);
            }
            user.totp = None;
            tx.update_user(&user)?;
            tx.audit(
                self.clock.now_secs(),
                "totp_disabled",
                Some(user_id),
                None,
                format!("two-factor off for {:?}", user.username),
            )?;
            Ok(())
        });
        settle_code_attempt(attempt, r, self.clock.monotonic())
    }
}

/// A wrong two-factor or recovery code counts against the throttle; anything else (right
/// code, or a refusal that checked no code) does not.
fn settle_code_attempt(
    attempt: throttle::Attempt<'_, u64>,
    r: Result<(), IdentityError>,
    now: Instant,
) -> Result<(), IdentityError> {
    match &r {
        Err(IdentityError::WrongTotp) => drop(attempt.failed_at(now)),
        Ok(()) => attempt.succeeded(),
        Err(_) => attempt.withdraw(),
    }
    r
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

pub fn is_claimed(store: &Store) -> Result<bool, StoreError> {
    Ok(store
        .read(|r| r.setting::<bool>(CLAIMED_KEY))?
        .unwrap_or(false))
}

/// Returns a claimed device to unclaimed: the owner's password and devices go, a new
/// setup code is written. Libraries, media, other users and everyone's history stay.
/// Returns the new setup code.
pub fn reset_claim(
    store: &Store,
    data_dir: &Path,
    esp_dir: Option<&Path>,
    how: &str,
) -> Result<String, IdentityError> {
    store.write(|tx| {
        tx.set_setting(CLAIMED_KEY, &false)?;
        let owners: Vec<UserRecord> = tx
            .users()?
            .into_iter()
            .filter(|u| u.role == Role::Owner)
            .collect();
        for mut owner in owners {
            owner.password_hash = None;
            tx.update_user(&owner)?;
            tx.delete_devices_of(owner.id)?;
        }
        tx.audit(
            crate::model::clock::now_secs(),
            "reset_claim",
            None,
            None,
            format!("device returned to unclaimed ({how})"),
        )?;
        Ok::<_, IdentityError>(())
    })?;
    let code = setup_code::generate().map_err(IdentityError::Internal)?;
    setup_code::write(data_dir, esp_dir, &code)
        .map_err(|e| IdentityError::Internal(format!("cannot write the setup code: {e}")))?;
    Ok(code)
}

/// What start-up found about the claim, for the console message.
#[derive(Debug, Clone)]
pub enum ClaimState {
    Claimed,
    Unclaimed { setup_code: String },
}

/// Runs at start: honours a `reset-claim` file on the ESP, makes sure an unclaimed device
/// has a setup code (and a claimed one none), and reports which it is.
pub fn prepare_at_start(
    store: &Store,
    data_dir: &Path,
    esp_dir: Option<&Path>,
) -> Result<ClaimState, IdentityError> {
    if let Some(esp) = esp_dir {
        let flag = esp.join(RESET_FILE);
        if flag.exists() {
            tracing::warn!(
                "found {} on the boot partition: resetting the claim",
                flag.display()
            );
            reset_claim(
                store,
                data_dir,
                esp_dir,
                "reset-claim file on the boot partition",
            )?;
            std::fs::remove_file(&flag).map_err(|e| {
                IdentityError::Internal(format!("cannot remove {}: {e}", flag.display()))
            })?;
        }
    }
    if is_claimed(store)? {
        setup_code::remove(data_dir, esp_dir)
            .map_err(|e| IdentityError::Internal(format!("cannot remove the setup code: {e}")))?;
        return Ok(ClaimState::Claimed);
    }
    let code = match setup_code::read(data_dir)
        .map_err(|e| IdentityError::Internal(format!("cannot read the setup code: {e}")))?
    {
        Some(c) => {
            // Rewrite so the ESP copy exists even if the ESP was re-flashed.
            if esp_dir.is_some() {
                setup_code::write(data_dir, esp_dir, &c).map_err(|e| {
                    IdentityError::Internal(format!("cannot write the setup code: {e}"))
                })?;
            }
            c
        }
        None => {
            let c = setup_code::generate().map_err(IdentityError::Internal)?;
            setup_code::write(data_dir, esp_dir, &c).map_err(|e| {
                IdentityError::Internal(format!("cannot write the setup code: {e}"))
            })?;
            c
        }
    };
    Ok(ClaimState::Unclaimed { setup_code: code })
}

#[cfg(test)]
mod tests;
