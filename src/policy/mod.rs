//! Security-sensitive: the one place that decides "may actor A do B to C". Every list, search,
//! item, byte, setting and user change goes through [`authorize`] (or [`visible`] for
//! filtering), and owner-only code takes an [`OwnerProof`] that only [`require_owner`] makes.
//!
//! The flow for one request:
//! 1. `identity`/`net` say what the caller presented ([`Presented`]): a device token with its
//!    user, a network allowed without sign-in with the profile it acts as, or nothing.
//! 2. [`admit`] turns that into an [`Actor`] or refuses (revoked device, home mode, guest off…).
//!    There is no other way to make an `Actor`.
//! 3. [`authorize`] gives a [`Decision`]; the protected operation runs only through
//!    [`Decision::then`], so a denied request never reaches it.
//!
//! Nothing here reads a clock, the database or the network: the caller passes a [`Context`].

pub use crate::model::{ratings, restrictions};

pub use ratings::{Classification, Rating, RatingSystem};
pub use restrictions::{
    AgeCeilings, Hidden, ItemKind, Libraries, LocalTime, Preset, RestrictionError, Restrictions,
    UnratedRule, UnratedRules, Weekday, Window,
};

use crate::model::NetClass;
pub use crate::model::Role;
pub use crate::model::restrictions::{ItemView, RawRating};

/// A user as stored, in the terms policy needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user_id: u64,
    pub role: Role,
    /// The profile is locked with a PIN.
    pub has_pin: bool,
    /// Ignored for the owner.
    pub restrictions: Restrictions,
    /// The owner suspended this account: it may not act at all until the owner lifts it.
    /// Ignored for the owner, who can never be suspended.
    pub suspended: bool,
}

impl Account {
    /// Suspended by the owner. The owner's own account never counts as suspended, so no
    /// stored flag can lock the owner out.
    pub fn is_suspended(&self) -> bool {
        self.suspended && self.role != Role::Owner
    }

    /// The policy view of a stored user, with the restrictions stored for them.
    pub fn from_user(
        user: &crate::store::users::UserRecord,
        restrictions: Restrictions,
    ) -> Account {
        Account {
            user_id: user.id,
            role: user.role,
            has_pin: user.pin_hash.is_some(),
            restrictions,
            suspended: user.suspended,
        }
    }
}

/// The state of the device a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    Active,
    /// Revoked or blocked by the owner: its token no longer means anyone.
    Revoked,
}

/// What the caller of a request presented, as `identity` and `net` found it.
#[derive(Debug, Clone)]
pub enum Presented {
    /// A device token (or session cookie) that belongs to `account`'s device.
    Device {
        status: DeviceStatus,
        account: Account,
    },
    /// No credentials, from a network the owner allows without sign-in; it acts as `profile`.
    AllowedNetwork { profile: Account },
    /// A DLNA/UPnP player: DLNA has no accounts, so it acts as the DLNA profile, whose
    /// restrictions (normally: only the libraries the owner chose for DLNA) the owner set.
    /// `dlna` says whether the owner has DLNA turned on now (home mode turns it off).
    Dlna {
        restrictions: Restrictions,
        enabled: bool,
    },
    /// No credentials.
    Nothing,
}

/// Facts about the moment of the request.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// The device's local time, for schedules.
    pub now: LocalTime,
    /// Home mode is on: a managed user exists or a PIN is set.
    pub home_mode: bool,
    /// Where the client is.
    pub network: NetClass,
    /// The owner has the guest profile turned on.
    pub guest_enabled: bool,
}

/// Who is acting: only [`admit`] makes one.
///
/// ```compile_fail,E0451
/// use hearth::policy::{Account, Actor, Restrictions, Role};
/// let account = Account { user_id: 1, role: Role::Owner, has_pin: false, restrictions: Restrictions::none(), suspended: false };
/// let forged = Actor { account, anonymous: false };
/// ```
#[derive(Debug, Clone)]
pub struct Actor {
    account: Account,
    /// Acting for a network allowed without sign-in (or a DLNA player), not for a signed-in
    /// device.
    anonymous: bool,
    /// Acting for a DLNA player.
    dlna: bool,
}

/// The user id the DLNA profile acts under: 0 is never a stored user's id.
pub const DLNA_PROFILE_ID: u64 = 0;

/// The rows of the permission grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActorKind {
    Owner,
    Managed,
    ManagedWithPin,
    Guest,
    Friend,
    AnonymousOnAllowedNetwork,
    /// A DLNA/UPnP player on the LAN.
    Dlna,
    /// A signed-in device (or allowed network) whose account the owner suspended.
    Suspended,
}

impl Actor {
    pub fn user_id(&self) -> u64 {
        self.account.user_id
    }
    pub fn role(&self) -> Role {
        self.account.role
    }
    pub fn restrictions(&self) -> &Restrictions {
        &self.account.restrictions
    }
    /// Acting for a network allowed without sign-in.
    pub fn is_anonymous(&self) -> bool {
        self.anonymous
    }
    pub fn kind(&self) -> ActorKind {
        if self.dlna {
            return ActorKind::Dlna;
        }
        if self.account.is_suspended() {
            return ActorKind::Suspended;
        }
        if self.anonymous {
            return ActorKind::AnonymousOnAllowedNetwork;
        }
        match (self.account.role, self.account.has_pin) {
            (Role::Owner, _) => ActorKind::Owner,
            (Role::Managed, false) => ActorKind::Managed,
            (Role::Managed, true) => ActorKind::ManagedWithPin,
            (Role::Guest, _) => ActorKind::Guest,
            (Role::Friend, _) => ActorKind::Friend,
        }
    }
    fn is_owner(&self) -> bool {
        !self.anonymous && self.account.role == Role::Owner
    }
}

/// Turns what the caller presented into an actor, or refuses.
pub fn admit(presented: Presented, ctx: &Context) -> Result<Actor, Denied> {
    match presented {
        Presented::Nothing => Err(Denied::NotSignedIn),
        Presented::Device {
            status: DeviceStatus::Revoked,
            ..
        } => Err(Denied::DeviceRevoked),
        Presented::Device {
            status: DeviceStatus::Active,
            account,
        } => {
            // Checked before anything else: the device is kept (so lifting the suspension
            // restores it), but it means no one while the account is suspended.
            if account.is_suspended() {
                return Err(Denied::AccountSuspended);
            }
            if account.role == Role::Guest && !ctx.guest_enabled {
                return Err(Denied::GuestDisabled);
            }
            Ok(Actor {
                account,
                anonymous: false,
                dlna: false,
            })
        }
        Presented::AllowedNetwork { profile } => {
            if profile.is_suspended() {
                return Err(Denied::AccountSuspended);
            }
            if ctx.home_mode {
                return Err(Denied::HomeModeRequiresSignIn);
            }
            if ctx.network == NetClass::Remote {
                return Err(Denied::AnonymousOutsideHouse);
            }
            match profile.role {
                Role::Owner => return Err(Denied::AnonymousAsOwner),
                Role::Guest if !ctx.guest_enabled => return Err(Denied::GuestDisabled),
                Role::Managed | Role::Guest | Role::Friend => {}
            }
            Ok(Actor {
                account: profile,
                anonymous: true,
                dlna: false,
            })
        }
        Presented::Dlna {
            restrictions,
            enabled,
        } => {
            // Home mode is not checked here: `enabled` already says whether DLNA answers now
            // (`dlna::settings::is_active` derives it from the owner's switch and home mode,
            // which the owner may override knowingly).
            if !enabled {
                return Err(Denied::DlnaOff);
            }
            if ctx.network == NetClass::Remote {
                return Err(Denied::DlnaOutsideHouse);
            }
            Ok(Actor {
                account: Account {
                    user_id: DLNA_PROFILE_ID,
                    role: Role::Guest,
                    has_pin: false,
                    restrictions,
                    suspended: false,
                },
                anonymous: true,
                dlna: true,
            })
        }
    }
}

/// The owner-only parts of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdminArea {
    Settings,
    Users,
    Invites,
    Libraries,
    Disks,
    Updates,
    Tls,
    System,
    Audit,
    /// Every device of every user (a user's own devices are [`Action::ViewOwnDevices`]).
    AllDevices,
}

/// A profile someone wants to switch to on a home device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchTarget {
    pub user_id: u64,
    pub role: Role,
    pub has_pin: bool,
    /// The owner suspended this profile: nobody may switch to it until that is lifted.
    pub suspended: bool,
}

/// What an actor wants to do.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// List the libraries (the list is then filtered with [`library_visible`]).
    ListLibraries,
    /// Open one library's items (each then filtered with [`visible`]).
    ListLibrary {
        library_id: u64,
    },
    /// Search (results then filtered with [`visible`]).
    Search,
    GetItem(&'a ItemView<'a>),
    Stream(&'a ItemView<'a>),
    Artwork(&'a ItemView<'a>),
    Subtitles(&'a ItemView<'a>),
    /// Progress and watched flags.
    UpdateWatchState(&'a ItemView<'a>),
    /// `GET /me`.
    ViewMe,
    ViewOwnDevices,
    /// Revoke a device belonging to `device_owner`.
    RevokeDevice {
        device_owner: u64,
    },
    /// Set or clear the PIN of `user_id`, whose role is `role`.
    SetPin {
        user_id: u64,
        role: Role,
    },
    /// Switch this device to another profile; `pin_verified` says identity checked the
    /// target's PIN (throttled there).
    SwitchProfile {
        to: SwitchTarget,
        pin_verified: bool,
    },
    Admin(AdminArea),
}

/// Why an action is refused. `Display` is for people and logs; clients of hidden items only
/// ever see "not found" (see [`Denied::answer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("you are not signed in; sign in first")]
    NotSignedIn,
    #[error("this device was signed out by the owner; sign in again")]
    DeviceRevoked,
    #[error(
        "home mode is on (a managed user or a PIN exists), so every device must sign in; sign in or pick a profile on a signed-in device"
    )]
    HomeModeRequiresSignIn,
    #[error("networks allowed without sign-in only count inside the house; sign in")]
    AnonymousOutsideHouse,
    #[error(
        "a network allowed without sign-in is set to act as the owner, which is never allowed; sign in, and ask the owner to pick another profile for that network"
    )]
    AnonymousAsOwner,
    #[error(
        "the guest profile is turned off; sign in, or ask the owner to turn the guest profile on"
    )]
    GuestDisabled,
    #[error("this needs a signed-in account; networks allowed without sign-in cannot do it")]
    SignInRequired,
    #[error("DLNA is turned off; the owner can turn it on in Settings → DLNA")]
    DlnaOff,
    #[error("DLNA only answers players on the home network")]
    DlnaOutsideHouse,
    #[error("only the owner can do this; sign in as the owner")]
    OwnerOnly,
    #[error("you can only do this for your own account; ask the owner")]
    NotYours,
    #[error("friends use their own sign-in and cannot switch to household profiles")]
    NotHousehold,
    #[error("a friend's account is not a profile of this household and cannot be switched to")]
    NotAProfile,
    #[error("this profile is locked with a PIN; enter its PIN")]
    PinRequired,
    #[error(
        "switching back to the owner needs the owner's PIN, and none is set; sign in with the owner's password, then set an owner PIN"
    )]
    OwnerPinRequired,
    #[error("the guest profile cannot have a PIN")]
    GuestCannotHavePin,
    #[error(
        "a friend's account cannot have a PIN: PINs guard household profiles on shared home devices, and friends sign in with their own password (turn on two-factor sign-in for more protection)"
    )]
    FriendCannotHavePin,
    #[error(
        "this account has been suspended by the owner, so it cannot sign in or be used; ask the owner to lift the suspension"
    )]
    AccountSuspended,
    #[error(
        "this profile has been suspended by the owner and cannot be switched to; ask the owner to lift the suspension"
    )]
    ProfileSuspended,
    #[error(
        "viewing is outside the hours the owner allows for this profile; try again later or ask the owner"
    )]
    OutsideSchedule,
    #[error("not shown to this user: {0}")]
    Hidden(Hidden),
}

/// How a refusal is answered, so `web` can map it without deciding anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 401: sign in (again).
    SignIn,
    /// 403: signed in but not allowed; the message says why.
    Forbidden,
    /// 404: the user may not know the thing exists.
    NotFound,
}

impl Denied {
    pub fn answer(&self) -> Answer {
        match self {
            Denied::NotSignedIn
            | Denied::DeviceRevoked
            | Denied::HomeModeRequiresSignIn
            | Denied::AnonymousOutsideHouse
            | Denied::AnonymousAsOwner
            | Denied::GuestDisabled
            | Denied::SignInRequired
            | Denied::AccountSuspended => Answer::SignIn,
            Denied::OwnerOnly
            | Denied::NotYours
            | Denied::NotHousehold
            | Denied::NotAProfile
            | Denied::PinRequired
            | Denied::OwnerPinRequired
            | Denied::GuestCannotHavePin
            | Denied::FriendCannotHavePin
            | Denied::ProfileSuspended
            | Denied::OutsideSchedule
            | Denied::DlnaOff
            | Denied::DlnaOutsideHouse => Answer::Forbidden,
            Denied::Hidden(_) => Answer::NotFound,
        }
    }

    /// The API's snake_case error code. Hidden items all share `not_found`, so the code
    /// cannot tell a client why an item is missing.
    pub fn code(&self) -> &'static str {
        match self {
            Denied::NotSignedIn => "not_signed_in",
            Denied::DeviceRevoked => "device_revoked",
            Denied::HomeModeRequiresSignIn => "home_mode_sign_in",
            Denied::AnonymousOutsideHouse => "sign_in_outside_house",
            Denied::AnonymousAsOwner => "anonymous_as_owner",
            Denied::GuestDisabled => "guest_disabled",
            Denied::SignInRequired => "sign_in_required",
            Denied::DlnaOff => "dlna_off",
            Denied::DlnaOutsideHouse => "dlna_needs_lan",
            Denied::OwnerOnly => "owner_only",
            Denied::NotYours => "not_yours",
            Denied::NotHousehold => "not_household",
            Denied::NotAProfile => "not_a_profile",
            Denied::PinRequired => "pin_required",
            Denied::OwnerPinRequired => "owner_pin_required",
            Denied::GuestCannotHavePin => "guest_cannot_have_pin",
            Denied::FriendCannotHavePin => "friend_cannot_have_pin",
            Denied::AccountSuspended => "account_suspended",
            Denied::ProfileSuspended => "profile_suspended",
            Denied::OutsideSchedule => "outside_schedule",
            Denied::Hidden(_) => "not_found",
        }
    }
}

/// The outcome of [`authorize`]. The protected operation goes into [`Decision::then`], so
/// code cannot forget to look at the answer before acting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a decision does nothing by itself: run the operation through `then`"]
pub enum Decision {
    Allow,
    Denied(Denied),
}

impl Decision {
    /// Runs `op` only if allowed.
    pub fn then<T>(self, op: impl FnOnce() -> T) -> Result<T, Denied> {
        match self {
            Decision::Allow => Ok(op()),
            Decision::Denied(d) => Err(d),
        }
    }

    /// Runs a fallible `op` only if allowed; a refusal becomes the caller's error type.
    pub fn then_try<T, E: From<Denied>>(self, op: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        match self {
            Decision::Allow => op(),
            Decision::Denied(d) => Err(d.into()),
        }
    }

    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

/// Proof that the actor is the owner, signed in on a device. Owner-only domain functions take
/// one as a parameter, so code without it cannot call them. Only [`require_owner`] makes one:
///
/// ```compile_fail,E0451
/// let forged = hearth::policy::OwnerProof { user_id: 1 };
/// ```
#[derive(Debug)]
pub struct OwnerProof {
    user_id: u64,
}

impl OwnerProof {
    pub fn user_id(&self) -> u64 {
        self.user_id
    }
}

/// The owner's proof, or the refusal to give the caller.
pub fn require_owner(actor: &Actor) -> Result<OwnerProof, Denied> {
    if actor.anonymous {
        Err(Denied::SignInRequired)
    } else if actor.account.role == Role::Owner {
        Ok(OwnerProof {
            user_id: actor.account.user_id,
        })
    } else {
        Err(Denied::OwnerOnly)
    }
}

/// The one decision: may `actor` do `action` now?
pub fn authorize(actor: &Actor, action: &Action<'_>, ctx: &Context) -> Decision {
    match check(actor, action, ctx) {
        Ok(()) => Decision::Allow,
        Err(d) => Decision::Denied(d),
    }
}

/// Shorthand for `authorize(actor, action, ctx).then(op)`.
pub fn perform<T>(
    actor: &Actor,
    action: &Action<'_>,
    ctx: &Context,
    op: impl FnOnce() -> T,
) -> Result<T, Denied> {
    authorize(actor, action, ctx).then(op)
}

/// May the actor see this item now (in lists, search, and as a page, artwork, subtitles or
/// bytes)? The library filters with this.
pub fn visible(actor: &Actor, item: &ItemView<'_>, ctx: &Context) -> bool {
    check(actor, &Action::GetItem(item), ctx).is_ok()
}

/// Would a profile restricted by `r` see this item, inside its viewing hours? The rule
/// [`visible`] applies to everyone but the owner, for previews of restrictions not yet
/// saved: what a parent sees in the editor is what the child gets.
pub fn restrictions_allow(r: &Restrictions, item: &ItemView<'_>) -> Result<(), Hidden> {
    r.check_item(item)
}

/// May the actor see this library in the library list now?
pub fn library_visible(actor: &Actor, library_id: u64, ctx: &Context) -> bool {
    check(actor, &Action::ListLibrary { library_id }, ctx).is_ok()
}

/// Keeps the items the actor may see; `view` maps the library's item into an [`ItemView`].
pub fn filter_visible<'x, T: 'x>(
    actor: &'x Actor,
    ctx: &'x Context,
    items: impl IntoIterator<Item = T> + 'x,
    view: impl Fn(&T) -> ItemView<'_> + 'x,
) -> impl Iterator<Item = T> + 'x {
    items
        .into_iter()
        .filter(move |item| visible(actor, &view(item), ctx))
}

fn check(actor: &Actor, action: &Action<'_>, ctx: &Context) -> Result<(), Denied> {
    let me = actor.account.user_id;
    match *action {
        Action::Admin(_) => require_owner(actor).map(|_| ()),
        Action::ViewMe => Ok(()),
        Action::ViewOwnDevices => signed_in(actor),
        Action::RevokeDevice { device_owner } => {
            signed_in(actor)?;
            if actor.is_owner() || device_owner == me {
                Ok(())
            } else {
                Err(Denied::NotYours)
            }
        }
        Action::SetPin { user_id, role } => {
            signed_in(actor)?;
            let role = if user_id == me {
                actor.account.role
            } else {
                role
            };
            // A PIN guards a household profile (and so turns home mode on): the guest and
            // friends have no use for one.
            if role == Role::Guest {
                Err(Denied::GuestCannotHavePin)
            } else if role == Role::Friend {
                Err(Denied::FriendCannotHavePin)
            } else if actor.is_owner() || user_id == me {
                Ok(())
            } else {
                Err(Denied::NotYours)
            }
        }
        Action::SwitchProfile { to, pin_verified } => switch(actor, to, pin_verified, ctx),
        Action::ListLibraries | Action::Search => content(actor, ctx, |_| Ok(())),
        Action::ListLibrary { library_id } => content(actor, ctx, |r| {
            if r.libraries.allows(library_id) {
                Ok(())
            } else {
                Err(Denied::Hidden(Hidden::LibraryNotGranted))
            }
        }),
        Action::GetItem(item)
        | Action::Stream(item)
        | Action::Artwork(item)
        | Action::Subtitles(item) => {
            content(actor, ctx, |r| r.check_item(item).map_err(Denied::Hidden))
        }
        Action::UpdateWatchState(item) => {
            signed_in(actor)?;
            content(actor, ctx, |r| r.check_item(item).map_err(Denied::Hidden))
        }
    }
}

fn signed_in(actor: &Actor) -> Result<(), Denied> {
    if actor.anonymous {
        Err(Denied::SignInRequired)
    } else {
        Ok(())
    }
}

/// Media access: the owner always; anyone else inside their schedule and restrictions.
fn content(
    actor: &Actor,
    ctx: &Context,
    rule: impl FnOnce(&Restrictions) -> Result<(), Denied>,
) -> Result<(), Denied> {
    if actor.is_owner() {
        return Ok(());
    }
    let r = &actor.account.restrictions;
    if !r.schedule_allows(ctx.now) {
        return Err(Denied::OutsideSchedule);
    }
    rule(r)
}

fn switch(
    actor: &Actor,
    to: SwitchTarget,
    pin_verified: bool,
    ctx: &Context,
) -> Result<(), Denied> {
    signed_in(actor)?;
    if actor.account.role == Role::Friend {
        return Err(Denied::NotHousehold);
    }
    match to.role {
        Role::Friend => return Err(Denied::NotAProfile),
        Role::Guest if !ctx.guest_enabled => return Err(Denied::GuestDisabled),
        Role::Owner | Role::Managed | Role::Guest => {}
    }
    if to.suspended && to.role != Role::Owner {
        return Err(Denied::ProfileSuspended);
    }
    if to.user_id == actor.account.user_id {
        return Ok(());
    }
    if to.role == Role::Owner {
        // The owner's PIN is the only way back up from a managed profile on a shared device.
        return match (to.has_pin, pin_verified) {
            (true, true) => Ok(()),
            (true, false) => Err(Denied::PinRequired),
            (false, _) => Err(Denied::OwnerPinRequired),
        };
    }
    // A PIN guards a profile against everyone, the owner included (the owner can reset it).
    if to.has_pin && !pin_verified {
        return Err(Denied::PinRequired);
    }
    Ok(())
}
