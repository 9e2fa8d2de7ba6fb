//! Time-based rules of identity, driven by a `ManualClock`: time is moved by hand, never
//! slept, and no assertion depends on how fast the machine is.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::model::clock::ManualClock;
use crate::policy::{Account, Context, DeviceStatus, OwnerProof, Presented, admit, require_owner};

const START: u64 = 1_800_000_000;

fn owner() -> OwnerProof {
    let account = Account {
        user_id: 1,
        role: crate::policy::Role::Owner,
        has_pin: false,
        restrictions: Default::default(),
        suspended: false,
    };
    let ctx = Context {
        now: crate::policy::restrictions::LocalTime::from_unix(0, 0),
        home_mode: false,
        network: NetClass::Lan,
        guest_enabled: false,
    };
    let presented = Presented::Device {
        status: DeviceStatus::Active,
        account,
    };
    require_owner(&admit(presented, &ctx).unwrap()).unwrap()
}

fn identity(dir: &std::path::Path, clock: &ManualClock) -> Arc<Identity> {
    let store = Store::open(&dir.join("hearth.redb")).unwrap();
    Arc::new(Identity::new(store, dir.to_path_buf(), None).with_clock(Arc::new(clock.clone())))
}

fn lan_client() -> ClientInfo {
    ClientInfo {
        addr: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20)),
        class: NetClass::Lan,
        secure: false,
    }
}

#[test]
fn an_invite_lasts_exactly_its_hours() {
    // (hours asked, seconds later, still listed)
    let cases: &[(u64, u64, bool)] = &[
        (1, 0, true),
        (1, 3599, true),
        (1, 3600, false),
        (1, 3601, false),
        (24, 23 * 3600, true),
        (24, 24 * 3600, false),
    ];
    for &(hours, later, listed) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(START);
        let id = identity(tmp.path(), &clock);
        let (_, rec) = id.create_invite(&owner(), "friend", None, hours).unwrap();
        assert_eq!(rec.created_at, START);
        assert_eq!(rec.expires_at, START + hours * 3600);
        clock.advance(Duration::from_secs(later));
        let found = id.invites().unwrap().iter().any(|i| i.id == rec.id);
        assert_eq!(found, listed, "{hours} h invite, {later} s later");
    }
}

#[tokio::test]
async fn an_expired_invite_is_refused_and_a_fresh_one_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(START);
    let id = identity(tmp.path(), &clock);
    let (old, _) = id.create_invite(&owner(), "first", None, 1).unwrap();
    clock.advance(Duration::from_secs(3600));
    let err = id
        .accept_invite(
            &old,
            "first",
            "a long enough passphrase 1".into(),
            &lan_client(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            IdentityError::Invalid {
                code: "invite_invalid",
                ..
            }
        ),
        "{err:?}"
    );
    let (fresh, _) = id.create_invite(&owner(), "second", None, 1).unwrap();
    clock.advance(Duration::from_secs(3599));
    let (user, _) = id
        .accept_invite(
            &fresh,
            "second",
            "a long enough passphrase 2".into(),
            &lan_client(),
        )
        .await
        .unwrap();
    assert_eq!(user.role, Role::Friend);
    assert_eq!(user.created_at, START + 3600 + 3599);
}

#[tokio::test]
async fn invite_guesses_wait_out_the_delay_on_the_clock_not_on_the_wall() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(START);
    let id = identity(tmp.path(), &clock);
    let client = lan_client();
    let guess = |n: u32| format!("hth_guess{n}");
    let mut n = 0;
    // Wrong links cost nothing until the free budget is used up, then a delay starts.
    let wait = loop {
        n += 1;
        assert!(n < 50, "never throttled");
        match id
            .accept_invite(&guess(n), "x", "a long enough passphrase".into(), &client)
            .await
        {
            Err(IdentityError::Throttled(secs)) => break secs,
            Err(IdentityError::Invalid {
                code: "invite_invalid",
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(n, login_addr_policy().free + 1);
    // Still waiting a moment before the delay ends…
    clock.advance(Duration::from_secs(wait) - Duration::from_millis(1));
    assert!(matches!(
        id.accept_invite(&guess(99), "x", "a long enough passphrase".into(), &client)
            .await,
        Err(IdentityError::Throttled(_))
    ));
    // …and the next guess is heard once it has passed.
    clock.advance(Duration::from_millis(1));
    assert!(matches!(
        id.accept_invite(&guess(100), "x", "a long enough passphrase".into(), &client)
            .await,
        Err(IdentityError::Invalid {
            code: "invite_invalid",
            ..
        })
    ));
}
