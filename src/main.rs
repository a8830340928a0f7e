use std::process::ExitCode;

use clap::Parser;
use orderkeeper::audit;
use orderkeeper::config::{Cli, Command, ServeArgs};
use orderkeeper::exchange::sim;
use orderkeeper::startup::Application;
use orderkeeper::telemetry;

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    orderkeeper::fault_points::setup_from_env();
    telemetry::init(cli.log_format);
    let result = match cli
        .command
        .unwrap_or_else(|| Command::Serve(ServeArgs::from_env()))
    {
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
                    return if report.ok {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    };
                }
                Err(e) => Err(e),
            }
        }
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
