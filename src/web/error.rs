//! The one place where domain errors become HTTP answers.
//!
//! Clients get a status and `{"error": {"code", "message"}}` with a sentence they can act
//! on; the underlying cause of an internal error is logged here and never sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::identity::IdentityError;
use crate::store::StoreError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds, for 429 answers.
    pub retry_after: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case reason for programs.
    pub code: String,
    /// A sentence for people.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "not_signed_in",
            "Sign in to continue.",
        )
    }
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "There is nothing here.")
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    pub fn throttled(retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                format!(
                    "Too many attempts. Wait {} seconds and try again.",
                    retry_after.max(1)
                ),
            )
        }
    }
    /// Logs `cause` and answers 500 without revealing it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Something went wrong inside Hearth. The details are in the device log.",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(e)
    }
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        let msg = e.to_string();
        match e {
            IdentityError::ClaimNeedsLan => ApiError::forbidden("claim_needs_lan", msg),
            IdentityError::WrongSetupCode => ApiError::forbidden("wrong_setup_code", msg),
            IdentityError::AlreadyClaimed => ApiError::conflict("already_claimed", msg),
            IdentityError::WeakPassword(_) => ApiError::invalid("weak_password", msg),
            IdentityError::Invalid { code, .. } => ApiError::invalid(code, msg),
            IdentityError::Throttled(secs) => ApiError::throttled(secs),
            IdentityError::BadCredentials => {
                ApiError::new(StatusCode::UNAUTHORIZED, "bad_credentials", msg)
            }
            IdentityError::NotFound => ApiError::not_found(),
            IdentityError::Forbidden(_) => ApiError::forbidden("not_allowed", msg),
            IdentityError::PinRequired => ApiError::forbidden("pin_required", msg),
            IdentityError::WrongPin => ApiError::forbidden("wrong_pin", msg),
            IdentityError::DeviceBlocked => ApiError::forbidden("device_blocked", msg),
            IdentityError::Suspended => ApiError::forbidden("account_suspended", msg),
            IdentityError::TotpRequired => {
                ApiError::new(StatusCode::UNAUTHORIZED, "totp_required", msg)
            }
            IdentityError::WrongTotp => ApiError::new(StatusCode::UNAUTHORIZED, "wrong_totp", msg),
            IdentityError::Denied(d) => ApiError::from(d),
            IdentityError::Store(e) => ApiError::internal(e),
            IdentityError::Internal(e) => ApiError::internal(e),
        }
    }
}

impl From<crate::policy::Denied> for ApiError {
    fn from(d: crate::policy::Denied) -> Self {
        use crate::policy::Answer;
        match d.answer() {
            Answer::SignIn => ApiError::new(StatusCode::UNAUTHORIZED, d.code(), sentence(&d)),
            Answer::Forbidden => ApiError::forbidden(d.code(), sentence(&d)),
            // Never say why something is hidden: that would tell that it exists.
            Answer::NotFound => ApiError::not_found(),
        }
    }
}

/// Policy's reasons are lower-case clauses for logs; clients get a sentence.
fn sentence(d: &crate::policy::Denied) -> String {
    let s = d.to_string();
    let mut c = s.chars();
    match c.next() {
        Some(f) => format!("{}{}.", f.to_uppercase(), c.as_str()),
        None => s,
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::internal(e)
    }
}

/// Turns axum's own rejections (bad JSON, wrong content type, body too large) into our shape.
pub fn from_rejection(r: axum::extract::rejection::JsonRejection) -> ApiError {
    let status = r.status();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "expected_json",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        _ => "malformed_body",
    };
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "The request body is too large.".to_owned(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "Send the request body as JSON with Content-Type: application/json.".to_owned()
        }
        _ => format!("The request body is not valid: {}", r.body_text()),
    };
    ApiError::new(status, code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(e: ApiError) -> (StatusCode, serde_json::Value, Option<String>) {
        let resp = e.into_response();
        let status = resp.status();
        let retry = resp
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap(), retry)
    }

    #[tokio::test]
    async fn mapping_of_each_kind() {
        let cases = [
            (ApiError::unauthorized(), 401, "not_signed_in"),
            (
                ApiError::forbidden("remote_access_off", "A sentence."),
                403,
                "remote_access_off",
            ),
            (ApiError::not_found(), 404, "not_found"),
            (
                ApiError::conflict("already_claimed", "A sentence."),
                409,
                "already_claimed",
            ),
            (
                ApiError::invalid("weak_password", "A sentence."),
                422,
                "weak_password",
            ),
            (ApiError::throttled(7), 429, "too_many_attempts"),
            (
                ApiError::from(StoreError::Corrupt("secret detail".into())),
                500,
                "internal_error",
            ),
        ];
        for (err, status, code) in cases {
            let (s, body, retry) = body_of(err).await;
            assert_eq!(s.as_u16(), status);
            assert_eq!(body["error"]["code"], code);
            assert!(body["error"]["message"].as_str().unwrap().len() > 1);
            assert!(!body.to_string().contains("secret detail"));
            assert_eq!(retry.is_some(), status == 429);
        }
    }
}
