//! Security-sensitive tests of `policy`: the permission grid (every role × every action ×
//! every restriction case in one table), the rating tables across countries, and the real
//! NFO ratings of the generated test media (`tests/media/`).
//!
//! Every protected operation in the grid is a closure that panics when the table says the
//! request must be refused, so a policy bug that lets a refused request through fails loudly
//! instead of quietly returning a wrong answer.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use hearth::net::NetClass;
use hearth::policy::{
    self, Account, Action, AdminArea, AgeCeilings, Answer, Context, Denied, DeviceStatus, Hidden,
    ItemKind, ItemView, Libraries, LocalTime, OwnerProof, Presented, Preset, RatingSystem,
    RawRating, Restrictions, Role, SwitchTarget, UnratedRule, UnratedRules, Weekday, Window,
    ratings::{self, Rating},
};

// ---------------------------------------------------------------------------------------------
// The grid
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Who {
    Owner,
    Managed,
    ManagedWithPin,
    Guest,
    Friend,
    /// A client on a network allowed without sign-in, acting as the guest profile.
    Anonymous,
    /// A device the owner revoked, still sending its old token.
    Revoked,
    /// A friend's device, still valid, whose account the owner suspended.
    Suspended,
    /// A network allowed without sign-in acting as a profile the owner suspended.
    AnonymousSuspended,
}

const EVERYONE: [Who; 9] = [
    Who::Owner,
    Who::Managed,
    Who::ManagedWithPin,
    Who::Guest,
    Who::Friend,
    Who::Anonymous,
    Who::Revoked,
    Who::Suspended,
    Who::AnonymousSuspended,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Case {
    /// A PG film in a granted library, inside viewing hours.
    Baseline,
    LibraryNotGranted,
    /// Rated above the ceiling of 12 in this rating system.
    AboveCeiling(RatingSystem),
    /// Rated exactly at the ceiling (BBFC 12A, ceiling 12).
    AtCeiling,
    UnratedBlocked,
    /// A rating not in the table while unrated items are blocked.
    UnknownRating,
    /// A rating not in the table while the owner allows unrated items.
    UnknownWhenUnratedAllowed,
    LabelDenied,
    LabelNotInAllowList,
    OutsideSchedule,
    /// The last minute of a window.
    InsideScheduleEdge,
    HomeMode,
    GuestTurnedOff,
    /// The client comes from outside the house.
    RemoteNetwork,
}

const ABOVE: [Case; 10] = [
    Case::AboveCeiling(RatingSystem::UsMpaa),
    Case::AboveCeiling(RatingSystem::UsTv),
    Case::AboveCeiling(RatingSystem::UkBbfc),
    Case::AboveCeiling(RatingSystem::DeFsk),
    Case::AboveCeiling(RatingSystem::Fr),
    Case::AboveCeiling(RatingSystem::NlKijkwijzer),
    Case::AboveCeiling(RatingSystem::Au),
    Case::AboveCeiling(RatingSystem::Ca),
    Case::AboveCeiling(RatingSystem::It),
    Case::AboveCeiling(RatingSystem::Se),
];

fn all_cases() -> Vec<Case> {
    let mut v = vec![Case::Baseline, Case::LibraryNotGranted];
    v.extend(ABOVE);
    v.extend([
        Case::AtCeiling,
        Case::UnratedBlocked,
        Case::UnknownRating,
        Case::UnknownWhenUnratedAllowed,
        Case::LabelDenied,
        Case::LabelNotInAllowList,
        Case::OutsideSchedule,
        Case::InsideScheduleEdge,
        Case::HomeMode,
        Case::GuestTurnedOff,
        Case::RemoteNetwork,
    ]);
    v
}

/// Cases in which the item is hidden from restricted users.
fn hiding() -> Vec<Case> {
    let mut v = vec![Case::LibraryNotGranted];
    v.extend(ABOVE);
    v.extend([
        Case::UnratedBlocked,
        Case::UnknownRating,
        Case::LabelDenied,
        Case::LabelNotInAllowList,
    ]);
    v
}

/// Cases in which the item is shown to restricted users.
const SHOWING: [Case; 4] = [
    Case::Baseline,
    Case::AtCeiling,
    Case::UnknownWhenUnratedAllowed,
    Case::InsideScheduleEdge,
];

const COLUMNS: [&str; 12] = [
    "list",
    "search",
    "get",
    "stream",
    "artwork",
    "subtitles",
    "watch",
    "settings",
    "users",
    "switch",
    "devices",
    "pin",
];

/// The grid. Cells, in the order of [`COLUMNS`]:
/// `A` allowed · `H` hidden (404) for the case's reason · `O` owner only (403) ·
/// `S` outside the schedule (403) · `I` needs a signed-in account (401) ·
/// `X` friends cannot switch profiles (403) · `R` revoked device (401) ·
/// `M` home mode requires sign-in (401) · `G` guest turned off (401) ·
/// `E` allowed-without-sign-in does not count outside the house (401) ·
/// `U` the account is suspended (401) · `P` the guest cannot have a PIN (403) ·
/// `F` friends cannot have a PIN (403). The `pin` column is setting one's own PIN.
///
/// Restricted users (everyone but the owner) have: library 1 only, ceiling 12 for films and
/// TV, unrated blocked, label `violence` denied, viewing Mon–Fri 7–19 and Sat–Sun 9–21. The
/// owner is given the same restrictions, to show they never apply to the owner.
#[rustfmt::skip]
fn grid() -> Vec<(Vec<Who>, Vec<Case>, &'static str)> {
    use Who::*;
    let household = vec![Managed, ManagedWithPin];
    let also = |extra: &[Case]| -> Vec<Case> { SHOWING.iter().chain(extra).copied().collect() };
    vec![
        //                                                   list srch get strm art subs wtch sett usrs swch devs pin
        (vec![Owner], all_cases(),                             "A    A    A   A    A   A    A    A    A    A    A    A"),
        (vec![Revoked], all_cases(),                           "R    R    R   R    R   R    R    R    R    R    R    R"),
        (vec![Suspended, AnonymousSuspended], all_cases(),     "U    U    U   U    U   U    U    U    U    U    U    U"),
        (household.clone(), also(&[Case::HomeMode, Case::RemoteNetwork]),
                                                               "A    A    A   A    A   A    A    O    O    A    O    A"),
        (vec![Guest], also(&[Case::HomeMode, Case::RemoteNetwork]),
                                                               "A    A    A   A    A   A    A    O    O    A    O    P"),
        (household.clone(), hiding(),                          "H    H    H   H    H   H    H    O    O    A    O    A"),
        (vec![Guest], hiding(),                                "H    H    H   H    H   H    H    O    O    A    O    P"),
        (household.clone(), vec![Case::OutsideSchedule],       "S    S    S   S    S   S    S    O    O    A    O    A"),
        (vec![Guest], vec![Case::OutsideSchedule],             "S    S    S   S    S   S    S    O    O    A    O    P"),
        (household, vec![Case::GuestTurnedOff],
                                                               "A    A    A   A    A   A    A    O    O    A    O    A"),
        (vec![Guest], vec![Case::GuestTurnedOff],              "G    G    G   G    G   G    G    G    G    G    G    G"),
        (vec![Friend], also(&[Case::HomeMode, Case::RemoteNetwork, Case::GuestTurnedOff]),
                                                               "A    A    A   A    A   A    A    O    O    X    O    F"),
        (vec![Friend], hiding(),                               "H    H    H   H    H   H    H    O    O    X    O    F"),
        (vec![Friend], vec![Case::OutsideSchedule],            "S    S    S   S    S   S    S    O    O    X    O    F"),
        (vec![Anonymous], also(&[]),                           "A    A    A   A    A   A    I    I    I    I    I    I"),
        (vec![Anonymous], hiding(),                            "H    H    H   H    H   H    I    I    I    I    I    I"),
        (vec![Anonymous], vec![Case::OutsideSchedule],         "S    S    S   S    S   S    I    I    I    I    I    I"),
        (vec![Anonymous], vec![Case::HomeMode],                "M    M    M   M    M   M    M    M    M    M    M    M"),
        (vec![Anonymous], vec![Case::GuestTurnedOff],          "G    G    G   G    G   G    G    G    G    G    G    G"),
        (vec![Anonymous], vec![Case::RemoteNetwork],           "E    E    E   E    E   E    E    E    E    E    E    E"),
    ]
}

/// What a case puts in front of the policy.
struct Scene {
    restrictions: Restrictions,
    library_id: u64,
    kind: ItemKind,
    rating: Option<(&'static str, Option<&'static str>)>,
    labels: Vec<String>,
    ctx: Context,
    /// Why the item must be hidden in this case, when it is.
    hidden: Option<Hidden>,
}

fn at(day: Weekday, hour: u8, minute: u8) -> LocalTime {
    LocalTime::new(day, hour, minute).unwrap()
}

fn base_restrictions() -> Restrictions {
    Restrictions {
        libraries: Libraries::Only([1].into()),
        max_rating: AgeCeilings {
            movies: Some(12),
            tv: Some(12),
        },
        unrated: UnratedRules {
            movies: UnratedRule::Block,
            tv: UnratedRule::Block,
        },
        labels_allow: vec![],
        labels_deny: vec!["violence".into()],
        schedule: Some(vec![
            Window {
                days: [
                    Weekday::Mon,
                    Weekday::Tue,
                    Weekday::Wed,
                    Weekday::Thu,
                    Weekday::Fri,
                ]
                .into(),
                from: 7,
                to: 19,
            },
            Window {
                days: [Weekday::Sat, Weekday::Sun].into(),
                from: 9,
                to: 21,
            },
        ]),
    }
    .checked()
    .unwrap()
}

/// For each rating system: a value rated above 12, how it is written, the kind, the age.
fn above_ceiling(system: RatingSystem) -> (&'static str, Option<&'static str>, ItemKind, u8) {
    match system {
        RatingSystem::UsMpaa => ("Rated R", None, ItemKind::Movie, 17),
        RatingSystem::UsTv => ("TV-14", None, ItemKind::Episode, 14),
        RatingSystem::UkBbfc => ("15", Some("gb"), ItemKind::Movie, 15),
        RatingSystem::DeFsk => ("de/FSK 16", None, ItemKind::Movie, 16),
        RatingSystem::Fr => ("-16", Some("fr"), ItemKind::Movie, 16),
        RatingSystem::NlKijkwijzer => ("Kijkwijzer 14", None, ItemKind::Show, 14),
        RatingSystem::Au => ("au/MA15+", None, ItemKind::Movie, 15),
        RatingSystem::Ca => ("14A", Some("ca"), ItemKind::Movie, 14),
        RatingSystem::It => ("it/VM14", None, ItemKind::Movie, 14),
        RatingSystem::Se => ("se/15", None, ItemKind::Season, 15),
    }
}

fn scene(case: Case) -> Scene {
    let mut s = Scene {
        restrictions: base_restrictions(),
        library_id: 1,
        kind: ItemKind::Movie,
        rating: Some(("PG", None)),
        labels: vec!["family".into()],
        ctx: Context {
            now: at(Weekday::Wed, 16, 0),
            home_mode: false,
            network: NetClass::Lan,
            guest_enabled: true,
        },
        hidden: None,
    };
    match case {
        Case::Baseline => {}
        Case::LibraryNotGranted => {
            s.library_id = 2;
            s.hidden = Some(Hidden::LibraryNotGranted);
        }
        Case::AboveCeiling(system) => {
            let (value, hint, kind, age) = above_ceiling(system);
            s.rating = Some((value, hint));
            s.kind = kind;
            s.hidden = Some(Hidden::RatingAboveCeiling {
                min_age: age,
                max_age: 12,
            });
        }
        Case::AtCeiling => s.rating = Some(("gb/12A", None)),
        Case::UnratedBlocked => {
            s.rating = None;
            s.hidden = Some(Hidden::Unrated);
        }
        Case::UnknownRating => {
            s.rating = Some(("PG-14", None));
            s.hidden = Some(Hidden::UnknownRating);
        }
        Case::UnknownWhenUnratedAllowed => {
            s.rating = Some(("jp/R15+", None));
            s.restrictions.unrated = UnratedRules::default();
        }
        Case::LabelDenied => {
            s.labels = vec!["Family".into(), "VIOLENCE".into()];
            s.hidden = Some(Hidden::LabelDenied);
        }
        Case::LabelNotInAllowList => {
            s.restrictions.labels_allow = vec!["family".into()];
            s.labels = vec!["documentary".into()];
            s.hidden = Some(Hidden::LabelNotAllowed);
        }
        Case::OutsideSchedule => s.ctx.now = at(Weekday::Sat, 21, 0),
        Case::InsideScheduleEdge => s.ctx.now = at(Weekday::Fri, 18, 59),
        Case::HomeMode => s.ctx.home_mode = true,
        Case::GuestTurnedOff => s.ctx.guest_enabled = false,
        Case::RemoteNetwork => s.ctx.network = NetClass::Remote,
    }
    s
}

fn account(user_id: u64, role: Role, has_pin: bool, restrictions: &Restrictions) -> Account {
    Account {
        user_id,
        role,
        has_pin,
        restrictions: restrictions.clone(),
        suspended: false,
    }
}

fn presented(who: Who, r: &Restrictions) -> Presented {
    let device = |account| Presented::Device {
        status: DeviceStatus::Active,
        account,
    };
    match who {
        Who::Owner => device(account(1, Role::Owner, true, r)),
        Who::Managed => device(account(2, Role::Managed, false, r)),
        Who::ManagedWithPin => device(account(3, Role::Managed, true, r)),
        Who::Guest => device(account(4, Role::Guest, false, r)),
        Who::Friend => device(account(5, Role::Friend, false, r)),
        Who::Anonymous => Presented::AllowedNetwork {
            profile: account(4, Role::Guest, false, r),
        },
        Who::Revoked => Presented::Device {
            status: DeviceStatus::Revoked,
            account: account(1, Role::Owner, true, r),
        },
        Who::Suspended => device(Account {
            suspended: true,
            ..account(5, Role::Friend, false, r)
        }),
        Who::AnonymousSuspended => Presented::AllowedNetwork {
            profile: Account {
                suspended: true,
                ..account(2, Role::Managed, false, r)
            },
        },
    }
}

fn symbol(d: &Denied) -> char {
    match d {
        Denied::Hidden(_) => 'H',
        Denied::OwnerOnly => 'O',
        Denied::OutsideSchedule => 'S',
        Denied::SignInRequired => 'I',
        Denied::NotHousehold => 'X',
        Denied::DeviceRevoked => 'R',
        Denied::HomeModeRequiresSignIn => 'M',
        Denied::GuestDisabled => 'G',
        Denied::AnonymousOutsideHouse => 'E',
        Denied::AccountSuspended => 'U',
        Denied::GuestCannotHavePin => 'P',
        Denied::FriendCannotHavePin => 'F',
        _ => '?',
    }
}

/// An owner-only operation: it cannot be called without the proof.
fn change_settings(_proof: &OwnerProof, forbidden: bool, what: &str) -> &'static str {
    if forbidden {
        panic!("FORBIDDEN PATH REACHED: {what}");
    }
    "changed"
}

/// The secret every protected operation would hand out.
const BYTES: &str = "the item's bytes";

/// Runs one cell: the real call a handler would make, with an operation that panics if the
/// table says this request must never reach it.
fn run_cell(
    who: Who,
    case: Case,
    column: &str,
    expect: char,
    s: &Scene,
    item_ids: &[u64],
) -> Result<char, String> {
    let what = format!("{who:?} × {column} × {case:?}");
    let actor = match policy::admit(presented(who, &s.restrictions), &s.ctx) {
        Ok(actor) => actor,
        // No actor, so no operation can be reached at all.
        Err(d) => return Ok(symbol(&d)),
    };
    let rating = s
        .rating
        .map(|(value, country)| RawRating { country, value });
    let item = ItemView {
        library_id: s.library_id,
        kind: s.kind,
        rating,
        labels: &s.labels,
    };
    // Listing and search may run and filter the item out (H for filtering); everything else
    // must not run at all unless the cell is `A`.
    let filtered_h = expect == 'H'
        && (column == "search" || (column == "list" && case != Case::LibraryNotGranted));
    let forbidden = expect != 'A' && !filtered_h;
    let guard = || {
        if forbidden {
            panic!("FORBIDDEN PATH REACHED: {what}");
        }
    };
    // The library's items: ours (id 7) and one harmless neighbour (id 8) that is always shown.
    let neighbour_labels: Vec<String> = vec![];
    let views = |id: &u64| -> ItemView<'_> {
        if *id == 7 {
            item
        } else {
            ItemView {
                library_id: s.library_id,
                kind: ItemKind::Audio,
                rating: None,
                labels: &neighbour_labels,
            }
        }
    };
    let listed = |action: Action<'_>| -> Result<char, Denied> {
        let found = policy::authorize(&actor, &action, &s.ctx).then(|| {
            guard();
            policy::filter_visible(&actor, &s.ctx, item_ids.iter(), |id| views(id))
                .copied()
                .collect::<Vec<u64>>()
        })?;
        Ok(if found.contains(&7) { 'A' } else { 'H' })
    };
    let served = |action: Action<'_>| -> Result<char, Denied> {
        let bytes = policy::authorize(&actor, &action, &s.ctx).then(|| {
            guard();
            BYTES
        })?;
        assert_eq!(bytes, BYTES);
        Ok('A')
    };
    let result = match column {
        "list" => listed(Action::ListLibrary {
            library_id: s.library_id,
        }),
        "search" => listed(Action::Search),
        "get" => served(Action::GetItem(&item)),
        "stream" => served(Action::Stream(&item)),
        "artwork" => served(Action::Artwork(&item)),
        "subtitles" => served(Action::Subtitles(&item)),
        "watch" => served(Action::UpdateWatchState(&item)),
        "settings" => {
            let by_decision =
                policy::authorize(&actor, &Action::Admin(AdminArea::Settings), &s.ctx);
            let by_type = policy::require_owner(&actor)
                .map(|proof| change_settings(&proof, forbidden, &what));
            if by_decision.is_allowed() != by_type.is_ok() {
                return Err(format!("{what}: authorize and require_owner disagree"));
            }
            by_type.map(|_| 'A')
        }
        "users" => served(Action::Admin(AdminArea::Users)),
        "devices" => served(Action::Admin(AdminArea::AllDevices)),
        "switch" => served(Action::SwitchProfile {
            to: SwitchTarget {
                user_id: 50,
                role: Role::Managed,
                has_pin: false,
                suspended: false,
            },
            pin_verified: false,
        }),
        "pin" => served(Action::SetPin {
            user_id: actor.user_id(),
            role: actor.role(),
        }),
        other => return Err(format!("unknown column {other}")),
    };
    match result {
        Ok(c) => Ok(c),
        Err(Denied::Hidden(h)) if Some(h) != s.hidden => Err(format!(
            "{what}: hidden for the wrong reason: {h:?}, expected {:?}",
            s.hidden
        )),
        Err(d) => Ok(symbol(&d)),
    }
}

#[test]
fn permission_grid() {
    let grid = grid();
    // Every (who, case) pair appears exactly once.
    let mut seen: HashMap<(Who, Case), usize> = HashMap::new();
    for (row, (whos, cases, cells)) in grid.iter().enumerate() {
        assert_eq!(
            cells.split_whitespace().count(),
            COLUMNS.len(),
            "row {row} has the wrong number of cells"
        );
        for who in whos {
            for case in cases {
                if let Some(first) = seen.insert((*who, *case), row) {
                    panic!("{who:?} × {case:?} is in rows {first} and {row}");
                }
            }
        }
    }
    let cases = all_cases();
    for who in EVERYONE {
        for case in &cases {
            assert!(
                seen.contains_key(&(who, *case)),
                "{who:?} × {case:?} is missing from the grid"
            );
        }
    }

    let item_ids = [7u64, 8];
    let mut failures = Vec::new();
    let mut cells_checked = 0;
    for (whos, cases, cells) in &grid {
        let cells: Vec<char> = cells
            .split_whitespace()
            .map(|c| c.chars().next().unwrap())
            .collect();
        for who in whos {
            for case in cases {
                let s = scene(*case);
                for (column, expect) in COLUMNS.iter().zip(&cells) {
                    cells_checked += 1;
                    match run_cell(*who, *case, column, *expect, &s, &item_ids) {
                        Ok(got) if got == *expect => {}
                        Ok(got) => failures.push(format!(
                            "{who:?} × {column} × {case:?}: expected {expect}, got {got}"
                        )),
                        Err(e) => failures.push(e),
                    }
                }
            }
        }
    }
    assert_eq!(cells_checked, EVERYONE.len() * cases.len() * COLUMNS.len());
    assert!(
        failures.is_empty(),
        "{} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!("permission grid: {cells_checked} cells checked");
}

#[test]
fn visible_agrees_with_get_item_for_every_scene() {
    for case in all_cases() {
        let s = scene(case);
        for who in [Who::Owner, Who::Managed, Who::Friend, Who::Anonymous] {
            let Ok(actor) = policy::admit(presented(who, &s.restrictions), &s.ctx) else {
                continue;
            };
            let item = ItemView {
                library_id: s.library_id,
                kind: s.kind,
                rating: s
                    .rating
                    .map(|(value, country)| RawRating { country, value }),
                labels: &s.labels,
            };
            let get = policy::authorize(&actor, &Action::GetItem(&item), &s.ctx).is_allowed();
            assert_eq!(
                policy::visible(&actor, &item, &s.ctx),
                get,
                "{who:?} {case:?}"
            );
            // The restrictions editor's preview: what a managed profile gets inside its hours.
            if who == Who::Managed && s.restrictions.schedule_allows(s.ctx.now) {
                assert_eq!(
                    policy::restrictions_allow(&s.restrictions, &item).is_ok(),
                    get,
                    "preview disagrees with the real answer: {case:?}"
                );
            }
            assert_eq!(
                policy::library_visible(&actor, s.library_id, &s.ctx),
                policy::authorize(
                    &actor,
                    &Action::ListLibrary {
                        library_id: s.library_id
                    },
                    &s.ctx
                )
                .is_allowed(),
                "{who:?} {case:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Who may do what to whom: switching, PINs, devices
// ---------------------------------------------------------------------------------------------

fn ctx() -> Context {
    Context {
        now: at(Weekday::Tue, 12, 0),
        home_mode: true,
        network: NetClass::Lan,
        guest_enabled: true,
    }
}

fn signed_in(user_id: u64, role: Role, has_pin: bool) -> policy::Actor {
    policy::admit(
        Presented::Device {
            status: DeviceStatus::Active,
            account: account(user_id, role, has_pin, &Restrictions::none()),
        },
        &ctx(),
    )
    .unwrap()
}

/// actor, target, PIN verified, guest turned on, expected.
type SwitchRow<'a> = (
    &'a policy::Actor,
    SwitchTarget,
    bool,
    bool,
    Result<(), Denied>,
);

#[test]
fn profile_switching() {
    let owner_pin = SwitchTarget {
        user_id: 1,
        role: Role::Owner,
        has_pin: true,
        suspended: false,
    };
    let owner_no_pin = SwitchTarget {
        has_pin: false,
        ..owner_pin
    };
    let kid = SwitchTarget {
        user_id: 2,
        role: Role::Managed,
        has_pin: false,
        suspended: false,
    };
    let teen_pin = SwitchTarget {
        user_id: 3,
        role: Role::Managed,
        has_pin: true,
        suspended: false,
    };
    let guest = SwitchTarget {
        user_id: 4,
        role: Role::Guest,
        has_pin: false,
        suspended: false,
    };
    let friend = SwitchTarget {
        user_id: 5,
        role: Role::Friend,
        has_pin: false,
        suspended: false,
    };
    let kid_suspended = SwitchTarget {
        suspended: true,
        ..kid
    };
    let teen_suspended = SwitchTarget {
        suspended: true,
        ..teen_pin
    };
    // A stored flag on the owner never locks the owner out.
    let owner_flagged = SwitchTarget {
        suspended: true,
        ..owner_pin
    };
    let owner = signed_in(1, Role::Owner, true);
    let owner_without_pin = signed_in(1, Role::Owner, false);
    let kid_actor = signed_in(2, Role::Managed, false);
    let teen_actor = signed_in(3, Role::Managed, true);
    let guest_actor = signed_in(4, Role::Guest, false);
    let friend_actor = signed_in(5, Role::Friend, false);
    use Denied::*;
    let table: Vec<SwitchRow<'_>> = vec![
        // actor, target, pin verified, guest on, expected
        (&owner, kid, false, true, Ok(())),
        (&owner, teen_pin, false, true, Err(PinRequired)),
        (&owner, teen_pin, true, true, Ok(())),
        (&owner, guest, false, true, Ok(())),
        (&owner, guest, false, false, Err(GuestDisabled)),
        (&owner, friend, true, true, Err(NotAProfile)),
        (&owner, owner_pin, false, true, Ok(())),
        (&owner_without_pin, owner_no_pin, false, true, Ok(())),
        (&kid_actor, owner_pin, false, true, Err(PinRequired)),
        (&kid_actor, owner_pin, true, true, Ok(())),
        (&kid_actor, owner_no_pin, false, true, Err(OwnerPinRequired)),
        (&kid_actor, owner_no_pin, true, true, Err(OwnerPinRequired)),
        (&kid_actor, teen_pin, false, true, Err(PinRequired)),
        (&kid_actor, teen_pin, true, true, Ok(())),
        (&kid_actor, kid, false, true, Ok(())),
        (&kid_actor, guest, false, true, Ok(())),
        (&kid_actor, guest, false, false, Err(GuestDisabled)),
        (&kid_actor, friend, false, true, Err(NotAProfile)),
        (&teen_actor, teen_pin, false, true, Ok(())),
        (&teen_actor, kid, false, true, Ok(())),
        (&teen_actor, owner_pin, false, true, Err(PinRequired)),
        (&guest_actor, kid, false, true, Ok(())),
        (&guest_actor, teen_pin, false, true, Err(PinRequired)),
        (&guest_actor, owner_pin, false, true, Err(PinRequired)),
        (
            &guest_actor,
            owner_no_pin,
            false,
            true,
            Err(OwnerPinRequired),
        ),
        (&friend_actor, kid, false, true, Err(NotHousehold)),
        (&friend_actor, owner_pin, true, true, Err(NotHousehold)),
        (&friend_actor, friend, false, true, Err(NotHousehold)),
        // A suspended profile cannot be switched to by anyone, PIN or not.
        (&owner, kid_suspended, false, true, Err(ProfileSuspended)),
        (&owner, teen_suspended, true, true, Err(ProfileSuspended)),
        (
            &kid_actor,
            teen_suspended,
            true,
            true,
            Err(ProfileSuspended),
        ),
        (&kid_actor, owner_flagged, true, true, Ok(())),
    ];
    for (actor, to, pin_verified, guest_enabled, want) in table {
        let c = Context {
            guest_enabled,
            ..ctx()
        };
        let action = Action::SwitchProfile { to, pin_verified };
        let got = policy::perform(actor, &action, &c, || {
            if want.is_err() {
                panic!("FORBIDDEN PATH REACHED: {:?} → {to:?}", actor.kind());
            }
        });
        assert_eq!(got, want, "{:?} → {to:?} pin {pin_verified}", actor.kind());
    }
}

#[test]
fn pins_devices_and_me() {
    let owner = signed_in(1, Role::Owner, false);
    let kid = signed_in(2, Role::Managed, false);
    let guest = signed_in(4, Role::Guest, false);
    let friend = signed_in(5, Role::Friend, false);
    let anonymous = policy::admit(
        Presented::AllowedNetwork {
            profile: account(4, Role::Guest, false, &Restrictions::none()),
        },
        &Context {
            home_mode: false,
            ..ctx()
        },
    )
    .unwrap();
    use Denied::*;
    let pin = |user_id, role| Action::SetPin { user_id, role };
    let table: Vec<(&policy::Actor, Action<'_>, Result<(), Denied>)> = vec![
        (&owner, pin(1, Role::Owner), Ok(())),
        (&owner, pin(2, Role::Managed), Ok(())),
        // Friends are not part of the household: a PIN would only turn home mode on for it.
        (&owner, pin(5, Role::Friend), Err(FriendCannotHavePin)),
        (&owner, pin(4, Role::Guest), Err(GuestCannotHavePin)),
        (&kid, pin(2, Role::Managed), Ok(())),
        // The role the caller claims for oneself does not matter: one's own role counts.
        (&guest, pin(4, Role::Managed), Err(GuestCannotHavePin)),
        (&kid, pin(3, Role::Managed), Err(NotYours)),
        (&kid, pin(1, Role::Owner), Err(NotYours)),
        (&friend, pin(5, Role::Friend), Err(FriendCannotHavePin)),
        (&friend, pin(2, Role::Managed), Err(NotYours)),
        (&anonymous, pin(4, Role::Guest), Err(SignInRequired)),
        (&anonymous, pin(2, Role::Managed), Err(SignInRequired)),
        (&owner, Action::RevokeDevice { device_owner: 2 }, Ok(())),
        (&kid, Action::RevokeDevice { device_owner: 2 }, Ok(())),
        (
            &kid,
            Action::RevokeDevice { device_owner: 1 },
            Err(NotYours),
        ),
        (
            &friend,
            Action::RevokeDevice { device_owner: 2 },
            Err(NotYours),
        ),
        (
            &anonymous,
            Action::RevokeDevice { device_owner: 4 },
            Err(SignInRequired),
        ),
        (&kid, Action::ViewOwnDevices, Ok(())),
        (&anonymous, Action::ViewOwnDevices, Err(SignInRequired)),
        (&anonymous, Action::ViewMe, Ok(())),
        (&friend, Action::ViewMe, Ok(())),
        (&owner, Action::ListLibraries, Ok(())),
        (&friend, Action::ListLibraries, Ok(())),
    ];
    for (actor, action, want) in table {
        let got = policy::perform(actor, &action, &ctx(), || {
            if want.is_err() {
                panic!("FORBIDDEN PATH REACHED: {:?} {action:?}", actor.kind());
            }
        });
        assert_eq!(got, want, "{:?} {action:?}", actor.kind());
    }
    // Every admin area is the owner's alone; a network allowed without sign-in never gets in.
    let areas = [
        AdminArea::Settings,
        AdminArea::Users,
        AdminArea::Invites,
        AdminArea::Libraries,
        AdminArea::Disks,
        AdminArea::Updates,
        AdminArea::Tls,
        AdminArea::System,
        AdminArea::Audit,
        AdminArea::AllDevices,
    ];
    for area in areas {
        let a = Action::Admin(area);
        assert_eq!(
            policy::authorize(&owner, &a, &ctx()),
            policy::Decision::Allow
        );
        for actor in [&kid, &guest, &friend] {
            assert_eq!(
                policy::authorize(actor, &a, &ctx()),
                policy::Decision::Denied(OwnerOnly)
            );
        }
        assert_eq!(
            policy::authorize(&anonymous, &a, &ctx()),
            policy::Decision::Denied(SignInRequired)
        );
    }
}

#[test]
fn admission() {
    let lan = Context {
        home_mode: false,
        ..ctx()
    };
    let r = Restrictions::none();
    let profile = |role| Presented::AllowedNetwork {
        profile: account(9, role, false, &r),
    };
    // An allowed network set to act as the owner never gets owner powers.
    assert_eq!(
        policy::admit(profile(Role::Owner), &lan).unwrap_err(),
        Denied::AnonymousAsOwner
    );
    // It may act as a managed profile, with that profile's restrictions, still no admin.
    let kid_net = policy::admit(
        Presented::AllowedNetwork {
            profile: account(2, Role::Managed, false, &Preset::LittleKid.restrictions()),
        },
        &lan,
    )
    .unwrap();
    assert!(kid_net.is_anonymous());
    assert_eq!(kid_net.kind(), policy::ActorKind::AnonymousOnAllowedNetwork);
    assert_eq!(
        policy::require_owner(&kid_net).unwrap_err(),
        Denied::SignInRequired
    );
    let labels = vec![];
    let r_film = ItemView {
        library_id: 1,
        kind: ItemKind::Movie,
        rating: Some(RawRating {
            country: None,
            value: "R",
        }),
        labels: &labels,
    };
    assert!(!policy::visible(&kid_net, &r_film, &lan));
    // Loopback counts as inside the house.
    let local = Context {
        network: NetClass::Local,
        ..lan
    };
    assert!(policy::admit(profile(Role::Friend), &local).is_ok());
    assert_eq!(
        policy::admit(Presented::Nothing, &lan).unwrap_err(),
        Denied::NotSignedIn
    );
    // A revoked device is refused whoever it belonged to, in every context.
    for role in [Role::Owner, Role::Managed, Role::Guest, Role::Friend] {
        for c in [lan, ctx(), local] {
            let p = Presented::Device {
                status: DeviceStatus::Revoked,
                account: account(1, role, false, &r),
            };
            assert_eq!(policy::admit(p, &c).unwrap_err(), Denied::DeviceRevoked);
        }
    }
    // Stored users map over with their role and PIN.
    let mut kid = hearth::store::users::UserRecord::new(
        7,
        "kid",
        hearth::store::users::Role::Managed,
        None,
        0,
    );
    kid.pin_hash = Some("$argon2id$stand-in".into());
    let a = Account::from_user(&kid, Preset::LittleKid.restrictions());
    assert_eq!((a.user_id, a.role, a.has_pin), (7, Role::Managed, true));
    assert_eq!(a.restrictions, Preset::LittleKid.restrictions());
    // A suspended account is refused on a device and as an allowed network's profile; the
    // owner is never suspended, whatever is stored.
    for role in [Role::Managed, Role::Guest, Role::Friend] {
        let mut a = account(6, role, false, &r);
        a.suspended = true;
        let p = Presented::Device {
            status: DeviceStatus::Active,
            account: a.clone(),
        };
        assert_eq!(
            policy::admit(p, &lan).unwrap_err(),
            Denied::AccountSuspended
        );
        if role != Role::Friend {
            let p = Presented::AllowedNetwork { profile: a };
            assert_eq!(
                policy::admit(p, &lan).unwrap_err(),
                Denied::AccountSuspended
            );
        }
    }
    let mut flagged_owner = account(1, Role::Owner, false, &r);
    flagged_owner.suspended = true;
    assert!(
        policy::admit(
            Presented::Device {
                status: DeviceStatus::Active,
                account: flagged_owner,
            },
            &lan
        )
        .is_ok()
    );
    // The owner's proof carries the owner's id.
    let owner = signed_in(1, Role::Owner, false);
    assert_eq!(policy::require_owner(&owner).unwrap().user_id(), 1);
}

#[test]
fn refusals_map_to_answers_and_codes() {
    use Denied::*;
    let all = [
        (NotSignedIn, Answer::SignIn),
        (DeviceRevoked, Answer::SignIn),
        (HomeModeRequiresSignIn, Answer::SignIn),
        (AnonymousOutsideHouse, Answer::SignIn),
        (AnonymousAsOwner, Answer::SignIn),
        (GuestDisabled, Answer::SignIn),
        (SignInRequired, Answer::SignIn),
        (OwnerOnly, Answer::Forbidden),
        (NotYours, Answer::Forbidden),
        (NotHousehold, Answer::Forbidden),
        (NotAProfile, Answer::Forbidden),
        (PinRequired, Answer::Forbidden),
        (OwnerPinRequired, Answer::Forbidden),
        (GuestCannotHavePin, Answer::Forbidden),
        (FriendCannotHavePin, Answer::Forbidden),
        (AccountSuspended, Answer::SignIn),
        (ProfileSuspended, Answer::Forbidden),
        (OutsideSchedule, Answer::Forbidden),
        (DlnaOff, Answer::Forbidden),
        (DlnaOutsideHouse, Answer::Forbidden),
        (Hidden(policy::Hidden::LibraryNotGranted), Answer::NotFound),
        (Hidden(policy::Hidden::Unrated), Answer::NotFound),
        (Hidden(policy::Hidden::UnknownRating), Answer::NotFound),
        (Hidden(policy::Hidden::LabelDenied), Answer::NotFound),
        (Hidden(policy::Hidden::LabelNotAllowed), Answer::NotFound),
        (
            Hidden(policy::Hidden::RatingAboveCeiling {
                min_age: 18,
                max_age: 7,
            }),
            Answer::NotFound,
        ),
    ];
    let mut codes = BTreeSet::new();
    for (d, answer) in all {
        assert_eq!(d.answer(), answer, "{d:?}");
        let code = d.code();
        assert!(
            code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{code}"
        );
        if answer == Answer::NotFound {
            // Hidden items must be indistinguishable from missing ones.
            assert_eq!(code, "not_found");
        } else {
            assert!(codes.insert(code), "code {code} used twice");
        }
        let message = d.to_string();
        assert!(message.len() > 20, "{d:?}: {message}");
    }
}

// ---------------------------------------------------------------------------------------------
// Rating tables
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Age(RatingSystem, u8),
    Unrated,
    Unknown,
}

fn want(r: Rating) -> Want {
    match r {
        Rating::Rated(c) => Want::Age(c.system, c.min_age),
        Rating::Unrated => Want::Unrated,
        Rating::Unknown => Want::Unknown,
    }
}

/// Every rating of every system, as the board writes it, with its age: written out by hand
/// from the boards' published tables, independently of the implementation's table.
fn board_tables() -> Vec<(&'static str, &'static str, RatingSystem, u8)> {
    use RatingSystem::*;
    vec![
        ("us", "G", UsMpaa, 0),
        ("us", "PG", UsMpaa, 10),
        ("us", "PG-13", UsMpaa, 13),
        ("us", "R", UsMpaa, 17),
        ("us", "NC-17", UsMpaa, 18),
        ("us", "X", UsMpaa, 18),
        ("us", "TV-Y", UsTv, 0),
        ("us", "TV-Y7", UsTv, 7),
        ("us", "TV-Y7-FV", UsTv, 7),
        ("us", "TV-G", UsTv, 0),
        ("us", "TV-PG", UsTv, 10),
        ("us", "TV-14", UsTv, 14),
        ("us", "TV-MA", UsTv, 17),
        ("gb", "U", UkBbfc, 0),
        ("gb", "Uc", UkBbfc, 0),
        ("gb", "PG", UkBbfc, 8),
        ("gb", "12A", UkBbfc, 12),
        ("gb", "12", UkBbfc, 12),
        ("gb", "15", UkBbfc, 15),
        ("gb", "18", UkBbfc, 18),
        ("gb", "R18", UkBbfc, 18),
        ("de", "0", DeFsk, 0),
        ("de", "6", DeFsk, 6),
        ("de", "12", DeFsk, 12),
        ("de", "16", DeFsk, 16),
        ("de", "18", DeFsk, 18),
        ("de", "FSK 0", DeFsk, 0),
        ("de", "FSK 6", DeFsk, 6),
        ("de", "FSK 12", DeFsk, 12),
        ("de", "FSK 16", DeFsk, 16),
        ("de", "FSK 18", DeFsk, 18),
        ("de", "FSK16", DeFsk, 16),
        ("de", "FSK ab 12", DeFsk, 12),
        ("fr", "U", Fr, 0),
        ("fr", "TP", Fr, 0),
        ("fr", "U/TP", Fr, 0),
        ("fr", "Tous publics", Fr, 0),
        ("fr", "10", Fr, 10),
        ("fr", "12", Fr, 12),
        ("fr", "16", Fr, 16),
        ("fr", "18", Fr, 18),
        ("fr", "-10", Fr, 10),
        ("fr", "-12", Fr, 12),
        ("fr", "-16", Fr, 16),
        ("fr", "-18", Fr, 18),
        ("nl", "AL", NlKijkwijzer, 0),
        ("nl", "6", NlKijkwijzer, 6),
        ("nl", "9", NlKijkwijzer, 9),
        ("nl", "12", NlKijkwijzer, 12),
        ("nl", "14", NlKijkwijzer, 14),
        ("nl", "16", NlKijkwijzer, 16),
        ("nl", "18", NlKijkwijzer, 18),
        ("nl", "Kijkwijzer 12", NlKijkwijzer, 12),
        ("au", "G", Au, 0),
        ("au", "PG", Au, 8),
        ("au", "M", Au, 15),
        ("au", "MA15+", Au, 15),
        ("au", "R18+", Au, 18),
        ("au", "X18+", Au, 18),
        ("au", "E", Au, 0),
        ("au", "RC", Au, 18),
        ("ca", "G", Ca, 0),
        ("ca", "PG", Ca, 8),
        ("ca", "14A", Ca, 14),
        ("ca", "18A", Ca, 18),
        ("ca", "R", Ca, 18),
        ("ca", "E", Ca, 0),
        ("it", "T", It, 0),
        ("it", "VM6", It, 6),
        ("it", "VM14", It, 14),
        ("it", "VM18", It, 18),
        ("it", "VM 14", It, 14),
        ("it", "6+", It, 6),
        ("it", "14+", It, 14),
        ("it", "18+", It, 18),
        ("se", "Btl", Se, 0),
        ("se", "Barntillåten", Se, 0),
        ("se", "7", Se, 7),
        ("se", "11", Se, 11),
        ("se", "15", Se, 15),
    ]
}

/// Other names the countries go by in NFO files and scraper output.
fn country_aliases(cc: &str) -> &'static [&'static str] {
    match cc {
        "us" => &["USA", "United States"],
        "gb" => &["uk", "UK", "United Kingdom"],
        "de" => &["Germany", "Deutschland"],
        "fr" => &["France"],
        "nl" => &["Netherlands", "Nederland"],
        "au" => &["Australia"],
        "ca" => &["Canada"],
        "it" => &["Italy", "Italia"],
        "se" => &["Sweden", "Sverige"],
        _ => &[],
    }
}

#[test]
fn every_board_rating_in_every_form() {
    let mut rows: Vec<(String, Option<String>, Want)> = Vec::new();
    for (cc, code, system, age) in board_tables() {
        let w = Want::Age(system, age);
        let upper = cc.to_uppercase();
        rows.push((code.to_owned(), Some(cc.to_owned()), w));
        rows.push((code.to_lowercase(), Some(cc.to_owned()), w));
        rows.push((code.to_uppercase(), Some(upper.clone()), w));
        rows.push((format!("  {code}  "), Some(cc.to_owned()), w));
        rows.push((format!("Rated {code}"), Some(cc.to_owned()), w));
        rows.push((format!("{cc}/{code}"), None, w));
        rows.push((format!("{cc}:{code}"), None, w));
        rows.push((format!("{upper}/{code}"), None, w));
        rows.push((format!("{upper}-{code}"), None, w));
        rows.push((format!("{cc} / {code}"), None, w));
        // An explicit country wins over a wrong hint.
        rows.push((format!("{cc}/{code}"), Some("jp".to_owned()), w));
        for alias in country_aliases(cc) {
            rows.push((format!("{alias}:{code}"), None, w));
        }
    }
    let mut failures = Vec::new();
    for (raw, hint, w) in &rows {
        let got = want(ratings::parse(raw, hint.as_deref()));
        if got != *w {
            failures.push(format!(
                "{raw:?} (hint {hint:?}): expected {w:?}, got {got:?}"
            ));
        }
    }
    assert!(rows.len() > 900, "only {} rows", rows.len());
    assert!(
        failures.is_empty(),
        "{} of {} wrong:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    println!("rating forms checked: {}", rows.len());
}

#[test]
fn ratings_as_found_in_the_wild() {
    use RatingSystem::*;
    use Want::*;
    let rows: Vec<(&str, Option<&str>, Want)> = vec![
        // The forms the issue names.
        ("PG-13", None, Age(UsMpaa, 13)),
        ("Rated R", None, Age(UsMpaa, 17)),
        ("gb/12A", None, Age(UkBbfc, 12)),
        ("uk:15", None, Age(UkBbfc, 15)),
        ("de/FSK 16", None, Age(DeFsk, 16)),
        ("FSK16", None, Age(DeFsk, 16)),
        ("it/VM14", None, Age(It, 14)),
        ("Kijkwijzer 12", None, Age(NlKijkwijzer, 12)),
        ("au/MA15+", None, Age(Au, 15)),
        ("se/15", None, Age(Se, 15)),
        // Kodi's and scrapers' other habits.
        (
            "Rated PG-13 for intense sequences of action",
            None,
            Age(UsMpaa, 13),
        ),
        ("Rated R for violence and language", None, Age(UsMpaa, 17)),
        ("rated pg", None, Age(UsMpaa, 10)),
        ("USA:PG-13", None, Age(UsMpaa, 13)),
        ("USA:TV-MA", None, Age(UsTv, 17)),
        ("Germany:16", None, Age(DeFsk, 16)),
        ("Germany:FSK 16", None, Age(DeFsk, 16)),
        ("United Kingdom:12A", None, Age(UkBbfc, 12)),
        ("DE-16", None, Age(DeFsk, 16)),
        ("FSK-16", None, Age(DeFsk, 16)),
        ("FSK 16", None, Age(DeFsk, 16)),
        ("fsk ab 18", None, Age(DeFsk, 18)),
        ("FSK:12", None, Age(DeFsk, 12)),
        ("Keine Jugendfreigabe", Some("de"), Age(DeFsk, 18)),
        ("BBFC 15", None, Age(UkBbfc, 15)),
        ("MPAA PG-13", None, Age(UsMpaa, 13)),
        ("fr/-12", None, Age(Fr, 12)),
        ("FR-U/TP", None, Age(Fr, 0)),
        ("U/TP", None, Age(Fr, 0)),
        ("PG13", None, Age(UsMpaa, 13)),
        ("pg-13", None, Age(UsMpaa, 13)),
        ("tv-ma", None, Age(UsTv, 17)),
        ("TVMA", None, Age(UsTv, 17)),
        ("TV MA", None, Age(UsTv, 17)),
        ("TV-Y7-FV", None, Age(UsTv, 7)),
        ("MA 15+", None, Age(Au, 15)),
        ("R18+", None, Age(Au, 18)),
        ("R18", None, Age(UkBbfc, 18)),
        ("X", None, Age(UsMpaa, 18)),
        // Plain values without a country: the US first, then the others; numbers mean the
        // same age wherever they are used.
        ("PG", None, Age(UsMpaa, 10)),
        ("G", None, Age(UsMpaa, 0)),
        ("R", None, Age(UsMpaa, 17)),
        ("12", None, Age(UkBbfc, 12)),
        ("12A", None, Age(UkBbfc, 12)),
        ("15", None, Age(UkBbfc, 15)),
        ("18", None, Age(UkBbfc, 18)),
        ("U", None, Age(UkBbfc, 0)),
        ("M", None, Age(Au, 15)),
        ("MA15+", None, Age(Au, 15)),
        ("E", None, Age(Au, 0)),
        ("14A", None, Age(Ca, 14)),
        ("18A", None, Age(Ca, 18)),
        ("T", None, Age(It, 0)),
        ("VM18", None, Age(It, 18)),
        ("Btl", None, Age(Se, 0)),
        ("7", None, Age(Se, 7)),
        ("11", None, Age(Se, 11)),
        ("AL", None, Age(NlKijkwijzer, 0)),
        ("6", None, Age(NlKijkwijzer, 6)),
        ("9", None, Age(NlKijkwijzer, 9)),
        ("14", None, Age(NlKijkwijzer, 14)),
        ("16", None, Age(NlKijkwijzer, 16)),
        ("10", None, Age(Fr, 10)),
        ("0", None, Age(DeFsk, 0)),
        // The hint picks the system for plain values.
        ("PG", Some("gb"), Age(UkBbfc, 8)),
        ("PG", Some("uk"), Age(UkBbfc, 8)),
        ("PG", Some("au"), Age(Au, 8)),
        ("PG", Some("ca"), Age(Ca, 8)),
        ("PG", Some("Australia"), Age(Au, 8)),
        ("R", Some("ca"), Age(Ca, 18)),
        ("R", Some("au"), Age(Au, 18)),
        ("12", Some("de"), Age(DeFsk, 12)),
        ("12", Some("fr"), Age(Fr, 12)),
        ("12", Some("nl"), Age(NlKijkwijzer, 12)),
        ("15", Some("se"), Age(Se, 15)),
        ("G", Some("ca"), Age(Ca, 0)),
        ("E", Some("ca"), Age(Ca, 0)),
        // A hint that does not know the value falls back to the other tables…
        ("PG", Some("de"), Age(UsMpaa, 10)),
        ("MA15+", Some("us"), Age(Au, 15)),
        ("12", Some("us"), Age(UkBbfc, 12)),
        ("PG", Some("jp"), Age(UsMpaa, 10)),
        // …but a country written in the value does not.
        ("de/PG", None, Unknown),
        ("gb/TV-MA", None, Unknown),
        ("us/12A", None, Unknown),
        ("se/12", None, Unknown),
        ("it/14", None, Unknown),
        ("gb/FSK 16", None, Unknown),
        ("de/Kijkwijzer 12", None, Unknown),
        ("de/FSK 16", Some("us"), Age(DeFsk, 16)),
        // Not in the table: unknown, never unrated.
        ("jp/G", None, Unknown),
        ("xx:15", None, Unknown),
        ("JP-PG12", None, Unknown),
        ("PG-14", None, Unknown),
        ("R21", None, Unknown),
        ("13", None, Unknown),
        ("17", None, Unknown),
        ("21", None, Unknown),
        ("FSK", None, Unknown),
        ("FSK 21", None, Unknown),
        ("FSK 14", None, Unknown),
        ("Kijkwijzer 13", None, Unknown),
        ("it/VM16", None, Unknown),
        ("TV-Y8", None, Unknown),
        ("G-rated", None, Unknown),
        ("Rated", None, Unknown),
        ("Adults only", None, Unknown),
        ("１２", None, Unknown),
        ("P\u{0}G", None, Unknown),
        ("PG/13", None, Unknown),
        ("au/MA16+", None, Unknown),
        ("ca/14", None, Unknown),
        ("se/18", None, Unknown),
        ("fr/14", None, Unknown),
        // No rating.
        ("", None, Unrated),
        ("   ", None, Unrated),
        ("NR", None, Unrated),
        ("nr", Some("de"), Unrated),
        ("Not Rated", None, Unrated),
        ("not rated", None, Unrated),
        ("Unrated", None, Unrated),
        ("UR", None, Unrated),
        ("TV-NR", None, Unrated),
        ("us/NR", None, Unrated),
        ("Rated NR", None, Unrated),
        ("Unclassified", Some("gb"), Unrated),
        ("us/", None, Unrated),
    ];
    let mut failures = Vec::new();
    for (raw, hint, w) in &rows {
        let got = want(ratings::parse(raw, *hint));
        if got != *w {
            failures.push(format!(
                "{raw:?} (hint {hint:?}): expected {w:?}, got {got:?}"
            ));
        }
    }
    let long = "PG-13 ".repeat(100);
    if ratings::parse(&long, None) != Rating::Unknown {
        failures.push("an overlong value is not unknown".into());
    }
    assert!(
        failures.is_empty(),
        "{} of {} wrong:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn presets_ceilings() {
    use Preset::*;
    // (value, hint, visible to little kid, older kid, teen)
    let rows: &[(&str, Option<&str>, bool, bool, bool)] = &[
        ("G", None, true, true, true),
        ("TV-Y", None, true, true, true),
        ("TV-Y7", None, true, true, true),
        ("TV-G", None, true, true, true),
        ("gb/U", None, true, true, true),
        ("FSK 0", None, true, true, true),
        ("FSK 6", None, true, true, true),
        ("se/7", None, true, true, true),
        ("nl/AL", None, true, true, true),
        ("it/T", None, true, true, true),
        ("PG", None, false, true, true),
        ("gb/PG", None, false, true, true),
        ("TV-PG", None, false, true, true),
        ("nl/9", None, false, true, true),
        ("fr/10", None, false, true, true),
        ("se/11", None, false, true, true),
        ("gb/12A", None, false, true, true),
        ("FSK 12", None, false, true, true),
        ("PG-13", None, false, false, true),
        ("TV-14", None, false, false, true),
        ("it/VM14", None, false, false, true),
        ("ca/14A", None, false, false, true),
        ("au/M", None, false, false, true),
        ("au/MA15+", None, false, false, true),
        ("gb/15", None, false, false, true),
        ("se/15", None, false, false, true),
        ("de/FSK 16", None, false, false, true),
        ("nl/16", None, false, false, true),
        ("R", None, false, false, false),
        ("TV-MA", None, false, false, false),
        ("NC-17", None, false, false, false),
        ("gb/18", None, false, false, false),
        ("FSK 18", None, false, false, false),
        ("it/VM18", None, false, false, false),
        ("au/R18+", None, false, false, false),
        ("ca/18A", None, false, false, false),
        // Unrated and unknown items are blocked by every preset.
        ("NR", None, false, false, false),
        ("", None, false, false, false),
        ("jp/PG12", None, false, false, false),
    ];
    let labels = vec![];
    for (value, hint, little, older, teen) in rows {
        for (preset, want) in [(LittleKid, little), (OlderKid, older), (Teen, teen)] {
            let r = preset.restrictions();
            for kind in [ItemKind::Movie, ItemKind::Episode] {
                let item = ItemView {
                    library_id: 3,
                    kind,
                    rating: Some(RawRating {
                        country: *hint,
                        value,
                    }),
                    labels: &labels,
                };
                assert_eq!(
                    r.check_item(&item).is_ok(),
                    *want,
                    "{preset:?} {kind:?} {value:?}"
                );
            }
        }
    }
    assert_eq!(LittleKid.max_age(), 7);
    assert_eq!(OlderKid.max_age(), 12);
    assert_eq!(Teen.max_age(), 16);
    assert_eq!(
        serde_json::to_value(LittleKid).unwrap(),
        serde_json::json!("little_kid")
    );
}

// ---------------------------------------------------------------------------------------------
// The generated test media's real NFO files
// ---------------------------------------------------------------------------------------------

#[path = "common/media.rs"]
mod media;

fn media_root() -> PathBuf {
    media::test_media()
}

/// The text between `<tag>` and `</tag>`, each occurrence.
fn elements(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(after[..j].trim().to_owned());
        rest = &after[j + close.len()..];
    }
    out
}

struct Title {
    name: &'static str,
    kind: ItemKind,
    rating: Option<String>,
    labels: Vec<String>,
}

fn load(name: &'static str, kind: ItemKind) -> Title {
    let dir = media_root().join(if kind == ItemKind::Show {
        "Shows"
    } else {
        "Movies"
    });
    let dir = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the test media is missing at {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(name))
        .unwrap_or_else(|| panic!("{name} is not in the test media"));
    let nfo = dir.join(if kind == ItemKind::Show {
        "tvshow.nfo"
    } else {
        "movie.nfo"
    });
    let (rating, labels) = match std::fs::read_to_string(&nfo) {
        Ok(xml) => (
            elements(&xml, "mpaa").into_iter().next(),
            elements(&xml, "tag"),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, vec![]),
        Err(e) => panic!("{}: {e}", nfo.display()),
    };
    Title {
        name,
        kind,
        rating,
        labels,
    }
}

#[test]
fn test_media_ratings_and_presets() {
    use Preset::*;
    use RatingSystem::*;
    // title, kind, expected parse, visible to: little kid, older kid, teen
    let table: Vec<(&str, ItemKind, Want, [bool; 3])> = vec![
        (
            "Sunny Meadow",
            ItemKind::Movie,
            Want::Age(UsMpaa, 0),
            [true, true, true],
        ),
        (
            "Rocket Club",
            ItemKind::Movie,
            Want::Age(UsMpaa, 10),
            [false, true, true],
        ),
        (
            "Paper Boats",
            ItemKind::Movie,
            Want::Age(UsMpaa, 10),
            [false, true, true],
        ),
        (
            "Night Harbour",
            ItemKind::Movie,
            Want::Age(UsMpaa, 13),
            [false, false, true],
        ),
        // R, and tagged `violence`.
        (
            "Crimson Alley",
            ItemKind::Movie,
            Want::Age(UsMpaa, 17),
            [false, false, false],
        ),
        (
            "Midnight Ledger",
            ItemKind::Movie,
            Want::Age(UsMpaa, 18),
            [false, false, false],
        ),
        (
            "Fjord Light",
            ItemKind::Movie,
            Want::Age(UkBbfc, 12),
            [false, true, true],
        ),
        (
            "Waldlauf",
            ItemKind::Movie,
            Want::Age(DeFsk, 16),
            [false, false, true],
        ),
        (
            "Volpe Nera",
            ItemKind::Movie,
            Want::Age(It, 14),
            [false, false, true],
        ),
        (
            "Untitled Home Reel",
            ItemKind::Movie,
            Want::Unrated,
            [false, false, false],
        ),
        (
            "Garden Friends",
            ItemKind::Show,
            Want::Age(UsTv, 7),
            [true, true, true],
        ),
        (
            "Harbour Watch",
            ItemKind::Show,
            Want::Age(UsTv, 17),
            [false, false, false],
        ),
    ];
    for (name, kind, w, visible) in table {
        let t = load(name, kind);
        let parsed = match &t.rating {
            Some(raw) => ratings::parse(raw, None),
            None => Rating::Unrated,
        };
        assert_eq!(want(parsed), w, "{} ({:?})", t.name, t.rating);
        for (preset, want_visible) in [LittleKid, OlderKid, Teen].into_iter().zip(visible) {
            let item = ItemView {
                library_id: 1,
                kind: t.kind,
                rating: t.rating.as_deref().map(|value| RawRating {
                    country: None,
                    value,
                }),
                labels: &t.labels,
            };
            // Through the whole path: a signed-in managed profile with the preset.
            let actor = policy::admit(
                Presented::Device {
                    status: DeviceStatus::Active,
                    account: account(2, Role::Managed, true, &preset.restrictions()),
                },
                &ctx(),
            )
            .unwrap();
            assert_eq!(
                policy::visible(&actor, &item, &ctx()),
                want_visible,
                "{} for {preset:?}",
                t.name
            );
        }
    }
    // The owner's labels from the NFO are what the deny lists see.
    let crimson = load("Crimson Alley", ItemKind::Movie);
    assert_eq!(crimson.labels, ["violence"]);
    let noir = load("Night Harbour", ItemKind::Movie);
    let r = Restrictions {
        labels_deny: vec!["NOIR".into()],
        ..Restrictions::none()
    };
    let item = ItemView {
        library_id: 1,
        kind: ItemKind::Movie,
        rating: noir.rating.as_deref().map(|value| RawRating {
            country: None,
            value,
        }),
        labels: &noir.labels,
    };
    assert_eq!(r.check_item(&item), Err(Hidden::LabelDenied));
}

#[test]
fn restrictions_json_round_trip_through_users_api_shape() {
    for p in Preset::ALL {
        let r = p.restrictions();
        let json = serde_json::to_string(&r).unwrap();
        let back: Restrictions = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }
    let v: serde_json::Value = serde_json::to_value(Preset::LittleKid.restrictions()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "libraries": "all",
            "max_rating": {"movies": 7, "tv": 7},
            "unrated": {"movies": "block", "tv": "block"},
            "labels_allow": [],
            "labels_deny": ["adult", "horror", "violence"],
            "schedule": null
        })
    );
}

#[test]
fn filtering_speed() {
    // Prints how fast a large library filters for a restricted profile; no assertion on time.
    let values = [
        "PG",
        "gb/12A",
        "de/FSK 16",
        "TV-MA",
        "Rated R",
        "NR",
        "it/VM14",
        "PG-14",
    ];
    let labels: Vec<Vec<String>> = (0..8)
        .map(|i| {
            if i % 3 == 0 {
                vec!["violence".into()]
            } else {
                vec![]
            }
        })
        .collect();
    let items: Vec<usize> = (0..22_001).collect();
    let actor = policy::admit(
        Presented::Device {
            status: DeviceStatus::Active,
            account: account(2, Role::Managed, false, &Preset::OlderKid.restrictions()),
        },
        &ctx(),
    )
    .unwrap();
    let c = ctx();
    let start = std::time::Instant::now();
    let shown = policy::filter_visible(&actor, &c, items.iter(), |i| ItemView {
        library_id: 1,
        kind: ItemKind::Movie,
        rating: Some(RawRating {
            country: None,
            value: values[**i % values.len()],
        }),
        labels: &labels[**i % labels.len()],
    })
    .count();
    let took = start.elapsed();
    assert!(shown > 0 && shown < items.len());
    println!(
        "filtered {} items ({shown} shown) in {:.1} ms",
        items.len(),
        took.as_secs_f64() * 1e3
    );
}

// ---------------------------------------------------------------------------------------------
// The DLNA profile: players on the LAN, no account, only the libraries chosen for DLNA
// ---------------------------------------------------------------------------------------------

/// Every action a DLNA player could reach, with what must happen. Each allowed row runs its
/// operation through `then`; each refused row has an operation that panics if reached.
#[test]
fn dlna_profile_grid() {
    let chosen = Restrictions {
        libraries: Libraries::Only([3u64].into_iter().collect()),
        ..Restrictions::none()
    };
    let lan = |home_mode| Context {
        now: at(Weekday::Tue, 12, 0),
        home_mode,
        network: NetClass::Lan,
        guest_enabled: false,
    };
    let dlna = |enabled, ctx: &Context| {
        policy::admit(
            Presented::Dlna {
                restrictions: chosen.clone(),
                enabled,
            },
            ctx,
        )
    };

    // Admission: off, or from outside the house, is refused; home mode is the owner's call
    // (it turns `enabled` off when it starts; an owner who turns it on again is obeyed).
    assert_eq!(dlna(false, &lan(false)).unwrap_err(), Denied::DlnaOff);
    let remote = Context {
        network: NetClass::Remote,
        ..lan(false)
    };
    assert_eq!(dlna(true, &remote).unwrap_err(), Denied::DlnaOutsideHouse);
    let local = Context {
        network: NetClass::Local,
        ..lan(false)
    };
    assert!(dlna(true, &local).is_ok());
    assert!(dlna(true, &lan(true)).is_ok());

    let ctx = lan(false);
    let actor = dlna(true, &ctx).unwrap();
    assert_eq!(actor.kind(), policy::ActorKind::Dlna);
    assert_eq!(actor.user_id(), policy::DLNA_PROFILE_ID);
    assert!(policy::require_owner(&actor).is_err());

    let labels: Vec<String> = Vec::new();
    let in_chosen = ItemView {
        library_id: 3,
        kind: ItemKind::Movie,
        rating: None,
        labels: &labels,
    };
    let elsewhere = ItemView {
        library_id: 4,
        ..in_chosen
    };
    let kid = SwitchTarget {
        user_id: 2,
        role: Role::Managed,
        has_pin: false,
        suspended: false,
    };
    let rows: Vec<(Action<'_>, Result<(), Denied>)> = vec![
        (Action::ListLibraries, Ok(())),
        (Action::Search, Ok(())),
        (Action::ListLibrary { library_id: 3 }, Ok(())),
        (
            Action::ListLibrary { library_id: 4 },
            Err(Denied::Hidden(Hidden::LibraryNotGranted)),
        ),
        (Action::GetItem(&in_chosen), Ok(())),
        (Action::Stream(&in_chosen), Ok(())),
        (Action::Artwork(&in_chosen), Ok(())),
        (
            Action::GetItem(&elsewhere),
            Err(Denied::Hidden(Hidden::LibraryNotGranted)),
        ),
        (
            Action::Stream(&elsewhere),
            Err(Denied::Hidden(Hidden::LibraryNotGranted)),
        ),
        (
            Action::UpdateWatchState(&in_chosen),
            Err(Denied::SignInRequired),
        ),
        (Action::ViewOwnDevices, Err(Denied::SignInRequired)),
        (
            Action::RevokeDevice { device_owner: 0 },
            Err(Denied::SignInRequired),
        ),
        (
            Action::SetPin {
                user_id: 0,
                role: Role::Managed,
            },
            Err(Denied::SignInRequired),
        ),
        (
            Action::SwitchProfile {
                to: kid,
                pin_verified: true,
            },
            Err(Denied::SignInRequired),
        ),
        (
            Action::Admin(AdminArea::Settings),
            Err(Denied::SignInRequired),
        ),
        (
            Action::Admin(AdminArea::Libraries),
            Err(Denied::SignInRequired),
        ),
        (Action::Admin(AdminArea::Users), Err(Denied::SignInRequired)),
    ];
    for (action, want) in rows {
        let refused = want.is_err();
        let got = policy::authorize(&actor, &action, &ctx).then(|| {
            assert!(!refused, "{action:?} ran for a DLNA player");
        });
        assert_eq!(got, want, "{action:?}");
    }
    assert!(policy::visible(&actor, &in_chosen, &ctx));
    assert!(!policy::visible(&actor, &elsewhere, &ctx));
}
