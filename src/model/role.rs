//! Who an account is: one `Role`, stored with the user and decided on by policy.

/// Account kinds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Claimed the device; may do everything, restrictions never apply.
    Owner,
    /// A household profile without a password, used on a signed-in home device.
    Managed,
    /// The guest profile, a managed user the owner turns on or off.
    Guest,
    /// Someone outside the household with their own password, invited to some libraries.
    Friend,
}
