//! `/v1/admin`: operator routes, behind the admin token.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::extract::{json_body, parse_json, Admin};
use crate::app::AppState;
use crate::db::{accounts, now_micros};
use crate::domain::{Cents, Symbol};
use crate::error::AppError;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccountRequest {
    name: String,
    cash: Cents,
    /// Opening shares per symbol.
    #[serde(default)]
    positions: BTreeMap<String, i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CreatedAccount)]
pub struct CreatedAccountView {
    account_id: String,
    name: String,
    /// The account's API token: shown once, stored only as a hash.
    token: String,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/admin/accounts").post(create_account));
}

#[utoipa::path(post, path = "/v1/admin/accounts", tag = "accounts", security(("bearer" = [])),
    request_body = NewAccountRequest,
    responses((status = 201, body = CreatedAccountView), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)))]
pub(crate) async fn create_account(
    state: web::Data<AppState>,
    _admin: Admin,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let body: NewAccountRequest = parse_json(&json_body(&req, payload).await?)?;
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(AppError::InvalidRequest(
            "name must be 1 to 64 characters".into(),
        ));
    }
    for (symbol, qty) in &body.positions {
        Symbol::parse(symbol)
            .map_err(|rule| AppError::InvalidRequest(format!("{symbol}: {rule}")))?;
        if *qty < 0 {
            return Err(AppError::InvalidRequest(format!(
                "{symbol}: a position cannot be negative"
            )));
        }
    }
    let created = state
        .writer
        .run(move |conn| accounts::create(conn, &name, body.cash, &body.positions, now_micros()))
        .await?;
    Ok(HttpResponse::Created().json(CreatedAccountView {
        account_id: created.id.to_string(),
        name: created.name,
        token: created.token,
    }))
}
