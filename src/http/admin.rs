//! `/v1/admin`: operator routes, behind the admin token.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::error::AppError;
use super::extract::{json_body, parse_json, Admin};
use crate::app::AppState;
use crate::db::{accounts, now_micros};
use crate::domain::money::AMOUNT_PATTERN;
use crate::domain::symbol::SYMBOL_PATTERN;
use crate::domain::{Cents, Symbol, CASH};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccountRequest {
    name: String,
    cash: String,
    /// Opening shares per symbol.
    #[serde(default, deserialize_with = "crate::domain::whole_number::by_key")]
    positions: BTreeMap<String, i64>,
}

/// Described by hand, to say exactly what `create_account` takes.
impl utoipa::PartialSchema for NewAccountRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let described = serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["name", "cash"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "\\S",
                         "description": "1 to 64 characters, not all white space"},
                "cash": {"type": "string", "pattern": AMOUNT_PATTERN, "example": "100000.00"},
                "positions": {
                    "type": "object",
                    "description": format!("Opening shares per symbol; each symbol matches {SYMBOL_PATTERN}"),
                    "additionalProperties": {"type": "integer", "format": "int64", "minimum": 0},
                },
            },
        });
        serde_json::from_value(described)
            .unwrap_or_else(|_| utoipa::openapi::ObjectBuilder::new().into())
    }
}

impl utoipa::ToSchema for NewAccountRequest {}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CreatedAccount)]
pub struct CreatedAccountView {
    account_id: String,
    name: String,
    /// The account's API token: shown once, stored only as a hash.
    token: String,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/admin/accounts").post(create_account))
        .service(web::resource("/v1/admin/audit").get(audit));
}

/// Runs the money audit now, against the store and the exchange's own record.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "accounts", security(("admin" = [])),
    responses((status = 200, description = "The audit's report", body = crate::audit::Report),
              (status = 401, description = "Not the admin token", body = crate::error::ErrorBody)))]
pub(crate) async fn audit(
    state: web::Data<AppState>,
    _admin: Admin,
) -> Result<HttpResponse, AppError> {
    let report = crate::audit::live(&state.engine, &state.last_audit).await?;
    Ok(HttpResponse::Ok().json(report))
}

#[utoipa::path(post, path = "/v1/admin/accounts", tag = "accounts", security(("admin" = [])),
    request_body = NewAccountRequest,
    responses((status = 201, body = CreatedAccountView), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 422, description = "unknown_symbol: a position in a symbol that cannot be held", body = crate::error::ErrorBody)))]
pub(crate) async fn create_account(
    state: web::Data<AppState>,
    _admin: Admin,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let body: NewAccountRequest = parse_json(&json_body(&req, payload).await?)?;
    let name = body.name;
    if name.trim().is_empty() || name.chars().count() > 64 {
        return Err(AppError::InvalidRequest(
            "name must be 1 to 64 characters, not all white space".into(),
        ));
    }
    let cash = Cents::parse_amount(&body.cash).map_err(AppError::InvalidRequest)?;
    for (symbol, qty) in &body.positions {
        if symbol == CASH {
            return Err(AppError::UnknownSymbol(symbol.clone()));
        }
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
        .run(move |conn| accounts::create(conn, &name, cash, &body.positions, now_micros()))
        .await?;
    Ok(HttpResponse::Created().json(CreatedAccountView {
        account_id: created.id.to_string(),
        name: created.name,
        token: created.token,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_holds_every_rule() {
        use utoipa::PartialSchema;
        let described = serde_json::to_value(NewAccountRequest::schema()).unwrap();
        assert_eq!(
            described["required"],
            serde_json::json!(["name", "cash"]),
            "{described}"
        );
        assert_eq!(described["properties"]["cash"]["pattern"], AMOUNT_PATTERN);
    }
}
