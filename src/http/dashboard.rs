//! The dashboard: static files from `static/`, built into the binary so it runs from anywhere.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::error::AppError;
use crate::app::AppState;
use crate::db::{self, accounts};

const INDEX: &str = include_str!("../../static/index.html");
const APP_JS: &str = include_str!("../../static/app.js");
const STYLE: &str = include_str!("../../static/style.css");

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").get(index))
        .service(web::resource("/static/app.js").get(app_js))
        .service(web::resource("/static/style.css").get(style))
        .service(web::resource("/demo.json").get(demo));
}

async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(INDEX)
}

async fn app_js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .body(APP_JS)
}

async fn style() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .body(STYLE)
}

/// The demo account's token, so the local dashboard can start with it; 404 without a demo account,
/// and on a listener anyone else may reach (unless `--public-demo-token`).
async fn demo(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    if !state.serve_demo_token {
        return Err(AppError::NotFound);
    }
    let token = db::run(&state.pool, accounts::demo_token)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(HttpResponse::Ok().json(json!({"token": token})))
}
