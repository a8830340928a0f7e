//! The shape of every error answer, `{"error":{"code","message"}}`: the API's, the answers stored
//! under an Idempotency-Key, and the simulator's. What each error means and which status it gets
//! is decided at the HTTP edge (`http::error`).

/// The shape of every error answer (for the API description).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case code, such as `insufficient_funds`.
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: &str, message: &str) -> Self {
        Self {
            error: ErrorDetail {
                code: code.to_owned(),
                message: message.to_owned(),
            },
        }
    }
}
