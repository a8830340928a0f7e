use std::process::ExitCode;

use clap::Parser;
use orderkeeper::config::{Cli, Command, ServeArgs};
use orderkeeper::exchange::sim;
use orderkeeper::startup::Application;
use orderkeeper::{audit, demo, telemetry};

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    orderkeeper::fault_points::setup_from_env();
    let command = cli
        .command
        .unwrap_or_else(|| Command::Serve(ServeArgs::from_env()));
    // The demo prints a report; its simulator cuts responses on purpose, which actix logs.
    let default_filter = match command {
        Command::Demo(_) => "warn,actix_http::h1::dispatcher=off",
        _ => "info",
    };
    telemetry::init(cli.log_format, default_filter);
    let result = match command {
        Command::Serve(args) => match Application::build(args).await {
            Ok(app) => match app.shutdown().on_signals() {
                Ok(()) => app.run_until_stopped().await.map_err(|e| e.to_string()),
                Err(e) => Err(format!("cannot watch for signals: {e}")),
            },
            Err(e) => Err(e.to_string()),
        },
        Command::Audit(args) => {
            match audit::offline(&args.database_url, args.exchange.as_deref()).await {
                Ok(report) => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&report).unwrap_or_default()
                    );
                    return passed(report.ok);
                }
                Err(e) => Err(e),
            }
        }
        Command::Demo(args) => match demo::run(args).await {
            Ok(report) => {
                println!("{report}");
                return passed(report.passed());
            }
            Err(e) => Err(e.to_string()),
        },
        Command::ExchangeSim(args) => match sim::start(&args, false) {
            Ok(sim) => {
                tracing::info!(port = sim.port, "exchange simulator listening");
                sim.server.await.map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!(%message, "orderkeeper stopped");
            eprintln!("orderkeeper: {message}");
            ExitCode::FAILURE
        }
    }
}

fn passed(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
